//! The running config and the plugins loaded for it, replaced whole on reload.
//!
//! Whoever starts work takes a [`Snapshot`] and keeps it to the end: a request is routed
//! under one config, a job runs all its steps under the config it started with, and a
//! reload never mixes the two. A reload happens on SIGHUP and when the config file's
//! content changes; a config with any problem is refused and the running one stays.
//! Each snapshot has its config's fingerprint (`config::fingerprint`), which the node
//! records in the store so that nodes with different configs can be shown.

use crate::config::Config;
use crate::config::fingerprint::fingerprint;
use crate::runtime::Runtime;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// How often the config file is looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A config and the runtime holding its plugins.
pub struct Snapshot {
    /// The validated config.
    pub config: Arc<Config>,
    /// Its plugins, compiled and pre-instantiated.
    pub runtime: Arc<Runtime>,
}

/// The current [`Snapshot`], and how reloading has gone.
pub struct Live {
    /// The snapshot and its config's fingerprint, replaced together.
    current: RwLock<(Arc<Snapshot>, Option<String>)>,
    status: Mutex<ReloadStatus>,
    /// Notified when a reload replaced the snapshot (for state derived from the config,
    /// such as the flow settings queued jobs carry).
    replaced: tokio::sync::Notify,
    /// The store's salt, which keys every fingerprint (`Queue::fingerprint_salt`).
    salt: [u8; 32],
    /// Where traces go, when `[telemetry]` is on: set by the daemon at start and after a
    /// reload that changed `[telemetry]`.
    telemetry: RwLock<Option<crate::telemetry::Telemetry>>,
}

/// How reloading has gone, for `GET /api/config`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// The config file.
    pub path: PathBuf,
    /// 1 for the config the daemon started with, +1 for each successful reload.
    pub generation: u64,
    /// When the current config was loaded (RFC 3339).
    pub loaded_at: String,
    /// Why the newest reload attempt failed, when it did (the running config stayed).
    pub last_error: Option<String>,
    /// Settings changed by a reload that take effect only at the next restart.
    pub pending_restart: Vec<String>,
}

impl Live {
    /// Starts with `snapshot`; its fingerprints are keyed by `salt`, the store's.
    pub fn new(snapshot: Snapshot, salt: [u8; 32]) -> Self {
        let status = ReloadStatus {
            path: snapshot.config.path.clone(),
            generation: 1,
            loaded_at: crate::queue::rfc3339(crate::queue::now_ms()),
            ..ReloadStatus::default()
        };
        let fingerprint = loaded_fingerprint(&snapshot, &salt);
        Self {
            current: RwLock::new((Arc::new(snapshot), fingerprint)),
            status: Mutex::new(status),
            replaced: tokio::sync::Notify::new(),
            salt,
            telemetry: RwLock::new(None),
        }
    }

