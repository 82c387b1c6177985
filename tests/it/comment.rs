//! `comment` against the fake forge API: a templated comment lands on the pull request,
//! merge request or commit of the event, for GitHub, Gitea and GitLab, carrying the
//! credential the host attached (which the plugin never had); API errors fail the step.

use gitauto_tests::TestDaemon;
use gitauto_tests::fake_api::FakeApi;
use serde_json::Value;
use std::path::Path;

const TOKEN: &str = "forge-token-the-plugin-never-sees";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads").join(path)).unwrap()
}

/// The GitHub, Gitea and GitLab sources and the `comment` plugin, granted the fake API
/// with a token from a file in `dir` (also used by `commands`).
pub(crate) fn forges_and_comment_plugin(api: &FakeApi, dir: &Path) -> String {
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let host = api.url.trim_start_matches("http://");
    format!(
        r#"
[sources.github]
forge = "github"
secret = "gh"
[sources.gitea]
forge = "gitea"
secret = "gt"
[sources.gitlab]
forge = "gitlab"
secret = "gl"

[plugins.comment]
wasm = "builtin:comment"
grants = {{ hosts = [{{ host = "{host}", credential = "file:{dir}/token", scheme = "token" }}] }}
"#,
        dir = dir.display(),
    )
}

async fn daemon(api: &FakeApi, dir: &Path) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"{forges}
[[rules]]
name = "github"
on = ["pull_request.opened", "push"]
source = ["github", "gitea"]
steps = [{{ plugin = "comment", with = {{ api_url = "{api}{{{{ '/api/v1' if event.forge == 'gitea' else '' }}}}", body = "Thanks @{{{{ event.sender }}}} for {{{{ event.pull_request.title if event.pull_request else event.after[:7] }}}}" }} }}]

[[rules]]
name = "gitlab"
on = "pull_request"
source = "gitlab"
# `number` is one expression: it stays a number (as text the plugin would refuse it).
steps = [{{ plugin = "comment", with = {{ api_url = "{api}/api/v4", number = "{{{{ event.pull_request.number }}}}", body = "Merge request !{{{{ event.pull_request.number }}}} seen" }} }}]
"#,
        forges = forges_and_comment_plugin(api, dir),
        api = api.url,
    ))
    .await
}

async fn deliver(daemon: &TestDaemon, source: &str, event: &str, fixture_path: &str) -> Value {
    let (status, body, _) = daemon.post_as(source, event, &fixture(fixture_path)).await;
    assert_eq!(status, 202, "{body}");
    daemon.finished_job(body["jobs"][0].as_str().unwrap()).await
}

#[tokio::test]
async fn comments_land_where_each_forge_keeps_them() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path()).await;

    let job = deliver(&daemon, "github", "pull_request", "github/pull_request-opened.json").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["summary"], "commented on pull request #7 of acme/widgets");
    let job = deliver(&daemon, "github", "push", "github/push.json").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let job = deliver(&daemon, "gitea", "pull_request", "gitea/pull_request-opened.json").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let job = deliver(&daemon, "gitlab", "Merge Request Hook", "gitlab/merge_request-open.json").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let requests = api.take();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "POST /repos/acme/widgets/issues/7/comments",
            "POST /repos/acme/widgets/commits/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c/comments",
            "POST /api/v1/repos/acme/widgets/issues/3/comments",
            "POST /api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests/12/notes",
        ]
    );
    for request in &requests {
        assert_eq!(request.authorization.as_deref(), Some(format!("token {TOKEN}").as_str()), "{}", request.line());
    }
    let comments: Vec<String> = api.with(|s| s.comments.iter().map(|(_, body)| body.clone()).collect());
    assert!(comments[0].starts_with("Thanks @"), "{comments:?}");
    assert!(comments[1].ends_with("for 0d1a26e"), "{comments:?}");
    assert_eq!(comments[3], "Merge request !12 seen");
    daemon.stop().await;
}

#[tokio::test]
async fn an_api_refusal_fails_the_step_with_the_answer() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&api, dir.path()).await;
    api.fail(
        "POST",
        "/repos/acme/widgets/issues/7/comments",
        403,
        serde_json::json!({"message": "Resource not accessible by integration"}),
    );
    let job = deliver(&daemon, "github", "pull_request", "github/pull_request-opened.json").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(
        job["summary"],
        "step 1 (comment) failed: comment on pull request #7 of acme/widgets not posted: HTTP 403: {\"message\":\"Resource not accessible by integration\"}"
    );
    daemon.stop().await;
}
