//! gitauto: a daemon that receives git forge webhooks, matches them against rules, and
//! runs chains of sandboxed WebAssembly plugins in response.
//!
//! The flow, one module per stage: [`server`] receives a delivery over HTTP and hands it
//! to [`ingest`], the one pipeline every way in calls (webhooks, redeliveries, manual
//! triggers, schedule ticks, caught-up deliveries, polled refs): [`forge`] verifies and
//! parses it into [`event::Event`]s, [`route`] matches them against the [`config`]'s
//! rules, [`queue`] stores the delivery and its jobs durably; [`worker`] claims jobs and
//! runs their steps in the [`runtime`], whose plugins reach the world only through
//! [`capability`] calls that [`grant`] allows. [`catch_up`] fetches the deliveries the
//! server missed from the forges' APIs, and polls refs, handing both to [`ingest`].
//! [`report`] sends what the queue's outbox says about jobs to the forge (commit statuses,
//! check runs).
//! [`schedule`] ticks the schedule rules' clocks (read by [`cron`]) into the same pipeline.
//!
//! Imports run one way, down that flow: `server -> ingest -> forge/route -> event`,
//! `worker -> runtime -> capability -> grant`; `route`, `runtime` and `worker` read
//! [`config`]'s types, and the config uses only what lies below it (forge dialects,
//! grants). What several stages share sits below them all: [`secret`] (values never
//! printed), [`glob`] (the filters rules use), [`builtin`] (the built-in plugins and
//! what they need from their grants), [`step`] (how a step ended, from the runtime to
//! the API and the CLI), [`cron`] (cron expressions and their times), [`network`] (IP
//! networks, and a request's client address behind trusted proxies).

pub mod authoring;
pub mod bench;
pub mod builtin;
pub mod capability;
pub mod catch_up;
pub mod client;
pub mod config;
pub mod confine;
pub mod cron;
pub mod daemon;
pub mod event;
pub mod forge;
pub mod forge_api;
pub mod gate;
pub mod gitwalk;
pub mod glob;
pub mod grant;
pub mod hooks;
pub mod ingest;
pub mod live;
pub mod local;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod node;
pub mod plugin_source;
pub mod queue;
pub mod report;
pub mod route;
pub mod runtime;
pub mod schedule;
pub mod secret;
pub mod send;
pub mod server;
pub mod shutdown;
pub mod step;
pub mod telemetry;
pub mod template;
pub mod terminal;
#[doc(hidden)]
pub mod testing;
pub mod worker;
