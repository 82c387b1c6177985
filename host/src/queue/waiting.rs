//! Jobs held for an approval (state `waiting`): releasing those an `/ok-to-test` covers,
//! and the record of the comments that acted (each approves or triggers a gated command
//! once). Who may approve, and for which commit, is decided in `crate::gate`; this only
//! moves the jobs it names, in one transaction.

use super::db::args;
use super::{Queue, event_at, now_ms};
use serde::Serialize;

/// What an approval did to a pull request's waiting jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Released {
    /// Jobs now queued: their event is for the approved head commit and arrived before
    /// the approval.
    pub released: Vec<i64>,
    /// Jobs of that pull request left waiting, each with why.
    pub left: Vec<(i64, String)>,
}

/// Which waiting jobs an approval covers.
#[derive(Debug, Clone)]
pub struct Approval {
    /// The source the approval arrived through; only its jobs are released.
    pub source: String,
    /// The repository (`owner/name`).
    pub repo: String,
    /// The pull request's number.
    pub number: u64,
    /// The pull request's head commit when the approval was checked.
    pub head: String,
    /// The approval's own delivery: a job whose event arrived later is newer than what
    /// the approver could have seen.
    pub before_delivery: i64,
}

impl Queue {
    /// Queues the waiting jobs `approval` covers and names those it leaves waiting. A job
    /// released here runs like any queued job but coalesces no more (a newer event must
    /// wait for its own approval).
    pub async fn release_waiting(&self, approval: Approval) -> anyhow::Result<Released> {
        let released = self
            .writer
            .call(move |db| {
                let lock = if db.is_postgres() { " FOR UPDATE OF j" } else { "" };
                let rows: Vec<(i64, Option<String>, i64, i64)> = db.query(
                    &format!(
                        "SELECT j.id, d.normalised, j.event_index, j.delivery_seq
                         FROM jobs j JOIN deliveries d ON d.seq = j.delivery_seq
                         WHERE j.state = 'waiting' AND j.repo = ?1 AND d.source = ?2 ORDER BY j.id{lock}"
                    ),
                    args![approval.repo, approval.source],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )?;
                let mut out = Released::default();
                for (id, events, index, seq) in rows {
                    let event: serde_json::Value =
                        serde_json::from_str(&event_at(events.as_deref(), index)).unwrap_or_default();
                    let pr = &event["pull_request"];
                    if pr["number"].as_u64() != Some(approval.number) {
                        continue;
                    }
                    let head = pr["head"].as_str().unwrap_or_default();
                    if head != approval.head {
                        out.left.push((id, format!("its head {head} is not the approved head {}", approval.head)));
                    } else if seq > approval.before_delivery {
                        out.left.push((id, "its event arrived after the approval".to_owned()));
                    } else {
                        db.execute(
                            "UPDATE jobs SET state = 'queued', coalesce_key = NULL, not_before = NULL, approved_head = ?2
                             WHERE id = ?1 AND state = 'waiting'",
                            args![id, approval.head],
                        )?;
                        super::reports::note(db, id)?;
                        out.released.push(id);
                    }
                }
                Ok(out)
            })
            .await?;
        if !released.released.is_empty() {
            self.wake.notify_waiters();
            self.report_wake.notify_one();
        }
        Ok(released)
    }

    /// Records that comment `comment_id` of `repo` (through `source`) acts in job `job` of
    /// `rule`;
    /// `Some(other)` when another job's already did (a replayed or redelivered comment),
    /// `None` when it is this job's (its first attempt or a retry of it).
    pub async fn act_on_comment(
        &self,
        source: &str,
        repo: &str,
        comment_id: u64,
        rule: &str,
        job: i64,
    ) -> anyhow::Result<Option<i64>> {
        let (source, repo, rule) = (source.to_owned(), repo.to_owned(), rule.to_owned());
        let comment_id = comment_id.to_string();
        self.writer
            .call(move |db| {
                db.execute(
                    "INSERT INTO acted_comments (source, repo, comment_id, rule, job_id, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (source, repo, comment_id, rule) DO NOTHING",
                    args![source, repo, comment_id, rule, job, now_ms()],
                )?;
                let owner: i64 = db.query_one(
                    "SELECT job_id FROM acted_comments
                     WHERE source = ?1 AND repo = ?2 AND comment_id = ?3 AND rule = ?4",
                    args![source, repo, comment_id, rule],
                    |row| row.get(0),
                )?;
                Ok((owner != job).then_some(owner))
            })
            .await
    }
}
