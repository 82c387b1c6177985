//! Branch, tag, repository and path filters in GitHub Actions' glob syntax, so users can
//! paste the filters they already have:
//!
//! - `*` matches any characters except `/`; `**` matches any characters;
//! - `?` makes the preceding character optional; `+` repeats it one or more times;
//! - `[abc]`, `[a-z0-9]` match one listed character; `\` escapes the next character;
//! - in a list, a pattern starting with `!` excludes what it matches, and later
//!   patterns override earlier ones.

use std::fmt;

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`
    Star,
    /// `**`
    DoubleStar,
    /// One character (or class), possibly quantified.
    Atom(Atom, Quantifier),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Char(char),
    Class(Vec<(char, char)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    One,
    Optional,
    OneOrMore,
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Char(want) => *want == c,
            Atom::Class(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)),
        }
    }
}

impl Glob {
    /// Compiles a pattern (without a leading `!`).
    pub fn new(text: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let atom = match c {
                '*' => {
                    if chars.peek() == Some(&'*') {
                        chars.next();
                        tokens.push(Token::DoubleStar);
                    } else {
                        tokens.push(Token::Star);
                    }
                    continue;
                }
                '?' | '+' => {
                    let quantifier = if c == '?' { Quantifier::Optional } else { Quantifier::OneOrMore };
                    match tokens.last_mut() {
                        Some(Token::Atom(_, q @ Quantifier::One)) => *q = quantifier,
                        _ => {
                            return Err(format!(
                                "`{c}` in `{text}` must follow a character it applies to (write `\\{c}` for a literal `{c}`)"
                            ));
                        }
                    }
                    continue;
                }
                '\\' => Atom::Char(chars.next().ok_or_else(|| format!("`{text}` ends with a lone `\\`"))?),
                '[' => Atom::Class(parse_class(text, &mut chars)?),
                other => Atom::Char(other),
            };
            tokens.push(Token::Atom(atom, Quantifier::One));
        }
        Ok(Self { text: text.to_owned(), tokens })
    }

    /// Whether `candidate` matches the whole pattern.
    pub fn matches(&self, candidate: &str) -> bool {
        let n = self.tokens.len();
        let mut current = vec![false; n + 1];
        current[0] = true;
        self.close(&mut current);
        let mut next = vec![false; n + 1];
        for c in candidate.chars() {
            next.iter_mut().for_each(|s| *s = false);
            for (i, token) in self.tokens.iter().enumerate() {
                if !current[i] {
                    continue;
                }
                match token {
                    Token::Star if c != '/' => next[i] = true,
                    Token::Star => {}
                    Token::DoubleStar => next[i] = true,
                    Token::Atom(atom, quantifier) if atom.matches(c) => {
                        next[i + 1] = true;
                        if *quantifier == Quantifier::OneOrMore {
                            next[i] = true;
                        }
                    }
                    Token::Atom(..) => {}
                }
            }
            self.close(&mut next);
            if !next.iter().any(|s| *s) {
                return false;
            }
            std::mem::swap(&mut current, &mut next);
        }
        current[n]
    }

    /// Adds the states reachable without consuming a character.
    fn close(&self, states: &mut [bool]) {
        for (i, token) in self.tokens.iter().enumerate() {
            let skippable = matches!(token, Token::Star | Token::DoubleStar | Token::Atom(_, Quantifier::Optional));
            if states[i] && skippable {
                states[i + 1] = true;
            }
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn parse_class(text: &str, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Vec<(char, char)>, String> {
    let mut ranges = Vec::new();
    loop {
        let c = chars.next().ok_or_else(|| format!("`[` without a closing `]` in `{text}`"))?;
        match c {
            ']' if ranges.is_empty() => return Err(format!("empty `[]` in `{text}`")),
            ']' => return Ok(ranges),
            lo => {
                if chars.peek() == Some(&'-') {
                    chars.next();
                    match chars.next() {
                        Some(']') | None => return Err(format!("unfinished range `{lo}-` in `{text}`")),
                        Some(hi) if hi < lo => return Err(format!("range `{lo}-{hi}` is backwards in `{text}`")),
                        Some(hi) => ranges.push((lo, hi)),
                    }
                } else {
                    ranges.push((lo, lo));
                }
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An ordered list of patterns, some negated with `!`; the last pattern that matches
/// decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    patterns: Vec<(bool, Glob)>,
}

impl Filter {
    /// Compiles a list as written in the config. A list of only negated patterns would
    /// match nothing, so it is refused.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let (negated, text) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern),
            };
            if text.is_empty() {
                return Err("empty pattern".into());
            }
            compiled.push((negated, Glob::new(text)?));
        }
        if !compiled.is_empty() && compiled.iter().all(|(negated, _)| *negated) {
            return Err("a list of only `!` patterns matches nothing: put a pattern such as `**` before them".into());
        }
        Ok(Self { patterns: compiled })
    }

    /// Whether the list has no patterns (and so filters nothing).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `candidate` is selected by the list.
    pub fn matches(&self, candidate: &str) -> bool {
        let mut selected = false;
        for (negated, glob) in &self.patterns {
            if glob.matches(candidate) {
                selected = !negated;
            }
        }
        selected
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (negated, glob)) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{glob}", if *negated { "!" } else { "" })?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let rows: &[(&str, &str, bool)] = &[
            ("main", "main", true),
            ("main", "mainline", false),
            ("*", "feature", true),
            ("*", "feature/x", false),
            ("**", "feature/x/y", true),
            ("**", "", true),
            ("releases/*", "releases/1.0", true),
            ("releases/*", "releases/1.0/hotfix", false),
            ("releases/**", "releases/1.0/hotfix", true),
            ("releases/**-alpha", "releases/beta/3-alpha", true),
            ("*-alpha", "v2-alpha", true),
            ("v1.?", "v1.", true),
            ("v1.?", "v1", true),
            ("v1.?", "v1.0", false),
            ("v2+", "v22", true),
            ("v2+", "v", false),
            ("v[12].[0-9]+.[0-9]+", "v1.10.3", true),
            ("v[12].[0-9]+.[0-9]+", "v3.10.3", false),
            ("docs/**/*.md", "docs/a/b/c.md", true),
            ("docs/**/*.md", "docs/c.md", false),
            ("**.md", "docs/c.md", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("acme/*", "acme/widgets", true),
            ("acme/*", "other/widgets", false),
        ];
        for (pattern, candidate, want) in rows {
            let glob = Glob::new(pattern).unwrap();
            assert_eq!(glob.matches(candidate), *want, "{pattern} ~ {candidate}");
        }
    }

    #[test]
    fn bad_globs() {
        let rows = [
            ("?x", "must follow a character"),
            ("*+", "must follow a character"),
            ("a??", "must follow a character"),
            ("[abc", "without a closing"),
            ("[]", "empty `[]`"),
            ("[a-]", "unfinished range"),
            ("[z-a]", "backwards"),
            ("x\\", "lone"),
        ];
        for (pattern, why) in rows {
            let err = Glob::new(pattern).unwrap_err();
            assert!(err.contains(why), "{pattern}: {err}");
        }
    }

    #[test]
    fn filters_let_later_patterns_override() {
        let filter = Filter::new(&["releases/**", "!releases/**-alpha", "releases/keep-alpha"]).unwrap();
        assert!(filter.matches("releases/1.0"));
        assert!(!filter.matches("releases/1.0-alpha"));
        assert!(filter.matches("releases/keep-alpha"));
        assert!(!filter.matches("main"));
        assert_eq!(filter.to_string(), "[releases/**, !releases/**-alpha, releases/keep-alpha]");
        assert!(Filter::new(&["!main"]).unwrap_err().contains("only `!` patterns"));
        assert!(Filter::new(&["!"]).is_err());
        assert!(Filter::new::<&str>(&[]).unwrap().is_empty());
    }
}
