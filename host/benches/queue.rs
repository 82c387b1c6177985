//! Queue benchmark, two parts:
//! 1. the queue alone: jobs accepted per second (one delivery and one job each, from 32
//!    concurrent callers) and jobs claimed and finished per second (8 concurrent workers);
//! 2. the real `gitauto` binary under a 10-second burst of signed 8 KB pushes for 50
//!    repositories, with 2 workers running the built-in `fetch-update` plugin: accepted
//!    deliveries per second, jobs run, and the daemon's resident memory (sampled every
//!    100 ms from /proc). Target: under 100 MB.
//!
//! `cargo bench -p gitauto --bench queue`. `GITAUTO_BENCH_JOBS` (default 20000) sets
//! part 1's size, `GITAUTO_BENCH_SECONDS` (default 10) part 2's length.

#![allow(clippy::disallowed_methods, reason = "benchmarks build their fixtures before the clock starts")]

mod common;

use common::{Connection, env_number, push_payload, sign};
use gitauto::queue::{DeliveryVerdict, JobState, NewDelivery, NewJob, Queue, StoredBody};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";
const REPOS: usize = 50;

fn delivery(n: usize) -> NewDelivery {
    NewDelivery {
        id: format!("queue-bench-{n}"),
        source: "github".into(),
        forge: "github".into(),
        event: Some("push".into()),
        headers: r#"{"content-type":"application/json"}"#.into(),
        body: StoredBody::raw(bytes::Bytes::from_static(b"{}")),
        verdict: DeliveryVerdict::Queued,
        reason: None,
        normalised: Some(r#"[{"repository":{"full_name":"acme/r"}}]"#.into()),
        explain: None,
        redelivery_of: None,
        arrived: "webhook",
        repo: Some(format!("acme/r{}", n % REPOS)),
        git_ref: Some("refs/heads/main".into()),
        trace: None,
    }
}

fn job(n: usize) -> NewJob {
    let key = format!("rule\nacme/r{n}\nrefs/heads/main");
    NewJob {
        rule: "rule".into(),
        key: key.clone(),
        repo: format!("acme/r{n}"),
        git_ref: Some("refs/heads/main".into()),
        event_index: 0,
        coalesce_key: Some(key),
        max_attempts: 1,
        quiet_ms: 0,
        run_on: gitauto::node::RunOn::Any,
        concurrency: None,
        priority: 0,
        report: None,
        waiting: false,
    }
}

async fn queue_alone(jobs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (queue, next) = (queue.clone(), next.clone());
        callers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= jobs {
                    return;
                }
                queue.accept(delivery(n), vec![job(n)]).await.unwrap();
            }
        });
    }
    while callers.join_next().await.is_some() {}
    let accepted = started.elapsed();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let queue = queue.clone();
        workers.spawn(async move {
            let mut done = 0;
            while let Some(claimed) = queue.claim().await.unwrap() {
                queue.finish(claimed.id, claimed.attempt, None, JobState::Succeeded, "ok", None).await.unwrap();
                done += 1;
            }
            done
        });
    }
    let mut claimed = 0;
    while let Some(done) = workers.join_next().await {
        claimed += done.unwrap();
    }
    let finished = started.elapsed();
    assert_eq!(claimed, jobs, "every accepted job was claimed once");
    println!("queue alone: {jobs} jobs");
    println!(
        "  accepted/s            {:>10.0}  (32 callers, each its own commit, batched)",
        jobs as f64 / accepted.as_secs_f64()
    );
    println!("  claimed+finished/s    {:>10.0}  (8 workers)", jobs as f64 / finished.as_secs_f64());
    common::report("queue alone: jobs accepted/s", &format!("{:.0}", jobs as f64 / accepted.as_secs_f64()), "");
    common::report("queue alone: jobs claimed+finished/s", &format!("{:.0}", jobs as f64 / finished.as_secs_f64()), "");
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

async fn daemon_burst(seconds: u64) {
    let root = tempfile::tempdir().unwrap();
    let origin = root.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "--quiet", "--initial-branch=main", "."]);
    std::fs::write(origin.join("README.md"), "bench\n").unwrap();
    git(&origin, &["add", "--all"]);
    git(&origin, &["commit", "--quiet", "-m", "one"]);
    let repos = root.path().join("repos/acme");
    std::fs::create_dir_all(&repos).unwrap();
    for n in 0..REPOS {
        git(&repos, &["clone", "--quiet", origin.to_str().unwrap(), &format!("r{n}")]);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}
[[rules]]
name = "update"
on = "push"
repo = "acme/*"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]
"#,
            repos = root.path().join("repos").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitauto"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("GITAUTO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ready = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(ready.elapsed() < Duration::from_secs(120), "the daemon did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle = rss_kib(pid).unwrap_or(0);
    let bodies: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
        (0..REPOS)
            .map(|n| {
                let body = push_payload(&format!("acme/r{n}"), 8 * 1024);
                let signature = sign(SECRET, &body);
                (body, signature)
            })
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..16 {
        let (bodies, sent) = (bodies.clone(), sent.clone());
        clients.spawn(async move {
            let mut connection = Connection::open(addr).await;
            let mut n = 0;
            while Instant::now() < deadline {
                let (body, signature) = &bodies[(id * 7 + n) % REPOS];
                let (status, _) = connection.push(&format!("burst-{id}-{n}"), body, signature).await;
                assert_eq!(status, 202, "{}", connection.answer());
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        });
    }
    let mut peak = idle;
    let started = Instant::now();
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while clients.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let end = rss_kib(pid).unwrap_or(0);
    peak = peak.max(end);
    // Let the workers drain, then count what ran.
    let client = gitauto::client::Client::new(&format!("http://{addr}"), None);
    let drain = Instant::now();
    loop {
        let queue = client.get("/queue").await.unwrap().body;
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        if queue["queue_length"] == 0 || drain.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = client.get("/metrics").await.unwrap().body;
    let succeeded: u64 = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("gitauto_jobs{state=\"succeeded\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let sent = sent.load(Ordering::Relaxed);
    println!("daemon burst: {seconds} s of signed 8 KB pushes for {REPOS} repositories, 16 connections, 2 workers");
    println!("  accepted/s            {:>10.0}  ({sent} deliveries)", sent as f64 / elapsed.as_secs_f64());
    println!("  jobs run              {succeeded:>10}  (coalescing: at most one queued job per repository)");
    println!(
        "  resident memory       {:>7.1} MiB idle, {:.1} MiB at the end, {:.1} MiB peak",
        idle as f64 / 1024.0,
        end as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    common::report(
        &format!("daemon binary: {seconds} s burst over {REPOS} repos, peak RSS"),
        &format!("{:.0} MiB", peak as f64 / 1024.0),
        "≤ 100 MB",
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(queue_alone(env_number("GITAUTO_BENCH_JOBS", 20_000)));
    runtime.block_on(daemon_burst(env_number("GITAUTO_BENCH_SECONDS", 10) as u64));
}
