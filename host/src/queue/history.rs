//! The delivery record, read back: lists and single deliveries for the API, and stored
//! deliveries for redelivery.

use super::db::{Db, Row, args};
use super::{Queue, job_ids_of, rfc3339};
use serde::Serialize;

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this verdict.
    pub verdict: Option<String>,
    /// Only this repository (deliveries recorded from schema 16 on: older rows have no
    /// `repo` column value).
    pub repo: Option<String>,
    /// Only deliveries recorded before this sequence number (for paging).
    pub before: Option<i64>,
    /// Only deliveries recorded after this sequence number (newer pages, live updates).
    pub after: Option<i64>,
    /// At most this many (capped at 500).
    pub limit: usize,
}

/// One line of the delivery list.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    /// Position in the record; unique, unlike a forge's delivery id.
    pub seq: i64,
    /// The forge's delivery id, or the one gitauto generated.
    pub id: String,
    /// Source name.
    pub source: String,
    /// Forge name.
    pub forge: String,
    /// The forge's event name.
    pub event: Option<String>,
    /// The first event's repository (for rows from before schema 16: read from the
    /// stored events).
    pub repo: Option<String>,
    /// The first event's ref.
    pub git_ref: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    /// `queued`, `unmatched`, `ignored`, `ping`, `duplicate`, `rejected` or `invalid`.
    pub verdict: String,
    /// Why, for every verdict but `queued` and `ping`.
    pub reason: Option<String>,
    /// Jobs it queued (a duplicate: the original's).
    pub jobs: Vec<String>,
    /// How it arrived: `webhook`, `redelivery`, `manual`, `compat`, `schedule`,
    /// `catch-up` or `poll`.
    pub arrived: String,
}

/// A delivery with everything recorded about it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: DeliverySummary,
    /// Headers as received, minus signatures and tokens.
    pub headers: serde_json::Value,
    /// The body as text (or, when it is not UTF-8, `body_base64`).
    pub body: Option<String>,
    /// The body in base64, when it is not UTF-8.
    pub body_base64: Option<String>,
    /// Bytes received, when the stored body was cut short.
    pub body_size: Option<i64>,
    /// The normalised events.
    pub events: serde_json::Value,
    /// Each rule's verdict on each event.
    pub rules: serde_json::Value,
    /// The original delivery, for a duplicate.
    pub duplicate_of: Option<i64>,
    /// The delivery this one ran again.
    pub redelivery_of: Option<i64>,
    /// The deliveries that ran this one again, oldest first (at most 50).
    pub redeliveries: Vec<i64>,
    /// The jobs it carries (a duplicate: its original's), with their rule and state now.
    pub job_states: Vec<JobLink>,
}

/// A job as a delivery's page links to it.
#[derive(Debug, Clone, Serialize)]
pub struct JobLink {
    /// Job id.
    pub id: String,
    /// Its rule.
    pub rule: String,
    /// Its state now.
    pub state: String,
}

/// A stored delivery, to run again.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    /// Its sequence number.
    pub seq: i64,
    /// Its delivery id.
    pub id: String,
    /// Source name.
    pub source: String,
    /// The forge's event name.
    pub event: Option<String>,
    /// Verdict.
    pub verdict: String,
    /// Headers as stored.
    pub headers: serde_json::Value,
    /// Body as stored.
    pub body: Vec<u8>,
    /// How it arrived.
    pub arrived: String,
}

/// Columns 10 to 12 are the repository, the ref, and the stored events only when the
/// repository column is empty (rows from before schema 16), read for the page's rows alone.
const SUMMARY_COLUMNS: &str = "seq, id, source, forge, event, received_at, verdict, reason, duplicate_of, arrived,
     repo, git_ref, CASE WHEN repo IS NULL THEN normalised END";

/// A summary row; its `jobs` are filled in by [`with_jobs`] once the rows are read.
fn summary(row: &Row) -> anyhow::Result<DeliverySummary> {
    let events: Option<String> = row.get(12)?;
    Ok(DeliverySummary {
        seq: row.get(0)?,
        id: row.get(1)?,
        source: row.get(2)?,
        forge: row.get(3)?,
        event: row.get(4)?,
        received_at: rfc3339(row.get(5)?),
        verdict: row.get(6)?,
        reason: row.get(7)?,
        jobs: Vec::new(),
        arrived: row.get(9)?,
        repo: row.get::<Option<String>>(10)?.or_else(|| first_event(events.as_deref(), "/repository/full_name")),
        git_ref: row.get::<Option<String>>(11)?.or_else(|| first_event(events.as_deref(), "/git_ref")),
    })
}

