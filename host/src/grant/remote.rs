//! Git remote URLs: the one parser that decides both what the grant is asked about and
//! what libgit2 is given. A URL is decoded and normalised first; anything two parsers
//! could read differently (`?@`, `#@`, `\@`, percent-encoded dots, user information with
//! a password) is refused; only `https`, `http`, `ssh` (and `user@host:path`) and local
//! repositories are allowed; and libgit2 gets exactly the string that was checked (a
//! local repository as its canonical path, never as a URL that libgit2 would decode).

#![allow(
    clippy::disallowed_methods,
    reason = "remotes are checked on the thread that makes the git call (a confined one) or at config load, never on an async one"
)]

use super::{Access, Denied, Grant};
use std::path::PathBuf;

/// A remote as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A repository on this host: the path as decoded (not yet resolved).
    Local(PathBuf),
    /// A repository reached over the network.
    Network(NetworkRemote),
}

/// A network remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRemote {
    /// Exactly what libgit2 is given.
    pub url: String,
    /// `https`, `http` or `ssh`.
    pub scheme: &'static str,
    /// Lower-case host name or address (IPv6 without brackets).
    pub host: String,
    /// Port, the scheme's default when the URL names none.
    pub port: u16,
}

fn refuse(url: &str, why: impl std::fmt::Display) -> Denied {
    Denied(format!("`{url}`: {why}"))
}

/// Parses a remote URL as written by a plugin or found in a repository's configuration.
pub fn parse(url: &str) -> Result<Remote, Denied> {
    if url.is_empty() {
        return Err(Denied("an empty remote URL".into()));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse(url, "a remote URL must not contain spaces or control characters"));
    }
    if url.starts_with('/') {
        return Ok(Remote::Local(PathBuf::from(url)));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "file" => file_url(url),
            "https" | "http" | "ssh" => network_url(url),
            other => {
                Err(refuse(url, format!("the `{other}` transport is not allowed (only https, http, ssh and file)")))
            }
        };
    }
    scp_like(url)
}

