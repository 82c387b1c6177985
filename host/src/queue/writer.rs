//! The one thread that owns the SQLite connection. Requests arrive over a channel and
//! run in batches: each in its own savepoint, all in one transaction, and every caller is
//! answered only after `COMMIT` returned. That makes each answer durable while bursts
//! share one fsync (group commit).
//!
//! Here the batching, shared by both stores; `writer/sqlite.rs` starts the SQLite
//! writer and its checkpointer, `writer/postgres.rs` the PostgreSQL one.

mod postgres;
mod sqlite;

use super::db::{Db, PgConn};
use rusqlite::Connection;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// The most requests one transaction takes; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

/// Upper bounds of the commit batch histogram's buckets (requests per commit).
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// How many requests each commit carried, in this process (every queue it opened): the
/// histogram `/metrics` shows as `gitauto_queue_commit_batch`.
static COMMIT_BATCHES: CommitBatches = CommitBatches {
    buckets: [const { AtomicU64::new(0) }; BATCH_BUCKETS.len()],
    sum: AtomicU64::new(0),
    count: AtomicU64::new(0),
};

/// Counts of commits by requests carried (cumulative per bucket once read).
pub struct CommitBatches {
    buckets: [AtomicU64; BATCH_BUCKETS.len()],
    sum: AtomicU64,
    count: AtomicU64,
}

