//! The host's own calls to a forge's REST API: commit statuses and check runs (see
//! `report`), permission checks, reply comments and approvals. One client for the whole
//! daemon; each call names the source (whose `api` table gives the root and the token)
//! and the repository it is about (a GitHub App mints a token for that repository's
//! installation: `forge_api/app.rs`). Nothing here is reachable from a plugin: tokens
//! never leave the host.

mod app;

pub use app::{AppAccess, MAX_JOB_MINTS, revoked_installation};

use crate::config::Source;
use crate::config::api::Scheme;
use crate::secret::Secret;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long one request may take, answer included.
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// The largest answer read.
const MAX_ANSWER: usize = 8 << 20;

/// What a call is about: the repository (and, for a GitHub App, its installation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// `owner/name` (GitLab: the project's full path).
    pub repo: String,
    /// The GitHub App installation the event came through, when there is one.
    pub installation: Option<u64>,
    /// What a GitHub App's token for the call may do, as GitHub names it
    /// (`[("statuses", "write")]`); none: `metadata: read` only. Sources with a token of
    /// their own ignore it.
    pub permissions: &'static [(&'static str, &'static str)],
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The source has no `api` (or `app`) table.
    #[error("source \"{source_name}\" has no `api` table: the host cannot call {forge}'s API for it")]
    NotConfigured {
        /// The source.
        source_name: String,
        /// Its forge.
        forge: String,
    },
    /// Worth trying again later: no connection, a time-out, 429 or a 5xx answer.
    #[error("{request}: {detail}")]
    Transient {
        /// `METHOD URL`.
        request: String,
        /// What happened.
        detail: String,
    },
    /// The forge answered no (4xx other than 429): trying again gives the same answer.
    #[error("{request}: {status}: {message}")]
    Refused {
        /// `METHOD URL`.
        request: String,
        /// The HTTP status.
        status: u16,
        /// The forge's message, or the start of its answer.
        message: String,
    },
    /// The call could not be made at all (a bad token value, an unusable answer).
    #[error("{0}")]
    Failed(String),
}

impl ApiError {
    /// Whether another try could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Transient { .. })
    }

    /// The HTTP status the forge answered, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A forge's answer: its status, headers and JSON body (`null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The response headers (`Link` for pagination, ...).
    pub headers: HeaderMap,
    /// The body parsed as JSON; `Value::Null` for an empty body.
    pub body: Value,
}

/// The daemon's client for forge APIs. Cheap to clone.
#[derive(Clone)]
pub struct ForgeApis {
    client: reqwest::Client,
    /// GitHub App installation tokens and installations looked up, shared by every clone.
    apps: Arc<app::Apps>,
}

