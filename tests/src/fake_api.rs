//! A fake of the forges' REST APIs on loopback, for the plugins that call them
//! (`provision`, `comment`) and for catch-up: it keeps state (repositories, teams,
//! members, hooks, hook deliveries, files, comments), answers with GitHub's status codes
//! and shapes (pagination through `Link` headers included: page numbers for most lists,
//! a cursor for hook deliveries, GitLab's `X-Next-Page` too), and records every request so
//! tests can assert the exact sequence. GitHub's paths are served at the root; Gitea's
//! under `/api/v1`, GitLab's under `/api/v4`, Bitbucket Cloud's under `/2.0`. The hook APIs
//! of every forge are in `fake_api/hooks.rs`.

pub mod app;
pub mod hooks;
mod permissions;
pub mod releases;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

pub mod statuses;

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, e.g. `/orgs/mitx/teams?page=2`.
    pub path: String,
    /// The JSON body (`null` when there was none).
    pub body: Value,
    /// The `Authorization` header (or GitLab's `PRIVATE-TOKEN`), if any.
    pub authorization: Option<String>,
    /// Which of the two carried it (`authorization` or `private-token`).
    pub credential_header: Option<&'static str>,
}

impl Recorded {
    /// `"METHOD path"`, for comparing sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A team in the fake.
#[derive(Debug, Clone)]
pub struct Team {
    /// Its id.
    pub id: u64,
    /// Its organisation.
    pub org: String,
    /// Its name as created.
    pub name: String,
    /// `pull` or `push`.
    pub permission: String,
    /// Member logins.
    pub members: BTreeSet<String>,
    /// Repositories (`org/name`) it was given.
    pub repos: BTreeSet<String>,
}

/// Everything the fake holds.
#[derive(Debug, Default)]
pub struct State {
    /// Repositories by `org/name`.
    pub repos: BTreeMap<String, Value>,
    /// Teams, in creation order.
    pub teams: Vec<Team>,
    /// Hooks by repository: (id, the hook as its forge keeps it, the URL it posts to at
    /// `url`; GitHub's and Gitea's config fields at the top level: `fake_api/hooks.rs`).
    pub hooks: BTreeMap<String, Vec<(u64, Value)>>,
    /// Files added through the contents API: (`org/name`, path) → decoded content.
    pub files: BTreeMap<(String, String), String>,
    /// Comments: (path posted to, body).
    pub comments: Vec<(String, String)>,
    /// Delivery attempts by hook id, as GitHub's delivery detail shows each (GitHub), or
    /// as GitLab's hook events list them (GitLab); in the order they were made.
    pub deliveries: BTreeMap<u64, Vec<Value>>,
    /// Every request, in order.
    pub requests: Vec<Recorded>,
    /// Items per page of list endpoints.
    pub per_page: usize,
    /// Answers to give instead, once each: (method, path) → (status, body).
    pub failures: BTreeMap<(String, String), (u16, Value)>,
    /// Commit statuses and check runs (see `statuses.rs`).
    pub reports: statuses::Reports,
    /// Who may do what, and pull request heads (`fake_api/permissions.rs`).
    pub gate: permissions::Gate,
    /// The GitHub App, its installations and the tokens it issued (`fake_api/app.rs`).
    pub app: app::AppState,
    /// Forge releases, their assets and uploads (`fake_api/releases.rs`).
    pub releases: releases::Releases,
    /// What the hook endpoints require (`fake_api/hooks.rs`).
    pub hook_api: hooks::HookApi,
    next_id: u64,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// Starts the fake with two items per page (so pagination is exercised).
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State { per_page: 2, next_id: 100, ..State::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let base = url.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (state, base) = (shared.clone(), base.clone());
            async move { handle(&state, &base, &method, &uri, &headers, &body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Reads or changes the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Adds a repository.
    pub fn add_repo(&self, full_name: &str) {
        let url = self.url.clone();
        self.with(|s| s.repos.insert(full_name.to_owned(), repo_json(&url, full_name)));
    }

    /// Adds a team with members; returns its id.
    pub fn add_team(&self, org: &str, name: &str, members: &[&str]) -> u64 {
        self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.teams.push(Team {
                id,
                org: org.into(),
                name: name.into(),
                permission: "push".into(),
                members: members.iter().map(|m| (*m).to_owned()).collect(),
                repos: BTreeSet::new(),
            });
            id
        })
    }

    /// Adds a hook to a repository (GitLab: a project); returns its id.
    pub fn add_hook(&self, full_name: &str, url: &str) -> u64 {
        self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.hooks.entry(full_name.to_owned()).or_default().push((id, json!({"url": url})));
            id
        })
    }

