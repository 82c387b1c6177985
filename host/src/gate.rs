//! Who may trigger a job, checked when it starts (ingest never calls out): a rule's
//! `permission` (the forge's API tells the event author's level on the repository; short
//! of it, the job is skipped and the host replies on the issue or pull request), and
//! approvals of fork pull requests held by `forks = "approve"` (an `/ok-to-test` comment
//! becomes a host job, [`APPROVE_RULE`], that checks its author and releases the waiting
//! jobs for the pull request's current head). Every call goes through `ForgeApis`.

use crate::config::gate::{Forks, Permission, RESERVED_RULE_PREFIX};
use crate::config::{Config, Rule, Source};
use crate::event::Event;
use crate::forge_api::{ApiError, ApiTarget, ForgeApis, encode_segment};
use crate::queue::{Approval, NewJob, Queue, Released};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// The rule name of approval jobs (no `[[rules]]` entry may start with `gitauto:`).
pub const APPROVE_RULE: &str = "gitauto:approve";
/// The command that approves a fork's pull request.
pub const APPROVE_COMMAND: &str = "/ok-to-test";
/// The level an approver needs.
pub const APPROVER_LEVEL: Permission = Permission::Write;
/// Extra attempts of an approval whose API calls fail transiently.
const APPROVE_RETRIES: u32 = 5;

/// How the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the chain.
    Run,
    /// The job ends here, as `skipped` (a refusal) or `succeeded` (an approval done).
    End {
        /// Whether the job did its work (an approval) rather than being refused.
        done: bool,
        /// One line for the job's record.
        summary: String,
    },
    /// The check could not be made; the job failed (retried when `transient`). It never
    /// runs unchecked.
    Failed {
        /// What went wrong.
        error: String,
        /// Whether another attempt could succeed.
        transient: bool,
    },
}

impl Decision {
    fn failed(err: ApiError, doing: &str) -> Decision {
        Decision::Failed { transient: err.is_transient(), error: format!("{doing}: {err}") }
    }
}

/// The rule an approval job runs under: no steps, its own retries.
pub fn approve_rule() -> Rule {
    let mut rule = Rule::new(APPROVE_RULE, Vec::new(), Vec::new());
    rule.retries = APPROVE_RETRIES;
    rule.retry_backoff = Duration::from_secs(10);
    rule
}

/// The approval job an event makes: a newly created comment whose first line is
/// `/ok-to-test`, on a pull request of a repository some `forks = "approve"` rule of its
/// source could hold jobs for. Edited and deleted comments approve nothing (an edit could
/// otherwise turn an old comment into an approval).
pub fn approval_job(config: &Config, event: &Event, event_index: usize) -> Option<NewJob> {
    let command = event.command.as_ref()?;
    let comment = event.comment.as_ref()?;
    // Every forge's parser names a new comment `created` (GitLab's `create` and its
    // action-less older hooks included).
    let created = event.action.as_deref() == Some("created");
    if event.kind != "comment" || !created || command.name != APPROVE_COMMAND || !comment.on_pull_request {
        return None;
    }
    let number = number(event)?;
    let repo = &event.repository.full_name;
    let gated = config.rules.iter().any(|rule| {
        rule.forks == Forks::Approve
            && (rule.sources.is_empty() || rule.sources.contains(&event.source))
            && (rule.forges.is_empty() || rule.forges.contains(&event.forge))
            && (rule.repo.is_empty() || rule.repo.matches(repo))
    });
    if !gated {
        return None;
    }
    let key = format!("{APPROVE_RULE}\n{repo}\n#{number}");
    Some(NewJob {
        rule: APPROVE_RULE.to_owned(),
        key,
        repo: repo.clone(),
        git_ref: event.git_ref.clone(),
        event_index,
        coalesce_key: None,
        max_attempts: 1 + i64::from(APPROVE_RETRIES),
        quiet_ms: 0,
        run_on: crate::node::RunOn::Any,
        concurrency: None,
        priority: 0,
        waiting: false,
        report: None,
    })
}

/// Whether `name` is one of gitauto's own jobs rather than a `[[rules]]` rule.
pub fn is_host_job(name: &str) -> bool {
    name.starts_with(RESERVED_RULE_PREFIX)
}

/// The user an event is about: a comment's author, else the sender (login, numeric id
/// when the event has it).
fn author(event: &Event) -> Option<(String, Option<u64>)> {
    match &event.comment {
        Some(comment) if !comment.author.is_empty() => Some((comment.author.clone(), comment.author_id)),
        _ => event.sender.clone().filter(|sender| !sender.is_empty()).map(|sender| (sender, None)),
    }
}

