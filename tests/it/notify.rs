//! `notify` through the daemon against a receiver on loopback: each format's exact
//! request with the credential the host attached (which the plugin, the job's record and
//! its log never hold), retries of 503s, refusals carried in the outcome, and a host the
//! grant does not name never reached.

use gitauto_tests::TestDaemon;
use gitauto_tests::receiver::Receiver;
use serde_json::{Value, json};
use std::path::Path;

const TOKEN: &str = "notify-token-the-plugin-never-sees";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads").join(path)).unwrap()
}

/// A daemon with `notify` granted `hosts` (`HOST` stands for the receiver's `host:port`,
/// with the token as its credential) and `rules`, where `RECEIVER` stands for the
/// receiver's URL.
async fn daemon(receiver: &Receiver, dir: &Path, hosts: &str, rules: &str) -> TestDaemon {
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let config = r#"
[sources.github]
forge = "github"
secret = "gh"

[plugins.notify]
wasm = "builtin:notify"
grants = { hosts = HOSTS }
"#
    .replace("HOSTS", hosts)
        + rules;
    let config = config
        .replace("HOST", receiver.host())
        .replace("TOKEN_FILE", &dir.join("token").display().to_string())
        .replace("RECEIVER", &receiver.url);
    TestDaemon::start(&config).await
}

/// The receiver granted with the token as its `Authorization: Bearer` credential.
const GRANTED: &str = r#"[{ host = "HOST", credential = "file:TOKEN_FILE" }]"#;

/// Posts the pull request fixture; returns the finished job and the delivery id.
async fn pull_request_opened(daemon: &TestDaemon) -> (Value, String) {
    let (status, body, delivery) =
        daemon.post_as("github", "pull_request", &fixture("github/pull_request-opened.json")).await;
    assert_eq!(status, 202, "{body}");
    (daemon.finished_job(body["jobs"][0].as_str().unwrap()).await, delivery)
}

