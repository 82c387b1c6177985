//! `md2html-convert`: tx-manager's md2html converter as a gitauto step. For a push to
//! the repository's default branch, render every Markdown file of the pushed commit to
//! HTML (see [`render`]), copy the other files, and write the site with a
//! `build_log.json` to `<output_dir>/u/<owner>/<repo>/<commit10>/`, listing the build
//! in `<output_dir>/u/<owner>/<repo>/project.json`.
//!
//! The files are read from the commit itself (through the git capability), from a
//! clone kept under `repodir`: made on first use, fetched on every push.

pub mod layout;
pub mod render;

use gitauto_plugin::git::{GitError, Repository};
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

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
    /// Where sites are written (`<output_dir>/u/...`); must be writable.
    output_dir: String,
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
}

fn default_exclude() -> Vec<String> {
    ["license.md", "package.json", "project.json", "readme.md"].map(String::from).to_vec()
}

/// tx-manager's build log, with the fields that still mean something here.
#[derive(Debug, Serialize)]
struct BuildLog {
    job_id: String,
    repo_name: String,
    repo_owner: String,
    commit_id: String,
    commit_url: Option<String>,
    commit_message: Option<String>,
    committed_by: Option<String>,
    compare_url: Option<String>,
    convert_module: &'static str,
    input_format: &'static str,
    output_format: &'static str,
    status: &'static str,
    success: bool,
    message: &'static str,
    log: Vec<String>,
    warnings: Vec<String>,
    errors: Vec<String>,
    created_at: String,
    started_at: String,
    ended_at: String,
    /// Pages written, by source path.
    pages: Vec<String>,
    /// Milliseconds spent reading, rendering and writing (rendering is measured on its own
    /// so that it can be compared with native code).
    timings: Timings,
}

#[derive(Debug, Default, Serialize)]
struct Timings {
    read_ms: f64,
    render_ms: f64,
    write_ms: f64,
}

struct Md2Html;

impl Plugin for Md2Html {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let started = SystemTime::now();
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
        let (owner, name) = (&event.repository.owner, &event.repository.name);
        for part in owner.split('/').chain([name.as_str()]) {
            if part.is_empty() || part == "." || part == ".." || part.contains(['\\', '\0']) {
                return Err(Error::failed(format!("repository name `{owner}/{name}` cannot name a directory")));
            }
        }
        let repo = checkout(&event, &settings)?;
        let short = commit.get(..10).unwrap_or(&commit).to_owned();
        let site = PathBuf::from(&settings.output_dir).join("u").join(owner).join(name);
        let out_dir = site.join(&short);
        let mut build = Build::new(&commit, &short);
        build.log.push(format!("Started job for {owner}/{name}/{short}"));
        let layout = match &settings.template {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(err) => {
                    build.errors.push(format!("Cannot read the template {path}: {err}"));
                    render::DEFAULT_LAYOUT.to_owned()
                }
            },
            None => render::DEFAULT_LAYOUT.to_owned(),
        };
        if let Err(err) = std::fs::remove_dir_all(&out_dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            build.errors.push(format!("Cannot clear {}: {err}", out_dir.display()));
        }
        if build.errors.is_empty() {
            let site_name = event.repository.full_name.clone();
            convert(&repo, &commit, &settings, (&layout, &site_name), &out_dir, &mut build);
        }
        let ended = SystemTime::now();
        let log = build.finish(&event, started, ended);
        let status = log.status;
        write_json(&out_dir.join("build_log.json"), &serde_json::to_value(&log).unwrap_or_default())?;
        update_project(&site, &event, &log)?;
        let summary = format!(
            "{}: {} page(s), {} warning(s), {} error(s) in {}",
            log.message,
            log.pages.len(),
            log.warnings.len(),
            log.errors.len(),
            out_dir.display()
        );
        let output = json!({
            "status": status, "site": out_dir.display().to_string(), "pages": log.pages.len(),
            "warnings": log.warnings, "errors": log.errors, "timings": log.timings, "converter": DECLARATION,
        });
        let outcome = if status == "failed" { Outcome::failure(summary) } else { Outcome::success(summary) };
        Ok(outcome.with_output(&output))
    }
}

/// The clone under `repodir`, made if missing, fetched so that the pushed commit is there.
fn checkout(event: &Event, settings: &Settings) -> Result<Repository, Error> {
    let path =
        format!("{}/{}/{}", settings.repodir.trim_end_matches('/'), event.repository.owner, event.repository.name);
    let repo = match Repository::open(&path) {
        Ok(repo) => {
            repo.fetch("origin")?;
            repo
        }
        Err(GitError::NotFound(_)) => {
            log::info(&format!("cloning {} into {path}", event.repository.clone_url));
            Repository::clone(&event.repository.clone_url, &path, None)?
        }
        Err(err) => return Err(err.into()),
    };
    Ok(repo)
}

/// What a build collects on the way.
struct Build {
    commit: String,
    short: String,
    log: Vec<String>,
    warnings: Vec<String>,
    errors: Vec<String>,
    pages: Vec<(String, String)>,
    timings: Timings,
}

