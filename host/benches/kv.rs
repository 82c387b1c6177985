//! Key-value store benchmark (the `kv` interface's storage, `queue/kv.rs`), on SQLite and,
//! when a PostgreSQL server can run here, on PostgreSQL: `set`s of distinct keys from 32
//! concurrent callers, `get`s of them, uncontended compare-and-swaps (each caller its own
//! key) and a contended counter (8 callers incrementing one key with a compare-and-swap
//! loop: successful increments per second, and the swaps that lost).
//!
//! `cargo bench -p gitauto --bench kv`. `GITAUTO_BENCH_KV` (default 20000) sets the
//! operations per measure.

#![allow(clippy::disallowed_methods, reason = "benchmarks build their fixtures before the clock starts")]

mod common;

use common::env_number;
use gitauto::grant::KvLimits;
use gitauto::queue::Queue;
use gitauto::queue::kv::KvWrite;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const CALLERS: usize = 32;
const LIMITS: KvLimits = KvLimits { max_entries: 10_000_000, max_bytes: 1 << 30, max_value: 1 << 20 };

fn write(key: String, value: &[u8]) -> KvWrite {
    KvWrite { key, value: value.to_vec(), ttl: None }
}

/// Runs `op(n)` for n in 0..ops from `callers` concurrent tasks; operations per second.
async fn measure<F, Fut>(callers: usize, ops: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (op, next) = (op.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= ops {
                    return;
                }
                op(n).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    ops as f64 / started.elapsed().as_secs_f64()
}

async fn store(name: &str, queue: Queue, ops: usize) {
    let q = queue.clone();
    let set = measure(CALLERS, ops, move |n| {
        let q = q.clone();
        async move {
            q.kv_set("bench", LIMITS, write(format!("key/{n:08}"), b"a value of some thirty bytes..")).await.unwrap();
        }
    })
    .await;
    let q = queue.clone();
    let get = measure(CALLERS, ops, move |n| {
        let q = q.clone();
        async move {
            assert!(q.kv_get("bench", &format!("key/{n:08}")).await.unwrap().is_some());
        }
    })
    .await;
    let q = queue.clone();
    let cas = measure(CALLERS, ops, move |n| {
        let q = q.clone();
        async move {
            let key = format!("key/{n:08}");
            let version = q.kv_get("bench", &key).await.unwrap().map(|entry| entry.version);
            assert!(q.kv_compare_and_swap("bench", LIMITS, version, write(key, b"swapped")).await.unwrap().is_some());
        }
    })
    .await;
    let lost = Arc::new(AtomicUsize::new(0));
    let (q, lost_in) = (queue.clone(), lost.clone());
    let increments = ops / 10;
    let contended = measure(8, increments, move |_| {
        let (q, lost) = (q.clone(), lost_in.clone());
        async move {
            loop {
                let current = q.kv_get("bench", "counter").await.unwrap();
                let (value, version) = match current {
                    Some(entry) => {
                        (String::from_utf8(entry.value).unwrap().parse::<u64>().unwrap(), Some(entry.version))
                    }
                    None => (0, None),
                };
                let next = write("counter".into(), (value + 1).to_string().as_bytes());
                if q.kv_compare_and_swap("bench", LIMITS, version, next).await.unwrap().is_some() {
                    return;
                }
                lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    let counted = queue.kv_get("bench", "counter").await.unwrap().unwrap().value;
    assert_eq!(String::from_utf8(counted).unwrap(), increments.to_string(), "no increment was lost");
    let lost = lost.load(Ordering::Relaxed);
    println!("kv on {name}: {ops} operations per measure");
    println!("  set/s                 {set:>10.0}  ({CALLERS} callers, distinct keys)");
    println!("  get/s                 {get:>10.0}  ({CALLERS} callers)");
    println!("  get+cas/s             {cas:>10.0}  ({CALLERS} callers, each its own key)");
    println!("  contended incr/s      {contended:>10.0}  (8 callers, one key; {lost} swaps lost the race)");
    common::report(&format!("kv ({name}): set/s"), &format!("{set:.0}"), "");
    common::report(&format!("kv ({name}): get/s"), &format!("{get:.0}"), "");
    common::report(&format!("kv ({name}): get+compare-and-swap/s"), &format!("{cas:.0}"), "");
    common::report(&format!("kv ({name}): contended increments/s"), &format!("{contended:.0}"), "");
    queue.close().await;
}

fn main() {
    let ops = env_number("GITAUTO_BENCH_KV", 20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(store("SQLite", Queue::open(dir.path()).unwrap(), ops));
    if let Some(url) = gitauto::testing::database() {
        runtime.block_on(store("PostgreSQL", Queue::open_postgres(&url, "bench").unwrap(), ops));
    }
}
