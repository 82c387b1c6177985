//! gitreload compatibility (`[compat.gitreload]`): `POST /` and `POST /gitreload` queue a
//! course import, `POST /update` a checkout update, with gitreload's checks, status codes
//! and `{"msg": ...}` texts, so existing GitHub hooks keep working after a swap. Unlike
//! gitreload, signatures are verified (with the configured source's secrets; unsigned
//! deliveries only from `allow_unsigned_from`), repository names are single path
//! components, every delivery is recorded, and accepted work is durable and deduplicated.

use super::hooks::{plain, read_body};
use super::{AppState, error};
use crate::config::compat::{GITRELOAD_IMPORT_RULE, GITRELOAD_UPDATE_RULE, GitReload};
use crate::event::Event;
use crate::forge::{Incoming, ParseError};
use crate::ingest::{self, Admitted, Input, Outcome, Read};
use crate::network;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
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
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, peer, headers, body, Action::Import).await
}

async fn update(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, peer, headers, body, Action::Update).await
}

fn msg(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "msg": text.into() }))).into_response()
}

async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    // Hooks orcoursetrion made carry no secret: unsigned ones are taken only from the
    // networks allowed, by the address the connection (or a trusted proxy) vouches for.
    let origin = (unsigned(&headers) && !compat.allow_unsigned_from.is_empty())
        .then(|| origin(&config, compat, peer.ip(), &headers));
    let mut input = Input {
        source: compat.source.clone(),
        headers: plain(&headers),
        body,
        admitted: Admitted::Compat {
            rule: rule.name.clone(),
            unsigned_allowed: matches!(origin, Some(Origin::Allowed(_))),
        },
        delivery: None,
    };
    let pipeline = state.pipeline();
    if let Some(Origin::Refused(why)) = origin {
        let declined = pipeline.decline(&config, input, Outcome::Rejected(why.clone()), &[]).await;
        tracing::warn!(delivery = %declined.delivery, "gitreload endpoint: {why}");
        return error(StatusCode::FORBIDDEN, why);
    }
    if let Some(Origin::Allowed(client)) = origin {
        tracing::info!(%client, "gitreload endpoint: unsigned delivery from an allowed network");
    }
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
    // What gitreload answered before queueing. Every delivery is recorded and counted,
    // as a forge source's are: refused, unreadable, ignored, or for no checkout here.
    let early: Result<Event, (Early, Response)> = match &read {
        Read::Rejected(why) => Err((Early::Admit, error(StatusCode::UNAUTHORIZED, why))),
        // gitreload answers these before reading the payload.
        Read::Incoming(Incoming::Ping) => Err((Early::Admit, msg(StatusCode::OK, "pong"))),
        _ if announced.as_deref() != Some("push") => {
            let why = format!("gitreload handles push events, not `{}`", announced.as_deref().unwrap_or("(none)"));
            Err((Early::Decline(Outcome::Ignored(why)), msg(StatusCode::OK, "We do not handle that event")))
        }
        // gitreload's answer for a name it cannot use as a checkout.
        Read::Invalid(ParseError::UnsafeName(name)) if name.field.starts_with("repository.") => {
            tracing::warn!(delivery = ?input.delivery, "gitreload endpoint: {name}");
            Err((Early::Admit, msg(StatusCode::INTERNAL_SERVER_ERROR, "Repository not valid")))
        }
        Read::Invalid(err) => Err((Early::Admit, error(StatusCode::BAD_REQUEST, err.to_string()))),
        Read::Incoming(Incoming::Events(events)) if events.len() == 1 => Ok(events[0].clone()),
        Read::Incoming(_) => {
            let why = "gitreload handles one push per delivery".to_owned();
            Err((Early::Decline(Outcome::Ignored(why)), msg(StatusCode::OK, "We do not handle that event")))
        }
    };
    let event = match early {
        Ok(event) => event,
        Err((Early::Admit, response)) => {
            if let Err(err) = pipeline.admit(config.clone(), input, read).await {
                tracing::error!("gitreload endpoint: recording the refused delivery: {err}");
            }
            return response;
        }
        Err((Early::Decline(outcome), response)) => {
            pipeline.decline(&config, input, outcome, &[]).await;
            return response;
        }
    };
    let checked = {
        let (repodir, name) = (compat.repodir.clone(), event.repository.name.clone());
        tokio::task::spawn_blocking(move || check_checkout(&repodir, &name)).await
    };
    let branch = match checked {
        Ok(Ok(branch)) => branch,
        Ok(Err(refusal)) => {
            let why = refusal.reason(compat, &event);
            let answer = refusal.answer(compat, &event);
            pipeline.decline(&config, input, Outcome::Unmatched(why), std::slice::from_ref(&event)).await;
            return answer;
        }
        Err(err) => {
            tracing::error!("checking the checkout: {err}");
            return msg(StatusCode::INTERNAL_SERVER_ERROR, "Server configuration issue");
        }
    };
    let local = format!("refs/heads/{branch}");
    if event.git_ref.as_deref() != Some(&local) {
        let why = format!(
            "`{}` is not the branch checked out at {}: `{local}`",
            event.git_ref.as_deref().unwrap_or("(no ref)"),
            compat.repodir.join(&event.repository.name).display()
        );
        pipeline.decline(&config, input, Outcome::Unmatched(why), std::slice::from_ref(&event)).await;
        return msg(StatusCode::OK, "Branch pushed doesn't match local branch, ignoring");
    }
    queue(&state, pipeline, config, input, read, action).await
}

