//! Bitbucket Cloud: `X-Event-Key` (`repo:push`, `pullrequest:*`), `X-Request-UUID`,
//! HMAC-SHA256 in `X-Hub-Signature` as `sha256=<hex>`. One push may change several refs:
//! each change becomes its own event. Bitbucket never lists changed paths, so push
//! events always say their commit list is incomplete.

use super::Headers;
use super::body::{decode, json_text};
use super::signature::{Hash, check_hex, sign_hex};
use super::{Dialect, Envelope, Forge, Incoming, Options, Origin, Outgoing, ParseError, VerifyError, header};
use crate::event::{Commit, Event, PullRequest, Repository};
use crate::secret::Secret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

pub const FORGE: Forge = Forge { name: "bitbucket", configure };

const EVENT: &str = "X-Event-Key";
const DELIVERY: &str = "X-Request-UUID";
const SIGNATURE: &str = "X-Hub-Signature";

struct Bitbucket;

fn configure(_: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    Ok(Arc::new(Bitbucket))
}

impl Dialect for Bitbucket {
    fn forge(&self) -> &'static str {
        "bitbucket"
    }

    fn envelope(&self, headers: &Headers) -> Envelope {
        Envelope {
            delivery: header(headers, DELIVERY).map(str::to_owned),
            event: header(headers, EVENT).map(str::to_owned),
        }
    }

    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], _: SystemTime) -> Result<(), VerifyError> {
        check_hex(SIGNATURE, header(headers, SIGNATURE), "sha256=", Hash::Sha256, body, secrets)
    }

    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError> {
        let event = header(headers, EVENT).ok_or_else(|| ParseError::MissingHeader { header: EVENT.into() })?;
        if event == "diagnostics:ping" {
            return Ok(Incoming::Ping);
        }
        let pull_request_action = match event {
            "repo:push" => {
                let text = json_text(headers, body, event, false)?;
                let events = decode::<RepoPush>(&text, event)?.into_events(at);
                if events.is_empty() {
                    return Ok(Incoming::Ignored("Bitbucket push without ref changes".into()));
                }
                return Ok(Incoming::Events(events));
            }
            "pullrequest:created" => ("opened", false),
            "pullrequest:updated" => ("synchronize", false),
            "pullrequest:fulfilled" => ("closed", true),
            "pullrequest:rejected" => ("closed", false),
            other => return Ok(Incoming::Ignored(format!("Bitbucket event `{other}` is not handled"))),
        };
        let text = json_text(headers, body, event, false)?;
        let parsed = decode::<PullRequestPayload>(&text, event)?;
        Ok(Incoming::Events(vec![parsed.into_event(at, pull_request_action)]))
    }

    fn sign(&self, out: &Outgoing) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "Bitbucket-Webhooks/2.0".into()),
            (EVENT.into(), out.event.to_owned()),
            (DELIVERY.into(), out.delivery.to_owned()),
        ];
        if let Some(secret) = out.secret {
            headers.push((SIGNATURE.into(), sign_hex("sha256=", Hash::Sha256, out.body, secret)));
        }
        headers
    }
}

#[derive(Deserialize)]
struct RepoPush {
    push: PushBody,
    repository: BitbucketRepo,
    #[serde(default)]
    actor: Option<Actor>,
}

#[derive(Deserialize)]
struct PushBody {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    old: Option<RefState>,
    #[serde(default)]
    new: Option<RefState>,
    #[serde(default)]
    commits: Vec<BitbucketCommit>,
}

#[derive(Deserialize)]
struct RefState {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    hash: String,
}

