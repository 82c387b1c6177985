//! Every key `gitauto.toml` knows, by place, so that all misspelt keys are reported at
//! once (serde stops at the first), each with the closest valid key. Kept next to
//! `raw.rs`, whose structs are the other half of the same contract; the test below
//! loads a config using every key listed here.

use super::rules::hint;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What may appear at one place of the file.
enum Shape {
    /// A table with these keys.
    Table(&'static [(&'static str, &'static Shape)]),
    /// A table whose keys are names chosen by the user, each value shaped alike.
    Named(&'static Shape),
    /// An array (or an inline value) whose tables are shaped alike.
    Items(&'static Shape),
    /// Anything (plugin settings, scalars).
    Any,
}

static ANY: Shape = Shape::Any;
static ROOT: Shape = Shape::Table(&[
    ("server", &SERVER),
    ("sources", &Shape::Named(&SOURCE)),
    ("plugins", &Shape::Named(&PLUGIN)),
    ("registries", &Shape::Named(&REGISTRY)),
    ("rules", &Shape::Items(&RULE)),
    ("compat", &COMPAT),
    ("retention", &RETENTION),
    ("store", &STORE),
    ("telemetry", &TELEMETRY),
    ("kv", &Shape::Named(&KV)),
]);
static KV: Shape = Shape::Table(&[("max_entries", &ANY), ("max_bytes", &ANY), ("max_value", &ANY)]);
static STORE: Shape = Shape::Table(&[("url", &ANY), ("connections", &ANY)]);
static TELEMETRY: Shape =
    Shape::Table(&[("otlp_endpoint", &ANY), ("headers", &ANY), ("service_name", &ANY), ("timeout", &ANY)]);
static SERVER: Shape = Shape::Table(&[
    ("listen", &ANY),
    ("data_dir", &ANY),
    ("workers", &ANY),
    ("node", &ANY),
    ("max_body", &ANY),
    ("shutdown_grace", &ANY),
    ("max_connections", &ANY),
    ("header_timeout", &ANY),
    ("body_timeout", &ANY),
    ("max_header", &ANY),
    ("api_token", &ANY),
    ("trusted_proxies", &ANY),
    ("public_url", &ANY),
    ("log", &ANY),
    ("log_format", &ANY),
]);
static RETENTION: Shape = Shape::Table(&[("max_age", &ANY), ("keep_jobs", &ANY), ("keep_deliveries", &ANY)]);
static SOURCE: Shape = Shape::Table(&[
    ("forge", &ANY),
    ("secret", &ANY),
    ("secrets", &ANY),
    ("allow_unsigned", &ANY),
    ("legacy_sha1", &ANY),
    ("replay_window", &ANY),
    ("signature_header", &ANY),
    ("delivery_header", &ANY),
    ("event_header", &ANY),
    ("kind", &ANY),
    ("fields", &ANY),
    ("catch_up", &CATCH_UP),
    ("poll", &POLL),
    ("api", &API),
    ("app", &APP),
]);
static APP: Shape = Shape::Table(&[("id", &ANY), ("private_key", &ANY)]);
static CATCH_UP: Shape =
    Shape::Table(&[("api_url", &ANY), ("credential", &ANY), ("repos", &ANY), ("every", &ANY), ("hook_url", &ANY)]);
static API: Shape = Shape::Table(&[("url", &ANY), ("token", &ANY), ("scheme", &ANY)]);
static POLL: Shape = Shape::Table(&[("every", &ANY), ("repos", &ANY), ("clone_url", &ANY)]);
static PLUGIN: Shape = Shape::Table(&[
    ("wasm", &ANY),
    ("sha256", &ANY),
    ("verify", &VERIFY),
    ("grants", &GRANTS),
    ("limits", &LIMITS),
    ("with", &ANY),
]);
static VERIFY: Shape = Shape::Table(&[("key", &ANY), ("signature", &ANY)]);
static REGISTRY: Shape = Shape::Table(&[("username", &ANY), ("password", &ANY)]);
static GRANTS: Shape = Shape::Table(&[
    ("dirs", &Shape::Items(&DIR)),
    ("hosts", &Shape::Items(&HOST)),
    ("commands", &Shape::Items(&COMMAND)),
    ("kv", &ANY),
]);
static COMMAND: Shape = Shape::Table(&[("program", &ANY), ("env", &ANY), ("network", &ANY)]);
static HOST: Shape = Shape::Table(&[
    ("host", &ANY),
    ("credential", &CREDENTIAL),
    ("scheme", &ANY),
    ("header", &ANY),
    ("permissions", &ANY),
]);
/// A table only in its `{ sigv4 = ... }` form; a string credential is not walked.
static CREDENTIAL: Shape = Shape::Table(&[("sigv4", &SIGV4)]);
static SIGV4: Shape = Shape::Table(&[
    ("access_key", &ANY),
    ("secret_key", &ANY),
    ("region", &ANY),
    ("service", &ANY),
    ("session_token", &ANY),
]);
static DIR: Shape = Shape::Table(&[("path", &ANY), ("git", &ANY), ("write", &ANY)]);
static LIMITS: Shape = Shape::Table(&[("memory", &ANY), ("timeout", &ANY)]);
static COMPAT: Shape = Shape::Table(&[("gitreload", &GITRELOAD)]);
static GITRELOAD: Shape = Shape::Table(&[
    ("source", &ANY),
    ("repodir", &ANY),
    ("import", &ANY),
    ("update", &ANY),
    ("import_with", &ANY),
    ("update_with", &ANY),
    ("allow_unsigned_from", &ANY),
]);
static RULE: Shape = Shape::Table(&[
    ("name", &ANY),
    ("on", &ANY),
    ("source", &ANY),
    ("forge", &ANY),
    ("repo", &ANY),
    ("branch", &ANY),
    ("branch_ignore", &ANY),
    ("tag", &ANY),
    ("tag_ignore", &ANY),
    ("paths", &ANY),
    ("paths_ignore", &ANY),
    ("paths_unknown", &ANY),
    ("sender", &ANY),
    ("command", &ANY),
    ("if", &ANY),
    ("steps", &STEPS),
    ("on_success", &STEPS),
    ("on_failure", &STEPS),
    ("on_error", &STEPS),
    ("timeout", &ANY),
    ("coalesce", &ANY),
    ("retries", &ANY),
    ("retry_backoff", &ANY),
    ("quiet_period", &ANY),
    ("retry_failures", &ANY),
    ("run_on", &ANY),
    ("concurrency", &ANY),
    ("priority", &ANY),
    ("cron", &ANY),
    ("timezone", &ANY),
    ("missed", &ANY),
    ("checkout", &ANY),
    ("checkout_depth", &ANY),
    ("report", &ANY),
    ("permission", &ANY),
    ("forks", &ANY),
]);
static STEPS: Shape = Shape::Items(&STEP);
static STEP: Shape = Shape::Table(&[
    ("plugin", &ANY),
    ("name", &ANY),
    ("with", &ANY),
    ("if", &ANY),
    ("continue_on_failure", &ANY),
    ("checkout", &ANY),
    ("checkout_depth", &ANY),
    ("on_success", &STEPS),
    ("on_failure", &STEPS),
    ("on_error", &STEPS),
]);

/// Every key of `text` that has no meaning where it is written, with its position and a
/// message. Empty when the text is not TOML (the parser reports that).
pub(super) fn unknown_keys(text: &str) -> Vec<(Range<usize>, String)> {
    let Ok(document) = DeTable::parse(text) else { return Vec::new() };
    let mut found = Vec::new();
    walk_table(document.get_ref(), &ROOT, &Place::default(), &mut found);
    found.sort_by_key(|(span, _)| span.start);
    found
}

/// Where a table is, written as its TOML header: `[server]`, `[[rules.steps]]`.
#[derive(Default, Clone)]
struct Place {
    path: String,
    in_array: bool,
}

impl Place {
    fn child(&self, key: &str, in_array: bool) -> Self {
        let path = if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) };
        Self { path, in_array }
    }

    fn header(&self) -> String {
        if self.in_array { format!("[[{}]]", self.path) } else { format!("[{}]", self.path) }
    }
}

fn walk(value: &Spanned<DeValue<'_>>, shape: &Shape, place: &Place, found: &mut Vec<(Range<usize>, String)>) {
    match (value.get_ref(), shape) {
        (_, Shape::Any) => {}
        (DeValue::Table(table), Shape::Table(_) | Shape::Named(_)) => walk_table(table, shape, place, found),
        (DeValue::Array(items), Shape::Items(item)) => {
            let place = Place { in_array: true, ..place.clone() };
            for value in items.iter() {
                walk(value, item, &place, found);
            }
        }
        (DeValue::Table(_), Shape::Items(item)) => walk(value, item, place, found),
        // Other type mismatches are serde's to report, with the expected type.
        _ => {}
    }
}

fn walk_table(table: &DeTable<'_>, shape: &Shape, place: &Place, found: &mut Vec<(Range<usize>, String)>) {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        match shape {
            Shape::Named(item) => walk(value, item, &place.child(name, false), found),
            Shape::Table(keys) => match keys.iter().find(|(known, _)| *known == name) {
                Some((_, inner)) => walk(value, inner, &place.child(name, false), found),
                None => {
                    let valid: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                    let hint = hint(name, &valid);
                    let at = if place.path.is_empty() { String::new() } else { format!(" in {}", place.header()) };
                    let message = format!("unknown key `{name}`{at}{hint} (valid keys here: {})", valid.join(", "));
                    found.push((key.span(), message));
                }
            },
            Shape::Items(_) | Shape::Any => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_misspelt_key_is_found_with_its_place() {
        let text = "[server]\nlisen = 1\nworkers = 2\n[sources.gh]\nforge = \"github\"\nsecrt = \"x\"\n\
                    [[rules]]\nname = \"r\"\nbrnch = \"x\"\n[[rules.steps]]\nplugin = \"p\"\nwith = { anything = 1 }\n\
                    [[rules.steps.on_failure]]\nplgin = \"p\"\n";
        let found: Vec<String> = unknown_keys(text).into_iter().map(|(_, message)| message).collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("unknown key `lisen` in [server]; did you mean `listen`?"), "{}", found[0]);
        assert!(found[1].starts_with("unknown key `secrt` in [sources.gh]; did you mean `secret`?"), "{}", found[1]);
        assert!(found[2].starts_with("unknown key `brnch` in [[rules]]; did you mean `branch`?"), "{}", found[2]);
        assert!(
            found[3].starts_with("unknown key `plgin` in [[rules.steps.on_failure]]; did you mean `plugin`?"),
            "{}",
            found[3]
        );
    }

