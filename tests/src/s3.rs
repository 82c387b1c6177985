//! A real S3-compatible server on loopback: `s3s-fs` (the `s3s` project's file-system
//! backend). It verifies AWS Signature Version 4 on every request (a wrong key or a
//! tampered request is answered 403, and it insists on `x-amz-content-sha256`), and
//! keeps each bucket as a directory and each object as a file, so tests read what was
//! stored without a client of their own.
//!
//! The server is installed once with `cargo install` into `target/tools/s3s-fs` (about
//! three minutes cold); 0.14.1 is the newest release that builds with this toolchain.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The s3s-fs release the tests run.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The access key every test server accepts.
pub const ACCESS_KEY: &str = "AKIDGITAUTOTEST";
/// The secret key every test server accepts.
pub const SECRET_KEY: &str = "gitauto-test-secret/Key+0123456789";
/// The region the tests sign for (s3s-fs accepts any).
pub const REGION: &str = "us-east-1";

/// One installation at a time in this process.
static INSTALLING: Mutex<()> = Mutex::new(());

/// A running server over a temporary directory; stopped when dropped.
pub struct S3Server {
    child: Child,
    addr: SocketAddr,
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with `buckets` created (empty).
    pub async fn start(buckets: &[&str]) -> Self {
        let program = tokio::task::spawn_blocking(ensure_installed).await.expect("installing s3s-fs");
        let root = tempfile::tempdir().expect("a directory for the S3 server");
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket)).expect("a bucket directory");
        }
        // The server binds the port itself; take a free one and hand it over. Another
        // process taking it in between makes the start fail loudly below.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(&program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", program.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = child.try_wait().expect("the S3 server's status") {
                let mut stderr = String::new();
                child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
                panic!("the S3 server exited ({status}) before listening on {addr}: {stderr}");
            }
            assert!(Instant::now() < deadline, "the S3 server did not listen on {addr} within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, addr, root }
    }

    /// `127.0.0.1:PORT`, as a grant names the host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A grant's host entry that signs with the server's keys (`secret` overrides the
    /// secret key, to test a wrong one).
    pub fn granted_host(&self, secret: Option<&str>) -> String {
        format!(
            "{{ host = \"{}\", credential = {{ sigv4 = {{ access_key = \"{ACCESS_KEY}\", secret_key = \"{}\", region = \"{REGION}\", service = \"s3\" }} }} }}",
            self.host(),
            secret.unwrap_or(SECRET_KEY)
        )
    }

    /// The stored bytes of `bucket`/`key`, if there is such an object.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let path = self.root.path().join(bucket).join(key);
        path.is_file().then(|| std::fs::read(&path).expect("an object's file"))
    }

    /// Every key of `bucket`, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        walk(&self.root.path().join(bucket), "", &mut keys);
        keys.sort();
        keys
    }

    /// The `Content-Type` stored with an object, if it was given one.
    pub fn content_type(&self, bucket: &str, key: &str) -> Option<String> {
        self.attribute(bucket, key, "content_type")
    }

    /// The `Cache-Control` stored with an object, if it was given one.
    pub fn cache_control(&self, bucket: &str, key: &str) -> Option<String> {
        self.attribute(bucket, key, "cache_control")
    }

    /// One of the attributes s3s-fs keeps beside the bucket directories, in
    /// `.bucket-<b64>.object-<b64>.metadata.json`.
    fn attribute(&self, bucket: &str, key: &str, name: &str) -> Option<String> {
        use base64::Engine as _;
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let path = self.root.path().join(format!(".bucket-{}.object-{}.metadata.json", encode(bucket), encode(key)));
        let text = std::fs::read(path).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&text).expect("s3s-fs metadata is JSON");
        value.get(name)?.as_str().map(str::to_owned)
    }

    /// Whether the server is still running (a test's requests did not bring it down).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("the S3 server's status").is_none()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn walk(dir: &Path, prefix: &str, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.map(|e| e.expect("a directory entry")) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = format!("{prefix}{name}");
        if entry.file_type().expect("an entry's type").is_dir() {
            walk(&entry.path(), &format!("{key}/"), keys);
        } else {
            keys.push(key);
        }
    }
}

/// The server's program, installed into `target/tools/s3s-fs` when missing.
pub fn ensure_installed() -> PathBuf {
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").join("target/tools/s3s-fs");
    let program = root.join("bin/s3s-fs");
    let stamp = root.join("version");
    if program.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|v| v == S3S_FS_VERSION) {
        return program;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["install", &format!("s3s-fs@{S3S_FS_VERSION}"), "--features", "binary", "--locked", "--force"])
        .arg("--root")
        .arg(&root)
        .output()
        .expect("running cargo install");
    assert!(
        output.status.success(),
        "cargo install s3s-fs@{S3S_FS_VERSION} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&stamp, S3S_FS_VERSION).expect("writing the s3s-fs version stamp");
    program
}
