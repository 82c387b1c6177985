//! The walking skeleton end to end: a signed GitHub push makes the built-in
//! `fetch-update` plugin bring an existing checkout to the pushed commit.

use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use std::path::Path;

/// A daemon whose `fetch-update` may use `<root>/repos` and follows every push of `repo`.
async fn daemon(root: &Path, repo: &str) -> TestDaemon {
    let repos = root.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    TestDaemon::start(&format!(
        r#"
{source}
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}

[[rules]]
name = "update"
on = "push"
repo = "{repo}"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]
"#,
        repos = repos.display(),
        source = github_source(),
    ))
    .await
}

async fn push(
    daemon: &TestDaemon,
    owner: &str,
    name: &str,
    branch: &str,
    before: &str,
    after: &str,
) -> serde_json::Value {
    let payload = push_payload(owner, name, &format!("refs/heads/{branch}"), before, after, "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{body}");
    daemon.finished_job(jobs[0].as_str().unwrap()).await
}

#[tokio::test]
async fn signed_push_brings_the_checkout_to_the_pushed_commit() {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let checkout = root.path().join("repos/acme/widgets");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("docs/index.md", "# hello\n", "add docs");
    repo.push("main");
    std::fs::write(checkout.join("leftover.tmp"), "untracked").unwrap();

    let daemon = daemon(root.path(), "acme/*").await;
    let job = push(&daemon, "acme", "widgets", "main", &before, &after).await;

    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after);
    assert_eq!(std::fs::read_to_string(checkout.join("docs/index.md")).unwrap(), "# hello\n");
    assert!(!checkout.join("leftover.tmp").exists(), "untracked files are cleaned");
    let output = &job["steps"][0]["output"];
    assert_eq!((output["old"].as_str(), output["new"].as_str()), (Some(before.as_str()), Some(after.as_str())));
    assert_eq!(output["removed"], serde_json::json!(["leftover.tmp"]));
    assert!(
        job["logs"].as_array().unwrap().iter().any(|l| l["message"].as_str().unwrap().starts_with("fetching origin"))
    );

    // The same push again: nothing new, still a success.
    let again = push(&daemon, "acme", "widgets", "main", &before, &after).await;
    assert_eq!(again["state"], "succeeded");
    assert!(again["summary"].as_str().unwrap().contains("already at"), "{again:#}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_checkout_directly_under_repodir_is_found_too() {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let checkout = root.path().join("repos/widgets");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("a.txt", "a", "a");
    repo.push("main");

    let daemon = daemon(root.path(), "acme/*").await;
    let job = push(&daemon, "acme", "widgets", "main", &before, &after).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after);
}

#[tokio::test]
async fn a_push_to_another_branch_is_skipped_and_moves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let checkout = root.path().join("repos/acme/widgets");
    repo.clone_to(&checkout);
    let main_head = repo.head();
    repo.branch("dev");
    let dev_head = repo.commit("dev.txt", "dev", "dev work");
    repo.push("dev");

    let daemon = daemon(root.path(), "acme/*").await;
    let job = push(&daemon, "acme", "widgets", "dev", &main_head, &dev_head).await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    assert!(
        job["summary"].as_str().unwrap().contains("pushed branch `dev` is not the branch `main` checked out"),
        "{job:#}"
    );
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), main_head);
}

#[tokio::test]
async fn a_repository_that_is_not_cloned_fails_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let daemon = daemon(root.path(), "acme/*").await;
    let job = push(&daemon, "acme", "gadgets", "main", &"1".repeat(40), &"2".repeat(40)).await;
    assert_eq!(job["state"], "failed");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("acme/gadgets is not cloned under"), "{error}");
    assert!(error.contains("repos/acme/gadgets and"), "{error}");
}

#[tokio::test]
async fn payload_names_never_reach_paths_outside_repodir() {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "outside");
    // A checkout next to repodir, reachable with `..`, and one at an absolute path.
    let victim = root.path().join("outside");
    repo.clone_to(&victim);
    let victim_head = repo.head();
    std::fs::write(victim.join("precious.txt"), "keep me").unwrap();
    let newer = repo.commit("b.txt", "b", "newer");
    repo.push("main");

    let daemon = daemon(root.path(), "**").await;
    let absolute = victim.display().to_string();
    let cases = [
        ("acme", "../outside", "contains a path separator"),
        ("..", "outside", "is a relative path component"),
        ("acme/..", "outside", "is a relative path component"),
        ("acme", "..", "is a relative path component"),
        ("acme", absolute.as_str(), "contains a path separator"),
    ];
    // The host refuses these names when it reads the delivery (see `names.rs`), so no
    // job is made; `gitauto-checkout` checks them again on its side (its unit tests).
    for (owner, name, why) in cases {
        let payload = push_payload(owner, name, "refs/heads/main", &victim_head, &newer, "file:///unused");
        let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
        assert_eq!(status, 400, "{owner}/{name}: {body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{owner}/{name}: {body}");
    }
    assert_eq!(git(&victim, &["rev-parse", "HEAD"]), victim_head, "the victim checkout did not move");
    assert_eq!(std::fs::read_to_string(victim.join("precious.txt")).unwrap(), "keep me");
}
