//! Nodes: the daemons that share one store. Each has a name (`[server] node`, else the
//! host name), records a heartbeat in the store while it serves, and claims only the jobs
//! meant for it: any node's (`run_on = "any"`), or its own (`"every"`, or a list naming
//! it). A node whose heartbeat is older than [`LIVE_WITHIN`] is not live: `every` jobs
//! are no longer made for it.
//!
//! Each node also records its config's fingerprint (`config::fingerprint`); a live node
//! whose fingerprint is not the one most live nodes have is shown as differing.

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
    /// Its config's fingerprint; none for a node of a version that records none.
    pub config: Option<String>,
    /// Whether it is live and its config's fingerprint is not the reference: the one most
    /// live nodes have, a tie going to this node's (see [`mark_differing`]).
    pub config_differs: bool,
}

/// Marks the live nodes whose config differs from the reference: the fingerprint most
/// live nodes have, a tie going to `this` node's (then to the smallest). Nodes that are
/// not live, and nodes that record no fingerprint, are neither counted nor marked.
/// Returns how many are marked.
pub fn mark_differing(nodes: &mut [NodeView], this: &str) -> usize {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for node in nodes.iter().filter(|node| node.live) {
        if let Some(config) = &node.config {
            *counts.entry(config).or_default() += 1;
        }
    }
    let most = counts.values().copied().max().unwrap_or(0);
    let ours = nodes.iter().find(|node| node.name == this && node.live).and_then(|node| node.config.as_deref());
    let reference = match ours {
        Some(ours) if counts.get(ours) == Some(&most) => Some(ours.to_owned()),
        _ => counts.iter().find(|(_, n)| **n == most).map(|(config, _)| (*config).to_owned()),
    };
    let mut marked = 0;
    for node in nodes {
        node.config_differs = node.live && node.config.is_some() && node.config != reference;
        marked += usize::from(node.config_differs);
    }
    marked
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

    fn node(name: &str, live: bool, config: Option<&str>) -> NodeView {
        NodeView {
            name: name.to_owned(),
            live,
            started_at: String::new(),
            heartbeat_at: String::new(),
            stopped_at: None,
            version: String::new(),
            workers: 1,
            config: config.map(str::to_owned),
            config_differs: false,
        }
    }

    /// Marks `nodes` (name, live, fingerprint) as seen from `this`; the names marked.
    fn differing(this: &str, nodes: &[(&str, bool, Option<&str>)]) -> Vec<String> {
        let mut views: Vec<NodeView> = nodes.iter().map(|(name, live, config)| node(name, *live, *config)).collect();
        let count = mark_differing(&mut views, this);
        let marked: Vec<String> = views.into_iter().filter(|n| n.config_differs).map(|n| n.name).collect();
        assert_eq!(marked.len(), count);
        marked
    }

    /// Seen from this node, these nodes (name, live, fingerprint): these marked.
    type Case<'a> = (&'a str, &'a [(&'a str, bool, Option<&'a str>)], &'a [&'a str]);

    #[test]
    fn the_config_most_live_nodes_have_is_the_reference() {
        let (x, y) = (Some("aaaaaaaaaaaa"), Some("bbbbbbbbbbbb"));
        let cases: &[Case] = &[
            ("a", &[("a", true, x), ("b", true, x), ("c", true, x)], &[]),
            // The majority wins over this node's own.
            ("c", &[("a", true, x), ("b", true, x), ("c", true, y)], &["c"]),
            // A tie goes to this node's.
            ("b", &[("a", true, x), ("b", true, y)], &["a"]),
            ("a", &[("a", true, x), ("b", true, y)], &["b"]),
            // Stopped nodes neither count nor are marked.
            ("a", &[("a", true, x), ("b", false, y), ("c", false, y), ("d", false, y)], &[]),
            ("c", &[("a", true, x), ("b", true, x), ("c", true, y), ("d", false, y), ("e", false, y)], &["c"]),
            // Older nodes record none: unknown, not differing, and not counted.
            ("a", &[("a", true, x), ("b", true, None), ("c", true, None)], &[]),
            // Seen from a node that is not live (or not listed): ties go to the smallest.
            ("z", &[("a", true, y), ("b", true, x)], &["a"]),
            ("a", &[("a", false, y), ("b", true, x)], &[]),
        ];
        for (this, nodes, expected) in cases {
            assert_eq!(differing(this, nodes), *expected, "from {this}: {nodes:?}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.example_org").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(64), "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&default_name()).is_ok());
    }
}
