//! The integration suite's store-related modules run a second time with every daemon's
//! queue in a PostgreSQL database of its own (a throwaway server on loopback, see
//! `gitauto::testing`), so that ingest, deduplication, coalescing, per-key serialisation,
//! retries, the API, rules, flow control, schedules, the forges and fork gating's `waiting` jobs behave the same on both
//! stores. The modules are
//! the `it` suite's files; `gitauto_tests::on_postgres` tells `TestDaemon` which store to
//! give a daemon. Plugin sandboxing, languages and the browser do not touch the store and
//! run once, in `it`.

#[path = "it/bounds.rs"]
mod bounds;
#[path = "it/catch_up.rs"]
mod catch_up;
#[path = "it/fetch_update.rs"]
mod fetch_update;
#[path = "it/flow.rs"]
mod flow;
#[path = "it/forges.rs"]
mod forges;
#[path = "it/gate.rs"]
mod gate;
#[path = "it/gitreload.rs"]
mod gitreload;
#[path = "it/ingest.rs"]
mod ingest;
#[path = "it/names.rs"]
mod names;
#[path = "it/queue.rs"]
mod queue;
#[path = "it/report.rs"]
mod report;
#[path = "it/rules.rs"]
mod rules;
#[path = "it/schedule.rs"]
mod schedule;

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload};

/// Guards the run itself: its daemons really keep their deliveries in PostgreSQL.
#[tokio::test]
async fn this_runs_daemons_queue_in_postgresql() {
    let config = format!("[server]\ndata_dir = \"data\"\n{}", github_source());
    let daemon = TestDaemon::start(&config).await;
    if daemon.config.store.is_none() {
        assert!(std::env::var_os("CI").is_none(), "under CI the it_postgres run must use PostgreSQL");
        return;
    }
    let payload =
        push_payload("acme", "widgets", "refs/heads/main", &"1".repeat(40), &"2".repeat(40), "file:///unused");
    let (status, answer) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    assert!(!daemon.dir.path().join("data/gitauto.sqlite").exists(), "a SQLite queue was made");
    assert_eq!(daemon.get("/api/deliveries").await.1["deliveries"].as_array().map(Vec::len), Some(1));
}
