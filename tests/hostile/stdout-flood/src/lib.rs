//! Hostile plugin: Prints as much as it can to stdout and stderr, with and without newlines.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        use std::io::Write;
        let chunk = "y".repeat(1024 * 1024);
        for i in 0..64 {
            if i % 2 == 0 {
                let _ = writeln!(std::io::stdout(), "{chunk}");
            } else {
                let _ = write!(std::io::stderr(), "{chunk}");
            }
        }
        Ok(Outcome::success("flooded stdout and stderr with 64 MB"))
    }
}

gitauto_plugin::export!(Hostile);
