//! The JSON API over the record: deliveries (list, one, redeliver), jobs (list, one,
//! retry, cancel, live log), gitreload's `GET /queue` view of pending work, the charts'
//! figures (`/api/stats`), and metrics.

use super::hooks::{answer, failed};
use super::{AppState, error, unavailable};
use crate::ingest::{IngestError, Ingested, Input};
use crate::queue::{Cancelled, DeliveryFilter, JobFilter, JobState, Retried};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;

/// What a bad query of the delivery list is told.
const DELIVERY_PARAMETERS: &str = "the parameters are source, verdict, repo, before (a seq), after (a seq) and limit";

/// Query of `GET /api/deliveries`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    pub(super) source: Option<String>,
    verdict: Option<String>,
    repo: Option<String>,
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// The filter a `/api/deliveries` query (or the dashboard's list) asks for, or what is
/// wrong with the query; empty parameters (a form's unset fields) filter nothing.
pub(super) fn delivery_filter(query: Result<Query<ListQuery>, QueryRejection>) -> Result<DeliveryFilter, String> {
    let Query(query) = query.map_err(|rejection| format!("{}; {DELIVERY_PARAMETERS}", rejection.body_text()))?;
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    Ok(DeliveryFilter {
        source: non_empty(query.source),
        verdict: non_empty(query.verdict),
        repo: non_empty(query.repo),
        before: query.before,
        after: query.after,
        limit: query.limit.unwrap_or(50),
    })
}

/// `GET /api/deliveries?source=&verdict=&repo=&before=&after=&limit=`: newest first, 50
/// by default. `repo` finds deliveries recorded from schema 16 on.
pub(super) async fn deliveries(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let filter = match delivery_filter(query) {
        Ok(filter) => filter,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
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

/// Why a delivery with this verdict that arrived this way cannot be redelivered, or
/// `None` when it can. The API's and the dashboard's redeliver share it.
pub(super) fn not_redeliverable(key: &str, verdict: &str, arrived: &str) -> Option<String> {
    if matches!(verdict, "rejected" | "invalid") {
        return Some(format!(
            "delivery `{key}` was {verdict} when it arrived; only accepted deliveries can be redelivered"
        ));
    }
    if matches!(arrived, "manual" | "schedule" | "poll") {
        return Some(format!(
            "delivery `{key}` was made by gitauto ({arrived}), not sent by a forge; start its rule again instead"
        ));
    }
    // A gitreload delivery belongs to its endpoint's rule, and an unsigned one was taken
    // on the sender's address alone: run again through the forge routes, it would reach
    // every rule of the source unverified.
    if arrived == "compat" {
        return Some(format!(
            "delivery `{key}` came through [compat.gitreload], which runs only its endpoint's rule; \
             send it to the endpoint again instead"
        ));
    }
    None
}

/// Why a redelivery did not happen.
pub(super) enum RedeliverError {
    /// No delivery by that key.
    NotFound,
    /// The delivery cannot be run again (refused, made by gitauto, its source is gone).
    Refused(String),
    /// The record could not be read.
    Store(anyhow::Error),
    /// The pipeline could not take the new delivery.
    Ingest(IngestError),
}

/// Runs the delivery `key` names again under the current config, as a new delivery that
/// points back at the original (a duplicate's original, for a duplicate). Gives what the
/// pipeline made of it and the original's seq.
pub(super) async fn redeliver_key(state: &AppState, key: &str) -> Result<(Ingested, i64), RedeliverError> {
    let stored = match state.queue.stored(key.to_owned()).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(RedeliverError::NotFound),
        Err(err) => return Err(RedeliverError::Store(err)),
    };
    if let Some(why) = not_redeliverable(key, &stored.verdict, &stored.arrived) {
        return Err(RedeliverError::Refused(why));
    }
    if state.config().source(&stored.source).is_none() {
        return Err(RedeliverError::Refused(format!("source `{}` is no longer configured", stored.source)));
    }
    tracing::info!(original = %stored.id, seq = stored.seq, "redelivering");
    match state.pipeline().ingest(Input::redelivery(&stored)).await {
        Ok(ingested) => Ok((ingested, stored.seq)),
        Err(err) => Err(RedeliverError::Ingest(err)),
    }
}

/// `POST /api/deliveries/{id}/redeliver`: runs a stored delivery again under the current
/// config, as a new delivery that points back at the original. Refused deliveries were
/// never verified, so they cannot be redelivered.
pub(super) async fn redeliver(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match redeliver_key(&state, &key).await {
        Ok((ingested, original)) => answer(&ingested, Some(original)),
        Err(RedeliverError::NotFound) => error(StatusCode::NOT_FOUND, format!("no delivery `{key}`")),
        Err(RedeliverError::Refused(why)) => error(StatusCode::CONFLICT, why),
        Err(RedeliverError::Store(err)) => unavailable("reading the delivery", &err),
        Err(RedeliverError::Ingest(err)) => failed(&err),
    }
}

/// Live streams (server-sent events) open at once, in all: each holds a connection of
/// `max_connections` and reads the store once or twice a second, so the dashboard's tabs
/// cannot take the places forges' webhooks need.
const MAX_LIVE: usize = 64;

/// How long one live stream lasts; the browser's `EventSource` then reconnects with
/// `Last-Event-ID` and misses nothing (and a rotated token is asked for again).
const LIVE_FOR: Duration = Duration::from_secs(300);

static LIVE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LIVE);

