//! Fuzz targets for everything that reads outside input: every forge's parser, the
//! signature check, config loading, globs and templates. Each target is a proptest whose
//! inputs mix arbitrary bytes with mutations of real fixtures, so that most inputs get
//! past the first byte of the parser.
//!
//! `GITAUTO_FUZZ_CASES` sets the inputs per target (default 1,000, so the suite stays
//! fast). The full run, with the figures in `docs/performance.md`:
//!
//! ```text
//! GITAUTO_FUZZ_CASES=1000000 cargo test --release -p gitauto --test fuzz -- --nocapture
//! ```
//!
//! A failing input is shrunk and saved under `host/tests/fuzz.proptest-regressions`,
//! which is committed so that every later run tries it first.

#![allow(clippy::disallowed_methods, reason = "fuzz targets are plain blocking tests")]

use axum::http::{HeaderName, HeaderValue};
use gitauto::config::{Config, Secret};
use gitauto::event::{Event, names};
use gitauto::forge::Headers;
use gitauto::forge::{self, Dialect, Incoming, Options, Origin, Outgoing};
use gitauto::glob::{Filter, Glob};
use gitauto::template;
use proptest::prelude::*;
use proptest::test_runner::{Config as Runner, FileFailurePersistence};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

fn runner() -> Runner {
    let cases = std::env::var("GITAUTO_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    Runner {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        max_shrink_iters: 10_000,
        ..Runner::default()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------------
// Forge parsers

/// A configured dialect of `forge`, the event names it sends, and its fixtures with the
/// event each is sent as.
struct Target {
    dialect: Arc<dyn Dialect>,
    events: &'static [&'static str],
    fixtures: Vec<(&'static str, Vec<u8>)>,
}

fn target(forge: &str) -> Target {
    let mut options = Options::default();
    let (dir, events): (&str, &'static [&'static str]) = match forge {
        "github" => ("github", &["push", "create", "delete", "pull_request", "release", "ping", "issues"]),
        "gitlab" => ("gitlab", &["Push Hook", "Tag Push Hook", "Merge Request Hook", "System Hook", "Note Hook"]),
        "gitea" | "forgejo" => (forge, &["push", "create", "delete", "pull_request", "release", "issues"]),
        "gogs" => ("gogs", &["push", "create", "delete", "pull_request", "release", "issues"]),
        "bitbucket" => (
            "bitbucket",
            &["repo:push", "pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled", "issue:created"],
        ),
        "generic" => {
            options.signature_header = Some("X-Signature".into());
            options.delivery_header = Some("X-Delivery".into());
            options.event_header = Some("X-Event".into());
            options.fields = Some(
                [
                    ("repository", "/project/slug"),
                    ("ref", "/change/ref"),
                    ("before", "/change/from"),
                    ("after", "/change/to"),
                    ("clone_url", "/project/git"),
                    ("sender", "/by"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            );
            ("generic", &["deploy", "push", ""])
        }
        other => panic!("no fuzz target for {other}"),
    };
    let dialect = forge::configure(forge, &mut options).unwrap();
    let fixtures_dir = repo_root().join("tests/fixtures/payloads").join(dir);
    let mut fixtures: Vec<(&'static str, Vec<u8>)> = std::fs::read_dir(&fixtures_dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (fixture_event(events, &name), std::fs::read(&path).unwrap())
        })
        .collect();
    fixtures.sort();
    Target { dialect, events, fixtures }
}

/// The event a fixture is sent as, from its file name (`pull_request-opened.json`,
/// `merge_request-open.json` → `Merge Request Hook`, `repo-push.json` → `repo:push`).
fn fixture_event(events: &'static [&'static str], file: &str) -> &'static str {
    let key = |text: &str| text.to_ascii_lowercase().replace([' ', ':', '-', '_'], "");
    let stem = key(file.trim_end_matches(".json"));
    events
        .iter()
        .filter(|event| !event.is_empty())
        .map(|event| (event, key(event).replace("hook", "")))
        .filter(|(_, name)| stem.starts_with(name.as_str()) || name.starts_with(stem.as_str()))
        .max_by_key(|(_, name)| name.len())
        .map_or(events[0], |(event, _)| event)
}

