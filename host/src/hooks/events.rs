//! Which webhook events each forge must send for the event kinds gitauto makes from them:
//! the inverse of the parsers in `crate::forge` (docs/events.md, "Event kinds"). The
//! tests below hold this table to those parsers.

use crate::config::EventSelector;

/// One webhook event a forge can be told to send, and what gitauto makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookEvent {
    /// The event kind it becomes (`push`, `pull_request`, ...).
    pub kind: &'static str,
    /// The action it carries, when the forge has one hook event per action (Bitbucket);
    /// `None`: every action of the kind.
    pub action: Option<&'static str>,
    /// Its name in the forge's hook API (GitLab: the `*_events` flag).
    pub hook: &'static str,
    /// The event name its deliveries carry (`X-GitHub-Event`, `X-Gitlab-Event`, ...).
    pub delivered_as: &'static str,
}

const fn row(kind: &'static str, hook: &'static str, delivered_as: &'static str) -> HookEvent {
    HookEvent { kind, action: None, hook, delivered_as }
}

const fn action_row(
    kind: &'static str,
    action: &'static str,
    hook: &'static str,
    delivered_as: &'static str,
) -> HookEvent {
    HookEvent { kind, action: Some(action), hook, delivered_as }
}

const GITHUB: &[HookEvent] = &[
    row("push", "push", "push"),
    row("tag", "push", "push"),
    row("create", "create", "create"),
    row("delete", "delete", "delete"),
    row("pull_request", "pull_request", "pull_request"),
    row("comment", "issue_comment", "issue_comment"),
    row("comment", "pull_request_review_comment", "pull_request_review_comment"),
    row("review", "pull_request_review", "pull_request_review"),
    row("release", "release", "release"),
    row("check_run", "check_run", "check_run"),
    row("check_suite", "check_suite", "check_suite"),
];

const GITLAB: &[HookEvent] = &[
    row("push", "push_events", "Push Hook"),
    row("tag", "tag_push_events", "Tag Push Hook"),
    row("pull_request", "merge_requests_events", "Merge Request Hook"),
    row("comment", "note_events", "Note Hook"),
];

/// Gitea and Forgejo: the names their hook API takes (`addHook` and `editHook` in
/// `routers/api/v1/utils/hook.go`, which drop any other name without a word) are finer
/// than the deliveries' header: `pull_request_only` is opened, closed, reopened and edited
/// (`pull_request` would switch on every pull request event: labels, assignees, ...), a
/// pull request's new commits are `pull_request_sync`, and `pull_request_review` sends
/// approvals, rejections and review comments, each under its own header name.
const GITEA: &[HookEvent] = &[
    row("push", "push", "push"),
    row("tag", "push", "push"),
    row("create", "create", "create"),
    row("delete", "delete", "delete"),
    row("pull_request", "pull_request_only", "pull_request"),
    row("pull_request", "pull_request_sync", "pull_request"),
    row("comment", "issue_comment", "issue_comment"),
    row("comment", "pull_request_comment", "issue_comment"),
    row("review", "pull_request_review", "pull_request_approved"),
    row("review", "pull_request_review", "pull_request_rejected"),
    row("review", "pull_request_review", "pull_request_comment"),
    row("release", "release", "release"),
];

const GOGS: &[HookEvent] = &[
    row("push", "push", "push"),
    row("tag", "push", "push"),
    row("create", "create", "create"),
    row("delete", "delete", "delete"),
    row("pull_request", "pull_request", "pull_request"),
    row("comment", "issue_comment", "issue_comment"),
    row("release", "release", "release"),
];

const BITBUCKET: &[HookEvent] = &[
    row("push", "repo:push", "repo:push"),
    row("tag", "repo:push", "repo:push"),
    action_row("pull_request", "opened", "pullrequest:created", "pullrequest:created"),
    action_row("pull_request", "synchronize", "pullrequest:updated", "pullrequest:updated"),
    action_row("pull_request", "closed", "pullrequest:fulfilled", "pullrequest:fulfilled"),
    action_row("pull_request", "closed", "pullrequest:rejected", "pullrequest:rejected"),
];

/// The hook events `forge` can send that gitauto understands (empty for forges without
/// a hook API here).
pub fn table(forge: &str) -> &'static [HookEvent] {
    match forge {
        "github" => GITHUB,
        "gitlab" => GITLAB,
        "gitea" | "forgejo" => GITEA,
        "gogs" => GOGS,
        "bitbucket" => BITBUCKET,
        _ => &[],
    }
}

/// The hook events (their hook API names, in the table's order, each once) that make
/// the events `on` selects; `None`: every event of the forge.
pub fn needed(forge: &str, on: Option<&[EventSelector]>) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for event in table(forge) {
        let wanted = on.is_none_or(|on| {
            on.iter().any(|selector| {
                selector.kind == event.kind
                    && match (&selector.action, event.action) {
                        (Some(wanted), Some(action)) => wanted == action,
                        _ => true,
                    }
            })
        });
        if wanted && !names.contains(&event.hook) {
            names.push(event.hook);
        }
    }
    names
}

