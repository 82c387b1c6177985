//! Gitea and Forgejo: `X-Gitea-*` / `X-Forgejo-*` headers (Forgejo sends both), HMAC-SHA256
//! in hex in `X-Gitea-Signature` / `X-Forgejo-Signature`; GitHub-shaped JSON payloads with
//! `total_commits`, so a capped commit list is detected exactly. Comments come as
//! `issue_comment` (on issues and pull requests alike; `is_pull` tells them apart) and
//! reviews as `pull_request_approved`, `pull_request_rejected` and `pull_request_comment`.

use super::Headers;
use super::body::{decode, json_text};
use super::comment_shape::{GiteaReviewEvent, IssueCommentEvent};
use super::github_shape::{PullRequestEvent, Push, RefChange, ReleaseEvent};
use super::signature::{Hash, check_hex, sign_hex};
use super::{Dialect, Envelope, Forge, Incoming, Options, Origin, Outgoing, ParseError, VerifyError, first_header};
use crate::secret::Secret;
use std::sync::Arc;
use std::time::SystemTime;

pub const GITEA: Forge = Forge { name: "gitea", configure: configure_gitea };
pub const FORGEJO: Forge = Forge { name: "forgejo", configure: configure_forgejo };

/// Which of the two; they differ only in the header names they prefer.
struct Gitea {
    name: &'static str,
    event: &'static [&'static str],
    delivery: &'static [&'static str],
    signature: &'static [&'static str],
}

const GITEA_DIALECT: Gitea = Gitea {
    name: "gitea",
    event: &["X-Gitea-Event"],
    delivery: &["X-Gitea-Delivery"],
    signature: &["X-Gitea-Signature"],
};

const FORGEJO_DIALECT: Gitea = Gitea {
    name: "forgejo",
    event: &["X-Forgejo-Event", "X-Gitea-Event"],
    delivery: &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
    signature: &["X-Forgejo-Signature", "X-Gitea-Signature"],
};

fn configure_gitea(_: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    Ok(Arc::new(GITEA_DIALECT))
}

fn configure_forgejo(_: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    Ok(Arc::new(FORGEJO_DIALECT))
}

/// Gitea's action words for pull requests, in gitauto's words.
const ACTIONS: &[(&str, &str)] = &[("synchronized", "synchronize")];
const PULL_REQUEST_ACTIONS: &[&str] = &["opened", "synchronize", "reopened", "closed", "edited"];
/// The event names Gitea gives reviews, and the review state each means.
const REVIEWS: &[(&str, &str)] = &[
    ("pull_request_approved", "approved"),
    ("pull_request_rejected", "changes_requested"),
    ("pull_request_comment", "commented"),
];

