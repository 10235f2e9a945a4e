//! The OpenTelemetry Rust SDK exports to the real server over gRPC, HTTP/protobuf and
//! HTTP/JSON, and the spans come back through SQL.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// A two-span call chain (SERVER root, CLIENT child with an error and an event).
fn emit(provider: &SdkTracerProvider, n: usize) {
    let tracer = provider.tracer("spanlake-e2e");
    for i in 0..n {
        let mut root = tracer
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("http.response.status_code", 500),
                KeyValue::new("iteration", i as i64),
                KeyValue::new("sampled.ratio", 0.5),
                KeyValue::new("cache.hit", false),
            ])
            .start(&tracer);
        let cx =
            opentelemetry::Context::current().with_remote_span_context(root.span_context().clone());
        let mut child = tracer
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, &cx);
        child.add_event("retry", vec![KeyValue::new("attempt", 2)]);
        child.set_status(Status::error("connection reset"));
        child.end();
        root.end();
    }
}

fn provider(exporter: SpanExporter, service: &str) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build()
}

/// The gRPC exporter (tonic) needs a Tokio runtime to build its channel; the SDK's batch
/// processor then exports from its own thread while the runtime's workers drive the I/O.
fn grpc_provider(
    rt: &tokio::runtime::Runtime,
    endpoint: String,
    service: &str,
) -> SdkTracerProvider {
    let exporter = rt.block_on(async {
        SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .unwrap()
    });
    provider(exporter, service)
}

#[test]
fn sdk_exporters_over_grpc_and_http_reach_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let rt = tokio::runtime::Runtime::new().unwrap();

    let grpc = grpc_provider(&rt, server.grpc_url(), "svc-grpc");
    emit(&grpc, 10);
    grpc.force_flush().unwrap();
    grpc.shutdown().unwrap();

    for (protocol, service) in [
        (Protocol::HttpBinary, "svc-http-proto"),
        (Protocol::HttpJson, "svc-http-json"),
    ] {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(server.otlp_http_url())
            .build()
            .unwrap();
        let p = provider(exporter, service);
        emit(&p, 10);
        p.force_flush().unwrap();
        p.shutdown().unwrap();
    }

    // Acknowledged spans are visible at once (read-your-writes from memory).
    assert!(eventually(Duration::from_secs(1), || server.count("spans") == 60));
    let body = server.sql(
        "SELECT service_name, span_kind, status_code, count(*) AS n, \
         count(DISTINCT trace_id) AS traces \
         FROM spans GROUP BY 1, 2, 3 ORDER BY 1, 2",
    );
    let rows: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                r["service_name"].as_str().unwrap(),
                r["span_kind"].as_str().unwrap(),
                r["status_code"].as_str().unwrap(),
                r["n"],
                r["traces"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            "svc-grpc CLIENT ERROR 10 10",
            "svc-grpc SERVER UNSET 10 10",
            "svc-http-json CLIENT ERROR 10 10",
            "svc-http-json SERVER UNSET 10 10",
            "svc-http-proto CLIENT ERROR 10 10",
            "svc-http-proto SERVER UNSET 10 10",
        ]
    );
}

#[test]
fn call_chain_attributes_and_events_survive_the_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = grpc_provider(&rt, server.grpc_url(), "checkout");
    emit(&p, 1);
    p.force_flush().unwrap();
    p.shutdown().unwrap();

    let body = {
        server.sql(
            "SELECT c.span_name AS child, p.span_name AS parent, \
             p.attributes['http.route'] AS route, \
             p.attribute_types['http.response.status_code'] AS status_type, \
             p.attributes['sampled.ratio'] AS ratio, p.attribute_types['cache.hit'] AS hit_type, \
             c.status_message AS message, c.events[1]['name'] AS event, \
             c.events[1]['attributes']['attempt'] AS attempt, \
             p.resource_attributes['service.name'] AS resource_service, \
             p.scope_name AS scope, c.duration_ns >= 0 AS positive \
             FROM spans c JOIN spans p ON c.parent_span_id = p.span_id AND c.trace_id = p.trace_id",
        )
    };
    assert_eq!(body["rows"], 1, "{body}");
    let row = &body["data"][0];
    assert_eq!(row["child"], "SELECT orders");
    assert_eq!(row["parent"], "GET /checkout");
    assert_eq!(row["route"], "/checkout");
    assert_eq!(row["status_type"], "int");
    assert_eq!(row["ratio"], "0.5");
    assert_eq!(row["hit_type"], "bool");
    assert_eq!(row["message"], "connection reset");
    assert_eq!(row["event"], "retry");
    assert_eq!(row["attempt"], "2");
    assert_eq!(row["resource_service"], "checkout");
    assert_eq!(row["scope"], "spanlake-e2e");
    assert_eq!(row["positive"], true);
}
