//! How a cluster scales: one, two and three daemons on one PostgreSQL queue (a throwaway
//! server on loopback, see `gitauto::testing`), each with 2 workers. `GITAUTO_BENCH_REQUESTS`
//! (default 3000) signed pushes, each to its own repository with one matching `any` rule
//! running the empty plugin, are sent over 16 connections spread over the daemons.
//! Printed: accepted deliveries per second, and jobs finished per second from the first
//! delivery to the last job's end. All daemons and the client share this machine's cores.
//!
//! `cargo bench -p gitauto-tests --bench cluster`.

use gitauto::bench::{env_number, report};
use gitauto_tests::{TestDaemon, github_source, push_payload};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 16;

fn config(url: &str, node: usize) -> String {
    format!(
        "[server]\nnode = \"n{node}\"\nworkers = 2\n\n[store]\nurl = \"{url}\"\n\n{}\n[plugins.empty]\nwasm = \"{}\"\n\n\
         [[rules]]\nname = \"any\"\non = \"push\"\ncoalesce = false\nsteps = [{{ plugin = \"empty\" }}]\n",
        github_source(),
        env!("GITAUTO_GUEST_EMPTY"),
    )
}

/// Jobs in state `succeeded` in the whole cluster, from a daemon's metrics.
async fn succeeded(daemon: &TestDaemon) -> usize {
    let metrics = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("gitauto_jobs{state=\"succeeded\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn cluster(daemons: usize, requests: usize) -> Option<(f64, f64)> {
    let url = gitauto::testing::database()?;
    let mut started = Vec::new();
    for node in 0..daemons {
        started.push(TestDaemon::start(&config(&url, node)).await);
    }
    let started = Arc::new(started);
    let zero = "0".repeat(40);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..requests)
            .map(|n| {
                push_payload("acme", &format!("r{n}"), "refs/heads/main", &zero, &format!("{n:040x}"), "file:///x")
            })
            .collect(),
    );
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let (started, bodies) = (started.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            for n in (connection..bodies.len()).step_by(CONNECTIONS) {
                let daemon = &started[n % started.len()];
                let (status, answer, _) = daemon.post_as("github", "push", &bodies[n]).await;
                assert_eq!(status, 202, "{answer}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let accepted = begin.elapsed();
    while succeeded(&started[0]).await < requests {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = begin.elapsed();
    Some((requests as f64 / accepted.as_secs_f64(), requests as f64 / finished.as_secs_f64()))
}

fn main() {
    let requests = env_number("GITAUTO_BENCH_REQUESTS", 3000);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("cluster: {requests} signed pushes over {CONNECTIONS} connections, 2 workers per daemon, empty plugin");
    for daemons in 1..=3 {
        let Some((accepted, jobs)) = tokio.block_on(cluster(daemons, requests)) else {
            println!("  (no PostgreSQL server could be started here; skipped)");
            return;
        };
        let what = |figure: &str| format!("cluster, {daemons} daemon(s) on PostgreSQL: {figure}");
        report(&what("accepted/s"), &format!("{accepted:.0}"), "");
        report(&what("jobs/s"), &format!("{jobs:.0}"), "");
    }
}
