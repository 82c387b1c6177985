//! Accepting deliveries on PostgreSQL: a small pool of connections (`[store] connections`),
//! each on its own thread, takes the deliveries waiting and writes a whole group of them in
//! one statement (one round trip, its own commit): a data-modifying `WITH` over arrays that
//! inserts the deliveries, coalesces into queued jobs or inserts new ones, links each job to
//! its deliveries and notifies the other nodes. It writes the rows [`super::accept_in`]
//! writes for the same deliveries one by one.
//!
//! What the group statement does not cover goes through `accept_in` one delivery at a time,
//! each in its own transaction: refused deliveries, jobs for `every` node, reporting or
//! waiting jobs, a delivery id seen twice in one group, a delivery id accepted before (the
//! unique index refuses the group; the group is written again without those, and the
//! one-by-one path records them as duplicates), and every delivery of a group whose
//! statement failed otherwise (a race with another node over a coalescing key).

use super::db::{Db, PgConn};
use super::{Accepted, NewDelivery, NewJob, accept_in, now_ms, wake};
use crate::node::RunOn;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// The most deliveries one group takes.
const MAX_GROUP: usize = 512;

/// The most body bytes one group takes (bodies may be up to `max_body` each, and a
/// statement's arrays travel in one message that the server caps at 1 GB).
const MAX_GROUP_BYTES: usize = 16 << 20;

/// How many times a group statement that lost a race with another connection or node
/// (over a queued job's coalescing key, or a deadlock) runs again before its deliveries
/// go one by one: a new statement sees the other's job.
const GROUP_TRIES: usize = 3;

/// The default `[store] connections`.
pub const DEFAULT_CONNECTIONS: usize = 2;

/// A delivery waiting for a connection.
struct Item {
    delivery: NewDelivery,
    jobs: Vec<NewJob>,
    reply: oneshot::Sender<anyhow::Result<Accepted>>,
}

/// The accepting connections. Dropping it (or [`Pool::close`]) ends their threads.
pub struct Pool {
    sender: Mutex<Option<mpsc::Sender<Item>>>,
    stopped: Mutex<Vec<oneshot::Receiver<()>>>,
    closed: Arc<AtomicBool>,
}

impl Pool {
    /// Connects `connections` times to `url` and starts a thread per connection that
    /// accepts deliveries as node `node`; returns once every connection is made.
    pub fn start(url: &str, node: Arc<str>, connections: usize) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Item>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut stopped = Vec::new();
        let (ready, connected) = mpsc::channel::<anyhow::Result<()>>();
        for index in 0..connections.max(1) {
            let (receiver, node, url, ready) = (receiver.clone(), node.clone(), url.to_owned(), ready.clone());
            let (done, stop) = oneshot::channel();
            stopped.push(stop);
            // Connected on its own thread: the synchronous client must not run on the caller's
            // async runtime.
            std::thread::Builder::new().name(format!("gitauto-pg-accept-{index}")).spawn(move || {
                let client = match connect(&url) {
                    Ok(client) => {
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                let conn = RefCell::new(PgConn::new(client));
                let mut group = Group::default();
                while let Some(items) = next_items(&receiver) {
                    // A connection the server closed (a restart, a network cut) is made again.
                    if conn.borrow_mut().client().is_closed() {
                        match connect(&url) {
                            Ok(client) => {
                                *conn.borrow_mut() = PgConn::new(client);
                                group = Group::default();
                            }
                            Err(err) => tracing::error!("reconnecting an accepting connection: {err:#}"),
                        }
                    }
                    serve(&conn, &mut group, &node, items);
                }
                drop(conn);
                let _ = done.send(());
            })?;
        }
        drop(ready);
        for _ in 0..connections.max(1) {
            connected.recv().map_err(|_| anyhow::anyhow!("an accepting connection's thread stopped"))??;
        }
        Ok(Self { sender: Mutex::new(Some(sender)), stopped: Mutex::new(stopped), closed: Arc::default() })
    }

    /// Records `delivery` and queues its jobs, as [`super::Queue::accept`] does.
    pub async fn accept(&self, delivery: NewDelivery, jobs: Vec<NewJob>) -> anyhow::Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        {
            let sender = self.sender.lock().expect("the pool's sender is never poisoned");
            let sender = sender.as_ref().ok_or_else(|| anyhow::anyhow!("the queue is closed"))?;
            sender.send(Item { delivery, jobs, reply }).map_err(|_| anyhow::anyhow!("the queue is closed"))?;
        }
        answer.await.map_err(|_| anyhow::anyhow!("the queue's accepting connection stopped"))?
    }

