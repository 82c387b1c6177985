//! A plugin's component beyond `builtin:` and files: `oci://` references and `https://`
//! URLs, each pinned; its `verify` table (a minisign key and where the signature is);
//! and `[registries."HOST"]`, the credentials to pull with. Validated here; fetching and
//! checking them is `crate::plugin_source`'s.

use super::raw::{RawRegistry, RawVerify};
use super::{Checker, WasmSource, secret};
use crate::plugin_source::minisign::PublicKey;
use crate::plugin_source::reference::{OciReference, parse_sha256, parse_url};
use crate::plugin_source::{Location, RegistryCredential, Remote, SignatureSource, Store, Verify};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// What a remote component needs from the rest of the config.
pub(super) struct RemoteContext {
    /// `DATA_DIR/plugins`.
    pub store: Store,
    /// `[registries."HOST"]`, by host.
    pub registries: BTreeMap<String, RegistryCredential>,
}

/// Whether `wasm` names a remote component (else a file or `builtin:`).
pub(super) fn is_remote(wasm: &str) -> bool {
    ["oci://", "https://", "http://"].iter().any(|scheme| wasm.starts_with(scheme))
}

impl Checker<'_> {
    /// `[registries."HOST"]`: a user name and a password (a secret like any other).
    pub(super) fn registries(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<RawRegistry>>,
        base: &Path,
    ) -> BTreeMap<String, RegistryCredential> {
        let mut registries = BTreeMap::new();
        for (host, table) in raw {
            let table = table.into_inner();
            let username = self.expand(&table.username);
            let password = self.expand(&table.password).and_then(|text| {
                secret::resolve(&text, base)
                    .map_err(|err| {
                        self.problem(
                            Some(table.password.span()),
                            format!("[registries.\"{}\"] password: {err}", host.get_ref()),
                        )
                    })
                    .ok()
            });
            if let (Some(username), Some(password)) = (username, password) {
                registries.insert(host.into_inner(), RegistryCredential { username, password });
            }
        }
        registries
    }

    /// An `oci://` or `https://` component, pinned: by the reference's digest, or by
    /// `sha256` beside the URL.
    pub(super) fn remote_source(
        &mut self,
        plugin: &str,
        wasm: &str,
        raw_wasm: &Spanned<String>,
        sha256: Option<&Spanned<String>>,
        context: &RemoteContext,
    ) -> Option<WasmSource> {
        let location = if wasm.starts_with("oci://") {
            let reference = OciReference::parse(wasm)
                .map_err(|err| self.problem(Some(raw_wasm.span()), format!("plugin `{plugin}`: {err}")))
                .ok()?;
            let credential = context.registries.get(&reference.registry).cloned();
            Location::Oci { reference, credential }
        } else {
            let url =
                parse_url(wasm).map_err(|err| self.problem(Some(raw_wasm.span()), format!("plugin `{plugin}`: {err}")));
            let Some(sha256) = sha256 else {
                self.problem(
                    Some(raw_wasm.span()),
                    format!(
                        "plugin `{plugin}`: a component fetched from a URL must be pinned: add \
                         `sha256 = \"...\"`, its SHA-256 (`sha256sum plugin.wasm` prints it)"
                    ),
                );
                return None;
            };
            let pin = self.expand(sha256).and_then(|text| {
                parse_sha256(&text)
                    .map_err(|err| self.problem(Some(sha256.span()), format!("plugin `{plugin}`: `sha256`: {err}")))
                    .ok()
            });
            Location::Url { url: url.ok()?, sha256: pin? }
        };
        Some(WasmSource::Remote(Box::new(Remote { location, store: context.store.clone() })))
    }

    /// `verify = { key = ..., signature = ... }`: the trusted key, read now (a bad key is
    /// a config problem), and where the signature is.
    pub(super) fn verify(
        &mut self,
        plugin: &str,
        raw: Spanned<RawVerify>,
        wasm: Option<&WasmSource>,
        base: &Path,
    ) -> Option<Verify> {
        let span = raw.span();
        let raw = raw.into_inner();
        if let Some(WasmSource::Builtin(name)) = wasm {
            self.problem(
                Some(span),
                format!("plugin `{plugin}`: `builtin:{name}` is part of gitauto's binary, which is not signed plugin by plugin: remove `verify`"),
            );
            return None;
        }
        let key_text = self.expand(&raw.key)?;
        let (key, key_source) = match key_text.strip_prefix("file:") {
            Some(path) => {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "the config loads at start-up, in CLI commands, and on reload inside spawn_blocking"
                )]
                let text = std::fs::read_to_string(base.join(path)).map_err(|err| {
                    self.problem(
                        Some(raw.key.span()),
                        format!("plugin `{plugin}`: reading key file {}: {err}", base.join(path).display()),
                    )
                });
                (PublicKey::parse(&text.ok()?), key_text.clone())
            }
            None => (PublicKey::parse(&key_text), "inline key".to_owned()),
        };
        let key = key
            .map_err(|err| {
                self.problem(
                    Some(raw.key.span()),
                    format!("plugin `{plugin}`: `verify.key` is not a minisign public key: {err}"),
                )
            })
            .ok()?;
        let signature = match &raw.signature {
            None => None,
            Some(text) => {
                let expanded = self.expand(text)?;
                if let Some(path) = expanded.strip_prefix("file:") {
                    Some(SignatureSource::File(base.join(path)))
                } else if is_remote(&expanded) && matches!(wasm, Some(WasmSource::Remote(_))) {
                    let url = parse_url(&expanded)
                        .map_err(|err| {
                            self.problem(Some(text.span()), format!("plugin `{plugin}`: `verify.signature`: {err}"))
                        })
                        .ok()?;
                    Some(SignatureSource::Url(url))
                } else {
                    self.problem(
                        Some(text.span()),
                        format!(
                            "plugin `{plugin}`: `verify.signature` is `file:PATH`, or an https:// URL for a component \
                             that is fetched too"
                        ),
                    );
                    return None;
                }
            }
        };
        Some(Verify { key, key_source, signature })
    }
}
