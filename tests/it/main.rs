//! gitauto's integration tests: one module per user-visible behaviour, each using real
//! git repositories, a real daemon on loopback, real SQLite and real Wasm plugins.

mod bounds;
mod browser;
mod catch_up;
mod checkout;
mod cluster;
mod commands;
mod comment;
mod compat;
mod configs;
mod cross_site;
mod edx_import;
mod fetch_update;
mod flow;
mod forges;
mod github_app;
mod gitreload;
mod hamster;
mod hostile;
mod ingest;
mod languages;
mod many_memories;
mod md2html;
mod mergeable;
mod names;
mod notify;
mod provision;
mod queue;
mod report;
mod rules;
mod run;
mod s3_server;
mod sandbox;
mod schedule;
mod sigv4;
mod storage;
