//! Deliveries gitauto makes itself — a manual trigger, a schedule tick, a ref seen moving
//! by polling — and how their bodies read back into events. Each is stored like a forge's
//! delivery (its body is the payload templates see), so a job, a redelivery and the
//! record treat them alike.

use super::{Admitted, Input};
use crate::config::Source;
use crate::event::{Event, Repository, is_null_commit};
use crate::forge::{Headers, Incoming, ParseError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest;

/// The source, forge and event kind of manual events.
pub const MANUAL: &str = "manual";
/// The source, forge and event kind of schedule ticks.
pub const SCHEDULE: &str = "schedule";

fn json_headers() -> Headers {
    [("content-type", "application/json")].into_iter().collect()
}

impl Input {
    /// A manual trigger of `rule` with its parameters (the payload templates see).
    pub fn manual(rule: &str, params: &Map<String, Value>) -> Self {
        Self {
            source: MANUAL.to_owned(),
            headers: json_headers(),
            body: Value::Object(params.clone()).to_string().into(),
            admitted: Admitted::Manual { rule: rule.to_owned() },
            delivery: Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// A tick of schedule rule `rule` due at `at_ms` (Unix ms), with one event per target
    /// (a repository full name and/or a branch), or one with neither when there are none.
    /// Its delivery id is the same on every daemon, so a tick two daemons both ingest is
    /// recorded once: the second is a duplicate.
    pub fn schedule(rule: &str, at_ms: i64, targets: &[(Option<String>, Option<String>)]) -> Self {
        let tick = Tick {
            rule: rule.to_owned(),
            time: crate::queue::rfc3339(at_ms),
            at_ms,
            targets: targets
                .iter()
                .map(|(repo, branch)| Target { repo: repo.clone(), branch: branch.clone() })
                .collect(),
        };
        let name = if rule.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            rule.to_owned()
        } else {
            digest(&[rule])
        };
        Self {
            source: SCHEDULE.to_owned(),
            headers: json_headers(),
            body: serde_json::to_vec(&tick).expect("a tick serialises").into(),
            admitted: Admitted::Schedule { rule: rule.to_owned() },
            delivery: Some(format!("schedule:{name}:{at_ms}")),
        }
    }

    /// A ref of `repo` (full name) that moved from `before` to `after` with no delivery,
    /// seen by polling `source`'s remote against the refs recorded by the poll at
    /// `previous_poll_ms`. Its delivery id is the same on every daemon that sees the same
    /// move against the same record, and differs when a ref moves back and forth between
    /// polls (A to B, back to A, to B again: three moves, three events).
    pub fn poll(
        source: &str,
        repo: &str,
        clone_url: &str,
        git_ref: &str,
        (before, after): (&str, &str),
        previous_poll_ms: i64,
    ) -> Self {
        let moved = Moved {
            repository: Repo { full_name: repo.to_owned(), clone_url: clone_url.to_owned() },
            git_ref: git_ref.to_owned(),
            before: before.to_owned(),
            after: after.to_owned(),
        };
        Self {
            source: source.to_owned(),
            headers: json_headers(),
            body: serde_json::to_vec(&moved).expect("a moved ref serialises").into(),
            admitted: Admitted::Poll,
            delivery: Some(format!(
                "poll:{}",
                digest(&[source, repo, git_ref, before, after, &previous_poll_ms.to_string()])
            )),
        }
    }
}

/// A short hex digest of `parts`, for delivery ids.
fn digest(parts: &[&str]) -> String {
    let mut hash = sha2::Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

/// The body of a schedule tick.
#[derive(Debug, Serialize, Deserialize)]
struct Tick {
    rule: String,
    /// RFC 3339, UTC.
    time: String,
    at_ms: i64,
    targets: Vec<Target>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Target {
    repo: Option<String>,
    branch: Option<String>,
}

/// The body of a polled ref move.
#[derive(Debug, Serialize, Deserialize)]
struct Moved {
    repository: Repo,
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Repo {
    full_name: String,
    clone_url: String,
}

/// The manual parameters that fill the event's fields (every parameter is its payload).
const EVENT_PARAMS: &[&str] = &["repo", "branch", "tag", "sender"];

/// A manual trigger's body (its parameters) as its one event.
pub(super) fn manual(delivery: &str, rule: &str, body: &[u8]) -> Result<Incoming, ParseError> {
    let params: Map<String, Value> =
        serde_json::from_slice(body).map_err(|err| ParseError::payload(MANUAL, format!("parameters: {err}")))?;
    // The ones that name the event's repository and ref are text: never dropped unread.
    for key in EVENT_PARAMS {
        if let Some(value) = params.get(*key).filter(|value| !value.is_string()) {
            return Err(ParseError::payload(MANUAL, format!("parameter `{key}`: expected text, got {value}")));
        }
    }
    Ok(Incoming::Events(vec![manual_event(delivery, rule, &params)]))
}

/// The event a manual trigger makes: kind `manual`, its action the rule's name; `repo`,
/// `branch` and `tag` among the parameters fill its repository and ref, so filters and
/// templates see them where they see a forge's.
pub fn manual_event(delivery: &str, rule: &str, params: &Map<String, Value>) -> Event {
    let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut event = targeted(delivery, MANUAL, rule, text("repo"), text("branch"), text("tag"));
    event.sender = text("sender");
    event
}

/// A schedule tick's body as one event per target.
pub(super) fn schedule(delivery: &str, body: &[u8]) -> Result<Incoming, ParseError> {
    let tick: Tick = serde_json::from_slice(body).map_err(|err| ParseError::payload(SCHEDULE, err))?;
    let mut events: Vec<Event> = tick
        .targets
        .into_iter()
        .map(|target| targeted(delivery, SCHEDULE, &tick.rule, target.repo, target.branch, None))
        .collect();
    if events.is_empty() {
        events.push(targeted(delivery, SCHEDULE, &tick.rule, None, None, None));
    }
    Ok(Incoming::Events(events))
}

/// An event gitauto made for one rule (`kind` manual or schedule, action the rule's name).
fn targeted(
    delivery: &str,
    kind: &str,
    rule: &str,
    repo: Option<String>,
    branch: Option<String>,
    tag: Option<String>,
) -> Event {
    let git_ref = match (&branch, &tag) {
        (Some(branch), _) => Some(format!("refs/heads/{branch}")),
        (None, Some(tag)) => Some(format!("refs/tags/{tag}")),
        (None, None) => None,
    };
    Event {
        delivery: delivery.into(),
        source: kind.into(),
        forge: kind.into(),
        kind: kind.into(),
        action: Some(rule.into()),
        repository: repo.map(|full_name| repository(&full_name, "")).unwrap_or_default(),
        git_ref,
        branch,
        tag,
        commits_complete: true,
        ..Event::default()
    }
}

fn repository(full_name: &str, clone_url: &str) -> Repository {
    let (owner, name) = full_name.rsplit_once('/').unwrap_or(("", full_name));
    Repository {
        owner: owner.into(),
        name: name.into(),
        full_name: full_name.into(),
        clone_url: clone_url.into(),
        ..Repository::default()
    }
}

/// A polled ref move as a push event. The payload lists no commits, so changed paths
/// come from a local clone, if there is one.
pub(super) fn poll(delivery: &str, source: &Source, body: &[u8]) -> Result<Incoming, ParseError> {
    let moved: Moved = serde_json::from_slice(body).map_err(|err| ParseError::payload("poll", err))?;
    let branch = moved.git_ref.strip_prefix("refs/heads/").map(str::to_owned);
    let tag = moved.git_ref.strip_prefix("refs/tags/").map(str::to_owned);
    let event = Event {
        delivery: delivery.into(),
        source: source.name.clone(),
        forge: source.forge.to_owned(),
        kind: "push".into(),
        repository: repository(&moved.repository.full_name, &moved.repository.clone_url),
        git_ref: Some(moved.git_ref),
        branch,
        tag,
        deleted: is_null_commit(&moved.after),
        before: Some(moved.before),
        after: Some(moved.after),
        commits_complete: false,
        ..Event::default()
    };
    Ok(Incoming::Events(vec![event]))
}
