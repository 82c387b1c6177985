//! `provision` against the fake GitHub API, started by manual events as
//! `gitauto trigger provision action=...` would: one test per action asserting the exact
//! sequence of calls (and the bodies that matter), then the error cases. Every request
//! must carry the credential the host attached.

use gitauto_tests::TestDaemon;
use gitauto_tests::fake_api::FakeApi;
use serde_json::{Value, json};
use std::path::Path;

const API_TOKEN: &str = "gh-provisioning-token";
const STUDIO: &str = "MITx-Studio2LMS";

struct Setup {
    api: FakeApi,
    daemon: TestDaemon,
    client: gitauto::client::Client,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), API_TOKEN).unwrap();
    let daemon = TestDaemon::start(&config(&api, dir.path())).await;
    let client = gitauto::client::Client::new(&daemon.url, Some("admin-token".into()));
    Setup { api, daemon, client, _dir: dir }
}

fn config(api: &FakeApi, dir: &Path) -> String {
    format!(
        r#"
[server]
api_token = "admin-token"

[plugins.provision]
wasm = "builtin:provision"
grants = {{ hosts = [{{ host = "{host}", credential = "file:{dir}/token", scheme = "token" }}] }}

[[rules]]
name = "provision"
on = "manual"
steps = [{{ plugin = "provision", with = {{ api_url = "{url}/", staging_hook_url = "https://staging.example/gitreload", production_hook_url = "https://lms.example/gitreload", hook_secret = "hook-secret" }} }}]
"#,
        host = api.url.trim_start_matches("http://"),
        url = api.url,
        dir = dir.display(),
    )
}

impl Setup {
    /// Triggers the rule with `params`; returns the finished job.
    async fn trigger(&self, params: Value) -> Value {
        let answer =
            self.client.post_json("/api/events", &json!({"rule": "provision", "params": params})).await.unwrap();
        assert_eq!(answer.status, 202, "{}", answer.body);
        self.daemon.finished_job(answer.body["jobs"][0].as_str().unwrap()).await
    }

    /// The calls made since the last look, as `METHOD path`, checking each carried the credential.
    fn calls(&self) -> Vec<String> {
        let requests = self.api.take();
        for request in &requests {
            assert_eq!(
                request.authorization.as_deref(),
                Some(format!("token {API_TOKEN}").as_str()),
                "{}",
                request.line()
            );
        }
        requests.iter().map(|r| r.line()).collect()
    }
}

fn lines(list: &[&str]) -> Vec<String> {
    list.iter().map(|l| (*l).to_owned()).collect()
}

#[tokio::test]
async fn create_export_repo_creates_gives_the_team_and_adds_two_files() {
    let s = setup().await;
    s.api.add_team(STUDIO, "alpha", &[]);
    s.api.add_team(STUDIO, "beta", &[]);
    let team = s.api.add_team(STUDIO, " MITx-Studio-Export ", &[]);
    let job = s.trigger(json!({"action": "create_export_repo", "course": "6.004r", "term": "2015_Spring", "description": "Computation"})).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let repo = "content-mit-6004r-2015_Spring";
    assert_eq!(
        job["summary"],
        format!("Newly created repository for exports created at {}/html/{STUDIO}/{repo}", s.api.url)
    );
    let requests = s.api.with(|state| state.requests.clone());
    assert_eq!(
        s.calls(),
        lines(&[
            &format!("GET /repos/{STUDIO}/{repo}"),
            &format!("POST /orgs/{STUDIO}/repos"),
            &format!("GET /orgs/{STUDIO}/teams"),
            &format!("GET /orgs/{STUDIO}/teams?page=2"),
            &format!("PUT /teams/{team}/repos/{STUDIO}/{repo}"),
            &format!("GET /repos/{STUDIO}/{repo}"),
            &format!("PUT /repos/{STUDIO}/{repo}/contents/.gitignore"),
            &format!("GET /repos/{STUDIO}/{repo}"),
            &format!("PUT /repos/{STUDIO}/{repo}/contents/course.xml"),
        ])
    );
    assert_eq!(requests[1].body, json!({"name": repo, "description": "Computation", "private": true}));
    assert_eq!(
        requests[6].body,
        json!({"message": "Automatic .gitignore from gitauto", "committer": {"name": "gitauto", "email": "gitauto@localhost"}, "content": "CmRyYWZ0cy8K"})
    );
    let files = s.api.with(|state| state.files.clone());
    assert_eq!(
        files[&(format!("{STUDIO}/{repo}"), "course.xml".into())],
        "<course url_name=\"2015_Spring\" org=\"MITx\" course=\"6.004r\"/>\n"
    );
    assert_eq!(requests[8].body["message"], "initial commit of course.xml with term \"2015_Spring\"");
}

