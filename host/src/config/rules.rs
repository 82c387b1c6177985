//! `[[rules]]`: what a rule matches, its step chain with handlers, and their validation.
//! `docs/config.md` is the user's reference for everything here.

use super::raw::{self, RawRule, RawStep};
use super::{Checker, PluginSpec, toml_to_json, valid_name};
use crate::glob::{Filter, Glob};
use crate::template;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Event kinds a rule's `on` may name.
pub const EVENT_KINDS: &[&str] = &[
    "push",
    "tag",
    "pull_request",
    "release",
    "create",
    "delete",
    "comment",
    "review",
    "ping",
    "manual",
    "schedule",
    "check_run",
    "check_suite",
    "installation",
    "installation_repositories",
];

/// How a rule's jobs are shown on the forge (`report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A commit status (GitHub, GitLab, Gitea, Forgejo, Bitbucket).
    Status,
    /// A GitHub check run, with annotations.
    Check,
}

impl ReportKind {
    /// The name written in the config and stored with the job.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Status => "status",
            ReportKind::Check => "check",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [ReportKind::Status, ReportKind::Check].into_iter().find(|kind| kind.as_str() == name)
    }

    /// The forges that show this kind of report.
    pub fn forges(self) -> &'static [&'static str] {
        match self {
            ReportKind::Status => &["github", "gitlab", "gitea", "forgejo", "bitbucket"],
            ReportKind::Check => &["github"],
        }
    }
}

/// What a rule's `if` may read.
pub const RULE_CONDITION_VARIABLES: &[&str] = &["event", "payload"];
/// What a step's `if` and `with` templates may read.
pub const STEP_VARIABLES: &[&str] = &["event", "payload", "steps", "parent", "rule", "job"];

/// A rule's coalescing: at most one queued job per key; a newer event replaces the
/// queued job's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coalesce {
    /// Every event gets its own job.
    Off,
    /// Key: rule, repository and ref (the branch, the tag, or the pull request).
    Default,
    /// Key: the template with `{rule}`, `{source}`, `{repo}`, `{ref}`, `{branch}`, `{tag}`,
    /// `{kind}`, `{action}` and `{pr}` filled in.
    Template(String),
}

/// The largest `concurrency` a rule may set.
pub const MAX_CONCURRENCY: u32 = 10_000;

/// Placeholders a coalescing key template may use.
pub const COALESCE_PLACEHOLDERS: &[&str] = &["rule", "source", "repo", "ref", "branch", "tag", "kind", "action", "pr"];

/// What a `paths` filter does when an event's changed paths cannot be worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathsUnknown {
    /// Match, so no change is missed (the default).
    #[default]
    Match,
    /// Do not match.
    Skip,
}

/// `[[rules]]`: which events to act on and the steps to run.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name, shown in jobs and explanations.
    pub name: String,
    /// Event kinds (with optional actions) that select the rule.
    pub on: Vec<EventSelector>,
    /// Sources the rule listens to; empty for all.
    pub sources: Vec<String>,
    /// Forges the rule listens to; empty for all.
    pub forges: Vec<String>,
    /// Repository full names.
    pub repo: Filter,
    /// Branch names (`branch`, or the complement of `branch_ignore`).
    pub branch: RefFilter,
    /// Tag names (`tag`, or the complement of `tag_ignore`).
    pub tag: RefFilter,
    /// Changed paths (`paths`, or the complement of `paths_ignore`).
    pub paths: RefFilter,
    /// What the paths filter does when the changed paths are unknown.
    pub paths_unknown: PathsUnknown,
    /// Sender logins.
    pub sender: Filter,
    /// Command lines (`command = "/deploy *"`): when set, the rule matches only comments
    /// whose first line is a command these patterns pass.
    pub command: Filter,
    /// `if`: a condition over `event` and `payload`.
    pub condition: Option<String>,
    /// The step chain.
    pub steps: Vec<Step>,
    /// Handlers run after the chain, chosen by how it ended.
    pub handlers: Handlers,
    /// The whole job's time limit (each step also has its plugin's).
    pub timeout: Option<Duration>,
    /// Coalescing of queued jobs.
    pub coalesce: Coalesce,
    /// Extra attempts after a retryable failure.
    pub retries: u32,
    /// Wait before the first retry; doubled for each later one (at most an hour).
    pub retry_backoff: Duration,
    /// Also retry when a step reports failure (not only traps, deadlines, host errors
    /// and transient plugin errors).
    pub retry_failures: bool,
    /// How long a queued job waits for more events before it runs: each event coalesced
    /// into it starts the wait again, up to ten times this after the first (a burst of
    /// pushes runs once, at its end).
    pub quiet_period: Duration,
    /// Where its jobs run: on any node, on every live node, or on the named ones.
    pub run_on: crate::node::RunOn,
    /// At most this many of its jobs run at once, across every node sharing the queue
    /// (`None`: no limit beyond one job per checkout).
    pub concurrency: Option<u32>,
    /// Among claimable jobs, those of rules with a higher priority run first (default 0).
    pub priority: i64,
    /// When the rule is `on = "schedule"`: its clock and targets.
    pub schedule: Option<Schedule>,
    /// `report`: the job's progress and result shown on the commit (none: not reported).
    pub report: Option<ReportKind>,
    /// The level the event's author (a comment's author, else the sender) needs on the
    /// repository; asked of the forge when the job starts (`None`: anyone).
    pub permission: Option<super::gate::Permission>,
    /// What a pull request from a fork does.
    pub forks: super::gate::Forks,
}

