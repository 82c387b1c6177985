//! The configs a user reads are configs that load: the committed default and every
//! example.

use gitauto::config::Config;
use std::path::Path;

#[test]
fn the_default_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitauto.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Parsed from a copy so that its `generate:` secret is written to a temporary place.
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&dir.path().join("gitauto.toml"), &text).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(dir.path().join(".gitauto/secrets/github").is_file());
}

#[test]
fn every_example_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Examples take their secrets from the environment, as a deployment would.
            let text = with_example_secrets(&text);
            Config::parse(&path, &text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            seen += 1;
        }
    }
    assert!(seen > 0, "no example configs in {}", dir.display());
}

/// `text` with every `${VAR}` replaced by a stand-in secret.
fn with_example_secrets(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').map(|e| start + e + 1).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str("example-secret");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every config in `fixtures/configs/invalid/` fails with exactly the problems in its
/// `.errors` file. `UPDATE_SNAPSHOTS=1` rewrites the `.errors` files (review the diff).
#[test]
fn invalid_configs_fail_with_exactly_their_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/configs/invalid");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut mismatches = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let name = path.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let got = match Config::parse(Path::new(name), &text) {
            Ok(_) => "(no problems)\n".to_owned(),
            Err(err) => err.problems().iter().map(|p| format!("{p}\n")).collect(),
        };
        let expected_path = path.with_extension("errors");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            mismatches.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(seen >= 10, "only {seen} invalid configs in {}", dir.display());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The ```toml blocks of a Markdown file, in order.
fn toml_blocks(doc: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + "```toml\n".len()..];
        let end = body.find("```").expect("an unclosed ```toml block");
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    blocks
}

/// Every ```toml example in docs/config.md loads: the first on its own, each later one
/// appended to the first (which defines the sources and plugins the others use). No
/// plugin file is made for them: every plugin they use exists (built in).
#[test]
fn every_example_in_the_config_reference_loads() {
    every_example_loads("docs/config.md", 10);
}

/// The same for docs/forges.md: its first example defines the sources the others use.
#[test]
fn every_example_in_the_forges_guide_loads() {
    every_example_loads("docs/forges.md", 1);
}

/// The CA file docs/config.md's TLS examples name.
const EXAMPLE_CA: &str = "/etc/gitauto/db-ca.pem";

fn every_example_loads(doc: &str, at_least: usize) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc)).unwrap();
    let blocks = toml_blocks(&text);
    assert!(blocks.len() >= at_least, "only {} examples in {doc}", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    // GitHub App examples name `file:app.pem`: a real key, made now.
    gitauto_tests::fake_api::app::generate_key(dir.path());
    // The TLS examples name a CA file the config check reads: a real one, made now.
    let with_files = |block: &str| {
        let text = with_example_secrets(block);
        if !text.contains(EXAMPLE_CA) {
            return text;
        }
        let files = gitauto::testing::tls_files().expect("openssl makes the example's CA file");
        text.replace(EXAMPLE_CA, &files.ca.display().to_string())
    };
    let base = with_files(blocks[0]);
    for (index, block) in blocks.iter().enumerate() {
        let text = if index == 0 { base.clone() } else { format!("{base}\n{}", with_files(block)) };
        let path = dir.path().join("gitauto.toml");
        if let Err(err) = Config::parse(&path, &text) {
            panic!("example {} of {doc}:\n{block}\n{err}", index + 1);
        }
    }
}

/// Each built-in plugin's README is one config: its ```toml blocks together, after the
/// sources they name, load without a plugin file of any kind.
#[test]
fn every_example_in_the_plugin_readmes_loads() {
    let sources = "[sources.github]\nforge = \"github\"\nsecret = \"example-secret\"\n\
                   [sources.gitlab]\nforge = \"gitlab\"\nsecret = \"example-secret\"\n";
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&plugins).unwrap() {
        let readme = entry.unwrap().path().join("README.md");
        let Ok(doc) = std::fs::read_to_string(&readme) else { continue };
        let blocks = toml_blocks(&doc);
        if blocks.is_empty() {
            continue;
        }
        let text = format!("{sources}\n{}", with_example_secrets(&blocks.join("\n")));
        if let Err(err) = Config::parse(&dir.path().join("gitauto.toml"), &text) {
            panic!("{}:\n{text}\n{err}", readme.display());
        }
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} plugin READMEs with examples in {}", plugins.display());
}

/// An S3 `endpoint` of `md2html-convert` is checked against the host requests go to: the
/// endpoint's with path-style addressing, `<bucket>.<endpoint>` with virtual-hosted.
#[test]
fn s3_endpoints_need_the_host_requests_actually_go_to() {
    let dir = tempfile::tempdir().unwrap();
    let config = |granted: &str, addressing: &str| {
        format!(
            "[sources.github]\nforge = \"github\"\nsecret = \"example-secret\"\n\
             [plugins.cdn]\nwasm = \"builtin:md2html-convert\"\n\
             grants = {{ dirs = [{{ path = \"/srv/clones\", write = true }}], hosts = [\"{granted}\"] }}\n\
             with = {{ repodir = \"/srv/clones\", output = \"s3://door43-cdn/site\", \
             endpoint = \"https://s3.us-west-2.amazonaws.com\", addressing = \"{addressing}\" }}\n\
             [[rules]]\nname = \"site\"\non = \"push\"\nsteps = [{{ plugin = \"cdn\" }}]\n"
        )
    };
    let path = dir.path().join("gitauto.toml");
    let load = |text: String| Config::parse(&path, &text).map(|_| ()).map_err(|err| err.to_string());
    let bucket_host = "door43-cdn.s3.us-west-2.amazonaws.com";
    let endpoint_host = "s3.us-west-2.amazonaws.com";
    load(config(bucket_host, "virtual")).unwrap_or_else(|err| panic!("virtual: {err}"));
    load(config(endpoint_host, "path")).unwrap_or_else(|err| panic!("path: {err}"));
    for (granted, addressing, contacted) in
        [(endpoint_host, "virtual", bucket_host), (bucket_host, "path", endpoint_host)]
    {
        let err = load(config(granted, addressing)).unwrap_err();
        let want = format!(
            "`with.endpoint`: with `{addressing}` addressing requests go to {contacted}:443, and host \
             {contacted}:443 is not granted"
        );
        assert!(err.contains(&want), "{addressing}: {err}");
    }
}
