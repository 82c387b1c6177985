//! Receiving webhooks: signatures, pings, malformed bodies, unknown sources.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, sign, wait_for};
use std::time::Duration;

fn config() -> String {
    format!(
        r#"
{source}
[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "/nonexistent", git = true }}] }}

[[rules]]
name = "all pushes"
on = "push"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "/nonexistent" }} }}]
"#,
        source = github_source()
    )
}

fn payload() -> Vec<u8> {
    push_payload("acme", "widgets", "refs/heads/main", &"1".repeat(40), &"2".repeat(40), "file:///nowhere")
}

#[tokio::test]
async fn bad_signature_is_rejected_and_nothing_is_queued() {
    let daemon = TestDaemon::start(&config()).await;
    let (status, body) = daemon.post_github("github", "push", &payload(), "wrong-secret").await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("does not match"), "{body}");

    let client = reqwest::Client::new();
    let unsigned = client
        .post(format!("{}/hooks/github", daemon.url))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .body(payload())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert_eq!(body["error"], "missing signature header `X-Hub-Signature-256`");

    let (_, queue) = daemon.get("/queue").await;
    assert_eq!(queue["queue_length"], 0);
    assert_eq!(daemon.get("/api/jobs/1").await.0, 404, "no job was stored");
}

#[tokio::test]
async fn signed_push_is_accepted_with_its_jobs() {
    let daemon = TestDaemon::start(&config()).await;
    let (status, body) = daemon.post_github("github", "push", &payload(), SECRET).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    let job = daemon.finished_job(body["jobs"][0].as_str().unwrap()).await;
    assert_eq!(job["rule"], "all pushes");
    assert_eq!(job["delivery"], body["delivery"]);
}

#[tokio::test]
async fn ping_malformed_and_unknown_requests_get_clear_answers() {
    let daemon = TestDaemon::start(&config()).await;
    let (status, body) = daemon.post_github("github", "ping", br#"{"zen": "hi"}"#, SECRET).await;
    assert_eq!((status, body["msg"].as_str()), (200, Some("pong")));

    let (status, body) = daemon.post_github("github", "push", b"{not json", SECRET).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("unreadable push payload"), "{body}");

    let (status, body) = daemon.post_github("github", "issues", b"{}", SECRET).await;
    assert_eq!(status, 202);
    assert_eq!(body["jobs"], serde_json::json!([]));
    assert!(body["reason"].as_str().unwrap().starts_with("ignored"), "{body}");

    let (status, body) = daemon.post_github("gitlab", "push", &payload(), SECRET).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("unknown source `gitlab`")));

    let client = reqwest::Client::new();
    let wrong_type = client
        .post(format!("{}/hooks/github", daemon.url))
        .header("content-type", "text/plain")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign(SECRET, b"x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status().as_u16(), 415);

    let (_, queue) = daemon.get("/queue").await;
    assert_eq!(queue["queue_length"], 0, "none of these queued work");
}

#[tokio::test]
async fn unmatched_push_answers_with_the_reason() {
    let daemon = TestDaemon::start(&config()).await;
    let tag = push_payload("acme", "widgets", "refs/tags/v1", &"0".repeat(40), &"2".repeat(40), "file:///x");
    let (status, body) = daemon.post_github("github", "push", &tag, SECRET).await;
    assert_eq!(status, 202);
    assert_eq!(body["jobs"], serde_json::json!([]));
    assert_eq!(body["reason"], "no rule matched: rule \"all pushes\": event `tag` not in on = [push]");
}

#[tokio::test]
async fn a_redelivered_id_queues_nothing_new() {
    let daemon = TestDaemon::start(&config()).await;
    let body = payload();
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(format!("{}/hooks/github", daemon.url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .header("x-hub-signature-256", sign(SECRET, &body))
            .body(body.clone())
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    let again = post().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["jobs"], first["jobs"]);
    assert_eq!(daemon.get("/api/jobs/2").await.0, 404, "only one job exists");
}

/// `/metrics` undercounted deliveries whose client hung up: hyper dropped the handler
/// after the queue committed, before it counted and logged. Each client here writes a
/// signed delivery, closes its side and waits for the server to close the connection;
/// every delivery stored must be counted all the same. (Its log line is written by the
/// same task, right after the count; a capture of the test thread's log records is not
/// reliable in a test binary whose other threads meet the same call sites first.)
#[tokio::test]
async fn a_delivery_whose_client_hangs_up_is_still_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CLIENTS: usize = 20;
    let daemon = TestDaemon::start(&config()).await;
    let address = daemon.url.strip_prefix("http://").unwrap().to_owned();
    let body = payload();
    let mut unanswered = 0;
    for n in 0..CLIENTS {
        let head = format!(
            "POST /hooks/github HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             x-github-event: push\r\nx-github-delivery: hang-up-{n}\r\nx-hub-signature-256: {}\r\n\
             content-length: {}\r\n\r\n",
            sign(SECRET, &body),
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(&[head.as_bytes(), &body].concat()).await.unwrap();
        stream.shutdown().await.unwrap();
        // The server closes the connection once it saw the hang-up (or answered): by then
        // the handler either finished or was dropped.
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        unanswered += usize::from(answer.is_empty());
    }
    assert!(unanswered > 0, "every client got its answer: no handler was dropped, the test shows nothing");

    let (status, answer) = daemon.post_github("github", "push", &body, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let total = CLIENTS + 1;
    let (stored, counted) = wait_for("every delivery stored and counted", Duration::from_secs(20), || async {
        let (_, list) = daemon.get("/api/deliveries?source=github&limit=1000").await;
        let stored = list["deliveries"].as_array().unwrap().iter().filter(|d| d["verdict"] == "queued").count();
        let metrics = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap().text().await.unwrap();
        let counted: usize = metrics
            .lines()
            .find_map(|line| line.strip_prefix("gitauto_deliveries_total{source=\"github\",verdict=\"queued\"} "))
            .map_or(0, |n| n.parse().unwrap());
        (stored == total && counted == total).then_some((stored, counted))
    })
    .await;
    assert_eq!(counted, stored);
}
