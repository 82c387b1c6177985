//! Hostile plugin: Sleeps for a day inside a host call (WASI's clock), where the epoch interrupt cannot reach.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, _settings: Value) -> Result<Outcome, Error> {
        #[allow(clippy::disallowed_methods, reason = "a hostile guest blocking in the host")]
        std::thread::sleep(std::time::Duration::from_secs(86_400));
        Ok(Outcome::success("ESCAPED: slept a whole day"))
    }
}

gitauto_plugin::export!(Hostile);
