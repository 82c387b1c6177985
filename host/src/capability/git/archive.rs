//! `archive`: a revision's tree written as a tar, tar.gz or zip file, as `git archive`
//! would list it (the same entries, directories included, submodules as empty
//! directories, `export-ignore` honoured), and reproducible: entries sorted, one time,
//! fixed modes, no owner. The tree is listed and counted against the bounds before the
//! output is created; the output is written to a new file beside it and renamed over it
//! only when complete. Where it may be written is the kernel's to enforce: the caller
//! runs this on a thread confined to the plugin's writable grants. The containers'
//! formats are [`tar`] and [`zip`]'s; which paths are left out is [`attributes`]'.

mod attributes;
mod tar;
mod zip;

use super::{commit, failed, root_tree, walk_failed};
use crate::capability::bindings::gitauto::plugin::git::{ArchiveFormat, ArchiveInfo, ArchiveOptions, GitError};
use crate::gitwalk::{self, Budget, Walk, WalkError};
use attributes::{MatchError, Pattern, Rules};
use flate2::Compression;
use flate2::write::GzEncoder;
use git2::{ObjectType, Oid, Repository, Tree};
use sha2::Digest as _;
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What an archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (or a submodule, archived as an empty one).
    Dir,
    /// A file, and whether it is executable.
    File {
        /// Mode 0755 rather than 0644.
        executable: bool,
    },
    /// A symbolic link; its data is the target.
    Link,
}

/// How large a tree `archive` writes.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Tree entries visited at most.
    pub entries: usize,
    /// Bytes of path names at most.
    pub path_bytes: usize,
    /// Bytes of the files archived, all together.
    pub bytes: u64,
    /// Bytes of one file (libgit2 holds each whole while it is written).
    pub file: u64,
}

/// The bounds of a plugin's `archive`: those of a checkout.
pub const BOUNDS: Bounds = Bounds {
    entries: super::MAX_TREE_ENTRIES,
    path_bytes: super::MAX_TREE_PATH_BYTES,
    bytes: super::MAX_CHECKOUT_BYTES,
    file: super::MAX_CHECKOUT_FILE,
};

/// Bytes of `.gitattributes` files one archive reads at most, all together (git reads
/// each file up to 100 MiB; a tree of many such files would hold them all in memory).
pub const MAX_ATTRIBUTE_BYTES: u64 = 16 << 20;
/// Pattern lines of `.gitattributes` files one archive keeps at most: every path is
/// matched against the lines of the files above it.
pub const MAX_ATTRIBUTE_LINES: usize = 100_000;
/// `exclude` patterns one archive takes at most (every path is matched against each).
pub const MAX_EXCLUDE_PATTERNS: usize = 1_000;
/// Bytes of one `exclude` pattern at most: what git reads of an attributes line.
pub const MAX_EXCLUDE_BYTES: usize = attributes::MAX_LINE - 1;
/// Bytes of the prefix at most (it goes before every path), and of each of its
/// components (what file systems hold as one name).
pub const MAX_PREFIX_BYTES: usize = 4096;
/// Bytes of one component of the prefix at most.
pub const MAX_PREFIX_COMPONENT: usize = 255;

/// One entry of the tree to archive.
struct Item {
    /// Path below the archive's root (before the prefix), no trailing slash.
    path: Vec<u8>,
    kind: Kind,
    /// The blob of a file or link.
    id: Oid,
}

