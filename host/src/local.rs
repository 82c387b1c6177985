//! `gitauto run --event FILE`: a payload through the whole pipeline in this process,
//! without a daemon. The payload is signed as the source's forge would sign it and handed
//! to the same router a daemon serves (verify, parse, route, record); the explanation is
//! the one a daemon stores with the delivery. Without `--dry-run` the queued jobs then
//! run to their end on the same workers a daemon uses. Everything is recorded in a
//! scratch queue that is removed afterwards; compiled plugins go to the config's cache.

use crate::config::Config;
use crate::live::{Live, Snapshot};
use crate::metrics::Metrics;
use crate::queue::{JobView, Queue};
use crate::runtime::Runtime;
use crate::server::{AppState, router};
use crate::worker::Workers;
use anyhow::Context;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt as _;

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
    /// The daemon's answer (status, body).
    pub status: u16,
    /// The answer's JSON.
    pub answer: Value,
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
    let cache_dir = config.server.data_dir.join("cache");
    let (runtime, _) =
        tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache_dir)).await.context("loading plugins")??;
    let live = Arc::new(Live::new(Snapshot { config: Arc::new(config), runtime: Arc::new(runtime) }));
    let metrics = Arc::new(Metrics::default());
    let app = router(AppState { live: live.clone(), queue: queue.clone(), metrics: metrics.clone() });
    let mut http = axum::http::Request::post(format!("/hooks/{}", source.name));
    for (name, value) in crate::send::headers(&source, &forge_event, &request.body) {
        http = http.header(name, value);
    }
    let response = app.oneshot(http.body(axum::body::Body::from(request.body.clone()))?).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let explain = match answer["delivery"].as_str() {
        Some(id) => queue.delivery(id.to_owned()).await?.map_or(Value::Null, |view| view.rules),
        None => Value::Null,
    };
    let mut jobs = Vec::new();
    if !request.dry_run {
        let workers = Workers { queue: queue.clone(), live, metrics };
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
        for id in answer["jobs"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let Some(view) = queue.job(id.parse().unwrap_or_default()).await? {
                jobs.push(view);
            }
        }
    }
    drop(queue);
    Ok(Report { source: source.name.clone(), forge_event, status, answer, explain, jobs })
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
