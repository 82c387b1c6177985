//! GitHub (and GitHub Enterprise) webhooks: `X-Hub-Signature-256` HMAC-SHA256 over the
//! raw body; JSON or form-encoded (`payload=`) bodies; `push` and `ping` events.

use super::{Envelope, Incoming, ParseError, VerifyError, header, hmac_matches};
use crate::config::Secret;
use crate::event::{Commit, Event, Repository, is_null_commit, split_ref};
use axum::http::HeaderMap;
use serde::Deserialize;

const SIGNATURE_256: &str = "x-hub-signature-256";
const EVENT: &str = "x-github-event";
const DELIVERY: &str = "x-github-delivery";
const CONTENT_TYPES: &str = "application/json or application/x-www-form-urlencoded";

/// GitHub sends at most this many commits in a push payload.
const MAX_PUSH_COMMITS: usize = 2048;

pub fn envelope(headers: &HeaderMap) -> Envelope {
    Envelope {
        delivery: header(headers, DELIVERY).map(str::to_owned),
        event: header(headers, EVENT).map(str::to_owned),
    }
}

pub fn verify(headers: &HeaderMap, body: &[u8], secrets: &[Secret]) -> Result<(), VerifyError> {
    let value =
        header(headers, SIGNATURE_256).ok_or(VerifyError::MissingSignature { header: "X-Hub-Signature-256" })?;
    let malformed =
        |reason: &str| VerifyError::MalformedSignature { header: "X-Hub-Signature-256", reason: reason.into() };
    let hex_digest = value.trim().strip_prefix("sha256=").ok_or_else(|| malformed("expected `sha256=<hex>`"))?;
    let expected = hex::decode(hex_digest).map_err(|_| malformed("the digest is not hexadecimal"))?;
    if expected.len() != 32 {
        return Err(malformed("the digest is not 32 bytes"));
    }
    if hmac_matches::<sha2::Sha256>(body, secrets, &expected) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch { header: "X-Hub-Signature-256" })
    }
}

pub fn parse(headers: &HeaderMap, body: &[u8], source: &str, delivery: &str) -> Result<Incoming, ParseError> {
    let event = header(headers, EVENT).ok_or(ParseError::MissingHeader { header: "X-GitHub-Event" })?;
    let payload = json_payload(content_type(headers), body, event)?;
    match event {
        "ping" => Ok(Incoming::Ping),
        "push" => {
            let push: Push = serde_json::from_str(&payload).map_err(|err| unreadable(event, err))?;
            Ok(Incoming::Event(Box::new(push.into_event(source, delivery, payload))))
        }
        other => Ok(Incoming::Ignored(format!("GitHub event `{other}` is not handled"))),
    }
}

pub fn payload_text(content_type: Option<&str>, body: &[u8]) -> String {
    json_payload(content_type, body, "stored").unwrap_or_default()
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    header(headers, "content-type")
}

/// The JSON text of the payload: the body itself, or its `payload` form field.
fn json_payload(content_type: Option<&str>, body: &[u8], event: &str) -> Result<String, ParseError> {
    let essence = content_type.map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => String::from_utf8(body.to_vec()).map_err(|err| unreadable(event, err)),
        Some("application/x-www-form-urlencoded") => form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| unreadable(event, "form body without a `payload` field")),
        other => Err(ParseError::UnsupportedContentType {
            content_type: other.unwrap_or("(none)").to_owned(),
            expected: CONTENT_TYPES,
        }),
    }
}

fn unreadable(event: &str, reason: impl ToString) -> ParseError {
    ParseError::Payload { event: event.to_owned(), reason: reason.to_string() }
}

/// The parts of a push payload gitauto reads.
#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    commits: Vec<PushCommit>,
    repository: PushRepository,
    #[serde(default)]
    sender: Option<User>,
    #[serde(default)]
    pusher: Option<Pusher>,
}

