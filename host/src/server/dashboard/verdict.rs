//! A rule's stored verdict in words a person reads: `route` records the first clause that
//! failed in a compact form (`branch `dev` not in [main, release/*]`); the delivery page
//! says it as a sentence (`branch `dev` does not match `main` or `release/*``). Reasons
//! this module does not know are shown as recorded.

/// The reason `route` recorded, as a sentence.
pub(super) fn plain(reason: &str) -> String {
    if let Some(words) = clause(reason) {
        return words;
    }
    reason.to_owned()
}

fn clause(reason: &str) -> Option<String> {
    // `source`, `forge`: lists of names.
    for (what, names) in [("source", "sources"), ("forge", "forges")] {
        if let Some((value, list)) = named(reason, what, " not in ") {
            let list = list.strip_prefix('[')?.strip_suffix(']')?;
            let each: Vec<String> = list.split(", ").map(|name| format!("`{name}`")).collect();
            return Some(format!("{what} `{value}` is not one of the rule's {names}: {}", either(&each)));
        }
    }
    if let Some((got, list)) = named(reason, "event", " not in on = ") {
        let list = list.strip_prefix('[')?.strip_suffix(']')?;
        let each: Vec<String> = list.split(", ").map(|name| format!("`{name}`")).collect();
        return Some(format!("the event is `{got}`, but the rule runs only on {}", either(&each)));
    }
    for (what, shown) in [("repo", "repository"), ("sender", "sender"), ("command", "command")] {
        if let Some((value, filter)) = named(reason, what, " not in ") {
            return Some(format!("{shown} `{value}` {}", not_matched(filter)?));
        }
    }
    for what in ["branch", "tag"] {
        if let Some((value, filter)) = named(reason, what, " not in ") {
            return Some(format!("{what} `{value}` {}", not_matched(filter)?));
        }
        if let Some((value, filter)) = named(reason, what, " is ignored by ") {
            return Some(format!(
                "{what} `{value}` matches {}, which the rule's {what}_ignore excludes",
                patterns(filter)?
            ));
        }
    }
    if let Some(rest) = reason.strip_prefix("no changed path passes paths ") {
        // The filter is written before the paths, which may hold anything.
        let (filter, changed) = match rest.strip_suffix(" (no paths changed)") {
            Some(filter) => (filter, None),
            None => {
                let (filter, changed) = rest.split_once(" (changed: ")?;
                (filter, Some(changed.strip_suffix(')')?))
            }
        };
        let (filter, ignore) = match filter.strip_prefix("ignore ") {
            Some(list) => (list, true),
            None => (filter, false),
        };
        let Some(changed) = changed else {
            return Some(format!("the push changed no paths, and the rule needs one in {}", patterns(filter)?));
        };
        return Some(if ignore {
            format!(
                "every one of the changed paths ({changed}) matches {}, which the rule's paths_ignore excludes",
                patterns(filter)?
            )
        } else {
            format!("none of the changed paths ({changed}) matches {}", patterns(filter)?)
        });
    }
    if let Some(rest) = reason.strip_prefix("paths filter not evaluated: ") {
        let why = rest.strip_suffix("; skipped (paths_unknown = \"skip\")")?;
        return Some(format!(
            "the changed paths could not be known ({why}), and the rule skips such events (paths_unknown = \"skip\")"
        ));
    }
    if let Some(condition) = reason.strip_prefix("`if` is false: ") {
        return Some(format!("its condition `{condition}` is false for this event"));
    }
    if let Some(err) = reason.strip_prefix("`if` failed: ") {
        return Some(format!("its condition could not be evaluated: {err}"));
    }
    if let Some(target) = reason.strip_prefix("manual event for rule ") {
        return Some(format!("the manual run was asked for rule {target}, not this one"));
    }
    if let Some(target) = reason.strip_prefix("schedule tick of rule ") {
        return Some(format!("the schedule tick belongs to rule {target}, not this one"));
    }
    None
}

/// `what `value`<separator>rest` split into value and rest.
fn named<'a>(reason: &'a str, what: &str, separator: &str) -> Option<(&'a str, &'a str)> {
    let rest = reason.strip_prefix(what)?.strip_prefix(" `")?;
    let (value, rest) = rest.split_once(&format!("`{separator}"))?;
    Some((value, rest))
}

/// "does not match `a` or `b`", or, when the list excludes some, "is not selected by …".
fn not_matched(filter: &str) -> Option<String> {
    let list = filter.strip_prefix('[')?.strip_suffix(']')?;
    if list.split(", ").any(|p| p.starts_with('!')) {
        Some(format!("is not selected by {}", patterns(filter)?))
    } else {
        Some(format!("does not match {}", patterns(filter)?))
    }
}

/// `[a, !b, c]` as "`a` or `c` (except `b`)".
fn patterns(filter: &str) -> Option<String> {
    let list = filter.strip_prefix('[')?.strip_suffix(']')?;
    let (excluded, included): (Vec<&str>, Vec<&str>) = list.split(", ").partition(|p| p.starts_with('!'));
    let included: Vec<String> = included.iter().map(|p| format!("`{p}`")).collect();
    let excluded: Vec<String> = excluded.iter().map(|p| format!("`{}`", &p[1..])).collect();
    Some(match (included.is_empty(), excluded.is_empty()) {
        (_, true) => either(&included),
        (true, false) => format!("anything except {}", either(&excluded)),
        (false, false) => format!("{} except {}", either(&included), either(&excluded)),
    })
}

