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
