//! Bitbucket Cloud's repository hooks (`/repositories/{workspace}/{slug}/hooks`): `url`,
//! `events` such as `repo:push`, `secret` (signing `X-Hub-Signature`); ids are `{uuid}`s.
//! Bitbucket reports no last delivery in the hook.

use super::{Hook, Wanted};
use serde_json::{Value, json};

/// The body creating or updating a hook.
pub(super) fn body(wanted: &Wanted) -> Value {
    let mut body = json!({"description": "gitauto", "url": wanted.url, "active": true, "events": wanted.events, "skip_cert_verification": false});
    if let Some(secret) = &wanted.secret {
        body["secret"] = json!(secret.expose());
    }
    body
}

/// A hook from Bitbucket's answer.
pub(super) fn parse(item: &Value) -> Option<Hook> {
    Some(Hook {
        id: item["uuid"].as_str()?.to_owned(),
        url: item["url"].as_str()?.to_owned(),
        events: item["events"].as_array()?.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        active: item["active"].as_bool().unwrap_or(true),
        content_type: Some("json".into()),
        secret: item["secret_set"].as_bool(),
        last_delivery: "not reported".into(),
    })
}
