//! A request crosses services through the real OpenTelemetry SDK and is read back whole through
//! the native API: the tree, where it failed, what is missing, search, the service graph and RED
//! metrics.

mod common;

use std::time::{Duration, SystemTime};

use common::Server;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;

fn provider(rt: &tokio::runtime::Runtime, endpoint: &str, service: &str) -> SdkTracerProvider {
    let exporter = rt.block_on(async {
        SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .unwrap()
    });
    SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build()
}

/// frontend: GET /checkout (SERVER) -> POST /pay (CLIENT)
///   payments: POST /pay (SERVER, ERROR) -> INSERT payments (CLIENT to an uninstrumented db, ERROR)
/// Returns the trace id.
fn checkout_chain(
    frontend: &SdkTracerProvider,
    payments: &SdkTracerProvider,
    base: SystemTime,
) -> String {
    let ms = |n: u64| base + Duration::from_millis(n);
    let f = frontend.tracer("frontend");
    let p = payments.tracer("payments");
    let root = f
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_start_time(ms(0))
        .with_attributes([KeyValue::new("http.route", "/checkout")])
        .start(&f);
    let trace_id = root.span_context().trace_id().to_string();
    let root_cx = Context::new().with_remote_span_context(root.span_context().clone());
    let mut call = f
        .span_builder("POST /pay")
        .with_kind(SpanKind::Client)
        .with_start_time(ms(10))
        .start_with_context(&f, &root_cx);
    let call_cx = Context::new().with_remote_span_context(call.span_context().clone());
    let mut serve = p
        .span_builder("POST /pay")
        .with_kind(SpanKind::Server)
        .with_start_time(ms(15))
        .start_with_context(&p, &call_cx);
    let serve_cx = Context::new().with_remote_span_context(serve.span_context().clone());
    let mut db = p
        .span_builder("INSERT payments")
        .with_kind(SpanKind::Client)
        .with_start_time(ms(20))
        .with_attributes([
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("server.address", "payments-db"),
        ])
        .start_with_context(&p, &serve_cx);
    db.set_status(Status::error("deadlock detected"));
    db.end_with_timestamp(ms(80));
    serve.set_status(Status::error("payment failed"));
    serve.end_with_timestamp(ms(90));
    call.set_status(Status::error("502 from payments"));
    call.end_with_timestamp(ms(100));
    let mut root = root;
    root.set_status(Status::error("checkout failed"));
    root.end_with_timestamp(ms(110));
    trace_id
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(server.url(path)).unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap())
}

