//! The config's fingerprint: a short digest of what every node of a cluster must agree
//! on (sources, plugins and their components, rules, compat endpoints, retention), so
//! that nodes sharing a store with different configs can be shown. It leaves out what
//! is each node's own: `[server]` (name, address, data directory, workers, API token),
//! `[store]` (one database, perhaps reached by another host name or user),
//! `[registries]` (each node's login; what it pulls is pinned), and where a plugin's
//! component lies (its content counts instead).
//!
//! Comments, whitespace, key order and how a value is spelt in TOML do not count: the
//! text is parsed and hashed in a canonical form. A string with `${VAR}`s counts by the
//! SHA-256 of its expanded value, and each secret the config resolved (from the
//! environment or a file) by its SHA-256, so neither the secret nor the canonical text is
//! ever kept. The whole digest is keyed by the store's random salt (`Queue::fingerprint_salt`):
//! the fingerprint is shown where no token may guard it (`/metrics`, `/api/nodes`), and
//! unkeyed it would let anyone who knows the rest of the config test guessed secrets
//! against it offline; the nodes of one store share the salt, so theirs still agree.

use super::{Config, Secret};
use crate::grant::Credential;
use sha2::{Digest, Sha256};

/// How many hex characters of the digest are shown (48 bits: enough to tell a handful
/// of configs apart, short enough for a table column).
pub const SHOWN: usize = 12;

/// The fingerprint of `config`, validated from `text`, keyed by the store's `salt`;
/// `wasm` gives each plugin's component digest (SHA-256 of its bytes) by name. `None`
/// when `text` is not TOML (never for a text `config` was validated from).
pub fn fingerprint(
    text: &str,
    config: &Config,
    salt: &[u8; 32],
    wasm: impl Fn(&str) -> Option<[u8; 32]>,
) -> Option<String> {
    let mut table: toml::Table = text.parse().ok()?;
    // Each node's own: see the module's doc.
    table.remove("server");
    table.remove("store");
    // Each node logs in to registries as it likes; what it pulls is pinned by digest.
    table.remove("registries");
    if let Some(toml::Value::Table(plugins)) = table.get_mut("plugins") {
        for (_, plugin) in plugins.iter_mut() {
            if let toml::Value::Table(plugin) = plugin {
                plugin.remove("wasm");
            }
        }
    }
    let mut hash = Sha256::new();
    hash.update(b"gitauto config fingerprint 2\n");
    // First, so that nothing after it can be hashed without knowing it.
    hash.update(salt);
    canonical(&mut hash, &toml::Value::Table(table));
    let mut secret = |what: &str, value: &Secret| {
        hash.update(format!("\nsecret {what} {}", hex::encode(Sha256::digest(value.expose()))));
    };
    for (name, source) in &config.sources {
        for value in &source.secrets {
            secret(&format!("sources.{name}.secret"), value);
        }
        if let Some(token) = source.api.as_ref().and_then(|api| api.token.as_ref()) {
            secret(&format!("sources.{name}.api.token"), token);
        }
        if let Some(catch_up) = &source.catch_up {
            secret(&format!("sources.{name}.catch_up.credential"), &catch_up.credential);
        }
    }
    for (name, plugin) in &config.plugins {
        for credential in &plugin.grant.credentials {
            let host = credential.pattern.to_string();
            match &credential.kind {
                Credential::Header { name: header, value } => {
                    secret(&format!("plugins.{name}.credential.{host}.{header}"), value)
                }
                Credential::SigV4(key) => {
                    secret(&format!("plugins.{name}.credential.{host}.access_key"), &key.access_key);
                    secret(&format!("plugins.{name}.credential.{host}.secret_key"), &key.secret_key);
                    if let Some(token) = &key.session_token {
                        secret(&format!("plugins.{name}.credential.{host}.session_token"), token);
                    }
                }
                Credential::GitHubApp { .. } => {}
            }
        }
    }
    for name in config.plugins.keys() {
        let digest = wasm(name).map_or_else(|| "unknown".to_owned(), hex::encode);
        hash.update(format!("\nwasm {name} {digest}"));
    }
    let mut shown = hex::encode(hash.finalize());
    shown.truncate(SHOWN);
    Some(shown)
}

