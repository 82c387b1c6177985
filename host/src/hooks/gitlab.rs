//! GitLab's project hooks (`/projects/:id/hooks`): one boolean per kind of event, the
//! secret as `token` (sent back in `X-Gitlab-Token`) or, for a `whsec_` key, as the
//! `signing_token` GitLab signs deliveries with; the last delivery's state is
//! `alert_status` and `disabled_until`.

use super::{Hook, Wanted};
use serde_json::{Value, json};

/// Every event flag of a project hook: those not wanted are sent as `false` (GitLab turns
/// `push_events` on when a request leaves it out).
const FLAGS: &[&str] = &[
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "note_events",
    "confidential_note_events",
    "issues_events",
    "confidential_issues_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
    "feature_flag_events",
    "emoji_events",
    "resource_access_token_events",
    "member_events",
    "project_events",
];

/// The body creating or updating a hook.
pub(super) fn body(wanted: &Wanted) -> Value {
    let mut body = json!({"url": wanted.url, "enable_ssl_verification": true});
    for flag in FLAGS {
        body[*flag] = json!(wanted.events.iter().any(|event| event == flag));
    }
    if let Some(secret) = &wanted.secret {
        let field = if signs(wanted) { "signing_token" } else { "token" };
        body[field] = json!(secret.expose());
    }
    body
}

/// Whether the hook's secret is a signing key: a `whsec_` key signs (Standard Webhooks);
/// any other secret is the token GitLab sends back as it is.
pub(super) fn signs(wanted: &Wanted) -> bool {
    wanted.secret.as_ref().is_some_and(|secret| secret.expose().starts_with("whsec_"))
}

/// A hook from GitLab's answer.
pub(super) fn parse(item: &Value) -> Option<Hook> {
    let events =
        FLAGS.iter().filter(|flag| item[**flag].as_bool() == Some(true)).map(|flag| (*flag).to_owned()).collect();
    let alert = item["alert_status"].as_str();
    let last_delivery = match (alert, item["disabled_until"].as_str()) {
        (Some("executable"), _) => "executable (no recent failures)".to_owned(),
        (Some("temporarily_disabled"), Some(until)) => format!("temporarily disabled after failures, until {until}"),
        (Some("disabled"), _) => "disabled after repeated failures".to_owned(),
        (Some(other), _) => other.to_owned(),
        (None, _) => "not reported".to_owned(),
    };
    let secret = match (item["token_present"].as_bool(), item["signing_token_present"].as_bool()) {
        (None, None) => None,
        (token, signing) => Some(token == Some(true) || signing == Some(true)),
    };
    Some(Hook {
        id: item["id"].as_u64()?.to_string(),
        url: item["url"].as_str()?.to_owned(),
        events,
        active: !matches!(alert, Some("disabled" | "temporarily_disabled")),
        content_type: Some("json".into()),
        secret,
        last_delivery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_signing_key_goes_in_signing_token_and_other_secrets_in_token() {
        let mut wanted = Wanted {
            url: "https://ci.example.com/hooks/gl".into(),
            events: vec!["tag_push_events".into()],
            secret: Some(Secret::new("plain")),
            undeliverable: Vec::new(),
        };
        let plain = body(&wanted);
        assert_eq!((plain["token"].as_str(), plain.get("signing_token")), (Some("plain"), None));
        assert_eq!((plain["push_events"].as_bool(), plain["tag_push_events"].as_bool()), (Some(false), Some(true)));
        assert_eq!(plain["enable_ssl_verification"], true);
        wanted.secret = Some(Secret::new("whsec_AAAA"));
        let signing = body(&wanted);
        assert_eq!((signing["signing_token"].as_str(), signing.get("token")), (Some("whsec_AAAA"), None));
    }

    #[test]
    fn alert_status_tells_whether_deliveries_fail() {
        let hook = |fields: Value| {
            let mut item = json!({"id": 1, "url": "https://x/h", "push_events": true});
            item.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
            parse(&item).unwrap()
        };
        assert_eq!(hook(json!({})).last_delivery, "not reported");
        assert_eq!(hook(json!({"alert_status": "executable"})).events, ["push_events"]);
        let down = hook(json!({"alert_status": "temporarily_disabled", "disabled_until": "2026-11-28T10:00:00Z"}));
        assert_eq!(down.last_delivery, "temporarily disabled after failures, until 2026-11-28T10:00:00Z");
        assert!(!down.active);
        assert_eq!(hook(json!({"token_present": true})).secret, Some(true));
    }
}
