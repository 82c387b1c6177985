//! Rules through the daemon: a chain whose failing step triggers handlers that carry
//! its output through templates, `continue_on_failure` and step conditions, manual
//! events, `gitauto run` in-process, and hot reload.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "rules-test-token";

/// A config with the probe plugin granted `scratch` (write) and `sh`, and `rules`.
fn config(scratch: &Path, rules: &str) -> String {
    format!(
        r#"
[server]
api_token = "{TOKEN}"

{source}
[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = [{{ path = "{scratch}", write = true }}], commands = ["sh"] }}

{rules}
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
        scratch = scratch.display(),
        rules = rules.replace("SCRATCH", &scratch.display().to_string()),
    )
}

async fn push(daemon: &TestDaemon, branch: &str) -> Vec<String> {
    let payload =
        push_payload("acme", "widgets", &format!("refs/heads/{branch}"), &"1".repeat(40), &"2".repeat(40), "file:///x");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    body["jobs"].as_array().unwrap().iter().map(|j| j.as_str().unwrap().to_owned()).collect()
}

fn steps(job: &Value) -> Vec<(String, String)> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

const LINT_FAILS: &str = r#"
[[rules]]
name = "lint"
on = "push"
branch = "main"

[[rules.steps]]
name = "lint"
plugin = "probe"
with = { op = "shell", program = "sh", check = true, args = ["-c", "echo 'a.py:1: E101 indentation' >&2; echo 'a.py:9: W291 trailing space' >&2; exit 1"] }

[[rules.steps.on_failure]]
name = "comment"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/comment.txt", content = "Lint failed on {{ event.branch }}:\n\n{{ parent.output.stderr | indent(4, true) }}" }

[[rules.steps]]
name = "deploy"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/deployed.txt", content = "deployed" }

[[rules.on_failure]]
name = "notify"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/notify.txt", content = "{{ rule.name }}: {{ steps.lint.summary }} (job {{ job.id }})" }

[[rules.on_success]]
name = "celebrate"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/celebrate.txt", content = "yes" }
"#;

#[tokio::test]
async fn a_failing_step_runs_its_handlers_with_its_output() {
    let scratch = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&config(scratch.path(), LINT_FAILS)).await;
    let jobs = push(&daemon, "main").await;
    let job = daemon.finished_job(&jobs[0]).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["summary"], "step 1 (lint) failed: exited with Some(1)");
    assert_eq!(steps(&job), pairs(&[("lint", "failure"), ("comment", "success"), ("notify", "success")]));
    let comment = std::fs::read_to_string(scratch.path().join("comment.txt")).unwrap();
    assert_eq!(comment, "Lint failed on main:\n\n    a.py:1: E101 indentation\n    a.py:9: W291 trailing space");
    let notify = std::fs::read_to_string(scratch.path().join("notify.txt")).unwrap();
    assert_eq!(notify, format!("lint: exited with Some(1) (job {})", jobs[0]));
    assert!(!scratch.path().join("deployed.txt").exists(), "the chain stopped at the failure");
    assert!(!scratch.path().join("celebrate.txt").exists());
    daemon.stop().await;
}

#[tokio::test]
async fn continue_on_failure_conditions_and_a_handler_error() {
    let scratch = tempfile::tempdir().unwrap();
    let rules = r#"
[[rules]]
name = "chain"
on = "push"

[[rules.steps]]
name = "check"
plugin = "probe"
continue_on_failure = true
with = { op = "shell", program = "sh", check = true, args = ["-c", "echo warn >&2; exit 3"] }

[[rules.steps]]
name = "only-on-dev"
plugin = "probe"
if = "event.branch == 'dev'"
with = { op = "write-file", path = "SCRATCH/dev.txt", content = "dev" }

[[rules.steps]]
name = "record"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/record.txt", content = "{{ steps.check.status }} then {{ parent.name }}; skipped: {{ steps['only-on-dev'].status }}" }

[[rules.steps.on_success]]
name = "broken-handler"
plugin = "probe"
with = { op = "write-file", path = "/not/granted.txt", content = "x" }
"#;
    let daemon = TestDaemon::start(&config(scratch.path(), rules)).await;
    let jobs = push(&daemon, "main").await;
    let job = daemon.finished_job(&jobs[0]).await;
    assert_eq!(
        steps(&job),
        pairs(&[
            ("check", "failure"),
            ("only-on-dev", "skipped"),
            ("record", "success"),
            ("broken-handler", "failure")
        ])
    );
    let record = std::fs::read_to_string(scratch.path().join("record.txt")).unwrap();
    assert_eq!(record, "failure then check; skipped: skipped");
    assert!(!scratch.path().join("dev.txt").exists());
    // The chain itself succeeded, but a handler of it did not: the job says so.
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["summary"].as_str().unwrap().starts_with("on_success handler broken-handler did not succeed"), "{job}");
    daemon.stop().await;
}

