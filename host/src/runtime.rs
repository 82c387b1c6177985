//! The plugin runtime: one wasmtime engine, every configured plugin compiled once (or
//! loaded from the cache) and pre-instantiated, and [`Runtime::run`] giving each step a
//! fresh store with its grant, its limits and its log. Nothing a plugin does can panic
//! the host: traps, limits and host errors all come back as a [`StepOutcome`].

mod cache;
pub use cache::create_private_dir;
pub mod inspect;
mod limits;
mod stdio;
mod waits;

use crate::capability::log::{Level, Sink, StepLog};
use crate::capability::wasi_http::PolicyHooks;
use crate::capability::{StepContext, StepState, bindings, bindings_v0_1, http};
use crate::config::{Limits, PluginSpec};
use crate::event::Event;
pub use crate::step::{StepBill, StepStatus};
use anyhow::Context;
use limits::{EpochTicker, StepLimiter};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, ResourceTable, ResourceTableError};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use bindings::gitauto::plugin::types as wit;

/// The WIT package version this host implements.
pub const WIT_PACKAGE: &str = "gitauto:plugin@0.2.0";

/// What one step's store holds: its WASI context, its limiter, and the state the
/// capabilities serve it from.
struct StoreData {
    wasi: WasiCtx,
    limiter: StepLimiter,
    step: StepState,
    /// `wasi:http`'s own state; its requests go through [`PolicyHooks`].
    wasi_http: WasiHttpCtx,
    http_hooks: PolicyHooks,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.step.table }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.wasi_http, table: &mut self.step.table, hooks: &mut self.http_hooks }
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The plugin returned an outcome.
    Done {
        /// Its status: success, failure or skipped (a plugin's error is
        /// [`StepOutcome::Error`]).
        status: StepStatus,
        /// Its one-line summary.
        summary: String,
        /// Its output, JSON text.
        output: String,
    },
    /// The plugin returned an error.
    Error {
        /// Which kind.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// The step was stopped: a trap, a limit, or a host failure.
    Trapped {
        /// Why, for people.
        reason: String,
    },
}

impl StepOutcome {
    /// The status the step is recorded with: the plugin's own, or `error`.
    pub fn status(&self) -> StepStatus {
        match self {
            StepOutcome::Done { status, .. } => *status,
            StepOutcome::Error { .. } | StepOutcome::Trapped { .. } => StepStatus::Error,
        }
    }
}

/// A plugin error's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad `with` settings.
    InvalidSettings,
    /// May pass on retry.
    Transient,
    /// Anything else.
    Failed,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidSettings => "invalid settings",
            ErrorKind::Transient => "transient failure",
            ErrorKind::Failed => "failed",
        })
    }
}

/// A compiled, pre-instantiated plugin.
struct LoadedPlugin {
    spec: PluginSpec,
    /// The SHA-256 of the component's bytes, for the config's fingerprint and each step's record.
    digest: [u8; 32],
    /// Who signed the component, when its config asks for a signature.
    signer: Option<crate::plugin_source::Signer>,
    pre: bindings::PluginPre<StoreData>,
    http: Arc<http::Client>,
}

/// Load statistics, for logs and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Per plugin: (name, came from cache, load time).
    pub plugins: Vec<(String, bool, Duration)>,
}

/// The engine and every configured plugin.
pub struct Runtime {
    engine: Engine,
    plugins: BTreeMap<String, LoadedPlugin>,
    /// Where any plugin may change repositories: see [`StepContext::changers`].
    changers: Arc<[(String, std::path::PathBuf, crate::grant::Access)]>,
    /// The operator's opt-out: granted programs run without Landlock.
    unconfined_programs: bool,
    /// Advances the epoch; a step's bill counts its ticks.
    ticker: EpochTicker,
    /// Told of every host call of every step (see [`crate::capability::meter`]).
    observer: Option<crate::capability::meter::Observer>,
}

