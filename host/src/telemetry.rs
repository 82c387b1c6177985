//! Traces over OTLP/HTTP (`[telemetry]`): spans recorded in memory by ingest, the workers
//! and the capabilities, handed to a background exporter through a bounded queue
//! (`telemetry/export.rs`) that posts them as OTLP protobuf (`telemetry/otlp.rs`).
//! With no `otlp_endpoint` there is no [`Telemetry`] at all: no span, id or task.

mod export;
pub mod otlp;

use crate::config::telemetry::Telemetry as Settings;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;

/// Spans waiting for the exporter at most; more are dropped (and counted).
pub const QUEUE: usize = 2048;

/// Spans exported and dropped since start, shown in `/metrics`; kept across reloads.
#[derive(Debug, Default)]
pub struct SpanCounts {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped: the queue was full, or the collector failed or refused them.
    pub dropped: AtomicU64,
}

/// A span's place in a trace: W3C trace id and span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (16 bytes, never all zero).
    pub trace: [u8; 16],
    /// The span id (8 bytes, never all zero).
    pub span: [u8; 8],
}

impl TraceContext {
    /// The W3C `traceparent` header value (version 00, sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", hex::encode(self.trace), hex::encode(self.span))
    }

    /// Reads a `traceparent` value; none when it is not one (a stored value is only ever
    /// written by [`Self::traceparent`], but a store is shared with other versions).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, _flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let mut context = TraceContext { trace: [0; 16], span: [0; 8] };
        hex::decode_to_slice(trace, &mut context.trace).ok()?;
        hex::decode_to_slice(span, &mut context.span).ok()?;
        (context.trace != [0; 16] && context.span != [0; 8]).then_some(context)
    }
}

/// What a span says about the work it covers, as OTLP kinds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside gitauto.
    Internal,
    /// A request gitauto serves (a delivery).
    Server,
    /// A request gitauto makes (a plugin's HTTP request, a fetch).
    Client,
    /// Work picked up from the queue (a job).
    Consumer,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// Yes or no.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Str(text.to_owned())
    }
}
impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Str(text)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<u16> for Value {
    fn from(n: u16) -> Self {
        Value::Int(n.into())
    }
}
impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(yes: bool) -> Self {
        Value::Bool(yes)
    }
}

/// A finished span, as the exporter sends it.
#[derive(Debug, Clone)]
pub struct SpanData {
    /// Its trace and id.
    pub context: TraceContext,
    /// Its parent's span id; none for a root.
    pub parent: Option<[u8; 8]>,
    /// What it covers (`delivery`, `rule`, `job`, `step`, `http.request`).
    pub name: Cow<'static, str>,
    /// Its kind.
    pub kind: Kind,
    /// Start and end, in nanoseconds since the Unix epoch (the start from the wall
    /// clock, the end that plus a monotonic duration: a clock step never makes a span
    /// end before it starts).
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// Its attributes, in the order set.
    pub attributes: Vec<(&'static str, Value)>,
    /// Other spans it relates to (the other deliveries coalesced into a job).
    pub links: Vec<TraceContext>,
    /// Why it failed, when it did (status ERROR).
    pub error: Option<String>,
}

/// Tracing on: where spans go. Cheap to clone; the exporter stops when the last clone
/// (and every span made from it) is gone, after sending what it holds.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    spans: mpsc::Sender<SpanData>,
    counts: Arc<SpanCounts>,
    /// When a drop was last logged (ms since start of the exporter), so a down collector
    /// logs once a minute, not per span.
    logged_drop: AtomicU64,
    born: Instant,
}

impl Telemetry {
    /// Starts exporting to `settings`' endpoint from this node (`host.name`), counting in
    /// `counts`. Must be called inside the tokio runtime (the exporter is a task of it).
    pub fn start(settings: &Settings, node: &str, counts: Arc<SpanCounts>) -> anyhow::Result<Self> {
        let (spans, queued) = mpsc::channel(QUEUE);
        let inner = Arc::new(Inner {
            settings: settings.clone(),
            spans,
            counts: counts.clone(),
            logged_drop: AtomicU64::new(u64::MAX),
            born: Instant::now(),
        });
        let exporter = export::Exporter::new(settings, node, counts)?;
        tokio::spawn(exporter.run(queued));
        tracing::info!(endpoint = %settings.endpoint, "exporting traces over OTLP/HTTP");
        Ok(Self { inner })
    }

    /// The settings it exports with (a reload compares them with the new config's).
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// A span that starts a trace.
    pub fn root(&self, name: impl Into<Cow<'static, str>>, kind: Kind) -> Span {
        let context = TraceContext { trace: random(), span: random() };
        Span::open(self.clone(), context, None, name.into(), kind)
    }

    /// A span under `parent` (read back from the store: a job's delivery).
    pub fn child_of(&self, parent: TraceContext, name: impl Into<Cow<'static, str>>, kind: Kind) -> Span {
        let context = TraceContext { trace: parent.trace, span: random() };
        Span::open(self.clone(), context, Some(parent.span), name.into(), kind)
    }

    fn finished(&self, span: SpanData) {
        if let Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) =
            self.inner.spans.try_send(span)
        {
            self.dropped(1, "the exporter's queue is full (the collector is slow or down)");
        }
    }

    fn dropped(&self, spans: u64, why: &str) {
        dropped(&self.inner.counts, &self.inner.logged_drop, self.inner.born, spans, why);
    }
}

