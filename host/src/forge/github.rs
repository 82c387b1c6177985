//! GitHub and GitHub Enterprise: `X-Hub-Signature-256` (HMAC-SHA256 of the raw body; the
//! SHA-1 `X-Hub-Signature` only when the source sets `legacy_sha1`); JSON or form-encoded
//! bodies; `push`, `create`, `delete`, `pull_request`, `release`, `ping`, comments and
//! reviews (`issue_comment`, `pull_request_review_comment`, `pull_request_review`), and
//! `check_run` and `check_suite`.

use super::Headers;
use super::body::{decode, json_text};
use super::comment_shape::{IssueCommentEvent, ReviewCommentEvent, ReviewEvent};
use super::github_check::{CheckRunEvent, CheckSuiteEvent};
use super::github_shape::{PullRequestEvent, Push, RefChange, ReleaseEvent};
use super::signature::{Hash, check_hex, sign_hex};
use super::{Dialect, Envelope, Forge, Incoming, Options, Origin, Outgoing, ParseError, VerifyError, header};
use crate::event::Event;
use crate::secret::Secret;
use std::sync::Arc;
use std::time::SystemTime;

pub const FORGE: Forge = Forge { name: "github", configure };

const SIGNATURE_256: &str = "X-Hub-Signature-256";
const SIGNATURE_SHA1: &str = "X-Hub-Signature";
const EVENT: &str = "X-GitHub-Event";
const DELIVERY: &str = "X-GitHub-Delivery";

/// GitHub lists at most this many commits in a push payload.
const MAX_PUSH_COMMITS: usize = 2048;

/// Pull request actions gitauto routes; the others (assignments, review requests, ...)
/// are ignored.
const PULL_REQUEST_ACTIONS: &[&str] =
    &["opened", "synchronize", "reopened", "closed", "edited", "labeled", "unlabeled"];

/// The GitHub App installation a delivery came through: GitHub adds it to every
/// delivery of an app's webhook.
#[derive(serde::Deserialize)]
struct InstallationRef {
    installation: Option<Installation>,
}

#[derive(serde::Deserialize)]
struct Installation {
    id: u64,
}

/// Whether the payload may have an `installation` key: written out, or behind a `\u`
/// escape (JSON allows one in a key). Most deliveries come through a repository's or an
/// organisation's hook and have neither; they are spared a second parse of the body.
fn may_name_installation(text: &str) -> bool {
    text.contains("\"installation\"") || text.contains("\\u")
}

struct GitHub {
    legacy_sha1: bool,
}

fn configure(options: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    Ok(Arc::new(GitHub { legacy_sha1: options.legacy_sha1.take().unwrap_or(false) }))
}

