//! The forges' repository hook APIs in the fake, as each forge answers them: GitHub's
//! `/repos/{o}/{r}/hooks` (a secret shown as `********`, `last_response`, `422` for a
//! second hook with the same URL), Gitea's, Forgejo's and Gogs' under `/api/v1` (with a
//! `type`; the secret never returned; event names it does not know dropped silently;
//! lists paged by `page` and `limit` with `X-Total-Count` and no `Link`), GitLab's
//! `/api/v4/projects/:id/hooks` (one flag per event, `token_present` and
//! `signing_token_present` instead of the tokens, `signing_token` ignored while the
//! feature flag is off, `alert_status`) and Bitbucket Cloud's
//! `/2.0/repositories/{w}/{s}/hooks` (`{uuid}` ids, `secret_set`, paged `values`).
//! Hooks live in `State::hooks` with the URL they post to at `url`.

use super::{State, answer, gitlab_page, page};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// What the hook APIs require of a request.
#[derive(Debug, Default)]
pub struct HookApi {
    /// The credential header's value the hook endpoints accept (`Bearer t0k`,
    /// `token t0k`, GitLab's `PRIVATE-TOKEN` value); none: any.
    pub credential: Option<String>,
    /// GitLab's `webhook_signing_token` feature flag: off (the default here), GitLab
    /// ignores a hook's `signing_token` without a word and answers
    /// `signing_token_present: false`.
    pub signing_tokens: bool,
}

/// The forge a hook path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    GitHub,
    Gitea,
    GitLab,
    Bitbucket,
}

/// GitHub's repository webhook events (a subset: those anyone subscribes to here).
const GITHUB_EVENTS: &[&str] = &[
    "*",
    "push",
    "create",
    "delete",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "issue_comment",
    "issues",
    "release",
    "check_run",
    "check_suite",
    "status",
    "fork",
];

/// Gitea's and Forgejo's event switches, in the order the fake lists them: the names
/// their answers show (`pull_request` is the pull request switch alone).
const GITEA_SWITCHES: &[&str] = &[
    "create",
    "delete",
    "fork",
    "push",
    "issues",
    "issue_assign",
    "issue_label",
    "issue_milestone",
    "issue_comment",
    "pull_request",
    "pull_request_assign",
    "pull_request_label",
    "pull_request_milestone",
    "pull_request_comment",
    "pull_request_review",
    "pull_request_review_request",
    "pull_request_sync",
    "wiki",
    "repository",
    "release",
];

/// Gogs' event switches: each name as it is sent.
const GOGS_SWITCHES: &[&str] =
    &["create", "delete", "fork", "push", "issues", "issue_comment", "pull_request", "release"];

/// The switches a Gitea, Forgejo or Gogs hook request's `events` turn on, as
/// `addHook`/`editHook` (routers/api/v1/utils/hook.go) read them: `issues` and
/// `pull_request` turn on every switch of their family (`issues_only` and
/// `pull_request_only` the first alone), no events means `push`, and any other name is
/// dropped without a word.
fn gitea_switches(gogs: bool, sent: &[String]) -> Vec<&'static str> {
    let has = |name: &str| sent.iter().any(|event| event == name);
    if sent.is_empty() {
        return vec!["push"];
    }
    if gogs {
        return GOGS_SWITCHES.iter().copied().filter(|switch| has(switch)).collect();
    }
    GITEA_SWITCHES
        .iter()
        .copied()
        .filter(|switch| match *switch {
            "issues" => has("issues") || has("issues_only"),
            "pull_request" => has("pull_request") || has("pull_request_only"),
            family if family.starts_with("issue_") => has(family) || has("issues"),
            family if family.starts_with("pull_request_") => has(family) || has("pull_request"),
            other => has(other),
        })
        .collect()
}

const GITLAB_FLAGS: &[&str] = &[
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "note_events",
    "confidential_note_events",
    "issues_events",
    "confidential_issues_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
];

