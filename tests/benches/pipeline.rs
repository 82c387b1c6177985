//! The pipeline's costs with real components and a real daemon on loopback:
//! 1. a Rust plugin (precompiled, pooling allocator, `InstancePre`, fresh store each
//!    time): instantiation alone, and a whole empty step (instantiate, pass a real push
//!    event, call, drop), p50 and p99 over `GITAUTO_BENCH_STEPS` (default 20000);
//! 2. push to updated checkout: a commit pushed to a local bare repository, the signed
//!    push posted, the time until the deployment checkout's HEAD is the new commit
//!    (`fetch-update`), median of 20;
//! 3. burst coalescing: `GITAUTO_BENCH_SECONDS` (default 10) of pushes to one repository
//!    with a rule `quiet_period = "2s"`: how many jobs ran, and this process's peak
//!    resident memory (daemon and client together: an upper bound for the daemon).
//!
//! `cargo bench -p gitauto-tests --bench pipeline`; `bench/run` runs it with the rest.

use gitauto::bench::{env_number, percentile, report};
use gitauto::capability::log::Sink;
use gitauto::config::{Limits, PluginSpec, WasmSource};
use gitauto::grant::Grant;
use gitauto::runtime::{Runtime, StepOutcome, StepStatus};
use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let _guard = tokio.enter();
    steps(env_number("GITAUTO_BENCH_STEPS", 20_000));
    tokio.block_on(push_to_checkout());
    tokio.block_on(burst(Duration::from_secs(env_number("GITAUTO_BENCH_SECONDS", 10) as u64)));
}

fn steps(count: usize) {
    let cache = tempfile::tempdir().unwrap();
    let spec = PluginSpec {
        name: "empty".into(),
        wasm: WasmSource::File(env!("GITAUTO_GUEST_EMPTY").into()),
        verify: None,
        grant: Grant::default(),
        limits: Limits { memory: 64 << 20, timeout: Duration::from_secs(60) },
        settings: Default::default(),
    };
    let (runtime, _) = Runtime::new(std::slice::from_ref(&spec), cache.path()).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads/github/push.json");
    let event =
        gitauto::authoring::event_from_payload("github", Some("push"), &std::fs::read(fixture).unwrap()).unwrap();
    let sink: Sink = Arc::new(|_, _| {});

    let mut instantiate = Vec::with_capacity(count);
    let mut step = Vec::with_capacity(count);
    for _ in 0..count / 10 {
        runtime.instantiate("empty").unwrap();
    }
    for _ in 0..count {
        let started = Instant::now();
        runtime.instantiate("empty").unwrap();
        instantiate.push(started.elapsed());
    }
    for _ in 0..count {
        let started = Instant::now();
        let outcome = runtime.run("empty", &event, "{}", sink.clone());
        step.push(started.elapsed());
        assert!(matches!(outcome, StepOutcome::Done { status: StepStatus::Success, .. }), "{outcome:?}");
    }
    instantiate.sort();
    step.sort();
    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    report("instantiate (Rust, p50)", &us(percentile(&instantiate, 0.5)), "≤ 10 µs");
    report("instantiate (Rust, p99)", &us(percentile(&instantiate, 0.99)), "");
    report("empty step with a push event (p50)", &us(percentile(&step, 0.5)), "≤ 40 µs");
    report("empty step with a push event (p99)", &us(percentile(&step, 0.99)), "");
}

async fn push_to_checkout() {
    let (_root, repo, checkout, daemon) = updating_daemon("").await;
    let head_file = checkout.join(".git/refs/heads/main");
    let mut times = Vec::new();
    for n in 0..21 {
        let before = repo.head();
        let after = repo.commit("n.txt", &n.to_string(), "bench");
        repo.push("main");
        let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, "file:///unused");
        let started = Instant::now();
        let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
        assert_eq!(status, 202, "{body}");
        loop {
            if std::fs::read_to_string(&head_file).is_ok_and(|head| head.trim() == after) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the checkout never reached {after}");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        if n > 0 {
            times.push(started.elapsed());
        }
    }
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), repo.head());
    times.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    report("push to updated checkout (p50 of 20)", &ms(percentile(&times, 0.5)), "≤ 25 ms");
    report("push to updated checkout (max of 20)", &ms(*times.last().unwrap()), "");
    daemon.stop().await;
}

async fn burst(length: Duration) {
    let (_root, repo, checkout, daemon) = updating_daemon("quiet_period = \"2s\"\n").await;
    let before = repo.head();
    let after = repo.commit("burst.txt", "burst", "burst");
    repo.push("main");
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, "file:///unused");
    let started = Instant::now();
    let mut pushes = 0;
    let mut peak_kib = 0;
    while started.elapsed() < length {
        let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
        assert_eq!(status, 202, "{body}");
        pushes += 1;
        if pushes % 100 == 0 {
            peak_kib = peak_kib.max(resident_kib());
        }
    }
    let runs = gitauto_tests::wait_for("the burst's job", Duration::from_secs(60), || async {
        let (_, jobs) = daemon.get("/api/jobs?limit=1000").await;
        let jobs = jobs["jobs"].as_array().cloned().unwrap_or_default();
        let done =
            !jobs.is_empty() && jobs.iter().all(|job| !matches!(job["state"].as_str(), Some("queued" | "running")));
        done.then_some(jobs.len())
    })
    .await;
    peak_kib = peak_kib.max(resident_kib());
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after);
    let rate = pushes as f64 / length.as_secs_f64();
    report(
        &format!("burst: {pushes} pushes to one repo in {} s ({rate:.0}/s)", length.as_secs()),
        &format!("{runs} run(s)"),
        "≤ 2 runs",
    );
    report("burst: peak resident memory (daemon + client)", &format!("{:.0} MB", peak_kib as f64 / 1024.0), "≤ 100 MB");
    daemon.stop().await;
}

/// A repository with a deployment checkout, and a daemon whose rule (with `extra` keys)
/// brings the checkout up to date on every push.
async fn updating_daemon(extra: &str) -> (tempfile::TempDir, TestGit, std::path::PathBuf, TestDaemon) {
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let repos = root.path().join("repos");
    let checkout = repos.join("acme/widgets");
    repo.clone_to(&checkout);
    let daemon = TestDaemon::start(&format!(
        "{source}\n[plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{repos}\", git = true }}] }}\n\n[[rules]]\nname = \"update\"\non = \"push\"\nrepo = \"acme/widgets\"\n{extra}steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"{repos}\" }} }}]\n",
        source = github_source(),
        repos = repos.display(),
    ))
    .await;
    (root, repo, checkout, daemon)
}

/// This process's peak resident set (VmHWM), KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
