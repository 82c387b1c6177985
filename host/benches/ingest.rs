//! Ingest benchmark: the real router and SQLite queue on loopback, driven by keep-alive
//! HTTP/1.1 connections posting signed ~8 KB GitHub pushes, each with its own delivery id.
//! Every push matches one rule, so each accepted delivery commits a delivery row and a job
//! (`synchronous = FULL`) before it is answered. Workers are not started: this measures
//! ingest alone.
//!
//! `cargo bench -p gitauto --bench ingest`. Environment: `GITAUTO_BENCH_REQUESTS` (default
//! 40000), `GITAUTO_BENCH_CONNECTIONS` (default 32), `GITAUTO_BENCH_TRACES=1` (traces on,
//! exported to a collector on loopback that takes everything: the cost of `[telemetry]`). Prints throughput and latency
//! percentiles, then checks that every accepted delivery is in the database.

#![allow(clippy::disallowed_methods, reason = "benchmarks build their fixtures before the clock starts")]

mod common;

use common::{Connection, env_number, percentile, push_payload, sign};
use gitauto::config::Config;
use gitauto::queue::Queue;
use gitauto::server::{AppState, router};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";

/// Posts `count` deliveries over one keep-alive connection; returns each latency.
async fn connection(
    addr: std::net::SocketAddr,
    id: usize,
    count: usize,
    body: Arc<Vec<u8>>,
    signature: Arc<String>,
) -> Vec<Duration> {
    let mut connection = Connection::open(addr).await;
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let (status, took) = connection.push(&format!("bench-{id}-{n}"), &body, &signature).await;
        assert_eq!(status, 202, "{}", connection.answer());
        latencies.push(took);
    }
    latencies
}

/// Bytes this process has caused to be written to disk so far (`/proc/self/io`), 0 where
/// the kernel does not say.
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|line| line.strip_prefix("write_bytes:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
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
grants = {{ dirs = [{{ path = "/srv/repos", git = true }}] }}
[[rules]]
name = "update"
on = "push"
repo = "acme/*"
coalesce = false
steps = [{{ plugin = "fetch-update", with = {{ repodir = "/srv/repos" }} }}]
"#
    );
    let config = Config::parse(&dir.path().join("gitauto.toml"), &config_text).expect("bench config");
    let body = Arc::new(push_payload("acme/widgets", 8 * 1024));
    let signature = Arc::new(sign(SECRET, &body));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let database = config.server.data_dir.join("gitauto.sqlite");
    let (elapsed, mut latencies, before, after) = runtime.block_on(async {
        let queue = Queue::open(&config.server.data_dir).expect("queue");
        let metrics = Arc::new(gitauto::metrics::Metrics::default());
        // Ingest never runs plugins: an empty runtime is enough.
        let (runtime, _) = gitauto::runtime::Runtime::new(&[], &config.server.data_dir.join("cache")).expect("runtime");
        let snapshot = gitauto::live::Snapshot { config: Arc::new(config), runtime: Arc::new(runtime) };
        let salt = queue.fingerprint_salt().await.expect("fingerprint salt");
        let live = Arc::new(gitauto::live::Live::new(snapshot, salt));
        if std::env::var_os("GITAUTO_BENCH_TRACES").is_some() {
            let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let settings = gitauto::config::telemetry::Telemetry {
                endpoint: format!("http://{}/v1/traces", sink.local_addr().unwrap()),
                headers: Vec::new(),
                service_name: "bench".into(),
                timeout: Duration::from_secs(10),
            };
            let collector = axum::Router::new().fallback(|| async { "" });
            tokio::spawn(async move { axum::serve(sink, collector).await });
            let telemetry = gitauto::telemetry::Telemetry::start(&settings, "bench", metrics.spans.clone());
            live.set_telemetry(Some(telemetry.expect("trace exporter")));
        }
        let apis = gitauto::forge_api::ForgeApis::new().expect("forge API client");
        let app = router(AppState { live, queue, metrics: metrics.clone(), apis });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Warm up: connections, statement cache, WAL.
        connection(addr, usize::MAX, 500, body.clone(), signature.clone()).await;
        let before = (written_bytes(), gitauto::queue::CommitBatches::read());
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
        let elapsed = started.elapsed();
        let after = (written_bytes(), gitauto::queue::CommitBatches::read());
        if std::env::var_os("GITAUTO_BENCH_TRACES").is_some() {
            // Long enough for the exporter's last batch (it sends at least once a second).
            tokio::time::sleep(Duration::from_secs(2)).await;
            let count = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            println!(
                "  spans        {} exported, {} dropped",
                count(&metrics.spans.exported),
                count(&metrics.spans.dropped)
            );
        }
        (elapsed, all, before, after)
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
    let ((written_before, (_, requests_before, commits_before)), (written_after, (_, requests_after, commits_after))) =
        (before, after);
    let commits = commits_after - commits_before;
    println!(
        "  written      {:>10.0} bytes per delivery (the log, then the checkpoint into the file)",
        (written_after - written_before) as f64 / requests as f64
    );
    println!(
        "  batches      {:>10.1} requests per commit ({commits} commits)",
        (requests_after - requests_before) as f64 / commits.max(1) as f64
    );
    let (kept, encoded): (i64, i64) = conn
        .query_row(
            "SELECT sum(length(body)), count(*) FILTER (WHERE body_encoding IS NOT NULL) FROM deliveries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!(
        "  bodies       {:>10.2} stored bytes per received byte ({encoded} of {stored} compressed)",
        kept as f64 / (stored as f64 * body.len() as f64)
    );
    let ms = |d: std::time::Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let title = format!("ingest: signed {} KB pushes, {connections} connections", body.len() / 1024);
    common::report(
        &format!("{title}, accepted/s"),
        &format!("{:.0}", latencies.len() as f64 / elapsed.as_secs_f64()),
        "≥ 10,000",
    );
    common::report(&format!("{title}, p50"), &ms(percentile(&latencies, 0.5)), "");
    common::report(&format!("{title}, p99"), &ms(percentile(&latencies, 0.99)), "≤ 10 ms");
    assert_eq!(stored as usize, requests + 500, "every accepted delivery is in the database");
    assert_eq!(jobs as usize, requests + 500, "one job per delivery");
}
