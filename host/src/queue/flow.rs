//! Flow control's state in the queue: paused rules (shared by every daemon on the store,
//! kept across restarts), the `concurrency` and `priority` that queued jobs carry (given
//! again after each config load), and each rule's jobs in hand. The claim that obeys them
//! is in `jobs.rs`; the config keys are the config's.

use super::db::{Db, args};
use super::{Queue, now_ms, rfc3339};
use crate::config::Rule;
use serde::Serialize;

/// A rule's flow settings as a job carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLimits {
    /// Rule name.
    pub rule: String,
    /// At most this many of its jobs run at once, across every node (`None`: no limit).
    pub concurrency: Option<i64>,
    /// Among claimable jobs, higher runs first.
    pub priority: i64,
}

impl FlowLimits {
    /// The settings of `rule` as configured.
    pub fn of(rule: &Rule) -> Self {
        Self { rule: rule.name.clone(), concurrency: rule.concurrency.map(i64::from), priority: rule.priority }
    }
}

/// A paused rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paused {
    /// Rule name.
    pub rule: String,
    /// When it was paused (RFC 3339).
    pub paused_at: String,
    /// The node whose API paused it.
    pub node: String,
}

/// A rule's jobs in hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleLoad {
    /// Queued jobs (waiting for a worker, a quiet period, a backoff, a place, or a resume).
    pub queued: i64,
    /// Running jobs, on any node.
    pub running: i64,
}

impl Queue {
    /// Pauses `rule`: its jobs stay queued until [`Queue::resume`]. Returns false when it
    /// was paused already (it keeps its first pause time). Jobs running now finish.
    pub async fn pause(&self, rule: &str) -> anyhow::Result<bool> {
        let (rule, node) = (rule.to_owned(), self.node.clone());
        self.writer
            .call(move |db| {
                let added = db.execute(
                    "INSERT INTO paused_rules (rule, paused_at, node) VALUES (?1, ?2, ?3) ON CONFLICT (rule) DO NOTHING",
                    args![rule, now_ms(), &*node],
                )?;
                Ok(added > 0)
            })
            .await
    }

    /// Resumes a paused `rule`: its queued jobs may run again. Returns false when it was
    /// not paused.
    pub async fn resume(&self, rule: &str) -> anyhow::Result<bool> {
        let rule = rule.to_owned();
        let removed =
            self.writer.call(move |db| db.execute("DELETE FROM paused_rules WHERE rule = ?1", args![rule])).await?;
        // Other nodes find the jobs at their next look (within a second).
        if removed > 0 {
            self.wake.notify_waiters();
        }
        Ok(removed > 0)
    }

    /// The paused rules, by name.
    pub async fn paused(&self) -> anyhow::Result<Vec<Paused>> {
        self.writer.call(paused).await
    }

    /// Queued and running jobs of each rule that has any, by rule name.
    pub async fn rule_loads(&self) -> anyhow::Result<Vec<(String, RuleLoad)>> {
        self.writer
            .call(|db| {
                let counts: Vec<(String, String, i64)> = db.query(
                    "SELECT rule, state, count(*) FROM jobs WHERE state IN ('queued', 'running')
                     GROUP BY rule, state ORDER BY rule",
                    args![],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?;
                let mut loads: Vec<(String, RuleLoad)> = Vec::new();
                for (rule, state, count) in counts {
                    if loads.last().is_none_or(|(last, _)| *last != rule) {
                        loads.push((rule, RuleLoad::default()));
                    }
                    let load = &mut loads.last_mut().expect("a rule's entry was just pushed").1;
                    match state.as_str() {
                        "queued" => load.queued = count,
                        _ => load.running = count,
                    }
                }
                Ok(loads)
            })
            .await
    }

    /// Gives the queued jobs of each rule in `limits` that rule's concurrency and
    /// priority (after the config was loaded or reloaded: a changed limit applies to jobs
    /// already waiting; running jobs keep running). Returns how many jobs changed.
    pub async fn set_flow(&self, limits: Vec<FlowLimits>) -> anyhow::Result<usize> {
        let changed = self
            .writer
            .call(move |db| {
                let mut changed = 0;
                for limit in &limits {
                    changed += db.execute(
                        "UPDATE jobs SET concurrency = ?2, priority = ?3
                         WHERE rule = ?1 AND state = 'queued'
                           AND (COALESCE(concurrency, 0) <> COALESCE(CAST(?2 AS BIGINT), 0) OR priority <> ?3)",
                        args![limit.rule, limit.concurrency, limit.priority],
                    )?;
                }
                Ok(changed)
            })
            .await?;
        // A raised limit may let a queued job start now.
        if changed > 0 {
            self.wake.notify_waiters();
        }
        Ok(changed)
    }
}

fn paused(db: Db) -> anyhow::Result<Vec<Paused>> {
    db.query("SELECT rule, paused_at, node FROM paused_rules ORDER BY rule", args![], |row| {
        Ok(Paused { rule: row.get(0)?, paused_at: rfc3339(row.get(1)?), node: row.get(2)? })
    })
}
