//! The HTTP interface. `router(state)` builds the axum router; each group of endpoints
//! has its own module and stays thin: it extracts the request, calls the ingest pipeline
//! or the queue, and maps the result to a status:
//! - `hooks`: `POST /hooks/{source}`, the webhook receiver;
//! - `api`: deliveries and jobs (read, redelivered, retried, cancelled, live logs), metrics;
//! - `rules`: flow control: each rule's state, pause and resume;
//! - `kv`: plugins' key-value stores, listed, read and deleted by operators;
//! - `dashboard`: the HTML pages, and `svg` the charts they draw;
//! - `gitreload`: gitreload's endpoints, when `[compat.gitreload]` enables them;
//! - `auth`: the token the API, dashboard and metrics require when one is configured;
//! - `browser`: cross-site requests to the routes behind the token refused, framing forbidden.
//!
//! Every error answer is `{"error": "..."}` saying what is wrong; details go to the
//! daemon's log under the delivery id.

mod api;
mod auth;
mod browser;
mod dashboard;
mod gitreload;
mod hooks;
mod kv;
pub mod listen;
mod manual;
mod rules;
mod svg;

use crate::config::Config;
use crate::queue::Queue;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The running config (and plugins); reloads replace it.
    pub live: Arc<crate::live::Live>,
    /// The durable queue.
    pub queue: Queue,
    /// Counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The daemon's forge API client (installation events drop its GitHub App tokens).
    pub apis: crate::forge_api::ForgeApis,
}

impl AppState {
    /// The config current now; a request keeps the one it started with.
    pub fn config(&self) -> Arc<Config> {
        self.live.config()
    }

    /// The ingest pipeline over this state's config, queue and counters.
    pub fn pipeline(&self) -> crate::ingest::Pipeline {
        crate::ingest::Pipeline::new(self.live.clone(), self.queue.clone(), self.metrics.clone())
            .with_apis(self.apis.clone())
    }
}

/// The router for a daemon.
pub fn router(state: AppState) -> Router {
    let config = state.config();
    let max_body = config.server.max_body;
    // Behind the API token (when one is configured).
    let protected = Router::new()
        .route("/api/events", post(manual::trigger).layer(DefaultBodyLimit::max(max_body)))
        .route("/api/config", get(|State(state): State<AppState>| async move { Json(state.live.status()) }))
        .route("/api/deliveries", get(api::deliveries))
        .route("/api/deliveries/live", get(api::deliveries_live))
        .route("/api/deliveries/{id}", get(api::delivery))
        .route("/api/deliveries/{id}/redeliver", post(api::redeliver))
        .route("/api/nodes", get(api::nodes))
        .route("/api/stats", get(api::stats))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/live", get(api::jobs_live))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/jobs/{id}/retry", post(api::retry))
        .route("/api/jobs/{id}/cancel", post(api::cancel))
        .route("/api/jobs/{id}/log", get(api::log))
        .route("/api/kv/{store}", get(kv::list))
        .route("/api/kv/{store}/entry", get(kv::entry))
        .route("/api/kv/{store}/delete", post(kv::delete))
        .route("/api/rules", get(rules::list))
        .route("/api/rules/{name}/pause", post(rules::pause))
        .route("/api/rules/{name}/resume", post(rules::resume))
        .route("/queue", get(api::queue))
        .route("/metrics", get(api::metrics))
        .route("/deliveries", get(dashboard::deliveries))
        .route("/deliveries/{key}", get(dashboard::delivery))
        .route("/deliveries/{key}/redeliver", post(dashboard::redeliver))
        .route("/jobs/{id}", get(dashboard::job))
        .route("/jobs/{id}/{action}", post(dashboard::action))
        .route("/rules/{name}", get(dashboard::rule))
        .route("/rules/{name}/{action}", post(dashboard::rule_action))
        .route("/charts", get(dashboard::charts))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        // Outside the token check: a browser's cached credentials are what a forged request rides on.
        .route_layer(axum::middleware::from_fn(browser::refuse_cross_site));
    let dashboard_index =
        get(dashboard::index).route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    // `POST /` is gitreload's course import, when enabled; `GET /` the dashboard.
    let root = if config.compat.gitreload.is_some() {
        dashboard_index.post(gitreload::import).layer(DefaultBodyLimit::max(max_body))
    } else {
        dashboard_index
    };
    let mut router = Router::new()
        .route("/", root)
        .route("/hooks/{source}", post(hooks::hook).layer(DefaultBodyLimit::max(max_body)))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(protected);
    if config.compat.gitreload.is_some() {
        router = router.merge(gitreload::routes(max_body));
    }
    router
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this path")
        })
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state((config.server.body_timeout, max_body), listen::read_body_within))
        .layer(axum::middleware::from_fn(browser::forbid_framing))
        .with_state(state)
}

/// The answer to a body over `max_body`, wherever it is noticed.
fn too_large(max_body: usize) -> (StatusCode, String) {
    let limit = crate::config::format_size(max_body as u64);
    (StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than the limit of {limit}"))
}

/// An error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The answer when the queue could not be read or written.
fn unavailable(what: &str, err: &anyhow::Error) -> Response {
    tracing::error!("{what}: {err:#}");
    error(StatusCode::SERVICE_UNAVAILABLE, format!("{what} failed; try again"))
}
