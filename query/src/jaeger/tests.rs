//! The Jaeger mapping compared as readable JSON, and the parsing of Jaeger's query strings.

use std::time::Duration;

use serde_json::{Value, json};

use super::model::{from_assembled, trace_id};
use super::query::{dependency_window, go_duration, rfc3339, v1_search, v3_search};
use crate::assemble::{Attribute, SpanEvent, SpanLink, SpanRecord, assemble};

const BASE_NS: i64 = 1_700_000_000_000_000_000;
const BASE_US: i64 = BASE_NS / 1_000;
const MS: i64 = 1_000_000;
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn attr(key: &str, value: &str, r#type: &str) -> Attribute {
    Attribute {
        key: key.to_owned(),
        value: value.to_owned(),
        r#type: r#type.to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    id: &str,
    parent: Option<&str>,
    service: &str,
    host: &str,
    name: &str,
    kind: &str,
    start_ms: i64,
    end_ms: i64,
) -> SpanRecord {
    SpanRecord {
        trace_id: TRACE.to_owned(),
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        trace_state: String::new(),
        service_name: service.to_owned(),
        span_name: name.to_owned(),
        span_kind: kind.to_owned(),
        start_ns: BASE_NS + start_ms * MS,
        end_ns: BASE_NS + end_ms * MS,
        status_code: "UNSET".to_owned(),
        status_message: String::new(),
        attributes: Vec::new(),
        resource_attributes: vec![
            attr("service.name", service, "string"),
            attr("host.name", host, "string"),
        ],
        scope_name: "http".to_owned(),
        scope_attributes: Vec::new(),
        scope_version: "1.2".to_owned(),
        events: Vec::new(),
        links: Vec::new(),
        flags: 0x101,
    }
}

/// frontend GET /checkout (web-1) -> POST /pay CLIENT -> payments POST /pay SERVER (pay-1, its
/// clock 15 ms behind, ERROR, an event and two links); frontend render on another host (web-2).
fn checkout() -> Vec<SpanRecord> {
    let mut root = span(
        "00000000000000a1",
        None,
        "frontend",
        "web-1",
        "GET /checkout",
        "SERVER",
        0,
        100,
    );
    root.attributes = vec![attr("http.route", "/checkout", "string")];
    let mut call = span(
        "00000000000000a2",
        Some("00000000000000a1"),
        "frontend",
        "web-1",
        "POST /pay",
        "CLIENT",
        10,
        90,
    );
    call.status_code = "OK".to_owned();
    call.attributes = vec![
        attr("count", "3", "int"),
        attr("ratio", "0.25", "double"),
        attr("retry", "true", "bool"),
        attr("payload", "AQI=", "bytes"),
        attr(
            "list",
            r#"{"values":[{"stringValue":"a"},{"intValue":"2"}]}"#,
            "array",
        ),
        attr(
            "map",
            r#"{"values":[{"key":"k","value":{"boolValue":false}}]}"#,
            "kvlist",
        ),
        attr("none", "", "empty"),
    ];
    let mut serve = span(
        "00000000000000b1",
        Some("00000000000000a2"),
        "payments",
        "pay-1",
        "POST /pay",
        "SERVER",
        5,
        65,
    );
    serve.scope_name = "grpc".to_owned();
    serve.scope_version = String::new();
    serve.status_code = "ERROR".to_owned();
    serve.status_message = "card declined".to_owned();
    serve.trace_state = "vendor=1".to_owned();
    serve.events = vec![SpanEvent {
        time_ns: BASE_NS + 30 * MS,
        name: "exception".to_owned(),
        attributes: vec![attr("exception.type", "CardError", "string")],
    }];
    serve.links = vec![
        SpanLink {
            trace_id: "00000000000000004bf92f3577b34da6".to_owned(),
            span_id: "00f067aa0ba902b7".to_owned(),
            trace_state: String::new(),
            attributes: Vec::new(),
        },
        SpanLink {
            trace_id: TRACE.to_owned(),
            span_id: "00000000000000c9".to_owned(),
            trace_state: String::new(),
            attributes: vec![attr("opentracing.ref_type", "child_of", "string")],
        },
    ];
    let render = span(
        "00000000000000a3",
        Some("00000000000000a1"),
        "frontend",
        "web-2",
        "render",
        "UNSPECIFIED",
        92,
        95,
    );
    vec![serve, render, call, root]
}

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "type": "string", "value": value})
}