/// The issue or pull request number the event is about: its comment's, else its pull
/// request's.
fn number(event: &Event) -> Option<u64> {
    event.comment.as_ref().and_then(|c| c.number).or(event.pull_request.as_ref().map(|pr| pr.number))
}

/// What a GitHub App token may do to read a user's permission (metadata only).
const READ_PERMISSION: &[(&str, &str)] = &[];
/// ... to read a pull request's head.
const READ_PULL_REQUEST: &[(&str, &str)] = &[("pull_requests", "read")];
/// ... to reply on a pull request, and on an issue.
const REPLY_ON_PULL_REQUEST: &[(&str, &str)] = &[("pull_requests", "write")];
const REPLY_ON_ISSUE: &[(&str, &str)] = &[("issues", "write")];

/// What an API call is about, and what a GitHub App token for it may do.
fn target(event: &Event, permissions: &'static [(&'static str, &'static str)]) -> ApiTarget {
    ApiTarget { repo: event.repository.full_name.clone(), installation: event.installation, permissions }
}

/// `owner/name` as the two path segments GitHub and Gitea take.
fn repo_path(repo: &str) -> String {
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    format!("{}/{}", encode_segment(owner), encode_segment(name))
}

/// The host's gate for one job, before its first step: the approval itself for an
/// approval job, else the rule's `permission`.
pub async fn check(apis: &ForgeApis, queue: &Queue, config: &Config, rule: &Rule, job: Job<'_>) -> Decision {
    let event = job.event;
    if rule.name == APPROVE_RULE {
        return approve(apis, queue, config, job).await;
    }
    if let Some(refused) = fork_gate(rule, job) {
        return refused;
    }
    let Some(needed) = rule.permission else { return Decision::Run };
    if let Some(taken) = comment_taken(queue, &rule.name, job).await {
        return taken;
    }
    // A manual trigger and a schedule tick come from the daemon's own operator, not a
    // forge: their `forge` (`ingest::MANUAL`, `ingest::SCHEDULE`) is the host's word, which
    // no payload can set.
    if matches!(event.forge.as_str(), "manual" | "schedule") {
        return Decision::Run;
    }
    let Some(source) = config.source(&event.source) else {
        return Decision::Failed {
            error: format!("source \"{}\" is no longer in the config: permission not checked", event.source),
            transient: false,
        };
    };
    let Some((user, id)) = author(event) else {
        return Decision::End {
            done: false,
            summary: format!("the event names no author whose {needed} permission could be checked"),
        };
    };
    let level = match permission(apis, source, event, &user, id).await {
        Ok(level) => level,
        Err(err) => return Decision::failed(err, &format!("checking {user}'s permission")),
    };
    if level >= needed {
        return Decision::Run;
    }
    let what = event.command.as_ref().map_or_else(|| format!("rule \"{}\"", rule.name), |c| shown_command(&c.name));
    refuse(apis, source, event, &user, &what, needed, level).await
}

/// The rule's `forks` again when the job starts, whatever way it got to the queue (a
/// retried cancelled waiting job, a re-run, a job made before the rule was gated): a
/// fork's pull request runs under `forks = "approve"` only with an approval of its event's
/// head, and never under `forks = "skip"`.
fn fork_gate(rule: &Rule, job: Job<'_>) -> Option<Decision> {
    let event = job.event;
    let fork = event.fork()?;
    let pr = event.pull_request.as_ref()?;
    let short: String = pr.head.chars().take(12).collect();
    let summary = match rule.forks {
        Forks::Run => return None,
        Forks::Approve if job.approved_head == Some(pr.head.as_str()) && !pr.head.is_empty() => return None,
        Forks::Approve => {
            format!("pull request #{} from the fork {fork}: no {APPROVE_COMMAND} approved its head {short}", pr.number)
        }
        Forks::Skip => format!("pull request #{} is from the fork {fork}; the rule skips forks", pr.number),
    };
    Some(Decision::End { done: false, summary })
}

/// A command's name as a reply may show it: the commenter wrote it, so anything but a
/// short plain name (letters, digits, `/`, `-`, `_`, `.`, `:`; at most 64 of them) is
/// shown as "the command" — no mention, link, markup or bidirectional override of theirs
/// is echoed by the host's account.
fn shown_command(name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.:".contains(c);
    if !name.is_empty() && name.len() <= 64 && name.chars().all(plain) {
        name.to_owned()
    } else {
        "the command".to_owned()
    }
}

