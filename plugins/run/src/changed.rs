//! `changed_only`: the paths the event changed, from the checkout's `refs/gitauto/base`
//! to `HEAD` (or, without that ref, from the event's complete commit lists), without
//! removed ones, filtered by the `paths` globs, as arguments relative to the working
//! directory. Running the program is the plugin's business.

use gitauto_plugin::Event;
use gitauto_plugin::git::{ChangeKind, GitError, Repository};
use regex::Regex;
use std::collections::BTreeSet;

/// The ref the host sets in a job checkout to what the event's changes start from.
pub const BASE: &str = "refs/gitauto/base";

/// The paths the event changed in the repository at `root`, without removed ones.
pub fn changed(event: &Event, root: &str) -> Result<Vec<String>, String> {
    let repo = Repository::open(root).map_err(|err| format!("`changed_only`: opening {root}: {}", err.message()))?;
    match repo.resolve(BASE) {
        Ok(_) => {
            let changes = repo
                .changed_paths(BASE, "HEAD")
                .map_err(|err| format!("`changed_only`: comparing {BASE} with HEAD: {}", err.message()))?;
            Ok(changes.into_iter().filter(|change| change.kind != ChangeKind::Removed).map(|c| c.path).collect())
        }
        Err(GitError::NotFound(_) | GitError::Invalid(_)) if event.commits_complete && !event.commits.is_empty() => {
            Ok(from_commits(event))
        }
        Err(GitError::NotFound(_) | GitError::Invalid(_)) => Err(format!(
            "`changed_only`: cannot tell which files the event changed: {root} has no `{BASE}` and the event's commit list is {}",
            if event.commits.is_empty() { "empty" } else { "incomplete" }
        )),
        Err(err) => Err(format!("`changed_only`: resolving {BASE} in {root}: {}", err.message())),
    }
}

/// The paths the event's commits leave added or modified, in order of first change.
fn from_commits(event: &Event) -> Vec<String> {
    let mut present: Vec<String> = Vec::new();
    for commit in &event.commits {
        for path in commit.added.iter().chain(&commit.modified) {
            if !present.contains(path) {
                present.push(path.clone());
            }
        }
        present.retain(|path| !commit.removed.contains(path));
    }
    present
}

/// An ordered list of globs in GitHub Actions' syntax (as the rules' `paths` filters:
/// `*` stays within a directory, `**` crosses them, `?` and `+` quantify the character
/// before, `[a-z]` classes, `\` escapes), where a `!` pattern excludes what it matches and
/// the last matching pattern decides. Empty: everything.
#[derive(Debug)]
pub struct Paths {
    patterns: Vec<(bool, Regex)>,
}

impl Paths {
    /// Compiles the `paths` setting.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let (negated, text) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern.as_str()),
            };
            if text.is_empty() {
                return Err("`paths`: an empty pattern".into());
            }
            let regex = Regex::new(&translate(text).map_err(|err| format!("`paths`: {err}"))?)
                .map_err(|err| format!("`paths`: `{text}`: {err}"))?;
            compiled.push((negated, regex));
        }
        if !compiled.is_empty() && compiled.iter().all(|(negated, _)| *negated) {
            return Err("`paths`: a list of only `!` patterns matches nothing: put a pattern such as `**` first".into());
        }
        Ok(Self { patterns: compiled })
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let mut selected = false;
        for (negated, regex) in &self.patterns {
            if regex.is_match(path) {
                selected = !negated;
            }
        }
        selected
    }
}

/// A glob as an anchored regular expression.
fn translate(glob: &str) -> Result<String, String> {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    // Whether the last thing written is one character or class a quantifier may follow.
    let mut atom = false;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
                atom = false;
            }
            '*' => {
                out.push_str("[^/]*");
                atom = false;
            }
            '?' | '+' if atom => {
                out.push(c);
                atom = false;
            }
            '?' | '+' => {
                return Err(format!(
                    "`{c}` in `{glob}` must follow a character it applies to (write `\\{c}` for a literal `{c}`)"
                ));
            }
            '\\' => {
                let next = chars.next().ok_or_else(|| format!("`{glob}` ends with a lone `\\`"))?;
                out.push_str(&regex::escape(&next.to_string()));
                atom = true;
            }
            '[' => {
                let mut class = String::from("[");
                loop {
                    match chars.next() {
                        None => return Err(format!("`[` without a closing `]` in `{glob}`")),
                        Some(']') if class.len() == 1 => return Err(format!("empty `[]` in `{glob}`")),
                        Some(']') => break,
                        Some('-') if class.len() > 1 && chars.peek() != Some(&']') => class.push('-'),
                        Some(other) => class.push_str(&regex::escape(&other.to_string())),
                    }
                }
                class.push(']');
                out.push_str(&class);
                atom = true;
            }
            other => {
                out.push_str(&regex::escape(&other.to_string()));
                atom = true;
            }
        }
    }
    out.push('$');
    Ok(out)
}

