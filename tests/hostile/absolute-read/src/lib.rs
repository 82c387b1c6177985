//! Hostile plugin: Reads host files by absolute path: the daemon's own files and a sibling of its grant.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        for path in ["/etc/passwd".to_owned(), format!("{}/secret.txt", s["outside"].as_str().unwrap_or_default())] {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Ok(Outcome::success(format!("ESCAPED: read {path}: {text}")));
            }
        }
        let err = std::fs::read_to_string("/etc/passwd").unwrap_err();
        Ok(Outcome::failure(format!("reading /etc/passwd: {err}")))
    }
}

gitauto_plugin::export!(Hostile);