/// Edits that keep most of a payload's structure while breaking some of it.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace one byte.
    Set(usize, u8),
    /// Remove a range.
    Cut(usize, usize),
    /// Insert a token that JSON parsers find interesting.
    Insert(usize, &'static str),
    /// Repeat a range where it is.
    Repeat(usize, usize),
    /// Replace one value of the JSON document (chosen by index) with another, or remove it.
    Json(usize, Option<serde_json::Value>),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"..\"",
    "\"../../etc\"",
    "\"refs/heads/../x\"",
    "[[[[[[[[[[[[",
    "\"\\\\\"",
    "{\"a\":",
    "\u{feff}",
    "\u{202e}",
    "%FF",
    "&payload=",
    "\0",
];

/// JSON values that parsers must cope with wherever they appear.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
        proptest::sample::select(TOKENS).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{}])),
        Just(json!({"name": "..", "login": "-x", "id": "x"})),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), proptest::option::weighted(0.9, json_value())).prop_map(|(at, v)| Mutation::Json(at, v)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        1 => (any::<usize>(), 0usize..64).prop_map(|(at, n)| Mutation::Cut(at, n)),
        1 => (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(at, t)| Mutation::Insert(at, t)),
        1 => (any::<usize>(), 0usize..64).prop_map(|(at, n)| Mutation::Repeat(at, n)),
    ]
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = body.len().max(1);
        match *mutation {
            Mutation::Set(at, byte) if !body.is_empty() => body[at % len] = byte,
            Mutation::Set(..) => body.push(0),
            Mutation::Cut(at, n) => {
                let start = at % len;
                let end = (start + n).min(body.len());
                body.drain(start.min(end)..end);
            }
            Mutation::Insert(at, token) => {
                let at = at % (body.len() + 1);
                body.splice(at..at, token.bytes());
            }
            Mutation::Repeat(at, n) => {
                let start = at % len;
                let end = (start + n).min(body.len());
                let copy = body.get(start..end).unwrap_or_default().to_vec();
                body.splice(end..end, copy);
            }
            Mutation::Json(at, ref value) => {
                if let Ok(mut document) = serde_json::from_slice::<serde_json::Value>(&body) {
                    edit_json(&mut document, at, value.clone());
                    body = serde_json::to_vec(&document).unwrap();
                }
            }
        }
    }
    body
}

/// Replaces (or, with `None`, removes) the `at`-th value of `document`, counting in
/// depth-first order, modulo the number of values.
fn edit_json(document: &mut serde_json::Value, at: usize, value: Option<serde_json::Value>) {
    use serde_json::Value;
    fn count(value: &Value) -> usize {
        1 + children(value).map(count).sum::<usize>()
    }
    fn children(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
        match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => Box::new(std::iter::empty()),
        }
    }
    let mut at = at % count(document);
    if at == 0 {
        *document = value.unwrap_or(Value::Null);
        return;
    }
    let mut node = document;
    loop {
        // `at` counts from `node`, which is not the target: find the child holding it.
        at -= 1;
        let mut child = 0;
        for size in children(node).map(count) {
            if at < size {
                break;
            }
            at -= size;
            child += 1;
        }
        if at > 0 {
            node = match node {
                Value::Array(items) => &mut items[child],
                Value::Object(map) => map.values_mut().nth(child).unwrap(),
                _ => unreachable!("only containers have values inside"),
            };
            continue;
        }
        match (value, node) {
            (Some(value), Value::Array(items)) => items[child] = value,
            (Some(value), Value::Object(map)) => *map.values_mut().nth(child).unwrap() = value,
            (None, Value::Array(items)) => {
                items.remove(child);
            }
            (None, Value::Object(map)) => {
                let key = map.keys().nth(child).cloned().unwrap();
                map.remove(&key);
            }
            _ => {}
        }
        return;
    }
}

/// A body for `target`: arbitrary bytes, or a fixture with a few mutations.
fn body(fixtures: usize) -> impl Strategy<Value = (Option<usize>, Vec<u8>, Vec<Mutation>)> {
    prop_oneof![
        1 => any::<Vec<u8>>().prop_map(|bytes| (None, bytes, Vec::new())),
        6 => (0..fixtures, proptest::collection::vec(mutation(), 0..4))
            .prop_map(|(i, mutations)| (Some(i), Vec::new(), mutations)),
    ]
}

/// The headers an HTTP server could hand on: pairs that are valid HTTP, as plain data.
fn headers(pairs: Vec<(String, String)>) -> Headers {
    let mut map = Headers::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            map.append(name.as_str(), value.as_bytes());
        }
    }
    map
}

