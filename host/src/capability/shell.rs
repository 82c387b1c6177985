//! `shell`: run a granted program with exactly the given arguments (there is no shell),
//! in a granted directory, with an environment of the plugin's choosing plus a fixed
//! `PATH`, a timeout that kills its whole process group, and bounded output.

use crate::capability::StepContext;
use crate::grant::Access;
use crate::runtime::StepState;
use crate::runtime::bindings::gitauto::plugin::shell::{self as wit, Command, Output, ShellError};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and discarded so the program never blocks.
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// The only variable the program gets without the plugin asking.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn run(ctx: &StepContext, command: Command) -> Result<Output, ShellError> {
    let grant = &ctx.grant;
    let program = grant
        .check_command(&command.program)
        .map_err(|denied| ShellError::Denied(denied.0))?
        .program
        .clone()
        .ok_or_else(|| {
            ShellError::NotFound(format!("`{}` was not found on PATH when gitauto started", command.program))
        })?;
    let cwd = match &command.cwd {
        Some(cwd) => grant.check_path(cwd, Access::Git).map_err(|denied| ShellError::Denied(denied.0))?,
        None => {
            let first = grant
                .dirs
                .first()
                .ok_or_else(|| ShellError::Denied("no `cwd` given and the plugin is granted no directories".into()))?;
            grant
                .check_path(&first.path.to_string_lossy(), Access::Git)
                .map_err(|denied| ShellError::Denied(denied.0))?
        }
    };
    for (name, value) in &command.env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(ShellError::Failed(format!("invalid environment variable `{name}`")));
        }
    }
    if command.args.iter().any(|arg| arg.contains('\0')) {
        return Err(ShellError::Failed("an argument contains a NUL byte".into()));
    }
    let requested = command.timeout_ms.map_or(Duration::MAX, Duration::from_millis);
    let timeout = requested.min(ctx.remaining());

    let mut process = std::process::Command::new(&program);
    process
        .args(&command.args)
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", PATH)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(if command.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0);
    let started = Instant::now();
    let mut child = process.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => ShellError::NotFound(format!("{}: {err}", program.display())),
        std::io::ErrorKind::PermissionDenied => ShellError::Denied(format!("{}: {err}", program.display())),
        _ => ShellError::Failed(format!("starting {}: {err}", program.display())),
    })?;
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    if let (Some(input), Some(mut pipe)) = (command.stdin, child.stdin.take()) {
        // A program that exits without reading is not an error of ours.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }

    let pid = rustix::process::Pid::from_child(&child);
    let mut timed_out = false;
    let mut pause = Duration::from_millis(1);
    loop {
        match exited(pid) {
            Ok(true) => break,
            Ok(false) if started.elapsed() >= timeout => {
                timed_out = true;
                break;
            }
            Ok(false) => {
                #[allow(clippy::disallowed_methods, reason = "steps run on dedicated blocking threads")]
                std::thread::sleep(pause.min(timeout.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(err) => return Err(ShellError::Failed(format!("waiting for {}: {err}", program.display()))),
        }
    }
    // Kill the group while the program is still unreaped: its id cannot have been
    // reused, and descendants that would hold its pipes open go with it.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let status = child.wait().ok();
    let (stdout, out_cut) = stdout.join().unwrap_or_default();
    let (stderr, err_cut) = stderr.join().unwrap_or_default();
    Ok(Output {
        exit_code: if timed_out { None } else { status.and_then(|s| s.code()) },
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        truncated: out_cut || err_cut,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Reads a pipe to its end on a thread, keeping the first [`MAX_OUTPUT`] bytes.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut cut = false;
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = MAX_OUTPUT - kept.len();
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    cut |= n > room;
                }
            }
        }
        (kept, cut)
    })
}

/// Whether the child has exited, without reaping it.
fn exited(pid: rustix::process::Pid) -> std::io::Result<bool> {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(pid), options)?.is_some())
}

impl wit::Host for StepState {
    fn run(&mut self, command: Command) -> wasmtime::Result<Result<Output, ShellError>> {
        Ok(run(&self.ctx, command))
    }
}