    /// Where traces go now; none: tracing is off (then nothing makes a span).
    pub fn telemetry(&self) -> Option<crate::telemetry::Telemetry> {
        self.telemetry.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces where traces go (the old exporter sends what it holds, then stops).
    pub fn set_telemetry(&self, telemetry: Option<crate::telemetry::Telemetry>) {
        *self.telemetry.write().unwrap_or_else(std::sync::PoisonError::into_inner) = telemetry;
    }

    /// How reloading has gone.
    pub fn status(&self) -> ReloadStatus {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn record(&self, result: &anyhow::Result<Vec<String>>) {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(restart) => {
                status.generation += 1;
                status.loaded_at = crate::queue::rfc3339(crate::queue::now_ms());
                status.last_error = None;
                for setting in restart {
                    if !status.pending_restart.contains(setting) {
                        status.pending_restart.push(setting.clone());
                    }
                }
            }
            Err(err) => status.last_error = Some(format!("{err:#}")),
        }
    }

    /// The current snapshot.
    pub fn get(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone()
    }

    /// The current config's fingerprint (see `config::fingerprint`); none when the text
    /// it was loaded from could not be read again at start.
    pub fn fingerprint(&self) -> Option<String> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).1.clone()
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.get().config.clone()
    }

    fn replace(&self, snapshot: Snapshot, fingerprint: Option<String>) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(snapshot), fingerprint);
        self.replaced.notify_waiters();
    }

    /// Notified each time a reload replaces the config.
    pub fn replaced(&self) -> &tokio::sync::Notify {
        &self.replaced
    }

    /// Loads the config file again; if it is valid and its plugins load, it becomes
    /// current. Settings that only a restart can change are reported, and keep their
    /// running values until then.
    pub async fn reload(&self, path: &Path) -> anyhow::Result<Vec<String>> {
        let result = self.try_reload(path).await;
        self.record(&result);
        result
    }

    async fn try_reload(&self, path: &Path) -> anyhow::Result<Vec<String>> {
        let path = path.to_path_buf();
        // Read here rather than by `Config::load`: the fingerprint is of this very text.
        #[allow(clippy::disallowed_methods, reason = "inside spawn_blocking")]
        let (text, config) = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&path)
                .map_err(|err| anyhow::anyhow!("{}: cannot read config: {err}", path.display()))?;
            let config =
                Config::parse(&path, &text).map_err(|err| anyhow::anyhow!("the config has problems:\n{err}"))?;
            anyhow::Ok((text, config))
        })
        .await
        .context("loading the config")??;
        let old = self.config();
        let restart = needs_restart(&old, &config);
        let specs: Vec<_> = config.plugins.values().cloned().collect();
        // Fetched before anything compiles: a plugin that cannot be fetched refuses the reload.
        crate::plugin_source::fetch(&specs).await?;
        // The compiled-plugin cache lives with the data the daemon opened at start.
        let cache_dir = old.server.data_dir.join("cache");
        let (runtime, report) = tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache_dir))
            .await
            .context("loading plugins")??;
        for (name, cached, took) in &report.plugins {
            tracing::debug!(plugin = %name, cached, took_ms = took.as_millis() as u64, "plugin ready");
        }
        let fingerprint = fingerprint(&text, &config, &self.salt, |name| runtime.wasm_digest(name));
        // Checked when the config was read: applying it cannot fail for its contents.
        if let Err(why) = crate::logging::apply(&config.server.log, config.server.log_format) {
            tracing::warn!("[server] log: {why}");
        }
        self.replace(Snapshot { config: Arc::new(config), runtime: Arc::new(runtime) }, fingerprint);
        Ok(restart)
    }

    /// Reloads on SIGHUP and when the file at `path` changes, until `stop`.
    pub async fn watch(self: Arc<Self>, path: PathBuf, mut stop: watch::Receiver<bool>) {
        let mut hangup = match hangup() {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!("cannot listen for SIGHUP ({err}); reloading on file changes only");
                None
            }
        };
        // What runs, not what the file holds when this task first looks: a change written
        // in between is then still found. Digests, not texts: the file may hold secrets.
        let read = |path: &Path| {
            let path = path.to_path_buf();
            async move { tokio::fs::read(&path).await.ok().map(|text| crate::config::digest(&text)) }
        };
        let mut seen = Some(self.config().digest);
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = stop.changed() => return,
                () = recv(&mut hangup) => {
                    // What is reloaded now is not a change for the next tick to find.
                    seen = read(&path).await.or(seen.take());
                    "SIGHUP"
                }
                _ = tick.tick() => {
                    // Compare contents, not times: editors and `touch` change times without
                    // changing anything, and a half-written file is caught on the next tick.
                    let now = read(&path).await;
                    if now.is_none() || now == seen {
                        continue;
                    }
                    seen = now;
                    "the file changed"
                }
            };
            tracing::info!(config = %path.display(), "reloading the config ({why})");
            match self.reload(&path).await {
                Ok(restart) => {
                    tracing::info!(config = %path.display(), "config reloaded; new jobs run under it");
                    for setting in restart {
                        tracing::warn!("{setting} changed: it takes effect at the next restart");
                    }
                }
                Err(err) => {
                    tracing::error!(config = %path.display(), "config not reloaded, the running one stays: {err:#}")
                }
            }
        }
    }
}

/// The fingerprint of the config `snapshot` was loaded with, from its file read again;
/// none when the file cannot be read or no longer holds that text (the watcher then
/// reloads it, with a fingerprint of the text it reads).
#[allow(clippy::disallowed_methods, reason = "a small file, read once at start-up")]
fn loaded_fingerprint(snapshot: &Snapshot, salt: &[u8; 32]) -> Option<String> {
    let config = &snapshot.config;
    let text = std::fs::read_to_string(&config.path).ok()?;
    if crate::config::digest(text.as_bytes()) != config.digest {
        return None;
    }
    fingerprint(&text, config, salt, |name| snapshot.runtime.wasm_digest(name))
}

/// Settings fixed for the life of the process.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let (a, b) = (&old.server, &new.server);
    let checks = [
        ("[server] listen", a.listen != b.listen),
        ("[server] data_dir", a.data_dir != b.data_dir),
        ("[server] workers", a.workers != b.workers),
        ("[server] max_body", a.max_body != b.max_body),
        (
            "[compat.gitreload] (adding or removing it)",
            old.compat.gitreload.is_some() != new.compat.gitreload.is_some(),
        ),
    ];
    for (name, differs) in checks {
        if differs {
            changed.push(name.to_owned());
        }
    }
    changed
}

#[cfg(unix)]
fn hangup() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
