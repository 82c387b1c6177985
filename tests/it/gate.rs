//! Issue 21, who may trigger a job, through the real daemon against the fake forge API: a
//! rule's `permission` (asked of GitHub, Gitea and GitLab when the job starts; refused
//! with a reply comment, retried when the API fails) and fork gating (`forks = "approve"`
//! holds a fork's job until a writer's `/ok-to-test` for its head commit). Whether a step
//! ran is checked by the world: the `comment` step posts to the fake, which records it.

use gitauto_tests::TestDaemon;
use gitauto_tests::fake_api::FakeApi;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "gate-token";

fn fixture(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads").join(path);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A daemon whose sources call the fake API, with `rules` (their steps may use the
/// `comment` plugin, which posts to the fake; `API` in them is the fake's URL).
async fn daemon(api: &FakeApi, dir: &Path, rules: &str) -> TestDaemon {
    TestDaemon::start(&config(api, dir, rules)).await
}

/// The config [`daemon`] serves; the token it names is written to `dir`.
fn config(api: &FakeApi, dir: &Path, rules: &str) -> String {
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let host = api.url.trim_start_matches("http://");
    format!(
        r#"
[sources.github]
forge = "github"
secret = "gh"
api = {{ url = "{api}", token = "file:{dir}/token" }}
[sources.gitea]
forge = "gitea"
secret = "gt"
api = {{ url = "{api}/api/v1", token = "file:{dir}/token" }}
[sources.gitlab]
forge = "gitlab"
secret = "gl"
api = {{ url = "{api}/api/v4", token = "file:{dir}/token" }}

[plugins.comment]
wasm = "builtin:comment"
grants = {{ hosts = [{{ host = "{host}", credential = "file:{dir}/token", scheme = "token" }}] }}
{rules}
"#,
        api = api.url,
        dir = dir.display(),
        rules = rules.replace("API", &api.url),
    )
}

/// Posts `payload` as `source` sends `event`; the ids of the jobs it made.
async fn deliver(daemon: &TestDaemon, source: &str, event: &str, payload: &Value) -> Vec<String> {
    let (status, body, _) = daemon.post_as(source, event, &serde_json::to_vec(payload).unwrap()).await;
    assert_eq!(status, 202, "{body}");
    body["jobs"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

async fn state(daemon: &TestDaemon, id: &str) -> String {
    daemon.get(&format!("/api/jobs/{id}")).await.1["state"].as_str().unwrap().to_owned()
}

/// The comments the fake received, as (where, text).
fn comments(api: &FakeApi) -> Vec<(String, String)> {
    api.with(|s| s.comments.clone())
}

/// A rule `name` with `clauses` whose one step comments `body` on the event's pull
/// request, through the fake's API for the event's forge.
fn rule(name: &str, clauses: &str, body: &str) -> String {
    let api = "API{{ '/api/v1' if event.forge == 'gitea' else ('/api/v4' if event.forge == 'gitlab' else '') }}";
    format!(
        "[[rules]]\nname = \"{name}\"\n{clauses}\nsteps = [{{ plugin = \"comment\", with = {{ api_url = \"{api}\", \
         number = \"{{{{ event.pull_request.number }}}}\", body = \"{body}\" }} }}]\n"
    )
}

/// `ci`: on pull requests, a fork's waiting for an approval; the step comments the head.
fn ci() -> String {
    rule("ci", "on = \"pull_request\"\nforks = \"approve\"", "tested {{ event.pull_request.head }}")
}

/// One forge's delivery for a permission round: (source, event name, payload fixture,
/// repository, author, where replies land).
type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

/// Delivers `case` with its author at `short` (below write): the job is skipped, the
/// reply names `what`, and only the reply is posted; then at `enough`: the job succeeds
/// and the step posts `ran`.
async fn refused_then_run(
    daemon: &TestDaemon,
    api: &FakeApi,
    case: Case<'_>,
    (short, enough): (&str, &str),
    what: &str,
    ran: &str,
) {
    let (source, event, payload, repo, user, place) = case;
    api.grant_role(repo, user, short);
    let mut payload = fixture(payload);
    let job = daemon.finished_job(&deliver(daemon, source, event, &payload).await[0]).await;
    assert_eq!(job["state"], "skipped", "{source}: {job:#}");
    assert_eq!(job["summary"], format!("{user} has {short} permission on {repo}; {what} needs write"), "{source}");
    let reply = format!("@{user}: {what} needs write permission on {repo}; you have {short}");
    assert_eq!(comments(api), [(place.to_owned(), reply)], "{source}: the reply, and no step ran");
    api.with(|s| s.comments.clear());

    api.grant_role(repo, user, enough);
    // A new comment: the refused one acted already (a replay of it stays refused).
    let comment = new_comment(&mut payload);
    let job = daemon.finished_job(&deliver(daemon, source, event, &payload).await[0]).await;
    assert_eq!(job["state"], "succeeded", "{source}: {job:#}");
    assert_eq!(comments(api), [(place.to_owned(), ran.to_owned())], "{source}: the step ran");
    api.with(|s| s.comments.clear());
    if let Some(comment) = comment {
        let replayed = daemon.finished_job(&deliver(daemon, source, event, &payload).await[0]).await;
        assert_eq!(replayed["state"], "skipped", "{source}: {replayed:#}");
        let summary = replayed["summary"].as_str().unwrap();
        assert!(summary.starts_with(&format!("comment {comment} already acted in job ")), "{source}: {summary}");
        assert!(comments(api).is_empty(), "{source}: a replayed command does not run again");
    }
}

/// Gives a comment payload (GitHub's and Gitea's `comment`, GitLab's note) a new comment
/// id; the id, or `None` for other payloads.
fn new_comment(payload: &mut Value) -> Option<u64> {
    let comment = if payload["object_kind"] == "note" { "object_attributes" } else { "comment" };
    let id = payload[comment]["id"].as_u64()? + 1000;
    payload[comment]["id"] = id.into();
    Some(id)
}

/// `deploy`: on pull requests, for authors with write permission, retried once.
fn deploy() -> String {
    let clauses = "on = \"pull_request\"\npermission = \"write\"\nretries = 1\nretry_backoff = \"1s\"";
    rule("deploy", clauses, "deployed {{ event.pull_request.number }}")
}

/// Each forge is asked for the sender's level; short of it the job is skipped with a
/// reply naming the user and both levels, and the step does not run; with it, it runs.
#[tokio::test]
async fn a_sender_short_of_the_rules_permission_is_refused_with_a_reply_on_each_forge() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path(), &deploy()).await;
    let cases: [Case; 3] = [
        ("github", "pull_request", "github/pull_request-opened.json", "acme/widgets", "octocat", "acme/widgets#7"),
        ("gitea", "pull_request", "gitea/pull_request-opened.json", "acme/widgets", "alice", "acme/widgets#3"),
        (
            "gitlab",
            "Merge Request Hook",
            "gitlab/merge_request-open.json",
            "acme/platform/widgets",
            "root",
            "projects/acme/platform/widgets/merge_requests/12",
        ),
    ];
    for case in cases {
        let ran = format!("deployed {}", case.5.rsplit(['#', '/']).next().unwrap());
        refused_then_run(&daemon, &api, case, ("read", "maintain"), "rule \"deploy\"", &ran).await;
    }
    let asked: Vec<String> = api.take().into_iter().filter(|r| r.method == "GET").map(|r| r.line()).collect();
    assert_eq!(
        asked,
        [
            "GET /repos/acme/widgets/collaborators/octocat/permission",
            "GET /repos/acme/widgets/collaborators/octocat/permission",
            "GET /api/v1/repos/acme/widgets/collaborators/alice/permission",
            "GET /api/v1/repos/acme/widgets/collaborators/alice/permission",
            "GET /api/v4/users?username=root",
            "GET /api/v4/projects/acme%2Fplatform%2Fwidgets/members/all/1002",
            "GET /api/v4/users?username=root",
            "GET /api/v4/projects/acme%2Fplatform%2Fwidgets/members/all/1002",
        ]
    );
    daemon.stop().await;
}

/// A permission check the forge could not answer fails the attempt (the step does not
/// run unchecked) and is tried again per the rule's retries; a user the forge does not
/// know (404) has no permission.
#[tokio::test]
async fn a_failing_permission_check_is_retried_and_the_step_never_runs_unchecked() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path(), &deploy()).await;
    let payload = fixture("github/pull_request-opened.json");
    let permission = "/repos/acme/widgets/collaborators/octocat/permission";

    api.grant_role("acme/widgets", "octocat", "write");
    api.fail("GET", permission, 502, json!({"message": "Bad Gateway"}));
    let id = deliver(&daemon, "github", "pull_request", &payload).await.remove(0);
    let job = gitauto_tests::wait_for("the retried job to finish", Duration::from_secs(30), || async {
        let (_, job) = daemon.get(&format!("/api/jobs/{id}")).await;
        matches!(job["state"].as_str(), Some("succeeded" | "failed" | "dead")).then_some(job)
    })
    .await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{job:#}");
    let lines: Vec<String> = api.take().iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [format!("GET {permission}"), format!("GET {permission}"), "POST /repos/acme/widgets/issues/7/comments".into()],
        "the step ran once, after the check succeeded"
    );

    api.with(|s| s.gate.roles.clear());
    let job = daemon.finished_job(&deliver(&daemon, "github", "pull_request", &payload).await[0]).await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    assert_eq!(job["summary"], "octocat has none permission on acme/widgets; rule \"deploy\" needs write");
    daemon.stop().await;
}

