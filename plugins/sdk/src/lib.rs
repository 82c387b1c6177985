//! # gitauto-plugin: write gitauto plugins in Rust
//!
//! A gitauto plugin is a WebAssembly component that handles one step of a rule: gitauto
//! calls it with the event (a push, a tag, a pull request, ...) and the step's `with`
//! settings, and it answers with an [`Outcome`]. It can reach the world only through the
//! capabilities its grant in `gitauto.toml` allows: [`git`], [`http`], [`process`], [`kv`], [`log`]
//! and the granted directories.
//!
//! Implement [`Plugin`] and [`export!`] it; build with
//! `cargo build --release --target wasm32-wasip2` (crate type `cdylib`).
//!
//! ```no_run
//! use gitauto_plugin::{Error, Event, Outcome, Plugin, git::Repository, log};
//! use serde::Deserialize;
//!
//! /// Settings from the step's `with` table.
//! #[derive(Deserialize)]
//! struct Settings {
//!     /// Directory holding the checkout.
//!     checkout: String,
//! }
//!
//! struct ShowHead;
//!
//! impl Plugin for ShowHead {
//!     type Settings = Settings;
//!
//!     fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
//!         let repo = Repository::open(&settings.checkout)?;
//!         let head = repo.head()?.unwrap_or_default();
//!         log::info(&format!("{} is at {head}", event.repository.full_name));
//!         Ok(Outcome::success(format!("checkout at {head}")).with_output(&head))
//!     }
//! }
//!
//! gitauto_plugin::export!(ShowHead);
//! ```

#![deny(missing_docs)]

/// Bindings generated from the WIT package `gitauto:plugin` (see `wit/` in the
/// repository). The curated re-exports at the crate root are what plugins normally use.
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        default_bindings_module: "gitauto_plugin::bindings",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        generate_all,
    });
}

pub mod kv;
pub mod object_storage;
pub mod rest;
pub mod settings;

pub use bindings::gitauto::plugin::git;
pub use bindings::gitauto::plugin::http;
pub use bindings::gitauto::plugin::process;
pub use bindings::gitauto::plugin::types::{Commit, Error, Event, Outcome, Repository, Status};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A plugin: one step's behaviour.
pub trait Plugin {
    /// The step's `with` table, deserialised from JSON. Use `serde_json::Value` to take
    /// it as it comes, or a struct with `#[derive(Deserialize)]` to have gitauto's
    /// settings errors name the offending key.
    type Settings: DeserializeOwned;

    /// Handle one event.
    fn handle(event: Event, settings: Self::Settings) -> Result<Outcome, Error>;
}

/// Exports a [`Plugin`] implementation as the component's `handle` function.
///
/// Use it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __GitautoPluginExport;

        impl $crate::bindings::Guest for __GitautoPluginExport {
            fn handle(
                event: $crate::Event,
                settings: ::std::string::String,
            ) -> ::std::result::Result<$crate::Outcome, $crate::Error> {
                $crate::dispatch::<$plugin>(event, &settings)
            }
        }

        $crate::bindings::__export_plugin_world!(__GitautoPluginExport with_types_in $crate::bindings);
    };
}

/// Parses the settings and calls the plugin; used by [`export!`].
#[doc(hidden)]
pub fn dispatch<P: Plugin>(event: Event, settings: &str) -> Result<Outcome, Error> {
    let settings = parse_settings::<P::Settings>(settings)?;
    P::handle(event, settings)
}

/// The environment variable the host sets to the job checkout's path.
pub const CHECKOUT_VARIABLE: &str = "GITAUTO_CHECKOUT";

/// The job's checkout, when the step asked for one (`checkout = true` in its config):
/// the absolute path of a git repository whose HEAD is detached at the event's commit,
/// which the step may read and write and open with [`git::Repository::open`]. `None`
/// when the step has no checkout.
///
/// ```no_run
/// if let Some(dir) = gitauto_plugin::checkout() {
///     let repo = gitauto_plugin::git::Repository::open(&dir).expect("the checkout is a repository");
///     let changed = repo.changed_paths("refs/gitauto/base", "HEAD");
/// }
/// ```
pub fn checkout() -> Option<String> {
    std::env::var(CHECKOUT_VARIABLE).ok().filter(|path| !path.is_empty())
}

/// Deserialises a step's settings, naming the offending key in the error (see
/// [`settings::parse`]).
pub fn parse_settings<S: DeserializeOwned>(settings: &str) -> Result<S, Error> {
    settings::parse(settings)
}

