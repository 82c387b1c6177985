//! The dashboard: server-rendered HTML, no build step. One module per page:
//! - `index`: `/`, the queue, running jobs, the rules (paused or not, with pause and
//!   resume buttons), the nodes and recent history (filterable);
//! - `job`: `/jobs/{id}`, a job's event, deliveries, steps, log and reports, with retry
//!   or cancel buttons (plain forms) where they can work, its log streamed from
//!   `/api/jobs/{id}/log` and the rest of the page refreshed when the job changes;
//! - `deliveries`: `/deliveries` (filtered, paged, live) and `/deliveries/{key}`, with
//!   every rule's verdict in words (`verdict`) and a redeliver button;
//! - `charts`: the charts section of `/` (and `/charts`, the section alone);
//! - `rule`: `/rules/{name}`, a rule's state, config, success rate, chart and recent jobs.
//!
//! Here: what every page shares (the frame, escaping, an error page).

mod charts;
mod deliveries;
mod index;
mod job;
mod rule;
mod verdict;

pub(super) use charts::fragment as charts;
pub(super) use deliveries::{delivery, list as deliveries, redeliver};
pub(super) use index::{index, rule_action};
pub(super) use job::{action, job};
pub(super) use rule::rule;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#222}\
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;\
text-align:left;vertical-align:top}th{background:#f4f4f4}a{color:#0550ae}pre{background:#f6f8fa;padding:.8em;\
overflow:auto;max-height:40em}.state{font-weight:600}.succeeded{color:#1a7f37}.failed,.dead,.quarantined{color:#cf222e}\
.running{color:#9a6700}.waiting,.queued,.skipped,.cancelled,.superseded{color:#57606a}form{display:inline}button{margin-right:.5em}\
.muted{color:#57606a}input,select{margin-right:.5em}.paused,.differs{color:#cf222e;font-weight:600}\
.verdict{font-weight:600}.queued.verdict{color:#1a7f37}.rejected,.invalid{color:#cf222e}\
.unmatched,.ignored,.duplicate,.ping{color:#57606a}tr.not-matched .why{color:#9a6700}\
figure{margin:0 0 1em}svg.chart{width:100%;max-width:720px;height:auto;display:block}.window a,.window strong{margin-right:.3em}";

/// Text made safe for HTML (as for the charts' SVG: control characters, which no page
/// should carry, become U+FFFD).
pub(super) use super::svg::escape;

pub(super) fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · gitauto</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\
         <body><p><a href=\"/\">gitauto</a> · <a href=\"/deliveries\">deliveries</a></p>{body}</body></html>",
        escape(title)
    );
    Html(html).into_response()
}

pub(super) fn problem(status: StatusCode, message: &str) -> Response {
    let mut answer = page("problem", &format!("<h1>{}</h1><p>{}</p>", status, escape(message)));
    *answer.status_mut() = status;
    answer
}

/// A path segment made safe for a URL (rule names may hold spaces and slashes).
pub(super) fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
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
