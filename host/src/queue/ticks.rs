//! Schedule ticks: how far each schedule rule's ticks have been handled, moved forward
//! with a compare-and-set so that when several daemons share the store, exactly one of
//! them handles each tick (`crate::schedule` decides what to run for the ticks it wins).

use super::Queue;
use super::db::args;

/// The answer to [`Queue::claim_ticks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickClaim {
    /// This daemon now handles the rule's ticks up to the time it claimed.
    Won {
        /// Up to when they had been handled before, under the same expression and zone;
        /// `None` for a rule never run, or whose `cron` or `timezone` changed since.
        previous: Option<i64>,
    },
    /// Another daemon had already handled them up to that time (or got there first).
    Lost,
}

impl Queue {
    /// Claims the ticks of schedule rule `rule` (under `spec`, its expression and zone) up
    /// to `through_ms`: records that they are handled and answers what had been before, or
    /// [`TickClaim::Lost`] when the record already reaches `through_ms` or another daemon
    /// moves it first. A record is only ever moved forward, by the one daemon whose
    /// compare-and-set finds the value it read.
    pub async fn claim_ticks(&self, rule: &str, spec: &str, through_ms: i64) -> anyhow::Result<TickClaim> {
        let (rule, spec) = (rule.to_owned(), spec.to_owned());
        self.writer
            .call(move |db| {
                let recorded: Option<(String, i64)> =
                    db.query_opt("SELECT spec, through_ms FROM schedule_ticks WHERE rule = ?1", args![rule], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                Ok(match recorded {
                    None => {
                        // Two daemons inserting at once: PostgreSQL makes the second wait
                        // for the first's commit, then do nothing.
                        let inserted = db.execute(
                            "INSERT INTO schedule_ticks (rule, spec, through_ms) VALUES (?1, ?2, ?3)
                             ON CONFLICT (rule) DO NOTHING",
                            args![rule, spec, through_ms],
                        )?;
                        if inserted == 1 { TickClaim::Won { previous: None } } else { TickClaim::Lost }
                    }
                    Some((_, through)) if through >= through_ms => TickClaim::Lost,
                    Some((old_spec, through)) => {
                        // The value read is the condition: a daemon that moved it meanwhile
                        // (committed or still in its transaction, which this one waits for)
                        // leaves nothing to update.
                        let moved = db.execute(
                            "UPDATE schedule_ticks SET spec = ?2, through_ms = ?3 WHERE rule = ?1 AND through_ms = ?4",
                            args![rule, spec, through_ms, through],
                        )?;
                        match moved {
                            1 => TickClaim::Won { previous: (old_spec == spec).then_some(through) },
                            _ => TickClaim::Lost,
                        }
                    }
                })
            })
            .await
    }

    /// Gives back a claim through `claimed_ms` whose ticks could not be ingested, moving
    /// the record back to `back_to_ms` unless another daemon moved it since: the next
    /// claim then runs them (their delivery ids make any already ingested a duplicate).
    pub async fn give_back_ticks(&self, rule: &str, claimed_ms: i64, back_to_ms: i64) -> anyhow::Result<bool> {
        let rule = rule.to_owned();
        self.writer
            .call(move |db| {
                let moved = db.execute(
                    "UPDATE schedule_ticks SET through_ms = ?3 WHERE rule = ?1 AND through_ms = ?2",
                    args![rule, claimed_ms, back_to_ms],
                )?;
                Ok(moved == 1)
            })
            .await
    }

    /// Forgets the tick records of schedule rules not in `keep` (rules removed from the
    /// config, so that one added again later under the same name starts afresh).
    pub async fn forget_ticks(&self, keep: Vec<String>) -> anyhow::Result<usize> {
        self.writer
            .call(move |db| {
                let recorded: Vec<String> =
                    db.query("SELECT rule FROM schedule_ticks ORDER BY rule", args![], |row| row.get(0))?;
                let mut forgotten = 0;
                for rule in recorded.iter().filter(|rule| !keep.contains(rule)) {
                    forgotten += db.execute("DELETE FROM schedule_ticks WHERE rule = ?1", args![rule])?;
                }
                Ok(forgotten)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite queue, and a fresh PostgreSQL one when a server can run here: each
    /// opened twice, as two daemons sharing it would (SQLite: two connections to one file).
    fn stores() -> Vec<(Queue, Queue, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![(
            Queue::open_as(dir.path(), "node-a").unwrap(),
            Queue::open_as(dir.path(), "node-b").unwrap(),
            Some(dir),
        )];
        if let Some(url) = crate::testing::database() {
            let a = Queue::open_postgres(&url, "node-a").unwrap();
            let b = Queue::open_postgres(&url, "node-b").unwrap();
            stores.push((a, b, None));
        }
        stores
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_claim_given_back_is_claimed_again_from_where_it_was() {
        for (queue, other, _dir) in stores() {
            let spec = "* * * * * @ UTC";
            assert_eq!(queue.claim_ticks("r", spec, 1_000).await.unwrap(), TickClaim::Won { previous: None });
            assert_eq!(queue.claim_ticks("r", spec, 2_000).await.unwrap(), TickClaim::Won { previous: Some(1_000) });
            assert!(queue.give_back_ticks("r", 2_000, 1_000).await.unwrap());
            assert_eq!(other.claim_ticks("r", spec, 2_500).await.unwrap(), TickClaim::Won { previous: Some(1_000) });
            // A record another daemon moved meanwhile is left alone.
            assert!(!queue.give_back_ticks("r", 2_000, 1_000).await.unwrap());
            assert_eq!(queue.claim_ticks("r", spec, 3_000).await.unwrap(), TickClaim::Won { previous: Some(2_500) });
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ticks_move_forward_and_a_changed_spec_starts_afresh() {
        for (queue, _, _dir) in stores() {
            let claim = |spec: &'static str, through: i64| {
                let queue = queue.clone();
                async move { queue.claim_ticks("nightly", spec, through).await.unwrap() }
            };
            assert_eq!(claim("0 3 * * * @ UTC", 1_000).await, TickClaim::Won { previous: None });
            assert_eq!(claim("0 3 * * * @ UTC", 1_000).await, TickClaim::Lost, "the same time again");
            assert_eq!(claim("0 3 * * * @ UTC", 900).await, TickClaim::Lost, "an earlier time");
            assert_eq!(claim("0 3 * * * @ UTC", 2_000).await, TickClaim::Won { previous: Some(1_000) });
            assert_eq!(claim("0 4 * * * @ UTC", 3_000).await, TickClaim::Won { previous: None }, "a new expression");
            assert_eq!(claim("0 4 * * * @ UTC", 4_000).await, TickClaim::Won { previous: Some(3_000) });
            assert_eq!(queue.forget_ticks(vec!["other".into()]).await.unwrap(), 1);
            assert_eq!(claim("0 4 * * * @ UTC", 5_000).await, TickClaim::Won { previous: None }, "forgotten");
            queue.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_daemons_racing_for_a_tick_make_exactly_one_winner() {
        for (a, b, _dir) in stores() {
            let mut previous = None;
            for round in 0..50i64 {
                // Both reach the same tick at the same moment.
                let tick = 1_000 + round * 1_000;
                let spec = "* * * * * * @ UTC";
                let (first, second) =
                    tokio::join!(a.claim_ticks("every-second", spec, tick), b.claim_ticks("every-second", spec, tick));
                let claims = [first.unwrap(), second.unwrap()];
                let won: Vec<&TickClaim> = claims.iter().filter(|claim| **claim != TickClaim::Lost).collect();
                assert_eq!(won, [&TickClaim::Won { previous }], "round {round}: {claims:?}");
                previous = Some(tick);
            }
            a.close().await;
            b.close().await;
        }
    }
}
