//! Job checkouts through the daemon: real repositories served by the real
//! `git http-backend` on loopback, real signed deliveries, the probe plugin looking at
//! what it was given. A push and a pull request each get their commit (shallow, with
//! `refs/gitauto/base`), `"merge"` a merge commit or a failure listing the conflicts
//! (and an error, before merging, for a tree bomb or a flood of short lines);
//! the steps that ask share one checkout, one that does not cannot read it, and it is
//! gone when the job ends. The clone URL's host must be granted, with its credential.

use gitauto::capability::git::MAX_MERGE_LINES;
use gitauto_tests::git_http::GitHttp;
use gitauto_tests::{TestDaemon, TestGit, github_source, pull_request_payload, push_payload, step};
use serde_json::Value;
use std::path::{Path, PathBuf};

const TOKEN: &str = "checkout-token-only-the-host-knows";

/// A repository `acme/widgets` served over smart HTTP, and a scratch directory.
struct World {
    root: tempfile::TempDir,
    repo: TestGit,
    server: GitHttp,
}

impl World {
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let repo = TestGit::new(root.path(), "widgets");
        // As forges do: a commit a ref no longer points at may still be fetched by id.
        gitauto_tests::git(&repo.origin, &["config", "uploadpack.allowReachableSHA1InWant", "true"]);
        let server = GitHttp::start(&root.path().join("origin")).await;
        std::fs::create_dir(root.path().join("scratch")).unwrap();
        std::fs::write(root.path().join("token"), TOKEN).unwrap();
        Self { root, repo, server }
    }

    fn url(&self) -> String {
        self.server.url("widgets.git")
    }

    fn scratch(&self) -> PathBuf {
        self.root.path().join("scratch")
    }

    /// A daemon whose probe is granted `host` (with the credential), `git` and the
    /// scratch directory, running `rules`.
    async fn daemon(&self, host: &str, rules: &str) -> TestDaemon {
        let token = self.root.path().join("token");
        self.daemon_granted(&format!("{{ host = \"{host}\", credential = \"file:{}\" }}", token.display()), rules).await
    }

    /// The same, with `host_entry` (TOML) as the one granted host.
    async fn daemon_granted(&self, host_entry: &str, rules: &str) -> TestDaemon {
        TestDaemon::start(&format!(
            r#"
{source}
[plugins.probe]
wasm = "{probe}"
grants = {{ hosts = [{host_entry}], commands = ["git", "cat", "truncate"], dirs = [{{ path = "{scratch}", write = true }}] }}

{rules}
"#,
            source = github_source(),
            probe = env!("GITAUTO_GUEST_PROBE"),
            scratch = self.scratch().display(),
            rules = rules.replace("SCRATCH", &self.scratch().display().to_string()),
        ))
        .await
    }
}