/// How a delivery answered before its checkout was looked at is recorded.
enum Early {
    /// Through the pipeline (a refused signature, an unreadable payload, a ping).
    Admit,
    /// As declined by this endpoint, with this outcome (its events are not routed: the
    /// endpoint's rule would take any event).
    Decline(Outcome),
}

/// Where an unsigned delivery came from, against `allow_unsigned_from`.
enum Origin {
    /// From an allowed network: accepted without a signature.
    Allowed(IpAddr),
    /// From elsewhere (or from nowhere that can be told): refused, with why.
    Refused(String),
}

/// Whether the delivery carries no GitHub signature at all (a wrong one is not unsigned:
/// it is checked, and refused, as any other).
fn unsigned(headers: &HeaderMap) -> bool {
    !headers.contains_key("x-hub-signature-256") && !headers.contains_key("x-hub-signature")
}

/// Where an unsigned delivery came from: the peer, or the client a trusted proxy names.
fn origin(config: &crate::config::Config, compat: &GitReload, peer: IpAddr, headers: &HeaderMap) -> Origin {
    // An unreadable value could be the one a trusted proxy appended: the origin is unknown.
    let forwarded: Option<Vec<&str>> =
        headers.get_all("x-forwarded-for").iter().map(|value| value.to_str().ok()).collect();
    let client = forwarded.and_then(|forwarded| network::client(peer, &forwarded, &config.server.trusted_proxies));
    match client {
        Some(client) if network::any_contains(&compat.allow_unsigned_from, client) => Origin::Allowed(client),
        Some(client) => Origin::Refused(format!(
            "unsigned delivery from {client}, which is not in [compat.gitreload] allow_unsigned_from"
        )),
        None => Origin::Refused(format!(
            "unsigned delivery through {peer} with an unreadable X-Forwarded-For: its origin is unknown"
        )),
    }
}

/// Why gitreload would refuse a push before queueing it.
enum Refusal {
    /// `REPODIR` is not a directory.
    NoRepodir,
    /// No usable git checkout at `<repodir>/<name>` (or the name is not a plain name).
    NotARepository,
    /// The checkout's HEAD is detached.
    Detached,
    /// The checkout holds something libgit2 would read whole or follow elsewhere (a
    /// plugin may write there): not opened.
    Unsafe(String),
}

impl Refusal {
    /// Why, for the delivery's record.
    fn reason(&self, compat: &GitReload, event: &Event) -> String {
        let checkout = compat.repodir.join(&event.repository.name);
        match self {
            Refusal::NoRepodir => format!("[compat.gitreload] repodir {} is not a directory", compat.repodir.display()),
            Refusal::NotARepository => format!("no git checkout at {}", checkout.display()),
            Refusal::Detached => format!("the checkout at {} has a detached HEAD", checkout.display()),
            Refusal::Unsafe(why) => format!("the checkout at {} is not opened: {why}", checkout.display()),
        }
    }

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
            Refusal::Unsafe(why) => {
                tracing::warn!(repo = %repo, "gitreload endpoint: the checkout is not opened: {why}");
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
    // The checkouts are the ones plugins update: what libgit2 would read whole (an
    // included config, a huge ref) is checked first, as for every git call of a plugin.
    let git_dir = repodir.join(name).join(".git");
    match std::fs::symlink_metadata(&git_dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(Refusal::Unsafe("its `.git` is not a directory".into())),
        Err(_) => return Err(Refusal::NotARepository),
    }
    if git_dir.join("commondir").exists() {
        return Err(Refusal::Unsafe("it is a linked work tree".into()));
    }
    crate::gitwalk::plain_internals(&git_dir).map_err(Refusal::Unsafe)?;
    let flags = git2::RepositoryOpenFlags::NO_SEARCH;
    let repo = git2::Repository::open_ext(repodir.join(name), flags, std::iter::empty::<&str>())
        .map_err(|_| Refusal::NotARepository)?;
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
    // gitreload counted its own queued and running work: the compat rules' jobs, not
    // every rule's. The job just queued was in the queue even if it finished already.
    let size: i64 = match state.queue.rule_loads().await {
        Ok(loads) => loads
            .iter()
            .filter(|(rule, _)| action_name(rule).is_some())
            .map(|(_, load)| load.queued + load.running)
            .sum(),
        Err(err) => return super::unavailable("reading the queue", &err),
    };
    let size = if ingested.jobs.is_empty() { size } else { size.max(1) };
    tracing::info!(delivery = %ingested.delivery, jobs = ?ingested.jobs, "gitreload endpoint: accepted");
    msg(StatusCode::OK, format!("{} {size}", action.added()))
}
