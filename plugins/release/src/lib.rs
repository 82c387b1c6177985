//! `release`: turns a tag into a release. The host writes reproducible archives of the
//! tag's tree (the `git` capability's `archive`); the plugin checksums them, publishes
//! them (a directory, object storage, a forge release), writes a release record next to
//! them and regenerates Drupal's update status feed.

mod drupal;
mod forge;
mod publish;
mod record;
mod version;

use gitauto_plugin::git::{ArchiveFormat, ArchiveInfo, ArchiveOptions, Repository, TagInfo};
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use publish::{Directory, S3Settings, Storage};
use record::{Asset, ReleaseRecord};
use serde::Deserialize;

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The repository holding the tag, instead of the job's checkout.
    pub repodir: Option<String>,
    /// The project's short name (default: the repository's name).
    pub project: Option<String>,
    /// The archives to build: `tar.gz`, `zip`, `tar` (default `["tar.gz", "zip"]`).
    #[serde(default = "default_formats")]
    pub formats: Vec<String>,
    /// Archive only this directory of the tree.
    pub subdirectory: Option<String>,
    /// Put before every entry's path (default `"{project}/"`).
    pub prefix: Option<String>,
    /// The archives' file name without its extension (default `"{project}-{version}"`).
    pub name: Option<String>,
    /// Paths to leave out, as `.gitattributes` patterns.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether `export-ignore` in the tree's `.gitattributes` is honoured (default true).
    #[serde(default = "yes")]
    pub export_ignore: bool,
    /// The granted writable directory the host writes the archives into, under
    /// `<output_dir>/<project>/`; records and feeds go there too.
    pub output_dir: Option<String>,
    /// The public URL the published files are downloadable at (`<base_url>/<project>/<file>`).
    pub base_url: Option<String>,
    /// Object storage the files are copied to.
    pub s3: Option<S3Settings>,
    /// A forge release the archives are attached to.
    pub forge: Option<forge::ForgeSettings>,
    /// Drupal's update status feed, regenerated from the records.
    pub drupal: Option<drupal::Project>,
    /// The release notes (default: the annotated tag's message).
    pub notes: Option<String>,
    /// The release's web page (default: the forge release's, else the repository's page
    /// of the tag); placeholders as in `name`.
    pub release_link: Option<String>,
}

fn default_formats() -> Vec<String> {
    vec!["tar.gz".into(), "zip".into()]
}

fn yes() -> bool {
    true
}

/// What one release is made of, decided from the event and the settings alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The project's short name.
    pub project: String,
    /// The tag.
    pub tag: String,
    /// The version text (the tag without a leading `v`).
    pub version: String,
    /// The prefix of every entry, empty or ending with `/`.
    pub prefix: String,
    /// The archives: format and file name, each in `<output_dir>/<project>/`.
    pub archives: Vec<(Format, String)>,
    /// The configured release page, placeholders filled.
    pub release_link: Option<String>,
}

/// An archive container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// gzip-compressed tar.
    TarGz,
    /// zip with deflate.
    Zip,
    /// Plain tar.
    Tar,
}

impl Format {
    /// The format named in `formats`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "tar.gz" => Ok(Self::TarGz),
            "zip" => Ok(Self::Zip),
            "tar" => Ok(Self::Tar),
            other => Err(format!("`formats`: `{other}` is not an archive format (expected tar.gz, zip or tar)")),
        }
    }

    /// Its name, which is also the file name's extension.
    pub fn name(self) -> &'static str {
        match self {
            Self::TarGz => "tar.gz",
            Self::Zip => "zip",
            Self::Tar => "tar",
        }
    }

    fn wit(self) -> ArchiveFormat {
        match self {
            Self::TarGz => ArchiveFormat::TarGz,
            Self::Zip => ArchiveFormat::Zip,
            Self::Tar => ArchiveFormat::Tar,
        }
    }
}

/// The version a tag names: the tag without a leading `v` before a digit.
pub fn version_text(tag: &str) -> &str {
    match tag.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => tag,
    }
}

