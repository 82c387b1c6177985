//! Which paths of a tree `archive` leaves out: `export-ignore` read from the tree's
//! `.gitattributes` files and the caller's `exclude` patterns, both matched by git's
//! rules (gitattributes(5), and `attr.c`, `dir.c`, `wildmatch.c` in git's source): a
//! pattern without a slash matches a name at any depth below its file's directory, one
//! with a slash matches the path from there, a trailing slash matches only directories;
//! for each path, deeper files win over shallower ones and later lines over earlier
//! ones. Reading the blobs is the walk's business ([`super`]); this module only parses
//! and matches.

use std::collections::{HashMap, HashSet};

/// What git ignores: an attributes line this long or longer (`ATTR_MAX_LINE_LENGTH`).
const MAX_LINE: usize = 2048;
/// What git ignores: an attributes file this large or larger (`ATTR_MAX_FILE_SIZE`).
pub const MAX_FILE: usize = 100 << 20;

/// A parsed pattern, as git's `parse_path_pattern` leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern without a trailing `/` (a leading one stays: it anchors the match).
    text: Vec<u8>,
    /// Bytes before the first wildcard character, compared literally.
    literal: usize,
    /// Trailing `/`: only directories match.
    must_be_dir: bool,
    /// No `/` in the pattern: it matches the path's last component at any depth.
    basename: bool,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An empty pattern.
    #[error("an empty pattern matches nothing")]
    Empty,
    /// `!pattern`: git forbids negative patterns in attributes.
    #[error("`{0}`: negative patterns are not allowed (use `\\!` for a literal `!`)")]
    Negative(String),
}

impl Pattern {
    /// Parses `text` as one pattern.
    pub fn parse(text: &[u8]) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text[0] == b'!' {
            return Err(PatternError::Negative(String::from_utf8_lossy(text).into_owned()));
        }
        let mut text = text.to_vec();
        let must_be_dir = text.last() == Some(&b'/');
        if must_be_dir {
            text.pop();
        }
        let basename = !text.contains(&b'/');
        let literal = text.iter().position(|b| b"*?[\\".contains(b)).unwrap_or(text.len());
        Ok(Self { text, literal, must_be_dir, basename })
    }

    /// Whether the pattern, from a file in directory `base` (`/`-separated, no trailing
    /// slash, empty for the root), matches `path` (a directory when `dir`).
    fn matches(&self, path: &[u8], dir: bool, base: &[u8]) -> bool {
        if self.must_be_dir && !dir {
            return false;
        }
        if self.basename {
            let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            return wildmatch(&self.text, name, false);
        }
        // `match_pathname`: the pattern has `base/` implicitly in front of it.
        let (mut pattern, mut literal) = (self.text.as_slice(), self.literal);
        if let Some(rest) = pattern.strip_prefix(b"/") {
            pattern = rest;
            literal -= 1;
        }
        let name = if base.is_empty() {
            path
        } else {
            match path.strip_prefix(base).and_then(|rest| rest.strip_prefix(b"/")) {
                Some(name) => name,
                None => return false,
            }
        };
        if literal > 0 {
            if literal > name.len() || pattern[..literal] != name[..literal] {
                return false;
            }
            if pattern.len() == literal && name.len() == literal {
                return true;
            }
            // As git does: the rest is matched on its own, so a `**` right after the
            // literal part counts as at the pattern's start.
            return wildmatch(&pattern[literal..], &name[literal..], true);
        }
        wildmatch(pattern, name, true)
    }
}

/// What a line sets an attribute to, as far as `export-ignore` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `name`: set (for `export-ignore`, leave the path out; for a macro, apply it).
    Set,
    /// `-name`, `!name` or `name=value`: determined, and not set.
    NotSet,
}

/// A line's attributes, in the order written.
type Attributes = Vec<(Vec<u8>, State)>;

/// One meaningful line of a `.gitattributes` file.
#[derive(Debug, Clone)]
enum Line {
    /// `pattern attributes...`
    Pattern(Pattern, Attributes),
    /// `[attr]name attributes...`: a macro (honoured only in the root's file, as git does).
    Macro(Vec<u8>, Attributes),
}

