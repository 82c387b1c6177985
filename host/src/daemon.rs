//! A running daemon: the queue, the plugin runtime, the workers, catch-up and polling,
//! and the HTTP server, started in that order (nothing is accepted before plugins are
//! ready) and stopped in reverse (stop accepting, let running jobs finish, close the
//! queue).

use crate::config::Config;
use crate::live::{Live, Snapshot};
use crate::metrics::Metrics;
use crate::queue::{FlowLimits, Queue};
use crate::runtime::Runtime;
use crate::server::{AppState, router};
use crate::worker::Workers;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often finished history is pruned and expired key-value entries swept (and once
/// at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long a stopping daemon waits for the scheduler to finish ingesting the ticks it claimed.
const SCHEDULER_GRACE: Duration = Duration::from_secs(10);

/// Prepares everything that can fail before serving: the queue and the plugins.
pub struct Daemon {
    live: Arc<Live>,
    queue: Queue,
    _lock: crate::lock::DataDirLock,
}

impl Daemon {
    /// Opens the queue and loads every plugin (compiling those not in the cache).
    pub async fn prepare(config: Config) -> anyhow::Result<Self> {
        crate::capability::git::note_process_start();
        let data_dir = config.server.data_dir.clone();
        // Before anything touches the directory: a second daemon must change nothing.
        let lock = crate::lock::DataDirLock::acquire(&data_dir)?;
        let node = config.server.node.clone();
        let queue = match &config.store {
            None => Queue::open_as(&data_dir, &node)?,
            Some(url) => {
                let (url, connections) = (url.expose().to_owned(), config.store_connections);
                tokio::task::spawn_blocking(move || Queue::open_postgres_with(&url, &node, connections)).await??
            }
        };
        crate::worker::workspace::clear_stale(&data_dir);
        let specs: Vec<_> = config.plugins.values().cloned().collect();
        // Before anything compiles: a plugin that cannot be fetched stops the start.
        crate::plugin_source::fetch(&specs).await?;
        let cache_dir = data_dir.join("cache");
        let (runtime, report) = tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache_dir))
            .await
            .context("loading plugins")??;
        for (name, cached, took) in &report.plugins {
            tracing::info!(plugin = %name, cached, took_ms = took.as_millis() as u64, "plugin ready");
        }
        let salt = queue.fingerprint_salt().await.context("reading the queue's fingerprint salt")?;
        let snapshot = Snapshot { config: Arc::new(config), runtime: Arc::new(runtime) };
        Ok(Self { live: Arc::new(Live::new(snapshot, salt)), queue, _lock: lock })
    }

    /// The running config and plugins (reloaded on SIGHUP and file changes while serving).
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The queue, for callers that inspect it (tests, the CLI).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Serves on `listener` until `shutdown` resolves, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr: SocketAddr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let apis = crate::forge_api::ForgeApis::new().context("building the forge API client")?;
        let workers = Workers {
            queue: self.queue.clone(),
            live: self.live.clone(),
            metrics: metrics.clone(),
            apis: apis.clone(),
        };
        let config = self.live.config();
        // Before anything ingests or claims, so the first delivery is traced.
        follow_telemetry(&self.live, &metrics, &config);
        let telemetry = tokio::spawn(watch_telemetry(self.live.clone(), metrics.clone(), stop_rx.clone()));
        // Before any worker claims: queued jobs run under the limits of the config loaded now.
        set_flow(&self.queue, &config).await;
        let flow = tokio::spawn(follow_flow(self.queue.clone(), self.live.clone(), stop_rx.clone()));
        let worker_count = config.server.workers;
        if worker_count == 0 {
            tracing::warn!("`workers = 0`: this node accepts and queues jobs but runs none; another node must");
        }
        let worker_pool = tokio::spawn(workers.run(worker_count, stop_rx.clone()));
        self.queue
            .join_with_config(worker_count, self.live.fingerprint())
            .await
            .context("recording this node in the queue")?;
        let heart = tokio::spawn(heartbeat(self.queue.clone(), self.live.clone(), stop_rx.clone()));
        let pruner = tokio::spawn(prune(self.queue.clone(), self.live.clone(), stop_rx.clone()));
        let sampler = tokio::spawn(sample_depth(self.queue.clone(), stop_rx.clone()));
        let reporter = crate::report::Reporter::new(self.queue.clone(), self.live.clone(), apis.clone());
        let reporter = tokio::spawn(reporter.run(stop_rx.clone()));
        let pipeline = crate::ingest::Pipeline::new(self.live.clone(), self.queue.clone(), metrics.clone())
            .with_apis(apis.clone());
        let catcher = tokio::spawn(crate::catch_up::run(pipeline.clone(), stop_rx.clone()));
        let mut scheduler = tokio::spawn(crate::schedule::run(pipeline, self.live.clone(), stop_rx.clone()));
        let watcher = tokio::spawn(self.live.clone().watch(config.path.clone(), stop_rx));
        let app = router(AppState {
            live: self.live.clone(),
            queue: self.queue.clone(),
            metrics: metrics.clone(),
            apis: apis.clone(),
        });
        tracing::info!(
            %addr,
            workers = worker_count,
            node = self.queue.node(),
            queue = %self.queue.location(),
            "gitauto is serving"
        );
        let drain = config.server.header_timeout + config.server.body_timeout;
        crate::server::listen::serve(listener, app, &config.server, metrics, shutdown, drain).await;
        let _ = stop_tx.send(true);
        let grace = self.live.config().server.shutdown_grace;
        match tokio::time::timeout(grace, worker_pool).await {
            Ok(_) => tracing::info!("stopped"),
            Err(_) => match self.queue.requeue_running().await {
                Ok(recovered) => {
                    recovered.log(&format!("jobs still running after {grace:?} were stopped"));
                }
                Err(err) => tracing::error!(
                    "jobs still running after {grace:?} were stopped and could not be put back in line now \
                     ({err:#}); the next start does it"
                ),
            },
        }
        // Catch-up and polling end on `stop` (abandoning a pass under way) before the
        // queue closes under them.
        if let Err(err) = catcher.await {
            tracing::warn!("catch-up and polling stopped abnormally: {err}");
        }
        pruner.abort();
        sampler.abort();
        // Rows it was sending are sent again at the next start (their claims are let go).
        reporter.abort();
        // The scheduler stops between ticks: one it claimed is ingested before the queue
        // closes (a claimed tick is never run again).
        if tokio::time::timeout(SCHEDULER_GRACE, &mut scheduler).await.is_err() {
            tracing::warn!("the scheduler was still ingesting ticks after {SCHEDULER_GRACE:?}; stopping it");
            scheduler.abort();
        }
        watcher.abort();
        telemetry.abort();
        // The exporter sends what it holds once the last span is gone, while the runtime runs.
        self.live.set_telemetry(None);
        flow.abort();
        heart.abort();
        if let Err(err) = self.queue.leave().await {
            tracing::warn!("recording this node's stop: {err:#}");
        }
        self.queue.close().await;
        Ok(())
    }
}