#[test]
fn a_failing_chain_is_assembled_searched_graphed_and_measured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let frontend = provider(&rt, &server.grpc_url(), "frontend");
    let payments = provider(&rt, &server.grpc_url(), "payments");
    let base = SystemTime::now() - Duration::from_secs(5);
    let trace_id = checkout_chain(&frontend, &payments, base);
    for p in [&frontend, &payments] {
        p.force_flush().unwrap();
        p.shutdown().unwrap();
    }

    // The whole trace, by id, without a time range.
    let (status, trace) = get(&server, &format!("/api/traces/{trace_id}"));
    assert_eq!(status, 200, "{trace}");
    let summary = &trace["summary"];
    assert_eq!(summary["span_count"], 4, "{summary}");
    assert_eq!(summary["error_count"], 4);
    assert_eq!(summary["root_service"], "frontend");
    assert_eq!(summary["root_span_name"], "GET /checkout");
    assert_eq!(summary["duration_ns"], 110_000_000);
    let spans = trace["spans"].as_array().unwrap();
    let names: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{}{} [{}]",
                "  ".repeat(s["depth"].as_u64().unwrap() as usize),
                s["span_name"].as_str().unwrap(),
                s["service_name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "GET /checkout [frontend]",
            "  POST /pay [frontend]",
            "    POST /pay [payments]",
            "      INSERT payments [payments]"
        ]
    );
    // The failure started at the database call: its ancestors only passed it on.
    let origins: Vec<&str> = trace["error_origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            spans[i.as_u64().unwrap() as usize]["span_name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(origins, vec!["INSERT payments"]);
    // frontend -> payments: 5 ms before the server span, 10 ms after it.
    let hops = trace["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 1, "{trace}");
    assert_eq!(hops[0]["gap_before_ns"], 5_000_000);
    assert_eq!(hops[0]["gap_after_ns"], 10_000_000);
    // The database is not instrumented: its CLIENT span has no SERVER child.
    let missing = trace["missing"].to_string();
    assert!(
        missing.contains("uninstrumented_callee") && missing.contains("payments-db"),
        "{missing}"
    );

    let (status, body) = get(&server, "/api/traces/00000000000000000000000000000abc");
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(&server, "/api/traces/not-hex");
    assert_eq!(status, 400, "{body}");

    // Search: by service and error, by attribute, by duration; newest first.
    let (status, body) = get(
        &server,
        "/api/search?service=payments&errors=true&lookback=1h",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["traces"][0]["trace_id"], trace_id.as_str());
    assert_eq!(body["traces"][0]["root_service"], "frontend");
    assert_eq!(body["traces"][0]["span_count"], 4);
    let (_, body) = get(&server, "/api/search?attr=db.system%3Dpostgresql");
    assert_eq!(body["traces"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = get(&server, "/api/search?attr=db.system%3Dmysql");
    assert_eq!(body["traces"].as_array().unwrap().len(), 0, "{body}");
    let (_, body) = get(&server, "/api/search?service=frontend&minDuration=105ms");
    assert_eq!(body["traces"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = get(&server, "/api/search?service=frontend&minDuration=200ms");
    assert_eq!(body["traces"].as_array().unwrap().len(), 0, "{body}");
    let (status, body) = get(&server, "/api/search?minDuration=soon");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("minDuration"),
        "{body}"
    );

    // Services, operations, the dependency graph, RED metrics.
    let (_, body) = get(&server, "/api/services");
    assert_eq!(
        body["services"],
        serde_json::json!(["frontend", "payments"])
    );
    let (_, body) = get(&server, "/api/services/payments/operations?kind=server");
    assert_eq!(body["operations"][0]["name"], "POST /pay");
    let (_, body) = get(&server, "/api/dependencies");
    let edges = body["dependencies"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{body}");
    assert_eq!(edges[0]["parent"], "frontend");
    assert_eq!(edges[0]["child"], "payments");
    assert_eq!(edges[0]["call_count"], 1);
    assert_eq!(edges[0]["error_count"], 1);
    assert_eq!(edges[0]["p50_ns"], 75_000_000.0);
    let (_, body) = get(
        &server,
        "/api/metrics?service=payments&byOperation=true&step=1h",
    );
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{body}");
    assert_eq!(points[0]["operation"], "POST /pay");
    assert_eq!(points[0]["requests"], 1);
    assert_eq!(points[0]["error_rate"], 1.0);

    // The same analyses as SQL table functions.
    let body = server.sql(&format!(
        "SELECT depth, span_name, service_name, error_origin FROM trace_tree('{trace_id}')"
    ));
    let rows: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["depth"],
                r["span_name"].as_str().unwrap(),
                r["service_name"].as_str().unwrap(),
                r["error_origin"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            "0 GET /checkout frontend false",
            "1 POST /pay frontend false",
            "2 POST /pay payments false",
            "3 INSERT payments payments true"
        ]
    );
    let body = server.sql("SELECT parent, child, call_count, error_count FROM service_graph('1h')");
    assert_eq!(body["data"][0]["parent"], "frontend", "{body}");
    assert_eq!(body["data"][0]["child"], "payments");
    assert_eq!(body["data"][0]["call_count"], 1);
    let (status, body) = server.sql_status("SELECT * FROM trace_tree(42, 43)", None);
    assert_eq!(status, 400, "{body}");

    let (status, doc) = get(&server, "/api/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/search"]["get"].is_object());
}