/// "`a`", "`a` or `b`", "`a`, `b` or `c`".
fn either(items: &[String]) -> String {
    match items {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    /// Every clause kind `route` records, as it records it, and the sentence shown.
    #[test]
    fn every_clause_route_records_reads_as_a_sentence() {
        let rows: &[(&str, &str)] = &[
            ("source `gitlab` not in [github]", "source `gitlab` is not one of the rule's sources: `github`"),
            (
                "forge `gitea` not in [github, gitlab]",
                "forge `gitea` is not one of the rule's forges: `github` or `gitlab`",
            ),
            (
                "event `push` not in on = [pull_request.opened]",
                "the event is `push`, but the rule runs only on `pull_request.opened`",
            ),
            (
                "event `tag` not in on = [push, issue_comment]",
                "the event is `tag`, but the rule runs only on `push` or `issue_comment`",
            ),
            ("repo `evil/w` not in [acme/*]", "repository `evil/w` does not match `acme/*`"),
            (
                "repo `acme/secret` not in [**, !acme/secret]",
                "repository `acme/secret` is not selected by `**` except `acme/secret`",
            ),
            ("sender `mallory` not in [alice, bob]", "sender `mallory` does not match `alice` or `bob`"),
            ("command `/deploy` not in [/test*]", "command `/deploy` does not match `/test*`"),
            ("branch `feature/x` not in [main]", "branch `feature/x` does not match `main`"),
            ("branch `dev` not in [main, release/*]", "branch `dev` does not match `main` or `release/*`"),
            ("tag `v1-rc` not in [v*, !v*-rc]", "tag `v1-rc` is not selected by `v*` except `v*-rc`"),
            (
                "branch `wip` is ignored by [wip, tmp/*]",
                "branch `wip` matches `wip` or `tmp/*`, which the rule's branch_ignore excludes",
            ),
            (
                "tag `nightly` is ignored by [nightly]",
                "tag `nightly` matches `nightly`, which the rule's tag_ignore excludes",
            ),
            (
                "no changed path passes paths [docs/**] (changed: src/a.rs, Cargo.toml)",
                "none of the changed paths (src/a.rs, Cargo.toml) matches `docs/**`",
            ),
            (
                "no changed path passes paths ignore [docs/**] (changed: docs/a.md)",
                "every one of the changed paths (docs/a.md) matches `docs/**`, which the rule's paths_ignore excludes",
            ),
            (
                "no changed path passes paths [docs/**] (changed: a (1).md)",
                "none of the changed paths (a (1).md) matches `docs/**`",
            ),
            (
                "no changed path passes paths [docs/**] (no paths changed)",
                "the push changed no paths, and the rule needs one in `docs/**`",
            ),
            (
                "paths filter not evaluated: the push has more than 2048 commits; skipped (paths_unknown = \"skip\")",
                "the changed paths could not be known (the push has more than 2048 commits), and the rule skips such \
                 events (paths_unknown = \"skip\")",
            ),
            (
                "`if` is false: event.sender == \"bot\"",
                "its condition `event.sender == \"bot\"` is false for this event",
            ),
            ("`if` failed: unknown filter `nope`", "its condition could not be evaluated: unknown filter `nope`"),
            ("manual event for rule \"deploy\"", "the manual run was asked for rule \"deploy\", not this one"),
            ("schedule tick of rule \"nightly\"", "the schedule tick belongs to rule \"nightly\", not this one"),
            // Already sentences: shown as recorded.
            (
                "the event names no sender, and the rule filters senders [alice]",
                "the event names no sender, and the rule filters senders [alice]",
            ),
            (
                "the pull request comes from the fork `x/y`, and the rule has forks = \"skip\"",
                "the pull request comes from the fork `x/y`, and the rule has forks = \"skip\"",
            ),
            ("something new", "something new"),
        ];
        for (recorded, shown) in rows {
            assert_eq!(plain(recorded), *shown, "{recorded}");
        }
    }

    /// The sentences are built from what `route` writes today: a change of its words
    /// shows up here rather than as raw text on the page.
    #[test]
    fn route_reasons_are_translated() {
        use crate::config::Config;
        use crate::event::{Event, Repository};
        let step = "steps = [{ plugin = \"p\", with = { repodir = \"/srv\" } }]";
        let text = format!(
            "[plugins.p]\nwasm = \"builtin:fetch-update\"\ngrants = {{ dirs = [{{ path = \"/srv\", git = true }}] }}\n\
             [sources.github]\nforge = \"github\"\nsecret = \"x\"\n\
             [[rules]]\nname = \"main only\"\non = \"push\"\nbranch = \"main\"\n{step}\n\
             [[rules]]\nname = \"prs\"\non = \"pull_request\"\n{step}\n\
             [[rules]]\nname = \"acme\"\non = \"push\"\nrepo = \"acme/*\"\n{step}\n"
        );
        let config = Config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let (branch, tag) = crate::event::split_ref("refs/heads/feature/x");
        let event = Event {
            source: "github".into(),
            forge: "github".into(),
            kind: "push".into(),
            repository: Repository {
                owner: "o".into(),
                name: "r".into(),
                full_name: "o/r".into(),
                ..Default::default()
            },
            git_ref: Some("refs/heads/feature/x".into()),
            branch,
            tag,
            commits_complete: true,
            ..Event::default()
        };
        let shown: Vec<String> = crate::route::explain(&config, &event).iter().map(|v| plain(&v.reason)).collect();
        assert_eq!(
            shown,
            [
                "branch `feature/x` does not match `main`",
                "the event is `push`, but the rule runs only on `pull_request`",
                "repository `o/r` does not match `acme/*`",
            ]
        );
    }
}
