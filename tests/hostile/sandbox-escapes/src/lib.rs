//! Hostile plugin: the ways out of the sandbox that issue 16 lists, one per `attack`
//! setting (swapped checkouts, encoded and ambiguous URLs, repository internals that
//! lead elsewhere, git writes in read-only grants, tree bombs, loader variables, code
//! run by granted programs, programs that leave their session, descriptor floods).
//! Each succeeds ("ESCAPED: ...") only if the sandbox let it through; the test also
//! checks the world outside.

use gitauto_plugin::git::Repository;
use gitauto_plugin::process::{self, Command};
use gitauto_plugin::{Error, Event, Outcome, Plugin};
use hostile_kit::symlink;
use serde_json::Value;

struct Hostile;

/// A setting, as text.
fn at<'a>(s: &'a Value, key: &str) -> &'a str {
    s[key].as_str().unwrap_or_default()
}

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        let outcome = match at(&s, "attack") {
            "swap-checkout" => swap_checkout(&s),
            "encoded-file-url" => refused_clones(&s, &[format!("file://{}/%2e%2e/outside/repo", at(&s, "granted"))]),
            "url-authority" => {
                let (granted, other) = (at(&s, "server"), at(&s, "other"));
                refused_clones(
                    &s,
                    &[
                        format!("http://{granted}?@{other}/r.git"),
                        format!("http://{granted}#@{other}/r.git"),
                        format!("http://{granted}\\@{other}/r.git"),
                        format!("http://{granted}%2F@{other}/r.git"),
                        format!("ssh://{granted}?@{other}/r.git"),
                    ],
                )
            }
            "commondir" => commondir(&s),
            "alternates" => alternates(&s),
            "symlinked-objects" => symlinked_objects(&s),
            "worktree-in-read-only" => worktree_in_read_only(&s),
            "clone-into-read-only" => clone_into_read_only(&s),
            "history-search" => history_search(&s),
            "tree-bomb" => tree_bomb(&s),
            "loader-variables" => loader_variables(),
            "git-alias" => run_sh_via_git(&s),
            "program-files" => program_files(&s),
            "program-metadata" => program_metadata(&s),
            "program-network" => program_network(&s),
            "program-leaves-session" => program_leaves_session(),
            "descriptor-flood" => descriptor_flood(),
            "trusted-remote-swap" => trusted_remote_swap(&s),
            "fifo-config" => fifo_config(&s),
            other => Err(format!("unknown attack `{other}`")),
        };
        Ok(match outcome {
            Ok(summary) => Outcome::success(summary),
            Err(why) => Outcome::failure(why),
        })
    }
}

/// Clones `origin` (a granted repository) into `site/<name>`.
fn clone_granted(s: &Value, name: &str) -> Result<(Repository, String), String> {
    let path = format!("{}/{name}", at(s, "site"));
    let repo =
        Repository::clone(at(s, "origin"), &path, None).map_err(|err| format!("setup clone: {}", err.message()))?;
    Ok((repo, path))
}

/// Finding 1: open a checkout, swap it for a link to a directory outside, then reset and
/// clean through the handle.
fn swap_checkout(s: &Value) -> Result<String, String> {
    let (_, wt) = clone_granted(s, "wt")?;
    let gd = format!("{}/gd", at(s, "site"));
    std::fs::rename(format!("{wt}/.git"), &gd).map_err(|err| format!("moving .git: {err}"))?;
    std::fs::write(format!("{wt}/.git"), format!("gitdir: {gd}\n")).map_err(|err| format!("gitdir file: {err}"))?;
    let repo = Repository::open(&wt).map_err(|err| format!("open: {}", err.message()))?;
    std::fs::rename(&wt, format!("{wt}.old")).map_err(|err| format!("moving the checkout: {err}"))?;
    symlink(at(s, "victim_relative"), &wt).map_err(|err| format!("linking: {err}"))?;
    let mut refused = Vec::new();
    match repo.reset_hard("HEAD") {
        Ok(id) => return Err(format!("ESCAPED: reset wrote {id} into the victim")),
        Err(err) => refused.push(format!("reset-hard: {}", err.message())),
    }
    match repo.clean() {
        Ok(removed) if !removed.is_empty() => return Err(format!("ESCAPED: clean removed {removed:?}")),
        Ok(_) => refused.push("clean: removed nothing".into()),
        Err(err) => refused.push(format!("clean: {}", err.message())),
    }
    match repo.tree("HEAD") {
        Ok(entries) => refused.push(format!("tree: {} entries", entries.len())),
        Err(err) => refused.push(format!("tree: {}", err.message())),
    }
    Err(refused.join("; "))
}

