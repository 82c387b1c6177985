//! The paths an event changed, for `paths` / `paths_ignore`.
//!
//! From the payload when the forge listed every commit with its paths; otherwise from a
//! local clone of the repository inside a directory some plugin is granted, when that
//! clone already has both commits; otherwise unknown, with the reason.

use crate::confine::{self, Rules};
use crate::event::{Event, is_null_commit};
use crate::grant::{Access, DirGrant, Grant};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What is known about an event's changed paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedPaths {
    /// Every changed path.
    Known(Vec<String>),
    /// Path filters do not apply to this event (a tag: as in GitHub Actions).
    NotApplicable(String),
    /// They could not be worked out; why.
    Unknown(String),
}

/// The changed paths of `event`, looking for clones in the granted `dirs` when the
/// payload is not enough. The clones are read on a thread the kernel confines to those
/// directories, read-only, for at most a few seconds: a plugin may have planted
/// anything there.
pub fn changed_paths(event: &Event, dirs: &[DirGrant]) -> ChangedPaths {
    let (before, after) = match from_payload(event) {
        Ok(commits) => commits,
        Err(decided) => return decided,
    };
    let roots: Vec<PathBuf> = dirs.iter().filter_map(|dir| dir.canonical().map(Path::to_path_buf)).collect();
    let candidates = candidates(event, &roots);
    let grant = Grant { dirs: dirs.to_vec(), ..Grant::default() };
    let (old, new) = (before.to_owned(), after.to_owned());
    // This waits on the thread that routes (a blocking one: the ingest pipeline routes off
    // the async threads) for at most DIFF_TIME. Diffs that outlived their time still hold
    // a thread: past a few, no new one starts.
    let Some(slot) = DiffSlot::take() else {
        return ChangedPaths::Unknown("too many changed-path computations are still running".into());
    };
    let found =
        confine::run(Rules::grant(&grant, Access::Read), Some(std::time::Instant::now() + DIFF_TIME), move || {
            let _slot = slot;
            candidates.iter().find_map(|dir| diff_in(dir, &old, &new))
        });
    match found {
        Ok(Some(paths)) => return ChangedPaths::Known(paths),
        Ok(None) => {}
        Err(err) => return ChangedPaths::Unknown(format!("working out the changed paths: {err}")),
    }
    ChangedPaths::Unknown(format!(
        "the payload lists no paths, and no clone of {} in a granted directory has both {} and {}",
        event.repository.full_name,
        short(before),
        short(after)
    ))
}

/// Whether working out `event`'s changed paths may read a clone (a blocking, confined
/// diff), rather than the payload alone.
pub fn needs_clone(event: &Event) -> bool {
    from_payload(event).is_ok()
}

/// What the payload alone says of `event`'s changed paths (`Err`), or the two commits a
/// clone must be asked to compare.
fn from_payload(event: &Event) -> Result<(&str, &str), ChangedPaths> {
    if event.tag.is_some() {
        return Err(ChangedPaths::NotApplicable("path filters do not apply to tags".into()));
    }
    if event.kind != "push" {
        return Err(ChangedPaths::Unknown(format!("a `{}` event lists no changed paths", event.kind)));
    }
    if event.commits_complete && !event.commits.is_empty() {
        let mut paths = BTreeSet::new();
        for commit in &event.commits {
            paths.extend(commit.added.iter().chain(&commit.modified).chain(&commit.removed).cloned());
        }
        return Err(ChangedPaths::Known(paths.into_iter().collect()));
    }
    let (Some(before), Some(after)) = (event.before.as_deref(), event.after.as_deref()) else {
        return Err(ChangedPaths::Unknown("the payload names no commits".into()));
    };
    if is_null_commit(after) {
        return Err(ChangedPaths::Unknown("the ref was deleted".into()));
    }
    if is_null_commit(before) {
        return Err(ChangedPaths::Unknown(
            "a new ref: the payload lists no paths and there is no earlier commit to compare".into(),
        ));
    }
    Ok((before, after))
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Where a clone of the event's repository may be: each granted directory itself, and
/// `DIR/NAME` and `DIR/OWNER/NAME` (the layouts `fetch-update` uses). Names that could
/// leave the directory are not tried.
fn candidates(event: &Event, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let safe = |part: &str| crate::event::names::component(part).is_ok();
    let repository = &event.repository;
    let mut out = Vec::new();
    for dir in dirs {
        out.push(dir.clone());
        if safe(&repository.name) {
            out.push(dir.join(&repository.name));
            if repository.owner.split('/').all(safe) {
                out.push(dir.join(&repository.owner).join(&repository.name));
            }
        }
    }
    out
}

/// Router diffs running at most at once (including those past their time).
const DIFF_SLOTS: usize = 4;

/// One of the [`DIFF_SLOTS`], given back when dropped (by the diff's own thread).
struct DiffSlot;

static DIFFS_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl DiffSlot {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering;
        let taken = DIFFS_RUNNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| (running < DIFF_SLOTS).then_some(running + 1));
        taken.is_ok().then_some(DiffSlot)
    }
}

