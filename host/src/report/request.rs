//! What each forge is sent for a report row: the commit status request (GitHub, GitLab,
//! Gitea/Forgejo, Bitbucket) and the GitHub check run bodies (with annotations from the
//! steps' outputs, 50 per request as GitHub requires). Pure: no I/O, tested as tables.

use crate::queue::{OutboxRow, RETRIED, ReportStep};
use crate::step::StepStatus;
use serde_json::{Value, json};

/// GitHub accepts at most this many annotations per check run request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// The most annotations one check run gets.
const MAX_ANNOTATIONS: usize = 1000;
/// GitHub's limit on a status description.
const GITHUB_DESCRIPTION: usize = 140;
/// The description limit used for the other forges.
const OTHER_DESCRIPTION: usize = 255;
/// GitHub's limit on a check run's output summary and text.
const CHECK_TEXT: usize = 65_535;
/// Bitbucket's limit on a build status key.
const BITBUCKET_KEY: usize = 40;

/// The name a rule's reports carry: GitHub's `context` and check run name, GitLab's
/// `name`, Gitea's `context`, Bitbucket's `name`.
pub fn context(rule: &str) -> String {
    format!("gitauto/{rule}")
}

/// Bitbucket's `key` for a rule: the context when it fits 40 characters, else its start
/// and a hash of the whole rule name (so two long names stay apart).
pub fn bitbucket_key(rule: &str) -> String {
    use sha2::Digest as _;
    let full = context(rule);
    if full.len() <= BITBUCKET_KEY {
        return full;
    }
    let hash = hex::encode(&sha2::Sha256::digest(rule.as_bytes())[..4]);
    let room = BITBUCKET_KEY - hash.len() - 1;
    format!("{}-{hash}", cut(&full, room))
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", cut(text, max.saturating_sub('…'.len_utf8())))
}

fn cut(text: &str, max: usize) -> &str {
    let end = (0..=max.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..end]
}

/// The one-line description of a row: what is happening, or the steps' summaries.
pub fn description(row: &OutboxRow, steps: &[ReportStep]) -> String {
    match row.state.as_str() {
        "queued" => "queued".to_owned(),
        "running" => "running".to_owned(),
        "waiting" => "waiting for approval (/ok-to-test)".to_owned(),
        "superseded" | RETRIED | "quarantined" => row.summary.clone().unwrap_or_else(|| row.state.clone()),
        _ => {
            let summaries: Vec<&str> =
                steps.iter().map(|step| step.summary.as_str()).filter(|summary| !summary.is_empty()).collect();
            if summaries.is_empty() {
                row.summary.clone().unwrap_or_else(|| row.state.clone())
            } else {
                summaries.join("; ")
            }
        }
    }
}

/// The commit status request for a row: the path below the API root and the body, or
/// `None` when the forge is not told (a retried attempt's status is replaced by the next
/// attempt's, except on GitLab, whose status must end before a new one can start).
pub fn status(
    forge: &str,
    row: &OutboxRow,
    steps: &[ReportStep],
    link: Option<&str>,
) -> Result<Option<(String, Value)>, String> {
    let text = description(row, steps);
    let name = context(&row.rule);
    let state = row.state.as_str();
    Ok(Some(match forge {
        "github" | "gitea" | "forgejo" => {
            if state == RETRIED {
                return Ok(None);
            }
            let word = match (forge, state) {
                (_, "queued" | "running" | "waiting") => "pending",
                (_, "succeeded" | "skipped") => "success",
                (_, "failed") => "failure",
                _ => "error",
            };
            let limit = if forge == "github" { GITHUB_DESCRIPTION } else { OTHER_DESCRIPTION };
            let mut body = json!({"state": word, "context": name, "description": truncate(&text, limit)});
            if let Some(link) = link {
                body["target_url"] = link.into();
            }
            (format!("/repos/{}/statuses/{}", repo_path(&row.repo)?, row.sha), body)
        }
        "gitlab" => {
            let word = match state {
                "queued" | "waiting" => "pending",
                "running" => "running",
                "succeeded" => "success",
                "failed" | "dead" => "failed",
                "skipped" => "skipped",
                _ => "canceled",
            };
            let mut body = json!({"state": word, "name": name, "description": truncate(&text, OTHER_DESCRIPTION)});
            if let Some(link) = link {
                body["target_url"] = link.into();
            }
            let project = crate::forge_api::encode_segment(&row.repo);
            (format!("/projects/{project}/statuses/{}", row.sha), body)
        }
        "bitbucket" => {
            if state == RETRIED {
                return Ok(None);
            }
            let word = match state {
                "queued" | "running" | "waiting" => "INPROGRESS",
                "succeeded" | "skipped" => "SUCCESSFUL",
                "failed" | "dead" => "FAILED",
                _ => "STOPPED",
            };
            // Bitbucket requires a link: the job's page, else the commit's.
            let url =
                link.map_or_else(|| format!("https://bitbucket.org/{}/commits/{}", row.repo, row.sha), str::to_owned);
            let body = json!({
                "key": bitbucket_key(&row.rule),
                "state": word,
                "name": name,
                "url": url,
                "description": truncate(&text, OTHER_DESCRIPTION),
            });
            (format!("/repositories/{}/commit/{}/statuses/build", repo_path(&row.repo)?, row.sha), body)
        }
        other => return Err(format!("{other} has no commit status API")),
    }))
}

