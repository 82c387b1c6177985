//! Hostile plugin: Hard-links a file from outside its grant into its writable directory.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let (from, to) = (
            format!("{}/secret.txt", s["outside"].as_str().unwrap_or_default()),
            format!("{}/stolen", s["site"].as_str().unwrap_or_default()),
        );
        Ok(match std::fs::hard_link(&from, &to).and_then(|()| std::fs::read_to_string(&to)) {
            Ok(text) => Outcome::success(format!("ESCAPED: linked {from}: {text}")),
            Err(err) => Outcome::failure(format!("hard-linking {from} to {to}: {err}")),
        })
    }
}

gitauto_plugin::export!(Hostile);
