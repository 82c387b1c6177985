//! The job queue through the daemon: coalescing, per-key serialisation and parallelism
//! across keys, retries and dead jobs, cancel and retry, live logs, the API token, metrics
//! and the dashboard. The `probe` guest provides slow, chatty and flaky steps.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};
use serde_json::Value;
use std::time::Duration;

/// A daemon whose rule `slow` runs the probe once with `settings` (a TOML inline table),
/// or, when `settings` starts with `[`, runs those steps; with extra rule and server keys.
async fn daemon(settings: &str, rule_extra: &str, server_extra: &str) -> TestDaemon {
    let steps = if settings.starts_with('[') {
        settings.to_owned()
    } else {
        format!("[{{ plugin = \"probe\", with = {settings} }}]")
    };
    let scratch = tempfile::tempdir().unwrap().keep();
    TestDaemon::start(&format!(
        r#"
[server]
workers = 2
{server_extra}

{source}
[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = [{{ path = "{scratch}", write = true }}] }}

[[rules]]
name = "slow"
on = "push"
{rule_extra}
steps = {steps}
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
        scratch = scratch.display(),
        steps = steps.replace("SCRATCH", &scratch.display().to_string()),
    ))
    .await
}

fn commit(n: usize) -> String {
    format!("{n:040x}")
}

