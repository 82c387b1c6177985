//! `git`: repositories inside the granted directories, through libgit2 in the host (no
//! hooks, no filter programs, no `git` binary, no configuration but the repository's
//! own).
//!
//! Nothing is trusted between calls: a repository handle is only the path it was
//! opened at. Every call opens it again on a thread confined to the grant by the kernel
//! ([`crate::confine`]), checks where its git directory, common directory, work tree and
//! alternates lead, and only then works; a link swapped in between calls leads nowhere.
//! Remotes go through [`remote`], the one parser that decides both the grant and what
//! libgit2 is given; no credential leaves the host unless the grant gives one for that
//! host, and redirects are not followed. [`merge`] owns the bounded merge that
//! `merge-check` (in memory) and the job checkout's `checkout = "merge"` both use.

mod archive;
mod merge;

pub use merge::{MAX_MERGE_BYTES, MAX_MERGE_LINES};

pub mod checkout;

use crate::capability::bindings::gitauto::plugin::git::{self as wit, ChangeKind, ChangedPath, GitError, TreeEntry};
use crate::capability::meter::Capability;
use crate::capability::{AppTokenError, StepContext, StepState};
use crate::confine::{self, Rules, Tcp};
use crate::gitwalk::{self, Budget, Change};
use crate::grant::remote::{self, Checked, Remote};
use crate::grant::{Access, Credential, Denied, Grant};
use git2::{
    AutotagOption, ErrorCode, FetchOptions, FetchPrune, ProxyOptions, RemoteCallbacks, RemoteRedirect, Repository,
    RepositoryOpenFlags, ResetType, StatusOptions,
};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Resource;

/// Entries a tree listing, diff or checkout may cover in one call.
pub const MAX_TREE_ENTRIES: usize = 200_000;
/// Bytes of path names a tree listing or diff may return in one call.
pub const MAX_TREE_PATH_BYTES: usize = 32 << 20;
/// Bytes a checkout may write in all, and one file at most: libgit2 holds each file
/// whole in memory while it writes it.
pub const MAX_CHECKOUT_BYTES: u64 = 4 << 30;
/// See [`MAX_CHECKOUT_BYTES`].
pub const MAX_CHECKOUT_FILE: u64 = 512 << 20;

/// Tags `tags` lists at most.
pub const MAX_TAGS: usize = 100_000;
/// Bytes of tag objects `tags` reads at most, all together (their messages).
pub const MAX_TAG_BYTES: u64 = 64 << 20;
/// The largest tag or commit object `tags` reads.
const MAX_TAG_OBJECT: usize = 16 << 20;
/// Tags of tags followed at most to reach a commit.
const MAX_TAG_CHAIN: usize = 16;

/// A repository the plugin opened: only where it was, as checked then. Each call opens
/// and checks it again.
pub struct OpenRepository {
    /// Canonical working directory (or git directory, when bare) at `open`.
    path: PathBuf,
}

type GitResult<T> = wasmtime::Result<Result<T, GitError>>;

impl From<Denied> for GitError {
    fn from(denied: Denied) -> Self {
        GitError::Denied(denied.0)
    }
}

/// Maps a libgit2 error to the WIT error, keeping libgit2's message. On the confined
/// thread, "permission denied" is the kernel refusing a path outside the grant.
fn failed(what: &str, err: git2::Error) -> GitError {
    let message = format!("{what}: {}", err.message());
    if err.message().contains("Permission denied") {
        return GitError::Denied(format!("{message} (outside the plugin's grant)"));
    }
    match err.code() {
        ErrorCode::NotFound | ErrorCode::UnbornBranch => GitError::NotFound(message),
        ErrorCode::InvalidSpec | ErrorCode::Ambiguous => GitError::Invalid(message),
        _ => GitError::Failed(message),
    }
}

fn walk_failed(what: &str, err: gitwalk::WalkError) -> GitError {
    match err {
        // As the WIT says: past the step's deadline, `failed`; over a bound, `invalid`.
        gitwalk::WalkError::Git(_) | gitwalk::WalkError::Deadline => GitError::Failed(format!("{what}: {err}")),
        other => GitError::Invalid(format!("{what}: {other}")),
    }
}

/// Runs `work` confined to `rules` before the step's deadline, as one git call.
fn confined<T: Send + 'static>(
    ctx: &StepContext,
    rules: Rules,
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    gitwalk::configure_libgit2();
    // No new work once the time is up: the guest traps at its next epoch tick, and until
    // then each call would leave a thread behind.
    if Instant::now() >= ctx.deadline {
        return Err(GitError::Failed("the step's deadline passed".into()));
    }
    match confine::run(rules, Some(ctx.deadline), work) {
        Ok(result) => result,
        Err(confine::RunError::Deadline) => Err(GitError::Failed("the step's deadline passed".into())),
        Err(err) => Err(GitError::Failed(err.to_string())),
    }
}

/// Entries of a git directory that must be what they say, not links elsewhere.
const INTERNALS: &[&str] =
    &["HEAD", "config", "index", "commondir", "packed-refs", "objects", "objects/info", "objects/pack", "refs", "info"];

/// Opens the repository at `path` and checks that everything it is made of lies inside
/// the grant with `need` access: the work tree, the git directory, the common directory
/// (`commondir`), every alternate object store; and that none of its internals is a
/// symbolic link. Runs on the confined thread: the kernel holds the same line; these
/// checks give the plugin a clear message.
fn open_checked(grant: &Grant, path: &Path, need: Access) -> Result<Repository, GitError> {
    let shown = path.display().to_string();
    let canonical = grant.check_path(&shown, need)?;
    if !canonical.exists() {
        return Err(GitError::NotFound(format!("{shown} does not exist")));
    }
    check_layout(grant, &canonical, need, &shown)?;
    let repo = Repository::open_ext(&canonical, RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&std::ffi::OsStr>())
        .map_err(|err| match err.code() {
            ErrorCode::NotFound => GitError::NotFound(format!("no git repository at {shown}")),
            _ => failed(&format!("opening {shown}"), err),
        })?;
    let part = |what: &str, dir: &Path| -> Result<(), GitError> {
        grant.check_path(&dir.to_string_lossy(), need).map(drop).map_err(|denied| {
            GitError::Denied(format!("the repository at {shown}: its {what} is outside the grant: {denied}"))
        })
    };
    part("git directory", repo.path())?;
    part("common directory", repo.commondir())?;
    if let Some(workdir) = repo.workdir() {
        part("work tree", workdir)?;
        // A work tree elsewhere (`core.worktree`) would let a repository the plugin
        // wrote check out files, such as another repository's `config`, into a place
        // the plugin may only change through git.
        let opened_there = std::fs::canonicalize(workdir).is_ok_and(|workdir| {
            workdir == canonical || (canonical.ends_with(".git") && canonical.parent() == Some(workdir.as_path()))
        });
        if need >= Access::Git && !opened_there {
            return Err(GitError::Denied(format!(
                "the repository at {shown}: its work tree ({}) is not where it was opened; gitauto changes no \
                 repository whose `core.worktree` points elsewhere",
                workdir.display()
            )));
        }
    }
    for dir in [repo.path(), repo.commondir()] {
        for name in INTERNALS {
            if std::fs::symlink_metadata(dir.join(name)).is_ok_and(|meta| meta.file_type().is_symlink()) {
                return Err(GitError::Denied(format!(
                    "the repository at {shown}: `{name}` is a symbolic link; gitauto opens no repository whose internals lead elsewhere"
                )));
            }
        }
    }
    let objects = repo.commondir().join("objects");
    if let Ok(text) = std::fs::read_to_string(objects.join("info/alternates")) {
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let alternate = objects.join(line);
            grant.check_path(&alternate.to_string_lossy(), Access::Read).map_err(|denied| {
                GitError::Denied(format!(
                    "the repository at {shown}: an alternate object store is outside the grant: {denied}"
                ))
            })?;
        }
    }
    Ok(repo)
}

