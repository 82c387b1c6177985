//! GitLab: Push Hook, Tag Push Hook, Merge Request Hook, Note Hook (in `note`) and System
//! Hook pushes.
//!
//! Two ways to authenticate, either accepted:
//! - a signing token: the Standard Webhooks scheme, HMAC-SHA256 over
//!   `{webhook-id}.{webhook-timestamp}.{body}` in `webhook-signature` as `v1,<base64>`,
//!   with the timestamp inside the replay window (default 5 minutes). A secret written
//!   `whsec_<base64>` is used as the decoded key bytes, anything else as its text;
//! - a secret token: `X-Gitlab-Token` equal to a secret (compared in constant time). It
//!   proves who sent the delivery but not that the body is intact.

mod note;

use super::Headers;
use super::body::{decode, json_text};
use super::github_shape::PushCommit;
use super::signature::{Hash, constant_time_eq, hmac};
use super::{
    Dialect, Envelope, Forge, Incoming, Options, Origin, Outgoing, ParseError, VerifyError, first_header, header,
};
use crate::event::{Event, PullRequest, Repository, is_null_commit, split_ref};
use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FORGE: Forge = Forge { name: "gitlab", configure };

const EVENT: &str = "X-Gitlab-Event";
const TOKEN: &str = "X-Gitlab-Token";
const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Delivery id headers, most specific first: all stay equal across GitLab's retries.
const DELIVERY: &[&str] = &[WEBHOOK_ID, "Idempotency-Key", "X-Gitlab-Event-UUID"];

/// The Standard Webhooks recommendation.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

struct GitLab {
    replay_window: Duration,
}

fn configure(options: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    let replay_window = options.replay_window.take().unwrap_or(DEFAULT_REPLAY_WINDOW);
    if replay_window.is_zero() {
        return Err("`replay_window` must be longer than zero".into());
    }
    Ok(Arc::new(GitLab { replay_window }))
}

/// The HMAC key a secret stands for.
fn signing_key(secret: &Secret) -> Vec<u8> {
    let text = secret.expose();
    text.strip_prefix("whsec_").and_then(|b64| BASE64.decode(b64).ok()).unwrap_or_else(|| text.as_bytes().to_vec())
}

impl GitLab {
    fn verify_signed(
        &self,
        headers: &Headers,
        signatures: &str,
        body: &[u8],
        secrets: &[Secret],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let missing = |name: &str| VerifyError::MissingSignature { header: name.to_owned() };
        let malformed = |name: &str, reason: &str| VerifyError::MalformedSignature {
            header: name.to_owned(),
            reason: reason.to_owned(),
        };
        let id = header(headers, WEBHOOK_ID).ok_or_else(|| missing(WEBHOOK_ID))?;
        let timestamp = header(headers, WEBHOOK_TIMESTAMP).ok_or_else(|| missing(WEBHOOK_TIMESTAMP))?;
        let seconds: u64 =
            timestamp.trim().parse().map_err(|_| malformed(WEBHOOK_TIMESTAMP, "expected Unix seconds"))?;
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let age = now_secs.abs_diff(seconds);
        if age > self.replay_window.as_secs() {
            return Err(VerifyError::Stale { age_secs: age, window_secs: self.replay_window.as_secs() });
        }
        let offered: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .collect();
        if offered.is_empty() {
            return Err(malformed(WEBHOOK_SIGNATURE, "expected space-separated `v1,<base64>` entries"));
        }
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let matches = secrets.iter().any(|secret| {
            let expected = hmac(Hash::Sha256, &signing_key(secret), &signed);
            offered.iter().any(|candidate| constant_time_eq(candidate, &expected))
        });
        if matches { Ok(()) } else { Err(VerifyError::Mismatch { header: WEBHOOK_SIGNATURE.into() }) }
    }
}