    /// Finishes the deliveries submitted, then closes the connections.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        drop(self.sender.lock().expect("the pool's sender is never poisoned").take());
        let stopped = std::mem::take(&mut *self.stopped.lock().expect("the pool's threads are never poisoned"));
        for stop in stopped {
            let _ = stop.await;
        }
    }

    /// Set once [`Pool::close`] was called (the listener ends with it).
    pub fn closed(&self) -> Arc<AtomicBool> {
        self.closed.clone()
    }
}

/// An accepting connection, named so that an operator sees the pool in `pg_stat_activity`.
fn connect(url: &str) -> anyhow::Result<postgres::Client> {
    let mut client = super::pg_connect::connect(url)?;
    client.batch_execute("SET application_name = 'gitauto accept'")?;
    Ok(client)
}

/// The deliveries waiting, up to a group's worth; `None` once the pool is closed.
fn next_items(receiver: &Mutex<mpsc::Receiver<Item>>) -> Option<Vec<Item>> {
    let receiver = receiver.lock().ok()?;
    let first = receiver.recv().ok()?;
    let mut bytes = first.delivery.body.bytes().len();
    let mut items = vec![first];
    while items.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
        match receiver.try_recv() {
            Ok(item) => {
                bytes += item.delivery.body.bytes().len();
                items.push(item);
            }
            Err(_) => break,
        }
    }
    Some(items)
}

/// How a batch is written, in the order the deliveries arrived: runs of deliveries the
/// group statement covers, each in one statement, between the deliveries it does not
/// cover, each alone; so a job that coalesces ends with the newest event whichever path
/// each delivery took. Refused deliveries and repeats of a delivery id in the batch queue
/// nothing (a repeat is recorded as a duplicate of the first): they come last.
enum Part {
    Group(Vec<Item>),
    Alone(Box<Item>),
}

