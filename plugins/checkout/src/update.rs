//! The update itself: find the checkout, check the branch, fetch, reset, clean.

use crate::locate;
use gitauto_plugin::git::{GitError, Repository};
use gitauto_plugin::{Error, Event, Outcome, log};
use serde::Serialize;

/// Where checkouts are and how to update them.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Directory under which checkouts live, as `<repodir>/<owner>/<name>` or `<repodir>/<name>`.
    pub repodir: &'a str,
    /// Remote to fetch from.
    pub remote: &'a str,
    /// Remove untracked and ignored files after the reset (`git clean -xdf`).
    pub clean: bool,
}

/// A checkout brought up to date: what a step hands to later steps.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    /// The checkout's path.
    pub path: String,
    /// Its branch.
    pub branch: String,
    /// The commit before.
    pub old: Option<String>,
    /// The commit now.
    pub new: String,
    /// Whether it moved.
    pub updated: bool,
    /// Untracked paths removed.
    pub removed: Vec<String>,
    /// One line for people.
    #[serde(skip)]
    pub summary: String,
}

/// How an update ended, short of an error.
#[derive(Debug, Clone)]
pub enum Update {
    /// The checkout is at the branch's newest commit.
    Done(Updated),
    /// Nothing to do for this event (another branch, a tag, a deletion); why.
    Skipped(String),
    /// The checkout cannot follow the push (a detached HEAD); why.
    Failed(String),
}

impl Update {
    /// The step outcome for an update that is the whole step.
    pub fn into_outcome(self) -> Outcome {
        match self {
            Update::Done(updated) => Outcome::success(updated.summary.clone()).with_output(&updated),
            Update::Skipped(why) => Outcome::skipped(why),
            Update::Failed(why) => Outcome::failure(why),
        }
    }
}

/// A checkout the event's push is for: its path, the repository and its branch.
pub struct Checkout {
    /// Where it is.
    pub path: String,
    /// The open repository.
    pub repo: Repository,
    /// The branch it has checked out, which the event pushed.
    pub branch: String,
}

/// Finds the checkout of the event's repository under `options.repodir` and checks that
/// the event pushed the branch it has checked out; otherwise says why not (as the
/// [`Update`] to report).
pub fn find(event: &Event, options: Options<'_>) -> Result<Result<Checkout, Update>, Error> {
    let full_name = &event.repository.full_name;
    let Some(pushed) = event.branch.as_deref() else {
        return Ok(Err(Update::Skipped(format!("{} is not a branch push", describe_ref(event)))));
    };
    if event.deleted {
        return Ok(Err(Update::Skipped(format!("branch `{pushed}` of {full_name} was deleted"))));
    }

    let candidates = locate::candidates(options.repodir, &event.repository.owner, &event.repository.name)
        .map_err(|err| Error::failed(err.to_string()))?;
    let (path, repo) = open_first(&candidates)?.ok_or_else(|| {
        Error::failed(format!(
            "{full_name} is not cloned under {} (looked for {})",
            options.repodir,
            candidates.join(" and ")
        ))
    })?;

    let Some(checked_out) = repo.current_branch()? else {
        return Ok(Err(Update::Failed(format!("the checkout at {path} has a detached HEAD, so it follows no branch"))));
    };
    if checked_out != pushed {
        return Ok(Err(Update::Skipped(format!(
            "pushed branch `{pushed}` is not the branch `{checked_out}` checked out at {path}"
        ))));
    }

    Ok(Ok(Checkout { path, repo, branch: checked_out }))
}

/// Brings the checkout of the event's repository under `options.repodir` to the newest
/// commit of the pushed branch, when that branch is the one checked out.
pub fn update(event: &Event, options: Options<'_>) -> Result<Update, Error> {
    let Checkout { path, repo, branch: checked_out } = match find(event, options)? {
        Ok(checkout) => checkout,
        Err(not) => return Ok(not),
    };
    let old = repo.head()?;
    log::info(&format!("fetching {} into {path}", options.remote));
    repo.fetch(options.remote)?;
    let target = format!("refs/remotes/{}/{checked_out}", options.remote);
    let new = repo.reset_hard(&target)?;
    let removed = if options.clean { repo.clean()? } else { Vec::new() };
    if !removed.is_empty() {
        log::info(&format!("removed {} untracked path(s)", removed.len()));
    }
    if let Some(after) = event.after.as_deref()
        && !after.is_empty()
        && after != new
        && !after.chars().all(|c| c == '0')
    {
        log::info(&format!("{target} is at {new}; the event announced {after} (a newer push arrived since)"));
    }

    let updated = old.as_deref() != Some(new.as_str());
    let summary = if updated {
        format!("updated {path} from {} to {}", short(old.as_deref()), short(Some(&new)))
    } else {
        log::warn(&format!("{path} was already at {}: no updates", short(Some(&new))));
        format!("{path} already at {}", short(Some(&new)))
    };
    Ok(Update::Done(Updated { path, branch: checked_out, old, new, updated, removed, summary }))
}

/// Opens the first candidate that is a repository. A candidate that is absent is
/// passed over; any other error (a denied grant, a broken repository) stops the search.
fn open_first(candidates: &[String]) -> Result<Option<(String, Repository)>, Error> {
    for path in candidates {
        match Repository::open(path) {
            Ok(repo) => return Ok(Some((path.clone(), repo))),
            Err(GitError::NotFound(_)) => continue,
            Err(err) => return Err(Error::failed(format!("opening {path}: {}", err.message()))),
        }
    }
    Ok(None)
}

fn describe_ref(event: &Event) -> String {
    match (&event.tag, &event.git_ref) {
        (Some(tag), _) => format!("tag `{tag}`"),
        (None, Some(git_ref)) => format!("ref `{git_ref}`"),
        (None, None) => format!("a {} event", event.kind),
    }
}

fn short(commit: Option<&str>) -> &str {
    match commit {
        Some(id) => &id[..id.len().min(10)],
        None => "(no commit)",
    }
}