impl CommitBatches {
    fn record(&self, requests: usize) {
        let requests = requests as u64;
        if let Some(bucket) = BATCH_BUCKETS.iter().position(|bound| requests <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(requests, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Commits so far with at most each bound of [`BATCH_BUCKETS`] requests (cumulative),
    /// the requests they carried, and the commits.
    pub fn read() -> ([u64; BATCH_BUCKETS.len()], u64, u64) {
        let batches = &COMMIT_BATCHES;
        let mut cumulative = [0; BATCH_BUCKETS.len()];
        let mut total = 0;
        for (out, bucket) in cumulative.iter_mut().zip(&batches.buckets) {
            total += bucket.load(Ordering::Relaxed);
            *out = total;
        }
        (cumulative, batches.sum.load(Ordering::Relaxed), batches.count.load(Ordering::Relaxed))
    }
}

/// A queued request.
trait Request: Send {
    /// Runs against the connection; returns whether it succeeded (so its work is kept or
    /// rolled back). Runs at most once unless [`Request::repeatable`].
    fn run(&mut self, conn: &Conn) -> bool;
    /// Whether it may run again after a rollback undid its work: its work depends on the
    /// database alone, so a batch can run several such requests without a savepoint each
    /// and redo them one by one in the rare batch where one fails.
    fn repeatable(&self) -> bool;
    /// Answers, once the commit's fate is known.
    fn answer(self: Box<Self>, committed: Result<(), String>);
    /// Answers without running: the transaction could not even start.
    fn fail(self: Box<Self>, error: String);
}

/// A request: its work (taken when it runs, unless repeatable), the result of its last
/// run, and whom to answer.
struct Call<F, T, R> {
    work: Work<F>,
    result: Option<anyhow::Result<T>>,
    reply: R,
}

/// A request's work: a closure that runs once (made by [`once`], which refuses a second
/// run), or one that may run again.
enum Work<F> {
    Once(F),
    Repeatable(F),
}

/// `f` as the `FnMut` a request holds; a second call is an error, not a second run.
fn once<T, F>(f: F) -> impl FnMut(Db<'_>) -> anyhow::Result<T> + Send + 'static
where
    F: FnOnce(Db<'_>) -> anyhow::Result<T> + Send + 'static,
{
    let mut f = Some(f);
    move |db: Db<'_>| match f.take() {
        Some(f) => f(db),
        None => Err(anyhow::anyhow!("a queue request ran twice")),
    }
}

impl<T, F, R> Request for Call<F, T, R>
where
    T: Send + 'static,
    F: FnMut(Db<'_>) -> anyhow::Result<T> + Send,
    R: FnOnce(anyhow::Result<T>) + Send + 'static,
{
    fn run(&mut self, conn: &Conn) -> bool {
        let (Work::Once(f) | Work::Repeatable(f)) = &mut self.work;
        let result = f(conn.db());
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn repeatable(&self) -> bool {
        matches!(self.work, Work::Repeatable(_))
    }

    fn answer(self: Box<Self>, committed: Result<(), String>) {
        let result = self.result.unwrap_or_else(|| Err(anyhow::anyhow!("the queue request did not run")));
        (self.reply)(committed.map_err(|err| anyhow::anyhow!("committing to the queue: {err}")).and(result));
    }

    fn fail(self: Box<Self>, error: String) {
        (self.reply)(Err(anyhow::anyhow!("{error}")));
    }
}

/// Requests run in one transaction.
type Batch = Vec<Box<dyn Request>>;

/// The connection the writer thread owns.
enum Conn {
    Sqlite(Connection),
    Postgres(Box<RefCell<PgConn>>),
}

impl Conn {
    fn db(&self) -> Db<'_> {
        match self {
            Conn::Sqlite(conn) => Db::Sqlite(conn),
            Conn::Postgres(conn) => Db::Postgres(conn),
        }
    }

    /// Transaction control: `BEGIN`, `COMMIT`, savepoints.
    fn control(&self, sql: &str) -> Result<(), String> {
        let sql = match (self, sql) {
            // Take the write lock at once, so a batch never fails half-way on a busy file.
            (Conn::Sqlite(_), "BEGIN") => "BEGIN IMMEDIATE",
            _ => sql,
        };
        match self {
            Conn::Sqlite(conn) => {
                conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(|e| e.to_string())
            }
            Conn::Postgres(conn) => conn.borrow_mut().batch(sql).map_err(|e| e.to_string()),
        }
    }
}

/// What the writer thread receives.
enum Message {
    Run(Box<dyn Request>),
    /// Finish what came before, close both connections (truncating the log), then answer.
    Close(oneshot::Sender<()>),
}

/// A handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Message>,
    closed: Arc<AtomicBool>,
}

impl Writer {
    /// Commits what was submitted before, then closes the database (its log truncated)
    /// and returns once no file of it is open. Later calls fail.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if self.sender.send(Message::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Whether [`Writer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Runs `f` in the next batch and returns its result once committed.
    pub async fn call<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Db<'_>) -> anyhow::Result<T> + Send + 'static,
    {
        self.wait(Work::Once(once(f))).await
    }

    /// Like [`Writer::call`], for work that may run again (it reads and writes the
    /// database only, so a rollback undoes all it did): such requests share their batch's
    /// transaction without a savepoint each, which costs them nothing unless one fails.
    pub async fn call_repeatable<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnMut(Db<'_>) -> anyhow::Result<T> + Send + 'static,
    {
        self.wait(Work::Repeatable(f)).await
    }

    async fn wait<T, F>(&self, work: Work<F>) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnMut(Db<'_>) -> anyhow::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(work, move |result| {
            let _ = tx.send(result);
        })?;
        rx.await.map_err(|_| anyhow::anyhow!("the queue's database thread stopped"))?
    }

    /// Runs `f` in the next batch without waiting; a failure is only logged. For writes
    /// that nobody waits on, such as plugin log lines.
    pub fn detach<F>(&self, f: F)
    where
        F: FnOnce(Db<'_>) -> anyhow::Result<()> + Send + 'static,
    {
        let submitted = self.submit(Work::Once(once(f)), |result: anyhow::Result<()>| {
            if let Err(err) = result {
                tracing::error!("queue write failed: {err:#}");
            }
        });
        if let Err(err) = submitted {
            tracing::error!("queue write dropped: {err:#}");
        }
    }

    fn submit<T, F, R>(&self, work: Work<F>, reply: R) -> anyhow::Result<()>
    where
        T: Send + 'static,
        F: FnMut(Db<'_>) -> anyhow::Result<T> + Send + 'static,
        R: FnOnce(anyhow::Result<T>) + Send + 'static,
    {
        if self.is_closed() {
            anyhow::bail!("the queue is closed");
        }
        let request = Box::new(Call { work, result: None, reply });
        self.sender.send(Message::Run(request)).map_err(|_| anyhow::anyhow!("the queue is closed"))
    }
}

/// Runs batches until every handle is gone (`None`) or one asks to close (its answer).
fn run(
    conn: &Conn,
    receiver: mpsc::Receiver<Message>,
    checkpointer: Option<&mpsc::SyncSender<()>>,
) -> Option<oneshot::Sender<()>> {
    let mut closing = None;
    while closing.is_none() {
        let Ok(first) = receiver.recv() else { break };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Run(work) => batch.push(work),
                Message::Close(answer) => {
                    closing = Some(answer);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let Some((batch, ran)) = run_batch(conn, batch) else { continue };
        COMMIT_BATCHES.record(batch.len());
        let committed = ran.and_then(|()| conn.control("COMMIT"));
        if committed.is_err() {
            let _ = conn.control("ROLLBACK");
        }
        for request in batch {
            request.answer(committed.clone());
        }
        // Wake the checkpointer (a wake-up already pending is enough).
        if let Some(checkpointer) = checkpointer {
            let _ = checkpointer.try_send(());
        }
    }
    closing
}

/// Runs `batch` in one transaction and returns it, ready to answer, with whether the
/// transaction may commit; `None` when it could not start (every request was answered).
fn run_batch(conn: &Conn, mut batch: Batch) -> Option<(Batch, Result<(), String>)> {
    if let Err(err) = conn.control("BEGIN") {
        let message = format!("starting a queue transaction: {err}");
        for request in batch {
            request.fail(message.clone());
        }
        return None;
    }
    let mut start = 0;
    while start < batch.len() {
        let end = if batch[start].repeatable() {
            start + batch[start..].iter().take_while(|request| request.repeatable()).count()
        } else {
            start + 1
        };
        let group = &mut batch[start..end];
        // A lone request that opens the transaction needs no savepoint either.
        let together = if group[0].repeatable() && (group.len() > 1 || start == 0) {
            run_together(conn, group, start == 0)
        } else {
            Ok(false)
        };
        match together {
            Ok(true) => {}
            Ok(false) => group.iter_mut().for_each(|request| run_alone(conn, request)),
            // The transaction is gone: nothing of this batch may be answered as committed.
            Err(err) => return Some((batch, Err(format!("undoing a failed request: {err}")))),
        }
        start = end;
    }
    Some((batch, Ok(())))
}

/// Runs repeatable requests without a savepoint each: whether all succeeded. When one
/// fails, their work is rolled back (the whole transaction, when they opened it: `first`)
/// and the caller runs them again, each in a savepoint of its own, so that only the
/// failing one's work is lost. A savepoint costs SQLite a copy of every page a request
/// changes first, so most batches are spared them.
fn run_together(conn: &Conn, group: &mut [Box<dyn Request>], first: bool) -> Result<bool, String> {
    if !first {
        conn.control("SAVEPOINT together")?;
    }
    if group.iter_mut().all(|request| request.run(conn)) {
        if !first {
            conn.control("RELEASE SAVEPOINT together")?;
        }
        return Ok(true);
    }
    if first {
        conn.control("ROLLBACK").and_then(|()| conn.control("BEGIN"))?;
    } else {
        conn.control("ROLLBACK TO SAVEPOINT together").and_then(|()| conn.control("RELEASE SAVEPOINT together"))?;
    }
    Ok(false)
}

/// Runs one request in a savepoint of its own: its failure must not undo the others.
fn run_alone(conn: &Conn, request: &mut Box<dyn Request>) {
    if let Err(err) = conn.control("SAVEPOINT request") {
        tracing::error!("queue savepoint: {err}");
    }
    let end = if request.run(conn) { Ok(()) } else { conn.control("ROLLBACK TO SAVEPOINT request") };
    if let Err(err) = end.and_then(|()| conn.control("RELEASE SAVEPOINT request")) {
        tracing::error!("queue savepoint: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_once_request_run_twice_is_an_error_not_a_second_run() {
        let conn = Connection::open_in_memory().unwrap();
        let mut runs = 0;
        let mut f = once(move |_db: Db<'_>| {
            runs += 1;
            Ok(runs)
        });
        assert_eq!(f(Db::Sqlite(&conn)).unwrap(), 1);
        let again = f(Db::Sqlite(&conn)).unwrap_err();
        assert_eq!(again.to_string(), "a queue request ran twice");
    }
}
