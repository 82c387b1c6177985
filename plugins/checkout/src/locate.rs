//! Where a repository's checkout may be, computed from names that came from a webhook
//! payload and so must never become a path unchecked.

/// Why a payload name cannot be part of a path.
#[derive(Debug, PartialEq, Eq)]
pub struct BadName {
    pub what: &'static str,
    pub name: String,
    pub why: &'static str,
}

impl std::fmt::Display for BadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "repository {} {:?} cannot name a checkout: {}", self.what, self.name, self.why)
    }
}

/// Candidate checkout paths for `owner/name` under `repodir`, most specific first:
/// `<repodir>/<owner>/<name>`, then `<repodir>/<name>`. An owner may have several
/// `/`-separated parts (GitLab groups); each part and the name must be a plain path
/// component.
pub fn candidates(repodir: &str, owner: &str, name: &str) -> Result<Vec<String>, BadName> {
    check_component("name", name, name)?;
    if owner.is_empty() {
        return Err(BadName { what: "owner", name: owner.into(), why: "it is empty" });
    }
    for part in owner.split('/') {
        check_component("owner", owner, part)?;
    }
    let base = repodir.trim_end_matches('/');
    let base = if base.is_empty() { "/" } else { base };
    let join = |rest: &str| if base == "/" { format!("/{rest}") } else { format!("{base}/{rest}") };
    Ok(vec![join(&format!("{owner}/{name}")), join(name)])
}

fn check_component(what: &'static str, whole: &str, part: &str) -> Result<(), BadName> {
    let why = if part.is_empty() {
        Some("it is empty")
    } else if part == "." || part == ".." {
        Some("it is a relative path component")
    } else if part.contains('/') || part.contains('\\') {
        Some("it contains a path separator")
    } else if part.chars().any(|c| c == '\0' || c.is_control()) {
        Some("it contains a control character")
    } else if part.len() > 255 {
        Some("it is longer than 255 bytes")
    } else {
        None
    };
    match why {
        Some(why) => Err(BadName { what, name: whole.into(), why }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_for_plain_names() {
        assert_eq!(
            candidates("/srv/repos", "acme", "widgets").unwrap(),
            ["/srv/repos/acme/widgets", "/srv/repos/widgets"]
        );
        assert_eq!(
            candidates("/srv/repos/", "group/sub", ".github").unwrap(),
            ["/srv/repos/group/sub/.github", "/srv/repos/.github"]
        );
        assert_eq!(candidates("/", "a", "b").unwrap(), ["/a/b", "/b"]);
    }

    #[test]
    fn names_that_would_leave_repodir_are_refused() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("acme", "..", "name", "it is a relative path component"),
            ("acme", "../etc", "name", "it contains a path separator"),
            ("acme", "/etc/passwd", "name", "it contains a path separator"),
            ("acme", "a\\b", "name", "it contains a path separator"),
            ("acme", "", "name", "it is empty"),
            ("acme", "nul\0byte", "name", "it contains a control character"),
            ("..", "widgets", "owner", "it is a relative path component"),
            ("acme/../..", "widgets", "owner", "it is a relative path component"),
            ("/abs", "widgets", "owner", "it is empty"),
            ("", "widgets", "owner", "it is empty"),
        ];
        for (owner, name, what, why) in cases {
            let err = candidates("/srv/repos", owner, name).unwrap_err();
            assert_eq!((err.what, err.why), (*what, *why), "owner {owner:?} name {name:?}");
        }
        let long = "x".repeat(256);
        assert_eq!(candidates("/r", "a", &long).unwrap_err().why, "it is longer than 255 bytes");
    }
}
