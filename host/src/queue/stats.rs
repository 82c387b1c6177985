//! The dashboard's aggregates: deliveries by verdict, finished jobs by rule and state,
//! step durations by plugin, the queue's depth, each over the last hour or day and read
//! through the indexes made for them (`deliveries_by_time`, `jobs_finished_by_rule`,
//! `steps_by_finish`, `queue_samples`' key); a rule's summary; the depth sampler. Results
//! are cached for a few seconds, so that many open dashboards cost one read; on SQLite
//! the aggregates are read on a connection of their own, not the writer's.

use super::db::{Db, args};
use super::{Queue, now_ms, rfc3339};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most step durations one window's percentiles read: the newest steps of the window.
/// Their count per plugin is exact; p50 and p95 are those of the steps read.
pub const STEP_SAMPLE: i64 = 20_000;

/// How long queue samples are kept: the longest window, and a margin for clocks.
pub const SAMPLES_KEPT: Duration = Duration::from_secs(2 * 86_400);

/// A span of time the charts show, cut into buckets aligned to the clock (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last hour, in 60 buckets of one minute.
    Hour,
    /// The last day, in 96 buckets of fifteen minutes.
    Day,
}

impl Window {
    /// Both windows, shortest first.
    pub const ALL: [Window; 2] = [Window::Hour, Window::Day];

    /// The name used in URLs and JSON (`hour`, `day`).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    /// The window called `name`.
    pub fn parse(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|window| window.as_str() == name)
    }

    /// How long one bucket is, in milliseconds.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Window::Hour => 60_000,
            Window::Day => 15 * 60_000,
        }
    }

    /// How many buckets the window holds.
    pub fn buckets(self) -> usize {
        match self {
            Window::Hour => 60,
            Window::Day => 96,
        }
    }

    /// How long a computed result is served again: a day's buckets change slowly.
    fn fresh_for(self) -> Duration {
        match self {
            Window::Hour => Duration::from_secs(5),
            Window::Day => Duration::from_secs(60),
        }
    }

    /// The buckets' bounds at `now`: the first bucket's start and the last one's end (the
    /// last bucket holds `now`, so it is still filling).
    pub fn bounds(self, now: i64) -> (i64, i64) {
        let bucket = self.bucket_ms();
        let end = now.div_euclid(bucket) * bucket + bucket;
        (end - bucket * self.buckets() as i64, end)
    }
}

/// The aggregates of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// `hour` or `day`.
    pub window: &'static str,
    /// The first bucket's start (RFC 3339).
    pub from: String,
    /// The last bucket's end (RFC 3339; after now: the last bucket is still filling).
    pub to: String,
    /// The first bucket's start, Unix milliseconds.
    pub from_ms: i64,
    /// One bucket's length in milliseconds.
    pub bucket_ms: i64,
    /// How many buckets.
    pub buckets: usize,
    /// Deliveries received per bucket and verdict (buckets with none are left out).
    pub deliveries: Vec<DeliveryCount>,
    /// Jobs finished per bucket, rule and state (buckets with none are left out).
    pub jobs: Vec<JobCount>,
    /// Step durations per plugin, over steps finished in the window.
    pub steps: Vec<StepDurations>,
    /// The queue's depth: the largest sample of each bucket that has one, then the live
    /// count at `now`.
    pub depth: Vec<Depth>,
}

/// Deliveries of one verdict in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryCount {
    /// The bucket (0 is the oldest).
    pub bucket: usize,
    /// The bucket's start (RFC 3339).
    pub at: String,
    /// `queued`, `unmatched`, `ignored`, `ping`, `duplicate`, `rejected` or `invalid`.
    pub verdict: String,
    /// How many.
    pub count: i64,
}

/// Jobs of one rule that finished in one state in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobCount {
    /// The bucket (0 is the oldest).
    pub bucket: usize,
    /// The bucket's start (RFC 3339).
    pub at: String,
    /// Rule name.
    pub rule: String,
    /// The state it finished in.
    pub state: String,
    /// How many.
    pub count: i64,
}

/// One plugin's step durations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDurations {
    /// Plugin name.
    pub plugin: String,
    /// Steps of the plugin that finished in the window.
    pub steps: i64,
    /// How many of them the percentiles read (the newest, at most [`STEP_SAMPLE`] for
    /// every plugin together).
    pub sampled: usize,
    /// Median duration, milliseconds.
    pub p50_ms: i64,
    /// 95th percentile duration, milliseconds.
    pub p95_ms: i64,
}

