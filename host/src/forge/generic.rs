//! A generic JSON source for anything that is not a known forge: HMAC-SHA256 of the body in
//! a configured header (`sha256=<hex>` or bare hex), and event fields read from the payload
//! through configured JSON pointers (RFC 6901):
//!
//! ```toml
//! [sources.ci]
//! forge = "generic"
//! secret = "${CI_WEBHOOK_SECRET}"
//! signature_header = "X-Signature"   # default X-Hub-Signature-256
//! delivery_header = "X-Delivery"     # optional; else a fresh id per delivery
//! event_header = "X-Event"           # optional; else `kind`
//! kind = "push"                      # default "push"
//! fields = { repository = "/project/slug", ref = "/change/ref", after = "/change/to" }
//! ```

use super::body::{decode, json_text};
use super::signature::{Hash, check_hex, sign_hex};
use super::{Dialect, Envelope, Forge, Incoming, Options, Origin, Outgoing, ParseError, VerifyError, header};
use super::{Headers, is_header_name};
use crate::event::{Event, Repository, is_null_commit, split_ref};
use crate::secret::Secret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

pub const FORGE: Forge = Forge { name: "generic", configure };

/// Event fields a pointer may fill; `repository` (the full name) is required.
const FIELDS: &[&str] =
    &["repository", "clone_url", "html_url", "default_branch", "ref", "before", "after", "sender", "action"];

struct Generic {
    signature_header: String,
    delivery_header: Option<String>,
    event_header: Option<String>,
    kind: String,
    fields: BTreeMap<String, String>,
}

fn header_option(value: Option<String>, option: &str) -> Result<Option<String>, String> {
    match value {
        Some(name) if !is_header_name(&name) => Err(format!("`{option}` = \"{name}\" is not a valid header name")),
        other => Ok(other),
    }
}

fn configure(options: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    let fields = options.fields.take().ok_or("a generic source needs `fields`, with at least `repository`")?;
    for (field, pointer) in &fields {
        if !FIELDS.contains(&field.as_str()) {
            return Err(format!("unknown field `{field}` in `fields` (known: {})", FIELDS.join(", ")));
        }
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("`fields.{field}` = \"{pointer}\" is not a JSON pointer (they start with `/`)"));
        }
    }
    if !fields.contains_key("repository") {
        return Err("`fields` must map `repository` (the repository's full name)".into());
    }
    Ok(Arc::new(Generic {
        signature_header: header_option(options.signature_header.take(), "signature_header")?
            .unwrap_or_else(|| "X-Hub-Signature-256".into()),
        delivery_header: header_option(options.delivery_header.take(), "delivery_header")?,
        event_header: header_option(options.event_header.take(), "event_header")?,
        kind: options.kind.take().unwrap_or_else(|| "push".into()),
        fields,
    }))
}

impl Generic {
    /// The text at a field's pointer: strings as they are, numbers and booleans printed.
    fn field(&self, payload: &Value, name: &str) -> Option<String> {
        let pointer = self.fields.get(name)?;
        match payload.pointer(pointer)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }
}