/// Issue 21: a comment command from a user without the rule's permission is refused with
/// a reply and its step does not run; from one with it, the step runs with its arguments.
/// On GitHub, Gitea and GitLab, each from the forge's own comment payload.
#[tokio::test]
async fn a_comment_command_runs_only_when_its_author_has_the_permission() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clauses = "on = \"comment\"\ncommand = \"/deploy *\"\npermission = \"write\"";
    let rules = rule("deploy", clauses, "deploying {{ event.command.args[0] }}");
    let daemon = daemon(&api, dir.path(), &rules).await;
    api.set_user_id("jdoe", 42);
    let cases: [Case; 3] = [
        ("github", "issue_comment", "github/issue_comment-created.json", "acme/widgets", "hubot", "acme/widgets#7"),
        ("gitea", "issue_comment", "gitea/issue_comment-created.json", "acme/widgets", "alice", "acme/widgets#3"),
        (
            "gitlab",
            "Note Hook",
            "gitlab/note-merge_request.json",
            "acme/platform/widgets",
            "jdoe",
            "projects/acme/platform/widgets/merge_requests/12",
        ),
    ];
    for case in cases {
        refused_then_run(&daemon, &api, case, ("triage", "write"), "/deploy", "deploying staging").await;
    }
    let gitlab: Vec<String> =
        api.take().into_iter().filter(|r| r.path.contains("/members/")).map(|r| r.line()).collect();
    assert_eq!(gitlab, ["GET /api/v4/projects/acme%2Fplatform%2Fwidgets/members/all/42"; 2], "by the author's id");
    daemon.stop().await;
}

