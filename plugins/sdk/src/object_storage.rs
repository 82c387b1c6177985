//! Object storage over the [`http`](crate::http) capability: S3 and the services that
//! speak its API (MinIO, Ceph, Cloudflare R2, Garage). A [`Bucket`] is a location
//! (`s3://bucket/prefix`), an endpoint and an addressing style; it puts, gets, lists,
//! deletes and copies objects with plain requests. Signing is not the plugin's business:
//! grant the endpoint's host with a `sigv4` credential and the host signs every request
//! (the plugin never sees the keys).
//!
//! ```no_run
//! use gitauto_plugin::object_storage::{Addressing, Bucket, content_type};
//!
//! # fn main() -> Result<(), gitauto_plugin::object_storage::StorageError> {
//! let site = Bucket::new("s3://door43-cdn/u", "https://s3.us-west-2.amazonaws.com", Addressing::Virtual)?;
//! let page = b"<!DOCTYPE html><title>Hi</title>".to_vec();
//! site.put("acme/docs/index.html", page, content_type("index.html"), Some("max-age=600"))?;
//! for object in site.list("acme/docs/")? {
//!     if object.key.ends_with(".tmp") {
//!         site.delete(&object.key)?;
//!     }
//! }
//! site.copy("acme/docs/index.html", "acme/docs/latest.html")?;
//! let back = site.get("acme/docs/latest.html")?;
//! # Ok(()) }
//! ```

use crate::http::{self, HttpError, Method, Request};
use crate::{Error, log};
use std::fmt;

/// Where the bucket's name goes in a request's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://endpoint/bucket/key`: MinIO, Ceph, Garage and other self-hosted services.
    Path,
    /// `https://bucket.endpoint/key`: AWS (required for buckets made since 2020), R2.
    Virtual,
}

impl Addressing {
    /// `"path"` or `"virtual"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "path" => Ok(Self::Path),
            "virtual" => Ok(Self::Virtual),
            other => Err(format!("addressing `{other}` is neither `path` nor `virtual`")),
        }
    }
}

/// A bucket, or a prefix of one, at an endpoint. Keys given to its methods are relative
/// to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    name: String,
    prefix: String,
    scheme: &'static str,
    authority: String,
    base_path: String,
    addressing: Addressing,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The key, relative to the bucket's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A failed operation: what was done to which object, and why it failed.
#[derive(Debug, Clone)]
pub struct StorageError {
    /// `PUT`, `GET`, `LIST`, `DELETE`, `COPY`, or `SETUP` for a bad location.
    pub operation: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The full key (prefix included), or the listed prefix; empty for the bucket itself.
    pub key: String,
    /// Why it failed.
    pub kind: ErrorKind,
}

/// Why an operation failed.
#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// No such object (or bucket): HTTP 404 with S3's `Code` (`NoSuchKey`, `NoSuchBucket`).
    NotFound {
        /// S3's error code.
        code: String,
        /// S3's error message.
        message: String,
    },
    /// The server refused the request (HTTP 401 or 403): a wrong key or secret
    /// (`SignatureDoesNotMatch`, `InvalidAccessKeyId`), a missing permission (`AccessDenied`).
    Denied {
        /// The status.
        status: u16,
        /// S3's error code.
        code: String,
        /// S3's error message.
        message: String,
    },
    /// Any other status the operation does not expect.
    Status {
        /// The status.
        status: u16,
        /// S3's error code (empty when the body carries none).
        code: String,
        /// S3's error message, or the start of the body.
        message: String,
    },
    /// The request did not get an answer: the http capability's error (not granted,
    /// timeout, connection).
    Http(HttpError),
    /// The location or endpoint is malformed, or an answer cannot be read.
    Invalid(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A location refused before any request names itself in the reason.
        if self.operation != "SETUP" {
            write!(f, "{} s3://{}/{}: ", self.operation, self.bucket, self.key)?;
        }
        let detail = |code: &str, message: &str| match (code.is_empty(), message.is_empty()) {
            (true, _) => message.to_owned(),
            (false, true) => code.to_owned(),
            (false, false) => format!("{code}: {message}"),
        };
        match &self.kind {
            ErrorKind::NotFound { code, message } => write!(f, "not found ({})", detail(code, message)),
            ErrorKind::Denied { status, code, message } => {
                write!(f, "denied by the server, HTTP {status} ({})", detail(code, message))
            }
            ErrorKind::Status { status, code, message } => write!(f, "HTTP {status} ({})", detail(code, message)),
            ErrorKind::Http(err) => f.write_str(&err.message()),
            ErrorKind::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StorageError {}

impl StorageError {
    /// Whether a retry may succeed: a busy or unreachable server (HTTP 429, 5xx, S3's
    /// 400 `RequestTimeout`, a copy whose 200 answer carries an `<Error>`, timeouts,
    /// connection failures).
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Status { status, code, .. } => {
                *status == 429 || *status >= 500 || *status == 200 || (*status == 400 && code == "RequestTimeout")
            }
            ErrorKind::Http(HttpError::Timeout(_) | HttpError::Connection(_)) => true,
            _ => false,
        }
    }
}

