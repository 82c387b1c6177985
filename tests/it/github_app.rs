//! GitHub App authentication through the real daemon (issue 21): a source's `app` signs
//! JWTs that the fake API verifies with the app's public key, installation tokens are
//! minted for the event's repository and the permissions a `github-app` host credential
//! names, reused while fresh and minted again within five minutes of expiry, dropped
//! when an installation loses the repository, sent to granted hosts (HTTP and a job's git
//! checkout) and never seen by the plugin.

use gitauto_tests::fake_api::FakeApi;
use gitauto_tests::fake_api::app::generate_key;
use gitauto_tests::git_http::GitHttp;
use gitauto_tests::receiver::Receiver;
use gitauto_tests::{SECRET, TestDaemon, TestGit, push_payload, step};
use serde_json::{Value, json};
use std::time::Duration;

const APP_ID: u64 = 31337;
const INSTALLATION: u64 = 4711;

/// A fake GitHub API that knows the app (installed on acme/widgets and acme/gears), and
/// the key it signs with.
struct World {
    root: tempfile::TempDir,
    api: FakeApi,
    key: std::path::PathBuf,
}

impl World {
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let (key, public) = generate_key(root.path());
        let api = FakeApi::start().await;
        api.add_app(APP_ID, public, INSTALLATION, &["acme/widgets", "acme/gears"]);
        api.add_repo("acme/widgets");
        api.add_repo("acme/gears");
        Self { root, api, key }
    }

    /// `[sources.github]` as the app, its API at the fake.
    fn source(&self) -> String {
        format!(
            "[sources.github]\nforge = \"github\"\nsecret = \"{SECRET}\"\napp = {{ id = {APP_ID}, private_key = \"file:{}\" }}\napi = {{ url = \"{}\" }}\n",
            self.key.display(),
            self.api.url
        )
    }

    /// A daemon with the app source, a probe granted `hosts` (TOML items) and `rules`.
    async fn daemon(&self, source: &str, hosts: &str, rules: &str) -> TestDaemon {
        TestDaemon::start(&format!(
            "{source}\n[plugins.probe]\nwasm = \"{probe}\"\ngrants = {{ hosts = [{hosts}] }}\n\n{rules}",
            probe = env!("GITAUTO_GUEST_PROBE"),
        ))
        .await
    }

    /// A granted-hosts entry giving the fake API's host a github-app credential with
    /// `permissions` (TOML).
    fn api_host(&self, permissions: &str) -> String {
        app_host(self.api.url.trim_start_matches("http://"), permissions)
    }
}

/// A granted-hosts entry: `host` with a github-app credential with `permissions` (TOML).
fn app_host(host: &str, permissions: &str) -> String {
    format!("{{ host = \"{host}\", credential = \"github-app\", permissions = {permissions} }}")
}