/// Feeds `value` to `hash` in one spelling: tables by sorted key, every string and key
/// length-prefixed (so no two values feed the same bytes), and strings with `${VAR}`s
/// by the digest of their expanded value.
fn canonical(hash: &mut Sha256, value: &toml::Value) {
    let string = |hash: &mut Sha256, text: &str| {
        hash.update(format!("{}:", text.len()));
        hash.update(text);
    };
    match value {
        toml::Value::String(text) => match super::env::expand_env(text) {
            Ok(expanded) if expanded != *text => {
                hash.update(b"e");
                string(hash, &hex::encode(Sha256::digest(expanded)));
            }
            _ => {
                hash.update(b"s");
                string(hash, text);
            }
        },
        toml::Value::Integer(n) => hash.update(format!("i{n};")),
        toml::Value::Float(x) => hash.update(format!("f{x:?};")),
        toml::Value::Boolean(b) => hash.update(format!("b{b};")),
        toml::Value::Datetime(at) => {
            hash.update(b"d");
            string(hash, &at.to_string());
        }
        toml::Value::Array(items) => {
            hash.update(format!("a{}[", items.len()));
            for item in items {
                canonical(hash, item);
            }
            hash.update(b"]");
        }
        toml::Value::Table(table) => {
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            hash.update(format!("t{}{{", keys.len()));
            for key in keys {
                string(hash, key);
                canonical(hash, &table[key.as_str()]);
            }
            hash.update(b"}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[server]
node = "a"
listen = "127.0.0.1:8081"
workers = 2

[store]
url = "postgres://a@db-a/gitauto"

[sources.github]
forge = "github"
secret = "file:hook-secret"

[plugins.probe]
wasm = "probe.wasm"
grants = { dirs = [{ path = "/srv/repos", git = true }] }

[[rules]]
name = "update"
on = "push"
repo = "acme/*"
steps = [{ plugin = "probe", with = { repodir = "/srv/repos", depth = 1 } }]
"#;

    const EXTRA_RULE: &str = r#"
[[rules]]
name = "docs"
on = "push"
repo = "acme/docs"
steps = [{ plugin = "probe" }]
"#;

    const SALT: [u8; 32] = [7; 32];

    /// The fingerprint of `text` in a directory whose `hook-secret` holds `secret`, with
    /// `wasm` as the probe's component bytes, keyed by [`SALT`].
    fn of(text: &str, secret: &str, wasm: &[u8]) -> String {
        salted(text, secret, wasm, &SALT)
    }

    /// [`of`], keyed by `salt`.
    fn salted(text: &str, secret: &str, wasm: &[u8], salt: &[u8; 32]) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook-secret"), secret).unwrap();
        // The files' bytes do not count (`wasm` gives the digests), only that they exist.
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        for file in ["probe.wasm", "elsewhere/probe.wasm"] {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        let path = dir.path().join("gitauto.toml");
        let config = Config::parse(&path, text).unwrap_or_else(|err| panic!("{err}"));
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        let fingerprint = fingerprint(text, &config, salt, |name| (name == "probe").then_some(digest)).unwrap();
        assert_eq!(fingerprint.len(), SHOWN);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()), "{fingerprint}");
        fingerprint
    }

    #[test]
    fn each_nodes_own_settings_comments_order_and_spelling_do_not_count() {
        let base = of(BASE, "s3cret", b"wasm");
        let other_node = BASE
            .replace("node = \"a\"", "node = \"b\"\napi_token = \"t0k3n\"")
            .replace("8081", "8082")
            .replace("workers = 2", "workers = 0")
            .replace("postgres://a@db-a/gitauto", "postgres://b@db-b:5433/gitauto")
            .replace("wasm = \"probe.wasm\"", "wasm = \"elsewhere/probe.wasm\"");
        // Keys in another order, another spelling of the same values, comments and blank lines.
        let respelt = r#"
# the cluster's config
[sources.github]
secret = 'file:hook-secret'   # rotated in March
forge = "github"

[plugins.probe]
grants.dirs = [ { git = true, path = "/srv/repos" } ]
wasm = "probe.wasm"

[[rules]]
steps = [
  { with = { depth = 1, repodir = "/srv/repos" }, plugin = "probe" },
]
repo = "acme/*"
on = "push"
name = "update"
"#;
        let no_server = BASE.split("[sources.github]").nth(1).map(|rest| format!("[sources.github]{rest}")).unwrap();
        for (what, text) in [("another node", other_node.as_str()), ("respelt", respelt), ("no [server]", &no_server)] {
            assert_eq!(of(text, "s3cret", b"wasm"), base, "{what}");
        }
        assert_eq!(of(BASE, "s3cret", b"wasm"), base, "the same config twice");
    }

    #[test]
    fn a_rule_a_secret_or_a_component_changes_it() {
        let base = of(BASE, "s3cret", b"wasm");
        let changes = [
            ("an extra rule", of(&format!("{BASE}{EXTRA_RULE}"), "s3cret", b"wasm")),
            ("a step setting", of(&BASE.replace("depth = 1", "depth = 2"), "s3cret", b"wasm")),
            ("the secret's value", of(BASE, "other", b"wasm")),
            ("the component's bytes", of(BASE, "s3cret", b"wasm2")),
        ];
        for (what, changed) in changes {
            assert_ne!(changed, base, "{what}");
        }
        // Rules are evaluated in file order, so their order counts.
        let first = BASE.replace("[[rules]]", &format!("{}\n\n[[rules]]", EXTRA_RULE.trim()));
        assert_ne!(of(&first, "s3cret", b"wasm"), of(&format!("{BASE}{EXTRA_RULE}"), "s3cret", b"wasm"));
    }

    #[test]
    fn a_string_with_a_variable_counts_by_its_value_and_never_holds_it() {
        let mut plain = Sha256::new();
        let mut variable = Sha256::new();
        // `PATH` is set wherever tests run; its value is what counts.
        let path = std::env::var("PATH").unwrap();
        canonical(&mut plain, &toml::Value::String(path.clone()));
        canonical(&mut variable, &toml::Value::String("${PATH}".into()));
        assert_ne!(plain.finalize(), variable.clone().finalize(), "the value is hashed, not fed as it is");
        let mut again = Sha256::new();
        again.update(b"e");
        let digest = hex::encode(Sha256::digest(&path));
        again.update(format!("{}:{digest}", digest.len()));
        assert_eq!(variable.finalize(), again.finalize());
        let empty = Config::parse(Path::new("x.toml"), "").unwrap();
        assert!(fingerprint("not [toml", &empty, &SALT, |_| None).is_none());
    }

    #[test]
    fn the_same_config_agrees_under_one_salt_and_differs_under_another() {
        let base = of(BASE, "s3cret", b"wasm");
        assert_eq!(salted(BASE, "s3cret", b"wasm", &SALT), base, "the same config and salt");
        let mut other = SALT;
        other[31] ^= 1;
        assert_ne!(salted(BASE, "s3cret", b"wasm", &other), base, "another salt");
        // Under one salt, a secret's change still shows (however the salt is).
        for salt in [SALT, other] {
            let (before, after) = (salted(BASE, "s3cret", b"wasm", &salt), salted(BASE, "s3cret!", b"wasm", &salt));
            assert_ne!(before, after, "a changed secret under {salt:?}");
        }
    }
}
