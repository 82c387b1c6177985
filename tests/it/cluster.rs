//! Three daemons sharing one PostgreSQL queue (`[store] url`), each a node of its own:
//! deliveries sent to any of them are queued once, a redelivery that reaches another
//! daemon is still a duplicate, `any` jobs run exactly once somewhere, and `every` jobs
//! run once on each node. The PostgreSQL server is started by the test set-up (see
//! `gitauto::testing`).

use gitauto_tests::{TestDaemon, github_source, push_payload, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn config(url: &str, node: &str) -> String {
    let step = r#"[{ plugin = "probe", with = { op = "sleep", ms = 30 } }]"#;
    format!(
        r#"
[server]
node = "{node}"
workers = 2

[store]
url = "{url}"

{source}
[plugins.probe]
wasm = "{probe}"

[[rules]]
name = "any"
on = "push"
repo = "acme/any-*"
coalesce = false
steps = {step}

[[rules]]
name = "every"
on = "push"
repo = "acme/every"
coalesce = false
run_on = "every"
steps = {step}
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    )
}

/// Jobs of `rule`, once none of them is queued or running.
async fn finished_jobs(daemon: &TestDaemon, rule: &str, count: usize) -> Vec<Value> {
    wait_for(&format!("{count} `{rule}` jobs to finish"), Duration::from_secs(60), || async {
        let (_, answer) = daemon.get(&format!("/api/jobs?rule={rule}&limit=500")).await;
        let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
        let done = jobs.iter().all(|job| !matches!(job["state"].as_str(), Some("queued" | "running")));
        (jobs.len() == count && done).then_some(jobs)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_share_one_postgresql_queue() {
    let Some(url) = gitauto::testing::database() else { return };
    let mut daemons = Vec::new();
    for node in NODES {
        daemons.push(TestDaemon::start(&config(&url, node)).await);
    }
    wait_for("three live nodes", Duration::from_secs(20), || async {
        let (_, answer) = daemons[0].get("/api/nodes").await;
        let live = answer["nodes"].as_array().into_iter().flatten().filter(|n| n["live"] == true).count();
        (live == 3).then_some(())
    })
    .await;

    // Deliveries spread over the three daemons.
    let zero = "0".repeat(40);
    let mut first = None;
    for n in 0..30 {
        let payload =
            push_payload("acme", &format!("any-{n}"), "refs/heads/main", &zero, &format!("{n:040x}"), "file:///x");
        let source = daemons[0].config.source("github").unwrap();
        let headers = gitauto::send::headers(source, "push", &payload);
        let (status, answer) = daemons[n % 3].post("/hooks/github", &headers, &payload).await;
        assert_eq!(status, 202, "{answer}");
        first.get_or_insert((headers, payload));
    }
    // GitHub redelivers the first one, and it reaches another daemon: still a duplicate.
    let (headers, payload) = first.unwrap();
    let (status, again) = daemons[2].post("/hooks/github", &headers, &payload).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)), "{again}");
    for n in 0..2 {
        let payload = push_payload("acme", "every", "refs/heads/main", &zero, &format!("e{n:039x}"), "file:///x");
        let source = daemons[0].config.source("github").unwrap();
        let headers = gitauto::send::headers(source, "push", &payload);
        let (status, answer) = daemons[n].post("/hooks/github", &headers, &payload).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["jobs"].as_array().map(Vec::len), Some(3), "one job per live node: {answer}");
    }

    // `any`: each delivery's job ran exactly once, on some node; the work was shared.
    let any = finished_jobs(&daemons[1], "any", 30).await;
    let mut ran_on = BTreeSet::new();
    for job in &any {
        assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{job}");
        ran_on.insert(job["ran_on"].as_str().unwrap().to_owned());
    }
    assert!(ran_on.len() >= 2, "30 jobs over three nodes all ran on {ran_on:?}");

    // `every`: each delivery ran once on each node, by that node.
    let every = finished_jobs(&daemons[2], "every", 6).await;
    for job in &every {
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["node"], job["ran_on"], "an `every` job runs on its own node: {job}");
    }
    let nodes: BTreeSet<&str> = every.iter().map(|job| job["ran_on"].as_str().unwrap()).collect();
    assert_eq!(nodes, NODES.into_iter().collect());

    // Every daemon shows the whole cluster.
    let (_, nodes) = daemons[2].get("/api/nodes").await;
    assert_eq!(nodes["this"], "node-c");
    assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(3), "{nodes}");
    for daemon in daemons {
        daemon.stop().await;
    }
}
