//! `run` through the daemon with real programs (flake8 from Debian, gcc, sleep) in a
//! granted directory: success and failure by exit code, the problems a matcher finds as
//! annotations, `changed_only`, and what the grant refuses (a program it does not list,
//! a variable it does not allow), said in the job.

use gitauto_tests::debian::ensure_debian_package;
use gitauto_tests::{SECRET, TestDaemon, git, github_source, push_payload};
use serde_json::{Value, json};
use std::path::Path;

const VIOLATION: &str = "import os\n";
const CLEAN: &str = "print('hello')\n";

/// A daemon with one rule per case, each matching pushes to the branch of its name.
async fn daemon(root: &Path, flake8: &Path) -> TestDaemon {
    let work = root.join("work");
    let with = |settings: &str| format!("program = \"{}\", cwd = \"{}\", {settings}", flake8.display(), work.display());
    let rules = [
        ("violation", with(r#"args = ["bad.py"], matcher = "flake8", env = { LANG = "C.UTF-8" }"#)),
        ("clean", with(r#"args = ["clean.py"], matcher = "flake8""#)),
        ("allowed", with(r#"args = ["bad.py"], matcher = "flake8", ok_exit_codes = [0, 1]"#)),
        ("strict", with(r#"args = ["clean.py"], ok_exit_codes = [1]"#)),
        (
            "pasted",
            with(
                r#"args = ["bad.py"], matcher = { problemMatcher = [{ owner = "f8", severity = "warning", pattern = [{ regexp = '^([^:]*):(\d+):(\d+): ([EF]\d\d\d) (.*)$', file = 1, line = 2, column = 3, code = 4, message = 5 }] }] }"#,
            ),
        ),
        ("env", with(r#"args = ["clean.py"], env = { PYTHONPATH = "/srv/elsewhere" }"#)),
        ("ungranted", format!(r#"program = "{{{{ 'python3' }}}}", args = ["--version"], cwd = "{}""#, work.display())),
        (
            "changed",
            format!(
                r#"program = "{}", cwd = "{}/repo", matcher = "flake8", changed_only = true, paths = ["**.py"]"#,
                flake8.display(),
                work.display()
            ),
        ),
        (
            "unchanged",
            format!(
                r#"program = "{}", cwd = "{}/repo", changed_only = true, paths = ["**.rs"]"#,
                flake8.display(),
                work.display()
            ),
        ),
        (
            "nobase",
            format!(
                r#"program = "{}", cwd = "{}/plain", changed_only = true, paths = ["**.py"]"#,
                flake8.display(),
                work.display()
            ),
        ),
        (
            "gcc",
            format!(
                r#"program = "gcc", args = ["-fsyntax-only", "-Wall", "src/main.c"], cwd = "{}", matcher = "gcc""#,
                work.display()
            ),
        ),
        ("timeout", format!(r#"program = "sleep", args = [5], cwd = "{}", timeout = "1s""#, work.display())),
    ];
    let mut config = format!(
        r#"
{source}
[plugins.run]
wasm = "builtin:run"
grants = {{ dirs = ["{work}"], commands = [{{ program = "{flake8}", env = ["LANG"] }}, "gcc", "sleep"] }}
"#,
        source = github_source(),
        work = work.display(),
        flake8 = flake8.display(),
    );
    for (branch, settings) in rules {
        config.push_str(&format!(
            "\n[[rules]]\nname = \"{branch}\"\non = \"push\"\nbranch = \"{branch}\"\nsteps = [{{ plugin = \"run\", with = {{ {settings} }} }}]\n"
        ));
    }
    TestDaemon::start(&config).await
}

/// Pushes to `branch` and waits for its job.
async fn push(daemon: &TestDaemon, branch: &str) -> Value {
    push_with(daemon, branch, |_| {}).await
}

/// Pushes to `branch` a payload `change` has changed, and waits for its job.
async fn push_with(daemon: &TestDaemon, branch: &str, change: impl FnOnce(&mut Value)) -> Value {
    let head = "1".repeat(40);
    let payload = push_payload("acme", "widgets", &format!("refs/heads/{branch}"), &head, &head, "file:///unused");
    let mut payload: Value = serde_json::from_slice(&payload).unwrap();
    change(&mut payload);
    let payload = serde_json::to_vec(&payload).unwrap();
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "one rule per branch: {body}");
    daemon.finished_job(body["jobs"][0].as_str().unwrap()).await
}

/// The work directory: Python files with and without a violation, a C file with a
/// warning, and a repository whose `refs/gitauto/base` is one commit behind `HEAD`.
fn work(root: &Path) {
    let work = root.join("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(work.join("bad.py"), VIOLATION).unwrap();
    std::fs::write(work.join("clean.py"), CLEAN).unwrap();
    std::fs::write(work.join("src/main.c"), "int main(void) {\n    int unused;\n    return 0;\n}\n").unwrap();
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main", "."]);
    std::fs::write(repo.join("old.py"), VIOLATION).unwrap();
    git(&repo, &["add", "--all"]);
    git(&repo, &["commit", "--quiet", "-m", "base"]);
    git(&repo, &["update-ref", "refs/gitauto/base", "HEAD"]);
    std::fs::create_dir_all(repo.join("pkg")).unwrap();
    std::fs::write(repo.join("pkg/new.py"), "import sys\n").unwrap();
    std::fs::write(repo.join("notes.txt"), "not python\n").unwrap();
    git(&repo, &["add", "--all"]);
    git(&repo, &["commit", "--quiet", "-m", "change"]);
    // A repository without `refs/gitauto/base`: the event's commit lists must say.
    let plain = work.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    git(&plain, &["init", "--quiet", "--initial-branch=main", "."]);
    git(&plain, &["commit", "--quiet", "--allow-empty", "-m", "only"]);
}

#[tokio::test]
async fn run_reports_exit_codes_and_annotations_and_refuses_what_the_grant_does_not_allow() {
    let flake8 = ensure_debian_package("flake8", "flake8");
    let root = tempfile::tempdir().unwrap();
    work(root.path());
    let daemon = daemon(root.path(), &flake8).await;

    // A violation: the job fails, and its output carries the problem.
    let job = push(&daemon, "violation").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(
        job["summary"],
        "step 1 (run) failed: flake8 exited 1: 1 problem (first: bad.py:1:1 F401 'os' imported but unused)"
    );
    let output = &job["steps"][0]["output"];
    assert_eq!(
        output["annotations"],
        json!([{"path": "bad.py", "line": 1, "column": 1, "severity": "error", "message": "'os' imported but unused", "code": "F401"}])
    );
    assert_eq!(output["exit_code"], 1);
    assert_eq!(output["stdout"], "bad.py:1:1: F401 'os' imported but unused\n");
    assert_eq!(output["timed_out"], false);

    // A clean file: success.
    let job = push(&daemon, "clean").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["steps"][0]["summary"], "flake8 exited 0: no problems");
    assert_eq!(job["steps"][0]["output"]["annotations"], json!([]));

    // The exit code decides, as `ok_exit_codes` says.
    let job = push(&daemon, "allowed").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["steps"][0]["output"]["annotations"][0]["code"], "F401");
    let job = push(&daemon, "strict").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["summary"], "step 1 (run) failed: flake8 exited 0");

    // A matcher pasted as a table, with its default severity.
    let job = push(&daemon, "pasted").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(
        job["steps"][0]["output"]["annotations"],
        json!([{"path": "bad.py", "line": 1, "column": 1, "severity": "warning", "message": "'os' imported but unused", "code": "F401"}])
    );

    // What the grant does not allow is refused, naming it.
    let job = push(&daemon, "ungranted").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(
        job["summary"],
        format!(
            "step 1 (run): invalid settings: cannot run `python3`: program `python3` is not granted (granted commands: {}, gcc, sleep)",
            flake8.display()
        )
    );
    let job = push(&daemon, "env").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    let flake8 = flake8.display();
    let want = format!(
        "step 1 (run): invalid settings: cannot run `{flake8}`: `PYTHONPATH` may not be set for `{flake8}` (variables its grant names: LANG)"
    );
    assert!(summary.starts_with(&want), "{summary}");
    daemon.stop().await;
}

#[tokio::test]
async fn changed_only_checks_the_changed_files_and_skips_when_none_remain() {
    let flake8 = ensure_debian_package("flake8", "flake8");
    let root = tempfile::tempdir().unwrap();
    work(root.path());
    let daemon = daemon(root.path(), &flake8).await;

    // Only pkg/new.py changed among the Python files: old.py's violation is not reported.
    let job = push(&daemon, "changed").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let annotations = &job["steps"][0]["output"]["annotations"];
    assert_eq!(
        *annotations,
        json!([{"path": "pkg/new.py", "line": 1, "column": 1, "severity": "error", "message": "'sys' imported but unused", "code": "F401"}])
    );

    let job = push(&daemon, "unchanged").await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    assert_eq!(job["steps"][0]["summary"], "no changed files to check");

    // No base ref: the push's commit lists name only Markdown files, so nothing to check;
    // without commit lists the step cannot tell, and says so.
    let job = push(&daemon, "nobase").await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    let job = push_with(&daemon, "nobase", |payload| payload["commits"] = json!([])).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    assert!(summary.ends_with("/plain has no `refs/gitauto/base` and the event's commit list is empty"), "{summary}");
    daemon.stop().await;
}

#[tokio::test]
async fn compiler_warnings_and_timeouts_come_back_as_such() {
    let flake8 = ensure_debian_package("flake8", "flake8");
    let root = tempfile::tempdir().unwrap();
    work(root.path());
    let daemon = daemon(root.path(), &flake8).await;

    // gcc writes to stderr; a warning alone does not fail it.
    let job = push(&daemon, "gcc").await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let annotation = &job["steps"][0]["output"]["annotations"][0];
    assert_eq!(annotation["path"], "src/main.c");
    assert_eq!(annotation["line"], 2);
    assert_eq!(annotation["severity"], "warning");
    assert_eq!(annotation["code"], "-Wunused-variable");

    let job = push(&daemon, "timeout").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    assert!(summary.starts_with("step 1 (run) failed: sleep timed out after "), "{summary}");
    assert!(summary.ends_with(" and was killed"), "{summary}");
    assert_eq!(job["steps"][0]["output"]["timed_out"], true);
    assert_eq!(job["steps"][0]["output"]["exit_code"], Value::Null);
    daemon.stop().await;
}

#[test]
fn a_program_the_grant_does_not_list_fails_the_config_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
{source}
[plugins.run]
wasm = "builtin:run"
grants = {{ dirs = ["{dir}"], commands = ["sleep"] }}

[[rules]]
name = "lint"
on = "push"
steps = [{{ plugin = "run", with = {{ program = "flake8", cwd = "{dir}" }} }}]
"#,
        source = github_source(),
        dir = dir.path().display(),
    );
    let err = gitauto::config::Config::parse(&dir.path().join("gitauto.toml"), &text).unwrap_err().to_string();
    assert!(
        err.contains("`with.program` = `flake8` runs `flake8`, which is not in the plugin's `grants.commands`: add it"),
        "{err}"
    );
}
