//! Per-step limits: a memory limiter that remembers when it refused (so the trap is
//! reported as "memory limit exceeded", not as a guest abort), and the epoch ticker
//! that turns wall-clock deadlines into guest interruptions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::{Engine, ResourceLimiter};

/// How often the engine's epoch advances; a deadline is a number of ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Core instances, linear memories and tables one step may create (generous for Python
/// and JS components, which have a few of each). The engine's pool holds 1000 of each
/// in all, so a step can never take more than a small share of it.
pub const MAX_INSTANCES: u32 = 64;
/// See [`MAX_INSTANCES`].
pub const MAX_MEMORIES: u32 = 8;
/// See [`MAX_INSTANCES`].
pub const MAX_TABLES: u32 = 64;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// A step's resource limiter. The memory limit is for all of a step's linear memories
/// together: a component that declares many memories gets no more than one would.
pub struct StepLimiter {
    memory: usize,
    /// Bytes of linear memory the step's instances hold now.
    total: usize,
    /// The most [`StepLimiter::total`] has been, for the step's bill: a growth that was
    /// refused does not count, so a step stopped by the limit peaks at most at it.
    pub peak: usize,
    /// Set when a memory growth was refused.
    pub memory_exceeded: bool,
}

impl StepLimiter {
    /// A limiter allowing `memory` bytes of linear memory in all.
    pub fn new(memory: u64) -> Self {
        Self { memory: usize::try_from(memory).unwrap_or(usize::MAX), total: 0, peak: 0, memory_exceeded: false }
    }
}

impl ResourceLimiter for StepLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.memory {
            self.memory_exceeded = true;
            // An error (rather than `Ok(false)`) traps at once, in every guest language;
            // a refused growth would reach JS and Python as a catchable allocation failure.
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded", self.memory));
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

/// The number of ticks in `timeout`, at least one.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / TICK.as_millis()).max(1) as u64
}

/// Advances an engine's epoch every [`TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    /// Ticks since the start, beside the engine's epoch (which wasmtime does not let us
    /// read): a step's bill counts the ticks between its start and end.
    ticks: Arc<AtomicU64>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let (engine, flag, count) = (engine.clone(), stop.clone(), ticks.clone());
        std::thread::Builder::new().name("gitauto-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                #[allow(clippy::disallowed_methods, reason = "the ticker has a thread of its own")]
                std::thread::sleep(TICK);
                engine.increment_epoch();
                count.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Ok(Self { stop, ticks })
    }

    /// Ticks so far.
    pub fn now(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16: many memories share one limit.
    #[test]
    fn the_memory_limit_is_for_all_memories_together() {
        let mut limiter = StepLimiter::new(64 << 20);
        for _ in 0..3 {
            assert!(limiter.memory_growing(0, 20 << 20, None).unwrap());
        }
        assert!(limiter.memory_growing(0, 20 << 20, None).is_err(), "80 MiB in four memories");
        assert!(limiter.memory_exceeded);
        // Growing one memory counts only the difference.
        let mut limiter = StepLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 30 << 20, None).unwrap());
        assert!(limiter.memory_growing(30 << 20, 60 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 8 << 20, None).is_err());
    }

    /// Issue 24: the bill's peak is the most the memories held together, not what a
    /// refused growth asked for.
    #[test]
    fn the_peak_is_the_most_held_at_once() {
        let mut limiter = StepLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 10 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 20 << 20, None).unwrap());
        assert_eq!(limiter.peak, 30 << 20);
        assert!(limiter.memory_growing(0, 40 << 20, None).is_err());
        assert_eq!(limiter.peak, 30 << 20, "the refused growth is not held");
    }
}
