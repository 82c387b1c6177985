//! Reading a step's settings and a manual event's parameters into a plugin's types: an
//! error names the key at fault (`` `read_only`: expected a boolean, got "yes" ``), and the
//! `*_or_text` readers take a value given as text (`gitauto trigger NAME read_only=true
//! members=ann,bob`) where the plugin wants a boolean, a number or a list.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Request {
//!     #[serde(default, deserialize_with = "gitauto_plugin::settings::bool_or_text")]
//!     read_only: Option<bool>,
//!     #[serde(default, deserialize_with = "gitauto_plugin::settings::list_or_text")]
//!     members: Option<Vec<String>>,
//! }
//!
//! let request: Request = gitauto_plugin::settings::parse(r#"{"read_only": "true", "members": "ann, bob"}"#).unwrap();
//! assert_eq!((request.read_only, request.members), (Some(true), Some(vec!["ann".into(), "bob".into()])));
//! let Err(gitauto_plugin::Error::InvalidSettings(why)) = gitauto_plugin::settings::parse::<Request>(r#"{"read_only": "yes"}"#) else {
//!     panic!("\"yes\" is not a boolean");
//! };
//! assert_eq!(why, "`read_only`: expected a boolean, got \"yes\"");
//! ```

use crate::Error;
use serde::de::{DeserializeOwned, Error as _, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Deserialises `json` (a step's settings, a manual event's payload) into `S`; an error
/// is [`Error::InvalidSettings`] naming the key at fault.
pub fn parse<S: DeserializeOwned>(json: &str) -> Result<S, Error> {
    let value: Value = serde_json::from_str(json).map_err(|err| Error::invalid_settings(format!("not JSON: {err}")))?;
    from_value(value)
}

/// Deserialises an already parsed JSON value into `S`, naming the key at fault.
pub fn from_value<S: DeserializeOwned>(value: Value) -> Result<S, Error> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = plain(&err.into_inner().to_string());
        match path.as_str() {
            // The top level (a missing field names itself).
            "." | "" => Error::invalid_settings(message),
            path => Error::invalid_settings(format!("`{path}`: {message}")),
        }
    })
}

/// serde's "invalid type: string \"yes\", expected a boolean" as "expected a boolean, got
/// \"yes\"": what was wanted first, and a string shown as the user typed it.
fn plain(message: &str) -> String {
    let found = message.strip_prefix("invalid type: ").or_else(|| message.strip_prefix("invalid value: "));
    let Some((got, expected)) = found.and_then(|rest| rest.split_once(", expected ")) else {
        return message.to_owned();
    };
    let got = got.strip_prefix("string ").filter(|s| s.starts_with('"')).unwrap_or(got);
    format!("expected {expected}, got {got}")
}

/// A boolean, or the text `true` or `false` (any case, spaces around ignored); absent or
/// `null` is `None`. For `#[serde(default, deserialize_with = "...")]` on an `Option<bool>`.
pub fn bool_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Bool(flag) => Ok(Some(flag)),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(D::Error::invalid_value(Unexpected::Str(&text), &"a boolean")),
        },
        other => Err(D::Error::invalid_type(unexpected(&other), &"a boolean")),
    }
}

/// A list of strings, or text: comma-separated items, each trimmed, empty ones dropped
/// (`ann` is `["ann"]`, `ann, bob` is `["ann", "bob"]`); absent or `null` is `None`. For
/// `#[serde(default, deserialize_with = "...")]` on an `Option<Vec<String>>`.
pub fn list_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    const EXPECTED: &str = "a list of text, or comma-separated text";
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) => {
            Ok(Some(text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()))
        }
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                other => Err(D::Error::invalid_type(unexpected(&other), &"a list of text")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(D::Error::invalid_type(unexpected(&other), &EXPECTED)),
    }
}

