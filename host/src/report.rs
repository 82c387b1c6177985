//! Reports to the forge: the reporter task sends the rows the queue's outbox holds
//! (written with each job transition, see `queue/reports.rs`) as commit statuses or GitHub
//! check runs, each job's rows in order, through [`ForgeApis`]. A transient failure is
//! tried again with backoff; a refused or unsendable row is recorded and skipped. Nothing
//! here blocks or fails a job. Also: re-run requests from GitHub's checks UI ([`rerun`]).
//! What each forge is sent is `request.rs`'s.

pub mod request;

use crate::config::{Config, ReportKind};
use crate::event::Event;
use crate::forge_api::{ApiError, ApiTarget, ForgeApis};
use crate::live::Live;
use crate::queue::{OutboxRow, Queue, Retried};
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Rows claimed at once (each from another job; sent concurrently).
const BATCH: usize = 16;
/// How long a claim holds a row against other nodes: more than a row's requests take.
const LEASE: Duration = Duration::from_secs(300);
/// How often the outbox is looked at without a wake-up (rows whose backoff ended).
const POLL: Duration = Duration::from_secs(2);
/// The first wait after a transient failure; doubled for each later one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Tries before a row that keeps failing transiently is given up (about 2 days with the
/// backoff above), so that an API gone for good does not hold a job's later rows forever.
pub const MAX_TRIES: i64 = 300;

/// The permissions a commit status needs of a GitHub App installation token.
const STATUS_PERMISSIONS: &[(&str, &str)] = &[("statuses", "write")];
/// The permissions a check run needs of a GitHub App installation token.
const CHECK_PERMISSIONS: &[(&str, &str)] = &[("checks", "write")];

/// Why a row was not sent.
#[derive(Debug)]
enum Failure {
    /// Worth another try later.
    Transient(String),
    /// The forge refused it, or it cannot be sent at all: recorded, and the job's next
    /// row goes on.
    Final(String),
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        match err {
            err if err.is_transient() => Failure::Transient(err.to_string()),
            err @ ApiError::Refused { .. } => Failure::Final(format!("refused: {err}")),
            err => Failure::Final(err.to_string()),
        }
    }
}

/// The reporter: one per daemon.
#[derive(Clone)]
pub struct Reporter {
    queue: Queue,
    live: Arc<Live>,
    apis: ForgeApis,
}

impl Reporter {
    /// A reporter sending the rows of `queue` under the config `live` holds.
    pub fn new(queue: Queue, live: Arc<Live>, apis: ForgeApis) -> Self {
        Self { queue, live, apis }
    }

