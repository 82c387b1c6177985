//! `POST /hooks/{source}`: verify, parse, route, record, answer. The answer goes out only
//! after the delivery and its jobs are committed. Refused deliveries (bad signature,
//! unreadable payload) are recorded too, and queue nothing.

use super::{AppState, error};
use crate::config::{Config, Source};
use crate::event::Event;
use crate::forge::{Incoming, Origin, ParseError};
use crate::queue::{DeliveryVerdict, NewDelivery, NewJob};
use crate::route;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::SystemTime;

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
    "proxy-authorization",
    "cookie",
];

pub(super) async fn hook(
    State(state): State<AppState>,
    Path(source_name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let config = state.config();
    let Some(source) = config.source(&source_name) else {
        return error(StatusCode::NOT_FOUND, format!("unknown source `{source_name}`"));
    };
    let body = match read_body(&state, body) {
        Ok(body) => body,
        Err((status, why)) => return error(status, why),
    };
    let delivery = delivery_id(source.dialect.envelope(&headers).delivery.as_deref());
    admit(&state, &config, source, &headers, body, Admit { delivery, verify: true, redelivery_of: None }).await
}

/// The body, or the status and reason for a body that could not be read (413 over the limit).
pub(super) fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, (StatusCode, String)> {
    match body {
        Ok(body) => Ok(body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(super::too_large(state.config().server.max_body))
        }
        Err(rejection) => Err((rejection.status(), format!("reading the body: {rejection}"))),
    }
}

/// How to admit a delivery.
pub(super) struct Admit {
    /// Its delivery id.
    pub delivery: String,
    /// Whether to check its signature (false only for stored, already verified ones).
    pub verify: bool,
    /// The stored delivery it runs again.
    pub redelivery_of: Option<i64>,
}

/// What a delivery amounted to, before it is recorded.
pub(super) enum Verdict {
    /// The signature did not verify.
    Rejected(String),
    /// The payload could not be read.
    Invalid(ParseError),
    /// It was read.
    Read(Incoming),
}

/// Verifies and parses a delivery for `source`.
pub(super) fn read(source: &Source, headers: &HeaderMap, body: &[u8], admit: &Admit) -> Verdict {
    // Verify before parse: until the signature checks out, the body is attacker-controlled.
    if admit.verify
        && !source.allow_unsigned
        && let Err(err) = source.dialect.verify(headers, body, &source.secrets, SystemTime::now())
    {
        return Verdict::Rejected(err.to_string());
    }
    let at = Origin { source: &source.name, delivery: &admit.delivery };
    match source.dialect.parse(headers, body, &at) {
        Ok(Incoming::Events(events)) => match events.iter().try_for_each(crate::event::names::check) {
            Ok(()) => Verdict::Read(Incoming::Events(events)),
            Err(unsafe_name) => Verdict::Invalid(unsafe_name.into()),
        },
        Ok(incoming) => Verdict::Read(incoming),
        Err(err) => Verdict::Invalid(err),
    }
}

/// Verifies, parses, routes and records a delivery, then answers.
pub(super) async fn admit(
    state: &AppState,
    config: &Config,
    source: &Source,
    headers: &HeaderMap,
    body: Bytes,
    admit: Admit,
) -> Response {
    let span = tracing::info_span!("delivery", id = %admit.delivery, source = %source.name);
    let verdict = span.in_scope(|| read(source, headers, &body, &admit));
    let mut record = NewDelivery {
        id: admit.delivery.clone(),
        source: source.name.clone(),
        forge: source.forge.to_owned(),
        event: source.dialect.envelope(headers).event,
        headers: stored_headers(headers),
        body: body.clone(),
        verdict: DeliveryVerdict::Ignored,
        reason: None,
        normalised: None,
        explain: None,
        redelivery_of: admit.redelivery_of,
    };
    let incoming = match verdict {
        Verdict::Rejected(reason) => {
            span.in_scope(|| tracing::warn!("rejected: {reason}"));
            return refuse(state, record, DeliveryVerdict::Rejected, StatusCode::UNAUTHORIZED, reason).await;
        }
        Verdict::Invalid(err) => {
            span.in_scope(|| tracing::warn!("unreadable: {err}"));
            let status = match err {
                ParseError::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            return refuse(state, record, DeliveryVerdict::Invalid, status, err.to_string()).await;
        }
        Verdict::Read(incoming) => incoming,
    };
    let mut jobs = Vec::new();
    let mut reason = None;
    let ping = matches!(incoming, Incoming::Ping);
    match incoming {
        Incoming::Ping => record.verdict = DeliveryVerdict::Ping,
        Incoming::Ignored(why) => {
            reason = Some(format!("ignored: {why}"));
            record.reason = Some(why);
        }
        Incoming::Events(events) => {
            let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let payload = || crate::forge::payload_text(content_type, &body);
            let routed = route_events(config, &events, &payload);
            jobs = routed.jobs;
            if jobs.is_empty() {
                record.verdict = DeliveryVerdict::Unmatched;
                record.reason = Some(routed.unmatched.clone());
                reason = Some(routed.unmatched);
            } else {
                record.verdict = DeliveryVerdict::Queued;
            }
            record.normalised = Some(routed.normalised);
            record.explain = Some(routed.explain);
        }
    }
    let verdict = record.verdict;
    let accepted = match state.queue.accept(record, jobs).await {
        Ok(accepted) => {
            let shown = if accepted.duplicate { "duplicate" } else { verdict.as_str() };
            state.metrics.delivery(&source.name, shown);
            state.metrics.coalesced(accepted.coalesced);
            accepted
        }
        Err(err) => {
            tracing::error!(delivery = %admit.delivery, "storing the delivery failed: {err:#}");
            // 503 so that the forge delivers again later; nothing was stored.
            return error(StatusCode::SERVICE_UNAVAILABLE, "the delivery could not be stored; try again");
        }
    };
    if accepted.duplicate {
        tracing::info!(delivery = %admit.delivery, "duplicate delivery; jobs {:?}", accepted.jobs);
        let body = json!({"delivery": accepted.delivery, "jobs": accepted.jobs, "duplicate": true});
        return (StatusCode::OK, Json(body)).into_response();
    }
    if ping {
        return (StatusCode::OK, Json(json!({"delivery": accepted.delivery, "msg": "pong"}))).into_response();
    }
    tracing::info!(delivery = %admit.delivery, jobs = ?accepted.jobs, "accepted");
    let mut body = json!({"delivery": accepted.delivery, "jobs": accepted.jobs});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    if let Some(original) = admit.redelivery_of {
        body["redelivery_of"] = json!(original);
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Records a refused delivery (best effort: the answer is the same either way) and answers.
async fn refuse(
    state: &AppState,
    mut record: NewDelivery,
    verdict: DeliveryVerdict,
    status: StatusCode,
    reason: String,
) -> Response {
    record.verdict = verdict;
    record.reason = Some(reason.clone());
    state.metrics.delivery(&record.source, verdict.as_str());
    let delivery = record.id.clone();
    if let Err(err) = state.queue.accept(record, Vec::new()).await {
        tracing::error!(delivery = %delivery, "recording the refused delivery failed: {err:#}");
    }
    error(status, reason)
}

/// The jobs a delivery's events queue, and what to record about the routing.
struct Routed {
    jobs: Vec<NewJob>,
    /// Why nothing matched, when nothing did.
    unmatched: String,
    /// The events, JSON array without payloads.
    normalised: String,
    /// Each event's rule verdicts, JSON.
    explain: String,
}

fn route_events(config: &Config, events: &[Event], payload: &dyn Fn() -> String) -> Routed {
    let mut jobs = Vec::new();
    let mut explain = Vec::new();
    let mut unmatched = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let verdicts = route::Routing::new(config, event, payload).explain();
        for verdict in verdicts.iter().filter(|v| v.matched) {
            if let Some(rule) = config.rule(&verdict.rule) {
                jobs.push(route::job(rule, event, index));
            }
        }
        if !verdicts.iter().any(|v| v.matched) {
            let why = if verdicts.is_empty() {
                "no rules are configured".to_owned()
            } else {
                let each: Vec<String> = verdicts.iter().map(|v| format!("rule \"{}\": {}", v.rule, v.reason)).collect();
                format!("no rule matched: {}", each.join("; "))
            };
            unmatched.push(match &event.git_ref {
                Some(git_ref) if events.len() > 1 => format!("{git_ref}: {why}"),
                _ => why,
            });
        }
        explain.push(json!({"git_ref": event.git_ref, "rules": verdicts}));
    }
    // Parsers leave `payload` empty (it is read from the stored body when a job runs), so
    // the events are stored as they are.
    Routed {
        jobs,
        unmatched: unmatched.join(" | "),
        normalised: serde_json::to_string(events).expect("events serialise"),
        explain: serde_json::Value::Array(explain).to_string(),
    }
}

/// The forge's delivery id when it is a sane token, else a fresh one.
pub(super) fn delivery_id(from_forge: Option<&str>) -> String {
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

pub(super) fn stored_headers(headers: &HeaderMap) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        if SECRET_HEADERS.contains(&name.as_str()) {
            continue;
        }
        map.insert(name.as_str().to_owned(), json!(String::from_utf8_lossy(value.as_bytes())));
    }
    serde_json::Value::Object(map)
}

/// Stored headers back as a header map (for redelivery).
pub(super) fn restore_headers(stored: &serde_json::Value) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in stored.as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) =
            (name.parse::<axum::http::HeaderName>(), value.as_str().map(axum::http::HeaderValue::from_str))
        {
            map.insert(name, value);
        }
    }
    map
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
    fn secret_headers_are_not_stored_and_the_rest_round_trips() {
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", "sha256=abc".parse().unwrap());
        headers.insert("x-gitlab-token", "t".parse().unwrap());
        headers.insert("webhook-signature", "v1,abc".parse().unwrap());
        headers.insert("authorization", "token t".parse().unwrap());
        headers.insert("x-github-event", "push".parse().unwrap());
        let stored = stored_headers(&headers);
        assert_eq!(stored, json!({"x-github-event": "push"}));
        assert_eq!(restore_headers(&stored).get("x-github-event").unwrap(), "push");
    }
}
