//! The dashboard in a real browser: headless Chromium driven through chromedriver's
//! WebDriver API. The page lists a finished job, and a running job's page shows its log
//! lines as they are written, then its final state. Debian's `chromium` and
//! `chromium-driver` are installed by this test when missing (as root, or with sudo).

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Chromium and chromedriver from Debian's packages when they are missing.
fn ensure_chromium() {
    if std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists() {
        return;
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut command = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            command.args(["-n", "apt-get"]);
        }
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let install = ["install", "-y", "-q", "chromium", "chromium-driver"];
    // A fresh machine may not have read the package lists yet.
    let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    assert!(
        installed,
        "the browser test needs Debian's chromium and chromium-driver: `apt-get install chromium chromium-driver`"
    );
}

struct Driver {
    process: Child,
    url: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Self {
        ensure_chromium();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for("chromedriver", Duration::from_secs(30), || async {
            let status = http.get(format!("{url}/status")).send().await.ok()?;
            let body: Value = status.json().await.ok()?;
            (body["value"]["ready"] == true).then_some(())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer: Value =
            http.post(format!("{url}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session =
            answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        Self { process, url, session, http, _profile: profile }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.url, self.session);
        let answer: Value = self.http.post(url).json(&body).send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command("url", json!({"url": url})).await;
    }

    /// Runs `script` in the page; its return value.
    async fn run(&self, script: &str) -> Value {
        self.command("execute/sync", json!({"script": script, "args": []})).await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test]
async fn the_dashboard_lists_jobs_and_streams_a_running_jobs_log() {
    let daemon = TestDaemon::start(&format!(
        r#"
[server]
workers = 2
{source}
[plugins.probe]
wasm = "{probe}"
[[rules]]
name = "quick"
on = "push"
repo = "acme/quick"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 50 }} }}]
[[rules]]
name = "chatty"
on = "push"
repo = "acme/chatty"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 4000, lines = 8 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    ))
    .await;
    let daemon = &daemon;
    let post = |name: &'static str| {
        let payload = push_payload("acme", name, "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
        async move {
            let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
            assert_eq!(status, 202, "{body}");
            body["jobs"][0].as_str().unwrap().to_owned()
        }
    };
    let quick = post("quick").await;
    daemon.finished_job(&quick).await;
    let driver = Driver::start().await;

    driver.open(&format!("{}/", daemon.url)).await;
    let row = driver
        .run(&format!("return document.querySelector('a[href=\"/jobs/{quick}\"]').closest('tr').innerText"))
        .await;
    assert!(row.as_str().unwrap_or_default().contains("succeeded"), "the history shows the finished job: {row}");

    let chatty = post("chatty").await;
    wait_for("the chatty job to start", Duration::from_secs(30), || async {
        (daemon.get(&format!("/api/jobs/{chatty}")).await.1["state"] == "running").then_some(())
    })
    .await;
    driver.open(&format!("{}/jobs/{chatty}", daemon.url)).await;
    let log = "return document.getElementById('log').textContent";
    let at_load = driver.run(log).await.as_str().unwrap_or_default().matches("tick").count();
    // Lines appear in the open page while the job runs, without reloading it.
    let grown = wait_for("new log lines in the open page", Duration::from_secs(30), || async {
        let text = driver.run(log).await.as_str().unwrap_or_default().to_owned();
        let ticks = text.matches("tick").count();
        let running = daemon.get(&format!("/api/jobs/{chatty}")).await.1["state"] == "running";
        (ticks > at_load && running).then_some(ticks)
    })
    .await;
    assert!(grown > at_load);
    let state = wait_for("the page to show the final state", Duration::from_secs(30), || async {
        let state = driver.run("return document.getElementById('state').textContent").await;
        (state == "succeeded").then_some(state)
    })
    .await;
    assert_eq!(state, "succeeded");
    let text = driver.run(log).await;
    assert_eq!(text.as_str().unwrap().matches("tick").count(), 8, "every line, once: {text}");
}
