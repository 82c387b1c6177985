//! Hostile plugin: Runs a program that is not granted (`sh -c`).
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use hostile_kit::run;
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        Ok(match run("sh", &["-c", "id"]) {
            Ok(out) => Outcome::success(format!("ESCAPED: sh ran: {}", out.stdout)),
            Err(err) => Outcome::failure(err),
        })
    }
}

gitauto_plugin::export!(Hostile);