impl Rule {
    /// A rule with `name`, `on` and `steps` and defaults for everything else.
    pub fn new(name: &str, on: Vec<EventSelector>, steps: Vec<Step>) -> Self {
        Self {
            name: name.to_owned(),
            on,
            sources: Vec::new(),
            forges: Vec::new(),
            repo: Filter::default(),
            branch: RefFilter::None,
            tag: RefFilter::None,
            paths: RefFilter::None,
            paths_unknown: PathsUnknown::Match,
            sender: Filter::default(),
            command: Filter::default(),
            condition: None,
            steps,
            handlers: Handlers::default(),
            timeout: None,
            coalesce: Coalesce::Default,
            retries: 0,
            retry_backoff: Duration::from_secs(30),
            retry_failures: false,
            quiet_period: Duration::ZERO,
            run_on: crate::node::RunOn::Any,
            concurrency: None,
            priority: 0,
            schedule: None,
            report: None,
            permission: None,
            forks: super::gate::Forks::Run,
        }
    }

    /// The checkout its jobs fill, when any step or handler asks for one (all that ask
    /// ask for the same: the config is refused otherwise).
    pub fn checkout(&self) -> Option<Checkout> {
        fn first(steps: &[Step]) -> Option<Checkout> {
            steps.iter().find_map(|step| {
                step.checkout.or_else(|| {
                    let handlers = &step.handlers;
                    first(&handlers.on_success).or(first(&handlers.on_failure)).or(first(&handlers.on_error))
                })
            })
        }
        let handlers = &self.handlers;
        first(&self.steps).or(first(&handlers.on_success)).or(first(&handlers.on_failure)).or(first(&handlers.on_error))
    }

    /// Whether the rule is started by `gitauto trigger` / `POST /api/events`.
    pub fn is_manual(&self) -> bool {
        self.on.iter().any(|selector| selector.kind == "manual")
    }
}

/// What a schedule rule runs for ticks that fell while no daemon was running (or while
/// the scheduler was held up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Missed ticks do not run.
    Skip,
    /// The latest missed tick runs, once (the default).
    #[default]
    Once,
    /// Every missed tick runs (at most [`crate::schedule::CATCH_UP_LIMIT`], the latest).
    All,
}

impl Missed {
    /// The name written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::Once => "once",
            Missed::All => "all",
        }
    }
}

/// A schedule rule's clock: when it ticks, in which time zone, what it does about
/// missed ticks, and the targets each tick makes an event for.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `cron`: when it ticks.
    pub cron: crate::cron::Cron,
    /// `timezone`: the zone `cron` is read in (default UTC).
    pub timezone: jiff::tz::TimeZone,
    /// The zone's name as written (`UTC` when none was).
    pub timezone_name: String,
    /// `missed`: what runs after ticks were missed.
    pub missed: Missed,
    /// One event per entry of each tick: the repository (`repo`) and branch (`branch`)
    /// it names; a single `(None, None)` when the rule names neither.
    pub targets: Vec<(Option<String>, Option<String>)>,
}

impl Schedule {
    /// The expression and zone together: ticks recorded under another spec (the rule's
    /// clock was changed) are not caught up.
    pub fn spec(&self) -> String {
        format!("{} @ {}", self.cron, self.timezone_name)
    }
}

/// A filter written as a list to include (`branch`) or a list to exclude (`branch_ignore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefFilter {
    /// Not filtered.
    None,
    /// Only what the list selects.
    Only(Filter),
    /// Everything the list does not select.
    Ignore(Filter),
}

impl RefFilter {
    /// Whether the rule filters on this at all.
    pub fn is_set(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Whether `candidate` passes.
    pub fn passes(&self, candidate: &str) -> bool {
        match self {
            Self::None => true,
            Self::Only(filter) => filter.matches(candidate),
            Self::Ignore(filter) => !filter.matches(candidate),
        }
    }
}

impl std::fmt::Display for RefFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("(any)"),
            Self::Only(filter) => write!(f, "{filter}"),
            Self::Ignore(filter) => write!(f, "ignore {filter}"),
        }
    }
}

/// One `on` entry: `push`, or `pull_request.opened`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSelector {
    /// Event kind.
    pub kind: String,
    /// Action, when the entry names one.
    pub action: Option<String>,
}

impl std::fmt::Display for EventSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.action {
            Some(action) => write!(f, "{}.{action}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

/// The deepest `checkout_depth` a rule or step may ask for (libgit2 takes an `i32`).
pub const MAX_CHECKOUT_DEPTH: u32 = i32::MAX as u32;

/// How the job's checkout is filled (`checkout = true` or `"merge"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// The event's commit: a push's `after`, a pull request's head.
    Head,
    /// A merge commit of a pull request's head into its target branch's tip.
    Merge,
}

/// A step's (or handler's) claim on the job's checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkout {
    /// What HEAD is.
    pub mode: CheckoutMode,
    /// Commits of history fetched from each tip (`0`: all of it).
    pub depth: u32,
}

impl std::fmt::Display for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            CheckoutMode::Head => f.write_str("checkout = true")?,
            CheckoutMode::Merge => f.write_str("checkout = \"merge\"")?,
        }
        write!(f, ", checkout_depth = {}", self.depth)
    }
}