impl Outcome {
    /// A successful outcome with a one-line summary and no output.
    pub fn success(summary: impl Into<String>) -> Self {
        Self::new(Status::Success, summary)
    }

    /// A failed outcome: the step ran, and its work failed.
    pub fn failure(summary: impl Into<String>) -> Self {
        Self::new(Status::Failure, summary)
    }

    /// A skipped outcome: the event is not for this step.
    pub fn skipped(summary: impl Into<String>) -> Self {
        Self::new(Status::Skipped, summary)
    }

    fn new(status: Status, summary: impl Into<String>) -> Self {
        Self { status, summary: summary.into(), output: "null".into() }
    }

    /// Attaches output for later steps (`steps.<name>.output` in templates).
    pub fn with_output(mut self, output: &impl Serialize) -> Self {
        self.output = serde_json::to_string(output).unwrap_or_else(|err| {
            // Serialising plain data cannot fail; a map with non-string keys can.
            serde_json::to_string(&format!("output could not be serialised: {err}")).expect("a string serialises")
        });
        self
    }
}

impl Error {
    /// A failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A failure that may pass on retry.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient(message.into())
    }

    /// Settings that cannot work.
    pub fn invalid_settings(message: impl Into<String>) -> Self {
        Self::InvalidSettings(message.into())
    }
}

impl git::GitError {
    /// The error as one line: its kind, then the host's message.
    pub fn message(&self) -> String {
        match self {
            Self::Denied(msg) => format!("denied: {msg}"),
            Self::NotFound(msg) => format!("not found: {msg}"),
            Self::Invalid(msg) => format!("invalid: {msg}"),
            Self::Failed(msg) => msg.clone(),
        }
    }
}

impl http::HttpError {
    /// The error as one line: its kind, then the host's message.
    pub fn message(&self) -> String {
        match self {
            Self::Denied(msg) => format!("denied: {msg}"),
            Self::InvalidRequest(msg) => format!("invalid request: {msg}"),
            Self::Timeout(msg) => format!("timed out: {msg}"),
            Self::Connection(msg) => format!("connection failed: {msg}"),
            Self::TooLarge(msg) => format!("response too large: {msg}"),
        }
    }
}

impl process::ProcessError {
    /// The error as one line: its kind, then the host's message.
    pub fn message(&self) -> String {
        match self {
            Self::Denied(msg) => format!("denied: {msg}"),
            Self::NotFound(msg) => format!("not found: {msg}"),
            Self::Failed(msg) => msg.clone(),
        }
    }
}

/// A failed git call fails the step; network trouble is worth a retry.
impl From<git::GitError> for Error {
    fn from(err: git::GitError) -> Self {
        Error::Failed(format!("git: {}", err.message()))
    }
}

/// A failed HTTP call fails the step; timeouts and connection failures may pass.
impl From<http::HttpError> for Error {
    fn from(err: http::HttpError) -> Self {
        let message = format!("http: {}", err.message());
        match err {
            http::HttpError::Timeout(_) | http::HttpError::Connection(_) => Error::Transient(message),
            _ => Error::Failed(message),
        }
    }
}

/// A program that cannot be run fails the step.
impl From<process::ProcessError> for Error {
    fn from(err: process::ProcessError) -> Self {
        Error::Failed(format!("process: {}", err.message()))
    }
}

/// Log lines, recorded in the job next to the step that wrote them.
pub mod log {
    use crate::bindings::gitauto::plugin::log::{Level, log};

    pub use crate::bindings::gitauto::plugin::log::Level as LogLevel;

    /// Logs a line at `level`.
    pub fn at(level: Level, message: &str) {
        log(level, message);
    }

    /// Logs a debugging detail.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    /// Logs normal progress.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs something unexpected that does not stop the step.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// Logs a failure.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_errors_name_the_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            repodir: String,
        }
        let err = parse_settings::<S>(r#"{"repodir": 3}"#).unwrap_err();
        let Error::InvalidSettings(msg) = err else { panic!("wrong variant") };
        assert_eq!(msg, "`repodir`: expected a string, got integer `3`");
        let err = parse_settings::<S>(r#"{"repo_dir": "x"}"#).unwrap_err();
        let Error::InvalidSettings(msg) = err else { panic!("wrong variant") };
        assert!(msg.contains("unknown field `repo_dir`"), "{msg}");
    }

    #[test]
    fn outcome_output_is_json() {
        let outcome = Outcome::success("done").with_output(&serde_json::json!({"old": "a", "new": "b"}));
        assert_eq!(outcome.output, r#"{"new":"b","old":"a"}"#);
        assert_eq!(Outcome::skipped("no").output, "null");
    }
}
