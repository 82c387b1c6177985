//! The sandbox through a real plugin: each capability's allowed path works, and what
//! the grant does not allow is refused with a clear error the plugin sees.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use gitauto::capability::log::Sink;
use gitauto::config::Config;
use gitauto::event::Event;
use gitauto::runtime::{Runtime, StepOutcome, StepStatus};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

struct Sandbox {
    runtime: Arc<Runtime>,
    root: tempfile::TempDir,
    http: String,
}

impl Sandbox {
    /// A probe plugin granted `<root>/granted` (read), `<root>/site` (write), the
    /// programs `env`, `sleep`, `git`, `cp`, `touch` and `chmod`, and one HTTP server
    /// on loopback.
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for dir in ["granted", "site", "outside"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("granted/readme.txt"), "granted text").unwrap();
        std::fs::write(root.path().join("outside/secret.txt"), "secret").unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, other_addr) = (listener.local_addr().unwrap(), other.local_addr().unwrap());
        let app = Router::new()
            .route("/", get(|| async { "hello" }))
            .route(
                "/whoami",
                get(|headers: axum::http::HeaderMap| async move {
                    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
                    auth.unwrap_or_else(|| "nobody".into())
                }),
            )
            .route("/here", get(|| async { Redirect::temporary("/") }))
            .route("/away", get(move || async move { Redirect::temporary(&format!("http://{other_addr}/")) }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::spawn(
            async move { axum::serve(other, Router::new().route("/", get(|| async { "other" }))).await.unwrap() },
        );

        let r = root.path().display();
        let text = format!(
            r#"
[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = ["{r}/granted", {{ path = "{r}/site", write = true }}], hosts = [{{ host = "{addr}", credential = "file:{r}/api-token", scheme = "token" }}, {{ host = "plain.invalid", credential = "x" }}], commands = [{{ program = "env", env = ["GREETING"] }}, "sleep", "git", "cp", "touch", "chmod"] }}
"#,
            probe = env!("GITAUTO_GUEST_PROBE"),
        );
        std::fs::write(root.path().join("api-token"), format!("{API_TOKEN}\n")).unwrap();
        let config = Config::parse(&root.path().join("gitauto.toml"), &text).unwrap();
        let specs: Vec<_> = config.plugins.values().cloned().collect();
        let cache = root.path().join("cache");
        let (runtime, _) = tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache)).await.unwrap().unwrap();
        Self { runtime: Arc::new(runtime), root, http: format!("http://{addr}") }
    }

    fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root.path().display())
    }

    /// Runs the probe; `Ok(output)` on success, `Err(summary)` on failure.
    async fn probe(&self, settings: Value) -> Result<Value, String> {
        probe(&self.runtime, settings).await
    }
}

