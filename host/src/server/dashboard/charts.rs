//! The dashboard's charts (inline SVG drawn by `server::svg` from `queue::stats`):
//! deliveries by verdict, jobs finished per rule by state, step durations per plugin and
//! the queue's depth, over the last hour or day (`?window=`); `GET /charts` is the same
//! section alone, which the page fetches every 30 seconds to stay current.

use super::super::AppState;
use super::super::svg::{self, Frame, Series, TimeAxis};
use super::{escape, problem};
use crate::queue::JobState;
use crate::queue::stats::{Stats, Window};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write as _;

/// Every verdict a delivery can have, in the charts' order (work first, refusals last).
const VERDICTS: [&str; 7] = ["queued", "unmatched", "ignored", "ping", "duplicate", "rejected", "invalid"];

/// The colour of a job state, as the dashboard's tables show it.
pub(super) fn state_colour(state: &str) -> &'static str {
    match state {
        "succeeded" => "#1a7f37",
        "failed" => "#cf222e",
        "dead" => "#82071e",
        "quarantined" => "#bc4c00",
        "running" => "#9a6700",
        "queued" => "#0969da",
        "waiting" => "#8250df",
        "cancelled" => "#57606a",
        "skipped" => "#8c959f",
        _ => "#afb8c1",
    }
}

fn verdict_colour(verdict: &str) -> &'static str {
    match verdict {
        "queued" => "#1a7f37",
        "unmatched" => "#8c959f",
        "ignored" => "#afb8c1",
        "ping" => "#0969da",
        "duplicate" => "#8250df",
        "rejected" => "#cf222e",
        "invalid" => "#bc4c00",
        _ => "#57606a",
    }
}

/// "last hour" or "last day".
pub(super) fn label(window: Window) -> &'static str {
    match window {
        Window::Hour => "last hour",
        Window::Day => "last day",
    }
}

/// The `window` parameter of `raw` (a query string), and the query without it; a
/// window other than `hour` or `day` is an error saying so.
pub(super) fn take_window(raw: Option<&str>) -> Result<(Window, String), String> {
    let mut window = Window::Hour;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if key == "window" {
            window = Window::parse(&value).ok_or_else(|| format!("unknown window `{value}` (one of: hour, day)"))?;
        } else {
            rest.append_pair(&key, &value);
        }
    }
    Ok((window, rest.finish()))
}

fn axis(stats: &Stats) -> TimeAxis {
    TimeAxis { from_ms: stats.from_ms, bucket_ms: stats.bucket_ms, buckets: stats.buckets }
}

/// The states present in `states`, in lifecycle order.
fn states_of<'a>(states: impl Iterator<Item = &'a str>) -> Vec<&'static str> {
    let present: std::collections::HashSet<&str> = states.collect();
    JobState::ALL.iter().map(|s| s.as_str()).filter(|s| present.contains(s)).collect()
}

/// Deliveries per minute, stacked by verdict: counts per minute over the hour, each
/// fifteen minutes' average per minute over the day.
fn deliveries(stats: &Stats, window: Window) -> String {
    let present: Vec<&str> =
        VERDICTS.into_iter().filter(|v| stats.deliveries.iter().any(|d| d.verdict == *v)).collect();
    let series: Vec<Series> =
        present.iter().map(|v| Series { name: (*v).to_owned(), colour: verdict_colour(v) }).collect();
    let minutes = (stats.bucket_ms / 60_000).max(1) as f64;
    let mut values = vec![vec![0.0; present.len()]; stats.buckets];
    for count in &stats.deliveries {
        if let (Some(row), Some(n)) = (values.get_mut(count.bucket), present.iter().position(|v| *v == count.verdict)) {
            row[n] += count.count as f64 / minutes;
        }
    }
    let (title, desc) = match window {
        Window::Hour => (
            "Deliveries per minute by verdict, last hour".to_owned(),
            "Webhook deliveries received each minute, stacked by what became of them".to_owned(),
        ),
        Window::Day => (
            "Deliveries per minute by verdict, last day (15-minute averages)".to_owned(),
            "Webhook deliveries received per minute, averaged over each 15 minutes, stacked by what became of them"
                .to_owned(),
        ),
    };
    let empty = format!("no deliveries in the {}", label(window));
    let frame = Frame {
        id: "chart-deliveries",
        title: &title,
        desc: &desc,
        empty: &empty,
        format: if window == Window::Hour { svg::count as fn(f64) -> String } else { svg::rate },
        whole: window == Window::Hour,
    };
    svg::stacked_bars(&frame, axis(stats), &series, &values)
}