/// The pattern lines of one `.gitattributes` file.
#[derive(Debug, Clone, Default)]
struct File {
    lines: Vec<(Pattern, Attributes)>,
}

/// `export-ignore` as a tree's `.gitattributes` files say, and the caller's `exclude`
/// patterns.
#[derive(Debug, Default)]
pub struct Rules {
    /// Parsed attribute files, by the directory that holds them (no trailing slash,
    /// empty for the root).
    files: HashMap<Vec<u8>, File>,
    /// Macros the root's file defines (a later definition wins), by name.
    macros: HashMap<Vec<u8>, Attributes>,
    /// Patterns that leave a path out whatever the attributes say, relative to the root.
    exclude: Vec<Pattern>,
}

impl Rules {
    /// Rules with `exclude` patterns and no attribute files yet.
    pub fn new(exclude: Vec<Pattern>) -> Self {
        Self { files: HashMap::new(), macros: HashMap::new(), exclude }
    }

    /// Reads the `.gitattributes` file of directory `dir` (no trailing slash, empty for
    /// the root), and says how many pattern lines it kept. A file git would ignore as too
    /// large is ignored, as git does.
    pub fn add_file(&mut self, dir: &[u8], content: &[u8]) -> usize {
        if content.len() >= MAX_FILE {
            return 0;
        }
        let content = content.strip_prefix(b"\xef\xbb\xbf").unwrap_or(content);
        // Git reads the file as a C string: nothing after a NUL byte.
        let content = &content[..content.iter().position(|&b| b == 0).unwrap_or(content.len())];
        let mut lines = Vec::new();
        for line in content.split(|&b| b == b'\n').filter_map(parse_line) {
            match line {
                Line::Pattern(pattern, attributes) => lines.push((pattern, attributes)),
                // Git refuses macros anywhere but the top level.
                Line::Macro(name, attributes) if dir.is_empty() => {
                    self.macros.insert(name, attributes);
                }
                Line::Macro(..) => {}
            }
        }
        let kept = lines.len();
        self.files.insert(dir.to_vec(), File { lines });
        kept
    }

    /// Whether `path` (relative to the repository root; a directory when `dir`) is left
    /// out. Its ancestors are the caller's to check: a directory left out is not entered.
    pub fn leaves_out(&self, path: &[u8], dir: bool) -> bool {
        self.exclude.iter().any(|pattern| pattern.matches(path, dir, b"")) || self.export_ignore(path, dir)
    }

    /// `export-ignore` for `path`, as git's `fill` finds it: the deepest `.gitattributes`
    /// above it first, each file's last line first, each line's last attribute first;
    /// the first that determines `export-ignore` (directly, or through a macro set on
    /// the path) decides.
    fn export_ignore(&self, path: &[u8], dir: bool) -> bool {
        let mut determined = HashSet::new();
        let mut end = path.len();
        loop {
            end = path[..end].iter().rposition(|&b| b == b'/').unwrap_or(0);
            let base = &path[..end];
            if let Some(file) = self.files.get(base) {
                for (pattern, attributes) in file.lines.iter().rev() {
                    if pattern.matches(path, dir, base)
                        && let Some(ignored) = self.fill(attributes, &mut determined)
                    {
                        return ignored;
                    }
                }
            }
            if end == 0 {
                return false;
            }
        }
    }

    /// Git's `fill_one`: applies `attributes` (last first) to those not determined yet,
    /// expanding a macro that is set; `Some(ignored)` once `export-ignore` is determined.
    fn fill<'a>(&'a self, attributes: &'a Attributes, determined: &mut HashSet<&'a [u8]>) -> Option<bool> {
        for (name, state) in attributes.iter().rev() {
            if !determined.insert(name.as_slice()) {
                continue;
            }
            if name == b"export-ignore" {
                return Some(*state == State::Set);
            }
            if *state == State::Set
                && let Some(members) = self.macros.get(name)
                && let Some(ignored) = self.fill(members, determined)
            {
                return Some(ignored);
            }
        }
        None
    }
}

