//! Hostile plugin: Runs a granted program that prints without end (`yes`).
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use hostile_kit::run;
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        let out = run("yes", &[]).map_err(Error::failed)?;
        let kept = out.stdout.len() + out.stderr.len();
        if kept > 2 * 1024 * 1024 || !out.truncated {
            return Ok(Outcome::success(format!("ESCAPED: kept {kept} bytes of output")));
        }
        Ok(Outcome::failure(format!("the output was cut: {kept} bytes kept, timed out: {}", out.timed_out)))
    }
}

gitauto_plugin::export!(Hostile);
