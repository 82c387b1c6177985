//! `git`: repositories inside the granted directories, through libgit2 in the host (no
//! hooks, no filter programs, no `git` binary). Every path is checked by the grant, and
//! so is every remote a fetch or clone would reach; see [`check_remote`].

use crate::capability::StepContext;
use crate::grant::{Access, Denied, Grant};
use crate::runtime::StepState;
use crate::runtime::bindings::gitauto::plugin::git::{self as wit, ChangeKind, ChangedPath, GitError, TreeEntry};
use git2::{AutotagOption, ErrorCode, FetchOptions, FetchPrune, RemoteCallbacks, Repository, ResetType, StatusOptions};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use wasmtime::component::Resource;

/// A repository the plugin opened: the host-side value behind the WIT resource.
pub struct OpenRepository {
    repo: Repository,
    /// Canonical working directory (or git directory, when bare).
    path: PathBuf,
}

type GitResult<T> = wasmtime::Result<Result<T, GitError>>;

impl From<Denied> for GitError {
    fn from(denied: Denied) -> Self {
        GitError::Denied(denied.0)
    }
}

/// Maps a libgit2 error to the WIT error, keeping libgit2's message.
fn failed(what: &str, err: git2::Error) -> GitError {
    let message = format!("{what}: {}", err.message());
    match err.code() {
        ErrorCode::NotFound | ErrorCode::UnbornBranch => GitError::NotFound(message),
        ErrorCode::InvalidSpec | ErrorCode::Ambiguous => GitError::Invalid(message),
        _ => GitError::Failed(message),
    }
}

/// Sets libgit2's network timeouts once per process, so that a silent server cannot hold
/// a step past its deadline (the transfer-progress callback only runs while data flows).
fn set_network_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: these set plain integers in libgit2's global options; `Once` makes this
        // the only writer, before this process's first network operation.
        let result = unsafe {
            git2::opts::set_server_connect_timeout_in_milliseconds(30_000)
                .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(60_000))
        };
        if let Err(err) = result {
            tracing::warn!("could not set libgit2 network timeouts: {err}");
        }
    });
}

/// A remote the plugin wants to reach, checked against the grant.
///
/// Network URLs need their host in `hosts`; local URLs must lie inside the granted
/// directories. Fetching a remote already configured in a checkout is allowed without
/// that check when the plugin cannot write into the checkout, because then the plugin
/// cannot have rewritten the remote: it is as the administrator left it.
pub fn check_remote(grant: &Grant, url: &str) -> Result<(), Denied> {
    if let Some(path) = local_path(url) {
        return grant.check_path(&path.to_string_lossy(), Access::Git).map(drop);
    }
    let (host, port) =
        network_host(url).ok_or_else(|| Denied(format!("`{url}` is not a git URL gitauto understands")))?;
    grant.check_host(&host, port).map(drop)
}

/// The filesystem path of a local git URL (`/path`, `file:///path`).
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    let path = Path::new(url);
    (path.is_absolute() || url.starts_with('.')).then(|| path.to_path_buf())
}

/// Host and port of a network git URL (`https://`, `ssh://`, `git://`, `user@host:path`).
fn network_host(url: &str) -> Option<(String, u16)> {
    if let Ok(parsed) = url::Url::parse(url)
        && parsed.has_host()
    {
        let default = match parsed.scheme() {
            "https" => 443,
            "http" => 80,
            "ssh" | "git+ssh" | "ssh+git" => 22,
            "git" => 9418,
            _ => return None,
        };
        return Some((parsed.host_str()?.to_owned(), parsed.port().unwrap_or(default)));
    }
    // scp-like syntax: [user@]host:path
    let (authority, _) = url.split_once(':')?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty() && !host.contains('/')).then(|| (host.to_owned(), 22))
}

