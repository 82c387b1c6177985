//! The exporter: one task per [`super::Telemetry`] that takes finished spans from the
//! bounded queue, batches them (up to [`BATCH`] spans or [`LINGER`]) and posts each
//! batch to the collector, retrying as the OTLP/HTTP spec asks. A batch that cannot be
//! sent is dropped and counted; spans finished meanwhile wait in the queue or are dropped.

use super::{SpanCounts, SpanData, Value, otlp};
use crate::config::telemetry::Telemetry as Settings;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Spans in one request at most.
pub const BATCH: usize = 512;
/// How long a span waits for others before its batch is sent.
const LINGER: Duration = Duration::from_secs(1);
/// Tries of one batch at most (the first and the retries).
const TRIES: u32 = 4;
/// The first retry's wait; doubled for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait a collector's `Retry-After` is followed for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Sends one [`super::Telemetry`]'s spans.
pub(super) struct Exporter {
    client: reqwest::Client,
    endpoint: String,
    headers: reqwest::header::HeaderMap,
    resource: Vec<(&'static str, Value)>,
    counts: Arc<SpanCounts>,
    logged_drop: AtomicU64,
    born: Instant,
}

/// Why a batch was not taken.
enum Failure {
    /// Worth trying again (connection failed, 429, 502, 503, 504), after the wait the
    /// collector asked for, if it did.
    Retry(String, Option<Duration>),
    /// The collector refused it for good (another status).
    Refused(String),
}

impl Exporter {
    pub(super) fn new(settings: &Settings, node: &str, counts: Arc<SpanCounts>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &settings.headers {
            // Checked by the config's validation.
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())?;
            let mut value = reqwest::header::HeaderValue::from_str(value.expose())?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers
            .insert(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("application/x-protobuf"));
        let client = reqwest::Client::builder()
            .user_agent(concat!("gitauto/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            // A redirect would carry the collector's API keys (custom headers, which
            // reqwest keeps across hosts) and the spans to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let resource = vec![
            ("service.name", Value::from(settings.service_name.as_str())),
            ("service.version", Value::from(env!("CARGO_PKG_VERSION"))),
            ("host.name", Value::from(node)),
        ];
        Ok(Self {
            client,
            endpoint: settings.endpoint.clone(),
            headers,
            resource,
            counts,
            logged_drop: AtomicU64::new(u64::MAX),
            born: Instant::now(),
        })
    }

    /// Sends batches until the queue is closed and empty.
    pub(super) async fn run(self, mut queue: mpsc::Receiver<SpanData>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let Some(first) = queue.recv().await else { return };
            batch.push(first);
            let until = tokio::time::Instant::now() + LINGER;
            let mut open = true;
            while batch.len() < BATCH {
                tokio::select! {
                    next = queue.recv() => match next {
                        Some(span) => batch.push(span),
                        None => { open = false; break }
                    },
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            self.send(&batch).await;
            batch.clear();
            if !open {
                return;
            }
        }
    }

    async fn send(&self, batch: &[SpanData]) {
        let body = bytes::Bytes::from(otlp::encode(&self.resource, batch));
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=TRIES {
            let failure = match self.post(body.clone()).await {
                Ok(()) => {
                    self.counts.exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(failure) => failure,
            };
            match failure {
                Failure::Retry(why, wait) if attempt < TRIES => {
                    tracing::debug!(attempt, "exporting spans to {}: {why}; trying again", self.endpoint);
                    tokio::time::sleep(wait.unwrap_or(backoff)).await;
                    backoff *= 2;
                }
                Failure::Retry(why, _) | Failure::Refused(why) => {
                    let why = format!("exporting to {} failed: {why}", self.endpoint);
                    super::dropped(&self.counts, &self.logged_drop, self.born, batch.len() as u64, &why);
                    return;
                }
            }
        }
    }

    async fn post(&self, body: bytes::Bytes) -> Result<(), Failure> {
        let response = self
            .client
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|err| Failure::Retry(format!("{err}"), None))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
        let why = format!("the collector answered {status}");
        Err(match status.as_u16() {
            429 | 502 | 503 | 504 => Failure::Retry(why, retry_after),
            _ => Failure::Refused(why),
        })
    }
}
