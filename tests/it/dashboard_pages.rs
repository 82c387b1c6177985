//! The dashboard's delivery pages and job buttons over real HTTP (issue 24): a refused
//! delivery listed and shown, the list's filters and paging, and a stale page's cancel or
//! retry answered in words.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};
use serde_json::Value;
use std::time::Duration;

/// Two rules: `main only` (quick) and `slow` (3 s, 3 log lines); the browser tests share it.
pub(crate) fn config() -> String {
    format!(
        r#"
[server]
workers = 1
{source}
[plugins.probe]
wasm = "{probe}"
[[rules]]
name = "main only"
on = "push"
branch = "main"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 10 }} }}]
[[rules]]
name = "slow"
on = "push"
branch = "slow"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 3000, lines = 3 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
    )
}

/// A push to `acme/{repo}`.
pub(crate) fn push(repo: &str, git_ref: &str) -> Vec<u8> {
    push_payload("acme", repo, git_ref, &"0".repeat(40), &"1".repeat(40), "file:///x")
}

/// A page's status and HTML.
async fn html(daemon: &TestDaemon, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}{path}", daemon.url)).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A form post as the page's button sends it (no redirect followed).
async fn press(daemon: &TestDaemon, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.post(format!("{}{path}", daemon.url)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The `data-seq` of each row of a list page, in order.
fn seqs(page: &str) -> Vec<i64> {
    page.split("data-seq=\"").skip(1).map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap()).collect()
}

/// The `href` of the link with `rel`.
fn link(page: &str, rel: &str) -> Option<String> {
    let at = page.find(&format!("rel=\"{rel}\" href=\""))? + rel.len() + 13;
    Some(page[at..at + page[at..].find('"')?].replace("&amp;", "&"))
}

#[tokio::test]
async fn a_refused_delivery_is_listed_and_shown_with_why() {
    let daemon = TestDaemon::start(&config()).await;
    let (status, _) = daemon.post_github("github", "push", &push("site", "refs/heads/main"), "not-the-secret").await;
    assert_eq!(status, 401);
    let (_, api) = daemon.get("/api/deliveries?verdict=rejected").await;
    let seq = api["deliveries"][0]["seq"].as_i64().unwrap_or_else(|| panic!("a rejected delivery: {api}"));

    let (status, list) = html(&daemon, "/deliveries").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&list), [seq], "{list}");
    assert!(list.contains("class=\"verdict rejected\">rejected<"), "{list}");

    let (status, page) = html(&daemon, &format!("/deliveries/{seq}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("signature"), "the reason names the signature: {page}");
    assert!(page.contains("No rule saw it: it was refused"), "{page}");
    assert!(page.contains("id=\"no-redeliver\""), "no button but a sentence: {page}");
    assert!(!page.contains("id=\"redeliver\""), "{page}");
    assert!(page.contains("&quot;refs/heads/main&quot;"), "the body is shown: {page}");

    let (status, page) = html(&daemon, "/deliveries/no-such-delivery").await;
    assert_eq!(status, 404);
    assert!(page.contains("no delivery `no-such-delivery`"), "{page}");
    let (status, _) = press(&daemon, &format!("/deliveries/{seq}/redeliver")).await;
    assert_eq!(status, 409, "a refused delivery is not run again");
}

#[tokio::test]
async fn the_list_filters_by_repository_and_verdict_and_pages_both_ways() {
    let daemon = TestDaemon::start(&config()).await;
    for (repo, git_ref) in
        [("a", "refs/heads/dev"), ("b", "refs/heads/dev"), ("a", "refs/heads/x"), ("b", "refs/heads/y")]
    {
        let (status, body) = daemon.post_github("github", "push", &push(repo, git_ref), SECRET).await;
        assert_eq!(status, 202, "{body}");
    }
    for n in 0..5 {
        let (status, body) =
            daemon.post_github("github", "push", &push("c", &format!("refs/heads/c{n}")), SECRET).await;
        assert_eq!(status, 202, "{body}");
    }
    daemon.post_github("github", "push", &push("a", "refs/heads/main"), "wrong").await;
    let (_, all) = daemon.get("/api/deliveries?limit=100").await;
    let all: Vec<Value> = all["deliveries"].as_array().unwrap().clone();
    assert_eq!(all.len(), 10);

    let (_, api) = daemon.get("/api/deliveries?repo=acme/b").await;
    let b: Vec<i64> = api["deliveries"].as_array().unwrap().iter().map(|d| d["seq"].as_i64().unwrap()).collect();
    assert_eq!(b.len(), 2, "{api}");
    assert_eq!(api["deliveries"][0]["git_ref"], "refs/heads/y");
    let (_, page) = html(&daemon, "/deliveries?repo=acme%2Fb").await;
    assert_eq!(seqs(&page), b, "{page}");
    assert!(page.contains("value=\"acme/b\""), "the filter stays filled in: {page}");

    let (_, page) = html(&daemon, "/deliveries?verdict=unmatched&repo=acme%2Fa&source=github").await;
    assert_eq!(seqs(&page).len(), 2, "{page}");
    let (_, page) = html(&daemon, "/deliveries?verdict=rejected").await;
    assert_eq!(seqs(&page).len(), 1, "{page}");
    let (status, page) = html(&daemon, "/deliveries?verdict=nope").await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown verdict `nope`"), "{page}");
    let (status, page) = html(&daemon, "/deliveries?before=yesterday").await;
    assert_eq!(status, 400);
    assert!(page.contains("before (a seq)"), "{page}");

    // Pages of 4: newest first, then older, then back.
    let newest: Vec<i64> = all.iter().map(|d| d["seq"].as_i64().unwrap()).collect();
    let (_, first) = html(&daemon, "/deliveries?limit=4").await;
    assert_eq!(seqs(&first), newest[..4]);
    assert!(link(&first, "prev").is_none(), "the first page has nothing newer");
    let older = link(&first, "next").expect("an older link");
    let (_, second) = html(&daemon, &older).await;
    assert_eq!(seqs(&second), newest[4..8], "{older}");
    let (_, third) = html(&daemon, &link(&second, "next").unwrap()).await;
    assert_eq!(seqs(&third), newest[8..]);
    assert!(link(&third, "next").is_none(), "the last page has nothing older: {third}");
    let (_, back) = html(&daemon, &link(&third, "prev").unwrap()).await;
    assert_eq!(seqs(&back), newest[4..8]);
    let (_, back) = html(&daemon, &link(&back, "prev").unwrap()).await;
    assert_eq!(seqs(&back), newest[..4]);
    assert!(back.contains(">first page<"), "{back}");
    assert!(link(&back, "prev").is_none(), "nothing is newer than the newest: {back}");
}

#[tokio::test]
async fn a_stale_pages_cancel_and_retry_are_answered_in_words() {
    let daemon = TestDaemon::start(&config()).await;
    let (_, body) = daemon.post_github("github", "push", &push("site", "refs/heads/main"), SECRET).await;
    let done = body["jobs"][0].as_str().unwrap().to_owned();
    daemon.finished_job(&done).await;
    let (_, page) = html(&daemon, &format!("/jobs/{done}")).await;
    assert!(page.contains("id=\"retry\"") && !page.contains("id=\"cancel\""), "a finished job: retry only: {page}");
    let (status, page) = press(&daemon, &format!("/jobs/{done}/cancel")).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains(&format!("job {done} had already finished before the cancel arrived")), "{page}");

    let (_, body) = daemon.post_github("github", "push", &push("site", "refs/heads/slow"), SECRET).await;
    let slow = body["jobs"][0].as_str().unwrap().to_owned();
    wait_for("the slow job to run", Duration::from_secs(30), || async {
        (daemon.get(&format!("/api/jobs/{slow}")).await.1["state"] == "running").then_some(())
    })
    .await;
    let (_, page) = html(&daemon, &format!("/jobs/{slow}")).await;
    assert!(page.contains("id=\"cancel\"") && !page.contains("id=\"retry\""), "a running job: cancel only: {page}");
    let (status, page) = press(&daemon, &format!("/jobs/{slow}/retry")).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains(&format!("job {slow} has not finished")), "{page}");
    let (status, _) = press(&daemon, &format!("/jobs/{slow}/cancel")).await;
    assert_eq!(status, 303);
    let (_, page) = html(&daemon, &format!("/jobs/{slow}")).await;
    if daemon.get(&format!("/api/jobs/{slow}")).await.1["state"] == "running" {
        assert!(page.contains("id=\"cancel-requested\"") && !page.contains("id=\"cancel\""), "{page}");
    }
    let (status, page) = press(&daemon, "/jobs/999999/cancel").await;
    assert_eq!(status, 404);
    assert!(page.contains("no job 999999"), "{page}");
}

