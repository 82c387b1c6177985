//! `gitauto.toml`: read it as written (`config/raw.rs`), then validate it into the
//! [`Config`] the daemon runs on. Validation reports every problem at once, each as
//! `FILE:LINE:COL: message`; a config with problems never starts a daemon.
//!
//! Relative paths in the config are taken from the config file's directory.

pub mod api;
pub mod app;
mod catch_up;
pub mod compat;
mod env;
pub mod fingerprint;
pub mod gate;
mod keys;
mod own;
mod raw;
mod remote;
mod rules;
pub mod secret;
pub mod telemetry;
mod units;

pub use catch_up::{CatchUp, Poll, PolledRepo};
pub use rules::{
    COALESCE_PLACEHOLDERS, Checkout, CheckoutMode, Coalesce, EVENT_KINDS, EventSelector, Handlers, MAX_CHECKOUT_DEPTH,
    Missed, PathsUnknown, RefFilter, ReportKind, Rule, Schedule, Step,
};
pub use units::{format_duration, format_size, parse_duration, parse_size};

use crate::forge::{self, Dialect};
use crate::grant::{
    Access, CommandGrant, Credential, DirGrant, Grant, HostCredential, HostPattern, KvGrant, KvLimits, SigV4Key,
};
pub use crate::secret::Secret;
use app::{GITHUB_APP, GITHUB_PERMISSIONS};
use raw::{DurationValue, RawConfig, RawDir, RawPlugin, RawSource, SizeValue};
use rules::hint;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The SHA-256 of config text, as [`Config::digest`] holds it.
pub fn digest(text: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text).into()
}

/// Where `serve` and `check` look when no `--config` is given.
pub const DEFAULT_PATH: &str = "gitauto.toml";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The SHA-256 of the text it was validated from: the reload watcher compares the
    /// file with this, so a change written before the watcher first looks is still a
    /// change. (A digest, not the text: the text may hold secrets.)
    pub digest: [u8; 32],
    /// `[server]`.
    pub server: Server,
    /// `[sources.NAME]`, by name.
    pub sources: BTreeMap<String, Source>,
    /// `[plugins.NAME]`, by name.
    pub plugins: BTreeMap<String, PluginSpec>,
    /// `[[rules]]`, in file order (the order they are evaluated and their jobs queued).
    pub rules: Vec<Rule>,
    /// `[compat.*]`: old services' endpoints, and the rules only they queue.
    pub compat: compat::Compat,
    /// `[retention]`: how much history to keep.
    pub retention: crate::queue::Retention,
    /// `[store] url`: the PostgreSQL database that daemons share; none: the SQLite file
    /// in `data_dir`.
    pub store: Option<Secret>,
    /// `[store] connections`: how many PostgreSQL connections accept deliveries.
    pub store_connections: usize,
    /// `[telemetry]`: where traces are exported; none (no `otlp_endpoint`): tracing is off.
    pub telemetry: Option<telemetry::Telemetry>,
    /// The key-value stores some plugin is granted (`grants.kv`), by name, with their
    /// bounds (`[kv.NAME]`, or the defaults).
    pub kv: BTreeMap<String, KvLimits>,
}

/// The most entries `[kv.NAME] max_entries` allows one store.
pub const MAX_KV_ENTRIES: i64 = 10_000_000;
/// The largest `[kv.NAME] max_value`: one value is copied whole into the plugin's memory
/// and into one database row.
pub const MAX_KV_VALUE: u64 = 64 << 20;

/// `[server]`: how the daemon listens and where it keeps its data.
#[derive(Debug, Clone)]
pub struct Server {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite queue and the compiled-plugin cache.
    pub data_dir: PathBuf,
    /// How many jobs run at once; 0 makes an accept-only node (it queues, others run).
    pub workers: usize,
    /// Largest webhook body accepted, in bytes.
    pub max_body: usize,
    /// How long running jobs may take to finish after SIGTERM or SIGINT.
    pub shutdown_grace: Duration,
    /// Most connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header: usize,
    /// The token the API, dashboard and metrics require (as a bearer token, or as the
    /// password of basic authentication); none: they are open.
    pub api_token: Option<Secret>,
    /// This daemon's name among those sharing a store (default: the host name).
    pub node: String,
    /// Proxies whose `X-Forwarded-For` is believed, where a request's origin matters
    /// (`[compat.gitreload] allow_unsigned_from`); none: the connection's address counts.
    pub trusted_proxies: Vec<crate::network::Network>,
    /// The daemon's address as the forge's users reach it, without a trailing `/`: reports
    /// link to `{public_url}/jobs/{id}` (none: reports carry no link).
    pub public_url: Option<String>,
    /// The log filter, as written (`GITAUTO_LOG` overrides it); checked by
    /// `logging::parse_filter`.
    pub log: String,
    /// How log records are written.
    pub log_format: crate::logging::LogFormat,
}

/// `[sources.NAME]`: one webhook endpoint, `POST /hooks/NAME`.
#[derive(Clone)]
pub struct Source {
    /// The table's name.
    pub name: String,
    /// The forge's name, e.g. `github`.
    pub forge: &'static str,
    /// The forge's signatures and payloads, configured for this source.
    pub dialect: Arc<dyn Dialect>,
    /// Secrets that sign deliveries; more than one while rotating.
    pub secrets: Vec<Secret>,
    /// Accept deliveries without a signature (only when no secret is configured).
    pub allow_unsigned: bool,
    /// Where to list the deliveries this source's hooks sent, to ingest those missed.
    pub catch_up: Option<CatchUp>,
    /// Repositories whose refs are compared with what was last seen, for pushes whose
    /// delivery never arrived.
    pub poll: Option<Poll>,
    /// The forge's REST API, for what the host reports and asks itself.
    pub api: Option<api::Api>,
    /// The GitHub App the host authenticates as (github only); `api` is then set too,
    /// without a token: each call's token is minted for its repository.
    pub app: Option<app::App>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("forge", &self.forge)
            .field("secrets", &self.secrets)
            .field("allow_unsigned", &self.allow_unsigned)
            .field("catch_up", &self.catch_up)
            .field("poll", &self.poll)
            .field("api", &self.api)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// `[plugins.NAME]`: a Wasm component and what it may touch.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The table's name, used by steps.
    pub name: String,
    /// Where the component comes from.
    pub wasm: WasmSource,
    /// `verify`: the minisign key its component must be signed with (none: unsigned).
    pub verify: Option<crate::plugin_source::Verify>,
    /// What it may touch.
    pub grant: Grant,
    /// How much memory and time one step may use.
    pub limits: Limits,
    /// `with` of the plugin's table: settings every step of it gets unless the step's
    /// own `with` names the key (so `[plugins.flake8]` can be `run` set up for flake8).
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmSource {
    /// Embedded in the binary: `builtin:NAME`.
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
    /// Fetched from a registry or URL, pinned, into the data directory's plugin store.
    Remote(Box<crate::plugin_source::Remote>),
}

impl std::fmt::Display for WasmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WasmSource::Builtin(name) => write!(f, "builtin:{name}"),
            WasmSource::File(path) => write!(f, "{}", path.display()),
            WasmSource::Remote(remote) => write!(f, "{}", remote.location),
        }
    }
}

/// Per-step resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in bytes.
    pub memory: u64,
    /// Wall-clock time for one step.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory: 64 << 20, timeout: Duration::from_secs(120) }
    }
}

/// The most `[store] connections` a daemon opens to accept deliveries.
pub const MAX_STORE_CONNECTIONS: i64 = 32;

/// The default of `[server] shutdown_grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Every problem found in a config file.
#[derive(Debug)]
pub struct ConfigError {
    problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// One line per problem, `FILE:LINE:COL: message`.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl Config {
    /// Reads and validates a config file.
    #[allow(clippy::disallowed_methods, reason = "at start-up, in CLI commands, and on reload inside spawn_blocking")]
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError { problems: vec![format!("{}: cannot read config: {err}", path.display())] })?;
        Self::parse(path, &text)
    }

    /// Validates config text; `path` names it in messages and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut check = Checker {
            path,
            text,
            problems: Vec::new(),
            custom_kinds: false,
            own_files: own::OwnFiles::default(),
            checkout_seen: None,
        };
        // Every misspelt key at once; serde would stop at the first.
        let unknown = keys::unknown_keys(text);
        if !unknown.is_empty() {
            for (span, message) in unknown {
                check.problem(Some(span), message);
            }
            return Err(check.finish());
        }
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(err) => {
                check.problem(err.span(), with_key_hint(err.message().trim_end_matches('\n')));
                return Err(check.finish());
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        let config = check.config(raw, &base);
        if check.problems.is_empty() { Ok(config) } else { Err(check.finish()) }
    }

    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }

    /// The rule named `name`, among `[[rules]]` and the compat endpoints' rules.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name).or_else(|| self.compat.rule(name))
    }
}