#[derive(Deserialize)]
struct BitbucketCommit {
    hash: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    author: Option<CommitAuthor>,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct CommitAuthor {
    #[serde(default)]
    raw: String,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    html: Option<Href>,
}

#[derive(Deserialize)]
struct Href {
    href: String,
}

#[derive(Deserialize)]
struct BitbucketRepo {
    full_name: String,
    #[serde(default)]
    links: Option<Links>,
    #[serde(default)]
    mainbranch: Option<MainBranch>,
}

#[derive(Deserialize)]
struct MainBranch {
    name: String,
}

#[derive(Deserialize)]
struct Actor {
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

impl Actor {
    fn handle(self) -> Option<String> {
        self.nickname.or(self.display_name)
    }
}

impl BitbucketRepo {
    fn into_repository(self) -> Repository {
        let (owner, slug) = self.full_name.split_once('/').map_or_else(
            || (String::new(), self.full_name.clone()),
            |(owner, slug)| (owner.to_owned(), slug.to_owned()),
        );
        let html_url = self
            .links
            .and_then(|l| l.html)
            .map_or_else(|| format!("https://bitbucket.org/{}", self.full_name), |h| h.href);
        Repository {
            owner,
            name: slug,
            clone_url: format!("{html_url}.git"),
            html_url,
            full_name: self.full_name,
            default_branch: self.mainbranch.map(|b| b.name),
        }
    }
}

impl RepoPush {
    fn into_events(self, at: &Origin) -> Vec<Event> {
        let repository = self.repository.into_repository();
        let sender = self.actor.and_then(Actor::handle);
        self.push
            .changes
            .into_iter()
            .filter_map(|change| {
                let named = change.new.as_ref().or(change.old.as_ref())?;
                let is_tag = named.kind == "tag";
                let name = named.name.clone();
                let git_ref = if is_tag { format!("refs/tags/{name}") } else { format!("refs/heads/{name}") };
                let hash = |state: Option<RefState>| state.and_then(|s| s.target).map(|t| t.hash);
                let deleted = change.new.is_none();
                Some(Event {
                    delivery: at.delivery.to_owned(),
                    source: at.source.to_owned(),
                    forge: "bitbucket".into(),
                    kind: if is_tag { "tag" } else { "push" }.into(),
                    repository: repository.clone(),
                    git_ref: Some(git_ref),
                    branch: (!is_tag).then(|| name.clone()),
                    tag: is_tag.then_some(name),
                    before: hash(change.old),
                    after: hash(change.new),
                    deleted,
                    // Bitbucket lists commits newest first and never their paths.
                    commits: change.commits.into_iter().rev().map(BitbucketCommit::into_commit).collect(),
                    commits_complete: false,
                    sender: sender.clone(),
                    ..Event::default()
                })
            })
            .collect()
    }
}

impl BitbucketCommit {
    fn into_commit(self) -> Commit {
        Commit {
            id: self.hash,
            message: self.message,
            author: self.author.map(|a| a.raw).unwrap_or_default(),
            timestamp: self.date,
            url: self.links.and_then(|l| l.html).map(|h| h.href),
            ..Commit::default()
        }
    }
}

#[derive(Deserialize)]
struct PullRequestPayload {
    pullrequest: BitbucketPull,
    repository: BitbucketRepo,
    #[serde(default)]
    actor: Option<Actor>,
}

#[derive(Deserialize)]
struct BitbucketPull {
    id: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    state: String,
    source: Endpoint,
    destination: Endpoint,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Endpoint {
    branch: MainBranch,
    #[serde(default)]
    commit: Option<Target>,
    #[serde(default)]
    repository: Option<EndpointRepo>,
}

#[derive(Deserialize)]
struct EndpointRepo {
    full_name: String,
}

impl PullRequestPayload {
    fn into_event(self, at: &Origin, (action, merged): (&str, bool)) -> Event {
        let pr = self.pullrequest;
        let repository = self.repository.into_repository();
        let head = pr.source.commit.map(|c| c.hash).unwrap_or_default();
        // A source repository the payload leaves out (deleted) was a fork.
        let source_repository = match pr.source.repository {
            None => Some(crate::forge::github_shape::DELETED_FORK.to_owned()),
            Some(source) => Some(source.full_name).filter(|name| *name != repository.full_name),
        };
        let state = match pr.state.as_str() {
            "MERGED" => "merged",
            "OPEN" => "open",
            _ => "closed",
        };
        Event {
            delivery: at.delivery.to_owned(),
            source: at.source.to_owned(),
            forge: "bitbucket".into(),
            kind: "pull_request".into(),
            action: Some(action.into()),
            // Bitbucket has no pull request refs: the source branch is what to fetch.
            git_ref: Some(format!("refs/heads/{}", pr.source.branch.name)),
            branch: Some(pr.destination.branch.name.clone()),
            before: pr.destination.commit.map(|c| c.hash),
            after: Some(head.clone()).filter(|h| !h.is_empty()),
            sender: self.actor.and_then(Actor::handle),
            pull_request: Some(PullRequest {
                number: pr.id,
                title: pr.title,
                url: pr.links.and_then(|l| l.html).map(|h| h.href).unwrap_or_default(),
                state: state.into(),
                merged: merged || state == "merged",
                source_branch: pr.source.branch.name,
                target_branch: pr.destination.branch.name,
                head,
                source_repository,
            }),
            repository,
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, check_signature_table, fixture};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signature_table() {
        check_signature_table(&Bitbucket, "repo:push", &fixture("bitbucket", "repo-push.json"));
    }

    #[test]
    fn a_push_becomes_one_event_per_changed_ref() {
        let push = testing::event(&Bitbucket, "repo:push", "repo-push.json");
        assert_eq!(
            (push.forge.as_str(), push.kind.as_str(), push.branch.as_deref()),
            ("bitbucket", "push", Some("main"))
        );
        assert_eq!(push.repository.clone_url, "https://bitbucket.org/acme/widgets.git");
        assert_eq!(push.repository.owner, "acme");
        assert_eq!(push.sender.as_deref(), Some("carol"));
        assert!(!push.commits_complete, "Bitbucket never sends paths");
        assert_eq!(push.commits.len(), 2);
        assert_eq!(push.commits[1].id, "b2c4d6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9", "oldest first");
        assert_eq!(push.commits[1].author, "Carol Danvers <carol@example.com>");

        let several = testing::events(&Bitbucket, "repo:push", "repo-push-several.json");
        let summary: Vec<_> =
            several.iter().map(|e| (e.kind.as_str(), e.git_ref.as_deref().unwrap(), e.deleted)).collect();
        assert_eq!(
            summary,
            [
                ("tag", "refs/tags/v1.0.0", false),
                ("push", "refs/heads/old-feature", true),
                ("push", "refs/heads/main", false),
            ]
        );
        assert_eq!(several[0].before, None);
        assert_eq!(several[1].after, None);
    }

    #[test]
    fn a_pull_request_without_its_source_repository_is_a_fork() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&testing::fixture("bitbucket", "pullrequest-created.json")).unwrap();
        body["pullrequest"]["source"]["repository"] = serde_json::Value::Null;
        let Ok(Incoming::Events(events)) =
            testing::parse(&Bitbucket, "pullrequest:created", &serde_json::to_vec(&body).unwrap())
        else {
            panic!("no events")
        };
        let source = events[0].pull_request.as_ref().unwrap().source_repository.as_deref();
        assert_eq!(source, Some(crate::forge::github_shape::DELETED_FORK));
    }

