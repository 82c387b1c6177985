//! The nodes that share this store: each records when it started serving, a heartbeat
//! while it serves, and when it stopped cleanly (see `crate::node`).

use super::db::args;
use super::{Queue, now_ms, rfc3339};
use crate::node::{LEASE, LIVE_WITHIN, NodeView};

impl Queue {
    /// Records this node as serving with `workers` workers.
    pub async fn join(&self, workers: usize) -> anyhow::Result<()> {
        let node = self.node.clone();
        self.writer
            .call(move |db| {
                let now = now_ms();
                db.execute(
                    "INSERT INTO nodes (name, started_at, heartbeat_at, stopped_at, version, workers)
                     VALUES (?1, ?2, ?2, NULL, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET started_at = ?2, heartbeat_at = ?2, stopped_at = NULL,
                                                      version = ?3, workers = ?4",
                    args![&*node, now, env!("CARGO_PKG_VERSION"), workers as i64],
                )?;
                Ok(())
            })
            .await
    }

    /// Records that this node is alive now and extends the leases of its running jobs;
    /// then queues again the running jobs of nodes whose leases expired (taken for dead).
    /// Returns how many were queued again.
    pub async fn heartbeat(&self) -> anyhow::Result<usize> {
        let node = self.node.clone();
        let requeued = self
            .writer
            .call(move |db| {
                let now = now_ms();
                db.execute("UPDATE nodes SET heartbeat_at = ?2 WHERE name = ?1", args![&*node, now])?;
                db.execute(
                    "UPDATE jobs SET lease_until = ?2 WHERE state = 'running' AND ran_on = ?1",
                    args![&*node, now + LEASE.as_millis() as i64],
                )?;
                let requeued = db.execute(
                    "UPDATE jobs SET state = 'queued', started_at = NULL, lease_until = NULL
                     WHERE state = 'running' AND lease_until < ?1",
                    args![now],
                )?;
                Ok(requeued)
            })
            .await?;
        if requeued > 0 {
            tracing::warn!(requeued, "queued again the running jobs of nodes that stopped renewing their leases");
            self.wake.notify_waiters();
        }
        Ok(requeued)
    }

    /// Records that this node stopped serving (no `every` jobs are made for it meanwhile).
    pub async fn leave(&self) -> anyhow::Result<()> {
        let node = self.node.clone();
        self.writer
            .call(move |db| {
                db.execute("UPDATE nodes SET stopped_at = ?2 WHERE name = ?1", args![&*node, now_ms()])?;
                Ok(())
            })
            .await
    }

    /// Every node that has served from this store, by name.
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        self.writer
            .call(|db| {
                let live_since = now_ms() - LIVE_WITHIN.as_millis() as i64;
                db.query(
                    "SELECT name, started_at, heartbeat_at, stopped_at, version, workers FROM nodes ORDER BY name",
                    args![],
                    |row| {
                        let heartbeat_at: i64 = row.get(2)?;
                        let stopped_at: Option<i64> = row.get(3)?;
                        Ok(NodeView {
                            name: row.get(0)?,
                            live: stopped_at.is_none() && heartbeat_at >= live_since,
                            started_at: rfc3339(row.get(1)?),
                            heartbeat_at: rfc3339(heartbeat_at),
                            stopped_at: stopped_at.map(rfc3339),
                            version: row.get(4)?,
                            workers: row.get(5)?,
                        })
                    },
                )
            })
            .await
    }
}