/// Reads a live stream until it holds `count` `delivery` events; their seqs.
async fn live_seqs(response: &mut reqwest::Response, count: usize) -> Vec<i64> {
    let mut seen = String::new();
    loop {
        let seqs: Vec<i64> = seen
            .split("event: delivery\n")
            .skip(1)
            .filter_map(|event| {
                let id = event.lines().find_map(|line| line.strip_prefix("id: "))?;
                event.contains("\n\n").then(|| id.parse().unwrap())
            })
            .collect();
        if seqs.len() >= count {
            return seqs;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else { panic!("the live list ended or stalled: {seen}") };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_live_list_sends_new_deliveries_that_pass_its_filters_and_resumes() {
    let daemon = TestDaemon::start(&config()).await;
    let url = format!("{}/api/deliveries/live?verdict=rejected", daemon.url);
    let mut live = reqwest::get(&url).await.unwrap();
    assert_eq!(live.status(), 200);
    let (status, _) = daemon.post_github("github", "push", &push("a", "refs/heads/dev"), SECRET).await;
    assert_eq!(status, 202);
    daemon.post_github("github", "push", &push("a", "refs/heads/dev"), "wrong").await;
    let (_, api) = daemon.get("/api/deliveries").await;
    let (rejected, unmatched) = (api["deliveries"][0]["seq"].as_i64().unwrap(), api["deliveries"][1]["seq"].as_i64());
    assert_eq!(api["deliveries"][1]["verdict"], "unmatched", "{api}");
    assert_eq!(live_seqs(&mut live, 1).await, [rejected], "only the rejected one (not {unmatched:?})");
    drop(live);

    // A client that reconnects names the last one it saw, and hears of the ones after it.
    daemon.post_github("github", "push", &push("b", "refs/heads/dev"), "wrong").await;
    let client = reqwest::Client::new();
    let mut live = client.get(&url).header("last-event-id", rejected.to_string()).send().await.unwrap();
    let next = live_seqs(&mut live, 1).await;
    assert!(next[0] > rejected, "{next:?}");
    let (status, page) = html(&daemon, "/api/deliveries/live?before=3").await;
    assert_eq!(status, 400, "{page}");
}
