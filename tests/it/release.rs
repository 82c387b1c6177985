//! `release` through the daemon on real tags (lightweight and annotated) in real
//! repositories: archives the host writes into a granted directory, byte-identical on a
//! second run, with the checksums the record carries and `export-ignore` honoured; the
//! record beside them and in the job's output; the Drupal feed regenerated on every tag
//! and kept in version order; publishing to a real S3-compatible server, with the feed
//! rebuilt from the records in the bucket; a `notify` step announcing the record; events
//! that are not a release skipped; the archive settings reaching the host; grants
//! checked at load.

use gitauto::config::Config;
use gitauto_tests::receiver::Receiver;
use gitauto_tests::s3::S3Server;
use gitauto_tests::{TestDaemon, TestGit, git, github_source, push_payload, step};
use serde_json::{Value, json};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// The Drupal project table the tests' steps publish a feed for.
const DRUPAL: &str = r#"drupal = { title = "Widgets", link = "https://features.example.com/project/widgets" }"#;

/// A repository `widgets` with a Drupal module's files, one excluded by `exclude`, one
/// by `export-ignore`, and an executable script.
struct World {
    root: tempfile::TempDir,
    repo: TestGit,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let repo = TestGit::new(&Self::canonical(root.path()), "widgets");
        repo.commit_files(
            &[
                ("widgets.info.yml", b"name: Widgets\ntype: module\ncore_version_requirement: ^10\n"),
                ("src/Widget.php", b"<?php\nclass Widget {}\n"),
                ("tests/src/WidgetTest.php", b"<?php\n"),
                (".gitattributes", b"/tests export-ignore\n"),
                ("build.log", b"not released\n"),
            ],
            "the module",
        );
        repo.push("main");
        std::fs::create_dir_all(Self::canonical(root.path()).join("releases")).unwrap();
        Self { root, repo }
    }

    fn canonical(path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        Self::canonical(self.root.path()).join(name)
    }

    fn releases(&self) -> PathBuf {
        self.path("releases")
    }

    fn clone_url(&self) -> String {
        format!("file://{}", self.repo.origin.display())
    }

    /// Tags the author's HEAD as `name` in origin: annotated with `message`, or lightweight.
    fn tag(&self, name: &str, message: Option<&str>) -> String {
        let head = self.repo.head();
        match message {
            Some(message) => git(&self.repo.origin, &["tag", "-a", name, "-m", message, &head]),
            None => git(&self.repo.origin, &["tag", name, &head]),
        };
        git(&self.repo.origin, &["rev-parse", name])
    }

    /// The GitHub push of tag `name`, pointing at `target` (a tag object or a commit).
    fn tag_push(&self, name: &str, target: &str) -> Vec<u8> {
        push_payload("acme", "widgets", &format!("refs/tags/{name}"), &"0".repeat(40), target, &self.clone_url())
    }

    /// The config: `release` granted origin (read) and the releases directory (write),
    /// plus `hosts`, and the `notify` plugin granted `notify_hosts`; `steps` on `on = "tag"`
    /// (the release step asks for the checkout: a notify step after it is not granted the
    /// origin it is cloned from).
    fn config(&self, hosts: &str, notify_hosts: &str, steps: &str) -> String {
        format!(
            r#"
{source}
[plugins.release]
wasm = "builtin:release"
grants = {{ dirs = ["{origin}", {{ path = "{releases}", write = true }}], hosts = [{hosts}] }}

[plugins.notify]
wasm = "builtin:notify"
grants = {{ hosts = [{notify_hosts}] }}

[[rules]]
name = "release"
on = "tag"
{steps}
"#,
            source = github_source(),
            origin = self.path("origin").display(),
            releases = self.releases().display(),
        )
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sha512(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha512::digest(bytes))
}

