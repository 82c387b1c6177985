//! A webhook receiver on loopback, for the `notify` plugin's tests: it counts every
//! connection, records every request as it came (method, path, headers, raw body), and
//! answers from a script (then `200 ok`), as Slack, Teams, a Matrix homeserver or a
//! build callback would.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `PUT`, ...
    pub method: String,
    /// Path and query, as sent (percent-encoding kept).
    pub path: String,
    /// Headers, names lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body's bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{} {}: body is not JSON ({err}): {}", self.method, self.path, self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An answer to give.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Debug, Default)]
struct State {
    connections: usize,
    requests: Vec<Received>,
    script: VecDeque<Answer>,
}

/// The running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Starts a receiver that answers `200 ok` until told otherwise.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counted = state.clone();
        let listener = listener.tap_io(move |_| counted.lock().unwrap().connections += 1);
        let shared = state.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move { receive(&state, &method, &uri, &headers, &body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// `host:port`, as a grant names it.
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Queues an answer for the next request not yet answered from the script.
    pub fn then_answer(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        self.state.lock().unwrap().script.push_back(Answer { status, headers, body: body.to_owned() });
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many connections were opened to it so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }
}

fn receive(state: &Mutex<State>, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut state = state.lock().unwrap();
    state.requests.push(Received {
        method: method.to_string(),
        path: uri.path_and_query().map_or_else(|| uri.path().to_owned(), ToString::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
    });
    let answer = state.script.pop_front().unwrap_or(Answer { status: 200, headers: Vec::new(), body: "ok".to_owned() });
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (name, value) in answer.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}
