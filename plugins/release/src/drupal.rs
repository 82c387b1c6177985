//! Drupal's update status feed (`release-history/<project>/<api>.xml`), as Drupal.org
//! and Dropfort's Feature Server served it, from release records: the XML document, its
//! path, and the `Release type` terms a release's notes imply. Finding the records and
//! writing the file are `lib.rs`'s and `publish.rs`'s.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer};

use crate::record::{Asset, ReleaseRecord};
use crate::version::{Stability, Version};

/// The project-level data of the feed: the step's `drupal = { ... }` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The project's human name (`title`); default: the short name.
    #[serde(default)]
    pub title: Option<String>,
    /// The machine name Drupal knows the project by (`short_name`, the `project` key of
    /// its `.info.yml`); default: the release's project.
    #[serde(default, deserialize_with = "machine_name")]
    pub short_name: Option<String>,
    /// The maintainer shown as `dc:creator`; left out when not set.
    #[serde(default)]
    pub creator: Option<String>,
    /// `type`: what kind of project.
    #[serde(default, rename = "type")]
    pub project_type: ProjectType,
    /// Which feed this is (`api_version`): `current` (what Drupal 8.8 and later fetch,
    /// listing `8.x-` and semantic versions), or a core API such as `7.x` (what Drupal 7
    /// fetches, listing that API's releases). Default: the feed the released tag's version
    /// belongs to ([`feed_api`]).
    #[serde(default, deserialize_with = "api_version")]
    pub api: Option<String>,
    /// `supported_branches`, e.g. `["8.x-1.", "2.0."]`; default: the branch of every
    /// release listed, so nothing is reported unsupported until this is narrowed.
    #[serde(default, deserialize_with = "branches")]
    pub supported_branches: Option<Vec<String>>,
    /// `project_status`.
    #[serde(default)]
    pub project_status: ProjectStatus,
    /// The project's web page (`link`); also the release link of last resort.
    #[serde(default)]
    pub link: Option<String>,
    /// Project terms (`terms/term`), e.g. `{ name = "Maintenance status", value = "Actively maintained" }`.
    #[serde(default)]
    pub terms: Vec<Term>,
    /// Whether stable releases are covered by a security advisory policy
    /// (`<security covered="1">`). Default false: say so only if it is true.
    #[serde(default)]
    pub security_covered: bool,
    /// `core_compatibility` of every release, a Composer constraint on Drupal core such
    /// as `^10 || ^11`; left out when not set.
    #[serde(default)]
    pub core_compatibility: Option<String>,
    /// `recommended_major` (and `default_major`) of a core-API feed such as `7.x`, which
    /// Drupal 7 reads; default: the highest supported major with a stable release.
    #[serde(default)]
    pub recommended_major: Option<u64>,
}

/// One project term.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// The vocabulary, e.g. `Maintenance status`.
    pub name: String,
    /// The term, e.g. `Actively maintained`.
    pub value: String,
}

/// `type`: the kinds of project Drupal.org serves feeds for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ProjectType {
    /// `project_module`.
    #[default]
    #[serde(rename = "project_module")]
    Module,
    /// `project_theme`.
    #[serde(rename = "project_theme")]
    Theme,
    /// `project_distribution`: an installation profile with its code.
    #[serde(rename = "project_distribution")]
    Distribution,
    /// `project_core`: Drupal core itself.
    #[serde(rename = "project_core")]
    Core,
    /// `project_theme_engine`.
    #[serde(rename = "project_theme_engine")]
    ThemeEngine,
}

impl ProjectType {
    fn as_str(self) -> &'static str {
        match self {
            ProjectType::Module => "project_module",
            ProjectType::Theme => "project_theme",
            ProjectType::Distribution => "project_distribution",
            ProjectType::Core => "project_core",
            ProjectType::ThemeEngine => "project_theme_engine",
        }
    }
}

/// `project_status`, as the update module interprets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// Normal: releases are compared.
    #[default]
    Published,
    /// Sites are told to uninstall it: it is insecure.
    Insecure,
    /// Sites are told it was revoked.
    Unpublished,
    /// Sites are told it was revoked.
    Revoked,
    /// Sites are told it is no longer supported.
    Unsupported,
}

impl ProjectStatus {
    fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Published => "published",
            ProjectStatus::Insecure => "insecure",
            ProjectStatus::Unpublished => "unpublished",
            ProjectStatus::Revoked => "revoked",
            ProjectStatus::Unsupported => "unsupported",
        }
    }
}

/// The `Release type` terms the update module acts on, in the order the feed lists them.
const RELEASE_TYPES: [&str; 5] = ["New features", "Bug fixes", "Security update", "Insecure", "Unsupported"];

/// Where the feed goes under the publishing destination:
/// `release-history/<short_name>/<api>.xml`, with the project's `short_name` (else
/// `short_name`) and the project's `api`, else the feed a release of core API `api`
/// belongs to ([`feed_api`]: `current` for `8.x` and none, else the API). Drupal requests
/// `<project status url>/<short_name>/current` (Drupal 7: `.../7.x`) with no extension,
/// so the server must answer that URL with this file.
pub fn feed_path(project: &Project, short_name: &str, api: Option<&str>) -> String {
    let name = project.short_name.clone().unwrap_or_else(|| machine_name_of(short_name));
    let api = project.api.as_deref().unwrap_or_else(|| feed_api_of(api));
    format!("release-history/{}/{}.xml", path_segment(&name), path_segment(api))
}