/// A push to acme/`repo` delivered through installation `installation` (when given).
fn push(repo: &str, installation: Option<u64>, clone_url: &str, after: &str) -> Vec<u8> {
    let zero = "0".repeat(40);
    let body = push_payload("acme", repo, "refs/heads/main", &zero, after, clone_url);
    let mut payload: Value = serde_json::from_slice(&body).unwrap();
    if let Some(id) = installation {
        payload["installation"] = json!({"id": id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDcxMQ=="});
    }
    serde_json::to_vec(&payload).unwrap()
}

/// The `Authorization` headers the fake saw on `GET path`, in order.
fn authorizations(api: &FakeApi, path: &str) -> Vec<Option<String>> {
    api.take().into_iter().filter(|r| r.method == "GET" && r.path == path).map(|r| r.authorization).collect()
}

const HTTP_RULES: &str = r#"
[[rules]]
name = "call"
on = "push"

[[rules.steps]]
name = "own"
plugin = "probe"
with = { op = "http", url = "API/repos/acme/widgets", headers = [["Authorization", "Bearer forged-by-the-plugin"]] }

[[rules.steps]]
name = "other"
plugin = "probe"
with = { op = "http", url = "API/repos/acme/gears" }

[[rules.steps]]
name = "env"
plugin = "probe"
with = { op = "env" }

[[rules.steps]]
name = "archive"
plugin = "probe"
with = { op = "http", url = "API/repos/acme/widgets/tarball/main" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_minted_with_a_verified_jwt_for_the_events_repository_and_reused_while_fresh() {
    let world = World::new().await;
    let hosts = world.api_host(r#"{ metadata = "read", issues = "write" }"#);
    // GitHub sends archives to another origin (codeload): a server the plugin may reach.
    let codeload = Receiver::start().await;
    world.api.with(|s| s.app.codeload = Some(codeload.url.clone()));
    let hosts = format!("{hosts}, \"{}\"", codeload.host());
    let daemon = world.daemon(&world.source(), &hosts, &HTTP_RULES.replace("API", &world.api.url)).await;
    let widgets = "/repos/acme/widgets";

    // A token that expires within five minutes is never used again: each of the job's
    // three calls mints its own.
    world.api.set_token_lifetime(Duration::from_secs(240));
    for round in 1..=2 {
        let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"a".repeat(40))).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        assert_eq!(step(&job, "own")["output"]["status"], 200, "{job:#}");
        // The token is for acme/widgets alone: GitHub answers 404 for another repository.
        assert_eq!(step(&job, "other")["output"]["status"], 404, "{job:#}");
        let minted = world.api.minted();
        assert_eq!(minted.len(), 3 * round, "one token per call while they are about to expire");
        for token in &minted {
            assert_eq!(token.installation, INSTALLATION);
            assert_eq!(token.repositories, vec!["widgets".to_owned()]);
            assert_eq!(token.permissions, json!({"issues": "write", "metadata": "read"}));
        }
        // The host's token replaced the plugin's forged header.
        let first = &minted[3 * round - 3].token;
        assert_eq!(authorizations(&world.api, widgets), vec![Some(format!("Bearer {first}"))]);
    }

    // An hour's token is minted once and used by every call of this job and the next.
    world.api.set_token_lifetime(Duration::from_secs(3600));
    for _ in 0..2 {
        let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"b".repeat(40))).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        assert_eq!(world.api.minted().len(), 7);
        assert_eq!(authorizations(&world.api, widgets), vec![Some("Bearer ghs_fake7".to_owned())]);
    }
    assert!(world.api.with(|s| s.app.refused.is_empty()), "every JWT the host sent verified");

    // The installation loses the repository: its tokens are dropped, the next job mints.
    let removed = json!({
        "action": "removed", "installation": {"id": INSTALLATION, "account": {"login": "acme"}},
        "repository_selection": "selected", "repositories_added": [],
        "repositories_removed": [{"id": 2, "name": "gears", "full_name": "acme/gears", "private": true}],
        "sender": {"login": "octocat"}
    });
    let (status, answer) =
        daemon.post_github("github", "installation_repositories", removed.to_string().as_bytes(), SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"c".repeat(40))).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(world.api.minted().len(), 8, "the removal dropped the cached token");

    // GitHub stops taking the kept token: the plugin sees the 401, and the next request
    // is sent with a new token rather than the refused one.
    world.api.revoke_tokens();
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"d".repeat(40))).await;
    assert_eq!(step(&job, "own")["output"]["status"], 401, "{job:#}");
    assert_eq!(world.api.minted().len(), 9, "the next call minted again");
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"e".repeat(40))).await;
    assert_eq!(step(&job, "own")["output"]["status"], 200, "{job:#}");
    assert_eq!(world.api.minted().len(), 9);

    // Neither the plugin's environment, its outputs nor the job's record and log hold a token.
    let id = job["id"].as_i64().map_or_else(|| job["id"].as_str().unwrap().to_owned(), |id| id.to_string());
    let log = daemon.get(&format!("/api/jobs/{id}/log")).await.1;
    for text in [job.to_string(), log.to_string()] {
        assert!(!text.contains("ghs_fake"), "a token leaked: {text}");
    }
    assert_eq!(step(&job, "env")["output"], json!({"vars": [], "args": []}));
    // The token went with the archive request to GitHub, and not on to the other origin.
    assert_eq!(step(&job, "archive")["output"]["status"], 200, "{job:#}");
    let archives = codeload.requests();
    assert!(!archives.is_empty());
    for request in archives {
        assert_eq!(request.path, "/acme/widgets/legacy.tar.gz/main");
        assert_eq!(request.header("authorization"), None, "{request:?}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_without_an_installation_looks_it_up_with_the_jwt_once() {
    let world = World::new().await;
    let hosts = world.api_host(r#"{ contents = "read" }"#);
    let daemon = world.daemon(&world.source(), &hosts, &HTTP_RULES.replace("API", &world.api.url)).await;
    for _ in 0..2 {
        let job = daemon.run_github("push", &push("widgets", None, "", &"d".repeat(40))).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
    }
    let lines: Vec<String> =
        world.api.take().iter().filter(|r| r.path.contains("installation")).map(|r| r.line()).collect();
    assert_eq!(
        lines,
        vec!["GET /repos/acme/widgets/installation", &format!("POST /app/installations/{INSTALLATION}/access_tokens")]
    );
    assert_eq!(world.api.minted()[0].permissions, json!({"contents": "read"}));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_app_credential_on_a_source_without_an_app_is_a_clear_step_error() {
    let world = World::new().await;
    let hosts = world.api_host(r#"{ contents = "read" }"#);
    // The rule may match events of a source that has an app (so the config loads), and
    // this one comes through the source that has none.
    let source = format!(
        "[sources.github]\nforge = \"github\"\nsecret = \"{SECRET}\"\n{}",
        world.source().replace("[sources.github]", "[sources.apps]")
    );
    let daemon = world.daemon(&source, &hosts, &HTTP_RULES.replace("API", &world.api.url)).await;
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"e".repeat(40))).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = step(&job, "own")["summary"].as_str().unwrap().to_owned();
    assert!(summary.contains("source \"github\" has no `app`"), "{summary}");
    assert!(world.api.take().iter().all(|r| r.path != "/repos/acme/widgets"), "nothing was sent unauthorised");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_over_https_git_sends_the_app_token_as_github_wants_it() {
    let world = World::new().await;
    let repo = TestGit::new(world.root.path(), "widgets");
    let head = repo.head();
    let server = GitHttp::start(&world.root.path().join("origin")).await;
    let hosts = app_host(&server.host, r#"{ contents = "read" }"#);
    let rules = r#"
[[rules]]
name = "look"
on = "push"
checkout = true
steps = [{ name = "look", plugin = "probe", with = { op = "checkout" } }]
"#;
    let daemon = world.daemon(&world.source(), &hosts, rules).await;
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), &server.url("widgets.git"), &head)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "look")["output"]["head"], head.as_str());
    let minted = world.api.minted();
    assert_eq!(minted.len(), 1);
    assert_eq!(
        (minted[0].repositories.clone(), minted[0].permissions.clone()),
        (vec!["widgets".to_owned()], json!({"contents": "read"}))
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", minted[0].token));
    let requests = server.requests();
    assert!(!requests.is_empty());
    for request in requests {
        assert_eq!(request.authorization.as_deref(), Some(format!("Basic {basic}").as_str()), "{request:?}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_calls_for_an_app_source_use_a_minted_token_and_mint_again_after_a_401() {
    use gitauto::forge_api::{ApiTarget, ForgeApis};
    let world = World::new().await;
    let config = gitauto::config::Config::parse(&world.root.path().join("gitauto.toml"), &world.source()).unwrap();
    let source = config.source("github").unwrap();
    let apis = ForgeApis::new().unwrap();
    let target = ApiTarget {
        repo: "acme/widgets".into(),
        installation: Some(INSTALLATION),
        permissions: &[("statuses", "write")],
    };
    let get = || apis.call(source, &target, reqwest::Method::GET, "/repos/acme/widgets", None);
    assert_eq!(get().await.unwrap().body["full_name"], "acme/widgets");
    assert_eq!(get().await.unwrap().status, 200);
    assert_eq!(world.api.minted().len(), 1, "the second call reused the token");
    assert_eq!(world.api.minted()[0].permissions, json!({"statuses": "write"}));
    // GitHub stops accepting the cached token: the call is made again with a new one.
    world.api.revoke_tokens();
    world.api.take();
    assert_eq!(get().await.unwrap().status, 200);
    let seen: Vec<(String, Option<String>)> =
        world.api.take().into_iter().map(|r| (r.line(), r.authorization)).collect();
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    assert_eq!(seen[0], ("GET /repos/acme/widgets".to_owned(), bearer("ghs_fake1")));
    assert_eq!(seen[1].0, format!("POST /app/installations/{INSTALLATION}/access_tokens"));
    assert_eq!(seen[2], ("GET /repos/acme/widgets".to_owned(), bearer("ghs_fake2")));
    assert_eq!(seen.len(), 3);
    // A repository the installation does not have is GitHub's refusal, told as such.
    let other = ApiTarget { repo: "acme/elsewhere".into(), ..target.clone() };
    let err = apis.call(source, &other, reqwest::Method::GET, "/repos/acme/elsewhere", None).await.unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert!(err.to_string().contains("not accessible to the parent installation"), "{err}");
    // A delivery pairs acme/widgets with another account's installation, which has a
    // `widgets` of its own (issue 21 review): GitHub would mint for victim/widgets; the
    // host does not use that token.
    world.api.add_installation(777, &["victim/widgets"]);
    world.api.take();
    let forged = ApiTarget { installation: Some(777), ..target.clone() };
    let err = apis.call(source, &forged, reqwest::Method::GET, "/repos/acme/widgets", None).await.unwrap_err();
    assert!(err.to_string().contains("not for the event's repository acme/widgets"), "{err}");
    let lines: Vec<String> = world.api.take().iter().map(|r| r.line()).collect();
    assert_eq!(lines, ["POST /app/installations/777/access_tokens"], "the token was not used");
}

#[tokio::test(flavor = "multi_thread")]
async fn repositories_added_to_an_installation_each_start_a_job_about_that_repository() {
    let world = World::new().await;
    let rules = r#"
[[rules]]
name = "welcome"
on = "installation_repositories.added"
steps = [{ name = "look", plugin = "probe", with = { op = "sleep", ms = 0 } }]
"#;
    let daemon = world.daemon(&world.source(), "\"example.com\"", rules).await;
    let added = json!({
        "action": "added", "installation": {"id": INSTALLATION, "account": {"login": "acme", "html_url": "https://github.com/acme"}},
        "repository_selection": "selected", "repositories_removed": [],
        "repositories_added": [
            {"id": 1, "name": "widgets", "full_name": "acme/widgets", "private": false},
            {"id": 2, "name": "gears", "full_name": "acme/gears", "private": true}
        ],
        "sender": {"login": "octocat"}
    });
    let (status, answer) =
        daemon.post_github("github", "installation_repositories", added.to_string().as_bytes(), SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let jobs = answer["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2, "{answer}");
    let mut repos = Vec::new();
    for id in jobs {
        let job = daemon.finished_job(id.as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        repos.push(job["event"]["repository"]["full_name"].as_str().unwrap_or_else(|| panic!("{job:#}")).to_owned());
        assert_eq!(job["event"]["installation"], INSTALLATION, "{job:#}");
    }
    repos.sort();
    assert_eq!(repos, ["acme/gears", "acme/widgets"]);
    // Nothing was minted: the rule's plugin has no github-app credential.
    assert!(world.api.minted().is_empty());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_plugin_finds_no_token_in_its_settings_environment_answers_or_memory() {
    let world = World::new().await;
    let codeload = Receiver::start().await;
    world.api.with(|s| s.app.codeload = Some(codeload.url.clone()));
    let api = &world.api.url;
    let hosts = format!("{}, \"{}\"", world.api_host(r#"{ contents = "read" }"#), codeload.host());
    let urls = |extra: &str| {
        format!(
            r#"["{api}/repos/acme/widgets", "{api}/repos/acme/gears", "{api}/repos/acme/widgets/tarball/main"{extra}]"#
        )
    };
    let config = format!(
        r#"{source}
[plugins.hunt]
wasm = "{dir}/hostile_app_token_hunt.wasm"
grants = {{ hosts = [{hosts}] }}

[[rules]]
name = "hunt"
on = "push"
steps = [{{ name = "hunt", plugin = "hunt", with = {{ urls = {plain} }} }}]

[[rules]]
name = "control"
on = "push"
branch = "control"
steps = [{{ name = "hunt", plugin = "hunt", with = {{ urls = {reflected} }} }}]
"#,
        source = world.source(),
        dir = env!("GITAUTO_HOSTILE_DIR"),
        plain = urls(""),
        reflected = urls(&format!(r#", "{api}/reflect-authorization""#)),
    );
    let daemon = TestDaemon::start(&config).await;
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"f".repeat(40))).await;
    assert_eq!(
        step(&job, "hunt")["summary"],
        "no token in settings, environment, event, 3 answers or linear memory",
        "{job:#}"
    );
    // A token was in play: the host sent it with the plugin's requests to the API.
    let sent: Vec<Option<String>> =
        world.api.take().into_iter().filter(|r| r.path.starts_with("/repos/")).map(|r| r.authorization).collect();
    assert_eq!(sent, vec![Some("Bearer ghs_fake1".to_owned()); 3]);
    assert!(codeload.requests().iter().all(|request| request.header("authorization").is_none()));

    // The control: a server that reflects the credential hands it to the plugin, and the
    // hunt finds it (so the hunt above could have).
    let mut control: Value = serde_json::from_slice(&push("widgets", Some(INSTALLATION), "", &"f".repeat(40))).unwrap();
    control["ref"] = "refs/heads/control".into();
    let (status, answer) = daemon.post_github("github", "push", control.to_string().as_bytes(), SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let ids: Vec<String> =
        answer["jobs"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    let mut summaries = Vec::new();
    for id in ids {
        let job = daemon.finished_job(&id).await;
        summaries.push(step(&job, "hunt")["summary"].as_str().unwrap().to_owned());
    }
    assert!(
        summaries
            .iter()
            .any(|summary| summary
                .starts_with(&format!("ESCAPED: a token in the answer from {api}/reflect-authorization"))),
        "{summaries:?}"
    );
    daemon.stop().await;
}

/// Security review of issue 21: a `github-app` credential granted for a host that is not
/// the job's GitHub (the source's API, the event's repository's git host) sends no token
/// there, over HTTP nor git: a wildcard or a second host in a plugin's grant must not
/// carry the app's tokens to a server that only claims to be GitHub.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_token_goes_only_to_the_jobs_github_and_never_to_another_granted_host() {
    let world = World::new().await;
    let repo = TestGit::new(world.root.path(), "widgets");
    let head = repo.head();
    let origin = GitHttp::start(&world.root.path().join("origin")).await;
    // The same repositories on another port: a git host that is not the event's.
    let mirror = GitHttp::start(&world.root.path().join("origin")).await;
    let elsewhere = Receiver::start().await;
    let permissions = r#"{ contents = "read" }"#;
    let hosts = [
        world.api_host(permissions),
        app_host(&origin.host, permissions),
        app_host(&mirror.host, permissions),
        app_host(elsewhere.host(), permissions),
    ]
    .join(", ");
    let rules = format!(
        r#"
[[rules]]
name = "http"
on = "push"

[[rules.steps]]
name = "api"
plugin = "probe"
with = {{ op = "http", url = "{api}/repos/acme/widgets" }}

[[rules.steps]]
name = "elsewhere"
plugin = "probe"
with = {{ op = "http", url = "{elsewhere}/repos/acme/widgets" }}

[[rules]]
name = "git"
on = "push"
checkout = true

[[rules.steps]]
name = "plant"
plugin = "probe"
with = {{ op = "write-file", path = "{{{{ job.checkout }}}}/.git/config", content = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n[remote \"mirror\"]\n\turl = {mirror}\n\tfetch = +refs/heads/*:refs/remotes/mirror/*\n" }}

[[rules.steps]]
name = "mirror"
plugin = "probe"
with = {{ op = "git-fetch", remote = "mirror" }}
"#,
        api = world.api.url,
        elsewhere = elsewhere.url,
        mirror = mirror.url("widgets.git"),
    );
    let daemon = world.daemon(&world.source(), &hosts, &rules).await;
    let payload = push("widgets", Some(INSTALLATION), &origin.url("widgets.git"), &head);
    let (status, answer) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{answer}");
    let mut steps = serde_json::Map::new();
    for id in answer["jobs"].as_array().unwrap() {
        let job = daemon.finished_job(id.as_str().unwrap()).await;
        for step in job["steps"].as_array().unwrap() {
            steps.insert(step["name"].as_str().unwrap().to_owned(), step.clone());
        }
    }
    let job = json!({"steps": steps.into_iter().map(|(_, step)| step).collect::<Vec<_>>()});
    // The job's own GitHub gets its tokens: the checkout from the event's git host, the API.
    assert!(!origin.requests().is_empty(), "{job:#}");
    assert!(origin.requests().iter().all(|request| request.authorization.is_some()), "{job:#}");
    assert_eq!(step(&job, "api")["output"]["status"], 200, "{job:#}");
    // Anywhere else, the step is refused and nothing is sent.
    for (name, host) in [("elsewhere", elsewhere.host().to_owned()), ("mirror", mirror.host.clone())] {
        let refused = step(&job, name);
        assert_eq!(refused["status"], "failure", "{refused:#}");
        let summary = refused["summary"].as_str().unwrap();
        assert!(summary.contains(&format!("{host} is not source \"github\"'s GitHub")), "{summary}");
    }
    assert!(elsewhere.requests().is_empty(), "the other host got a request");
    assert!(mirror.requests().is_empty(), "the other git host got a request");
    assert_eq!(step(&job, "plant")["status"], "success", "{job:#}");
    daemon.stop().await;
}

/// Security review of issue 21: `[compat.gitreload] allow_unsigned_from` takes unsigned
/// hooks, whose repository, installation and clone URL nobody vouches for; on an App
/// source their jobs would mint the app's tokens for them. The config refuses it.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_gitreload_hooks_cannot_start_jobs_of_a_github_app_source() {
    let world = World::new().await;
    let text = |compat: &str| {
        format!(
            "{source}\n[plugins.probe]\nwasm = \"{probe}\"\n\n[compat.gitreload]\nsource = \"github\"\nrepodir = \
             \"repos\"\nupdate = \"probe\"\n{compat}\n",
            source = world.source(),
            probe = env!("GITAUTO_GUEST_PROBE"),
        )
    };
    let path = world.root.path().join("gitauto.toml");
    gitauto::config::Config::parse(&path, &text("")).unwrap();
    let err = gitauto::config::Config::parse(&path, &text("allow_unsigned_from = [\"10.0.0.0/8\"]")).unwrap_err();
    assert!(err.to_string().contains("source `github` is a GitHub App, and `allow_unsigned_from`"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_share_one_mint_and_a_job_stops_minting_after_its_budget() {
    use gitauto::forge_api::{ApiTarget, ForgeApis, MAX_JOB_MINTS};
    let world = World::new().await;
    let config = gitauto::config::Config::parse(&world.root.path().join("gitauto.toml"), &world.source()).unwrap();
    let source = config.source("github").unwrap();
    let apis = ForgeApis::new().unwrap();
    let target = ApiTarget {
        repo: "acme/widgets".into(),
        installation: Some(INSTALLATION),
        permissions: &[("checks", "write")],
    };
    // Eight calls at once find no token: one mints, the others wait for it.
    let calls = (0..8).map(|_| apis.call(source, &target, reqwest::Method::GET, "/repos/acme/widgets", None));
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.unwrap().status, 200);
    }
    assert_eq!(world.api.minted().len(), 1, "concurrent calls shared one mint");

    // Tokens that are about to expire are minted again for every call (as a plugin that
    // revokes each token it is given forces): a job gets MAX_JOB_MINTS, then refusals.
    world.api.set_token_lifetime(Duration::from_secs(240));
    let steps = MAX_JOB_MINTS + 2;
    let mut rules = String::from("[[rules]]\nname = \"mint\"\non = \"push\"\n");
    for n in 0..steps {
        rules.push_str(&format!(
            "\n[[rules.steps]]\nname = \"call{n}\"\nplugin = \"probe\"\nwith = {{ op = \"http\", url = \"{}/repos/acme/widgets\" }}\n",
            world.api.url
        ));
    }
    let daemon = world.daemon(&world.source(), &world.api_host(r#"{ metadata = "read" }"#), &rules).await;
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"f".repeat(40))).await;
    for n in 0..MAX_JOB_MINTS {
        assert_eq!(step(&job, &format!("call{n}"))["output"]["status"], 200, "{job:#}");
    }
    let refused = step(&job, &format!("call{MAX_JOB_MINTS}"));
    assert!(refused.to_string().contains("no more are minted"), "{job:#}");
    assert_eq!(world.api.minted().len() as u32, 1 + MAX_JOB_MINTS, "the job's budget bounds the mints");
    // The next job has a budget of its own.
    let job = daemon.run_github("push", &push("widgets", Some(INSTALLATION), "", &"9".repeat(40))).await;
    assert_eq!(step(&job, "call0")["output"]["status"], 200, "{job:#}");
    daemon.stop().await;
}
