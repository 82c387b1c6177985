//! `process`: run a granted program with exactly the given arguments (there is no shell),
//! in a granted directory, confined by the kernel to the plugin's grants.
//!
//! The program starts from a thread that Landlock confines ([`crate::confine`]): it may
//! read and write only the plugin's writable grants, read its read-only grants and the
//! system files a program needs to start, run programs only from system directories,
//! and use TCP only when its grant says `network = true`. It runs in a session of its
//! own, with a seccomp filter that keeps it and everything it starts in that session's
//! process group (no `setsid`, no `setpgid`), away from Unix sockets (and all sockets
//! without `network`), and from changing any file's mode, owner, times or extended
//! attributes by path (Landlock does not confine those calls); at its end or its
//! deadline the whole group is killed.
//! Its environment is a fixed `PATH` and the variables its grant names, nothing else.

use crate::capability::bindings::gitauto::plugin::process::{self as wit, Command, Output, ProcessError};
use crate::capability::meter::Capability;
use crate::capability::{StepContext, StepState};
use crate::confine::{self, Level, Rules, Tcp};
use crate::grant::{Access, CommandGrant, Grant};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and discarded so the program never blocks.
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// The only variable the program gets without the plugin asking.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Directories whose programs every confined program may run.
const SYSTEM_PROGRAMS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64"];

/// What the plugin asked for, checked against its grant.
struct Checked {
    program: PathBuf,
    cwd: PathBuf,
    granted: CommandGrant,
    timeout: Duration,
}

fn check(ctx: &StepContext, command: &Command) -> Result<Checked, ProcessError> {
    let grant = &ctx.grant;
    let granted = grant.check_command(&command.program).map_err(|denied| ProcessError::Denied(denied.0))?.clone();
    let program = granted.program.clone().ok_or_else(|| {
        ProcessError::NotFound(format!("`{}` was not found on PATH when gitauto started", command.program))
    })?;
    if !confine::support().programs() && !ctx.unconfined_programs {
        return Err(ProcessError::Denied(format!(
            "`{}` cannot run: this kernel's Landlock cannot confine it (see docs/security.md)",
            command.program
        )));
    }
    let cwd = match &command.cwd {
        Some(cwd) => grant.check_path(cwd, Access::Read).map_err(|denied| ProcessError::Denied(denied.0))?,
        None if ctx.checkout.is_some() => {
            let checkout = ctx.checkout.as_deref().expect("checked by the guard").to_string_lossy();
            grant.check_path(&checkout, Access::Read).map_err(|denied| ProcessError::Denied(denied.0))?
        }
        None => {
            let first = grant.dirs.first().ok_or_else(|| {
                ProcessError::Denied("no `cwd` given and the plugin is granted no directories".into())
            })?;
            grant
                .check_path(&first.path.to_string_lossy(), Access::Read)
                .map_err(|denied| ProcessError::Denied(denied.0))?
        }
    };
    for (name, value) in &command.env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(ProcessError::Failed(format!("invalid environment variable `{name}`")));
        }
        if !granted.env.iter().any(|allowed| allowed == name) {
            let allowed = if granted.env.is_empty() { "none".to_owned() } else { granted.env.join(", ") };
            return Err(ProcessError::Denied(format!(
                "`{name}` may not be set for `{}` (variables its grant names: {allowed}); the config names them as `commands = [{{ program = \"{}\", env = [\"{name}\"] }}]`",
                command.program, command.program
            )));
        }
    }
    if command.args.iter().any(|arg| arg.contains('\0')) {
        return Err(ProcessError::Failed("an argument contains a NUL byte".into()));
    }
    let requested = command.timeout.map_or(Duration::MAX, Duration::from_millis);
    Ok(Checked { program, cwd, granted, timeout: requested.min(ctx.remaining()) })
}

/// What the program may reach: the plugin's grants, the system, and, for a program
/// outside the system directories, its own file (not its directory, which may hold
/// anything), unless that lies in a grant, where the plugin could replace it: programs
/// never run from a place a plugin may write.
fn rules(grant: &Grant, checked: &Checked) -> Rules {
    let mut rules = Rules::program(grant).with_program_runtime();
    let program = std::fs::canonicalize(&checked.program).unwrap_or_else(|_| checked.program.clone());
    let system = SYSTEM_PROGRAMS.iter().any(|system| program.starts_with(system));
    let in_grant = grant.dirs.iter().any(|dir| dir.canonical().is_some_and(|root| program.starts_with(root)));
    if !system && !in_grant {
        rules = rules.with_path(&program, Level::ReadExecute);
    }
    rules.with_tcp(if checked.granted.network { Tcp::Allow } else { Tcp::Deny })
}

