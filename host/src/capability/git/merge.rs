//! The bounded merge: `merge-check` (whether one revision merges cleanly into another,
//! computed in memory) and the job checkout's `checkout = "merge"` both merge through
//! [`merge`], as `git merge` would. Before libgit2 holds anything, the trees of the
//! merge base(s) and both sides are counted, the bytes the merge may read are summed
//! (object headers) and the lines of the files it merges line by line are counted
//! (libgit2's xdiff allocates per line, so a file of bare newlines costs far more than
//! its bytes): a tree bomb, a huge file or a flood of short lines is refused first.
//! `merge-check` puts an in-memory object store in front of the repository's, so
//! nothing reaches the disk; the checkout writes its merge into its own repository.

use super::{commit, failed, root_tree, walk_budget, walk_failed};
use crate::capability::bindings::gitauto::plugin::git::GitError;
use crate::gitwalk::{self, Blob};
use git2::{Commit, ErrorCode, Index, MergeOptions, Oid, Repository};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// Bytes of files a merge may read: the files changed on both sides (merged line by
/// line) and, on a side that removes files, its added and removed files (compared for
/// rename detection). Each file counts once per path it is at.
pub const MAX_MERGE_BYTES: u64 = 32 << 20;
/// Lines of the files a merge may merge line by line: every version (base, ours,
/// theirs) of each file changed on both sides, and the files a side adds when it
/// removes one the other side changed (a rename's other half). libgit2's xdiff holds
/// about a hundred bytes per line of each version while it merges.
pub const MAX_MERGE_LINES: u64 = 1_000_000;
/// Added and removed files compared for rename detection at most (git's
/// `merge.renameLimit` default is larger, libgit2's is this); set here so a repository's
/// configuration cannot raise it.
const RENAME_LIMIT: u32 = 1000;
/// Merges of merge bases (criss-cross histories) done at most to build a virtual base;
/// past it, libgit2 takes the first base as it is.
const RECURSION_LIMIT: u32 = 8;

/// How far a merge may go: see [`MAX_MERGE_BYTES`] and [`MAX_MERGE_LINES`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    bytes: u64,
    lines: u64,
}

const LIMITS: Limits = Limits { bytes: MAX_MERGE_BYTES, lines: MAX_MERGE_LINES };

/// What merging one commit into another comes to.
pub(super) enum Merged {
    /// One side contains the other (a fast-forward, or nothing to merge): this commit,
    /// the one that contains the other, is the merge's result as it is.
    Contained(Oid),
    /// The merged index, with its conflicts if any; its blobs are in the object database.
    Index(Index),
}

/// Merges `theirs` into `ours` as `git merge` would (three-way from the merge base,
/// renames followed, a virtual base for criss-cross histories), once the merge is
/// counted and found within the bounds; refusals and failures start with `what`. The
/// merged blobs go to the repository's object database: a caller that must write
/// nothing puts an in-memory store in front of it first.
pub(super) fn merge(
    repo: &Repository,
    ours: &Commit<'_>,
    theirs: &Commit<'_>,
    deadline: Instant,
    what: &str,
) -> Result<Merged, GitError> {
    let bases = match repo.merge_bases(ours.id(), theirs.id()) {
        Ok(bases) => bases.iter().copied().collect::<Vec<Oid>>(),
        Err(err) if err.code() == ErrorCode::NotFound => Vec::new(),
        Err(err) => return Err(failed(&format!("{what}: finding the merge base"), err)),
    };
    let Some(&first) = bases.first() else {
        return Err(GitError::NotFound(format!(
            "{what}: the two have no merge base (unrelated histories, or a shallow clone that lacks it)"
        )));
    };
    if first == ours.id() {
        return Ok(Merged::Contained(theirs.id()));
    }
    if first == theirs.id() {
        return Ok(Merged::Contained(ours.id()));
    }
    let listed = |id: Oid| list(repo, id, deadline, what);
    let (old, left, right) = (listed(first)?, listed(ours.id())?, listed(theirs.id())?);
    // A criss-cross history: libgit2 merges the other bases into a virtual one, so their
    // trees are counted too (as many as it will merge).
    for &other in bases.iter().skip(1).take(RECURSION_LIMIT as usize) {
        listed(other)?;
    }
    check_size(repo, [&old, &left, &right], LIMITS, what)?;
    if Instant::now() >= deadline {
        return Err(GitError::Failed(format!("{what}: the step's deadline passed")));
    }
    let mut options = MergeOptions::new();
    options.find_renames(true).target_limit(RENAME_LIMIT).recursion_limit(RECURSION_LIMIT);
    let index = repo.merge_commits(ours, theirs, Some(&options)).map_err(|err| failed(what, err))?;
    Ok(Merged::Index(index))
}

