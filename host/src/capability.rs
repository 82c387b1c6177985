//! The host side of the plugin world: one module per WIT interface. Each call starts
//! with a grant check and reports refusals and expected failures as the interface's
//! error type, so the plugin can react; only host bugs become traps.

pub mod git;
pub mod http;
pub mod log;
pub mod shell;

use crate::grant::Grant;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the capabilities know about the step they serve.
pub struct StepContext {
    /// The plugin's config name, for messages.
    pub plugin: String,
    /// What it may touch.
    pub grant: Arc<Grant>,
    /// When the step's time is up; host calls never wait beyond it.
    pub deadline: Instant,
    /// Where log lines go.
    pub log: log::StepLog,
    /// Outbound HTTP for this plugin.
    pub http: Arc<http::Client>,
    /// Largest single value (file, response body) copied into the guest.
    pub max_transfer: u64,
}

impl StepContext {
    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}
