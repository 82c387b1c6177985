//! Helpers for gitauto's integration tests. Everything is real: git repositories made
//! with the `git` command in temporary directories, the daemon serving on loopback with
//! its own SQLite file (or, in the `it_postgres` run, its own PostgreSQL database),
//! signed HTTP requests, and real Wasm plugins.

pub mod browser;
pub mod debian;
pub mod fake_api;
pub mod file_server;
pub mod git_http;
pub mod hold;
pub mod otlp;
pub mod receiver;
pub mod registry;
pub mod s3;
pub mod tools;

use hmac::{KeyInit, Mac};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A webhook secret used by test configs.
pub const SECRET: &str = "test-secret";

/// A `[sources.github]` table signed with [`SECRET`], to start test configs with.
pub fn github_source() -> String {
    format!("[sources.github]\nforge = \"github\"\nsecret = \"{SECRET}\"\n")
}

/// A bare "origin" repository plus an author's working clone that commits and pushes to
/// it, as a forge would hold a repository that people push to.
pub struct TestGit {
    /// The bare repository (what the checkout's `origin` points at).
    pub origin: PathBuf,
    author: PathBuf,
}

impl TestGit {
    /// A new repository under `root`, with one commit on `main`.
    pub fn new(root: &Path, name: &str) -> Self {
        let origin = root.join("origin").join(format!("{name}.git"));
        let author = root.join("author").join(name);
        std::fs::create_dir_all(&origin).unwrap();
        git(&origin, &["init", "--bare", "--initial-branch=main", "."]);
        std::fs::create_dir_all(&author).unwrap();
        git(&author, &["init", "--initial-branch=main", "."]);
        git(&author, &["remote", "add", "origin", origin.to_str().unwrap()]);
        let repo = Self { origin, author };
        repo.commit("README.md", "# first\n", "first commit");
        repo.push("main");
        repo
    }

    /// Commits `content` to `path` on the author's current branch; returns the commit id.
    pub fn commit(&self, path: &str, content: &str, message: &str) -> String {
        self.commit_files(&[(path, content.as_bytes())], message)
    }

    /// Commits several files with exact bytes; returns the commit id.
    pub fn commit_files(&self, files: &[(&str, &[u8])], message: &str) -> String {
        for (path, content) in files {
            let file = self.author.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content).unwrap();
        }
        git(&self.author, &["add", "--all"]);
        git(&self.author, &["commit", "--quiet", "-m", message]);
        self.head()
    }

    /// Switches the author's clone to a new branch.
    pub fn branch(&self, name: &str) {
        git(&self.author, &["checkout", "--quiet", "-b", name]);
    }

    /// Switches the author's clone to an existing branch.
    pub fn switch(&self, name: &str) {
        git(&self.author, &["checkout", "--quiet", name]);
    }

    /// Sets `target` (a full ref name) on origin to `source` (a branch or commit), forced:
    /// `refs/pull/7/head` as a forge keeps it, or a branch rewritten.
    pub fn push_ref(&self, source: &str, target: &str) {
        git(&self.author, &["push", "--quiet", "--force", "origin", &format!("{source}:{target}")]);
    }

    /// Pushes a branch to origin.
    pub fn push(&self, branch: &str) {
        git(&self.author, &["push", "--quiet", "origin", branch]);
    }

    /// The author's HEAD commit.
    pub fn head(&self) -> String {
        git(&self.author, &["rev-parse", "HEAD"])
    }

    /// Clones origin to `path` (a deployment checkout, as an admin would make it).
    pub fn clone_to(&self, path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        git(path.parent().unwrap(), &["clone", "--quiet", self.origin.to_str().unwrap(), path.to_str().unwrap()]);
    }
}

/// Runs git with a config isolated from the machine's; returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Whether this test binary is the `it_postgres` run: the store-related modules of the
/// integration suite again, with every daemon's queue in a PostgreSQL database of its own.
/// Cargo has no per-target setting a library could read, so the binary's name says it.
pub fn on_postgres() -> bool {
    static ON_POSTGRES: OnceLock<bool> = OnceLock::new();
    *ON_POSTGRES.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name().map(|name| name.to_string_lossy().starts_with("it_postgres")))
            .unwrap_or(false)
    })
}

/// `config` with a `[store]` on a new PostgreSQL database in the `it_postgres` run
/// (when the config names no store of its own); `config` itself otherwise, or when no
/// PostgreSQL server can run here outside CI (said on stderr).
fn with_test_store(config: &str) -> String {
    if !on_postgres() || config.contains("[store]") {
        return config.to_owned();
    }
    match gitauto::testing::database() {
        Some(url) => format!("{config}\n[store]\nurl = \"{url}\"\n"),
        None => config.to_owned(),
    }
}

/// A daemon serving on `127.0.0.1:0` from its own temporary directory (config file,
/// SQLite queue or, in the `it_postgres` run, a PostgreSQL database; plugin cache).
pub struct TestDaemon {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The daemon's directory (holds `gitauto.toml` and `.gitauto/`).
    pub dir: tempfile::TempDir,
    /// The config it serves.
    pub config: gitauto::config::Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    client: reqwest::Client,
}

