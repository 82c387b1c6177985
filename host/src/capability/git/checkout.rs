//! The job checkout, filled by the host: a repository in the job's checkout directory
//! whose HEAD is detached at the event's commit (or at a merge of a pull request into
//! its target branch, made by the bounded merge [`super::merge`] owns, the one
//! `merge-check` uses), with `refs/gitauto/base` and `refs/gitauto/target` set. The
//! worker decides when to fill it and who sees it; this module only fills it.
//!
//! Filling goes through the same walls as a plugin's `clone`: the clone URL is read by
//! the one parser ([`remote`]) and must be allowed by the asking step's grant (its host
//! granted, or a local repository inside its directory grants), the only credential sent
//! is the one that grant gives for the host, and libgit2 runs on a thread that Landlock
//! confines to the checkout (writable) and the step's grants (read-only).

use super::merge::{self, Merged};
use super::{GitError, fetch_options, remote_rules, with_app_token};
use crate::capability::AppTokenError;
use crate::config::{Checkout, CheckoutMode};
use crate::confine::{self, Rules};
use crate::event::Event;
use crate::grant::remote::{self, Checked};
use crate::grant::{Access, DirGrant, Grant};
use git2::{AutotagOption, ErrorClass, ErrorCode, Oid, Repository};
use std::time::Instant;

/// Where the fetched event ref is kept while the checkout is filled.
const FETCHED: &str = "refs/gitauto/fetched";
/// What the event's changes are measured from.
pub const BASE: &str = "refs/gitauto/base";
/// A pull request's target branch's tip.
pub const TARGET: &str = "refs/gitauto/target";
/// Commits fetched at most while deepening a shallow fetch to find a merge base, past
/// which the whole history is fetched.
const DEEPEN_LIMIT: u32 = 1 << 16;

/// Why the checkout could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// It could not be filled; `retryable` when another attempt may succeed (the network
    /// or the deadline, not a refusal or a commit that is gone).
    #[error("{message}")]
    Failed {
        /// What went wrong, for the step's summary.
        message: String,
        /// Whether another attempt could succeed.
        retryable: bool,
    },
    /// `checkout = "merge"`: the pull request does not merge cleanly.
    #[error("the pull request does not merge cleanly into `{target}`: conflicts in {}", paths.join(", "))]
    Conflicts {
        /// The target branch.
        target: String,
        /// The conflicting paths.
        paths: Vec<String>,
    },
}

impl FillError {
    fn failed(message: impl Into<String>) -> Self {
        FillError::Failed { message: message.into(), retryable: false }
    }

    /// Whether another attempt could succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, FillError::Failed { retryable: true, .. })
    }
}

/// A libgit2 error while doing `what`: retryable only when the deadline passed.
fn git_failed(what: &str, err: &git2::Error, deadline: Instant) -> FillError {
    if Instant::now() >= deadline {
        return FillError::Failed { message: format!("{what}: the step's deadline passed"), retryable: true };
    }
    FillError::failed(format!("{what}: {}", err.message()))
}

/// A libgit2 error while fetching: retryable when the network failed (a refused or lost
/// connection, a server error), not when the kernel or the server refused.
fn fetch_failed(what: &str, err: &git2::Error, deadline: Instant) -> FillError {
    let failed = git_failed(what, err, deadline);
    let network =
        matches!(err.class(), ErrorClass::Net | ErrorClass::Http | ErrorClass::Ssl | ErrorClass::Ssh | ErrorClass::Os)
            && !err.message().contains("Permission denied")
            && err.code() != ErrorCode::Auth;
    match failed {
        FillError::Failed { message, retryable } => FillError::Failed { message, retryable: retryable || network },
        other => other,
    }
}

/// Checks that `grant` allows fetching from `url`, as a plugin's `clone` would be checked.
/// Resolves a host name (it must not lead to a private address): call it off the async
/// threads.
pub fn allowed(grant: &Grant, url: &str) -> Result<Checked, FillError> {
    if url.is_empty() {
        return Err(FillError::failed("the event names no clone URL to check out from"));
    }
    remote::parse(url)
        .and_then(|parsed| remote::check(grant, &parsed))
        .map_err(|denied| FillError::failed(format!("cloning {denied}")))
}

/// What the event asks to be checked out.
#[derive(Debug, Clone)]
struct Wanted {
    /// The event's ref (a branch, a tag, `refs/pull/N/head`), fetched first.
    git_ref: Option<String>,
    /// The commit HEAD is detached at (before a merge).
    commit: Oid,
    /// A push's previous commit.
    before: Option<Oid>,
    /// A pull request's target branch.
    target: Option<String>,
}