impl Dialect for GitLab {
    fn forge(&self) -> &'static str {
        "gitlab"
    }

    fn envelope(&self, headers: &Headers) -> Envelope {
        Envelope {
            delivery: first_header(headers, DELIVERY).map(str::to_owned),
            event: header(headers, EVENT).map(str::to_owned),
        }
    }

    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], now: SystemTime) -> Result<(), VerifyError> {
        if let Some(signatures) = header(headers, WEBHOOK_SIGNATURE) {
            return self.verify_signed(headers, signatures, body, secrets, now);
        }
        let token = header(headers, TOKEN)
            .ok_or_else(|| VerifyError::MissingSignature { header: format!("{TOKEN}` or `{WEBHOOK_SIGNATURE}") })?;
        // Compare digests, so that neither content nor length leaks through timing.
        let offered = hmac(Hash::Sha256, b"gitauto token comparison", &[token.as_bytes()]);
        let matches = secrets.iter().any(|secret| {
            constant_time_eq(&hmac(Hash::Sha256, b"gitauto token comparison", &[secret.expose().as_bytes()]), &offered)
        });
        if matches { Ok(()) } else { Err(VerifyError::Mismatch { header: TOKEN.into() }) }
    }

    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError> {
        let event = header(headers, EVENT).ok_or_else(|| ParseError::MissingHeader { header: EVENT.into() })?;
        let handled =
            matches!(event, "Push Hook" | "Tag Push Hook" | "Merge Request Hook" | "Note Hook" | "System Hook");
        if !handled {
            return Ok(Incoming::Ignored(format!("GitLab event `{event}` is not handled")));
        }
        let text = json_text(headers, body, event, false)?;
        let kind: Kind = decode(&text, event)?;
        let parsed = match kind.object_kind.as_deref() {
            Some("push" | "tag_push") => decode::<GitLabPush>(&text, event)?.into_event(at),
            Some("merge_request") => match decode::<MergeRequest>(&text, event)?.into_event(at) {
                Some(parsed) => parsed,
                None => return Ok(Incoming::Ignored("GitLab merge request action is not handled".into())),
            },
            Some("note") => match decode::<note::Note>(&text, event)?.into_event(at) {
                Ok(parsed) => parsed,
                Err(why) => return Ok(Incoming::Ignored(why)),
            },
            _ => {
                let what = kind.object_kind.or(kind.event_name).unwrap_or_else(|| "(unnamed)".into());
                return Ok(Incoming::Ignored(format!("GitLab {event} `{what}` is not handled")));
            }
        };
        Ok(Incoming::Events(vec![parsed]))
    }

    fn sign(&self, out: &Outgoing) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".into(), "application/json".into()),
            (EVENT.into(), out.event.to_owned()),
            ("X-Gitlab-Event-UUID".into(), out.delivery.to_owned()),
            ("Idempotency-Key".into(), out.delivery.to_owned()),
        ];
        match out.secret {
            Some(secret) if secret.expose().starts_with("whsec_") => {
                let timestamp = out.now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string();
                let signed = [out.delivery.as_bytes(), b".", timestamp.as_bytes(), b".", out.body];
                let signature = BASE64.encode(hmac(Hash::Sha256, &signing_key(secret), &signed));
                headers.push((WEBHOOK_ID.into(), out.delivery.to_owned()));
                headers.push((WEBHOOK_TIMESTAMP.into(), timestamp));
                headers.push((WEBHOOK_SIGNATURE.into(), format!("v1,{signature}")));
            }
            Some(secret) => headers.push((TOKEN.into(), secret.expose().to_owned())),
            None => {}
        }
        headers
    }
}

/// Enough of any payload to dispatch on.
#[derive(Deserialize)]
struct Kind {
    #[serde(default)]
    object_kind: Option<String>,
    #[serde(default)]
    event_name: Option<String>,
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
    #[serde(default)]
    git_http_url: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
}

impl Project {
    fn into_repository(self) -> Repository {
        let (owner, name) = match self.path_with_namespace.rsplit_once('/') {
            Some((owner, name)) => (owner.to_owned(), name.to_owned()),
            None => (String::new(), self.path_with_namespace.clone()),
        };
        Repository {
            owner,
            name,
            full_name: self.path_with_namespace,
            clone_url: self.git_http_url.unwrap_or_default(),
            html_url: self.web_url.unwrap_or_default(),
            default_branch: self.default_branch,
        }
    }
}

#[derive(Deserialize)]
struct GitLabPush {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    user_username: Option<String>,
    project: Project,
    #[serde(default)]
    commits: Vec<PushCommit>,
    #[serde(default)]
    total_commits_count: Option<usize>,
}

