//! For tests (the queue's and the integration suite's), not for users: a throwaway
//! PostgreSQL server on loopback, started once per test process
//! from Debian's `postgresql` package (installed with `apt-get` when missing, as root or
//! through `sudo -n`), with a fresh database for each caller. Under `CI` a server that
//! cannot be started fails the test; elsewhere the PostgreSQL half of a test is skipped
//! with a loud message. The server stops, and its files go, when the test process exits.

#![allow(clippy::disallowed_methods, reason = "test support: PostgreSQL starts on a thread of its own")]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server's base URL (without a database), or why there is none.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A URL of a new, empty database, or `None` (said on stderr) when no server can run here.
pub fn database() -> Option<String> {
    // The synchronous client runs its own runtime: keep it off the test's.
    std::thread::spawn(new_database).join().expect("creating a test database")
}

fn new_database() -> Option<String> {
    let server = SERVER.get_or_init(start);
    let base = match server {
        Ok(base) => base,
        Err(why) if std::env::var_os("CI").is_some() => panic!("PostgreSQL is needed under CI: {why}"),
        Err(why) => {
            eprintln!("SKIPPED the PostgreSQL half of this test: {why}");
            return None;
        }
    };
    let name = format!("t{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
    let mut client = crate::queue::pg_connect::connect(&format!("{base}/postgres")).expect("connecting");
    client.batch_execute(&format!("CREATE DATABASE {name}")).expect("creating a test database");
    Some(format!("{base}/{name}"))
}

/// Runs one statement on `url` (to set up what a test needs, e.g. an expired lease).
pub fn execute(url: &str, sql: &str) {
    let url = url.to_owned();
    let sql = sql.to_owned();
    // The synchronous client runs its own runtime: keep it off the test's.
    std::thread::spawn(move || {
        let mut client = crate::queue::pg_connect::connect(&url).expect("connecting");
        client.batch_execute(&sql).expect("running the statement");
    })
    .join()
    .expect("the statement ran");
}

// A blocking wait, on a thread of its own, for the server to take connections.
fn start() -> Result<String, String> {
    let bin = match find_bin() {
        Some(bin) => bin,
        None => {
            install()?;
            find_bin().ok_or("PostgreSQL is not installed (`apt-get install postgresql`)")?
        }
    };
    let root = std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = root.join(format!("gitauto-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    // PostgreSQL refuses to run as root: as root, its files and processes belong to the
    // `postgres` user.
    let user = if is_root() { Some(postgres_user()?) } else { None };
    if user.is_some() {
        run(Command::new("chown").arg("postgres").arg(&dir))?;
    }
    let as_user = |program: PathBuf| {
        let mut command = Command::new(program);
        command.current_dir("/");
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        command
    };
    let data = dir.join("data");
    run(as_user(bin.join("initdb")).arg("-D").arg(&data).args(["-A", "trust", "-U", "gitauto", "--no-sync"]))?;
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let log = std::fs::File::create(dir.join("server.log")).map_err(|err| err.to_string())?;
    let server = as_user(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"])
        .stdout(log.try_clone().map_err(|err| err.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|err| format!("starting PostgreSQL: {err}"))?;
    // The server runs until this test process is gone, then stops.
    let watch = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill {server}; \
         while kill -0 {server} 2>/dev/null; do sleep 1; done; rm -rf {dir}",
        parent = std::process::id(),
        server = server.id(),
        dir = dir.display(),
    );
    Command::new("sh").arg("-c").arg(watch).spawn().map_err(|err| format!("watching PostgreSQL: {err}"))?;
    let base = format!("postgres://gitauto@127.0.0.1:{port}");
    for _ in 0..100 {
        if crate::queue::pg_connect::connect(&format!("{base}/postgres")).is_ok() {
            return Ok(base);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    Err(format!("PostgreSQL did not start within 10 s: {log}"))
}

fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path()).collect();
    versions.sort();
    versions.into_iter().rev().map(|v| v.join("bin")).find(|bin| bin.join("initdb").is_file())
}

fn install() -> Result<(), String> {
    let mut command = if is_root() { Command::new("apt-get") } else { Command::new("sudo") };
    if !is_root() {
        command.args(["-n", "apt-get"]);
    }
    command.args(["install", "-y", "-q", "postgresql"]).env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut command).map_err(|why| format!("installing PostgreSQL failed: {why}"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id").args([flag, "postgres"]).output().map_err(|err| err.to_string())?;
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| "there is no `postgres` user".to_owned())
    };
    Ok((id("-u")?, id("-g")?))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|err| format!("{command:?}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
