//! `gitauto hooks install|list|remove` as one library call: `main.rs` parses the arguments
//! and calls [`run`]; tests call it in-process. What the commands print goes to the writers
//! given, escaped for the terminal; no token or secret is ever written (a set secret is `***`).

use super::{Hook, Hooks, HooksError, same_url};
use crate::config::Config;
use crate::secret::Secret;
use crate::terminal::escape;
use anyhow::Context;
use std::borrow::Cow;
use std::io::Write;

/// What to do with the repository's hooks.
#[derive(Debug, Clone)]
pub enum Action {
    /// Create or update the hook the source needs.
    Install {
        /// Where it posts (default: `[server] public_url` + `/hooks/SOURCE`).
        url: Option<String>,
        /// Install even on a GitHub App source, whose app already delivers its events.
        force: bool,
    },
    /// Show every hook of the repository.
    List,
    /// Delete the hooks posting to the URL.
    Remove {
        /// Their URL (default: `[server] public_url` + `/hooks/SOURCE`).
        url: Option<String>,
    },
}

/// One `gitauto hooks` command.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `[sources.NAME]` whose forge, API token, secret and rules are used.
    pub source: String,
    /// The repository (`owner/name`; GitLab: the project's full path).
    pub repo: String,
    /// What to do.
    pub action: Action,
}

/// What the environment supplies when the source's `api` has no token.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// [`super::TOKEN_VAR`].
    pub token: Option<Secret>,
    /// [`super::API_VAR`].
    pub api: Option<String>,
}

impl Env {
    /// The variables of this process (empty ones count as unset).
    pub fn from_process() -> Self {
        let var = |name| std::env::var(name).ok().filter(|value: &String| !value.is_empty());
        Self { token: var(super::TOKEN_VAR).map(Secret::new), api: var(super::API_VAR) }
    }
}

/// Runs `request` against the forge: results to `out`, notes and warnings to `notes`.
pub async fn run(
    config: &Config,
    request: &Request,
    env: Env,
    out: &mut (dyn Write + Send),
    notes: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let source = config.source(&request.source).ok_or_else(|| HooksError::UnknownSource(request.source.clone()))?;
    let hooks = Hooks::new(config, &request.source, &request.repo, env.token, env.api)?;
    let repo = escape(&request.repo);
    let written = "writing the command's output";
    match &request.action {
        Action::Install { url, force } => {
            // The app's own webhook already sends every event of the repositories it is
            // installed on: a repository hook would deliver each one a second time.
            if source.app.is_some() && !force {
                return Err(HooksError::AppDeliversAlready(source.name.clone()).into());
            }
            let wanted = super::wanted(config, source, &request.repo, url.as_deref())?;
            for entry in &wanted.undeliverable {
                writeln!(notes, "note: {}: no repository hook sends these events", escape(entry)).context(written)?;
            }
            if wanted.secret.is_none() {
                let name = escape(&source.name);
                writeln!(notes, "warning: source \"{name}\" has no secret: the hook's deliveries are not signed")
                    .context(written)?;
            }
            // GitLab sends a plain `token` back as it is, in `X-Gitlab-Token` on every
            // delivery (signatures of the other forges and of `whsec_` keys reveal nothing).
            let http = wanted.url.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
            if source.forge == "gitlab" && wanted.secret.is_some() && !super::gitlab::signs(&wanted) && http {
                writeln!(
                    notes,
                    "warning: the hook posts to an http:// URL: GitLab sends the secret token in clear text (X-Gitlab-Token) with every delivery; use https:// or a `whsec_` signing secret"
                )
                .context(written)?;
            }
            let mut installed = hooks.install(&wanted).await?;
            // Gitea, Forgejo and Gogs never show a secret: it is the one just sent.
            installed.hook.secret = installed.hook.secret.or(Some(wanted.secret.is_some()));
            let done = if installed.updated { "updated" } else { "created" };
            writeln!(out, "{done} hook {} on {repo}", escape(&installed.hook.id)).context(written)?;
            print_hook(out, &installed.hook, true).context(written)?;
            for id in &installed.duplicates_removed {
                writeln!(out, "removed hook {} (another with the same URL)", escape(id)).context(written)?;
            }
        }
        Action::List => {
            let listed = hooks.list().await?;
            if listed.is_empty() {
                writeln!(out, "no hooks on {repo}").context(written)?;
            }
            // Only the URL gitauto would install is shown whole: other integrations' URLs
            // may carry their credentials.
            let ours = super::hook_url(config, source, None).ok();
            for hook in &listed {
                writeln!(out, "hook {}", escape(&hook.id)).context(written)?;
                let whole = ours.as_deref().is_some_and(|ours| same_url(ours, &hook.url));
                print_hook(out, hook, whole).context(written)?;
            }
        }
        Action::Remove { url } => {
            let url = super::hook_url(config, source, url.as_deref())?;
            let removed = hooks.remove(&url).await?;
            if removed.is_empty() {
                writeln!(out, "no hook on {repo} posts to {}: nothing removed", escape(&url)).context(written)?;
            }
            for hook in &removed {
                writeln!(out, "removed hook {} ({})", escape(&hook.id), escape(&url)).context(written)?;
            }
        }
    }
    Ok(())
}

/// A hook's fields, one per line; a secret only as `***`; the URL redacted unless `whole`.
fn print_hook(out: &mut (dyn Write + Send), hook: &Hook, whole: bool) -> std::io::Result<()> {
    let events: Vec<Cow<'_, str>> = hook.events.iter().map(|e| escape(e)).collect();
    let url = if whole { Cow::Borrowed(hook.url.as_str()) } else { Cow::Owned(redact(&hook.url)) };
    writeln!(out, "  url:           {}", escape(&url))?;
    writeln!(out, "  events:        {}", events.join(", "))?;
    writeln!(out, "  active:        {}", if hook.active { "yes" } else { "no" })?;
    if let Some(content_type) = &hook.content_type {
        writeln!(out, "  content type:  {}", escape(content_type))?;
    }
    match hook.secret {
        Some(true) => writeln!(out, "  secret:        ***")?,
        Some(false) => writeln!(out, "  secret:        none")?,
        None => writeln!(out, "  secret:        not reported")?,
    }
    writeln!(out, "  last delivery: {}", escape(&hook.last_delivery))
}

/// A URL with its user information, path, query and fragment replaced by `***`: which
/// host another integration's hook posts to, without the credentials such URLs often
/// carry (in the path too: chat services' incoming webhooks are `/services/T../B../TOKEN`).
fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return "*** (not a URL)".into() };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Both setters fail only for URLs without a host, which have no user information.
        let _ = parsed.set_password(None);
        let _ = parsed.set_username("***");
    }
    if parsed.path() != "/" && !parsed.cannot_be_a_base() {
        parsed.set_path("/***");
    }
    if parsed.query().is_some() {
        parsed.set_query(Some("***"));
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(Some("***"));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_hooks_urls_lose_their_credentials() {
        let cases = [
            ("https://ci.example.com/hooks/gh", "https://ci.example.com/***"),
            ("https://ci.example.com", "https://ci.example.com/"),
            ("https://bot:hunter2@chat.example.com/in", "https://***@chat.example.com/***"),
            ("https://token@chat.example.com/", "https://***@chat.example.com/"),
            ("https://x.example/hook?token=abc&room=1", "https://x.example/***?***"),
            ("https://u:p@x.example:8443/h?k=v#frag", "https://***@x.example:8443/***?***#***"),
            ("https://hooks.chat.example/services/T0/B0/s3cr3t", "https://hooks.chat.example/***"),
            ("not a url", "*** (not a URL)"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