/// Whether some hook event of `forge` makes events `selector` selects.
pub fn deliverable(forge: &str, selector: &EventSelector) -> bool {
    !needed(forge, Some(std::slice::from_ref(selector))).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EVENT_KINDS;
    use crate::forge::testing::parse;
    use crate::forge::{FORGES, Incoming, Options};

    fn selector(text: &str) -> EventSelector {
        match text.split_once('.') {
            Some((kind, action)) => EventSelector { kind: kind.into(), action: Some(action.into()) },
            None => EventSelector { kind: text.into(), action: None },
        }
    }

    fn dialect(forge: &str) -> std::sync::Arc<dyn crate::forge::Dialect> {
        let found = FORGES.iter().find(|f| f.name == forge).unwrap();
        (found.configure)(&mut Options::default()).unwrap()
    }

    /// Every row's delivered event is one its forge's parser handles (it may refuse `{}`
    /// as unreadable, but never ignores the event), and every kind is one rules may name.
    #[test]
    fn every_hook_event_is_one_the_forges_parser_handles() {
        for forge in ["github", "gitlab", "gitea", "forgejo", "gogs", "bitbucket"] {
            let dialect = dialect(forge);
            assert!(!table(forge).is_empty(), "{forge}");
            for event in table(forge) {
                assert!(EVENT_KINDS.contains(&event.kind), "{forge}: {}", event.kind);
                // GitLab reads the kind from the body's `object_kind` too.
                let object_kind = match event.delivered_as {
                    "Push Hook" => "push",
                    "Tag Push Hook" => "tag_push",
                    "Merge Request Hook" => "merge_request",
                    "Note Hook" => "note",
                    _ => "",
                };
                let body = format!(r#"{{"object_kind": "{object_kind}"}}"#);
                let parsed = parse(dialect.as_ref(), event.delivered_as, body.as_bytes());
                assert!(
                    !matches!(parsed, Ok(Incoming::Ignored(_))),
                    "{forge}: `{}` is ignored by the parser: {parsed:?}",
                    event.delivered_as
                );
            }
        }
    }

    /// Events no row names are the ones the parsers ignore, so subscribing to them
    /// would only make deliveries gitauto drops.
    #[test]
    fn events_outside_the_table_are_ignored_by_the_parsers() {
        let others = [
            ("github", "issues"),
            ("github", "fork"),
            ("gitlab", "Issue Hook"),
            ("gitlab", "Pipeline Hook"),
            ("gitea", "issues"),
            ("gogs", "fork"),
            ("bitbucket", "pullrequest:comment_created"),
            ("bitbucket", "repo:fork"),
        ];
        for (forge, name) in others {
            assert!(table(forge).iter().all(|e| e.delivered_as != name), "{forge} {name}");
            let parsed = parse(dialect(forge).as_ref(), name, b"{}");
            assert!(matches!(parsed, Ok(Incoming::Ignored(_))), "{forge} {name}: {parsed:?}");
        }
    }

    #[test]
    fn rules_on_kinds_and_actions_select_the_forges_hook_events() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("github", &["push"], &["push"]),
            ("github", &["tag", "push"], &["push"]),
            (
                "github",
                &["pull_request.opened", "comment"],
                &["pull_request", "issue_comment", "pull_request_review_comment"],
            ),
            ("github", &["manual", "schedule"], &[]),
            ("gitlab", &["tag"], &["tag_push_events"]),
            ("gitlab", &["pull_request", "comment"], &["merge_requests_events", "note_events"]),
            ("gitlab", &["release"], &[]),
            ("gitea", &["pull_request"], &["pull_request_only", "pull_request_sync"]),
            // Gitea's one name for reviews, each row's delivery aside (issue 22, M1).
            ("forgejo", &["review"], &["pull_request_review"]),
            ("gitea", &["review", "comment"], &["issue_comment", "pull_request_comment", "pull_request_review"]),
            ("gogs", &["comment", "tag"], &["push", "issue_comment"]),
            ("bitbucket", &["pull_request.closed"], &["pullrequest:fulfilled", "pullrequest:rejected"]),
            ("bitbucket", &["pull_request.opened", "push"], &["repo:push", "pullrequest:created"]),
            ("bitbucket", &["pull_request.edited"], &[]),
            ("bitbucket", &["comment"], &[]),
        ];
        for (forge, on, expected) in cases {
            let on: Vec<EventSelector> = on.iter().map(|text| selector(text)).collect();
            assert_eq!(needed(forge, Some(&on)), *expected, "{forge} {on:?}");
        }
        assert_eq!(needed("gogs", None), ["push", "create", "delete", "pull_request", "issue_comment", "release"]);
        assert!(deliverable("github", &selector("check_run.rerequested")));
        assert!(!deliverable("github", &selector("installation")));
    }
}
