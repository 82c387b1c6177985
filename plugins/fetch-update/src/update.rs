//! The update itself: find the checkout, check the branch, fetch, reset, clean.

use crate::Settings;
use crate::locate;
use gitauto_plugin::git::{GitError, Repository};
use gitauto_plugin::{Error, Event, Outcome, log};
use serde::Serialize;

/// What the step hands to later steps.
#[derive(Debug, Serialize)]
struct Output<'a> {
    path: &'a str,
    branch: &'a str,
    old: Option<&'a str>,
    new: &'a str,
    updated: bool,
    removed: &'a [String],
}

pub fn run(event: &Event, settings: &Settings) -> Result<Outcome, Error> {
    let full_name = &event.repository.full_name;
    let Some(pushed) = event.branch.as_deref() else {
        return Ok(Outcome::skipped(format!("{} is not a branch push", describe_ref(event))));
    };
    if event.deleted {
        return Ok(Outcome::skipped(format!("branch `{pushed}` of {full_name} was deleted")));
    }

    let candidates = locate::candidates(&settings.repodir, &event.repository.owner, &event.repository.name)
        .map_err(|err| Error::failed(err.to_string()))?;
    let (path, repo) = open_first(&candidates)?.ok_or_else(|| {
        Error::failed(format!(
            "{full_name} is not cloned under {} (looked for {})",
            settings.repodir,
            candidates.join(" and ")
        ))
    })?;

    let Some(checked_out) = repo.current_branch()? else {
        return Ok(Outcome::failure(format!("the checkout at {path} has a detached HEAD, so it follows no branch")));
    };
    if checked_out != pushed {
        return Ok(Outcome::skipped(format!(
            "pushed branch `{pushed}` is not the branch `{checked_out}` checked out at {path}"
        )));
    }

    let old = repo.head()?;
    log::info(&format!("fetching {} into {path}", settings.remote));
    repo.fetch(&settings.remote)?;
    let target = format!("refs/remotes/{}/{checked_out}", settings.remote);
    let new = repo.reset_hard(&target)?;
    let removed = if settings.clean { repo.clean()? } else { Vec::new() };
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
    let output =
        Output { path: &path, branch: &checked_out, old: old.as_deref(), new: &new, updated, removed: &removed };
    Ok(Outcome::success(summary).with_output(&output))
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
