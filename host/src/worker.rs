//! Workers: claim a job, run its rule's steps in order in the runtime, record each
//! step's outcome and log lines, and finish the job. The chain stops at the first step
//! that does not succeed.

use crate::capability::log::{Level, Sink};
use crate::config::{Config, Rule};
use crate::event::Event;
use crate::queue::{ClaimedJob, JobState, Queue, StepRecord, now_ms};
use crate::runtime::{ErrorKind, Runtime, StepOutcome, StepStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often an idle worker looks for work even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What every worker shares.
#[derive(Clone)]
pub struct Workers {
    /// The durable queue.
    pub queue: Queue,
    /// The config jobs run under.
    pub config: Arc<Config>,
    /// The plugins.
    pub runtime: Arc<Runtime>,
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
                () = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Runs one claimed job to its end and records it.
    pub async fn execute(&self, job: ClaimedJob) {
        let (state, summary, error) = match self.prepare(&job) {
            Ok((rule, event)) => self.run_steps(&job, rule, event).await,
            Err(error) => (JobState::Failed, error.clone(), Some(error)),
        };
        tracing::info!(job = job.id, rule = %job.rule, state = state.as_str(), "{summary}");
        if let Err(err) = self.queue.finish(job.id, state, &summary, error.as_deref()).await {
            tracing::error!(job = job.id, "recording the job's end: {err:#}");
        }
    }

    fn prepare(&self, job: &ClaimedJob) -> Result<(Rule, Event), String> {
        let rule = self
            .config
            .rule(&job.rule)
            .cloned()
            .ok_or_else(|| format!("rule \"{}\" is no longer in the config", job.rule))?;
        let mut event: Event =
            serde_json::from_str(&job.normalised).map_err(|err| format!("the stored event is unreadable: {err}"))?;
        event.payload = crate::forge::payload_text(job.content_type.as_deref(), &job.body);
        Ok((rule, event))
    }

    async fn run_steps(&self, job: &ClaimedJob, rule: Rule, event: Event) -> (JobState, String, Option<String>) {
        let event = Arc::new(event);
        let mut summary = String::from("no steps ran");
        for (index, step) in rule.steps.iter().enumerate() {
            let started_at = now_ms();
            let sink = self.sink(job, &step.name);
            let (runtime, plugin, settings, event) =
                (self.runtime.clone(), step.plugin.clone(), step.settings.to_string(), event.clone());
            let outcome = tokio::task::spawn_blocking(move || runtime.run(&plugin, &event, &settings, sink))
                .await
                .unwrap_or_else(|err| StepOutcome::Trapped { reason: format!("the step's thread failed: {err}") });
            let (status, step_summary, output) = match &outcome {
                StepOutcome::Done { status, summary, output } => {
                    let name = match status {
                        StepStatus::Success => "success",
                        StepStatus::Failure => "failure",
                        StepStatus::Skipped => "skipped",
                    };
                    (name, summary.clone(), Some(output.clone()))
                }
                StepOutcome::Error { kind, message } => ("error", format!("{}: {message}", error_kind(*kind)), None),
                StepOutcome::Trapped { reason } => ("error", format!("plugin {} trapped: {reason}", step.plugin), None),
            };
            let record = StepRecord {
                index,
                name: step.name.clone(),
                plugin: step.plugin.clone(),
                status,
                summary: step_summary.clone(),
                output,
                started_at,
                finished_at: now_ms(),
            };
            if let Err(err) = self.queue.record_step(job.id, job.attempt, record).await {
                tracing::error!(job = job.id, "recording step {}: {err:#}", step.name);
            }
            let at = format!("step {} ({})", index + 1, step.name);
            summary = step_summary.clone();
            match outcome {
                StepOutcome::Done { status: StepStatus::Success, .. } => continue,
                StepOutcome::Done { status: StepStatus::Skipped, .. } => {
                    return (JobState::Skipped, format!("{at} skipped: {step_summary}"), None);
                }
                StepOutcome::Done { status: StepStatus::Failure, .. } => {
                    return (
                        JobState::Failed,
                        format!("{at} failed: {step_summary}"),
                        Some(format!("{at} failed: {step_summary}")),
                    );
                }
                StepOutcome::Error { .. } | StepOutcome::Trapped { .. } => {
                    return (JobState::Failed, format!("{at}: {step_summary}"), Some(format!("{at}: {step_summary}")));
                }
            }
        }
        (JobState::Succeeded, summary, None)
    }

    /// Where a step's log lines go: the job's record, and the daemon's own log at debug.
    fn sink(&self, job: &ClaimedJob, step: &str) -> Sink {
        let (queue, id, attempt, step) = (self.queue.clone(), job.id, job.attempt, step.to_owned());
        Arc::new(move |level: Level, message: &str| {
            tracing::debug!(job = id, step = %step, level = level.as_str(), "{message}");
            queue.log(id, attempt, Some(&step), level.as_str(), message);
        })
    }
}

fn error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSettings => "invalid settings",
        ErrorKind::Transient => "transient failure",
        ErrorKind::Failed => "failed",
    }
}