impl TestDaemon {
    /// Writes `config` to a fresh directory and serves it.
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gitauto.toml"), with_test_store(config)).unwrap();
        Self::start_in(dir).await
    }

    /// Stops the daemon and starts one with `config` in the same directory, on the same
    /// store (as an operator restarting it after a change would).
    pub async fn restart(mut self, config: &str) -> Self {
        self.shutdown().await;
        let store = match &self.config.store {
            Some(url) if !config.contains("[store]") => format!(
                "
[store]
url = \"{}\"
",
                url.expose()
            ),
            _ => String::new(),
        };
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        std::fs::write(dir.path().join("gitauto.toml"), format!("{config}{store}")).unwrap();
        Self::start_in(dir).await
    }

    /// Serves the `gitauto.toml` in `dir`, with the queue and cache already there (see
    /// [`TestDaemon::stop_keeping_dir`]): a restart.
    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        let path = dir.path().join("gitauto.toml");
        let config = gitauto::config::Config::load(&path).unwrap_or_else(|err| panic!("test config: {err}"));
        let daemon = gitauto::daemon::Daemon::prepare(config.clone()).await.expect("daemon prepares");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(daemon.serve(listener, async {
            let _ = stopped.await;
        }));
        Self { url, dir, config, stop: Some(stop), task: Some(task), client: reqwest::Client::new() }
    }

    /// Posts `body` as `source`'s forge would send `event`, signed with the source's
    /// newest secret; returns the status, the JSON answer and the delivery id sent.
    pub async fn post_as(&self, source: &str, event: &str, body: &[u8]) -> (u16, Value, String) {
        let source = self.config.source(source).unwrap_or_else(|| panic!("no source {source}"));
        let headers = gitauto::send::headers(source, event, body);
        let delivery = headers
            .iter()
            .find(|(name, _)| {
                let name = name.to_ascii_lowercase();
                name.ends_with("-delivery") || name == "x-request-uuid" || name == "x-gitlab-event-uuid"
            })
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        let (status, answer) = self.post(&format!("/hooks/{}", source.name), &headers, body).await;
        (status, answer, delivery)
    }

    /// Posts `body` to `path` with exactly these headers.
    pub async fn post(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
        let mut request = self.client.post(format!("{}{path}", self.url)).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a signed GitHub delivery; returns the status and the JSON answer.
    pub async fn post_github(&self, source: &str, event: &str, body: &[u8], secret: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/hooks/{source}", self.url))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", uuid_like())
            .header("x-hub-signature-256", sign(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs a path; returns the status and the JSON answer.
    /// Sends the config's API token, when it has one.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some(token) = &self.config.server.api_token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until job `id` has finished (any final state) and returns it.
    pub async fn finished_job(&self, id: &str) -> Value {
        wait_for(&format!("job {id} to finish"), Duration::from_secs(60), || async {
            let (status, job) = self.get(&format!("/api/jobs/{id}")).await;
            (status == 200 && !matches!(job["state"].as_str(), Some("queued" | "running"))).then_some(job)
        })
        .await
    }

    /// Posts `payload` as a GitHub `event` to `[sources.github]` (signed with [`SECRET`])
    /// and waits for its one job.
    pub async fn run_github(&self, event: &str, payload: &[u8]) -> Value {
        let (status, body) = self.post_github("github", event, payload, SECRET).await;
        assert_eq!(status, 202, "{body}");
        let jobs = body["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{body}");
        self.finished_job(jobs[0].as_str().unwrap()).await
    }

    /// Stops the daemon and waits for it to drain.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    /// Stops the daemon, waits for it to drain, and hands back its directory (config,
    /// queue, cache) for [`TestDaemon::start_in`].
    pub async fn stop_keeping_dir(mut self) -> tempfile::TempDir {
        self.shutdown().await;
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// GitHub's `X-Hub-Signature-256` for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n)
}

/// A GitHub `pull_request.opened` payload (from the real-shaped fixture) for pull
/// request `number` of `acme/widgets`: `head`, the tip of branch `branch`, into `target`,
/// cloned from `clone_url`.
pub fn pull_request_payload(clone_url: &str, number: u64, head: &str, branch: &str, target: &str) -> Vec<u8> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads/github/pull_request-opened.json");
    let mut payload: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    payload["number"] = number.into();
    let pr = &mut payload["pull_request"];
    pr["number"] = number.into();
    pr["head"]["sha"] = head.into();
    pr["head"]["ref"] = branch.into();
    pr["base"]["ref"] = target.into();
    payload["repository"]["clone_url"] = clone_url.into();
    serde_json::to_vec(&payload).unwrap()
}

/// A GitHub push payload (from the real-shaped fixture) for `owner/name`, branch or tag
/// `git_ref`, moving from `before` to `after`, cloned from `clone_url`.
pub fn push_payload(owner: &str, name: &str, git_ref: &str, before: &str, after: &str, clone_url: &str) -> Vec<u8> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads/github/push.json");
    let mut payload: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    payload["ref"] = git_ref.into();
    payload["before"] = before.into();
    payload["after"] = after.into();
    let repo = &mut payload["repository"];
    repo["name"] = name.into();
    repo["full_name"] = format!("{owner}/{name}").into();
    repo["owner"]["login"] = owner.into();
    repo["owner"]["name"] = owner.into();
    repo["clone_url"] = clone_url.into();
    serde_json::to_vec(&payload).unwrap()
}

/// The step `name` of a job as the API shows it.
pub fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"].as_array().unwrap().iter().find(|step| step["name"] == name).unwrap_or_else(|| panic!("{job:#}"))
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
