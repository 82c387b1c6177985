//! Bounded walks over git trees: a tree's blobs and the paths two trees differ in, with
//! a cap on entries and a deadline checked as the walk goes. A pushed tree can be a
//! "git bomb" (a few kilobytes packed, 10^8 paths unpacked); these walks stop at the cap
//! instead of exhausting memory or holding a thread, and subtrees with equal ids are
//! never entered twice in a diff. Also where libgit2's process-wide options are set.

use std::sync::Once;
use std::time::Instant;

/// Sets libgit2's process-wide options once, before this process's first git call:
/// network timeouts (a silent server cannot hold a call for long), and no configuration
/// from the daemon user's home or the system (`url.*.insteadOf`, credential helpers,
/// proxies), only each repository's own.
pub fn configure_libgit2() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: these set plain values in libgit2's global options; `Once` makes this
        // the only writer, before this process's first git operation.
        let result = unsafe {
            git2::opts::set_server_connect_timeout_in_milliseconds(30_000)
                .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(60_000))
                .and_then(|()| git2::opts::set_search_path(git2::ConfigLevel::System, ""))
                .and_then(|()| git2::opts::set_search_path(git2::ConfigLevel::XDG, ""))
                .and_then(|()| git2::opts::set_search_path(git2::ConfigLevel::Global, ""))
                .and_then(|()| git2::opts::set_search_path(git2::ConfigLevel::ProgramData, ""))
        };
        if let Err(err) = result {
            tracing::warn!("could not set libgit2's options: {err}");
        }
    });
}

/// Files libgit2 reads whole from a git directory, and how large each may be.
const READ_WHOLE: &[(&str, u64)] = &[
    ("HEAD", MAX_LOOSE_REF),
    ("commondir", 64 << 10),
    ("gitdir", 64 << 10),
    ("config", 1 << 20),
    ("config.worktree", 1 << 20),
    ("objects/info/alternates", 64 << 10),
    ("packed-refs", 256 << 20),
    ("index", 512 << 20),
    ("shallow", 16 << 20),
    ("info/grafts", 16 << 20),
    ("info/exclude", 1 << 20),
    ("info/attributes", 1 << 20),
    ("info/sparse-checkout", 1 << 20),
    ("FETCH_HEAD", 16 << 20),
    ("MERGE_MSG", 1 << 20),
    ("SQUASH_MSG", 1 << 20),
    ("COMMIT_EDITMSG", 1 << 20),
];

/// The largest loose ref: an object id or `ref: ` and a name of at most 1,024 bytes.
pub const MAX_LOOSE_REF: u64 = 4 << 10;
/// The largest reflog file (libgit2 reads one whole to resolve `name@{n}`).
const MAX_REFLOG: u64 = 64 << 20;
/// Entries of `refs/` (and of `logs/`) looked at most: beyond this many loose refs a
/// repository is refused (`git pack-refs` packs them).
pub const MAX_LOOSE_REFS: usize = 100_000;