impl Runtime {
    /// Compiles (or loads from `cache_dir`) and pre-instantiates every plugin.
    pub fn new<'a>(
        plugins: impl IntoIterator<Item = &'a PluginSpec>,
        cache_dir: &Path,
    ) -> anyhow::Result<(Self, LoadReport)> {
        let plugins: Vec<&PluginSpec> = plugins.into_iter().collect();
        let unconfined_programs = programs_may_run(&plugins)?;
        raise_descriptor_limit();
        let engine = engine()?;
        let linker = linker(&engine)?;
        let mut loaded = BTreeMap::new();
        let mut report = LoadReport::default();
        for spec in plugins {
            let started = Instant::now();
            // Checked against its pin and signature before anything compiles it.
            let source = crate::plugin_source::read(spec).with_context(|| format!("plugin `{}`", spec.name))?;
            let wasm = &source.bytes;
            let (component, cached) = cache::load(cache_dir, &engine, wasm).map_err(|err| {
                let detail = format!("{err:#}");
                if detail.contains("pooling allocator") {
                    anyhow::anyhow!(
                        "plugin `{}`: {} needs more than this host gives one component (at most {} core instances, \
                         {} linear memories, one per module, and {} tables): {detail}",
                        spec.name,
                        spec.wasm,
                        limits::MAX_INSTANCES,
                        limits::MAX_MEMORIES,
                        limits::MAX_TABLES
                    )
                } else {
                    err.context(format!("plugin `{}`: {} is not a valid WebAssembly component", spec.name, spec.wasm))
                }
            })?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|err| incompatible(&spec.name, &err))
                .and_then(|pre| bindings::PluginPre::new(pre).map_err(|err| incompatible(&spec.name, &err)))?;
            let http = Arc::new(http::Client::new().context("building the HTTP client")?);
            report.plugins.push((spec.name.clone(), cached, started.elapsed()));
            let (digest, signer) = (source.digest, source.signer);
            loaded.insert(spec.name.clone(), LoadedPlugin { spec: spec.clone(), digest, signer, pre, http });
        }
        let ticker = EpochTicker::start(&engine).context("starting the epoch ticker")?;
        let changers = loaded
            .values()
            .flat_map(|plugin| {
                plugin
                    .spec
                    .grant
                    .dirs
                    .iter()
                    .filter(|dir| dir.access >= crate::grant::Access::Git)
                    .filter_map(|dir| Some((plugin.spec.name.clone(), dir.canonical()?.to_path_buf(), dir.access)))
            })
            .collect();
        Ok((Self { engine, plugins: loaded, changers, unconfined_programs, ticker, observer: None }, report))
    }

    /// Whether a plugin of that name is loaded.
    pub fn has(&self, plugin: &str) -> bool {
        self.plugins.contains_key(plugin)
    }

    /// The SHA-256 of a loaded plugin's component, as it was loaded.
    pub fn wasm_digest(&self, plugin: &str) -> Option<[u8; 32]> {
        self.plugins.get(plugin).map(|loaded| loaded.digest)
    }

    /// Who signed a loaded plugin's component, when its config asks for a signature.
    pub fn signer(&self, plugin: &str) -> Option<&crate::plugin_source::Signer> {
        self.plugins.get(plugin).and_then(|loaded| loaded.signer.as_ref())
    }

    /// A loaded plugin's spec: its grant and limits.
    pub fn spec(&self, plugin: &str) -> Option<&PluginSpec> {
        self.plugins.get(plugin).map(|loaded| &loaded.spec)
    }

    /// Tells `observer` of every host call of every step from now on: the seam for a
    /// tracing span per call (see [`crate::capability::meter`]).
    pub fn observe_calls(&mut self, observer: crate::capability::meter::Observer) {
        self.observer = Some(observer);
    }

    /// Runs one step: a fresh store, the event and settings in, an outcome out. Blocks
    /// for as long as the step runs (at most its timeout): call it from a blocking
    /// thread inside the tokio runtime (HTTP calls use it).
    pub fn run(&self, plugin: &str, event: &Event, settings: &str, sink: Sink) -> StepOutcome {
        self.run_in(plugin, event, settings, sink, &Scope::default()).outcome
    }

    /// [`Runtime::run`] as part of a job, with what the step cost: stopped at the job's
    /// deadline when that comes before the plugin's own time limit, given the job's
    /// workspace as `/tmp`, and the job's checkout when the step asked for it.
    pub fn run_in(&self, plugin: &str, event: &Event, settings: &str, sink: Sink, scope: &Scope<'_>) -> Ran {
        let began = Instant::now();
        let (cpu, ticks) = (crate::confine::thread_cpu_with_confined(), self.ticker.now());
        let Some(loaded) = self.plugins.get(plugin) else {
            let outcome = StepOutcome::Trapped { reason: format!("plugin `{plugin}` is not loaded") };
            return Ran { outcome, bill: None };
        };
        let limits = loaded.spec.limits;
        let log = StepLog::new(sink);
        let stdout = stdio::LogStream::new(log.clone(), Level::Info);
        let stderr = stdio::LogStream::new(log.clone(), Level::Warn);
        let own_deadline = scope.started.unwrap_or_else(Instant::now) + limits.timeout;
        let (deadline, by_job) = match scope.deadline {
            Some(job) if job < own_deadline => (job, true),
            _ => (own_deadline, false),
        };
        let mut store = match self.store(plugin, loaded, scope, &log, (&stdout, &stderr), deadline) {
            Ok(store) => store,
            Err(err) => {
                let outcome = StepOutcome::Trapped { reason: format!("preparing the sandbox: {err:#}") };
                return Ran { outcome, bill: None };
            }
        };

        let result = loaded
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_handle(&mut store, &to_wit(event), settings));
        let bill = StepBill {
            wall_us: micros(scope.started.unwrap_or(began).elapsed()),
            cpu_us: micros(crate::confine::thread_cpu_with_confined().saturating_sub(cpu)),
            peak_memory: store.data().limiter.peak as u64,
            epoch_ticks: self.ticker.now().saturating_sub(ticks),
            calls: store.data().step.ctx.meter.bill(),
        };
        stdout.flush_rest();
        stderr.flush_rest();
        let outcome = match result {
            Ok(Ok(outcome)) => checked(outcome),
            Ok(Err(error)) => {
                let (kind, message) = match error {
                    wit::Error::InvalidSettings(m) => (ErrorKind::InvalidSettings, m),
                    wit::Error::Transient(m) => (ErrorKind::Transient, m),
                    wit::Error::Failed(m) => (ErrorKind::Failed, m),
                };
                StepOutcome::Error { kind, message }
            }
            Err(err) => StepOutcome::Trapped {
                reason: if by_job
                    && (err.downcast_ref::<WaitPastDeadline>().is_some()
                        || err.downcast_ref::<waits::BlockedPastDeadline>().is_some()
                        || matches!(err.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt))
                            && Instant::now() + limits::TICK >= deadline)
                {
                    "the rule's timeout passed".into()
                } else {
                    trap_reason(&err, store.data().limiter.memory_exceeded, &limits, deadline)
                },
            },
        };
        Ran { outcome, bill: Some(bill) }
    }
}

