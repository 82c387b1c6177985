//! `md2html-convert`: tx-manager's md2html converter as a gitauto step. For a push to
//! the repository's default branch, render every Markdown file of the pushed commit to
//! HTML (see [`render`]), copy the other files, and publish the site with tx-manager's
//! build lifecycle to `<output>/u/<owner>/<repo>/<commit10>/` (a directory, or an S3
//! bucket through [`output`]): a `started` `build_log.json` first, the pages staged and
//! then put in place of the commit's previous site, `project.json`, the final log
//! ([`build_log`]), and the callback ([`callback`]).
//!
//! The files are read from the commit itself (through the git capability), from a
//! clone kept under `repodir`: made on first use, fetched on every push.

mod build_log;
mod callback;
mod fs_write;
pub mod layout;
mod output;
pub mod render;

use build_log::{BuildLog, Destination, Status, Target, Timings};
use gitauto_plugin::git::{GitError, Repository};
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use output::{Output, Stage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Instant, SystemTime};

/// How many warnings (and errors) the step's output carries; the build log has them all.
const OUTPUT_MESSAGES: usize = 50;

/// What this converter converts, as tx-manager's module registry recorded it.
pub const DECLARATION: Declaration = Declaration {
    name: "md2html",
    kind: "converter",
    input_formats: &["md"],
    output_formats: &["html"],
    resource_types: &["obs", "ta", "tq", "tw", "tn", "other"],
};

/// A converter's declaration.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Declaration {
    /// The converter's name.
    pub name: &'static str,
    /// `converter`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Input formats (file extensions).
    pub input_formats: &'static [&'static str],
    /// Output formats.
    pub output_formats: &'static [&'static str],
    /// Resource types it handles.
    pub resource_types: &'static [&'static str],
}

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where clones are kept (`<repodir>/<owner>/<name>`); must be writable.
    repodir: String,
    /// Where sites go: a directory (writable), or `s3://bucket/prefix`.
    #[serde(default)]
    output: Option<String>,
    /// The old name of a directory `output`.
    #[serde(default)]
    output_dir: Option<String>,
    /// The S3 endpoint (`https://s3.us-east-1.amazonaws.com`), for an `s3://` output.
    #[serde(default)]
    endpoint: Option<String>,
    /// `path` (default) or `virtual`: where the bucket's name goes in URLs.
    #[serde(default)]
    addressing: Option<String>,
    /// The `cache-control` header of the pages, for an `s3://` output.
    #[serde(default)]
    cache_control: Option<String>,
    /// The branch that builds (default: the repository's default branch).
    branch: Option<String>,
    /// A layout file on the host (default: a built-in one).
    template: Option<String>,
    /// File names never converted or copied (compared without case).
    #[serde(default = "default_exclude")]
    exclude: Vec<String>,
    /// Only these Markdown files (paths in the repository, or bare file names).
    #[serde(default)]
    convert_only: Vec<String>,
    /// Where pages and files go in the site: `nested` (their folders) or `flat` (the
    /// site's root, by base name, as tx-manager wrote them).
    #[serde(default)]
    layout: layout::Layout,
    /// A URL that gets tx-manager's result JSON after the build.
    #[serde(default)]
    callback: Option<String>,
    /// One part per top-level directory holding Markdown, each with its own log.
    #[serde(default)]
    multipart: bool,
    /// Set by an `on_error` handler (`"{{ parent.summary }}"`): the build step ended
    /// abnormally for this reason; record that, and build nothing.
    #[serde(default)]
    abnormal_end: Option<String>,
}

fn default_exclude() -> Vec<String> {
    ["license.md", "package.json", "project.json", "readme.md"].map(String::from).to_vec()
}

struct Md2Html;

