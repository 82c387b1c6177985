//! Every forge end to end over loopback: a signed fixture is accepted and queues a job,
//! its delivery is recorded and retrievable, a repeat is a duplicate, refused deliveries
//! are recorded without jobs, and a stored delivery can be run again.

use gitauto_tests::TestDaemon;
use serde_json::{Value, json};
use std::path::Path;

const GITLAB_SIGNING_KEY: &str = "whsec_dGVzdCBzaWduaW5nIGtleSBmb3IgZ2l0bGFi";

fn config() -> String {
    format!(
        r#"
[server]
max_body = "64KiB"

[sources.github]
forge = "github"
secret = "gh-secret"

[sources.gitlab]
forge = "gitlab"
secrets = ["old-token", "{GITLAB_SIGNING_KEY}"]
replay_window = "2m"

[sources.gitea]
forge = "gitea"
secret = "gitea-secret"

[sources.forgejo]
forge = "forgejo"
secret = "forgejo-secret"

[sources.gogs]
forge = "gogs"
secret = "gogs-secret"

[sources.bitbucket]
forge = "bitbucket"
secret = "bb-secret"

[sources.ci]
forge = "generic"
secret = "ci-secret"
signature_header = "X-Signature"
delivery_header = "X-Delivery"
event_header = "X-Event"
fields = {{ repository = "/project/slug", ref = "/change/ref", after = "/change/to", clone_url = "/project/git" }}

[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "/nonexistent", git = true }}] }}

[[rules]]
name = "everything"
on = ["push", "tag", "pull_request", "deploy"]
steps = [{{ plugin = "fetch-update", with = {{ repodir = "/nonexistent" }} }}]
"#
    )
}

