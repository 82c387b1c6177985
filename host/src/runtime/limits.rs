//! Per-step limits: a memory limiter that remembers when it refused (so the trap is
//! reported as "memory limit exceeded", not as a guest abort), and the epoch ticker
//! that turns wall-clock deadlines into guest interruptions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Engine, ResourceLimiter};

/// How often the engine's epoch advances; a deadline is a number of ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Instances, memories and tables a step may create (generous for Python and JS).
const MAX_INSTANCES: usize = 256;
const MAX_MEMORIES: usize = 64;
const MAX_TABLES: usize = 256;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// A step's resource limiter.
pub struct StepLimiter {
    memory: usize,
    /// Set when a memory growth was refused.
    pub memory_exceeded: bool,
}

impl StepLimiter {
    /// A limiter allowing `memory` bytes per linear memory.
    pub fn new(memory: u64) -> Self {
        Self { memory: usize::try_from(memory).unwrap_or(usize::MAX), memory_exceeded: false }
    }
}

impl ResourceLimiter for StepLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_exceeded = true;
            // An error (rather than `Ok(false)`) traps at once, in every guest language;
            // a refused growth would reach JS and Python as a catchable allocation failure.
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded", self.memory));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// The number of ticks in `timeout`, at least one.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / TICK.as_millis()).max(1) as u64
}

/// Advances an engine's epoch every [`TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new().name("gitauto-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                #[allow(clippy::disallowed_methods, reason = "the ticker has a thread of its own")]
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
