//! The durable queue: deliveries, jobs, step results and log lines in one SQLite file
//! (WAL, `synchronous=FULL`). Accepting a delivery and its jobs is one transaction that
//! has committed before the webhook is answered. Jobs that share a key (rule, repository,
//! ref) never run at once; jobs that share a coalescing key have at most one queued.
//!
//! [`Queue`]'s methods are the store interface the server and the workers use; nothing
//! outside this module sees SQL. Here: accepting deliveries (with coalescing) and
//! migrations; `jobs.rs` a job's life and views, `history.rs` the delivery record,
//! `nodes.rs` the daemons sharing the store, `requeue.rs` putting running jobs back in
//! line (crash recovery, leases, shutdown, retries), `flow.rs` paused rules and the
//! concurrency and priority queued jobs carry, `polled.rs` what ref polling and catch-up
//! look up, `kv.rs` plugins' key-value stores, `ticks.rs` schedule ticks, `waiting.rs` releasing jobs held for an approval, `retention.rs` pruning, `writer.rs` the thread that
//! batches commits.

mod accept_pg;
mod body;
pub mod copy;
mod db;
mod flow;
mod history;
mod jobs;
pub mod kv;
mod nodes;
pub mod pg_connect;
mod polled;
mod reports;
mod requeue;
mod retention;
pub mod stats;
mod ticks;
mod waiting;
mod wake;
mod writer;

pub use accept_pg::DEFAULT_CONNECTIONS;

use anyhow::Context;
use db::{Db, args};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;
use writer::Writer;
pub use writer::{BATCH_BUCKETS, CommitBatches};

use crate::node::RunOn;
use crate::step::StepStatus;

pub use body::StoredBody;
pub use flow::{FlowLimits, Paused, RuleLoad};
pub use history::{DeliveryFilter, DeliverySummary, DeliveryView, JobLink, StoredDelivery};
pub use jobs::{Cancelled, JobFilter, JobSummary, Retried};
pub use polled::PolledState;
pub use reports::{OutboxRow, RETRIED, ReportStep, ReportView};
pub use requeue::{Recovered, Requeued};
pub use retention::{Pruned, Retention};
pub use ticks::TickClaim;
pub use waiting::{Approval, Released};

/// The schema this binary writes; `PRAGMA user_version` records the file's.
const SCHEMA_VERSION: i64 = 17;
/// Migrations, one per version: `MIGRATIONS[n]` takes a file from version n to n + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("queue/schema.sql"),
    include_str!("queue/schema_v2.sql"),
    include_str!("queue/schema_v3.sql"),
    include_str!("queue/schema_v4.sql"),
    include_str!("queue/schema_v5.sql"),
    include_str!("queue/schema_v6.sql"),
    include_str!("queue/schema_v7.sql"),
    include_str!("queue/schema_v8.sql"),
    include_str!("queue/schema_v9.sql"),
    include_str!("queue/schema_v10.sql"),
    include_str!("queue/schema_v11.sql"),
    include_str!("queue/schema_v12.sql"),
    include_str!("queue/schema_v13.sql"),
    include_str!("queue/schema_v14.sql"),
    include_str!("queue/schema_v15.sql"),
    include_str!("queue/schema_v16.sql"),
    include_str!("queue/schema_v17.sql"),
];

/// How much of a refused delivery's body is kept: enough to debug a signature mismatch,
/// not enough for anonymous senders to fill the disk quickly.
pub const REFUSED_BODY_KEPT: usize = 64 * 1024;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Held for an approval: a pull request from a fork matched a rule with
    /// `forks = "approve"`. Never claimed; an `/ok-to-test` for its head commit from
    /// someone with write permission queues it (see `gate`).
    Waiting,
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
    /// Cancelled before it ran, or between its steps.
    Cancelled,
    /// Failed on every attempt its retries allowed.
    Dead,
    /// Put back in line while a queued job of its coalescing key waited: that job carries
    /// its deliveries and runs with the newer event (`superseded_by` names it).
    Superseded,
    /// Set aside: it could not be put back in line after its node stopped. It waits for
    /// an operator (`gitauto retry` runs it again); nothing else waits on it.
    Quarantined,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 10] = [
        JobState::Waiting,
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Skipped,
        JobState::Cancelled,
        JobState::Dead,
        JobState::Superseded,
        JobState::Quarantined,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Skipped => "skipped",
            JobState::Cancelled => "cancelled",
            JobState::Dead => "dead",
            JobState::Superseded => "superseded",
            JobState::Quarantined => "quarantined",
        }
    }

    /// The state called `name`.
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == name)
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
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
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
    /// Headers as the text of a JSON object, without secrets (built where the request is
    /// read, so the queue's writer only copies it).
    pub headers: String,
    /// The body, as it is stored (compressed where that saves room).
    pub body: StoredBody,
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
    /// How it arrived (`webhook`, `redelivery`, `manual`, `compat`, `schedule`,
    /// `catch-up`, `poll`).
    pub arrived: &'static str,
    /// The repository of its first event (full name), for lists and their filter.
    pub repo: Option<String>,
    /// The ref of its first event.
    pub git_ref: Option<String>,
    /// Its trace context (a W3C `traceparent`) when telemetry is on: the jobs it queues
    /// continue this trace.
    pub trace: Option<String>,
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
    /// Coalescing key: a queued job with the same key takes this event instead.
    pub coalesce_key: Option<String>,
    /// Runs allowed in all (1 + retries).
    pub max_attempts: i64,
    /// The rule's `quiet_period` in milliseconds (0: run as soon as a worker is free).
    pub quiet_ms: i64,
    /// Where it runs: one job for any node, or one per node (`every` live node, or the
    /// named ones), each with the node in its keys.
    pub run_on: RunOn,
    /// The rule's `concurrency`: at most this many of its jobs run at once, across every
    /// node (`None`: no limit).
    pub concurrency: Option<i64>,
    /// The rule's `priority`: among claimable jobs, higher runs first.
    pub priority: i64,
    /// The rule's `report`: each transition of the job adds a row to the report outbox.
    pub report: Option<crate::config::ReportKind>,
    /// Whether it waits for an approval (state `waiting`) instead of being queued. It
    /// coalesces only with another waiting job, never into a queued one: an approved
    /// job must not take a newer, unapproved event.
    pub waiting: bool,
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
    /// How many of `jobs` were already queued and took this delivery's event instead.
    pub coalesced: usize,
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Job id.
    pub id: i64,
    /// Which attempt this is (1 for the first run).
    pub attempt: i64,
    /// Runs allowed in all.
    pub max_attempts: i64,
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
    /// The stored delivery it runs with (ordering: an approval releases only jobs whose
    /// event arrived before it).
    pub delivery_seq: i64,
    /// The head commit an `/ok-to-test` released the job for, if one did.
    pub approved_head: Option<String>,
    /// The W3C `traceparent` of the delivery it runs with (the last one coalesced into
    /// it), when that delivery was traced: the job's span is its child.
    pub trace: Option<String>,
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
    /// How it ended.
    pub status: StepStatus,
    /// One line.
    pub summary: String,
    /// JSON output, if any.
    pub output: Option<String>,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub finished_at: i64,
    /// What it cost, when the plugin ran.
    pub bill: Option<crate::step::StepBill>,
    /// The SHA-256 (hex) of the component its plugin was loaded from, when it was loaded.
    pub plugin_digest: Option<String>,
    /// Who signed that component (`minisign KEYID (KEY SOURCE)`), when it was verified.
    pub plugin_signer: Option<String>,
}

/// A job as the API shows it (and the CLI reads it back).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Runs allowed in all (1 + retries).
    pub max_attempts: i64,
    /// When the next attempt may start (a retry waiting out its backoff).
    pub not_before: Option<String>,
    /// Whether a cancel was requested while it ran.
    pub cancel_requested: bool,
    /// The node it must run on (none: any node).
    pub node: Option<String>,
    /// The node that ran it (last).
    pub ran_on: Option<String>,
    /// The job that carries its deliveries now, when it was superseded.
    pub superseded_by: Option<String>,
    /// Delivery ids it carries, oldest first: the one that queued it, then every one it
    /// absorbed by coalescing. It runs with the newest one's event.
    pub deliveries: Vec<String>,
    /// The record's sequence numbers of those deliveries, in the same order (unique,
    /// unlike delivery ids, which may repeat across sources).
    pub delivery_seqs: Vec<i64>,
    /// The event it runs with (without payload).
    pub event: serde_json::Value,
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
    /// What the job told the forge (its rule's `report`), oldest first, with what became
    /// of each report: `sent`, the forge's refusal, or the last failure while it waits.
    #[serde(default)]
    pub reports: Vec<ReportView>,
}

/// A step result as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    /// Step name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// How it ended (`success`, `failure`, `skipped` or `error` in JSON).
    pub status: StepStatus,
    /// One line.
    pub summary: String,
    /// The plugin's output.
    pub output: serde_json::Value,
    /// Milliseconds.
    pub duration_ms: i64,
    /// What it cost, when the plugin ran (steps recorded before version 16 have none).
    #[serde(default)]
    pub bill: Option<crate::step::StepBill>,
    /// The SHA-256 (hex) of the component the step's plugin was loaded from (steps
    /// recorded before version 17 have none).
    #[serde(default)]
    pub plugin_digest: Option<String>,
    /// Who signed that component, `minisign KEYID (KEY SOURCE)`, when the config asked for
    /// a signature and it was verified before the plugin was compiled.
    #[serde(default)]
    pub plugin_signer: Option<String>,
}

