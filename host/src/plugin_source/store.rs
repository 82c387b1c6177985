//! The fetched-plugin store: content by its SHA-256 under `DATA_DIR/plugins/sha256/`
//! (components, OCI manifests, signature layers), and signatures fetched from a URL
//! under `DATA_DIR/plugins/signatures/`, by the URL's SHA-256. Written atomically (a
//! temporary file, fsync, rename, fsync of the directory); content is hashed again every
//! time it is read, so a changed file is refused, never run. Blocking: call it from a
//! blocking thread.

#![allow(clippy::disallowed_methods, reason = "called on a blocking thread: start-up, reload, `plugin pull`")]

use super::reference::Sha256;
use anyhow::Context;
use sha2::Digest as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A store rooted at `DATA_DIR/plugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    root: PathBuf,
}

/// What a stored blob's file holds when it no longer hashes to its name.
#[derive(Debug, thiserror::Error)]
#[error("{path} was changed after it was fetched: its SHA-256 is now {found}; delete it and run `gitauto plugin pull`")]
pub struct Tampered {
    /// The file.
    pub path: PathBuf,
    /// Its content's SHA-256, hex.
    pub found: String,
}

impl Store {
    /// The store under `root` (`DATA_DIR/plugins`).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Where the blob with this digest is kept.
    pub fn blob_path(&self, digest: &Sha256) -> PathBuf {
        self.root.join("sha256").join(hex::encode(digest))
    }

    /// Where the signature fetched from `url` is kept.
    pub fn signature_path(&self, url: &str) -> PathBuf {
        self.root.join("signatures").join(format!("{}.minisig", hex::encode(sha2::Sha256::digest(url))))
    }

    /// The blob with this digest, checked against it; `None` when it is not stored.
    pub fn blob(&self, digest: &Sha256) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        let Some(bytes) = read_if_there(&path)? else { return Ok(None) };
        let found: Sha256 = sha2::Sha256::digest(&bytes).into();
        if &found != digest {
            return Err(Tampered { path, found: hex::encode(found) }.into());
        }
        Ok(Some(bytes))
    }

    /// Keeps `bytes` under their digest (the caller checked them against what was pinned).
    pub fn put_blob(&self, bytes: &[u8]) -> anyhow::Result<Sha256> {
        let digest: Sha256 = sha2::Sha256::digest(bytes).into();
        write_atomically(&self.blob_path(&digest), bytes)?;
        Ok(digest)
    }

    /// The signature fetched from `url`, if it was.
    pub fn signature(&self, url: &str) -> anyhow::Result<Option<Vec<u8>>> {
        read_if_there(&self.signature_path(url))
    }

    /// Keeps the signature fetched from `url`.
    pub fn put_signature(&self, url: &str, bytes: &[u8]) -> anyhow::Result<()> {
        write_atomically(&self.signature_path(url), bytes)
    }
}

fn read_if_there(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::Error::from(err).context(format!("reading {}", path.display()))),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole new
/// one: never a prefix that a later start would find under a valid name.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a store path has a parent")?;
    crate::runtime::create_private_dir(dir)?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|err| anyhow::anyhow!("no randomness for a temporary name: {err}"))?;
    let temp = dir.join(format!(".tmp-{}", hex::encode(random)));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_kept_by_digest_and_refused_once_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("plugins"));
        let digest = store.put_blob(b"component").unwrap();
        assert_eq!(store.blob(&digest).unwrap().as_deref(), Some(&b"component"[..]));
        assert!(store.blob(&[0; 32]).unwrap().is_none());
        std::fs::write(store.blob_path(&digest), b"c0mponent").unwrap();
        let err = store.blob(&digest).unwrap_err();
        assert!(err.downcast_ref::<Tampered>().is_some(), "{err:#}");
        assert!(err.to_string().contains("was changed after it was fetched"), "{err:#}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("plugins/sha256")).unwrap().collect();
        assert_eq!(names.len(), 1);

        store.put_signature("https://x.example/p.wasm.minisig", b"sig").unwrap();
        assert_eq!(store.signature("https://x.example/p.wasm.minisig").unwrap().as_deref(), Some(&b"sig"[..]));
        assert!(store.signature("https://x.example/other.minisig").unwrap().is_none());
    }
}
