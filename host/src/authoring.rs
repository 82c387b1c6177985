//! Tools for plugin authors: `gitauto plugin test` runs one component against a payload
//! file with the grants given on the command line, in the same sandbox a daemon uses,
//! and reports its outcome and log lines; `scaffold` writes new plugins. (`gitauto
//! plugin inspect` is `runtime::inspect`.)

pub mod scaffold;

use crate::capability::log::{Level, Sink};
use crate::config::{Limits, PluginSpec, WasmSource};
use crate::event::Event;
use crate::forge::{self, Incoming, Origin, Outgoing};
use crate::grant::{Access, CommandGrant, DirGrant, Grant, HostPattern};
use crate::runtime::{Runtime, StepOutcome};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// One `--grant`: `dir=PATH` (read), `git=PATH` (git may change repositories),
/// `write=PATH`, `host=HOST[:PORT]`, `command=PROGRAM`.
pub fn parse_grant(text: &str, grant: &mut Grant) -> anyhow::Result<()> {
    let (kind, value) = text
        .split_once('=')
        .with_context(|| format!("`{text}`: write dir=PATH, git=PATH, write=PATH, host=HOST or command=PROGRAM"))?;
    match kind {
        "dir" | "git" | "write" => {
            let path = std::path::absolute(value).with_context(|| format!("`{value}`"))?;
            anyhow::ensure!(path.is_dir(), "`{}` is not a directory", path.display());
            // The compiled components in the cache are loaded as native code.
            let (granted, cache) = (std::fs::canonicalize(&path)?, cache_dir());
            let cache = std::fs::canonicalize(&cache).unwrap_or(cache);
            anyhow::ensure!(
                !cache.starts_with(&granted) && !granted.starts_with(&cache),
                "`{}` reaches gitauto's compiled-plugin cache ({}); grant a directory outside it",
                path.display(),
                cache.display()
            );
            let access = match kind {
                "write" => Access::Write,
                "git" => Access::Git,
                _ => Access::Read,
            };
            grant.dirs.push(DirGrant::new(path, access));
        }
        "host" => grant.hosts.push(HostPattern::parse(value).map_err(anyhow::Error::msg)?),
        "command" => grant
            .commands
            .push(CommandGrant::new(value, std::env::var_os("PATH").as_deref()).map_err(anyhow::Error::msg)?),
        other => bail!("`{other}=`: grants are dir=, git=, write=, host= and command="),
    }
    Ok(())
}

/// The event a forge would deliver with `body` as `forge_event` (guessed when absent).
pub fn event_from_payload(forge_name: &str, forge_event: Option<&str>, body: &[u8]) -> anyhow::Result<Event> {
    let dialect = forge::configure(forge_name, &mut forge::Options::default()).map_err(anyhow::Error::msg)?;
    let forge_event = match forge_event {
        Some(event) => event.to_owned(),
        None => crate::local::guess_event(forge_name, body).with_context(|| {
            format!("cannot tell which {forge_name} event this payload is: say it with --forge-event")
        })?,
    };
    let delivery = "plugin-test";
    let outgoing = Outgoing { event: &forge_event, body, secret: None, delivery, now: SystemTime::now() };
    let mut headers: forge::Headers =
        dialect.sign(&outgoing).into_iter().filter(|(name, _)| !name.eq_ignore_ascii_case("content-type")).collect();
    headers.append("content-type", "application/json");
    let origin = Origin { source: "test", delivery };
    match dialect.parse(&headers, body, &origin)? {
        Incoming::Events(mut events) if !events.is_empty() => {
            let mut event = events.remove(0);
            event.payload = forge::payload_text(Some("application/json"), body);
            Ok(event)
        }
        Incoming::Events(_) => bail!("the payload holds no event"),
        Incoming::Ping => bail!("the payload is a ping: plugins never see those"),
        Incoming::Ignored(why) => bail!("gitauto ignores this payload: {why}"),
    }
}

/// Runs the component at `wasm` once. Log lines go to `sink` as they are written.
pub fn run_once(
    wasm: &Path,
    grant: Grant,
    limits: Limits,
    event: &Event,
    settings: &serde_json::Value,
    sink: Sink,
) -> anyhow::Result<StepOutcome> {
    let name = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    let spec = PluginSpec {
        name: name.clone(),
        wasm: WasmSource::File(wasm.to_path_buf()),
        verify: None,
        grant,
        limits,
        settings: serde_json::Map::new(),
    };
    let (runtime, _) = Runtime::new(&[spec], &cache_dir())?;
    Ok(runtime.run(&name, event, &settings.to_string(), sink))
}

/// Where `plugin test` caches compiled components between runs.
fn cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache").into_os_string()))
    {
        Some(dir) => PathBuf::from(dir).join("gitauto"),
        None => std::env::temp_dir().join("gitauto-cache"),
    }
}

/// A sink that prints each line to stderr as `[level] message`, escaped for the terminal
/// (the plugin wrote it).
pub fn stderr_sink() -> Sink {
    Arc::new(|level: Level, message: &str| eprintln!("[{}] {}", level.as_str(), crate::terminal::escape(message)))
}
