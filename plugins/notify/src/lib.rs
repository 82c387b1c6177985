//! `notify`: sends one notification over the `http` capability: any JSON (tx-manager's
//! build callback), a Slack incoming webhook, a Teams Workflows webhook (an Adaptive
//! Card), a Matrix room message or plain text. Credentials are the host's (a granted
//! host's `credential`); the grant decides which hosts it may reach. Building the request
//! and reading the answer are plain functions, tested natively; `handle` only sends.

use gitauto_plugin::http::{self, HttpError, Method};
use gitauto_plugin::{Error, Event, Outcome, Plugin, log};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Most bytes of the answer's body kept in the step's output.
const MAX_OUTPUT_BODY: usize = 4 * 1024;
/// Most bytes of the answer's body quoted in a summary or error.
const MAX_SUMMARY_BODY: usize = 1024;
/// Headers the plugin may not set: the host sets them, or holds the credential.
const REFUSED_HEADERS: &[&str] = &["authorization", "host", "content-length", "transfer-encoding", "connection"];
/// The Adaptive Card schema version sent to Teams (Teams renders up to 1.5 on every client).
const ADAPTIVE_CARD_VERSION: &str = "1.4";

/// The step's `with` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where to send it; for Matrix, instead of `homeserver` and `room`.
    url: Option<String>,
    /// The body's shape (default: `json` when `body` is a table or list, `text` when only
    /// `text` is given).
    format: Option<Format>,
    /// The JSON body, for `format = "json"`.
    body: Option<Value>,
    /// The message, for the other formats.
    text: Option<String>,
    /// A heading for the message (bold), for the other formats.
    title: Option<String>,
    /// Matrix: the message as HTML (`formatted_body`), shown instead of `text` by clients
    /// that render HTML.
    html: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// `POST` (default) or `PUT` (default for Matrix).
    method: Option<String>,
    /// Give up on the request after this long: `"30s"`, `"500ms"`, `"2m"` or seconds.
    timeout: Option<Timeout>,
    /// Matrix: the homeserver's base URL, e.g. `https://matrix.example.org`.
    homeserver: Option<String>,
    /// Matrix: the room id, e.g. `!abcdef:example.org`.
    room: Option<String>,
    /// Matrix: the transaction id (default: from the delivery and the message, so a
    /// retried job sends the same id and the homeserver keeps one message).
    txn_id: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Format {
    Json,
    Slack,
    Teams,
    Matrix,
    Text,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Teams => "teams",
            Format::Matrix => "matrix",
            Format::Text => "text",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Timeout {
    Seconds(f64),
    Text(String),
}

/// A request ready to send, and what messages call it.
#[derive(Debug)]
struct Prepared {
    format: Format,
    method: Method,
    url: String,
    /// `scheme://host[:port]` of `url`: messages show this, never the path or query,
    /// which may carry a secret (Slack's and Teams' webhook URLs do).
    origin: String,
    /// `host[:port]` as written in `url`.
    host: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: Option<u32>,
}

impl Prepared {
    /// `POST to hooks.slack.com`.
    fn what(&self) -> String {
        format!("{} to {}", method_name(self.method), self.host)
    }
}

struct Notify;

impl Plugin for Notify {
    type Settings = Settings;

    fn handle(event: Event, settings: Settings) -> Result<Outcome, Error> {
        let prepared = prepare(&event.delivery, settings)?;
        log::info(&format!(
            "{} {}/… ({} notification, {} bytes)",
            method_name(prepared.method),
            prepared.origin,
            prepared.format.name(),
            prepared.body.len()
        ));
        let request = http::Request {
            method: prepared.method,
            url: prepared.url.clone(),
            headers: prepared.headers.clone(),
            body: Some(prepared.body.clone()),
            timeout: prepared.timeout_ms.map(u64::from),
        };
        let response = http::send(&request).map_err(|err| refused(&prepared, err))?;
        log::info(&format!("{} answered HTTP {}", prepared.what(), response.status));
        let outcome = conclude(&prepared, response.status, &response.headers, &response.body)?;
        if outcome.status != gitauto_plugin::Status::Success {
            log::error(&outcome.summary);
        }
        Ok(outcome)
    }
}

/// Checks the settings and builds the request. `delivery` seeds Matrix's transaction id.
fn prepare(delivery: &str, settings: Settings) -> Result<Prepared, Error> {
    let format = match (settings.format, &settings.body, &settings.text) {
        (Some(format), _, _) => format,
        (None, Some(Value::Object(_) | Value::Array(_)), _) => Format::Json,
        (None, Some(_), _) => {
            return Err(Error::invalid_settings(
                "`body` is not a table or a list: set `format = \"json\"` to send it as it is, or write the message in `text`",
            ));
        }
        (None, None, Some(_)) => Format::Text,
        (None, None, None) => return Err(Error::invalid_settings("`body` (JSON) or `text` (a message) is required")),
    };
    let for_format = |key: &str, allowed: &str| {
        Error::invalid_settings(format!("`{key}` applies to {allowed}, not to format `{}`", format.name()))
    };
    if format == Format::Json {
        for (key, given) in [("text", settings.text.is_some()), ("title", settings.title.is_some())] {
            if given {
                return Err(for_format(key, "the slack, teams, matrix and text formats (for json, put it in `body`)"));
            }
        }
    } else if settings.body.is_some() {
        return Err(for_format("body", "format `json` (for a message, use `text` and `title`)"));
    }
    if format != Format::Matrix {
        for (key, given) in [
            ("homeserver", settings.homeserver.is_some()),
            ("room", settings.room.is_some()),
            ("txn_id", settings.txn_id.is_some()),
            ("html", settings.html.is_some()),
        ] {
            if given {
                return Err(for_format(key, "format `matrix`"));
            }
        }
    }

    let (content_type, body) = match format {
        Format::Json => {
            let body = settings.body.as_ref().expect("json is chosen only with a body or by `format`");
            ("application/json", serde_json::to_vec(body).expect("a JSON value serialises"))
        }
        Format::Text => ("text/plain; charset=utf-8", plain(settings.title.as_deref(), &text(&settings)?).into_bytes()),
        Format::Slack => ("application/json", slack(settings.title.as_deref(), &text(&settings)?)),
        Format::Teams => ("application/json", teams(settings.title.as_deref(), &text(&settings)?)),
        Format::Matrix => {
            ("application/json", matrix(settings.title.as_deref(), &text(&settings)?, settings.html.as_deref()))
        }
    };

    let url = match (format, &settings.url, &settings.homeserver, &settings.room) {
        (_, Some(_), Some(_), _) | (_, Some(_), _, Some(_)) => {
            return Err(Error::invalid_settings("give `url`, or `homeserver` and `room`, not both"));
        }
        (Format::Matrix, Some(url), None, None) => {
            let url = url.trim_end_matches('/');
            // The send endpoint without its transaction id: the id is ours to add.
            if url.ends_with("/send/m.room.message") {
                format!("{url}/{}", encode(&txn_id(delivery, &settings, &body)))
            } else {
                url.to_owned()
            }
        }
        (Format::Matrix, None, Some(homeserver), Some(room)) => {
            if !room.starts_with('!') {
                return Err(Error::invalid_settings(format!(
                    "`room` = `{room}` is not a room id: Matrix's send API takes the id (`!…:server`, in the room's settings), not an alias"
                )));
            }
            format!(
                "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                homeserver.trim_end_matches('/'),
                encode(room),
                encode(&txn_id(delivery, &settings, &body))
            )
        }
        (Format::Matrix, None, _, _) => {
            return Err(Error::invalid_settings("format `matrix` needs `homeserver` and `room`, or the full `url`"));
        }
        (_, Some(url), None, None) => url.clone(),
        (_, None, _, _) => return Err(Error::invalid_settings("`url` is required")),
    };
    let (origin, host) = origin(&url)?;

    let method = match settings.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None if format == Format::Matrix => Method::Put,
        None | Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some(other) => {
            return Err(Error::invalid_settings(format!(
                "`method` = `{other}`: a notification is sent with POST or PUT"
            )));
        }
    };

    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    for (name, value) in &settings.headers {
        let lower = name.to_ascii_lowercase();
        if REFUSED_HEADERS.contains(&lower.as_str()) {
            let why = if lower == "authorization" {
                "the credential is the host's: give the granted host a `credential` in `grants.hosts`"
            } else {
                "the host sets it"
            };
            return Err(Error::invalid_settings(format!("`headers` may not set `{name}`: {why}")));
        }
        headers.retain(|(existing, _)| *existing != lower);
        headers.push((lower, value.clone()));
    }

    let timeout_ms = settings.timeout.as_ref().map(timeout_ms).transpose()?;
    Ok(Prepared { format, method, url, origin, host, headers, body, timeout_ms })
}

