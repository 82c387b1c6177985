//! The durable queue: deliveries, jobs, step results and log lines in one SQLite file
//! (WAL, `synchronous=FULL`). Accepting a delivery and its jobs is one transaction that
//! has committed before the webhook is answered. Jobs that share a key (rule, repository,
//! ref) never run at once. The SQL lives here; the batching thread in `queue/writer.rs`.

mod history;
mod writer;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;
use writer::Writer;

pub use history::{DeliveryFilter, DeliverySummary, DeliveryView, StoredDelivery};

/// The schema this binary writes; `PRAGMA user_version` records the file's.
const SCHEMA_VERSION: i64 = 2;
/// Migrations, one per version: `MIGRATIONS[n]` takes a file from version n to n + 1.
const MIGRATIONS: &[&str] = &[include_str!("queue/schema.sql"), include_str!("queue/schema_v2.sql")];

/// How much of a refused delivery's body is kept: enough to debug a signature mismatch,
/// not enough for anonymous senders to fill the disk quickly.
pub const REFUSED_BODY_KEPT: usize = 64 * 1024;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed, or could not run.
    Failed,
    /// A step decided the event was not for it.
    Skipped,
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Skipped => "skipped",
        }
    }
}

/// What became of a verified delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// At least one rule matched; jobs were queued.
    Queued,
    /// No rule matched.
    Unmatched,
    /// An event kind gitauto does not act on.
    Ignored,
    /// A forge's ping.
    Ping,
    /// The signature did not verify (401). Queues nothing, claims no delivery id.
    Rejected,
    /// The payload could not be read (400, 415). Queues nothing, claims no delivery id.
    Invalid,
}

impl DeliveryVerdict {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryVerdict::Queued => "queued",
            DeliveryVerdict::Unmatched => "unmatched",
            DeliveryVerdict::Ignored => "ignored",
            DeliveryVerdict::Ping => "ping",
            DeliveryVerdict::Rejected => "rejected",
            DeliveryVerdict::Invalid => "invalid",
        }
    }

    /// Whether the delivery was refused: recorded, but it neither queues work nor counts
    /// for duplicate detection.
    pub fn refused(self) -> bool {
        matches!(self, DeliveryVerdict::Rejected | DeliveryVerdict::Invalid)
    }
}

/// A verified delivery to record.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Delivery id (the forge's, or generated).
    pub id: String,
    /// Source name.
    pub source: String,
    /// Forge name.
    pub forge: String,
    /// The forge's event name.
    pub event: Option<String>,
    /// Headers as a JSON object, without secrets.
    pub headers: serde_json::Value,
    /// The body as received.
    pub body: bytes::Bytes,
    /// What became of it.
    pub verdict: DeliveryVerdict,
    /// Why, for unmatched and ignored deliveries.
    pub reason: Option<String>,
    /// The normalised events as a JSON array (without their payloads).
    pub normalised: Option<String>,
    /// Every rule's verdict, as JSON.
    pub explain: Option<String>,
    /// The stored delivery this one runs again.
    pub redelivery_of: Option<i64>,
}

/// A job to queue for a delivery.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Rule name.
    pub rule: String,
    /// Serialisation key: jobs with equal keys never run at once.
    pub key: String,
    /// Repository full name.
    pub repo: String,
    /// The event's ref.
    pub git_ref: Option<String>,
    /// Which of the delivery's events the job runs on.
    pub event_index: usize,
}

/// The result of accepting a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The delivery id.
    pub delivery: String,
    /// Ids of the jobs queued for it (for a duplicate: the original's).
    pub jobs: Vec<String>,
    /// Whether this delivery id had been accepted before.
    pub duplicate: bool,
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Job id.
    pub id: i64,
    /// Which attempt this is (1 for the first run).
    pub attempt: i64,
    /// Rule name.
    pub rule: String,
    /// The normalised event, JSON, without payload.
    pub normalised: String,
    /// The delivery's forge.
    pub forge: String,
    /// The delivery's content type.
    pub content_type: Option<String>,
    /// The delivery's body, for the event's payload.
    pub body: Vec<u8>,
}

