//! `mergeable` through the daemon on real repositories: a pull request that merges
//! cleanly succeeds, one that conflicts fails naming the paths; the repository is left
//! as it was; a repository outside the grants is refused and left as it was; an
//! unknown revision is not found; other events are skipped; a merge of too many short
//! lines is refused before it is made.

use gitauto::capability::git::MAX_MERGE_LINES;
use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A GitHub `pull_request.opened` for acme/widgets, pull request `number` from `branch`
/// at `head` into `main`.
fn pull_request(number: u64, branch: &str, head: &str) -> Vec<u8> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads/github/pull_request-opened.json");
    let mut payload: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    payload["number"] = number.into();
    payload["pull_request"]["number"] = number.into();
    payload["pull_request"]["head"]["sha"] = head.into();
    payload["pull_request"]["head"]["ref"] = branch.into();
    payload["pull_request"]["base"]["ref"] = "main".into();
    serde_json::to_vec(&payload).unwrap()
}

/// Refs, index and object count of the repository at `dir`: what a read-only call must
/// leave as it found it.
fn state(dir: &Path) -> (String, String, Option<Vec<u8>>) {
    let git_dir = PathBuf::from(git(dir, &["rev-parse", "--absolute-git-dir"]));
    let refs = git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    let head = std::fs::read_to_string(git_dir.join("HEAD")).unwrap();
    let objects = git(dir, &["count-objects", "-v"]);
    (format!("{head}{refs}"), objects, std::fs::read(git_dir.join("index")).ok())
}

/// Main and three pull request branches from one commit: `clean` edits another part of
/// a file main edits and adds a file, `clash` edits the same lines as main in two files.
struct World {
    _root: tempfile::TempDir,
    repos: PathBuf,
    origin: PathBuf,
    checkout: PathBuf,
    /// A working clone (with an index) outside every grant.
    outside: PathBuf,
    clean: String,
    clash: String,
}

fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let repos = std::fs::canonicalize(root.path()).unwrap().join("repos");
    let repo = TestGit::new(&repos, "widgets");
    let author = repos.join("author/widgets");
    repo.commit_files(
        &[("a.txt", b"one\ntwo\nthree\n"), ("docs/b.md", b"# b\n\ntext\n"), ("c.txt", b"1\n2\n3\n4\n5\n6\n7\n8\n")],
        "files",
    );
    repo.push("main");
    repo.branch("clean");
    let clean = repo.commit_files(&[("c.txt", b"1 clean\n2\n3\n4\n5\n6\n7\n8\n"), ("new.txt", b"new\n")], "clean");
    repo.push("clean");
    git(&author, &["checkout", "--quiet", "main"]);
    repo.branch("clash");
    let clash = repo.commit_files(&[("a.txt", b"one\nTWO clash\nthree\n"), ("docs/b.md", b"# b\n\nclash\n")], "clash");
    repo.push("clash");
    git(&author, &["checkout", "--quiet", "main"]);
    repo.commit_files(
        &[
            ("a.txt", b"one\nTWO main\nthree\n"),
            ("docs/b.md", b"# b\n\nmain\n"),
            ("c.txt", b"1\n2\n3\n4\n5\n6\n7\n8 main\n"),
        ],
        "main moves on",
    );
    repo.push("main");
    // What a job checkout holds: the pull request's head, and the target's tip as
    // `refs/gitauto/target`.
    let checkout = repos.join("checkout");
    repo.clone_to(&checkout);
    git(&checkout, &["update-ref", "refs/gitauto/target", "origin/main"]);
    let outside_root = std::fs::canonicalize(root.path()).unwrap().join("outside");
    TestGit::new(&outside_root, "private");
    let outside = outside_root.join("author/private");
    World { repos, origin: repo.origin.clone(), checkout, outside, clean, clash, _root: root }
}

