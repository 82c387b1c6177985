//! Ingest: the one pipeline every way in calls — a webhook, a redelivery from the record,
//! a manual trigger, gitreload's endpoints, a schedule tick, a delivery caught up from a
//! forge's API, a ref seen moving by polling. It knows no HTTP: in go the source, the
//! headers as plain data, the raw body and how it was admitted; out comes one typed
//! [`Ingested`]. The stages: [`read`] (verify before parsing, parse, check names), route
//! (on a blocking thread: changed paths may need a confined diff with its own budget),
//! turn matches into jobs, build the delivery record once, accept it in one transaction.

mod internal;

use crate::config::{Config, Source};
use crate::event::Event;
use crate::forge::{Headers, Incoming, Origin, ParseError};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::queue::{DeliveryVerdict, NewDelivery, NewJob, Queue, StoredBody};
use crate::route::{self, Routing, Verdict};
use crate::telemetry::{Kind, Parent, Span};
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::time::SystemTime;

pub use internal::{MANUAL, SCHEDULE, manual_event};

/// Headers that authenticate a delivery: never stored.
const SECRET_HEADERS: &[&str] = &[
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-token",
    "x-gitea-signature",
    "x-forgejo-signature",
    "x-gogs-signature",
    "webhook-signature",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// Bodies up to this size are verified and parsed on the calling thread.
const READ_IN_PLACE: usize = 64 * 1024;

/// Delivery id prefixes of the deliveries gitauto makes itself (schedule ticks, polled refs).
const RESERVED_ID_PREFIXES: &[&str] = &["schedule:", "poll:"];

/// How a delivery came in: decides whether its signature is checked, how it is parsed,
/// which rules it is routed to, and is recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// `POST /hooks/{source}`: signed by the forge, checked against the source's secrets.
    Webhook,
    /// A stored delivery run again under the current config; verified when it first came.
    Redelivery {
        /// The stored delivery's sequence number.
        of: i64,
    },
    /// `POST /api/events` (behind the API token): starts the named manual rule.
    Manual {
        /// The rule.
        rule: String,
    },
    /// A gitreload endpoint: signed like a webhook, queued for the endpoint's own rule only.
    Compat {
        /// The compat rule the endpoint runs.
        rule: String,
        /// It carries no signature and came from `allow_unsigned_from` (the endpoint
        /// decided): not verified.
        unsigned_allowed: bool,
    },
    /// A tick of a schedule rule.
    Schedule {
        /// The rule.
        rule: String,
    },
    /// Fetched from the forge's API after the webhook was missed; it came over the
    /// authenticated API, so its signature is not checked again.
    CatchUp,
    /// A ref seen moving by polling the remote, with no delivery for it.
    Poll,
    /// `gitauto run`: a payload from the operator's file, in a scratch queue.
    Local,
}

impl Admitted {
    /// The name recorded with the delivery (`arrived`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Admitted::Webhook => "webhook",
            Admitted::Redelivery { .. } => "redelivery",
            Admitted::Manual { .. } => "manual",
            Admitted::Compat { .. } => "compat",
            Admitted::Schedule { .. } => "schedule",
            Admitted::CatchUp => "catch-up",
            Admitted::Poll => "poll",
            Admitted::Local => "local",
        }
    }

    /// Whether the forge's signature is checked: only for bytes that came straight from
    /// the network.
    fn verifies(&self) -> bool {
        matches!(self, Admitted::Webhook | Admitted::Compat { unsigned_allowed: false, .. })
    }
}

/// A delivery to ingest.
#[derive(Debug, Clone)]
pub struct Input {
    /// The `[sources.NAME]` it came through (`manual` and `schedule` for those).
    pub source: String,
    /// Its headers.
    pub headers: Headers,
    /// Its body, as received.
    pub body: Bytes,
    /// How it came in.
    pub admitted: Admitted,
    /// The delivery id to record; `None`: the forge's (from the headers) or a fresh one.
    pub delivery: Option<String>,
}

impl Input {
    /// A webhook as it arrived at `POST /hooks/{source}`.
    pub fn webhook(source: &str, headers: Headers, body: Bytes) -> Self {
        Self { source: source.to_owned(), headers, body, admitted: Admitted::Webhook, delivery: None }
    }

