//! An OTLP/HTTP trace collector on loopback: a [`Receiver`] whose `POST /v1/traces`
//! bodies are decoded with the OpenTelemetry project's own generated protobuf types
//! (`opentelemetry-proto`), not gitauto's encoder, into the spans a test checks.

use crate::receiver::Receiver;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;

/// One span as exported, with what the tests look at.
#[derive(Debug, Clone)]
pub struct Span {
    /// Hex trace id.
    pub trace: String,
    /// Hex span id.
    pub id: String,
    /// Hex parent span id; empty for a root.
    pub parent: String,
    /// Its name.
    pub name: String,
    /// Its kind (OTLP's numbering: 1 internal, 2 server, 3 client, 5 consumer).
    pub kind: i32,
    /// Start and end, ns since the epoch.
    pub start: u64,
    /// See `start`.
    pub end: u64,
    /// Attributes, values as text (`true`, `42`, or the string).
    pub attributes: Vec<(String, String)>,
    /// Status code (0 unset, 1 ok, 2 error).
    pub status: i32,
    /// The resource's attributes it came with, as text.
    pub resource: Vec<(String, String)>,
}

impl Span {
    /// An attribute's value as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The running collector.
#[derive(Clone)]
pub struct Collector {
    /// The receiver under it (requests, connections, scripted answers).
    pub receiver: Receiver,
}

impl Collector {
    /// Starts a collector that takes every export (`200`).
    pub async fn start() -> Self {
        Self { receiver: Receiver::start().await }
    }

    /// Its base URL, as `[telemetry] otlp_endpoint` names it (no path: `/v1/traces` is added).
    pub fn url(&self) -> &str {
        &self.receiver.url
    }

    /// Every span received so far, decoded (panics on a body that is not an
    /// `ExportTraceServiceRequest`, or one posted elsewhere or with another content type).
    pub fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for request in self.receiver.requests() {
            assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v1/traces"));
            assert_eq!(request.header("content-type"), Some("application/x-protobuf"));
            let decoded = ExportTraceServiceRequest::decode(request.body.as_slice())
                .unwrap_or_else(|err| panic!("an export that is not protobuf OTLP: {err}"));
            for resource_spans in decoded.resource_spans {
                let resource: Vec<(String, String)> = resource_spans
                    .resource
                    .map(|resource| resource.attributes.into_iter().map(key_value).collect())
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        spans.push(Span {
                            trace: hex::encode(&span.trace_id),
                            id: hex::encode(&span.span_id),
                            parent: hex::encode(&span.parent_span_id),
                            name: span.name,
                            kind: span.kind,
                            start: span.start_time_unix_nano,
                            end: span.end_time_unix_nano,
                            attributes: span.attributes.into_iter().map(key_value).collect(),
                            status: span.status.map_or(0, |status| status.code),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        spans
    }
}

fn key_value(kv: opentelemetry_proto::tonic::common::v1::KeyValue) -> (String, String) {
    let value = match kv.value.and_then(|value| value.value) {
        Some(any_value::Value::StringValue(text)) => text,
        Some(any_value::Value::BoolValue(yes)) => yes.to_string(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::DoubleValue(x)) => x.to_string(),
        other => format!("{other:?}"),
    };
    (kv.key, value)
}
