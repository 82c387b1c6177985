//! Routing: an [`Event`] against the `[[rules]]`, giving for every rule whether it
//! matched and, if not, the first clause that failed. Rules are evaluated in file order
//! and every matching rule makes its own job; clauses are checked in the order
//! `source`, `forge`, `on`, `repo`, `sender`, `command`, `branch`/`tag`, `paths`, `if`.

pub mod paths;

use crate::config::gate::Forks;
use crate::config::{Coalesce, Config, PathsUnknown, RefFilter, Rule};
use crate::event::Event;
use crate::queue::NewJob;
use paths::ChangedPaths;
use serde::Serialize;
use std::cell::OnceCell;

/// One rule's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The rule's name.
    pub rule: String,
    /// Whether the rule matched.
    pub matched: bool,
    /// Why it did not match (empty when it did).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Something worth knowing about a match, e.g. a paths filter that could not be evaluated.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One event being routed, with what rules may need computed once: the condition
/// context and the changed paths.
pub struct Routing<'a> {
    config: &'a Config,
    event: &'a Event,
    payload: &'a dyn Fn() -> String,
    context: OnceCell<minijinja::Value>,
    paths: OnceCell<ChangedPaths>,
}

impl<'a> Routing<'a> {
    /// Routes `event`; `payload` gives the forge's payload as JSON text when a rule's
    /// `if` needs it.
    pub fn new(config: &'a Config, event: &'a Event, payload: &'a dyn Fn() -> String) -> Self {
        Self { config, event, payload, context: OnceCell::new(), paths: OnceCell::new() }
    }

    /// Every `[[rules]]` rule's verdict, in rule order.
    pub fn explain(&self) -> Vec<Verdict> {
        self.config.rules.iter().map(|rule| self.verdict(rule)).collect()
    }

    /// One rule's verdict.
    pub fn verdict(&self, rule: &Rule) -> Verdict {
        let (matched, reason, note) = match self.check(rule) {
            Ok(note) => (true, String::new(), note),
            Err(reason) => (false, reason, String::new()),
        };
        Verdict { rule: rule.name.clone(), matched, reason, note }
    }

    /// `Ok(note)` when `rule` matches, else the first clause that failed.
    fn check(&self, rule: &Rule) -> Result<String, String> {
        let event = self.event;
        if let Some(reason) = mismatch(rule, event) {
            return Err(reason);
        }
        let mut note = String::new();
        if rule.paths.is_set() {
            match self.paths.get_or_init(|| paths::changed_paths(event, &self.granted_dirs())) {
                ChangedPaths::Known(changed) => {
                    if !changed.iter().any(|path| rule.paths.passes(path)) {
                        return Err(format!("no changed path passes paths {} ({})", rule.paths, sample(changed)));
                    }
                }
                ChangedPaths::NotApplicable(why) => note = why.clone(),
                ChangedPaths::Unknown(why) => match rule.paths_unknown {
                    PathsUnknown::Match => {
                        note = format!("paths filter not evaluated: {why}; matched (paths_unknown = \"match\")")
                    }
                    PathsUnknown::Skip => {
                        return Err(format!("paths filter not evaluated: {why}; skipped (paths_unknown = \"skip\")"));
                    }
                },
            }
        }
        if let Some(condition) = &rule.condition {
            let context = self.context.get_or_init(|| condition_context(event, &(self.payload)()));
            match crate::template::eval_condition(condition, context) {
                Ok(true) => {}
                Ok(false) => return Err(format!("`if` is false: {condition}")),
                Err(err) => return Err(format!("`if` failed: {err}")),
            }
        }
        Ok(note)
    }

    /// Every directory any plugin is granted: where clones to compute paths from may be.
    fn granted_dirs(&self) -> Vec<crate::grant::DirGrant> {
        let mut dirs: Vec<_> = self.config.plugins.values().flat_map(|p| p.grant.dirs.iter().cloned()).collect();
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        dirs.dedup_by(|a, b| a.path == b.path);
        dirs
    }
}

