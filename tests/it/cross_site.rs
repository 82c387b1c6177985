//! A page on another site cannot change anything through a dashboard user's browser
//! (issue 16, finding 11): form posts riding cached basic credentials to every
//! state-changing route (pausing a rule included) are refused with 403 and change nothing, while the dashboard's own
//! buttons, the CLI's bearer-token client and signed webhooks keep working, and every
//! answer forbids framing.

use gitauto_tests::{TestDaemon, github_source, push_payload, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "t0ken";
/// What a browser caches after the dashboard's prompt: "admin:t0ken".
const CACHED_BASIC: &str = "Basic YWRtaW46dDBrZW4=";

async fn daemon() -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
[server]
workers = 1
api_token = "{TOKEN}"

{source}
[plugins.probe]
wasm = "{probe}"

[[rules]]
name = "quick"
on = "push"
repo = "acme/quick"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 1 }} }}]

[[rules]]
name = "slow"
on = "push"
repo = "acme/slow-*"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 30000 }} }}]

[[rules]]
name = "by-hand"
on = "manual"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 1 }} }}]

[plugins.keeper]
wasm = "{keeper}"
grants = {{ kv = "state" }}

[[rules]]
name = "keep"
on = "manual"
steps = [{{ plugin = "keeper", with = {{ do = "{{{{ payload }}}}" }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
        keeper = env!("GITAUTO_GUEST_KV_PROBE"),
    ))
    .await
}

/// Pushes `acme/NAME`; the delivery id and the job id.
async fn push(daemon: &TestDaemon, name: &str) -> (String, String) {
    let payload = push_payload("acme", name, "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
    let (status, answer, delivery) = daemon.post_as("github", "push", &payload).await;
    assert_eq!(status, 202, "{answer}");
    (delivery, answer["jobs"][0].as_str().unwrap().to_owned())
}

async fn job(daemon: &TestDaemon, id: &str) -> Value {
    daemon.get(&format!("/api/jobs/{id}")).await.1
}

async fn delivery_count(daemon: &TestDaemon) -> usize {
    daemon.get("/api/deliveries?limit=1000").await.1["deliveries"].as_array().unwrap().len()
}

/// A POST as a browser sends it: the cached credentials, a form's content type, and
/// `headers` (what the browser says about where the request came from).
async fn browser_post(daemon: &TestDaemon, path: &str, headers: &[(&str, String)], body: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut request = client
        .post(format!("{}{path}", daemon.url))
        .header("authorization", CACHED_BASIC)
        .header("content-type", "text/plain")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

fn host(daemon: &TestDaemon) -> String {
    daemon.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn cross_site_posts_to_every_changing_route_are_refused_and_change_nothing() {
    let daemon = daemon().await;
    let (finished_delivery, finished) = push(&daemon, "quick").await;
    assert_eq!(daemon.finished_job(&finished).await["state"], "succeeded");
    // An entry in a plugin's key-value store, which a forged delete must leave.
    let cli = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));
    let keep = json!({"rule": "keep", "params": {"op": "set", "key": "kept", "value": "v"}});
    let kept = cli.post_json("/api/events", &keep).await.unwrap();
    assert_eq!(kept.status, 202, "{}", kept.body);
    let kept = daemon.finished_job(kept.body["jobs"][0].as_str().unwrap()).await;
    assert_eq!(kept["state"], "succeeded", "{kept:#}");
    // One worker: while `slow-1` runs, `slow-2` waits in the queue.
    let (_, running) = push(&daemon, "slow-1").await;
    wait_for("the blocking job to run", Duration::from_secs(30), || async {
        (job(&daemon, &running).await["state"] == "running").then_some(())
    })
    .await;
    let (_, queued) = push(&daemon, "slow-2").await;
    let deliveries = delivery_count(&daemon).await;

    let host = host(&daemon);
    let forgeries: Vec<Vec<(&str, String)>> = vec![
        vec![("origin", "http://evil.example".into()), ("sec-fetch-site", "cross-site".into())],
        vec![("sec-fetch-site", "cross-site".into())],
        vec![("sec-fetch-site", "same-site".into()), ("origin", "http://sub.127.0.0.1.nip.io".into())],
        vec![("origin", "null".into())],
        vec![("origin", format!("http://{host}.evil.example"))],
        vec![("origin", "http://127.0.0.1:1".into())],
    ];
    let manual = json!({"rule": "by-hand", "params": {}}).to_string();
    let routes = [
        (format!("/api/jobs/{finished}/retry"), ""),
        (format!("/api/jobs/{queued}/cancel"), ""),
        (format!("/api/jobs/{running}/cancel"), ""),
        (format!("/jobs/{finished}/retry"), ""),
        (format!("/jobs/{queued}/cancel"), ""),
        (format!("/api/deliveries/{finished_delivery}/redeliver"), ""),
        (format!("/deliveries/{finished_delivery}/redeliver"), ""),
        ("/api/events".to_owned(), manual.as_str()),
        ("/api/rules/quick/pause".to_owned(), ""),
        ("/rules/quick/pause".to_owned(), ""),
        ("/api/kv/state/delete?key=kept".to_owned(), ""),
    ];
    for (path, body) in &routes {
        for headers in &forgeries {
            let response = browser_post(&daemon, path, headers, body).await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 403, "{path} with {headers:?}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.starts_with("cross-site request refused: "), "{path} with {headers:?}: {answer}");
        }
    }

    // The world is as it was: nothing retried, cancelled, redelivered or triggered.
    let finished_now = job(&daemon, &finished).await;
    assert_eq!((finished_now["state"].as_str(), finished_now["attempts"].as_i64()), (Some("succeeded"), Some(1)));
    let queued_now = job(&daemon, &queued).await;
    assert_eq!((queued_now["state"].as_str(), queued_now["cancel_requested"].as_bool()), (Some("queued"), Some(false)));
    let running_now = job(&daemon, &running).await;
    assert_eq!(
        (running_now["state"].as_str(), running_now["cancel_requested"].as_bool()),
        (Some("running"), Some(false))
    );
    assert_eq!(delivery_count(&daemon).await, deliveries, "no redelivery and no manual event was recorded");
    let (_, all) = daemon.get("/api/jobs?limit=100").await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 4, "no job was added: {all:#}");
    let (status, entry) = daemon.get("/api/kv/state/entry?key=kept").await;
    assert_eq!((status, entry["text"].as_str()), (200, Some("v")), "the entry was not deleted: {entry}");
    let (_, rules) = daemon.get("/api/rules").await;
    assert!(rules["rules"].as_array().unwrap().iter().all(|rule| rule["paused"] == false), "{rules:#}");

    // The dashboard's own button: same origin, the same cached credentials.
    let own = [("origin", format!("http://{host}")), ("sec-fetch-site", "same-origin".to_owned())];
    let button = browser_post(&daemon, &format!("/jobs/{queued}/cancel"), &own, "").await;
    assert_eq!(button.status().as_u16(), 303);
    assert_eq!(job(&daemon, &queued).await["state"], "cancelled");
    let button = browser_post(&daemon, "/rules/quick/pause", &own, "").await;
    assert_eq!(button.status().as_u16(), 303);
    assert_eq!(daemon.get("/api/rules").await.1["rules"][0]["paused"], true);

    // The CLI: a bearer token and no Origin.
    let retried = cli.post(&format!("/api/jobs/{finished}/retry")).await.unwrap();
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(job(&daemon, &finished).await["state"], "queued");
    let redelivered = cli.post(&format!("/api/deliveries/{finished_delivery}/redeliver")).await.unwrap();
    assert_eq!(redelivered.status, 202, "{}", redelivered.body);
    let triggered = cli.post_json("/api/events", &json!({"rule": "by-hand", "params": {}})).await.unwrap();
    assert_eq!(triggered.status, 202, "{}", triggered.body);
    assert_eq!(delivery_count(&daemon).await, deliveries + 2, "the redelivery and the manual event are recorded");
    let cancelled = cli.post(&format!("/api/jobs/{running}/cancel")).await.unwrap();
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    assert_eq!(job(&daemon, &running).await["cancel_requested"], true);
    let resumed = cli.post("/api/rules/quick/resume").await.unwrap();
    assert_eq!((resumed.status, resumed.body["changed"].as_bool()), (200, Some(true)), "{}", resumed.body);
}

#[tokio::test]
async fn signed_webhooks_stay_open_whatever_a_browser_would_say() {
    let daemon = daemon().await;
    let payload = push_payload("acme", "quick", "refs/heads/main", &"0".repeat(40), &"2".repeat(40), "file:///x");
    let source = daemon.config.source("github").unwrap();
    let mut headers = gitauto::send::headers(source, "push", &payload);
    headers.push(("origin".into(), "http://evil.example".into()));
    headers.push(("sec-fetch-site".into(), "cross-site".into()));
    let (status, answer) = daemon.post("/hooks/github", &headers, &payload).await;
    assert_eq!(status, 202, "the signature authenticates a webhook: {answer}");
    // An unsigned one is still refused for its signature, not its origin.
    let unsigned = [("x-github-event".to_owned(), "push".to_owned()), ("origin".to_owned(), "null".to_owned())];
    let (status, answer) = daemon.post("/hooks/github", &unsigned, &payload).await;
    assert_eq!(status, 401, "{answer}");
}

#[tokio::test]
async fn every_answer_forbids_framing() {
    let daemon = daemon().await;
    let (_, id) = push(&daemon, "quick").await;
    daemon.finished_job(&id).await;
    let client = reqwest::Client::new();
    let get = |path: String| client.get(format!("{}{path}", daemon.url)).header("authorization", CACHED_BASIC).send();
    let mut answers = vec![
        ("dashboard", get("/".into()).await.unwrap()),
        ("job page", get(format!("/jobs/{id}")).await.unwrap()),
        ("API", get(format!("/api/jobs/{id}")).await.unwrap()),
        ("health", get("/healthz".into()).await.unwrap()),
        ("unknown path", get("/nowhere".into()).await.unwrap()),
        ("no token", client.get(format!("{}/", daemon.url)).send().await.unwrap()),
    ];
    let refused = browser_post(&daemon, &format!("/jobs/{id}/retry"), &[("origin", "null".into())], "").await;
    answers.push(("refused post", refused));
    assert_eq!(answers[0].1.status().as_u16(), 200, "the dashboard answers with the cached credentials");
    for (what, response) in &answers {
        let headers = response.headers();
        assert_eq!(headers.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
        let policy = headers.get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
        assert!(policy.as_deref().is_some_and(|p| p.contains("frame-ancestors 'none'")), "{what}: {policy:?}");
    }
}