/// Callbacks for network operations: credentials from the daemon user's ssh agent, ssh
/// keys and git credential helpers, and abort once the step's deadline passes.
fn callbacks(ctx: &StepContext) -> RemoteCallbacks<'static> {
    let deadline = ctx.deadline;
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |url, username, allowed| {
        attempts += 1;
        if attempts > 4 {
            return Err(git2::Error::from_str(
                "authentication failed (tried the ssh agent, ssh keys and credential helpers)",
            ));
        }
        let user = username.unwrap_or("git");
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            if attempts == 1
                && let Ok(cred) = git2::Cred::ssh_key_from_agent(user)
            {
                return Ok(cred);
            }
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            for key in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let private = home.join(".ssh").join(key);
                if private.is_file() {
                    return git2::Cred::ssh_key(user, None, &private, None);
                }
            }
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            let config = git2::Config::open_default()?;
            return git2::Cred::credential_helper(&config, url, username);
        }
        git2::Cred::default()
    });
    callbacks.transfer_progress(move |_| std::time::Instant::now() < deadline);
    callbacks.sideband_progress(move |_| std::time::Instant::now() < deadline);
    callbacks
}

impl StepState {
    fn repository(&self, handle: &Resource<OpenRepository>) -> wasmtime::Result<&OpenRepository> {
        Ok(self.table.get(handle)?)
    }

    fn open_checked(&self, path: &str) -> Result<OpenRepository, GitError> {
        let grant = &self.ctx.grant;
        let canonical = grant.check_path(path, Access::Git)?;
        if !canonical.exists() {
            return Err(GitError::NotFound(format!("{path} does not exist")));
        }
        let repo = Repository::open(&canonical).map_err(|err| match err.code() {
            ErrorCode::NotFound => GitError::NotFound(format!("no git repository at {path}")),
            _ => failed(&format!("opening {path}"), err),
        })?;
        // A `.git` file or `core.worktree` may point elsewhere: both ends must be granted.
        grant.check_path(&repo.path().to_string_lossy(), Access::Git)?;
        if let Some(workdir) = repo.workdir() {
            grant.check_path(&workdir.to_string_lossy(), Access::Git)?;
        }
        for removed in remove_stale_locks(repo.path()) {
            let note =
                format!("removed {}: a lock left by a process that stopped before gitauto started", removed.display());
            self.ctx.log.line(crate::capability::log::Level::Warn, &note);
        }
        Ok(OpenRepository { repo, path: canonical })
    }
}

/// When this process started (see [`note_process_start`]).
static PROCESS_START: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Records the process's start, before any job runs: lock files older than it were left
/// by a process that is gone (a daemon killed mid-operation).
pub fn note_process_start() {
    PROCESS_START.get_or_init(std::time::SystemTime::now);
}

/// Removes git lock files in `git_dir` that are older than this process. Git never
/// deletes the lock of a process that was killed, and every later operation on the
/// repository then fails; locks this process made are never touched.
///
/// Each repository is looked at once per process: after that, every lock in it is this
/// process's own.
fn remove_stale_locks(git_dir: &Path) -> Vec<PathBuf> {
    static CHECKED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let Some(started) = PROCESS_START.get() else { return Vec::new() };
    let first_look = CHECKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(git_dir.to_path_buf());
    if !first_look {
        return Vec::new();
    }
    let mut candidates: Vec<PathBuf> =
        ["index.lock", "HEAD.lock", "ORIG_HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock"]
            .iter()
            .map(|name| git_dir.join(name))
            .collect();
    // Ref locks, a bounded walk of refs/.
    let mut dirs = vec![git_dir.join("refs")];
    let mut seen = 0;
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(path),
                Ok(kind) if kind.is_file() && path.extension().is_some_and(|e| e == "lock") => candidates.push(path),
                _ => {}
            }
        }
    }
    candidates
        .into_iter()
        .filter(|path| {
            let old =
                std::fs::symlink_metadata(path).and_then(|m| m.modified()).is_ok_and(|modified| modified < *started);
            old && std::fs::remove_file(path).is_ok()
        })
        .collect()
}

