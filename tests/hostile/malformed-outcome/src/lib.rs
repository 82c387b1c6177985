//! Hostile plugin: Returns outcomes the host cannot use: output that is not JSON, or far too much of it.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let (summary, output) = match s["kind"].as_str().unwrap_or_default() {
            "huge" => ("huge", format!("\"{}\"", "z".repeat(8 * 1024 * 1024))),
            _ => ("\u{1b}[2J\u{1b}]0;owned\u{7}not json", "{not json".to_owned()),
        };
        Ok(Outcome { status: gitauto_plugin::Status::Success, summary: summary.to_owned(), output })
    }
}

gitauto_plugin::export!(Hostile);