/// One step of a rule, or a handler.
#[derive(Debug, Clone)]
pub struct Step {
    /// Name, unique within the rule: the plugin's for a step, `STEP.on_KIND.PLUGIN` or
    /// `on_KIND.PLUGIN` for a handler, unless `name` is given.
    pub name: String,
    /// Name of the `[plugins.NAME]` to run.
    pub plugin: String,
    /// The `with` table, as JSON; strings holding `{{`, `{%` or `{#` are templates.
    pub settings: serde_json::Value,
    /// `if`: run only when this condition holds.
    pub condition: Option<String>,
    /// Go on with the next step after this one's failure outcome.
    pub continue_on_failure: bool,
    /// Handlers run after this step, chosen by its outcome.
    pub handlers: Handlers,
    /// Whether it gets the job's checkout, and how that is filled.
    pub checkout: Option<Checkout>,
}

impl Step {
    /// A step running `plugin` with `settings`, named after the plugin.
    pub fn new(plugin: &str, settings: serde_json::Value) -> Self {
        Self {
            name: plugin.to_owned(),
            plugin: plugin.to_owned(),
            settings,
            condition: None,
            continue_on_failure: false,
            handlers: Handlers::default(),
            checkout: None,
        }
    }
}

/// `on_success`, `on_failure` and `on_error`: steps chosen by how something ended.
#[derive(Debug, Clone, Default)]
pub struct Handlers {
    /// After a success outcome.
    pub on_success: Vec<Step>,
    /// After a failure outcome (a plugin saying the work failed).
    pub on_failure: Vec<Step>,
    /// After a trap, a time limit, a host error or a plugin error, once no retry follows.
    pub on_error: Vec<Step>,
}

/// `on_success`, `on_failure` and `on_error` as written.
type RawHandlers = (Vec<Spanned<RawStep>>, Vec<Spanned<RawStep>>, Vec<Spanned<RawStep>>);

/// Where a step list sits, for names and for what its templates may read.
struct Place<'a> {
    rule: &'a str,
    /// Names of the steps that may already have run.
    earlier: Vec<String>,
    /// The step whose handlers these are (`None` for main steps and rule handlers).
    owner: Option<&'a str>,
    /// `on_success`, ... for handlers; `None` for main steps.
    kind: Option<&'static str>,
    /// Whether `parent` is defined for the first step of the list.
    has_parent: bool,
    /// The rule's `checkout` and `checkout_depth`, which its steps inherit.
    checkout: RuleCheckout,
}

/// A rule's `checkout` and `checkout_depth`, as its steps inherit them.
#[derive(Debug, Clone, Copy, Default)]
struct RuleCheckout {
    mode: Option<CheckoutMode>,
    depth: Option<u32>,
}

