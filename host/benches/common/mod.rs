//! What the benchmarks share: signed GitHub push payloads, and a minimal keep-alive
//! HTTP/1.1 client that costs the measured daemon as little CPU as possible.

#![allow(dead_code, reason = "each benchmark uses a part")]

use hmac::{KeyInit, Mac};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A GitHub push of `full_name`'s `main`, grown with commits to at least `size` bytes.
pub fn push_payload(full_name: &str, size: usize) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/payloads/github/push.json");
    let mut push: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("fixture")).unwrap();
    let (owner, name) = full_name.split_once('/').unwrap();
    push["repository"]["full_name"] = full_name.into();
    push["repository"]["name"] = name.into();
    push["repository"]["owner"]["login"] = owner.into();
    let commit = push["commits"][0].clone();
    // Each added commit has its own id, message and URL, as in a real push: copies of one
    // commit would compress far better than real payloads do.
    let mut n = 0u32;
    while serde_json::to_vec(&push).unwrap().len() < size {
        use sha2::Digest as _;
        let id = hex::encode(&sha2::Sha256::digest(format!("{full_name} {n}"))[..20]);
        let mut added = commit.clone();
        added["url"] = format!("https://github.com/{full_name}/commit/{id}").into();
        added["message"] = format!("Change {n} of the widget catalogue ({})", &id[..7]).into();
        added["id"] = id.into();
        push["commits"].as_array_mut().unwrap().push(added);
        n += 1;
    }
    serde_json::to_vec(&push).unwrap()
}

/// GitHub's `X-Hub-Signature-256` of `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One keep-alive connection to the daemon.
pub struct Connection {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    line: String,
    answer: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let (read, write) = stream.into_split();
        Self { read: BufReader::new(read), write, line: String::new(), answer: Vec::new() }
    }

    /// Posts a signed GitHub push delivery to `/hooks/github`; returns the status and how
    /// long the answer took.
    pub async fn push(&mut self, delivery: &str, body: &[u8], signature: &str) -> (u16, Duration) {
        let head = format!(
            "POST /hooks/github HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
             x-github-event: push\r\nx-github-delivery: {delivery}\r\nx-hub-signature-256: {signature}\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        let started = Instant::now();
        self.write.write_all(head.as_bytes()).await.unwrap();
        self.write.write_all(body).await.unwrap();
        let mut status = 0;
        let mut length = 0usize;
        loop {
            self.line.clear();
            self.read.read_line(&mut self.line).await.unwrap();
            if status == 0 {
                status = self.line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            } else if self.line == "\r\n" {
                break;
            } else if let Some(value) = self.line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        self.answer.resize(length, 0);
        self.read.read_exact(&mut self.answer).await.unwrap();
        (status, started.elapsed())
    }

    /// The last answer's body.
    pub fn answer(&self) -> String {
        String::from_utf8_lossy(&self.answer).into_owned()
    }
}

#[allow(unused_imports, reason = "each benchmark uses its own part")]
pub use gitauto::bench::{env_number, percentile, report};