impl Plugin for Md2Html {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let Some(branch) = event.branch.clone() else {
            return Ok(Outcome::skipped("not a branch push"));
        };
        let wanted = settings.branch.clone().or_else(|| event.repository.default_branch.clone());
        let Some(wanted) = wanted else {
            return Ok(Outcome::skipped("the payload names no default branch: set `branch`"));
        };
        if branch != wanted {
            return Ok(Outcome::skipped(format!("branch `{branch}` is not `{wanted}`, the branch that builds")));
        }
        let Some(commit) = event.after.clone().filter(|c| !c.chars().all(|c| c == '0')) else {
            return Ok(Outcome::skipped(format!("branch `{branch}` was deleted")));
        };
        check_names(&event.repository.owner, &event.repository.name, &commit).map_err(Error::failed)?;
        let output = Output::new(
            settings.output.as_deref(),
            settings.output_dir.as_deref(),
            settings.endpoint.as_deref(),
            settings.addressing.as_deref(),
            settings.cache_control.as_deref(),
        )?;
        let target = Target::new(&event, &commit);
        let job = Job { event: &event, settings: &settings, output: &output, target: &target };
        match &settings.abnormal_end {
            Some(reason) => job.record_abnormal_end(reason),
            None => job.run(),
        }
    }
}

/// One build: the event, the settings, where it goes and what it is called.
struct Job<'a> {
    event: &'a Event,
    settings: &'a Settings,
    output: &'a Output,
    target: &'a Target,
}

/// A part of a multi-part build: its index and directory, and what its run collected.
struct Part {
    index: usize,
    book: String,
    build: Build,
}