    /// A stored delivery, to run again under a new id.
    pub fn redelivery(stored: &crate::queue::StoredDelivery) -> Self {
        Self {
            source: stored.source.clone(),
            headers: restore_headers(&stored.headers),
            body: Bytes::from(stored.body.clone()),
            admitted: Admitted::Redelivery { of: stored.seq },
            delivery: Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// A delivery fetched from the forge's API (GitHub hook deliveries, GitLab hook
    /// events): the forge's own headers, body and delivery id.
    pub fn catch_up(source: &str, delivery: &str, headers: Headers, body: Bytes) -> Self {
        Self {
            source: source.to_owned(),
            headers,
            body,
            admitted: Admitted::CatchUp,
            delivery: Some(delivery.to_owned()),
        }
    }
}

/// What the read stage made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The signature did not verify; why.
    Rejected(String),
    /// The payload could not be read, or a name in it is unsafe.
    Invalid(ParseError),
    /// It was read.
    Incoming(Incoming),
}

/// Each rule's verdict on one event of a delivery (stored as the delivery's `rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventVerdicts {
    /// The event's ref.
    pub git_ref: Option<String>,
    /// The verdicts, in rule order.
    pub rules: Vec<Verdict>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its signature did not verify; nothing was queued.
    Rejected(String),
    /// It could not be read; nothing was queued.
    Invalid(ParseError),
    /// The forge checking the hook.
    Ping,
    /// An event kind gitauto does not act on; why.
    Ignored(String),
    /// No rule matched any of its events; why, per event.
    Unmatched(String),
    /// Jobs were queued (or, for a duplicate, had been).
    Queued,
}

impl Outcome {
    /// The verdict recorded for it.
    pub fn verdict(&self) -> DeliveryVerdict {
        match self {
            Outcome::Rejected(_) => DeliveryVerdict::Rejected,
            Outcome::Invalid(_) => DeliveryVerdict::Invalid,
            Outcome::Ping => DeliveryVerdict::Ping,
            Outcome::Ignored(_) => DeliveryVerdict::Ignored,
            Outcome::Unmatched(_) => DeliveryVerdict::Unmatched,
            Outcome::Queued => DeliveryVerdict::Queued,
        }
    }

    /// Why, for every outcome but a queued one and a ping.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Rejected(why) | Outcome::Ignored(why) | Outcome::Unmatched(why) => Some(why.clone()),
            Outcome::Invalid(err) => Some(err.to_string()),
            Outcome::Ping | Outcome::Queued => None,
        }
    }
}

/// The result of ingesting a delivery.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The delivery id recorded.
    pub delivery: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Each event's rule verdicts (empty unless it was read into events).
    pub verdicts: Vec<EventVerdicts>,
    /// The jobs that carry it (for a duplicate: the original's).
    pub jobs: Vec<String>,
    /// Whether this delivery id had been accepted before (nothing new was queued).
    pub duplicate: bool,
    /// How many of `jobs` were already queued and took this delivery's event instead.
    pub coalesced: usize,
    /// Whether the record was written: false only for a refused delivery whose record
    /// could not be stored (accepted ones fail with [`IngestError::Store`] instead).
    pub recorded: bool,
}

/// Why a delivery could not be ingested at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No `[sources.NAME]` by that name.
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    /// The queue did not store it; nothing was queued, so the sender may try again.
    #[error("storing the delivery failed: {0:#}")]
    Store(anyhow::Error),
    /// Reading or routing did not finish (its blocking thread panicked or was cancelled).
    #[error("reading or routing the delivery failed: {0}")]
    Routing(String),
}

/// The pipeline, with what every stage needs. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    live: Arc<Live>,
    queue: Queue,
    metrics: Arc<Metrics>,
    /// The daemon's forge API client, whose GitHub App tokens an installation event
    /// revokes; `None` where nothing mints tokens.
    apis: Option<crate::forge_api::ForgeApis>,
}

impl Pipeline {
    /// A pipeline over the running config, the queue and the counters.
    pub fn new(live: Arc<Live>, queue: Queue, metrics: Arc<Metrics>) -> Self {
        Self { live, queue, metrics, apis: None }
    }

    /// The pipeline, dropping `apis`' cached GitHub App tokens of installations that
    /// deliveries say were deleted, suspended or lost repositories.
    pub fn with_apis(self, apis: crate::forge_api::ForgeApis) -> Self {
        Self { apis: Some(apis), ..self }
    }