/// The feed a release of `version` belongs to: `current` for `8.x-` and semantic
/// versions (what Drupal 8.8 and later fetch), else its core API (`7.x`).
pub fn feed_api(version: &Version) -> &str {
    feed_api_of(version.api.as_deref())
}

fn feed_api_of(api: Option<&str>) -> &str {
    match api {
        None | Some("8.x") => "current",
        Some(api) => api,
    }
}

/// The whole feed document for `project`, listing those of `releases` that belong to
/// the project's `api` (`current`: `8.x-` and semantic versions; `7.x`: `7.x-` ones;
/// when the project sets none, the feed of the most recently tagged release),
/// one per version (the newest record of a version wins), newest first as Drupal.org
/// lists them: by major, then minor and patch, each level's pre-releases after its
/// release, each major's development snapshots last. Deterministic: the same records
/// in any order give the same bytes.
pub fn feed(project: &Project, releases: &[ReleaseRecord]) -> String {
    let newest = releases.iter().max_by(|a, b| a.date.cmp(&b.date).then(a.parsed.cmp(&b.parsed)));
    let api = project.api.as_deref().or(newest.map(|record| feed_api(&record.parsed))).unwrap_or("current");
    let short_name = project
        .short_name
        .clone()
        .or_else(|| releases.first().map(|record| machine_name_of(&record.project)))
        .unwrap_or_default();
    let mut listed: Vec<&ReleaseRecord> = releases.iter().filter(|record| in_feed(api, &record.parsed)).collect();
    listed.sort_by(|a, b| b.parsed.cmp(&a.parsed).then(b.date.cmp(&a.date)).then(a.tag.cmp(&b.tag)));
    listed.dedup_by(|later, kept| later.version == kept.version);

    let mut branches: Vec<String> = Vec::new();
    for record in &listed {
        let branch = record.parsed.branch();
        if !branches.contains(&branch) {
            branches.push(branch);
        }
    }
    let supported = project.supported_branches.clone().unwrap_or(branches);

    let mut xml = Xml::default();
    xml.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.raw("<project xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n");
    xml.element(1, "title", project.title.as_deref().unwrap_or(&short_name));
    xml.element(1, "short_name", &short_name);
    if let Some(creator) = &project.creator {
        xml.element(1, "dc:creator", creator);
    }
    xml.element(1, "type", project.project_type.as_str());
    xml.element(1, "api_version", api);
    if api != "current" {
        // Drupal 7 (and 8 before 8.8) pick the target major from these, not branches.
        let majors: BTreeSet<u64> = supported.iter().filter_map(|branch| branch_major(branch)).collect();
        let recommended = project.recommended_major.or_else(|| recommended_major(&listed, &majors));
        if let Some(major) = recommended {
            xml.element(1, "recommended_major", &major.to_string());
        }
        let majors: Vec<String> = majors.iter().map(u64::to_string).collect();
        xml.element(1, "supported_majors", &majors.join(","));
        if let Some(major) = recommended {
            xml.element(1, "default_major", &major.to_string());
        }
    }
    xml.element(1, "supported_branches", &supported.join(","));
    xml.element(1, "project_status", project.project_status.as_str());
    if let Some(link) = &project.link {
        xml.element(1, "link", link);
    }
    if !project.terms.is_empty() {
        xml.open(1, "terms");
        for term in &project.terms {
            xml.term(2, &term.name, &term.value);
        }
        xml.close(1, "terms");
    }
    xml.open(1, "releases");
    for record in listed {
        release(&mut xml, project, &short_name, record);
    }
    xml.close(1, "releases");
    xml.raw("</project>\n");
    xml.0
}

/// The `Release type` terms `notes` (release notes or a tag message) imply. A line
/// `Release type: Security update, Bug fixes` says exactly which (names matched without
/// regard to case: `New features`, `Bug fixes`, `Security update`, `Insecure`,
/// `Unsupported`). Without one they are inferred: `Security update` only from an
/// advisory identifier (`SA-CORE-`, `SA-CONTRIB-` or `CVE-` and a number) that no
/// negation precedes on its line; `Bug fixes` from a word fix, fixes, fixed, bug, bugs,
/// bugfix or hotfix; `New features` from a word feature, features, feat, add, adds or
/// added.
pub fn release_types(notes: &str) -> Vec<String> {
    let mut explicit: Option<Vec<String>> = None;
    for line in notes.lines() {
        let line = line.trim().trim_start_matches(['-', '*', '#', ' ']);
        let Some((label, values)) = line.split_once(':') else { continue };
        if !matches!(label.trim().to_ascii_lowercase().as_str(), "release type" | "release types") {
            continue;
        }
        let found = explicit.get_or_insert_with(Vec::new);
        for value in values.split(',') {
            let known = RELEASE_TYPES.iter().find(|name| name.eq_ignore_ascii_case(value.trim()));
            if let Some(name) = known.filter(|name| !found.iter().any(|have| have == *name)) {
                found.push((*name).to_owned());
            }
        }
    }
    if let Some(explicit) = explicit {
        return explicit;
    }
    let lower = notes.to_lowercase();
    let words: BTreeSet<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).collect();
    let any_word = |list: &[&str]| list.iter().any(|word| words.contains(word));
    let security = names_an_advisory(&lower);
    let mut types = Vec::new();
    if any_word(&["feature", "features", "feat", "add", "adds", "added"]) {
        types.push("New features".to_owned());
    }
    if any_word(&["fix", "fixes", "fixed", "bug", "bugs", "bugfix", "bugfixes", "hotfix"]) {
        types.push("Bug fixes".to_owned());
    }
    if security {
        types.push("Security update".to_owned());
    }
    types
}

