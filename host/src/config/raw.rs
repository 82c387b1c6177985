//! `gitauto.toml` exactly as written: serde structs that keep each value's position so
//! that validation (in `config.rs`) can point at the line. Nothing here checks meaning.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub sources: BTreeMap<Spanned<String>, Spanned<RawSource>>,
    #[serde(default)]
    pub registries: BTreeMap<Spanned<String>, Spanned<RawRegistry>>,
    #[serde(default)]
    pub plugins: BTreeMap<Spanned<String>, Spanned<RawPlugin>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub compat: RawCompat,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// `[kv.NAME]`: the bounds of the key-value stores plugins are granted.
    #[serde(default)]
    pub kv: BTreeMap<Spanned<String>, Spanned<RawKv>>,
}

/// `[kv.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKv {
    pub max_entries: Option<Spanned<i64>>,
    pub max_bytes: Option<Spanned<SizeValue>>,
    pub max_value: Option<Spanned<SizeValue>>,
}

/// `[telemetry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    pub service_name: Option<Spanned<String>>,
    pub timeout: Option<Spanned<DurationValue>>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<Spanned<String>>,
    pub connections: Option<Spanned<i64>>,
}

/// `[retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub max_age: Option<Spanned<DurationValue>>,
    pub keep_jobs: Option<Spanned<i64>>,
    pub keep_deliveries: Option<Spanned<i64>>,
}

/// `[compat]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompat {
    pub gitreload: Option<Spanned<RawGitReload>>,
}

/// `[compat.gitreload]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGitReload {
    pub source: Spanned<String>,
    pub repodir: Spanned<String>,
    pub import: Option<Spanned<String>>,
    pub update: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_unsigned_from: Vec<Spanned<String>>,
    #[serde(default)]
    pub import_with: toml::Table,
    #[serde(default)]
    pub update_with: toml::Table,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub data_dir: Option<Spanned<String>>,
    pub workers: Option<Spanned<i64>>,
    pub max_body: Option<Spanned<SizeValue>>,
    pub shutdown_grace: Option<Spanned<DurationValue>>,
    pub max_connections: Option<Spanned<i64>>,
    pub header_timeout: Option<Spanned<DurationValue>>,
    pub body_timeout: Option<Spanned<DurationValue>>,
    pub max_header: Option<Spanned<SizeValue>>,
    pub api_token: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// The daemon's address as the forge's users reach it (job links in reports).
    pub public_url: Option<Spanned<String>>,
    /// The log filter (`logging::parse_filter`).
    pub log: Option<Spanned<String>>,
    /// `text` or `json`.
    pub log_format: Option<Spanned<String>>,
}

/// `[sources.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub forge: Spanned<String>,
    pub secret: Option<Spanned<String>>,
    #[serde(default)]
    pub secrets: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow_unsigned: bool,
    // Forge-specific options; `forge::Options` documents them.
    pub legacy_sha1: Option<Spanned<bool>>,
    pub replay_window: Option<Spanned<DurationValue>>,
    pub signature_header: Option<Spanned<String>>,
    pub delivery_header: Option<Spanned<String>>,
    pub event_header: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub fields: Option<Spanned<BTreeMap<String, String>>>,
    /// Where to find deliveries this source missed; `config/catch_up.rs` validates it.
    pub catch_up: Option<Spanned<RawCatchUp>>,
    /// Repositories whose refs are compared with what was last seen.
    pub poll: Option<Spanned<RawPoll>>,
    /// The forge's REST API, for reports and the host's own calls; `config/api.rs`.
    pub api: Option<Spanned<RawApi>>,
    /// The GitHub App the host authenticates as; `config/app.rs`.
    pub app: Option<Spanned<RawApp>>,
}

/// `app = { ... }` of a GitHub source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table naming a GitHub App: { id = 12345, private_key = \"file:app.pem\" }")]
pub struct RawApp {
    pub id: Option<Spanned<i64>>,
    pub private_key: Option<Spanned<String>>,
}

/// `api = { ... }` of a source.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table naming the forge's API and a token: { url = \"https://api.github.com\", token = \"${GITHUB_TOKEN}\" }"
)]
pub struct RawApi {
    pub url: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub scheme: Option<Spanned<String>>,
}

