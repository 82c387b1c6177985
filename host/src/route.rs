//! Routing: an [`Event`] against the `[[rules]]`, giving for every rule whether it
//! matched and, if not, the first clause that failed. Rules are evaluated in file order
//! and every matching rule makes its own job.

pub mod glob;

use crate::config::{Coalesce, Config, Rule};
use crate::event::Event;
use crate::queue::NewJob;
use serde::Serialize;

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
}

/// Every rule's verdict, in rule order.
pub fn explain(config: &Config, event: &Event) -> Vec<Verdict> {
    config
        .rules
        .iter()
        .map(|rule| match mismatch(rule, event) {
            None => Verdict { rule: rule.name.clone(), matched: true, reason: String::new() },
            Some(reason) => Verdict { rule: rule.name.clone(), matched: false, reason },
        })
        .collect()
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

/// The first clause of `rule` that `event` fails, or `None` when the rule matches.
pub fn mismatch(rule: &Rule, event: &Event) -> Option<String> {
    if !rule.sources.is_empty() && !rule.sources.contains(&event.source) {
        return Some(format!("source `{}` not in [{}]", event.source, rule.sources.join(", ")));
    }
    let kind_matches = rule.on.iter().any(|selector| {
        selector.kind == event.kind && selector.action.as_ref().is_none_or(|a| event.action.as_ref() == Some(a))
    });
    if !kind_matches {
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
    ref_mismatch(rule, event)
}

/// Branch and tag filters. With both, either may match (as in GitHub Actions).
fn ref_mismatch(rule: &Rule, event: &Event) -> Option<String> {
    let (has_branch, has_tag) = (!rule.branch.is_empty(), !rule.tag.is_empty());
    if !has_branch && !has_tag {
        return None;
    }
    let branch_ok = has_branch && event.branch.as_deref().is_some_and(|b| rule.branch.matches(b));
    let tag_ok = has_tag && event.tag.as_deref().is_some_and(|t| rule.tag.matches(t));
    if branch_ok || tag_ok {
        return None;
    }
    Some(match (&event.branch, &event.tag) {
        (Some(branch), _) if has_branch => format!("branch `{branch}` not in {}", rule.branch),
        (Some(branch), _) => format!("branch `{branch}` pushed, but the rule filters tags only"),
        (_, Some(tag)) if has_tag => format!("tag `{tag}` not in {}", rule.tag),
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
            "[plugins.p]\nwasm = \"builtin:fetch-update\"\n[sources.github]\nforge = \"github\"\nsecret = \"x\"\n{rules}"
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

    const STEP: &str = "steps = [{ plugin = \"p\" }]";

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

    #[test]
    fn explain_lists_every_rule_in_order() {
        let config = config(&format!(
            "[[rules]]\nname = \"a\"\non = \"push\"\n{STEP}\n[[rules]]\nname = \"b\"\non = \"tag\"\n{STEP}\n"
        ));
        let verdicts = explain(&config, &event("push", "a/b", "refs/heads/main"));
        assert_eq!(
            verdicts,
            [
                Verdict { rule: "a".into(), matched: true, reason: String::new() },
                Verdict { rule: "b".into(), matched: false, reason: "event `push` not in on = [tag]".into() },
            ]
        );
    }
}