    #[test]
    fn pull_requests() {
        let created = testing::event(&Bitbucket, "pullrequest:created", "pullrequest-created.json");
        assert_eq!((created.kind.as_str(), created.action.as_deref()), ("pull_request", Some("opened")));
        assert_eq!(created.branch.as_deref(), Some("main"));
        let pr = created.pull_request.unwrap();
        assert_eq!((pr.number, pr.source_branch.as_str(), pr.state.as_str()), (5, "feature/catalogue", "open"));
        let merged = testing::event(&Bitbucket, "pullrequest:fulfilled", "pullrequest-fulfilled.json");
        assert!(merged.pull_request.unwrap().merged);
        let declined = testing::event(&Bitbucket, "pullrequest:rejected", "pullrequest-rejected.json");
        let pr = declined.pull_request.unwrap();
        assert_eq!((declined.action.as_deref(), pr.merged, pr.state.as_str()), (Some("closed"), false, "closed"));
        let comment = testing::parse(&Bitbucket, "pullrequest:comment_created", b"{}");
        assert!(matches!(comment, Ok(Incoming::Ignored(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(event in "repo:push|pullrequest:created|pullrequest:fulfilled|x", body in any::<Vec<u8>>()) {
            let _ = testing::parse(&Bitbucket, &event, &body);
        }
    }
}