impl Checker<'_> {
    pub(super) fn rule(
        &mut self,
        raw: RawRule,
        span: Range<usize>,
        plugins: &BTreeMap<String, PluginSpec>,
    ) -> Option<Rule> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            self.problem(Some(raw.name.span()), "a rule needs a non-empty `name`");
        }
        let schedule = self.schedule(&name, &raw);
        let on = self.selectors(&name, raw.on);
        let sources = raw.source.map(|s| s.into_inner().into_vec()).unwrap_or_default();
        let forges = match raw.forge {
            None => Vec::new(),
            Some(forges) => {
                let span = forges.span();
                let forges = forges.into_inner().into_vec();
                for forge in &forges {
                    if !crate::forge::FORGES.iter().any(|known| known.name == forge) {
                        let names: Vec<&str> = crate::forge::FORGES.iter().map(|f| f.name).collect();
                        let hint = hint(forge, &names);
                        self.problem(
                            Some(span.clone()),
                            format!("rule \"{name}\": unknown forge `{forge}`{hint} (known: {})", names.join(", ")),
                        );
                    }
                }
                forges
            }
        };
        let repo = self.filter(&name, "repo", raw.repo);
        let branch = self.ref_filter(&name, ("branch", raw.branch), ("branch_ignore", raw.branch_ignore));
        let tag = self.ref_filter(&name, ("tag", raw.tag), ("tag_ignore", raw.tag_ignore));
        let paths = self.ref_filter(&name, ("paths", raw.paths), ("paths_ignore", raw.paths_ignore));
        let paths_unknown = match raw.paths_unknown {
            None => PathsUnknown::Match,
            Some(value) => match value.get_ref().as_str() {
                "match" => PathsUnknown::Match,
                "skip" => PathsUnknown::Skip,
                other => {
                    self.problem(
                        Some(value.span()),
                        format!("rule \"{name}\": `paths_unknown` is \"match\" or \"skip\", not \"{other}\""),
                    );
                    PathsUnknown::Match
                }
            },
        };
        let sender = self.filter(&name, "sender", raw.sender);
        let commands = raw
            .command
            .as_ref()
            .map(|patterns| (patterns.span(), patterns.get_ref().iter().cloned().collect::<Vec<String>>()));
        if let Some((span, patterns)) = &commands {
            self.command_patterns(&name, span, patterns, &on);
        }
        let command = self.filter(&name, "command", raw.command);
        let condition = raw.condition.map(|condition| {
            self.condition(&format!("rule \"{name}\": `if`"), &condition, RULE_CONDITION_VARIABLES, None);
            condition.into_inner()
        });
        if raw.steps.is_empty() {
            self.problem(Some(span), format!("rule \"{name}\" has no steps"));
        }
        let mut names = BTreeSet::new();
        let label = format!("rule \"{name}\"");
        let checkout = RuleCheckout {
            mode: raw.checkout.as_ref().and_then(|value| self.checkout_mode(&label, value)),
            depth: raw.checkout_depth.as_ref().and_then(|depth| self.checkout_depth(&label, depth)),
        };
        self.checkout_seen = None;
        let main = Place { rule: &name, earlier: Vec::new(), owner: None, kind: None, has_parent: false, checkout };
        let steps = self.steps(raw.steps, main, plugins, &mut names);
        let all_main: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
        let handlers = self.handlers(
            &name,
            (raw.on_success, raw.on_failure, raw.on_error),
            (None, checkout),
            &all_main,
            plugins,
            &mut names,
        );
        if let Some(depth) = &raw.checkout_depth
            && self.checkout_seen.is_none()
        {
            self.problem(
                Some(depth.span()),
                format!(
                    "{label}: `checkout_depth` has no effect: no step or handler of the rule asks for a checkout \
                     (add `checkout = true`)"
                ),
            );
        }
        let timeout = raw.timeout.as_ref().and_then(|d| self.duration(d));
        // Manual events are requests, each with its own parameters, and each tick of a
        // schedule is its own run: never merged unless asked.
        // So is each command: `/deploy staging` then `/deploy production` are two requests.
        let own_events =
            on.iter().any(|selector| matches!(selector.kind.as_str(), "manual" | "schedule")) || commands.is_some();
        let coalesce = match raw.coalesce {
            None if own_events => Coalesce::Off,
            raw => self.coalesce(&name, raw),
        };
        let retries = match raw.retries {
            None => 0,
            Some(n) if (0..=100).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                self.problem(Some(n.span()), format!("rule \"{name}\": `retries` must be between 0 and 100"));
                0
            }
        };
        let retry_backoff =
            raw.retry_backoff.as_ref().and_then(|d| self.duration(d)).unwrap_or(Duration::from_secs(30));
        let quiet_period = raw.quiet_period.as_ref().and_then(|d| self.duration(d)).unwrap_or(Duration::ZERO);
        let run_on = raw.run_on.map(|run_on| self.run_on(&name, run_on)).unwrap_or_default();
        let concurrency = match raw.concurrency {
            None => None,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(limit) if (1..=MAX_CONCURRENCY).contains(&limit) => Some(limit),
                _ => {
                    self.problem(
                        Some(n.span()),
                        format!(
                            "rule \"{name}\": `concurrency` must be between 1 and {MAX_CONCURRENCY}, not {} (it is how \
                             many of the rule's jobs may run at once; leave it out for no limit, pause the rule \
                             with `gitauto pause` to run none)",
                            n.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let priority = raw.priority.map_or(0, Spanned::into_inner);
        let report = raw.report.and_then(|value| match ReportKind::parse(value.get_ref()) {
            Some(kind) => Some(kind),
            None => {
                self.problem(
                    Some(value.span()),
                    format!("rule \"{name}\": `report` is \"status\" or \"check\", not \"{}\"", value.get_ref()),
                );
                None
            }
        });
        let (permission, forks) = self.gate(&name, raw.permission, raw.forks);
        Some(Rule {
            name,
            on,
            sources,
            forges,
            repo: repo?,
            branch: branch?,
            tag: tag?,
            paths: paths?,
            paths_unknown,
            sender: sender?,
            command: command?,
            condition,
            steps,
            handlers,
            timeout,
            coalesce,
            retries,
            retry_backoff,
            retry_failures: raw.retry_failures,
            quiet_period,
            run_on,
            concurrency,
            priority,
            schedule,
            report,
            permission,
            forks,
        })
    }

    /// `on = "schedule"` with `cron`, `timezone`, `missed`, and `repo`/`branch` as the
    /// targets of each tick. Reads `raw`'s filters without taking them: the same lists
    /// also filter the rule's events (each tick's events pass them by construction).
    fn schedule(&mut self, rule: &str, raw: &RawRule) -> Option<Schedule> {
        let on: Vec<&String> = raw.on.get_ref().iter().collect();
        let scheduled = on.iter().any(|kind| kind.split('.').next() == Some("schedule"));
        if !scheduled {
            for (key, span) in [
                ("cron", raw.cron.as_ref().map(Spanned::span)),
                ("timezone", raw.timezone.as_ref().map(Spanned::span)),
                ("missed", raw.missed.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    self.problem(
                        Some(span),
                        format!("rule \"{rule}\": `{key}` applies only to schedule rules; add `on = \"schedule\"`"),
                    );
                }
            }
            return None;
        }
        if on.len() > 1 || on.iter().any(|kind| kind.contains('.')) {
            self.problem(
                Some(raw.on.span()),
                format!(
                    "rule \"{rule}\": `on = \"schedule\"` stands alone (a schedule rule is started by its clock \
                     only); write another rule for other events"
                ),
            );
        }
        let forge_filters = [
            ("source", raw.source.as_ref().map(Spanned::span)),
            ("forge", raw.forge.as_ref().map(Spanned::span)),
            ("branch_ignore", raw.branch_ignore.as_ref().map(Spanned::span)),
            ("tag", raw.tag.as_ref().map(Spanned::span)),
            ("tag_ignore", raw.tag_ignore.as_ref().map(Spanned::span)),
            ("paths", raw.paths.as_ref().map(Spanned::span)),
            ("paths_ignore", raw.paths_ignore.as_ref().map(Spanned::span)),
            ("paths_unknown", raw.paths_unknown.as_ref().map(Spanned::span)),
            ("sender", raw.sender.as_ref().map(Spanned::span)),
        ];
        for (key, span) in forge_filters {
            if let Some(span) = span {
                self.problem(
                    Some(span),
                    format!(
                        "rule \"{rule}\": `{key}` filters events from forges; a schedule rule makes its own (name \
                         its targets with `repo` and `branch`)"
                    ),
                );
            }
        }
        let Some(cron_text) = &raw.cron else {
            self.problem(
                Some(raw.on.span()),
                format!(
                    "rule \"{rule}\": `on = \"schedule\"` needs `cron`, e.g. cron = \"0 3 * * *\" (daily at 03:00)"
                ),
            );
            return None;
        };
        let cron = match crate::cron::Cron::parse(cron_text.get_ref()) {
            Ok(cron) => Some(cron),
            Err(err) => {
                let at = self.inside_string(cron_text.span(), cron_text.get_ref(), err.at);
                self.problem(Some(at..at), format!("rule \"{rule}\": `cron`: {err}"));
                None
            }
        };
        let (timezone, timezone_name) = match &raw.timezone {
            None => (Some(jiff::tz::TimeZone::UTC), "UTC".to_owned()),
            Some(name) => match jiff::tz::TimeZone::get(name.get_ref()) {
                Ok(zone) => (Some(zone), name.get_ref().clone()),
                Err(_) => {
                    let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let hint = hint(name.get_ref(), &names);
                    self.problem(
                        Some(name.span()),
                        format!(
                            "rule \"{rule}\": unknown time zone `{}`{hint} (an IANA name such as \"Europe/Paris\", \
                             or \"UTC\")",
                            name.get_ref()
                        ),
                    );
                    (None, String::new())
                }
            },
        };
        let missed = match &raw.missed {
            None => Missed::default(),
            Some(value) => match value.get_ref().as_str() {
                "skip" => Missed::Skip,
                "once" => Missed::Once,
                "all" => Missed::All,
                other => {
                    self.problem(
                        Some(value.span()),
                        format!("rule \"{rule}\": `missed` is \"skip\", \"once\" or \"all\", not \"{other}\""),
                    );
                    Missed::default()
                }
            },
        };
        let repos = self.targets(rule, "repo", raw.repo.as_ref());
        let branches = self.targets(rule, "branch", raw.branch.as_ref());
        let mut targets = Vec::new();
        for repo in repos.iter().map(|r| Some(r.clone())).chain(repos.is_empty().then_some(None)) {
            for branch in branches.iter().map(|b| Some(b.clone())).chain(branches.is_empty().then_some(None)) {
                targets.push((repo.clone(), branch));
            }
        }
        Some(Schedule { cron: cron?, timezone: timezone?, timezone_name, missed, targets })
    }

    /// A schedule rule's `repo` or `branch`: names written out, each a target of every tick.
    fn targets(&mut self, rule: &str, key: &str, raw: Option<&Spanned<raw::OneOrMany<String>>>) -> Vec<String> {
        let Some(raw) = raw else { return Vec::new() };
        let mut names = Vec::new();
        for name in raw.get_ref().iter() {
            let why = if name.contains(['*', '?', '+', '[', ']', '\\', '!']) {
                Some("a schedule rule names its targets: write them out, without patterns".to_owned())
            } else {
                let mut event = crate::event::Event::default();
                if key == "repo" {
                    let (owner, short) = name.rsplit_once('/').unwrap_or_default();
                    event.repository.owner = owner.to_owned();
                    event.repository.name = short.to_owned();
                    event.repository.full_name = name.clone();
                } else {
                    event.branch = Some(name.clone());
                    event.git_ref = Some(format!("refs/heads/{name}"));
                }
                let shape = (key == "repo" && !name.contains('/')).then(|| "write it as OWNER/NAME".to_owned());
                shape.or_else(|| crate::event::names::check(&event).err().map(|err| err.why.to_owned()))
            };
            match why {
                Some(why) => self.problem(Some(raw.span()), format!("rule \"{rule}\": `{key}` \"{name}\": {why}")),
                None if names.contains(name) => {}
                None => names.push(name.clone()),
            }
        }
        names
    }

    /// Where byte `at` of `value`, written as the string at `span`, is in the file: exact
    /// for a one-line string without escapes, else the string's start.
    fn inside_string(&self, span: Range<usize>, value: &str, at: usize) -> usize {
        let written = self.text.get(span.clone()).unwrap_or_default();
        let plain =
            written.len() == value.len() + 2 && written.starts_with(['"', '\'']) && written[1..].starts_with(value);
        if plain { span.start + 1 + at } else { span.start }
    }

    /// `run_on`: `"any"`, `"every"`, or node names (one, or a list).
    fn run_on(&mut self, rule: &str, raw: Spanned<raw::OneOrMany<String>>) -> crate::node::RunOn {
        use crate::node::{RunOn, check_name};
        let span = raw.span();
        let names: Vec<String> = raw.into_inner().iter().cloned().collect();
        match names.as_slice() {
            [word] if word == "any" => RunOn::Any,
            [word] if word == "every" => RunOn::Every,
            [] => {
                self.problem(
                    Some(span),
                    format!("rule \"{rule}\": `run_on` names no node (write \"any\", \"every\" or node names)"),
                );
                RunOn::Any
            }
            _ => {
                for name in &names {
                    if name == "any" || name == "every" {
                        self.problem(
                            Some(span.clone()),
                            format!("rule \"{rule}\": `run_on` takes \"{name}\" alone, not in a list of nodes"),
                        );
                    } else if let Err(why) = check_name(name) {
                        self.problem(Some(span.clone()), format!("rule \"{rule}\": `run_on`: {why}"));
                    }
                }
                let mut unique = names;
                unique.sort();
                unique.dedup();
                RunOn::Nodes(unique)
            }
        }
    }

    /// `command`: patterns over the command line, which starts with `/`, on a rule that
    /// listens to comments.
    fn command_patterns(&mut self, rule: &str, span: &Range<usize>, patterns: &[String], on: &[EventSelector]) {
        for pattern in patterns {
            if !pattern.strip_prefix('!').unwrap_or(pattern).starts_with('/') {
                self.problem(
                    Some(span.clone()),
                    format!(
                        "rule \"{rule}\": `command` pattern \"{pattern}\" does not start with `/`, so no command \
                         matches it (a command is a comment's first line starting with `/`, e.g. \"/deploy *\")"
                    ),
                );
            }
        }
        if !on.iter().any(|selector| matches!(selector.kind.as_str(), "comment" | "review")) {
            self.problem(
                Some(span.clone()),
                format!(
                    "rule \"{rule}\": `command` matches commands given in comments, and the rule's `on` names no \
                     comment events (add on = \"comment\")"
                ),
            );
        }
    }

    fn selectors(&mut self, rule: &str, raw: Spanned<raw::OneOrMany<String>>) -> Vec<EventSelector> {
        let span = raw.span();
        let mut on = Vec::new();
        for text in raw.into_inner().into_vec() {
            let (kind, action) = match text.split_once('.') {
                Some((kind, action)) => (kind.to_owned(), Some(action.to_owned())),
                None => (text.clone(), None),
            };
            let known = EVENT_KINDS.contains(&kind.as_str()) || (self.custom_kinds && valid_name(&kind));
            if !known {
                let hint = hint(&kind, EVENT_KINDS);
                self.problem(
                    Some(span.clone()),
                    format!(
                        "rule \"{rule}\": unknown event kind `{kind}`{hint} (expected one of: {})",
                        EVENT_KINDS.join(", ")
                    ),
                );
            } else if action.as_deref().is_some_and(|a| !valid_name(a)) {
                self.problem(Some(span.clone()), format!("rule \"{rule}\": `{text}` has an invalid action"));
            }
            on.push(EventSelector { kind, action });
        }
        if on.is_empty() {
            self.problem(Some(span), format!("rule \"{rule}\": `on` names no event kind"));
        }
        on
    }

    /// Steps of one list (main steps or one kind of handlers), in order.
    fn steps(
        &mut self,
        raw: Vec<Spanned<RawStep>>,
        mut place: Place<'_>,
        plugins: &BTreeMap<String, PluginSpec>,
        names: &mut BTreeSet<String>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for (index, step) in raw.into_iter().enumerate() {
            let span = step.span();
            let step = step.into_inner();
            let plugin = step.plugin.get_ref().clone();
            let label = match (place.owner, place.kind) {
                (_, None) => format!("rule \"{}\", step {}", place.rule, index + 1),
                (Some(owner), Some(kind)) => format!("rule \"{}\", step `{owner}`, {kind} {}", place.rule, index + 1),
                (None, Some(kind)) => format!("rule \"{}\", {kind} {}", place.rule, index + 1),
            };
            if !plugins.contains_key(&plugin) {
                let defined: Vec<&str> = plugins.keys().map(String::as_str).collect();
                let hint = hint(&plugin, &defined);
                self.problem(
                    Some(step.plugin.span()),
                    format!(
                        "{label}: plugin `{plugin}` is not defined in [plugins]{hint} (defined: {})",
                        if defined.is_empty() { "none".to_owned() } else { defined.join(", ") }
                    ),
                );
            }
            let name = match (&step.name, place.owner, place.kind) {
                (Some(name), ..) => name.get_ref().clone(),
                (None, _, None) => plugin.clone(),
                (None, Some(owner), Some(kind)) => format!("{owner}.{kind}.{plugin}"),
                (None, None, Some(kind)) => format!("{kind}.{plugin}"),
            };
            if !names.insert(name.clone()) {
                self.problem(
                    Some(step.name.as_ref().map_or(span.clone(), Spanned::span)),
                    format!("{label}: two steps are named `{name}`; give one a `name`"),
                );
            }
            let (mut settings, settings_span) = match &step.settings {
                Some(table) => (self.settings(table.get_ref(), table.span(), &label), table.span()),
                None => (serde_json::json!({}), span.clone()),
            };
            // The plugin's own `with` fills in what the step leaves out.
            if let (Some(spec), Some(own)) = (plugins.get(&plugin), settings.as_object_mut()) {
                for (key, value) in &spec.settings {
                    own.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            let has_parent = place.has_parent || index > 0;
            let variables: Vec<&str> =
                STEP_VARIABLES.iter().copied().filter(|v| has_parent || *v != "parent").collect();
            for (key, text) in template::templates_in(&settings) {
                let at = self.find(settings_span.clone(), text);
                match template::check_template(text) {
                    Ok(reads) => {
                        if let Err(err) = template::check_reads(&reads, &variables, Some(&place.earlier)) {
                            let err = no_parent_hint(err, has_parent);
                            self.problem(Some(at), format!("{label}: `with.{key}`: {err}"));
                        }
                    }
                    Err(err) => self.problem(Some(at), format!("{label}: `with.{key}`: {err}")),
                }
            }
            let checkout = self.step_checkout((place.rule, &label), &step, place.checkout, span.clone());
            self.needs(&label, &plugin, &settings, plugins, (settings_span, span.clone()), checkout.is_some());
            let condition = step.condition.map(|condition| {
                self.condition(&format!("{label}: `if`"), &condition, &variables, Some(&place.earlier));
                condition.into_inner()
            });
            let mut with_self = place.earlier.clone();
            with_self.push(name.clone());
            let handlers = if place.kind.is_some() {
                let nested = !step.on_success.is_empty() || !step.on_failure.is_empty() || !step.on_error.is_empty();
                if nested {
                    self.problem(Some(span.clone()), format!("{label}: a handler cannot have handlers of its own"));
                }
                if step.continue_on_failure {
                    self.problem(
                        Some(span.clone()),
                        format!("{label}: `continue_on_failure` applies to steps, not handlers"),
                    );
                }
                Handlers::default()
            } else {
                let raw = (step.on_success, step.on_failure, step.on_error);
                self.handlers(place.rule, raw, (Some(&name), place.checkout), &with_self, plugins, names)
            };
            place.earlier = with_self;
            steps.push(Step {
                name,
                plugin,
                settings,
                condition,
                continue_on_failure: step.continue_on_failure,
                handlers,
                checkout,
            });
        }
        steps
    }

    /// The three handler lists of a step (`owner`) or of the rule.
    fn handlers(
        &mut self,
        rule: &str,
        (on_success, on_failure, on_error): RawHandlers,
        (owner, checkout): (Option<&str>, RuleCheckout),
        earlier: &[String],
        plugins: &BTreeMap<String, PluginSpec>,
        names: &mut BTreeSet<String>,
    ) -> Handlers {
        let mut list = |checker: &mut Self, raw, kind| {
            let place = Place { rule, earlier: earlier.to_vec(), owner, kind: Some(kind), has_parent: true, checkout };
            checker.steps(raw, place, plugins, names)
        };
        Handlers {
            on_success: list(self, on_success, "on_success"),
            on_failure: list(self, on_failure, "on_failure"),
            on_error: list(self, on_error, "on_error"),
        }
    }

    /// `checkout` as written on a rule or step: the mode it asks for (`None` for `false`).
    fn checkout_mode(&mut self, label: &str, value: &Spanned<raw::CheckoutValue>) -> Option<CheckoutMode> {
        match value.get_ref() {
            raw::CheckoutValue::Switch(true) => Some(CheckoutMode::Head),
            raw::CheckoutValue::Switch(false) => None,
            raw::CheckoutValue::Mode(mode) if mode == "merge" => Some(CheckoutMode::Merge),
            raw::CheckoutValue::Mode(other) => {
                self.problem(
                    Some(value.span()),
                    format!(
                        "{label}: `checkout` is true, false or \"merge\", not \"{other}\" (true checks out the \
                         event's commit; \"merge\" a pull request merged into its target branch)"
                    ),
                );
                None
            }
        }
    }

    /// `checkout_depth` as written on a rule or step.
    fn checkout_depth(&mut self, label: &str, depth: &Spanned<i64>) -> Option<u32> {
        match u32::try_from(*depth.get_ref()) {
            Ok(depth) if depth <= MAX_CHECKOUT_DEPTH => Some(depth),
            _ => {
                self.problem(
                    Some(depth.span()),
                    format!(
                        "{label}: `checkout_depth` is a number of commits from 1 to {MAX_CHECKOUT_DEPTH}, or 0 for \
                         all of history, not {}",
                        depth.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A step's checkout: its own `checkout` and `checkout_depth`, else the rule's. Every
    /// step of a rule that asks must ask for the same one: a job has one checkout.
    fn step_checkout(
        &mut self,
        (rule_name, label): (&str, &str),
        step: &RawStep,
        rule: RuleCheckout,
        span: Range<usize>,
    ) -> Option<Checkout> {
        let mode = match &step.checkout {
            Some(value) => self.checkout_mode(label, value),
            None => rule.mode,
        };
        let own_depth = step.checkout_depth.as_ref().and_then(|depth| self.checkout_depth(label, depth));
        let Some(mode) = mode else {
            if let Some(depth) = &step.checkout_depth {
                self.problem(
                    Some(depth.span()),
                    format!(
                        "{label}: `checkout_depth` needs a checkout; add `checkout = true` to the step or the rule"
                    ),
                );
            }
            return None;
        };
        let checkout = Checkout { mode, depth: own_depth.or(rule.depth).unwrap_or(1) };
        match &self.checkout_seen {
            None => self.checkout_seen = Some((label.to_owned(), checkout)),
            Some((first, seen)) if *seen != checkout => {
                let at = step
                    .checkout
                    .as_ref()
                    .map(Spanned::span)
                    .or_else(|| step.checkout_depth.as_ref().map(Spanned::span))
                    .unwrap_or(span);
                let message = format!(
                    "{label}: asks for `{checkout}`, but {} asks for `{seen}`; a job has one checkout, shared by \
                     every step that asks for it",
                    first.strip_prefix(&format!("rule \"{rule_name}\", ")).unwrap_or(first)
                );
                self.problem(Some(at), message);
            }
            Some(_) => {}
        }
        Some(checkout)
    }

    fn condition(&mut self, label: &str, text: &Spanned<String>, variables: &[&str], steps: Option<&[String]>) {
        let result = template::check_condition(text.get_ref())
            .and_then(|reads| template::check_reads(&reads, variables, steps).map_err(|e| e.to_string()));
        if let Err(err) = result {
            self.problem(Some(text.span()), format!("{label}: {err}"));
        }
    }

    /// Where `needle` is written inside `span` of the file, or the span itself.
    fn find(&self, span: Range<usize>, needle: &str) -> Range<usize> {
        // The first line of the value as written (escapes may differ further on).
        let probe: String = needle.chars().take_while(|c| *c != '\n' && *c != '\\' && *c != '"').take(40).collect();
        let haystack = self.text.get(span.clone()).unwrap_or_default();
        match haystack.find(&probe) {
            Some(at) if !probe.is_empty() => span.start + at..span.start + at + probe.len(),
            _ => span,
        }
    }

    /// Checks what a built-in plugin needs from its grants against the step's settings,
    /// and, for one that works in the job's checkout, that the step has one or names a
    /// directory of its own.
    fn needs(
        &mut self,
        label: &str,
        plugin: &str,
        settings: &serde_json::Value,
        plugins: &BTreeMap<String, PluginSpec>,
        (settings_span, step_span): (Range<usize>, Range<usize>),
        has_checkout: bool,
    ) {
        let Some(spec) = plugins.get(plugin) else { return };
        let super::WasmSource::Builtin(builtin) = &spec.wasm else { return };
        for need in crate::builtin::needs(builtin) {
            if let Err(err) = need.check(settings, &spec.grant) {
                self.problem(Some(settings_span.clone()), format!("{label}: {err}"));
            }
        }
        if let Some(setting) = crate::builtin::checkout_or(builtin)
            && !has_checkout
            && settings.get(setting).is_none()
        {
            self.problem(
                Some(step_span),
                format!(
                    "{label}: `{builtin}` works in the job's checkout: add `checkout = true` (to the step or its \
                     rule), or set `with.{setting}` to a directory of the plugin's grants"
                ),
            );
        }
    }

    fn coalesce(&mut self, rule: &str, raw: Option<Spanned<raw::CoalesceValue>>) -> Coalesce {
        let Some(value) = raw else { return Coalesce::Default };
        let span = value.span();
        match value.into_inner() {
            raw::CoalesceValue::Switch(true) => Coalesce::Default,
            raw::CoalesceValue::Switch(false) => Coalesce::Off,
            raw::CoalesceValue::Template(template) => {
                if let Err(err) = check_key_template(&template) {
                    self.problem(Some(span), format!("rule \"{rule}\": `coalesce`: {err}"));
                }
                Coalesce::Template(template)
            }
        }
    }

    pub(super) fn filter(
        &mut self,
        rule: &str,
        key: &str,
        patterns: Option<Spanned<raw::OneOrMany<String>>>,
    ) -> Option<Filter> {
        let Some(patterns) = patterns else { return Some(Filter::default()) };
        let span = patterns.span();
        let patterns = patterns.into_inner().into_vec();
        let mut ok = true;
        for text in &patterns {
            if let Err(err) = Glob::new(text.strip_prefix('!').unwrap_or(text)) {
                self.problem(Some(span.clone()), format!("rule \"{rule}\": bad `{key}` pattern: {err}"));
                ok = false;
            }
        }
        match Filter::new(&patterns) {
            Ok(filter) => ok.then_some(filter),
            Err(err) => {
                if ok {
                    self.problem(Some(span), format!("rule \"{rule}\": bad `{key}` list: {err}"));
                }
                None
            }
        }
    }

    /// `KEY` or `KEY_ignore` (never both, as in GitHub Actions).
    fn ref_filter(
        &mut self,
        rule: &str,
        (only_key, only): (&str, Option<Spanned<raw::OneOrMany<String>>>),
        (ignore_key, ignore): (&str, Option<Spanned<raw::OneOrMany<String>>>),
    ) -> Option<RefFilter> {
        match (only, ignore) {
            (None, None) => Some(RefFilter::None),
            (Some(only), None) => self.filter(rule, only_key, Some(only)).map(RefFilter::Only),
            (None, Some(ignore)) => {
                let span = ignore.span();
                if ignore.get_ref().iter().any(|pattern| pattern.starts_with('!')) {
                    self.problem(
                        Some(span),
                        format!(
                            "rule \"{rule}\": `{ignore_key}` cannot hold `!` patterns; use `{only_key}` with `!` patterns instead"
                        ),
                    );
                    return None;
                }
                self.filter(rule, ignore_key, Some(ignore)).map(RefFilter::Ignore)
            }
            (Some(_), Some(ignore)) => {
                self.problem(
                    Some(ignore.span()),
                    format!(
                        "rule \"{rule}\": use `{only_key}` or `{ignore_key}`, not both; to exclude inside `{only_key}`, \
                         add `!` patterns to it (e.g. [\"main\", \"release/**\", \"!release/**-rc\"])"
                    ),
                );
                None
            }
        }
    }

    pub(super) fn settings(&mut self, table: &toml::Table, span: Range<usize>, label: &str) -> serde_json::Value {
        let mut failures = Vec::new();
        let value = toml_to_json(&toml::Value::Table(table.clone()), &mut failures);
        for err in failures {
            self.problem(Some(span.clone()), format!("{label}: {err}"));
        }
        value
    }
}

/// ` (did you mean `X`?)` when `word` looks like a typo of one of `candidates`.
pub(super) fn hint(word: &str, candidates: &[&str]) -> String {
    template::closest(word, candidates.iter().copied()).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

/// The message for a read a step's template may not make; reading `parent` where there
/// is none gets its own explanation.
fn no_parent_hint(err: template::UnknownRead, has_parent: bool) -> String {
    match err {
        template::UnknownRead::Variable { root, .. } if !has_parent && root == "parent" => {
            "`parent` is the step before; the first step has none".to_owned()
        }
        other => other.to_string(),
    }
}

/// Checks that a coalescing key template names only known placeholders.
fn check_key_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("a `{` is not closed")? + open;
        let name = &rest[open + 1..close];
        if !COALESCE_PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder `{{{name}}}` (known: {})", COALESCE_PLACEHOLDERS.join(", ")));
        }
        rest = &rest[close + 1..];
    }
    Ok(())
}