/// What must hold for whatever a parser returns: no panic (the harness sees that), and
/// every event it makes survives the queue (stored as JSON, read back equal) and the
/// name check (which may refuse it, but must not panic).
/// Returns how many events it made.
fn check_parse(target: &Target, event: &str, body: &[u8], form: bool) -> usize {
    let mut pairs = target.dialect.sign(&Outgoing {
        event,
        body,
        secret: Some(&Secret::new("s")),
        delivery: "d",
        now: SystemTime::now(),
    });
    if form {
        for (name, value) in &mut pairs {
            if name.eq_ignore_ascii_case("content-type") {
                *value = "application/x-www-form-urlencoded".into();
            }
        }
    }
    let at = Origin { source: "fuzz", delivery: "d" };
    let Ok(Incoming::Events(events)) = target.dialect.parse(&headers(pairs), body, &at) else { return 0 };
    for event in &events {
        let stored = serde_json::to_string(event).expect("an event serialises");
        let read: Event = serde_json::from_str(&stored).expect("a stored event reads back");
        assert_eq!(&read, event, "the queue gives back what it stored");
        let _ = names::check(event);
    }
    events.len()
}

macro_rules! parser_target {
    ($name:ident, $forge:literal) => {
        #[test]
        fn $name() {
            let target = target($forge);
            let count = target.fixtures.len();
            let started = std::time::Instant::now();
            let parsed = AtomicUsize::new(0);
            let other_event = proptest::option::weighted(0.1, 0..target.events.len());
            proptest!(runner(), |(input in body(count), event in other_event, form in proptest::bool::weighted(0.2))| {
                let (fixture, bytes, mutations) = input;
                let (sent_as, body) = match fixture {
                    Some(i) => (target.fixtures[i].0, mutate(target.fixtures[i].1.clone(), &mutations)),
                    None => (target.events[0], bytes),
                };
                let sent_as = event.map_or(sent_as, |event| target.events[event]);
                if check_parse(&target, sent_as, &body, form) > 0 {
                    parsed.fetch_add(1, Ordering::Relaxed);
                }
            });
            report(concat!($forge, " parser"), started, &format!("{} made events", parsed.into_inner()));
        }
    };
}

parser_target!(github_parser, "github");
parser_target!(gitlab_parser, "gitlab");
parser_target!(gitea_parser, "gitea");
parser_target!(forgejo_parser, "forgejo");
parser_target!(gogs_parser, "gogs");
parser_target!(bitbucket_parser, "bitbucket");
parser_target!(generic_parser, "generic");

/// Prints what a target did: inputs, time, and how many got through (so a target whose
/// inputs all bounce off the first check shows it).
fn report(what: &str, started: std::time::Instant, through: &str) {
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("fuzz: {what}: {} inputs in {seconds:.1} s, {through}, no failure", runner().cases);
}

// ---------------------------------------------------------------------------------
// Signatures

const FORGES: &[&str] = &["github", "gitlab", "gitea", "forgejo", "gogs", "bitbucket", "generic"];

/// Every forge, every input: a correct signature verifies; the same headers over a
/// different body, or with another secret, never do; arbitrary header values never panic.
#[test]
fn signature_check() {
    let targets: Vec<Target> = FORGES.iter().map(|forge| target(forge)).collect();
    let started = std::time::Instant::now();
    let secret = prop_oneof![
        "[ -~]{1,40}",
        // GitLab's Standard Webhooks signing keys.
        "[A-Za-z0-9+/]{8,40}".prop_map(|key| format!("whsec_{key}")),
    ];
    proptest!(runner(), |(
        forge in 0..FORGES.len(),
        body in any::<Vec<u8>>(),
        secret in secret,
        other in "[ -~]{1,40}",
        flip in any::<(usize, u8)>(),
        noise in proptest::collection::vec(("[a-zA-Z-]{1,24}", "[ -~]{0,120}"), 0..4),
        replace in any::<(usize, String)>(),
    )| {
        let target = &targets[forge];
        let dialect = &target.dialect;
        let now = SystemTime::now();
        let outgoing = |secret: &Secret, body: &[u8]| {
            dialect.sign(&Outgoing { event: target.events[0], body, secret: Some(secret), delivery: "d-1", now })
        };
        let secrets = [Secret::new(secret.clone())];
        let signed = outgoing(&secrets[0], &body);
        prop_assert!(dialect.verify(&headers(signed.clone()), &body, &secrets, now).is_ok(), "a correct signature verifies");

        // GitLab's plain tokens do not sign the body; every other scheme does.
        let signs_body = FORGES[forge] != "gitlab" || secret.starts_with("whsec_");
        if signs_body {
            let mut tampered = body.clone();
            match tampered.len() {
                0 => tampered.push(flip.1),
                len => tampered[flip.0 % len] ^= flip.1.max(1),
            }
            prop_assert!(dialect.verify(&headers(signed.clone()), &tampered, &secrets, now).is_err(), "a changed body fails");
        }
        if other != secret {
            let wrong = outgoing(&Secret::new(other), &body);
            prop_assert!(dialect.verify(&headers(wrong), &body, &secrets, now).is_err(), "another secret fails");
        }
        // Any header replaced by garbage, and random extra headers: never a panic.
        let mut garbled = signed;
        if !garbled.is_empty() {
            let at = replace.0 % garbled.len();
            garbled[at].1 = replace.1;
        }
        garbled.extend(noise);
        let _ = dialect.verify(&headers(garbled), &body, &secrets, now);
    });
    report("signature check (all forges)", started, "every correct signature verified");
}

