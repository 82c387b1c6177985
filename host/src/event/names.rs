//! The names in an event that plugins and the host turn into paths, URLs and command
//! arguments: repository owner and name, refs, branches, tags, commit ids, changed paths,
//! and the clone and web URLs. They come from a payload, so each is checked once, when the
//! delivery is read, against what the forge itself would allow (git's ref rules, plain
//! path components, absolute URLs). An event that fails is refused with the field and the
//! reason; nothing downstream ever sees it.

use super::Event;

/// The longest path component most file systems allow.
const MAX_COMPONENT: usize = 255;
/// The longest ref, branch, tag or changed path accepted.
const MAX_NAME: usize = 1024;
/// The longest URL accepted.
const MAX_URL: usize = 2048;

/// A name that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {} cannot be used: {why}", shown(.value))]
pub struct UnsafeName {
    /// The event field, e.g. `repository.name`.
    pub field: String,
    /// The value as received.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A value for a message: quoted with escapes, and cut when long.
fn shown(value: &str) -> String {
    const SHOWN: usize = 80;
    if value.len() <= SHOWN {
        return format!("{value:?}");
    }
    let cut = (0..=SHOWN).rev().find(|&i| value.is_char_boundary(i)).unwrap_or(0);
    format!("{:?}… ({} bytes)", &value[..cut], value.len())
}

/// Checks every name in `event`.
pub fn check(event: &Event) -> Result<(), UnsafeName> {
    let fail = |field: &str, value: &str, why| UnsafeName { field: field.to_owned(), value: value.to_owned(), why };
    let repository = &event.repository;
    if !repository.name.is_empty() {
        repository_part(&repository.name).map_err(|why| fail("repository.name", &repository.name, why))?;
    }
    // Owners may be GitLab group paths (`group/sub`); each part is one component.
    for (field, value) in [("repository.owner", &repository.owner), ("repository.full_name", &repository.full_name)] {
        if !value.is_empty() {
            for part in value.split('/') {
                repository_part(part).map_err(|why| fail(field, value, why))?;
            }
        }
    }
    // Plugins clone and link to these; a `generic` source lets the sender choose them.
    let urls = [
        ("repository.clone_url", repository.clone_url.as_str(), UrlKind::Clone),
        ("repository.html_url", repository.html_url.as_str(), UrlKind::Web),
        ("pull_request.url", event.pull_request.as_ref().map_or("", |pr| pr.url.as_str()), UrlKind::Web),
    ];
    let commit_urls = event.commits.iter().filter_map(|c| c.url.as_deref()).map(|u| ("commits[].url", u, UrlKind::Web));
    for (field, value, kind) in urls.into_iter().chain(commit_urls) {
        if !value.is_empty() {
            url(value, kind).map_err(|why| fail(field, value, why))?;
        }
    }
    if let Some(git_ref) = &event.git_ref {
        git_ref_name(git_ref).map_err(|why| fail("ref", git_ref, why))?;
    }
    let branches = [
        ("branch", event.branch.as_deref()),
        ("tag", event.tag.as_deref()),
        ("pull_request.source_branch", event.pull_request.as_ref().map(|pr| pr.source_branch.as_str())),
        ("pull_request.target_branch", event.pull_request.as_ref().map(|pr| pr.target_branch.as_str())),
    ];
    for (field, value) in branches {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            short_ref_name(value).map_err(|why| fail(field, value, why))?;
        }
    }
    let commits = [
        ("before", event.before.as_deref()),
        ("after", event.after.as_deref()),
        ("pull_request.head", event.pull_request.as_ref().map(|pr| pr.head.as_str())),
    ];
    for (field, value) in commits.into_iter().chain(event.commits.iter().map(|c| ("commits[].id", Some(c.id.as_str()))))
    {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            commit_id(value).map_err(|why| fail(field, value, why))?;
        }
    }
    for commit in &event.commits {
        for path in commit.added.iter().chain(&commit.modified).chain(&commit.removed) {
            tree_path(path).map_err(|why| fail("commits[].paths", path, why))?;
        }
    }
    if let Some(sender) = &event.sender {
        printable(sender, MAX_COMPONENT).map_err(|why| fail("sender", sender, why))?;
    }
    if let Some(check) = &event.check {
        commit_id(&check.head_sha).map_err(|why| fail("check.head_sha", &check.head_sha, why))?;
        for (field, value) in [("check.name", &check.name), ("check.external_id", &check.external_id)] {
            if let Some(value) = value {
                printable(value, MAX_COMPONENT).map_err(|why| fail(field, value, why))?;
            }
        }
    }
    comment_fields(event).map_err(|(field, value, why)| fail(field, value, why))
}

