//! GitLab's Note Hook: a comment on a merge request, an issue, a commit or a snippet,
//! as a `comment` event. Merge request notes describe the merge request whole (branches,
//! newest commit), so the event reads as the merge request's events do; system notes
//! (the forge's own "added 1 commit" lines) are not comments anyone wrote.

use super::{MergeRequestProject, Project};
use crate::event::{Comment, Event, PullRequest, command};
use crate::forge::Origin;
use serde::Deserialize;

/// A Note Hook payload.
#[derive(Deserialize)]
pub(super) struct Note {
    #[serde(default)]
    user: Option<NoteUser>,
    project: Project,
    object_attributes: NoteAttributes,
    #[serde(default)]
    merge_request: Option<NoteMergeRequest>,
    #[serde(default)]
    issue: Option<NoteIssue>,
    #[serde(default)]
    commit: Option<NoteCommit>,
}

#[derive(Deserialize)]
struct NoteUser {
    #[serde(default)]
    id: Option<u64>,
    username: String,
}

#[derive(Deserialize)]
struct NoteAttributes {
    id: u64,
    #[serde(default)]
    note: String,
    noteable_type: String,
    #[serde(default)]
    author_id: Option<u64>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    url: String,
    /// `create` or `update` (GitLab 16.11 and later; older ones send only creations).
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
struct NoteMergeRequest {
    iid: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    state: String,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    last_commit: Option<super::LastCommit>,
    #[serde(default)]
    source: Option<MergeRequestProject>,
    #[serde(default)]
    source_project_id: Option<u64>,
    #[serde(default)]
    target_project_id: Option<u64>,
}

#[derive(Deserialize)]
struct NoteIssue {
    iid: u64,
}

#[derive(Deserialize)]
struct NoteCommit {
    id: String,
}

impl Note {
    /// The `comment` event, or why the note is not one.
    pub(super) fn into_event(self, at: &Origin) -> Result<Event, String> {
        let attrs = self.object_attributes;
        if attrs.system {
            return Err("GitLab system note is not handled".into());
        }
        let action = match attrs.action.as_deref() {
            None | Some("create") => "created",
            Some("update") => "edited",
            Some(other) => return Err(format!("GitLab note action `{other}` is not handled")),
        };
        let target = self.project.path_with_namespace.clone();
        let (number, pull_request) = match attrs.noteable_type.as_str() {
            "MergeRequest" => {
                let mr = self.merge_request.ok_or("a merge request note without `merge_request`")?;
                let merged = mr.state == "merged";
                let state = match mr.state.as_str() {
                    "opened" => "open".to_owned(),
                    other => other.to_owned(),
                };
                // Older payloads leave the merge request's page out: the note's, less its anchor.
                let url = mr.url.unwrap_or_else(|| attrs.url.split('#').next().unwrap_or_default().to_owned());
                let pull_request = PullRequest {
                    number: mr.iid,
                    title: mr.title,
                    url,
                    state,
                    merged,
                    source_branch: mr.source_branch,
                    target_branch: mr.target_branch,
                    head: mr.last_commit.map(|c| c.id).unwrap_or_default(),
                    source_repository: super::fork(mr.source, (mr.source_project_id, mr.target_project_id), &target),
                };
                (Some(pull_request.number), Some(pull_request))
            }
            "Issue" => (self.issue.map(|issue| issue.iid), None),
            _ => (None, None),
        };
        let user = self.user;
        let comment = Comment {
            id: attrs.id,
            body: command::bounded_body(&attrs.note),
            author: user.as_ref().map(|u| u.username.clone()).unwrap_or_default(),
            author_id: user.as_ref().and_then(|u| u.id).or(attrs.author_id),
            url: attrs.url,
            number,
            on_pull_request: pull_request.is_some(),
            review_state: None,
        };
        let after = match &pull_request {
            Some(pr) => Some(pr.head.clone()).filter(|h| !h.is_empty()),
            None => self.commit.map(|c| c.id),
        };
        Ok(Event {
            delivery: at.delivery.to_owned(),
            source: at.source.to_owned(),
            forge: "gitlab".into(),
            kind: "comment".into(),
            action: Some(action.into()),
            git_ref: pull_request.as_ref().map(|pr| format!("refs/merge-requests/{}/head", pr.number)),
            branch: pull_request.as_ref().map(|pr| pr.target_branch.clone()),
            after,
            sender: user.map(|u| u.username),
            command: command::parse(&comment.body),
            comment: Some(comment),
            pull_request,
            repository: self.project.into_repository(),
            ..Event::default()
        })
    }
}
