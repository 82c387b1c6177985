//! Issue 24's figures: after a burst of pushes whose jobs succeed and fail, `/api/stats`
//! counts what was sent by verdict, rule, state and plugin; bad windows and unknown rules
//! get clear answers. The browser test of the charts (`charts.rs`) uses the same burst.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};
use serde_json::Value;
use std::time::Duration;

/// Rules `good` (succeeds), `bad` (fails: the file it reads is missing) and `held`
/// (paused before the burst, so its jobs stay queued), each push a job of its own.
pub(crate) fn config() -> String {
    format!(
        r#"
[server]
workers = 2
{source}
[plugins.probe]
wasm = "{probe}"
[[rules]]
name = "good"
on = "push"
coalesce = false
repo = "acme/good"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 20 }} }}]
[[rules]]
name = "bad"
on = "push"
coalesce = false
repo = "acme/bad"
steps = [{{ plugin = "probe", with = {{ op = "read-file", path = "/no/such/file" }} }}]
[[rules]]
name = "held"
on = "push"
coalesce = false
repo = "acme/held"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 20 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    )
}

/// Pauses `held`, then pushes 3 times to `good`, twice to `bad` and to `held`, and once
/// to a repository no rule matches; waits for the jobs of `good` and `bad` to finish.
pub(crate) async fn burst(daemon: &TestDaemon) {
    let (status, answer) = daemon.post("/api/rules/held/pause", &[], b"").await;
    assert_eq!(status, 200, "{answer}");
    let mut finishing = Vec::new();
    for (repo, times) in [("good", 3), ("bad", 2), ("held", 2), ("other", 1)] {
        for n in 0..times {
            let after = format!("{n:040}");
            let payload = push_payload("acme", repo, "refs/heads/main", &"0".repeat(40), &after, "file:///x");
            let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
            assert_eq!(status, 202, "{body}");
            if repo == "good" || repo == "bad" {
                finishing.push(body["jobs"][0].as_str().unwrap().to_owned());
            }
        }
    }
    for job in finishing {
        daemon.finished_job(&job).await;
    }
}

/// `/api/stats` once it shows every job of the burst finished (the figures are cached
/// for a few seconds).
pub(crate) async fn settled_stats(daemon: &TestDaemon, window: &str) -> Value {
    wait_for("the figures to show the burst", Duration::from_secs(30), || async {
        let (status, answer) = daemon.get(&format!("/api/stats?window={window}")).await;
        assert_eq!(status, 200, "{answer}");
        let finished: i64 =
            answer["stats"]["jobs"].as_array().unwrap().iter().map(|j| j["count"].as_i64().unwrap()).sum();
        (finished == 5).then_some(answer)
    })
    .await
}

fn total(rows: &Value, key: &str, value: &str) -> i64 {
    rows.as_array().unwrap().iter().filter(|row| row[key] == value).map(|row| row["count"].as_i64().unwrap()).sum()
}

#[tokio::test]
async fn stats_count_a_burst_by_verdict_rule_state_and_plugin() {
    let daemon = TestDaemon::start(&config()).await;
    burst(&daemon).await;
    for window in ["hour", "day"] {
        let answer = settled_stats(&daemon, window).await;
        let stats = &answer["stats"];
        assert_eq!(stats["window"], window);
        assert_eq!(total(&stats["deliveries"], "verdict", "queued"), 7, "{stats}");
        assert_eq!(total(&stats["deliveries"], "verdict", "unmatched"), 1, "{stats}");
        let jobs = &stats["jobs"];
        let of = |rule: &str| {
            let rows = jobs.as_array().unwrap().iter().filter(|j| j["rule"] == rule);
            rows.map(|j| (j["state"].as_str().unwrap().to_owned(), j["count"].as_i64().unwrap())).fold(
                std::collections::BTreeMap::new(),
                |mut by_state, (state, count)| {
                    *by_state.entry(state).or_insert(0) += count;
                    by_state
                },
            )
        };
        assert_eq!(of("good").into_iter().collect::<Vec<_>>(), [("succeeded".to_owned(), 3)], "{jobs}");
        assert_eq!(of("bad").into_iter().collect::<Vec<_>>(), [("failed".to_owned(), 2)], "{jobs}");
        let probe = &stats["steps"][0];
        assert_eq!((probe["plugin"].as_str(), probe["steps"].as_i64()), (Some("probe"), Some(5)), "{stats}");
        assert!(probe["p95_ms"].as_i64() >= probe["p50_ms"].as_i64(), "{probe}");
        let now = stats["depth"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((now["queued"].as_i64(), now["running"].as_i64()), (Some(2), Some(0)), "held's jobs: {now}");
        let rule = |name: &str| answer["rules"].as_array().unwrap().iter().find(|r| r["rule"] == name).unwrap().clone();
        assert_eq!(rule("good")["success_rate"], 1.0);
        assert_eq!(rule("bad")["success_rate"], 0.0);
        assert_eq!(rule("held")["success_rate"], Value::Null, "no held job finished");
        assert!(rule("good")["mean_ms"].as_f64().unwrap() > 0.0);
    }
    let (status, answer) = daemon.get("/api/stats?window=week").await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("unknown window `week` (one of: hour, day)")));
}

#[tokio::test]
async fn bad_windows_and_unknown_rules_get_clear_pages() {
    let daemon = TestDaemon::start(&config()).await;
    let get = |path: &'static str| {
        let url = format!("{}{path}", daemon.url);
        async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, page) = get("/?window=week").await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown window `week` (one of: hour, day)"), "{page}");
    let (status, page) = get("/rules/nope").await;
    assert_eq!(status, 404);
    assert!(page.contains("no rule &quot;nope&quot; in the running config"), "{page}");
    let (status, page) = get("/charts?window=day").await;
    assert_eq!(status, 200);
    assert!(page.contains("no deliveries in the last day") && page.contains("id=\"chart-depth\""), "{page}");
    let (status, page) = get("/?state=failed&window=day").await;
    assert_eq!(status, 200, "the history filter and the window go together: {page}");
    assert!(page.contains("data-window=\"day\""), "{page}");
}
