//! Workers: claim a job, ask `gate` whether its author may trigger it, run its rule's
//! chain (see `chain`) in the runtime, record each step's outcome and log lines, and finish
//! the job. A retryable failure (a trap, a deadline, a host error, a transient plugin or
//! forge API error; a step's failure outcome only when the rule says so) queues the job
//! again after a backoff while attempts remain; then it is dead.

mod chain;
pub mod workspace;

use crate::config::{Config, Rule};
use crate::event::Event;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::queue::{ClaimedJob, JobState, Queue, Requeued, StepRecord};
use crate::telemetry::{Kind, Span, Telemetry, TraceContext};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often an idle worker looks for work even without a wake-up (retries whose
/// backoff ended are found this way, and work whose wake-up was lost).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The idle poll: [`IDLE_POLL`], or `GITAUTO_IDLE_POLL_MS` milliseconds (tests and
/// benchmarks set it long, so that only a wake-up can start a job soon).
fn idle_poll() -> Duration {
    static POLL: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *POLL.get_or_init(|| {
        std::env::var("GITAUTO_IDLE_POLL_MS")
            .ok()
            .and_then(|ms| ms.trim().parse().ok())
            // At least 10 ms: with none, idle workers would claim without pause.
            .map_or(IDLE_POLL, |ms: u64| Duration::from_millis(ms.max(10)))
    })
}
/// The longest wait between two attempts, however many came before.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How a run of a job's chain ended.
struct Ending {
    state: JobState,
    summary: String,
    error: Option<String>,
    /// Whether another attempt could succeed.
    retryable: bool,
    /// The step that ended the chain, recorded in the same transaction as the job's end
    /// so that a crash never leaves a finished step on a job that will run again.
    last_step: Option<StepRecord>,
}

impl Ending {
    fn new(state: JobState, summary: String, error: Option<String>, retryable: bool) -> Self {
        Self { state, summary, error, retryable, last_step: None }
    }
}

/// What every worker shares.
#[derive(Clone)]
pub struct Workers {
    /// The durable queue.
    pub queue: Queue,
    /// The config and plugins; each job runs under the snapshot current when it started.
    pub live: Arc<Live>,
    /// Step durations and job ends are counted here.
    pub metrics: Arc<Metrics>,
    /// The host's own calls to forge APIs (permission checks, reply comments).
    pub apis: crate::forge_api::ForgeApis,
}

impl Workers {
    /// Runs `count` workers until `stop` turns true; each finishes the job in hand first.
    pub async fn run(self, count: usize, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..count {
            let (workers, stop) = (self.clone(), stop.clone());
            tasks.spawn(async move { workers.work(index, stop).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn work(self, index: usize, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            // Register for wake-ups before looking, so a job queued meanwhile is not missed.
            let wake = self.queue.work_signal();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.queue.claim().await {
                Ok(Some(job)) => {
                    tracing::debug!(worker = index, job = job.id, rule = %job.rule, "claimed");
                    self.execute(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::error!(worker = index, "claiming a job: {err:#}"),
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(idle_poll()) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Runs one claimed job to its end and records it: finished, or queued again for a retry.
    pub async fn execute(&self, job: ClaimedJob) {
        let mut span = self.live.telemetry().map(|telemetry| job_span(&telemetry, &job));
        let snapshot = self.live.get();
        let prepared = prepare(&snapshot.config, &job);
        // Who may trigger it is settled before anything of the job runs.
        let gated = match &prepared {
            Ok((rule, event)) => self.gate(&snapshot.config, &job, rule, event).await,
            Err(_) => None,
        };
        let (ending, rule) = match (prepared, gated) {
            (Ok((rule, _)), Some(ending)) => (ending, Some(rule)),
            (Ok((rule, event)), None) => {
                // Making and removing a workspace touch the disk (removing one a plugin
                // filled can take long): on a blocking thread, not this worker's.
                let (data_dir, id, attempt) = (snapshot.config.server.data_dir.clone(), job.id, job.attempt);
                let created = tokio::task::spawn_blocking(move || workspace::Workspace::create(&data_dir, id, attempt))
                    .await
                    .unwrap_or_else(|err| Err(std::io::Error::other(err)));
                match created {
                    Ok(workspace) => {
                        let source = snapshot.config.source(&event.source);
                        let chain =
                            chain::Chain::new(self, snapshot.runtime.clone(), &job, &rule, event, &workspace, source)
                                .traced(span.as_ref().map(Span::parent));
                        let ending = chain.run().await;
                        let _ = tokio::task::spawn_blocking(move || drop(workspace)).await;
                        (ending, Some(rule))
                    }
                    Err(err) => {
                        let error = format!("creating the job's workspace: {err}");
                        (Ending::new(JobState::Failed, error.clone(), Some(error), true), Some(rule))
                    }
                }
            }
            (Err(error), _) => (Ending::new(JobState::Failed, error.clone(), Some(error), false), None),
        };
        let Ending { mut state, summary, error, retryable, last_step } = ending;
        if let Some(span) = &mut span {
            span.set("gitauto.job.summary", summary.as_str());
            if let Some(error) = &error {
                span.fail(error.as_str());
            }
        }
        if state == JobState::Failed && retryable {
            let rule = rule.as_ref().expect("only a prepared job can fail retryably");
            if job.attempt < job.max_attempts {
                let backoff = backoff(rule.retry_backoff, job.attempt);
                let left = job.max_attempts - job.attempt;
                tracing::warn!(job = job.id, rule = %job.rule, "{summary}; retrying in {backoff:?} ({left} attempts left)");
                let note = format!(
                    "attempt {} of {} failed, retrying in {}s",
                    job.attempt,
                    job.max_attempts,
                    backoff.as_secs()
                );
                self.queue.log(job.id, job.attempt, None, "warn", &note);
                match self
                    .queue
                    .retry_later(job.id, job.attempt, last_step.clone(), backoff, &summary, error.as_deref())
                    .await
                {
                    Ok(Requeued::Queued) => {
                        if let Some(span) = &mut span {
                            span.set("gitauto.job.state", "retrying");
                        }
                        return;
                    }
                    Ok(Requeued::Merged(newer)) => {
                        tracing::info!(
                            job = job.id,
                            "not retried: job {newer} carries its deliveries and a newer event"
                        );
                        self.metrics.finished(&job.rule, JobState::Superseded.as_str());
                        return;
                    }
                    Ok(Requeued::Cancelled) => {
                        tracing::info!(job = job.id, "not retried: a cancel was requested");
                        self.metrics.finished(&job.rule, JobState::Cancelled.as_str());
                        return;
                    }
                    Ok(Requeued::NotRunning) => {
                        tracing::warn!(
                            job = job.id,
                            "the job was queued again meanwhile; this attempt's end is not recorded"
                        );
                        return;
                    }
                    Err(err) => tracing::error!(job = job.id, "queueing the retry: {err:#}"),
                }
            } else if job.max_attempts > 1 {
                state = JobState::Dead;
            }
        }
        tracing::info!(job = job.id, rule = %job.rule, state = state.as_str(), "{summary}");
        if let Some(span) = &mut span {
            span.set("gitauto.job.state", state.as_str());
        }
        self.metrics.finished(&job.rule, state.as_str());
        // A job's end must not be lost to a full disk: the worker waits with it, and the
        // daemon takes no new work on this worker meanwhile.
        let mut pause = Duration::from_millis(100);
        while let Err(err) =
            self.queue.finish(job.id, job.attempt, last_step.clone(), state, &summary, error.as_deref()).await
        {
            if self.queue.is_closed() {
                // The daemon stopped without waiting for this job; it was queued again.
                tracing::warn!(job = job.id, "the job's end came after shutdown; it runs again at the next start");
                return;
            }
            tracing::error!(job = job.id, "recording the job's end: {err:#}; trying again in {pause:?}");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }
}

impl Workers {
    /// Who may trigger the job (`gate`), before anything of it runs: `None` to run the
    /// chain, else how the job ends. A check that could not be made fails the job (retried
    /// when the failure was transient); it never runs unchecked.
    async fn gate(&self, config: &Config, job: &ClaimedJob, rule: &Rule, event: &Event) -> Option<Ending> {
        let gated = crate::gate::Job {
            id: job.id,
            event,
            delivery_seq: job.delivery_seq,
            approved_head: job.approved_head.as_deref(),
        };
        match crate::gate::check(&self.apis, &self.queue, config, rule, gated).await {
            crate::gate::Decision::Run => None,
            crate::gate::Decision::End { done, summary } => {
                let state = if done { JobState::Succeeded } else { JobState::Skipped };
                self.queue.log(job.id, job.attempt, None, "info", &summary);
                Some(Ending::new(state, summary, None, false))
            }
            crate::gate::Decision::Failed { error, transient } => {
                self.queue.log(job.id, job.attempt, None, "error", &error);
                Some(Ending::new(JobState::Failed, error.clone(), Some(error), transient))
            }
        }
    }
}

/// The span of one attempt at `job`: a child of the delivery that queued (or last joined)
/// it, read back from the store, so a job run later or on another node stays in the
/// delivery's trace; a root of its own when that delivery was not traced.
fn job_span(telemetry: &Telemetry, job: &ClaimedJob) -> Span {
    let parent = job.trace.as_deref().and_then(TraceContext::parse);
    let mut span = match parent {
        Some(parent) => telemetry.child_of(parent, "job", Kind::Consumer),
        None => telemetry.root("job", Kind::Consumer),
    };
    span.set("gitauto.job.id", job.id.to_string());
    span.set("gitauto.rule", job.rule.as_str());
    span.set("gitauto.job.attempt", job.attempt);
    span.set("gitauto.delivery.seq", job.delivery_seq);
    span
}

/// The job's rule (as of the config it runs under) and its event with the payload.
fn prepare(config: &Config, job: &ClaimedJob) -> Result<(Rule, Event), String> {
    {
        let rule = if crate::gate::is_host_job(&job.rule) {
            (job.rule == crate::gate::APPROVE_RULE)
                .then(crate::gate::approve_rule)
                .ok_or_else(|| format!("`{}` is no job this gitauto knows", job.rule))?
        } else {
            config
                .rule(&job.rule)
                .cloned()
                .ok_or_else(|| format!("rule \"{}\" is no longer in the config", job.rule))?
        };
        let mut event: Event =
            serde_json::from_str(&job.normalised).map_err(|err| format!("the stored event is unreadable: {err}"))?;
        event.payload = crate::forge::payload_text(job.content_type.as_deref(), &job.body);
        Ok((rule, event))
    }
}

/// The wait before attempt `attempt + 1`: `base`, doubled for each attempt before.
fn backoff(base: Duration, attempt: i64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=5).map(|attempt| backoff(base, attempt).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160]);
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
