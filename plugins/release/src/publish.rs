//! Where archives, records and the feed go: a granted directory, object storage. Both
//! hold the same layout under their root: `<project>/<archive>`, `<project>/<project>-<version>.json`
//! and `release-history/<project>/<api>.xml`. Building the files is the crate root's
//! business; this module only stores them and reads the records back.

use crate::record::ReleaseRecord;
use gitauto_plugin::Error;
use gitauto_plugin::object_storage::{Addressing, Bucket, StorageError, content_type};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The step's `s3 = { ... }` table: a bucket (and prefix) at an S3-compatible endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub location: String,
    /// The endpoint, e.g. `https://s3.us-east-1.amazonaws.com` (a bare host means https).
    pub endpoint: String,
    /// `path` (the default) or `virtual`.
    pub addressing: Option<String>,
}

/// The `cache-control` of files that change with every release (records, feeds).
const NO_CACHE: &str = "no-cache";

/// The granted directory the host writes the archives into, which is also where they
/// are published.
#[derive(Debug, Clone)]
pub struct Directory {
    /// The directory (`output_dir`).
    pub root: PathBuf,
}

impl Directory {
    /// The host path of `key` (a `/`-separated path under the root).
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Writes `bytes` at `key`, making missing directories, so that a reader sees the
    /// old file or the new one, never a part (a temporary file renamed over it).
    pub fn write(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.path(key);
        let failed = |err: std::io::Error| Error::failed(format!("writing {}: {err}", path.display()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let temporary = path.with_file_name(format!(".{name}.writing"));
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, &path)).map_err(|err| {
            let _ = std::fs::remove_file(&temporary);
            failed(err)
        })
    }

    /// The release records in `<project>/`; files there that are not a record are
    /// named in the second list (for the log), not read.
    pub fn records(&self, project: &str) -> Result<(Vec<ReleaseRecord>, Vec<String>), Error> {
        let dir = self.path(project);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(err) => return Err(Error::failed(format!("listing {}: {err}", dir.display()))),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| Error::failed(format!("listing {}: {err}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_record_name(&name) {
                names.push(name);
            }
        }
        names.sort();
        too_many(names.len(), &dir.display().to_string())?;
        let (mut records, mut unread) = (Vec::new(), Vec::new());
        for name in names {
            let path = dir.join(&name);
            let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
            if size > MAX_RECORD_BYTES {
                unread.push(format!("{}: {size} bytes, more than a record's {MAX_RECORD_BYTES}", path.display()));
                continue;
            }
            let bytes =
                std::fs::read(&path).map_err(|err| Error::failed(format!("reading {}: {err}", path.display())))?;
            match read_record(&bytes, project, &name) {
                Ok(record) => records.push(record),
                Err(why) => unread.push(format!("{}: {why}", path.display())),
            }
        }
        Ok((records, unread))
    }
}

/// A bucket (and prefix) the files are copied to; the host signs the requests.
#[derive(Debug, Clone)]
pub struct Storage {
    bucket: Bucket,
}

impl Storage {
    /// The storage the `s3` table names.
    pub fn new(settings: &S3Settings) -> Result<Self, Error> {
        let addressing = Addressing::parse(settings.addressing.as_deref().unwrap_or("path"))
            .map_err(|why| Error::invalid_settings(format!("`s3.addressing`: {why}")))?;
        let bucket = Bucket::new(&settings.location, &settings.endpoint, addressing)
            .map_err(|err| Error::invalid_settings(format!("`s3`: {err}")))?;
        Ok(Self { bucket })
    }

    /// Where `key` is, for people: `s3://bucket/prefix/key`.
    pub fn location(&self, key: &str) -> String {
        self.bucket.location(key)
    }

    /// The object's URL at the endpoint.
    pub fn url(&self, key: &str) -> String {
        self.bucket.url(key)
    }

