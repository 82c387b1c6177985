//! Where a build's files go: a local directory or an S3 bucket (through the SDK's
//! [`object_storage`]), behind the few operations the build lifecycle needs: read and
//! write one file (logs, `project.json`), stage a site's pages, publish the staged site
//! in place of the commit's previous one, and clean up after a build that ended early.
//! Keys are `/`-separated paths under the output's root (`u/<owner>/<repo>/...`).

use gitauto_plugin::Error;
use gitauto_plugin::object_storage::{Addressing, Bucket, StorageError, content_type};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why an output operation failed: the bucket's typed error (so that a busy or
/// unreachable server stays worth a retry), or a local file system error.
#[derive(Debug)]
pub enum OutputError {
    /// The object storage answered with an error, or could not be reached.
    Storage(StorageError),
    /// A file or directory on the host could not be read or written.
    Local(String),
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(err) => err.fmt(f),
            Self::Local(message) => f.write_str(message),
        }
    }
}

impl From<StorageError> for OutputError {
    fn from(err: StorageError) -> Self {
        Self::Storage(err)
    }
}

impl OutputError {
    /// The step's error, `what` went wrong first: transient when the SDK classifies the
    /// storage error so (429, 5xx, S3's `RequestTimeout`, timeouts, connection failures).
    pub fn context(self, what: &str) -> Error {
        let err = match self {
            Self::Storage(err) => Error::from(err),
            Self::Local(message) => Error::failed(message),
        };
        match err {
            Error::Failed(message) => Error::Failed(format!("{what}: {message}")),
            Error::Transient(message) => Error::Transient(format!("{what}: {message}")),
            Error::InvalidSettings(message) => Error::InvalidSettings(format!("{what}: {message}")),
        }
    }
}

/// The cache header of the files that change during a build (logs, `project.json`).
const NO_CACHE: &str = "no-cache";

/// A build's output.
pub enum Output {
    /// A directory on the host.
    Local {
        /// The directory (`output` or `output_dir`).
        root: PathBuf,
    },
    /// A bucket (and prefix) reached through the http capability; the host signs.
    S3 {
        /// The bucket and prefix.
        bucket: Bucket,
        /// The `cache-control` header of the pages.
        cache_control: Option<String>,
    },
}

/// A site being built: pages go to a staging location until [`Output::publish`].
pub struct Stage<'a> {
    /// Where the site goes.
    output: &'a Output,
    /// The staging directory's or prefix's key.
    key: String,
    /// What was staged, so that a path is staged once.
    written: HashSet<String>,
}

