//! `POST /api/events`: start a manual rule (`on = "manual"`) with parameters, as
//! `gitauto trigger NAME key=value ...` does. The parameters are the event's payload;
//! the ingest pipeline makes the event (`ingest::manual_event`) and queues the job.

use super::{AppState, error};
use crate::ingest::{IngestError, Input, Outcome};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The body of `POST /api/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Trigger {
    /// The manual rule to start.
    rule: String,
    /// Its parameters.
    #[serde(default)]
    params: Map<String, Value>,
}

pub(super) async fn trigger(State(state): State<AppState>, body: Result<Json<Trigger>, JsonRejection>) -> Response {
    let Trigger { rule: name, params } = match body {
        Ok(Json(trigger)) => trigger,
        Err(rejection) => {
            let why = format!("{rejection}: expected {{\"rule\": \"NAME\", \"params\": {{...}}}}");
            return error(rejection.status(), why);
        }
    };
    let config = state.config();
    if config.server.api_token.is_none() {
        // Manual rules provision and import: never open to whoever reaches the port.
        return error(StatusCode::FORBIDDEN, "manual events need `[server] api_token` to be set");
    }
    let Some(rule) = config.rules.iter().find(|rule| rule.name == name) else {
        let manual: Vec<&str> = config.rules.iter().filter(|r| r.is_manual()).map(|r| r.name.as_str()).collect();
        let known = if manual.is_empty() { "none".to_owned() } else { manual.join(", ") };
        return error(StatusCode::NOT_FOUND, format!("no rule named `{name}` (manual rules: {known})"));
    };
    if !rule.is_manual() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("rule `{name}` is not manual: add \"manual\" to its `on`"),
        );
    }
    let ingested = match state.pipeline().ingest(Input::manual(&name, &params)).await {
        Ok(ingested) => ingested,
        Err(IngestError::Store(err)) => return super::unavailable("storing the manual event", &err),
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    match &ingested.outcome {
        Outcome::Queued => {
            tracing::info!(delivery = %ingested.delivery, rule = %name, jobs = ?ingested.jobs, "manual event queued");
            let body = json!({"delivery": ingested.delivery, "rule": name, "jobs": ingested.jobs});
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Outcome::Unmatched(_) => {
            let verdict = ingested.verdicts.iter().flat_map(|event| &event.rules).find(|v| v.rule == name);
            let why = verdict.map_or("", |verdict| verdict.reason.as_str());
            error(StatusCode::UNPROCESSABLE_ENTITY, format!("rule `{name}` did not match: {why}"))
        }
        other => error(StatusCode::UNPROCESSABLE_ENTITY, other.reason().unwrap_or_default()),
    }
}
