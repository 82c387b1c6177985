//! One bounded GET, as every fetch of a plugin, manifest, token or signature makes it:
//! redirects followed only to https (or from loopback http to loopback http), at most
//! [`MAX_REDIRECTS`] of them, timeouts on connecting, on each read and on the whole
//! request, and a body cut off past the caller's limit.

use super::reference::may_fetch;
use anyhow::Context;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may stay silent mid-answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may take in all, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// An answer: its status, headers and body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, whole (never more than the limit asked for).
    pub body: Vec<u8>,
}

/// The HTTP client fetches go through.
#[derive(Debug, Clone)]
pub struct Download {
    client: reqwest::Client,
}

impl Download {
    /// A client with this module's redirect rule and timeouts.
    pub fn new() -> anyhow::Result<Self> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let from_loopback_http = attempt.previous().iter().all(|url| url.scheme() == "http");
            let allowed = attempt.url().scheme() == "https" || from_loopback_http && may_fetch(attempt.url());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if allowed {
                attempt.follow()
            } else {
                let to = attempt.url().to_string();
                attempt.error(format!("redirected to {to}: only https is followed"))
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("gitauto/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client })
    }

    /// GETs `url` with `headers`; fails past `limit` bytes of body (an answer that is not
    /// a success is cut at [`ERROR_BODY_LIMIT`] instead: its start is all a message quotes).
    pub async fn get(&self, url: &str, headers: &[(&str, String)], limit: u64) -> anyhow::Result<Answer> {
        let mut request = self.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(|err| anyhow::anyhow!("GET {url}: {}", reqwest_error(&err)))?;
        // A refusal's body is only ever quoted: its start is read, not up to a component's size.
        let refused = !response.status().is_success();
        let limit = if refused { ERROR_BODY_LIMIT } else { limit };
        let too_large =
            || anyhow::anyhow!("GET {url}: the answer is larger than {}", crate::config::format_size(limit));
        if !refused && response.content_length().is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| anyhow::anyhow!("GET {url}: reading the answer: {}", reqwest_error(&err)))?
        {
            let room = limit as usize - body.len();
            if chunk.len() > room {
                if refused {
                    body.extend_from_slice(&chunk[..room]);
                    break;
                }
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status: response.status(), headers: response.headers().clone(), body })
    }
}

/// Most bytes of an error answer read (callers quote its start).
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A reqwest error with its causes: its own message alone is often "error sending request".
fn reqwest_error(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `status` as an error for `what` when it is not a success.
pub fn expect_success(answer: &Answer, what: &str) -> anyhow::Result<()> {
    if answer.status.is_success() {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&answer.body);
    let body: String = body.chars().take(200).filter(|c| !c.is_control()).collect();
    anyhow::bail!(
        "{what}: the server answered {}{}",
        answer.status,
        if body.is_empty() { String::new() } else { format!(": {body}") }
    )
}