    /// Records an attempt of GitHub hook `hook` to deliver `payload` as `event`, with the
    /// delivery id `guid` and the status code it got (0: no answer); returns its id.
    pub fn add_github_delivery(&self, hook: u64, guid: &str, event: &str, status_code: u16, payload: Value) -> u64 {
        self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            let redelivery = s.deliveries.get(&hook).is_some_and(|all| all.iter().any(|d| d["guid"] == guid));
            s.deliveries.entry(hook).or_default().push(json!({
                "id": id, "guid": guid, "delivered_at": "2026-11-28T09:00:00Z", "redelivery": redelivery,
                "duration": 0.5, "status": if status_code == 0 { "timed out" } else { "done" },
                "status_code": status_code, "event": event, "action": payload.get("action"),
                "installation_id": null, "repository_id": 1296269,
                "url": "", "request": {
                    "headers": {
                        "Accept": "*/*", "X-GitHub-Delivery": guid, "X-GitHub-Event": event,
                        "X-GitHub-Hook-ID": hook.to_string(), "Content-Type": "application/json",
                        "User-Agent": "GitHub-Hookshot/044aadd", "X-Hub-Signature-256": "sha256=0000"
                    },
                    "payload": payload
                },
                "response": {"headers": {}, "payload": null}
            }));
            id
        })
    }

    /// Records an attempt of GitLab hook `hook` to deliver `data` as `event` (e.g.
    /// `Push Hook`), with the delivery id `uuid` and the status it got; returns its id.
    pub fn add_gitlab_event(&self, hook: u64, uuid: &str, event: &str, status: &str, data: Value) -> u64 {
        self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.deliveries.entry(hook).or_default().push(json!({
                "id": id, "url": "https://ci.example.com/hooks/gitlab", "trigger": "push_hooks",
                "request_headers": {
                    "Content-Type": "application/json", "User-Agent": "GitLab/17.5.0",
                    "Idempotency-Key": uuid, "X-Gitlab-Event": event, "X-Gitlab-Event-UUID": uuid,
                    "X-Gitlab-Webhook-UUID": "3c5c0404-c866-44bc-a5f6-452bb1bfc76e",
                    "X-Gitlab-Instance": "https://gitlab.example.com", "X-Gitlab-Token": "[REDACTED]"
                },
                "request_data": data, "response_headers": {}, "response_body": "",
                "execution_duration": 1.0, "response_status": status
            }));
            id
        })
    }

    /// Makes the next `method path` request answer `status` with `body`.
    pub fn fail(&self, method: &str, path: &str, status: u16, body: Value) {
        self.with(|s| s.failures.insert((method.to_owned(), path.to_owned()), (status, body)));
    }

    /// The requests so far as `"METHOD path"` lines; clears them.
    pub fn take_lines(&self) -> Vec<String> {
        self.with(|s| std::mem::take(&mut s.requests)).iter().map(Recorded::line).collect()
    }

    /// The requests so far; clears them.
    pub fn take(&self) -> Vec<Recorded> {
        self.with(|s| std::mem::take(&mut s.requests))
    }
}

fn repo_json(base: &str, full_name: &str) -> Value {
    let name = full_name.rsplit('/').next().unwrap_or(full_name);
    json!({
        "name": name, "full_name": full_name, "private": true,
        "html_url": format!("{base}/html/{full_name}"), "url": format!("{base}/repos/{full_name}"),
    })
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (status, [("content-type", "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn not_found() -> Response {
    answer(404, json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}))
}

/// A page of `items` with GitHub's `Link` header.
fn page(base: &str, path: &str, query: &BTreeMap<String, String>, per_page: usize, items: Vec<Value>) -> Response {
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{base}{path}?page={}>; rel=\"next\"", page + 1));
        links.push(format!("<{base}{path}?page={last}>; rel=\"last\""));
    }
    let mut response = answer(200, Value::Array(shown));
    if !links.is_empty() {
        response.headers_mut().insert("link", links.join(", ").parse().unwrap());
    }
    response
}

/// A page of `items` as GitLab sends it: a `Link` header and `X-Next-Page`.
fn gitlab_page(
    base: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    per_page: usize,
    items: Vec<Value>,
) -> Response {
    let number: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let mut response = page(base, path, query, per_page, items);
    let next = if number < last { (number + 1).to_string() } else { String::new() };
    response.headers_mut().insert("x-next-page", next.parse().unwrap());
    response
}

/// The delivery attempts of hook `hook` of repository `full_name`, when it has that hook.
fn owned_deliveries(s: &State, full_name: &str, hook: &str) -> Option<Vec<Value>> {
    let hooks = s.hooks.get(full_name)?;
    let (id, _) = hooks.iter().find(|(id, _)| id.to_string() == hook)?;
    Some(s.deliveries.get(id).cloned().unwrap_or_default())
}

