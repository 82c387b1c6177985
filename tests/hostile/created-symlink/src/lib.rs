//! Hostile plugin: Creates a symbolic link to `/etc` in its writable directory and reads through it.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use hostile_kit::symlink;
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let link = format!("{}/etc", s["site"].as_str().unwrap_or_default());
        if let Err(err) = symlink("/etc", &link) {
            return Ok(Outcome::failure(format!("linking {link} to /etc: {err}")));
        }
        Ok(match std::fs::read_to_string(format!("{link}/passwd")) {
            Ok(text) => Outcome::success(format!("ESCAPED: read {link}/passwd: {text}")),
            Err(err) => Outcome::failure(format!("reading {link}/passwd: {err}")),
        })
    }
}

gitauto_plugin::export!(Hostile);