fn fixture(forge: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads").join(forge).join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// (source, forge event name, fixture directory, fixture, events the delivery holds)
const CASES: &[(&str, &str, &str, &str, usize)] = &[
    ("github", "push", "github", "push.json", 1),
    ("github", "pull_request", "github", "pull_request-opened.json", 1),
    ("gitlab", "Push Hook", "gitlab", "push.json", 1),
    ("gitlab", "Merge Request Hook", "gitlab", "merge_request-open.json", 1),
    ("gitea", "push", "gitea", "push.json", 1),
    ("forgejo", "pull_request", "forgejo", "pull_request-opened.json", 1),
    ("gogs", "push", "gogs", "push.json", 1),
    ("bitbucket", "repo:push", "bitbucket", "repo-push-several.json", 3),
    ("ci", "deploy", "generic", "deploy.json", 1),
];

/// Job ids as numbers, in order.
fn sorted(jobs: &serde_json::Value) -> Vec<u64> {
    let mut ids: Vec<u64> = jobs.as_array().unwrap().iter().map(|id| id.as_str().unwrap().parse().unwrap()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn every_forge_is_accepted_recorded_and_deduplicated() {
    let daemon = TestDaemon::start(&config()).await;
    for &(source, event, dir, name, events) in CASES {
        let body = fixture(dir, name);
        let (status, answer, delivery) = daemon.post_as(source, event, &body).await;
        assert_eq!(status, 202, "{source} {name}: {answer}");
        assert_eq!(answer["jobs"].as_array().unwrap().len(), events, "{source} {name}: {answer}");
        assert_eq!(answer["delivery"], delivery.as_str(), "{source}: the forge's delivery id is kept");

        let (status, record) = daemon.get(&format!("/api/deliveries/{delivery}")).await;
        assert_eq!(status, 200, "{source}: {record}");
        assert_eq!(record["verdict"], "queued");
        assert_eq!(record["source"], source);
        assert_eq!(record["events"].as_array().unwrap().len(), events, "{record}");
        assert_eq!(record["body"].as_str().unwrap().as_bytes(), body, "the body is stored as received");
        // The answer lists jobs in event order, the record by id: an event coalesced into
        // an earlier queued job (timing decides whether it is still queued) reorders them.
        assert_eq!(sorted(&record["jobs"]), sorted(&answer["jobs"]), "{source} {name}");
        let headers = record["headers"].as_object().unwrap();
        for secret_header in ["x-hub-signature-256", "x-gitlab-token", "webhook-signature", "x-gitea-signature"] {
            assert!(!headers.contains_key(secret_header), "{source}: {secret_header} was stored");
        }

        // The forge retries the same delivery: nothing new is queued.
        let source_config = daemon.config.source(source).unwrap();
        let mut again = gitauto::send::headers(source_config, event, &body);
        for (_, value) in again.iter_mut().filter(|(_, value)| value.len() == 36 && value.contains('-')) {
            value.clone_from(&delivery);
        }
        // Standard Webhooks signs the id too: re-sign with the original id.
        if source == "gitlab" {
            again = resign_gitlab(&body, &delivery, event);
        }
        let (status, duplicate) = daemon.post(&format!("/hooks/{source}"), &again, &body).await;
        assert_eq!(status, 200, "{source}: {duplicate}");
        assert_eq!(duplicate["duplicate"], true);
        assert_eq!(sorted(&duplicate["jobs"]), sorted(&answer["jobs"]), "{source}: the original's jobs");
    }
    let (_, duplicates) = daemon.get("/api/deliveries?verdict=duplicate&limit=100").await;
    assert_eq!(duplicates["deliveries"].as_array().unwrap().len(), CASES.len());
}

fn resign_gitlab(body: &[u8], delivery: &str, event: &str) -> Vec<(String, String)> {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let key =
        base64::engine::general_purpose::STANDARD.decode(GITLAB_SIGNING_KEY.trim_start_matches("whsec_")).unwrap();
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{delivery}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    [
        ("content-type", "application/json"),
        ("x-gitlab-event", event),
        ("webhook-id", delivery),
        ("webhook-timestamp", &timestamp),
        ("webhook-signature", &format!("v1,{signature}")),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

#[tokio::test]
async fn refused_deliveries_are_recorded_without_jobs_and_do_not_claim_their_id() {
    let daemon = TestDaemon::start(&config()).await;
    let body = fixture("gitea", "push.json");
    let forged = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-gitea-event".to_owned(), "push".to_owned()),
        ("x-gitea-delivery".to_owned(), "6c1f1e4a-0000-4000-8000-000000000001".to_owned()),
        ("x-gitea-signature".to_owned(), "00".repeat(32)),
    ];
    let (status, answer) = daemon.post("/hooks/gitea", &forged, &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("signature in `X-Gitea-Signature` does not match the body signed with any configured secret"))
    );

    let mut unreadable = forged.clone();
    unreadable[2].1 = "6c1f1e4a-0000-4000-8000-000000000002".into();
    let garbage = b"{\"ref\": 12";
    let gitea = daemon.config.source("gitea").unwrap();
    let signed = gitauto::send::headers(gitea, "push", garbage);
    unreadable[3] = signed.into_iter().find(|(name, _)| name == "X-Gitea-Signature").unwrap();
    let (status, answer) = daemon.post("/hooks/gitea", &unreadable, garbage).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("unreadable push payload: "), "{answer}");

    let (_, list) = daemon.get("/api/deliveries?source=gitea").await;
    let verdicts: Vec<&str> =
        list["deliveries"].as_array().unwrap().iter().map(|d| d["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["invalid", "rejected"], "newest first");
    let (_, rejected) = daemon.get("/api/deliveries/6c1f1e4a-0000-4000-8000-000000000001").await;
    assert_eq!(rejected["jobs"], json!([]));
    assert!(rejected["reason"].as_str().unwrap().contains("does not match"));
    assert_eq!(daemon.get("/queue").await.1["queue_length"], 0, "nothing queued for refused deliveries");

    // The genuine delivery with the id a forger used is still accepted.
    let mut genuine = gitauto::send::headers(gitea, "push", &body);
    for (name, value) in &mut genuine {
        if name == "X-Gitea-Delivery" {
            *value = "6c1f1e4a-0000-4000-8000-000000000001".into();
        }
    }
    let (status, answer) = daemon.post("/hooks/gitea", &genuine, &body).await;
    assert_eq!(status, 202, "{answer}");

    // Refused deliveries cannot be redelivered; unknown ones are 404.
    let client = gitauto::client::Client::new(&daemon.url, None);
    let answer = client.post("/api/deliveries/6c1f1e4a-0000-4000-8000-000000000002/redeliver").await.unwrap();
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(client.post("/api/deliveries/no-such-delivery/redeliver").await.unwrap().status, 404);
}

#[tokio::test]
async fn a_stored_delivery_can_be_redelivered() {
    let daemon = TestDaemon::start(&config()).await;
    let body = fixture("github", "push.json");
    let (status, first, delivery) = daemon.post_as("github", "push", &body).await;
    assert_eq!(status, 202);
    let answer = gitauto::client::Client::new(&daemon.url, None)
        .post(&format!("/api/deliveries/{delivery}/redeliver"))
        .await
        .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let again: Value = answer.body;
    assert_ne!(again["delivery"], first["delivery"], "a redelivery is a new delivery");
    assert_ne!(again["jobs"], first["jobs"], "with new jobs");
    assert_eq!(again["jobs"].as_array().unwrap().len(), 1);
    let (_, record) = daemon.get(&format!("/api/deliveries/{}", again["delivery"].as_str().unwrap())).await;
    assert_eq!(record["redelivery_of"], daemon.get(&format!("/api/deliveries/{delivery}")).await.1["seq"]);
    let job = daemon.finished_job(again["jobs"][0].as_str().unwrap()).await;
    assert_eq!(job["rule"], "everything");
}

#[tokio::test]
async fn limits_content_types_and_stale_signatures() {
    let daemon = TestDaemon::start(&config()).await;
    let (status, answer, _) = daemon.post_as("github", "push", &vec![b' '; 65 * 1024]).await;
    assert_eq!((status, answer["error"].as_str()), (413, Some("body larger than the limit of 64 KiB")));

    let body = fixture("gitlab", "push.json");
    let mut stale = resign_gitlab(&body, "0b7d-stale", "Push Hook");
    let old = (std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (name, value) in &mut stale {
        if name == "webhook-timestamp" {
            *value = old.to_string();
        }
    }
    let (status, answer) = daemon.post("/hooks/gitlab", &stale, &body).await;
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("outside the replay window of 120 s"), "{answer}");

    // The older plain token still works while rotating to the signing key.
    let token = [
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-gitlab-event".to_owned(), "Push Hook".to_owned()),
        ("x-gitlab-token".to_owned(), "old-token".to_owned()),
    ];
    assert_eq!(daemon.post("/hooks/gitlab", &token, &body).await.0, 202);

    let mut text_plain = token.to_vec();
    text_plain[0].1 = "text/plain".into();
    let (status, answer) = daemon.post("/hooks/gitlab", &text_plain, &body).await;
    assert_eq!(status, 415, "{answer}");
}