    /// The queue deliveries are accepted into.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Reads, routes, records and accepts `input` under the config current now.
    pub async fn ingest(&self, input: Input) -> Result<Ingested, IngestError> {
        let config = self.live.config();
        // Tracing on: the delivery's span is the root of its trace (jobs hang under it).
        let root = self.live.telemetry().map(|telemetry| telemetry.root("delivery", Kind::Server));
        let parent = root.as_ref().map(Span::parent);
        // Verifying and parsing a large body is CPU work: off the async threads. A small
        // one is read in place (a thread hop would cost more than the parse).
        let (input, read) = if input.body.len() > READ_IN_PLACE {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                let mut input = input;
                let read = read_traced(&config, &mut input, parent.as_ref());
                (input, read)
            })
            .await
            .map_err(|err| IngestError::Routing(err.to_string()))?
        } else {
            let mut input = input;
            let read = read_traced(&config, &mut input, parent.as_ref());
            (input, read)
        };
        self.admit_traced(config, input, read?, root).await
    }

    /// The config current now (a delivery keeps the one it was read under).
    pub fn config(&self) -> Arc<Config> {
        self.live.config()
    }

    /// Routes, records and accepts a delivery already [`read`] under `config` (for
    /// callers that look at the events before admitting them, as gitreload's endpoints do).
    pub async fn admit(&self, config: Arc<Config>, input: Input, read: Read) -> Result<Ingested, IngestError> {
        let root = self.live.telemetry().map(|telemetry| telemetry.root("delivery", Kind::Server));
        self.admit_traced(config, input, read, root).await
    }

    /// [`Self::admit`] under the delivery's span `root`, when tracing is on.
    async fn admit_traced(
        &self,
        config: Arc<Config>,
        mut input: Input,
        read: Read,
        mut root: Option<Span>,
    ) -> Result<Ingested, IngestError> {
        let delivery = identify(&config, &mut input);
        if let Some(root) = &mut root {
            root.set("gitauto.delivery.id", delivery.as_str());
            root.set("gitauto.source", input.source.as_str());
            root.set("gitauto.arrived", input.admitted.as_str());
        }
        let span =
            tracing::info_span!("delivery", id = %delivery, source = %input.source, arrived = input.admitted.as_str());
        let incoming = match read {
            Read::Rejected(reason) => {
                span.in_scope(|| tracing::warn!("rejected: {reason}"));
                return Ok(self.decline_traced(&config, input, Outcome::Rejected(reason), &[], root).await);
            }
            Read::Invalid(err) => {
                span.in_scope(|| tracing::warn!("unreadable: {err}"));
                return Ok(self.decline_traced(&config, input, Outcome::Invalid(err), &[], root).await);
            }
            Read::Incoming(incoming) => incoming,
        };
        if let (Some(apis), Incoming::Events(events)) = (&self.apis, &incoming) {
            for installation in events.iter().filter_map(crate::forge_api::revoked_installation) {
                span.in_scope(|| tracing::info!(installation, "dropping the GitHub App tokens of installation"));
                apis.forget_installation(installation);
            }
        }
        let (outcome, events, verdicts, jobs) = match incoming {
            Incoming::Ping => (Outcome::Ping, Vec::new(), Vec::new(), Vec::new()),
            Incoming::Ignored(why) => (Outcome::Ignored(why), Vec::new(), Vec::new(), Vec::new()),
            Incoming::Events(events) => {
                // Routing may diff a clone for changed paths (blocking, with its own time
                // budget): then off the async threads; otherwise it is pure and quick.
                let parent = root.as_ref().map(Span::parent);
                let routed = if may_read_clones(&config, &events) {
                    let (config, input) = (config.clone(), input.clone());
                    tokio::task::spawn_blocking(move || route_events(&config, &input, events, parent.as_ref()))
                        .await
                        .map_err(|err| IngestError::Routing(err.to_string()))?
                } else {
                    route_events(&config, &input, events, parent.as_ref())
                };
                let outcome = match routed.unmatched {
                    Some(why) => Outcome::Unmatched(why),
                    None => Outcome::Queued,
                };
                (outcome, routed.events, routed.verdicts, routed.jobs)
            }
        };
        let mut record = record(&config, &input, &delivery, &outcome, &events, &verdicts);
        if let Some(root) = &mut root {
            describe(root, &record);
            record.trace = Some(root.context().traceparent());
        }
        // A task of its own, awaited here: a client that hangs up makes hyper drop this
        // future, and a delivery the queue commits must still be counted and logged.
        let accepting = root.as_ref().map(|root| root.child("accept", Kind::Internal));
        let committing = tokio::spawn(self.clone().commit(
            config,
            input,
            record,
            jobs,
            events,
            outcome.verdict(),
            (span, accepting),
        ));
        let accepted = committing.await.map_err(|err| IngestError::Store(anyhow::anyhow!("{err}")))?;
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if let Some(root) = &mut root {
                    root.fail(err.to_string());
                }
                return Err(err);
            }
        };
        if let Some(root) = &mut root {
            root.set("gitauto.job.ids", accepted.jobs.join(","));
            root.set("gitauto.delivery.duplicate", accepted.duplicate);
        }
        Ok(Ingested {
            delivery: accepted.delivery,
            outcome,
            verdicts,
            jobs: accepted.jobs,
            duplicate: accepted.duplicate,
            coalesced: accepted.coalesced,
            recorded: true,
        })
    }

    /// Accepts `record` with `jobs` in one transaction, acts on re-run requests among
    /// `events`, then counts and logs the delivery under `span`.
    #[allow(clippy::too_many_arguments, reason = "the parts of one delivery, moved into its task")]
    async fn commit(
        self,
        config: Arc<Config>,
        input: Input,
        record: NewDelivery,
        jobs: Vec<NewJob>,
        events: Vec<Event>,
        verdict: DeliveryVerdict,
        (span, mut accepting): (tracing::Span, Option<Span>),
    ) -> Result<crate::queue::Accepted, IngestError> {
        let accepted = match self.queue.accept(record, jobs).await {
            Ok(accepted) => accepted,
            Err(err) => {
                span.in_scope(|| tracing::error!("storing the delivery failed: {err:#}"));
                if let Some(accepting) = &mut accepting {
                    accepting.fail(format!("{err:#}"));
                }
                return Err(IngestError::Store(err));
            }
        };
        if let Some(mut accepting) = accepting {
            accepting.set("gitauto.job.ids", accepted.jobs.join(","));
            accepting.set("gitauto.delivery.duplicate", accepted.duplicate);
            accepting.set("gitauto.jobs.coalesced", accepted.coalesced);
        }
        if !accepted.duplicate && matches!(input.admitted, Admitted::Webhook | Admitted::Redelivery { .. }) {
            for event in events.iter().filter(|event| event.action.as_deref() == Some("rerequested")) {
                match crate::report::rerun(&self.queue, &config, event).await {
                    Ok(jobs) if !jobs.is_empty() => span.in_scope(|| tracing::info!(?jobs, "re-run requested")),
                    Ok(_) => {}
                    Err(err) => span.in_scope(|| tracing::error!("acting on a re-run request: {err:#}")),
                }
            }
        }
        let shown = if accepted.duplicate { "duplicate" } else { verdict.as_str() };
        self.metrics.delivery(&input.source, shown);
        self.metrics.coalesced(accepted.coalesced);
        span.in_scope(|| {
            if accepted.duplicate {
                tracing::info!("duplicate delivery; jobs {:?}", accepted.jobs);
            } else {
                tracing::info!(jobs = ?accepted.jobs, "accepted");
            }
        });
        Ok(accepted)
    }

    /// Records a delivery that an endpoint refused or ignored after its own checks
    /// (gitreload's: no checkout by that name, another branch, an event it does not
    /// handle), with `events` when it was read, and counts it like every other.
    pub async fn decline(&self, config: &Config, input: Input, outcome: Outcome, events: &[Event]) -> Ingested {
        let root = self.live.telemetry().map(|telemetry| telemetry.root("delivery", Kind::Server));
        self.decline_traced(config, input, outcome, events, root).await
    }

    /// [`Self::decline`] under the delivery's span `root`, when tracing is on.
    async fn decline_traced(
        &self,
        config: &Config,
        mut input: Input,
        outcome: Outcome,
        events: &[Event],
        mut root: Option<Span>,
    ) -> Ingested {
        let delivery = identify(config, &mut input);
        let mut record = record(config, &input, &delivery, &outcome, events, &[]);
        if let Some(root) = &mut root {
            root.set("gitauto.delivery.id", delivery.as_str());
            root.set("gitauto.source", input.source.as_str());
            describe(root, &record);
            record.trace = Some(root.context().traceparent());
        }
        self.metrics.delivery(&input.source, outcome.verdict().as_str());
        let recorded = match self.queue.accept(record, Vec::new()).await {
            Ok(_) => true,
            Err(err) => {
                tracing::error!(delivery = %delivery, "recording the declined delivery failed: {err:#}");
                false
            }
        };
        Ingested { delivery, outcome, verdicts: Vec::new(), jobs: Vec::new(), duplicate: false, coalesced: 0, recorded }
    }
}