/// A storage error fails the step; what [`StorageError::is_transient`] says is worth a
/// retry is transient.
impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        if err.is_transient() { Error::transient(err.to_string()) } else { Error::failed(err.to_string()) }
    }
}

impl Bucket {
    /// The bucket and prefix of `location` (`s3://bucket` or `s3://bucket/some/prefix`) at
    /// `endpoint` (`https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:9000`; a bare
    /// host means https).
    pub fn new(location: &str, endpoint: &str, addressing: Addressing) -> Result<Self, StorageError> {
        let invalid = |why: String| StorageError {
            operation: "SETUP",
            bucket: String::new(),
            key: String::new(),
            kind: ErrorKind::Invalid(why),
        };
        let rest = location
            .strip_prefix("s3://")
            .ok_or_else(|| invalid(format!("`{location}` is not an s3://bucket/prefix location")))?;
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let dns_name = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            return Err(invalid(format!("`{location}`: `{name}` is not a bucket name")));
        }
        if addressing == Addressing::Virtual && !dns_name {
            return Err(invalid(format!(
                "`{location}`: `{name}` cannot be a host name, which virtual-hosted addressing needs: use `path`"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|segment| segment == "." || segment == "..") || prefix.contains("//") {
            return Err(invalid(format!("`{location}`: the prefix has an empty, `.` or `..` segment")));
        }
        let (scheme, rest) = match endpoint.split_once("://") {
            Some(("https", rest)) => ("https", rest),
            Some(("http", rest)) => ("http", rest),
            Some((other, _)) => return Err(invalid(format!("endpoint `{endpoint}`: `{other}` is not http or https"))),
            None => ("https", endpoint),
        };
        let (authority, base_path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(invalid(format!("endpoint `{endpoint}` names no host")));
        }
        let base_path = base_path.trim_matches('/');
        Ok(Self {
            name: name.to_owned(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            scheme,
            authority: authority.to_ascii_lowercase(),
            base_path: if base_path.is_empty() { String::new() } else { format!("/{base_path}") },
            addressing,
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix every key is under: empty, or ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `key` with the prefix: the object's key in the bucket.
    pub fn full_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.trim_start_matches('/'))
    }

    /// The `s3://bucket/key` form of `key`, for messages and logs.
    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.name, self.full_key(key))
    }

    /// The URL of the object `key` (relative to the prefix), its key percent-encoded
    /// by AWS's rules (see [`encode_key`]).
    pub fn url(&self, key: &str) -> String {
        format!("{}{}", self.bucket_url(), encode_key(&self.full_key(key)))
    }

    /// The bucket's URL, ending with `/`.
    fn bucket_url(&self) -> String {
        match self.addressing {
            Addressing::Path => format!("{}://{}{}/{}/", self.scheme, self.authority, self.base_path, self.name),
            Addressing::Virtual => format!("{}://{}.{}{}/", self.scheme, self.name, self.authority, self.base_path),
        }
    }

    /// The ListObjectsV2 URL for one page of `full_prefix`.
    fn list_url(&self, full_prefix: &str, token: Option<&str>) -> String {
        let bucket = self.bucket_url();
        // Path-style lists `/bucket?...`, not `/bucket/?...` (an empty key).
        let bucket = match self.addressing {
            Addressing::Path => bucket.trim_end_matches('/'),
            Addressing::Virtual => &bucket,
        };
        // The parameters sorted, as the canonical query string has them.
        let token = token.map(|token| format!("continuation-token={}&", encode_component(token))).unwrap_or_default();
        format!("{bucket}?{token}list-type=2&prefix={}", encode_component(full_prefix))
    }

    /// Stores `body` at `key` with its `content_type` and, when given, a `cache_control`
    /// header (`max-age=600`, `no-cache`), replacing any object there.
    pub fn put(
        &self,
        key: &str,
        body: impl Into<Vec<u8>>,
        content_type: &str,
        cache_control: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
        if let Some(cache_control) = cache_control {
            headers.push(("cache-control".to_owned(), cache_control.to_owned()));
        }
        let response = self.send("PUT", Method::Put, key, self.url(key), headers, Some(body.into()))?;
        self.expect("PUT", key, &response, &[200, 201])
    }

    /// The object at `key`; `None` when there is none (`NoSuchKey`).
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let response = self.send("GET", Method::Get, key, self.url(key), Vec::new(), None)?;
        match response.status {
            200 => Ok(Some(response.body)),
            404 if error_code(&response.body) != "NoSuchBucket" => Ok(None),
            _ => Err(self.failed("GET", key, &response)),
        }
    }

    /// Every object whose key starts with `prefix` (relative to the bucket's prefix),
    /// following ListObjectsV2's continuation tokens over all pages; keys come back
    /// relative to the bucket's prefix, in the server's (lexicographic) order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Object>, StorageError> {
        let full_prefix = self.full_key(prefix);
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = self.list_url(&full_prefix, token.as_deref());
            let response = self.send("LIST", Method::Get, prefix, url, Vec::new(), None)?;
            if response.status != 200 {
                return Err(self.failed("LIST", prefix, &response));
            }
            let text = String::from_utf8_lossy(&response.body);
            let page = parse_list(&text).map_err(|why| self.error("LIST", prefix, ErrorKind::Invalid(why)))?;
            for object in page.objects {
                let Some(key) = object.key.strip_prefix(&self.prefix) else {
                    return Err(self.error(
                        "LIST",
                        prefix,
                        ErrorKind::Invalid(format!("the listing holds `{}`, outside the prefix", object.key)),
                    ));
                };
                objects.push(Object { key: key.to_owned(), size: object.size });
            }
            match (page.truncated, page.next) {
                (false, _) => return Ok(objects),
                (true, Some(next)) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                (true, _) => {
                    return Err(self.error(
                        "LIST",
                        prefix,
                        ErrorKind::Invalid("a truncated page without a new continuation token".into()),
                    ));
                }
            }
        }
    }

    /// Removes the object at `key`; removing one that is not there succeeds, as in S3.
    pub fn delete(&self, key: &str) -> Result<(), StorageError> {
        let response = self.send("DELETE", Method::Delete, key, self.url(key), Vec::new(), None)?;
        if response.status == 404 && error_code(&response.body) == "NoSuchKey" {
            return Ok(());
        }
        self.expect("DELETE", key, &response, &[200, 204])
    }

    /// Copies the object at `from` to `to` within the bucket, on the server (its
    /// content type and cache headers go with it).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        if self.full_key(from).split('/').any(|segment| segment == "." || segment == "..") {
            let why = format!("the source key `{}` has a `.` or `..` segment", self.full_key(from));
            return Err(self.error("COPY", from, ErrorKind::Invalid(why)));
        }
        let source = format!("{}/{}", self.name, encode_key(&self.full_key(from)));
        let headers = vec![("x-amz-copy-source".to_owned(), source)];
        let response = self.send("COPY", Method::Put, to, self.url(to), headers, None)?;
        // A copy can fail after its 200 has been sent: the body then holds an `<Error>`.
        if response.status == 200 && response_is_error(&response.body) {
            let code = error_code(&response.body);
            let message = xml_text(&String::from_utf8_lossy(&response.body), "Message").unwrap_or_default();
            return Err(self.error("COPY", to, ErrorKind::Status { status: 200, code, message }));
        }
        self.expect("COPY", to, &response, &[200])
    }

    fn send(
        &self,
        operation: &'static str,
        method: Method,
        key: &str,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response, StorageError> {
        // A URL parser resolves `.` and `..` segments: `a/../b` would name `b`.
        let full = self.full_key(key);
        if operation != "LIST" && full.split('/').any(|segment| segment == "." || segment == "..") {
            return Err(self.error(
                operation,
                key,
                ErrorKind::Invalid(format!("the key `{full}` has a `.` or `..` segment, which a URL resolves away")),
            ));
        }
        log::debug(&format!("{operation} {}", self.location(key)));
        http::send(&Request { method, url, headers, body, timeout: None })
            .map_err(|err| self.error(operation, key, ErrorKind::Http(err)))
    }

    fn expect(
        &self,
        operation: &'static str,
        key: &str,
        response: &http::Response,
        statuses: &[u16],
    ) -> Result<(), StorageError> {
        if statuses.contains(&response.status) { Ok(()) } else { Err(self.failed(operation, key, response)) }
    }

    /// The error for an answer the operation does not expect, with S3's code and message.
    fn failed(&self, operation: &'static str, key: &str, response: &http::Response) -> StorageError {
        let text = String::from_utf8_lossy(&response.body);
        let code = xml_text(&text, "Code").unwrap_or_default();
        let message = xml_text(&text, "Message").unwrap_or_else(|| {
            if !code.is_empty() {
                return String::new();
            }
            let text = text.trim();
            text.char_indices().nth(200).map_or(text, |(end, _)| &text[..end]).to_owned()
        });
        let kind = match response.status {
            404 => ErrorKind::NotFound { code, message },
            401 | 403 => ErrorKind::Denied { status: response.status, code, message },
            status => ErrorKind::Status { status, code, message },
        };
        self.error(operation, key, kind)
    }

    fn error(&self, operation: &'static str, key: &str, kind: ErrorKind) -> StorageError {
        StorageError { operation, bucket: self.name.clone(), key: self.full_key(key), kind }
    }
}

