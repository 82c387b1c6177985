//! Retention: finished jobs and deliveries are pruned by age and by count; queued and
//! running jobs, and the deliveries they carry, never are.

use super::db::args;
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

impl Queue {
    /// Removes what `retention` no longer keeps, in one transaction.
    pub async fn prune(&self, retention: Retention) -> anyhow::Result<Pruned> {
        self.writer
            .call(move |db| {
                let cutoff = now_ms() - retention.max_age.as_millis() as i64;
                db.batch(
                    "CREATE TEMP TABLE IF NOT EXISTS doomed_jobs (id BIGINT PRIMARY KEY);
                     CREATE TEMP TABLE IF NOT EXISTS doomed_deliveries (seq BIGINT PRIMARY KEY);
                     DELETE FROM doomed_jobs; DELETE FROM doomed_deliveries;",
                )?;
                db.execute(
                    "INSERT INTO doomed_jobs (id)
                     SELECT id FROM jobs WHERE state NOT IN ('waiting', 'queued', 'running')
                       AND (COALESCE(finished_at, created_at) < ?1
                            OR id NOT IN (SELECT id FROM jobs WHERE state NOT IN ('waiting', 'queued', 'running')
                                          ORDER BY id DESC LIMIT ?2))",
                    args![cutoff, retention.keep_jobs as i64],
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
                     SELECT seq FROM deliveries
                     WHERE (received_at < ?1
                            OR seq NOT IN (SELECT seq FROM deliveries ORDER BY seq DESC LIMIT ?2))
                       AND seq NOT IN (SELECT delivery_seq FROM jobs)
                       AND seq NOT IN (SELECT delivery_seq FROM job_deliveries)",
                    args![cutoff, retention.keep_deliveries as i64],
                )?;
                db.batch(
                    "UPDATE deliveries SET duplicate_of = NULL WHERE duplicate_of IN (SELECT seq FROM doomed_deliveries);
                     UPDATE deliveries SET redelivery_of = NULL WHERE redelivery_of IN (SELECT seq FROM doomed_deliveries);",
                )?;
                let deliveries =
                    db.execute("DELETE FROM deliveries WHERE seq IN (SELECT seq FROM doomed_deliveries)", args![])?;
                Ok(Pruned { jobs, deliveries })
            })
            .await
    }
}
