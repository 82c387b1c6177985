//! `gitauto send`: sign a payload the way a source's forge would and post it, to test a
//! setup end to end.

use crate::config::{Secret, Source};
use crate::forge::Forge;
use anyhow::Context;
use hmac::{KeyInit, Mac};

/// The headers a forge would send with `body` for `event`, signed with `secret`.
pub fn headers(forge: Forge, event: &str, body: &[u8], secret: Option<&Secret>) -> Vec<(String, String)> {
    let delivery = uuid::Uuid::new_v4().to_string();
    match forge {
        Forge::GitHub => {
            let mut headers = vec![
                ("content-type".into(), "application/json".into()),
                ("x-github-event".into(), event.to_owned()),
                ("x-github-delivery".into(), delivery),
                ("user-agent".into(), "GitHub-Hookshot/gitauto-send".into()),
            ];
            if let Some(secret) = secret {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
                    .expect("HMAC accepts keys of any length");
                mac.update(body);
                headers.push((
                    "x-hub-signature-256".into(),
                    format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
                ));
            }
            headers
        }
    }
}

/// Posts `body` to `url` as `source`'s forge would; returns the status and the answer.
pub async fn send(source: &Source, event: &str, body: Vec<u8>, url: &str) -> anyhow::Result<(u16, String)> {
    let client = reqwest::Client::new();
    let mut request = client.post(url).body(body.clone());
    for (name, value) in headers(source.forge, event, &body, source.secrets.last()) {
        request = request.header(name, value);
    }
    let response = request.send().await.with_context(|| format!("posting to {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.context("reading the answer")?;
    Ok((status, text))
}