/// `path` (relative to the repository root `root`) relative to `cwd`, a directory at or
/// below `root`, as an argument no program reads as an option: a pushed file may be
/// named `-fplugin=x.so` or `@options`, so a path that does not start with a letter,
/// digit, `_` or `.` gets a leading `./` (`--` is not honoured by every tool).
pub fn relative_to(path: &str, root: &str, cwd: &str) -> String {
    let below = cwd.strip_prefix(root).unwrap_or("").trim_matches('/');
    let relative = if below.is_empty() {
        path.to_owned()
    } else {
        let cwd_parts: Vec<&str> = below.split('/').collect();
        let path_parts: Vec<&str> = path.split('/').collect();
        let common = cwd_parts.iter().zip(&path_parts).take_while(|(a, b)| a == b).count();
        let mut parts: Vec<&str> = vec![".."; cwd_parts.len() - common];
        parts.extend(&path_parts[common..]);
        parts.join("/")
    };
    match relative.chars().next() {
        Some(first) if first.is_ascii_alphanumeric() || first == '_' || first == '.' => relative,
        _ => format!("./{relative}"),
    }
}

/// The paths in `list` selected by `paths`, without repeats, in order.
pub fn select(list: Vec<String>, paths: &Paths) -> Vec<String> {
    let mut seen = BTreeSet::new();
    list.into_iter().filter(|path| paths.matches(path) && seen.insert(path.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_the_rules_paths_syntax() {
        let rows: &[(&[&str], &str, bool)] = &[
            (&[], "anything/at/all.txt", true),
            (&["**.py"], "app.py", true),
            (&["**.py"], "pkg/deep/util.py", true),
            (&["**.py"], "app.pyc", false),
            (&["*.py"], "app.py", true),
            (&["*.py"], "pkg/util.py", false),
            (&["src/**/*.js"], "src/a/b.js", true),
            (&["src/**/*.js"], "src/b.js", false),
            (&["**", "!docs/**"], "docs/x.md", false),
            (&["**", "!docs/**"], "src/x.md", true),
            (&["**", "!docs/**", "docs/keep.md"], "docs/keep.md", true),
            (&["v[12].py"], "v2.py", true),
            (&["v[12].py"], "v3.py", false),
            (&["a\\*b"], "a*b", true),
            (&["a\\*b"], "axb", false),
            (&["file.c+"], "file.ccc", true),
            (&["(x).py"], "(x).py", true),
        ];
        for (patterns, path, want) in rows {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            assert_eq!(Paths::new(&patterns).unwrap().matches(path), *want, "{patterns:?} {path}");
        }
        for bad in [&["!x"][..], &["?x"], &["[ab"], &["[]"], &[""], &["x\\"]] {
            let bad: Vec<String> = bad.iter().map(|p| p.to_string()).collect();
            assert!(Paths::new(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_become_relative_to_the_working_directory() {
        let rows = [
            ("app.py", "/c", "/c", "app.py"),
            ("app.py", "/c", "/c/", "app.py"),
            ("sub/app.py", "/c", "/c/sub", "app.py"),
            ("sub/deep/app.py", "/c", "/c/sub", "deep/app.py"),
            ("other/app.py", "/c", "/c/sub", "../other/app.py"),
            ("app.py", "/c", "/c/a/b", "../../app.py"),
            // Names a program would read as options or response files stay paths.
            ("-fplugin=x.so", "/c", "/c", "./-fplugin=x.so"),
            ("@opts", "/c", "/c", "./@opts"),
            ("sub/-x.py", "/c", "/c/sub", "./-x.py"),
            ("+cmd", "/c", "/c", "./+cmd"),
            (".github/a.py", "/c", "/c", ".github/a.py"),
        ];
        for (path, root, cwd, want) in rows {
            assert_eq!(relative_to(path, root, cwd), want, "{path} {root} {cwd}");
        }
    }

    fn commit(added: &[&str], modified: &[&str], removed: &[&str]) -> gitauto_plugin::Commit {
        let list = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect();
        gitauto_plugin::Commit {
            id: "0".repeat(40),
            message: String::new(),
            author: String::new(),
            timestamp: String::new(),
            url: None,
            added: list(added),
            modified: list(modified),
            removed: list(removed),
        }
    }

    #[test]
    fn commit_lists_leave_what_the_last_commit_left() {
        let event = Event {
            delivery: String::new(),
            source: String::new(),
            forge: "github".into(),
            kind: "push".into(),
            action: None,
            repository: gitauto_plugin::Repository {
                owner: String::new(),
                name: String::new(),
                full_name: String::new(),
                clone_url: String::new(),
                html_url: String::new(),
                default_branch: None,
            },
            git_ref: None,
            branch: None,
            tag: None,
            before: None,
            after: None,
            deleted: false,
            commits: vec![
                commit(&["a.py", "gone.py"], &["b.py"], &[]),
                commit(&[], &["a.py"], &["gone.py"]),
                commit(&["c.py"], &[], &["b.py"]),
            ],
            commits_complete: true,
            sender: None,
            pull_request: None,
            payload: "{}".into(),
        };
        assert_eq!(from_commits(&event), ["a.py", "c.py"]);
    }

    #[test]
    fn selection_drops_repeats_and_unwanted_paths() {
        let paths = Paths::new(&["**.py".to_owned()]).unwrap();
        let list = vec!["a.py".into(), "b.txt".into(), "a.py".into(), "c/d.py".into()];
        assert_eq!(select(list, &paths), ["a.py", "c/d.py"]);
    }
}
