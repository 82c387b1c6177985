//! `/deliveries` and `/deliveries/{key}`: what arrived and what became of it, refused
//! deliveries included, with every rule's verdict in words (`verdict`) and a redeliver
//! button that runs the API's checks (`api::redeliver_key`). The list shows new
//! deliveries as they arrive, from `/api/deliveries/live`.

use super::super::AppState;
use super::super::api::{ListQuery, RedeliverError, delivery_filter, not_redeliverable};
use super::verdict::plain;
use super::{escape, page, problem, segment};
use crate::queue::{DeliverySummary, DeliveryView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write as _;

/// Bodies up to this size are pretty-printed when they are JSON.
const PRETTY_UP_TO: usize = 256 * 1024;
/// Most bytes of a body the page shows.
const SHOWN_UP_TO: usize = 1024 * 1024;

/// Every verdict a delivery can have, for the filter.
const VERDICTS: [&str; 7] = ["queued", "unmatched", "ignored", "ping", "duplicate", "rejected", "invalid"];

/// Rows per page.
const PAGE: usize = 50;

/// `GET /deliveries?source=&verdict=&repo=&before=&after=`: newest first.
pub(in crate::server) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let mut filter = match delivery_filter(query) {
        Ok(filter) => filter,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    filter.limit = filter.limit.clamp(1, PAGE);
    if let Some(verdict) = filter.verdict.as_deref().filter(|v| !VERDICTS.contains(v)) {
        let why = format!("unknown verdict `{verdict}` (one of: {})", VERDICTS.join(", "));
        return problem(StatusCode::BAD_REQUEST, &why);
    }
    let newest = crate::queue::DeliveryFilter { limit: 1, ..Default::default() };
    // One more than shown: whether there is more in the direction read.
    let read = crate::queue::DeliveryFilter { limit: filter.limit + 1, ..filter.clone() };
    let (mut rows, newest) = match tokio::try_join!(state.queue.deliveries(read), state.queue.deliveries(newest)) {
        Ok(found) => found,
        Err(err) => return problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}")),
    };
    let newest = newest.first().map_or(0, |d| d.seq);
    let forward = filter.after.is_some() && filter.before.is_none();
    let more = rows.len() > filter.limit;
    if more {
        // Newest first either way: reading forward, the extra row is the newest.
        if forward {
            rows.remove(0);
        } else {
            rows.pop();
        }
    }
    let first_page = filter.before.is_none() && filter.after.is_none();
    let (has_newer, has_older) = match (first_page, forward) {
        (true, _) => (false, more),
        (false, true) => (more, !rows.is_empty()),
        (false, false) => (!rows.is_empty(), more),
    };
    let mut params = Vec::new();
    for (name, value) in [("source", &filter.source), ("verdict", &filter.verdict), ("repo", &filter.repo)] {
        if let Some(value) = value {
            params.push(format!("{name}={}", segment(value)));
        }
    }
    if filter.limit != PAGE {
        params.push(format!("limit={}", filter.limit));
    }
    let base = params.join("&");
    let link = |extra: &str| -> String {
        match (base.is_empty(), extra.is_empty()) {
            (true, true) => "/deliveries".to_owned(),
            (true, false) => format!("/deliveries?{extra}"),
            (false, true) => format!("/deliveries?{base}"),
            (false, false) => format!("/deliveries?{base}&{extra}"),
        }
    };
    let sources: Vec<String> = state.config().sources.keys().cloned().collect();
    let mut out = String::from("<h1>Deliveries</h1>");
    out.push_str(&filter_form(&sources, &filter));
    if first_page {
        let live = link(&format!("after={newest}"));
        let live = live.replacen("/deliveries", "/api/deliveries/live", 1);
        let _ = write!(
            out,
            "<p id=\"live\" hidden><a id=\"new\" href=\"{}\"></a></p>\
             <script>\
             const source=new EventSource({});let count=0;\
             source.addEventListener('delivery',()=>{{count+=1;const a=document.getElementById('new');\
             a.textContent=count+(count==1?' new delivery':' new deliveries')+' \\u2014 show';\
             document.getElementById('live').hidden=false;}});\
             </script>",
            escape(&link("")),
            // A JS string, not HTML: the parameters are percent-encoded, so it holds no `<`.
            serde_json::to_string(&live).expect("a string serialises")
        );
    }
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No deliveries");
        if !base.is_empty() {
            out.push_str(" match these filters");
        }
        out.push_str(".</p>");
    } else {
        out.push_str(
            "<table id=\"deliveries\"><tr><th>seq</th><th>received</th><th>source</th><th>event</th><th>repository</th>\
             <th>ref</th><th>verdict</th><th>reason</th><th>jobs</th><th>arrived</th></tr>",
        );
        for row in &rows {
            out.push_str(&list_row(row));
        }
        out.push_str("</table>");
    }
    let mut nav = Vec::new();
    if !first_page {
        nav.push(format!("<a href=\"{}\">first page</a>", escape(&link(""))));
    }
    if let Some(top) = rows.first().filter(|_| has_newer) {
        nav.push(format!("<a rel=\"prev\" href=\"{}\">newer</a>", escape(&link(&format!("after={}", top.seq)))));
    }
    if let Some(bottom) = rows.last().filter(|_| has_older) {
        nav.push(format!("<a rel=\"next\" href=\"{}\">older</a>", escape(&link(&format!("before={}", bottom.seq)))));
    }
    if !nav.is_empty() {
        let _ = write!(out, "<p id=\"paging\">{}</p>", nav.join(" · "));
    }
    page("deliveries", &out)
}

