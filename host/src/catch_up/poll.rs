//! Ref polling, for forges with no API that lists what their hooks delivered: list a
//! repository's branches and tags (as `git ls-remote` does), compare them with what the
//! previous poll saw (kept in the queue, so every daemon sharing it agrees), and make a
//! push event for each ref that moved with no delivery for the move. A repository's first
//! poll only records what it sees.
//!
//! The remote is the administrator's (`clone_url` in the config), so only its shape is
//! checked (`grant::remote`: https, http or a local repository); no
//! credentials are offered, and libgit2's network timeouts bound each call.

use crate::config::{Poll, PolledRepo};
use crate::event::is_null_commit;
use crate::grant::remote;
use crate::ingest::{Input, Pipeline};
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long listing one repository's refs may take, connection included.
const LIST_TIME: Duration = Duration::from_secs(90);
/// The commit id git writes for "no commit" (a created or deleted ref's other side).
const NULL_COMMIT: &str = "0000000000000000000000000000000000000000";

/// A ref that moved between two polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The full ref name.
    pub git_ref: String,
    /// Where it was ([`NULL_COMMIT`] for a new ref).
    pub before: String,
    /// Where it is ([`NULL_COMMIT`] for a deleted ref).
    pub after: String,
}

/// One polling pass over `poll`'s repositories for `source`.
pub async fn poll(pipeline: &Pipeline, source: &str, poll: &Poll) {
    for repo in &poll.repos {
        if let Err(err) = poll_repo(pipeline, source, repo).await {
            // One repository failing leaves the others to go on.
            tracing::warn!(%source, repo = %repo.repo, url = %repo.url, "polling refs: {err:#}");
        }
    }
}

async fn poll_repo(pipeline: &Pipeline, source: &str, repo: &PolledRepo) -> anyhow::Result<()> {
    let queue = pipeline.queue();
    // Taken before listing: a delivery recorded from here on is looked at by the next poll too.
    let mark = queue.newest_delivery_seq().await?;
    let refs = list_refs(&repo.url).await?;
    let Some(previous) = queue.polled(source.to_owned(), repo.repo.clone()).await? else {
        tracing::info!(%source, repo = %repo.repo, refs = refs.len(), "first poll: the refs are recorded, no events made");
        return queue.record_poll(source.to_owned(), repo.repo.clone(), refs, mark).await;
    };
    for moved in moves(&previous.refs, &refs) {
        let delivered = queue
            .delivered(
                source.to_owned(),
                repo.repo.clone(),
                moved.git_ref.clone(),
                moved.after.clone(),
                previous.delivery_seq,
            )
            .await?;
        if delivered {
            tracing::debug!(%source, repo = %repo.repo, git_ref = %moved.git_ref, "polled move came as a delivery");
            continue;
        }
        let input = Input::poll(
            source,
            &repo.repo,
            &clone_url(&repo.url),
            &moved.git_ref,
            (&moved.before, &moved.after),
            previous.polled_at,
        );
        // A failure leaves the previous refs recorded: the next poll makes the event again
        // (with the same delivery id, so one already recorded is a duplicate).
        let ingested =
            pipeline.ingest(input).await.with_context(|| format!("ingesting the move of {}", moved.git_ref))?;
        tracing::info!(
            %source,
            repo = %repo.repo,
            git_ref = %moved.git_ref,
            before = %moved.before,
            after = %moved.after,
            delivery = %ingested.delivery,
            jobs = ?ingested.jobs,
            "a ref moved without a delivery"
        );
    }
    queue.record_poll(source.to_owned(), repo.repo.clone(), refs, mark).await
}

/// The URL events name a repository by: a local path as a `file://` URL (events carry
/// URLs; a bare path is refused as a clone URL).
fn clone_url(url: &str) -> String {
    match url.starts_with('/').then(|| url::Url::from_file_path(url).ok()).flatten() {
        Some(file) => file.into(),
        None => url.to_owned(),
    }
}

/// The refs that differ between `before` and `after`, by name.
pub fn moves(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<Move> {
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (before.get(name), after.get(name));
            (old != new).then(|| Move {
                git_ref: name.clone(),
                before: old.cloned().unwrap_or_else(|| NULL_COMMIT.to_owned()),
                after: new.cloned().unwrap_or_else(|| NULL_COMMIT.to_owned()),
            })
        })
        .filter(|moved| !(is_null_commit(&moved.before) && is_null_commit(&moved.after)))
        .collect()
}

