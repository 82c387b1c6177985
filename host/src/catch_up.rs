//! Deliveries that never arrived. At start and every `every`, each source's `catch_up`
//! lists what its forge's hooks delivered (`github.rs`, `gitlab.rs`) and ingests those no
//! server accepted and the queue never recorded; each source's `poll` lists its
//! repositories' refs (`poll.rs`) and makes a push event for each ref that moved without a
//! delivery. Nothing here stops the daemon: a failure is logged with the repository and
//! URL, the other repositories go on, and the next pass tries again.

mod api;
mod github;
mod gitlab;
pub mod poll;

use crate::config::{CatchUp, Source};
use crate::ingest::{Input, Pipeline};
use crate::queue::Queue;
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How many pages of a hook's deliveries one pass reads at most (100 a page).
const MAX_PAGES: usize = 10;

/// A delivery a forge sent (or tried to) that no server accepted and the queue does not
/// hold, as fetched from the forge's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The forge's delivery id (the one its webhook carried).
    pub delivery: String,
    /// The headers the forge sent.
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub body: Vec<u8>,
}

/// The newest delivery listed for each hook at the previous pass (by `repo#hook`): a
/// later pass reads pages until it reaches one of those.
pub type Marks = HashMap<String, i64>;

/// One delivery attempt as a forge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    /// The API's id of the attempt (what its detail is fetched by).
    id: i64,
    /// The delivery id the webhook carried; retries and redeliveries share it.
    delivery: String,
    /// Whether a server gave it a final answer ([`answered`]).
    answered: bool,
}

/// Whether an attempt that got HTTP `status` (0: none, the forge could not connect or
/// timed out) was answered: accepted (2xx) or refused (4xx). Only attempts that reached no
/// server or met a server error are missed. A refusal counts as answered: a delivery this
/// daemon turned away (a bad or missing signature, an unreadable or too large payload)
/// must not come back unverified through the API, where its signature is not checked.
fn answered(status: i64) -> bool {
    (200..500).contains(&status)
}

/// The deliveries among `attempts` (newest first, as forges list them) that no attempt
/// got a final answer for: one attempt each (the newest), oldest delivery first.
///
/// A delivery some server accepted is left alone even when the queue no longer holds it
/// (retention may have pruned it): running it again would repeat its work.
fn unanswered(attempts: &[Attempt]) -> Vec<&Attempt> {
    let answered: HashSet<&str> =
        attempts.iter().filter(|attempt| attempt.answered).map(|attempt| attempt.delivery.as_str()).collect();
    let mut seen = HashSet::new();
    let mut missed: Vec<&Attempt> = attempts
        .iter()
        .filter(|attempt| !answered.contains(attempt.delivery.as_str()) && seen.insert(attempt.delivery.as_str()))
        .collect();
    missed.reverse();
    missed
}

/// The ids of `hooks` (as the forge's API lists them; `url_of` reads a hook's URL) that
/// post to `source`, warning when none does.
fn our_hooks(
    hooks: &[serde_json::Value],
    url_of: fn(&serde_json::Value) -> Option<&str>,
    source: &Source,
    catch_up: &CatchUp,
    repo: &str,
) -> Vec<i64> {
    let ours: Vec<i64> = hooks
        .iter()
        .filter(|hook| url_of(hook).is_some_and(|url| points_here(url, &source.name, catch_up.hook_url.as_deref())))
        .filter_map(|hook| hook["id"].as_i64())
        .collect();
    if ours.is_empty() {
        tracing::warn!(
            source = %source.name,
            %repo,
            "catching up: none of the repository's {} hooks posts to {}",
            hooks.len(),
            catch_up.hook_url.clone().unwrap_or_else(|| format!("a URL ending in /hooks/{}", source.name))
        );
    }
    ours
}

