//! Plugins' key-value stores (the `kv` interface) in the queue's database: one namespace
//! per store name, each call one transaction of the writer. A write checks the store's
//! bounds in the transaction that makes it; compare-and-swap is decided by the conditional
//! write itself (PostgreSQL's row locks make it so across daemons). Expired entries read
//! as absent, are swept by [`Queue::kv_sweep`] and, when a write finds the store full,
//! from that store first. The grant check and the deadline are the capability's.

use super::Queue;
use super::db::{Db, Row, args};
use crate::grant::KvLimits;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 512;
/// Most keys one `list` returns.
pub const MAX_LIST: u32 = 1000;
/// Most expired entries one sweeping transaction removes.
const SWEEP_CHUNK: i64 = 1_000;

/// Why a key-value call did nothing (the grant's refusal is the capability's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// A key, value or argument is malformed or over its bound.
    #[error("{0}")]
    Invalid(String),
    /// The store is full; nothing was written.
    #[error("{0}")]
    Quota(String),
    /// The database failed or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
}

/// An entry read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// The version `compare-and-swap` expects.
    pub version: u64,
    /// When it expires (Unix milliseconds), if it does.
    pub expires_at: Option<i64>,
}

/// One entry of a listing: its key and what it holds, without the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvListed {
    /// The key.
    pub key: String,
    /// The value's length in bytes.
    pub bytes: u64,
    /// Its version.
    pub version: u64,
    /// When it expires (Unix milliseconds), if it does.
    pub expires_at: Option<i64>,
    /// When it was last written (Unix milliseconds).
    pub updated_at: i64,
}

/// A write: the key, the value and how long it lives.
#[derive(Debug, Clone)]
pub struct KvWrite {
    /// The key (checked by [`check_key`]).
    pub key: String,
    /// The value (at most the store's `max_value`).
    pub value: Vec<u8>,
    /// How long after the write the entry expires; none: it does not.
    pub ttl: Option<Duration>,
}

/// Checks a key: 1 to [`MAX_KEY`] bytes, no NUL (PostgreSQL's text cannot hold one).
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::Invalid("a key cannot be empty".into()));
    }
    if key.len() > MAX_KEY {
        return Err(KvError::Invalid(format!("a key is at most {MAX_KEY} bytes (this one is {})", key.len())));
    }
    if key.contains('\0') {
        return Err(KvError::Invalid("a key cannot contain a NUL character".into()));
    }
    Ok(())
}

/// Checks a write against the store's bounds that need no database: the key, the
/// value's size, the ttl. Returns the expiry (Unix milliseconds) the ttl gives at `now`.
fn check_write(write: &KvWrite, limits: KvLimits, now: i64) -> Result<Option<i64>, KvError> {
    check_key(&write.key)?;
    if write.value.len() as u64 > limits.max_value {
        return Err(KvError::Invalid(format!(
            "a value is at most {} in this store (this one is {} bytes)",
            crate::config::format_size(limits.max_value),
            write.value.len()
        )));
    }
    let Some(ttl) = write.ttl else { return Ok(None) };
    if ttl.is_zero() {
        return Err(KvError::Invalid("a ttl must be at least 1 ms".into()));
    }
    i64::try_from(ttl.as_millis())
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .map(Some)
        .ok_or_else(|| KvError::Invalid(format!("a ttl of {} ms is too long", ttl.as_millis())))
}

/// The least string greater than every string that starts with `prefix`, in byte order
/// (which for UTF-8 is code point order): `prefix` with its last character replaced by
/// the next one; none when every character is the last there is (or `prefix` is empty),
/// and no string is greater.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Per store, at least as many entries and bytes of values as it holds: what a write is
/// checked against before the store is counted. Kept where one writer sees every write
/// (SQLite, whose file one process serves): each write that passes adds what it grows by,
/// and nothing subtracts (deletes, expiry, a rolled-back batch), so the figures only ever
/// overstate; when they say a write does not fit, the store is counted and they are reset.
#[derive(Debug, Default)]
pub struct Usage(Mutex<HashMap<String, (u64, u64)>>);