/// The content type a web server would give a file named `path`, by its extension
/// (`text/html; charset=utf-8` for `.html`, `font/woff2`, ...); `application/octet-stream`
/// for an extension it does not know.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "xml" => "application/xml",
        "txt" | "usfm" | "sfm" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "yaml" | "yml" => "application/yaml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/vnd.microsoft.icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "eot" => "application/vnd.ms-fontobject",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "wasm" => "application/wasm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// `key` percent-encoded for a URL path as AWS signs it: `A-Z a-z 0-9 - . _ ~` and `/`
/// kept, every other byte of its UTF-8 as `%XX` (upper case).
pub fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// A query parameter's value: as [`encode_key`], with `/` encoded too.
fn encode_component(value: &str) -> String {
    encode(value, false)
}

fn encode(text: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
    }
    out
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListPage {
    /// The objects, keys in full.
    objects: Vec<Object>,
    /// Whether more pages follow.
    truncated: bool,
    /// The token asking for the next page.
    next: Option<String>,
}

/// Reads a `ListBucketResult`: each `<Contents>`' `Key` and `Size`, `IsTruncated` and
/// `NextContinuationToken`, entities decoded.
fn parse_list(xml: &str) -> Result<ListPage, String> {
    // A body cut short (no `</ListBucketResult>`) is refused: its last page would be lost.
    let xml = match elements(xml, "ListBucketResult").next() {
        Some(Ok(inner)) => inner,
        Some(Err(_)) => return Err("the ListBucketResult is cut short (no </ListBucketResult>)".into()),
        None => {
            let start: String = xml.chars().take(200).collect();
            return Err(format!("the answer is not a ListBucketResult: {start}"));
        }
    };
    let mut page = ListPage::default();
    for contents in elements(xml, "Contents") {
        let contents = contents?;
        let key = text_of(contents, "Key")?.ok_or("an object without a <Key>")?;
        let size = match text_of(contents, "Size")? {
            Some(size) => size.trim().parse().map_err(|_| format!("object `{key}`: size `{size}` is not a number"))?,
            None => 0,
        };
        page.objects.push(Object { key, size });
    }
    page.truncated = text_of(xml, "IsTruncated")?.is_some_and(|t| t.trim() == "true");
    page.next = text_of(xml, "NextContinuationToken")?.filter(|token| !token.is_empty());
    Ok(page)
}

