//! Comment commands end to end: a `/deploy staging` comment on a pull (merge) request,
//! delivered as GitHub, GitLab and Gitea send it, starts the rule with
//! `command = "/deploy *"`, whose step reads the argument from `event.command.args`; a
//! comment that gives another command, none, or an edit starts nothing and says why; and
//! every forge's comment and review deliveries are recorded as such events.

use gitauto_tests::TestDaemon;
use gitauto_tests::fake_api::FakeApi;
use serde_json::Value;
use std::path::Path;

fn fixture(path: &str) -> Value {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads").join(path)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A daemon whose rule `deploy` answers `/deploy *` comments with a comment of its own,
/// through the fake forge API.
async fn daemon(api: &FakeApi, dir: &Path) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"{forges}
[[rules]]
name = "deploy"
on = "comment"
command = "/deploy *"
steps = [{{ plugin = "comment", with = {{ api_url = "{api}{{{{ {{'gitea': '/api/v1', 'gitlab': '/api/v4', 'github': ''}}[event.forge] }}}}", body = "deploying to {{{{ event.command.args[0] }}}} for @{{{{ event.comment.author }}}} ({{{{ event.command.name }}}}, {{{{ event.kind }}}}.{{{{ event.action }}}})" }} }}]
"#,
        forges = super::comment::forges_and_comment_plugin(api, dir),
        api = api.url,
    ))
    .await
}

/// Posts `payload` as `source` would send `event`; returns the answer.
async fn deliver(daemon: &TestDaemon, source: &str, event: &str, payload: &Value) -> Value {
    let (status, answer, _) = daemon.post_as(source, event, payload.to_string().as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    answer
}

#[tokio::test]
async fn a_deploy_command_runs_on_github_gitlab_and_gitea_with_its_argument() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path()).await;
    let cases = [
        ("github", "issue_comment", "github/issue_comment-created.json"),
        ("gitlab", "Note Hook", "gitlab/note-merge_request.json"),
        ("gitea", "issue_comment", "gitea/issue_comment-created.json"),
    ];
    for (source, event, path) in cases {
        let answer = deliver(&daemon, source, event, &fixture(path)).await;
        let job = daemon.finished_job(answer["jobs"][0].as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{source}: {job:#}");
    }
    let lines = api.take_lines();
    assert_eq!(
        lines,
        [
            "POST /repos/acme/widgets/issues/7/comments",
            "POST /api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests/12/notes",
            "POST /api/v1/repos/acme/widgets/issues/3/comments",
        ]
    );
    let comments: Vec<String> = api.with(|s| s.comments.iter().map(|(_, body)| body.clone()).collect());
    assert_eq!(
        comments,
        [
            "deploying to staging for @hubot (/deploy, comment.created)",
            "deploying to staging for @jdoe (/deploy, comment.created)",
            "deploying to staging for @alice (/deploy, comment.created)",
        ]
    );
    daemon.stop().await;
}

#[tokio::test]
async fn comments_that_give_no_matching_command_start_nothing_and_say_why() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path()).await;
    let with_body = |path: &str, body: &str| {
        let mut payload = fixture(path);
        payload["comment"]["body"] = body.into();
        payload
    };
    let no_rule = |why: &str| format!("no rule matched: rule \"deploy\": {why}");

    let other =
        deliver(&daemon, "github", "issue_comment", &with_body("github/issue_comment-created.json", "/build staging"))
            .await;
    assert_eq!(other["jobs"], serde_json::json!([]));
    assert_eq!(other["reason"], no_rule("command `/build staging` not in [/deploy *]"));

    let prose = deliver(
        &daemon,
        "gitea",
        "issue_comment",
        &with_body("gitea/issue_comment-created.json", "LGTM, /deploy later"),
    )
    .await;
    assert_eq!(
        prose["reason"],
        no_rule(
            "the comment gives no command (its first line does not start with `/`), and the rule filters commands [/deploy *]"
        )
    );

    let edited = deliver(&daemon, "github", "issue_comment", &fixture("github/issue_comment-edited.json")).await;
    assert_eq!(
        edited["reason"],
        no_rule("the comment was edited, and a command runs again on an edit only when `on` names `comment.edited`")
    );

    let mut note = fixture("gitlab/note-merge_request.json");
    note["object_attributes"]["note"] = "/deploy".into();
    let bare = deliver(&daemon, "gitlab", "Note Hook", &note).await;
    assert_eq!(bare["reason"], no_rule("command `/deploy` not in [/deploy *]"));

    let (_, queue) = daemon.get("/queue").await;
    assert_eq!(queue["queue_length"], 0);
    assert_eq!(api.take_lines(), Vec::<String>::new(), "no step ran, so nothing was posted");
    daemon.stop().await;
}

