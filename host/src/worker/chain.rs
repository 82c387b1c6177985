//! One attempt at a job's chain: the rule's steps in order, each step's handlers after
//! it, the rule's handlers at the end.
//!
//! - A step whose `if` is false is recorded as skipped and the chain goes on.
//! - Success: the step's `on_success` handlers run, then the next step.
//! - Failure outcome: its `on_failure` handlers run; with `continue_on_failure` the
//!   chain goes on, otherwise it ends and the job fails.
//! - Skipped outcome (the plugin found nothing to do): the chain ends, the job is skipped.
//! - Error (trap, time limit, host or plugin error): the chain ends and the job fails;
//!   `on_error` handlers run only when no retry follows.
//! - Then the rule's `on_success`, `on_failure` or `on_error` handlers, by how it ended.
//!
//! A handler is a step: it sees the step it handles as `parent`. A handler that does not
//! succeed is logged and, after a successful chain, fails the job.
//!
//! The job's checkout is filled when the first step (or handler) that asks for it runs,
//! with that step's grant and within its time; later steps that ask share it. A failure
//! to fill it is that step's error (a conflict of `checkout = "merge"` its failure), and
//! every later step that asks gets the same.

use super::workspace::Workspace;
use super::{Ending, Workers};
use crate::capability::git::checkout::{self as fill, FillError};
use crate::capability::log::{Level, Sink};
use crate::config::{Checkout, Rule, Source, Step};
use crate::event::Event;
use crate::forge_api::AppAccess;
use crate::grant::{Access, DirGrant};
use crate::queue::{ClaimedJob, JobState, StepRecord, now_ms};
use crate::runtime::{ErrorKind, Ran, Runtime, Scope, StepOutcome};
use crate::step::StepStatus;
use crate::telemetry::{Kind, Parent, Span};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

/// How one step (or handler) ended, as the chain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Success,
    Failure,
    /// The plugin reported nothing to do.
    Skipped,
    /// Its `if` was false.
    NotRun,
    /// An error; whether a retry could help.
    Error {
        retryable: bool,
    },
}

/// What went wrong in a chain, for the rule's handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Failure,
    Error,
}

pub(super) struct Chain<'a> {
    workers: &'a Workers,
    runtime: Arc<Runtime>,
    job: &'a ClaimedJob,
    rule: &'a Rule,
    event: Arc<Event>,
    /// `event` and `payload` for templates, built once.
    event_value: Value,
    payload: Value,
    /// Outcomes so far, by step name: templates' `steps`.
    results: Map<String, Value>,
    /// Records so far; the newest is held back to be committed with the job's end.
    records: usize,
    held: Option<StepRecord>,
    deadline: Option<Instant>,
    /// The attempt's scratch directory, `/tmp` to every step.
    workspace: std::path::PathBuf,
    /// Where the job's checkout goes, when a step of the rule asks for one.
    checkout_path: Option<std::path::PathBuf>,
    /// The checkout, once a step asked for it.
    checkout: Filling,
    /// What `github-app` host credentials mint the job's tokens with (the job's source,
    /// repository and installation); `None` when the source is gone from the config.
    app: Option<Arc<AppAccess>>,
    /// The job's span, when tracing is on: each step's span hangs under it.
    trace: Option<Parent>,
}

/// The job's checkout, as far as it got.
enum Filling {
    /// No step asked for it yet.
    Empty,
    /// Filled, pinned, with write access: what each step that asks is granted.
    Ready(DirGrant),
    /// Filling failed; every step that asks ends the same way.
    Failed(FillError),
}

/// How a step ended, in the shape [`Chain::call`] returns.
/// How a called step ended: its ending, status, summary, output, and bill when its
/// plugin ran.
type Called = (Ended, StepStatus, String, Option<String>, Option<crate::step::StepBill>);

