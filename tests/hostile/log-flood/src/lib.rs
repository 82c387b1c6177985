//! Hostile plugin: Logs as much and as fast as it can.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        let line = "x".repeat(64 * 1024);
        for _ in 0..100_000 {
            gitauto_plugin::log::info(&line);
        }
        Ok(Outcome::success("flooded the log with 6.4 GB"))
    }
}

gitauto_plugin::export!(Hostile);
