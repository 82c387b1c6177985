#![allow(clippy::disallowed_methods, reason = "a blocking test that drives child processes")]

//! Reports survive a crash (issue 21): the real `gitauto` binary finishes jobs while the
//! forge's API cannot be reached (their reports wait in the outbox, backing off), is
//! killed with SIGKILL, and after a restart every report reaches the API once it answers,
//! each job's in order: queued, running, its end.

mod common;

use common::{Daemon, free_port, post_push, push_to, ureq_like_get};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "report-crash-secret";

/// What the fake API received: (path, body), in order.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A fake GitHub status API on `port` that records each request and answers 201.
fn fake_api(port: u16) -> Received {
    let received: Received = Arc::default();
    let recorder = received.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let recorder = recorder.clone();
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    recorder.lock().unwrap().push((uri.path().to_owned(), body));
                    (axum::http::StatusCode::CREATED, "{}")
                }
            });
            ready_tx.send(()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready.recv().unwrap();
    received
}

fn get_json(url: &str) -> Value {
    serde_json::from_str(&ureq_like_get(url).unwrap_or_else(|| panic!("GET {url}"))).unwrap()
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reports_written_before_a_kill_reach_the_forge_after_the_restart() {
    crash_and_restart(None);
}

#[test]
fn reports_written_before_a_kill_reach_the_forge_after_the_restart_on_postgresql() {
    let Some(url) = gitauto::testing::database() else { return };
    crash_and_restart(Some(url));
}

/// Jobs end while the API is unreachable, the daemon is killed, the API comes up, the
/// daemon restarts: every report arrives, in order. `store`: a PostgreSQL URL, or the
/// SQLite file.
fn crash_and_restart(store: Option<String>) {
    let root = tempfile::tempdir().unwrap();
    let (port, api_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let config = root.path().join("gitauto.toml");
    // The plugin's directory: outside the daemon's own files, which no grant may reach.
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "data"
public_url = "https://gitauto.example.com"

[sources.github]
forge = "github"
secret = "{SECRET}"
api = {{ url = "http://127.0.0.1:{api_port}", token = "t0ken" }}

[plugins.mergeable]
wasm = "builtin:mergeable"
grants = {{ dirs = ["{work}"] }}

[[rules]]
name = "ci"
on = "push"
report = "status"
steps = [{{ plugin = "mergeable", with = {{ repodir = "{work}" }} }}]
{store}"#,
            work = work.display(),
            store = store.map(|url| format!("[store]\nurl = \"{url}\"\n")).unwrap_or_default(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config, &base);
    // Nothing listens on the API's port yet: every report fails and waits in the outbox.
    let commits: Vec<String> = (1..=3).map(|n| format!("{n:040x}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (n, commit) in commits.iter().enumerate() {
        let body = push_to("widgets", &format!("b{n}"), commit, n);
        let url = format!("{base}/hooks/github");
        let accepted = runtime.block_on(post_push(reqwest::Client::new(), url, SECRET, format!("d{n}"), body));
        assert!(accepted.is_some(), "push {n} accepted");
    }
    wait("the three jobs to end", || {
        let jobs = get_json(&format!("{base}/api/jobs"));
        let jobs = jobs["jobs"].as_array().unwrap();
        jobs.len() == 3 && jobs.iter().all(|job| job["state"] == "skipped")
    });
    daemon.kill();

    let received = fake_api(api_port);
    let daemon = Daemon::start(&config, &base);
    wait("nine statuses", || received.lock().unwrap().len() >= 9);
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 9, "each report once: {received:?}");
    for commit in &commits {
        let sent: Vec<(&str, &str)> = received
            .iter()
            .filter(|(path, _)| path == &format!("/repos/acme/widgets/statuses/{commit}"))
            .map(|(_, body)| (body["state"].as_str().unwrap(), body["description"].as_str().unwrap()))
            .collect();
        assert_eq!(
            sent,
            [("pending", "queued"), ("pending", "running"), ("success", "not a pull request")],
            "{commit}"
        );
    }
    assert!(received.iter().all(|(_, body)| body["context"] == "gitauto/ci"));
    daemon.kill();
}
