//! A client of a running daemon's API, for the command line (`gitauto jobs`, `job`,
//! `retry`, `cancel`, `redeliver`, `trigger`, `rules`, `pause`, `resume`). It sends the config's API token when there is one.

use anyhow::Context;
use serde_json::Value;

/// The daemon at `base` (e.g. `http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// An answer: the status and the JSON body (`null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// The body, or an error with the daemon's `error` text.
    pub fn ok(self) -> anyhow::Result<Value> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            let why = self.body["error"].as_str().map_or_else(|| self.body.to_string(), str::to_owned);
            anyhow::bail!("the daemon answered {}: {why}", self.status)
        }
    }
}

impl Client {
    /// A client for `base`, sending `token` as a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), token, http: reqwest::Client::new() }
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Answer> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.with_context(|| format!("{what} at {}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.context("reading the answer")?;
        Ok(Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(self.http.get(format!("{}{path}", self.base)), &format!("GET {path}")).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), &format!("POST {path}")).await
    }

    /// `POST path` with no body.
    pub async fn post(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(self.http.post(format!("{}{path}", self.base)), &format!("POST {path}")).await
    }

    /// `POST /api/rules/{rule}/pause` (`pause` true) or `/resume`, the name encoded (rule
    /// names may hold spaces and slashes).
    pub async fn pause_rule(&self, rule: &str, pause: bool) -> anyhow::Result<Answer> {
        let name = percent_encoding::utf8_percent_encode(rule, percent_encoding::NON_ALPHANUMERIC);
        self.post(&format!("/api/rules/{name}/{}", if pause { "pause" } else { "resume" })).await
    }
}