/// Jobs finished in the window, one group of bars per rule, one bar per final state.
fn jobs(stats: &Stats, window: Window) -> String {
    let mut rules: Vec<String> = stats.jobs.iter().map(|j| j.rule.clone()).collect();
    rules.sort();
    rules.dedup();
    let states = states_of(stats.jobs.iter().map(|j| j.state.as_str()));
    let series: Vec<Series> =
        states.iter().map(|s| Series { name: (*s).to_owned(), colour: state_colour(s) }).collect();
    let mut values = vec![vec![0.0; states.len()]; rules.len()];
    for count in &stats.jobs {
        let rule = rules.iter().position(|r| *r == count.rule).expect("every rule was collected");
        let state = states.iter().position(|s| *s == count.state).expect("every state was collected");
        values[rule][state] += count.count as f64;
    }
    let title = format!("Jobs finished per rule by state, {}", label(window));
    let empty = format!("no jobs finished in the {}", label(window));
    let frame = Frame {
        id: "chart-jobs",
        title: &title,
        desc: "How many jobs of each rule finished in each state",
        empty: &empty,
        format: svg::count,
        whole: true,
    };
    svg::grouped_bars(&frame, &rules, &series, &values)
}

/// p50 and p95 step durations per plugin.
fn steps(stats: &Stats, window: Window) -> String {
    let groups: Vec<String> = stats.steps.iter().map(|s| s.plugin.clone()).collect();
    let series =
        [Series { name: "p50".to_owned(), colour: "#54aeff" }, Series { name: "p95".to_owned(), colour: "#0550ae" }];
    let values: Vec<Vec<f64>> = stats.steps.iter().map(|s| vec![s.p50_ms as f64, s.p95_ms as f64]).collect();
    let counts: Vec<String> = stats.steps.iter().map(|s| format!("{} {} steps", s.plugin, s.steps)).collect();
    let title = format!("Step duration per plugin (p50, p95), {}", label(window));
    let desc = if counts.is_empty() {
        "Median and 95th percentile step durations per plugin".to_owned()
    } else {
        format!("Median and 95th percentile step durations per plugin; {}", counts.join(", "))
    };
    let empty = format!("no steps finished in the {}", label(window));
    let frame =
        Frame { id: "chart-steps", title: &title, desc: &desc, empty: &empty, format: svg::duration, whole: false };
    svg::grouped_bars(&frame, &groups, &series, &values)
}

/// The queue's depth: each bucket's largest sample, then the live count now.
fn depth(stats: &Stats, window: Window) -> String {
    let series = [
        Series { name: "queued".to_owned(), colour: state_colour("queued") },
        Series { name: "running".to_owned(), colour: state_colour("running") },
        Series { name: "waiting".to_owned(), colour: state_colour("waiting") },
    ];
    let points: Vec<(i64, Vec<f64>)> =
        stats.depth.iter().map(|d| (d.at_ms, vec![d.queued as f64, d.running as f64, d.waiting as f64])).collect();
    let title = format!("Queue depth, {}", label(window));
    let desc = match window {
        Window::Hour => "Jobs queued, running and waiting for an approval, sampled each minute; the last point is now",
        Window::Day => {
            "Jobs queued, running and waiting for an approval, the largest sample of each 15 minutes; the \
                        last point is now"
        }
    };
    let empty = format!("no samples in the {}", label(window));
    let frame = Frame { id: "chart-depth", title: &title, desc, empty: &empty, format: svg::count, whole: true };
    svg::lines(&frame, axis(stats), &series, &points)
}

