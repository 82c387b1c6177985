//! Gogs: `X-Gogs-Event`, `X-Gogs-Delivery`, HMAC-SHA256 in hex in `X-Gogs-Signature`.
//! Pushes, refs and releases are GitHub-shaped; pull requests have Gogs' own shape, which
//! names branches but not the head commit. Comments (`issue_comment`) are GitHub-shaped.

use super::Headers;
use super::body::{decode, json_text};
use super::comment_shape::IssueCommentEvent;
use super::github_shape::{Push, RefChange, ReleaseEvent};
use super::signature::{Hash, check_hex, sign_hex};
use super::{Dialect, Envelope, Forge, Incoming, Options, Origin, Outgoing, ParseError, VerifyError, header};
use crate::event::{Event, PullRequest, Repository};
use crate::secret::Secret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

pub const FORGE: Forge = Forge { name: "gogs", configure };

const EVENT: &str = "X-Gogs-Event";
const DELIVERY: &str = "X-Gogs-Delivery";
const SIGNATURE: &str = "X-Gogs-Signature";

/// Gogs lists at most this many commits in a push (`[ui] FEED_MAX_COMMIT_NUM`, default 5)
/// and does not say how many there were: a list this long may have been cut.
const MAX_PUSH_COMMITS: usize = 5;

struct Gogs;

fn configure(_: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    Ok(Arc::new(Gogs))
}

impl Dialect for Gogs {
    fn forge(&self) -> &'static str {
        "gogs"
    }

    fn envelope(&self, headers: &Headers) -> Envelope {
        Envelope {
            delivery: header(headers, DELIVERY).map(str::to_owned),
            event: header(headers, EVENT).map(str::to_owned),
        }
    }

    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], _: SystemTime) -> Result<(), VerifyError> {
        check_hex(SIGNATURE, header(headers, SIGNATURE), "", Hash::Sha256, body, secrets)
    }

    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError> {
        let event = header(headers, EVENT).ok_or_else(|| ParseError::MissingHeader { header: EVENT.into() })?;
        let text = json_text(headers, body, event, false)?;
        let parsed = match event {
            "push" => decode::<Push>(&text, event)?.into_event("gogs", at, MAX_PUSH_COMMITS),
            "create" | "delete" => decode::<RefChange>(&text, event)?.into_event("gogs", at, event),
            "release" => decode::<ReleaseEvent>(&text, event)?.into_event("gogs", at),
            "issue_comment" => decode::<IssueCommentEvent>(&text, event)?.into_event("gogs", at),
            "pull_request" => match decode::<GogsPullRequest>(&text, event)?.into_event(at) {
                Some(parsed) => parsed,
                None => return Ok(Incoming::Ignored("gogs pull_request action is not handled".into())),
            },
            other => return Ok(Incoming::Ignored(format!("gogs event `{other}` is not handled"))),
        };
        Ok(Incoming::Events(vec![parsed]))
    }

    fn sign(&self, out: &Outgoing) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".into(), "application/json".into()),
            (EVENT.into(), out.event.to_owned()),
            (DELIVERY.into(), out.delivery.to_owned()),
        ];
        if let Some(secret) = out.secret {
            headers.push((SIGNATURE.into(), sign_hex("", Hash::Sha256, out.body, secret)));
        }
        headers
    }
}

#[derive(Deserialize)]
struct GogsPullRequest {
    action: String,
    pull_request: GogsPull,
    repository: GogsRepo,
    #[serde(default)]
    sender: Option<GogsUser>,
}

#[derive(Deserialize)]
struct GogsPull {
    index: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    merged: bool,
    head_branch: String,
    base_branch: String,
    #[serde(default)]
    head_repo: Option<GogsRepo>,
}

