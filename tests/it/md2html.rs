//! `md2html-convert` on a real repository: nested folders, an image, a table, a
//! front-matter block, a README (excluded) and a file that is not UTF-8 (a warning, not a
//! crash). The site, its build log and the project's build list are checked. Then
//! Door43-shaped repositories (`tests/fixtures/door43`): section-header anchors,
//! tx-manager's `$title` templates and the flat layout.

use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload};
use serde_json::Value;
use std::path::{Path, PathBuf};

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
