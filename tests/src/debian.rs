//! Real programs the tests run (flake8, ...) from Debian packages: installed with
//! `apt-get` when missing, as root or through `sudo -n`, as the store tests install
//! PostgreSQL (`gitauto::testing`). A package that cannot be installed fails the test
//! saying why: a test that silently skips its program proves nothing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Where the `shell` capability's programs are found (its fixed `PATH`).
const PROGRAM_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// One installation at a time in this process: apt holds a lock of its own.
static INSTALLING: Mutex<()> = Mutex::new(());

/// The absolute path of `program`, installing the Debian package `package` first when
/// the program is not in the system's program directories.
pub fn ensure_debian_package(package: &str, program: &str) -> PathBuf {
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = find(program) {
        return found;
    }
    install(package);
    find(program).unwrap_or_else(|| panic!("installed {package}, but `{program}` is not in {PROGRAM_DIRS:?}"))
}

/// Installs the Debian package `package`, which brings no program of its own (a PHP
/// extension, a library), unless `installed` says it is there already; panics when
/// `installed` still says no afterwards.
pub fn ensure_debian_package_for(package: &str, installed: impl Fn() -> bool) {
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if installed() {
        return;
    }
    install(package);
    assert!(installed(), "installed {package}, but it is still missing");
}

fn install(package: &str) {
    if let Err(first) = apt_get(&["install", "-y", "-q", package]) {
        // Stale package lists are the usual cause: refresh them and try once more.
        apt_get(&["update", "-q"]).unwrap_or_else(|why| panic!("installing {package}: {first}; apt-get update: {why}"));
        apt_get(&["install", "-y", "-q", package]).unwrap_or_else(|why| panic!("installing {package}: {why}"));
    }
}

fn find(program: &str) -> Option<PathBuf> {
    PROGRAM_DIRS.iter().map(|dir| PathBuf::from(dir).join(program)).find(|path| path.is_file())
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let mut command = if root { Command::new("apt-get") } else { Command::new("sudo") };
    if !root {
        command.args(["-n", "apt-get"]);
    }
    // Another test process may be installing too: wait for apt's lock rather than fail.
    command.args(["-o", "DPkg::Lock::Timeout=300"]).args(args).env("DEBIAN_FRONTEND", "noninteractive");
    let output = command.output().map_err(|err| format!("{command:?}: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