/// Whether an answer's body is an S3 `<Error>` document.
fn response_is_error(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    has_element(&text, "Error") && !has_element(&text, "CopyObjectResult")
}

/// S3's `<Code>` in an error body, or empty.
fn error_code(body: &[u8]) -> String {
    xml_text(&String::from_utf8_lossy(body), "Code").unwrap_or_default()
}

fn has_element(xml: &str, tag: &str) -> bool {
    elements(xml, tag).next().is_some()
}

/// The decoded text of the first `<tag>` element in `xml`, if any and readable.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    text_of(xml, tag).ok().flatten()
}

/// The decoded text of the first `<tag>` element in `xml`; an error when it is malformed.
fn text_of(xml: &str, tag: &str) -> Result<Option<String>, String> {
    match elements(xml, tag).next() {
        None => Ok(None),
        Some(inner) => unescape(inner?).map(Some).map_err(|why| format!("<{tag}>: {why}")),
    }
}

/// The raw content of each `<tag>` element (attributes allowed, `<tag/>` empty), in
/// order. S3's documents do not nest an element in one of its own name.
fn elements<'a>(xml: &'a str, tag: &'a str) -> impl Iterator<Item = Result<&'a str, String>> + 'a {
    let mut rest = xml;
    std::iter::from_fn(move || {
        loop {
            let at = rest.find('<')?;
            let after = &rest[at + 1..];
            let Some(name_rest) = after.strip_prefix(tag) else {
                rest = after;
                continue;
            };
            // `<Key>` but not `<KeyCount>`.
            let &next = name_rest.as_bytes().first()?;
            if !(next == b'>' || next == b'/' || next.is_ascii_whitespace()) {
                rest = after;
                continue;
            }
            let Some(open_end) = name_rest.find('>') else {
                rest = "";
                return Some(Err(format!("an unterminated <{tag}> tag")));
            };
            if name_rest[..open_end].ends_with('/') {
                rest = &name_rest[open_end + 1..];
                return Some(Ok(""));
            }
            let content = &name_rest[open_end + 1..];
            let close = format!("</{tag}>");
            let Some(end) = content.find(&close) else {
                rest = "";
                return Some(Err(format!("<{tag}> is not closed")));
            };
            rest = &content[end + close.len()..];
            return Some(Ok(&content[..end]));
        }
    })
}