/// The parts of a batch, in the order they are written.
fn plan(items: Vec<Item>) -> Vec<Part> {
    let (mut parts, mut run, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut ids = HashSet::new();
    for item in items {
        if item.delivery.verdict.refused() || !ids.insert(delivery_key(&item)) {
            last.push(item);
        } else if groupable(&item) {
            run.push(item);
        } else {
            if !run.is_empty() {
                parts.push(Part::Group(std::mem::take(&mut run)));
            }
            parts.push(Part::Alone(Box::new(item)));
        }
    }
    if !run.is_empty() {
        parts.push(Part::Group(run));
    }
    parts.extend(last.into_iter().map(|item| Part::Alone(Box::new(item))));
    parts
}

/// A delivery's identity for duplicates: its source and id.
fn delivery_key(item: &Item) -> (String, String) {
    (item.delivery.source.clone(), item.delivery.id.clone())
}

/// Accepts `items` as [`plan`] orders them. Returns how many the group statement accepted.
fn serve(conn: &RefCell<PgConn>, group: &mut Group, node: &str, items: Vec<Item>) -> usize {
    let mut whole = 0;
    for part in plan(items) {
        match part {
            Part::Group(items) => whole += serve_group(conn, group, node, items),
            Part::Alone(item) => {
                let Item { delivery, jobs, reply } = *item;
                let _ = reply.send(one(conn, node, delivery, &jobs));
            }
        }
    }
    whole
}

/// Accepts a run of deliveries the group statement covers: in one statement, again after
/// a lost race, without the ids accepted before (recorded as duplicates one by one), and
/// one by one, in order, when it still fails. Returns how many the statement accepted.
fn serve_group(conn: &RefCell<PgConn>, group: &mut Group, node: &str, mut items: Vec<Item>) -> usize {
    let (mut tries, mut looked_for_duplicates) = (0, false);
    loop {
        let err = match group.run(conn, node, &items, now_ms()) {
            Ok(accepted) => {
                let whole = items.len();
                for (item, accepted) in items.into_iter().zip(accepted) {
                    let _ = item.reply.send(Ok(accepted));
                }
                return whole;
            }
            Err(err) => err,
        };
        tries += 1;
        if tries < GROUP_TRIES && lost_race(&err) {
            tracing::debug!("accepting {} deliveries in one statement lost a race; again: {err:#}", items.len());
            continue;
        }
        // A delivery id accepted before refuses the whole group: those are recorded as
        // duplicates one by one (they queue nothing), and the rest tried once more.
        if !looked_for_duplicates {
            looked_for_duplicates = true;
            if let Ok(seen) = accepted_before(conn, &items)
                && !seen.is_empty()
            {
                let (again, before): (Vec<Item>, Vec<Item>) =
                    items.into_iter().partition(|item| !seen.contains(&delivery_key(item)));
                for Item { delivery, jobs, reply } in before {
                    let _ = reply.send(one(conn, node, delivery, &jobs));
                }
                if again.is_empty() {
                    return 0;
                }
                (items, tries) = (again, 0);
                continue;
            }
        }
        if lost_race(&err) {
            tracing::debug!("accepting {} deliveries in one statement: {err:#}; one by one", items.len());
        } else {
            tracing::warn!("accepting {} deliveries in one statement failed: {err:#}; one by one", items.len());
        }
        for Item { delivery, jobs, reply } in items {
            let _ = reply.send(one(conn, node, delivery, &jobs));
        }
        return 0;
    }
}

/// Which of `items`' delivery ids were accepted before (by source).
fn accepted_before(conn: &RefCell<PgConn>, items: &[Item]) -> anyhow::Result<HashSet<(String, String)>> {
    let sources: Vec<&str> = items.iter().map(|item| item.delivery.source.as_str()).collect();
    let ids: Vec<&str> = items.iter().map(|item| item.delivery.id.as_str()).collect();
    let rows = conn.borrow_mut().client().query(
        "SELECT d.source, d.id FROM deliveries d JOIN unnest($1::text[], $2::text[]) AS x(source, id)
             ON d.source = x.source AND d.id = x.id
         WHERE d.verdict NOT IN ('duplicate', 'rejected', 'invalid')",
        &[&sources, &ids],
    )?;
    rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
}

/// Whether the group statement writes what `accept_in` would for this delivery.
fn groupable(item: &Item) -> bool {
    !item.delivery.verdict.refused()
        && item
            .jobs
            .iter()
            .all(|job| matches!(job.run_on, RunOn::Any | RunOn::Nodes(_)) && job.report.is_none() && !job.waiting)
}

/// How many times a delivery is accepted again after losing a race (see [`lost_race`]).
const COALESCE_TRIES: usize = 8;

/// One delivery in a transaction of its own, notifying the other nodes of new work. Two
/// connections (of this pool, or of other nodes) that both find no queued job for a
/// coalescing key both insert one, and the index of queued keys refuses the later: the
/// delivery is accepted again, and then coalesces into the job the other one queued (a
/// deadlock with another connection is tried again alike).
fn one(conn: &RefCell<PgConn>, node: &str, delivery: NewDelivery, jobs: &[NewJob]) -> anyhow::Result<Accepted> {
    let mut tries = 1;
    loop {
        match one_try(conn, node, &delivery, jobs) {
            Err(err) if tries < COALESCE_TRIES && lost_race(&err) => tries += 1,
            done => return done,
        }
    }
}

/// Whether `err` is a race lost to another connection or node that a new transaction
/// wins: the index of queued coalescing keys refusing a second queued job, or two
/// transactions updating queued jobs in opposite orders (a deadlock, one of them undone).
fn lost_race(err: &anyhow::Error) -> bool {
    use postgres::error::SqlState;
    err.downcast_ref::<postgres::Error>().and_then(postgres::Error::as_db_error).is_some_and(|db| {
        db.constraint() == Some("jobs_one_queued_per_coalesce_key")
            || [SqlState::T_R_DEADLOCK_DETECTED, SqlState::T_R_SERIALIZATION_FAILURE].contains(db.code())
    })
}

/// [`one`]'s transaction.
fn one_try(conn: &RefCell<PgConn>, node: &str, delivery: &NewDelivery, jobs: &[NewJob]) -> anyhow::Result<Accepted> {
    let db = Db::Postgres(conn);
    db.batch("BEGIN")?;
    let accepted = accept_in(db, delivery, jobs, node).and_then(|accepted| {
        if !accepted.jobs.is_empty() && !accepted.duplicate {
            wake::notify(db, node)?;
        }
        Ok(accepted)
    });
    match accepted {
        Ok(accepted) => {
            db.batch("COMMIT").map_err(|err| err.context("committing to the queue"))?;
            Ok(accepted)
        }
        Err(err) => {
            let _ = db.batch("ROLLBACK");
            Err(err)
        }
    }
}

/// The group statement, prepared once per connection.
#[derive(Default)]
struct Group {
    statement: Option<postgres::Statement>,
}

/// The group statement. `$1..$12`, `$30` (the body's encoding) and `$31..$33` (repository,
/// ref, trace) the deliveries, `$13`
/// now, `$14` this node; `$15..$26` the jobs to coalesce into or insert (one per
/// coalescing key, or per job without one), with the values of the last delivery that
/// reached them; `$27..$29` which delivery reached which of them. Sequence values are taken up front so that rows can refer to
/// each other within the statement.
const GROUP_SQL: &str = "
WITH din AS MATERIALIZED (
    SELECT x.i, nextval('deliveries_seq_seq') AS seq, x.id, x.source, x.forge, x.event, x.headers, x.body,
           x.verdict, x.reason, x.normalised, x.explain, x.redelivery_of, x.arrived, x.body_encoding,
           x.repo, x.git_ref, x.trace
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[],
                $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[], $30::text[], $31::text[],
                $32::text[], $33::text[])
         WITH ORDINALITY AS x(id, source, forge, event, headers, body, verdict, reason, normalised, explain,
                              redelivery_of, arrived, body_encoding, repo, git_ref, trace, i)
    ORDER BY x.i
), d AS (
    INSERT INTO deliveries (seq, id, source, forge, event, received_at, headers, body, verdict, reason,
                            normalised, explain, redelivery_of, arrived, body_encoding, repo, git_ref, trace)
    SELECT seq, id, source, forge, event, $13, headers, body, verdict, reason, normalised, explain,
           redelivery_of, arrived, body_encoding, repo, git_ref, trace
    FROM din ORDER BY i
), sin AS MATERIALIZED (
    SELECT s.*, dl.seq AS lseq
    FROM unnest($15::text[], $16::text[], $17::text[], $18::text[], $19::int8[], $20::text[], $21::int8[],
                $22::int8[], $23::text[], $24::int8[], $25::int8[], $26::int8[])
         WITH ORDINALITY AS s(rule, key, repo, git_ref, event_index, coalesce_key, max_attempts, quiet, node,
                              concurrency, priority, last, slot)
    JOIN din dl ON dl.i = s.last
), upd AS (
    UPDATE jobs j SET delivery_seq = GREATEST(j.delivery_seq, s.lseq),
           event_index = CASE WHEN j.delivery_seq <= s.lseq THEN s.event_index ELSE j.event_index END,
           git_ref = CASE WHEN j.delivery_seq <= s.lseq THEN s.git_ref ELSE j.git_ref END,
           max_attempts = s.max_attempts,
           not_before = CASE WHEN s.quiet > 0 THEN LEAST($13 + s.quiet, j.created_at + 10 * s.quiet)
                        ELSE j.not_before END,
           concurrency = s.concurrency, priority = s.priority
    FROM sin s
    WHERE s.coalesce_key IS NOT NULL AND j.coalesce_key = s.coalesce_key AND j.state = 'queued'
          AND j.report IS NULL
    RETURNING s.slot, j.id
), ids AS MATERIALIZED (
    SELECT s.slot, nextval('jobs_id_seq') AS id
    FROM sin s WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.slot = s.slot) ORDER BY s.slot
), ins AS (
    INSERT INTO jobs (id, delivery_seq, rule, key, repo, git_ref, event_index, coalesce_key, max_attempts, state,
                      created_at, not_before, node, concurrency, priority)
    SELECT ids.id, s.lseq, s.rule, s.key, s.repo, s.git_ref, s.event_index, s.coalesce_key, s.max_attempts,
           'queued', $13, CASE WHEN s.quiet > 0 THEN $13 + s.quiet END, s.node, s.concurrency, s.priority
    FROM ids JOIN sin s ON s.slot = ids.slot ORDER BY ids.slot
), m AS (
    SELECT slot, id, true AS updated FROM upd UNION ALL SELECT slot, id, false FROM ids
), jd AS (
    INSERT INTO job_deliveries (job_id, delivery_seq, event_index, at)
    SELECT m.id, dc.seq, c.event_index, $13
    FROM unnest($27::int8[], $28::int8[], $29::int8[]) WITH ORDINALITY AS c(slot, delivery, event_index, n)
    JOIN m ON m.slot = c.slot JOIN din dc ON dc.i = c.delivery
    ORDER BY c.n
    ON CONFLICT DO NOTHING
), n AS MATERIALIZED (
    SELECT pg_notify('gitauto_work', $14) FROM (SELECT 1 FROM ids LIMIT 1) x
)
SELECT m.slot, m.id, m.updated, (SELECT count(*) FROM n) FROM m";