/// A field of the first stored event (version 2 rows hold a list, version 1 rows one event).
fn first_event(events: Option<&str>, pointer: &str) -> Option<String> {
    let events: serde_json::Value = serde_json::from_str(events?).ok()?;
    let first = if events.is_array() { events.get(0)? } else { &events };
    first.pointer(pointer)?.as_str().filter(|text| !text.is_empty()).map(str::to_owned)
}

/// Fills in the jobs a delivery carries (for a duplicate: its original's).
fn with_jobs(db: Db, mut summary: DeliverySummary, duplicate_of: Option<i64>) -> anyhow::Result<DeliverySummary> {
    summary.jobs = job_ids_of(db, duplicate_of.unwrap_or(summary.seq))?;
    Ok(summary)
}

/// The sequence number `key` names: a delivery id (its accepted record, else its latest
/// one), or a sequence number.
fn resolve(db: Db, key: &str) -> anyhow::Result<Option<i64>> {
    let by_id = db.query_opt(
        "SELECT seq FROM deliveries WHERE id = ?1
         ORDER BY verdict IN ('duplicate', 'rejected', 'invalid'), seq DESC LIMIT 1",
        args![key],
        |row| row.get(0),
    )?;
    match (by_id, key.parse::<i64>()) {
        (Some(seq), _) => Ok(Some(seq)),
        (None, Ok(seq)) => db.query_opt("SELECT seq FROM deliveries WHERE seq = ?1", args![seq], |row| row.get(0)),
        (None, Err(_)) => Ok(None),
    }
}

fn json_column(text: Option<String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(serde_json::Value::Null)
}

/// The list's statement for `filter` (parameters: source, verdict, before, limit, repo,
/// after), and whether it reads oldest first.
fn list_sql(filter: &DeliveryFilter) -> (String, bool) {
    // With a repository, the index on (repo, seq) bounds the scan; without one, the
    // primary key's order does.
    let repo = if filter.repo.is_some() { "repo = ?5" } else { "CAST(?5 AS TEXT) IS NULL" };
    // Each bound written as a plain comparison when it is given (and the parameter kept as
    // a constant when not): `? IS NULL OR seq > ?` is no range to SQLite, which would read
    // the table from its first row at every poll of a live list.
    let before = if filter.before.is_some() { "seq < ?3" } else { "CAST(?3 AS BIGINT) IS NULL" };
    let after = if filter.after.is_some() { "seq > ?6" } else { "CAST(?6 AS BIGINT) IS NULL" };
    // After a position, the oldest ones after it come first (a page back towards the
    // newest); the answer is still newest first.
    let ascending = filter.after.is_some() && filter.before.is_none();
    let order = if ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM deliveries
         WHERE (CAST(?1 AS TEXT) IS NULL OR source = ?1) AND (CAST(?2 AS TEXT) IS NULL OR verdict = ?2)
           AND {before} AND {repo} AND {after}
         ORDER BY seq {order} LIMIT ?4"
    );
    (sql, ascending)
}

impl Queue {
    /// Deliveries, newest first.
    pub async fn deliveries(&self, filter: DeliveryFilter) -> anyhow::Result<Vec<DeliverySummary>> {
        self.writer
            .call(move |db| {
                let limit = filter.limit.clamp(1, 500) as i64;
                let (sql, ascending) = list_sql(&filter);
                let mut rows = db.query(
                    &sql,
                    args![filter.source, filter.verdict, filter.before, limit, filter.repo, filter.after],
                    |row| Ok((summary(row)?, row.get::<Option<i64>>(8)?)),
                )?;
                if ascending {
                    rows.reverse();
                }
                rows.into_iter().map(|(summary, duplicate_of)| with_jobs(db, summary, duplicate_of)).collect()
            })
            .await
    }

