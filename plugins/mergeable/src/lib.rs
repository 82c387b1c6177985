//! `mergeable`: Hamster CI's mergeability check. Asks the host (the `git` capability's
//! `merge-check`, computed in memory) whether a pull request's head merges cleanly into
//! its target branch; success, or a failure listing the conflicting paths. It reads the
//! job's checkout by default, or a repository in a granted directory (`repodir`).

use gitauto_plugin::git::Repository;
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use serde::{Deserialize, Serialize};

/// The ref the host sets to the pull request's target branch tip in a job checkout.
const DEFAULT_BASE: &str = "refs/gitauto/target";
/// The checkout's HEAD: the pull request's head.
const DEFAULT_HEAD: &str = "HEAD";
/// Conflicting paths named in the summary at most (the output lists them all).
const SUMMARY_PATHS: usize = 10;

/// The step's `with` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The repository, instead of the job's checkout.
    pub repodir: Option<String>,
    /// What the head merges into (any revision), instead of `refs/gitauto/target`.
    pub base: Option<String>,
    /// What is merged (any revision), instead of `HEAD`.
    pub head: Option<String>,
}

/// The step's output.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Whether the head merges cleanly.
    pub mergeable: bool,
    /// The conflicting paths, sorted; empty when mergeable.
    pub conflicts: Vec<String>,
    /// The base's commit id.
    pub base: String,
    /// The head's commit id.
    pub head: String,
}

/// What to check, once the settings and the event are read.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The repository's path.
    pub repodir: String,
    /// The base revision.
    pub base: String,
    /// The head revision.
    pub head: String,
    /// How the base is named in the summary (the target branch when it is the default).
    pub target: String,
}

/// Decides what to check; `Ok(None)` when the event is not for this step. `checkout`
/// is the job checkout's path, when the step has one.
pub fn plan(event: &Event, settings: Settings, checkout: Option<String>) -> Result<Option<Plan>, Error> {
    let explicit = settings.base.is_some() && settings.head.is_some();
    if event.pull_request.is_none() && !explicit {
        return Ok(None);
    }
    let repodir = settings.repodir.or(checkout).ok_or_else(|| {
        Error::invalid_settings("no repository to check: give the step a checkout (`checkout = true`) or set `repodir`")
    })?;
    let target = match (&settings.base, &event.pull_request) {
        (Some(base), _) => base.strip_prefix("refs/heads/").unwrap_or(base).to_owned(),
        (None, Some(pr)) => pr.target_branch.clone(),
        (None, None) => DEFAULT_BASE.to_owned(),
    };
    Ok(Some(Plan {
        repodir,
        base: settings.base.unwrap_or_else(|| DEFAULT_BASE.to_owned()),
        head: settings.head.unwrap_or_else(|| DEFAULT_HEAD.to_owned()),
        target,
    }))
}

/// The outcome for a checked merge.
pub fn outcome(plan: &Plan, report: &Report) -> Outcome {
    if report.mergeable {
        return Outcome::success(format!("merges cleanly into {}", plan.target)).with_output(report);
    }
    let count = report.conflicts.len();
    let mut named = report.conflicts.iter().take(SUMMARY_PATHS).cloned().collect::<Vec<_>>().join(", ");
    if count > SUMMARY_PATHS {
        named.push_str(&format!(" and {} more", count - SUMMARY_PATHS));
    }
    let files = if count == 1 { "file" } else { "files" };
    Outcome::failure(format!("conflicts in {count} {files}: {named}")).with_output(report)
}

struct Mergeable;

impl Plugin for Mergeable {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let checkout = gitauto_plugin::checkout();
        let Some(plan) = plan(&event, settings, checkout)? else {
            return Ok(Outcome::skipped("not a pull request"));
        };
        let repo = Repository::open(&plan.repodir)?;
        let base = repo.resolve(&plan.base)?;
        let head = repo.resolve(&plan.head)?;
        // The resolved ids, so a ref moving between the calls cannot mix two states.
        let conflicts = repo.merge_check(&base, &head)?;
        let report = Report { mergeable: conflicts.is_empty(), conflicts, base, head };
        for path in &report.conflicts {
            log::warn(&format!("conflict: {path}"));
        }
        let outcome = outcome(&plan, &report);
        log::info(&outcome.summary);
        Ok(outcome)
    }
}

gitauto_plugin::export!(Mergeable);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Settings {
        gitauto_plugin::parse_settings(&json.to_string()).unwrap()
    }

    fn report(conflicts: &[&str]) -> Report {
        Report {
            mergeable: conflicts.is_empty(),
            conflicts: conflicts.iter().map(|c| (*c).to_owned()).collect(),
            base: "b".into(),
            head: "h".into(),
        }
    }

    fn plan_for(target: &str) -> Plan {
        Plan { repodir: "/r".into(), base: DEFAULT_BASE.into(), head: DEFAULT_HEAD.into(), target: target.into() }
    }

    #[test]
    fn summaries_name_the_target_or_the_conflicts() {
        let clean = outcome(&plan_for("main"), &report(&[]));
        assert_eq!(clean.summary, "merges cleanly into main");
        assert_eq!(clean.output, r#"{"mergeable":true,"conflicts":[],"base":"b","head":"h"}"#);
        assert_eq!(outcome(&plan_for("main"), &report(&["a"])).summary, "conflicts in 1 file: a");
        assert_eq!(outcome(&plan_for("main"), &report(&["a", "d/b"])).summary, "conflicts in 2 files: a, d/b");
        let many: Vec<String> = (0..12).map(|i| format!("f{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let summary = outcome(&plan_for("main"), &report(&many)).summary;
        assert!(
            summary.starts_with("conflicts in 12 files: f00, f01,") && summary.ends_with("f09 and 2 more"),
            "{summary}"
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(gitauto_plugin::parse_settings::<Settings>(r#"{"bsae": "main"}"#).is_err());
        assert_eq!(settings(serde_json::json!({"repodir": "/r"})).repodir.as_deref(), Some("/r"));
    }
}