/// The paths that conflict when `head` is merged into `base` (both revisions as
/// [`commit`] reads them), deduplicated and sorted; empty when the merge is clean.
/// Nothing is written: the merge's objects go to an in-memory store.
pub(super) fn conflicts(repo: &Repository, base: &str, head: &str, deadline: Instant) -> Result<Vec<String>, GitError> {
    let ours = commit(repo, base)?;
    let theirs = commit(repo, head)?;
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    // Highest priority: libgit2 writes to the first backend that takes writes.
    let _in_memory =
        odb.add_new_mempack_backend(1000).map_err(|err| failed("adding an in-memory object store", err))?;
    let what = format!("merging `{head}` into `{base}`");
    let index = match merge(repo, &ours, &theirs, deadline, &what)? {
        Merged::Contained(_) => return Ok(Vec::new()),
        Merged::Index(index) => index,
    };
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
/// `limits.bytes` bytes of files (sizes from object headers, nothing inflated), or merge
/// more than `limits.lines` lines line by line (counted in the files, once their bytes
/// are known to be within the bound).
fn check_size(
    repo: &Repository,
    [old, left, right]: [&HashMap<String, Blob>; 3],
    limits: Limits,
    what: &str,
) -> Result<(), GitError> {
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
    let both: BTreeSet<&String> = left_changed.intersection(&right_changed).collect();
    // Each (path, blob) once: what libgit2 reads and merges, path by path.
    let mut merged: BTreeSet<(&str, Oid)> = BTreeSet::new();
    for path in &both {
        merged.extend([old, left, right].iter().filter_map(|tree| tree.get(*path)).map(|b| (path.as_str(), b.id)));
    }
    let mut read = merged.clone();
    for (side, changed) in [(left, &left_changed), (right, &right_changed)] {
        if !changed.iter().any(|path| !side.contains_key(path)) {
            continue;
        }
        // The side removes files: renames are looked for among what it adds and removes.
        for path in changed {
            if let Some(blob) = side.get(path).or_else(|| old.get(path)) {
                read.insert((path.as_str(), blob.id));
            }
        }
        // A file it removes that the other side changed may be renamed: then one of the
        // files it adds is merged line by line with it.
        if both.iter().any(|path| !side.contains_key(*path)) {
            let added = changed.iter().filter(|path| !old.contains_key(*path));
            merged.extend(added.filter_map(|path| side.get(path).map(|blob| (path.as_str(), blob.id))));
        }
    }
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    let mut total = 0u64;
    for &(path, id) in &read {
        let (size, _) = odb.read_header(id).map_err(|err| failed(&format!("{what}: `{path}`"), err))?;
        total += size as u64;
        if total > limits.bytes {
            return Err(GitError::Invalid(format!(
                "{what}: the files to compare add up to more than {} bytes (the limit for a merge; reached at \
                 `{path}`, {size} bytes)",
                limits.bytes
            )));
        }
    }
    // Within the byte bound, so each file may be inflated; each is counted once.
    let mut counted: BTreeMap<Oid, u64> = BTreeMap::new();
    let mut lines = 0u64;
    for &(path, id) in &merged {
        let count = match counted.get(&id) {
            Some(&count) => count,
            None => {
                let blob = repo.find_blob(id).map_err(|err| failed(&format!("{what}: `{path}`"), err))?;
                let count = line_count(blob.content());
                counted.insert(id, count);
                count
            }
        };
        lines += count;
        if lines > limits.lines {
            return Err(GitError::Invalid(format!(
                "{what}: the files to merge line by line add up to more than {} lines (the limit for a merge; \
                 reached at `{path}`, {count} lines)",
                limits.lines
            )));
        }
    }
    Ok(())
}

/// Lines of `content` as xdiff splits it: each newline ends one, and a last line
/// without one counts too.
fn line_count(content: &[u8]) -> u64 {
    let newlines = content.iter().filter(|&&byte| byte == b'\n').count() as u64;
    newlines + u64::from(content.last().is_some_and(|&byte| byte != b'\n'))
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

    /// The trees `[ancestor, base, head]` listed.
    fn trees(repo: &Repository, base: &str, head: &str) -> [HashMap<String, Blob>; 3] {
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let id = |rev: &str| repo.revparse_single(rev).unwrap().id();
        let ancestor = repo.merge_base(id(base), id(head)).unwrap();
        [ancestor, id(base), id(head)].map(|commit| list(repo, commit, far, "test").unwrap())
    }

    fn size(
        repo: &Repository,
        [old, left, right]: &[HashMap<String, Blob>; 3],
        bytes: u64,
        lines: u64,
    ) -> Result<(), GitError> {
        check_size(repo, [old, left, right], Limits { bytes, lines }, "m")
    }

    /// What a merge reads is counted: the three versions of each file both sides
    /// changed (`a.txt`, `docs/b.md` between `main` and `clash`: 104 bytes), and a side's
    /// added and removed files when it removes any (`moved`: `c.txt` as `d.txt`).
    #[test]
    fn the_bytes_a_merge_reads_are_bounded() {
        let dir = repository();
        let repo = Repository::open(dir.path()).unwrap();
        let clash = trees(&repo, "main", "clash");
        assert!(size(&repo, &clash, 104, u64::MAX).is_ok());
        match size(&repo, &clash, 103, u64::MAX) {
            Err(GitError::Invalid(why)) => assert_eq!(
                why,
                "m: the files to compare add up to more than 103 bytes (the limit for a merge; reached at \
                 `docs/b.md`, 18 bytes)"
            ),
            other => panic!("{other:?}"),
        }
        // main changes c.txt (16 bytes before, 24 after); `moved` removes it and adds
        // d.txt (the same 16 bytes, at another path): 56 bytes.
        let moved = trees(&repo, "main", "moved");
        assert!(size(&repo, &moved, 56, u64::MAX).is_ok());
        assert!(size(&repo, &moved, 55, u64::MAX).is_err());
        // Only one side changes anything: nothing is compared.
        let behind = trees(&repo, "main", "main~1");
        assert!(size(&repo, &behind, 0, 0).is_ok());
    }

    /// Issue 19: xdiff allocates per line, so the lines of what is merged line by line
    /// are bounded apart from its bytes: the three versions of each file both sides
    /// changed (`a.txt`, `docs/b.md`: 3 lines each, 18 in all), and what a side that
    /// removes such a file adds (`moved`: c.txt twice and d.txt, 8 lines each).
    #[test]
    fn the_lines_a_merge_reads_are_bounded() {
        let dir = repository();
        let repo = Repository::open(dir.path()).unwrap();
        let clash = trees(&repo, "main", "clash");
        assert!(size(&repo, &clash, u64::MAX, 18).is_ok());
        match size(&repo, &clash, u64::MAX, 17) {
            Err(GitError::Invalid(why)) => assert_eq!(
                why,
                "m: the files to merge line by line add up to more than 17 lines (the limit for a merge; \
                 reached at `docs/b.md`, 3 lines)"
            ),
            other => panic!("{other:?}"),
        }
        let moved = trees(&repo, "main", "moved");
        assert!(size(&repo, &moved, u64::MAX, 24).is_ok());
        assert!(size(&repo, &moved, u64::MAX, 23).is_err());
        // Only one side changes anything: nothing is merged line by line.
        let behind = trees(&repo, "main", "main~1");
        assert!(size(&repo, &behind, u64::MAX, 0).is_ok());
    }

    #[test]
    fn lines_are_counted_as_xdiff_splits_them() {
        for (content, lines) in [("", 0), ("a", 1), ("a\n", 1), ("\n\n", 2), ("a\nb", 2), ("a\r\nb\r\n", 2)] {
            assert_eq!(line_count(content.as_bytes()), lines, "{content:?}");
        }
    }

    /// Issue 19: a file of short lines changed on both sides, a few kilobytes packed, is
    /// refused before libgit2 merges it when its versions' lines add up to more than
    /// [`MAX_MERGE_LINES`]; at the bound it merges.
    #[test]
    fn a_merge_of_too_many_short_lines_is_refused_before_merging() {
        let dir = repository();
        let root = dir.path();
        let per_file = MAX_MERGE_LINES / 3;
        // `lines` lines, all empty but the first and the last.
        let short = |first: &str, last: &str, lines: u64| {
            format!("{first}\n{}{last}\n", "\n".repeat(usize::try_from(lines).unwrap() - 2))
        };
        git(root, &["checkout", "-q", "-b", "lines", "main~1"]);
        write(root, "lines.txt", &short("", "", per_file));
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "lines"]);
        let rest = MAX_MERGE_LINES - 2 * per_file;
        for (branch, first, last, lines) in
            [("top", "top", "", per_file), ("bottom", "", "bottom", rest), ("longer", "", "bottom", rest + 1)]
        {
            git(root, &["checkout", "-q", "-b", branch, "lines"]);
            write(root, "lines.txt", &short(first, last, lines));
            git(root, &["commit", "-qam", branch]);
        }
        let repo = Repository::open(root).unwrap();
        assert_eq!(check(&repo, "top", "bottom").unwrap(), Vec::<String>::new());
        match check(&repo, "top", "longer") {
            Err(GitError::Invalid(why)) => assert!(
                why.starts_with(&format!(
                    "merging `longer` into `top`: the files to merge line by line add up to more than \
                     {MAX_MERGE_LINES} lines (the limit for a merge; reached at `lines.txt`, "
                )),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
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