/// Checks where a repository's git directory and common directory lead before libgit2
/// opens it (libgit2 reads their configuration while opening).
fn check_layout(grant: &Grant, canonical: &Path, need: Access, shown: &str) -> Result<(), GitError> {
    let dot_git = canonical.join(".git");
    let git_dir = match std::fs::symlink_metadata(&dot_git) {
        Ok(meta) if meta.is_file() => {
            if meta.len() > 64 << 10 {
                return Err(GitError::Denied(format!("the repository at {shown}: its `.git` file is too large")));
            }
            let text = std::fs::read_to_string(&dot_git).unwrap_or_default();
            let target = text.trim().strip_prefix("gitdir:").map(str::trim).unwrap_or_default();
            canonical.join(target)
        }
        Ok(_) => dot_git,
        Err(_) => canonical.to_path_buf(),
    };
    let outside = |what: &str, denied: Denied| {
        GitError::Denied(format!("the repository at {shown}: its {what} is outside the grant: {denied}"))
    };
    grant.check_path(&git_dir.to_string_lossy(), need).map_err(|denied| outside("git directory", denied))?;
    let plain = |dir: &Path| {
        gitwalk::plain_internals(dir).map_err(|why| GitError::Denied(format!("the repository at {shown}: {why}")))
    };
    // Checked before anything in it is read.
    plain(&git_dir)?;
    if let Ok(text) = std::fs::read_to_string(git_dir.join("commondir")) {
        let common = git_dir.join(text.trim());
        grant.check_path(&common.to_string_lossy(), need).map_err(|denied| outside("common directory", denied))?;
        plain(&common)?;
    }
    Ok(())
}

/// Callbacks for network operations: no credentials but the grant's (sent as a header
/// by the caller, never through these), and abort once the deadline passes.
fn callbacks(host: String, deadline: Instant) -> RemoteCallbacks<'static> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_, _, _| {
        Err(git2::Error::from_str(&format!(
            "{host} asked for credentials, and the grant gives none for it (a granted host's `credential` is sent over https)"
        )))
    });
    callbacks.transfer_progress(move |_| Instant::now() < deadline);
    callbacks.sideband_progress(move |_| Instant::now() < deadline);
    callbacks
}

/// Fetch options for a checked remote: the grant's credential as a header (https only),
/// no redirects, no proxy, the deadline.
fn fetch_options(grant: &Grant, remote: &Checked, deadline: Instant) -> Result<FetchOptions<'static>, GitError> {
    let mut options = FetchOptions::new();
    // No proxy (not even one a repository's `http.proxy` names), no redirects.
    options.proxy_options(ProxyOptions::new()).follow_redirects(RemoteRedirect::None);
    match remote {
        Checked::Local(path) => {
            // libgit2 opens a local remote as a repository: what it reads whole is
            // checked as for one the plugin opens.
            gitwalk::check_repository(path)
                .map_err(|why| GitError::Denied(format!("the local repository at {}: {why}", path.display())))?;
            options.remote_callbacks(callbacks("a local repository".into(), deadline));
        }
        Checked::Network(network) => {
            options.remote_callbacks(callbacks(network.host.clone(), deadline));
            if let Some(credential) = grant.credential_for(&network.host, network.port) {
                let (name, value) = match &credential.kind {
                    Credential::Header { name, value } => (name, value),
                    Credential::GitHubApp { .. } => {
                        // `with_app_token` replaces it before any fetch: reaching here is a host bug.
                        return Err(GitError::Denied(format!(
                            "{}: no GitHub App token was minted for {}",
                            network.url, credential.pattern
                        )));
                    }
                    Credential::SigV4(_) => {
                        return Err(GitError::Denied(format!(
                            "{}: the credential granted for {} is an AWS SigV4 key, and git cannot sign its \
                             requests; use a token credential for git hosts",
                            network.url, credential.pattern
                        )));
                    }
                };
                let loopback = network.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if network.scheme != "https" && !(network.scheme == "http" && loopback) {
                    return Err(GitError::Denied(format!(
                        "{}: the credential granted for {} is sent only over https",
                        network.url, credential.pattern
                    )));
                }
                let header = format!("{name}: {}", value.expose());
                if header.contains(['\r', '\n']) {
                    return Err(GitError::Invalid(format!(
                        "the credential for {} is not a valid header",
                        credential.pattern
                    )));
                }
                options.custom_headers(&[&header]);
            }
        }
    }
    Ok(options)
}

/// `grant` with the `github-app` credential for `remote`'s host (if that is its
/// credential) replaced by a token `mint` gives for that host and port, sent as GitHub's git server wants it:
/// basic `x-access-token:TOKEN`. `None`: nothing to replace. Call it before the fetch's
/// confined thread starts: minting calls GitHub's API, which that thread cannot reach.
pub fn with_app_token(
    grant: &Grant,
    remote: &Checked,
    mint: impl FnOnce(
        &crate::grant::HostPattern,
        (&str, u16),
        &[(String, String)],
    ) -> Result<crate::secret::Secret, AppTokenError>,
) -> Result<Option<Grant>, AppTokenError> {
    use base64::Engine as _;
    let Checked::Network(network) = remote else { return Ok(None) };
    let Some(credential) = grant.credential_for(&network.host, network.port) else { return Ok(None) };
    let Credential::GitHubApp { permissions } = &credential.kind else { return Ok(None) };
    let token = mint(&credential.pattern, (&network.host, network.port), permissions)?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", token.expose()));
    let minted = crate::grant::HostCredential {
        pattern: credential.pattern.clone(),
        kind: Credential::Header {
            name: "authorization".into(),
            value: crate::secret::Secret::new(format!("Basic {basic}")),
        },
    };
    let mut grant = grant.clone();
    for entry in &mut grant.credentials {
        if entry.pattern == minted.pattern {
            *entry = minted.clone();
        }
    }
    Ok(Some(grant))
}

/// A plugin's git call whose host's credential is a GitHub App's: the grant with a token
/// minted for the job, or the call's error.
fn minted(ctx: &StepContext, grant: Arc<Grant>, remote: &Checked) -> Result<Arc<Grant>, GitError> {
    match with_app_token(&grant, remote, |pattern, to, permissions| ctx.app_token(pattern, to, permissions)) {
        Ok(Some(minted)) => Ok(Arc::new(minted)),
        Ok(None) => Ok(grant),
        Err(AppTokenError::Denied(why)) => Err(GitError::Denied(why)),
        Err(AppTokenError::Unavailable(why)) => Err(GitError::Failed(why)),
    }
}

