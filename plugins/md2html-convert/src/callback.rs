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
        timeout_ms: None,
    };
    let line = match http::send(&request) {
        Ok(response) if (200..300).contains(&response.status) => {
            format!("Callback to {} answered {}", host(url), response.status)
        }
        Ok(response) => {
            let text = String::from_utf8_lossy(&response.body);
            let text: String = text.trim().chars().take(200).collect();
            format!("Error calling callback {}: HTTP {}: {text}", host(url), response.status)
        }
        Err(err) => format!("Error calling callback {}: {}", host(url), err.message()),
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

/// The URL's scheme and host, without the path (which may hold a secret).
fn host(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    url[after_scheme..].find('/').map_or(url, |at| &url[..after_scheme + at])
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
        assert_eq!(host("https://hooks.example.com/T000/secret"), "https://hooks.example.com");
        assert_eq!(host("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