/// Accumulates problems while validating.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    problems: Vec<String>,
    /// Whether a generic source may produce event kinds beyond [`EVENT_KINDS`].
    custom_kinds: bool,
    /// The daemon's own files, which no directory grant may reach (known once `[server]`
    /// is read).
    own_files: own::OwnFiles,
    /// The first step of the rule being checked that asks for a checkout (its label
    /// and checkout): a job has one checkout, so every other step must ask for the same.
    checkout_seen: Option<(String, Checkout)>,
}

impl Checker<'_> {
    fn finish(self) -> ConfigError {
        ConfigError { problems: self.problems }
    }

    fn problem(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let message = message.into();
        let location = match span {
            Some(span) => {
                let (line, col) = line_col(self.text, span.start);
                format!("{}:{line}:{col}", self.path.display())
            }
            None => self.path.display().to_string(),
        };
        self.problems.push(format!("{location}: {message}"));
    }

    /// A string value with its `${VAR}`s expanded.
    fn expand(&mut self, value: &Spanned<String>) -> Option<String> {
        match env::expand_env(value.get_ref()) {
            Ok(text) => Some(text),
            Err(err) => {
                self.problem(Some(value.span()), err.to_string());
                None
            }
        }
    }

    fn config(&mut self, raw: RawConfig, base: &Path) -> Config {
        let server = self.server(raw.server, base);
        self.own_files = own::OwnFiles::new(self.path, &server.data_dir);
        let sources: BTreeMap<String, Source> = raw
            .sources
            .into_iter()
            .filter_map(|(name, source)| self.source(name, source, base).map(|s| (s.name.clone(), s)))
            .collect();
        self.custom_kinds = sources.values().any(|source| source.forge == "generic");
        let stores = self.kv_stores(raw.kv);
        let remote = remote::RemoteContext {
            store: crate::plugin_source::Store::new(server.data_dir.join(crate::plugin_source::STORE_DIR)),
            registries: self.registries(raw.registries, base),
        };
        let mut plugins = BTreeMap::new();
        for (name, plugin) in raw.plugins {
            if let Some(spec) = self.plugin(name, plugin, base, &remote, &stores) {
                plugins.insert(spec.name.clone(), spec);
            }
        }
        let kv = self.granted_stores(stores, &plugins);
        let mut rules: Vec<Rule> = Vec::new();
        let mut names = BTreeSet::new();
        for rule in raw.rules {
            let span = rule.span();
            let name_span = rule.get_ref().name.span();
            if let Some(rule) = self.rule(rule.into_inner(), span, &plugins) {
                if !names.insert(rule.name.clone()) {
                    self.problem(Some(name_span), format!("rule name \"{}\" is used twice", rule.name));
                }
                rules.push(rule);
            }
        }
        let compat = self.compat(raw.compat, &sources, &plugins, base);
        for rule in [&compat.gitreload].into_iter().flatten().flat_map(|g| [&g.import, &g.update]).flatten() {
            if names.contains(&rule.name) {
                self.problem(None, format!("rule name \"{}\" is reserved for [compat.gitreload]", rule.name));
            }
        }
        let retention = self.retention(raw.retention);
        let store = raw.store.url.as_ref().and_then(|url| {
            let text = self.expand(url)?;
            if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                // The TLS settings and the CA file, so a typo shows here and not at the first
                // connection.
                if let Err(why) = crate::queue::pg_connect::check(&text) {
                    self.problem(Some(url.span()), format!("`[store] url`: {why}"));
                }
                Some(Secret::new(text))
            } else {
                self.problem(
                    Some(url.span()),
                    "`[store] url` must be a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE); \
                     leave [store] out for the SQLite file in data_dir",
                );
                None
            }
        });
        let store_connections = match raw.store.connections {
            None => crate::queue::DEFAULT_CONNECTIONS,
            Some(n) if (1..=MAX_STORE_CONNECTIONS).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                self.problem(
                    Some(n.span()),
                    format!(
                        "`[store] connections` must be between 1 and {MAX_STORE_CONNECTIONS} (got {}): each is one \
                         PostgreSQL backend that accepts deliveries",
                        n.get_ref()
                    ),
                );
                crate::queue::DEFAULT_CONNECTIONS
            }
        };
        let telemetry = self.telemetry(raw.telemetry);
        let config = Config {
            path: self.path.to_path_buf(),
            digest: digest(self.text.as_bytes()),
            server,
            sources,
            plugins,
            rules,
            compat,
            retention,
            store,
            store_connections,
            telemetry,
            kv,
        };
        self.cross_check(&config);
        self.check_reports(&config);
        config
    }

    /// A rule with `report` must be able to report wherever its events can come from:
    /// every source it may match (those it names; else every source of the forges it
    /// names, or every source) must be on a forge with that kind of report and have an
    /// API the host can call.
    fn check_reports(&mut self, config: &Config) {
        for rule in &config.rules {
            let Some(kind) = rule.report else { continue };
            // Each check run gitauto makes sends `check_run` (created, completed) and ends
            // a `check_suite` (completed): a checking rule started by those would start
            // itself again, for ever.
            let own_echo = rule.on.iter().find(|selector| {
                matches!(selector.kind.as_str(), "check_run" | "check_suite")
                    && !matches!(selector.action.as_deref(), Some("requested" | "rerequested" | "requested_action"))
            });
            if let (ReportKind::Check, Some(selector)) = (kind, own_echo) {
                self.problem(
                    None,
                    format!(
                        "rule \"{}\": `report = \"check\"` on `{selector}` events would start the rule again with each \
                         check run it reports; name the action (`check_suite.requested`, `check_run.rerequested`)",
                        rule.name
                    ),
                );
            }
            let sources: Vec<&Source> = config
                .sources
                .values()
                .filter(|source| {
                    (rule.sources.is_empty() || rule.sources.contains(&source.name))
                        && (rule.forges.is_empty() || rule.forges.iter().any(|forge| forge == source.forge))
                })
                .collect();
            let scope = if rule.sources.is_empty() {
                " (the rule names no `source`, so it may match every source; limit it with `source = [...]`)"
            } else {
                ""
            };
            for source in sources {
                if !kind.forges().contains(&source.forge) {
                    let why = match (kind, source.forge) {
                        (ReportKind::Check, _) => "check runs are GitHub's; use `report = \"status\"`".to_owned(),
                        (_, "gogs") => "Gogs has no commit status API".to_owned(),
                        (_, forge) => format!("{forge} has no commit status API"),
                    };
                    self.problem(
                        None,
                        format!(
                            "rule \"{}\": `report = \"{}\"` cannot report for source \"{}\" ({}): {why}{scope}",
                            rule.name,
                            kind.as_str(),
                            source.name,
                            source.forge
                        ),
                    );
                } else if !crate::forge_api::ForgeApis::configured(source) {
                    self.problem(
                        None,
                        format!(
                            "rule \"{}\": `report = \"{}\"` needs the forge's API, but source \"{}\" has no `api` \
                             table{scope}; add `api = {{ token = \"${{TOKEN}}\" }}` to [sources.{}]",
                            rule.name,
                            kind.as_str(),
                            source.name,
                            source.name
                        ),
                    );
                }
            }
        }
    }

    fn server(&mut self, raw: raw::RawServer, base: &Path) -> Server {
        let listen = match &raw.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(listen) => match self.expand(listen).map(|text| text.parse::<SocketAddr>()) {
                Some(Ok(addr)) => addr,
                Some(Err(err)) => {
                    self.problem(
                        Some(listen.span()),
                        format!("`listen` must be an address such as \"127.0.0.1:8080\": {err}"),
                    );
                    SocketAddr::from(([127, 0, 0, 1], 8080))
                }
                None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            },
        };
        let data_dir = match &raw.data_dir {
            None => base.join(".gitauto"),
            Some(dir) => base.join(self.expand(dir).unwrap_or_default()),
        };
        let workers = match raw.workers {
            None => 2,
            Some(workers) if (0..=1024).contains(workers.get_ref()) => *workers.get_ref() as usize,
            Some(workers) => {
                self.problem(Some(workers.span()), "`workers` must be between 0 and 1024");
                2
            }
        };
        let max_body = raw.max_body.map_or(25 << 20, |size| self.size(&size).unwrap_or(25 << 20)) as usize;
        let shutdown_grace =
            raw.shutdown_grace.as_ref().and_then(|d| self.duration(d)).unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        let api_token = raw.api_token.as_ref().and_then(|reference| {
            let text = self.expand(reference)?;
            secret::resolve(&text, base)
                .map_err(|err| self.problem(Some(reference.span()), format!("`api_token`: {err}")))
                .ok()
        });
        let max_connections = match raw.max_connections {
            None => 1024,
            Some(n) if (1..=1_000_000).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                self.problem(Some(n.span()), "`max_connections` must be between 1 and 1000000");
                1024
            }
        };
        let header_timeout =
            raw.header_timeout.as_ref().and_then(|d| self.duration(d)).unwrap_or(Duration::from_secs(10));
        let body_timeout = raw.body_timeout.as_ref().and_then(|d| self.duration(d)).unwrap_or(Duration::from_secs(30));
        let max_header = raw.max_header.as_ref().map_or(64 << 10, |size| self.size(size).unwrap_or(64 << 10)) as usize;
        if let Some(size) = &raw.max_header
            && max_header < 8 << 10
        {
            self.problem(Some(size.span()), "`max_header` must be at least 8KiB");
        }
        let node = match &raw.node {
            None => crate::node::default_name(),
            Some(name) => match self.expand(name).map(|text| crate::node::check_name(&text).map(|()| text)) {
                Some(Ok(text)) => text,
                Some(Err(why)) => {
                    self.problem(Some(name.span()), format!("`node`: {why}"));
                    crate::node::default_name()
                }
                None => crate::node::default_name(),
            },
        };
        let trusted_proxies = self.networks(&raw.trusted_proxies, "[server] trusted_proxies");
        let public_url = raw.public_url.as_ref().and_then(|value| {
            let text = self.expand(value)?;
            match url::Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {
                    Some(text.trim_end_matches('/').to_owned())
                }
                _ => {
                    self.problem(
                        Some(value.span()),
                        format!(
                            "`public_url` must be an http(s) URL such as \"https://gitauto.example.com\", not \"{text}\""
                        ),
                    );
                    None
                }
            }
        });
        let log = match &raw.log {
            None => crate::logging::DEFAULT_FILTER.to_owned(),
            Some(value) => match self.expand(value) {
                Some(text) => {
                    if let Err(why) = crate::logging::parse_filter(&text) {
                        self.problem(Some(value.span()), format!("`log`: {why}"));
                    }
                    text
                }
                None => crate::logging::DEFAULT_FILTER.to_owned(),
            },
        };
        let log_format = match &raw.log_format {
            None => crate::logging::LogFormat::default(),
            Some(value) => match self.expand(value).as_deref().map(crate::logging::LogFormat::parse) {
                Some(Some(format)) => format,
                Some(None) => {
                    self.problem(Some(value.span()), "`log_format` must be \"text\" or \"json\"");
                    crate::logging::LogFormat::default()
                }
                None => crate::logging::LogFormat::default(),
            },
        };
        Server {
            log,
            log_format,
            public_url,
            trusted_proxies,
            node,
            listen,
            data_dir,
            workers,
            max_body,
            shutdown_grace,
            max_connections,
            header_timeout,
            body_timeout,
            max_header,
            api_token,
        }
    }

    /// IP networks or addresses, each checked (`where_` names the key in problems).
    fn networks(&mut self, raw: &[Spanned<String>], where_: &str) -> Vec<crate::network::Network> {
        raw.iter()
            .filter_map(|text| match text.get_ref().parse() {
                Ok(network) => Some(network),
                Err(why) => {
                    self.problem(Some(text.span()), format!("{where_}: {why}"));
                    None
                }
            })
            .collect()
    }

    fn retention(&mut self, raw: raw::RawRetention) -> crate::queue::Retention {
        let default = crate::queue::Retention::default();
        let mut count = |value: Option<Spanned<i64>>, key: &str, default: usize| match value {
            None => default,
            Some(n) if *n.get_ref() >= 0 => *n.get_ref() as usize,
            Some(n) => {
                self.problem(Some(n.span()), format!("`{key}` cannot be negative"));
                default
            }
        };
        let keep_jobs = count(raw.keep_jobs, "keep_jobs", default.keep_jobs);
        let keep_deliveries = count(raw.keep_deliveries, "keep_deliveries", default.keep_deliveries);
        let max_age = raw.max_age.as_ref().and_then(|d| self.duration(d)).unwrap_or(default.max_age);
        crate::queue::Retention { max_age, keep_jobs, keep_deliveries }
    }

    /// `[kv.NAME]` tables: each store's bounds (the defaults where a key is left out),
    /// with where its table is written.
    fn kv_stores(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<raw::RawKv>>,
    ) -> BTreeMap<String, (Range<usize>, KvLimits)> {
        let defaults = KvLimits::default();
        let mut stores = BTreeMap::new();
        for (name, table) in raw {
            let at = format!("[kv.{}]", name.get_ref());
            if !valid_name(name.get_ref()) {
                self.problem(
                    Some(name.span()),
                    format!("{at}: a key-value store name must be letters, digits, `-` and `_`"),
                );
            }
            let table = table.into_inner();
            let max_entries = match table.max_entries {
                None => defaults.max_entries,
                Some(n) if (1..=MAX_KV_ENTRIES).contains(n.get_ref()) => *n.get_ref() as u64,
                Some(n) => {
                    self.problem(
                        Some(n.span()),
                        format!("{at}: `max_entries` must be between 1 and {MAX_KV_ENTRIES} (got {})", n.get_ref()),
                    );
                    defaults.max_entries
                }
            };
            let max_bytes = table.max_bytes.as_ref().map_or(Some(defaults.max_bytes), |size| self.size(size));
            let max_value = table.max_value.as_ref().map_or(Some(defaults.max_value), |size| self.size(size));
            let value_span = table.max_value.as_ref().map(Spanned::span);
            // A size that did not parse is reported already; the table still counts as written.
            if let (Some(max_bytes), Some(max_value)) = (max_bytes, max_value) {
                if max_value > MAX_KV_VALUE {
                    self.problem(
                        value_span.or_else(|| Some(name.span())),
                        format!(
                            "{at}: `max_value` is {}, more than the {} one value may be",
                            format_size(max_value),
                            format_size(MAX_KV_VALUE)
                        ),
                    );
                } else if max_value > max_bytes {
                    let span = table.max_bytes.as_ref().map(Spanned::span).or(value_span).unwrap_or(name.span());
                    self.problem(
                        Some(span),
                        format!(
                            "{at}: `max_bytes` ({}) is smaller than `max_value` ({}): no value that large would fit",
                            format_size(max_bytes),
                            format_size(max_value)
                        ),
                    );
                }
            }
            let (max_bytes, max_value) =
                (max_bytes.unwrap_or(defaults.max_bytes), max_value.unwrap_or(defaults.max_value));
            stores.insert(name.get_ref().clone(), (name.span(), KvLimits { max_entries, max_bytes, max_value }));
        }
        stores
    }

    /// The stores some plugin is granted, with their bounds. A `[kv.NAME]` no plugin is
    /// granted is a problem: most likely its name or the grant's is misspelt, and the
    /// store the plugin writes would run with the defaults instead of the bounds written.
    fn granted_stores(
        &mut self,
        stores: BTreeMap<String, (Range<usize>, KvLimits)>,
        plugins: &BTreeMap<String, PluginSpec>,
    ) -> BTreeMap<String, KvLimits> {
        let granted: BTreeMap<String, KvLimits> = plugins
            .values()
            .filter_map(|plugin| plugin.grant.kv.as_ref())
            .map(|kv| (kv.name.clone(), kv.limits))
            .collect();
        for (name, (span, _)) in stores {
            if !granted.contains_key(&name) {
                let hint = hint(&name, &granted.keys().map(String::as_str).collect::<Vec<_>>());
                self.problem(
                    Some(span),
                    format!(
                        "[kv.{name}]: no plugin is granted this key-value store{hint} (grant it with \
                         `grants = {{ kv = \"{name}\" }}`, or remove the table)"
                    ),
                );
            }
        }
        granted
    }

    fn size(&mut self, value: &Spanned<SizeValue>) -> Option<u64> {
        let parsed = match value.get_ref() {
            SizeValue::Bytes(n) => u64::try_from(*n).map_err(|_| "a size cannot be negative".to_owned()),
            SizeValue::Text(text) => units::parse_size(text),
        };
        parsed.map_err(|err| self.problem(Some(value.span()), err)).ok()
    }

    fn duration(&mut self, value: &Spanned<DurationValue>) -> Option<Duration> {
        let parsed = match value.get_ref() {
            DurationValue::Seconds(n) => {
                u64::try_from(*n).map(Duration::from_secs).map_err(|_| "a duration cannot be negative".to_owned())
            }
            DurationValue::Text(text) => units::parse_duration(text),
        };
        parsed.map_err(|err| self.problem(Some(value.span()), err)).ok()
    }

    fn source(&mut self, name: Spanned<String>, raw: Spanned<RawSource>, base: &Path) -> Option<Source> {
        let span = raw.span();
        let raw = raw.into_inner();
        let source_name = name.get_ref().clone();
        if !valid_name(&source_name) {
            self.problem(
                Some(name.span()),
                format!("source name \"{source_name}\" must be letters, digits, `-` and `_`"),
            );
        }
        if matches!(source_name.as_str(), "manual" | "schedule") {
            // The source name of the events gitauto makes itself: a forge's under it would
            // be taken for (and deduplicated against) those.
            self.problem(
                Some(name.span()),
                format!("source name \"{source_name}\" is reserved for gitauto's own {source_name} events"),
            );
        }
        let mut options = forge::Options {
            legacy_sha1: raw.legacy_sha1.as_ref().map(|v| *v.get_ref()),
            replay_window: raw.replay_window.as_ref().and_then(|v| self.duration(v)),
            signature_header: raw.signature_header.as_ref().map(|v| v.get_ref().clone()),
            delivery_header: raw.delivery_header.as_ref().map(|v| v.get_ref().clone()),
            event_header: raw.event_header.as_ref().map(|v| v.get_ref().clone()),
            kind: raw.kind.as_ref().map(|v| v.get_ref().clone()),
            fields: raw.fields.as_ref().map(|v| v.get_ref().clone()),
        };
        let forge_name = raw.forge.get_ref();
        let dialect = match forge::configure(forge_name, &mut options) {
            Ok(dialect) => Some(dialect),
            Err(err) => {
                self.problem(Some(raw.forge.span()), format!("source \"{source_name}\": {err}"));
                None
            }
        };
        if dialect.is_some() {
            for option in options.leftover() {
                self.problem(
                    Some(span.clone()),
                    format!("source \"{source_name}\": `{option}` does not apply to forge `{forge_name}`"),
                );
            }
        }
        let mut secrets = Vec::new();
        for reference in raw.secret.iter().chain(&raw.secrets) {
            if let Some(text) = self.expand(reference) {
                match secret::resolve(&text, base) {
                    Ok(secret) => secrets.push(secret),
                    Err(err) => self.problem(Some(reference.span()), format!("source \"{source_name}\": {err}")),
                }
            }
        }
        let no_secret_given = raw.secret.is_none() && raw.secrets.is_empty();
        if no_secret_given && !raw.allow_unsigned {
            self.problem(
                Some(span.clone()),
                format!(
                    "source \"{source_name}\" has no `secret`: set one (\"${{ENV_VAR}}\", \"file:PATH\" or \"generate:PATH\"), \
                     or set `allow_unsigned = true` to accept anyone's deliveries"
                ),
            );
        }
        if !no_secret_given && raw.allow_unsigned {
            self.problem(
                Some(span.clone()),
                format!("source \"{source_name}\" sets both a secret and `allow_unsigned`; remove one"),
            );
        }
        let catch_up = raw.catch_up.and_then(|catch_up| self.catch_up(&source_name, forge_name, catch_up, base));
        let poll = raw.poll.and_then(|poll| self.poll(&source_name, poll));
        let has_app = raw.app.is_some();
        if has_app && raw.allow_unsigned {
            // An unsigned delivery names any repository and installation it likes; the
            // app would mint tokens for them.
            self.problem(
                Some(span),
                format!(
                    "source \"{source_name}\" has an `app` and `allow_unsigned`: anyone could make it mint \
                     installation tokens; set the app's webhook secret instead"
                ),
            );
        }
        let app = raw.app.and_then(|app| self.app(&source_name, forge_name, app, base));
        let api = match raw.api {
            Some(api) => self.api(&source_name, forge_name, api, base, has_app),
            // An app needs no `api` table on github.com.
            None => app.as_ref().and_then(|_| {
                let url = api::default_url(forge_name)?.to_owned();
                Some(api::Api { url, token: None, scheme: api::Scheme::Bearer })
            }),
        };
        let dialect = dialect?;
        Some(Source {
            name: source_name,
            forge: dialect.forge(),
            dialect,
            secrets,
            allow_unsigned: raw.allow_unsigned,
            catch_up,
            poll,
            api,
            app,
        })
    }

    fn plugin(
        &mut self,
        name: Spanned<String>,
        raw: Spanned<RawPlugin>,
        base: &Path,
        remote: &remote::RemoteContext,
        stores: &BTreeMap<String, (Range<usize>, KvLimits)>,
    ) -> Option<PluginSpec> {
        let raw = raw.into_inner();
        let plugin_name = name.get_ref().clone();
        if !valid_name(&plugin_name) {
            self.problem(
                Some(name.span()),
                format!("plugin name \"{plugin_name}\" must be letters, digits, `-` and `_`"),
            );
        }
        let wasm = self.expand(&raw.wasm).and_then(|wasm| match wasm.strip_prefix("builtin:") {
            Some(builtin) if crate::builtin::get(builtin).is_some() => Some(WasmSource::Builtin(builtin.to_owned())),
            Some(builtin) => {
                self.problem(
                    Some(raw.wasm.span()),
                    format!(
                        "no built-in plugin `{builtin}` (built in: {})",
                        crate::builtin::names().collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
            None if remote::is_remote(&wasm) => {
                self.remote_source(&plugin_name, &wasm, &raw.wasm, raw.sha256.as_ref(), remote)
            }
            None => {
                let file = base.join(&wasm);
                if !file.is_file() {
                    self.problem(Some(raw.wasm.span()), format!("plugin file {} does not exist", file.display()));
                }
                Some(WasmSource::File(file))
            }
        });
        if let Some(sha256) = &raw.sha256
            && !matches!(&wasm, Some(WasmSource::Remote(remote)) if matches!(remote.location, crate::plugin_source::Location::Url { .. }))
            && wasm.is_some()
        {
            self.problem(
                Some(sha256.span()),
                format!(
                    "plugin `{plugin_name}`: `sha256` pins a component fetched from an https:// URL; an oci:// \
                     reference carries its pin (`@sha256:...`), and a file or built-in plugin is taken as it is"
                ),
            );
        }
        let verify = raw.verify.and_then(|verify| self.verify(&plugin_name, verify, wasm.as_ref(), base));
        let grant = self.grant(&plugin_name, raw.grants, base, stores);
        let defaults = Limits::default();
        let limits = Limits {
            memory: raw.limits.memory.map_or(defaults.memory, |m| self.size(&m).unwrap_or(defaults.memory)),
            timeout: raw.limits.timeout.map_or(defaults.timeout, |t| self.duration(&t).unwrap_or(defaults.timeout)),
        };
        let settings = match raw.with {
            Some(table) => match self.settings(table.get_ref(), table.span(), &format!("plugin `{plugin_name}`")) {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            None => serde_json::Map::new(),
        };
        Some(PluginSpec { name: plugin_name, wasm: wasm?, verify, grant, limits, settings })
    }

    fn host_pattern(&mut self, plugin: &str, text: &Spanned<String>) -> Option<HostPattern> {
        let expanded = self.expand(text)?;
        HostPattern::parse(&expanded)
            .map_err(|err| self.problem(Some(text.span()), format!("plugin `{plugin}`: {err}")))
            .ok()
    }

    /// A granted host's credential, resolved: a header's whole value, or SigV4 keys.
    fn credential(
        &mut self,
        plugin: &str,
        pattern: &HostPattern,
        table: raw::RawHostTable,
        span: Range<usize>,
        base: &Path,
    ) -> Option<HostCredential> {
        if table.permissions.is_some()
            && !matches!(&table.credential, Some(raw::RawCredential::Reference(kind)) if kind == GITHUB_APP)
        {
            self.problem(
                Some(span.clone()),
                format!(
                    "plugin `{plugin}`, host {pattern}: `permissions` applies only to `credential = \"github-app\"`"
                ),
            );
        }
        let kind = match table.credential? {
            raw::RawCredential::Reference(kind) if kind == GITHUB_APP => {
                if table.scheme.is_some() || table.header.is_some() {
                    self.problem(
                        Some(span.clone()),
                        format!(
                            "plugin `{plugin}`, host {pattern}: `scheme` and `header` do not apply to a github-app \
                             credential (the host sends the token as GitHub wants it)"
                        ),
                    );
                }
                self.github_app_credential(plugin, pattern, table.permissions, &span)?
            }
            raw::RawCredential::Reference(reference) => {
                let secret = self.credential_secret(plugin, pattern, None, reference, &span, base)?;
                self.header_credential(plugin, pattern, table.header, table.scheme, &secret, span)?
            }
            raw::RawCredential::Table(raw::RawCredentialTable { sigv4: Some(sigv4) }) => {
                if table.scheme.is_some() || table.header.is_some() {
                    self.problem(
                        Some(span.clone()),
                        format!(
                            "plugin `{plugin}`, host {pattern}: `scheme` and `header` do not apply to a sigv4 \
                             credential (the host signs each request and sets `authorization` itself)"
                        ),
                    );
                }
                Credential::SigV4(self.sigv4(plugin, pattern, sigv4, &span, base)?)
            }
            raw::RawCredential::Table(raw::RawCredentialTable { sigv4: None }) => {
                self.problem(
                    Some(span),
                    format!(
                        "plugin `{plugin}`, host {pattern}: a credential table names its kind: \
                         `credential = {{ sigv4 = {{ access_key = ..., secret_key = ..., region = ... }} }}`"
                    ),
                );
                return None;
            }
        };
        Some(HostCredential { pattern: pattern.clone(), kind })
    }

    /// A `github-app` credential: the permissions its tokens get, each a permission GitHub
    /// grants installation tokens at a level it has.
    fn github_app_credential(
        &mut self,
        plugin: &str,
        pattern: &HostPattern,
        permissions: Option<std::collections::BTreeMap<String, String>>,
        span: &Range<usize>,
    ) -> Option<Credential> {
        let at = format!("plugin `{plugin}`, host {pattern}");
        let Some(permissions) = permissions.filter(|permissions| !permissions.is_empty()) else {
            self.problem(
                Some(span.clone()),
                format!(
                    "{at}: a github-app credential needs `permissions`, what its tokens may do \
                     (e.g. `permissions = {{ contents = \"read\", pull_requests = \"write\" }}`)"
                ),
            );
            return None;
        };
        let mut valid = true;
        for (name, level) in &permissions {
            match GITHUB_PERMISSIONS.iter().find(|(known, _)| known == name) {
                None => {
                    valid = false;
                    let names: Vec<&str> = GITHUB_PERMISSIONS.iter().map(|(known, _)| *known).collect();
                    let hint = hint(name, &names);
                    self.problem(
                        Some(span.clone()),
                        format!("{at}: `{name}` is not a GitHub App repository permission{hint}"),
                    );
                }
                Some((_, levels)) if !levels.contains(&level.as_str()) => {
                    valid = false;
                    self.problem(
                        Some(span.clone()),
                        format!("{at}: permission `{name}` is `{level}`; GitHub allows {}", levels.join(" or ")),
                    );
                }
                Some(_) => {}
            }
        }
        valid.then(|| Credential::GitHubApp { permissions: permissions.into_iter().collect() })
    }

    /// One secret of a host's credential, resolved like every secret in the config.
    fn credential_secret(
        &mut self,
        plugin: &str,
        pattern: &HostPattern,
        key: Option<&str>,
        reference: String,
        span: &Range<usize>,
        base: &Path,
    ) -> Option<Secret> {
        // A credential's span is its whole table: the message names the key.
        let at =
            format!("plugin `{plugin}`, host {pattern}{}", key.map(|key| format!(", `{key}`")).unwrap_or_default());
        let text =
            env::expand_env(&reference).map_err(|err| self.problem(Some(span.clone()), format!("{at}: {err}"))).ok()?;
        secret::resolve(&text, base).map_err(|err| self.problem(Some(span.clone()), format!("{at}: {err}"))).ok()
    }

    /// A header credential: the header's name and its whole value.
    fn header_credential(
        &mut self,
        plugin: &str,
        pattern: &HostPattern,
        header: Option<String>,
        scheme: Option<String>,
        secret: &Secret,
        span: Range<usize>,
    ) -> Option<Credential> {
        let header = header.unwrap_or_else(|| "authorization".into()).to_ascii_lowercase();
        if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            self.problem(Some(span), format!("plugin `{plugin}`, host {pattern}: `{header}` is not a header name"));
            return None;
        }
        let value = match (header.as_str(), scheme.as_deref()) {
            ("authorization", scheme) => {
                let scheme = scheme.unwrap_or("Bearer");
                if scheme.eq_ignore_ascii_case("basic") {
                    use base64::Engine as _;
                    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(secret.expose()))
                } else {
                    format!("{scheme} {}", secret.expose())
                }
            }
            (_, None) => secret.expose().to_owned(),
            (_, Some(_)) => {
                self.problem(
                    Some(span),
                    format!("plugin `{plugin}`, host {pattern}: `scheme` applies only to the Authorization header"),
                );
                return None;
            }
        };
        Some(Credential::Header { name: header, value: Secret::new(value) })
    }

    /// SigV4 keys: every value resolved as a secret; the ones that go into the signed
    /// request's text checked so that no value can change its structure.
    fn sigv4(
        &mut self,
        plugin: &str,
        pattern: &HostPattern,
        raw: raw::RawSigV4,
        span: &Range<usize>,
        base: &Path,
    ) -> Option<SigV4Key> {
        let at = format!("plugin `{plugin}`, host {pattern}");
        let missing: Vec<String> =
            [("access_key", &raw.access_key), ("secret_key", &raw.secret_key), ("region", &raw.region)]
                .iter()
                .filter(|(_, value)| value.is_none())
                .map(|(key, _)| format!("`{key}`"))
                .collect();
        if !missing.is_empty() {
            self.problem(Some(span.clone()), format!("{at}: the sigv4 credential needs {}", missing.join(", ")));
            return None;
        }
        let mut resolve = |key: &str, value: Option<String>| {
            value.map(|value| {
                let key = format!("sigv4.{key}");
                if matches!(key.as_str(), "sigv4.region" | "sigv4.service")
                    && env::expand_env(&value).is_ok_and(|text| text.is_empty())
                {
                    // Not secrets, so not "the secret is empty".
                    self.problem(Some(span.clone()), format!("{at}: `{key}` is empty"));
                    return None;
                }
                self.credential_secret(plugin, pattern, Some(&key), value, span, base)
            })
        };
        let access_key = resolve("access_key", raw.access_key).flatten();
        let secret_key = resolve("secret_key", raw.secret_key).flatten();
        let region = resolve("region", raw.region).flatten();
        let service = resolve("service", raw.service).unwrap_or_else(|| Some(Secret::new("s3")));
        let session_token = resolve("session_token", raw.session_token);
        let (access_key, secret_key, region, service) = (access_key?, secret_key?, region?, service?);
        // Given but unresolved: the problem is recorded, and no credential is made.
        let session_token = match session_token {
            Some(None) => return None,
            given => given.flatten(),
        };
        // The access key, the scope and the token are written into headers: a `/`, `,`,
        // space or line break there would change what the header says.
        fn scope_part(b: u8) -> bool {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
        }
        fn key_part(b: u8) -> bool {
            b.is_ascii_graphic() && !matches!(b, b'/' | b',' | b'=')
        }
        let checks = [
            (
                "access_key",
                Some(&access_key),
                key_part as fn(u8) -> bool,
                "printable ASCII without spaces, `/`, `,` or `=`",
            ),
            ("region", Some(&region), scope_part, "letters, digits, `-`, `_` and `.`"),
            ("service", Some(&service), scope_part, "letters, digits, `-`, `_` and `.`"),
            ("session_token", session_token.as_ref(), |b: u8| b.is_ascii_graphic(), "printable ASCII without spaces"),
        ];
        for (key, value, allowed, described) in checks {
            if value.is_some_and(|value| !value.expose().bytes().all(allowed)) {
                // The value is not shown: it may be a secret.
                self.problem(Some(span.clone()), format!("{at}: `sigv4.{key}` must be {described}"));
                return None;
            }
        }
        Some(SigV4Key {
            access_key,
            secret_key,
            region: region.expose().to_owned(),
            service: service.expose().to_owned(),
            session_token,
        })
    }

    fn grant(
        &mut self,
        plugin: &str,
        raw: raw::RawGrants,
        base: &Path,
        stores: &BTreeMap<String, (Range<usize>, KvLimits)>,
    ) -> Grant {
        let mut grant = Grant::default();
        if let Some(name) = &raw.kv {
            if valid_name(name.get_ref()) {
                let limits = stores.get(name.get_ref()).map(|(_, limits)| *limits).unwrap_or_default();
                grant.kv = Some(KvGrant { name: name.get_ref().clone(), limits });
            } else {
                self.problem(
                    Some(name.span()),
                    format!(
                        "plugin `{plugin}`: key-value store name \"{}\" must be letters, digits, `-` and `_`",
                        name.get_ref()
                    ),
                );
            }
        }
        for dir in raw.dirs {
            let span = dir.span();
            let (path, access) = match dir.into_inner() {
                RawDir::Path(path) => (path, Access::Read),
                RawDir::Table(table) if table.write => (table.path, Access::Write),
                RawDir::Table(table) if table.git => (table.path, Access::Git),
                RawDir::Table(table) => (table.path, Access::Read),
            };
            let Some(path) = self.expand(&Spanned::new(span.clone(), path)) else { continue };
            if path.is_empty() {
                self.problem(Some(span), format!("plugin `{plugin}`: an empty directory grant"));
                continue;
            }
            let path = base.join(path);
            if !path.is_dir() {
                // Not fatal: the directory may be mounted later. Until then it grants nothing.
                tracing::warn!(plugin, dir = %path.display(), "granted directory does not exist (yet)");
            }
            if let Some(reached) = self.own_files.covered_by(&path) {
                self.problem(
                    Some(span.clone()),
                    format!(
                        "plugin `{plugin}`: the directory grant {} {reached}; grant a directory that neither \
                         contains nor lies inside the daemon's own files",
                        path.display()
                    ),
                );
                continue;
            }
            grant.dirs.push(DirGrant::new(std::path::absolute(&path).unwrap_or(path), access));
        }
        for host in raw.hosts {
            let span = host.span();
            match host.into_inner() {
                raw::RawHost::Pattern(text) => {
                    if let Some(pattern) = self.host_pattern(plugin, &Spanned::new(span, text)) {
                        grant.hosts.push(pattern);
                    }
                }
                raw::RawHost::Table(table) => {
                    let Some(pattern) = self.host_pattern(plugin, &Spanned::new(span.clone(), table.host.clone()))
                    else {
                        continue;
                    };
                    if grant.credentials.iter().any(|given| given.pattern == pattern) {
                        // Which of two credentials for one pattern is sent must not hang on
                        // the order they are listed in.
                        self.problem(
                            Some(span),
                            format!("plugin `{plugin}`: host {pattern} is given a credential twice; keep one"),
                        );
                        continue;
                    }
                    if let Some(credential) = self.credential(plugin, &pattern, table, span, base) {
                        grant.credentials.push(credential);
                    }
                    grant.hosts.push(pattern);
                }
            }
        }
        let path_var = std::env::var_os("PATH");
        for command in raw.commands {
            let span = command.span();
            let (program, env, network) = match command.into_inner() {
                raw::RawCommand::Program(program) => (program, Vec::new(), false),
                raw::RawCommand::Table(table) => (table.program, table.env, table.network),
            };
            let Some(text) = self.expand(&Spanned::new(span.clone(), program)) else { continue };
            let mut granted = match CommandGrant::new(&text, path_var.as_deref()) {
                Ok(granted) => granted,
                Err(err) => {
                    self.problem(Some(span), format!("plugin `{plugin}`: {err}"));
                    continue;
                }
            };
            for name in env {
                match CommandGrant::check_env_name(&name) {
                    Ok(()) => granted.env.push(name),
                    Err(err) => self.problem(Some(span.clone()), format!("plugin `{plugin}`, program `{text}`: {err}")),
                }
            }
            granted.network = network;
            grant.commands.push(granted);
        }
        grant
    }

    /// Checks that need the whole config.
    fn cross_check(&mut self, config: &Config) {
        // A grant whose path leads through a link that a plugin may replace would be
        // pinned wherever that plugin pointed it, at the next load.
        let changeable: Vec<(&str, &DirGrant)> = config
            .plugins
            .values()
            .flat_map(|plugin| plugin.grant.dirs.iter().map(move |dir| (plugin.name.as_str(), dir)))
            .filter(|(_, dir)| dir.access >= Access::Git)
            .collect();
        for plugin in config.plugins.values() {
            for dir in &plugin.grant.dirs {
                let Some(canonical) = dir.canonical() else { continue };
                if canonical == dir.path {
                    continue;
                }
                let inside = changeable.iter().find(|(_, other)| {
                    other.path != dir.path
                        && (dir.path.starts_with(&other.path)
                            || other.canonical().is_some_and(|root| dir.path.starts_with(root)))
                });
                if let Some((owner, other)) = inside {
                    self.problem(
                        None,
                        format!(
                            "plugin `{}`: the directory grant {} leads through a symbolic link inside {}, which plugin \
                             `{owner}` may change; grant the directory it leads to ({}) instead",
                            plugin.name,
                            dir.path.display(),
                            other.describe(),
                            canonical.display()
                        ),
                    );
                }
            }
        }
        // A component another plugin may change would run with its plugin's grants once
        // the config is loaded again.
        let components: Vec<(&str, &Path, PathBuf)> = config
            .plugins
            .values()
            .filter_map(|other| match &other.wasm {
                WasmSource::File(wasm) => Some((other.name.as_str(), wasm.as_path(), own::resolved(wasm))),
                WasmSource::Builtin(_) | WasmSource::Remote(_) => None,
            })
            .collect();
        for plugin in config.plugins.values() {
            for dir in plugin.grant.dirs.iter().filter(|dir| dir.access >= Access::Git) {
                let granted = own::resolved(&dir.path);
                for (other, wasm, resolved) in &components {
                    if resolved.starts_with(&granted) {
                        self.problem(
                            None,
                            format!(
                                "plugin `{}`: the directory grant {} may change the component of plugin `{}` ({}); \
                                 keep components outside directories plugins may change",
                                plugin.name,
                                dir.describe(),
                                other,
                                wasm.display()
                            ),
                        );
                    }
                }
            }
        }
        for rule in &config.rules {
            for source in &rule.sources {
                if !config.sources.contains_key(source) {
                    self.problem(
                        None,
                        format!("rule \"{}\": source `{source}` is not defined in [sources]", rule.name),
                    );
                }
            }
        }
        self.gate_sources(config);
        self.github_app_sources(config);
    }

    /// A rule whose plugin has a `github-app` credential, when no source the rule can
    /// match has an `app`: no job of it could ever get a token.
    fn github_app_sources(&mut self, config: &Config) {
        fn plugins<'r>(steps: &'r [Step], out: &mut Vec<&'r str>) {
            for step in steps {
                out.push(&step.plugin);
                let handlers = &step.handlers;
                for list in [&handlers.on_success, &handlers.on_failure, &handlers.on_error] {
                    plugins(list, out);
                }
            }
        }
        for rule in &config.rules {
            let mut used = Vec::new();
            plugins(&rule.steps, &mut used);
            for list in [&rule.handlers.on_success, &rule.handlers.on_failure, &rule.handlers.on_error] {
                plugins(list, &mut used);
            }
            let matched: Vec<&Source> = config
                .sources
                .values()
                .filter(|source| rule.sources.is_empty() || rule.sources.contains(&source.name))
                .filter(|source| rule.forges.is_empty() || rule.forges.iter().any(|forge| forge == source.forge))
                .collect();
            if matched.iter().any(|source| source.app.is_some()) {
                continue;
            }
            used.sort_unstable();
            used.dedup();
            for name in used {
                let Some(plugin) = config.plugins.get(name) else { continue };
                let app_credential = plugin
                    .grant
                    .credentials
                    .iter()
                    .find(|credential| matches!(credential.kind, Credential::GitHubApp { .. }));
                if let Some(credential) = app_credential {
                    let names: Vec<&str> = matched.iter().map(|source| source.name.as_str()).collect();
                    let listed = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                    self.problem(
                        None,
                        format!(
                            "rule \"{}\": plugin `{name}` has a github-app credential for {}, and no source the rule \
                             listens to has an `app` to mint its tokens (sources: {listed})",
                            rule.name, credential.pattern
                        ),
                    );
                }
            }
        }
    }
}