/// Nothing is left of any job's workspace or checkout.
fn no_workspaces_left(daemon: &TestDaemon) {
    let work = daemon.config.server.data_dir.join("work");
    let left: Vec<PathBuf> =
        std::fs::read_dir(&work).map(|dir| dir.map(|entry| entry.unwrap().path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_is_checked_out_shallow_and_shared_by_the_steps_that_ask_for_it() {
    let world = World::new().await;
    let before = world.repo.head();
    world.repo.commit("docs/a.md", "# a\n", "docs");
    let after = world.repo.commit("src/x.py", "x = 1\n", "code");
    world.repo.push("main");
    let rules = r#"
[[rules]]
name = "look"
on = "push"
checkout = true

[[rules.steps]]
name = "look"
plugin = "probe"
with = { op = "checkout" }

[[rules.steps]]
name = "git"
plugin = "probe"
with = { op = "shell", program = "git", args = ["log", "--format=%H"], check = true }

[[rules.steps]]
name = "write"
plugin = "probe"
with = { op = "write-file", path = "{{ job.checkout }}/written.txt", content = "from a step" }

[[rules.steps]]
name = "outsider"
plugin = "probe"
checkout = false
continue_on_failure = true
with = { op = "read-file", path = "{{ job.checkout }}/src/x.py" }

[[rules.steps]]
name = "outsider-cat"
plugin = "probe"
checkout = false
continue_on_failure = true
with = { op = "shell", program = "cat", args = ["{{ job.checkout }}/src/x.py"], check = true }

[[rules.steps]]
name = "reread"
plugin = "probe"
with = { op = "read-file", path = "{{ job.checkout }}/written.txt" }
"#;
    let daemon = world.daemon(&world.server.host, rules).await;
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, &world.url());
    let job = daemon.run_github("push", &payload).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let look = &step(&job, "look")["output"];
    assert_eq!(look["head"], after.as_str(), "HEAD is the pushed commit");
    assert_eq!(look["branch"], Value::Null, "HEAD is detached");
    assert_eq!(look["base"], before.as_str(), "refs/gitauto/base is the push's `before`");
    assert_eq!(look["changed"], serde_json::json!(["docs/a.md", "src/x.py"]));
    let dir = look["dir"].as_str().unwrap();
    assert!(dir.starts_with(daemon.config.server.data_dir.to_str().unwrap()), "{dir}");
    // A granted program runs in the checkout when no `cwd` is given; the fetch was
    // shallow: only the pushed commit's history of one.
    assert_eq!(step(&job, "git")["output"]["stdout"], format!("{after}\n"));
    // What one step writes, a later one reads; a step without `checkout` cannot.
    assert_eq!(step(&job, "reread")["output"]["content"], "from a step");
    let outsider = step(&job, "outsider");
    assert_eq!(outsider["status"], "failure", "{outsider:#}");
    assert!(!outsider["summary"].as_str().unwrap().contains("x = 1"), "{outsider:#}");
    // Nor can a program it runs: the kernel refuses the directory.
    let outsider = step(&job, "outsider-cat");
    assert_eq!(outsider["status"], "failure", "{outsider:#}");
    assert_eq!(outsider["output"]["stdout"], "", "{outsider:#}");
    assert!(outsider["output"]["stderr"].as_str().unwrap().contains("Permission denied"), "{outsider:#}");

    // The server was asked with the grant's credential, and only with it.
    let requests = world.server.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|request| request.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

/// main: A, then M (main.txt); feature from A: F1, F2 (feature.txt); pull request 7
/// (`refs/pull/7/head`) of feature into main. Returns (A, M, F2).
fn diverged(repo: &TestGit, conflicting: bool) -> (String, String, String) {
    let base = repo.head();
    repo.branch("feature");
    repo.commit("feature.txt", "one\n", "feature 1");
    if conflicting {
        repo.commit("README.md", "# from the feature\n", "feature readme");
    }
    let head = repo.commit("feature.txt", "one\ntwo\n", "feature 2");
    repo.push_ref("feature", "refs/pull/7/head");
    repo.switch("main");
    if conflicting {
        repo.commit("README.md", "# from main\n", "main readme");
    }
    let tip = repo.commit("main.txt", "main\n", "main moves on");
    repo.push("main");
    (base, tip, head)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_is_checked_out_at_its_head_with_its_merge_base() {
    let world = World::new().await;
    let (base, tip, head) = diverged(&world.repo, false);
    let rules = r#"
[[rules]]
name = "look"
on = "pull_request"

[[rules.steps]]
plugin = "probe"
checkout = true
with = { op = "checkout" }
"#;
    let daemon = world.daemon(&world.server.host, rules).await;
    let job = daemon.run_github("pull_request", &pull_request_payload(&world.url(), 7, &head, "feature", "main")).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let look = &step(&job, "probe")["output"];
    assert_eq!(look["head"], head.as_str());
    assert_eq!(look["target"], tip.as_str(), "refs/gitauto/target is main's tip");
    // Shallow at first (depth 1): the host deepened until the merge base was there.
    assert_eq!(look["base"], base.as_str(), "refs/gitauto/base is the merge base");
    assert_eq!(look["changed"], serde_json::json!(["feature.txt"]), "only the pull request's changes");
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

const MERGE_RULES: &str = r#"
[[rules]]
name = "merge"
on = "pull_request"
checkout = "merge"

[[rules.steps]]
name = "look"
plugin = "probe"
with = { op = "checkout" }

[[rules.steps]]
name = "files"
plugin = "probe"
with = { op = "shell", program = "git", args = ["ls-files"], check = true }

[[rules.on_failure]]
name = "report"
plugin = "probe"
checkout = false
with = { op = "write-file", path = "SCRATCH/conflicts.txt", content = "{{ parent.output.conflicts | join(',') }} into {{ parent.output.target }}" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn merge_mode_checks_out_a_clean_merge() {
    let world = World::new().await;
    let (_, tip, head) = diverged(&world.repo, false);
    let daemon = world.daemon(&world.server.host, MERGE_RULES).await;
    let job = daemon.run_github("pull_request", &pull_request_payload(&world.url(), 7, &head, "feature", "main")).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let look = &step(&job, "look")["output"];
    let merge = look["head"].as_str().unwrap();
    assert!(merge != head && merge != tip, "HEAD is a merge commit of its own: {look:#}");
    assert_eq!(look["base"], tip.as_str(), "in merge mode refs/gitauto/base is the target's tip");
    assert_eq!(look["changed"], serde_json::json!(["feature.txt"]));
    assert_eq!(step(&job, "files")["output"]["stdout"], "README.md\nfeature.txt\nmain.txt\n");
    assert!(!world.scratch().join("conflicts.txt").exists());
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_mode_fails_a_conflicting_pull_request_listing_the_paths() {
    let world = World::new().await;
    let (_, _, head) = diverged(&world.repo, true);
    let daemon = world.daemon(&world.server.host, MERGE_RULES).await;
    let job = daemon.run_github("pull_request", &pull_request_payload(&world.url(), 7, &head, "feature", "main")).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let look = step(&job, "look");
    assert_eq!(look["status"], "failure", "a conflict is the step's failure, not an error: {look:#}");
    assert_eq!(
        look["summary"],
        "checkout: the pull request does not merge cleanly into `main`: conflicts in README.md"
    );
    let report =
        std::fs::read_to_string(world.scratch().join("conflicts.txt")).unwrap_or_else(|err| panic!("{err}: {job:#}"));
    assert_eq!(report, "README.md into main", "the on_failure handler got the conflicts as output");
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

/// Merge mode, never retried: what a refused merge must not be.
const MERGE_RETRIED_RULES: &str = r#"
[[rules]]
name = "merge"
on = "pull_request"
checkout = "merge"
retries = 1
retry_backoff = "1s"
steps = [{ name = "look", plugin = "probe", with = { op = "checkout" } }]
"#;

/// A commit on origin, child of `parent`, whose tree is `parent`'s plus `bomb/`: 10^7
/// paths from 8 objects (a few hundred bytes packed), as pull request `number`'s head.
fn tree_bomb(origin: &Path, parent: &str, number: u64) -> String {
    let repo = git2::Repository::open_bare(origin).unwrap();
    let blob = repo.blob(b"x\n").unwrap();
    let mut level = repo.treebuilder(None).unwrap();
    for i in 0..10 {
        level.insert(format!("f{i}"), blob, 0o100644).unwrap();
    }
    let mut id = level.write().unwrap();
    for _ in 1..7 {
        let mut level = repo.treebuilder(None).unwrap();
        for i in 0..10 {
            level.insert(format!("d{i}"), id, 0o040000).unwrap();
        }
        id = level.write().unwrap();
    }
    let parent = repo.find_commit(git2::Oid::from_str(parent).unwrap()).unwrap();
    let mut tree = repo.treebuilder(Some(&parent.tree().unwrap())).unwrap();
    tree.insert("bomb", id, 0o040000).unwrap();
    let tree = repo.find_tree(tree.write().unwrap()).unwrap();
    let signature = git2::Signature::now("Mallory", "mallory@example.com").unwrap();
    let reference = format!("refs/pull/{number}/head");
    repo.commit(Some(&reference), &signature, &signature, "bomb", &tree, &[&parent]).unwrap().to_string()
}

/// Issue 19: a pull request whose head is a tree bomb is refused before libgit2 merges
/// it (the trees are counted first), as an error that is not retried, and the daemon
/// goes on to serve the next pull request.
#[tokio::test(flavor = "multi_thread")]
async fn merge_mode_refuses_a_tree_bomb_before_merging_and_serves_the_next_pull_request() {
    let world = World::new().await;
    let (base, _, head) = diverged(&world.repo, false);
    let bomb = tree_bomb(&world.repo.origin, &base, 9);
    let daemon = world.daemon(&world.server.host, MERGE_RETRIED_RULES).await;
    let job = daemon.run_github("pull_request", &pull_request_payload(&world.url(), 9, &bomb, "bomb", "main")).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("failed"), Some(1)), "{job:#}");
    let look = step(&job, "look");
    assert_eq!(look["status"], "error", "{look:#}");
    assert_eq!(
        look["summary"],
        "checkout: merging the pull request into `main`: the tree has more than 200000 entries (the limit for one call)"
    );
    let job = daemon.run_github("pull_request", &pull_request_payload(&world.url(), 7, &head, "feature", "main")).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "look")["output"]["changed"], serde_json::json!(["feature.txt"]));
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

/// Issue 19: a file of short lines both sides change (a few kilobytes packed, and a
/// clean merge) is refused when its versions' lines add up to more than the bound: libgit2
/// would allocate per line. Not retried.
#[tokio::test(flavor = "multi_thread")]
async fn merge_mode_refuses_a_merge_of_too_many_short_lines() {
    let world = World::new().await;
    let lines = usize::try_from(MAX_MERGE_LINES / 3 + 1).unwrap();
    let short = |first: &str, last: &str| format!("{first}\n{}{last}\n", "\n".repeat(lines - 2));
    world.repo.commit("lines.txt", &short("", ""), "short lines");
    world.repo.push("main");
    world.repo.branch("feature");
    let head = world.repo.commit("lines.txt", &short("", "feature"), "feature changes the last line");
    world.repo.push_ref("feature", "refs/pull/7/head");
    world.repo.switch("main");
    world.repo.commit("lines.txt", &short("main", ""), "main changes the first line");
    world.repo.push("main");
    let daemon = world.daemon(&world.server.host, MERGE_RETRIED_RULES).await;
    let job = daemon.run_github("pull_request", &pull_request_payload(&world.url(), 7, &head, "feature", "main")).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("failed"), Some(1)), "{job:#}");
    let look = step(&job, "look");
    assert_eq!(look["status"], "error", "{look:#}");
    let summary = look["summary"].as_str().unwrap();
    let refused = format!(
        "checkout: merging the pull request into `main`: the files to merge line by line add up to more than \
         {MAX_MERGE_LINES} lines (the limit for a merge; reached at `lines.txt`, "
    );
    assert!(summary.starts_with(&refused), "{summary}");
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_ref_is_fetched_by_commit_a_tag_checks_out_its_commit_and_a_deleted_branch_cannot_be_checked_out() {
    let world = World::new().await;
    let before = world.repo.head();
    let pushed = world.repo.commit("a.txt", "a\n", "pushed");
    world.repo.commit("b.txt", "b\n", "pushed later");
    world.repo.push("main");
    let rules = r#"
[[rules]]
name = "look"
on = ["push", "tag"]
checkout = true
steps = [{ plugin = "probe", with = { op = "checkout" } }]
"#;
    let daemon = world.daemon(&world.server.host, rules).await;
    // main has moved on since the event: the event's commit is fetched by its id.
    let job = daemon
        .run_github("push", &push_payload("acme", "widgets", "refs/heads/main", &before, &pushed, &world.url()))
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "probe")["output"]["head"], pushed.as_str());

    // An annotated tag's event names the tag object: HEAD is its commit.
    gitauto_tests::git(&world.repo.origin, &["tag", "-a", "v1", "-m", "release", &pushed]);
    let tag = gitauto_tests::git(&world.repo.origin, &["rev-parse", "v1"]);
    assert_ne!(tag, pushed);
    let tagged = push_payload("acme", "widgets", "refs/tags/v1", &"0".repeat(40), &tag, &world.url());
    let job = daemon.run_github("push", &tagged).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "probe")["output"]["head"], pushed.as_str());

    // A commit force-pushed away is gone: the step says so.
    let lost = world.repo.commit("lost.txt", "lost\n", "soon unreachable");
    world.repo.push("main");
    world.repo.push_ref(&pushed, "refs/heads/main");
    let job = daemon
        .run_github("push", &push_payload("acme", "widgets", "refs/heads/main", &pushed, &lost, &world.url()))
        .await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = step(&job, "probe")["summary"].as_str().unwrap().to_owned();
    assert!(
        summary.starts_with(&format!("checkout: commit {lost} is gone from {}: refs/heads/main no longer leads to it, and it now points at {pushed}", world.url())),
        "{summary}"
    );

    let deleted = push_payload("acme", "widgets", "refs/heads/gone", &pushed, &"0".repeat(40), &world.url());
    let job = daemon.run_github("push", &deleted).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(
        step(&job, "probe")["summary"],
        "checkout: the push deleted refs/heads/gone: there is no commit to check out"
    );
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

/// Pushes a commit to a daemon whose probe, granted only `host_entry` (TOML), asks for
/// the checkout; the job must fail with nothing fetched and no workspace left. Returns
/// the step's summary.
async fn refused_checkout(world: &World, host_entry: &str) -> String {
    let before = world.repo.head();
    let after = world.repo.commit("a.txt", "a\n", "pushed");
    world.repo.push("main");
    let rules = r#"
[[rules]]
name = "look"
on = "push"
steps = [{ plugin = "probe", checkout = true, with = { op = "checkout" } }]
"#;
    let daemon = world.daemon_granted(host_entry, rules).await;
    let job = daemon
        .run_github("push", &push_payload("acme", "widgets", "refs/heads/main", &before, &after, &world.url()))
        .await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = step(&job, "probe")["summary"].as_str().unwrap().to_owned();
    assert_eq!(world.server.requests(), [], "nothing reached the server: {summary}");
    no_workspaces_left(&daemon);
    daemon.stop().await;
    summary
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_host_granted_with_a_sigv4_key_is_refused_and_nothing_is_fetched() {
    let world = World::new().await;
    // Git cannot sign: the host must not fall back to an unsigned (or differently
    // credentialed) fetch from a host whose grant says requests there are signed.
    let entry = format!(
        "{{ host = \"{}\", credential = {{ sigv4 = {{ access_key = \"AKID\", secret_key = \"s3cret\", region = \"us-east-1\" }} }} }}",
        world.server.host
    );
    let summary = refused_checkout(&world, &entry).await;
    assert!(summary.contains("git cannot sign"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_url_whose_host_is_not_granted_is_refused_and_nothing_is_fetched() {
    let world = World::new().await;
    // Granted the same address on another port.
    let summary = refused_checkout(&world, "\"127.0.0.1:1\"").await;
    assert!(summary.starts_with(&format!("checkout: cloning host {} is not granted", world.server.host)), "{summary}");
}

/// A step may write the checkout, `.git/config` included: a remote it plants there is
/// checked against its grant like any URL it names, never trusted as an administrator's.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_a_step_plants_in_the_checkout_is_checked_against_its_grant() {
    let world = World::new().await;
    let secret = TestGit::new(world.root.path(), "secret");
    let before = world.repo.head();
    let after = world.repo.commit("a.txt", "a\n", "pushed");
    world.repo.push("main");
    let rules = format!(
        r#"
[[rules]]
name = "plant"
on = "push"
checkout = true

[[rules.steps]]
name = "origin"
plugin = "probe"
with = {{ op = "git-fetch", remote = "origin" }}

[[rules.steps]]
name = "plant"
plugin = "probe"
with = {{ op = "write-file", path = "{{{{ job.checkout }}}}/.git/config", content = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n[remote \"evil\"]\n\turl = {secret}\n\tfetch = +refs/heads/*:refs/remotes/evil/*\n" }}

[[rules.steps]]
name = "evil"
plugin = "probe"
with = {{ op = "git-fetch", remote = "evil" }}
"#,
        secret = secret.origin.display()
    );
    let daemon = world.daemon(&world.server.host, &rules).await;
    let job = daemon
        .run_github("push", &push_payload("acme", "widgets", "refs/heads/main", &before, &after, &world.url()))
        .await;
    assert_eq!(step(&job, "origin")["status"], "success", "the host's own remote is granted: {job:#}");
    assert_eq!(step(&job, "plant")["status"], "success", "{job:#}");
    let evil = step(&job, "evil");
    assert_eq!(evil["status"], "failure", "{evil:#}");
    let summary = evil["summary"].as_str().unwrap();
    assert!(summary.contains("denied") && summary.contains("must be granted"), "{summary}");
    no_workspaces_left(&daemon);
    daemon.stop().await;
}

/// Security review: a step that may write the checkout makes the next git call read a
/// file whole (a loose ref the size of memory; a config that includes another file).
/// The call is refused before libgit2 reads it, naming the file or key, the daemon
/// serves on, and the workspace (sparse file and all) is removed.
#[tokio::test(flavor = "multi_thread")]
async fn files_a_step_grows_in_the_checkout_are_refused_before_git_reads_them() {
    let world = World::new().await;
    let before = world.repo.head();
    let after = world.repo.commit("a.txt", "a\n", "pushed");
    world.repo.push("main");
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, &world.url());
    for (plant, refused) in [
        (
            r#"{ op = "shell", program = "truncate", args = ["-s", "64G", ".git/refs/gitauto/target"], check = true }"#,
            "`refs/gitauto/target` is not a plain file of at most 4096 bytes",
        ),
        (
            r#"{ op = "write-file", path = "{{ job.checkout }}/.git/config", content = "[core]\n\tbare = false\n[includeIf \"gitdir:/\"]\n\tpath = /dev/zero\n" }"#,
            "its `config` sets `includeIf.path`",
        ),
        (
            r#"{ op = "write-file", path = "{{ job.checkout }}/.git/config", content = "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tworktreeConfig = true\n" }"#,
            "its `config` sets `extensions.worktreeConfig`",
        ),
    ] {
        let rules = format!(
            "[[rules]]\nname = \"grow\"\non = \"push\"\ncheckout = true\n\n\
             [[rules.steps]]\nname = \"plant\"\nplugin = \"probe\"\nwith = {plant}\n\n\
             [[rules.steps]]\nname = \"look\"\nplugin = \"probe\"\nwith = {{ op = \"checkout\" }}\n"
        );
        let daemon = world.daemon(&world.server.host, &rules).await;
        let job = daemon.run_github("push", &payload).await;
        assert_eq!(step(&job, "plant")["status"], "success", "{job:#}");
        let look = step(&job, "look");
        assert_eq!(look["status"], "failure", "{look:#}");
        let summary = look["summary"].as_str().unwrap();
        assert!(summary.contains("denied") && summary.contains(refused), "{summary}");
        assert_eq!(daemon.get("/healthz").await.0, 200);
        no_workspaces_left(&daemon);
        daemon.stop().await;
    }
}

/// Filling failed on the network: the step's error is transient, and the job is retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_the_network_failed_to_fill_is_retried() {
    let world = World::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let rules = r#"
[[rules]]
name = "look"
on = "push"
retries = 1
retry_backoff = "1s"
checkout = true
steps = [{ plugin = "probe", with = { op = "checkout" } }]
"#;
    let daemon = world.daemon(&host, rules).await;
    let url = format!("http://{host}/widgets.git");
    let job = daemon
        .run_github("push", &push_payload("acme", "widgets", "refs/heads/main", &"1".repeat(40), &"2".repeat(40), &url))
        .await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("dead"), Some(2)), "{job:#}");
    let summary = step(&job, "probe")["summary"].as_str().unwrap().to_owned();
    assert!(summary.starts_with("checkout: fetching"), "{summary}");
    no_workspaces_left(&daemon);
    daemon.stop().await;
}