/// The `text` setting, required by every format but json.
fn text(settings: &Settings) -> Result<String, Error> {
    settings.text.clone().ok_or_else(|| {
        Error::invalid_settings(format!(
            "`text` is required for format `{}`",
            settings.format.map_or("text", Format::name)
        ))
    })
}

/// A message as plain text: the title, a blank line, the text.
fn plain(title: Option<&str>, text: &str) -> String {
    match title {
        Some(title) => format!("{title}\n\n{text}"),
        None => text.to_owned(),
    }
}

/// A Slack incoming webhook's message: `text` in mrkdwn, the title as a bold first line.
fn slack(title: Option<&str>, text: &str) -> Vec<u8> {
    let text = match title {
        Some(title) => format!("*{title}*\n{text}"),
        None => text.to_owned(),
    };
    serde_json::to_vec(&json!({ "text": text })).expect("a JSON value serialises")
}

/// A Teams Workflows webhook's message ("When a Teams webhook request is received"): one
/// Adaptive Card attachment, the title as a bold heading. The Office 365 connectors'
/// MessageCard is retired and Workflows do not take it.
fn teams(title: Option<&str>, text: &str) -> Vec<u8> {
    let mut blocks = Vec::new();
    if let Some(title) = title {
        blocks.push(json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true}));
    }
    blocks.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
    let message = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": ADAPTIVE_CARD_VERSION,
                "body": blocks,
            },
        }],
    });
    serde_json::to_vec(&message).expect("a JSON value serialises")
}

