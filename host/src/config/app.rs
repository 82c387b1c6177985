//! A source's `app = { id, private_key }`: the GitHub App the host authenticates as. The
//! private key is read and parsed at load (a key that cannot sign is a config error);
//! `crate::forge_api` signs the app's JWTs with it and mints installation tokens.

use super::raw::RawApp;
use super::{Checker, secret};
use ring::signature::RsaKeyPair;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

/// What a host credential names to get GitHub App tokens instead of a secret:
/// `credential = "github-app"`.
pub const GITHUB_APP: &str = "github-app";

/// The repository permissions GitHub grants installation tokens, with the levels each
/// may have (GitHub's "Create an installation access token for an app").
pub const GITHUB_PERMISSIONS: &[(&str, &[&str])] = &[
    ("actions", &["read", "write"]),
    ("administration", &["read", "write"]),
    ("attestations", &["read", "write"]),
    ("checks", &["read", "write"]),
    ("codespaces", &["read", "write"]),
    ("contents", &["read", "write"]),
    ("dependabot_secrets", &["read", "write"]),
    ("deployments", &["read", "write"]),
    ("discussions", &["read", "write"]),
    ("environments", &["read", "write"]),
    ("issues", &["read", "write"]),
    ("merge_queues", &["read", "write"]),
    ("metadata", &["read", "write"]),
    ("packages", &["read", "write"]),
    ("pages", &["read", "write"]),
    ("pull_requests", &["read", "write"]),
    ("repository_custom_properties", &["read", "write"]),
    ("repository_hooks", &["read", "write"]),
    ("repository_projects", &["read", "write", "admin"]),
    ("secret_scanning_alerts", &["read", "write"]),
    ("secrets", &["read", "write"]),
    ("security_events", &["read", "write"]),
    ("single_file", &["read", "write"]),
    ("statuses", &["read", "write"]),
    ("vulnerability_alerts", &["read", "write"]),
    ("workflows", &["write"]),
];

/// `app = { ... }` of a GitHub source, validated.
#[derive(Clone)]
pub struct App {
    /// The app's numeric id (the JWT's `iss`).
    pub id: u64,
    /// The app's private key, parsed: it signs the JWTs and nothing else.
    pub key: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("id", &self.id).field("key", &"***").finish()
    }
}

/// Parses an RSA private key in PEM form: PKCS#1 (`BEGIN RSA PRIVATE KEY`, as GitHub
/// downloads it) or PKCS#8 (`BEGIN PRIVATE KEY`). Messages never quote the key.
pub fn parse_key(pem: &str) -> Result<RsaKeyPair, String> {
    use base64::Engine as _;
    let text = pem.trim();
    let (label, body) = armored(text)
        .ok_or("not a PEM private key (expected `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN PRIVATE KEY-----`)")?;
    if body.contains("ENCRYPTED") || label.contains("ENCRYPTED") {
        return Err("the private key is encrypted; give the key as GitHub downloads it (unencrypted)".into());
    }
    let base64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64.as_bytes())
        .map_err(|_| "the private key's PEM body is not base64".to_owned())?;
    let parsed = match label {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        other => return Err(format!("a PEM `{other}` is not an RSA private key")),
    };
    parsed.map_err(|err| format!("the private key cannot sign RS256: {err}"))
}

/// The label and body of the first PEM block in `text`.
fn armored(text: &str) -> Option<(&str, &str)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----"))?;
    Some((label, &body[..end]))
}

impl Checker<'_> {
    /// Validates a source's `app` table (github only).
    pub(super) fn app(&mut self, source: &str, forge: &str, raw: Spanned<RawApp>, base: &Path) -> Option<App> {
        let span = raw.span();
        let raw = raw.into_inner();
        if forge != "github" {
            self.problem(
                Some(span),
                format!("source \"{source}\": `app` is a GitHub App, and this source's forge is {forge}"),
            );
            return None;
        }
        let id = match raw.id.as_ref().map(|id| (*id.get_ref(), id.span())) {
            Some((id, _)) if id > 0 => Some(id as u64),
            Some((_, span)) => {
                self.problem(
                    Some(span),
                    format!("source \"{source}\": `app.id` must be the app's positive numeric id"),
                );
                None
            }
            None => {
                self.problem(Some(span.clone()), format!("source \"{source}\": `app` needs the app's `id`"));
                None
            }
        };
        let Some(reference) = raw.private_key.as_ref() else {
            self.problem(
                Some(span),
                format!("source \"{source}\": `app` needs a `private_key` (e.g. \"file:app.pem\")"),
            );
            return None;
        };
        let text = self.expand(reference)?;
        let shown = match text.strip_prefix("file:") {
            Some(path) => format!("{}", base.join(path).display()),
            None => "the value".to_owned(),
        };
        let key = secret::resolve(&text, base)
            .and_then(|pem| parse_key(pem.expose()).map_err(|why| format!("{shown}: {why}")))
            .map_err(|why| {
                self.problem(Some(reference.span()), format!("source \"{source}\": `app.private_key`: {why}"))
            })
            .ok()?;
        Some(App { id: id?, key: Arc::new(key) })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests make their keys with openssl")]
mod tests {
    use super::*;

    fn openssl(args: &[&str]) {
        let out = std::process::Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn pkcs1_and_pkcs8_keys_load_and_a_bad_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        openssl(&["genrsa", "-traditional", "-out", &path("pkcs1.pem"), "2048"]);
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &path("pkcs8.pem")]);
        std::fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let source = |name: &str, key: &str| {
            format!(
                "[sources.{name}]\nforge = \"github\"\nsecret = \"s\"\napp = {{ id = 7, private_key = \"file:{key}\" }}\n"
            )
        };
        let good = format!("{}{}", source("one", "pkcs1.pem"), source("eight", "pkcs8.pem"));
        let config = crate::config::Config::parse(&dir.path().join("gitauto.toml"), &good).unwrap();
        for name in ["one", "eight"] {
            let source = config.source(name).unwrap();
            assert_eq!(source.app.as_ref().map(|app| app.id), Some(7));
            let api = source.api.as_ref().unwrap();
            assert_eq!((api.url.as_str(), api.token.is_none()), ("https://api.github.com", true));
        }
        let err = crate::config::Config::parse(&dir.path().join("gitauto.toml"), &source("bad", "bad.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`app.private_key`: {}: the private key cannot sign RS256", path("bad.pem"))),
            "{err}"
        );
    }

    #[test]
    fn keys_that_are_not_rsa_private_keys_are_refused_with_a_reason() {
        let rows = [
            ("hello", "not a PEM private key"),
            ("-----BEGIN RSA PRIVATE KEY-----\n!!!\n-----END RSA PRIVATE KEY-----", "not base64"),
            ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", "cannot sign RS256"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "cannot sign RS256"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "is not an RSA private key"),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----", "encrypted"),
            ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n", "not a PEM private key"),
        ];
        for (pem, why) in rows {
            let err = parse_key(pem).err().unwrap_or_default();
            assert!(err.contains(why), "{pem:?}: {err}");
        }
    }
}
