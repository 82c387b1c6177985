//! A source's `api = { url, token, scheme }`: where the host calls the forge's REST API
//! itself (commit statuses, check runs, permission checks, reply comments, approvals)
//! and with which token. Validated here; `crate::forge_api` makes the calls.

use super::raw::RawApi;
use super::{Checker, Secret, secret};
use std::path::Path;
use toml::Spanned;

/// How the token is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer TOKEN` (GitHub, Bitbucket Cloud access tokens, GitLab OAuth).
    Bearer,
    /// `Authorization: token TOKEN` (Gitea, Forgejo, Gogs).
    Token,
    /// `PRIVATE-TOKEN: TOKEN` (GitLab personal, project and group access tokens).
    PrivateToken,
    /// `Authorization: Basic base64(TOKEN)`, TOKEN being `user:app-password` (Bitbucket
    /// app passwords).
    Basic,
}

impl Scheme {
    /// The scheme a forge's own tokens use.
    pub fn default_for(forge: &str) -> Scheme {
        match forge {
            "gitlab" => Scheme::PrivateToken,
            "gitea" | "forgejo" | "gogs" => Scheme::Token,
            _ => Scheme::Bearer,
        }
    }

    fn parse(text: &str) -> Option<Scheme> {
        match text {
            "bearer" => Some(Scheme::Bearer),
            "token" => Some(Scheme::Token),
            "private-token" => Some(Scheme::PrivateToken),
            "basic" => Some(Scheme::Basic),
            _ => None,
        }
    }
}

/// `api = { ... }` of a source, validated.
#[derive(Debug, Clone)]
pub struct Api {
    /// The API root without a trailing `/` (GitHub `https://api.github.com`, GitHub
    /// Enterprise `https://HOST/api/v3`, GitLab `https://HOST/api/v4`, Gitea/Forgejo/Gogs
    /// `https://HOST/api/v1`, Bitbucket `https://api.bitbucket.org/2.0`).
    pub url: String,
    /// The token; `None` when the source authenticates as a GitHub App instead.
    pub token: Option<Secret>,
    /// How the token is sent.
    pub scheme: Scheme,
}

/// The API root a forge's public service has, when it has one.
pub fn default_url(forge: &str) -> Option<&'static str> {
    match forge {
        "github" => Some("https://api.github.com"),
        "gitlab" => Some("https://gitlab.com/api/v4"),
        "bitbucket" => Some("https://api.bitbucket.org/2.0"),
        _ => None,
    }
}

impl Checker<'_> {
    /// Validates a source's `api` table; `app`: the source also has a GitHub App, which
    /// gives the tokens (then `api` names only the root, for GitHub Enterprise).
    pub(super) fn api(
        &mut self,
        source: &str,
        forge: &str,
        raw: Spanned<RawApi>,
        base: &Path,
        app: bool,
    ) -> Option<Api> {
        let span = raw.span();
        let raw = raw.into_inner();
        if forge == "generic" {
            self.problem(Some(span), format!("source \"{source}\": `api` needs a forge; a generic source has no API"));
            return None;
        }
        let url = match &raw.url {
            Some(url) => self.expand(url).and_then(|text| {
                super::catch_up::api_url(&text, "api.url")
                    .map_err(|why| self.problem(Some(url.span()), format!("source \"{source}\": {why}")))
                    .ok()
            }),
            None => match default_url(forge) {
                Some(url) => Some(url.to_owned()),
                None => {
                    self.problem(
                        Some(span.clone()),
                        format!(
                            "source \"{source}\": `api` needs a `url` for forge {forge} (e.g. \
                             \"https://git.example.com/api/v1\")"
                        ),
                    );
                    None
                }
            },
        };
        let token = raw.token.as_ref().and_then(|reference| {
            let text = self.expand(reference)?;
            secret::resolve(&text, base)
                .map_err(|err| self.problem(Some(reference.span()), format!("source \"{source}\": `api.token`: {err}")))
                .ok()
        });
        match (&raw.token, app) {
            (None, false) => {
                self.problem(Some(span), format!("source \"{source}\": `api` needs a `token` (or an `app`)"))
            }
            (Some(reference), true) => self.problem(
                Some(reference.span()),
                format!(
                    "source \"{source}\": `api.token` and `app` together: the app mints the tokens; remove `api.token`"
                ),
            ),
            _ => {}
        }
        let scheme = match &raw.scheme {
            None => Some(Scheme::default_for(forge)),
            Some(text) => Scheme::parse(text.get_ref()).or_else(|| {
                self.problem(
                    Some(text.span()),
                    format!(
                        "source \"{source}\": `api.scheme` is `{}`; expected bearer, token, private-token or basic",
                        text.get_ref()
                    ),
                );
                None
            }),
        };
        let token = if app { None } else { Some(token?) };
        Some(Api { url: url?, token, scheme: scheme? })
    }
}
