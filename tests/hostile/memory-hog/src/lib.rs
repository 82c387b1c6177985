//! Hostile plugin: allocates without bound. The memory limit must stop it.

use gitauto_plugin::{Error, Event, Outcome, Plugin};

struct MemoryHog;

impl Plugin for MemoryHog {
    type Settings = serde_json::Value;

    fn handle(_event: Event, _settings: serde_json::Value) -> Result<Outcome, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so the memory is really committed.
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

gitauto_plugin::export!(MemoryHog);
