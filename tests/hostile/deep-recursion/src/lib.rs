//! Hostile plugin: Recurses without end.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        Ok(Outcome::success(format!("ESCAPED: {}", descend(s["depth"].as_u64().unwrap_or(u64::MAX)))))
    }
}

fn descend(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let frame = std::hint::black_box([depth; 64]);
    descend(depth - 1) + frame[(depth % 64) as usize]
}

gitauto_plugin::export!(Hostile);
