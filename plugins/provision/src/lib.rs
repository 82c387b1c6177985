//! `provision`: orcoursetrion's course provisioning through the GitHub API, run from
//! manual events (`gitauto trigger provision action=create_xml_repo course=8.01r
//! term=2027_Spring`). Repositories are named `<prefix>-<course without dots>-<term>`.
//! The API token is the host's (a `credential` on the API host's grant); the plugin
//! only ever sees the answers.

mod github;

use gitauto_plugin::{Error, Event, Outcome, Plugin, log, settings};
use github::{Committer, Failure, GitHub};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The step's `with` table: where and how to provision, and optionally the request
/// itself. Request keys missing here are taken from the manual event's parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// GitHub's API (Enterprise: `https://HOST/api/v3`).
    #[serde(default = "defaults::api_url")]
    api_url: String,
    /// Repository name prefix.
    #[serde(default = "defaults::course_prefix")]
    course_prefix: String,
    /// Organisation of Studio export repositories.
    #[serde(default = "defaults::studio_org")]
    studio_org: String,
    /// Team given every Studio export repository.
    #[serde(default = "defaults::studio_deploy_team")]
    studio_deploy_team: String,
    /// Organisation of XML course repositories.
    #[serde(default = "defaults::xml_org")]
    xml_org: String,
    /// Team given every XML course repository.
    #[serde(default = "defaults::xml_deploy_team")]
    xml_deploy_team: String,
    /// Web hook for staging (new XML courses).
    staging_hook_url: Option<String>,
    /// Web hook for production (released courses).
    production_hook_url: Option<String>,
    /// Secret the web hooks are signed with (the receiving gitauto source's).
    hook_secret: Option<String>,
    /// Who commits the files provisioning adds.
    #[serde(default = "defaults::committer_name")]
    committer_name: String,
    /// Their email.
    #[serde(default = "defaults::committer_email")]
    committer_email: String,
    // The request (see [`Request`]).
    action: Option<String>,
    course: Option<String>,
    term: Option<String>,
    new_term: Option<String>,
    description: Option<String>,
    team: Option<String>,
    #[serde(default, deserialize_with = "settings::list_or_text")]
    members: Option<Vec<String>>,
    org: Option<String>,
    #[serde(default, deserialize_with = "settings::bool_or_text")]
    read_only: Option<bool>,
}

impl Settings {
    /// The request keys given in `with`.
    fn request(&self) -> Request {
        Request {
            action: self.action.clone(),
            course: self.course.clone(),
            term: self.term.clone(),
            new_term: self.new_term.clone(),
            description: self.description.clone(),
            team: self.team.clone(),
            members: self.members.clone(),
            org: self.org.clone(),
            read_only: self.read_only,
        }
    }
}

mod defaults {
    pub fn api_url() -> String {
        "https://api.github.com".into()
    }
    pub fn course_prefix() -> String {
        "content-mit".into()
    }
    pub fn studio_org() -> String {
        "MITx-Studio2LMS".into()
    }
    pub fn studio_deploy_team() -> String {
        "mitx-studio-export".into()
    }
    pub fn xml_org() -> String {
        "mitx".into()
    }
    pub fn xml_deploy_team() -> String {
        "mitx-content-deployment".into()
    }
    pub fn committer_name() -> String {
        "gitauto".into()
    }
    pub fn committer_email() -> String {
        "gitauto@localhost".into()
    }
}

/// What to do: orcoursetrion's command-line parameters. A manual trigger's `key=value`
/// parameters are text: `read_only=true` and `members=ann,bob` read as a boolean and a
/// list. Other parameters (`repo`, `branch`, ...) are the event's, not the plugin's.
#[derive(Debug, Default, Clone, Deserialize)]
struct Request {
    action: Option<String>,
    course: Option<String>,
    term: Option<String>,
    new_term: Option<String>,
    description: Option<String>,
    team: Option<String>,
    #[serde(default, deserialize_with = "settings::list_or_text")]
    members: Option<Vec<String>>,
    org: Option<String>,
    #[serde(default, deserialize_with = "settings::bool_or_text")]
    read_only: Option<bool>,
}