impl Job<'_> {
    /// The build: the `started` log first, the pages to a staging location, then in
    /// place of the commit's previous site, `project.json`, and the final log last.
    fn run(&self) -> Result<Outcome, Error> {
        let mut log = self.started_log(&rfc3339(SystemTime::now()));
        // What an interrupted build of this commit left is put right first: locally before
        // the log is written into the site's directory (a swap cut short left none), on
        // S3 after the `started` log, so that readers see the build from its first request.
        let repair = || self.output.repair(&self.target.commit_key).map_err(|err| err.context("repairing"));
        let local = matches!(self.output, Output::Local { .. });
        if local {
            log.log.extend(repair()?);
        }
        self.write_log(&log)?;
        if !local {
            log.log.extend(repair()?);
        }
        self.update_project(&log)?;
        let mut parts = Vec::new();
        let ended = self.build(&mut log, &mut parts);
        if let Ok(Some(owner)) = &ended {
            let line = format!(
                "build {} of {} is superseded: build {owner}'s log is in {}; nothing published",
                self.target.job_id,
                self.target.short,
                self.output.describe(&self.target.log_key()),
            );
            log::warn(&line);
            return Ok(Outcome::skipped(line));
        }
        let ended = ended.map(|_| ());
        let now = rfc3339(SystemTime::now());
        if let Err(err) = &ended {
            log.end_abnormally(&error_text(err), &now);
        } else {
            log.finish(&now);
        }
        if !parts.is_empty() {
            let mut part_logs = Vec::with_capacity(parts.len());
            let count = parts.len();
            for part in &parts {
                let mut part_log = log.clone();
                part_log.identifier = format!("{}/{count}/{}/{}", log.job_id, part.index, part.book);
                part_log.book = Some(part.book.clone());
                part_log.part = Some(part.index.to_string());
                part_log.log = part.build.log.clone();
                part_log.warnings = part.build.warnings.clone();
                part_log.errors = part.build.errors.clone();
                part_log.pages = part.build.pages.iter().map(|(path, _)| path.clone()).collect();
                part_log.timings = part.build.timings;
                match &ended {
                    Err(err) => part_log.end_abnormally(&error_text(err), &now),
                    Ok(()) if log.status == Status::Failed && part_log.errors.is_empty() => {
                        // Its pages were discarded with the rest: the whole site is not published.
                        part_log.errors.push("Not published: another part or the last run failed".into());
                        part_log.finish(&now);
                    }
                    Ok(()) => part_log.finish(&now),
                }
                let bytes = part_log.to_json();
                self.output
                    .write(&self.target.part_log_key(part.index), bytes)
                    .map_err(|err| err.context(&format!("writing part {}'s log", part.index)))?;
                part_logs.push(part_log);
            }
            // The whole build's messages hold every part's, so its status is the worst.
            log.multiple = Some(true);
            log.build_logs = Some(part_logs);
        }
        self.update_project(&log)?;
        self.write_log(&log)?;
        let callbacks = self.call_back(&log);
        let site = self.output.describe(&self.target.commit_key);
        let summary = format!(
            "{}: {} page(s), {} warning(s), {} error(s) in {site}",
            log.message,
            log.pages.len(),
            log.warnings.len(),
            log.errors.len(),
        );
        // The step's output has a size cap: counts and the first messages; the log has all.
        let first = |messages: &[String]| messages.iter().take(OUTPUT_MESSAGES).cloned().collect::<Vec<_>>();
        let output = json!({
            "status": log.status, "site": site, "job_id": log.job_id, "pages": log.pages.len(),
            "warnings": first(&log.warnings), "warning_count": log.warnings.len(),
            "errors": first(&log.errors), "error_count": log.errors.len(),
            "timings": log.timings, "converter": DECLARATION,
            "build_log": self.output.describe(&self.target.log_key()), "callback": first(&callbacks),
        });
        // A step that could not finish keeps its error, so that a retry can follow.
        ended?;
        let outcome = if log.status == Status::Failed { Outcome::failure(summary) } else { Outcome::success(summary) };
        Ok(outcome.with_output(&output))
    }

    /// Makes the pages and publishes them; what goes wrong with the pages is in `log`, an
    /// error is what ended the build early. `Some(job)` when another build (`job`) has
    /// written the commit's log since this one started: it owns the site, and nothing
    /// is published.
    fn build(&self, log: &mut BuildLog, parts: &mut Vec<Part>) -> Result<Option<String>, Error> {
        let (event, settings, target) = (self.event, self.settings, self.target);
        let repo = checkout(event, settings)?;
        let page_layout = match &settings.template {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(err) => {
                    log.errors.push(format!("Cannot read the template {path}: {err}"));
                    return Ok(None);
                }
            },
            None => render::DEFAULT_LAYOUT.to_owned(),
        };
        let site_name = event.repository.full_name.clone();
        let mut stage = self.output.stage(&target.commit_key, &target.job_id).map_err(|err| err.context("staging"))?;
        let books = if settings.multipart { books(&repo, &target.commit, settings)? } else { Vec::new() };
        let mut all = Build::new(&target.short, Scope::Outside(books.clone()));
        let mut converted = Ok(());
        // The parts first, so that the last run, of what no part takes, indexes every page.
        for (index, book) in books.into_iter().enumerate() {
            let mut build = Build::new(&target.short, Scope::Under(book.clone()));
            converted = convert(&repo, &target.commit, settings, (&page_layout, &site_name), &mut stage, &mut build);
            all.absorb(&build);
            parts.push(Part { index, book, build });
            if converted.is_err() {
                break;
            }
        }
        if converted.is_ok() {
            converted = convert(&repo, &target.commit, settings, (&page_layout, &site_name), &mut stage, &mut all);
        }
        if let Err(err) = converted {
            // A write that failed ends the build: the staged site is incomplete.
            if let Err(cleanup) = self.output.discard(stage) {
                log.warnings.push(format!("Cannot remove the staged pages: {cleanup}"));
            }
            return Err(err);
        }
        log.log.append(&mut all.log);
        log.warnings.append(&mut all.warnings);
        log.errors.append(&mut all.errors);
        log.pages = all.pages.iter().map(|(path, _)| path.clone()).collect();
        log.timings = all.timings;
        if let Some(owner) = self.log_owner()? {
            self.output.discard(stage).map_err(|err| err.context("removing the staged pages"))?;
            return Ok(Some(owner));
        }
        let staged = if log.errors.is_empty() {
            // Readers keep seeing `started` until the final log replaces it.
            self.output.publish(stage, &target.commit_key, &log.to_json())
        } else {
            self.output.discard(stage)
        };
        staged.map_err(|err| err.context(&format!("publishing {}", self.output.describe(&target.commit_key))))?;
        Ok(None)
    }

    /// The job id in the commit's live `build_log.json` when it is another build's
    /// (a newer build of the commit started since), else `None`.
    fn log_owner(&self) -> Result<Option<String>, Error> {
        let live = self.live_log().map_err(|err| err.context("reading the build log"))?;
        let job = live.and_then(|log| log["job_id"].as_str().map(str::to_owned));
        Ok(job.filter(|job| *job != self.target.job_id))
    }

    /// The commit's live `build_log.json`, parsed (`None`: there is none, or it is not JSON).
    fn live_log(&self) -> Result<Option<Value>, output::OutputError> {
        Ok(self.output.read(&self.target.log_key())?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// What an `on_error` handler does: the build's log (kept from its `started` log when
    /// it is this job's) says it ended abnormally; the previous site stays as it was.
    fn record_abnormal_end(&self, reason: &str) -> Result<Outcome, Error> {
        let now = rfc3339(SystemTime::now());
        let where_ = self.output.describe(&self.target.log_key());
        // The failed log is written whatever the clean-up does; its problems are warnings.
        let mut problems = Vec::new();
        let recovered = self.output.recover(&self.target.commit_key, &self.target.job_id).unwrap_or_else(|err| {
            problems.push(format!("Cannot clean up after the build: {err}"));
            Vec::new()
        });
        let mut log = self.started_log(&now);
        let earlier = self.live_log().unwrap_or_else(|err| {
            problems.push(format!("Cannot read the build log: {err}"));
            None
        });
        if let Some(owner) = earlier.as_ref().and_then(|earlier| earlier["job_id"].as_str())
            && owner != self.target.job_id
        {
            // A newer build of the commit owns the log (and the site): not overwritten.
            let line = format!(
                "build {owner} owns {where_} now: the abnormal end of build {} is not recorded there",
                self.target.job_id
            );
            log::warn(&line);
            return Ok(Outcome::success(line));
        }
        if let Some(mut earlier) = earlier.filter(|earlier| earlier["job_id"] == self.target.job_id.as_str()) {
            if earlier["status"] != "started" {
                let ended = earlier["status"].as_str().unwrap_or("?").to_owned();
                if !recovered.is_empty() || !problems.is_empty() {
                    // What the clean-up did (e.g. finished a copy cut short) joins that log.
                    for (key, lines) in [("log", recovered), ("warnings", problems)] {
                        if let Some(list) = earlier[key].as_array_mut() {
                            list.extend(lines.into_iter().map(Value::from));
                        }
                    }
                    let bytes = serde_json::to_vec_pretty(&earlier).expect("a build log is plain data");
                    self.output
                        .write(&self.target.log_key(), bytes)
                        .map_err(|err| err.context("writing the build log"))?;
                }
                return Ok(Outcome::success(format!("the build already recorded its end ({ended}) in {where_}")));
            }
            let text = |key: &str| earlier[key].as_str().map(str::to_owned);
            log.created_at = text("created_at").unwrap_or(log.created_at);
            log.started_at = text("started_at").unwrap_or(log.started_at);
            if let Some(lines) = earlier["log"].as_array() {
                log.log = lines.iter().filter_map(|line| line.as_str().map(str::to_owned)).collect();
            }
        }
        log.log.extend(recovered);
        log.warnings.extend(problems);
        log.end_abnormally(reason, &now);
        self.update_project(&log)?;
        self.write_log(&log)?;
        let callbacks = self.call_back(&log);
        Ok(Outcome::success(format!("recorded the abnormal end of build {} in {where_}", self.target.short))
            .with_output(
                &json!({"status": log.status, "job_id": log.job_id, "message": log.message, "callback": callbacks}),
            ))
    }

    fn started_log(&self, now: &str) -> BuildLog {
        let (output, target) = (self.output, self.target);
        let destination = Destination {
            output: output.describe(&target.commit_key),
            bucket: output.bucket().map(str::to_owned),
            key: output.bucket_key(&format!("{}/", target.commit_key)),
        };
        let mut options = json!({});
        if !self.settings.convert_only.is_empty() {
            options["convert_only"] = json!(self.settings.convert_only);
        }
        BuildLog::started(self.event, target, destination, self.settings.callback.as_deref(), options, now)
    }

    fn write_log(&self, log: &BuildLog) -> Result<(), Error> {
        self.output.write(&self.target.log_key(), log.to_json()).map_err(|err| err.context("writing the build log"))
    }

    /// Adds (or replaces) this build in the repository's `project.json`.
    fn update_project(&self, log: &BuildLog) -> Result<(), Error> {
        let key = format!("{}/project.json", self.target.site_key);
        let current = self.output.read(&key).map_err(|err| err.context("reading project.json"))?;
        let bytes = build_log::project(current.as_deref(), self.event, log);
        self.output.write(&key, bytes).map_err(|err| err.context("writing project.json"))
    }

    /// POSTs tx-manager's result to `callback`: one per part of a multi-part build.
    fn call_back(&self, log: &BuildLog) -> Vec<String> {
        let Some(url) = &self.settings.callback else { return Vec::new() };
        // One per part, then the whole build's, which says whether the site was published.
        let parts = log.build_logs.iter().flatten();
        parts.chain([log]).map(|part| callback::post(url, &part.result())).collect()
    }
}

/// An error as the log gives it.
fn error_text(err: &Error) -> String {
    match err {
        Error::Failed(message) | Error::Transient(message) | Error::InvalidSettings(message) => message.clone(),
    }
}

/// The top-level directories holding Markdown to convert: a multi-part build's books.
fn books(repo: &Repository, commit: &str, settings: &Settings) -> Result<Vec<String>, Error> {
    let entries = repo.tree(commit)?;
    let mut books = std::collections::BTreeSet::new();
    for entry in entries {
        let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
        let excluded = settings.exclude.iter().any(|e| e.eq_ignore_ascii_case(name));
        if let Some((top, _)) = entry.path.split_once('/')
            && !excluded
            && safe_path(&entry.path)
            && part_log_dir(top).is_none()
            && entry.path.to_lowercase().ends_with(".md")
        {
            books.insert(top.to_owned());
        }
    }
    Ok(books.into_iter().collect())
}

/// The clone under `repodir`, made if missing, fetched so that the pushed commit is there.
fn checkout(event: &Event, settings: &Settings) -> Result<Repository, Error> {
    let path =
        format!("{}/{}/{}", settings.repodir.trim_end_matches('/'), event.repository.owner, event.repository.name);
    let repo = match Repository::open(&path) {
        Ok(repo) => {
            repo.fetch("origin").map_err(network)?;
            repo
        }
        Err(GitError::NotFound(_)) => {
            log::info(&format!("cloning {} into {path}", event.repository.clone_url));
            Repository::clone(&event.repository.clone_url, &path, None).map_err(network)?
        }
        Err(err) => return Err(err.into()),
    };
    Ok(repo)
}

/// A fetch or clone that git itself failed (`GitError::Failed`: the remote did not
/// answer, the connection dropped) is worth a retry; a refusal or a missing repository
/// is not.
fn network(err: GitError) -> Error {
    match err {
        GitError::Failed(_) => Error::transient(format!("git: {}", err.message())),
        other => other.into(),
    }
}

/// Refuses payload values that become paths and keys: an owner (GitLab's groups may
/// hold `/`) or a name (no `/`) with an empty, `.` or `..` segment, and a commit that is
/// not a hex commit id (its first 10 characters name the site's directory).
fn check_names(owner: &str, name: &str, commit: &str) -> Result<(), String> {
    let bad = |part: &str| part.is_empty() || part == "." || part == ".." || part.contains(['\\', '\0']);
    if owner.split('/').any(bad) || bad(name) || name.contains('/') {
        return Err(format!("repository name `{owner}/{name}` cannot name a directory"));
    }
    if !matches!(commit.len(), 40 | 64) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`after` = `{commit}` is not a commit id (40 or 64 hex digits)"));
    }
    Ok(())
}