/// Findings 2 and 3: clones that the grant check and libgit2 would read differently.
fn refused_clones(s: &Value, urls: &[String]) -> Result<String, String> {
    let mut refused = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let path = format!("{}/copy{i}", at(s, "site"));
        match Repository::clone(url, &path, None) {
            Ok(_) => return Err(format!("ESCAPED: cloned {url}")),
            Err(err) => refused.push(err.message()),
        }
    }
    Err(refused.join("; "))
}

fn mkdirs(path: &str) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|err| format!("{path}: {err}"))
}

fn write(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|err| format!("{path}: {err}"))
}

/// Finding 6: a git directory whose `commondir` is another repository's.
fn commondir(s: &Value) -> Result<String, String> {
    let git = format!("{}/e/.git", at(s, "site"));
    mkdirs(&format!("{git}/refs"))?;
    mkdirs(&format!("{git}/objects"))?;
    write(&format!("{git}/HEAD"), "ref: refs/heads/main\n")?;
    write(&format!("{git}/commondir"), &format!("{}/.git", at(s, "outside_repo")))?;
    match Repository::open(&format!("{}/e", at(s, "site"))).and_then(|repo| repo.resolve("HEAD")) {
        Ok(id) => Err(format!("ESCAPED: read the outside repository's HEAD {id}")),
        Err(err) => Err(err.message()),
    }
}

/// Finding 6: alternates pointing at another repository's objects.
fn alternates(s: &Value) -> Result<String, String> {
    let (_, path) = clone_granted(s, "alt")?;
    write(&format!("{path}/.git/objects/info/alternates"), &format!("{}/.git/objects\n", at(s, "outside_repo")))?;
    match Repository::open(&path).and_then(|repo| repo.tree(at(s, "outside_commit"))) {
        Ok(entries) => Err(format!("ESCAPED: listed {} files of the outside repository", entries.len())),
        Err(err) => Err(err.message()),
    }
}

/// Finding 6: `objects` a link to another repository's.
fn symlinked_objects(s: &Value) -> Result<String, String> {
    let (_, path) = clone_granted(s, "linked")?;
    std::fs::rename(format!("{path}/.git/objects"), format!("{path}/.git/objects.old")).map_err(|e| e.to_string())?;
    symlink(&format!("{}/.git/objects", at(s, "outside_repo")), &format!("{path}/.git/objects"))
        .or_else(|_| symlink("../../../outside/repo/.git/objects", &format!("{path}/.git/objects")))
        .map_err(|err| format!("linking: {err}"))?;
    match Repository::open(&path).and_then(|repo| repo.tree(at(s, "outside_commit"))) {
        Ok(entries) => Err(format!("ESCAPED: listed {} files through a linked object store", entries.len())),
        Err(err) => Err(err.message()),
    }
}

/// Finding 6: a work tree inside a read-only grant, then reset and clean.
fn worktree_in_read_only(s: &Value) -> Result<String, String> {
    let (_, path) = clone_granted(s, "wtro")?;
    let config = format!("{path}/.git/config");
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    write(&config, &format!("{text}[core]\n\tworktree = {}\n", at(s, "granted")))?;
    let repo = Repository::open(&format!("{path}/.git")).map_err(|err| format!("open: {}", err.message()))?;
    let mut refused = Vec::new();
    match repo.reset_hard("HEAD") {
        Ok(_) => return Err("ESCAPED: reset wrote into the read-only grant".into()),
        Err(err) => refused.push(err.message()),
    }
    match repo.clean() {
        Ok(removed) if !removed.is_empty() => return Err(format!("ESCAPED: clean removed {removed:?}")),
        Ok(_) => {}
        Err(err) => refused.push(err.message()),
    }
    Err(refused.join("; "))
}

