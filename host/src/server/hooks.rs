//! `POST /hooks/{source}`: hands the request to the ingest pipeline and answers with what
//! it made of it. The answer goes out only after the delivery and its jobs are committed.

use super::{AppState, error};
use crate::forge::{Headers, ParseError};
use crate::ingest::{IngestError, Ingested, Input, Outcome};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(super) async fn hook(
    State(state): State<AppState>,
    Path(source_name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if state.config().source(&source_name).is_none() {
        return error(StatusCode::NOT_FOUND, format!("unknown source `{source_name}`"));
    }
    let body = match read_body(&state, body) {
        Ok(body) => body,
        Err((status, why)) => return error(status, why),
    };
    match state.pipeline().ingest(Input::webhook(&source_name, plain(&headers), body)).await {
        Ok(ingested) => answer(&ingested, None),
        Err(err) => failed(&err),
    }
}

/// The request's headers as plain data for the pipeline.
pub(super) fn plain(headers: &HeaderMap) -> Headers {
    let mut plain = Headers::new();
    for (name, value) in headers {
        plain.append(name.as_str(), value.as_bytes());
    }
    plain
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

/// A forge's answer: 401 for a bad signature, 400 (415) for an unreadable payload, 200
/// for a duplicate or a ping, 202 for the rest, naming the delivery and its jobs.
pub(super) fn answer(ingested: &Ingested, redelivery_of: Option<i64>) -> Response {
    let reason = match &ingested.outcome {
        Outcome::Rejected(why) => return error(StatusCode::UNAUTHORIZED, why),
        Outcome::Invalid(err @ ParseError::UnsupportedContentType { .. }) => {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, err.to_string());
        }
        Outcome::Invalid(err @ ParseError::TooLarge { .. }) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, err.to_string());
        }
        Outcome::Invalid(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
        _ if ingested.duplicate => {
            let body = json!({"delivery": ingested.delivery, "jobs": ingested.jobs, "duplicate": true});
            return (StatusCode::OK, Json(body)).into_response();
        }
        Outcome::Ping => {
            return (StatusCode::OK, Json(json!({"delivery": ingested.delivery, "msg": "pong"}))).into_response();
        }
        Outcome::Ignored(why) => Some(format!("ignored: {why}")),
        Outcome::Unmatched(why) => Some(why.clone()),
        Outcome::Queued => None,
    };
    let mut body = json!({"delivery": ingested.delivery, "jobs": ingested.jobs});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    if let Some(original) = redelivery_of {
        body["redelivery_of"] = json!(original);
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// The answer when the pipeline could not take a delivery at all.
pub(super) fn failed(err: &IngestError) -> Response {
    match err {
        IngestError::UnknownSource(_) => error(StatusCode::NOT_FOUND, err.to_string()),
        // 503 so that the forge delivers again later; nothing was stored.
        IngestError::Store(_) | IngestError::Routing(_) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "the delivery could not be stored; try again")
        }
    }
}