/// Whether `lower` (lowercase notes) names an advisory, `SA-CORE-`, `SA-CONTRIB-` or
/// `CVE-` followed by a digit, on a line without a negation before it ("no", "not",
/// "none", "without", "nor", "…n't"): "Fixes CVE-2024-1234" names one, "No CVE-2024-1234
/// impact" and "not a security release" do not. Words alone ("security update") never
/// make a release a security update: sites are told to update at once, so only an
/// identifier or an explicit `Release type` line does.
fn names_an_advisory(lower: &str) -> bool {
    lower.lines().any(|line| {
        ["sa-core-", "sa-contrib-", "cve-"].iter().any(|marker| {
            line.match_indices(marker).any(|(at, _)| {
                let after = &line[at + marker.len()..];
                let before = &line[..at];
                let negated = before
                    .split(|c: char| !c.is_alphanumeric() && c != '\'')
                    .any(|word| matches!(word, "no" | "not" | "none" | "without" | "nor") || word.ends_with("n't"));
                after.starts_with(|c: char| c.is_ascii_digit()) && !negated
            })
        })
    })
}

/// One `<release>`.
fn release(xml: &mut Xml, project: &Project, short_name: &str, record: &ReleaseRecord) {
    let version = &record.parsed;
    let files = ordered_files(&record.assets);
    let download = files.first().copied();
    xml.open(2, "release");
    xml.element(3, "name", &format!("{short_name} {}", record.version));
    xml.element(3, "version", &record.version);
    xml.element(3, "tag", &record.tag);
    xml.element(3, "version_major", &version.major.to_string());
    if let Some(minor) = version.minor {
        xml.element(3, "version_minor", &minor.to_string());
    }
    if let Some(patch) = version.patch {
        xml.element(3, "version_patch", &patch.to_string());
    }
    if let Some(extra) = &version.extra {
        xml.element(3, "version_extra", extra);
    }
    xml.element(3, "status", "published");
    // The update module (Drupal 9.2+) drops a release without a release link as
    // malformed, so one is always given when any URL is known.
    let release_link =
        record.release_link.as_deref().or(download.and_then(|asset| asset.url.as_deref())).or(project.link.as_deref());
    if let Some(link) = release_link {
        xml.element(3, "release_link", link);
    }
    if let Some(asset) = download {
        xml.element(3, "download_link", asset.url.as_deref().unwrap_or_default());
    }
    xml.element(3, "date", &record.date.to_string());
    if let Some(asset) = download {
        xml.element(3, "mdhash", &asset.md5);
        xml.element(3, "filesize", &asset.size.to_string());
    }
    if !files.is_empty() {
        xml.open(3, "files");
        for asset in &files {
            xml.open(4, "file");
            xml.element(5, "url", asset.url.as_deref().unwrap_or_default());
            xml.element(5, "archive_type", &asset.format);
            xml.element(5, "md5", &asset.md5);
            xml.element(5, "size", &asset.size.to_string());
            xml.element(5, "filedate", &record.date.to_string());
            xml.close(4, "file");
        }
        xml.close(3, "files");
    }
    let terms = release_terms(record);
    if !terms.is_empty() {
        xml.open(3, "terms");
        for term in &terms {
            xml.term(4, "Release type", term);
        }
        xml.close(3, "terms");
    }
    security(xml, project, version);
    if let Some(constraint) = &project.core_compatibility {
        xml.element(3, "core_compatibility", constraint);
    }
    xml.close(2, "release");
}

/// `<security>`: what Drupal.org says about advisory coverage of this release.
fn security(xml: &mut Xml, project: &Project, version: &Version) {
    let not_covered = |kind: &str| format!("{kind} releases are not covered by Drupal security advisories.");
    let text = match version.stability {
        Stability::Stable if project.security_covered => {
            xml.indent(3);
            xml.raw("<security covered=\"1\">");
            xml.text("Covered by Drupal's security advisory policy");
            xml.raw("</security>\n");
            return;
        }
        Stability::Stable => "Project has not opted into security advisory coverage!".to_owned(),
        Stability::Rc => not_covered("RC"),
        Stability::Beta => not_covered("Beta"),
        Stability::Alpha => not_covered("Alpha"),
        Stability::Dev => not_covered("Dev"),
    };
    xml.element(3, "security", &text);
}

/// The record's terms, else those its notes (or tag message) imply; known names only,
/// once each.
fn release_terms(record: &ReleaseRecord) -> Vec<String> {
    let terms = if record.terms.is_empty() {
        record.notes.as_deref().or(record.message.as_deref()).map(release_types).unwrap_or_default()
    } else {
        record.terms.clone()
    };
    let mut unique: Vec<String> = Vec::new();
    for term in terms {
        if !unique.contains(&term) {
            unique.push(term);
        }
    }
    unique
}

/// The downloadable archives, `tar.gz` first (Drupal.org's `download_link` and
/// `mdhash`), then `zip`, then any other format by name.
fn ordered_files(assets: &[Asset]) -> Vec<&Asset> {
    let rank = |asset: &Asset| match asset.format.as_str() {
        "tar.gz" => 0,
        "zip" => 1,
        _ => 2,
    };
    let mut files: Vec<&Asset> =
        assets.iter().filter(|asset| asset.url.as_deref().is_some_and(|url| !url.is_empty())).collect();
    files.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.format.cmp(&b.format)).then(a.name.cmp(&b.name)));
    files
}