/// The [`unanswered`] attempts whose delivery the queue does not hold, oldest first.
async fn not_held<'a>(queue: &Queue, source: &Source, attempts: &'a [Attempt]) -> anyhow::Result<Vec<&'a Attempt>> {
    let candidates = unanswered(attempts);
    let ids: Vec<String> = candidates.iter().map(|attempt| attempt.delivery.clone()).collect();
    let known = queue.known_deliveries(source.name.clone(), ids).await.context("looking up delivery ids")?;
    Ok(candidates.into_iter().filter(|attempt| !known.contains(&attempt.delivery)).collect())
}

/// Moves the mark of hook `key` to the newest of `attempts`, once the hook was read through:
/// a failure before leaves the mark, and the next pass reads as far back again.
fn advance(marks: &mut Marks, key: String, mark: Option<i64>, attempts: &[Attempt]) {
    if let Some(newest) = attempts.iter().map(|attempt| attempt.id).max() {
        marks.insert(key, newest.max(mark.unwrap_or(0)));
    }
}

/// Whether a hook posting to `url` posts to this source: to `hook_url` when the config
/// names it, else to any URL whose path ends with `/hooks/<source>`.
fn points_here(url: &str, source: &str, hook_url: Option<&str>) -> bool {
    match hook_url {
        Some(expected) => url.trim_end_matches('/') == expected.trim_end_matches('/'),
        None => {
            let path = url::Url::parse(url).map(|url| url.path().to_owned()).unwrap_or_default();
            path.trim_end_matches('/').ends_with(&format!("/hooks/{source}"))
        }
    }
}

/// One catch-up pass over `source`'s repositories: lists their hooks' deliveries, and
/// ingests each that was missed. Returns the marks for the next pass.
pub async fn catch_up(pipeline: &Pipeline, source: &Source, catch_up: &CatchUp, mut marks: Marks) -> Marks {
    let api = match source.forge {
        "gitlab" => api::Api::new(&catch_up.api_url, "private-token", catch_up.credential.expose()),
        _ => api::Api::new(&catch_up.api_url, "authorization", &format!("Bearer {}", catch_up.credential.expose())),
    };
    let api = match api {
        Ok(api) => api,
        Err(err) => {
            tracing::error!(source = %source.name, "catching up: {err:#}");
            return marks;
        }
    };
    for repo in &catch_up.repos {
        // The marks move on only once every missed delivery of the repository is stored:
        // after a failure the next pass reads as far back again and finds them.
        let mut next = marks.clone();
        let found = match source.forge {
            "gitlab" => gitlab::missed(&api, pipeline.queue(), source, catch_up, repo, &mut next).await,
            _ => github::missed(&api, pipeline.queue(), source, catch_up, repo, &mut next).await,
        };
        let missed = match found {
            Ok(missed) => missed,
            Err(err) => {
                // One repository failing leaves the others to go on.
                tracing::warn!(source = %source.name, %repo, "catching up on missed deliveries: {err:#}");
                continue;
            }
        };
        let mut stored = true;
        for delivery in missed {
            let id = delivery.delivery.clone();
            let input = Input::catch_up(
                &source.name,
                &delivery.delivery,
                delivery.headers.into_iter().collect(),
                delivery.body.into(),
            );
            match pipeline.ingest(input).await {
                Ok(ingested) => tracing::info!(
                    source = %source.name,
                    %repo,
                    delivery = %id,
                    jobs = ?ingested.jobs,
                    duplicate = ingested.duplicate,
                    "caught up a missed delivery ({})",
                    ingested.outcome.verdict().as_str()
                ),
                Err(err) => {
                    tracing::error!(source = %source.name, %repo, delivery = %id, "catching up: {err}; tried again next pass");
                    stored = false;
                }
            }
        }
        if stored {
            marks = next;
        }
    }
    marks
}

/// What a scheduled pass does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    CatchUp,
    Poll,
}

