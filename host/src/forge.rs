//! Forges: each one's signature scheme and payload shape, behind one small interface,
//! [`Dialect`]: read the [`Envelope`] from the headers, [`Dialect::verify`] the raw bytes,
//! then [`Dialect::parse`] them into events. Each forge lives in its own module and is
//! listed once in [`FORGES`]; nothing else here knows about any particular forge.

mod bitbucket;
mod body;
mod comment_shape;
mod generic;
mod gitea;
mod github;
mod github_check;
mod github_installation;
mod github_shape;
mod gitlab;
mod gogs;
mod headers;
mod signature;

use crate::event::Event;
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use body::payload_text;
pub use headers::{Headers, is_header_name};

/// A forge's webhook dialect, configured for one `[sources.NAME]`.
pub trait Dialect: Send + Sync {
    /// The forge's name, as written in the config and in events.
    fn forge(&self) -> &'static str;

    /// The delivery id and event name, read from the headers before anything is trusted.
    fn envelope(&self, headers: &Headers) -> Envelope;

    /// Checks the signature over the raw body against every active secret. Runs before
    /// any parsing: until it passes, the body is attacker-controlled.
    fn verify(&self, headers: &Headers, body: &[u8], secrets: &[Secret], now: SystemTime) -> Result<(), VerifyError>;

    /// Parses a verified delivery into what it means.
    fn parse(&self, headers: &Headers, body: &[u8], at: &Origin) -> Result<Incoming, ParseError>;

    /// The headers this forge would send with `body` for `event`, signed with `secret`
    /// (for `gitauto send`, redelivery tests and benchmarks).
    fn sign(&self, outgoing: &Outgoing) -> Vec<(String, String)>;
}

/// Where a delivery came from, stamped on every event parsed out of it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The `[sources.NAME]`.
    pub source: &'a str,
    /// The delivery id.
    pub delivery: &'a str,
}

/// A delivery to sign, as a forge would send it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The forge's event name, e.g. `push` or `Push Hook`.
    pub event: &'a str,
    /// The JSON body.
    pub body: &'a [u8],
    /// The secret to sign with; `None` sends it unsigned.
    pub secret: Option<&'a Secret>,
    /// The delivery id to send.
    pub delivery: &'a str,
    /// The signing time (for schemes that sign a timestamp).
    pub now: SystemTime,
}

/// A forge gitauto supports: its name and how to configure its dialect.
pub struct Forge {
    /// The name used in `forge = "..."`.
    pub name: &'static str,
    /// Builds the dialect from the source's options, taking the ones it understands.
    pub configure: fn(&mut Options) -> Result<Arc<dyn Dialect>, String>,
}

/// Every supported forge. Adding a forge is a module and a line here.
pub const FORGES: &[Forge] =
    &[github::FORGE, gitlab::FORGE, gitea::GITEA, gitea::FORGEJO, gogs::FORGE, bitbucket::FORGE, generic::FORGE];

/// The dialect of the forge called `name`, configured from `options`. Options that
/// forge does not use are left in `options` for the caller to report.
pub fn configure(name: &str, options: &mut Options) -> Result<Arc<dyn Dialect>, String> {
    match FORGES.iter().find(|forge| forge.name == name) {
        Some(forge) => (forge.configure)(options),
        None => {
            let names: Vec<_> = FORGES.iter().map(|f| f.name).collect();
            Err(format!("unknown forge `{name}` (supported: {})", names.join(", ")))
        }
    }
}

/// A source's forge-specific settings. Each forge `take`s the ones it reads; whatever
/// is left was set for a forge that does not use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// GitHub, Bitbucket: also accept the SHA-1 `X-Hub-Signature`.
    pub legacy_sha1: Option<bool>,
    /// GitLab: how old a signed `webhook-timestamp` may be (default 5 minutes).
    pub replay_window: Option<Duration>,
    /// Generic: the header carrying the HMAC-SHA256 hex digest.
    pub signature_header: Option<String>,
    /// Generic: the header carrying the delivery id.
    pub delivery_header: Option<String>,
    /// Generic: the header carrying the event kind.
    pub event_header: Option<String>,
    /// Generic: the event kind when no header names it.
    pub kind: Option<String>,
    /// Generic: event field → JSON pointer into the payload.
    pub fields: Option<BTreeMap<String, String>>,
}