/// XML character data with its entities (`&amp;`, `&#x41;`, ...) and CDATA sections decoded.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
            let end = cdata.find("]]>").ok_or("an unterminated CDATA section")?;
            out.push_str(&cdata[..end]);
            rest = &cdata[end + 3..];
            continue;
        }
        if rest.starts_with('<') {
            return Err(format!("markup inside text: {}", rest.chars().take(40).collect::<String>()));
        }
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|at| at + 1)
            .filter(|&at| rest[at..].starts_with(';'))
            .ok_or_else(|| format!("an unterminated entity: {}", rest.chars().take(12).collect::<String>()))?;
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = if let Some(hex) = entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    entity.strip_prefix('#').and_then(|dec| dec.parse().ok())
                };
                number.and_then(char::from_u32).ok_or_else(|| format!("an unknown entity `&{entity};`"))?
            }
        };
        out.push(decoded);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_addressing_make_the_urls() {
        let cases = [
            ("s3://site", "http://127.0.0.1:9000", Addressing::Path, "a.html", "http://127.0.0.1:9000/site/a.html"),
            (
                "s3://site/u/",
                "https://s3.example.com/",
                Addressing::Path,
                "acme/x y/é.html",
                "https://s3.example.com/site/u/acme/x%20y/%C3%A9.html",
            ),
            (
                "s3://door43-cdn/u",
                "https://s3.us-west-2.amazonaws.com",
                Addressing::Virtual,
                "a+b&c.html",
                "https://door43-cdn.s3.us-west-2.amazonaws.com/u/a%2Bb%26c.html",
            ),
            ("s3://b/p", "S3.Example.com", Addressing::Path, "k", "https://s3.example.com/b/p/k"),
            (
                "s3://b",
                "https://ceph.example.com/storage",
                Addressing::Path,
                "k",
                "https://ceph.example.com/storage/b/k",
            ),
        ];
        for (location, endpoint, addressing, key, url) in cases {
            let bucket = Bucket::new(location, endpoint, addressing).unwrap();
            assert_eq!(bucket.url(key), url, "{location} {endpoint}");
        }
        let bucket = Bucket::new("s3://site/u/v", "http://127.0.0.1:9000", Addressing::Path).unwrap();
        assert_eq!((bucket.name(), bucket.prefix()), ("site", "u/v/"));
        assert_eq!(bucket.location("a/b"), "s3://site/u/v/a/b");
        assert_eq!(
            bucket.list_url("u/v/a b/", Some("tok/en=")),
            "http://127.0.0.1:9000/site?continuation-token=tok%2Fen%3D&list-type=2&prefix=u%2Fv%2Fa%20b%2F"
        );
        let virtual_host = Bucket::new("s3://site", "https://r2.example.com", Addressing::Virtual).unwrap();
        assert_eq!(virtual_host.list_url("", None), "https://site.r2.example.com/?list-type=2&prefix=");
    }

    #[test]
    fn bad_locations_and_endpoints_are_refused() {
        let cases = [
            ("site/u", "https://s3.example.com", Addressing::Path, "is not an s3://bucket/prefix location"),
            ("s3:///u", "https://s3.example.com", Addressing::Path, "`` is not a bucket name"),
            ("s3://a b/u", "https://s3.example.com", Addressing::Path, "is not a bucket name"),
            ("s3://My_Bucket", "https://s3.example.com", Addressing::Virtual, "use `path`"),
            ("s3://b/../x", "https://s3.example.com", Addressing::Path, "`..` segment"),
            ("s3://b/a//x", "https://s3.example.com", Addressing::Path, "`..` segment"),
            ("s3://b", "ftp://s3.example.com", Addressing::Path, "`ftp` is not http or https"),
            ("s3://b", "https://", Addressing::Path, "names no host"),
            ("s3://b", "https://user@s3.example.com", Addressing::Path, "names no host"),
        ];
        for (location, endpoint, addressing, want) in cases {
            let err = Bucket::new(location, endpoint, addressing).unwrap_err();
            assert!(err.to_string().contains(want), "{location} {endpoint}: {err}");
        }
        assert_eq!(Addressing::parse("virtual"), Ok(Addressing::Virtual));
        assert!(Addressing::parse("dns").unwrap_err().contains("`dns`"));
    }

    #[test]
    fn keys_are_encoded_as_aws_signs_them() {
        let cases = [
            ("a/b.html", "a/b.html"),
            ("A-Z_a.z~0-9", "A-Z_a.z~0-9"),
            ("x y+z", "x%20y%2Bz"),
            ("100%", "100%25"),
            ("q?a=b#c", "q%3Fa%3Db%23c"),
            ("é/ü", "%C3%A9/%C3%BC"),
            ("a&b'c(d)*!$,;:@", "a%26b%27c%28d%29%2A%21%24%2C%3B%3A%40"),
        ];
        for (key, want) in cases {
            assert_eq!(encode_key(key), want, "{key}");
        }
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn keys_with_dot_segments_are_refused_before_any_request() {
        let bucket = Bucket::new("s3://site/u", "http://127.0.0.1:9", Addressing::Path).unwrap();
        for key in ["a/../b", "../b", "a/./b", ".", "a/.."] {
            let err = bucket.put(key, Vec::new(), "text/plain", None).unwrap_err();
            assert!(matches!(err.kind, ErrorKind::Invalid(_)), "{key}: {err}");
            assert!(err.to_string().contains("`.` or `..` segment"), "{err}");
            let err = bucket.copy(key, "c").unwrap_err();
            assert!(matches!(err.kind, ErrorKind::Invalid(_)), "{key}: {err}");
        }
    }

    #[test]
    fn listings_are_read_with_their_entities() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>site</Name><Prefix>u/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>u/a&amp;b.html</Key><LastModified>2026-11-28T10:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>u/&lt;x&gt; &#233;&#x263A;.css</Key><Size>0</Size></Contents>
<Contents>
  <Key><![CDATA[u/raw&.txt]]></Key>
  <Size>7</Size>
</Contents>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>"#;
        let page = parse_list(xml).unwrap();
        let keys: Vec<(&str, u64)> = page.objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
        assert_eq!(keys, [("u/a&b.html", 12), ("u/<x> é☺.css", 0), ("u/raw&.txt", 7)]);
        assert!(page.truncated);
        assert_eq!(page.next.as_deref(), Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));

        let last = "<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated><NextContinuationToken/></ListBucketResult>";
        assert_eq!(parse_list(last).unwrap(), ListPage::default());

        let bad = [
            ("<Error><Code>AccessDenied</Code></Error>", "not a ListBucketResult"),
            ("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", "without a <Key>"),
            ("<ListBucketResult><Contents><Key>a &bogus; b</Key></Contents></ListBucketResult>", "unknown entity"),
            ("<ListBucketResult><Contents><Key>a &amp b;</Key></Contents></ListBucketResult>", "unterminated entity"),
            ("<ListBucketResult><Contents><Key>a</Key><Size>x</Size></Contents></ListBucketResult>", "not a number"),
            ("<ListBucketResult><Contents><Key>a</Key>", "cut short"),
            ("<ListBucketResult><IsTruncated>false</IsTruncated>", "cut short"),
        ];
        for (xml, want) in bad {
            let err = parse_list(xml).unwrap_err();
            assert!(err.contains(want), "{xml}: {err}");
        }
    }

    #[test]
    fn error_bodies_give_their_code_and_message() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><Key>u/a&amp;b</Key></Error>"#;
        assert_eq!(error_code(body), "SignatureDoesNotMatch");
        assert!(response_is_error(body));
        assert!(!response_is_error(b"<CopyObjectResult><ETag>x</ETag></CopyObjectResult>"));
        let bucket = Bucket::new("s3://site/u", "http://127.0.0.1:9000", Addressing::Path).unwrap();
        let response = http::Response { status: 403, headers: Vec::new(), body: body.to_vec() };
        let err = bucket.failed("PUT", "a.html", &response);
        let ErrorKind::Denied { status, code, message } = &err.kind else { panic!("{err:?}") };
        assert_eq!((*status, code.as_str()), (403, "SignatureDoesNotMatch"));
        assert_eq!(message, "The request signature we calculated does not match the signature you provided.");
        assert_eq!(
            err.to_string(),
            "PUT s3://site/u/a.html: denied by the server, HTTP 403 (SignatureDoesNotMatch: The request signature \
             we calculated does not match the signature you provided.)"
        );
        assert!(matches!(Error::from(err), Error::Failed(_)));
        let busy =
            http::Response { status: 503, headers: Vec::new(), body: b"<Error><Code>SlowDown</Code></Error>".to_vec() };
        let err = bucket.failed("GET", "b", &busy);
        assert_eq!(err.to_string(), "GET s3://site/u/b: HTTP 503 (SlowDown)");
        assert!(matches!(Error::from(err), Error::Transient(_)));
        let answers: [(u16, &[u8], bool); 5] = [
            (400, b"<Error><Code>RequestTimeout</Code></Error>", true),
            (400, b"<Error><Code>InvalidArgument</Code></Error>", false),
            (429, b"", true),
            (500, b"<Error><Code>InternalError</Code></Error>", true),
            (409, b"<Error><Code>OperationAborted</Code></Error>", false),
        ];
        for (status, body, transient) in answers {
            let response = http::Response { status, headers: Vec::new(), body: body.to_vec() };
            let err = bucket.failed("PUT", "d", &response);
            assert_eq!(err.is_transient(), transient, "{err}");
            assert_eq!(matches!(Error::from(err), Error::Transient(_)), transient, "{status}");
        }
        let copy = bucket.error(
            "COPY",
            "e",
            ErrorKind::Status { status: 200, code: "InternalError".into(), message: String::new() },
        );
        assert!(copy.is_transient(), "a copy's 200 answer carrying an <Error>");
        let missing = http::Response { status: 404, headers: Vec::new(), body: b"not xml".to_vec() };
        assert!(matches!(bucket.failed("GET", "c", &missing).kind, ErrorKind::NotFound { .. }));
    }

    #[test]
    fn content_types_follow_the_extension() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("a/B.HTM", "text/html; charset=utf-8"),
            ("site.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("build_log.json", "application/json"),
            ("logo.svg", "image/svg+xml"),
            ("logo.png", "image/png"),
            ("photo.JPG", "image/jpeg"),
            ("anim.gif", "image/gif"),
            ("font.woff2", "font/woff2"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("Makefile", "application/octet-stream"),
            ("dir.d/file", "application/octet-stream"),
        ];
        for (path, want) in cases {
            assert_eq!(content_type(path), want, "{path}");
        }
    }
}