/// A log line as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogView {
    /// Position among all log lines (for resuming a stream).
    pub seq: i64,
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
    /// Where the queue is: the SQLite file, or the PostgreSQL URL without its password.
    location: Arc<str>,
    wake: Arc<wake::Wake>,
    /// On PostgreSQL: the connections that accept deliveries, a group per statement.
    accepting: Option<Arc<accept_pg::Pool>>,
    /// Notified when report rows were added or became claimable (the reporter waits on it).
    report_wake: Arc<Notify>,
    /// The node this daemon is: it claims jobs for any node and for itself.
    node: Arc<str>,
    /// The dashboard's aggregates, served again while fresh.
    stats_cache: Arc<stats::Cache>,
    /// On SQLite (whose one writer is this process's): what each key-value store holds at
    /// most, so that most writes are checked against its bounds without counting it.
    kv_usage: Option<Arc<kv::Usage>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("location", &self.location).field("node", &self.node).finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens the queue in `data_dir` as the node named after this host.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_as(data_dir, &crate::node::default_name())
    }

    /// Opens (creating or migrating) the queue in `data_dir` as node `node`, and re-queues
    /// jobs that were running when the last process stopped.
    #[allow(clippy::disallowed_methods, reason = "start-up: the queue opens before the daemon serves anything")]
    pub fn open_as(data_dir: &Path, node: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
        // SQLite's own messages ("unable to open database file") do not say why.
        let probe = data_dir.join(".gitauto-write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(|| format!("the data directory {} is not writable", data_dir.display()))?;
        let path = data_dir.join("gitauto.sqlite");
        // What to do when the file itself is the problem (what is in it never is: see below).
        let unreadable = || {
            format!(
                "the queue database {} cannot be read; restore it from a backup, or move it (with its -wal \
                 and -shm files) away to start with an empty queue",
                path.display()
            )
        };
        let conn = Connection::open(&path).with_context(unreadable)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -32768;",
        )
        .with_context(unreadable)?;
        migrate(&conn).with_context(|| format!("migrating {}", path.display()))?;
        // Also the first write of every start: a read-only disk is named here.
        // One process at a time serves from a SQLite file, so whatever runs here was left
        // by an earlier one, whichever node name it had.
        recover_at_start(Db::Sqlite(&conn), requeue::Running::All).with_context(|| {
            format!(
                "writing to {}; a full or read-only disk needs room or a writable mount, a damaged file a \
                 backup (or move it, with its -wal and -shm files, away to start with an empty queue)",
                path.display()
            )
        })?;
        let writer = Writer::start(conn, &path).context("starting the queue's database threads")?;
        Ok(Self {
            writer,
            location: Arc::from(path.display().to_string()),
            wake: Arc::new(wake::Wake::local()),
            accepting: None,
            report_wake: Arc::new(Notify::new()),
            stats_cache: Arc::new(stats::Cache::new()),
            kv_usage: Some(Arc::default()),
            node: Arc::from(node),
        })
    }

    /// Connects to the PostgreSQL queue at `url` as node `node`, creating or migrating its
    /// tables (one daemon at a time, under an advisory lock, so that daemons starting
    /// together do not race), and re-queues this node's jobs that were running when its
    /// last process stopped. Several daemons may share it. Deliveries are accepted over
    /// [`DEFAULT_CONNECTIONS`] connections.
    pub fn open_postgres(url: &str, node: &str) -> anyhow::Result<Self> {
        Self::open_postgres_with(url, node, DEFAULT_CONNECTIONS)
    }

    /// [`Queue::open_postgres`] with `connections` connections accepting deliveries
    /// (`[store] connections`), besides the one for everything else and the one that
    /// listens for other nodes' work.
    pub fn open_postgres_with(url: &str, node: &str, connections: usize) -> anyhow::Result<Self> {
        let location = redacted(url);
        let this = node.to_owned();
        let writer = Writer::start_postgres(url.to_owned(), move |db| {
            migrate_postgres(db)?;
            recover_at_start(db, requeue::Running::On(&this)).context("putting this node's running jobs back in line")
        })
        .with_context(|| format!("opening the queue at {location}"))?;
        let node: Arc<str> = Arc::from(node);
        let accepting = accept_pg::Pool::start(url, node.clone(), connections)
            .with_context(|| format!("opening the queue at {location}"))?;
        let wake = Arc::new(wake::Wake::shared(writer.clone(), node.clone()));
        wake::listen(url.to_owned(), node.clone(), Arc::downgrade(&wake), accepting.closed())
            .context("starting the thread that listens for other nodes' work")?;
        Ok(Self {
            writer,
            location: Arc::from(location),
            wake,
            accepting: Some(Arc::new(accepting)),
            report_wake: Arc::new(Notify::new()),
            stats_cache: Arc::new(stats::Cache::new()),
            kv_usage: None,
            node,
        })
    }

    /// Commits what was submitted, then closes the database files; later calls fail.
    /// The daemon's last act, so that nothing holds the data directory afterwards.
    pub async fn close(&self) {
        if let Some(accepting) = &self.accepting {
            accepting.close().await;
        }
        self.writer.close().await;
    }

    /// Whether the queue was closed (the daemon is stopping).
    pub fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }

    /// The node this queue claims for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where the queue is: the SQLite file, or the PostgreSQL URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Notified when a job may have become claimable (one was queued, or a key freed).
    pub fn work_signal(&self) -> Arc<Notify> {
        self.wake.signal()
    }

    /// How many times another node's notification woke this daemon's workers.
    pub fn wakeups_from_others(&self) -> u64 {
        self.wake.woken_by_others()
    }

    /// Records a delivery and queues its jobs in one transaction. A delivery id already
    /// accepted for this source is recorded as a duplicate and queues nothing.
    pub async fn accept(&self, delivery: NewDelivery, jobs: Vec<NewJob>) -> anyhow::Result<Accepted> {
        let accepted = match &self.accepting {
            // PostgreSQL: a group of deliveries per statement; the other nodes are notified.
            Some(accepting) => accepting.accept(delivery, jobs).await?,
            None => {
                let node = self.node.clone();
                // Repeatable: the batch it shares runs it without a savepoint of its own (see writer.rs).
                self.writer.call_repeatable(move |db| accept_in(db, &delivery, &jobs, &node)).await?
            }
        };
        if !accepted.jobs.is_empty() && !accepted.duplicate {
            self.wake.notify_here();
            self.report_wake.notify_one();
        }
        Ok(accepted)
    }
}

/// Records a delivery and queues its jobs (on node `node` when they run on this one), in
/// the caller's transaction: [`Queue::accept`].
fn accept_in(db: Db, delivery: &NewDelivery, jobs: &[NewJob], node: &str) -> anyhow::Result<Accepted> {
    let now = now_ms();
    let id = || delivery.id.clone();
    if delivery.verdict.refused() {
        insert_delivery(db, delivery, delivery.verdict.as_str(), now, None)?;
        return Ok(Accepted { delivery: id(), jobs: Vec::new(), duplicate: false, coalesced: 0 });
    }
    // The unique index on (source, id) decides: no row back means a duplicate.
    let Some(seq) = insert_first(db, delivery, now)? else {
        let original: i64 = db.query_one(
            "SELECT seq FROM deliveries
             WHERE source = ?1 AND id = ?2 AND verdict NOT IN ('duplicate', 'rejected', 'invalid')",
            args![delivery.source, delivery.id],
            |row| row.get(0),
        )?;
        insert_delivery(db, delivery, "duplicate", now, Some(original))?;
        let jobs = job_ids_of(db, original)?;
        return Ok(Accepted { delivery: id(), jobs, duplicate: true, coalesced: 0 });
    };
    let mut ids = Vec::with_capacity(jobs.len());
    let mut coalesced = 0;
    for job in jobs {
        for target in targets(db, &job.run_on, node, now)? {
            let (id, absorbed) = queue_job(db, seq, job, target.as_deref(), now)?;
            coalesced += usize::from(absorbed);
            ids.push(id.to_string());
        }
    }
    Ok(Accepted { delivery: id(), jobs: ids, duplicate: false, coalesced })
}

/// Puts back in line the jobs `which` selects (those a stopped process left running), in a
/// transaction of its own, and names the jobs set aside now or before. What is in the queue
/// never fails a start: a job that cannot be put back is set aside; only the store failing
/// does.
fn recover_at_start(db: Db, which: requeue::Running) -> anyhow::Result<()> {
    let (recovered, set_aside) = requeue::in_transaction(db, || {
        let recovered = requeue::requeue_running(db, which, "gitauto stopped while it ran")?;
        reports::release_claims(
            db,
            match which {
                requeue::Running::On(node) => Some(node),
                _ => None,
            },
        )?;
        let set_aside: Vec<i64> =
            db.query("SELECT id FROM jobs WHERE state = 'quarantined' ORDER BY id", args![], |row| row.get(0))?;
        Ok((recovered, set_aside))
    })?;
    recovered.log("at start-up");
    if !set_aside.is_empty() {
        tracing::warn!(
            jobs = ?set_aside,
            "{} jobs are set aside (state quarantined) and wait for an operator: `gitauto retry ID` runs one again",
            set_aside.len()
        );
    }
    Ok(())
}

/// The nodes a job is queued for: `None` for any node; for `every`, each live node (the
/// accepting node is live: it is serving this request); or the named ones.
fn targets(db: Db, run_on: &RunOn, this: &str, now: i64) -> anyhow::Result<Vec<Option<String>>> {
    Ok(match run_on {
        RunOn::Any => vec![None],
        RunOn::Every => {
            let live_since = now - crate::node::LIVE_WITHIN.as_millis() as i64;
            db.query(
                "SELECT name FROM nodes WHERE heartbeat_at >= ?1 AND stopped_at IS NULL
                 UNION SELECT CAST(?2 AS TEXT) ORDER BY 1",
                args![live_since, this],
                |row| row.get(0).map(Some),
            )?
        }
        RunOn::Nodes(names) => names.iter().cloned().map(Some).collect(),
    })
}

/// Queues `job` for delivery `seq` (on `node`, when it must run on one), or, when a job
/// with its coalescing key is already queued, hands that job this newer event (it keeps
/// its place in line). Returns the job's id and whether it was an existing one.
fn queue_job(db: Db, seq: i64, job: &NewJob, node: Option<&str>, now: i64) -> anyhow::Result<(i64, bool)> {
    // A job meant for one node is serialised and coalesced with that node's jobs only.
    let on_node = |key: &str| match node {
        Some(node) => format!("{key}\n@{node}"),
        None => key.to_owned(),
    };
    let key = on_node(&job.key);
    let coalesce_key = job.coalesce_key.as_deref().map(on_node);
    let state = if job.waiting { JobState::Waiting } else { JobState::Queued }.as_str();
    let existing: Option<i64> = match &coalesce_key {
        Some(key) => {
            db.query_opt("SELECT id FROM jobs WHERE coalesce_key = ?1 AND state = ?2", args![key, state], |row| {
                row.get(0)
            })?
        }
        None => None,
    };
    let event_index = job.event_index as i64;
    let coalesced = match (existing, &coalesce_key) {
        (Some(id), Some(key)) => coalesce_into(db, id, (state, key), seq, job, now)?,
        _ => false,
    };
    let id = match existing {
        Some(id) if coalesced => id,
        _ => insert_job(db, seq, job, (&key, coalesce_key.as_deref(), node), state, now)?,
    };
    db.execute(
        "INSERT INTO job_deliveries (job_id, delivery_seq, event_index, at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
        args![id, seq, event_index, now],
    )?;
    // The job's report: queued, or, for a coalesced job now carrying a newer commit, that
    // the older one was superseded. A new job reports when its rule does; a coalesced one
    // when it was queued to (under an earlier config, perhaps): `note` looks.
    if job.report.is_some() || coalesced {
        reports::note(db, id)?;
    }
    Ok((id, coalesced))
}