/// Runs every source's catch-up and polling: once at start, then every `every`, each
/// source's passes one at a time, under the config current when a pass starts (a reload
/// adds, changes or removes them). Stops when `stop` changes; passes under way are
/// abandoned (what they ingested is committed; the next start looks again).
pub async fn run(pipeline: Pipeline, mut stop: watch::Receiver<bool>) {
    let mut started: HashMap<(Kind, String), Instant> = HashMap::new();
    let mut running: HashSet<(Kind, String)> = HashSet::new();
    let mut marks: HashMap<String, Marks> = HashMap::new();
    let mut passes: JoinSet<((Kind, String), Option<Marks>)> = JoinSet::new();
    loop {
        let config = pipeline.config();
        let now = Instant::now();
        // Looked at again at least every second, so that a reload takes effect soon.
        let mut wake = now + Duration::from_secs(1);
        for source in config.sources.values() {
            let every = [
                (Kind::CatchUp, source.catch_up.as_ref().map(|c| c.every)),
                (Kind::Poll, source.poll.as_ref().map(|p| p.every)),
            ];
            for (kind, every) in every {
                let Some(every) = every else { continue };
                let task = (kind, source.name.clone());
                if running.contains(&task) {
                    continue;
                }
                let due = started.get(&task).map_or(now, |at| *at + every);
                if due > now {
                    wake = wake.min(due);
                    continue;
                }
                started.insert(task.clone(), now);
                running.insert(task.clone());
                let (pipeline, source) = (pipeline.clone(), source.clone());
                match kind {
                    Kind::CatchUp => {
                        let previous = marks.remove(&source.name).unwrap_or_default();
                        passes.spawn(async move {
                            let catch_up = source.catch_up.as_ref().expect("only sources with catch_up are scheduled");
                            let marks = self::catch_up(&pipeline, &source, catch_up, previous).await;
                            (task, Some(marks))
                        });
                    }
                    Kind::Poll => {
                        passes.spawn(async move {
                            let polled = source.poll.as_ref().expect("only sources with poll are scheduled");
                            poll::poll(&pipeline, &source.name, polled).await;
                            (task, None)
                        });
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            Some(done) = passes.join_next() => match done {
                Ok((task, new_marks)) => {
                    if let Some(new_marks) = new_marks {
                        marks.insert(task.1.clone(), new_marks);
                    }
                    running.remove(&task);
                }
                Err(err) => {
                    // A pass that panicked: forget what was running, so it runs again.
                    tracing::error!("a catch-up or polling pass failed: {err}");
                    running.clear();
                }
            },
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    passes.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: i64, delivery: &str, answered: bool) -> Attempt {
        Attempt { id, delivery: delivery.into(), answered }
    }

    #[test]
    fn deliveries_no_server_answered_are_missed_once_each_oldest_first() {
        let listed = [
            attempt(9, "c", false),
            attempt(8, "b", true),
            attempt(7, "a", false),
            attempt(6, "b", false),
            attempt(5, "c", false),
            attempt(4, "d", false),
        ];
        let missed: Vec<(i64, &str)> = unanswered(&listed).iter().map(|a| (a.id, a.delivery.as_str())).collect();
        assert_eq!(missed, [(4, "d"), (7, "a"), (9, "c")], "b was answered on its redelivery; c's newest attempt");
    }

    #[test]
    fn only_attempts_no_server_answered_or_a_server_failed_are_missed() {
        for (status, missed) in [
            (0, true),
            (200, false),
            (202, false),
            (401, false),
            (400, false),
            (413, false),
            (500, true),
            (502, true),
            (504, true),
        ] {
            assert_eq!(!answered(status), missed, "status {status}");
        }
    }

    #[test]
    fn hooks_point_here_by_their_url() {
        let cases = [
            ("https://ci.example.com/hooks/github", None, true),
            ("https://ci.example.com/gitauto/hooks/github/", None, true),
            ("https://ci.example.com/hooks/github?x=1", None, true),
            ("https://ci.example.com/hooks/github-other", None, false),
            ("https://ci.example.com/hooks/gitlab", None, false),
            ("https://elsewhere.example.com/hooks/github", Some("https://ci.example.com/hooks/github"), false),
            ("https://ci.example.com/hooks/github/", Some("https://ci.example.com/hooks/github"), true),
            ("https://proxy.example.com/in", Some("https://proxy.example.com/in"), true),
        ];
        for (url, hook_url, want) in cases {
            assert_eq!(points_here(url, "github", hook_url), want, "{url} {hook_url:?}");
        }
    }
}
