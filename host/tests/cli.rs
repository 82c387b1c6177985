#![allow(clippy::disallowed_methods, reason = "a blocking test that drives the real binary")]

//! The `gitauto` binary as a user runs it: `check` and `serve` on a broken config,
//! `run --dry-run` on a payload, a reload on SIGHUP, and `hooks` failing (its work against
//! the forges' fake APIs is tested in-process in tests/it/hooks.rs).

mod common;

use common::git;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn gitauto(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gitauto")).args(args).env("GITAUTO_LOG", "warn").output().unwrap()
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:PORT"
api_token = "cli-token"

[sources.github]
forge = "github"
secret = "cli-secret"

[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = { dirs = [{ path = "/srv/repos", git = true }] }

[[rules]]
name = "docs"
on = "push"
branch = ["main", "release/*"]
steps = [{ plugin = "fetch-update", with = { repodir = "/srv/repos" } }]

[[rules]]
name = "tags"
on = "tag"
steps = [{ plugin = "fetch-update", with = { repodir = "/srv/repos" } }]
"#;

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("gitauto.toml");
    std::fs::write(&path, text.replace("PORT", "0")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn check_and_serve_report_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = CONFIG.replace("on = \"tag\"", "on = \"tagg\"").replace("branch = [", "brnch = [");
    let config = write_config(dir.path(), &broken);
    let check = gitauto(&["check", "--config", &config]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    // Misspelt keys come first, with their place and the closest valid key.
    assert!(stderr.contains("gitauto.toml:17:1: unknown key `brnch` in [[rules]]; did you mean `branch`?"), "{stderr}");
    let broken = CONFIG
        .replace("on = \"tag\"", "on = \"tagg\"")
        .replace("repodir = \"/srv/repos\" } }]\n\n[[rules]]", "repodir = \"/srv/elsewhere\" } }]\n\n[[rules]]");
    let config = write_config(dir.path(), &broken);
    let check = gitauto(&["check", "--config", &config]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr.contains("gitauto.toml:18:44: rule \"docs\", step 1: `with.repodir` = `/srv/elsewhere` is outside"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gitauto.toml:22:6: rule \"tags\": unknown event kind `tagg`; did you mean `tag`?"),
        "{stderr}"
    );
    assert!(stderr.ends_with("2 problem(s) found\n"), "{stderr}");
    let serve = gitauto(&["serve", "--config", &config]);
    assert_eq!(serve.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&serve.stderr).contains("unknown event kind `tagg`"));
    let fine = write_config(dir.path(), CONFIG);
    let check = gitauto(&["check", "--config", &fine]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn check_prints_the_next_ticks_of_a_schedule_and_points_into_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = "\n[[rules]]\nname = \"nightly\"\non = \"schedule\"\ncron = \"30 3 * * MON-FRI\"\n\
                    timezone = \"America/New_York\"\nrepo = [\"acme/site\", \"acme/docs\"]\nbranch = \"main\"\n\
                    steps = [{ plugin = \"fetch-update\", with = { repodir = \"/srv/repos\" } }]\n";
    let config = write_config(dir.path(), &format!("{CONFIG}{schedule}"));
    let check = gitauto(&["check", "--config", &config]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[1],
        "rule \"nightly\": cron \"30 3 * * MON-FRI\" in America/New_York, missed = \"once\"; next times:"
    );
    assert_eq!(lines.len(), 7, "{stdout}");
    for line in &lines[2..] {
        // 03:30 New York time on a weekday: 07:30 or 08:30 UTC, by the season.
        assert!(
            line.starts_with("  ") && line.contains(" 03:30:00 -0") && line.contains(" America/New_York = "),
            "{line}"
        );
        assert!(line.ends_with(" 07:30:00Z") || line.ends_with(" 08:30:00Z"), "{line}");
    }

    let config = write_config(dir.path(), &format!("{CONFIG}{}", schedule.replace("MON-FRI", "MON-FRY")));
    let check = gitauto(&["check", "--config", &config]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains(
            "gitauto.toml:28:22: rule \"nightly\": `cron`: day-of-week `FRY` is not a number or a name (SUN, MON, TUE, WED, THU, FRI, SAT)"
        ),
        "{stderr}"
    );
}

#[test]
fn run_dry_run_explains_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/payloads/github/push.json");
    let mut payload: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    payload["ref"] = "refs/heads/dev".into();
    let event = dir.path().join("push.json");
    std::fs::write(&event, serde_json::to_vec(&payload).unwrap()).unwrap();
    let run = gitauto(&["run", "--event", event.to_str().unwrap(), "--dry-run", "--config", &config]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("refs/heads/dev:\n  rule docs: branch `dev` not in [main, release/*]\n  rule tags: event `push` not in on = [tag]\n"), "{stdout}");
}

#[test]
fn sighup_reloads_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_config(dir.path(), &CONFIG.replace("PORT", &port.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitauto"))
        .args(["serve", "--config", &config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let generation = || {
        runtime.block_on(async {
            let response =
                reqwest::Client::new().get(format!("{base}/api/config")).bearer_auth("cli-token").send().await.ok()?;
            let status: serde_json::Value = response.json().await.ok()?;
            status["generation"].as_u64()
        })
    };
    let wait = |want: u64| {
        let started = Instant::now();
        while generation() != Some(want) {
            assert!(started.elapsed() < Duration::from_secs(60), "generation {want} never came: {:?}", generation());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait(1);
    // Same content: only the signal can cause this reload.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    wait(2);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn plugin_inspect_and_test_work_on_a_component_file() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("fetch-update.wasm");
    std::fs::write(&wasm, gitauto::builtin::get("fetch-update").unwrap()).unwrap();
    let inspect = gitauto(&["plugin", "inspect", wasm.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&inspect.stdout);
    assert_eq!(inspect.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("targets   gitauto:plugin@0.2.0\n")
            && stdout.contains("runs on this host (gitauto:plugin@0.2.0): yes"),
        "{stdout}"
    );
    // Each package it uses, with its version and interfaces.
    let uses: Vec<&str> =
        stdout.lines().skip_while(|l| *l != "uses:").skip(1).take_while(|l| l.starts_with("  ")).collect();
    assert!(
        uses.iter().any(|l| l.starts_with("  gitauto:plugin@0.2.0") && l.contains("git, ") && l.contains("log")),
        "{stdout}"
    );
    assert!(uses.iter().any(|l| l.trim_start().starts_with("wasi:")), "{stdout}");

    // A checkout one commit behind its origin, where the payload says the push went.
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "--quiet", "--initial-branch=main"]);
    for n in 0..2 {
        std::fs::write(origin.join("f.txt"), n.to_string()).unwrap();
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "--quiet", "-m", "c"]);
    }
    let repos = dir.path().join("repos");
    std::fs::create_dir_all(repos.join("acme")).unwrap();
    git(&repos.join("acme"), &["clone", "--quiet", origin.to_str().unwrap(), "widgets"]);
    git(&repos.join("acme/widgets"), &["reset", "--quiet", "--hard", "HEAD~1"]);
    let payload = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/payloads/github/push.json");
    let repodir = format!("repodir={}", repos.display());
    let test = |grant: &str| {
        gitauto(&[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--event",
            payload.to_str().unwrap(),
            "--with",
            &repodir,
            "--grant",
            grant,
        ])
    };
    let granted = test(&format!("git={}", repos.display()));
    let stdout = String::from_utf8_lossy(&granted.stdout);
    assert_eq!(granted.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&granted.stderr));
    assert!(stdout.starts_with(&format!("success: updated {}/acme/widgets from ", repos.display())), "{stdout}");
    assert!(String::from_utf8_lossy(&granted.stderr).contains("[info] fetching origin into"));
    let denied = test(&format!("dir={}", dir.path().join("origin").display()));
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stdout).contains("denied"), "{}", String::from_utf8_lossy(&denied.stdout));
}

/// Issue 16 (finding 16): what a plugin logs reaches the operator's terminal through
/// `gitauto run`, `gitauto job`, `gitauto jobs` and `gitauto plugin test`. The built-in
/// fetch-update logs the remote it fetches; here that remote is a title change, a screen
/// clear and a one-byte CSI. No printer lets a raw ESC, BEL or C1 byte through, and each
/// log line stays one line.
#[test]
fn plugin_text_reaches_the_terminal_only_as_visible_escapes() {
    const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}2J\u{202e}\nforged line";
    const SHOWN: &str = "\\x1b]0;owned\\x07\\x1b[2J\\u{9b}2J\\u{202e}\\nforged line";
    let raw = |text: &[u8]| {
        text.iter().any(|b| matches!(b, 0x1b | 0x07)) || String::from_utf8_lossy(text).contains(['\u{9b}', '\u{202e}'])
    };

    let dir = tempfile::tempdir().unwrap();
    let (_, after) = common::repository(dir.path(), "widgets");
    let repos = dir.path().join("repos");
    let port = common::free_port();
    // TOML escapes; the raw bytes reach the plugin as its `remote` setting.
    let remote_toml = HOSTILE
        .replace('\u{1b}', "\\u001b")
        .replace('\u{7}', "\\u0007")
        .replace('\u{9b}', "\\u009b")
        .replace('\u{202e}', "\\u202e")
        .replace('\n', "\\n");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
api_token = "cli-token"

[sources.github]
forge = "github"
secret = "cli-secret"

[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}

[[rules]]
name = "docs"
on = "push"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}", remote = "{remote_toml}" }} }}]
"#,
            repos = repos.display(),
        ),
    );
    let payload = dir.path().join("push.json");
    std::fs::write(&payload, common::push_body("widgets", &after, 1)).unwrap();

    // `gitauto run`: in this process, its steps' log printed.
    let run = gitauto(&["run", "--event", payload.to_str().unwrap(), "--config", &config]);
    assert!(!raw(&run.stdout) && !raw(&run.stderr), "{:?}", String::from_utf8_lossy(&run.stdout));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stdout.contains(&format!("[fetch-update] info fetching {SHOWN} into ")), "{stdout}{stderr}");

    // `gitauto job` and `gitauto jobs` against a daemon that ran the same step.
    let base = format!("http://127.0.0.1:{port}");
    let daemon = common::Daemon::start(Path::new(&config), &base);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = common::push_body("widgets", &after, 2);
    let url = format!("{base}/hooks/github");
    let delivery = runtime.block_on(common::post_push(reqwest::Client::new(), url, "cli-secret", "d-1".into(), body));
    assert_eq!(delivery.as_deref(), Some("d-1"));
    let started = Instant::now();
    let id = loop {
        let jobs: serde_json::Value = runtime.block_on(async {
            let response = reqwest::Client::new().get(format!("{base}/api/jobs")).bearer_auth("cli-token").send().await;
            response.unwrap().json().await.unwrap()
        });
        let job = &jobs["jobs"][0];
        if job["state"].as_str().is_some_and(|state| !matches!(state, "queued" | "running")) {
            break job["id"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job did not finish: {jobs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let job = gitauto(&["job", &id, "--config", &config]);
    let stdout = String::from_utf8_lossy(&job.stdout);
    assert_eq!(job.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&job.stderr));
    assert!(!raw(&job.stdout), "{stdout:?}");
    let line = stdout.lines().find(|line| line.contains("fetching")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.ends_with(&format!("[fetch-update] info fetching {SHOWN} into {}/acme/widgets", repos.display())),
        "{line}"
    );
    let jobs = gitauto(&["jobs", "--config", &config]);
    assert!(!raw(&jobs.stdout), "{:?}", String::from_utf8_lossy(&jobs.stdout));
    drop(daemon);

    // `gitauto plugin test`: log lines on stderr as the plugin writes them.
    let wasm = dir.path().join("fetch-update.wasm");
    std::fs::write(&wasm, gitauto::builtin::get("fetch-update").unwrap()).unwrap();
    let test = gitauto(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--event",
        payload.to_str().unwrap(),
        "--with",
        &format!("repodir={}", repos.display()),
        "--with",
        &format!("remote={HOSTILE}"),
        "--grant",
        &format!("git={}", repos.display()),
    ]);
    assert!(!raw(&test.stdout) && !raw(&test.stderr), "{:?}", String::from_utf8_lossy(&test.stderr));
    let stderr = String::from_utf8_lossy(&test.stderr);
    assert!(stderr.contains(&format!("[info] fetching {SHOWN} into ")), "{stderr}");
}

/// Issue 19: `gitauto trigger --wait` follows the job to its end, prints its outcome,
/// steps and output, and its exit status says how it went: 0 succeeded, 1 a job did not
/// succeed, 3 `--timeout` passed first, 4 not triggered (refused, or no daemon there).
#[test]
fn trigger_wait_prints_the_outcome_and_exits_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let (checkout, head) = common::repository(dir.path(), "widgets");
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
api_token = "cli-token"

[plugins.fetch-update]
wasm = "builtin:fetch-update"
grants = {{ dirs = [{{ path = "{repos}", git = true }}] }}

[plugins.provision]
wasm = "builtin:provision"

[[rules]]
name = "update"
on = "manual"
steps = [{{ plugin = "fetch-update", with = {{ repodir = "{repos}" }} }}]

[[rules]]
name = "provision"
on = "manual"
steps = [{{ plugin = "provision", with = {{ api_url = "http://127.0.0.1:9" }} }}]
"#,
            repos = dir.path().join("repos").display()
        ),
    );
    let _daemon = common::Daemon::start(Path::new(&config), &base);
    let trigger = |args: &[&str]| {
        let output = gitauto(&[&["trigger"], args, &["--config", &config]].concat());
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), format!("{stdout}{stderr}"))
    };

    let (code, out) = trigger(&["update", "repo=acme/widgets", "branch=main", "--wait"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(rule update) succeeded") && out.contains("step fetch-update success: updated "), "{out}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), head, "the job ran before the command returned");

    // The plugin refuses a parameter: the job fails, and the output says which parameter.
    let (code, out) = trigger(&["provision", "action=put_team", "org=mitx", "team=t", "read_only=yes", "--wait"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("(rule provision) failed") && out.contains("`read_only`: expected a boolean, got \"yes\""),
        "{out}"
    );

    // A paused rule's job stays queued: the wait times out, and the job goes on.
    let paused = gitauto(&["pause", "update", "--config", &config]);
    assert_eq!(paused.status.code(), Some(0));
    let (code, out) = trigger(&["update", "repo=acme/widgets", "branch=main", "--wait", "--timeout", "1s"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("is still queued after"), "{out}");

    // Without --wait, an accepted trigger is enough.
    let (code, out) = trigger(&["update", "repo=acme/widgets", "branch=main"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rule update started: job "), "{out}");

    // Refused, or nobody there.
    let (code, out) = trigger(&["no-such-rule", "--wait"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("no rule named `no-such-rule`"), "{out}");
    let nobody = format!("http://127.0.0.1:{}", common::free_port());
    let (code, out) = trigger(&["update", "--wait", "--url", &nobody]);
    assert_eq!(code, Some(4), "{out}");
}

/// Issue 19: every built-in reads its settings through the SDK, whose errors name the
/// setting at fault instead of serde's "at line 1 column 20".
#[test]
fn built_in_plugins_name_the_setting_they_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let payload = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/payloads/github/push.json");
    let cases = [
        ("edx-import", "timeout_seconds=soon", "`timeout_seconds`: expected u64, got \"soon\""),
        ("edx-import", "update:=1", "`update`: expected a boolean, got integer `1`"),
        ("fetch-update", "repodir:=[\"/srv\"]", "`repodir`: expected a string, got sequence"),
        ("provision", "read_only=yes", "`read_only`: expected a boolean, got \"yes\""),
        ("comment", "bodyy=x", "`bodyy`: unknown field `bodyy`"),
    ];
    for (plugin, setting, want) in cases {
        let wasm = dir.path().join(format!("{plugin}.wasm"));
        std::fs::write(&wasm, gitauto::builtin::get(plugin).unwrap()).unwrap();
        let args = ["plugin", "test", wasm.to_str().unwrap(), "--event", payload.to_str().unwrap(), "--with", setting];
        let output = gitauto(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{plugin} {setting}: {stdout}");
        assert!(stdout.contains("error (InvalidSettings): ") && stdout.contains(want), "{plugin} {setting}: {stdout}");
    }
}

#[test]
fn hooks_errors_reach_stderr_with_a_failing_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let hooks = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitauto"));
        command.arg("hooks").args(args).args(["--config", &config]).env("GITAUTO_LOG", "warn");
        command.env_remove("GITAUTO_HOOKS_TOKEN").env_remove("GITAUTO_HOOKS_API").output().unwrap()
    };
    let unknown = hooks(&["list", "--source", "nope", "--repo", "acme/widgets"]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.ends_with("\nerror: no [sources.nope] in the config\n"), "{stderr}");
    assert!(unknown.stdout.is_empty());
    let no_token = hooks(&["install", "--source", "github", "--repo", "acme/widgets", "--force"]);
    assert_eq!(no_token.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&no_token.stderr);
    assert!(stderr.contains("\nerror: source \"github\" has no API token"), "{stderr}");
    assert!(stderr.contains("GITAUTO_HOOKS_TOKEN"), "{stderr}");
}

/// `[server] log` and `log_format`: a filter that cannot be read (in the config or in
/// `GITAUTO_LOG`) stops the start with the reason; JSON lines when asked; a reload applies
/// a new format and filter.
#[test]
fn the_log_follows_server_log_and_log_format() {
    let dir = tempfile::tempdir().unwrap();
    let with_log =
        |log: &str| CONFIG.replace("api_token = \"cli-token\"", &format!("api_token = \"cli-token\"\n{log}"));
    let config = write_config(dir.path(), &with_log("log = \"debg\""));
    let check = Command::new(env!("CARGO_BIN_EXE_gitauto")).args(["check", "--config", &config]).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gitauto.toml:5:7: `log`: `debg` is neither a level"), "{stderr}");
    let config = write_config(dir.path(), &with_log("log_format = \"yaml\""));
    let serve = gitauto(&["serve", "--config", &config]);
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(serve.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`log_format` must be \"text\" or \"json\""), "{stderr}");
    let config = write_config(dir.path(), CONFIG);
    let bad_env = Command::new(env!("CARGO_BIN_EXE_gitauto"))
        .args(["check", "--config", &config])
        .env("GITAUTO_LOG", "verbose")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad_env.stderr);
    assert_eq!(bad_env.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GITAUTO_LOG: `verbose` is neither a level"), "{stderr}");

    // JSON lines from the start, then text after a reload to `debug`.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let serving = CONFIG.replace("PORT", &port.to_string());
    let config = write_config(dir.path(), &serving.replace("api_token", "log_format = \"json\"\napi_token"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitauto"))
        .args(["serve", "--config", &config])
        .env_remove("GITAUTO_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, read) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let next_until = |wanted: &dyn Fn(&str) -> bool| {
        let mut seen = Vec::new();
        loop {
            let line = read
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no such line; the log said:\n{}", seen.join("\n")));
            if wanted(&line) {
                return (line, seen);
            }
            seen.push(line);
        }
    };
    let (serving_line, before) = next_until(&|line| line.contains("gitauto is serving"));
    let record: serde_json::Value = serde_json::from_str(&serving_line).expect("a JSON record");
    assert_eq!(record["level"], "INFO", "{record}");
    assert_eq!(record["message"], "gitauto is serving", "{record}");
    assert_eq!(record["node"].as_str().map(str::is_empty), Some(false), "fields are flattened: {record}");
    for line in before.iter().filter(|line| line.contains("plugin ready")) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(record["plugin"], "fetch-update", "{record}");
    }
    // Replaced whole, as an editor saves: the daemon watches the file, and a write in
    // place could be read half done (a config without the new settings, also valid).
    let next = dir.path().join("gitauto.toml.new");
    std::fs::write(&next, serving.replace("api_token", "log = \"debug\"\nlog_format = \"text\"\napi_token")).unwrap();
    std::fs::rename(&next, &config).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let (applied, _) = next_until(&|line| line.contains("log settings applied"));
    assert!(serde_json::from_str::<serde_json::Value>(&applied).is_err(), "text after the reload: {applied}");
    assert!(applied.contains("filter=debug") && applied.contains("INFO"), "{applied}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `gitauto kv` lists, reads and deletes a store's entries through the running daemon;
/// a value's bytes reach stdout as stored.
#[test]
fn kv_lists_reads_and_deletes_a_stores_entries() {
    use gitauto::queue::kv::KvWrite;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let entries: [(&str, &[u8]); 3] = [("deploys/api", b"3"), ("deploys/web", b"\x01\x02bin"), ("other", b"x")];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let queue = gitauto::queue::Queue::open(&dir.path().join("data")).unwrap();
        for (key, value) in entries {
            let write = KvWrite { key: key.into(), value: value.to_vec(), ttl: None };
            queue.kv_set("deployments", gitauto::grant::KvLimits::default(), write).await.unwrap();
        }
        queue.close().await;
    });
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_token = \"cli-token\"\ndata_dir = \"data\"\n\n\
             [plugins.deploy]\nwasm = \"builtin:fetch-update\"\ngrants = {{ kv = \"deployments\" }}\n"
        ),
    );
    let _daemon = common::Daemon::start(Path::new(&config), &base);
    let kv = |args: &[&str]| {
        let output = gitauto(&[&["kv"], args, &["--config", &config]].concat());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), output.stdout, stderr)
    };

    let (code, stdout, stderr) = kv(&["list", "deployments", "--prefix", "deploys/"]);
    assert_eq!(code, Some(0), "{stderr}");
    let listed = String::from_utf8(stdout).unwrap();
    let keys: Vec<&str> = listed.lines().map(|line| line.split('\t').next().unwrap()).collect();
    assert_eq!(keys, ["deploys/api", "deploys/web"], "{listed}");
    assert!(listed.starts_with("deploys/api\t1 B\tversion "), "{listed}");
    assert!(listed.contains("no expiry"), "{listed}");

    let (code, stdout, stderr) = kv(&["get", "deployments", "deploys/web"]);
    assert_eq!((code, stdout.as_slice()), (Some(0), &b"\x01\x02bin"[..]), "{stderr}");
    assert!(stderr.contains("5 bytes, no expiry"), "{stderr}");

    let (code, stdout, stderr) = kv(&["delete", "deployments", "deploys/api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(String::from_utf8(stdout).unwrap(), "deleted `deploys/api` from `deployments`\n");
    let (code, _, stderr) = kv(&["delete", "deployments", "deploys/api"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no entry `deploys/api` in `deployments`"), "{stderr}");
    let (code, _, stderr) = kv(&["get", "deployments", "deploys/api"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("404: no entry `deploys/api` in the key-value store `deployments`"), "{stderr}");
    let (code, _, stderr) = kv(&["list", "nosuch"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no plugin is granted the key-value store `nosuch` (granted: deployments)"), "{stderr}");
}

/// Issue 25: `check` never uses the network and notes a remote plugin not fetched yet;
/// `plugin pull` names the plugin and the URL it could not fetch; a store copied in by
/// hand (as onto an offline machine) is what both then read, with no request made.
#[test]
fn check_and_plugin_pull_work_from_the_plugin_store_without_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = gitauto::builtin::get("notify").unwrap();
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(wasm))
    };
    // Port 9 (discard) on loopback: nothing answers there.
    let url = "http://127.0.0.1:9/notify.wasm";
    let config = write_config(
        dir.path(),
        &format!(
            "{CONFIG}\n[plugins.remote]\nwasm = \"{url}\"\nsha256 = \"{digest}\"\n\n\
             [[rules]]\nname = \"remote\"\non = \"push\"\nsteps = [{{ plugin = \"remote\" }}]\n"
        ),
    );

    let check = gitauto(&["check", "--config", &config]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("note: plugin `remote`: {url} is not in the plugin store")), "{stderr}");
    assert!(stderr.contains("run `gitauto plugin pull`"), "{stderr}");

    let pull = gitauto(&["plugin", "pull", "--config", &config]);
    let stderr = String::from_utf8_lossy(&pull.stderr);
    assert_eq!(pull.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("error: plugin `remote`: fetching {url}: GET {url}: ")), "{stderr}");

    let store = dir.path().join(".gitauto/plugins/sha256");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join(&digest), wasm).unwrap();
    let line = format!("plugin remote: sha256:{digest} {url}\n");
    for args in [&["check", "--config", &config][..], &["plugin", "pull", "--config", &config]] {
        let run = gitauto(args);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {stdout}{}", String::from_utf8_lossy(&run.stderr));
        assert!(stdout.contains(&line), "{args:?}: {stdout}");
    }
}
