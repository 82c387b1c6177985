//! `gitauto hooks install|list|remove` (issue 22) run in-process, as `main` runs them,
//! against the fake hook API of each forge: installing twice leaves one hook with the URL, the events the
//! rules need, the source's secret and JSON; `list` shows events and the last delivery's
//! status; `remove` deletes it; refusals and missing settings are clear errors; no token
//! or secret is ever printed.

use gitauto::hooks::command::{Action, Env, Request, run};
use gitauto::secret::Secret;
use gitauto_tests::fake_api::FakeApi;
use gitauto_tests::fake_api::app::generate_key;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const HOOK_SECRET: &str = "hook-secret-5a1t";
const API_TOKEN: &str = "api-t0ken-9f2e";
const PUBLIC: &str = "https://ci.example.com";
const OTHER_URL: &str = "https://elsewhere.example.com/hook";

/// What one command printed.
struct Run {
    ok: bool,
    stdout: String,
    /// Notes, warnings and, when it failed, `error: ` and the cause chain, as `main`
    /// prints them.
    stderr: String,
}

impl Run {
    /// Both streams, for assertions about what was printed anywhere.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `gitauto hooks ARGS --config CONFIG` in this process, as `main` does, with `env`
/// as the hooks variables (unset otherwise).
async fn gitauto(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let (command, flags) = args.split_first().unwrap();
    let flag = |name: &str| flags.iter().position(|f| *f == name).map(|at| flags[at + 1].to_owned());
    let (source, repo, url) = (flag("--source").unwrap(), flag("--repo").unwrap(), flag("--url"));
    let action = match *command {
        "install" => Action::Install { url, force: flags.contains(&"--force") },
        "list" => Action::List,
        "remove" => Action::Remove { url },
        other => panic!("no hooks command {other}"),
    };
    let var = |name| env.iter().find(|(n, _)| *n == name).map(|(_, value)| (*value).to_owned());
    let env = Env { token: var("GITAUTO_HOOKS_TOKEN").map(Secret::new), api: var("GITAUTO_HOOKS_API") };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let config = gitauto::config::Config::load(config).unwrap();
    let result = run(&config, &Request { source, repo, action }, env, &mut stdout, &mut stderr).await;
    let mut run = Run {
        ok: result.is_ok(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    if let Err(err) = result {
        run.stderr.push_str(&format!("error: {err:#}\n"));
    }
    // Whatever happened, neither credential is shown.
    for secret in [HOOK_SECRET, API_TOKEN] {
        assert!(!run.all().contains(secret), "printed a secret:\n{}", run.all());
    }
    run
}

/// One forge's case: its source table, the repository, what the fake must see.
struct Case {
    forge: &'static str,
    /// The API root under the fake.
    api_path: &'static str,
    repo: &'static str,
    /// The key the fake keeps the repository's hooks under.
    key: &'static str,
    /// The credential header's value the fake expects.
    credential: String,
    /// The hook events the rules below need, as the forge's hook API names them.
    events: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    // Gitea, Forgejo and Gogs: one API under `/api/v1`; Gogs knows fewer events.
    let gitea = |forge, events| Case {
        forge,
        api_path: "/api/v1",
        repo: "acme/widgets",
        key: "acme/widgets",
        credential: format!("token {API_TOKEN}"),
        events,
    };
    // As Gitea shows them: `pull_request_only` is its `pull_request` switch alone.
    let gitea_events: &[&str] = &["push", "issue_comment", "pull_request", "pull_request_comment", "pull_request_sync"];
    vec![
        Case {
            forge: "github",
            api_path: "",
            repo: "acme/widgets",
            key: "acme/widgets",
            credential: format!("Bearer {API_TOKEN}"),
            events: &["push", "pull_request", "issue_comment", "pull_request_review_comment"],
        },
        Case {
            forge: "gitlab",
            api_path: "/api/v4",
            repo: "acme/tools/widgets",
            key: "acme/tools/widgets",
            credential: API_TOKEN.to_owned(),
            events: &["push_events", "merge_requests_events", "note_events"],
        },
        gitea("gitea", gitea_events),
        gitea("forgejo", gitea_events),
        gitea("gogs", &["push", "issue_comment", "pull_request"]),
        Case {
            forge: "bitbucket",
            api_path: "/2.0",
            repo: "acme/widgets",
            key: "acme/widgets",
            credential: format!("Bearer {API_TOKEN}"),
            // `pull_request.opened` only, and Bitbucket comments are not handled.
            events: &["repo:push", "pullrequest:created"],
        },
    ]
}

/// A config with source `src` on `forge` (API at `api`, or none), `[server] public_url`
/// when `public`, and rules: push and opened pull requests, comments, a manual rule, and
/// a release rule on another source, which must not count.
fn config(dir: &Path, forge: &str, api: Option<&str>, public: bool) -> PathBuf {
    let api = api.map(|url| format!("api = {{ url = \"{url}\", token = \"{API_TOKEN}\" }}\n")).unwrap_or_default();
    let public = if public { format!("public_url = \"{PUBLIC}\"\n") } else { String::new() };
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
{public}
[sources.src]
forge = "{forge}"
secret = "{HOOK_SECRET}"
{api}
[sources.other]
forge = "github"
secret = "other-secret"

[plugins.empty]
wasm = "{empty}"

[[rules]]
name = "build"
on = ["push", "pull_request.opened"]
steps = [{{ plugin = "empty" }}]

[[rules]]
name = "chat"
on = "comment"
source = "src"
steps = [{{ plugin = "empty" }}]

[[rules]]
name = "by-hand"
on = "manual"
steps = [{{ plugin = "empty" }}]

[[rules]]
name = "elsewhere"
on = "release"
source = "other"
steps = [{{ plugin = "empty" }}]
"#,
        data = dir.join("data").display(),
        empty = env!("GITAUTO_GUEST_EMPTY"),
    );
    let path = dir.join("gitauto.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The repository's hooks in the fake, as the forge keeps them.
fn stored(api: &FakeApi, key: &str) -> Vec<(u64, Value)> {
    api.with(|s| s.hooks.get(key).cloned().unwrap_or_default())
}

/// The hooks posting to gitauto.
fn ours(api: &FakeApi, key: &str) -> Vec<(u64, Value)> {
    stored(api, key).into_iter().filter(|(_, hook)| hook["url"] == format!("{PUBLIC}/hooks/src")).collect()
}

/// The events a stored hook has, as its forge's API names them.
fn events_of(forge: &str, hook: &Value) -> Vec<String> {
    if forge == "gitlab" {
        let flags = hook.as_object().unwrap().iter().filter(|(key, on)| key.ends_with("_events") && **on == true);
        return flags.map(|(key, _)| key.clone()).collect();
    }
    hook["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn install_twice_leaves_one_hook_with_the_rules_events_and_the_secret_then_list_and_remove_on_every_forge() {
    for case in cases() {
        let forge = case.forge;
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi::start().await;
        api.add_repo(case.key);
        api.add_hook(case.key, OTHER_URL);
        // Three hooks in all, two to a page: the hooks are read across pages.
        api.add_hook(case.key, &format!("{OTHER_URL}/2"));
        api.with(|s| s.hook_api.credential = Some(case.credential.clone()));
        let config = config(dir.path(), forge, Some(&format!("{}{}", api.url, case.api_path)), true);
        let install = ["install", "--source", "src", "--repo", case.repo];

        let first = gitauto(&config, &install, &[]).await;
        assert!(first.ok, "{forge}: {}", first.all());
        assert!(first.stdout.starts_with("created hook "), "{forge}: {}", first.stdout);
        if forge == "bitbucket" {
            let note = "note: rule \"chat\": `comment`: no repository hook sends these events";
            assert!(first.stderr.contains(note), "{}", first.stderr);
        }
        let second = gitauto(&config, &install, &[]).await;
        assert!(second.ok, "{forge}: {}", second.all());
        assert!(second.stdout.starts_with("updated hook "), "{forge}: {}", second.stdout);
        assert!(second.stdout.contains("secret:        ***"), "{forge}: {}", second.stdout);

        // One hook of ours, the other left alone; the second run updated, not created.
        assert_eq!(stored(&api, case.key).len(), 3, "{forge}: {:#?}", stored(&api, case.key));
        let hooks = ours(&api, case.key);
        assert_eq!(hooks.len(), 1, "{forge}");
        let hook = &hooks[0].1;
        let mut events = events_of(forge, hook);
        let mut expected: Vec<String> = case.events.iter().map(|e| (*e).to_owned()).collect();
        events.sort();
        expected.sort();
        assert_eq!(events, expected, "{forge}: {hook:#}");
        let requests = api.take();
        let writes: Vec<String> = requests.iter().filter(|r| r.method != "GET").map(|r| r.line()).collect();
        let collection = format!(
            "{}/{}/hooks",
            case.api_path,
            match forge {
                "gitlab" => format!("projects/{}", case.repo.replace('/', "%2F")),
                "bitbucket" => format!("repositories/{}", case.repo),
                _ => format!("repos/{}", case.repo),
            }
        );
        let id = match forge {
            "bitbucket" => format!("%7B8c5e1f0e-0000-4000-8000-{:012}%7D", hooks[0].0),
            _ => hooks[0].0.to_string(),
        };
        let update = if matches!(forge, "gitlab" | "bitbucket") { "PUT" } else { "PATCH" };
        assert_eq!(writes, [format!("POST {collection}"), format!("{update} {collection}/{id}")], "{forge}");
        let second_pages = requests.iter().filter(|r| r.method == "GET" && r.path.contains("page=2")).count();
        assert_eq!(second_pages, 1, "{forge}: the second run reads a second page (three hooks)");
        assert!(requests.iter().all(|r| r.authorization.as_deref() == Some(case.credential.as_str())), "{forge}");
        let sent = &requests.iter().find(|r| r.method == "POST").unwrap().body;
        match forge {
            "gitlab" => {
                assert_eq!(hook["token"], HOOK_SECRET);
                assert_eq!(hook["enable_ssl_verification"], true);
                assert_eq!(sent["tag_push_events"], false, "flags not wanted are sent as false");
            }
            "bitbucket" => {
                assert_eq!(hook["secret"], HOOK_SECRET);
                assert_eq!(hook["active"], true);
            }
            _ => {
                assert_eq!(hook["secret"], HOOK_SECRET, "{forge}");
                assert_eq!(hook["content_type"], "json", "{forge}");
                assert_eq!(hook["active"], true, "{forge}");
                match forge {
                    "github" => assert_eq!(sent["config"]["insecure_ssl"], "0"),
                    other => assert_eq!(hook["type"], other),
                }
            }
        }

        // The last delivery's status, where the forge reports it.
        api.with(|s| {
            let hook = s.hooks.get_mut(case.key).unwrap().iter_mut().find(|(id, _)| *id == hooks[0].0).unwrap();
            hook.1["last_response"] = json!({"code": 502, "status": "failed", "message": "Invalid HTTP Response: 502"});
            hook.1["alert_status"] = json!("temporarily_disabled");
            hook.1["disabled_until"] = json!("2026-11-28T10:00:00.000Z");
        });
        let list = gitauto(&config, &["list", "--source", "src", "--repo", case.repo], &[]).await;
        assert!(list.ok, "{forge}: {}", list.all());
        assert!(
            list.stdout.contains(&format!("hook {}", id.replace("%7B", "{").replace("%7D", "}"))),
            "{forge}: {}",
            list.stdout
        );
        // Another integration's hook: its host, not its path (issue 22, L5).
        assert!(list.stdout.contains("url:           https://elsewhere.example.com/***\n"), "{forge}: {}", list.stdout);
        assert!(list.stdout.contains(&format!("url:           {PUBLIC}/hooks/src")), "{forge}: {}", list.stdout);
        assert!(
            list.stdout.contains(&format!("events:        {}", case.events.join(", "))),
            "{forge}: {}",
            list.stdout
        );
        let last = match forge {
            "github" => "last delivery: 502 failed: Invalid HTTP Response: 502",
            "gitlab" => "last delivery: temporarily disabled after failures, until 2026-11-28T10:00:00.000Z",
            _ => "last delivery: not reported",
        };
        assert!(list.stdout.contains(last), "{forge}: {}", list.stdout);

        let remove = gitauto(&config, &["remove", "--source", "src", "--repo", case.repo], &[]).await;
        assert!(remove.ok, "{forge}: {}", remove.all());
        assert!(remove.stdout.contains("removed hook"), "{forge}: {}", remove.stdout);
        assert!(ours(&api, case.key).is_empty(), "{forge}");
        assert_eq!(stored(&api, case.key).len(), 2, "{forge}: the other hooks stay");
        let again = gitauto(&config, &["remove", "--source", "src", "--repo", case.repo], &[]).await;
        assert!(again.ok && again.stdout.contains("nothing removed"), "{forge}: {}", again.all());
    }
}

#[tokio::test]
async fn a_refused_token_names_the_call_and_the_forges_message() {
    let expected = [
        ("github", "", "acme/widgets", "GET {api}/repos/acme/widgets/hooks?per_page=100: 401: Bad credentials"),
        (
            "gitlab",
            "/api/v4",
            "acme/widgets",
            "GET {api}/projects/acme%2Fwidgets/hooks?per_page=100: 401: 401 Unauthorized",
        ),
        ("gitea", "/api/v1", "acme/widgets", "GET {api}/repos/acme/widgets/hooks?limit=50: 401: token is required"),
        (
            "bitbucket",
            "/2.0",
            "acme/widgets",
            "GET {api}/repositories/acme/widgets/hooks?pagelen=100: 401: Token is invalid, expired, or not supported",
        ),
    ];
    for (forge, api_path, repo, message) in expected {
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi::start().await;
        api.add_repo(repo);
        api.with(|s| s.hook_api.credential = Some("token some-other-token".into()));
        let root = format!("{}{api_path}", api.url);
        let config = config(dir.path(), forge, Some(&root), true);
        let run = gitauto(&config, &["install", "--source", "src", "--repo", repo], &[]).await;
        assert!(!run.ok, "{forge}");
        assert!(run.stderr.contains(&message.replace("{api}", &root)), "{forge}: {}", run.stderr);
        assert!(stored(&api, repo).is_empty(), "{forge}");
    }
}

#[tokio::test]
async fn missing_url_token_or_repository_say_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    let install = ["install", "--source", "src", "--repo", "acme/widgets"];

    let no_public_url = config(dir.path(), "gitea", Some(&format!("{}/api/v1", api.url)), false);
    let run = gitauto(&no_public_url, &install, &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("pass `--url https://.../hooks/src` or set `[server] public_url`"), "{}", run.stderr);
    // `--url` is enough, and `remove` takes it too.
    let url = "https://hooks.example.org/gitauto/hooks/src";
    let run = gitauto(&no_public_url, &[&install[..], &["--url", url]].concat(), &[]).await;
    assert!(run.ok, "{}", run.all());
    assert_eq!(stored(&api, "acme/widgets")[0].1["url"], url);
    let run =
        gitauto(&no_public_url, &["remove", "--source", "src", "--repo", "acme/widgets", "--url", url], &[]).await;
    assert!(run.ok && stored(&api, "acme/widgets").is_empty(), "{}", run.all());

    // No `api` table: the token (and, for Gitea, the API root) come from the environment.
    let no_api = config(dir.path(), "gitea", None, true);
    let run = gitauto(&no_api, &install, &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("source \"src\" has no API token: set `api = { token = ... }` in [sources.src] or the environment variable GITAUTO_HOOKS_TOKEN"), "{}", run.stderr);
    let run = gitauto(&no_api, &install, &[("GITAUTO_HOOKS_TOKEN", API_TOKEN)]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("GITAUTO_HOOKS_API"), "{}", run.stderr);
    let root = format!("{}/api/v1", api.url);
    let env = [("GITAUTO_HOOKS_TOKEN", API_TOKEN), ("GITAUTO_HOOKS_API", root.as_str())];
    let run = gitauto(&no_api, &install, &env).await;
    assert!(run.ok, "{}", run.all());
    let post = api.take().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.authorization.as_deref(), Some(format!("token {API_TOKEN}").as_str()));

    let run = gitauto(&no_api, &["list", "--source", "src", "--repo", "widgets"], &env).await;
    assert!(!run.ok && run.stderr.contains("--repo `widgets`: expected OWNER/NAME"), "{}", run.stderr);
    let run = gitauto(&no_api, &["list", "--source", "nope", "--repo", "acme/widgets"], &env).await;
    assert!(!run.ok && run.stderr.contains("no [sources.nope] in the config"), "{}", run.stderr);
}

#[tokio::test]
async fn a_github_app_source_mints_a_hooks_token_or_says_the_app_lacks_the_permission() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path());
    let api = FakeApi::start().await;
    api.add_app(31337, public, 4711, &["acme/widgets"]);
    api.add_repo("acme/widgets");
    let path = config(dir.path(), "github", None, true);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[sources.other]",
        &format!(
            "app = {{ id = 31337, private_key = \"file:{}\" }}\napi = {{ url = \"{}\" }}\n\n[sources.other]",
            key.display(),
            api.url
        ),
    );
    std::fs::write(&path, text).unwrap();
    // The app's own webhook delivers already: a repository hook only with --force
    // (issue 22, M4).
    let run = gitauto(&path, &["install", "--source", "src", "--repo", "acme/widgets"], &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("a repository hook would deliver each event a second time"), "{}", run.stderr);
    assert!(run.stderr.contains("pass --force to install anyway"), "{}", run.stderr);
    assert!(stored(&api, "acme/widgets").is_empty() && api.minted().is_empty());
    let install = ["install", "--source", "src", "--repo", "acme/widgets", "--force"];

