//! `gitauto plugin new NAME --lang rust|python|js`: a plugin skeleton that builds as it
//! is, with this host's WIT copied in (so it builds anywhere, against the version this
//! host runs), a README with the build command, and a sample rule.

#![allow(clippy::disallowed_methods, reason = "`gitauto plugin new` is a CLI command that writes files and exits")]

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// The WIT package this host implements, file by file.
const WIT: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../../wit/world.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("git.wit", include_str!("../../../wit/git.wit")),
    ("http.wit", include_str!("../../../wit/http.wit")),
    ("process.wit", include_str!("../../../wit/process.wit")),
    ("kv.wit", include_str!("../../../wit/kv.wit")),
    ("log.wit", include_str!("../../../wit/log.wit")),
];

/// A language a skeleton can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen, `cargo build --target wasm32-wasip2`.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

/// Writes the skeleton of plugin `name` in `lang` into `dir/name`; returns that directory.
pub fn new_plugin(dir: &Path, name: &str, lang: Lang) -> anyhow::Result<PathBuf> {
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.starts_with('-')
    {
        bail!("`{name}`: a plugin name is lower-case letters, digits and `-`");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    let mut files: Vec<(String, String)> =
        WIT.iter().map(|(file, text)| (format!("wit/{file}"), (*text).to_owned())).collect();
    let snake = name.replace('-', "_");
    let (wasm, build, sources): (String, &str, Vec<(&str, String)>) = match lang {
        Lang::Rust => (
            format!("target/wasm32-wasip2/release/{snake}.wasm"),
            "cargo build --release --target wasm32-wasip2",
            vec![
                ("Cargo.toml", RUST_CARGO.replace("NAME", name)),
                ("src/lib.rs", RUST_LIB.to_owned()),
                (".gitignore", "/target\n".into()),
            ],
        ),
        Lang::Python => (
            format!("{name}.wasm"),
            PYTHON_BUILD,
            vec![("app.py", PYTHON_APP.to_owned()), (".gitignore", "*.wasm\n.venv/\n__pycache__/\n".into())],
        ),
        Lang::Js => (
            format!("{name}.wasm"),
            "npm install && node build.mjs",
            vec![
                ("plugin.js", JS_PLUGIN.to_owned()),
                ("build.mjs", JS_BUILD.replace("NAME", name)),
                ("package.json", JS_PACKAGE.replace("NAME", name)),
                (".gitignore", "*.wasm\nnode_modules/\n".into()),
            ],
        ),
    };
    let build = build.replace("NAME", name);
    files.extend(sources.into_iter().map(|(path, text)| (path.to_owned(), text)));
    files.push(("README.md".into(), readme(name, lang, &build, &wasm)));
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("files are inside the plugin directory"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}

fn readme(name: &str, lang: Lang, build: &str, wasm: &str) -> String {
    let language = match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    };
    format!(
        r#"# {name}

A gitauto plugin in {language}. `wit/` holds the gitauto WIT it is built against
(`gitauto:plugin@0.2.0`); see gitauto's `docs/plugins.md` for the event, the
capabilities and their errors.

## Build

```sh
{build}
```

## Try it

```sh
gitauto plugin inspect {wasm}
gitauto plugin test {wasm} --event push.json --with checkout=/srv/repos/acme/widgets --grant dir=/srv/repos
```

## Enable it

```toml
[plugins.{name}]
wasm = "{wasm}"
grants = {{ dirs = ["/srv/repos"] }}

[[rules]]
name = "{name}"
on = "push"
steps = [{{ plugin = "{name}", with = {{ checkout = "/srv/repos/acme/widgets" }} }}]
```
"#
    )
}

const RUST_CARGO: &str = r#"[package]
name = "NAME"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
serde_json = "1"
wit-bindgen = "0.63"

[profile.release]
lto = true
strip = true
"#;

const RUST_LIB: &str = r#"//! A gitauto plugin: reads the event and its settings, opens the checkout named in
//! `checkout` through the git capability, logs, and returns an outcome.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

// `Event`, `Outcome` and `Error` are generated at the root (they appear in `handle`).
use gitauto::plugin::git::Repository;
use gitauto::plugin::log::{Level, log};
use gitauto::plugin::types::Status;

struct Plugin;

impl Guest for Plugin {
    fn handle(event: Event, settings: String) -> Result<Outcome, Error> {
        let settings: serde_json::Value =
            serde_json::from_str(&settings).map_err(|err| Error::InvalidSettings(err.to_string()))?;
        let Some(checkout) = settings["checkout"].as_str() else {
            return Err(Error::InvalidSettings("`checkout` is required".into()));
        };
        let head = match Repository::open(checkout).and_then(|repo| repo.head()) {
            Ok(head) => head.unwrap_or_default(),
            Err(err) => {
                return Ok(Outcome { status: Status::Failure, summary: format!("cannot open {checkout}: {err:?}"), output: "null".into() });
            }
        };
        log(Level::Info, &format!("{} event for {}; checkout at {head}", event.kind, event.repository.full_name));
        let output = serde_json::json!({ "head": head, "kind": event.kind });
        Ok(Outcome { status: Status::Success, summary: format!("checkout at {head}"), output: output.to_string() })
    }
}

export!(Plugin);
"#;

const PYTHON_BUILD: &str = "python3 -m venv .venv\n.venv/bin/pip install componentize-py==0.25.1\n.venv/bin/componentize-py -d wit -w plugin componentize app -o NAME.wasm";

const PYTHON_APP: &str = r#""""A gitauto plugin: reads the event and its settings, opens the checkout named in
`checkout` through the git capability, logs, and returns an outcome."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import git, log, types


class WitWorld(wit_world.WitWorld):
    def handle(self, event: types.Event, settings: str) -> types.Outcome:
        config = json.loads(settings or "{}")
        checkout = config.get("checkout")
        if not checkout:
            raise Err(types.Error_InvalidSettings("`checkout` is required"))
        try:
            head = git.Repository.open(checkout).head() or ""
        except Err as err:
            return types.Outcome(types.Status.FAILURE, f"cannot open {checkout}: {err.value}", "null")
        log.log(log.Level.INFO, f"{event.kind} event for {event.repository.full_name}; checkout at {head}")
        output = {"head": head, "kind": event.kind}
        return types.Outcome(types.Status.SUCCESS, f"checkout at {head}", json.dumps(output))
"#;

const JS_PLUGIN: &str = r#"// A gitauto plugin: reads the event and its settings, opens the checkout named in
// `checkout` through the git capability, logs, and returns an outcome.
import { Repository } from 'gitauto:plugin/git@0.2.0';
import { log } from 'gitauto:plugin/log@0.2.0';

export function handle(event, settings) {
  const config = JSON.parse(settings || '{}');
  if (!config.checkout) {
    throw { tag: 'invalid-settings', val: '`checkout` is required' };
  }
  let head;
  try {
    head = Repository.open(config.checkout).head() ?? '';
  } catch (err) {
    const why = err.payload ? `${err.payload.tag}: ${err.payload.val}` : String(err);
    return { status: 'failure', summary: `cannot open ${config.checkout}: ${why}`, output: 'null' };
  }
  log('info', `${event.kind} event for ${event.repository.fullName}; checkout at ${head}`);
  return { status: 'success', summary: `checkout at ${head}`, output: JSON.stringify({ head, kind: event.kind }) };
}
"#;

const JS_BUILD: &str = r#"// Builds plugin.js into NAME.wasm for gitauto's `plugin` world.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const output = resolve(process.argv[2] ?? join(here, 'NAME.wasm'));
const { component } = await componentize({
  sourcePath: join(here, 'plugin.js'),
  witPath: join(here, 'wit'),
  worldName: 'plugin',
  // `fetch` is `wasi:http`, served under the plugin's `hosts` grant; the rest is left out.
  disableFeatures: ['stdio', 'random', 'fetch-event'],
});
await writeFile(output, component);
console.log(`wrote ${output} (${component.length} bytes)`);
"#;

const JS_PACKAGE: &str = r#"{
  "name": "NAME",
  "private": true,
  "type": "module",
  "scripts": { "build": "node build.mjs" },
  "devDependencies": { "@bytecodealliance/componentize-js": "0.23.0" }
}
"#;