/// Verifies (when the admission calls for it) and parses `input`, and checks every
/// name in its events. Pure: no I/O. Settles the delivery id the events carry and the
/// record will have.
pub fn read(config: &Config, input: &mut Input) -> Result<Read, IngestError> {
    read_traced(config, input, None)
}

/// [`read`], with the signature check and the parse as spans under `trace`.
fn read_traced(config: &Config, input: &mut Input, trace: Option<&Parent>) -> Result<Read, IngestError> {
    let delivery = identify(config, input);
    // The HTTP server refuses such a body before reading it; a caught-up one is refused here.
    let limit = config.server.max_body;
    if input.body.len() > limit {
        return Ok(Read::Invalid(ParseError::TooLarge { size: input.body.len(), limit }));
    }
    let incoming = match &input.admitted {
        Admitted::Manual { rule } => internal::manual(&delivery, rule, &input.body),
        Admitted::Schedule { .. } => internal::schedule(&delivery, &input.body),
        Admitted::Poll => {
            let source = source(config, &input.source)?;
            internal::poll(&delivery, source, &input.body)
        }
        admitted => {
            let source = source(config, &input.source)?;
            // Verify before parse: until the signature checks out, the body is attacker-controlled.
            if admitted.verifies() && !source.allow_unsigned {
                let mut checking = trace.map(|parent| parent.child("verify signature", Kind::Internal));
                let verified = source.dialect.verify(&input.headers, &input.body, &source.secrets, SystemTime::now());
                if let Some(checking) = &mut checking {
                    checking.set("gitauto.signature.valid", verified.is_ok());
                    if let Err(err) = &verified {
                        checking.fail(err.to_string());
                    }
                }
                if let Err(err) = verified {
                    return Ok(Read::Rejected(err.to_string()));
                }
            }
            let at = Origin { source: &source.name, delivery: &delivery };
            let mut parsing = trace.map(|parent| parent.child("parse", Kind::Internal));
            let parsed = source.dialect.parse(&input.headers, &input.body, &at).and_then(refuse_reserved_kinds);
            if let Some(parsing) = &mut parsing {
                match &parsed {
                    Ok(Incoming::Events(events)) => parsing.set("gitauto.events", events.len()),
                    Ok(Incoming::Ping) => parsing.set("gitauto.events", 0usize),
                    Ok(Incoming::Ignored(why)) => parsing.set("gitauto.ignored", why.as_str()),
                    Err(err) => parsing.fail(err.to_string()),
                }
            }
            parsed
        }
    };
    Ok(match incoming {
        Ok(Incoming::Events(events)) => match events.iter().try_for_each(crate::event::names::check) {
            Ok(()) => Read::Incoming(Incoming::Events(events)),
            Err(unsafe_name) => Read::Invalid(unsafe_name.into()),
        },
        Ok(incoming) => Read::Incoming(incoming),
        Err(err) => Read::Invalid(err),
    })
}

