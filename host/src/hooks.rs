//! `gitauto hooks install|list|remove`: the forge webhook that sends a source's events to
//! this daemon, made through the forge's hook API with the source's `api` credential (or
//! `GITAUTO_HOOKS_TOKEN`). This module decides what the hook should be (URL, events, secret)
//! and keeps one per URL; `hooks/<forge>.rs` speak each hook API; `forge_api` makes the calls.

mod bitbucket;
pub mod command;
pub mod events;
mod github;
mod gitlab;

use crate::config::api::{Api, Scheme, default_url};
use crate::config::{Config, EventSelector, Source};
use crate::forge_api::{ApiError, ApiTarget, ForgeApis};
use crate::secret::Secret;
use reqwest::Method;
use serde_json::Value;

/// The environment variable holding an API token for `hooks` when the source's `api`
/// table has none.
pub const TOKEN_VAR: &str = "GITAUTO_HOOKS_TOKEN";
/// The environment variable naming the API root for `hooks` when the source has no `api`
/// table and its forge no public service (Gitea, Forgejo, Gogs, GitHub Enterprise).
pub const API_VAR: &str = "GITAUTO_HOOKS_API";

/// At most this many pages of hooks are read.
const MAX_PAGES: usize = 50;

/// What the commands could not do.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// No such `[sources.NAME]`.
    #[error("no [sources.{0}] in the config")]
    UnknownSource(String),
    /// The forge has no hook API gitauto speaks.
    #[error(
        "source \"{source_name}\" is a {forge} source: gitauto installs hooks only on github, gitlab, gitea, forgejo, gogs and bitbucket"
    )]
    Unsupported {
        /// The source.
        source_name: String,
        /// Its forge.
        forge: String,
    },
    /// Neither `--url` nor `[server] public_url`.
    #[error(
        "no URL for the hook: pass `--url https://.../hooks/{0}` or set `[server] public_url` (the hook then posts to `{{public_url}}/hooks/{0}`)"
    )]
    NoUrl(String),
    /// No token to call the API with.
    #[error(
        "source \"{0}\" has no API token: set `api = {{ token = ... }}` in [sources.{0}] or the environment variable {TOKEN_VAR}"
    )]
    NoToken(String),
    /// A token but no API root.
    #[error(
        "source \"{source_name}\": {forge} has no public API root: set `api = {{ url = \"https://HOST/api/v1\", token = ... }}` in [sources.{source_name}] or the environment variable {API_VAR}"
    )]
    NoApiUrl {
        /// The source.
        source_name: String,
        /// Its forge.
        forge: String,
    },
    /// `--repo` is not `owner/name`.
    #[error("--repo `{0}`: expected OWNER/NAME (GitLab: the project's full path; Bitbucket: WORKSPACE/SLUG)")]
    BadRepo(String),
    /// No rule on the source, for the repository, needs an event a hook sends.
    #[error(
        "no rule listens to source \"{source_name}\" and repository `{repo}` for events a forge hook sends (manual and schedule rules need none; a rule's `repo` filter counts): nothing to install"
    )]
    NoEvents {
        /// The source.
        source_name: String,
        /// The repository.
        repo: String,
    },
    /// A GitHub App source whose installation token may not manage hooks.
    #[error(
        "source \"{source_name}\" authenticates as a GitHub App: its installation tokens can manage webhooks only when the app has the `repository_hooks: write` permission (Repository permissions, Webhooks: Read and write); grant it, or set {TOKEN_VAR} to a token that may: {cause}"
    )]
    AppCannotManageHooks {
        /// The source.
        source_name: String,
        /// GitHub's refusal.
        cause: ApiError,
    },
    /// `install` on a GitHub App source without `--force`.
    #[error(
        "source \"{0}\" authenticates as a GitHub App, whose own webhook already delivers the events of the repositories it is installed on: a repository hook would deliver each event a second time (with another delivery id, so every rule would run twice); remove the app's webhook URL first, or pass --force to install anyway"
    )]
    AppDeliversAlready(String),
    /// GitLab saved the hook without the `whsec_` signing token it was sent.
    #[error(
        "gitlab saved hook {hook} of {repo} without its signing token (`signing_token_present` is not true: the instance ignores `signing_token` while its `webhook_signing_token` feature flag is off), so every delivery would fail verification: enable the flag, or give the source a secret that does not start with `whsec_` (sent as the plain `token`) and install again"
    )]
    SigningTokenIgnored {
        /// The hook's id.
        hook: String,
        /// The project.
        repo: String,
    },
    /// More hooks than [`MAX_PAGES`] pages hold: acting on part of the list could add a
    /// duplicate or miss one to remove.
    #[error("{request}: more than {MAX_PAGES} pages of hooks; stopped rather than act on part of the list")]
    TooManyHooks {
        /// The first page's `METHOD path`.
        request: String,
    },
    /// The forge refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The forge's answer is not a hook list or hook.
    #[error("{request}: the answer is not {expected}")]
    Unexpected {
        /// `METHOD path`.
        request: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// One hook as the forge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The forge's id (Bitbucket: the `{uuid}`).
    pub id: String,
    /// Where it posts.
    pub url: String,
    /// Its events, as the forge names them.
    pub events: Vec<String>,
    /// Whether the forge sends it deliveries.
    pub active: bool,
    /// Its body format, where the forge says (`json`, `form`).
    pub content_type: Option<String>,
    /// Whether it has a secret, where the forge says (the secret itself is never shown).
    pub secret: Option<bool>,
    /// The last delivery's status as the forge reports it, or `not reported`.
    pub last_delivery: String,
}

