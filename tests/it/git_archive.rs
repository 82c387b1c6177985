//! Issue 22: the git capability's `tags` and `archive` through a real plugin and the
//! real runtime. Archives list what the real `git archive` lists for the same tag, two
//! builds are byte-identical and their checksums are the files'; an output anywhere
//! the plugin may not write (through a link out of the grant, a read-only or git-only
//! grant, `..`) is refused and nothing outside changes; a tree over the bounds is
//! refused before anything is written.

use crate::hostile::{bomb_tree, world};
use crate::sandbox::{assert_refused, probe};
use gitauto::config::Config;
use gitauto::runtime::Runtime;
use gitauto_tests::git;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A probe granted `ro/` (read), `repos/` (git) and `site/` (write), next to `outside/`
/// (not granted); `ro/widgets` is a repository with tags and export-ignore rules, and
/// `site/escape` a link to `outside/`.
struct World {
    runtime: Arc<Runtime>,
    root: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for dir in ["ro", "repos", "site", "outside"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("outside/victim.txt"), "untouched").unwrap();
        std::os::unix::fs::symlink("../outside", root.path().join("site/escape")).unwrap();
        std::os::unix::fs::symlink("../outside/victim.txt", root.path().join("site/victim.tar.gz")).unwrap();
        let repo = root.path().join("ro/widgets");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let files: &[(&str, &str)] = &[
            (
                ".gitattributes",
                "/tests export-ignore\n*.md export-ignore\nREADME.md -export-ignore\n.git* export-ignore\n",
            ),
            ("README.md", "# widgets\n"),
            ("CONTRIBUTING.md", "for developers\n"),
            ("widgets.info.yml", "name: Widgets\n"),
            ("src/Widget.php", "<?php\n"),
            ("src/.gitattributes", "*.dist export-ignore\n"),
            ("src/config.dist", "dev only\n"),
            ("tests/WidgetTest.php", "<?php\n"),
            ("docs/.gitattributes", "* export-ignore\nindex.md -export-ignore\n"),
            ("docs/index.md", "kept by the deeper file\n"),
            ("docs/notes.txt", "left out\n"),
        ];
        for (path, content) in files {
            let path = repo.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "first"]);
        git(&repo, &["tag", "1.0.0"]);
        std::fs::write(repo.join("src/Widget.php"), "<?php // 1.1\n").unwrap();
        git(&repo, &["commit", "-qam", "second"]);
        git(&repo, &["tag", "-a", "-m", "New features\n\nWidgets can spin.", "1.1.0"]);

        let r = root.path().display();
        let text = format!(
            r#"
[plugins.probe]
wasm = "{probe}"
grants = {{ dirs = ["{r}/ro", {{ path = "{r}/repos", git = true }}, {{ path = "{r}/site", write = true }}] }}
"#,
            probe = env!("GITAUTO_GUEST_PROBE"),
        );
        let config = Config::parse(&root.path().join("gitauto.toml"), &text).unwrap();
        let specs: Vec<_> = config.plugins.values().cloned().collect();
        let cache = root.path().join("cache");
        let (runtime, _) = tokio::task::spawn_blocking(move || Runtime::new(&specs, &cache)).await.unwrap().unwrap();
        Self { runtime: Arc::new(runtime), root }
    }

    fn path(&self, rest: &str) -> PathBuf {
        self.root.path().join(rest)
    }

    async fn archive(&self, settings: Value) -> Result<Value, String> {
        let mut settings = settings;
        settings["op"] = json!("git-archive");
        settings["path"] = json!(self.path("ro/widgets"));
        probe(&self.runtime, settings).await
    }

    /// Every directory a plugin might reach, with contents and metadata.
    fn everything(&self) -> Vec<impl PartialEq + std::fmt::Debug> {
        ["ro", "repos", "site", "outside"].iter().flat_map(|dir| world(&self.path(dir))).collect()
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn listed(dir: &Path, archive: &Path) -> Vec<String> {
    if archive.extension().is_some_and(|ext| ext == "zip") {
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
                      print('\\n'.join(i.filename for i in z.infolist()))";
        return run(dir, "python3", &["-c", script, &archive.to_string_lossy()]).lines().map(str::to_owned).collect();
    }
    run(dir, "tar", &["tf", &archive.to_string_lossy()]).lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn tags_and_archives_through_a_plugin_match_git() {
    let world = World::new().await;
    let repo = world.path("ro/widgets");

    let tags = probe(&world.runtime, json!({"op": "git-tags", "path": repo})).await.unwrap();
    assert_eq!(tags.as_array().unwrap().len(), 2, "{tags}");
    assert_eq!((tags[0]["name"].as_str(), tags[0]["annotated"].as_bool()), (Some("1.0.0"), Some(false)));
    assert_eq!(tags[0]["commit"].as_str().unwrap(), git(&repo, &["rev-parse", "1.0.0^{commit}"]));
    assert_eq!(tags[1]["name"], "1.1.0");
    assert_eq!(tags[1]["message"], "New features\n\nWidgets can spin.");
    assert_eq!(tags[1]["tagger"], "Test Author <author@example.com>");
    assert_eq!(tags[1]["commit"].as_str().unwrap(), git(&repo, &["rev-parse", "1.1.0^{commit}"]));

    let expected_tar = world.path("git.tar");
    git(&repo, &["archive", "--prefix=widgets/", "-o", &expected_tar.to_string_lossy(), "1.1.0"]);
    let expected = listed(world.root.path(), &expected_tar);
    assert!(expected.contains(&"widgets/docs/index.md".to_owned()) && !expected.iter().any(|p| p.contains("tests")));
    for format in ["tar.gz", "zip", "tar"] {
        // Into a directory that does not exist yet: the host makes it.
        let output = world.path(&format!("site/widgets/widgets-1.1.0.{format}"));
        let settings = json!({"revision": "1.1.0", "format": format, "output": output, "prefix": "widgets/"});
        let info = world.archive(settings.clone()).await.unwrap();
        assert_eq!(info["path"], json!(output));
        assert_eq!(listed(world.root.path(), &output), expected, "{format}");
        assert_eq!(info["files"].as_u64().unwrap() as usize, expected.iter().filter(|p| !p.ends_with('/')).count());
        let bytes = std::fs::read(&output).unwrap();
        assert_eq!(info["size"].as_u64(), Some(bytes.len() as u64));
        for (program, key) in [("sha256sum", "sha256"), ("sha512sum", "sha512"), ("md5sum", "md5")] {
            let sum = run(world.root.path(), program, &[&output.to_string_lossy()]);
            assert_eq!(sum.split_whitespace().next(), info[key].as_str(), "{program} of the {format}");
        }
        // A second build replaces the first with the same bytes.
        let again = world.archive(settings).await.unwrap();
        assert_eq!(std::fs::read(&output).unwrap(), bytes, "{format} twice");
        assert_eq!(again, info);
    }
    let tgz = world.path("site/widgets/widgets-1.1.0.tar.gz");
    run(world.root.path(), "tar", &["tzf", &tgz.to_string_lossy()]);
    // Nothing but the archives was left in the directory (no partial files).
    let mut names: Vec<String> = std::fs::read_dir(world.path("site/widgets"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["widgets-1.1.0.tar", "widgets-1.1.0.tar.gz", "widgets-1.1.0.zip"]);
}

#[tokio::test]
async fn outputs_the_plugin_may_not_write_are_refused_and_nothing_changes() {
    let world = World::new().await;
    let site = world.path("site");
    let before = world.everything();
    let escape = world.path("site/escape/out.tar.gz");
    let dotdot = format!("{}/../outside/out.tar.gz", site.display());
    for (output, why) in [
        (escape.to_string_lossy().into_owned(), "denied"),
        (world.path("site/victim.tar.gz").to_string_lossy().into_owned(), "denied"),
        (dotdot, "denied"),
        (world.path("outside/out.tar.gz").to_string_lossy().into_owned(), "denied"),
        (world.path("ro/out.tar.gz").to_string_lossy().into_owned(), "not inside a writable granted directory"),
        (world.path("repos/out.tar.gz").to_string_lossy().into_owned(), "not inside a writable granted directory"),
        ("out.tar.gz".to_owned(), "is not an absolute path"),
    ] {
        let refused = world.archive(json!({"revision": "1.1.0", "format": "tar.gz", "output": output})).await;
        assert_refused(refused, why);
        assert_eq!(world.everything(), before, "{output}");
    }
    assert_eq!(std::fs::read_to_string(world.path("outside/victim.txt")).unwrap(), "untouched");

    // Malformed options are refused before anything is written.
    for (settings, why) in [
        (json!({"prefix": "/abs/"}), "the prefix `/abs/`"),
        (json!({"prefix": "../up/"}), "the prefix `../up/`"),
        (json!({"prefix": "no-slash"}), "must be empty or end with `/`"),
        (json!({"subdirectory": "../ro"}), "the subdirectory `../ro`"),
        (json!({"subdirectory": "missing"}), "not found: archiving `1.1.0`: the subdirectory `missing`"),
        (json!({"exclude": ["!README.md"]}), "negative patterns are not allowed"),
        (json!({"revision": "no-such-tag"}), "not found"),
    ] {
        let mut settings = settings;
        settings["revision"] = settings.get("revision").cloned().unwrap_or(json!("1.1.0"));
        settings["format"] = json!("zip");
        settings["output"] = json!(world.path("site/bad.zip"));
        assert_refused(world.archive(settings.clone()).await, why);
        assert_eq!(world.everything(), before, "{settings}");
    }
}

#[tokio::test]
async fn a_tree_over_the_bounds_is_refused_before_anything_is_written() {
    let world = World::new().await;
    let bombed = world.path("repos/bomb");
    let repo = git2::Repository::init(&bombed).unwrap();
    let tree = bomb_tree(&repo);
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "bomb", &tree, &[]).unwrap();
    let before = world.everything();
    let settings = json!({
        "op": "git-archive", "path": bombed, "revision": "HEAD", "format": "zip",
        "output": world.path("site/bomb.zip"),
    });
    assert_refused(
        probe(&world.runtime, settings).await,
        "invalid: archiving `HEAD`: the tree has more than 200000 entries",
    );
    assert_eq!(world.everything(), before);
}

/// Issue 22 (review of `archive`): through the plugin, what an attacker controls is
/// refused as `invalid` before anything is written, and the call returns (the thread
/// does not spin past the step): an exclude pattern built to backtrack on a deep tree,
/// too many exclude patterns, a 1 MiB prefix, a prefix naming `.git`, and trees whose
/// entries git refuses (`.git` in NTFS's spelling, a link beside a directory of its
/// name).
#[tokio::test]
async fn hostile_options_and_trees_are_refused_and_nothing_changes() {
    let world = World::new().await;
    let hostile = world.path("repos/hostile");
    let repo = git2::Repository::init(&hostile).unwrap();
    let blob = repo.blob(b"[core]\n\thooksPath = /tmp\n").unwrap();
    let link = repo.blob(b"/etc").unwrap();
    let raw = |entries: &[(&str, &str, git2::Oid)]| {
        let mut raw = Vec::new();
        for (mode, name, id) in entries {
            raw.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            raw.extend_from_slice(id.as_bytes());
        }
        repo.odb().unwrap().write(git2::ObjectType::Tree, &raw).unwrap()
    };
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    let commit_of = |tree: git2::Oid| {
        let tree = repo.find_tree(tree).unwrap();
        repo.commit(None, &signature, &signature, "hostile", &tree, &[]).unwrap().to_string()
    };
    // `q/q/…/x.php`, sixty directories deep.
    let mut deep = raw(&[("100644", "x.php", blob)]);
    for _ in 0..60 {
        deep = raw(&[("40000", "q", deep)]);
    }
    let deep = commit_of(deep);

    let before = world.everything();
    let backtracking = ["**/q/"; 25].concat() + "zzz";
    let huge = format!("{}/", "p".repeat(1 << 20));
    for (settings, why) in [
        (json!({"exclude": [backtracking]}), "steps to match"),
        (json!({"exclude": vec!["*.md"; 1001]}), "invalid: 1001 exclude patterns: more than 1000"),
        (json!({"prefix": huge}), "invalid: the prefix is 1048577 bytes, longer than 4096"),
        (json!({"prefix": "widgets/.git/"}), "`.git` as some file system reads it"),
    ] {
        let mut settings = settings;
        settings["op"] = json!("git-archive");
        settings["path"] = json!(hostile);
        settings["revision"] = json!(deep);
        settings["format"] = json!("tar.gz");
        settings["output"] = json!(world.path("site/new/hostile.tar.gz"));
        assert_refused(probe(&world.runtime, settings).await, why);
        assert_eq!(world.everything(), before, "{why}");
    }

    let config = raw(&[("100644", "config", blob)]);
    for (tree, why) in [
        (raw(&[("40000", "git~1", config)]), "named \"git~1\" (`.git` as some file system reads it)"),
        (raw(&[("120000", "lib", link), ("40000", "lib", config)]), "two entries named \"lib\""),
    ] {
        let settings = json!({
            "op": "git-archive", "path": hostile, "revision": commit_of(tree), "format": "zip",
            "output": world.path("site/new/hostile.zip"),
        });
        let before = world.everything();
        assert_refused(probe(&world.runtime, settings).await, why);
        assert_eq!(world.everything(), before, "{why}");
    }
}