/// What the confined thread may reach to talk to `remote`, besides the grant. A checked
/// local remote lies in the grant already; a trusted one (an administrator's, outside
/// every directory a plugin may change) is added as resolved when it was trusted.
fn remote_rules(rules: Rules, remote: &Checked, trusted: bool) -> Rules {
    match remote {
        Checked::Local(path) if trusted => rules.with_path(path, confine::Level::Read),
        Checked::Local(_) => rules,
        // Port 53 for name lookups that fall back to TCP.
        Checked::Network(network) => rules.with_system_files().with_tcp(Tcp::Connect(vec![network.port, 53])),
    }
}

impl StepState {
    fn repository(&self, handle: &Resource<OpenRepository>) -> wasmtime::Result<&OpenRepository> {
        Ok(self.table.get(handle)?)
    }

    /// Runs `work` on the repository behind `handle`, opened and checked again, on a
    /// thread confined to the grant (writable where the grant allows `need`).
    fn in_repository<T: Send + 'static>(
        &self,
        handle: &Resource<OpenRepository>,
        need: Access,
        work: impl FnOnce(&Repository) -> Result<T, GitError> + Send + 'static,
    ) -> GitResult<T> {
        let path = self.repository(handle)?.path.clone();
        let grant = self.ctx.grant.clone();
        let rules = Rules::grant(&grant, need);
        Ok(confined(&self.ctx, rules, move || {
            let repo = open_checked(&grant, &path, need)?;
            work(&repo)
        }))
    }

    /// Whether the remotes configured in a repository are as an administrator left
    /// them: where its configuration lives (`places`: the work tree, the git directory,
    /// the common directory), no other plugin may change repositories and no plugin may
    /// write files. Then a fetch needs no host grant for them.
    fn remotes_trusted(&self, places: &[PathBuf]) -> bool {
        let this = &self.ctx.plugin;
        !places.iter().any(|place| {
            self.ctx
                .changers
                .iter()
                .any(|(plugin, root, access)| place.starts_with(root) && (plugin != this || *access == Access::Write))
        })
    }

    /// Whether a local remote lies where no plugin may change anything: only then is it
    /// as an administrator made it (a plugin's clone records the path it cloned from,
    /// which may since have been swapped for a link).
    fn outside_every_changeable_grant(&self, path: &Path) -> bool {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        !self.ctx.changers.iter().any(|(_, root, _)| path.starts_with(root) || canonical.starts_with(root))
    }
}

