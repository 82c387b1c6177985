//! `/rules/{name}`: a rule's state (paused or not, with its pause or resume button), its
//! config in brief, its success rate and mean duration over the last hour and day, its
//! finished jobs over time and its recent jobs.

use super::super::AppState;
use super::index::job_rows;
use super::{charts, escape, page, problem, segment};
use crate::queue::JobFilter;
use crate::queue::stats::{RuleSummary, Window};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::fmt::Write as _;

/// How many of the rule's jobs the page lists.
const RECENT: usize = 20;

fn summary_row(out: &mut String, window: Window, summary: &RuleSummary) {
    let rate = summary.success_rate.map_or_else(|| "–".to_owned(), |rate| format!("{:.0} %", rate * 100.0));
    let mean = summary.mean_ms.map_or_else(|| "–".to_owned(), super::super::svg::duration);
    let _ = write!(
        out,
        "<tr data-window=\"{w}\"><td>{label}</td><td>{finished}</td><td>{succeeded}</td><td>{failed}</td>\
         <td class=\"success-rate\">{rate}</td><td class=\"mean-duration\">{mean}</td></tr>",
        w = window.as_str(),
        label = charts::label(window),
        finished = summary.finished,
        succeeded = summary.succeeded,
        failed = summary.failed,
    );
}

/// `GET /rules/{name}?window=`: the rule's page; 404 for a rule neither in the config nor paused.
pub(in crate::server) async fn rule(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let window = match charts::take_window(raw.as_deref()) {
        Ok((window, rest)) if rest.is_empty() => window,
        Ok((_, rest)) => {
            return problem(StatusCode::BAD_REQUEST, &format!("unknown parameters `{rest}` (expected window)"));
        }
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    let config = state.config();
    let queue = &state.queue;
    let recent = JobFilter { rule: Some(name.clone()), limit: RECENT, ..Default::default() };
    // Whether the rule is known first: a name made up costs no aggregate read.
    let views = match super::super::rules::views(&state, &config).await {
        Ok(views) => views,
        Err(err) => return problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}")),
    };
    let Some(view) = views.into_iter().find(|view| view.name == name) else {
        return problem(StatusCode::NOT_FOUND, &super::super::rules::unknown_rule(&name));
    };
    let read = async {
        tokio::try_join!(
            queue.rule_summary(&name, Window::Hour),
            queue.rule_summary(&name, Window::Day),
            queue.stats(window),
            queue.jobs(recent),
        )
    };
    let (hour, day, stats, jobs) = match read.await {
        Ok(found) => found,
        Err(err) => return problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}")),
    };
    let mut body = format!("<h1>Rule {}</h1>", escape(&name));
    let (status, button) = match (&view.paused_at, view.paused) {
        (Some(at), true) => (
            format!(
                "<span class=\"paused\">paused</span> <span class=\"muted\">since {} on {}</span>",
                escape(at),
                escape(view.paused_on.as_deref().unwrap_or(""))
            ),
            "resume",
        ),
        _ => ("active".to_owned(), "pause"),
    };
    let _ = write!(
        body,
        "<p id=\"rule-state\">{status} <form method=\"post\" action=\"/rules/{path}/{button}\"><button>{button}</button>\
         </form></p><p>{queued} queued, {running} running.</p>",
        path = segment(&name),
        queued = view.queued,
        running = view.running,
    );
    match config.rule(&name) {
        Some(rule) => {
            let on: Vec<String> = rule.on.iter().map(ToString::to_string).collect();
            let steps: Vec<String> = rule
                .steps
                .iter()
                .map(|step| {
                    if step.name == step.plugin {
                        escape(&step.plugin)
                    } else {
                        format!("{} ({})", escape(&step.name), escape(&step.plugin))
                    }
                })
                .collect();
            let _ = write!(
                body,
                "<table id=\"rule-config\"><tr><th>on</th><td>{on}</td></tr><tr><th>repository</th><td>{repo}</td></tr>\
                 <tr><th>steps</th><td>{steps}</td></tr><tr><th>concurrency</th><td>{concurrency}</td></tr>\
                 <tr><th>priority</th><td>{priority}</td></tr><tr><th>retries</th><td>{retries}</td></tr></table>",
                on = escape(&on.join(", ")),
                repo = escape(&rule.repo.to_string()),
                steps = if steps.is_empty() { "none".to_owned() } else { steps.join(" → ") },
                concurrency = rule.concurrency.map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
                priority = rule.priority,
                retries = rule.retries,
            );
        }
        None => body.push_str("<p class=\"muted\">No longer in the running config (still paused).</p>"),
    }
    body.push_str(
        "<h2>Finished jobs</h2><table id=\"rule-summary\"><tr><th>window</th><th>finished</th><th>succeeded</th>\
         <th>failed</th><th>success rate</th><th>mean duration</th></tr>",
    );
    summary_row(&mut body, Window::Hour, &hour);
    summary_row(&mut body, Window::Day, &day);
    body.push_str(
        "</table><p class=\"muted\">The success rate counts succeeded against failed and dead jobs; skipped, \
         cancelled and superseded ones count for neither. The mean duration runs from a job's start to its finish.</p>",
    );
    charts::switch(&mut body, &format!("/rules/{}", segment(&name)), window);
    let _ = write!(body, "<figure>{}</figure>", charts::rule_jobs(&stats, window, &name));
    body.push_str("<h2>Recent jobs</h2>");
    job_rows(&mut body, &jobs, "recent");
    let _ = write!(body, "<p><a href=\"/?rule={}\">all of its jobs</a></p>", segment(&name));
    page(&format!("rule {name}"), &body)
}