/// A job row of the group: the first delivery that reached it names it (rule, keys,
/// node), the last one gives it its event.
struct Slot<'a> {
    first: &'a NewJob,
    key: String,
    coalesce_key: Option<String>,
    node: Option<String>,
    last: (usize, &'a NewJob),
    quiet: i64,
}

impl Group {
    /// Writes `items` in one statement; their answers in order.
    fn run(&mut self, conn: &RefCell<PgConn>, node: &str, items: &[Item], now: i64) -> anyhow::Result<Vec<Accepted>> {
        let mut slots: Vec<Slot> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        // (slot, delivery, event index), and for each delivery its jobs' slots in order.
        let mut reached: Vec<(usize, usize, i64)> = Vec::new();
        let mut per_delivery: Vec<Vec<usize>> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let mut mine = Vec::new();
            for job in &item.jobs {
                let targets: Vec<Option<&str>> = match &job.run_on {
                    RunOn::Nodes(names) => names.iter().map(|name| Some(name.as_str())).collect(),
                    _ => vec![None],
                };
                for target in targets {
                    let on_node = |key: &str| match target {
                        Some(node) => format!("{key}\n@{node}"),
                        None => key.to_owned(),
                    };
                    let coalesce_key = job.coalesce_key.as_deref().map(on_node);
                    let existing = coalesce_key.as_ref().and_then(|key| by_key.get(key).copied());
                    let slot = match existing {
                        Some(slot) => {
                            let reached = &mut slots[slot];
                            reached.last = (index, job);
                            if job.quiet_ms > 0 {
                                reached.quiet = job.quiet_ms;
                            }
                            slot
                        }
                        None => {
                            if let Some(key) = &coalesce_key {
                                by_key.insert(key.clone(), slots.len());
                            }
                            slots.push(Slot {
                                first: job,
                                key: on_node(&job.key),
                                coalesce_key,
                                node: target.map(str::to_owned),
                                last: (index, job),
                                quiet: job.quiet_ms.max(0),
                            });
                            slots.len() - 1
                        }
                    };
                    reached.push((slot, index, job.event_index as i64));
                    mine.push(slot);
                }
            }
            per_delivery.push(mine);
        }