impl Output {
    /// The output the settings name: `output` (a directory or `s3://bucket/prefix`, with
    /// `endpoint` and `addressing`), or `output_dir`, its old name for a directory.
    pub fn new(
        output: Option<&str>,
        output_dir: Option<&str>,
        endpoint: Option<&str>,
        addressing: Option<&str>,
        cache_control: Option<&str>,
    ) -> Result<Self, Error> {
        let location = match (output, output_dir) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_settings("give `output` or its old name `output_dir`, not both"));
            }
            (None, None) => {
                return Err(Error::invalid_settings("`output` is required: a directory, or s3://bucket/prefix"));
            }
            (None, Some(dir)) if dir.starts_with("s3://") => {
                return Err(Error::invalid_settings("`output_dir` is a directory: write `output = \"s3://...\"`"));
            }
            (Some(location), None) | (None, Some(location)) => location,
        };
        if !location.starts_with("s3://") {
            if let Some(key) = [("endpoint", endpoint), ("addressing", addressing)].iter().find(|(_, v)| v.is_some()) {
                return Err(Error::invalid_settings(format!(
                    "`{}` applies to an s3:// output, and `{location}` is a directory",
                    key.0
                )));
            }
            return Ok(Self::Local { root: PathBuf::from(location) });
        }
        let endpoint = endpoint.ok_or_else(|| {
            Error::invalid_settings(format!(
                "`endpoint` is required with the output `{location}` (e.g. https://s3.us-east-1.amazonaws.com)"
            ))
        })?;
        let addressing = Addressing::parse(addressing.unwrap_or("path"))
            .map_err(|why| Error::invalid_settings(format!("`addressing`: {why}")))?;
        let bucket = Bucket::new(location, endpoint, addressing)
            .map_err(|err| Error::invalid_settings(format!("`output`: {err}")))?;
        Ok(Self::S3 { bucket, cache_control: cache_control.map(str::to_owned) })
    }

    /// Where `key` is, for people: a path, or `s3://bucket/key`.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Self::Local { root } => root.join(key).display().to_string(),
            Self::S3 { bucket, .. } => bucket.location(key),
        }
    }

    /// The bucket's name (tx-manager's `cdn_bucket`), for an S3 output.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Self::Local { .. } => None,
            Self::S3 { bucket, .. } => Some(bucket.name()),
        }
    }

    /// `key`'s key in the bucket (tx-manager's `cdn_file`), for an S3 output.
    pub fn bucket_key(&self, key: &str) -> Option<String> {
        match self {
            Self::Local { .. } => None,
            Self::S3 { bucket, .. } => Some(bucket.full_key(key)),
        }
    }

    /// The file at `key`, if there is one.
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>, OutputError> {
        match self {
            Self::Local { root } => match std::fs::read(root.join(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(OutputError::Local(format!("reading {}: {err}", root.join(key).display()))),
            },
            Self::S3 { bucket, .. } => Ok(bucket.get(key)?),
        }
    }

    /// Writes `bytes` at `key` so that a reader sees the old file or the new one, never
    /// a part (locally: a temporary file renamed over it; S3 replaces objects whole).
    pub fn write(&self, key: &str, bytes: Vec<u8>) -> Result<(), OutputError> {
        match self {
            Self::Local { root } => {
                let path = root.join(key);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let temporary = path.with_file_name(format!(".{name}.writing"));
                crate::fs_write::write(&temporary, &bytes)
                    .and_then(|()| std::fs::rename(&temporary, &path))
                    .map_err(|err| OutputError::Local(format!("writing {}: {err}", path.display())))
            }
            Self::S3 { bucket, .. } => Ok(bucket.put(key, bytes, content_type(key), Some(NO_CACHE))?),
        }
    }

    /// A fresh staging location for build `job`'s site at `key`: its own, so that
    /// overlapping builds of one commit do not share one (what an earlier attempt of
    /// the same build left there is removed first).
    pub fn stage(&self, key: &str, job: &str) -> Result<Stage<'_>, OutputError> {
        let stage = Stage { output: self, key: staging_key(key, job), written: HashSet::new() };
        self.clear(&stage.key)?;
        Ok(stage)
    }

    /// Puts right what an interrupted build of the site at `key` left: locally, a swap
    /// cut short between its renames (the previous site moved aside, none in place) is
    /// undone; on S3, a staged site marked complete whose copy into place was cut short
    /// is copied again, and its staging prefix removed. Returns what it did, for the log.
    pub fn repair(&self, key: &str) -> Result<Vec<String>, OutputError> {
        let mut done = Vec::new();
        match self {
            Self::Local { root } => {
                let (live, old) = (root.join(key), root.join(old_key(key)));
                if old.is_dir() && !live.exists() {
                    std::fs::rename(&old, &live)
                        .map_err(|err| OutputError::Local(format!("restoring {}: {err}", live.display())))?;
                    done.push(format!("Restored the previous site from {}", old.display()));
                }
            }
            Self::S3 { bucket, .. } => {
                let mut marked: Vec<String> = bucket
                    .list(&sibling(key, ""))?
                    .into_iter()
                    .filter_map(|object| object.key.strip_suffix(&format!(".staging/{COMPLETE}")).map(str::to_owned))
                    .collect();
                marked.sort();
                for staging in marked {
                    let staging = format!("{staging}.staging");
                    finish(bucket, &staging, key)?;
                    done.push(format!("Finished publishing the complete staged site {}", bucket.location(&staging)));
                }
            }
        }
        Ok(done)
    }

    /// Puts the staged site in place of the site at `key`, keeping `log` (the running
    /// build's log, `build_log.json`) readable throughout, and removes what the previous
    /// site had that this one has not. Locally the staged directory is renamed into
    /// place (the old one moved aside, then removed); on S3 each staged object is copied
    /// into place, then the stale objects and the staged ones are deleted.
    pub fn publish(&self, stage: Stage<'_>, key: &str, log: &[u8]) -> Result<(), OutputError> {
        match self {
            Self::Local { root } => {
                let (live, staged, old) = (root.join(key), root.join(&stage.key), root.join(old_key(key)));
                crate::fs_write::write(&staged.join(LOG), log)
                    .map_err(|err| OutputError::Local(format!("writing {}: {err}", staged.display())))?;
                remove_dir(&old)?;
                match std::fs::rename(&live, &old) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(OutputError::Local(format!("moving {} aside: {err}", live.display()))),
                }
                if let Err(err) = std::fs::rename(&staged, &live) {
                    // Put the previous site back: a failed build leaves it as it was.
                    let _ = std::fs::rename(&old, &live);
                    return Err(OutputError::Local(format!(
                        "moving {} to {}: {err}",
                        staged.display(),
                        live.display()
                    )));
                }
                remove_dir(&old)
            }
            Self::S3 { bucket, .. } => {
                // The marker says the staged site is whole: a copy cut short is finished
                // by `repair` (the handler's, or the next build's) from it.
                let marker = format!("{}/{COMPLETE}", stage.key);
                bucket.put(&marker, b"staged site complete\n".to_vec(), "text/plain; charset=utf-8", Some(NO_CACHE))?;
                finish(bucket, &stage.key, key)
            }
        }
    }

    /// Removes a staged site that will not be published.
    pub fn discard(&self, stage: Stage<'_>) -> Result<(), OutputError> {
        self.clear(&stage.key)
    }

    /// After build `job` of the site at `key` ended abnormally: [`Output::repair`]s
    /// what it left (a local swap cut short is undone, a complete staged S3 site is
    /// copied into place), removes a previous site left aside, and removes its staged
    /// pages. Returns what it did, for the log.
    pub fn recover(&self, key: &str, job: &str) -> Result<Vec<String>, OutputError> {
        let done = self.repair(key)?;
        if let Self::Local { root } = self {
            let (live, old) = (root.join(key), root.join(old_key(key)));
            if old.is_dir() && live.exists() {
                remove_dir(&old)?;
            }
        }
        self.clear(&staging_key(key, job))?;
        Ok(done)
    }

    /// Removes everything under `key` (a directory, or a prefix).
    fn clear(&self, key: &str) -> Result<(), OutputError> {
        match self {
            Self::Local { root } => remove_dir(&root.join(key)),
            Self::S3 { bucket, .. } => {
                for object in bucket.list(&format!("{key}/"))? {
                    bucket.delete(&object.key)?;
                }
                Ok(())
            }
        }
    }
}