fn oid(text: &str, what: &str) -> Result<Oid, FillError> {
    Oid::from_str(text)
        .ok()
        .filter(|oid| matches!(text.len(), 40 | 64) && !oid.is_zero())
        .ok_or_else(|| FillError::failed(format!("the event's {what} `{text}` is not a commit id")))
}

fn is_zero(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b == b'0')
}

/// Reads from the event what to fetch and check out.
fn wanted(event: &Event, mode: CheckoutMode) -> Result<Wanted, FillError> {
    let shown_ref = event.git_ref.as_deref().unwrap_or("the ref");
    if let Some(pr) = &event.pull_request {
        let head = if pr.head.is_empty() { event.after.as_deref().unwrap_or_default() } else { pr.head.as_str() };
        if head.is_empty() {
            return Err(FillError::failed("the pull request event names no head commit to check out"));
        }
        if pr.target_branch.is_empty() {
            return Err(FillError::failed("the pull request event names no target branch"));
        }
        return Ok(Wanted {
            git_ref: event.git_ref.clone(),
            commit: oid(head, "pull request head")?,
            before: None,
            target: Some(pr.target_branch.clone()),
        });
    }
    if mode == CheckoutMode::Merge {
        return Err(FillError::failed(format!(
            "`checkout = \"merge\"` needs a pull request event, and this is a `{}` event",
            event.kind
        )));
    }
    let after = event.after.as_deref().unwrap_or_default();
    if event.deleted || is_zero(after) {
        return Err(FillError::failed(format!("the push deleted {shown_ref}: there is no commit to check out")));
    }
    if after.is_empty() {
        return Err(FillError::failed(format!("the `{}` event names no commit to check out", event.kind)));
    }
    let before = event.before.as_deref().filter(|before| !before.is_empty() && !is_zero(before));
    Ok(Wanted {
        git_ref: event.git_ref.clone(),
        commit: oid(after, "commit")?,
        before: before.and_then(|before| Oid::from_str(before).ok()),
        target: None,
    })
}

/// What a filled checkout holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The commit HEAD is detached at.
    pub head: String,
    /// `refs/gitauto/base`, when it was set.
    pub base: Option<String>,
}

/// Fills the empty directory `dir` (pinned, the job's checkout) with `event`'s commit,
/// fetched from the event's clone URL as `grant` (the asking step's) allows, before
/// `deadline`; a `github-app` credential for the clone host gets its token from `app`
/// (the job's). Blocks: call it from a blocking thread inside the tokio runtime.
pub fn fill(
    event: &Event,
    grant: &Grant,
    dir: &DirGrant,
    checkout: Checkout,
    deadline: Instant,
    app: Option<&crate::forge_api::AppAccess>,
) -> Result<Filled, FillError> {
    let url = event.repository.clone_url.clone();
    let checked = allowed(grant, &url)?;
    let minted = with_app_token(grant, &checked, |pattern, to, permissions| {
        crate::capability::app_token(app, deadline, pattern, to, permissions)
    })
    .map_err(|err| match err {
        AppTokenError::Denied(why) => FillError::failed(why),
        AppTokenError::Unavailable(why) => FillError::Failed { message: why, retryable: true },
    })?;
    let grant = minted.as_ref().unwrap_or(grant);
    let wanted = wanted(event, checkout.mode)?;
    let target = dir.canonical().map(std::path::Path::to_path_buf).ok_or_else(|| {
        FillError::failed(format!("the checkout directory {} could not be opened", dir.path.display()))
    })?;
    // The step's grants read-only, the checkout writable: nothing else.
    let limits = Grant {
        dirs: grant
            .dirs
            .iter()
            .map(|granted| DirGrant { access: Access::Read, ..granted.clone() })
            .chain([dir.clone()])
            .collect(),
        ..Grant::default()
    };
    let rules = remote_rules(Rules::grant(&limits, Access::Git), &checked, false);
    let grant = grant.clone();
    crate::gitwalk::configure_libgit2();
    if Instant::now() >= deadline {
        return Err(FillError::Failed { message: "the step's deadline passed".into(), retryable: true });
    }
    match confine::run(rules, Some(deadline), move || {
        let filler = Filler { grant, checked, url, depth: checkout.depth, deadline };
        filler.fill(&target, &wanted, checkout.mode)
    }) {
        Ok(result) => result,
        Err(confine::RunError::Deadline) => {
            Err(FillError::Failed { message: "the step's deadline passed".into(), retryable: true })
        }
        Err(err) => Err(FillError::failed(err.to_string())),
    }
}

/// What every fetch of one filling shares.
struct Filler {
    grant: Grant,
    checked: Checked,
    url: String,
    depth: u32,
    deadline: Instant,
}