impl ForgeApis {
    /// A client with the host's user agent, no redirects (a token must not follow one
    /// elsewhere) and a time limit per request.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("gitauto/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIME)
            .build()?;
        Ok(Self { client, apps: Arc::default() })
    }

    /// Whether the host can call `source`'s API.
    pub fn configured(source: &Source) -> bool {
        source.api.is_some()
    }

    /// `METHOD <api root><path>` with `body` as JSON, authenticated for `target` on
    /// `source`. `path` starts with `/` and is already percent-encoded.
    pub async fn call(
        &self,
        source: &Source,
        target: &ApiTarget,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let api = source
            .api
            .as_ref()
            .ok_or_else(|| ApiError::NotConfigured { source_name: source.name.clone(), forge: source.forge.into() })?;
        let url = format!("{}{path}", api.url);
        let Some(app) = &source.app else {
            let token = api.token.clone().ok_or_else(|| ApiError::NotConfigured {
                source_name: source.name.clone(),
                forge: source.forge.into(),
            })?;
            return self.send(source, method, &url, api.scheme, &token, body).await;
        };
        let permissions = app::Permissions::from_static(target.permissions);
        let minted = self.app_token(source, app, &target.repo, target.installation, &permissions, None).await?;
        let answer = self.send(source, method.clone(), &url, Scheme::Bearer, &minted.token, body).await;
        match answer {
            // A token GitHub no longer accepts (revoked, the installation changed) is
            // dropped; one taken from the cache is minted again and the call made once more.
            Err(ApiError::Refused { status: status @ (401 | 404), .. }) if minted.cached => {
                self.apps.drop_token(&minted.key);
                if status == 401 {
                    let minted =
                        self.app_token(source, app, &target.repo, target.installation, &permissions, None).await?;
                    return self.send(source, method, &url, Scheme::Bearer, &minted.token, body).await;
                }
                answer
            }
            answer => answer,
        }
    }

    /// One request to `url` with `token` sent in `scheme`: no redirects, a bounded
    /// answer, 429 and 5xx transient.
    async fn send(
        &self,
        source: &Source,
        method: Method,
        url: &str,
        scheme: Scheme,
        token: &Secret,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let request_name = format!("{method} {url}");
        let mut request = self.client.request(method, url).header(reqwest::header::ACCEPT, accept(source.forge));
        let (name, value) = authorization(scheme, token);
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            ApiError::Failed(format!("source \"{}\": the API token is not a valid header value", source.name))
        })?;
        value.set_sensitive(true);
        request = request.header(name, value);
        if source.forge == "github" {
            request = request.header("x-github-api-version", "2022-11-28");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transient = |detail: String| ApiError::Transient { request: request_name.clone(), detail };
        let mut response = request.send().await.map_err(|err| transient(format!("{err}")))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| transient(format!("reading the answer: {err}")))? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(ApiError::Failed(format!("{request_name}: the answer is larger than {MAX_ANSWER} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let message = message(&bytes);
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(transient(format!("{status}: {message}")));
            }
            return Err(ApiError::Refused { request: request_name, status: status.as_u16(), message });
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|err| ApiError::Failed(format!("{request_name}: the answer is not JSON: {err}")))?
        };
        Ok(Answer { status: status.as_u16(), headers: response.headers().clone(), body })
    }
}

/// The `Accept` header each forge's API expects.
fn accept(forge: &str) -> &'static str {
    match forge {
        "github" => "application/vnd.github+json",
        _ => "application/json",
    }
}

/// The header carrying `token` in `scheme`.
fn authorization(scheme: Scheme, token: &Secret) -> (&'static str, String) {
    use base64::Engine as _;
    let token = token.expose();
    match scheme {
        Scheme::Bearer => ("authorization", format!("Bearer {token}")),
        Scheme::Token => ("authorization", format!("token {token}")),
        Scheme::PrivateToken => ("private-token", token.to_owned()),
        Scheme::Basic => {
            ("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(token.as_bytes())))
        }
    }
}

/// The forge's error message from an answer, or the start of the answer.
fn message(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|answer| {
            let text = answer.get("message").or_else(|| answer.get("error"))?;
            Some(match text {
                Value::String(text) => text.clone(),
                // Bitbucket: {"error": {"message": "..."}}
                other => other.get("message").and_then(Value::as_str).map_or_else(|| other.to_string(), str::to_owned),
            })
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned())
}

/// `owner/name` as one percent-encoded path segment (GitLab's `:id`).
pub fn encode_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_in_the_header_each_scheme_names() {
        let token = Secret::new("t0k");
        assert_eq!(authorization(Scheme::Bearer, &token), ("authorization", "Bearer t0k".into()));
        assert_eq!(authorization(Scheme::Token, &token), ("authorization", "token t0k".into()));
        assert_eq!(authorization(Scheme::PrivateToken, &token), ("private-token", "t0k".into()));
        assert_eq!(authorization(Scheme::Basic, &Secret::new("u:p")), ("authorization", "Basic dTpw".into()));
    }

    #[test]
    fn error_messages_are_read_from_each_forges_answer() {
        assert_eq!(message(br#"{"message": "Not Found"}"#), "Not Found");
        assert_eq!(message(br#"{"error": {"message": "Bad state"}}"#), "Bad state");
        assert_eq!(message(b"<html>oops"), "<html>oops");
        assert_eq!(encode_segment("group/sub project"), "group%2Fsub%20project");
    }
}
