//! Hostile plugin: Reads a file outside its grant by climbing out of a granted directory with `..`.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let path = format!("{}/../outside/secret.txt", s["granted"].as_str().unwrap_or_default());
        Ok(match std::fs::read_to_string(&path) {
            Ok(text) => Outcome::success(format!("ESCAPED: read {path}: {text}")),
            Err(err) => Outcome::failure(format!("reading {path}: {err}")),
        })
    }
}

gitauto_plugin::export!(Hostile);
