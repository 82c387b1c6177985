//! The release record: everything known about one release, written as JSON next to its
//! archives and returned as the step's output. Every other module works from it.

use serde::{Deserialize, Serialize};

/// One release, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The project's short name, e.g. `token` (Drupal's `short_name`).
    pub project: String,
    /// The version, e.g. `8.x-1.2` or `1.3.0-beta1` (the tag without a leading `v`).
    pub version: String,
    /// The tag's name, e.g. `v1.3.0-beta1`.
    pub tag: String,
    /// The commit the tag points to.
    pub commit: String,
    /// When the tag was made, seconds since the Unix epoch.
    pub date: i64,
    /// The version, parsed.
    pub parsed: crate::version::Version,
    /// The annotated tag's message, when there is one.
    pub message: Option<String>,
    /// The release notes: the step's `notes`, else the annotated tag's message.
    #[serde(default)]
    pub notes: Option<String>,
    /// Release types (Drupal's `Release type` terms): `Security update`, `Bug fixes`,
    /// `New features`.
    pub terms: Vec<String>,
    /// The archives.
    pub assets: Vec<Asset>,
    /// The web page of the release (the forge release, or a configured link).
    pub release_link: Option<String>,
}

/// One archive of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// File name, e.g. `token-8.x-1.2.tar.gz`.
    pub name: String,
    /// `tar.gz` or `zip`.
    pub format: String,
    /// Host path of the file the host wrote (inside a granted directory).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// SHA-512, lowercase hex.
    pub sha512: String,
    /// MD5, lowercase hex (Drupal's `mdhash`).
    pub md5: String,
    /// Where it can be downloaded, once published.
    pub url: Option<String>,
}

impl ReleaseRecord {
    /// The record's file name, `<project>-<version>.json`, in the project's directory.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.project, self.version)
    }

    /// The record as the JSON file holds it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a release record is plain data");
        bytes.push(b'\n');
        bytes
    }
}

/// The releases of `current.project` the feed lists: those `found` at the publishing
/// destinations (records of other projects, and earlier records of `current`'s version,
/// left out) and `current`, one per version, ordered by version text (the feed orders
/// them as Drupal does).
pub fn merge(found: impl IntoIterator<Item = ReleaseRecord>, current: &ReleaseRecord) -> Vec<ReleaseRecord> {
    let mut by_version = std::collections::BTreeMap::new();
    for record in found.into_iter().filter(|record| record.project == current.project) {
        by_version.entry(record.version.clone()).or_insert(record);
    }
    by_version.insert(current.version.clone(), current.clone());
    by_version.into_values().collect()
}
