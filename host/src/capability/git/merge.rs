//! `merge-check`: whether one revision merges cleanly into another, computed in memory
//! by libgit2 as `git merge` would. libgit2 stores the blobs and trees it merges in the
//! object database; here they go to an in-memory store placed in front of the
//! repository's, so nothing reaches the disk. The three trees are counted and the bytes
//! the merge may read are summed first: a tree bomb or a huge file is refused before
//! libgit2 holds it.

use super::{commit, failed, root_tree, walk_budget, walk_failed};
use crate::capability::bindings::gitauto::plugin::git::GitError;
use crate::gitwalk::{self, Blob};
use git2::{ErrorCode, MergeOptions, Oid, Repository};
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// Bytes of files a merge check may read: the files changed on both sides (merged line
/// by line) and, on a side that removes files, its added and removed files (compared
/// for rename detection).
pub const MAX_MERGE_BYTES: u64 = 512 << 20;
/// Added and removed files compared for rename detection at most (git's
/// `merge.renameLimit` default is larger, libgit2's is this); set here so a repository's
/// configuration cannot raise it.
const RENAME_LIMIT: u32 = 1000;
/// Merges of merge bases (criss-cross histories) done at most to build a virtual base;
/// past it, libgit2 takes the first base as it is.
const RECURSION_LIMIT: u32 = 8;

/// The paths that conflict when `head` is merged into `base` (both revisions as
/// [`commit`] reads them), deduplicated and sorted; empty when the merge is clean.
pub(super) fn conflicts(repo: &Repository, base: &str, head: &str, deadline: Instant) -> Result<Vec<String>, GitError> {
    let ours = commit(repo, base)?;
    let theirs = commit(repo, head)?;
    let bases = match repo.merge_bases(ours.id(), theirs.id()) {
        Ok(bases) => bases.iter().copied().collect::<Vec<Oid>>(),
        Err(err) if err.code() == ErrorCode::NotFound => Vec::new(),
        Err(err) => return Err(failed(&format!("finding the merge base of `{base}` and `{head}`"), err)),
    };
    let Some(&first) = bases.first() else {
        return Err(GitError::NotFound(format!(
            "`{base}` and `{head}` have no merge base (unrelated histories, or a shallow clone that lacks it)"
        )));
    };
    // One side contains the other: a fast-forward or nothing to merge.
    if first == ours.id() || first == theirs.id() {
        return Ok(Vec::new());
    }
    let what = format!("merging `{head}` into `{base}`");
    let listed = |id: Oid| list(repo, id, deadline, &what);
    let (old, left, right) = (listed(first)?, listed(ours.id())?, listed(theirs.id())?);
    // A criss-cross history: libgit2 merges the other bases into a virtual one, so their
    // trees are counted too (as many as it will merge).
    for &other in bases.iter().skip(1).take(RECURSION_LIMIT as usize) {
        listed(other)?;
    }
    check_bytes(repo, [&old, &left, &right], MAX_MERGE_BYTES, &what)?;
    if Instant::now() >= deadline {
        return Err(GitError::Failed(format!("{what}: the step's deadline passed")));
    }

    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    // Highest priority: libgit2 writes to the first backend that takes writes.
    let _in_memory =
        odb.add_new_mempack_backend(1000).map_err(|err| failed("adding an in-memory object store", err))?;
    let mut options = MergeOptions::new();
    options.find_renames(true).target_limit(RENAME_LIMIT).recursion_limit(RECURSION_LIMIT);
    let index = repo.merge_commits(&ours, &theirs, Some(&options)).map_err(|err| failed(&what, err))?;
    let mut paths = BTreeSet::new();
    let conflicts = index.conflicts().map_err(|err| failed(&what, err))?;
    for conflict in conflicts {
        let conflict = conflict.map_err(|err| failed(&what, err))?;
        for entry in [conflict.ancestor, conflict.our, conflict.their].into_iter().flatten() {
            paths.insert(String::from_utf8_lossy(&entry.path).into_owned());
        }
    }
    Ok(paths.into_iter().collect())
}

/// The blobs of commit `id`'s tree by path, in a bounded walk.
fn list(repo: &Repository, id: Oid, deadline: Instant, what: &str) -> Result<HashMap<String, Blob>, GitError> {
    let commit = repo.find_commit(id).map_err(|err| failed(what, err))?;
    let tree = root_tree(repo, &commit, what)?;
    let blobs = gitwalk::blobs(repo, &tree, walk_budget(deadline)).map_err(|err| walk_failed(what, err))?;
    Ok(blobs.into_iter().map(|blob| (blob.path.clone(), blob)).collect())
}

