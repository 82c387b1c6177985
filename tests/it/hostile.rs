//! Hostile plugins (`tests/hostile/*`): each tries one way out of the sandbox and
//! reports "ESCAPED" if it got through. All of them run in one daemon at once, next to
//! an ordinary fetch-update rule; every attempt must end in the job record with a clear
//! reason, and the ordinary push must be served while the worst of them still run.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use gitauto_tests::{SECRET, TestDaemon, TestGit, git, github_source, push_payload};
use serde_json::{Value, json};
use std::path::Path;

/// One attack: the rule that runs it, its plugin (`tests/hostile/<plugin>`), its
/// settings, and words the job record must contain.
struct Attack {
    rule: &'static str,
    plugin: &'static str,
    with: Value,
    says: &'static [&'static str],
}

/// The plugins' settings refer to these places.
struct Places {
    granted: String,
    site: String,
    outside: String,
    checkouts: String,
    server: String,
    other: String,
    silent: String,
    /// This machine's name: it resolves to loopback (`/etc/hosts`) or the machine's own
    /// LAN address, either of which a granted name must not lead to.
    hostname: String,
    /// A repository inside the read-only grant, to clone from.
    origin: String,
    /// A repository outside every grant, and its commit.
    outside_repo: String,
    outside_commit: String,
    /// A granted repository whose branch `bomb` is a tree of 10^8 paths.
    bomb: String,
    /// An address nobody is granted, that counts the connections it gets.
    ungranted: String,
}

