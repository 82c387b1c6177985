//! Hostile plugin: Opens a TCP connection itself through WASI sockets, around the http capability.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let addr = s["address"].as_str().unwrap_or_default();
        Ok(match std::net::TcpStream::connect(addr) {
            Ok(_) => Outcome::success(format!("ESCAPED: connected to {addr}")),
            Err(err) => Outcome::failure(format!("connecting to {addr}: {err}")),
        })
    }
}

gitauto_plugin::export!(Hostile);
