//! The JSON API over the record: deliveries (list, one, redeliver), jobs, and gitreload's
//! `GET /queue` view of pending work.

use super::hooks::{Admit, admit, restore_headers};
use super::{AppState, error, unavailable};
use crate::queue::DeliveryFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// Query of `GET /api/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    source: Option<String>,
    verdict: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/deliveries?source=&verdict=&before=&limit=`: newest first, 50 by default.
pub(super) async fn deliveries(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            let why =
                format!("{}; the parameters are source, verdict, before (a seq) and limit", rejection.body_text());
            return error(StatusCode::BAD_REQUEST, why);
        }
    };
    let filter = DeliveryFilter {
        source: query.source,
        verdict: query.verdict,
        before: query.before,
        limit: query.limit.unwrap_or(50),
    };
    match state.queue.deliveries(filter).await {
        Ok(list) => Json(json!({ "deliveries": list })).into_response(),
        Err(err) => unavailable("reading deliveries", &err),
    }
}

/// `GET /api/deliveries/{id}`: by the forge's delivery id or the record's seq.
pub(super) async fn delivery(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match state.queue.delivery(key.clone()).await {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no delivery `{key}`")),
        Err(err) => unavailable("reading the delivery", &err),
    }
}

/// `POST /api/deliveries/{id}/redeliver`: runs a stored delivery again under the current
/// config, as a new delivery that points back at the original. Refused deliveries were
/// never verified, so they cannot be redelivered.
pub(super) async fn redeliver(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    let stored = match state.queue.stored(key.clone()).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no delivery `{key}`")),
        Err(err) => return unavailable("reading the delivery", &err),
    };
    if matches!(stored.verdict.as_str(), "rejected" | "invalid") {
        let why = format!(
            "delivery `{key}` was {} when it arrived; only accepted deliveries can be redelivered",
            stored.verdict
        );
        return error(StatusCode::CONFLICT, why);
    }
    let Some(source) = state.config.source(&stored.source) else {
        return error(StatusCode::CONFLICT, format!("source `{}` is no longer configured", stored.source));
    };
    tracing::info!(original = %stored.id, seq = stored.seq, "redelivering");
    let headers = restore_headers(&stored.headers);
    let delivery = uuid::Uuid::new_v4().to_string();
    let admit_as = Admit { delivery, verify: false, redelivery_of: Some(stored.seq) };
    admit(&state, source, &headers, Bytes::from(stored.body), admit_as).await
}

/// `GET /api/jobs/{id}`.
pub(super) async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, format!("`{id}` is not a job id"));
    };
    match state.queue.job(number).await {
        Ok(Some(job)) => Json(job).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(err) => unavailable("reading the job", &err),
    }
}

/// gitreload's `GET /queue`: `{"queue_length": N, "queue": [...]}`.
pub(super) async fn queue(State(state): State<AppState>) -> Response {
    match state.queue.pending().await {
        Ok(mut pending) => {
            for entry in &mut pending {
                if let Some(name) = super::gitreload::action_name(&entry.action) {
                    entry.action = name.to_owned();
                }
            }
            Json(json!({"queue_length": pending.len(), "queue": pending})).into_response()
        }
        Err(err) => unavailable("reading the queue", &err),
    }
}