fn attacks(p: &Places, data_dir: &str) -> Vec<Attack> {
    let outside_repo = format!("{}/repo", p.outside);
    let a = |rule, plugin, with, says| Attack { rule, plugin, with, says };
    vec![
        // Slow ones first, so they hold workers while everything else is served.
        // The loop's deadline is long enough that the ordinary push is served inside it on
        // any machine; the test asserts that overlap.
        a("infinite-loop", "infinite-loop", json!({}), &["plugin infinite-loop trapped: deadline of 30 s exceeded"]),
        a(
            "sleep-forever",
            "sleep-forever",
            json!({}),
            &["plugin sleep-forever trapped: deadline of 3 s exceeded (it asked to wait 86400.0 s with "],
        ),
        a(
            "http-never-answers",
            "http-get",
            json!({"url": format!("http://{}/", p.silent)}),
            &["GET http://", "timed out"],
        ),
        a("workspace-holder", "other-workspace", json!({"hold": true, "ms": 2500}), &["held"]),
        a(
            "other-workspace",
            "other-workspace",
            json!({"data_dir": data_dir}),
            &["no other workspace readable; first refusal: reading /tmp/../job-1-1/secret.txt"],
        ),
        // Files.
        a(
            "dotdot-read",
            "dotdot-read",
            json!({"granted": p.granted}),
            &["reading ", "/granted/../outside/secret.txt: "],
        ),
        a("absolute-read", "absolute-read", json!({"outside": p.outside}), &["reading /etc/passwd: "]),
        a(
            "planted-symlink",
            "planted-symlink",
            json!({"granted": p.granted}),
            &["/granted/link-to-secret: ", "/granted/link-to-etc/passwd: "],
        ),
        a("created-symlink", "created-symlink", json!({"site": p.site}), &["/site/etc"]),
        a(
            "hard-link",
            "hard-link",
            json!({"site": p.site, "outside": p.outside}),
            &["hard-linking ", "/outside/secret.txt to "],
        ),
        a("write-read-only", "write-read-only", json!({"granted": p.granted}), &["writing ", "/granted/planted.txt: "]),
        a("proc-environ", "proc-environ", json!({}), &["reading /proc/self/environ: "]),
        a("host-environment", "host-environment", json!({}), &["the environment is empty: 0 variables, 0 arguments"]),
        // Git.
        a("git-outside", "git-outside", json!({"repo": outside_repo}), &["opening ", "/outside/repo: ", "denied"]),
        a(
            "git-clone-outside",
            "git-clone-outside",
            json!({"repo": outside_repo, "site": p.site}),
            &["cloning file://", "/outside/repo: ", "denied"],
        ),
        a(
            "git-remote-rewrite",
            "git-remote-rewrite",
            json!({"repo": outside_repo, "checkout": format!("{}/acme/victim", p.checkouts)}),
            &["fetching `evil`", "so the remotes configured there must be granted"],
        ),
        // Network.
        a("http-unlisted", "http-get", json!({"url": "http://example.com/"}), &["host example.com", "is not granted"]),
        a("http-redirect", "http-get", json!({"url": format!("{}/away", p.server)}), &["redirect from"]),
        a("http-loopback", "http-get", json!({"url": format!("{}/api/jobs", p.other)}), &["is not granted"]),
        a(
            "http-metadata",
            "http-get",
            json!({"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}),
            &["169.254.169.254", "is not granted"],
        ),
        a(
            "http-dns-loopback",
            "http-get",
            json!({"url": format!("http://{}:{}/", p.hostname, p.server.rsplit(':').next().unwrap())}),
            &["resolves only to non-public addresses ("],
        ),
        // The same through the standard `wasi:http/outgoing-handler`: one policy for both.
        a(
            "wasi-http-unlisted",
            "wasi-http-get",
            json!({"url": "http://example.com/"}),
            &["HttpRequestDenied", "host example.com", "is not granted"],
        ),
        a("wasi-http-redirect", "wasi-http-get", json!({"url": format!("{}/away", p.server)}), &["redirect from"]),
        a(
            "wasi-http-loopback",
            "wasi-http-get",
            json!({"url": format!("{}/api/jobs", p.other)}),
            &["HttpRequestDenied", "is not granted"],
        ),
        a(
            "wasi-http-metadata",
            "wasi-http-get",
            json!({"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}),
            &["169.254.169.254", "is not granted"],
        ),
        a(
            "wasi-http-dns-loopback",
            "wasi-http-get",
            json!({"url": format!("http://{}:{}/", p.hostname, p.server.rsplit(':').next().unwrap())}),
            &["resolves only to non-public addresses ("],
        ),
        a(
            "wasi-http-file-scheme",
            "wasi-http-get",
            json!({"url": "file:///etc/passwd"}),
            &["wasi:http GET file:///etc/passwd: "],
        ),
        a(
            "wasi-http-connect",
            "wasi-http-get",
            json!({"url": format!("{}/", p.server), "method": "CONNECT"}),
            &["HttpRequestMethodInvalid", "the method CONNECT is not offered"],
        ),
        a(
            "wasi-http-stuck-body",
            "wasi-http-get",
            json!({"stuck": true}),
            &["plugin wasi-http-get trapped: deadline of 3 s exceeded (it was still waiting in \
                  `output-stream.blocking-write-and-flush` when its time ran out)"],
        ),
        a(
            "wasi-http-ungranted-listener",
            "wasi-http-get",
            json!({"url": format!("http://{}/", p.ungranted)}),
            &["HttpRequestDenied", "is not granted"],
        ),
        // Issue 16: one attack per finding, each checked against the world below too.
        a("swap-checkout", "sandbox-escapes", escape(p, "swap-checkout"), &["reset-hard: ", "denied", "clean: "]),
        a("encoded-file-url", "sandbox-escapes", escape(p, "encoded-file-url"), &["denied", "/outside/repo"]),
        a(
            "url-authority",
            "sandbox-escapes",
            escape(p, "url-authority"),
            &["a git URL must not contain `?`, `#` or", "percent-encoded"],
        ),
        a("commondir", "sandbox-escapes", escape(p, "commondir"), &["its common directory is outside the grant"]),
        a(
            "alternates",
            "sandbox-escapes",
            escape(p, "alternates"),
            &["an alternate object store is outside the grant"],
        ),
        a("symlinked-objects", "sandbox-escapes", escape(p, "symlinked-objects"), &["`objects` is a symbolic link"]),
        a(
            "worktree-in-read-only",
            "sandbox-escapes",
            escape(p, "worktree-in-read-only"),
            &["its work tree is outside the grant", "not inside a git-writable granted directory"],
        ),
        a(
            "clone-into-read-only",
            "sandbox-escapes",
            escape(p, "clone-into-read-only"),
            &["/granted/cloned-here` denied: not inside a git-writable granted directory"],
        ),
        a(
            "history-search",
            "sandbox-escapes",
            escape(p, "history-search"),
            &["searching history by message is not supported"],
        ),
        a(
            "tree-bomb",
            "sandbox-escapes",
            escape(p, "tree-bomb"),
            &[
                "tree: invalid: listing `bomb`: the tree has more than 200000 entries",
                "changed-paths: invalid: comparing",
            ],
        ),
        a(
            "loader-variables",
            "sandbox-escapes",
            escape(p, "loader-variables"),
            &["`LD_PRELOAD` may not be set for `echo`", "`GIT_CONFIG_COUNT` may not be set", "`PATH` may not be set"],
        ),
        a("git-alias", "sandbox-escapes", escape(p, "git-alias"), &["git alias ran confined"]),
        a(
            "program-files",
            "sandbox-escapes",
            escape(p, "program-files"),
            &["the shell stayed in its grants", "Permission denied"],
        ),
        a(
            "program-metadata",
            "sandbox-escapes",
            escape(p, "program-metadata"),
            &[
                "no metadata changed: ",
                "Operation not permitted",
                "setxattr Operation not permitted",
                "fchmod read-only answered success",
            ],
        ),
        a("program-network", "sandbox-escapes", escape(p, "program-network"), &["no network: "]),
        a(
            "program-leaves-session",
            "sandbox-escapes",
            escape(p, "program-leaves-session"),
            &["the session ended with the program"],
        ),
        a("descriptor-flood", "sandbox-escapes", escape(p, "descriptor-flood"), &["too many open resources"]),
        a(
            "trusted-remote-swap",
            "sandbox-escapes",
            escape(p, "trusted-remote-swap"),
            &["fetching `origin`", "denied: not inside a granted directory"],
        ),
        a(
            "fifo-config",
            "sandbox-escapes",
            escape(p, "fifo-config"),
            &["no FIFO could be made: ", "Permission denied"],
        ),
        a(
            "raw-socket",
            "raw-socket",
            json!({"address": p.server.trim_start_matches("http://")}),
            &["connecting to 127.0.0.1:"],
        ),
        // Programs.
        a("unlisted-program", "unlisted-program", json!({}), &["program `sh` is not granted"]),
        a(
            "program-path",
            "program-path",
            json!({"site": p.site}),
            &[
                "program `/usr/bin/../../bin/echo` is not granted",
                "program `./echo` is not granted",
                "/site/echo` is not granted",
            ],
        ),
        a(
            "shell-metacharacters",
            "shell-metacharacters",
            json!({}),
            &["no shell: echo printed its arguments verbatim: ; id $(id) `id` | id && id > /tmp/x"],
        ),
        a("command-output-flood", "command-output-flood", json!({}), &["the output was cut: 1048576 bytes kept"]),
        // Resources.
        a("memory-hog", "memory-hog", json!({}), &["plugin memory-hog trapped: memory limit of 64 MiB exceeded"]),
        a(
            "deep-recursion",
            "deep-recursion",
            json!({}),
            &["plugin deep-recursion trapped: out-of-bounds memory access (a stack overflow from deep recursion"],
        ),
        a(
            "log-flood",
            "log-flood",
            json!({}),
            &["log quota of 5000 lines / 2097152 bytes reached; further lines are dropped"],
        ),
        a(
            "stdout-flood",
            "stdout-flood",
            json!({}),
            &["log quota of 5000 lines / 2097152 bytes reached; further lines are dropped"],
        ),
        // What comes back.
        a(
            "malformed-outcome",
            "malformed-outcome",
            json!({}),
            &["the plugin returned a malformed outcome: its output is not JSON"],
        ),
        a(
            "huge-outcome",
            "malformed-outcome",
            json!({"kind": "huge"}),
            &["the plugin returned a malformed outcome: its output is 8388610 bytes, more than the 1 MiB allowed"],
        ),
        a(
            "terminal-escapes",
            "terminal-escapes",
            json!({}),
            &["\u{fffd}[2J\u{fffd}]0;owned\u{fffd}cleared your screen\u{fffd}\u{fffd}"],
        ),
    ]
}

/// The settings of one `sandbox-escapes` attack: every place it may need.
fn escape(p: &Places, attack: &str) -> Value {
    json!({
        "attack": attack,
        "granted": p.granted,
        "site": p.site,
        "outside": p.outside,
        "outside_repo": p.outside_repo,
        "outside_commit": p.outside_commit,
        "origin": p.origin,
        "bomb": p.bomb,
        "gitdir": format!("{}/gitdir", p.granted.trim_end_matches("/granted")),
        "victim_relative": "../outside/victim",
        "server": p.server.trim_start_matches("http://"),
        "other": p.ungranted,
        "data_dir": format!("{}/data", p.granted.trim_end_matches("/granted")),
    })
}

/// A repository at `dir` with branch `small` (one file) and branch `bomb`: a tree of
/// 8 levels of 10 entries each, the same subtree every time (10^8 paths, 9 objects).
fn tree_bomb(dir: &Path) {
    let repo = git2::Repository::init_bare(dir).unwrap();
    let blob = repo.blob(b"x").unwrap();
    let mut small = repo.treebuilder(None).unwrap();
    small.insert("README", blob, 0o100644).unwrap();
    let small = repo.find_tree(small.write().unwrap()).unwrap();
    let bomb = bomb_tree(&repo);
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    let first = repo.commit(Some("refs/heads/small"), &signature, &signature, "small", &small, &[]).unwrap();
    let parent = repo.find_commit(first).unwrap();
    repo.commit(Some("refs/heads/bomb"), &signature, &signature, "bomb", &bomb, &[&parent]).unwrap();
}

/// A tree of 8 levels of 10 entries, the same subtree each time.
pub(crate) fn bomb_tree(repo: &git2::Repository) -> git2::Tree<'_> {
    let blob = repo.blob(b"x").unwrap();
    let mut level = repo.treebuilder(None).unwrap();
    for i in 0..10 {
        level.insert(format!("f{i}"), blob, 0o100644).unwrap();
    }
    let mut id = level.write().unwrap();
    for _ in 1..8 {
        let mut next = repo.treebuilder(None).unwrap();
        for i in 0..10 {
            next.insert(format!("d{i}"), id, 0o040000).unwrap();
        }
        id = next.write().unwrap();
    }
    repo.find_tree(id).unwrap()
}

/// Pushes a tree bomb onto `main` of the bare repository at `origin`: (before, after).
fn push_bomb(origin: &Path) -> (String, String) {
    let repo = git2::Repository::open_bare(origin).unwrap();
    let parent = repo.find_reference("refs/heads/main").unwrap().peel_to_commit().unwrap();
    let bomb = bomb_tree(&repo);
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    let after = repo.commit(Some("refs/heads/main"), &signature, &signature, "bomb", &bomb, &[&parent]).unwrap();
    (parent.id().to_string(), after.to_string())
}

/// What a file's metadata says that a program might change: mode, owner, group,
/// modification time, and extended attributes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn meta(path: &Path) -> Meta {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap();
    let mut names = vec![0u8; 64 << 10];
    let len = rustix::fs::llistxattr(path, &mut names).unwrap();
    let xattrs = names[..len]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let mut value = vec![0u8; 64 << 10];
            let name = std::ffi::CString::new(name).unwrap();
            let n = rustix::fs::lgetxattr(path, name.as_c_str(), &mut value).unwrap();
            (name.into_bytes(), value[..n].to_vec())
        })
        .collect();
    Meta { mode: m.mode(), uid: m.uid(), gid: m.gid(), mtime: (m.mtime(), m.mtime_nsec()), xattrs }
}

