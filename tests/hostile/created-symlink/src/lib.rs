//! Hostile plugin: Creates a symbolic link to `/etc` in its writable directory and reads through it.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let link = format!("{}/etc", s["site"].as_str().unwrap_or_default());
        if let Err(err) = symlink("/etc", &link) {
            return Ok(Outcome::failure(format!("linking {link} to /etc: {err}")));
        }
        Ok(match std::fs::read_to_string(format!("{link}/passwd")) {
            Ok(text) => Outcome::success(format!("ESCAPED: read {link}/passwd: {text}")),
            Err(err) => Outcome::failure(format!("reading {link}/passwd: {err}")),
        })
    }
}

/// `symlink(2)` through wasi-libc: Rust's standard library has no stable way on WASI.
#[allow(unsafe_code, reason = "the only way to ask WASI for a symbolic link from stable Rust")]
fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    let (target, link) = (std::ffi::CString::new(target)?, std::ffi::CString::new(link)?);
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    match unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

gitauto_plugin::export!(Hostile);