/// Finding 6: a clone into a read-only grant.
fn clone_into_read_only(s: &Value) -> Result<String, String> {
    let path = format!("{}/cloned-here", at(s, "granted"));
    match Repository::clone(at(s, "origin"), &path, None) {
        Ok(_) => Err("ESCAPED: cloned into a read-only grant".into()),
        Err(err) => Err(err.message()),
    }
}

/// Finding 8: a revision that searches all of history inside the host.
fn history_search(s: &Value) -> Result<String, String> {
    let (repo, _) = clone_granted(s, "search")?;
    match repo.resolve(":/initial") {
        Ok(id) => Err(format!("ESCAPED: searched history: {id}")),
        Err(err) => Err(err.message()),
    }
}

/// Finding 7: a granted repository holds a tree of 10^8 paths in a few kilobytes.
fn tree_bomb(s: &Value) -> Result<String, String> {
    let repo = Repository::open(at(s, "bomb")).map_err(|err| err.message())?;
    let mut refused = Vec::new();
    match repo.tree("bomb") {
        Ok(entries) => return Err(format!("ESCAPED: listed {} entries", entries.len())),
        Err(err) => refused.push(format!("tree: {}", err.message())),
    }
    match repo.changed_paths("small", "bomb") {
        Ok(paths) => return Err(format!("ESCAPED: diffed {} paths", paths.len())),
        Err(err) => refused.push(format!("changed-paths: {}", err.message())),
    }
    Err(refused.join("; "))
}

fn command(program: &str, args: &[&str], env: &[(&str, &str)], cwd: Option<&str>) -> Command {
    Command {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        cwd: cwd.map(str::to_owned),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        timeout: Some(2_000),
        stdin: None,
    }
}

/// Finding 4: variables that make any program load or run code of the plugin's choosing.
fn loader_variables() -> Result<String, String> {
    let mut refused = Vec::new();
    for (name, value) in [
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("LD_DEBUG", "libs"),
        ("GCONV_PATH", "/tmp"),
        ("GIT_CONFIG_COUNT", "1"),
        ("PATH", "/tmp"),
        ("BASH_ENV", "/tmp/x"),
    ] {
        match process::run(&command("echo", &["hi"], &[(name, value)], None)) {
            Ok(out) => return Err(format!("ESCAPED: {name} was accepted ({:?})", out.stderr)),
            Err(err) => refused.push(err.message()),
        }
    }
    Err(refused.join("; "))
}

/// Finding 4: `git -c alias.x='!cmd'` runs a command; it must stay in the grants.
fn run_sh_via_git(s: &Value) -> Result<String, String> {
    let planted = format!("{}/pwned-by-git", at(s, "outside"));
    let alias = format!("alias.x=!touch {planted}; cat {}/secret.txt", at(s, "outside"));
    let out = process::run(&command("git", &["-c", &alias, "x"], &[], Some(at(s, "site")))).map_err(|e| e.message())?;
    if out.stdout.contains("secret") {
        return Err(format!("ESCAPED: read the secret: {}", out.stdout));
    }
    Err(format!("git alias ran confined: exit {:?}: {}", out.exit_code, out.stderr.trim()))
}

/// Finding 4: a granted shell reads, writes and deletes outside the grants.
fn program_files(s: &Value) -> Result<String, String> {
    let outside = at(s, "outside");
    let script = format!(
        "cat {outside}/secret.txt; echo x > {outside}/planted; rm -f {outside}/victim/keep.txt; \
         cat /etc/hostname; ls {data}; echo written > {site}/by-program",
        data = at(s, "data_dir"),
        site = at(s, "site"),
    );
    let out = process::run(&command("/bin/sh", &["-c", &script], &[], Some(at(s, "site")))).map_err(|e| e.message())?;
    if out.stdout.contains("secret") || out.stdout.contains("gitauto.sqlite") {
        return Err(format!("ESCAPED: {}", out.stdout));
    }
    Err(format!("the shell stayed in its grants: {}", out.stderr.trim().replace('\n', " | ")))
}