/// Hands job `id` the newer event of delivery `seq`, while it still has the state and
/// coalescing key (`found`) it was found with: on PostgreSQL another daemon may have
/// released it from waiting (or started it) since the look, and a released job must not
/// take a newer, unapproved event. Whether it did; when not, the caller makes a new job.
fn coalesce_into(db: Db, id: i64, found: (&str, &str), seq: i64, job: &NewJob, now: i64) -> anyhow::Result<bool> {
    let (state, key) = found;
    // A quiet period starts again, but never past ten of them after the job was queued.
    let updated = db.execute(
        // The event only moves forward: on PostgreSQL an older delivery accepted on another
        // connection may commit after a newer one (every right-hand side reads the old row).
        "UPDATE jobs SET delivery_seq = CASE WHEN delivery_seq < ?2 THEN ?2 ELSE delivery_seq END,
                event_index = CASE WHEN delivery_seq <= ?2 THEN ?3 ELSE event_index END,
                git_ref = CASE WHEN delivery_seq <= ?2 THEN ?4 ELSE git_ref END, max_attempts = ?5,
                not_before = CASE WHEN CAST(?7 AS BIGINT) > 0 THEN
                    CASE WHEN CAST(?6 AS BIGINT) + ?7 < created_at + 10 * ?7 THEN CAST(?6 AS BIGINT) + ?7
                         ELSE created_at + 10 * ?7 END
                ELSE not_before END,
                concurrency = ?8, priority = ?9
         WHERE id = ?1 AND state = ?10 AND coalesce_key = ?11",
        args![
            id,
            seq,
            job.event_index as i64,
            job.git_ref,
            job.max_attempts,
            now,
            job.quiet_ms,
            job.concurrency,
            job.priority,
            state,
            key
        ],
    )?;
    Ok(updated == 1)
}

/// Inserts `job` as a new row for delivery `seq` in `state`, with its key, coalescing key
/// and node as `placed`; returns its id.
fn insert_job(
    db: Db,
    seq: i64,
    job: &NewJob,
    placed: (&str, Option<&str>, Option<&str>),
    state: &str,
    now: i64,
) -> anyhow::Result<i64> {
    let (key, coalesce_key, node) = placed;
    let event_index = job.event_index as i64;
    db.query_one(
        "INSERT INTO jobs (delivery_seq, rule, key, repo, git_ref, event_index, coalesce_key, max_attempts,
                           state, created_at, not_before, node, concurrency, priority, report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?14, ?9,
                 CASE WHEN CAST(?10 AS BIGINT) > 0 THEN CAST(?9 AS BIGINT) + CAST(?10 AS BIGINT) END, ?11, ?12, ?13,
                 ?15)
         RETURNING id",
        args![
            seq,
            job.rule,
            key,
            job.repo,
            job.git_ref,
            event_index,
            coalesce_key,
            job.max_attempts,
            now,
            job.quiet_ms,
            node,
            job.concurrency,
            job.priority,
            state,
            job.report.map(crate::config::ReportKind::as_str)
        ],
        |row| row.get(0),
    )
}

/// The PostgreSQL schema's version; `gitauto_schema` records the database's.
const POSTGRES_SCHEMA_VERSION: i64 = 14;
/// PostgreSQL migrations: `POSTGRES_MIGRATIONS[n]` takes a database from version n to
/// n + 1 (version 0: empty).
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("queue/postgres.sql"),
    include_str!("queue/postgres_v2.sql"),
    include_str!("queue/postgres_v3.sql"),
    include_str!("queue/postgres_v4.sql"),
    include_str!("queue/postgres_v5.sql"),
    include_str!("queue/postgres_v6.sql"),
    include_str!("queue/postgres_v7.sql"),
    include_str!("queue/postgres_v8.sql"),
    include_str!("queue/postgres_v9.sql"),
    include_str!("queue/postgres_v10.sql"),
    include_str!("queue/postgres_v11.sql"),
    include_str!("queue/postgres_v12.sql"),
    include_str!("queue/postgres_v13.sql"),
    include_str!("queue/postgres_v14.sql"),
];

/// Creates the tables on an empty database, under a transaction-wide advisory lock so that
/// daemons starting together wait for the first one instead of racing it.
fn migrate_postgres(db: Db) -> anyhow::Result<()> {
    db.batch(
        "BEGIN;
         SELECT pg_advisory_xact_lock(4707650677207403);
         CREATE TABLE IF NOT EXISTS gitauto_schema (version BIGINT NOT NULL);",
    )?;
    let version: Option<i64> = db.query_one("SELECT max(version) FROM gitauto_schema", args![], |row| row.get(0))?;
    let migrated = match version.unwrap_or(0) {
        version if version > POSTGRES_SCHEMA_VERSION => Err(anyhow::anyhow!(
            "the queue database has schema version {version}, newer than this gitauto understands \
             ({POSTGRES_SCHEMA_VERSION}); run a newer gitauto"
        )),
        version => POSTGRES_MIGRATIONS.iter().enumerate().skip(version as usize).try_for_each(|(from, sql)| {
            db.batch(&format!("{sql}; INSERT INTO gitauto_schema (version) VALUES ({});", from + 1))
                .with_context(|| format!("applying schema migration {from} -> {}", from + 1))
        }),
    };
    match migrated {
        Ok(()) => db.batch("COMMIT"),
        Err(err) => {
            let _ = db.batch("ROLLBACK");
            Err(err.context("creating the queue's tables"))
        }
    }
}

