//! Forges: each one's signature scheme and payload shape, behind one small interface:
//! [`verify`] the raw bytes, then [`parse`] them into an [`Event`]. Each forge lives in
//! its own module; this file only dispatches.

mod github;

use crate::config::Secret;
use crate::event::Event;
use axum::http::HeaderMap;

/// A supported forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// GitHub and GitHub Enterprise.
    GitHub,
}

impl Forge {
    /// Every supported forge, for messages.
    pub const ALL: &[Forge] = &[Forge::GitHub];

    /// The name used in the config and in events.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
        }
    }
}

impl std::str::FromStr for Forge {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Forge::ALL.iter().copied().find(|forge| forge.name() == text).ok_or_else(|| {
            let names: Vec<_> = Forge::ALL.iter().map(|f| f.name()).collect();
            format!("unknown forge `{text}` (supported: {})", names.join(", "))
        })
    }
}

impl std::fmt::Display for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a delivery's signature was not accepted. Answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is absent.
    #[error("missing signature header `{header}`")]
    MissingSignature {
        /// The header that should carry it.
        header: &'static str,
    },
    /// The header is present but not in the forge's format.
    #[error("malformed signature header `{header}`: {reason}")]
    MalformedSignature {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No configured secret produces this signature.
    #[error("signature in `{header}` does not match the body signed with any configured secret")]
    Mismatch {
        /// The header.
        header: &'static str,
    },
}

/// Why a verified delivery could not be read. Answered with 400 (or 415).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A header the forge always sends is missing.
    #[error("missing header `{header}`")]
    MissingHeader {
        /// The header.
        header: &'static str,
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
}

/// What a verified delivery turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An event to route.
    Event(Box<Event>),
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

/// Reads the delivery id and event name from the headers.
pub fn envelope(forge: Forge, headers: &HeaderMap) -> Envelope {
    match forge {
        Forge::GitHub => github::envelope(headers),
    }
}

/// Checks the delivery's signature over the raw body against every secret. Runs before
/// any parsing: the body is attacker-controlled until this passes.
pub fn verify(forge: Forge, headers: &HeaderMap, body: &[u8], secrets: &[Secret]) -> Result<(), VerifyError> {
    match forge {
        Forge::GitHub => github::verify(headers, body, secrets),
    }
}

/// Parses a verified delivery. `delivery` becomes the event's delivery id.
pub fn parse(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    source: &str,
    delivery: &str,
) -> Result<Incoming, ParseError> {
    match forge {
        Forge::GitHub => github::parse(headers, body, source, delivery),
    }
}

/// The payload's JSON text out of a stored body, for handing to plugins.
pub fn payload_text(forge: Forge, content_type: Option<&str>, body: &[u8]) -> String {
    match forge {
        Forge::GitHub => github::payload_text(content_type, body),
    }
}

/// The value of a header, if present and valid text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// HMAC over `body` with each secret; true when one equals `expected` (compared in
/// constant time by the MAC implementation).
fn hmac_matches<D: hmac::EagerHash>(body: &[u8], secrets: &[Secret], expected: &[u8]) -> bool
where
    hmac::Hmac<D>: hmac::KeyInit + hmac::Mac,
{
    use hmac::{KeyInit, Mac};
    secrets.iter().any(|secret| {
        let mut mac = <hmac::Hmac<D> as KeyInit>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        mac.verify_slice(expected).is_ok()
    })
}