impl Stage<'_> {
    /// Stages the file `path` (relative to the site): a page, a copied file, the index.
    /// The first file staged at a path is kept (a later part of a flat multi-part build
    /// may name it again): `false` says a later one was not written.
    pub fn write(&mut self, path: &str, bytes: &[u8]) -> Result<bool, OutputError> {
        if self.written.contains(path) {
            return Ok(false);
        }
        let key = format!("{}/{path}", self.key);
        match self.output {
            Output::Local { root } => crate::fs_write::write(&root.join(&key), bytes)
                .map_err(|err| OutputError::Local(format!("writing {}: {err}", root.join(&key).display())))?,
            Output::S3 { bucket, cache_control } => {
                bucket.put(&key, bytes.to_vec(), content_type(path), cache_control.as_deref())?
            }
        }
        self.written.insert(path.to_owned());
        Ok(true)
    }
}

/// A build log's file name.
pub const LOG: &str = "build_log.json";

/// The object marking an S3 staging prefix as a whole site, written before the copy.
const COMPLETE: &str = ".complete";

/// Copies the staged site at `staging` into place at `key`, deletes what the previous
/// site had that it has not, then the marker, then the staged objects. Cut short, it
/// can run again: until the marker is gone the staged site is whole.
fn finish(bucket: &Bucket, staging: &str, key: &str) -> Result<(), OutputError> {
    let staged: HashSet<String> = bucket
        .list(&format!("{staging}/"))?
        .into_iter()
        .filter_map(|object| object.key.strip_prefix(&format!("{staging}/")).map(str::to_owned))
        .filter(|path| path != COMPLETE)
        .collect();
    let mut paths: Vec<&String> = staged.iter().collect();
    paths.sort();
    for path in paths {
        bucket.copy(&format!("{staging}/{path}"), &format!("{key}/{path}"))?;
    }
    for object in bucket.list(&format!("{key}/"))? {
        let path = object.key.strip_prefix(&format!("{key}/")).unwrap_or(&object.key).to_owned();
        if path != LOG && !staged.contains(&path) {
            bucket.delete(&object.key)?;
        }
    }
    // The marker first: staged objects left without it are only removed, never copied.
    bucket.delete(&format!("{staging}/{COMPLETE}"))?;
    for path in &staged {
        bucket.delete(&format!("{staging}/{path}"))?;
    }
    Ok(())
}