/// Counts `spans` dropped, and logs it at most once a minute.
fn dropped(counts: &SpanCounts, logged: &AtomicU64, born: Instant, spans: u64, why: &str) {
    let total = counts.dropped.fetch_add(spans, Ordering::Relaxed) + spans;
    let now = born.elapsed().as_millis() as u64;
    let last = logged.load(Ordering::Relaxed);
    if (last == u64::MAX || now.saturating_sub(last) >= 60_000)
        && logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        tracing::warn!(dropped_total = total, "dropping trace spans: {why}");
    }
}

/// A span being recorded; sent to the exporter when dropped (never blocking: a full
/// queue drops it).
pub struct Span {
    telemetry: Telemetry,
    data: SpanData,
    started: Instant,
}

impl Span {
    fn open(
        telemetry: Telemetry,
        context: TraceContext,
        parent: Option<[u8; 8]>,
        name: Cow<'static, str>,
        kind: Kind,
    ) -> Self {
        let start_ns = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let data = SpanData {
            context,
            parent,
            name,
            kind,
            start_ns,
            end_ns: start_ns,
            attributes: Vec::new(),
            links: Vec::new(),
            error: None,
        };
        Self { telemetry, data, started: Instant::now() }
    }

    /// Its trace and id.
    pub fn context(&self) -> TraceContext {
        self.data.context
    }

    /// What a child needs, for code that runs elsewhere (a blocking thread, a step).
    pub fn parent(&self) -> Parent {
        Parent { telemetry: self.telemetry.clone(), context: self.data.context }
    }

    /// A span under this one.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: Kind) -> Span {
        self.telemetry.child_of(self.data.context, name, kind)
    }

    /// Sets an attribute (a key set twice keeps the last value).
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = match value.into() {
            Value::Str(text) => Value::Str(capped(text)),
            other => other,
        };
        match self.data.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.data.attributes.push((key, value)),
        }
    }

    /// Links another span (of this trace or another).
    pub fn link(&mut self, other: TraceContext) {
        self.data.links.push(other);
    }

    /// Marks it failed, with why.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.data.error = Some(capped(why.into()));
    }
}

/// Most bytes of one attribute or status message: a span's text may come from a plugin
/// (a URL it asked for), and the exporter's queue holds thousands of spans.
const MAX_TEXT: usize = 1024;

fn capped(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let kept = crate::capability::log::cut(&text, MAX_TEXT).len();
        text.truncate(kept);
        text.push('…');
    }
    text
}

impl Drop for Span {
    fn drop(&mut self) {
        let took = self.started.elapsed().as_nanos() as u64;
        let context = self.data.context;
        let mut data = std::mem::replace(
            &mut self.data,
            SpanData {
                context,
                parent: None,
                name: Cow::Borrowed(""),
                kind: Kind::Internal,
                start_ns: 0,
                end_ns: 0,
                attributes: Vec::new(),
                links: Vec::new(),
                error: None,
            },
        );
        data.end_ns = data.start_ns.saturating_add(took);
        self.telemetry.finished(data);
    }
}

/// A span's context with the telemetry it belongs to: what code that runs apart from
/// the span (a blocking thread, a step's host calls) makes children with.
#[derive(Clone)]
pub struct Parent {
    telemetry: Telemetry,
    context: TraceContext,
}

impl Parent {
    /// A span under it.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: Kind) -> Span {
        self.telemetry.child_of(self.context, name, kind)
    }

    /// Its trace and span id.
    pub fn context(&self) -> TraceContext {
        self.context
    }
}

impl std::fmt::Debug for Parent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parent({})", self.context.traceparent())
    }
}

/// Random bytes, never all zero (W3C: all-zero ids are invalid).
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    while bytes.iter().all(|b| *b == 0) {
        getrandom::fill(&mut bytes).expect("the OS gives random bytes (ids are made only with tracing on)");
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stalled_collector_costs_at_most_the_queue_and_the_rest_is_dropped_and_counted() {
        // A collector that takes connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let settings = Settings {
            endpoint: format!("http://{addr}/v1/traces"),
            headers: Vec::new(),
            service_name: "test".into(),
            timeout: Duration::from_secs(60),
        };
        let counts = Arc::new(SpanCounts::default());
        let telemetry = Telemetry::start(&settings, "node", counts.clone()).unwrap();
        let made = QUEUE + export::BATCH + 1000;
        for _ in 0..made {
            let mut span = telemetry.root("burst", Kind::Internal);
            span.set("n", 1i64);
        }
        // Never more than the queue and the one batch in the exporter's hands are held.
        let dropped = counts.dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped >= made - QUEUE - export::BATCH, "{dropped} of {made} dropped");
        assert_eq!(counts.exported.load(Ordering::Relaxed), 0);
        held.abort();
    }

    #[test]
    fn traceparent_round_trips_and_bad_ones_are_refused() {
        let context = TraceContext { trace: [0xab; 16], span: [0x01; 8] };
        let text = context.traceparent();
        assert_eq!(text, "00-abababababababababababababababab-0101010101010101-01");
        assert_eq!(TraceContext::parse(&text), Some(context));
        for bad in [
            "",
            "01-abababababababababababababababab-0101010101010101-01",
            "00-00000000000000000000000000000000-0101010101010101-01",
            "00-abababababababababababababababab-0000000000000000-01",
            "00-abab-0101010101010101-01",
            "00-abababababababababababababababab-0101010101010101-01-x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }
}
