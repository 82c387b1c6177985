//! What one plugin may touch (directories, hosts, programs, a key-value store), built
//! from its `grants` in the config. This is the one place that says yes or no; the capabilities ask it before
//! every action and report its refusal to the plugin as a `denied` error.

pub mod remote;

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// A refusal, phrased for the plugin author and the job log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Everything one plugin is allowed.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Directory roots for git and the filesystem.
    pub dirs: Vec<DirGrant>,
    /// Hosts for HTTP and git network access.
    pub hosts: Vec<HostPattern>,
    /// Programs the shell capability may run.
    pub commands: Vec<CommandGrant>,
    /// Credentials the host attaches to requests for some granted hosts. The plugin
    /// never sees them.
    pub credentials: Vec<HostCredential>,
    /// The key-value store the `kv` interface reads and writes (`grants.kv`), with its
    /// bounds; none: every `kv` call is denied.
    pub kv: Option<KvGrant>,
}

/// A granted key-value store: its name (plugins granted the same name share its entries)
/// and the bounds every write is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvGrant {
    /// The store's name, as `grants = { kv = "NAME" }` gives it: the entries' namespace.
    pub name: String,
    /// Its bounds, from `[kv.NAME]` or the defaults.
    pub limits: KvLimits,
}

/// The bounds of one key-value store (`[kv.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Most entries it holds (expired ones count until they are swept).
    pub max_entries: u64,
    /// Most bytes of values it holds, all entries together.
    pub max_bytes: u64,
    /// Most bytes of one value.
    pub max_value: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 64 << 20, max_value: 1 << 20 }
    }
}

/// A credential for one granted host, which the host applies to every request there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCredential {
    /// The host (and port) it is for.
    pub pattern: HostPattern,
    /// What the host does with it.
    pub kind: Credential,
}

/// The kinds of host credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A header the host adds to every request (a token, basic credentials).
    Header {
        /// The header's name, lower case (`authorization`, `private-token`).
        name: String,
        /// The header's whole value (`Bearer ...`).
        value: crate::secret::Secret,
    },
    /// AWS Signature Version 4 keys: the host signs every request with them.
    SigV4(SigV4Key),
    /// A GitHub App installation token, minted when a request goes out: for the job's
    /// source's app, the event's repository alone and these permissions.
    GitHubApp {
        /// GitHub's permission names and levels, sorted (`contents` -> `read`).
        permissions: Vec<(String, String)>,
    },
}

/// An AWS Signature Version 4 credential. Every part that would help to forge a
/// signature is a [`Secret`](crate::secret::Secret), so `Debug` never shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Key {
    /// The access key id (`AKIA...`); sent in each `Authorization` header, but kept
    /// out of logs like the rest.
    pub access_key: crate::secret::Secret,
    /// The secret access key, from which each day's signing key is derived.
    pub secret_key: crate::secret::Secret,
    /// The region in the credential scope (`us-east-1`; `auto` for R2, `garage`, ...).
    pub region: String,
    /// The service in the credential scope (`s3` unless the config says otherwise).
    pub service: String,
    /// A temporary credential's session token, sent as `x-amz-security-token`.
    pub session_token: Option<crate::secret::Secret>,
}

/// A granted directory.
#[derive(Debug, Clone)]
pub struct DirGrant {
    /// Absolute path as configured (resolved against the config's directory).
    pub path: PathBuf,
    /// What the plugin may do there.
    pub access: Access,
    /// The directory as it was when the config was loaded: its canonical path and an
    /// `O_PATH` descriptor of it. Checks compare against this, never against wherever
    /// `path` leads today, so a plugin that can write the parent of a grant cannot move
    /// the grant by swapping a component for a symbolic link. `None` when the directory
    /// did not exist at load: it then grants nothing until the config is loaded again.
    pub root: Option<Arc<PinnedRoot>>,
}

