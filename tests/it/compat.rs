//! The WIT package's compatibility promise: this 0.2 host runs every plugin built for
//! any `gitauto:plugin@0.1.x`, unchanged. The guest `old-wit` is built against the 0.1.0
//! WIT as released (its own copy, never updated), without the SDK; the built-in plugins
//! as 0.1.2 built them are committed (`tests/fixtures/wasm-0.1`) and never rebuilt.

use gitauto_tests::receiver::Receiver;
use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use std::path::{Path, PathBuf};

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_for_0_1_0_runs_on_this_host() {
    let wasm = std::fs::read(env!("GITAUTO_GUEST_OLD_WIT")).unwrap();
    let inspection = gitauto::runtime::inspect::inspect(&wasm).unwrap();
    assert_eq!(inspection.targets.as_deref(), Some("0.1.0"));
    assert_eq!(gitauto::runtime::WIT_PACKAGE, "gitauto:plugin@0.2.0");
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

/// A plugin as gitauto 0.1.2 built it.
fn built_for_0_1_2(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wasm-0.1").join(name)
}

/// `fetch-update` (git), `run` (0.1's `shell`, with a millisecond timeout) and `notify`
/// (0.1's `http`, with a host credential and a millisecond timeout) as 0.1.2 built them
/// run one job on a push: each through its 0.1 interface, under its grant.
#[tokio::test(flavor = "multi_thread")]
async fn the_built_in_plugins_as_0_1_2_built_them_run_unchanged() {
    for name in ["fetch_update.wasm", "run.wasm", "notify.wasm"] {
        let inspection = gitauto::runtime::inspect::inspect(&std::fs::read(built_for_0_1_2(name)).unwrap()).unwrap();
        assert_eq!(inspection.targets.as_deref(), Some("0.1.2"), "{name}");
        assert_eq!(inspection.runnable, Ok(()), "{name}");
    }
    let receiver = Receiver::start().await;
    receiver.then_answer(200, &[], "noted");
    // A listener no grant names, counting the connections it gets.
    let ungranted = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ungranted_addr = ungranted.local_addr().unwrap();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = reached.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ungranted.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    let repo = TestGit::new(&root_path, "widgets");
    let checkout = root_path.join("repos/acme/widgets");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("docs/index.md", "# docs\n", "docs");
    repo.push("main");
    std::fs::write(root_path.join("token"), "s3cret-token").unwrap();
    let daemon = TestDaemon::start(&format!(
        r#"{source}
[plugins.old-fetch]
wasm = "{fetch}"
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}

[plugins.old-run]
wasm = "{run}"
grants = {{ dirs = ["{repos}"], commands = ["git"] }}

[plugins.old-notify]
wasm = "{notify}"
grants = {{ hosts = [{{ host = "{host}", credential = "file:{token}" }}] }}

[[rules]]
name = "old"
on = "push"

[[rules.steps]]
name = "fetch"
plugin = "old-fetch"
with = {{ repodir = "{repos}" }}

[[rules.steps]]
name = "head"
plugin = "old-run"
with = {{ program = "git", args = ["log", "-1", "--format=%H"], cwd = "{checkout}", timeout = "20s" }}

[[rules.steps]]
name = "tell"
plugin = "old-notify"
with = {{ url = "{receiver}/done", text = "at {{{{ steps.head.output.stdout | trim }}}}", timeout = "5s" }}

[[rules]]
name = "old-ungranted"
on = "push"
steps = [{{ plugin = "old-notify", with = {{ url = "http://{ungranted}/x", text = "out" }} }}]
"#,
        source = github_source(),
        fetch = built_for_0_1_2("fetch_update.wasm").display(),
        run = built_for_0_1_2("run.wasm").display(),
        notify = built_for_0_1_2("notify.wasm").display(),
        repos = root_path.join("repos").display(),
        checkout = checkout.display(),
        host = receiver.host(),
        token = root_path.join("token").display(),
        receiver = receiver.url,
        ungranted = ungranted_addr,
    ))
    .await;
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, "file:///unused");
    let (status, answer) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let jobs: Vec<&str> = answer["jobs"].as_array().unwrap().iter().map(|job| job.as_str().unwrap()).collect();
    assert_eq!(jobs.len(), 2, "{answer}");
    // Through 0.1's `http`, a host no grant names is refused before any connection.
    let refused = daemon.finished_job(jobs[1]).await;
    assert_eq!((refused["rule"].as_str(), refused["state"].as_str()), (Some("old-ungranted"), Some("failed")));
    assert!(refused["summary"].as_str().unwrap().contains("is not granted"), "{refused:#}");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "no connection reached the ungranted listener");
    let job = daemon.finished_job(jobs[0]).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after, "fetch-update moved the checkout");
    let ran = &job["steps"][1]["output"];
    assert_eq!(ran["exit_code"], 0, "{ran:#}");
    assert_eq!(ran["stdout"].as_str().unwrap().trim(), after);
    assert!(ran["duration_ms"].as_u64().is_some(), "0.1's `duration-ms` reached the plugin: {ran:#}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/done");
    assert_eq!(requests[0].header("authorization"), Some("Bearer s3cret-token"));
    assert!(requests[0].text().contains(&format!("at {after}")), "{}", requests[0].text());
    // Each call was billed to the capability it reached, 0.1's `shell` as `process`.
    let calls = |step: usize| job["steps"][step]["bill"]["calls"].clone();
    assert!(calls(0)["git"]["count"].as_u64().unwrap() >= 1, "{:#}", calls(0));
    assert_eq!(calls(1)["process"]["count"], 1, "{:#}", calls(1));
    assert_eq!(calls(2)["http"]["count"], 1, "{:#}", calls(2));
    daemon.stop().await;
}