    /// Sends rows as they come until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let signal = self.queue.report_signal();
        loop {
            if *stop.borrow() {
                return;
            }
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.queue.claim_reports(BATCH, LEASE).await {
                Ok(rows) if !rows.is_empty() => {
                    let mut sending = tokio::task::JoinSet::new();
                    for row in rows {
                        sending.spawn(self.clone().deliver(row));
                    }
                    while sending.join_next().await.is_some() {}
                    continue;
                }
                Ok(_) => {}
                Err(_) if self.queue.is_closed() => return,
                Err(err) => tracing::error!("reading the report outbox: {err:#}"),
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Sends one row and records what became of it.
    async fn deliver(self, row: OutboxRow) {
        let recorded = match self.send(&row).await {
            Ok(outcome) => self.queue.report_done(row.id, outcome).await,
            Err(Failure::Final(why)) => {
                tracing::warn!(job = row.job, state = %row.state, sha = %row.sha, "report not sent: {why}");
                self.queue.report_done(row.id, &why).await
            }
            Err(Failure::Transient(why)) if row.tries + 1 >= MAX_TRIES => {
                tracing::error!(job = row.job, state = %row.state, "report given up after {MAX_TRIES} tries: {why}");
                self.queue.report_done(row.id, &format!("given up after {MAX_TRIES} tries: {why}")).await
            }
            Err(Failure::Transient(why)) => {
                let wait = backoff(row.tries);
                tracing::warn!(job = row.job, state = %row.state, "report failed, trying again in {wait:?}: {why}");
                let at = crate::queue::now_ms() + wait.as_millis() as i64;
                self.queue.report_later(row.id, &why, at).await
            }
        };
        if let Err(err) = recorded
            && !self.queue.is_closed()
        {
            // The claim runs out and the row is sent again: statuses say the same twice.
            tracing::error!(job = row.job, "recording a report's outcome: {err:#}");
        }
    }

    /// Sends `row`; what to record as its outcome.
    async fn send(&self, row: &OutboxRow) -> Result<&'static str, Failure> {
        let config = self.live.config();
        let source = config
            .source(&row.source)
            .ok_or_else(|| Failure::Final(format!("source \"{}\" is no longer in the config", row.source)))?;
        let link = job_link(&config, row.job);
        let finished = !matches!(row.state.as_str(), "queued" | "running");
        let steps = if finished {
            self.queue.report_steps(row.job, row.attempt).await.map_err(|err| Failure::Transient(format!("{err:#}")))?
        } else {
            Vec::new()
        };
        let kind = ReportKind::parse(&row.kind)
            .ok_or_else(|| Failure::Final(format!("unknown report kind `{}`", row.kind)))?;
        let permissions = match kind {
            ReportKind::Status => STATUS_PERMISSIONS,
            ReportKind::Check => CHECK_PERMISSIONS,
        };
        let target = ApiTarget { repo: row.repo.clone(), installation: row.installation, permissions };
        match kind {
            ReportKind::Status => {
                let Some((path, body)) =
                    request::status(source.forge, row, &steps, link.as_deref()).map_err(Failure::Final)?
                else {
                    return Ok("not needed");
                };
                self.apis.call(source, &target, Method::POST, &path, Some(&body)).await?;
                Ok("sent")
            }
            ReportKind::Check => {
                if source.forge != "github" {
                    return Err(Failure::Final(format!("{} has no check runs", source.forge)));
                }
                let repo = request::repo_path(&row.repo).map_err(Failure::Final)?;
                let now = jiff::Timestamp::now().to_string();
                let (first, more) = request::check(row, &steps, link.as_deref(), &now);
                let run = self
                    .queue
                    .check_run(row.job, row.attempt, &row.sha)
                    .await
                    .map_err(|err| Failure::Transient(format!("{err:#}")))?;
                let run = match run {
                    Some(run) => {
                        let path = format!("/repos/{repo}/check-runs/{run}");
                        self.apis.call(source, &target, Method::PATCH, &path, Some(&first)).await?;
                        run
                    }
                    None => {
                        let path = format!("/repos/{repo}/check-runs");
                        let answer = self.apis.call(source, &target, Method::POST, &path, Some(&first)).await?;
                        let run = answer.body["id"]
                            .as_i64()
                            .ok_or_else(|| Failure::Final(format!("POST {path}: the answer has no check run id")))?;
                        self.queue
                            .set_check_run(row.job, row.attempt, &row.sha, run)
                            .await
                            .map_err(|err| Failure::Transient(format!("{err:#}")))?;
                        run
                    }
                };
                for body in more {
                    let path = format!("/repos/{repo}/check-runs/{run}");
                    self.apis.call(source, &target, Method::PATCH, &path, Some(&body)).await?;
                }
                Ok("sent")
            }
        }
    }
}

/// The job's page, `{public_url}/jobs/{id}`, when `[server] public_url` is set.
pub fn job_link(config: &Config, job: i64) -> Option<String> {
    config.server.public_url.as_ref().map(|url| format!("{url}/jobs/{job}"))
}

/// The wait after try `tries + 1` failed: doubling from a second, at most ten minutes.
fn backoff(tries: i64) -> Duration {
    let doublings = u32::try_from(tries).unwrap_or(u32::MAX).min(20);
    FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Acts on a GitHub re-run request (`check_run` or `check_suite`, action `rerequested`):
/// queues another attempt, under the current config, of the job named by the run's
/// `external_id` (only when that job reported this run: same source, repository, commit
/// and name), or for a suite of the newest job of each rule with `report = "check"` that
/// reported on its commit. On a source with a GitHub App, the run or suite must be that
/// app's. Returns the jobs queued again. Anything else: nothing.
pub async fn rerun(queue: &Queue, config: &Config, event: &Event) -> anyhow::Result<Vec<i64>> {
    let Some(check) = &event.check else { return Ok(Vec::new()) };
    if event.forge != "github" || event.action.as_deref() != Some("rerequested") {
        return Ok(Vec::new());
    }
    // A source with a GitHub App knows its own id: another app's run or suite is not ours.
    if let Some(app) = config.source(&event.source).and_then(|source| source.app.as_ref())
        && check.app_id != Some(app.id)
    {
        return Ok(Vec::new());
    }
    let repo = &event.repository.full_name;
    let jobs = match event.kind.as_str() {
        "check_run" => {
            // Another app's run (its external id means something else) names no job of
            // ours, or one that did not report this run under this name on this commit.
            let Some(job) = check.external_id.as_deref().and_then(|id| id.parse::<i64>().ok()) else {
                return Ok(Vec::new());
            };
            match queue.reported_job(job, &event.source, repo, &check.head_sha, "check").await? {
                Some(rule) if check.name.as_deref() == Some(request::context(&rule).as_str()) => vec![(job, rule)],
                _ => Vec::new(),
            }
        }
        "check_suite" => queue.reported_jobs(&event.source, repo, &check.head_sha, "check").await?,
        _ => Vec::new(),
    };
    let mut queued = Vec::new();
    for (job, rule) in jobs {
        if config.rule(&rule).is_none_or(|rule| rule.report != Some(ReportKind::Check)) {
            tracing::info!(job, rule, "re-run request ignored: the rule no longer reports check runs");
            continue;
        }
        match queue.retry(job).await? {
            Some(Retried::Queued) => queued.push(job),
            other => tracing::info!(job, "re-run request: {other:?}"),
        }
    }
    Ok(queued)
}
