//! Moving from SQLite to PostgreSQL: `gitauto copy-queue` copies a stopped daemon's
//! SQLite queue (deliveries, jobs, steps, logs, nodes, paused rules, polled refs, schedule
//! ticks, report outbox and check runs, the comments that acted) into an empty PostgreSQL queue in one transaction, keeping every id, so the
//! history and the API's links stay as they were. Jobs that were running are put back in
//! line, as a restart would (see `requeue.rs`). The fingerprint salt is deliberately
//! not copied: it belongs to the store, not to the history. The PostgreSQL queue keeps
//! the one a node may already have made there (copying would collide with it) or makes
//! its own, every node computes its fingerprint with it when it starts on that queue,
//! and no fingerprint is copied that it would have to match (`nodes.config` is left out).

use super::db::{Db, PgConn};
use super::requeue::{Running, in_transaction, requeue_running};
use super::{SCHEMA_VERSION, migrate, migrate_postgres, redacted};
use anyhow::Context;
use rusqlite::types::Value;
use std::cell::RefCell;
use std::path::Path;

/// The tables, parents first, with the columns both stores have.
const TABLES: &[(&str, &str)] = &[
    (
        "deliveries",
        "seq, id, source, forge, event, received_at, headers, body, verdict, reason, normalised, explain, \
         duplicate_of, body_size, redelivery_of, arrived, body_encoding, repo, git_ref, trace",
    ),
    (
        "jobs",
        "id, delivery_seq, rule, key, repo, git_ref, state, attempts, created_at, started_at, finished_at, summary, \
         error, event_index, coalesce_key, not_before, max_attempts, cancel_requested, node, ran_on, lease_until, \
         superseded_by, concurrency, priority, slot, report, approved_head",
    ),
    (
        "steps",
        "job_id, idx, attempt, name, plugin, status, summary, output, started_at, finished_at, bill, plugin_digest, \
         plugin_signer",
    ),
    ("logs", "seq, job_id, attempt, step, at, level, message"),
    ("job_deliveries", "job_id, delivery_seq, event_index, at"),
    ("nodes", "name, started_at, heartbeat_at, stopped_at, version, workers"),
    ("paused_rules", "rule, paused_at, node"),
    ("polled_refs", "source, repo, git_ref, commit_id"),
    ("polled_repos", "source, repo, polled_at, delivery_seq"),
    ("schedule_ticks", "rule, spec, through_ms"),
    (
        "report_outbox",
        "id, job_id, attempt, state, kind, source, repo, sha, installation, rule, summary, superseded_by, created_at, \
         tries, next_at, claimed_by, claim_until, done_at, outcome",
    ),
    ("report_checks", "job_id, attempt, sha, run_id"),
    ("acted_comments", "source, repo, comment_id, rule, job_id, at"),
    ("queue_samples", "at, queued, running, waiting"),
    ("kv", "namespace, key, value, version, expires_at, updated_at"),
];

/// How many rows of each table were copied.
pub type Copied = Vec<(&'static str, usize)>;

/// Copies the SQLite queue in `data_dir` into the empty PostgreSQL queue at `url`.
pub fn sqlite_to_postgres(data_dir: &Path, url: &str) -> anyhow::Result<Copied> {
    let _lock = crate::lock::DataDirLock::acquire(data_dir)?;
    let path = data_dir.join("gitauto.sqlite");
    anyhow::ensure!(path.is_file(), "there is no SQLite queue at {}", path.display());
    let sqlite = rusqlite::Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
    migrate(&sqlite).with_context(|| format!("migrating {} to schema version {SCHEMA_VERSION}", path.display()))?;
    let url = url.to_owned();
    // The synchronous PostgreSQL client runs its own runtime: keep it on a thread of its own.
    std::thread::spawn(move || copy(&sqlite, &url))
        .join()
        .map_err(|_| anyhow::anyhow!("the copy stopped unexpectedly"))?
}

fn copy(sqlite: &rusqlite::Connection, url: &str) -> anyhow::Result<Copied> {
    let client = super::pg_connect::connect(url)?;
    let conn = RefCell::new(PgConn::new(client));
    let db = Db::Postgres(&conn);
    migrate_postgres(db)?;
    let held: i64 = conn.borrow_mut().client().query_one("SELECT count(*) FROM deliveries", &[])?.get(0);
    anyhow::ensure!(
        held == 0,
        "the PostgreSQL queue at {} already holds {held} deliveries; copy into an empty one",
        redacted(url)
    );
    let copied = in_transaction(db, || {
        let mut copied = Vec::new();
        for (table, columns) in TABLES {
            let width = columns.split(',').count();
            let placeholders: Vec<String> = (1..=width).map(|n| format!("${n}")).collect();
            let mut target = conn.borrow_mut();
            let client = target.client();
            let insert =
                client.prepare(&format!("INSERT INTO {table} ({columns}) VALUES ({})", placeholders.join(", ")))?;
            let mut select = sqlite.prepare(&format!("SELECT {columns} FROM {table}"))?;
            let mut rows = select.query([])?;
            let mut count = 0;
            while let Some(row) = rows.next()? {
                let cells = (0..width).map(|i| row.get::<_, Value>(i).map(Cell)).collect::<Result<Vec<_>, _>>()?;
                let args: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    cells.iter().map(|cell| cell as &(dyn postgres::types::ToSql + Sync)).collect();
                client.execute(&insert, &args).with_context(|| format!("copying a row of {table}"))?;
                count += 1;
            }
            copied.push((*table, count));
        }
        // The stopped daemon's running jobs, as its next start would have put them back.
        let recovered = requeue_running(db, Running::All, "gitauto stopped while it ran")?;
        recovered.log("copying the queue");
        db.batch(
            "SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), COALESCE((SELECT max(seq) FROM deliveries), 0) + 1, false);
             SELECT setval(pg_get_serial_sequence('jobs', 'id'), COALESCE((SELECT max(id) FROM jobs), 0) + 1, false);
             SELECT setval(pg_get_serial_sequence('logs', 'seq'), COALESCE((SELECT max(seq) FROM logs), 0) + 1, false);
             SELECT setval(pg_get_serial_sequence('report_outbox', 'id'),
                           COALESCE((SELECT max(id) FROM report_outbox), 0) + 1, false);",
        )?;
        Ok(copied)
    })?;
    Ok(copied)
}

/// A SQLite value, passed to PostgreSQL as the column's own type.
#[derive(Debug)]
struct Cell(Value);

impl postgres::types::ToSql for Cell {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Value::Null => Ok(postgres::types::IsNull::Yes),
            Value::Integer(n) => n.to_sql(ty, out),
            Value::Real(x) => x.to_sql(ty, out),
            Value::Text(text) => text.to_sql(ty, out),
            Value::Blob(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        // Each value is checked by the type it delegates to.
        true
    }

    postgres::types::to_sql_checked!();
}
