//! The report outbox: what each job of a rule with `report` tells the forge, written in
//! the transaction of the transition that causes it ([`note`]: queued, running, an end, a
//! commit superseded by coalescing, an attempt left for a retry), and the reporter's side:
//! claiming each job's oldest unsent row (on PostgreSQL, no two nodes hold one job's rows),
//! recording what became of it, the check run a job's attempt has on a commit. Sending is
//! `report.rs`'s; nothing here calls out.

use super::db::{Db, Row, args};
use super::{Queue, event_at, now_ms};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The job states after which a job's report for an attempt and commit says no more.
const FINAL: &[&str] = &["succeeded", "failed", "skipped", "cancelled", "dead", "superseded", "quarantined"];

/// The pseudo-state of a row that closes an attempt which will not finish (its job was
/// queued again for another attempt): a check run is completed, a status is left for the
/// next attempt's to replace.
pub const RETRIED: &str = "retried";

/// One report to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The row's id (rows of one job are sent in id order).
    pub id: i64,
    /// The job it reports.
    pub job: i64,
    /// The attempt it is about.
    pub attempt: i64,
    /// The job state it reports (`queued`, `running`, an end), or [`RETRIED`].
    pub state: String,
    /// `status` or `check`.
    pub kind: String,
    /// The source the job's event came through (its `api` authenticates the call).
    pub source: String,
    /// `owner/name` (GitLab: the project path).
    pub repo: String,
    /// The commit it is on.
    pub sha: String,
    /// The GitHub App installation the event came through.
    pub installation: Option<u64>,
    /// The job's rule (the report's name).
    pub rule: String,
    /// The job's one-line summary when the row was written.
    pub summary: Option<String>,
    /// For a superseded commit: the job that carries the newer one.
    pub superseded_by: Option<i64>,
    /// Tries so far.
    pub tries: i64,
    /// When it was written (Unix ms).
    pub created_at: i64,
}

/// A step of the attempt a report is about: its name, how it ended, its summary and output.
#[derive(Debug, Clone)]
pub struct ReportStep {
    /// The step's name.
    pub name: String,
    /// How it ended.
    pub status: crate::step::StepStatus,
    /// Its one-line summary.
    pub summary: String,
    /// Its output (`null` when it wrote none).
    pub output: serde_json::Value,
}

/// A report row as the API shows it (and tests read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportView {
    /// The attempt it is about.
    pub attempt: i64,
    /// The state reported.
    pub state: String,
    /// The commit.
    pub sha: String,
    /// Tries so far.
    pub tries: i64,
    /// Whether it is done (sent, refused or given up).
    pub done: bool,
    /// What became of it: `sent`, or why it was not.
    pub outcome: Option<String>,
}

/// The commit, repository, source and installation a job's event is about.
struct Subject {
    sha: String,
    source: String,
    repo: String,
    installation: Option<i64>,
}