/// `template` with `{project}`, `{repo}`, `{version}` and `{tag}` replaced; an unknown
/// or unclosed placeholder is an error naming it.
pub fn fill(template: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("`{template}`: a `{{` without its `}}`"))?;
        let name = &after[..close];
        let value = values.iter().find(|(key, _)| *key == name).map(|(_, value)| *value).ok_or_else(|| {
            let known: Vec<String> = values.iter().map(|(key, _)| format!("{{{key}}}")).collect();
            format!("`{template}`: unknown placeholder `{{{name}}}` (expected one of {})", known.join(", "))
        })?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `name` can be one file or directory name of its own: not empty, no `/` or
/// `\`, not `.`-first (no `..`, no hidden file), no control characters.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name.len() <= 200
}

impl Plan {
    /// The plan for a tag event; `Ok(None)` (with the reason) when the event is not one
    /// a release is made from.
    pub fn new(event: &Event, settings: &Settings) -> Result<Result<Self, String>, Error> {
        let tag = match (&event.tag, event.kind.as_str()) {
            (Some(tag), "tag") if !tag.is_empty() => tag.clone(),
            _ => return Ok(Err(format!("not a tag push (a `{}` event)", event.kind))),
        };
        if event.deleted {
            return Ok(Err(format!("tag `{tag}` was deleted")));
        }
        let repo = event.repository.name.as_str();
        let project = settings.project.clone().unwrap_or_else(|| repo.to_owned());
        if !is_plain_name(&project) {
            return Err(Error::invalid_settings(format!(
                "`project`: `{project}` cannot be a directory name (no `/`, not starting with `.`)"
            )));
        }
        let version = version_text(&tag).to_owned();
        if !is_plain_name(&version) {
            return Ok(Err(format!("tag `{tag}` cannot be a version in a file name")));
        }
        let values = [("project", project.as_str()), ("repo", repo), ("version", version.as_str()), ("tag", &tag)];
        let setting = |key: &str, template: &str| fill(template, &values).map_err(|why| invalid(key, &why));
        let mut prefix = setting("prefix", settings.prefix.as_deref().unwrap_or("{project}/"))?;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.starts_with('/') || prefix.split('/').any(|part| part == "..") {
            return Err(invalid("prefix", &format!("`{prefix}` must be relative, with no `..`")));
        }
        let name = setting("name", settings.name.as_deref().unwrap_or("{project}-{version}"))?;
        if !is_plain_name(&name) {
            return Err(invalid("name", &format!("`{name}` cannot be a file name (no `/`, not starting with `.`)")));
        }
        if settings.formats.is_empty() {
            return Err(Error::invalid_settings("`formats` is empty: name at least one of tar.gz, zip, tar"));
        }
        let mut archives = Vec::new();
        for format in &settings.formats {
            let format = Format::parse(format).map_err(Error::invalid_settings)?;
            if archives.iter().any(|(known, _)| *known == format) {
                return Err(invalid("formats", &format!("`{}` is named twice", format.name())));
            }
            archives.push((format, format!("{name}.{}", format.name())));
        }
        let release_link = settings.release_link.as_deref().map(|link| setting("release_link", link)).transpose()?;
        Ok(Ok(Self { project, tag, version, prefix, archives, release_link }))
    }

    /// The key of `file` in the project's directory, under the publishing root.
    pub fn key(&self, file: &str) -> String {
        format!("{}/{file}", self.project)
    }
}

fn invalid(key: &str, why: &str) -> Error {
    Error::invalid_settings(format!("`{key}`: {why}"))
}

/// The repository's web page for `tag`, as each forge serves it.
pub fn tag_page(event: &Event, tag: &str) -> Option<String> {
    let base = event.repository.html_url.trim_end_matches('/');
    if base.is_empty() {
        return None;
    }
    Some(match event.forge.as_str() {
        "gitlab" => format!("{base}/-/tags/{tag}"),
        "bitbucket" => format!("{base}/src/{tag}"),
        "gogs" => format!("{base}/src/{tag}"),
        _ => format!("{base}/releases/tag/{tag}"),
    })
}

/// A file's public URL under `base_url`: `<base_url>/<key>`, the key percent-encoded
/// as a path (a `+`, space or `%` in a version or name stays part of the file name).
pub fn public_url(base_url: &str, key: &str) -> String {
    format!("{}/{}", base_url.trim_end_matches('/'), gitauto_plugin::object_storage::encode_key(key))
}

