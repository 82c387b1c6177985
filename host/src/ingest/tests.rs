//! The pipeline with no HTTP: a config, a queue in a temporary directory, fixture bodies.

use super::*;
use crate::forge::Outgoing;
use crate::live::Snapshot;
use crate::runtime::Runtime;
use serde_json::{Value, json};
use std::path::Path;

const CONFIG: &str = r#"
[plugins.p]
wasm = "builtin:fetch-update"
grants = { dirs = [{ path = "/srv", git = true }] }

[sources.github]
forge = "github"
secret = "s3cret"

[sources.lab]
forge = "gitlab"
secret = "t0ken"

[[rules]]
name = "main"
on = "push"
branch = "main"
steps = [{ plugin = "p", with = { repodir = "/srv" } }]

[[rules]]
name = "by-hand"
on = "manual"
if = "payload.ok == true"
steps = [{ plugin = "p", with = { repodir = "/srv" } }]
"#;

struct Fixture {
    pipeline: Pipeline,
    config: Arc<Config>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::parse(Path::new("gitauto.toml"), CONFIG).unwrap());
    let runtime = Arc::new(Runtime::new(&[], &dir.path().join("cache")).unwrap().0);
    let live = Arc::new(Live::new(Snapshot { config: config.clone(), runtime }, [0; 32]));
    let queue = Queue::open(dir.path()).unwrap();
    Fixture { pipeline: Pipeline::new(live, queue, Arc::new(Metrics::default())), config, _dir: dir }
}

fn push(branch: &str) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "1".repeat(40),
        "after": "2".repeat(40),
        "repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"login": "acme"},
                       "clone_url": "https://github.com/acme/widgets.git", "html_url": "https://github.com/acme/widgets"},
        "commits": [{"id": "2".repeat(40), "message": "m", "added": ["a.md"], "modified": [], "removed": []}],
        "head_commit": null,
        "sender": {"login": "alice"}
    })
    .to_string()
    .into_bytes()
}

/// A webhook as GitHub would send it, signed with `secret` (or unsigned).
fn webhook(config: &Config, event: &str, body: &[u8], secret: Option<&str>, delivery: &str) -> Input {
    let source = config.source("github").unwrap();
    let secret = secret.map(crate::config::Secret::new);
    let headers =
        source.dialect.sign(&Outgoing { event, body, secret: secret.as_ref(), delivery, now: SystemTime::now() });
    Input::webhook("github", headers.into_iter().collect(), body.to_vec().into())
}

#[tokio::test]
async fn a_signed_push_is_routed_recorded_and_queued_once() {
    let f = fixture();
    let input = webhook(&f.config, "push", &push("main"), Some("s3cret"), "d-1");
    let ingested = f.pipeline.ingest(input.clone()).await.unwrap();
    assert_eq!(ingested.outcome, Outcome::Queued);
    assert_eq!(ingested.delivery, "d-1");
    assert_eq!(ingested.jobs.len(), 1);
    assert!(!ingested.duplicate);
    assert_eq!(ingested.verdicts[0].git_ref.as_deref(), Some("refs/heads/main"));
    assert!(ingested.verdicts[0].rules.iter().any(|v| v.rule == "main" && v.matched));
    let view = f.pipeline.queue().delivery("d-1".into()).await.unwrap().unwrap();
    assert_eq!((view.summary.verdict.as_str(), view.summary.arrived.as_str()), ("queued", "webhook"));
    assert!(view.headers.get("x-hub-signature-256").is_none(), "signatures are not stored: {}", view.headers);
    assert_eq!(view.headers["x-github-event"], "push");

    // The same delivery again is a duplicate carrying the same job.
    let again = f.pipeline.ingest(input).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.jobs, ingested.jobs);
}

#[tokio::test]
async fn a_bad_signature_is_rejected_recorded_and_queues_nothing() {
    let f = fixture();
    let ingested = f.pipeline.ingest(webhook(&f.config, "push", &push("main"), Some("guess"), "d-2")).await.unwrap();
    assert!(
        matches!(&ingested.outcome, Outcome::Rejected(why) if why.contains("does not match")),
        "{:?}",
        ingested.outcome
    );
    assert!(ingested.jobs.is_empty() && ingested.recorded);
    let view = f.pipeline.queue().delivery("d-2".into()).await.unwrap().unwrap();
    assert_eq!(view.summary.verdict, "rejected");
    assert!(view.summary.jobs.is_empty());
}

#[tokio::test]
async fn unsafe_names_and_unreadable_payloads_are_invalid() {
    let f = fixture();
    let mut body: Value = serde_json::from_slice(&push("main")).unwrap();
    body["repository"]["name"] = json!("..");
    body["repository"]["full_name"] = json!("acme/..");
    let body = body.to_string().into_bytes();
    let ingested = f.pipeline.ingest(webhook(&f.config, "push", &body, Some("s3cret"), "d-3")).await.unwrap();
    assert!(matches!(ingested.outcome, Outcome::Invalid(ParseError::UnsafeName(_))), "{:?}", ingested.outcome);
    let garbage = f.pipeline.ingest(webhook(&f.config, "push", b"{nope", Some("s3cret"), "d-4")).await.unwrap();
    assert!(matches!(garbage.outcome, Outcome::Invalid(ParseError::Payload { .. })), "{:?}", garbage.outcome);
    assert!(ingested.jobs.is_empty() && garbage.jobs.is_empty());
}