/// A GitHub `pull_request.synchronize` from the fork `octocat/widgets` at `head`.
fn fork_push(head: &str) -> Value {
    let mut payload = fixture("github/pull_request-synchronize.json");
    payload["pull_request"]["head"]["sha"] = head.into();
    payload["after"] = head.into();
    payload
}

/// The id of the next comment [`pr_comment`] makes (each is a new comment).
static NEXT_COMMENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(9001);

/// A GitHub `issue_comment` on pull request #7 of acme/widgets by `author`, a new
/// comment each time.
fn pr_comment(action: &str, author: &str, body: &str) -> Value {
    let repository = fixture("github/pull_request-synchronize.json")["repository"].clone();
    let user = json!({"login": author, "id": 4242, "type": "User"});
    let mut payload = json!({
        "action": action,
        "issue": {
            "number": 7,
            "title": "Add the catalogue",
            "state": "open",
            "html_url": "https://github.com/acme/widgets/pull/7",
            "user": {"login": "octocat", "id": 1},
            "pull_request": {
                "url": "https://api.github.com/repos/acme/widgets/pulls/7",
                "html_url": "https://github.com/acme/widgets/pull/7",
            },
        },
        "comment": {
            "id": NEXT_COMMENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            "body": body,
            "user": user,
            "html_url": "https://github.com/acme/widgets/pull/7#issuecomment-9001",
            "created_at": "2026-11-28T12:00:00Z",
            "updated_at": "2026-11-28T12:00:00Z",
        },
        "repository": repository,
        "sender": user,
    });
    if action == "edited" {
        payload["changes"] = json!({"body": {"from": "looks good"}});
    }
    payload
}