impl Dialect for Generic {
    fn forge(&self) -> &'static str {
        "generic"
    }

    fn envelope(&self, headers: &Headers) -> Envelope {
        let read = |name: &Option<String>| name.as_deref().and_then(|n| header(headers, n)).map(str::to_owned);
        Envelope { delivery: read(&self.delivery_header), event: read(&self.event_header) }
    }

    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], _: SystemTime) -> Result<(), VerifyError> {
        let value = header(headers, &self.signature_header);
        let prefix = if value.is_some_and(|v| v.trim_start().starts_with("sha256=")) { "sha256=" } else { "" };
        check_hex(&self.signature_header, value, prefix, Hash::Sha256, body, secrets)
    }

    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError> {
        let announced = self.event_header.as_deref().and_then(|name| header(headers, name));
        let kind = announced.unwrap_or(&self.kind);
        let text = json_text(headers, body, kind, false)?;
        let payload: Value = decode(&text, kind)?;
        let full_name = self.field(&payload, "repository").filter(|name| !name.is_empty()).ok_or_else(|| {
            ParseError::payload(
                kind,
                format!("no repository name at `{}` (fields.repository)", self.fields["repository"]),
            )
        })?;
        let (owner, name) = match full_name.rsplit_once('/') {
            Some((owner, name)) => (owner.to_owned(), name.to_owned()),
            None => (String::new(), full_name.clone()),
        };
        let git_ref =
            self.field(&payload, "ref").map(|r| if r.starts_with("refs/") { r } else { format!("refs/heads/{r}") });
        let (branch, tag) = git_ref.as_deref().map(split_ref).unwrap_or_default();
        let after = self.field(&payload, "after");
        let kind = if kind == "push" && tag.is_some() { "tag" } else { kind };
        Ok(Incoming::Events(vec![Event {
            delivery: at.delivery.to_owned(),
            source: at.source.to_owned(),
            forge: "generic".into(),
            kind: kind.to_owned(),
            action: self.field(&payload, "action"),
            repository: Repository {
                owner,
                name,
                full_name,
                clone_url: self.field(&payload, "clone_url").unwrap_or_default(),
                html_url: self.field(&payload, "html_url").unwrap_or_default(),
                default_branch: self.field(&payload, "default_branch"),
            },
            git_ref,
            branch,
            tag,
            before: self.field(&payload, "before"),
            deleted: after.as_deref().is_some_and(is_null_commit),
            after,
            // A generic payload lists no commits gitauto can read.
            commits_complete: false,
            sender: self.field(&payload, "sender"),
            ..Event::default()
        }]))
    }

    fn sign(&self, out: &Outgoing) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(name) = &self.event_header {
            headers.push((name.clone(), out.event.to_owned()));
        }
        if let Some(name) = &self.delivery_header {
            headers.push((name.clone(), out.delivery.to_owned()));
        }
        if let Some(secret) = out.secret {
            headers.push((self.signature_header.clone(), sign_hex("sha256=", Hash::Sha256, out.body, secret)));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, check_signature_table, fixture, headers};
    use super::*;
    use proptest::prelude::*;

    fn deploy_source() -> Options {
        let fields = [
            ("repository", "/project/slug"),
            ("clone_url", "/project/git"),
            ("html_url", "/project/web"),
            ("default_branch", "/project/trunk"),
            ("ref", "/change/ref"),
            ("before", "/change/from"),
            ("after", "/change/to"),
            ("sender", "/by/user"),
        ];
        Options {
            signature_header: Some("X-Signature".into()),
            delivery_header: Some("X-Delivery".into()),
            event_header: Some("X-Event".into()),
            fields: Some(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..Options::default()
        }
    }

    fn generic() -> Arc<dyn Dialect> {
        configure(&mut deploy_source()).unwrap()
    }

    #[test]
    fn signature_table() {
        check_signature_table(generic().as_ref(), "push", &fixture("generic", "deploy.json"));
    }

    #[test]
    fn bare_hex_signatures_are_accepted_too() {
        let body = fixture("generic", "deploy.json");
        let secret = Secret::new("s");
        let map = headers([("X-Signature", sign_hex("", Hash::Sha256, &body, &secret))]);
        assert_eq!(generic().verify(&map, &body, &[secret], SystemTime::now()), Ok(()));
    }

    #[test]
    fn fields_are_read_through_their_pointers() {
        let event = testing::event(generic().as_ref(), "deploy", "deploy.json");
        assert_eq!((event.forge.as_str(), event.kind.as_str()), ("generic", "deploy"));
        assert_eq!(event.repository.full_name, "acme/widgets");
        assert_eq!(event.repository.owner, "acme");
        assert_eq!(event.repository.clone_url, "https://git.example.com/acme/widgets.git");
        assert_eq!(event.branch.as_deref(), Some("main"));
        assert_eq!(event.after.as_deref(), Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
        assert_eq!(event.sender.as_deref(), Some("dana"));
        assert!(!event.commits_complete);
        let envelope = generic().envelope(&headers([("X-Delivery", "build-8812"), ("X-Event", "deploy")]));
        assert_eq!((envelope.delivery.as_deref(), envelope.event.as_deref()), (Some("build-8812"), Some("deploy")));
    }

    #[test]
    fn a_missing_repository_is_a_clear_error() {
        let err = testing::parse(generic().as_ref(), "push", br#"{"project": {}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unreadable push payload: no repository name at `/project/slug` (fields.repository)"
        );
    }

    #[test]
    fn configuration_errors() {
        let rows: [(Options, &str); 4] = [
            (Options::default(), "needs `fields`"),
            (
                Options { fields: Some([("ref".into(), "/r".into())].into()), ..Options::default() },
                "must map `repository`",
            ),
            (
                Options { fields: Some([("colour".into(), "/c".into())].into()), ..Options::default() },
                "unknown field `colour`",
            ),
            (
                Options { fields: Some([("repository".into(), "repo".into())].into()), ..Options::default() },
                "not a JSON pointer",
            ),
        ];
        for (mut options, want) in rows {
            let err = configure(&mut options).err().unwrap();
            assert!(err.contains(want), "{err}");
        }
        let mut bad_header = deploy_source();
        bad_header.signature_header = Some("X Signature".into());
        assert!(configure(&mut bad_header).err().unwrap().contains("not a valid header name"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
            let _ = testing::parse(generic().as_ref(), "push", &body);
        }
    }
}