impl Options {
    /// Names of the options still set.
    pub fn leftover(&self) -> Vec<&'static str> {
        let Options { legacy_sha1, replay_window, signature_header, delivery_header, event_header, kind, fields } =
            self;
        let set = [
            ("legacy_sha1", legacy_sha1.is_some()),
            ("replay_window", replay_window.is_some()),
            ("signature_header", signature_header.is_some()),
            ("delivery_header", delivery_header.is_some()),
            ("event_header", event_header.is_some()),
            ("kind", kind.is_some()),
            ("fields", fields.is_some()),
        ];
        set.into_iter().filter(|(_, is_set)| *is_set).map(|(name, _)| name).collect()
    }
}

/// Why a delivery's signature was not accepted. Answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is absent.
    #[error("missing signature header `{header}`")]
    MissingSignature {
        /// The header (or headers) that should carry it.
        header: String,
    },
    /// The header is present but not in the forge's format.
    #[error("malformed signature header `{header}`: {reason}")]
    MalformedSignature {
        /// The header.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No configured secret produces this signature.
    #[error("signature in `{header}` does not match the body signed with any configured secret")]
    Mismatch {
        /// The header.
        header: String,
    },
    /// A signed timestamp outside the replay window.
    #[error("signed timestamp is {age_secs} s from now, outside the replay window of {window_secs} s")]
    Stale {
        /// How far the timestamp is from now, in seconds.
        age_secs: u64,
        /// The window, in seconds.
        window_secs: u64,
    },
}

/// Why a verified delivery could not be read. Answered with 400 (or 415).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A header the forge always sends is missing.
    #[error("missing header `{header}`")]
    MissingHeader {
        /// The header.
        header: String,
    },
    /// The body's content type is not one the forge uses.
    #[error("unsupported content type `{content_type}` (expected {expected})")]
    UnsupportedContentType {
        /// What was sent.
        content_type: String,
        /// What the forge sends.
        expected: &'static str,
    },
    /// The body is not the payload the event header announced.
    #[error("unreadable {event} payload: {reason}")]
    Payload {
        /// The forge's event name.
        event: String,
        /// The parser's reason.
        reason: String,
    },
    /// The body is larger than the daemon takes (`[server] max_body`): a delivery that did
    /// not come over HTTP, where the server refuses it before reading it whole.
    #[error("a body of {size} bytes is larger than the limit of {limit} bytes (`max_body`)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A name in the event (repository, ref, commit, path) could escape where it is used.
    #[error("{0}")]
    UnsafeName(#[from] crate::event::names::UnsafeName),
}

impl ParseError {
    /// A payload error for `event`.
    pub(crate) fn payload(event: &str, reason: impl ToString) -> Self {
        ParseError::Payload { event: event.to_owned(), reason: reason.to_string() }
    }
}

/// What a verified delivery turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Events to route: usually one; a Bitbucket push carries one per changed ref.
    Events(Vec<Event>),
    /// The forge checking that the hook works.
    Ping,
    /// An event kind gitauto does not act on; the reason says which.
    Ignored(String),
}

/// Facts about a delivery that are read from headers alone, before verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The forge's delivery id, when it sends one.
    pub delivery: Option<String>,
    /// The forge's event name, e.g. `push`.
    pub event: Option<String>,
}

/// The value of a header, if present and valid text.
pub(crate) fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.get(name)
}

/// The first of `names` that is present.
pub(crate) fn first_header<'a>(headers: &'a Headers, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| header(headers, name))
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forge_is_configurable_by_name_and_unknown_ones_are_listed() {
        for forge in FORGES {
            let mut options = Options::default();
            if forge.name == "generic" {
                options.fields = Some([("repository".to_owned(), "/repo".to_owned())].into());
            }
            let dialect = configure(forge.name, &mut options).unwrap_or_else(|err| panic!("{}: {err}", forge.name));
            assert_eq!(dialect.forge(), forge.name);
            assert!(options.leftover().is_empty(), "{}", forge.name);
        }
        let err = configure("sourcehut", &mut Options::default()).err().unwrap();
        assert!(err.starts_with("unknown forge `sourcehut` (supported: github, gitlab, gitea, forgejo"), "{err}");
    }

    #[test]
    fn options_a_forge_does_not_use_are_left_over() {
        let mut options = Options { replay_window: Some(Duration::from_secs(1)), ..Options::default() };
        configure("github", &mut options).unwrap();
        assert_eq!(options.leftover(), ["replay_window"]);
    }
}
