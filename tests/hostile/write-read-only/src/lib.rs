//! Hostile plugin: Writes into a directory it was granted read-only.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let path = format!("{}/planted.txt", s["granted"].as_str().unwrap_or_default());
        Ok(match std::fs::write(&path, "planted") {
            Ok(()) => Outcome::success(format!("ESCAPED: wrote {path}")),
            Err(err) => Outcome::failure(format!("writing {path}: {err}")),
        })
    }
}

gitauto_plugin::export!(Hostile);