/// A comment's names and text: anyone may write a comment, so its body is bounded (the
/// parser cuts it) and what rules match on or replies name is printable and short.
fn comment_fields(event: &Event) -> Result<(), (&'static str, &str, &'static str)> {
    if let Some(comment) = &event.comment {
        if comment.body.len() > super::command::MAX_BODY {
            return Err(("comment.body", &comment.body, "it is longer than 64 KiB"));
        }
        printable(&comment.author, MAX_COMPONENT).map_err(|why| ("comment.author", comment.author.as_str(), why))?;
        if !comment.url.is_empty() {
            url(&comment.url, UrlKind::Web).map_err(|why| ("comment.url", comment.url.as_str(), why))?;
        }
        if let Some(state) = &comment.review_state {
            printable(state, MAX_COMPONENT).map_err(|why| ("comment.review_state", state.as_str(), why))?;
        }
    }
    if let Some(command) = &event.command {
        printable(&command.line, MAX_NAME).map_err(|why| ("command.line", command.line.as_str(), why))?;
    }
    if let Some(label) = &event.label {
        printable(label, MAX_COMPONENT).map_err(|why| ("label", label.as_str(), why))?;
    }
    Ok(())
}

/// A single path component that stays where it is joined: not empty, `.` or `..`, no
/// separator, no control character, at most 255 bytes.
pub fn component(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        Err("it has an empty part")
    } else if part == "." || part == ".." {
        Err("it is a relative path component")
    } else if part.contains(['/', '\\']) {
        Err("it contains a path separator")
    } else {
        printable(part, MAX_COMPONENT)
    }
}

/// A part of a repository's owner or name: a [`component`] that cannot read as an option
/// where a rule passes it to a command.
fn repository_part(part: &str) -> Result<(), &'static str> {
    if part.starts_with('-') {
        return Err("it starts with `-`");
    }
    component(part)
}

/// What a URL field points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlKind {
    /// Something git clones: `https`, `http`, `ssh`, `git` or `file` URLs, or scp-like
    /// `user@host:path`.
    Clone,
    /// A web page: `https` or `http`.
    Web,
}

/// An absolute URL of `kind`, written so that every URL parser reads the same host: no
/// control characters, whitespace or backslashes, not starting with `-` (nor its host or
/// user), and for clone URLs no query or fragment (`?@` and `#@` hide a second host).
fn url(text: &str, kind: UrlKind) -> Result<(), &'static str> {
    if text.len() > MAX_URL {
        return Err("it is longer than 2048 bytes");
    }
    if text.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if text.chars().any(char::is_whitespace) {
        return Err("it contains whitespace");
    }
    if text.starts_with('-') {
        return Err("it starts with `-`");
    }
    if text.contains('\\') {
        return Err("it contains a backslash");
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return match kind {
            UrlKind::Clone => scp_like(text),
            UrlKind::Web => Err("it is not an absolute http or https URL"),
        };
    };
    let allowed: &[&str] = match kind {
        UrlKind::Clone => &["https", "http", "ssh", "git", "file"],
        UrlKind::Web => &["https", "http"],
    };
    let scheme = scheme.to_ascii_lowercase();
    if !allowed.contains(&scheme.as_str()) {
        return Err(match kind {
            UrlKind::Clone => "its scheme is not one of https, http, ssh, git or file",
            UrlKind::Web => "its scheme is not https or http",
        });
    }
    if kind == UrlKind::Clone && text.contains(['?', '#']) {
        return Err("a clone URL cannot have a query or fragment");
    }
    if scheme != "file" && rest.starts_with('/') {
        // The url crate would skip the extra slashes and find a host that git does not.
        return Err("it has no host");
    }
    let parsed = url::Url::parse(text).map_err(|_| "it is not an absolute URL")?;
    if scheme == "file" {
        return match parsed.host_str() {
            Some(host) if !host.is_empty() => Err("a file URL cannot name a host"),
            _ if text.contains('%') => Err("a file URL cannot hold percent-escapes"),
            _ => Ok(()),
        };
    }
    match parsed.host_str() {
        None | Some("") => Err("it has no host"),
        Some(host) if host.starts_with('-') => Err("its host starts with `-`"),
        _ if parsed.username().starts_with('-') => Err("its user name starts with `-`"),
        _ => Ok(()),
    }
}