        let ordinal = |index: usize| index as i64 + 1;
        let deliveries: Vec<&NewDelivery> = items.iter().map(|item| &item.delivery).collect();
        let headers: Vec<&str> = deliveries.iter().map(|d| d.headers.as_str()).collect();
        let id: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
        let source: Vec<&str> = deliveries.iter().map(|d| d.source.as_str()).collect();
        let forge: Vec<&str> = deliveries.iter().map(|d| d.forge.as_str()).collect();
        let event: Vec<Option<&str>> = deliveries.iter().map(|d| d.event.as_deref()).collect();
        let body: Vec<&[u8]> = deliveries.iter().map(|d| d.body.bytes()).collect();
        let body_encoding: Vec<Option<&str>> = deliveries.iter().map(|d| d.body.encoding()).collect();
        let verdict: Vec<&str> = deliveries.iter().map(|d| d.verdict.as_str()).collect();
        let reason: Vec<Option<&str>> = deliveries.iter().map(|d| d.reason.as_deref()).collect();
        let normalised: Vec<Option<&str>> = deliveries.iter().map(|d| d.normalised.as_deref()).collect();
        let explain: Vec<Option<&str>> = deliveries.iter().map(|d| d.explain.as_deref()).collect();
        let redelivery_of: Vec<Option<i64>> = deliveries.iter().map(|d| d.redelivery_of).collect();
        let arrived: Vec<&str> = deliveries.iter().map(|d| d.arrived).collect();
        let delivery_repo: Vec<Option<&str>> = deliveries.iter().map(|d| d.repo.as_deref()).collect();
        let delivery_ref: Vec<Option<&str>> = deliveries.iter().map(|d| d.git_ref.as_deref()).collect();
        let trace: Vec<Option<&str>> = deliveries.iter().map(|d| d.trace.as_deref()).collect();

