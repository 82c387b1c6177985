//! Three daemons sharing one PostgreSQL queue (`[store] url`), each a node of its own:
//! deliveries sent to any of them are queued once, a redelivery that reaches another
//! daemon is still a duplicate, `any` jobs run exactly once somewhere, and `every` jobs
//! run once on each node; a node whose config differs from the others' is shown until a
//! reload makes it agree, and the fingerprint is keyed by each store's own salt. The
//! PostgreSQL server is started by the test set-up (see `gitauto::testing`).

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

/// Issue 18: `concurrency = 1` holds across daemons. A rule whose jobs run on every node
/// (so both daemons run some) and a rule whose jobs run on any node each get several
/// events through both daemons; the recorded start and end times show that no two jobs
/// of either rule overlapped, wherever they ran.
#[tokio::test(flavor = "multi_thread")]
async fn concurrency_one_runs_a_rules_jobs_one_at_a_time_across_two_daemons() {
    let Some(url) = gitauto::testing::database() else { return };
    let step = r#"[{ plugin = "probe", with = { op = "sleep", ms = 150 } }]"#;
    let config = |node: &str| {
        format!(
            r#"
[server]
node = "{node}"
workers = 3

[store]
url = "{url}"

{source}
[plugins.probe]
wasm = "{probe}"

[[rules]]
name = "every"
on = "push"
repo = "acme/every"
coalesce = false
run_on = "every"
concurrency = 1
steps = {step}

[[rules]]
name = "any"
on = "push"
repo = "acme/any-*"
coalesce = false
concurrency = 1
steps = {step}
"#,
            source = github_source(),
            probe = env!("GITAUTO_GUEST_PROBE"),
        )
    };
    let daemons = [TestDaemon::start(&config("node-a")).await, TestDaemon::start(&config("node-b")).await];
    wait_for("two live nodes", Duration::from_secs(20), || async {
        let (_, answer) = daemons[0].get("/api/nodes").await;
        let live = answer["nodes"].as_array().into_iter().flatten().filter(|n| n["live"] == true).count();
        (live == 2).then_some(())
    })
    .await;
    let zero = "0".repeat(40);
    for n in 0..4 {
        for (repo, after) in [("every".to_owned(), format!("e{n:039x}")), (format!("any-{n}"), format!("a{n:039x}"))] {
            let payload = push_payload("acme", &repo, "refs/heads/main", &zero, &after, "file:///x");
            let (status, answer, _) = daemons[n % 2].post_as("github", "push", &payload).await;
            assert_eq!(status, 202, "{answer}");
        }
    }
    for (rule, count) in [("every", 8), ("any", 4)] {
        let jobs = finished_jobs(&daemons[0], rule, count).await;
        let mut spans = Vec::new();
        for job in &jobs {
            assert_eq!(job["state"], "succeeded", "{job}");
            spans.push((job["started_at"].as_str().unwrap(), job["finished_at"].as_str().unwrap()));
        }
        spans.sort();
        for pair in spans.windows(2) {
            // RFC 3339 in UTC with milliseconds: text order is time order.
            assert!(pair[1].0 >= pair[0].1, "two `{rule}` jobs overlapped: {pair:?}");
        }
        if rule == "every" {
            let ran_on: BTreeSet<&str> = jobs.iter().map(|job| job["ran_on"].as_str().unwrap()).collect();
            assert_eq!(ran_on, BTreeSet::from(["node-a", "node-b"]), "both daemons ran some");
        }
    }
    for daemon in daemons {
        daemon.stop().await;
    }
}