/// A forge's events may not take the kinds of the events gitauto makes itself: a
/// `generic` sender names its own kind, and a `manual` or `schedule` event would start
/// the rule its action names, which only the API (behind its token) and the clock may.
fn refuse_reserved_kinds(incoming: Incoming) -> Result<Incoming, ParseError> {
    if let Incoming::Events(events) = &incoming
        && let Some(event) = events.iter().find(|event| matches!(event.kind.as_str(), MANUAL | SCHEDULE))
    {
        let reason = format!("event kind `{}` is reserved for the events gitauto makes itself", event.kind);
        return Err(ParseError::payload(&event.kind, reason));
    }
    Ok(incoming)
}

fn source<'a>(config: &'a Config, name: &str) -> Result<&'a Source, IngestError> {
    config.source(name).ok_or_else(|| IngestError::UnknownSource(name.to_owned()))
}

/// The id a delivery is recorded under, settled once in `input`: the one it was given,
/// else the forge's, when it is a sane token; else a fresh one.
fn identify(config: &Config, input: &mut Input) -> String {
    let from_forge = || {
        let source = config.source(&input.source)?;
        let id = source.dialect.envelope(&input.headers).delivery?;
        // The ids of the deliveries gitauto makes itself: a sender who could pick one
        // would turn a coming tick or poll into a "duplicate" of its own delivery.
        (!RESERVED_ID_PREFIXES.iter().any(|prefix| id.starts_with(prefix))).then_some(id)
    };
    let id = sane_id(input.delivery.clone().or_else(from_forge).as_deref());
    input.delivery = Some(id.clone());
    id
}