/// Adds the rows job `job`'s current state calls for, when its rule reports: its state for
/// the attempt it is at, after closing the previous row's report when that was left open on
/// another commit (superseded by coalescing) or another attempt (queued again). Called in
/// the transaction of every transition; a job without `report`, or whose event names no
/// commit, adds nothing. Returns whether it added a row.
pub(super) fn note(db: Db, job: i64) -> anyhow::Result<bool> {
    // Most jobs do not report: one indexed lookup, without reading their event.
    let reports =
        db.query_opt("SELECT report FROM jobs WHERE id = ?1", args![job], |row| row.get::<Option<String>>(0))?;
    if reports.flatten().is_none() {
        return Ok(false);
    }
    let found = db.query_opt(
        "SELECT j.report, j.state, j.attempts, j.rule, j.summary, j.superseded_by, d.normalised, j.event_index
         FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq WHERE j.id = ?1",
        args![job],
        |row| {
            let kind: Option<String> = row.get(0)?;
            let Some(kind) = kind else { return Ok(None) };
            let events: Option<String> = row.get(6)?;
            Ok(Some((
                kind,
                row.get::<String>(1)?,
                row.get::<i64>(2)?,
                row.get::<String>(3)?,
                row.get::<Option<String>>(4)?,
                row.get::<Option<i64>>(5)?,
                event_at(events.as_deref(), row.get(7)?),
            )))
        },
    )?;
    let Some((kind, state, attempts, rule, summary, superseded_by, event)) = found.flatten() else {
        return Ok(false);
    };
    let Some(subject) = subject(&event) else { return Ok(false) };
    // A queued (or waiting) job is about the attempt it will make.
    let attempt = if matches!(state.as_str(), "queued" | "waiting") { attempts + 1 } else { attempts };
    let last = db.query_opt(
        "SELECT attempt, state, sha, source, repo, installation FROM report_outbox
         WHERE job_id = ?1 ORDER BY id DESC LIMIT 1",
        args![job],
        |row| {
            Ok((
                row.get::<i64>(0)?,
                row.get::<String>(1)?,
                Subject { sha: row.get(2)?, source: row.get(3)?, repo: row.get(4)?, installation: row.get(5)? },
            ))
        },
    )?;
    let now = now_ms();
    let insert = |attempt: i64,
                  state: &str,
                  on: &Subject,
                  summary: Option<&str>,
                  superseded_by: Option<i64>|
     -> anyhow::Result<()> {
        db.execute(
            "INSERT INTO report_outbox (job_id, attempt, state, kind, source, repo, sha, installation, rule, summary,
                                        superseded_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            args![
                job,
                attempt,
                state,
                kind,
                on.source,
                on.repo,
                on.sha,
                on.installation,
                rule,
                summary,
                superseded_by,
                now
            ],
        )?;
        Ok(())
    };
    if let Some((last_attempt, last_state, last_on)) = &last {
        let open = !FINAL.contains(&last_state.as_str()) && last_state != RETRIED;
        if open && last_on.sha != subject.sha {
            let why = format!("superseded: job {job} runs the newer commit {}", short(&subject.sha));
            insert(*last_attempt, "superseded", last_on, Some(&why), Some(job))?;
        } else if open && *last_attempt != attempt {
            let why = match &summary {
                Some(summary) => {
                    format!("attempt {last_attempt} did not finish ({summary}); attempt {attempt} is queued")
                }
                None => format!("attempt {last_attempt} did not finish; attempt {attempt} is queued"),
            };
            insert(*last_attempt, RETRIED, last_on, Some(&why), None)?;
        } else if *last_attempt == attempt && last_on.sha == subject.sha && *last_state == state {
            return Ok(false);
        }
    }
    let summary = match state.as_str() {
        "queued" | "running" | "waiting" => None,
        _ => summary,
    };
    insert(attempt, &state, &subject, summary.as_deref(), superseded_by)?;
    Ok(true)
}

/// What a stored event (JSON) is about, when it names a commit.
fn subject(event: &str) -> Option<Subject> {
    let event: serde_json::Value = serde_json::from_str(event).ok()?;
    let sha = event["after"].as_str().filter(|sha| !sha.is_empty() && !crate::event::is_null_commit(sha))?;
    Some(Subject {
        sha: sha.to_owned(),
        source: event["source"].as_str()?.to_owned(),
        repo: event["repository"]["full_name"].as_str()?.to_owned(),
        installation: event["installation"].as_i64(),
    })
}

/// The first 7 characters of a commit id.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// Lets go of the rows a stopped process (SQLite: any; PostgreSQL: this node) held, so
/// that they are sent at once rather than when their claim runs out.
pub(super) fn release_claims(db: Db, node: Option<&str>) -> anyhow::Result<()> {
    db.execute(
        "UPDATE report_outbox SET claimed_by = NULL, claim_until = NULL
         WHERE done_at IS NULL AND claimed_by IS NOT NULL AND (CAST(?1 AS TEXT) IS NULL OR claimed_by = ?1)",
        args![node],
    )?;
    Ok(())
}

