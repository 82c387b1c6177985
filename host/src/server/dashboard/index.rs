//! `/`: the queue, the rules, the nodes and recent history; the rules' pause and resume
//! buttons.

use super::super::AppState;
use super::super::api::{JobsQuery, job_filter};
use super::{escape, page, problem, segment};
use crate::queue::JobSummary;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write as _;

/// A table of jobs; `id` names it for the live view's swaps.
pub(super) fn job_rows(out: &mut String, jobs: &[JobSummary], id: &str) {
    let _ = write!(out, "<table id=\"{id}\">");
    out.push_str(
        "<tr><th>job</th><th>state</th><th>rule</th><th>repository</th><th>ref</th><th>attempts</th>\
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
pub(super) fn node_cell(node: Option<&str>, ran_on: Option<&str>) -> String {
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

fn rule_rows(out: &mut String, rules: &[super::super::rules::RuleView]) {
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
            "<tr><td><a href=\"/rules/{path}\">{name}</a>{gone}</td><td>{state}</td><td>{concurrency}</td><td>{priority}</td><td>{queued}</td>\
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
pub(in crate::server) async fn index(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let (window, raw) = match super::charts::take_window(raw.as_deref()) {
        Ok(found) => found,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    // Re-encoding may lengthen a query past what a URI may hold.
    let Ok(uri) = format!("/?{raw}").parse::<axum::http::Uri>() else {
        return problem(StatusCode::BAD_REQUEST, "the query is too long");
    };
    let query = Query::<JobsQuery>::try_from_uri(&uri);
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
    let rules = super::super::rules::views(&state, &config);
    let charts = super::charts::section_refreshed(&state, window);
    let (active, history, nodes, rules, charts) =
        match tokio::try_join!(active, queue.jobs(filter.clone()), queue.nodes(), rules, charts) {
            Ok(found) => found,
            Err(err) => {
                return problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}"));
            }
        };
    let mut body = String::from("<h1>Queue</h1>");
    job_rows(&mut body, &active, "active");
    rule_rows(&mut body, &rules);
    body.push_str(&charts);
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
    job_rows(&mut body, &history, "history");
    // When a job starts, ends or is queued, the job tables are read again and swapped in
    // (the filter form and anything typed in it stay). The stream's first event does it
    // too: what changed between this page's reading and the stream's start shows.
    body.push_str(
        "<script>\
         const live=new EventSource('/api/jobs/live');\
         live.addEventListener('jobs',async()=>{\
         const r=await fetch(location.href,{cache:'no-store'});if(!r.ok)return;\
         const page=new DOMParser().parseFromString(await r.text(),'text/html');\
         for(const part of ['active','history']){const now=document.getElementById(part),next=page.getElementById(part);\
         if(now&&next)now.replaceWith(next);}});\
         </script>",
    );
    page("queue", &body)
}

/// `POST /rules/{name}/pause` and `/resume` from the rules table's buttons (cross-site
/// forms refused before this, as for the job buttons); back to `/`.
pub(in crate::server) async fn rule_action(
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let pause = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return problem(StatusCode::NOT_FOUND, "no such action"),
    };
    match super::super::rules::switch(&state, &name, pause).await {
        Ok(super::super::rules::Switched::Done(_)) => Redirect::to("/").into_response(),
        Ok(super::super::rules::Switched::Unknown) => {
            problem(StatusCode::NOT_FOUND, &super::super::rules::unknown_rule(&name))
        }
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be written: {err:#}")),
    }
}