    /// The keys serde accepts for a raw struct, from its "unknown field" message.
    fn serde_keys<T: serde::de::DeserializeOwned>() -> Vec<String> {
        let err = toml::from_str::<T>("zzz_not_a_key = 1").err().expect("an unknown key is refused");
        let message = err.message().to_owned();
        // "expected one of `a`, `b`", "expected `a` or `b`", "expected `a`".
        let expected = message.split_once(", expected ").map_or("", |(_, rest)| rest);
        expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    }

    fn shape_keys(shape: &Shape) -> Vec<String> {
        match shape {
            Shape::Table(keys) => keys.iter().map(|(k, _)| (*k).to_owned()).collect(),
            _ => panic!("not a table"),
        }
    }

    #[test]
    fn the_key_lists_match_what_the_config_structs_accept() {
        use super::super::raw;
        let pairs: Vec<(&str, Vec<String>, &Shape)> = vec![
            ("root", serde_keys::<raw::RawConfig>(), &ROOT),
            ("server", serde_keys::<raw::RawServer>(), &SERVER),
            ("retention", serde_keys::<raw::RawRetention>(), &RETENTION),
            ("store", serde_keys::<raw::RawStore>(), &STORE),
            ("telemetry", serde_keys::<raw::RawTelemetry>(), &TELEMETRY),
            ("kv", serde_keys::<raw::RawKv>(), &KV),
            ("source", serde_keys::<raw::RawSource>(), &SOURCE),
            ("catch_up", serde_keys::<raw::RawCatchUp>(), &CATCH_UP),
            ("poll", serde_keys::<raw::RawPoll>(), &POLL),
            ("api", serde_keys::<raw::RawApi>(), &API),
            ("app", serde_keys::<raw::RawApp>(), &APP),
            ("plugin", serde_keys::<raw::RawPlugin>(), &PLUGIN),
            ("verify", serde_keys::<raw::RawVerify>(), &VERIFY),
            ("registry", serde_keys::<raw::RawRegistry>(), &REGISTRY),
            ("grants", serde_keys::<raw::RawGrants>(), &GRANTS),
            ("dir", serde_keys::<raw::RawDirTable>(), &DIR),
            ("host", serde_keys::<raw::RawHostTable>(), &HOST),
            ("credential", serde_keys::<raw::RawCredentialTable>(), &CREDENTIAL),
            ("sigv4", serde_keys::<raw::RawSigV4>(), &SIGV4),
            ("limits", serde_keys::<raw::RawLimits>(), &LIMITS),
            ("compat", serde_keys::<raw::RawCompat>(), &COMPAT),
            ("gitreload", serde_keys::<raw::RawGitReload>(), &GITRELOAD),
            ("rule", serde_keys::<raw::RawRule>(), &RULE),
            ("step", serde_keys::<raw::RawStep>(), &STEP),
        ];
        for (name, mut from_serde, shape) in pairs {
            let mut listed = shape_keys(shape);
            from_serde.sort();
            listed.sort();
            assert!(!from_serde.is_empty(), "{name}: no keys from serde");
            assert_eq!(listed, from_serde, "{name}");
        }
    }
}
