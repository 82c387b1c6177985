//! Test guest: runs the key-value operation its settings name, through the SDK, and
//! reports the result as output. A refused call is a failure whose summary is the error
//! (`quota: ...`) and whose output names its kind, so tests can check both.

use gitauto_plugin::kv::{self, KvError};
use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step's settings: an operation, or `{ do = OPERATION }` (how a manual rule hands
/// its parameters over whole: `with = { do = "{{ payload }}" }`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Settings {
    Wrapped { r#do: Op },
    Direct(Op),
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Op {
    /// Adds `by` (default 1) to the counter under `key` with a compare-and-swap loop.
    Incr {
        key: String,
        #[serde(default = "one")]
        by: i64,
    },
    /// The value under `key`, as text, with its version.
    Get { key: String },
    /// Stores `value` under `key`, for `ttl_ms` when given.
    Set { key: String, value: String, ttl_ms: Option<u64> },
    /// Removes `key`.
    Delete { key: String },
    /// Keys starting with `prefix`, after `after`, at most `limit` (default 1000).
    List {
        #[serde(default)]
        prefix: String,
        after: Option<String>,
        limit: Option<u32>,
    },
    /// Every key starting with `prefix`, page by page of `page` keys.
    ListAll {
        #[serde(default)]
        prefix: String,
        page: u32,
    },
    /// A compare-and-swap of `key` from version `expected` (none: absent) to `value`.
    Cas { key: String, expected: Option<u64>, value: String },
}

fn one() -> i64 {
    1
}

struct KvProbe;

impl Plugin for KvProbe {
    type Settings = Settings;

    fn handle(_event: Event, settings: Settings) -> Result<Outcome, Error> {
        let (Settings::Wrapped { r#do: op } | Settings::Direct(op)) = settings;
        let done = match op {
            Op::Incr { key, by } => kv::increment(&key, by).map(|value| json!({ "value": value })),
            Op::Get { key } => kv::get(&key).map(|entry| match entry {
                Some(entry) => json!({ "value": String::from_utf8_lossy(&entry.value), "version": entry.version }),
                None => json!({ "value": null }),
            }),
            Op::Set { key, value, ttl_ms } => kv::set(&key, value.as_bytes(), ttl_ms).map(|v| json!({ "version": v })),
            Op::Delete { key } => kv::delete(&key).map(|deleted| json!({ "deleted": deleted })),
            Op::List { prefix, after, limit } => {
                kv::list_keys(&prefix, after.as_deref(), limit.unwrap_or(1000)).map(|keys| json!({ "keys": keys }))
            }
            Op::ListAll { prefix, page } => list_all(&prefix, page).map(|keys| json!({ "keys": keys })),
            Op::Cas { key, expected, value } => kv::compare_and_swap(&key, expected, value.as_bytes(), None)
                .map(|version| json!({ "version": version })),
        };
        Ok(match done {
            Ok(output) => Outcome::success("done").with_output(&output),
            Err(err) => Outcome::failure(err.message()).with_output(&json!({ "error": kind(&err) })),
        })
    }
}

/// Pages through a listing by passing the last key back as `after`.
fn list_all(prefix: &str, page: u32) -> Result<Vec<String>, KvError> {
    let mut keys = Vec::new();
    loop {
        let got = kv::list_keys(prefix, keys.last().map(String::as_str), page)?;
        let full = got.len() as u32 == page;
        keys.extend(got);
        if !full {
            return Ok(keys);
        }
    }
}

fn kind(err: &KvError) -> Value {
    Value::from(match err {
        KvError::Denied(_) => "denied",
        KvError::Invalid(_) => "invalid",
        KvError::Quota(_) => "quota",
        KvError::Unavailable(_) => "unavailable",
    })
}

gitauto_plugin::export!(KvProbe);