/// When this process started (see [`note_process_start`]).
static PROCESS_START: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Records the process's start, before any job runs: lock files older than it were left
/// by a process that is gone (a daemon killed mid-operation).
///
/// The start is read from the coarse real-time clock, the one the kernel stamps files'
/// times with: the precise clock runs up to a tick ahead of it, so a file this process
/// writes just after starting could otherwise look older than the process.
pub fn note_process_start() {
    PROCESS_START.get_or_init(|| {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        let since_epoch =
            std::time::Duration::new(now.tv_sec.try_into().unwrap_or(0), now.tv_nsec.try_into().unwrap_or(0));
        std::time::UNIX_EPOCH + since_epoch
    });
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

impl wit::Host for StepState {}

impl wit::HostRepository for StepState {
    fn open(&mut self, path: String) -> GitResult<Resource<OpenRepository>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.open");
        let grant = self.ctx.grant.clone();
        let log = self.ctx.log.clone();
        let opened = confined(&self.ctx, Rules::grant(&grant, Access::Git), move || {
            // The handle keeps where the path led now; each later call checks it again.
            let canonical = grant.check_path(&path, Access::Read)?;
            let repo = open_checked(&grant, Path::new(&path), Access::Read)?;
            if grant.access_at(&canonical).is_some_and(|access| access >= Access::Git) {
                for removed in remove_stale_locks(repo.path()) {
                    let note = format!(
                        "removed {}: a lock left by a process that stopped before gitauto started",
                        removed.display()
                    );
                    log.line(crate::capability::log::Level::Warn, &note);
                }
            }
            Ok(canonical)
        });
        Ok(match opened {
            Ok(path) => Ok(self.table.push(OpenRepository { path })?),
            Err(err) => Err(err),
        })
    }

    fn clone(&mut self, url: String, path: String, branch: Option<String>) -> GitResult<Resource<OpenRepository>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.clone");
        let grant = self.ctx.grant.clone();
        let checked = remote::parse(&url).and_then(|parsed| remote::check(&grant, &parsed));
        let checked = match checked {
            Ok(checked) => checked,
            Err(denied) => return Ok(Err(GitError::Denied(format!("cloning {denied}")))),
        };
        let target = match grant.check_path(&path, Access::Git) {
            Ok(target) => target,
            Err(denied) => return Ok(Err(denied.into())),
        };
        let grant = match minted(&self.ctx, grant, &checked) {
            Ok(grant) => grant,
            Err(err) => return Ok(Err(err)),
        };
        let deadline = self.ctx.deadline;
        let rules = remote_rules(Rules::grant(&grant, Access::Git), &checked, false);
        let cloned = confined(&self.ctx, rules, move || {
            let target = grant.check_path(&target.to_string_lossy(), Access::Git)?;
            if target.exists() && std::fs::read_dir(&target).map(|mut d| d.next().is_some()).unwrap_or(true) {
                return Err(GitError::Invalid(format!("{path} exists and is not an empty directory")));
            }
            let source = checked.for_git();
            // A tree bomb is refused before libgit2 writes a file of it: the checkout
            // waits for the tree to be counted.
            let mut builder = git2::build::RepoBuilder::new();
            builder.fetch_options(fetch_options(&grant, &checked, deadline)?);
            let mut checkout = git2::build::CheckoutBuilder::new();
            checkout.dry_run();
            builder.with_checkout(checkout);
            if let Some(branch) = &branch {
                builder.branch(branch);
            }
            let repo = builder.clone(&source, &target).map_err(|err| {
                if Instant::now() >= deadline {
                    GitError::Failed(format!("cloning {url}: the step's deadline passed"))
                } else {
                    failed(&format!("cloning {url}"), err)
                }
            })?;
            if let Ok(head) = repo.head().and_then(|head| head.peel_to_commit()) {
                check_out(&repo, &head, deadline, "the cloned commit").map_err(|err| match err {
                    GitError::Invalid(why) => GitError::Invalid(format!("cloning {url}: {why}")),
                    other => other,
                })?;
            }
            Ok(target)
        });
        Ok(match cloned {
            Ok(path) => Ok(self.table.push(OpenRepository { path })?),
            Err(err) => Err(err),
        })
    }

    fn path(&mut self, this: Resource<OpenRepository>) -> wasmtime::Result<String> {
        let _call = self.ctx.meter.start(Capability::Git, "git.path");
        Ok(self.repository(&this)?.path.to_string_lossy().into_owned())
    }

    fn current_branch(&mut self, this: Resource<OpenRepository>) -> GitResult<Option<String>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.current-branch");
        self.in_repository(&this, Access::Read, |repo| {
            let head = repo.find_reference("HEAD").map_err(|err| failed("reading HEAD", err))?;
            let target = head.symbolic_target().map_err(|err| failed("reading HEAD", err))?;
            Ok(target.and_then(|t| t.strip_prefix("refs/heads/")).map(str::to_owned))
        })
    }

    fn head(&mut self, this: Resource<OpenRepository>) -> GitResult<Option<String>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.head");
        self.in_repository(&this, Access::Read, |repo| match repo.head() {
            Ok(head) => {
                head.peel_to_commit().map(|c| Some(c.id().to_string())).map_err(|err| failed("reading HEAD", err))
            }
            Err(err) if matches!(err.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
            Err(err) => Err(failed("reading HEAD", err)),
        })
    }

    fn remote_url(&mut self, this: Resource<OpenRepository>, remote: String) -> GitResult<String> {
        let _call = self.ctx.meter.start(Capability::Git, "git.remote-url");
        self.in_repository(&this, Access::Read, move |repo| {
            let found = repo.find_remote(&remote).map_err(|err| failed(&format!("remote `{remote}`"), err))?;
            found.url().map(str::to_owned).map_err(|err| failed(&format!("remote `{remote}`"), err))
        })
    }

    fn fetch(&mut self, this: Resource<OpenRepository>, name: String) -> GitResult<u32> {
        let _call = self.ctx.meter.start(Capability::Git, "git.fetch");
        let path = self.repository(&this)?.path.clone();
        let grant = self.ctx.grant.clone();
        // Read the remote first (read-only), decide what it may reach, then fetch on a
        // thread allowed exactly that.
        let lookup = name.clone();
        let (url, places) = match self.in_repository(&this, Access::Git, move |repo| {
            let found = repo.find_remote(&lookup).map_err(|err| failed(&format!("remote `{lookup}`"), err))?;
            let url = found.url().map(str::to_owned).map_err(|err| failed(&format!("remote `{lookup}`"), err))?;
            let mut places = vec![repo.path().to_path_buf(), repo.commondir().to_path_buf()];
            places.extend(repo.workdir().map(Path::to_path_buf));
            let places: Vec<PathBuf> =
                places.into_iter().map(|place| std::fs::canonicalize(&place).unwrap_or(place)).collect();
            Ok((url, places))
        })? {
            Ok(found) => found,
            Err(err) => return Ok(Err(err)),
        };
        let checked = remote::parse(&url).and_then(|parsed| {
            let local_trusted = match &parsed {
                Remote::Local(local) => self.outside_every_changeable_grant(local),
                Remote::Network(_) => true,
            };
            if self.remotes_trusted(&places) && local_trusted {
                return remote::trusted(&parsed).map(|checked| (checked, true));
            }
            let checked = remote::check(&grant, &parsed).map_err(|denied| {
                Denied(format!(
                    "{denied}; a plugin may change {} (this one or another), so the remotes configured there must be granted",
                    path.display()
                ))
            })?;
            Ok((checked, false))
        });
        let (checked, trusted) = match checked {
            Ok(checked) => checked,
            Err(denied) => return Ok(Err(GitError::Denied(format!("fetching `{name}` ({url}): {}", denied.0)))),
        };
        let grant = match minted(&self.ctx, grant, &checked) {
            Ok(grant) => grant,
            Err(err) => return Ok(Err(err)),
        };
        let deadline = self.ctx.deadline;
        let rules = remote_rules(Rules::grant(&grant, Access::Git), &checked, trusted);
        Ok(confined(&self.ctx, rules, move || {
            let repo = open_checked(&grant, &path, Access::Git)?;
            let mut found = repo.find_remote(&name).map_err(|err| failed(&format!("remote `{name}`"), err))?;
            // The remote as checked, read again on this thread: libgit2 fetches from
            // what the configuration says now.
            if found.url() != Ok(url.as_str()) {
                return Err(GitError::Denied(format!("the remote `{name}` changed during the fetch")));
            }
            let updated = std::cell::Cell::new(0u32);
            let mut options = fetch_options(&grant, &checked, deadline)?;
            let mut callbacks = callbacks(url.clone(), deadline);
            callbacks.update_tips(|_, _, _| {
                updated.set(updated.get() + 1);
                true
            });
            options.remote_callbacks(callbacks).prune(FetchPrune::On).download_tags(AutotagOption::All);
            found.fetch::<&str>(&[], Some(&mut options), None).map_err(|err| {
                if Instant::now() >= deadline {
                    GitError::Failed(format!("fetching `{name}` ({url}): the step's deadline passed"))
                } else {
                    failed(&format!("fetching `{name}` ({url})"), err)
                }
            })?;
            Ok(updated.get())
        }))
    }

    fn resolve(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<String> {
        let _call = self.ctx.meter.start(Capability::Git, "git.resolve");
        self.in_repository(&this, Access::Read, move |repo| Ok(commit(repo, &revision)?.id().to_string()))
    }

    fn reset_hard(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<String> {
        let _call = self.ctx.meter.start(Capability::Git, "git.reset-hard");
        let deadline = self.ctx.deadline;
        self.in_repository(&this, Access::Git, move |repo| {
            workdir(repo)?;
            let target = commit(repo, &revision)?;
            // Count the tree first: a bomb is refused before a file of it is written.
            let tree = root_tree(repo, &target, &revision)?;
            check_checkout_size(repo, &tree, deadline, &format!("checking out `{revision}`"))?;
            let mut checkout = git2::build::CheckoutBuilder::new();
            checkout.force();
            repo.reset(target.as_object(), ResetType::Hard, Some(&mut checkout))
                .map_err(|err| failed(&format!("resetting to `{revision}`"), err))?;
            Ok(target.id().to_string())
        })
    }

    fn clean(&mut self, this: Resource<OpenRepository>) -> GitResult<Vec<String>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.clean");
        self.in_repository(&this, Access::Git, |repo| {
            let workdir = workdir(repo)?.to_path_buf();
            let mut options = StatusOptions::new();
            options
                .include_untracked(true)
                .include_ignored(true)
                .recurse_untracked_dirs(false)
                .recurse_ignored_dirs(false)
                .exclude_submodules(true);
            let statuses = repo.statuses(Some(&mut options)).map_err(|err| failed("listing untracked files", err))?;
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
        })
    }

    fn changed_paths(
        &mut self,
        this: Resource<OpenRepository>,
        from: String,
        to: String,
    ) -> GitResult<Vec<ChangedPath>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.changed-paths");
        let deadline = self.ctx.deadline;
        self.in_repository(&this, Access::Read, move |repo| {
            let old = root_tree(repo, &commit(repo, &from)?, &from)?;
            let new = root_tree(repo, &commit(repo, &to)?, &to)?;
            let changes = gitwalk::diff(repo, Some(&old), Some(&new), walk_budget(deadline))
                .map_err(|err| walk_failed(&format!("comparing `{from}` with `{to}`"), err))?;
            Ok(changes
                .into_iter()
                .map(|(path, change)| ChangedPath {
                    path,
                    kind: match change {
                        Change::Added => ChangeKind::Added,
                        Change::Modified => ChangeKind::Modified,
                        Change::Removed => ChangeKind::Removed,
                    },
                })
                .collect())
        })
    }

    fn tree(&mut self, this: Resource<OpenRepository>, revision: String) -> GitResult<Vec<TreeEntry>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.tree");
        let deadline = self.ctx.deadline;
        self.in_repository(&this, Access::Read, move |repo| {
            let tree = root_tree(repo, &commit(repo, &revision)?, &revision)?;
            let blobs = gitwalk::blobs(repo, &tree, walk_budget(deadline))
                .map_err(|err| walk_failed(&format!("listing `{revision}`"), err))?;
            let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
            blobs
                .into_iter()
                .map(|blob| {
                    let (size, _) = odb.read_header(blob.id).map_err(|err| failed("reading a tree entry", err))?;
                    Ok(TreeEntry { path: blob.path, size: size as u64, executable: blob.mode == 0o100755 })
                })
                .collect()
        })
    }

    fn read_file(&mut self, this: Resource<OpenRepository>, revision: String, path: String) -> GitResult<Vec<u8>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.read-file");
        let max = self.ctx.max_transfer;
        self.in_repository(&this, Access::Read, move |repo| {
            let tree = root_tree(repo, &commit(repo, &revision)?, &revision)?;
            let entry =
                tree.get_path(Path::new(&path)).map_err(|err| failed(&format!("`{path}` in `{revision}`"), err))?;
            // The size from the object's header, before the object is inflated.
            let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
            let (size, _) = odb.read_header(entry.id()).map_err(|err| failed(&path, err))?;
            if size as u64 > max {
                return Err(GitError::Invalid(format!("`{path}` is {size} bytes, over the limit of {max}")));
            }
            let object = entry.to_object(repo).map_err(|err| failed(&path, err))?;
            let blob =
                object.as_blob().ok_or_else(|| GitError::Invalid(format!("`{path}` in `{revision}` is not a file")))?;
            if blob.size() as u64 > max {
                return Err(GitError::Invalid(format!("`{path}` is {} bytes, over the limit of {max}", blob.size())));
            }
            Ok(blob.content().to_vec())
        })
    }

    fn merge_check(&mut self, this: Resource<OpenRepository>, base: String, head: String) -> GitResult<Vec<String>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.merge-check");
        let deadline = self.ctx.deadline;
        self.in_repository(&this, Access::Read, move |repo| merge::conflicts(repo, &base, &head, deadline))
    }

    fn tags(&mut self, this: Resource<OpenRepository>) -> GitResult<Vec<wit::TagInfo>> {
        let _call = self.ctx.meter.start(Capability::Git, "git.tags");
        let deadline = self.ctx.deadline;
        self.in_repository(&this, Access::Read, move |repo| tags(repo, deadline))
    }

    fn archive(
        &mut self,
        this: Resource<OpenRepository>,
        revision: String,
        options: wit::ArchiveOptions,
    ) -> GitResult<wit::ArchiveInfo> {
        let _call = self.ctx.meter.start(Capability::Git, "git.archive");
        if let Err(err) = archive_confinable(confine::support()) {
            return Ok(Err(err));
        }
        let path = self.repository(&this)?.path.clone();
        let grant = self.ctx.grant.clone();
        let deadline = self.ctx.deadline;
        // The archive is a file the plugin could have written itself: only directories
        // it may write (`write = true`) are writable on this thread; repositories, even
        // git-writable ones, are read-only.
        let rules = Rules::program(&grant);
        Ok(confined(&self.ctx, rules, move || {
            // For the message; the kernel refuses the write itself wherever this would.
            let output = grant.check_path(&options.output, Access::Write)?;
            let repo = open_checked(&grant, &path, Access::Read)?;
            archive::write(&repo, &revision, &options, &output, archive::BOUNDS, deadline)
        }))
    }

    fn drop(&mut self, this: Resource<OpenRepository>) -> wasmtime::Result<()> {
        let _call = self.ctx.meter.start(Capability::Git, "git.drop");
        self.table.delete(this)?;
        Ok(())
    }
}

