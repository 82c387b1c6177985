//! The WIT package's compatibility promise: a host of `gitauto:plugin@0.1.N` runs every
//! plugin built for `0.1.M` with M <= N. The guest `old-wit` is built against the 0.1.0
//! WIT as released (its own copy, never updated), without the SDK.

use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload};

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_for_0_1_0_runs_on_this_host() {
    let wasm = std::fs::read(env!("GITAUTO_GUEST_OLD_WIT")).unwrap();
    let inspection = gitauto::runtime::inspect::inspect(&wasm).unwrap();
    assert_eq!(inspection.targets.as_deref(), Some("0.1.0"));
    assert_ne!(gitauto::runtime::WIT_PACKAGE, "gitauto:plugin@0.1.0", "this host implements a later 0.1");
    assert_eq!(inspection.runnable, Ok(()));

    let root = tempfile::tempdir().unwrap();
    let repos = std::fs::canonicalize(root.path()).unwrap().join("repos");
    let repo = TestGit::new(&repos, "widgets");
    let before = repo.head();
    let after = repo.commit("docs/index.md", "# docs\n", "docs");
    repo.push("main");
    let daemon = TestDaemon::start(&format!(
        r#"{source}
[plugins.old]
wasm = "{wasm}"
grants = {{ dirs = ["{repos}"] }}

[[rules]]
name = "old"
on = "push"
steps = [{{ plugin = "old", with = {{ repodir = "{origin}" }} }}]
"#,
        source = github_source(),
        wasm = env!("GITAUTO_GUEST_OLD_WIT"),
        repos = repos.display(),
        origin = repo.origin.display(),
    ))
    .await;
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, "file:///unused");
    let (status, answer) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let job = daemon.finished_job(answer["jobs"][0].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["steps"][0]["output"], serde_json::json!({"head": after, "changed": ["docs/index.md"]}));
    daemon.stop().await;
}