/// Runs the `probe` plugin of `runtime` with `settings`; `Ok(output)` on success,
/// `Err(summary)` on failure.
pub(crate) async fn probe(runtime: &Arc<Runtime>, settings: Value) -> Result<Value, String> {
    let runtime = runtime.clone();
    let sink: Sink = Arc::new(|_, _| {});
    let outcome =
        tokio::task::spawn_blocking(move || runtime.run("probe", &event(), &settings.to_string(), sink)).await.unwrap();
    match outcome {
        StepOutcome::Done { status: StepStatus::Success, output, .. } => Ok(serde_json::from_str(&output).unwrap()),
        StepOutcome::Done { status: StepStatus::Failure, summary, .. } => Err(summary),
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// The credential the config reads from a file.
const API_TOKEN: &str = "token-only-the-host-knows";

fn event() -> Event {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads/github/push.json");
    let payload: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    Event {
        delivery: "d".into(),
        source: "github".into(),
        forge: "github".into(),
        kind: "push".into(),
        action: None,
        repository: Default::default(),
        git_ref: Some("refs/heads/main".into()),
        branch: Some("main".into()),
        tag: None,
        before: None,
        after: None,
        deleted: false,
        commits: vec![],
        commits_complete: true,
        sender: None,
        payload: payload.to_string(),
        ..Event::default()
    }
}

pub(crate) fn assert_refused(result: Result<Value, String>, why: &str) {
    match result {
        Ok(output) => panic!("expected a refusal containing {why:?}, got success {output}"),
        Err(summary) => assert!(summary.contains(why), "expected {why:?} in {summary:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_runs_granted_programs_with_only_the_given_environment() {
    let sandbox = Sandbox::new().await;
    let out =
        sandbox.probe(json!({"op": "shell", "program": "env", "env": [["GREETING", "hi; rm -rf /"]]})).await.unwrap();
    let stdout = out["stdout"].as_str().unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["GREETING=hi; rm -rf /", "PATH=/usr/local/bin:/usr/bin:/bin"],
        "nothing of the daemon's environment"
    );
    assert_eq!(out["exit_code"], 0);

    let cwd = sandbox.path("granted");
    let out =
        sandbox.probe(json!({"op": "shell", "program": "sleep", "args": ["10"], "cwd": cwd, "timeout_ms": 200})).await;
    let out = out.unwrap();
    assert_eq!((out["timed_out"].as_bool(), out["exit_code"].as_i64()), (Some(true), None));
}

/// Security review: programs change no file's mode, owner, times or attributes by path
/// (the filter refuses those calls with `EPERM`); what build tools do in a writable
/// grant still works: git checks out executable files, `cp` copies them, `touch`
/// creates files and sets the times of one it may write (through its descriptor). (Git
/// cannot write its configuration: it sets the mode of `config.lock` by path.)
#[tokio::test(flavor = "multi_thread")]
async fn programs_work_in_their_grants_without_changing_metadata() {
    use std::os::unix::fs::MetadataExt;
    let sandbox = Sandbox::new().await;
    let src = sandbox.root.path().join("site/src");
    std::fs::create_dir(&src).unwrap();
    gitauto_tests::git(&src, &["init", "--quiet", "--initial-branch=main", "."]);
    std::fs::write(src.join("run.sh"), "#!/bin/sh\n").unwrap();
    gitauto_tests::git(&src, &["add", "--chmod=+x", "run.sh"]);
    gitauto_tests::git(&src, &["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "x"]);
    let site = sandbox.path("site");
    let run = |program: &str, args: &[&str]| {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        sandbox.probe(json!({"op": "shell", "program": program, "args": args, "cwd": site}))
    };
    let ok = |out: Value| assert_eq!(out["exit_code"], 0, "{out}");
    gitauto_tests::git(&sandbox.root.path().join("site"), &["clone", "--quiet", "--no-checkout", "src", "copy"]);
    let copy = sandbox.path("site/copy");
    let out =
        sandbox.probe(json!({"op": "shell", "program": "git", "args": ["checkout", "--quiet", "main"], "cwd": copy}));
    ok(out.await.unwrap());
    let mode = |path: &str| std::fs::metadata(sandbox.path(path)).unwrap().mode();
    assert_eq!(mode("site/copy/run.sh") & 0o111, 0o111 & !umask(), "checked out executable");
    ok(run("cp", &["copy/run.sh", "run2.sh"]).await.unwrap());
    assert_eq!(mode("site/run2.sh") & 0o100, 0o100, "copied executable");
    ok(run("touch", &["new.txt"]).await.unwrap());
    ok(run("touch", &["-d", "2001-01-01 00:00:00Z", "new.txt"]).await.unwrap());
    assert_eq!(std::fs::metadata(sandbox.path("site/new.txt")).unwrap().mtime(), 978_307_200);

    // Mode changes are accepted and do nothing, so programs that chmod what they write
    // (git writing its config, pip, npm) work.
    let before = mode("site/new.txt");
    ok(run("chmod", &["0777", "new.txt"]).await.unwrap());
    assert_eq!(mode("site/new.txt"), before, "the mode did not change");
    ok(run("git", &["init", "--quiet", "made"]).await.unwrap());
    ok(run("git", &["-C", "made", "config", "user.name", "gitauto"]).await.unwrap());
    let config = std::fs::read_to_string(sandbox.path("site/made/.git/config")).unwrap();
    assert!(config.contains("name = gitauto"), "{config}");
    // The read-only grant's times stay too: `touch` may not open it for writing, and
    // setting times by path is refused.
    let readme = std::fs::metadata(sandbox.path("granted/readme.txt")).unwrap();
    let out = run("touch", &["-c", "-d", "2001-01-01 00:00:00Z", &sandbox.path("granted/readme.txt")]).await.unwrap();
    assert_ne!(out["exit_code"], 0, "{out}");
    let after = std::fs::metadata(sandbox.path("granted/readme.txt")).unwrap();
    assert_eq!((after.mtime(), after.mtime_nsec()), (readme.mtime(), readme.mtime_nsec()));
}

/// This process's umask (read without changing it).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_refuses_what_is_not_granted() {
    let sandbox = Sandbox::new().await;
    assert_refused(
        sandbox.probe(json!({"op": "shell", "program": "sh", "args": ["-c", "id"]})).await,
        "program `sh` is not granted",
    );
    assert_refused(
        sandbox.probe(json!({"op": "shell", "program": "/usr/bin/../bin/env"})).await,
        "program `/usr/bin/../bin/env` is not granted",
    );
    assert_refused(
        sandbox.probe(json!({"op": "shell", "program": "env", "cwd": sandbox.path("outside")})).await,
        "not inside a granted directory",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_reaches_granted_hosts_only() {
    let sandbox = Sandbox::new().await;
    let ok = sandbox.probe(json!({"op": "http", "url": format!("{}/", sandbox.http)})).await.unwrap();
    assert_eq!((ok["status"].as_u64(), ok["body"].as_str()), (Some(200), Some("hello")));
    let redirected = sandbox.probe(json!({"op": "http", "url": format!("{}/here", sandbox.http)})).await.unwrap();
    assert_eq!(redirected["body"], "hello", "a redirect on the granted host is followed");

    assert_refused(
        sandbox.probe(json!({"op": "http", "url": format!("{}/away", sandbox.http)})).await,
        "redirect from",
    );
    let port = sandbox.http.rsplit(':').next().unwrap();
    assert_refused(
        sandbox.probe(json!({"op": "http", "url": format!("http://localhost:{port}/")})).await,
        "host localhost:",
    );
    assert_refused(
        sandbox.probe(json!({"op": "http", "url": "http://169.254.169.254/latest/meta-data"})).await,
        "is not granted",
    );
    assert_refused(sandbox.probe(json!({"op": "http", "url": "file:///etc/passwd"})).await, "only http and https");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_attaches_granted_credentials_the_plugin_never_holds() {
    let sandbox = Sandbox::new().await;
    // The plugin sends no credential, or a forged one: the server sees the config's.
    for headers in [json!([]), json!([["Authorization", "Bearer forged"]])] {
        let url = format!("{}/whoami", sandbox.http);
        let answer = sandbox.probe(json!({"op": "http", "url": url, "headers": headers})).await.unwrap();
        assert_eq!(answer["body"], format!("token {API_TOKEN}"));
    }
    // Never over plain http to a name (it would cross the network in clear).
    assert_refused(
        sandbox.probe(json!({"op": "http", "url": "http://plain.invalid/"})).await,
        "the credential granted for plain.invalid is sent only over https",
    );
    // Nor does the plugin's environment hold it.
    let env = sandbox.probe(json!({"op": "env"})).await.unwrap();
    assert!(!env.to_string().contains(API_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_repositories_outside_the_grant_are_out_of_reach() {
    let sandbox = Sandbox::new().await;
    let read = sandbox.probe(json!({"op": "read-file", "path": sandbox.path("granted/readme.txt")})).await.unwrap();
    assert_eq!(read["content"], "granted text");
    assert!(sandbox.probe(json!({"op": "read-file", "path": sandbox.path("outside/secret.txt")})).await.is_err());
    assert!(
        sandbox.probe(json!({"op": "read-file", "path": sandbox.path("granted/../outside/secret.txt")})).await.is_err()
    );
    assert!(sandbox.probe(json!({"op": "read-file", "path": "/etc/passwd"})).await.is_err());

    assert!(
        sandbox
            .probe(json!({"op": "write-file", "path": sandbox.path("granted/new.txt"), "content": "x"}))
            .await
            .is_err(),
        "a directory granted without `write` is read-only"
    );
    assert!(!Path::new(&sandbox.path("granted/new.txt")).exists());
    sandbox.probe(json!({"op": "write-file", "path": sandbox.path("site/page.html"), "content": "<p>"})).await.unwrap();
    assert_eq!(std::fs::read_to_string(sandbox.path("site/page.html")).unwrap(), "<p>");

    let outside_repo = sandbox.path("outside");
    gitauto_tests::git(Path::new(&outside_repo), &["init", "--quiet", "."]);
    assert_refused(sandbox.probe(json!({"op": "git-open", "path": outside_repo})).await, "denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_see_no_environment_and_no_arguments() {
    let sandbox = Sandbox::new().await;
    let out = sandbox.probe(json!({"op": "env"})).await.unwrap();
    assert_eq!(out, json!({"vars": [], "args": []}));
}