impl GitLabPush {
    fn into_event(self, at: &Origin) -> Event {
        let (branch, tag) = split_ref(&self.git_ref);
        // GitLab lists at most 20 commits; `total_commits_count` says how many there were.
        let commits_complete = self.total_commits_count.is_none_or(|total| self.commits.len() >= total);
        Event {
            delivery: at.delivery.to_owned(),
            source: at.source.to_owned(),
            forge: "gitlab".into(),
            kind: if tag.is_some() { "tag" } else { "push" }.into(),
            repository: self.project.into_repository(),
            deleted: self.after.as_deref().is_some_and(is_null_commit),
            git_ref: Some(self.git_ref),
            branch,
            tag,
            before: self.before,
            after: self.after,
            commits: self.commits.into_iter().map(PushCommit::into_commit).collect(),
            commits_complete,
            sender: self.user_username,
            ..Event::default()
        }
    }
}

#[derive(Deserialize)]
struct MergeRequest {
    #[serde(default)]
    user: Option<GitLabUser>,
    project: Project,
    object_attributes: MergeRequestAttributes,
}

#[derive(Deserialize)]
struct GitLabUser {
    username: String,
}

#[derive(Deserialize)]
struct MergeRequestAttributes {
    iid: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    action: Option<String>,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    oldrev: Option<String>,
    #[serde(default)]
    last_commit: Option<LastCommit>,
    #[serde(default)]
    source: Option<MergeRequestProject>,
    #[serde(default)]
    source_project_id: Option<u64>,
    #[serde(default)]
    target_project_id: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct LastCommit {
    id: String,
}

#[derive(Deserialize)]
pub(super) struct MergeRequestProject {
    path_with_namespace: String,
}

/// A merge request's `source_repository`: the source project when it is not the target
/// one, compared by id where the payload has both ids. A source project the payload
/// leaves out or sends as `null` (a deleted fork) is a fork: its code is no more trusted
/// for being gone.
pub(super) fn fork(
    source: Option<MergeRequestProject>,
    ids: (Option<u64>, Option<u64>),
    target: &str,
) -> Option<String> {
    let name = source.map(|s| s.path_with_namespace);
    let deleted = || crate::forge::github_shape::DELETED_FORK.to_owned();
    match ids {
        (Some(source), Some(target)) if source == target => None,
        (Some(_), Some(_)) => Some(name.filter(|name| !name.is_empty()).unwrap_or_else(deleted)),
        _ => match name {
            None => Some(deleted()),
            Some(name) => (name != target).then_some(name),
        },
    }
}

impl MergeRequest {
    fn into_event(self, at: &Origin) -> Option<Event> {
        let attrs = self.object_attributes;
        let action = match (attrs.action.as_deref()?, attrs.oldrev.is_some()) {
            ("open", _) => "opened",
            ("reopen", _) => "reopened",
            ("close" | "merge", _) => "closed",
            ("update", true) => "synchronize",
            ("update", false) => "edited",
            _ => return None,
        };
        let merged = attrs.state == "merged" || attrs.action.as_deref() == Some("merge");
        let head = attrs.last_commit.map(|c| c.id).unwrap_or_default();
        let target = self.project.path_with_namespace.clone();
        let source_repository = fork(attrs.source, (attrs.source_project_id, attrs.target_project_id), &target);
        let state = match attrs.state.as_str() {
            _ if merged => "merged",
            "opened" => "open",
            other => other,
        };
        Some(Event {
            delivery: at.delivery.to_owned(),
            source: at.source.to_owned(),
            forge: "gitlab".into(),
            kind: "pull_request".into(),
            action: Some(action.into()),
            git_ref: Some(format!("refs/merge-requests/{}/head", attrs.iid)),
            branch: Some(attrs.target_branch.clone()),
            before: attrs.oldrev,
            after: Some(head.clone()).filter(|h| !h.is_empty()),
            sender: self.user.map(|u| u.username),
            pull_request: Some(PullRequest {
                number: attrs.iid,
                title: attrs.title,
                url: attrs.url,
                state: state.to_owned(),
                merged,
                source_branch: attrs.source_branch,
                target_branch: attrs.target_branch,
                head,
                source_repository,
            }),
            repository: self.project.into_repository(),
            ..Event::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, check_signature_table_with, fixture, headers, signed};
    use super::*;
    use proptest::prelude::*;

    fn gitlab() -> GitLab {
        GitLab { replay_window: DEFAULT_REPLAY_WINDOW }
    }

    const PREVIOUS: &str = "whsec_cHJldmlvdXMgc2lnbmluZyBrZXk=";
    const CURRENT: &str = "whsec_Y3VycmVudCBzaWduaW5nIGtleQ==";

    #[test]
    fn signing_token_table() {
        check_signature_table_with(
            &gitlab(),
            "Push Hook",
            &fixture("gitlab", "push.json"),
            [PREVIOUS, CURRENT, "whsec_Z3Vlc3M="],
        );
    }

    #[test]
    fn secret_token_table() {
        let body = fixture("gitlab", "push.json");
        let secrets = [Secret::new("previous-token"), Secret::new("current-token")];
        let now = SystemTime::now();
        let token = |value: &str| headers([(TOKEN, value)]);
        assert_eq!(gitlab().verify(&token("current-token"), &body, &secrets, now), Ok(()));
        assert_eq!(gitlab().verify(&token("previous-token"), &body, &secrets, now), Ok(()));
        let wrong = gitlab().verify(&token("current-token-2"), &body, &secrets, now).unwrap_err();
        assert_eq!(wrong, VerifyError::Mismatch { header: TOKEN.into() });
        let missing = gitlab().verify(&Headers::new(), &body, &secrets, now).unwrap_err();
        assert_eq!(missing.to_string(), "missing signature header `X-Gitlab-Token` or `webhook-signature`");
    }

    #[test]
    fn replayed_timestamps_outside_the_window_are_refused() {
        let body = fixture("gitlab", "push.json");
        let secrets = [Secret::new(CURRENT)];
        let now = SystemTime::now();
        for (offset_secs, accepted) in [(-299i64, true), (299, true), (-301, false), (301, false), (-86_400, false)] {
            let signed_at = if offset_secs < 0 {
                now - Duration::from_secs(offset_secs.unsigned_abs())
            } else {
                now + Duration::from_secs(offset_secs as u64)
            };
            let map = signed(&gitlab(), "Push Hook", &body, Some(&secrets[0]), signed_at);
            let got = gitlab().verify(&map, &body, &secrets, now);
            assert_eq!(got.is_ok(), accepted, "signed {offset_secs} s from now: {got:?}");
            if !accepted {
                assert!(matches!(got, Err(VerifyError::Stale { .. })), "{got:?}");
            }
        }
        let narrow = GitLab { replay_window: Duration::from_secs(10) };
        let map = signed(&narrow, "Push Hook", &body, Some(&secrets[0]), now - Duration::from_secs(60));
        assert!(narrow.verify(&map, &body, &secrets, now).unwrap_err().to_string().contains("replay window of 10 s"));
    }

    #[test]
    fn malformed_standard_webhook_headers() {
        let secrets = [Secret::new(CURRENT)];
        let now = SystemTime::now();
        let ts = now.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
        let rows: [(Vec<(&str, &str)>, &str); 3] = [
            (vec![(WEBHOOK_SIGNATURE, "v1,AAAA"), (WEBHOOK_TIMESTAMP, &ts)], "missing signature header `webhook-id`"),
            (vec![(WEBHOOK_SIGNATURE, "v1,AAAA"), (WEBHOOK_ID, "x"), (WEBHOOK_TIMESTAMP, "soon")], "Unix seconds"),
            (vec![(WEBHOOK_SIGNATURE, "v2,AAAA"), (WEBHOOK_ID, "x"), (WEBHOOK_TIMESTAMP, &ts)], "`v1,<base64>`"),
        ];
        for (pairs, want) in rows {
            let err = gitlab().verify(&headers(pairs), b"{}", &secrets, now).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn delivery_id_prefers_the_standard_webhooks_id() {
        let map = headers([("X-Gitlab-Event-UUID", "u"), ("Idempotency-Key", "k"), (WEBHOOK_ID, "w")]);
        assert_eq!(gitlab().envelope(&map).delivery.as_deref(), Some("w"));
        assert_eq!(gitlab().envelope(&headers([("X-Gitlab-Event-UUID", "u")])).delivery.as_deref(), Some("u"));
    }

    #[test]
    fn pushes_keep_the_group_path_and_say_when_commits_were_capped() {
        let push = testing::event(&gitlab(), "Push Hook", "push.json");
        assert_eq!((push.forge.as_str(), push.kind.as_str(), push.branch.as_deref()), ("gitlab", "push", Some("main")));
        let repo = &push.repository;
        assert_eq!((repo.owner.as_str(), repo.name.as_str()), ("acme/platform", "widgets"));
        assert_eq!(repo.full_name, "acme/platform/widgets");
        assert_eq!(repo.clone_url, "https://gitlab.example.com/acme/platform/widgets.git");
        assert_eq!(repo.default_branch.as_deref(), Some("main"));
        assert_eq!(push.sender.as_deref(), Some("jsmith"));
        assert_eq!(push.commits[1].added, ["docs/index.md"]);
        assert_eq!(push.commits[0].author, "Jordi Mallach <jordi@example.com>");
        assert!(push.commits_complete);
        assert!(!testing::event(&gitlab(), "Push Hook", "push-truncated.json").commits_complete);
        let tag = testing::event(&gitlab(), "Tag Push Hook", "tag_push.json");
        assert_eq!((tag.kind.as_str(), tag.tag.as_deref()), ("tag", Some("v1.0.0")));
        let deleted = testing::event(&gitlab(), "Push Hook", "push-branch-deleted.json");
        assert!(deleted.deleted);
        let system = testing::event(&gitlab(), "System Hook", "system_hook-push.json");
        assert_eq!(system.repository.full_name, "acme/platform/widgets");
        let create = testing::parse(&gitlab(), "System Hook", &fixture("gitlab", "system_hook-project_create.json"));
        assert_eq!(create, Ok(Incoming::Ignored("GitLab System Hook `project_create` is not handled".into())));
    }

    #[test]
    fn merge_requests_map_onto_pull_requests() {
        let opened = testing::event(&gitlab(), "Merge Request Hook", "merge_request-open.json");
        assert_eq!((opened.kind.as_str(), opened.action.as_deref()), ("pull_request", Some("opened")));
        assert_eq!(opened.git_ref.as_deref(), Some("refs/merge-requests/12/head"));
        assert_eq!(opened.branch.as_deref(), Some("main"));
        let pr = opened.pull_request.unwrap();
        assert_eq!(
            (pr.number, pr.state.as_str(), pr.head.as_str()),
            (12, "open", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
        );
        let update = testing::event(&gitlab(), "Merge Request Hook", "merge_request-update-commits.json");
        assert_eq!(update.action.as_deref(), Some("synchronize"));
        assert_eq!(update.before.as_deref(), Some("b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327"));
        let merged = testing::event(&gitlab(), "Merge Request Hook", "merge_request-merge.json");
        let pr = merged.pull_request.unwrap();
        assert_eq!((merged.action.as_deref(), pr.merged, pr.state.as_str()), (Some("closed"), true, "merged"));
        let approved =
            testing::parse(&gitlab(), "Merge Request Hook", &fixture("gitlab", "merge_request-approved.json"));
        assert!(matches!(approved, Ok(Incoming::Ignored(_))), "{approved:?}");
        let wiki = testing::parse(&gitlab(), "Wiki Page Hook", b"{}");
        assert_eq!(wiki, Ok(Incoming::Ignored("GitLab event `Wiki Page Hook` is not handled".into())));
    }

    /// The fork a merge request (hook or note) comes from, with its source project
    /// changed by `edit` on the fixture's JSON.
    fn source_of(event: &str, fixture: &str, at: &str, edit: fn(&mut serde_json::Value)) -> Option<String> {
        let mut body: serde_json::Value = serde_json::from_slice(&testing::fixture("gitlab", fixture)).unwrap();
        edit(&mut body[at]);
        let parsed = testing::parse(&gitlab(), event, &serde_json::to_vec(&body).unwrap()).unwrap();
        let Incoming::Events(events) = parsed else { panic!("{event}: no events") };
        events[0].pull_request.as_ref().unwrap().source_repository.clone()
    }

    #[test]
    fn a_deleted_or_other_source_project_is_a_fork_by_project_id() {
        let deleted = Some(crate::forge::github_shape::DELETED_FORK.to_owned());
        for (event, fixture, at) in [
            ("Merge Request Hook", "merge_request-open.json", "object_attributes"),
            ("Note Hook", "note-merge_request.json", "merge_request"),
        ] {
            assert_eq!(source_of(event, fixture, at, |_| {}), None, "{event}: same project");
            let gone = source_of(event, fixture, at, |mr| {
                mr["source"] = serde_json::Value::Null;
                mr["source_project_id"] = 99.into();
            });
            assert_eq!(gone, deleted, "{event}: a deleted fork");
            let missing = source_of(event, fixture, at, |mr| {
                mr["source"] = serde_json::Value::Null;
                mr.as_object_mut().unwrap().remove("source_project_id");
            });
            assert_eq!(missing, deleted, "{event}: no source project id, no source");
            let same_name = source_of(event, fixture, at, |mr| mr["source_project_id"] = 99.into());
            assert!(same_name.is_some(), "{event}: another project id is a fork whatever its name");
            let null_same_id = source_of(event, fixture, at, |mr| mr["source"] = serde_json::Value::Null);
            assert_eq!(null_same_id, None, "{event}: the target project itself");
        }
    }

    #[test]
    fn merge_request_notes_describe_the_merge_request() {
        let note = testing::event(&gitlab(), "Note Hook", "note-merge_request.json");
        assert_eq!((note.kind.as_str(), note.action.as_deref()), ("comment", Some("created")));
        assert_eq!(note.sender.as_deref(), Some("jdoe"));
        let comment = note.comment.unwrap();
        assert_eq!((comment.id, comment.author.as_str(), comment.author_id), (1244, "jdoe", Some(42)));
        assert_eq!((comment.number, comment.on_pull_request), (Some(12), true));
        assert_eq!(comment.url, "https://gitlab.example.com/acme/platform/widgets/-/merge_requests/12#note_1244");
        assert_eq!(note.command.unwrap().args, ["staging"]);
        let pr = note.pull_request.unwrap();
        assert_eq!((pr.number, pr.state.as_str(), pr.target_branch.as_str()), (12, "open", "main"));
        assert_eq!(pr.head, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(pr.source_repository, None);
        assert_eq!(note.git_ref.as_deref(), Some("refs/merge-requests/12/head"));
        assert_eq!((note.branch.as_deref(), note.after.as_deref()), (Some("main"), Some(pr.head.as_str())));
        assert_eq!(note.repository.full_name, "acme/platform/widgets");
    }

    #[test]
    fn issue_and_commit_notes_and_what_is_ignored() {
        let issue = testing::event(&gitlab(), "Note Hook", "note-issue-update.json");
        assert_eq!(issue.action.as_deref(), Some("edited"));
        let comment = issue.comment.unwrap();
        assert_eq!((comment.number, comment.on_pull_request), (Some(17), false));
        assert_eq!((issue.pull_request, issue.git_ref), (None, None));
        assert_eq!(issue.command.unwrap().line, "/retry please");

        let commit = testing::event(&gitlab(), "Note Hook", "note-commit.json");
        assert_eq!(commit.action.as_deref(), Some("created"), "payloads without `action` are creations");
        assert_eq!(commit.after.as_deref(), Some("cfe32cf61b73a0d5e9f13e774abde7ff789b1660"));
        assert_eq!((commit.comment.unwrap().number, commit.command), (None, None));

        let mut system: serde_json::Value =
            serde_json::from_slice(&fixture("gitlab", "note-merge_request.json")).unwrap();
        system["object_attributes"]["system"] = true.into();
        let parsed = testing::parse(&gitlab(), "Note Hook", system.to_string().as_bytes());
        assert_eq!(parsed, Ok(Incoming::Ignored("GitLab system note is not handled".into())));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            event in "Push Hook|Tag Push Hook|Merge Request Hook|Note Hook|System Hook|x",
            body in any::<Vec<u8>>(),
        ) {
            let _ = testing::parse(&gitlab(), &event, &body);
        }

        #[test]
        fn mutated_notes_never_panic(cut in 0usize..6000, flip in any::<u8>()) {
            testing::parse_mutated(&gitlab(), "Note Hook", "note-merge_request.json", cut, flip);
        }

        #[test]
        fn arbitrary_signature_headers_never_panic(sig in "[ -~]{0,80}", ts in "[ -~]{0,20}", id in "[a-z0-9-]{0,40}") {
            let map = headers([(WEBHOOK_SIGNATURE, sig), (WEBHOOK_TIMESTAMP, ts), (WEBHOOK_ID, id)]);
            let _ = gitlab().verify(&map, b"{}", &[Secret::new(CURRENT)], SystemTime::now());
        }
    }
}