impl OpenRepository {
    fn commit(&self, revision: &str) -> Result<git2::Commit<'_>, GitError> {
        let object =
            self.repo.revparse_single(revision).map_err(|err| failed(&format!("resolving `{revision}`"), err))?;
        object.peel_to_commit().map_err(|err| failed(&format!("`{revision}` is not a commit"), err))
    }

    fn workdir(&self) -> Result<&Path, GitError> {
        self.repo.workdir().ok_or_else(|| {
            GitError::Invalid(format!("{} is a bare repository without a working tree", self.path.display()))
        })
    }
}

impl wit::Host for StepState {}

impl wit::HostRepository for StepState {
    fn open(&mut self, path: String) -> GitResult<Resource<OpenRepository>> {
        Ok(match self.open_checked(&path) {
            Ok(repo) => Ok(self.table.push(repo)?),
            Err(err) => Err(err),
        })
    }

    fn clone(&mut self, url: String, path: String, branch: Option<String>) -> GitResult<Resource<OpenRepository>> {
        let result = (|| {
            let grant = &self.ctx.grant;
            check_remote(grant, &url)?;
            let target = grant.check_path(&path, Access::Git)?;
            if target.exists() && std::fs::read_dir(&target).map(|mut d| d.next().is_some()).unwrap_or(true) {
                return Err(GitError::Invalid(format!("{path} exists and is not an empty directory")));
            }
            set_network_timeouts();
            let mut fetch = FetchOptions::new();
            fetch.remote_callbacks(callbacks(&self.ctx));
            let mut builder = git2::build::RepoBuilder::new();
            builder.fetch_options(fetch);
            if let Some(branch) = &branch {
                builder.branch(branch);
            }
            let repo = builder.clone(&url, &target).map_err(|err| failed(&format!("cloning {url}"), err))?;
            Ok(OpenRepository { repo, path: target })
        })();
        Ok(match result {
            Ok(repo) => Ok(self.table.push(repo)?),
            Err(err) => Err(err),
        })
    }

    fn path(&mut self, this: Resource<OpenRepository>) -> wasmtime::Result<String> {
        Ok(self.repository(&this)?.path.to_string_lossy().into_owned())
    }

    fn current_branch(&mut self, this: Resource<OpenRepository>) -> GitResult<Option<String>> {
        let repo = &self.repository(&this)?.repo;
        let head = match repo.find_reference("HEAD") {
            Ok(head) => head,
            Err(err) => return Ok(Err(failed("reading HEAD", err))),
        };
        Ok(match head.symbolic_target() {
            Ok(target) => Ok(target.and_then(|t| t.strip_prefix("refs/heads/")).map(str::to_owned)),
            Err(err) => Err(failed("reading HEAD", err)),
        })
    }

