//! Hostile plugin: Returns a summary full of terminal escape sequences, meant for whoever lists jobs.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        Ok(Outcome::failure("\u{1b}[2J\u{1b}]0;owned\u{7}cleared your screen\r\u{8}"))
    }
}

gitauto_plugin::export!(Hostile);