/// `id` when it is a sane token, else a fresh one.
fn sane_id(id: Option<&str>) -> String {
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// Whether routing `events` may read a clone (some rule filters on paths, and some event's
/// payload does not list them).
fn may_read_clones(config: &Config, events: &[Event]) -> bool {
    config.rules.iter().any(|rule| rule.paths.is_set()) && events.iter().any(route::paths::needs_clone)
}

/// The jobs a delivery's events queue, and what to record about the routing.
struct Routed {
    events: Vec<Event>,
    jobs: Vec<NewJob>,
    verdicts: Vec<EventVerdicts>,
    /// Why nothing matched, when nothing did.
    unmatched: Option<String>,
}

/// Routes each event to the rules its admission allows: every `[[rules]]` rule for a
/// forge's events; only the rule it was made for for a manual or schedule event; the
/// endpoint's own rule, unconditionally, for gitreload's (its checks were the endpoint's).
fn route_events(config: &Config, input: &Input, events: Vec<Event>, trace: Option<&Parent>) -> Routed {
    let content_type = input.headers.get("content-type");
    let payload = || crate::forge::payload_text(content_type, &input.body);
    let mut jobs = Vec::new();
    let mut verdicts = Vec::new();
    let mut unmatched = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let routing = Routing::new(config, event, &payload);
        let (rules, why_not): (Vec<Verdict>, Option<String>) = match &input.admitted {
            Admitted::Compat { rule, .. } => {
                let forced = Verdict { rule: rule.clone(), matched: true, reason: String::new(), note: String::new() };
                (vec![forced], None)
            }
            Admitted::Manual { rule } | Admitted::Schedule { rule } => match config.rule(rule) {
                Some(found) => {
                    let verdict = routing.verdict(found);
                    let why = format!("rule \"{rule}\": {}", verdict.reason);
                    (vec![verdict], Some(why))
                }
                None => (Vec::new(), Some(format!("no rule named `{rule}`"))),
            },
            _ => {
                let rules = routing.explain();
                let why = if rules.is_empty() {
                    "no rules are configured".to_owned()
                } else {
                    let each: Vec<String> =
                        rules.iter().map(|v| format!("rule \"{}\": {}", v.rule, v.reason)).collect();
                    format!("no rule matched: {}", each.join("; "))
                };
                (rules, Some(why))
            }
        };
        if let Some(parent) = trace {
            // `explain` judges every rule at once: one span per verdict, after the fact.
            for verdict in &rules {
                let mut span = parent.child("rule", Kind::Internal);
                span.set("gitauto.rule", verdict.rule.as_str());
                span.set("gitauto.rule.matched", verdict.matched);
                span.set("gitauto.event.index", index);
                if !verdict.matched {
                    span.set("gitauto.rule.reason", verdict.reason.as_str());
                }
            }
        }
        for verdict in rules.iter().filter(|v| v.matched) {
            if let Some(rule) = config.rule(&verdict.rule) {
                jobs.push(route::job(rule, event, index));
            }
        }
        let mut rules = rules;
        // An `/ok-to-test` from the forge is checked and carried out by a host job, durable
        // and retried like any other (its author's permission is asked when it runs). Only
        // as it arrives: it approves what was waiting before it, and a redelivered or
        // caught-up one arrives after events its author never saw.
        if input.admitted == Admitted::Webhook
            && let Some(job) = crate::gate::approval_job(config, event, index)
        {
            let note = format!(
                "{} on a pull request: its author's permission is checked when the job runs",
                crate::gate::APPROVE_COMMAND
            );
            rules.push(Verdict { rule: job.rule.clone(), matched: true, reason: String::new(), note });
            jobs.push(job);
        }
        if !rules.iter().any(|v| v.matched) {
            let why = why_not.unwrap_or_default();
            unmatched.push(match &event.git_ref {
                Some(git_ref) if events.len() > 1 => format!("{git_ref}: {why}"),
                _ => why,
            });
        }
        verdicts.push(EventVerdicts { git_ref: event.git_ref.clone(), rules });
    }
    let unmatched = jobs.is_empty().then(|| unmatched.join(" | "));
    Routed { events, jobs, verdicts, unmatched }
}