/// Converts a `with` table to JSON, expanding `${VAR}` in strings.
fn toml_to_json(value: &toml::Value, failures: &mut Vec<String>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(text) => match env::expand_env(text) {
            Ok(text) => J::String(text),
            Err(err) => {
                failures.push(err.to_string());
                J::Null
            }
        },
        toml::Value::Integer(n) => J::from(*n),
        toml::Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(dt) => J::String(dt.to_string()),
        toml::Value::Array(items) => J::Array(items.iter().map(|item| toml_to_json(item, failures)).collect()),
        toml::Value::Table(table) => {
            J::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v, failures))).collect())
        }
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" with the likely intended key.
fn with_key_hint(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_owned() };
    let Some((key, rest)) = rest.split_once('`') else { return message.to_owned() };
    // "expected one of `a`, `b`", "expected `a` or `b`", "expected `a`".
    let expected = rest.split_once("expected ").map_or("", |(_, list)| list);
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = rules::hint(key, &valid);
    let listed = if valid.is_empty() { String::new() } else { format!(" (valid keys here: {})", valid.join(", ")) };
    format!("unknown key `{key}`{hint}{listed}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("gitauto.toml"), text)
    }

    const MINIMAL: &str = r#"
[sources.github]
forge = "github"
secret = "s3cret"