/// A step's outcome and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// How it ended.
    pub outcome: StepOutcome,
    /// What it cost, measured from the step's start to the plugin's return (or trap);
    /// `None` when the plugin was never called (not loaded, its sandbox could not be
    /// prepared).
    pub bill: Option<StepBill>,
}

fn micros(took: Duration) -> u64 {
    u64::try_from(took.as_micros()).unwrap_or(u64::MAX)
}

/// What a step shares with the job it belongs to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The job's deadline (a rule's `timeout`), when it has one.
    pub deadline: Option<Instant>,
    /// The job's scratch directory, seen by the plugin as `/tmp`.
    pub workspace: Option<&'a Path>,
    /// The job's checkout, filled and pinned, when this step asked for it: granted to
    /// this step alone, with write access.
    pub checkout: Option<&'a crate::grant::DirGrant>,
    /// When the step started, if before the plugin is called (filling the checkout
    /// counts against the step's time).
    pub started: Option<Instant>,
    /// What the step's `github-app` credentials mint tokens with.
    pub app: Option<&'a Arc<crate::forge_api::AppAccess>>,
    /// The step's span, when tracing is on: its host calls' spans hang under it.
    pub trace: Option<&'a crate::telemetry::Parent>,
    /// The daemon's queue, where the key-value stores live.
    pub kv: Option<&'a crate::queue::Queue>,
}