/// A server-sent event stream, holding one of [`MAX_LIVE`] places for at most [`LIVE_FOR`];
/// 503 when every place is taken.
fn live(events: impl futures_util::Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> Response {
    let Ok(place) = LIVE.try_acquire() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_LIVE} live streams are open already; close a dashboard tab or try again later"),
        );
    };
    let events = events.take_until(tokio::time::sleep(LIVE_FOR)).chain(futures_util::stream::once(async move {
        drop(place);
        Ok(SseEvent::default().comment("reconnect"))
    }));
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// How often a live delivery list looks for new deliveries.
const LIVE_POLL: Duration = Duration::from_millis(500);

/// `GET /api/deliveries/live?source=&verdict=&repo=&after=`: server-sent events. Each
/// `delivery` event is one new delivery that passes the filters (the JSON of a list row;
/// the SSE id is its seq), oldest first, from after `after` (or `Last-Event-ID` when a
/// client reconnects; without either, from now). Each poll reads by `seq > last` with the
/// primary key (or the repository's index), at most 100 rows.
pub(super) async fn deliveries_live(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Response {
    let mut filter = match delivery_filter(query) {
        Ok(filter) => filter,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if filter.before.is_some() {
        return error(StatusCode::BAD_REQUEST, "a live list starts after a seq; `before` is for pages");
    }
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let start = match resume.or(filter.after) {
        Some(seq) => seq,
        None => match state.queue.deliveries(DeliveryFilter { limit: 1, ..Default::default() }).await {
            Ok(newest) => newest.first().map_or(0, |d| d.seq),
            Err(err) => return unavailable("reading deliveries", &err),
        },
    };
    filter.limit = 100;
    let queue = state.queue.clone();
    let batches = futures_util::stream::unfold((start, true), move |(last, first)| {
        let queue = queue.clone();
        let filter = DeliveryFilter { after: Some(last), ..filter.clone() };
        async move {
            if !first {
                tokio::time::sleep(LIVE_POLL).await;
            }
            let mut found = match queue.deliveries(filter).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::warn!("live deliveries: {err:#}");
                    Vec::new()
                }
            };
            found.reverse();
            let next = found.last().map_or(last, |d| d.seq);
            let events: Vec<Result<SseEvent, Infallible>> = found
                .iter()
                .map(|d| {
                    let data = serde_json::to_string(d).expect("delivery summaries serialise");
                    Ok(SseEvent::default().event("delivery").id(d.seq.to_string()).data(data))
                })
                .collect();
            Some((events, (next, false)))
        }
    });
    let events = batches.flat_map(futures_util::stream::iter);
    live(events)
}