/// Security review: a granted program changes the mode, owner, times and extended
/// attributes of files outside its grants (Landlock does not confine those calls): a
/// secret, the directory above its grant, the daemon's data directory, a read-only
/// grant; by path, through a git alias, and through `O_PATH` descriptors.
fn program_metadata(s: &Value) -> Result<String, String> {
    let (outside, site, data) = (at(s, "outside"), at(s, "site"), at(s, "data_dir"));
    let root = site.trim_end_matches("/site");
    let targets = [
        format!("{outside}/secret.txt"),
        outside.to_owned(),
        root.to_owned(),
        data.to_owned(),
        format!("{data}/work"),
        format!("{}/src.git/HEAD", at(s, "granted")),
        at(s, "granted").to_owned(),
    ];
    let python = r#"
import ctypes, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_EMPTY_PATH = 0x1000
FCHOWNAT, UTIMENSAT = (260, 280) if platform.machine() == "x86_64" else (54, 88)
for path in sys.argv[1:]:
    tries = [
        ("chmod", lambda: os.chmod(path, 0o606)),
        ("lchmod", lambda: os.chmod(path, 0o606, follow_symlinks=False)),
        ("chown", lambda: os.chown(path, os.getuid(), os.getgid())),
        ("utime", lambda: os.utime(path, (1, 1))),
        ("setxattr", lambda: os.setxattr(path, "user.x", b"1")),
        ("removexattr", lambda: os.removexattr(path, "user.keep")),
    ]
    try:
        fd = os.open(path, os.O_PATH)
    except OSError as err:
        print("O_PATH", err.strerror, file=sys.stderr)
        fd = -1
    tries += [
        ("fchmod O_PATH", lambda: os.chmod(fd, 0o606)),
        ("fchown O_PATH", lambda: os.chown(fd, os.getuid(), os.getgid())),
        ("futimens O_PATH", lambda: os.utime(fd, (1, 1))),
        ("fsetxattr O_PATH", lambda: os.setxattr(fd, "user.x", b"1")),
    ]
    # What counts is the file, not the answer: mode and owner changes are accepted and
    # do nothing.
    def state():
        st = os.stat(path, follow_symlinks=False)
        try:
            attrs = sorted(os.listxattr(path, follow_symlinks=False))
        except OSError:
            attrs = None
        return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, attrs)
    try:
        read = os.open(path, os.O_RDONLY)
    except OSError as err:
        print("O_RDONLY", err.strerror, file=sys.stderr)
        read = -1
    tries += [
        ("fchmod read-only", lambda: os.chmod(read, 0o606)),
        ("fchown read-only", lambda: os.chown(read, os.getuid() + 1, os.getgid())),
        ("fsetxattr read-only", lambda: os.setxattr(read, "user.x", b"1")),
        ("fremovexattr read-only", lambda: os.removexattr(read, "user.keep")),
    ]
    for name, call in tries:
        before = state()
        try:
            call()
            print(name, "answered success", file=sys.stderr)
        except OSError as err:
            print(name, err.strerror, file=sys.stderr)
        if state() != before:
            print("CHANGED", name, path)
    for name, number, args in [
        ("fchownat AT_EMPTY_PATH", FCHOWNAT, (fd, b"", os.getuid(), os.getgid(), AT_EMPTY_PATH)),
        ("utimensat AT_EMPTY_PATH", UTIMENSAT, (fd, b"", None, AT_EMPTY_PATH)),
        ("fchmodat2 AT_EMPTY_PATH", 452, (fd, b"", 0o606, AT_EMPTY_PATH)),
    ]:
        before = state()
        if libc.syscall(number, *args) != 0:
            print(name, os.strerror(ctypes.get_errno()), file=sys.stderr)
        if state() != before:
            print("CHANGED", name, path)
