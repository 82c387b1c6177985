//! The kernel wall. Host work done on a plugin's behalf that touches the filesystem or
//! the network (libgit2 calls, granted programs) runs on a fresh thread that Landlock
//! confines to the plugin's grants before the work starts. Every `open`, `rename`,
//! `unlink`, `execve` and TCP `connect` of that thread, and of every program it starts,
//! is then checked by the kernel's own path resolution at the moment of use: a link or a
//! directory swapped in after [`crate::grant`]'s checks leads nowhere.
//!
//! Landlock restricts only the calling thread (and what it starts), so the rest of the
//! daemon keeps its rights; the thread ends with the call, taking its domain with it.

#![allow(clippy::disallowed_methods, reason = "the work it confines runs on a fresh thread of its own")]

use crate::grant::{Access, Grant, PinnedRoot};
use landlock::{
    ABI, Access as _, AccessFs, AccessNet, BitFlags, LandlockStatus, NetPort, PathBeneath, PathFd, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The newest Landlock ABI this host asks for (filesystem, TCP and scope rules).
const WANTED: ABI = ABI::V7;

/// What the running kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Landlock with this ABI version: filesystem rules from 1, TCP from 4, scopes
    /// (abstract sockets, signals) from 6.
    Landlock(i32),
    /// No Landlock: the kernel lacks it, or it is disabled.
    Unavailable,
}

impl Support {
    /// Whether files are confined.
    pub fn files(self) -> bool {
        matches!(self, Support::Landlock(_))
    }

    /// Whether TCP connects and binds are confined too.
    pub fn tcp(self) -> bool {
        matches!(self, Support::Landlock(abi) if abi >= 4)
    }

    /// Whether programs can be confined as gitauto promises: files including
    /// `truncate` (ABI 3), TCP (4), and signals and abstract sockets (6), so that a
    /// program can neither truncate the daemon's files nor signal the daemon.
    pub fn programs(self) -> bool {
        matches!(self, Support::Landlock(abi) if abi >= 6)
    }
}

impl std::fmt::Display for Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Support::Landlock(abi) => write!(f, "Landlock ABI {abi}"),
            Support::Unavailable => f.write_str("no Landlock"),
        }
    }
}

/// What this kernel enforces, probed once.
pub fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        // Probe on a thread of its own: restricting is for good.
        std::thread::spawn(|| {
            let status = landlock::Ruleset::default()
                .handle_access(AccessFs::Execute)
                .and_then(|ruleset| ruleset.create())
                .and_then(|created| created.restrict_self());
            match status {
                Ok(status) if status.ruleset != RulesetStatus::NotEnforced => match status.landlock {
                    LandlockStatus::Available { effective_abi, kernel_abi } => {
                        Support::Landlock(kernel_abi.unwrap_or(effective_abi as i32))
                    }
                    _ => Support::Unavailable,
                },
                _ => Support::Unavailable,
            }
        })
        .join()
        .unwrap_or(Support::Unavailable)
    })
}

/// What a path rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Read files and list directories.
    Read,
    /// Read, and run programs found there.
    ReadExecute,
    /// Read, create, change and remove files and directories; never run them.
    Write,
}

impl Level {
    fn rights(self) -> BitFlags<AccessFs> {
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        match self {
            Level::Read => read,
            Level::ReadExecute => read | AccessFs::Execute,
            // Devices cannot be made (that needs privileges anyway), nor used by ioctl;
            // nor FIFOs and sockets, which would hold whatever opens them later.
            Level::Write => {
                AccessFs::from_all(WANTED)
                    & !(AccessFs::Execute
                        | AccessFs::MakeChar
                        | AccessFs::MakeBlock
                        | AccessFs::IoctlDev
                        | AccessFs::MakeFifo
                        | AccessFs::MakeSock)
            }
        }
    }
}

/// Where a rule points: a grant pinned at config load, or a path opened now.
#[derive(Debug, Clone)]
enum Place {
    Pinned(Arc<PinnedRoot>),
    Path(PathBuf),
}

/// The TCP a confined thread may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tcp {
    /// None at all.
    Deny,
    /// Connects to these ports only; no listening.
    Connect(Vec<u16>),
    /// Any.
    Allow,
}

/// Everything a confined thread may reach; nothing else is.
#[derive(Debug, Clone)]
pub struct Rules {
    paths: Vec<(Place, Level)>,
    tcp: Tcp,
}

/// System files a program or libgit2 reads to start, resolve names and check TLS
/// certificates. Deliberately not the whole of `/etc`: configuration with secrets (the
/// daemon's own among them) often lives there.
const SYSTEM_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/os-release",
    "/usr/share/zoneinfo",
];
/// Directories that hold programs and their libraries.
const SYSTEM_PROGRAMS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// Devices every program may open.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

impl Rules {
    /// Nothing at all: no files, no TCP.
    pub fn none() -> Self {
        Self { paths: Vec::new(), tcp: Tcp::Deny }
    }