/// `GET /api/jobs/live`: server-sent events for the dashboard's index. A `jobs` event
/// (JSON list of `{id, state}`: the newest 50 jobs and the running ones) each time that
/// list changes, polled every second by job id and by state (both indexed); the SSE id
/// is a fingerprint of the list, so a client reconnecting with `Last-Event-ID` hears
/// only of a change.
pub(super) async fn jobs_live(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let seen = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default();
    let queue = state.queue.clone();
    let batches = futures_util::stream::unfold((seen, true), move |(seen, first)| {
        let queue = queue.clone();
        async move {
            if !first {
                tokio::time::sleep(JOBS_POLL).await;
            }
            let newest = queue.jobs(JobFilter { limit: 50, ..Default::default() });
            let running = queue.jobs(JobFilter { state: Some(JobState::Running), limit: 500, ..Default::default() });
            let (newest, running) = match tokio::try_join!(newest, running) {
                Ok(found) => found,
                Err(err) => {
                    tracing::warn!("live jobs: {err:#}");
                    return Some((Vec::new(), (seen, false)));
                }
            };
            let mut jobs: Vec<(String, String)> =
                newest.into_iter().chain(running).map(|job| (job.id, job.state)).collect();
            jobs.sort();
            jobs.dedup();
            let list: Vec<_> = jobs.iter().map(|(id, state)| json!({"id": id, "state": state})).collect();
            let fingerprint = {
                use std::hash::{Hash as _, Hasher as _};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                jobs.hash(&mut hasher);
                format!("{:016x}", hasher.finish())
            };
            if fingerprint == seen {
                return Some((Vec::new(), (seen, false)));
            }
            let event = SseEvent::default().event("jobs").id(fingerprint.clone()).data(json!(list).to_string());
            Some((vec![Ok::<_, Infallible>(event)], (fingerprint, false)))
        }
    });
    let events = batches.flat_map(futures_util::stream::iter);
    live(events)
}

/// How often the index's live view reads the jobs.
const JOBS_POLL: Duration = Duration::from_secs(1);

/// Query of `GET /api/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobsQuery {
    state: Option<String>,
    repo: Option<String>,
    rule: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

/// Reads a `/api/jobs` query into a filter, or says what is wrong with it.
pub(super) fn job_filter(query: JobsQuery) -> Result<JobFilter, String> {
    let state = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(name) => Some(JobState::parse(name).ok_or_else(|| {
            let names: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown state `{name}` (one of: {})", names.join(", "))
        })?),
    };
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    Ok(JobFilter {
        state,
        repo: non_empty(query.repo),
        rule: non_empty(query.rule),
        before: query.before,
        limit: query.limit.unwrap_or(50),
    })
}

/// `GET /api/jobs?state=&repo=&rule=&before=&limit=`: newest first, 50 by default.
pub(super) async fn jobs(State(state): State<AppState>, query: Result<Query<JobsQuery>, QueryRejection>) -> Response {
    let filter = match query.map_err(|r| r.body_text()).and_then(|Query(q)| job_filter(q)) {
        Ok(filter) => filter,
        Err(why) => {
            let why = format!("{why}; the parameters are state, repo, rule, before (a job id) and limit");
            return error(StatusCode::BAD_REQUEST, why);
        }
    };
    match state.queue.jobs(filter).await {
        Ok(list) => Json(json!({ "jobs": list })).into_response(),
        Err(err) => unavailable("reading jobs", &err),
    }
}

/// `GET /api/nodes`: the daemons sharing this store, with their last heartbeat and
/// config fingerprint, and how many live ones run a config that differs.
pub(super) async fn nodes(State(state): State<AppState>) -> Response {
    match state.queue.nodes().await {
        Ok(nodes) => {
            let differ = nodes.iter().filter(|node| node.config_differs).count();
            Json(json!({ "this": state.queue.node(), "nodes": nodes, "configs_differ": differ })).into_response()
        }
        Err(err) => unavailable("reading nodes", &err),
    }
}

/// Query of `GET /api/stats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    window: Option<String>,
}

/// `GET /api/stats?window=hour|day`: the dashboard charts' figures (deliveries by
/// verdict, finished jobs by rule and state, per bucket; step durations per plugin; the
/// queue's depth), and each configured rule's success rate and mean duration.
pub(super) async fn stats(State(state): State<AppState>, query: Result<Query<StatsQuery>, QueryRejection>) -> Response {
    let name = match query {
        Ok(Query(query)) => query.window.unwrap_or_else(|| "hour".to_owned()),
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let Some(window) = crate::queue::stats::Window::parse(&name) else {
        return error(StatusCode::BAD_REQUEST, format!("unknown window `{name}` (one of: hour, day)"));
    };
    let config = state.config();
    let rules = futures_util::future::try_join_all(
        config.rules.iter().map(|rule| state.queue.rule_summary(&rule.name, window)),
    );
    match tokio::try_join!(state.queue.stats(window), rules) {
        Ok((stats, rules)) => Json(json!({ "stats": &*stats, "rules": rules })).into_response(),
        Err(err) => unavailable("reading the queue's figures", &err),
    }
}

fn not_a_job(id: &str) -> Response {
    error(StatusCode::BAD_REQUEST, format!("`{id}` is not a job id"))
}

/// `GET /api/jobs/{id}`.
pub(super) async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<i64>() else { return not_a_job(&id) };
    match state.queue.job(number).await {
        Ok(Some(job)) => Json(job).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(err) => unavailable("reading the job", &err),
    }
}

