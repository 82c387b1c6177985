//! gitreload compatibility (`[compat.gitreload]`): `POST /` and `POST /gitreload` queue a
//! course import, `POST /update` a checkout update, with gitreload's checks, status codes
//! and `{"msg": ...}` texts, so existing GitHub hooks keep working after a swap. Unlike
//! gitreload, signatures are verified (with the configured source's secrets), repository
//! names are single path components, and accepted work is durable and deduplicated.

use super::hooks::{Admit, Verdict, delivery_id, read, read_body, stored_headers};
use super::{AppState, error};
use crate::config::Rule;
use crate::config::compat::{GITRELOAD_IMPORT_RULE, GITRELOAD_UPDATE_RULE, GitReload};
use crate::event::Event;
use crate::forge::{Incoming, ParseError};
use crate::queue::{DeliveryVerdict, NewDelivery};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::path::Path;

/// gitreload's routes besides `POST /`, which shares its path with the dashboard.
pub(super) fn routes(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/gitreload", post(import))
        .route("/update", post(update))
        .layer(DefaultBodyLimit::max(max_body))
}

/// The two kinds of work gitreload queues.
#[derive(Clone, Copy)]
enum Action {
    Import,
    Update,
}

impl Action {
    fn rule(self) -> &'static str {
        match self {
            Action::Import => GITRELOAD_IMPORT_RULE,
            Action::Update => GITRELOAD_UPDATE_RULE,
        }
    }

    fn added(self) -> &'static str {
        match self {
            Action::Import => "Added course import task to queue. Queue size was",
            Action::Update => "Added git update task to queue. Queue size was",
        }
    }
}

/// gitreload's name for a compat rule, for `GET /queue`.
pub(super) fn action_name(rule: &str) -> Option<&'static str> {
    match rule {
        GITRELOAD_IMPORT_RULE => Some("COURSE_IMPORT"),
        GITRELOAD_UPDATE_RULE => Some("GET_LATEST"),
        _ => None,
    }
}

pub(super) async fn import(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, headers, body, Action::Import).await
}

async fn update(state: State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    handle(state, headers, body, Action::Update).await
}

fn msg(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "msg": text.into() }))).into_response()
}

async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    action: Action,
) -> Response {
    let config = state.config();
    let Some(compat) = config.compat.gitreload.as_ref() else {
        return error(StatusCode::NOT_FOUND, "[compat.gitreload] was removed from the config");
    };
    let Some(rule) = config.rule(action.rule()) else {
        return error(StatusCode::NOT_FOUND, "this gitreload endpoint has no plugin configured in [compat.gitreload]");
    };
    let Some(source) = config.source(&compat.source) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the [compat.gitreload] source is not configured");
    };
    let body = match read_body(&state, body) {
        Ok(body) => body,
        Err((status, why)) => return error(status, why),
    };
    let delivery = delivery_id(source.dialect.envelope(&headers).delivery.as_deref());
    let admit = Admit { delivery: delivery.clone(), verify: true, redelivery_of: None };
    let event = match read(source, &headers, &body, &admit) {
        Verdict::Rejected(reason) => {
            tracing::warn!(delivery = %delivery, "gitreload endpoint: rejected: {reason}");
            return error(StatusCode::UNAUTHORIZED, reason);
        }
        // gitreload answers these before reading the payload.
        Verdict::Read(Incoming::Ping) => return msg(StatusCode::OK, "pong"),
        _ if source.dialect.envelope(&headers).event.as_deref() != Some("push") => {
            return msg(StatusCode::OK, "We do not handle that event");
        }
        // gitreload's answer for a name it cannot use as a checkout.
        Verdict::Invalid(ParseError::UnsafeName(name)) if name.field.starts_with("repository.") => {
            tracing::warn!(delivery = %delivery, "gitreload endpoint: {name}");
            return msg(StatusCode::INTERNAL_SERVER_ERROR, "Repository not valid");
        }
        Verdict::Invalid(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
        Verdict::Read(Incoming::Events(mut events)) if events.len() == 1 => events.remove(0),
        Verdict::Read(_) => return msg(StatusCode::OK, "We do not handle that event"),
    };
    let checked = {
        let (repodir, name) = (compat.repodir.clone(), event.repository.name.clone());
        tokio::task::spawn_blocking(move || check_checkout(&repodir, &name)).await
    };
    let branch = match checked {
        Ok(Ok(branch)) => branch,
        Ok(Err(refusal)) => return refusal.answer(compat, &event),
        Err(err) => {
            tracing::error!("checking the checkout: {err}");
            return msg(StatusCode::INTERNAL_SERVER_ERROR, "Server configuration issue");
        }
    };
    if event.git_ref.as_deref() != Some(&format!("refs/heads/{branch}")) {
        return msg(StatusCode::OK, "Branch pushed doesn't match local branch, ignoring");
    }
    queue(&state, &headers, body, event, rule, action).await
}