/// Writes the archive of `revision` that `options` describe to `output` (the plugin's
/// `options.output`, already checked against the grant for the message; the kernel
/// holds the line), within `bounds`, before `deadline`.
pub fn write(
    repo: &Repository,
    revision: &str,
    options: &ArchiveOptions,
    output: &Path,
    bounds: Bounds,
    deadline: Instant,
) -> Result<ArchiveInfo, GitError> {
    let prefix = checked_prefix(&options.prefix)?;
    let subdirectory = checked_subdirectory(options.subdirectory.as_deref())?;
    if options.exclude.len() > MAX_EXCLUDE_PATTERNS {
        return Err(GitError::Invalid(format!(
            "{} exclude patterns: more than {MAX_EXCLUDE_PATTERNS} (the limit for one archive)",
            options.exclude.len()
        )));
    }
    let exclude = options
        .exclude
        .iter()
        .map(|pattern| {
            if pattern.len() > MAX_EXCLUDE_BYTES {
                return Err(GitError::Invalid(format!(
                    "an exclude pattern of {} bytes: longer than {MAX_EXCLUDE_BYTES} (the limit for one pattern)",
                    pattern.len()
                )));
            }
            Pattern::parse(pattern.as_bytes())
                .map_err(|err| GitError::Invalid(format!("the exclude pattern `{pattern}`: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let what = format!("archiving `{revision}`");
    let commit = commit(repo, revision)?;
    let mtime = options.mtime.unwrap_or_else(|| commit.committer().when().seconds());
    let root = root_tree(repo, &commit, revision)?;

    let mut lister = Lister {
        repo,
        rules: Rules::new(exclude, deadline),
        export_ignore: options.export_ignore,
        items: Vec::new(),
        deadline,
        attribute_bytes: 0,
        attribute_lines: 0,
        prefix_len: prefix.len(),
    };
    let budget = Budget { entries: bounds.entries, path_bytes: bounds.path_bytes, deadline };
    let mut walk = Walk::new(budget);
    // The prefix's own entry counts as the paths below it do.
    if !prefix.is_empty() {
        walk.visit(prefix.len()).map_err(|err| walk_failed(&what, err))?;
    }
    let (tree, base) = lister.descend_to(root, &subdirectory, revision, &what)?;
    let tree_id = tree.id();
    lister.list(&mut walk, &tree, &base, b"").map_err(|err| walk_failed(&what, err))?;
    let items = lister.items;

    // Counted from the objects' headers before anything is inflated or written.
    let odb = repo.odb().map_err(|err| failed("opening the object database", err))?;
    let mut total = 0u64;
    for item in items.iter().filter(|item| item.kind != Kind::Dir) {
        let (size, _) = odb.read_header(item.id).map_err(|err| failed(&what, err))?;
        let size = size as u64;
        if size > bounds.file {
            return Err(GitError::Invalid(format!(
                "{what}: `{}` is {size} bytes, over the limit of {} for one file",
                String::from_utf8_lossy(&item.path),
                bounds.file
            )));
        }
        total += size;
        if total > bounds.bytes {
            return Err(GitError::Invalid(format!(
                "{what}: its files add up to more than {} bytes (the limit for one archive)",
                bounds.bytes
            )));
        }
    }

    // Entries as they go in the archive, sorted by path (a directory's with its slash).
    // Each with its object's id (a tar entry too long for ustar is named after it).
    let mut entries: Vec<(Vec<u8>, Kind, Oid)> = items
        .into_iter()
        .map(|item| {
            let mut path = [prefix.as_bytes(), &item.path].concat();
            if item.kind == Kind::Dir {
                path.push(b'/');
            }
            (path, item.kind, item.id)
        })
        .collect();
    if !prefix.is_empty() {
        // As `git archive` does: the prefix's own directory, not its parents, with the
        // archived tree's id.
        entries.push((prefix.as_bytes().to_vec(), Kind::Dir, tree_id));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let files = entries.iter().filter(|entry| entry.1 != Kind::Dir).count();

    let written = write_output(output, |out| {
        let mut container = match options.format {
            ArchiveFormat::Tar => Container::Tar(tar::Tar::new(out, mtime)),
            ArchiveFormat::TarGz => {
                // No name, no time, a fixed OS byte (Unix): the header says nothing of
                // where or when it was made.
                let gz = flate2::GzBuilder::new().mtime(0).operating_system(3).write(out, Compression::default());
                Container::TarGz(tar::Tar::new(gz, mtime))
            }
            ArchiveFormat::Zip => Container::Zip(zip::Zip::new(out, mtime)),
        };
        for (path, kind, id) in &entries {
            if Instant::now() >= deadline {
                return Err(GitError::Failed(format!("{what}: the step's deadline passed")));
            }
            let blob = match kind {
                Kind::Dir => None,
                _ => Some(repo.find_blob(*id).map_err(|err| failed(&what, err))?),
            };
            let data = blob.as_ref().map(git2::Blob::content).unwrap_or_default();
            container.add(path, *kind, data, *id).map_err(|err| written_failed(output, err))?;
        }
        container.finish().map_err(|err| written_failed(output, err))
    })?;
    Ok(ArchiveInfo {
        path: options.output.clone(),
        size: written.size,
        files: u32::try_from(files).unwrap_or(u32::MAX),
        sha256: hex::encode(written.sha256),
        sha512: hex::encode(written.sha512),
        md5: hex::encode(written.md5),
    })
}

/// The prefix as given, once it is empty or a relative directory path ending in `/`
/// that stays inside the archive (no `..`, no `.`, no empty component, no name a tree
/// entry may not have), within [`MAX_PREFIX_BYTES`] and [`MAX_PREFIX_COMPONENT`].
fn checked_prefix(prefix: &str) -> Result<&str, GitError> {
    if prefix.is_empty() {
        return Ok(prefix);
    }
    if prefix.len() > MAX_PREFIX_BYTES {
        // Not shown: it may be megabytes.
        return Err(GitError::Invalid(format!(
            "the prefix is {} bytes, longer than {MAX_PREFIX_BYTES} (the limit)",
            prefix.len()
        )));
    }
    let invalid = |why: &str| Err(GitError::Invalid(format!("the prefix `{prefix}` {why}")));
    let Some(body) = prefix.strip_suffix('/') else { return invalid("must be empty or end with `/`") };
    if body.split('/').any(|part| part.is_empty() || part == "." || part == "..") || prefix.contains('\0') {
        return invalid("must be a relative path without empty, `.` or `..` components");
    }
    if let Some(part) = body.split('/').find(|part| part.len() > MAX_PREFIX_COMPONENT) {
        return invalid(&format!(
            "has a component of {} bytes, longer than {MAX_PREFIX_COMPONENT} (the limit)",
            part.len()
        ));
    }
    if let Some(why) = body.split('/').find_map(|part| bad_name(part.as_bytes())) {
        return invalid(&format!("has a component that is {why}"));
    }
    Ok(prefix)
}

/// Why git's `verify_path` (with `core.protectNTFS` and `core.protectHFS`, as `git
/// fsck` checks trees) refuses `name` as one component of a path, or `None`: empty,
/// `.`, `..`, with a `/`, `\` or NUL, or `.git` as any file system may read it
/// (`.GIT`, `git~1`, `.git.`, `.git::$INDEX_ALLOCATION`, `.g\u{200c}it`). Extracted,
/// such an entry lands outside the archive's directory or inside a repository's
/// internals.
fn bad_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() || name == b"." || name == b".." {
        return Some("empty, `.` or `..`");
    }
    if name.iter().any(|b| b"/\\\0".contains(b)) {
        return Some("holding a `/`, `\\` or NUL");
    }
    if is_ntfs_dotgit(name) || is_hfs_dotgit(name) {
        return Some("`.git` as some file system reads it");
    }
    None
}

/// Git's `is_ntfs_dotgit`: `.git` or its short name `git~1`, any case, followed by
/// nothing but spaces and dots (which NTFS drops), or by an alternate data stream.
fn is_ntfs_dotgit(name: &[u8]) -> bool {
    let rest = if name.len() >= 4 && name[..4].eq_ignore_ascii_case(b".git") {
        &name[4..]
    } else if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"git~1") {
        &name[5..]
    } else {
        return false;
    };
    for &b in rest {
        if b == b':' {
            return true;
        }
        if b != b'.' && b != b' ' {
            return false;
        }
    }
    true
}

/// Git's `is_hfs_dotgit`: `.git`, any case, with code points HFS+ ignores anywhere in it.
fn is_hfs_dotgit(name: &[u8]) -> bool {
    folded(name) == b".git"
}

/// `name` as a case-blind file system that ignores what HFS+ ignores may hold it: ASCII
/// lower case, without the code points git's `next_hfs_char` skips.
fn folded(name: &[u8]) -> Vec<u8> {
    let ignorable =
        |c: char| matches!(c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}');
    let kept = match std::str::from_utf8(name) {
        Ok(text) => text.chars().filter(|&c| !ignorable(c)).collect::<String>().into_bytes(),
        Err(_) => name.to_vec(),
    };
    kept.to_ascii_lowercase()
}

/// A match stopped, as a walk error: past the deadline `failed`, too complex `invalid`.
fn match_stopped(err: MatchError) -> WalkError {
    match err {
        MatchError::Deadline => WalkError::Deadline,
        other => WalkError::Refused(other.to_string()),
    }
}

/// The subdirectory's components (none: the whole tree), once it is a relative path
/// without `.` or `..`; a trailing `/` is allowed.
fn checked_subdirectory(subdirectory: Option<&str>) -> Result<Vec<&str>, GitError> {
    let Some(text) = subdirectory else { return Ok(Vec::new()) };
    let body = text.strip_suffix('/').unwrap_or(text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = body.split('/').collect();
    if parts.iter().any(|part| part.is_empty() || *part == "." || *part == "..") || text.contains('\0') {
        return Err(GitError::Invalid(format!(
            "the subdirectory `{text}` must be a path relative to the repository root, without empty, `.` or `..` components"
        )));
    }
    Ok(parts)
}

/// Lists what goes in the archive.
struct Lister<'r> {
    repo: &'r Repository,
    rules: Rules,
    export_ignore: bool,
    items: Vec<Item>,
    deadline: Instant,
    /// Bytes and pattern lines of `.gitattributes` read so far.
    attribute_bytes: u64,
    attribute_lines: usize,
    /// Bytes of the prefix, which goes before every path: counted with each.
    prefix_len: usize,
}

/// `dir/name`, or `name` at the root.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() { name.to_vec() } else { [dir, b"/", name].concat() }
}

impl<'r> Lister<'r> {
    /// Reads the `.gitattributes` of `tree`, the directory `dir` of the repository, when
    /// export-ignore is asked for. A link or a file git would ignore is ignored.
    fn attributes(&mut self, tree: &Tree<'_>, dir: &[u8]) -> Result<(), WalkError> {
        if !self.export_ignore {
            return Ok(());
        }
        let Some(entry) = tree.get_name_bytes(b".gitattributes") else { return Ok(()) };
        if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
            return Ok(());
        }
        let (size, _) = self.repo.odb()?.read_header(entry.id())?;
        if size >= attributes::MAX_FILE {
            return Ok(());
        }
        self.attribute_bytes += size as u64;
        if self.attribute_bytes > MAX_ATTRIBUTE_BYTES {
            return Err(WalkError::Refused(format!(
                "the tree's `.gitattributes` files add up to more than {MAX_ATTRIBUTE_BYTES} bytes (the limit for one archive)"
            )));
        }
        let blob = self.repo.find_blob(entry.id())?;
        self.attribute_lines += self.rules.add_file(dir, blob.content());
        if self.attribute_lines > MAX_ATTRIBUTE_LINES {
            return Err(WalkError::Refused(format!(
                "the tree's `.gitattributes` files hold more than {MAX_ATTRIBUTE_LINES} patterns (the limit for one archive)"
            )));
        }
        Ok(())
    }

    /// The tree of the subdirectory `parts` (the root when empty) and its path, with the
    /// attributes of the directories above it read; a subdirectory that is left out or
    /// missing is refused.
    fn descend_to(
        &mut self,
        root: Tree<'r>,
        parts: &[&str],
        revision: &str,
        what: &str,
    ) -> Result<(Tree<'r>, Vec<u8>), GitError> {
        let mut tree = root;
        let mut dir = Vec::new();
        let shown = parts.join("/");
        for part in parts {
            self.attributes(&tree, &dir).map_err(|err| walk_failed(what, err))?;
            let id = tree
                .get_name(part)
                .filter(|entry| entry.kind() == Some(ObjectType::Tree))
                .ok_or_else(|| {
                    GitError::NotFound(format!("{what}: the subdirectory `{shown}` is not a directory in `{revision}`"))
                })?
                .id();
            dir = join(&dir, part.as_bytes());
            if self.rules.leaves_out(&dir, true).map_err(|err| walk_failed(what, match_stopped(err)))? {
                return Err(GitError::Invalid(format!(
                    "{what}: the subdirectory `{shown}` is left out (export-ignore or exclude), so the archive would be empty"
                )));
            }
            tree = gitwalk::find_tree(self.repo, id).map_err(|err| walk_failed(what, err))?;
        }
        Ok((tree, dir))
    }

    /// Lists `tree`, the directory `dir` of the repository and `below` of the archive;
    /// whether the walk reached a file, link or submodule in it (left out or not).
    ///
    /// As `git archive` (2.47) does, a directory is archived only when the walk reaches
    /// such an entry below it: a directory that holds only left-out directories is
    /// left out too, one that holds only left-out files is kept, empty.
    fn list(&mut self, walk: &mut Walk, tree: &Tree<'_>, dir: &[u8], below: &[u8]) -> Result<bool, WalkError> {
        self.attributes(tree, dir)?;
        let mut reached = false;
        // Names seen in this tree, as a case-blind file system holds them ([`folded`]):
        // the name as written, and whether it is a link.
        let mut seen: HashMap<Vec<u8>, (Vec<u8>, bool)> = HashMap::new();
        for entry in tree.iter() {
            let name = entry.name_bytes();
            let shown = || String::from_utf8_lossy(&join(dir, name)).into_owned();
            // A crafted tree could name an entry `..`, `.git` or `a\\..\\b`: extracted,
            // the archive would write outside its directory or into a repository.
            if let Some(why) = bad_name(name) {
                return Err(WalkError::Refused(format!(
                    "the tree holds an entry named {:?} ({why}), which git refuses; refusing to archive it",
                    shown()
                )));
            }
            // Two entries of one name (or a link and an entry whose names a case-blind
            // file system holds as one): extracted, the second would be written over or
            // through the first, a link leading anywhere.
            let link = entry.filemode() == 0o120000;
            if let Some((other, other_link)) = seen.insert(folded(name), (name.to_vec(), link))
                && (other == name || other_link || link)
            {
                return Err(WalkError::Refused(format!(
                    "the tree holds two entries named {:?}{}: extracted, one would be written over or through the other; refusing to archive it",
                    shown(),
                    if other == name {
                        String::new()
                    } else {
                        format!(" (and {:?}, one name there)", String::from_utf8_lossy(&other))
                    }
                )));
            }
            let path = join(below, name);
            walk.visit(self.prefix_len + path.len())?;
            // Each entry is matched against the attributes above it: the clock is read
            // for each, so a heavy `.gitattributes` cannot hold the thread long past it.
            if Instant::now() >= self.deadline {
                return Err(WalkError::Deadline);
            }
            let kind = match entry.kind() {
                Some(ObjectType::Tree | ObjectType::Commit) => Kind::Dir,
                Some(ObjectType::Blob) if entry.filemode() == 0o120000 => Kind::Link,
                Some(ObjectType::Blob) => Kind::File { executable: entry.filemode() & 0o111 != 0 },
                _ => continue,
            };
            let is_tree = entry.kind() == Some(ObjectType::Tree);
            reached |= !is_tree;
            let in_repository = join(dir, name);
            if self.rules.leaves_out(&in_repository, kind == Kind::Dir).map_err(match_stopped)? {
                continue;
            }
            let at = self.items.len();
            self.items.push(Item { path: path.clone(), kind, id: entry.id() });
            if is_tree {
                let subtree = gitwalk::find_tree(self.repo, entry.id())?;
                if walk.descend(|walk| self.list(walk, &subtree, &in_repository, &path))? {
                    reached = true;
                } else {
                    self.items.truncate(at);
                }
            }
        }
        Ok(reached)
    }
}

/// A writer that counts what went through it: a container's offsets and padding.
pub struct Counted<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> Counted<W> {
    /// Counts from 0 what goes to `out`.
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    /// Writes all of `bytes`.
    pub fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The container being written.
enum Container<W: Write> {
    Tar(tar::Tar<W>),
    TarGz(tar::Tar<GzEncoder<W>>),
    Zip(zip::Zip<W>),
}

impl<W: Write> Container<W> {
    fn add(&mut self, path: &[u8], kind: Kind, data: &[u8], id: Oid) -> io::Result<()> {
        match self {
            Container::Tar(tar) => tar.add(path, kind, data, id),
            Container::TarGz(tar) => tar.add(path, kind, data, id),
            Container::Zip(zip) => zip.add(path, kind, data),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Container::Tar(tar) => tar.finish(),
            Container::TarGz(tar) => tar.finish()?.finish(),
            Container::Zip(zip) => zip.finish(),
        }
    }
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W: Write> {
    inner: W,
    size: u64,
    sha256: sha2::Sha256,
    sha512: sha2::Sha512,
    md5: md5::Md5,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        let buf = &buf[..written];
        self.sha256.update(buf);
        self.sha512.update(buf);
        self.md5.update(buf);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What was written: its size and digests.
struct Written {
    size: u64,
    sha256: Vec<u8>,
    sha512: Vec<u8>,
    md5: Vec<u8>,
}

/// A file being written beside the output, removed unless it became the output.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Directories made for the output, deepest first, removed (when still empty) unless
/// the output was written.
struct Made(Vec<PathBuf>);

impl Drop for Made {
    fn drop(&mut self) {
        for dir in self.0.drain(..) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What a file being written beside an output is named: `.gitauto-archive.` then 16
/// hexadecimal digits then `.partial` (whatever the output's name, so a long name
/// still fits).
const PARTIAL_START: &str = ".gitauto-archive.";
const PARTIAL_END: &str = ".partial";

/// Entries of the output's directory looked at for partial files at most.
const MAX_SWEPT: usize = 10_000;

/// Whether `name` is that of a partial file.
fn is_partial(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    name.strip_prefix(PARTIAL_START)
        .and_then(|rest| rest.strip_suffix(PARTIAL_END))
        .is_some_and(|random| random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the partial files in `dir` older than this process: a daemon killed while
/// writing an archive leaves one, and nothing else would remove it. Those of archives
/// this process is writing are newer, and kept.
fn sweep_partials(dir: &Path) {
    let Some(start) = super::PROCESS_START.get() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    // A bounded look: a directory of millions of files is not read whole at every archive.
    for entry in entries.take(MAX_SWEPT).flatten() {
        if !is_partial(&entry.file_name()) {
            continue;
        }
        let old = entry.metadata().and_then(|meta| meta.modified()).is_ok_and(|modified| modified < *start);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// An I/O error writing `output`, as the plugin sees it. On the confined thread,
/// "permission denied" is the kernel refusing a place outside the writable grants.
fn written_failed(output: &Path, err: io::Error) -> GitError {
    let what = format!("writing {}", output.display());
    match err.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            GitError::Denied(format!("{what}: {err} (outside the plugin's writable grants)"))
        }
        io::ErrorKind::NotFound => GitError::NotFound(format!("{what}: {err}")),
        _ => GitError::Failed(format!("{what}: {err}")),
    }
}

/// Creates a new file beside `output` (its directory made if missing), lets `fill`
/// write it through a hashing writer, and renames it over `output` once it is complete
/// and on disk; on any failure it is removed and `output` is as it was.
fn write_output(
    output: &Path,
    fill: impl FnOnce(Hashing<BufWriter<&std::fs::File>>) -> Result<Hashing<BufWriter<&std::fs::File>>, GitError>,
) -> Result<Written, GitError> {
    let (Some(dir), Some(_)) = (output.parent(), output.file_name()) else {
        return Err(GitError::Invalid(format!("{} names no file", output.display())));
    };
    // The directories missing above the output, deepest first: made now, removed again
    // if the archive is not written.
    let mut made = Made(
        dir.ancestors()
            .take_while(|at| !at.as_os_str().is_empty() && std::fs::symlink_metadata(at).is_err())
            .map(Path::to_path_buf)
            .collect(),
    );
    std::fs::create_dir_all(dir).map_err(|err| written_failed(output, err))?;
    sweep_partials(dir);
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|err| GitError::Failed(format!("no randomness for a file name: {err}")))?;
    let partial_path = dir.join(format!("{PARTIAL_START}{}{PARTIAL_END}", hex::encode(random)));
    // A new file (never through a link left there), readable as published files are.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&partial_path)
        .map_err(|err| written_failed(output, err))?;
    let mut partial = Partial(Some(partial_path.clone()));
    let hashing = Hashing {
        inner: BufWriter::with_capacity(1 << 16, &file),
        size: 0,
        sha256: sha2::Sha256::new(),
        sha512: sha2::Sha512::new(),
        md5: md5::Md5::new(),
    };
    let mut hashing = fill(hashing)?;
    hashing.flush().map_err(|err| written_failed(output, err))?;
    let Hashing { inner, size, sha256, sha512, md5 } = hashing;
    inner.into_inner().map_err(|err| written_failed(output, err.into_error()))?;
    file.sync_all().map_err(|err| written_failed(output, err))?;
    std::fs::rename(&partial_path, output).map_err(|err| written_failed(output, err))?;
    partial.0 = None;
    made.0.clear();
    Ok(Written {
        size,
        sha256: sha256.finalize().to_vec(),
        sha512: sha512.finalize().to_vec(),
        md5: md5.finalize().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `program` with `args` in `dir`, and returns its standard output.
    fn run(dir: &Path, program: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
        let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "core.quotepath=off"];
        all.extend_from_slice(args);
        run(dir, "git", &all)
    }

    fn put(root: &Path, path: &str, content: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// A repository whose tree exercises git's attribute rules: export-ignore in three
    /// `.gitattributes` files (deeper files and later lines override, `-` and `!`
    /// keep, quoted and bracketed patterns, `**`, directory-only patterns), an
    /// executable, a link, a long path, a non-ASCII name and a submodule.
    fn repository() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir(&root).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        put(
            &root,
            ".gitattributes",
            "# release archives leave out what only developers need\n\
             /tests export-ignore\n\
             *.md export-ignore\n\
             README.md -export-ignore\n\
             docs/internal/ export-ignore\n\
             \"quoted name.txt\" export-ignore\n\
             build/** export-ignore\n\
             *.[oa] export-ignore\n\
             **/cache/ export-ignore\n\
             generated/ export-ignore\n\
             notes.txt export-ignore=yes\n\
             keep.txt export-ignore\n\
             keep.txt !export-ignore\n\
             !negated.txt export-ignore\n\
             bad.txt export-ignore -bad=name\n\
             .gitattributes export-ignore\n",
        );
        put(&root, "README.md", "readme\n");
        put(&root, "CHANGES.md", "changes\n");
        put(&root, "src/lib.rs", "pub fn f() {}\n");
        put(&root, "src/tool.sh", "#!/bin/sh\necho tool\n");
        put(&root, "src/other.sh", "#!/bin/sh\n");
        put(&root, "src/.gitattributes", "*.sh export-ignore\ntool.sh -export-ignore\n");
        put(&root, "src/generated/x.rs", "x\n");
        put(&root, "lib/generated", "a file, not a directory\n");
        put(&root, "docs/guide.md", "guide\n");
        put(&root, "docs/.gitattributes", "guide.md -export-ignore\n");
        put(&root, "docs/internal/secret.md", "secret\n");
        put(&root, "tests/a_test.rs", "#[test] fn t() {}\n");
        put(&root, "sub/tests/kept.rs", "only the root's tests/ is anchored\n");
        put(&root, "quoted name.txt", "q\n");
        put(&root, "build/out.txt", "o\n");
        put(&root, "build/sub/deeper.txt", "d\n");
        put(&root, "x.o", "o\n");
        put(&root, "y.a", "a\n");
        put(&root, "z.c", "c\n");
        put(&root, "a/cache/x", "x\n");
        put(&root, "cache/y", "y\n");
        put(&root, "notes.txt", "n\n");
        put(&root, "keep.txt", "k\n");
        put(&root, "negated.txt", "n\n");
        put(&root, "bad.txt", "b\n");
        put(&root, &format!("deep/{}/{}.txt", "a".repeat(60), "b".repeat(60)), "long\n");
        put(&root, "données/é.txt", "é\n");
        std::os::unix::fs::symlink("src/lib.rs", root.join("link")).unwrap();
        run(&root, "chmod", &["+x", "src/tool.sh"]);
        git(&root, &["add", "-A"]);
        // A submodule: a gitlink in the tree.
        git(
            &root,
            &["update-index", "--add", "--cacheinfo", "160000,1111111111111111111111111111111111111111,vendor/module"],
        );
        git(&root, &["commit", "-qm", "first"]);
        (dir, root)
    }

    fn options(format: ArchiveFormat, output: &Path, prefix: &str) -> ArchiveOptions {
        ArchiveOptions {
            format,
            output: output.to_string_lossy().into_owned(),
            subdirectory: None,
            prefix: prefix.into(),
            exclude: Vec::new(),
            export_ignore: true,
            mtime: None,
        }
    }

    fn archive(root: &Path, options: &ArchiveOptions) -> Result<ArchiveInfo, GitError> {
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(root).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        write(&repo, "HEAD", options, Path::new(&options.output), BOUNDS, deadline)
    }

    fn tar_names(dir: &Path, archive: &Path, gzip: bool) -> Vec<String> {
        let flags = if gzip { "tzf" } else { "tf" };
        let listed = run(dir, "tar", &[flags, &archive.to_string_lossy()]);
        String::from_utf8(listed).unwrap().lines().map(str::to_owned).collect()
    }

    fn zip_names(dir: &Path, archive: &Path) -> Vec<String> {
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
                      print('\\n'.join(i.filename for i in z.infolist()))";
        let listed = run(dir, "python3", &["-c", script, &archive.to_string_lossy()]);
        String::from_utf8(listed).unwrap().lines().map(str::to_owned).collect()
    }

    /// The entry lists equal the real `git archive`'s for the same tree, prefix and
    /// attributes, in every format.
    #[test]
    fn archives_list_what_git_archive_lists() {
        let (dir, root) = repository();
        for prefix in ["", "widgets-1.2.0/"] {
            let git_tar = dir.path().join("git.tar");
            let git_zip = dir.path().join("git.zip");
            let prefix_arg = format!("--prefix={prefix}");
            git(&root, &["archive", "--format=tar", &prefix_arg, "-o", &git_tar.to_string_lossy(), "HEAD"]);
            git(&root, &["archive", "--format=zip", &prefix_arg, "-o", &git_zip.to_string_lossy(), "HEAD"]);
            let expected = tar_names(dir.path(), &git_tar, false);
            assert_eq!(zip_names(dir.path(), &git_zip), expected, "git's own formats agree");
            for name in ["src/tool.sh", "README.md", "docs/guide.md", "keep.txt", "notes.txt", "build/", "link"] {
                assert!(expected.contains(&format!("{prefix}{name}")), "{name} is archived: {expected:?}");
            }
            for name in ["CHANGES.md", "src/other.sh", "tests/", "build/sub/", "x.o", "a/cache/", "cache/"] {
                assert!(!expected.contains(&format!("{prefix}{name}")), "{name} is left out: {expected:?}");
            }

            for (format, name) in [
                (ArchiveFormat::Tar, "ours.tar"),
                (ArchiveFormat::TarGz, "ours.tar.gz"),
                (ArchiveFormat::Zip, "ours.zip"),
            ] {
                let output = dir.path().join("out").join(name);
                let info = archive(&root, &options(format, &output, prefix)).unwrap();
                let listed = match format {
                    ArchiveFormat::Tar => tar_names(dir.path(), &output, false),
                    ArchiveFormat::TarGz => tar_names(dir.path(), &output, true),
                    ArchiveFormat::Zip => zip_names(dir.path(), &output),
                };
                assert_eq!(listed, expected, "{name} with prefix {prefix:?}");
                let files = expected.iter().filter(|name| !name.ends_with('/')).count();
                assert_eq!(info.files as usize, files, "{name}");
            }
        }
    }

    /// `exclude` leaves out what the same patterns leave out as git's highest-precedence
    /// attributes (`$GIT_DIR/info/attributes`, which `archive` itself never reads); a
    /// subdirectory's archive is the whole tree's entries below it, re-rooted.
    #[test]
    fn exclude_and_subdirectory_agree_with_git_archive() {
        let (dir, root) = repository();
        let exclude = ["*.c", "docs/", "/lib", "deep/**", "src/*.rs", "README.md"];
        let info = root.join(".git/info/attributes");
        std::fs::create_dir_all(info.parent().unwrap()).unwrap();
        std::fs::write(&info, exclude.iter().map(|p| format!("{p} export-ignore\n")).collect::<String>()).unwrap();
        let git_tar = dir.path().join("git.tar");
        git(&root, &["archive", "--format=tar", "-o", &git_tar.to_string_lossy(), "HEAD"]);
        std::fs::remove_file(&info).unwrap();
        let expected = tar_names(dir.path(), &git_tar, false);
        assert!(!expected.iter().any(|name| name.starts_with("docs") || name == "README.md" || name == "z.c"));
        let output = dir.path().join("excluded.tar");
        let mut asked = options(ArchiveFormat::Tar, &output, "");
        asked.exclude = exclude.iter().map(|p| (*p).to_owned()).collect();
        archive(&root, &asked).unwrap();
        assert_eq!(tar_names(dir.path(), &output, false), expected);

        // Without export-ignore, exclude alone decides.
        asked.export_ignore = false;
        archive(&root, &asked).unwrap();
        let all = tar_names(dir.path(), &output, false);
        assert!(all.contains(&"CHANGES.md".to_owned()) && all.contains(&"tests/a_test.rs".to_owned()));
        assert!(!all.contains(&"README.md".to_owned()) && !all.contains(&"docs/".to_owned()));

        git(&root, &["archive", "--format=tar", "-o", &git_tar.to_string_lossy(), "HEAD"]);
        let whole = tar_names(dir.path(), &git_tar, false);
        let expected: Vec<String> = whole
            .iter()
            .filter_map(|name| name.strip_prefix("src/"))
            .filter(|name| !name.is_empty())
            .map(|name| format!("v1/{name}"))
            .collect();
        let mut asked = options(ArchiveFormat::Zip, &dir.path().join("src.zip"), "v1/");
        asked.subdirectory = Some("src/".into());
        archive(&root, &asked).unwrap();
        assert_eq!(zip_names(dir.path(), &dir.path().join("src.zip")), [vec!["v1/".to_owned()], expected].concat());
        asked.subdirectory = Some("src/generated".into());
        match archive(&root, &asked) {
            Err(GitError::Invalid(why)) => assert!(why.contains("is left out (export-ignore or exclude)"), "{why}"),
            other => panic!("an ignored subdirectory: {other:?}"),
        }
    }

    /// Each bound refuses the archive, naming it, before the output is created.
    #[test]
    fn trees_over_the_bounds_are_refused_before_anything_is_written() {
        let (dir, root) = repository();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(&root).unwrap();
        let output = dir.path().join("out/bounded.zip");
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        for (bounds, why) in [
            (Bounds { entries: 10, ..BOUNDS }, "the tree has more than 10 entries"),
            (Bounds { path_bytes: 100, ..BOUNDS }, "the paths add up to more than 100 bytes"),
            (Bounds { file: 10, ..BOUNDS }, "over the limit of 10 for one file"),
            (Bounds { bytes: 50, ..BOUNDS }, "its files add up to more than 50 bytes"),
        ] {
            match write(&repo, "HEAD", &options(ArchiveFormat::Zip, &output, ""), &output, bounds, deadline) {
                Err(GitError::Invalid(message)) => assert!(message.contains(why), "{message}"),
                other => panic!("{why}: {other:?}"),
            }
            assert!(!output.parent().unwrap().exists(), "{why}: nothing was created");
        }
        let past = Instant::now();
        match write(&repo, "HEAD", &options(ArchiveFormat::Zip, &output, ""), &output, BOUNDS, past) {
            Err(GitError::Failed(message)) => assert!(message.contains("deadline"), "{message}"),
            other => panic!("past the deadline: {other:?}"),
        }
    }

    /// A crafted tree whose entry is named `..` (no git writes one) is refused: the
    /// archive would extract outside its directory.
    #[test]
    fn a_tree_with_a_dotdot_entry_is_refused() {
        let (dir, root) = repository();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(&root).unwrap();
        let blob = repo.blob(b"planted").unwrap();
        let mut inner = repo.treebuilder(None).unwrap();
        inner.insert("evil", blob, 0o100644).unwrap();
        let inner = inner.write().unwrap();
        // libgit2's tree builder refuses such names too: write the tree object by hand.
        let mut raw = b"40000 ..\0".to_vec();
        raw.extend_from_slice(inner.as_bytes());
        let tree = repo.odb().unwrap().write(git2::ObjectType::Tree, &raw).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.find_tree(tree).unwrap();
        repo.commit(Some("refs/heads/evil"), &signature, &signature, "evil", &tree, &[]).unwrap();
        let output = dir.path().join("evil.tar");
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        match write(&repo, "refs/heads/evil", &options(ArchiveFormat::Tar, &output, ""), &output, BOUNDS, deadline) {
            Err(GitError::Invalid(why)) => assert!(why.contains("an entry named \"..\""), "{why}"),
            other => panic!("a `..` entry: {other:?}"),
        }
        assert!(!output.exists());
    }

    /// Writes a tree object by hand (libgit2's builder refuses the names a hostile
    /// push may carry): `entries` are (mode, name, id), in the order given.
    fn raw_tree(repo: &Repository, entries: &[(&str, &[u8], Oid)]) -> Oid {
        let mut raw = Vec::new();
        for (mode, name, id) in entries {
            raw.extend_from_slice(format!("{mode} ").as_bytes());
            raw.extend_from_slice(name);
            raw.push(0);
            raw.extend_from_slice(id.as_bytes());
        }
        repo.odb().unwrap().write(git2::ObjectType::Tree, &raw).unwrap()
    }

    /// Issue 22 (tree entry names): every name git's `verify_path` refuses (`.git` as
    /// NTFS and HFS+ read it too, separators), two entries of one name, and a link with
    /// a directory of the same name (or the same name in another case) are refused, at
    /// the root and deeper, before the output or its directory is made.
    #[test]
    fn hostile_tree_entry_names_are_refused_before_anything_is_written() {
        let (dir, root) = repository();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(&root).unwrap();
        let blob = repo.blob(b"<?php planted();").unwrap();
        let target = repo.blob(b"/etc").unwrap();
        let inner = raw_tree(&repo, &[("100644", b"x.php", blob)]);
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let output = dir.path().join("out/hostile.tar");
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let names: &[&[u8]] = &[
            b"..",
            b".",
            b".git",
            b".GIT",
            b"git~1",
            b"GIT~1",
            b".git.",
            b".git ..",
            b".git::$INDEX_ALLOCATION",
            ".g\u{200c}it".as_bytes(),
            "\u{feff}.Git".as_bytes(),
            b"..\\..\\evil.php",
            b"a\\b",
            b"/abs.php",
        ];
        type Entries = Vec<(&'static str, Vec<u8>, Oid)>;
        let mut cases: Vec<(Entries, String)> = Vec::new();
        for name in names {
            for mode in ["100644", "40000"] {
                let id = if mode == "40000" { inner } else { blob };
                cases.push((vec![(mode, name.to_vec(), id)], String::from_utf8_lossy(name).into_owned()));
            }
        }
        cases.push((
            vec![("100644", b"a.php".to_vec(), blob), ("100644", b"a.php".to_vec(), blob)],
            "two entries named \"a.php\"".into(),
        ));
        cases.push((
            vec![("120000", b"lib".to_vec(), target), ("40000", b"lib".to_vec(), inner)],
            "two entries named \"lib\"".into(),
        ));
        cases.push((
            vec![("40000", b"lib".to_vec(), inner), ("120000", b"Lib".to_vec(), target)],
            "(and \"lib\", one name there)".into(),
        ));
        cases.push((
            vec![("120000", b"lib".to_vec(), target), ("40000", "li\u{200c}b".as_bytes().to_vec(), inner)],
            "(and \"lib\", one name there)".into(),
        ));
        for (entries, why) in cases {
            let entries: Vec<(&str, &[u8], Oid)> = entries.iter().map(|(m, n, id)| (*m, n.as_slice(), *id)).collect();
            let top = raw_tree(&repo, &entries);
            // At the root, and one level down.
            let nested = raw_tree(&repo, &[("100644", b"ok.txt", blob), ("40000", b"d", top)]);
            for (tree, shown) in [(top, why.clone()), (nested, format!("d/{why}"))] {
                let tree = repo.find_tree(tree).unwrap();
                let commit = repo.commit(None, &signature, &signature, "hostile", &tree, &[]).unwrap().to_string();
                match write(&repo, &commit, &options(ArchiveFormat::Tar, &output, ""), &output, BOUNDS, deadline) {
                    Err(GitError::Invalid(message)) => {
                        assert!(message.contains("refusing to archive it"), "{shown}: {message}");
                        if !why.contains('"') {
                            assert!(message.contains(&format!("{shown:?}")), "{shown}: {message}");
                        } else if shown.starts_with("d/") {
                            assert!(message.contains("\"d/"), "{shown}: {message}");
                        }
                    }
                    other => panic!("{shown}: {other:?}"),
                }
                assert!(!output.parent().unwrap().exists(), "{shown}: nothing was created");
            }
        }
        // Names that only look like those are archived.
        let fine = raw_tree(
            &repo,
            &[
                ("100644", b".gitattributes", blob),
                ("100644", b".github", blob),
                ("100644", b"git~2", blob),
                ("100644", b"..x", blob),
                ("100644", b"A.php", blob),
                ("100644", b"a.php", blob),
            ],
        );
        let tree = repo.find_tree(fine).unwrap();
        let commit = repo.commit(None, &signature, &signature, "fine", &tree, &[]).unwrap().to_string();
        let mut asked = options(ArchiveFormat::Tar, &output, "");
        asked.export_ignore = false;
        write(&repo, &commit, &asked, &output, BOUNDS, deadline).unwrap();
        assert_eq!(
            tar_names(dir.path(), &output, false),
            ["..x", ".gitattributes", ".github", "A.php", "a.php", "git~2"]
        );
    }

    /// Issue 22 (prefix bound): the prefix goes before every path, so it is bounded
    /// (bytes, bytes per component, names a tree may hold) and counted with each path
    /// against the paths' bound, before anything is made.
    #[test]
    fn a_prefix_over_its_bounds_is_refused_before_anything_is_written() {
        let (dir, root) = repository();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(&root).unwrap();
        let output = dir.path().join("out/prefixed.zip");
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let huge = format!("{}/", "p".repeat(20 << 20));
        let long_component = format!("a/{}/", "c".repeat(256));
        let repeated = "ab/".repeat(1000);
        for (prefix, bounds, why) in [
            (huge.as_str(), BOUNDS, "the prefix is 20971521 bytes, longer than 4096"),
            (long_component.as_str(), BOUNDS, "has a component of 256 bytes, longer than 255"),
            ("v1/.git/", BOUNDS, "has a component that is `.git` as some file system reads it"),
            ("v1/.GIT./", BOUNDS, "has a component that is `.git`"),
            ("v1\\..\\x/", BOUNDS, "holding a `/`, `\\` or NUL"),
            (repeated.as_str(), Bounds { path_bytes: 50_000, ..BOUNDS }, "the paths add up to more than 50000 bytes"),
        ] {
            match write(&repo, "HEAD", &options(ArchiveFormat::Zip, &output, prefix), &output, bounds, deadline) {
                Err(GitError::Invalid(message)) => assert!(message.contains(why), "{why}: {message}"),
                other => panic!("{why}: {other:?}"),
            }
            assert!(!output.parent().unwrap().exists(), "{why}: nothing was created");
        }
        // Without the prefix, the same tree is well within that bound.
        let bounds = Bounds { path_bytes: 50_000, ..BOUNDS };
        write(&repo, "HEAD", &options(ArchiveFormat::Zip, &output, ""), &output, bounds, deadline).unwrap();
        let longest = format!("{}/", "d".repeat(255));
        archive(&root, &options(ArchiveFormat::Zip, &output, &longest)).unwrap();
    }

    /// Issue 22 (wildmatch blow-up): an exclude pattern built to backtrack is refused
    /// as `invalid` (the thread returns, it does not spin past the deadline), as are
    /// too many or too long patterns; nothing is written.
    #[test]
    fn hostile_exclude_patterns_are_refused_before_anything_is_written() {
        let (dir, root) = repository();
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::open(&root).unwrap();
        let output = dir.path().join("out/excluded.tar");
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let deep = "q/".repeat(60);
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = gitwalk::tests::tree(&repo, &[(&format!("{deep}x.php"), "deep")]);
        let commit = repo.commit(None, &signature, &signature, "deep", &tree, &[]).unwrap().to_string();
        let backtracking = ["**/q/"; 25].concat() + "zzz";
        for (exclude, why) in [
            (vec![backtracking.clone()], "steps to match"),
            (vec!["*.md".to_owned(); MAX_EXCLUDE_PATTERNS + 1], "1001 exclude patterns: more than 1000"),
            (vec!["x".repeat(MAX_EXCLUDE_BYTES + 1)], "an exclude pattern of 2048 bytes: longer than 2047"),
        ] {
            let mut asked = options(ArchiveFormat::Tar, &output, "");
            asked.exclude = exclude;
            match write(&repo, &commit, &asked, &output, BOUNDS, deadline) {
                Err(GitError::Invalid(message)) => assert!(message.contains(why), "{why}: {message}"),
                other => panic!("{why}: {other:?}"),
            }
            assert!(!output.parent().unwrap().exists(), "{why}: nothing was created");
        }
        // Hundreds of `**/` in a row are one.
        let mut asked = options(ArchiveFormat::Tar, &output, "");
        asked.exclude = vec![["**/"; 600].concat() + "x.php"];
        write(&repo, &commit, &asked, &output, BOUNDS, deadline).unwrap();
        assert!(!tar_names(dir.path(), &output, false).iter().any(|name| name.ends_with("x.php")));
    }

    /// Issue 22 (partial files): a failed write leaves neither its partial file nor the
    /// directories it made (those that were there stay); partial files older than the
    /// process (a daemon killed mid-write) are swept from the output's directory, newer
    /// ones (another archive in flight) and other files are not; an output name too long
    /// for a partial file named after it is written.
    #[test]
    fn failed_writes_and_killed_daemons_leave_no_partial_files_or_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("site")).unwrap();
        let output = dir.path().join("site/new/deeper/out.tar");
        let failed = write_output(&output, |mut out| {
            out.write_all(b"half an archive").unwrap();
            Err(GitError::Failed("the step's deadline passed".into()))
        });
        assert!(matches!(failed, Err(GitError::Failed(_))), "{:?}", failed.err());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("site")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");

        super::super::note_process_start();
        let site = dir.path().join("site");
        let old = site.join(".gitauto-archive.0123456789abcdef.partial");
        let other = site.join(".gitauto-archive.notours.partial");
        for path in [&old, &other] {
            let file = std::fs::File::create(path).unwrap();
            file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
                .unwrap();
        }
        let in_flight = site.join(".gitauto-archive.fedcba9876543210.partial");
        std::fs::write(&in_flight, "another archive being written").unwrap();
        let long = site.join(format!("{}.tar", "n".repeat(250)));
        write_output(&long, |mut out| {
            out.write_all(b"whole").unwrap();
            Ok(out)
        })
        .unwrap();
        assert_eq!(std::fs::read(&long).unwrap(), b"whole");
        assert!(!old.exists(), "a partial older than the process is swept");
        assert!(other.exists() && in_flight.exists(), "what is not an old partial stays");
    }

    /// The formats' edges: more entries than a plain zip holds (Zip64 records), a link
    /// target longer than ustar holds and a time before 1970 (pax records), read back by
    /// Python's zipfile and GNU tar.
    #[test]
    fn zip64_and_pax_records_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::init(&root).unwrap();
        let blob = repo.blob(b"").unwrap();
        let mut many = repo.treebuilder(None).unwrap();
        for i in 0..70_000 {
            many.insert(format!("f{i:05}"), blob, 0o100644).unwrap();
        }
        let many = many.write().unwrap();
        let target = format!("{}/target", "t".repeat(150));
        let link = repo.blob(target.as_bytes()).unwrap();
        let mut top = repo.treebuilder(None).unwrap();
        top.insert("many", many, 0o040000).unwrap();
        top.insert("link", link, 0o120000).unwrap();
        let tree = repo.find_tree(top.write().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &signature, &signature, "many", &tree, &[]).unwrap();

        let zip = dir.path().join("many.zip");
        let info = archive(&root, &options(ArchiveFormat::Zip, &zip, "")).unwrap();
        assert_eq!(info.files, 70_001);
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
                      print(len(z.infolist()), z.read('link').decode())";
        let read = String::from_utf8(run(dir.path(), "python3", &["-c", script, &zip.to_string_lossy()])).unwrap();
        assert_eq!(read.trim(), format!("70002 {target}"));

        let tar = dir.path().join("old.tar");
        let mut asked = options(ArchiveFormat::Tar, &tar, "");
        asked.mtime = Some(-86_400);
        archive(&root, &asked).unwrap();
        let listed = String::from_utf8(run(dir.path(), "tar", &["--full-time", "-tvf", "old.tar"])).unwrap();
        let link_line = listed.lines().find(|line| line.contains(" link -> ")).unwrap();
        assert!(link_line.ends_with(&format!("link -> {target}")), "{link_line}");
        assert!(listed.lines().all(|line| line.contains("1969-12-31 00:00:00")), "{}", &listed[..400]);
    }

    /// `.gitattributes` files are bounded too: their bytes all together and the patterns
    /// they hold (each path is matched against them).
    #[test]
    fn attribute_files_over_the_bounds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        #[allow(clippy::disallowed_methods, reason = "a test's own thread")]
        let repo = Repository::init(&root).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let patterns: String = (0..=MAX_ATTRIBUTE_LINES).map(|i| format!("p{i} export-ignore\n")).collect();
        let comments = format!("#{}\n", "c".repeat(9 << 20));
        for (files, why) in [
            (vec![(".gitattributes", patterns.as_str())], "hold more than 100000 patterns"),
            (
                vec![(".gitattributes", comments.as_str()), ("d/.gitattributes", comments.as_str())],
                "more than 16777216 bytes",
            ),
        ] {
            let tree = gitwalk::tests::tree(&repo, &files);
            let commit = repo.commit(None, &signature, &signature, "heavy", &tree, &[]).unwrap().to_string();
            let output = dir.path().join("heavy.tar");
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            let asked = options(ArchiveFormat::Tar, &output, "");
            match write(&repo, &commit, &asked, &output, BOUNDS, deadline) {
                Err(GitError::Invalid(message)) => assert!(message.contains(why), "{message}"),
                other => panic!("{why}: {other:?}"),
            }
            assert!(!output.exists());
        }
    }

    /// Random trees with random `.gitattributes` in random places: every archive lists
    /// what the real `git archive` lists.
    #[test]
    fn random_trees_archive_as_git_archive_does() {
        const DIRS: &[&str] = &["a", "b", "c", "docs", "tests"];
        const LEAVES: &[&str] = &["x.md", "y.txt", "z.o", "w"];
        const PATTERNS: &[&str] = &[
            "*.md", "tests/", "/a", "b/**", "**/c/", "*.txt", "docs", "a/b", "x.md", "*", "c", "/b/", "*/w", "a/**/w",
        ];
        const STATES: &[&str] = &["export-ignore", "export-ignore", "-export-ignore", "!export-ignore"];
        // A small deterministic generator: the same cases on every run.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        for case in 0..48 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("repo");
            std::fs::create_dir(&root).unwrap();
            git(&root, &["init", "-q"]);
            let mut dirs = vec![String::new()];
            for _ in 0..12 {
                let depth = next(4);
                let mut path = String::new();
                for _ in 0..depth {
                    path.push_str(DIRS[next(DIRS.len())]);
                    path.push('/');
                    dirs.push(path.trim_end_matches('/').to_owned());
                }
                path.push_str(LEAVES[next(LEAVES.len())]);
                put(&root, &path, &format!("{case} {path}\n"));
            }
            for _ in 0..3 {
                let at = &dirs[next(dirs.len())];
                let lines: String = (0..1 + next(4))
                    .map(|_| format!("{} {}\n", PATTERNS[next(PATTERNS.len())], STATES[next(STATES.len())]))
                    .collect();
                let file = if at.is_empty() { ".gitattributes".to_owned() } else { format!("{at}/.gitattributes") };
                put(&root, &file, &lines);
            }
            git(&root, &["add", "-A"]);
            git(&root, &["commit", "-qm", "random"]);
            let git_tar = dir.path().join("git.tar");
            git(&root, &["archive", "--prefix=p/", "-o", &git_tar.to_string_lossy(), "HEAD"]);
            let output = dir.path().join("ours.tar");
            archive(&root, &options(ArchiveFormat::Tar, &output, "p/")).unwrap();
            let attributes = String::from_utf8(git(&root, &["ls-files", "*.gitattributes"])).unwrap();
            assert_eq!(
                tar_names(dir.path(), &output, false),
                tar_names(dir.path(), &git_tar, false),
                "case {case}: attributes in {attributes:?}"
            );
        }
    }

    /// What the archive holds is what `git archive` holds: contents, executables, links.
    #[test]
    fn extracted_archives_equal_git_archive_extracted() {
        let (dir, root) = repository();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let git_tar = dir.path().join("git.tar");
        git(&root, &["archive", "--format=tar", "-o", &git_tar.to_string_lossy(), "HEAD"]);
        run(&theirs, "tar", &["xf", &git_tar.to_string_lossy()]);
        for (format, name, flags) in [(ArchiveFormat::TarGz, "a.tar.gz", "xzf"), (ArchiveFormat::Tar, "a.tar", "xf")] {
            let output = dir.path().join(name);
            archive(&root, &options(format, &output, "")).unwrap();
            let ours = dir.path().join(format!("ours-{name}"));
            std::fs::create_dir(&ours).unwrap();
            run(&ours, "tar", &[flags, &output.to_string_lossy()]);
            run(dir.path(), "diff", &["-r", "--no-dereference", &theirs.to_string_lossy(), &ours.to_string_lossy()]);
            let executables = |at: &Path| run(at, "find", &[".", "-type", "f", "-perm", "-u+x"]);
            assert_eq!(executables(&ours), executables(&theirs));
            assert_eq!(executables(&ours), b"./src/tool.sh\n");
        }
        // The zip's files, read by Python, are the same bytes.
        let output = dir.path().join("a.zip");
        archive(&root, &options(ArchiveFormat::Zip, &output, "")).unwrap();
        let script = "import os, stat, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n\
                      for i in z.infolist():\n    if not i.is_dir():\n        \
                      p = os.path.join(sys.argv[2], i.filename)\n        \
                      want = os.readlink(p).encode() if os.path.islink(p) else open(p, 'rb').read()\n        \
                      assert z.read(i) == want, i.filename\n        \
                      m = i.external_attr >> 16\n        \
                      assert stat.S_ISLNK(m) == os.path.islink(p), i.filename\n        \
                      assert stat.S_ISLNK(m) or m & 0o111 == (0o111 if i.filename == 'src/tool.sh' else 0), i.filename\n\
                      print(len(z.infolist()))";
        run(dir.path(), "python3", &["-c", script, &output.to_string_lossy(), &theirs.to_string_lossy()]);
    }

    /// The same tree and options give the same bytes, whenever and wherever they are
    /// written; the checksums are the files' own.
    #[test]
    fn two_builds_are_byte_identical_and_checksums_are_the_files() {
        let (dir, root) = repository();
        for (format, name) in
            [(ArchiveFormat::Tar, "x.tar"), (ArchiveFormat::TarGz, "x.tar.gz"), (ArchiveFormat::Zip, "x.zip")]
        {
            let first = dir.path().join("one").join(name);
            let second = dir.path().join("two").join(name);
            let info = archive(&root, &options(format, &first, "p/")).unwrap();
            archive(&root, &options(format, &second, "p/")).unwrap();
            let bytes = std::fs::read(&first).unwrap();
            assert_eq!(bytes, std::fs::read(&second).unwrap(), "{name}");
            assert_eq!(info.size, bytes.len() as u64);
            assert_eq!(info.path, first.to_string_lossy());
            for (program, sum) in [("sha256sum", &info.sha256), ("sha512sum", &info.sha512), ("md5sum", &info.md5)] {
                let out = String::from_utf8(run(dir.path(), program, &[&first.to_string_lossy()])).unwrap();
                assert_eq!(out.split_whitespace().next(), Some(sum.as_str()), "{program} {name}");
            }
        }
        // Every entry carries the commit's time (or the one asked for), owner 0, no names.
        let output = dir.path().join("t.tar");
        let mut asked = options(ArchiveFormat::Tar, &output, "");
        asked.mtime = Some(1_700_000_000);
        archive(&root, &asked).unwrap();
        let listed =
            String::from_utf8(run(dir.path(), "tar", &["--numeric-owner", "--full-time", "-tvf", "t.tar"])).unwrap();
        for line in listed.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], "0/0", "{line}");
            assert_eq!(&fields[3..5], ["2023-11-14", "22:13:20"], "{line}");
            assert!(["-rw-r--r--", "-rwxr-xr-x", "drwxr-xr-x", "lrwxrwxrwx"].contains(&fields[0]), "{line}");
        }
        let gz = std::fs::read(dir.path().join("one/x.tar.gz")).unwrap();
        assert_eq!(&gz[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], "gzip header: no name, no time, Unix");
    }

    /// The wall is the kernel's, not the grant check's: on the thread `archive` runs on,
    /// an output through a link out of the grant, through `..`, or in a read-only or
    /// git-only grant is refused by Landlock with no check before it, and nothing is
    /// written anywhere; the same thread writes into the writable grant.
    #[test]
    fn the_kernel_refuses_outputs_outside_the_writable_grants() {
        use crate::confine::{self, Rules};
        use crate::grant::{Access, DirGrant, Grant};
        if !confine::support().files() {
            assert!(std::env::var_os("CI").is_none(), "CI machines have Landlock; this one reports none");
            eprintln!("skipped: this kernel has no Landlock");
            return;
        }
        gitwalk::configure_libgit2();
        let (dir, _) = repository();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["site", "git", "outside"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("outside/victim"), "untouched").unwrap();
        std::os::unix::fs::symlink("../outside", root.join("site/escape")).unwrap();
        let grant = Grant {
            dirs: vec![
                DirGrant::new(root.join("repo"), Access::Read),
                DirGrant::new(root.join("git"), Access::Git),
                DirGrant::new(root.join("site"), Access::Write),
            ],
            ..Grant::default()
        };
        let listing = |at: &Path| run(at, "find", &[".", "-printf", "%p %s %m\\n"]);
        let before = listing(&root);
        let confined = |output: PathBuf| {
            let repo_path = root.join("repo");
            confine::run(Rules::program(&grant), None, move || {
                #[allow(clippy::disallowed_methods, reason = "the confined thread")]
                let repo = Repository::open(&repo_path).unwrap();
                let deadline = Instant::now() + std::time::Duration::from_secs(60);
                write(&repo, "HEAD", &options(ArchiveFormat::Zip, &output, ""), &output, BOUNDS, deadline)
            })
            .unwrap()
        };
        for output in ["site/escape/a.zip", "site/../outside/a.zip", "site/escape/new/a.zip", "repo/a.zip", "git/a.zip"]
        {
            match confined(root.join(output)) {
                Err(GitError::Denied(why)) => assert!(why.contains("outside the plugin's writable grants"), "{why}"),
                other => panic!("{output}: not refused by the kernel: {other:?}"),
            }
            assert_eq!(listing(&root), before, "{output}");
        }
        let output = root.join("site/out/a.zip");
        let written = confined(output.clone());
        assert!(written.is_ok(), "{written:?}");
        assert!(output.is_file());
        assert_eq!(std::fs::read_to_string(root.join("outside/victim")).unwrap(), "untouched");
    }
}