    /// The plugin's granted directories for a git call: each at most `ceiling`, and at
    /// most what the grant allows (a read grant is read-only; git and write grants are
    /// writable when `ceiling` allows changing repositories).
    pub fn grant(grant: &Grant, ceiling: Access) -> Self {
        Self::dirs(grant, |access| access.min(ceiling) >= Access::Git)
    }

    /// The plugin's granted directories for a program: only `write = true` directories
    /// are writable. A `git = true` directory is read-only to programs, or a program could
    /// rewrite the repositories' configuration that git calls trust. Also the rules of a
    /// host call that writes a file the plugin could have written itself (git `archive`).
    pub fn program(grant: &Grant) -> Self {
        Self::dirs(grant, |access| access == Access::Write)
    }

    fn dirs(grant: &Grant, writable: impl Fn(Access) -> bool) -> Self {
        let mut rules = Self::none();
        for dir in &grant.dirs {
            let Some(root) = &dir.root else { continue };
            let level = if writable(dir.access) { Level::Write } else { Level::Read };
            rules.paths.push((Place::Pinned(root.clone()), level));
        }
        rules
    }

    /// Adds what libgit2 needs from the system to reach a network remote: the files
    /// above, and (read-only) the system directories where OpenSSL's configuration and
    /// certificate store and the name-service modules live.
    pub fn with_system_files(mut self) -> Self {
        for path in SYSTEM_FILES.iter().chain(SYSTEM_PROGRAMS) {
            self.paths.push((Place::Path(path.into()), Level::Read));
        }
        self
    }

    /// Adds what a program needs from the system to start: its libraries and programs
    /// (read and run), system files, a few devices, and `/proc` (the kernel keeps other
    /// processes' private entries from a confined one).
    pub fn with_program_runtime(mut self) -> Self {
        for path in SYSTEM_FILES {
            self.paths.push((Place::Path(path.into()), Level::Read));
        }
        for path in SYSTEM_PROGRAMS {
            self.paths.push((Place::Path(path.into()), Level::ReadExecute));
        }
        for path in DEVICES {
            self.paths.push((Place::Path(path.into()), Level::Write));
        }
        self.paths.push((Place::Path("/proc".into()), Level::Read));
        self
    }

    /// Adds one path at `level`.
    pub fn with_path(mut self, path: &Path, level: Level) -> Self {
        self.paths.push((Place::Path(path.to_path_buf()), level));
        self
    }

    /// Sets the TCP the thread may use.
    pub fn with_tcp(mut self, tcp: Tcp) -> Self {
        self.tcp = tcp;
        self
    }

    /// Confines the calling thread, for good.
    fn enforce(&self) -> Result<(), String> {
        let failed = |err: landlock::RulesetError| format!("confining the call: {err}");
        let mut ruleset = landlock::Ruleset::default()
            .handle_access(AccessFs::from_all(WANTED))
            .and_then(|ruleset| ruleset.scope(Scope::from_all(WANTED)))
            .map_err(failed)?;
        if self.tcp != Tcp::Allow {
            ruleset = ruleset.handle_access(AccessNet::from_all(WANTED)).map_err(failed)?;
        }
        let mut created = ruleset.create().map_err(failed)?;
        for (place, level) in &self.paths {
            let rights = if let Place::Path(path) = place
                && !path.is_dir()
            {
                // Directory-only rights on a file are refused by the kernel.
                level.rights()
                    & (AccessFs::Execute
                        | AccessFs::WriteFile
                        | AccessFs::ReadFile
                        | AccessFs::Truncate
                        | AccessFs::IoctlDev)
            } else {
                level.rights()
            };
            created = match place {
                Place::Pinned(root) => created.add_rule(PathBeneath::new(root.fd.as_fd(), rights)),
                Place::Path(path) => match PathFd::new(path) {
                    Ok(fd) => created.add_rule(PathBeneath::new(fd, rights)),
                    // A system path this host does not have: nothing to allow.
                    Err(_) => continue,
                },
            }
            .map_err(failed)?;
        }
        if let Tcp::Connect(ports) = &self.tcp {
            for port in ports {
                created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(failed)?;
            }
        }
        let status = created.restrict_self().map_err(failed)?;
        if status.ruleset == RulesetStatus::NotEnforced && support().files() {
            return Err("confining the call: the kernel did not enforce the rules".into());
        }
        Ok(())
    }
}

/// Why confined work did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The thread could not be started or confined.
    #[error("{0}")]
    Confine(String),
    /// The deadline passed first. The work goes on alone until it ends (libgit2 has no
    /// way to stop a transfer from outside), but its result is dropped.
    #[error("the step's deadline passed")]
    Deadline,
    /// The work panicked (a host bug).
    #[error("the host call failed unexpectedly")]
    Panicked,
}