#[tokio::test]
async fn each_format_sends_its_request_with_the_hosts_credential() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(
        &receiver,
        dir.path(),
        GRANTED,
        r#"
[[rules]]
name = "tell everyone"
on = "pull_request.opened"

[[rules.steps]]
name = "callback"
plugin = "notify"
with = { url = "RECEIVER/callback?build=1", body = { identifier = "{{ event.repository.full_name }}/{{ event.pull_request.head }}", success = true, warnings = [], errors = [] } }

[[rules.steps]]
name = "slack"
plugin = "notify"
with = { url = "RECEIVER/services/T000/B000/webhook-secret", format = "slack", title = "{{ event.repository.full_name }}", text = "PR #{{ event.pull_request.number }}: <{{ event.pull_request.url }}|{{ event.pull_request.title }}>" }

[[rules.steps]]
name = "teams"
plugin = "notify"
with = { url = "RECEIVER/workflows/abc/triggers/manual/paths/invoke?sig=sig-secret", format = "teams", title = "{{ event.repository.full_name }}", text = "PR #{{ event.pull_request.number }} opened" }

[[rules.steps]]
name = "matrix"
plugin = "notify"
with = { format = "matrix", homeserver = "RECEIVER", room = "!ops:example.org", text = "PR #{{ event.pull_request.number }} opened" }

[[rules.steps]]
name = "text"
plugin = "notify"
with = { url = "RECEIVER/plain", title = "{{ event.repository.full_name }}", text = "PR #{{ event.pull_request.number }} opened", headers = { X-Gitauto-Rule = "{{ rule.name }}" } }
"#,
    )
    .await;
    receiver.then_answer(200, &[], r#"{"status":"recorded"}"#);
    receiver.then_answer(200, &[], "ok");
    receiver.then_answer(202, &[], "");
    receiver.then_answer(200, &[("content-type", "application/json")], r#"{"event_id":"$ev1:example.org"}"#);

    let (job, delivery) = pull_request_opened(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let host = receiver.host();
    let summaries: Vec<&str> =
        job["steps"].as_array().unwrap().iter().map(|s| s["summary"].as_str().unwrap()).collect();
    assert_eq!(
        summaries,
        [
            format!("json notification sent to {host}: HTTP 200"),
            format!("slack notification sent to {host}: HTTP 200"),
            format!("teams notification sent to {host}: HTTP 202"),
            format!("matrix notification sent to {host}: HTTP 200"),
            format!("text notification sent to {host}: HTTP 200"),
        ]
    );
    assert_eq!(job["steps"][0]["output"], json!({"status": 200, "body": "{\"status\":\"recorded\"}"}));
    assert_eq!(job["steps"][3]["output"]["event_id"], "$ev1:example.org");

    let requests = receiver.requests();
    let lines: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        lines,
        [
            "POST /callback?build=1".to_owned(),
            "POST /services/T000/B000/webhook-secret".to_owned(),
            "POST /workflows/abc/triggers/manual/paths/invoke?sig=sig-secret".to_owned(),
            format!(
                "PUT /_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/{}",
                matrix_txn(&requests[3])
            ),
            "POST /plain".to_owned(),
        ]
    );
    assert!(
        matrix_txn(&requests[3]).starts_with(&format!("gitauto.{delivery}.")),
        "the transaction id comes from the delivery: {}",
        requests[3].path
    );
    for request in &requests {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()), "{}", request.path);
    }
    let content_types: Vec<Option<&str>> = requests.iter().map(|r| r.header("content-type")).collect();
    assert_eq!(
        content_types,
        [
            Some("application/json"),
            Some("application/json"),
            Some("application/json"),
            Some("application/json"),
            Some("text/plain; charset=utf-8")
        ]
    );

    assert_eq!(
        requests[0].json(),
        json!({
            "identifier": "acme/widgets/5e2b6a4d1f0c9b8a7e6d5c4b3a29180716253443",
            "success": true, "warnings": [], "errors": []
        })
    );
    assert_eq!(
        requests[1].json(),
        json!({"text": "*acme/widgets*\nPR #7: <https://github.com/acme/widgets/pull/7|Add the widget catalogue>"})
    );
    assert_eq!(
        requests[2].json(),
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": "acme/widgets", "weight": "Bolder", "size": "Medium", "wrap": true},
                        {"type": "TextBlock", "text": "PR #7 opened", "wrap": true}
                    ]
                }
            }]
        })
    );
    assert_eq!(requests[3].json(), json!({"msgtype": "m.text", "body": "PR #7 opened"}));
    assert_eq!(requests[4].text(), "acme/widgets\n\nPR #7 opened");
    assert_eq!(requests[4].header("x-gitauto-rule"), Some("tell everyone"));

    // The token is the host's; the webhooks' secret paths are shown as `origin/…`.
    let record = job.to_string();
    for secret in [TOKEN, "webhook-secret", "sig-secret"] {
        assert!(!record.contains(secret), "`{secret}` is in the job's record or log: {job:#}");
    }
    let logs: Vec<&str> = job["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    let sending = format!("POST http://{host}/… (slack notification, ");
    assert!(logs.iter().any(|line| line.starts_with(&sending)), "{logs:#?}");
    daemon.stop().await;
}

