//! The payload shape GitHub defined and Gitea, Forgejo and Gogs follow closely: push,
//! create/delete, pull request and release payloads, and their conversion to [`Event`].
//! Field spellings that differ between those forges are aliases here; each forge's
//! module decides which of these payloads its event names mean.

use super::Origin;
use crate::event::{Commit, Event, PullRequest, Repository, is_null_commit, split_ref};
use serde::Deserialize;

/// A push payload.
#[derive(Deserialize)]
pub struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    commits: Vec<PushCommit>,
    /// Gitea, Forgejo: how many commits the push had (the list is capped).
    #[serde(default)]
    total_commits: Option<usize>,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
    #[serde(default)]
    pusher: Option<User>,
}

/// A repository.
#[derive(Deserialize)]
pub struct Repo {
    name: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    owner: Option<User>,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
}

/// A user or organisation: GitHub says `login`, Gogs `username`, pushers `name`.
#[derive(Deserialize)]
pub struct User {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl User {
    /// A user known only by login.
    pub fn named(login: String) -> Self {
        Self { login: Some(login), username: None, name: None }
    }

    /// The user's login, whichever field the forge put it in.
    pub fn handle(self) -> Option<String> {
        [self.login, self.username, self.name].into_iter().flatten().find(|handle| !handle.is_empty())
    }
}

/// A commit as pushes list it: GitHub, Gitea, Forgejo, Gogs and GitLab agree on this shape.
#[derive(Deserialize)]
pub struct PushCommit {
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    author: Option<Author>,
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

#[derive(Deserialize)]
struct Author {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: Option<String>,
}

/// A `create` or `delete` payload: a branch or tag made or removed.
#[derive(Deserialize)]
pub struct RefChange {
    /// The short name (GitHub) or, from some forges, the full ref.
    #[serde(rename = "ref")]
    name: String,
    ref_type: String,
    /// Gitea: the commit the ref points to.
    #[serde(default)]
    sha: Option<String>,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

/// A `pull_request` payload.
#[derive(Deserialize)]
pub struct PullRequestEvent {
    action: String,
    #[serde(default)]
    number: Option<u64>,
    pull_request: PullRequestBody,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
    /// The label added or removed, for `labeled` / `unlabeled`.
    #[serde(default)]
    label: Option<Label>,
}

/// A label, as `labeled` / `unlabeled` payloads name it.
#[derive(Deserialize)]
pub struct Label {
    name: String,
}

/// A pull request as GitHub-shaped payloads describe it.
#[derive(Deserialize)]
pub struct PullRequestBody {
    #[serde(default)]
    number: Option<u64>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    merged: Option<bool>,
    head: Branch,
    base: Branch,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    #[serde(default)]
    sha: String,
    /// `None` when the payload leaves it out; `Some(None)` when it is `null`: GitHub's
    /// word for a head repository that was deleted (a fork: a deleted target sends nothing).
    #[serde(default, deserialize_with = "present")]
    repo: Option<Option<BranchRepo>>,
}

/// Marks a field that is in the payload, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<BranchRepo>>, D::Error> {
    Option::<BranchRepo>::deserialize(deserializer).map(Some)
}

/// What `source_repository` says of a pull request whose head repository was deleted.
pub const DELETED_FORK: &str = "(deleted fork)";

#[derive(Deserialize)]
struct BranchRepo {
    #[serde(default)]
    full_name: Option<String>,
}

/// A `release` payload.
#[derive(Deserialize)]
pub struct ReleaseEvent {
    action: String,
    release: Release,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Deserialize)]
struct Release {
    tag_name: String,
}

/// A normalised event with the common fields filled and the rest empty.
pub fn base(forge: &str, at: &Origin, kind: &str, repository: Repo, sender: Option<User>) -> Event {
    Event {
        delivery: at.delivery.to_owned(),
        source: at.source.to_owned(),
        forge: forge.to_owned(),
        kind: kind.to_owned(),
        repository: repository.into_repository(),
        sender: sender.and_then(User::handle),
        commits_complete: true,
        ..Event::default()
    }
}

impl Repo {
    /// `owner/name`, when the payload says it.
    pub fn full_name(&self) -> Option<&str> {
        self.full_name.as_deref()
    }

