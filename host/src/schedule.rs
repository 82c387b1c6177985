//! The scheduler: a task of the daemon that sleeps until the next tick of any schedule
//! rule, claims the tick in the queue (so that of the daemons sharing it, one runs each
//! tick) and ingests it through the pipeline. After downtime, the rule's `missed` policy
//! decides which of the ticks nobody ran are run now ([`plan`]). Parsing and next times are
//! `crate::cron`'s; the record of handled ticks is `queue/ticks.rs`'.

use crate::config::{Config, Missed, Schedule};
use crate::ingest::{Input, Pipeline};
use crate::live::Live;
use crate::queue::{TickClaim, now_ms};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The most missed ticks `missed = "all"` runs at once (the latest ones), so that a
/// per-second rule down for a month does not flood the queue.
pub const CATCH_UP_LIMIT: usize = 1000;

/// A tick reached later than this after its time counts as missed (the machine slept,
/// or the daemon was held up), even though the scheduler was running.
const LATE_AFTER_MS: i64 = 30_000;

/// The longest the scheduler sleeps before looking at the clock again: sleeping follows a
/// monotonic clock, ticks follow the wall clock, which may jump.
const LONGEST_SLEEP: Duration = Duration::from_secs(30);

/// After the queue failed to answer, how long until the rule is tried again.
const RETRY_AFTER_MS: i64 = 1_000;

/// What to run now for a rule's ticks that no daemon has handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The tick times to ingest (Unix ms), oldest first.
    pub run: Vec<i64>,
    /// How many of the ticks were missed: all but one reached on time, counted up to
    /// [`CATCH_UP_LIMIT`] + 1 (more than the limit shows as the limit + 1).
    pub missed: usize,
}

/// The ticks of `schedule` in `(after_ms, now_ms]` to run now under its `missed` policy.
/// A tick is on time when it is not older than [`LATE_AFTER_MS`] and not earlier than
/// `since_ms`, when this daemon began watching the rule; the others were missed. On time,
/// the latest tick runs whatever the policy; missed ticks: `skip` runs none, `once` the
/// latest, `all` each of them (the latest [`CATCH_UP_LIMIT`]).
pub fn plan(schedule: &Schedule, after_ms: i64, since_ms: i64, now_ms: i64) -> Plan {
    let (cron, zone) = (&schedule.cron, &schedule.timezone);
    let Some(latest) = cron.last_in(after_ms, now_ms, zone) else { return Plan::default() };
    let on_time = latest >= since_ms && now_ms - latest <= LATE_AFTER_MS;
    let before_latest = cron.between(after_ms, latest - 1, zone, CATCH_UP_LIMIT).len();
    let missed = if on_time { before_latest } else { (before_latest + 1).min(CATCH_UP_LIMIT + 1) };
    let run = match schedule.missed {
        Missed::Skip if on_time => vec![latest],
        Missed::Skip => Vec::new(),
        Missed::Once => vec![latest],
        Missed::All => cron.latest(after_ms, now_ms, zone, CATCH_UP_LIMIT).0,
    };
    Plan { run, missed }
}

/// The next `count` ticks of `schedule` after `after_ms`, each as a line with its time in
/// the rule's zone and in UTC (for `gitauto check`).
pub fn upcoming(schedule: &Schedule, after_ms: i64, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cursor = after_ms;
    for _ in 0..count {
        let Some(next) = schedule.cron.next_after_ms(cursor, &schedule.timezone) else { break };
        let at = jiff::Timestamp::from_millisecond(next).expect("a tick is a valid time");
        let local = at.to_zoned_datetime(schedule.timezone.clone()).strftime("%Y-%m-%d %H:%M:%S %:z");
        let utc = at.strftime("%Y-%m-%d %H:%M:%SZ");
        lines.push(if schedule.timezone_name == "UTC" {
            utc.to_string()
        } else {
            format!("{local} {} = {utc}", schedule.timezone_name)
        });
        cursor = next;
    }
    lines
}

/// What the scheduler knows of one schedule rule.
struct Watched {
    /// Its expression and zone (see [`Schedule::spec`]).
    spec: String,
    /// When this daemon began watching it under `spec`: ticks before were not its to run on time.
    since_ms: i64,
    /// When to look at it next (`i64::MIN`: at once; `i64::MAX`: it never ticks again).
    due_ms: i64,
}