/// Fork gating end to end: the fork's job waits; a reader's `/ok-to-test` is refused with
/// a reply; an edited comment approves nothing; a writer's releases the job for the
/// head it saw, and it runs; a later push waits again and the old approval does not
/// cover it; an approval while the forge's head is newer than the waiting job's releases
/// nothing, nor does the newer push arriving after it; a fresh approval does.
#[tokio::test]
async fn a_fork_pull_request_waits_for_an_ok_to_test_from_a_writer_for_its_head_commit() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path(), &ci()).await;
    api.grant_role("acme/widgets", "mallory", "triage");
    api.grant_role("acme/widgets", "maintainer", "write");
    let (h1, h2, h3) = ("1".repeat(40), "2".repeat(40), "3".repeat(40));
    let tested = |head: &str| ("acme/widgets#7".to_owned(), format!("tested {head}"));

    api.set_head("acme/widgets", 7, &h1);
    let first = deliver(&daemon, "github", "pull_request", &fork_push(&h1)).await.remove(0);
    assert_eq!(state(&daemon, &first).await, "waiting");
    let (_, listed) = daemon.get("/api/jobs?state=waiting").await;
    assert_eq!(listed["jobs"][0]["id"], first.as_str(), "{listed:#}");
    let page = reqwest::get(format!("{}/", daemon.url)).await.unwrap().text().await.unwrap();
    let queue = page.split("<h1>Queue</h1>").nth(1).and_then(|rest| rest.split("<h2>").next()).unwrap();
    let row = format!("<a href=\"/jobs/{first}\">{first}</a></td><td class=\"state waiting\">waiting</td>");
    assert!(queue.contains(&row), "the dashboard's queue shows the waiting job: {queue}");

    let refused = deliver(&daemon, "github", "issue_comment", &pr_comment("created", "mallory", "/ok-to-test")).await;
    let approval = daemon.finished_job(&refused[0]).await;
    assert_eq!((approval["rule"].as_str(), approval["state"].as_str()), (Some("gitauto:approve"), Some("skipped")));
    assert_eq!(
        comments(&api),
        [(
            "acme/widgets#7".to_owned(),
            "@mallory: /ok-to-test needs write permission on acme/widgets; you have triage".to_owned()
        )]
    );
    api.with(|s| s.comments.clear());
    let edited = pr_comment("edited", "maintainer", "/ok-to-test");
    let (status, answer, _) = daemon.post_as("github", "issue_comment", &serde_json::to_vec(&edited).unwrap()).await;
    assert_eq!((status, answer["jobs"].as_array().map(Vec::len)), (202, Some(0)), "{answer}");
    assert_eq!(state(&daemon, &first).await, "waiting", "neither a reader nor an edit released it");

    let approved =
        deliver(&daemon, "github", "issue_comment", &pr_comment("created", "maintainer", "/ok-to-test")).await;
    let approval = daemon.finished_job(&approved[0]).await;
    assert_eq!(approval["state"], "succeeded", "{approval:#}");
    assert_eq!(approval["summary"], format!("/ok-to-test by maintainer for #7 at {}: queued job {first}", &h1[..12]));
    assert_eq!(daemon.finished_job(&first).await["state"], "succeeded");
    assert_eq!(comments(&api), [tested(&h1)]);

    // The fork pushes after the approval: a new job, waiting again.
    api.set_head("acme/widgets", 7, &h2);
    let second = deliver(&daemon, "github", "pull_request", &fork_push(&h2)).await.remove(0);
    assert_ne!(second, first);
    assert_eq!(state(&daemon, &second).await, "waiting", "the earlier approval does not cover a new push");

    // The fork pushes again, and a writer approves before that push's webhook arrives:
    // the forge's head is not the waiting job's, so nothing is released, nor is the
    // newer push, whose event arrived after the approval.
    api.set_head("acme/widgets", 7, &h3);
    let stale = deliver(&daemon, "github", "issue_comment", &pr_comment("created", "maintainer", "/ok-to-test")).await;
    let stale = daemon.finished_job(&stale[0]).await;
    assert!(stale["summary"].as_str().unwrap().contains("no job waited for that commit"), "{stale:#}");
    let coalesced = deliver(&daemon, "github", "pull_request", &fork_push(&h3)).await.remove(0);
    assert_eq!(coalesced, second, "the newer push waits in the same job");
    assert_eq!(state(&daemon, &second).await, "waiting");

    let fresh = deliver(&daemon, "github", "issue_comment", &pr_comment("created", "maintainer", "/ok-to-test")).await;
    assert_eq!(daemon.finished_job(&fresh[0]).await["state"], "succeeded");
    assert_eq!(daemon.finished_job(&second).await["state"], "succeeded");
    assert_eq!(comments(&api), [tested(&h1), tested(&h3)], "{h2} never ran");
    daemon.stop().await;
}