/// Most bytes of a summary kept: it is one line in lists, logs and comments.
pub const MAX_SUMMARY: usize = 4 * 1024;
/// Most bytes of output a step may hand to later steps.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// The plugin's outcome as the host records it: output that is not JSON or is too
/// large makes the step an error (later steps' templates could not use it); the summary
/// is cut to [`MAX_SUMMARY`] and loses control characters that would drive a terminal.
fn checked(outcome: wit::Outcome) -> StepOutcome {
    let malformed = |why: String| StepOutcome::Error {
        kind: ErrorKind::Failed,
        message: format!("the plugin returned a malformed outcome: {why}"),
    };
    let output = if outcome.output.trim().is_empty() { "null".to_owned() } else { outcome.output };
    if output.len() > MAX_OUTPUT {
        return malformed(format!(
            "its output is {} bytes, more than the {} allowed",
            output.len(),
            crate::config::format_size(MAX_OUTPUT as u64)
        ));
    }
    if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(&output) {
        let start: String = output.chars().take(40).collect();
        return malformed(format!("its output is not JSON ({err}): {start:?}"));
    }
    let summary: String = crate::capability::log::cut(&outcome.summary, MAX_SUMMARY)
        .chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\t' { '\u{fffd}' } else { c })
        .collect();
    StepOutcome::Done {
        status: match outcome.status {
            wit::Status::Success => StepStatus::Success,
            wit::Status::Failure => StepStatus::Failure,
            wit::Status::Skipped => StepStatus::Skipped,
        },
        summary,
        output,
    }
}

impl Runtime {
    /// A fresh store for one step of `loaded`: its sandbox, limits, log and deadline.
    fn store(
        &self,
        plugin: &str,
        loaded: &LoadedPlugin,
        scope: &Scope<'_>,
        log: &StepLog,
        (stdout, stderr): (&stdio::LogStream, &stdio::LogStream),
        deadline: Instant,
    ) -> anyhow::Result<Store<StoreData>> {
        let limits = loaded.spec.limits;
        let mut grant = loaded.spec.grant.clone();
        let mut changers = self.changers.clone();
        let mut checkout = None;
        if let Some(dir) = scope.checkout {
            let root = dir.canonical().context("the job's checkout was not pinned")?.to_path_buf();
            grant.dirs.push(dir.clone());
            // The step may write the checkout, so no remote configured there is as an
            // administrator left it: git calls must check them against the grant.
            let mut all = changers.to_vec();
            all.push((plugin.to_owned(), root.clone(), crate::grant::Access::Write));
            changers = all.into();
            checkout = Some(root);
        }
        let wasi = wasi_context(&grant, scope.workspace, checkout.as_deref(), stdout, stderr)?;
        let ctx = StepContext {
            plugin: plugin.to_owned(),
            grant: Arc::new(grant),
            changers,
            checkout,
            deadline,
            log: log.clone(),
            http: loaded.http.clone(),
            max_transfer: limits.memory,
            unconfined_programs: self.unconfined_programs,
            app: scope.app.cloned(),
            meter: Arc::new(match (&self.observer, scope.trace) {
                (Some(observer), _) => crate::capability::meter::Meter::observe(observer.clone()),
                (None, Some(step)) => host_call_spans(step.clone()),
                (None, None) => crate::capability::meter::Meter::default(),
            }),
            trace: scope.trace.cloned(),
            kv: scope.kv.cloned(),
        };
        let state = StoreData {
            wasi,
            limiter: StepLimiter::new(limits.memory),
            wasi_http: {
                let mut ctx = WasiHttpCtx::new();
                ctx.set_field_size_limit(crate::capability::wasi_http::FIELD_SIZE_LIMIT);
                ctx
            },
            http_hooks: PolicyHooks::new(ctx.clone()),
            step: StepState { table: resource_table(), ctx },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(limits::ticks(deadline.saturating_duration_since(Instant::now())));
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// Instantiates `plugin` in a fresh store as a step does, then drops it uncalled:
    /// what every step pays before the plugin runs (for benchmarks).
    pub fn instantiate(&self, plugin: &str) -> anyhow::Result<()> {
        let loaded = self.plugins.get(plugin).with_context(|| format!("plugin `{plugin}` is not loaded"))?;
        let log = StepLog::new(Arc::new(|_, _| {}));
        let stdout = stdio::LogStream::new(log.clone(), Level::Info);
        let stderr = stdio::LogStream::new(log.clone(), Level::Warn);
        let deadline = Instant::now() + loaded.spec.limits.timeout;
        let mut store = self.store(plugin, loaded, &Scope::default(), &log, (&stdout, &stderr), deadline)?;
        loaded.pre.instantiate(&mut store)?;
        Ok(())
    }
}

/// Host-call spans one step may make: a plugin calling `git.head` in a loop must not fill
/// the exporter's queue and push out every other job's spans (its calls are still counted
/// in its bill).
const MAX_CALL_SPANS: usize = 256;

/// A meter that makes each git, process and kv host call a span under the step's
/// (`git.fetch`, `process.run`, `kv.compare-and-swap`), up to [`MAX_CALL_SPANS`]. HTTP
/// requests make their own span, whose id their `traceparent` carries; log lines are not
/// spans.
fn host_call_spans(step: crate::telemetry::Parent) -> crate::capability::meter::Meter {
    use crate::capability::meter::Capability;
    let made = std::sync::atomic::AtomicUsize::new(0);
    crate::capability::meter::Meter::observe(Arc::new(move |capability, name| match capability {
        Capability::Git | Capability::Process | Capability::Kv
            if made.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < MAX_CALL_SPANS =>
        {
            Box::new(step.child(name, crate::telemetry::Kind::Internal)) as Box<dyn std::any::Any>
        }
        _ => Box::new(()),
    }))
}

/// Bytes of each freed memory and table that are zeroed in place rather than released.
const KEEP_RESIDENT: usize = 64 << 10;

fn engine() -> anyhow::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    let mut pooled = config.clone();
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    // Reset the first pages of a freed memory and table by writing zeros instead of
    // returning them to the kernel: a step's small heap is then reused without a system
    // call (expensive under gVisor and in VMs), and bigger ones still go back.
    pool.linear_memory_keep_resident(KEEP_RESIDENT).table_keep_resident(KEEP_RESIDENT);
    // One component cannot take the pool that every step shares.
    pool.max_core_instances_per_component(limits::MAX_INSTANCES)
        .max_memories_per_component(limits::MAX_MEMORIES)
        .max_tables_per_component(limits::MAX_TABLES);
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    // The pooling allocator reserves address space up front; where that is refused
    // (tight `ulimit -v`), fall back to allocating on demand.
    match Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(err) => {
            tracing::warn!("pooling allocator unavailable ({err}); allocating instances on demand");
            Ok(Engine::new(&config)?)
        }
    }
}

