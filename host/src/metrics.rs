//! Prometheus metrics: counters and histograms kept in memory since start, and gauges
//! read from the queue when scraped. Rendered in the text exposition format at
//! `GET /metrics`.

use crate::queue::Queue;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the step duration histogram, in seconds.
const STEP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Upper bounds of the peak memory histogram, in bytes: 1 MiB to 4 GiB.
const MEMORY_BUCKETS: &[f64] = &[
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    134_217_728.0,
    268_435_456.0,
    536_870_912.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

/// The daemon's metrics. Shared by the server and the workers.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// HTTP connections open now.
    connections: std::sync::atomic::AtomicUsize,
    /// Trace spans exported and dropped (`[telemetry]`), across reloads.
    pub spans: Arc<crate::telemetry::SpanCounts>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (source, verdict) → deliveries.
    deliveries: BTreeMap<(String, String), u64>,
    /// Events that went into an already queued job instead of a new one.
    coalesced: u64,
    /// plugin → (bucket counts, sum of seconds, count).
    steps: BTreeMap<String, Histogram>,
    /// (rule, final state) → jobs finished since start.
    finished: BTreeMap<(String, String), u64>,
    /// plugin → the sums of its steps' bills.
    bills: BTreeMap<String, Bills>,
}

/// The sums of one plugin's step bills since start.
#[derive(Debug, Default, Clone)]
struct Bills {
    wall_us: u64,
    cpu_us: u64,
    epoch_ticks: u64,
    /// Peak linear memory, bytes, over [`MEMORY_BUCKETS`].
    memory: Histogram,
    /// capability → (calls, microseconds).
    calls: BTreeMap<String, (u64, u64)>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self { buckets: vec![0; bounds.len()], ..Self::default() }
    }

    fn observe(&mut self, bounds: &[f64], value: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name` for `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        for (bound, n) in bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Counts a delivery.
    pub fn delivery(&self, source: &str, verdict: &str) {
        self.with(|m| *m.deliveries.entry((source.to_owned(), verdict.to_owned())).or_default() += 1);
    }

    /// Counts events absorbed into queued jobs.
    pub fn coalesced(&self, events: usize) {
        self.with(|m| m.coalesced += events as u64);
    }

    /// Records a step's duration.
    pub fn step(&self, plugin: &str, took: Duration) {
        let seconds = took.as_secs_f64();
        self.with(|m| {
            m.steps
                .entry(plugin.to_owned())
                .or_insert_with(|| Histogram::new(STEP_BUCKETS))
                .observe(STEP_BUCKETS, seconds)
        });
    }

    /// Adds a step's bill to its plugin's sums.
    pub fn bill(&self, plugin: &str, bill: &crate::step::StepBill) {
        self.with(|m| {
            let sums = m
                .bills
                .entry(plugin.to_owned())
                .or_insert_with(|| Bills { memory: Histogram::new(MEMORY_BUCKETS), ..Bills::default() });
            sums.wall_us += bill.wall_us;
            sums.cpu_us += bill.cpu_us;
            sums.epoch_ticks += bill.epoch_ticks;
            sums.memory.observe(MEMORY_BUCKETS, bill.peak_memory as f64);
            for (capability, calls) in &bill.calls {
                let (count, time_us) = sums.calls.entry(capability.clone()).or_default();
                *count += calls.count;
                *time_us += calls.time_us;
            }
        });
    }

    /// Counts an HTTP connection the server took on.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts an HTTP connection that ended.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a finished job.
    pub fn finished(&self, rule: &str, state: &str) {
        self.with(|m| *m.finished.entry((rule.to_owned(), state.to_owned())).or_default() += 1);
    }

    /// The exposition text, with the queue's gauges read now.
    pub async fn render(&self, queue: &Queue) -> anyhow::Result<String> {
        let counts = queue.job_counts().await?;
        let mut out = String::new();
        out.push_str("# HELP gitauto_jobs Jobs in the queue's record, by state.\n# TYPE gitauto_jobs gauge\n");
        for state in crate::queue::JobState::ALL {
            let n = counts.iter().find(|(s, _)| s == state.as_str()).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "gitauto_jobs{{state=\"{}\"}} {n}", state.as_str());
        }
        let depth: i64 = counts.iter().filter(|(s, _)| s == "queued").map(|(_, n)| n).sum();
        out.push_str("# HELP gitauto_queue_depth Jobs waiting to run.\n# TYPE gitauto_queue_depth gauge\n");
        let _ = writeln!(out, "gitauto_queue_depth {depth}");
        out.push_str(
            "# HELP gitauto_rule_paused Rules paused (`gitauto pause`): their jobs wait in the queue.\n\
             # TYPE gitauto_rule_paused gauge\n",
        );
        for paused in queue.paused().await? {
            let _ = writeln!(out, "gitauto_rule_paused{{rule=\"{}\"}} 1", escape(&paused.rule));
        }
        // This node's fingerprint as it recorded it, so that it agrees with /api/nodes.
        let nodes = queue.nodes().await?;
        out.push_str(
            "# HELP gitauto_nodes_config_differs Live nodes whose config differs from the one most live nodes run.\n\
             # TYPE gitauto_nodes_config_differs gauge\n",
        );
        let differ = nodes.iter().filter(|node| node.config_differs).count();
        let _ = writeln!(out, "gitauto_nodes_config_differs {differ}");
        let this = nodes.iter().find(|node| node.name == queue.node()).and_then(|node| node.config.as_deref());
        if let Some(fingerprint) = this {
            out.push_str(
                "# HELP gitauto_config_info The fingerprint of this node's config (see docs/config.md).\n\
                 # TYPE gitauto_config_info gauge\n",
            );
            let _ = writeln!(out, "gitauto_config_info{{fingerprint=\"{}\"}} 1", escape(fingerprint));
        }
        out.push_str(
            "# HELP gitauto_http_connections HTTP connections open now.\n# TYPE gitauto_http_connections gauge\n",
        );
        let _ =
            writeln!(out, "gitauto_http_connections {}", self.connections.load(std::sync::atomic::Ordering::Relaxed));
        self.with(|m| {
            out.push_str("# HELP gitauto_deliveries_total Deliveries received, by source and verdict.\n");
            out.push_str("# TYPE gitauto_deliveries_total counter\n");
            for ((source, verdict), n) in &m.deliveries {
                let _ = writeln!(
                    out,
                    "gitauto_deliveries_total{{source=\"{}\",verdict=\"{verdict}\"}} {n}",
                    escape(source)
                );
            }
            out.push_str("# HELP gitauto_coalesced_events_total Events that replaced a queued job's event.\n");
            out.push_str("# TYPE gitauto_coalesced_events_total counter\n");
            let _ = writeln!(out, "gitauto_coalesced_events_total {}", m.coalesced);
            let (exported, dropped) = (
                self.spans.exported.load(std::sync::atomic::Ordering::Relaxed),
                self.spans.dropped.load(std::sync::atomic::Ordering::Relaxed),
            );
            out.push_str("# HELP gitauto_telemetry_spans_exported_total Trace spans the OTLP collector took.\n");
            out.push_str("# TYPE gitauto_telemetry_spans_exported_total counter\n");
            let _ = writeln!(out, "gitauto_telemetry_spans_exported_total {exported}");
            out.push_str(
                "# HELP gitauto_telemetry_spans_dropped_total Trace spans dropped: the export queue was full or the \
                 collector failed.\n",
            );
            out.push_str("# TYPE gitauto_telemetry_spans_dropped_total counter\n");
            let _ = writeln!(out, "gitauto_telemetry_spans_dropped_total {dropped}");
            out.push_str("# HELP gitauto_jobs_finished_total Jobs finished since start, by rule and state.\n");
            out.push_str("# TYPE gitauto_jobs_finished_total counter\n");
            for ((rule, state), n) in &m.finished {
                let _ = writeln!(out, "gitauto_jobs_finished_total{{rule=\"{}\",state=\"{state}\"}} {n}", escape(rule));
            }
            out.push_str("# HELP gitauto_step_duration_seconds Time a step took, by plugin.\n");
            out.push_str("# TYPE gitauto_step_duration_seconds histogram\n");
            for (plugin, h) in &m.steps {
                h.render(
                    &mut out,
                    "gitauto_step_duration_seconds",
                    &format!("plugin=\"{}\"", escape(plugin)),
                    STEP_BUCKETS,
                );
            }
            render_bills(&mut out, &m.bills);
        });
        // Ingest (issue 23): requests per commit of the queue's writer.
        out.push_str("# HELP gitauto_queue_commit_batch Requests each queue commit carried (group commit).\n");
        out.push_str("# TYPE gitauto_queue_commit_batch histogram\n");
        let (buckets, sum, count) = crate::queue::CommitBatches::read();
        for (bound, n) in crate::queue::BATCH_BUCKETS.iter().zip(buckets) {
            let _ = writeln!(out, "gitauto_queue_commit_batch_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "gitauto_queue_commit_batch_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "gitauto_queue_commit_batch_sum {sum}");
        let _ = writeln!(out, "gitauto_queue_commit_batch_count {count}");
        // PG (issue 23): wake-ups other nodes sent through PostgreSQL's NOTIFY.
        out.push_str(
            "# HELP gitauto_queue_wakeups_total Idle workers woken by another node's notification (PostgreSQL).\n\
             # TYPE gitauto_queue_wakeups_total counter\n",
        );
        let _ = writeln!(out, "gitauto_queue_wakeups_total{{from=\"notify\"}} {}", queue.wakeups_from_others());
        Ok(out)
    }
}