fn handle(state: &Mutex<State>, base: &str, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut s = state.lock().unwrap();
    let full_path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let body_json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let credential_header = ["authorization", "private-token"].into_iter().find(|name| headers.contains_key(*name));
    let authorization =
        credential_header.and_then(|name| headers.get(name)).map(|v| v.to_str().unwrap_or_default().to_owned());
    s.requests.push(Recorded {
        method: method.to_string(),
        path: full_path.clone(),
        body: body_json.clone(),
        authorization,
        credential_header,
    });
    if let Some((status, body)) = s.failures.remove(&(method.to_string(), uri.path().to_owned())) {
        return answer(status, body);
    }
    let query: BTreeMap<String, String> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let path = uri.path();
    if let Some(response) = statuses::handle(&mut s, method.as_str(), path, &body_json) {
        return response;
    }
    if let Some(response) = releases::handle(&mut s, base, method.as_str(), uri, &query, headers, body) {
        return response;
    }
    // Gitea and GitLab live under their API prefixes; GitHub at the root.
    let (prefix, rest) = if let Some(rest) = path.strip_prefix("/api/v1") {
        ("/api/v1", rest)
    } else if let Some(rest) = path.strip_prefix("/api/v4") {
        ("/api/v4", rest)
    } else {
        ("", path)
    };
    let parts: Vec<String> = rest
        .trim_matches('/')
        .split('/')
        .map(|p| {
            url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let per_page = s.per_page;
    let m = method.as_str();
    if let Some(response) = app::handle(&mut s, m, &parts, headers.get("authorization").and_then(|v| v.to_str().ok())) {
        return response;
    }
    if let Some(response) = permissions::handle(&mut s, prefix, (m, &parts), &query, &body_json) {
        return response;
    }
    if let Some(response) = hooks::handle(&mut s, (base, uri.path()), prefix, (m, &parts), &query, &body_json) {
        return response;
    }
    match (m, parts.as_slice()) {
        // GitLab: notes on merge requests and comments on commits.
        ("POST", ["projects", project, "merge_requests", iid, "notes"]) if prefix == "/api/v4" => {
            let note = body_json["body"].as_str().unwrap_or_default().to_owned();
            s.comments.push((format!("projects/{project}/merge_requests/{iid}"), note.clone()));
            answer(201, json!({"id": 7, "body": note, "noteable_iid": iid.parse::<u64>().unwrap_or(0)}))
        }
        ("POST", ["projects", project, "repository", "commits", sha, "comments"]) if prefix == "/api/v4" => {
            let note = body_json["note"].as_str().unwrap_or_default().to_owned();
            s.comments.push((format!("projects/{project}/commits/{sha}"), note.clone()));
            answer(201, json!({"note": note}))
        }
        // GitLab: a hook's events (newest first).
        ("GET", ["projects", project, "hooks", hook, "events"]) if prefix == "/api/v4" => {
            let owned = s.hooks.get(*project).is_some_and(|hooks| hooks.iter().any(|(id, _)| id.to_string() == *hook));
            if !owned {
                return answer(404, json!({"message": "404 Not found"}));
            }
            let mut events =
                hook.parse().ok().and_then(|hook: u64| s.deliveries.get(&hook).cloned()).unwrap_or_default();
            events.reverse();
            gitlab_page(base, uri.path(), &query, per_page, events)
        }
        // GitHub: a hook's deliveries, newest first, by cursor; one delivery in full.
        ("GET", ["repos", org, name, "hooks", hook, "deliveries"]) => {
            let Some(attempts) = owned_deliveries(&s, &format!("{org}/{name}"), hook) else { return not_found() };
            let mut summaries: Vec<Value> = attempts
                .iter()
                .rev()
                .map(|d| {
                    let mut summary = d.clone();
                    let fields = summary.as_object_mut().unwrap();
                    fields.remove("request");
                    fields.remove("response");
                    fields.remove("url");
                    summary
                })
                .collect();
            if let Some(cursor) =
                query.get("cursor").and_then(|c| c.strip_prefix("v1_")).and_then(|c| c.parse::<u64>().ok())
            {
                summaries.retain(|d| d["id"].as_u64().is_some_and(|id| id <= cursor));
            }
            let asked: usize = query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
            let size = asked.min(per_page).max(1);
            let rest = summaries.split_off(size.min(summaries.len()));
            let mut response = answer(200, Value::Array(summaries));
            if let Some(next) = rest.first().and_then(|d| d["id"].as_u64()) {
                let link = format!("<{base}{}?per_page={asked}&cursor=v1_{next}>; rel=\"next\"", uri.path());
                response.headers_mut().insert("link", link.parse().unwrap());
            }
            response
        }
        ("GET", ["repos", org, name, "hooks", hook, "deliveries", id]) => {
            let Some(attempts) = owned_deliveries(&s, &format!("{org}/{name}"), hook) else { return not_found() };
            match attempts.iter().find(|d| d["id"].as_u64().is_some_and(|have| have.to_string() == *id)) {
                Some(delivery) => answer(200, delivery.clone()),
                None => not_found(),
            }
        }
        ("GET", ["repos", org, name]) => match s.repos.get(&format!("{org}/{name}")) {
            Some(repo) => answer(200, repo.clone()),
            None => not_found(),
        },
        ("POST", ["orgs", org, "repos"]) => {
            let name = body_json["name"].as_str().unwrap_or_default();
            let full_name = format!("{org}/{name}");
            if s.repos.contains_key(&full_name) {
                return answer(
                    422,
                    json!({"message": "Repository creation failed.", "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"}]}),
                );
            }
            let mut repo = repo_json(base, &full_name);
            repo["description"] = body_json["description"].clone();
            repo["private"] = body_json["private"].clone();
            s.repos.insert(full_name, repo.clone());
            answer(201, repo)
        }
        ("GET", ["orgs", org, "teams"]) => {
            let teams: Vec<Value> = s
                .teams
                .iter()
                .filter(|t| t.org == *org)
                .map(|t| json!({"id": t.id, "name": t.name, "slug": t.name.to_lowercase().replace(' ', "-"), "permission": t.permission}))
                .collect();
            if teams.is_empty() {
                return not_found();
            }
            page(base, uri.path(), &query, per_page, teams)
        }
        ("POST", ["orgs", org, "teams"]) => {
            s.next_id += 1;
            let id = s.next_id;
            let name = body_json["name"].as_str().unwrap_or_default().to_owned();
            let permission = body_json["permission"].as_str().unwrap_or("pull").to_owned();
            s.teams.push(Team {
                id,
                org: (*org).to_owned(),
                name: name.clone(),
                permission: permission.clone(),
                members: BTreeSet::new(),
                repos: BTreeSet::new(),
            });
            answer(201, json!({"id": id, "name": name, "permission": permission}))
        }
        ("GET", ["teams", id, "members"]) => match s.teams.iter().find(|t| t.id.to_string() == *id) {
            Some(team) => {
                let members = team.members.iter().map(|m| json!({"login": m})).collect();
                page(base, uri.path(), &query, per_page, members)
            }
            None => not_found(),
        },
        ("PUT" | "DELETE", ["teams", id, "memberships", login]) => {
            let Some(team) = s.teams.iter_mut().find(|t| t.id.to_string() == *id) else { return not_found() };
            if m == "PUT" {
                team.members.insert((*login).to_owned());
                answer(200, json!({"state": "active", "role": "member"}))
            } else {
                team.members.remove(*login);
                answer(204, Value::Null)
            }
        }
        ("PUT", ["teams", id, "repos", org, name]) => {
            let full_name = format!("{org}/{name}");
            if !s.repos.contains_key(&full_name) {
                return not_found();
            }
            let Some(team) = s.teams.iter_mut().find(|t| t.id.to_string() == *id) else { return not_found() };
            team.repos.insert(full_name);
            answer(204, Value::Null)
        }
        ("PUT", ["repos", org, name, "contents", file @ ..]) => {
            let full_name = format!("{org}/{name}");
            if !s.repos.contains_key(&full_name) {
                return not_found();
            }
            use base64::Engine as _;
            let content = body_json["content"].as_str().unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD.decode(content).unwrap_or_default();
            let file = file.join("/");
            s.files.insert((full_name, file.clone()), String::from_utf8_lossy(&decoded).into_owned());
            answer(
                201,
                json!({"content": {"path": file}, "commit": {"sha": "0123456789abcdef0123456789abcdef01234567"}}),
            )
        }
        ("POST", ["repos", org, name, "issues", number, "comments"]) => {
            let comment = body_json["body"].as_str().unwrap_or_default().to_owned();
            s.comments.push((format!("{org}/{name}#{number}"), comment.clone()));
            answer(
                201,
                json!({"id": 1, "body": comment, "html_url": format!("{base}/html/{org}/{name}/pull/{number}#issuecomment-1")}),
            )
        }
        ("POST", ["repos", org, name, "commits", sha, "comments"]) => {
            let comment = body_json["body"].as_str().unwrap_or_default().to_owned();
            s.comments.push((format!("{org}/{name}@{sha}"), comment.clone()));
            answer(
                201,
                json!({"id": 2, "body": comment, "html_url": format!("{base}/html/{org}/{name}/commit/{sha}#commitcomment-2")}),
            )
        }
        _ => not_found(),
    }
}
