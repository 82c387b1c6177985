//! JSON REST calls over the [`http`](crate::http) capability: a base URL, JSON bodies,
//! status checks and `Link`-header pagination, as forge APIs (GitHub, Gitea, GitLab)
//! need them. Credentials are not the plugin's business: grant the API host with a
//! `credential` in the config and the host adds it to every request.
//!
//! ```no_run
//! use gitauto_plugin::rest::Api;
//!
//! # fn main() -> Result<(), gitauto_plugin::Error> {
//! let api = Api::new("https://api.github.com");
//! let repo = api.get("repos/acme/widgets")?.expect(&[200])?.json()?;
//! let teams = api.get_all("orgs/acme/teams")?;
//! # Ok(()) }
//! ```

use crate::http::{self, Method, Request};
use crate::{Error, log};
use serde::Serialize;
use serde_json::Value;

/// Pages followed at most by [`Api::get_all`].
const MAX_PAGES: usize = 100;

/// A REST API at a base URL.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    headers: Vec<(String, String)>,
}

/// An answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request, `METHOD url`, for messages.
    pub request: String,
    /// HTTP status.
    pub status: u16,
    /// Headers (names lower case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Api {
    /// An API at `base` (`https://api.github.com`, `https://ghe.example.com/api/v3/`);
    /// paths are joined to it with one `/`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            headers: vec![("accept".into(), "application/json".into()), ("user-agent".into(), "gitauto".into())],
        }
    }

    /// Adds a header to every request (e.g. GitHub's `X-GitHub-Api-Version`).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The absolute URL of `path` (an absolute URL is used as it is).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Sends a request with an optional JSON body.
    pub fn send(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> Result<Reply, Error> {
        let url = self.url(path);
        let mut headers = self.headers.clone();
        let body = match body {
            Some(body) => {
                headers.push(("content-type".into(), "application/json".into()));
                Some(serde_json::to_vec(body).map_err(|err| Error::failed(format!("encoding the body: {err}")))?)
            }
            None => None,
        };
        let request = format!("{} {url}", method_name(method));
        log::debug(&request);
        let response = http::send(&Request { method, url, headers, body, timeout: None })?;
        Ok(Reply { request, status: response.status, headers: response.headers, body: response.body })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Reply, Error> {
        self.send(Method::Get, path, None::<&Value>)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &impl Serialize) -> Result<Reply, Error> {
        self.send(Method::Post, path, Some(body))
    }

    /// `PUT path` with a JSON body, or none.
    pub fn put(&self, path: &str, body: Option<&impl Serialize>) -> Result<Reply, Error> {
        self.send(Method::Put, path, body)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Reply, Error> {
        self.send(Method::Delete, path, None::<&Value>)
    }

    /// Every item of a paginated list: `GET path`, then each `Link: <...>; rel="next"`,
    /// concatenating the pages. `None` when the first page is 404; another status, or a
    /// page that is not a list, is an error as [`Reply::expect`] gives it.
    pub fn get_all(&self, path: &str) -> Result<Option<Vec<Value>>, Error> {
        self.get_all_or(path, |reply| match reply.clone().expect(&[200]) {
            Err(err) => err,
            Ok(_) => Error::failed(format!("{}: expected a list, got {}", reply.request, reply.text())),
        })
    }

    /// [`Api::get_all`], with the caller's error for a page that is not a 200 list.
    pub fn get_all_or<E: From<Error>>(
        &self,
        path: &str,
        unexpected: impl Fn(&Reply) -> E,
    ) -> Result<Option<Vec<Value>>, E> {
        let mut items = Vec::new();
        let mut next = Some(self.url(path));
        let mut pages = 0;
        while let Some(url) = next.take() {
            let reply = self.get(&url)?;
            if reply.status == 404 && pages == 0 {
                return Ok(None);
            }
            if reply.status != 200 {
                return Err(unexpected(&reply));
            }
            match reply.json()? {
                Value::Array(list) => items.extend(list),
                _ => return Err(unexpected(&reply)),
            }
            pages += 1;
            if pages >= MAX_PAGES {
                log::warn(&format!("GET {path}: stopped after {MAX_PAGES} pages"));
                break;
            }
            next = reply.next_page();
        }
        Ok(Some(items))
    }
}

impl Reply {
    /// The reply when its status is one of `expected`; otherwise an error with the
    /// status and body: transient for 429 and 5xx (a retry may pass), failed otherwise.
    pub fn expect(self, expected: &[u16]) -> Result<Self, Error> {
        if expected.contains(&self.status) {
            return Ok(self);
        }
        let message = format!("{}: unexpected status {}: {}", self.request, self.status, self.text());
        if self.status == 429 || self.status >= 500 {
            Err(Error::transient(message))
        } else {
            Err(Error::failed(message))
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|err| Error::failed(format!("{}: the answer is not JSON: {err}", self.request)))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `rel="next"` URL of the `Link` header.
    pub fn next_page(&self) -> Option<String> {
        next_link(self.header("link")?)
    }
}

/// The `rel="next"` target of a `Link` header value.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found() {
        let link = r#"<https://api.github.com/orgs/x/teams?page=2>; rel="next", <https://api.github.com/orgs/x/teams?page=5>; rel="last""#;
        assert_eq!(next_link(link).as_deref(), Some("https://api.github.com/orgs/x/teams?page=2"));
        assert_eq!(next_link(r#"<https://a/b?page=1>; rel="prev""#), None);
    }
}