#[derive(Deserialize)]
struct PushRepository {
    name: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct Owner {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Pusher {
    name: String,
}

#[derive(Deserialize)]
struct PushCommit {
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    author: Option<Author>,
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

#[derive(Deserialize)]
struct Author {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: Option<String>,
}

impl Push {
    fn into_event(self, source: &str, delivery: &str, payload: String) -> Event {
        let (branch, tag) = split_ref(&self.git_ref);
        let repo = self.repository;
        let owner = repo
            .owner
            .and_then(|o| o.login.or(o.name))
            .or_else(|| repo.full_name.as_deref().and_then(|f| f.split_once('/')).map(|(o, _)| o.to_owned()))
            .unwrap_or_default();
        let full_name = repo.full_name.unwrap_or_else(|| format!("{owner}/{}", repo.name));
        let commits_complete = self.commits.len() < MAX_PUSH_COMMITS;
        Event {
            delivery: delivery.to_owned(),
            source: source.to_owned(),
            forge: "github".into(),
            kind: if tag.is_some() { "tag" } else { "push" }.into(),
            action: None,
            repository: Repository {
                owner,
                name: repo.name,
                full_name,
                clone_url: repo.clone_url.unwrap_or_default(),
                html_url: repo.html_url.unwrap_or_default(),
                default_branch: repo.default_branch,
            },
            deleted: self.deleted || self.after.as_deref().is_some_and(is_null_commit),
            git_ref: Some(self.git_ref),
            branch,
            tag,
            before: self.before,
            after: self.after,
            commits: self.commits.into_iter().map(PushCommit::into_commit).collect(),
            commits_complete,
            sender: self.sender.map(|s| s.login).or(self.pusher.map(|p| p.name)),
            payload,
        }
    }
}

impl PushCommit {
    fn into_commit(self) -> Commit {
        let author = match self.author {
            Some(Author { name, email: Some(email) }) if !email.is_empty() => format!("{name} <{email}>"),
            Some(Author { name, .. }) => name,
            None => String::new(),
        };
        Commit {
            id: self.id,
            message: self.message,
            author,
            timestamp: self.timestamp,
            url: self.url,
            added: self.added,
            modified: self.modified,
            removed: self.removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use hmac::{KeyInit, Mac};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/payloads/github/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn signature_table() {
        let body = fixture("push.json");
        let good = sign("current", &body);
        let secrets = [Secret::new("previous"), Secret::new("current")];
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        type Row<'a> = (&'a str, Option<String>, &'a [u8], Result<(), &'a str>);
        let rows: Vec<Row> = vec![
            ("valid", Some(good.clone()), &body, Ok(())),
            ("rotated: the older secret still works", Some(sign("previous", &body)), &body, Ok(())),
            ("wrong secret", Some(sign("guess", &body)), &body, Err("does not match")),
            ("missing header", None, &body, Err("missing signature header")),
            ("tampered body", Some(good.clone()), &tampered, Err("does not match")),
            ("sha1 prefix", Some(good.replace("sha256=", "sha1=")), &body, Err("expected `sha256=<hex>`")),
            ("not hex", Some("sha256=zz".into()), &body, Err("not hexadecimal")),
            ("short digest", Some("sha256=abcd".into()), &body, Err("not 32 bytes")),
        ];
        for (what, signature, body, want) in rows {
            let map = match &signature {
                Some(sig) => headers(&[(SIGNATURE_256, sig)]),
                None => HeaderMap::new(),
            };
            let got = verify(&map, body, &secrets).map_err(|err| err.to_string());
            match want {
                Ok(()) => assert!(got.is_ok(), "{what}: {got:?}"),
                Err(why) => assert!(got.as_ref().unwrap_err().contains(why), "{what}: {got:?}"),
            }
        }
    }

    fn parse_fixture(name: &str) -> Event {
        let map = headers(&[(EVENT, "push"), ("content-type", "application/json")]);
        match parse(&map, &fixture(name), "github", "d-1").unwrap() {
            Incoming::Event(event) => *event,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn branch_push_is_normalised() {
        let event = parse_fixture("push.json");
        assert_eq!(event.kind, "push");
        assert_eq!(event.delivery, "d-1");
        assert_eq!(event.source, "github");
        assert_eq!(event.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!((event.branch.as_deref(), event.tag.as_deref()), (Some("main"), None));
        assert_eq!(event.after.as_deref(), Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
        assert_eq!(event.repository.owner, "acme");
        assert_eq!(event.repository.full_name, "acme/widgets");
        assert_eq!(event.repository.clone_url, "https://github.com/acme/widgets.git");
        assert_eq!(event.repository.default_branch.as_deref(), Some("main"));
        assert_eq!(event.sender.as_deref(), Some("octocat"));
        assert!(!event.deleted && event.commits_complete);
        assert_eq!(event.commits.len(), 2);
        assert_eq!(event.commits[0].author, "Octo Cat <octocat@example.com>");
        assert_eq!(event.commits[0].added, ["docs/catalogue.md"]);
        assert_eq!(event.commits[1].removed, ["img/logo-old.png"]);
        assert!(event.payload.contains("\"widgets\""));
    }

    #[test]
    fn tag_push_and_branch_deletion() {
        let tag = parse_fixture("push-tag.json");
        assert_eq!((tag.kind.as_str(), tag.branch.as_deref(), tag.tag.as_deref()), ("tag", None, Some("v1.2.0")));
        let deleted = parse_fixture("push-branch-deleted.json");
        assert!(deleted.deleted);
        assert_eq!(deleted.branch.as_deref(), Some("old-feature"));
    }

    #[test]
    fn form_encoded_bodies_carry_the_payload_field() {
        let json = fixture("push.json");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json).unwrap())
            .finish();
        let map = headers(&[(EVENT, "push"), ("content-type", "application/x-www-form-urlencoded")]);
        let Incoming::Event(event) = parse(&map, body.as_bytes(), "github", "d").unwrap() else { panic!() };
        assert_eq!(event.repository.full_name, "acme/widgets");
        assert_eq!(payload_text(Some("application/x-www-form-urlencoded"), body.as_bytes()).as_bytes(), json);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let json = [("content-type", "application/json")];
        type Row<'a> = (Vec<(&'static str, &'a str)>, &'a [u8], &'a str);
        let rows: Vec<Row> = vec![
            (json.to_vec(), b"{}", "missing header `X-GitHub-Event`"),
            (vec![(EVENT, "push"), ("content-type", "text/plain")], b"{}", "unsupported content type `text/plain`"),
            (vec![(EVENT, "push")], b"{}", "unsupported content type `(none)`"),
            (vec![(EVENT, "push"), json[0]], b"{", "unreadable push payload: EOF while parsing"),
            (vec![(EVENT, "push"), json[0]], b"[]", "unreadable push payload: invalid length 0"),
            (vec![(EVENT, "push"), json[0]], b"{\"ref\": \"x\"}", "missing field `repository`"),
            (vec![(EVENT, "push"), json[0]], b"\xff\xfe", "unreadable push payload: invalid utf-8"),
            (
                vec![(EVENT, "push"), ("content-type", "application/x-www-form-urlencoded")],
                b"other=1",
                "form body without a `payload` field",
            ),
        ];
        for (pairs, body, want) in rows {
            let err = parse(&headers(&pairs), body, "github", "d").unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?}, got {err:?}");
        }
    }

    #[test]
    fn ping_and_other_events() {
        let map = headers(&[(EVENT, "ping"), ("content-type", "application/json; charset=utf-8")]);
        assert_eq!(parse(&map, &fixture("ping.json"), "s", "d"), Ok(Incoming::Ping));
        let map = headers(&[(EVENT, "issues"), ("content-type", "application/json")]);
        assert_eq!(parse(&map, b"{}", "s", "d"), Ok(Incoming::Ignored("GitHub event `issues` is not handled".into())));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep over truncations and byte flips of a real payload.
        let map = headers(&[(EVENT, "push"), ("content-type", "application/json")]);
        let seed = fixture("push.json");
        for cut in (0..seed.len()).step_by(7) {
            let _ = parse(&map, &seed[..cut], "s", "d");
            let mut flipped = seed.clone();
            flipped[cut] = flipped[cut].wrapping_add(cut as u8);
            let _ = parse(&map, &flipped, "s", "d");
        }
    }
}
