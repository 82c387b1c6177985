//! Flow control over HTTP: `GET /api/rules` (each rule's pause state, concurrency,
//! priority and jobs in hand) and `POST /api/rules/{name}/pause` / `resume`. The paused
//! state lives in the queue (see `queue/flow.rs`); this module checks names against the
//! running config and maps the result to a status.

use super::{AppState, error, unavailable};
use crate::config::Config;
use crate::queue::{Paused, RuleLoad};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// A rule as `GET /api/rules` shows it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RuleView {
    /// Rule name.
    pub name: String,
    /// Whether it is in the running config (a paused rule removed from it is listed too).
    pub in_config: bool,
    /// Whether its jobs wait for a resume.
    pub paused: bool,
    /// When it was paused (RFC 3339).
    pub paused_at: Option<String>,
    /// The node whose API paused it.
    pub paused_on: Option<String>,
    /// Its jobs running at once at most, across every node (`null`: no limit).
    pub concurrency: Option<u32>,
    /// Its priority among claimable jobs.
    pub priority: i64,
    /// Its queued jobs.
    pub queued: i64,
    /// Its running jobs, on any node.
    pub running: i64,
}

/// Every rule of `config` in file order, then paused rules it no longer has.
pub(super) async fn views(state: &AppState, config: &Config) -> anyhow::Result<Vec<RuleView>> {
    let (paused, loads) = tokio::try_join!(state.queue.paused(), state.queue.rule_loads())?;
    let load = |name: &str| loads.iter().find(|(rule, _)| rule == name).map(|(_, load)| load.clone());
    let pause = |name: &str| paused.iter().find(|p| p.rule == name);
    let view = |name: &str, in_config: bool, concurrency, priority| {
        let RuleLoad { queued, running } = load(name).unwrap_or_default();
        let paused: Option<&Paused> = pause(name);
        RuleView {
            name: name.to_owned(),
            in_config,
            paused: paused.is_some(),
            paused_at: paused.map(|p| p.paused_at.clone()),
            paused_on: paused.map(|p| p.node.clone()),
            concurrency,
            priority,
            queued,
            running,
        }
    };
    let mut views: Vec<RuleView> =
        config.rules.iter().map(|rule| view(&rule.name, true, rule.concurrency, rule.priority)).collect();
    for gone in paused.iter().filter(|p| config.rule(&p.rule).is_none()) {
        views.push(view(&gone.rule, false, None, 0));
    }
    Ok(views)
}

/// `GET /api/rules`.
pub(super) async fn list(State(state): State<AppState>) -> Response {
    let config = state.config();
    match views(&state, &config).await {
        Ok(rules) => Json(json!({ "rules": rules })).into_response(),
        Err(err) => unavailable("reading the rules' state", &err),
    }
}

/// What a pause or resume request did.
pub(super) enum Switched {
    /// The rule's state changed (`true`) or already was the one asked for (`false`).
    Done(bool),
    /// No such rule: not in the config (and, for a resume, not paused either).
    Unknown,
}

/// Pauses (`pause` true) or resumes rule `name`. Only rules in the running config can be
/// paused; a paused rule that left the config can still be resumed.
pub(super) async fn switch(state: &AppState, name: &str, pause: bool) -> anyhow::Result<Switched> {
    let known = state.config().rule(name).is_some();
    if pause {
        if !known {
            return Ok(Switched::Unknown);
        }
        return Ok(Switched::Done(state.queue.pause(name).await?));
    }
    let resumed = state.queue.resume(name).await?;
    Ok(if resumed || known { Switched::Done(resumed) } else { Switched::Unknown })
}

/// The 404 answer for a rule the config does not have.
pub(super) fn unknown_rule(name: &str) -> String {
    format!("no rule \"{name}\" in the running config")
}

/// `POST /api/rules/{name}/pause`: the rule's jobs stay queued until it is resumed; jobs
/// running now finish. `200 {"rule", "paused": true, "changed"}`.
pub(super) async fn pause(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    answer(&state, &name, true).await
}

/// `POST /api/rules/{name}/resume`: the rule's queued jobs may run again.
/// `200 {"rule", "paused": false, "changed"}`.
pub(super) async fn resume(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    answer(&state, &name, false).await
}

async fn answer(state: &AppState, name: &str, pause: bool) -> Response {
    match switch(state, name, pause).await {
        Ok(Switched::Done(changed)) => {
            tracing::info!(rule = name, changed, "{}", if pause { "rule paused" } else { "rule resumed" });
            Json(json!({ "rule": name, "paused": pause, "changed": changed })).into_response()
        }
        Ok(Switched::Unknown) => error(StatusCode::NOT_FOUND, unknown_rule(name)),
        Err(err) => unavailable(if pause { "pausing the rule" } else { "resuming the rule" }, &err),
    }
}