impl Filler {
    fn fill(&self, dir: &std::path::Path, wanted: &Wanted, mode: CheckoutMode) -> Result<Filled, FillError> {
        let repo = Repository::init(dir).map_err(|err| git_failed("creating the checkout", &err, self.deadline))?;
        repo.remote("origin", &self.checked.for_git())
            .map_err(|err| git_failed("recording the remote `origin`", &err, self.deadline))?;
        let target_spec = wanted.target.as_ref().map(|branch| format!("+refs/heads/{branch}:{TARGET}"));
        let mut specs: Vec<String> = wanted.git_ref.iter().map(|git_ref| format!("+{git_ref}:{FETCHED}")).collect();
        specs.extend(target_spec.clone());
        self.fetch(&repo, &specs, self.depth)?;
        // The ref may have moved on (or be gone) since the event: then the commit itself.
        // A tag's event may name the tag object: what is checked out is its commit.
        let mut head_spec = wanted.git_ref.as_ref().map(|git_ref| format!("+{git_ref}:{FETCHED}"));
        let commit = match peeled(&repo, wanted.commit) {
            Some(commit) => commit,
            None => {
                let by_id = format!("+{}:{FETCHED}", wanted.commit);
                let fetched = self.fetch(&repo, std::slice::from_ref(&by_id), self.depth);
                // The server answered the first fetch: a refusal now is of the commit
                // (unreachable, "not our ref"), not of the network.
                if let Err(err) = &fetched
                    && Instant::now() >= self.deadline
                {
                    return Err(err.clone());
                }
                let Some(commit) = peeled(&repo, wanted.commit) else {
                    let now = repo.refname_to_id(FETCHED).map(|tip| format!(", and it now points at {tip}")).ok();
                    let why = fetched.err().map(|err| format!(": {err}")).unwrap_or_default();
                    return Err(FillError::failed(format!(
                        "commit {} is gone from {}: {} no longer leads to it{}, and it could not be fetched by id{why}",
                        wanted.commit,
                        self.url,
                        wanted.git_ref.as_deref().unwrap_or("the event's ref"),
                        now.unwrap_or_default(),
                    )));
                };
                head_spec = Some(by_id);
                commit
            }
        };
        let mut head = commit;
        if let Some(branch) = &wanted.target {
            let tip = repo.refname_to_id(TARGET).map_err(|_| {
                FillError::failed(format!("the target branch `{branch}` is not on {} (was it deleted?)", self.url))
            })?;
            let respec: Vec<String> = head_spec.iter().cloned().chain(target_spec).collect();
            let merge_base = self.merge_base(&repo, commit, tip, &respec)?;
            if mode == CheckoutMode::Merge {
                head = merged(&repo, commit, tip, branch, self.deadline)?;
                set_ref(&repo, BASE, tip)?;
            } else if let Some(base) = merge_base {
                set_ref(&repo, BASE, base)?;
            }
        } else if let Some(before) = wanted.before.filter(|before| *before != commit) {
            // What the push is measured from, when it can still be had.
            if repo.find_commit(before).is_err() {
                let _ = self.fetch(&repo, &[format!("+{before}:{BASE}")], self.depth);
            }
            if repo.find_commit(before).is_ok() {
                set_ref(&repo, BASE, before)?;
            }
        }
        let _ = repo.find_reference(FETCHED).and_then(|mut fetched| fetched.delete());
        self.check_out(&repo, head)?;
        let base = repo.refname_to_id(BASE).ok().map(|base| base.to_string());
        Ok(Filled { head: head.to_string(), base })
    }

    /// Fetches `specs` from the remote, `depth` commits deep (0: all). libgit2's local
    /// transport cannot fetch shallow: a local repository is fetched whole.
    fn fetch(&self, repo: &Repository, specs: &[String], depth: u32) -> Result<(), FillError> {
        let what = format!("fetching {} from {}", specs.join(" "), self.url);
        let mut options = fetch_options(&self.grant, &self.checked, self.deadline)
            .map_err(|err| FillError::failed(format!("{what}: {}", describe(&err))))?;
        options.download_tags(AutotagOption::None);
        if depth > 0 && matches!(self.checked, Checked::Network(_)) {
            options.depth(i32::try_from(depth).unwrap_or(i32::MAX));
        }
        let mut remote =
            repo.remote_anonymous(&self.checked.for_git()).map_err(|err| git_failed(&what, &err, self.deadline))?;
        remote.fetch(specs, Some(&mut options), None).map_err(|err| fetch_failed(&what, &err, self.deadline))
    }