/// The fork gate holds when the job starts, not only when it is routed: a cancelled
/// waiting job retried through the API ends skipped without running, while a job an
/// approval released runs again when retried (its approval covers its head).
#[tokio::test]
async fn a_retried_fork_job_runs_only_with_an_approval_of_its_head() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path(), &ci()).await;
    let client = gitauto::client::Client::new(&daemon.url, None);
    api.grant_role("acme/widgets", "maintainer", "write");
    let (h1, h2) = ("5".repeat(40), "6".repeat(40));

    api.set_head("acme/widgets", 7, &h1);
    let cancelled = deliver(&daemon, "github", "pull_request", &fork_push(&h1)).await.remove(0);
    assert_eq!(state(&daemon, &cancelled).await, "waiting");
    assert_eq!(client.post(&format!("/api/jobs/{cancelled}/cancel")).await.unwrap().status, 200);
    assert_eq!(client.post(&format!("/api/jobs/{cancelled}/retry")).await.unwrap().status, 202);
    let job = daemon.finished_job(&cancelled).await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    let summary =
        format!("pull request #7 from the fork octocat/widgets: no /ok-to-test approved its head {}", &h1[..12]);
    assert_eq!(job["summary"], summary);
    assert!(comments(&api).is_empty(), "the fork's code never ran");

    api.set_head("acme/widgets", 7, &h2);
    let released = deliver(&daemon, "github", "pull_request", &fork_push(&h2)).await.remove(0);
    let approval =
        deliver(&daemon, "github", "issue_comment", &pr_comment("created", "maintainer", "/ok-to-test")).await;
    assert_eq!(daemon.finished_job(&approval[0]).await["state"], "succeeded");
    assert_eq!(daemon.finished_job(&released).await["state"], "succeeded");
    assert_eq!(client.post(&format!("/api/jobs/{released}/retry")).await.unwrap().status, 202);
    wait_for_comments(&api, 2).await;
    let tested = ("acme/widgets#7".to_owned(), format!("tested {h2}"));
    assert_eq!(comments(&api), [tested.clone(), tested], "the approved job ran, and again when retried");
    daemon.stop().await;
}

/// A replayed `/ok-to-test` (the same comment in a new delivery, as a forge's redeliver
/// or replay button sends it) approves nothing: each comment approves once.
#[tokio::test]
async fn a_replayed_ok_to_test_approves_nothing() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path(), &ci()).await;
    api.grant_role("acme/widgets", "maintainer", "write");
    let (h1, h2) = ("7".repeat(40), "8".repeat(40));
    api.set_head("acme/widgets", 7, &h1);
    let first = deliver(&daemon, "github", "pull_request", &fork_push(&h1)).await.remove(0);
    let ok = pr_comment("created", "maintainer", "/ok-to-test");
    let approval = deliver(&daemon, "github", "issue_comment", &ok).await;
    assert_eq!(daemon.finished_job(&approval[0]).await["state"], "succeeded");
    assert_eq!(daemon.finished_job(&first).await["state"], "succeeded");

    api.set_head("acme/widgets", 7, &h2);
    let second = deliver(&daemon, "github", "pull_request", &fork_push(&h2)).await.remove(0);
    let replay = deliver(&daemon, "github", "issue_comment", &ok).await;
    assert_ne!(replay, approval, "a new delivery, a new approval job");
    let replay = daemon.finished_job(&replay[0]).await;
    assert_eq!(replay["state"], "skipped", "{replay:#}");
    let id = ok["comment"]["id"].as_u64().unwrap();
    let summary = format!("comment {id} already acted in job {} (a replayed delivery)", approval[0]);
    assert_eq!(replay["summary"], summary);
    assert_eq!(state(&daemon, &second).await, "waiting", "the replay released nothing");
    assert_eq!(comments(&api), [("acme/widgets#7".to_owned(), format!("tested {h1}"))]);
    daemon.stop().await;
}