/// The hook a source needs.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Where it posts.
    pub url: String,
    /// Its events, as the forge's hook API names them.
    pub events: Vec<String>,
    /// What it signs with (none: the source accepts unsigned deliveries).
    pub secret: Option<Secret>,
    /// `on` entries of rules on the source that no hook event of its forge delivers.
    pub undeliverable: Vec<String>,
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The hook as the forge answered, after the change.
    pub hook: Hook,
    /// `true`: a hook with the URL existed and was updated; `false`: created.
    pub updated: bool,
    /// Further hooks with the same URL that were removed (ids).
    pub duplicates_removed: Vec<String>,
}

/// Where a source's hook posts: `url`, else `[server] public_url` + `/hooks/NAME`.
pub fn hook_url(config: &Config, source: &Source, url: Option<&str>) -> Result<String, HooksError> {
    match (url, &config.server.public_url) {
        (Some(url), _) => Ok(url.to_owned()),
        (None, Some(public)) => Ok(format!("{}/hooks/{}", public.trim_end_matches('/'), source.name)),
        (None, None) => Err(HooksError::NoUrl(source.name.clone())),
    }
}

/// The hook a source needs on `repo`: its URL (`url`, else `[server] public_url` +
/// `/hooks/NAME`), the events its rules that may match the repository select (all the
/// forge's when one rule names none) and its newest secret.
pub fn wanted(config: &Config, source: &Source, repo: &str, url: Option<&str>) -> Result<Wanted, HooksError> {
    let url = hook_url(config, source, url)?;
    let mut selectors: Vec<EventSelector> = Vec::new();
    let mut everything = false;
    let mut undeliverable = Vec::new();
    for rule in &config.rules {
        let listens = (rule.sources.is_empty() || rule.sources.contains(&source.name))
            && (rule.forges.is_empty() || rule.forges.iter().any(|forge| forge == source.forge))
            && (rule.repo.is_empty() || rule.repo.matches(repo));
        if !listens {
            continue;
        }
        everything |= rule.on.is_empty();
        for selector in &rule.on {
            // Made by gitauto itself, or answered without a rule: no hook event asked for.
            if matches!(selector.kind.as_str(), "manual" | "schedule" | "ping") {
                continue;
            }
            if !events::deliverable(source.forge, selector) {
                undeliverable.push(format!("rule \"{}\": `{selector}`", rule.name));
            }
            selectors.push(selector.clone());
        }
        // No `check_run` for `report = "check"`: GitHub sends `check_run.rerequested` only
        // to the app that created the run, never to a repository hook.
    }
    let events = events::needed(source.forge, if everything { None } else { Some(&selectors) });
    if events.is_empty() {
        return Err(HooksError::NoEvents { source_name: source.name.clone(), repo: repo.to_owned() });
    }
    Ok(Wanted {
        url,
        events: events.into_iter().map(str::to_owned).collect(),
        secret: source.secrets.last().cloned(),
        undeliverable,
    })
}