/// System calls that change a file's mode or owner, by path or by descriptor. Landlock
/// does not confine them, and a descriptor opened only for reading (which Landlock
/// allows in a read grant) would do for `fchmod`. They are accepted and do nothing:
/// programs (git writing its config, pip, npm) chmod what they write and treat a refusal
/// as fatal, and a mode matters little here, since programs run only from system
/// directories. The numbers from 452 on are the same on every architecture.
const MODE_OWNER: &[i64] = &[
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    452, // fchmodat2
    libc::SYS_fchown,
    libc::SYS_fchownat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_chmod,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_chown,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lchown,
];

/// System calls that change a file's times or extended attributes by path, and its
/// extended attributes by descriptor (Landlock does not confine them): refused with
/// `EPERM`. `utimensat` is refused only with a path: with none it is `futimens`, on a
/// descriptor opened under Landlock (one opened with `O_PATH`, which Landlock lets a
/// program open anywhere, is refused by the kernel with `EBADF`).
const TIMES_XATTRS: &[i64] = &[
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    463, // setxattrat
    466, // removexattrat
    469, // file_setattr
    #[cfg(target_arch = "x86_64")]
    libc::SYS_utime,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_utimes,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_futimesat,
];

/// The seccomp filters a program starts under. The first: it cannot leave its session
/// or process group, opens no Unix socket (nor any socket without `network`), and
/// changes no file's times or extended attributes ([`TIMES_XATTRS`]); refused calls fail
/// with `EPERM`, so programs report a clear error. The second: changes of mode and owner
/// ([`MODE_OWNER`]) succeed without doing anything.
fn filters(network: bool) -> Result<[seccompiler::BpfProgram; 2], String> {
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
    let not = |family: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, family as u64)
            .map_err(|err| err.to_string())
    };
    let sockets = if network {
        // Only IP sockets: a condition list is a conjunction.
        vec![SeccompRule::new(vec![not(libc::AF_INET)?, not(libc::AF_INET6)?]).map_err(|err| err.to_string())?]
    } else {
        Vec::new()
    };
    // `utimensat(fd, NULL, times, 0)` sets the times of the open file `fd`; with a path
    // (even "" and `AT_EMPTY_PATH`, which accepts an `O_PATH` descriptor) it is refused.
    let with_path = vec![
        SeccompRule::new(vec![
            SeccompCondition::new(1, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0).map_err(|err| err.to_string())?,
        ])
        .map_err(|err| err.to_string())?,
    ];
    // io_uring can open sockets without `socket(2)`.
    let refused = [
        (libc::SYS_setsid, Vec::new()),
        (libc::SYS_setpgid, Vec::new()),
        (libc::SYS_socket, sockets),
        (libc::SYS_io_uring_setup, Vec::new()),
        (libc::SYS_io_uring_enter, Vec::new()),
        (libc::SYS_io_uring_register, Vec::new()),
        (libc::SYS_utimensat, with_path),
    ]
    .into_iter()
    .chain(TIMES_XATTRS.iter().map(|number| (*number, Vec::new())))
    .collect();
    let ignored = MODE_OWNER.iter().map(|number| (*number, Vec::new())).collect();
    Ok([filter(refused, libc::EPERM as u32)?, filter(ignored, 0)?])
}

/// A filter that answers the calls in `rules` with `errno` (0: success, doing nothing)
/// and allows the rest. On x86_64 the x32 numbers (with bit 30 set) reach the same
/// calls under other numbers: those are answered alike, whatever their arguments.
fn filter(
    mut rules: std::collections::BTreeMap<i64, Vec<seccompiler::SeccompRule>>,
    errno: u32,
) -> Result<seccompiler::BpfProgram, String> {
    use seccompiler::{SeccompAction, SeccompFilter};
    if cfg!(target_arch = "x86_64") {
        const X32: i64 = 0x4000_0000;
        let x32: Vec<(i64, Vec<seccompiler::SeccompRule>)> =
            rules.keys().map(|number| (number | X32, Vec::new())).collect();
        rules.extend(x32);
    }
    let arch = std::env::consts::ARCH.try_into().map_err(|err: seccompiler::BackendError| err.to_string())?;
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno), arch)
        .map_err(|err| err.to_string())?;
    filter.try_into().map_err(|err: seccompiler::BackendError| err.to_string())
}