/// What a rule's `if` sees: `event` (with `payload` as data) and `payload`.
pub fn condition_context(event: &Event, payload: &str) -> minijinja::Value {
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
    let event = crate::template::event_value(event, &payload);
    minijinja::Value::from_serialize(serde_json::json!({"event": event, "payload": payload}))
}

/// A few changed paths, for explanations.
fn sample(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = paths.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(", and {} more", paths.len() - SHOWN));
    }
    if paths.is_empty() { "no paths changed".into() } else { format!("changed: {text}") }
}

/// Every rule's verdict on an event whose payload no `if` needs (tests, tools).
pub fn explain(config: &Config, event: &Event) -> Vec<Verdict> {
    let payload = || event.payload.clone();
    Routing::new(config, event, &payload).explain()
}

/// The job a matching `rule` queues for event `event_index` of a delivery.
pub fn job(rule: &Rule, event: &Event, event_index: usize) -> NewJob {
    let repo = &event.repository.full_name;
    let git_ref = event.git_ref.as_deref().unwrap_or("");
    // Jobs with equal keys (same rule, repository and ref: the same checkout) never run at once.
    let key = format!("{}\n{repo}\n{git_ref}", rule.name);
    let coalesce_key = match &rule.coalesce {
        Coalesce::Off => None,
        Coalesce::Default => Some(key.clone()),
        // Prefixed with the rule: a queued job belongs to one rule's chain.
        Coalesce::Template(template) => Some(format!("{}\n{}", rule.name, fill(template, rule, event))),
    };
    NewJob {
        rule: rule.name.clone(),
        key,
        repo: repo.clone(),
        git_ref: event.git_ref.clone(),
        event_index,
        coalesce_key,
        max_attempts: 1 + i64::from(rule.retries),
        quiet_ms: i64::try_from(rule.quiet_period.as_millis()).unwrap_or(i64::MAX),
        run_on: rule.run_on.clone(),
        concurrency: rule.concurrency.map(i64::from),
        priority: rule.priority,
        report: rule.report,
        // A fork's code waits for a person with write permission to look at it.
        waiting: rule.forks == Forks::Approve && event.fork().is_some(),
    }
}

