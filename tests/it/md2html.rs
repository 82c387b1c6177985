//! `md2html-convert` on a real repository: nested folders, an image, a table, a
//! front-matter block, a README (excluded) and a file that is not UTF-8 (a warning, not a
//! crash). The site, its build log and the project's build list are checked; then the
//! build lifecycle (a `started` log while the pages are staged, the previous site kept
//! until the new one is complete, stale files removed, a trap recorded by the `on_error`
//! handler), multi-part builds and the callback. Then Door43-shaped repositories
//! (`tests/fixtures/door43`): section-header anchors, tx-manager's `$title` templates
//! and the flat layout. Last, publishing to a real S3-compatible server.

use gitauto_tests::git_http::GitHttp;
use gitauto_tests::hold::HoldingProxy;
use gitauto_tests::receiver::Receiver;
use gitauto_tests::s3::S3Server;
use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload, wait_for};
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake image bytes \xff\x00";

/// Every field of tx-manager's build log (its job columns, then the commit's).
const TX_MANAGER_FIELDS: [&str; 36] = [
    "job_id",
    "identifier",
    "user_name",
    "repo_name",
    "commit_id",
    "manifests_id",
    "status",
    "success",
    "user",
    "convert_module",
    "lint_module",
    "resource_type",
    "input_format",
    "output_format",
    "source",
    "output",
    "cdn_bucket",
    "cdn_file",
    "callback",
    "created_at",
    "updated_at",
    "expires_at",
    "started_at",
    "ended_at",
    "eta",
    "message",
    "links",
    "options",
    "log",
    "warnings",
    "errors",
    "repo_owner",
    "committed_by",
    "commit_url",
    "compare_url",
    "commit_message",
];

async fn daemon(root: &Path, extra: &str) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
{source}
[plugins.md2html]
wasm = "builtin:md2html-convert"
grants = {{ dirs = ["{root}/origin", {{ path = "{root}/clones", write = true }}, {{ path = "{root}/www", write = true }}] }}

[[rules]]
name = "site"
on = "push"
steps = [{{ plugin = "md2html", with = {{ repodir = "{root}/clones", output_dir = "{root}/www"{extra} }} }}]
"#,
        source = github_source(),
        root = root.display(),
    ))
    .await
}

