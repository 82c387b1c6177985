#![allow(clippy::disallowed_methods, reason = "a blocking test that waits for child processes")]

//! A node of a cluster dies mid-burst: three real `gitauto` processes, started at the
//! same moment on a new database (so their schema creation races), share one
//! PostgreSQL queue and update deployment checkouts; pushes are spread over them, and one
//! is killed with SIGKILL while the burst is in flight. Every delivery any of them
//! answered 202 must have its job succeed, on a surviving node: the dead node's queued jobs
//! are claimed by the others at once, its running ones when its lease runs out.

mod common;

use common::{Daemon, free_port, post_push, push_body, repository, ureq_like_get};
use std::time::{Duration, Instant};

const SECRET: &str = "cluster-secret";
const REPOS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
const BURST: usize = 60;
const KILL_AFTER: usize = 20;

#[test]
fn a_killed_nodes_jobs_finish_on_the_others() {
    let Some(url) = gitauto::testing::database() else { return };
    let root = tempfile::tempdir().unwrap();
    let heads: Vec<_> = REPOS.iter().map(|name| repository(root.path(), name)).collect();
    let repos = root.path().join("repos");
    let mut daemons = Vec::new();
    let mut bases = Vec::new();
    for node in ["a", "b", "c"] {
        let port = free_port();
        let config = root.path().join(format!("{node}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data-{node}\"\nnode = \"{node}\"\nworkers = 2\n\
                 [store]\nurl = \"{url}\"\n[sources.github]\nforge = \"github\"\nsecret = \"{SECRET}\"\n\
                 [plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{repos}\", git = true }}] }}\n\
                 [[rules]]\nname = \"update\"\non = \"push\"\nrepo = \"acme/*\"\ncoalesce = false\n\
                 steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"{repos}\" }} }}]\n",
                repos = repos.display()
            ),
        )
        .unwrap();
        // All three start at once: the first creates the tables, the others wait for it.
        daemons.push(Some(Daemon::spawn(&config)));
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    for (daemon, base) in daemons.iter().zip(&bases) {
        daemon.as_ref().unwrap().wait_ready(base);
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let accepted = runtime.block_on(async {
        let mut burst = tokio::task::JoinSet::new();
        for n in 0..BURST {
            let (name, (_, head)) = (REPOS[n % REPOS.len()], &heads[n % REPOS.len()]);
            let url = format!("{}/hooks/github", bases[n % 3]);
            burst.spawn(post_push(client.clone(), url, SECRET, format!("cluster-{n}"), push_body(name, head, n)));
        }
        let mut accepted = Vec::new();
        let mut answered = 0;
        while let Some(posted) = burst.join_next().await {
            accepted.extend(posted.unwrap());
            answered += 1;
            if answered == KILL_AFTER {
                daemons[0].take().unwrap().kill();
            }
        }
        accepted
    });
    assert!(accepted.len() >= BURST / 2, "too few pushes got in: {}", accepted.len());

    // Every accepted delivery's job ends succeeded (a's running jobs once its lease, 30 s, runs out).
    let started = Instant::now();
    for id in &accepted {
        loop {
            let delivery: serde_json::Value =
                serde_json::from_str(&ureq_like_get(&format!("{}/api/deliveries/{id}", bases[1])).unwrap()).unwrap();
            let job_id = delivery["jobs"][0].as_str().unwrap_or_default().to_owned();
            let job: serde_json::Value = ureq_like_get(&format!("{}/api/jobs/{job_id}", bases[1]))
                .map(|text| serde_json::from_str(&text).unwrap())
                .unwrap_or_default();
            if job["state"] == "succeeded" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "delivery {id} did not finish: {job}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("{} deliveries accepted by three nodes, one killed mid-burst: all finished", accepted.len());
    drop(daemons);
}

/// Issue 23: `gitauto nodes` (the binary, against two real daemons on one PostgreSQL
/// queue, the second with an extra rule) shows each node's config fingerprint and marks
/// the one that differs; with two nodes it is a tie, which goes to the daemon asked. Once
/// the second's config file is rewritten to match, its reload shows and nothing is marked.
#[test]
fn gitauto_nodes_marks_the_node_whose_config_differs_until_it_reloads() {
    let Some(url) = gitauto::testing::database() else { return };
    let root = tempfile::tempdir().unwrap();
    let config = |node: &str, port: u16, extra: bool| {
        let extra = if extra {
            "[[rules]]\nname = \"extra\"\non = \"tag\"\nsteps = [{ plugin = \"fetch-update\", with = { repodir = \"/srv/repos\" } }]\n"
        } else {
            ""
        };
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data-{node}\"\nnode = \"{node}\"\nworkers = 1\n\
             [store]\nurl = \"{url}\"\n[sources.github]\nforge = \"github\"\nsecret = \"{SECRET}\"\n\
             [plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"/srv/repos\", git = true }}] }}\n\
             [[rules]]\nname = \"update\"\non = \"push\"\nrepo = \"acme/*\"\n\
             steps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n{extra}"
        )
    };
    let mut daemons = Vec::new();
    let mut nodes = Vec::new();
    for (node, extra) in [("a", false), ("b", true)] {
        let port = free_port();
        let path = root.path().join(format!("{node}.toml"));
        std::fs::write(&path, config(node, port, extra)).unwrap();
        let base = format!("http://127.0.0.1:{port}");
        daemons.push(Daemon::start(&path, &base));
        nodes.push((node, port, path, base));
    }
    // `gitauto nodes` as asked of `node`'s daemon: its table, once both nodes show a fingerprint.
    let table = |(_, _, path, base): &(&str, u16, std::path::PathBuf, String), ready: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        loop {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_gitauto"))
                .args(["nodes", "--url", base, "--config", path.to_str().unwrap()])
                .env("GITAUTO_LOG", "warn")
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let table = String::from_utf8(output.stdout).unwrap();
            if ready(&table) {
                return table;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "gitauto nodes never showed what was awaited:\n{table}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let row = |table: &str, node: &str| {
        let row = table.lines().find(|line| line.starts_with(&format!("{node} "))).unwrap_or_else(|| panic!("{table}"));
        row.split_whitespace().nth(5).unwrap_or_else(|| panic!("{table}")).to_owned()
    };
    let both_live =
        |table: &str| table.lines().filter(|line| line.split_whitespace().nth(1) == Some("yes")).count() == 2;
    let from_a = table(&nodes[0], &both_live);
    assert!(from_a.lines().next().unwrap().contains(" CONFIG "), "{from_a}");
    let (a, b) = (row(&from_a, "a"), row(&from_a, "b"));
    assert!(a.len() == 12 && a.bytes().all(|c| c.is_ascii_hexdigit()), "a's own is the reference: {from_a}");
    assert!(b.len() == 13 && b.ends_with('*') && !b.starts_with(&a), "b's is marked: {from_a}");
    assert!(from_a.contains("\n* 1 live node(s) run a config that differs"), "{from_a}");
    let from_b = table(&nodes[1], &both_live);
    assert_eq!(
        (row(&from_b, "a"), row(&from_b, "b")),
        (format!("{a}*"), b.trim_end_matches('*').to_owned()),
        "{from_b}"
    );

    // b's config made to match a's: its watcher reloads it, and the next heartbeat says so.
    let (_, port, path, _) = &nodes[1];
    std::fs::write(path, config("b", *port, false)).unwrap();
    let agreed = table(&nodes[0], &|table: &str| !table.contains('*'));
    assert_eq!((row(&agreed, "a"), row(&agreed, "b")), (a.clone(), a), "{agreed}");
    drop(daemons);
}
