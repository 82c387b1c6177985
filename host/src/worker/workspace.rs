//! Each job attempt's directory: its scratch directory, which its steps share (plugins
//! see it as `/tmp`, so temporary files just work in every language), and beside it the
//! job's checkout, which only the steps that ask for it see. No other job can name it,
//! and it is removed when the attempt ends. What a crash leaves behind goes at the next
//! start.

use std::io;
use std::path::{Path, PathBuf};

/// The directory under the data directory that holds every workspace.
const ROOT: &str = "work";

/// The scratch directory's name in the attempt's directory.
const SCRATCH: &str = "tmp";
/// The checkout's name in the attempt's directory.
const CHECKOUT: &str = "checkout";

/// One attempt's directory, removed on drop (the worker drops it on a blocking thread).
#[derive(Debug)]
pub struct Workspace {
    /// The attempt's directory, which no plugin is given: what it holds cannot be
    /// swapped by one.
    root: PathBuf,
    scratch: PathBuf,
}

impl Workspace {
    /// Creates an empty workspace for `job`'s `attempt`, readable by this user only.
    #[allow(clippy::disallowed_methods, reason = "the worker calls it inside spawn_blocking")]
    pub fn create(data_dir: &Path, job: i64, attempt: i64) -> io::Result<Self> {
        let path = data_dir.join(ROOT).join(format!("job-{job}-{attempt}"));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::DirBuilder::new().recursive(true).create(&path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        // Canonical, so the checkout's path in templates is the one its grant is pinned at.
        let path = std::fs::canonicalize(&path)?;
        let scratch = path.join(SCRATCH);
        std::fs::create_dir(&scratch)?;
        Ok(Self { root: path, scratch })
    }

    /// The scratch directory on the host, `/tmp` to every step.
    pub fn path(&self) -> &Path {
        &self.scratch
    }

    /// Where the job's checkout is on the host (made when a step first asks for it).
    pub fn checkout(&self) -> PathBuf {
        self.root.join(CHECKOUT)
    }
}

impl Drop for Workspace {
    #[allow(clippy::disallowed_methods, reason = "the worker drops it inside spawn_blocking")]
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.root)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(workspace = %self.root.display(), "removing a job's workspace: {err}");
        }
    }
}

/// Removes every workspace left by a previous run of the daemon (none of its jobs is
/// running any more: they are re-queued and get fresh ones).
#[allow(clippy::disallowed_methods, reason = "start-up, before any worker runs")]
pub fn clear_stale(data_dir: &Path) {
    let root = data_dir.join(ROOT);
    match std::fs::remove_dir_all(&root) {
        Ok(()) => tracing::info!(dir = %root.display(), "removed workspaces left by the previous run"),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(dir = %root.display(), "removing stale workspaces: {err}"),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_private_and_removed_with_its_attempt() {
        let data = tempfile::tempdir().unwrap();
        let workspace = Workspace::create(data.path(), 7, 2).unwrap();
        let path = workspace.root.clone();
        assert!(path.ends_with("work/job-7-2"));
        assert!(workspace.path().ends_with("work/job-7-2/tmp"));
        assert!(workspace.checkout().ends_with("work/job-7-2/checkout"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(workspace.path().join("x"), "x").unwrap();
        std::fs::create_dir(workspace.checkout()).unwrap();
        std::fs::write(workspace.checkout().join("y"), "y").unwrap();
        drop(workspace);
        assert!(!path.exists());

        let left = Workspace::create(data.path(), 8, 1).unwrap();
        std::mem::forget(left);
        clear_stale(data.path());
        assert!(!data.path().join("work").exists());
    }
}