/// The last path segment of a Matrix send request: its transaction id.
fn matrix_txn(request: &gitauto_tests::receiver::Received) -> String {
    request.path.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_503_is_retried_and_the_retry_sends_the_same_matrix_transaction() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(
        &receiver,
        dir.path(),
        GRANTED,
        r#"
[[rules]]
name = "announce"
on = "pull_request.opened"
retries = 1
retry_backoff = "100ms"
steps = [{ plugin = "notify", with = { format = "matrix", homeserver = "RECEIVER", room = "!ops:example.org", title = "{{ event.repository.full_name }}", text = "PR #{{ event.pull_request.number }} opened" } }]
"#,
    )
    .await;
    receiver.then_answer(503, &[("retry-after", "7")], "homeserver busy");
    receiver.then_answer(200, &[], r#"{"event_id":"$ev2:example.org"}"#);

    let (job, _) = pull_request_opened(&daemon).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{job:#}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].path, requests[1].path, "one transaction id for both attempts");
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(
        requests[1].json(),
        json!({
            "msgtype": "m.text", "body": "acme/widgets\n\nPR #7 opened",
            "format": "org.matrix.custom.html", "formatted_body": "<strong>acme/widgets</strong><br>PR #7 opened"
        })
    );
    assert_eq!(job["steps"][0]["output"]["event_id"], "$ev2:example.org");
    daemon.stop().await;
}

#[tokio::test]
async fn a_refusal_fails_with_the_answer_and_a_rate_limit_is_retried_until_the_retries_run_out() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(
        &receiver,
        dir.path(),
        GRANTED,
        r#"
[[rules]]
name = "callback"
on = "pull_request.opened"
retries = 3
retry_backoff = "100ms"
steps = [{ plugin = "notify", with = { url = "RECEIVER/tx/callback", body = { identifier = "{{ event.repository.full_name }}" } } }]
"#,
    )
    .await;
    receiver.then_answer(404, &[], "no build acme/widgets here\n");

    let (job, _) = pull_request_opened(&daemon).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("failed"), Some(1)), "{job:#}");
    let host = receiver.host();
    assert_eq!(
        job["summary"],
        format!("step 1 (notify) failed: json notification to {host} refused: HTTP 404: no build acme/widgets here")
    );
    assert_eq!(job["steps"][0]["status"], "failure");
    assert_eq!(job["steps"][0]["output"], json!({"status": 404, "body": "no build acme/widgets here\n"}));
    assert_eq!(receiver.requests().len(), 1, "a refusal is not retried");

    // Rate limited on every attempt: retried until the rule's retries run out, and the
    // receiver's Retry-After is in the message.
    for _ in 0..4 {
        receiver.then_answer(429, &[("retry-after", "120")], "slow down");
    }
    let (job, _) = pull_request_opened(&daemon).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("dead"), Some(4)), "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("json notification to {host} not taken: HTTP 429 (Retry-After: 120;")),
        "{summary}"
    );
    assert!(summary.ends_with(": slow down"), "{summary}");
    assert_eq!(receiver.requests().len(), 5);
    daemon.stop().await;
}

#[tokio::test]
async fn a_host_outside_the_grant_is_refused_before_any_connection() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(
        &receiver,
        dir.path(),
        r#"["hooks.example.com"]"#,
        r#"
[[rules]]
name = "callback"
on = "pull_request.opened"
retries = 2
retry_backoff = "100ms"
steps = [{ plugin = "notify", with = { url = "RECEIVER/builds/{{ event.pull_request.number }}", body = { ok = true } } }]
"#,
    )
    .await;

    let (job, _) = pull_request_opened(&daemon).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("failed"), Some(1)), "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    let host = receiver.host();
    assert!(
        summary.contains(&format!(
            "POST to {host} refused: {host} is not among the plugin's granted hosts: add it to its `grants.hosts`"
        )),
        "{summary}"
    );
    assert!(!summary.contains("/builds/7"), "the URL's path is not shown: {summary}");
    assert_eq!(receiver.connections(), 0, "nothing reached the receiver");
    assert!(receiver.requests().is_empty());
    daemon.stop().await;
}

/// A `with` value that is exactly one template expression keeps its JSON type, so
/// tx-manager's callback gets numbers and booleans, not their text.
#[tokio::test]
async fn a_json_body_keeps_the_types_of_its_single_expression_templates() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(
        &receiver,
        dir.path(),
        GRANTED,
        r#"
[[rules]]
name = "callback"
on = "pull_request.opened"
steps = [{ plugin = "notify", with = { url = "RECEIVER/callback", body = { number = "{{ event.pull_request.number }}", merged = "{{ event.pull_request.merged }}", title = "PR {{ event.pull_request.number }}", labels = "{{ ['a', 'b'] }}" } } }]
"#,
    )
    .await;
    let (job, _) = pull_request_opened(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(
        receiver.requests()[0].json(),
        json!({"number": 7, "merged": false, "title": "PR 7", "labels": ["a", "b"]})
    );
    daemon.stop().await;
}
