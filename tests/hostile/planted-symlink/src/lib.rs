//! Hostile plugin: Follows symbolic links someone planted in its granted directory, to a file and to a directory outside it.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let granted = s["granted"].as_str().unwrap_or_default();
        let mut errors = Vec::new();
        for path in [format!("{granted}/link-to-secret"), format!("{granted}/link-to-etc/passwd")] {
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(Outcome::success(format!("ESCAPED: read {path}: {text}"))),
                Err(err) => errors.push(format!("reading {path}: {err}")),
            }
        }
        Ok(Outcome::failure(errors.join("; ")))
    }
}

gitauto_plugin::export!(Hostile);
