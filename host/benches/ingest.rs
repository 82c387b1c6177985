//! Ingest benchmark: the real router and SQLite queue on loopback, driven by keep-alive
//! HTTP/1.1 connections posting signed ~8 KB GitHub pushes, each with its own delivery id.
//! Every push matches one rule, so each accepted delivery commits a delivery row and a job
//! (`synchronous = FULL`) before it is answered. Workers are not started: this measures
//! ingest alone.
//!
//! `cargo bench -p gitauto --bench ingest`. Environment: `GITAUTO_BENCH_REQUESTS` (default
//! 40000), `GITAUTO_BENCH_CONNECTIONS` (default 32). Prints throughput and latency
//! percentiles, then checks that every accepted delivery is in the database.

use gitauto::config::Config;
use gitauto::queue::Queue;
use gitauto::server::{AppState, router};
use hmac::{KeyInit, Mac};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const SECRET: &str = "bench-secret";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A GitHub push payload grown to about 8 KB with more commits.
fn payload() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/payloads/github/push.json");
    let mut push: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("fixture")).unwrap();
    let commit = push["commits"][0].clone();
    while serde_json::to_vec(&push).unwrap().len() < 8 * 1024 {
        push["commits"].as_array_mut().unwrap().push(commit.clone());
    }
    serde_json::to_vec(&push).unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `count` deliveries over one keep-alive connection; returns each latency.
async fn connection(
    addr: std::net::SocketAddr,
    id: usize,
    count: usize,
    body: Arc<Vec<u8>>,
    signature: Arc<String>,
) -> Vec<Duration> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut latencies = Vec::with_capacity(count);
    let mut line = String::new();
    let mut answer = Vec::new();
    for n in 0..count {
        let head = format!(
            "POST /hooks/github HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
             x-github-event: push\r\nx-github-delivery: bench-{id}-{n}\r\nx-hub-signature-256: {signature}\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        let started = Instant::now();
        write.write_all(head.as_bytes()).await.unwrap();
        write.write_all(&body).await.unwrap();
        let mut status = 0;
        let mut length = 0usize;
        loop {
            line.clear();
            read.read_line(&mut line).await.unwrap();
            if status == 0 {
                status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            } else if line == "\r\n" {
                break;
            } else if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        answer.resize(length, 0);
        read.read_exact(&mut answer).await.unwrap();
        latencies.push(started.elapsed());
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let requests = env_number("GITAUTO_BENCH_REQUESTS", 40_000);
    let connections = env_number("GITAUTO_BENCH_CONNECTIONS", 32);
    let dir = tempfile::tempdir().unwrap();
    let config_text = format!(
        r#"
[server]
data_dir = "data"
[sources.github]
forge = "github"
secret = "{SECRET}"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
[[rules]]
name = "update"
on = "push"
repo = "acme/*"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "/srv/repos" }} }}]
"#
    );
    let config = Config::parse(&dir.path().join("gitauto.toml"), &config_text).expect("bench config");
    let body = Arc::new(payload());
    let signature = Arc::new(sign(&body));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let database = config.server.data_dir.join("gitauto.sqlite");
    let (elapsed, mut latencies) = runtime.block_on(async {
        let queue = Queue::open(&config.server.data_dir).expect("queue");
        let metrics = Arc::new(gitauto::metrics::Metrics::default());
        let app = router(AppState { config: Arc::new(config), queue, metrics });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Warm up: connections, statement cache, WAL.
        connection(addr, usize::MAX, 500, body.clone(), signature.clone()).await;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..connections {
            let share = requests / connections + usize::from(id < requests % connections);
            tasks.spawn(connection(addr, id, share, body.clone(), signature.clone()));
        }
        let mut all = Vec::with_capacity(requests);
        while let Some(latencies) = tasks.join_next().await {
            all.extend(latencies.unwrap());
        }
        (started.elapsed(), all)
    });
    latencies.sort();
    let conn = rusqlite::Connection::open(&database).unwrap();
    let stored: i64 =
        conn.query_row("SELECT count(*) FROM deliveries WHERE verdict = 'queued'", [], |r| r.get(0)).unwrap();
    let jobs: i64 = conn.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0)).unwrap();
    println!(
        "ingest: {requests} signed GitHub pushes of {} bytes over {connections} keep-alive connections",
        body.len()
    );
    println!("  accepted/s   {:>10.0}", latencies.len() as f64 / elapsed.as_secs_f64());
    println!("  wall time    {:>10.2} s", elapsed.as_secs_f64());
    for (name, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999)] {
        println!("  latency {name:<5}{:>9.2} ms", percentile(&latencies, p).as_secs_f64() * 1e3);
    }
    println!("  latency max  {:>9.2} ms", latencies.last().unwrap().as_secs_f64() * 1e3);
    println!("  stored: {stored} deliveries, {jobs} jobs (500 of each from the warm-up)");
    assert_eq!(stored as usize, requests + 500, "every accepted delivery is in the database");
    assert_eq!(jobs as usize, requests + 500, "one job per delivery");
}