/// Whether `archive` may run under `support`. It writes where the plugin says, into
/// directories the plugin (or another job of it) can change meanwhile: only the
/// kernel's rules, applied at each `open` and `rename`, hold that line against a
/// directory swapped for a link, so without Landlock's file rules it is refused.
fn archive_confinable(support: confine::Support) -> Result<(), GitError> {
    if support.files() {
        return Ok(());
    }
    Err(GitError::Denied(format!(
        "archive cannot run: this kernel has no Landlock file rules ({support}) to confine where it writes \
         (see docs/security.md)"
    )))
}

/// Every tag of `repo` whose target is (or peels to) a commit, sorted by name, within
/// [`MAX_TAGS`] and [`MAX_TAG_BYTES`], before `deadline`.
fn tags(repo: &Repository, deadline: Instant) -> Result<Vec<wit::TagInfo>, GitError> {
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    // Only the tags' refs: a repository's other refs (pull requests, notes) may be many.
    let references = repo.references_glob("refs/tags/*").map_err(|err| failed("listing tags", err))?;
    let mut read = 0u64;
    let mut seen = 0usize;
    let mut out = Vec::new();
    'tags: for reference in references {
        // Every ref counts, and the clock is read at each, whatever becomes of it.
        seen += 1;
        if seen > MAX_TAGS {
            return Err(GitError::Invalid(format!(
                "the repository has more than {MAX_TAGS} tags (the limit for one call)"
            )));
        }
        if Instant::now() >= deadline {
            return Err(GitError::Failed("listing tags: the step's deadline passed".into()));
        }
        let reference = reference.map_err(|err| failed("listing tags", err))?;
        let Some(name) = reference.name_bytes().strip_prefix(b"refs/tags/") else { continue };
        // A name that is not UTF-8 is left out: shown lossily, two tags could read as
        // one name, and the plugin could not name it back.
        let Ok(name) = String::from_utf8(name.to_vec()) else { continue };
        let what = format!("tag `{name}`");
        let resolved = reference.resolve().map_err(|err| failed(&what, err))?;
        let Some(mut id) = resolved.target() else { continue };
        let mut tag_object: Option<(String, Option<String>, Option<i64>)> = None;
        for _ in 0..=MAX_TAG_CHAIN {
            let (size, kind) = odb.read_header(id).map_err(|err| failed(&what, err))?;
            if size > MAX_TAG_OBJECT {
                return Err(GitError::Invalid(format!(
                    "{what}: an object of {size} bytes, over the limit of {MAX_TAG_OBJECT}"
                )));
            }
            match kind {
                git2::ObjectType::Commit => {
                    let commit = repo.find_commit(id).map_err(|err| failed(&what, err))?;
                    let commit_date = commit.committer().when().seconds();
                    let info = match &tag_object {
                        None => wit::TagInfo {
                            name,
                            commit: id.to_string(),
                            annotated: false,
                            message: None,
                            tagger: None,
                            date: commit_date,
                            commit_date,
                        },
                        Some((message, tagger, date)) => wit::TagInfo {
                            name,
                            commit: id.to_string(),
                            annotated: true,
                            message: Some(message.clone()),
                            tagger: tagger.clone(),
                            date: date.unwrap_or(commit_date),
                            commit_date,
                        },
                    };
                    out.push(info);
                    continue 'tags;
                }
                git2::ObjectType::Tag => {
                    read += size as u64;
                    if read > MAX_TAG_BYTES {
                        return Err(GitError::Invalid(format!(
                            "the tags' objects add up to more than {MAX_TAG_BYTES} bytes (the limit for one call)"
                        )));
                    }
                    let tag = repo.find_tag(id).map_err(|err| failed(&what, err))?;
                    if tag_object.is_none() {
                        let message = without_signature(tag.message_bytes().unwrap_or_default());
                        let tagger = tag.tagger().map(|who| {
                            format!(
                                "{} <{}>",
                                String::from_utf8_lossy(who.name_bytes()),
                                String::from_utf8_lossy(who.email_bytes())
                            )
                        });
                        let date = tag.tagger().map(|who| who.when().seconds());
                        tag_object = Some((message, tagger, date));
                    }
                    id = tag.target_id();
                }
                // A tagged tree or blob: not a release of anything.
                _ => continue 'tags,
            }
        }
        return Err(GitError::Invalid(format!("{what}: more than {MAX_TAG_CHAIN} tags of tags")));
    }
    out.sort_by(|a: &wit::TagInfo, b: &wit::TagInfo| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(out)
}

