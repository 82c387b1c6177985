//! The integration suite's store-related modules run a second time with every daemon's
//! queue in a PostgreSQL database of its own (a throwaway server on loopback, see
//! `gitauto::testing`), so that ingest, deduplication, coalescing, per-key serialisation,
//! retries, the API, the dashboard's delivery pages, rules, flow control, schedules, the forges, fork gating's `waiting` jobs and plugins' key-value stores behave the same on both
//! stores. The modules are
//! the `it` suite's files; `gitauto_tests::on_postgres` tells `TestDaemon` which store to
//! give a daemon. Plugin sandboxing, languages and the browser do not touch the store and
//! run once, in `it`.

#[path = "it/bounds.rs"]
mod bounds;
#[path = "it/catch_up.rs"]
mod catch_up;
#[path = "it/dashboard_pages.rs"]
mod dashboard_pages;
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
#[path = "it/kv.rs"]
mod kv;
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
#[path = "it/stats.rs"]
mod stats;

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};

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

/// Two daemons on one database: `a` only accepts (`workers = 0`), `b` runs jobs.
fn node_config(url: &str, node: &str, workers: usize, extra: &str) -> String {
    format!(
        "[server]\nnode = \"{node}\"\nworkers = {workers}\n\n[store]\nurl = \"{url}\"\n{extra}\n{}\n\
         [plugins.empty]\nwasm = \"{}\"\n\n[[rules]]\nname = \"any\"\non = \"push\"\nsteps = [{{ plugin = \"empty\" }}]\n",
        github_source(),
        env!("GITAUTO_GUEST_EMPTY"),
    )
}

/// A job queued at one node starts at an idle other node through PostgreSQL's
/// `NOTIFY`: run in a process of its own whose workers poll only once a minute
/// (`GITAUTO_IDLE_POLL_MS`, read once per process), so only the notification can start
/// the job within the test's wait.
#[test]
fn a_job_queued_at_one_node_starts_at_an_idle_other_through_its_notification() {
    let name = "notified_node_starts_the_job";
    // Output to a file, not a pipe: the inner process's PostgreSQL watcher (see
    // `gitauto::testing`) keeps its output open until the process is reaped, which
    // `output()` does only after the pipes close.
    let log = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env("GITAUTO_IDLE_POLL_MS", "60000")
        .stdout(log.as_file().try_clone().unwrap())
        .stderr(log.as_file().try_clone().unwrap())
        .status()
        .unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("1 passed"), "the inner test did not run: {text}");
}

/// The inner half of the test above (`--ignored`: it needs the minute-long idle poll).
#[tokio::test]
#[ignore = "run by a_job_queued_at_one_node_starts_at_an_idle_other_through_its_notification"]
async fn notified_node_starts_the_job() {
    assert_eq!(std::env::var("GITAUTO_IDLE_POLL_MS").as_deref(), Ok("60000"));
    let Some(url) = gitauto::testing::database() else { return };
    let a = TestDaemon::start(&node_config(&url, "a", 0, "")).await;
    let b = TestDaemon::start(&node_config(&url, "b", 1, "")).await;
    // b's worker looked once, found nothing and now waits out its minute.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let payload = push_payload("acme", "widgets", "refs/heads/main", &"1".repeat(40), &"2".repeat(40), "file:///x");
    let (status, answer) = a.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let job = answer["jobs"][0].as_str().unwrap().to_owned();
    let finished = wait_for("b to run the job", std::time::Duration::from_secs(10), || {
        let (b, job) = (&b, job.clone());
        async move {
            let (_, view) = b.get(&format!("/api/jobs/{job}")).await;
            (view["state"] == "succeeded").then_some(view)
        }
    })
    .await;
    assert_eq!(finished["ran_on"], "b", "{finished:#}");
    let metrics = reqwest::get(format!("{}/metrics", b.url)).await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("gitauto_queue_wakeups_total{from=\"notify\"} 0\n"), "{metrics}");
    a.stop().await;
    b.stop().await;
}

/// `[store] connections` opens that many accepting connections, and concurrent
/// deliveries over them are each recorded once with their job.
#[tokio::test]
async fn deliveries_are_accepted_over_the_configured_connections() {
    let Some(url) = gitauto::testing::database() else { return };
    let daemon = TestDaemon::start(&node_config(&url, "a", 0, "connections = 3")).await;
    let accepting = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut client = gitauto::queue::pg_connect::connect(&url).unwrap();
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = 'gitauto accept'",
                    &[],
                )
                .unwrap();
            row.get::<_, i64>(0)
        })
        .await
        .unwrap()
    };
    assert_eq!(accepting, 3);
    let daemon = std::sync::Arc::new(daemon);
    let mut posts = tokio::task::JoinSet::new();
    for n in 0..64 {
        let daemon = daemon.clone();
        posts.spawn(async move {
            let payload = push_payload(
                "acme",
                &format!("r{n}"),
                "refs/heads/main",
                &"1".repeat(40),
                &"2".repeat(40),
                "file:///x",
            );
            let (status, answer) = daemon.post_github("github", "push", &payload, SECRET).await;
            assert_eq!(status, 202, "{answer}");
            assert_eq!(answer["jobs"].as_array().map(Vec::len), Some(1), "{answer}");
            answer["jobs"][0].as_str().unwrap().to_owned()
        });
    }
    let mut jobs = std::collections::BTreeSet::new();
    while let Some(job) = posts.join_next().await {
        jobs.insert(job.unwrap());
    }
    assert_eq!(jobs.len(), 64, "each delivery queued a job of its own");
    let (_, deliveries) = daemon.get("/api/deliveries?limit=100").await;
    assert_eq!(deliveries["deliveries"].as_array().map(Vec::len), Some(64), "{deliveries:#}");
}

/// A `[store] connections` out of range is refused when the config loads.
#[test]
fn store_connections_out_of_range_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gitauto.toml");
    std::fs::write(&path, format!("[store]\nurl = \"postgres://u@127.0.0.1/q\"\nconnections = 0\n{}", github_source()))
        .unwrap();
    let err = gitauto::config::Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("`[store] connections` must be between 1 and 32 (got 0)"), "{err}");
}