"#;
    let script = "for t in \"$@\"; do chmod 0606 \"$t\"; chown \"$(id -u):$(id -g)\" \"$t\"; \
                  touch -c -d 2001-01-01 \"$t\"; git -c alias.x='!chmod 000' x \"$t\"; done";
    let mut args = vec!["-c", script, "sh"];
    args.extend(targets.iter().map(String::as_str));
    let shelled = process::run(&command("/bin/sh", &args, &[], Some(site))).map_err(|e| e.message())?;
    let mut said = vec![shelled.stderr];
    // Only `/bin/sh` is granted; it runs the system's python.
    let mut args = vec!["-c", "exec python3 -c \"$0\" \"$@\"", python];
    args.extend(targets.iter().map(String::as_str));
    let out = process::run(&command("/bin/sh", &args, &[], Some(site))).map_err(|e| e.message())?;
    if out.stdout.contains("CHANGED") {
        return Err(format!("ESCAPED: {}", out.stdout.trim().replace('\n', " | ")));
    }
    said.push(out.stderr);
    Err(format!("no metadata changed: {}", said.join(" ").trim().replace('\n', " | ")))
}

/// Finding 4: a granted program without `network` connects to a listener.
fn program_network(s: &Value) -> Result<String, String> {
    let url = format!("http://{}/r.git", at(s, "other"));
    let out = process::run(&command("git", &["ls-remote", &url], &[], Some(at(s, "site")))).map_err(|e| e.message())?;
    if out.exit_code == Some(0) {
        return Err(format!("ESCAPED: reached {url}: {}", out.stdout));
    }
    Err(format!("no network: {}", out.stderr.trim()))
}

/// Finding 5: a program that starts a child in a new session and returns at once.
fn program_leaves_session() -> Result<String, String> {
    let script = "setsid sleep 607 & sleep 608 & echo started";
    let mut cmd = command("/bin/sh", &["-c", script], &[], None);
    cmd.timeout = Some(500);
    let out = process::run(&cmd).map_err(|e| e.message())?;
    Err(format!("the session ended with the program (timed out: {}): {}", out.timed_out, out.stderr.trim()))
}

/// Review of issue 16: a plugin with a git grant clones from its writable directory
/// (checked then), swaps the source for a link to a repository outside, and fetches:
/// the remote it recorded must be checked again, not trusted.
fn trusted_remote_swap(s: &Value) -> Result<String, String> {
    let source = format!("{}/src", at(s, "site"));
    Repository::clone(at(s, "origin"), &source, None).map_err(|err| format!("setup: {}", err.message()))?;
    let target = format!("{}/x", at(s, "gitdir"));
    let repo = Repository::clone(&source, &target, None).map_err(|err| format!("clone: {}", err.message()))?;
    std::fs::rename(&source, format!("{source}.old")).map_err(|err| format!("moving the source: {err}"))?;
    symlink("../outside/repo", &source).map_err(|err| format!("linking: {err}"))?;
    match repo.fetch("origin") {
        Ok(n) => Err(format!("ESCAPED: fetched {n} refs from the repository outside")),
        Err(err) => Err(err.message()),
    }
}

/// Review of issue 16: a `config` that is a FIFO would hold libgit2's open forever.
fn fifo_config(s: &Value) -> Result<String, String> {
    let repo = format!("{}/ff", at(s, "site"));
    let script = format!(
        "mkdir -p {repo}/.git/refs {repo}/.git/objects && echo 'ref: refs/heads/main' > {repo}/.git/HEAD && mkfifo {repo}/.git/config"
    );
    let out = process::run(&command("/bin/sh", &["-c", &script], &[], Some(at(s, "site")))).map_err(|e| e.message())?;
    if out.exit_code != Some(0) {
        return Err(format!("no FIFO could be made: {}", out.stderr.trim()));
    }
    match Repository::open(&repo) {
        Ok(_) => Err("ESCAPED: opened a repository whose config is a FIFO".into()),
        Err(err) => Err(err.message()),
    }
}

/// Finding 9: open files until something says no.
fn descriptor_flood() -> Result<String, String> {
    let mut held = Vec::new();
    for i in 0..100_000 {
        match std::fs::File::create(format!("/tmp/f{}", i % 16)) {
            Ok(file) => held.push(file),
            Err(err) => return Err(format!("stopped after {} open files: {err}", held.len())),
        }
    }
    Err(format!("ESCAPED: held {} open files", held.len()))
}

gitauto_plugin::export!(Hostile);
