//! `[compat.gitreload]`: gitreload's endpoints, status codes and messages, backed by a
//! real checkout that the `fetch-update` plugin updates.

use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use serde_json::{Value, json};
use std::path::Path;

async fn daemon(repodir: &Path, grant: &Path) -> TestDaemon {
    daemon_with(repodir, grant, "", "").await
}

/// A daemon whose `[compat.gitreload]` also holds `compat` (keys), with `before` (tables)
/// ahead of everything.
async fn daemon_with(repodir: &Path, grant: &Path, before: &str, compat: &str) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
{before}
{source}
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{grant}", git = true }}] }}

[compat.gitreload]
source = "github"
repodir = "{repodir}"
update = "fetch-update"
{compat}
"#,
        source = github_source(),
        repodir = repodir.display(),
        grant = grant.display(),
    ))
    .await
}

/// `GET /metrics` as text.
async fn metrics(daemon: &TestDaemon) -> String {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", daemon.url));
    if let Some(token) = &daemon.config.server.api_token {
        request = request.bearer_auth(token.expose());
    }
    request.send().await.unwrap().text().await.unwrap()
}

/// The `gitauto_deliveries_total` count for the github source and `verdict`.
fn delivered(metrics: &str, verdict: &str) -> u64 {
    let line = format!("gitauto_deliveries_total{{source=\"github\",verdict=\"{verdict}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(line.as_str())).map_or(0, |n| n.parse().unwrap())
}

/// Posts an unsigned push to `/update`, with these `X-Forwarded-For` lines.
async fn post_unsigned(daemon: &TestDaemon, body: &[u8], forwarded_for: &[&str]) -> (u16, Value) {
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-github-event".to_owned(), "push".to_owned()),
    ];
    headers.extend(forwarded_for.iter().map(|value| ("x-forwarded-for".to_owned(), (*value).to_owned())));
    daemon.post("/update", &headers, body).await
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
    // A checkout whose config would make libgit2 read another file is never opened.
    repo.clone_to(&repodir.join("included"));
    let config = repodir.join("included/.git/config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    // (A small file: were it opened, the push would be queued; a huge one would hold it.)
    std::fs::write(repodir.join("included.conf"), "[user]\n\tname = x\n").unwrap();
    text.push_str(&format!("[include]\n\tpath = {}\n", repodir.join("included.conf").display()));
    std::fs::write(&config, text).unwrap();
    assert_eq!(
        msg(post(&daemon, "/update", "push", &push("included", "main", &after)).await),
        (500, "Repository not valid".into())
    );
    let (_, refused) = daemon.get("/api/deliveries?verdict=unmatched").await;
    let reasons = refused["deliveries"].to_string();
    assert!(reasons.contains("included/.git/config") || reasons.contains("include.path"), "{reasons}");
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

/// Issue 19: what the endpoints refuse (a bad signature, a malformed payload, a
/// repository with no checkout here, another branch, an event gitreload ignores) is
/// recorded as a delivery and counted in the metrics, as a forge source's deliveries are.
#[tokio::test]
async fn refused_deliveries_are_recorded_and_counted() {
    let root = tempfile::tempdir().unwrap();
    let repodir = root.path().join("repos");
    let repo = TestGit::new(root.path(), "course");
    repo.clone_to(&repodir.join("course"));
    let after = repo.head();
    let daemon = daemon(&repodir, &repodir).await;

    let body = push("course", "main", &after);
    let forged = [
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-github-event".to_owned(), "push".to_owned()),
        ("x-hub-signature-256".to_owned(), gitauto_tests::sign("not-the-secret", &body)),
    ];
    assert_eq!(daemon.post("/update", &forged, &body).await.0, 401);
    assert_eq!(post(&daemon, "/update", "push", b"{not json").await.0, 400);
    let (status, answer) = post(&daemon, "/update", "push", &push("unknown", "main", &after)).await;
    assert_eq!((status, answer["msg"].as_str()), (500, Some("Repository not valid")));
    let (status, _) = post(&daemon, "/update", "push", &push("course", "feature", &after)).await;
    assert_eq!(status, 200);
    let (status, _) = post(&daemon, "/update", "issues", b"{}").await;
    assert_eq!(status, 200);

    let (_, deliveries) = daemon.get("/api/deliveries").await;
    let seen: Vec<(&str, &str)> = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|d| (d["verdict"].as_str().unwrap(), d["reason"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(seen.len(), 5, "{deliveries:#}");
    assert_eq!(seen[0].0, "rejected");
    assert_eq!(seen[1].0, "invalid");
    assert_eq!(seen[2].0, "unmatched");
    assert!(seen[2].1.starts_with("no git checkout at ") && seen[2].1.ends_with("unknown"), "{seen:?}");
    assert_eq!(seen[3].0, "unmatched");
    assert!(seen[3].1.starts_with("`refs/heads/feature` is not the branch checked out at "), "{seen:?}");
    assert_eq!(seen[4], ("ignored", "gitreload handles push events, not `issues`"));
    assert!(deliveries["deliveries"].as_array().unwrap().iter().all(|d| d["arrived"] == "compat"));

    let metrics = metrics(&daemon).await;
    let counts: Vec<u64> = ["rejected", "invalid", "unmatched", "ignored", "queued"]
        .iter()
        .map(|verdict| delivered(&metrics, verdict))
        .collect();
    assert_eq!(counts, [1, 1, 2, 1, 0], "{metrics}");
    assert_eq!(daemon.get("/queue").await.1["queue_length"], 0, "nothing refused was queued");
}

/// Issue 19: `allow_unsigned_from` takes unsigned deliveries from those networks only:
/// the connection's address, or the client a trusted proxy forwarded for (the right-most
/// address no trusted proxy wrote; never one the client wrote itself). Elsewhere: 403,
/// recorded. A wrong signature stays wrong wherever it comes from.
#[tokio::test]
async fn unsigned_deliveries_are_taken_only_from_allowed_networks() {
    let root = tempfile::tempdir().unwrap();
    let repodir = root.path().join("repos");
    let repo = TestGit::new(root.path(), "course");
    repo.clone_to(&repodir.join("course"));
    let body = push("course", "main", &repo.head());

    // Loopback is allowed; no proxy is trusted, so a forwarded address changes nothing.
    let direct = daemon_with(&repodir, &repodir, "", r#"allow_unsigned_from = ["127.0.0.0/8"]"#).await;
    let (status, answer) = post_unsigned(&direct, &body, &["203.0.113.9"]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["msg"].as_str().unwrap().starts_with("Added git update task to queue."), "{answer}");
    let forged = [
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-github-event".to_owned(), "push".to_owned()),
        ("x-hub-signature-256".to_owned(), gitauto_tests::sign("not-the-secret", &body)),
    ];
    assert_eq!(direct.post("/update", &forged, &body).await.0, 401, "signed wrongly is not unsigned");
    // Redelivered, the unsigned delivery would reach every rule of the source: refused.
    let (_, listed) = direct.get("/api/deliveries").await;
    let deliveries = listed["deliveries"].as_array().unwrap().len();
    let mut all = listed["deliveries"].as_array().unwrap().iter();
    let accepted = all.find(|d| d["arrived"] == "compat" && d["verdict"] == "queued").unwrap();
    let id = accepted["id"].as_str().unwrap();
    let (status, answer) = direct.post(&format!("/api/deliveries/{id}/redeliver"), &[], b"").await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("[compat.gitreload]"), "{answer}");
    let (_, listed) = direct.get("/api/deliveries").await;
    assert_eq!(listed["deliveries"].as_array().unwrap().len(), deliveries, "nothing was recorded");
    direct.stop().await;

    // Loopback is a trusted proxy, and only 192.168.1.7 and 10/8 may send unsigned.
    let proxied = daemon_with(
        &repodir,
        &repodir,
        "[server]\ntrusted_proxies = [\"127.0.0.1\", \"172.16.0.0/12\"]\n",
        r#"allow_unsigned_from = ["10.0.0.0/8", "192.168.1.7"]"#,
    )
    .await;
    let cases: [(&[&str], u16); 7] = [
        (&["192.168.1.7"], 200),
        (&["10.20.30.40, 172.16.0.9"], 200),
        // The proxy itself is not allowed.
        (&[], 403),
        (&["203.0.113.9"], 403),
        // The client wrote the allowed address; the proxy appended the real one.
        (&["192.168.1.7, 203.0.113.9"], 403),
        (&["192.168.1.7", "203.0.113.9"], 403),
        (&["192.168.1.7, not-an-address"], 403),
    ];
    for (forwarded, want) in cases {
        let (status, answer) = post_unsigned(&proxied, &body, forwarded).await;
        assert_eq!(status, want, "X-Forwarded-For {forwarded:?}: {answer}");
    }
    let (status, answer) = post_unsigned(&proxied, &body, &["203.0.113.9"]).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("unsigned delivery from 203.0.113.9, which is not in [compat.gitreload] allow_unsigned_from"))
    );
    let (_, rejected) = proxied.get("/api/deliveries?verdict=rejected").await;
    assert_eq!(rejected["deliveries"].as_array().unwrap().len(), 6, "{rejected:#}");
    assert_eq!(delivered(&metrics(&proxied).await, "rejected"), 6);
}

/// Issue 19: "Queue size was N" counts gitreload's own work (the compat rules' jobs),
/// not the unrelated jobs waiting in the same queue.
#[tokio::test]
async fn the_queue_size_counts_only_the_compat_rules_jobs() {
    let root = tempfile::tempdir().unwrap();
    let repodir = root.path().join("repos");
    let repo = TestGit::new(root.path(), "course");
    repo.clone_to(&repodir.join("course"));
    let after = repo.commit("course.xml", "<course/>\n", "import me");
    repo.push("main");
    let before = format!(
        r#"
[server]
api_token = "admin-token"

[[rules]]
name = "held"
on = "manual"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{}" }} }}]
"#,
        repodir.display()
    );
    let daemon = daemon_with(&repodir, &repodir, &before, "").await;
    let client = gitauto::client::Client::new(&daemon.url, Some("admin-token".into()));
    assert_eq!(client.pause_rule("held", true).await.unwrap().status, 200);
    for _ in 0..3 {
        let answer = client.post_json("/api/events", &json!({"rule": "held"})).await.unwrap();
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    assert_eq!(daemon.get("/queue").await.1["queue_length"], 3);
    let (status, answer) = post(&daemon, "/update", "push", &push("course", "main", &after)).await;
    assert_eq!((status, answer["msg"].as_str()), (200, Some("Added git update task to queue. Queue size was 1")));
}
