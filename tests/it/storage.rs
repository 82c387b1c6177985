//! The queue's disk fails: full under the running daemon (webhooks get 503, so the forge
//! delivers again; everything accepted stays; deliveries are taken again once there is
//! space), and read-only at start (a clear refusal; everything there once writable). The data directory is a small tmpfs of its
//! own, mounted by the test (root is needed; without it the test says so and, outside
//! CI, skips).

use gitauto_tests::{TestDaemon, github_source, push_payload};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(path).status();
        match status {
            Ok(status) if status.success() => Some(Self(path.to_path_buf())),
            _ => None,
        }
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&self.0).status().unwrap();
        assert!(status.success(), "remounting {} {mode}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mounted_or_skip(path: &Path) -> Option<Mount> {
    let mount = Mount::tmpfs(path, "8m");
    if mount.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mounting a tmpfs failed: this test needs root (CI machines run the suite as root)"
        );
        eprintln!("SKIPPED: the disk-failure test needs root to mount a tmpfs");
    }
    mount
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_or_read_only_disk_answers_503_loses_nothing_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let Some(mount) = mounted_or_skip(&data) else { return };
    let daemon = TestDaemon::start(&format!(
        "[server]\ndata_dir = \"{}\"\n\n{}\n[plugins.none]\nwasm = \"{}\"\n\n[[rules]]\nname = \"r\"\non = \"push\"\nrepo = \"acme/never\"\nsteps = [{{ plugin = \"none\" }}]\n",
        data.display(),
        github_source(),
        env!("GITAUTO_GUEST_PROBE"),
    ))
    .await;
    // Each delivery as the forge sends it, so a refused one can be sent again unchanged.
    let mut n = 0u32;
    let mut next = || {
        n += 1;
        let payload =
            push_payload("acme", "widgets", "refs/heads/main", &"0".repeat(40), &format!("{n:040x}"), "file:///x");
        let headers = gitauto::send::headers(daemon.config.source("github").unwrap(), "push", &payload);
        let id = headers.iter().find(|(name, _)| name == "X-GitHub-Delivery").map(|(_, id)| id.clone()).unwrap();
        (id, headers, payload)
    };
    let send = async |delivery: &(String, Vec<(String, String)>, Vec<u8>)| {
        let (status, body) = daemon.post("/hooks/github", &delivery.1, &delivery.2).await;
        (status, body)
    };

    let mut accepted = Vec::new();
    for _ in 0..5 {
        let delivery = next();
        let (status, body) = send(&delivery).await;
        assert_eq!(status, 202, "{body}");
        accepted.push(delivery.0);
    }

    // Fill the disk, then post until the queue cannot write any more.
    let filler = data.join("filler");
    let _ = std::fs::write(&filler, vec![7u8; 16 << 20]);
    let mut refused = None;
    for _ in 0..500 {
        let delivery = next();
        let (status, body) = send(&delivery).await;
        match status {
            202 => accepted.push(delivery.0),
            503 => {
                assert_eq!(body["error"], "the delivery could not be stored; try again");
                refused = Some(delivery);
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let refused = refused.expect("a full disk refuses deliveries");
    assert_eq!(daemon.get("/healthz").await.0, 200, "the daemon itself keeps answering");

    // Space returns: the refused delivery, sent again as the forge would, gets in.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = send(&refused).await;
    assert_eq!(status, 202, "after space returns: {body}");
    accepted.push(refused.0);

    let delivery = next();
    let (status, body) = send(&delivery).await;
    assert_eq!(status, 202, "{body}");
    accepted.push(delivery.0);
    // Everything accepted at any point is there.
    for delivery in &accepted {
        let (status, record) = daemon.get(&format!("/api/deliveries/{delivery}")).await;
        assert_eq!(status, 200, "delivery {delivery} was accepted and must be kept: {record}");
    }
    eprintln!("{} deliveries accepted around a full disk", accepted.len());
    let config = daemon.config.clone();
    daemon.stop().await;

    // A read-only disk (Linux refuses to remount one read-only while the queue holds its
    // file open for writing, so this happens between runs, as after a reboot): the daemon
    // says what is wrong instead of starting, and starts with everything once it is
    // writable again.
    mount.remount("ro");
    let refused = gitauto::daemon::Daemon::prepare(config.clone()).await.err().expect("a read-only queue is refused");
    let message = format!("{refused:#}");
    assert!(message.contains("Read-only file system") || message.contains("readonly"), "{message}");
    assert!(message.contains(&data.display().to_string()), "the message names the place: {message}");
    mount.remount("rw");
    let daemon = gitauto::daemon::Daemon::prepare(config).await.expect("starts once the disk is writable");
    for delivery in &accepted {
        assert!(daemon.queue().delivery(delivery.clone()).await.unwrap().is_some(), "delivery {delivery} survived");
    }
    drop(daemon);
    drop(mount);
}