        let rule: Vec<&str> = slots.iter().map(|s| s.first.rule.as_str()).collect();
        let key: Vec<&str> = slots.iter().map(|s| s.key.as_str()).collect();
        let repo: Vec<&str> = slots.iter().map(|s| s.first.repo.as_str()).collect();
        let git_ref: Vec<Option<&str>> = slots.iter().map(|s| s.last.1.git_ref.as_deref()).collect();
        let event_index: Vec<i64> = slots.iter().map(|s| s.last.1.event_index as i64).collect();
        let coalesce_key: Vec<Option<&str>> = slots.iter().map(|s| s.coalesce_key.as_deref()).collect();
        let max_attempts: Vec<i64> = slots.iter().map(|s| s.last.1.max_attempts).collect();
        let quiet: Vec<i64> = slots.iter().map(|s| s.quiet).collect();
        let job_node: Vec<Option<&str>> = slots.iter().map(|s| s.node.as_deref()).collect();
        let concurrency: Vec<Option<i64>> = slots.iter().map(|s| s.last.1.concurrency).collect();
        let priority: Vec<i64> = slots.iter().map(|s| s.last.1.priority).collect();
        let last: Vec<i64> = slots.iter().map(|s| ordinal(s.last.0)).collect();
        let reached_slot: Vec<i64> = reached.iter().map(|r| ordinal(r.0)).collect();
        let reached_delivery: Vec<i64> = reached.iter().map(|r| ordinal(r.1)).collect();
        let reached_event: Vec<i64> = reached.iter().map(|r| r.2).collect();

