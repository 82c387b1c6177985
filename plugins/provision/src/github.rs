//! The GitHub REST calls orcoursetrion's library made, with its error distinctions:
//! a repository that already exists, one that does not, a team that is not found, and
//! any unexpected status (with the response body). No call is retried: provisioning is
//! not idempotent, and a half-done action is reported as such rather than repeated.

use base64::Engine as _;
use gitauto_plugin::rest::{Api, Reply};
use gitauto_plugin::{Error, log};
use serde_json::{Value, json};

/// Why a provisioning call failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The repository to create exists.
    RepoExists(String),
    /// The repository to change does not exist.
    RepoMissing(String),
    /// The team is not in the organisation (or is there more than once).
    TeamNotFound(String),
    /// GitHub answered something else; the message carries its body.
    Unexpected(String),
    /// The call could not be made (network, grant).
    Call(Error),
}

impl Failure {
    /// A short machine-readable kind, for the step's output.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::RepoExists(_) => "repo_exists",
            Failure::RepoMissing(_) => "repo_missing",
            Failure::TeamNotFound(_) => "team_not_found",
            Failure::Unexpected(_) => "unexpected_status",
            Failure::Call(_) => "call_failed",
        }
    }

    /// What happened, for people.
    pub fn message(&self) -> String {
        match self {
            Failure::RepoExists(m) | Failure::RepoMissing(m) | Failure::TeamNotFound(m) | Failure::Unexpected(m) => {
                m.clone()
            }
            Failure::Call(Error::Failed(m) | Error::Transient(m) | Error::InvalidSettings(m)) => m.clone(),
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Call(err)
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// Who commits files added through the contents API.
#[derive(Debug, Clone)]
pub struct Committer {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// GitHub's API, as orcoursetrion used it.
pub struct GitHub {
    api: Api,
}

fn unexpected(reply: &Reply, what: &str) -> Failure {
    Failure::Unexpected(format!("{what}: unexpected status {} from {}: {}", reply.status, reply.request, reply.text()))
}

impl GitHub {
    /// The API at `api_url` (`https://api.github.com`, or Enterprise's `.../api/v3`).
    pub fn new(api_url: &str) -> Self {
        Self { api: Api::new(api_url).with_header("accept", "application/vnd.github+json") }
    }

    /// Every item of a paginated list; `None` on 404; other statuses are failures.
    fn get_all(&self, path: &str) -> Result<Option<Vec<Value>>> {
        self.api.get_all_or(path, |reply| match reply.status {
            200 => Failure::Unexpected(format!("{}: expected a list, got {}", reply.request, reply.text())),
            _ => Failure::Unexpected(reply.text()),
        })
    }

    /// The repository, or `None`.
    pub fn get_repo(&self, org: &str, repo: &str) -> Result<Option<Value>> {
        let reply = self.api.get(&format!("repos/{org}/{repo}"))?;
        match reply.status {
            200 => Ok(Some(reply.json()?)),
            404 => Ok(None),
            _ => Err(Failure::Unexpected(reply.text())),
        }
    }

    /// The id of `team` in `org`, matched without regard to case or surrounding spaces.
    pub fn find_team(&self, org: &str, team: &str) -> Result<u64> {
        let teams = self.get_all(&format!("orgs/{org}/teams"))?.unwrap_or_default();
        if teams.is_empty() {
            return Err(Failure::Unexpected("No teams found in org. This shouldn't happen".into()));
        }
        let wanted = team.trim().to_lowercase();
        let found: Vec<u64> = teams
            .iter()
            .filter(|t| t["name"].as_str().is_some_and(|name| name.trim().to_lowercase() == wanted))
            .filter_map(|t| t["id"].as_u64())
            .collect();
        match found.as_slice() {
            [id] => Ok(*id),
            _ => Err(Failure::TeamNotFound(format!("{team} not in list of teams for {org}"))),
        }
    }

    /// Creates a private repository; it must not exist yet.
    pub fn create_repo(&self, org: &str, repo: &str, description: &str) -> Result<Value> {
        if self.get_repo(org, repo)?.is_some() {
            return Err(Failure::RepoExists(format!("This repository already exists: {org}/{repo}")));
        }
        let body = json!({"name": repo, "description": description, "private": true});
        let reply = self.api.post(&format!("orgs/{org}/repos"), &body)?;
        if reply.status != 201 {
            return Err(Failure::Unexpected(reply.text()));
        }
        log::info(&format!("created repository {org}/{repo}"));
        Ok(reply.json()?)
    }

    fn create_team(&self, org: &str, team: &str, read_only: bool) -> Result<u64> {
        let permission = if read_only { "pull" } else { "push" };
        let reply = self.api.post(&format!("orgs/{org}/teams"), &json!({"name": team, "permission": permission}))?;
        if reply.status != 201 {
            return Err(Failure::Unexpected(reply.text()));
        }
        log::info(&format!("created team {team} in {org} ({permission})"));
        reply.json()?["id"].as_u64().ok_or_else(|| unexpected(&reply, "creating a team"))
    }

    /// Finds or creates `team`; with `members`, makes its membership exactly that list.
    /// Returns the logins added and removed.
    pub fn put_team(
        &self,
        org: &str,
        team: &str,
        read_only: bool,
        members: Option<&[String]>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let id = match self.find_team(org, team) {
            Ok(id) => id,
            Err(Failure::TeamNotFound(_)) => self.create_team(org, team, read_only)?,
            Err(other) => return Err(other),
        };
        let Some(members) = members else { return Ok((Vec::new(), Vec::new())) };
        let current: Vec<String> = self
            .get_all(&format!("teams/{id}/members"))?
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["login"].as_str().map(str::to_owned))
            .collect();
        let removed: Vec<String> = current.iter().filter(|login| !members.contains(login)).cloned().collect();
        let added: Vec<String> = members.iter().filter(|login| !current.contains(login)).cloned().collect();
        for login in &removed {
            let reply = self.api.delete(&format!("teams/{id}/memberships/{login}"))?;
            if !matches!(reply.status, 200 | 204) {
                return Err(Failure::Unexpected(format!("Failed to add or remove {login}. Got: {}", reply.text())));
            }
        }
        for login in &added {
            let reply = self.api.put(&format!("teams/{id}/memberships/{login}"), None::<&Value>)?;
            if !matches!(reply.status, 200 | 204) {
                return Err(Failure::Unexpected(format!("Failed to add or remove {login}. Got: {}", reply.text())));
            }
        }
        Ok((added, removed))
    }

    /// Gives `team` access to the repository.
    pub fn add_team_repo(&self, org: &str, repo: &str, team: &str) -> Result<()> {
        let id = self.find_team(org, team)?;
        let reply = self.api.put(&format!("teams/{id}/repos/{org}/{repo}"), None::<&Value>)?;
        if reply.status != 204 {
            return Err(Failure::Unexpected(reply.text()));
        }
        Ok(())
    }

    /// Adds a push web hook delivering JSON, signed with `secret` when given.
    pub fn add_web_hook(&self, org: &str, repo: &str, url: &str, secret: Option<&str>) -> Result<Value> {
        let mut config = json!({"url": url, "content_type": "json"});
        if let Some(secret) = secret {
            config["secret"] = json!(secret);
        }
        let body = json!({"name": "web", "active": true, "events": ["push"], "config": config});
        let reply = self.api.post(&format!("repos/{org}/{repo}/hooks"), &body)?;
        if reply.status != 201 {
            return Err(Failure::Unexpected(reply.text()));
        }
        Ok(reply.json()?)
    }

    /// Deletes every web hook of the repository; returns how many.
    pub fn delete_web_hooks(&self, org: &str, repo: &str) -> Result<usize> {
        if self.get_repo(org, repo)?.is_none() {
            return Err(Failure::RepoMissing(format!("Repo does not exist. Cannot remove hooks: {org}/{repo}")));
        }
        let hooks = self.get_all(&format!("repos/{org}/{repo}/hooks"))?.unwrap_or_default();
        for hook in &hooks {
            let url =
                hook["url"].as_str().ok_or_else(|| Failure::Unexpected(format!("a hook without a url: {hook}")))?;
            let reply = self.api.delete(url)?;
            if reply.status != 204 {
                return Err(Failure::Unexpected(reply.text()));
            }
        }
        Ok(hooks.len())
    }

    /// Adds a file on the default branch through the contents API.
    pub fn add_repo_file(
        &self,
        org: &str,
        repo: &str,
        committer: &Committer,
        message: &str,
        path: &str,
        contents: &str,
    ) -> Result<()> {
        if self.get_repo(org, repo)?.is_none() {
            return Err(Failure::RepoMissing(format!("Repo does not exist. Cannot add file: {org}/{repo}")));
        }
        let body = json!({
            "message": message,
            "committer": {"name": committer.name, "email": committer.email},
            "content": base64::engine::general_purpose::STANDARD.encode(contents),
        });
        let reply = self.api.put(&format!("repos/{org}/{repo}/contents/{path}"), Some(&body))?;
        if reply.status != 201 {
            return Err(Failure::Unexpected(format!(
                "Failed to add contents to {org}/{repo}/{path}. Got: {}",
                reply.text()
            )));
        }
        Ok(())
    }
}