impl Request {
    /// `self`, with what it lacks taken from `other`.
    fn or(self, other: Request) -> Request {
        Request {
            action: self.action.or(other.action),
            course: self.course.or(other.course),
            term: self.term.or(other.term),
            new_term: self.new_term.or(other.new_term),
            description: self.description.or(other.description),
            team: self.team.or(other.team),
            members: self.members.or(other.members),
            org: self.org.or(other.org),
            read_only: self.read_only.or(other.read_only),
        }
    }

    fn need<'a>(&'a self, value: &'a Option<String>, name: &str) -> Result<&'a str, Error> {
        value.as_deref().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Error::invalid_settings(format!(
                "`{name}` is required for `{}`",
                self.action.as_deref().unwrap_or("this action")
            ))
        })
    }
}

/// What the step hands to later steps.
#[derive(Debug, Default, Serialize)]
struct Report {
    action: String,
    org: String,
    repo: String,
    html_url: Option<String>,
    hooks_removed: Option<usize>,
    team: Option<String>,
    members_added: Vec<String>,
    members_removed: Vec<String>,
}

const ACTIONS: &[&str] = &[
    "create_export_repo",
    "rerun_studio",
    "release_studio",
    "create_xml_repo",
    "rerun_xml",
    "release_xml",
    "put_team",
];

struct Provision;

impl Plugin for Provision {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        // Every parameter reaches the request, or the step names the one it cannot use
        // (issue 19: one unreadable parameter used to drop them all).
        let from_event: Request = match event.payload.trim() {
            "" | "null" => Request::default(),
            payload => gitauto_plugin::settings::parse(payload)?,
        };
        let request = settings.request().or(from_event);
        let action = request.need(&request.action, "action")?.to_owned();
        if !ACTIONS.contains(&action.as_str()) {
            return Err(Error::invalid_settings(format!(
                "unknown action `{action}` (actions: {})",
                ACTIONS.join(", ")
            )));
        }
        let github = GitHub::new(&settings.api_url);
        match run(&github, &settings, &request, &action) {
            Ok((summary, report)) => {
                log::info(&summary);
                Ok(Outcome::success(summary).with_output(&report))
            }
            Err(Failure::Call(err)) => Err(err),
            Err(failure) => {
                let summary = format!("{action} failed: {}", failure.message());
                log::error(&summary);
                Ok(Outcome::failure(summary)
                    .with_output(&json!({"error": failure.kind(), "message": failure.message()})))
            }
        }
    }
}

/// `<prefix>-<course without dots>-<term>`.
fn repo_name(prefix: &str, course: &str, term: &str) -> String {
    format!("{prefix}-{}-{term}", course.replace('.', ""))
}