/// Refuses a merge of the trees `[ancestor, ours, theirs]` that would read more than
/// `max` bytes of files (sizes from object headers, nothing inflated).
fn check_bytes(
    repo: &Repository,
    [old, left, right]: [&HashMap<String, Blob>; 3],
    max: u64,
    what: &str,
) -> Result<(), GitError> {
    let mut read: BTreeSet<Oid> = BTreeSet::new();
    let changed = |side: &HashMap<String, Blob>| -> BTreeSet<String> {
        let mut paths: BTreeSet<String> = side
            .iter()
            .filter(|(path, blob)| old.get(*path).is_none_or(|was| was.id != blob.id))
            .map(|(p, _)| p.clone())
            .collect();
        paths.extend(old.keys().filter(|path| !side.contains_key(*path)).cloned());
        paths
    };
    let (left_changed, right_changed) = (changed(left), changed(right));
    for path in left_changed.intersection(&right_changed) {
        read.extend([old, left, right].iter().filter_map(|tree| tree.get(path)).map(|blob| blob.id));
    }
    for (side, changed) in [(left, &left_changed), (right, &right_changed)] {
        if changed.iter().any(|path| !side.contains_key(path)) {
            read.extend(changed.iter().filter_map(|path| side.get(path).or_else(|| old.get(path))).map(|b| b.id));
        }
    }
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    let mut total = 0u64;
    for id in read {
        let (size, _) = odb.read_header(id).map_err(|err| failed(what, err))?;
        total += size as u64;
        if total > max {
            return Err(GitError::Invalid(format!(
                "{what}: the files to compare add up to more than {max} bytes (the limit for a merge in memory)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A repository whose `main` and three branches from its first commit: `clean`
    /// (another file), `clash` (the same lines of two files, one in a subdirectory),
    /// `moved` (renames a file `main` edits).
    fn repository() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        write(root, "a.txt", "one\ntwo\nthree\n");
        write(root, "docs/b.md", "# b\n\ntext\n");
        write(root, "c.txt", "1\n2\n3\n4\n5\n6\n7\n8\n");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "start"]);
        for branch in ["clean", "clash", "moved"] {
            git(root, &["branch", branch]);
        }
        write(root, "a.txt", "one\nTWO on main\nthree\n");
        write(root, "docs/b.md", "# b\n\nmain's text\n");
        write(root, "c.txt", "1\n2\n3\n4\n5\n6\n7\n8 on main\n");
        git(root, &["commit", "-qam", "main"]);
        git(root, &["checkout", "-q", "clean"]);
        write(root, "new.txt", "new\n");
        write(root, "c.txt", "1 on clean\n2\n3\n4\n5\n6\n7\n8\n");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "clean"]);
        git(root, &["checkout", "-q", "clash"]);
        write(root, "a.txt", "one\nTWO on clash\nthree\n");
        write(root, "docs/b.md", "# b\n\nclash's text\n");
        git(root, &["commit", "-qam", "clash"]);
        git(root, &["checkout", "-q", "moved"]);
        git(root, &["mv", "c.txt", "d.txt"]);
        git(root, &["commit", "-qm", "moved"]);
        git(root, &["checkout", "-q", "main"]);
        dir
    }

    fn check(repo: &Repository, base: &str, head: &str) -> Result<Vec<String>, GitError> {
        conflicts(repo, base, head, Instant::now() + std::time::Duration::from_secs(60))
    }

    #[test]
    fn merges_report_the_conflicting_paths_and_nothing_else() {
        let dir = repository();
        let repo = Repository::open(dir.path()).unwrap();
        assert_eq!(check(&repo, "main", "clean").unwrap(), Vec::<String>::new());
        assert_eq!(check(&repo, "main", "clash").unwrap(), ["a.txt", "docs/b.md"]);
        assert_eq!(check(&repo, "clash", "main").unwrap(), ["a.txt", "docs/b.md"]);
        // The rename is followed: main's edit of c.txt lands in d.txt.
        assert_eq!(check(&repo, "main", "moved").unwrap(), Vec::<String>::new());
        // One side contains the other.
        assert_eq!(check(&repo, "main", "main~1").unwrap(), Vec::<String>::new());
        assert_eq!(check(&repo, "main~1", "main").unwrap(), Vec::<String>::new());
        // The same answers as git's own merge.
        for (base, head) in [("main", "clean"), ("main", "clash"), ("clash", "main"), ("main", "moved")] {
            assert_eq!(check(&repo, base, head).unwrap(), merge_tree(dir.path(), base, head), "{head} into {base}");
        }
    }

    /// The conflicting paths `git merge-tree` reports.
    fn merge_tree(dir: &Path, base: &str, head: &str) -> Vec<String> {
        let out = Command::new("git")
            .current_dir(dir)
            .args(["merge-tree", "--write-tree", "--name-only", "--no-messages", base, head])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let paths: BTreeSet<String> = text.lines().skip(1).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        paths.into_iter().collect()
    }

    #[test]
    fn merges_write_nothing_to_the_repository() {
        let dir = repository();
        let root = dir.path();
        let before = (
            git(root, &["count-objects", "-v"]),
            git(root, &["show-ref"]),
            std::fs::read(root.join(".git/index")).unwrap(),
        );
        let repo = Repository::open(root).unwrap();
        assert_eq!(check(&repo, "main", "clash").unwrap().len(), 2);
        // A clean merge of changed files makes new blobs and trees.
        assert!(check(&repo, "main", "clean").unwrap().is_empty());
        let after = (
            git(root, &["count-objects", "-v"]),
            git(root, &["show-ref"]),
            std::fs::read(root.join(".git/index")).unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(git(root, &["status", "--porcelain"]), "");
    }

    /// A tree bomb (two small tree objects, a million paths) on one side is refused
    /// before libgit2 builds an index of it.
    #[test]
    fn trees_over_the_walk_bounds_are_refused_before_merging() {
        let dir = repository();
        let repo = Repository::open(dir.path()).unwrap();
        let blob = repo.blob(b"x\n").unwrap();
        let mut leaf = repo.treebuilder(None).unwrap();
        for i in 0..1000 {
            leaf.insert(format!("f{i}"), blob, 0o100644).unwrap();
        }
        let leaf = leaf.write().unwrap();
        let mut bomb = repo.treebuilder(None).unwrap();
        for i in 0..1000 {
            bomb.insert(format!("d{i}"), leaf, 0o040000).unwrap();
        }
        let bomb = bomb.write().unwrap();
        let main = repo.revparse_single("main").unwrap().peel_to_commit().unwrap();
        let mut tree = repo.treebuilder(Some(&main.tree().unwrap())).unwrap();
        tree.insert("bomb", bomb, 0o040000).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("refs/heads/bomb"), &signature, &signature, "bomb", &tree, &[&main]).unwrap();
        match check(&repo, "clash", "bomb") {
            Err(GitError::Invalid(why)) => {
                assert!(why.starts_with("merging `bomb` into `clash`: the tree has more than"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// What a merge reads is counted: the three versions of each file both sides
    /// changed (`a.txt`, `docs/b.md` between `main` and `clash`: 104 bytes), and a side's
    /// added and removed files when it removes any (`moved`: `c.txt` as `d.txt`).
    #[test]
    fn the_bytes_a_merge_reads_are_bounded() {
        let dir = repository();
        let repo = Repository::open(dir.path()).unwrap();
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let trees = |base: &str, head: &str| {
            let id = |rev: &str| repo.revparse_single(rev).unwrap().id();
            let ancestor = repo.merge_base(id(base), id(head)).unwrap();
            [ancestor, id(base), id(head)].map(|commit| list(&repo, commit, far, "test").unwrap())
        };
        let [old, left, right] = trees("main", "clash");
        assert!(check_bytes(&repo, [&old, &left, &right], 104, "m").is_ok());
        match check_bytes(&repo, [&old, &left, &right], 103, "m") {
            Err(GitError::Invalid(why)) => assert_eq!(
                why,
                "m: the files to compare add up to more than 103 bytes (the limit for a merge in memory)"
            ),
            other => panic!("{other:?}"),
        }
        // main changes c.txt (16 bytes before, 24 after); `moved` removes it and adds
        // d.txt (the same 16 bytes, one blob): 40 bytes.
        let [old, left, right] = trees("main", "moved");
        assert!(check_bytes(&repo, [&old, &left, &right], 40, "m").is_ok());
        assert!(check_bytes(&repo, [&old, &left, &right], 39, "m").is_err());
        // Only one side changes anything: nothing is compared.
        let [old, left, right] = trees("main", "main~1");
        assert!(check_bytes(&repo, [&old, &left, &right], 0, "m").is_ok());
    }

    #[test]
    fn unrelated_histories_shallow_cuts_and_unknown_revisions_are_not_found() {
        let dir = repository();
        let root = dir.path();
        git(root, &["checkout", "-q", "--orphan", "other"]);
        git(root, &["commit", "-qm", "unrelated"]);
        let repo = Repository::open(root).unwrap();
        match check(&repo, "main", "other") {
            Err(GitError::NotFound(why)) => assert!(why.contains("have no merge base"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A shallow clone cut above the merge base.
        let shallow = root.join("shallow");
        let url = format!("file://{}", root.display());
        git(root, &["clone", "-q", "--depth", "1", "--no-single-branch", &url, shallow.to_str().unwrap()]);
        let cut = Repository::open(&shallow).unwrap();
        match check(&cut, "origin/main", "origin/clash") {
            Err(GitError::NotFound(why)) => assert!(why.contains("have no merge base"), "{why}"),
            other => panic!("{other:?}"),
        }
        git(&shallow, &["fetch", "-q", "--unshallow"]);
        let whole = Repository::open(&shallow).unwrap();
        assert_eq!(check(&whole, "origin/main", "origin/clash").unwrap(), ["a.txt", "docs/b.md"]);
        match check(&repo, "main", "no-such-branch") {
            Err(GitError::NotFound(why)) => assert!(why.contains("resolving `no-such-branch`"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
