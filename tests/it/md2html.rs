//! `md2html-convert` on a real repository: nested folders, an image, a table, a
//! front-matter block, a README (excluded) and a file that is not UTF-8 (a warning, not a
//! crash). The site, its build log and the project's build list are checked.

use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload};
use serde_json::Value;
use std::path::Path;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake image bytes \xff\x00";

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
    for key in ["job_id", "created_at", "started_at", "ended_at"] {
        assert!(log[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
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
