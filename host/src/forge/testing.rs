//! Helpers for the forge modules' tests: fixtures, header maps, and the checks every
//! forge must pass (the signature table, parsers that never panic).

#![allow(clippy::disallowed_methods, reason = "fixtures for unit tests")]

use super::Headers;
use super::{Dialect, Incoming, Origin, Outgoing, VerifyError};
use crate::event::Event;
use crate::secret::Secret;
use std::time::SystemTime;

/// A payload fixture from `tests/fixtures/payloads/<forge>/<name>`.
pub fn fixture(forge: &str, name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/payloads/{forge}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// A header map from pairs.
pub fn headers<N: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (N, V)>) -> Headers {
    pairs.into_iter().collect()
}

/// The headers `dialect` would send, signed with `secret` at `now`.
pub fn signed(dialect: &dyn Dialect, event: &str, body: &[u8], secret: Option<&Secret>, now: SystemTime) -> Headers {
    headers(dialect.sign(&Outgoing { event, body, secret, delivery: "d-1", now }))
}

/// The table every forge passes: valid, rotated secret, wrong secret, missing header,
/// tampered body.
pub fn check_signature_table(dialect: &dyn Dialect, event: &str, body: &[u8]) {
    check_signature_table_with(dialect, event, body, ["previous", "current", "guess"]);
}

/// [`check_signature_table`] with the given previous, current and wrong secrets.
pub fn check_signature_table_with(dialect: &dyn Dialect, event: &str, body: &[u8], keys: [&str; 3]) {
    let now = SystemTime::now();
    let (previous, current, guess) = (Secret::new(keys[0]), Secret::new(keys[1]), Secret::new(keys[2]));
    let secrets = [previous.clone(), current.clone()];
    let mut tampered = body.to_vec();
    tampered[body.len() / 2] ^= 1;
    type Row<'a> = (&'a str, Option<&'a Secret>, &'a [u8], Option<fn(&VerifyError) -> bool>);
    let rows: [Row; 5] = [
        ("valid", Some(&current), body, None),
        ("rotated: the previous secret still verifies", Some(&previous), body, None),
        ("wrong secret", Some(&guess), body, Some(|e| matches!(e, VerifyError::Mismatch { .. }))),
        ("missing header", None, body, Some(|e| matches!(e, VerifyError::MissingSignature { .. }))),
        ("tampered body", Some(&current), &tampered, Some(|e| matches!(e, VerifyError::Mismatch { .. }))),
    ];
    for (what, secret, sent, want) in rows {
        let map = signed(dialect, event, body, secret, now);
        let got = dialect.verify(&map, sent, &secrets, now);
        match (want, got) {
            (None, Ok(())) => {}
            (Some(expected), Err(err)) if expected(&err) => {}
            (_, got) => panic!("{} {what}: got {got:?}", dialect.forge()),
        }
    }
}

/// Parses `body` as a signed delivery of `event` would be.
pub fn parse(dialect: &dyn Dialect, event: &str, body: &[u8]) -> Result<Incoming, super::ParseError> {
    let map = signed(dialect, event, body, None, SystemTime::now());
    dialect.parse(&map, body, &Origin { source: "src", delivery: "d-1" })
}

/// The events in a fixture, which must parse to at least one.
pub fn events(dialect: &dyn Dialect, event: &str, fixture_name: &str) -> Vec<Event> {
    match parse(dialect, event, &fixture(dialect.forge(), fixture_name)) {
        Ok(Incoming::Events(events)) if !events.is_empty() => events,
        other => panic!("{fixture_name}: {other:?}"),
    }
}

/// The one event in a fixture.
pub fn event(dialect: &dyn Dialect, event: &str, fixture_name: &str) -> Event {
    let mut all = events(dialect, event, fixture_name);
    assert_eq!(all.len(), 1, "{fixture_name}");
    all.remove(0)
}

/// Parses `fixture_name` with one byte changed and cut at that byte: neither may panic
/// (the outcome does not matter).
pub fn parse_mutated(dialect: &dyn Dialect, event: &str, fixture_name: &str, cut: usize, flip: u8) {
    let mut body = fixture(dialect.forge(), fixture_name);
    let at = cut % body.len();
    body[at] = body[at].wrapping_add(flip);
    let _ = parse(dialect, event, &body);
    let _ = parse(dialect, event, &body[..at]);
}