/// The delivery record, built in one place for every way in.
fn record(
    config: &Config,
    input: &Input,
    delivery: &str,
    outcome: &Outcome,
    events: &[Event],
    verdicts: &[EventVerdicts],
) -> NewDelivery {
    let (forge, event) = match &input.admitted {
        Admitted::Manual { .. } => (MANUAL.to_owned(), Some(MANUAL.to_owned())),
        Admitted::Schedule { .. } => (SCHEDULE.to_owned(), Some(SCHEDULE.to_owned())),
        Admitted::Poll => (forge_of(config, &input.source), Some("push".to_owned())),
        _ => {
            let event = config.source(&input.source).and_then(|s| s.dialect.envelope(&input.headers).event);
            (forge_of(config, &input.source), event)
        }
    };
    let read = !events.is_empty() || !verdicts.is_empty();
    NewDelivery {
        id: delivery.to_owned(),
        source: input.source.clone(),
        forge,
        event,
        headers: stored_headers(&input.headers),
        // Compressed here, on the request's thread: the queue's one writer only copies it.
        body: if outcome.verdict().refused() {
            StoredBody::raw(input.body.clone())
        } else {
            StoredBody::new(input.body.clone())
        },
        verdict: outcome.verdict(),
        reason: outcome.reason(),
        // Parsers leave `payload` empty (it is read from the stored body when a job
        // runs), so the events are stored as they are.
        normalised: read.then(|| serde_json::to_string(events).expect("events serialise")),
        explain: read.then(|| serde_json::to_string(verdicts).expect("verdicts serialise")),
        redelivery_of: match input.admitted {
            Admitted::Redelivery { of } => Some(of),
            _ => None,
        },
        arrived: input.admitted.as_str(),
        repo: events.first().map(|event| event.repository.full_name.clone()).filter(|name| !name.is_empty()),
        git_ref: events.first().and_then(|event| event.git_ref.clone()),
        trace: None,
    }
}

/// Sets the delivery span's attributes from its record.
fn describe(root: &mut Span, record: &NewDelivery) {
    root.set("gitauto.forge", record.forge.as_str());
    if let Some(event) = &record.event {
        root.set("gitauto.event", event.as_str());
    }
    if let Some(repo) = &record.repo {
        root.set("vcs.repository.name", repo.as_str());
    }
    if let Some(git_ref) = &record.git_ref {
        root.set("vcs.ref.head.name", git_ref.as_str());
    }
    root.set("gitauto.delivery.verdict", record.verdict.as_str());
    if let Some(reason) = &record.reason {
        root.set("gitauto.delivery.reason", reason.as_str());
    }
}

fn forge_of(config: &Config, source: &str) -> String {
    config.source(source).map_or_else(|| source.to_owned(), |s| s.forge.to_owned())
}

/// Headers as stored with a delivery, as the text of a JSON object: all but the ones that
/// authenticate it, by name (a repeated header keeps its last value).
fn stored_headers(headers: &Headers) -> String {
    let kept: std::collections::BTreeMap<&str, std::borrow::Cow<'_, str>> = headers
        .iter()
        .filter(|(name, _)| !SECRET_HEADERS.contains(name))
        .map(|(name, value)| (name, String::from_utf8_lossy(value)))
        .collect();
    serde_json::to_string(&kept).expect("a map of strings serialises")
}

/// Stored headers back as headers (for redelivery).
fn restore_headers(stored: &serde_json::Value) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in stored.as_object().into_iter().flatten() {
        if let Some(value) = value.as_str() {
            headers.append(name, value.as_bytes());
        }
    }
    headers
}

#[cfg(test)]
mod tests;