/// The branches and tags of the remote at `url`, each with the object it points at (a
/// tag's own object for an annotated tag, as a push reports it).
pub async fn list_refs(url: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let target = url.to_owned();
    // Resolving a local remote reads the disk, and libgit2 blocks: both off the async threads.
    let listing = tokio::task::spawn_blocking(move || {
        let checked = remote::parse(&target).and_then(|parsed| remote::trusted(&parsed)).map_err(|denied| {
            anyhow::anyhow!("{}; `clone_url` must be an https or http URL, or a local repository", denied.0)
        })?;
        ls_remote(&checked.for_git())
    });
    match tokio::time::timeout(LIST_TIME, listing).await {
        Ok(listed) => {
            listed.context("listing refs stopped unexpectedly")?.with_context(|| format!("listing the refs of {url}"))
        }
        // The thread is left to libgit2's own network timeouts.
        Err(_) => anyhow::bail!("listing the refs of {url} took longer than {LIST_TIME:?}"),
    }
}

fn ls_remote(target: &str) -> anyhow::Result<BTreeMap<String, String>> {
    crate::gitwalk::configure_libgit2();
    let mut remote = git2::Remote::create_detached(target)?;
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.credentials(|_, _, _| {
        Err(git2::Error::from_str("the remote asked for credentials; polling offers none (use a URL readable without)"))
    });
    let connection = remote.connect_auth(git2::Direction::Fetch, Some(callbacks), Some(git2::ProxyOptions::new()))?;
    let mut refs = BTreeMap::new();
    for head in connection.list()? {
        let name = head.name();
        if (name.starts_with("refs/heads/") || name.starts_with("refs/tags/")) && !name.ends_with("^{}") {
            refs.insert(name.to_owned(), head.oid().to_string());
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, id)| ((*name).to_owned(), (*id).to_owned())).collect()
    }

    #[test]
    fn moved_created_and_deleted_refs_are_moves_and_unchanged_ones_are_not() {
        let before = refs(&[("refs/heads/main", "a"), ("refs/heads/old", "b"), ("refs/tags/v1", "c")]);
        let after = refs(&[("refs/heads/main", "d"), ("refs/heads/new", "e"), ("refs/tags/v1", "c")]);
        let found = moves(&before, &after);
        let shown: Vec<(&str, &str, &str)> =
            found.iter().map(|m| (m.git_ref.as_str(), m.before.as_str(), m.after.as_str())).collect();
        assert_eq!(
            shown,
            [("refs/heads/main", "a", "d"), ("refs/heads/new", NULL_COMMIT, "e"), ("refs/heads/old", "b", NULL_COMMIT)]
        );
        assert!(moves(&after, &after).is_empty());
    }

    /// A bare repository with `main` and an annotated tag `v1` on its one commit; returns it
    /// with the commit's and the tag object's ids.
    #[allow(clippy::disallowed_methods, reason = "runs inside spawn_blocking")]
    fn bare_repository() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let who = git2::Signature::now("t", "t@example.com").unwrap();
        let commit = repo.commit(Some("refs/heads/main"), &who, &who, "first", &tree, &[]).unwrap();
        let object = repo.find_object(commit, None).unwrap();
        let tag = repo.tag("v1", &object, &who, "annotated", false).unwrap();
        (dir, commit.to_string(), tag.to_string())
    }

    #[tokio::test]
    async fn refs_are_listed_from_a_local_repository_and_odd_schemes_are_refused() {
        let (dir, commit, tag) = tokio::task::spawn_blocking(bare_repository).await.unwrap();
        let listed = list_refs(&dir.path().display().to_string()).await.unwrap();
        assert_eq!(listed, refs(&[("refs/heads/main", &commit), ("refs/tags/v1", &tag)]), "a tag's own object");
        for bad in ["git://example.com/a.git", "ext::sh -c touch% /tmp/x", "https://user:pw@example.com/a.git"] {
            let err = format!("{:#}", list_refs(bad).await.unwrap_err());
            assert!(err.contains("must be an https or http URL"), "{bad}: {err}");
        }
    }
}