    let run = gitauto(&path, &install, &[]).await;
    assert!(run.ok, "{}", run.all());
    let minted = api.minted();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].permissions, json!({"repository_hooks": "write"}));
    assert_eq!(ours(&api, "acme/widgets").len(), 1);

    // An app without the permission: GitHub refuses to mint such a token.
    api.fail(
        "POST",
        "/app/installations/4711/access_tokens",
        422,
        json!({"message": "The permissions requested are not granted to this installation."}),
    );
    let run = gitauto(&path, &install, &[]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "its installation tokens can manage webhooks only when the app has the `repository_hooks: write` permission"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("The permissions requested are not granted to this installation."), "{}", run.stderr);
}

/// The repository's hooks with `url`, in the fake.
fn posting_to(api: &FakeApi, key: &str, url: &str) -> Vec<Value> {
    stored(api, key).into_iter().map(|(_, hook)| hook).filter(|hook| hook["url"] == url).collect()
}

#[tokio::test]
async fn gitea_and_forgejo_hooks_are_asked_for_by_names_gitea_knows() {
    // Issue 22, M1: Gitea drops names it does not know (the review rows' three names) and
    // `pull_request` switches on every pull request event; the fake does as Gitea does.
    for forge in ["gitea", "forgejo"] {
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi::start().await;
        api.add_repo("acme/widgets");
        let path = config(dir.path(), forge, Some(&format!("{}/api/v1", api.url)), true);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n[[rules]]\nname = \"reviewed\"\non = \"review\"\nsteps = [{ plugin = \"empty\" }]\n");
        std::fs::write(&path, text).unwrap();
        let run = gitauto(&path, &["install", "--source", "src", "--repo", "acme/widgets"], &[]).await;
        assert!(run.ok, "{forge}: {}", run.all());
        let hooks = posting_to(&api, "acme/widgets", &format!("{PUBLIC}/hooks/src"));
        assert_eq!(
            hooks[0]["events"],
            json!([
                "push",
                "issue_comment",
                "pull_request",
                "pull_request_comment",
                "pull_request_review",
                "pull_request_sync"
            ]),
            "{forge}"
        );
        let sent = api.take().into_iter().find(|r| r.method == "POST").unwrap().body;
        assert!(sent["events"].as_array().unwrap().contains(&json!("pull_request_only")), "{forge}: {sent}");
    }
}

