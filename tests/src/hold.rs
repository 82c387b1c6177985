//! A reverse proxy on loopback that forwards each request to an upstream server as it
//! came (the `Host` header kept, so a signature made for the proxy's address verifies
//! upstream) and can hold one request until the test releases it: how a test looks at a
//! step half-way, e.g. a `started` build log while a fetch or an upload waits; or can
//! answer one request itself with an error (a busy S3 server's 503), forwarding nothing.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Headers that belong to one connection, not to the request: not forwarded.
const HOP_BY_HOP: [&str; 5] = ["connection", "content-length", "transfer-encoding", "keep-alive", "upgrade"];

#[derive(Default)]
struct State {
    /// The method and a part of the path of the next request to hold.
    armed: Option<(String, String)>,
    /// The path of the request being held, once one is (until a test has seen it).
    held: Option<String>,
    /// The method, a part of the path, and the status and body to answer the next
    /// matching request with, instead of forwarding it.
    refuse: Option<(String, String, u16, String)>,
    /// The path of the request answered so, once one is.
    refused: Option<String>,
}

/// The running proxy.
#[derive(Clone)]
pub struct HoldingProxy {
    /// `127.0.0.1:PORT`, as a grant names it.
    pub host: String,
    state: Arc<Mutex<State>>,
    release: Arc<Notify>,
}

impl HoldingProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let proxy = Self { host, state: Arc::default(), release: Arc::new(Notify::new()) };
        let (shared, upstream) = (proxy.clone(), upstream.trim_end_matches('/').to_owned());
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (proxy, upstream, client) = (shared.clone(), upstream.clone(), client.clone());
            async move { proxy.forward(&client, &upstream, method, uri, headers, body).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        proxy
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.host, path.trim_start_matches('/'))
    }

    /// Holds the next `method` request whose path (and query) contains `part`.
    pub fn hold(&self, method: &str, part: &str) {
        self.state.lock().unwrap().armed = Some((method.to_owned(), part.to_owned()));
    }

    /// Waits until a request is held; returns its path. The next call waits for the
    /// next hold.
    pub async fn held(&self) -> String {
        crate::wait_for("a request to hold", std::time::Duration::from_secs(60), || async {
            self.state.lock().unwrap().held.take()
        })
        .await
    }

    /// Answers the next `method` request whose path (and query) contains `part` with
    /// `status` and `body` itself; the upstream server never sees it.
    pub fn refuse(&self, method: &str, part: &str, status: u16, body: &str) {
        self.state.lock().unwrap().refuse = Some((method.to_owned(), part.to_owned(), status, body.to_owned()));
    }

    /// The path of the request [`HoldingProxy::refuse`] answered, if one was.
    pub fn refused(&self) -> Option<String> {
        self.state.lock().unwrap().refused.clone()
    }

    /// Lets the held request (or the next one to be held) through.
    pub fn release(&self) {
        self.release.notify_one();
    }

    async fn forward(
        &self,
        client: &reqwest::Client,
        upstream: &str,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), ToString::to_string);
        let refusal = {
            let mut state = self.state.lock().unwrap();
            let matches =
                state.refuse.as_ref().is_some_and(|(m, part, ..)| m == method.as_str() && path.contains(part.as_str()));
            if matches {
                state.refused = Some(path.clone());
                state.refuse.take()
            } else {
                None
            }
        };
        if let Some((_, _, status, body)) = refusal {
            let status = StatusCode::from_u16(status).unwrap();
            return (status, [("content-type", "application/xml")], body).into_response();
        }
        let hold = {
            let mut state = self.state.lock().unwrap();
            let matches = state.armed.as_ref().is_some_and(|(m, part)| m == method.as_str() && path.contains(part));
            if matches {
                state.armed = None;
                state.held = Some(path.clone());
            }
            matches
        };
        if hold {
            self.release.notified().await;
        }
        let mut request = client.request(method, format!("{upstream}{path}")).body(body);
        for (name, value) in &headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                request = request.header(name, value);
            }
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(err) => return (StatusCode::BAD_GATEWAY, format!("proxy: {err}")).into_response(),
        };
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                response = response.header(name, value);
            }
        }
        response.body(axum::body::Body::from(answer.bytes().await.unwrap_or_default())).unwrap()
    }
}