async fn daemon(w: &World) -> TestDaemon {
    let outside = w.outside.display();
    TestDaemon::start(&format!(
        r#"{source}
[plugins.mergeable]
wasm = "builtin:mergeable"
grants = {{ dirs = ["{repos}"] }}

[[rules]]
name = "checkout"
on = "pull_request"
steps = [{{ plugin = "mergeable", with = {{ repodir = "{checkout}" }} }}]

[[rules]]
name = "origin"
on = "pull_request"
steps = [{{ plugin = "mergeable", with = {{ repodir = "{origin}", base = "refs/heads/{{{{ event.branch }}}}", head = "{{{{ event.pull_request.head }}}}" }} }}]

[[rules]]
name = "push"
on = "push"
steps = [{{ plugin = "mergeable", with = {{ repodir = "{checkout}" }} }}]

[[rules]]
name = "explicit push"
on = "push"
steps = [{{ plugin = "mergeable", with = {{ repodir = "{origin}", base = "main", head = "{{{{ 'no-such-branch' if event.after == '{missing}' else event.after }}}}" }} }}]

[[rules]]
name = "outside"
on = "push"
steps = [{{ plugin = "mergeable", with = {{ repodir = "{{{{ '{outside}' }}}}", base = "main", head = "main" }} }}]
"#,
        source = github_source(),
        repos = w.repos.display(),
        checkout = w.checkout.display(),
        origin = w.origin.display(),
        missing = "f".repeat(40),
    ))
    .await
}