    /// The merge base of a pull request's head and its target's tip, deepening a shallow
    /// fetch of both (`specs`) until there is one or the whole history is here. `None`
    /// when the two share no history.
    fn merge_base(&self, repo: &Repository, head: Oid, tip: Oid, specs: &[String]) -> Result<Option<Oid>, FillError> {
        let mut depth = self.depth;
        loop {
            match repo.merge_base(head, tip) {
                Ok(base) => return Ok(Some(base)),
                Err(err) if err.code() == ErrorCode::NotFound => {}
                Err(err) => return Err(git_failed("finding the merge base", &err, self.deadline)),
            }
            if depth == 0 || !repo.is_shallow() {
                return Ok(None);
            }
            depth = if depth >= DEEPEN_LIMIT { 0 } else { depth.saturating_mul(4).max(16) };
            // Depth 0 to libgit2 means "as deep as it is"; the whole history is asked
            // for as the largest depth.
            self.fetch(repo, specs, if depth == 0 { i32::MAX as u32 } else { depth })?;
        }
    }

    /// Detaches HEAD at `commit` and writes its files, once its tree is counted.
    fn check_out(&self, repo: &Repository, commit: Oid) -> Result<(), FillError> {
        let commit = repo.find_commit(commit).map_err(|err| git_failed("reading the commit", &err, self.deadline))?;
        super::check_out(repo, &commit, self.deadline, "the checked-out commit").map_err(|err| {
            if Instant::now() >= self.deadline {
                FillError::Failed { message: "checking out: the step's deadline passed".into(), retryable: true }
            } else {
                FillError::failed(describe(&err))
            }
        })?;
        repo.set_head_detached(commit.id()).map_err(|err| git_failed("detaching HEAD", &err, self.deadline))
    }
}

/// A git capability error as one line.
fn describe(err: &GitError) -> String {
    match err {
        GitError::Denied(message) => format!("denied: {message}"),
        GitError::NotFound(message) | GitError::Invalid(message) | GitError::Failed(message) => message.clone(),
    }
}

/// The commit `oid` is or (a tag) points at, when the repository has it.
fn peeled(repo: &Repository, oid: Oid) -> Option<Oid> {
    repo.find_object(oid, None).ok()?.peel_to_commit().ok().map(|commit| commit.id())
}

/// Sets `name` to `oid`.
fn set_ref(repo: &Repository, name: &str, oid: Oid) -> Result<(), FillError> {
    repo.reference(name, oid, true, "gitauto checkout")
        .map(drop)
        .map_err(|err| FillError::failed(format!("setting {name}: {}", err.message())))
}

/// A merge commit of `head` into `tip` (the target branch), through the same bounded
/// merge as `merge-check` (trees counted, bytes and lines of what is merged bounded,
/// before libgit2 merges), written into the checkout's repository; its conflicts, if any.
fn merged(repo: &Repository, head: Oid, tip: Oid, branch: &str, deadline: Instant) -> Result<Oid, FillError> {
    let failed = |what: &str, err: git2::Error| FillError::failed(format!("{what}: {}", err.message()));
    let head = repo.find_commit(head).map_err(|err| failed("reading the head", err))?;
    let tip = repo.find_commit(tip).map_err(|err| failed("reading the target", err))?;
    let what = format!("merging the pull request into `{branch}`");
    let refused = |err: GitError| FillError::Failed {
        message: describe(&err),
        // A refusal stays one; only a merge the deadline cut short may fare better.
        retryable: matches!(err, GitError::Failed(_)) && Instant::now() >= deadline,
    };
    let tree = match merge::merge(repo, &tip, &head, deadline, &what).map_err(refused)? {
        Merged::Contained(commit) => {
            repo.find_commit(commit).map_err(|err| failed("reading the merged commit", err))?.tree_id()
        }
        Merged::Index(mut index) => {
            if index.has_conflicts() {
                let mut paths: Vec<String> = index
                    .conflicts()
                    .map_err(|err| failed("listing conflicts", err))?
                    .filter_map(Result::ok)
                    .filter_map(|conflict| conflict.our.or(conflict.their).or(conflict.ancestor))
                    .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
                    .collect();
                paths.sort();
                paths.dedup();
                return Err(FillError::Conflicts { target: branch.to_owned(), paths });
            }
            index.write_tree_to(repo).map_err(|err| failed("writing the merged tree", err))?
        }
    };
    let tree = repo.find_tree(tree).map_err(|err| failed("reading the merged tree", err))?;
    // The same merge of the same commits is the same commit, whenever it is made.
    let when = git2::Time::new(head.committer().when().seconds().max(tip.committer().when().seconds()), 0);
    let signature =
        git2::Signature::new("gitauto", "gitauto@localhost", &when).map_err(|err| failed("signing the merge", err))?;
    let message = format!("Merge {} into {branch}\n", head.id());
    repo.commit(None, &signature, &signature, &message, &tree, &[&tip, &head])
        .map_err(|err| failed("writing the merge commit", err))
}