/// A granted directory pinned at load.
#[derive(Debug)]
pub struct PinnedRoot {
    /// Its canonical path at load.
    pub canonical: PathBuf,
    /// An `O_PATH` descriptor of it: the kernel's rules are attached to this inode.
    pub fd: std::os::fd::OwnedFd,
}

impl PartialEq for DirGrant {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.access == other.access
    }
}

impl Eq for DirGrant {}

impl DirGrant {
    /// A grant of `path` (absolute) with `access`, pinned now if the directory exists.
    pub fn new(path: PathBuf, access: Access) -> Self {
        let root = pin(&path).map(Arc::new);
        Self { path, access, root }
    }

    /// The grant as messages show it: `/srv/repos (git)`.
    pub fn describe(&self) -> String {
        let level = match self.access {
            Access::Read => "",
            Access::Git => " (git)",
            Access::Write => " (write)",
        };
        format!("{}{level}", self.path.display())
    }

    /// The canonical path the grant was pinned at.
    pub fn canonical(&self) -> Option<&Path> {
        self.root.as_ref().map(|root| root.canonical.as_path())
    }
}

/// Opens `path` as an `O_PATH` directory descriptor and records its canonical path.
fn pin(path: &Path) -> Option<PinnedRoot> {
    use rustix::fs::{Mode, OFlags};
    let canonical = std::fs::canonicalize(path).ok()?;
    let fd = rustix::fs::open(&canonical, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    Some(PinnedRoot { canonical, fd })
}

/// A granted host: an exact name or address, or `*.domain` for its subdomains, with an
/// optional port (any port when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; a leading `*.` means any subdomain.
    pub host: String,
    /// Port, when the pattern names one.
    pub port: Option<u16>,
}

/// A granted program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandGrant {
    /// As written in the config: a bare name (`git`) or an absolute path.
    pub name: String,
    /// What runs: the absolute path as written, or a bare name found on the daemon's
    /// `PATH` at load. `None` when a bare name was not found; running it then fails.
    pub program: Option<PathBuf>,
    /// Environment variables the plugin may set for it (besides these it gets only a
    /// fixed `PATH`): a loader, interpreter or git variable would run code of the
    /// plugin's choosing, so nothing is allowed that the config does not name.
    pub env: Vec<String>,
    /// Whether it may use the network (TCP). Off unless the config says so.
    pub network: bool,
}

/// What a plugin may do in a granted directory, and what a path is needed for. Each
/// level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reading files, and git operations that only read (`open`, `resolve`, `tree`,
    /// `read-file`, `changed-paths`).
    Read,
    /// Also git operations that change repositories (`clone`, `fetch`, `reset-hard`,
    /// `clean`), but no direct writes: the plugin cannot rewrite a repository's
    /// configuration, so the remotes an administrator configured stay as they are.
    Git,
    /// Also writing files directly (through WASI).
    Write,
}

impl Access {
    /// How the level reads in messages.
    fn describe(self) -> &'static str {
        match self {
            Access::Read => "",
            Access::Git => "git-writable ",
            Access::Write => "writable ",
        }
    }
}