/// `POST /api/jobs/{id}/retry`: a finished job runs once more, with the event it last ran with.
pub(super) async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<i64>() else { return not_a_job(&id) };
    match state.queue.retry(number).await {
        Ok(Some(Retried::Queued)) => {
            (StatusCode::ACCEPTED, Json(json!({"job": id, "state": "queued"}))).into_response()
        }
        Ok(Some(Retried::NotFinished)) => error(StatusCode::CONFLICT, format!("job {id} has not finished")),
        Ok(Some(Retried::Superseded(newer))) => error(
            StatusCode::CONFLICT,
            format!("job {newer} is queued with a newer event for the same checkout; it will do this work"),
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(err) => unavailable("retrying the job", &err),
    }
}

/// `POST /api/jobs/{id}/cancel`: a queued or waiting job is cancelled; a running one stops before
/// its next step.
pub(super) async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<i64>() else { return not_a_job(&id) };
    match state.queue.cancel(number).await {
        Ok(Some(Cancelled::Cancelled)) => Json(json!({"job": id, "state": "cancelled"})).into_response(),
        Ok(Some(Cancelled::Requested)) => (
            StatusCode::ACCEPTED,
            Json(json!({"job": id, "state": "running", "msg": "the job stops before its next step"})),
        )
            .into_response(),
        Ok(Some(Cancelled::AlreadyFinished)) => error(StatusCode::CONFLICT, format!("job {id} has already finished")),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(err) => unavailable("cancelling the job", &err),
    }
}

/// How often a live log looks for new lines.
const LOG_POLL: Duration = Duration::from_millis(200);

/// `GET /api/jobs/{id}/log`: server-sent events. Each `log` event is one line (JSON with
/// `seq`, `at`, `step`, `level`, `message`; the SSE id is `seq`); a `state` event
/// (`{"state": ...}`) when the job's state is first read and each time it changes; an
/// `end` event with the job's final state closes the stream. Lines of the job's latest attempt, from the
/// start, or after `Last-Event-ID` when a client reconnects.
pub(super) async fn log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Ok(number) = id.parse::<i64>() else { return not_a_job(&id) };
    // Whether the job exists, without reading its lines.
    match state.queue.logs_since(number, i64::MAX).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(err) => return unavailable("reading the job", &err),
    }
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    let queue = state.queue.clone();
    // State: (last line sent, whether the stream has ended, whether this is the first poll,
    // the job's state last sent).
    let start = (resume, false, true, String::new());
    let batches = futures_util::stream::unfold(start, move |(last, ended, first, seen)| {
        let queue = queue.clone();
        async move {
            if ended {
                return None;
            }
            if !first {
                tokio::time::sleep(LOG_POLL).await;
            }
            let (job_state, lines) = match queue.logs_since(number, last).await {
                Ok(Some(found)) => found,
                Ok(None) => ("gone".to_owned(), Vec::new()),
                Err(err) => {
                    tracing::warn!(job = number, "live log: {err:#}");
                    return Some((Vec::new(), (last, false, false, seen)));
                }
            };
            let next = lines.last().map_or(last, |line| line.seq);
            let mut events: Vec<Result<SseEvent, Infallible>> = lines
                .iter()
                .map(|line| {
                    let data = serde_json::to_string(line).expect("log lines serialise");
                    Ok(SseEvent::default().event("log").id(line.seq.to_string()).data(data))
                })
                .collect();
            if job_state != seen {
                events.push(Ok(SseEvent::default().event("state").data(json!({"state": job_state}).to_string())));
            }
            let finished = !matches!(job_state.as_str(), "waiting" | "queued" | "running");
            // End only once a poll after the job finished found nothing new.
            let ended = finished && lines.is_empty();
            if ended {
                events.push(Ok(SseEvent::default().event("end").data(json!({"state": job_state}).to_string())));
            }
            Some((events, (next, ended, false, job_state)))
        }
    });
    let events = batches.flat_map(futures_util::stream::iter);
    live(events)
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state.queue).await {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(err) => unavailable("reading the queue for metrics", &err),
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
