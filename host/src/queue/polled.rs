//! What catch-up and ref polling look up in the record: which of a forge's delivery ids
//! are recorded already, what the last poll of a repository saw, and whether a ref's move
//! arrived as a delivery.

use super::Queue;
use super::db::args;
use std::collections::{BTreeMap, HashSet};

/// What the last poll of a repository saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledState {
    /// Each branch and tag ref, with the commit it pointed at.
    pub refs: BTreeMap<String, String>,
    /// The newest recorded delivery when that poll began: a ref that moved since is looked
    /// for among the deliveries after it.
    pub delivery_seq: i64,
    /// When (Unix ms).
    pub polled_at: i64,
}

impl Queue {
    /// Which of `ids` are recorded for `source`. A delivery whose signature was rejected
    /// does not count (the forge's copy, fetched over its API, may be the real one); one
    /// that was unreadable does (the forge's copy would be too, at every pass).
    pub async fn known_deliveries(&self, source: String, ids: Vec<String>) -> anyhow::Result<HashSet<String>> {
        self.writer
            .call(move |db| {
                let mut known = HashSet::new();
                for id in ids {
                    // One indexed lookup each: the list is a page of a forge's API (at most 100).
                    let found: Option<i64> = db.query_opt(
                        "SELECT seq FROM deliveries
                         WHERE source = ?1 AND id = ?2 AND verdict <> 'rejected' LIMIT 1",
                        args![source, id],
                        |row| row.get(0),
                    )?;
                    if found.is_some() {
                        known.insert(id);
                    }
                }
                Ok(known)
            })
            .await
    }

    /// The sequence number of the newest recorded delivery (0 when there is none).
    pub async fn newest_delivery_seq(&self) -> anyhow::Result<i64> {
        self.writer
            .call(|db| {
                let newest: Option<i64> = db.query_one("SELECT max(seq) FROM deliveries", args![], |row| row.get(0))?;
                Ok(newest.unwrap_or(0))
            })
            .await
    }

    /// What the last poll of `repo` through `source` saw; none before its first poll.
    pub async fn polled(&self, source: String, repo: String) -> anyhow::Result<Option<PolledState>> {
        self.writer
            .call(move |db| {
                let Some((polled_at, delivery_seq)) = db.query_opt(
                    "SELECT polled_at, delivery_seq FROM polled_repos WHERE source = ?1 AND repo = ?2",
                    args![source, repo],
                    |row| Ok((row.get::<i64>(0)?, row.get::<i64>(1)?)),
                )?
                else {
                    return Ok(None);
                };
                let refs = db.query(
                    "SELECT git_ref, commit_id FROM polled_refs WHERE source = ?1 AND repo = ?2",
                    args![source, repo],
                    |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)),
                )?;
                Ok(Some(PolledState { refs: refs.into_iter().collect(), delivery_seq, polled_at }))
            })
            .await
    }

    /// Records what a poll of `repo` through `source` saw, in place of the previous poll's.
    /// Only the refs that changed are written: a repository with thousands of tags costs
    /// a few rows per poll, not thousands.
    pub async fn record_poll(
        &self,
        source: String,
        repo: String,
        refs: BTreeMap<String, String>,
        delivery_seq: i64,
    ) -> anyhow::Result<()> {
        self.writer
            .call(move |db| {
                let stored: BTreeMap<String, String> = db
                    .query(
                        "SELECT git_ref, commit_id FROM polled_refs WHERE source = ?1 AND repo = ?2",
                        args![source, repo],
                        |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)),
                    )?
                    .into_iter()
                    .collect();
                for gone in stored.keys().filter(|name| !refs.contains_key(*name)) {
                    db.execute(
                        "DELETE FROM polled_refs WHERE source = ?1 AND repo = ?2 AND git_ref = ?3",
                        args![source, repo, gone],
                    )?;
                }
                for (git_ref, commit) in refs.iter().filter(|(name, commit)| stored.get(*name) != Some(*commit)) {
                    db.execute(
                        "INSERT INTO polled_refs (source, repo, git_ref, commit_id) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (source, repo, git_ref) DO UPDATE SET commit_id = excluded.commit_id",
                        args![source, repo, git_ref, commit],
                    )?;
                }
                db.execute(
                    "INSERT INTO polled_repos (source, repo, polled_at, delivery_seq) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (source, repo) DO UPDATE SET polled_at = excluded.polled_at,
                                                              delivery_seq = excluded.delivery_seq",
                    args![source, repo, super::now_ms(), delivery_seq],
                )?;
                Ok(())
            })
            .await
    }

    /// Whether a delivery recorded for `source` after `since_seq` carried an event that
    /// moved `git_ref` of `repo` to `after` (a webhook, or an earlier poll's event).
    pub async fn delivered(
        &self,
        source: String,
        repo: String,
        git_ref: String,
        after: String,
        since_seq: i64,
    ) -> anyhow::Result<bool> {
        self.writer
            .call(move |db| {
                // The commit id narrows the rows to read (only deliveries since the last
                // poll are scanned, by sequence number); the events confirm the match.
                let pattern = format!("%{after}%");
                let candidates: Vec<Option<String>> = db.query(
                    "SELECT normalised FROM deliveries
                     WHERE seq > ?1 AND source = ?2 AND verdict NOT IN ('rejected', 'invalid')
                       AND normalised LIKE ?3",
                    args![since_seq, source, pattern],
                    |row| row.get(0),
                )?;
                Ok(candidates.iter().flatten().any(|text| moved(text, &repo, &git_ref, &after)))
            })
            .await
    }
}

/// Whether stored events (a JSON list; one event in version 1 rows) include one that
/// moved `git_ref` of `repo` to `after`.
fn moved(events: &str, repo: &str, git_ref: &str, after: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(events) else { return false };
    let events = match value {
        serde_json::Value::Array(list) => list,
        one => vec![one],
    };
    events.iter().any(|event| {
        event["repository"]["full_name"].as_str().is_some_and(|name| name.eq_ignore_ascii_case(repo))
            && event["git_ref"].as_str() == Some(git_ref)
            && event["after"].as_str() == Some(after)
    })
}

#[cfg(test)]
mod tests {
    use super::moved;

    #[test]
    fn a_move_matches_only_its_repository_ref_and_commit() {
        let events = r#"[{"repository":{"full_name":"Acme/Widgets"},"git_ref":"refs/heads/main","after":"b"}]"#;
        assert!(moved(events, "acme/widgets", "refs/heads/main", "b"));
        assert!(!moved(events, "acme/gadgets", "refs/heads/main", "b"));
        assert!(!moved(events, "acme/widgets", "refs/heads/dev", "b"));
        assert!(!moved(events, "acme/widgets", "refs/heads/main", "c"));
        let one = r#"{"repository":{"full_name":"acme/widgets"},"git_ref":"refs/tags/v1","after":"b"}"#;
        assert!(moved(one, "acme/widgets", "refs/tags/v1", "b"), "version 1 rows hold one event");
        assert!(!moved("not json", "acme/widgets", "refs/tags/v1", "b"));
    }
}