impl Grant {
    /// Checks that `path` (a host path from a plugin) lies inside a granted directory
    /// that allows `need`, after resolving `..` and symbolic links, and returns its
    /// canonical form. A path that does not exist (yet) is checked through its deepest
    /// existing ancestor, so "not found" is never told about a path outside the grant.
    ///
    /// This is the check that gives a plugin a clear message. The wall itself is the
    /// kernel's: host calls that touch paths run confined to the grant ([`crate::confine`]),
    /// so a link swapped in after this check leads nowhere.
    pub fn check_path(&self, path: &str, need: Access) -> Result<PathBuf, Denied> {
        let requested = Path::new(path);
        if path.is_empty() || !requested.is_absolute() {
            return Err(Denied(format!("`{path}` is not an absolute path")));
        }
        if path.contains('\0') {
            return Err(Denied("path contains a NUL byte".into()));
        }
        let canonical = resolve(requested).map_err(|err| Denied(format!("`{path}` cannot be resolved: {err}")))?;
        if self.access_at(&canonical).is_some_and(|access| access >= need) {
            return Ok(canonical);
        }
        if self.dirs.is_empty() {
            return Err(Denied(format!("`{path}` denied: the plugin is granted no directories")));
        }
        if self.dirs.iter().all(|dir| dir.root.is_none()) {
            return Err(Denied(format!(
                "`{path}` denied: no granted directory existed on this host when the config was loaded ({})",
                self.describe_dirs()
            )));
        }
        // Where a path leads is told only when it leads into a grant: a denial must not
        // map the host (`/proc/self/fd/N`, the daemon's files) for the plugin.
        let shown = if canonical.as_path() != requested && self.access_at(&canonical).is_some() {
            format!(" (resolves to {})", canonical.display())
        } else {
            String::new()
        };
        Err(Denied(format!(
            "`{path}`{shown} denied: not inside a {}granted directory ({})",
            need.describe(),
            self.describe_dirs()
        )))
    }

    /// The most the plugin may do at the canonical path `canonical` (none: outside
    /// every grant).
    pub fn access_at(&self, canonical: &Path) -> Option<Access> {
        self.dirs
            .iter()
            .filter(|dir| dir.canonical().is_some_and(|root| canonical.starts_with(root)))
            .map(|dir| dir.access)
            .max()
    }

    /// Checks a network destination against the granted hosts.
    pub fn check_host(&self, host: &str, port: u16) -> Result<&HostPattern, Denied> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.hosts.iter().find(|pattern| pattern.matches(host, port)).ok_or_else(|| {
            let listed = if self.hosts.is_empty() {
                "the plugin is granted no hosts".to_owned()
            } else {
                format!("granted hosts: {}", self.hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            };
            Denied(format!("host {host}:{port} is not granted ({listed})"))
        })
    }