async fn push(daemon: &TestDaemon, repo: &TestGit, branch: &str, after: &str) -> Value {
    let payload = push_payload(
        "acme",
        "site",
        &format!("refs/heads/{branch}"),
        &"0".repeat(40),
        after,
        &format!("file://{}", repo.origin.display()),
    );
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    daemon.finished_job(body["jobs"][0].as_str().unwrap()).await
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The job id a build of `commit` for delivery `delivery` records: the same in its
/// `started` log, its final log and its `on_error` handler's.
fn job_id(delivery: &str, commit: &str) -> String {
    digest(format!("{delivery}\n{commit}").as_bytes())
}

/// Posts a push of `after` to `main` of acme/site, cloned from `clone_url`; returns the
/// job id and the delivery id.
async fn push_main(daemon: &TestDaemon, clone_url: &str, after: &str) -> (String, String) {
    let payload = push_payload("acme", "site", "refs/heads/main", &"0".repeat(40), after, clone_url);
    let (status, body, delivery) = daemon.post_as("github", "push", &payload).await;
    assert_eq!(status, 202, "{body}");
    (body["jobs"][0].as_str().unwrap().to_owned(), delivery)
}

/// Waits until the build log at `path` is the `started` log of job `job_id`.
async fn started_log(path: &Path, job_id: &str) -> Value {
    wait_for(&format!("the started log of {job_id} in {}", path.display()), Duration::from_secs(60), || async {
        let log: Value = serde_json::from_slice(&tokio::fs::read(path).await.ok()?).ok()?;
        (log["job_id"] == job_id && log["status"] == "started").then_some(log)
    })
    .await
}

/// The files under `dir` (relative paths, sorted), each with its SHA-256.
fn files(dir: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push((name, digest(&std::fs::read(entry.path()).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The repositories under `root/origin`, served over HTTP behind a proxy that can hold a
/// fetch: the build's `started` log is written before it fetches.
async fn held_origin(root: &Path) -> (GitHttp, HoldingProxy) {
    let git = GitHttp::start(&root.join("origin")).await;
    let proxy = HoldingProxy::start(&format!("http://{}", git.host)).await;
    (git, proxy)
}

fn dirs(root: &Path) -> PathBuf {
    for dir in ["clones", "www", "layout"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    root.join("www/u/acme/site")
}

#[tokio::test]
async fn a_push_to_the_default_branch_builds_the_site_with_its_log() {
    let root = tempfile::tempdir().unwrap();
    for dir in ["clones", "www"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let repo = TestGit::new(root.path(), "site");
    let index = "---\ntitle: Course Notes\nlayout: x\n---\n# Welcome\n\nRead the [setup](guide/setup.md#install).\n\n\
                 | Week | Topic |\n|------|-------|\n| 1 | Vectors |\n\n![logo](../images/logo.png)\n";
    let after = repo.commit_files(
        &[
            ("docs/index.md", index.as_bytes()),
            ("docs/guide/setup.md", b"## Install\n\n~~old~~ new[^1]\n\n[^1]: A footnote.\n"),
            ("images/logo.png", PNG),
            ("LICENSE.md", b"# License\n"),
            ("notes/latin1.md", b"caf\xe9 au lait\n"),
        ],
        "content",
    );
    repo.push("main");
    let daemon = daemon(root.path(), "").await;

    // Another branch does not build.
    let job = push(&daemon, &repo, "feature", &after).await;
    assert_eq!(job["state"], "skipped", "{job:#}");

    let job = push(&daemon, &repo, "main", &after).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let site = root.path().join("www/u/acme/site").join(&after[..10]);
    let index_html = read(&site.join("docs/index.html"));
    assert!(index_html.contains("<title>Course Notes</title>"), "{index_html}");
    assert!(index_html.contains("<h1 id=\"welcome\">Welcome</h1>"));
    assert!(index_html.contains("<a href=\"guide/setup.html#install\">setup</a>"));
    assert!(index_html.contains("<th>Week</th>") && index_html.contains("<td>Vectors</td>"));
    assert!(!index_html.contains("layout: x"), "front matter is not rendered");
    assert!(index_html.contains("<a href=\"../index.html\">acme/site</a>"), "the layout links the root");
    let setup = read(&site.join("docs/guide/setup.html"));
    assert!(
        setup.contains("<h2 id=\"install\">Install</h2>")
            && setup.contains("<del>old</del>")
            && setup.contains("footnote")
    );
    assert_eq!(std::fs::read(site.join("images/logo.png")).unwrap(), PNG);
    assert!(!site.join("LICENSE.html").exists() && !site.join("LICENSE.md").exists(), "excluded");
    assert!(!site.join("README.html").exists(), "README.md is excluded");
    assert!(read(&site.join("notes/latin1.html")).contains("caf\u{fffd} au lait"));
    let listing = read(&site.join("index.html"));
    assert!(listing.contains("<a href=\"docs/index.html\">Course Notes</a>"), "{listing}");

    let log: Value = serde_json::from_str(&read(&site.join("build_log.json"))).unwrap();
    assert_eq!(log["status"], "warnings");
    assert_eq!(log["success"], true);
    assert_eq!(log["message"], "Conversion successful with warnings");
    assert_eq!((log["repo_owner"].as_str(), log["repo_name"].as_str()), (Some("acme"), Some("site")));
    assert_eq!(log["commit_id"], &after[..10]);
    assert_eq!(log["committed_by"], "octocat");
    assert_eq!((log["input_format"].as_str(), log["output_format"].as_str()), (Some("md"), Some("html")));
    assert_eq!(log["warnings"][0], "notes/latin1.md is not valid UTF-8; converted with replacements");
    assert_eq!(log["errors"], serde_json::json!([]));
    let lines: Vec<&str> = log["log"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(lines.contains(&"Converted docs/index.md to docs/index.html."), "{lines:?}");
    assert_eq!(log["pages"].as_array().unwrap().len(), 3);
    for key in ["job_id", "identifier", "created_at", "updated_at", "started_at", "ended_at", "source", "output"] {
        assert!(log[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    let fields = log.as_object().unwrap();
    let missing: Vec<&str> = TX_MANAGER_FIELDS.into_iter().filter(|key| !fields.contains_key(*key)).collect();
    assert!(missing.is_empty(), "tx-manager's fields missing: {missing:?}");
    for key in ["manifests_id", "lint_module", "cdn_bucket", "cdn_file", "callback", "expires_at", "eta", "links"] {
        assert!(log[key].is_null(), "{key} has no meaning for a local build: {}", log[key]);
    }
    assert_eq!((log["user_name"].as_str(), log["user"].as_str()), (Some("acme"), Some("octocat")));
    assert_eq!((log["convert_module"].as_str(), log["resource_type"].as_str()), (Some("md2html"), Some("other")));
    assert_eq!(log["job_id"].as_str().unwrap().len(), 64);
    assert_eq!(log["identifier"], log["job_id"]);
    assert_eq!(log["output"], site.display().to_string());
    let project: Value = serde_json::from_str(&read(&root.path().join("www/u/acme/site/project.json"))).unwrap();
    assert_eq!(project["commits"][0]["id"], &after[..10]);
    assert_eq!(project["commits"][0]["status"], "warnings");
    assert_eq!(job["steps"][0]["output"]["converter"]["input_formats"], serde_json::json!(["md"]));

    // The same commit again replaces its entry rather than adding one.
    push(&daemon, &repo, "main", &after).await;
    let project: Value = serde_json::from_str(&read(&root.path().join("www/u/acme/site/project.json"))).unwrap();
    assert_eq!(project["commits"].as_array().unwrap().len(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn convert_only_limits_the_run_and_an_empty_repository_fails() {
    let root = tempfile::tempdir().unwrap();
    for dir in ["clones", "www"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(&[("a.md", b"# A\n"), ("b/b.md", b"# B\n"), ("c.txt", b"c")], "content");
    repo.push("main");
    let limited = daemon(root.path(), ", convert_only = [\"b.md\"]").await;
    let job = push(&limited, &repo, "main", &after).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let site = root.path().join("www/u/acme/site").join(&after[..10]);
    assert!(site.join("b/b.html").is_file());
    assert!(!site.join("a.html").exists() && !site.join("c.txt").exists());
    limited.stop().await;

    // Only a README (excluded): nothing to convert is a failed build, with its log.
    let root = tempfile::tempdir().unwrap();
    for dir in ["clones", "www"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let repo = TestGit::new(root.path(), "site");
    let daemon = daemon(root.path(), "").await;
    let job = push(&daemon, &repo, "main", &repo.head()).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let log: Value = serde_json::from_str(&read(
        &root.path().join("www/u/acme/site").join(&repo.head()[..10]).join("build_log.json"),
    ))
    .unwrap();
    assert_eq!(log["status"], "failed");
    assert_eq!(log["errors"][0], "No Markdown files were found to convert");
    daemon.stop().await;
}

/// A push rule building the site with md2html, and the recommended `on_error` handler.
const SITE_RULE: &str = r#"
[[rules]]
name = "site"
on = "push"

[[rules.steps]]
plugin = "md2html"

[[rules.steps.on_error]]
plugin = "md2html"
with = { abnormal_end = "{{ parent.summary }}" }
"#;

/// A config whose md2html has its settings in `[plugins.md2html] with` (plus `with`),
/// `limits`, a read grant of `layout/`, `hosts`, and the recommended `on_error` handler.
fn lifecycle_config(root: &Path, with: &str, limits: &str, hosts: &str) -> String {
    format!(
        r#"
{source}
[plugins.md2html]
wasm = "builtin:md2html-convert"
grants = {{ dirs = ["{root}/origin", "{root}/layout", {{ path = "{root}/clones", write = true }}, {{ path = "{root}/www", write = true }}], hosts = [{hosts}] }}
limits = {{ {limits} }}
with = {{ repodir = "{root}/clones", output = "{root}/www"{with} }}
{SITE_RULE}"#,
        source = github_source(),
        root = root.display(),
    )
}

/// What a first build of acme/site left, for the next one to replace.
struct Built {
    /// `www/u/acme/site`.
    site: PathBuf,
    after: String,
    _git: GitHttp,
    /// The proxy in front of the repository's server, which can hold a fetch.
    origin: HoldingProxy,
    clone_url: String,
    /// The proxy, as the grant's `hosts` list it.
    hosts: String,
    commit_dir: PathBuf,
    /// The site's files but the build log.
    previous: Vec<(String, String)>,
}

/// Commits `files` to acme/site, serves it behind a holding proxy, and builds it once
/// with room to spare.
async fn built_once(root: &Path, files_of_commit: &[(&str, &[u8])]) -> Built {
    let site = dirs(root);
    let repo = TestGit::new(root, "site");
    let after = repo.commit_files(files_of_commit, "content");
    repo.push("main");
    let (git, origin) = held_origin(root).await;
    let clone_url = origin.url("site.git");
    let hosts = format!("\"{}\"", origin.host);
    let first = TestDaemon::start(&lifecycle_config(root, "", "memory = \"256MiB\"", &hosts)).await;
    let (job, _) = push_main(&first, &clone_url, &after).await;
    assert_eq!(first.finished_job(&job).await["state"], "succeeded");
    first.stop().await;
    let commit_dir = site.join(&after[..10]);
    let previous = site_files(&commit_dir);
    Built { site, after, _git: git, origin, clone_url, hosts, commit_dir, previous }
}

/// The files of a commit's site but its build log.
fn site_files(commit_dir: &Path) -> Vec<(String, String)> {
    files(commit_dir).into_iter().filter(|(path, _)| path != "build_log.json").collect()
}

#[tokio::test]
async fn a_rebuild_is_staged_and_replaces_the_previous_site_only_when_complete() {
    let root = tempfile::tempdir().unwrap();
    let files_of_commit: &[(&str, &[u8])] = &[("a.md", b"# A\n"), ("docs/b.md", b"# B\n"), ("img/logo.png", PNG)];
    let Built { site, after, _git, origin, clone_url, hosts, commit_dir, .. } =
        built_once(root.path(), files_of_commit).await;
    // A file the previous build made that this one does not.
    std::fs::write(commit_dir.join("stale.html"), "<p>from an older build</p>").unwrap();
    let previous = site_files(&commit_dir);

    // The next build of the commit, with another layout, is held at its fetch.
    let layout = root.path().join("layout/page.html");
    std::fs::write(&layout, "<html><title>{{ title }}</title><main class=\"v2\">{{ content }}</main></html>").unwrap();
    let with = format!(", template = \"{}\"", layout.display());
    let daemon = TestDaemon::start(&lifecycle_config(root.path(), &with, "memory = \"256MiB\"", &hosts)).await;
    origin.hold("GET", "/site.git/info/refs");
    let (job, delivery) = push_main(&daemon, &clone_url, &after).await;
    origin.held().await;
    let started = started_log(&commit_dir.join("build_log.json"), &job_id(&delivery, &after)).await;
    assert_eq!(started["message"], "Conversion started...");
    assert_eq!((started["success"].as_bool(), started["ended_at"].is_null()), (Some(false), true));
    assert_eq!(started["log"], serde_json::json!([format!("Started job for acme/site/{}", &after[..10])]));
    assert_eq!(site_files(&commit_dir), previous, "the previous site is whole while the build runs");
    assert_eq!(json(&site.join("project.json"))["commits"][0]["status"], "started");
    origin.release();

    let finished = daemon.finished_job(&job).await;
    assert_eq!(finished["state"], "succeeded", "{finished:#}");
    let log = json(&commit_dir.join("build_log.json"));
    assert_eq!((log["status"].as_str(), log["success"].as_bool()), (Some("success"), Some(true)));
    for key in ["job_id", "created_at", "started_at"] {
        assert_eq!(log[key], started[key], "{key} is the started log's");
    }
    assert!(log["ended_at"].as_str().is_some());
    let names: Vec<String> = files(&commit_dir).into_iter().map(|(path, _)| path).collect();
    assert_eq!(names, ["a.html", "build_log.json", "docs/b.html", "img/logo.png", "index.html"], "stale.html is gone");
    assert!(read(&commit_dir.join("a.html")).contains("<main class=\"v2\">"));
    let leftovers: Vec<String> = std::fs::read_dir(&site)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "the commit's site and project.json, no staging: {leftovers:?}");
    assert_eq!(json(&site.join("project.json"))["commits"][0]["status"], "success");
    daemon.stop().await;
}

#[tokio::test]
async fn a_trap_mid_build_leaves_the_previous_site_and_a_failed_log() {
    let root = tempfile::tempdir().unwrap();
    // 15 MiB: under the transfer limit of a 16 MiB step, but not in its memory with the
    // rest. The pages are staged before the file is copied.
    let big = vec![b'x'; 15 << 20];
    let Built { site, after, _git, origin, clone_url, hosts, commit_dir, previous } =
        built_once(root.path(), &[("a.md", b"# A\n"), ("docs/b.md", b"# B\n"), ("big.bin", &big)]).await;
    assert!(previous.iter().any(|(path, _)| path == "big.bin"));

    // Another layout, so that the staged pages differ from the published ones.
    let layout = root.path().join("layout/page.html");
    std::fs::write(&layout, "<html><title>{{ title }}</title><main class=\"v2\">{{ content }}</main></html>").unwrap();
    let with = format!(", template = \"{}\"", layout.display());
    let daemon = TestDaemon::start(&lifecycle_config(root.path(), &with, "memory = \"16MiB\"", &hosts)).await;
    origin.hold("GET", "/site.git/info/refs");
    let (job, delivery) = push_main(&daemon, &clone_url, &after).await;
    origin.held().await;
    let log_path = commit_dir.join("build_log.json");
    let mut started = started_log(&log_path, &job_id(&delivery, &after)).await;
    // Marks the started log, to see that the handler kept what it held.
    started["created_at"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(&log_path, serde_json::to_vec(&started).unwrap()).unwrap();
    origin.release();

    let finished = daemon.finished_job(&job).await;
    assert_eq!(finished["state"], "failed", "{finished:#}");
    let steps = finished["steps"].as_array().unwrap();
    let summary = steps[0]["summary"].as_str().unwrap();
    assert!(summary.contains("trapped") && summary.contains("memory"), "{finished:#}");
    assert!(steps.iter().any(|step| step["status"] == "success"), "the on_error handler ran: {finished:#}");
    let log = json(&log_path);
    assert_eq!((log["status"].as_str(), log["success"].as_bool()), (Some("failed"), Some(false)));
    let message = format!("Conversion process ended abnormally: {summary}");
    assert_eq!(log["message"], message.as_str());
    assert_eq!(log["errors"].as_array().unwrap().last().unwrap(), message.as_str());
    assert_eq!(log["job_id"], started["job_id"]);
    assert_eq!(log["created_at"], "2000-01-01T00:00:00Z", "the started log's times are kept");
    assert_eq!(log["started_at"], started["started_at"]);
    assert!(log["ended_at"].as_str().is_some());
    assert_eq!(site_files(&commit_dir), previous, "the previous site is untouched");
    let staging: Vec<String> = std::fs::read_dir(&site)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".staging"))
        .collect();
    assert!(staging.is_empty(), "the handler removed the staged pages: {staging:?}");
    assert_eq!(json(&site.join("project.json"))["commits"][0]["status"], "failed");
    daemon.stop().await;
}

#[tokio::test]
async fn multipart_builds_log_each_part_and_call_back_with_the_result() {
    let root = tempfile::tempdir().unwrap();
    let site = dirs(root.path());
    let repo = TestGit::new(root.path(), "en_tn");
    // Door43's Notes, one directory a book, and a note in exo/ that is not UTF-8.
    let mut books = door43_fixture("en_tn");
    books.push(("exo/01/latin1.md".into(), b"caf\xe9\n".to_vec()));
    let books: Vec<(&str, &[u8])> = books.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice())).collect();
    let after = repo.commit_files(&books, "books");
    repo.push("main");
    let receiver = Receiver::start().await;
    receiver.then_answer(500, &[], "busy");
    let callback = format!("{}/client/callback/converter", receiver.url);
    let with = format!(", multipart = true, callback = \"{callback}\"");
    let hosts = format!("\"{}\"", receiver.host());
    let daemon = TestDaemon::start(&lifecycle_config(root.path(), &with, "memory = \"256MiB\"", &hosts)).await;
    let payload = push_payload(
        "acme",
        "en_tn",
        "refs/heads/main",
        &"0".repeat(40),
        &after,
        &format!("file://{}", repo.origin.display()),
    );
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let job = daemon.finished_job(body["jobs"][0].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let commit_dir = root.path().join("www/u/acme/en_tn").join(&after[..10]);
    let top = json(&commit_dir.join("build_log.json"));
    assert_eq!(top["multiple"], true);
    assert_eq!(top["status"], "warnings", "the worst part's status");
    assert_eq!(top["resource_type"], "tn");
    assert_eq!(top["callback"], receiver.url.as_str(), "the public log names only the callback's origin");
    let job_id = top["job_id"].as_str().unwrap();
    let parts = top["build_logs"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for (index, (book, status)) in [("exo", "warnings"), ("gen", "success")].into_iter().enumerate() {
        let part = json(&commit_dir.join(index.to_string()).join("build_log.json"));
        assert_eq!(&part, &parts[index], "the top log lists the part's log");
        assert_eq!((part["book"].as_str(), part["part"].as_str()), (Some(book), Some(index.to_string().as_str())));
        assert_eq!(part["status"], status, "{part:#}");
        assert_eq!(part["identifier"], format!("{job_id}/2/{index}/{book}"));
        assert!(part["pages"].as_array().unwrap().iter().all(|page| page.as_str().unwrap().starts_with(book)));
    }
    assert!(commit_dir.join("gen/02/01.html").is_file() && commit_dir.join("manifest.yaml").is_file());
    let listing = read(&commit_dir.join("index.html"));
    assert!(listing.contains("exo/01/01.html") && listing.contains("gen/02/01.html"), "one index of every part");
    drop(site);

    // One callback a part, as tx-manager's converters made (the first answered 500), then
    // the whole build's.
    let calls = receiver.requests();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2].json()["identifier"], top["identifier"]);
    assert_eq!(calls[2].json()["success"], true);
    for (index, call) in calls.iter().take(2).enumerate() {
        assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/client/callback/converter"));
        assert_eq!(call.header("content-type"), Some("application/json"));
        let result = call.json();
        let keys: Vec<&str> = result.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["errors", "identifier", "info", "success", "warnings"]);
        assert_eq!(result["identifier"], parts[index]["identifier"]);
        assert_eq!(result["success"], true);
        assert_eq!(result["info"], parts[index]["log"]);
        assert_eq!(result["warnings"], parts[index]["warnings"]);
    }
    let answers = job["steps"][0]["output"]["callback"].as_array().unwrap();
    assert!(answers[0].as_str().unwrap().contains("HTTP 500: busy"), "{answers:?}");
    assert!(answers[1].as_str().unwrap().contains("answered 200"), "{answers:?}");
    daemon.stop().await;
}

/// The files of a Door43-shaped fixture (`tests/fixtures/door43/<name>`, see its
/// README), as repository paths and bytes.
pub(crate) fn door43_fixture(name: &str) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = format!("{prefix}{}", entry.file_name().to_str().unwrap());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{path}/"), files);
            } else {
                files.push((path, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/door43").join(name), "", &mut files);
    files
}

/// A repository holding the fixture `name` pushed to `main`, and a daemon converting it
/// with `with` added to the step's settings (templates may sit in `<root>/templates`).
async fn door43_build(root: &Path, name: &str, with: &str) -> (TestDaemon, Value, PathBuf) {
    for dir in ["clones", "www", "templates"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let repo = TestGit::new(root, "site");
    let files = door43_fixture(name);
    let files: Vec<(&str, &[u8])> = files.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice())).collect();
    let after = repo.commit_files(&files, name);
    repo.push("main");
    let daemon = TestDaemon::start(&format!(
        r#"
{source}
[plugins.md2html]
wasm = "builtin:md2html-convert"
grants = {{ dirs = ["{root}/origin", "{root}/templates", {{ path = "{root}/clones", write = true }}, {{ path = "{root}/www", write = true }}] }}

[[rules]]
name = "site"
on = "push"
steps = [{{ plugin = "md2html", with = {{ repodir = "{root}/clones", output_dir = "{root}/www"{with} }} }}]
"#,
        source = github_source(),
        root = root.display(),
    ))
    .await;
    let job = push(&daemon, &repo, "main", &after).await;
    (daemon, job, root.join("www/u/acme/site").join(&after[..10]))
}

fn build_log(site: &Path) -> Value {
    serde_json::from_str(&read(&site.join("build_log.json"))).unwrap()
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

#[tokio::test]
async fn door43_section_anchors_become_header_ids_in_a_tx_manager_template() {
    let root = tempfile::tempdir().unwrap();
    // tx-manager's template form: Python `string.Template` placeholders.
    let template = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n<title>$title</title>\n</head>\n\
                    <body>\n<div id=\"content\">\n$content\n</div>\n<footer>${nope} costs $$5</footer>\n</body>\n</html>\n";
    std::fs::create_dir_all(root.path().join("templates")).unwrap();
    std::fs::write(root.path().join("templates/template.html"), template).unwrap();
    let with = format!(", template = \"{}/templates/template.html\"", root.path().display());
    let (daemon, job, site) = door43_build(root.path(), "en_ta", &with).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(build_log(&site)["status"], "success", "{:#}", build_log(&site));

    let metaphor = read(&site.join("translate/figs-metaphor/01.html"));
    for expected in [
        "<title>Metaphor</title>",
        "<div id=\"content\">\n<h1 id=\"figs-metaphor\" class=\"section-header\">Metaphor</h1>",
        "<h3 id=\"figs-metaphor-description\" class=\"section-header\">Description</h3>",
        // Headings without an anchor keep their generated ids.
        "<h3 id=\"reasons-this-is-a-translation-issue\">Reasons this is a translation issue</h3>",
        "<a href=\"../figs-simile/01.html#figs-simile\">simile</a>",
        "<footer>${nope} costs $5</footer>",
    ] {
        assert!(metaphor.contains(expected), "{expected} in {metaphor}");
    }
    assert!(
        !metaphor.contains("<a id=") && !metaphor.contains("$title") && !metaphor.contains("$content"),
        "{metaphor}"
    );
    let simile = read(&site.join("translate/figs-simile/01.html"));
    assert!(simile.contains("<h1 id=\"figs-simile\" class=\"section-header\">Simile</h1>"), "{simile}");
    assert!(simile.contains("href=\"../../checking/intro-check/01.html#intro-check-steps\""), "{simile}");
    let check = read(&site.join("checking/intro-check/01.html"));
    assert!(check.contains("<h3 id=\"intro-check-steps\" class=\"section-header\">Steps</h3>"), "{check}");
    assert!(check.contains("<h3 id=\"why-check\">Why check</h3>") && !check.contains("<a id="), "{check}");
    assert!(check.contains("src=\"../../media/checklist.png\""), "{check}");
    assert!(read(&site.join("translate/figs-metaphor/title.html")).contains("<p>Metaphor</p>"));
    assert!(site.join("media/checklist.png").is_file() && site.join("manifest.yaml").is_file());
    assert!(site.join("translate/toc.yaml").is_file());
    assert!(!site.join("README.html").exists() && !site.join("LICENSE.html").exists());
    let listing = read(&site.join("index.html"));
    assert!(listing.contains("<title>acme/site</title>"), "the index is in the template too: {listing}");
    assert!(listing.contains("<a href=\"translate/figs-metaphor/01.html\">Metaphor</a>"), "{listing}");
    daemon.stop().await;
}

#[tokio::test]
async fn flat_layout_writes_pages_by_base_name_and_the_first_of_a_name_wins() {
    let root = tempfile::tempdir().unwrap();
    let (daemon, job, site) = door43_build(root.path(), "en_tn", ", layout = \"flat\"").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    // Tree order: exo/ before gen/, a chapter before front/.
    let mut written: Vec<String> =
        std::fs::read_dir(&site).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(
        written,
        ["01.html", "03.html", "05.html", "build_log.json", "index.html", "intro.html", "manifest.yaml"],
        "every file in the site's root"
    );
    let log = build_log(&site);
    assert_eq!(log["status"], "warnings");
    assert_eq!(
        strings(&log["warnings"]),
        [
            "Skipped exo/front/intro.md: exo/01/intro.md is already written to intro.html",
            "Skipped gen/01/01.md: exo/01/01.md is already written to 01.html",
            "Skipped gen/01/intro.md: exo/01/intro.md is already written to intro.html",
            "Skipped gen/02/01.md: exo/01/01.md is already written to 01.html",
            "Skipped gen/02/intro.md: exo/01/intro.md is already written to intro.html",
            "Skipped gen/front/intro.md: exo/01/intro.md is already written to intro.html",
        ]
    );
    let lines = strings(&log["log"]);
    assert!(
        lines.contains(&"Converted exo/01/01.md to 01.html.") && lines.contains(&"Converted gen/01/03.md to 03.html.")
    );
    assert_eq!(strings(&log["pages"]), ["01.html", "05.html", "intro.html", "03.html"]);

    let first = read(&site.join("01.html"));
    assert!(first.contains("An invented note on Exodus 1:1."), "the first 01.md in tree order: {first}");
    assert!(first.contains("<h1 id=\"exo-01-01-words\" class=\"section-header\">Words</h1>"), "{first}");
    assert!(first.contains("<a href=\"index.html\">acme/site</a>"), "every page is at the root: {first}");
    let intro = read(&site.join("intro.html"));
    assert!(intro.contains("<a href=\"01.html\">"), "a link to a written page goes to its name: {intro}");
    assert!(
        intro.contains("<a href=\"../front/intro.md\">") && intro.contains("<a href=\"../02/intro.md\">"),
        "links to skipped or missing files stay as written: {intro}"
    );
    let listing = read(&site.join("index.html"));
    assert!(listing.contains("<a href=\"01.html\">These are the names 1:1</a>"), "{listing}");
    assert!(!listing.contains("gen/") && !listing.contains("exo/"), "{listing}");
    daemon.stop().await;
}

#[tokio::test]
async fn flat_layout_copies_media_to_the_root_and_points_images_there() {
    let root = tempfile::tempdir().unwrap();
    let (daemon, job, site) = door43_build(root.path(), "en_ta", ", layout = \"flat\"").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(
        std::fs::read(site.join("checklist.png")).unwrap(),
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/door43/en_ta/media/checklist.png")).unwrap()
    );
    for name in ["01.html", "title.html", "sub-title.html", "config.yaml", "toc.yaml", "manifest.yaml"] {
        assert!(site.join(name).is_file(), "{name}");
    }
    assert!(!site.join("checking").exists() && !site.join("media").exists());
    // checking/ comes first: its topic keeps the names every topic has.
    let page = read(&site.join("01.html"));
    assert!(page.contains("<h1 id=\"intro-check\" class=\"section-header\">Checking Your Work</h1>"), "{page}");
    assert!(page.contains("src=\"checklist.png\""), "{page}");
    let warnings = build_log(&site)["warnings"].clone();
    assert!(
        strings(&warnings).contains(
            &"Skipped translate/figs-metaphor/01.md: checking/intro-check/01.md is already written to 01.html"
        ),
        "{warnings:#}"
    );
    assert!(
        strings(&warnings).contains(&"Skipped translate/toc.yaml: checking/toc.yaml is already written to toc.yaml")
    );
    daemon.stop().await;
}

/// A config publishing to `s3://cdn/site` at `endpoint`, whose host is granted as
/// `grant`, with the recommended `on_error` handler.
fn s3_config(root: &Path, endpoint: &str, grant: &str, with: &str, limits: &str) -> String {
    format!(
        r#"
{source}
[plugins.md2html]
wasm = "builtin:md2html-convert"
grants = {{ dirs = ["{root}/origin", {{ path = "{root}/clones", write = true }}], hosts = [{grant}] }}
limits = {{ {limits} }}
with = {{ repodir = "{root}/clones", output = "s3://cdn/site", endpoint = "{endpoint}", cache_control = "max-age=600"{with} }}
{SITE_RULE}"#,
        source = github_source(),
        root = root.display(),
    )
}

/// A sigv4 grant of `host` with the test server's keys (`secret` overrides its secret).
fn signed(host: &str, secret: Option<&str>) -> String {
    use gitauto_tests::s3::{ACCESS_KEY, REGION, SECRET_KEY};
    format!(
        "{{ host = \"{host}\", credential = {{ sigv4 = {{ access_key = \"{ACCESS_KEY}\", secret_key = \"{}\", region = \"{REGION}\" }} }} }}",
        secret.unwrap_or(SECRET_KEY)
    )
}

/// The objects of bucket `cdn` under `prefix`, each with its SHA-256.
fn objects(server: &S3Server, prefix: &str) -> Vec<(String, String)> {
    let keys = server.keys("cdn").into_iter().filter(|key| key.starts_with(prefix));
    keys.map(|key| {
        let bytes = server.object("cdn", &key).unwrap();
        (key[prefix.len()..].to_owned(), digest(&bytes))
    })
    .collect()
}

#[tokio::test]
async fn a_push_publishes_its_site_to_s3_with_a_started_log_first() {
    let server = S3Server::start(&["cdn"]).await;
    let proxy = HoldingProxy::start(&server.endpoint()).await;
    let root = tempfile::tempdir().unwrap();
    dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(
        &[
            ("a.md", b"# A\n"),
            ("docs/b & c.md", b"# B\n"),
            ("img/logo.png", PNG),
            ("css/site.css", b"body {}"),
            ("fonts/x.woff2", b"wOF2"),
        ],
        "content",
    );
    repo.push("main");
    let clone_url = format!("file://{}", repo.origin.display());
    let grant = signed(&proxy.host, None);
    let endpoint = proxy.url("");
    let first = TestDaemon::start(&s3_config(root.path(), &endpoint, &grant, "", "memory = \"256MiB\"")).await;
    let (job, _) = push_main(&first, &clone_url, &after).await;
    let finished = first.finished_job(&job).await;
    assert_eq!(finished["state"], "succeeded", "{finished:#}");
    first.stop().await;
    let prefix = format!("site/u/acme/site/{}/", &after[..10]);
    let key = |path: &str| format!("{prefix}{path}");
    let names: Vec<String> = objects(&server, &prefix).into_iter().map(|(path, _)| path).collect();
    assert_eq!(
        names,
        ["a.html", "build_log.json", "css/site.css", "docs/b & c.html", "fonts/x.woff2", "img/logo.png", "index.html"]
    );
    assert_eq!(server.object("cdn", &key("img/logo.png")).unwrap(), PNG);
    for (path, content_type) in [
        ("a.html", "text/html; charset=utf-8"),
        ("docs/b & c.html", "text/html; charset=utf-8"),
        ("css/site.css", "text/css; charset=utf-8"),
        ("img/logo.png", "image/png"),
        ("fonts/x.woff2", "font/woff2"),
        ("build_log.json", "application/json"),
    ] {
        assert_eq!(server.content_type("cdn", &key(path)).as_deref(), Some(content_type), "{path}");
    }
    assert_eq!(server.cache_control("cdn", &key("a.html")).as_deref(), Some("max-age=600"));
    assert_eq!(server.cache_control("cdn", &key("build_log.json")).as_deref(), Some("no-cache"));
    let log: Value = serde_json::from_slice(&server.object("cdn", &key("build_log.json")).unwrap()).unwrap();
    assert_eq!((log["status"].as_str(), log["cdn_bucket"].as_str()), (Some("success"), Some("cdn")));
    assert_eq!(log["cdn_file"], prefix.as_str());
    assert_eq!(log["output"], format!("s3://cdn/{}", prefix.trim_end_matches('/')));
    let project: Value =
        serde_json::from_slice(&server.object("cdn", "site/u/acme/site/project.json").unwrap()).unwrap();
    assert_eq!(project["commits"][0]["status"], "success");
    let previous = objects(&server, &prefix);

    // Only a.md now: the rest of the commit's site is stale. The build is held at its
    // first staged page, while the previous site is still whole.
    let with = ", convert_only = [\"a.md\"]";
    let daemon = TestDaemon::start(&s3_config(root.path(), &endpoint, &grant, with, "memory = \"256MiB\"")).await;
    proxy.hold("PUT", ".staging/a.html");
    let (job, delivery) = push_main(&daemon, &clone_url, &after).await;
    proxy.held().await;
    let started: Value = serde_json::from_slice(&server.object("cdn", &key("build_log.json")).unwrap()).unwrap();
    assert_eq!(
        (started["status"].as_str(), started["message"].as_str()),
        (Some("started"), Some("Conversion started..."))
    );
    assert_eq!(started["job_id"], job_id(&delivery, &after));
    let during: Vec<_> = objects(&server, &prefix).into_iter().filter(|(path, _)| path != "build_log.json").collect();
    let before: Vec<_> = previous.into_iter().filter(|(path, _)| path != "build_log.json").collect();
    assert_eq!(during, before, "the previous site is whole while the build runs");
    proxy.release();

    let finished = daemon.finished_job(&job).await;
    assert_eq!(finished["state"], "succeeded", "{finished:#}");
    let names: Vec<String> = objects(&server, &prefix).into_iter().map(|(path, _)| path).collect();
    assert_eq!(names, ["a.html", "build_log.json", "index.html"], "the stale objects are gone");
    assert!(server.keys("cdn").iter().all(|key| !key.contains(".staging")), "{:?}", server.keys("cdn"));
    let log: Value = serde_json::from_slice(&server.object("cdn", &key("build_log.json")).unwrap()).unwrap();
    assert_eq!(log["status"], "success");
    assert_eq!((&log["job_id"], &log["created_at"]), (&started["job_id"], &started["created_at"]));
    assert_eq!(server.content_type("cdn", &key("a.html")).as_deref(), Some("text/html; charset=utf-8"));
    daemon.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_server_and_fails_the_step() {
    let server = S3Server::start(&["cdn"]).await;
    let root = tempfile::tempdir().unwrap();
    dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(&[("a.md", b"# A\n")], "content");
    repo.push("main");
    let grant = signed(&server.host(), Some("not-the-secret"));
    let daemon =
        TestDaemon::start(&s3_config(root.path(), &server.endpoint(), &grant, "", "memory = \"256MiB\"")).await;
    let (job, _) = push_main(&daemon, &format!("file://{}", repo.origin.display()), &after).await;
    let finished = daemon.finished_job(&job).await;
    assert_eq!(finished["state"], "failed", "{finished:#}");
    let summary = finished["steps"][0]["summary"].as_str().unwrap();
    let want = format!(
        "PUT s3://cdn/site/u/acme/site/{}/build_log.json: denied by the server, HTTP 403 (SignatureDoesNotMatch",
        &after[..10]
    );
    assert!(summary.contains(&want), "{finished:#}");
    assert!(server.keys("cdn").is_empty(), "{:?}", server.keys("cdn"));
    daemon.stop().await;
}

/// A rebuild on S3 stopped while staging: what a first build published and the second
/// build, held at its second staged page until its deadline (3 s) stops it.
struct HeldRebuild {
    server: S3Server,
    proxy: HoldingProxy,
    _root: tempfile::TempDir,
    daemon: TestDaemon,
    job: String,
    /// The job id the build records.
    job_id: String,
    /// `site/u/acme/site/<commit10>/`.
    prefix: String,
    /// The first build's site but its log.
    previous: Vec<(String, String)>,
}

/// The site's objects under `prefix` but the build log.
fn s3_site(server: &S3Server, prefix: &str) -> Vec<(String, String)> {
    objects(server, prefix).into_iter().filter(|(path, _)| path != "build_log.json").collect()
}

/// Builds acme/site (a.md, docs/c.md) to S3, then starts a rebuild with the flat layout
/// (another site: c.html, a new index) and waits until its second staged page is held:
/// a.html is staged by then.
async fn s3_rebuild_held_while_staging() -> HeldRebuild {
    let server = S3Server::start(&["cdn"]).await;
    let proxy = HoldingProxy::start(&server.endpoint()).await;
    let root = tempfile::tempdir().unwrap();
    dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(&[("a.md", b"# A\n"), ("docs/c.md", b"# C\n")], "content");
    repo.push("main");
    let clone_url = format!("file://{}", repo.origin.display());
    let (grant, endpoint) = (signed(&proxy.host, None), proxy.url(""));
    let first = TestDaemon::start(&s3_config(root.path(), &endpoint, &grant, "", "memory = \"256MiB\"")).await;
    let (job, _) = push_main(&first, &clone_url, &after).await;
    assert_eq!(first.finished_job(&job).await["state"], "succeeded");
    first.stop().await;
    let prefix = format!("site/u/acme/site/{}/", &after[..10]);
    let previous = s3_site(&server, &prefix);
    assert!(previous.iter().any(|(path, _)| path == "docs/c.html"));

    let limits = "memory = \"256MiB\", timeout = \"3s\"";
    let daemon = TestDaemon::start(&s3_config(root.path(), &endpoint, &grant, ", layout = \"flat\"", limits)).await;
    proxy.hold("PUT", ".staging/c.html");
    let (job, delivery) = push_main(&daemon, &clone_url, &after).await;
    proxy.held().await;
    let staged: Vec<String> = server.keys("cdn").into_iter().filter(|key| key.contains(".staging/")).collect();
    assert!(staged.iter().any(|key| key.ends_with(".staging/a.html")), "staging has begun: {staged:?}");
    let job_id = job_id(&delivery, &after);
    HeldRebuild { server, proxy, _root: root, daemon, job, job_id, prefix, previous }
}

/// The job once the held build's deadline stopped it and its handler ran; the log.
async fn stopped(held: &HeldRebuild) -> (Value, Value) {
    let finished = held.daemon.finished_job(&held.job).await;
    assert_eq!(finished["state"], "failed", "{finished:#}");
    let steps = finished["steps"].as_array().unwrap();
    assert!(steps.iter().any(|step| step["status"] == "success"), "the on_error handler ran: {finished:#}");
    let log = held.server.object("cdn", &format!("{}build_log.json", held.prefix)).unwrap();
    let log: Value = serde_json::from_slice(&log).unwrap();
    let summary = steps[0]["summary"].as_str().unwrap();
    assert_eq!(log["status"], "failed");
    assert_eq!(log["message"], format!("Conversion process ended abnormally: {summary}"));
    assert_eq!(log["job_id"], held.job_id.as_str());
    (finished, log)
}

#[tokio::test]
async fn a_step_stopped_while_staging_on_s3_leaves_the_previous_site_and_a_failed_log() {
    let held = s3_rebuild_held_while_staging().await;
    stopped(&held).await;
    let (server, prefix) = (&held.server, &held.prefix);
    assert_eq!(s3_site(server, prefix), held.previous, "the previous site is untouched: no copy into place began");
    assert!(server.keys("cdn").iter().all(|key| !key.contains(".staging")), "{:?}", server.keys("cdn"));
    held.daemon.stop().await;
}

#[tokio::test]
async fn the_handler_writes_the_failed_log_when_its_clean_up_fails() {
    let held = s3_rebuild_held_while_staging().await;
    // The handler's first listing (of what to clean up) is refused.
    let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    held.proxy.refuse("GET", "list-type=2", 403, denied);
    let (_, log) = stopped(&held).await;
    assert!(held.proxy.refused().is_some());
    let warnings = strings(&log["warnings"]);
    assert!(
        warnings.iter().any(|w| w.starts_with("Cannot clean up after the build: LIST") && w.contains("AccessDenied")),
        "{log:#}"
    );
    assert_eq!(s3_site(&held.server, &held.prefix), held.previous);
    held.daemon.stop().await;
}

/// `s3_config` with a rule that retries once, at once.
fn retrying(config: &str) -> String {
    config.replacen("on = \"push\"\n", "on = \"push\"\nretries = 1\nretry_backoff = \"0s\"\n", 1)
}

#[tokio::test]
async fn a_busy_server_makes_the_build_retry_not_fail() {
    let server = S3Server::start(&["cdn"]).await;
    let proxy = HoldingProxy::start(&server.endpoint()).await;
    let root = tempfile::tempdir().unwrap();
    dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(&[("a.md", b"# A\n"), ("b.md", b"# B\n")], "content");
    repo.push("main");
    let grant = signed(&proxy.host, None);
    let config = retrying(&s3_config(root.path(), &proxy.url(""), &grant, "", "memory = \"256MiB\""));
    let daemon = TestDaemon::start(&config).await;
    // S3's answer when it wants fewer requests: the staged page's upload fails once.
    let slow_down = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    proxy.refuse("PUT", ".staging/b.html", 503, slow_down);
    let (job, _) = push_main(&daemon, &format!("file://{}", repo.origin.display()), &after).await;
    let finished = daemon.finished_job(&job).await;
    assert!(proxy.refused().is_some_and(|path| path.ends_with("/b.html")), "{:?}", proxy.refused());
    assert_eq!(
        (finished["state"].as_str(), finished["attempts"].as_i64()),
        (Some("succeeded"), Some(2)),
        "{finished:#}"
    );
    let prefix = format!("site/u/acme/site/{}/", &after[..10]);
    let names: Vec<String> = objects(&server, &prefix).into_iter().map(|(path, _)| path).collect();
    assert_eq!(names, ["a.html", "b.html", "build_log.json", "index.html"]);
    let log: Value =
        serde_json::from_slice(&server.object("cdn", &format!("{prefix}build_log.json")).unwrap()).unwrap();
    assert_eq!(log["status"], "success");
    daemon.stop().await;
}

#[tokio::test]
async fn a_build_whose_log_a_newer_build_took_publishes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let Built { after, _git, origin, clone_url, hosts, commit_dir, previous, .. } =
        built_once(root.path(), &[("a.md", b"# A\n"), ("docs/b.md", b"# B\n")]).await;
    let layout = root.path().join("layout/page.html");
    std::fs::write(&layout, "<html><main class=\"v2\">{{ content }}</main></html>").unwrap();
    let with = format!(", template = \"{}\"", layout.display());
    let daemon = TestDaemon::start(&lifecycle_config(root.path(), &with, "memory = \"256MiB\"", &hosts)).await;
    origin.hold("GET", "/site.git/info/refs");
    let (job, delivery) = push_main(&daemon, &clone_url, &after).await;
    origin.held().await;
    let log_path = commit_dir.join("build_log.json");
    let mut newer = started_log(&log_path, &job_id(&delivery, &after)).await;
    // A newer build of the commit starts while this one fetches: its log is the live one.
    newer["job_id"] = "newer-build".into();
    std::fs::write(&log_path, serde_json::to_vec(&newer).unwrap()).unwrap();
    origin.release();

    let finished = daemon.finished_job(&job).await;
    let summary = finished["steps"][0]["summary"].as_str().unwrap();
    assert!(summary.contains("superseded") && summary.contains("newer-build"), "{finished:#}");
    assert_eq!(json(&log_path)["job_id"], "newer-build", "the newer build's log is kept");
    assert_eq!(site_files(&commit_dir), previous, "nothing published over the newer build's site");
    daemon.stop().await;
}

#[tokio::test]
async fn a_swap_cut_short_is_undone_before_the_next_build() {
    let root = tempfile::tempdir().unwrap();
    let site = dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(&[("a.md", b"# A\n")], "content");
    repo.push("main");
    // A swap stopped between its renames: the previous site aside, none in place.
    let (live, old) = (site.join(&after[..10]), site.join(format!(".{}.old", &after[..10])));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("a.html"), "previous").unwrap();
    // A build that publishes nothing (no Markdown to convert) must not lose it.
    let daemon = daemon(root.path(), ", convert_only = [\"none.md\"]").await;
    let job = push(&daemon, &repo, "main", &after).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(read(&live.join("a.html")), "previous", "the previous site is back in place");
    assert!(!old.exists());
    let log = json(&live.join("build_log.json"));
    let restored = format!("Restored the previous site from {}", old.display());
    assert!(strings(&log["log"]).contains(&restored.as_str()), "{log:#}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_copy_into_place_cut_short_is_finished_by_the_handler() {
    let server = S3Server::start(&["cdn"]).await;
    let proxy = HoldingProxy::start(&server.endpoint()).await;
    let root = tempfile::tempdir().unwrap();
    dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    let after = repo.commit_files(&[("a.md", b"# A\n"), ("docs/c.md", b"# C\n")], "content");
    repo.push("main");
    let clone_url = format!("file://{}", repo.origin.display());
    let (grant, endpoint) = (signed(&proxy.host, None), proxy.url(""));
    let first = TestDaemon::start(&s3_config(root.path(), &endpoint, &grant, "", "memory = \"256MiB\"")).await;
    let (job, _) = push_main(&first, &clone_url, &after).await;
    assert_eq!(first.finished_job(&job).await["state"], "succeeded");
    first.stop().await;
    let prefix = format!("site/u/acme/site/{}/", &after[..10]);
    let names =
        |server: &S3Server| -> Vec<String> { objects(server, &prefix).into_iter().map(|(path, _)| path).collect() };
    assert_eq!(names(&server), ["a.html", "build_log.json", "docs/c.html", "index.html"]);

    // The flat layout moves docs/c.html to c.html; the copy of c.html into place is
    // refused after a.html's went through: the live prefix is half old, half new.
    let with = ", layout = \"flat\"";
    let daemon = TestDaemon::start(&s3_config(root.path(), &endpoint, &grant, with, "memory = \"256MiB\"")).await;
    let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    proxy.refuse("PUT", &format!("{prefix}c.html"), 403, denied);
    let (job, _) = push_main(&daemon, &clone_url, &after).await;
    let finished = daemon.finished_job(&job).await;
    assert!(proxy.refused().is_some(), "the copy was refused");
    assert_eq!(finished["state"], "failed", "{finished:#}");
    let steps = finished["steps"].as_array().unwrap();
    assert!(steps[0]["summary"].as_str().unwrap().contains("AccessDenied"), "{finished:#}");
    assert!(steps.iter().any(|step| step["status"] == "success"), "the on_error handler ran: {finished:#}");
    // The staged site was complete: the handler finished its copy and removed the stale page.
    assert_eq!(names(&server), ["a.html", "build_log.json", "c.html", "index.html"]);
    let index = String::from_utf8(server.object("cdn", &format!("{prefix}index.html")).unwrap()).unwrap();
    assert!(index.contains("c.html") && !index.contains("docs/c.html"), "{index}");
    assert!(server.keys("cdn").iter().all(|key| !key.contains(".staging")), "{:?}", server.keys("cdn"));
    let log: Value =
        serde_json::from_slice(&server.object("cdn", &format!("{prefix}build_log.json")).unwrap()).unwrap();
    assert_eq!(log["status"], "failed");
    assert!(
        strings(&log["log"]).iter().any(|line| line.starts_with("Finished publishing the complete staged site")),
        "{log:#}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn flat_multipart_skips_what_an_earlier_part_wrote_and_caps_the_step_output() {
    let root = tempfile::tempdir().unwrap();
    dirs(root.path());
    let repo = TestGit::new(root.path(), "site");
    // Two books with the same 60 note names: flat, the second book's all collide.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for book in ["exo", "gen"] {
        for n in 0..60 {
            files.push((format!("{book}/n{n:02}.md"), format!("# {book} {n}\n").into_bytes()));
        }
    }
    // A directory named like a part's log directory is no part; a file whose flat name
    // is one is skipped.
    files.push(("1/x.md".into(), b"# X\n".to_vec()));
    files.push(("media/0".into(), b"zero".to_vec()));
    let files: Vec<(&str, &[u8])> = files.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice())).collect();
    let after = repo.commit_files(&files, "books");
    repo.push("main");
    let daemon = daemon(root.path(), ", multipart = true, layout = \"flat\"").await;
    let job = push(&daemon, &repo, "main", &after).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let commit_dir = root.path().join("www/u/acme/site").join(&after[..10]);
    let top = json(&commit_dir.join("build_log.json"));
    let parts = top["build_logs"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "no part for 1/: {top:#}");
    let gen_part = &parts[1];
    assert_eq!(gen_part["book"], "gen");
    assert!(gen_part["pages"].as_array().unwrap().is_empty(), "gen's pages were all written by exo: {gen_part:#}");
    assert!(strings(&gen_part["warnings"]).contains(&"Skipped gen/n00.md: an earlier part already wrote n00.html"));
    assert!(!strings(&gen_part["log"]).iter().any(|line| line.starts_with("Converted")), "{gen_part:#}");
    assert!(strings(&top["warnings"]).contains(&"Skipped media/0: 0/ holds part 0's build log"), "{top:#}");
    assert_eq!(top["pages"].as_array().unwrap().len(), 61, "exo's pages, each once, and x.html");
    let index = read(&commit_dir.join("index.html"));
    assert_eq!(index.matches("href=\"n00.html\"").count(), 1, "{index}");
    assert_eq!(json(&commit_dir.join("1/build_log.json"))["book"], "gen");
    // The top log's time is every run's.
    for key in ["read_ms", "render_ms", "write_ms"] {
        let parts_time: f64 = parts.iter().map(|part| part["timings"][key].as_f64().unwrap()).sum();
        assert!(top["timings"][key].as_f64().unwrap() >= parts_time, "{key}: {top:#}");
    }
    // The step's output carries counts and the first 50 warnings; the log has them all.
    let output = &job["steps"][0]["output"];
    let warnings = top["warnings"].as_array().unwrap();
    assert!(warnings.len() > 60, "{}", warnings.len());
    assert_eq!(output["warning_count"], warnings.len());
    assert_eq!(output["warnings"].as_array().unwrap().as_slice(), &warnings[..50]);
    daemon.stop().await;
}
