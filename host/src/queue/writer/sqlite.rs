//! The SQLite writer: one thread owns the connection. Checkpoints (copying the
//! write-ahead log into the database file) run on a second thread with its own
//! connection, so that commits never wait for them.

use super::{Conn, Message, Writer, run};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The least time between two checkpoints while commits keep coming.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

impl Writer {
    /// Starts the thread that owns `conn` (the database at `path`) and its checkpointer.
    /// Both end at [`Writer::close`] or when every handle is dropped.
    pub fn start(conn: Connection, path: &Path) -> anyhow::Result<Self> {
        // Savepoints journal the pages they change; in memory, that is a copy, not a file.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY")?;
        conn.set_prepared_statement_cache_capacity(64);
        let checkpoints = Connection::open(path)?;
        checkpoints.execute_batch("PRAGMA busy_timeout = 5000")?;
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let checkpointer = std::thread::Builder::new()
            .name("gitauto-checkpoint".into())
            .spawn(move || checkpoint(checkpoints, commits))?;
        let (sender, receiver) = mpsc::channel::<Message>();
        std::thread::Builder::new().name("gitauto-sqlite".into()).spawn(move || {
            let conn = Conn::Sqlite(conn);
            let closed = run(&conn, receiver, Some(&committed));
            // Close the database before saying so: whoever waits may unmount it next.
            drop((conn, committed));
            let _ = checkpointer.join();
            if let Some(closed) = closed {
                let _ = closed.send(());
            }
        })?;
        Ok(Self { sender, closed: Arc::default() })
    }
}

/// Checkpoints after commits, at most every [`CHECKPOINT_INTERVAL`], and once more
/// (truncating the log) when the writer stops.
fn checkpoint(conn: Connection, commits: mpsc::Receiver<()>) {
    let run = |mode: &str| {
        if let Err(err) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            tracing::warn!("queue checkpoint: {err}");
        }
    };
    while commits.recv().is_ok() {
        let started = Instant::now();
        run("PASSIVE");
        // Let commits accumulate before the next one.
        let mut stopped = false;
        while let Some(left) = CHECKPOINT_INTERVAL.checked_sub(started.elapsed()) {
            if let Err(mpsc::RecvTimeoutError::Disconnected) = commits.recv_timeout(left) {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
    }
    run("TRUNCATE");
}