/// Loads `config`, binds its listen address and serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let daemon = Daemon::prepare(config).await?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    daemon.serve(listener, crate::shutdown::signal()).await
}

/// Records this node's heartbeat, with its config's fingerprint, every
/// [`crate::node::HEARTBEAT`] and at once after a reload, until `stop`.
async fn heartbeat(queue: Queue, live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    loop {
        let replaced = live.replaced().notified();
        tokio::select! {
            _ = tokio::time::sleep(crate::node::HEARTBEAT) => {}
            () = replaced => {}
            _ = stop.changed() => return,
        }
        if let Err(err) = queue.heartbeat_with_config(live.fingerprint()).await {
            tracing::warn!("recording this node's heartbeat: {err:#}");
        }
    }
}

/// Gives the queued jobs of every rule in `config` the rule's concurrency and priority.
/// A failure is logged: the jobs keep the settings they were queued with.
async fn set_flow(queue: &Queue, config: &Config) {
    let limits = config
        .rules
        .iter()
        .map(|rule| FlowLimits {
            rule: rule.name.clone(),
            concurrency: rule.concurrency.map(i64::from),
            priority: rule.priority,
        })
        .collect();
    match queue.set_flow(limits).await {
        Ok(0) => {}
        Ok(changed) => tracing::info!(jobs = changed, "queued jobs take their rules' new concurrency and priority"),
        Err(err) => tracing::error!("giving queued jobs their rules' concurrency and priority: {err:#}"),
    }
}

/// Until `stop`, gives queued jobs the current rules' settings, again after each reload.
async fn follow_flow(queue: Queue, live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    loop {
        // Registered before reading the config, so a reload meanwhile is not missed.
        let replaced = live.replaced().notified();
        tokio::pin!(replaced);
        replaced.as_mut().enable();
        set_flow(&queue, &live.config()).await;
        tokio::select! {
            () = &mut replaced => {}
            _ = stop.changed() => return,
        }
    }
}

/// Records the queue's depth for the dashboard's chart now and at the start of every
/// minute until `stop` (one row per minute for the store: another node may have written it).
async fn sample_depth(queue: Queue, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(err) = queue.sample_depth(crate::queue::now_ms()).await {
            tracing::warn!("sampling the queue's depth: {err:#}");
        }
        let into_minute = crate::queue::now_ms().rem_euclid(60_000) as u64;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(60_000 - into_minute)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Starts, replaces or stops the trace exporter when `config`'s `[telemetry]` differs
/// from the running one's (a reload applies a changed `[telemetry]`).
fn follow_telemetry(live: &Live, metrics: &Arc<Metrics>, config: &Config) {
    let running = live.telemetry();
    if running.as_ref().map(|t| t.settings()) == config.telemetry.as_ref() {
        return;
    }
    let next = config.telemetry.as_ref().and_then(|settings| {
        match crate::telemetry::Telemetry::start(settings, &config.server.node, metrics.spans.clone()) {
            Ok(telemetry) => Some(telemetry),
            Err(err) => {
                tracing::error!("starting the trace exporter: {err:#}; traces are off");
                None
            }
        }
    });
    if next.is_none() && running.is_some() {
        tracing::info!("trace export stopped ([telemetry] has no otlp_endpoint)");
    }
    live.set_telemetry(next);
}

/// Until `stop`, applies each reload's `[telemetry]`.
async fn watch_telemetry(live: Arc<Live>, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        let replaced = live.replaced().notified();
        tokio::pin!(replaced);
        replaced.as_mut().enable();
        follow_telemetry(&live, &metrics, &live.config());
        tokio::select! {
            () = &mut replaced => {}
            _ = stop.changed() => return,
        }
    }
}

/// Prunes history now and every [`PRUNE_EVERY`] until `stop`.
async fn prune(queue: Queue, live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    loop {
        match queue.prune(live.config().retention).await {
            Ok(pruned) if pruned.jobs + pruned.deliveries > 0 => {
                tracing::info!(jobs = pruned.jobs, deliveries = pruned.deliveries, "pruned old history")
            }
            Ok(_) => {}
            Err(err) => tracing::error!("pruning history: {err:#}"),
        }
        // Expired key-value entries already read as absent; this gives their room back
        // (a write that finds its store full sweeps that store itself).
        match queue.kv_sweep().await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(entries = swept, "swept expired key-value entries"),
            Err(err) => tracing::error!("sweeping expired key-value entries: {err:#}"),
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