/// The job being gated: its event and the delivery it runs with.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The job's id.
    pub id: i64,
    /// The event it runs with.
    pub event: &'a Event,
    /// The stored delivery of that event.
    pub delivery_seq: i64,
    /// The head commit an `/ok-to-test` released the job for, if one did.
    pub approved_head: Option<&'a str>,
}

/// Ends a job whose author is short of `needed`, replying where they asked.
async fn refuse(
    apis: &ForgeApis,
    source: &Source,
    event: &Event,
    user: &str,
    what: &str,
    needed: Permission,
    level: Permission,
) -> Decision {
    let repo = &event.repository.full_name;
    let text = format!("@{user}: {what} needs {needed} permission on {repo}; you have {level}");
    let mut summary = format!("{user} has {level} permission on {repo}; {what} needs {needed}");
    match reply(apis, source, event, &text).await {
        Ok(true) => {}
        Ok(false) => summary.push_str(" (no issue or pull request to reply on)"),
        // The refusal stands whatever became of the reply.
        Err(err) => {
            tracing::warn!(repo = %repo, "replying to {user}: {err}");
            summary.push_str(&format!(" (the reply failed: {err})"));
        }
    }
    Decision::End { done: false, summary }
}

/// Runs an approval: its author needs write permission; the waiting jobs of the pull
/// request whose head is the pull request's head now, and whose events arrived before
/// the approval, are queued.
async fn approve(apis: &ForgeApis, queue: &Queue, config: &Config, job: Job<'_>) -> Decision {
    let event = job.event;
    let Some(source) = config.source(&event.source) else {
        return Decision::Failed {
            error: format!("source \"{}\" is no longer in the config: approval not checked", event.source),
            transient: false,
        };
    };
    let (Some((user, id)), Some(number)) = (author(event), number(event)) else {
        return Decision::End { done: false, summary: "the approval names no author or pull request".to_owned() };
    };
    if let Some(taken) = comment_taken(queue, APPROVE_RULE, job).await {
        return taken;
    }
    let level = match permission(apis, source, event, &user, id).await {
        Ok(level) => level,
        Err(err) => return Decision::failed(err, &format!("checking {user}'s permission")),
    };
    if level < APPROVER_LEVEL {
        return refuse(apis, source, event, &user, APPROVE_COMMAND, APPROVER_LEVEL, level).await;
    }
    let head = match pull_request_head(apis, source, event, number).await {
        Ok(head) => head,
        Err(err) => return Decision::failed(err, &format!("reading pull request #{number}")),
    };
    let approval = Approval {
        source: source.name.clone(),
        repo: event.repository.full_name.clone(),
        number,
        head: head.clone(),
        before_delivery: job.delivery_seq,
    };
    match queue.release_waiting(approval).await {
        Ok(released) => Decision::End { done: true, summary: approved(&user, number, &head, &released) },
        Err(err) => Decision::Failed { error: format!("releasing the waiting jobs: {err:#}"), transient: true },
    }
}

/// Claims the job's comment for `rule` (an approval, or a command a `permission`
/// gates): `Some` ending when another job's already acted on it, so that a replayed or
/// redelivered webhook of one comment approves or deploys once. A comment without an id
/// (0) cannot be told apart and is refused.
async fn comment_taken(queue: &Queue, rule: &str, job: Job<'_>) -> Option<Decision> {
    let event = job.event;
    let comment = event.comment.as_ref().filter(|_| event.kind == "comment")?;
    if comment.id == 0 {
        return Some(Decision::End { done: false, summary: "the comment has no id to act on once".to_owned() });
    }
    match queue.act_on_comment(&event.source, &event.repository.full_name, comment.id, rule, job.id).await {
        Ok(None) => None,
        Ok(Some(other)) => Some(Decision::End {
            done: false,
            summary: format!("comment {} already acted in job {other} (a replayed delivery)", comment.id),
        }),
        Err(err) => {
            Some(Decision::Failed { error: format!("recording comment {}: {err:#}", comment.id), transient: true })
        }
    }
}

