//! gitreload compatibility (`[compat.gitreload]`): `POST /` and `POST /gitreload` queue a
//! course import, `POST /update` a checkout update, with gitreload's checks, status codes
//! and `{"msg": ...}` texts, so existing GitHub hooks keep working after a swap. Unlike
//! gitreload, signatures are verified (with the configured source's secrets), repository
//! names are single path components, and accepted work is durable and deduplicated.

use super::hooks::{plain, read_body};
use super::{AppState, error};
use crate::config::compat::{GITRELOAD_IMPORT_RULE, GITRELOAD_UPDATE_RULE, GitReload};
use crate::event::Event;
use crate::forge::{Incoming, ParseError};
use crate::ingest::{self, Admitted, Input, Read};
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
    let body = match read_body(&state, body) {
        Ok(body) => body,
        Err((status, why)) => return error(status, why),
    };
    let mut input = Input {
        source: compat.source.clone(),
        headers: plain(&headers),
        body,
        admitted: Admitted::Compat { rule: rule.name.clone() },
        delivery: None,
    };
    // Verifying and parsing are CPU work: off the async threads, as the pipeline does.
    let read = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let read = ingest::read(&config, &mut input);
            (input, read)
        })
        .await
    };
    let (input, Ok(read)) = (match read {
        Ok(done) => done,
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the delivery: {err}")),
    }) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the [compat.gitreload] source is not configured");
    };
    let announced = config.source(&compat.source).and_then(|source| source.dialect.envelope(&input.headers).event);
    let pipeline = state.pipeline();
    // What gitreload answered before queueing; refused deliveries are also recorded.
    let early: Result<Event, (bool, Response)> = match &read {
        Read::Rejected(why) => Err((true, error(StatusCode::UNAUTHORIZED, why))),
        // gitreload answers these before reading the payload.
        Read::Incoming(Incoming::Ping) => Err((false, msg(StatusCode::OK, "pong"))),
        _ if announced.as_deref() != Some("push") => Err((false, msg(StatusCode::OK, "We do not handle that event"))),
        // gitreload's answer for a name it cannot use as a checkout.
        Read::Invalid(ParseError::UnsafeName(name)) if name.field.starts_with("repository.") => {
            tracing::warn!(delivery = ?input.delivery, "gitreload endpoint: {name}");
            Err((true, msg(StatusCode::INTERNAL_SERVER_ERROR, "Repository not valid")))
        }
        Read::Invalid(err) => Err((true, error(StatusCode::BAD_REQUEST, err.to_string()))),
        Read::Incoming(Incoming::Events(events)) if events.len() == 1 => Ok(events[0].clone()),
        Read::Incoming(_) => Err((false, msg(StatusCode::OK, "We do not handle that event"))),
    };
    let event = match early {
        Ok(event) => event,
        Err((record, response)) => {
            if record && let Err(err) = pipeline.admit(config.clone(), input, read).await {
                tracing::error!("gitreload endpoint: recording the refused delivery: {err}");
            }
            return response;
        }
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
    queue(&state, pipeline, config, input, read, action).await
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
    pipeline: ingest::Pipeline,
    config: std::sync::Arc<crate::config::Config>,
    input: Input,
    read: Read,
    action: Action,
) -> Response {
    let ingested = match pipeline.admit(config, input, read).await {
        Ok(ingested) => ingested,
        Err(ingest::IngestError::Store(err)) => return super::unavailable("storing the delivery", &err),
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    if ingested.duplicate {
        return (StatusCode::OK, Json(json!({"msg": "Duplicate delivery, already queued", "jobs": ingested.jobs})))
            .into_response();
    }
    // gitreload counted queued and running work.
    let size: i64 = match state.queue.job_counts().await {
        Ok(counts) => counts.iter().filter(|(s, _)| matches!(s.as_str(), "queued" | "running")).map(|(_, n)| n).sum(),
        Err(err) => return super::unavailable("reading the queue", &err),
    };
    tracing::info!(delivery = %ingested.delivery, jobs = ?ingested.jobs, "gitreload endpoint: accepted");
    msg(StatusCode::OK, format!("{} {size}", action.added()))
}
