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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// The most requests one transaction takes; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

/// A queued request.
trait Request: Send {
    /// Runs against the connection; returns whether it succeeded (so its savepoint is
    /// kept or rolled back) and how to answer once the commit's fate is known.
    fn run(self: Box<Self>, conn: &Conn) -> (bool, Reply);
    /// Answers without running: the transaction could not even start.
    fn fail(self: Box<Self>, error: String);
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

struct Call<F, R> {
    f: F,
    reply: R,
}

impl<T, F, R> Request for Call<F, R>
where
    T: Send + 'static,
    F: FnOnce(Db<'_>) -> anyhow::Result<T> + Send,
    R: FnOnce(anyhow::Result<T>) + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Conn) -> (bool, Reply) {
        let Call { f, reply } = *self;
        let result = f(conn.db());
        let ok = result.is_ok();
        let reply: Reply = Box::new(move |committed| {
            reply(committed.map_err(|err| anyhow::anyhow!("committing to the queue: {err}")).and(result));
        });
        (ok, reply)
    }

    fn fail(self: Box<Self>, error: String) {
        (self.reply)(Err(anyhow::anyhow!("{error}")));
    }
}

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
        let (tx, rx) = oneshot::channel();
        self.submit(f, move |result| {
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
        let submitted = self.submit(f, |result: anyhow::Result<()>| {
            if let Err(err) = result {
                tracing::error!("queue write failed: {err:#}");
            }
        });
        if let Err(err) = submitted {
            tracing::error!("queue write dropped: {err:#}");
        }
    }

    fn submit<T, F, R>(&self, f: F, reply: R) -> anyhow::Result<()>
    where
        T: Send + 'static,
        F: FnOnce(Db<'_>) -> anyhow::Result<T> + Send + 'static,
        R: FnOnce(anyhow::Result<T>) + Send + 'static,
    {
        if self.is_closed() {
            anyhow::bail!("the queue is closed");
        }
        self.sender.send(Message::Run(Box::new(Call { f, reply }))).map_err(|_| anyhow::anyhow!("the queue is closed"))
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
        let replies = run_batch(conn, batch);
        if replies.is_empty() {
            continue;
        }
        let committed = conn.control("COMMIT");
        if committed.is_err() {
            let _ = conn.control("ROLLBACK");
        }
        for reply in replies {
            reply(committed.clone());
        }
        // Wake the checkpointer (a wake-up already pending is enough).
        if let Some(checkpointer) = checkpointer {
            let _ = checkpointer.try_send(());
        }
    }
    closing
}

fn run_batch(conn: &Conn, batch: Vec<Box<dyn Request>>) -> Vec<Reply> {
    if let Err(err) = conn.control("BEGIN") {
        let message = format!("starting a queue transaction: {err}");
        for request in batch {
            request.fail(message.clone());
        }
        return Vec::new();
    }
    batch
        .into_iter()
        .map(|request| {
            // A savepoint per request: one failing request must not undo the others.
            if let Err(err) = conn.control("SAVEPOINT request") {
                tracing::error!("queue savepoint: {err}");
            }
            let (ok, reply) = request.run(conn);
            let end = if ok { Ok(()) } else { conn.control("ROLLBACK TO SAVEPOINT request") };
            if let Err(err) = end.and_then(|()| conn.control("RELEASE SAVEPOINT request")) {
                tracing::error!("queue savepoint: {err}");
            }
            reply
        })
        .collect()
}