/// Explains a component that does not fit the world this host offers.
fn incompatible(plugin: &str, err: &wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("plugin `{plugin}` cannot run on this host: {}", inspect::explain_incompatible(err))
}

/// The linker every plugin is instantiated with: all of WASI p2 (denied through each
/// step's context, not by leaving imports out), `wasi:http`'s outgoing handler (through
/// gitauto's HTTP policy) and the gitauto capabilities, of 0.2 and of 0.1.
fn linker(engine: &Engine) -> anyhow::Result<Linker<StoreData>> {
    let mut linker = Linker::<StoreData>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from).context("linking WASI")?;
    bindings::Plugin::add_to_linker::<StoreData, HasSelf<StepState>>(&mut linker, |data| &mut data.step)
        .map_err(anyhow::Error::from)
        .context("linking gitauto capabilities")?;
    bindings_v0_1::Plugin::add_to_linker::<StoreData, HasSelf<StepState>>(&mut linker, |data| &mut data.step)
        .map_err(anyhow::Error::from)
        .context("linking gitauto 0.1 capabilities")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking wasi:http")?;
    waits::bound(&mut linker).context("bounding WASI waits by the step's deadline")?;
    Ok(linker)
}

/// The environment variable by which an operator lets granted programs run on a kernel
/// without Landlock, unconfined. Documented in docs/security.md.
pub const UNCONFINED_PROGRAMS: &str = "GITAUTO_UNCONFINED_PROGRAMS";

