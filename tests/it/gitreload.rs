//! `[compat.gitreload]`: gitreload's endpoints, status codes and messages, backed by a
//! real checkout that the `fetch-update` plugin updates.

use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use serde_json::{Value, json};
use std::path::Path;

async fn daemon(repodir: &Path, grant: &Path) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
{source}
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{grant}", git = true }}] }}

[compat.gitreload]
source = "github"
repodir = "{repodir}"
update = "fetch-update"
"#,
        source = github_source(),
        repodir = repodir.display(),
        grant = grant.display(),
    ))
    .await
}

async fn post(daemon: &TestDaemon, path: &str, event: &str, body: &[u8]) -> (u16, Value) {
    let headers = [
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-github-event".to_owned(), event.to_owned()),
        ("x-hub-signature-256".to_owned(), gitauto_tests::sign(SECRET, body)),
    ];
    daemon.post(path, &headers, body).await
}

fn push(name: &str, branch: &str, after: &str) -> Vec<u8> {
    push_payload("acme", name, &format!("refs/heads/{branch}"), &"0".repeat(40), after, "file:///unused")
}

#[tokio::test]
async fn gitreload_clients_get_gitreloads_answers_and_the_checkout_is_updated() {
    let root = tempfile::tempdir().unwrap();
    let repodir = root.path().join("repos");
    let repo = TestGit::new(root.path(), "course");
    let checkout = repodir.join("course");
    repo.clone_to(&checkout);
    let after = repo.commit("course.xml", "<course/>\n", "import me");
    repo.push("main");
    let daemon = daemon(&repodir, &repodir).await;

    let msg = |answer: (u16, Value)| (answer.0, answer.1["msg"].as_str().unwrap_or_default().to_owned());
    assert_eq!(msg(post(&daemon, "/update", "ping", b"{}").await), (200, "pong".into()));
    assert_eq!(msg(post(&daemon, "/update", "issues", b"{}").await), (200, "We do not handle that event".into()));
    assert_eq!(
        msg(post(&daemon, "/update", "push", &push("missing", "main", &after)).await),
        (500, "Repository not valid".into())
    );
    assert_eq!(
        msg(post(&daemon, "/update", "push", &push("..", "main", &after)).await),
        (500, "Repository not valid".into())
    );
    assert_eq!(
        msg(post(&daemon, "/update", "push", &push("course", "feature", &after)).await),
        (200, "Branch pushed doesn't match local branch, ignoring".into())
    );
    let (status, _) = post(&daemon, "/update", "push", b"{not json").await;
    assert_eq!(status, 400);
    let (status, answer) = post(&daemon, "/gitreload", "push", &push("course", "main", &after)).await;
    assert_eq!(
        (status, &answer["error"]),
        (404, &json!("this gitreload endpoint has no plugin configured in [compat.gitreload]"))
    );
    let unsigned = [("x-github-event".to_owned(), "ping".to_owned())];
    assert_eq!(daemon.post("/update", &unsigned, b"{}").await.0, 401, "signatures are checked, unlike gitreload");
    let client = reqwest::Client::new();
    assert_eq!(client.delete(format!("{}/", daemon.url)).send().await.unwrap().status().as_u16(), 405);
    assert_eq!(
        reqwest::get(format!("{}/", daemon.url)).await.unwrap().status().as_u16(),
        200,
        "GET / is the dashboard"
    );

    let answer = msg(post(&daemon, "/update", "push", &push("course", "main", &after)).await);
    assert_eq!(answer, (200, "Added git update task to queue. Queue size was 1".into()));
    gitauto_tests::wait_for("the checkout to be updated", std::time::Duration::from_secs(60), || async {
        (git(&checkout, &["rev-parse", "HEAD"]) == after).then_some(())
    })
    .await;
    let (_, deliveries) = daemon.get("/api/deliveries?verdict=queued").await;
    let job = daemon.finished_job(deliveries["deliveries"][0]["jobs"][0].as_str().unwrap()).await;
    assert_eq!((job["rule"].as_str(), job["state"].as_str()), (Some("gitreload-update"), Some("succeeded")));
}

#[tokio::test]
async fn a_detached_checkout_and_a_missing_repodir_are_reported_as_gitreload_did() {
    let root = tempfile::tempdir().unwrap();
    let repodir = root.path().join("repos");
    let repo = TestGit::new(root.path(), "course");
    let checkout = repodir.join("course");
    repo.clone_to(&checkout);
    git(&checkout, &["checkout", "--quiet", "--detach"]);
    let daemon = daemon(&repodir, &repodir).await;
    let (status, answer) = post(&daemon, "/update", "push", &push("course", "main", &"1".repeat(40))).await;
    assert_eq!((status, answer["msg"].as_str()), (500, Some("Unable to get current branch of checked out repo")));
    daemon.stop().await;

    let daemon = self::daemon(&root.path().join("no-such-dir"), &repodir).await;
    let (status, answer) = post(&daemon, "/update", "push", &push("course", "main", &"1".repeat(40))).await;
    assert_eq!((status, answer["msg"].as_str()), (500, Some("Server configuration issue")));
    assert_eq!(daemon.get("/queue").await.1, json!({"queue_length": 0, "queue": []}));
}
