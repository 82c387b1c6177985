//! `/jobs/{id}`: one job, and its retry and cancel buttons.

use super::super::AppState;
use super::index::node_cell;
use super::{escape, page, problem};
use crate::queue::{Cancelled, JobView, Retried};
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
        "<div id=\"head\"><h1>Job {id} <span class=\"state {state}\" id=\"state\">{state}</span></h1>\
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
    out.push_str("</div>");
    out.push_str(&actions(job));
    out.push_str(
        "<h2>Steps</h2><table id=\"steps\"><tr><th>step</th><th>plugin</th><th>status</th><th>took</th>\
         <th>cost</th><th>summary</th></tr>",
    );
    for step in &job.steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td{}>{}</td><td>{}</td><td>{} ms</td>{}<td>{}</td></tr>",
            escape(&step.name),
            component_title(step),
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
    out.push_str("<h2>Deliveries</h2><p id=\"deliveries\">");
    // By seq: delivery ids may repeat across sources.
    for (index, (delivery, seq)) in job.deliveries.iter().zip(&job.delivery_seqs).enumerate() {
        let sep = if index == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}<a href=\"/deliveries/{seq}\">{}</a>", escape(delivery));
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
            "<h2>Reports to the forge</h2><table id=\"reports\"><tr><th>attempt</th><th>state</th><th>commit</th><th>tries</th>\
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
        // Streams new lines while the job runs. When its state changes, a step ends (the
        // next one logs) or it ends, the page's head, buttons, steps and reports are read
        // again and swapped in; the log keeps streaming.
        let _ = write!(
            out,
            "<script>\
             const log=document.getElementById('log');\
             const source=new EventSource('/api/jobs/{id}/log');\
             let last={last},step=null;\
             async function refresh(){{const r=await fetch(location.href,{{cache:'no-store'}});if(!r.ok)return;\
             const page=new DOMParser().parseFromString(await r.text(),'text/html');\
             for(const part of ['head','actions','steps','reports']){{const now=document.getElementById(part),\
             next=page.getElementById(part);if(now&&next)now.replaceWith(next);}}}}\
             source.addEventListener('log',e=>{{const l=JSON.parse(e.data);if(l.seq<=last)return;last=l.seq;\
             if(l.step!==step){{if(step!==null)refresh();step=l.step;}}\
             log.textContent+=l.at+' '+(l.step?'['+l.step+'] ':'')+l.level+' '+l.message+'\\n';}});\
             source.addEventListener('state',e=>{{if(JSON.parse(e.data).state!==document.getElementById('state').textContent)refresh();}});\
             source.addEventListener('end',()=>{{source.close();refresh();}});\
             </script>"
        );
    }
    out
}

/// The component a step's plugin ran, as the plugin cell's tooltip: its SHA-256 and who
/// signed it; nothing for steps recorded without it.
fn component_title(step: &crate::queue::StepView) -> String {
    let Some(digest) = &step.plugin_digest else { return String::new() };
    let signer = match &step.plugin_signer {
        Some(signer) => format!("\nsigned by {signer}"),
        None => "\nnot signed".to_owned(),
    };
    format!(" class=\"component\" title=\"sha256:{}\"", escape(&format!("{digest}{signer}")))
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

/// The buttons that can work on the job in its state now: cancel while it waits, is
/// queued or runs (once asked, a running job says so instead), retry once it finished
/// (a superseded job's work is done by the job that superseded it).
fn actions(job: &JobView) -> String {
    let id = escape(&job.id);
    let cancel =
        format!("<form method=\"post\" action=\"/jobs/{id}/cancel\"><button id=\"cancel\">cancel</button></form>");
    let retry = format!("<form method=\"post\" action=\"/jobs/{id}/retry\"><button id=\"retry\">retry</button></form>");
    let inner = match job.state.as_str() {
        "waiting" | "queued" => cancel,
        "running" if job.cancel_requested => {
            "<span class=\"muted\" id=\"cancel-requested\">cancel requested: it stops before its next step</span>"
                .to_owned()
        }
        "running" => cancel,
        "superseded" => match &job.superseded_by {
            Some(newer) => format!(
                "<span class=\"muted\">superseded by <a href=\"/jobs/{n}\">job {n}</a>, which does its work</span>",
                n = escape(newer)
            ),
            None => "<span class=\"muted\">superseded by a newer job, which does its work</span>".to_owned(),
        },
        _ => retry,
    };
    // A div: a form cannot sit inside a paragraph (the parser would close it first).
    format!("<div id=\"actions\">{inner}</div>")
}

fn log_text(at: &str, step: Option<&str>, level: &str, message: &str) -> String {
    match step {
        Some(step) => format!("{at} [{step}] {level} {message}"),
        None => format!("{at} {level} {message}"),
    }
}

/// `POST /jobs/{id}/retry` and `/cancel` from the job page's buttons (a form another
/// site makes a browser send is refused before this, by `browser::refuse_cross_site`).
/// A page may be stale: each answer of the queue gets its own words.
pub(in crate::server) async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let Ok(number) = id.parse::<i64>() else { return problem(StatusCode::BAD_REQUEST, "not a job id") };
    let back = Redirect::to(&format!("/jobs/{number}")).into_response();
    let stale = |message: String| {
        page_problem(
            StatusCode::CONFLICT,
            &message,
            &format!("<p><a href=\"/jobs/{number}\">back to job {number}</a></p>"),
        )
    };
    let result = match action.as_str() {
        "retry" => state.queue.retry(number).await.map(|r| {
            r.map(|retried| match retried {
                Retried::Queued => back,
                Retried::NotFinished => {
                    stale(format!("job {number} has not finished (it is queued or running again); nothing to retry"))
                }
                Retried::Superseded(newer) => page_problem(
                    StatusCode::CONFLICT,
                    &format!("job {newer} is queued with a newer event for the same checkout; it will do this work"),
                    &format!("<p><a href=\"/jobs/{n}\">job {n}</a></p>", n = escape(&newer)),
                ),
            })
        }),
        "cancel" => state.queue.cancel(number).await.map(|c| {
            c.map(|cancelled| match cancelled {
                Cancelled::Cancelled | Cancelled::Requested => back,
                Cancelled::AlreadyFinished => {
                    stale(format!("job {number} had already finished before the cancel arrived; nothing to cancel"))
                }
            })
        }),
        _ => return problem(StatusCode::NOT_FOUND, "no such action (the actions are retry and cancel)"),
    };
    match result {
        Ok(Some(answer)) => answer,
        Ok(None) => problem(StatusCode::NOT_FOUND, &format!("no job {id}")),
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be written: {err:#}")),
    }
}

/// An error page with a way on (`more` is HTML).
fn page_problem(status: StatusCode, message: &str, more: &str) -> Response {
    let mut answer = page("problem", &format!("<h1>{status}</h1><p id=\"problem\">{}</p>{more}", escape(message)));
    *answer.status_mut() = status;
    answer
}
