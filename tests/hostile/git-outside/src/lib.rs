//! Hostile plugin: Opens a repository outside its grant through the git capability.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let path = s["repo"].as_str().unwrap_or_default();
        Ok(match gitauto_plugin::git::Repository::open(path).and_then(|repo| repo.head()) {
            Ok(head) => Outcome::success(format!("ESCAPED: opened {path} at {head:?}")),
            Err(err) => Outcome::failure(format!("opening {path}: {}", err.message())),
        })
    }
}

gitauto_plugin::export!(Hostile);