/// The queue's depth at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Depth {
    /// When (RFC 3339).
    pub at: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Jobs waiting for a worker.
    pub queued: i64,
    /// Jobs running.
    pub running: i64,
    /// Jobs held for an approval.
    pub waiting: i64,
}

/// A rule's finished jobs over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSummary {
    /// Rule name.
    pub rule: String,
    /// `hour` or `day`.
    pub window: &'static str,
    /// Jobs that finished in the window, in any state.
    pub finished: i64,
    /// Of them, succeeded.
    pub succeeded: i64,
    /// Of them, failed or dead.
    pub failed: i64,
    /// `succeeded / (succeeded + failed)`; skipped, cancelled and superseded jobs count
    /// for neither. `None` when no job succeeded or failed.
    pub success_rate: Option<f64>,
    /// Mean time from start to finish of the jobs that started, milliseconds.
    pub mean_ms: Option<f64>,
}

/// Results served again while fresh, per window (and rule); one computation at a time per
/// key, so that requests arriving together wait for one read instead of each making it.
/// One window's figures and when they were computed, behind the lock that makes requests
/// arriving together wait for one read.
type Cached = Arc<tokio::sync::Mutex<Option<(Instant, Arc<Stats>)>>>;

pub(super) struct Cache {
    stats: HashMap<Window, Cached>,
    rules: tokio::sync::Mutex<HashMap<(Window, String), (Instant, RuleSummary)>>,
}

impl Cache {
    pub(super) fn new() -> Self {
        let stats = Window::ALL.into_iter().map(|window| (window, Arc::default())).collect();
        Self { stats, rules: tokio::sync::Mutex::default() }
    }
}

/// Rule summaries kept at most, so that names asked for at random cannot grow the cache.
const RULES_CACHED: usize = 256;

impl Queue {
    /// The aggregates of `window` ending now, computed at most once per few seconds.
    pub async fn stats(&self, window: Window) -> anyhow::Result<Arc<Stats>> {
        let slot = self.stats_cache.stats[&window].clone();
        let mut cached = slot.lock().await;
        if let Some((at, stats)) = &*cached
            && at.elapsed() < window.fresh_for()
        {
            return Ok(stats.clone());
        }
        let stats = Arc::new(self.stats_at(window, now_ms()).await?);
        *cached = Some((Instant::now(), stats.clone()));
        Ok(stats)
    }

    /// The aggregates of `window` ending at `now` (Unix milliseconds), read now.
    pub async fn stats_at(&self, window: Window, now: i64) -> anyhow::Result<Stats> {
        if self.accepting.is_some() {
            return self.writer.call(move |db| read_stats(db, window, now)).await;
        }
        // SQLite: on a connection of its own, beside the writer (the log lets readers be),
        // so that a day's aggregates over a large store hold up no delivery.
        let path = self.location.to_string();
        tokio::task::spawn_blocking(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = rusqlite::Connection::open_with_flags(&path, flags)?;
            conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -16384;")?;
            read_stats(Db::Sqlite(&conn), window, now)
        })
        .await?
    }

    /// `rule`'s finished jobs over `window` ending now, computed at most once per few seconds.
    pub async fn rule_summary(&self, rule: &str, window: Window) -> anyhow::Result<RuleSummary> {
        let key = (window, rule.to_owned());
        let mut cached = self.stats_cache.rules.lock().await;
        if let Some((at, summary)) = cached.get(&key)
            && at.elapsed() < window.fresh_for()
        {
            return Ok(summary.clone());
        }
        let summary = self.rule_summary_at(rule, window, now_ms()).await?;
        if cached.len() >= RULES_CACHED {
            cached.retain(|(window, _), (at, _)| at.elapsed() < window.fresh_for());
        }
        if cached.len() < RULES_CACHED {
            cached.insert(key, (Instant::now(), summary.clone()));
        }
        Ok(summary)
    }

    /// `rule`'s finished jobs over `window` ending at `now`, read now.
    pub async fn rule_summary_at(&self, rule: &str, window: Window, now: i64) -> anyhow::Result<RuleSummary> {
        let rule = rule.to_owned();
        self.writer.call(move |db| read_rule_summary(db, &rule, window, now)).await
    }

    /// Records the queue's depth for the minute holding `now`, unless a node recorded it
    /// already; returns whether this call did.
    pub async fn sample_depth(&self, now: i64) -> anyhow::Result<bool> {
        let minute = now.div_euclid(60_000) * 60_000;
        self.writer
            .call(move |db| {
                let added = db.execute(
                    "INSERT INTO queue_samples (at, queued, running, waiting)
                     SELECT CAST(?1 AS BIGINT), COUNT(CASE WHEN state = 'queued' THEN 1 END),
                            COUNT(CASE WHEN state = 'running' THEN 1 END), COUNT(CASE WHEN state = 'waiting' THEN 1 END)
                     FROM jobs WHERE state IN ('queued', 'running', 'waiting')
                     ON CONFLICT (at) DO NOTHING",
                    args![minute],
                )?;
                Ok(added > 0)
            })
            .await
    }
}

