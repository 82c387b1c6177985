//! `gitauto send`: sign a payload the way a source's forge would and post it, to test a
//! setup end to end.

use crate::config::Source;
use crate::forge::Outgoing;
use anyhow::Context;
use std::time::SystemTime;

/// The headers `source`'s forge would send with `body` for `event`, signed with the
/// source's newest secret (the last one listed).
pub fn headers(source: &Source, event: &str, body: &[u8]) -> Vec<(String, String)> {
    let delivery = uuid::Uuid::new_v4().to_string();
    source.dialect.sign(&Outgoing {
        event,
        body,
        secret: source.secrets.last(),
        delivery: &delivery,
        now: SystemTime::now(),
    })
}

/// Posts `body` to `url` as `source`'s forge would; returns the status and the answer.
pub async fn send(source: &Source, event: &str, body: Vec<u8>, url: &str) -> anyhow::Result<(u16, String)> {
    let mut request = reqwest::Client::new().post(url);
    for (name, value) in headers(source, event, &body) {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await.with_context(|| format!("posting to {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.context("reading the answer")?;
    Ok((status, text))
}