[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = { dirs = [{ path = "/srv/repos", git = true }] }

[[rules]]
name = "keep checkouts current"
on = "push"
repo = "acme/*"
branch = ["main", "master"]
steps = [{ plugin = "fetch-update", with = { repodir = "/srv/repos" } }]
"#;

    #[test]
    fn command_rules_read_their_patterns_and_do_not_coalesce_unless_asked() {
        let text = format!(
            "{MINIMAL}\n[[rules]]\nname = \"deploy\"\non = \"comment\"\ncommand = [\"/deploy *\", \"!/deploy prod*\"]\n\
             steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n\
             [[rules]]\nname = \"merged\"\non = \"comment\"\ncommand = \"/merge\"\ncoalesce = true\n\
             steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n"
        );
        let config = parse(&text).unwrap();
        let deploy = config.rule("deploy").unwrap();
        assert!(deploy.command.matches("/deploy staging") && !deploy.command.matches("/deploy production"));
        // Each command is its own request: `/deploy a` then `/deploy b` run twice.
        assert_eq!(deploy.coalesce, Coalesce::Off);
        assert_eq!(config.rule("merged").unwrap().coalesce, Coalesce::Default);
        assert!(config.rule("keep checkouts current").unwrap().command.is_empty());
    }

    #[test]
    fn schedule_rules_read_their_clock_and_one_target_per_repository_and_branch() {
        let text = format!(
            "{MINIMAL}\n[[rules]]\nname = \"nightly\"\non = \"schedule\"\ncron = \"30 3 * * *\"\n\
             timezone = \"Europe/Paris\"\nmissed = \"all\"\nrepo = [\"acme/site\", \"acme/docs\", \"acme/site\"]\n\
             branch = [\"main\", \"stable\"]\nsteps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n\
             [[rules]]\nname = \"plain\"\non = \"schedule\"\ncron = \"@hourly\"\n\
             steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n"
        );
        let config = parse(&text).unwrap();
        let nightly = config.rule("nightly").unwrap();
        let schedule = nightly.schedule.as_ref().unwrap();
        assert_eq!((schedule.cron.as_str(), schedule.timezone_name.as_str()), ("30 3 * * *", "Europe/Paris"));
        assert_eq!(schedule.missed, Missed::All);
        let pair = |repo: &str, branch: &str| (Some(repo.to_owned()), Some(branch.to_owned()));
        assert_eq!(
            schedule.targets,
            [
                pair("acme/site", "main"),
                pair("acme/site", "stable"),
                pair("acme/docs", "main"),
                pair("acme/docs", "stable")
            ]
        );
        // Each tick is its own run: no coalescing unless asked.
        assert_eq!(nightly.coalesce, Coalesce::Off);
        let plain = config.rule("plain").unwrap().schedule.as_ref().unwrap();
        assert_eq!((plain.timezone_name.as_str(), plain.missed), ("UTC", Missed::Once));
        assert_eq!(plain.targets, [(None, None)]);
        assert!(config.rule("keep checkouts current").unwrap().schedule.is_none());
    }

    #[test]
    fn steps_inherit_the_rules_checkout_unless_they_turn_it_off() {
        let steps = |rule: &Rule| -> Vec<(String, Option<Checkout>)> {
            let mut all: Vec<&Step> = rule.steps.iter().collect();
            for step in &rule.steps {
                all.extend(&step.handlers.on_failure);
            }
            all.extend(&rule.handlers.on_error);
            all.into_iter().map(|step| (step.name.clone(), step.checkout)).collect()
        };
        let text = format!(
            "{MINIMAL}\n[[rules]]\nname = \"merged\"\non = \"pull_request\"\ncheckout = \"merge\"\ncheckout_depth = 0\n\
             [[rules.steps]]\nname = \"one\"\nplugin = \"fetch-update\"\nwith = {{ repodir = \"/srv/repos\" }}\n\
             [[rules.steps.on_failure]]\nname = \"tell\"\nplugin = \"fetch-update\"\ncheckout = false\nwith = {{ repodir = \"/srv/repos\" }}\n\
             [[rules.on_error]]\nname = \"after\"\nplugin = \"fetch-update\"\nwith = {{ repodir = \"/srv/repos\" }}\n\
             [[rules]]\nname = \"one step\"\non = \"push\"\n\
             [[rules.steps]]\nname = \"plain\"\nplugin = \"fetch-update\"\nwith = {{ repodir = \"/srv/repos\" }}\n\
             [[rules.steps]]\nname = \"deep\"\nplugin = \"fetch-update\"\ncheckout = true\ncheckout_depth = 50\nwith = {{ repodir = \"/srv/repos\" }}\n\
             [[rules]]\nname = \"shallow\"\non = \"push\"\n\
             steps = [{{ plugin = \"fetch-update\", checkout = true, with = {{ repodir = \"/srv/repos\" }} }}]\n"
        );
        let config = parse(&text).unwrap();
        let merge = Some(Checkout { mode: CheckoutMode::Merge, depth: 0 });
        let merged = config.rule("merged").unwrap();
        assert_eq!(
            steps(merged),
            [("one".to_owned(), merge), ("tell".to_owned(), None), ("after".to_owned(), merge)],
            "handlers inherit the rule's checkout too"
        );
        assert_eq!(merged.checkout(), merge);
        let one = config.rule("one step").unwrap();
        let deep = Some(Checkout { mode: CheckoutMode::Head, depth: 50 });
        assert_eq!(steps(one), [("plain".to_owned(), None), ("deep".to_owned(), deep)]);
        assert_eq!(one.checkout(), deep, "a rule's checkout is the one its steps ask for");
        let shallow = config.rule("shallow").unwrap();
        assert_eq!(shallow.checkout(), Some(Checkout { mode: CheckoutMode::Head, depth: 1 }), "shallow by default");
        assert_eq!(config.rule("keep checkouts current").unwrap().checkout(), None);
    }

    #[test]
    fn checkout_keys_are_checked() {
        let rule = |keys: &str, step: &str| {
            format!(
                "{MINIMAL}\n[[rules]]\nname = \"c\"\non = \"push\"\n{keys}\n\
                 steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }}{step} }}, \
                 {{ name = \"two\", plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n"
            )
        };
        let cases = [
            (rule("checkout = 1", ""), "gitauto.toml:20:12: `checkout` is true, false, or \"merge\""),
            (rule("checkout = \"squash\"", ""), "rule \"c\": `checkout` is true, false or \"merge\", not \"squash\""),
            (rule("checkout = true\ncheckout_depth = -3", ""), "`checkout_depth` is a number of commits from 1 to"),
            (
                rule("checkout = true", ", checkout_depth = 3000000000"),
                "rule \"c\", step 1: `checkout_depth` is a number",
            ),
            (rule("", ", checkout_depth = 3"), "rule \"c\", step 1: `checkout_depth` needs a checkout"),
            (rule("checkout_depth = 3", ""), "rule \"c\": `checkout_depth` has no effect: no step or handler"),
            (
                rule("checkout = true", ", checkout = \"merge\""),
                "rule \"c\", step 2: asks for `checkout = true, checkout_depth = 1`, but step 1 asks for \
                 `checkout = \"merge\", checkout_depth = 1`; a job has one checkout",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?} in:\n{err}");
        }
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.workers, 2);
        assert_eq!(config.server.data_dir, Path::new("./.gitauto"));
        assert_eq!(config.server.max_body, 25 << 20);
        let source = config.source("github").unwrap();
        assert_eq!(source.forge, "github");
        assert_eq!(source.secrets, [Secret::new("s3cret")]);
        let plugin = &config.plugins["fetch-update"];
        assert_eq!(plugin.wasm, WasmSource::Builtin("fetch-update".into()));
        assert_eq!(plugin.limits, Limits::default());
        assert_eq!(plugin.grant.dirs, [DirGrant::new("/srv/repos".into(), Access::Git)]);
        let rule = &config.rules[0];
        assert_eq!(rule.on, [EventSelector { kind: "push".into(), action: None }]);
        assert!(rule.branch.passes("master") && !rule.branch.passes("dev"));
        assert_eq!(rule.steps[0].name, "fetch-update");
        assert_eq!(rule.steps[0].settings, serde_json::json!({"repodir": "/srv/repos"}));
    }

    #[test]
    fn a_plugin_with_fills_in_what_each_step_leaves_out() {
        let text = MINIMAL.replace(
            "grants = { dirs = [{ path = \"/srv/repos\", git = true }] }\n",
            "grants = { dirs = [{ path = \"/srv/repos\", git = true }] }\n\
             with = { repodir = \"/srv/repos/other\", branch = \"{{ event.branch }}\" }\n",
        );
        let config = parse(&text).unwrap();
        let settings = &config.rules[0].steps[0].settings;
        assert_eq!(settings, &serde_json::json!({"repodir": "/srv/repos", "branch": "{{ event.branch }}"}));
        // The plugin's settings are checked in each step that gets them.
        let typo = text.replace("{{ event.branch }}", "{{ evnt.branch }}");
        let err = parse(&typo).unwrap_err().to_string();
        assert!(
            err.contains("rule \"keep checkouts current\", step 1: `with.branch`: unknown variable `evnt`"),
            "{err}"
        );
        let bare = text.replace("with = { repodir = \"/srv/repos\" }", "with = {}");
        let settings = &parse(&bare).unwrap().rules[0].steps[0].settings;
        assert_eq!(settings["repodir"], "/srv/repos/other");
    }

    #[test]
    fn flow_keys_are_read_and_default_to_no_limit_and_priority_zero() {
        let text = MINIMAL.replace("[[rules]]\n", "[[rules]]\nconcurrency = 2\npriority = -5\n");
        let rule = &parse(&text).unwrap().rules[0];
        assert_eq!((rule.concurrency, rule.priority), (Some(2), -5));
        let rule = &parse(MINIMAL).unwrap().rules[0];
        assert_eq!((rule.concurrency, rule.priority), (None, 0));
        for bad in ["0", "-1", "10001"] {
            let err = parse(&MINIMAL.replace("[[rules]]\n", &format!("[[rules]]\nconcurrency = {bad}\n"))).unwrap_err();
            let expected = format!(
                "gitauto.toml:11:15: rule \"keep checkouts current\": `concurrency` must be between 1 and 10000, not {bad}"
            );
            assert!(err.to_string().contains(&expected), "{err}");
        }
    }

    #[test]
    fn problems_point_at_the_line() {
        let cases: &[(&str, &str)] = &[
            ("[server]\nlisten = \"nowhere\"\n", "gitauto.toml:2:10: `listen` must be an address"),
            ("[server]\nworkers = 1025\n", "gitauto.toml:2:11: `workers` must be between 0 and 1024"),
            ("[server]\nlisten = 3\n", "gitauto.toml:2:10: invalid type: integer `3`, expected a string"),
            (
                "[server]\nlisen = \"x\"\n",
                "gitauto.toml:2:1: unknown key `lisen` in [server]; did you mean `listen`? (valid keys here: listen,",
            ),
            (
                "[sources.gh]\nforge = \"sourcehut\"\nsecret = \"x\"\n",
                "gitauto.toml:2:9: source \"gh\": unknown forge `sourcehut`",
            ),
            ("[sources.gh]\nforge = \"github\"\n", "gitauto.toml:1:1: source \"gh\" has no `secret`"),
            (
                "[sources.schedule]\nforge = \"github\"\nsecret = \"x\"\n",
                "gitauto.toml:1:10: source name \"schedule\" is reserved for gitauto's own schedule events",
            ),
            (
                "[sources.gh]\nforge = \"github\"\nsecret = \"${GITAUTO_TEST_SURELY_UNSET}\"\n",
                "gitauto.toml:3:10: environment variable `GITAUTO_TEST_SURELY_UNSET` is not set",
            ),
            ("[plugins.p]\nwasm = \"builtin:nope\"\n", "gitauto.toml:2:8: no built-in plugin `nope`"),
            ("[plugins.p]\nwasm = \"missing.wasm\"\n", "gitauto.toml:2:8: plugin file ./missing.wasm does not exist"),
            (
                "[plugins.p]\nwasm = \"builtin:fetch-update\"\nlimits = { memory = \"64 parsecs\" }\n",
                "gitauto.toml:3:21: unknown size unit `parsecs`",
            ),
            (
                "[plugins.p]\nwasm = \"builtin:fetch-update\"\ngrants = { hosts = [\"http://x\"] }\n",
                "gitauto.toml:3:21: plugin `p`: `http://x` is not a host",
            ),
            (
                "[[rules]]\nname = \"r\"\non = \"pushed\"\nsteps = []\n",
                "gitauto.toml:3:6: rule \"r\": unknown event kind `pushed`",
            ),
            (
                "[[rules]]\nname = \"r\"\non = \"push\"\nbranch = \"[oops\"\nsteps = []\n",
                "gitauto.toml:4:10: rule \"r\": bad `branch` pattern: `[` without a closing `]`",
            ),
            (
                "[[rules]]\nname = \"r\"\non = \"push\"\nsteps = [{ plugin = \"nope\" }]\n",
                "gitauto.toml:4:21: rule \"r\", step 1: plugin `nope` is not defined in [plugins] (defined: none)",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.problems().iter().any(|p| p.starts_with(want)), "want {want:?}\n got {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err =
            parse("[server]\nworkers = 1025\nlisten = \"x\"\n[[rules]]\nname = \"r\"\non = \"nope\"\nsteps = []\n")
                .unwrap_err();
        assert_eq!(err.problems().len(), 4, "{err}");
    }

    /// Issue 16: a plugin that may change another plugin's component would take over
    /// that plugin's grants at the next load.
    #[test]
    fn a_grant_over_another_plugins_component_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display();
        let text = format!(
            "[plugins.a]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{root}/shared\", git = true }}] }}\n\
             [plugins.b]\nwasm = \"{root}/shared/b.wasm\"\ngrants = {{ dirs = [\"{root}/shared\"] }}\n"
        );
        let err = Config::parse(&dir.path().join("gitauto.toml"), &text).unwrap_err();
        let problems = err.problems().join("\n");
        assert!(problems.contains("plugin `a`: the directory grant"), "{problems}");
        assert!(problems.contains("may change the component of plugin `b`"), "{problems}");
        assert!(!problems.contains("plugin `b`: the directory grant"), "a read grant changes nothing: {problems}");
    }

    /// Issue 16: a grant pinned through a link a plugin may have planted is refused.
    #[test]
    fn a_grant_through_a_link_in_a_changeable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", root.join("www/uploads")).unwrap();
        let r = root.display();
        let text = format!(
            "[plugins.site]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{r}/www\", write = true }}] }}\n\
             [plugins.uploads]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{r}/www/uploads\", write = true }}] }}\n"
        );
        let err = Config::parse(&root.join("gitauto.toml"), &text).unwrap_err();
        let problems = err.problems().join("\n");
        assert!(problems.contains(&format!("plugin `uploads`: the directory grant {r}/www/uploads leads through a symbolic link inside {r}/www (write), which plugin `site` may change")), "{problems}");
    }

    #[test]
    fn host_credentials_are_headers_or_sigv4_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s3-secret"), "wJalr-secret\n").unwrap();
        let text = r#"
