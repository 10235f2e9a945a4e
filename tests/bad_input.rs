//! The bad-input corpus (`tests/corpus/otlp`, made by `make.py`, expectations in `cases.json`)
//! replayed against the real binary over OTLP/HTTP while a well-behaved client keeps sending:
//! every bad request gets the status and message it should, nothing it sends costs the other
//! client a span, and the odd-but-valid traces (duplicates, a parent cycle, 200 000 spans)
//! come back whole.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, eventually};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/otlp")
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One good span per request for service `good`, trace ids counting up from `n`.
fn good_request(n: u64) -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "good"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": format!("{:032x}", 0xbeef_0000_0000u64 + n),
            "spanId": "eee19b7ec3c1b174", "name": "steady", "kind": 2,
            "startTimeUnixNano": now_ns().to_string(),
            "endTimeUnixNano": (now_ns() + 1_000).to_string()
        }]}]
    }]})
    .to_string()
}

#[test]
fn the_bad_input_corpus_is_answered_and_costs_nobody_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(&dir.path().join("data")));

    // A well-behaved client sending all along.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let steady = {
        let (server, stop, acked) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || {
            let client = Client::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let response = client
                    .post(server.otlp_http_url())
                    .header("content-type", "application/json")
                    .body(good_request(n))
                    .send()
                    .unwrap();
                assert_eq!(response.status(), 200, "the good client was refused");
                acked.fetch_add(1, Ordering::SeqCst);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("cases.json")).unwrap())
            .unwrap();
    let client = Client::new();
    let mut accepted_total = 0;
    for case in &cases {
        let file = case["file"].as_str().unwrap();
        let body = std::fs::read(corpus().join(file)).unwrap();
        let protobuf = file.ends_with(".pb");
        let content_type = case["content_type"].as_str().unwrap_or(if protobuf {
            "application/x-protobuf"
        } else {
            "application/json"
        });
        let response = client
            .post(server.otlp_http_url())
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().unwrap();
        // Error bodies are google.rpc.Status in the request's encoding; their message is
        // readable in either.
        let text = String::from_utf8_lossy(&bytes).to_string();
        assert_eq!(
            status,
            case["status"].as_u64().unwrap() as u16,
            "{file}: {text}"
        );
        if let Some(says) = case["says"].as_str() {
            assert!(text.contains(says), "{file} should say {says:?}: {text}");
        }
        if status == 200 {
            let (rejected, message) = if protobuf {
                let r = ExportTraceServiceResponse::decode(&bytes[..]).unwrap();
                r.partial_success
                    .map_or((0, String::new()), |p| (p.rejected_spans, p.error_message))
            } else {
                let r: Value = serde_json::from_slice(&bytes).unwrap();
                (
                    r["partialSuccess"]["rejectedSpans"].as_str().map_or_else(
                        || r["partialSuccess"]["rejectedSpans"].as_i64().unwrap_or(0),
                        |s| s.parse().unwrap(),
                    ),
                    r["partialSuccess"]["errorMessage"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            };
            assert_eq!(
                rejected,
                case["rejected"].as_i64().unwrap_or(0),
                "{file}: {message}"
            );
            accepted_total += case["accepted"].as_i64().unwrap();
        }
    }

    // Odd but valid traces come back assembled: duplicates merged, the cycle cut.
    for case in cases.iter().filter(|c| c["trace"].is_string()) {
        let id = case["trace"].as_str().unwrap();
        let trace: Value = client
            .get(server.url(&format!("/api/traces/{id}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            trace["spans"].as_array().unwrap().len() as u64,
            case["trace_spans"].as_u64().unwrap(),
            "{id}: {trace}"
        );
    }
    let cycle: Value = client
        .get(server.url("/api/traces/0000000000000000000000000000010b"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        !cycle["warnings"].as_array().unwrap().is_empty(),
        "a cycle is reported: {cycle}"
    );
    let skewed: Value = server.sql(
        "SELECT duration_ns FROM spans WHERE trace_id = '00000000000000000000000000000108' \
         AND span_id = '0000000000000001'",
    );
    assert_eq!(
        skewed["data"][0]["duration_ns"], 0,
        "end before start: zero duration"
    );

    stop.store(true, Ordering::SeqCst);
    steady.join().unwrap();
    let acked = acked.load(Ordering::SeqCst) as i64;
    assert!(acked > 0);
    assert_eq!(
        server.count("spans WHERE service_name = 'good'"),
        acked,
        "every acknowledged span of the good client is stored"
    );
    assert_eq!(
        server.count("spans WHERE service_name = 'corpus'"),
        accepted_total
    );
}

/// A message whose field 1 has the wrong wire type for `ExportTraceServiceRequest.resource_spans`.
#[derive(Clone, PartialEq, prost::Message)]
struct NotARequest {
    #[prost(fixed64, tag = "1")]
    resource_spans: u64,
}

#[test]
fn a_malformed_grpc_request_is_invalid_argument_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let url = server.grpc_url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        grpc.unary::<_, ExportTraceServiceResponse, _>(
            tonic::Request::new(NotARequest { resource_spans: 7 }),
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("a malformed request is refused")
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("protobuf ExportTraceServiceRequest")
            && status.message().contains("wire type"),
        "the message names what was wrong: {status:?}"
    );
    assert_eq!(server.count("spans"), 0);
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn a_trace_of_200k_spans_is_stored_and_read_back_whole() {
    const SPANS: u64 = 200_000;
    const PER_REQUEST: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trace_id = vec![7u8; 16];
    let start = now_ns() - 60_000_000_000;
    let client = Client::new();
    for chunk in 0..SPANS / PER_REQUEST {
        let spans = (chunk * PER_REQUEST..(chunk + 1) * PER_REQUEST)
            .map(|i| Span {
                trace_id: trace_id.clone(),
                span_id: (i + 1).to_be_bytes().to_vec(),
                // A wide, deep tree: span i's parent is span i / 4.
                parent_span_id: if i == 0 {
                    Vec::new()
                } else {
                    (i / 4 + 1).to_be_bytes().to_vec()
                },
                name: format!("op-{}", i % 50),
                kind: 2,
                start_time_unix_nano: start + i * 1_000,
                end_time_unix_nano: start + i * 1_000 + 500,
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "big")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let response = client
            .post(server.otlp_http_url())
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let id = "07070707070707070707070707070707";
    assert!(eventually(Duration::from_secs(30), || server
        .count(&format!("spans WHERE trace_id = '{id}'"))
        == SPANS as i64));
    let trace: Value = Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
        .get(server.url(&format!("/api/traces/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(trace["summary"]["span_count"], SPANS);
    assert_eq!(trace["spans"].as_array().unwrap().len() as u64, SPANS);
    assert_eq!(trace["roots"].as_array().unwrap().len(), 1);
}

#[test]
fn request_and_attribute_limits_are_flags() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--max-spans-per-request",
            "10",
            "--max-attributes-per-span",
            "3",
            "--max-attribute-value-bytes",
            "9",
            "--max-attribute-depth",
            "2",
        ],
    );
    let client = Client::new();
    let post = |spans: Vec<Value>| {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "lim"}}]},
            "scopeSpans": [{"spans": spans}]
        }]});
        client
            .post(server.otlp_http_url())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let span = |n: u64, attributes: Value| {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": format!("{n:016x}"),
               "name": "op", "startTimeUnixNano": now_ns().to_string(),
               "endTimeUnixNano": (now_ns() + 1000).to_string(), "attributes": attributes})
    };

    let too_many: Vec<Value> = (1..=11).map(|n| span(n, json!([]))).collect();
    let response = post(too_many);
    assert_eq!(response.status(), 413);
    let text = response.text().unwrap();
    assert!(
        text.contains("11 spans in one request, over the limit of 10"),
        "{text}"
    );

    let nested = json!({"arrayValue": {"values": [{"arrayValue": {"values": [
        {"arrayValue": {"values": [{"intValue": "1"}]}}]}}]}});
    let attributes = json!([
        {"key": "long", "value": {"stringValue": "ééééééé"}},
        {"key": "deep", "value": nested},
        {"key": "n", "value": {"intValue": "7"}},
        {"key": "over1", "value": {"stringValue": "x"}},
        {"key": "over2", "value": {"stringValue": "y"}}
    ]);
    assert_eq!(post(vec![span(1, attributes)]).status(), 200);
    let row = server.sql(
        "SELECT attributes['long'] AS long, attributes['n'] AS n, attributes['deep'] AS deep, \
         cardinality(attributes) AS kept, dropped_attributes_count AS dropped FROM spans",
    );
    let row = &row["data"][0];
    assert_eq!(
        row["long"], "éééé",
        "cut at a character boundary within 9 bytes"
    );
    assert_eq!(row["n"], "7");
    assert!(row["deep"].is_null());
    assert_eq!(row["kept"], 2);
    assert_eq!(row["dropped"], 3, "two over the count, one too deep");
}