impl Build {
    fn new(commit: &str, short: &str) -> Self {
        Self {
            commit: commit.to_owned(),
            short: short.to_owned(),
            log: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            pages: Vec::new(),
            timings: Timings::default(),
        }
    }

    fn finish(self, event: &Event, started: SystemTime, ended: SystemTime) -> BuildLog {
        let (status, success, message) = if !self.errors.is_empty() {
            ("failed", false, "Conversion failed")
        } else if !self.warnings.is_empty() {
            ("warnings", true, "Conversion successful with warnings")
        } else {
            ("success", true, "Conversion successful")
        };
        let pushed = event.commits.iter().find(|c| c.id == self.commit);
        let repository = &event.repository;
        BuildLog {
            job_id: format!("{}-{}", self.short, event.delivery),
            repo_name: repository.name.clone(),
            repo_owner: repository.owner.clone(),
            commit_id: self.short.clone(),
            commit_url: pushed.and_then(|c| c.url.clone()),
            commit_message: pushed.map(|c| c.message.clone()),
            committed_by: event.sender.clone(),
            compare_url: (!repository.html_url.is_empty()).then(|| {
                let before = event.before.as_deref().unwrap_or_default();
                format!("{}/compare/{}...{}", repository.html_url, before.get(..10).unwrap_or(before), self.short)
            }),
            convert_module: "md2html",
            input_format: "md",
            output_format: "html",
            status,
            success,
            message,
            log: self.log,
            warnings: self.warnings,
            errors: self.errors,
            created_at: rfc3339(started),
            started_at: rfc3339(started),
            ended_at: rfc3339(ended),
            pages: self.pages.into_iter().map(|(path, _)| path).collect(),
            timings: self.timings,
        }
    }
}

/// Reads the commit's tree, renders its Markdown, copies the rest, writes the index.
fn convert(
    repo: &Repository,
    commit: &str,
    settings: &Settings,
    (page_layout, repo_name): (&str, &str),
    out_dir: &Path,
    build: &mut Build,
) {
    let read_started = Instant::now();
    let entries = match repo.tree(commit) {
        Ok(entries) => entries,
        Err(err) => {
            build.errors.push(format!("Cannot read commit {commit}: {}", err.message()));
            return;
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
        if excluded(&entry.path) {
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
    build.timings.read_ms = ms(read_started);
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
    build.timings.render_ms = ms(render_started);
    let write_started = Instant::now();
    for (path, html_path, title, html) in pages {
        match write(&out_dir.join(&html_path), html.as_bytes()) {
            Ok(()) => {
                build.log.push(format!("Converted {path} to {html_path}."));
                build.pages.push((html_path, title));
            }
            Err(err) => build.errors.push(format!("Cannot write {html_path}: {err}")),
        }
    }
    for path in others {
        let copy = target(path);
        match repo.read_file(commit, path) {
            Ok(bytes) => {
                if let Err(err) = write(&out_dir.join(&copy), &bytes) {
                    build.warnings.push(format!("Cannot copy {path}: {err}"));
                }
            }
            Err(err) => build.warnings.push(format!("Cannot read {path}: {}", err.message())),
        }
    }
    build.log.push("Finished processing Markdown files.".into());
    if build.pages.is_empty() {
        build.errors.push("No Markdown files were found to convert".into());
    } else if let Some(own) = plan.owner("index.html") {
        // The repository's own home page wins over the generated list of pages.
        build.log.push(format!("Kept {own} as index.html; no page list written."));
    } else {
        let index = render::index(&build.pages, repo_name);
        let html = template
            .fill(&index, &render::Fields { root: "", path: "index.md", repo: repo_name, commit: &build.short });
        if let Err(err) = write(&out_dir.join("index.html"), html.as_bytes()) {
            build.errors.push(format!("Cannot write index.html: {err}"));
        }
    }
    build.timings.write_ms = ms(write_started);
}

/// Adds (or replaces) this build in the repository's `project.json`.
fn update_project(site: &Path, event: &Event, log: &BuildLog) -> Result<(), Error> {
    let path = site.join("project.json");
    let mut project: Value = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| json!({"user": event.repository.owner, "repo_name": event.repository.name, "commits": []}));
    let entry = json!({
        "id": log.commit_id, "created_at": log.created_at, "status": log.status, "success": log.success,
        "started_at": log.started_at, "ended_at": log.ended_at,
    });
    let commits = project["commits"].as_array_mut().map(std::mem::take).unwrap_or_default();
    let mut commits: Vec<Value> = commits.into_iter().filter(|c| c["id"] != log.commit_id.as_str()).collect();
    commits.push(entry);
    project["commits"] = Value::Array(commits);
    write_json(&path, &project)
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

fn write_json(path: &Path, value: &Value) -> Result<(), Error> {
    let text = serde_json::to_vec_pretty(value).map_err(|err| Error::failed(err.to_string()))?;
    write(path, &text).map_err(|err| Error::failed(format!("writing {}: {err}", path.display())))
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
    fn timestamps_are_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_356_185);
        assert_eq!(rfc3339(at), "2026-11-22T14:03:05Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