/// `u/acme/site/.0123456789.<job16>.staging` for build `job` of
/// `u/acme/site/0123456789`: next to the site, outside its prefix, one per build.
fn staging_key(key: &str, job: &str) -> String {
    let job: String = job.chars().take(16).collect();
    sibling(key, &format!("{job}.staging"))
}

/// Where a local swap moves the previous site while the new one takes its place.
fn old_key(key: &str) -> String {
    sibling(key, "old")
}

fn sibling(key: &str, what: &str) -> String {
    match key.rsplit_once('/') {
        Some((parent, name)) => format!("{parent}/.{name}.{what}"),
        None => format!(".{key}.{what}"),
    }
}

fn remove_dir(path: &Path) -> Result<(), OutputError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(OutputError::Local(format!("removing {}: {err}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<Output, Error>) -> String {
        match result {
            Err(Error::InvalidSettings(message)) => message,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn settings_choose_the_output() {
        let local = Output::new(None, Some("/srv/www"), None, None, None).unwrap();
        assert_eq!(local.describe("u/a/b"), "/srv/www/u/a/b");
        assert_eq!(local.bucket(), None);
        let s3 = Output::new(Some("s3://cdn/site"), None, Some("http://127.0.0.1:9000"), Some("path"), None).unwrap();
        assert_eq!(s3.describe("u/a/b"), "s3://cdn/site/u/a/b");
        assert_eq!((s3.bucket(), s3.bucket_key("u/a/")), (Some("cdn"), Some("site/u/a/".to_owned())));
        let refused = [
            (Output::new(Some("/a"), Some("/b"), None, None, None), "not both"),
            (Output::new(None, None, None, None, None), "`output` is required"),
            (Output::new(None, Some("s3://cdn"), Some("https://x"), None, None), "write `output = \"s3://...\"`"),
            (Output::new(Some("s3://cdn"), None, None, None, None), "`endpoint` is required"),
            (Output::new(Some("/a"), None, Some("https://x"), None, None), "`endpoint` applies to an s3:// output"),
            (
                Output::new(Some("s3://cdn"), None, Some("https://x"), Some("dns"), None),
                "`addressing`: addressing `dns`",
            ),
            (Output::new(Some("s3://a b"), None, Some("https://x"), None, None), "`output`: `s3://a b`"),
        ];
        for (result, want) in refused {
            let message = message(result);
            assert!(message.contains(want), "{message}");
        }
    }

    #[test]
    fn staging_sits_next_to_the_site_one_per_build() {
        let job = "00112233445566778899aabbccddeeff";
        assert_eq!(staging_key("u/acme/site/0123456789", job), "u/acme/site/.0123456789.0011223344556677.staging");
        assert_eq!(old_key("u/group/sub/site/0123456789"), "u/group/sub/site/.0123456789.old");
        assert_eq!(staging_key("c", "ff"), ".c.ff.staging");
        assert_ne!(staging_key("c", "aa"), staging_key("c", "bb"));
    }
}