/// Waits until the fake has received `count` comments.
async fn wait_for_comments(api: &FakeApi, count: usize) {
    gitauto_tests::wait_for(&format!("{count} comments"), Duration::from_secs(60), || async {
        (comments(api).len() >= count).then_some(())
    })
    .await;
}

/// A waiting job is durable: after a restart it still waits, and an `/ok-to-test` then
/// releases it.
#[tokio::test]
async fn a_waiting_job_outlives_a_restart_and_is_released_after_it() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path(), &ci()).await;
    api.grant_role("acme/widgets", "maintainer", "admin");
    let head = "4".repeat(40);
    api.set_head("acme/widgets", 7, &head);
    let job = deliver(&daemon, "github", "pull_request", &fork_push(&head)).await.remove(0);
    assert_eq!(state(&daemon, &job).await, "waiting");

    let daemon = daemon.restart(&config(&api, dir.path(), &ci())).await;
    assert_eq!(state(&daemon, &job).await, "waiting", "not run, not lost, by the restart");
    assert!(comments(&api).is_empty(), "nothing ran");
    let approval =
        deliver(&daemon, "github", "issue_comment", &pr_comment("created", "maintainer", "/ok-to-test")).await;
    assert_eq!(daemon.finished_job(&approval[0]).await["state"], "succeeded");
    assert_eq!(daemon.finished_job(&job).await["state"], "succeeded");
    assert_eq!(comments(&api), [("acme/widgets#7".to_owned(), format!("tested {head}"))]);
    daemon.stop().await;
}