impl Dialect for GitHub {
    fn forge(&self) -> &'static str {
        "github"
    }

    fn envelope(&self, headers: &Headers) -> Envelope {
        Envelope {
            delivery: header(headers, DELIVERY).map(str::to_owned),
            event: header(headers, EVENT).map(str::to_owned),
        }
    }

    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], _: SystemTime) -> Result<(), VerifyError> {
        let sha256 = header(headers, SIGNATURE_256);
        if sha256.is_none() && self.legacy_sha1 {
            let sha1 = header(headers, SIGNATURE_SHA1);
            if sha1.is_some() {
                return check_hex(SIGNATURE_SHA1, sha1, "sha1=", Hash::Sha1, body, secrets);
            }
        }
        check_hex(SIGNATURE_256, sha256, "sha256=", Hash::Sha256, body, secrets)
    }

    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError> {
        let event = header(headers, EVENT).ok_or_else(|| ParseError::MissingHeader { header: EVENT.into() })?;
        let text = json_text(headers, body, event, true)?;
        let parsed = match event {
            "ping" => return Ok(Incoming::Ping),
            "push" => decode::<Push>(&text, event)?.into_event("github", at, MAX_PUSH_COMMITS),
            "create" | "delete" => decode::<RefChange>(&text, event)?.into_event("github", at, event),
            "release" => decode::<ReleaseEvent>(&text, event)?.into_event("github", at),
            "issue_comment" => decode::<IssueCommentEvent>(&text, event)?.into_event("github", at),
            "pull_request_review_comment" => decode::<ReviewCommentEvent>(&text, event)?.into_event("github", at),
            "pull_request_review" => decode::<ReviewEvent>(&text, event)?.into_event("github", at),
            "installation" | "installation_repositories" => return super::github_installation::parse(&text, event, at),
            "pull_request" => {
                let parsed = decode::<PullRequestEvent>(&text, event)?.into_event("github", at, &[]);
                let action = parsed.action.as_deref().unwrap_or_default();
                if !PULL_REQUEST_ACTIONS.contains(&action) {
                    return Ok(Incoming::Ignored(format!("GitHub pull_request action `{action}` is not handled")));
                }
                parsed
            }
            "check_run" => decode::<CheckRunEvent>(&text, event)?.into_event("github", at),
            "check_suite" => decode::<CheckSuiteEvent>(&text, event)?.into_event("github", at),
            other => return Ok(Incoming::Ignored(format!("GitHub event `{other}` is not handled"))),
        };
        let installation = match may_name_installation(&text) {
            true => decode::<InstallationRef>(&text, event)?.installation.map(|installation| installation.id),
            false => None,
        };
        Ok(Incoming::Events(vec![Event { installation, ..parsed }]))
    }

    fn sign(&self, out: &Outgoing) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "GitHub-Hookshot/gitauto-send".into()),
            (EVENT.into(), out.event.to_owned()),
            (DELIVERY.into(), out.delivery.to_owned()),
        ];
        if let Some(secret) = out.secret {
            headers.push((SIGNATURE_256.into(), sign_hex("sha256=", Hash::Sha256, out.body, secret)));
            headers.push((SIGNATURE_SHA1.into(), sign_hex("sha1=", Hash::Sha1, out.body, secret)));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, check_signature_table, fixture, headers};
    use super::*;
    use proptest::prelude::*;

    fn github() -> GitHub {
        GitHub { legacy_sha1: false }
    }

    #[test]
    fn signature_table() {
        check_signature_table(&github(), "push", &fixture("github", "push.json"));
        check_signature_table(&GitHub { legacy_sha1: true }, "push", &fixture("github", "push.json"));
    }

    #[test]
    fn sha1_only_when_the_source_opts_in() {
        let body = fixture("github", "push.json");
        let secrets = [Secret::new("s")];
        let sha1 = headers([(SIGNATURE_SHA1, sign_hex("sha1=", Hash::Sha1, &body, &secrets[0]))]);
        let now = SystemTime::now();
        let refused = github().verify(&sha1, &body, &secrets, now).unwrap_err();
        assert_eq!(refused.to_string(), "missing signature header `X-Hub-Signature-256`");
        assert_eq!(GitHub { legacy_sha1: true }.verify(&sha1, &body, &secrets, now), Ok(()));
        // With both headers the SHA-256 one decides, even when legacy SHA-1 is allowed.
        let both = headers([
            (SIGNATURE_SHA1, sign_hex("sha1=", Hash::Sha1, &body, &secrets[0])),
            (SIGNATURE_256, sign_hex("sha256=", Hash::Sha256, b"other", &secrets[0])),
        ]);
        assert!(GitHub { legacy_sha1: true }.verify(&both, &body, &secrets, now).is_err());
    }

    #[test]
    fn malformed_signatures_say_what_is_wrong() {
        let secrets = [Secret::new("s")];
        for (value, want) in [
            ("sha1=00", "expected `sha256=<hex digest>`"),
            ("sha256=zz", "not hexadecimal"),
            ("sha256=abcd", "not 32 bytes"),
        ] {
            let err = github().verify(&headers([(SIGNATURE_256, value)]), b"{}", &secrets, SystemTime::now());
            assert!(err.unwrap_err().to_string().contains(want), "{value}");
        }
    }

    #[test]
    fn branch_push_is_normalised() {
        let event = testing::event(&github(), "push", "push.json");
        assert_eq!((event.forge.as_str(), event.kind.as_str(), event.source.as_str()), ("github", "push", "src"));
        assert_eq!(event.delivery, "d-1");
        assert_eq!(event.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!((event.branch.as_deref(), event.tag.as_deref()), (Some("main"), None));
        assert_eq!(event.after.as_deref(), Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
        assert_eq!(event.repository.owner, "acme");
        assert_eq!(event.repository.full_name, "acme/widgets");
        assert_eq!(event.repository.clone_url, "https://github.com/acme/widgets.git");
        assert_eq!(event.repository.default_branch.as_deref(), Some("main"));
        assert_eq!(event.sender.as_deref(), Some("octocat"));
        assert!(!event.deleted && event.commits_complete);
        assert_eq!(event.commits.len(), 2);
        assert_eq!(event.commits[0].author, "Octo Cat <octocat@example.com>");
        assert_eq!(event.commits[0].added, ["docs/catalogue.md"]);
        assert_eq!(event.commits[1].removed, ["img/logo-old.png"]);
    }

    #[test]
    fn tag_push_and_branch_deletion() {
        let tag = testing::event(&github(), "push", "push-tag.json");
        assert_eq!((tag.kind.as_str(), tag.branch.as_deref(), tag.tag.as_deref()), ("tag", None, Some("v1.2.0")));
        let deleted = testing::event(&github(), "push", "push-branch-deleted.json");
        assert!(deleted.deleted);
        assert_eq!(deleted.branch.as_deref(), Some("old-feature"));
    }

    #[test]
    fn create_and_delete_name_the_branch_or_tag() {
        let created = testing::event(&github(), "create", "create-tag.json");
        assert_eq!((created.kind.as_str(), created.tag.as_deref()), ("create", Some("v2.0.0")));
        assert_eq!(created.git_ref.as_deref(), Some("refs/tags/v2.0.0"));
        assert!(!created.deleted);
        let deleted = testing::event(&github(), "delete", "delete-branch.json");
        assert_eq!((deleted.kind.as_str(), deleted.branch.as_deref()), ("delete", Some("old-feature")));
        assert!(deleted.deleted);
    }

    #[test]
    fn pull_requests_carry_target_branch_head_and_merged_flag() {
        let opened = testing::event(&github(), "pull_request", "pull_request-opened.json");
        assert_eq!((opened.kind.as_str(), opened.action.as_deref()), ("pull_request", Some("opened")));
        assert_eq!(opened.branch.as_deref(), Some("main"));
        assert_eq!(opened.git_ref.as_deref(), Some("refs/pull/7/head"));
        let pr = opened.pull_request.unwrap();
        assert_eq!((pr.number, pr.source_branch.as_str(), pr.state.as_str()), (7, "feature/catalogue", "open"));
        assert_eq!(pr.head, "5e2b6a4d1f0c9b8a7e6d5c4b3a29180716253443");
        assert_eq!(opened.after.as_deref(), Some(pr.head.as_str()));
        assert_eq!(pr.source_repository, None, "same-repository pull request");

        let synced = testing::event(&github(), "pull_request", "pull_request-synchronize.json");
        assert_eq!(synced.action.as_deref(), Some("synchronize"));
        assert_eq!(synced.pull_request.unwrap().source_repository.as_deref(), Some("octocat/widgets"));
        // Issue 21: a fork deleted after opening its pull request is still a fork.
        let mut orphan: serde_json::Value =
            serde_json::from_slice(&testing::fixture("github", "pull_request-synchronize.json")).unwrap();
        orphan["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        let Ok(Incoming::Events(orphan)) = testing::parse(&github(), "pull_request", orphan.to_string().as_bytes())
        else {
            panic!("the payload parses")
        };
        let source = orphan[0].pull_request.as_ref().unwrap().source_repository.as_deref();
        assert_eq!(source, Some(crate::forge::github_shape::DELETED_FORK));

        let merged = testing::event(&github(), "pull_request", "pull_request-closed-merged.json");
        let pr = merged.pull_request.unwrap();
        assert_eq!((merged.action.as_deref(), pr.merged, pr.state.as_str()), (Some("closed"), true, "merged"));
    }

    #[test]
    fn label_changes_name_the_label() {
        let labelled = testing::event(&github(), "pull_request", "pull_request-labeled.json");
        assert_eq!((labelled.kind.as_str(), labelled.action.as_deref()), ("pull_request", Some("labeled")));
        assert_eq!(labelled.label.as_deref(), Some("documentation"));
        assert_eq!(labelled.pull_request.unwrap().number, 7);
        let mut body: serde_json::Value =
            serde_json::from_slice(&fixture("github", "pull_request-labeled.json")).unwrap();
        body["action"] = "assigned".into();
        let assigned = testing::parse(&github(), "pull_request", body.to_string().as_bytes());
        assert_eq!(assigned, Ok(Incoming::Ignored("GitHub pull_request action `assigned` is not handled".into())));
        let opened = testing::event(&github(), "pull_request", "pull_request-opened.json");
        assert_eq!(opened.label, None);
    }

    /// The installation is read only when the payload may name it, in whatever spelling
    /// JSON allows (issue 23 spared the other deliveries a second parse).
    #[test]
    fn a_push_carries_its_installation_however_the_key_is_written() {
        let push = String::from_utf8(fixture("github", "push.json")).unwrap();
        let installation = |body: &str| match testing::parse(&github(), "push", body.as_bytes()) {
            Ok(Incoming::Events(events)) => events[0].installation,
            other => panic!("{other:?}"),
        };
        assert_eq!(installation(&push), None);
        let with = |key: &str| push.replacen('{', &format!("{{\"{key}\": {{\"id\": 77}}, "), 1);
        assert_eq!(installation(&with("installation")), Some(77));
        assert_eq!(installation(&with("\\u0069nstallation")), Some(77));
        assert_eq!(installation(&with("installations")), None);
    }

    #[test]
    fn conversation_comments_carry_the_comment_and_its_command() {
        let created = testing::event(&github(), "issue_comment", "issue_comment-created.json");
        assert_eq!((created.kind.as_str(), created.action.as_deref()), ("comment", Some("created")));
        assert_eq!((created.sender.as_deref(), created.installation), (Some("hubot"), Some(4411)));
        let comment = created.comment.unwrap();
        assert_eq!(
            comment,
            crate::event::Comment {
                id: 1510293441,
                body: "/deploy staging\r\n\r\nafter the review, please".into(),
                author: "hubot".into(),
                author_id: Some(1048576),
                url: "https://github.com/acme/widgets/pull/7#issuecomment-1510293441".into(),
                number: Some(7),
                on_pull_request: true,
                review_state: None,
            }
        );
        let command = created.command.unwrap();
        assert_eq!((command.name.as_str(), command.args.as_slice()), ("/deploy", ["staging".to_owned()].as_slice()));
        assert_eq!(command.line, "/deploy staging");
        let pr = created.pull_request.unwrap();
        assert_eq!((pr.number, pr.title.as_str(), pr.state.as_str()), (7, "Add the widget catalogue", "open"));
        assert_eq!(pr.url, "https://github.com/acme/widgets/pull/7");
        assert_eq!((pr.head.as_str(), pr.target_branch.as_str()), ("", ""), "an issue_comment names no branches");
        assert_eq!(created.git_ref.as_deref(), Some("refs/pull/7/head"));
        assert_eq!((created.branch, created.after), (None, None));

        let edited = testing::event(&github(), "issue_comment", "issue_comment-edited.json");
        assert_eq!(edited.action.as_deref(), Some("edited"));
        assert_eq!(edited.command.unwrap().args, ["production"]);

        let on_issue = testing::event(&github(), "issue_comment", "issue_comment-created-on-issue.json");
        let comment = on_issue.comment.unwrap();
        assert_eq!((comment.number, comment.on_pull_request), (Some(12), false));
        assert_eq!((on_issue.pull_request, on_issue.git_ref, on_issue.command), (None, None, None));

        let mut body: serde_json::Value =
            serde_json::from_slice(&fixture("github", "issue_comment-created.json")).unwrap();
        body["action"] = "deleted".into();
        let deleted = testing::parse(&github(), "issue_comment", body.to_string().as_bytes());
        let Ok(Incoming::Events(deleted)) = deleted else { panic!("{deleted:?}") };
        assert_eq!((deleted[0].action.as_deref(), &deleted[0].command), (Some("deleted"), &None), "no command");
    }

    #[test]
    fn diff_comments_and_reviews_describe_the_whole_pull_request() {
        let line = testing::event(&github(), "pull_request_review_comment", "pull_request_review_comment-created.json");
        assert_eq!((line.kind.as_str(), line.action.as_deref()), ("comment", Some("created")));
        let comment = line.comment.unwrap();
        assert_eq!((comment.id, comment.number, comment.on_pull_request), (2210593, Some(7), true));
        assert_eq!(comment.url, "https://github.com/acme/widgets/pull/7#discussion_r2210593");
        assert_eq!(line.command.unwrap().args, ["docs/catalogue.md"]);
        let pr = line.pull_request.unwrap();
        assert_eq!((pr.source_branch.as_str(), pr.target_branch.as_str()), ("feature/catalogue", "main"));
        assert_eq!(line.after.as_deref(), Some("5e2b6a4d1f0c9b8a7e6d5c4b3a29180716253443"));
        assert_eq!((line.branch.as_deref(), line.git_ref.as_deref()), (Some("main"), Some("refs/pull/7/head")));

        let review = testing::event(&github(), "pull_request_review", "pull_request_review-submitted.json");
        assert_eq!((review.kind.as_str(), review.action.as_deref()), ("review", Some("submitted")));
        let comment = review.comment.unwrap();
        assert_eq!((comment.body.as_str(), comment.review_state.as_deref()), ("", Some("approved")));
        assert_eq!((comment.author.as_str(), comment.id), ("hubot", 1829304455));
        assert_eq!(review.command, None);
        assert_eq!(review.pull_request.unwrap().head, "5e2b6a4d1f0c9b8a7e6d5c4b3a29180716253443");
    }

    #[test]
    fn comment_bodies_are_bounded_in_the_event() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&fixture("github", "issue_comment-created.json")).unwrap();
        let huge = format!("/deploy staging\n{}", "x".repeat(200 * 1024));
        body["comment"]["body"] = huge.clone().into();
        let parsed = testing::parse(&github(), "issue_comment", body.to_string().as_bytes());
        let Ok(Incoming::Events(events)) = parsed else { panic!("{parsed:?}") };
        let comment = events[0].comment.as_ref().unwrap();
        assert_eq!(comment.body.len(), crate::event::command::MAX_BODY);
        assert!(huge.starts_with(&comment.body));
        assert_eq!(events[0].command.as_ref().unwrap().args, ["staging"]);
        assert_eq!(crate::event::names::check(&events[0]), Ok(()));
    }

    #[test]
    fn releases_name_their_tag() {
        let release = testing::event(&github(), "release", "release-published.json");
        assert_eq!((release.kind.as_str(), release.action.as_deref()), ("release", Some("published")));
        assert_eq!(release.tag.as_deref(), Some("v1.2.0"));
        assert_eq!(release.git_ref.as_deref(), Some("refs/tags/v1.2.0"));
    }

    #[test]
    fn form_encoded_bodies_carry_the_payload_field() {
        let json = fixture("github", "push.json");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json).unwrap())
            .finish();
        let map = headers([(EVENT, "push"), ("content-type", "application/x-www-form-urlencoded")]);
        let at = Origin { source: "s", delivery: "d" };
        let Ok(Incoming::Events(events)) = github().parse(&map, body.as_bytes(), &at) else { panic!() };
        assert_eq!(events[0].repository.full_name, "acme/widgets");
        let stored = super::super::payload_text(Some("application/x-www-form-urlencoded"), body.as_bytes());
        assert_eq!(stored.as_bytes(), json);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let json = ("content-type", "application/json");
        let form = ("content-type", "application/x-www-form-urlencoded");
        type Row<'a> = (Vec<(&'a str, &'a str)>, &'a [u8], &'a str);
        let rows: Vec<Row> = vec![
            (vec![json], b"{}", "missing header `X-GitHub-Event`"),
            (vec![(EVENT, "push"), ("content-type", "text/plain")], b"{}", "unsupported content type `text/plain`"),
            (vec![(EVENT, "push")], b"{}", "unsupported content type `(none)`"),
            (vec![(EVENT, "push"), json], b"{", "unreadable push payload: EOF while parsing"),
            (vec![(EVENT, "push"), json], b"[]", "unreadable push payload: invalid length 0"),
            (vec![(EVENT, "push"), json], b"{\"ref\": \"x\"}", "missing field `repository`"),
            (vec![(EVENT, "push"), json], b"\xff\xfe", "unreadable push payload: invalid utf-8"),
            (vec![(EVENT, "push"), form], b"other=1", "form body without a `payload` field"),
        ];
        let at = Origin { source: "s", delivery: "d" };
        for (pairs, body, want) in rows {
            let err = github().parse(&headers(pairs), body, &at).unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?}, got {err:?}");
        }
    }

    #[test]
    fn ping_and_other_events() {
        assert_eq!(testing::parse(&github(), "ping", &fixture("github", "ping.json")), Ok(Incoming::Ping));
        let issues = testing::parse(&github(), "issues", b"{}");
        // `issues` events (labels on issues included) are not routed.
        assert_eq!(issues, Ok(Incoming::Ignored("GitHub event `issues` is not handled".into())));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(event in "push|create|delete|pull_request|release|ping|issue_comment|pull_request_review(_comment)?|x", body in any::<Vec<u8>>()) {
            let _ = testing::parse(&github(), &event, &body);
        }

        #[test]
        fn mutated_payloads_never_panic(cut in 0usize..8000, flip in any::<u8>()) {
            for (event, name) in [
                ("pull_request", "pull_request-opened.json"),
                ("issue_comment", "issue_comment-created.json"),
                ("pull_request_review", "pull_request_review-submitted.json"),
            ] {
                testing::parse_mutated(&github(), event, name, cut, flip);
            }
        }
    }
}
