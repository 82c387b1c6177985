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
            remove_tree(&path)?;
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
        if let Err(err) = remove_tree(&self.root)
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
    match remove_tree(&root) {
        Ok(()) => tracing::info!(dir = %root.display(), "removed workspaces left by the previous run"),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(dir = %root.display(), "removing stale workspaces: {err}"),
    }
}

/// Removes `path` and everything under it. A step may have taken its own rights on a
/// directory it could write (`fchmod(fd, 0)` on a descriptor it opened, or a mode it
/// set before): such a tree is given back to its owner first, then removed.
#[allow(clippy::disallowed_methods, reason = "called on blocking threads")]
fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            make_removable(path, 0);
            std::fs::remove_dir_all(path)
        }
        other => other,
    }
}

/// Gives every directory under `dir` (not through links) the mode `0700`. Each is
/// opened with `O_PATH | O_NOFOLLOW | O_DIRECTORY` and changed through its descriptor's
/// `/proc/self/fd` entry, so a directory swapped for a link changes nothing elsewhere.
#[allow(clippy::disallowed_methods, reason = "called on blocking threads")]
fn make_removable(dir: &Path, depth: usize) {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsRawFd;
    if depth > crate::gitwalk::MAX_DEPTH * 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let path = entry.path();
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if let Ok(fd) = rustix::fs::open(&path, flags, Mode::empty()) {
            let _ = rustix::fs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), Mode::from_raw_mode(0o700));
        }
        make_removable(&path, depth + 1);
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

    /// Security review: a step that took the rights on its checkout (`chmod 000` through
    /// a descriptor) does not keep it from being removed; a link in it leads nowhere.
    #[test]
    fn directories_a_step_locked_are_unlocked_but_links_are_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        let workspace = Workspace::create(data.path(), 9, 1).unwrap();
        let checkout = workspace.checkout();
        std::fs::create_dir_all(checkout.join("a/b")).unwrap();
        let outside = data.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::os::unix::fs::symlink(&outside, checkout.join("a/link")).unwrap();
        for dir in [checkout.join("a/b"), checkout.join("a"), checkout.clone()] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
        make_removable(&workspace.root, 0);
        let mode = |path: &Path| std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777;
        for dir in [checkout.clone(), checkout.join("a"), checkout.join("a/b")] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert_eq!(mode(&outside), 0o500, "the link's target is unchanged");
        drop(workspace);
        assert!(!checkout.exists());
    }
}
