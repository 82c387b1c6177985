//! `comment`: Hamster CI's output step. Posts a comment, usually a template over an
//! earlier step's output, on the event's pull request (merge request) or commit,
//! through the forge's REST API: GitHub (and Enterprise), Gitea/Forgejo, GitLab. The
//! API token is the host's: grant the API host with a `credential`.

use gitauto_plugin::rest::Api;
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The comment (Markdown).
    body: String,
    /// What to comment on: `auto` (the pull request when the event has one, else the
    /// pushed commit), `pull_request` or `commit`.
    #[serde(default)]
    target: Target,
    /// The pull (merge) request number, instead of the event's.
    number: Option<u64>,
    /// The commit, instead of the event's `after`.
    commit: Option<String>,
    /// The forge's API (default: from the forge and the repository's web address).
    api_url: Option<String>,
    /// The forge (default: the event's).
    forge: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Target {
    #[default]
    Auto,
    PullRequest,
    Commit,
}

struct Comment;

impl Plugin for Comment {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let forge = settings.forge.clone().unwrap_or_else(|| event.forge.clone());
        let api_url = match &settings.api_url {
            Some(url) => url.clone(),
            None => default_api(&forge, &event.repository.html_url)?,
        };
        let api = Api::new(&api_url);
        let full_name = &event.repository.full_name;
        let number = settings.number.or(event.pull_request.as_ref().map(|pr| pr.number));
        let commit = settings.commit.clone().or_else(|| event.after.clone()).filter(|c| !is_null(c));
        let on_pr = match settings.target {
            Target::PullRequest => true,
            Target::Commit => false,
            Target::Auto => number.is_some(),
        };
        let (what, path, body) = if on_pr {
            let number = number.ok_or_else(|| {
                Error::invalid_settings("no pull request to comment on: the event has none; set `number`")
            })?;
            match forge.as_str() {
                "gitlab" => (
                    format!("merge request !{number}"),
                    format!("projects/{}/merge_requests/{number}/notes", encode(full_name)),
                    json!({"body": settings.body}),
                ),
                _ => (
                    format!("pull request #{number}"),
                    format!("repos/{full_name}/issues/{number}/comments"),
                    json!({"body": settings.body}),
                ),
            }
        } else {
            let commit = commit
                .ok_or_else(|| Error::invalid_settings("no commit to comment on: the event has none; set `commit`"))?;
            match forge.as_str() {
                "gitlab" => (
                    format!("commit {}", short(&commit)),
                    format!("projects/{}/repository/commits/{commit}/comments", encode(full_name)),
                    json!({"note": settings.body}),
                ),
                "gitea" | "forgejo" | "gogs" => {
                    return Ok(Outcome::failure(format!("{forge} has no API for commenting on commits")));
                }
                _ => (
                    format!("commit {}", short(&commit)),
                    format!("repos/{full_name}/commits/{commit}/comments"),
                    json!({"body": settings.body}),
                ),
            }
        };
        let reply = api.post(&path, &body)?;
        if reply.status != 201 && reply.status < 500 {
            let why = format!("comment on {what} of {full_name} not posted: HTTP {}: {}", reply.status, reply.text());
            log::error(&why);
            return Ok(Outcome::failure(why));
        }
        let posted = reply.expect(&[201])?.json()?;
        let url = posted.get("html_url").cloned().unwrap_or(Value::Null);
        log::info(&format!("commented on {what} of {full_name}"));
        Ok(Outcome::success(format!("commented on {what} of {full_name}")).with_output(&json!({"url": url})))
    }
}

/// The API base of a forge, from its repository's web address.
fn default_api(forge: &str, html_url: &str) -> Result<String, Error> {
    let origin = html_url
        .split_once("://")
        .and_then(|(scheme, rest)| Some(format!("{scheme}://{}", rest.split('/').next()?)))
        .filter(|origin| !origin.ends_with("://"));
    let origin = || {
        origin
            .clone()
            .ok_or_else(|| Error::invalid_settings(format!("cannot tell the API from `{html_url}`: set `api_url`")))
    };
    Ok(match forge {
        "github" if html_url.starts_with("https://github.com/") || html_url.is_empty() => {
            "https://api.github.com".into()
        }
        "github" => format!("{}/api/v3", origin()?),
        "gitlab" => format!("{}/api/v4", origin()?),
        "gitea" | "forgejo" | "gogs" => format!("{}/api/v1", origin()?),
        other => {
            return Err(Error::invalid_settings(format!(
                "no comment API for forge `{other}`: set `forge` and `api_url`"
            )));
        }
    })
}

/// A GitLab project path as one URL path segment.
fn encode(full_name: &str) -> String {
    full_name.replace('%', "%25").replace('/', "%2F")
}

fn is_null(commit: &str) -> bool {
    commit.is_empty() || commit.bytes().all(|b| b == b'0')
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

gitauto_plugin::export!(Comment);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_follow_the_forge_and_the_repository_address() {
        let rows = [
            ("github", "https://github.com/acme/w", "https://api.github.com"),
            ("github", "https://ghe.example.com/acme/w", "https://ghe.example.com/api/v3"),
            ("gitlab", "https://gitlab.example.com/group/sub/w", "https://gitlab.example.com/api/v4"),
            ("gitea", "http://git.local:3000/acme/w", "http://git.local:3000/api/v1"),
        ];
        for (forge, html, want) in rows {
            assert_eq!(default_api(forge, html).ok().as_deref(), Some(want), "{forge} {html}");
        }
        assert!(default_api("bitbucket", "https://bitbucket.org/a/b").is_err());
        assert_eq!(encode("group/sub/w"), "group%2Fsub%2Fw");
    }
}