/// Job `job`'s report rows, oldest first, as the API shows them.
pub(super) fn report_views(db: Db, job: i64) -> anyhow::Result<Vec<ReportView>> {
    db.query(
        "SELECT attempt, state, sha, tries, done_at, outcome FROM report_outbox WHERE job_id = ?1 ORDER BY id",
        args![job],
        |row| {
            Ok(ReportView {
                attempt: row.get(0)?,
                state: row.get(1)?,
                sha: row.get(2)?,
                tries: row.get(3)?,
                done: row.get::<Option<i64>>(4)?.is_some(),
                outcome: row.get(5)?,
            })
        },
    )
}

fn outbox_row(row: &Row) -> anyhow::Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.get(0)?,
        job: row.get(1)?,
        attempt: row.get(2)?,
        state: row.get(3)?,
        kind: row.get(4)?,
        source: row.get(5)?,
        repo: row.get(6)?,
        sha: row.get(7)?,
        installation: row.get::<Option<i64>>(8)?.and_then(|id| u64::try_from(id).ok()),
        rule: row.get(9)?,
        summary: row.get(10)?,
        superseded_by: row.get(11)?,
        tries: row.get(12)?,
        created_at: row.get(13)?,
    })
}

impl Queue {
    /// Notified when report rows may have been added (or became due).
    pub fn report_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.report_wake.clone()
    }

    /// Claims up to `limit` rows to send now, for `lease`: each the oldest unsent row of
    /// its job (a job's reports go out in order, one at a time), due (its backoff over),
    /// and not held by another node's live claim.
    pub async fn claim_reports(&self, limit: usize, lease: Duration) -> anyhow::Result<Vec<OutboxRow>> {
        let node = self.node.clone();
        self.writer
            .call(move |db| {
                let now = now_ms();
                let lock = if db.is_postgres() { " FOR UPDATE OF o SKIP LOCKED" } else { "" };
                let rows = db.query(
                    &format!(
                        "SELECT o.id, o.job_id, o.attempt, o.state, o.kind, o.source, o.repo, o.sha, o.installation,
                                o.rule, o.summary, o.superseded_by, o.tries, o.created_at
                         FROM report_outbox o
                         WHERE o.done_at IS NULL AND o.next_at <= ?1 AND (o.claim_until IS NULL OR o.claim_until < ?1)
                           AND NOT EXISTS (SELECT 1 FROM report_outbox p
                                           WHERE p.job_id = o.job_id AND p.done_at IS NULL AND p.id < o.id)
                         ORDER BY o.id LIMIT ?2{lock}"
                    ),
                    args![now, limit as i64],
                    outbox_row,
                )?;
                let until = now + lease.as_millis() as i64;
                for row in &rows {
                    db.execute(
                        "UPDATE report_outbox SET claimed_by = ?2, claim_until = ?3 WHERE id = ?1",
                        args![row.id, &*node, until],
                    )?;
                }
                Ok(rows)
            })
            .await
    }

    /// Marks row `id` done: `outcome` is `sent`, or why it will not be sent.
    pub async fn report_done(&self, id: i64, outcome: &str) -> anyhow::Result<()> {
        let outcome = outcome.to_owned();
        self.writer
            .call(move |db| {
                db.execute(
                    "UPDATE report_outbox SET done_at = ?2, outcome = ?3, tries = tries + 1, claimed_by = NULL,
                                              claim_until = NULL
                     WHERE id = ?1",
                    args![id, now_ms(), outcome],
                )?;
                Ok(())
            })
            .await?;
        // The job's next row is claimable now.
        self.report_wake.notify_one();
        Ok(())
    }

    /// Records a failed try of row `id` and lets go of it until `retry_at` (Unix ms).
    pub async fn report_later(&self, id: i64, error: &str, retry_at: i64) -> anyhow::Result<()> {
        let error = error.to_owned();
        self.writer
            .call(move |db| {
                db.execute(
                    "UPDATE report_outbox SET tries = tries + 1, next_at = ?2, outcome = ?3, claimed_by = NULL,
                                              claim_until = NULL
                     WHERE id = ?1",
                    args![id, retry_at, error],
                )?;
                Ok(())
            })
            .await
    }

    /// The steps of attempt `attempt` of job `job`, in order.
    pub async fn report_steps(&self, job: i64, attempt: i64) -> anyhow::Result<Vec<ReportStep>> {
        self.writer
            .call(move |db| {
                db.query(
                    "SELECT name, status, summary, output FROM steps WHERE job_id = ?1 AND attempt = ?2 ORDER BY idx",
                    args![job, attempt],
                    |row| {
                        let status: String = row.get(1)?;
                        let output: Option<String> = row.get(3)?;
                        Ok(ReportStep {
                            name: row.get(0)?,
                            status: super::jobs::step_status(&status)?,
                            summary: row.get(2)?,
                            output: output
                                .and_then(|text| serde_json::from_str(&text).ok())
                                .unwrap_or(serde_json::Value::Null),
                        })
                    },
                )
            })
            .await
    }

    /// The GitHub check run job `job`'s attempt `attempt` has on commit `sha`.
    pub async fn check_run(&self, job: i64, attempt: i64, sha: &str) -> anyhow::Result<Option<i64>> {
        let sha = sha.to_owned();
        self.writer
            .call(move |db| {
                db.query_opt(
                    "SELECT run_id FROM report_checks WHERE job_id = ?1 AND attempt = ?2 AND sha = ?3",
                    args![job, attempt, sha],
                    |row| row.get(0),
                )
            })
            .await
    }

    /// Records the GitHub check run job `job`'s attempt `attempt` has on commit `sha`.
    pub async fn set_check_run(&self, job: i64, attempt: i64, sha: &str, run: i64) -> anyhow::Result<()> {
        let sha = sha.to_owned();
        self.writer
            .call(move |db| {
                db.execute(
                    "INSERT INTO report_checks (job_id, attempt, sha, run_id) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (job_id, attempt, sha) DO UPDATE SET run_id = excluded.run_id",
                    args![job, attempt, sha, run],
                )?;
                Ok(())
            })
            .await
    }

    /// Job `job`'s report rows, oldest first.
    pub async fn reports(&self, job: i64) -> anyhow::Result<Vec<ReportView>> {
        self.writer.call(move |db| report_views(db, job)).await
    }

    /// The job that reported on commit `sha` of `repo` through `source` with kind `kind`,
    /// newest first, at most one per rule: (job, rule). What a check suite's re-run
    /// request runs again.
    pub async fn reported_jobs(
        &self,
        source: &str,
        repo: &str,
        sha: &str,
        kind: &str,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let (source, repo, sha, kind) = (source.to_owned(), repo.to_owned(), sha.to_owned(), kind.to_owned());
        self.writer
            .call(move |db| {
                db.query(
                    "SELECT max(job_id), rule FROM report_outbox
                     WHERE source = ?1 AND repo = ?2 AND sha = ?3 AND kind = ?4
                     GROUP BY rule ORDER BY rule",
                    args![source, repo, sha, kind],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .await
    }

    /// Whether job `job` reported on commit `sha` of `repo` through `source` with kind
    /// `kind`, and its rule: what a check run's re-run request must match.
    pub async fn reported_job(
        &self,
        job: i64,
        source: &str,
        repo: &str,
        sha: &str,
        kind: &str,
    ) -> anyhow::Result<Option<String>> {
        let (source, repo, sha, kind) = (source.to_owned(), repo.to_owned(), sha.to_owned(), kind.to_owned());
        self.writer
            .call(move |db| {
                db.query_opt(
                    "SELECT rule FROM report_outbox
                     WHERE job_id = ?1 AND source = ?2 AND repo = ?3 AND sha = ?4 AND kind = ?5 LIMIT 1",
                    args![job, source, repo, sha, kind],
                    |row| row.get(0),
                )
            })
            .await
    }
}