/// One rule's finished jobs over time, stacked by state (the rule page's chart).
pub(super) fn rule_jobs(stats: &Stats, window: Window, rule: &str) -> String {
    let mine: Vec<_> = stats.jobs.iter().filter(|j| j.rule == rule).collect();
    let states = states_of(mine.iter().map(|j| j.state.as_str()));
    let series: Vec<Series> =
        states.iter().map(|s| Series { name: (*s).to_owned(), colour: state_colour(s) }).collect();
    let mut values = vec![vec![0.0; states.len()]; stats.buckets];
    for count in mine {
        let state = states.iter().position(|s| *s == count.state).expect("every state was collected");
        if let Some(row) = values.get_mut(count.bucket) {
            row[state] += count.count as f64;
        }
    }
    let per = if window == Window::Hour { "minute" } else { "15 minutes" };
    let title = format!("Jobs of {rule} finished per {per} by state, {}", label(window));
    let empty = format!("no jobs of this rule finished in the {}", label(window));
    let frame = Frame {
        id: "chart-rule-jobs",
        title: &title,
        desc: "The rule's jobs that finished in each bucket, stacked by their final state",
        empty: &empty,
        format: svg::count,
        whole: true,
    };
    svg::stacked_bars(&frame, axis(stats), &series, &values)
}

/// The links that switch the window, keeping the page's other parameters (`base` is the
/// page's path).
pub(super) fn switch(out: &mut String, base: &str, window: Window) {
    out.push_str("<p class=\"window\">");
    for (n, other) in Window::ALL.into_iter().enumerate() {
        if n > 0 {
            out.push_str(" · ");
        }
        if other == window {
            let _ = write!(out, "<strong>{}</strong>", label(other));
        } else {
            let _ = write!(out, "<a href=\"{}?window={}\">{}</a>", escape(base), other.as_str(), label(other));
        }
    }
    out.push_str("</p>");
}

/// The charts section of `/` for `window`.
pub(super) async fn section(state: &AppState, window: Window) -> anyhow::Result<String> {
    let stats = state.queue.stats(window).await?;
    let mut out = format!("<section id=\"charts\" data-window=\"{}\"><h2>Activity</h2>", window.as_str());
    switch(&mut out, "/", window);
    for chart in [deliveries(&stats, window), jobs(&stats, window), steps(&stats, window), depth(&stats, window)] {
        let _ = write!(out, "<figure>{chart}</figure>");
    }
    let _ = write!(
        out,
        "<p class=\"muted\">Times in UTC. The same figures as JSON: <a href=\"/api/stats?window={w}\">/api/stats?window={w}</a>.</p></section>",
        w = window.as_str()
    );
    Ok(out)
}

/// The charts section with the script that refreshes it every 30 seconds (a failed
/// refresh keeps the charts shown).
pub(super) async fn section_refreshed(state: &AppState, window: Window) -> anyhow::Result<String> {
    let mut out = section(state, window).await?;
    let _ = write!(
        out,
        "<script>setInterval(function () {{\
           fetch('/charts?window={}', {{credentials: 'same-origin'}})\
             .then(function (r) {{ return r.ok ? r.text() : null; }})\
             .then(function (html) {{ if (html) document.getElementById('charts').outerHTML = html; }})\
             .catch(function () {{}});\
         }}, 30000);</script>",
        window.as_str()
    );
    Ok(out)
}

/// `GET /charts?window=`: the charts section alone, for the page's refresh.
pub(in crate::server) async fn fragment(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let window = match take_window(raw.as_deref()) {
        Ok((window, rest)) if rest.is_empty() => window,
        Ok((_, rest)) => {
            return problem(StatusCode::BAD_REQUEST, &format!("unknown parameters `{rest}` (expected window)"));
        }
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    match section(&state, window).await {
        Ok(html) => Html(html).into_response(),
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_taken_from_the_query_and_the_rest_is_kept() {
        assert_eq!(take_window(None).unwrap(), (Window::Hour, String::new()));
        assert_eq!(take_window(Some("window=day&state=failed")).unwrap(), (Window::Day, "state=failed".to_owned()));
        assert_eq!(take_window(Some("rule=a+b")).unwrap(), (Window::Hour, "rule=a+b".to_owned()));
        assert_eq!(take_window(Some("window=week")).unwrap_err(), "unknown window `week` (one of: hour, day)");
    }
}
