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