impl<'a> Chain<'a> {
    pub(super) fn new(
        workers: &'a Workers,
        runtime: Arc<Runtime>,
        job: &'a ClaimedJob,
        rule: &'a Rule,
        event: Event,
        workspace: &Workspace,
        source: Option<&Source>,
    ) -> Self {
        let app = source.map(|source| {
            let repository = &event.repository;
            Arc::new(AppAccess::new(
                &workers.apis,
                source,
                &repository.full_name,
                event.installation,
                &repository.clone_url,
            ))
        });
        let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let event_value = crate::template::event_value(&event, &payload);
        Self {
            workers,
            runtime,
            job,
            rule,
            event: Arc::new(event),
            event_value,
            payload,
            results: Map::new(),
            records: 0,
            held: None,
            deadline: rule.timeout.map(|timeout| Instant::now() + timeout),
            workspace: workspace.path().to_path_buf(),
            checkout_path: rule.checkout().map(|_| workspace.checkout()),
            checkout: Filling::Empty,
            app,
            trace: None,
        }
    }

    /// The chain, with its steps' spans under `job` (the job's span).
    pub(super) fn traced(self, job: Option<Parent>) -> Self {
        Self { trace: job, ..self }
    }

    /// Runs the chain; the last record rides on the returned ending.
    pub(super) async fn run(mut self) -> Ending {
        let rule = self.rule;
        let mut parent: Option<Value> = None;
        let mut trouble = None;
        let mut ending = None;
        let mut failures = Vec::new();
        let mut last_summary = String::from("no steps ran");
        for (index, step) in rule.steps.iter().enumerate() {
            if self.workers.queue.cancel_requested(self.job.id).await.unwrap_or(false) {
                let when = if index == 0 { "before it ran".to_owned() } else { format!("after step {index}") };
                ending = Some(Ending::new(JobState::Cancelled, format!("cancelled {when}"), None, false));
                break;
            }
            let at = format!("step {} ({})", index + 1, step.name);
            let (ended, result) = self.run_step(step, parent.as_ref(), false).await;
            let summary = result["summary"].as_str().unwrap_or_default().to_owned();
            match ended {
                Ended::NotRun => continue,
                Ended::Success => {
                    last_summary = summary;
                    if let Some(failed) = self.handlers(&step.handlers.on_success, &result, "on_success").await {
                        ending = Some(failed);
                        break;
                    }
                }
                Ended::Failure => {
                    let retryable = rule.retry_failures && !step.continue_on_failure;
                    if !self.will_retry(retryable) {
                        self.handlers(&step.handlers.on_failure, &result, "on_failure").await;
                    }
                    if step.continue_on_failure {
                        failures.push(format!("{at} failed: {summary}"));
                        parent = Some(result);
                        continue;
                    }
                    let text = format!("{at} failed: {summary}");
                    trouble = Some(Trouble::Failure);
                    ending = Some(Ending::new(JobState::Failed, text.clone(), Some(text), retryable));
                    parent = Some(result);
                    break;
                }
                Ended::Skipped => {
                    ending = Some(Ending::new(JobState::Skipped, format!("{at} skipped: {summary}"), None, false));
                    break;
                }
                Ended::Error { retryable } => {
                    if !self.will_retry(retryable) {
                        self.handlers(&step.handlers.on_error, &result, "on_error").await;
                    }
                    let text = format!("{at}: {summary}");
                    trouble = Some(Trouble::Error);
                    ending = Some(Ending::new(JobState::Failed, text.clone(), Some(text), retryable));
                    parent = Some(result);
                    break;
                }
            }
            parent = Some(result);
        }
        let mut ending = ending.unwrap_or_else(|| {
            let summary = if failures.is_empty() {
                last_summary
            } else {
                format!("{} (continued after: {})", last_summary, failures.join("; "))
            };
            Ending::new(JobState::Succeeded, summary, None, false)
        });
        let parent = parent.unwrap_or(Value::Null);
        match (ending.state, trouble) {
            (JobState::Succeeded, _) => {
                if let Some(failed) = self.handlers(&rule.handlers.on_success, &parent, "on_success").await {
                    ending = failed;
                }
            }
            (JobState::Failed, Some(trouble)) if !self.will_retry(ending.retryable) => {
                let handlers = match trouble {
                    Trouble::Failure => &rule.handlers.on_failure,
                    Trouble::Error => &rule.handlers.on_error,
                };
                let kind = if trouble == Trouble::Failure { "on_failure" } else { "on_error" };
                self.handlers(handlers, &parent, kind).await;
            }
            _ => {}
        }
        ending.last_step = self.held.take();
        ending
    }

