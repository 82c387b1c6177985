#![allow(clippy::disallowed_methods, reason = "a blocking test that waits for a child process")]

//! Crash safety of the real `gitauto` binary: bursts of signed pushes for several
//! repositories are posted while the daemon runs `fetch-update` jobs, and the daemon is
//! killed with SIGKILL in the middle of each burst, 20 times in a row. Every delivery it
//! had answered 202 must have its work run to completion, and no job that had completed
//! may run again. The counts are printed.

mod common;

use common::git;
use hmac::{KeyInit, Mac};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "durability-secret";
const REPOS: &[&str] = &["alpha", "beta", "gamma", "delta"];
/// Kill-and-restart cycles.
const CYCLES: usize = 20;
/// Pushes posted at once in each cycle's burst.
const BURST: usize = 40;
/// The daemon is killed once this many of a burst's pushes were accepted.
const KILL_AFTER: usize = 20;

/// An origin with a few commits and a deployment checkout of it under `repos/acme/NAME`,
/// one commit behind.
fn repository(root: &Path, name: &str) -> (PathBuf, String) {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Daemon(Child);

impl Daemon {
    fn start(config: &Path, base: &str) -> Self {
        let log = std::fs::File::create(config.with_extension("log.txt")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gitauto"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let started = Instant::now();
        while ureq_like_get(&format!("{base}/healthz")).is_none() {
            assert!(started.elapsed() < Duration::from_secs(120), "the daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon(child)
    }

    fn kill(mut self) {
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
fn ureq_like_get(url: &str) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.ok()?;
        (response.status() == 200).then_some(())?;
        response.text().await.ok()
    })
}

fn push_body(name: &str, after: &str, n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0".repeat(40),
        "after": after,
        "repository": {"name": name, "full_name": format!("acme/{name}"), "owner": {"login": "acme"},
                       "clone_url": "file:///unused", "default_branch": "main"},
        "sender": {"login": format!("pusher-{n}")},
        "commits": [],
    }))
    .unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn accepted_work_survives_sigkill_and_completed_jobs_never_run_twice() {
    let root = tempfile::tempdir().unwrap();
    let mut heads = Vec::new();
    for name in REPOS {
        heads.push(repository(root.path(), name));
    }
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = root.path().join("gitauto.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "data"
workers = 2
[sources.github]
forge = "github"
secret = "{SECRET}"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = ["{repos}"] }}
[[rules]]
name = "update"
on = "push"
repo = "acme/*"
coalesce = false
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]
"#,
            repos = root.path().join("repos").display()
        ),
    )
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let post = |n: usize| {
        let client = client.clone();
        let (name, (_, head)) = (REPOS[n % REPOS.len()], &heads[n % REPOS.len()]);
        let body = push_body(name, head, n);
        let url = format!("{base}/hooks/github");
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", format!("durability-{n}"))
                .header("x-hub-signature-256", sign(&body))
                .body(body)
                .send()
                .await
                .ok()?;
            (response.status() == 202).then(|| format!("durability-{n}"))
        }
    };

    let mut accepted = Vec::new();
    let mut in_flight_lost = 0;
    for cycle in 0..CYCLES {
        let daemon = Daemon::start(&config, &base);
        let before = accepted.len();
        let daemon = runtime.block_on(async {
            let mut burst = tokio::task::JoinSet::new();
            for n in cycle * BURST..(cycle + 1) * BURST {
                burst.spawn(post(n));
            }
            let mut daemon = Some(daemon);
            let mut answered = 0;
            while let Some(posted) = burst.join_next().await {
                match posted.unwrap() {
                    Some(id) => accepted.push(id),
                    None => in_flight_lost += 1,
                }
                answered += 1;
                if answered == KILL_AFTER {
                    // Mid-burst: the other pushes are in flight, jobs run or wait.
                    daemon.take().unwrap().kill();
                }
            }
            daemon
        });
        drop(daemon);
        eprintln!("cycle {}: {} pushes accepted before the kill", cycle + 1, accepted.len() - before);
    }
    assert!(accepted.len() >= CYCLES * KILL_AFTER / 2, "too few pushes got in: {}", accepted.len());

    let daemon = Daemon::start(&config, &base);
    let started = Instant::now();
    loop {
        let queue: serde_json::Value = serde_json::from_str(&ureq_like_get(&format!("{base}/queue")).unwrap()).unwrap();
        if queue["queue_length"] == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the queue did not drain: {queue}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(daemon);

    let db = rusqlite::Connection::open(root.path().join("data/gitauto.sqlite")).unwrap();
    for id in &accepted {
        let states: Vec<String> = db
            .prepare(
                "SELECT j.state || ' ' || COALESCE(j.summary, '') FROM job_deliveries x JOIN deliveries d ON d.seq = x.delivery_seq
                 JOIN jobs j ON j.id = x.job_id WHERE d.id = ?1 AND d.verdict = 'queued'",
            )
            .unwrap()
            .query_map([id], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(states.len() == 1 && states[0].starts_with("succeeded "), "delivery {id}: {states:?}");
    }
    // A job runs again only if it had not completed: no job has two successful attempts.
    let twice: Vec<(i64, i64)> = db
        .prepare("SELECT job_id, count(DISTINCT attempt) FROM steps WHERE status = 'success' GROUP BY job_id HAVING count(DISTINCT attempt) > 1")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(twice, [], "jobs that completed and ran again");
    let rerun: i64 = db.query_row("SELECT count(*) FROM jobs WHERE attempts > 1", [], |row| row.get(0)).unwrap();
    println!(
        "{CYCLES} SIGKILL cycles: {} deliveries accepted, 0 lost, 0 completed jobs run twice; \
         {rerun} interrupted jobs ran again; {in_flight_lost} pushes in flight at a kill were not answered 202 (a forge sends those again)",
        accepted.len()
    );
    for (checkout, head) in &heads {
        assert_eq!(&git(checkout, &["rev-parse", "HEAD"]), head, "{}", checkout.display());
    }
}
