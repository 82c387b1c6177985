//! Each step's resource bill (issue 24): measured by the runtime, stored with the step,
//! and shown by the API, the job page and `/metrics` of a real daemon.

use axum::Router;
use axum::routing::get;
use gitauto::step::StepBill;
use gitauto_tests::{TestDaemon, TestGit, github_source, push_payload, step};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// A daemon whose rules each run one probe step, by repository name; the probe may
/// reach `http` (a loopback address) and read `repos`.
async fn daemon(http: &str, repos: &str) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
[server]
workers = 1

{source}
[plugins.probe]
wasm = "{probe}"
grants = {{ hosts = ["{http}"], dirs = ["{repos}"] }}

[plugins.tight]
wasm = "{probe}"
limits = {{ memory = "32MiB", timeout = "1s" }}

[[rules]]
name = "heavy"
on = "push"
repo = "acme/heavy"
steps = [
  {{ name = "skipped", plugin = "probe", if = "false", with = {{ op = "env" }} }},
  {{ name = "heavy", plugin = "probe", with = {{ op = "alloc", bytes = 10485760, sleep_ms = 100 }} }},
]

[[rules]]
name = "calls"
on = "push"
repo = "acme/calls"
steps = [
  {{ name = "calls", plugin = "probe", with = {{ op = "calls", lines = 5, url = "http://{http}/", requests = 3 }} }},
  {{ name = "git", plugin = "probe", with = {{ op = "git-open", path = "{repos}/origin/origin.git" }} }},
]

[[rules]]
name = "spin"
on = "push"
repo = "acme/spin"
steps = [{{ plugin = "probe", with = {{ op = "spin", ms = 300 }} }}]

[[rules]]
name = "memory"
on = "push"
repo = "acme/memory"
steps = [{{ name = "memory", plugin = "tight", with = {{ op = "alloc", bytes = 67108864, chunk = 1048576 }} }}]

[[rules]]
name = "time"
on = "push"
repo = "acme/time"
steps = [{{ name = "time", plugin = "tight", with = {{ op = "spin", ms = 5000 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    ))
    .await
}

/// Pushes `acme/NAME` and waits for its one job to finish.
async fn run(daemon: &TestDaemon, name: &str) -> Value {
    let payload = push_payload("acme", name, "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
    let (status, answer, _) = daemon.post_as("github", "push", &payload).await;
    assert_eq!(status, 202, "{answer}");
    daemon.finished_job(answer["jobs"][0].as_str().unwrap()).await
}

/// The bill of `job`'s step `name`, as the API shows it.
fn bill(job: &Value, name: &str) -> StepBill {
    let shown = &step(job, name)["bill"];
    serde_json::from_value(shown.clone()).unwrap_or_else(|err| panic!("step {name}'s bill {shown}: {err}"))
}

async fn text(daemon: &TestDaemon, path: &str) -> String {
    reqwest::get(format!("{}{path}", daemon.url)).await.unwrap().text().await.unwrap()
}

/// An HTTP server on loopback that answers every GET; its address.
async fn loopback() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, Router::new().route("/", get(|| async { "ok" }))).await.unwrap() });
    addr
}

/// The value of the one `/metrics` line that starts with `series `.
fn metric(metrics: &str, series: &str) -> f64 {
    let line = metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
    line[series.len()..].trim().parse().unwrap()
}

/// The issue's proof: a step that allocates 10 MiB and sleeps 100 ms shows both, in the
/// API, on the job page and in `/metrics`; a step whose `if` was false has no bill.
#[tokio::test]
async fn a_step_that_allocates_10_mib_and_sleeps_100_ms_shows_both() {
    let repos = tempfile::tempdir().unwrap();
    let daemon = daemon(&loopback().await, &repos.path().display().to_string()).await;
    let job = run(&daemon, "heavy").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(step(&job, "skipped")["bill"].is_null(), "a step not run has no bill: {job}");
    let heavy = bill(&job, "heavy");
    assert!(heavy.peak_memory >= 10 * MIB, "{heavy:?}");
    assert!(heavy.wall_us >= 100_000, "{heavy:?}");
    assert!(heavy.cpu_us < heavy.wall_us, "sleeping costs no CPU: {heavy:?}");
    assert!(heavy.cpu_us > 0, "{heavy:?}");
    assert!(heavy.epoch_ticks >= 10, "100 ms is ten 10 ms ticks: {heavy:?}");
    assert!(heavy.calls.is_empty(), "no gitauto capability was called: {heavy:?}");

    let page = text(&daemon, &format!("/jobs/{}", job["id"].as_str().unwrap())).await;
    let shown = heavy.summary();
    assert!(shown.contains(&format!("memory {:.1} MiB", heavy.peak_memory as f64 / MIB as f64)), "{shown}");
    assert!(page.contains(&format!("title=\"{shown}\"")), "the job page shows the bill {shown:?}:\n{page}");
    assert!(page.contains("<th>cost</th>"), "{page}");

    let metrics = text(&daemon, "/metrics").await;
    let wall = metric(&metrics, "gitauto_step_wall_seconds_total{plugin=\"probe\"}");
    assert_eq!(wall, heavy.wall_us as f64 / 1e6, "{metrics}");
    let cpu = metric(&metrics, "gitauto_step_cpu_seconds_total{plugin=\"probe\"}");
    assert_eq!(cpu, heavy.cpu_us as f64 / 1e6, "{metrics}");
    assert_eq!(metric(&metrics, "gitauto_step_epoch_ticks_total{plugin=\"probe\"}"), heavy.epoch_ticks as f64);
    assert_eq!(metric(&metrics, "gitauto_step_peak_memory_bytes_bucket{plugin=\"probe\",le=\"4194304\"}"), 0.0);
    assert_eq!(metric(&metrics, "gitauto_step_peak_memory_bytes_bucket{plugin=\"probe\",le=\"67108864\"}"), 1.0);
    assert_eq!(metric(&metrics, "gitauto_step_peak_memory_bytes_sum{plugin=\"probe\"}"), heavy.peak_memory as f64);
    daemon.stop().await;
}