/// Parses one line of a `.gitattributes` file (git's `parse_attr_line`), or `None` when
/// git would ignore it (a comment, a negative pattern, an invalid attribute name, a
/// line too long).
fn parse_line(line: &[u8]) -> Option<Line> {
    const BLANK: &[u8] = b" \t\r\n";
    if line.len() >= MAX_LINE {
        return None;
    }
    let start = line.iter().position(|b| !BLANK.contains(b))?;
    let line = &line[start..];
    if line[0] == b'#' {
        return None;
    }
    let (pattern, rest) = match unquote(line) {
        Some(quoted) => quoted,
        None => {
            let end = line.iter().position(|b| BLANK.contains(b)).unwrap_or(line.len());
            (line[..end].to_vec(), &line[end..])
        }
    };
    let mut attributes = Vec::new();
    for token in rest.split(|b| BLANK.contains(b)).filter(|token| !token.is_empty()) {
        let (name, value) = match token.iter().position(|&b| b == b'=') {
            Some(at) => (&token[..at], Some(&token[at + 1..])),
            None => (token, None),
        };
        let (name, prefixed) = match name.first() {
            Some(b'-' | b'!') => (&name[1..], true),
            _ => (name, false),
        };
        if !valid_name(name) {
            // Git drops the whole line.
            return None;
        }
        let state = if prefixed || value.is_some() { State::NotSet } else { State::Set };
        attributes.push((name.to_vec(), state));
    }
    if let Some(name) = pattern.strip_prefix(b"[attr]").filter(|name| !name.is_empty()) {
        return valid_name(name).then(|| Line::Macro(name.to_vec(), attributes));
    }
    let pattern = Pattern::parse(&pattern).ok()?;
    Some(Line::Pattern(pattern, attributes))
}

/// Git's `attr_name_valid` and `attr_name_reserved`.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name[0] != b'-'
        && !name.starts_with(b"builtin_")
        && name.iter().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(b))
}

/// A pattern written in double quotes with C escapes (git's `unquote_c_style`), and the
/// rest of the line after it; `None` when the line does not start with a valid one.
fn unquote(line: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut rest = line.strip_prefix(b"\"")?;
    let mut out = Vec::new();
    loop {
        let (&byte, after) = rest.split_first()?;
        rest = after;
        match byte {
            b'"' => return Some((out, rest)),
            b'\\' => {
                let (&escaped, after) = rest.split_first()?;
                rest = after;
                out.push(match escaped {
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 0x0b,
                    b'\\' | b'"' => escaped,
                    b'0'..=b'3' => {
                        let digits = rest.get(..2)?;
                        if !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                            return None;
                        }
                        rest = &rest[2..];
                        ((escaped - b'0') << 6) | ((digits[0] - b'0') << 3) | (digits[1] - b'0')
                    }
                    _ => return None,
                });
            }
            _ => out.push(byte),
        }
    }
}

/// What one step of [`dowild`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wild {
    Match,
    NoMatch,
    /// No match, and no later position of an enclosing `*` can match either.
    AbortAll,
    /// No match; only an enclosing `**` may go on trying.
    AbortToStarStar,
}

/// Git's `wildmatch`: whether `text` matches `pattern`. With `pathname`, `*`, `?` and
/// classes do not match `/`, and `**` between slashes matches any number of directories.
pub fn wildmatch(pattern: &[u8], text: &[u8], pathname: bool) -> bool {
    dowild(pattern, 0, text, 0, pathname) == Wild::Match
}