    /// The credential for requests to `host:port`, if the config gives one. When several
    /// patterns match, the most specific wins whatever the order they are listed in (see
    /// [`HostPattern::specificity`]), so a wildcard's token never reaches a host the
    /// config gives a credential of its own.
    pub fn credential_for(&self, host: &str, port: u16) -> Option<&HostCredential> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.credentials
            .iter()
            .filter(|credential| credential.pattern.matches(host, port))
            .min_by_key(|credential| credential.pattern.specificity())
    }

    /// Finds the grant for a program named exactly as in the config.
    pub fn check_command(&self, program: &str) -> Result<&CommandGrant, Denied> {
        self.commands.iter().find(|command| command.name == program).ok_or_else(|| {
            let listed = if self.commands.is_empty() {
                "the plugin is granted no commands".to_owned()
            } else {
                format!(
                    "granted commands: {}",
                    self.commands.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            Denied(format!("program `{program}` is not granted ({listed})"))
        })
    }

    /// The key-value store granted, if any.
    pub fn check_kv(&self) -> Result<&KvGrant, Denied> {
        self.kv.as_ref().ok_or_else(|| {
            Denied("the plugin is granted no key-value store (grant one with `grants = { kv = \"NAME\" }`)".into())
        })
    }

    fn describe_dirs(&self) -> String {
        self.dirs.iter().map(DirGrant::describe).collect::<Vec<_>>().join(", ")
    }
}

impl HostPattern {
    /// Parses `host`, `host:port`, `*.domain`, `[v6]:port` as written in the config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
            return Err(format!("`{text}` is not a host (expected e.g. `api.github.com` or `127.0.0.1:8080`)"));
        }
        let url =
            url::Url::parse(&format!("http://{rest}/")).map_err(|err| format!("`{text}` is not a host: {err}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("`{text}` is not a host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        // `Url` drops port 80 for http; read the port from the text instead.
        let port = url.port().or_else(|| rest.ends_with(":80").then_some(80));
        let host = if wildcard { format!("*.{host}") } else { host };
        Ok(Self { host, port })
    }

    /// Whether a destination matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => {
                host.len() > domain.len() + 1
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.')
            }
            None => host == self.host,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }

    /// How specific the pattern is, smallest first: an exact host before any wildcard;
    /// among wildcards the deeper domain first (`*.s3.example.com` before
    /// `*.example.com:443`: a port does not make a shallower domain more specific); then a
    /// pattern with a port before one without.
    pub fn specificity(&self) -> (bool, std::cmp::Reverse<usize>, bool) {
        (self.host.starts_with("*."), std::cmp::Reverse(self.host.len()), self.port.is_none())
    }

    /// Whether the pattern names an address or `localhost` itself, rather than a name
    /// that DNS might point anywhere. Only such patterns may reach private addresses.
    pub fn is_literal_address(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

impl CommandGrant {
    /// A grant for `name` (a bare name or an absolute path), resolving a bare name on `path_var`.
    pub fn new(name: &str, path_var: Option<&std::ffi::OsStr>) -> Result<Self, String> {
        let as_path = Path::new(name);
        if name.is_empty() {
            return Err("an empty program name".into());
        }
        if name.contains('/') {
            if !as_path.is_absolute() {
                return Err(format!("`{name}` must be a bare program name or an absolute path"));
            }
            if as_path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
                return Err(format!("`{name}` must not contain `.` or `..` components"));
            }
            return Ok(Self {
                name: name.into(),
                program: Some(as_path.to_path_buf()),
                env: Vec::new(),
                network: false,
            });
        }
        let program = path_var.and_then(|paths| {
            std::env::split_paths(paths).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
        });
        Ok(Self { name: name.into(), program, env: Vec::new(), network: false })
    }

    /// Checks a variable name the config lets the plugin set: a plain name, and none
    /// that makes a program load or run other code whatever the command is.
    pub fn check_env_name(name: &str) -> Result<(), String> {
        let plain = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !plain {
            return Err(format!("`{name}` is not an environment variable name (letters, digits and `_`)"));
        }
        let upper = name.to_ascii_uppercase();
        let loads_code = upper == "PATH"
            || upper.starts_with("LD_")
            || (upper.starts_with("GIT_") && !upper.starts_with("GIT_AUTHOR_") && !upper.starts_with("GIT_COMMITTER_"))
            || [
                "GCONV_PATH",
                "BASH_ENV",
                "ENV",
                "SHELLOPTS",
                "PS4",
                "NODE_OPTIONS",
                "PERL5OPT",
                "PERL5LIB",
                "PERLLIB",
                "RUBYOPT",
                "RUBYLIB",
                "JAVA_TOOL_OPTIONS",
                "_JAVA_OPTIONS",
                "JDK_JAVA_OPTIONS",
                "OPENSSL_CONF",
                "OPENSSL_MODULES",
                "OPENSSL_ENGINES",
            ]
            .contains(&upper.as_str())
            || upper.starts_with("PYTHON")
            || upper.starts_with("LUA_INIT");
        if loads_code {
            return Err(format!(
                "`{name}` cannot be granted: it would let the plugin choose code that the program loads or runs"
            ));
        }
        Ok(())
    }
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Symbolic links followed at most while resolving one path (as Linux's limit).
const MAX_LINK_HOPS: usize = 40;

/// Resolves an absolute path like `realpath`, following every symbolic link it meets
/// (dangling ones included), but tolerating components that do not exist: those are
/// kept as written, and a `..` after one simply drops it.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    use std::collections::VecDeque;
    let mut pending: VecDeque<std::ffi::OsString> = VecDeque::new();
    let mut base = PathBuf::from("/");
    let mut hops = 0;
    let push_front = |pending: &mut VecDeque<std::ffi::OsString>, path: &Path| {
        for component in path.components().rev() {
            pending.push_front(component.as_os_str().to_owned());
        }
    };
    push_front(&mut pending, path);
    while let Some(part) = pending.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir) => base = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                base.pop();
            }
            Some(Component::Normal(name)) => {
                let candidate = base.join(name);
                // `/proc` holds magic links to the daemon's own files and descriptors.
                if candidate == Path::new("/proc") {
                    return Err(std::io::Error::other("paths under /proc are never granted"));
                }
                match std::fs::symlink_metadata(&candidate) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        hops += 1;
                        if hops > MAX_LINK_HOPS {
                            return Err(std::io::Error::other("too many levels of symbolic links"));
                        }
                        let target = std::fs::read_link(&candidate)?;
                        push_front(&mut pending, &target);
                    }
                    Ok(_) => base = candidate,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => base = candidate,
                    Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => base = candidate,
                    Err(err) => return Err(err),
                }
            }
            _ => {}
        }
    }
    Ok(base)
}

