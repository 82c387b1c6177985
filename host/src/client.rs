//! A client of a running daemon's API, for the command line (`gitauto jobs`, `job`,
//! `retry`, `cancel`, `redeliver`, `trigger`, `rules`, `pause`, `resume`). It sends the config's API token when there is one.

use crate::queue::JobView;
use anyhow::Context;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// The states a job leaves: while in one of these, it has not finished.
const UNFINISHED: &[&str] = &["waiting", "queued", "running"];

/// How many lookups in a row may fail (the daemon restarting, a dropped connection)
/// before waiting gives up.
const LOOKUP_ATTEMPTS: u32 = 10;

/// Why waiting for a job ended before it finished.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed first; the job goes on.
    #[error("job {job} is still {state} after {}s; it goes on without waiting", waited.as_secs())]
    TimedOut {
        /// The job waited for.
        job: String,
        /// Its state when the time ran out.
        state: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The daemon could not be asked, or did not answer with the job.
    #[error("following job {job}: {cause:#}")]
    Unreachable {
        /// The job waited for.
        job: String,
        /// What went wrong.
        cause: anyhow::Error,
    },
}

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

    /// Waits until job `id` has finished (any state but queued or running) and returns it;
    /// a superseded job is followed to the job that carries its event now. Gives up at
    /// `deadline`, or when the daemon stops answering.
    pub async fn finished_job(&self, id: &str, deadline: Option<Instant>) -> Result<JobView, WaitError> {
        let started = Instant::now();
        let mut id = id.to_owned();
        let mut pause = Duration::from_millis(100);
        let mut failures = 0;
        let mut followed = std::collections::HashSet::new();
        loop {
            let unreachable = |cause| WaitError::Unreachable { job: id.clone(), cause };
            let state = match self.job(&id).await {
                Ok(job) => match (job.state.as_str(), &job.superseded_by) {
                    ("superseded", Some(next)) => {
                        // Followed at once, but never in a circle and never past the deadline.
                        if !followed.insert(id.clone()) {
                            return Err(unreachable(anyhow::anyhow!("the jobs that superseded it lead back to it")));
                        }
                        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                            let waited = started.elapsed();
                            return Err(WaitError::TimedOut { job: id, state: job.state, waited });
                        }
                        id.clone_from(next);
                        continue;
                    }
                    (state, _) if UNFINISHED.contains(&state) => {
                        failures = 0;
                        job.state
                    }
                    _ => return Ok(job),
                },
                Err(Lookup::Refused(cause)) => return Err(unreachable(cause)),
                Err(Lookup::Failed(cause)) => {
                    failures += 1;
                    if failures >= LOOKUP_ATTEMPTS {
                        return Err(unreachable(cause));
                    }
                    "unknown".to_owned()
                }
            };
            let now = Instant::now();
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return Err(WaitError::TimedOut { job: id, state, waited: now - started });
                }
                pause = pause.min(deadline - now);
            }
            tokio::time::sleep(pause).await;
            // Quick jobs are seen quickly; long ones are not asked about ten times a second.
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// `GET /api/jobs/{id}` as a job.
    async fn job(&self, id: &str) -> Result<JobView, Lookup> {
        let answer = self.get(&format!("/api/jobs/{id}")).await.map_err(Lookup::Failed)?;
        if answer.status >= 500 {
            return Err(Lookup::Failed(answer.ok().expect_err("a 5xx answer is an error")));
        }
        let body = answer.ok().map_err(Lookup::Refused)?;
        serde_json::from_value(body).context("the daemon's answer is not a job").map_err(Lookup::Refused)
    }

    /// `POST /api/rules/{rule}/pause` (`pause` true) or `/resume`, the name encoded (rule
    /// names may hold spaces and slashes).
    pub async fn pause_rule(&self, rule: &str, pause: bool) -> anyhow::Result<Answer> {
        let name = percent_encoding::utf8_percent_encode(rule, percent_encoding::NON_ALPHANUMERIC);
        self.post(&format!("/api/rules/{name}/{}", if pause { "pause" } else { "resume" })).await
    }
}

/// Why a job could not be looked up.
enum Lookup {
    /// Worth asking again: no connection, or the daemon answered 5xx.
    Failed(anyhow::Error),
    /// Asking again gives the same answer (unknown job, bad token).
    Refused(anyhow::Error),
}