impl Dialect for Gitea {
    fn forge(&self) -> &'static str {
        self.name
    }

    fn envelope(&self, headers: &Headers) -> Envelope {
        Envelope {
            delivery: first_header(headers, self.delivery).map(str::to_owned),
            event: first_header(headers, self.event).map(str::to_owned),
        }
    }

    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], _: SystemTime) -> Result<(), VerifyError> {
        let found = self.signature.iter().find_map(|name| first_header(headers, &[name]).map(|value| (*name, value)));
        let (name, value) = found.map_or((self.signature[0], None), |(name, value)| (name, Some(value)));
        check_hex(name, value, "", Hash::Sha256, body, secrets)
    }

    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError> {
        let event = first_header(headers, self.event)
            .ok_or_else(|| ParseError::MissingHeader { header: self.event[0].into() })?;
        let text = json_text(headers, body, event, true)?;
        // Gitea lists at most `[webhook] PAYLOAD_COMMIT_LIMIT` commits but says how many
        // there were, so the cap here never decides.
        let parsed = match event {
            "push" => decode::<Push>(&text, event)?.into_event(self.name, at, usize::MAX),
            "create" | "delete" => decode::<RefChange>(&text, event)?.into_event(self.name, at, event),
            "release" => decode::<ReleaseEvent>(&text, event)?.into_event(self.name, at),
            "issue_comment" => decode::<IssueCommentEvent>(&text, event)?.into_event(self.name, at),
            review if REVIEWS.iter().any(|(name, _)| *name == review) => {
                let state = REVIEWS.iter().find(|(name, _)| *name == review).map_or("commented", |(_, state)| state);
                decode::<GiteaReviewEvent>(&text, event)?.into_event(self.name, at, state)
            }
            "pull_request" => {
                let parsed = decode::<PullRequestEvent>(&text, event)?.into_event(self.name, at, ACTIONS);
                let action = parsed.action.as_deref().unwrap_or_default();
                if !PULL_REQUEST_ACTIONS.contains(&action) {
                    return Ok(Incoming::Ignored(format!(
                        "{} pull_request action `{action}` is not handled",
                        self.name
                    )));
                }
                parsed
            }
            other => return Ok(Incoming::Ignored(format!("{} event `{other}` is not handled", self.name))),
        };
        Ok(Incoming::Events(vec![parsed]))
    }

    fn sign(&self, out: &Outgoing) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        for name in self.event {
            headers.push(((*name).into(), out.event.to_owned()));
        }
        for name in self.delivery {
            headers.push(((*name).into(), out.delivery.to_owned()));
        }
        if let Some(secret) = out.secret {
            for name in self.signature {
                headers.push(((*name).into(), sign_hex("", Hash::Sha256, out.body, secret)));
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, check_signature_table, fixture, headers};
    use super::*;
    use proptest::prelude::*;

    const BOTH: [&Gitea; 2] = [&GITEA_DIALECT, &FORGEJO_DIALECT];

    #[test]
    fn signature_table() {
        for dialect in BOTH {
            check_signature_table(dialect, "push", &fixture(dialect.name, "push.json"));
        }
    }

    #[test]
    fn forgejo_also_accepts_the_gitea_headers_it_sends_alongside() {
        let body = fixture("forgejo", "push.json");
        let secret = Secret::new("s");
        let gitea_only = headers([("X-Gitea-Signature", sign_hex("", Hash::Sha256, &body, &secret))]);
        assert_eq!(FORGEJO_DIALECT.verify(&gitea_only, &body, &[secret], SystemTime::now()), Ok(()));
        let envelope = FORGEJO_DIALECT.envelope(&headers([("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "abc")]));
        assert_eq!((envelope.event.as_deref(), envelope.delivery.as_deref()), (Some("push"), Some("abc")));
    }

    #[test]
    fn pushes_use_total_commits_to_tell_a_capped_list() {
        for dialect in BOTH {
            let push = testing::event(dialect, "push", "push.json");
            assert_eq!(
                (push.forge.as_str(), push.kind.as_str(), push.branch.as_deref()),
                (dialect.name, "push", Some("main"))
            );
            assert_eq!(push.repository.full_name, "acme/widgets");
            assert_eq!(push.sender.as_deref(), Some("alice"));
            assert_eq!(push.commits[1].added, ["docs/index.md"]);
            assert_eq!(push.commits[1].author, "Alice <alice@example.com>");
            assert!(push.commits_complete);
            assert!(!testing::event(dialect, "push", "push-truncated.json").commits_complete);
            let tag = testing::event(dialect, "push", "push-tag.json");
            assert_eq!((tag.kind.as_str(), tag.tag.as_deref()), ("tag", Some("v1.0.0")));
        }
    }

    #[test]
    fn refs_pull_requests_and_releases() {
        for dialect in BOTH {
            let created = testing::event(dialect, "create", "create.json");
            assert_eq!((created.kind.as_str(), created.branch.as_deref()), ("create", Some("release/2.x")));
            assert_eq!(created.after.as_deref(), Some("7a6f8e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79"));
            let deleted = testing::event(dialect, "delete", "delete.json");
            assert_eq!((deleted.tag.as_deref(), deleted.deleted), (Some("v0.9.0"), true));
            let synced = testing::event(dialect, "pull_request", "pull_request-synchronized.json");
            assert_eq!(synced.action.as_deref(), Some("synchronize"));
            assert_eq!(synced.git_ref.as_deref(), Some("refs/pull/3/head"));
            let merged = testing::event(dialect, "pull_request", "pull_request-closed-merged.json");
            assert!(merged.pull_request.unwrap().merged);
            let release = testing::event(dialect, "release", "release-published.json");
            assert_eq!(release.tag.as_deref(), Some("v1.0.0"));
        }
    }

    #[test]
    fn comments_on_pull_requests_and_issues() {
        for dialect in BOTH {
            let created = testing::event(dialect, "issue_comment", "issue_comment-created.json");
            assert_eq!((created.kind.as_str(), created.action.as_deref()), ("comment", Some("created")));
            assert_eq!(created.sender.as_deref(), Some("alice"));
            let comment = created.comment.unwrap();
            assert_eq!((comment.id, comment.author.as_str(), comment.author_id), (77, "alice", Some(7)));
            assert_eq!((comment.number, comment.on_pull_request), (Some(3), true));
            assert!(comment.url.ends_with("/acme/widgets/pulls/3#issuecomment-77"), "{}", comment.url);
            assert_eq!(created.command.unwrap().args, ["staging"]);
            let pr = created.pull_request.unwrap();
            assert_eq!((pr.number, pr.state.as_str(), pr.target_branch.as_str()), (3, "open", "main"));
            assert_eq!(pr.head, "7a6f8e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79", "Gitea describes the pull request whole");
            assert_eq!(created.git_ref.as_deref(), Some("refs/pull/3/head"));
            assert_eq!((created.branch.as_deref(), created.after.as_deref()), (Some("main"), Some(pr.head.as_str())));

            let edited = testing::event(dialect, "issue_comment", "issue_comment-edited-on-issue.json");
            assert_eq!(edited.action.as_deref(), Some("edited"));
            let comment = edited.comment.unwrap();
            assert_eq!((comment.number, comment.on_pull_request), (Some(5), false));
            assert_eq!((edited.pull_request, edited.command), (None, None), "the command is not on the first line");
        }
    }

    #[test]
    fn reviews_take_their_state_from_the_event_name() {
        for dialect in BOTH {
            for (event, state) in REVIEWS {
                let review = testing::event(dialect, event, "pull_request_approved.json");
                assert_eq!((review.kind.as_str(), review.action.as_deref()), ("review", Some("submitted")), "{event}");
                let comment = review.comment.unwrap();
                assert_eq!(comment.review_state.as_deref(), Some(*state));
                assert_eq!((comment.body.as_str(), comment.author.as_str()), ("/merge when green", "alice"));
                assert_eq!(review.command.unwrap().name, "/merge");
                assert_eq!(review.pull_request.unwrap().head, "7a6f8e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            event in "push|create|delete|pull_request|release|issue_comment|pull_request_(approved|rejected|comment)|x",
            body in any::<Vec<u8>>(),
        ) {
            let _ = testing::parse(&GITEA_DIALECT, &event, &body);
            let _ = testing::parse(&FORGEJO_DIALECT, &event, &body);
        }
    }
}
