//! The HTTP interface. `router(state)` builds the axum router; each group of endpoints
//! has its own module and stays thin, calling `forge`, `route` and `queue`:
//! - `hooks`: `POST /hooks/{source}`, the webhook receiver;
//! - `api`: deliveries and jobs, read and redelivered;
//! - `gitreload`: gitreload's endpoints, when `[compat.gitreload]` enables them.
//!
//! Every error answer is `{"error": "..."}` saying what is wrong; details go to the
//! daemon's log under the delivery id.

mod api;
mod gitreload;
mod hooks;

use crate::config::Config;
use crate::queue::Queue;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The running config.
    pub config: Arc<Config>,
    /// The durable queue.
    pub queue: Queue,
}

/// The router for a daemon.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body;
    let mut router = Router::new()
        .route("/hooks/{source}", post(hooks::hook).layer(DefaultBodyLimit::max(max_body)))
        .route("/api/deliveries", get(api::deliveries))
        .route("/api/deliveries/{id}", get(api::delivery))
        .route("/api/deliveries/{id}/redeliver", post(api::redeliver))
        .route("/api/jobs/{id}", get(api::job))
        .route("/queue", get(api::queue))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }));
    if state.config.compat.gitreload.is_some() {
        router = router.merge(gitreload::routes(max_body));
    }
    router
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this path")
        })
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
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