const BITBUCKET_EVENTS: &[&str] = &[
    "repo:push",
    "repo:fork",
    "repo:updated",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:approved",
    "pullrequest:unapproved",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
    "issue:created",
];

/// Answers the hook endpoints; `None` for other paths.
pub(super) fn handle(
    s: &mut State,
    (base, path): (&str, &str),
    prefix: &str,
    (m, parts): (&str, &[&str]),
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Option<Response> {
    let (forge, repo, id) = match (prefix, parts) {
        ("", ["repos", org, name, "hooks", rest @ ..]) => (Forge::GitHub, format!("{org}/{name}"), rest),
        ("/api/v1", ["repos", org, name, "hooks", rest @ ..]) => (Forge::Gitea, format!("{org}/{name}"), rest),
        ("/api/v4", ["projects", project, "hooks", rest @ ..]) => (Forge::GitLab, (*project).to_owned(), rest),
        ("", ["2.0", "repositories", workspace, slug, "hooks", rest @ ..]) => {
            (Forge::Bitbucket, format!("{workspace}/{slug}"), rest)
        }
        _ => return None,
    };
    // Deliveries and hook events stay with the main fake.
    let id = match id {
        [] => None,
        [id] => Some(*id),
        _ => return None,
    };
    if let Some(expected) = &s.hook_api.credential {
        let offered = s.requests.last().and_then(|r| r.authorization.clone());
        if offered.as_deref() != Some(expected.as_str()) {
            return Some(unauthorized(forge));
        }
    }
    if !s.repos.contains_key(&repo) {
        return Some(missing(forge));
    }
    let per_page = s.per_page;
    let hooks = s.hooks.get(&repo).cloned().unwrap_or_default();
    let index = match id {
        None => None,
        Some(id) => match hooks.iter().position(|(hook, _)| id_text(forge, *hook) == id) {
            Some(index) => Some(index),
            None => return Some(missing(forge)),
        },
    };
    let render = |id: u64, stored: &Value| render(forge, base, &repo, id, stored);
    Some(match (m, index) {
        ("GET", None) => {
            let items: Vec<Value> = hooks.iter().map(|(id, stored)| render(*id, stored)).collect();
            match forge {
                Forge::GitHub => page(base, path, query, per_page, items),
                Forge::Gitea => gitea_page(query, per_page, items),
                Forge::GitLab => gitlab_page(base, path, query, per_page, items),
                Forge::Bitbucket => bitbucket_page(base, path, query, per_page, items),
            }
        }
        ("GET", Some(index)) => answer(200, render(hooks[index].0, &hooks[index].1)),
        ("POST", None) => {
            let stored = match store(forge, body, None, s.hook_api.signing_tokens) {
                Ok(stored) => stored,
                Err((status, refusal)) => return Some(answer(status, refusal)),
            };
            if forge == Forge::GitHub && hooks.iter().any(|(_, have)| have["url"] == stored["url"]) {
                return Some(answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "Hook", "code": "custom", "message": "Hook already exists on this repository"}]}),
                ));
            }
            s.next_id += 1;
            let id = s.next_id;
            s.hooks.entry(repo.clone()).or_default().push((id, stored.clone()));
            answer(201, render(id, &stored))
        }
        ("PATCH", Some(index)) if matches!(forge, Forge::GitHub | Forge::Gitea) => {
            update(s, forge, &repo, index, &hooks, body, &render)
        }
        ("PUT", Some(index)) if matches!(forge, Forge::GitLab | Forge::Bitbucket) => {
            update(s, forge, &repo, index, &hooks, body, &render)
        }
        ("DELETE", Some(index)) => {
            s.hooks.entry(repo).or_default().remove(index);
            answer(204, Value::Null)
        }
        _ => answer(405, json!({"message": "Method Not Allowed"})),
    })
}

