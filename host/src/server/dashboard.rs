//! The dashboard: server-rendered HTML, no build step. `/` shows the queue, running jobs,
//! the rules (paused or not, with pause and resume buttons) and recent history
//! (filterable); `/jobs/{id}` a job's event, deliveries, steps, log and reports, with retry and
//! cancel buttons (plain forms). The only script streams a running job's log from
//! `/api/jobs/{id}/log`.

use super::AppState;
use super::api::{JobsQuery, job_filter};
use crate::queue::{JobSummary, JobView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::fmt::Write as _;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#222}\
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;\
text-align:left;vertical-align:top}th{background:#f4f4f4}a{color:#0550ae}pre{background:#f6f8fa;padding:.8em;\
overflow:auto;max-height:40em}.state{font-weight:600}.succeeded{color:#1a7f37}.failed,.dead,.quarantined{color:#cf222e}\
.running{color:#9a6700}.waiting,.queued,.skipped,.cancelled,.superseded{color:#57606a}form{display:inline}button{margin-right:.5em}\
.muted{color:#57606a}input,select{margin-right:.5em}.paused,.differs{color:#cf222e;font-weight:600}";

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · gitauto</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\
         <body><p><a href=\"/\">gitauto</a></p>{body}</body></html>",
        escape(title)
    );
    Html(html).into_response()
}

fn problem(status: StatusCode, message: &str) -> Response {
    let mut answer = page("problem", &format!("<h1>{}</h1><p>{}</p>", status, escape(message)));
    *answer.status_mut() = status;
    answer
}

fn job_rows(out: &mut String, jobs: &[JobSummary]) {
    out.push_str(
        "<table><tr><th>job</th><th>state</th><th>rule</th><th>repository</th><th>ref</th><th>attempts</th>\
         <th>deliveries</th><th>node</th><th>created</th><th>summary</th></tr>",
    );
    for job in jobs {
        let _ = write!(
            out,
            "<tr><td><a href=\"/jobs/{id}\">{id}</a></td><td class=\"state {state}\">{state}</td><td>{rule}</td>\
             <td>{repo}</td><td>{git_ref}</td><td>{attempts}</td><td>{deliveries}</td><td>{node}</td>\
             <td>{created}</td><td>{summary}</td></tr>",
            id = escape(&job.id),
            state = escape(&job.state),
            rule = escape(&job.rule),
            repo = escape(&job.repo),
            git_ref = escape(job.git_ref.as_deref().unwrap_or("")),
            attempts = job.attempts,
            deliveries = job.deliveries,
            node = escape(&node_cell(job.node.as_deref(), job.ran_on.as_deref())),
            created = escape(&job.created_at),
            summary = escape(job.summary.as_deref().unwrap_or("")),
        );
    }
    if jobs.is_empty() {
        out.push_str("<tr><td colspan=\"10\" class=\"muted\">none</td></tr>");
    }
    out.push_str("</table>");
}

/// Where a job ran (or, before it ran, the node it waits for).
fn node_cell(node: Option<&str>, ran_on: Option<&str>) -> String {
    match (ran_on, node) {
        (Some(ran_on), _) => ran_on.to_owned(),
        (None, Some(node)) => format!("for {node}"),
        (None, None) => String::new(),
    }
}

fn node_rows(out: &mut String, nodes: &[crate::node::NodeView], this: &str) {
    out.push_str("<h2>Nodes</h2>");
    let differ = nodes.iter().filter(|node| node.config_differs).count();
    if differ > 0 {
        let _ = write!(
            out,
            "<p class=\"differs\">{differ} live node(s) run a config that differs from the others' (marked below)</p>"
        );
    }
    out.push_str("<table><tr><th>node</th><th>live</th><th>workers</th><th>started</th><th>last heartbeat</th><th>version</th><th>config</th></tr>");
    for node in nodes {
        let config = match (&node.config, node.config_differs) {
            (Some(config), true) => format!("<span class=\"differs\">{} (differs)</span>", escape(config)),
            (Some(config), false) => escape(config),
            (None, _) => "<span class=\"muted\">unknown</span>".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{name}{this}</td><td>{live}</td><td>{workers}</td><td>{started}</td><td>{heartbeat}</td><td>{version}</td><td>{config}</td></tr>",
            name = escape(&node.name),
            this = if node.name == this { " (this daemon)" } else { "" },
            live = if node.live { "yes" } else { "no" },
            workers = node.workers,
            started = escape(&node.started_at),
            heartbeat = escape(&node.heartbeat_at),
            version = escape(&node.version),
        );
    }
    out.push_str("</table>");
}

/// A path segment made safe for a URL (rule names may hold spaces and slashes).
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn rule_rows(out: &mut String, rules: &[super::rules::RuleView]) {
    out.push_str(
        "<h2>Rules</h2><table><tr><th>rule</th><th>state</th><th>concurrency</th><th>priority</th><th>queued</th>\
         <th>running</th><th></th></tr>",
    );
    for rule in rules {
        let (state, button) = match (&rule.paused_at, rule.paused) {
            (Some(at), true) => (
                format!(
                    "<span class=\"paused\">paused</span> <span class=\"muted\">since {} on {}</span>",
                    escape(at),
                    escape(rule.paused_on.as_deref().unwrap_or(""))
                ),
                "resume",
            ),
            _ => ("active".to_owned(), "pause"),
        };
        let _ = write!(
            out,
            "<tr><td>{name}{gone}</td><td>{state}</td><td>{concurrency}</td><td>{priority}</td><td>{queued}</td>\
             <td>{running}</td><td><form method=\"post\" action=\"/rules/{path}/{button}\"><button>{button}</button>\
             </form></td></tr>",
            name = escape(&rule.name),
            gone = if rule.in_config { "" } else { " <span class=\"muted\">(no longer in the config)</span>" },
            concurrency = rule.concurrency.map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
            priority = rule.priority,
            queued = rule.queued,
            running = rule.running,
            path = segment(&rule.name),
        );
    }
    if rules.is_empty() {
        out.push_str("<tr><td colspan=\"7\" class=\"muted\">none</td></tr>");
    }
    out.push_str("</table>");
}

/// `GET /`: the queue and recent history.
pub(super) async fn index(State(state): State<AppState>, query: Result<Query<JobsQuery>, QueryRejection>) -> Response {
    let filter = match query.map_err(|r| r.body_text()).and_then(|Query(q)| job_filter(q)) {
        Ok(filter) => filter,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    let queue = &state.queue;
    let active = async {
        let mut running = queue
            .jobs(crate::queue::JobFilter {
                state: Some(crate::queue::JobState::Running),
                limit: 500,
                ..Default::default()
            })
            .await?;
        let queued = queue
            .jobs(crate::queue::JobFilter {
                state: Some(crate::queue::JobState::Queued),
                limit: 500,
                ..Default::default()
            })
            .await?;
        running.extend(queued);
        // Fork pull requests held for an `/ok-to-test`: work in hand, waiting for a person.
        let waiting =
            crate::queue::JobFilter { state: Some(crate::queue::JobState::Waiting), limit: 500, ..Default::default() };
        running.extend(queue.jobs(waiting).await?);
        // Jobs set aside at a start or a lease expiry wait for an operator: shown with the work in hand.
        let set_aside = crate::queue::JobFilter {
            state: Some(crate::queue::JobState::Quarantined),
            limit: 500,
            ..Default::default()
        };
        running.extend(queue.jobs(set_aside).await?);
        anyhow::Ok(running)
    };
    let config = state.config();
    let rules = super::rules::views(&state, &config);
    let (active, history, nodes, rules) =
        match tokio::try_join!(active, queue.jobs(filter.clone()), queue.nodes(), rules) {
            Ok(found) => found,
            Err(err) => {
                return problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}"));
            }
        };
    let mut body = String::from("<h1>Queue</h1>");
    job_rows(&mut body, &active);
    rule_rows(&mut body, &rules);
    node_rows(&mut body, &nodes, queue.node());
    body.push_str("<h2>History</h2><form method=\"get\" action=\"/\"><select name=\"state\"><option value=\"\">any state</option>");
    for state in crate::queue::JobState::ALL {
        let selected = if filter.state == Some(state) { " selected" } else { "" };
        let _ = write!(body, "<option{selected}>{}</option>", state.as_str());
    }
    let _ = write!(
        body,
        "</select><input name=\"repo\" placeholder=\"owner/name\" value=\"{}\"><input name=\"rule\" placeholder=\"rule\" \
         value=\"{}\"><button>filter</button></form>",
        escape(filter.repo.as_deref().unwrap_or("")),
        escape(filter.rule.as_deref().unwrap_or(""))
    );
    job_rows(&mut body, &history);
    page("queue", &body)
}

/// `GET /jobs/{id}`: one job.
pub(super) async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Response {
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
        "<h2>Steps</h2><table><tr><th>step</th><th>plugin</th><th>status</th><th>took</th><th>summary</th></tr>",
    );
    for step in &job.steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
            escape(&step.name),
            escape(&step.plugin),
            step.status.as_str(),
            step.duration_ms,
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

fn log_text(at: &str, step: Option<&str>, level: &str, message: &str) -> String {
    match step {
        Some(step) => format!("{at} [{step}] {level} {message}"),
        None => format!("{at} {level} {message}"),
    }
}

/// `POST /jobs/{id}/retry` and `/cancel` from the job page's buttons (a form another
/// site makes a browser send is refused before this, by `browser::refuse_cross_site`).
pub(super) async fn action(State(state): State<AppState>, Path((id, action)): Path<(String, String)>) -> Response {
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

/// `POST /rules/{name}/pause` and `/resume` from the rules table's buttons (cross-site
/// forms refused before this, as for the job buttons); back to `/`.
pub(super) async fn rule_action(
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let pause = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return problem(StatusCode::NOT_FOUND, "no such action"),
    };
    match super::rules::switch(&state, &name, pause).await {
        Ok(super::rules::Switched::Done(_)) => Redirect::to("/").into_response(),
        Ok(super::rules::Switched::Unknown) => problem(StatusCode::NOT_FOUND, &super::rules::unknown_rule(&name)),
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be written: {err:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn rule_names_are_encoded_in_button_paths() {
        assert_eq!(segment("keep checkouts/current"), "keep%20checkouts%2Fcurrent");
    }
}
