//! Plugins' key-value stores through the daemon (`grants = { kv = "NAME" }`): the
//! kv-probe guest runs each operation as a job, and the API shows what the store holds.

use gitauto_tests::{TestDaemon, github_source, push_payload, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "kv-test-token";

/// A daemon with `workers` workers: pushes to `acme/*` increment `hits` in `counters`;
/// each plugin has a manual rule of its name that runs the operation it is given.
fn config(workers: usize, extra: &str) -> String {
    let manual = |plugin: &str| {
        format!(
            "[[rules]]\nname = \"{plugin}\"\non = \"manual\"\nsteps = [{{ plugin = \"{plugin}\", with = {{ do = \"{{{{ payload }}}}\" }} }}]\n"
        )
    };
    format!(
        r#"
[server]
workers = {workers}
api_token = "{TOKEN}"
{extra}
{source}
[plugins.counter]
wasm = "{probe}"
grants = {{ kv = "counters" }}

[plugins.reader]
wasm = "{probe}"
grants = {{ kv = "counters" }}

[plugins.other]
wasm = "{probe}"
grants = {{ kv = "other" }}

[plugins.nogrant]
wasm = "{probe}"

[plugins.small]
wasm = "{probe}"
grants = {{ kv = "small" }}

[kv.small]
max_entries = 2
max_bytes = 12
max_value = 8

[[rules]]
name = "count"
on = "push"
repo = "acme/*"
steps = [{{ plugin = "counter", with = {{ op = "incr", key = "hits" }} }}]

{counter}{reader}{other}{nogrant}{small}"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_KV_PROBE"),
        counter = manual("counter"),
        reader = manual("reader"),
        other = manual("other"),
        nogrant = manual("nogrant"),
        small = manual("small"),
    )
}

/// Runs `op` with `plugin` (through its manual rule) and returns its finished job.
async fn run(daemon: &TestDaemon, plugin: &str, op: Value) -> Value {
    let client = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));
    let answer = client.post_json("/api/events", &json!({ "rule": plugin, "params": op })).await.unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    daemon.finished_job(answer.body["jobs"][0].as_str().unwrap()).await
}

/// The output of `op` run with `plugin`, which must succeed.
async fn done(daemon: &TestDaemon, plugin: &str, op: Value) -> Value {
    let job = run(daemon, plugin, op.clone()).await;
    assert_eq!(job["state"], "succeeded", "{op}: {job:#}");
    job["steps"][0]["output"].clone()
}

/// The summary of `op` run with `plugin`, which must fail with the error kind `kind`.
async fn refused(daemon: &TestDaemon, plugin: &str, op: Value, kind: &str) -> String {
    let job = run(daemon, plugin, op.clone()).await;
    let step = &job["steps"][0];
    assert_eq!((&job["state"], &step["output"]["error"]), (&json!("failed"), &json!(kind)), "{op}: {job:#}");
    step["summary"].as_str().unwrap().to_owned()
}

/// A store's keys and values as the API shows them.
async fn entries(daemon: &TestDaemon, store: &str) -> Vec<(String, String)> {
    let (status, listed) = daemon.get(&format!("/api/kv/{store}")).await;
    assert_eq!(status, 200, "{listed}");
    let mut out = Vec::new();
    for entry in listed["entries"].as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("key", key).finish();
        let (status, read) = daemon.get(&format!("/api/kv/{store}/entry?{query}")).await;
        assert_eq!(status, 200, "{read}");
        out.push((key.to_owned(), read["text"].as_str().unwrap().to_owned()));
    }
    out
}

