//! The runtime's limits: a plugin that loops forever or allocates without bound fails
//! its step with a clear reason, and the daemon keeps serving other events meanwhile.

use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};

#[tokio::test]
async fn runaway_plugins_are_stopped_and_the_daemon_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let repos = root.path().join("repos");
    let checkout = repos.join("acme/widgets");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("x.txt", "x", "x");
    repo.push("main");

    let daemon = TestDaemon::start(&format!(
        r#"
[server]
workers = 3

{source}
[plugins.forever]
wasm = "{forever}"
limits = {{ timeout = "2s" }}

[plugins.hog]
wasm = "{hog}"
limits = {{ memory = "16MiB" }}

[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = ["{repos}"] }}

[[rules]]
name = "loop"
on = "push"
repo = "acme/loop"
steps = [{{ plugin = "forever" }}]

[[rules]]
name = "hog"
on = "push"
repo = "acme/hog"
steps = [{{ plugin = "hog" }}]

[[rules]]
name = "update"
on = "push"
repo = "acme/widgets"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]
"#,
        forever = env!("GITAUTO_GUEST_FOREVER_LOOP"),
        hog = env!("GITAUTO_GUEST_MEMORY_HOG"),
        repos = repos.display(),
        source = github_source(),
    ))
    .await;

    let post = |name: &str, after: &str| {
        let payload = push_payload("acme", name, "refs/heads/main", &before, after, "file:///unused");
        let daemon = &daemon;
        async move {
            let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
            assert_eq!(status, 202, "{body}");
            body["jobs"][0].as_str().unwrap().to_owned()
        }
    };
    let looping = post("loop", &after).await;
    let hog = post("hog", &after).await;
    let update = post("widgets", &after).await;

    // While the looping plugin still runs, other work is served.
    let updated = daemon.finished_job(&update).await;
    assert_eq!(updated["state"], "succeeded", "{updated:#}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after);
    let (_, still) = daemon.get(&format!("/api/jobs/{looping}")).await;
    assert_eq!(still["state"], "running", "the looping plugin is still within its 2 s");

    let hogged = daemon.finished_job(&hog).await;
    assert_eq!(hogged["state"], "failed");
    assert_eq!(hogged["error"], "step 1 (hog): plugin hog trapped: memory limit of 16 MiB exceeded");

    let looped = daemon.finished_job(&looping).await;
    assert_eq!(looped["state"], "failed");
    assert_eq!(looped["error"], "step 1 (forever): plugin forever trapped: deadline of 2 s exceeded");

    assert_eq!(daemon.get("/healthz").await.0, 200);
    daemon.stop().await;
}