/// Checks that what libgit2 reads whole from the git directory `dir` is a plain file of
/// a sane size (a FIFO would hold the call forever, a sparse file of gigabytes would be
/// read into memory): the listed internals, every root ref (`ORIG_HEAD`, `MERGE_HEAD`,
/// any all-capitals name libgit2 would resolve), every loose ref under `refs/` and
/// every reflog under `logs/`, counted and each bounded; and that its configuration
/// makes libgit2 read no other file (`include.*`, `includeIf.*`,
/// `extensions.worktreeConfig`).
#[allow(clippy::disallowed_methods, reason = "git calls run on blocking threads, as libgit2 does")]
pub fn plain_internals(dir: &std::path::Path) -> Result<(), String> {
    for (name, max) in READ_WHOLE {
        if let Ok(meta) = std::fs::symlink_metadata(dir.join(name)) {
            plain_file(&meta, name, *max)?;
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|err| format!("listing its git directory: {err}"))?;
    for entry in entries.take(MAX_LOOSE_REFS) {
        let entry = entry.map_err(|err| format!("listing its git directory: {err}"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let root_ref = !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        if root_ref && !READ_WHOLE.iter().any(|(listed, _)| *listed == name) {
            bounded(&entry.path(), name, MAX_LOOSE_REF)?;
        }
    }
    let mut seen = 0;
    bounded_tree(dir, "refs", MAX_LOOSE_REF, &mut seen)?;
    let mut seen = 0;
    bounded_tree(dir, "logs", MAX_REFLOG, &mut seen)?;
    let config = dir.join("config");
    if let Ok(text) = std::fs::read(&config) {
        config_reads_nothing_else(&text).map_err(|key| {
            format!("its `config` sets `{key}`, which makes git read another file; gitauto opens no such repository")
        })?;
    }
    Ok(())
}

/// Checks that `path` (shown as `name`) is a plain file of at most `max` bytes.
fn bounded(path: &std::path::Path, name: &str, max: u64) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|err| format!("`{name}`: {err}"))?;
    plain_file(&meta, name, max)
}

/// Checks that `meta` (of the file shown as `name`) is a plain file of at most `max` bytes.
fn plain_file(meta: &std::fs::Metadata, name: &str, max: u64) -> Result<(), String> {
    if !meta.is_file() || meta.len() > max {
        return Err(format!("`{name}` is not a plain file of at most {max} bytes"));
    }
    Ok(())
}

/// Checks every file under `dir/name` with [`bounded`], and that it holds only
/// directories and such files, at most [`MAX_LOOSE_REFS`] entries in all.
#[allow(clippy::disallowed_methods, reason = "git calls run on blocking threads, as libgit2 does")]
fn bounded_tree(dir: &std::path::Path, name: &str, max: u64, seen: &mut usize) -> Result<(), String> {
    let path = dir.join(name);
    let Ok(meta) = std::fs::symlink_metadata(&path) else { return Ok(()) };
    if !meta.is_dir() {
        return bounded(&path, name, max);
    }
    let entries = std::fs::read_dir(&path).map_err(|err| format!("listing `{name}`: {err}"))?;
    for entry in entries {
        *seen += 1;
        if *seen > MAX_LOOSE_REFS {
            return Err(format!(
                "`{}` holds more than {MAX_LOOSE_REFS} entries (pack its refs with `git pack-refs --all`)",
                name.split('/').next().unwrap_or(name)
            ));
        }
        let entry = entry.map_err(|err| format!("listing `{name}`: {err}"))?;
        let child = format!("{name}/{}", entry.file_name().to_string_lossy());
        bounded_tree(dir, &child, max, seen)?;
    }
    Ok(())
}

/// `text` without the white space (as C's `isspace` has it) it starts with.
fn space(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|b| !b" \t\r\n\x0b\x0c".contains(b)).unwrap_or(text.len());
    &text[start..]
}

/// Checks the repository at `path` (a work tree with `.git`, or a git directory) as
/// [`plain_internals`] does, its git directory and its common directory, before
/// libgit2 opens it.
#[allow(clippy::disallowed_methods, reason = "git calls run on blocking threads, as libgit2 does")]
pub fn check_repository(path: &std::path::Path) -> Result<(), String> {
    let dot_git = path.join(".git");
    let git_dir = match std::fs::symlink_metadata(&dot_git) {
        Ok(meta) if meta.is_file() => {
            bounded(&dot_git, ".git", 64 << 10)?;
            let text = std::fs::read_to_string(&dot_git).unwrap_or_default();
            path.join(text.trim().strip_prefix("gitdir:").map(str::trim).unwrap_or_default())
        }
        Ok(_) => dot_git,
        Err(_) => path.to_path_buf(),
    };
    plain_internals(&git_dir)?;
    if let Ok(text) = std::fs::read_to_string(git_dir.join("commondir")) {
        plain_internals(&git_dir.join(text.trim()))?;
    }
    Ok(())
}