/// A tag's message without its signature block (from the last line that starts one, as
/// git reads it) and without trailing white space.
fn without_signature(message: &[u8]) -> String {
    const STARTS: &[&[u8]] = &[
        b"-----BEGIN PGP SIGNATURE-----",
        b"-----BEGIN PGP MESSAGE-----",
        b"-----BEGIN SSH SIGNATURE-----",
        b"-----BEGIN SIGNED MESSAGE-----",
    ];
    let mut end = message.len();
    let mut at = 0;
    while at < message.len() {
        if STARTS.iter().any(|start| message[at..].starts_with(start)) {
            end = at;
        }
        at += message[at..].iter().position(|&b| b == b'\n').map_or(message.len() - at, |eol| eol + 1);
    }
    String::from_utf8_lossy(&message[..end]).trim_end().to_owned()
}

/// The paths that conflict when `head` merges into `base` in the repository at `path`,
/// through the bounded merge `merge-check` makes (in memory), on the calling thread and
/// unconfined: what a merge costs, for benchmarks.
pub fn merge_check_for_benchmark(path: &Path, base: &str, head: &str) -> Result<Vec<String>, String> {
    gitwalk::configure_libgit2();
    let repo = Repository::open(path).map_err(|err| format!("opening {}: {}", path.display(), err.message()))?;
    let deadline = Instant::now() + std::time::Duration::from_secs(3600);
    merge::conflicts(&repo, base, head, deadline).map_err(|err| format!("{err:?}"))
}

fn walk_budget(deadline: Instant) -> Budget {
    Budget { entries: MAX_TREE_ENTRIES, path_bytes: MAX_TREE_PATH_BYTES, deadline }
}

/// Refuses a tree whose checkout would go over the limits: entries (a tree bomb), one
/// file's size, or all files' sizes (read from object headers, nothing inflated).
/// Refusals start with `what`.
fn check_checkout_size(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    deadline: Instant,
    what: &str,
) -> Result<(), GitError> {
    let blobs = gitwalk::blobs(repo, tree, walk_budget(deadline)).map_err(|err| walk_failed(what, err))?;
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    let mut total = 0u64;
    for blob in blobs {
        let (size, _) = odb.read_header(blob.id).map_err(|err| failed(&blob.path, err))?;
        let size = size as u64;
        if size > MAX_CHECKOUT_FILE {
            return Err(GitError::Invalid(format!(
                "{what}: `{}` is {size} bytes, over the limit of {MAX_CHECKOUT_FILE} for one file",
                blob.path
            )));
        }
        total += size;
        if total > MAX_CHECKOUT_BYTES {
            return Err(GitError::Invalid(format!("{what}: its files add up to more than {MAX_CHECKOUT_BYTES} bytes")));
        }
    }
    Ok(())
}

/// Checks out `commit` into a fresh clone's work tree, once its tree is counted.
fn check_out(repo: &Repository, commit: &git2::Commit<'_>, deadline: Instant, what: &str) -> Result<(), GitError> {
    let tree = root_tree(repo, commit, what)?;
    check_checkout_size(repo, &tree, deadline, "checking out")?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.force();
    repo.checkout_tree(tree.as_object(), Some(&mut checkout)).map_err(|err| failed("checking out", err))?;
    Ok(())
}

/// The root tree of `commit`, read only when its object is of a sane size.
fn root_tree<'r>(repo: &'r Repository, commit: &git2::Commit<'_>, what: &str) -> Result<git2::Tree<'r>, GitError> {
    gitwalk::find_tree(repo, commit.tree_id()).map_err(|err| walk_failed(what, err))
}

/// The commit `revision` names. Revisions that search history by message (`:/text`,
/// `rev^{/text}`) are refused: they walk all of history inside the host.
fn commit<'r>(repo: &'r Repository, revision: &str) -> Result<git2::Commit<'r>, GitError> {
    if revision.starts_with(":/") || revision.contains("^{/") {
        return Err(GitError::Invalid(format!("`{revision}`: searching history by message is not supported")));
    }
    let mut object = repo.revparse_single(revision).map_err(|err| failed(&format!("resolving `{revision}`"), err))?;
    // Peeled here, through at most [`MAX_TAG_CHAIN`] tags of sane sizes: libgit2's own
    // peel follows a chain of tags of tags however long it is.
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    for _ in 0..=MAX_TAG_CHAIN {
        match object.kind() {
            Some(git2::ObjectType::Commit) => {
                return object.into_commit().map_err(|_| GitError::Failed(format!("`{revision}`: not a commit")));
            }
            Some(git2::ObjectType::Tag) => {
                let target = object.as_tag().expect("a tag object").target_id();
                let (size, _) = odb.read_header(target).map_err(|err| failed(&format!("peeling `{revision}`"), err))?;
                if size > MAX_TAG_OBJECT {
                    return Err(GitError::Invalid(format!(
                        "`{revision}`: a tagged object of {size} bytes, over the limit of {MAX_TAG_OBJECT}"
                    )));
                }
                object = repo.find_object(target, None).map_err(|err| failed(&format!("peeling `{revision}`"), err))?;
            }
            _ => return Err(GitError::Invalid(format!("`{revision}` is not a commit"))),
        }
    }
    Err(GitError::Invalid(format!("`{revision}`: more than {MAX_TAG_CHAIN} tags of tags")))
}