/// git's scp-like clone address, `user@host:path`: the user, host and path present, none
/// starting with `-`, and no `/` before the `:` (git would read a local path).
fn scp_like(text: &str) -> Result<(), &'static str> {
    const NOT_A_URL: &str = "it is neither an absolute URL nor scp-like `user@host:path`";
    let Some((authority, path)) = text.split_once(':') else { return Err(NOT_A_URL) };
    let Some((user, host)) = authority.rsplit_once('@') else { return Err(NOT_A_URL) };
    if user.is_empty() || host.is_empty() || path.is_empty() || authority.contains('/') {
        return Err(NOT_A_URL);
    }
    if user.starts_with('-') || host.starts_with('-') || path.starts_with('-') {
        return Err("a part of it starts with `-`");
    }
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']')) {
        return Err("its host is not a host name");
    }
    Ok(())
}

/// No control characters (NUL included), not too long.
fn printable(text: &str, max: usize) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        Err("it contains a control character")
    } else if text.len() > max {
        if max == MAX_COMPONENT { Err("it is longer than 255 bytes") } else { Err("it is longer than 1024 bytes") }
    } else {
        Ok(())
    }
}

/// A full ref (`refs/heads/main`) by git's rules (`git check-ref-format`).
fn git_ref_name(name: &str) -> Result<(), &'static str> {
    if !name.starts_with("refs/") {
        return Err("it does not start with `refs/`");
    }
    ref_rules(name)
}

/// A branch or tag name by git's rules, which also keep it from reading as an option.
fn short_ref_name(name: &str) -> Result<(), &'static str> {
    if name.starts_with('-') {
        return Err("it starts with `-`");
    }
    ref_rules(name)
}

fn ref_rules(name: &str) -> Result<(), &'static str> {
    printable(name, MAX_NAME)?;
    if name.contains("..") {
        Err("it contains `..`")
    } else if name.contains("@{") || name == "@" {
        Err("it contains `@{` or is `@`")
    } else if name.contains([' ', '~', '^', ':', '?', '*', '[', '\\']) {
        Err("it contains a character git forbids in refs (space ~ ^ : ? * [ \\)")
    } else if name.ends_with('/') || name.ends_with('.') {
        Err("it ends with `/` or `.`")
    } else if name.split('/').any(|part| part.is_empty() || part.starts_with('.') || part.ends_with(".lock")) {
        Err("a part of it is empty, starts with `.` or ends with `.lock`")
    } else if name.split('/').any(|part| part.len() > MAX_COMPONENT) {
        Err("a part of it is longer than 255 bytes")
    } else {
        Ok(())
    }
}

/// A commit id: 4 to 64 hexadecimal digits (SHA-1 or SHA-256, possibly abbreviated).
fn commit_id(id: &str) -> Result<(), &'static str> {
    if (4..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err("a commit id is 4 to 64 hexadecimal digits")
    }
}

