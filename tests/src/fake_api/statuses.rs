//! The fake's commit statuses and check runs, as each forge's API takes them: GitHub
//! (`POST /repos/{o}/{r}/statuses/{sha}`, check runs created and updated with
//! annotations), GitLab (`POST /api/v4/projects/:id/statuses/:sha`, with its refusal of
//! transitions a status cannot make), Gitea and Forgejo (`POST
//! /api/v1/repos/{o}/{r}/statuses/{sha}`) and Bitbucket Cloud (`POST
//! /2.0/repositories/{ws}/{slug}/commit/{sha}/statuses/build`). Each validates what the
//! real API requires (state names, required fields, lengths) and answers 422 or 400 as it
//! does; what it accepts is recorded in order.

use super::{State, answer};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A commit status the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `github`, `gitlab`, `gitea` or `bitbucket` (by the path it came to).
    pub forge: &'static str,
    /// The repository (GitLab: the project path, decoded).
    pub repo: String,
    /// The commit.
    pub sha: String,
    /// GitHub and Gitea `context`, GitLab `name`, Bitbucket `key`.
    pub context: String,
    /// The state as sent.
    pub state: String,
    /// The description.
    pub description: String,
    /// GitHub, GitLab, Gitea `target_url`; Bitbucket `url`.
    pub url: Option<String>,
    /// Bitbucket's `name`.
    pub name: Option<String>,
}

/// A GitHub check run as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// Its id.
    pub id: u64,
    /// `owner/name`.
    pub repo: String,
    /// Its name.
    pub name: String,
    /// The commit.
    pub head_sha: String,
    /// What the app set.
    pub external_id: Option<String>,
    /// `details_url`.
    pub details_url: Option<String>,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// Once completed.
    pub conclusion: Option<String>,
    /// `output.title`, the latest.
    pub title: Option<String>,
    /// `output.summary`, the latest.
    pub summary: Option<String>,
    /// `output.text`, the latest.
    pub text: Option<String>,
    /// Every annotation sent, in order (GitHub appends each request's).
    pub annotations: Vec<Value>,
    /// `status` or `status/conclusion` after each request that set one, in order.
    pub history: Vec<String>,
}

/// What the fake holds of reports.
#[derive(Debug, Default)]
pub struct Reports {
    /// Commit statuses, in the order they were accepted.
    pub statuses: Vec<Status>,
    /// Check runs by id.
    pub checks: BTreeMap<u64, CheckRun>,
    /// GitLab's jobs for external statuses: (project, sha, name) → its state.
    gitlab: BTreeMap<(String, String, String), String>,
    next_check: u64,
}

impl Reports {
    /// The statuses on commit `sha` with context (key) `context`, as `(state, description)`.
    pub fn on(&self, sha: &str, context: &str) -> Vec<(String, String)> {
        self.statuses
            .iter()
            .filter(|status| status.sha == sha && status.context == context)
            .map(|status| (status.state.clone(), status.description.clone()))
            .collect()
    }

    /// The check runs on commit `sha` named `name`, oldest first.
    pub fn runs(&self, sha: &str, name: &str) -> Vec<CheckRun> {
        self.checks.values().filter(|run| run.head_sha == sha && run.name == name).cloned().collect()
    }
}