/// The approval job's summary.
fn approved(user: &str, number: u64, head: &str, released: &Released) -> String {
    // Characters, not bytes: the forge's answer must not be able to make this panic.
    let short: String = head.chars().take(12).collect();
    let mut text = format!("{APPROVE_COMMAND} by {user} for #{number} at {short}: ");
    if released.released.is_empty() {
        text.push_str("no job waited for that commit");
    } else {
        let ids: Vec<String> = released.released.iter().map(i64::to_string).collect();
        text.push_str(&format!("queued job {}", ids.join(", ")));
    }
    if !released.left.is_empty() {
        let left: Vec<String> = released.left.iter().map(|(id, why)| format!("job {id}: {why}")).collect();
        text.push_str(&format!("; still waiting: {}", left.join("; ")));
    }
    text
}

/// `user`'s level on the event's repository, as its forge tells it. A user the forge
/// does not know there (404) has none.
pub async fn permission(
    apis: &ForgeApis,
    source: &Source,
    event: &Event,
    user: &str,
    id: Option<u64>,
) -> Result<Permission, ApiError> {
    let target = target(event, READ_PERMISSION);
    let repo = &event.repository.full_name;
    let answer = match source.forge {
        "gitlab" => {
            let id = match id {
                Some(id) => id,
                None => match gitlab_user_id(apis, source, &target, user).await? {
                    Some(id) => id,
                    None => return Ok(Permission::None),
                },
            };
            let path = format!("/projects/{}/members/all/{id}", encode_segment(repo));
            apis.call(source, &target, Method::GET, &path, None).await
        }
        "github" | "gitea" | "forgejo" => {
            let path = format!("/repos/{}/collaborators/{}/permission", repo_path(repo), encode_segment(user));
            apis.call(source, &target, Method::GET, &path, None).await
        }
        other => {
            return Err(ApiError::Failed(format!(
                "{other}'s API does not tell a user's permission on a repository (the config allows `permission` \
                 only on github, gitlab, gitea and forgejo sources)"
            )));
        }
    };
    let body = match answer {
        Ok(answer) => answer.body,
        Err(err) if err.status() == Some(404) => return Ok(Permission::None),
        Err(err) => return Err(err),
    };
    Ok(level(source.forge, &body))
}

/// The level in a permission answer; anything unreadable is none.
fn level(forge: &str, body: &Value) -> Permission {
    match forge {
        // Guest 10, planner 15, reporter 20, developer 30, maintainer 40, owner 50.
        "gitlab" => match body["access_level"].as_u64().unwrap_or(0) {
            50.. => Permission::Admin,
            40..=49 => Permission::Maintain,
            30..=39 => Permission::Write,
            20..=29 => Permission::Triage,
            10..=19 => Permission::Read,
            _ => Permission::None,
        },
        // GitHub: `role_name` tells triage and maintain, taken only where the base
        // `permission` agrees (triage is read, maintain is write; any other role name,
        // custom ones included, is the base); Gitea: `owner`, `admin`, `write`, `read`,
        // `none`.
        _ => {
            let base = match body["permission"].as_str() {
                Some("owner") => Permission::Admin,
                Some(other) => Permission::parse(other).unwrap_or(Permission::None),
                None => Permission::None,
            };
            match (body["role_name"].as_str(), base) {
                (Some("triage"), Permission::Read) => Permission::Triage,
                (Some("maintain"), Permission::Write) => Permission::Maintain,
                _ => base,
            }
        }
    }
}

/// GitLab's numeric id of `username` (its member API takes ids), when the user exists.
async fn gitlab_user_id(
    apis: &ForgeApis,
    source: &Source,
    target: &ApiTarget,
    username: &str,
) -> Result<Option<u64>, ApiError> {
    let path = format!("/users?username={}", encode_segment(username));
    let answer = apis.call(source, target, Method::GET, &path, None).await?;
    Ok(answer.body.as_array().and_then(|users| users.first()).and_then(|user| user["id"].as_u64()))
}

/// The pull request's head commit now.
async fn pull_request_head(apis: &ForgeApis, source: &Source, event: &Event, number: u64) -> Result<String, ApiError> {
    let repo = &event.repository.full_name;
    let (path, field): (String, fn(&Value) -> Option<&str>) = match source.forge {
        "gitlab" => (format!("/projects/{}/merge_requests/{number}", encode_segment(repo)), |b| b["sha"].as_str()),
        _ => (format!("/repos/{}/pulls/{number}", repo_path(repo)), |b| b["head"]["sha"].as_str()),
    };
    let answer = apis.call(source, &target(event, READ_PULL_REQUEST), Method::GET, &path, None).await?;
    field(&answer.body)
        .filter(|sha| !sha.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Failed(format!("pull request #{number} of {repo}: the answer names no head commit")))
}

