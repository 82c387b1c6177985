//! Schedule rules on a real daemon: a six-field rule ticks on time with its time and
//! targets in the event, fetch-update on a schedule keeps a list of checkouts current
//! without any webhook, two daemons on one PostgreSQL queue run each tick once, and a
//! daemon stopped across ticks runs what each rule's `missed` says when it starts again
//! (a real stop and start over the same data directory). Times come from the record, not
//! from timing the test: each job's delivery id names the tick it was made for.

use gitauto_tests::{TestDaemon, TestGit, git, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn now_ms() -> i64 {
    gitauto::queue::now_ms()
}

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn config(scratch: &Path, store: &str, rules: &str) -> String {
    format!(
        r#"
{store}
[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = [{{ path = "{scratch}", write = true }}] }}

{rules}
"#,
        probe = env!("GITAUTO_GUEST_PROBE"),
        scratch = scratch.display(),
    )
}

/// A schedule rule whose step does nothing but succeed.
fn rule(name: &str, cron: &str, missed: &str) -> String {
    format!(
        "[[rules]]\nname = \"{name}\"\non = \"schedule\"\ncron = \"{cron}\"\nmissed = \"{missed}\"\n\
         steps = [{{ plugin = \"probe\", with = {{ op = \"sleep\", ms = 0 }} }}]\n"
    )
}

/// A finished job of a schedule rule, with the tick it was made for.
#[derive(Debug, Clone)]
struct TickJob {
    tick_ms: i64,
    created_ms: i64,
    job: Value,
}