/// GitHub's answer to a request it cannot process.
fn invalid(message: &str) -> Response {
    answer(
        422,
        json!({"message": "Validation Failed", "errors": [{"message": message}], "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn is_sha(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn text(body: &Value, key: &str) -> Option<String> {
    body[key].as_str().map(str::to_owned)
}

/// Answers a report request, or `None` when the path is not one.
pub fn handle(s: &mut State, method: &str, path: &str, body: &Value) -> Option<Response> {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|part| url::form_urlencoded::parse(format!("x={part}").as_bytes()).next().unwrap().1.into_owned())
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(match (method, parts.as_slice()) {
        ("POST", ["repos", owner, repo, "statuses", sha]) => {
            status_like("github", s, &format!("{owner}/{repo}"), sha, body)
        }
        ("POST", ["api", "v1", "repos", owner, repo, "statuses", sha]) => {
            status_like("gitea", s, &format!("{owner}/{repo}"), sha, body)
        }
        ("POST", ["api", "v4", "projects", project, "statuses", sha]) => gitlab(s, project, sha, body),
        ("POST", ["2.0", "repositories", workspace, slug, "commit", sha, "statuses", "build"]) => {
            bitbucket(s, &format!("{workspace}/{slug}"), sha, body)
        }
        ("POST", ["repos", owner, repo, "check-runs"]) => create_check(s, &format!("{owner}/{repo}"), body),
        ("PATCH", ["repos", owner, repo, "check-runs", id]) => update_check(s, &format!("{owner}/{repo}"), id, body),
        _ => return None,
    })
}

/// GitHub's and Gitea's statuses: the same shape, each forge's states.
fn status_like(forge: &'static str, s: &mut State, repo: &str, sha: &str, body: &Value) -> Response {
    let states: &[&str] = match forge {
        "github" => &["error", "failure", "pending", "success"],
        _ => &["pending", "success", "error", "failure", "warning"],
    };
    let state = body["state"].as_str().unwrap_or_default();
    if !states.contains(&state) {
        return invalid(&format!("state `{state}` is not one of {states:?}"));
    }
    let description = text(body, "description").unwrap_or_default();
    if forge == "github" && description.chars().count() > 140 {
        return invalid("description is too long (maximum is 140 characters)");
    }
    if !is_sha(sha) {
        return answer(422, json!({"message": format!("No commit found for SHA: {sha}")}));
    }
    let context = text(body, "context").unwrap_or_else(|| "default".into());
    let url = text(body, "target_url");
    s.reports.statuses.push(Status {
        forge,
        repo: repo.to_owned(),
        sha: sha.to_owned(),
        context: context.clone(),
        state: state.to_owned(),
        description: description.clone(),
        url: url.clone(),
        name: None,
    });
    answer(201, json!({"state": state, "context": context, "description": description, "target_url": url}))
}

/// GitLab: a status is a job of an external pipeline; while it has not finished, it may
/// only move on (pending → running → an end), never stay or go back.
fn gitlab(s: &mut State, project: &str, sha: &str, body: &Value) -> Response {
    const STATES: &[&str] = &["pending", "running", "success", "failed", "canceled", "skipped"];
    let state = body["state"].as_str().unwrap_or_default();
    if !STATES.contains(&state) {
        return answer(400, json!({"message": "400 Bad request - state does not have a valid value"}));
    }
    if !is_sha(sha) {
        return answer(404, json!({"message": "404 Commit Not Found"}));
    }
    let name = text(body, "name").unwrap_or_else(|| "default".into());
    let key = (project.to_owned(), sha.to_owned(), name.clone());
    if let Some(now) = s.reports.gitlab.get(&key) {
        let open = matches!(now.as_str(), "pending" | "running");
        let allowed = match now.as_str() {
            "pending" => state != "pending",
            "running" => !matches!(state, "pending" | "running"),
            _ => true,
        };
        if open && !allowed {
            let verb = if state == "pending" { "enqueue" } else { "run" };
            return answer(400, json!({"message": format!("Cannot transition status via :{verb} from :{now}")}));
        }
    }
    s.reports.gitlab.insert(key, state.to_owned());
    let description = text(body, "description").unwrap_or_default();
    let url = text(body, "target_url");
    s.reports.statuses.push(Status {
        forge: "gitlab",
        repo: project.to_owned(),
        sha: sha.to_owned(),
        context: name.clone(),
        state: state.to_owned(),
        description,
        url,
        name: None,
    });
    answer(201, json!({"id": 93, "sha": sha, "status": state, "name": name}))
}

/// Bitbucket Cloud: `key`, `state` and `url` are required; the key is at most 40 characters.
fn bitbucket(s: &mut State, repo: &str, sha: &str, body: &Value) -> Response {
    let refuse = |message: String| answer(400, json!({"type": "error", "error": {"message": message}}));
    let state = body["state"].as_str().unwrap_or_default();
    if !["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"].contains(&state) {
        return refuse(format!("state: `{state}` is not a valid choice"));
    }
    let Some(key) = text(body, "key").filter(|key| !key.is_empty()) else {
        return refuse("key: This field is required.".into());
    };
    if key.chars().count() > 40 {
        return refuse("key: Ensure this value has at most 40 characters".into());
    }
    let Some(url) = text(body, "url").filter(|url| url.starts_with("http")) else {
        return refuse("url: This field is required.".into());
    };
    s.reports.statuses.push(Status {
        forge: "bitbucket",
        repo: repo.to_owned(),
        sha: sha.to_owned(),
        context: key.clone(),
        state: state.to_owned(),
        description: text(body, "description").unwrap_or_default(),
        url: Some(url.clone()),
        name: text(body, "name"),
    });
    answer(201, json!({"type": "commitstatus", "key": key, "state": state, "url": url}))
}

/// Checks a check run request's status, conclusion and output as GitHub does.
fn check_fields(body: &Value) -> Result<(), String> {
    let status = body["status"].as_str();
    if let Some(status) = status
        && !["queued", "in_progress", "completed"].contains(&status)
    {
        return Err(format!("status `{status}` is not valid"));
    }
    const CONCLUSIONS: &[&str] =
        &["action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"];
    match body["conclusion"].as_str() {
        Some(conclusion) if !CONCLUSIONS.contains(&conclusion) => {
            return Err(format!("conclusion `{conclusion}` is not valid"));
        }
        None if status == Some("completed") => return Err("conclusion is required when status is completed".into()),
        _ => {}
    }
    if let Some(output) = body.get("output") {
        if output["title"].as_str().is_none() || output["summary"].as_str().is_none() {
            return Err("output needs a title and a summary".into());
        }
        if output["summary"].as_str().unwrap().chars().count() > 65_535 {
            return Err("output.summary is too long".into());
        }
        let annotations = output["annotations"].as_array().map_or(&[][..], Vec::as_slice);
        if annotations.len() > 50 {
            return Err("at most 50 annotations may be sent per request".into());
        }
        for annotation in annotations {
            let level = annotation["annotation_level"].as_str().unwrap_or_default();
            let complete = annotation["path"].is_string()
                && annotation["start_line"].is_u64()
                && annotation["end_line"].is_u64()
                && annotation["message"].is_string();
            if !complete || !["notice", "warning", "failure"].contains(&level) {
                return Err(format!("annotation {annotation} is missing a field or has a bad level"));
            }
            if annotation.get("start_column").is_some() && annotation["start_line"] != annotation["end_line"] {
                return Err("columns are only allowed on one line".into());
            }
        }
    }
    Ok(())
}

/// Applies a request's status, conclusion and output to a run.
fn apply(run: &mut CheckRun, body: &Value) {
    if let Some(status) = body["status"].as_str() {
        run.status = status.to_owned();
        run.conclusion = body["conclusion"].as_str().map(str::to_owned);
        run.history.push(match &run.conclusion {
            Some(conclusion) => format!("{status}/{conclusion}"),
            None => status.to_owned(),
        });
    }
    if let Some(url) = body["details_url"].as_str() {
        run.details_url = Some(url.to_owned());
    }
    if let Some(output) = body.get("output") {
        run.title = text(output, "title");
        run.summary = text(output, "summary");
        run.text = text(output, "text").or(run.text.take());
        run.annotations.extend(output["annotations"].as_array().cloned().unwrap_or_default());
    }
}

fn run_json(run: &CheckRun) -> Value {
    json!({
        "id": run.id, "name": run.name, "head_sha": run.head_sha, "external_id": run.external_id,
        "status": run.status, "conclusion": run.conclusion, "details_url": run.details_url,
        "app": {"id": 1, "slug": "gitauto"}
    })
}

fn create_check(s: &mut State, repo: &str, body: &Value) -> Response {
    let (Some(name), Some(head_sha)) = (text(body, "name"), text(body, "head_sha")) else {
        return invalid("name and head_sha are required");
    };
    if let Err(why) = check_fields(body) {
        return invalid(&why);
    }
    s.reports.next_check += 1;
    let id = 9000 + s.reports.next_check;
    let mut run = CheckRun {
        id,
        repo: repo.to_owned(),
        name,
        head_sha,
        external_id: text(body, "external_id"),
        details_url: None,
        status: "queued".into(),
        conclusion: None,
        title: None,
        summary: None,
        text: None,
        annotations: Vec::new(),
        history: Vec::new(),
    };
    apply(&mut run, body);
    let answered = run_json(&run);
    s.reports.checks.insert(id, run);
    answer(201, answered)
}

fn update_check(s: &mut State, repo: &str, id: &str, body: &Value) -> Response {
    let Some(run) = id.parse().ok().and_then(|id: u64| s.reports.checks.get_mut(&id)).filter(|run| run.repo == repo)
    else {
        return answer(404, json!({"message": "Not Found"}));
    };
    if let Err(why) = check_fields(body) {
        return invalid(&why);
    }
    apply(run, body);
    answer(200, run_json(run))
}
