//! What confining a granted program costs: starting `/bin/true` as a plain child (the
//! same cleared environment and pipes) against starting it as a plugin's granted program
//! does (a Landlock-confined thread, its own session, the seccomp filter, the group
//! killed at its end). Also one confined git call's overhead: a thread confined to the
//! grant, against the same work on the calling thread.
//!
//! `cargo bench -p gitauto --bench confine`. `GITAUTO_BENCH_STARTS` (default 300) starts each.

#![allow(clippy::disallowed_methods, reason = "benchmarks build their fixtures before the clock starts")]

mod common;

use common::env_number;
use gitauto::bench::{percentile, report};
use gitauto::capability::process::run_for_benchmark;
use gitauto::confine::{self, Rules};
use gitauto::grant::{Access, DirGrant, Grant};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let starts = env_number("GITAUTO_BENCH_STARTS", 300);
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let grant = Grant { dirs: vec![DirGrant::new(work.clone(), Access::Write)], ..Grant::default() };
    let support = confine::support();
    println!("kernel: {support}");

    let time = |confined: bool| -> Vec<Duration> {
        let mut times: Vec<Duration> = (0..starts)
            .map(|_| {
                let started = Instant::now();
                let code = run_for_benchmark(&grant, Path::new("/bin/true"), &[], &work, confined);
                assert_eq!(code, Some(0), "/bin/true failed (confined: {confined})");
                started.elapsed()
            })
            .collect();
        times.sort();
        times
    };
    // Warm up both paths (page cache, the loader), then measure them alternately.
    time(false);
    time(true);
    let plain = time(false);
    let confined = time(true);
    let (plain_p50, confined_p50) = (percentile(&plain, 0.5), percentile(&confined, 0.5));
    report("program start, plain child p50", &format!("{:.2} ms", ms(plain_p50)), "");
    report("program start, confined p50", &format!("{:.2} ms", ms(confined_p50)), "");
    report(
        "program start, confinement overhead p50",
        &format!("{:.2} ms", ms(confined_p50.saturating_sub(plain_p50))),
        "<= 2 ms",
    );
    report("program start, confined p99", &format!("{:.2} ms", ms(percentile(&confined, 0.99))), "");

    let mut calls: Vec<Duration> = (0..starts)
        .map(|_| {
            let started = Instant::now();
            confine::run(Rules::grant(&grant, Access::Git), None, || ()).unwrap();
            started.elapsed()
        })
        .collect();
    calls.sort();
    report("confined git call overhead p50", &format!("{:.0} µs", percentile(&calls, 0.5).as_secs_f64() * 1e6), "");
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
