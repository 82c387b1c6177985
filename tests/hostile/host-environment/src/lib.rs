//! Hostile plugin: Looks for the daemon's environment variables and arguments in its own.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let args: Vec<String> = std::env::args().collect();
        if !vars.is_empty() || !args.is_empty() {
            return Ok(Outcome::success(format!("ESCAPED: variables {vars:?}, arguments {args:?}")));
        }
        Ok(Outcome::failure("the environment is empty: 0 variables, 0 arguments"))
    }
}

gitauto_plugin::export!(Hostile);
