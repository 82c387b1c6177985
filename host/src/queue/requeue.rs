//! Putting a running job back in line, whatever stopped it: a start after a crash, a
//! lease that ran out, a shutdown past its grace period, `copy-queue`, or a retry after a
//! backoff. Every path goes through [`requeue`], which merges the job into a queued job of
//! its coalescing key when there is one (the one-queued-job-per-key index forbids a
//! second), and [`requeue_running`], which sets aside a job it cannot put back instead of
//! failing the start or the heartbeat that found it.

use super::db::{Db, args};
use super::now_ms;
use serde::Serialize;

/// Why a running job goes back in line, and what its record keeps of the attempt.
#[derive(Debug, Clone, Default)]
pub(super) struct Back {
    /// Why the attempt stopped, for the record of a merged or cancelled job
    /// ("gitauto stopped while it ran").
    pub why: String,
    /// Only this attempt is put back (the worker that holds the job asks); `None`:
    /// whichever attempt is running (its worker is gone).
    pub attempt: Option<i64>,
    /// Not claimable before this time (Unix ms): a retry's backoff.
    pub not_before: Option<i64>,
    /// The attempt's one-line outcome, when its worker reported one.
    pub summary: Option<String>,
    /// Why the attempt failed, when its worker reported it.
    pub error: Option<String>,
}

/// What became of a job put back in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "job")]
pub enum Requeued {
    /// It is queued again.
    Queued,
    /// A queued job of its coalescing key took its deliveries (and its event, when that
    /// was the newer); it ended `superseded` and points to that job.
    Merged(i64),
    /// A cancel had been requested while it ran: it ended `cancelled`.
    Cancelled,
    /// It was not running (that attempt) any more: queued again, or ended, meanwhile.
    NotRunning,
}

/// The running jobs a recovery puts back in line.
#[derive(Debug, Clone, Copy)]
pub(super) enum Running<'a> {
    /// Every running job (a SQLite file is served by one process at a time, so whatever
    /// runs there was left by an earlier one).
    All,
    /// The jobs this node left running.
    On(&'a str),
    /// The jobs whose node stopped renewing their leases before this time (Unix ms).
    LeaseExpiredBefore(i64),
}

/// What a recovery did, job by job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs queued again.
    pub queued: Vec<i64>,
    /// Jobs merged into a queued job of their coalescing key: (job, the job carrying it).
    pub merged: Vec<(i64, i64)>,
    /// Jobs that ended cancelled (a cancel had been requested).
    pub cancelled: Vec<i64>,
    /// Jobs that could not be put back in line and were set aside (`quarantined`), with why.
    pub set_aside: Vec<(i64, String)>,
}

impl Recovered {
    /// How many jobs it touched.
    pub fn len(&self) -> usize {
        self.queued.len() + self.merged.len() + self.cancelled.len() + self.set_aside.len()
    }

    /// Whether it touched none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logs what was done, with the job ids, after `what` ("at start-up").
    pub fn log(&self, what: &str) {
        if !self.queued.is_empty() {
            tracing::warn!(jobs = ?self.queued, "{what}: queued again jobs that were running");
        }
        for (job, into) in &self.merged {
            tracing::warn!(
                job,
                into,
                "{what}: job {job} was running while job {into} was queued for the same checkout; \
                 job {into} carries its deliveries and runs with the newer event"
            );
        }
        if !self.cancelled.is_empty() {
            tracing::warn!(jobs = ?self.cancelled, "{what}: jobs whose cancel was requested while they ran ended cancelled");
        }
        for (job, why) in &self.set_aside {
            tracing::error!(
                job,
                "{what}: job {job} could not be put back in line and was set aside (state quarantined): {why}; \
                 inspect it at /jobs/{job}, then run it again with `gitauto retry {job}`"
            );
        }
    }
}

