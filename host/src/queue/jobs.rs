//! A job's life in the queue: claimed by a worker, its steps and log lines recorded,
//! finished, re-queued for a retry after a backoff, cancelled, or retried by hand; and
//! the views the API and dashboard read.

use super::db::{Db, Row, args};
use super::requeue::{self, Back, Recovered, Requeued, Running};
use super::{ClaimedJob, JobState, JobView, LogView, Queue, QueueEntry, StepRecord, StepView};
use super::{content_type_of, event_at, now_ms, rfc3339};
use crate::step::StepStatus;
use anyhow::Context;
use serde::Serialize;
use std::time::Duration;

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs for this repository (full name).
    pub repo: Option<String>,
    /// Only jobs of this rule.
    pub rule: Option<String>,
    /// Only jobs with a smaller id (for paging).
    pub before: Option<i64>,
    /// At most this many (capped at 500).
    pub limit: usize,
}

/// One line of the job list.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// Job id.
    pub id: String,
    /// State.
    pub state: String,
    /// Rule name.
    pub rule: String,
    /// Repository full name.
    pub repo: String,
    /// The event's ref.
    pub git_ref: Option<String>,
    /// Runs so far.
    pub attempts: i64,
    /// Deliveries it carries (more than one when it coalesced).
    pub deliveries: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// One line about the outcome.
    pub summary: Option<String>,
    /// The node it must run on (none: any node).
    pub node: Option<String>,
    /// The node that ran it (last).
    pub ran_on: Option<String>,
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancelled {
    /// The job was queued and is now cancelled.
    Cancelled,
    /// The job is running; it stops before its next step.
    Requested,
    /// The job had already finished (in the given state).
    AlreadyFinished,
}

/// What a retry request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "job")]
pub enum Retried {
    /// The job is queued again, for one more attempt.
    Queued,
    /// The job is queued or running already.
    NotFinished,
    /// Another queued job already carries a newer event for this coalescing key.
    Superseded(String),
}

/// A claim lost to another daemon starting a job at the same moment: PostgreSQL's index of
/// running keys or of a rule's places refused it, or the two waited on each other. Its
/// savepoint is rolled back and the claim looks again.
#[derive(Debug, thiserror::Error)]
#[error("another daemon started a job with this key or in this place of its rule")]
struct Lost;

/// Whether `err` is another daemon's claim winning a race with this one: the index of
/// running keys or of running places refusing a second one, or a deadlock between two
/// batches that each wait on the other's claim.
fn is_lost_race(err: &anyhow::Error) -> bool {
    let Some(db) = err.downcast_ref::<postgres::Error>().and_then(postgres::Error::as_db_error) else {
        return false;
    };
    matches!(db.constraint(), Some("jobs_one_running_per_key" | "jobs_one_running_per_slot"))
        || *db.code() == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
}

/// How many times a claim looks again after losing a race before it gives up until the
/// next wake-up (each loss means another daemon started a job, so work is being done).
const CLAIM_TRIES: usize = 3;

/// The lowest of a rule's places `0..limit` that no running job holds.
fn free_slot(taken: &[i64], limit: i64) -> Option<i64> {
    (0..limit).find(|slot| !taken.contains(slot))
}