/// Whether a release of `version` belongs in the feed for `api`.
fn in_feed(api: &str, version: &Version) -> bool {
    match version.api.as_deref() {
        None => api == "current" || api == "8.x",
        Some("8.x") => api == "current" || api == "8.x",
        Some(other) => other == api,
    }
}

/// `8.x-2.` → 2, `1.2.` → 1.
fn branch_major(branch: &str) -> Option<u64> {
    let branch = branch.split_once(".x-").map_or(branch, |(_, rest)| rest);
    branch.split('.').next()?.parse().ok()
}

/// The highest supported major with a stable release, else the highest supported one.
fn recommended_major(listed: &[&ReleaseRecord], supported: &BTreeSet<u64>) -> Option<u64> {
    let stable = listed
        .iter()
        .filter(|record| record.parsed.stability == Stability::Stable && supported.contains(&record.parsed.major))
        .map(|record| record.parsed.major)
        .max();
    stable.or_else(|| supported.last().copied())
}

/// A path segment that stays one segment: anything but letters, digits, `_`, `-` and
/// `.` becomes `_`, and a segment of dots alone becomes `_`.
/// The default `short_name` of project `name`: a Drupal machine name has lowercase
/// letters, digits and `_` only, so `my-module` is `my_module` (as the module's
/// `.info.yml` names it).
pub fn machine_name_of(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

fn path_segment(text: &str) -> String {
    let safe: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') { "_".to_owned() } else { safe }
}

/// The document being written: one element a line, one space of indentation a level.
#[derive(Default)]
struct Xml(String);

impl Xml {
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn indent(&mut self, depth: usize) {
        self.0.extend(std::iter::repeat_n(' ', depth));
    }

    fn open(&mut self, depth: usize, name: &str) {
        self.indent(depth);
        let _ = writeln!(self.0, "<{name}>");
    }

    fn close(&mut self, depth: usize, name: &str) {
        self.indent(depth);
        let _ = writeln!(self.0, "</{name}>");
    }

    fn element(&mut self, depth: usize, name: &str, text: &str) {
        self.indent(depth);
        let _ = write!(self.0, "<{name}>");
        self.text(text);
        let _ = writeln!(self.0, "</{name}>");
    }

    fn term(&mut self, depth: usize, name: &str, value: &str) {
        self.indent(depth);
        self.raw("<term><name>");
        self.text(name);
        self.raw("</name><value>");
        self.text(value);
        self.raw("</value></term>\n");
    }

    /// Escapes markup, and replaces what XML 1.0 cannot hold at all (control characters,
    /// U+FFFE, U+FFFF): one such character in a tag message would make SimpleXML refuse
    /// the whole feed.
    fn text(&mut self, text: &str) {
        for c in text.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&apos;"),
                '\t' | '\n' | '\r' => self.0.push(c),
                c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => self.0.push('\u{FFFD}'),
                c => self.0.push(c),
            }
        }
    }
}

fn machine_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let name = Option::<String>::deserialize(deserializer)?;
    if let Some(name) = &name {
        let valid = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "drupal short_name `{name}` is not a machine name (lowercase letters, digits and `_`, starting with a letter)"
            )));
        }
    }
    Ok(name)
}

fn api_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let api = Option::<String>::deserialize(deserializer)?;
    if let Some(api) = &api {
        let core = api.strip_suffix(".x").unwrap_or_default();
        let valid = api == "current" || (!core.is_empty() && core.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "drupal api `{api}` must be `current` or a core API such as `7.x`"
            )));
        }
    }
    Ok(api)
}

fn branches<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    let branches = Option::<Vec<String>>::deserialize(deserializer)?;
    for branch in branches.iter().flatten() {
        // The update module keeps only branches that parse as `<version prefix>.`.
        if branch_major(branch).is_none() || !branch.ends_with('.') || branch.contains(',') {
            return Err(serde::de::Error::custom(format!(
                "drupal supported branch `{branch}` must be a version prefix ending in `.` such as `8.x-1.` or `2.1.`"
            )));
        }
    }
    Ok(branches)
}