/// Sends a delivery and returns its finished jobs by rule name.
async fn deliver(daemon: &TestDaemon, event: &str, body: &[u8]) -> Vec<(String, Value)> {
    let (status, answer) = daemon.post_github("github", event, body, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let mut jobs = Vec::new();
    for id in answer["jobs"].as_array().unwrap() {
        let job = daemon.finished_job(id.as_str().unwrap()).await;
        jobs.push((job["rule"].as_str().unwrap().to_owned(), job));
    }
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    jobs
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_that_merge_cleanly_succeed_and_conflicts_fail_naming_the_paths() {
    let w = world();
    let daemon = daemon(&w).await;
    let main = git(&w.origin, &["rev-parse", "main"]);

    git(&w.checkout, &["checkout", "--quiet", "--detach", &w.clean]);
    let (checkout_before, origin_before) = (state(&w.checkout), state(&w.origin));
    let jobs = deliver(&daemon, "pull_request", &pull_request(7, "clean", &w.clean)).await;
    assert_eq!(jobs.len(), 2);
    for (rule, job) in &jobs {
        assert_eq!(job["state"], "succeeded", "{rule}: {job:#}");
        assert_eq!(job["summary"], "merges cleanly into main", "{rule}");
        let output = &job["steps"][0]["output"];
        assert_eq!(output, &serde_json::json!({"mergeable": true, "conflicts": [], "base": main, "head": w.clean}));
    }
    // The clean merge made merged blobs and trees, in memory only.
    assert_eq!(state(&w.checkout), checkout_before);
    assert_eq!(state(&w.origin), origin_before);

    git(&w.checkout, &["checkout", "--quiet", "--detach", &w.clash]);
    let jobs = deliver(&daemon, "pull_request", &pull_request(8, "clash", &w.clash)).await;
    for (rule, job) in &jobs {
        assert_eq!(job["state"], "failed", "{rule}: {job:#}");
        assert_eq!(job["summary"], "step 1 (mergeable) failed: conflicts in 2 files: a.txt, docs/b.md", "{rule}");
        let output = &job["steps"][0]["output"];
        assert_eq!(
            output,
            &serde_json::json!({"mergeable": false, "conflicts": ["a.txt", "docs/b.md"], "base": main, "head": w.clash}),
            "{rule}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_are_skipped_unknown_revisions_are_not_found_and_outside_repositories_are_refused() {
    let w = world();
    let daemon = daemon(&w).await;
    let outside = w.outside.clone();
    let outside_before = state(&outside);

    let main = git(&w.origin, &["rev-parse", "main"]);
    let clone_url = format!("file://{}", w.origin.display());
    let push = push_payload("acme", "widgets", "refs/heads/clean", &main, &w.clean, &clone_url);
    let jobs = deliver(&daemon, "push", &push).await;
    let rules: Vec<&str> = jobs.iter().map(|(rule, _)| rule.as_str()).collect();
    assert_eq!(rules, ["explicit push", "outside", "push"]);
    let (_, explicit) = &jobs[0];
    // Explicit revisions work on any event.
    assert_eq!(explicit["state"], "succeeded", "{explicit:#}");
    assert_eq!(explicit["summary"], "merges cleanly into main");
    let (_, refused) = &jobs[1];
    assert_eq!(refused["state"], "failed", "{refused:#}");
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("denied") && error.contains(&outside.display().to_string()), "{refused:#}");
    assert!(outside_before.2.is_some(), "the repository outside has an index");
    assert_eq!(state(&outside), outside_before, "nothing changed in the repository outside the grants");
    let (_, skipped) = &jobs[2];
    assert_eq!(skipped["state"], "skipped", "{skipped:#}");
    assert_eq!(skipped["steps"][0]["status"], "skipped", "{skipped:#}");
    assert_eq!(skipped["steps"][0]["summary"], "not a pull request");

    let push = push_payload("acme", "widgets", "refs/heads/clean", &main, &"f".repeat(40), &clone_url);
    let jobs = deliver(&daemon, "push", &push).await;
    let (_, missing) = &jobs[0];
    assert_eq!(missing["state"], "failed", "{missing:#}");
    let error = missing["error"].as_str().unwrap();
    assert!(error.contains("not found: resolving `no-such-branch`"), "{missing:#}");
    daemon.stop().await;
}

/// Issue 19: a file of short lines both sides change is refused by `merge-check` as
/// `invalid`, naming the bound, before libgit2 merges it; the repositories are left as
/// they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_of_too_many_short_lines_is_refused_naming_the_bound() {
    let w = world();
    let lines = usize::try_from(MAX_MERGE_LINES / 3 + 1).unwrap();
    let short = |first: &str, last: &str| format!("{first}\n{}{last}\n", "\n".repeat(lines - 2));
    let commit = |from: &str, content: String, message: &str| {
        git(&w.checkout, &["checkout", "--quiet", "--detach", from]);
        std::fs::write(w.checkout.join("lines.txt"), content).unwrap();
        git(&w.checkout, &["add", "lines.txt"]);
        git(&w.checkout, &["commit", "--quiet", "-m", message]);
        git(&w.checkout, &["rev-parse", "HEAD"])
    };
    let base = commit("origin/main", short("", ""), "short lines");
    let target = commit(&base, short("main", ""), "main changes the first line");
    let head = commit(&base, short("", "head"), "the head changes the last line");
    git(
        &w.checkout,
        &["push", "--quiet", "origin", &format!("{target}:refs/heads/main"), &format!("{head}:refs/heads/lines")],
    );
    git(&w.checkout, &["update-ref", "refs/gitauto/target", &target]);
    let daemon = daemon(&w).await;
    let (checkout_before, origin_before) = (state(&w.checkout), state(&w.origin));
    let jobs = deliver(&daemon, "pull_request", &pull_request(9, "lines", &head)).await;
    assert_eq!(jobs.len(), 2);
    let refused = format!(
        "invalid: merging `{head}` into `{target}`: the files to merge line by line add up to more than \
         {MAX_MERGE_LINES} lines (the limit for a merge; reached at `lines.txt`, "
    );
    for (rule, job) in &jobs {
        assert_eq!(job["state"], "failed", "{rule}: {job:#}");
        let error = job["error"].as_str().unwrap();
        assert!(error.contains(&refused), "{rule}: {error}");
    }
    assert_eq!(state(&w.checkout), checkout_before);
    assert_eq!(state(&w.origin), origin_before);
    daemon.stop().await;
}