fn run(ctx: &StepContext, command: Command) -> Result<Output, ProcessError> {
    let checked = check(ctx, &command)?;
    let rules = rules(&ctx.grant, &checked);
    let shown = command.program.clone();
    match confine::run(rules, None, move || run_confined(checked, command)) {
        Ok(result) => result,
        Err(err) => Err(ProcessError::Failed(format!("running `{shown}`: {err}"))),
    }
}

/// Runs `program` with `args` in `cwd` as a granted program runs (confined to `grant`,
/// in its own session, under the filter), or with `confined = false` as a plain child
/// with the same environment and pipes: what confinement costs, for benchmarks.
pub fn run_for_benchmark(grant: &Grant, program: &Path, args: &[&str], cwd: &Path, confined: bool) -> Option<i32> {
    let command = Command {
        program: program.to_string_lossy().into_owned(),
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        cwd: None,
        env: Vec::new(),
        timeout: None,
        stdin: None,
    };
    if !confined {
        let output = std::process::Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .process_group(0)
            .output()
            .ok()?;
        return output.status.code();
    }
    let granted = CommandGrant::new(&command.program, None).ok()?;
    let checked =
        Checked { program: program.to_path_buf(), cwd: cwd.to_path_buf(), granted, timeout: Duration::from_secs(60) };
    let rules = rules(grant, &checked);
    confine::run(rules, None, move || run_confined(checked, command)).ok()?.ok()?.exit_code
}

/// Starts the program from the (confined) calling thread, waits for it or its timeout,
/// and kills its whole process group.
fn run_confined(checked: Checked, command: Command) -> Result<Output, ProcessError> {
    let Checked { program, cwd, granted, timeout } = checked;
    let [refused, ignored] =
        filters(granted.network).map_err(|err| ProcessError::Failed(format!("building the sandbox: {err}")))?;
    let mut process = std::process::Command::new(&program);
    process
        .args(&command.args)
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", PATH)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(if command.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before `exec`; it only makes system
    // calls (setsid, prctl, seccomp) on data prepared before the fork, and allocates
    // nothing.
    unsafe {
        process.pre_exec(move || {
            rustix::process::setsid()?;
            // If the thread that started it dies (the daemon stops), so does it.
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            for filter in [&refused, &ignored] {
                seccompiler::apply_filter(filter).map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))?;
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = process.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => ProcessError::NotFound(format!("{}: {err}", program.display())),
        std::io::ErrorKind::PermissionDenied => ProcessError::Denied(format!("{}: {err}", program.display())),
        _ => ProcessError::Failed(format!("starting {}: {err}", program.display())),
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
            Err(err) => return Err(ProcessError::Failed(format!("waiting for {}: {err}", program.display()))),
        }
    }
    // Kill the group while the program is still unreaped: its id cannot have been
    // reused, and nothing it started can have left the group (the filter forbids it).
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let status = child.wait().ok();
    // The group is gone, so the pipes close; a short wait covers the last reads.
    let grace = Instant::now() + Duration::from_secs(2);
    let (stdout, out_cut) = stdout.recv_timeout(grace.saturating_duration_since(Instant::now())).unwrap_or_default();
    let (stderr, err_cut) = stderr.recv_timeout(grace.saturating_duration_since(Instant::now())).unwrap_or_default();
    Ok(Output {
        exit_code: if timed_out { None } else { status.and_then(|s| s.code()) },
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        truncated: out_cut || err_cut,
        took: started.elapsed().as_millis() as u64,
    })
}

/// Reads a pipe to its end on a thread, keeping the first [`MAX_OUTPUT`] bytes.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<(Vec<u8>, bool)> {
    let (done, result) = mpsc::sync_channel(1);
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
        let _ = done.send((kept, cut));
    });
    result
}

/// Whether the child has exited, without reaping it.
fn exited(pid: rustix::process::Pid) -> std::io::Result<bool> {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(pid), options)?.is_some())
}

impl wit::Host for StepState {
    fn run(&mut self, command: Command) -> wasmtime::Result<Result<Output, ProcessError>> {
        let _call = self.ctx.meter.start(Capability::Process, "process.run");
        Ok(run(&self.ctx, command))
    }
}