    /// Whether a retryable ending now would be retried (so handlers wait for the last attempt).
    fn will_retry(&self, retryable: bool) -> bool {
        retryable && self.job.attempt < self.job.max_attempts
    }

    /// Runs handlers in order with `parent` as the handled step. Returns the ending when
    /// one did not succeed.
    async fn handlers(&mut self, handlers: &'a [Step], parent: &Value, kind: &str) -> Option<Ending> {
        let mut failed = None;
        for handler in handlers {
            let (ended, result) = self.run_step(handler, Some(parent), true).await;
            if matches!(ended, Ended::Success | Ended::NotRun) {
                continue;
            }
            let summary = result["summary"].as_str().unwrap_or_default();
            let text = format!("{kind} handler {} did not succeed: {summary}", handler.name);
            tracing::warn!(job = self.job.id, rule = %self.rule.name, "{text}");
            failed.get_or_insert_with(|| Ending::new(JobState::Failed, text.clone(), Some(text), false));
        }
        failed
    }

    /// Runs one step: its `if`, its templates, the plugin. Records it and returns how it
    /// ended with its result as templates see it. Handlers are not held to the rule's
    /// timeout (they often report that it passed), only to their plugin's limits.
    async fn run_step(&mut self, step: &Step, parent: Option<&Value>, handler: bool) -> (Ended, Value) {
        let started_at = now_ms();
        let mut span = self.trace.as_ref().map(|job| {
            let mut span = job.child("step", Kind::Internal);
            span.set("gitauto.step", step.name.as_str());
            span.set("gitauto.plugin", step.plugin.as_str());
            span.set("gitauto.step.handler", handler);
            span
        });
        let context = self.context(parent);
        let prepared = match &step.condition {
            Some(condition) => match crate::template::eval_condition(condition, &context) {
                Ok(true) => Ok(true),
                Ok(false) => Ok(false),
                Err(err) => Err(format!("`if` failed: {err}")),
            },
            None => Ok(true),
        }
        .and_then(|run| match run {
            true => crate::template::render_settings(&step.settings, &context)
                .map(Some)
                .map_err(|err| format!("rendering `with`: {err}")),
            false => Ok(None),
        });
        let (ended, status, summary, output, bill) = match prepared {
            Ok(None) => {
                let summary = format!("not run: `if` is false ({})", step.condition.as_deref().unwrap_or_default());
                (Ended::NotRun, StepStatus::Skipped, summary, None, None)
            }
            Err(err) => (Ended::Error { retryable: false }, StepStatus::Error, err, None, None),
            Ok(Some(settings)) => {
                let deadline = if handler { None } else { self.deadline };
                self.call(step, settings, deadline, span.as_ref().map(Span::parent)).await
            }
        };
        if let Some(span) = &mut span {
            span.set("gitauto.step.status", status.as_str());
            if matches!(status, StepStatus::Error | StepStatus::Failure) {
                span.fail(summary.as_str());
            }
        }
        let output_value = output
            .as_deref()
            .map_or(Value::Null, |text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())));
        let result = json!({
            "name": step.name, "plugin": step.plugin, "status": status, "summary": summary, "output": output_value,
        });
        self.results.insert(step.name.clone(), result.clone());
        let record = StepRecord {
            index: self.records,
            name: step.name.clone(),
            plugin: step.plugin.clone(),
            status,
            summary,
            output,
            started_at,
            finished_at: now_ms(),
            bill,
            // Every step names the component it ran (or would have run), so a job's record
            // says which build of a plugin acted, and who vouched for it.
            plugin_digest: self.runtime.wasm_digest(&step.plugin).map(hex::encode),
            plugin_signer: self.runtime.signer(&step.plugin).map(ToString::to_string),
        };
        self.records += 1;
        if let Some(previous) = self.held.replace(record)
            && let Err(err) = self.workers.queue.record_step(self.job.id, self.job.attempt, previous).await
        {
            tracing::error!(job = self.job.id, "recording a step: {err:#}");
        }
        (ended, result)
    }

    /// Calls the plugin with rendered settings (and the checkout, filled first, when the
    /// step asks for it).
    async fn call(&mut self, step: &Step, settings: Value, deadline: Option<Instant>, trace: Option<Parent>) -> Called {
        if let Some(deadline) = deadline
            && Instant::now() >= deadline
        {
            let why = "the rule's timeout passed before it ran".into();
            return (Ended::Error { retryable: true }, StepStatus::Error, why, None, None);
        }
        let started = Instant::now();
        let checkout = match step.checkout {
            None => None,
            Some(checkout) => match self.checkout(step, checkout, deadline, started).await {
                Ok(dir) => Some(dir),
                Err(err) => {
                    self.workers.metrics.step(&step.plugin, started.elapsed());
                    return fill_ended(err);
                }
            },
        };
        let sink = self.sink(&step.name);
        let runtime = self.runtime.clone();
        let (plugin, event, workspace) = (step.plugin.clone(), self.event.clone(), self.workspace.clone());
        let app = self.app.clone();
        let queue = self.workers.queue.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let scope = Scope {
                deadline,
                workspace: Some(&workspace),
                checkout: checkout.as_ref(),
                started: Some(started),
                app: app.as_ref(),
                trace: trace.as_ref(),
                kv: Some(&queue),
            };
            runtime.run_in(&plugin, &event, &settings.to_string(), sink, &scope)
        })
        .await
        .unwrap_or_else(|err| Ran {
            outcome: StepOutcome::Trapped { reason: format!("the step's thread failed: {err}") },
            bill: None,
        });
        self.workers.metrics.step(&step.plugin, started.elapsed());
        let Ran { outcome, bill } = ran;
        if let Some(bill) = &bill {
            self.workers.metrics.bill(&step.plugin, bill);
        }
        let status = outcome.status();
        let (ended, status, summary, output) = match outcome {
            StepOutcome::Done { summary, output, .. } => {
                let ended = match status {
                    StepStatus::Success => Ended::Success,
                    StepStatus::Failure => Ended::Failure,
                    StepStatus::Skipped => Ended::Skipped,
                    StepStatus::Error => Ended::Error { retryable: false },
                };
                (ended, status, summary, Some(output))
            }
            StepOutcome::Error { kind, message } => {
                let retryable = match kind {
                    ErrorKind::InvalidSettings => false,
                    ErrorKind::Transient => true,
                    ErrorKind::Failed => self.rule.retry_failures,
                };
                (Ended::Error { retryable }, status, format!("{kind}: {message}"), None)
            }
            StepOutcome::Trapped { reason } => {
                (Ended::Error { retryable: true }, status, format!("plugin {} trapped: {reason}", step.plugin), None)
            }
        };
        (ended, status, summary, output, bill)
    }

    /// The job's checkout for `step`: filled now, with its grant and before its deadline
    /// (the job's, or its plugin's counted from `started`), if no step filled it yet.
    /// Each step that asks must be allowed the clone URL by its own grant.
    async fn checkout(
        &mut self,
        step: &Step,
        checkout: Checkout,
        deadline: Option<Instant>,
        started: Instant,
    ) -> Result<DirGrant, FillError> {
        let Some(spec) = self.runtime.spec(&step.plugin) else {
            return Err(FillError::Failed {
                message: format!("plugin `{}` is not loaded", step.plugin),
                retryable: false,
            });
        };
        let grant = spec.grant.clone();
        let own = started + spec.limits.timeout;
        let deadline = deadline.map_or(own, |job| job.min(own));
        let event = self.event.clone();
        match &self.checkout {
            Filling::Failed(err) => return Err(err.clone()),
            Filling::Ready(dir) => {
                let dir = dir.clone();
                return tokio::task::spawn_blocking(move || fill::allowed(&grant, &event.repository.clone_url))
                    .await
                    .unwrap_or_else(|err| Err(fill_thread_failed(&err)))
                    .map(|_| dir);
            }
            Filling::Empty => {}
        }
        let path = self.checkout_path.clone().expect("a rule with a step that asks for a checkout has its path");
        let sink = self.sink(&step.name);
        let app = self.app.clone();
        let filled = tokio::task::spawn_blocking(move || {
            #[allow(clippy::disallowed_methods, reason = "on a blocking thread")]
            let made = std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&path);
            made.map_err(|err| FillError::Failed {
                message: format!("creating the checkout directory {}: {err}", path.display()),
                retryable: true,
            })?;
            // Pinned once, here: the directory the fill writes is the one each step is given.
            let dir = DirGrant::new(path, Access::Write);
            let filled = fill::fill(&event, &grant, &dir, checkout, deadline, app.as_deref())?;
            let base = filled.base.map(|base| format!(", refs/gitauto/base at {base}")).unwrap_or_default();
            let note = format!(
                "checkout: {} at {}{base} ({} ms)",
                dir.path.display(),
                filled.head,
                started.elapsed().as_millis()
            );
            sink(Level::Info, &note);
            Ok(dir)
        })
        .await
        .unwrap_or_else(|err| Err(fill_thread_failed(&err)));
        self.checkout = match &filled {
            Ok(dir) => Filling::Ready(dir.clone()),
            Err(err) => Filling::Failed(err.clone()),
        };
        filled
    }

    /// What a step's `if` and templates see.
    fn context(&self, parent: Option<&Value>) -> minijinja::Value {
        let mut context = json!({
            "event": self.event_value,
            "payload": self.payload,
            "steps": self.results,
            "rule": {"name": self.rule.name},
            "job": {
                "id": self.job.id, "attempt": self.job.attempt, "max_attempts": self.job.max_attempts,
                "checkout": self.checkout_path,
            },
        });
        if let Some(parent) = parent {
            context["parent"] = parent.clone();
        }
        minijinja::Value::from_serialize(context)
    }

    /// Where a step's log lines go: the job's record, and the daemon's own log at debug.
    fn sink(&self, step: &str) -> Sink {
        let (queue, id, attempt, step) = (self.workers.queue.clone(), self.job.id, self.job.attempt, step.to_owned());
        Arc::new(move |level: Level, message: &str| {
            tracing::debug!(job = id, step = %step, step_level = level.as_str(), "{message}");
            queue.log(id, attempt, Some(&step), level.as_str(), message);
        })
    }
}

/// How a step that could not have the checkout ended: a merge conflict is its failure
/// (with the conflicting paths as output), anything else its error.
fn fill_ended(err: FillError) -> Called {
    match &err {
        FillError::Conflicts { target, paths } => {
            let output = json!({"conflicts": paths, "target": target}).to_string();
            (Ended::Failure, StepStatus::Failure, format!("checkout: {err}"), Some(output), None)
        }
        FillError::Failed { retryable, .. } => {
            (Ended::Error { retryable: *retryable }, StepStatus::Error, format!("checkout: {err}"), None, None)
        }
    }
}

fn fill_thread_failed(err: &tokio::task::JoinError) -> FillError {
    FillError::Failed { message: format!("the checkout's thread failed: {err}"), retryable: true }
}