/// `dir` and everything under it with content and metadata: nothing may change a byte,
/// a mode, an owner, a time or an attribute.
pub(crate) fn world(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>, Meta)> {
    let mut out = vec![(dir.to_path_buf(), Vec::new(), meta(dir))];
    out.extend(snapshot(dir).into_iter().map(|(path, content)| {
        let meta = meta(&path);
        (path, content, meta)
    }));
    out
}

/// Every file under `dir` with its content, for "byte-identical" checks.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path.clone());
                out.push((path, Vec::new()));
            } else {
                let content = if meta.is_file() { std::fs::read(&path).unwrap() } else { Vec::new() };
                out.push((path, content));
            }
        }
    }
    out
}

/// The files of a checkout's work tree (its `.git` left out).
fn work_tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    snapshot(dir).into_iter().filter(|(path, _)| !path.starts_with(dir.join(".git"))).collect()
}

/// Processes whose command line is `sleep <seconds>`.
fn sleeping(seconds: &str) -> Vec<String> {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (cmdline == wanted.as_bytes()).then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// `{a = "b", n = 1}` from a JSON object of strings, numbers and booleans.
fn inline_table(value: &Value) -> String {
    let fields: Vec<String> =
        value.as_object().unwrap().iter().map(|(key, value)| format!("{key} = {value}")).collect();
    format!("{{ {} }}", fields.join(", "))
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_plugins_fail_with_clear_errors_while_the_daemon_serves() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    for dir in ["granted", "site", "gitdir", "outside/repo", "checkouts/acme"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("outside/secret.txt"), "secret").unwrap();
    rustix::fs::setxattr(root.path().join("outside/secret.txt"), "user.keep", b"1", rustix::fs::XattrFlags::empty())
        .unwrap();
    std::os::unix::fs::symlink("../outside/secret.txt", root.path().join("granted/link-to-secret")).unwrap();
    std::os::unix::fs::symlink("/etc", root.path().join("granted/link-to-etc")).unwrap();
    git(&root.path().join("outside/repo"), &["init", "--quiet", "--initial-branch=main", "."]);
    std::fs::write(root.path().join("outside/repo/private.txt"), "private").unwrap();
    git(&root.path().join("outside/repo"), &["add", "private.txt"]);
    git(&root.path().join("outside/repo"), &["commit", "--quiet", "-m", "private"]);
    let outside_commit = git(&root.path().join("outside/repo"), &["rev-parse", "HEAD"]);
    std::fs::create_dir_all(root.path().join("outside/victim")).unwrap();
    std::fs::write(root.path().join("outside/victim/keep.txt"), "keep").unwrap();
    tree_bomb(&root.path().join("granted/bomb.git"));
    // What nothing may change: everything outside the grants, and the read-only grant.
    let outside_before = world(&root.path().join("outside"));

    let widgets = TestGit::new(root.path(), "widgets");
    let bombed = TestGit::new(root.path(), "bombed");
    bombed.commit("README", "small", "small");
    bombed.push("main");
    let bombed_checkout = root.path().join("checkouts/acme/bombed");
    bombed.clone_to(&bombed_checkout);
    let bombed_files = work_tree(&bombed_checkout);
    let (bomb_before, bomb_after) = push_bomb(&bombed.origin);
    git(
        root.path(),
        &["clone", "--quiet", "--bare", widgets.origin.to_str().unwrap(), &format!("{r}/granted/src.git")],
    );
    let granted_before = world(&root.path().join("granted"));
    let checkout = root.path().join("checkouts/acme/widgets");
    widgets.clone_to(&checkout);
    widgets.clone_to(&root.path().join("checkouts/acme/victim"));
    let before = widgets.head();
    let after = widgets.commit("x.txt", "x", "x");
    widgets.push("main");

    // A granted server (with a redirect off it), an ungranted one, and one that never answers.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ungranted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ungranted_addr = ungranted.local_addr().unwrap();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in ungranted.incoming() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let (server_addr, other_addr, silent_addr) =
        (server.local_addr().unwrap(), other.local_addr().unwrap(), silent.local_addr().unwrap());
    let app = Router::new()
        .route("/", get(|| async { "granted" }))
        .route("/away", get(move || async move { Redirect::temporary(&format!("http://{other_addr}/")) }));
    tokio::spawn(async move { axum::serve(server, app).await.unwrap() });
    tokio::spawn(async move { axum::serve(other, Router::new().fallback(|| async { "not granted" })).await.unwrap() });
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });

    let places = Places {
        granted: format!("{r}/granted"),
        site: format!("{r}/site"),
        outside: format!("{r}/outside"),
        checkouts: format!("{r}/checkouts"),
        server: format!("http://{server_addr}"),
        other: format!("http://{other_addr}"),
        silent: silent_addr.to_string(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned(),
        origin: format!("{r}/granted/src.git"),
        outside_repo: format!("{r}/outside/repo"),
        outside_commit: outside_commit.trim().to_owned(),
        bomb: format!("{r}/granted/bomb.git"),
        ungranted: ungranted_addr.to_string(),
    };
    let data_dir = root.path().join("data");
    let plan = attacks(&places, &data_dir.display().to_string());
    let grants = format!(
        r#"{{ dirs = ["{granted}", {{ path = "{site}", write = true }}, {{ path = "{checkouts}", write = true }}, {{ path = "{r}/gitdir", git = true }}], hosts = ["{server_addr}", "{hostname}:{port}", "{silent_addr}"], commands = ["echo", "yes", "git", "/bin/sh"] }}"#,
        granted = places.granted,
        site = places.site,
        checkouts = places.checkouts,
        port = server_addr.port(),
        hostname = places.hostname,
    );
    let mut config = format!("[server]\nworkers = 6\ndata_dir = \"{}\"\n\n{}\n", data_dir.display(), github_source());
    let hostile_dir = env!("GITAUTO_HOSTILE_DIR");
    let mut plugins: Vec<&str> = plan.iter().map(|attack| attack.plugin).collect();
    plugins.sort_unstable();
    plugins.dedup();
    for plugin in plugins {
        // The floods and the escape kit must finish (cut or refused, not stopped by the
        // deadline) even on a loaded machine: a tree bomb's listing alone takes seconds there.
        let timeout = if plugin == "infinite-loop" {
            "30s"
        } else if plugin.ends_with("-flood") && plugin != "command-output-flood" || plugin == "sandbox-escapes" {
            "20s"
        } else {
            "3s"
        };
        config += &format!(
            "[plugins.{plugin}]\nwasm = \"{hostile_dir}/hostile_{}.wasm\"\ngrants = {grants}\nlimits = {{ timeout = \"{timeout}\", memory = \"64MiB\" }}\n\n",
            plugin.replace('-', "_")
        );
    }
    config += &format!(
        "[plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"{r}/checkouts\", git = true }}, \"{r}/origin\"] }}\n\n"
    );
    for attack in &plan {
        config += &format!(
            "[[rules]]\nname = \"{rule}\"\non = \"push\"\nrepo = \"acme/{rule}\"\nsteps = [{{ plugin = \"{plugin}\", with = {with} }}]\n\n",
            rule = attack.rule,
            plugin = attack.plugin,
            with = inline_table(&attack.with),
        );
    }
    config += &format!(
        "[[rules]]\nname = \"update\"\non = \"push\"\nrepo = \"acme/widgets\"\nsteps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"{r}/checkouts\" }} }}]\n\n\
         [[rules]]\nname = \"pushed-tree-bomb\"\non = \"push\"\nrepo = \"acme/bombed\"\nsteps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"{r}/checkouts\" }} }}]\n"
    );
    let daemon = TestDaemon::start(&config).await;
    // Above the grants and the daemon's own directories: their mode, owner and
    // attributes (their times change as the daemon and the test work in them).
    let above = |path: &Path| {
        let Meta { mode, uid, gid, xattrs, .. } = meta(path);
        (mode, uid, gid, xattrs)
    };
    std::fs::create_dir_all(data_dir.join("work")).unwrap();
    let guarded = [root.path().to_path_buf(), data_dir.clone(), data_dir.join("work")];
    let guarded_before: Vec<_> = guarded.iter().map(|path| above(path)).collect();

    let post = |repo: &str| {
        let payload = push_payload("acme", repo, "refs/heads/main", &before, &after, "file:///unused");
        let daemon = &daemon;
        async move {
            let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
            assert_eq!(status, 202, "{body}");
            body["jobs"][0].as_str().unwrap().to_owned()
        }
    };
    let mut jobs = Vec::new();
    for attack in &plan {
        jobs.push(post(attack.rule).await);
    }
    let update = post("widgets").await;
    // A push whose tree is a bomb: the checkout refuses it before writing a file of it.
    let bomb_payload = push_payload("acme", "bombed", "refs/heads/main", &bomb_before, &bomb_after, "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &bomb_payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let bomb_job = body["jobs"][0].as_str().unwrap().to_owned();

    // The ordinary push is served while the looping and sleeping plugins still run.
    let updated = daemon.finished_job(&update).await;
    assert_eq!(updated["state"], "succeeded", "{updated:#}");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), after);
    // ... while the looping plugin ran: their times overlap. Its 30 s deadline leaves a loaded
    // machine that much time to serve the push; a daemon that let the loop hold the push
    // back would finish it after the loop's end.
    let looping = daemon.finished_job(&jobs[0]).await;
    let (loop_start, loop_end) = (looping["started_at"].as_str().unwrap(), looping["finished_at"].as_str().unwrap());
    let update_end = updated["finished_at"].as_str().unwrap();
    // RFC 3339 in UTC with milliseconds: text order is time order.
    assert!(
        loop_start <= update_end && update_end <= loop_end,
        "the ordinary push finished at {update_end}, outside the looping plugin's run ({loop_start} to {loop_end})"
    );
    assert_eq!(daemon.get("/healthz").await.0, 200);
    let bomb_record = daemon.finished_job(&bomb_job).await;
    assert_eq!(bomb_record["state"], "failed", "{bomb_record:#}");
    assert!(short(&bomb_record).contains("the tree has more than 200000 entries"), "{}", short(&bomb_record));
    assert_eq!(git(&bombed_checkout, &["rev-parse", "HEAD"]), bomb_before, "the checkout stayed where it was");
    assert_eq!(work_tree(&bombed_checkout), bombed_files, "nothing of the bomb was written");

    let mut problems = Vec::new();
    for (attack, job) in plan.iter().zip(&jobs) {
        let record = daemon.finished_job(job).await;
        let text = serde_json::to_string(&record).unwrap().replace("\\\"", "\"");
        if std::env::var_os("HOSTILE_SHOW").is_some() {
            eprintln!("{}: {} {}", attack.rule, record["state"], short(&record));
        }
        if text.contains("ESCAPED") {
            problems.push(format!("{}: ESCAPED the sandbox: {record:#}", attack.rule));
            continue;
        }
        // The floods are cut, not stopped; the holder only keeps a secret.
        let expected_state = if ["workspace-holder", "log-flood", "stdout-flood"].contains(&attack.rule) {
            "succeeded"
        } else {
            "failed"
        };
        if record["state"] != expected_state {
            problems.push(format!("{}: state {} (expected {expected_state})", attack.rule, record["state"]));
        }
        for words in attack.says {
            if !text.contains(words) {
                problems.push(format!("{}: record lacks {words:?}: {}", attack.rule, short(&record)));
            }
        }
    }
    assert!(problems.is_empty(), "{} of {} attacks misbehaved:\n{}", problems.len(), plan.len(), problems.join("\n"));

    // The floods were cut, not stored: each step's log stays within its quota.
    for rule in ["log-flood", "stdout-flood"] {
        let job = &jobs[plan.iter().position(|attack| attack.rule == rule).unwrap()];
        let (_, record) = daemon.get(&format!("/api/jobs/{job}")).await;
        let lines = record["logs"].as_array().unwrap();
        assert!(lines.len() <= 5_001, "{rule}: {} log lines kept", lines.len());
    }
    // Every attempt's workspace is gone with it.
    assert_eq!(std::fs::read_dir(data_dir.join("work")).map(|dir| dir.count()).unwrap_or(0), 0);
    // Nothing was written where the grant did not allow: outside the grants and in the
    // read-only grant, every file is byte-identical and nothing was added or removed.
    assert!(!Path::new(&format!("{}/planted.txt", places.granted)).exists());
    assert!(!Path::new(&format!("{}/stolen", places.site)).exists());
    assert!(world(&root.path().join("outside")) == outside_before, "the world outside the grants changed");
    assert!(world(&root.path().join("granted")) == granted_before, "the read-only grant changed");
    let guarded_after: Vec<_> = guarded.iter().map(|path| above(path)).collect();
    assert_eq!(guarded_after, guarded_before, "the metadata of {guarded:?} changed");
    // No clone of an outside repository happened, and none of its objects reached a grant.
    assert!(!Path::new(&format!("{}/copy0", places.site)).exists(), "a refused clone left a directory");
    let fetched_outside = std::process::Command::new("git")
        .args(["cat-file", "-e", &places.outside_commit])
        .current_dir(root.path().join("gitdir/x"))
        .status()
        .unwrap();
    assert!(!fetched_outside.success(), "the outside repository's commit reached gitdir/x");
    // A granted program worked inside its writable grant, and only there.
    assert!(Path::new(&format!("{}/by-program", places.site)).exists());
    // No connection ever reached the ungranted listener.
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "a connection reached {ungranted_addr}");
    // Nothing a program started outlived its step.
    assert_eq!(sleeping("607"), Vec::<String>::new(), "a process that called setsid survived");
    assert_eq!(sleeping("608"), Vec::<String>::new(), "a background process survived");
    assert_eq!(daemon.get("/healthz").await.0, 200);
    daemon.stop().await;
}

/// The parts of a job record that say why it ended.
fn short(record: &Value) -> String {
    let steps: Vec<&Value> = record["steps"].as_array().map(|s| s.iter().collect()).unwrap_or_default();
    let summaries: Vec<&str> = steps.iter().filter_map(|step| step["summary"].as_str()).collect();
    format!("summary {:?}, error {:?}, steps {summaries:?}", record["summary"], record["error"])
}