#[tokio::test]
async fn a_body_over_max_body_that_did_not_come_over_http_is_refused() {
    let f = fixture();
    let limit = f.config.server.max_body;
    let headers: Headers = [("x-github-event", "push")].into_iter().collect();
    let input = Input::catch_up("github", "big-1", headers, vec![b' '; limit + 1].into());
    let ingested = f.pipeline.ingest(input).await.unwrap();
    assert!(matches!(ingested.outcome, Outcome::Invalid(ParseError::TooLarge { .. })), "{:?}", ingested.outcome);
    assert!(ingested.jobs.is_empty());
}

#[tokio::test]
async fn an_unmatched_push_says_why_per_rule() {
    let f = fixture();
    let ingested = f.pipeline.ingest(webhook(&f.config, "push", &push("dev"), Some("s3cret"), "d-5")).await.unwrap();
    let Outcome::Unmatched(why) = &ingested.outcome else { panic!("{:?}", ingested.outcome) };
    assert!(why.starts_with("no rule matched: rule \"main\": branch `dev` not in [main]"), "{why}");
    assert!(ingested.jobs.is_empty());
}

#[tokio::test]
async fn a_redelivery_skips_the_signature_and_points_back() {
    let f = fixture();
    f.pipeline.ingest(webhook(&f.config, "push", &push("main"), Some("s3cret"), "d-6")).await.unwrap();
    let stored = f.pipeline.queue().stored("d-6".into()).await.unwrap().unwrap();
    let again = f.pipeline.ingest(Input::redelivery(&stored)).await.unwrap();
    assert_eq!(again.outcome, Outcome::Queued);
    assert!(!again.duplicate, "a redelivery is a new delivery");
    assert_ne!(again.delivery, "d-6");
    let view = f.pipeline.queue().delivery(again.delivery.clone()).await.unwrap().unwrap();
    assert_eq!((view.redelivery_of, view.summary.arrived.as_str()), (Some(stored.seq), "redelivery"));
}

#[tokio::test]
async fn a_manual_event_reaches_only_its_rule() {
    let f = fixture();
    let params = |ok: bool| json!({"ok": ok, "repo": "acme/widgets", "branch": "main"}).as_object().unwrap().clone();
    let ingested = f.pipeline.ingest(Input::manual("by-hand", &params(true))).await.unwrap();
    assert_eq!(ingested.outcome, Outcome::Queued);
    assert_eq!(ingested.verdicts[0].rules.len(), 1, "only the rule it names is routed: {:?}", ingested.verdicts);
    let view = f.pipeline.queue().delivery(ingested.delivery.clone()).await.unwrap().unwrap();
    assert_eq!((view.summary.source.as_str(), view.summary.arrived.as_str()), ("manual", "manual"));
    assert_eq!(view.events[0]["repository"]["full_name"], "acme/widgets");

    let refused = f.pipeline.ingest(Input::manual("by-hand", &params(false))).await.unwrap();
    assert_eq!(refused.outcome, Outcome::Unmatched("rule \"by-hand\": `if` is false: payload.ok == true".into()));

    // A parameter that names the event's repository is text, or the trigger is refused
    // naming it (issue 19: it was dropped without a word).
    let mut params = params(true);
    params.insert("repo".into(), json!(["acme/widgets"]));
    let refused = f.pipeline.ingest(Input::manual("by-hand", &params)).await.unwrap();
    let why = refused.outcome.reason().unwrap();
    assert!(why.contains("parameter `repo`: expected text, got [\"acme/widgets\"]"), "{why}");
}

#[tokio::test]
async fn a_schedule_tick_is_one_delivery_across_daemons_with_an_event_per_target() {
    let f = fixture();
    let targets = [(Some("acme/a".to_owned()), Some("main".to_owned())), (Some("acme/b".to_owned()), None)];
    let input = Input::schedule("nightly", 1_700_000_000_000, &targets);
    assert_eq!(input.delivery.as_deref(), Some("schedule:nightly:1700000000000"));
    let mut read_input = input.clone();
    let Read::Incoming(Incoming::Events(events)) = read(&f.config, &mut read_input).unwrap() else { panic!() };
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].kind.as_str(), events[0].action.as_deref()), ("schedule", Some("nightly")));
    assert_eq!(events[0].git_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(events[1].repository.full_name, "acme/b");
    // No rule is called `nightly` here: recorded, unmatched, and the second daemon's copy is a duplicate.
    let first = f.pipeline.ingest(input.clone()).await.unwrap();
    assert!(matches!(first.outcome, Outcome::Unmatched(_)), "{:?}", first.outcome);
    assert!(f.pipeline.ingest(input).await.unwrap().duplicate);
}