/// Removes queue samples older than `cutoff` (Unix milliseconds); returns how many.
pub(super) fn prune_samples(db: Db, cutoff: i64) -> anyhow::Result<usize> {
    db.execute("DELETE FROM queue_samples WHERE at < ?1", args![cutoff])
}

fn read_stats(db: Db, window: Window, now: i64) -> anyhow::Result<Stats> {
    let (from, to) = window.bounds(now);
    let bucket_ms = window.bucket_ms();
    let at = |bucket: usize| rfc3339(from + bucket as i64 * bucket_ms);
    let deliveries = db.query(
        "SELECT (received_at - CAST(?1 AS BIGINT)) / CAST(?2 AS BIGINT), verdict, COUNT(*) FROM deliveries
         WHERE received_at >= ?1 AND received_at < ?3 GROUP BY 1, 2 ORDER BY 1, 2",
        args![from, bucket_ms, to],
        |row| {
            let bucket = row.get::<i64>(0)? as usize;
            Ok(DeliveryCount { bucket, at: at(bucket), verdict: row.get(1)?, count: row.get(2)? })
        },
    )?;
    let jobs = db.query(
        "SELECT (finished_at - CAST(?1 AS BIGINT)) / CAST(?2 AS BIGINT), rule, state, COUNT(*) FROM jobs
         WHERE finished_at >= ?1 AND finished_at < ?3 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        args![from, bucket_ms, to],
        |row| {
            let bucket = row.get::<i64>(0)? as usize;
            Ok(JobCount { bucket, at: at(bucket), rule: row.get(1)?, state: row.get(2)?, count: row.get(3)? })
        },
    )?;
    let counts: Vec<(String, i64)> = db.query(
        "SELECT plugin, COUNT(*) FROM steps WHERE finished_at >= ?1 AND finished_at < ?2 GROUP BY plugin",
        args![from, to],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut durations: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    db.query(
        "SELECT plugin, finished_at - started_at FROM steps WHERE finished_at >= ?1 AND finished_at < ?2
         ORDER BY finished_at DESC LIMIT ?3",
        args![from, to, STEP_SAMPLE],
        |row| {
            durations.entry(row.get(0)?).or_default().push(row.get(1)?);
            Ok(())
        },
    )?;
    let mut steps: Vec<StepDurations> = counts
        .into_iter()
        .map(|(plugin, steps)| {
            let mut sample = durations.remove(&plugin).unwrap_or_default();
            sample.sort_unstable();
            StepDurations {
                sampled: sample.len(),
                p50_ms: percentile(&sample, 50.0).unwrap_or(0),
                p95_ms: percentile(&sample, 95.0).unwrap_or(0),
                plugin,
                steps,
            }
        })
        .collect();
    steps.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    let samples: Vec<(i64, [i64; 3])> = db.query(
        "SELECT at, queued, running, waiting FROM queue_samples WHERE at >= ?1 AND at < ?2 ORDER BY at",
        args![from, to],
        |row| Ok((row.get(0)?, [row.get(1)?, row.get(2)?, row.get(3)?])),
    )?;
    let live: Vec<(String, i64)> = db.query(
        "SELECT state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'waiting') GROUP BY state",
        args![],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut depth = peaks(&samples, from, bucket_ms, now);
    let live = |state: &str| live.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
    depth.push(Depth {
        at: rfc3339(now),
        at_ms: now,
        queued: live("queued"),
        running: live("running"),
        waiting: live("waiting"),
    });
    Ok(Stats {
        window: window.as_str(),
        from: rfc3339(from),
        to: rfc3339(to),
        from_ms: from,
        bucket_ms,
        buckets: window.buckets(),
        deliveries,
        jobs,
        steps,
        depth,
    })
}

/// The largest sample of each bucket (by the sum of its counts), at the bucket's start;
/// samples at or after `now` are left out (the live count stands for now).
fn peaks(samples: &[(i64, [i64; 3])], from: i64, bucket_ms: i64, now: i64) -> Vec<Depth> {
    let mut by_bucket: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
    for (at, counts) in samples.iter().filter(|(at, _)| *at < now) {
        let start = from + (at - from).div_euclid(bucket_ms) * bucket_ms;
        let peak = by_bucket.entry(start).or_insert(*counts);
        if counts.iter().sum::<i64>() > peak.iter().sum::<i64>() {
            *peak = *counts;
        }
    }
    by_bucket
        .into_iter()
        .map(|(at, [queued, running, waiting])| Depth { at: rfc3339(at), at_ms: at, queued, running, waiting })
        .collect()
}

/// The `p`-th percentile of `sorted` by nearest rank (the smallest value with at least
/// p % of the values at or below it); `None` for no values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn read_rule_summary(db: Db, rule: &str, window: Window, now: i64) -> anyhow::Result<RuleSummary> {
    let (from, to) = window.bounds(now);
    let rows: Vec<(String, i64, Option<i64>, i64)> = db.query(
        "SELECT state, COUNT(*), CAST(SUM(finished_at - started_at) AS BIGINT), COUNT(started_at) FROM jobs
         WHERE finished_at >= ?1 AND finished_at < ?2 AND rule = ?3 GROUP BY state",
        args![from, to, rule],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    let count =
        |states: &[&str]| rows.iter().filter(|row| states.contains(&row.0.as_str())).map(|row| row.1).sum::<i64>();
    let (succeeded, failed): (i64, i64) = (count(&["succeeded"]), count(&["failed", "dead"]));
    let started: i64 = rows.iter().map(|row| row.3).sum();
    let total: i64 = rows.iter().filter_map(|row| row.2).sum();
    Ok(RuleSummary {
        rule: rule.to_owned(),
        window: window.as_str(),
        finished: rows.iter().map(|row| row.1).sum(),
        succeeded,
        failed,
        success_rate: (succeeded + failed > 0).then(|| succeeded as f64 / (succeeded + failed) as f64),
        mean_ms: (started > 0).then(|| total as f64 / started as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_aligned_to_the_clock_and_the_last_holds_now() {
        let now = 1_700_000_123_456;
        let (from, to) = Window::Hour.bounds(now);
        assert_eq!(to % 60_000, 0);
        assert!(to - 60_000 <= now && now < to, "the last bucket holds now");
        assert_eq!(to - from, 60 * 60_000);
        let (from, to) = Window::Day.bounds(now);
        assert_eq!((to % 900_000, (to - from) / 900_000), (0, 96));
        assert!(to - 900_000 <= now && now < to);
        let on_edge = 1_700_000_040_000;
        assert_eq!(Window::Hour.bounds(on_edge).1, on_edge + 60_000, "a bucket starts at its first millisecond");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let hundred: Vec<i64> = (1..=100).collect();
        let cases: [(&[i64], f64, Option<i64>); 7] = [
            (&[], 50.0, None),
            (&[7], 50.0, Some(7)),
            (&[7], 95.0, Some(7)),
            (&[1, 2, 3, 4], 50.0, Some(2)),
            (&[1, 2, 3, 4], 95.0, Some(4)),
            (&hundred, 50.0, Some(50)),
            (&hundred, 95.0, Some(95)),
        ];
        for (values, p, expected) in cases {
            assert_eq!(percentile(values, p), expected, "p{p} of {values:?}");
        }
    }

    #[test]
    fn depth_keeps_each_buckets_peak_and_drops_samples_after_now() {
        let samples = [(0, [1, 0, 0]), (60_000, [3, 1, 0]), (120_000, [0, 0, 0]), (900_000, [2, 0, 0])];
        let peaks = peaks(&samples, 0, 900_000, 900_000);
        let counts: Vec<_> = peaks.iter().map(|d| (d.at_ms, d.queued, d.running)).collect();
        assert_eq!(counts, [(0, 3, 1)]);
    }

    #[test]
    fn windows_parse_their_names_only() {
        assert_eq!(Window::parse("hour"), Some(Window::Hour));
        assert_eq!(Window::parse("day"), Some(Window::Day));
        assert_eq!(Window::parse("week"), None);
    }
}