/// A port of git's `dowild` (wildmatch.c): the pattern from `p`, the text from `t`;
/// past either end reads as NUL, as in C.
fn dowild(pattern: &[u8], mut p: usize, text: &[u8], mut t: usize, pathname: bool) -> Wild {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    while at(pattern, p) != 0 {
        let mut p_ch = at(pattern, p);
        let t_ch = at(text, t);
        if t_ch == 0 && p_ch != b'*' {
            return Wild::AbortAll;
        }
        match p_ch {
            b'?' => {
                if pathname && t_ch == b'/' {
                    return Wild::NoMatch;
                }
            }
            b'*' => {
                let match_slash;
                p += 1;
                if at(pattern, p) == b'*' {
                    let prev = p.checked_sub(2);
                    while at(pattern, p) == b'*' {
                        p += 1;
                    }
                    let after_slash = prev.is_none_or(|prev| pattern[prev] == b'/');
                    let before_slash = at(pattern, p) == 0
                        || at(pattern, p) == b'/'
                        || (at(pattern, p) == b'\\' && at(pattern, p + 1) == b'/');
                    if !pathname {
                        // Without pathname matching, `**` is `*`, and `*` crosses slashes.
                        match_slash = true;
                    } else if after_slash && before_slash {
                        if at(pattern, p) == b'/' && dowild(pattern, p + 1, text, t, pathname) == Wild::Match {
                            return Wild::Match;
                        }
                        match_slash = true;
                    } else {
                        match_slash = false;
                    }
                } else {
                    match_slash = !pathname;
                }
                if at(pattern, p) == 0 {
                    // A trailing `**` matches everything, a trailing `*` everything
                    // without another slash.
                    if !match_slash && text[t.min(text.len())..].contains(&b'/') {
                        return Wild::NoMatch;
                    }
                    return Wild::Match;
                }
                if !match_slash && at(pattern, p) == b'/' {
                    // One `*` then a slash: the rest of this directory's name.
                    match text[t.min(text.len())..].iter().position(|&b| b == b'/') {
                        Some(slash) => {
                            t += slash;
                            // The slash is consumed below, with the pattern's.
                            p += 1;
                            t += 1;
                            continue;
                        }
                        None => return Wild::NoMatch,
                    }
                }
                let mut t_ch = t_ch;
                loop {
                    if t_ch == 0 {
                        break;
                    }
                    let next = at(pattern, p);
                    if !b"*?[\\".contains(&next) {
                        // A literal after the star: skip ahead to where it occurs.
                        while at(text, t) != 0 && (match_slash || at(text, t) != b'/') {
                            if at(text, t) == next {
                                break;
                            }
                            t += 1;
                        }
                        if at(text, t) != next {
                            return if match_slash { Wild::AbortAll } else { Wild::AbortToStarStar };
                        }
                    }
                    t_ch = at(text, t);
                    let matched = dowild(pattern, p, text, t, pathname);
                    if matched != Wild::NoMatch {
                        if !match_slash || matched != Wild::AbortToStarStar {
                            return matched;
                        }
                    } else if !match_slash && t_ch == b'/' {
                        return Wild::AbortToStarStar;
                    }
                    t += 1;
                    t_ch = at(text, t);
                }
                return Wild::AbortAll;
            }
            b'[' => {
                p += 1;
                p_ch = at(pattern, p);
                if p_ch == b'^' {
                    p_ch = b'!';
                }
                let negated = p_ch == b'!';
                if negated {
                    p += 1;
                    p_ch = at(pattern, p);
                }
                let mut prev_ch = 0u8;
                let mut matched = false;
                loop {
                    if p_ch == 0 {
                        return Wild::AbortAll;
                    }
                    if p_ch == b'\\' {
                        p += 1;
                        p_ch = at(pattern, p);
                        if p_ch == 0 {
                            return Wild::AbortAll;
                        }
                        if t_ch == p_ch {
                            matched = true;
                        }
                    } else if p_ch == b'-' && prev_ch != 0 && at(pattern, p + 1) != 0 && at(pattern, p + 1) != b']' {
                        p += 1;
                        p_ch = at(pattern, p);
                        if p_ch == b'\\' {
                            p += 1;
                            p_ch = at(pattern, p);
                            if p_ch == 0 {
                                return Wild::AbortAll;
                            }
                        }
                        if t_ch <= p_ch && t_ch >= prev_ch {
                            matched = true;
                        }
                        p_ch = 0;
                    } else if p_ch == b'[' && at(pattern, p + 1) == b':' {
                        let start = p + 2;
                        let mut end = start;
                        while at(pattern, end) != 0 && at(pattern, end) != b']' {
                            end += 1;
                        }
                        if at(pattern, end) == 0 {
                            return Wild::AbortAll;
                        }
                        if end == start || pattern[end - 1] != b':' {
                            // No `:]`: a plain `[` in the set.
                            if t_ch == b'[' {
                                matched = true;
                            }
                            p_ch = b'[';
                        } else {
                            p = end;
                            let Some(class) = class(&pattern[start..end - 1], t_ch) else {
                                return Wild::AbortAll;
                            };
                            matched |= class;
                            p_ch = 0;
                        }
                    } else if t_ch == p_ch {
                        matched = true;
                    }
                    prev_ch = p_ch;
                    p += 1;
                    p_ch = at(pattern, p);
                    if p_ch == b']' {
                        break;
                    }
                }
                if matched == negated || (pathname && t_ch == b'/') {
                    return Wild::NoMatch;
                }
            }
            _ => {
                if p_ch == b'\\' {
                    p += 1;
                    p_ch = at(pattern, p);
                }
                if t_ch != p_ch {
                    return Wild::NoMatch;
                }
            }
        }
        p += 1;
        t += 1;
    }
    if at(text, t) != 0 { Wild::NoMatch } else { Wild::Match }
}