/// `file:///path`, decoded once here; libgit2 is then given the path, not the URL.
fn file_url(url: &str) -> Result<Remote, Denied> {
    let parsed = url::Url::parse(url).map_err(|err| refuse(url, format!("not a URL: {err}")))?;
    if parsed.host_str().is_some_and(|host| !host.is_empty() && host != "localhost") {
        return Err(refuse(url, "a file URL must name no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse(url, "a file URL must have no `?` or `#` part"));
    }
    let path = parsed.to_file_path().map_err(|()| refuse(url, "not a local path"))?;
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(refuse(url, "the path contains a NUL byte"));
    }
    Ok(Remote::Local(path))
}

/// `https://host[:port]/path`, `ssh://[user@]host[:port]/path`.
fn network_url(url: &str) -> Result<Remote, Denied> {
    // libgit2 ends the authority only at `/` and takes the last `@` in it; the url crate
    // (WHATWG) also ends it at `?`, `#` and `\`. Where those characters appear, the two
    // disagree about the host, so they are refused outright.
    if url.contains(['?', '#', '\\']) {
        return Err(refuse(url, "a git URL must not contain `?`, `#` or `\\`"));
    }
    let after_scheme = &url[url.find("://").expect("checked by the caller") + 3..];
    let authority = after_scheme.split('/').next().unwrap_or_default();
    if authority.contains('%') {
        return Err(refuse(url, "the host part must not be percent-encoded"));
    }
    let parsed = url::Url::parse(url).map_err(|err| refuse(url, format!("not a URL: {err}")))?;
    if parsed.as_str() != url {
        return Err(refuse(url, format!("ambiguous; write it as `{}`", parsed.as_str())));
    }
    let scheme = match parsed.scheme() {
        "https" => "https",
        "http" => "http",
        _ => "ssh",
    };
    if parsed.password().is_some() {
        return Err(refuse(url, "credentials do not belong in a URL; the config grants them per host"));
    }
    if !parsed.username().is_empty() && (scheme != "ssh" || !plain_user(parsed.username())) {
        return Err(refuse(url, "only an ssh URL may name a user, and only a plain one"));
    }
    if authority.matches('@').count() > usize::from(!parsed.username().is_empty()) {
        return Err(refuse(url, "ambiguous `@` in the host part"));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(refuse(url, "no host")),
    };
    let port = parsed.port().unwrap_or(match scheme {
        "https" => 443,
        "http" => 80,
        _ => 22,
    });
    Ok(Remote::Network(NetworkRemote { url: url.to_owned(), scheme, host, port }))
}

fn plain_user(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with('-')
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `[user@]host:path`, the scp-like form of an ssh URL, accepted only in the plain shape
/// libgit2 and this parser read alike.
fn scp_like(url: &str) -> Result<Remote, Denied> {
    let unknown = || {
        refuse(
            url,
            "not a git URL gitauto understands (https://, http://, ssh://, user@host:path, or an absolute path)",
        )
    };
    let (authority, path) = url.split_once(':').ok_or_else(unknown)?;
    let (user, host) = match authority.split_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if !host_ok || user.is_some_and(|user| !plain_user(user)) || authority.contains('/') {
        return Err(unknown());
    }
    if path.is_empty() || path.starts_with(['-', ':']) || path.contains(['@', '\\', '?', '#', '%']) {
        return Err(refuse(url, "the path of a user@host:path URL must be plain"));
    }
    Ok(Remote::Network(NetworkRemote { url: url.to_owned(), scheme: "ssh", host: host.to_ascii_lowercase(), port: 22 }))
}

/// A remote the grant allows, ready to hand to libgit2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A local repository at this canonical path.
    Local(PathBuf),
    /// A network remote.
    Network(NetworkRemote),
}

impl Checked {
    /// The string libgit2 is given.
    pub fn for_git(&self) -> String {
        match self {
            Checked::Local(path) => path.to_string_lossy().into_owned(),
            Checked::Network(remote) => remote.url.clone(),
        }
    }
}

/// Checks a remote against the grant: a local repository must lie inside the granted
/// directories; a network host must be granted, and a granted *name* must not lead to a
/// loopback, private or link-local address (only a grant that names the address itself
/// may reach one), as for the HTTP capability.
pub fn check(grant: &Grant, remote: &Remote) -> Result<Checked, Denied> {
    match remote {
        Remote::Local(path) => {
            let canonical = grant.check_path(&path.to_string_lossy(), Access::Read)?;
            Ok(Checked::Local(canonical))
        }
        Remote::Network(network) => {
            let pattern = grant.check_host(&network.host, network.port)?;
            if !pattern.is_literal_address() && network.host.parse::<std::net::IpAddr>().is_err() {
                public_only(&network.host, network.port)?;
            }
            Ok(Checked::Network(network.clone()))
        }
    }
}

/// A remote an administrator configured (not one a plugin could have chosen): only its
/// shape is checked, and a local one is resolved.
pub fn trusted(remote: &Remote) -> Result<Checked, Denied> {
    match remote {
        Remote::Local(path) => std::fs::canonicalize(path)
            .map(Checked::Local)
            .map_err(|err| Denied(format!("`{}`: {err}", path.display()))),
        Remote::Network(network) => Ok(Checked::Network(network.clone())),
    }
}

/// Refuses a name that resolves to any non-public address. libgit2 resolves the name
/// again when it connects; the confined thread that runs it may connect only to the
/// checked port.
fn public_only(host: &str, port: u16) -> Result<(), Denied> {
    use std::net::ToSocketAddrs;
    let addresses: Vec<std::net::IpAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|err| Denied(format!("{host} cannot be resolved: {err}")))?
        .map(|address| address.ip())
        .collect();
    if let Some(private) = addresses.iter().find(|ip| !crate::grant::is_public(**ip)) {
        return Err(Denied(format!(
            "{host} resolves to a non-public address ({private}); grant the address itself to reach it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{DirGrant, HostPattern};

    #[test]
    fn urls_are_read_one_way() {
        let network = |url: &str, host: &str, port: u16| {
            assert_eq!(
                parse(url),
                Ok(Remote::Network(NetworkRemote {
                    url: url.into(),
                    scheme: if url.starts_with("https") {
                        "https"
                    } else if url.starts_with("http:") {
                        "http"
                    } else {
                        "ssh"
                    },
                    host: host.into(),
                    port
                })),
                "{url}"
            );
        };
        network("https://github.com/acme/widgets.git", "github.com", 443);
        network("http://127.0.0.1:8080/r.git", "127.0.0.1", 8080);
        network("ssh://git@github.com/acme/widgets.git", "github.com", 22);
        network("ssh://git@[::1]:2222/r.git", "::1", 2222);
        network("git@github.com:acme/widgets.git", "github.com", 22);
        network("https://github.com/acme/a%20b.git", "github.com", 443);
        assert_eq!(parse("/srv/repos/x"), Ok(Remote::Local("/srv/repos/x".into())));
        // Decoded here, once: libgit2 gets the path.
        // (The URL parser treats `%2e%2e` as `..` and removes it; the grant then sees the
        // place it leads to.)
        assert_eq!(parse("file:///srv/repos/%2e%2e/outside.git"), Ok(Remote::Local("/srv/outside.git".into())));
        assert_eq!(parse("file:///srv/%2E%2E/x"), Ok(Remote::Local("/x".into())));
        assert_eq!(parse("file:///srv/..%2Fx"), Ok(Remote::Local("/srv/../x".into())));
    }

    /// Issue 16: every form in which the grant check and libgit2 could read different
    /// hosts is refused.
    #[test]
    fn ambiguous_urls_are_refused() {
        let refused = [
            ("http://127.0.0.1:1?@127.0.0.1:2/r.git", "`?`, `#` or `\\`"),
            ("http://127.0.0.1:1#@127.0.0.1:2/r.git", "`?`, `#` or `\\`"),
            ("https://github.com\\@evil.example/r.git", "`?`, `#` or `\\`"),
            ("ssh://github.com?@evil.example/r.git", "`?`, `#` or `\\`"),
            ("http://127.0.0.1:1%2F@127.0.0.1:2/r.git", "percent-encoded"),
            ("https://user:pw@github.com/r.git", "credentials do not belong"),
            ("https://user@github.com/r.git", "only an ssh URL may name a user"),
            ("https://a@b@github.com/r.git", "write it as"),
            ("https://GitHub.com/r.git", "write it as `https://github.com/r.git`"),
            ("https://github.com", "write it as `https://github.com/`"),
            ("https://github.com/a/../b.git", "write it as"),
            ("git://github.com/r.git", "`git` transport is not allowed"),
            ("ext::sh -c touch% /tmp/pwned", "spaces"),
            ("ext::sh", "must be plain"),
            ("fd::17", "must be plain"),
            ("relative/path", "not a git URL gitauto understands"),
            ("./relative", "not a git URL gitauto understands"),
            ("-uevil@host:x", "not a git URL gitauto understands"),
            ("host:-oProxyCommand=x", "must be plain"),
            ("git@github.com:a?@evil:x", "must be plain"),
            ("file://evil.example/srv/x", "must name no host"),
            ("", "empty"),
            ("https://github.com/\u{7}", "control characters"),
        ];
        for (url, why) in refused {
            let err = parse(url).expect_err(url);
            assert!(err.0.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn remotes_are_checked_against_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("repos/origin.git")).unwrap();
        std::fs::create_dir_all(root.join("outside.git")).unwrap();
        let grant = Grant {
            dirs: vec![DirGrant::new(root.join("repos"), Access::Read)],
            hosts: vec![HostPattern::parse("140.82.112.3").unwrap(), HostPattern::parse("127.0.0.1:9").unwrap()],
            ..Grant::default()
        };
        let ok = |url: &str| check(&grant, &parse(url).unwrap());
        assert_eq!(
            ok(&format!("{}/repos/origin.git", root.display())),
            Ok(Checked::Local(root.join("repos/origin.git")))
        );
        assert!(ok("https://140.82.112.3/acme/w.git").is_ok());
        assert!(ok("http://127.0.0.1:9/r.git").is_ok());
        for denied in [
            format!("file://{}/repos/%2e%2e/outside.git", root.display()),
            format!("{}/repos/../outside.git", root.display()),
            "https://gitlab.com/acme/w.git".into(),
            "http://127.0.0.1:10/r.git".into(),
            "git@evil.example:x.git".into(),
        ] {
            assert!(ok(&denied).is_err(), "{denied}");
        }
        // A granted name that leads to this machine (loopback or its LAN address) is
        // refused: only the address itself may be granted.
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_ascii_lowercase();
        let named = Grant { hosts: vec![HostPattern::parse(&hostname).unwrap()], ..Grant::default() };
        let err = check(&named, &parse(&format!("http://{hostname}/r.git")).unwrap()).unwrap_err();
        assert!(err.0.contains("non-public address") || err.0.contains("cannot be resolved"), "{err}");
    }
}