/// One try at claiming: the first claimable job in priority order, marked running (in a
/// free place of its rule when the rule has a `concurrency`).
fn claim_once(db: Db, node: &str) -> anyhow::Result<Option<Claimed>> {
    let now = now_ms();
    // On PostgreSQL, daemons claim at once: a row another one is claiming is skipped, not
    // waited for. What another daemon is starting right now is invisible here; the unique
    // indexes of running keys and places make the later of two such starts fail.
    let lock = if db.is_postgres() { " FOR UPDATE OF j SKIP LOCKED" } else { "" };
    // Running counts and paused rules are read once per look, not once per queued row: a
    // paused or full rule's backlog is passed over at a lookup per row (5,000 of them cost
    // a claim about 2 ms on SQLite, 4 ms on PostgreSQL; a subquery per row, 2 to 3 times
    // that). Only the jobs that hold a place of their rule's `concurrency` count, read from
    // the index of places: on PostgreSQL the index of all running jobs keeps an entry for
    // every job run since the oldest snapshot still open, which a long transaction makes
    // many, and the count read them all at every claim.
    let found = db.query_opt(
        &format!(
            "SELECT j.id, j.attempts + 1, j.rule, d.normalised, j.event_index, d.forge, d.headers, d.body,
                    j.max_attempts, j.concurrency, j.delivery_seq, j.approved_head, d.body_encoding, d.trace
             FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq
                  LEFT JOIN (SELECT rule, count(*) AS running FROM jobs
                             WHERE state = 'running' AND slot IS NOT NULL GROUP BY rule) busy
                    ON busy.rule = j.rule
             WHERE j.state = 'queued' AND (j.not_before IS NULL OR j.not_before <= ?1)
               AND (j.node IS NULL OR j.node = ?2)
               AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.key = j.key AND r.state = 'running')
               AND j.rule NOT IN (SELECT rule FROM paused_rules)
               AND (j.concurrency IS NULL OR COALESCE(busy.running, 0) < j.concurrency)
             ORDER BY j.priority DESC, j.id LIMIT 1{lock}"
        ),
        args![now, node],
        |row| {
            let job = ClaimedJob {
                id: row.get(0)?,
                attempt: row.get(1)?,
                rule: row.get(2)?,
                normalised: String::new(),
                forge: row.get(5)?,
                content_type: None,
                body: row.get(7)?,
                max_attempts: row.get(8)?,
                delivery_seq: row.get(10)?,
                approved_head: row.get(11)?,
                trace: row.get(13)?,
            };
            let stored = Stored {
                events: row.get(3)?,
                event_index: row.get(4)?,
                headers: row.get(6)?,
                body_encoding: row.get(12)?,
            };
            Ok((Claimed { job, stored }, row.get::<Option<i64>>(9)?))
        },
    )?;
    let Some((Claimed { job, stored }, concurrency)) = found else { return Ok(None) };
    // Read after the look: a job whose end this look saw ended before this one starts.
    let started = now_ms();
    let slot = match concurrency {
        None => None,
        Some(limit) => {
            let taken: Vec<i64> = db.query(
                "SELECT slot FROM jobs WHERE rule = ?1 AND state = 'running' AND slot IS NOT NULL",
                args![job.rule],
                |row| row.get(0),
            )?;
            // Every place is held by jobs this look did not count (started since): lost.
            Some(free_slot(&taken, limit).ok_or(Lost)?)
        }
    };
    db.execute(
        "UPDATE jobs SET state = 'running', attempts = ?2, started_at = ?3, finished_at = NULL,
                         summary = NULL, error = NULL, not_before = NULL, ran_on = ?4,
                         lease_until = CAST(?3 AS BIGINT) + CAST(?5 AS BIGINT), slot = ?6
         WHERE id = ?1",
        args![job.id, job.attempt, started, node, crate::node::LEASE.as_millis() as i64, slot],
    )
    .map_err(|err| if is_lost_race(&err) { Lost.into() } else { err })?;
    super::reports::note(db, job.id)?;
    Ok(Some(Claimed { job, stored }))
}

/// A claimed job as read, before [`Claimed::unpack`].
struct Claimed {
    job: ClaimedJob,
    stored: Stored,
}

/// What a claimed job's fields are made from, after the queue's writer answered: the
/// event picked from the delivery's list, the content type, the body decoded.
struct Stored {
    events: Option<String>,
    event_index: i64,
    headers: String,
    body_encoding: Option<String>,
}

impl Claimed {
    /// The job with its event, content type and body as received.
    fn unpack(self) -> anyhow::Result<ClaimedJob> {
        let Claimed { job, stored } = self;
        Ok(ClaimedJob {
            normalised: event_at(stored.events.as_deref(), stored.event_index),
            content_type: content_type_of(&stored.headers),
            body: super::body::decode(job.body, stored.body_encoding.as_deref())
                .with_context(|| format!("job {}: reading its delivery's body", job.id))?,
            ..job
        })
    }
}