/// Where the published file `name` (at `key` under the destinations' root) is
/// downloaded from: under `base_url` when set, else the forge release's asset, else the
/// object at the S3 endpoint; none when it is only in the directory.
pub fn download_url(
    key: &str,
    name: &str,
    base_url: Option<&str>,
    forge: Option<&forge::ForgeRelease>,
    storage: Option<&Storage>,
) -> Option<String> {
    match (base_url, forge, storage) {
        (Some(base), _, _) => Some(public_url(base, key)),
        (None, Some(release), _) => release.assets.iter().find(|(asset, _)| asset == name).map(|(_, url)| url.clone()),
        (None, None, Some(storage)) => Some(storage.url(key)),
        (None, None, None) => None,
    }
}

/// The record of a release whose archives the host wrote, before it is published.
pub fn record(
    plan: &Plan,
    tag: &TagInfo,
    notes: Option<&str>,
    archives: &[(Format, String, ArchiveInfo)],
) -> Result<ReleaseRecord, Error> {
    let parsed = version::parse(&plan.tag).map_err(Error::failed)?;
    let notes = notes.map(str::to_owned).or_else(|| tag.message.clone());
    let assets = archives
        .iter()
        .map(|(format, name, info)| Asset {
            name: name.clone(),
            format: format.name().to_owned(),
            path: info.path.clone(),
            size: info.size,
            sha256: info.sha256.clone(),
            sha512: info.sha512.clone(),
            md5: info.md5.clone(),
            url: None,
        })
        .collect();
    Ok(ReleaseRecord {
        project: plan.project.clone(),
        version: plan.version.clone(),
        tag: plan.tag.clone(),
        commit: tag.commit.clone(),
        date: tag.date,
        terms: notes.as_deref().map(drupal::release_types).unwrap_or_default(),
        parsed,
        message: tag.message.clone(),
        notes,
        assets,
        release_link: plan.release_link.clone(),
    })
}

/// The tag `name` in `repo`; when the repository lacks it (a job checkout holds the
/// tag's commit, not the tag), after fetching `origin`'s tags.
fn find_tag(repo: &Repository, dir: &str, name: &str) -> Result<TagInfo, Error> {
    let find = |tags: Vec<TagInfo>| tags.into_iter().find(|tag| tag.name == name);
    if let Some(tag) = find(repo.tags()?) {
        return Ok(tag);
    }
    let fetched = repo.fetch("origin");
    if let Some(tag) = find(repo.tags()?) {
        return Ok(tag);
    }
    let why = match fetched {
        Ok(_) => "and `origin` does not have it either".to_owned(),
        Err(err) => format!("and fetching `origin` failed: {}", err.message()),
    };
    Err(Error::failed(format!("tag `{name}` is not in the repository at {dir}, {why}")))
}

/// Refuses a feed release with no link: Drupal 9.2+ drops a release without a
/// `release_link`, which the feed takes from the record, else the `tar.gz` download,
/// else `drupal.link`; with none of them the release would never reach a site.
fn feed_links(record: &ReleaseRecord, project: &drupal::Project) -> Result<(), Error> {
    let download = record.assets.iter().any(|asset| asset.url.as_deref().is_some_and(|url| !url.is_empty()));
    if record.release_link.is_some() || download || project.link.is_some() {
        return Ok(());
    }
    Err(Error::invalid_settings(
        "`drupal`: the release has no link for the feed (Drupal drops a release without one): \
         set `base_url`, `release_link`, `forge` or `drupal.link`",
    ))
}

/// Feed writes before records still appearing count as a failure to retry.
const MAX_FEED_WRITES: usize = 5;

