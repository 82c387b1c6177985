//! Waking workers when a job may have become claimable: this daemon's own workers at once,
//! and, on PostgreSQL, every other daemon's through `NOTIFY gitauto_work` (a listener thread
//! per daemon turns the notification into a local wake-up). The workers' idle poll stays
//! the fallback when a notification is lost (the listener reconnecting, say).

use super::db::Db;
use super::writer::Writer;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The channel every daemon listens on; a notification's payload is the sending node.
pub(super) const CHANNEL: &str = "gitauto_work";

/// The queue's wake-up: local workers, and the other daemons sharing a PostgreSQL store.
pub struct Wake {
    local: Arc<Notify>,
    /// Set on PostgreSQL: where a `NOTIFY` goes, and this node's name (its payload).
    others: Option<(Writer, Arc<str>)>,
    /// A `NOTIFY` is submitted and not yet run: later wake-ups ride on it.
    pending: Arc<AtomicBool>,
    /// Wake-ups that came from another node's notification, and from the listener
    /// (re)connecting, for the metrics.
    notified: AtomicU64,
}

impl Wake {
    /// A wake-up for this daemon's workers only (the SQLite store).
    pub fn local() -> Self {
        Self { local: Arc::new(Notify::new()), others: None, pending: Arc::default(), notified: AtomicU64::new(0) }
    }

    /// A wake-up that also notifies the other daemons through `writer`'s connection.
    pub fn shared(writer: Writer, node: Arc<str>) -> Self {
        Self { others: Some((writer, node)), ..Self::local() }
    }

    /// What the workers wait on.
    pub fn signal(&self) -> Arc<Notify> {
        self.local.clone()
    }

    /// Wakes this daemon's idle workers and tells the other daemons (with the next commit
    /// of the writer; a burst of wake-ups sends one notification).
    pub fn notify_waiters(&self) {
        self.local.notify_waiters();
        let Some((writer, node)) = &self.others else { return };
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pending, node) = (self.pending.clone(), node.clone());
        writer.detach(move |db| {
            pending.store(false, Ordering::Release);
            notify(db, &node)
        });
    }

    /// Wakes this daemon's idle workers only (the other daemons were told already).
    pub fn notify_here(&self) {
        self.local.notify_waiters();
    }

    /// Wakes this daemon's idle workers only: another daemon said so.
    pub fn notify_local(&self) {
        self.notified.fetch_add(1, Ordering::Relaxed);
        self.local.notify_waiters();
    }

    /// How many wake-ups came from other daemons' notifications.
    pub fn woken_by_others(&self) -> u64 {
        self.notified.load(Ordering::Relaxed)
    }
}

/// Queues `NOTIFY gitauto_work, node` in the current transaction (sent at its commit;
/// PostgreSQL folds duplicates within one transaction).
pub(super) fn notify(db: Db, node: &str) -> anyhow::Result<()> {
    db.query_opt("SELECT pg_notify('gitauto_work', ?1)", crate::queue::db::args![node], |_| Ok(()))?;
    Ok(())
}

/// Starts the thread that listens for other daemons' notifications on its own connection
/// to `url` and wakes `wake`'s local workers; it reconnects after errors (waking the workers
/// once, since a notification may have been missed) and ends when `wake` is dropped or
/// `closed` turns true.
#[allow(clippy::disallowed_methods, reason = "the listener's own thread waits out its backoff")]
pub(super) fn listen(url: String, node: Arc<str>, wake: Weak<Wake>, closed: Arc<AtomicBool>) -> anyhow::Result<()> {
    std::thread::Builder::new().name("gitauto-pg-listen".into()).spawn(move || {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        while !closed.load(Ordering::Relaxed) && wake.strong_count() > 0 {
            let ended = listen_once(&url, &node, &wake, &closed, &mut backoff, first);
            first = false;
            if let Err(err) = ended {
                tracing::warn!("listening for other nodes' work on PostgreSQL: {err:#}; again in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    })?;
    Ok(())
}

/// One connection's life: `LISTEN`, then wake-ups until an error or the end.
fn listen_once(
    url: &str,
    node: &str,
    wake: &Weak<Wake>,
    closed: &AtomicBool,
    backoff: &mut Duration,
    first: bool,
) -> anyhow::Result<()> {
    let mut client = super::pg_connect::connect(url)?;
    client.batch_execute(&format!("SET application_name = 'gitauto listen'; LISTEN {CHANNEL}"))?;
    *backoff = Duration::from_millis(100);
    if !first {
        // Whatever was queued while the listener was away.
        if let Some(wake) = wake.upgrade() {
            wake.notify_local();
        }
    }
    let mut quiet = Duration::ZERO;
    // Short timeouts so that a closing queue ends the thread (and its connection) soon.
    const TICK: Duration = Duration::from_millis(250);
    while !closed.load(Ordering::Relaxed) {
        let mut iter = client.notifications();
        let mut notifications = iter.timeout_iter(TICK);
        let mut woke = false;
        while let Some(notification) = notifications.next()? {
            woke = true;
            if notification.payload() == node {
                continue;
            }
            let Some(wake) = wake.upgrade() else { return Ok(()) };
            wake.notify_local();
            if closed.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        drop(notifications);
        drop(iter);
        if wake.strong_count() == 0 {
            return Ok(());
        }
        quiet = if woke { Duration::ZERO } else { quiet + TICK };
        if quiet >= Duration::from_secs(30) {
            // A connection that died quietly shows here.
            client.batch_execute("SELECT 1")?;
            quiet = Duration::ZERO;
        }
    }
    Ok(())
}