/// `Err(key)` when a git configuration file's text has a key that makes git read
/// another file (any key of an `include` or `includeIf` section) or sets
/// `extensions.worktreeConfig`. Read the way git and libgit2 read it (section names
/// and keys in any case, a header followed by a key on one line, the old
/// `[section.sub]` form), and stricter where unsure: any line that starts with a
/// header counts, even inside a value continued from the line before.
fn config_reads_nothing_else(text: &[u8]) -> Result<(), String> {
    let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
    let mut section = Vec::new();
    let mut shown = String::new();
    for line in text.split(|&b| b == b'\n') {
        let mut rest = space(line);
        while let Some(header) = rest.strip_prefix(b"[") {
            let header = space(header);
            let len = header.iter().position(|b| !(b.is_ascii_alphanumeric() || *b == b'-')).unwrap_or(header.len());
            section = header[..len].to_ascii_lowercase();
            shown = String::from_utf8_lossy(&header[..len]).into_owned();
            // The rest of the line after the header's end (a quoted name may hold `]`).
            let mut quoted = false;
            let mut escaped = false;
            let mut end = header.len();
            for (at, &b) in header.iter().enumerate().skip(len) {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => quoted = !quoted,
                    b']' if !quoted => {
                        end = at + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = space(&header[end.min(header.len())..]);
        }
        let len = rest.iter().position(|b| !(b.is_ascii_alphanumeric() || *b == b'-')).unwrap_or(rest.len());
        let key = &rest[..len];
        let includes = section == b"include" || section == b"includeif";
        if !key.is_empty() && (includes || section == b"extensions" && key.eq_ignore_ascii_case(b"worktreeconfig")) {
            return Err(format!("{shown}.{}", String::from_utf8_lossy(key)));
        }
    }
    Ok(())
}

/// How far a walk may go.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Entries (blobs and trees) visited at most.
    pub entries: usize,
    /// Bytes of path names returned at most.
    pub path_bytes: usize,
    /// When to give up.
    pub deadline: Instant,
}

/// Why a walk stopped early, or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// The tree is larger than the budget allows.
    #[error("the tree has more than {0} entries (the limit for one call)")]
    TooManyEntries(usize),
    /// The path names are longer in all than the budget allows.
    #[error("the paths add up to more than {0} bytes (the limit for one call)")]
    TooManyBytes(usize),
    /// One tree object is larger than the walk reads.
    #[error("a tree object of {0} bytes is larger than the {MAX_TREE_OBJECT} bytes a walk reads")]
    TooWide(usize),
    /// Trees nest deeper than the walk follows.
    #[error("the tree nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The deadline passed.
    #[error("the step's deadline passed while walking the tree")]
    Deadline,
    /// An entry's name no git would write (`..`, `.`, empty, or with a `/` or NUL), shown
    /// with the path of the tree that holds it.
    #[error("the tree holds an entry named {0:?}, which no git writes; refusing what it would lead to")]
    BadName(String),
    /// The walk's caller refused what it found, past a bound of its own (the message says which).
    #[error("{0}")]
    Refused(String),
    /// libgit2 failed to read an object.
    #[error("{0}")]
    Git(String),
}

impl From<git2::Error> for WalkError {
    fn from(err: git2::Error) -> Self {
        WalkError::Git(err.message().to_owned())
    }
}

/// How a path changed between two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only in the new tree.
    Added,
    /// In both, with other content or mode.
    Modified,
    /// Only in the old tree.
    Removed,
}

/// One blob of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `/`-separated path from the root.
    pub path: String,
    /// The blob's id.
    pub id: git2::Oid,
    /// Its file mode (`0o100644`, `0o100755`, `0o120000` for a link).
    pub mode: i32,
}

/// Levels of subtrees followed at most: each costs a stack frame (git's own default
/// `core.maxTreeDepth` is 4096; real trees are a few dozen deep).
pub const MAX_DEPTH: usize = 1024;

/// A walk's count of what it visited, against its budget.
pub(crate) struct Walk {
    budget: Budget,
    entries: usize,
    bytes: usize,
    depth: usize,
}

impl Walk {
    /// A walk that visited nothing yet.
    pub(crate) fn new(budget: Budget) -> Self {
        Self { budget, entries: 0, bytes: 0, depth: 0 }
    }

    /// Runs `inner` one level deeper.
    pub(crate) fn descend<T>(&mut self, inner: impl FnOnce(&mut Self) -> Result<T, WalkError>) -> Result<T, WalkError> {
        if self.depth >= MAX_DEPTH {
            return Err(WalkError::TooDeep);
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    /// Counts one visited entry with a path of `len` bytes.
    pub(crate) fn visit(&mut self, len: usize) -> Result<(), WalkError> {
        self.entries += 1;
        self.bytes += len;
        if self.entries > self.budget.entries {
            return Err(WalkError::TooManyEntries(self.budget.entries));
        }
        if self.bytes > self.budget.path_bytes {
            return Err(WalkError::TooManyBytes(self.budget.path_bytes));
        }
        // The clock is read once in a while: it costs more than a visit.
        if self.entries.is_multiple_of(256) && Instant::now() >= self.budget.deadline {
            return Err(WalkError::Deadline);
        }
        Ok(())
    }
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() { name.into_owned() } else { format!("{prefix}/{name}") }
}

/// The largest tree object a walk reads (about 400,000 entries): a single pushed tree
/// can be wide instead of deep, and libgit2 parses a tree whole.
pub const MAX_TREE_OBJECT: usize = 16 << 20;

/// The tree `id`, once its object header says it is not larger than [`MAX_TREE_OBJECT`].
pub fn find_tree(repo: &git2::Repository, id: git2::Oid) -> Result<git2::Tree<'_>, WalkError> {
    let (size, _) = repo.odb()?.read_header(id)?;
    if size > MAX_TREE_OBJECT {
        return Err(WalkError::TooWide(size));
    }
    Ok(repo.find_tree(id)?)
}

/// Every blob (and link, and submodule commit) of `tree`, depth first in git's order.
pub fn blobs(repo: &git2::Repository, tree: &git2::Tree<'_>, budget: Budget) -> Result<Vec<Blob>, WalkError> {
    let mut walk = Walk::new(budget);
    let mut out = Vec::new();
    collect(repo, tree, "", &mut walk, &mut |path, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            out.push(Blob { path, id: entry.id(), mode: entry.filemode() });
        }
    })?;
    Ok(out)
}

