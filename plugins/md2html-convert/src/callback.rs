//! The callback tx-manager's converters made when they finished: the result JSON POSTed
//! to `callback`. Whatever happens to it is logged and never fails the build, as in
//! tx-manager (an invalid URL is not called; a refusal or a non-2xx answer is logged).

use gitauto_plugin::http::{self, Method, Request};
use gitauto_plugin::log;
use serde_json::Value;

/// POSTs `result` to `url`; says what happened, in a line for the log and the step's output.
pub fn post(url: &str, result: &Value) -> String {
    if let Err(why) = check(url) {
        log::warn(&why);
        return why;
    }
    let body = serde_json::to_vec(result).expect("a result is plain data");
    let request = Request {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![("content-type".into(), "application/json".into()), ("user-agent".into(), "gitauto".into())],
        body: Some(body),
        timeout: None,
    };
    let line = match http::send(&request) {
        Ok(response) if (200..300).contains(&response.status) => {
            format!("Callback to {} answered {}", origin(url), response.status)
        }
        Ok(response) => {
            let text = String::from_utf8_lossy(&response.body);
            let text: String = text.trim().chars().take(200).collect();
            format!("Error calling callback {}: HTTP {}: {text}", origin(url), response.status)
        }
        Err(err) => format!("Error calling callback {}: {}", origin(url), err.message()),
    };
    if line.starts_with("Error") {
        log::warn(&line)
    } else {
        log::info(&line)
    }
    line
}

/// An http(s) URL, or why it is not one (tx-manager: "Invalid callback url").
fn check(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!("Invalid callback url: {url}")),
    }
}

/// The URL's `scheme://host[:port]`, without its user info, path, query or fragment
/// (any of which may hold a secret): what logs and the public build log show.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if scheme.is_empty() { host.to_owned() } else { format!("{scheme}://{host}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_called_and_paths_are_not_shown() {
        for url in ["https://door43.org/client/callback/converter", "http://127.0.0.1:8080"] {
            assert_eq!(check(url), Ok(()), "{url}");
        }
        for url in ["ftp://door43.org/cb", "door43.org/cb", "https:///cb", ""] {
            assert_eq!(check(url), Err(format!("Invalid callback url: {url}")), "{url}");
        }
        let cases = [
            ("https://hooks.example.com/T000/secret", "https://hooks.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://door43.org?token=secret", "https://door43.org"),
            ("https://door43.org#secret", "https://door43.org"),
            ("https://user:pass@door43.org:8443/cb?x=1", "https://door43.org:8443"),
            ("https://user:pass@door43.org?token=secret", "https://door43.org"),
        ];
        for (url, want) in cases {
            assert_eq!(origin(url), want, "{url}");
        }
    }
}