#[tokio::test]
async fn rerun_studio_moves_the_hooks_to_a_new_repository() {
    let s = setup().await;
    let team = s.api.add_team(STUDIO, "mitx-studio-export", &[]);
    let old = "content-mit-801r-2026_Fall";
    s.api.add_repo(&format!("{STUDIO}/{old}"));
    s.api.add_hook(&format!("{STUDIO}/{old}"), "https://lms.example/gitreload");
    let job = s
        .trigger(json!({"action": "rerun_studio", "course": "8.01r", "term": "2026_Fall", "new_term": "2027_Spring"}))
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let new = "content-mit-801r-2027_Spring";
    let hook_id =
        s.api.with(|state| state.requests.iter().find(|r| r.method == "DELETE").map(|r| r.path.clone())).unwrap();
    assert_eq!(
        s.calls(),
        lines(&[
            &format!("GET /repos/{STUDIO}/{old}"),
            &format!("GET /repos/{STUDIO}/{old}/hooks"),
            &format!("DELETE {hook_id}"),
            &format!("GET /repos/{STUDIO}/{new}"),
            &format!("POST /orgs/{STUDIO}/repos"),
            &format!("GET /orgs/{STUDIO}/teams"),
            &format!("PUT /teams/{team}/repos/{STUDIO}/{new}"),
            &format!("GET /repos/{STUDIO}/{new}"),
            &format!("PUT /repos/{STUDIO}/{new}/contents/.gitignore"),
        ])
    );
    assert_eq!(job["steps"][0]["output"]["hooks_removed"], 1);
    assert!(s.api.with(|state| state.hooks[&format!("{STUDIO}/{old}")].is_empty()));
}

#[tokio::test]
async fn release_actions_add_a_signed_json_production_hook() {
    let s = setup().await;
    s.api.add_repo(&format!("{STUDIO}/content-mit-801r-2027_Spring"));
    s.api.add_repo("mitx/content-mit-801r-2027_Spring");
    let job = s.trigger(json!({"action": "release_studio", "course": "8.01r", "term": "2027_Spring"})).await;
    assert_eq!(job["summary"], "Added production Web hooks to course");
    let job = s.trigger(json!({"action": "release_xml", "course": "8.01r", "term": "2027_Spring"})).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let requests = s.api.take();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            format!("POST /repos/{STUDIO}/content-mit-801r-2027_Spring/hooks"),
            "POST /repos/mitx/content-mit-801r-2027_Spring/hooks".into()
        ]
    );
    let expected = json!({"name": "web", "active": true, "events": ["push"], "config": {"url": "https://lms.example/gitreload", "content_type": "json", "secret": "hook-secret"}});
    assert_eq!(requests[0].body, expected);
    assert_eq!(requests[1].body, expected);
}