fn run(github: &GitHub, settings: &Settings, request: &Request, action: &str) -> Result<(String, Report), Failure> {
    let course = || request.need(&request.course, "course").map_err(Failure::Call);
    let term = || request.need(&request.term, "term").map_err(Failure::Call);
    let description = request.description.clone().unwrap_or_default();
    let committer = Committer { name: settings.committer_name.clone(), email: settings.committer_email.clone() };
    let hook = |url: &Option<String>, which: &str| -> Result<String, Failure> {
        url.clone().ok_or_else(|| Failure::Call(Error::invalid_settings(format!("`{which}` is not set"))))
    };
    let mut report = Report { action: action.to_owned(), ..Report::default() };
    let html_url = |repo: &Value| repo["html_url"].as_str().map(str::to_owned);
    let summary = match action {
        "create_export_repo" => {
            let (org, repo) = (&settings.studio_org, repo_name(&settings.course_prefix, course()?, term()?));
            let created = github.create_repo(org, &repo, &description)?;
            github.add_team_repo(org, &repo, &settings.studio_deploy_team)?;
            add_gitignore(github, org, &repo, &committer)?;
            let (course, term) = (course()?, term()?);
            let course_xml = format!("<course url_name=\"{term}\" org=\"MITx\" course=\"{course}\"/>\n");
            let message = format!("initial commit of course.xml with term \"{term}\"");
            github.add_repo_file(org, &repo, &committer, &message, "course.xml", &course_xml)?;
            report.html_url = html_url(&created);
            (report.org, report.repo) = (org.clone(), repo);
            format!("Newly created repository for exports created at {}", report.html_url.as_deref().unwrap_or("?"))
        }
        "rerun_studio" => {
            let new_term = request.need(&request.new_term, "new_term")?;
            let (course, term) = (course()?, term()?);
            let org = &settings.studio_org;
            let old = repo_name(&settings.course_prefix, course, term);
            let new = repo_name(&settings.course_prefix, course, new_term);
            report.hooks_removed = Some(github.delete_web_hooks(org, &old)?);
            let created = github.create_repo(org, &new, &description)?;
            github.add_team_repo(org, &new, &settings.studio_deploy_team)?;
            add_gitignore(github, org, &new, &committer)?;
            report.html_url = html_url(&created);
            (report.org, report.repo) = (org.clone(), new);
            format!(
                "Web hooks removed from old repository and newly created repository for exports created at {}",
                report.html_url.as_deref().unwrap_or("?")
            )
        }
        "release_studio" | "release_xml" => {
            let org = if action == "release_studio" { &settings.studio_org } else { &settings.xml_org };
            let repo = repo_name(&settings.course_prefix, course()?, term()?);
            let url = hook(&settings.production_hook_url, "production_hook_url")?;
            github.add_web_hook(org, &repo, &url, settings.hook_secret.as_deref())?;
            (report.org, report.repo) = (org.clone(), repo);
            "Added production Web hooks to course".to_owned()
        }
        "create_xml_repo" => {
            let org = &settings.xml_org;
            let repo = repo_name(&settings.course_prefix, course()?, term()?);
            let url = hook(&settings.staging_hook_url, "staging_hook_url")?;
            let created = github.create_repo(org, &repo, &description)?;
            github.add_team_repo(org, &repo, &settings.xml_deploy_team)?;
            let team = request.team.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| repo.clone());
            let (added, removed) = github.put_team(org, &team, false, request.members.as_deref())?;
            github.add_team_repo(org, &repo, &team)?;
            github.add_web_hook(org, &repo, &url, settings.hook_secret.as_deref())?;
            report.html_url = html_url(&created);
            (report.members_added, report.members_removed, report.team) = (added, removed, Some(team));
            (report.org, report.repo) = (org.clone(), repo);
            format!("Newly created repository for XML course created at {}", report.html_url.as_deref().unwrap_or("?"))
        }
        "rerun_xml" => {
            let org = &settings.xml_org;
            let repo = repo_name(&settings.course_prefix, course()?, term()?);
            let removed = github.delete_web_hooks(org, &repo)?;
            report.hooks_removed = Some(removed);
            (report.org, report.repo) = (org.clone(), repo);
            format!("Successfully removed {removed} hooks from course's repository.")
        }
        "put_team" => {
            let org = request.need(&request.org, "org")?;
            let team = request.need(&request.team, "team")?;
            let read_only = request.read_only.unwrap_or(false);
            let (added, removed) = github.put_team(org, team, read_only, request.members.as_deref())?;
            (report.members_added, report.members_removed, report.team) = (added, removed, Some(team.to_owned()));
            report.org = org.to_owned();
            "Team successfully modified/created.".to_owned()
        }
        _ => unreachable!("actions are checked before"),
    };
    Ok((summary, report))
}

fn add_gitignore(github: &GitHub, org: &str, repo: &str, committer: &Committer) -> Result<(), Failure> {
    github.add_repo_file(org, repo, committer, "Automatic .gitignore from gitauto", ".gitignore", "\ndrafts/\n")
}

gitauto_plugin::export!(Provision);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_orcoursetrion() {
        assert_eq!(repo_name("content-mit", "6.004r", "2015_Spring"), "content-mit-6004r-2015_Spring");
        assert_eq!(repo_name("content-mit", "8.01r", "2027_Spring"), "content-mit-801r-2027_Spring");
    }

    #[test]
    fn the_request_comes_from_with_then_the_event() {
        let with = Request { action: Some("put_team".into()), ..Request::default() };
        let event = Request { action: Some("rerun_xml".into()), course: Some("8.01r".into()), ..Request::default() };
        let merged = with.or(event);
        assert_eq!((merged.action.as_deref(), merged.course.as_deref()), (Some("put_team"), Some("8.01r")));
    }
}
