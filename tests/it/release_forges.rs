//! `release` publishing forge releases through the daemon, against the fake GitHub,
//! GitLab and Gitea APIs: the exact release and asset calls for a tag, the uploaded
//! bytes equal to the archives the host wrote, the host's credential on every call, and
//! a second run for the same tag updating the one release (no second release, unchanged
//! assets kept, changed ones replaced); a forge's refusal fails the step naming the call
//! and the forge's message.

use gitauto_tests::fake_api::FakeApi;
use gitauto_tests::fake_api::releases::Release;
use gitauto_tests::receiver::Receiver;
use gitauto_tests::{TestDaemon, TestGit, git, github_source, push_payload, step};
use serde_json::json;
use std::path::PathBuf;

const TOKEN: &str = "release-token-the-plugin-never-sees";
const MESSAGE: &str = "Widgets 1.2.0\n\nBug fixes: widgets no longer wobble.";

/// A repository `acme/widgets` in origin, a directory for the archives, and the fake API.
struct World {
    root: PathBuf,
    repo: TestGit,
    api: FakeApi,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let repo = TestGit::new(&root, "widgets");
        repo.commit("widgets.info.yml", "name: Widgets\ntype: module\n", "the module");
        repo.push("main");
        std::fs::create_dir_all(root.join("releases")).unwrap();
        std::fs::write(root.join("token"), TOKEN).unwrap();
        Self { root, repo, api: FakeApi::start().await, _dir: dir }
    }

    /// One rule on tags with a `release` step per forge, all granted the fake API.
    fn config(&self) -> String {
        self.config_with(&format!(r#"{{ kind = "github", api = "{}" }}"#, self.api.url))
    }

    /// [`World::config`] with the GitHub step's `forge` table `github`.
    fn config_with(&self, github: &str) -> String {
        let forge = |name: &str, table: &str| {
            format!(
                r#"{{ name = "{name}", plugin = "release", with = {{ output_dir = "{releases}", forge = {table} }} }}"#,
                releases = self.root.join("releases").display()
            )
        };
        let api = &self.api.url;
        let steps = [
            forge("github", github),
            forge("gitlab", &format!(r#"{{ kind = "gitlab", api = "{api}/api/v4" }}"#)),
            forge("gitea", &format!(r#"{{ kind = "gitea", api = "{api}/api/v1", name = "Widgets {{version}}" }}"#)),
        ];
        format!(
            r#"
{source}
[plugins.release]
wasm = "builtin:release"
grants = {{ dirs = ["{origin}", {{ path = "{releases}", write = true }}], hosts = [{{ host = "{host}", credential = "file:{root}/token", scheme = "token" }}] }}

[[rules]]
name = "release"
on = "tag"
checkout = true
steps = [{steps}]
"#,
            source = github_source(),
            origin = self.root.join("origin").display(),
            releases = self.root.join("releases").display(),
            host = api.trim_start_matches("http://"),
            root = self.root.display(),
            steps = steps.join(", "),
        )
    }

    /// Tags HEAD in origin (annotated with `message`, or lightweight) and returns the
    /// GitHub push of that tag.
    fn tag(&self, name: &str, message: Option<&str>) -> Vec<u8> {
        let head = self.repo.head();
        match message {
            Some(message) => git(&self.repo.origin, &["tag", "-a", name, "-m", message, &head]),
            None => git(&self.repo.origin, &["tag", name, &head]),
        };
        let target = git(&self.repo.origin, &["rev-parse", name]);
        let clone_url = format!("file://{}", self.repo.origin.display());
        push_payload("acme", "widgets", &format!("refs/tags/{name}"), &"0".repeat(40), &target, &clone_url)
    }

    fn archive(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.root.join("releases/widgets").join(name)).unwrap()
    }

    fn release(&self, forge: &str, repository: &str, tag: &str) -> Release {
        self.api
            .with(|s| s.releases.find(forge, repository, tag).cloned())
            .unwrap_or_else(|| panic!("no {forge} release"))
    }

    fn count(&self, forge: &str) -> usize {
        self.api.with(|s| s.releases.releases.iter().filter(|r| r.forge == forge).count())
    }
}

/// Each asset's name and bytes, in the release's order.
fn files(release: &Release) -> Vec<(String, Vec<u8>)> {
    release.assets.iter().map(|a| (a.name.clone(), a.data.clone())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_makes_one_release_per_forge_with_its_archives_and_a_second_run_updates_it() {
    let world = World::new().await;
    let daemon = TestDaemon::start(&world.config()).await;
    let push = world.tag("v1.2.0", Some(MESSAGE));
    let job = daemon.run_github("push", &push).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let tgz = world.archive("widgets-1.2.0.tar.gz");
    let zip = world.archive("widgets-1.2.0.zip");
    let github = world.release("github", "acme/widgets", "v1.2.0");
    let gitlab = world.release("gitlab", "acme/widgets", "v1.2.0");
    let gitea = world.release("gitea", "acme/widgets", "v1.2.0");
    let (gh, ge) = (github.id, gitea.id);
    let package = "/api/v4/projects/acme%2Fwidgets/packages/generic/widgets/1.2.0";
    let packages = "GET /api/v4/projects/acme%2Fwidgets/packages?package_type=generic&package_name=widgets&package_version=1.2.0&per_page=100&page=1";
    let requests = world.api.take();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /repos/acme/widgets/releases/tags/v1.2.0".to_owned(),
            "POST /repos/acme/widgets/releases".into(),
            format!("POST /uploads/repos/acme/widgets/releases/{gh}/assets?name=widgets-1.2.0.tar.gz"),
            format!("POST /uploads/repos/acme/widgets/releases/{gh}/assets?name=widgets-1.2.0.zip"),
            packages.to_owned(),
            format!("PUT {package}/widgets-1.2.0.tar.gz"),
            format!("PUT {package}/widgets-1.2.0.zip"),
            "GET /api/v4/projects/acme%2Fwidgets/releases/v1.2.0".into(),
            "POST /api/v4/projects/acme%2Fwidgets/releases".into(),
            "GET /api/v1/repos/acme/widgets/releases/tags/v1.2.0".into(),
            "POST /api/v1/repos/acme/widgets/releases".into(),
            format!("POST /api/v1/repos/acme/widgets/releases/{ge}/assets?name=widgets-1.2.0.tar.gz"),
            format!("POST /api/v1/repos/acme/widgets/releases/{ge}/assets?name=widgets-1.2.0.zip"),
        ]
    );
    for request in &requests {
        assert_eq!(request.authorization.as_deref(), Some(format!("token {TOKEN}").as_str()), "{}", request.line());
    }
    let release_body = json!({
        "tag_name": "v1.2.0", "name": "widgets 1.2.0", "body": MESSAGE, "draft": false, "prerelease": false,
    });
    assert_eq!(requests[1].body, release_body);
    let base = &world.api.url;
    let link = |name: &str| json!({"name": name, "url": format!("{base}{package}/{name}"), "direct_asset_path": format!("/{name}"), "link_type": "package"});
    assert_eq!(
        requests[8].body,
        json!({
            "tag_name": "v1.2.0", "name": "widgets 1.2.0", "description": MESSAGE,
            "assets": {"links": [link("widgets-1.2.0.tar.gz"), link("widgets-1.2.0.zip")]},
        })
    );
    assert_eq!(requests[10].body["name"], "Widgets 1.2.0", "the step's own title");

    // What each forge holds is what the host wrote.
    let archives =
        vec![("widgets-1.2.0.tar.gz".to_owned(), tgz.clone()), ("widgets-1.2.0.zip".to_owned(), zip.clone())];
    assert_eq!(files(&github), archives);
    assert_eq!(files(&gitea), archives);
    let package_files = || world.api.with(|s| s.releases.package_files("acme/widgets", "widgets", "1.2.0"));
    assert_eq!(package_files(), archives);
    let uploads = world.api.with(|s| s.releases.uploads.clone());
    let types: Vec<&str> = uploads.iter().map(|u| u.content_type.split(';').next().unwrap()).collect();
    assert_eq!(
        types,
        [
            "application/gzip",
            "application/zip",
            "application/octet-stream",
            "application/octet-stream",
            "multipart/form-data",
            "multipart/form-data"
        ]
    );
    assert_eq!((github.name.as_str(), github.body.as_str(), github.prerelease), ("widgets 1.2.0", MESSAGE, false));
    let links: Vec<Option<(String, String)>> = gitlab.assets.iter().map(|a| a.link.clone()).collect();
    assert_eq!(
        links,
        [
            Some((format!("{base}{package}/widgets-1.2.0.tar.gz"), "/widgets-1.2.0.tar.gz".to_owned())),
            Some((format!("{base}{package}/widgets-1.2.0.zip"), "/widgets-1.2.0.zip".to_owned())),
        ]
    );

    // The record carries each forge's release page and download addresses.
    let record = &step(&job, "github")["output"];
    assert_eq!(record["release_link"], format!("{base}/html/acme/widgets/releases/tag/v1.2.0"));
    assert_eq!(
        record["assets"][0]["url"],
        format!("{base}/html/acme/widgets/releases/download/v1.2.0/widgets-1.2.0.tar.gz")
    );
    let record = &step(&job, "gitlab")["output"];
    assert_eq!(record["release_link"], format!("{base}/acme/widgets/-/releases/v1.2.0"));
    assert_eq!(
        record["assets"][1]["url"],
        format!("{base}/acme/widgets/-/releases/v1.2.0/downloads/widgets-1.2.0.zip")
    );
    let record = &step(&job, "gitea")["output"];
    assert_eq!(record["release_link"], format!("{base}/acme/widgets/releases/tag/v1.2.0"));
    let first_attachment = gitea.assets[0].id;
    assert_eq!(record["assets"][0]["url"], format!("{base}/attachments/uuid-{first_attachment}"));

    // The same tag again: each release updated in place, assets holding the same archives kept.
    let job = daemon.run_github("push", &push).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let package_id = world.api.with(|s| s.releases.packages[0].id);
    let (old_gh, old_ge): (Vec<u64>, Vec<u64>) =
        (github.assets.iter().map(|a| a.id).collect(), gitea.assets.iter().map(|a| a.id).collect());
    let requests = world.api.take();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /repos/acme/widgets/releases/tags/v1.2.0".to_owned(),
            format!("PATCH /repos/acme/widgets/releases/{gh}"),
            packages.to_owned(),
            format!(
                "GET /api/v4/projects/acme%2Fwidgets/packages/{package_id}/package_files?sort=asc&per_page=100&page=1"
            ),
            "GET /api/v4/projects/acme%2Fwidgets/releases/v1.2.0".into(),
            "PUT /api/v4/projects/acme%2Fwidgets/releases/v1.2.0".into(),
            "GET /api/v1/repos/acme/widgets/releases/tags/v1.2.0".into(),
            format!("PATCH /api/v1/repos/acme/widgets/releases/{ge}"),
            format!("GET /attachments/uuid-{}", old_ge[0]),
            format!("GET /attachments/uuid-{}", old_ge[1]),
        ],
        "no second release; the assets and package files hold the same archives and stay, \
         the links already point at them"
    );
    assert_eq!(package_files(), archives, "GitLab keeps duplicates: none were put");
    assert_eq!(
        requests[1].body,
        json!({"name": "widgets 1.2.0", "body": MESSAGE, "draft": false, "prerelease": false})
    );
    assert_eq!(requests[5].body, json!({"name": "widgets 1.2.0", "description": MESSAGE}));
    assert_eq!((world.count("github"), world.count("gitlab"), world.count("gitea")), (1, 1, 1));
    let github = world.release("github", "acme/widgets", "v1.2.0");
    assert_eq!(files(&github), archives, "the same archives");
    let kept: Vec<u64> = github.assets.iter().map(|a| a.id).collect();
    assert_eq!(kept, old_gh, "the assets holding the same archives are kept");
    assert_eq!(files(&world.release("gitea", "acme/widgets", "v1.2.0")), archives);
    assert_eq!(world.release("gitlab", "acme/widgets", "v1.2.0").assets.len(), 2);

    // The tag moved to another commit: GitLab's package files of the old archives are
    // deleted before the new ones are put, so each name has one file, the new one.
    world.repo.commit("CHANGELOG.md", "1.2.0\n", "changelog");
    world.repo.push("main");
    let head = world.repo.head();
    git(&world.repo.origin, &["tag", "-f", "-a", "v1.2.0", "-m", MESSAGE, &head]);
    let moved = git(&world.repo.origin, &["rev-parse", "v1.2.0"]);
    let clone_url = format!("file://{}", world.repo.origin.display());
    let push = push_payload("acme", "widgets", "refs/tags/v1.2.0", &"0".repeat(40), &moved, &clone_url);
    world.api.take();
    let job = daemon.run_github("push", &push).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let moved_archives = vec![
        ("widgets-1.2.0.tar.gz".to_owned(), world.archive("widgets-1.2.0.tar.gz")),
        ("widgets-1.2.0.zip".to_owned(), world.archive("widgets-1.2.0.zip")),
    ];
    assert_ne!(moved_archives, archives, "the moved tag's archives differ");
    assert_eq!(package_files(), moved_archives, "one file per name, the new one");
    assert_eq!(files(&world.release("github", "acme/widgets", "v1.2.0")), moved_archives, "assets replaced");
    assert_eq!(files(&world.release("gitea", "acme/widgets", "v1.2.0")), moved_archives, "attachments replaced");
    let lines: Vec<String> = world.api.take().iter().map(|r| r.line()).collect();
    let files = format!("/api/v4/projects/acme%2Fwidgets/packages/{package_id}/package_files");
    let gitlab: Vec<&String> = lines.iter().filter(|line| line.contains("/package")).collect();
    assert_eq!(gitlab.len(), 6, "{lines:#?}");
    assert!(
        gitlab[2].starts_with(&format!("DELETE {files}/"))
            && gitlab[3] == &format!("PUT {package}/widgets-1.2.0.tar.gz"),
        "{gitlab:#?}"
    );
    assert!(
        gitlab[4].starts_with(&format!("DELETE {files}/")) && gitlab[5] == &format!("PUT {package}/widgets-1.2.0.zip"),
        "{gitlab:#?}"
    );

    // A beta is a pre-release where the forge has them.
    world.repo.commit("src/Widget.php", "<?php\n", "more");
    world.repo.push("main");
    let job = daemon.run_github("push", &world.tag("v1.3.0-beta1", None)).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(world.release("github", "acme/widgets", "v1.3.0-beta1").prerelease);
    assert!(world.release("gitea", "acme/widgets", "v1.3.0-beta1").prerelease);
    assert_eq!(world.release("gitlab", "acme/widgets", "v1.3.0-beta1").body, "", "a lightweight tag has no notes");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forge_refusal_fails_the_step_naming_the_call_and_the_forges_message() {
    let world = World::new().await;
    let daemon = TestDaemon::start(&world.config()).await;
    world.api.fail(
        "POST",
        "/repos/acme/widgets/releases",
        403,
        json!({"message": "Resource not accessible by integration"}),
    );
    let job = daemon.run_github("push", &world.tag("v1.0.0", None)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "forge release: creating the release: POST {}/repos/acme/widgets/releases: HTTP 403: Resource not accessible by integration",
            world.api.url
        )),
        "{summary}"
    );
    assert_eq!(world.count("github"), 0);
    assert_eq!(world.count("gitlab"), 0, "the steps after it do not run");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_host_outside_the_grants_is_refused_naming_the_call() {
    let world = World::new().await;
    let github =
        format!(r#"{{ kind = "github", api = "{}", uploads = "https://uploads.example.com" }}"#, world.api.url);
    let daemon = TestDaemon::start(&world.config_with(&github)).await;
    let job = daemon.run_github("push", &world.tag("v1.0.0", None)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let id = world.release("github", "acme/widgets", "v1.0.0").id;
    let summary = job["summary"].as_str().unwrap();
    let call = format!(
        "forge release: POST https://uploads.example.com/repos/acme/widgets/releases/{id}/assets?name=widgets-1.0.0.tar.gz: http: denied"
    );
    assert!(summary.contains(&call), "{summary}");
    assert!(world.release("github", "acme/widgets", "v1.0.0").assets.is_empty());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_url_a_hostile_forge_points_at_another_granted_host_gets_no_request() {
    let world = World::new().await;
    // The plugin may reach a second host, with a credential the host injects there: a
    // forge answering with an upload_url on it would have the archives (and the
    // credential) sent there.
    let elsewhere = Receiver::start().await;
    let hosts = format!(
        "hosts = [{{ host = \"{}\", credential = \"file:{}/token\", scheme = \"token\" }}, ",
        elsewhere.host(),
        world.root.display()
    );
    let config = world.config().replacen("hosts = [", &hosts, 1);
    let forged = format!("{}/repos/acme/widgets/releases/1/assets{{?name,label}}", elsewhere.url);
    world.api.with(|s| s.releases.upload_url = Some(forged.clone()));
    let daemon = TestDaemon::start(&config).await;
    let job = daemon.run_github("push", &world.tag("v1.0.0", None)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(job["summary"].as_str().unwrap().contains("set `forge.uploads` to the upload host"), "{job:#}");
    assert!(elsewhere.requests().is_empty(), "the forged upload host got a request");
    assert!(world.release("github", "acme/widgets", "v1.0.0").assets.is_empty());
    daemon.stop().await;
}
