//! GitLab (17.3 and later): a project's hooks (`GET /projects/:id/hooks`) and the events
//! of those that post to this source (`GET /projects/:id/hooks/:hook_id/events`: the past
//! seven days, newest first, each with the request's headers and data as GitLab sent
//! them). The delivery id is the one the webhook carried, read from those headers as the
//! source's dialect reads a webhook's.

use super::api::Api;
use super::{Attempt, MAX_PAGES, Marks, Missed, advance, answered, not_held, our_hooks};
use crate::config::{CatchUp, Source};
use crate::forge::Headers;
use crate::queue::Queue;
use serde_json::Value;
use std::collections::HashMap;

/// Headers not carried over: GitLab shows its token as `[REDACTED]`, and the body
/// ingested is the request data serialised again.
const DROPPED: &[&str] = &["content-type", "content-length", "x-gitlab-token", "webhook-signature"];

/// The events of `repo`'s hooks to this source that no server accepted and the queue
/// does not hold, oldest first.
pub(super) async fn missed(
    api: &Api,
    queue: &Queue,
    source: &Source,
    catch_up: &CatchUp,
    repo: &str,
    marks: &mut Marks,
) -> anyhow::Result<Vec<Missed>> {
    let project = repo.replace('/', "%2F");
    let hooks = api.all(&api.url(&format!("/projects/{project}/hooks?per_page=100")), MAX_PAGES).await?;
    let ours = our_hooks(&hooks, |hook| hook["url"].as_str(), source, catch_up, repo);
    let mut missed = Vec::new();
    for hook in ours {
        let key = format!("{repo}#{hook}");
        let mark = marks.get(&key).copied();
        let url = api.url(&format!("/projects/{project}/hooks/{hook}/events?per_page=100"));
        let mut attempts = Vec::new();
        let mut events: HashMap<i64, Missed> = HashMap::new();
        let mut next = Some(url);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let page = api.page(&url).await?;
            let mut reached = false;
            for item in &page.items {
                let Some(id) = item["id"].as_i64() else { continue };
                reached |= mark.is_some_and(|mark| id <= mark);
                let Some(event) = event(source, item) else {
                    tracing::warn!(source = %source.name, %repo, %url, event = id, "catching up: the event carries no delivery id; skipped");
                    continue;
                };
                let status: i64 = item["response_status"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                attempts.push(Attempt { id, delivery: event.delivery.clone(), answered: answered(status) });
                events.insert(id, event);
            }
            if reached {
                break;
            }
            next = page.next;
        }
        for attempt in not_held(queue, source, &attempts).await? {
            if let Some(event) = events.remove(&attempt.id) {
                missed.push(event);
            }
        }
        advance(marks, key, mark, &attempts);
    }
    Ok(missed)
}

/// A hook event as [`Missed`]: its request headers (minus [`DROPPED`], plus a JSON content
/// type) and its request data. None when no delivery id can be read from the headers.
fn event(source: &Source, item: &Value) -> Option<Missed> {
    let mut headers: Vec<(String, String)> = item["request_headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !DROPPED.contains(&name.to_ascii_lowercase().as_str()))
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    let delivery = source.dialect.envelope(&headers.iter().cloned().collect::<Headers>()).delivery?;
    let body = match &item["request_data"] {
        // Older answers hold the data as JSON text.
        Value::String(text) => text.clone().into_bytes(),
        Value::Null => return None,
        data => serde_json::to_vec(data).expect("a JSON value serialises"),
    };
    Some(Missed { delivery, headers, body })
}