/// (source, forge event name, fixture, kind, action, author, command line)
type Delivery =
    (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str, Option<&'static str>);

const DELIVERIES: &[Delivery] = &[
    (
        "github",
        "issue_comment",
        "github/issue_comment-created.json",
        "comment",
        "created",
        "hubot",
        Some("/deploy staging"),
    ),
    (
        "github",
        "pull_request_review_comment",
        "github/pull_request_review_comment-created.json",
        "comment",
        "created",
        "hubot",
        Some("/lint docs/catalogue.md"),
    ),
    (
        "github",
        "pull_request_review",
        "github/pull_request_review-submitted.json",
        "review",
        "submitted",
        "hubot",
        None,
    ),
    ("gitlab", "Note Hook", "gitlab/note-merge_request.json", "comment", "created", "jdoe", Some("/deploy staging")),
    (
        "gitea",
        "issue_comment",
        "gitea/issue_comment-created.json",
        "comment",
        "created",
        "alice",
        Some("/deploy staging"),
    ),
    (
        "gitea",
        "pull_request_approved",
        "gitea/pull_request_approved.json",
        "review",
        "submitted",
        "alice",
        Some("/merge when green"),
    ),
    ("forgejo", "issue_comment", "forgejo/issue_comment-edited-on-issue.json", "comment", "edited", "alice", None),
    ("gogs", "issue_comment", "gogs/issue_comment-created.json", "comment", "created", "bob", Some("/deploy staging")),
];

#[tokio::test]
async fn every_forge_s_comment_deliveries_are_recorded_as_comment_events() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&format!(
        r#"{forges}
[sources.forgejo]
forge = "forgejo"
secret = "fj"
[sources.gogs]
forge = "gogs"
secret = "gg"

[[rules]]
name = "never"
on = ["comment", "comment.edited", "review"]
command = "/never"
steps = [{{ plugin = "comment", with = {{ body = "unreachable" }} }}]
"#,
        forges = super::comment::forges_and_comment_plugin(&api, dir.path()),
    ))
    .await;
    for &(source, event, path, kind, action, author, line) in DELIVERIES {
        let payload = fixture(path);
        let (status, answer, delivery) = daemon.post_as(source, event, payload.to_string().as_bytes()).await;
        assert_eq!(status, 202, "{source} {event}: {answer}");
        let (_, record) = daemon.get(&format!("/api/deliveries/{delivery}")).await;
        let recorded = &record["events"][0];
        assert_eq!((recorded["kind"].as_str(), recorded["action"].as_str()), (Some(kind), Some(action)), "{path}");
        assert_eq!(recorded["comment"]["author"], author, "{path}");
        assert_eq!(recorded["command"]["line"].as_str(), line, "{path}");
        let why = record["rules"].to_string();
        let expected = match line {
            Some(line) => format!("command `{line}` not in [/never]"),
            None => "the comment gives no command".to_owned(),
        };
        assert!(why.contains(&expected), "{path}: {why}");
    }
    daemon.stop().await;
}
