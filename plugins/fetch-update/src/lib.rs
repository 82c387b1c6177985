//! `fetch-update`: bring an existing checkout to the newest commit of its branch (see
//! `gitauto-checkout` for how the checkout is found and which pushes move it).

use gitauto_checkout::Options;
use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde::Deserialize;

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Directory under which checkouts live, as `<repodir>/<owner>/<name>` or `<repodir>/<name>`.
    repodir: String,
    /// Remote to fetch from.
    #[serde(default = "default_remote")]
    remote: String,
    /// Remove untracked and ignored files after the reset (`git clean -xdf`).
    #[serde(default = "default_clean")]
    clean: bool,
}

fn default_remote() -> String {
    "origin".into()
}

fn default_clean() -> bool {
    true
}

struct FetchUpdate;

impl Plugin for FetchUpdate {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let options = Options { repodir: &settings.repodir, remote: &settings.remote, clean: settings.clean };
        Ok(gitauto_checkout::update(&event, options)?.into_outcome())
    }
}

gitauto_plugin::export!(FetchUpdate);