#[tokio::test]
async fn a_hook_list_longer_than_the_pages_read_is_an_error_not_a_partial_list() {
    // Issue 22, L3: 101 hooks, two to a page, are 51 pages; fifty are read.
    for (forge, api_path) in [("github", ""), ("gitea", "/api/v1")] {
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi::start().await;
        api.add_repo("acme/widgets");
        for n in 0..101 {
            api.add_hook("acme/widgets", &format!("{OTHER_URL}/{n}"));
        }
        let config = config(dir.path(), forge, Some(&format!("{}{api_path}", api.url)), true);
        let list = gitauto(&config, &["list", "--source", "src", "--repo", "acme/widgets"], &[]).await;
        assert!(!list.ok, "{forge}: {}", list.stdout);
        assert!(list.stderr.contains("more than 50 pages of hooks"), "{forge}: {}", list.stderr);
        let install = gitauto(&config, &["install", "--source", "src", "--repo", "acme/widgets"], &[]).await;
        assert!(!install.ok, "{forge}");
        assert_eq!(stored(&api, "acme/widgets").len(), 101, "{forge}: nothing added");
    }
}

#[tokio::test]
async fn a_gitlab_signing_token_the_instance_ignores_is_an_error() {
    // Issue 22, L4: with its feature flag off GitLab drops `signing_token` and saves the
    // hook without it; every delivery would then be rejected.
    let signing = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    let path = config(dir.path(), "gitlab", Some(&format!("{}/api/v4", api.url)), true);
    let text = std::fs::read_to_string(&path).unwrap().replace(HOOK_SECRET, signing);
    std::fs::write(&path, text).unwrap();
    let install = ["install", "--source", "src", "--repo", "acme/widgets"];

    let run = gitauto(&path, &install, &[]).await;
    assert!(!run.ok, "{}", run.all());
    assert!(run.stderr.contains("without its signing token"), "{}", run.stderr);
    assert!(run.stderr.contains("`webhook_signing_token` feature flag"), "{}", run.stderr);
    assert!(!run.all().contains(signing));

    api.with(|s| s.hook_api.signing_tokens = true);
    let run = gitauto(&path, &install, &[]).await;
    assert!(run.ok, "{}", run.all());
    assert!(run.stdout.starts_with("updated hook"), "{}", run.stdout);
    let hooks = posting_to(&api, "acme/widgets", &format!("{PUBLIC}/hooks/src"));
    assert_eq!((hooks.len(), hooks[0]["signing_token"].as_str()), (1, Some(signing)));
    assert!(!run.all().contains(signing));
}

