//! `log`: plugin log lines into the job's record, with a per-step quota so a flooding
//! plugin cannot fill the database.

use crate::capability::StepState;
use crate::capability::bindings::gitauto::plugin::log as wit;
use crate::capability::meter::Capability;
use std::sync::{Arc, Mutex};

/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LINE: usize = 8 * 1024;
/// Most lines one step may log.
pub const MAX_LINES: usize = 5_000;
/// Most bytes one step may log.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;

/// Severity, as the job record stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Debugging detail.
    Debug,
    /// Progress.
    Info,
    /// Unexpected but not fatal.
    Warn,
    /// Failure.
    Error,
}

impl Level {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Receives a step's log lines (the worker writes them to the queue; `plugin test`
/// prints them).
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// A step's log: the sink plus the quota bookkeeping. Clones share the quota (the
/// `log` interface and the guest's stdout and stderr all write here).
#[derive(Clone)]
pub struct StepLog {
    sink: Sink,
    quota: Arc<Mutex<Quota>>,
}

#[derive(Default)]
struct Quota {
    lines: usize,
    bytes: usize,
    dropped: usize,
}

impl StepLog {
    /// A fresh quota over `sink`.
    pub fn new(sink: Sink) -> Self {
        Self { sink, quota: Arc::default() }
    }

    /// Records a line, cutting it to [`MAX_LINE`] and dropping it past the quota.
    pub fn line(&self, level: Level, message: &str) {
        let message = cut(message, MAX_LINE);
        {
            let mut quota = self.quota.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if quota.lines >= MAX_LINES || quota.bytes >= MAX_BYTES {
                quota.dropped += 1;
                if quota.dropped > 1 {
                    return;
                }
                drop(quota);
                (self.sink)(
                    Level::Warn,
                    &format!("log quota of {MAX_LINES} lines / {MAX_BYTES} bytes reached; further lines are dropped"),
                );
                return;
            }
            quota.lines += 1;
            quota.bytes += message.len();
        }
        (self.sink)(level, message);
    }

    /// Whether the quota is used up and its note written: everything more is dropped,
    /// so a flooding stream can discard bytes without looking at them.
    pub fn is_full(&self) -> bool {
        self.quota.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).dropped > 0
    }

    /// How many lines were dropped over quota.
    pub fn dropped(&self) -> usize {
        self.quota.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).dropped
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl wit::Host for StepState {
    fn log(&mut self, level: wit::Level, message: String) -> wasmtime::Result<()> {
        let _call = self.ctx.meter.start(Capability::Log, "log.log");
        let level = match level {
            wit::Level::Trace => Level::Trace,
            wit::Level::Debug => Level::Debug,
            wit::Level::Info => Level::Info,
            wit::Level::Warn => Level::Warn,
            wit::Level::Error => Level::Error,
        };
        self.ctx.log.line(level, &message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_and_cutting() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = seen.clone();
        let log = StepLog::new(Arc::new(move |level, line: &str| sink_seen.lock().unwrap().push((level, line.len()))));
        log.line(Level::Info, &"é".repeat(MAX_LINE));
        assert_eq!(seen.lock().unwrap()[0].1, MAX_LINE, "cut on a char boundary at the limit");
        for _ in 0..MAX_LINES + 10 {
            log.line(Level::Info, "x");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), MAX_LINES + 1, "quota lines plus one note");
        assert_eq!(seen.last().unwrap().0, Level::Warn);
        assert_eq!(log.dropped(), 11);
    }
}