#[tokio::test]
async fn manual_rules_start_from_the_api_with_parameters() {
    let scratch = tempfile::tempdir().unwrap();
    let rules = r#"
[[rules]]
name = "provision"
on = "manual"
if = "payload.action in ['create_repo', 'put_team']"
steps = [{ plugin = "probe", with = { op = "write-file", path = "SCRATCH/provision.txt", content = "{{ payload.action }} {{ payload.course }} for {{ event.repository.full_name }} ({{ payload.members | join(',') }})" } }]

[[rules]]
name = "on-push"
on = "push"
steps = [{ plugin = "probe", with = { op = "env" } }]
"#;
    let daemon = TestDaemon::start(&config(scratch.path(), rules)).await;
    let client = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));
    let trigger = |rule: &str, params: Value| json!({"rule": rule, "params": params});
    let params = json!({"action": "create_repo", "course": "8.01r", "repo": "mitx/content", "members": ["a", "b"]});
    let answer = client.post_json("/api/events", &trigger("provision", params)).await.unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let job = daemon.finished_job(answer.body["jobs"][0].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["event"]["kind"], "manual");
    let written = std::fs::read_to_string(scratch.path().join("provision.txt")).unwrap();
    assert_eq!(written, "create_repo 8.01r for mitx/content (a,b)");

    let answer = client.post_json("/api/events", &trigger("provision", json!({"action": "drop_db"}))).await.unwrap();
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body["error"],
        "rule `provision` did not match: `if` is false: payload.action in ['create_repo', 'put_team']"
    );
    let answer = client.post_json("/api/events", &trigger("on-push", json!({}))).await.unwrap();
    assert_eq!(answer.status, 422);
    assert_eq!(answer.body["error"], "rule `on-push` is not manual: add \"manual\" to its `on`");
    let answer = client.post_json("/api/events", &trigger("nope", json!({}))).await.unwrap();
    assert_eq!(
        (answer.status, answer.body["error"].as_str().unwrap()),
        (404, "no rule named `nope` (manual rules: provision)")
    );
    let anonymous = gitauto::client::Client::new(&daemon.url, None);
    assert_eq!(anonymous.post_json("/api/events", &trigger("provision", json!({}))).await.unwrap().status, 401);
    // A push never starts a manual rule.
    let jobs = push(&daemon, "main").await;
    assert_eq!(jobs.len(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn gitauto_run_explains_and_runs_a_payload_in_process() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gitauto.toml");
    std::fs::write(
        &path,
        config(scratch.path(), LINT_FAILS.replace("branch = \"main\"", "branch = [\"main\", \"release/*\"]").as_str()),
    )
    .unwrap();
    let config = gitauto::config::Config::load(&path).unwrap();
    let body = push_payload("acme", "widgets", "refs/heads/dev", &"1".repeat(40), &"2".repeat(40), "file:///x");
    let request = gitauto::local::Request { body: body.clone(), source: None, forge_event: None, dry_run: true };
    let report = gitauto::local::run(config.clone(), request).await.unwrap();
    assert_eq!(report.forge_event, "push");
    assert_eq!(report.explain[0]["rules"][0]["reason"], "branch `dev` not in [main, release/*]");
    assert!(report.jobs.is_empty());

    let body = push_payload("acme", "widgets", "refs/heads/release/2", &"1".repeat(40), &"2".repeat(40), "file:///x");
    let request = gitauto::local::Request { body, source: Some("github".into()), forge_event: None, dry_run: false };
    let report = gitauto::local::run(config, request).await.unwrap();
    assert_eq!(report.explain[0]["rules"][0]["matched"], true);
    assert_eq!(report.jobs.len(), 1);
    assert_eq!(report.jobs[0].state, "failed");
    assert!(scratch.path().join("comment.txt").is_file());
}

#[tokio::test]
async fn the_config_reloads_on_change_and_a_broken_one_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let rule = |content: &str| {
        format!(
            "[[rules]]\nname = \"write\"\non = \"push\"\nsteps = [{{ plugin = \"probe\", with = {{ op = \"write-file\", path = \"SCRATCH/out.txt\", content = \"{content}\" }} }}]\n"
        )
    };
    let daemon = TestDaemon::start(&config(scratch.path(), &rule("first"))).await;
    let client = gitauto::client::Client::new(&daemon.url, Some(TOKEN.into()));
    let generation = || async { client.get("/api/config").await.unwrap().body };
    assert_eq!(generation().await["generation"], 1);
    let out = scratch.path().join("out.txt");
    let run = |expected: &'static str| {
        let (daemon, out) = (&daemon, &out);
        async move {
            let jobs = push(daemon, "main").await;
            assert_eq!(daemon.finished_job(&jobs[0]).await["state"], "succeeded");
            assert_eq!(std::fs::read_to_string(out).unwrap(), expected);
        }
    };
    run("first").await;

    let path = daemon.dir.path().join("gitauto.toml");
    std::fs::write(&path, config(scratch.path(), &rule("second"))).unwrap();
    wait_for("the reload", Duration::from_secs(20), || async { (generation().await["generation"] == 2).then_some(()) })
        .await;
    run("second").await;

    std::fs::write(&path, config(scratch.path(), &rule("third")).replace("on = \"push\"", "on = \"pushh\"")).unwrap();
    let status = wait_for("the refused reload", Duration::from_secs(20), || async {
        let status = generation().await;
        status["last_error"].is_string().then_some(status)
    })
    .await;
    assert_eq!(status["generation"], 2);
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("gitauto.toml:") && error.contains("unknown event kind `pushh`; did you mean `push`?"),
        "{error}"
    );
    run("second").await;
    daemon.stop().await;
}