impl Usage {
    /// Adds `(entries, bytes)` to `store`'s figures if they then stay within `limits`;
    /// whether they did (false also when the store was never counted).
    fn reserve(&self, store: &str, (entries, bytes): (u64, u64), limits: KvLimits) -> bool {
        let mut known = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match known.get_mut(store) {
            Some(held) if held.0 + entries <= limits.max_entries && held.1 + bytes <= limits.max_bytes => {
                *held = (held.0 + entries, held.1 + bytes);
                true
            }
            _ => false,
        }
    }

    /// What `store` holds, as just counted (none: forget it).
    fn set(&self, store: &str, held: Option<(u64, u64)>) {
        let mut known = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match held {
            Some(held) => known.insert(store.to_owned(), held),
            None => known.remove(store),
        };
    }
}

/// The last version this process gave, so that two writes in one microsecond (or a
/// clock stepped back) still get growing versions.
static LAST_VERSION_TIME: AtomicI64 = AtomicI64::new(0);

/// The write's time in microseconds, greater than any this process gave before.
fn version_time() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let previous = LAST_VERSION_TIME.fetch_max(now, Ordering::Relaxed);
    if previous >= now {
        // Another write had this microsecond (or the clock went back): one past the last.
        LAST_VERSION_TIME.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

/// The statement that writes an entry (parameters: store, key, value, the write's time
/// in microseconds, expiry, now), replacing the key's entry when `$when` (a `WHERE` over the
/// existing row `kv` and the new one `excluded`) is true; the new version. The version is
/// the larger of the previous one plus one and the write's time.
macro_rules! upsert {
    ($($when:literal)?) => {
        concat!(
            "INSERT INTO kv (namespace, key, value, version, expires_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
               version = CASE WHEN kv.version + 1 > excluded.version THEN kv.version + 1
                              ELSE excluded.version END,
               expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            $($when,)?
            " RETURNING version"
        )
    };
}

/// The database's failure as the plugin sees it.
fn unavailable(err: anyhow::Error) -> KvError {
    KvError::Unavailable(format!("the key-value store could not be reached: {err:#}"))
}

impl Queue {
    /// The live entry under `key` in store `store`; an expired one reads as absent (and
    /// is removed).
    pub async fn kv_get(&self, store: &str, key: &str) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        let (store, key) = (store.to_owned(), key.to_owned());
        self.writer.call_repeatable(move |db| get(db, &store, &key, super::now_ms())).await.map_err(unavailable)
    }

    /// Stores `write` in `store`, within `limits`; the new version.
    pub async fn kv_set(&self, store: &str, limits: KvLimits, write: KvWrite) -> Result<u64, KvError> {
        let now = super::now_ms();
        let expires = check_write(&write, limits, now)?;
        let (store, usage) = (store.to_owned(), self.kv_usage.clone());
        self.writer
            .call_repeatable(move |db| {
                let current = current(db, &store, &write.key)?;
                let room = Room { store: &store, limits, usage: usage.as_deref(), now };
                if let Err(full) = check_room(db, &room, &write, current.as_ref())? {
                    return Ok(Err(full));
                }
                let version = db.query_one(
                    upsert!(),
                    args![store, write.key, write.value.as_slice(), version_time(), expires, now],
                    |row| row.get::<i64>(0),
                )?;
                Ok(Ok(version as u64))
            })
            .await
            .map_err(unavailable)?
    }

    /// Stores `write` in `store` only if the key's live entry has version `expected`
    /// (none: only if it has no live entry); the new version, or none when it was not as
    /// expected and nothing was written.
    pub async fn kv_compare_and_swap(
        &self,
        store: &str,
        limits: KvLimits,
        expected: Option<u64>,
        write: KvWrite,
    ) -> Result<Option<u64>, KvError> {
        let now = super::now_ms();
        let expires = check_write(&write, limits, now)?;
        let expected = match expected.map(i64::try_from) {
            // No version is that large: the entry cannot be as expected.
            Some(Err(_)) => return Ok(None),
            Some(Ok(version)) => Some(version),
            None => None,
        };
        let (store, usage) = (store.to_owned(), self.kv_usage.clone());
        self.writer
            .call_repeatable(move |db| {
                let current = current(db, &store, &write.key)?;
                let live = current.as_ref().filter(|row| row.expires_at.is_none_or(|at| at > now));
                if live.map(|row| row.version) != expected {
                    return Ok(Ok(None));
                }
                let room = Room { store: &store, limits, usage: usage.as_deref(), now };
                if let Err(full) = check_room(db, &room, &write, current.as_ref())? {
                    return Ok(Err(full));
                }
                let version = version_time();
                // The write decides, not the read above: another daemon may have written
                // since (on PostgreSQL the read locked an existing row; an insert races).
                let written = match expected {
                    Some(expected) => db.query_opt(
                        "UPDATE kv SET value = ?3,
                           version = CASE WHEN version + 1 > ?4 THEN version + 1 ELSE ?4 END,
                           expires_at = ?5, updated_at = ?6
                         WHERE namespace = ?1 AND key = ?2 AND version = ?7
                           AND (expires_at IS NULL OR expires_at > ?6)
                         RETURNING version",
                        args![store, write.key, write.value.as_slice(), version, expires, now, expected],
                        |row| row.get::<i64>(0),
                    )?,
                    None => db.query_opt(
                        upsert!(" WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= excluded.updated_at"),
                        args![store, write.key, write.value.as_slice(), version, expires, now],
                        |row| row.get::<i64>(0),
                    )?,
                };
                Ok(Ok(written.map(|version| version as u64)))
            })
            .await
            .map_err(unavailable)?
    }

    /// Removes the entry under `key` from `store`: whether a live one was there.
    pub async fn kv_delete(&self, store: &str, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        let (store, key) = (store.to_owned(), key.to_owned());
        let now = super::now_ms();
        self.writer
            .call_repeatable(move |db| {
                let removed = db.query_opt(
                    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 RETURNING expires_at",
                    args![store, key],
                    |row| row.get::<Option<i64>>(0),
                )?;
                Ok(removed.is_some_and(|expires| expires.is_none_or(|at| at > now)))
            })
            .await
            .map_err(unavailable)
    }

    /// The live entries of `store` whose keys start with `prefix`, in byte order, after
    /// `after` (exclusive), at most `limit` ([`MAX_LIST`] at most).
    pub async fn kv_list(
        &self,
        store: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<KvListed>, KvError> {
        if limit > MAX_LIST {
            return Err(KvError::Invalid(format!("a listing returns at most {MAX_LIST} keys (asked for {limit})")));
        }
        if prefix.len() > MAX_KEY || prefix.contains('\0') {
            return Err(KvError::Invalid(format!("a prefix is at most {MAX_KEY} bytes, without NUL characters")));
        }
        if let Some(after) = after {
            check_key(after)?;
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A range of the primary key, never a pattern: `%` and `_` in a prefix are
        // characters like the others. Keys are never empty, so `> ''` excludes nothing.
        let (store, prefix, after) = (store.to_owned(), prefix.to_owned(), after.unwrap_or_default().to_owned());
        let end = prefix_end(&prefix);
        let now = super::now_ms();
        self.writer
            .call_repeatable(move |db| {
                let read = |row: &Row| {
                    Ok(KvListed {
                        key: row.get(0)?,
                        bytes: row.get::<i64>(1)? as u64,
                        version: row.get::<i64>(2)? as u64,
                        expires_at: row.get(3)?,
                        updated_at: row.get(4)?,
                    })
                };
                let columns = "SELECT key, CAST(length(value) AS BIGINT), version, expires_at, updated_at FROM kv";
                match &end {
                    Some(end) => db.query(
                        &format!(
                            "{columns} WHERE namespace = ?1 AND key >= ?2 AND key > ?3 AND key < ?4
                               AND (expires_at IS NULL OR expires_at > ?5)
                             ORDER BY key LIMIT ?6"
                        ),
                        args![store, prefix, after, end, now, i64::from(limit)],
                        read,
                    ),
                    None => db.query(
                        &format!(
                            "{columns} WHERE namespace = ?1 AND key >= ?2 AND key > ?3
                               AND (expires_at IS NULL OR expires_at > ?4)
                             ORDER BY key LIMIT ?5"
                        ),
                        args![store, prefix, after, now, i64::from(limit)],
                        read,
                    ),
                }
            })
            .await
            .map_err(unavailable)
    }

    /// Removes every expired entry of every store, in transactions of at most
    /// [`SWEEP_CHUNK`] entries; how many went.
    pub async fn kv_sweep(&self) -> anyhow::Result<usize> {
        let now = super::now_ms();
        let mut total = 0;
        loop {
            let swept = self
                .writer
                .call_repeatable(move |db| {
                    db.execute(
                        "DELETE FROM kv WHERE (namespace, key) IN (
                           SELECT namespace, key FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)",
                        args![now, SWEEP_CHUNK],
                    )
                })
                .await?;
            total += swept;
            if (swept as i64) < SWEEP_CHUNK {
                return Ok(total);
            }
        }
    }
}

/// A key's row as a write finds it.
struct Current {
    version: i64,
    bytes: i64,
    expires_at: Option<i64>,
}

/// The row under `key`, expired or not; on PostgreSQL locked until the transaction ends,
/// so that what a write decides from it still holds when it writes.
fn current(db: Db, store: &str, key: &str) -> anyhow::Result<Option<Current>> {
    let sql = if db.is_postgres() {
        "SELECT version, CAST(length(value) AS BIGINT), expires_at FROM kv WHERE namespace = ?1 AND key = ?2 FOR UPDATE"
    } else {
        "SELECT version, CAST(length(value) AS BIGINT), expires_at FROM kv WHERE namespace = ?1 AND key = ?2"
    };
    db.query_opt(sql, args![store, key], |row| {
        Ok(Current { version: row.get(0)?, bytes: row.get(1)?, expires_at: row.get(2)? })
    })
}

fn get(db: Db, store: &str, key: &str, now: i64) -> anyhow::Result<Option<KvEntry>> {
    let row = db.query_opt(
        "SELECT value, version, expires_at FROM kv WHERE namespace = ?1 AND key = ?2",
        args![store, key],
        |row| Ok(KvEntry { value: row.get(0)?, version: row.get::<i64>(1)? as u64, expires_at: row.get(2)? }),
    )?;
    match row {
        Some(entry) if entry.expires_at.is_some_and(|at| at <= now) => {
            db.execute(
                "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 AND expires_at IS NOT NULL AND expires_at <= ?3",
                args![store, key, now],
            )?;
            Ok(None)
        }
        found => Ok(found),
    }
}

/// Where a write is checked: its store, the store's bounds, what the store is known to
/// hold at most (SQLite), and the time expired entries are judged by.
struct Room<'a> {
    store: &'a str,
    limits: KvLimits,
    usage: Option<&'a Usage>,
    now: i64,
}