/// `catch_up = { ... }` of a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatchUp {
    pub api_url: Option<Spanned<String>>,
    pub credential: Spanned<String>,
    pub repos: Spanned<Vec<String>>,
    pub every: Option<Spanned<DurationValue>>,
    pub hook_url: Option<Spanned<String>>,
}

/// `poll = { ... }` of a source.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table naming the repositories to poll: { every = \"5m\", repos = [\"owner/name\"], clone_url = \"https://git.example.com/{repo}.git\" }"
)]
pub struct RawPoll {
    pub every: Option<Spanned<DurationValue>>,
    pub repos: Spanned<Vec<String>>,
    pub clone_url: Spanned<String>,
}

/// `[plugins.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    pub wasm: Spanned<String>,
    /// The SHA-256 an `https://` component must have.
    pub sha256: Option<Spanned<String>>,
    /// The minisign key it must be signed with.
    pub verify: Option<Spanned<RawVerify>>,
    #[serde(default)]
    pub grants: RawGrants,
    #[serde(default)]
    pub limits: RawLimits,
    /// Settings every step of this plugin gets; a step's own `with` keys win.
    pub with: Option<Spanned<toml::Table>>,
}

/// `verify = { key = ..., signature = ... }` of a plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub key: Spanned<String>,
    pub signature: Option<Spanned<String>>,
}

/// `[registries."HOST"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    pub username: Spanned<String>,
    pub password: Spanned<String>,
}

/// `grants = { ... }` of a plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrants {
    #[serde(default)]
    pub dirs: Vec<Spanned<RawDir>>,
    #[serde(default)]
    pub hosts: Vec<Spanned<RawHost>>,
    #[serde(default)]
    pub commands: Vec<Spanned<RawCommand>>,
    /// The key-value store's name.
    pub kv: Option<Spanned<String>>,
}

/// One granted program: its name or path, or a table that adds what it may get.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a program such as \"flake8\", or a table { program = \"flake8\", env = [\"LANG\"], network = false }"
)]
pub enum RawCommand {
    Program(String),
    Table(RawCommandTable),
}

/// The table form of a granted program.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommandTable {
    pub program: String,
    /// Variables the plugin may set for it.
    #[serde(default)]
    pub env: Vec<String>,
    /// Whether it may use the network.
    #[serde(default)]
    pub network: bool,
}

/// One granted host: a pattern, or a table that adds a credential the host attaches.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a host such as \"api.github.com\", or a table { host = \"...\", credential = \"${ENV}\" } \
                 or { host = \"...\", credential = { sigv4 = { access_key = \"...\", secret_key = \"...\", region = \"...\" } } } \
                 or { host = \"api.github.com\", credential = \"github-app\", permissions = { contents = \"read\" } }"
)]
pub enum RawHost {
    Pattern(String),
    Table(RawHostTable),
}

/// The table form of a granted host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHostTable {
    pub host: String,
    /// A secret reference (`${ENV}`, `file:PATH`) sent in a header, or a table naming
    /// another kind of credential.
    pub credential: Option<RawCredential>,
    /// `Authorization` scheme: `Bearer` (default), `token`, `Basic`.
    pub scheme: Option<String>,
    /// The header carrying the credential (default `Authorization`).
    pub header: Option<String>,
    /// What a `github-app` credential's tokens may do: GitHub permission -> level.
    pub permissions: Option<std::collections::BTreeMap<String, String>>,
}

/// A host's credential as written: a secret for a header, or a table of one kind.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCredential {
    Reference(String),
    Table(RawCredentialTable),
}

/// `credential = { sigv4 = { ... } }`: the table naming the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentialTable {
    pub sigv4: Option<RawSigV4>,
}

/// AWS Signature Version 4 keys, each a secret reference. Required keys are optional
/// here so that validation names the missing one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigV4 {
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub region: Option<String>,
    /// Default `s3`.
    pub service: Option<String>,
    pub session_token: Option<String>,
}

/// One granted directory: a path (read access), or a table that may add `git` or `write`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a directory path, or a table { path = \"...\", git = true } or { path = \"...\", write = true }"
)]
pub enum RawDir {
    Path(String),
    Table(RawDirTable),
}