// ---------------------------------------------------------------------------------
// Config loading

/// Every config in the repository: the default, the examples and the invalid fixtures.
fn config_seeds() -> Vec<String> {
    let root = repo_root();
    let mut paths = vec![root.join("gitauto.toml")];
    for dir in ["examples/configs", "tests/fixtures/configs/invalid"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths.iter().map(|path| std::fs::read_to_string(path).unwrap()).collect()
}

const CONFIG_TOKENS: &[&str] = &[
    "\"\"",
    "\"x\"",
    "0",
    "-1",
    "1e400",
    "99999999999999999999",
    "true",
    "[]",
    "{}",
    "[[rules]]",
    "[server]",
    "[sources.x]",
    "[plugins.p]",
    "\"1s\"",
    "\"0s\"",
    "\"-5m\"",
    "\"1KiB\"",
    "\"99999999TiB\"",
    "\"**\"",
    "\"!**\"",
    "\"[\"",
    "\"{{ event.repo }}\"",
    "\"{% for %}\"",
    "\"{{\"",
    "\"${NOPE}\"",
    "\"builtin:nope\"",
    "\"../../x\"",
    "\"/\"",
    "=",
    "\n",
    "'''",
    "\"\"\"",
    "#",
    "\u{0}",
    "é",
];

#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    RepeatLine(usize),
    SwapLines(usize, usize),
    /// Replace the value after the `=` on a line.
    Value(usize, &'static str),
    Insert(usize, &'static str),
    Byte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = || proptest::sample::select(CONFIG_TOKENS);
    prop_oneof![
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::RepeatLine),
        any::<(usize, usize)>().prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), token()).prop_map(|(at, t)| Edit::Value(at, t)),
        (any::<usize>(), token()).prop_map(|(at, t)| Edit::Insert(at, t)),
        any::<(usize, u8)>().prop_map(|(at, b)| Edit::Byte(at, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match edit {
            Edit::DropLine(at) => {
                lines.remove(at % n);
            }
            Edit::RepeatLine(at) => {
                let line = lines[at % n].clone();
                lines.insert(at % n, line);
            }
            Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
            Edit::Value(at, token) => {
                let line = &mut lines[at % n];
                if let Some(eq) = line.find('=') {
                    line.replace_range(eq + 1.., &format!(" {token}"));
                }
            }
            Edit::Insert(at, token) => {
                let line = &mut lines[at % n];
                let mut cut = at % (line.len() + 1);
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.insert_str(cut, token);
            }
            Edit::Byte(at, byte) => {
                let line = &mut lines[at % n];
                let mut cut = at % (line.len() + 1);
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.insert(cut, char::from(*byte));
            }
        }
    }
    lines.join("\n")
}

/// Mutated configs never panic the loader, and every problem it reports names the file.
#[test]
fn config_loading() {
    let seeds = config_seeds();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gitauto.toml");
    let shown = path.display().to_string();
    let started = std::time::Instant::now();
    let loaded = AtomicUsize::new(0);
    proptest!(runner(), |(seed in 0..seeds.len(), edits in proptest::collection::vec(edit(), 0..6))| {
        let text = apply(&seeds[seed], &edits);
        let parsed = Config::parse(&path, &text);
        if parsed.is_ok() {
            loaded.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(err) = parsed {
            prop_assert!(!err.problems().is_empty(), "a refusal says why");
            for problem in err.problems() {
                prop_assert!(problem.starts_with(&shown), "every problem names the file: {problem}");
            }
        }
    });
    report("config loading", started, &format!("{} loaded", loaded.into_inner()));
}

// ---------------------------------------------------------------------------------
// Globs

/// A glob built from parts, so that a reference matcher can judge it without parsing.
#[derive(Debug, Clone)]
enum Part {
    Star,
    DoubleStar,
    Char(char, Quant),
    Class(Vec<(char, char)>, Quant),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quant {
    One,
    Optional,
    OneOrMore,
}

const ALPHABET: &[char] = &['a', 'b', '/', '.', '-', 'é', '*', '?', '+', '[', ']', '\\', '!'];
/// Characters a generated class holds: inside `[...]`, `]` ends it and `-` makes a range.
const CLASS_ALPHABET: &[char] = &['a', 'b', 'c', '/', '.', 'é', '*', '?', '+', '[', '\\', '!'];

fn part() -> impl Strategy<Value = Part> {
    let quant = prop_oneof![4 => Just(Quant::One), 1 => Just(Quant::Optional), 1 => Just(Quant::OneOrMore)];
    let c = || proptest::sample::select(ALPHABET);
    let class = || proptest::sample::select(CLASS_ALPHABET);
    prop_oneof![
        1 => Just(Part::Star),
        1 => Just(Part::DoubleStar),
        5 => (c(), quant.clone()).prop_map(|(c, q)| Part::Char(c, q)),
        1 => (proptest::collection::vec((class(), class()), 1..3), quant).prop_map(|(ranges, q)| {
            let ranges = ranges.into_iter().map(|(a, b)| if a <= b { (a, b) } else { (b, a) }).collect();
            Part::Class(ranges, q)
        }),
    ]
}

/// The pattern text for `parts`, escaping what the syntax would read.
fn pattern_text(parts: &[Part]) -> String {
    let literal = |c: char| if "*?+[]\\!".contains(c) { format!("\\{c}") } else { c.to_string() };
    let quant = |q: Quant| match q {
        Quant::One => "",
        Quant::Optional => "?",
        Quant::OneOrMore => "+",
    };
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Star => text.push('*'),
            Part::DoubleStar => text.push_str("**"),
            Part::Char(c, q) => {
                text.push_str(&literal(*c));
                text.push_str(quant(*q));
            }
            Part::Class(ranges, q) => {
                text.push('[');
                for (lo, hi) in ranges {
                    if lo == hi {
                        text.push(*lo);
                    } else {
                        text.push(*lo);
                        text.push('-');
                        text.push(*hi);
                    }
                }
                text.push(']');
                text.push_str(quant(*q));
            }
        }
    }
    text
}

/// A backtracking matcher over the parts: slow, obviously right, and independent of the
/// real one's parser and automaton.
fn reference(parts: &[Part], candidate: &[char]) -> bool {
    let Some((first, rest)) = parts.split_first() else { return candidate.is_empty() };
    let one = |c: char| match first {
        Part::Char(want, _) => *want == c,
        Part::Class(ranges, _) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)),
        _ => unreachable!(),
    };
    match first {
        Part::Star | Part::DoubleStar => (0..=candidate.len()).any(|taken| {
            let crosses = candidate[..taken].contains(&'/');
            (matches!(first, Part::DoubleStar) || !crosses) && reference(rest, &candidate[taken..])
        }),
        Part::Char(_, q) | Part::Class(_, q) => {
            let optional = *q == Quant::Optional && reference(rest, candidate);
            optional
                || match candidate.split_first() {
                    Some((&c, tail)) if one(c) => {
                        reference(rest, tail) || (*q == Quant::OneOrMore && reference(parts, tail))
                    }
                    _ => false,
                }
        }
    }
}