    /// Stores `bytes` at `key`. Records and feeds are sent with `cache-control: no-cache`
    /// (they change with every release); archives, which a tag fixes, without.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let cache = (key.ends_with(".json") || key.ends_with(".xml")).then_some(NO_CACHE);
        self.bucket.put(key, bytes, media_type(key), cache).map_err(|err| storing(key, err))
    }

    /// Stores a Drupal feed at `key` (which may have no extension) as XML, never cached.
    pub fn put_feed(&self, key: &str, bytes: Vec<u8>) -> Result<(), Error> {
        self.bucket.put(key, bytes, "text/xml; charset=utf-8", Some(NO_CACHE)).map_err(|err| storing(key, err))
    }

    /// Stores the host file `path` at `key`.
    pub fn put_file(&self, key: &str, path: &Path) -> Result<(), Error> {
        let bytes = std::fs::read(path).map_err(|err| Error::failed(format!("reading {}: {err}", path.display())))?;
        self.put(key, bytes)
    }

    /// The release records under `<project>/`; objects there that are not a record are
    /// named in the second list (for the log).
    pub fn records(&self, project: &str) -> Result<(Vec<ReleaseRecord>, Vec<String>), Error> {
        let listed =
            self.bucket.list(&format!("{project}/")).map_err(|err| Error::from(err).context("listing records"))?;
        let (mut records, mut unread) = (Vec::new(), Vec::new());
        let named: Vec<_> = listed
            .into_iter()
            .filter(|object| object.key.strip_prefix(&format!("{project}/")).is_some_and(is_record_name))
            .collect();
        too_many(named.len(), &self.bucket.location(&format!("{project}/")))?;
        for object in named {
            let name = &object.key[project.len() + 1..];
            let location = self.bucket.location(&object.key);
            if object.size > MAX_RECORD_BYTES {
                unread.push(format!("{location}: {} bytes, more than a record's {MAX_RECORD_BYTES}", object.size));
                continue;
            }
            let Some(bytes) = self.bucket.get(&object.key).map_err(|err| storing(&object.key, err))? else {
                continue;
            };
            if bytes.len() as u64 > MAX_RECORD_BYTES {
                unread.push(format!("{location}: more than a record's {MAX_RECORD_BYTES} bytes"));
                continue;
            }
            match read_record(&bytes, project, name) {
                Ok(record) => records.push(record),
                Err(why) => unread.push(format!("{location}: {why}")),
            }
        }
        Ok((records, unread))
    }
}

/// The largest record file read back; a release's record is a few KiB.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The most records a project's feed is regenerated from.
const MAX_RECORDS: usize = 10_000;

fn too_many(count: usize, place: &str) -> Result<(), Error> {
    if count > MAX_RECORDS {
        return Err(Error::failed(format!(
            "{place} holds {count} release records, more than the {MAX_RECORDS} a feed is made from"
        )));
    }
    Ok(())
}

/// A record read back from `<project>/<file_name>`, not trusted: it must be `project`'s,
/// stored under its own file name, and its `parsed` version is derived again from its
/// `version` (so a record cannot place itself elsewhere in the feed's order).
pub fn read_record(bytes: &[u8], project: &str, file_name: &str) -> Result<ReleaseRecord, String> {
    let mut record: ReleaseRecord = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
    if record.project != project {
        return Err(format!("the record of project `{}`, not `{project}`", record.project));
    }
    if record.file_name() != file_name {
        return Err(format!("version `{}` belongs in {}, not {file_name}", record.version, record.file_name()));
    }
    record.parsed = crate::version::parse(&record.version)?;
    Ok(record)
}

/// A record's file name: `<something>.json` directly in the project's directory (not a
/// temporary file being written).
fn is_record_name(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.') && !name.contains('/')
}

/// The content type of a published file: archives as their own types, others by
/// extension.
pub fn media_type(key: &str) -> &'static str {
    if key.ends_with(".tar.gz") || key.ends_with(".tgz") {
        "application/gzip"
    } else if key.ends_with(".tar") {
        "application/x-tar"
    } else {
        content_type(key)
    }
}

fn storing(key: &str, err: StorageError) -> Error {
    Error::from(err).context(&format!("publishing `{key}`"))
}

/// Puts what was being done before an error's message, keeping its kind (a transient
/// error stays worth a retry).
pub trait Context {
    /// The error with `what: ` before its message.
    fn context(self, what: &str) -> Error;
}

