//! Plugins' key-value stores for operators: `GET /api/kv/{store}` (the entries, by
//! prefix, a page at a time), `GET /api/kv/{store}/entry?key=K` (one entry with its
//! value) and `POST /api/kv/{store}/delete?key=K`. Only stores some plugin is granted in
//! the running config are served; the entries live in the queue (`queue/kv.rs`).

use super::{AppState, error, unavailable};
use crate::queue::kv::{KvError, KvListed, MAX_LIST};
use crate::queue::rfc3339;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

/// `?prefix=&after=&limit=` of a listing.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<u32>,
}

/// `?key=` of one entry.
#[derive(Debug, Deserialize)]
pub(super) struct KeyQuery {
    key: String,
}

/// The refusal when no plugin of the running config is granted `store`.
fn unknown(state: &AppState, store: &str) -> Option<Response> {
    let config = state.config();
    if config.kv.contains_key(store) {
        return None;
    }
    let known: Vec<&str> = config.kv.keys().map(String::as_str).collect();
    let known = if known.is_empty() { "none is".to_owned() } else { format!("granted: {}", known.join(", ")) };
    Some(error(StatusCode::NOT_FOUND, format!("no plugin is granted the key-value store `{store}` ({known})")))
}

/// The answer for a store's refusal or failure while doing `what`.
fn failed(what: &str, err: KvError) -> Response {
    match err {
        KvError::Invalid(why) | KvError::Quota(why) => error(StatusCode::BAD_REQUEST, why),
        KvError::Unavailable(why) => unavailable(what, &anyhow::anyhow!(why)),
    }
}

fn listed(entry: &KvListed) -> serde_json::Value {
    json!({
        "key": entry.key,
        "bytes": entry.bytes,
        "version": entry.version,
        "expires_at": entry.expires_at.map(rfc3339),
        "updated_at": rfc3339(entry.updated_at),
    })
}

/// `GET /api/kv/{store}`: live entries whose keys start with `prefix`, in byte order,
/// after `after`; `next` is the `after` of the next page, when there may be one.
pub(super) async fn list(
    State(state): State<AppState>,
    Path(store): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refused) = unknown(&state, &store) {
        return refused;
    }
    let limit = query.limit.unwrap_or(MAX_LIST);
    match state.queue.kv_list(&store, &query.prefix, query.after.as_deref(), limit).await {
        Ok(entries) => {
            let next = entries.last().filter(|_| entries.len() as u32 == limit).map(|e| e.key.clone());
            let entries: Vec<_> = entries.iter().map(listed).collect();
            Json(json!({ "store": store, "entries": entries, "next": next })).into_response()
        }
        Err(err) => failed("listing the key-value store", err),
    }
}

/// `GET /api/kv/{store}/entry?key=K`: the live entry, its value as base64 (and as text
/// when it is UTF-8).
pub(super) async fn entry(
    State(state): State<AppState>,
    Path(store): Path<String>,
    Query(KeyQuery { key }): Query<KeyQuery>,
) -> Response {
    if let Some(refused) = unknown(&state, &store) {
        return refused;
    }
    match state.queue.kv_get(&store, &key).await {
        Ok(Some(entry)) => Json(json!({
            "store": store,
            "key": key,
            "version": entry.version,
            "bytes": entry.value.len(),
            "expires_at": entry.expires_at.map(rfc3339),
            "text": std::str::from_utf8(&entry.value).ok(),
            "base64": base64::engine::general_purpose::STANDARD.encode(&entry.value),
        }))
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no entry `{key}` in the key-value store `{store}`")),
        Err(err) => failed("reading the key-value store", err),
    }
}

/// `POST /api/kv/{store}/delete?key=K`: whether a live entry was removed.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(store): Path<String>,
    Query(KeyQuery { key }): Query<KeyQuery>,
) -> Response {
    if let Some(refused) = unknown(&state, &store) {
        return refused;
    }
    match state.queue.kv_delete(&store, &key).await {
        Ok(deleted) => {
            if deleted {
                tracing::info!(store, key, "key-value entry deleted through the API");
            }
            Json(json!({ "store": store, "key": key, "deleted": deleted })).into_response()
        }
        Err(err) => failed("deleting the entry", err),
    }
}