#[tokio::test]
async fn create_xml_repo_sets_up_teams_members_and_the_staging_hook() {
    let s = setup().await;
    let deploy = s.api.add_team("mitx", "mitx-content-deployment", &[]);
    let staff = s.api.add_team("mitx", "8.01 Staff", &["ann", "bob"]);
    let job = s.trigger(json!({"action": "create_xml_repo", "course": "8.01r", "term": "2027_Spring", "team": "8.01 staff", "members": ["bob", "cat"]})).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let repo = "content-mit-801r-2027_Spring";
    assert_eq!(
        s.calls(),
        lines(&[
            &format!("GET /repos/mitx/{repo}"),
            "POST /orgs/mitx/repos",
            "GET /orgs/mitx/teams",
            &format!("PUT /teams/{deploy}/repos/mitx/{repo}"),
            "GET /orgs/mitx/teams",
            &format!("GET /teams/{staff}/members"),
            &format!("DELETE /teams/{staff}/memberships/ann"),
            &format!("PUT /teams/{staff}/memberships/cat"),
            "GET /orgs/mitx/teams",
            &format!("PUT /teams/{staff}/repos/mitx/{repo}"),
            &format!("POST /repos/mitx/{repo}/hooks"),
        ])
    );
    let output = &job["steps"][0]["output"];
    assert_eq!((output["members_added"].clone(), output["members_removed"].clone()), (json!(["cat"]), json!(["ann"])));
    let members = s.api.with(|state| state.teams.iter().find(|t| t.id == staff).unwrap().members.clone());
    assert_eq!(members.into_iter().collect::<Vec<_>>(), ["bob", "cat"]);
    let hooks = s.api.with(|state| state.hooks[&format!("mitx/{repo}")].clone());
    assert_eq!(hooks[0].1["url"], "https://staging.example/gitreload");

    // Without a team, the team is named after the repository and created.
    let job = s
        .trigger(json!({"action": "create_xml_repo", "course": "6.002x", "term": "2027_Spring", "members": ["dan"]}))
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let created =
        s.api.with(|state| state.teams.iter().find(|t| t.name == "content-mit-6002x-2027_Spring").cloned()).unwrap();
    assert_eq!((created.permission.as_str(), created.members.len()), ("push", 1));
}

#[tokio::test]
async fn rerun_xml_and_put_team() {
    let s = setup().await;
    let repo = "mitx/content-mit-801r-2027_Spring";
    s.api.add_repo(repo);
    for n in 0..3 {
        s.api.add_hook(repo, &format!("https://hook/{n}"));
    }
    let job = s.trigger(json!({"action": "rerun_xml", "course": "8.01r", "term": "2027_Spring"})).await;
    assert_eq!(job["summary"], "Successfully removed 3 hooks from course's repository.");
    let calls = s.calls();
    assert_eq!(
        &calls[..3],
        [
            "GET /repos/mitx/content-mit-801r-2027_Spring",
            "GET /repos/mitx/content-mit-801r-2027_Spring/hooks",
            "GET /repos/mitx/content-mit-801r-2027_Spring/hooks?page=2"
        ]
    );
    assert_eq!(calls.iter().filter(|c| c.starts_with("DELETE ")).count(), 3);

    // A team that does not exist is created with the asked permission, then filled.
    s.api.add_team("mitx", "other", &[]);
    let job = s
        .trigger(json!({"action": "put_team", "org": "mitx", "team": "Readers", "read_only": true, "members": ["eve"]}))
        .await;
    assert_eq!(job["summary"], "Team successfully modified/created.");
    let calls = s.calls();
    assert_eq!(calls[..2], ["GET /orgs/mitx/teams", "POST /orgs/mitx/teams"]);
    let readers = s.api.with(|state| state.teams.iter().find(|t| t.name == "Readers").cloned()).unwrap();
    assert_eq!(readers.permission, "pull");
    assert_eq!(
        calls[2..],
        [format!("GET /teams/{}/members", readers.id), format!("PUT /teams/{}/memberships/eve", readers.id)]
    );
}