/// Writes the feed (`write`) from the records `list` finds and `current`, then lists
/// them again and writes again while they changed: two tags released at once each write
/// their record and then the feed, and the job whose listing missed the other's record
/// may write last; the one to write last lists after it wrote, sees the other record
/// and writes the feed again with both. Returns the releases of the last feed written
/// and how many times it was written.
fn write_feed(
    project: &drupal::Project,
    current: &ReleaseRecord,
    mut list: impl FnMut() -> Result<Vec<ReleaseRecord>, Error>,
    mut write: impl FnMut(&[ReleaseRecord]) -> Result<(), Error>,
) -> Result<(Vec<ReleaseRecord>, usize), Error> {
    // The release's feed (`current`, or a core API's such as `7.x`) lists the releases
    // that belong to it; a configured `api` names the one feed.
    let api = drupal::feed_api(&current.parsed);
    let releases = |found: Vec<ReleaseRecord>| -> Vec<ReleaseRecord> {
        record::merge(found, current)
            .into_iter()
            .filter(|other| project.api.is_some() || drupal::feed_api(&other.parsed) == api)
            .collect()
    };
    let mut written = releases(list()?);
    for writes in 1..=MAX_FEED_WRITES {
        write(&written)?;
        let now = releases(list()?);
        if now == written {
            return Ok((written, writes));
        }
        written = now;
    }
    Err(Error::transient(format!(
        "the release records kept changing while the feed was written ({MAX_FEED_WRITES} times): run the step again"
    )))
}

struct Release;

impl Plugin for Release {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let plan = match Plan::new(&event, &settings)? {
            Ok(plan) => plan,
            Err(why) => return Ok(Outcome::skipped(why)),
        };
        let output_dir = settings.output_dir.clone().ok_or_else(|| {
            Error::invalid_settings(
                "`output_dir` is required: a writable granted directory the archives are written to",
            )
        })?;
        let storage = settings.s3.as_ref().map(Storage::new).transpose()?;
        let dir = Directory { root: output_dir.into() };
        let repodir = settings.repodir.clone().or_else(gitauto_plugin::checkout).ok_or_else(|| {
            Error::invalid_settings("no repository: give the step a checkout (`checkout = true`) or set `repodir`")
        })?;
        if let Err(why) = version::parse(&plan.tag) {
            // The parser's reason names the tag.
            return Ok(Outcome::skipped(why));
        }

        let repo = Repository::open(&repodir)?;
        let tag = find_tag(&repo, &repodir, &plan.tag)?;
        let project_dir = dir.path(&plan.project);
        std::fs::create_dir_all(&project_dir)
            .map_err(|err| Error::failed(format!("creating {}: {err}", project_dir.display())))?;
        let mut archives = Vec::new();
        for (format, name) in &plan.archives {
            let output = dir.path(&plan.key(name)).display().to_string();
            let options = ArchiveOptions {
                format: format.wit(),
                output,
                subdirectory: settings.subdirectory.clone(),
                prefix: plan.prefix.clone(),
                exclude: settings.exclude.clone(),
                export_ignore: settings.export_ignore,
                mtime: None,
            };
            let info = repo.archive(&tag.commit, &options)?;
            log::info(&format!("{name}: {} bytes, {} files, sha256 {}", info.size, info.files, info.sha256));
            archives.push((*format, name.clone(), info));
        }
        let mut record = record(&plan, &tag, settings.notes.as_deref(), &archives)?;

        let mut published = vec![dir.root.display().to_string()];
        if let Some(storage) = &storage {
            for asset in &record.assets {
                storage.put_file(&plan.key(&asset.name), std::path::Path::new(&asset.path))?;
            }
            published.push(storage.location(""));
        }
        let forge_release = match &settings.forge {
            Some(forge) => Some(forge::publish(forge, &event, &record)?),
            None => None,
        };
        if let Some(release) = &forge_release {
            published.push(release.url.clone());
        }
        for asset in &mut record.assets {
            let key = plan.key(&asset.name);
            asset.url =
                download_url(&key, &asset.name, settings.base_url.as_deref(), forge_release.as_ref(), storage.as_ref());
        }
        if record.release_link.is_none() {
            record.release_link =
                forge_release.as_ref().map(|release| release.url.clone()).or_else(|| tag_page(&event, &plan.tag));
        }