const SUMMARY_COLUMNS: &str = "j.id, j.state, j.rule, j.repo, j.git_ref, j.attempts, j.created_at, j.started_at,
     j.finished_at, j.summary, (SELECT count(*) FROM job_deliveries x WHERE x.job_id = j.id), j.node, j.ran_on";

fn summary(row: &Row) -> anyhow::Result<JobSummary> {
    Ok(JobSummary {
        id: row.get::<i64>(0)?.to_string(),
        state: row.get(1)?,
        rule: row.get(2)?,
        repo: row.get(3)?,
        git_ref: row.get(4)?,
        attempts: row.get(5)?,
        created_at: rfc3339(row.get(6)?),
        started_at: row.get::<Option<i64>>(7)?.map(rfc3339),
        finished_at: row.get::<Option<i64>>(8)?.map(rfc3339),
        summary: row.get(9)?,
        deliveries: row.get(10)?,
        node: row.get(11)?,
        ran_on: row.get(12)?,
    })
}

impl Queue {
    /// Claims the first claimable queued job: highest `priority` first, then oldest; its
    /// backoff or quiet period over, its key not running, its rule not paused and below
    /// its `concurrency` across every node. Marks it running.
    pub async fn claim(&self) -> anyhow::Result<Option<ClaimedJob>> {
        let node = self.node.clone();
        let claimed = self
            .writer
            .call(move |db| {
                for _ in 0..CLAIM_TRIES {
                    // A lost race leaves the transaction unusable on PostgreSQL until
                    // rolled back: each try has a savepoint of its own.
                    match requeue::savepoint(db, || claim_once(db, &node))? {
                        Err(err) if err.is::<Lost>() => continue,
                        tried => return tried,
                    }
                }
                Ok(None)
            })
            .await?;
        if claimed.is_some() {
            self.report_wake.notify_one();
        }
        claimed.map(Claimed::unpack).transpose()
    }

    /// Puts back in line this node's jobs left running (their workers were stopped after
    /// the shutdown grace period): each is queued again, or merged into a queued job of its
    /// coalescing key, or set aside when neither works.
    pub async fn requeue_running(&self) -> anyhow::Result<Recovered> {
        let node = self.node.clone();
        let recovered = self
            .writer
            .call(move |db| {
                requeue::requeue_running(db, Running::On(&node), "it was still running when gitauto stopped")
            })
            .await?;
        self.wake.notify_waiters();
        Ok(recovered)
    }

    /// Appends a log line to a job (without waiting for the commit).
    pub fn log(&self, job: i64, attempt: i64, step: Option<&str>, level: &str, message: &str) {
        let (step, level, message) = (step.map(str::to_owned), level.to_owned(), message.to_owned());
        self.writer.detach(move |db| {
            db.execute(
                "INSERT INTO logs (job_id, attempt, step, at, level, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![job, attempt, step, now_ms(), level, message],
            )?;
            Ok(())
        });
    }

    /// Records a finished step.
    pub async fn record_step(&self, job: i64, attempt: i64, step: StepRecord) -> anyhow::Result<()> {
        self.writer.call(move |db| insert_step(db, job, attempt, &step)).await
    }

    /// Ends a job in a final state, recording the step that ended it in the same transaction.
    pub async fn finish(
        &self,
        job: i64,
        attempt: i64,
        last_step: Option<StepRecord>,
        state: JobState,
        summary: &str,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let (summary, error) = (summary.to_owned(), error.map(str::to_owned));
        self.writer
            .call(move |db| {
                if let Some(step) = &last_step {
                    insert_step(db, job, attempt, step)?;
                }
                // Only the attempt that holds the job ends it: one whose lease expired (its
                // node was taken for dead) or that outlived a shutdown was queued again.
                let ended = db.execute(
                    "UPDATE jobs SET state = ?2, finished_at = ?3, summary = ?4, error = ?5, lease_until = NULL
                     WHERE id = ?1 AND attempts = ?6 AND state = 'running'",
                    args![job, state.as_str(), now_ms(), summary, error, attempt],
                )?;
                if ended == 0 {
                    tracing::warn!(
                        job,
                        attempt,
                        "the job was queued again meanwhile; this attempt's end is not recorded"
                    );
                } else {
                    super::reports::note(db, job)?;
                }
                Ok(())
            })
            .await?;
        // The job's key is free again: a job queued behind it may run now.
        self.wake.notify_waiters();
        self.report_wake.notify_one();
        Ok(())
    }