/// A Matrix `m.room.message` of type `m.text`; with a title or `html`, also its HTML form.
fn matrix(title: Option<&str>, text: &str, html: Option<&str>) -> Vec<u8> {
    let mut content = json!({ "msgtype": "m.text", "body": plain(title, text) });
    if title.is_some() || html.is_some() {
        let heading = title.map(|title| format!("<strong>{}</strong><br>", escape_html(title))).unwrap_or_default();
        let rest = html.map_or_else(|| escape_html(text).replace('\n', "<br>"), str::to_owned);
        content["format"] = "org.matrix.custom.html".into();
        content["formatted_body"] = format!("{heading}{rest}").into();
    }
    serde_json::to_vec(&content).expect("a JSON value serialises")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Matrix's transaction id: the `txn_id` setting, or one made of the delivery id and a
/// hash of the room and the message. A retry of the job sends the same message for the
/// same delivery, so the homeserver recognises the id and posts the message once; another
/// rule's (different) message for the same delivery gets another id.
fn txn_id(delivery: &str, settings: &Settings, body: &[u8]) -> String {
    if let Some(id) = &settings.txn_id {
        return id.clone();
    }
    let delivery: String =
        delivery.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(64).collect();
    let mut hash = Fnv::default();
    for part in [settings.url.as_deref(), settings.homeserver.as_deref(), settings.room.as_deref()] {
        hash.write(part.unwrap_or_default().as_bytes());
        hash.write(&[0]);
    }
    hash.write(body);
    format!("gitauto.{delivery}.{:016x}", hash.0)
}

/// FNV-1a, 64 bits: a stable hash with no dependency (collisions would need a second
/// message for the same delivery and room with the same hash, and cost one message).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `text` as one URL path segment: everything but unreserved characters percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `scheme://authority` and the authority of an http(s) URL.
fn origin(url: &str) -> Result<(String, String), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        .ok_or_else(|| Error::invalid_settings("`url` must be an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::invalid_settings("`url` has no host"));
    }
    if authority.contains('@') {
        return Err(Error::invalid_settings(
            "`url` carries a user or password: give the granted host a `credential` in `grants.hosts` instead",
        ));
    }
    Ok((format!("{}://{authority}", scheme.to_ascii_lowercase()), authority.to_ascii_lowercase()))
}

fn timeout_ms(timeout: &Timeout) -> Result<u32, Error> {
    let seconds = match timeout {
        Timeout::Seconds(seconds) => Some(*seconds),
        Timeout::Text(text) => {
            let text = text.trim();
            let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
            let scale = match unit {
                "ms" => Some(0.001),
                "" | "s" => Some(1.0),
                "m" => Some(60.0),
                "h" => Some(3600.0),
                _ => None,
            };
            number.trim().parse::<f64>().ok().zip(scale).map(|(n, scale)| n * scale)
        }
    };
    match seconds {
        Some(seconds) if seconds > 0.0 && seconds.is_finite() => Ok((seconds * 1000.0).min(f64::from(u32::MAX)) as u32),
        _ => Err(Error::invalid_settings(
            "`timeout` must be a positive duration: \"30s\", \"500ms\", \"2m\" or a number of seconds",
        )),
    }
}

/// The step's outcome from the answer: 2xx succeeds; 429 and 5xx are worth a retry;
/// anything else is the receiver's refusal, a failure carrying its answer.
fn conclude(prepared: &Prepared, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Outcome, Error> {
    let answer = String::from_utf8_lossy(body);
    let output_body = cut(&answer, MAX_OUTPUT_BODY);
    let quoted = one_line(&cut(&answer, MAX_SUMMARY_BODY));
    let mut output = json!({ "status": status, "body": output_body });
    let kind = prepared.format.name();
    let host = &prepared.host;
    if (200..300).contains(&status) {
        if prepared.format == Format::Matrix
            && let Some(event_id) = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("event_id").cloned())
        {
            output["event_id"] = event_id;
        }
        return Ok(Outcome::success(format!("{kind} notification sent to {host}: HTTP {status}")).with_output(&output));
    }
    let with_body = if quoted.is_empty() { String::new() } else { format!(": {quoted}") };
    if status == 429 || status >= 500 {
        let retry_after = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
            .map(|(_, value)| {
                format!(" (Retry-After: {}; the rule's `retry_backoff` sets when it is retried)", value.trim())
            })
            .unwrap_or_default();
        return Err(Error::transient(format!(
            "{kind} notification to {host} not taken: HTTP {status}{retry_after}{with_body}"
        )));
    }
    let why = format!("{kind} notification to {host} refused: HTTP {status}{with_body}");
    Ok(Outcome::failure(why).with_output(&output))
}

/// The error for a request the `http` capability did not complete, naming only the
/// URL's origin.
fn refused(prepared: &Prepared, err: HttpError) -> Error {
    let what = prepared.what();
    let host = &prepared.host;
    let message = redact(&err.message(), &prepared.origin);
    match err {
        HttpError::Denied(_) if message.contains("is not granted") => Error::invalid_settings(format!(
            "{what} refused: {host} is not among the plugin's granted hosts: add it to its `grants.hosts` ({message})"
        )),
        HttpError::Denied(_) | HttpError::InvalidRequest(_) => {
            Error::invalid_settings(format!("{what} refused: {message}"))
        }
        HttpError::Timeout(_) | HttpError::Connection(_) => Error::transient(format!("{what} failed: {message}")),
        HttpError::TooLarge(_) => Error::failed(format!("{what}: {message}")),
    }
}

/// `message` with every URL starting at `origin` shown as `origin/…`.
fn redact(message: &str, origin: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(origin) {
        let after = &rest[at + origin.len()..];
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let tail = &after[..end];
        out.push_str(&rest[..at]);
        out.push_str(origin);
        if !tail.is_empty() && tail != ":" {
            out.push_str("/…");
        }
        if tail.ends_with(':') {
            out.push(':');
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` on one line, for a summary.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
    }
}

gitauto_plugin::export!(Notify);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(value: Value) -> Settings {
        serde_json::from_value(value).unwrap()
    }

    fn prepared(value: Value) -> Prepared {
        prepare("d-1", settings(value)).unwrap()
    }

    fn invalid(value: Value) -> String {
        match prepare("d-1", settings(value)) {
            Err(Error::InvalidSettings(message)) => message,
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    fn body(prepared: &Prepared) -> Value {
        serde_json::from_slice(&prepared.body).unwrap()
    }

    #[test]
    fn each_format_has_its_shape_and_content_type() {
        let json =
            prepared(json!({"url": "https://ci.example.com/callback?token=s3cret", "body": {"n": 7, "ok": true}}));
        assert_eq!((json.format, json.method, json.host.as_str()), (Format::Json, Method::Post, "ci.example.com"));
        assert_eq!(json.origin, "https://ci.example.com");
        assert_eq!(body(&json), json!({"n": 7, "ok": true}));
        assert_eq!(json.headers, [("content-type".to_owned(), "application/json".to_owned())]);

        let slack = prepared(
            json!({"url": "https://hooks.slack.com/services/T/B/x", "format": "slack", "title": "Build", "text": "ok"}),
        );
        assert_eq!(body(&slack), json!({"text": "*Build*\nok"}));

        let teams = prepared(json!({"url": "https://x.logic.azure.com/wf", "format": "teams", "text": "ok"}));
        let card = &body(&teams)["attachments"][0];
        assert_eq!(body(&teams)["type"], "message");
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"], json!([{"type": "TextBlock", "text": "ok", "wrap": true}]));

        let text = prepared(json!({"url": "http://127.0.0.1:9/t", "text": "a <b>", "title": "T"}));
        assert_eq!(text.format, Format::Text);
        assert_eq!(text.body, b"T\n\na <b>");
        assert_eq!(text.headers[0].1, "text/plain; charset=utf-8");

        let matrix = prepared(json!({
            "format": "matrix", "homeserver": "https://m.example.org/", "room": "!r:example.org",
            "title": "<Build>", "text": "a\nb"
        }));
        assert_eq!(matrix.method, Method::Put);
        assert!(
            matrix.url.starts_with(
                "https://m.example.org/_matrix/client/v3/rooms/%21r%3Aexample.org/send/m.room.message/gitauto.d-1."
            ),
            "{}",
            matrix.url
        );
        assert_eq!(
            body(&matrix),
            json!({"msgtype": "m.text", "body": "<Build>\n\na\nb", "format": "org.matrix.custom.html",
                   "formatted_body": "<strong>&lt;Build&gt;</strong><br>a<br>b"})
        );
        let bare =
            prepared(json!({"format": "matrix", "homeserver": "https://m.example.org", "room": "!r:x", "text": "hi"}));
        assert_eq!(body(&bare), json!({"msgtype": "m.text", "body": "hi"}));
    }

    #[test]
    fn matrix_transaction_ids_repeat_for_the_same_message_and_differ_for_another() {
        let base = json!({"format": "matrix", "homeserver": "https://m.example.org", "room": "!r:x", "text": "hi"});
        let again = prepared(base.clone());
        assert_eq!(prepared(base.clone()).url, again.url, "a retry sends the same id");
        let mut other = base.clone();
        other["text"] = "bye".into();
        assert_ne!(prepared(other).url, again.url);
        assert_ne!(prepare("d-2", settings(base.clone())).unwrap().url, again.url);
        let mut given = base.clone();
        given["txn_id"] = "job 7/1".into();
        assert!(prepared(given).url.ends_with("/send/m.room.message/job%207%2F1"));
        let full = prepared(
            json!({"format": "matrix", "url": "https://m.example.org/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message", "text": "hi"}),
        );
        assert!(
            full.url
                .starts_with("https://m.example.org/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/gitauto.d-1.")
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_the_key() {
        let rows = [
            (json!({"body": {"a": 1}}), "`url` is required"),
            (json!({"url": "https://x"}), "`body` (JSON) or `text` (a message) is required"),
            (json!({"url": "https://x", "body": "hi"}), "`body` is not a table or a list"),
            (json!({"url": "https://x", "format": "slack"}), "`text` is required for format `slack`"),
            (json!({"url": "https://x", "body": {}, "text": "t"}), "`text` applies to the slack"),
            (
                json!({"url": "https://x", "format": "slack", "text": "t", "body": {}}),
                "`body` applies to format `json`",
            ),
            (json!({"url": "https://x", "text": "t", "room": "!r:x"}), "`room` applies to format `matrix`"),
            (json!({"url": "ftp://x/y", "text": "t"}), "`url` must be an http:// or https:// URL"),
            (json!({"url": "https://u:p@x/y", "text": "t"}), "`url` carries a user or password"),
            (json!({"url": "https://x", "text": "t", "method": "DELETE"}), "`method` = `DELETE`"),
            (
                json!({"url": "https://x", "text": "t", "headers": {"Authorization": "Bearer x"}}),
                "may not set `Authorization`",
            ),
            (json!({"url": "https://x", "text": "t", "headers": {"host": "y"}}), "may not set `host`"),
            (
                json!({"url": "https://x", "text": "t", "headers": {"Content-Length": "1"}}),
                "may not set `Content-Length`",
            ),
            (json!({"url": "https://x", "text": "t", "timeout": "soon"}), "`timeout` must be a positive duration"),
            (json!({"format": "matrix", "homeserver": "https://m", "text": "t"}), "needs `homeserver` and `room`"),
            (json!({"format": "matrix", "homeserver": "https://m", "room": "#a:m", "text": "t"}), "is not a room id"),
            (json!({"format": "matrix", "url": "https://m", "room": "!a:m", "text": "t"}), "not both"),
        ];
        for (value, want) in rows {
            let message = invalid(value.clone());
            assert!(message.contains(want), "{value}: {message}");
        }
    }

    #[test]
    fn headers_method_and_timeout_are_taken() {
        let p = prepared(json!({
            "url": "https://x/y", "body": [1], "method": "put", "timeout": "1.5s",
            "headers": {"X-Build": "7", "Content-Type": "application/cloudevents+json"}
        }));
        assert_eq!(p.method, Method::Put);
        assert_eq!(p.timeout_ms, Some(1500));
        assert_eq!(
            p.headers,
            [
                ("content-type".to_owned(), "application/cloudevents+json".to_owned()),
                ("x-build".to_owned(), "7".to_owned())
            ]
        );
        for (timeout, ms) in [(json!(2), 2000), (json!("500ms"), 500), (json!("2m"), 120_000)] {
            assert_eq!(prepared(json!({"url": "https://x", "text": "t", "timeout": timeout})).timeout_ms, Some(ms));
        }
    }

    #[test]
    fn answers_decide_the_outcome() {
        let p = prepared(json!({"url": "https://hooks.slack.com/services/T/B/secret", "format": "slack", "text": "t"}));
        let ok = conclude(&p, 200, &[], b"ok").unwrap();
        assert_eq!(ok.status, gitauto_plugin::Status::Success);
        assert_eq!(ok.summary, "slack notification sent to hooks.slack.com: HTTP 200");
        assert_eq!(serde_json::from_str::<Value>(&ok.output).unwrap(), json!({"status": 200, "body": "ok"}));

        let refused = conclude(&p, 404, &[], b"no_service\n").unwrap();
        assert_eq!(refused.status, gitauto_plugin::Status::Failure);
        assert_eq!(refused.summary, "slack notification to hooks.slack.com refused: HTTP 404: no_service");

        let headers = [("retry-after".to_owned(), "30".to_owned())];
        match conclude(&p, 429, &headers, b"rate_limited") {
            Err(Error::Transient(message)) => assert!(message.contains("HTTP 429 (Retry-After: 30;"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(conclude(&p, 503, &[], b""), Err(Error::Transient(_))));

        let long = "x".repeat(10_000);
        let cut = conclude(&p, 200, &[], long.as_bytes()).unwrap();
        let output: Value = serde_json::from_str(&cut.output).unwrap();
        assert_eq!(output["body"].as_str().unwrap().len(), MAX_OUTPUT_BODY + "…".len());
    }

    #[test]
    fn capability_errors_show_the_origin_only() {
        let p = prepared(json!({"url": "http://127.0.0.1:9/hook/s3cret?t=1", "text": "t"}));
        let denied = HttpError::Denied(
            "request to http://127.0.0.1:9/hook/s3cret?t=1: host 127.0.0.1:9 is not granted (granted hosts: a.example)"
                .into(),
        );
        match refused(&p, denied) {
            Error::InvalidSettings(message) => {
                assert!(message.starts_with("POST to 127.0.0.1:9 refused: 127.0.0.1:9 is not among"), "{message}");
                assert!(message.contains("add it to its `grants.hosts`"), "{message}");
                assert!(message.contains("request to http://127.0.0.1:9/…: host"), "{message}");
                assert!(!message.contains("s3cret"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let down = HttpError::Connection("http://127.0.0.1:9/hook/s3cret?t=1: error sending request".into());
        match refused(&p, down) {
            Error::Transient(message) => {
                assert_eq!(
                    message,
                    "POST to 127.0.0.1:9 failed: connection failed: http://127.0.0.1:9/…: error sending request"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(redact("at http://h:1 and http://h:1/x/y.", "http://h:1"), "at http://h:1 and http://h:1/…");
    }
}
