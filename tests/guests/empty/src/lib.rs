//! Test guest: does nothing and succeeds. What a step costs with no work in it.

use gitauto_plugin::{Error, Event, Outcome, Plugin};

struct Empty;

impl Plugin for Empty {
    type Settings = serde_json::Value;

    fn handle(_event: Event, _settings: serde_json::Value) -> Result<Outcome, Error> {
        Ok(Outcome::success("nothing to do"))
    }
}

gitauto_plugin::export!(Empty);