/// Whether an address is globally routable (not loopback, private, link-local, CGNAT,
/// unique-local, documentation, benchmarking, multicast or unspecified). Addresses that
/// carry or reach an IPv4 address by translation or tunnelling (NAT64, 6to4, Teredo,
/// IPv4-compatible) are refused outright: what they reach depends on gateways outside
/// this check, so no embedded address is trusted.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                // IETF protocol assignments (192.0.0.0/24), including NAT64 discovery.
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // IPv4-compatible `::a.b.c.d` (::/96, deprecated).
                || s[..6] == [0; 6]
                // NAT64: the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || s[..3] == [0x64, 0xff9b, 1]
                // Discard-only 100::/64.
                || s[..4] == [0x100, 0, 0, 0]
                // Teredo 2001::/32, benchmarking 2001:2::/48, ORCHIDv2 2001:20::/28,
                // documentation 2001:db8::/32.
                || s[..2] == [0x2001, 0]
                || s[..3] == [0x2001, 2, 0]
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x20)
                || s[..2] == [0x2001, 0xdb8]
                // 6to4 2002::/16.
                || s[0] == 0x2002
                // Unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0)
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build their fixtures step by step")]
mod tests {
    use super::*;

    struct World {
        _dir: tempfile::TempDir,
        root: PathBuf,
        grant: Grant,
    }

