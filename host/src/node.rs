//! Nodes: the daemons that share one store. Each has a name (`[server] node`, else the
//! host name), records a heartbeat in the store while it serves, and claims only the jobs
//! meant for it: any node's (`run_on = "any"`), or its own (`"every"`, or a list naming
//! it). A node whose heartbeat is older than [`LIVE_WITHIN`] is not live: `every` jobs
//! are no longer made for it.

use serde::Serialize;
use std::time::Duration;

/// How often a serving node records its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node is live while its last heartbeat is at most this old (three missed beats).
pub const LIVE_WITHIN: Duration = Duration::from_secs(15);
/// How long a running job stays its node's without a heartbeat: past it (six missed
/// beats) the node is taken for dead and any node queues the job again.
pub const LEASE: Duration = Duration::from_secs(30);

/// Where a rule's jobs run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOn {
    /// One job; the first free worker of any node claims it.
    #[default]
    Any,
    /// One job per live node, each claimed by its node.
    Every,
    /// One job per named node, each claimed by its node (a node that is down runs its
    /// job when it is back).
    Nodes(Vec<String>),
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// Whether its heartbeat is recent (see [`LIVE_WITHIN`]).
    pub live: bool,
    /// RFC 3339: when it last started serving.
    pub started_at: String,
    /// RFC 3339: its last heartbeat.
    pub heartbeat_at: String,
    /// When it stopped cleanly, RFC 3339 (none while it serves, or after a crash).
    pub stopped_at: Option<String>,
    /// Its gitauto version.
    pub version: String,
    /// Its worker count.
    pub workers: i64,
}

/// The host name, as the default node name; `gitauto` when it cannot be read or is not
/// a valid name.
#[allow(clippy::disallowed_methods, reason = "read once at start-up, before anything is served")]
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host = host.trim();
    if check_name(host).is_ok() { host.to_owned() } else { "gitauto".to_owned() }
}

/// A node name: 1 to 63 letters, digits, `.`, `_` or `-` (a host name fits).
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(format!("{name:?} is not a node name (1 to 63 letters, digits, `.`, `_` or `-`)")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("web-1.example_org").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(64), "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&default_name()).is_ok());
    }
}
