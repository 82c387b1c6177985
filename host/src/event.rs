//! The normalised event: one shape for every forge's webhook, mirroring the WIT
//! `event` record that plugins receive. Forges fill it (see `forge`); rules match on it
//! (see `route`); the runtime converts it to the WIT type.

pub mod command;
pub mod names;

use serde::{Deserialize, Serialize};

/// A forge event, normalised. Field meanings are documented on the WIT record in
/// `wit/types.wit`, which is the reference plugin authors read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Event {
    /// The delivery id (the forge's, or one gitauto generated).
    pub delivery: String,
    /// The `[sources.NAME]` the delivery arrived through.
    pub source: String,
    /// `github`, `gitlab`, `gitea`, ...
    pub forge: String,
    /// `push`, `tag`, `pull_request`, `release`, `create`, `delete`, `manual`, ...
    pub kind: String,
    /// Sub-kind, e.g. `opened`.
    pub action: Option<String>,
    /// The repository the event is about.
    pub repository: Repository,
    /// Full ref name, e.g. `refs/heads/main`.
    pub git_ref: Option<String>,
    /// Branch name when the ref is a branch.
    pub branch: Option<String>,
    /// Tag name when the ref is a tag.
    pub tag: Option<String>,
    /// Commit before the event.
    pub before: Option<String>,
    /// Commit after the event.
    pub after: Option<String>,
    /// Whether the ref was deleted.
    pub deleted: bool,
    /// Commits the forge listed.
    pub commits: Vec<Commit>,
    /// False when the forge left commits or changed paths out.
    pub commits_complete: bool,
    /// Login of the user who caused the event.
    pub sender: Option<String>,
    /// The pull (merge) request, for `pull_request` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequest>,
    /// The GitHub App installation the delivery came through (GitHub only); the host
    /// mints that installation's tokens for the event's reports and credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<u64>,
    /// The comment, for `comment` events (and the review's body for `review` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
    /// The command a comment's first line gives, when it starts with `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// The label added or removed, for `labeled` / `unlabeled` actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The check run or suite the forge asks about, for `check_run` / `check_suite` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// The forge's payload as JSON text. Not stored with the normalised event (the
    /// delivery keeps the raw body); filled in when a job runs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
}

/// A repository as the forge describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Repository {
    /// Owner, e.g. `acme` (GitLab: the group path).
    pub owner: String,
    /// Name, e.g. `widgets`.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// URL to clone from.
    pub clone_url: String,
    /// Web page.
    pub html_url: String,
    /// Default branch, when known.
    pub default_branch: Option<String>,
}

/// A pull request (GitLab: merge request) as the forge describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PullRequest {
    /// Number within the repository (GitLab: the `iid`).
    pub number: u64,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    /// Whether it has been merged.
    pub merged: bool,
    /// The branch with the changes.
    pub source_branch: String,
    /// The branch it would merge into.
    pub target_branch: String,
    /// The newest commit of the source branch.
    pub head: String,
    /// The repository the source branch lives in, when it is a fork (`owner/name`).
    pub source_repository: Option<String>,
}

/// A comment on an issue, a pull request, a commit or a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Comment {
    /// The forge's id of the comment.
    pub id: u64,
    /// Its text as written.
    pub body: String,
    /// Login of its author.
    pub author: String,
    /// The author's numeric id, where the forge's permission API needs it (GitLab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<u64>,
    /// Web page.
    pub url: String,
    /// The issue or pull request number it was made on, when it was made on one.
    pub number: Option<u64>,
    /// Whether that number is a pull (merge) request's; `event.pull_request` then
    /// describes it as far as the payload does.
    pub on_pull_request: bool,
    /// For a review (`review` events): `approved`, `changes_requested`, `commented`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_state: Option<String>,
}

/// A command given in a comment: its first line split on whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Command {
    /// The first word, `/` included (`/deploy`).
    pub name: String,
    /// The words after it.
    pub args: Vec<String>,
    /// The whole first line, trimmed (what `command = "/deploy *"` is matched against).
    pub line: String,
}

/// The check run or suite a `check_run` / `check_suite` event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Check {
    /// The check run's (or suite's) id.
    pub id: u64,
    /// The check run's `external_id`: gitauto sets it to the job id.
    pub external_id: Option<String>,
    /// The check run's name.
    pub name: Option<String>,
    /// The commit it is on.
    pub head_sha: String,
    /// The GitHub App that owns it (its numeric id), so other apps' checks are ignored.
    pub app_id: Option<u64>,
}

/// One commit listed in a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Commit {
    /// Full commit id.
    pub id: String,
    /// Message.
    pub message: String,
    /// `Name <email>`.
    pub author: String,
    /// RFC 3339 timestamp.
    pub timestamp: String,
    /// Web page of the commit.
    pub url: Option<String>,
    /// Paths added.
    pub added: Vec<String>,
    /// Paths modified.
    pub modified: Vec<String>,
    /// Paths removed.
    pub removed: Vec<String>,
}

impl Event {
    /// The repository a pull request's head lives in, when it is not the event's own
    /// (a fork): code from there was not pushed by anyone the repository trusts.
    pub fn fork(&self) -> Option<&str> {
        let pr = self.pull_request.as_ref()?;
        pr.source_repository.as_deref().filter(|source| *source != self.repository.full_name)
    }
}

/// Splits a full ref into its branch or tag name.
pub fn split_ref(git_ref: &str) -> (Option<String>, Option<String>) {
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        (Some(branch.to_owned()), None)
    } else if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        (None, Some(tag.to_owned()))
    } else {
        (None, None)
    }
}

/// Whether a commit id is git's "no commit" marker (all zeros).
pub fn is_null_commit(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_into_branch_or_tag() {
        let cases = [
            ("refs/heads/main", Some("main"), None),
            ("refs/heads/release/1.x", Some("release/1.x"), None),
            ("refs/tags/v1.0", None, Some("v1.0")),
            ("refs/pull/1/head", None, None),
            ("main", None, None),
        ];
        for (git_ref, branch, tag) in cases {
            let (b, t) = split_ref(git_ref);
            assert_eq!((b.as_deref(), t.as_deref()), (branch, tag), "{git_ref}");
        }
    }

    #[test]
    fn null_commits() {
        assert!(is_null_commit("0000000000000000000000000000000000000000"));
        assert!(!is_null_commit("0000000000000000000000000000000000000001"));
        assert!(!is_null_commit(""));
    }
}
