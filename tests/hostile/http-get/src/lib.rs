//! Hostile plugin: GETs the URL it is given: an ungranted host, a granted one that
//! redirects off it, loopback, the metadata service, a granted name that resolves to
//! loopback, a server that never answers.
//! Succeeds ("ESCAPED: ...") only if the sandbox let it through.

use gitauto_plugin::http::{Method, Request};
use gitauto_plugin::{Error, Event, Outcome, Plugin};
use serde_json::Value;

struct Hostile;

impl Plugin for Hostile {
    type Settings = Value;

    fn handle(_event: Event, s: Value) -> Result<Outcome, Error> {
        get(s["url"].as_str().unwrap_or_default())
    }
}

fn get(url: &str) -> Result<Outcome, Error> {
    let request = Request { method: Method::Get, url: url.to_owned(), headers: vec![], body: None, timeout: None };
    Ok(match gitauto_plugin::http::send(&request) {
        Ok(response) => Outcome::success(format!(
            "ESCAPED: {url} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )),
        Err(err) => Outcome::failure(format!("GET {url}: {}", err.message())),
    })
}

gitauto_plugin::export!(Hostile);
