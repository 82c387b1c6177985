//! `[telemetry]`: traces over OTLP/HTTP to a collector on loopback, decoded with the
//! OpenTelemetry project's own protobuf types (issue 24): one push is one trace from the
//! delivery through its rules and job to each step and the plugin's HTTP request, which
//! carries the trace's `traceparent`; a collector that is down costs spans (counted), never
//! deliveries or jobs; with no `[telemetry]`, nothing is sent and no header is added.

use gitauto_tests::otlp::{Collector, Span};
use gitauto_tests::receiver::Receiver;
use gitauto_tests::{SECRET, TestDaemon, TestGit, github_source, push_payload, wait_for};
use std::time::Duration;

/// A plugin's own `traceparent`, which the host's replaces.
const PLUGINS_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A daemon with `telemetry` (a `[telemetry]` table, or nothing), the probe plugin granted
/// `receiver` and `repos`, a rule "traced" on acme/traced's pushes (an HTTP request to the
/// receiver with a query string, then opening `repos`' origin) and a rule "other" on another
/// repository.
async fn daemon(telemetry: &str, receiver: &Receiver, repos: &std::path::Path) -> TestDaemon {
    TestDaemon::start(&format!(
        r#"
{telemetry}
{source}
[plugins.probe]
wasm = "{probe}"
grants = {{ hosts = ["{host}"], dirs = ["{repos}"] }}

[[rules]]
name = "traced"
on = "push"
repo = "acme/traced"

[[rules.steps]]
name = "call"
plugin = "probe"
with = {{ op = "http", url = "{url}/deploy?token=in-the-query", headers = [["traceparent", "{PLUGINS_TRACEPARENT}"]] }}

[[rules.steps]]
name = "rest"
plugin = "probe"
with = {{ op = "git-open", path = "{repos}/origin/origin.git" }}

[[rules]]
name = "other"
on = "push"
repo = "acme/other"
steps = [{{ plugin = "probe", with = {{ op = "sleep", ms = 1 }} }}]
"#,
        source = github_source(),
        probe = env!("GITAUTO_GUEST_PROBE"),
        host = receiver.host(),
        url = receiver.url,
        repos = repos.display(),
    ))
    .await
}

/// Pushes to acme/traced; returns the delivery's answer once its job finished.
async fn push(daemon: &TestDaemon) -> (serde_json::Value, serde_json::Value) {
    let payload = push_payload("acme", "traced", "refs/heads/main", &"0".repeat(40), &"1".repeat(40), "file:///x");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    let job = daemon.finished_job(body["jobs"][0].as_str().unwrap()).await;
    (body, job)
}

fn one<'a>(spans: &'a [Span], what: &str, matches: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|span| matches(span)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} span in {spans:#?}");
    found[0]
}

#[tokio::test]
async fn one_push_is_one_trace_from_the_delivery_to_the_plugins_http_request() {
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"gitauto-under-test\"\nheaders = {{ x-api-key = \"k\" }}\n",
        collector.url()
    );
    let repos = tempfile::tempdir().unwrap();
    let _origin = TestGit::new(repos.path(), "origin");
    let daemon = daemon(&telemetry, &receiver, repos.path()).await;
    let (delivery, job) = push(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    // The job's span ends after the job's end is recorded; the exporter sends within a second.
    let spans = wait_for("the job's and the HTTP request's spans", Duration::from_secs(30), || async {
        let spans = collector.spans();
        let done = ["delivery", "job", "http.request", "accept"]
            .iter()
            .all(|name| spans.iter().any(|span| span.name == *name))
            && spans.iter().filter(|span| span.name == "step").count() == 2;
        done.then_some(spans)
    })
    .await;

    let root = one(&spans, "delivery", |span| span.name == "delivery");
    assert_eq!(root.parent, "", "the delivery's span is the trace's root");
    assert_eq!(root.kind, 2, "a server span");
    assert_eq!(root.attr("gitauto.delivery.id"), delivery["delivery"].as_str(), "{root:?}");
    assert_eq!(root.attr("gitauto.source"), Some("github"));
    assert_eq!(root.attr("gitauto.event"), Some("push"));
    assert_eq!(root.attr("vcs.repository.name"), Some("acme/traced"));
    assert_eq!(root.attr("gitauto.delivery.verdict"), Some("queued"));
    assert_eq!(root.attr("gitauto.job.ids"), Some(job_id.as_str()));
    assert!(root.resource.contains(&("service.name".into(), "gitauto-under-test".into())), "{:?}", root.resource);
    assert!(root.resource.iter().any(|(key, _)| key == "host.name"), "{:?}", root.resource);
    assert!(spans.iter().all(|span| span.trace == root.trace), "one trace for everything: {spans:#?}");

    let child_of = |span: &Span, parent: &Span| span.parent == parent.id;
    let verify = one(&spans, "signature check", |span| span.name == "verify signature");
    assert!(child_of(verify, root) && verify.attr("gitauto.signature.valid") == Some("true"), "{verify:?}");
    assert!(child_of(one(&spans, "parse", |span| span.name == "parse"), root));
    let matched =
        one(&spans, "matching rule", |span| span.attr("gitauto.rule") == Some("traced") && span.name == "rule");
    assert!(child_of(matched, root) && matched.attr("gitauto.rule.matched") == Some("true"), "{matched:?}");
    let other =
        one(&spans, "non-matching rule", |span| span.attr("gitauto.rule") == Some("other") && span.name == "rule");
    assert!(child_of(other, root) && other.attr("gitauto.rule.matched") == Some("false"), "{other:?}");
    assert!(other.attr("gitauto.rule.reason").is_some_and(|why| why.contains("acme/traced")), "{other:?}");
    let accept = one(&spans, "accept", |span| span.name == "accept");
    assert!(child_of(accept, root) && accept.attr("gitauto.job.ids") == Some(job_id.as_str()), "{accept:?}");

    let job_span = one(&spans, "job", |span| span.name == "job");
    assert!(child_of(job_span, root), "the job hangs under its delivery: {job_span:?}");
    assert_eq!(job_span.attr("gitauto.job.id"), Some(job_id.as_str()));
    assert_eq!(job_span.attr("gitauto.rule"), Some("traced"));
    assert_eq!(job_span.attr("gitauto.job.state"), Some("succeeded"));
    let call = one(&spans, "step call", |span| span.name == "step" && span.attr("gitauto.step") == Some("call"));
    let rest = one(&spans, "step rest", |span| span.name == "step" && span.attr("gitauto.step") == Some("rest"));
    for step in [call, rest] {
        assert!(child_of(step, job_span), "steps hang under the job: {step:?}");
        assert_eq!(step.attr("gitauto.plugin"), Some("probe"));
        assert_eq!(step.attr("gitauto.step.status"), Some("success"));
    }
    let http = one(&spans, "http.request", |span| span.name == "http.request");
    assert!(child_of(http, call), "the request hangs under its step: {http:?}");
    assert_eq!(http.kind, 3, "a client span");
    assert_eq!(http.attr("http.request.method"), Some("GET"));
    assert_eq!(http.attr("http.response.status_code"), Some("200"));
    let url = http.attr("url.full").unwrap();
    assert_eq!(url, format!("{}/deploy", receiver.url), "no query string in the span");
    // Git calls are spans under their step too, through the step's meter.
    let open = one(&spans, "git.open", |span| span.name == "git.open");
    assert!(child_of(open, rest), "the git call hangs under its step: {open:?}");
    for span in &spans {
        assert!(span.start > 0 && span.end >= span.start, "{span:?}");
    }

    // The request the plugin made names the trace and its host call's span, not the
    // plugin's own traceparent.
    let sent = receiver.requests();
    let request = sent.iter().find(|r| r.path.starts_with("/deploy")).expect("the plugin's request");
    let traceparent = request.header("traceparent").expect("a traceparent on the plugin's request");
    assert_eq!(traceparent, format!("00-{}-{}-01", root.trace, http.id));
    assert_eq!(request.headers.iter().filter(|(name, _)| name == "traceparent").count(), 1);
    // The collector's API key went with every export.
    assert!(collector.receiver.requests().iter().all(|r| r.header("x-api-key") == Some("k")));
    daemon.stop().await;
}

