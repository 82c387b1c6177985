//! The server's bounds under hostile clients: slowloris headers and bodies, oversized
//! headers and a connection flood. Connections are capped, slow ones are dropped at
//! their deadline, and health checks and signed pushes keep being answered.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn daemon() -> TestDaemon {
    TestDaemon::start(&format!(
        "[server]\nmax_connections = 16\nheader_timeout = \"1s\"\nbody_timeout = \"2s\"\nmax_header = \"16KiB\"\n\n{}",
        github_source()
    ))
    .await
}

fn address(daemon: &TestDaemon) -> String {
    daemon.url.trim_start_matches("http://").to_owned()
}

/// A request head sent a line at a time, never finished; reconnects whenever the server
/// drops it, counting the drops.
async fn slowloris(addr: String, stop: Arc<AtomicBool>, dropped: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(&addr).await else { continue };
        let _ = stream.write_all(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\n").await;
        let mut byte = 0u8;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            byte = byte.wrapping_add(1);
            let written = stream.write_all(format!("X-{byte}: y\r\n").as_bytes()).await;
            // A closed connection shows as a failed write or a readable end (the 408).
            let mut probe = [0u8; 256];
            let closed = written.is_err()
                || matches!(
                    tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await,
                    Ok(Ok(_) | Err(_))
                );
            if closed {
                break;
            }
        }
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowloris_flood_is_bounded_and_health_checks_are_answered() {
    let daemon = daemon().await;
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> =
        (0..40).map(|_| tokio::spawn(slowloris(address(&daemon), stop.clone(), dropped.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = client.get(format!("{}/healthz", daemon.url)).timeout(Duration::from_secs(10)).send().await;
        assert_eq!(answer.expect("health check answered during the flood").status(), 200);
        slowest = slowest.max(started.elapsed());
        let metrics = client.get(format!("{}/metrics", daemon.url)).send().await.unwrap().text().await.unwrap();
        let open: usize = metrics
            .lines()
            .find_map(|line| line.strip_prefix("gitauto_http_connections "))
            .expect("the connection gauge")
            .parse()
            .unwrap();
        assert!(open <= 16, "{open} connections open, above max_connections");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // 40 attackers over 16 slots freed every header_timeout (1 s): a few seconds at worst.
    assert!(slowest < Duration::from_secs(5), "a health check took {slowest:?}");

    // A signed push still gets in.
    let payload = push_payload("acme", "widgets", "refs/heads/main", &"a".repeat(40), &"b".repeat(40), "file:///x");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");

    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.unwrap();
    }
    // Each slot is freed at header_timeout: over the ~4 s of the flood, 16 slots were
    // taken from slow heads several times over.
    let dropped = dropped.load(Ordering::Relaxed);
    assert!(dropped >= 16, "only {dropped} slow heads were dropped");
    eprintln!("slowest health check {slowest:?}, {dropped} slow heads dropped");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_get_408_and_oversized_heads_431() {
    let daemon = daemon().await;

    let mut stream = TcpStream::connect(address(&daemon)).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ref\":")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("the body did not arrive within body_timeout (2 s)"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());

    let mut stream = TcpStream::connect(address(&daemon)).await.unwrap();
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "z".repeat(64 * 1024));
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    assert_eq!(daemon.get("/healthz").await.0, 200);
    daemon.stop().await;
}