/// Posts a push of `repo` (`owner/name`) to `after`; returns the job ids it was given.
async fn push(daemon: &TestDaemon, repo: &str, after: &str) -> Vec<String> {
    let (owner, name) = repo.split_once('/').unwrap();
    let payload = push_payload(owner, name, "refs/heads/main", &commit(0), after, "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    body["jobs"].as_array().unwrap().iter().map(|j| j.as_str().unwrap().to_owned()).collect()
}

async fn job(daemon: &TestDaemon, id: &str) -> Value {
    daemon.get(&format!("/api/jobs/{id}")).await.1
}

async fn wait_until_running(daemon: &TestDaemon, id: &str) {
    wait_for(&format!("job {id} to run"), Duration::from_secs(30), || async {
        (job(daemon, id).await["state"] == "running").then_some(())
    })
    .await;
}

/// Waits until a job's live log shows `text`.
async fn wait_until_logged(daemon: &TestDaemon, id: &str, text: &str) {
    let mut response = reqwest::get(format!("{}/api/jobs/{id}/log", daemon.url)).await.unwrap();
    let mut seen = String::new();
    while !seen.contains(text) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else { panic!("job {id}'s log ended or stalled before {text:?}: {seen}") };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_burst_for_one_checkout_coalesces_into_one_more_job_with_the_newest_event() {
    let daemon = daemon(r#"{ op = "sleep", ms = 1500 }"#, "", "").await;
    let first = push(&daemon, "acme/widgets", &commit(1)).await;
    wait_until_running(&daemon, &first[0]).await;
    let mut given = std::collections::BTreeSet::new();
    for n in 2..=101 {
        given.extend(push(&daemon, "acme/widgets", &commit(n)).await);
    }
    assert_eq!(given.len(), 1, "all 100 pushes went into one queued job: {given:?}");
    let second = given.into_iter().next().unwrap();
    assert_ne!(second, first[0], "the running job is never touched");

    let done = daemon.finished_job(&second).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["steps"][0]["output"]["after"], commit(101), "it ran with the newest commit");
    assert_eq!(done["deliveries"].as_array().unwrap().len(), 100, "it records the deliveries it absorbed");
    assert_eq!(daemon.finished_job(&first[0]).await["steps"][0]["output"]["after"], commit(1));
    let (_, all) = daemon.get("/api/jobs").await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 2, "{all:#}");

    let (_, metrics) = raw_get(&daemon, "/metrics", None).await;
    assert!(metrics.contains("gitauto_coalesced_events_total 99\n"), "{metrics}");
    assert!(metrics.contains("gitauto_deliveries_total{source=\"github\",verdict=\"queued\"} 101\n"), "{metrics}");
    assert!(metrics.contains("gitauto_step_duration_seconds_count{plugin=\"probe\"} 2\n"), "{metrics}");
}

#[tokio::test]
async fn one_checkout_runs_one_job_at_a_time_and_different_checkouts_run_in_parallel() {
    let daemon = daemon(r#"{ op = "sleep", ms = 700 }"#, "coalesce = false", "").await;
    let a1 = push(&daemon, "acme/a", &commit(1)).await.remove(0);
    let a2 = push(&daemon, "acme/a", &commit(2)).await.remove(0);
    let b = push(&daemon, "acme/b", &commit(3)).await.remove(0);
    let (a1, a2, b) = (daemon.finished_job(&a1).await, daemon.finished_job(&a2).await, daemon.finished_job(&b).await);
    let span =
        |job: &Value| (job["started_at"].as_str().unwrap().to_owned(), job["finished_at"].as_str().unwrap().to_owned());
    let ((a1_start, a1_end), (a2_start, _), (b_start, b_end)) = (span(&a1), span(&a2), span(&b));
    // RFC 3339 times of one fixed width compare as text.
    assert!(a2_start >= a1_end, "same checkout: {a1_start}..{a1_end} then {a2_start}");
    assert!(
        b_start < a1_end && a1_start < b_end,
        "different checkouts overlap: a {a1_start}..{a1_end}, b {b_start}..{b_end}"
    );
}

#[tokio::test]
async fn retryable_failures_are_retried_with_backoff_until_dead() {
    let daemon = daemon(
        r#"{ op = "flaky", path = "SCRATCH/runs", failures = 1 }"#,
        r#"retries = 2
retry_backoff = "100ms""#,
        "",
    )
    .await;
    let id = push(&daemon, "acme/widgets", &commit(1)).await.remove(0);
    let done = daemon.finished_job(&id).await;
    assert_eq!((done["state"].as_str(), done["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{done:#}");
    assert_eq!(done["steps"][0]["output"]["runs"], 2);

    let daemon = self::daemon(
        r#"{ op = "flaky", path = "SCRATCH/runs", failures = 10 }"#,
        r#"retries = 2
retry_backoff = "100ms""#,
        "",
    )
    .await;
    let id = push(&daemon, "acme/widgets", &commit(1)).await.remove(0);
    let done = daemon.finished_job(&id).await;
    assert_eq!((done["state"].as_str(), done["attempts"].as_i64()), (Some("dead"), Some(3)), "{done:#}");
    assert!(done["summary"].as_str().unwrap().contains("run 3 fails on purpose"), "{done:#}");

    // A plugin's own failure outcome is not retried unless the rule says so.
    let daemon = self::daemon(r#"{ op = "read-file", path = "/nonexistent" }"#, "retries = 3", "").await;
    let id = push(&daemon, "acme/widgets", &commit(1)).await.remove(0);
    let done = daemon.finished_job(&id).await;
    assert_eq!((done["state"].as_str(), done["attempts"].as_i64()), (Some("failed"), Some(1)), "{done:#}");
}

#[tokio::test]
async fn cancel_and_retry() {
    // Step one logs "tick 1" as it starts and then runs long enough for both cancels to land within it.
    let two_steps = r#"[{ plugin = "probe", name = "one", with = { op = "sleep", ms = 3000, lines = 1 } },
                        { plugin = "probe", name = "two", with = { op = "sleep", ms = 800 } }]"#;
    let daemon = daemon(two_steps, "coalesce = false", "").await;
    let client = gitauto::client::Client::new(&daemon.url, None);
    let running = push(&daemon, "acme/widgets", &commit(1)).await.remove(0);
    let waiting = push(&daemon, "acme/widgets", &commit(2)).await.remove(0);
    // "running" starts at the claim; the cancel is meant to land while step one runs, not before it.
    wait_until_logged(&daemon, &running, "tick 1").await;

    let answer = client.post(&format!("/api/jobs/{waiting}/cancel")).await.unwrap();
    assert_eq!((answer.status, answer.body["state"].as_str()), (200, Some("cancelled")));
    let answer = client.post(&format!("/api/jobs/{running}/cancel")).await.unwrap();
    assert_eq!((answer.status, answer.body["state"].as_str()), (202, Some("running")));
    let done = daemon.finished_job(&running).await;
    assert_eq!((done["state"].as_str(), done["summary"].as_str()), (Some("cancelled"), Some("cancelled after step 1")));
    assert_eq!(done["steps"].as_array().unwrap().len(), 1, "the running step finished; the next did not start");
    let answer = client.post(&format!("/api/jobs/{running}/cancel")).await.unwrap();
    assert_eq!(answer.status, 409, "{}", answer.body);

    assert_eq!(job(&daemon, &waiting).await["state"], "cancelled");
    assert_eq!(client.post(&format!("/api/jobs/{waiting}/retry")).await.unwrap().status, 202);
    let again = daemon.finished_job(&waiting).await;
    assert_eq!((again["state"].as_str(), again["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{again:#}");
    assert_eq!(again["steps"][0]["output"]["after"], commit(2));
    assert_eq!(client.post("/api/jobs/999/retry").await.unwrap().status, 404);
    assert_eq!(client.post("/api/jobs/x/retry").await.unwrap().status, 400);
}

#[tokio::test]
async fn a_running_jobs_log_streams_live_and_ends_with_its_state() {
    let daemon = daemon(r#"{ op = "sleep", ms = 1500, lines = 5 }"#, "", "").await;
    let id = push(&daemon, "acme/widgets", &commit(1)).await.remove(0);
    let mut response = reqwest::get(format!("{}/api/jobs/{id}/log", daemon.url)).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut state_at_first_line = None;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), response.chunk()).await.unwrap().unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if state_at_first_line.is_none() && text.contains("tick 1") {
            state_at_first_line = Some(job(&daemon, &id).await["state"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(state_at_first_line.as_deref(), Some("running"), "lines arrive while the job runs");
    let ticks = text.lines().filter(|l| l.starts_with("data:") && l.contains("\"tick ")).count();
    assert_eq!(ticks, 5, "{text}");
    assert!(text.contains("event: end\ndata: {\"state\":\"succeeded\"}"), "{text}");
}

async fn raw_get(daemon: &TestDaemon, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", daemon.url));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_api_dashboard_and_metrics_need_the_token_and_webhooks_do_not() {
    let daemon = daemon(r#"{ op = "sleep", ms = 10 }"#, "", r#"api_token = "t0ken""#).await;
    let id = push(&daemon, "acme/widgets", &commit(1)).await.remove(0);
    for path in ["/api/jobs", "/api/deliveries", "/queue", "/metrics", "/", &format!("/jobs/{id}")] {
        let (status, _) = raw_get(&daemon, path, None).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(raw_get(&daemon, path, Some("Bearer wrong")).await.0, 401, "{path}");
        assert_eq!(raw_get(&daemon, path, Some("Bearer t0ken")).await.0, 200, "{path}");
        // Basic authentication, any user: "admin:t0ken".
        assert_eq!(raw_get(&daemon, path, Some("Basic YWRtaW46dDBrZW4=")).await.0, 200, "{path}");
    }
    let response = reqwest::get(format!("{}/api/jobs", daemon.url)).await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"gitauto\"");
    assert_eq!(raw_get(&daemon, "/healthz", None).await.0, 200);
    let client = gitauto::client::Client::new(&daemon.url, Some("t0ken".into()));
    let job = wait_for("the job to finish", Duration::from_secs(30), || async {
        let job = client.get(&format!("/api/jobs/{id}")).await.unwrap().body;
        (job["state"] == "succeeded").then_some(job)
    })
    .await;
    assert_eq!(job["rule"], "slow");
}

#[tokio::test]
async fn the_dashboard_shows_the_queue_history_and_a_job() {
    let daemon = daemon(r#"{ op = "sleep", ms = 200, lines = 2 }"#, "", "").await;
    let id = push(&daemon, "acme/<script>", &commit(1)).await.remove(0);
    daemon.finished_job(&id).await;
    let (status, index) = raw_get(&daemon, "/", None).await;
    assert_eq!(status, 200);
    assert!(index.contains(&format!("<a href=\"/jobs/{id}\">{id}</a>")), "{index}");
    assert!(index.contains("acme/&lt;script&gt;") && !index.contains("acme/<script>"), "names are escaped");
    let (_, filtered) = raw_get(&daemon, "/?state=failed", None).await;
    assert!(!filtered.contains(&format!("/jobs/{id}\"")), "{filtered}");
    assert_eq!(raw_get(&daemon, "/?state=bogus", None).await.0, 400);
    let (status, page) = raw_get(&daemon, &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(page.contains("succeeded") && page.contains("tick 2") && page.contains("action=\"/jobs/"), "{page}");

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = format!("{}/jobs/{id}/retry", daemon.url);
    let forged = client.post(&url).header("origin", "http://evil.example").send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let host = daemon.url.trim_start_matches("http://").to_owned();
    let button = client.post(&url).header("origin", format!("http://{host}")).send().await.unwrap();
    assert_eq!(button.status().as_u16(), 303);
    assert_eq!(button.headers()["location"], format!("/jobs/{id}"));
}

#[tokio::test]
async fn nodes_are_listed_and_every_job_says_where_it_ran() {
    let daemon = daemon("{ op = \"sleep\", ms = 1 }", "run_on = \"every\"", "node = \"web-1\"").await;
    let (status, nodes) = daemon.get("/api/nodes").await;
    assert_eq!(status, 200, "{nodes}");
    assert_eq!(nodes["this"], "web-1");
    let listed = nodes["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{nodes}");
    assert_eq!((listed[0]["name"].as_str(), listed[0]["live"].as_bool()), (Some("web-1"), Some(true)));
    assert_eq!(listed[0]["workers"], 2);

    let jobs = push(&daemon, "acme/every", &commit(1)).await;
    assert_eq!(jobs.len(), 1, "one live node, one job");
    let finished = daemon.finished_job(&jobs[0]).await;
    assert_eq!(finished["state"], "succeeded", "{finished:#}");
    assert_eq!((finished["node"].as_str(), finished["ran_on"].as_str()), (Some("web-1"), Some("web-1")));
    let (_, list) = daemon.get("/api/jobs?limit=1").await;
    assert_eq!(list["jobs"][0]["ran_on"], "web-1");
    let page = reqwest::get(format!("{}/", daemon.url)).await.unwrap().text().await.unwrap();
    assert!(page.contains("<h2>Nodes</h2>") && page.contains("web-1 (this daemon)"), "{page}");
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_directory_is_refused_and_changes_nothing() {
    let daemon = daemon("{ op = \"sleep\", ms = 1500 }", "", "").await;
    let jobs = push(&daemon, "acme/locked", &commit(1)).await;
    wait_until_running(&daemon, &jobs[0]).await;
    let refused = gitauto::daemon::Daemon::prepare(daemon.config.clone()).await.err().expect("a second daemon");
    let message = format!("{refused:#}");
    assert!(message.contains("another gitauto is serving from the data directory"), "{message}");
    assert!(message.contains(&format!("(process {})", std::process::id())), "{message}");
    let finished = daemon.finished_job(&jobs[0]).await;
    assert_eq!(
        (finished["state"].as_str(), finished["attempts"].as_i64()),
        (Some("succeeded"), Some(1)),
        "{finished:#}"
    );
}