fn filter_form(sources: &[String], filter: &crate::queue::DeliveryFilter) -> String {
    let option = |value: &str, selected: bool| {
        let mark = if selected { " selected" } else { "" };
        format!("<option{mark}>{}</option>", escape(value))
    };
    let mut out = String::from("<form method=\"get\" action=\"/deliveries\" id=\"filters\">");
    out.push_str("<select name=\"source\"><option value=\"\">any source</option>");
    for source in sources {
        out.push_str(&option(source, filter.source.as_deref() == Some(source)));
    }
    out.push_str("</select><select name=\"verdict\"><option value=\"\">any verdict</option>");
    for verdict in VERDICTS {
        out.push_str(&option(verdict, filter.verdict.as_deref() == Some(verdict)));
    }
    let _ = write!(
        out,
        "</select><input name=\"repo\" placeholder=\"owner/repository\" value=\"{}\"><button>filter</button></form>",
        escape(filter.repo.as_deref().unwrap_or(""))
    );
    out
}

fn list_row(row: &DeliverySummary) -> String {
    let jobs: Vec<String> =
        row.jobs.iter().map(|id| format!("<a href=\"/jobs/{}\">{}</a>", segment(id), escape(id))).collect();
    let event = escape(row.event.as_deref().unwrap_or(""));
    format!(
        "<tr data-seq=\"{seq}\"><td><a href=\"/deliveries/{seq}\">{seq}</a></td><td>{}</td><td>{}</td><td>{event}</td>\
         <td>{}</td><td>{}</td><td class=\"verdict {verdict}\">{verdict}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(&row.received_at),
        escape(&row.source),
        escape(row.repo.as_deref().unwrap_or("")),
        escape(row.git_ref.as_deref().unwrap_or("")),
        escape(row.reason.as_deref().unwrap_or("")),
        jobs.join(", "),
        escape(&row.arrived),
        seq = row.seq,
        verdict = escape(&row.verdict),
    )
}

/// `GET /deliveries/{key}`: one delivery, by seq or delivery id.
pub(in crate::server) async fn delivery(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match state.queue.delivery(key.clone()).await {
        Ok(Some(view)) => {
            let source_gone = state.config().source(&view.summary.source).is_none();
            page(&format!("delivery {}", view.summary.seq), &delivery_body(&view, source_gone))
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, &format!("no delivery `{key}`")),
        Err(err) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}")),
    }
}