/// Whether granted programs may run: always under Landlock; without it only when the
/// operator opted out, which is logged at every start. Refuses to load otherwise.
fn programs_may_run(plugins: &[&PluginSpec]) -> anyhow::Result<bool> {
    let support = crate::confine::support();
    let granted: Vec<&str> =
        plugins.iter().filter(|spec| !spec.grant.commands.is_empty()).map(|spec| spec.name.as_str()).collect();
    if support.files() {
        tracing::info!("granted programs and git calls are confined by the kernel ({support})");
    }
    if !support.files() {
        tracing::warn!("this kernel has no Landlock: git calls are checked by path only, and git `archive` is refused");
    }
    if support.programs() || granted.is_empty() {
        return Ok(false);
    }
    if std::env::var_os(UNCONFINED_PROGRAMS).is_some_and(|value| value == "1") {
        tracing::warn!(
            plugins = granted.join(", "),
            "this kernel's Landlock ({support}) cannot confine programs, and {UNCONFINED_PROGRAMS}=1: granted programs run UNCONFINED, with the daemon's rights"
        );
        return Ok(true);
    }
    anyhow::bail!(
        "plugin {} is granted programs (`grants.commands`), but this kernel cannot confine them ({support}; \
         Landlock ABI 6 is needed: Linux 6.7 or newer with Landlock enabled); remove the grant, or set \
         {UNCONFINED_PROGRAMS}=1 to run them unconfined (see docs/security.md)",
        granted.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
    )
}

/// Raises this process's soft limit of open descriptors to its hard limit, once: every
/// step may hold [`MAX_RESOURCES`], and the daemon's own sockets and files must still
/// open when several steps do.
fn raise_descriptor_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            if let Err(err) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!("could not raise the open-file limit: {err}");
            }
        }
    });
}

/// Resources (files, streams, repositories, sockets) one step may hold at once: far more
/// than a plugin needs, far fewer than the daemon's descriptor limit.
pub const MAX_RESOURCES: usize = 1024;

fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

/// The environment variable that holds the job checkout's path, for a step that asked for it.
pub const CHECKOUT_VARIABLE: &str = "GITAUTO_CHECKOUT";

/// The WASI context: no arguments or stdin, and no environment but [`CHECKOUT_VARIABLE`]
/// when the step has the job's checkout; stdout and stderr into the log; no sockets at
/// all; the granted directories (as pinned at load, and the checkout as pinned when it
/// was made), the job's workspace as `/tmp`, nothing else.
fn wasi_context(
    grant: &crate::grant::Grant,
    workspace: Option<&Path>,
    checkout: Option<&Path>,
    stdout: &stdio::LogStream,
    stderr: &stdio::LogStream,
) -> anyhow::Result<WasiCtx> {
    let mut builder = WasiCtx::builder();
    builder.stdout(stdout.clone()).stderr(stderr.clone()).allow_ip_name_lookup(false);
    // Before any directory is opened: each takes the setting with it. A step runs on a
    // thread of its own that may block (see `Runtime::run`), so file operations run
    // right there instead of being handed to tokio's blocking pool and waited for: two
    // thread switches per call were two thirds of writing a small file through WASI
    // (0.18 ms of it on tmpfs; docs/performance.md). What a plugin can reach is
    // unchanged: the same directories, opened the same way.
    builder.allow_blocking_current_thread(true);
    if let Some(checkout) = checkout {
        builder.env(CHECKOUT_VARIABLE, checkout.to_string_lossy());
    }
    // Not even a socket is created: each would be a host descriptor.
    builder.allow_tcp(false).allow_udp(false);
    builder.socket_addr_check(|_, _| Box::pin(async { false }));
    // A grant of `/tmp` itself wins: two directories cannot share one name.
    if let Some(workspace) = workspace
        && !grant.dirs.iter().any(|dir| dir.path == Path::new(WORKSPACE))
    {
        builder
            .preopened_dir(workspace, WORKSPACE, FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening the job's workspace {}", workspace.display()))?;
    }
    for dir in &grant.dirs {
        let Some(root) = &dir.root else { continue };
        let perms = if dir.access == crate::grant::Access::Write { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        // The directory pinned at load, not wherever its path leads now.
        let pinned = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&root.fd));
        let configured = dir.path.to_string_lossy().into_owned();
        builder
            .preopened_dir(&pinned, &configured, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening granted directory {}", dir.path.display()))?;
        let canonical_text = root.canonical.to_string_lossy();
        if canonical_text != configured {
            builder.preopened_dir(&pinned, canonical_text.as_ref(), perms)?;
        }
    }
    Ok(builder.build())
}

/// A plugin asked to wait on a clock beyond its deadline.
#[derive(Debug)]
struct WaitPastDeadline {
    wait: Duration,
    left: Duration,
}

impl std::fmt::Display for WaitPastDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it asked to wait {:.1} s with {:.1} s left", self.wait.as_secs_f64(), self.left.as_secs_f64())
    }
}