/// Every job of `rule` so far, once `enough` says there are enough and all have finished.
async fn tick_jobs(daemon: &TestDaemon, rule: &str, enough: impl Fn(&[TickJob]) -> bool) -> Vec<TickJob> {
    wait_for(&format!("jobs of `{rule}`"), Duration::from_secs(60), || async {
        let (_, answer) = daemon.get(&format!("/api/jobs?rule={rule}&limit=500")).await;
        let summaries = answer["jobs"].as_array().cloned().unwrap_or_default();
        if summaries.iter().any(|job| matches!(job["state"].as_str(), Some("queued" | "running"))) {
            return None;
        }
        let mut jobs = Vec::new();
        for summary in summaries {
            let (_, job) = daemon.get(&format!("/api/jobs/{}", summary["id"].as_str().unwrap())).await;
            let delivery = job["delivery"].as_str().unwrap().to_owned();
            let tick = delivery.strip_prefix(&format!("schedule:{rule}:")).unwrap_or_else(|| panic!("{delivery}"));
            jobs.push(TickJob {
                tick_ms: tick.parse().unwrap(),
                created_ms: ms(job["created_at"].as_str().unwrap()),
                job,
            });
        }
        jobs.sort_by_key(|job| (job.tick_ms, job.job["id"].as_str().unwrap().parse::<i64>().unwrap()));
        enough(&jobs).then_some(jobs)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_six_field_rule_fires_within_a_second_of_each_tick_with_its_time_and_targets() {
    let scratch = tempfile::tempdir().unwrap();
    let rules = format!(
        r#"
[[rules]]
name = "nightly-ish"
on = "schedule"
cron = "*/2 * * * * *"
repo = ["acme/one", "acme/two"]
branch = "main"

[[rules.steps]]
plugin = "probe"
with = {{ op = "write-file", path = "{scratch}/{{{{ event.repository.name }}}}-{{{{ payload.at_ms }}}}.txt", content = "{{{{ event.payload.time }}}} {{{{ event.repository.full_name }}}} {{{{ event.branch }}}}" }}
"#,
        scratch = scratch.path().display()
    );
    let daemon = TestDaemon::start(&config(scratch.path(), "", &rules)).await;
    let jobs = tick_jobs(&daemon, "nightly-ish", |jobs| jobs.len() >= 6).await;
    daemon.stop().await;

    let mut per_tick: BTreeMap<i64, Vec<&TickJob>> = BTreeMap::new();
    for job in &jobs {
        per_tick.entry(job.tick_ms).or_default().push(job);
    }
    for (tick, jobs) in &per_tick {
        assert_eq!(tick % 2_000, 0, "a tick on an even second: {tick}");
        // One job per target, each made less than a second after its tick.
        let repos: Vec<&str> = jobs.iter().map(|job| job.job["repo"].as_str().unwrap()).collect();
        assert_eq!(repos, ["acme/one", "acme/two"], "tick {tick}");
        for job in jobs {
            let late = job.created_ms - tick;
            assert!((0..1_000).contains(&late), "tick {tick}: job created {late} ms after it: {}", job.job);
            assert_eq!(job.job["state"], "succeeded", "{}", job.job);
            assert_eq!(job.job["git_ref"], "refs/heads/main", "{}", job.job);
        }
        // The step saw the tick's time, repository and branch.
        let time = gitauto::queue::rfc3339(*tick);
        for (name, full_name) in [("one", "acme/one"), ("two", "acme/two")] {
            let written = std::fs::read_to_string(scratch.path().join(format!("{name}-{tick}.txt"))).unwrap();
            assert_eq!(written, format!("{time} {full_name} main"));
        }
    }
    let ticks: Vec<i64> = per_tick.keys().copied().collect();
    assert!(ticks.len() >= 3, "{ticks:?}");
    assert!(ticks.windows(2).all(|pair| pair[1] - pair[0] == 2_000), "every tick ran: {ticks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_one_postgresql_queue_run_each_tick_once() {
    let Some(url) = gitauto::testing::database() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let mut daemons = Vec::new();
    for node in ["node-a", "node-b"] {
        let store = format!("[server]\nnode = \"{node}\"\n\n[store]\nurl = \"{url}\"\n");
        let rules = rule("each-second", "* * * * * *", "once");
        daemons.push(TestDaemon::start(&config(scratch.path(), &store, &rules)).await);
    }
    let both = now_ms();
    // Ten ticks with both daemons up.
    let jobs =
        tick_jobs(&daemons[0], "each-second", |jobs| jobs.iter().filter(|job| job.tick_ms > both).count() >= 10).await;
    let (_, deliveries) = daemons[1].get("/api/deliveries?source=schedule&limit=500").await;
    for daemon in daemons {
        daemon.stop().await;
    }

    let mut per_tick: BTreeMap<i64, usize> = BTreeMap::new();
    for job in &jobs {
        *per_tick.entry(job.tick_ms).or_default() += 1;
    }
    let twice: Vec<(&i64, &usize)> = per_tick.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    let ticks: Vec<i64> = per_tick.keys().copied().filter(|tick| *tick > both).collect();
    assert!(ticks.windows(2).all(|pair| pair[1] - pair[0] == 1_000), "a tick was lost: {ticks:?}");
    // Neither daemon even tried to ingest a tick the other had: no duplicate deliveries.
    let deliveries = deliveries["deliveries"].as_array().unwrap();
    assert!(deliveries.len() >= 10, "{deliveries:?}");
    for delivery in deliveries {
        assert_eq!((delivery["verdict"].as_str(), delivery["arrived"].as_str()), (Some("queued"), Some("schedule")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_down_across_ticks_runs_what_missed_says_when_it_comes_back() {
    let scratch = tempfile::tempdir().unwrap();
    let policies = ["skip", "once", "all"];
    let rules: String = policies.iter().map(|policy| rule(policy, "*/2 * * * * *", policy)).collect();
    let daemon = TestDaemon::start(&config(scratch.path(), "", &rules)).await;
    for policy in policies {
        tick_jobs(&daemon, policy, |jobs| !jobs.is_empty()).await;
    }
    let dir = daemon.stop_keeping_dir().await;
    let stopped = now_ms();
    // Down across at least three ticks; back just after a tick, so that the daemon is
    // up before the next one and each tick is plainly before or after its start.
    wait_for("three ticks to pass", Duration::from_secs(20), || async {
        let now = now_ms();
        (now > stopped + 6_000 && (50..300).contains(&(now % 2_000))).then_some(())
    })
    .await;
    let restarting = now_ms();
    let daemon = TestDaemon::start_in(dir).await;
    daemon.get("/api/nodes").await;
    // The scheduler began watching somewhere in (restarting, serving].
    let serving = now_ms() + 200;
    // A tick inside that span (a slow start) was missed or on time: either is right.
    let in_start = (restarting / 2_000 + 1..=serving / 2_000).map(|n| n * 2_000).next();

    for policy in policies {
        // Wait for a tick after the start: the catch-up, done first, is over by then.
        let jobs = tick_jobs(&daemon, policy, |jobs| jobs.iter().any(|job| job.tick_ms > serving)).await;
        let last_before = jobs.iter().map(|job| job.tick_ms).filter(|tick| *tick < stopped).max().unwrap();
        let missed: Vec<i64> = (last_before / 2_000 + 1..=restarting / 2_000).map(|n| n * 2_000).collect();
        assert!(missed.len() >= 3, "{policy}: {missed:?}");
        let ran: Vec<i64> =
            jobs.iter().map(|job| job.tick_ms).filter(|tick| *tick > last_before && *tick <= serving).collect();
        let by_policy = |missed: &[i64]| match policy {
            "skip" => Vec::new(),
            "once" => vec![*missed.last().unwrap()],
            _ => missed.to_vec(),
        };
        let mut allowed = vec![by_policy(&missed)];
        if let Some(tick) = in_start {
            let also_missed: Vec<i64> = missed.iter().copied().chain([tick]).collect();
            let on_time: Vec<i64> = by_policy(&missed).into_iter().chain([tick]).collect();
            allowed = vec![by_policy(&also_missed), on_time];
        }
        assert!(
            allowed.contains(&ran),
            "missed = \"{policy}\": ran {ran:?}, missed {missed:?}, expected one of {allowed:?}"
        );
        // Each caught-up job was made at the start, and each tick after it on time.
        for job in jobs.iter().filter(|job| job.tick_ms > last_before) {
            assert!(job.created_ms >= restarting, "{policy}: {job:?}");
            if job.tick_ms > serving {
                assert!(job.created_ms - job.tick_ms < 1_000, "{policy}: {job:?}");
            }
        }
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_fetch_update_brings_every_listed_checkout_up_to_date() {
    let root = tempfile::tempdir().unwrap();
    let repos = root.path().join("repos");
    let mut origins = Vec::new();
    for name in ["one", "two"] {
        let repo = TestGit::new(root.path(), name);
        repo.clone_to(&repos.join("acme").join(name));
        // Pushed with no webhook: only the schedule brings the checkout forward.
        let head = repo.commit("NEWS.md", &format!("{name} moved\n"), "a commit nobody announced");
        repo.push("main");
        origins.push((name, head));
    }
    let config = format!(
        r#"
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}

[[rules]]
name = "nightly"
on = "schedule"
cron = "* * * * * *"
repo = ["acme/one", "acme/two"]
branch = "main"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]
"#,
        repos = repos.display()
    );
    let daemon = TestDaemon::start(&config).await;
    let jobs = tick_jobs(&daemon, "nightly", |jobs| jobs.len() >= 2).await;
    daemon.stop().await;
    for (name, head) in origins {
        let checkout = repos.join("acme").join(name);
        assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), head, "{name}");
        assert_eq!(std::fs::read_to_string(checkout.join("NEWS.md")).unwrap(), format!("{name} moved\n"));
    }
    let first_tick = jobs[0].tick_ms;
    let first: Vec<&str> =
        jobs.iter().filter(|job| job.tick_ms == first_tick).map(|job| job.job["repo"].as_str().unwrap()).collect();
    assert_eq!(first, ["acme/one", "acme/two"], "one job per listed checkout");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reloaded_config_moves_a_schedule_without_a_restart() {
    let scratch = tempfile::tempdir().unwrap();
    let yearly = config(scratch.path(), "", &rule("moved", "0 0 1 1 *", "once"));
    let daemon = TestDaemon::start(&yearly).await;
    let reloaded = now_ms();
    let every_second = config(scratch.path(), "", &rule("moved", "* * * * * *", "once"));
    std::fs::write(daemon.dir.path().join("gitauto.toml"), every_second).unwrap();
    // Well within the scheduler's longest sleep: the reload itself wakes it.
    let jobs = wait_for("the reloaded schedule to tick", Duration::from_secs(10), || async {
        let jobs = tick_jobs(&daemon, "moved", |_| true).await;
        (jobs.len() >= 2).then_some(jobs)
    })
    .await;
    for job in &jobs {
        assert!(job.tick_ms > reloaded && job.created_ms - job.tick_ms < 1_000, "{job:?}");
    }
    daemon.stop().await;
}