#[test]
fn jaeger_trace_maps_tags_references_processes_and_adjusted_micros() {
    let trace = from_assembled(&assemble(checkout()), true);
    let scope = [
        string("otel.scope.name", "http"),
        string("otel.scope.version", "1.2"),
    ];
    assert_eq!(
        serde_json::to_value(&trace).unwrap(),
        json!({
            "traceID": TRACE,
            "warnings": null,
            "processes": {
                "p1": {"serviceName": "frontend", "tags": [string("host.name", "web-1")]},
                "p2": {"serviceName": "payments", "tags": [string("host.name", "pay-1")]},
                "p3": {"serviceName": "frontend", "tags": [string("host.name", "web-2")]},
            },
            "spans": [
                {
                    "traceID": TRACE, "spanID": "00000000000000a1", "flags": 1,
                    "operationName": "GET /checkout", "references": [],
                    "startTime": BASE_US, "duration": 100_000,
                    "tags": [
                        string("http.route", "/checkout"), scope[0], scope[1],
                        string("span.kind", "server"),
                    ],
                    "logs": [], "processID": "p1", "warnings": null
                },
                {
                    "traceID": TRACE, "spanID": "00000000000000a2", "flags": 1,
                    "operationName": "POST /pay",
                    "references": [
                        {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "00000000000000a1"}
                    ],
                    "startTime": BASE_US + 10_000, "duration": 80_000,
                    "tags": [
                        {"key": "count", "type": "int64", "value": 3},
                        {"key": "ratio", "type": "float64", "value": 0.25},
                        {"key": "retry", "type": "bool", "value": true},
                        {"key": "payload", "type": "binary", "value": "AQI="},
                        string("list", r#"["a",2]"#),
                        string("map", r#"{"k":false}"#),
                        string("none", ""),
                        scope[0], scope[1],
                        string("span.kind", "client"),
                        string("otel.status_code", "OK"),
                    ],
                    "logs": [], "processID": "p1", "warnings": null
                },
                {
                    "traceID": TRACE, "spanID": "00000000000000b1", "flags": 1,
                    "operationName": "POST /pay",
                    "references": [
                        {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "00000000000000a2"},
                        {"refType": "FOLLOWS_FROM", "traceID": "4bf92f3577b34da6",
                         "spanID": "00f067aa0ba902b7"},
                        {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "00000000000000c9"},
                    ],
                    // Raw 5..65 ms on a clock behind the caller's; centred in 10..90 ms.
                    "startTime": BASE_US + 20_000, "duration": 60_000,
                    "tags": [
                        string("otel.scope.name", "grpc"),
                        string("span.kind", "server"),
                        string("otel.status_code", "ERROR"),
                        {"key": "error", "type": "bool", "value": true},
                        string("otel.status_description", "card declined"),
                        string("w3c.tracestate", "vendor=1"),
                    ],
                    "logs": [{
                        "timestamp": BASE_US + 45_000,
                        "fields": [string("event", "exception"),
                                   string("exception.type", "CardError")]
                    }],
                    "processID": "p2",
                    "warnings": ["clock skew: shifted by 15ms into its parent from frontend"]
                },
                {
                    "traceID": TRACE, "spanID": "00000000000000a3", "flags": 1,
                    "operationName": "render",
                    "references": [
                        {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "00000000000000a1"}
                    ],
                    "startTime": BASE_US + 92_000, "duration": 3_000,
                    "tags": [scope[0], scope[1]],
                    "logs": [], "processID": "p3", "warnings": null
                },
            ]
        })
    );
}

#[test]
fn jaeger_raw_times_are_the_emitting_hosts() {
    let trace = from_assembled(&assemble(checkout()), false);
    let serve = &trace.spans[2];
    assert_eq!(serve.span_id, "00000000000000b1");
    assert_eq!(
        (serve.start_time, serve.duration, serve.logs[0].timestamp),
        (BASE_US + 5_000, 60_000, BASE_US + 30_000)
    );
}

#[test]
fn jaeger_trace_warnings_without_a_span_go_on_the_trace() {
    let mut spans = checkout();
    spans[0].trace_id = "11111111111111111111111111111111".to_owned();
    let trace = from_assembled(&assemble(spans), true);
    assert_eq!(
        trace.warnings,
        Some(vec![format!("1 spans have a trace id other than {TRACE}")])
    );
}

#[test]
fn jaeger_trace_ids_drop_a_zero_upper_half() {
    assert_eq!(
        trace_id("00000000000000004bf92f3577b34da6"),
        "4bf92f3577b34da6"
    );
    assert_eq!(trace_id(TRACE), TRACE);
    assert_eq!(trace_id("abc"), "abc");
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn jaeger_v1_search_reads_micros_go_durations_and_both_tag_forms() {
    let query = v1_search(&params(&[
        ("service", "payments"),
        ("operation", "POST /pay"),
        ("start", "1700000000000000"),
        ("end", "1700000360000000"),
        ("lookback", "custom"),
        (
            "tags",
            r#"{"http.status_code":"500","error":"true","span.kind":"server"}"#,
        ),
        ("tag", "region:eu-west:1"),
        ("minDuration", "1.5ms"),
        ("maxDuration", "1m30s"),
        ("limit", "0"),
    ]))
    .unwrap();
    assert_eq!(
        (query.window.start_ns, query.window.end_ns),
        (BASE_NS, BASE_NS + 360_000_000_000)
    );
    assert_eq!(query.service.as_deref(), Some("payments"));
    assert_eq!(query.operation.as_deref(), Some("POST /pay"));
    assert_eq!(query.span_kind.as_deref(), Some("SERVER"));
    assert_eq!(
        query.attributes,
        vec![
            ("error".to_owned(), "true".to_owned()),
            ("http.status_code".to_owned(), "500".to_owned()),
            ("region".to_owned(), "eu-west:1".to_owned()),
        ]
    );
    assert_eq!(query.min_duration_ns, Some(1_500_000));
    assert_eq!(query.max_duration_ns, Some(90_000_000_000));
    assert_eq!(query.limit, 20);

    let lookback = v1_search(&params(&[("end", "1700000360000000"), ("lookback", "1h")])).unwrap();
    assert_eq!(lookback.window.start_ns, BASE_NS - 3_240_000_000_000);
}

#[test]
fn jaeger_search_errors_name_the_parameter() {
    for (pairs, expected) in [
        (vec![("minDuration", "fast")], "minDuration"),
        (
            vec![("minDuration", "2s"), ("maxDuration", "1s")],
            "maxDuration must not be less than minDuration",
        ),
        (vec![("tag", "novalue")], "tag=\"novalue\""),
        (vec![("tags", "{not json")], "tags"),
        (vec![("limit", "many")], "limit"),
        (vec![("start", "yesterday")], "start"),
    ] {
        let message = v1_search(&params(&pairs)).unwrap_err().to_string();
        assert!(message.contains(expected), "{pairs:?}: {message}");
    }
    let message = v3_search(&params(&[("query.start_time_min", "soon")]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("query.start_time_min"), "{message}");
}

#[test]
fn jaeger_go_durations() {
    for (text, expected) in [
        ("0", Duration::ZERO),
        ("100us", Duration::from_micros(100)),
        ("100µs", Duration::from_micros(100)),
        ("1.2s", Duration::from_millis(1200)),
        ("1h30m", Duration::from_secs(5400)),
        ("250", Duration::from_millis(250)),
        ("2d", Duration::from_secs(2 * 86_400)),
    ] {
        assert_eq!(go_duration("d", text).unwrap(), expected, "{text}");
    }
}

#[test]
fn jaeger_v3_search_reads_rfc3339_with_offsets_and_search_depth() {
    let utc = rfc3339("t", "2023-11-14T22:13:20.5Z").unwrap();
    assert_eq!(utc, BASE_NS + 500 * MS);
    assert_eq!(rfc3339("t", "2023-11-15T00:13:20.5+02:00").unwrap(), utc);
    // An unescaped `+` in a query string arrives as a space.
    assert_eq!(rfc3339("t", "2023-11-15T00:13:20.5 02:00").unwrap(), utc);
    assert_eq!(rfc3339("t", "2023-11-14T21:13:20.5-01:00").unwrap(), utc);

    let query = v3_search(&params(&[
        ("query.service_name", "payments"),
        ("query.start_time_min", "2023-11-14T22:13:20Z"),
        ("query.start_time_max", "2023-11-14T23:13:20Z"),
        ("query.duration_min", "10ms"),
        ("query.search_depth", "5"),
        ("query.attributes", "http.route=/pay"),
    ]))
    .unwrap();
    assert_eq!(query.window.start_ns, BASE_NS);
    assert_eq!(query.window.end_ns, BASE_NS + 3_600_000_000_000);
    assert_eq!(query.service.as_deref(), Some("payments"));
    assert_eq!(query.min_duration_ns, Some(10 * MS));
    assert_eq!(query.limit, 5);
    assert_eq!(
        query.attributes,
        vec![("http.route".to_owned(), "/pay".to_owned())]
    );
    let depth = v3_search(&params(&[("query.num_traces", "7")])).unwrap();
    assert_eq!(depth.limit, 7);
}

#[test]
fn jaeger_dependency_window_is_lookback_millis_before_end() {
    let window = dependency_window(&params(&[
        ("endTs", "1700000000000"),
        ("lookback", "3600000"),
    ]))
    .unwrap();
    assert_eq!(
        (window.start_ns, window.end_ns),
        (BASE_NS - 3_600_000_000_000, BASE_NS)
    );
}