    /// One delivery, by delivery id or sequence number.
    pub async fn delivery(&self, key: String) -> anyhow::Result<Option<DeliveryView>> {
        self.writer
            .call(move |db| {
                let Some(seq) = resolve(db, &key)? else { return Ok(None) };
                let view = db.query_one(
                    &format!(
                        "SELECT {SUMMARY_COLUMNS}, headers, body, body_size, normalised, explain, redelivery_of,
                                body_encoding
                         FROM deliveries WHERE seq = ?1"
                    ),
                    args![seq],
                    |row| {
                        let body = super::body::decode(row.get(14)?, row.get::<Option<String>>(19)?.as_deref())?;
                        let (text, base64) = match String::from_utf8(body) {
                            Ok(text) => (Some(text), None),
                            Err(err) => {
                                use base64::Engine as _;
                                (None, Some(base64::engine::general_purpose::STANDARD.encode(err.as_bytes())))
                            }
                        };
                        let mut events = json_column(row.get(16)?);
                        if events.is_object() {
                            // Version 1 rows hold one event.
                            events = serde_json::Value::Array(vec![events]);
                        }
                        Ok(DeliveryView {
                            summary: summary(row)?,
                            headers: json_column(row.get(13)?),
                            body: text,
                            body_base64: base64,
                            body_size: row.get(15)?,
                            events,
                            rules: json_column(row.get(17)?),
                            duplicate_of: row.get(8)?,
                            redelivery_of: row.get(18)?,
                            redeliveries: Vec::new(),
                            job_states: Vec::new(),
                        })
                    },
                )?;
                let summary = with_jobs(db, view.summary, view.duplicate_of)?;
                // The index on redelivery_of answers this.
                let redeliveries = db.query(
                    "SELECT seq FROM deliveries WHERE redelivery_of = ?1 ORDER BY seq LIMIT 50",
                    args![seq],
                    |row| row.get(0),
                )?;
                let job_states = db.query(
                    "SELECT DISTINCT j.id, j.rule, j.state FROM job_deliveries x JOIN jobs j ON j.id = x.job_id
                     WHERE x.delivery_seq = ?1 ORDER BY j.id",
                    args![view.duplicate_of.unwrap_or(seq)],
                    |row| Ok(JobLink { id: row.get::<i64>(0)?.to_string(), rule: row.get(1)?, state: row.get(2)? }),
                )?;
                Ok(Some(DeliveryView { summary, redeliveries, job_states, ..view }))
            })
            .await
    }

    /// A stored delivery to run again. A duplicate resolves to its original.
    pub async fn stored(&self, key: String) -> anyhow::Result<Option<StoredDelivery>> {
        self.writer
            .call(move |db| {
                let Some(seq) = resolve(db, &key)? else { return Ok(None) };
                let stored = db.query_one(
                    "SELECT COALESCE(d.duplicate_of, d.seq) FROM deliveries d WHERE d.seq = ?1",
                    args![seq],
                    |row| row.get::<i64>(0),
                )?;
                let delivery = db.query_one(
                    "SELECT seq, id, source, event, verdict, headers, body, arrived, body_encoding
                     FROM deliveries WHERE seq = ?1",
                    args![stored],
                    |row| {
                        Ok(StoredDelivery {
                            seq: row.get(0)?,
                            id: row.get(1)?,
                            source: row.get(2)?,
                            event: row.get(3)?,
                            verdict: row.get(4)?,
                            headers: json_column(row.get(5)?),
                            body: super::body::decode(row.get(6)?, row.get::<Option<String>>(8)?.as_deref())?,
                            arrived: row.get(7)?,
                        })
                    },
                )?;
                Ok(Some(delivery))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page or a live poll reads from its bound by the primary key (or the repository's
    /// index), never from the table's first row.
    #[test]
    fn lists_read_from_their_bound() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::queue::migrate(&conn).unwrap();
        let plan = |filter: DeliveryFilter| {
            let (sql, _) = list_sql(&filter);
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = statement
                .query_map(
                    rusqlite::params![filter.source, filter.verdict, filter.before, 50, filter.repo, filter.after],
                    |row| row.get::<_, String>(3),
                )
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let after = plan(DeliveryFilter { after: Some(10), verdict: Some("queued".into()), ..Default::default() });
        assert!(after.contains("USING INTEGER PRIMARY KEY (rowid>?)"), "{after}");
        let before = plan(DeliveryFilter { before: Some(10), ..Default::default() });
        assert!(before.contains("USING INTEGER PRIMARY KEY (rowid<?)"), "{before}");
        let repo = plan(DeliveryFilter { after: Some(10), repo: Some("acme/x".into()), ..Default::default() });
        assert!(repo.contains("deliveries_by_repo (repo=? AND seq>?)"), "{repo}");
    }
}
