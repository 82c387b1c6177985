//! Comment and review payloads in the shape GitHub defined and Gitea, Forgejo and Gogs
//! follow: `issue_comment` (an issue's or a pull request's conversation),
//! `pull_request_review_comment` (a comment on a diff line), `pull_request_review`, and
//! their conversion to `comment` / `review` [`Event`]s with the command a comment gives.
//! Each forge's module decides which of these its event names mean.

use super::Origin;
use super::github_shape::{PullRequestBody, Repo, User, base};
use crate::event::{Comment, Event, PullRequest, command};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// An `issue_comment` payload (GitHub, Gitea, Forgejo, Gogs).
#[derive(Deserialize)]
pub struct IssueCommentEvent {
    action: String,
    issue: Issue,
    comment: CommentBody,
    /// Gitea, Forgejo: the pull request a comment is on, described whole.
    #[serde(default)]
    pull_request: Option<PullRequestBody>,
    /// Gitea, Forgejo: whether the issue is a pull request.
    #[serde(default)]
    is_pull: Option<bool>,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

/// The issue (or pull request) a conversation comment is on.
#[derive(Deserialize)]
struct Issue {
    number: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    state: String,
    /// Present (GitHub: links; Gitea, Gogs: merge state) when the issue is a pull request.
    #[serde(default)]
    pull_request: Option<IgnoredAny>,
}

/// A comment, or a review: the text and who wrote it.
#[derive(Deserialize)]
struct CommentBody {
    #[serde(default)]
    id: u64,
    /// A review without text has `"body": null`.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    user: Option<Author>,
    /// Reviews: `approved`, `changes_requested`, `commented`, `dismissed`.
    #[serde(default)]
    state: Option<String>,
}

/// A comment's author: GitHub and Gitea say `login`, Gogs `username`.
#[derive(Deserialize)]
struct Author {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    id: Option<u64>,
}

/// A `pull_request_review_comment` payload (GitHub): a comment on a line of the diff.
#[derive(Deserialize)]
pub struct ReviewCommentEvent {
    action: String,
    comment: CommentBody,
    pull_request: PullRequestBody,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

/// A `pull_request_review` payload (GitHub).
#[derive(Deserialize)]
pub struct ReviewEvent {
    action: String,
    review: CommentBody,
    pull_request: PullRequestBody,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

/// Gitea's and Forgejo's review payloads (`pull_request_approved`, `pull_request_rejected`,
/// `pull_request_comment`): a pull request payload with the review's text, no comment id.
#[derive(Deserialize)]
pub struct GiteaReviewEvent {
    #[serde(default)]
    number: Option<u64>,
    pull_request: PullRequestBody,
    #[serde(default)]
    review: Option<GiteaReview>,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Deserialize)]
struct GiteaReview {
    #[serde(default)]
    content: String,
}

impl Author {
    fn handle(&self) -> String {
        [&self.login, &self.username].into_iter().flatten().find(|h| !h.is_empty()).cloned().unwrap_or_default()
    }
}

impl CommentBody {
    /// The normalised comment, on `number`.
    fn into_comment(self, number: Option<u64>, on_pull_request: bool) -> Comment {
        Comment {
            id: self.id,
            body: command::bounded_body(self.body.as_deref().unwrap_or_default()),
            author: self.user.as_ref().map(Author::handle).unwrap_or_default(),
            author_id: self.user.and_then(|user| user.id),
            url: self.html_url.unwrap_or_default(),
            number,
            on_pull_request,
            review_state: self.state.map(|state| state.to_ascii_lowercase()),
        }
    }
}

/// A `comment` or `review` event: `comment` on `pull_request` (when it is on one), with
/// the command its text gives unless it was deleted. A pull request that the payload
/// describes whole also gives the event its ref, target branch and head commit.
fn comment_event(
    forge: &str,
    at: &Origin,
    (kind, action): (&str, String),
    repository: Repo,
    sender: Option<User>,
    comment: Comment,
    pull_request: Option<PullRequest>,
) -> Event {
    let command = match action.as_str() {
        "deleted" | "dismissed" => None,
        _ => command::parse(&comment.body),
    };
    let git_ref = pull_request.as_ref().map(|pr| format!("refs/pull/{}/head", pr.number));
    let branch = pull_request.as_ref().map(|pr| pr.target_branch.clone()).filter(|b| !b.is_empty());
    let after = pull_request.as_ref().map(|pr| pr.head.clone()).filter(|h| !h.is_empty());
    Event {
        action: Some(action),
        git_ref,
        branch,
        after,
        pull_request,
        comment: Some(comment),
        command,
        ..base(forge, at, kind, repository, sender)
    }
}

impl IssueCommentEvent {
    /// The `comment` event. GitHub and Gogs describe a pull request only as an issue: its
    /// number, title, page and state (no branches, no head commit); Gitea and Forgejo add
    /// the pull request whole.
    pub fn into_event(self, forge: &str, at: &Origin) -> Event {
        let issue = self.issue;
        let on_pull_request = self.is_pull.unwrap_or(issue.pull_request.is_some()) || self.pull_request.is_some();
        let whole = self.pull_request.map(|pr| pr.into_pull_request(Some(issue.number), self.repository.full_name()));
        let pull_request = whole.or_else(|| {
            on_pull_request.then(|| PullRequest {
                number: issue.number,
                title: issue.title,
                url: issue.html_url.unwrap_or_default(),
                state: issue.state.to_ascii_lowercase(),
                ..PullRequest::default()
            })
        });
        let comment = self.comment.into_comment(Some(issue.number), on_pull_request);
        comment_event(forge, at, ("comment", self.action), self.repository, self.sender, comment, pull_request)
    }
}

impl ReviewCommentEvent {
    /// The `comment` event, on the pull request the payload describes whole.
    pub fn into_event(self, forge: &str, at: &Origin) -> Event {
        let pull_request = self.pull_request.into_pull_request(None, self.repository.full_name());
        let comment = self.comment.into_comment(Some(pull_request.number), true);
        comment_event(forge, at, ("comment", self.action), self.repository, self.sender, comment, Some(pull_request))
    }
}

impl ReviewEvent {
    /// The `review` event: the review's text as the comment, its verdict as `review_state`.
    pub fn into_event(self, forge: &str, at: &Origin) -> Event {
        let pull_request = self.pull_request.into_pull_request(None, self.repository.full_name());
        let comment = self.review.into_comment(Some(pull_request.number), true);
        comment_event(forge, at, ("review", self.action), self.repository, self.sender, comment, Some(pull_request))
    }
}

impl GiteaReviewEvent {
    /// The `review` event (action `submitted`) with `review_state` as the forge's event
    /// name says; the author is the sender, as Gitea names no other.
    pub fn into_event(self, forge: &str, at: &Origin, review_state: &str) -> Event {
        let pull_request = self.pull_request.into_pull_request(self.number, self.repository.full_name());
        let sender = self.sender.and_then(User::handle);
        let comment = Comment {
            body: command::bounded_body(&self.review.map(|r| r.content).unwrap_or_default()),
            author: sender.clone().unwrap_or_default(),
            number: Some(pull_request.number),
            on_pull_request: true,
            review_state: Some(review_state.to_owned()),
            ..Comment::default()
        };
        let sender = sender.map(User::named);
        let kind = ("review", "submitted".to_owned());
        comment_event(forge, at, kind, self.repository, sender, comment, Some(pull_request))
    }
}
