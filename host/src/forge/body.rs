//! Reading a delivery's body: JSON, or GitHub-style form encoding with the JSON in a
//! `payload` field. Shared by every forge, and by workers that hand the payload to plugins.

use super::{ParseError, header};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// Content types a JSON-or-form forge sends.
pub const JSON_OR_FORM: &str = "application/json or application/x-www-form-urlencoded";
/// The content type a JSON-only forge sends.
pub const JSON_ONLY: &str = "application/json";

/// The media type of the request, lower-case, without parameters.
fn essence(headers: &HeaderMap) -> Option<String> {
    header(headers, "content-type").map(media_type)
}

fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The payload's JSON text. Form bodies are accepted only when `allow_form`.
pub fn json_text<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    event: &str,
    allow_form: bool,
) -> Result<Cow<'a, str>, ParseError> {
    let essence = essence(headers);
    match essence.as_deref() {
        Some("application/json") => {
            std::str::from_utf8(body).map(Cow::Borrowed).map_err(|err| ParseError::payload(event, err))
        }
        Some("application/x-www-form-urlencoded") if allow_form => form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| Cow::Owned(value.into_owned()))
            .ok_or_else(|| ParseError::payload(event, "form body without a `payload` field")),
        other => Err(ParseError::UnsupportedContentType {
            content_type: other.unwrap_or("(none)").to_owned(),
            expected: if allow_form { JSON_OR_FORM } else { JSON_ONLY },
        }),
    }
}

/// Deserialises the payload text into `T`, with the parser's reason on failure.
pub fn decode<T: DeserializeOwned>(text: &str, event: &str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|err| ParseError::payload(event, err))
}

/// The payload's JSON text out of a stored body, for handing to plugins: the body
/// itself, or its `payload` form field. Empty when neither is readable.
pub fn payload_text(content_type: Option<&str>, body: &[u8]) -> String {
    match content_type.map(media_type).as_deref() {
        Some("application/x-www-form-urlencoded") => form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default(),
        _ => String::from_utf8(body.to_vec()).unwrap_or_default(),
    }
}
