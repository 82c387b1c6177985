//! Reports through the daemon (issue 21): a rule's `report` shows each job on its commit
//! at the fake forge APIs — GitHub, GitLab, Gitea and Bitbucket commit statuses, GitHub
//! check runs with the `run` plugin's annotations — in the exact order the job went:
//! queued, running, its end; a coalesced job marks the superseded commit; a 502 is tried
//! again and never fails the job; GitHub's re-run requests run the job again.

use gitauto_tests::fake_api::FakeApi;
use gitauto_tests::fake_api::statuses::CheckRun;
use gitauto_tests::{SECRET, TestDaemon, push_payload, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const PUBLIC: &str = "https://gitauto.example.com";

/// The sources (one per forge, each with its API at the fake), the plugins, and `rules`.
fn config(fake: &FakeApi, scratch: &Path, rules: &str) -> String {
    format!(
        r#"
[server]
workers = 4
public_url = "{PUBLIC}/"

[sources.github]
forge = "github"
secret = "{SECRET}"
api = {{ url = "{fake}", token = "gh-token" }}

[sources.gitlab]
forge = "gitlab"
secret = "gl-secret"
api = {{ url = "{fake}/api/v4", token = "gl-token" }}

[sources.gitea]
forge = "gitea"
secret = "gt-secret"
api = {{ url = "{fake}/api/v1", token = "gt-token" }}

[sources.bitbucket]
forge = "bitbucket"
secret = "bb-secret"
api = {{ url = "{fake}/2.0", token = "bb-user:app-password", scheme = "basic" }}

[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = [{{ path = "{scratch}", write = true }}] }}

[plugins.mergeable]
wasm = "builtin:mergeable"
grants = {{ dirs = ["{scratch}"] }}

[plugins.run]
wasm = "builtin:run"
grants = {{ dirs = ["{scratch}"], commands = ["gcc"] }}
{rules}"#,
        fake = fake.url,
        probe = env!("GITAUTO_GUEST_PROBE"),
        scratch = scratch.display(),
        rules = rules.replace("SCRATCH", &scratch.display().to_string()),
    )
}

/// Rules `ok`, `fail`, `skip`, `held` and `flaky` on branches `RULE-SOURCE` (jobs of one
/// repository and branch through two sources would share a checkout and coalesce),
/// reporting statuses.
const STATUS_RULES: &str = r#"
[[rules]]
name = "ok"
on = "push"
branch = "ok-*"
report = "status"
steps = [{ plugin = "probe", with = { op = "write-file", path = "SCRATCH/ok.txt", content = "ok" } }]

[[rules]]
name = "fail"
on = "push"
branch = "fail-*"
report = "status"
steps = [{ plugin = "probe", with = { op = "read-file", path = "SCRATCH/missing.txt" } }]

[[rules]]
name = "skip"
on = "push"
branch = "skip-*"
report = "status"
steps = [{ plugin = "mergeable", with = { repodir = "SCRATCH" } }]

[[rules]]
name = "held"
on = "push"
branch = "held-*"
report = "status"
steps = [{ plugin = "probe", with = { op = "write-file", path = "SCRATCH/held.txt", content = "{{ event.after }}" } }]

[[rules]]
name = "flaky"
on = "push"
branch = "flaky-*"
report = "status"
retries = 1
retry_backoff = "1s"
steps = [{ plugin = "probe", with = { op = "flaky", path = "SCRATCH/flaky-{{ event.source }}", failures = 1 } }]
"#;

fn fixture(forge: &str, name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads").join(forge).join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Pushes `sha` to `branch` through `source`, as its forge sends it; returns the job ids.
async fn push(daemon: &TestDaemon, source: &str, branch: &str, sha: &str) -> Vec<String> {
    let git_ref = format!("refs/heads/{branch}");
    let (event, body) = match source {
        "github" => ("push", push_payload("acme", "widgets", &git_ref, &"0".repeat(40), sha, "file:///unused")),
        "gitlab" => {
            let mut payload = fixture("gitlab", "push.json");
            payload["ref"] = git_ref.into();
            payload["after"] = sha.into();
            payload["checkout_sha"] = sha.into();
            ("Push Hook", serde_json::to_vec(&payload).unwrap())
        }
        "gitea" => {
            let mut payload = fixture("gitea", "push.json");
            payload["ref"] = git_ref.into();
            payload["after"] = sha.into();
            ("push", serde_json::to_vec(&payload).unwrap())
        }
        _ => {
            let mut payload = fixture("bitbucket", "repo-push.json");
            let change = &mut payload["push"]["changes"][0];
            change["new"]["name"] = branch.into();
            change["new"]["target"]["hash"] = sha.into();
            ("repo:push", serde_json::to_vec(&payload).unwrap())
        }
    };
    let (status, answer, _) = daemon.post_as(source, event, &body).await;
    assert_eq!(status, 202, "{source}: {answer}");
    answer["jobs"].as_array().unwrap().iter().map(|job| job.as_str().unwrap().to_owned()).collect()
}

/// The repository each source's fixture is about, as the fake records it.
fn repo_of(source: &str) -> &'static str {
    if source == "gitlab" { "acme/platform/widgets" } else { "acme/widgets" }
}