/// `GET /api/nodes` of `daemon`.
async fn nodes(daemon: &TestDaemon) -> Value {
    let (status, answer) = daemon.get("/api/nodes").await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// `GET path` of `daemon` as text (the dashboard, the metrics).
async fn text(daemon: &TestDaemon, path: &str) -> String {
    let response = reqwest::get(format!("{}{path}", daemon.url)).await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.unwrap()
}

/// Issue 23: three nodes, one with an extra rule. Its config's fingerprint differs, and
/// every surface says so: `/api/nodes` (marked, counted), the dashboard's nodes table
/// and `/metrics`. Once its config file is rewritten to match, the reload shows within a
/// heartbeat and nothing differs any more.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_config_differs_is_shown_until_a_reload_makes_it_agree() {
    let Some(url) = gitauto::testing::database() else { return };
    let extra = "\n[[rules]]\nname = \"extra\"\non = \"push\"\nrepo = \"acme/extra\"\n\
                 steps = [{ plugin = \"probe\", with = { op = \"sleep\", ms = 1 } }]\n";
    let mut daemons = Vec::new();
    for node in NODES {
        let mut text = config(&url, node);
        if node == "node-c" {
            text.push_str(extra);
        }
        daemons.push(TestDaemon::start(&text).await);
    }
    let answer = wait_for("three live nodes, one differing", Duration::from_secs(20), || async {
        let answer = nodes(&daemons[0]).await;
        let live = answer["nodes"].as_array().into_iter().flatten().filter(|n| n["live"] == true).count();
        (live == 3 && answer["configs_differ"] == 1).then_some(answer)
    })
    .await;
    let listed = answer["nodes"].as_array().unwrap();
    let fingerprint = |name: &str| {
        let node = listed.iter().find(|node| node["name"] == name).unwrap_or_else(|| panic!("{name}: {answer}"));
        (node["config"].as_str().unwrap().to_owned(), node["config_differs"].as_bool().unwrap())
    };
    let (a, b, c) = (fingerprint("node-a"), fingerprint("node-b"), fingerprint("node-c"));
    assert_eq!(a.0.len(), 12, "{answer}");
    assert!(a.0.bytes().all(|byte| byte.is_ascii_hexdigit()), "{answer}");
    assert_eq!(a, b, "same config, whatever [server] and [store] say: {answer}");
    assert!(!a.1, "{answer}");
    assert_ne!(c.0, a.0, "an extra rule changes the fingerprint: {answer}");
    assert!(c.1, "the odd one is marked: {answer}");
    // The odd node itself sees that it is the odd one: two live nodes against its one.
    let from_c = nodes(&daemons[2]).await;
    assert_eq!(from_c["configs_differ"], 1, "{from_c}");
    assert_eq!(from_c["nodes"][2]["config_differs"], true, "{from_c}");

    let dashboard = text(&daemons[0], "/").await;
    let row = dashboard.split("<tr>").find(|row| row.contains("node-c")).expect("node-c's row");
    assert!(row.contains(&format!("<span class=\"differs\">{} (differs)</span>", c.0)), "{row}");
    let row = dashboard.split("<tr>").find(|row| row.contains("node-a")).expect("node-a's row");
    assert!(row.contains(&format!("<td>{}</td>", a.0)) && !row.contains("(differs)"), "{row}");
    assert!(dashboard.contains("1 live node(s) run a config that differs"), "{dashboard}");
    let metrics = text(&daemons[1], "/metrics").await;
    assert!(metrics.contains("\ngitauto_nodes_config_differs 1\n"), "{metrics}");
    assert!(metrics.contains(&format!("\ngitauto_config_info{{fingerprint=\"{}\"}} 1\n", a.0)), "{metrics}");
    let metrics = text(&daemons[2], "/metrics").await;
    assert!(metrics.contains(&format!("\ngitauto_config_info{{fingerprint=\"{}\"}} 1\n", c.0)), "{metrics}");

    // The odd node's config is made to match: the watcher reloads it.
    std::fs::write(daemons[2].dir.path().join("gitauto.toml"), config(&url, "node-c")).unwrap();
    let answer = wait_for("the reloaded node to agree", Duration::from_secs(20), || async {
        let answer = nodes(&daemons[0]).await;
        (answer["configs_differ"] == 0).then_some(answer)
    })
    .await;
    for node in answer["nodes"].as_array().unwrap() {
        assert_eq!((&node["config"], &node["config_differs"]), (&Value::from(a.0.clone()), &Value::from(false)));
    }
    let dashboard = text(&daemons[0], "/").await;
    assert!(!dashboard.contains("(differs)") && !dashboard.contains("run a config that differs"), "{dashboard}");
    assert!(text(&daemons[0], "/metrics").await.contains("\ngitauto_nodes_config_differs 0\n"));
    for daemon in daemons {
        daemon.stop().await;
    }
}

/// The fingerprint is keyed by a salt of the store's own: the same config on two stores
/// shows two fingerprints (a shown one cannot be recomputed from a guessed config and
/// secrets), and a node restarted on its store shows the one it showed before.
#[tokio::test]
async fn the_same_config_on_two_stores_has_two_fingerprints_and_keeps_each_across_a_restart() {
    let config = github_source();
    let shown = |metrics: String| {
        let line = metrics.lines().find_map(|line| line.strip_prefix("gitauto_config_info{fingerprint=\""));
        line.and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("{metrics}")).to_owned()
    };
    let (one, two) = (TestDaemon::start(&config).await, TestDaemon::start(&config).await);
    let first = shown(text(&one, "/metrics").await);
    assert_ne!(first, shown(text(&two, "/metrics").await), "two stores, one config");
    let one = one.restart(&config).await;
    assert_eq!(shown(text(&one, "/metrics").await), first, "the same store after a restart");
    one.stop().await;
    two.stop().await;
}