/// Posts `text` on the issue or pull request the event is about; `Ok(false)` when it is
/// about neither.
async fn reply(apis: &ForgeApis, source: &Source, event: &Event, text: &str) -> Result<bool, ApiError> {
    let on_pr = event.pull_request.is_some() || event.comment.as_ref().is_some_and(|c| c.on_pull_request);
    let Some(number) = number(event) else { return Ok(false) };
    let repo = &event.repository.full_name;
    let path = match source.forge {
        "gitlab" => {
            let kind = if on_pr { "merge_requests" } else { "issues" };
            format!("/projects/{}/{kind}/{number}/notes", encode_segment(repo))
        }
        _ => format!("/repos/{}/issues/{number}/comments", repo_path(repo)),
    };
    let allowed = if on_pr { REPLY_ON_PULL_REQUEST } else { REPLY_ON_ISSUE };
    apis.call(source, &target(event, allowed), Method::POST, &path, Some(&json!({ "body": text }))).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Command, Comment, PullRequest};

    #[test]
    fn each_forges_answer_maps_to_a_level() {
        let cases: &[(&str, Value, Permission)] = &[
            ("github", json!({"permission": "write", "role_name": "maintain"}), Permission::Maintain),
            ("github", json!({"permission": "read", "role_name": "triage"}), Permission::Triage),
            ("github", json!({"permission": "write", "role_name": "release-manager"}), Permission::Write),
            ("github", json!({"permission": "none", "role_name": "none"}), Permission::None),
            ("github", json!({"message": "odd"}), Permission::None),
            ("github", json!({"permission": "read", "role_name": "maintain"}), Permission::Read),
            ("github", json!({"permission": "none", "role_name": "admin"}), Permission::None),
            ("github", json!({"permission": "write", "role_name": "triage"}), Permission::Write),
            ("github", json!({"role_name": "admin"}), Permission::None),
            ("github", json!({"permission": "admin", "role_name": "admin"}), Permission::Admin),
            ("gitea", json!({"permission": "owner"}), Permission::Admin),
            ("gitea", json!({"permission": "read"}), Permission::Read),
            ("gitlab", json!({"access_level": 50}), Permission::Admin),
            ("gitlab", json!({"access_level": 40}), Permission::Maintain),
            ("gitlab", json!({"access_level": 30}), Permission::Write),
            ("gitlab", json!({"access_level": 20}), Permission::Triage),
            ("gitlab", json!({"access_level": 10}), Permission::Read),
            ("gitlab", json!({"access_level": 5}), Permission::None),
        ];
        for (forge, body, expected) in cases {
            assert_eq!(level(forge, body), *expected, "{forge} {body}");
        }
    }

    fn config(rules: &str) -> Config {
        let text = format!(
            "[sources.gh]\nforge = \"github\"\nsecret = \"s\"\napi = {{ url = \"http://127.0.0.1:1\", token = \"t\" }}\n\
             [plugins.p]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"/srv\", git = true }}] }}\n{rules}"
        );
        Config::parse(std::path::Path::new("t.toml"), &text).unwrap()
    }

    fn ok_to_test(action: &str, first_line: &str) -> Event {
        let mut words = first_line.split_whitespace().map(str::to_owned);
        Event {
            source: "gh".into(),
            forge: "github".into(),
            kind: "comment".into(),
            action: (!action.is_empty()).then(|| action.into()),
            repository: crate::event::Repository { full_name: "acme/widgets".into(), ..Default::default() },
            comment: Some(Comment {
                body: format!("{first_line}\nlooks fine"),
                author: "maintainer".into(),
                number: Some(7),
                on_pull_request: true,
                ..Default::default()
            }),
            command: first_line.starts_with('/').then(|| Command {
                name: words.next().unwrap_or_default(),
                args: words.collect(),
                line: first_line.into(),
            }),
            pull_request: Some(PullRequest { number: 7, ..Default::default() }),
            ..Event::default()
        }
    }

    #[test]
    fn only_a_new_ok_to_test_comment_on_a_gated_repository_makes_an_approval_job() {
        let gated = config(
            "[[rules]]\nname = \"ci\"\non = \"pull_request\"\nforks = \"approve\"\nrepo = \"acme/*\"\n\
             [[rules.steps]]\nplugin = \"p\"\nwith = { repodir = \"/srv\" }\n",
        );
        let job = approval_job(&gated, &ok_to_test("created", "/ok-to-test"), 0).expect("an approval job");
        assert_eq!(
            (job.rule.as_str(), job.key.as_str(), job.waiting),
            (APPROVE_RULE, "gitauto:approve\nacme/widgets\n#7", false)
        );
        let refused = [
            ("edited", "/ok-to-test", "an edited comment"),
            ("deleted", "/ok-to-test", "a deleted comment"),
            ("", "/ok-to-test", "a comment with no action"),
            ("created", "/ok-to-test-later", "another command"),
            ("created", "ok-to-test", "no command"),
        ];
        for (action, line, what) in refused {
            assert!(approval_job(&gated, &ok_to_test(action, line), 0).is_none(), "{what}");
        }
        let mut on_issue = ok_to_test("created", "/ok-to-test");
        on_issue.comment.as_mut().unwrap().on_pull_request = false;
        assert!(approval_job(&gated, &on_issue, 0).is_none(), "a comment on an issue");
        let mut elsewhere = ok_to_test("created", "/ok-to-test");
        elsewhere.repository.full_name = "other/widgets".into();
        assert!(approval_job(&gated, &elsewhere, 0).is_none(), "a repository no gated rule covers");
        let ungated = config(
            "[[rules]]\nname = \"ci\"\non = \"pull_request\"\n[[rules.steps]]\nplugin = \"p\"\nwith = { repodir = \"/srv\" }\n",
        );
        assert!(approval_job(&ungated, &ok_to_test("created", "/ok-to-test"), 0).is_none(), "no gated rule");
    }

    #[test]
    fn an_approvals_summary_names_what_it_released_and_what_still_waits() {
        let released =
            Released { released: vec![4, 5], left: vec![(6, "its event arrived after the approval".into())] };
        assert_eq!(
            approved("maintainer", 7, &"1".repeat(40), &released),
            "/ok-to-test by maintainer for #7 at 111111111111: queued job 4, 5; still waiting: job 6: its event \
             arrived after the approval"
        );
        // Whatever the forge answers as a head, the summary is made without panicking.
        let odd = approved("m", 7, "ééééééééééééé", &Released::default());
        assert_eq!(odd, "/ok-to-test by m for #7 at éééééééééééé: no job waited for that commit");
    }

    #[test]
    fn a_forks_job_runs_only_with_an_approval_of_its_head() {
        let mut event = ok_to_test("created", "/ok-to-test");
        event.kind = "pull_request".into();
        event.comment = None;
        event.command = None;
        event.pull_request = Some(PullRequest {
            number: 7,
            head: "a".repeat(40),
            source_repository: Some("mallory/widgets".into()),
            ..Default::default()
        });
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mut rule = Rule::new("ci", Vec::new(), Vec::new());
        let ran = |rule: &Rule, event: &Event, approved_head: Option<&str>| {
            fork_gate(rule, Job { id: 1, event, delivery_seq: 1, approved_head }).is_none()
        };
        rule.forks = Forks::Approve;
        assert!(ran(&rule, &event, Some(&a)), "approved for its head");
        assert!(!ran(&rule, &event, None), "never approved (a retried cancelled waiting job)");
        assert!(!ran(&rule, &event, Some(&b)), "approved for another head");
        rule.forks = Forks::Skip;
        assert!(!ran(&rule, &event, Some(&a)), "a rule that skips forks");
        rule.forks = Forks::Run;
        assert!(ran(&rule, &event, None), "a rule that runs forks");
        event.pull_request.as_mut().unwrap().source_repository = Some("acme/widgets".into());
        rule.forks = Forks::Approve;
        assert!(ran(&rule, &event, None), "no fork");
    }

    #[test]
    fn a_reply_shows_only_a_plain_command_name() {
        assert_eq!(shown_command("/deploy"), "/deploy");
        assert_eq!(shown_command("/ok-to-test"), "/ok-to-test");
        for hostile in ["/x[click](https://evil.example)", "/@admins", "/a\u{202e}txt", "/`code`", &"/x".repeat(40), ""]
        {
            assert_eq!(shown_command(hostile), "the command", "{hostile:?}");
        }
    }

    #[test]
    fn the_author_is_the_comments_else_the_sender() {
        let mut event = ok_to_test("created", "/deploy");
        event.sender = Some("bot".into());
        assert_eq!(author(&event), Some(("maintainer".into(), None)));
        event.comment = None;
        assert_eq!(author(&event), Some(("bot".into(), None)));
        event.sender = None;
        assert_eq!(author(&event), None);
    }
}
