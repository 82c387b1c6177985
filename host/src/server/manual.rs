//! `POST /api/events`: start a manual rule (`on = "manual"`) with parameters, as
//! `gitauto trigger NAME key=value ...` does. The parameters are the event's payload;
//! `repo`, `branch` and `tag` among them also fill the event's repository and ref, so
//! filters and templates see them where they see a forge's.

use super::{AppState, error};
use crate::event::{Event, Repository};
use crate::queue::{DeliveryVerdict, NewDelivery};
use crate::route::{self, Routing};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The source and forge name manual events carry.
pub const MANUAL: &str = "manual";

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
    let delivery = uuid::Uuid::new_v4().to_string();
    let event = manual_event(&delivery, &name, &params);
    if let Err(unsafe_name) = crate::event::names::check(&event) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, unsafe_name.to_string());
    }
    let body = Value::Object(params).to_string();
    let payload = || body.clone();
    let verdict = Routing::new(&config, &event, &payload).verdict(rule);
    let mut record = NewDelivery {
        id: delivery.clone(),
        source: MANUAL.into(),
        forge: MANUAL.into(),
        event: Some(MANUAL.into()),
        headers: json!({"content-type": "application/json"}),
        body: body.clone().into(),
        verdict: DeliveryVerdict::Queued,
        reason: None,
        normalised: Some(serde_json::to_string(&[&event]).expect("events serialise")),
        explain: Some(json!([{"git_ref": event.git_ref, "rules": [&verdict]}]).to_string()),
        redelivery_of: None,
    };
    let jobs = if verdict.matched {
        vec![route::job(rule, &event, 0)]
    } else {
        record.verdict = DeliveryVerdict::Unmatched;
        record.reason = Some(format!("rule \"{name}\": {}", verdict.reason));
        Vec::new()
    };
    state.metrics.delivery(MANUAL, record.verdict.as_str());
    match state.queue.accept(record, jobs).await {
        Ok(accepted) if verdict.matched => {
            tracing::info!(delivery = %delivery, rule = %name, jobs = ?accepted.jobs, "manual event queued");
            (StatusCode::ACCEPTED, Json(json!({"delivery": delivery, "rule": name, "jobs": accepted.jobs})))
                .into_response()
        }
        Ok(_) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("rule `{name}` did not match: {}", verdict.reason)),
        Err(err) => super::unavailable("storing the manual event", &err),
    }
}

/// The event a manual trigger makes: kind `manual`, its action the rule's name.
pub fn manual_event(delivery: &str, rule: &str, params: &Map<String, Value>) -> Event {
    let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    let repository = match text("repo") {
        Some(full_name) => {
            let (owner, name) = full_name.rsplit_once('/').unwrap_or(("", &full_name));
            Repository { owner: owner.into(), name: name.into(), full_name: full_name.clone(), ..Repository::default() }
        }
        None => Repository::default(),
    };
    let (branch, tag) = (text("branch"), text("tag"));
    let git_ref = match (&branch, &tag) {
        (Some(branch), _) => Some(format!("refs/heads/{branch}")),
        (None, Some(tag)) => Some(format!("refs/tags/{tag}")),
        (None, None) => None,
    };
    Event {
        delivery: delivery.into(),
        source: MANUAL.into(),
        forge: MANUAL.into(),
        kind: MANUAL.into(),
        action: Some(rule.into()),
        repository,
        git_ref,
        branch,
        tag,
        commits_complete: true,
        sender: text("sender"),
        ..Event::default()
    }
}
