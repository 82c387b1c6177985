//! The HTTP interface: `router(state)` builds the axum router; handlers stay thin and
//! call `forge`, `route` and `queue`. Every error answer is `{"error": "..."}` with the
//! details in the daemon's log under the delivery id.

use crate::config::{Config, Source};
use crate::forge::{self, Incoming, ParseError};
use crate::queue::{DeliveryVerdict, NewDelivery, NewJob, Queue};
use crate::route;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The running config.
    pub config: Arc<Config>,
    /// The durable queue.
    pub queue: Queue,
}

/// Headers that authenticate a delivery: never stored.
const SECRET_HEADERS: &[&str] = &[
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-token",
    "x-gitea-signature",
    "x-forgejo-signature",
    "x-gogs-signature",
    "webhook-signature",
    "authorization",
    "cookie",
];

/// The router for a daemon.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body;
    Router::new()
        .route("/hooks/{source}", post(hook).layer(DefaultBodyLimit::max(max_body)))
        .route("/api/jobs/{id}", get(job))
        .route("/queue", get(queue))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this path")
        })
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// An error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn hook(
    State(state): State<AppState>,
    Path(source_name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(source) = state.config.source(&source_name) else {
        return error(StatusCode::NOT_FOUND, format!("unknown source `{source_name}`"));
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = crate::config::format_size(state.config.server.max_body as u64);
            return error(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than the limit of {limit}"));
        }
        Err(rejection) => return error(rejection.status(), format!("reading the body: {rejection}")),
    };
    let envelope = forge::envelope(source.forge, &headers);
    let delivery = delivery_id(envelope.delivery.as_deref());
    let span = tracing::info_span!("delivery", id = %delivery, source = %source.name);
    let _entered = span.enter();

    // Verify before parse: until the signature checks out, the body is attacker-controlled.
    if !source.allow_unsigned
        && let Err(err) = forge::verify(source.forge, &headers, &body, &source.secrets)
    {
        tracing::warn!("rejected: {err}");
        return error(StatusCode::UNAUTHORIZED, err.to_string());
    }
    let incoming = match forge::parse(source.forge, &headers, &body, &source.name, &delivery) {
        Ok(incoming) => incoming,
        Err(err) => {
            tracing::warn!("unreadable: {err}");
            let status = match err {
                ParseError::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(status, err.to_string());
        }
    };
    drop(_entered);
    accept(&state, source, &headers, body, envelope.event, delivery, incoming).await
}

/// Records the delivery and queues its jobs, then answers.
async fn accept(
    state: &AppState,
    source: &Source,
    headers: &HeaderMap,
    body: Bytes,
    event_name: Option<String>,
    delivery: String,
    incoming: Incoming,
) -> Response {
    let mut record = NewDelivery {
        id: delivery.clone(),
        source: source.name.clone(),
        forge: source.forge.name().to_owned(),
        event: event_name,
        headers: stored_headers(headers),
        body: body.to_vec(),
        verdict: DeliveryVerdict::Ignored,
        reason: None,
        normalised: None,
        explain: None,
    };
    let mut jobs = Vec::new();
    let mut reason = None;
    match &incoming {
        Incoming::Ping => record.verdict = DeliveryVerdict::Ping,
        Incoming::Ignored(why) => {
            record.reason = Some(why.clone());
            reason = Some(format!("ignored: {why}"));
        }
        Incoming::Event(event) => {
            let verdicts = route::explain(&state.config, event);
            for verdict in verdicts.iter().filter(|v| v.matched) {
                jobs.push(NewJob {
                    rule: verdict.rule.clone(),
                    key: job_key(&verdict.rule, event),
                    repo: event.repository.full_name.clone(),
                    git_ref: event.git_ref.clone(),
                });
            }
            if jobs.is_empty() {
                let why = if verdicts.is_empty() {
                    "no rules are configured".to_owned()
                } else {
                    let each: Vec<String> =
                        verdicts.iter().map(|v| format!("rule \"{}\": {}", v.rule, v.reason)).collect();
                    format!("no rule matched: {}", each.join("; "))
                };
                record.verdict = DeliveryVerdict::Unmatched;
                record.reason = Some(why.clone());
                reason = Some(why);
            } else {
                record.verdict = DeliveryVerdict::Queued;
            }
            let mut stored = (**event).clone();
            stored.payload.clear();
            record.normalised = Some(serde_json::to_string(&stored).expect("events serialise"));
            record.explain = Some(serde_json::to_string(&verdicts).expect("verdicts serialise"));
        }
    }
    let accepted = match state.queue.accept(record, jobs).await {
        Ok(accepted) => accepted,
        Err(err) => {
            tracing::error!(delivery = %delivery, "storing the delivery failed: {err:#}");
            // 503 so that the forge delivers again later; nothing was stored.
            return error(StatusCode::SERVICE_UNAVAILABLE, "the delivery could not be stored; try again");
        }
    };
    if accepted.duplicate {
        tracing::info!(delivery = %delivery, "duplicate delivery; jobs {:?}", accepted.jobs);
        let body = json!({"delivery": accepted.delivery, "jobs": accepted.jobs, "duplicate": true});
        return (StatusCode::OK, Json(body)).into_response();
    }
    if matches!(incoming, Incoming::Ping) {
        return (StatusCode::OK, Json(json!({"delivery": accepted.delivery, "msg": "pong"}))).into_response();
    }
    tracing::info!(delivery = %delivery, jobs = ?accepted.jobs, "accepted");
    let mut body = json!({"delivery": accepted.delivery, "jobs": accepted.jobs});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Jobs with equal keys (same rule, repository and ref: the same checkout) never run
/// at once.
fn job_key(rule: &str, event: &crate::event::Event) -> String {
    format!("{rule}\n{}\n{}", event.repository.full_name, event.git_ref.as_deref().unwrap_or(""))
}

/// The forge's delivery id when it is a sane token, else a fresh one.
fn delivery_id(from_forge: Option<&str>) -> String {
    match from_forge {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

fn stored_headers(headers: &HeaderMap) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        if SECRET_HEADERS.contains(&name.as_str()) {
            continue;
        }
        map.insert(name.as_str().to_owned(), json!(String::from_utf8_lossy(value.as_bytes())));
    }
    serde_json::Value::Object(map)
}

async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, format!("`{id}` is not a job id"));
    };
    match state.queue.job(number).await {
        Ok(Some(job)) => Json(job).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(err) => {
            tracing::error!("reading job {id}: {err:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the queue could not be read")
        }
    }
}

/// gitreload's `GET /queue`: `{"queue_length": N, "queue": [...]}`.
async fn queue(State(state): State<AppState>) -> Response {
    match state.queue.pending().await {
        Ok(pending) => Json(json!({"queue_length": pending.len(), "queue": pending})).into_response(),
        Err(err) => {
            tracing::error!("reading the queue: {err:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the queue could not be read")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_from_forges_are_kept_only_when_sane() {
        assert_eq!(delivery_id(Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        for bad in [None, Some(""), Some("../../etc"), Some("a b"), Some(&*"x".repeat(129))] {
            let id = delivery_id(bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} gave {id}");
        }
    }

    #[test]
    fn secret_headers_are_not_stored() {
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", "sha256=abc".parse().unwrap());
        headers.insert("authorization", "token t".parse().unwrap());
        headers.insert("x-github-event", "push".parse().unwrap());
        assert_eq!(stored_headers(&headers), json!({"x-github-event": "push"}));
    }
}