/// Runs `work` on a new thread confined to `rules`, and returns what it returned, or
/// [`RunError::Deadline`] once `deadline` passes. Without Landlock the work runs
/// unconfined: callers that must not run then (granted programs) check [`support`].
pub fn run<T: Send + 'static>(
    rules: Rules,
    deadline: Option<Instant>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("gitauto-confined".into())
        .spawn(move || {
            let outcome = if support().files() { rules.enforce().map_err(RunError::Confine) } else { Ok(()) };
            let outcome = outcome.and_then(|()| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| RunError::Panicked)
            });
            let _ = done.send((outcome, thread_cpu()));
        })
        .map_err(|err| RunError::Confine(format!("starting a confined thread: {err}")))?;
    let received = match deadline {
        Some(deadline) => {
            result.recv_timeout(deadline.saturating_duration_since(Instant::now())).map_err(|err| match err {
                std::sync::mpsc::RecvTimeoutError::Timeout => RunError::Deadline,
                std::sync::mpsc::RecvTimeoutError::Disconnected => RunError::Panicked,
            })
        }
        None => result.recv().map_err(|_| RunError::Panicked),
    };
    let (outcome, cpu) = received?;
    CONFINED_CPU.with(|total| total.set(total.get() + cpu));
    outcome
}

thread_local! {
    /// CPU time of the confined threads this thread waited for, for a step's bill.
    static CONFINED_CPU: std::cell::Cell<std::time::Duration> = const { std::cell::Cell::new(std::time::Duration::ZERO) };
}

/// CPU time the calling thread has used, plus that of the confined threads it waited
/// for to the end ([`run`]): a step's own CPU and its host calls'. Zero where the clock
/// cannot be read.
pub fn thread_cpu_with_confined() -> std::time::Duration {
    thread_cpu() + CONFINED_CPU.with(std::cell::Cell::get)
}

/// CPU time the calling thread has used.
fn thread_cpu() -> std::time::Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::DirGrant;

    fn landlock() -> bool {
        if support().files() {
            return true;
        }
        assert!(std::env::var_os("CI").is_none(), "CI machines have Landlock; this one reports none");
        eprintln!("skipped: this kernel has no Landlock");
        false
    }

    /// Issue 16: the kernel refuses what the grant does not allow, whatever string led there.
    #[test]
    fn a_confined_thread_reaches_its_grants_and_nothing_else() {
        if !landlock() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["read", "write", "git", "outside"] {
            std::fs::create_dir(root.join(sub)).unwrap();
            std::fs::write(root.join(sub).join("file"), sub).unwrap();
        }
        // A link inside a grant to a place outside: the kernel follows it and refuses.
        std::os::unix::fs::symlink("../outside", root.join("write/link")).unwrap();
        let grant = Grant {
            dirs: vec![
                DirGrant::new(root.join("read"), Access::Read),
                DirGrant::new(root.join("write"), Access::Write),
                DirGrant::new(root.join("git"), Access::Git),
            ],
            ..Grant::default()
        };
        let r = move |p: &str| root.join(p);
        let inside = r.clone();
        let outcome = run(Rules::grant(&grant, Access::Write), None, move || {
            let r = inside;
            [
                std::fs::read(r("read/file")).is_ok(),
                std::fs::write(r("read/new"), "x").is_err(),
                std::fs::write(r("write/new"), "x").is_ok(),
                std::fs::write(r("git/new"), "x").is_ok(),
                std::fs::read(r("outside/file")).is_err(),
                std::fs::read(r("write/link/file")).is_err(),
                std::fs::write(r("write/link/planted"), "x").is_err(),
                std::fs::remove_file(r("outside/file")).is_err(),
                std::fs::read("/etc/hostname").is_err(),
            ]
        })
        .unwrap();
        assert_eq!(outcome, [true; 9], "read, write, git, outside, link, /etc");
        // A read-only ceiling makes every grant read-only.
        let inside = r.clone();
        let writes =
            run(Rules::grant(&grant, Access::Read), None, move || std::fs::write(inside("write/ceiling"), "x").is_ok());
        assert_eq!(writes, Ok(false));
        assert!(!r("outside/planted").exists() && r("outside/file").exists());
        // The rest of the process keeps its rights.
        assert!(std::fs::read(r("outside/file")).is_ok());
    }

    #[test]
    fn tcp_is_refused_unless_allowed() {
        if !landlock() || !support().tcp() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert_eq!(run(Rules::none(), None, connect), Ok(false));
        assert_eq!(run(Rules::none().with_tcp(Tcp::Connect(vec![port])), None, connect), Ok(true));
        assert_eq!(run(Rules::none().with_tcp(Tcp::Connect(vec![port.wrapping_add(1)])), None, connect), Ok(false));
        assert_eq!(run(Rules::none().with_tcp(Tcp::Allow), None, connect), Ok(true));
        drop(listener);
    }

    #[test]
    fn work_past_the_deadline_is_abandoned() {
        let started = Instant::now();
        let outcome = run(Rules::none(), Some(started + std::time::Duration::from_millis(50)), || {
            #[allow(clippy::disallowed_methods, reason = "a test of a thread that outlives its deadline")]
            std::thread::sleep(std::time::Duration::from_secs(2));
        });
        assert_eq!(outcome, Err(RunError::Deadline));
    }
}