#[tokio::test]
async fn a_polled_ref_move_is_a_push_without_commits() {
    let f = fixture();
    let (before, after) = ("1".repeat(40), "2".repeat(40));
    let url = "https://github.com/acme/widgets.git";
    let seen = |moved: (&str, &str), at: i64| Input::poll("github", "acme/widgets", url, "refs/heads/main", moved, at);
    let (input, same) = (seen((&before, &after), 7), seen((&before, &after), 7));
    // The same move seen again after a later poll (the ref went back and forth) is another.
    assert_ne!(input.delivery, seen((&before, &after), 8).delivery);
    assert_ne!(input.delivery, seen((&after, &before), 7).delivery);
    assert_eq!(input.delivery, same.delivery, "two daemons seeing one move make one delivery");
    let ingested = f.pipeline.ingest(input).await.unwrap();
    // `main` matches; its paths are unknown, and the rule has no paths filter.
    assert_eq!(ingested.outcome, Outcome::Queued);
    let view = f.pipeline.queue().delivery(ingested.delivery.clone()).await.unwrap().unwrap();
    assert_eq!(view.summary.arrived, "poll");
    assert_eq!(view.events[0]["after"], after);
    assert_eq!(view.events[0]["commits_complete"], false);
}

#[tokio::test]
async fn a_caught_up_delivery_keeps_the_forge_id_and_is_not_verified_again() {
    let f = fixture();
    let body = push("main");
    let headers: Headers =
        [("x-github-event", "push"), ("x-github-delivery", "guid-1"), ("content-type", "application/json")]
            .into_iter()
            .collect();
    let ingested = f.pipeline.ingest(Input::catch_up("github", "guid-1", headers, body.into())).await.unwrap();
    assert_eq!((ingested.delivery.as_str(), &ingested.outcome), ("guid-1", &Outcome::Queued));
    // The webhook arriving late is a duplicate.
    let late = webhook(&f.config, "push", &push("main"), Some("s3cret"), "guid-1");
    assert!(f.pipeline.ingest(late).await.unwrap().duplicate);
}

#[tokio::test]
async fn a_forge_event_cannot_take_a_kind_gitauto_reserves_for_its_own() {
    let generic = "[sources.any]\nforge = \"generic\"\nsecret = \"k\"\nevent_header = \"X-Event\"\n\
                   fields = { repository = \"/repo\", action = \"/action\" }\n\n[sources.lab]";
    let config = Config::parse(Path::new("gitauto.toml"), &CONFIG.replace("[sources.lab]", generic)).unwrap();
    for kind in ["manual", "schedule"] {
        let body = br#"{"repo": "acme/widgets", "action": "by-hand", "ok": true}"#;
        let headers: Headers = [("x-event", kind), ("content-type", "application/json")].into_iter().collect();
        // Caught up, so that no signature needs computing here: the parse is what is tried.
        let mut input = Input::catch_up("any", "d-9", headers, body.to_vec().into());
        let read = read(&config, &mut input).unwrap();
        assert!(
            matches!(&read, Read::Invalid(ParseError::Payload { reason, .. }) if reason.contains("reserved")),
            "{kind}: {read:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_source_is_an_error_and_records_nothing() {
    let f = fixture();
    let input = Input::webhook("nope", Headers::new(), Bytes::from_static(b"{}"));
    assert!(matches!(f.pipeline.ingest(input).await, Err(IngestError::UnknownSource(name)) if name == "nope"));
}

#[test]
fn stored_headers_drop_secrets_and_round_trip() {
    let headers: Headers = [
        ("x-hub-signature-256", "sha256=abc"),
        ("x-gitlab-token", "t"),
        ("webhook-signature", "v1,abc"),
        ("authorization", "token t"),
        ("x-github-event", "push"),
        ("x-github-delivery", "first"),
        ("x-github-delivery", "\"second\""),
    ]
    .into_iter()
    .collect();
    let stored: serde_json::Value = serde_json::from_str(&stored_headers(&headers)).unwrap();
    assert_eq!(stored, json!({"x-github-event": "push", "x-github-delivery": "\"second\""}));
    assert_eq!(restore_headers(&stored).get("x-github-event"), Some("push"));
}

#[tokio::test]
async fn a_sender_cannot_take_the_id_of_a_coming_tick() {
    let f = fixture();
    let input = webhook(&f.config, "push", &push("main"), Some("s3cret"), "schedule:nightly:1700000000000");
    let ingested = f.pipeline.ingest(input).await.unwrap();
    assert_eq!(ingested.outcome, Outcome::Queued);
    assert_ne!(ingested.delivery, "schedule:nightly:1700000000000");
    let tick = f.pipeline.ingest(Input::schedule("nightly", 1_700_000_000_000, &[])).await.unwrap();
    assert!(!tick.duplicate, "the tick is its own delivery");
}

#[test]
fn delivery_ids_from_forges_are_kept_only_when_sane() {
    assert_eq!(sane_id(Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    for bad in [None, Some(""), Some("../../etc"), Some("a b"), Some(&*"x".repeat(129))] {
        let id = sane_id(bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} gave {id}");
    }
}