#[tokio::test]
async fn a_collector_that_is_down_costs_spans_not_deliveries_or_jobs() {
    // A port nothing listens on: every export's connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let receiver = Receiver::start().await;
    let repos = tempfile::tempdir().unwrap();
    let _origin = TestGit::new(repos.path(), "origin");
    let daemon =
        daemon(&format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\ntimeout = 2\n"), &receiver, repos.path()).await;
    for _ in 0..3 {
        let (_, job) = push(&daemon).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let dropped = wait_for("the spans dropped to be counted", Duration::from_secs(60), || async {
        let text = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap().text().await.unwrap();
        let dropped: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("gitauto_telemetry_spans_dropped_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (dropped > 0).then_some(dropped)
    })
    .await;
    assert!(dropped > 0);
    // The plugin's request was traced all the same.
    assert!(receiver.requests().iter().all(|r| r.header("traceparent").is_some()));
    daemon.stop().await;
}

#[tokio::test]
async fn a_collector_answering_503_gets_the_batch_again() {
    let collector = Collector::start().await;
    collector.receiver.then_answer(503, &[("retry-after", "0")], "busy");
    let receiver = Receiver::start().await;
    let repos = tempfile::tempdir().unwrap();
    let _origin = TestGit::new(repos.path(), "origin");
    let daemon =
        daemon(&format!("[telemetry]\notlp_endpoint = \"{}/v1/traces\"\n", collector.url()), &receiver, repos.path())
            .await;
    push(&daemon).await;
    wait_for("the refused batch to be sent again", Duration::from_secs(30), || async {
        let requests = collector.receiver.requests();
        (requests.len() >= 2).then_some(())
    })
    .await;
    let requests = collector.receiver.requests();
    assert_eq!(requests[0].body, requests[1].body, "the same batch, tried again");
    daemon.stop().await;
}

#[tokio::test]
async fn without_telemetry_nothing_is_exported_and_no_traceparent_is_added() {
    // What a collector would be; nothing names it, and nothing may find it either.
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    let repos = tempfile::tempdir().unwrap();
    let _origin = TestGit::new(repos.path(), "origin");
    let daemon = daemon("", &receiver, repos.path()).await;
    let (_, job) = push(&daemon).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let request = receiver.requests().into_iter().find(|r| r.path.starts_with("/deploy")).unwrap();
    assert_eq!(request.header("traceparent"), Some(PLUGINS_TRACEPARENT), "the plugin's own header, untouched");
    let text = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap().text().await.unwrap();
    assert!(text.contains("gitauto_telemetry_spans_exported_total 0\n"), "{text}");
    assert!(text.contains("gitauto_telemetry_spans_dropped_total 0\n"), "{text}");
    daemon.stop().await;
    assert_eq!(collector.receiver.connections(), 0);
}
