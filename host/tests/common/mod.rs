//! Helpers shared by the host's integration tests: git, and the real `gitauto` binary as
//! a child process.
#![allow(dead_code, reason = "each test uses some of these")]

use hmac::{KeyInit, Mac};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs git with a config isolated from the machine's; returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An origin with a few commits and a deployment checkout of it under `repos/acme/NAME`,
/// one commit behind.
pub fn repository(root: &Path, name: &str) -> (PathBuf, String) {
    let origin = root.join("origin").join(name);
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "--quiet", "--initial-branch=main", "."]);
    for n in 0..3 {
        std::fs::write(origin.join("file.txt"), format!("{name} {n}\n")).unwrap();
        git(&origin, &["add", "--all"]);
        git(&origin, &["commit", "--quiet", "-m", &format!("commit {n}")]);
    }
    let checkout = root.join("repos/acme").join(name);
    std::fs::create_dir_all(checkout.parent().unwrap()).unwrap();
    git(root, &["clone", "--quiet", origin.to_str().unwrap(), checkout.to_str().unwrap()]);
    git(&checkout, &["reset", "--quiet", "--hard", "HEAD~1"]);
    (checkout, git(&origin, &["rev-parse", "HEAD"]))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Daemon(Child);

impl Daemon {
    /// Starts `gitauto serve` on `config` and waits until `base` answers.
    pub fn start(config: &Path, base: &str) -> Self {
        let daemon = Self::spawn(config);
        daemon.wait_ready(base);
        daemon
    }

    /// Starts `gitauto serve` on `config` without waiting.
    pub fn spawn(config: &Path) -> Self {
        let log = std::fs::File::create(config.with_extension("log.txt")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gitauto"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon(child)
    }

    /// Waits until the daemon answers health checks at `base`.
    pub fn wait_ready(&self, base: &str) {
        let started = Instant::now();
        while ureq_like_get(&format!("{base}/healthz")).is_none() {
            assert!(started.elapsed() < Duration::from_secs(120), "the daemon at {base} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking GET; the body when the answer is 200.
pub fn ureq_like_get(url: &str) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.ok()?;
        (response.status() == 200).then_some(())?;
        response.text().await.ok()
    })
}

/// GitHub's `X-Hub-Signature-256` of `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A GitHub push of `acme/NAME` to `after`, from pusher `n`.
pub fn push_body(name: &str, after: &str, n: usize) -> Vec<u8> {
    push_to(name, "main", after, n)
}

/// A GitHub push of branch `branch` of `acme/NAME` to `after`, from pusher `n`.
pub fn push_to(name: &str, branch: &str, after: &str, n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0".repeat(40),
        "after": after,
        "repository": {"name": name, "full_name": format!("acme/{name}"), "owner": {"login": "acme"},
                       "clone_url": "file:///unused", "default_branch": "main"},
        "sender": {"login": format!("pusher-{n}")},
        "commits": [],
    }))
    .unwrap()
}

/// Posts a push `body` signed with `secret` to `url` as GitHub delivery `delivery`; the
/// delivery id when it was accepted (202), none when refused or unanswered (the daemon
/// was killed meanwhile).
pub async fn post_push(
    client: reqwest::Client,
    url: String,
    secret: &str,
    delivery: String,
    body: Vec<u8>,
) -> Option<String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", &delivery)
        .header("x-hub-signature-256", sign(secret, &body))
        .body(body)
        .send()
        .await
        .ok()?;
    (response.status() == 202).then_some(delivery)
}
