//! Plugins in Python and JavaScript, built with their languages' component tooling from
//! `examples/plugins/`, react to a real push in the daemon: each opens the real checkout
//! through the git capability, logs, and returns an outcome whose output is checked.

use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload, tools};
use std::path::Path;

async fn daemon(root: &Path, python: &Path, javascript: &Path) -> TestDaemon {
    let checkout = root.join("repos/acme/widgets");
    TestDaemon::start(&format!(
        r#"
{source}
[plugins.py]
wasm = "{python}"
grants = {{ dirs = ["{repos}"] }}
limits = {{ memory = "256MiB" }}

[plugins.js]
wasm = "{javascript}"
grants = {{ dirs = ["{repos}"] }}
limits = {{ memory = "256MiB" }}

[[rules]]
name = "python"
on = "push"
steps = [{{ plugin = "py", with = {{ checkout = "{checkout}" }} }}]

[[rules]]
name = "javascript"
on = "push"
steps = [{{ plugin = "js", with = {{ checkout = "{checkout}" }} }}]
"#,
        source = github_source(),
        python = python.display(),
        javascript = javascript.display(),
        repos = root.join("repos").display(),
        checkout = checkout.display(),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_plugins_react_to_a_push() {
    let (python, javascript) = tokio::join!(
        tokio::task::spawn_blocking(tools::python_plugin),
        tokio::task::spawn_blocking(tools::javascript_plugin)
    );
    let (python, javascript) = (python.unwrap(), javascript.unwrap());
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let checkout = root.path().join("repos/acme/widgets");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("docs/index.md", "# hello\n", "docs");
    repo.push("main");
    gitauto_tests::git(&checkout, &["fetch", "--quiet", "origin"]);
    let head = gitauto_tests::git(&checkout, &["rev-parse", "HEAD"]);

    let daemon = daemon(root.path(), &python, &javascript).await;
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    for (job, language) in jobs.iter().zip(["python", "javascript"]) {
        let job = daemon.finished_job(job.as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{language}: {job:#}");
        let output = &job["steps"][0]["output"];
        assert_eq!(output["head"], head.as_str(), "{language}");
        assert_eq!(output["branch"], "main");
        // The checkout has both commits, so the paths come from git, not the payload.
        assert_eq!(output["changed"], serde_json::json!(["docs/index.md"]), "{language}");
        let logs: Vec<&str> = job["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
        assert!(logs.contains(&"changed: docs/index.md"), "{language}: {logs:?}");
        assert_eq!(job["summary"], format!("acme/widgets@main: 1 path(s) changed; checkout at {}", &head[..10]));
    }
    daemon.stop().await;
}