/// `owner/name` with each part percent-encoded, as a path.
pub fn repo_path(repo: &str) -> Result<String, String> {
    let (owner, name) = repo.split_once('/').ok_or_else(|| format!("repository `{repo}` is not `owner/name`"))?;
    Ok(format!("{}/{}", crate::forge_api::encode_segment(owner), crate::forge_api::encode_segment(name)))
}

/// A check run's `status` and, once completed, its `conclusion`.
pub fn check_state(state: &str) -> (&'static str, Option<&'static str>) {
    match state {
        "queued" | "waiting" => ("queued", None),
        "running" => ("in_progress", None),
        "succeeded" => ("completed", Some("success")),
        "failed" | "dead" => ("completed", Some("failure")),
        "skipped" => ("completed", Some("skipped")),
        RETRIED => ("completed", Some("neutral")),
        _ => ("completed", Some("cancelled")),
    }
}

/// The check run requests for a row: the first body (create it, or update it) and the
/// bodies of the further updates that carry the annotations beyond the first 50.
pub fn check(row: &OutboxRow, steps: &[ReportStep], link: Option<&str>, now: &str) -> (Value, Vec<Value>) {
    let (status, conclusion) = check_state(&row.state);
    let mut body = json!({
        "name": context(&row.rule),
        "head_sha": row.sha,
        "external_id": row.job.to_string(),
        "status": status,
    });
    if let Some(link) = link {
        body["details_url"] = link.into();
    }
    let Some(conclusion) = conclusion else {
        if status == "in_progress" {
            body["started_at"] = now.into();
        }
        return (body, Vec::new());
    };
    body["conclusion"] = conclusion.into();
    body["completed_at"] = now.into();
    let (annotations, loose) = annotations(steps);
    let title = truncate(&format!("{} {}", context(&row.rule), title_word(&row.state)), 255);
    let summary = truncate(&check_summary(row, steps, link), CHECK_TEXT);
    let output = |batch: &[Value]| {
        let mut output = json!({"title": title, "summary": summary});
        if !loose.is_empty() {
            output["text"] = truncate(&loose, CHECK_TEXT).into();
        }
        if !batch.is_empty() {
            output["annotations"] = batch.to_vec().into();
        }
        output
    };
    let mut batches = annotations.chunks(ANNOTATIONS_PER_REQUEST);
    body["output"] = output(batches.next().unwrap_or_default());
    let more = batches.map(|batch| json!({"output": output(batch)})).collect();
    (body, more)
}

fn title_word(state: &str) -> &str {
    match state {
        "succeeded" => "succeeded",
        "failed" => "failed",
        "dead" => "failed on every attempt",
        "skipped" => "skipped",
        "superseded" => "superseded",
        RETRIED => "will run again",
        "quarantined" => "set aside",
        _ => "cancelled",
    }
}

