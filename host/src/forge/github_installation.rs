//! GitHub App installation deliveries: `installation` (created, deleted, suspend,
//! unsuspend, new_permissions_accepted) and `installation_repositories` (added, removed),
//! as one event per repository they list (kinds `installation` and
//! `installation_repositories`), or one event naming only the account when they list none.

use super::body::decode;
use super::{Incoming, Origin, ParseError};
use crate::event::{Event, Repository};
use serde::Deserialize;

/// Actions of `installation` gitauto routes.
const INSTALLATION_ACTIONS: &[&str] = &["created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"];
/// Actions of `installation_repositories` gitauto routes.
const REPOSITORIES_ACTIONS: &[&str] = &["added", "removed"];
/// Repositories read from one delivery at most (GitHub lists up to a few hundred).
const MAX_REPOSITORIES: usize = 1000;

#[derive(Deserialize)]
struct Payload {
    action: String,
    installation: Installation,
    /// `installation`: the repositories it covers (created, deleted).
    #[serde(default)]
    repositories: Vec<Repo>,
    /// `installation_repositories`: those added, or those removed.
    #[serde(default)]
    repositories_added: Vec<Repo>,
    #[serde(default)]
    repositories_removed: Vec<Repo>,
    #[serde(default)]
    sender: Option<Account>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
    #[serde(default)]
    account: Option<Account>,
}

#[derive(Deserialize)]
struct Account {
    login: String,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct Repo {
    name: String,
    full_name: String,
}

/// Reads an installation delivery (`event` is `installation` or `installation_repositories`).
pub fn parse(text: &str, event: &str, at: &Origin) -> Result<Incoming, ParseError> {
    let payload = decode::<Payload>(text, event)?;
    let known = if event == "installation" { INSTALLATION_ACTIONS } else { REPOSITORIES_ACTIONS };
    if !known.contains(&payload.action.as_str()) {
        return Ok(Incoming::Ignored(format!("GitHub {event} action `{}` is not handled", payload.action)));
    }
    let repositories = match (event, payload.action.as_str()) {
        ("installation_repositories", "added") => payload.repositories_added,
        ("installation_repositories", _) => payload.repositories_removed,
        _ => payload.repositories,
    };
    let account = payload.installation.account;
    // The web root (`https://github.com`, or an Enterprise host) from the account's page:
    // the payload lists repositories by name only.
    let web = account.as_ref().and_then(|account| {
        let url = account.html_url.as_deref()?;
        let parsed = url::Url::parse(url).ok()?;
        Some(parsed.origin().ascii_serialization())
    });
    let base = Event {
        delivery: at.delivery.to_owned(),
        source: at.source.to_owned(),
        forge: "github".into(),
        kind: event.to_owned(),
        action: Some(payload.action),
        sender: payload.sender.map(|sender| sender.login),
        installation: Some(payload.installation.id),
        commits_complete: true,
        ..Event::default()
    };
    if repositories.is_empty() {
        let owner = account.map(|account| account.login).unwrap_or_default();
        let repository = Repository { owner, ..Repository::default() };
        return Ok(Incoming::Events(vec![Event { repository, ..base }]));
    }
    let events = repositories
        .into_iter()
        .take(MAX_REPOSITORIES)
        .map(|repo| {
            let owner = repo.full_name.split_once('/').map(|(owner, _)| owner.to_owned()).unwrap_or_default();
            let html_url = web.as_ref().map(|web| format!("{web}/{}", repo.full_name)).unwrap_or_default();
            let clone_url = if html_url.is_empty() { String::new() } else { format!("{html_url}.git") };
            let repository = Repository {
                owner,
                name: repo.name,
                full_name: repo.full_name,
                clone_url,
                html_url,
                default_branch: None,
            };
            Event { repository, ..base.clone() }
        })
        .collect();
    Ok(Incoming::Events(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTALLATION_CREATED: &str = r#"{
      "action": "created",
      "installation": {"id": 4711, "account": {"login": "acme", "html_url": "https://github.com/acme"}},
      "repositories": [
        {"id": 1, "name": "widgets", "full_name": "acme/widgets", "private": false},
        {"id": 2, "name": "gears", "full_name": "acme/gears", "private": true}
      ],
      "sender": {"login": "octocat"}
    }"#;

    fn parsed(text: &str, event: &str) -> Vec<Event> {
        let at = Origin { source: "gh", delivery: "d1" };
        match parse(text, event, &at).unwrap() {
            Incoming::Events(events) => events,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_installation_is_one_event_per_repository_it_covers() {
        let events = parsed(INSTALLATION_CREATED, "installation");
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert_eq!((first.kind.as_str(), first.action.as_deref()), ("installation", Some("created")));
        assert_eq!(first.installation, Some(4711));
        assert_eq!(first.sender.as_deref(), Some("octocat"));
        assert_eq!(first.repository.full_name, "acme/widgets");
        assert_eq!(first.repository.owner, "acme");
        assert_eq!(first.repository.html_url, "https://github.com/acme/widgets");
        assert_eq!(first.repository.clone_url, "https://github.com/acme/widgets.git");
        assert_eq!(events[1].repository.name, "gears");
        for event in &events {
            crate::event::names::check(event).unwrap();
        }
    }

    #[test]
    fn repositories_added_or_removed_are_the_ones_listed_for_that_action() {
        let text = r#"{"action": "removed", "installation": {"id": 9, "account": {"login": "acme"}},
          "repository_selection": "selected",
          "repositories_added": [],
          "repositories_removed": [{"id": 3, "name": "old", "full_name": "acme/old"}],
          "sender": {"login": "octocat"}}"#;
        let events = parsed(text, "installation_repositories");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind.as_str(), events[0].action.as_deref()),
            ("installation_repositories", Some("removed"))
        );
        assert_eq!(events[0].repository.full_name, "acme/old");
        assert_eq!(events[0].repository.clone_url, "", "no account page: no URL is guessed");
        assert_eq!(crate::forge_api::revoked_installation(&events[0]), Some(9));
    }

    #[test]
    fn an_installation_without_repositories_names_its_account_and_revocations_are_told() {
        let rows =
            [("suspend", Some(5)), ("deleted", Some(5)), ("unsuspend", None), ("new_permissions_accepted", None)];
        for (action, revoked) in rows {
            let text =
                format!(r#"{{"action": "{action}", "installation": {{"id": 5, "account": {{"login": "acme"}}}}}}"#);
            let events = parsed(&text, "installation");
            assert_eq!(events.len(), 1, "{action}");
            assert_eq!(events[0].repository.owner, "acme");
            assert_eq!(events[0].repository.full_name, "");
            assert_eq!(crate::forge_api::revoked_installation(&events[0]), revoked, "{action}");
        }
        let at = Origin { source: "gh", delivery: "d1" };
        let other = r#"{"action": "other", "installation": {"id": 5}}"#;
        assert_eq!(
            parse(other, "installation", &at).unwrap(),
            Incoming::Ignored("GitHub installation action `other` is not handled".into())
        );
    }
}