/// Whether a path of the commit's tree stays inside the site: no empty, `.` or `..`
/// segment (git refuses them, but a crafted tree can hold them).
fn safe_path(path: &str) -> bool {
    path.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'))
}

/// The first segment of a site path when it is a number (`0`, `12`): where a multi-part
/// build writes a part's log (`<commit10>/<i>/build_log.json`), so no file goes there.
fn part_log_dir(site_path: &str) -> Option<&str> {
    let first = site_path.split('/').next().unwrap_or(site_path);
    (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit())).then_some(first)
}

/// Which of the commit's files a conversion run takes.
#[derive(Debug, Clone)]
enum Scope {
    /// The files under one top-level directory: a part.
    Under(String),
    /// The files under none of these top-level directories: what no part takes (with
    /// none, every file).
    Outside(Vec<String>),
}

impl Scope {
    fn contains(&self, path: &str) -> bool {
        let top = path.split_once('/').map(|(top, _)| top);
        match self {
            Self::Under(dir) => top == Some(dir.as_str()),
            Self::Outside(dirs) => top.is_none_or(|top| !dirs.iter().any(|dir| dir == top)),
        }
    }
}

/// What a build collects on the way.
struct Build {
    short: String,
    scope: Scope,
    log: Vec<String>,
    warnings: Vec<String>,
    errors: Vec<String>,
    pages: Vec<(String, String)>,
    timings: Timings,
}

