//! GitHub's `check_run` and `check_suite` payloads: what a re-run request (`rerequested`)
//! is about — the run (with the `external_id` gitauto gave it: the job id) or the suite,
//! its commit and the app that owns it. Ingest acts on re-run requests; rules may route
//! these events like any other.

use super::Origin;
use super::github_shape::{Repo, User, base};
use crate::event::{Check, Event};
use serde::Deserialize;

/// A `check_run` payload.
#[derive(Deserialize)]
pub struct CheckRunEvent {
    action: String,
    check_run: CheckRun,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Deserialize)]
struct CheckRun {
    id: u64,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    head_sha: String,
    #[serde(default)]
    app: Option<App>,
    #[serde(default)]
    check_suite: Option<SuiteRef>,
}

#[derive(Deserialize)]
struct SuiteRef {
    #[serde(default)]
    head_branch: Option<String>,
}

/// A `check_suite` payload.
#[derive(Deserialize)]
pub struct CheckSuiteEvent {
    action: String,
    check_suite: CheckSuite,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Deserialize)]
struct CheckSuite {
    id: u64,
    head_sha: String,
    #[serde(default)]
    head_branch: Option<String>,
    #[serde(default)]
    app: Option<App>,
}

#[derive(Deserialize)]
struct App {
    id: u64,
}

/// The event's ref, branch and commit from a suite's head.
fn head(event: Event, branch: Option<String>, sha: &str) -> Event {
    let branch = branch.filter(|name| !name.is_empty());
    Event {
        git_ref: branch.as_ref().map(|name| format!("refs/heads/{name}")),
        branch,
        after: Some(sha.to_owned()).filter(|sha| !sha.is_empty()),
        ..event
    }
}

impl CheckRunEvent {
    /// The event: kind `check_run`, the run in `check`.
    pub fn into_event(self, forge: &str, at: &Origin) -> Event {
        let run = self.check_run;
        let branch = run.check_suite.and_then(|suite| suite.head_branch);
        let check = Check {
            id: run.id,
            external_id: run.external_id.filter(|id| !id.is_empty()),
            name: run.name,
            head_sha: run.head_sha.clone(),
            app_id: run.app.map(|app| app.id),
        };
        let event = Event {
            action: Some(self.action),
            check: Some(check),
            ..base(forge, at, "check_run", self.repository, self.sender)
        };
        head(event, branch, &run.head_sha)
    }
}

impl CheckSuiteEvent {
    /// The event: kind `check_suite`, the suite in `check`.
    pub fn into_event(self, forge: &str, at: &Origin) -> Event {
        let suite = self.check_suite;
        let check = Check {
            id: suite.id,
            external_id: None,
            name: None,
            head_sha: suite.head_sha.clone(),
            app_id: suite.app.map(|app| app.id),
        };
        let event = Event {
            action: Some(self.action),
            check: Some(check),
            ..base(forge, at, "check_suite", self.repository, self.sender)
        };
        head(event, suite.head_branch, &suite.head_sha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Origin<'static> {
        Origin { source: "gh", delivery: "d1" }
    }

    #[test]
    fn a_rerequested_check_run_names_the_job_its_commit_and_app() {
        let payload = serde_json::json!({
            "action": "rerequested",
            "check_run": {
                "id": 4, "name": "gitauto/ci", "head_sha": "ce587453ced02b1526dfb4cb910479d431683101",
                "external_id": "42", "status": "completed", "conclusion": "failure",
                "app": {"id": 7, "slug": "gitauto"},
                "check_suite": {"id": 5, "head_branch": "main", "head_sha": "ce587453ced02b1526dfb4cb910479d431683101"}
            },
            "repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"login": "acme"}},
            "sender": {"login": "octocat"},
            "installation": {"id": 9}
        });
        let event: CheckRunEvent = serde_json::from_value(payload).unwrap();
        let event = event.into_event("github", &at());
        assert_eq!((event.kind.as_str(), event.action.as_deref()), ("check_run", Some("rerequested")));
        assert_eq!(event.after.as_deref(), Some("ce587453ced02b1526dfb4cb910479d431683101"));
        assert_eq!(event.git_ref.as_deref(), Some("refs/heads/main"));
        let check = event.check.unwrap();
        assert_eq!((check.id, check.external_id.as_deref(), check.app_id), (4, Some("42"), Some(7)));
        assert_eq!(check.name.as_deref(), Some("gitauto/ci"));
    }

    #[test]
    fn a_rerequested_check_suite_names_its_commit() {
        let payload = serde_json::json!({
            "action": "rerequested",
            "check_suite": {"id": 5, "head_branch": null, "head_sha": "ce587453ced02b1526dfb4cb910479d431683101",
                            "app": {"id": 7}},
            "repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"login": "acme"}}
        });
        let event: CheckSuiteEvent = serde_json::from_value(payload).unwrap();
        let event = event.into_event("github", &at());
        assert_eq!(event.kind, "check_suite");
        assert_eq!(event.git_ref, None);
        assert_eq!(event.check.unwrap().head_sha, "ce587453ced02b1526dfb4cb910479d431683101");
    }
}
