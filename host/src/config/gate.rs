//! Who may trigger a rule's jobs: `permission` (the level the event's author needs on the
//! repository, asked of the forge's API when the job starts) and `forks` (what a pull
//! request from another repository does). Validated here; `crate::gate` does the asking.

use super::{Checker, Config};
use crate::forge_api::ForgeApis;
use std::fmt;
use toml::Spanned;

/// A level of access to a repository, lowest first (GitHub's role names; the other
/// forges' levels are mapped onto them in `crate::gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    /// No access beyond what the public has.
    None,
    /// Read (GitLab guest).
    Read,
    /// Read, and manage issues and pull requests (GitLab reporter).
    Triage,
    /// Push (GitLab developer).
    Write,
    /// Push and manage the repository without its destructive settings (GitLab maintainer).
    Maintain,
    /// Everything (GitLab owner, Gitea owner and admin).
    Admin,
}

impl Permission {
    /// The levels a rule may ask for.
    pub const NAMES: [&'static str; 5] = ["read", "triage", "write", "maintain", "admin"];

    /// The level's name (`none` for [`Permission::None`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::None => "none",
            Permission::Read => "read",
            Permission::Triage => "triage",
            Permission::Write => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }

    /// The level called `name` (`none` included).
    pub fn parse(name: &str) -> Option<Permission> {
        [
            Permission::None,
            Permission::Read,
            Permission::Triage,
            Permission::Write,
            Permission::Maintain,
            Permission::Admin,
        ]
        .into_iter()
        .find(|level| level.as_str() == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does with a pull request whose head is in another repository (a fork).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forks {
    /// Run it like any other event (the default).
    #[default]
    Run,
    /// Make the job wait (state `waiting`) until someone with write permission comments
    /// `/ok-to-test` on the pull request for its current head commit.
    Approve,
    /// Make no job.
    Skip,
}

impl Forks {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Forks::Run => "run",
            Forks::Approve => "approve",
            Forks::Skip => "skip",
        }
    }
}

/// The start of the names of gitauto's own jobs (`gitauto:approve`); no rule may use it.
pub const RESERVED_RULE_PREFIX: &str = "gitauto:";

/// Forges whose API tells a user's permission on a repository; the host asks them.
pub const PERMISSION_FORGES: &[&str] = &["github", "gitlab", "gitea", "forgejo"];

impl Checker<'_> {
    /// A rule's `permission` and `forks`.
    pub(super) fn gate(
        &mut self,
        rule: &str,
        permission: Option<Spanned<String>>,
        forks: Option<Spanned<String>>,
    ) -> (Option<Permission>, Forks) {
        if rule.starts_with(RESERVED_RULE_PREFIX) {
            self.problem(
                None,
                format!("rule \"{rule}\": names starting with `{RESERVED_RULE_PREFIX}` are gitauto's own jobs"),
            );
        }
        let permission = permission.and_then(|value| match Permission::parse(value.get_ref()) {
            Some(level) if level != Permission::None => Some(level),
            _ => {
                self.problem(
                    Some(value.span()),
                    format!(
                        "rule \"{rule}\": `permission` is one of {}, not \"{}\"",
                        Permission::NAMES.join(", "),
                        value.get_ref()
                    ),
                );
                None
            }
        });
        let forks = forks.map_or(Forks::Run, |value| match value.get_ref().as_str() {
            "run" => Forks::Run,
            "approve" => Forks::Approve,
            "skip" => Forks::Skip,
            other => {
                self.problem(
                    Some(value.span()),
                    format!("rule \"{rule}\": `forks` is \"run\", \"approve\" or \"skip\", not \"{other}\""),
                );
                Forks::Run
            }
        });
        (permission, forks)
    }

    /// Every source a rule with `permission` or `forks = "approve"` could match must let
    /// the host ask its forge: an `api` table on a forge whose API tells permissions.
    /// Otherwise such a job could never be checked (and must never run unchecked).
    pub(super) fn gate_sources(&mut self, config: &Config) {
        for rule in &config.rules {
            let needs = match (rule.permission, rule.forks) {
                (Some(level), _) => format!("`permission = \"{level}\"`"),
                (None, Forks::Approve) => "`forks = \"approve\"`".to_owned(),
                (None, _) => continue,
            };
            let reachable = config.sources.values().filter(|source| {
                (rule.sources.is_empty() || rule.sources.contains(&source.name))
                    && (rule.forges.is_empty() || rule.forges.iter().any(|forge| forge == source.forge))
            });
            for source in reachable {
                let why = if !PERMISSION_FORGES.contains(&source.forge) {
                    format!(
                        "{}'s API does not tell a user's permission on a repository (the host can ask {})",
                        source.forge,
                        PERMISSION_FORGES.join(", ")
                    )
                } else if !ForgeApis::configured(source) {
                    "it has no `api` table (nor a GitHub `app`), so the host cannot ask the forge".to_owned()
                } else {
                    continue;
                };
                self.problem(
                    None,
                    format!(
                        "rule \"{}\": {needs} cannot be checked for source \"{}\": {why}; narrow the rule with \
                         `source = [...]`",
                        rule.name, source.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_lowest_first() {
        let levels: Vec<Permission> = ["none", "read", "triage", "write", "maintain", "admin"]
            .into_iter()
            .map(|name| Permission::parse(name).unwrap())
            .collect();
        assert!(levels.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Permission::parse("owner"), None);
        assert_eq!(Permission::Write.to_string(), "write");
    }
}