/// The output summary: the job's outcome, each step's result, the link.
fn check_summary(row: &OutboxRow, steps: &[ReportStep], link: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(summary) = &row.summary {
        out.push_str(summary);
        out.push_str("\n\n");
    }
    for step in steps {
        let word = match step.status {
            StepStatus::Success => "succeeded",
            StepStatus::Failure => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Error => "error",
        };
        out.push_str(&format!("- `{}` {word}: {}\n", step.name, step.summary));
    }
    if let Some(link) = link {
        out.push_str(&format!("\n[Job {} (attempt {})]({link})\n", row.job, row.attempt));
    }
    if out.is_empty() { row.state.clone() } else { out }
}

/// The steps' annotations as GitHub takes them (those with a path and a line), and the
/// others as text lines.
fn annotations(steps: &[ReportStep]) -> (Vec<Value>, String) {
    let mut placed = Vec::new();
    let mut loose = String::new();
    let all = steps.iter().filter_map(|step| step.output.get("annotations").and_then(Value::as_array)).flatten();
    for annotation in all {
        let message = annotation["message"].as_str().unwrap_or_default();
        let severity = annotation["severity"].as_str().unwrap_or("notice");
        let code = annotation["code"].as_str();
        let path = annotation["path"].as_str().filter(|path| !path.is_empty());
        let line = annotation["line"].as_u64().filter(|line| *line > 0);
        match (path, line) {
            (Some(path), Some(line)) if placed.len() < MAX_ANNOTATIONS => {
                let level = match severity {
                    "error" => "failure",
                    "warning" => "warning",
                    _ => "notice",
                };
                let mut item = json!({
                    "path": path, "start_line": line, "end_line": line, "annotation_level": level,
                    "message": truncate(message, 4096),
                });
                if let Some(column) = annotation["column"].as_u64().filter(|column| *column > 0) {
                    item["start_column"] = column.into();
                    item["end_column"] = column.into();
                }
                if let Some(code) = code {
                    item["title"] = truncate(code, 255).into();
                }
                placed.push(item);
            }
            _ => {
                let place = match (path, line) {
                    (Some(path), Some(line)) => format!("{path}:{line}: "),
                    (Some(path), None) => format!("{path}: "),
                    _ => String::new(),
                };
                let code = code.map(|code| format!(" ({code})")).unwrap_or_default();
                loose.push_str(&format!("- {severity}: {place}{message}{code}\n"));
            }
        }
    }
    (placed, loose)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str) -> OutboxRow {
        OutboxRow {
            id: 1,
            job: 42,
            attempt: 1,
            state: state.to_owned(),
            kind: "status".to_owned(),
            source: "gh".to_owned(),
            repo: "acme/widgets".to_owned(),
            sha: "a".repeat(40),
            installation: None,
            rule: "ci".to_owned(),
            summary: Some("job summary".to_owned()),
            superseded_by: None,
            tries: 0,
            created_at: 0,
        }
    }

    fn step(summary: &str, output: Value) -> ReportStep {
        ReportStep { name: "build".into(), status: StepStatus::Failure, summary: summary.into(), output }
    }

    #[test]
    fn each_forge_gets_its_own_state_words() {
        let table = [
            ("github", "queued", Some("pending")),
            ("github", "waiting", Some("pending")),
            ("bitbucket", "waiting", Some("INPROGRESS")),
            ("github", "running", Some("pending")),
            ("github", "succeeded", Some("success")),
            ("github", "failed", Some("failure")),
            ("github", "skipped", Some("success")),
            ("github", "cancelled", Some("error")),
            ("github", "superseded", Some("error")),
            ("github", RETRIED, None),
            ("gitlab", "queued", Some("pending")),
            ("gitlab", "running", Some("running")),
            ("gitlab", "failed", Some("failed")),
            ("gitlab", "skipped", Some("skipped")),
            ("gitlab", "superseded", Some("canceled")),
            ("gitlab", RETRIED, Some("canceled")),
            ("gitea", "running", Some("pending")),
            ("gitea", "failed", Some("failure")),
            ("bitbucket", "queued", Some("INPROGRESS")),
            ("bitbucket", "succeeded", Some("SUCCESSFUL")),
            ("bitbucket", "dead", Some("FAILED")),
            ("bitbucket", "superseded", Some("STOPPED")),
            ("bitbucket", RETRIED, None),
        ];
        for (forge, state, word) in table {
            let sent = status(forge, &row(state), &[], None).unwrap();
            let got = sent.as_ref().map(|(_, body)| body["state"].as_str().unwrap().to_owned());
            assert_eq!(got.as_deref(), word, "{forge} {state}");
        }
        assert!(status("gogs", &row("queued"), &[], None).unwrap_err().contains("no commit status API"));
    }

    #[test]
    fn paths_and_names_follow_each_api() {
        let (path, body) = status("gitlab", &row("queued"), &[], Some("https://g.example/jobs/42")).unwrap().unwrap();
        assert_eq!(path, format!("/projects/acme%2Fwidgets/statuses/{}", "a".repeat(40)));
        assert_eq!(
            (body["name"].as_str(), body["target_url"].as_str()),
            (Some("gitauto/ci"), Some("https://g.example/jobs/42"))
        );
        let (path, body) = status("bitbucket", &row("queued"), &[], None).unwrap().unwrap();
        assert_eq!(path, format!("/repositories/acme/widgets/commit/{}/statuses/build", "a".repeat(40)));
        assert_eq!(body["url"], format!("https://bitbucket.org/acme/widgets/commits/{}", "a".repeat(40)));
        let (path, body) = status("github", &row("queued"), &[], None).unwrap().unwrap();
        assert_eq!(path, format!("/repos/acme/widgets/statuses/{}", "a".repeat(40)));
        assert!(body.get("target_url").is_none(), "no public_url, no link");
    }

    #[test]
    fn descriptions_are_the_step_summaries_cut_to_each_forges_limit() {
        let long = "x".repeat(300);
        let steps = [step("one", Value::Null), step(&long, Value::Null)];
        let (_, body) = status("github", &row("failed"), &steps, None).unwrap().unwrap();
        let text = body["description"].as_str().unwrap();
        assert!(text.starts_with("one; xxx") && text.ends_with('…') && text.len() <= 140, "{text}");
        let (_, body) = status("gitea", &row("failed"), &steps, None).unwrap().unwrap();
        assert!(body["description"].as_str().unwrap().len() <= 255);
        assert_eq!(description(&row("running"), &steps), "running");
        assert_eq!(description(&row("succeeded"), &[]), "job summary");
    }

    #[test]
    fn bitbucket_keys_fit_forty_characters_and_stay_apart() {
        assert_eq!(bitbucket_key("ci"), "gitauto/ci");
        let a = bitbucket_key(&"a-very-long-rule-name-that-goes-on-".repeat(2));
        let b = bitbucket_key(&format!("{}x", "a-very-long-rule-name-that-goes-on-".repeat(2)));
        assert!(a.len() <= 40 && b.len() <= 40 && a != b, "{a} {b}");
    }

    #[test]
    fn annotations_with_a_place_go_in_batches_of_fifty_and_the_rest_into_the_text() {
        let mut items: Vec<Value> = (1..=120)
            .map(|n| json!({"path": "src/lib.rs", "line": n, "column": 3, "severity": "error", "message": format!("bad {n}"), "code": "E1"}))
            .collect();
        items.push(json!({"path": null, "line": null, "severity": "warning", "message": "somewhere", "code": null}));
        let steps = [step("120 problems", json!({"annotations": items}))];
        let (first, more) = check(&row("failed"), &steps, Some("https://g.example/jobs/42"), "2026-11-28T18:00:00Z");
        assert_eq!((first["status"].as_str(), first["conclusion"].as_str()), (Some("completed"), Some("failure")));
        let batch = first["output"]["annotations"].as_array().unwrap();
        assert_eq!(batch.len(), 50);
        assert_eq!(
            batch[0],
            json!({"path": "src/lib.rs", "start_line": 1, "end_line": 1, "start_column": 3, "end_column": 3,
                   "annotation_level": "failure", "message": "bad 1", "title": "E1"})
        );
        assert_eq!(more.len(), 2);
        assert_eq!(more[1]["output"]["annotations"].as_array().unwrap().len(), 20);
        assert_eq!(more[1]["output"]["title"], first["output"]["title"]);
        assert_eq!(first["output"]["text"], "- warning: somewhere\n");
        assert!(first["output"]["summary"].as_str().unwrap().contains("- `build` failed: 120 problems"));
        let (queued, none) = check(&row("queued"), &[], None, "now");
        assert_eq!((queued["status"].as_str(), queued.get("output"), none.len()), (Some("queued"), None, 0));
        assert_eq!(queued["external_id"], "42");
    }
}