/// The name a rule's reports carry at `source` (Bitbucket's is its key).
fn context(rule: &str) -> String {
    format!("gitauto/{rule}")
}

/// Waits until `count` statuses are on `sha` under `rule`'s context; returns them as
/// `(state, description)`.
async fn statuses(fake: &FakeApi, sha: &str, rule: &str, count: usize) -> Vec<(String, String)> {
    let context = context(rule);
    let started = std::time::Instant::now();
    let found = loop {
        let found = fake.with(|s| s.reports.on(sha, &context));
        if found.len() >= count {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waiting for {count} statuses of {rule} on {sha}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(found.len(), count, "{found:?}");
    found
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(state, text)| ((*state).to_owned(), (*text).to_owned())).collect()
}

/// The state words each forge's statuses use, for: queued, running, succeeded, failed, skipped, superseded.
fn words(source: &str) -> [&'static str; 6] {
    match source {
        "github" => ["pending", "pending", "success", "failure", "success", "error"],
        "gitlab" => ["pending", "running", "success", "failed", "skipped", "canceled"],
        "gitea" => ["pending", "pending", "success", "failure", "success", "error"],
        _ => ["INPROGRESS", "INPROGRESS", "SUCCESSFUL", "FAILED", "SUCCESSFUL", "STOPPED"],
    }
}

fn sha(source: &str, n: u8) -> String {
    let tag = match source {
        "github" => 1,
        "gitlab" => 2,
        "gitea" => 3,
        _ => 4,
    };
    format!("{tag:x}{n:02x}{}", "e".repeat(37))
}

const SOURCES: [&str; 4] = ["github", "gitlab", "gitea", "bitbucket"];

#[tokio::test]
async fn each_forge_shows_a_succeeding_a_failing_and_a_skipped_job_on_its_commit_in_order() {
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&config(&fake, scratch.path(), STATUS_RULES)).await;
    let mut jobs = Vec::new();
    for source in SOURCES {
        for (n, rule) in ["ok", "fail", "skip"].into_iter().enumerate() {
            let job = push(&daemon, source, &format!("{rule}-{source}"), &sha(source, n as u8)).await;
            assert_eq!(job.len(), 1, "{source} {rule}");
            jobs.push((source, rule, sha(source, n as u8), job[0].clone()));
        }
    }
    for (source, rule, sha, job) in &jobs {
        let finished = daemon.finished_job(job).await;
        let [queued, running, succeeded, failed, skipped, _] = words(source);
        let (end, text) = match *rule {
            "ok" => (succeeded, "done".to_owned()),
            "fail" => (failed, finished["steps"][0]["summary"].as_str().unwrap().to_owned()),
            _ => (skipped, "not a pull request".to_owned()),
        };
        assert_eq!(
            finished["state"],
            if *rule == "ok" {
                "succeeded"
            } else if *rule == "fail" {
                "failed"
            } else {
                "skipped"
            }
        );
        let expected = pairs(&[(queued, "queued"), (running, "running"), (end, &text)]);
        assert_eq!(statuses(&fake, sha, rule, 3).await, expected, "{source} {rule}");
    }
    // Each status names the rule, links to the job's page and is about the event's repository.
    let recorded = fake.with(|s| s.reports.statuses.clone());
    for (source, rule, sha, job) in &jobs {
        for status in recorded.iter().filter(|status| &status.sha == sha) {
            assert_eq!(status.url.as_deref(), Some(format!("{PUBLIC}/jobs/{job}").as_str()), "{source} {rule}");
            assert_eq!(status.repo, repo_of(source));
            assert_eq!(status.context, context(rule));
            assert_eq!(status.forge, if *source == "gitea" { "gitea" } else { source });
            if *source == "bitbucket" {
                assert_eq!(status.name.as_deref(), Some(context(rule).as_str()));
            }
        }
    }
    // Each forge's token went in the header its API reads.
    let credentials: Vec<(String, Option<String>)> =
        fake.take().into_iter().map(|request| (request.path, request.authorization)).collect();
    for (prefix, credential) in [
        ("/repos/", "Bearer gh-token"),
        ("/api/v4/", "gl-token"),
        ("/api/v1/", "token gt-token"),
        ("/2.0/", "Basic YmItdXNlcjphcHAtcGFzc3dvcmQ="),
    ] {
        let sent: Vec<_> = credentials.iter().filter(|(path, _)| path.starts_with(prefix)).collect();
        assert!(
            !sent.is_empty() && sent.iter().all(|(_, auth)| auth.as_deref() == Some(credential)),
            "{prefix}: {sent:?}"
        );
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_coalesced_job_reports_the_newest_commit_and_marks_the_superseded_one() {
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&config(&fake, scratch.path(), STATUS_RULES)).await;
    // While the rule is paused its jobs wait in line, so the second push coalesces.
    let (status, answer) = daemon.post("/api/rules/held/pause", &[], b"").await;
    assert_eq!(status, 200, "{answer}");
    let mut carried = Vec::new();
    for source in SOURCES {
        let branch = format!("held-{source}");
        let first = push(&daemon, source, &branch, &sha(source, 10)).await;
        let second = push(&daemon, source, &branch, &sha(source, 11)).await;
        assert_eq!(first, second, "{source}: the second push is carried by the queued job");
        carried.push((source, first[0].clone()));
    }
    let (status, answer) = daemon.post("/api/rules/held/resume", &[], b"").await;
    assert_eq!(status, 200, "{answer}");
    for (source, job) in carried {
        assert_eq!(daemon.finished_job(&job).await["state"], "succeeded");
        let [queued, running, succeeded, _, _, superseded] = words(source);
        let newer = sha(source, 11);
        let note = format!("superseded: job {job} runs the newer commit {}", &newer[..7]);
        let older = statuses(&fake, &sha(source, 10), "held", 2).await;
        assert_eq!(older, pairs(&[(queued, "queued"), (superseded, &note)]), "{source}");
        let newest = statuses(&fake, &newer, "held", 3).await;
        assert_eq!(newest, pairs(&[(queued, "queued"), (running, "running"), (succeeded, "done")]), "{source}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_502_from_the_api_is_tried_again_and_the_job_is_not_failed() {
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&config(&fake, scratch.path(), STATUS_RULES)).await;
    let commit = sha("github", 20);
    let path = format!("/repos/acme/widgets/statuses/{commit}");
    fake.fail("POST", &path, 502, json!({"message": "Server Error"}));
    let job = push(&daemon, "github", "ok-github", &commit).await;
    assert_eq!(daemon.finished_job(&job[0]).await["state"], "succeeded");
    let expected = pairs(&[("pending", "queued"), ("pending", "running"), ("success", "done")]);
    assert_eq!(statuses(&fake, &commit, "ok", 3).await, expected);
    let posts = fake.take_lines().iter().filter(|line| line.as_str() == format!("POST {path}")).count();
    assert_eq!(posts, 4, "the first try got the 502 and was made again");
    daemon.stop().await;
}

#[tokio::test]
async fn a_refused_report_is_recorded_with_the_forges_message_and_the_next_one_goes_on() {
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&config(&fake, scratch.path(), STATUS_RULES)).await;
    let commit = sha("gitea", 21);
    let path = format!("/api/v1/repos/acme/widgets/statuses/{commit}");
    fake.fail(
        "POST",
        &path,
        403,
        json!({"message": "token does not have at least one of required scope(s): [write:repository]"}),
    );
    let job = push(&daemon, "gitea", "ok-gitea", &commit).await;
    assert_eq!(daemon.finished_job(&job[0]).await["state"], "succeeded");
    // The refused `queued` status is not tried again; running and the end still go out.
    let expected = pairs(&[("pending", "running"), ("success", "done")]);
    assert_eq!(statuses(&fake, &commit, "ok", 2).await, expected);
    let reports = wait_for("every report of the job to be done", Duration::from_secs(30), || async {
        let (_, view) = daemon.get(&format!("/api/jobs/{}", job[0])).await;
        let reports = view["reports"].as_array().cloned().unwrap_or_default();
        (reports.len() == 3 && reports.iter().all(|report| report["done"] == true)).then_some(reports)
    })
    .await;
    let outcomes: Vec<&str> = reports.iter().map(|report| report["outcome"].as_str().unwrap()).collect();
    assert!(
        outcomes[0].starts_with("refused: POST ")
            && outcomes[0].ends_with("403: token does not have at least one of required scope(s): [write:repository]"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1..], ["sent", "sent"]);
    assert_eq!(reports[0]["tries"], 1);
    // The job's page shows them too.
    let page = reqwest::get(format!("{}/jobs/{}", daemon.url, job[0])).await.unwrap().text().await.unwrap();
    assert!(page.contains("<h2>Reports to the forge</h2>") && page.contains("refused: POST "), "{page}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_retried_attempt_reports_again_and_gitlabs_open_status_is_ended_first() {
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(&config(&fake, scratch.path(), STATUS_RULES)).await;
    for source in ["github", "gitlab"] {
        let commit = sha(source, 30);
        let job = push(&daemon, source, &format!("flaky-{source}"), &commit).await;
        let finished = daemon.finished_job(&job[0]).await;
        assert_eq!((finished["state"].as_str(), finished["attempts"].as_i64()), (Some("succeeded"), Some(2)));
        let [queued, running, succeeded, ..] = words(source);
        let mut expected = vec![queued, running];
        if source == "gitlab" {
            // GitLab's running status cannot go back to pending: it is ended first.
            expected.push("canceled");
        }
        expected.extend([queued, running, succeeded]);
        let found = statuses(&fake, &commit, "flaky", expected.len()).await;
        let states: Vec<&str> = found.iter().map(|(state, _)| state.as_str()).collect();
        assert_eq!(states, expected, "{source}");
        if source == "gitlab" {
            let why = &found[2].1;
            assert!(why.starts_with("attempt 1 did not finish (") && why.ends_with("); attempt 2 is queued"), "{why}");
        }
    }
    daemon.stop().await;
}

/// Rules on the GitHub source that report check runs: a success, a failure, a skip, and
/// gcc through `run` with its matcher, warning about 60 unused variables.
const CHECK_RULES: &str = r#"
[[rules]]
name = "check-ok"
on = "push"
source = "github"
branch = "ok"
report = "check"
steps = [{ plugin = "probe", with = { op = "write-file", path = "SCRATCH/ok.txt", content = "ok" } }]

[[rules]]
name = "check-fail"
on = "push"
source = "github"
branch = "fail"
report = "check"
steps = [{ plugin = "probe", with = { op = "read-file", path = "SCRATCH/missing.txt" } }]

[[rules]]
name = "check-skip"
on = "push"
source = "github"
branch = "skip"
report = "check"
steps = [{ plugin = "mergeable", with = { repodir = "SCRATCH" } }]

[[rules]]
name = "lint"
on = "push"
source = "github"
branch = "lint"
report = "check"
steps = [{ plugin = "run", with = { program = "gcc", args = ["-fsyntax-only", "-Wall", "main.c"], cwd = "SCRATCH", matcher = "gcc" } }]
"#;

/// Waits until `rule`'s check runs on `sha` number `runs` and the newest is completed.
async fn completed_runs(fake: &FakeApi, sha: &str, rule: &str, runs: usize) -> Vec<CheckRun> {
    let name = context(rule);
    wait_for(&format!("{runs} completed check runs of {rule}"), Duration::from_secs(60), || async {
        let found = fake.with(|s| s.reports.runs(sha, &name));
        (found.len() == runs && found.iter().all(|run| run.status == "completed")).then_some(found)
    })
    .await
}

/// GitHub's `check_run` delivery asking to run `run` again.
fn rerequest_run(run: &CheckRun, name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "rerequested",
        "check_run": {
            "id": run.id, "name": name, "head_sha": run.head_sha, "external_id": run.external_id,
            "status": run.status, "conclusion": run.conclusion, "app": {"id": 1},
            "check_suite": {"id": 5, "head_branch": "fail", "head_sha": run.head_sha}
        },
        "repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"login": "acme"},
                       "clone_url": "file:///unused", "html_url": "https://github.com/acme/widgets"},
        "sender": {"login": "octocat"},
        "installation": {"id": 9}
    }))
    .unwrap()
}