/// Whether `c` is in the POSIX class `name` (`None`: no such class).
fn class(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// Patterns that exercise git's matching: anchors, trailing slashes, `**` in every
    /// position, classes, escapes, quoting, and git's own quirks (`foo**/bar`).
    const PATTERNS: &[&str] = &[
        "*",
        "*.md",
        "a",
        "a/",
        "/a",
        "a/b",
        "a/**",
        "**/b",
        "a/**/c",
        "**",
        "b*",
        "?",
        "[ab]",
        "[!a]*",
        "[^a]",
        "[a-c]/x",
        "\\*x",
        "a*/b",
        "foo**/bar",
        "*/b",
        "a/*",
        "a/*/c",
        "x/**/",
        "\"q w\"",
        "[[:alpha:]]*",
        "[[:digit:]]",
        "*[",
        "[]]",
        "[!]]x",
        "b/",
        "/b/",
        "*b/c",
        "a/b/",
        "**/x/**",
        "a/**/",
        "[a-]",
        "[[:bogus:]]",
        "\\[",
        "*/",
        "/**",
        "x/y",
        "a//b",
        "\\!x",
    ];
    /// Paths to ask about; a trailing `/` marks a directory.
    const PATHS: &[&str] = &[
        "a",
        "a/",
        "b",
        "b/",
        "a/b",
        "a/b/",
        "a/b/c",
        "a/x/c",
        "a/x/y/c",
        "x/a",
        "x/a/",
        "x/b",
        "x/b/",
        "foo/bar",
        "foox/bar",
        "foo/x/bar",
        "q w",
        "*x",
        "ax",
        "1",
        "]",
        "]x",
        "c/x",
        "a/b/c/",
        "A",
        "x/y/b/",
        ".md",
        "r.md",
        "x/r.md",
        "[",
        "x/y",
        "x/y/",
        "a/x/",
        "-",
        "!x",
        "a/b/x",
    ];

    /// What `git check-attr` says about `export-ignore` for each of `paths`, with
    /// `files` (directory, content) as the `.gitattributes` files of a fresh repository.
    fn git_says(files: &[(&str, &str)], paths: &[&str]) -> Vec<bool> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let git = |args: &[&str]| Command::new("git").args(args).current_dir(root).output().unwrap();
        assert!(git(&["init", "-q"]).status.success());
        for (sub, content) in files {
            std::fs::create_dir_all(root.join(sub)).unwrap();
            std::fs::write(Path::new(root).join(sub).join(".gitattributes"), content).unwrap();
        }
        let mut child = Command::new("git")
            .args(["check-attr", "-z", "--stdin", "export-ignore"])
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input: Vec<u8> = paths.iter().flat_map(|path| [path.as_bytes(), b"\0"].concat()).collect();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let fields: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        fields.chunks(3).filter(|chunk| chunk.len() == 3).map(|chunk| chunk[2] == b"set").collect()
    }

    fn we_say(files: &[(&str, &str)], paths: &[&str]) -> Vec<bool> {
        let mut rules = Rules::new(Vec::new());
        for (sub, content) in files {
            let _ = rules.add_file(sub.as_bytes(), content.as_bytes());
        }
        paths
            .iter()
            .map(|path| {
                let dir = path.ends_with('/');
                rules.leaves_out(path.trim_end_matches('/').as_bytes(), dir)
            })
            .collect()
    }

    /// Every pattern, in the root's file and in `a/`'s, decides every path as
    /// `git check-attr` does.
    #[test]
    fn patterns_match_as_git_check_attr_says() {
        let mut differences = Vec::new();
        for pattern in PATTERNS {
            for dir in ["", "a"] {
                let files = [(dir, format!("{pattern} export-ignore\n"))];
                let files: Vec<(&str, &str)> = files.iter().map(|(dir, text)| (*dir, text.as_str())).collect();
                let (git, ours) = (git_says(&files, PATHS), we_say(&files, PATHS));
                assert_eq!(git.len(), PATHS.len(), "git answered for every path");
                for ((path, git), ours) in PATHS.iter().zip(git).zip(ours) {
                    if git != ours {
                        differences.push(format!(
                            "pattern {pattern:?} in {dir:?}/.gitattributes, path {path:?}: git {git}, ours {ours}"
                        ));
                    }
                }
            }
        }
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }

    /// Deeper files override shallower ones, later lines earlier ones; `-`, `!` and a
    /// value keep a path; a line with an invalid attribute or a negative pattern says
    /// nothing; an unterminated quote is read as a plain pattern; macros the root's file
    /// defines apply when set (nested too), and one defined deeper is ignored.
    #[test]
    fn precedence_and_odd_lines_are_read_as_git_reads_them() {
        let files: &[(&str, &str)] = &[
            (
                "",
                "*.txt export-ignore\nkeep.txt -export-ignore\nkept.txt export-ignore=no\nb/ export-ignore\n\
                 !neg export-ignore\nbad -bad export-ignore\n[attr]m export-ignore\n\"unterminated export-ignore\n\
                 x.txt foo export-ignore -export-ignore\ny.txt -export-ignore export-ignore\n\
                 [attr]rel export-ignore\n[attr]keepme -export-ignore\n[attr]nested rel\n[attr]odd export-ignore\n",
            ),
            ("a", "*.txt -export-ignore\nsecret.txt export-ignore\n[attr]sub export-ignore\n*.sub sub\n*.log -rel\n"),
            (
                "m",
                "*.log rel\nimportant.log keepme\n*.tmp nested\n*.bak -rel\n*.both rel -export-ignore\n\
                 *.first -export-ignore rel\n*.odd odd\n*.odd -odd\n",
            ),
            ("a/b", "\u{feff}deep.txt !export-ignore\nz export-ignore\n"),
        ];
        let paths = [
            "r.txt",
            "keep.txt",
            "kept.txt",
            "neg",
            "bad",
            "m",
            "\"unterminated",
            "x.txt",
            "y.txt",
            "a/b/z",
            "b/",
            "a/r.txt",
            "a/secret.txt",
            "a/b/deep.txt",
            "a/b/other.txt",
            "a/b/",
            "c/b/",
            "a/q.sub",
            "a/x.log",
            "m/x.log",
            "m/important.log",
            "m/y.tmp",
            "m/z.bak",
            "m/w.both",
            "m/w.first",
            "m/v.odd",
        ];
        assert_eq!(we_say(files, &paths), git_says(files, &paths));
    }

    /// A port of the tests git runs on its wildmatch (t3070), the cases without case
    /// folding: (matches with pathname, matches without, pattern, text).
    #[test]
    fn wildmatch_agrees_with_gits_tests() {
        let table: &[(bool, bool, &str, &str)] = &[
            (true, true, "foo", "foo"),
            (false, false, "foo", "bar"),
            (true, true, "", ""),
            (true, true, "???", "foo"),
            (false, false, "??", "foo"),
            (true, true, "*", "foo"),
            (true, true, "f*", "foo"),
            (false, false, "*f", "foo"),
            (true, true, "*foo*", "foo"),
            (true, true, "*ob*a*r*", "foobar"),
            (true, true, "*ab", "aaaaaaabababab"),
            (true, true, "foo\\*", "foo*"),
            (false, false, "foo\\*bar", "foobar"),
            (true, true, "f\\\\oo", "f\\oo"),
            (true, true, "*[al]?", "ball"),
            (false, false, "[ten]", "ten"),
            (true, true, "**[!te]", "ten"),
            (false, false, "**[!ten]", "ten"),
            (true, true, "t[a-g]n", "ten"),
            (false, false, "t[!a-g]n", "ten"),
            (true, true, "t[!a-g]n", "ton"),
            (true, true, "t[^a-g]n", "ton"),
            (true, true, "a[]]b", "a]b"),
            (true, true, "a[]-]b", "a-b"),
            (true, true, "a[]-]b", "a]b"),
            (false, false, "a[]-]b", "aab"),
            (true, true, "a[]a-]b", "aab"),
            (true, true, "]", "]"),
            (false, true, "foo*bar", "foo/baz/bar"),
            (false, true, "foo**bar", "foo/baz/bar"),
            (true, true, "foo**bar", "foobazbar"),
            (true, true, "foo/**/bar", "foo/baz/bar"),
            (true, false, "foo/**/**/bar", "foo/baz/bar"),
            (true, true, "foo/**/bar", "foo/b/a/z/bar"),
            (true, true, "foo/**/**/bar", "foo/b/a/z/bar"),
            (true, false, "foo/**/bar", "foo/bar"),
            (true, false, "foo/**/**/bar", "foo/bar"),
            (false, true, "foo?bar", "foo/bar"),
            (false, true, "foo[/]bar", "foo/bar"),
            (false, true, "foo[^a-z]bar", "foo/bar"),
            (false, true, "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo/bar"),
            (true, true, "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo-bar"),
            (true, false, "**/foo", "foo"),
            (true, true, "**/foo", "XXX/foo"),
            (true, true, "**/foo", "bar/baz/foo"),
            (false, true, "*/foo", "bar/baz/foo"),
            (false, true, "**/bar*", "foo/bar/baz"),
            (true, true, "**/bar/*", "deep/foo/bar/baz"),
            (false, true, "**/bar/*", "deep/foo/bar/baz/"),
            (true, true, "**/bar/**", "deep/foo/bar/baz/"),
            (false, false, "**/bar/*", "deep/foo/bar"),
            (true, true, "**/bar/**", "deep/foo/bar/"),
            (false, true, "**/bar**", "foo/bar/baz"),
            (true, true, "*/bar/**", "foo/bar/baz/x"),
            (false, true, "*/bar/**", "deep/foo/bar/baz/x"),
            (true, true, "**/bar/*/*", "deep/foo/bar/baz/x"),
            (false, false, "a[c-c]st", "acrt"),
            (true, true, "a[c-c]rt", "acrt"),
            (false, false, "[!]-]", "]"),
            (true, true, "[!]-]", "a"),
            (false, false, "\\", ""),
            (false, false, "\\", "\\"),
            (false, false, "*/\\", "/\\"),
            (true, true, "*/\\\\", "/\\"),
            (true, true, "foo", "foo"),
            (true, true, "@foo", "@foo"),
            (false, false, "@foo", "foo"),
            (true, true, "\\[ab]", "[ab]"),
            (true, true, "[[]ab]", "[ab]"),
            (true, true, "[[:]ab]", "[ab]"),
            (false, false, "[[::]ab]", "[ab]"),
            (true, true, "[[:digit]ab]", "[ab]"),
            (true, true, "[\\[:]ab]", "[ab]"),
            (true, true, "\\??\\?b", "?a?b"),
            (true, true, "\\a\\b\\c", "abc"),
            (false, false, "", "foo"),
            (true, true, "**/t[o]", "foo/bar/baz/to"),
            (true, true, "[[:alpha:]][[:digit:]][[:upper:]]", "a1B"),
            (false, false, "[[:digit:][:upper:][:space:]]", "a"),
            (true, true, "[[:digit:][:upper:][:space:]]", "A"),
            (true, true, "[[:digit:][:upper:][:space:]]", "1"),
            (false, false, "[[:digit:][:upper:][:spaci:]]", "1"),
            (true, true, "[[:digit:][:upper:][:space:]]", " "),
            (false, false, "[[:digit:][:upper:][:space:]]", "."),
            (true, true, "[[:digit:][:punct:][:space:]]", "."),
            (true, true, "[[:xdigit:]]", "5"),
            (true, true, "[[:xdigit:]]", "f"),
            (true, true, "[[:xdigit:]]", "D"),
            (true, true, "[a-c[:digit:]x-z]", "5"),
            (true, true, "[a-c[:digit:]x-z]", "b"),
            (true, true, "[a-c[:digit:]x-z]", "y"),
            (false, false, "[a-c[:digit:]x-z]", "q"),
            (true, true, "[\\\\-^]", "]"),
            (false, false, "[\\\\-^]", "["),
            (true, true, "[\\-_]", "-"),
            (true, true, "[\\]]", "]"),
            (false, false, "[\\]]", "\\]"),
            (false, false, "[\\]]", "\\"),
            (false, false, "a[]b", "ab"),
            (false, false, "a[]b", "a[]b"),
            (false, false, "ab[", "ab["),
            (false, false, "[!", "ab"),
            (false, false, "[-", "ab"),
            (true, true, "[-]", "-"),
            (false, false, "[a-", "-"),
            (false, false, "[!a-", "-"),
            (true, true, "[--A]", "-"),
            (true, true, "[--A]", "5"),
            (true, true, "[ --]", " "),
            (true, true, "[ --]", "$"),
            (true, true, "[ --]", "-"),
            (false, false, "[ --]", "0"),
            (true, true, "[---]", "-"),
            (true, true, "[------]", "-"),
            (false, false, "[a-e-n]", "j"),
            (true, true, "[a-e-n]", "-"),
            (true, true, "[!------]", "a"),
            (false, false, "[]-a]", "["),
            (true, true, "[]-a]", "^"),
            (false, false, "[!]-a]", "^"),
            (true, true, "[!]-a]", "["),
            (true, true, "[a^bc]", "^"),
            (true, true, "[a-]b]", "-b]"),
            (false, false, "[\\]", "\\"),
            (true, true, "[\\\\]", "\\"),
            (false, false, "[!\\\\]", "\\"),
            (true, true, "[A-\\\\]", "G"),
            (false, false, "b*a", "aaabbb"),
            (false, false, "*ba*", "aabcaa"),
            (true, true, "[,]", ","),
            (true, true, "[\\\\,]", ","),
            (true, true, "[\\\\,]", "\\"),
            (true, true, "[,-.]", "-"),
            (false, false, "[,-.]", "+"),
            (false, false, "[,-.]", "-.]"),
            (true, true, "[\\1-\\3]", "2"),
            (true, true, "[\\1-\\3]", "3"),
            (false, false, "[\\1-\\3]", "4"),
            (true, true, "[[-\\]]", "\\"),
            (true, true, "[[-\\]]", "["),
            (true, true, "[[-\\]]", "]"),
            (false, false, "[[-\\]]", "-"),
            (true, true, "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1"),
            (
                false,
                false,
                "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
                "-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1",
            ),
            (
                false,
                false,
                "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
                "-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1",
            ),
            (
                true,
                true,
                "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
                "XXX/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1",
            ),
            (
                false,
                false,
                "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
                "XXX/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1",
            ),
            (true, true, "**/*a*b*g*n*t", "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt"),
            (false, false, "**/*a*b*g*n*t", "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz"),
            (false, false, "*/*/*", "foo"),
            (false, false, "*/*/*", "foo/bar"),
            (true, true, "*/*/*", "foo/bba/arr"),
            (false, true, "*/*/*", "foo/bb/aa/rr"),
            (true, true, "**/**/**", "foo/bb/aa/rr"),
            (true, true, "*X*i", "abcXdefXghi"),
            (false, true, "*X*i", "ab/cXd/efXg/hi"),
            (true, true, "*/*X*/*/*i", "ab/cXd/efXg/hi"),
            (true, true, "**/*X*/**/*i", "ab/cXd/efXg/hi"),
        ];
        let mut wrong = Vec::new();
        for (pathname, plain, pattern, text) in table {
            let got = (
                wildmatch(pattern.as_bytes(), text.as_bytes(), true),
                wildmatch(pattern.as_bytes(), text.as_bytes(), false),
            );
            if got != (*pathname, *plain) {
                wrong.push(format!("{pattern:?} ~ {text:?}: want {:?}, got {got:?}", (pathname, plain)));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