        let mut conn = conn.borrow_mut();
        let client = conn.client();
        let statement = match &self.statement {
            Some(statement) => statement.clone(),
            None => self.statement.insert(client.prepare(GROUP_SQL)?).clone(),
        };
        let rows = client.query(
            &statement,
            &[
                &id,
                &source,
                &forge,
                &event,
                &headers,
                &body,
                &verdict,
                &reason,
                &normalised,
                &explain,
                &redelivery_of,
                &arrived,
                &now,
                &node,
                &rule,
                &key,
                &repo,
                &git_ref,
                &event_index,
                &coalesce_key,
                &max_attempts,
                &quiet,
                &job_node,
                &concurrency,
                &priority,
                &last,
                &reached_slot,
                &reached_delivery,
                &reached_event,
                &body_encoding,
                &delivery_repo,
                &delivery_ref,
                &trace,
            ],
        )?;
        // slot (from 1) -> (job id, whether it was queued before this group)
        let mut jobs: HashMap<i64, (i64, bool)> = HashMap::with_capacity(rows.len());
        for row in &rows {
            jobs.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }
        let mut seen = vec![false; slots.len()];
        per_delivery
            .into_iter()
            .zip(items)
            .map(|(mine, item)| {
                let mut ids = Vec::with_capacity(mine.len());
                let mut coalesced = 0;
                for slot in mine {
                    let (id, updated) = *jobs
                        .get(&ordinal(slot))
                        .ok_or_else(|| anyhow::anyhow!("the group statement returned no job for slot {slot}"))?;
                    // Coalesced: into a job queued before, or one an earlier delivery reached.
                    coalesced += usize::from(updated || seen[slot]);
                    seen[slot] = true;
                    ids.push(id.to_string());
                }
                Ok(Accepted { delivery: item.delivery.id.clone(), jobs: ids, duplicate: false, coalesced })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{DeliveryVerdict, migrate_postgres};

    /// A small deterministic generator (xorshift), so that a failing case can be re-run.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn delivery(random: &mut Random) -> NewDelivery {
        let refused = random.below(12) == 0;
        NewDelivery {
            // A few ids only: duplicates inside a group and across groups.
            id: format!("d{}", random.below(60)),
            source: if random.below(6) == 0 { "gitlab" } else { "github" }.into(),
            forge: "github".into(),
            event: Some("push".into()),
            headers: serde_json::json!({"content-type": "application/json", "n": random.below(1000)}).to_string(),
            // Long bodies are stored compressed, short ones as received.
            body: crate::queue::StoredBody::new(bytes::Bytes::from(
                format!("{{\"n\":{}}}", random.below(1000)).repeat(1 + 40 * random.below(3) as usize),
            )),
            verdict: if refused { DeliveryVerdict::Rejected } else { DeliveryVerdict::Queued },
            reason: random.below(2).eq(&0).then(|| "why".to_owned()),
            normalised: Some(r#"[{"repository":{"clone_url":"file:///x/widgets.git"}},{"n":2}]"#.into()),
            explain: Some("{}".into()),
            redelivery_of: None,
            arrived: "webhook",
            repo: random.below(2).eq(&0).then(|| "acme/widgets".to_owned()),
            git_ref: random.below(2).eq(&0).then(|| format!("refs/heads/b{}", random.below(3))),
            trace: random.below(3).eq(&0).then(|| format!("00-{:032x}-{:016x}-01", random.below(1000), 1)),
        }
    }

    fn job(random: &mut Random) -> NewJob {
        let key = random.below(4);
        NewJob {
            rule: format!("r{}", random.below(2)),
            key: format!("k{key}"),
            repo: "acme/widgets".into(),
            git_ref: Some(format!("refs/heads/b{}", random.below(3))),
            event_index: random.below(2) as usize,
            coalesce_key: (random.below(4) != 0).then(|| format!("c{key}")),
            max_attempts: 1 + random.below(3) as i64,
            quiet_ms: [0, 0, 100, 300][random.below(4) as usize],
            run_on: match random.below(10) {
                0 => RunOn::Every,
                1 | 2 => RunOn::Nodes(vec!["a".into(), "b".into()]),
                _ => RunOn::Any,
            },
            concurrency: random.below(2).eq(&0).then(|| 1 + random.below(3) as i64),
            priority: random.below(3) as i64,
            report: None,
            waiting: random.below(10) == 0,
        }
    }

    fn connection(url: &str) -> RefCell<PgConn> {
        let conn = RefCell::new(PgConn::new(crate::queue::pg_connect::connect(url).unwrap()));
        migrate_postgres(Db::Postgres(&conn)).unwrap();
        conn
    }

    /// The rows a queue holds, with job ids replaced by their rank and deliveries by their
    /// rank in content order (the group statement takes sequence values up front, so a
    /// failed group leaves gaps, and records duplicates after the group), times left out
    /// (they are the clock's).
    fn rows(conn: &RefCell<PgConn>) -> Vec<String> {
        let sql = "
            WITH d AS (SELECT seq, dense_rank() OVER (ORDER BY id, source, verdict, headers, body) AS r FROM deliveries),
                 j AS (SELECT id, dense_rank() OVER (ORDER BY id) AS r FROM jobs)
            SELECT 'delivery ' || concat_ws(' | ', d.r, x.id, x.source, x.forge, x.event, x.headers,
                       encode(x.body, 'escape'), x.verdict, x.reason, x.normalised, x.explain, o.r, x.body_size,
                       x.redelivery_of, x.arrived, x.body_encoding, x.repo, x.git_ref, x.trace)
            FROM deliveries x JOIN d ON d.seq = x.seq LEFT JOIN d o ON o.seq = x.duplicate_of
            UNION ALL
            SELECT 'job ' || concat_ws(' | ', j.r, d.r, x.rule, x.key, x.repo, x.git_ref, x.state, x.event_index,
                       x.coalesce_key, x.not_before IS NULL, x.max_attempts,
                       x.node, x.concurrency, x.priority, x.report)
            FROM jobs x JOIN j ON j.id = x.id JOIN d ON d.seq = x.delivery_seq
            UNION ALL
            SELECT 'link ' || concat_ws(' | ', j.r, d.r, x.event_index)
            FROM job_deliveries x JOIN j ON j.id = x.job_id JOIN d ON d.seq = x.delivery_seq
            ORDER BY 1";
        let mut conn = conn.borrow_mut();
        conn.client().query(sql, &[]).unwrap().iter().map(|row| row.get(0)).collect()
    }

    /// Answers with job ids replaced by their rank among the queue's jobs.
    fn ranked(conn: &RefCell<PgConn>, answers: Vec<Result<Accepted, String>>) -> Vec<String> {
        let mut conn = conn.borrow_mut();
        let ids: Vec<i64> =
            conn.client().query("SELECT id FROM jobs ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(accepted) => {
                    let jobs: Vec<usize> = accepted
                        .jobs
                        .iter()
                        .map(|id| ids.binary_search(&id.parse::<i64>().unwrap()).unwrap())
                        .collect();
                    format!(
                        "{} {jobs:?} dup={} coalesced={}",
                        accepted.delivery, accepted.duplicate, accepted.coalesced
                    )
                }
                Err(err) => err,
            })
            .collect()
    }