#[tokio::test]
async fn an_error_runs_on_error_handlers_once_no_retry_follows() {
    let scratch = tempfile::tempdir().unwrap();
    let rules = r#"
[[rules]]
name = "slow"
on = "push"
timeout = "1s"
retries = 1
retry_backoff = "1s"

[[rules.steps]]
name = "sleep"
plugin = "probe"
with = { op = "sleep", ms = 5000, lines = 50 }

[[rules.steps.on_error]]
name = "step-error"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/step-error-{{ job.attempt }}.txt", content = "{{ parent.status }}: {{ parent.summary }}" }

[[rules.on_error]]
name = "rule-error"
plugin = "probe"
with = { op = "write-file", path = "SCRATCH/rule-error.txt", content = "{{ rule.name }} gave up after {{ job.attempt }} of {{ job.max_attempts }}" }
"#;
    let daemon = TestDaemon::start(&config(scratch.path(), rules)).await;
    let jobs = push(&daemon, "main").await;
    let job = daemon.finished_job(&jobs[0]).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 2);
    // The first attempt was retried, so its handlers waited; the last one ran them.
    assert!(!scratch.path().join("step-error-1.txt").exists());
    let step_error = std::fs::read_to_string(scratch.path().join("step-error-2.txt")).unwrap();
    assert_eq!(step_error, "error: plugin probe trapped: the rule's timeout passed");
    let rule_error = std::fs::read_to_string(scratch.path().join("rule-error.txt")).unwrap();
    assert_eq!(rule_error, "slow gave up after 2 of 2");
    daemon.stop().await;
}