/// Whether `write` fits in its store beside the other entries (the one it replaces does
/// not count); a write that grows neither the entries nor the bytes always does. When the
/// known figures cannot tell, the store is counted; when it does not fit, its expired
/// entries are swept and it is counted again.
fn check_room(db: Db, room: &Room, write: &KvWrite, current: Option<&Current>) -> anyhow::Result<Result<(), KvError>> {
    let Room { store, limits, usage, now } = *room;
    let bytes = write.value.len() as i64;
    if current.is_some_and(|row| bytes <= row.bytes) {
        return Ok(Ok(()));
    }
    let growth = (u64::from(current.is_none()), (bytes - current.map_or(0, |row| row.bytes)) as u64);
    if usage.is_some_and(|usage| usage.reserve(store, growth, limits)) {
        return Ok(Ok(()));
    }
    if db.is_postgres() {
        // Daemons sharing the database count the store one at a time, or two could each
        // find room for one more entry and both write it.
        db.query_one(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended('gitauto kv ' || ?1, 0))) AS locked",
            args![store],
            |_| Ok(()),
        )?;
    }
    let count = || {
        db.query_one(
            "SELECT COUNT(*), CAST(COALESCE(SUM(length(value)), 0) AS BIGINT) FROM kv
             WHERE namespace = ?1 AND key <> ?2",
            args![store, write.key],
            |row| Ok((row.get::<i64>(0)? as u64, row.get::<i64>(1)? as u64)),
        )
    };
    let fits = |(entries, used): (u64, u64)| {
        if entries + 1 > limits.max_entries {
            Err(KvError::Quota(format!(
                "the store holds its most entries ({}); nothing was written",
                limits.max_entries
            )))
        } else if used + bytes as u64 > limits.max_bytes {
            Err(KvError::Quota(format!(
                "the store's values would take {} bytes, more than its {}; nothing was written",
                used + bytes as u64,
                crate::config::format_size(limits.max_bytes)
            )))
        } else {
            Ok(())
        }
    };
    // What the store holds once the write is made, when it fits.
    let after = |(entries, used): (u64, u64)| (entries + 1, used + bytes as u64);
    let mut counted = count()?;
    let mut verdict = fits(counted);
    if verdict.is_err() {
        let swept = db.execute(
            "DELETE FROM kv WHERE namespace = ?1 AND key <> ?2 AND expires_at IS NOT NULL AND expires_at <= ?3",
            args![store, write.key, now],
        )?;
        if swept > 0 {
            counted = count()?;
            verdict = fits(counted);
        }
    }
    if let Some(usage) = usage {
        usage.set(store, verdict.is_ok().then(|| after(counted)));
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_512_bytes_without_nul() {
        let ok = ["a", "%", "_", "counter/é", &"k".repeat(MAX_KEY), &"é".repeat(MAX_KEY / 2)];
        for key in ok {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
        let bad = ["", "a\0b", &"k".repeat(MAX_KEY + 1), &"é".repeat(MAX_KEY / 2 + 1)];
        for key in bad {
            assert!(matches!(check_key(key), Err(KvError::Invalid(_))), "{key:?}");
        }
    }

    #[test]
    fn writes_are_checked_against_the_value_bound_and_the_ttl() {
        let limits = KvLimits { max_entries: 10, max_bytes: 100, max_value: 4 };
        let write = |value: &[u8], ttl: Option<u64>| KvWrite {
            key: "k".into(),
            value: value.to_vec(),
            ttl: ttl.map(Duration::from_millis),
        };
        assert_eq!(check_write(&write(b"1234", None), limits, 1_000), Ok(None));
        assert_eq!(check_write(&write(b"", Some(5)), limits, 1_000), Ok(Some(1_005)));
        let refused = [write(b"12345", None), write(b"1", Some(0)), write(b"1", Some(u64::MAX))];
        for write in refused {
            assert!(matches!(check_write(&write, limits, 1_000), Err(KvError::Invalid(_))), "{write:?}");
        }
    }

    #[test]
    fn a_prefix_ends_before_the_next_character() {
        let cases = [
            ("", None),
            ("a", Some("b".to_owned())),
            ("ab%", Some("ab&".to_owned())),
            ("a\u{7f}", Some("a\u{80}".to_owned())),
            ("a\u{d7ff}", Some("a\u{e000}".to_owned())),
            ("a\u{10ffff}", Some("b".to_owned())),
            ("\u{10ffff}\u{10ffff}", None),
        ];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix), end, "{prefix:?}");
            if let Some(end) = end {
                // Every string with the prefix sorts before the end, in bytes.
                let longest = format!("{prefix}\u{10ffff}\u{10ffff}");
                assert!(longest.as_bytes() < end.as_bytes(), "{prefix:?}");
            }
        }
    }

    #[test]
    fn versions_in_one_microsecond_still_grow() {
        let versions: Vec<i64> = (0..1000).map(|_| version_time()).collect();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