fn workdir(repo: &Repository) -> Result<&Path, GitError> {
    repo.workdir().ok_or_else(|| {
        GitError::Invalid(format!("{} is a bare repository without a working tree", repo.path().display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::DirGrant;

    struct World {
        _dir: tempfile::TempDir,
        root: PathBuf,
        grant: Grant,
    }

    /// `site/` (write), `repos/` (git), `ro/` (read), `outside/` with a repository.
    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["site", "repos", "ro", "outside"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let outside = Repository::init(root.join("outside/repo")).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = outside.find_tree(outside.index().unwrap().write_tree().unwrap()).unwrap();
        outside.commit(Some("HEAD"), &signature, &signature, "private", &tree, &[]).unwrap();
        Repository::init(root.join("site/plain")).unwrap();
        Repository::init(root.join("repos/checkout")).unwrap();
        let grant = Grant {
            dirs: vec![
                DirGrant::new(root.join("site"), Access::Write),
                DirGrant::new(root.join("repos"), Access::Git),
                DirGrant::new(root.join("ro"), Access::Read),
            ],
            ..Grant::default()
        };
        World { _dir: dir, root, grant }
    }

    fn denied(w: &World, path: &str, need: Access) -> String {
        match open_checked(&w.grant, &w.root.join(path), need) {
            Err(GitError::Denied(why)) => why,
            Err(other) => panic!("{path}: not a denial: {other:?}"),
            Ok(_) => panic!("{path}: opened"),
        }
    }

    #[test]
    fn repositories_inside_the_grant_open() {
        let w = world();
        assert!(open_checked(&w.grant, &w.root.join("site/plain"), Access::Write).is_ok());
        assert!(open_checked(&w.grant, &w.root.join("repos/checkout"), Access::Git).is_ok());
    }

    /// Security review: a step that may write a repository (a shared checkout) makes
    /// libgit2 read a file whole that no size check covers: an included config, a
    /// worktree config, a loose ref or root ref the size of memory. Each is refused
    /// before libgit2 opens the repository, naming the file or key (a sparse file of
    /// 64 GiB read whole would exhaust the test's memory, so getting an answer at all
    /// shows it was not read).
    #[test]
    fn files_libgit2_would_read_whole_are_refused_first() {
        let w = world();
        let repo = w.root.join("site/plain");
        let git = repo.join(".git");
        let sparse = |path: &Path| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::File::create(path).unwrap().set_len(64 << 30).unwrap();
        };
        let config = std::fs::read_to_string(git.join("config")).unwrap();
        sparse(&w.root.join("site/big"));
        for (extra, key) in [
            ("[include]\n\tpath = ../../big\n", "include.path"),
            ("[includeIf \"gitdir:/\"]\n\tpath = ../../big\n", "includeIf.path"),
            ("[INCLUDE] Path = ../../big\n", "INCLUDE.Path"),
            ("[extensions]\n\tworktreeConfig = true\n", "extensions.worktreeConfig"),
        ] {
            std::fs::write(git.join("config"), format!("{config}{extra}")).unwrap();
            let why = denied(&w, "site/plain", Access::Read);
            assert!(why.contains(&format!("its `config` sets `{key}`")), "{extra:?}: {why}");
        }
        std::fs::write(git.join("config"), &config).unwrap();
        assert!(open_checked(&w.grant, &repo, Access::Write).is_ok());

        for name in
            ["refs/gitauto/target", "refs/heads/main", "ORIG_HEAD", "MERGE_HEAD", "logs/HEAD", "config.worktree"]
        {
            sparse(&git.join(name));
            let why = denied(&w, "site/plain", Access::Read);
            assert!(why.contains(&format!("`{name}` is not a plain file of at most")), "{name}: {why}");
            std::fs::remove_file(git.join(name)).unwrap();
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            git.join("refs/heads/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(denied(&w, "site/plain", Access::Read).contains("`refs/heads/fifo` is not a plain file"));
        std::fs::remove_file(git.join("refs/heads/fifo")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", git.join("refs/heads/zero")).unwrap();
        assert!(denied(&w, "site/plain", Access::Read).contains("`refs/heads/zero` is not a plain file"));
        std::fs::remove_file(git.join("refs/heads/zero")).unwrap();

        // A local remote is checked the same way before libgit2 opens it.
        sparse(&git.join("refs/heads/huge"));
        let checked = Checked::Local(repo.clone());
        match fetch_options(&w.grant, &checked, Instant::now() + std::time::Duration::from_secs(5)) {
            Err(GitError::Denied(why)) => assert!(why.contains("`refs/heads/huge` is not a plain file"), "{why}"),
            Err(other) => panic!("not a denial: {other:?}"),
            Ok(_) => panic!("a local remote with a huge ref was accepted"),
        }
    }

    /// An ordinary repository with many loose refs opens, and its refs resolve.
    #[test]
    fn many_loose_refs_are_fine() {
        let w = world();
        let path = w.root.join("site/many");
        let repo = Repository::init(&path).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.find_tree(repo.index().unwrap().write_tree().unwrap()).unwrap();
        let commit = repo.commit(Some("HEAD"), &signature, &signature, "one", &tree, &[]).unwrap();
        for i in 0..3_000 {
            repo.reference(&format!("refs/heads/topic/{}/b{i}", i % 50), commit, false, "").unwrap();
        }
        let opened = open_checked(&w.grant, &path, Access::Write).unwrap();
        assert_eq!(opened.refname_to_id("refs/heads/topic/7/b2957").unwrap(), commit);
    }

    /// Issue 16: repository internals that lead outside the grant are refused.
    #[test]
    fn internals_that_lead_outside_are_refused() {
        let w = world();
        let git = w.root.join("site/e/.git");
        std::fs::create_dir_all(git.join("refs")).unwrap();
        std::fs::create_dir_all(git.join("objects")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("commondir"), format!("{}/outside/repo/.git", w.root.display())).unwrap();
        assert!(denied(&w, "site/e", Access::Read).contains("its common directory is outside the grant"));

        let alt = w.root.join("site/alt");
        Repository::init(&alt).unwrap();
        std::fs::write(
            alt.join(".git/objects/info/alternates"),
            format!("{}/outside/repo/.git/objects\n", w.root.display()),
        )
        .unwrap();
        assert!(denied(&w, "site/alt", Access::Read).contains("an alternate object store is outside the grant"));

        let linked = w.root.join("site/linked");
        Repository::init(&linked).unwrap();
        std::fs::remove_dir_all(linked.join(".git/objects")).unwrap();
        std::os::unix::fs::symlink("../../../outside/repo/.git/objects", linked.join(".git/objects")).unwrap();
        assert!(denied(&w, "site/linked", Access::Read).contains("`objects` is a symbolic link"));

        // A work tree in a read-only grant is not a place git may write.
        let gd = w.root.join("site/gd");
        Repository::init_bare(&gd).unwrap();
        let config = gd.join("config");
        let text = std::fs::read_to_string(&config).unwrap().replace("bare = true", "bare = false");
        std::fs::write(&config, format!("{text}\tworktree = {}/ro\n", w.root.display())).unwrap();
        assert!(denied(&w, "site/gd", Access::Git).contains("its work tree is outside the grant"));
        // A checkout swapped for a link to a repository outside.
        std::fs::rename(w.root.join("site/plain"), w.root.join("site/plain.old")).unwrap();
        std::os::unix::fs::symlink("../outside/repo", w.root.join("site/plain")).unwrap();
        assert!(denied(&w, "site/plain", Access::Read).contains("denied: not inside a granted directory"));
        // Read grants are read-only for git too.
        Repository::init(w.root.join("ro/r")).unwrap_or_else(|_| panic!("setup"));
        assert!(denied(&w, "ro/r", Access::Git).contains("not inside a git-writable granted directory"));
        // A repository the plugin wrote, with its work tree in a git-only grant: it
        // could check another repository's `config` out over the real one.
        let wt = w.root.join("site/wt");
        Repository::init(&wt).unwrap();
        let config = wt.join(".git/config");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}\tworktree = {}/repos/checkout/.git\n", w.root.display())).unwrap();
        assert!(open_checked(&w.grant, &wt, Access::Read).is_ok(), "reading is harmless");
        assert!(denied(&w, "site/wt", Access::Git).contains("is not where it was opened"));
    }

    /// Issue 16: what libgit2 reads whole must be a plain file: a FIFO would hold the
    /// call forever, a sparse file of gigabytes would be read into memory.
    #[test]
    fn internals_that_are_not_plain_files_are_refused() {
        let w = world();
        let fifo = w.root.join("site/plain/.git/config");
        std::fs::remove_file(&fifo).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        assert!(denied(&w, "site/plain", Access::Read).contains("`config` is not a plain file"));
        std::fs::remove_file(&fifo).unwrap();
        std::fs::File::create(&fifo).unwrap().set_len(8 << 30).unwrap();
        assert!(
            denied(&w, "site/plain", Access::Read).contains("`config` is not a plain file of at most 1048576 bytes")
        );
    }

    /// Issue 22: `tags` lists lightweight and annotated tags (peeled to their commit,
    /// with message, tagger and date, a signature block cut off), sorted by name, and
    /// leaves out a tag of a tree.
    /// Issue 22 (no-Landlock race): without Landlock's file rules `archive` is refused,
    /// naming why; with any Landlock ABI it runs (confined).
    #[test]
    fn archive_is_refused_without_landlock_file_rules() {
        match archive_confinable(confine::Support::Unavailable) {
            Err(GitError::Denied(why)) => assert!(why.contains("no Landlock file rules"), "{why}"),
            other => panic!("without Landlock: {other:?}"),
        }
        for abi in [1, 4, 7] {
            assert!(archive_confinable(confine::Support::Landlock(abi)).is_ok(), "ABI {abi}");
        }
    }

    /// Issue 22: tags whose names are not UTF-8 are left out (shown lossily, two would
    /// read as one name); refs outside `refs/tags/` are not listed; a revision is
    /// peeled through at most [`MAX_TAG_CHAIN`] tags of tags.
    #[test]
    fn odd_tag_names_are_left_out_and_peeling_is_bounded() {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = tempfile::tempdir().unwrap();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::init(dir.path()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.find_tree(repo.treebuilder(None).unwrap().write().unwrap()).unwrap();
        let id = repo.commit(Some("HEAD"), &signature, &signature, "one", &tree, &[]).unwrap();
        repo.reference("refs/tags/v1", id, false, "").unwrap();
        repo.reference("refs/pull/1/head", id, false, "").unwrap();
        for odd in [&b"v1\xff"[..], b"v1\xfe"] {
            let path = dir.path().join(".git/refs/tags").join(std::ffi::OsStr::from_bytes(odd));
            std::fs::write(path, format!("{id}\n")).unwrap();
        }
        let listed = tags(&repo, Instant::now() + std::time::Duration::from_secs(30)).unwrap();
        let names: Vec<&str> = listed.iter().map(|tag| tag.name.as_str()).collect();
        assert_eq!(names, ["v1"]);

        let chain = tempfile::tempdir().unwrap();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::init(chain.path()).unwrap();
        let id = repo.commit(Some("HEAD"), &signature, &signature, "one", &tree_in(&repo), &[]).unwrap();
        let mut target = repo.find_object(id, None).unwrap();
        for depth in 1..=MAX_TAG_CHAIN + 1 {
            let tag = repo.tag(&format!("t{depth}"), &target, &signature, "nested", false).unwrap();
            target = repo.find_object(tag, None).unwrap();
        }
        assert_eq!(commit(&repo, &format!("t{MAX_TAG_CHAIN}")).unwrap().id(), id);
        match commit(&repo, &format!("t{}", MAX_TAG_CHAIN + 1)) {
            Err(GitError::Invalid(why)) => assert!(why.contains("more than 16 tags of tags"), "{why}"),
            other => panic!("a chain past the bound: {:?}", other.map(|commit| commit.id())),
        }
    }

    fn tree_in(repo: &Repository) -> git2::Tree<'_> {
        repo.find_tree(repo.treebuilder(None).unwrap().write().unwrap()).unwrap()
    }

    #[test]
    fn tags_are_listed_peeled_with_their_messages() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=Rel Ease", "-c", "user.email=rel@example.com"])
                .args(args)
                .current_dir(dir.path())
                .env("GIT_COMMITTER_DATE", "1700000000 +0000")
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        run(&["init", "-q", "-b", "main"]);
        run(&["commit", "-q", "--allow-empty", "-m", "one"]);
        let first = run(&["rev-parse", "HEAD"]);
        run(&["tag", "8.x-1.0"]);
        run(&["commit", "-q", "--allow-empty", "-m", "two"]);
        let second = run(&["rev-parse", "HEAD"]);
        let message =
            "Security update\n\nFixes SA-2026-001.\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        std::fs::write(dir.path().join("msg"), message).unwrap();
        run(&["tag", "-a", "-F", "msg", "8.x-1.1"]);
        run(&["tag", "-a", "-m", "nested", "8.x-1.1-again", "8.x-1.1"]);
        let tree = run(&["rev-parse", "HEAD^{tree}"]);
        run(&["tag", "a-tree", &tree]);
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(dir.path()).unwrap();
        let listed = tags(&repo, Instant::now() + std::time::Duration::from_secs(30)).unwrap();
        let names: Vec<&str> = listed.iter().map(|tag| tag.name.as_str()).collect();
        assert_eq!(names, ["8.x-1.0", "8.x-1.1", "8.x-1.1-again"]);
        let light = &listed[0];
        assert_eq!(
            (light.commit.as_str(), light.annotated, &light.message, &light.tagger),
            (first.as_str(), false, &None, &None)
        );
        assert_eq!((light.date, light.commit_date), (1_700_000_000, 1_700_000_000));
        let annotated = &listed[1];
        assert_eq!(annotated.commit, second);
        assert!(annotated.annotated);
        assert_eq!(annotated.message.as_deref(), Some("Security update\n\nFixes SA-2026-001."));
        assert_eq!(annotated.tagger.as_deref(), Some("Rel Ease <rel@example.com>"));
        assert_eq!(annotated.date, 1_700_000_000);
        let nested = &listed[2];
        assert_eq!((nested.commit.as_str(), nested.message.as_deref()), (second.as_str(), Some("nested")));
    }

    /// Issue 20: git cannot sign its requests, so a SigV4 credential is never silently
    /// left off a fetch; nor is a wildcard's token listed before it sent in its place
    /// (the most specific credential is the host's).
    #[test]
    fn git_to_a_host_with_a_sigv4_credential_is_refused() {
        let pattern = crate::grant::HostPattern::parse("s3.example.com").unwrap();
        let key = crate::grant::SigV4Key {
            access_key: crate::secret::Secret::new("AKID"),
            secret_key: crate::secret::Secret::new("the-secret"),
            region: "us-east-1".into(),
            service: "s3".into(),
            session_token: None,
        };
        let grant = Grant {
            hosts: vec![pattern.clone()],
            credentials: vec![
                crate::grant::HostCredential {
                    pattern: crate::grant::HostPattern::parse("*.example.com").unwrap(),
                    kind: Credential::Header {
                        name: "authorization".into(),
                        value: crate::secret::Secret::new("Bearer wildcard-token"),
                    },
                },
                crate::grant::HostCredential { pattern, kind: Credential::SigV4(key) },
            ],
            ..Grant::default()
        };
        let remote = Checked::Network(remote::NetworkRemote {
            url: "https://s3.example.com/repo.git".into(),
            scheme: "https",
            host: "s3.example.com".into(),
            port: 443,
        });
        match fetch_options(&grant, &remote, Instant::now()) {
            Err(GitError::Denied(why)) => {
                assert!(why.contains("is an AWS SigV4 key, and git cannot sign its requests"), "{why}");
                assert!(!why.contains("the-secret"), "{why}");
            }
            Err(other) => panic!("not a denial: {other:?}"),
            Ok(_) => panic!("a fetch without the credential"),
        }
    }
}
