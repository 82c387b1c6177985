//! Hostile plugin: loops forever without calling the host. The epoch deadline must stop it.

use gitauto_plugin::{Error, Event, Outcome, Plugin};

struct ForeverLoop;

impl Plugin for ForeverLoop {
    type Settings = serde_json::Value;

    fn handle(_event: Event, _settings: serde_json::Value) -> Result<Outcome, Error> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

gitauto_plugin::export!(ForeverLoop);
