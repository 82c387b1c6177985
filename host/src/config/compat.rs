//! `[compat.*]`: drop-in replacements for the services gitauto replaces. Each maps the old
//! service's endpoints onto ordinary plugin steps, through rules of its own that only
//! those endpoints queue (never the normal routing).

use super::raw::{RawCompat, RawGitReload};
use super::{Checker, PluginSpec, Rule, Source, Step};
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

/// Name of the rule that `POST /` and `POST /gitreload` queue.
pub const GITRELOAD_IMPORT_RULE: &str = "gitreload-import";
/// Name of the rule that `POST /update` queues.
pub const GITRELOAD_UPDATE_RULE: &str = "gitreload-update";

/// `[compat]`.
#[derive(Debug, Clone, Default)]
pub struct Compat {
    /// `[compat.gitreload]`, when enabled.
    pub gitreload: Option<GitReload>,
}

/// `[compat.gitreload]`: gitreload's `POST /`, `/gitreload`, `/update` and `GET /queue`.
#[derive(Debug, Clone)]
pub struct GitReload {
    /// The source whose secrets verify deliveries (a GitHub source).
    pub source: String,
    /// gitreload's `REPODIR`: checkouts live at `<repodir>/<repository name>`.
    pub repodir: PathBuf,
    /// The rule `POST /` and `/gitreload` queue, when an import plugin is configured.
    pub import: Option<Rule>,
    /// The rule `POST /update` queues.
    pub update: Option<Rule>,
    /// Networks whose unsigned deliveries are accepted (hooks orcoursetrion created carry
    /// no secret); the client's address is the connection's, or the one forwarded by a
    /// `[server] trusted_proxies` proxy. Empty: every delivery must be signed.
    pub allow_unsigned_from: Vec<crate::network::Network>,
}

impl Compat {
    /// The compat rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        let gitreload = self.gitreload.as_ref()?;
        [&gitreload.import, &gitreload.update].into_iter().flatten().find(|rule| rule.name == name)
    }
}

impl Checker<'_> {
    pub(super) fn compat(
        &mut self,
        raw: RawCompat,
        sources: &BTreeMap<String, Source>,
        plugins: &BTreeMap<String, PluginSpec>,
        base: &std::path::Path,
    ) -> Compat {
        Compat { gitreload: raw.gitreload.and_then(|g| self.gitreload(g, sources, plugins, base)) }
    }

    fn gitreload(
        &mut self,
        raw: Spanned<RawGitReload>,
        sources: &BTreeMap<String, Source>,
        plugins: &BTreeMap<String, PluginSpec>,
        base: &std::path::Path,
    ) -> Option<GitReload> {
        let span = raw.span();
        let raw = raw.into_inner();
        let source = raw.source.get_ref().clone();
        match sources.get(&source) {
            Some(found) if found.forge == "github" => {}
            Some(found) => self.problem(
                Some(raw.source.span()),
                format!(
                    "[compat.gitreload]: source `{source}` is a {} source; gitreload takes GitHub's hooks",
                    found.forge
                ),
            ),
            None => self.problem(
                Some(raw.source.span()),
                format!("[compat.gitreload]: source `{source}` is not defined in [sources]"),
            ),
        }
        let repodir = base.join(self.expand(&raw.repodir)?);
        if raw.import.is_none() && raw.update.is_none() {
            self.problem(Some(span), "[compat.gitreload] needs `import` or `update` (or both): the plugins to run");
        }
        let repodir_text = repodir.display().to_string();
        let mut rule = |name: &str, plugin: &Option<Spanned<String>>, with: &toml::Table| -> Option<Rule> {
            let plugin = plugin.as_ref()?;
            if !plugins.contains_key(plugin.get_ref()) {
                self.problem(
                    Some(plugin.span()),
                    format!("[compat.gitreload]: plugin `{}` is not defined in [plugins]", plugin.get_ref()),
                );
            }
            let mut settings = self.settings(with, plugin.span(), &format!("[compat.gitreload] `{name}`"));
            if let Some(object) = settings.as_object_mut() {
                object.entry("repodir").or_insert_with(|| serde_json::json!(repodir_text));
            }
            let mut rule = Rule::new(name, Vec::new(), vec![Step::new(plugin.get_ref(), settings)]);
            rule.sources = vec![source.clone()];
            // Unlike gitreload, a burst of pushes to one checkout runs once more, not once each.
            rule.coalesce = super::Coalesce::Default;
            Some(rule)
        };
        let import = rule(GITRELOAD_IMPORT_RULE, &raw.import, &raw.import_with);
        let update = rule(GITRELOAD_UPDATE_RULE, &raw.update, &raw.update_with);
        // An unsigned hook names any repository, installation and clone URL it likes: a
        // job of an App source would mint tokens for them.
        if !raw.allow_unsigned_from.is_empty() && sources.get(&source).is_some_and(|found| found.app.is_some()) {
            self.problem(
                Some(raw.source.span()),
                format!(
                    "[compat.gitreload]: source `{source}` is a GitHub App, and `allow_unsigned_from` would let \
                     unsigned hooks start its jobs (which mint the app's tokens); use a source without `app`"
                ),
            );
        }
        let allow_unsigned_from = self.networks(&raw.allow_unsigned_from, "[compat.gitreload] allow_unsigned_from");
        Some(GitReload { source, repodir, import, update, allow_unsigned_from })
    }
}