/// One finished step.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// Position in the chain, from 0.
    pub index: usize,
    /// Step name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// `success`, `failure`, `skipped` or `error`.
    pub status: &'static str,
    /// One line.
    pub summary: String,
    /// JSON output, if any.
    pub output: Option<String>,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub finished_at: i64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Job id.
    pub id: String,
    /// State.
    pub state: String,
    /// Rule name.
    pub rule: String,
    /// The delivery that queued it.
    pub delivery: String,
    /// Repository full name.
    pub repo: String,
    /// The event's ref.
    pub git_ref: Option<String>,
    /// Runs so far.
    pub attempts: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// One line about the outcome.
    pub summary: Option<String>,
    /// Why the job failed, when it failed.
    pub error: Option<String>,
    /// Step results of the latest attempt.
    pub steps: Vec<StepView>,
    /// Log lines of the latest attempt.
    pub logs: Vec<LogView>,
}

/// A step result as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Step name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// `success`, `failure`, `skipped` or `error`.
    pub status: String,
    /// One line.
    pub summary: String,
    /// The plugin's output.
    pub output: serde_json::Value,
    /// Milliseconds.
    pub duration_ms: i64,
}

/// A log line as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LogView {
    /// RFC 3339.
    pub at: String,
    /// Step name, or none for the job's own lines.
    pub step: Option<String>,
    /// Level.
    pub level: String,
    /// The line.
    pub message: String,
}

/// An entry of `GET /queue`, in gitreload's shape.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    /// Job id.
    pub id: String,
    /// Repository name (without owner), as gitreload showed it.
    pub repo_name: String,
    /// Clone URL.
    pub repo_url: String,
    /// The rule, where gitreload showed its action.
    pub action: String,
    /// `queued` or `running`.
    pub state: String,
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    writer: Writer,
    path: Arc<PathBuf>,
    wake: Arc<Notify>,
}

