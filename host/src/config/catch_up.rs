//! A source's `catch_up` (a forge API that lists the deliveries its hooks sent) and
//! `poll` (repositories whose refs are compared with what was last seen): validated here,
//! run by `crate::catch_up`.

use super::raw::{RawCatchUp, RawPoll};
use super::{Checker, Secret, secret};
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// How often catch-up and polling run when the config does not say.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(300);
/// The shortest interval accepted: forges rate-limit their APIs.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// `catch_up = { ... }`: where to list the deliveries this source's hooks sent.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// The forge's API root, without a trailing `/` (GitHub `https://api.github.com`,
    /// GitLab `https://gitlab.example.com/api/v4`).
    pub api_url: String,
    /// The token sent to the API (GitHub as `Authorization: Bearer`, GitLab as
    /// `PRIVATE-TOKEN`); never logged or stored.
    pub credential: Secret,
    /// The repositories (GitLab: project paths) whose hooks are read.
    pub repos: Vec<String>,
    /// How often, after the pass at start.
    pub every: Duration,
    /// The URL the forge's hook posts to; none: any hook whose URL ends with
    /// `/hooks/<source name>`.
    pub hook_url: Option<String>,
}

/// `poll = { ... }`: repositories whose branches and tags are listed (as `git ls-remote`
/// does) and compared with what the previous poll saw.
#[derive(Debug, Clone)]
pub struct Poll {
    /// How often, after the poll at start.
    pub every: Duration,
    /// The repositories, each with where it is listed from.
    pub repos: Vec<PolledRepo>,
}

/// One polled repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledRepo {
    /// Its full name, as events name it (`owner/name`).
    pub repo: String,
    /// Where its refs are listed from: `clone_url` with `{repo}` replaced.
    pub url: String,
}

/// Forges whose API lists what their hooks delivered.
const CATCH_UP_FORGES: &[&str] = &["github", "gitlab"];

