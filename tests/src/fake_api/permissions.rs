//! The fake's answers for part GATE (issue 21): a user's permission on a repository
//! (GitHub's and Gitea's collaborator permission, GitLab's members with their access
//! levels and its user lookup), a pull request's head commit, and GitLab issue notes.
//! Replies to users land in `State.comments` like every other comment.

use super::{FakeApi, State, answer, not_found};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What the fake knows about who may do what.
#[derive(Debug, Default)]
pub struct Gate {
    /// Roles by (repository, login): `read`, `triage`, `write`, `maintain` or `admin`.
    pub roles: BTreeMap<(String, String), String>,
    /// Pull (merge) request heads by (repository, number).
    pub heads: BTreeMap<(String, u64), String>,
    /// GitLab user ids by login.
    pub ids: BTreeMap<String, u64>,
}

impl FakeApi {
    /// Gives `login` the role `role` on `repo` (GitLab: the matching access level; the
    /// user gets an id when it has none).
    pub fn grant_role(&self, repo: &str, login: &str, role: &str) {
        self.with(|s| {
            let next = 1000 + s.gate.ids.len() as u64;
            s.gate.ids.entry(login.to_owned()).or_insert(next);
            s.gate.roles.insert((repo.to_owned(), login.to_owned()), role.to_owned());
        });
    }

    /// Gives `login` GitLab's user id `id` (as its payloads name it).
    pub fn set_user_id(&self, login: &str, id: u64) {
        self.with(|s| s.gate.ids.insert(login.to_owned(), id));
    }

    /// Sets pull request `number`'s head commit on `repo`.
    pub fn set_head(&self, repo: &str, number: u64, sha: &str) {
        self.with(|s| s.gate.heads.insert((repo.to_owned(), number), sha.to_owned()));
    }
}

/// GitHub's base `permission` for a role (the legacy field: triage reads, maintain writes).
fn base_permission(role: &str) -> &'static str {
    match role {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    }
}

/// GitLab's access level for a role.
fn access_level(role: &str) -> u64 {
    match role {
        "admin" => 50,
        "maintain" => 40,
        "write" => 30,
        "triage" => 20,
        "read" => 10,
        _ => 0,
    }
}

/// Answers the requests this part adds; `None` for the others.
pub(super) fn handle(
    s: &mut State,
    prefix: &str,
    (method, parts): (&str, &[&str]),
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Option<Response> {
    let gate = &s.gate;
    Some(match (method, parts) {
        ("GET", ["repos", owner, name, "collaborators", user, "permission"]) if prefix != "/api/v4" => {
            let repo = format!("{owner}/{name}");
            let Some(role) = gate.roles.get(&(repo, (*user).to_owned())) else { return Some(not_found()) };
            let user = json!({"login": user, "id": gate.ids.get(*user)});
            if prefix == "/api/v1" {
                answer(200, json!({"permission": role, "role_name": role, "user": user}))
            } else {
                answer(200, json!({"permission": base_permission(role), "role_name": role, "user": user}))
            }
        }
        ("GET", ["repos", owner, name, "pulls", number]) if prefix != "/api/v4" => {
            let key = (format!("{owner}/{name}"), number.parse().unwrap_or(0));
            let Some(sha) = gate.heads.get(&key) else { return Some(not_found()) };
            answer(200, json!({"number": key.1, "state": "open", "head": {"sha": sha, "ref": "feature"}}))
        }
        // GitLab's user lookup: a list of at most one user.
        ("GET", ["users"]) if prefix == "/api/v4" => {
            let name = query.get("username").cloned().unwrap_or_default();
            let found: Vec<Value> =
                gate.ids.get(&name).map(|id| json!({"id": id, "username": name})).into_iter().collect();
            answer(200, Value::Array(found))
        }
        ("GET", ["projects", project, "members", "all", id]) if prefix == "/api/v4" => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some((login, _)) = gate.ids.iter().find(|(_, known)| **known == id) else { return Some(not_found()) };
            let Some(role) = gate.roles.get(&((*project).to_owned(), login.clone())) else {
                return Some(answer(404, json!({"message": "404 Not found"})));
            };
            answer(200, json!({"id": id, "username": login, "access_level": access_level(role)}))
        }
        ("GET", ["projects", project, "merge_requests", iid]) if prefix == "/api/v4" => {
            let key = ((*project).to_owned(), iid.parse().unwrap_or(0));
            let Some(sha) = gate.heads.get(&key) else { return Some(answer(404, json!({"message": "404 Not found"}))) };
            answer(200, json!({"iid": key.1, "state": "opened", "sha": sha}))
        }
        ("POST", ["projects", project, "issues", iid, "notes"]) if prefix == "/api/v4" => {
            let note = body["body"].as_str().unwrap_or_default().to_owned();
            s.comments.push((format!("projects/{project}/issues/{iid}"), note.clone()));
            answer(201, json!({"id": 8, "body": note}))
        }
        _ => return None,
    })
}