    /// Queues a failed job again, claimable after `backoff`. When a job of its coalescing
    /// key is queued already, that job will do the work: this one's deliveries move to it
    /// and this one ends superseded (see [`Requeued`]).
    pub async fn retry_later(
        &self,
        job: i64,
        attempt: i64,
        last_step: Option<StepRecord>,
        backoff: Duration,
        summary: &str,
        error: Option<&str>,
    ) -> anyhow::Result<Requeued> {
        let back = Back {
            why: "failed".to_owned(),
            attempt: Some(attempt),
            not_before: Some(now_ms() + backoff.as_millis() as i64),
            summary: Some(summary.to_owned()),
            error: error.map(str::to_owned),
        };
        let requeued = self
            .writer
            .call(move |db| {
                if let Some(step) = &last_step {
                    insert_step(db, job, attempt, step)?;
                }
                requeue::requeue(db, job, &back)
            })
            .await?;
        self.wake.notify_waiters();
        self.report_wake.notify_one();
        Ok(requeued)
    }

    /// Cancels a queued job, or asks a running one to stop before its next step.
    pub async fn cancel(&self, job: i64) -> anyhow::Result<Option<Cancelled>> {
        self.writer
            .call(move |db| {
                let state: Option<String> =
                    db.query_opt("SELECT state FROM jobs WHERE id = ?1", args![job], |row| row.get(0))?;
                let Some(state) = state else { return Ok(None) };
                let result = match state.as_str() {
                    "queued" | "waiting" => {
                        db.execute(
                            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, summary = 'cancelled before it ran',
                                             not_before = NULL
                             WHERE id = ?1",
                            args![job, now_ms()],
                        )?;
                        super::reports::note(db, job)?;
                        Cancelled::Cancelled
                    }
                    "running" => {
                        db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", args![job])?;
                        Cancelled::Requested
                    }
                    _ => Cancelled::AlreadyFinished,
                };
                Ok(Some(result))
            })
            .await
    }

    /// Whether a cancel was requested for a running job.
    pub async fn cancel_requested(&self, job: i64) -> anyhow::Result<bool> {
        self.writer
            .call(move |db| {
                let requested = db.query_opt("SELECT cancel_requested FROM jobs WHERE id = ?1", args![job], |row| {
                    row.get::<i64>(0)
                })?;
                Ok(requested.is_some_and(|flag| flag != 0))
            })
            .await
    }

    /// Queues a finished job again for one more attempt, with the event it last ran with.
    pub async fn retry(&self, job: i64) -> anyhow::Result<Option<Retried>> {
        let result = self
            .writer
            .call(move |db| {
                let state: Option<String> =
                    db.query_opt("SELECT state FROM jobs WHERE id = ?1", args![job], |row| row.get(0))?;
                let Some(state) = state else { return Ok(None) };
                if matches!(state.as_str(), "waiting" | "queued" | "running") {
                    return Ok(Some(Retried::NotFinished));
                }
                if let Some(newer) = newer_queued(db, job)? {
                    return Ok(Some(Retried::Superseded(newer.to_string())));
                }
                db.execute(
                    "UPDATE jobs SET state = 'queued', not_before = NULL, cancel_requested = 0, finished_at = NULL,
                                     max_attempts = attempts + 1
                     WHERE id = ?1",
                    args![job],
                )?;
                super::reports::note(db, job)?;
                Ok(Some(Retried::Queued))
            })
            .await?;
        if result == Some(Retried::Queued) {
            self.wake.notify_waiters();
            self.report_wake.notify_one();
        }
        Ok(result)
    }