/// Puts running job `job` back in line in the current transaction: merged into a queued
/// job of its coalescing key when there is one (the newer event wins, the deliveries it
/// carried move over, it ends `superseded` pointing there), else queued again. A job
/// whose cancel was requested ends `cancelled` instead.
pub(super) fn requeue(db: Db, job: i64, back: &Back) -> anyhow::Result<Requeued> {
    // Row locks on PostgreSQL: another node's heartbeat may be putting the same job back,
    // and another node's claim may be taking the queued job this one merges into.
    let lock = if db.is_postgres() { " FOR UPDATE" } else { "" };
    let running = db.query_opt(
        &format!(
            "SELECT coalesce_key, cancel_requested, delivery_seq, event_index, git_ref FROM jobs
             WHERE id = ?1 AND state = 'running' AND (CAST(?2 AS BIGINT) IS NULL OR attempts = ?2){lock}"
        ),
        args![job, back.attempt],
        |row| {
            Ok((
                row.get::<Option<String>>(0)?,
                row.get::<i64>(1)? != 0,
                row.get::<i64>(2)?,
                row.get::<i64>(3)?,
                row.get::<Option<String>>(4)?,
            ))
        },
    )?;
    let Some((coalesce_key, cancel_requested, delivery_seq, event_index, git_ref)) = running else {
        return Ok(Requeued::NotRunning);
    };
    let now = now_ms();
    let outcome = |what: &str| match &back.summary {
        Some(summary) => format!("{summary}; {what}"),
        None => format!("{}; {what}", back.why),
    };
    if cancel_requested {
        db.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, lease_until = NULL, not_before = NULL,
                             summary = ?3, error = COALESCE(?4, error)
             WHERE id = ?1",
            args![job, now, outcome("cancelled as requested"), back.error],
        )?;
        super::reports::note(db, job)?;
        return Ok(Requeued::Cancelled);
    }
    let queued: Option<i64> = match &coalesce_key {
        Some(key) => db.query_opt(
            &format!("SELECT id FROM jobs WHERE coalesce_key = ?1 AND state = 'queued' AND id <> ?2{lock}"),
            args![key, job],
            |row| row.get(0),
        )?,
        None => None,
    };
    let Some(into) = queued else {
        db.execute(
            "UPDATE jobs SET state = 'queued', started_at = NULL, lease_until = NULL, not_before = ?2,
                             summary = COALESCE(?3, summary), error = COALESCE(?4, error)
             WHERE id = ?1",
            args![job, back.not_before, back.summary, back.error],
        )?;
        super::reports::note(db, job)?;
        return Ok(Requeued::Queued);
    };
    // The newer event wins, as when an event is coalesced at accept time: deliveries are
    // numbered in the order they were accepted. The queued job normally holds the newer one
    // (it was queued after this one started); the other way round it takes this one's.
    db.execute(
        "UPDATE jobs SET delivery_seq = ?2, event_index = ?3, git_ref = ?4 WHERE id = ?1 AND delivery_seq < ?2",
        args![into, delivery_seq, event_index, git_ref],
    )?;
    db.execute(
        "INSERT INTO job_deliveries (job_id, delivery_seq, event_index, at)
         SELECT ?1, delivery_seq, event_index, at FROM job_deliveries WHERE job_id = ?2
         ON CONFLICT DO NOTHING",
        args![into, job],
    )?;
    db.execute(
        "UPDATE jobs SET state = 'superseded', superseded_by = ?2, finished_at = ?3, lease_until = NULL,
                         not_before = NULL, summary = ?4, error = COALESCE(?5, error)
         WHERE id = ?1",
        args![
            job,
            into,
            now,
            outcome(&format!("superseded by job {into}, which carries its deliveries and runs with the newest event")),
            back.error
        ],
    )?;
    super::reports::note(db, job)?;
    super::reports::note(db, into)?;
    Ok(Requeued::Merged(into))
}

/// Puts back in line the running jobs `which` selects, each in a savepoint of its own: a
/// job that cannot be put back (twice: a concurrent accept on another node may have queued
/// the job it should merge into a moment after it looked) is set aside as `quarantined`,
/// and the others go on. Fails only when the store itself does.
pub(super) fn requeue_running(db: Db, which: Running, why: &str) -> anyhow::Result<Recovered> {
    let (filter, value): (&str, &dyn super::db::Param) = match &which {
        Running::All => ("CAST(?1 AS BIGINT) IS NULL", &None::<i64>),
        Running::On(node) => ("ran_on = ?1", node),
        Running::LeaseExpiredBefore(now) => ("lease_until < ?1", now),
    };
    let jobs: Vec<i64> =
        db.query(&format!("SELECT id FROM jobs WHERE state = 'running' AND {filter} ORDER BY id"), &[value], |row| {
            row.get(0)
        })?;
    let back = Back { why: why.to_owned(), ..Back::default() };
    let mut recovered = Recovered::default();
    for job in jobs {
        let mut tried = savepoint(db, || requeue(db, job, &back))?;
        if tried.is_err() {
            tried = savepoint(db, || requeue(db, job, &back))?;
        }
        match tried {
            Ok(Requeued::Queued) => recovered.queued.push(job),
            Ok(Requeued::Merged(into)) => recovered.merged.push((job, into)),
            Ok(Requeued::Cancelled) => recovered.cancelled.push(job),
            Ok(Requeued::NotRunning) => {}
            Err(err) => {
                let why = format!("{err:#}");
                db.execute(
                    "UPDATE jobs SET state = 'quarantined', finished_at = ?2, lease_until = NULL, not_before = NULL,
                                     summary = ?3, error = ?4
                     WHERE id = ?1",
                    args![job, now_ms(), format!("set aside: it could not be put back in line ({why})"), why],
                )?;
                super::reports::note(db, job)?;
                recovered.set_aside.push((job, why));
            }
        }
    }
    Ok(recovered)
}

/// Runs `f` in a savepoint: rolled back when it fails (the outer `Err` is the store failing
/// to take or end the savepoint; the inner one is `f`'s).
pub(super) fn savepoint<T>(db: Db, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<anyhow::Result<T>> {
    db.batch("SAVEPOINT attempt")?;
    let result = f();
    if result.is_err() {
        db.batch("ROLLBACK TO SAVEPOINT attempt")?;
    }
    db.batch("RELEASE SAVEPOINT attempt")?;
    Ok(result)
}

/// Runs `f` in a transaction of its own (start-up work, outside the writer's batches).
pub(super) fn in_transaction<T>(db: Db, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    db.batch(if db.is_postgres() { "BEGIN" } else { "BEGIN IMMEDIATE" })?;
    match f() {
        Ok(value) => {
            db.batch("COMMIT")?;
            Ok(value)
        }
        Err(err) => {
            let _ = db.batch("ROLLBACK");
            Err(err)
        }
    }
}
