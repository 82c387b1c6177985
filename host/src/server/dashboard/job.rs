//! `/jobs/{id}`: one job, and its retry and cancel buttons.

use super::super::AppState;
use super::index::node_cell;
use super::{escape, page, problem};
use crate::queue::JobView;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write as _;

/// `GET /jobs/{id}`: one job.
pub(in crate::server) async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<i64>() else { return problem(StatusCode::BAD_REQUEST, "not a job id") };
    match state.queue.job(number).await {
        Ok(Some(job)) => page(&format!("job {id}"), &job_body(&job)),
        Ok(None) => problem(StatusCode::NOT_FOUND, &format!("no job {id}")),
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}")),
    }
}

fn job_body(job: &JobView) -> String {
    let mut out = String::new();
    let id = escape(&job.id);
    let _ = write!(
        out,
        "<h1>Job {id} <span class=\"state {state}\" id=\"state\">{state}</span></h1>\
         <p>rule <b>{rule}</b> · {repo} {git_ref} · attempt {attempts} of {max} · created {created}{started}{finished}{node}</p>",
        state = escape(&job.state),
        rule = escape(&job.rule),
        repo = escape(&job.repo),
        git_ref = escape(job.git_ref.as_deref().unwrap_or("")),
        attempts = job.attempts,
        max = job.max_attempts,
        created = escape(&job.created_at),
        started = job.started_at.as_deref().map(|t| format!(" · started {}", escape(t))).unwrap_or_default(),
        finished = job.finished_at.as_deref().map(|t| format!(" · finished {}", escape(t))).unwrap_or_default(),
        node = match node_cell(job.node.as_deref(), job.ran_on.as_deref()) {
            cell if cell.is_empty() => String::new(),
            cell => format!(" · node {}", escape(&cell)),
        },
    );
    if let Some(summary) = &job.summary {
        let _ = write!(out, "<p><b>{}</b></p>", escape(summary));
    }
    if let Some(error) = &job.error {
        let _ = write!(out, "<p class=\"failed\">{}</p>", escape(error));
    }
    let _ = write!(
        out,
        "<p><form method=\"post\" action=\"/jobs/{id}/retry\"><button>retry</button></form>\
         <form method=\"post\" action=\"/jobs/{id}/cancel\"><button>cancel</button></form></p>"
    );
    out.push_str(
        "<h2>Steps</h2><table id=\"steps\"><tr><th>step</th><th>plugin</th><th>status</th><th>took</th>\
         <th>cost</th><th>summary</th></tr>",
    );
    for step in &job.steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td>{}<td>{}</td></tr>",
            escape(&step.name),
            escape(&step.plugin),
            step.status.as_str(),
            step.duration_ms,
            bill_cell(step.bill.as_ref()),
            escape(&step.summary)
        );
    }
    out.push_str("</table><h2>Log</h2><pre id=\"log\">");
    let mut last = 0;
    for line in &job.logs {
        last = line.seq;
        let _ = writeln!(out, "{}", escape(&log_text(&line.at, line.step.as_deref(), &line.level, &line.message)));
    }
    out.push_str("</pre>");
    out.push_str("<h2>Deliveries</h2><p>");
    for (index, delivery) in job.deliveries.iter().enumerate() {
        let sep = if index == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}<a href=\"/api/deliveries/{d}\">{d}</a>", d = escape(delivery));
    }
    if job.deliveries.len() > 1 {
        let _ = write!(
            out,
            " <span class=\"muted\">({} coalesced into this job; it runs with the last)</span>",
            job.deliveries.len() - 1
        );
    }
    out.push_str("</p>");
    if !job.reports.is_empty() {
        out.push_str(
            "<h2>Reports to the forge</h2><table><tr><th>attempt</th><th>state</th><th>commit</th><th>tries</th>\
             <th>outcome</th></tr>",
        );
        for report in &job.reports {
            let outcome = match (&report.outcome, report.done) {
                (Some(outcome), true) => escape(outcome),
                (Some(failure), false) => format!("waiting to try again: {}", escape(failure)),
                (None, _) => "waiting".to_owned(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td></tr>",
                report.attempt,
                escape(&report.state),
                escape(&report.sha),
                report.tries
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Event</h2><pre>");
    out.push_str(&escape(&serde_json::to_string_pretty(&job.event).unwrap_or_default()));
    out.push_str("</pre>");
    if matches!(job.state.as_str(), "waiting" | "queued" | "running") {
        // Streams new lines while the job runs; reloads once when it ends.
        let _ = write!(
            out,
            "<script>\
             const log=document.getElementById('log');\
             const source=new EventSource('/api/jobs/{id}/log');\
             let last={last};\
             source.addEventListener('log',e=>{{const l=JSON.parse(e.data);if(l.seq<=last)return;last=l.seq;\
             log.textContent+=l.at+' '+(l.step?'['+l.step+'] ':'')+l.level+' '+l.message+'\\n';}});\
             source.addEventListener('end',e=>{{source.close();document.getElementById('state').textContent=JSON.parse(e.data).state;}});\
             </script>"
        );
    }
    out
}

/// A step's bill in a table cell: wall, CPU and memory, with every field on hover; empty
/// for a step whose plugin was not called.
fn bill_cell(bill: Option<&crate::step::StepBill>) -> String {
    let Some(bill) = bill else { return "<td class=\"bill muted\">—</td>".to_owned() };
    let full = bill.summary();
    // The first three parts (wall, cpu, memory) fit a cell; the rest is on hover and in
    // a second line when there were host calls.
    let parts: Vec<&str> = full.split(" · ").collect();
    let calls = bill
        .calls
        .iter()
        .map(|(capability, calls)| format!("{capability} {}×", calls.count))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "<td class=\"bill\" title=\"{}\">{}<br><span class=\"muted\">{}{}{}</span></td>",
        escape(&full),
        escape(&parts[..3.min(parts.len())].join(" · ")),
        escape(parts.get(3).copied().unwrap_or_default()),
        if calls.is_empty() { "" } else { " · " },
        escape(&calls)
    )
}

fn log_text(at: &str, step: Option<&str>, level: &str, message: &str) -> String {
    match step {
        Some(step) => format!("{at} [{step}] {level} {message}"),
        None => format!("{at} {level} {message}"),
    }
}

/// `POST /jobs/{id}/retry` and `/cancel` from the job page's buttons (a form another
/// site makes a browser send is refused before this, by `browser::refuse_cross_site`).
pub(in crate::server) async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let Ok(number) = id.parse::<i64>() else { return problem(StatusCode::BAD_REQUEST, "not a job id") };
    let result = match action.as_str() {
        "retry" => state.queue.retry(number).await.map(|r| r.is_some()),
        "cancel" => state.queue.cancel(number).await.map(|r| r.is_some()),
        _ => return problem(StatusCode::NOT_FOUND, "no such action"),
    };
    match result {
        Ok(true) => Redirect::to(&format!("/jobs/{number}")).into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, &format!("no job {id}")),
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be written: {err:#}")),
    }
}
