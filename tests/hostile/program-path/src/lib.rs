//! Hostile plugin: Runs a granted program's name under another path: through `..`, and as a copy it wrote into its own directory.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use hostile_kit::run;
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let own = format!("{}/echo", s["site"].as_str().unwrap_or_default());
        let _ = std::fs::write(&own, "#!/bin/sh\nid\n");
        let mut errors = Vec::new();
        for program in ["/usr/bin/../../bin/echo", "./echo", own.as_str()] {
            match run(program, &["hi"]) {
                Ok(out) => return Ok(Outcome::success(format!("ESCAPED: {program} ran: {}", out.stdout))),
                Err(err) => errors.push(err),
            }
        }
        Ok(Outcome::failure(errors.join("; ")))
    }
}

gitauto_plugin::export!(Hostile);