/// A coalescing key template with the event's values filled in.
fn fill(template: &str, rule: &Rule, event: &Event) -> String {
    let value = |name: &str| -> String {
        match name {
            "rule" => rule.name.clone(),
            "source" => event.source.clone(),
            "repo" => event.repository.full_name.clone(),
            "ref" => event.git_ref.clone().unwrap_or_default(),
            "branch" => event.branch.clone().unwrap_or_default(),
            "tag" => event.tag.clone().unwrap_or_default(),
            "kind" => event.kind.clone(),
            "action" => event.action.clone().unwrap_or_default(),
            "pr" => event.pull_request.as_ref().map(|pr| pr.number.to_string()).unwrap_or_default(),
            _ => String::new(),
        }
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| c + open) else { break };
        out.push_str(&rest[..open]);
        out.push_str(&value(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The first clause of `rule` that `event` fails among those needing nothing but the
/// event (all but `paths` and `if`), or `None` when they all pass.
pub fn mismatch(rule: &Rule, event: &Event) -> Option<String> {
    if !rule.sources.is_empty() && !rule.sources.contains(&event.source) {
        return Some(format!("source `{}` not in [{}]", event.source, rule.sources.join(", ")));
    }
    if !rule.forges.is_empty() && !rule.forges.contains(&event.forge) {
        return Some(format!("forge `{}` not in [{}]", event.forge, rule.forges.join(", ")));
    }
    let kind_matches = rule.on.iter().any(|selector| {
        selector.kind == event.kind
            && match selector.kind.as_str() {
                // A manual event, and a schedule tick, names the one rule it starts.
                "manual" | "schedule" => event.action.as_deref() == Some(rule.name.as_str()),
                _ => match &selector.action {
                    Some(action) => event.action.as_ref() == Some(action),
                    None => !is_label_change(event),
                },
            }
    });
    if !kind_matches {
        if is_label_change(event) && rule.on.iter().any(|s| s.kind == event.kind && s.action.is_none()) {
            let action = event.action.as_deref().unwrap_or_default();
            return Some(format!(
                "label change `{}.{action}` starts only rules whose `on` names it (e.g. on = \"{}.{action}\")",
                event.kind, event.kind
            ));
        }
        if event.kind == "manual" && rule.is_manual() {
            let target = event.action.as_deref().unwrap_or("");
            return Some(format!("manual event for rule \"{target}\""));
        }
        if event.kind == "schedule" && rule.schedule.is_some() {
            let target = event.action.as_deref().unwrap_or("");
            return Some(format!("schedule tick of rule \"{target}\""));
        }
        let on: Vec<String> = rule.on.iter().map(ToString::to_string).collect();
        let got = match &event.action {
            Some(action) => format!("{}.{action}", event.kind),
            None => event.kind.clone(),
        };
        return Some(format!("event `{got}` not in on = [{}]", on.join(", ")));
    }
    if !rule.repo.is_empty() && !rule.repo.matches(&event.repository.full_name) {
        return Some(format!("repo `{}` not in {}", event.repository.full_name, rule.repo));
    }
    if !rule.sender.is_empty() {
        match &event.sender {
            Some(sender) if rule.sender.matches(sender) => {}
            Some(sender) => return Some(format!("sender `{sender}` not in {}", rule.sender)),
            None => return Some(format!("the event names no sender, and the rule filters senders {}", rule.sender)),
        }
    }
    if let Some(reason) = command_mismatch(rule, event) {
        return Some(reason);
    }
    ref_mismatch(rule, event).or_else(|| fork_mismatch(rule, event))
}

/// `forks`: a pull request from a fork makes no job under `skip`, and under `approve`
/// only when its head commit is known (an approval names one commit).
fn fork_mismatch(rule: &Rule, event: &Event) -> Option<String> {
    let fork = event.fork()?;
    match rule.forks {
        Forks::Run => None,
        Forks::Skip => {
            Some(format!("the pull request comes from the fork `{fork}`, and the rule has forks = \"skip\""))
        }
        Forks::Approve if event.pull_request.as_ref().is_some_and(|pr| pr.head.is_empty()) => Some(format!(
            "the pull request comes from the fork `{fork}` and the event names no head commit to approve \
             (forks = \"approve\")"
        )),
        Forks::Approve => None,
    }
}

/// A pull request's `labeled` / `unlabeled`: routed only to rules that name the action,
/// so that rules written for `on = "pull_request"` do not start on every label change.
fn is_label_change(event: &Event) -> bool {
    event.kind == "pull_request" && matches!(event.action.as_deref(), Some("labeled" | "unlabeled"))
}

/// The `command` clause: the comment gives a command the patterns pass, in a created
/// comment (or an edited one when the rule names `comment.edited`).
fn command_mismatch(rule: &Rule, event: &Event) -> Option<String> {
    if rule.command.is_empty() {
        return None;
    }
    let Some(command) = &event.command else {
        return Some(match (&event.comment, event.action.as_deref()) {
            (None, _) => {
                format!("event `{}` has no comment, and the rule filters commands {}", event.kind, rule.command)
            }
            (Some(_), Some("deleted")) => "the comment was deleted: commands run from written comments".to_owned(),
            (Some(_), _) => format!(
                "the comment gives no command (its first line does not start with `/`), and the rule filters \
                 commands {}",
                rule.command
            ),
        });
    };
    let edited = event.action.as_deref() == Some("edited");
    if edited && !rule.on.iter().any(|s| s.kind == event.kind && s.action.as_deref() == Some("edited")) {
        return Some(format!(
            "the comment was edited, and a command runs again on an edit only when `on` names `{}.edited`",
            event.kind
        ));
    }
    if !rule.command.matches(&command.line) {
        return Some(format!("command `{}` not in {}", command.line, rule.command));
    }
    None
}

/// Branch and tag filters. With both, either may match (as in GitHub Actions); with
/// only one of them, events on the other kind of ref do not match.
fn ref_mismatch(rule: &Rule, event: &Event) -> Option<String> {
    let (has_branch, has_tag) = (rule.branch.is_set(), rule.tag.is_set());
    if !has_branch && !has_tag {
        return None;
    }
    let branch_ok = has_branch && event.branch.as_deref().is_some_and(|b| rule.branch.passes(b));
    let tag_ok = has_tag && event.tag.as_deref().is_some_and(|t| rule.tag.passes(t));
    if branch_ok || tag_ok {
        return None;
    }
    let described = |filter: &RefFilter| match filter {
        RefFilter::Ignore(list) => format!("is ignored by {list}"),
        other => format!("not in {other}"),
    };
    Some(match (&event.branch, &event.tag) {
        (Some(branch), _) if has_branch => format!("branch `{branch}` {}", described(&rule.branch)),
        (Some(branch), _) => format!("branch `{branch}` pushed, but the rule filters tags only"),
        (_, Some(tag)) if has_tag => format!("tag `{tag}` {}", described(&rule.tag)),
        (_, Some(tag)) => format!("tag `{tag}` pushed, but the rule filters branches only"),
        (None, None) => "the event has no branch or tag, and the rule filters on them".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(rules: &str) -> Config {
        let text = format!(
            "[plugins.p]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"/srv\", git = true }}] }}\n[sources.github]\nforge = \"github\"\nsecret = \"x\"\n{rules}"
        );
        Config::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn event(kind: &str, full_name: &str, git_ref: &str) -> Event {
        let (branch, tag) = crate::event::split_ref(git_ref);
        let (owner, name) = full_name.split_once('/').unwrap();
        Event {
            delivery: "d".into(),
            source: "github".into(),
            forge: "github".into(),
            kind: kind.into(),
            action: None,
            repository: crate::event::Repository {
                owner: owner.into(),
                name: name.into(),
                full_name: full_name.into(),
                ..Default::default()
            },
            git_ref: Some(git_ref.into()),
            branch,
            tag,
            commits_complete: true,
            ..Event::default()
        }
    }

    const STEP: &str = "steps = [{ plugin = \"p\", with = { repodir = \"/srv\" } }]";

    #[test]
    fn rule_table() {
        /// (rule clauses, (event kind, repository, ref), expected mismatch)
        type Row<'a> = (&'a str, (&'a str, &'a str, &'a str), Option<&'a str>);
        let rows: &[Row] = &[
            ("on = \"push\"", ("push", "acme/w", "refs/heads/main"), None),
            ("on = \"push\"", ("tag", "acme/w", "refs/tags/v1"), Some("event `tag` not in on = [push]")),
            ("on = [\"push\", \"tag\"]", ("tag", "acme/w", "refs/tags/v1"), None),
            ("on = \"push\"\nrepo = \"acme/*\"", ("push", "acme/w", "refs/heads/x"), None),
            (
                "on = \"push\"\nrepo = \"acme/*\"",
                ("push", "evil/w", "refs/heads/x"),
                Some("repo `evil/w` not in [acme/*]"),
            ),
            (
                "on = \"push\"\nrepo = [\"**\", \"!acme/secret\"]",
                ("push", "acme/secret", "refs/heads/x"),
                Some("repo `acme/secret` not in [**, !acme/secret]"),
            ),
            ("on = \"push\"\nbranch = [\"main\", \"release/*\"]", ("push", "a/b", "refs/heads/release/2"), None),
            (
                "on = \"push\"\nbranch = [\"main\", \"release/*\"]",
                ("push", "a/b", "refs/heads/dev"),
                Some("branch `dev` not in [main, release/*]"),
            ),
            (
                "on = \"tag\"\nbranch = \"main\"",
                ("tag", "a/b", "refs/tags/v1"),
                Some("tag `v1` pushed, but the rule filters branches only"),
            ),
            ("on = \"tag\"\ntag = \"v*\"", ("tag", "a/b", "refs/tags/v1"), None),
            (
                "on = \"tag\"\ntag = [\"v*\", \"!v*-rc\"]",
                ("tag", "a/b", "refs/tags/v1-rc"),
                Some("tag `v1-rc` not in [v*, !v*-rc]"),
            ),
            ("on = [\"push\", \"tag\"]\nbranch = \"main\"\ntag = \"v*\"", ("tag", "a/b", "refs/tags/v2"), None),
            ("on = \"push\"\nsource = \"github\"", ("push", "a/b", "refs/heads/main"), None),
            (
                "on = \"pull_request.opened\"",
                ("push", "a/b", "refs/heads/main"),
                Some("event `push` not in on = [pull_request.opened]"),
            ),
        ];
        for (clauses, (kind, repo, git_ref), want) in rows {
            let config = config(&format!("[[rules]]\nname = \"r\"\n{clauses}\n{STEP}\n"));
            let got = mismatch(&config.rules[0], &event(kind, repo, git_ref));
            assert_eq!(got.as_deref(), *want, "{clauses} / {kind} {repo} {git_ref}");
        }
    }

    /// An event for the matcher table: `paths` `None` means the forge listed no paths.
    struct Ev<'a> {
        kind: &'a str,
        action: Option<&'a str>,
        forge: &'a str,
        git_ref: &'a str,
        sender: Option<&'a str>,
        paths: Option<&'a [&'a str]>,
    }

    const PUSH: Ev<'static> = Ev {
        kind: "push",
        action: None,
        forge: "github",
        git_ref: "refs/heads/main",
        sender: Some("octocat"),
        paths: Some(&["src/a.rs"]),
    };

    fn build(ev: &Ev) -> Event {
        let mut event = event(ev.kind, "acme/widgets", ev.git_ref);
        event.forge = ev.forge.into();
        event.action = ev.action.map(str::to_owned);
        event.sender = ev.sender.map(str::to_owned);
        event.before = Some("1".repeat(40));
        event.after = Some("2".repeat(40));
        match ev.paths {
            Some(paths) => {
                let commit = crate::event::Commit {
                    modified: paths.iter().map(|p| (*p).to_owned()).collect(),
                    ..Default::default()
                };
                event.commits = vec![commit];
            }
            None => event.commits_complete = false,
        }
        event
    }

    #[test]
    fn matcher_table() {
        let docs: &[&str] = &["docs/index.md", "docs/api/x.md"];
        let mixed: &[&str] = &["docs/index.md", "src/lib.rs"];
        // (rule clauses, event, Ok(note) when it matches / Err(reason) when not)
        let rows: &[(&str, Ev, Result<&str, &str>)] = &[
            ("forge = \"github\"", PUSH, Ok("")),
            ("forge = [\"gitlab\", \"gitea\"]", PUSH, Err("forge `github` not in [gitlab, gitea]")),
            ("sender = \"octo*\"", PUSH, Ok("")),
            (
                "sender = [\"**\", \"!dependabot*\"]",
                Ev { sender: Some("dependabot[bot]"), ..PUSH },
                Err("sender `dependabot[bot]` not in [**, !dependabot*]"),
            ),
            (
                "sender = \"octocat\"",
                Ev { sender: None, ..PUSH },
                Err("the event names no sender, and the rule filters senders [octocat]"),
            ),
            ("branch_ignore = \"gh-pages\"", PUSH, Ok("")),
            (
                "branch_ignore = [\"gh-pages\", \"dependabot/**\"]",
                Ev { git_ref: "refs/heads/dependabot/npm/x", ..PUSH },
                Err("branch `dependabot/npm/x` is ignored by [gh-pages, dependabot/**]"),
            ),
            (
                "on = [\"push\", \"tag\"]\nbranch_ignore = \"gh-pages\"",
                Ev { kind: "tag", git_ref: "refs/tags/v1", ..PUSH },
                Err("tag `v1` pushed, but the rule filters branches only"),
            ),
            (
                "on = [\"push\", \"tag\"]\ntag_ignore = \"*-rc*\"",
                Ev { kind: "tag", git_ref: "refs/tags/v2-rc1", ..PUSH },
                Err("tag `v2-rc1` is ignored by [*-rc*]"),
            ),
            (
                "on = [\"push\", \"tag\"]\ntag_ignore = \"*-rc*\"",
                Ev { kind: "tag", git_ref: "refs/tags/v2", ..PUSH },
                Ok(""),
            ),
            ("paths = \"src/**\"", PUSH, Ok("")),
            ("paths = \"docs/**\"", PUSH, Err("no changed path passes paths [docs/**] (changed: src/a.rs)")),
            (
                "paths = [\"**\", \"!docs/**\"]",
                Ev { paths: Some(docs), ..PUSH },
                Err("no changed path passes paths [**, !docs/**] (changed: docs/api/x.md, docs/index.md)"),
            ),
            ("paths = [\"**\", \"!docs/**\"]", Ev { paths: Some(mixed), ..PUSH }, Ok("")),
            (
                "paths_ignore = \"docs/**\"",
                Ev { paths: Some(docs), ..PUSH },
                Err("no changed path passes paths ignore [docs/**] (changed: docs/api/x.md, docs/index.md)"),
            ),
            ("paths_ignore = \"docs/**\"", Ev { paths: Some(mixed), ..PUSH }, Ok("")),
            (
                "on = [\"push\", \"tag\"]\npaths = \"docs/**\"",
                Ev { kind: "tag", git_ref: "refs/tags/v1", paths: Some(&[]), ..PUSH },
                Ok("path filters do not apply to tags"),
            ),
            (
                "paths = \"docs/**\"",
                Ev { paths: None, ..PUSH },
                Ok(
                    "paths filter not evaluated: the payload lists no paths, and no clone of acme/widgets in a granted directory has both 111111111111 and 222222222222; matched (paths_unknown = \"match\")",
                ),
            ),
            (
                "paths = \"docs/**\"\npaths_unknown = \"skip\"",
                Ev { paths: None, ..PUSH },
                Err(
                    "paths filter not evaluated: the payload lists no paths, and no clone of acme/widgets in a granted directory has both 111111111111 and 222222222222; skipped (paths_unknown = \"skip\")",
                ),
            ),
            ("if = \"event.sender == 'octocat' and not event.deleted\"", PUSH, Ok("")),
            (
                "if = \"event.sender != 'octocat' or event.branch == 'dev'\"",
                PUSH,
                Err("`if` is false: event.sender != 'octocat' or event.branch == 'dev'"),
            ),
            ("if = \"payload.pull_request.draft\"", PUSH, Err("`if` is false: payload.pull_request.draft")),
            ("if = \"event.commits | length > 0\"", PUSH, Ok("")),
            ("on = \"pull_request.opened\"", Ev { kind: "pull_request", action: Some("opened"), ..PUSH }, Ok("")),
            (
                "on = \"pull_request.opened\"",
                Ev { kind: "pull_request", action: Some("closed"), ..PUSH },
                Err("event `pull_request.closed` not in on = [pull_request.opened]"),
            ),
            ("on = \"pull_request\"", Ev { kind: "pull_request", action: Some("closed"), ..PUSH }, Ok("")),
            ("on = \"manual\"", Ev { kind: "manual", action: Some("r"), ..PUSH }, Ok("")),
            (
                "on = \"manual\"",
                Ev { kind: "manual", action: Some("other"), ..PUSH },
                Err("manual event for rule \"other\""),
            ),
            (
                "on = \"schedule\"\ncron = \"0 3 * * *\"",
                Ev { kind: "schedule", action: Some("r"), git_ref: "", ..PUSH },
                Ok(""),
            ),
            (
                "on = \"schedule\"\ncron = \"0 3 * * *\"",
                Ev { kind: "schedule", action: Some("other"), git_ref: "", ..PUSH },
                Err("schedule tick of rule \"other\""),
            ),
            (
                "on = \"schedule\"\ncron = \"0 3 * * *\"\nrepo = [\"acme/widgets\", \"acme/gadgets\"]\nbranch = \"main\"",
                Ev { kind: "schedule", action: Some("r"), ..PUSH },
                Ok(""),
            ),
            (
                "on = \"push\"",
                Ev { kind: "schedule", action: Some("r"), git_ref: "", ..PUSH },
                Err("event `schedule.r` not in on = [push]"),
            ),
            (
                "on = \"manual\"",
                Ev { kind: "schedule", action: Some("r"), git_ref: "", ..PUSH },
                Err("event `schedule.r` not in on = [manual]"),
            ),
        ];
        for (clauses, ev, want) in rows {
            let clauses =
                if clauses.starts_with("on =") { clauses.to_string() } else { format!("on = \"push\"\n{clauses}") };
            let config = config(&format!("[[rules]]\nname = \"r\"\n{clauses}\n{STEP}\n"));
            let event = build(ev);
            let verdict = explain(&config, &event).remove(0);
            let got = if verdict.matched { Ok(verdict.note.as_str()) } else { Err(verdict.reason.as_str()) };
            assert_eq!(got, *want, "{clauses}");
        }
    }

    /// A comment event with `body` (and the command it gives, as the parsers fill it).
    fn comment(action: &str, body: &str) -> Event {
        let mut event = event("comment", "acme/widgets", "refs/pull/7/head");
        event.action = Some(action.into());
        event.branch = None;
        event.sender = Some("octocat".into());
        event.comment =
            Some(crate::event::Comment { body: body.into(), author: "octocat".into(), ..Default::default() });
        event.command = if action == "deleted" { None } else { crate::event::command::parse(body) };
        event
    }

    #[test]
    fn command_table() {
        /// (rule clauses, (comment action, body), expected mismatch)
        type Row<'a> = (&'a str, (&'a str, &'a str), Option<&'a str>);
        let rows: &[Row] = &[
            ("on = \"comment\"\ncommand = \"/deploy *\"", ("created", "/deploy staging"), None),
            ("on = \"comment\"\ncommand = \"/deploy *\"", ("created", "\n /deploy  staging\nthanks"), None),
            (
                "on = \"comment\"\ncommand = \"/deploy *\"",
                ("created", "/build staging"),
                Some("command `/build staging` not in [/deploy *]"),
            ),
            (
                "on = \"comment\"\ncommand = \"/deploy *\"",
                ("created", "/deploy feature/x"),
                Some("command `/deploy feature/x` not in [/deploy *]"),
            ),
            ("on = \"comment\"\ncommand = \"/deploy **\"", ("created", "/deploy feature/x"), None),
            (
                "on = \"comment\"\ncommand = [\"/deploy *\", \"!/deploy production\"]",
                ("created", "/deploy production"),
                Some("command `/deploy production` not in [/deploy *, !/deploy production]"),
            ),
            (
                "on = \"comment\"\ncommand = \"/deploy *\"",
                ("created", "Looks good. /deploy staging"),
                Some(
                    "the comment gives no command (its first line does not start with `/`), and the rule filters \
                     commands [/deploy *]",
                ),
            ),
            (
                "on = \"comment\"\ncommand = \"/deploy *\"",
                ("edited", "/deploy staging"),
                Some(
                    "the comment was edited, and a command runs again on an edit only when `on` names `comment.edited`",
                ),
            ),
            ("on = [\"comment\", \"comment.edited\"]\ncommand = \"/deploy *\"", ("edited", "/deploy staging"), None),
            (
                "on = \"comment\"\ncommand = \"/deploy *\"",
                ("deleted", "/deploy staging"),
                Some("the comment was deleted: commands run from written comments"),
            ),
            ("on = \"comment\"", ("deleted", "anything"), None),
            (
                "on = \"comment.created\"",
                ("edited", "/deploy x"),
                Some("event `comment.edited` not in on = [comment.created]"),
            ),
            ("on = \"comment\"\nsender = \"octo*\"\ncommand = \"/deploy *\"", ("created", "/deploy x"), None),
        ];
        for (clauses, (action, body), want) in rows {
            let config = config(&format!("[[rules]]\nname = \"r\"\n{clauses}\n{STEP}\n"));
            let verdict = explain(&config, &comment(action, body)).remove(0);
            let got = if verdict.matched { None } else { Some(verdict.reason.as_str()) };
            assert_eq!(got, *want, "{clauses} / {action} {body:?}");
        }
        let push = event("push", "acme/widgets", "refs/heads/main");
        let config =
            config(&format!("[[rules]]\nname = \"r\"\non = [\"push\", \"comment\"]\ncommand = \"/x\"\n{STEP}\n"));
        let verdict = explain(&config, &push).remove(0);
        assert_eq!(verdict.reason, "event `push` has no comment, and the rule filters commands [/x]");
    }

    #[test]
    fn label_changes_start_only_rules_that_name_them() {
        let mut labelled = event("pull_request", "acme/widgets", "refs/pull/7/head");
        labelled.action = Some("labeled".into());
        labelled.label = Some("deploy".into());
        let rows = [
            (
                "\"pull_request\"",
                Some(
                    "label change `pull_request.labeled` starts only rules whose `on` names it (e.g. on = \"pull_request.labeled\")",
                ),
            ),
            ("\"pull_request.labeled\"", None),
            ("[\"pull_request\", \"pull_request.labeled\"]", None),
            ("\"pull_request.unlabeled\"", Some("event `pull_request.labeled` not in on = [pull_request.unlabeled]")),
        ];
        for (on, want) in rows {
            let config =
                config(&format!("[[rules]]\nname = \"r\"\non = {on}\nif = \"event.label == 'deploy'\"\n{STEP}\n"));
            let verdict = explain(&config, &labelled).remove(0);
            assert_eq!(verdict.matched.then_some(()).map_or(Some(verdict.reason.as_str()), |()| None), want, "{on}");
        }
    }

    #[test]
    fn explain_lists_every_rule_in_order() {
        let config = config(&format!(
            "[[rules]]\nname = \"a\"\non = \"push\"\n{STEP}\n[[rules]]\nname = \"b\"\non = \"tag\"\n{STEP}\n"
        ));
        let verdicts = explain(&config, &event("push", "a/b", "refs/heads/main"));
        assert_eq!(
            verdicts,
            [
                Verdict { rule: "a".into(), matched: true, reason: String::new(), note: String::new() },
                Verdict {
                    rule: "b".into(),
                    matched: false,
                    reason: "event `push` not in on = [tag]".into(),
                    note: String::new(),
                },
            ]
        );
    }

    /// Issue 21: `forks` against pull requests from the repository itself and from forks.
    #[test]
    fn forks_run_wait_or_make_no_job() {
        let pull_request = |source: Option<&str>, head: &str| {
            let mut event = event("pull_request", "acme/w", "refs/pull/7/head");
            event.pull_request = Some(crate::event::PullRequest {
                number: 7,
                head: head.into(),
                target_branch: "main".into(),
                source_repository: source.map(str::to_owned),
                ..Default::default()
            });
            event
        };
        let head = "a".repeat(40);
        /// (forks, the head's repository, head, Ok(waits) or Err(reason))
        type Row<'a> = (&'a str, Option<&'a str>, &'a str, Result<bool, &'a str>);
        let rows: &[Row] = &[
            ("run", Some("evil/w"), &head, Ok(false)),
            ("approve", None, &head, Ok(false)),
            ("approve", Some("acme/w"), &head, Ok(false)),
            ("approve", Some("evil/w"), &head, Ok(true)),
            (
                "approve",
                Some("evil/w"),
                "",
                Err("the pull request comes from the fork `evil/w` and the event names no head commit to approve \
                     (forks = \"approve\")"),
            ),
            ("skip", None, &head, Ok(false)),
            (
                "skip",
                Some("evil/w"),
                &head,
                Err("the pull request comes from the fork `evil/w`, and the rule has forks = \"skip\""),
            ),
        ];
        for (forks, source, head, want) in rows {
            let text = format!(
                "[plugins.p]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"/srv\", git = true }}] }}\n\
                 [sources.github]\nforge = \"github\"\nsecret = \"x\"\napi = {{ token = \"t\" }}\n\
                 [[rules]]\nname = \"r\"\non = \"pull_request\"\nforks = \"{forks}\"\n{STEP}\n"
            );
            let config = Config::parse(Path::new("t.toml"), &text).unwrap();
            let event = pull_request(*source, head);
            let verdict = explain(&config, &event).remove(0);
            let got = if verdict.matched {
                Ok(job(&config.rules[0], &event, 0).waiting)
            } else {
                Err(verdict.reason.as_str())
            };
            assert_eq!(got, *want, "forks = {forks}, from {source:?}");
        }
    }
}