#[cfg(test)]
#[path = "../../../tests/src/debian.rs"]
mod debian;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::parse;

    fn asset(project: &str, version: &str, format: &str, url: bool) -> Asset {
        Asset {
            name: format!("{project}-{version}.{format}"),
            format: format.to_owned(),
            path: format!("/out/{project}/{project}-{version}.{format}"),
            size: 1000 + version.len() as u64 + format.len() as u64,
            sha256: "a".repeat(64),
            sha512: "b".repeat(128),
            md5: fake_md5(&format!("{project}-{version}.{format}")),
            url: url.then(|| format!("https://dl.example/{project}/{project}-{version}.{format}")),
        }
    }

    /// 32 lowercase hex digits that differ per file name (FNV-1a, 128 bits).
    fn fake_md5(name: &str) -> String {
        let hash = name.bytes().fold(0x6c62272e07bb014262b821756295c58du128, |hash, byte| {
            (hash ^ u128::from(byte)).wrapping_mul(0x0000000001000000000000000000013b)
        });
        format!("{hash:032x}")
    }

    fn record(project: &str, tag: &str, date: i64, message: Option<&str>) -> ReleaseRecord {
        let parsed = parse(tag).unwrap();
        let version = parsed.to_string();
        ReleaseRecord {
            project: project.to_owned(),
            version: version.clone(),
            tag: tag.to_owned(),
            commit: "0".repeat(40),
            date,
            parsed,
            message: message.map(str::to_owned),
            notes: None,
            terms: Vec::new(),
            assets: vec![asset(project, &version, "zip", true), asset(project, &version, "tar.gz", true)],
            release_link: Some(format!("https://git.example/{project}/-/releases/{tag}")),
        }
    }

    fn versions(xml: &str) -> Vec<&str> {
        xml.lines().filter_map(|line| line.trim().strip_prefix("<version>")?.strip_suffix("</version>")).collect()
    }

    #[test]
    fn releases_are_listed_newest_first_as_drupal_org_lists_them_whatever_order_they_come_in() {
        let tags = [
            "8.x-1.0",
            "8.x-1.x-dev",
            "8.x-1.1-beta1",
            "8.x-1.1",
            "2.0.0-rc1",
            "2.0.0",
            "2.0.x-dev",
            "8.x-1.10",
            "2.1.0-alpha1",
        ];
        let records: Vec<ReleaseRecord> =
            tags.iter().enumerate().map(|(i, tag)| record("token", tag, 1000 + i as i64, None)).collect();
        let want = [
            "2.1.0-alpha1",
            "2.0.0",
            "2.0.0-rc1",
            "2.0.x-dev",
            "8.x-1.10",
            "8.x-1.1",
            "8.x-1.1-beta1",
            "8.x-1.0",
            "8.x-1.x-dev",
        ];
        let project = Project::default();
        let first = feed(&project, &records);
        assert_eq!(versions(&first), want);
        let mut reversed = records.clone();
        reversed.reverse();
        assert_eq!(feed(&project, &reversed), first, "the same records in another order give the same bytes");
    }

    #[test]
    fn a_version_published_twice_is_listed_once_with_its_newest_record() {
        let old = record("token", "1.0.0", 100, None);
        let mut new = record("token", "v1.0.0", 200, None);
        new.release_link = Some("https://new.example/1.0.0".to_owned());
        let xml = feed(&Project::default(), &[old, new]);
        assert_eq!(versions(&xml), ["1.0.0"]);
        assert!(xml.contains("<release_link>https://new.example/1.0.0</release_link>"), "{xml}");
        assert!(xml.contains("<date>200</date>"), "{xml}");
    }

    #[test]
    fn a_feed_lists_only_its_core_apis_releases() {
        let records = [
            record("views", "7.x-3.1", 1, None),
            record("views", "8.x-3.2", 2, None),
            record("views", "4.0.0", 3, None),
        ];
        let current = feed(&Project::default(), &records);
        assert_eq!(versions(&current), ["4.0.0", "8.x-3.2"]);
        let seven = Project { api: Some("7.x".to_owned()), ..Project::default() };
        let xml = feed(&seven, &records);
        assert_eq!(versions(&xml), ["7.x-3.1"]);
        // Without an `api` setting, the feed is the one the most recent tag belongs to.
        assert_eq!(feed(&Project::default(), &records[..1]), xml);
        let mut latest_seven = records.clone();
        latest_seven[0].date = 10;
        assert_eq!(feed(&Project::default(), &latest_seven), feed(&seven, &latest_seven));
        assert!(xml.contains("<api_version>7.x</api_version>\n <recommended_major>3</recommended_major>\n <supported_majors>3</supported_majors>\n <default_major>3</default_major>\n <supported_branches>7.x-3.</supported_branches>"), "{xml}");
        assert!(!current.contains("recommended_major"), "{current}");
    }

    #[test]
    fn a_release_carries_every_field_drupal_reads() {
        let mut beta = record("token", "8.x-1.3-beta2", 1_700_000_000, None);
        beta.terms = vec!["Bug fixes".to_owned(), "Bug fixes".to_owned()];
        let project = Project {
            title: Some("Token".to_owned()),
            creator: Some("Dave".to_owned()),
            link: Some("https://www.example/project/token".to_owned()),
            terms: vec![Term { name: "Maintenance status".to_owned(), value: "Actively maintained".to_owned() }],
            core_compatibility: Some("^10 || ^11".to_owned()),
            ..Project::default()
        };
        let xml = feed(&project, &[beta]);
        let want = r#"<?xml version="1.0" encoding="utf-8"?>
<project xmlns:dc="http://purl.org/dc/elements/1.1/">
 <title>Token</title>
 <short_name>token</short_name>
 <dc:creator>Dave</dc:creator>
 <type>project_module</type>
 <api_version>current</api_version>
 <supported_branches>8.x-1.</supported_branches>
 <project_status>published</project_status>
 <link>https://www.example/project/token</link>
 <terms>
  <term><name>Maintenance status</name><value>Actively maintained</value></term>
 </terms>
 <releases>
  <release>
   <name>token 8.x-1.3-beta2</name>
   <version>8.x-1.3-beta2</version>
   <tag>8.x-1.3-beta2</tag>
   <version_major>1</version_major>
   <version_patch>3</version_patch>
   <version_extra>beta2</version_extra>
   <status>published</status>
   <release_link>https://git.example/token/-/releases/8.x-1.3-beta2</release_link>
   <download_link>https://dl.example/token/token-8.x-1.3-beta2.tar.gz</download_link>
   <date>1700000000</date>
   <mdhash>TAR_MD5</mdhash>
   <filesize>1019</filesize>
   <files>
    <file>
     <url>https://dl.example/token/token-8.x-1.3-beta2.tar.gz</url>
     <archive_type>tar.gz</archive_type>
     <md5>TAR_MD5</md5>
     <size>1019</size>
     <filedate>1700000000</filedate>
    </file>
    <file>
     <url>https://dl.example/token/token-8.x-1.3-beta2.zip</url>
     <archive_type>zip</archive_type>
     <md5>ZIP_MD5</md5>
     <size>1016</size>
     <filedate>1700000000</filedate>
    </file>
   </files>
   <terms>
    <term><name>Release type</name><value>Bug fixes</value></term>
   </terms>
   <security>Beta releases are not covered by Drupal security advisories.</security>
   <core_compatibility>^10 || ^11</core_compatibility>
  </release>
 </releases>
</project>
"#;
        let want = want
            .replace("TAR_MD5", &fake_md5("token-8.x-1.3-beta2.tar.gz"))
            .replace("ZIP_MD5", &fake_md5("token-8.x-1.3-beta2.zip"));
        assert_eq!(xml, want);
    }

    #[test]
    fn everything_written_is_escaped_and_nothing_xml_cannot_hold_gets_through() {
        let mut hostile = record("token", "1.0.0", 1, None);
        hostile.tag = "1.0.0<&>\"'".to_owned();
        hostile.release_link = Some("https://x.example/?a=1&b=<2>".to_owned());
        hostile.terms = vec!["Security update".to_owned()];
        let project = Project {
            title: Some("A & B <script>\u{1}\u{FFFF}".to_owned()),
            terms: vec![Term { name: "x\"y".to_owned(), value: "</value></term></terms><releases>".to_owned() }],
            security_covered: true,
            ..Project::default()
        };
        let xml = feed(&project, &[hostile]);
        assert!(xml.contains("<title>A &amp; B &lt;script&gt;\u{FFFD}\u{FFFD}</title>"), "{xml}");
        assert!(xml.contains("<tag>1.0.0&lt;&amp;&gt;&quot;&apos;</tag>"), "{xml}");
        assert!(xml.contains("<release_link>https://x.example/?a=1&amp;b=&lt;2&gt;</release_link>"), "{xml}");
        assert!(xml.contains("<value>&lt;/value&gt;&lt;/term&gt;&lt;/terms&gt;&lt;releases&gt;</value>"), "{xml}");
        assert!(
            xml.contains("<security covered=\"1\">Covered by Drupal&apos;s security advisory policy</security>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<release>").count(), 1);
    }

    #[test]
    fn without_a_forge_link_the_release_link_falls_back_to_the_download_then_the_project() {
        let mut record = record("token", "1.0.0", 1, None);
        record.release_link = None;
        let xml = feed(&Project::default(), std::slice::from_ref(&record));
        assert!(xml.contains("<release_link>https://dl.example/token/token-1.0.0.tar.gz</release_link>"), "{xml}");
        for asset in &mut record.assets {
            asset.url = None;
        }
        let project = Project { link: Some("https://p.example/token".to_owned()), ..Project::default() };
        let xml = feed(&project, &[record]);
        assert!(xml.contains("<release_link>https://p.example/token</release_link>"), "{xml}");
        assert!(!xml.contains("<download_link>") && !xml.contains("<files>") && !xml.contains("<mdhash>"), "{xml}");
    }

    #[test]
    fn release_types_come_from_an_explicit_line_or_from_the_notes_words() {
        let rows: &[(&str, &[&str])] = &[
            ("Release type: Security update, bug FIXES, nonsense", &["Security update", "Bug fixes"]),
            ("Notes\n- Release types: New features\nfixes a bug too", &["New features"]),
            ("Fixes SA-CONTRIB-2024-001: access bypass", &["Bug fixes", "Security update"]),
            ("Security release for CVE-2024-1234", &["Security update"]),
            ("Added a widget; fixed the prefix bug", &["New features", "Bug fixes"]),
            ("feat: tokens in titles", &["New features"]),
            ("Improve security headers documentation; prefix handling", &[]),
            ("Release 1.0", &[]),
            // Review L8: words about security are not an advisory.
            ("No CVE-related changes", &[]),
            ("This is not a security release", &[]),
            ("Security update", &[]),
            ("Not affected by CVE-2024-1234", &[]),
            ("We don't ship a fix for SA-CORE-2024-001 here", &["Bug fixes"]),
            ("Docs only.\nFixes CVE-2024-1234", &["Bug fixes", "Security update"]),
            ("Release type: Bug fixes\nMentions CVE-2024-1234 for reference", &["Bug fixes"]),
        ];
        for (notes, want) in rows {
            assert_eq!(release_types(notes), *want, "{notes:?}");
        }
    }

    #[test]
    fn terms_are_inferred_from_notes_else_the_tag_message_when_the_record_has_none() {
        let mut from_message = record("token", "1.0.1", 2, Some("Security update for SA-CONTRIB-2024-7"));
        let xml = feed(&Project::default(), std::slice::from_ref(&from_message));
        assert!(xml.contains("<term><name>Release type</name><value>Security update</value></term>"), "{xml}");
        from_message.notes = Some("Release type: New features".to_owned());
        let xml = feed(&Project::default(), &[from_message]);
        assert!(xml.contains("<value>New features</value>") && !xml.contains("Security update"), "{xml}");
    }

    #[test]
    fn feed_paths_follow_drupal_org_and_stay_one_segment_each() {
        let project = Project::default();
        assert_eq!(feed_path(&project, "token", None), "release-history/token/current.xml");
        assert_eq!(feed_path(&project, "token", Some("7.x")), "release-history/token/7.x.xml");
        assert_eq!(feed_path(&project, "token", Some("8.x")), "release-history/token/current.xml");
        let named =
            Project { short_name: Some("token_extra".to_owned()), api: Some("7.x".to_owned()), ..Project::default() };
        assert_eq!(feed_path(&named, "token-extra", None), "release-history/token_extra/7.x.xml");
        assert_eq!(feed_path(&project, "../../etc", Some("..")), "release-history/______etc/_.xml");
        // Review L10: the default short name is a machine name.
        assert_eq!(feed_path(&project, "My-Module", None), "release-history/my_module/current.xml");
        let xml = feed(&project, &[record("my-module", "1.0.0", 1, None)]);
        assert!(xml.contains("<short_name>my_module</short_name>"), "{xml}");
        assert!(xml.contains("<name>my_module 1.0.0</name>"), "{xml}");
    }

    #[test]
    fn project_settings_are_checked_when_read() {
        let ok: Project = serde_json::from_value(serde_json::json!({
            "title": "Token", "short_name": "token", "type": "project_theme", "api": "7.x",
            "supported_branches": ["7.x-1.", "2.1."], "project_status": "unsupported", "security_covered": true
        }))
        .unwrap();
        assert_eq!(ok.project_type, ProjectType::Theme);
        assert_eq!(ok.project_status, ProjectStatus::Unsupported);
        let rows = [
            (serde_json::json!({"short_name": "Token-X"}), "not a machine name"),
            (serde_json::json!({"api": "8"}), "must be `current` or a core API"),
            (serde_json::json!({"supported_branches": ["1.2"]}), "must be a version prefix ending in `.`"),
            (serde_json::json!({"project_status": "gone"}), "unknown variant `gone`"),
            (serde_json::json!({"type": "module"}), "unknown variant `module`"),
            (serde_json::json!({"titel": "x"}), "unknown field `titel`"),
        ];
        for (settings, want) in rows {
            let err = serde_json::from_value::<Project>(settings.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{settings}: {err}");
        }
    }

    /// Drupal's update module reading `xml` (tests/fixtures/drupal/read_feed.php) for a
    /// site running `installed`, as JSON.
    fn read_with_php(xml: &str, installed: &str) -> serde_json::Value {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let php = super::debian::ensure_debian_package("php-cli", "php");
        let has_simplexml = || {
            let out = Command::new(&php).args(["-r", "exit(extension_loaded('simplexml') ? 0 : 1);"]).output();
            out.is_ok_and(|out| out.status.success())
        };
        super::debian::ensure_debian_package_for("php-xml", has_simplexml);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/drupal/read_feed.php");
        let mut child = Command::new(&php)
            .args([script, installed])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(xml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "php: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("php printed no JSON ({err}): {stdout}"))
    }

    /// Issue 22's proof: the feed of three releases (stable, beta, security) read and
    /// validated field by field as Drupal's update module reads it, with PHP's SimpleXML.
    #[test]
    fn drupals_update_module_reads_every_field_of_a_stable_a_beta_and_a_security_release() {
        let stable = record("token", "1.2.0", 1_700_000_000, Some("Added the token browser; fixed escaping"));
        let beta = record("token", "v1.3.0-beta1", 1_700_100_000, Some("Adds media tokens"));
        let security = record("token", "1.2.1", 1_700_200_000, Some("Security release for SA-CONTRIB-2026-001"));
        let project = Project {
            title: Some("Token & Co".to_owned()),
            creator: Some("Dropfort".to_owned()),
            link: Some("https://www.example/project/token".to_owned()),
            terms: vec![Term { name: "Maintenance status".to_owned(), value: "Actively maintained".to_owned() }],
            security_covered: true,
            core_compatibility: Some("^10.3 || ^11".to_owned()),
            ..Project::default()
        };
        let xml = feed(&project, &[security.clone(), stable.clone(), beta.clone()]);
        let read = read_with_php(&xml, "1.2.0");

        assert_eq!(read["parsed"], true, "{read:#}");
        assert_eq!(read["errors"], serde_json::json!([]), "{read:#}");
        let project_fields = &read["project"];
        for (name, want) in [
            ("title", "Token & Co"),
            ("short_name", "token"),
            ("dc:creator", "Dropfort"),
            ("type", "project_module"),
            ("api_version", "current"),
            ("supported_branches", "1.3.,1.2."),
            ("project_status", "published"),
            ("link", "https://www.example/project/token"),
        ] {
            assert_eq!(project_fields[name], want, "project {name}: {read:#}");
        }
        assert_eq!(read["project_terms"], serde_json::json!({"Maintenance status": ["Actively maintained"]}));
        assert_eq!(read["order"], serde_json::json!(["1.3.0-beta1", "1.2.1", "1.2.0"]), "newest first");

        let releases = read["releases"].as_array().unwrap();
        let wants: [(&ReleaseRecord, &[&str], Option<&str>, &str); 3] = [
            (&beta, &["New features"], Some("beta1"), "Beta releases are not covered by Drupal security advisories."),
            (&security, &["Security update"], None, "Covered by Drupal's security advisory policy"),
            (&stable, &["New features", "Bug fixes"], None, "Covered by Drupal's security advisory policy"),
        ];
        for (release, (record, types, extra, security_text)) in releases.iter().zip(wants) {
            let version = &record.version;
            assert_eq!(release["valid"], true, "{version}: {release:#}");
            let fields = &release["fields"];
            let tar = record.assets.iter().find(|asset| asset.format == "tar.gz").unwrap();
            let zip = record.assets.iter().find(|asset| asset.format == "zip").unwrap();
            let date = record.date.to_string();
            for (name, want) in [
                ("name", format!("token {version}")),
                ("version", version.clone()),
                ("tag", record.tag.clone()),
                ("version_major", "1".to_owned()),
                ("version_minor", record.parsed.minor.unwrap().to_string()),
                ("version_patch", record.parsed.patch.unwrap().to_string()),
                ("status", "published".to_owned()),
                ("release_link", record.release_link.clone().unwrap()),
                ("download_link", tar.url.clone().unwrap()),
                ("date", date.clone()),
                ("mdhash", tar.md5.clone()),
                ("filesize", tar.size.to_string()),
                ("core_compatibility", "^10.3 || ^11".to_owned()),
            ] {
                assert_eq!(fields[name], want.as_str(), "{version} {name}: {release:#}");
            }
            assert_eq!(fields.get("version_extra").and_then(|extra| extra.as_str()), extra, "{version}");
            assert_eq!(fields["terms"], serde_json::json!({ "Release type": types }), "{version}");
            let file = |asset: &Asset| serde_json::json!({"url": asset.url, "archive_type": asset.format, "md5": asset.md5, "size": asset.size.to_string(), "filedate": date});
            assert_eq!(release["files"], serde_json::json!([file(tar), file(zip)]), "{version}");
            assert_eq!(release["security"]["text"], security_text, "{version}");
            let covered = if extra.is_none() { serde_json::json!("1") } else { serde_json::json!("") };
            assert_eq!(release["security"]["covered"], covered, "{version}");
        }

        // A site on 1.2.0 is offered the security release, not the beta.
        let status = &read["status"];
        assert_eq!(status["supported"], true, "{status:#}");
        assert_eq!(status["recommended"], "1.2.1", "{status:#}");
        assert_eq!(status["latest_version"], "1.3.0-beta1", "{status:#}");
        assert_eq!(status["security_updates"], serde_json::json!(["1.2.1"]), "{status:#}");
    }

    #[test]
    fn drupals_update_module_sees_legacy_releases_and_the_reader_refuses_what_drupal_drops() {
        let records = [
            record("token", "8.x-1.0", 1_600_000_000, Some("Bug fixes")),
            record("token", "8.x-1.1-beta1", 1_600_100_000, None),
            record("token", "8.x-1.1", 1_600_200_000, Some("Release type: Security update, Bug fixes")),
        ];
        let xml = feed(&Project::default(), &records);
        let read = read_with_php(&xml, "8.x-1.0");
        assert_eq!(read["errors"], serde_json::json!([]), "{read:#}");
        assert_eq!(read["order"], serde_json::json!(["8.x-1.1", "8.x-1.1-beta1", "8.x-1.0"]));
        assert!(read["releases"].as_array().unwrap().iter().all(|release| release["valid"] == true), "{read:#}");
        assert_eq!(read["status"]["recommended"], "8.x-1.1", "{read:#}");
        assert_eq!(read["status"]["security_updates"], serde_json::json!(["8.x-1.1"]), "{read:#}");

        // The reader is not a rubber stamp: a release without a release link is dropped.
        let broken = xml.replace("<release_link>", "<other_link>").replace("</release_link>", "</other_link>");
        let read = read_with_php(&broken, "8.x-1.0");
        let problems = &read["releases"][0]["problems"];
        assert_eq!(problems, &serde_json::json!(["release_link: missing or blank"]), "{read:#}");
        assert_eq!(read["status"]["recommended"], serde_json::Value::Null, "{read:#}");
    }

    #[test]
    fn a_drupal_7_feed_carries_the_majors_drupal_7_chooses_its_target_from() {
        let records = [
            record("token", "7.x-1.0", 1_500_000_000, None),
            record("token", "7.x-1.1-beta1", 1_500_100_000, None),
            record("token", "7.x-1.1", 1_500_200_000, Some("Fixes SA-CONTRIB-2026-002")),
        ];
        let xml = feed(&Project::default(), &records);
        let read = read_with_php(&xml, "7.x-1.0");
        assert_eq!(read["errors"], serde_json::json!([]), "{read:#}");
        for (name, want) in [
            ("api_version", "7.x"),
            ("recommended_major", "1"),
            ("supported_majors", "1"),
            ("default_major", "1"),
            ("supported_branches", "7.x-1."),
        ] {
            assert_eq!(read["project"][name], want, "{name}: {read:#}");
        }
        assert_eq!(read["order"], serde_json::json!(["7.x-1.1", "7.x-1.1-beta1", "7.x-1.0"]));
        let beta = &read["releases"][1];
        assert_eq!(beta["valid"], true, "{read:#}");
        assert_eq!(
            (&beta["fields"]["version_major"], &beta["fields"]["version_patch"], &beta["fields"]["version_extra"]),
            (&serde_json::json!("1"), &serde_json::json!("1"), &serde_json::json!("beta1"))
        );
        assert_eq!(read["status"]["recommended"], "7.x-1.1", "{read:#}");
        assert_eq!(read["status"]["security_updates"], serde_json::json!(["7.x-1.1"]), "{read:#}");
    }
}