fn update(
    s: &mut State,
    forge: Forge,
    repo: &str,
    index: usize,
    hooks: &[(u64, Value)],
    body: &Value,
    render: &dyn Fn(u64, &Value) -> Value,
) -> Response {
    let (id, old) = &hooks[index];
    match store(forge, body, Some(old), s.hook_api.signing_tokens) {
        Ok(stored) => {
            s.hooks.entry(repo.to_owned()).or_default()[index].1 = stored.clone();
            answer(200, render(*id, &stored))
        }
        Err((status, refusal)) => answer(status, refusal),
    }
}

/// The hook a create or update request leaves (`old`: the hook updated), as the forge
/// keeps it: the URL at `url`, the secret kept, every other field as the forge defaults it.
fn store(forge: Forge, body: &Value, old: Option<&Value>, signing_tokens: bool) -> Result<Value, (u16, Value)> {
    let mut stored = old.cloned().unwrap_or_else(|| json!({}));
    let invalid = |message: String| (422, json!({"message": message}));
    match forge {
        Forge::GitHub | Forge::Gitea => {
            if let Some(config) = body.get("config") {
                let Some(config) = config.as_object() else { return Err(invalid("config must be an object".into())) };
                // A config in an update replaces the old one, secret included.
                for key in ["url", "content_type", "secret", "insecure_ssl"] {
                    stored.as_object_mut().unwrap().remove(key);
                }
                stored.as_object_mut().unwrap().extend(config.clone());
            }
            if stored["url"].as_str().is_none_or(str::is_empty) {
                return Err(invalid("config.url is required".into()));
            }
            if !matches!(stored["content_type"].as_str(), Some("json" | "form") | None) {
                return Err(invalid(format!("invalid content_type {}", stored["content_type"])));
            }
            if forge == Forge::Gitea {
                match body.get("type").and_then(Value::as_str) {
                    Some("gitea" | "forgejo" | "gogs") => stored["type"] = body["type"].clone(),
                    Some(other) => return Err(invalid(format!("Invalid hook type: {other}"))),
                    None if old.is_none() => return Err(invalid("type is required".into())),
                    None => {}
                }
                if stored["content_type"].is_null() {
                    return Err(invalid("content_type is required".into()));
                }
            }
            match (forge, body.get("events")) {
                (Forge::GitHub, Some(events)) => {
                    let events = names(events).map_err(invalid)?;
                    if let Some(bad) = events.iter().find(|e| !GITHUB_EVENTS.contains(&e.as_str())) {
                        return Err(invalid(format!("event `{bad}` is not supported")));
                    }
                    stored["events"] = json!(events);
                }
                // Gitea reads the events on every create and edit, absent ones as none.
                (Forge::Gitea, events) => {
                    let events = events.map(names).transpose().map_err(invalid)?.unwrap_or_default();
                    stored["events"] = json!(gitea_switches(stored["type"] == "gogs", &events));
                }
                (_, None) if old.is_none() => stored["events"] = json!(["push"]),
                _ => {}
            }
            stored["active"] =
                body.get("active").cloned().unwrap_or_else(|| stored.get("active").cloned().unwrap_or(json!(true)));
            for key in ["branch_filter", "name"] {
                if let Some(value) = body.get(key) {
                    stored[key] = value.clone();
                }
            }
        }
        Forge::GitLab => {
            let Some(url) = body["url"].as_str() else { return Err((400, json!({"error": "url is missing"}))) };
            stored["url"] = json!(url);
            for flag in GITLAB_FLAGS {
                match body.get(*flag) {
                    Some(Value::Bool(on)) => stored[*flag] = json!(on),
                    Some(other) => return Err((400, json!({"error": format!("{flag} is invalid: {other}")}))),
                    // GitLab sends pushes unless told otherwise.
                    None if old.is_none() => stored[*flag] = json!(*flag == "push_events"),
                    None => {}
                }
            }
            for key in ["token", "signing_token"] {
                if let Some(token) = body.get(key).and_then(Value::as_str) {
                    // Without the feature flag GitLab drops `signing_token` unread.
                    if key == "signing_token" && !signing_tokens {
                        continue;
                    }
                    if key == "signing_token" && !token.starts_with("whsec_") {
                        return Err((400, json!({"message": {"signing_token": ["must be whsec_<base64>"]}})));
                    }
                    stored[key] = json!(token);
                }
            }
            stored["enable_ssl_verification"] = body
                .get("enable_ssl_verification")
                .cloned()
                .unwrap_or_else(|| stored.get("enable_ssl_verification").cloned().unwrap_or(json!(true)));
        }
        Forge::Bitbucket => {
            let (Some(url), Some(events)) = (body["url"].as_str(), body.get("events")) else {
                return Err((
                    400,
                    json!({"type": "error", "error": {"message": "Bad request", "fields": {"url": ["required"], "events": ["required"]}}}),
                ));
            };
            let events = names(events).map_err(invalid)?;
            if let Some(bad) = events.iter().find(|e| !BITBUCKET_EVENTS.contains(&e.as_str())) {
                return Err((400, json!({"type": "error", "error": {"message": format!("Invalid event: {bad}")}})));
            }
            stored["url"] = json!(url);
            stored["events"] = json!(events);
            for key in ["description", "active", "secret", "skip_cert_verification"] {
                if let Some(value) = body.get(key) {
                    stored[key] = value.clone();
                }
            }
        }
    }
    Ok(stored)
}

