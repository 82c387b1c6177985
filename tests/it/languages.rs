//! Plugins in Python and JavaScript, built with their languages' component tooling from
//! `examples/plugins/`, react to a real push in the daemon: each opens the real checkout
//! through the git capability, logs, posts its summary with its language's HTTP client
//! (JavaScript's `fetch` over `wasi:http`, Python's `requests_lite` over gitauto's
//! `http`) to a granted host with the host's credential, and returns an outcome whose
//! output is checked. A post to a host the grant does not list never connects.

use gitauto_tests::receiver::Receiver;
use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload, tools};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The token the config holds for the receiver; the plugins never see it.
const TOKEN: &str = "hooks-token-5ecret";

async fn daemon(root: &Path, python: &Path, javascript: &Path, receiver: &Receiver, ungranted: &str) -> TestDaemon {
    let checkout = root.join("repos/acme/widgets");
    std::fs::write(root.join("token"), TOKEN).unwrap();
    let rules = |name: &str, plugin: &str| {
        format!(
            r#"
[[rules]]
name = "{name}"
on = "push"
steps = [{{ plugin = "{plugin}", with = {{ checkout = "{checkout}", notify = "{receiver}/{name}" }} }}]

[[rules]]
name = "{name}-ungranted"
on = "push"
steps = [{{ plugin = "{plugin}", with = {{ checkout = "{checkout}", notify = "http://{ungranted}/{name}" }} }}]
"#,
            checkout = checkout.display(),
            receiver = receiver.url,
        )
    };
    TestDaemon::start(&format!(
        r#"
{source}
[plugins.py]
wasm = "{python}"
grants = {{ dirs = [{{ path = "{repos}", git = true }}], hosts = [{{ host = "{host}", credential = "file:{token}" }}] }}
limits = {{ memory = "256MiB" }}

[plugins.js]
wasm = "{javascript}"
grants = {{ dirs = [{{ path = "{repos}", git = true }}], hosts = [{{ host = "{host}", credential = "file:{token}" }}] }}
limits = {{ memory = "256MiB" }}
{python_rules}{javascript_rules}"#,
        source = github_source(),
        python = python.display(),
        javascript = javascript.display(),
        repos = root.join("repos").display(),
        host = receiver.host(),
        token = root.join("token").display(),
        python_rules = rules("python", "py"),
        javascript_rules = rules("javascript", "js"),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_plugins_react_to_a_push() {
    let (python, javascript) = tokio::join!(
        tokio::task::spawn_blocking(tools::python_plugin),
        tokio::task::spawn_blocking(tools::javascript_plugin)
    );
    let (python, javascript) = (python.unwrap(), javascript.unwrap());
    let root = tempfile::tempdir().unwrap();
    let repo = TestGit::new(root.path(), "widgets");
    let checkout = root.path().join("repos/acme/widgets");
    repo.clone_to(&checkout);
    let before = repo.head();
    let after = repo.commit("docs/index.md", "# hello\n", "docs");
    repo.push("main");
    gitauto_tests::git(&checkout, &["fetch", "--quiet", "origin"]);
    let head = gitauto_tests::git(&checkout, &["rev-parse", "HEAD"]);
    let receiver = Receiver::start().await;
    receiver.then_answer(201, &[], "noted");
    receiver.then_answer(201, &[], "noted");
    // A listener no grant names, counting the connections it gets.
    let ungranted = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ungranted_addr = ungranted.local_addr().unwrap().to_string();
    let reached = Arc::new(AtomicUsize::new(0));
    let counted = reached.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ungranted.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });

    let daemon = daemon(root.path(), &python, &javascript, &receiver, &ungranted_addr).await;
    let payload = push_payload("acme", "widgets", "refs/heads/main", &before, &after, "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 4);
    let summary = format!("acme/widgets@main: 1 path(s) changed; checkout at {}", &head[..10]);
    let mut rules = Vec::new();
    for job in &jobs {
        let job = daemon.finished_job(job.as_str().unwrap()).await;
        let rule = job["rule"].as_str().unwrap().to_owned();
        rules.push(rule.clone());
        let logs: Vec<&str> = job["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
        assert!(logs.contains(&"changed: docs/index.md"), "{rule}: {logs:?}");
        if rule.ends_with("-ungranted") {
            // Refused by the grant before any connection, and the step says so.
            assert_eq!(job["state"], "failed", "{rule}: {job:#}");
            let said = job["steps"][0]["summary"].as_str().unwrap();
            assert!(said.starts_with(&format!("could not notify http://{ungranted_addr}/")), "{rule}: {said}");
            let refusal = "is not granted";
            let explained = said.contains(refusal) || logs.iter().any(|line| line.contains(refusal));
            assert!(explained, "{rule}: the refusal is explained in the summary or the log: {said} {logs:?}");
            continue;
        }
        assert_eq!(job["state"], "succeeded", "{rule}: {job:#}");
        let output = &job["steps"][0]["output"];
        assert_eq!(output["head"], head.as_str(), "{rule}");
        assert_eq!(output["branch"], "main");
        // The checkout has both commits, so the paths come from git, not the payload.
        assert_eq!(output["changed"], serde_json::json!(["docs/index.md"]), "{rule}");
        assert_eq!(output["notified"], 201, "{rule}: {output:#}");
        assert_eq!(output["answer"], "noted", "{rule}");
        assert_eq!(job["summary"], summary);
    }
    rules.sort_unstable();
    assert_eq!(rules, ["javascript", "javascript-ungranted", "python", "python-ungranted"]);
    let requests = receiver.requests();
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/javascript", "/python"]);
    for request in &requests {
        assert_eq!(request.method, "POST");
        // Added by the host from the grant's credential: neither plugin knows the token.
        assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()), "{}", request.path);
        let posted = request.json();
        assert_eq!(posted["summary"], summary.as_str(), "{}", request.path);
        assert_eq!(posted["head"], head.as_str());
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "no request reached the ungranted listener");
    daemon.stop().await;
}

/// `gitauto plugin new` writes, for each language, a skeleton that builds with that
/// language's tooling as its README says and runs in the sandbox as it is.
#[tokio::test(flavor = "multi_thread")]
async fn new_plugin_skeletons_build_and_run_in_every_language() {
    use gitauto::authoring::scaffold::{Lang, new_plugin};
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let built = tokio::task::spawn_blocking(move || {
        let rust = new_plugin(&root, "hello-rs", Lang::Rust).unwrap();
        let target = tools::scaffold_target();
        tools::run_ok(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&rust)
                .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS"),
            "cargo build of the Rust skeleton",
        );
        let rust_wasm = target.join("wasm32-wasip2/release/hello_rs.wasm");
        // The same plugin built against a WIT this host does not implement.
        let future = new_plugin(&root, "hello-future", Lang::Rust).unwrap();
        for entry in std::fs::read_dir(future.join("wit")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap().replace("gitauto:plugin@0.2.0", "gitauto:plugin@0.3.0");
            std::fs::write(&path, text).unwrap();
        }
        tools::run_ok(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&future)
                .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS"),
            "cargo build of the 0.3.0 skeleton",
        );
        let future_wasm = target.join("wasm32-wasip2/release/hello_future.wasm");
        let inspection = gitauto::runtime::inspect::inspect(&std::fs::read(&future_wasm).unwrap()).unwrap();
        assert_eq!(inspection.targets.as_deref(), Some("0.3.0"));
        let why = inspection.runnable.unwrap_err();
        assert!(why.starts_with("it targets gitauto:plugin@0.3.0, and this host runs gitauto:plugin@0.2.0"), "{why}");

        let python = new_plugin(&root, "hello-py", Lang::Python).unwrap();
        tools::run_ok(
            Command::new(tools::componentize_py()).current_dir(&python).args([
                "-d",
                "wit",
                "-w",
                "plugin",
                "componentize",
                "app",
                "-o",
                "hello-py.wasm",
            ]),
            "componentize-py of the Python skeleton",
        );

        let js = new_plugin(&root, "hello-js", Lang::Js).unwrap();
        let build_dir = tools::componentize_js_dir().join("skeleton");
        let _ = std::fs::remove_dir_all(&build_dir);
        std::fs::create_dir_all(build_dir.join("wit")).unwrap();
        for entry in std::fs::read_dir(js.join("wit")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, build_dir.join("wit").join(path.file_name().unwrap())).unwrap();
        }
        for file in ["plugin.js", "build.mjs"] {
            std::fs::copy(js.join(file), build_dir.join(file)).unwrap();
        }
        let js_wasm = js.join("hello-js.wasm");
        tools::run_ok(
            Command::new("node").current_dir(&build_dir).arg("build.mjs").arg(&js_wasm),
            "node build.mjs of the JS skeleton",
        );
        [rust_wasm, python.join("hello-py.wasm"), js_wasm]
    })
    .await
    .unwrap();

    let repo = TestGit::new(dir.path(), "widgets");
    let checkout = dir.path().join("repos/acme/widgets");
    repo.clone_to(&checkout);
    let head = repo.head();
    let body = push_payload("acme", "widgets", "refs/heads/main", &head, &head, "file:///unused");
    let event = gitauto::authoring::event_from_payload("github", Some("push"), &body).unwrap();
    for wasm in built {
        let mut grant = gitauto::grant::Grant::default();
        gitauto::authoring::parse_grant(&format!("dir={}", dir.path().join("repos").display()), &mut grant).unwrap();
        let settings = serde_json::json!({"checkout": checkout.display().to_string()});
        let limits = gitauto::config::Limits { memory: 256 << 20, ..Default::default() };
        let (event, wasm_path) = (event.clone(), wasm.clone());
        let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = logged.clone();
        let sink: gitauto::capability::log::Sink =
            std::sync::Arc::new(move |_, message: &str| lines.lock().unwrap().push(message.to_owned()));
        let outcome = tokio::task::spawn_blocking(move || {
            gitauto::authoring::run_once(&wasm_path, grant, limits, &event, &settings, sink)
        })
        .await
        .unwrap()
        .unwrap();
        let gitauto::runtime::StepOutcome::Done { status: gitauto::runtime::StepStatus::Success, summary, output } =
            outcome
        else {
            panic!("{}: {outcome:?}", wasm.display())
        };
        assert_eq!(summary, format!("checkout at {head}"), "{}", wasm.display());
        assert_eq!(serde_json::from_str::<serde_json::Value>(&output).unwrap()["head"], head.as_str());
        assert_eq!(
            *logged.lock().unwrap(),
            [format!("push event for acme/widgets; checkout at {head}")],
            "{}",
            wasm.display()
        );
    }
}
