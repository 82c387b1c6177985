//! Hostile plugin: hunts for a GitHub App installation token (`ghs_...`, as the fake API
//! issues them: `ghs_fake` and a number) in everything it can read: its settings, its
//! environment and arguments, its event, the status, headers and body of every answer to
//! the URLs it is given (sent to a host granted `credential = "github-app"`), and then
//! its whole linear memory. Succeeds ("ESCAPED: ...") only if one was there.
//!
//! The needle is kept XOR-masked, so the plugin's own memory never holds it in clear:
//! whatever the memory scan finds came from outside.

use gitauto_plugin::http::{Method, Request};
use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

/// `ghs_fake`, each byte XOR [`MASK`].
const NEEDLE: [u8; 8] = [0x3d, 0x32, 0x29, 0x05, 0x3c, 0x3b, 0x31, 0x3f];
const MASK: u8 = 0x5a;

/// Where in `bytes` a token starts: the needle followed by a digit.
fn find(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len().saturating_sub(NEEDLE.len())).find(|&at| {
        NEEDLE.iter().enumerate().all(|(i, masked)| bytes[at + i] ^ MASK == *masked)
            && bytes[at + NEEDLE.len()].is_ascii_digit()
    })
}

/// Scans the whole linear memory, a byte at a time.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, reason = "the point is to read every byte the host could have put in this memory")]
fn memory_holds_a_token() -> Option<usize> {
    let size = core::arch::wasm32::memory_size(0) * 65536;
    let mut window = [0u8; NEEDLE.len() + 1];
    // Address 0 is never handed out; start past it.
    for at in 1..size.saturating_sub(window.len()) {
        for (i, slot) in window.iter_mut().enumerate() {
            // SAFETY: every address below `size` is inside the module's one memory.
            *slot = unsafe { core::ptr::read_volatile((at + i) as *const u8) };
        }
        if find(&window).is_some() {
            return Some(at);
        }
    }
    None
}

/// Built for the host (workspace checks), there is no linear memory to scan.
#[cfg(not(target_arch = "wasm32"))]
fn memory_holds_a_token() -> Option<usize> {
    None
}

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(event: Event, settings: Value) -> Result<Outcome, Error> {
        let mut places: Vec<(String, Vec<u8>)> = vec![
            ("settings".into(), settings.to_string().into_bytes()),
            (
                "environment".into(),
                format!("{:?} {:?}", std::env::vars().collect::<Vec<_>>(), std::env::args().collect::<Vec<_>>())
                    .into_bytes(),
            ),
            ("event".into(), format!("{event:?}").into_bytes()),
        ];
        let urls: Vec<String> =
            settings["urls"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
        for url in &urls {
            let request = Request { method: Method::Get, url: url.clone(), headers: vec![], body: None, timeout: None };
            let answer = match gitauto_plugin::http::send(&request) {
                Ok(response) => {
                    let mut text = format!("{} {:?} ", response.status, response.headers).into_bytes();
                    text.extend_from_slice(&response.body);
                    text
                }
                Err(err) => err.message().into_bytes(),
            };
            places.push((format!("the answer from {url}"), answer));
        }
        for (place, bytes) in &places {
            if let Some(at) = find(bytes) {
                let shown = String::from_utf8_lossy(&bytes[at..(at + 24).min(bytes.len())]).into_owned();
                return Ok(Outcome::success(format!("ESCAPED: a token in {place}: {shown}")));
            }
        }
        if let Some(at) = memory_holds_a_token() {
            return Ok(Outcome::success(format!("ESCAPED: a token in linear memory at {at}")));
        }
        Ok(Outcome::failure(format!(
            "no token in settings, environment, event, {} answers or linear memory",
            urls.len()
        )))
    }
}

gitauto_plugin::export!(Hostile);
