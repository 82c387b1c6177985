//! State between runs: the key-value store the plugin's grant names
//! (`grants = { kv = "NAME" }`). The host functions ([`get`], [`set`], [`delete`],
//! [`list_keys`], [`compare_and_swap`]) are here as generated; the helpers below read and
//! write JSON values and change a value in place with a compare-and-swap loop, so that
//! jobs running at once (on several daemons, even) never lose each other's updates.
//!
//! ```no_run
//! use gitauto_plugin::kv;
//!
//! // One more deployment, whatever else runs at the same time.
//! let deployments = kv::increment("deployments", 1)?;
//! // A value that lives a day (durations are milliseconds).
//! kv::set_json("last-deploy", &serde_json::json!({ "count": deployments }), Some(86_400_000))?;
//! # Ok::<(), kv::KvError>(())
//! ```

pub use crate::bindings::gitauto::plugin::kv::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How many times [`update`] reads and tries again when another writer got there first.
pub const UPDATE_ATTEMPTS: usize = 100;

impl KvError {
    /// The error as one line: its kind, then the host's message.
    pub fn message(&self) -> String {
        match self {
            Self::Denied(msg) => format!("denied: {msg}"),
            Self::Invalid(msg) => format!("invalid: {msg}"),
            Self::Quota(msg) => format!("quota: {msg}"),
            Self::Unavailable(msg) => format!("unavailable: {msg}"),
        }
    }
}

/// A failed key-value call fails the step; an unreachable store is worth a retry.
impl From<KvError> for crate::Error {
    fn from(err: KvError) -> Self {
        let message = format!("kv: {}", err.message());
        match err {
            KvError::Unavailable(_) => crate::Error::Transient(message),
            _ => crate::Error::Failed(message),
        }
    }
}

/// The JSON value under `key` (none: no entry), or `invalid` when it is not a `T`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, KvError> {
    let Some(entry) = get(key)? else { return Ok(None) };
    serde_json::from_slice(&entry.value)
        .map(Some)
        .map_err(|err| KvError::Invalid(format!("the value of `{key}` is not what was expected: {err}")))
}

/// Stores `value` as JSON under `key`, expiring `ttl` milliseconds from now when given;
/// the new version.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T, ttl: Option<u64>) -> Result<u64, KvError> {
    let bytes = serde_json::to_vec(value).map_err(|err| KvError::Invalid(format!("`{key}`: {err}")))?;
    set(key, &bytes, ttl)
}

/// Changes the value under `key`: `change` gets the current value (none: no entry) and
/// returns the new one with what to hand back, or an error that ends the update with
/// nothing written; the new value is written only if nobody wrote the key meanwhile, else
/// `change` runs again on what they wrote. Gives `unavailable` after [`UPDATE_ATTEMPTS`]
/// lost races. The value keeps no ttl.
pub fn update<T>(
    key: &str,
    mut change: impl FnMut(Option<&[u8]>) -> Result<(Vec<u8>, T), KvError>,
) -> Result<T, KvError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let current = get(key)?;
        let (value, result) = change(current.as_ref().map(|entry| entry.value.as_slice()))?;
        let expected = current.map(|entry| entry.version);
        if compare_and_swap(key, expected, &value, None)?.is_some() {
            return Ok(result);
        }
    }
    Err(KvError::Unavailable(format!("`{key}` kept changing: {UPDATE_ATTEMPTS} writes lost the race")))
}

/// Adds `by` to the integer under `key` (kept as decimal text; no entry counts as 0) and
/// returns the sum; `invalid`, with nothing written, when the value is not an integer or
/// the sum overflows.
pub fn increment(key: &str, by: i64) -> Result<i64, KvError> {
    update(key, |current| {
        let now = match current {
            None => Some(0),
            Some(bytes) => std::str::from_utf8(bytes).ok().and_then(|text| text.parse::<i64>().ok()),
        };
        let sum = now
            .and_then(|now| now.checked_add(by))
            .ok_or_else(|| KvError::Invalid(format!("`{key}` does not hold an integer that {by} can be added to")))?;
        Ok((sum.to_string().into_bytes(), sum))
    })
}
