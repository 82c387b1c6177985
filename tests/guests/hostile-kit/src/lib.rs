//! What several hostile plugins (`tests/hostile/*`) share.

use gitauto_plugin::process::{Command, Output};

/// Runs `program` with `args` through the process capability, with a 2 s timeout; the
/// error is the capability's message.
pub fn run(program: &str, args: &[&str]) -> Result<Output, String> {
    let command = Command {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        cwd: None,
        env: vec![],
        timeout: Some(2_000),
        stdin: None,
    };
    gitauto_plugin::process::run(&command).map_err(|err| err.message())
}

/// `symlink(2)` through wasi-libc: Rust's standard library has no stable way on WASI.
#[allow(unsafe_code, reason = "the only way to ask WASI for a symbolic link from stable Rust")]
pub fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    let (target, link) = (std::ffi::CString::new(target)?, std::ffi::CString::new(link)?);
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    match unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