    /// A job with its event, deliveries, and its latest attempt's steps and log lines.
    pub async fn job(&self, id: i64) -> anyhow::Result<Option<JobView>> {
        self.writer.call(move |db| job_view(db, id)).await
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, filter: JobFilter) -> anyhow::Result<Vec<JobSummary>> {
        self.writer
            .call(move |db| {
                let limit = filter.limit.clamp(1, 500) as i64;
                let state = filter.state.map(JobState::as_str);
                db.query(
                    &format!(
                        "SELECT {SUMMARY_COLUMNS} FROM jobs j
                         WHERE (CAST(?1 AS TEXT) IS NULL OR j.state = ?1) AND (CAST(?2 AS TEXT) IS NULL OR j.repo = ?2)
                           AND (CAST(?3 AS TEXT) IS NULL OR j.rule = ?3) AND (CAST(?4 AS BIGINT) IS NULL OR j.id < ?4)
                         ORDER BY j.id DESC LIMIT ?5"
                    ),
                    args![state, filter.repo, filter.rule, filter.before, limit],
                    summary,
                )
            })
            .await
    }

    /// Log lines of a job's latest attempt after position `after`, and the job's state.
    pub async fn logs_since(&self, job: i64, after: i64) -> anyhow::Result<Option<(String, Vec<LogView>)>> {
        self.writer
            .call(move |db| {
                let found: Option<(String, i64)> =
                    db.query_opt("SELECT state, attempts FROM jobs WHERE id = ?1", args![job], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                let Some((state, attempt)) = found else { return Ok(None) };
                let lines = db.query(
                    "SELECT seq, at, step, level, message FROM logs
                     WHERE job_id = ?1 AND attempt = ?2 AND seq > ?3 ORDER BY seq LIMIT 1000",
                    args![job, attempt, after],
                    log_line,
                )?;
                Ok(Some((state, lines)))
            })
            .await
    }

    /// Counts of jobs by state.
    pub async fn job_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        self.writer
            .call(|db| {
                db.query("SELECT state, count(*) FROM jobs GROUP BY state", args![], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
            })
            .await
    }

    /// Queued and running jobs, oldest first.
    pub async fn pending(&self) -> anyhow::Result<Vec<QueueEntry>> {
        self.writer
            .call(|db| {
                db.query(
                    "SELECT j.id, j.repo, d.normalised, j.event_index, j.rule, j.state
                     FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq
                     WHERE j.state IN ('queued', 'running') ORDER BY j.id",
                    args![],
                    |row| {
                        let repo: String = row.get(1)?;
                        let normalised: Option<String> = row.get(2)?;
                        let event = event_at(normalised.as_deref(), row.get(3)?);
                        let clone_url = serde_json::from_str::<serde_json::Value>(&event)
                            .ok()
                            .and_then(|event| event["repository"]["clone_url"].as_str().map(str::to_owned))
                            .unwrap_or_default();
                        Ok(QueueEntry {
                            id: row.get::<i64>(0)?.to_string(),
                            repo_name: repo.rsplit('/').next().unwrap_or_default().to_owned(),
                            repo_url: clone_url,
                            action: row.get(4)?,
                            state: row.get(5)?,
                        })
                    },
                )
            })
            .await
    }
}

fn insert_step(db: Db, job: i64, attempt: i64, step: &StepRecord) -> anyhow::Result<()> {
    db.execute(
        "INSERT INTO steps (job_id, idx, attempt, name, plugin, status, summary, output, started_at, finished_at, bill,
                            plugin_digest, plugin_signer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (job_id, attempt, idx) DO UPDATE SET
            name = excluded.name, plugin = excluded.plugin, status = excluded.status, summary = excluded.summary,
            output = excluded.output, started_at = excluded.started_at, finished_at = excluded.finished_at,
            bill = excluded.bill, plugin_digest = excluded.plugin_digest, plugin_signer = excluded.plugin_signer",
        args![
            job,
            step.index as i64,
            attempt,
            step.name,
            step.plugin,
            step.status.as_str(),
            step.summary,
            step.output,
            step.started_at,
            step.finished_at,
            step.bill.as_ref().map(|bill| serde_json::to_string(bill).expect("a bill serialises")),
            step.plugin_digest,
            step.plugin_signer
        ],
    )?;
    Ok(())
}

/// Another queued job with `job`'s coalescing key.
fn newer_queued(db: Db, job: i64) -> anyhow::Result<Option<i64>> {
    db.query_opt(
        "SELECT other.id FROM jobs this JOIN jobs other
           ON other.coalesce_key = this.coalesce_key AND other.state = 'queued' AND other.id <> this.id
         WHERE this.id = ?1",
        args![job],
        |row| row.get(0),
    )
}

/// A stored step's status; any other word is a record this version did not write.
pub(super) fn step_status(name: &str) -> anyhow::Result<StepStatus> {
    StepStatus::parse(name).ok_or_else(|| anyhow::anyhow!("a step is stored with an unknown status `{name}`"))
}

fn log_line(row: &Row) -> anyhow::Result<LogView> {
    Ok(LogView {
        seq: row.get(0)?,
        at: rfc3339(row.get(1)?),
        step: row.get(2)?,
        level: row.get(3)?,
        message: row.get(4)?,
    })
}

fn job_view(db: Db, id: i64) -> anyhow::Result<Option<JobView>> {
    let job = db.query_opt(
        "SELECT j.id, j.state, j.rule, d.id, j.repo, j.git_ref, j.attempts, j.created_at, j.started_at,
                j.finished_at, j.summary, j.error, j.max_attempts, j.not_before, j.cancel_requested,
                d.normalised, j.event_index, j.node, j.ran_on, j.superseded_by
         FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq WHERE j.id = ?1",
        args![id],
        |row| {
            let events: Option<String> = row.get(15)?;
            let event = event_at(events.as_deref(), row.get(16)?);
            Ok(JobView {
                id: row.get::<i64>(0)?.to_string(),
                state: row.get(1)?,
                rule: row.get(2)?,
                delivery: row.get(3)?,
                repo: row.get(4)?,
                git_ref: row.get(5)?,
                attempts: row.get(6)?,
                created_at: rfc3339(row.get(7)?),
                started_at: row.get::<Option<i64>>(8)?.map(rfc3339),
                finished_at: row.get::<Option<i64>>(9)?.map(rfc3339),
                summary: row.get(10)?,
                error: row.get(11)?,
                max_attempts: row.get(12)?,
                not_before: row.get::<Option<i64>>(13)?.map(rfc3339),
                cancel_requested: row.get::<i64>(14)? != 0,
                node: row.get(17)?,
                ran_on: row.get(18)?,
                superseded_by: row.get::<Option<i64>>(19)?.map(|id| id.to_string()),
                deliveries: Vec::new(),
                delivery_seqs: Vec::new(),
                event: serde_json::from_str(&event).unwrap_or(serde_json::Value::Null),
                steps: Vec::new(),
                logs: Vec::new(),
                reports: Vec::new(),
            })
        },
    )?;
    let Some(mut job) = job else { return Ok(None) };
    let carried: Vec<(String, i64)> = db.query(
        "SELECT d.id, d.seq FROM job_deliveries x JOIN deliveries d ON d.seq = x.delivery_seq
         WHERE x.job_id = ?1 ORDER BY x.at, x.delivery_seq",
        args![id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    (job.deliveries, job.delivery_seqs) = carried.into_iter().unzip();
    job.steps = db.query(
        "SELECT name, plugin, status, summary, output, finished_at - started_at, bill, plugin_digest, plugin_signer
         FROM steps WHERE job_id = ?1 AND attempt = ?2 ORDER BY idx",
        args![id, job.attempts],
        |row| {
            let output: Option<String> = row.get(4)?;
            Ok(StepView {
                name: row.get(0)?,
                plugin: row.get(1)?,
                status: step_status(&row.get::<String>(2)?)?,
                summary: row.get(3)?,
                output: output.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(serde_json::Value::Null),
                duration_ms: row.get(5)?,
                bill: row.get::<Option<String>>(6)?.and_then(|text| serde_json::from_str(&text).ok()),
                plugin_digest: row.get(7)?,
                plugin_signer: row.get(8)?,
            })
        },
    )?;
    job.reports = super::reports::report_views(db, id)?;
    job.logs = db.query(
        "SELECT seq, at, step, level, message FROM logs WHERE job_id = ?1 AND attempt = ?2 ORDER BY seq",
        args![id, job.attempts],
        log_line,
    )?;
    Ok(Some(job))
}