#[tokio::test]
async fn list_shows_other_integrations_urls_without_their_credentials() {
    // Issue 22, L5.
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    api.add_hook("acme/widgets", "https://bot:chat-pa55@chat.example.com/in?token=chat-t0k&room=7");
    let config = config(dir.path(), "github", Some(&api.url), true);
    let run = gitauto(&config, &["install", "--source", "src", "--repo", "acme/widgets"], &[]).await;
    assert!(run.ok, "{}", run.all());
    let list = gitauto(&config, &["list", "--source", "src", "--repo", "acme/widgets"], &[]).await;
    assert!(list.ok, "{}", list.all());
    assert!(list.stdout.contains("url:           https://***@chat.example.com/***?***\n"), "{}", list.stdout);
    assert!(list.stdout.contains(&format!("url:           {PUBLIC}/hooks/src\n")), "{}", list.stdout);
    for secret in ["chat-pa55", "chat-t0k", "bot", "/in"] {
        assert!(!list.all().contains(secret), "{secret}: {}", list.stdout);
    }
}

#[tokio::test]
async fn a_rules_repo_filter_decides_whether_its_events_are_asked_for() {
    // Issue 22, L6: the events are those of the rules that may match the repository.
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    api.add_repo("acme/gadgets");
    let path = config(dir.path(), "github", Some(&api.url), true);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[rules]]\nname = \"ship\"\non = \"release\"\nrepo = \"acme/gadg*\"\nsteps = [{ plugin = \"empty\" }]\n",
    );
    std::fs::write(&path, text).unwrap();
    let events = |repo: &str| {
        let hooks = posting_to(&api, repo, &format!("{PUBLIC}/hooks/src"));
        hooks[0]["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    for repo in ["acme/widgets", "acme/gadgets"] {
        let run = gitauto(&path, &["install", "--source", "src", "--repo", repo], &[]).await;
        assert!(run.ok, "{repo}: {}", run.all());
    }
    assert!(!events("acme/widgets").contains(&"release".to_owned()), "{:?}", events("acme/widgets"));
    assert!(events("acme/gadgets").contains(&"release".to_owned()), "{:?}", events("acme/gadgets"));
}

#[tokio::test]
async fn a_gitlab_token_sent_to_an_http_url_is_warned_about() {
    // Issue 22, L6: GitLab sends a plain secret token back as it is with every delivery.
    let warning = "warning: the hook posts to an http:// URL: GitLab sends the secret token in clear text";
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.add_repo("acme/widgets");
    let path = config(dir.path(), "gitlab", Some(&format!("{}/api/v4", api.url)), true);
    let install = ["install", "--source", "src", "--repo", "acme/widgets"];
    let run = gitauto(&path, &[&install[..], &["--url", "http://ci.example.com/hooks/src"]].concat(), &[]).await;
    assert!(run.ok && run.stderr.contains(warning), "{}", run.all());
    let run = gitauto(&path, &install, &[]).await;
    assert!(run.ok && !run.stderr.contains("warning"), "{}", run.all());
}