    /// The repository as the event records it.
    pub fn into_repository(self) -> Repository {
        let owner = self
            .owner
            .and_then(User::handle)
            .or_else(|| self.full_name.as_deref().and_then(|f| f.split_once('/')).map(|(o, _)| o.to_owned()))
            .unwrap_or_default();
        let full_name = self.full_name.unwrap_or_else(|| format!("{owner}/{}", self.name));
        Repository {
            owner,
            name: self.name,
            full_name,
            clone_url: self.clone_url.unwrap_or_default(),
            html_url: self.html_url.unwrap_or_default(),
            default_branch: self.default_branch.filter(|b| !b.is_empty()),
        }
    }
}

impl Push {
    /// The event. `listed_cap` is how many commits the forge lists at most: a list
    /// that long may have been cut, so the event says it is incomplete.
    pub fn into_event(self, forge: &str, at: &Origin, listed_cap: usize) -> Event {
        let (branch, tag) = split_ref(&self.git_ref);
        let listed = self.commits.len();
        let commits_complete = match self.total_commits {
            Some(total) => listed >= total,
            None => listed < listed_cap,
        };
        let deleted = self.deleted || self.after.as_deref().is_some_and(is_null_commit);
        let kind = if tag.is_some() { "tag" } else { "push" };
        Event {
            git_ref: Some(self.git_ref),
            branch,
            tag,
            before: self.before,
            after: self.after,
            deleted,
            commits: self.commits.into_iter().map(PushCommit::into_commit).collect(),
            commits_complete,
            ..base(forge, at, kind, self.repository, self.sender.or(self.pusher))
        }
    }
}

impl PushCommit {
    /// The normalised commit; the author as `Name <email>`.
    pub fn into_commit(self) -> Commit {
        let author = match self.author {
            Some(Author { name, email: Some(email) }) if !email.is_empty() => format!("{name} <{email}>"),
            Some(Author { name, .. }) => name,
            None => String::new(),
        };
        Commit {
            id: self.id,
            message: self.message,
            author,
            timestamp: self.timestamp,
            url: self.url,
            added: self.added,
            modified: self.modified,
            removed: self.removed,
        }
    }
}

impl RefChange {
    /// The event: kind `create` or `delete`, with the branch or tag it concerns.
    pub fn into_event(self, forge: &str, at: &Origin, kind: &str) -> Event {
        let short = self.name.strip_prefix("refs/heads/").or_else(|| self.name.strip_prefix("refs/tags/"));
        let short = short.unwrap_or(&self.name).to_owned();
        let (git_ref, branch, tag) = match self.ref_type.as_str() {
            "tag" => (format!("refs/tags/{short}"), None, Some(short)),
            _ => (format!("refs/heads/{short}"), Some(short), None),
        };
        let deleted = kind == "delete";
        Event {
            git_ref: Some(git_ref),
            branch,
            tag,
            after: if deleted { None } else { self.sha },
            deleted,
            ..base(forge, at, kind, self.repository, self.sender)
        }
    }
}

impl PullRequestBody {
    /// The normalised pull request: `number` when the body does not say it, `target_repo`
    /// to tell a fork's head.
    pub fn into_pull_request(self, number: Option<u64>, target_repo: Option<&str>) -> PullRequest {
        let number = self.number.or(number).unwrap_or(0);
        let merged = self.merged.unwrap_or(false);
        // A deleted head repository was a fork: its code is no more trusted for being gone.
        let source_repository = match self.head.repo {
            Some(None) => Some(DELETED_FORK.to_owned()),
            repo => repo.flatten().and_then(|r| r.full_name).filter(|name| Some(name.as_str()) != target_repo),
        };
        let state = if merged { "merged".to_owned() } else { self.state.to_ascii_lowercase() };
        PullRequest {
            number,
            title: self.title,
            url: self.html_url,
            state,
            merged,
            source_branch: self.head.name,
            target_branch: self.base.name,
            head: self.head.sha,
            source_repository,
        }
    }

    /// The base commit, when the payload names it.
    pub fn base_sha(&self) -> Option<String> {
        Some(self.base.sha.clone()).filter(|s| !s.is_empty())
    }
}

impl PullRequestEvent {
    /// The event. `action_names` maps the forge's action words onto gitauto's.
    pub fn into_event(self, forge: &str, at: &Origin, action_names: &[(&str, &str)]) -> Event {
        let action =
            action_names.iter().find(|(from, _)| *from == self.action).map_or(self.action, |(_, to)| (*to).into());
        let before = self.pull_request.base_sha();
        let pull_request = self.pull_request.into_pull_request(self.number, self.repository.full_name());
        let number = pull_request.number;
        Event {
            action: Some(action),
            git_ref: Some(format!("refs/pull/{number}/head")),
            branch: Some(pull_request.target_branch.clone()),
            before,
            after: Some(pull_request.head.clone()).filter(|s| !s.is_empty()),
            commits_complete: false,
            label: self.label.map(|label| label.name),
            pull_request: Some(pull_request),
            ..base(forge, at, "pull_request", self.repository, self.sender)
        }
    }
}

impl ReleaseEvent {
    /// The event: kind `release`, the release's tag as the ref.
    pub fn into_event(self, forge: &str, at: &Origin) -> Event {
        Event {
            action: Some(self.action),
            git_ref: Some(format!("refs/tags/{}", self.release.tag_name)),
            tag: Some(self.release.tag_name),
            ..base(forge, at, "release", self.repository, self.sender)
        }
    }
}
