//! Test guest: a plugin built against `gitauto:plugin@0.1.0` as it was released (the
//! WIT in `wit/`, never updated), without the SDK, so a later 0.1 host is shown to run
//! plugins built for an earlier one. It opens the repository its `repodir` setting
//! names, reads HEAD and the paths the push changed, and logs through `log`.

#[allow(unsafe_code, clippy::all, missing_docs)]
mod bindings {
    wit_bindgen::generate!({ world: "plugin", path: "wit", generate_all });
}

use bindings::gitauto::plugin::git::Repository;
use bindings::gitauto::plugin::log::{Level, log};
use bindings::gitauto::plugin::types::{Error, Event, Outcome, Status};

struct OldWit;

impl bindings::Guest for OldWit {
    fn handle(event: Event, settings: String) -> Result<Outcome, Error> {
        let settings: serde_json::Value =
            serde_json::from_str(&settings).map_err(|err| Error::InvalidSettings(err.to_string()))?;
        let repodir =
            settings["repodir"].as_str().ok_or_else(|| Error::InvalidSettings("`repodir` is required".into()))?;
        let git = |err: bindings::gitauto::plugin::git::GitError| Error::Failed(format!("git: {err:?}"));
        let repo = Repository::open(repodir).map_err(git)?;
        let head = repo.head().map_err(git)?.unwrap_or_default();
        let (before, after) = (event.before.unwrap_or_default(), event.after.unwrap_or_default());
        let changed: Vec<String> =
            repo.changed_paths(&before, &after).map_err(git)?.into_iter().map(|change| change.path).collect();
        log(Level::Info, &format!("built for 0.1.0, running at {head}"));
        Ok(Outcome {
            status: Status::Success,
            summary: "a 0.1.0 plugin ran".into(),
            output: serde_json::json!({"head": head, "changed": changed}).to_string(),
        })
    }
}

#[allow(unsafe_code, reason = "the export glue wit-bindgen generates")]
mod export {
    use crate::OldWit;
    crate::bindings::export!(OldWit with_types_in crate::bindings);
}
