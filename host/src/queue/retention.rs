//! Retention: finished jobs and deliveries are pruned by age and by count; queued and
//! running jobs, and the deliveries they carry, never are. Queue depth samples go once
//! older than the longest chart window (`stats::SAMPLES_KEPT`).

use super::db::{Db, args};
use super::{Queue, now_ms};
use serde::Serialize;
use std::time::Duration;

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished jobs and deliveries older than this go.
    pub max_age: Duration,
    /// At most this many finished jobs stay (the newest).
    pub keep_jobs: usize,
    /// At most this many deliveries stay (the newest), besides those unfinished jobs carry.
    pub keep_deliveries: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(30 * 86_400), keep_jobs: 10_000, keep_deliveries: 10_000 }
    }
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Finished jobs removed (with their steps and log lines).
    pub jobs: usize,
    /// Deliveries removed.
    pub deliveries: usize,
}

/// How many jobs, or deliveries, one pruning transaction removes at most: a pass over a
/// large history (a daemon started on a store that outgrew its limits) is many short
/// transactions, so that the queue's one writer serves deliveries and requests between them.
const CHUNK: usize = 1_000;

impl Queue {
    /// Removes what `retention` no longer keeps, in transactions of at most [`CHUNK`]
    /// jobs or deliveries each.
    pub async fn prune(&self, retention: Retention) -> anyhow::Result<Pruned> {
        self.prune_in_chunks(retention, CHUNK).await
    }

    /// [`Queue::prune`] with transactions of at most `chunk` jobs or deliveries.
    pub(super) async fn prune_in_chunks(&self, retention: Retention, chunk: usize) -> anyhow::Result<Pruned> {
        // One cutoff for the whole pass: later chunks do not reach newer history.
        let cutoff = now_ms() - retention.max_age.as_millis() as i64;
        // One minute's row each: two days are under 3,000 rows, removed by their key.
        let samples = now_ms() - super::stats::SAMPLES_KEPT.as_millis() as i64;
        self.writer.call(move |db| super::stats::prune_samples(db, samples)).await?;
        let mut total = Pruned::default();
        loop {
            let pruned = self.writer.call(move |db| prune_chunk(db, retention, cutoff, chunk as i64)).await?;
            total.jobs += pruned.jobs;
            total.deliveries += pruned.deliveries;
            if pruned.jobs < chunk && pruned.deliveries < chunk {
                return Ok(total);
            }
        }
    }
}

/// One transaction of a pruning pass: the oldest `chunk` finished jobs that `retention`
/// no longer keeps (older than `cutoff`, or beyond the newest `keep_jobs`), with their
/// rows, then the oldest `chunk` deliveries no job carries that it no longer keeps. The
/// limits are comparisons with the (N+1)-th newest id and the carried deliveries are
/// `NOT EXISTS` lookups, so the cost follows what is removed, not the product of two
/// tables (PostgreSQL runs a `NOT IN` over more rows than fit in `work_mem` row by row).
fn prune_chunk(db: Db, retention: Retention, cutoff: i64, chunk: i64) -> anyhow::Result<Pruned> {
    db.batch(
        "CREATE TEMP TABLE IF NOT EXISTS doomed_jobs (id BIGINT PRIMARY KEY);
         CREATE TEMP TABLE IF NOT EXISTS doomed_deliveries (seq BIGINT PRIMARY KEY);
         DELETE FROM doomed_jobs; DELETE FROM doomed_deliveries;",
    )?;
    db.execute(
        "INSERT INTO doomed_jobs (id)
         SELECT id FROM jobs WHERE state NOT IN ('waiting', 'queued', 'running')
           AND (COALESCE(finished_at, created_at) < ?1
                OR id <= (SELECT id FROM jobs WHERE state NOT IN ('waiting', 'queued', 'running')
                          ORDER BY id DESC LIMIT 1 OFFSET ?2))
         ORDER BY id LIMIT ?3",
        args![cutoff, retention.keep_jobs as i64, chunk],
    )?;
    db.batch(
        "DELETE FROM logs WHERE job_id IN (SELECT id FROM doomed_jobs);
         DELETE FROM report_outbox WHERE job_id IN (SELECT id FROM doomed_jobs);
         DELETE FROM report_checks WHERE job_id IN (SELECT id FROM doomed_jobs);
         DELETE FROM steps WHERE job_id IN (SELECT id FROM doomed_jobs);
         DELETE FROM job_deliveries WHERE job_id IN (SELECT id FROM doomed_jobs);",
    )?;
    let jobs = db.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM doomed_jobs)", args![])?;
    db.execute(
        "INSERT INTO doomed_deliveries (seq)
         SELECT d.seq FROM deliveries d
         WHERE (d.received_at < ?1 OR d.seq <= (SELECT seq FROM deliveries ORDER BY seq DESC LIMIT 1 OFFSET ?2))
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery_seq = d.seq)
           AND NOT EXISTS (SELECT 1 FROM job_deliveries l WHERE l.delivery_seq = d.seq)
         ORDER BY d.seq LIMIT ?3",
        args![cutoff, retention.keep_deliveries as i64, chunk],
    )?;
    db.batch(
        "UPDATE deliveries SET duplicate_of = NULL WHERE duplicate_of IN (SELECT seq FROM doomed_deliveries);
         UPDATE deliveries SET redelivery_of = NULL WHERE redelivery_of IN (SELECT seq FROM doomed_deliveries);",
    )?;
    let deliveries = db.execute("DELETE FROM deliveries WHERE seq IN (SELECT seq FROM doomed_deliveries)", args![])?;
    Ok(Pruned { jobs, deliveries })
}
