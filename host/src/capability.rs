//! The host side of the plugin world: the bindings generated from `wit/`, the state a
//! step's calls are served from, and one module per WIT interface. Each call starts
//! with a grant check and reports refusals and expected failures as the interface's
//! error type, so the plugin can react; only host bugs become traps. The runtime links
//! these into its engine; nothing here knows the engine.

#![allow(
    clippy::disallowed_methods,
    reason = "capability calls run on the step's blocking thread, never on a tokio worker"
)]

pub mod compat;
pub mod git;
pub mod http;
pub mod kv;
pub mod log;
pub mod meter;
pub mod process;
pub mod wasi_http;

use crate::grant::Grant;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;

/// Host bindings generated from `wit/` (`gitauto:plugin@0.2`).
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        imports: { default: trappable },
        with: {
            "gitauto:plugin/git.repository": crate::capability::git::OpenRepository,
        },
    });
}

/// Host bindings of the 0.1 WIT as released (`host/wit-0.1`: 0.1.2, never changed), for
/// plugins built for any 0.1.x; `compat` serves them through the 0.2 host.
pub mod bindings_v0_1 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "wit-0.1",
        imports: { default: trappable },
        with: {
            "gitauto:plugin/git.repository": crate::capability::git::OpenRepository,
        },
    });
}

/// What the capabilities serve one step's calls from; every WIT interface's host trait
/// is implemented on it.
pub struct StepState {
    /// Resources handed to the guest (open repositories), in the table the step's WASI
    /// files and streams share.
    pub table: ResourceTable,
    /// Grant, deadline, log: what the capabilities consult.
    pub ctx: StepContext,
}

impl bindings::gitauto::plugin::types::Host for StepState {}

/// What the capabilities know about the step they serve.
#[derive(Clone)]
pub struct StepContext {
    /// The plugin's config name, for messages.
    pub plugin: String,
    /// What it may touch.
    pub grant: Arc<Grant>,
    /// Every configured plugin's grant roots where it may change repositories (git or
    /// write access): plugin name, canonical root, access. A remote configured in a
    /// repository that no other plugin may change, and that this one may not write, is
    /// as an administrator left it.
    pub changers: Arc<[(String, std::path::PathBuf, crate::grant::Access)]>,
    /// The job's checkout (canonical), when the step asked for it: in `grant` with write
    /// access, and the shell's working directory when the plugin names none.
    pub checkout: Option<std::path::PathBuf>,
    /// When the step's time is up; host calls never wait beyond it.
    pub deadline: Instant,
    /// Where log lines go.
    pub log: log::StepLog,
    /// Outbound HTTP for this plugin.
    pub http: Arc<http::Client>,
    /// Largest single value (file, response body) copied into the guest.
    pub max_transfer: u64,
    /// Whether granted programs may run without Landlock (the operator's explicit,
    /// logged opt-out on kernels that lack it).
    pub unconfined_programs: bool,
    /// What `github-app` host credentials mint tokens with: the job's source, repository
    /// and installation. `None` outside a job. Host memory only: the plugin sees the
    /// requests' answers, never this.
    pub app: Option<Arc<crate::forge_api::AppAccess>>,
    /// Counts the step's host calls per capability, for its bill: every host method
    /// opens a call on it first.
    pub meter: Arc<meter::Meter>,
    /// The step's span, when tracing is on: each host call's span hangs under it, and
    /// outbound HTTP carries its `traceparent`.
    pub trace: Option<crate::telemetry::Parent>,
    /// Where the key-value store the grant names lives: the daemon's queue. `None` in a
    /// local run (`gitauto run`, `plugin test`): `kv` calls are then `unavailable`.
    pub kv: Option<crate::queue::Queue>,
}

impl StepContext {
    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// A GitHub App token for the job's repository with `permissions`, for the
    /// `github-app` credential of `pattern` on a request to `to` (see [`app_token`]).
    pub fn app_token(
        &self,
        pattern: &crate::grant::HostPattern,
        to: (&str, u16),
        permissions: &[(String, String)],
    ) -> Result<crate::secret::Secret, AppTokenError> {
        app_token(self.app.as_deref(), self.deadline, pattern, to, permissions)
    }
}

/// A GitHub App token from `access` (the job's), limited to its repository and
/// `permissions`, for the `github-app` credential of `pattern` on a request to `to`
/// (host, port; refused unless it is the job's GitHub): minted, or taken from the
/// cache, before `deadline`. Blocks: call it from a blocking thread inside the tokio
/// runtime, never a tokio worker, and before any Landlock confinement (it calls GitHub).
pub fn app_token(
    access: Option<&crate::forge_api::AppAccess>,
    deadline: Instant,
    pattern: &crate::grant::HostPattern,
    to: (&str, u16),
    permissions: &[(String, String)],
) -> Result<crate::secret::Secret, AppTokenError> {
    let Some(access) = access else {
        return Err(AppTokenError::Denied(format!(
            "the credential granted for {pattern} is a GitHub App's, and this step has no source to mint its token \
             from (it runs outside a job, or its event is a manual trigger or a schedule tick)"
        )));
    };
    let minting =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), access.token(to.0, to.1, permissions));
    match tokio::runtime::Handle::current().block_on(minting) {
        Err(_) => {
            Err(AppTokenError::Unavailable(format!("minting a GitHub App token for {pattern}: the deadline passed")))
        }
        Ok(Ok(token)) => Ok(token),
        Ok(Err(err)) if err.is_transient() => {
            Err(AppTokenError::Unavailable(format!("minting a GitHub App token for {pattern}: {err}")))
        }
        Ok(Err(err)) => Err(AppTokenError::Denied(format!("minting a GitHub App token for {pattern}: {err}"))),
    }
}

/// Why a `github-app` credential gave no token.
#[derive(Debug, thiserror::Error)]
pub enum AppTokenError {
    /// No token can be had: no job, no app on the job's source, GitHub refused.
    #[error("{0}")]
    Denied(String),
    /// GitHub could not be reached or answered 429/5xx: another try may succeed.
    #[error("{0}")]
    Unavailable(String),
}