impl Build {
    fn new(short: &str, scope: Scope) -> Self {
        Self {
            short: short.to_owned(),
            scope,
            log: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            pages: Vec::new(),
            timings: Timings::default(),
        }
    }

    /// Adds a part's messages, pages and time to the whole build's.
    fn absorb(&mut self, part: &Build) {
        self.log.extend(part.log.iter().cloned());
        self.warnings.extend(part.warnings.iter().cloned());
        self.errors.extend(part.errors.iter().cloned());
        self.pages.extend(part.pages.iter().cloned());
        self.timings += part.timings;
    }
}

/// Reads the commit's tree (the files in the build's scope), renders its Markdown and
/// copies the rest to the staging location. What is wrong with a file is in `build`; an
/// error is a write to the staging location that failed, which ends the build.
fn convert(
    repo: &Repository,
    commit: &str,
    settings: &Settings,
    (page_layout, repo_name): (&str, &str),
    out: &mut Stage<'_>,
    build: &mut Build,
) -> Result<(), Error> {
    let read_started = Instant::now();
    let entries = match repo.tree(commit) {
        Ok(entries) => entries,
        Err(err) => {
            build.errors.push(format!("Cannot read commit {commit}: {}", err.message()));
            return Ok(());
        }
    };
    let excluded = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or(path).to_lowercase();
        settings.exclude.iter().any(|e| e.eq_ignore_ascii_case(&name))
    };
    let selected = |path: &str| {
        settings.convert_only.is_empty()
            || settings.convert_only.iter().any(|only| only == path || path.rsplit('/').next() == Some(only.as_str()))
    };
    let mut placed = Vec::new();
    for entry in &entries {
        if excluded(&entry.path) || !build.scope.contains(&entry.path) {
            continue;
        }
        if !safe_path(&entry.path) {
            build.warnings.push(format!("Skipped {:?}: a path with an empty, `.` or `..` segment", entry.path));
            continue;
        }
        if settings.multipart
            && let Some(part) = part_log_dir(&layout::target_path(settings.layout, &entry.path))
        {
            build.warnings.push(format!("Skipped {}: {part}/ holds part {part}'s build log", entry.path));
            continue;
        }
        let wanted =
            if layout::is_markdown(&entry.path) { selected(&entry.path) } else { settings.convert_only.is_empty() };
        if wanted {
            placed.push(entry.path.as_str());
        }
    }
    let plan = layout::plan(settings.layout, placed.iter().copied());
    for skipped in &plan.skipped {
        build.warnings.push(skipped.to_string());
    }
    let (sources, others): (Vec<&str>, Vec<&str>) =
        placed.into_iter().filter(|path| plan.targets.contains_key(*path)).partition(|path| layout::is_markdown(path));
    let mut texts = Vec::with_capacity(sources.len());
    for path in sources {
        match repo.read_file(commit, path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => texts.push((path, text)),
                Err(err) => {
                    build.warnings.push(format!("{path} is not valid UTF-8; converted with replacements"));
                    texts.push((path, String::from_utf8_lossy(err.as_bytes()).into_owned()));
                }
            },
            Err(err) => build.warnings.push(format!("Cannot read {path}: {}", err.message())),
        }
    }
    // `+=`: the last run of a multi-part build has the parts' time already.
    build.timings.read_ms += ms(read_started);
    build.log.push("Processing Markdown files".into());
    let render_started = Instant::now();
    let links = match settings.layout {
        layout::Layout::Nested => render::Links::Nested,
        layout::Layout::Flat => render::Links::Flat(&plan.targets),
    };
    let template = render::Template::parse(page_layout);
    let target = |path: &str| plan.targets.get(path).cloned().unwrap_or_else(|| render::html_path(path));
    let pages: Vec<(&str, String, String, String)> = texts
        .iter()
        .map(|(path, text)| {
            let page = render::markdown_with(text, path, links);
            let html_path = target(path);
            let root = "../".repeat(html_path.matches('/').count());
            let fields = render::Fields { root: &root, path, repo: repo_name, commit: &build.short };
            let html = template.fill(&page, &fields);
            (*path, html_path, page.title, html)
        })
        .collect();
    build.timings.render_ms += ms(render_started);
    let write_started = Instant::now();
    let taken = |path: &str, target: &str| format!("Skipped {path}: an earlier part already wrote {target}");
    for (path, html_path, title, html) in pages {
        if out.write(&html_path, html.as_bytes()).map_err(|err| err.context(&format!("staging {html_path}")))? {
            build.log.push(format!("Converted {path} to {html_path}."));
            build.pages.push((html_path, title));
        } else {
            build.warnings.push(taken(path, &html_path));
        }
    }
    for path in others {
        let copy = target(path);
        match repo.read_file(commit, path) {
            Ok(bytes) => {
                if !out.write(&copy, &bytes).map_err(|err| err.context(&format!("staging {copy}")))? {
                    build.warnings.push(taken(path, &copy));
                }
            }
            Err(err) => build.warnings.push(format!("Cannot read {path}: {}", err.message())),
        }
    }
    build.log.push("Finished processing Markdown files.".into());
    if matches!(build.scope, Scope::Under(_)) {
        // A part's pages are listed by the site's index, written by the run after the parts.
    } else if build.pages.is_empty() {
        build.errors.push("No Markdown files were found to convert".into());
    } else if let Some(own) = plan.owner("index.html") {
        // The repository's own home page wins over the generated list of pages.
        build.log.push(format!("Kept {own} as index.html; no page list written."));
    } else {
        let index = render::index(&build.pages, repo_name);
        let html = template
            .fill(&index, &render::Fields { root: "", path: "index.md", repo: repo_name, commit: &build.short });
        if !out.write("index.html", html.as_bytes()).map_err(|err| err.context("staging index.html"))? {
            build.warnings.push("Kept the index.html an earlier part wrote; no page list written.".into());
        }
    }
    build.timings.write_ms += ms(write_started);
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// `2026-11-22T14:03:05Z`.
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

