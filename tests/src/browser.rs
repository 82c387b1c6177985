//! Headless Chromium for the dashboard's tests, driven through chromedriver's WebDriver
//! API. Debian's `chromium` and `chromium-driver` are installed when missing (as root, or
//! with sudo). When a test fails while a browser is open, the page is saved as a PNG
//! screenshot and its HTML beside it, and both paths are printed with the test's output.

use crate::debian::ensure_debian_package;
use crate::wait_for;
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A browser session: chromedriver and the Chromium it started, with a profile of its own.
pub struct Browser {
    process: Child,
    url: String,
    session: String,
    http: reqwest::Client,
    /// Names the screenshot taken if the test fails.
    name: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `name` names the failure screenshot.
    pub async fn start(name: &str) -> Self {
        let chromium = ensure_debian_package("chromium", "chromium");
        let chromedriver = ensure_debian_package("chromium-driver", "chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
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
        // Without the background-networking flags, Chromium keeps trying to reach Google's
        // hosts, which a closed network refuses.
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
            "--window-size=1280,1600",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer: Value =
            http.post(format!("{url}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session =
            answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        Self { process, url, session, http, name: name.to_owned(), _profile: profile }
    }

    /// A WebDriver command of this session; its `value`.
    pub async fn command(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.url, self.session);
        let answer: Value = self.http.post(url).json(&body).send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.command("url", json!({"url": url})).await;
    }

    /// Runs `script` in the page (a function body: `return ...`); its return value.
    pub async fn run(&self, script: &str) -> Value {
        self.command("execute/sync", json!({"script": script, "args": []})).await
    }

    /// The text of the first element matching a CSS selector, if there is one.
    pub async fn text(&self, selector: &str) -> Option<String> {
        let script = format!("const e=document.querySelector({});return e?e.innerText:null", json!(selector));
        self.run(&script).await.as_str().map(str::to_owned)
    }

    /// Clicks the first element matching a CSS selector as a person would (WebDriver's
    /// element click: scrolled into view, refused when something covers it); panics when
    /// there is none.
    pub async fn click(&self, selector: &str) {
        let found = self.command("element", json!({"using": "css selector", "value": selector})).await;
        let element = found
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element `{selector}` on the page: {found}"))
            .to_owned();
        let clicked = self.command(&format!("element/{element}/click"), json!({})).await;
        assert!(clicked.is_null(), "clicking `{selector}`: {clicked}");
    }

    /// The page's URL now.
    pub async fn current_url(&self) -> String {
        let url = format!("{}/session/{}/url", self.url, self.session);
        let answer: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        answer["value"].as_str().unwrap_or_default().to_owned()
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&self) -> Vec<u8> {
        screenshot(&reqwest::Client::new(), &self.url, &self.session).await.expect("a screenshot")
    }
}

/// A screenshot and the page's HTML, through a client of its own (the test's may be
/// stuck with the runtime that is unwinding).
async fn screenshot(http: &reqwest::Client, url: &str, session: &str) -> Result<Vec<u8>, String> {
    let answer: Value = http
        .get(format!("{url}/session/{session}/screenshot"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let encoded = answer["value"].as_str().ok_or_else(|| format!("no screenshot: {answer}"))?;
    base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| e.to_string())
}

async fn page_source(http: &reqwest::Client, url: &str, session: &str) -> Option<String> {
    let answer: Value = http.get(format!("{url}/session/{session}/source")).send().await.ok()?.json().await.ok()?;
    answer["value"].as_str().map(str::to_owned)
}

/// Where failure screenshots go: `target/test-screenshots` (or under `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("target"));
    target.join("test-screenshots")
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (url, session, failed) = (self.url.clone(), self.session.clone(), std::thread::panicking());
        let base = screenshot_dir().join(format!("{}-{}", self.name, std::process::id()));
        // A runtime and a client of their own, on a thread of their own: this may run
        // inside the test's runtime, which may be unwinding.
        let saved = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().ok()?;
                let saved = match failed {
                    true => save_page(&http, &url, &session, &base).await,
                    false => None,
                };
                // Ending the session ends Chromium; killing chromedriver alone would leave it.
                let _ = http.delete(format!("{url}/session/{session}")).send().await;
                saved
            })
        })
        .join()
        .ok()
        .flatten();
        match (failed, saved) {
            (true, Some(base)) => eprintln!(
                "the page when the test failed: {} (its HTML: {})",
                base.with_extension("png").display(),
                base.with_extension("html").display()
            ),
            (true, None) => eprintln!("the page could not be saved when the test failed"),
            (false, _) => {}
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Saves the page as `base.png` and `base.html`.
async fn save_page(http: &reqwest::Client, url: &str, session: &str, base: &Path) -> Option<PathBuf> {
    let png = screenshot(http, url, session).await.ok()?;
    std::fs::create_dir_all(base.parent()?).ok()?;
    std::fs::write(base.with_extension("png"), png).ok()?;
    if let Some(html) = page_source(http, url, session).await {
        let _ = std::fs::write(base.with_extension("html"), html);
    }
    Some(base.to_path_buf())
}