impl Context for Error {
    fn context(self, what: &str) -> Error {
        match self {
            Error::Failed(message) => Error::Failed(format!("{what}: {message}")),
            Error::Transient(message) => Error::Transient(format!("{what}: {message}")),
            Error::InvalidSettings(message) => Error::InvalidSettings(format!("{what}: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_get_their_own_content_types() {
        assert_eq!(media_type("token/token-8.x-1.2.tar.gz"), "application/gzip");
        assert_eq!(media_type("token/token-8.x-1.2.zip"), "application/zip");
        assert_eq!(media_type("token/token-8.x-1.2.tar"), "application/x-tar");
        assert_eq!(media_type("release-history/token/8.x.xml"), "application/xml");
        assert_eq!(media_type("token/token-8.x-1.2.json"), "application/json");
    }

    #[test]
    fn a_directory_write_makes_its_directories_and_replaces_the_file_whole() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = Directory { root: scratch.path().to_owned() };
        dir.write("release-history/token/8.x.xml", b"a longer first version").unwrap();
        dir.write("release-history/token/8.x.xml", b"short").unwrap();
        assert_eq!(std::fs::read(scratch.path().join("release-history/token/8.x.xml")).unwrap(), b"short");
        let names: Vec<_> = std::fs::read_dir(scratch.path().join("release-history/token"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["8.x.xml"], "no temporary file is left");
        std::fs::write(scratch.path().join("blocked"), b"a file").unwrap();
        let err = dir.write("blocked/x.json", b"{}").unwrap_err();
        assert!(matches!(&err, Error::Failed(message) if message.contains("blocked/x.json")), "{err:?}");
    }

    #[test]
    fn only_json_files_of_the_project_directory_are_read_as_records() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = Directory { root: scratch.path().to_owned() };
        assert!(dir.records("token").unwrap().0.is_empty(), "no directory yet: no records");
        let record = crate::tests::record("token", "8.x-1.2");
        dir.write(&format!("token/{}", record.file_name()), &record.to_json()).unwrap();
        dir.write("token/token-8.x-1.2.tar.gz", b"not json").unwrap();
        dir.write("token/.token-8.x-1.3.json.writing", b"{").unwrap();
        dir.write("token/notes.json", b"{\"not\": \"a record\"}").unwrap();
        let (records, unread) = dir.records("token").unwrap();
        assert_eq!(records, [record]);
        assert_eq!(unread.len(), 1, "{unread:?}");
        assert!(unread[0].contains("notes.json"), "{unread:?}");
    }

    #[test]
    fn records_read_back_are_checked_and_their_version_parsed_again() {
        // Review L9: a record's `parsed` could place it anywhere in the feed.
        let scratch = tempfile::tempdir().unwrap();
        let dir = Directory { root: scratch.path().to_owned() };
        let mut lying = crate::tests::record("token", "8.x-1.2");
        lying.parsed = crate::version::parse("8.x-9.9").unwrap();
        dir.write("token/token-8.x-1.2.json", &lying.to_json()).unwrap();
        let other = crate::tests::record("other", "8.x-1.3");
        dir.write("token/token-8.x-1.3.json", &other.to_json()).unwrap();
        let misplaced = crate::tests::record("token", "8.x-1.4");
        dir.write("token/token-8.x-1.5.json", &misplaced.to_json()).unwrap();
        let mut bad_version = crate::tests::record("token", "8.x-1.6");
        bad_version.version = "latest".into();
        dir.write("token/token-latest.json", &bad_version.to_json()).unwrap();
        dir.write("token/token-8.x-1.7.json", &vec![b' '; MAX_RECORD_BYTES as usize + 1]).unwrap();
        let (records, unread) = dir.records("token").unwrap();
        assert_eq!(records, [crate::tests::record("token", "8.x-1.2")], "`parsed` derived again");
        let unread = unread.join("\n");
        for why in [
            "the record of project `other`, not `token`",
            "version `8.x-1.4` belongs in token-8.x-1.4.json, not token-8.x-1.5.json",
            "tag `latest` is not a release version",
            "more than a record's 1048576",
        ] {
            assert!(unread.contains(why), "{why}: {unread}");
        }
    }
}
