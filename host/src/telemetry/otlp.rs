//! OTLP's `ExportTraceServiceRequest` in protobuf, encoded by hand: the few messages and
//! fields gitauto sends (opentelemetry/proto/trace/v1/trace.proto, common/v1, resource/v1),
//! with no code generator or SDK. The tests decode it with the OpenTelemetry project's
//! own generated types.

use super::{Kind, SpanData, TraceContext, Value};

/// Field wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const BYTES: u64 = 2;
const FIXED32: u64 = 5;

/// The instrumentation scope named on every span.
const SCOPE: &str = "gitauto";

/// The request body for `spans` from a process described by `resource`.
pub fn encode(resource: &[(&'static str, Value)], spans: &[SpanData]) -> Vec<u8> {
    let mut resource_message = Vec::new();
    for (key, value) in resource {
        message(&mut resource_message, 1, &key_value(key, value));
    }
    let mut scope = Vec::new();
    string(&mut scope, 1, SCOPE);
    string(&mut scope, 2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Vec::new();
    message(&mut scope_spans, 1, &scope);
    for span in spans {
        message(&mut scope_spans, 2, &encode_span(span));
    }
    let mut resource_spans = Vec::new();
    message(&mut resource_spans, 1, &resource_message);
    message(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    message(&mut request, 1, &resource_spans);
    request
}

fn encode_span(span: &SpanData) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + span.attributes.len() * 48);
    bytes(&mut out, 1, &span.context.trace);
    bytes(&mut out, 2, &span.context.span);
    if let Some(parent) = &span.parent {
        bytes(&mut out, 4, parent);
    }
    string(&mut out, 5, &span.name);
    let kind = match span.kind {
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
        Kind::Consumer => 5,
    };
    tag(&mut out, 6, VARINT);
    varint(&mut out, kind);
    fixed64(&mut out, 7, span.start_ns);
    fixed64(&mut out, 8, span.end_ns);
    for (key, value) in &span.attributes {
        message(&mut out, 9, &key_value(key, value));
    }
    for link in &span.links {
        message(&mut out, 13, &encode_link(link));
    }
    let mut status = Vec::new();
    match &span.error {
        Some(why) => {
            string(&mut status, 2, why);
            tag(&mut status, 3, VARINT);
            varint(&mut status, 2);
        }
        None => {
            tag(&mut status, 3, VARINT);
            varint(&mut status, 1);
        }
    }
    message(&mut out, 15, &status);
    // Flags: the W3C trace flags (sampled).
    tag(&mut out, 16, FIXED32);
    out.extend_from_slice(&1u32.to_le_bytes());
    out
}

fn encode_link(link: &TraceContext) -> Vec<u8> {
    let mut out = Vec::new();
    bytes(&mut out, 1, &link.trace);
    bytes(&mut out, 2, &link.span);
    out
}

fn key_value(key: &str, value: &Value) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        Value::Str(text) => string(&mut any, 1, text),
        Value::Bool(yes) => {
            tag(&mut any, 2, VARINT);
            varint(&mut any, u64::from(*yes));
        }
        Value::Int(n) => {
            tag(&mut any, 3, VARINT);
            // int64: two's complement as a 64-bit varint.
            varint(&mut any, *n as u64);
        }
    }
    let mut out = Vec::new();
    string(&mut out, 1, key);
    message(&mut out, 2, &any);
    out
}

fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn fixed64(out: &mut Vec<u8>, field: u64, n: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&n.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    tag(out, field, BYTES);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, field: u64, text: &str) {
    bytes(out, field, text.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u64, encoded: &[u8]) {
    bytes(out, field, encoded);
}

#[cfg(test)]
mod tests {
    use super::varint;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let table: [(u64, &[u8]); 5] = [
            (0, &[0]),
            (1, &[1]),
            (300, &[0xac, 0x02]),
            (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            (-1i64 as u64, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ];
        for (n, expected) in table {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(out, expected, "{n}");
        }
    }
}