/// Calls are counted exactly, per capability: log lines, HTTP requests, git calls.
#[tokio::test]
async fn host_calls_are_counted_per_capability() {
    let (http, repos) = (loopback().await, tempfile::tempdir().unwrap());
    let _origin = TestGit::new(repos.path(), "origin");
    let daemon = daemon(&http, &repos.path().display().to_string()).await;
    let job = run(&daemon, "calls").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let calls = bill(&job, "calls");
    assert_eq!(calls.calls["log"].count, 5, "five lines, and the SDK logs none of its own: {calls:?}");
    assert_eq!(calls.calls["http"].count, 3, "{calls:?}");
    assert!(calls.calls["http"].time_us > 0, "{calls:?}");
    assert_eq!(calls.calls.len(), 2, "{calls:?}");
    // `Repository::open`, `head`, and the handle's drop.
    let git = bill(&job, "git");
    assert_eq!(git.calls["git"].count, 3, "{git:?}");
    let metrics = text(&daemon, "/metrics").await;
    assert_eq!(metric(&metrics, "gitauto_host_calls_total{plugin=\"probe\",capability=\"log\"}"), 5.0, "{metrics}");
    assert_eq!(metric(&metrics, "gitauto_host_calls_total{plugin=\"probe\",capability=\"http\"}"), 3.0);
    assert_eq!(metric(&metrics, "gitauto_host_calls_total{plugin=\"probe\",capability=\"git\"}"), 3.0);
    let seconds = metric(&metrics, "gitauto_host_call_seconds_total{plugin=\"probe\",capability=\"http\"}");
    assert_eq!(seconds, calls.calls["http"].time_us as f64 / 1e6);
    daemon.stop().await;
}

/// A step that computes spends about its wall time on the CPU.
#[tokio::test]
async fn a_busy_step_costs_cpu_close_to_its_wall_time() {
    let repos = tempfile::tempdir().unwrap();
    let daemon = daemon(&loopback().await, &repos.path().display().to_string()).await;
    let job = run(&daemon, "spin").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let spin = bill(&job, "probe");
    assert!(spin.wall_us >= 300_000, "{spin:?}");
    assert!(spin.cpu_us >= spin.wall_us / 2, "{spin:?}");
    daemon.stop().await;
}

/// A step stopped by its memory limit or its deadline keeps its bill.
#[tokio::test]
async fn a_trapped_step_keeps_its_bill() {
    let repos = tempfile::tempdir().unwrap();
    let daemon = daemon(&loopback().await, &repos.path().display().to_string()).await;
    let job = run(&daemon, "memory").await;
    let summary = step(&job, "memory")["summary"].as_str().unwrap();
    assert!(summary.contains("memory limit of 32 MiB exceeded"), "{job}");
    let memory = bill(&job, "memory");
    assert!(memory.peak_memory <= 32 * MIB, "{memory:?}");
    assert!(memory.peak_memory >= 30 * MIB, "grown 1 MiB at a time up to the limit: {memory:?}");

    let job = run(&daemon, "time").await;
    let summary = step(&job, "time")["summary"].as_str().unwrap();
    assert!(summary.contains("deadline of 1 s exceeded"), "{job}");
    let time = bill(&job, "time");
    // The deadline counts from the step's start, a moment before the plugin's store is made.
    assert!(time.wall_us >= 900_000, "stopped at its deadline, not before: {time:?}");
    // Nominally 100 ticks of 10 ms; the ticker's sleeps run a little long.
    assert!(time.epoch_ticks >= 90, "{time:?}");
    assert!(time.cpu_us >= time.wall_us / 2, "{time:?}");
    daemon.stop().await;
}
