//! `edx-import` end to end: a push updates the course checkout, then runs a fake
//! edx-platform `manage.py` (a shell script, run by a "python" that is `/bin/sh`) which
//! records its arguments, working directory and environment.

use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The fake edx-platform: `manage.py` behaves as `<root>/out/mode` says (`ok`, `fail`,
/// `sleep`) and writes what it was given to `<root>/out/record.txt`.
struct FakeEdx {
    root: PathBuf,
}

impl FakeEdx {
    fn new(root: &Path) -> Self {
        let platform = root.join("edx-platform");
        let bin = root.join("venv/bin");
        std::fs::create_dir_all(&platform).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink("/bin/sh", bin.join("python")).unwrap();
        // Where the fake may write: the plugin's grant confines it.
        std::fs::create_dir_all(root.join("out")).unwrap();
        let record = root.join("out/record.txt");
        let mode = root.join("out/mode");
        std::fs::write(
            platform.join("manage.py"),
            format!(
                "printf 'argv=%s %s\\n' \"$0\" \"$*\" > {record}\nprintf 'cwd=%s\\n' \"$(pwd)\" >> {record}\nenv | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort >> {record}\n\
                 case \"$(cat {mode})\" in\n  fail) echo 'Cannot import: course.xml is missing' >&2; exit 2;;\n  sleep) echo started; sleep 5;;\nesac\necho 'Course imported'\n",
                record = record.display(),
                mode = mode.display(),
            ),
        )
        .unwrap();
        std::fs::write(&mode, "ok").unwrap();
        Self { root: root.to_path_buf() }
    }

    fn set(&self, mode: &str) {
        std::fs::write(self.root.join("out/mode"), mode).unwrap();
    }

    fn record(&self) -> String {
        std::fs::read_to_string(self.root.join("out/record.txt")).unwrap()
    }
}

async fn daemon(root: &Path, extra: &str) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
{source}
[plugins.edx-import]
wasm = "builtin:edx-import"
grants = {{ dirs = [{{ path = "{root}/repos", git = true }}, "{root}/edx-platform", {{ path = "{root}/out", write = true }}], commands = [{{ program = "{root}/venv/bin/python", env = ["SERVICE_VARIANT", "LMS_CFG", "REVISION_CFG"] }}] }}

[[rules]]
name = "import"
on = "push"
steps = [{{ plugin = "edx-import", with = {{ repodir = "{root}/repos", virtual_env = "{root}/venv", edx_platform = "{root}/edx-platform", lms_cfg = "/conf/lms.yml", revision_cfg = "/conf/revisions.yml"{extra} }} }}]
"#,
        source = github_source(),
        root = root.display(),
    ))
    .await
}

async fn push(daemon: &TestDaemon, before: &str, after: &str) -> Value {
    let payload = push_payload("mitx", "course", "refs/heads/main", before, after, "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    daemon.finished_job(body["jobs"][0].as_str().unwrap()).await
}

#[tokio::test]
async fn a_push_updates_the_checkout_and_imports_it_as_gitreload_did() {
    let root = tempfile::tempdir().unwrap();
    let edx = FakeEdx::new(root.path());
    let repo = TestGit::new(root.path(), "course");
    let checkout = root.path().join("repos/course");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("course.xml", "<course/>\n", "add course.xml");
    repo.push("main");

    let daemon = daemon(root.path(), "").await;
    let job = push(&daemon, &before, &after).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after, "updated before the import");
    let checkout_text = checkout.display().to_string();
    let origin = repo.origin.display().to_string();
    assert_eq!(
        edx.record(),
        format!(
            "argv=manage.py lms --settings=production git_add_course {origin} --directory_path {checkout_text}\n\
             cwd={}/edx-platform\nLMS_CFG=/conf/lms.yml\nPATH=/usr/local/bin:/usr/bin:/bin\nREVISION_CFG=/conf/revisions.yml\nSERVICE_VARIANT=lms\n",
            root.path().display()
        )
    );
    let output = &job["steps"][0]["output"];
    assert_eq!(output["stdout"], "Course imported\n");
    assert_eq!(output["update"]["new"], after.as_str());
    assert_eq!(job["summary"], format!("imported {checkout_text}"));

    // The import fails: a failure outcome carrying the command's output.
    edx.set("fail");
    let job = push(&daemon, &before, &after).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["summary"], "step 1 (edx-import) failed: import command failed (exit 2)");
    assert_eq!(job["steps"][0]["output"]["stderr"], "Cannot import: course.xml is missing\n");
    daemon.stop().await;
}

#[tokio::test]
async fn timeouts_and_configuration_errors_are_failures_that_say_so() {
    let root = tempfile::tempdir().unwrap();
    let edx = FakeEdx::new(root.path());
    let repo = TestGit::new(root.path(), "course");
    repo.clone_to(&root.path().join("repos/course"));
    let head = repo.head();

    let first = daemon(root.path(), ", timeout_seconds = 1").await;
    edx.set("sleep");
    let job = push(&first, &head, &head).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["summary"], "step 1 (edx-import) failed: import timed out after 1 s");
    assert_eq!(job["steps"][0]["output"]["stdout"], "started\n");
    first.stop().await;

    // edx-platform is gone: the command cannot start in it.
    std::fs::remove_dir_all(root.path().join("edx-platform")).unwrap();
    let daemon = daemon(root.path(), "").await;
    let job = push(&daemon, &head, &head).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(job["summary"].as_str().unwrap().contains("configuration error: "), "{job:#}");
    daemon.stop().await;
}
