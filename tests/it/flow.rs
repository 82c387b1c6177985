//! Flow control over HTTP (issue 18): a paused rule keeps accepting events and queuing
//! jobs while other rules' jobs run, and runs them all once resumed through the API; the
//! dashboard shows it paused; unknown rules are refused by name; a reload gives queued
//! jobs the rule's new `concurrency`. Also run on PostgreSQL (`it_postgres`). Several
//! daemons sharing one limit are in `cluster.rs`.

use gitauto_tests::{TestDaemon, github_source, push_payload, wait_for};
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "fl0w";

fn config() -> String {
    format!(
        r#"
[server]
workers = 3
api_token = "{TOKEN}"

{source}
[plugins.probe]
wasm = "{probe}"

[[rules]]
name = "held back"
on = "push"
repo = "acme/held-*"
coalesce = false
# limits
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 200 }} }}]

[[rules]]
name = "free"
on = "push"
repo = "acme/free-*"
coalesce = false
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 1 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    )
}

/// Pushes commit `n` to `acme/NAME`; the job's id.
async fn push(daemon: &TestDaemon, name: &str, n: usize) -> String {
    let payload = push_payload("acme", name, "refs/heads/main", &"0".repeat(40), &format!("{n:040x}"), "file:///x");
    let (status, answer, _) = daemon.post_as("github", "push", &payload).await;
    assert_eq!(status, 202, "{answer}");
    answer["jobs"][0].as_str().unwrap().to_owned()
}

async fn job(daemon: &TestDaemon, id: &str) -> Value {
    daemon.get(&format!("/api/jobs/{id}")).await.1
}

/// `name`'s entry in `GET /api/rules`.
async fn rule(daemon: &TestDaemon, name: &str) -> Value {
    let (status, answer) = daemon.get("/api/rules").await;
    assert_eq!(status, 200, "{answer}");
    answer["rules"].as_array().unwrap().iter().find(|rule| rule["name"] == name).cloned().unwrap_or(Value::Null)
}

/// Whether the jobs, each (started_at, finished_at), ran one after another.
fn one_at_a_time(jobs: &[Value]) -> Result<(), String> {
    let mut spans: Vec<(&str, &str)> =
        jobs.iter().map(|job| (job["started_at"].as_str().unwrap(), job["finished_at"].as_str().unwrap())).collect();
    spans.sort();
    for pair in spans.windows(2) {
        // RFC 3339 in UTC with milliseconds: text order is time order.
        if pair[1].0 < pair[0].1 {
            return Err(format!("a job started at {} while another ran until {}", pair[1].0, pair[0].1));
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_paused_rule_queues_its_events_while_others_run_and_runs_them_all_after_resume() {
    let daemon = TestDaemon::start(&config()).await;
    let client = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));

    let paused = client.pause_rule("held back", true).await.unwrap();
    assert_eq!((paused.status, paused.body["changed"].as_bool()), (200, Some(true)), "{}", paused.body);
    let again = client.pause_rule("held back", true).await.unwrap();
    assert_eq!((again.status, again.body["changed"].as_bool()), (200, Some(false)), "{}", again.body);
    let unknown = client.pause_rule("helt back", true).await.unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.body["error"], "no rule \"helt back\" in the running config");
    assert_eq!(client.pause_rule("helt back", false).await.unwrap().status, 404);

    // Queued before the free rule's jobs: unpaused, they would start first.
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(push(&daemon, &format!("held-{n}"), n).await);
    }
    let mut free = Vec::new();
    for n in 0..3 {
        free.push(push(&daemon, &format!("free-{n}"), n).await);
    }
    for id in &free {
        assert_eq!(daemon.finished_job(id).await["state"], "succeeded");
    }
    for id in &held {
        let job = job(&daemon, id).await;
        assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("queued"), Some(0)), "{job:#}");
    }
    let listed = rule(&daemon, "held back").await;
    assert_eq!((listed["paused"].as_bool(), listed["queued"].as_i64()), (Some(true), Some(3)), "{listed:#}");
    assert_eq!(listed["running"], 0);
    assert_eq!(rule(&daemon, "free").await["paused"], false);

    // The dashboard says so, and offers the button.
    let text = |path: &'static str| {
        let url = format!("{}{path}", daemon.url);
        async move { reqwest::Client::new().get(url).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap() }
    };
    let page = text("/").await;
    assert!(page.contains("held back</a></td><td><span class=\"paused\">paused</span>"), "{page}");
    assert!(page.contains("action=\"/rules/held%20back/resume\""), "{page}");
    assert!(page.contains("action=\"/rules/free/pause\""), "{page}");
    let metrics = text("/metrics").await;
    assert!(metrics.contains("\ngitauto_rule_paused{rule=\"held back\"} 1\n"), "{metrics}");
    assert!(!metrics.contains("rule=\"free\"} 1\ngitauto"), "{metrics}");

    let resumed = client.pause_rule("held back", false).await.unwrap();
    assert_eq!((resumed.status, resumed.body["changed"].as_bool()), (200, Some(true)), "{}", resumed.body);
    for id in &held {
        let job = daemon.finished_job(id).await;
        assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{job:#}");
    }
    assert_eq!(rule(&daemon, "held back").await["paused"], false);
    daemon.stop().await;
}

#[tokio::test]
async fn a_reload_gives_queued_jobs_the_rules_new_concurrency() {
    let daemon = TestDaemon::start(&config()).await;
    let client = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));
    assert_eq!(client.pause_rule("held back", true).await.unwrap().status, 200);
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(push(&daemon, &format!("held-{n}"), n).await);
    }
    // Queued without a limit, for three checkouts: three workers would run them together.
    let path = daemon.dir.path().join("gitauto.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("# limits", "concurrency = 1")).unwrap();
    wait_for("the reload", Duration::from_secs(30), || async {
        (daemon.get("/api/config").await.1["generation"] == 2).then_some(())
    })
    .await;
    assert_eq!(rule(&daemon, "held back").await["concurrency"], 1);
    assert_eq!(client.pause_rule("held back", false).await.unwrap().status, 200);
    let mut jobs = Vec::new();
    for id in &held {
        let job = daemon.finished_job(id).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        jobs.push(job);
    }
    one_at_a_time(&jobs).unwrap();
    daemon.stop().await;
}
