//! `gitauto run --event FILE`: a payload through the whole pipeline in this process,
//! without a daemon. The payload, with the headers the source's forge would send, goes
//! through the same ingest pipeline a daemon's webhooks do (parse, check names, route,
//! record; the file is the operator's, so no signature is checked); the explanation is
//! the one a daemon stores with the delivery. Without `--dry-run` the queued jobs then
//! run to their end on the same workers a daemon uses. Everything is recorded in a
//! scratch queue that is removed afterwards; compiled plugins go to the config's cache.

use crate::config::Config;
use crate::forge::Outgoing;
use crate::ingest::{Admitted, Input, Outcome, Pipeline};
use crate::live::{Live, Snapshot};
use crate::metrics::Metrics;
use crate::queue::{JobView, Queue};
use crate::runtime::Runtime;
use crate::worker::Workers;
use anyhow::Context;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// The payload, as the forge would send it.
    pub body: Vec<u8>,
    /// The `[sources.NAME]` it arrives through (may be omitted when there is one source).
    pub source: Option<String>,
    /// The forge's event name (`push`, `Push Hook`, ...); guessed from the payload when absent.
    pub forge_event: Option<String>,
    /// Only explain; run nothing.
    pub dry_run: bool,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Report {
    /// The source used.
    pub source: String,
    /// The forge event name used.
    pub forge_event: String,
    /// The delivery id it was recorded under.
    pub delivery: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Per event: its ref and each rule's verdict, as stored with a delivery.
    pub explain: Value,
    /// The jobs, after running (empty with `dry_run`).
    pub jobs: Vec<JobView>,
}

/// Runs `request` against `config`.
pub async fn run(config: Config, request: Request) -> anyhow::Result<Report> {
    let source = match &request.source {
        Some(name) => {
            config.source(name).with_context(|| format!("no [sources.{name}] in {}", config.path.display()))?.clone()
        }
        None => match config.sources.values().collect::<Vec<_>>().as_slice() {
            [only] => (*only).clone(),
            [] => anyhow::bail!("{} defines no [sources]", config.path.display()),
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
                anyhow::bail!("say which source the payload arrives through: --source {}", names.join("|"))
            }
        },
    };
    let forge_event = match &request.forge_event {
        Some(event) => event.clone(),
        None => guess_event(source.forge, &request.body).with_context(|| {
            format!("cannot tell which {} event this payload is: say it with --forge-event", source.forge)
        })?,
    };
    let scratch = Scratch::new()?;
    let queue = Queue::open(&scratch.0)?;
    let specs: Vec<_> = if request.dry_run { Vec::new() } else { config.plugins.values().cloned().collect() };
    crate::plugin_source::fetch(&specs).await?;
    let cache_dir = config.server.data_dir.join("cache");
    let (runtime, _) =
        tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache_dir)).await.context("loading plugins")??;
    let salt = queue.fingerprint_salt().await?;
    let live = Arc::new(Live::new(Snapshot { config: Arc::new(config), runtime: Arc::new(runtime) }, salt));
    let metrics = Arc::new(Metrics::default());
    let pipeline = Pipeline::new(live.clone(), queue.clone(), metrics.clone());
    let delivery = uuid::Uuid::new_v4().to_string();
    let headers = source.dialect.sign(&Outgoing {
        event: &forge_event,
        body: &request.body,
        secret: None,
        delivery: &delivery,
        now: SystemTime::now(),
    });
    let input = Input {
        source: source.name.clone(),
        headers: headers.into_iter().collect(),
        body: request.body.clone().into(),
        admitted: Admitted::Local,
        delivery: Some(delivery),
    };
    let ingested = pipeline.ingest(input).await?;
    let explain = serde_json::to_value(&ingested.verdicts).expect("verdicts serialise");
    let mut jobs = Vec::new();
    if !request.dry_run {
        let apis = crate::forge_api::ForgeApis::new()?;
        let workers = Workers { queue: queue.clone(), live, metrics, apis };
        // Jobs run one after another, retries included, until the queue is empty.
        loop {
            match queue.claim().await? {
                Some(job) => workers.execute(job).await,
                None if !queue.pending().await?.is_empty() => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                None => break,
            }
        }
        for id in &ingested.jobs {
            if let Some(view) = queue.job(id.parse().unwrap_or_default()).await? {
                jobs.push(view);
            }
        }
    }
    drop(queue);
    Ok(Report {
        source: source.name.clone(),
        forge_event,
        delivery: ingested.delivery,
        outcome: ingested.outcome,
        explain,
        jobs,
    })
}

/// The forge's event name for a payload, from its shape.
pub fn guess_event(forge: &str, body: &[u8]) -> Option<String> {
    let payload: Value = serde_json::from_slice(body).ok()?;
    let has = |key: &str| payload.get(key).is_some();
    let event = match forge {
        "gitlab" => match payload["object_kind"].as_str()? {
            "push" => "Push Hook",
            "tag_push" => "Tag Push Hook",
            "merge_request" => "Merge Request Hook",
            _ => return None,
        },
        "bitbucket" if has("push") => "repo:push",
        "bitbucket" => return None,
        "generic" => "push",
        _ if has("zen") || has("hook_id") && !has("ref") => "ping",
        _ if has("pull_request") => "pull_request",
        _ if has("release") => "release",
        _ if has("ref_type") => "create",
        _ if has("ref") => "push",
        _ => return None,
    };
    Some(event.to_owned())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    #[allow(clippy::disallowed_methods, reason = "`gitauto run` is a CLI command: its scratch directory is made once")]
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("gitauto-run-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    #[allow(
        clippy::disallowed_methods,
        reason = "`gitauto run` is a CLI command: its scratch directory goes once, as it exits"
    )]
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
