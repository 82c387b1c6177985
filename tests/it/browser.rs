//! The dashboard in a real browser (headless Chromium, `gitauto_tests::browser`): the
//! page lists a finished job, and a running job's page shows its log lines as they are
//! written, then its final state.

use gitauto_tests::browser::Browser;
use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};
use std::time::Duration;

#[tokio::test]
async fn the_dashboard_lists_jobs_and_streams_a_running_jobs_log() {
    let daemon = TestDaemon::start(&format!(
        r#"
[server]
workers = 2
{source}
[plugins.probe]
wasm = "{probe}"
[[rules]]
name = "quick"
on = "push"
repo = "acme/quick"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 50 }} }}]
[[rules]]
name = "chatty"
on = "push"
repo = "acme/chatty"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 4000, lines = 8 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    ))
    .await;
    let daemon = &daemon;
    let post = |name: &'static str| {
        let payload = push_payload("acme", name, "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
        async move {
            let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
            assert_eq!(status, 202, "{body}");
            body["jobs"][0].as_str().unwrap().to_owned()
        }
    };
    let quick = post("quick").await;
    daemon.finished_job(&quick).await;
    let driver = Browser::start("streams-a-running-jobs-log").await;

    driver.open(&format!("{}/", daemon.url)).await;
    let row = driver
        .run(&format!("return document.querySelector('a[href=\"/jobs/{quick}\"]').closest('tr').innerText"))
        .await;
    assert!(row.as_str().unwrap_or_default().contains("succeeded"), "the history shows the finished job: {row}");

    let chatty = post("chatty").await;
    wait_for("the chatty job to start", Duration::from_secs(30), || async {
        (daemon.get(&format!("/api/jobs/{chatty}")).await.1["state"] == "running").then_some(())
    })
    .await;
    driver.open(&format!("{}/jobs/{chatty}", daemon.url)).await;
    let log = "return document.getElementById('log').textContent";
    let at_load = driver.run(log).await.as_str().unwrap_or_default().matches("tick").count();
    // Lines appear in the open page while the job runs, without reloading it.
    let grown = wait_for("new log lines in the open page", Duration::from_secs(30), || async {
        let text = driver.run(log).await.as_str().unwrap_or_default().to_owned();
        let ticks = text.matches("tick").count();
        let running = daemon.get(&format!("/api/jobs/{chatty}")).await.1["state"] == "running";
        (ticks > at_load && running).then_some(ticks)
    })
    .await;
    assert!(grown > at_load);
    let state = wait_for("the page to show the final state", Duration::from_secs(30), || async {
        let state = driver.run("return document.getElementById('state').textContent").await;
        (state == "succeeded").then_some(state)
    })
    .await;
    assert_eq!(state, "succeeded");
    let text = driver.run(log).await;
    assert_eq!(text.as_str().unwrap().matches("tick").count(), 8, "every line, once: {text}");
}