[plugins.probe]
wasm = "builtin:fetch-update"
grants = { hosts = [
  { host = "api.example.com", credential = "t0ken", scheme = "token" },
  { host = "s3.example.com", credential = { sigv4 = { access_key = "AKIDEXAMPLE", secret_key = "file:s3-secret", region = "eu-west-1" } } },
  { host = "127.0.0.1:9000", credential = { sigv4 = { access_key = "minio", secret_key = "minio-secret", region = "garage", service = "execute-api", session_token = "t0k3n" } } },
] }
"#;
        let config = Config::parse(&dir.path().join("gitauto.toml"), text).unwrap();
        let grant = &config.plugins["probe"].grant;
        assert_eq!(grant.hosts.len(), 3);
        let kinds: Vec<&Credential> = grant.credentials.iter().map(|c| &c.kind).collect();
        assert_eq!(kinds[0], &Credential::Header { name: "authorization".into(), value: Secret::new("token t0ken") });
        let expected = SigV4Key {
            access_key: Secret::new("AKIDEXAMPLE"),
            secret_key: Secret::new("wJalr-secret"),
            region: "eu-west-1".into(),
            service: "s3".into(),
            session_token: None,
        };
        assert_eq!(kinds[1], &Credential::SigV4(expected));
        let Credential::SigV4(minio) = kinds[2] else { panic!("{:?}", kinds[2]) };
        assert_eq!((minio.region.as_str(), minio.service.as_str()), ("garage", "execute-api"));
        assert_eq!(minio.session_token, Some(Secret::new("t0k3n")));
        let shown = format!("{config:?}");
        for secret in ["t0ken", "wJalr-secret", "minio-secret", "t0k3n"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn key_value_stores_are_shared_by_name_with_their_bounds_or_the_defaults() {
        let text = r#"
[plugins.counter]
wasm = "builtin:fetch-update"
grants = { kv = "counters" }

[plugins.reader]
wasm = "builtin:fetch-update"
grants = { kv = "counters" }

[plugins.cache]
wasm = "builtin:fetch-update"
grants = { kv = "cache" }

[plugins.none]
wasm = "builtin:fetch-update"

[kv.counters]
max_entries = 100
max_bytes = "1MiB"
max_value = 4096
"#;
        let config = parse(text).unwrap();
        let counters = KvLimits { max_entries: 100, max_bytes: 1 << 20, max_value: 4096 };
        let granted = |plugin: &str| config.plugins[plugin].grant.kv.clone();
        assert_eq!(granted("counter"), Some(KvGrant { name: "counters".into(), limits: counters }));
        assert_eq!(granted("reader"), granted("counter"));
        assert_eq!(granted("cache"), Some(KvGrant { name: "cache".into(), limits: KvLimits::default() }));
        assert_eq!(granted("none"), None);
        assert_eq!(config.kv.keys().collect::<Vec<_>>(), ["cache", "counters"]);
    }

    /// A table a bound is written in but no plugin is granted would leave the store it
    /// was meant for on the defaults.
    #[test]
    fn a_kv_table_no_plugin_is_granted_is_refused_with_the_closest_name() {
        let text = "[plugins.p]\nwasm = \"builtin:fetch-update\"\ngrants = { kv = \"counters\" }\n\
                    [kv.counter]\nmax_entries = 5\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "gitauto.toml:4:5: [kv.counter]: no plugin is granted this key-value store; did you mean `counters`?"
            ),
            "{err}"
        );
    }

    #[test]
    fn one_host_pattern_takes_one_credential() {
        let text = r#"
[plugins.probe]
wasm = "builtin:fetch-update"
grants = { hosts = [
  { host = "S3.example.com", credential = "first" },
  { host = "s3.example.com", credential = { sigv4 = { access_key = "AKIDEXAMPLE", secret_key = "second", region = "eu-west-1" } } },
  { host = "s3.example.com:9000", credential = "another port" },
] }
"#;
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("host s3.example.com is given a credential twice; keep one"), "{err}");
        assert!(!err.contains("9000"), "a pattern with a port is another pattern: {err}");
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let config = parse(MINIMAL).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