        let record_key = plan.key(&record.file_name());
        dir.write(&record_key, &record.to_json())?;
        if let Some(storage) = &storage {
            storage.put(&record_key, record.to_json())?;
        }
        let mut feeds = Vec::new();
        if let Some(project) = &settings.drupal {
            feed_links(&record, project)?;
            let mut warned = false;
            let list = || {
                let (mut found, mut unread) = dir.records(&plan.project)?;
                if let Some(storage) = &storage {
                    let (more, more_unread) = storage.records(&plan.project)?;
                    found.extend(more);
                    unread.extend(more_unread);
                }
                if !std::mem::replace(&mut warned, true) {
                    for file in &unread {
                        log::warn(&format!("not a release record, left out of the feed: {file}"));
                    }
                }
                Ok(found)
            };
            let path = drupal::feed_path(project, &plan.project, record.parsed.api.as_deref());
            // Drupal asks for `<short_name>/current` (or `7.x`), with no extension: the
            // same document goes under both names, so a plain web server or a bucket
            // answers the update module as it is.
            let bare = path.trim_end_matches(".xml");
            let write = |releases: &[ReleaseRecord]| {
                let xml = drupal::feed(project, releases).into_bytes();
                for key in [path.as_str(), bare] {
                    dir.write(key, &xml)?;
                    if let Some(storage) = &storage {
                        storage.put_feed(key, xml.clone())?;
                    }
                }
                Ok(())
            };
            let (releases, writes) = write_feed(project, &record, list, write)?;
            if writes > 1 {
                log::info(&format!(
                    "release records changed while {path} was written (another tag released at once): written {writes} times"
                ));
            }
            log::info(&format!("regenerated {path} from {} release records", releases.len()));
            feeds.push(path);
        }

        let files: Vec<&str> = record.assets.iter().map(|asset| asset.name.as_str()).collect();
        let mut summary = format!(
            "released {} {}: {}; published to {}",
            plan.project,
            plan.version,
            files.join(", "),
            published.join(", ")
        );
        if !feeds.is_empty() {
            summary.push_str(&format!("; feed {}", feeds.join(", ")));
        }
        log::info(&summary);
        Ok(Outcome::success(summary).with_output(&record))
    }
}

