//! Issue 24's proof in a real browser (headless Chromium, `gitauto_tests::browser`): the
//! deliveries list, updated live; a delivery page saying why a rule did not match; a
//! redeliver click that makes a new delivery; a job page's buttons per state, updated
//! live when the job ends, and the index's job tables, live.

use super::dashboard_pages::{config, push as push_to};
use gitauto_tests::browser::Browser;
use gitauto_tests::{SECRET, TestDaemon, wait_for};
use std::time::Duration;

fn push(git_ref: &str) -> Vec<u8> {
    push_to("site", git_ref)
}

#[tokio::test]
async fn the_deliveries_pages_say_why_a_rule_did_not_fire_and_redeliver_on_a_click() {
    let daemon = TestDaemon::start(&config()).await;
    let (status, body) = daemon.post_github("github", "push", &push("refs/heads/feature/x"), SECRET).await;
    assert_eq!(status, 202, "{body}");
    let (_, api) = daemon.get("/api/deliveries").await;
    let original = api["deliveries"][0]["seq"].as_i64().unwrap();
    let driver = Browser::start("deliveries-pages").await;

    driver.open(&format!("{}/deliveries", daemon.url)).await;
    let row = driver.text(&format!("tr[data-seq=\"{original}\"]")).await.expect("the delivery's row");
    for shown in ["github", "push", "acme/site", "refs/heads/feature/x", "unmatched"] {
        assert!(row.contains(shown), "the row shows {shown}: {row}");
    }

    // A delivery posted while the list is open shows up without a reload.
    driver.run("window.notReloaded = true; return null").await;
    let (status, _) = daemon.post_github("github", "push", &push("refs/heads/other"), SECRET).await;
    assert_eq!(status, 202);
    let live = wait_for("the open list to announce the new delivery", Duration::from_secs(30), || async {
        let visible = driver.run("return !document.getElementById('live').hidden").await == true;
        let text = driver.text("#live").await.unwrap_or_default();
        (visible && text.contains("1 new delivery")).then_some(text)
    })
    .await;
    assert!(live.contains("show"), "{live}");
    assert_eq!(driver.run("return window.notReloaded === true").await, true, "the page was not reloaded");
    driver.click("#new").await;
    wait_for("the list to show the new delivery", Duration::from_secs(30), || async {
        driver.text("tr[data-seq]").await.filter(|row| row.contains("refs/heads/other"))
    })
    .await;

    driver.open(&format!("{}/deliveries/{original}", daemon.url)).await;
    let rules = driver.text("#rules").await.expect("the rules' verdicts");
    assert!(rules.contains("main only"), "{rules}");
    assert!(rules.contains("branch `feature/x` does not match `main`"), "in words: {rules}");
    assert!(rules.contains("branch `feature/x` does not match `slow`"), "every rule: {rules}");

    driver.click("#redeliver").await;
    let landed = wait_for("the browser to land on the new delivery", Duration::from_secs(30), || async {
        let url = driver.current_url().await;
        (!url.ends_with(&format!("/deliveries/{original}")) && url.contains("/deliveries/")).then_some(url)
    })
    .await;
    let (_, api) = daemon.get("/api/deliveries?limit=10").await;
    let new = api["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["seq"].as_i64() != Some(original) && d["arrived"] == "redelivery")
        .unwrap_or_else(|| panic!("a redelivery in the store: {api}"))
        .clone();
    let (_, view) = daemon.get(&format!("/api/deliveries/{}", new["seq"])).await;
    assert_eq!(view["redelivery_of"], original, "{view}");
    assert!(landed.ends_with(&format!("/deliveries/{}", new["seq"])), "{landed} {new}");
    let back = driver.text("#redelivery-of").await.expect("a link to the original");
    assert_eq!(back, format!("delivery {original}"));
}

#[tokio::test]
async fn a_job_pages_buttons_follow_its_state_live() {
    let daemon = TestDaemon::start(&config()).await;
    let (_, body) = daemon.post_github("github", "push", &push("refs/heads/main"), SECRET).await;
    let done = body["jobs"][0].as_str().unwrap().to_owned();
    daemon.finished_job(&done).await;
    let driver = Browser::start("job-buttons").await;

    driver.open(&format!("{}/jobs/{done}", daemon.url)).await;
    assert!(driver.text("#retry").await.is_some(), "a finished job can be retried");
    assert!(driver.text("#cancel").await.is_none(), "no cancel on a finished job");
    let delivery = driver.run("return document.querySelector('#deliveries a').getAttribute('href')").await;
    assert!(delivery.as_str().unwrap_or_default().starts_with("/deliveries/"), "{delivery}");

    let (_, body) = daemon.post_github("github", "push", &push("refs/heads/slow"), SECRET).await;
    let slow = body["jobs"][0].as_str().unwrap().to_owned();
    wait_for("the slow job to run", Duration::from_secs(30), || async {
        (daemon.get(&format!("/api/jobs/{slow}")).await.1["state"] == "running").then_some(())
    })
    .await;
    driver.open(&format!("{}/jobs/{slow}", daemon.url)).await;
    assert!(driver.text("#cancel").await.is_some(), "a running job can be cancelled");
    assert!(driver.text("#retry").await.is_none(), "no retry while it runs");
    driver.run("window.notReloaded = true; return null").await;
    // When it ends, the open page shows the final state and swaps its buttons.
    wait_for("the open page to offer retry once the job ended", Duration::from_secs(30), || async {
        let state = driver.text("#state").await.unwrap_or_default();
        let retry = driver.text("#retry").await.is_some();
        (state == "succeeded" && retry).then_some(())
    })
    .await;
    assert!(driver.text("#cancel").await.is_none());
    assert_eq!(driver.run("return window.notReloaded === true").await, true, "updated in place");

    // The index's job tables follow the jobs too.
    driver.open(&format!("{}/", daemon.url)).await;
    driver.run("window.notReloaded = true; return null").await;
    let (_, body) = daemon.post_github("github", "push", &push("refs/heads/main"), SECRET).await;
    let next = body["jobs"][0].as_str().unwrap().to_owned();
    let row = format!(
        "return (document.querySelector('#history a[href=\"/jobs/{next}\"]')||{{closest:()=>null}}).closest('tr')?.innerText"
    );
    wait_for("the open index to show the new job succeeded", Duration::from_secs(30), || async {
        driver.run(&row).await.as_str().filter(|text| text.contains("succeeded")).map(str::to_owned)
    })
    .await;
    assert_eq!(driver.run("return window.notReloaded === true").await, true, "updated in place");
}