fn names(events: &Value) -> Result<Vec<String>, String> {
    events
        .as_array()
        .ok_or("events must be a list")?
        .iter()
        .map(|e| e.as_str().map(str::to_owned).ok_or_else(|| "events must be names".to_owned()))
        .collect()
}

/// A hook as the forge shows it.
fn render(forge: Forge, base: &str, repo: &str, id: u64, stored: &Value) -> Value {
    let text = |key: &str| stored.get(key).cloned().unwrap_or(Value::Null);
    let secret_set = stored["secret"].as_str().is_some_and(|s| !s.is_empty());
    match forge {
        Forge::GitHub => {
            let mut config = Map::new();
            config.insert("url".into(), text("url"));
            config.insert("content_type".into(), stored.get("content_type").cloned().unwrap_or(json!("form")));
            config.insert("insecure_ssl".into(), stored.get("insecure_ssl").cloned().unwrap_or(json!("0")));
            if secret_set {
                config.insert("secret".into(), json!("********"));
            }
            let api = format!("{base}/repos/{repo}/hooks/{id}");
            json!({
                "type": "Repository", "id": id, "name": "web", "active": stored.get("active").cloned().unwrap_or(json!(true)),
                "events": stored.get("events").cloned().unwrap_or(json!(["push"])), "config": config,
                "updated_at": "2026-11-28T09:00:00Z", "created_at": "2026-11-28T09:00:00Z",
                "url": api, "test_url": format!("{api}/test"), "ping_url": format!("{api}/pings"),
                "deliveries_url": format!("{api}/deliveries"),
                "last_response": stored.get("last_response").cloned().unwrap_or(json!({"code": null, "status": "unused", "message": null})),
            })
        }
        Forge::Gitea => json!({
            "id": id, "type": stored.get("type").cloned().unwrap_or(json!("gitea")),
            "branch_filter": stored.get("branch_filter").cloned().unwrap_or(json!("*")),
            "config": {"url": text("url"), "content_type": stored.get("content_type").cloned().unwrap_or(json!("json"))},
            "events": stored.get("events").cloned().unwrap_or(json!(["push"])),
            "authorization_header": "", "active": stored.get("active").cloned().unwrap_or(json!(true)),
            "updated_at": "2026-11-28T09:00:00Z", "created_at": "2026-11-28T09:00:00Z",
        }),
        Forge::GitLab => {
            let mut hook = json!({
                "id": id, "url": text("url"), "name": null, "description": null, "project_id": 3,
                "created_at": "2026-11-28T09:00:00.000Z",
                "enable_ssl_verification": stored.get("enable_ssl_verification").cloned().unwrap_or(json!(true)),
                "alert_status": stored.get("alert_status").cloned().unwrap_or(json!("executable")),
                "disabled_until": stored.get("disabled_until").cloned().unwrap_or(Value::Null),
                "push_events_branch_filter": "", "branch_filter_strategy": "wildcard", "custom_webhook_template": "",
                "token_present": stored["token"].as_str().is_some_and(|t| !t.is_empty()),
                "signing_token_present": stored["signing_token"].as_str().is_some_and(|t| !t.is_empty()),
            });
            for flag in GITLAB_FLAGS {
                hook[*flag] = json!(stored[*flag].as_bool().unwrap_or(false));
            }
            hook
        }
        Forge::Bitbucket => json!({
            "type": "webhook_subscription", "uuid": bitbucket_uuid(id), "url": text("url"),
            "description": stored.get("description").cloned().unwrap_or(json!("")),
            "subject_type": "repository", "subject": {"type": "repository", "full_name": repo},
            "active": stored.get("active").cloned().unwrap_or(json!(true)),
            "created_at": "2026-11-28T09:00:00.000000+00:00",
            "events": stored.get("events").cloned().unwrap_or(json!([])),
            "secret_set": secret_set, "secret": null,
            "skip_cert_verification": stored.get("skip_cert_verification").cloned().unwrap_or(json!(false)),
        }),
    }
}