gitauto_plugin::export!(Md2Html);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_the_tree_into_parts() {
        let cases: [(Scope, &[bool; 4]); 3] = [
            (Scope::Outside(Vec::new()), &[true, true, true, true]),
            (Scope::Under("01-GEN".into()), &[false, true, false, false]),
            (Scope::Outside(vec!["01-GEN".into(), "02-EXO".into()]), &[true, false, false, true]),
        ];
        let paths = ["manifest.yaml", "01-GEN/01.md", "02-EXO/intro/01.md", "media/logo.png"];
        for (scope, want) in cases {
            let got: Vec<bool> = paths.iter().map(|path| scope.contains(path)).collect();
            assert_eq!(got, want.to_vec(), "{scope:?}");
        }
    }

    #[test]
    fn names_and_paths_that_would_leave_the_output_are_refused() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(check_names("acme", "site", commit), Ok(()));
        assert_eq!(check_names("group/sub", "site", &"ab".repeat(32)), Ok(()));
        for (owner, name) in [("x", "x/../.."), ("x", ".."), ("..", "x"), ("a//b", "x"), ("a", "b\\c"), ("", "x")] {
            let err = check_names(owner, name, commit).unwrap_err();
            assert!(err.contains("cannot name a directory"), "{owner}/{name}: {err}");
        }
        for commit in ["../../etc/passwd/0123456789abcdef0123456789abcd", "0123456789", &"g".repeat(40)] {
            let err = check_names("acme", "site", commit).unwrap_err();
            assert!(err.contains("is not a commit id"), "{commit}: {err}");
        }
        assert!(safe_path("docs/a.md") && safe_path(".well-known/x"));
        for path in ["..", ".", "a/../b", "a//b", "../x.md", "a/.", "a\\..\\b"] {
            assert!(!safe_path(path), "{path}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_356_185);
        assert_eq!(rfc3339(at), "2026-11-22T14:03:05Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