/// A forge's hook API, as the calls in `hooks/<forge>.rs` speak it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GitHub and GitHub Enterprise.
    GitHub,
    /// Gitea, Forgejo and Gogs: GitHub's shape with a `type`.
    Gitea(&'static str),
    /// GitLab's project hooks.
    GitLab,
    /// Bitbucket Cloud's repository hooks.
    Bitbucket,
}

/// The hooks of one repository on one source's forge.
pub struct Hooks {
    apis: ForgeApis,
    /// The source, its `api` filled from the environment when it had no token.
    source: Source,
    target: ApiTarget,
    kind: Kind,
}

/// A GitHub App's tokens for hooks: `repository_hooks: write`.
const HOOK_PERMISSIONS: &[(&str, &str)] = &[("repository_hooks", "write")];

impl Hooks {
    /// The hooks of `repo` on `source`'s forge; `env_token` and `env_api` are
    /// [`TOKEN_VAR`] and [`API_VAR`], used when the source's `api` has no token.
    pub fn new(
        config: &Config,
        source_name: &str,
        repo: &str,
        env_token: Option<Secret>,
        env_api: Option<String>,
    ) -> Result<Self, HooksError> {
        let source = config.source(source_name).ok_or_else(|| HooksError::UnknownSource(source_name.to_owned()))?;
        let kind = match source.forge {
            "github" => Kind::GitHub,
            "gitea" | "forgejo" | "gogs" => Kind::Gitea(source.forge),
            "gitlab" => Kind::GitLab,
            "bitbucket" => Kind::Bitbucket,
            other => {
                return Err(HooksError::Unsupported { source_name: source.name.clone(), forge: other.to_owned() });
            }
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let valid = parts.len() >= 2 && (kind == Kind::GitLab || parts.len() == 2);
        if !valid || parts.iter().any(|part| part.is_empty() || *part == "." || *part == "..") {
            return Err(HooksError::BadRepo(repo.to_owned()));
        }
        let mut source = source.clone();
        let has_token = source.api.as_ref().is_some_and(|api| api.token.is_some());
        if !has_token {
            match env_token {
                Some(token) => {
                    let url = source
                        .api
                        .as_ref()
                        .map(|api| api.url.clone())
                        .or(env_api.map(|url| url.trim_end_matches('/').to_owned()))
                        .or(default_url(source.forge).map(str::to_owned))
                        .ok_or_else(|| HooksError::NoApiUrl {
                            source_name: source.name.clone(),
                            forge: source.forge.to_owned(),
                        })?;
                    // Bitbucket app passwords are `user:password`, sent as basic auth.
                    let scheme = match source.api.as_ref().map(|api| api.scheme) {
                        Some(scheme) if source.app.is_none() => scheme,
                        _ if source.forge == "bitbucket" && token.expose().contains(':') => Scheme::Basic,
                        _ => Scheme::default_for(source.forge),
                    };
                    source.api = Some(Api { url, token: Some(token), scheme });
                    // The token given is used as it is, not an app's.
                    source.app = None;
                }
                None if source.app.is_some() => {}
                None => return Err(HooksError::NoToken(source.name.clone())),
            }
        }
        let target = ApiTarget { repo: repo.to_owned(), installation: None, permissions: HOOK_PERMISSIONS };
        Ok(Self { apis: ForgeApis::new().map_err(|err| ApiError::Failed(format!("{err:#}")))?, source, target, kind })
    }

    /// The repository's hooks, every page of them.
    pub async fn list(&self) -> Result<Vec<Hook>, HooksError> {
        let first = match self.kind {
            Kind::GitHub => format!("/repos/{}/hooks?per_page=100", self.repo_path()),
            Kind::Gitea(_) => format!("/repos/{}/hooks?limit=50", self.repo_path()),
            Kind::GitLab => format!("/projects/{}/hooks?per_page=100", self.repo_path()),
            Kind::Bitbucket => format!("/repositories/{}/hooks?pagelen=100", self.repo_path()),
        };
        let mut path = first.clone();
        let mut hooks = Vec::new();
        for page in 1..=MAX_PAGES {
            let answer = self.call(Method::GET, &path, None).await?;
            let (items, next) = match self.kind {
                Kind::Bitbucket => (&answer.body["values"], answer.body["next"].as_str().map(str::to_owned)),
                // Gitea and Forgejo page with `page` and `limit`, send no `Link` and say
                // how many there are in `X-Total-Count`; computed below.
                Kind::Gitea(_) => (&answer.body, None),
                _ => (&answer.body, next_link(&answer.headers)),
            };
            let unexpected = || HooksError::Unexpected { request: format!("GET {path}"), expected: "a list of hooks" };
            let Value::Array(items) = items else { return Err(unexpected()) };
            for item in items {
                hooks.push(self.parse(item).ok_or_else(unexpected)?);
            }
            let next = match self.kind {
                Kind::Gitea(_) => gitea_next_page(&answer.headers, hooks.len(), items.len(), page)
                    .map(|number| format!("{first}&page={number}")),
                _ => match next {
                    None => None,
                    Some(next) => Some(self.relative(&next).ok_or_else(|| HooksError::Unexpected {
                        request: format!("GET {path}"),
                        expected: "a next page under the API root",
                    })?),
                },
            };
            let Some(next) = next else { return Ok(hooks) };
            path = next;
        }
        Err(HooksError::TooManyHooks { request: format!("GET {first}") })
    }

    /// Creates the hook, or updates the one posting to the same URL (removing any further
    /// ones with that URL).
    pub async fn install(&self, wanted: &Wanted) -> Result<Installed, HooksError> {
        let existing: Vec<Hook> =
            self.list().await?.into_iter().filter(|hook| same_url(&hook.url, &wanted.url)).collect();
        let body = match self.kind {
            Kind::GitHub => github::body(wanted, None),
            Kind::Gitea(kind) => github::body(wanted, Some(kind)),
            Kind::GitLab => gitlab::body(wanted),
            Kind::Bitbucket => bitbucket::body(wanted),
        };
        let (answer, updated) = match existing.first() {
            None => (self.call(Method::POST, &self.hooks_path(None), Some(&body)).await?, false),
            Some(hook) => {
                let method = match self.kind {
                    Kind::GitHub | Kind::Gitea(_) => Method::PATCH,
                    Kind::GitLab | Kind::Bitbucket => Method::PUT,
                };
                (self.call(method, &self.hooks_path(Some(&hook.id)), Some(&body)).await?, true)
            }
        };
        let hook = self.parse(&answer.body).ok_or_else(|| HooksError::Unexpected {
            request: format!("saving the hook of {}", self.target.repo),
            expected: "a hook",
        })?;
        // GitLab ignores `signing_token` silently while its feature flag is off, leaving a
        // hook whose every delivery gitauto rejects: only its answer tells.
        if self.kind == Kind::GitLab && gitlab::signs(wanted) && answer.body["signing_token_present"] != true {
            return Err(HooksError::SigningTokenIgnored { hook: hook.id, repo: self.target.repo.clone() });
        }
        let mut duplicates_removed = Vec::new();
        for extra in existing.iter().skip(1) {
            self.call(Method::DELETE, &self.hooks_path(Some(&extra.id)), None).await?;
            duplicates_removed.push(extra.id.clone());
        }
        Ok(Installed { hook, updated, duplicates_removed })
    }

    /// Deletes every hook posting to `url`; returns them.
    pub async fn remove(&self, url: &str) -> Result<Vec<Hook>, HooksError> {
        let doomed: Vec<Hook> = self.list().await?.into_iter().filter(|hook| same_url(&hook.url, url)).collect();
        for hook in &doomed {
            self.call(Method::DELETE, &self.hooks_path(Some(&hook.id)), None).await?;
        }
        Ok(doomed)
    }

    /// The repository as the API's path names it, percent-encoded.
    fn repo_path(&self) -> String {
        let encode = crate::forge_api::encode_segment;
        match self.kind {
            Kind::GitLab => encode(&self.target.repo),
            _ => self.target.repo.split('/').map(encode).collect::<Vec<_>>().join("/"),
        }
    }

    /// The hooks collection, or one hook in it.
    fn hooks_path(&self, id: Option<&str>) -> String {
        let collection = match self.kind {
            Kind::GitHub | Kind::Gitea(_) => format!("/repos/{}/hooks", self.repo_path()),
            Kind::GitLab => format!("/projects/{}/hooks", self.repo_path()),
            Kind::Bitbucket => format!("/repositories/{}/hooks", self.repo_path()),
        };
        match id {
            Some(id) => format!("{collection}/{}", crate::forge_api::encode_segment(id)),
            None => collection,
        }
    }

    fn parse(&self, item: &Value) -> Option<Hook> {
        match self.kind {
            Kind::GitHub | Kind::Gitea(_) => github::parse(item),
            Kind::GitLab => gitlab::parse(item),
            Kind::Bitbucket => bitbucket::parse(item),
        }
    }

    /// A `next` URL as a path under the API root (`None` when it leads elsewhere: the
    /// token is not sent there).
    fn relative(&self, next: &str) -> Option<String> {
        let root = &self.source.api.as_ref()?.url;
        next.strip_prefix(root.as_str()).filter(|rest| rest.starts_with('/')).map(str::to_owned)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<crate::forge_api::Answer, HooksError> {
        let answer = self.apis.call(&self.source, &self.target, method, path, body).await;
        answer.map_err(|err| match err {
            // An app's token refused (GitHub will not mint one with `repository_hooks`, or
            // a hook call is refused with it): say what the app lacks. Other refusals (a
            // hook GitHub finds invalid) are GitHub's own words.
            ApiError::Refused { status, ref request, .. }
                if self.source.app.is_some()
                    && (status == 403 || (status == 422 && request.ends_with("/access_tokens"))) =>
            {
                HooksError::AppCannotManageHooks { source_name: self.source.name.clone(), cause: err }
            }
            err => HooksError::Api(err),
        })
    }
}

/// Whether two hook URLs are the same, a trailing `/` aside.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The page of a Gitea hook list to read after page `page` (of `on_page` hooks, `read` in
/// all), by its `X-Total-Count`; `None` when every hook is read. Without the header the
/// list is whole: Gogs (and Gitea before it paged hooks) return every hook at once.
fn gitea_next_page(headers: &reqwest::header::HeaderMap, read: usize, on_page: usize, page: usize) -> Option<usize> {
    let total: usize = headers.get("x-total-count")?.to_str().ok()?.trim().parse().ok()?;
    // An empty page before the total: hooks were deleted meanwhile, nothing more to read.
    (read < total && on_page > 0).then_some(page + 1)
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.split(';').any(|p| p.trim() == "rel=\"next\"").then(|| url.trim().trim_matches(['<', '>']).to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(public_url: &str, rules: &str) -> Config {
        let text = format!(
            "[server]\n{public_url}\n[sources.gl]\nforge = \"gitlab\"\nsecrets = [\"old\", \"new\"]\n\
             [plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\n\
             grants = {{ dirs = [{{ path = \"/srv/repos\", git = true }}] }}\n{rules}"
        );
        Config::parse(Path::new("gitauto.toml"), &text).unwrap()
    }

    fn rule(name: &str, extra: &str) -> String {
        format!(
            "[[rules]]\nname = \"{name}\"\n{extra}\nsteps = [{{ plugin = \"fetch-update\", with = {{ repodir = \"/srv/repos\" }} }}]\n"
        )
    }

    #[test]
    fn the_wanted_hook_has_the_public_url_the_rules_events_and_the_newest_secret() {
        let rules = [
            rule("tags", "on = \"tag\""),
            rule("github only", "on = \"comment\"\nforge = \"github\""),
            rule("elsewhere", "on = \"pull_request\"\nsource = \"other\""),
            rule("by hand", "on = \"manual\""),
            rule("reviews", "on = \"review\"\nforge = \"gitlab\""),
        ]
        .concat();
        let text = format!("{rules}[sources.other]\nforge = \"github\"\nsecret = \"x\"\n");
        let config = load("public_url = \"https://ci.example.com/\"", &text);
        let wanted = wanted(&config, config.source("gl").unwrap(), "acme/widgets", None).unwrap();
        assert_eq!(wanted.url, "https://ci.example.com/hooks/gl");
        assert_eq!(wanted.events, ["tag_push_events"]);
        assert_eq!(wanted.secret.as_ref().map(Secret::expose), Some("new"));
        assert_eq!(wanted.undeliverable, ["rule \"reviews\": `review`"]);
        let given =
            super::wanted(&config, config.source("gl").unwrap(), "acme/widgets", Some("https://x.example/h")).unwrap();
        assert_eq!(given.url, "https://x.example/h");

        let manual_only = load("", &rule("by hand", "on = \"manual\""));
        let err = super::wanted(&manual_only, manual_only.source("gl").unwrap(), "a/b", Some("https://x.example/h"));
        assert!(matches!(err, Err(HooksError::NoEvents { .. })), "{err:?}");
        let err = super::wanted(&manual_only, manual_only.source("gl").unwrap(), "a/b", None);
        assert!(matches!(err, Err(HooksError::NoUrl(_))), "{err:?}");
    }

    #[test]
    fn a_checking_rule_adds_no_check_run_to_a_repository_hook() {
        // Issue 22, M4: GitHub sends `check_run.rerequested` only to the app that made
        // the run; a repository hook would get only the runs' own created and completed.
        let text = "[server]\npublic_url = \"https://ci.example.com\"\n[sources.gh]\nforge = \"github\"\n\
                    secret = \"s\"\napi = { url = \"https://api.github.com\", token = \"t\" }\n\
                    [plugins.fetch-update]\nwasm = \"builtin:fetch-update\"\n\
                    grants = { dirs = [{ path = \"/srv/repos\", git = true }] }\n";
        let config = Config::parse(
            Path::new("gitauto.toml"),
            &format!("{text}{}", rule("ci", "on = \"push\"\nreport = \"check\"")),
        )
        .unwrap();
        assert_eq!(wanted(&config, config.source("gh").unwrap(), "acme/widgets", None).unwrap().events, ["push"]);
    }

    #[test]
    fn gitea_lists_are_paged_by_their_total_count() {
        let mut headers = reqwest::header::HeaderMap::new();
        // Gogs, and Gitea before it paged hooks: the one answer is the whole list.
        assert_eq!(gitea_next_page(&headers, 2, 2, 1), None);
        headers.insert("x-total-count", "3".parse().unwrap());
        assert_eq!(gitea_next_page(&headers, 2, 2, 1), Some(2));
        assert_eq!(gitea_next_page(&headers, 3, 1, 2), None);
        assert_eq!(gitea_next_page(&headers, 2, 0, 2), None, "an empty page ends the list");
    }

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<https://x/repos/a/b/hooks?page=2>; rel=\"next\", <https://x/repos/a/b/hooks?page=3>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers).as_deref(), Some("https://x/repos/a/b/hooks?page=2"));
        headers.insert(reqwest::header::LINK, "<https://x/p?page=1>; rel=\"prev\"".parse().unwrap());
        assert_eq!(next_link(&headers), None);
        assert!(same_url("https://ci.example.com/hooks/gh/", "https://ci.example.com/hooks/gh"));
        assert!(!same_url("https://ci.example.com/hooks/gh", "https://ci.example.com/hooks/gl"));
    }
}