fn glob_parts() -> impl Strategy<Value = Vec<Part>> {
    proptest::collection::vec(part(), 0..8).prop_map(|parts| {
        // Two adjacent stars would be written `**`; merge them the way the syntax reads them.
        let mut out: Vec<Part> = Vec::new();
        for part in parts {
            match (out.last(), &part) {
                (Some(Part::Star), Part::Star) => *out.last_mut().unwrap() = Part::DoubleStar,
                (Some(Part::Star | Part::DoubleStar), Part::Star | Part::DoubleStar) => {
                    *out.last_mut().unwrap() = Part::DoubleStar
                }
                _ => out.push(part),
            }
        }
        out
    })
}

/// Generated patterns agree with the reference matcher on generated candidates;
/// arbitrary pattern text and filter lists never panic.
#[test]
fn globs() {
    let started = std::time::Instant::now();
    let candidate = proptest::collection::vec(proptest::sample::select(ALPHABET), 0..12);
    let matched = AtomicUsize::new(0);
    proptest!(runner(), |(
        parts in glob_parts(),
        candidate in candidate,
        text in "\\PC{0,24}",
        list in proptest::collection::vec("!?[ab/*?+\\[\\]\\\\-]{0,8}", 0..4),
    )| {
        let pattern = pattern_text(&parts);
        let glob = Glob::new(&pattern).map_err(|err| TestCaseError::fail(format!("{pattern}: {err}")))?;
        let candidate_text: String = candidate.iter().collect();
        let matches = glob.matches(&candidate_text);
        if matches {
            matched.fetch_add(1, Ordering::Relaxed);
        }
        prop_assert_eq!(
            matches,
            reference(&parts, &candidate),
            "pattern {} on {:?}", pattern, candidate_text
        );
        if let Ok(glob) = Glob::new(&text) {
            let _ = glob.matches(&candidate_text);
        }
        if let Ok(filter) = Filter::new(&list) {
            let _ = filter.matches(&candidate_text);
        }
    });
    report("globs", started, &format!("{} matched, agreeing with the reference", matched.into_inner()));
}

