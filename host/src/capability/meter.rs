//! The meter of a step's host calls: every method of the gitauto interfaces (git, http,
//! process, log, kv) opens a [`Call`] first, which counts the call and its time per capability
//! when dropped; the runtime reads the totals into the step's bill. A test below fails
//! when a host method has no guard.
//!
//! The seam for tracing: a [`Call`] knows its capability and its name (`git.fetch`,
//! `http.send`). An observer set with [`Meter::observe`] is called when each call starts
//! and what it returns (a span, say) is dropped when the call ends, after its time is
//! counted. Without an observer, a call costs two clock reads and two atomic additions.

use crate::step::CallBill;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The capabilities whose calls are counted, one per gitauto WIT interface that has
/// host methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// `gitauto:plugin/git`.
    Git,
    /// `gitauto:plugin/http`.
    Http,
    /// `gitauto:plugin/process` (0.1's `shell`).
    Process,
    /// `gitauto:plugin/log`.
    Log,
    /// `gitauto:plugin/kv`.
    Kv,
}

impl Capability {
    /// Every capability, in the order of [`Capability::index`].
    pub const ALL: [Capability; 5] =
        [Capability::Git, Capability::Http, Capability::Process, Capability::Log, Capability::Kv];

    /// The name in bills and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Git => "git",
            Capability::Http => "http",
            Capability::Process => "process",
            Capability::Log => "log",
            Capability::Kv => "kv",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What an observer is told when a host call starts; what it returns lives until the
/// call ends (a span guard, for instance).
pub type Observer = Arc<dyn Fn(Capability, &'static str) -> Box<dyn Any> + Send + Sync>;

/// One step's counts: calls and nanoseconds per capability. Shared (an `Arc`) between
/// the step's state and each open [`Call`], which must not borrow the state the host
/// method needs mutably.
#[derive(Default)]
pub struct Meter {
    counts: [AtomicU64; Capability::ALL.len()],
    nanos: [AtomicU64; Capability::ALL.len()],
    observer: Option<Observer>,
}

impl Meter {
    /// A meter whose calls are also reported to `observer`.
    pub fn observe(observer: Observer) -> Self {
        Self { observer: Some(observer), ..Self::default() }
    }

    /// Starts counting one call of `capability`, named `name` (`git.fetch`): counted
    /// when the returned guard drops, however the method returns.
    pub fn start(self: &Arc<Self>, capability: Capability, name: &'static str) -> Call {
        let observed = self.observer.as_ref().map(|observer| observer(capability, name));
        Call { meter: self.clone(), capability, started: Instant::now(), _observed: observed }
    }

    /// The totals so far, for capabilities that were called.
    pub fn bill(&self) -> BTreeMap<String, CallBill> {
        Capability::ALL
            .into_iter()
            .filter_map(|capability| {
                let count = self.counts[capability.index()].load(Ordering::Relaxed);
                let nanos = self.nanos[capability.index()].load(Ordering::Relaxed);
                (count > 0).then(|| (capability.as_str().to_owned(), CallBill { count, time_us: nanos / 1_000 }))
            })
            .collect()
    }
}

/// One host call being counted; see [`Meter::start`].
#[must_use = "a call is counted when its guard drops: bind it to `_call`, not `_`"]
pub struct Call {
    meter: Arc<Meter>,
    capability: Capability,
    started: Instant,
    /// What the observer returned, dropped after the call is counted.
    _observed: Option<Box<dyn Any>>,
}

impl Drop for Call {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let at = self.capability.index();
        self.meter.counts[at].fetch_add(1, Ordering::Relaxed);
        self.meter.nanos[at].fetch_add(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_capability_when_they_end() {
        let meter = Arc::new(Meter::default());
        {
            let _one = meter.start(Capability::Git, "git.open");
            let _two = meter.start(Capability::Git, "git.fetch");
            assert!(meter.bill().is_empty(), "counted at the end");
        }
        drop(meter.start(Capability::Log, "log.log"));
        let bill = meter.bill();
        assert_eq!(bill.keys().collect::<Vec<_>>(), ["git", "log"]);
        assert_eq!(bill["git"].count, 2);
        assert_eq!(bill["log"].count, 1);
    }

    #[test]
    fn an_observer_sees_each_call_and_its_value_lives_until_the_end() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let meter = Arc::new(Meter::observe(Arc::new(move |capability, name| {
            log.lock().unwrap().push(format!("{} {name}", capability.as_str()));
            let log = log.clone();
            Box::new(OnDrop(Some(Box::new(move || log.lock().unwrap().push("end".into())))))
        })));
        let call = meter.start(Capability::Http, "http.send");
        assert_eq!(*seen.lock().unwrap(), ["http http.send"]);
        drop(call);
        assert_eq!(*seen.lock().unwrap(), ["http http.send", "end"]);
    }

    struct OnDrop(Option<Box<dyn FnOnce()>>);

    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }

    /// The host trait impls of each gitauto interface, as written.
    const SOURCES: [(&str, &str); 5] = [
        ("git.rs", include_str!("git.rs")),
        ("http.rs", include_str!("http.rs")),
        ("process.rs", include_str!("process.rs")),
        ("log.rs", include_str!("log.rs")),
        ("kv.rs", include_str!("kv.rs")),
    ];

    /// The methods in `source`'s `impl ... Host... for StepState` blocks that do not
    /// open a meter call as their first statement.
    fn unmetered(source: &str) -> (usize, Vec<String>) {
        let mut methods = 0;
        let mut missing = Vec::new();
        let mut lines = source.lines();
        while let Some(line) = lines.next() {
            let opens_host_impl =
                line.starts_with("impl ") && line.contains("Host") && line.ends_with("for StepState {");
            if !opens_host_impl {
                continue;
            }
            // Until the impl's closing brace at column 0.
            let mut body: Vec<&str> = Vec::new();
            for line in lines.by_ref() {
                if line == "}" {
                    break;
                }
                body.push(line);
            }
            for (at, line) in body.iter().enumerate() {
                let Some(rest) = line.strip_prefix("    fn ") else { continue };
                methods += 1;
                let name = rest.split(['(', '<']).next().unwrap_or_default().to_owned();
                // The signature may span lines; the first statement follows its `{`.
                let opening = body[at..].iter().position(|line| line.trim_end().ends_with('{'));
                let first = opening.and_then(|opening| body.get(at + opening + 1)).copied().unwrap_or_default();
                if !first.trim_start().starts_with("let _call = self.ctx.meter.start(") {
                    missing.push(name);
                }
            }
        }
        (methods, missing)
    }

    /// Issue 24: a host method without the guard would make its calls vanish from the
    /// step's bill.
    #[test]
    fn every_host_method_of_the_gitauto_interfaces_opens_a_meter_call_first() {
        let mut methods = 0;
        for (file, source) in SOURCES {
            let (found, missing) = unmetered(source);
            assert!(
                missing.is_empty(),
                "{file}: host methods without `let _call = self.ctx.meter.start(..)`: {missing:?}"
            );
            methods += found;
        }
        // git (open, clone, path, current-branch, head, remote-url, fetch, resolve,
        // reset-hard, clean, changed-paths, tree, read-file, merge-check, tags, archive,
        // drop), http (send), process (run), log (log), kv (get, set, delete, list-keys,
        // compare-and-swap).
        assert_eq!(methods, 25, "the check must see every host method");
    }

    #[test]
    fn the_check_sees_a_method_without_its_guard() {
        let source = "impl wit::Host for StepState {\n    fn run(&mut self) -> u32 {\n        1\n    }\n}\n";
        assert_eq!(unmetered(source), (1, vec!["run".to_owned()]));
        let source = "impl wit::Host for StepState {\n    fn run(\n        &mut self,\n    ) -> u32 {\n        \
                      let _call = self.ctx.meter.start(Capability::Process, \"process.run\");\n        1\n    }\n}\n";
        assert_eq!(unmetered(source), (1, vec![]));
    }
}