/// A counter of the bills: its name, its help, and what it sums of a plugin's bills.
type BillCounter = (&'static str, &'static str, fn(&Bills) -> f64);

/// The sums of the step bills (issue 24), per plugin and capability.
fn render_bills(out: &mut String, bills: &BTreeMap<String, Bills>) {
    let seconds = |us: u64| us as f64 / 1e6;
    let counters: [BillCounter; 3] = [
        (
            "gitauto_step_wall_seconds_total",
            "Wall time of steps whose plugin ran, from the step's start to the plugin's return, by plugin.",
            |b| b.wall_us as f64 / 1e6,
        ),
        (
            "gitauto_step_cpu_seconds_total",
            "CPU time of the threads that ran plugins and their host calls, by plugin.",
            |b| b.cpu_us as f64 / 1e6,
        ),
        (
            "gitauto_step_epoch_ticks_total",
            "Epoch ticks (10 ms each, the unit of the deadline) that passed while plugins ran, by plugin.",
            |b| b.epoch_ticks as f64,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (plugin, sums) in bills {
            let _ = writeln!(out, "{name}{{plugin=\"{}\"}} {}", escape(plugin), value(sums));
        }
    }
    out.push_str("# HELP gitauto_step_peak_memory_bytes The most linear memory a step held, by plugin.\n");
    out.push_str("# TYPE gitauto_step_peak_memory_bytes histogram\n");
    for (plugin, sums) in bills {
        let labels = format!("plugin=\"{}\"", escape(plugin));
        sums.memory.render(out, "gitauto_step_peak_memory_bytes", &labels, MEMORY_BUCKETS);
    }
    out.push_str("# HELP gitauto_host_calls_total Plugins' calls to the host, by plugin and capability.\n");
    out.push_str("# TYPE gitauto_host_calls_total counter\n");
    for (plugin, sums) in bills {
        for (capability, (count, _)) in &sums.calls {
            let (plugin, capability) = (escape(plugin), escape(capability));
            let _ =
                writeln!(out, "gitauto_host_calls_total{{plugin=\"{plugin}\",capability=\"{capability}\"}} {count}");
        }
    }
    out.push_str("# HELP gitauto_host_call_seconds_total Time plugins' host calls took, by plugin and capability.\n");
    out.push_str("# TYPE gitauto_host_call_seconds_total counter\n");
    for (plugin, sums) in bills {
        for (capability, (_, us)) in &sums.calls {
            let (plugin, capability) = (escape(plugin), escape(capability));
            let _ = writeln!(
                out,
                "gitauto_host_call_seconds_total{{plugin=\"{plugin}\",capability=\"{capability}\"}} {}",
                seconds(*us)
            );
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exposition_format() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        let metrics = Metrics::default();
        metrics.delivery("github", "queued");
        metrics.delivery("github", "queued");
        metrics.coalesced(3);
        metrics.step("fetch-update", Duration::from_millis(30));
        let mut bill = crate::step::StepBill {
            wall_us: 150_000,
            cpu_us: 20_000,
            peak_memory: 12 << 20,
            epoch_ticks: 15,
            calls: BTreeMap::new(),
        };
        bill.calls.insert("http".into(), crate::step::CallBill { count: 3, time_us: 30_000 });
        metrics.bill("fetch\"update", &bill);
        metrics.bill("fetch\"update", &bill);
        let text = metrics.render(&queue).await.unwrap();
        assert!(text.contains("gitauto_step_wall_seconds_total{plugin=\"fetch\\\"update\"} 0.3\n"), "{text}");
        assert!(text.contains("gitauto_step_cpu_seconds_total{plugin=\"fetch\\\"update\"} 0.04\n"), "{text}");
        assert!(text.contains("gitauto_step_epoch_ticks_total{plugin=\"fetch\\\"update\"} 30\n"), "{text}");
        assert!(text.contains("gitauto_step_peak_memory_bytes_bucket{plugin=\"fetch\\\"update\",le=\"4194304\"} 0\n"));
        assert!(text.contains("gitauto_step_peak_memory_bytes_bucket{plugin=\"fetch\\\"update\",le=\"16777216\"} 2\n"));
        assert!(text.contains("gitauto_step_peak_memory_bytes_count{plugin=\"fetch\\\"update\"} 2\n"));
        assert!(text.contains("gitauto_host_calls_total{plugin=\"fetch\\\"update\",capability=\"http\"} 6\n"));
        assert!(
            text.contains("gitauto_host_call_seconds_total{plugin=\"fetch\\\"update\",capability=\"http\"} 0.06\n")
        );
        assert!(text.contains("gitauto_deliveries_total{source=\"github\",verdict=\"queued\"} 2\n"), "{text}");
        assert!(text.contains("gitauto_coalesced_events_total 3\n"));
        assert!(text.contains("gitauto_step_duration_seconds_bucket{plugin=\"fetch-update\",le=\"0.025\"} 0\n"));
        assert!(text.contains("gitauto_step_duration_seconds_bucket{plugin=\"fetch-update\",le=\"0.05\"} 1\n"));
        assert!(text.contains("gitauto_jobs{state=\"dead\"} 0\n"));
        assert!(text.contains("gitauto_queue_depth 0\n"));
        assert!(text.contains("gitauto_nodes_config_differs 0\n"), "{text}");
        assert!(!text.contains("gitauto_config_info"), "a node that never joined has no fingerprint: {text}");
        queue.join_with_config(1, Some("0123456789ab".to_owned())).await.unwrap();
        let text = metrics.render(&queue).await.unwrap();
        assert!(text.contains("gitauto_config_info{fingerprint=\"0123456789ab\"} 1\n"), "{text}");
    }
}