    /// granted/ (read), site/ (write), outside/, and a few links between them.
    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["granted/repo", "site", "outside", "repos"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("outside/secret"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), root.join("granted/escape")).unwrap();
        std::os::unix::fs::symlink(root.join("granted/repo"), root.join("outside/inward")).unwrap();
        std::os::unix::fs::symlink(root.join("outside/not-yet"), root.join("granted/dangling")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("granted/loop")).unwrap();
        let grant = Grant {
            dirs: vec![
                DirGrant::new(root.join("granted"), Access::Read),
                DirGrant::new(root.join("site"), Access::Write),
                DirGrant::new(root.join("repos"), Access::Git),
            ],
            ..Grant::default()
        };
        World { _dir: dir, root, grant }
    }

    #[test]
    fn a_grant_of_missing_directories_says_so() {
        let grant = Grant { dirs: vec![DirGrant::new("/surely/not/here".into(), Access::Read)], ..Grant::default() };
        let err = grant.check_path("/surely/not/here/repo", Access::Read).unwrap_err();
        assert_eq!(
            err.0,
            "`/surely/not/here/repo` denied: no granted directory existed on this host when the config was loaded (/surely/not/here)"
        );
    }

    #[test]
    fn paths_inside_grants_are_allowed() {
        let w = world();
        let r = |p: &str| format!("{}/{p}", w.root.display());
        let allowed = [
            (r("granted"), Access::Read, r("granted")),
            (r("granted/repo"), Access::Read, r("granted/repo")),
            (r("granted/repo/../repo"), Access::Read, r("granted/repo")),
            (r("granted/new-clone"), Access::Read, r("granted/new-clone")),
            (r("granted/missing/deeper"), Access::Read, r("granted/missing/deeper")),
            (r("granted/missing/../repo"), Access::Read, r("granted/repo")),
            (r("granted/./repo/"), Access::Read, r("granted/repo")),
            (r("outside/inward"), Access::Read, r("granted/repo")),
            (r("site/out"), Access::Write, r("site/out")),
            (r("site"), Access::Read, r("site")),
            (r("site/x"), Access::Git, r("site/x")),
            (r("repos/clone"), Access::Git, r("repos/clone")),
        ];
        for (path, access, want) in allowed {
            assert_eq!(w.grant.check_path(&path, access), Ok(PathBuf::from(want)), "{path}");
        }
    }

    #[test]
    fn paths_outside_grants_are_denied() {
        let w = world();
        let r = |p: &str| format!("{}/{p}", w.root.display());
        let denied = [
            (r("outside/secret"), Access::Read, "not inside a granted directory"),
            (r("granted/../outside/secret"), Access::Read, "not inside a granted directory"),
            (r("granted/escape/secret"), Access::Read, "secret` denied: not inside a granted directory"),
            (r("granted/repo"), Access::Write, "not inside a writable granted directory"),
            (r("granted/missing/../../outside/x"), Access::Read, "not inside a granted directory"),
            (r("granted/escape/missing"), Access::Read, "missing` denied: not inside"),
            (r("granted/missing/../escape/secret"), Access::Read, "secret` denied: not inside"),
            (r("granted/dangling"), Access::Read, "dangling` denied: not inside"),
            (r("outside/inward/x"), Access::Write, "(resolves to "),
            (r("granted/repo"), Access::Git, "not inside a git-writable granted directory"),
            (r("repos/x"), Access::Write, "not inside a writable granted directory"),
            ("/proc/self/cwd".to_owned(), Access::Read, "paths under /proc are never granted"),
            ("/proc/self/fd/0".to_owned(), Access::Read, "paths under /proc are never granted"),
            (r("granted/loop"), Access::Read, "too many levels"),
            (r("granted/.."), Access::Read, "not inside a granted directory"),
            ("relative/path".to_owned(), Access::Read, "is not an absolute path"),
            (String::new(), Access::Read, "is not an absolute path"),
            ("/etc/passwd".to_owned(), Access::Read, "not inside a granted directory"),
            (format!("{}\0x", r("granted")), Access::Read, "NUL"),
        ];
        for (path, access, why) in denied {
            let err = w.grant.check_path(&path, access).unwrap_err();
            assert!(err.0.contains(why), "{path:?}: {err}");
        }
        let none = Grant::default().check_path("/tmp", Access::Read).unwrap_err();
        assert!(none.0.contains("granted no directories"), "{none}");
        // Outside every grant, a denial never says where a link leads.
        let err = w.grant.check_path(&r("granted/escape/secret"), Access::Read).unwrap_err();
        assert!(!err.0.contains("outside"), "{err}");
    }

    /// Issue 16: a grant root that a plugin swaps for a link after load stays where it was.
    #[test]
    fn a_grant_root_swapped_for_a_link_after_load_grants_nothing_new() {
        let w = world();
        let nested = Grant { dirs: vec![DirGrant::new(w.root.join("site/cache"), Access::Write)], ..Grant::default() };
        std::fs::create_dir(w.root.join("site/cache")).unwrap();
        assert!(nested.dirs[0].root.is_none(), "missing at load: grants nothing");
        let nested = Grant { dirs: vec![DirGrant::new(w.root.join("site/cache"), Access::Write)], ..Grant::default() };
        std::fs::rename(w.root.join("site/cache"), w.root.join("site/old")).unwrap();
        std::os::unix::fs::symlink("../outside", w.root.join("site/cache")).unwrap();
        let err = nested.check_path(&format!("{}/site/cache/secret", w.root.display()), Access::Read).unwrap_err();
        assert!(err.0.contains("denied: not inside a granted directory"), "{err}");
    }

    #[test]
    fn host_patterns() {
        let grant = Grant {
            hosts: ["api.github.com", "*.example.com", "127.0.0.1:8081", "[::1]:9000", "localhost"]
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            ..Grant::default()
        };
        let allowed = [
            ("api.github.com", 443),
            ("API.GitHub.com.", 80),
            ("a.example.com", 443),
            ("a.b.example.com", 443),
            ("127.0.0.1", 8081),
            ("[::1]", 9000),
            ("localhost", 1),
        ];
        for (host, port) in allowed {
            assert!(grant.check_host(host, port).is_ok(), "{host}:{port}");
        }
        let denied = [
            ("github.com", 443),
            ("example.com", 443),
            ("evilexample.com", 443),
            ("api.github.com.evil.net", 443),
            ("127.0.0.1", 8082),
            ("169.254.169.254", 80),
            ("::1", 9001),
        ];
        for (host, port) in denied {
            let err = grant.check_host(host, port).unwrap_err();
            assert!(err.0.contains("is not granted"), "{host}:{port}: {err}");
        }
        for bad in ["", "http://x", "a/b", "user@host", "*."] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(HostPattern::parse("x:80").unwrap().port, Some(80));
        assert!(HostPattern::parse("127.0.0.1:1").unwrap().is_literal_address());
        assert!(!HostPattern::parse("api.github.com").unwrap().is_literal_address());
    }

    /// Issue 20 review: a wildcard's bearer token listed first must not go to a host
    /// that has a SigV4 key (or a token) of its own.
    #[test]
    fn the_most_specific_credential_wins_whatever_the_order() {
        let token = |value: &str| Credential::Header {
            name: "authorization".into(),
            value: crate::secret::Secret::new(format!("Bearer {value}")),
        };
        let listed =
            ["*.example.com", "*.s3.example.com", "*.example.com:9000", "s3.example.com", "s3.example.com:9000"];
        let credentials: Vec<HostCredential> = listed
            .iter()
            .map(|pattern| HostCredential { pattern: HostPattern::parse(pattern).unwrap(), kind: token(pattern) })
            .collect();
        let rows = [
            ("s3.example.com", 9000, "s3.example.com:9000"),
            ("s3.example.com", 443, "s3.example.com"),
            ("S3.Example.com.", 443, "s3.example.com"),
            ("b.s3.example.com", 9000, "*.s3.example.com"),
            ("b.s3.example.com", 443, "*.s3.example.com"),
            ("www.example.com", 9000, "*.example.com:9000"),
            ("www.example.com", 443, "*.example.com"),
        ];
        // Every order of the list gives the same answer: here, as written and reversed.
        for reversed in [false, true] {
            let mut credentials = credentials.clone();
            if reversed {
                credentials.reverse();
            }
            let grant = Grant { credentials, ..Grant::default() };
            for (host, port, want) in rows {
                let got = grant.credential_for(host, port).map(|credential| credential.pattern.to_string());
                assert_eq!(got.as_deref(), Some(want), "{host}:{port}, reversed: {reversed}");
            }
            assert!(grant.credential_for("example.com", 443).is_none());
        }
    }

    #[test]
    fn commands() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path_var = dir.path().as_os_str();
        let bare = CommandGrant::new("tool", Some(path_var)).unwrap();
        assert_eq!(bare.program.as_deref(), Some(tool.as_path()));
        assert_eq!(CommandGrant::new("absent", Some(path_var)).unwrap().program, None);
        assert!(CommandGrant::new("bin/tool", None).is_err());
        assert!(CommandGrant::new("/usr/bin/../bin/sh", None).is_err());
        let grant =
            Grant { commands: vec![bare, CommandGrant::new("/usr/bin/git", None).unwrap()], ..Grant::default() };
        assert!(grant.check_command("tool").is_ok());
        assert!(grant.check_command("/usr/bin/git").is_ok());
        for denied in ["git", "/usr/bin/../bin/git", "sh", "tool ", "./tool"] {
            let err = grant.check_command(denied).unwrap_err();
            assert!(err.0.contains("is not granted"), "{denied}: {err}");
        }
    }
}
