//! The accept loop, with the bounds `axum::serve` lacks: at most `max_connections`
//! connections at once (the rest wait in the kernel's backlog), request headers that
//! must arrive within `header_timeout` and fit in `max_header`, bodies that must arrive
//! within `body_timeout` ([`read_body_within`]). A slowloris client therefore holds a
//! connection for `header_timeout` at most, and a flood of them delays a health check
//! by no more than that.

use crate::config::Server;
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Serves `app` on `listener` within `bounds` until `shutdown` resolves, then lets open
/// requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: &Server,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(bounds.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout)
        .max_buf_size(bounds.max_header.max(MIN_HEADER_BUFFER));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, typically: wait for some to close.
                    tracing::warn!("accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Handlers that care where a request came from (gitreload's `allow_unsigned_from`)
        // read the peer as axum's `ConnectInfo`.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            metrics.connection_opened();
            if let Err(err) = connection.await {
                tracing::debug!("connection ended: {err}");
            }
            metrics.connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {drain:?} were closed");
    }
}

/// hyper refuses a read buffer smaller than this.
const MIN_HEADER_BUFFER: usize = 8 * 1024;

/// Reads the whole request body within `body_timeout` (408 otherwise) and at most
/// `max_body` bytes of it (413 otherwise), before any handler sees the request: a client
/// trickling its body cannot hold a handler, nor memory, for long. One byte more passes,
/// so the routes' own limits (`DefaultBodyLimit`) still notice and answer alike.
pub async fn read_body_within(State(bounds): State<(Duration, usize)>, request: Request, next: Next) -> Response {
    let (timeout, max_body) = bounds;
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max_body.saturating_add(1))).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(err)) => {
            let too_large =
                std::error::Error::source(&err).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                let (status, message) = super::too_large(max_body);
                super::error(status, message)
            } else {
                super::error(StatusCode::BAD_REQUEST, format!("reading the body: {err}"))
            }
        }
        Err(_) => super::error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within body_timeout ({} s)", timeout.as_secs_f64()),
        ),
    }
}