/// What `program args... file` prints first (a checksum, a listing), by the real tools.
fn run(program: &str, args: &[&str], file: &Path) -> String {
    let output = std::process::Command::new(program).args(args).arg(file).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `<version>`s of the feed, in the order it lists them.
fn feed_versions(xml: &str) -> Vec<String> {
    xml.split("<version>").skip(1).map(|rest| rest.split("</version>").next().unwrap().to_owned()).collect()
}

/// The files in `dir` (names), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks one asset of `record` against the file the host wrote: path, size and every
/// checksum, computed here and by the system's own tools.
fn check_asset(record: &Value, index: usize, dir: &Path, name: &str, format: &str) -> Vec<u8> {
    let asset = &record["assets"][index];
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert_eq!(asset["name"], name);
    assert_eq!(asset["format"], format);
    assert_eq!(asset["path"], path.display().to_string());
    assert_eq!(asset["size"], bytes.len() as u64);
    assert_eq!(asset["sha256"], sha256(&bytes));
    assert_eq!(asset["sha512"], sha512(&bytes));
    let md5 = run("md5sum", &[], &path);
    assert_eq!(asset["md5"], md5.split_whitespace().next().unwrap());
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_are_released_to_a_directory_with_their_records_and_the_feed_in_version_order() {
    let world = World::new();
    let steps = format!(
        r#"steps = [{{ name = "release", plugin = "release", checkout = true, with = {{ output_dir = "{releases}", base_url = "https://downloads.example.com/files/", exclude = ["*.log"], {DRUPAL} }} }}]"#,
        releases = world.releases().display()
    );
    let daemon = TestDaemon::start(&world.config("", "", &steps)).await;
    let project = world.releases().join("widgets");

    // A lightweight tag: its date is its commit's, it has no message.
    let commit = world.tag("8.x-1.0", None);
    let job = daemon.run_github("push", &world.tag_push("8.x-1.0", &commit)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let output = &step(&job, "release")["output"];
    assert_eq!(
        files(&project),
        ["widgets-8.x-1.0.json", "widgets-8.x-1.0.tar.gz", "widgets-8.x-1.0.zip"],
        "the archives and the record, nothing else"
    );
    let record: Value = serde_json::from_slice(&std::fs::read(project.join("widgets-8.x-1.0.json")).unwrap()).unwrap();
    assert_eq!(&record, output, "the job's output is the record");
    assert_eq!((record["project"].as_str(), record["version"].as_str()), (Some("widgets"), Some("8.x-1.0")));
    assert_eq!((record["tag"].as_str(), record["commit"].as_str()), (Some("8.x-1.0"), Some(commit.as_str())));
    assert_eq!(
        record["date"],
        git(&world.repo.origin, &["log", "-1", "--format=%ct", &commit]).parse::<i64>().unwrap()
    );
    assert_eq!((&record["message"], &record["notes"]), (&Value::Null, &Value::Null));
    assert_eq!(record["parsed"]["api"], "8.x");
    let tar_gz = check_asset(&record, 0, &project, "widgets-8.x-1.0.tar.gz", "tar.gz");
    let zip = check_asset(&record, 1, &project, "widgets-8.x-1.0.zip", "zip");
    assert_eq!(record["assets"][0]["url"], "https://downloads.example.com/files/widgets/widgets-8.x-1.0.tar.gz");
    assert!(
        record["release_link"].as_str().unwrap().ends_with("/releases/tag/8.x-1.0"),
        "the repository's page of the tag: {record:#}"
    );
    let listed = run("tar", &["tzf"], &project.join("widgets-8.x-1.0.tar.gz"));
    let mut entries: Vec<&str> = listed.lines().filter(|line| !line.ends_with('/')).collect();
    entries.sort();
    assert_eq!(
        entries,
        ["widgets/.gitattributes", "widgets/README.md", "widgets/src/Widget.php", "widgets/widgets.info.yml"],
        "unpacks into widgets/, without the export-ignored tests/ or the excluded build.log"
    );
    let feed_path = world.releases().join("release-history/widgets/current.xml");
    let feed = std::fs::read_to_string(&feed_path).unwrap();
    assert_eq!(feed_versions(&feed), ["8.x-1.0"]);
    let bare = world.releases().join("release-history/widgets/current");
    assert_eq!(std::fs::read_to_string(bare).unwrap(), feed, "the feed also under the name Drupal requests");
    assert!(feed.contains(&format!("<mdhash>{}</mdhash>", record["assets"][0]["md5"].as_str().unwrap())), "{feed}");
    assert!(
        feed.contains("https://downloads.example.com/files/widgets/widgets-8.x-1.0.tar.gz"),
        "the download link is the published archive: {feed}"
    );

    // The same tag again: the same bytes, the same record, the feed unchanged.
    let again = daemon.run_github("push", &world.tag_push("8.x-1.0", &commit)).await;
    assert_eq!(again["state"], "succeeded", "{again:#}");
    assert_eq!(std::fs::read(project.join("widgets-8.x-1.0.tar.gz")).unwrap(), tar_gz, "tar.gz byte-identical");
    assert_eq!(std::fs::read(project.join("widgets-8.x-1.0.zip")).unwrap(), zip, "zip byte-identical");
    assert_eq!(&step(&again, "release")["output"], &record);
    assert_eq!(std::fs::read_to_string(&feed_path).unwrap(), feed);

    // Annotated tags, pushed out of version order: the feed lists them in version order.
    world.repo.commit("src/Widget.php", "<?php\nclass Widget { public $beta = TRUE; }\n", "beta");
    world.repo.push("main");
    let beta = world.tag("8.x-1.2-beta1", Some("First beta of 1.2\n\nNew features: widgets spin."));
    let job = daemon.run_github("push", &world.tag_push("8.x-1.2-beta1", &beta)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let output = &step(&job, "release")["output"];
    assert_eq!(output["message"], "First beta of 1.2\n\nNew features: widgets spin.");
    assert_eq!(output["notes"], output["message"], "the notes are the tag's message by default");
    assert_eq!(output["parsed"]["stability"], "beta");
    assert_eq!(
        output["date"],
        git(&world.repo.origin, &["for-each-ref", "--format=%(taggerdate:unix)", "refs/tags/8.x-1.2-beta1"])
            .parse::<i64>()
            .unwrap(),
        "an annotated tag's date is its tagger's"
    );
    assert_eq!(feed_versions(&std::fs::read_to_string(&feed_path).unwrap()), ["8.x-1.2-beta1", "8.x-1.0"]);

    world.repo.commit("src/Widget.php", "<?php\nclass Widget { /* safe */ }\n", "security fix");
    world.repo.push("main");
    let security = world.tag("8.x-1.1", Some("Security update for SA-CONTRIB-2026-001\n\nFixes an access bypass."));
    let job = daemon.run_github("push", &world.tag_push("8.x-1.1", &security)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let feed = std::fs::read_to_string(&feed_path).unwrap();
    assert_eq!(feed_versions(&feed), ["8.x-1.2-beta1", "8.x-1.1", "8.x-1.0"], "{feed}");
    assert!(feed.contains("Security update"), "the security release's term: {feed}");
    assert_eq!(
        files(&project).iter().filter(|name| name.ends_with(".json")).count(),
        3,
        "one record per release: {:?}",
        files(&project)
    );
    daemon.stop().await;
}

/// The names in the zip at `path`, as Python's zipfile reads them.
fn zip_names(path: &Path) -> Vec<String> {
    let script = "import sys, zipfile\nfor name in sorted(zipfile.ZipFile(sys.argv[1]).namelist()): print(name)";
    run("python3", &["-c", script], path).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_settings_reach_the_host_subdirectory_prefix_name_and_formats() {
    let world = World::new();
    let steps = format!(
        r#"steps = [{{ name = "release", plugin = "release", checkout = true, with = {{ output_dir = "{releases}", subdirectory = "tests", prefix = "{{repo}}-{{version}}", name = "{{project}}_{{tag}}", formats = ["zip"], export_ignore = false }} }}]"#,
        releases = world.releases().display()
    );
    let daemon = TestDaemon::start(&world.config("", "", &steps)).await;
    let tag = world.tag("v3.0.0-rc1", Some("Release type: Bug fixes"));
    let job = daemon.run_github("push", &world.tag_push("v3.0.0-rc1", &tag)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let record = &step(&job, "release")["output"];
    let project = world.releases().join("widgets");
    assert_eq!(files(&project), ["widgets-3.0.0-rc1.json", "widgets_v3.0.0-rc1.zip"]);
    check_asset(record, 0, &project, "widgets_v3.0.0-rc1.zip", "zip");
    assert_eq!(record["assets"].as_array().unwrap().len(), 1);
    assert_eq!(record["assets"][0]["url"], Value::Null, "published only to the directory, no base_url");
    assert_eq!(record["terms"], json!(["Bug fixes"]), "from the tag's message");
    let names: Vec<String> =
        zip_names(&project.join("widgets_v3.0.0-rc1.zip")).into_iter().filter(|name| !name.ends_with('/')).collect();
    assert_eq!(names, ["widgets-3.0.0-rc1/src/WidgetTest.php"], "the export-ignored directory, as the archive's root");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_is_published_to_s3_and_a_notify_step_announces_the_record() {
    let world = World::new();
    let server = S3Server::start(&["downloads"]).await;
    let receiver = Receiver::start().await;
    let steps = format!(
        r#"
[[rules.steps]]
name = "release"
plugin = "release"
checkout = true
with = {{ output_dir = "{releases}", project = "widget_kit", s3 = {{ location = "s3://downloads/files", endpoint = "{endpoint}" }}, {DRUPAL} }}

[[rules.steps]]
name = "announce"
plugin = "notify"
with = {{ url = "{receiver}/released", body = {{ project = "{{{{ steps.release.output.project }}}}", version = "{{{{ steps.release.output.version }}}}", url = "{{{{ steps.release.output.assets[0].url }}}}", sha256 = "{{{{ steps.release.output.assets[0].sha256 }}}}" }} }}
"#,
        releases = world.releases().display(),
        endpoint = server.endpoint(),
        receiver = receiver.url,
    );
    let config = world.config(&server.granted_host(None), &format!("\"{}\"", receiver.host()), &steps);
    let daemon = TestDaemon::start(&config).await;

    let tag = world.tag("v1.0.0", Some("The first release"));
    let job = daemon.run_github("push", &world.tag_push("v1.0.0", &tag)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let record = step(&job, "release")["output"].clone();
    assert_eq!((record["project"].as_str(), record["version"].as_str()), (Some("widget_kit"), Some("1.0.0")));
    let mut keys = server.keys("downloads");
    keys.sort();
    assert_eq!(
        keys,
        [
            "files/release-history/widget_kit/current",
            "files/release-history/widget_kit/current.xml",
            "files/widget_kit/widget_kit-1.0.0.json",
            "files/widget_kit/widget_kit-1.0.0.tar.gz",
            "files/widget_kit/widget_kit-1.0.0.zip",
        ]
    );
    let project = world.releases().join("widget_kit");
    for (name, content_type) in
        [("widget_kit-1.0.0.tar.gz", "application/gzip"), ("widget_kit-1.0.0.zip", "application/zip")]
    {
        let key = format!("files/widget_kit/{name}");
        assert_eq!(server.object("downloads", &key).unwrap(), std::fs::read(project.join(name)).unwrap(), "{name}");
        assert_eq!(server.content_type("downloads", &key).as_deref(), Some(content_type), "{name}");
    }
    let stored: Value =
        serde_json::from_slice(&server.object("downloads", "files/widget_kit/widget_kit-1.0.0.json").unwrap()).unwrap();
    assert_eq!(stored, record, "the record in the bucket is the job's output");
    assert_eq!(
        server.cache_control("downloads", "files/widget_kit/widget_kit-1.0.0.json").as_deref(),
        Some("no-cache")
    );
    let url = format!("{}/downloads/files/widget_kit/widget_kit-1.0.0.tar.gz", server.endpoint());
    assert_eq!(record["assets"][0]["url"], url.as_str(), "no base_url: the object's URL");
    let feed =
        String::from_utf8(server.object("downloads", "files/release-history/widget_kit/current.xml").unwrap()).unwrap();
    assert_eq!(feed_versions(&feed), ["1.0.0"]);
    let bare = "files/release-history/widget_kit/current";
    assert_eq!(server.object("downloads", bare).unwrap(), feed.as_bytes(), "the feed under Drupal's name too");
    assert_eq!(server.content_type("downloads", bare).as_deref(), Some("text/xml; charset=utf-8"));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "one announcement");
    assert_eq!(requests[0].path, "/released");
    assert_eq!(
        requests[0].json(),
        json!({"project": "widget_kit", "version": "1.0.0", "url": url, "sha256": record["assets"][0]["sha256"]})
    );

    // A fresh directory (another node, a lost disk): the feed is rebuilt from the
    // records in the bucket, and lists both releases.
    std::fs::remove_dir_all(&project).unwrap();
    std::fs::remove_dir_all(world.releases().join("release-history")).unwrap();
    world.repo.commit("src/Widget.php", "<?php\nclass Widget { /* 1.1 */ }\n", "more");
    world.repo.push("main");
    let tag = world.tag("v1.1.0", None);
    let job = daemon.run_github("push", &world.tag_push("v1.1.0", &tag)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let feed =
        String::from_utf8(server.object("downloads", "files/release-history/widget_kit/current.xml").unwrap()).unwrap();
    assert_eq!(feed_versions(&feed), ["1.1.0", "1.0.0"], "{feed}");
    let local = std::fs::read_to_string(world.releases().join("release-history/widget_kit/current.xml")).unwrap();
    assert_eq!(local, feed, "the directory's feed is the bucket's");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_tags_and_tags_that_are_not_versions_are_skipped_and_nothing_is_written() {
    let world = World::new();
    // A repository of the plugin's own instead of the job checkout: a deleted tag has
    // no commit to check out.
    let mirror = world.path("origin/widgets.git");
    let rules = format!(
        r#"
[[rules]]
name = "release from the mirror"
on = "tag"
steps = [{{ name = "release", plugin = "release", with = {{ output_dir = "{releases}", repodir = "{mirror}" }} }}]
"#,
        releases = world.releases().display(),
        mirror = mirror.display(),
    );
    let config = format!(
        "{}\n[plugins.release]\nwasm = \"builtin:release\"\ngrants = {{ dirs = [\"{}\", {{ path = \"{}\", write = true }}] }}\n{rules}",
        github_source(),
        world.path("origin").display(),
        world.releases().display(),
    );
    let daemon = TestDaemon::start(&config).await;
    let commit = world.tag("latest", None);
    let job = daemon.run_github("push", &world.tag_push("latest", &commit)).await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    let release = step(&job, "release");
    assert_eq!(release["status"], "skipped", "{job:#}");
    assert!(release["summary"].as_str().unwrap().starts_with("tag `latest` is not a release version"), "{job:#}");

    let mut deleted: Value = serde_json::from_slice(&world.tag_push("v1.0.0", &"0".repeat(40))).unwrap();
    deleted["before"] = commit.as_str().into();
    deleted["deleted"] = true.into();
    deleted["created"] = false.into();
    let job = daemon.run_github("push", &serde_json::to_vec(&deleted).unwrap()).await;
    assert_eq!(job["state"], "skipped", "{job:#}");
    assert_eq!(step(&job, "release")["summary"], "tag `v1.0.0` was deleted", "{job:#}");
    assert!(files(&world.releases()).is_empty(), "nothing written: {:?}", files(&world.releases()));

    // A version tag in the mirror: released from it, without a checkout.
    let commit = world.tag("v2.0.0", None);
    let job = daemon.run_github("push", &world.tag_push("v2.0.0", &commit)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(step(&job, "release")["output"]["commit"], commit.as_str());
    assert_eq!(
        files(&world.releases().join("widgets")),
        ["widgets-2.0.0.json", "widgets-2.0.0.tar.gz", "widgets-2.0.0.zip"]
    );
    daemon.stop().await;
}

/// `gitauto check`'s view: the archives' directory must be granted writable, and the
/// S3 endpoint's host granted.
#[test]
fn the_output_directory_and_the_s3_endpoint_must_be_granted() {
    let dir = tempfile::tempdir().unwrap();
    let config = |dirs: &str, hosts: &str| {
        format!(
            "{}\n[plugins.release]\nwasm = \"builtin:release\"\ngrants = {{ dirs = [{dirs}], hosts = [{hosts}] }}\n\
             [[rules]]\nname = \"release\"\non = \"tag\"\ncheckout = true\n\
             steps = [{{ plugin = \"release\", with = {{ output_dir = \"/srv/releases\", \
             s3 = {{ location = \"s3://downloads/files\", endpoint = \"https://s3.us-east-1.amazonaws.com\" }} }} }}]\n",
            github_source()
        )
    };
    let path = dir.path().join("gitauto.toml");
    let load = |text: String| Config::parse(&path, &text).map(|_| ()).map_err(|err| err.to_string());
    let writable = r#"{ path = "/srv/releases", write = true }"#;
    load(config(writable, r#""github.com", "s3.us-east-1.amazonaws.com""#)).unwrap();
    let err = load(config(r#""/srv/releases""#, r#""s3.us-east-1.amazonaws.com""#)).unwrap_err();
    assert!(
        err.contains("`with.output_dir` = `/srv/releases` is outside the plugin's writable granted directories"),
        "{err}"
    );
    let err = load(config(writable, r#""github.com""#)).unwrap_err();
    assert!(
        err.contains(
            "`with.s3.endpoint`: with `path` addressing requests go to s3.us-east-1.amazonaws.com:443, and host \
             s3.us-east-1.amazonaws.com:443 is not granted"
        ),
        "{err}"
    );
    // Neither a checkout nor a repository of its own: nothing to release from.
    let no_checkout = config(writable, r#""s3.us-east-1.amazonaws.com""#).replace("checkout = true\n", "");
    let err = load(no_checkout).unwrap_err();
    assert!(err.contains("`release` works in the job's checkout"), "{err}");
}

/// The Dropfort-style example: a GitLab source whose tags run `release` (archives, S3, a
/// GitLab release, the Drupal feed) and then `notify`.
#[test]
fn the_dropfort_example_releases_tags_and_announces_them() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs/dropfort.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("${GITLAB_SECRET_TOKEN}", "example-secret").replace("${GITLAB_TOKEN}", "example-token");
    let text = text.replace("${S3_KEY}", "example-key").replace("${S3_SECRET}", "example-secret");
    let text = text.replace("${CHAT_WEBHOOK_TOKEN}", "example-token");
    assert!(!text.contains("${"), "every variable of the example is set here: {text}");
    let config = Config::parse(&path, &text).unwrap_or_else(|err| panic!("{err}"));
    let rule = config.rules.iter().find(|rule| rule.name == "release").expect("a rule named release");
    let plugins: Vec<&str> = rule.steps.iter().map(|step| step.plugin.as_str()).collect();
    assert_eq!(plugins, ["release", "notify"]);
    assert_eq!(rule.concurrency, Some(1), "tags pushed together are released one after another");
    let with = &rule.steps[0].settings;
    for key in ["output_dir", "base_url", "s3", "forge", "drupal"] {
        assert!(with.get(key).is_some(), "the release step sets `{key}`: {with:#}");
    }
}