#[tokio::test]
async fn errors_are_told_apart_and_stop_the_action() {
    let s = setup().await;
    // The repository exists already.
    s.api.add_repo("mitx/content-mit-801r-2027_Spring");
    let job = s.trigger(json!({"action": "create_xml_repo", "course": "8.01r", "term": "2027_Spring"})).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(
        job["summary"],
        "step 1 (provision) failed: create_xml_repo failed: This repository already exists: mitx/content-mit-801r-2027_Spring"
    );
    assert_eq!(job["steps"][0]["output"]["error"], "repo_exists");
    assert_eq!(s.calls(), ["GET /repos/mitx/content-mit-801r-2027_Spring"], "nothing after the check");

    // The repository to change does not exist.
    let job = s.trigger(json!({"action": "rerun_xml", "course": "9.99", "term": "2027_Spring"})).await;
    assert_eq!(job["steps"][0]["output"]["error"], "repo_missing");
    assert!(
        job["summary"]
            .as_str()
            .unwrap()
            .ends_with("Repo does not exist. Cannot remove hooks: mitx/content-mit-999-2027_Spring")
    );
    s.calls();

    // The deploy team is missing from an organisation that has teams.
    s.api.add_team(STUDIO, "someone-else", &[]);
    let job = s.trigger(json!({"action": "create_export_repo", "course": "1.00", "term": "2027_Spring"})).await;
    assert_eq!(job["steps"][0]["output"]["error"], "team_not_found");
    assert!(
        job["summary"].as_str().unwrap().ends_with("mitx-studio-export not in list of teams for MITx-Studio2LMS"),
        "{job:#}"
    );
    s.calls();

    // An organisation without teams, and an unexpected status with its body.
    let job = s.trigger(json!({"action": "put_team", "org": "empty-org", "team": "x"})).await;
    assert!(job["summary"].as_str().unwrap().ends_with("No teams found in org. This shouldn't happen"), "{job:#}");
    s.api.fail("POST", "/orgs/mitx/repos", 500, json!({"message": "Server Error"}));
    let job = s.trigger(json!({"action": "create_xml_repo", "course": "7.00", "term": "2027_Spring"})).await;
    assert_eq!(job["steps"][0]["output"]["error"], "unexpected_status");
    assert!(job["summary"].as_str().unwrap().ends_with("{\"message\":\"Server Error\"}"), "{job:#}");
    s.calls();

    // A request missing what its action needs never reaches the API.
    let job = s.trigger(json!({"action": "release_xml", "course": "8.01r"})).await;
    assert_eq!(job["state"], "failed");
    assert!(job["summary"].as_str().unwrap().contains("`term` is required for `release_xml`"), "{job:#}");
    let job = s.trigger(json!({"action": "drop_everything"})).await;
    assert!(job["summary"].as_str().unwrap().contains("unknown action `drop_everything`"), "{job:#}");
    assert!(s.calls().is_empty());
}

/// Issue 19: parameters typed as text (`gitauto trigger provision read_only=true
/// members=ann`) reach the plugin; before, one of them failing to parse dropped them all
/// and the user was told "`action` is required".
#[tokio::test]
async fn parameters_given_as_text_all_reach_the_plugin() {
    let s = setup().await;
    s.api.add_team("mitx", "other", &[]);
    let job = s
        .trigger(json!({"action": "put_team", "org": "mitx", "team": "Readers", "read_only": "true", "members": "ann"}))
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let readers = s.api.with(|state| state.teams.iter().find(|t| t.name == "Readers").cloned()).unwrap();
    assert_eq!(readers.permission, "pull");
    assert_eq!(readers.members.into_iter().collect::<Vec<_>>(), ["ann"]);
    s.calls();

    // A comma-separated list is a list; `false` as text is false.
    let job = s
        .trigger(json!({"action": "put_team", "org": "mitx", "team": "Writers", "read_only": "false", "members": "bob, cat"}))
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let writers = s.api.with(|state| state.teams.iter().find(|t| t.name == "Writers").cloned()).unwrap();
    assert_eq!(writers.permission, "push");
    assert_eq!(writers.members.into_iter().collect::<Vec<_>>(), ["bob", "cat"]);
    s.calls();
}

/// Issue 19: a parameter the plugin cannot use is an invalid-settings error naming it,
/// and nothing is called.
#[tokio::test]
async fn a_parameter_that_does_not_parse_is_named_in_the_error() {
    let s = setup().await;
    let job = s.trigger(json!({"action": "put_team", "org": "mitx", "team": "Readers", "read_only": "yes"})).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    assert!(summary.contains("invalid settings"), "{job:#}");
    assert!(summary.contains("`read_only`: expected a boolean, got \"yes\""), "{job:#}");
    let job = s.trigger(json!({"action": "put_team", "org": "mitx", "team": "Readers", "members": {"ann": 1}})).await;
    let summary = job["summary"].as_str().unwrap();
    assert!(summary.contains("`members`: expected a list"), "{job:#}");
    assert!(s.calls().is_empty());
}