fn delivery_body(view: &DeliveryView, source_gone: bool) -> String {
    let d = &view.summary;
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>Delivery {seq} <span class=\"verdict {verdict}\" id=\"verdict\">{verdict}</span></h1>\
         <table id=\"summary\"><tr><th>delivery id</th><td>{id}</td></tr><tr><th>source</th><td>{source} ({forge})</td></tr>\
         <tr><th>event</th><td>{event}</td></tr><tr><th>repository</th><td>{repo}</td></tr><tr><th>ref</th><td>{git_ref}</td></tr>\
         <tr><th>received</th><td>{received}</td></tr><tr><th>arrived as</th><td>{arrived}</td></tr>",
        seq = d.seq,
        verdict = escape(&d.verdict),
        id = escape(&d.id),
        source = escape(&d.source),
        forge = escape(&d.forge),
        event = escape(d.event.as_deref().unwrap_or("")),
        repo = escape(d.repo.as_deref().unwrap_or("")),
        git_ref = escape(d.git_ref.as_deref().unwrap_or("")),
        received = escape(&d.received_at),
        arrived = escape(&d.arrived),
    );
    if let Some(reason) = &d.reason {
        let _ = write!(out, "<tr><th>reason</th><td id=\"reason\">{}</td></tr>", escape(reason));
    }
    if let Some(original) = view.duplicate_of {
        let _ = write!(
            out,
            "<tr><th>duplicate of</th><td><a id=\"duplicate-of\" href=\"/deliveries/{original}\">delivery {original}</a> \
             (the same delivery id was accepted before; nothing new was queued)</td></tr>"
        );
    }
    if let Some(original) = view.redelivery_of {
        let _ = write!(
            out,
            "<tr><th>redelivery of</th><td><a id=\"redelivery-of\" href=\"/deliveries/{original}\">delivery {original}</a></td></tr>"
        );
    }
    if !view.redeliveries.is_empty() {
        let links: Vec<String> =
            view.redeliveries.iter().map(|seq| format!("<a href=\"/deliveries/{seq}\">delivery {seq}</a>")).collect();
        let _ = write!(out, "<tr><th>redelivered as</th><td id=\"redeliveries\">{}</td></tr>", links.join(", "));
    }
    out.push_str("</table>");
    // The same checks as the API's redeliver, so the button is offered only where it works.
    let refusal = not_redeliverable(&d.seq.to_string(), &d.verdict, &d.arrived)
        .or_else(|| source_gone.then(|| format!("source `{}` is no longer configured", d.source)));
    match refusal {
        None => {
            let _ = write!(
                out,
                "<p><form method=\"post\" action=\"/deliveries/{}/redeliver\"><button id=\"redeliver\">redeliver</button></form>\
                 <span class=\"muted\">runs it again under the current config, as a new delivery</span></p>",
                d.seq
            );
        }
        Some(why) => {
            let _ = write!(out, "<p class=\"muted\" id=\"no-redeliver\">Not redeliverable: {}.</p>", escape(&why));
        }
    }
    out.push_str("<h2>Jobs</h2>");
    if view.job_states.is_empty() {
        out.push_str("<p class=\"muted\" id=\"jobs\">None.</p>");
    } else {
        out.push_str("<table id=\"jobs\"><tr><th>job</th><th>rule</th><th>state</th></tr>");
        for job in &view.job_states {
            let _ = write!(
                out,
                "<tr><td><a href=\"/jobs/{id}\">{id}</a></td><td>{}</td><td class=\"state {state}\">{state}</td></tr>",
                escape(&job.rule),
                id = escape(&job.id),
                state = escape(&job.state),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Rules</h2>");
    out.push_str(&rules_section(view));
    out.push_str("<h2>Headers</h2><pre id=\"headers\">");
    out.push_str(&escape(&serde_json::to_string_pretty(&view.headers).unwrap_or_default()));
    out.push_str("</pre><h2>Body</h2>");
    out.push_str(&body_section(view));
    if !view.events.is_null() {
        out.push_str("<h2>Events</h2><p class=\"muted\">as gitauto read them from the body</p><pre id=\"events\">");
        out.push_str(&escape(&serde_json::to_string_pretty(&view.events).unwrap_or_default()));
        out.push_str("</pre>");
    }
    out
}

/// Every rule's verdict on each event, the first failing clause in words.
fn rules_section(view: &DeliveryView) -> String {
    let Some(events) = view.rules.as_array() else {
        return match view.summary.verdict.as_str() {
            "rejected" | "invalid" => {
                "<p class=\"muted\" id=\"rules\">No rule saw it: it was refused before its events were read.</p>"
                    .to_owned()
            }
            "duplicate" => {
                "<p class=\"muted\" id=\"rules\">No rule saw it: its delivery id had been accepted before (see the \
                 original).</p>"
                    .to_owned()
            }
            _ => "<p class=\"muted\" id=\"rules\">No rule saw it: no event was read from it.</p>".to_owned(),
        };
    };
    let mut out = String::new();
    if events.iter().all(|e| e["rules"].as_array().is_none_or(Vec::is_empty)) {
        out.push_str("<p class=\"muted\" id=\"rules\">No rules were configured when it arrived.</p>");
        return out;
    }
    out.push_str("<table id=\"rules\"><tr><th>event</th><th>rule</th><th>verdict</th><th>why</th></tr>");
    for (index, event) in events.iter().enumerate() {
        let label = match event["git_ref"].as_str() {
            Some(git_ref) => format!("{} {}", index + 1, git_ref),
            None => (index + 1).to_string(),
        };
        for rule in event["rules"].as_array().into_iter().flatten() {
            let matched = rule["matched"].as_bool().unwrap_or(false);
            let why = if matched {
                rule["note"].as_str().unwrap_or("").to_owned()
            } else {
                plain(rule["reason"].as_str().unwrap_or(""))
            };
            let _ = write!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{class}</td><td class=\"why\">{}</td></tr>",
                escape(&label),
                escape(rule["rule"].as_str().unwrap_or("")),
                escape(&why),
                class = if matched { "matched" } else { "not-matched" },
            );
        }
    }
    out.push_str("</table>");
    out
}

/// The body: JSON pretty-printed, other text as received, bytes that are not UTF-8 in base64.
fn body_section(view: &DeliveryView) -> String {
    let mut out = String::new();
    let shown_len = view.body.as_ref().map(String::len).or_else(|| view.body_base64.as_ref().map(|b| b.len() / 4 * 3));
    if let (Some(size), Some(kept)) = (view.body_size, shown_len) {
        let _ = write!(
            out,
            "<p class=\"muted\" id=\"cut\">{size} bytes received; cut at {kept} bytes (refused deliveries are kept short).</p>"
        );
    }
    match (&view.body, &view.body_base64) {
        (Some(text), _) => {
            // Indenting deeply nested JSON multiplies its size: large bodies are shown as
            // received, and every body is shown up to a limit.
            let pretty = (text.len() <= PRETTY_UP_TO)
                .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
                .flatten()
                .and_then(|value| serde_json::to_string_pretty(&value).ok())
                .filter(|pretty| pretty.len() <= SHOWN_UP_TO);
            if pretty.is_none() && !text.is_empty() {
                out.push_str("<p class=\"muted\">as received</p>");
            }
            let shown = pretty.as_deref().unwrap_or(text);
            let cut = crate::capability::log::cut(shown, SHOWN_UP_TO);
            let _ = write!(out, "<pre id=\"body\">{}</pre>", escape(cut));
            if cut.len() < shown.len() {
                let _ = write!(
                    out,
                    "<p class=\"muted\">the first {} of {} bytes; the whole body is at <a href=\"/api/deliveries/{}\">the API</a></p>",
                    cut.len(),
                    shown.len(),
                    view.summary.seq
                );
            }
        }
        (None, Some(base64)) => {
            let _ = write!(
                out,
                "<p class=\"muted\">the body is not UTF-8 text; here in base64</p><pre id=\"body\">{}</pre>",
                escape(base64)
            );
        }
        (None, None) => out.push_str("<p class=\"muted\" id=\"body\">no body was stored</p>"),
    }
    out
}

/// `POST /deliveries/{key}/redeliver` from a delivery page's button: the API's checks,
/// then the new delivery's page.
pub(in crate::server) async fn redeliver(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match super::super::api::redeliver_key(&state, &key).await {
        // By seq, which names this record alone.
        Ok((ingested, _)) if ingested.recorded => match state.queue.delivery(ingested.delivery.clone()).await {
            Ok(Some(view)) => Redirect::to(&format!("/deliveries/{}", view.summary.seq)).into_response(),
            _ => Redirect::to(&format!("/deliveries/{}", segment(&ingested.delivery))).into_response(),
        },
        Ok(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "the redelivery could not be recorded; try again"),
        Err(RedeliverError::NotFound) => problem(StatusCode::NOT_FOUND, &format!("no delivery `{key}`")),
        Err(RedeliverError::Refused(why)) => problem(StatusCode::CONFLICT, &why),
        Err(RedeliverError::Store(err)) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, &format!("the queue could not be read: {err:#}"))
        }
        Err(RedeliverError::Ingest(err)) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("{err}; try again")),
    }
}