/// Why gitreload would refuse a push before queueing it.
enum Refusal {
    /// `REPODIR` is not a directory.
    NoRepodir,
    /// No usable git checkout at `<repodir>/<name>` (or the name is not a plain name).
    NotARepository,
    /// The checkout's HEAD is detached.
    Detached,
}

impl Refusal {
    fn answer(self, compat: &GitReload, event: &Event) -> Response {
        let repo = &event.repository.full_name;
        match self {
            Refusal::NoRepodir => {
                tracing::error!(repodir = %compat.repodir.display(), "[compat.gitreload] repodir is not a directory");
                msg(StatusCode::INTERNAL_SERVER_ERROR, "Server configuration issue")
            }
            Refusal::NotARepository => {
                tracing::warn!(repo = %repo, "gitreload endpoint: no valid checkout for this repository");
                msg(StatusCode::INTERNAL_SERVER_ERROR, "Repository not valid")
            }
            Refusal::Detached => {
                msg(StatusCode::INTERNAL_SERVER_ERROR, "Unable to get current branch of checked out repo")
            }
        }
    }
}

/// The branch checked out at `<repodir>/<name>`.
#[allow(clippy::disallowed_methods, reason = "called inside spawn_blocking")]
fn check_checkout(repodir: &Path, name: &str) -> Result<String, Refusal> {
    if !repodir.is_dir() {
        return Err(Refusal::NoRepodir);
    }
    // gitreload joined the name unchecked ("../x" escaped REPODIR); only a plain name here.
    if crate::event::names::component(name).is_err() {
        return Err(Refusal::NotARepository);
    }
    let repo = git2::Repository::open(repodir.join(name)).map_err(|_| Refusal::NotARepository)?;
    if repo.head_detached().unwrap_or(true) {
        return Err(Refusal::Detached);
    }
    let head = repo.head().map_err(|_| Refusal::Detached)?;
    head.shorthand().map(str::to_owned).map_err(|_| Refusal::Detached)
}

/// Records the delivery with one job for the compat rule, and answers gitreload's way.
async fn queue(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    event: Event,
    rule: &Rule,
    action: Action,
) -> Response {
    let events = serde_json::to_string(std::slice::from_ref(&event)).expect("events serialise");
    let record = NewDelivery {
        id: event.delivery.clone(),
        source: event.source.clone(),
        forge: event.forge.clone(),
        event: Some("push".into()),
        headers: stored_headers(headers),
        body,
        verdict: DeliveryVerdict::Queued,
        reason: None,
        normalised: Some(events),
        explain: Some(json!([{"git_ref": event.git_ref, "rules": [{"rule": rule.name, "matched": true}]}]).to_string()),
        redelivery_of: None,
    };
    let job = crate::route::job(rule, &event, 0);
    let accepted = match state.queue.accept(record, vec![job]).await {
        Ok(accepted) => {
            let shown = if accepted.duplicate { "duplicate" } else { DeliveryVerdict::Queued.as_str() };
            state.metrics.delivery(&event.source, shown);
            state.metrics.coalesced(accepted.coalesced);
            accepted
        }
        Err(err) => return super::unavailable("storing the delivery", &err),
    };
    if accepted.duplicate {
        return (StatusCode::OK, Json(json!({"msg": "Duplicate delivery, already queued", "jobs": accepted.jobs})))
            .into_response();
    }
    // gitreload counted queued and running work.
    let size: i64 = match state.queue.job_counts().await {
        Ok(counts) => counts.iter().filter(|(s, _)| matches!(s.as_str(), "queued" | "running")).map(|(_, n)| n).sum(),
        Err(err) => return super::unavailable("reading the queue", &err),
    };
    tracing::info!(delivery = %accepted.delivery, jobs = ?accepted.jobs, "gitreload endpoint: accepted");
    msg(StatusCode::OK, format!("{} {size}", action.added()))
}