impl Checker<'_> {
    /// Validates a source's `catch_up` table.
    pub(super) fn catch_up(
        &mut self,
        source: &str,
        forge: &str,
        raw: Spanned<RawCatchUp>,
        base: &Path,
    ) -> Option<CatchUp> {
        let span = raw.span();
        let raw = raw.into_inner();
        if !CATCH_UP_FORGES.contains(&forge) {
            self.problem(
                Some(span),
                format!(
                    "source \"{source}\": `catch_up` works with forge github and gitlab only; {forge} has no API \
                     that lists what its hooks delivered; use `poll` to notice pushes that did not arrive"
                ),
            );
            return None;
        }
        let default_api = if forge == "gitlab" { "https://gitlab.com/api/v4" } else { "https://api.github.com" };
        let api_url = match &raw.api_url {
            None => Some(default_api.to_owned()),
            Some(url) => self.expand(url).and_then(|text| {
                api_url(&text, "catch_up.api_url")
                    .map_err(|why| self.problem(Some(url.span()), format!("source \"{source}\": {why}")))
                    .ok()
            }),
        };
        let credential = self.expand(&raw.credential).and_then(|text| {
            secret::resolve(&text, base)
                .map_err(|err| {
                    self.problem(
                        Some(raw.credential.span()),
                        format!("source \"{source}\": `catch_up.credential`: {err}"),
                    )
                })
                .ok()
        });
        let repos = self.repos(source, "catch_up", &raw.repos);
        let every = self.every(source, "catch_up", raw.every.as_ref());
        let hook_url = raw.hook_url.as_ref().and_then(|url| {
            let text = self.expand(url)?;
            match url::Url::parse(&text) {
                Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => Some(text),
                _ => {
                    self.problem(
                        Some(url.span()),
                        format!("source \"{source}\": `catch_up.hook_url` must be the http(s) URL the forge posts to"),
                    );
                    None
                }
            }
        });
        Some(CatchUp { api_url: api_url?, credential: credential?, repos: repos?, every: every?, hook_url })
    }

    /// Validates a source's `poll` table.
    pub(super) fn poll(&mut self, source: &str, raw: Spanned<RawPoll>) -> Option<Poll> {
        let table = raw.into_inner();
        let every = self.every(source, "poll", table.every.as_ref());
        let repos = self.repos(source, "poll", &table.repos);
        let template = self.expand(&table.clone_url);
        let template = template.and_then(|text| {
            let checked = clone_url(&text, "owner/name");
            match checked {
                Ok(()) if text.contains("{repo}") => Some(text),
                Ok(()) => {
                    self.problem(
                        Some(table.clone_url.span()),
                        format!(
                            "source \"{source}\": `poll.clone_url` must contain `{{repo}}`, where each repository's \
                             name goes (e.g. \"https://git.example.com/{{repo}}.git\")"
                        ),
                    );
                    None
                }
                Err(why) => {
                    self.problem(Some(table.clone_url.span()), format!("source \"{source}\": `poll.clone_url`: {why}"));
                    None
                }
            }
        });
        let (every, repos, template) = (every?, repos?, template?);
        let repos = repos.into_iter().map(|repo| PolledRepo { url: template.replace("{repo}", &repo), repo }).collect();
        Some(Poll { every, repos })
    }

    fn every(&mut self, source: &str, key: &str, raw: Option<&Spanned<super::raw::DurationValue>>) -> Option<Duration> {
        let Some(raw) = raw else { return Some(DEFAULT_EVERY) };
        let every = self.duration(raw)?;
        if every < MIN_EVERY {
            self.problem(Some(raw.span()), format!("source \"{source}\": `{key}.every` must be at least 1s"));
            return None;
        }
        Some(every)
    }

    fn repos(&mut self, source: &str, key: &str, raw: &Spanned<Vec<String>>) -> Option<Vec<String>> {
        if raw.get_ref().is_empty() {
            self.problem(Some(raw.span()), format!("source \"{source}\": `{key}.repos` lists no repositories"));
            return None;
        }
        let mut repos = Vec::new();
        for repo in raw.get_ref() {
            if !repo_name(repo) {
                self.problem(
                    Some(raw.span()),
                    format!(
                        "source \"{source}\": `{key}.repos`: `{repo}` is not a repository's full name (`owner/name`, \
                         GitLab `group/subgroup/name`)"
                    ),
                );
                continue;
            }
            repos.push(repo.clone());
        }
        (repos.len() == raw.get_ref().len()).then_some(repos)
    }
}

