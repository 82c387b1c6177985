//! The dashboard's aggregates on both stores: known rows give known counts, and rows
//! just outside a window are not counted.

use super::*;
use crate::queue::stats::Window;

/// 30 s into a minute (so that 10 s later is the same minute, 60 s later the next).
const NOW: i64 = 1_700_000_010_000;

/// Accepts a delivery with one job of `rule` and dates the delivery `at`; returns the job id.
async fn delivered(queue: &Queue, store: &Store, id: &str, rule: &str, at: i64) -> i64 {
    let accepted = queue.accept(delivery(id), vec![NewJob { rule: rule.into(), ..job(id) }]).await.unwrap();
    store.execute(&format!("UPDATE deliveries SET received_at = {at} WHERE id = '{id}'"));
    accepted.jobs[0].parse().unwrap()
}

fn finish(store: &Store, job: i64, state: &str, started: i64, finished: i64) {
    store.execute(&format!(
        "UPDATE jobs SET state = '{state}', started_at = {started}, finished_at = {finished} WHERE id = {job}"
    ));
}

fn step(store: &Store, job: i64, idx: i64, plugin: &str, started: i64, finished: i64) {
    store.execute(&format!(
        "INSERT INTO steps (job_id, idx, attempt, name, plugin, status, summary, started_at, finished_at)
         VALUES ({job}, {idx}, 1, 's{idx}', '{plugin}', 'success', '', {started}, {finished})"
    ));
}

#[tokio::test]
async fn known_rows_give_known_aggregates_and_rows_outside_the_window_are_left_out() {
    for store in stores() {
        let queue = store.open("n");
        let (from, to) = Window::Hour.bounds(NOW);
        // Deliveries: two in the first bucket, one in the last, one a millisecond before the window.
        let a = delivered(&queue, &store, "a", "build", from).await;
        let b = delivered(&queue, &store, "b", "build", from + 59_999).await;
        let _queued = delivered(&queue, &store, "c", "docs", NOW).await;
        let old = delivered(&queue, &store, "old", "build", from - 1).await;
        store.execute("UPDATE deliveries SET verdict = 'unmatched' WHERE id = 'b'");
        // Jobs: finished inside (two rules, two states), one before the window, one still queued.
        finish(&store, a, "succeeded", from + 1_000, from + 61_000);
        finish(&store, b, "failed", from + 1_000, from + 3_000);
        finish(&store, old, "succeeded", from - 10_000, from - 1);
        // Steps: `probe` takes 10, 20, ..., 100 ms; `slow` one of 5 s; one before the window.
        for n in 1..=10 {
            step(&store, a, n, "probe", NOW - 1_000, NOW - 1_000 + n * 10);
        }
        step(&store, b, 1, "slow", from, from + 5_000);
        step(&store, old, 1, "probe", from - 100_000, from - 1);

        let stats = queue.stats_at(Window::Hour, NOW).await.unwrap();
        assert_eq!((stats.from_ms, stats.buckets, stats.bucket_ms), (from, 60, 60_000));
        let deliveries: Vec<_> = stats.deliveries.iter().map(|d| (d.bucket, d.verdict.as_str(), d.count)).collect();
        assert_eq!(deliveries, [(0, "queued", 1), (0, "unmatched", 1), (59, "queued", 1)]);
        assert_eq!(stats.deliveries[2].at, rfc3339(to - 60_000));
        let jobs: Vec<_> = stats.jobs.iter().map(|j| (j.bucket, j.rule.as_str(), j.state.as_str(), j.count)).collect();
        assert_eq!(jobs, [(0, "build", "failed", 1), (1, "build", "succeeded", 1)]);
        let steps: Vec<_> = stats.steps.iter().map(|s| (s.plugin.as_str(), s.steps, s.p50_ms, s.p95_ms)).collect();
        assert_eq!(steps, [("probe", 10, 50, 100), ("slow", 1, 5_000, 5_000)]);
        // The live count ends the depth line: `c`'s job is queued.
        let last = stats.depth.last().unwrap();
        assert_eq!((last.at_ms, last.queued, last.running), (NOW, 1, 0));

        let build = queue.rule_summary_at("build", Window::Hour, NOW).await.unwrap();
        assert_eq!((build.finished, build.succeeded, build.failed), (2, 1, 1));
        assert_eq!(build.success_rate, Some(0.5));
        assert_eq!(build.mean_ms, Some(31_000.0), "(60 s + 2 s) / 2");
        let docs = queue.rule_summary_at("docs", Window::Hour, NOW).await.unwrap();
        assert_eq!((docs.finished, docs.success_rate, docs.mean_ms), (0, None, None));
        // The day window holds the job that finished before the hour.
        let day = queue.rule_summary_at("build", Window::Day, NOW).await.unwrap();
        assert_eq!((day.finished, day.succeeded), (3, 2));
        queue.close().await;
    }
}

#[tokio::test]
async fn one_depth_sample_per_minute_whichever_node_writes_first_and_old_ones_are_pruned() {
    for store in stores() {
        let (a, b) = (store.open("a"), store.open("b"));
        a.accept(delivery("d"), vec![job("k1"), job("k2")]).await.unwrap();
        let minute = NOW.div_euclid(60_000) * 60_000;
        assert!(a.sample_depth(NOW).await.unwrap(), "the first node records the minute");
        assert!(!b.sample_depth(NOW + 10_000).await.unwrap(), "the other node finds it recorded");
        a.claim().await.unwrap().unwrap();
        assert!(b.sample_depth(NOW + 60_000).await.unwrap(), "the next minute is new");
        let stats = a.stats_at(Window::Hour, NOW + 90_000).await.unwrap();
        let depth: Vec<_> = stats.depth.iter().map(|d| (d.at_ms, d.queued, d.running)).collect();
        let now = NOW + 90_000;
        assert_eq!(depth, [(minute, 2, 0), (minute + 60_000, 1, 1), (now, 1, 1)]);

        let recent = now_ms() - 60_000;
        store.execute(&format!("INSERT INTO queue_samples (at, queued, running, waiting) VALUES ({recent}, 0, 0, 0)"));
        a.prune(Retention::default()).await.unwrap();
        let kept = a.stats_at(Window::Hour, now_ms()).await.unwrap();
        assert_eq!(kept.depth.len(), 2, "the recent sample and the live count: {:?}", kept.depth);
        let old = a.stats_at(Window::Hour, NOW + 90_000).await.unwrap();
        assert_eq!(old.depth.len(), 1, "samples older than two days are gone: {:?}", old.depth);
        a.close().await;
    }
}