gitauto_plugin::export!(Release);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record of `project` at `version` with one archive, for the modules' tests.
    pub fn record(project: &str, version: &str) -> ReleaseRecord {
        ReleaseRecord {
            project: project.into(),
            version: version.into(),
            tag: version.into(),
            commit: "0".repeat(40),
            date: 1_700_000_000,
            parsed: crate::version::parse(version).unwrap(),
            message: None,
            notes: None,
            terms: Vec::new(),
            assets: vec![Asset {
                name: format!("{project}-{version}.tar.gz"),
                format: "tar.gz".into(),
                path: format!("/srv/releases/{project}/{project}-{version}.tar.gz"),
                size: 10,
                sha256: "a".repeat(64),
                sha512: "b".repeat(128),
                md5: "c".repeat(32),
                url: None,
            }],
            release_link: None,
        }
    }

    fn event(kind: &str, tag: Option<&str>) -> Event {
        Event {
            delivery: "d1".into(),
            source: "github".into(),
            forge: "github".into(),
            kind: kind.into(),
            action: None,
            repository: gitauto_plugin::Repository {
                owner: "acme".into(),
                name: "widgets".into(),
                full_name: "acme/widgets".into(),
                clone_url: "https://github.com/acme/widgets.git".into(),
                html_url: "https://github.com/acme/widgets".into(),
                default_branch: Some("main".into()),
            },
            git_ref: tag.map(|tag| format!("refs/tags/{tag}")),
            branch: None,
            tag: tag.map(str::to_owned),
            before: None,
            after: None,
            deleted: false,
            commits: Vec::new(),
            commits_complete: true,
            sender: None,
            pull_request: None,
            payload: "{}".into(),
        }
    }

    fn settings(json: serde_json::Value) -> Settings {
        gitauto_plugin::parse_settings(&json.to_string()).unwrap()
    }

    fn plan(event: &Event, json: serde_json::Value) -> Result<Result<Plan, String>, Error> {
        Plan::new(event, &settings(json))
    }

    fn invalid_message(result: Result<Result<Plan, String>, Error>) -> String {
        match result {
            Err(Error::InvalidSettings(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_give_tar_gz_and_zip_unpacking_to_the_project_directory() {
        let plan = plan(&event("tag", Some("v1.3.0-beta1")), serde_json::json!({})).unwrap().unwrap();
        assert_eq!(plan.project, "widgets");
        assert_eq!((plan.tag.as_str(), plan.version.as_str()), ("v1.3.0-beta1", "1.3.0-beta1"));
        assert_eq!(plan.prefix, "widgets/");
        assert_eq!(
            plan.archives,
            [
                (Format::TarGz, "widgets-1.3.0-beta1.tar.gz".to_owned()),
                (Format::Zip, "widgets-1.3.0-beta1.zip".to_owned())
            ]
        );
        assert_eq!(plan.key("widgets-1.3.0-beta1.zip"), "widgets/widgets-1.3.0-beta1.zip");
        assert_eq!(plan.release_link, None);
    }

    #[test]
    fn placeholders_fill_the_prefix_name_and_link() {
        let json = serde_json::json!({
            "project": "token", "prefix": "{repo}-{version}", "name": "{project}_{tag}", "formats": ["zip", "tar"],
            "release_link": "https://features.example.com/{project}/releases/{version}",
        });
        let plan = plan(&event("tag", Some("8.x-1.2")), json).unwrap().unwrap();
        assert_eq!(plan.prefix, "widgets-8.x-1.2/", "a `/` is added");
        assert_eq!(
            plan.archives,
            [(Format::Zip, "token_8.x-1.2.zip".to_owned()), (Format::Tar, "token_8.x-1.2.tar".to_owned())]
        );
        assert_eq!(plan.release_link.as_deref(), Some("https://features.example.com/token/releases/8.x-1.2"));
        let empty = plan_prefix("");
        assert_eq!(empty, "", "an empty prefix stays empty");
    }

    fn plan_prefix(prefix: &str) -> String {
        plan(&event("tag", Some("1.0.0")), serde_json::json!({ "prefix": prefix })).unwrap().unwrap().prefix
    }

    #[test]
    fn events_other_than_a_tag_push_are_skipped() {
        let cases = [
            (event("push", None), "not a tag push (a `push` event)"),
            (event("release", Some("v1.0.0")), "not a tag push (a `release` event)"),
            (Event { deleted: true, ..event("tag", Some("v1.0.0")) }, "tag `v1.0.0` was deleted"),
            (event("tag", Some("v1/evil")), "tag `v1/evil` cannot be a version in a file name"),
        ];
        for (event, want) in cases {
            assert_eq!(plan(&event, serde_json::json!({})).unwrap(), Err(want.to_owned()));
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_key() {
        let tag = event("tag", Some("1.0.0"));
        let cases = [
            (serde_json::json!({ "formats": ["tar.bz2"] }), "`formats`: `tar.bz2` is not an archive format"),
            (serde_json::json!({ "formats": [] }), "`formats` is empty"),
            (serde_json::json!({ "formats": ["zip", "zip"] }), "`formats`: `zip` is named twice"),
            (
                serde_json::json!({ "name": "{project}-{release}" }),
                "`name`: `{project}-{release}`: unknown placeholder `{release}`",
            ),
            (serde_json::json!({ "name": "{project" }), "`name`: `{project`: a `{` without its `}`"),
            (serde_json::json!({ "name": "../{project}" }), "`name`: `../widgets` cannot be a file name"),
            (serde_json::json!({ "prefix": "../up/" }), "`prefix`: `../up/` must be relative"),
            (serde_json::json!({ "prefix": "/abs/" }), "`prefix`: `/abs/` must be relative"),
            (serde_json::json!({ "project": ".hidden" }), "`project`: `.hidden` cannot be a directory name"),
        ];
        for (json, want) in cases {
            let message = invalid_message(plan(&tag, json.clone()));
            assert!(message.starts_with(want), "{json}: {message}");
        }
        assert!(gitauto_plugin::parse_settings::<Settings>(r#"{"output-dir": "/srv"}"#).is_err());
        let defaults = settings(serde_json::json!({}));
        assert!(defaults.export_ignore && defaults.exclude.is_empty() && defaults.formats == ["tar.gz", "zip"]);
    }

    #[test]
    fn an_uppercase_v_tag_is_a_version_and_public_urls_encode_the_key() {
        // Review L10: `V1.2.0` was stripped for the file names but refused by the parser.
        let plan = plan(&event("tag", Some("V1.2.0")), serde_json::json!({})).unwrap().unwrap();
        assert_eq!(plan.version, "1.2.0");
        assert_eq!(version::parse(&plan.tag).unwrap().to_string(), "1.2.0");
        assert_eq!(
            public_url("https://dl.example.com/", "token/token 1.0+b%.zip"),
            "https://dl.example.com/token/token%201.0%2Bb%25.zip"
        );
    }

    #[test]
    fn versions_drop_a_leading_v_before_a_digit_only() {
        for (tag, version) in
            [("v1.2.0", "1.2.0"), ("V2.0.0-rc2", "2.0.0-rc2"), ("8.x-1.2", "8.x-1.2"), ("version", "version")]
        {
            assert_eq!(version_text(tag), version, "{tag}");
        }
    }

    #[test]
    fn release_pages_default_to_the_forges_tag_page() {
        let mut tag = event("tag", Some("v1.0.0"));
        assert_eq!(tag_page(&tag, "v1.0.0").as_deref(), Some("https://github.com/acme/widgets/releases/tag/v1.0.0"));
        tag.forge = "gitlab".into();
        tag.repository.html_url = "https://gitlab.com/acme/widgets/".into();
        assert_eq!(tag_page(&tag, "v1.0.0").as_deref(), Some("https://gitlab.com/acme/widgets/-/tags/v1.0.0"));
        tag.repository.html_url = String::new();
        assert_eq!(tag_page(&tag, "v1.0.0"), None);
        assert_eq!(
            public_url("https://dl.example.com/files/", "token/token-1.0.0.zip"),
            "https://dl.example.com/files/token/token-1.0.0.zip"
        );
    }

    #[test]
    fn downloads_come_from_the_base_url_else_the_forge_else_the_bucket() {
        let key = "token/token-8.x-1.2.zip";
        let release = forge::ForgeRelease {
            url: "https://git.example/token/-/releases/8.x-1.2".into(),
            assets: vec![("token-8.x-1.2.zip".into(), "https://git.example/packages/token-8.x-1.2.zip".into())],
        };
        let s3 = S3Settings {
            location: "s3://downloads/files".into(),
            endpoint: "http://127.0.0.1:9000".into(),
            addressing: None,
        };
        let storage = Storage::new(&s3).unwrap();
        let url = |base, forge, storage| download_url(key, "token-8.x-1.2.zip", base, forge, storage);
        assert_eq!(
            url(Some("https://dl.example/files/"), Some(&release), Some(&storage)).as_deref(),
            Some("https://dl.example/files/token/token-8.x-1.2.zip")
        );
        assert_eq!(
            url(None, Some(&release), Some(&storage)).as_deref(),
            Some("https://git.example/packages/token-8.x-1.2.zip")
        );
        assert_eq!(
            url(None, None, Some(&storage)).as_deref(),
            Some("http://127.0.0.1:9000/downloads/files/token/token-8.x-1.2.zip")
        );
        assert_eq!(url(None, None, None), None);
        assert_eq!(download_url(key, "other.zip", None, Some(&release), None), None, "an asset the forge lacks");
        let bad = S3Settings { addressing: Some("dns".into()), ..s3 };
        let err = Storage::new(&bad).unwrap_err();
        assert!(matches!(&err, Error::InvalidSettings(m) if m.starts_with("`s3.addressing`")), "{err:?}");
    }

    #[test]
    fn the_record_takes_the_tag_and_the_hosts_checksums() {
        let plan = plan(&event("tag", Some("v1.3.0-beta1")), serde_json::json!({})).unwrap().unwrap();
        let tag = TagInfo {
            name: "v1.3.0-beta1".into(),
            commit: "1".repeat(40),
            annotated: true,
            message: Some("Beta one\n\nFixes a bug.".into()),
            tagger: Some("Ann <ann@example.com>".into()),
            date: 1_764_000_000,
            commit_date: 1_763_000_000,
        };
        let info = |path: &str| ArchiveInfo {
            path: path.into(),
            size: 42,
            files: 3,
            sha256: "2".repeat(64),
            sha512: "3".repeat(128),
            md5: "4".repeat(32),
        };
        let archives = [
            (Format::TarGz, "widgets-1.3.0-beta1.tar.gz".to_owned(), info("/srv/r/widgets/widgets-1.3.0-beta1.tar.gz")),
            (Format::Zip, "widgets-1.3.0-beta1.zip".to_owned(), info("/srv/r/widgets/widgets-1.3.0-beta1.zip")),
        ];
        let made = super::record(&plan, &tag, None, &archives).unwrap();
        assert_eq!((made.commit.as_str(), made.date), (tag.commit.as_str(), 1_764_000_000));
        assert_eq!(made.notes.as_deref(), Some("Beta one\n\nFixes a bug."), "the tag message by default");
        assert_eq!(made.message, tag.message);
        assert_eq!(made.file_name(), "widgets-1.3.0-beta1.json");
        assert_eq!(made.assets[1].format, "zip");
        assert_eq!((made.assets[0].size, made.assets[0].md5.as_str()), (42, "4".repeat(32).as_str()));
        assert_eq!(made.assets[0].path, "/srv/r/widgets/widgets-1.3.0-beta1.tar.gz");
        let noted = super::record(&plan, &tag, Some("Written notes"), &archives).unwrap();
        assert_eq!(
            (noted.notes.as_deref(), noted.message.as_deref()),
            (Some("Written notes"), Some("Beta one\n\nFixes a bug."))
        );
        let back: ReleaseRecord = serde_json::from_slice(&made.to_json()).unwrap();
        assert_eq!(back, made, "the JSON file reads back as the same record");
    }

    #[test]
    fn a_feed_release_needs_a_link_drupal_keeps() {
        // Review L10: Drupal 9.2+ drops a release without a release link.
        let bare = record("token", "8.x-1.2");
        let project = drupal::Project::default();
        let err = feed_links(&bare, &project).unwrap_err();
        assert!(matches!(&err, Error::InvalidSettings(m) if m.contains("no link for the feed")), "{err:?}");
        let linked = drupal::Project { link: Some("https://example.com/token".into()), ..project.clone() };
        assert!(feed_links(&bare, &linked).is_ok());
        let mut downloadable = bare.clone();
        downloadable.assets[0].url = Some("https://dl.example.com/token/token-8.x-1.2.tar.gz".into());
        assert!(feed_links(&downloadable, &project).is_ok());
        let paged = ReleaseRecord { release_link: Some("https://example.com/r".into()), ..bare };
        assert!(feed_links(&paged, &project).is_ok());
    }

    #[test]
    fn a_record_written_while_the_feed_is_written_is_in_the_feed_written_last() {
        // Two tags pushed at once (review M3): this job's first listing misses the other
        // job's record, which appears before this job's feed write lands last.
        let current = record("token", "8.x-1.2");
        let other = record("token", "8.x-1.3");
        let mut listings = 0;
        let list = || {
            listings += 1;
            Ok(if listings == 1 { vec![current.clone()] } else { vec![current.clone(), other.clone()] })
        };
        let mut writes: Vec<Vec<String>> = Vec::new();
        let write = |releases: &[ReleaseRecord]| {
            writes.push(releases.iter().map(|release| release.version.clone()).collect());
            Ok(())
        };
        let project = drupal::Project::default();
        let (last, count) = write_feed(&project, &current, list, write).unwrap();
        assert_eq!(writes, [vec!["8.x-1.2"], vec!["8.x-1.2", "8.x-1.3"]]);
        assert_eq!((last.len(), count), (2, 2));

        let mut writes = 0;
        let steady = write_feed(
            &project,
            &current,
            || Ok(vec![other.clone()]),
            |_: &[ReleaseRecord]| {
                writes += 1;
                Ok(())
            },
        );
        assert_eq!((steady.unwrap().0.len(), writes), (2, 1), "unchanged records: one write");

        let mut version = 3;
        let endless = write_feed(
            &project,
            &current,
            || {
                version += 1;
                Ok(vec![record("token", &format!("8.x-1.{version}"))])
            },
            |_: &[ReleaseRecord]| Ok(()),
        );
        assert!(matches!(&endless, Err(Error::Transient(m)) if m.contains("kept changing")), "{endless:?}");
    }

    #[test]
    fn the_feed_lists_each_version_once_with_the_current_record_winning() {
        let mut old = record("token", "8.x-1.2");
        old.release_link = Some("old".into());
        let current = record("token", "8.x-1.2");
        let found = vec![record("token", "8.x-1.1"), old, record("other", "8.x-1.0"), record("token", "8.x-1.10")];
        let merged = record::merge(found, &current);
        let versions: Vec<&str> = merged.iter().map(|record| record.version.as_str()).collect();
        assert_eq!(versions, ["8.x-1.1", "8.x-1.10", "8.x-1.2"]);
        assert_eq!(merged[2], current);
    }
}