#[derive(Deserialize)]
struct GogsRepo {
    name: String,
    full_name: String,
    #[serde(default)]
    owner: Option<GogsUser>,
    #[serde(default)]
    clone_url: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct GogsUser {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    login: Option<String>,
}

impl GogsUser {
    fn handle(self) -> Option<String> {
        self.username.filter(|u| !u.is_empty()).or(self.login)
    }
}

impl GogsPullRequest {
    fn into_event(self, at: &Origin) -> Option<Event> {
        let action = match self.action.as_str() {
            "synchronized" => "synchronize",
            known @ ("opened" | "reopened" | "closed" | "edited") => known,
            _ => return None,
        };
        let pr = self.pull_request;
        let repo = self.repository;
        // A head repository the payload leaves out (deleted) was a fork.
        let source_repository = match pr.head_repo {
            None => Some(crate::forge::github_shape::DELETED_FORK.to_owned()),
            Some(head) => Some(head.full_name).filter(|name| *name != repo.full_name),
        };
        let owner = repo.owner.and_then(GogsUser::handle).unwrap_or_default();
        Some(Event {
            delivery: at.delivery.to_owned(),
            source: at.source.to_owned(),
            forge: "gogs".into(),
            kind: "pull_request".into(),
            action: Some(action.into()),
            git_ref: Some(format!("refs/pull/{}/head", pr.index)),
            branch: Some(pr.base_branch.clone()),
            sender: self.sender.and_then(GogsUser::handle),
            pull_request: Some(PullRequest {
                number: pr.index,
                title: pr.title,
                url: pr.html_url,
                state: if pr.merged { "merged".into() } else { pr.state },
                merged: pr.merged,
                source_branch: pr.head_branch,
                target_branch: pr.base_branch,
                head: String::new(),
                source_repository,
            }),
            repository: Repository {
                owner,
                name: repo.name,
                full_name: repo.full_name,
                clone_url: repo.clone_url,
                html_url: repo.html_url,
                default_branch: repo.default_branch,
            },
            ..Event::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, check_signature_table, fixture};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signature_table() {
        check_signature_table(&Gogs, "push", &fixture("gogs", "push.json"));
    }

    #[test]
    fn a_pull_request_without_its_head_repository_is_a_fork() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&testing::fixture("gogs", "pull_request-opened.json")).unwrap();
        body["pull_request"]["head_repo"] = serde_json::Value::Null;
        let Ok(Incoming::Events(events)) = testing::parse(&Gogs, "pull_request", &serde_json::to_vec(&body).unwrap())
        else {
            panic!("no events")
        };
        let source = events[0].pull_request.as_ref().unwrap().source_repository.as_deref();
        assert_eq!(source, Some(crate::forge::github_shape::DELETED_FORK));
    }

    #[test]
    fn events_are_normalised() {
        let push = testing::event(&Gogs, "push", "push.json");
        assert_eq!((push.kind.as_str(), push.branch.as_deref()), ("push", Some("master")));
        assert_eq!((push.repository.owner.as_str(), push.sender.as_deref()), ("acme", Some("bob")));
        assert_eq!(push.commits[0].modified, ["docs/catalogue.md"]);
        let created = testing::event(&Gogs, "create", "create.json");
        assert_eq!((created.kind.as_str(), created.tag.as_deref()), ("create", Some("v1.0")));
        let deleted = testing::event(&Gogs, "delete", "delete.json");
        assert_eq!((deleted.branch.as_deref(), deleted.deleted), (Some("old-feature"), true));
        let pr = testing::event(&Gogs, "pull_request", "pull_request-synchronized.json");
        assert_eq!((pr.action.as_deref(), pr.branch.as_deref()), (Some("synchronize"), Some("master")));
        let body = pr.pull_request.unwrap();
        assert_eq!((body.number, body.source_branch.as_str(), body.head.as_str()), (4, "feature", ""));
        let merged = testing::event(&Gogs, "pull_request", "pull_request-closed-merged.json");
        assert_eq!(merged.pull_request.unwrap().state, "merged");
        assert_eq!(testing::event(&Gogs, "release", "release-published.json").tag.as_deref(), Some("v1.0"));
    }

    #[test]
    fn comments_name_their_pull_request_and_command() {
        let created = testing::event(&Gogs, "issue_comment", "issue_comment-created.json");
        assert_eq!((created.kind.as_str(), created.action.as_deref()), ("comment", Some("created")));
        assert_eq!((created.sender.as_deref(), created.repository.owner.as_str()), (Some("bob"), "acme"));
        let comment = created.comment.unwrap();
        assert_eq!((comment.id, comment.author.as_str(), comment.author_id), (31, "bob", Some(5)));
        assert_eq!((comment.number, comment.on_pull_request), (Some(4), true));
        assert_eq!(created.command.unwrap().line, "/deploy staging");
        assert_eq!(created.pull_request.unwrap().number, 4);
        assert_eq!(created.git_ref.as_deref(), Some("refs/pull/4/head"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(event in "push|create|delete|pull_request|release|issue_comment|x", body in any::<Vec<u8>>()) {
            let _ = testing::parse(&Gogs, &event, &body);
        }
    }
}