fn bitbucket_uuid(id: u64) -> String {
    format!("{{8c5e1f0e-0000-4000-8000-{id:012}}}")
}

fn id_text(forge: Forge, id: u64) -> String {
    match forge {
        Forge::Bitbucket => bitbucket_uuid(id),
        _ => id.to_string(),
    }
}

/// A page as Gitea lists hooks: `page` and `limit` (at most `per_page`, its
/// `MAX_RESPONSE_ITEMS`), the count of all in `X-Total-Count`, and no `Link` header.
fn gitea_page(query: &BTreeMap<String, String>, per_page: usize, items: Vec<Value>) -> Response {
    let number: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(per_page).clamp(1, per_page);
    let total = items.len();
    let shown: Vec<Value> = items.into_iter().skip((number - 1) * limit).take(limit).collect();
    let mut response = answer(200, Value::Array(shown));
    response.headers_mut().insert("x-total-count", total.to_string().parse().unwrap());
    response
}

/// A page as Bitbucket pages: `values`, `page`, `pagelen`, `size`, and `next` while more.
fn bitbucket_page(
    base: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    per_page: usize,
    items: Vec<Value>,
) -> Response {
    let number: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let size = items.len();
    let values: Vec<Value> = items.into_iter().skip((number - 1) * per_page).take(per_page).collect();
    let mut body = json!({"pagelen": per_page, "size": size, "page": number, "values": values});
    if number * per_page < size {
        body["next"] = json!(format!("{base}{path}?pagelen={per_page}&page={}", number + 1));
    }
    answer(200, body)
}

fn unauthorized(forge: Forge) -> Response {
    match forge {
        Forge::GitHub => answer(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        ),
        Forge::Gitea => {
            answer(401, json!({"message": "token is required", "url": "https://gitea.example/api/swagger"}))
        }
        Forge::GitLab => answer(401, json!({"message": "401 Unauthorized"})),
        Forge::Bitbucket => answer(
            401,
            json!({"type": "error", "error": {"message": "Token is invalid, expired, or not supported for this endpoint."}}),
        ),
    }
}

fn missing(forge: Forge) -> Response {
    match forge {
        Forge::GitHub => super::not_found(),
        Forge::Gitea => {
            answer(404, json!({"errors": ["repository does not exist"], "message": "The target couldn't be found."}))
        }
        Forge::GitLab => answer(404, json!({"message": "404 Project Not Found"})),
        Forge::Bitbucket => answer(404, json!({"type": "error", "error": {"message": "Repository not found"}})),
    }
}