/// One forge's fork round: the pull request and the `/ok-to-test` comment as the forge
/// sends them, who approves, and what the fake must have been asked.
struct ForkRound {
    source: &'static str,
    pull_request: (&'static str, &'static str, fn(&mut Value)),
    comment: (&'static str, &'static str, fn(&mut Value)),
    repo: &'static str,
    number: u64,
    head: &'static str,
    approver: (&'static str, u64),
    place: &'static str,
    asked: [&'static str; 3],
}

/// Fork gating on GitLab and Gitea: a pull (merge) request from a fork waits (counted in
/// `/metrics`); a writer's `/ok-to-test` comment, checked as each forge tells permissions
/// (GitLab by the note author's id), releases it for the forge's head, and it runs.
#[tokio::test]
async fn a_fork_pull_request_runs_after_a_writers_ok_to_test_on_gitlab_and_gitea() {
    let rounds = [
        ForkRound {
            source: "gitlab",
            pull_request: ("Merge Request Hook", "gitlab/merge_request-open.json", |payload| {
                payload["object_attributes"]["source"]["path_with_namespace"] = "mallory/widgets".into();
                payload["object_attributes"]["source_project_id"] = 99.into();
            }),
            comment: ("Note Hook", "gitlab/note-merge_request.json", |payload| {
                payload["object_attributes"]["note"] = "/ok-to-test".into();
            }),
            repo: "acme/platform/widgets",
            number: 12,
            head: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            approver: ("jdoe", 42),
            place: "projects/acme/platform/widgets/merge_requests/12",
            asked: [
                "GET /api/v4/projects/acme%2Fplatform%2Fwidgets/members/all/42",
                "GET /api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests/12",
                "POST /api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests/12/notes",
            ],
        },
        ForkRound {
            source: "gitea",
            pull_request: ("pull_request", "gitea/pull_request-opened.json", |payload| {
                payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/widgets".into();
            }),
            comment: ("issue_comment", "gitea/issue_comment-created.json", |payload| {
                payload["comment"]["body"] = "/ok-to-test".into();
            }),
            repo: "acme/widgets",
            number: 3,
            head: "7a6f8e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79",
            approver: ("alice", 7),
            place: "acme/widgets#3",
            asked: [
                "GET /api/v1/repos/acme/widgets/collaborators/alice/permission",
                "GET /api/v1/repos/acme/widgets/pulls/3",
                "POST /api/v1/repos/acme/widgets/issues/3/comments",
            ],
        },
    ];
    for round in rounds {
        let api = FakeApi::start().await;
        let dir = tempfile::tempdir().unwrap();
        let daemon = daemon(&api, dir.path(), &ci()).await;
        let (approver, id) = round.approver;
        api.set_user_id(approver, id);
        api.grant_role(round.repo, approver, "write");
        api.set_head(round.repo, round.number, round.head);

        let (event, path, fork) = round.pull_request;
        let mut opened = fixture(path);
        fork(&mut opened);
        let job = deliver(&daemon, round.source, event, &opened).await.remove(0);
        assert_eq!(state(&daemon, &job).await, "waiting", "{}", round.source);
        let metrics = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("gitauto_jobs{state=\"waiting\"} 1"), "{metrics}");

        let (event, path, approve) = round.comment;
        let mut comment = fixture(path);
        approve(&mut comment);
        let approval = deliver(&daemon, round.source, event, &comment).await;
        let approval = daemon.finished_job(&approval[0]).await;
        assert_eq!(approval["state"], "succeeded", "{}: {approval:#}", round.source);
        assert_eq!(daemon.finished_job(&job).await["state"], "succeeded", "{}", round.source);
        assert_eq!(comments(&api), [(round.place.to_owned(), format!("tested {}", round.head))]);
        let lines: Vec<String> = api.take().iter().map(|r| r.line()).collect();
        assert_eq!(lines, round.asked, "{}", round.source);
        daemon.stop().await;
    }
}

/// On a GitHub App source the gate's calls carry installation tokens minted for the
/// event's repository and limited to what each call needs: metadata (the permission
/// lookup) and `pull_requests: read` (the approval's head).
#[tokio::test]
async fn on_a_github_app_source_the_gate_asks_with_tokens_limited_to_what_it_needs() {
    const APP: u64 = 31337;
    const INSTALLATION: u64 = 4711;
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = gitauto_tests::fake_api::app::generate_key(dir.path());
    api.add_app(APP, public, INSTALLATION, &["acme/widgets"]);
    let token_source = format!("api = {{ url = \"{}\", token = \"file:{}/token\" }}", api.url, dir.path().display());
    let app_source =
        format!("app = {{ id = {APP}, private_key = \"file:{}\" }}\napi = {{ url = \"{}\" }}", key.display(), api.url);
    let text = config(&api, dir.path(), &ci()).replacen(&token_source, &app_source, 1);
    assert!(text.contains("app = "), "{text}");
    let daemon = TestDaemon::start(&text).await;
    api.grant_role("acme/widgets", "maintainer", "write");
    let head = "5".repeat(40);
    api.set_head("acme/widgets", 7, &head);
    let installed = |mut payload: Value| {
        payload["installation"] = json!({"id": INSTALLATION});
        payload
    };

    let job = deliver(&daemon, "github", "pull_request", &installed(fork_push(&head))).await.remove(0);
    assert_eq!(state(&daemon, &job).await, "waiting");
    let approval = installed(pr_comment("created", "maintainer", "/ok-to-test"));
    let approval = deliver(&daemon, "github", "issue_comment", &approval).await;
    assert_eq!(daemon.finished_job(&approval[0]).await["state"], "succeeded");
    assert_eq!(daemon.finished_job(&job).await["state"], "succeeded");
    let minted: Vec<(Vec<String>, Value)> = api.minted().into_iter().map(|m| (m.repositories, m.permissions)).collect();
    assert_eq!(
        minted,
        [
            (vec!["widgets".to_owned()], json!({"metadata": "read"})),
            (vec!["widgets".to_owned()], json!({"pull_requests": "read"})),
        ]
    );
    let asked: Vec<(String, Option<String>)> =
        api.take().into_iter().filter(|r| r.method == "GET").map(|r| (r.line(), r.authorization)).collect();
    assert_eq!(
        asked,
        [
            (
                "GET /repos/acme/widgets/collaborators/maintainer/permission".to_owned(),
                Some("Bearer ghs_fake1".to_owned())
            ),
            ("GET /repos/acme/widgets/pulls/7".to_owned(), Some("Bearer ghs_fake2".to_owned())),
        ]
    );
    daemon.stop().await;
}