impl Queue {
    /// Opens (creating or migrating) the queue in `data_dir`, and re-queues jobs that were
    /// running when the last process stopped.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let path = data_dir.join("gitauto.sqlite");
        let conn = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -32768;",
        )
        .with_context(|| format!("configuring {}", path.display()))?;
        migrate(&conn).with_context(|| format!("migrating {}", path.display()))?;
        let requeued =
            conn.execute("UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'", [])?;
        if requeued > 0 {
            tracing::warn!(requeued, "re-queued jobs that were running when gitauto last stopped");
        }
        let writer = Writer::start(conn, &path).context("starting the queue's database threads")?;
        Ok(Self { writer, path: Arc::new(path), wake: Arc::new(Notify::new()) })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Notified when a job may have become claimable (one was queued, or a key freed).
    pub fn work_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Records a delivery and queues its jobs in one transaction. A delivery id already
    /// accepted for this source is recorded as a duplicate and queues nothing.
    pub async fn accept(&self, delivery: NewDelivery, jobs: Vec<NewJob>) -> anyhow::Result<Accepted> {
        let accepted = self
            .writer
            .call(move |conn| {
                let now = now_ms();
                if delivery.verdict.refused() {
                    insert_delivery(conn, &delivery, delivery.verdict.as_str(), now, None)?;
                    return Ok(Accepted { delivery: delivery.id, jobs: Vec::new(), duplicate: false });
                }
                let original: Option<i64> = conn
                    .prepare_cached(
                        "SELECT seq FROM deliveries
                         WHERE source = ?1 AND id = ?2 AND verdict NOT IN ('duplicate', 'rejected', 'invalid')",
                    )?
                    .query_row(params![delivery.source, delivery.id], |row| row.get(0))
                    .optional()?;
                if let Some(original) = original {
                    insert_delivery(conn, &delivery, "duplicate", now, Some(original))?;
                    let jobs = job_ids_of(conn, original)?;
                    return Ok(Accepted { delivery: delivery.id, jobs, duplicate: true });
                }
                let seq = insert_delivery(conn, &delivery, delivery.verdict.as_str(), now, None)?;
                let mut ids = Vec::with_capacity(jobs.len());
                let mut insert = conn.prepare_cached(
                    "INSERT INTO jobs (delivery_seq, rule, key, repo, git_ref, event_index, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
                )?;
                for job in &jobs {
                    insert.execute(params![
                        seq,
                        job.rule,
                        job.key,
                        job.repo,
                        job.git_ref,
                        job.event_index as i64,
                        now
                    ])?;
                    ids.push(conn.last_insert_rowid().to_string());
                }
                Ok(Accepted { delivery: delivery.id, jobs: ids, duplicate: false })
            })
            .await?;
        if !accepted.jobs.is_empty() && !accepted.duplicate {
            self.wake.notify_waiters();
        }
        Ok(accepted)
    }

    /// Claims the oldest queued job whose key has no running job, marking it running.
    pub async fn claim(&self) -> anyhow::Result<Option<ClaimedJob>> {
        self.writer
            .call(|conn| {
                let job = conn
                    .query_row(
                        "SELECT j.id, j.attempts + 1, j.rule, d.normalised, j.event_index, d.forge, d.headers, d.body
                         FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq
                         WHERE j.state = 'queued'
                           AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.key = j.key AND r.state = 'running')
                         ORDER BY j.id LIMIT 1",
                        [],
                        |row| {
                            let headers: String = row.get(6)?;
                            let events: Option<String> = row.get(3)?;
                            Ok(ClaimedJob {
                                id: row.get(0)?,
                                attempt: row.get(1)?,
                                rule: row.get(2)?,
                                normalised: event_at(events.as_deref(), row.get(4)?),
                                forge: row.get(5)?,
                                content_type: content_type_of(&headers),
                                body: row.get(7)?,
                            })
                        },
                    )
                    .optional()?;
                if let Some(job) = &job {
                    conn.execute(
                        "UPDATE jobs SET state = 'running', attempts = ?2, started_at = ?3, finished_at = NULL,
                                         summary = NULL, error = NULL
                         WHERE id = ?1",
                        params![job.id, job.attempt, now_ms()],
                    )?;
                }
                Ok(job)
            })
            .await
    }

    /// Appends a log line to a job (without waiting for the commit).
    pub fn log(&self, job: i64, attempt: i64, step: Option<&str>, level: &str, message: &str) {
        let (step, level, message) = (step.map(str::to_owned), level.to_owned(), message.to_owned());
        self.writer.detach(move |conn| {
            conn.prepare_cached(
                "INSERT INTO logs (job_id, attempt, step, at, level, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![job, attempt, step, now_ms(), level, message])?;
            Ok(())
        });
    }

    /// Records a finished step.
    pub async fn record_step(&self, job: i64, attempt: i64, step: StepRecord) -> anyhow::Result<()> {
        self.writer
            .call(move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO steps
                        (job_id, idx, attempt, name, plugin, status, summary, output, started_at, finished_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        job,
                        step.index as i64,
                        attempt,
                        step.name,
                        step.plugin,
                        step.status,
                        step.summary,
                        step.output,
                        step.started_at,
                        step.finished_at
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// Ends a job in a final state.
    pub async fn finish(&self, job: i64, state: JobState, summary: &str, error: Option<&str>) -> anyhow::Result<()> {
        let (summary, error) = (summary.to_owned(), error.map(str::to_owned));
        self.writer
            .call(move |conn| {
                conn.execute(
                    "UPDATE jobs SET state = ?2, finished_at = ?3, summary = ?4, error = ?5 WHERE id = ?1",
                    params![job, state.as_str(), now_ms(), summary, error],
                )?;
                Ok(())
            })
            .await?;
        // The job's key is free again: a job queued behind it may run now.
        self.wake.notify_waiters();
        Ok(())
    }

    /// A job with its latest attempt's steps and log lines.
    pub async fn job(&self, id: i64) -> anyhow::Result<Option<JobView>> {
        self.writer.call(move |conn| job_view(conn, id)).await
    }

    /// Queued and running jobs, oldest first.
    pub async fn pending(&self) -> anyhow::Result<Vec<QueueEntry>> {
        self.writer
            .call(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT j.id, j.repo, d.normalised, j.event_index, j.rule, j.state
                     FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq
                     WHERE j.state IN ('queued', 'running') ORDER BY j.id",
                )?;
                let rows = stmt.query_map([], |row| {
                    let repo: String = row.get(1)?;
                    let normalised: Option<String> = row.get(2)?;
                    let event = event_at(normalised.as_deref(), row.get(3)?);
                    let clone_url = serde_json::from_str::<serde_json::Value>(&event)
                        .ok()
                        .and_then(|event| event["repository"]["clone_url"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    Ok(QueueEntry {
                        id: row.get::<_, i64>(0)?.to_string(),
                        repo_name: repo.rsplit('/').next().unwrap_or_default().to_owned(),
                        repo_url: clone_url,
                        action: row.get(4)?,
                        state: row.get(5)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }
}

fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "the queue database has schema version {version}, newer than this gitauto understands \
             ({SCHEMA_VERSION}); run a newer gitauto, or point data_dir elsewhere"
        );
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = from as i64 + 1;
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {to}; COMMIT;"))
            .with_context(|| format!("applying schema migration {from} -> {to}"))?;
    }
    Ok(())
}

fn insert_delivery(
    conn: &Connection,
    delivery: &NewDelivery,
    verdict: &str,
    now: i64,
    duplicate_of: Option<i64>,
) -> anyhow::Result<i64> {
    // Refused deliveries keep only the start of their body.
    let (body, body_size) = if delivery.verdict.refused() && delivery.body.len() > REFUSED_BODY_KEPT {
        (&delivery.body[..REFUSED_BODY_KEPT], Some(delivery.body.len() as i64))
    } else {
        (&delivery.body[..], None)
    };
    conn.prepare_cached(
        "INSERT INTO deliveries
            (id, source, forge, event, received_at, headers, body, verdict, reason, normalised, explain, duplicate_of,
             body_size, redelivery_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        delivery.id,
        delivery.source,
        delivery.forge,
        delivery.event,
        now,
        delivery.headers.to_string(),
        body,
        verdict,
        delivery.reason,
        delivery.normalised,
        delivery.explain,
        duplicate_of,
        body_size,
        delivery.redelivery_of
    ])?;
    Ok(conn.last_insert_rowid())
}

fn job_ids_of(conn: &Connection, delivery_seq: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM jobs WHERE delivery_seq = ?1 ORDER BY id")?;
    let ids = stmt.query_map([delivery_seq], |row| row.get::<_, i64>(0))?;
    ids.map(|id| id.map(|id| id.to_string())).collect()
}

fn job_view(conn: &Connection, id: i64) -> anyhow::Result<Option<JobView>> {
    let job = conn
        .query_row(
            "SELECT j.id, j.state, j.rule, d.id, j.repo, j.git_ref, j.attempts, j.created_at, j.started_at,
                    j.finished_at, j.summary, j.error
             FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq WHERE j.id = ?1",
            [id],
            |row| {
                Ok(JobView {
                    id: row.get::<_, i64>(0)?.to_string(),
                    state: row.get(1)?,
                    rule: row.get(2)?,
                    delivery: row.get(3)?,
                    repo: row.get(4)?,
                    git_ref: row.get(5)?,
                    attempts: row.get(6)?,
                    created_at: rfc3339(row.get(7)?),
                    started_at: row.get::<_, Option<i64>>(8)?.map(rfc3339),
                    finished_at: row.get::<_, Option<i64>>(9)?.map(rfc3339),
                    summary: row.get(10)?,
                    error: row.get(11)?,
                    steps: Vec::new(),
                    logs: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut job) = job else { return Ok(None) };
    let mut steps = conn.prepare_cached(
        "SELECT name, plugin, status, summary, output, finished_at - started_at
         FROM steps WHERE job_id = ?1 AND attempt = ?2 ORDER BY idx",
    )?;
    job.steps = steps
        .query_map(params![id, job.attempts], |row| {
            let output: Option<String> = row.get(4)?;
            Ok(StepView {
                name: row.get(0)?,
                plugin: row.get(1)?,
                status: row.get(2)?,
                summary: row.get(3)?,
                output: output.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(serde_json::Value::Null),
                duration_ms: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut logs = conn
        .prepare_cached("SELECT at, step, level, message FROM logs WHERE job_id = ?1 AND attempt = ?2 ORDER BY seq")?;
    job.logs = logs
        .query_map(params![id, job.attempts], |row| {
            Ok(LogView { at: rfc3339(row.get(0)?), step: row.get(1)?, level: row.get(2)?, message: row.get(3)? })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(job))
}

/// Event `index` of a delivery's stored events, as JSON text: version 2 rows hold a
/// list, version 1 rows a single event.
fn event_at(events: Option<&str>, index: i64) -> String {
    let Some(text) = events else { return String::new() };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(mut list)) => usize::try_from(index)
            .ok()
            .filter(|i| *i < list.len())
            .map(|i| list.swap_remove(i).to_string())
            .unwrap_or_default(),
        _ => text.to_owned(),
    }
}

fn content_type_of(headers_json: &str) -> Option<String> {
    let headers: serde_json::Value = serde_json::from_str(headers_json).ok()?;
    headers.get("content-type")?.as_str().map(str::to_owned)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .expect("the format has only fields a UTC time has")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str) -> NewDelivery {
        NewDelivery {
            id: id.into(),
            source: "github".into(),
            forge: "github".into(),
            event: Some("push".into()),
            headers: serde_json::json!({"content-type": "application/json"}),
            body: bytes::Bytes::from_static(b"{}"),
            verdict: DeliveryVerdict::Queued,
            reason: None,
            normalised: Some(r#"[{"repository":{"clone_url":"file:///x/widgets.git"}}]"#.into()),
            explain: None,
            redelivery_of: None,
        }
    }

    fn job(key: &str) -> NewJob {
        NewJob {
            rule: "r".into(),
            key: key.into(),
            repo: "acme/widgets".into(),
            git_ref: Some("refs/heads/main".into()),
            event_index: 0,
        }
    }

    #[tokio::test]
    async fn accepted_work_survives_reopening_and_running_jobs_are_requeued() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = Queue::open(dir.path()).unwrap();
            let accepted = queue.accept(delivery("d1"), vec![job("k1"), job("k2")]).await.unwrap();
            assert_eq!(accepted.jobs.len(), 2);
            let claimed = queue.claim().await.unwrap().unwrap();
            assert_eq!((claimed.attempt, claimed.content_type.as_deref()), (1, Some("application/json")));
        }
        let queue = Queue::open(dir.path()).unwrap();
        let first = queue.claim().await.unwrap().unwrap();
        assert_eq!(first.attempt, 2, "the interrupted job runs again, attempt counted");
        let second = queue.claim().await.unwrap().unwrap();
        assert_ne!(first.id, second.id);
        assert!(queue.claim().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn duplicate_delivery_queues_nothing_and_returns_the_original_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        let first = queue.accept(delivery("same"), vec![job("k")]).await.unwrap();
        let again = queue.accept(delivery("same"), vec![job("k")]).await.unwrap();
        assert!(again.duplicate && !first.duplicate);
        assert_eq!(again.jobs, first.jobs);
        assert_eq!(queue.pending().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn jobs_with_one_key_never_run_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        queue.accept(delivery("a"), vec![job("same")]).await.unwrap();
        queue.accept(delivery("b"), vec![job("same")]).await.unwrap();
        queue.accept(delivery("c"), vec![job("other")]).await.unwrap();
        let one = queue.claim().await.unwrap().unwrap();
        let other = queue.claim().await.unwrap().unwrap();
        assert_eq!(other.id, one.id + 2, "the second `same` job waits; `other` runs");
        assert!(queue.claim().await.unwrap().is_none());
        queue.finish(one.id, JobState::Succeeded, "ok", None).await.unwrap();
        assert_eq!(queue.claim().await.unwrap().unwrap().id, one.id + 1);
    }

    #[tokio::test]
    async fn job_view_has_steps_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        queue.accept(delivery("d"), vec![job("k")]).await.unwrap();
        let claimed = queue.claim().await.unwrap().unwrap();
        queue.log(claimed.id, 1, Some("s"), "info", "hello");
        let step = StepRecord {
            index: 0,
            name: "s".into(),
            plugin: "p".into(),
            status: "success",
            summary: "did it".into(),
            output: Some(r#"{"new":"abc"}"#.into()),
            started_at: 1000,
            finished_at: 1250,
        };
        queue.record_step(claimed.id, 1, step).await.unwrap();
        queue.finish(claimed.id, JobState::Succeeded, "did it", None).await.unwrap();
        let view = queue.job(claimed.id).await.unwrap().unwrap();
        assert_eq!((view.state.as_str(), view.delivery.as_str(), view.attempts), ("succeeded", "d", 1));
        assert_eq!(view.steps[0].output["new"], "abc");
        assert_eq!(view.steps[0].duration_ms, 250);
        assert_eq!(view.logs[0].message, "hello");
        assert!(queue.job(999).await.unwrap().is_none());
        assert_eq!(queue.pending().await.unwrap().len(), 0);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("gitauto.sqlite")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = Queue::open(dir.path()).err().unwrap();
        assert!(format!("{err:#}").contains("schema version 99, newer than this gitauto"), "{err:#}");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