/// A whole number, or text holding one (`timeout_seconds=30`); absent or `null` is `None`.
/// For `#[serde(default, deserialize_with = "...")]` on an `Option<u64>`.
pub fn u64_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    const EXPECTED: &str = "a whole number";
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(number) => match number.as_u64() {
            Some(n) => Ok(Some(n)),
            None => Err(D::Error::invalid_value(unexpected(&Value::Number(number)), &EXPECTED)),
        },
        Value::String(text) => match text.trim().parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(D::Error::invalid_value(Unexpected::Str(&text), &EXPECTED)),
        },
        other => Err(D::Error::invalid_type(unexpected(&other), &EXPECTED)),
    }
}

/// How serde names a JSON value in an error.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(flag) => Unexpected::Bool(*flag),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(text) => Unexpected::Str(text),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[serde(default)]
        action: Option<String>,
        #[serde(default, deserialize_with = "bool_or_text")]
        read_only: Option<bool>,
        #[serde(default, deserialize_with = "list_or_text")]
        members: Option<Vec<String>>,
        #[serde(default, deserialize_with = "u64_or_text")]
        timeout: Option<u64>,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Nested {
        depth: u32,
    }

    fn message(json: &str) -> String {
        match parse::<Request>(json) {
            Err(Error::InvalidSettings(msg)) => msg,
            other => panic!("{json}: expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn text_values_read_as_the_type_wanted() {
        type Read<'a> = (Option<bool>, Option<Vec<&'a str>>, Option<u64>);
        let cases: &[(&str, Read<'_>)] = &[
            (r#"{}"#, (None, None, None)),
            (r#"{"read_only": null, "members": null}"#, (None, None, None)),
            (r#"{"read_only": true, "members": ["ann"], "timeout": 3}"#, (Some(true), Some(vec!["ann"]), Some(3))),
            (r#"{"read_only": "true", "members": "ann", "timeout": "30"}"#, (Some(true), Some(vec!["ann"]), Some(30))),
            (r#"{"read_only": " FALSE ", "members": "ann, bob,,"}"#, (Some(false), Some(vec!["ann", "bob"]), None)),
            (r#"{"members": ""}"#, (None, Some(vec![]), None)),
        ];
        for (json, (read_only, members, timeout)) in cases {
            let request = parse::<Request>(json).unwrap_or_else(|err| panic!("{json}: {err:?}"));
            let members = members.as_ref().map(|m| m.iter().map(|s| (*s).to_owned()).collect());
            assert_eq!(
                (request.read_only, request.members, request.timeout),
                (*read_only, members, *timeout),
                "{json}"
            );
        }
    }

    #[test]
    fn errors_name_the_key_and_what_was_wanted() {
        let cases = [
            (r#"{"read_only": "yes"}"#, "`read_only`: expected a boolean, got \"yes\""),
            (r#"{"read_only": 1}"#, "`read_only`: expected a boolean, got integer `1`"),
            (r#"{"members": {"ann": 1}}"#, "`members`: expected a list of text, or comma-separated text, got map"),
            (r#"{"members": ["ann", 2]}"#, "`members`: expected a list of text, got integer `2`"),
            (r#"{"timeout": "soon"}"#, "`timeout`: expected a whole number, got \"soon\""),
            (r#"{"timeout": -1}"#, "`timeout`: expected a whole number, got integer `-1`"),
            (r#"{"action": 7}"#, "`action`: expected a string, got integer `7`"),
            (r#"{"nested": {"depth": "deep"}}"#, "`nested.depth`: expected u32, got \"deep\""),
            (r#"{"nested": {}}"#, "`nested`: missing field `depth`"),
            (r#""text""#, "expected struct Request, got \"text\""),
        ];
        for (json, want) in cases {
            assert_eq!(message(json), want, "{json}");
        }
        assert!(
            message(r#"{"acton": "x"}"#).starts_with("`acton`: unknown field `acton`"),
            "{}",
            message(r#"{"acton": "x"}"#)
        );
        assert!(message("{not json").starts_with("not JSON: "));
    }
}
