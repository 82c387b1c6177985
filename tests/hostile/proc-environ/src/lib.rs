//! Hostile plugin: Reads the daemon's environment through `/proc/self/environ`.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        Ok(match std::fs::read("/proc/self/environ") {
            Ok(bytes) => Outcome::success(format!("ESCAPED: read {} bytes of /proc/self/environ", bytes.len())),
            Err(err) => Outcome::failure(format!("reading /proc/self/environ: {err}")),
        })
    }
}

gitauto_plugin::export!(Hostile);
