//! Issue 24's proof for the charts, in headless Chromium: after a burst of pushes whose
//! jobs succeed and fail (`stats.rs`), each of the dashboard's four charts is drawn with
//! that data (bars with height, tooltips with the exact values), the day window too, and
//! a rule's page, reached from the rules table, shows its success rate.

use crate::stats::{burst, config, settled_stats};
use gitauto_tests::browser::Browser;
use gitauto_tests::{TestDaemon, wait_for};
use serde_json::Value;
use std::time::Duration;

/// What the page's charts hold, read in the browser: for each chart, whether the SVG
/// parses as XML, and its bars or points with their data, height and tooltip.
const READ_CHARTS: &str = r#"
const out = {};
for (const id of ['chart-deliveries', 'chart-jobs', 'chart-steps', 'chart-depth']) {
  const svg = document.getElementById(id);
  if (!svg) { out[id] = null; continue; }
  const parsed = new DOMParser().parseFromString(svg.outerHTML, 'image/svg+xml');
  out[id] = {
    xml: parsed.getElementsByTagName('parsererror').length === 0,
    title: svg.querySelector('title').textContent,
    marks: Array.from(svg.querySelectorAll('rect.bar, circle.point')).map(m => ({
      group: m.getAttribute('data-group'),
      series: m.getAttribute('data-series'),
      value: Number(m.getAttribute('data-value')),
      height: m.tagName === 'rect' ? Number(m.getAttribute('height')) : 1,
      tip: m.querySelector('title').textContent,
    })),
  };
}
return out;
"#;

fn marks<'a>(charts: &'a Value, id: &str) -> &'a Vec<Value> {
    let chart = &charts[id];
    assert_eq!(chart["xml"], true, "{id} parses as XML: {chart}");
    chart["marks"].as_array().unwrap()
}

fn sum(marks: &[Value], series: &str) -> f64 {
    marks.iter().filter(|m| m["series"] == series).map(|m| m["value"].as_f64().unwrap()).sum()
}

#[tokio::test]
async fn the_dashboard_charts_a_burst_and_the_rule_page_shows_its_success_rate() {
    let daemon = TestDaemon::start(&config()).await;
    burst(&daemon).await;
    settled_stats(&daemon, "hour").await;
    let driver = Browser::start("charts-a-burst").await;
    let charts = wait_for("the charts to show the burst", Duration::from_secs(30), || async {
        driver.open(&format!("{}/", daemon.url)).await;
        let charts = driver.run(READ_CHARTS).await;
        let jobs = charts["chart-jobs"]["marks"]
            .as_array()
            .map_or(0.0, |m| m.iter().map(|m| m["value"].as_f64().unwrap()).sum());
        (jobs == 5.0).then_some(charts)
    })
    .await;

    // Every mark with a value has a height (a group's empty series is drawn flat).
    for id in ["chart-deliveries", "chart-jobs", "chart-steps"] {
        for mark in marks(&charts, id) {
            let height = mark["height"].as_f64().unwrap();
            assert!((mark["value"] == 0) == (height == 0.0), "{id}: {mark}");
        }
    }
    let deliveries = marks(&charts, "chart-deliveries");
    assert_eq!((sum(deliveries, "queued"), sum(deliveries, "unmatched")), (7.0, 1.0), "{deliveries:?}");
    for mark in deliveries {
        let tip = mark["tip"].as_str().unwrap();
        assert!(tip.ends_with(&format!("{}: {}", mark["series"].as_str().unwrap(), mark["value"])), "{tip}");
    }
    let jobs = marks(&charts, "chart-jobs");
    let bar = |group: &str, series: &str| {
        jobs.iter()
            .find(|m| m["group"] == group && m["series"] == series)
            .unwrap_or_else(|| panic!("{group} {series}: {jobs:?}"))
    };
    assert_eq!(bar("good", "succeeded")["tip"], "good · succeeded: 3");
    assert_eq!(bar("bad", "failed")["tip"], "bad · failed: 2");
    let steps = marks(&charts, "chart-steps");
    let series: Vec<_> = steps.iter().map(|m| (m["group"].as_str().unwrap(), m["series"].as_str().unwrap())).collect();
    assert_eq!(series, [("probe", "p50"), ("probe", "p95")]);
    assert!(steps[1]["value"].as_f64() >= steps[0]["value"].as_f64(), "{steps:?}");
    let depth = marks(&charts, "chart-depth");
    let queued: Vec<_> = depth.iter().filter(|m| m["series"] == "queued").collect();
    let now = queued.last().expect("the live point");
    assert_eq!(now["value"], 2.0, "held's two jobs are queued: {depth:?}");
    assert!(now["tip"].as_str().unwrap().ends_with("queued 2, running 0, waiting 0"), "{now}");

    // The day window draws the same charts.
    driver.open(&format!("{}/?window=day", daemon.url)).await;
    let day = driver.run(READ_CHARTS).await;
    assert!(day["chart-deliveries"]["title"].as_str().unwrap().contains("last day"), "{day}");
    assert_eq!(marks(&day, "chart-steps").len(), 2);

    // The rule page, from the rules table's link.
    driver.open(&format!("{}/", daemon.url)).await;
    driver.click("a[href=\"/rules/bad\"]").await;
    wait_for("the rule page", Duration::from_secs(10), || async {
        driver.current_url().await.ends_with("/rules/bad").then_some(())
    })
    .await;
    let rate = driver.text("#rule-summary tr[data-window=\"hour\"] .success-rate").await;
    assert_eq!(rate.as_deref(), Some("0 %"));
    let rule_chart = driver
        .run("return document.querySelectorAll('#chart-rule-jobs rect.bar[data-series=\"failed\"]').length")
        .await;
    assert!(rule_chart.as_u64() >= Some(1), "the rule's chart has its failed jobs: {rule_chart}");
    driver.open(&format!("{}/rules/good", daemon.url)).await;
    assert_eq!(driver.text("#rule-summary tr[data-window=\"day\"] .success-rate").await.as_deref(), Some("100 %"));
    let recent = driver.run("return document.querySelectorAll('td.state.succeeded').length").await;
    assert_eq!(recent, 3, "its recent jobs");
}
