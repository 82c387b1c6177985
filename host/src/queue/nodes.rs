//! The nodes that share this store: each records when it started serving, a heartbeat
//! while it serves, and when it stopped cleanly (see `crate::node`), and its config's
//! fingerprint (written at join and with every heartbeat, so a reload shows within one),
//! keyed by the store's salt.

use super::db::args;
use super::requeue::{Running, requeue_running};
use super::{Queue, now_ms, rfc3339};
use crate::node::{LEASE, LIVE_WITHIN, NodeView};

impl Queue {
    /// Records this node as serving with `workers` workers (its config's fingerprint
    /// unknown).
    pub async fn join(&self, workers: usize) -> anyhow::Result<()> {
        self.join_with_config(workers, None).await
    }

    /// Records this node as serving with `workers` workers and the config whose
    /// fingerprint is `config` (none: unknown).
    pub async fn join_with_config(&self, workers: usize, config: Option<String>) -> anyhow::Result<()> {
        let node = self.node.clone();
        self.writer
            .call(move |db| {
                let now = now_ms();
                db.execute(
                    "INSERT INTO nodes (name, started_at, heartbeat_at, stopped_at, version, workers, config)
                     VALUES (?1, ?2, ?2, NULL, ?3, ?4, ?5)
                     ON CONFLICT (name) DO UPDATE SET started_at = ?2, heartbeat_at = ?2, stopped_at = NULL,
                                                      version = ?3, workers = ?4, config = ?5",
                    args![&*node, now, env!("CARGO_PKG_VERSION"), workers as i64, config.as_deref()],
                )?;
                Ok(())
            })
            .await
    }

    /// The store's random salt for config fingerprints (see `config::fingerprint`): made
    /// by the first node that asks, then the same for every node on this store, so their
    /// fingerprints agree while a shown one cannot be checked against guessed secrets.
    pub async fn fingerprint_salt(&self) -> anyhow::Result<[u8; 32]> {
        let mut fresh = [0; 32];
        getrandom::fill(&mut fresh).map_err(|err| anyhow::anyhow!("no randomness for the fingerprint salt: {err}"))?;
        let fresh = hex::encode(fresh);
        let kept: String = self
            .writer
            .call_repeatable(move |db| {
                // Nodes starting together: the first insert wins, every node reads that one.
                db.execute(
                    "INSERT INTO fingerprint_salt (id, salt) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                    args![fresh],
                )?;
                db.query_one("SELECT salt FROM fingerprint_salt WHERE id = 1", args![], |row| row.get(0))
            })
            .await?;
        let mut salt = [0; 32];
        hex::decode_to_slice(&kept, &mut salt)
            .map_err(|err| anyhow::anyhow!("the queue's fingerprint salt is not 64 hex characters: {err}"))?;
        Ok(salt)
    }

    /// Records that this node is alive now and extends the leases of its running jobs;
    /// then puts back in line the running jobs of nodes whose leases expired (taken for
    /// dead): queued again, merged into a queued job of their coalescing key, or set aside.
    /// A job that cannot be put back never stops the beat. Returns how many were handled.
    pub async fn heartbeat(&self) -> anyhow::Result<usize> {
        self.heartbeat_with_config(None).await
    }

    /// [`Queue::heartbeat`], recording too that this node's config now has the
    /// fingerprint `config` (none: the recorded one stays).
    pub async fn heartbeat_with_config(&self, config: Option<String>) -> anyhow::Result<usize> {
        let node = self.node.clone();
        let recovered = self
            .writer
            .call(move |db| {
                let now = now_ms();
                db.execute(
                    "UPDATE nodes SET heartbeat_at = ?2, config = COALESCE(?3, config) WHERE name = ?1",
                    args![&*node, now, config.as_deref()],
                )?;
                db.execute(
                    "UPDATE jobs SET lease_until = ?2 WHERE state = 'running' AND ran_on = ?1",
                    args![&*node, now + LEASE.as_millis() as i64],
                )?;
                requeue_running(db, Running::LeaseExpiredBefore(now), "its node stopped renewing its lease")
            })
            .await?;
        if !recovered.is_empty() {
            recovered.log("lease expired");
            self.wake.notify_waiters();
        }
        Ok(recovered.len())
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

    /// Every node that has served from this store, by name, those whose config differs
    /// marked (see [`crate::node::mark_differing`]).
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        let mut nodes = self
            .writer
            .call(|db| {
                let live_since = now_ms() - LIVE_WITHIN.as_millis() as i64;
                db.query(
                    "SELECT name, started_at, heartbeat_at, stopped_at, version, workers, config
                     FROM nodes ORDER BY name",
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
                            config: row.get(6)?,
                            config_differs: false,
                        })
                    },
                )
            })
            .await?;
        crate::node::mark_differing(&mut nodes, &self.node);
        Ok(nodes)
    }
}