/// Visits every non-tree entry under `tree`, descending into subtrees.
fn collect(
    repo: &git2::Repository,
    tree: &git2::Tree<'_>,
    prefix: &str,
    walk: &mut Walk,
    found: &mut dyn FnMut(String, &git2::TreeEntry<'_>),
) -> Result<(), WalkError> {
    for entry in tree.iter() {
        let path = join(prefix, entry.name_bytes());
        walk.visit(path.len())?;
        if entry.kind() == Some(git2::ObjectType::Tree) {
            let subtree = find_tree(repo, entry.id())?;
            walk.descend(|walk| collect(repo, &subtree, &path, walk, found))?;
        } else {
            found(path, &entry);
        }
    }
    Ok(())
}

/// The paths that differ between `old` and `new` (`None`: an empty tree), sorted.
/// Subtrees with the same id on both sides are skipped whole.
pub fn diff(
    repo: &git2::Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    budget: Budget,
) -> Result<Vec<(String, Change)>, WalkError> {
    let mut walk = Walk::new(budget);
    let mut out = Vec::new();
    diff_trees(repo, old, new, "", &mut walk, &mut out)?;
    out.sort();
    Ok(out)
}

fn diff_trees(
    repo: &git2::Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    prefix: &str,
    walk: &mut Walk,
    out: &mut Vec<(String, Change)>,
) -> Result<(), WalkError> {
    use std::collections::BTreeMap;
    let entries = |tree: Option<&git2::Tree<'_>>| -> BTreeMap<Vec<u8>, (git2::Oid, i32, bool)> {
        tree.map(|tree| {
            tree.iter()
                .map(|e| (e.name_bytes().to_vec(), (e.id(), e.filemode(), e.kind() == Some(git2::ObjectType::Tree))))
                .collect()
        })
        .unwrap_or_default()
    };
    let (before, after) = (entries(old), entries(new));
    let names: std::collections::BTreeSet<&Vec<u8>> = before.keys().chain(after.keys()).collect();
    for name in names {
        let path = join(prefix, name);
        walk.visit(path.len())?;
        match (before.get(name), after.get(name)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(&(a_id, _, true)), Some(&(b_id, _, true))) => {
                let (a, b) = (find_tree(repo, a_id)?, find_tree(repo, b_id)?);
                walk.descend(|walk| diff_trees(repo, Some(&a), Some(&b), &path, walk, out))?;
            }
            (Some(&(_, _, false)), Some(&(_, _, false))) => out.push((path, Change::Modified)),
            (a, b) => {
                // Added, removed, or a tree replaced by a file (or the reverse).
                if let Some(&(id, _, is_tree)) = a {
                    side(repo, id, is_tree, path.clone(), Change::Removed, walk, out)?;
                }
                if let Some(&(id, _, is_tree)) = b {
                    side(repo, id, is_tree, path, Change::Added, walk, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Records every path under one side's entry as added or removed.
fn side(
    repo: &git2::Repository,
    id: git2::Oid,
    is_tree: bool,
    path: String,
    change: Change,
    walk: &mut Walk,
    out: &mut Vec<(String, Change)>,
) -> Result<(), WalkError> {
    if !is_tree {
        out.push((path, change));
        return Ok(());
    }
    let tree = find_tree(repo, id)?;
    walk.descend(|walk| collect(repo, &tree, &path, walk, &mut |path, _| out.push((path, change))))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    fn budget(entries: usize) -> Budget {
        Budget { entries, path_bytes: 64 << 20, deadline: Instant::now() + Duration::from_secs(60) }
    }

    /// A tree built from `files`, written into `repo`'s object database.
    pub(crate) fn tree<'r>(repo: &'r git2::Repository, files: &[(&str, &str)]) -> git2::Tree<'r> {
        let mut index = git2::Index::new().unwrap();
        for (path, content) in files {
            let id = repo.blob(content.as_bytes()).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap()
    }

    /// A tree of `depth` levels with `width` entries each, every level the same subtree:
    /// `width^depth` paths from `depth + 1` objects.
    pub(crate) fn bomb(repo: &git2::Repository, width: usize, depth: usize) -> git2::Tree<'_> {
        let blob = repo.blob(b"x").unwrap();
        let mut builder = repo.treebuilder(None).unwrap();
        for i in 0..width {
            builder.insert(format!("f{i}"), blob, 0o100644).unwrap();
        }
        let mut id = builder.write().unwrap();
        for _ in 1..depth {
            let mut level = repo.treebuilder(None).unwrap();
            for i in 0..width {
                level.insert(format!("d{i}"), id, 0o040000).unwrap();
            }
            id = level.write().unwrap();
        }
        repo.find_tree(id).unwrap()
    }

    #[test]
    fn diffs_list_added_modified_and_removed_paths() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let old = tree(&repo, &[("a.md", "a"), ("docs/x.md", "x"), ("gone/y", "y"), ("same/z", "z")]);
        let new =
            tree(&repo, &[("a.md", "b"), ("docs/x.md", "x"), ("docs/new.md", "n"), ("same/z", "z"), ("gone", "f")]);
        let changes = diff(&repo, Some(&old), Some(&new), budget(1000)).unwrap();
        assert_eq!(
            changes,
            [
                ("a.md".to_owned(), Change::Modified),
                ("docs/new.md".to_owned(), Change::Added),
                ("gone".to_owned(), Change::Added),
                ("gone/y".to_owned(), Change::Removed),
            ]
        );
        let all = diff(&repo, None, Some(&new), budget(1000)).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(blobs(&repo, &new, budget(1000)).unwrap().len(), 5);
    }

    /// Security review: every spelling of a key that makes git read another file is
    /// found; harmless look-alikes are not.
    #[test]
    fn configs_that_read_other_files_are_found() {
        let refused = [
            ("[include]\n\tpath = x\n", "include.path"),
            ("[Include] path = x\n", "Include.path"),
            ("\u{feff}[core]\n[includeIf \"gitdir:/a]b\"] path = x\n", "includeIf.path"),
            ("[core]\n\x0b [ includeif.x ]\n  PATH=x\n", "includeif.PATH"),
            ("[core] bare = false\n[extensions] worktreeConfig = true\n", "extensions.worktreeConfig"),
            ("[Extensions]\n\tWORKTREECONFIG\n", "Extensions.WORKTREECONFIG"),
        ];
        for (text, key) in refused {
            assert_eq!(config_reads_nothing_else(text.as_bytes()), Err(key.to_owned()), "{text:?}");
        }
        let fine = [
            "[core]\n\tbare = false\n\tinclude = x\n",
            "[include]\n# nothing\n[core]\n\tpath = x\n",
            "[includes]\n\tpath = x\n",
            "[core] bare = false [include] path = x\n",
            "[extensions]\n\tobjectFormat = sha1\n",
            "[remote \"origin\"]\n\turl = https://example.com/[include]\n",
        ];
        for text in fine {
            assert_eq!(config_reads_nothing_else(text.as_bytes()), Ok(()), "{text:?}");
        }
    }

    /// Issue 16: a pushed tree bomb stops at the budget instead of unpacking 10^8 paths.
    #[test]
    fn a_tree_bomb_stops_at_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let bomb = bomb(&repo, 10, 8);
        assert_eq!(blobs(&repo, &bomb, budget(100_000)), Err(WalkError::TooManyEntries(100_000)));
        assert_eq!(diff(&repo, None, Some(&bomb), budget(100_000)), Err(WalkError::TooManyEntries(100_000)));
        // Comparing the bomb with itself enters nothing.
        assert_eq!(diff(&repo, Some(&bomb), Some(&bomb), budget(10)), Ok(vec![]));
        let past = Budget { deadline: Instant::now(), ..budget(usize::MAX) };
        assert_eq!(blobs(&repo, &bomb, past), Err(WalkError::Deadline));
        let small = Budget { path_bytes: 1000, ..budget(usize::MAX) };
        assert_eq!(blobs(&repo, &bomb, small), Err(WalkError::TooManyBytes(1000)));
    }
}