#[tokio::test]
async fn check_runs_go_queued_in_progress_completed_with_annotations_and_rerun_on_request() {
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let unused: String = (0..60).map(|n| format!("    int unused_{n};\n")).collect();
    std::fs::write(scratch.path().join("main.c"), format!("int main(void) {{\n{unused}    return 0;\n}}\n")).unwrap();
    let daemon = TestDaemon::start(&config(&fake, scratch.path(), CHECK_RULES)).await;
    let cases = [
        ("check-ok", "ok", "success"),
        ("check-fail", "fail", "failure"),
        ("check-skip", "skip", "skipped"),
        ("lint", "lint", "success"),
    ];
    let mut jobs = Vec::new();
    for (n, (rule, branch, _)) in cases.iter().enumerate() {
        let commit = sha("github", 40 + n as u8);
        let job = push(&daemon, "github", branch, &commit).await;
        assert_eq!(job.len(), 1, "{rule}");
        jobs.push((commit, job[0].clone()));
    }
    for ((rule, _, conclusion), (commit, job)) in cases.iter().zip(&jobs) {
        daemon.finished_job(job).await;
        let runs = completed_runs(&fake, commit, rule, 1).await;
        let run = &runs[0];
        let end = format!("completed/{conclusion}");
        assert_eq!(run.history, ["queued", "in_progress", end.as_str()], "{rule}");
        assert_eq!(run.external_id.as_deref(), Some(job.as_str()));
        assert_eq!(run.details_url.as_deref(), Some(format!("{PUBLIC}/jobs/{job}").as_str()));
        assert_eq!(
            run.title.as_deref(),
            Some(
                format!(
                    "gitauto/{rule} {}",
                    if *conclusion == "failure" {
                        "failed"
                    } else if *conclusion == "skipped" {
                        "skipped"
                    } else {
                        "succeeded"
                    }
                )
                .as_str()
            )
        );
    }
    // The gcc warnings arrive as annotations, in batches of at most 50.
    completed_runs(&fake, &jobs[3].0, "lint", 1).await;
    let lint = wait_for("the 60 annotations of lint", Duration::from_secs(60), || async {
        let runs = fake.with(|s| s.reports.runs(&jobs[3].0, "gitauto/lint"));
        runs.into_iter().next().filter(|run| run.annotations.len() >= 60)
    })
    .await;
    assert_eq!(lint.annotations.len(), 60);
    let mut lines: Vec<u64> = lint.annotations.iter().map(|a| a["start_line"].as_u64().unwrap()).collect();
    lines.sort_unstable();
    assert_eq!(lines, (2..=61).collect::<Vec<u64>>(), "one warning per unused variable, at its line");
    let on_line_2 = lint.annotations.iter().find(|a| a["start_line"] == 2).unwrap();
    assert_eq!((on_line_2["path"].as_str(), on_line_2["annotation_level"].as_str()), (Some("main.c"), Some("warning")));
    assert!(on_line_2["message"].as_str().unwrap().contains("unused_0"), "{on_line_2}");
    let patches = fake
        .take_lines()
        .iter()
        .filter(|line| line.starts_with(&format!("PATCH /repos/acme/widgets/check-runs/{}", lint.id)))
        .count();
    assert_eq!(patches, 3, "in_progress, completed with 50 annotations, then the other 10");

    // Re-run requested from GitHub: the failed job runs again, with a new check run.
    let (commit, job) = &jobs[1];
    let failed = &completed_runs(&fake, commit, "check-fail", 1).await[0];
    // Another app's run (another name) with the same external id is not ours.
    let (status, _) = daemon.post_github("github", "check_run", &rerequest_run(failed, "other-ci"), SECRET).await;
    assert_eq!(status, 202);
    // A re-run is queued before the delivery is answered: none was.
    let (_, view) = daemon.get(&format!("/api/jobs/{job}")).await;
    assert_eq!((view["state"].as_str(), view["attempts"].as_i64()), (Some("failed"), Some(1)));
    let (status, _) =
        daemon.post_github("github", "check_run", &rerequest_run(failed, "gitauto/check-fail"), SECRET).await;
    assert_eq!(status, 202);
    let runs = completed_runs(&fake, commit, "check-fail", 2).await;
    assert_eq!(runs[1].history, ["queued", "in_progress", "completed/failure"]);
    assert_eq!(runs[1].external_id.as_deref(), Some(job.as_str()));
    let view = daemon.finished_job(job).await;
    assert_eq!(view["attempts"], 2);

    // A suite's re-run request runs again the newest job of each checking rule on its commit.
    let (commit, job) = &jobs[0];
    let suite = json!({
        "action": "rerequested",
        "check_suite": {"id": 6, "head_branch": "ok", "head_sha": commit, "app": {"id": 1}},
        "repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"login": "acme"}},
        "installation": {"id": 9}
    });
    let (status, _) = daemon.post_github("github", "check_suite", &serde_json::to_vec(&suite).unwrap(), SECRET).await;
    assert_eq!(status, 202);
    let runs = completed_runs(&fake, commit, "check-ok", 2).await;
    assert_eq!(runs[1].history, ["queued", "in_progress", "completed/success"]);
    assert_eq!(daemon.finished_job(job).await["attempts"], 2);
    daemon.stop().await;
}

