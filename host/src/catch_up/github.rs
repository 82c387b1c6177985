//! GitHub: a repository's hooks (`GET /repos/{owner}/{repo}/hooks`), the deliveries of
//! those that post to this source (`GET .../hooks/{id}/deliveries`, newest first, by
//! cursor), and each missed one in full (`GET .../deliveries/{id}`: the request's headers
//! and payload as GitHub sent them).

use super::api::Api;
use super::{Attempt, MAX_PAGES, Marks, Missed, advance, answered, not_held, our_hooks};
use crate::config::{CatchUp, Source};
use crate::queue::Queue;
use serde_json::Value;

/// Headers not carried over: the signatures are over the body GitHub sent, which the
/// API gives back parsed (the body ingested is its JSON again), and the length changes.
const DROPPED: &[&str] = &["content-type", "content-length", "x-hub-signature", "x-hub-signature-256"];

/// The deliveries of `repo`'s hooks to this source that no server accepted and the queue
/// does not hold, oldest first.
pub(super) async fn missed(
    api: &Api,
    queue: &Queue,
    source: &Source,
    catch_up: &CatchUp,
    repo: &str,
    marks: &mut Marks,
) -> anyhow::Result<Vec<Missed>> {
    let hooks = api.all(&api.url(&format!("/repos/{repo}/hooks?per_page=100")), MAX_PAGES).await?;
    let ours = our_hooks(&hooks, |hook| hook["config"]["url"].as_str(), source, catch_up, repo);
    let mut missed = Vec::new();
    for hook in ours {
        let key = format!("{repo}#{hook}");
        let mark = marks.get(&key).copied();
        let attempts =
            attempts(api, &api.url(&format!("/repos/{repo}/hooks/{hook}/deliveries?per_page=100")), mark).await?;
        for attempt in not_held(queue, source, &attempts).await? {
            let url = api.url(&format!("/repos/{repo}/hooks/{hook}/deliveries/{}", attempt.id));
            let (detail, _) = api.get(&url).await?;
            match delivery(&detail, &attempt.delivery) {
                Some(found) => missed.push(found),
                None => tracing::warn!(source = %source.name, %repo, %url, "catching up: the delivery has no payload"),
            }
        }
        advance(marks, key, mark, &attempts);
    }
    Ok(missed)
}

/// The attempts listed at `url`, newest first, up to the page that reaches `mark` (the
/// newest attempt of the previous pass) or [`MAX_PAGES`] pages.
async fn attempts(api: &Api, url: &str, mark: Option<i64>) -> anyhow::Result<Vec<Attempt>> {
    let mut attempts = Vec::new();
    let mut next = Some(url.to_owned());
    for _ in 0..MAX_PAGES {
        let Some(url) = next.take() else { break };
        let page = api.page(&url).await?;
        let mut reached = false;
        for item in &page.items {
            let (Some(id), Some(guid)) = (item["id"].as_i64(), item["guid"].as_str()) else { continue };
            reached |= mark.is_some_and(|mark| id <= mark);
            let status = item["status_code"].as_i64().unwrap_or(0);
            attempts.push(Attempt { id, delivery: guid.to_owned(), answered: answered(status) });
        }
        if reached {
            break;
        }
        next = page.next;
    }
    Ok(attempts)
}

/// A delivery's detail as [`Missed`]: its request headers (minus [`DROPPED`], plus a JSON
/// content type) and its payload as JSON. None when GitHub kept no payload.
fn delivery(detail: &Value, delivery: &str) -> Option<Missed> {
    let payload = &detail["request"]["payload"];
    if payload.is_null() {
        return None;
    }
    let mut headers: Vec<(String, String)> = detail["request"]["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !DROPPED.contains(&name.to_ascii_lowercase().as_str()))
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("x-github-delivery")) {
        headers.push(("x-github-delivery".into(), delivery.to_owned()));
    }
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("x-github-event"))
        && let Some(event) = detail["event"].as_str()
    {
        headers.push(("x-github-event".into(), event.to_owned()));
    }
    let body = serde_json::to_vec(payload).expect("a JSON value serialises");
    Some(Missed { delivery: delivery.to_owned(), headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_delivery_detail_becomes_the_webhook_it_was() {
        let detail = json!({
            "id": 12, "guid": "0b989ba4-242f-11e5-81e1-c7b6966d2516", "event": "push", "status_code": 502,
            "request": {
                "headers": {
                    "X-GitHub-Delivery": "0b989ba4-242f-11e5-81e1-c7b6966d2516", "X-GitHub-Event": "push",
                    "Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": "sha256=00",
                    "User-Agent": "GitHub-Hookshot/abc"
                },
                "payload": {"ref": "refs/heads/main"}
            }
        });
        let missed = delivery(&detail, "0b989ba4-242f-11e5-81e1-c7b6966d2516").unwrap();
        assert_eq!(missed.body, br#"{"ref":"refs/heads/main"}"#);
        let names: Vec<&str> = missed.headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["User-Agent", "X-GitHub-Delivery", "X-GitHub-Event", "content-type"]);
        assert_eq!(missed.headers[3].1, "application/json", "the payload comes back as JSON whatever was sent");
        let bare = json!({"event": "push", "request": {"headers": {}, "payload": {}}});
        let filled = delivery(&bare, "d").unwrap();
        assert!(filled.headers.contains(&("x-github-delivery".into(), "d".into())), "{:?}", filled.headers);
        assert!(filled.headers.contains(&("x-github-event".into(), "push".into())));
        assert_eq!(delivery(&json!({"request": {"payload": null}}), "d"), None);
    }
}
