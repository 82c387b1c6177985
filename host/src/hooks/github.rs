//! GitHub's repository hooks (`/repos/{owner}/{repo}/hooks`), and Gitea's, Forgejo's and
//! Gogs' (the same paths and shape under `/api/v1`, with a `type`). GitHub alone reports
//! the last delivery (`last_response`).

use super::{Hook, Wanted};
use serde_json::{Value, json};

/// The body creating or updating a hook: `kind` is Gitea's `type` (`gitea`, `forgejo`,
/// `gogs`); `None` for GitHub.
pub(super) fn body(wanted: &Wanted, kind: Option<&str>) -> Value {
    let mut config = json!({"url": wanted.url, "content_type": "json"});
    if let Some(secret) = &wanted.secret {
        config["secret"] = json!(secret.expose());
    }
    let mut body = json!({"active": true, "events": wanted.events, "config": config});
    match kind {
        None => {
            body["name"] = json!("web");
            // TLS verification on: GitHub's `insecure_ssl` is "0".
            body["config"]["insecure_ssl"] = json!("0");
        }
        Some(kind) => {
            body["type"] = json!(kind);
            if kind != "gogs" {
                body["branch_filter"] = json!("*");
            }
        }
    }
    body
}

/// A hook from GitHub's (or Gitea's) answer.
pub(super) fn parse(item: &Value) -> Option<Hook> {
    let id = item["id"].as_u64()?.to_string();
    let config = &item["config"];
    let events = item["events"].as_array()?.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    // GitHub shows a set secret as `********`; Gitea and Gogs do not return it at all.
    let secret = config.get("secret").map(|secret| secret.as_str().is_some_and(|s| !s.is_empty()));
    Some(Hook {
        id,
        url: config["url"].as_str()?.to_owned(),
        events,
        active: item["active"].as_bool().unwrap_or(true),
        content_type: config["content_type"].as_str().map(str::to_owned),
        secret,
        last_delivery: last_response(&item["last_response"]),
    })
}

/// GitHub's `last_response`: `{code, status, message}`.
fn last_response(last: &Value) -> String {
    if last.is_null() {
        return "not reported".into();
    }
    let status = last["status"].as_str().unwrap_or("unknown");
    let mut text = match last["code"].as_u64() {
        Some(code) => format!("{code} {status}"),
        None => status.to_owned(),
    };
    if let Some(message) = last["message"].as_str().filter(|m| !m.is_empty()) {
        text.push_str(&format!(": {message}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn wanted() -> Wanted {
        Wanted {
            url: "https://ci.example.com/hooks/gh".into(),
            events: vec!["push".into(), "pull_request".into()],
            secret: Some(Secret::new("s3cret")),
            undeliverable: Vec::new(),
        }
    }

    #[test]
    fn bodies_name_the_url_events_secret_and_json() {
        assert_eq!(
            body(&wanted(), None),
            json!({"name": "web", "active": true, "events": ["push", "pull_request"], "config": {
                "url": "https://ci.example.com/hooks/gh", "content_type": "json", "secret": "s3cret", "insecure_ssl": "0"}})
        );
        assert_eq!(body(&wanted(), Some("forgejo"))["type"], "forgejo");
        assert_eq!(body(&wanted(), Some("forgejo"))["branch_filter"], "*");
        assert!(body(&wanted(), Some("gogs")).get("branch_filter").is_none());
        let unsigned = Wanted { secret: None, ..wanted() };
        assert!(body(&unsigned, None)["config"].get("secret").is_none());
    }

    #[test]
    fn the_last_response_is_shown_as_github_reports_it() {
        let cases = [
            (json!(null), "not reported"),
            (json!({"code": null, "status": "unused", "message": null}), "unused"),
            (json!({"code": 200, "status": "active", "message": "OK"}), "200 active: OK"),
            (
                json!({"code": 502, "status": "failed", "message": "Invalid HTTP Response: 502"}),
                "502 failed: Invalid HTTP Response: 502",
            ),
        ];
        for (last, shown) in cases {
            assert_eq!(last_response(&last), shown);
        }
    }
}
