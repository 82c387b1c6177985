//! Hamster's pipeline, end to end through the daemon and nothing but built-in plugins:
//! a signed `pull_request.opened` for a repository served by the real `git
//! http-backend`, the job's checkout of the pull request, `mergeable`, then `run` with
//! the real flake8 (from Debian) on the files the pull request changed, and on a failure
//! one `comment` on the pull request at a fake GitHub that records it. A clean pull
//! request gets no comment; a conflicting one gets the conflicts.

use gitauto_tests::debian::ensure_debian_package;
use gitauto_tests::fake_api::FakeApi;
use gitauto_tests::git_http::GitHttp;
use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, pull_request_payload};
use serde_json::Value;
use std::path::Path;

const TOKEN: &str = "hamster-comment-token";

/// The rule as a user would write it (docs/config.md's lint example, with `mergeable`).
fn config(git_host: &str, api: &str, token: &Path) -> String {
    format!(
        r#"
{source}
[plugins.flake8]
wasm = "builtin:run"
grants = {{ hosts = ["{git_host}"], commands = ["flake8"] }}
with = {{ program = "flake8", matcher = "flake8", changed_only = true, paths = ["**.py"] }}

[plugins.mergeable]
wasm = "builtin:mergeable"
grants = {{ hosts = ["{git_host}"] }}

[plugins.comment]
wasm = "builtin:comment"
grants = {{ hosts = [{{ host = "{api_host}", credential = "file:{token}", scheme = "token" }}] }}

[[rules]]
name = "hamster"
on = "pull_request.opened"
checkout = true

[[rules.steps]]
plugin = "mergeable"

[[rules.steps]]
name = "lint"
plugin = "flake8"

[[rules.on_failure]]
plugin = "comment"
checkout = false
with = {{ api_url = "{api}", number = "{{{{ event.pull_request.number }}}}", body = "{{{{ parent.summary }}}}\n\n{{{{ parent.output.stdout | default('') | indent(4, true) }}}}" }}
"#,
        source = github_source(),
        api_host = api.trim_start_matches("http://"),
        token = token.display(),
    )
}

/// A branch off `main` with `files` committed, kept by origin as pull request `number`'s
/// head; returns its commit.
fn pull_request(repo: &TestGit, branch: &str, number: u64, files: &[(&str, &str)]) -> String {
    repo.switch("main");
    repo.branch(branch);
    let mut head = String::new();
    for (path, content) in files {
        head = repo.commit(path, content, &format!("{branch}: {path}"));
    }
    repo.push_ref(branch, &format!("refs/pull/{number}/head"));
    repo.switch("main");
    head
}

async fn job_of(daemon: &TestDaemon, payload: &[u8]) -> Value {
    let (status, body) = daemon.post_github("github", "pull_request", payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{body}");
    daemon.finished_job(jobs[0].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_violation_gets_one_comment_a_clean_pull_request_none_and_a_conflict_its_paths() {
    ensure_debian_package("flake8", "flake8");
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    // Already on main, with a violation of its own: only the pull request's files count.
    repo.commit("legacy.py", "import sys\n", "legacy code");
    repo.commit("app.py", "def main():\n    return 1\n", "app");
    repo.push("main");
    let lint = pull_request(&repo, "lint", 7, &[("bad.py", "import os\n"), ("notes.md", "# notes\n")]);
    let clean = pull_request(&repo, "clean", 8, &[("good.py", "def f(x):\n    return x + 1\n")]);
    let conflict = pull_request(&repo, "conflict", 9, &[("app.py", "def main():\n    return 2\n")]);
    repo.commit("app.py", "def main():\n    return 3\n", "main changes app");
    repo.push("main");

    let server = GitHttp::start(&root.path().join("origin")).await;
    let api = FakeApi::start().await;
    std::fs::write(root.path().join("token"), TOKEN).unwrap();
    let daemon = TestDaemon::start(&config(&server.host, &api.url, &root.path().join("token"))).await;
    let url = server.url("widgets.git");

    // flake8 finds the new file's violation: the job fails, one comment holds the line.
    let job = job_of(&daemon, &pull_request_payload(&url, 7, &lint, "lint", "main")).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let comments = api.with(|state| state.comments.clone());
    assert_eq!(comments.len(), 1, "{comments:?}");
    let (on, body) = &comments[0];
    assert_eq!(on, "acme/widgets#7");
    assert!(body.starts_with("flake8 exited 1: 1 problem"), "{body}");
    assert!(body.contains("    bad.py:1:1: F401 'os' imported but unused"), "{body}");
    assert!(!body.contains("legacy.py"), "only the pull request's files are checked: {body}");
    let annotations =
        &job["steps"].as_array().unwrap().iter().find(|s| s["name"] == "lint").unwrap()["output"]["annotations"];
    assert_eq!(annotations[0]["path"], "bad.py", "{job:#}");
    assert_eq!(annotations[0]["code"], "F401", "{job:#}");
    assert_eq!(api.take_lines(), ["POST /repos/acme/widgets/issues/7/comments"]);

    // A clean pull request: both steps succeed, nothing is said.
    let job = job_of(&daemon, &pull_request_payload(&url, 8, &clean, "clean", "main")).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(api.take_lines().is_empty());
    assert_eq!(api.with(|state| state.comments.len()), 1);

    // A pull request that conflicts with main: mergeable fails, the comment names the file.
    let job = job_of(&daemon, &pull_request_payload(&url, 9, &conflict, "conflict", "main")).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let comments = api.with(|state| state.comments.clone());
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert_eq!(comments[1].0, "acme/widgets#9");
    assert!(comments[1].1.starts_with("conflicts in 1 file: app.py"), "{}", comments[1].1);
    daemon.stop().await;
}
