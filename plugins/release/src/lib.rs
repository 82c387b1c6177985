//! `release`: turns a tag into a release. The host writes reproducible archives of the
//! tag's tree (the `git` capability's `archive`); the plugin checksums them, publishes
//! them (a directory, object storage, a forge release), writes a release record next to
//! them and regenerates Drupal's update status feed.

// The modules are filled in by the parts of issue 22; nothing uses them yet.
#![allow(dead_code)]

mod drupal;
mod forge;
mod publish;
mod record;
mod version;

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde::Deserialize;

/// The step's `with` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

struct Release;

impl Plugin for Release {
    type Settings = Settings;

    fn handle(_event: Event, _settings: Settings) -> Result<Outcome, Error> {
        Err(Error::failed("release: not implemented yet"))
    }
}

gitauto_plugin::export!(Release);