/// Runs the schedule rules of the live config until `stop`: sleeps until the next due
/// tick (or a reload), claims it, and ingests what [`plan`] says.
pub async fn run(pipeline: Pipeline, live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    let mut watched: BTreeMap<String, Watched> = BTreeMap::new();
    let mut seen: Option<Arc<Config>> = None;
    loop {
        // Listening before reading the config: a reload in between still wakes the sleep below.
        let reloaded = live.replaced().notified();
        tokio::pin!(reloaded);
        reloaded.as_mut().enable();
        let config = live.config();
        let now = now_ms();
        if seen.as_ref().is_none_or(|seen| !Arc::ptr_eq(seen, &config)) {
            // Joining daemons that are already running: they handle the ticks, so this one
            // does not catch up what it finds unhandled at its start (it may be a tick that
            // one of them is about to claim on time).
            let catch_up = seen.is_some() || !others_live(&pipeline).await;
            refresh(&config, &mut watched, now, catch_up);
            forget_removed(&pipeline, &config).await;
            seen = Some(config.clone());
        }
        let due: Vec<String> =
            watched.iter().filter(|(_, rule)| rule.due_ms <= now).map(|(name, _)| name.clone()).collect();
        for name in due {
            if *stop.borrow() {
                return;
            }
            let Some(schedule) = config.rule(&name).and_then(|rule| rule.schedule.as_ref()) else { continue };
            let rule = watched.get_mut(&name).expect("due rules are watched");
            rule.due_ms = match tick(&pipeline, &name, schedule, rule, now).await {
                Ok(()) => schedule.cron.next_after_ms(now, &schedule.timezone).unwrap_or(i64::MAX),
                Err(err) => {
                    tracing::error!(rule = %name, "schedule tick: {err:#}; trying again shortly");
                    now + RETRY_AFTER_MS
                }
            };
        }
        let next = watched.values().map(|rule| rule.due_ms).min().unwrap_or(i64::MAX);
        let wait = Duration::from_millis(next.saturating_sub(now_ms()).max(0) as u64).min(LONGEST_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut reloaded => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether a daemon other than this one is serving from the same queue.
async fn others_live(pipeline: &Pipeline) -> bool {
    let queue = pipeline.queue();
    match queue.nodes().await {
        Ok(nodes) => nodes.iter().any(|node| node.live && node.name != queue.node()),
        Err(err) => {
            tracing::warn!("listing the nodes sharing the queue: {err:#}");
            false
        }
    }
}

/// Brings `watched` in line with `config`'s schedule rules: new ones (and ones whose
/// expression or zone changed) are looked at now, removed ones are dropped.
fn refresh(config: &Config, watched: &mut BTreeMap<String, Watched>, now: i64, catch_up: bool) {
    let schedules: BTreeMap<&str, &Schedule> = scheduled(config).collect();
    watched.retain(|name, _| schedules.contains_key(name.as_str()));
    for (name, schedule) in schedules {
        let spec = schedule.spec();
        if watched.get(name).is_some_and(|rule| rule.spec == spec) {
            continue;
        }
        let due_ms =
            if catch_up { i64::MIN } else { schedule.cron.next_after_ms(now, &schedule.timezone).unwrap_or(i64::MAX) };
        tracing::info!(rule = %name, cron = %schedule.cron, timezone = %schedule.timezone_name, "schedule watched");
        watched.insert(name.to_owned(), Watched { spec, since_ms: now, due_ms });
    }
}

/// The config's schedule rules, by name.
fn scheduled(config: &Config) -> impl Iterator<Item = (&str, &Schedule)> {
    config.rules.iter().filter_map(|rule| rule.schedule.as_ref().map(|schedule| (rule.name.as_str(), schedule)))
}

/// Drops the tick records of rules no longer in the config (best effort).
async fn forget_removed(pipeline: &Pipeline, config: &Config) {
    let keep: Vec<String> = scheduled(config).map(|(name, _)| name.to_owned()).collect();
    if let Err(err) = pipeline.queue().forget_ticks(keep).await {
        tracing::warn!("forgetting the ticks of removed schedule rules: {err:#}");
    }
}

/// Claims `rule`'s ticks up to `now` and ingests those [`plan`] picks. Claiming first
/// makes each tick run at most once: a daemon killed between the claim and the ingest
/// loses the tick instead of leaving it to run twice. A claim whose ticks could not be
/// ingested (the store failed) is given back, so the retry runs them.
async fn tick(pipeline: &Pipeline, name: &str, schedule: &Schedule, rule: &Watched, now: i64) -> anyhow::Result<()> {
    let previous = match pipeline.queue().claim_ticks(name, &rule.spec, now).await? {
        TickClaim::Lost => return Ok(()),
        TickClaim::Won { previous } => previous,
    };
    // A rule never run (or whose clock changed) starts from when it was first watched: no back-fill.
    let after = previous.unwrap_or(rule.since_ms - 1);
    let plan = plan(schedule, after, rule.since_ms, now);
    if plan.missed > 0 {
        let count =
            if plan.missed > CATCH_UP_LIMIT { format!("more than {CATCH_UP_LIMIT}") } else { plan.missed.to_string() };
        let running = plan.run.len();
        let policy = schedule.missed.as_str();
        if schedule.missed == Missed::All && plan.missed > CATCH_UP_LIMIT {
            tracing::warn!(rule = %name, "{count} ticks were missed; missed = \"all\" runs the latest {running}");
        } else {
            tracing::info!(rule = %name, "{count} ticks were missed; missed = \"{policy}\" runs {running} now");
        }
    }
    for at in plan.run {
        match pipeline.ingest(Input::schedule(name, at, &schedule.targets)).await {
            Ok(ingested) => {
                tracing::debug!(rule = %name, at = %crate::queue::rfc3339(at), jobs = ?ingested.jobs, "schedule tick ingested")
            }
            Err(err) => {
                // Not ingested: give the claim back so that the retry runs these ticks
                // (those already ingested come back as duplicates of themselves).
                if let Err(back) = pipeline.queue().give_back_ticks(name, now, after).await {
                    tracing::error!(rule = %name, "giving back the claimed ticks: {back:#}; they are lost");
                }
                return Err(err.into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::Cron;

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn schedule(cron: &str, missed: Missed) -> Schedule {
        Schedule {
            cron: Cron::parse(cron).unwrap(),
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".into(),
            missed,
            targets: vec![(None, None)],
        }
    }

    #[test]
    fn missed_ticks_run_as_the_policy_says() {
        let minute = |m: i64| at("2026-11-28T10:00:00Z") + m * 60_000;
        let (before, since, late_now) = (minute(0), minute(10) + 30_500, minute(10) + 30_500);
        /// Policy, span start, watched since, now, ticks run, ticks missed.
        type Row = (Missed, i64, i64, i64, Vec<i64>, usize);
        let rows: &[Row] = &[
            // Down from 10:00 to 10:10:30.5: ten ticks (10:01..10:10) nobody ran.
            (Missed::Skip, before, since, late_now, vec![], 10),
            (Missed::Once, before, since, late_now, vec![minute(10)], 10),
            (Missed::All, before, since, late_now, (1..=10).map(minute).collect(), 10),
            // Running all along: the tick due now is on time, whatever the policy.
            (Missed::Skip, minute(9), minute(0), minute(10) + 5, vec![minute(10)], 0),
            (Missed::Once, minute(9), minute(0), minute(10) + 5, vec![minute(10)], 0),
            (Missed::All, minute(9), minute(0), minute(10) + 5, vec![minute(10)], 0),
            // Held up for three minutes: 10:08 and 10:09 missed, 10:10 on time.
            (Missed::Skip, minute(7), minute(0), minute(10) + 5, vec![minute(10)], 2),
            (Missed::All, minute(7), minute(0), minute(10) + 5, vec![minute(8), minute(9), minute(10)], 2),
            // Woken far too late (the machine slept): the latest tick is missed too.
            (Missed::Skip, minute(9), minute(0), minute(10) + 40_000, vec![], 1),
            (Missed::Once, minute(9), minute(0), minute(10) + 40_000, vec![minute(10)], 1),
            // Nothing in the span.
            (Missed::All, minute(10), minute(0), minute(10) + 59_000, vec![], 0),
        ];
        for (policy, after, since, now, run, missed) in rows {
            let got = plan(&schedule("* * * * *", *policy), *after, *since, *now);
            assert_eq!(
                got,
                Plan { run: run.clone(), missed: *missed },
                "{policy:?} after {after} since {since} now {now}"
            );
        }
    }

    #[test]
    fn catching_up_everything_stops_at_the_limit_keeping_the_latest() {
        let every_second = schedule("* * * * * *", Missed::All);
        let (after, now) = (at("2026-10-28T10:00:00Z"), at("2026-11-28T10:00:00.400Z"));
        let got = plan(&every_second, after, now, now);
        assert_eq!(got.run.len(), CATCH_UP_LIMIT);
        assert_eq!(got.missed, CATCH_UP_LIMIT + 1, "more than the limit");
        assert_eq!(*got.run.last().unwrap(), at("2026-11-28T10:00:00Z"));
        assert_eq!(got.run[0], at("2026-11-28T10:00:00Z") - 999_000);
        assert!(got.run.windows(2).all(|pair| pair[1] - pair[0] == 1_000));
    }

    #[test]
    fn upcoming_ticks_show_the_zone_and_utc() {
        let mut paris = schedule("30 2 * * *", Missed::Once);
        paris.timezone = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        paris.timezone_name = "Europe/Paris".into();
        let lines = upcoming(&paris, at("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            lines,
            [
                "2026-03-28 02:30:00 +01:00 Europe/Paris = 2026-03-28 01:30:00Z",
                "2026-03-30 02:30:00 +02:00 Europe/Paris = 2026-03-30 00:30:00Z",
                "2026-03-31 02:30:00 +02:00 Europe/Paris = 2026-03-31 00:30:00Z",
            ]
        );
        let utc = upcoming(&schedule("0 0 1 1 *", Missed::Once), at("2026-11-28T00:00:00Z"), 2);
        assert_eq!(utc, ["2027-01-01 00:00:00Z", "2028-01-01 00:00:00Z"]);
    }
}