impl Drop for DiffSlot {
    fn drop(&mut self) {
        DIFFS_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// How far the router's diff may go for one event: it runs while the delivery is being
/// accepted, so a pushed tree bomb must cost little. Past it, the paths are unknown.
const DIFF_ENTRIES: usize = 100_000;
const DIFF_PATH_BYTES: usize = 16 << 20;
const DIFF_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// The paths that differ between two commits of the repository at `dir`, when it has
/// both and the difference fits the router's budget.
#[allow(clippy::disallowed_methods, reason = "runs on the thread confine::run starts for it")]
fn diff_in(dir: &Path, before: &str, after: &str) -> Option<Vec<String>> {
    crate::gitwalk::configure_libgit2();
    if let Err(why) = crate::gitwalk::check_repository(dir) {
        tracing::warn!(dir = %dir.display(), "changed paths not worked out: the repository: {why}");
        return None;
    }
    let repo =
        git2::Repository::open_ext(dir, git2::RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&str>()).ok()?;
    let tree = |id: &str| -> Option<git2::Tree<'_>> {
        let oid = git2::Oid::from_str(id).ok()?;
        repo.find_commit(oid).ok()?.tree().ok()
    };
    let (old, new) = (tree(before)?, tree(after)?);
    let budget = crate::gitwalk::Budget {
        entries: DIFF_ENTRIES,
        path_bytes: DIFF_PATH_BYTES,
        deadline: std::time::Instant::now() + DIFF_TIME,
    };
    let changes = match crate::gitwalk::diff(&repo, Some(&old), Some(&new), budget) {
        Ok(changes) => changes,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), "changed paths not worked out: {err}");
            return None;
        }
    };
    Some(changes.into_iter().map(|(path, _)| path).collect::<BTreeSet<_>>().into_iter().collect())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
mod tests {
    use super::*;
    use crate::event::Repository;

    /// Commits `files` (path, content) on top of HEAD; returns the commit id.
    fn commit(repo: &git2::Repository, files: &[(&str, &str)]) -> String {
        let workdir = repo.workdir().unwrap().to_path_buf();
        let mut index = repo.index().unwrap();
        for (path, content) in files {
            let full = workdir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            index.add_path(Path::new(path)).unwrap();
        }
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(Some("HEAD"), &signature, &signature, "c", &tree, &parents).unwrap().to_string()
    }

    fn push(before: &str, after: &str) -> Event {
        Event {
            kind: "push".into(),
            repository: Repository {
                owner: "acme".into(),
                name: "site".into(),
                full_name: "acme/site".into(),
                ..Default::default()
            },
            git_ref: Some("refs/heads/main".into()),
            branch: Some("main".into()),
            before: Some(before.into()),
            after: Some(after.into()),
            commits_complete: false,
            ..Event::default()
        }
    }

    #[test]
    fn paths_come_from_a_granted_clone_when_the_payload_has_none() {
        let granted = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(granted.path().join("acme/site")).unwrap();
        let before = commit(&repo, &[("README.md", "a"), ("docs/x.md", "x")]);
        let after = commit(&repo, &[("docs/x.md", "y"), ("src/new.rs", "fn main() {}")]);
        let dirs = vec![DirGrant::new(granted.path().to_path_buf(), Access::Read)];
        assert_eq!(
            changed_paths(&push(&before, &after), &dirs),
            ChangedPaths::Known(vec!["docs/x.md".into(), "src/new.rs".into()])
        );
        // A clone that lacks the pushed commit (not fetched yet) cannot say.
        let unknown = "f".repeat(40);
        assert!(
            matches!(changed_paths(&push(&before, &unknown), &dirs), ChangedPaths::Unknown(why) if why.contains("no clone of acme/site"))
        );
        // Nor can anything outside the granted directories.
        assert!(matches!(changed_paths(&push(&before, &after), &[]), ChangedPaths::Unknown(_)));
    }

    /// Issue 16: a pushed tree bomb costs the router a bounded walk, not the daemon.
    #[test]
    fn a_tree_bomb_leaves_the_paths_unknown() {
        let granted = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(granted.path().join("acme/site")).unwrap();
        let before = commit(&repo, &[("README.md", "a")]);
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.find_commit(git2::Oid::from_str(&before).unwrap()).unwrap();
        let bomb = crate::gitwalk::tests::bomb(&repo, 10, 8);
        let after = repo.commit(None, &signature, &signature, "bomb", &bomb, &[&parent]).unwrap().to_string();
        let dirs = vec![DirGrant::new(granted.path().to_path_buf(), Access::Read)];
        assert!(matches!(
            changed_paths(&push(&before, &after), &dirs),
            ChangedPaths::Unknown(why) if why.contains("no clone of acme/site")
        ));
    }

    #[test]
    fn tags_new_refs_and_deletions() {
        let mut tag = push("1", "2");
        tag.tag = Some("v1".into());
        assert_eq!(changed_paths(&tag, &[]), ChangedPaths::NotApplicable("path filters do not apply to tags".into()));
        let zero = "0".repeat(40);
        assert!(
            matches!(changed_paths(&push(&zero, "2"), &[]), ChangedPaths::Unknown(why) if why.starts_with("a new ref"))
        );
        assert_eq!(changed_paths(&push("1", &zero), &[]), ChangedPaths::Unknown("the ref was deleted".into()));
    }
}