/// An API root: https, or http to a loopback address (the credential is sent to it).
/// `key` names the setting in messages.
pub(super) fn api_url(text: &str, key: &str) -> Result<String, String> {
    let parsed = url::Url::parse(text).map_err(|err| format!("`{key}` is not a URL: {err}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(format!("`{key}` must be https (the credential is sent to it)")),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(format!("`{key}` must be the API's root, with no user, `?` or `#` part"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Whether `clone_url`, with `{repo}` replaced by `sample`, is a remote the daemon may
/// list: https, http, or a local repository (as `grant::remote` reads it). Not
/// ssh: polling offers no credentials, and an ssh server always asks for some.
fn clone_url(template: &str, sample: &str) -> Result<(), String> {
    use crate::grant::remote::{self, Remote};
    match remote::parse(&template.replace("{repo}", sample)).map_err(|denied| denied.0)? {
        Remote::Network(network) if network.scheme == "ssh" => {
            Err("an ssh URL cannot be polled (polling offers no credentials); use the https URL".into())
        }
        _ => Ok(()),
    }
}

/// `owner/name` (GitLab: `group/subgroup/name`): path segments of plain characters.
fn repo_name(repo: &str) -> bool {
    let segments: Vec<&str> = repo.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;
    use std::time::Duration;

    fn parse(source: &str) -> Result<Config, String> {
        Config::parse(Path::new("gitauto.toml"), source).map_err(|err| err.to_string())
    }

    #[test]
    fn catch_up_and_poll_load_with_their_defaults() {
        let config = parse(
            "[sources.gh]\nforge = \"github\"\nsecret = \"s\"\n\
             catch_up = { credential = \"t0ken\", repos = [\"acme/widgets\"] }\n\
             [sources.lab]\nforge = \"gitlab\"\nsecret = \"s\"\n\
             catch_up = { api_url = \"https://git.example.com/api/v4/\", credential = \"t\", repos = [\"g/sub/p\"], every = \"90s\" }\n\
             [sources.tea]\nforge = \"gitea\"\nsecret = \"s\"\n\
             poll = { every = \"1m\", repos = [\"acme/widgets\"], clone_url = \"https://git.example.com/{repo}.git\" }\n",
        )
        .unwrap();
        let github = config.source("gh").unwrap().catch_up.clone().unwrap();
        assert_eq!(github.api_url, "https://api.github.com");
        assert_eq!((github.every, github.credential.expose()), (Duration::from_secs(300), "t0ken"));
        let gitlab = config.source("lab").unwrap().catch_up.clone().unwrap();
        assert_eq!(
            (gitlab.api_url.as_str(), gitlab.every),
            ("https://git.example.com/api/v4", Duration::from_secs(90))
        );
        let poll = config.source("tea").unwrap().poll.clone().unwrap();
        assert_eq!(poll.every, Duration::from_secs(60));
        assert_eq!(poll.repos[0].url, "https://git.example.com/acme/widgets.git");
        assert!(!format!("{config:?}").contains("t0ken"), "the credential is never shown");
    }

    #[test]
    fn bad_catch_up_and_poll_settings_are_explained() {
        let source = |forge: &str, line: &str| format!("[sources.s]\nforge = \"{forge}\"\nsecret = \"x\"\n{line}\n");
        let cases = [
            (
                source("gitea", "catch_up = { credential = \"t\", repos = [\"a/b\"] }"),
                "gitauto.toml:4:12: source \"s\": `catch_up` works with forge github and gitlab only",
            ),
            (
                source(
                    "github",
                    "catch_up = { api_url = \"http://api.example.com\", credential = \"t\", repos = [\"a/b\"] }",
                ),
                "gitauto.toml:4:24: source \"s\": `catch_up.api_url` must be https",
            ),
            (
                source("github", "catch_up = { credential = \"t\", repos = [] }"),
                "`catch_up.repos` lists no repositories",
            ),
            (
                source("github", "catch_up = { credential = \"t\", repos = [\"widgets\"] }"),
                "`widgets` is not a repository's full name",
            ),
            (
                source("github", "catch_up = { credential = \"${GITAUTO_TEST_SURELY_UNSET}\", repos = [\"a/b\"] }"),
                "environment variable `GITAUTO_TEST_SURELY_UNSET` is not set",
            ),
            (source("github", "catch_up = { credential = \"t\", repos = [\"a/b\"], every = \"0s\" }"), "at least 1s"),
            (
                source("github", "catch_up = { credentials = \"t\" }"),
                "unknown key `credentials` in [sources.s.catch_up]",
            ),
            (
                source("gitea", "poll = \"5m\""),
                "gitauto.toml:4:8: invalid type: string \"5m\", expected a table naming the repositories",
            ),
            (
                source("gitea", "poll = { repos = [\"a/b\"], clone_url = \"git://x/{repo}\" }"),
                "the `git` transport is not allowed",
            ),
            (source("gitea", "poll = { repos = [\"a/b\"], clone_url = \"https://x/a.git\" }"), "must contain `{repo}`"),
            (
                source("gitea", "poll = { repos = [\"a/b\"], clone_url = \"git@x:{repo}.git\" }"),
                "an ssh URL cannot be polled",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(want), "want {want:?}\n got {err}");
        }
    }
}
