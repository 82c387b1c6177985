//! One daemon per data directory: the queue's SQLite file, the plugin cache and the job
//! workspaces belong to one process at a time (a second one would re-queue the first's
//! running jobs and clear its workspaces). The lock is an advisory lock on
//! `<data_dir>/gitauto.lock`, held while the daemon lives and released by the kernel
//! when it exits, however it exits; the file names the holder's process id.

use anyhow::Context;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock on `data_dir` (created if missing), or says which process holds it.
    #[allow(clippy::disallowed_methods, reason = "start-up: the lock is taken before the daemon serves anything")]
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let path = data_dir.join("gitauto.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("the data directory {} is not writable", data_dir.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { String::new() } else { format!(" (process {holder})") };
                anyhow::bail!(
                    "another gitauto is serving from the data directory {}{holder}; stop it, or give this one \
                     its own `data_dir`",
                    data_dir.display()
                );
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another gitauto is serving"), "{err}");
        assert!(err.contains(&format!("(process {})", std::process::id())), "{err}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free once the first is gone");
    }
}