    fn head(&mut self, this: Resource<OpenRepository>) -> GitResult<Option<String>> {
        let repo = &self.repository(&this)?.repo;
        Ok(match repo.head() {
            Ok(head) => {
                head.peel_to_commit().map(|c| Some(c.id().to_string())).map_err(|err| failed("reading HEAD", err))
            }
            Err(err) if matches!(err.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
            Err(err) => Err(failed("reading HEAD", err)),
        })
    }

    fn remote_url(&mut self, this: Resource<OpenRepository>, remote: String) -> GitResult<String> {
        let repo = &self.repository(&this)?.repo;
        Ok(repo
            .find_remote(&remote)
            .map_err(|err| failed(&format!("remote `{remote}`"), err))
            .and_then(|r| r.url().map(str::to_owned).map_err(|err| failed(&format!("remote `{remote}`"), err))))
    }

    fn fetch(&mut self, this: Resource<OpenRepository>, remote: String) -> GitResult<u32> {
        let open = self.repository(&this)?;
        let ctx = &self.ctx;
        let result = (|| {
            let mut found = open.repo.find_remote(&remote).map_err(|err| failed(&format!("remote `{remote}`"), err))?;
            let url = found.url().unwrap_or_default().to_owned();
            if ctx.grant.writable(&open.path) {
                check_remote(&ctx.grant, &url).map_err(|denied| {
                    GitError::Denied(format!(
                        "fetching `{remote}` ({url}): {denied}; the plugin may write into {}, so its remotes must be granted",
                        open.path.display()
                    ))
                })?;
            }
            set_network_timeouts();
            let updated = std::cell::Cell::new(0u32);
            let mut callbacks = callbacks(ctx);
            callbacks.update_tips(|_, _, _| {
                updated.set(updated.get() + 1);
                true
            });
            let mut options = FetchOptions::new();
            options.remote_callbacks(callbacks).prune(FetchPrune::On).download_tags(AutotagOption::All);
            found.fetch::<&str>(&[], Some(&mut options), None).map_err(|err| {
                if std::time::Instant::now() >= ctx.deadline {
                    GitError::Failed(format!("fetching `{remote}` ({url}): the step's deadline passed"))
                } else {
                    failed(&format!("fetching `{remote}` ({url})"), err)
                }
            })?;
            Ok(updated.get())
        })();
        Ok(result)
    }

    fn resolve(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<String> {
        let open = self.repository(&this)?;
        Ok(open.commit(&revision).map(|c| c.id().to_string()))
    }

    fn reset_hard(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<String> {
        let open = self.repository(&this)?;
        Ok((|| {
            open.workdir()?;
            let commit = open.commit(&revision)?;
            let mut checkout = git2::build::CheckoutBuilder::new();
            checkout.force();
            open.repo
                .reset(commit.as_object(), ResetType::Hard, Some(&mut checkout))
                .map_err(|err| failed(&format!("resetting to `{revision}`"), err))?;
            Ok(commit.id().to_string())
        })())
    }

    fn clean(&mut self, this: Resource<OpenRepository>) -> GitResult<Vec<String>> {
        let open = self.repository(&this)?;
        Ok((|| {
            let workdir = open.workdir()?.to_path_buf();
            let mut options = StatusOptions::new();
            options
                .include_untracked(true)
                .include_ignored(true)
                .recurse_untracked_dirs(false)
                .recurse_ignored_dirs(false)
                .exclude_submodules(true);
            let statuses =
                open.repo.statuses(Some(&mut options)).map_err(|err| failed("listing untracked files", err))?;
            let mut removed = Vec::new();
            for entry in statuses.iter() {
                let status = entry.status();
                if !(status.contains(git2::Status::WT_NEW) || status.contains(git2::Status::IGNORED)) {
                    continue;
                }
                let relative = String::from_utf8_lossy(entry.path_bytes()).trim_end_matches('/').to_owned();
                let target = workdir.join(std::ffi::OsStr::from_bytes(
                    entry.path_bytes().strip_suffix(b"/").unwrap_or(entry.path_bytes()),
                ));
                let meta = match std::fs::symlink_metadata(&target) {
                    Ok(meta) => meta,
                    Err(_) => continue,
                };
                // Like `git clean -xdf`: a nested repository is left alone.
                if meta.is_dir() && target.join(".git").exists() {
                    continue;
                }
                let outcome =
                    if meta.is_dir() { std::fs::remove_dir_all(&target) } else { std::fs::remove_file(&target) };
                outcome.map_err(|err| GitError::Failed(format!("removing {}: {err}", target.display())))?;
                removed.push(relative);
            }
            Ok(removed)
        })())
    }

    fn changed_paths(
        &mut self,
        this: Resource<OpenRepository>,
        from: String,
        to: String,
    ) -> GitResult<Vec<ChangedPath>> {
        let open = self.repository(&this)?;
        Ok((|| {
            let old = open.commit(&from)?.tree().map_err(|err| failed(&from, err))?;
            let new = open.commit(&to)?.tree().map_err(|err| failed(&to, err))?;
            let diff = open
                .repo
                .diff_tree_to_tree(Some(&old), Some(&new), None)
                .map_err(|err| failed("comparing trees", err))?;
            let mut paths = Vec::new();
            for delta in diff.deltas() {
                let path = |file: git2::DiffFile<'_>| {
                    file.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
                };
                match delta.status() {
                    git2::Delta::Added | git2::Delta::Copied => {
                        paths.push(ChangedPath { path: path(delta.new_file()), kind: ChangeKind::Added })
                    }
                    git2::Delta::Deleted => {
                        paths.push(ChangedPath { path: path(delta.old_file()), kind: ChangeKind::Removed })
                    }
                    git2::Delta::Renamed => {
                        paths.push(ChangedPath { path: path(delta.old_file()), kind: ChangeKind::Removed });
                        paths.push(ChangedPath { path: path(delta.new_file()), kind: ChangeKind::Added });
                    }
                    _ => paths.push(ChangedPath { path: path(delta.new_file()), kind: ChangeKind::Modified }),
                }
            }
            Ok(paths)
        })())
    }

    fn tree(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<Vec<TreeEntry>> {
        let open = self.repository(&this)?;
        Ok((|| {
            let tree = open.commit(&revision)?.tree().map_err(|err| failed(&revision, err))?;
            let odb = open.repo.odb().map_err(|err| failed("opening the object database", err))?;
            let mut entries = Vec::new();
            let mut walk_error = None;
            tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() != Some(git2::ObjectType::Blob) {
                    return git2::TreeWalkResult::Ok;
                }
                match odb.read_header(entry.id()) {
                    Ok((size, _)) => entries.push(TreeEntry {
                        path: format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes())),
                        size: size as u64,
                        executable: entry.filemode() == 0o100755,
                    }),
                    Err(err) => {
                        walk_error = Some(failed("reading a tree entry", err));
                        return git2::TreeWalkResult::Abort;
                    }
                }
                git2::TreeWalkResult::Ok
            })
            .map_err(|err| failed("walking the tree", err))?;
            match walk_error {
                Some(err) => Err(err),
                None => Ok(entries),
            }
        })())
    }

    fn read_file(&mut self, this: Resource<OpenRepository>, revision: String, path: String) -> GitResult<Vec<u8>> {
        let open = self.repository(&this)?;
        let max = self.ctx.max_transfer;
        Ok((|| {
            let tree = open.commit(&revision)?.tree().map_err(|err| failed(&revision, err))?;
            let entry =
                tree.get_path(Path::new(&path)).map_err(|err| failed(&format!("`{path}` in `{revision}`"), err))?;
            let object = entry.to_object(&open.repo).map_err(|err| failed(&path, err))?;
            let blob =
                object.as_blob().ok_or_else(|| GitError::Invalid(format!("`{path}` in `{revision}` is not a file")))?;
            if blob.size() as u64 > max {
                return Err(GitError::Invalid(format!("`{path}` is {} bytes, over the limit of {max}", blob.size())));
            }
            Ok(blob.content().to_vec())
        })())
    }

    fn drop(&mut self, this: Resource<OpenRepository>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{DirGrant, HostPattern};

    #[test]
    fn remote_urls_are_checked_against_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().join("repos");
        std::fs::create_dir(&granted).unwrap();
        let grant = Grant {
            dirs: vec![DirGrant { path: granted.clone(), write: false }],
            hosts: vec![HostPattern::parse("github.com").unwrap()],
            ..Grant::default()
        };
        let inside = format!("{}/origin.git", granted.display());
        let allowed = [
            "https://github.com/acme/widgets.git".to_owned(),
            "ssh://git@github.com/acme/widgets.git".to_owned(),
            "https://github.com:8443/acme/widgets.git".to_owned(),
            "git@github.com:acme/widgets.git".to_owned(),
            inside.clone(),
            format!("file://{inside}"),
        ];
        for url in allowed {
            assert!(check_remote(&grant, &url).is_ok(), "{url}");
        }
        let denied = [
            "https://gitlab.com/acme/widgets.git",
            "git@evil.example:acme/widgets.git",
            "http://169.254.169.254/latest/meta-data",
            "/etc",
            "file:///etc",
            "ext::sh -c touch% /tmp/pwned",
        ];
        for url in denied {
            assert!(check_remote(&grant, url).is_err(), "{url}");
        }
    }
}