// ---------------------------------------------------------------------------------
// Templates

const TEMPLATE_PIECES: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " ",
    "event",
    ".",
    "repository",
    "name",
    "payload",
    "commits",
    "[0]",
    "|",
    "upper",
    "tojson",
    "length",
    "default(\"x\")",
    "join(\",\")",
    "if",
    "else",
    "endif",
    "for c in event.commits",
    "endfor",
    "set x = 1",
    "x",
    "~",
    "+",
    "*",
    "**",
    "/",
    "//",
    "%",
    "(",
    ")",
    "[",
    "]",
    "\"",
    "'",
    "1",
    "-1",
    "99999999999999999999",
    "1e308",
    "none",
    "true",
    "range(100000)",
    "loop.index",
    "break",
    "continue",
    "not",
    "and",
    "or",
    "==",
    "in",
    "is defined",
    "steps",
    "parent",
    "output",
    "é",
    "\\",
    "\n",
];

/// Template and condition text assembled from Jinja's pieces, checked and rendered
/// against a real event: never a panic, and never a render without end (fuel).
#[test]
fn templates() {
    let event = {
        let target = target("github");
        let body = std::fs::read(repo_root().join("tests/fixtures/payloads/github/push.json")).unwrap();
        let pairs = target.dialect.sign(&Outgoing {
            event: "push",
            body: &body,
            secret: None,
            delivery: "d",
            now: SystemTime::now(),
        });
        let Ok(Incoming::Events(events)) =
            target.dialect.parse(&headers(pairs), &body, &Origin { source: "s", delivery: "d" })
        else {
            panic!("the push fixture parses")
        };
        let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
        template::event_value(&events[0], &payload)
    };
    let context = minijinja::Value::from_serialize(serde_json::json!({
        "event": event,
        "parent": { "output": { "x": [1, 2] }, "summary": "s" },
        "steps": { "a": { "output": null } },
    }));
    // minijinja 2's panic on `}}` in an expression is caught (see `template.rs`); keep
    // its message out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("empty lexer stack") {
            default_hook(info);
        }
    }));
    let started = std::time::Instant::now();
    let rendered = AtomicUsize::new(0);
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    proptest!(runner(), |(pieces in proptest::collection::vec(proptest::sample::select(TEMPLATE_PIECES), 0..24))| {
        let text: String = pieces.concat();
        let began = std::time::Instant::now();
        let _ = template::check_template(&text);
        let _ = template::check_condition(&text);
        if template::render(&text, &context).is_ok() {
            rendered.fetch_add(1, Ordering::Relaxed);
        }
        let _ = template::eval_condition(&text, &context);
        let mut slowest = slowest.lock().unwrap();
        *slowest = (*slowest).max(began.elapsed());
    });
    let slowest = *slowest.lock().unwrap();
    report("templates", started, &format!("{} rendered, slowest {slowest:?}", rendered.into_inner()));
}