impl std::error::Error for WaitPastDeadline {}

/// Where a plugin sees its job's workspace.
pub const WORKSPACE: &str = "/tmp";

/// Says why a step stopped, in words: `plugin X trapped: <this>`.
fn trap_reason(err: &wasmtime::Error, memory_exceeded: bool, limits: &Limits, deadline: Instant) -> String {
    if memory_exceeded {
        return format!("memory limit of {} exceeded", crate::config::format_size(limits.memory));
    }
    if let Some(wait) = err.downcast_ref::<WaitPastDeadline>() {
        return format!("deadline of {} exceeded ({wait})", crate::config::format_duration(limits.timeout));
    }
    if let Some(blocked) = err.downcast_ref::<waits::BlockedPastDeadline>() {
        return format!("deadline of {} exceeded ({blocked})", crate::config::format_duration(limits.timeout));
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) if Instant::now() + limits::TICK >= deadline => {
            format!("deadline of {} exceeded", crate::config::format_duration(limits.timeout))
        }
        Some(wasmtime::Trap::StackOverflow) => "stack overflow (recursion too deep)".into(),
        // Languages that keep their stack in linear memory (Rust, C) overflow it this way.
        Some(wasmtime::Trap::MemoryOutOfBounds) => {
            "out-of-bounds memory access (a stack overflow from deep recursion, or a bug in the plugin)".into()
        }
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "the plugin aborted (a panic or abort; its stderr is in the step's log)".into()
        }
        Some(trap) => format!("{trap}"),
        None if table_full(err) => {
            format!("too many open resources (files, streams, repositories): at most {MAX_RESOURCES} at once")
        }
        None => format!("{err:#}"),
    }
}

/// Whether the step stopped because its resource table was full ([`MAX_RESOURCES`]).
fn table_full(err: &wasmtime::Error) -> bool {
    err.chain().any(|cause| matches!(cause.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)))
}

fn to_wit(event: &Event) -> wit::Event {
    let repo = &event.repository;
    wit::Event {
        delivery: event.delivery.clone(),
        source: event.source.clone(),
        forge: event.forge.clone(),
        kind: event.kind.clone(),
        action: event.action.clone(),
        repository: wit::Repository {
            owner: repo.owner.clone(),
            name: repo.name.clone(),
            full_name: repo.full_name.clone(),
            clone_url: repo.clone_url.clone(),
            html_url: repo.html_url.clone(),
            default_branch: repo.default_branch.clone(),
        },
        git_ref: event.git_ref.clone(),
        branch: event.branch.clone(),
        tag: event.tag.clone(),
        before: event.before.clone(),
        after: event.after.clone(),
        deleted: event.deleted,
        commits: event
            .commits
            .iter()
            .map(|c| wit::Commit {
                id: c.id.clone(),
                message: c.message.clone(),
                author: c.author.clone(),
                timestamp: c.timestamp.clone(),
                url: c.url.clone(),
                added: c.added.clone(),
                modified: c.modified.clone(),
                removed: c.removed.clone(),
            })
            .collect(),
        commits_complete: event.commits_complete,
        sender: event.sender.clone(),
        pull_request: event.pull_request.as_ref().map(|pr| wit::PullRequest {
            number: pr.number,
            title: pr.title.clone(),
            url: pr.url.clone(),
            state: pr.state.clone(),
            merged: pr.merged,
            source_branch: pr.source_branch.clone(),
            target_branch: pr.target_branch.clone(),
            head: pr.head.clone(),
            source_repository: pr.source_repository.clone(),
        }),
        payload: event.payload.clone(),
    }
}