    /// A batch keeps its arrival order for every delivery that queues a job: the run of
    /// grouped ones before a delivery that goes alone is written before it, and the run
    /// after, after; refused deliveries and repeated ids (which queue nothing) come last.
    #[test]
    fn a_batch_is_written_in_the_order_it_arrived() {
        let item = |id: &str, every: bool, refused: bool| {
            let mut random = Random(7);
            let mut delivery = delivery(&mut random);
            delivery.id = id.into();
            delivery.source = "github".into();
            delivery.verdict = if refused { DeliveryVerdict::Rejected } else { DeliveryVerdict::Queued };
            let mut job = job(&mut random);
            job.run_on = if every { RunOn::Every } else { RunOn::Any };
            (job.report, job.waiting) = (None, false);
            Item { delivery, jobs: vec![job], reply: oneshot::channel().0 }
        };
        let batch = vec![
            item("1", false, false),
            item("bad", false, true),
            item("2", false, false),
            item("3", true, false),
            item("1", false, false),
            item("4", false, false),
        ];
        let shape: Vec<String> = plan(batch)
            .into_iter()
            .map(|part| match part {
                Part::Group(items) => {
                    format!("group {}", items.iter().map(|i| i.delivery.id.as_str()).collect::<Vec<_>>().join(","))
                }
                Part::Alone(item) => format!("alone {}", item.delivery.id),
            })
            .collect();
        assert_eq!(shape, ["group 1,2", "alone 3", "group 4", "alone bad", "alone 1"]);
    }

    /// Random groups, with duplicates inside a group and across groups, coalescing keys,
    /// refused deliveries, jobs for every node, for named nodes and waiting ones, and
    /// queued jobs started between groups: the grouped path writes the rows, and gives
    /// the answers, that accepting the same deliveries one by one does.
    #[test]
    fn a_group_writes_what_accepting_one_by_one_writes() {
        let (Some(grouped_url), Some(alone_url)) = (crate::testing::database(), crate::testing::database()) else {
            return;
        };
        let grouped = connection(&grouped_url);
        let alone = connection(&alone_url);
        let mut statement = Group::default();
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let (mut grouped_answers, mut alone_answers) = (Vec::new(), Vec::new());
        let mut groups_whole = 0;
        for round in 0..60 {
            let size = 1 + random.below(16) as usize;
            let batch: Vec<(NewDelivery, Vec<NewJob>)> = (0..size)
                .map(|_| {
                    let jobs = (0..random.below(4)).map(|_| job(&mut random)).collect();
                    (delivery(&mut random), jobs)
                })
                .collect();
            let items = |answers: &mut Vec<_>| -> Vec<Item> {
                batch
                    .iter()
                    .cloned()
                    .map(|(delivery, jobs)| {
                        let (reply, answer) = oneshot::channel();
                        answers.push(answer);
                        Item { delivery, jobs, reply }
                    })
                    .collect()
            };
            let mut answers = Vec::new();
            groups_whole += usize::from(serve(&grouped, &mut statement, "a", items(&mut answers)) > 0);
            for mut answer in answers {
                grouped_answers.push(answer.try_recv().unwrap().map_err(|err| format!("{err:#}")));
            }
            // One by one, in the order the group path takes them: as they arrived, refused
            // deliveries and repeated ids last (they queue nothing).
            let mut answers = Vec::new();
            let ordered = plan(items(&mut answers)).into_iter().flat_map(|part| match part {
                Part::Group(items) => items,
                Part::Alone(item) => vec![*item],
            });
            for Item { delivery, jobs, reply } in ordered {
                let _ = reply.send(one(&alone, "a", delivery, &jobs));
            }
            for mut answer in answers {
                alone_answers.push(answer.try_recv().unwrap().map_err(|err| format!("{err:#}")));
            }
            if random.below(3) == 0 {
                // A worker starts the oldest queued job, so the next groups queue new ones.
                let start = "UPDATE jobs SET state = 'running' WHERE id = (SELECT min(id) FROM jobs q
                    WHERE state = 'queued'
                      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.key = q.key AND r.state = 'running'))";
                grouped.borrow_mut().batch(start).unwrap();
                alone.borrow_mut().batch(start).unwrap();
            }
            let (mine, theirs) = (rows(&grouped), rows(&alone));
            let only =
                |a: &[String], b: &[String]| a.iter().filter(|row| !b.contains(row)).cloned().collect::<Vec<_>>();
            assert!(
                mine == theirs,
                "round {round}: only grouped {:#?}\nonly one by one {:#?}",
                only(&mine, &theirs),
                only(&theirs, &mine)
            );
        }
        assert_eq!(ranked(&grouped, grouped_answers), ranked(&alone, alone_answers));
        assert!(groups_whole >= 20, "only {groups_whole} groups went through the group statement");
    }
}
