//! Reading a delivery's body: JSON, or GitHub-style form encoding with the JSON in a
//! `payload` field. Shared by every forge, and by workers that hand the payload to plugins.

use super::Headers;
use super::{ParseError, header};
use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// Content types a JSON-or-form forge sends.
pub const JSON_OR_FORM: &str = "application/json or application/x-www-form-urlencoded";
/// The content type a JSON-only forge sends.
pub const JSON_ONLY: &str = "application/json";

/// The media type of the request, lower-case, without parameters.
fn essence(headers: &Headers) -> Option<String> {
    header(headers, "content-type").map(media_type)
}

fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The payload's JSON text. Form bodies are accepted only when `allow_form`.
pub fn json_text<'a>(
    headers: &Headers,
    body: &'a [u8],
    event: &str,
    allow_form: bool,
) -> Result<Cow<'a, str>, ParseError> {
    let essence = essence(headers);
    match essence.as_deref() {
        Some("application/json") => {
            std::str::from_utf8(body).map(Cow::Borrowed).map_err(|err| ParseError::payload(event, err))
        }
        Some("application/x-www-form-urlencoded") if allow_form => match form_field(body, "payload") {
            Some(Ok(payload)) => Ok(Cow::Owned(payload)),
            Some(Err(err)) => Err(ParseError::payload(event, format!("the form's `payload` field: {err}"))),
            None => Err(ParseError::payload(event, "form body without a `payload` field")),
        },
        other => Err(ParseError::UnsupportedContentType {
            content_type: other.unwrap_or("(none)").to_owned(),
            expected: if allow_form { JSON_OR_FORM } else { JSON_ONLY },
        }),
    }
}

/// The first value of form field `name`, decoded strictly: text that is not UTF-8 once
/// percent-decoded is an error, never replaced with U+FFFD (which would change a name).
fn form_field(body: &[u8], name: &str) -> Option<Result<String, std::string::FromUtf8Error>> {
    let decode = |raw: &[u8]| {
        let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        String::from_utf8(percent_encoding::percent_decode(&spaced).collect())
    };
    body.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (decode(key).ok()? == name).then(|| decode(value))
    })
}

/// Deserialises the payload text into `T`, with the parser's reason on failure.
pub fn decode<T: DeserializeOwned>(text: &str, event: &str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|err| ParseError::payload(event, err))
}

/// The payload's JSON text out of a stored body, for handing to plugins: the body
/// itself, or its `payload` form field. Empty when neither is readable.
pub fn payload_text(content_type: Option<&str>, body: &[u8]) -> String {
    match content_type.map(media_type).as_deref() {
        Some("application/x-www-form-urlencoded") => {
            form_field(body, "payload").and_then(Result::ok).unwrap_or_default()
        }
        _ => String::from_utf8(body.to_vec()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_decode_strictly() {
        assert_eq!(form_field(b"a=1&payload=%7B%22x%22%3A+1%7D", "payload").unwrap().unwrap(), "{\"x\": 1}");
        assert_eq!(form_field(b"pay%6Coad=%C3%A9", "payload").unwrap().unwrap(), "é");
        assert!(form_field(b"payload=%FF", "payload").unwrap().is_err(), "not UTF-8 once decoded");
        assert!(form_field(b"payload", "payload").unwrap().unwrap().is_empty());
        assert!(form_field(b"other=1", "payload").is_none());
    }
}