#[tokio::test]
async fn a_github_app_reports_with_a_token_for_checks_only_and_ignores_other_apps_rerun_requests() {
    const APP_ID: u64 = 31337;
    const INSTALLATION: u64 = 4711;
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let (key, public) = gitauto_tests::fake_api::app::generate_key(scratch.path());
    fake.add_app(APP_ID, public, INSTALLATION, &["acme/widgets"]);
    let daemon = TestDaemon::start(&format!(
        r#"
[sources.github]
forge = "github"
secret = "{SECRET}"
app = {{ id = {APP_ID}, private_key = "file:{key}" }}
api = {{ url = "{url}" }}

[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = [{{ path = "{work}", write = true }}] }}

[[rules]]
name = "checked"
on = "push"
report = "check"
steps = [{{ plugin = "probe", with = {{ op = "read-file", path = "{work}/missing.txt" }} }}]
"#,
        key = key.display(),
        url = fake.url,
        probe = env!("GITAUTO_GUEST_PROBE"),
        work = scratch.path().display(),
    ))
    .await;
    let commit = sha("github", 60);
    let mut payload: Value = serde_json::from_slice(&push_payload(
        "acme",
        "widgets",
        "refs/heads/main",
        &"0".repeat(40),
        &commit,
        "file:///unused",
    ))
    .unwrap();
    payload["installation"] = json!({"id": INSTALLATION});
    let (status, answer) = daemon.post_github("github", "push", &serde_json::to_vec(&payload).unwrap(), SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let job = answer["jobs"][0].as_str().unwrap().to_owned();
    let run = completed_runs(&fake, &commit, "checked", 1).await.remove(0);
    assert_eq!(run.history, ["queued", "in_progress", "completed/failure"]);
    // The installation's token, for this repository and for check runs only, was sent.
    let minted = fake.minted();
    assert!(!minted.is_empty());
    assert!(
        minted.iter().all(|token| token.installation == INSTALLATION
            && token.repositories == ["widgets"]
            && token.permissions == json!({"checks": "write"})),
        "{minted:?}"
    );
    let sent: Vec<Option<String>> = fake
        .take()
        .into_iter()
        .filter(|request| request.path.contains("/check-runs"))
        .map(|request| request.authorization)
        .collect();
    assert!(
        sent.iter()
            .all(|auth| minted.iter().any(|token| auth.as_deref() == Some(format!("Bearer {}", token.token).as_str()))),
        "{sent:?}"
    );

    // Another app's run with our name and external id is not ours: nothing runs again.
    let mut other: Value = serde_json::from_slice(&rerequest_run(&run, "gitauto/checked")).unwrap();
    other["check_run"]["app"]["id"] = json!(APP_ID + 1);
    let (status, _) = daemon.post_github("github", "check_run", &serde_json::to_vec(&other).unwrap(), SECRET).await;
    assert_eq!(status, 202);
    let (_, view) = daemon.get(&format!("/api/jobs/{job}")).await;
    assert_eq!((view["state"].as_str(), view["attempts"].as_i64()), (Some("failed"), Some(1)));
    // Ours is.
    other["check_run"]["app"]["id"] = json!(APP_ID);
    let (status, _) = daemon.post_github("github", "check_run", &serde_json::to_vec(&other).unwrap(), SECRET).await;
    assert_eq!(status, 202);
    assert_eq!(
        completed_runs(&fake, &commit, "checked", 2).await[1].history,
        ["queued", "in_progress", "completed/failure"]
    );
    assert_eq!(daemon.finished_job(&job).await["attempts"], 2);
    daemon.stop().await;
}
