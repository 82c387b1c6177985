//! For tests (the queue's and the integration suite's), not for users: a throwaway
//! PostgreSQL server on loopback, started once per test process
//! from Debian's `postgresql` package (installed with `apt-get` when missing, as root or
//! through `sudo -n`), with a fresh database for each caller. Under `CI` a server that
//! cannot be started fails the test; elsewhere the PostgreSQL half of a test is skipped
//! with a loud message. The server stops, and its files go, when the test process exits.
//! A second server speaks TLS with certificates the `openssl` program makes at test time.

#![allow(clippy::disallowed_methods, reason = "test support: PostgreSQL starts on a thread of its own")]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server's base URL (without a database), or why there is none.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
/// The TLS server's base URL (host `localhost`, the name its certificate holds).
static TLS_SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static TLS_FILES: OnceLock<Result<TlsFiles, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A URL of a new, empty database, or `None` (said on stderr) when no server can run here.
pub fn database() -> Option<String> {
    // The synchronous client runs its own runtime: keep it off the test's.
    std::thread::spawn(|| new_database(SERVER.get_or_init(|| start("pg", "127.0.0.1", &[]))))
        .join()
        .expect("creating a test database")
}

/// A URL of a new, empty database on the server that speaks TLS (`ssl = on`, the
/// certificate of [`tls_files`]), as `postgres://gitauto@localhost:PORT/NAME` with no
/// `sslmode`, or `None` as for [`database`].
pub fn tls_database() -> Option<String> {
    std::thread::spawn(|| new_database(TLS_SERVER.get_or_init(start_tls)))
        .join()
        .expect("creating a test database on the TLS server")
}

/// Certificates for the TLS tests, made once per test process.
#[derive(Debug)]
pub struct TlsFiles {
    /// The CA that signed `cert` (PEM).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server shows.
    pub other_ca: PathBuf,
    /// The server's certificate: subject alternative name `DNS:localhost` only.
    pub cert: PathBuf,
    /// The server's key (0600; as root, owned by `postgres`, as the server demands).
    pub key: PathBuf,
}

/// The TLS tests' certificates, or `None` (said on stderr) when `openssl` cannot run here.
pub fn tls_files() -> Option<&'static TlsFiles> {
    available(TLS_FILES.get_or_init(make_tls_files))
}

/// The value of a set-up that worked; under `CI` a panic when it did not, elsewhere `None`.
fn available<T>(set_up: &Result<T, String>) -> Option<&T> {
    match set_up {
        Ok(value) => Some(value),
        Err(why) if std::env::var_os("CI").is_some() => panic!("PostgreSQL is needed under CI: {why}"),
        Err(why) => {
            eprintln!("SKIPPED the PostgreSQL half of this test: {why}");
            None
        }
    }
}

fn new_database(server: &Result<String, String>) -> Option<String> {
    let base = available(server)?;
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

fn start_tls() -> Result<String, String> {
    let files = TLS_FILES.get_or_init(make_tls_files).as_ref().map_err(Clone::clone)?;
    let setting = |name: &str, path: &PathBuf| format!("{name}={}", path.display());
    let settings = ["ssl=on".to_owned(), setting("ssl_cert_file", &files.cert), setting("ssl_key_file", &files.key)];
    start("pgtls", "localhost", &settings)
}

/// Where the test process keeps its servers and certificates.
fn root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A CA, a server certificate it signs for `localhost` only, and an unrelated CA.
fn make_tls_files() -> Result<TlsFiles, String> {
    if Command::new("openssl").arg("version").output().is_err() {
        install("openssl")?;
    }
    let dir = root().join(format!("gitauto-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    remove_when_gone(&dir, None)?;
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(&dir).args(args));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for name in ["ca", "other-ca"] {
        let (key, pem, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=gitauto test {name}"));
        let ca = ["-keyout", &key, "-out", &pem, "-days", "3650", "-subj", &subject];
        let extensions =
            ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
        openssl(&[&["req", "-x509"], &ec[..], &ca[..], &extensions[..]].concat())?;
    }
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|err| err.to_string())?;
    openssl(
        &[&["req", "-new"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]]
            .concat(),
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-out",
        "server.pem",
        "-extfile",
        "server.ext",
    ])?;
    let key = dir.join("server.key");
    // PostgreSQL refuses a key that others may read, or (as root) one it does not own.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(|e| e.to_string())?;
    if is_root() {
        postgres_user()?;
        run(Command::new("chown").arg("postgres").arg(&key))?;
    }
    Ok(TlsFiles { ca: dir.join("ca.pem"), other_ca: dir.join("other-ca.pem"), cert: dir.join("server.pem"), key })
}

/// Removes `dir` (after stopping `server`) once the test process has exited.
fn remove_when_gone(dir: &std::path::Path, server: Option<u32>) -> Result<(), String> {
    let stop = server.map_or_else(String::new, |server| {
        format!("kill {server}; while kill -0 {server} 2>/dev/null; do sleep 1; done; ")
    });
    let watch = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; {stop}rm -rf -- \"$1\"",
        parent = std::process::id(),
    );
    // The path goes in as `$1`, never into the script's text. It outlives the test
    // process: holding the test's pipes, it would keep a parent that reads them (and
    // reaps the test only after their end, as `Command::output` does) waiting for ever.
    Command::new("sh")
        .arg("-c")
        .arg(watch)
        .arg("sh")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("watching {}: {err}", dir.display()))?;
    Ok(())
}