/// The issue's proof: N jobs at once, each incrementing one counter with a
/// compare-and-swap loop, leave it at exactly N; each step's bill counts its kv calls.
#[tokio::test]
async fn a_counter_incremented_by_concurrent_jobs_ends_at_their_number() {
    const JOBS: usize = 8;
    let daemon = TestDaemon::start(&config(JOBS, "")).await;
    let mut jobs = Vec::new();
    for n in 0..JOBS {
        let payload =
            push_payload("acme", &format!("r{n}"), "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
        let (status, answer, _) = daemon.post_as("github", "push", &payload).await;
        assert_eq!(status, 202, "{answer}");
        jobs.push(answer["jobs"][0].as_str().unwrap().to_owned());
    }
    let mut values = Vec::new();
    for id in jobs {
        let job = daemon.finished_job(&id).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        values.push(job["steps"][0]["output"]["value"].as_i64().unwrap());
        assert!(job["steps"][0]["bill"]["calls"]["kv"]["count"].as_u64().unwrap() >= 2, "{job:#}");
    }
    values.sort_unstable();
    assert_eq!(values, (1..=JOBS as i64).collect::<Vec<_>>(), "each job saw its own sum");
    assert_eq!(done(&daemon, "reader", json!({"op": "get", "key": "hits"})).await["value"], JOBS.to_string());
    let metrics = reqwest::Client::new().get(format!("{}/metrics", daemon.url)).bearer_auth(TOKEN).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    assert!(metrics.contains("gitauto_host_calls_total{plugin=\"counter\",capability=\"kv\"}"), "{metrics}");
    daemon.stop().await;
}

#[tokio::test]
async fn an_entry_with_a_ttl_reads_as_absent_once_it_expires() {
    let daemon = TestDaemon::start(&config(2, "")).await;
    done(&daemon, "counter", json!({"op": "set", "key": "session", "value": "s", "ttl_ms": 1500})).await;
    done(&daemon, "counter", json!({"op": "set", "key": "kept", "value": "k"})).await;
    assert_eq!(done(&daemon, "counter", json!({"op": "get", "key": "session"})).await["value"], "s");
    wait_for("the entry to expire", Duration::from_secs(20), || async {
        let read = done(&daemon, "counter", json!({"op": "get", "key": "session"})).await;
        read["value"].is_null().then_some(())
    })
    .await;
    assert_eq!(done(&daemon, "counter", json!({"op": "list"})).await["keys"], json!(["kept"]));
    assert_eq!(entries(&daemon, "counters").await, [("kept".to_owned(), "k".to_owned())]);
    daemon.stop().await;
}

#[tokio::test]
async fn a_write_past_the_bounds_is_refused_and_changes_nothing() {
    let daemon = TestDaemon::start(&config(2, "")).await;
    done(&daemon, "small", json!({"op": "set", "key": "a", "value": "12345678"})).await;
    done(&daemon, "small", json!({"op": "set", "key": "b", "value": "1234"})).await;
    let full = refused(&daemon, "small", json!({"op": "set", "key": "c", "value": "1"}), "quota").await;
    assert!(full.starts_with("quota: the store holds its most entries (2)"), "{full}");
    let bytes = refused(&daemon, "small", json!({"op": "set", "key": "b", "value": "12345"}), "quota").await;
    assert!(bytes.contains("would take 13 bytes, more than its 12 bytes"), "{bytes}");
    refused(&daemon, "small", json!({"op": "cas", "key": "c", "value": "1"}), "quota").await;
    refused(&daemon, "small", json!({"op": "set", "key": "a", "value": "123456789"}), "invalid").await;
    refused(&daemon, "small", json!({"op": "set", "key": "", "value": "1"}), "invalid").await;
    let want = [("a".to_owned(), "12345678".to_owned()), ("b".to_owned(), "1234".to_owned())];
    assert_eq!(entries(&daemon, "small").await, want);
    // Replacing within the bounds: the replaced value does not count.
    done(&daemon, "small", json!({"op": "set", "key": "b", "value": "4321"})).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_plugin_without_the_grant_is_denied_and_stores_do_not_see_each_other() {
    let daemon = TestDaemon::start(&config(2, "")).await;
    let denied = refused(&daemon, "nogrant", json!({"op": "get", "key": "hits"}), "denied").await;
    assert!(denied.starts_with("denied: the plugin is granted no key-value store"), "{denied}");
    done(&daemon, "counter", json!({"op": "set", "key": "secret", "value": "x"})).await;
    assert_eq!(done(&daemon, "other", json!({"op": "get", "key": "secret"})).await["value"], Value::Null);
    assert_eq!(done(&daemon, "other", json!({"op": "list"})).await["keys"], json!([]));
    // Plugins granted the same name share its entries.
    assert_eq!(done(&daemon, "reader", json!({"op": "get", "key": "secret"})).await["value"], "x");
    let (status, answer) = daemon.get("/api/kv/nosuch").await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (404, "no plugin is granted the key-value store `nosuch` (granted: counters, other, small)")
    );
    daemon.stop().await;
}

#[tokio::test]
async fn percent_and_underscore_in_a_prefix_are_plain_characters_and_pages_follow_byte_order() {
    let daemon = TestDaemon::start(&config(2, "")).await;
    for key in ["a%b", "axb", "a_b", "ayb", "B", "é"] {
        done(&daemon, "counter", json!({"op": "set", "key": key, "value": ""})).await;
    }
    assert_eq!(done(&daemon, "counter", json!({"op": "list", "prefix": "a%"})).await["keys"], json!(["a%b"]));
    assert_eq!(done(&daemon, "counter", json!({"op": "list", "prefix": "a_"})).await["keys"], json!(["a_b"]));
    let all = done(&daemon, "counter", json!({"op": "list-all", "page": 2})).await;
    assert_eq!(all["keys"], json!(["B", "a%b", "a_b", "axb", "ayb", "é"]));
    // The operator's view pages the same way; a delete through it is seen by plugins.
    let (_, page) = daemon.get("/api/kv/counters?prefix=a&limit=2").await;
    assert_eq!((page["entries"][1]["key"].as_str(), page["next"].as_str()), (Some("a_b"), Some("a_b")), "{page}");
    let client = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));
    let deleted = client.post("/api/kv/counters/delete?key=a%25b").await.unwrap().ok().unwrap();
    assert_eq!(deleted["deleted"], true);
    assert_eq!(done(&daemon, "counter", json!({"op": "list", "prefix": "a%"})).await["keys"], json!([]));
    daemon.stop().await;
}