/// A path inside a repository's tree: relative, without `.` or `..` parts. Git allows
/// any other byte but NUL and `/` in a file name (backslashes and newlines included), so those
/// are not refused here: a push touching such a file is real.
fn tree_path(path: &str) -> Result<(), &'static str> {
    if path.len() > MAX_NAME * 4 {
        return Err("it is longer than 4096 bytes");
    }
    path.split('/').try_for_each(|part| match part {
        "" => Err("it has an empty part"),
        "." | ".." => Err("it is a relative path component"),
        _ if part.contains('\0') => Err("it contains a control character"),
        _ if part.len() > MAX_COMPONENT => Err("it is longer than 255 bytes"),
        _ => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Command, Comment, Commit, PullRequest, Repository};

    fn event() -> Event {
        Event {
            repository: Repository {
                owner: "group/sub".into(),
                name: "widgets.git-tools_2".into(),
                full_name: "group/sub/widgets.git-tools_2".into(),
                clone_url: "https://gitlab.example.com/group/sub/widgets.git-tools_2.git".into(),
                html_url: "https://gitlab.example.com/group/sub/widgets.git-tools_2".into(),
                ..Repository::default()
            },
            git_ref: Some("refs/heads/feature/x-1.2".into()),
            branch: Some("feature/x-1.2".into()),
            after: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
            before: Some("0".repeat(40)),
            sender: Some("octo cat".into()),
            commits: vec![Commit {
                id: "0d1a26e6".into(),
                url: Some("https://gitlab.example.com/group/sub/widgets/-/commit/0d1a26e6?view=parallel#a".into()),
                added: vec!["docs/a b.md".into(), ".github/workflows/ci.yml".into(), "odd\\name\n.txt".into()],
                ..Commit::default()
            }],
            pull_request: Some(PullRequest {
                source_branch: "fix/é".into(),
                target_branch: "main".into(),
                url: "https://gitlab.example.com/group/sub/widgets/-/merge_requests/12".into(),
                ..PullRequest::default()
            }),
            comment: Some(Comment {
                body: "/deploy staging\n\u{1b}[31manything goes in a body\0".into(),
                author: "octo-cat".into(),
                url: "https://gitlab.example.com/group/sub/widgets/-/merge_requests/12#note_5".into(),
                review_state: Some("approved".into()),
                ..Comment::default()
            }),
            command: Some(Command {
                name: "/deploy".into(),
                args: vec!["staging".into()],
                line: "/deploy staging".into(),
            }),
            label: Some("good first issue".into()),
            ..Event::default()
        }
    }

    #[test]
    fn ordinary_names_pass() {
        assert_eq!(check(&event()), Ok(()));
        assert_eq!(check(&Event::default()), Ok(()), "fields a forge left empty are not checked");
    }

    #[test]
    fn names_that_could_become_paths_or_options_are_refused() {
        let long = "x".repeat(300);
        type Edit = Box<dyn Fn(&mut Event)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (Box::new(|e| e.repository.name = "..".into()), "repository.name", "relative path component"),
            (Box::new(|e| e.repository.name = "../etc".into()), "repository.name", "path separator"),
            (Box::new(|e| e.repository.name = "a\\b".into()), "repository.name", "path separator"),
            (Box::new(|e| e.repository.name = "a\0b".into()), "repository.name", "control character"),
            (Box::new(move |e| e.repository.name = long.clone()), "repository.name", "longer than 255"),
            (Box::new(|e| e.repository.owner = "acme/../..".into()), "repository.owner", "relative path"),
            (Box::new(|e| e.repository.owner = "/abs".into()), "repository.owner", "empty part"),
            (Box::new(|e| e.repository.full_name = "a//b".into()), "repository.full_name", "empty part"),
            (Box::new(|e| e.git_ref = Some("refs/heads/../../x".into())), "ref", "`..`"),
            (Box::new(|e| e.git_ref = Some("main".into())), "ref", "refs/"),
            (Box::new(|e| e.git_ref = Some("refs/heads/a\nb".into())), "ref", "control character"),
            (Box::new(|e| e.git_ref = Some("refs/heads/.hidden".into())), "ref", "starts with `.`"),
            (Box::new(|e| e.git_ref = Some("refs/heads/x.lock".into())), "ref", ".lock"),
            (Box::new(|e| e.git_ref = Some("refs/heads/$(id)*".into())), "ref", "forbids"),
            (Box::new(|e| e.git_ref = Some(format!("refs/heads/{}", "b/".repeat(600)))), "ref", "1024"),
            (Box::new(|e| e.branch = Some("--upload-pack=touch /tmp/x".into())), "branch", "starts with `-`"),
            (Box::new(|e| e.tag = Some("v1..2".into())), "tag", "`..`"),
            (Box::new(|e| e.after = Some("HEAD~1".into())), "after", "hexadecimal"),
            (Box::new(|e| e.before = Some("--all".into())), "before", "hexadecimal"),
            (Box::new(|e| e.commits[0].id = "x".repeat(40)), "commits[].id", "hexadecimal"),
            (Box::new(|e| e.commits[0].modified = vec!["../../etc/passwd".into()]), "commits[].paths", "relative"),
            (Box::new(|e| e.commits[0].removed = vec!["/etc/passwd".into()]), "commits[].paths", "empty part"),
            (Box::new(|e| e.commits[0].added = vec!["a\0b".into()]), "commits[].paths", "control character"),
            (Box::new(|e| e.sender = Some("\u{1b}[31mred".into())), "sender", "control character"),
            (Box::new(|e| e.repository.name = "-x".into()), "repository.name", "starts with `-`"),
            (Box::new(|e| e.repository.owner = "--upload-pack=x".into()), "repository.owner", "starts with `-`"),
            (Box::new(|e| e.repository.owner = "group/-sub".into()), "repository.owner", "starts with `-`"),
            (Box::new(|e| e.repository.full_name = "acme/-x".into()), "repository.full_name", "starts with `-`"),
            (Box::new(|e| e.repository.clone_url = "ext::sh -c id".into()), "repository.clone_url", "whitespace"),
            (Box::new(|e| e.repository.html_url = "javascript:alert(1)".into()), "repository.html_url", "http"),
            (Box::new(|e| e.pull_request.as_mut().unwrap().url = "-x".into()), "pull_request.url", "starts with `-`"),
            (Box::new(|e| e.commits[0].url = Some("https://x/\u{1b}]0;t".into())), "commits[].url", "control"),
            (
                Box::new(|e| e.pull_request.as_mut().unwrap().source_branch = "-x".into()),
                "pull_request.source_branch",
                "starts with `-`",
            ),
            (Box::new(|e| e.comment.as_mut().unwrap().body = "x".repeat(65 * 1024)), "comment.body", "64 KiB"),
            (Box::new(|e| e.comment.as_mut().unwrap().author = "a\u{1b}[2J".into()), "comment.author", "control"),
            (Box::new(|e| e.comment.as_mut().unwrap().url = "javascript:x".into()), "comment.url", "http"),
            (
                Box::new(|e| e.comment.as_mut().unwrap().review_state = Some("\0".into())),
                "comment.review_state",
                "control",
            ),
            (Box::new(|e| e.command.as_mut().unwrap().line = "/x\ny".into()), "command.line", "control character"),
            (Box::new(|e| e.command.as_mut().unwrap().line = "/x ".repeat(400)), "command.line", "1024"),
            (Box::new(|e| e.label = Some("l".repeat(256))), "label", "255"),
        ];
        for (edit, field, why) in cases {
            let mut event = event();
            edit(&mut event);
            let err = check(&event).expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(why), "{err} (want {why:?})");
        }
    }

    #[test]
    fn urls_are_absolute_and_read_alike_by_every_parser() {
        use UrlKind::{Clone, Web};
        let accepted = [
            ("https://github.com/acme/widgets.git", Clone),
            ("http://127.0.0.1:8080/acme/widgets.git", Clone),
            ("https://user:token@git.example.com/a/b.git", Clone),
            ("ssh://git@git.example.com:2222/acme/widgets.git", Clone),
            ("git://git.example.com/acme/widgets.git", Clone),
            ("file:///srv/git/acme/widgets.git", Clone),
            ("git@github.com:acme/widgets.git", Clone),
            ("git@gitlab.example.com:acme/platform/widgets.git", Clone),
            ("https://github.com/acme/widgets", Web),
            ("HTTPS://github.com/acme/widgets/pull/7", Web),
            ("https://gitlab.example.com/acme/w/-/commit/da15?view=inline#L1", Web),
        ];
        for (url_text, kind) in accepted {
            assert_eq!(url(url_text, kind), Ok(()), "{url_text} as {kind:?}");
        }
        let long = format!("https://x.example/{}", "a".repeat(MAX_URL));
        let refused = [
            ("/srv/git/widgets.git", Clone, "neither an absolute URL nor scp-like"),
            ("widgets.git", Clone, "neither an absolute URL nor scp-like"),
            ("./a:b", Clone, "neither an absolute URL nor scp-like"),
            ("host:path", Clone, "neither an absolute URL nor scp-like"),
            ("-oProxyCommand=x@h:p", Clone, "starts with `-`"),
            ("git@-oProxyCommand=x:p", Clone, "part of it starts with `-`"),
            ("git@host:-upload-pack", Clone, "part of it starts with `-`"),
            ("git@ho$t:p", Clone, "not a host name"),
            ("ext::sh -c touch% /tmp/x", Clone, "whitespace"),
            ("ext::sh", Clone, "neither an absolute URL nor scp-like"),
            ("fd::17", Clone, "neither an absolute URL nor scp-like"),
            ("ftp://x.example/r.git", Clone, "scheme is not one of"),
            ("javascript://x.example/%0aalert(1)", Web, "scheme is not https or http"),
            ("ssh://git@host/x", Web, "scheme is not https or http"),
            ("https:github.com/acme/w", Web, "not an absolute http or https URL"),
            ("github.com/acme/w", Web, "not an absolute http or https URL"),
            ("https://github.com?@evil.example/x.git", Clone, "query or fragment"),
            ("http://127.0.0.1:1#@127.0.0.1:2/x", Clone, "query or fragment"),
            ("https://github.com\\@evil.example/x.git", Clone, "backslash"),
            ("https://github.com/a\nb", Web, "control character"),
            ("https://github.com/a\u{9b}b", Web, "control character"),
            ("https://github.com/a\u{1b}]0;x\u{7}", Web, "control character"),
            ("https://github.com/a b", Web, "whitespace"),
            ("https://github.com/a\u{a0}b", Web, "whitespace"),
            ("ssh://-oProxyCommand=touch%20x/r.git", Clone, "host starts with `-`"),
            ("ssh://-oProxyCommand=x@host/r.git", Clone, "user name starts with `-`"),
            ("https:///acme/w", Web, "no host"),
            ("ssh:///r.git", Clone, "no host"),
            ("file://evil.example/srv/r.git", Clone, "cannot name a host"),
            ("file:///srv/granted/%2e%2e/outside.git", Clone, "percent-escapes"),
            ("-https://x.example/", Web, "starts with `-`"),
            (long.as_str(), Web, "longer than 2048 bytes"),
        ];
        for (url_text, kind, why) in refused {
            let err = url(url_text, kind).expect_err(url_text);
            assert!(err.contains(why), "{url_text} as {kind:?}: {err} (want {why:?})");
        }
    }

    #[test]
    fn the_message_names_the_url_field() {
        let mut event = event();
        event.repository.clone_url = "https://github.com?@evil.example/x.git".into();
        let message = check(&event).unwrap_err().to_string();
        assert_eq!(
            message,
            "repository.clone_url \"https://github.com?@evil.example/x.git\" cannot be used: \
             a clone URL cannot have a query or fragment"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let mut event = event();
        event.repository.name = "é".repeat(200);
        let message = check(&event).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("… (400 bytes)"), "{message}");
    }
}