// A blocking wait, on a thread of its own, for the server to take connections.
fn start(name: &str, host: &str, settings: &[String]) -> Result<String, String> {
    let bin = match find_bin() {
        Some(bin) => bin,
        None => {
            install("postgresql")?;
            find_bin().ok_or("PostgreSQL is not installed (`apt-get install postgresql`)")?
        }
    };
    let dir = root().join(format!("gitauto-{name}-{}", std::process::id()));
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
        .args(settings.iter().flat_map(|setting| ["-c", setting]))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|err| err.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|err| format!("starting PostgreSQL: {err}"))?;
    // The server runs until this test process is gone, then stops.
    remove_when_gone(&dir, Some(server.id()))?;
    let base = format!("postgres://gitauto@{host}:{port}");
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

fn install(package: &str) -> Result<(), String> {
    let mut command = if is_root() { Command::new("apt-get") } else { Command::new("sudo") };
    if !is_root() {
        command.args(["-n", "apt-get"]);
    }
    command.args(["install", "-y", "-q", package]).env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut command).map_err(|why| format!("installing {package} failed: {why}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Set in the child process of the test below.
    const CHILD: &str = "GITAUTO_TESTING_CHILD";

    /// A test that runs a child process which starts the test PostgreSQL, and collects its
    /// output through pipes, must see those pipes end when the child does: the server and
    /// the watcher that stops it outlive the child and must not hold them.
    #[test]
    fn a_child_that_starts_a_database_leaves_no_one_holding_its_pipes() {
        if std::env::var_os(CHILD).is_some() {
            println!("database: {:?}", database());
            return;
        }
        let name = "testing::tests::a_child_that_starts_a_database_leaves_no_one_holding_its_pipes";
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = child.wait().unwrap();
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        // The writing ends of the pipes, wherever they are still open, share their inode.
        let pipes: Vec<PathBuf> = [stdout.as_raw_fd(), stderr.as_raw_fd()]
            .iter()
            .map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap())
            .collect();
        let mut holders = Vec::new();
        for process in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = process.file_name().to_string_lossy().into_owned();
            if pid.parse::<u32>().is_err() || pid == std::process::id().to_string() {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
            if fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| pipes.contains(&target))) {
                let command = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
                holders.push(format!("{pid}: {}", String::from_utf8_lossy(&command).replace('\0', " ")));
            }
        }
        assert!(holders.is_empty(), "the child's pipes are still held by {holders:#?}");
        let mut output = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut output).unwrap();
        std::io::Read::read_to_string(&mut stderr, &mut output).unwrap();
        assert!(status.success(), "{output}");
        // Without a server here (and outside CI) the child said it skipped: nothing held.
        assert!(output.contains("database: Some(\"postgres://") || output.contains("SKIPPED"), "{output}");
    }
}