/// The table form of a granted directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirTable {
    pub path: String,
    /// Git may change repositories here.
    #[serde(default)]
    pub git: bool,
    /// The plugin may also write files here.
    #[serde(default)]
    pub write: bool,
}

/// `limits = { ... }` of a plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory: Option<Spanned<SizeValue>>,
    pub timeout: Option<Spanned<DurationValue>>,
}

/// A size: a number of bytes, or text such as `"64MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a size: a number of bytes or text such as \"64MiB\"")]
pub enum SizeValue {
    Bytes(i64),
    Text(String),
}

/// A duration: a number of seconds, or text such as `"90s"`, `"2m"`, `"500ms"`.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a duration: a number of seconds or text such as \"90s\" or \"2m\"")]
pub enum DurationValue {
    Seconds(i64),
    Text(String),
}

/// `[[rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    pub on: Spanned<OneOrMany<String>>,
    pub source: Option<Spanned<OneOrMany<String>>>,
    pub forge: Option<Spanned<OneOrMany<String>>>,
    pub repo: Option<Spanned<OneOrMany<String>>>,
    pub branch: Option<Spanned<OneOrMany<String>>>,
    pub branch_ignore: Option<Spanned<OneOrMany<String>>>,
    pub tag: Option<Spanned<OneOrMany<String>>>,
    pub tag_ignore: Option<Spanned<OneOrMany<String>>>,
    pub paths: Option<Spanned<OneOrMany<String>>>,
    pub paths_ignore: Option<Spanned<OneOrMany<String>>>,
    pub paths_unknown: Option<Spanned<String>>,
    pub sender: Option<Spanned<OneOrMany<String>>>,
    /// Patterns over the command line a comment gives.
    pub command: Option<Spanned<OneOrMany<String>>>,
    #[serde(rename = "if")]
    pub condition: Option<Spanned<String>>,
    pub steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_success: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_failure: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_error: Vec<Spanned<RawStep>>,
    pub timeout: Option<Spanned<DurationValue>>,
    pub coalesce: Option<Spanned<CoalesceValue>>,
    pub retries: Option<Spanned<i64>>,
    pub retry_backoff: Option<Spanned<DurationValue>>,
    pub quiet_period: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub retry_failures: bool,
    pub run_on: Option<Spanned<OneOrMany<String>>>,
    pub concurrency: Option<Spanned<i64>>,
    pub priority: Option<Spanned<i64>>,
    pub cron: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub missed: Option<Spanned<String>>,
    /// The job checkout every step and handler gets unless it says otherwise.
    pub checkout: Option<Spanned<CheckoutValue>>,
    pub checkout_depth: Option<Spanned<i64>>,
    /// Where the job's result is shown on the forge: `status` or `check`.
    pub report: Option<Spanned<String>>,
    /// The level the event's author needs on the repository (`crate::config::gate`).
    pub permission: Option<Spanned<String>>,
    /// What a pull request from a fork does: `run`, `approve` or `skip`.
    pub forks: Option<Spanned<String>>,
}

/// `checkout`: on/off, or a mode.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "`checkout` is true, false, or \"merge\"")]
pub enum CheckoutValue {
    Switch(bool),
    Mode(String),
}

/// `coalesce`: on/off, or a key template.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "true, false, or a key template such as \"{rule}/{repo}/{ref}\"")]
pub enum CoalesceValue {
    Switch(bool),
    Template(String),
}

/// One step of a rule (or a handler, which is a step too).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub plugin: Spanned<String>,
    pub name: Option<Spanned<String>>,
    #[serde(rename = "with")]
    pub settings: Option<Spanned<toml::Table>>,
    #[serde(rename = "if")]
    pub condition: Option<Spanned<String>>,
    #[serde(default)]
    pub continue_on_failure: bool,
    pub checkout: Option<Spanned<CheckoutValue>>,
    pub checkout_depth: Option<Spanned<i64>>,
    #[serde(default)]
    pub on_success: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_failure: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_error: Vec<Spanned<RawStep>>,
}

/// A value that may be written as one item or a list of items. (Positions are kept for
/// the whole value: serde's untagged enums cannot carry `Spanned` items.)
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    /// The items, in order, borrowed.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            Self::One(one) => std::slice::from_ref(one).iter(),
            Self::Many(many) => many.iter(),
        }
    }

    /// The items, in order.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}
