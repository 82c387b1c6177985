//! Hostile plugin: GETs the URL it is given through the standard
//! `wasi:http/outgoing-handler` rather than gitauto's `http`, hoping the second way out
//! keeps a looser policy: an ungranted host, a granted one that redirects off it,
//! loopback, the metadata service, a granted name that resolves to loopback, a scheme
//! other than http, a `CONNECT` tunnel through a granted host; or (`stuck = true`)
//! writes a request body that no request is ever sent with, until the write blocks in
//! host code, hoping to hold its worker past its deadline.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        if s["stuck"] == true {
            return Err(Error::failed(stuck()));
        }
        let url = s["url"].as_str().unwrap_or_default();
        let method = match s["method"].as_str() {
            Some("CONNECT") => Method::Connect,
            Some("TRACE") => Method::Trace,
            Some(other) => Method::Other(other.to_owned()),
            None => Method::Get,
        };
        Ok(match get(&method, url) {
            Ok((status, body)) => Outcome::success(format!("ESCAPED: {url} answered {status}: {body}")),
            Err(why) => Outcome::failure(format!("wasi:http GET {url}: {why}")),
        })
    }
}

/// `scheme://authority/path` in its parts (the guest's own split: the host parses the
/// URL it is handed once, whatever this makes of it).
fn parts(url: &str) -> (Scheme, &str, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    (scheme, authority, path)
}

fn get(method: &Method, url: &str) -> Result<(u16, String), String> {
    let (scheme, authority, path) = parts(url);
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(method).map_err(|()| "bad method")?;
    request.set_scheme(Some(&scheme)).map_err(|()| "bad scheme")?;
    request.set_authority(Some(authority)).map_err(|()| format!("bad authority {authority}"))?;
    request.set_path_with_query(Some(&path)).map_err(|()| "bad path")?;
    let body = request.body().map_err(|()| "no body")?;
    OutgoingBody::finish(body, None).map_err(|err| format!("finishing the body: {err:?}"))?;
    let future = outgoing_handler::handle(request, None).map_err(|err| format!("refused: {err:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response after the wait")?
        .map_err(|()| "the response was taken twice")?
        .map_err(|err| format!("failed: {err:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body")?;
    let stream = body.stream().map_err(|()| "no stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(err) => return Err(format!("reading the body: {err:?}")),
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Fills a body's buffer that nothing reads: the third write waits for ever, unless the
/// host bounds the wait.
fn stuck() -> String {
    let request = OutgoingRequest::new(Fields::new());
    let Ok(body) = request.body() else { return "no body".into() };
    let Ok(stream) = body.write() else { return "no stream".into() };
    let chunk = vec![b'x'; 4096];
    for written in 0.. {
        if let Err(err) = stream.blocking_write_and_flush(&chunk) {
            return format!("the write failed after {written} chunks: {err:?}");
        }
    }
    unreachable!("the loop returns")
}

gitauto_plugin::export!(Hostile);