/// Bounds and grants change with a reload, as the other grants do: steps started after it
/// run under the new ones.
#[tokio::test]
async fn a_reload_changes_a_stores_bounds_and_grants() {
    let daemon = TestDaemon::start(&config(2, "")).await;
    done(&daemon, "small", json!({"op": "set", "key": "a", "value": "1"})).await;
    done(&daemon, "small", json!({"op": "set", "key": "b", "value": "2"})).await;
    refused(&daemon, "small", json!({"op": "set", "key": "c", "value": "3"}), "quota").await;
    let path = daemon.dir.path().join("gitauto.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replace("max_entries = 2", "max_entries = 3").replace("grants = { kv = \"other\" }", "");
    std::fs::write(&path, changed).unwrap();
    wait_for("the reload", Duration::from_secs(20), || async {
        let (_, status) = daemon.get("/api/config").await;
        (status["generation"] == 2).then_some(())
    })
    .await;
    done(&daemon, "small", json!({"op": "set", "key": "c", "value": "3"})).await;
    refused(&daemon, "other", json!({"op": "list"}), "denied").await;
    daemon.stop().await;
}

#[tokio::test]
async fn values_survive_a_restart() {
    let daemon = TestDaemon::start(&config(1, "")).await;
    let written = done(&daemon, "counter", json!({"op": "set", "key": "kept", "value": "across restarts"})).await;
    let daemon = daemon.restart(&config(1, "")).await;
    let read = done(&daemon, "counter", json!({"op": "get", "key": "kept"})).await;
    assert_eq!((&read["value"], &read["version"]), (&json!("across restarts"), &written["version"]));
    daemon.stop().await;
}

/// Two daemons sharing one PostgreSQL database see one store; each round, a
/// compare-and-swap job on each from the same version: exactly one wins.
#[tokio::test]
async fn two_daemons_on_one_postgresql_database_share_the_store_and_one_racing_swap_wins() {
    if !gitauto_tests::on_postgres() {
        return;
    }
    let Some(url) = gitauto::testing::database() else { return };
    let store = |node: &str| format!("node = \"{node}\"\n\n[store]\nurl = \"{url}\"\n");
    let a = TestDaemon::start(&config(2, &store("a"))).await;
    let b = TestDaemon::start(&config(2, &store("b"))).await;
    let mut version =
        done(&a, "counter", json!({"op": "set", "key": "race", "value": "start"})).await["version"].clone();
    assert_eq!(done(&b, "reader", json!({"op": "get", "key": "race"})).await["value"], "start");
    assert_eq!(entries(&b, "counters").await, [("race".to_owned(), "start".to_owned())], "b's API reads what a wrote");
    for round in 0..10 {
        let swap =
            |who: &str| json!({"op": "cas", "key": "race", "expected": version, "value": format!("{who}{round}")});
        let (on_a, on_b) = tokio::join!(done(&a, "counter", swap("a")), done(&b, "reader", swap("b")));
        let winners: Vec<(&str, &Value)> =
            [("a", &on_a["version"]), ("b", &on_b["version"])].into_iter().filter(|(_, v)| !v.is_null()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {on_a} {on_b}");
        let (winner, new) = winners[0];
        let read = done(&a, "reader", json!({"op": "get", "key": "race"})).await;
        assert_eq!((&read["value"], &read["version"]), (&json!(format!("{winner}{round}")), new));
        version = new.clone();
    }
    a.stop().await;
    b.stop().await;
}