/// `url` without its password, for messages and logs: the user part's password and every
/// `password` parameter (its key percent-encoded or not) are left out. Where the URL is
/// ambiguous (a raw `?`, `&` or `@` in a password) this takes out more, never less.
pub(crate) fn redacted(url: &str) -> String {
    // Parameters first: a `password` value may hold the `@` the user part is cut at. Any
    // `?` or `&` may open a parameter, the ones inside a password included.
    let mut kept = String::with_capacity(url.len());
    // The delimiter a left-out parameter took with it, for the next one kept.
    let mut opener = None;
    let mut rest = url;
    let mut delimiter = None;
    loop {
        let end = rest.find(['?', '&']).unwrap_or(rest.len());
        let token = &rest[..end];
        let key = percent_encoding::percent_decode_str(token.split('=').next().unwrap_or_default()).decode_utf8_lossy();
        if delimiter.is_some() && token.contains('=') && key.eq_ignore_ascii_case("password") {
            opener = opener.or(delimiter.filter(|&c| c == '?'));
        } else {
            if let Some(c) = delimiter {
                kept.push(opener.take().unwrap_or(c));
            }
            kept.push_str(token);
        }
        let Some(c) = rest[end..].chars().next() else { break };
        delimiter = Some(c);
        rest = &rest[end + 1..];
    }
    match (kept.find("://"), kept.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &kept[scheme + 3..at];
            let user = credentials.split([':', '@', '/', '?', '&']).next().unwrap_or_default();
            format!("{}{user}{}", &kept[..scheme + 3], &kept[at..])
        }
        _ => kept,
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

/// The statement that records a delivery, before its conflict clause.
macro_rules! insert_delivery_sql {
    () => {
        "INSERT INTO deliveries
            (id, source, forge, event, received_at, headers, body, verdict, reason, normalised, explain,
             duplicate_of, body_size, redelivery_of, arrived, body_encoding, repo, git_ref, trace)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    };
}

/// Records an accepted delivery whose id this source has not accepted before; `None`
/// (nothing written) when it has.
fn insert_first(db: Db, delivery: &NewDelivery, now: i64) -> anyhow::Result<Option<i64>> {
    write_delivery(db, delivery, delivery.verdict.as_str(), now, None, true)
}

/// Records `delivery` with `verdict`; returns its sequence number.
fn insert_delivery(
    db: Db,
    delivery: &NewDelivery,
    verdict: &str,
    now: i64,
    duplicate_of: Option<i64>,
) -> anyhow::Result<i64> {
    write_delivery(db, delivery, verdict, now, duplicate_of, false)?
        .ok_or_else(|| anyhow::anyhow!("recording delivery {} returned no row", delivery.id))
}

/// Inserts a delivery row; with `first`, nothing when the unique index of accepted
/// delivery ids already holds its id.
fn write_delivery(
    db: Db,
    delivery: &NewDelivery,
    verdict: &str,
    now: i64,
    duplicate_of: Option<i64>,
    first: bool,
) -> anyhow::Result<Option<i64>> {
    // Refused deliveries keep only the start of their body, as received: the rare
    // large one is decoded here to be cut.
    let cut;
    let (body, encoding, body_size) = match delivery.verdict.refused() {
        true if delivery.body.encoding().is_some() || delivery.body.bytes().len() > REFUSED_BODY_KEPT => {
            let received = delivery.body.received()?;
            let size = (received.len() > REFUSED_BODY_KEPT).then_some(received.len() as i64);
            cut = received.slice(..received.len().min(REFUSED_BODY_KEPT));
            (&cut[..], None, size)
        }
        _ => (delivery.body.bytes(), delivery.body.encoding(), None),
    };
    let sql = match first {
        true => concat!(
            insert_delivery_sql!(),
            " ON CONFLICT (source, id) WHERE verdict NOT IN ('duplicate', 'rejected', 'invalid') DO NOTHING",
            " RETURNING seq"
        ),
        false => concat!(insert_delivery_sql!(), " RETURNING seq"),
    };
    db.query_opt(
        sql,
        args![
            delivery.id,
            delivery.source,
            delivery.forge,
            delivery.event,
            now,
            delivery.headers,
            body,
            verdict,
            delivery.reason,
            delivery.normalised,
            delivery.explain,
            duplicate_of,
            body_size,
            delivery.redelivery_of,
            delivery.arrived,
            encoding,
            delivery.repo,
            delivery.git_ref,
            delivery.trace
        ],
        |row| row.get(0),
    )
}

/// The jobs that carry a delivery: queued for it, or coalesced into by it.
fn job_ids_of(db: Db, delivery_seq: i64) -> anyhow::Result<Vec<String>> {
    db.query(
        "SELECT DISTINCT job_id FROM job_deliveries WHERE delivery_seq = ?1 ORDER BY job_id",
        args![delivery_seq],
        |row| Ok(row.get::<i64>(0)?.to_string()),
    )
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

    mod accept;
    mod kv;
    mod stats;

    /// Where a test's queue lives: each test runs against both stores.
    enum Store {
        Sqlite(tempfile::TempDir),
        Postgres(String),
    }

    impl Store {
        /// The queue, as node `node` (several nodes may share a store).
        fn open(&self, node: &str) -> Queue {
            match self {
                Store::Sqlite(dir) => Queue::open_as(dir.path(), node).unwrap(),
                Store::Postgres(url) => Queue::open_postgres(url, node).unwrap(),
            }
        }

        /// Runs one statement directly on the store.
        fn execute(&self, sql: &str) {
            match self {
                Store::Sqlite(dir) => {
                    Connection::open(dir.path().join("gitauto.sqlite")).unwrap().execute_batch(sql).unwrap()
                }
                Store::Postgres(url) => crate::testing::execute(url, sql),
            }
        }

        /// Runs statements directly on the store; the store's error message when they fail.
        fn try_execute(&self, sql: &str) -> Result<(), String> {
            match self {
                Store::Sqlite(dir) => Connection::open(dir.path().join("gitauto.sqlite"))
                    .unwrap()
                    .execute_batch(sql)
                    .map_err(|err| err.to_string()),
                Store::Postgres(url) => {
                    let (url, sql) = (url.clone(), sql.to_owned());
                    std::thread::spawn(move || {
                        let mut client = pg_connect::connect(&url).unwrap();
                        client.batch_execute(&sql).map_err(|err| format!("{}", err.as_db_error().unwrap()))
                    })
                    .join()
                    .unwrap()
                }
            }
        }
    }

    /// A fresh SQLite queue, and a fresh PostgreSQL database when a server can run here.
    fn stores() -> Vec<Store> {
        let mut stores = vec![Store::Sqlite(tempfile::tempdir().unwrap())];
        stores.extend(crate::testing::database().map(Store::Postgres));
        stores
    }

    fn delivery(id: &str) -> NewDelivery {
        NewDelivery {
            id: id.into(),
            source: "github".into(),
            forge: "github".into(),
            event: Some("push".into()),
            headers: r#"{"content-type":"application/json"}"#.into(),
            body: StoredBody::raw(bytes::Bytes::from_static(b"{}")),
            verdict: DeliveryVerdict::Queued,
            reason: None,
            normalised: Some(r#"[{"repository":{"clone_url":"file:///x/widgets.git"}}]"#.into()),
            explain: None,
            redelivery_of: None,
            arrived: "webhook",
            repo: None,
            git_ref: None,
            trace: None,
        }
    }

    fn job(key: &str) -> NewJob {
        NewJob {
            rule: "r".into(),
            key: key.into(),
            repo: "acme/widgets".into(),
            git_ref: Some("refs/heads/main".into()),
            event_index: 0,
            coalesce_key: None,
            max_attempts: 1,
            quiet_ms: 0,
            run_on: RunOn::Any,
            concurrency: None,
            priority: 0,
            report: None,
            waiting: false,
        }
    }

    #[tokio::test]
    async fn accepted_work_survives_reopening_and_running_jobs_are_requeued() {
        for store in stores() {
            {
                let queue = store.open("n");
                let accepted = queue.accept(delivery("d1"), vec![job("k1"), job("k2")]).await.unwrap();
                assert_eq!(accepted.jobs.len(), 2);
                let claimed = queue.claim().await.unwrap().unwrap();
                assert_eq!((claimed.attempt, claimed.content_type.as_deref()), (1, Some("application/json")));
                queue.close().await;
            }
            let queue = store.open("n");
            let first = queue.claim().await.unwrap().unwrap();
            assert_eq!(first.attempt, 2, "the interrupted job runs again, attempt counted");
            let second = queue.claim().await.unwrap().unwrap();
            assert_ne!(first.id, second.id);
            assert!(queue.claim().await.unwrap().is_none());
        }
    }

    /// A coalescing look that raced an approval (another daemon released the waiting job
    /// between the look and the update) leaves the released job's event alone.
    #[tokio::test]
    async fn a_job_released_after_the_coalescing_look_takes_no_newer_event() {
        for store in stores() {
            let queue = store.open("n");
            let waiting = NewJob { coalesce_key: Some("c".into()), waiting: true, ..job("k") };
            let accepted = queue.accept(delivery("w1"), vec![waiting.clone()]).await.unwrap();
            let id: i64 = accepted.jobs[0].parse().unwrap();
            let newer = NewJob { event_index: 5, ..waiting.clone() };
            let (still, released) = (newer.clone(), newer);
            let coalesced = queue
                .writer
                .call(move |db| coalesce_into(db, id, ("waiting", "c"), 1, &still, now_ms()))
                .await
                .unwrap();
            assert!(coalesced, "a job still waiting takes the newer event");
            store.execute(&format!("UPDATE jobs SET state = 'queued', coalesce_key = NULL WHERE id = {id}"));
            let coalesced = queue
                .writer
                .call(move |db| coalesce_into(db, id, ("waiting", "c"), 1, &released, now_ms() + 1))
                .await
                .unwrap();
            assert!(!coalesced, "a released job is not updated");
            queue.close().await;
        }
    }

    #[tokio::test]
    async fn closing_commits_what_came_before_and_releases_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        let other = queue.clone();
        let accepting = tokio::spawn(async move { other.accept(delivery("c1"), vec![job("k")]).await });
        tokio::task::yield_now().await;
        queue.close().await;
        assert!(queue.is_closed());
        let wal = dir.path().join("gitauto.sqlite-wal");
        assert!(!wal.exists(), "the last connection closed, removing the log");
        let err = queue.claim().await.expect_err("a closed queue refuses calls");
        assert_eq!(err.to_string(), "the queue is closed");
        let accepted = accepting.await.unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        let stored = queue.delivery("c1".into()).await.unwrap().is_some();
        assert_eq!(stored, accepted.is_ok(), "an accept either committed before closing or was refused");
    }

    #[tokio::test]
    async fn the_fingerprint_salt_is_made_once_per_store_and_shared_by_its_nodes() {
        let mut salts = Vec::new();
        for store in stores() {
            let (a, b) = (store.open("a"), store.open("b"));
            let (first, second) = tokio::join!(a.fingerprint_salt(), b.fingerprint_salt());
            let salt = first.unwrap();
            assert_eq!(second.unwrap(), salt, "two nodes asking at once");
            assert_ne!(salt, [0; 32]);
            a.close().await;
            assert_eq!(store.open("a").fingerprint_salt().await.unwrap(), salt, "after a restart");
            salts.push(salt);
        }
        let other = Store::Sqlite(tempfile::tempdir().unwrap());
        let other = other.open("a").fingerprint_salt().await.unwrap();
        assert!(!salts.contains(&other), "another store, another salt");
    }

    #[tokio::test]
    async fn jobs_run_on_any_node_on_every_live_node_or_on_named_ones() {
        for store in stores() {
            let (a, b) = (store.open("a"), store.open("b"));
            a.join(1).await.unwrap();
            b.join(1).await.unwrap();
            let gone = store.open("gone");
            gone.join(1).await.unwrap();
            gone.leave().await.unwrap();

            // `every`: one job per live node, serialised per node (both run at once).
            let every = NewJob { run_on: RunOn::Every, coalesce_key: Some("k".into()), ..job("k") };
            let accepted = a.accept(delivery("e1"), vec![every.clone()]).await.unwrap();
            assert_eq!(accepted.jobs.len(), 2, "a and b, not the stopped node");
            let on_b = b.claim().await.unwrap().expect("b's job");
            let on_a = a.claim().await.unwrap().expect("a's job, though b runs the same key");
            assert_ne!(on_a.id, on_b.id);
            assert!(a.claim().await.unwrap().is_none() && b.claim().await.unwrap().is_none());
            // Coalescing stays per node: a second event while both are queued makes no new job.
            a.finish(on_a.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            b.finish(on_b.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            let first = a.accept(delivery("e2"), vec![every.clone()]).await.unwrap();
            let second = b.accept(delivery("e3"), vec![every]).await.unwrap();
            assert_eq!((second.jobs.clone(), second.coalesced), (first.jobs.clone(), 2));
            let view = a.job(first.jobs[0].parse().unwrap()).await.unwrap().unwrap();
            assert_eq!(view.node.as_deref(), Some("a"));
            let claimed = a.claim().await.unwrap().unwrap();
            assert_eq!(a.job(claimed.id).await.unwrap().unwrap().ran_on.as_deref(), Some("a"));
            let other = b.claim().await.unwrap().unwrap();
            for (queue, job) in [(&a, &claimed), (&b, &other)] {
                queue.finish(job.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            }

            // Named nodes: a job each, even for one that is down; nobody else claims it.
            let named = NewJob { run_on: RunOn::Nodes(vec!["b".into(), "gone".into()]), ..job("n") };
            let accepted = a.accept(delivery("n1"), vec![named]).await.unwrap();
            assert_eq!(accepted.jobs.len(), 2);
            assert!(a.claim().await.unwrap().is_none(), "neither is a's");
            let on_b = b.claim().await.unwrap().expect("b's");
            assert_eq!(on_b.id.to_string(), accepted.jobs[0]);
            assert_eq!(gone.claim().await.unwrap().map(|j| j.id.to_string()), Some(accepted.jobs[1].clone()));

            // `any`: one job, claimed by whichever asks first.
            let accepted = b.accept(delivery("y1"), vec![job("y")]).await.unwrap();
            assert_eq!(accepted.jobs.len(), 1);
            let claimed = a.claim().await.unwrap().expect("any node's");
            assert_eq!(a.job(claimed.id).await.unwrap().unwrap().ran_on.as_deref(), Some("a"));

            let nodes = a.nodes().await.unwrap();
            let live: Vec<(&str, bool)> = nodes.iter().map(|n| (n.name.as_str(), n.live)).collect();
            assert_eq!(live, [("a", true), ("b", true), ("gone", false)]);
        }
    }

    #[tokio::test]
    async fn a_dead_nodes_jobs_run_again_elsewhere_and_its_late_end_is_ignored() {
        for store in stores() {
            let (a, b) = (store.open("a"), store.open("b"));
            a.accept(delivery("l1"), vec![job("k")]).await.unwrap();
            let on_a = a.claim().await.unwrap().unwrap();
            assert_eq!(b.heartbeat().await.unwrap(), 0, "a's lease holds");
            // a stops renewing: its lease runs out.
            store.execute(&format!("UPDATE jobs SET lease_until = 0 WHERE id = {}", on_a.id));
            assert_eq!(b.heartbeat().await.unwrap(), 1, "b queues a's job again");
            let on_b = b.claim().await.unwrap().expect("b runs it");
            assert_eq!((on_b.id, on_b.attempt), (on_a.id, 2));
            // a comes back and ends its attempt: b's run is not overwritten.
            a.finish(on_a.id, on_a.attempt, None, JobState::Failed, "late", None).await.unwrap();
            assert_eq!(a.heartbeat().await.unwrap(), 0, "b's lease is renewed by b, not taken by a");
            let view = b.job(on_b.id).await.unwrap().unwrap();
            assert_eq!((view.state.as_str(), view.ran_on.as_deref()), ("running", Some("b")));
            b.finish(on_b.id, on_b.attempt, None, JobState::Succeeded, "ok", None).await.unwrap();
            assert_eq!(b.job(on_b.id).await.unwrap().unwrap().state, "succeeded");
        }
    }

    #[tokio::test]
    async fn a_quiet_period_holds_a_job_until_events_stop_coming() {
        for store in stores() {
            let queue = store.open("n");
            let quiet = |_: &str| NewJob { coalesce_key: Some("k".into()), quiet_ms: 300, ..job("k") };
            let first = queue.accept(delivery("q1"), vec![quiet("k")]).await.unwrap();
            assert!(queue.claim().await.unwrap().is_none(), "held for its quiet period");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let second = queue.accept(delivery("q2"), vec![quiet("k")]).await.unwrap();
            assert_eq!((second.jobs.clone(), second.coalesced), (first.jobs.clone(), 1), "coalesced into the held job");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert!(queue.claim().await.unwrap().is_none(), "the second event started the wait again");
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let claimed = queue.claim().await.unwrap().expect("runs once the events stopped");
            assert_eq!(claimed.id.to_string(), first.jobs[0]);
        }
    }

    /// A delivery of a fork's pull request #7 at `head`.
    fn fork_delivery(id: &str, head: &str) -> NewDelivery {
        let event = serde_json::json!([{
            "repository": {"full_name": "acme/widgets"},
            "pull_request": {"number": 7, "head": head, "source_repository": "fork/widgets"},
        }]);
        NewDelivery { normalised: Some(event.to_string()), ..delivery(id) }
    }

    /// Issue 21 (fork gating): a waiting job is never claimed, coalesces only with waiting
    /// jobs, and an approval releases it only for the approved head and an event older
    /// than the approval; once released, a newer event waits in a job of its own.
    #[tokio::test]
    async fn waiting_jobs_run_only_when_an_approval_covers_their_head() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        for store in stores() {
            let queue = store.open("n");
            let gated = || NewJob { coalesce_key: Some("k".into()), waiting: true, ..job("k") };
            let first = queue.accept(fork_delivery("w1", &a), vec![gated()]).await.unwrap();
            assert!(queue.claim().await.unwrap().is_none(), "a waiting job is not claimed");
            let plain = queue.accept(delivery("p1"), vec![NewJob { coalesce_key: Some("k".into()), ..job("other") }]);
            let plain = plain.await.unwrap();
            assert_eq!(plain.coalesced, 0, "a queued event does not join a waiting job");
            let pushed = queue.accept(fork_delivery("w2", &b), vec![gated()]).await.unwrap();
            assert_eq!(
                (pushed.jobs.clone(), pushed.coalesced),
                (first.jobs.clone(), 1),
                "the new push waits in its place"
            );
            let id: i64 = first.jobs[0].parse().unwrap();
            let approval = |head: &str, before_delivery: i64| Approval {
                source: "github".into(),
                repo: "acme/widgets".into(),
                number: 7,
                head: head.into(),
                before_delivery,
            };
            let stale = queue.release_waiting(approval(&a, i64::MAX)).await.unwrap();
            assert!(stale.released.is_empty() && stale.left[0].1.contains("is not the approved head"), "{stale:?}");
            let early = queue.release_waiting(approval(&b, 0)).await.unwrap();
            assert_eq!(early.left, [(id, "its event arrived after the approval".to_owned())]);
            let other_pr = Approval { number: 8, ..approval(&b, i64::MAX) };
            assert_eq!(queue.release_waiting(other_pr).await.unwrap(), Released::default());
            assert_eq!(queue.job(id).await.unwrap().unwrap().state, "waiting");
            let released = queue.release_waiting(approval(&b, i64::MAX)).await.unwrap();
            assert_eq!(released.released, [id]);
            assert_eq!(queue.job(id).await.unwrap().unwrap().state, "queued");
            let after = queue.accept(fork_delivery("w3", &a), vec![gated()]).await.unwrap();
            assert_eq!(after.coalesced, 0, "an approved job takes no newer event");
            let claimed = queue.claim().await.unwrap().expect("the released job runs");
            assert_eq!((claimed.id, claimed.normalised.contains(&b)), (id, true), "with the approved head");
            let plain_job = queue.claim().await.unwrap().unwrap();
            assert_eq!(plain_job.id.to_string(), plain.jobs[0]);
            assert!(queue.claim().await.unwrap().is_none(), "the newer fork push waits");
            let pruned =
                queue.prune(Retention { max_age: std::time::Duration::ZERO, keep_jobs: 0, keep_deliveries: 0 });
            pruned.await.unwrap();
            let newer: i64 = after.jobs[0].parse().unwrap();
            assert_eq!(queue.job(newer).await.unwrap().unwrap().state, "waiting", "retention keeps waiting jobs");
            assert_eq!(queue.cancel(newer).await.unwrap(), Some(Cancelled::Cancelled));
            assert_eq!(queue.job(newer).await.unwrap().unwrap().state, "cancelled");
        }
    }

    #[tokio::test]
    async fn duplicate_delivery_queues_nothing_and_returns_the_original_jobs() {
        for store in stores() {
            let queue = store.open("n");
            let first = queue.accept(delivery("same"), vec![job("k")]).await.unwrap();
            let again = queue.accept(delivery("same"), vec![job("k")]).await.unwrap();
            assert!(again.duplicate && !first.duplicate);
            assert_eq!(again.jobs, first.jobs);
            assert_eq!(queue.pending().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn jobs_with_one_key_never_run_at_once() {
        for store in stores() {
            let queue = store.open("n");
            queue.accept(delivery("a"), vec![job("same")]).await.unwrap();
            queue.accept(delivery("b"), vec![job("same")]).await.unwrap();
            queue.accept(delivery("c"), vec![job("other")]).await.unwrap();
            let one = queue.claim().await.unwrap().unwrap();
            let other = queue.claim().await.unwrap().unwrap();
            assert_eq!(other.id, one.id + 2, "the second `same` job waits; `other` runs");
            assert!(queue.claim().await.unwrap().is_none());
            queue.finish(one.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            assert_eq!(queue.claim().await.unwrap().unwrap().id, one.id + 1);
        }
    }

    /// Two daemons claiming jobs of one key at the same moment: the second one's claim
    /// waits on the first one's uncommitted start, then the index of running keys refuses
    /// it, and it claims nothing instead of failing.
    #[tokio::test]
    async fn a_claim_racing_another_daemons_start_of_the_same_key_claims_nothing() {
        let Some(url) = crate::testing::database() else { return };
        let queue = Queue::open_postgres(&url, "b").unwrap();
        let first = queue.accept(delivery("r1"), vec![job("same")]).await.unwrap().jobs[0].clone();
        queue.accept(delivery("r2"), vec![job("same")]).await.unwrap();
        // "Daemon a" starts the first job and has not committed yet.
        let (held, hold) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let starter = std::thread::spawn({
            let (url, first, held) = (url.clone(), first.clone(), held.0);
            move || {
                let mut client = pg_connect::connect(&url).unwrap();
                let mut started = client.transaction().unwrap();
                started.batch_execute(&format!("UPDATE jobs SET state = 'running' WHERE id = {first}")).unwrap();
                held.send(()).unwrap();
                hold.1.recv().unwrap();
                started.commit().unwrap();
            }
        });
        held.1.recv().unwrap();
        let claiming = tokio::spawn({
            let queue = queue.clone();
            async move { queue.claim().await }
        });
        tokio::task::yield_now().await;
        // Commit once b's claim waits on a's start (it skipped the locked first job and
        // took the second, whose key a's uncommitted start holds).
        until_a_session_waits_on_a_lock(url, || false);
        hold.0.send(()).unwrap();
        starter.join().unwrap();
        assert!(claiming.await.unwrap().unwrap().is_none(), "the lost claim is no claim, not an error");
        let second = queue.claim().await.unwrap();
        assert!(second.is_none(), "the second job waits for the first: {second:?}");
        assert_eq!(queue.job(first.parse().unwrap()).await.unwrap().unwrap().state, "running");
    }

    /// Returns once a session of the test database waits on a lock, or `give_up` says so.
    fn until_a_session_waits_on_a_lock(url: String, give_up: impl Fn() -> bool + Send + 'static) {
        std::thread::spawn(move || {
            let mut watcher = pg_connect::connect(&url).unwrap();
            let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                           AND wait_event_type = 'Lock'";
            while !give_up() && watcher.query_one(waiting, &[]).unwrap().get::<_, i64>(0) == 0 {}
        })
        .join()
        .unwrap();
    }

    /// A job of rule `rule` with key `key`, at most `concurrency` of the rule running at once.
    fn limited(rule: &str, key: &str, concurrency: i64) -> NewJob {
        NewJob { rule: rule.into(), concurrency: Some(concurrency), ..job(key) }
    }

    #[tokio::test]
    async fn a_rules_concurrency_caps_its_running_jobs_across_nodes() {
        for store in stores() {
            let (a, b) = (store.open("a"), store.open("b"));
            let jobs = (1..=4).map(|n| limited("capped", &format!("c{n}"), 2)).collect();
            let capped = a.accept(delivery("c"), jobs).await.unwrap().jobs;
            let free = a.accept(delivery("f"), vec![job("free")]).await.unwrap().jobs;
            let first = a.claim().await.unwrap().expect("the first place");
            let second = b.claim().await.unwrap().expect("the second place, on another node");
            assert_eq!([first.id.to_string(), second.id.to_string()], capped[..2]);
            let other = a.claim().await.unwrap().expect("another rule's job passes the full rule's");
            assert_eq!(other.id.to_string(), free[0]);
            assert!(b.claim().await.unwrap().is_none(), "two of `capped` run: the others wait");
            assert!(a.claim().await.unwrap().is_none());

            b.finish(second.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            let third = a.claim().await.unwrap().expect("a place is free again");
            assert_eq!(third.id.to_string(), capped[2]);
            assert!(b.claim().await.unwrap().is_none());

            // A reload lowering the limit applies to the queued job: two still run, so it
            // waits until only none does.
            a.set_flow(vec![FlowLimits { rule: "capped".into(), concurrency: Some(1), priority: 0 }]).await.unwrap();
            a.finish(first.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            assert!(b.claim().await.unwrap().is_none(), "one runs, and the limit is one now");
            a.finish(third.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            let last = b.claim().await.unwrap().expect("none runs");
            assert_eq!(last.id.to_string(), capped[3]);
            // Raising it again lets jobs queued later start beside it.
            let more = b.accept(delivery("m"), vec![limited("capped", "c5", 2)]).await.unwrap().jobs;
            assert_eq!(b.claim().await.unwrap().map(|j| j.id.to_string()), Some(more[0].clone()));
        }
    }

    #[tokio::test]
    async fn priority_orders_claims_between_rules_and_ties_keep_their_order() {
        for store in stores() {
            let queue = store.open("n");
            let with = |rule: &str, key: &str, priority: i64| NewJob { rule: rule.into(), priority, ..job(key) };
            let mut ids = Vec::new();
            for (rule, key, priority) in
                [("low", "l1", 0), ("high", "h1", 5), ("low", "l2", 0), ("high", "h2", 5), ("lowest", "n1", -1)]
            {
                ids.push(queue.accept(delivery(key), vec![with(rule, key, priority)]).await.unwrap().jobs[0].clone());
            }
            let mut order = Vec::new();
            for _ in 0..3 {
                order.push(queue.claim().await.unwrap().unwrap().id.to_string());
            }
            assert_eq!(
                order,
                [ids[1].clone(), ids[3].clone(), ids[0].clone()],
                "high first, in the order queued; then low"
            );
            // A reload raising `lowest` above `low` applies to its queued job.
            queue.set_flow(vec![FlowLimits { rule: "lowest".into(), concurrency: None, priority: 1 }]).await.unwrap();
            assert_eq!(queue.claim().await.unwrap().unwrap().id.to_string(), ids[4]);
            assert_eq!(queue.claim().await.unwrap().unwrap().id.to_string(), ids[2]);
        }
    }

    #[tokio::test]
    async fn a_paused_rules_jobs_wait_for_its_resume_and_the_pause_survives_reopening() {
        for store in stores() {
            let queue = store.open("a");
            let paused = |key: &str| NewJob { rule: "paused".into(), ..job(key) };
            let running = queue.accept(delivery("p0"), vec![paused("p0")]).await.unwrap().jobs;
            let claimed = queue.claim().await.unwrap().unwrap();
            assert!(queue.pause("paused").await.unwrap());
            assert!(!queue.pause("paused").await.unwrap(), "paused already");
            let waiting = queue.accept(delivery("p1"), vec![paused("p1"), paused("p2")]).await.unwrap().jobs;
            let other = queue.accept(delivery("o"), vec![job("o")]).await.unwrap().jobs;
            let other_job = queue.claim().await.unwrap().expect("another rule's job runs");
            assert_eq!(other_job.id.to_string(), other[0]);
            assert!(queue.claim().await.unwrap().is_none(), "the paused rule's jobs stay queued");
            // Its running job finishes.
            queue.finish(claimed.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            assert_eq!(queue.job(running[0].parse().unwrap()).await.unwrap().unwrap().state, "succeeded");
            let loads = queue.rule_loads().await.unwrap();
            let expected = [
                ("paused".to_owned(), RuleLoad { queued: 2, running: 0 }),
                ("r".to_owned(), RuleLoad { queued: 0, running: 1 }),
            ];
            assert_eq!(loads, expected);
            queue.finish(other_job.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            queue.close().await;

            // Another daemon, or this one restarted, sees the pause.
            let queue = store.open("b");
            let listed: Vec<(String, String)> =
                queue.paused().await.unwrap().into_iter().map(|p| (p.rule, p.node)).collect();
            assert_eq!(listed, [("paused".to_owned(), "a".to_owned())]);
            assert!(queue.claim().await.unwrap().is_none());
            assert!(queue.resume("paused").await.unwrap());
            assert!(!queue.resume("paused").await.unwrap(), "not paused any more");
            let mut resumed = Vec::new();
            while let Some(job) = queue.claim().await.unwrap() {
                resumed.push(job.id.to_string());
            }
            assert_eq!(resumed, waiting);
            assert!(queue.paused().await.unwrap().is_empty());
        }
    }

    /// Two daemons starting the last free place of a rule at the same moment: the second
    /// one's start waits on the first one's uncommitted start, is refused by the index of
    /// running places, and looks again, finding another rule's job instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_racing_another_daemons_start_of_a_rules_last_place_claims_other_work() {
        let Some(url) = crate::testing::database() else { return };
        let queue = Queue::open_postgres(&url, "b").unwrap();
        let accepted = queue
            .accept(delivery("s1"), vec![limited("one", "k1", 1), limited("one", "k2", 1), job("other")])
            .await
            .unwrap()
            .jobs;
        // "Daemon a" starts the first job in the rule's only place and has not committed yet.
        let (held, hold) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let starter = std::thread::spawn({
            let (url, first, held) = (url.clone(), accepted[0].clone(), held.0);
            move || {
                let mut client = pg_connect::connect(&url).unwrap();
                let mut started = client.transaction().unwrap();
                started
                    .batch_execute(&format!("UPDATE jobs SET state = 'running', slot = 0 WHERE id = {first}"))
                    .unwrap();
                held.send(()).unwrap();
                hold.1.recv().unwrap();
                started.commit().unwrap();
            }
        });
        held.1.recv().unwrap();
        // Set when b's claim is over: had it not waited, the test must fail, not hang.
        let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let claiming = tokio::spawn({
            let (queue, over) = (queue.clone(), over.clone());
            async move {
                let claimed = queue.claim().await;
                over.store(true, std::sync::atomic::Ordering::SeqCst);
                claimed
            }
        });
        tokio::task::yield_now().await;
        // Commit once b's claim waits on a's start (it skipped the locked first job, saw no
        // running job of the rule, and took the second for the place a holds).
        until_a_session_waits_on_a_lock(url, move || over.load(std::sync::atomic::Ordering::SeqCst));
        hold.0.send(()).unwrap();
        starter.join().unwrap();
        let claimed = claiming.await.unwrap().unwrap().map(|job| job.id.to_string());
        assert_eq!(claimed.as_ref(), Some(&accepted[2]), "the lost claim took the other rule's job");
        let second = queue.job(accepted[1].parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(second.state, "queued", "one job of the rule runs, not two");
        assert!(queue.claim().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn job_view_has_steps_and_logs() {
        for store in stores() {
            let queue = store.open("n");
            queue.accept(delivery("d"), vec![job("k")]).await.unwrap();
            let claimed = queue.claim().await.unwrap().unwrap();
            queue.log(claimed.id, 1, Some("s"), "info", "hello");
            let bill = crate::step::StepBill {
                wall_us: 250_000,
                cpu_us: 1_200,
                peak_memory: 10 << 20,
                epoch_ticks: 25,
                calls: [("git".to_owned(), crate::step::CallBill { count: 3, time_us: 900 })].into(),
            };
            let step = StepRecord {
                index: 0,
                name: "s".into(),
                plugin: "p".into(),
                status: StepStatus::Success,
                summary: "did it".into(),
                output: Some(r#"{"new":"abc"}"#.into()),
                started_at: 1000,
                finished_at: 1250,
                bill: Some(bill.clone()),
                plugin_digest: Some("ab".repeat(32)),
                plugin_signer: Some("minisign ACB907952B79E4BD (file:minisign.pub)".into()),
            };
            queue.record_step(claimed.id, 1, step).await.unwrap();
            queue.finish(claimed.id, 1, None, JobState::Succeeded, "did it", None).await.unwrap();
            let view = queue.job(claimed.id).await.unwrap().unwrap();
            assert_eq!((view.state.as_str(), view.delivery.as_str(), view.attempts), ("succeeded", "d", 1));
            assert_eq!(view.steps[0].output["new"], "abc");
            assert_eq!(view.steps[0].duration_ms, 250);
            assert_eq!(view.steps[0].bill.as_ref(), Some(&bill), "the bill is stored with the step");
            assert_eq!(view.steps[0].plugin_digest, Some("ab".repeat(32)));
            assert_eq!(view.steps[0].plugin_signer.as_deref(), Some("minisign ACB907952B79E4BD (file:minisign.pub)"));
            assert_eq!(view.logs[0].message, "hello");
            assert!(queue.job(999).await.unwrap().is_none());
            assert_eq!(queue.pending().await.unwrap().len(), 0);
        }
    }

    #[tokio::test]
    async fn pruning_keeps_unfinished_work_and_the_newest_history() {
        for store in stores() {
            let queue = store.open("n");
            for n in 0..5 {
                queue.accept(delivery(&format!("d{n}")), vec![job(&format!("k{n}"))]).await.unwrap();
            }
            for _ in 0..4 {
                let claimed = queue.claim().await.unwrap().unwrap();
                queue.log(claimed.id, 1, None, "info", "line");
                queue.finish(claimed.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            }
            let retention =
                Retention { max_age: std::time::Duration::from_secs(3600), keep_jobs: 2, keep_deliveries: 1 };
            let pruned = queue.prune(retention).await.unwrap();
            assert_eq!(pruned, Pruned { jobs: 2, deliveries: 2 });
            let left: Vec<String> = queue
                .jobs(JobFilter { limit: 10, ..JobFilter::default() })
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.state)
                .collect();
            assert_eq!(left, ["queued", "succeeded", "succeeded"], "the queued job and the two newest finished ones");
            assert_eq!(queue.job(1).await.unwrap().map(|j| j.id), None);
            let deliveries = queue.deliveries(DeliveryFilter { limit: 10, ..DeliveryFilter::default() }).await.unwrap();
            assert_eq!(deliveries.len(), 3, "deliveries that remaining jobs carry stay");
            // Everything finished and older than the age limit goes.
            let pruned = queue.prune(Retention { max_age: std::time::Duration::ZERO, ..retention }).await.unwrap();
            assert_eq!(pruned, Pruned { jobs: 2, deliveries: 2 });
            assert_eq!(queue.pending().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn pruning_in_small_transactions_removes_what_one_would() {
        for store in stores() {
            let queue = store.open("n");
            let mut ids = Vec::new();
            for n in 0..9 {
                let accepted = queue.accept(delivery(&format!("d{n}")), vec![job(&format!("k{n}"))]).await.unwrap();
                ids.push(accepted.jobs[0].parse::<i64>().unwrap());
            }
            for _ in 0..8 {
                let claimed = queue.claim().await.unwrap().unwrap();
                queue.log(claimed.id, 1, None, "info", "line");
                queue.finish(claimed.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
            }
            let retention =
                Retention { max_age: std::time::Duration::from_secs(3600), keep_jobs: 3, keep_deliveries: 2 };
            // Two per transaction: five jobs and five deliveries take three passes each.
            let pruned = queue.prune_in_chunks(retention, 2).await.unwrap();
            assert_eq!(pruned, Pruned { jobs: 5, deliveries: 5 });
            let left: Vec<i64> = queue
                .jobs(JobFilter { limit: 10, ..JobFilter::default() })
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id.parse().unwrap())
                .collect();
            assert_eq!(left, [ids[8], ids[7], ids[6], ids[5]], "the queued job and the three newest finished ones");
            let deliveries = queue.deliveries(DeliveryFilter { limit: 20, ..DeliveryFilter::default() }).await.unwrap();
            assert_eq!(deliveries.len(), 4, "the deliveries the remaining jobs carry");
            assert_eq!(queue.prune_in_chunks(retention, 2).await.unwrap(), Pruned::default(), "nothing more");
        }
    }

    #[tokio::test]
    async fn a_sqlite_queue_copies_into_an_empty_postgresql_one() {
        let Some(url) = crate::testing::database() else { return };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Queue::open_as(dir.path(), "n").unwrap();
        sqlite.join(2).await.unwrap();
        sqlite.accept(delivery("c1"), vec![job("k1")]).await.unwrap();
        sqlite.accept(delivery("c1"), vec![job("k1")]).await.unwrap();
        sqlite.accept(delivery("c2"), vec![job("k2")]).await.unwrap();
        let done = sqlite.claim().await.unwrap().unwrap();
        sqlite.log(done.id, 1, None, "info", "copied line");
        sqlite.finish(done.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap();
        let running = sqlite.claim().await.unwrap().unwrap();
        let before = sqlite.job(done.id).await.unwrap().unwrap();
        sqlite.claim_ticks("nightly", "0 3 * * * @ UTC", 1_000).await.unwrap();
        sqlite.close().await;

        let copied = copy::sqlite_to_postgres(dir.path(), &url).unwrap();
        let count = |table: &str| copied.iter().find(|(name, _)| *name == table).unwrap().1;
        assert_eq!((count("deliveries"), count("jobs"), count("logs"), count("nodes")), (3, 2, 1, 1));
        let again = copy::sqlite_to_postgres(dir.path(), &url).unwrap_err().to_string();
        assert!(again.contains("already holds 3 deliveries"), "{again}");

        let postgres = Queue::open_postgres(&url, "n").unwrap();
        let after = postgres.job(done.id).await.unwrap().unwrap();
        assert_eq!(serde_json::to_value(&after).unwrap(), serde_json::to_value(&before).unwrap());
        assert_eq!(postgres.delivery("c1".into()).await.unwrap().unwrap().summary.jobs, [done.id.to_string()]);
        let requeued = postgres.claim().await.unwrap().expect("the running job was queued again");
        assert_eq!((requeued.id, requeued.attempt), (running.id, 2));
        let next = postgres.accept(delivery("c3"), vec![job("k3")]).await.unwrap();
        assert_eq!(next.jobs, [(running.id + 1).to_string()], "ids go on after the copied ones");
        // Schedules go on from the ticks the SQLite queue had handled.
        assert_eq!(count("schedule_ticks"), 1);
        let claim = postgres.claim_ticks("nightly", "0 3 * * * @ UTC", 2_000).await.unwrap();
        assert_eq!(claim, TickClaim::Won { previous: Some(1_000) });
    }

    /// A job of coalescing key `tag` running while a newer event for the key is queued:
    /// the state every crash left that issue 17 is about. Returns (running, queued).
    async fn running_beside_queued(queue: &Queue, tag: &str) -> (i64, i64) {
        let keyed = || NewJob { coalesce_key: Some(tag.into()), max_attempts: 3, ..job(tag) };
        let first = queue.accept(delivery(&format!("{tag}-1")), vec![keyed()]).await.unwrap();
        let running = queue.claim().await.unwrap().expect("the first event's job runs");
        assert_eq!(running.id.to_string(), first.jobs[0]);
        let second = queue.accept(delivery(&format!("{tag}-2")), vec![keyed()]).await.unwrap();
        assert_eq!(second.coalesced, 0, "a running job takes no events: a second one is queued");
        (running.id, second.jobs[0].parse().unwrap())
    }

    /// The running job ended superseded, pointing to the queued one, which carries both
    /// events' deliveries, runs with the newer event, and succeeds.
    async fn merged(queue: &Queue, tag: &str, (running, queued): (i64, i64)) {
        let old = queue.job(running).await.unwrap().unwrap();
        assert_eq!(
            (old.state.as_str(), old.superseded_by.clone()),
            ("superseded", Some(queued.to_string())),
            "{old:?}"
        );
        assert!(old.summary.as_deref().unwrap_or("").contains(&format!("superseded by job {queued}")), "{old:?}");
        let new = queue.job(queued).await.unwrap().unwrap();
        assert_eq!(new.state, "queued");
        assert_eq!(new.delivery, format!("{tag}-2"), "the newer event wins");
        assert_eq!(new.deliveries, [format!("{tag}-1"), format!("{tag}-2")], "nothing accepted is dropped");
        let claimed = queue.claim().await.unwrap().expect("the merged job runs");
        assert_eq!(claimed.id, queued);
        queue.finish(claimed.id, claimed.attempt, None, JobState::Succeeded, "ok", None).await.unwrap();
        let carried = queue.delivery(format!("{tag}-1")).await.unwrap().unwrap().summary.jobs;
        assert_eq!(carried, [running.to_string(), queued.to_string()], "the first delivery's jobs, old and new");
    }

    /// Issue 17: every path that puts a running job back in line ran
    /// `UPDATE jobs SET state = 'queued' ... WHERE state = 'running'`, which this state
    /// refuses (`UNIQUE constraint failed: jobs.coalesce_key`), so the daemon never started
    /// again and a cluster's heartbeats failed on every beat. Each path now merges.
    #[tokio::test]
    async fn every_path_that_puts_a_running_job_back_merges_it_into_the_queued_job_of_its_key() {
        for store in stores() {
            // The state, and the statement every path used to run on it.
            let queue = store.open("n");
            let pair = running_beside_queued(&queue, "old").await;
            let refused = store
                .try_execute(
                    "UPDATE jobs SET state = 'queued', started_at = NULL, lease_until = NULL WHERE state = 'running'",
                )
                .expect_err("the old re-queue breaks the index");
            assert!(
                refused.contains("UNIQUE constraint failed: jobs.coalesce_key")
                    || refused.contains("jobs_one_queued_per_coalesce_key"),
                "{refused}"
            );
            // Start-up (SQLite: every running job; PostgreSQL: this node's).
            queue.close().await;
            let queue = store.open("n");
            merged(&queue, "old", pair).await;

            // Shutdown after the grace period.
            let pair = running_beside_queued(&queue, "stop").await;
            let recovered = queue.requeue_running().await.unwrap();
            assert_eq!(recovered.merged, [pair]);
            merged(&queue, "stop", pair).await;

            // A retry after a failed attempt.
            let pair = running_beside_queued(&queue, "retry").await;
            let requeued = queue
                .retry_later(pair.0, 1, None, std::time::Duration::from_secs(60), "step 1 failed", Some("boom"))
                .await
                .unwrap();
            assert_eq!(requeued, Requeued::Merged(pair.1));
            assert_eq!(queue.job(pair.0).await.unwrap().unwrap().error.as_deref(), Some("boom"));
            merged(&queue, "retry", pair).await;

            // The lease expiry of a node taken for dead, found by another node's heartbeat,
            // which goes on beating.
            let dead = store.open("dead");
            let pair = running_beside_queued(&dead, "lease").await;
            store.execute(&format!("UPDATE jobs SET lease_until = 0 WHERE id = {}", pair.0));
            assert_eq!(queue.heartbeat().await.unwrap(), 1);
            assert_eq!(queue.heartbeat().await.unwrap(), 0, "the next beat finds nothing to do");
            merged(&queue, "lease", pair).await;
            queue.close().await;
            dead.close().await;
        }
    }

    #[tokio::test]
    async fn copying_a_queue_merges_a_running_job_into_the_queued_job_of_its_key() {
        let Some(url) = crate::testing::database() else { return };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Queue::open_as(dir.path(), "n").unwrap();
        let pair = running_beside_queued(&sqlite, "copy").await;
        sqlite.close().await;
        copy::sqlite_to_postgres(dir.path(), &url).unwrap();
        merged(&Queue::open_postgres(&url, "n").unwrap(), "copy", pair).await;
    }

    #[tokio::test]
    async fn a_running_job_that_was_asked_to_cancel_ends_cancelled_instead_of_running_again() {
        for store in stores() {
            let queue = store.open("n");
            queue.accept(delivery("c1"), vec![job("k")]).await.unwrap();
            let claimed = queue.claim().await.unwrap().unwrap();
            assert_eq!(queue.cancel(claimed.id).await.unwrap(), Some(Cancelled::Requested));
            queue.close().await;
            let queue = store.open("n");
            let view = queue.job(claimed.id).await.unwrap().unwrap();
            assert_eq!(view.state, "cancelled", "{view:?}");
            assert!(queue.claim().await.unwrap().is_none());
        }
    }

    /// A job that cannot be put back in line (here a trigger refuses it, as a damaged row
    /// would) is set aside; the start goes on, the other jobs are put back, and the set-aside
    /// job is counted and can be retried by hand.
    #[tokio::test]
    async fn a_job_that_cannot_be_put_back_is_set_aside_and_the_daemon_starts() {
        for store in stores() {
            let queue = store.open("n");
            queue.accept(delivery("s1"), vec![job("broken")]).await.unwrap();
            queue.accept(delivery("s2"), vec![job("fine")]).await.unwrap();
            let broken = queue.claim().await.unwrap().unwrap();
            let fine = queue.claim().await.unwrap().unwrap();
            queue.close().await;
            let refuse = match &store {
                Store::Sqlite(_) => format!(
                    "CREATE TRIGGER refuse BEFORE UPDATE OF state ON jobs
                     WHEN OLD.id = {id} AND NEW.state <> 'quarantined'
                     BEGIN SELECT RAISE(ABORT, 'row {id} is damaged'); END;",
                    id = broken.id
                ),
                Store::Postgres(_) => format!(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN RAISE EXCEPTION 'row {id} is damaged'; END $$;
                     CREATE TRIGGER refuse BEFORE UPDATE OF state ON jobs FOR EACH ROW
                     WHEN (OLD.id = {id} AND NEW.state <> 'quarantined') EXECUTE FUNCTION refuse();",
                    id = broken.id
                ),
            };
            store.execute(&refuse);
            let queue = store.open("n");
            let view = queue.job(broken.id).await.unwrap().unwrap();
            assert_eq!(view.state, "quarantined", "{view:?}");
            assert!(view.error.as_deref().unwrap_or("").contains("damaged"), "{view:?}");
            assert_eq!(queue.claim().await.unwrap().map(|j| j.id), Some(fine.id), "the other job was put back");
            let metrics = crate::metrics::Metrics::default().render(&queue).await.unwrap();
            assert!(metrics.contains("gitauto_jobs{state=\"quarantined\"} 1\n"), "{metrics}");
            store.execute(match store {
                Store::Sqlite(_) => "DROP TRIGGER refuse",
                Store::Postgres(_) => "DROP TRIGGER refuse ON jobs",
            });
            assert_eq!(queue.retry(broken.id).await.unwrap(), Some(Retried::Queued), "an operator runs it again");
        }
    }

    /// The upgrade issue 17 asks for: a queue left by a daemon of the previous schema in the
    /// state that stopped it from starting (a job running beside a queued job of its key)
    /// opens with this one, migrated and merged.
    #[tokio::test]
    async fn a_queue_stuck_under_the_previous_schema_opens_migrated_and_merged() {
        let stuck = |body: &str| {
            format!(
                "INSERT INTO deliveries (seq, id, source, forge, received_at, headers, body, verdict, normalised)
                     VALUES (1, 'p-1', 'github', 'github', 1, '{{}}', {body}, 'queued', '[{{}}]'),
                            (2, 'p-2', 'github', 'github', 2, '{{}}', {body}, 'queued', '[{{}}]');
                     INSERT INTO jobs (id, delivery_seq, rule, key, repo, state, attempts, created_at, coalesce_key,
                                       max_attempts, ran_on)
                     VALUES (1, 1, 'r', 'k', 'acme/widgets', 'running', 1, 1, 'k', 1, 'n'),
                            (2, 2, 'r', 'k', 'acme/widgets', 'queued', 0, 2, 'k', 1, NULL);
                     INSERT INTO job_deliveries (job_id, delivery_seq, event_index, at) VALUES (1, 1, 0, 1), (2, 2, 0, 2);"
            )
        };
        for store in stores() {
            match &store {
                Store::Sqlite(dir) => {
                    let conn = Connection::open(dir.path().join("gitauto.sqlite")).unwrap();
                    for (from, sql) in MIGRATIONS[..4].iter().enumerate() {
                        conn.execute_batch(&format!("{sql}; PRAGMA user_version = {};", from + 1)).unwrap();
                    }
                }
                Store::Postgres(url) => crate::testing::execute(
                    url,
                    &format!(
                        "CREATE TABLE gitauto_schema (version BIGINT NOT NULL); INSERT INTO gitauto_schema VALUES (1); {}",
                        POSTGRES_MIGRATIONS[0]
                    ),
                ),
            }
            store.execute(&stuck(if matches!(store, Store::Sqlite(_)) { "X''" } else { "''" }));
            let queue = store.open("n");
            merged(&queue, "p", (1, 2)).await;
        }
    }

    /// Catch-up asks which of a forge's delivery ids are recorded; polling keeps what it
    /// saw and asks whether a ref's move came as a delivery since the last poll.
    #[tokio::test]
    async fn known_deliveries_polled_refs_and_delivered_moves() {
        for store in stores() {
            let queue = store.open("n");
            queue.accept(delivery("seen"), vec![job("k")]).await.unwrap();
            let refused = NewDelivery { verdict: DeliveryVerdict::Rejected, ..delivery("forged") };
            queue.accept(refused, Vec::new()).await.unwrap();
            let unreadable = NewDelivery { verdict: DeliveryVerdict::Invalid, ..delivery("garbled") };
            queue.accept(unreadable, Vec::new()).await.unwrap();
            let asked: Vec<String> = ["seen", "forged", "garbled", "never"].map(str::to_owned).into();
            let known = queue.known_deliveries("github".into(), asked.clone()).await.unwrap();
            let expected: std::collections::HashSet<String> = ["seen", "garbled"].map(str::to_owned).into();
            assert_eq!(known, expected, "a rejected delivery does not count as received");
            assert!(queue.known_deliveries("other".into(), asked).await.unwrap().is_empty(), "per source");

            let (source, repo) = ("github".to_owned(), "acme/widgets".to_owned());
            assert_eq!(queue.polled(source.clone(), repo.clone()).await.unwrap(), None);
            let mark = queue.newest_delivery_seq().await.unwrap();
            let refs: std::collections::BTreeMap<String, String> =
                [("refs/heads/main".to_owned(), "a".repeat(40))].into();
            queue.record_poll(source.clone(), repo.clone(), refs.clone(), mark).await.unwrap();
            let state = queue.polled(source.clone(), repo.clone()).await.unwrap().unwrap();
            assert_eq!((state.refs, state.delivery_seq), (refs, mark));

            let after = "b".repeat(40);
            let moved = |id: &str, full_name: &str| NewDelivery {
                normalised: Some(format!(
                    r#"[{{"repository":{{"full_name":"{full_name}"}},"git_ref":"refs/heads/main","after":"{after}"}}]"#
                )),
                ..delivery(id)
            };
            let delivered =
                || queue.delivered(source.clone(), repo.clone(), "refs/heads/main".into(), after.clone(), mark);
            assert!(!delivered().await.unwrap());
            queue.accept(moved("other-repo", "acme/gadgets"), Vec::new()).await.unwrap();
            assert!(!delivered().await.unwrap(), "another repository's move");
            queue.accept(moved("push", "acme/widgets"), Vec::new()).await.unwrap();
            assert!(delivered().await.unwrap());
            let newest = queue.newest_delivery_seq().await.unwrap();
            let later = queue.delivered(source.clone(), repo.clone(), "refs/heads/main".into(), after.clone(), newest);
            assert!(!later.await.unwrap(), "only deliveries after the mark count");
            // A second poll replaces the first's refs: one gone, one moved, one new.
            let refs: std::collections::BTreeMap<String, String> =
                [("refs/heads/dev".to_owned(), after.clone()), ("refs/tags/v1".to_owned(), after.clone())].into();
            queue.record_poll(source.clone(), repo.clone(), refs, newest).await.unwrap();
            let refs: std::collections::BTreeMap<String, String> =
                [("refs/heads/dev".to_owned(), "c".repeat(40)), ("refs/tags/v2".to_owned(), after.clone())].into();
            queue.record_poll(source.clone(), repo.clone(), refs.clone(), newest).await.unwrap();
            assert_eq!(queue.polled(source, repo).await.unwrap().unwrap().refs, refs);
        }
    }

    /// A delivery whose one event is a push of `sha` to `acme/widgets` through source `gh`.
    fn push_of(id: &str, sha: &str) -> NewDelivery {
        let event = serde_json::json!([{
            "source": "gh", "kind": "push", "after": sha, "installation": 9,
            "repository": {"full_name": "acme/widgets", "clone_url": "file:///x/widgets.git"}
        }]);
        NewDelivery { normalised: Some(event.to_string()), ..delivery(id) }
    }

    /// `(attempt, state, first letter of the commit)` of each report row of `job`.
    async fn report_rows(queue: &Queue, job: i64) -> Vec<(i64, String, char)> {
        let rows = queue.reports(job).await.unwrap();
        rows.into_iter().map(|row| (row.attempt, row.state, row.sha.chars().next().unwrap())).collect()
    }

    #[tokio::test]
    async fn every_transition_of_a_reporting_job_adds_its_report_in_the_same_transaction() {
        let row = |attempt: i64, state: &str, sha: char| (attempt, state.to_owned(), sha);
        for store in stores() {
            let queue = store.open("n");
            let reporting = NewJob {
                report: Some(crate::config::ReportKind::Status),
                coalesce_key: Some("k".into()),
                max_attempts: 2,
                ..job("k")
            };
            let first = queue.accept(push_of("d1", &"a".repeat(40)), vec![reporting.clone()]).await.unwrap();
            let id: i64 = first.jobs[0].parse().unwrap();
            // Coalesced: the older commit's report says it was superseded; the newer is queued.
            queue.accept(push_of("d2", &"b".repeat(40)), vec![reporting.clone()]).await.unwrap();
            // The same commit again (a redelivery): nothing new to say.
            queue.accept(push_of("d3", &"b".repeat(40)), vec![reporting.clone()]).await.unwrap();
            assert_eq!(
                report_rows(&queue, id).await,
                [row(1, "queued", 'a'), row(1, "superseded", 'a'), row(1, "queued", 'b')]
            );
            let claimed = queue.claim().await.unwrap().unwrap();
            queue
                .retry_later(id, claimed.attempt, None, std::time::Duration::ZERO, "boom", Some("boom"))
                .await
                .unwrap();
            let claimed = queue.claim().await.unwrap().unwrap();
            queue.finish(id, claimed.attempt, None, JobState::Failed, "it failed", None).await.unwrap();
            assert_eq!(
                report_rows(&queue, id).await[3..],
                [
                    row(1, "running", 'b'),
                    row(1, RETRIED, 'b'),
                    row(2, "queued", 'b'),
                    row(2, "running", 'b'),
                    row(2, "failed", 'b')
                ]
            );
            // A job of a rule without `report` adds none.
            let quiet = queue.accept(push_of("d4", &"c".repeat(40)), vec![job("other")]).await.unwrap();
            assert!(queue.reports(quiet.jobs[0].parse().unwrap()).await.unwrap().is_empty());

            // The reporter gets each job's oldest unsent row, one at a time, in order.
            let lease = std::time::Duration::from_secs(60);
            let claimed = queue.claim_reports(10, lease).await.unwrap();
            assert_eq!(claimed.len(), 1, "one row of the one reporting job");
            let first_row = &claimed[0];
            assert_eq!(
                (first_row.state.as_str(), first_row.source.as_str(), first_row.repo.as_str()),
                ("queued", "gh", "acme/widgets")
            );
            assert_eq!((first_row.installation, first_row.kind.as_str()), (Some(9), "status"));
            assert!(queue.claim_reports(10, lease).await.unwrap().is_empty(), "held, and the next row waits behind it");
            // A transient failure lets go of it until its backoff ends; the next row still waits.
            queue.report_later(first_row.id, "502", now_ms() + 60_000).await.unwrap();
            assert!(queue.claim_reports(10, lease).await.unwrap().is_empty());
            queue.report_later(first_row.id, "502", 0).await.unwrap();
            let again = queue.claim_reports(10, lease).await.unwrap();
            assert_eq!((again[0].id, again[0].tries), (first_row.id, 2));
            queue.report_done(first_row.id, "sent").await.unwrap();
            let next = queue.claim_reports(10, lease).await.unwrap();
            assert_eq!((next[0].state.as_str(), next[0].sha.chars().next()), ("superseded", Some('a')));
            assert_eq!(next[0].superseded_by, Some(id));
            if let Store::Postgres(_) = &store {
                // Another node sharing the store gets none of what this one holds.
                let other = store.open("m");
                assert!(other.claim_reports(10, lease).await.unwrap().is_empty());
                other.close().await;
            }
            // A restart lets go of what the stopped process held.
            queue.close().await;
            let queue = store.open("n");
            let after_restart = queue.claim_reports(10, lease).await.unwrap();
            assert_eq!(after_restart.iter().map(|row| row.id).collect::<Vec<_>>(), [next[0].id]);
            queue.set_check_run(id, 1, &"b".repeat(40), 77).await.unwrap();
            assert_eq!(queue.check_run(id, 1, &"b".repeat(40)).await.unwrap(), Some(77));
            assert_eq!(queue.check_run(id, 2, &"b".repeat(40)).await.unwrap(), None);
            queue.close().await;
        }
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
