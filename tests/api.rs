//! OTLP/HTTP answers as the specification says, and the SQL API is read-only and speaks JSON,
//! CSV and Arrow; `spanlake sql` prints a table.

mod common;

use std::io::Write;

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn otlp_json(trace: &str, spans: &[(&str, &str)]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(id, name)| {
            json!({
                "traceId": trace, "spanId": id, "name": name, "kind": 2,
                "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000500000000u64,
                "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}},
                               {"key": "retries", "value": {"intValue": "3"}}],
                "status": {"code": 2, "message": "bad"}
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]
    }]})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn otlp_http_json_gzip_partial_success_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = Client::new();
    let url = server.otlp_http_url();

    // JSON, gzip, with one span whose trace id is all zeros: partial success in JSON.
    let mut body = otlp_json(
        "5b8efff798038103d269b633813fc60c",
        &[("eee19b7ec3c1b174", "a"), ("eee19b7ec3c1b175", "b")],
    );
    body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap()
        .push(json!({"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b176", "name": "zero"}));
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(body.to_string().as_bytes()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace_id is all zeros"),
        "{answer}"
    );
    assert_eq!(server.count("spans"), 2);

    // Protobuf that is not a valid message: 400 with a protobuf google.rpc.Status.
    let r = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(vec![0x0a, 0xff, 0xff, 0xff])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let status_bytes = r.bytes().unwrap();
    // field 2 (message) is a string naming the problem.
    assert!(
        String::from_utf8_lossy(&status_bytes).contains("cannot decode request body as protobuf")
    );

    // Invalid JSON: 400 with a JSON status.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"resourceSpans\": [")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["code"], 3);
    assert!(
        answer["message"].as_str().unwrap().contains("OTLP/JSON"),
        "{answer}"
    );

    // Unsupported content type: 415.
    let r = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);

    // A corrupt gzip stream: 400.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(b"not gzip at all".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // An empty protobuf request is a valid export of nothing.
    let r = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let response = ExportTraceServiceResponse::decode(r.bytes().unwrap()).unwrap();
    assert!(response.partial_success.is_none());

    // Tenants see only their own spans.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", "team-b")
        .body(
            otlp_json(
                "6b8efff798038103d269b633813fc60c",
                &[("aee19b7ec3c1b174", "b-only")],
            )
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = server.sql_status("SELECT span_name FROM spans", Some("team-b"));
    assert_eq!(status, 200);
    assert_eq!(body["rows"], 1);
    assert_eq!(body["data"][0]["span_name"], "b-only");
    assert_eq!(server.count("spans"), 2);
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", "../etc")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn sql_api_is_read_only_and_speaks_json_csv_arrow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = Client::new();
    let r = client
        .post(server.otlp_http_url())
        .header("content-type", "application/json")
        .body(
            otlp_json(
                "5b8efff798038103d269b633813fc60c",
                &[("eee19b7ec3c1b174", "a"), ("eee19b7ec3c1b175", "b")],
            )
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    let body = server.sql(
        "SELECT trace_id, span_name, start_time, duration_ns, attributes['retries'] AS retries \
         FROM spans WHERE trace_id = '5b8efff798038103d269b633813fc60c' ORDER BY span_name",
    );
    assert_eq!(
        body["meta"],
        json!([
            {"name": "trace_id", "type": "Utf8"},
            {"name": "span_name", "type": "Utf8"},
            {"name": "start_time", "type": "Timestamp(ns, \"UTC\")"},
            {"name": "duration_ns", "type": "Int64"},
            {"name": "retries", "type": "Utf8"},
        ]),
        "{body}"
    );
    assert_eq!(body["rows"], 2);
    assert_eq!(body["data"][0]["span_name"], "a");
    assert_eq!(body["data"][0]["duration_ns"], 500_000_000);
    assert_eq!(body["data"][0]["retries"], "3");
    assert_eq!(body["data"][0]["start_time"], "2023-11-14T22:13:20Z");
    assert!(body["statistics"]["elapsed_ms"].as_f64().is_some());
    assert!(body["statistics"]["rows_read"].as_u64().unwrap() >= 2);

    for refused in [
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE spans",
        "INSERT INTO spans SELECT * FROM spans",
        "COPY (SELECT 1) TO '/tmp/spanlake-copy.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
    ] {
        let (status, body) = server.sql_status(refused, None);
        assert_eq!(status, 400, "{refused} -> {body}");
        assert!(
            body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let (status, body) = server.sql_status("SELEC 1", None);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("SELEC"), "{body}");
    let (status, body) = server.sql_status("SELECT nope FROM spans", None);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    let csv = client
        .post(server.url("/api/sql?format=csv"))
        .json(&json!({"sql": "SELECT span_name, attributes FROM spans ORDER BY span_name"}))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        csv,
        "span_name,attributes\na,\"{http.route: /x, retries: 3}\"\nb,\"{http.route: /x, retries: 3}\"\n"
    );

    let arrow = client
        .post(server.url("/api/sql?format=arrow"))
        .json(&json!({"sql": "SELECT count(*) AS n FROM spans"}))
        .send()
        .unwrap();
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow.bytes().unwrap();
    let reader = arrow::ipc::reader::StreamReader::try_new(&bytes[..], None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string(),
        "+---+\n| n |\n+---+\n| 2 |\n+---+"
    );

    // The CLI prints a table.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args([
            "sql",
            "--server",
            &server.url(""),
            "SELECT span_name, span_kind FROM spans ORDER BY 1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "+-----------+-----------+\n\
         | span_name | span_kind |\n\
         +-----------+-----------+\n\
         | a         | SERVER    |\n\
         | b         | SERVER    |\n\
         +-----------+-----------+\n\
         2 row(s)\n"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["sql", "--server", &server.url(""), "DROP TABLE spans"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
}

#[test]
fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = Client::new();
    assert_eq!(
        client.get(server.url("/healthz")).send().unwrap().status(),
        200
    );
    assert_eq!(
        client.get(server.url("/readyz")).send().unwrap().status(),
        200
    );
}

/// The value of the sample of `name` whose labels contain every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        if !labels.iter().all(|l| rest.contains(l)) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

#[test]
fn metrics_count_what_came_in_and_what_was_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = Client::new();
    let url = server.otlp_http_url();
    let mut body = otlp_json(
        "5b8efff798038103d269b633813fc60c",
        &[("eee19b7ec3c1b174", "a"), ("eee19b7ec3c1b175", "b")],
    );
    body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap()
        .push(json!({"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b176", "name": "zero"}));
    let ok = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 415);
    assert_eq!(server.count("spans"), 2);

    let response = client.get(server.url("/metrics")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let metrics = response.text().unwrap();
    let get = |name: &str, labels: &[&str]| {
        sample(&metrics, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{metrics}"))
    };
    let http = r#"protocol="http""#;
    assert_eq!(
        get("spanlake_otlp_requests_total", &[http, r#"outcome="ok""#]),
        1.0
    );
    assert_eq!(
        get(
            "spanlake_otlp_requests_total",
            &[http, r#"outcome="content_type""#]
        ),
        1.0
    );
    assert_eq!(get("spanlake_otlp_spans_accepted_total", &[http]), 2.0);
    assert_eq!(
        get(
            "spanlake_otlp_spans_rejected_total",
            &[http, r#"reason="invalid_span""#]
        ),
        1.0
    );
    assert!(get("spanlake_otlp_received_bytes_total", &[http]) > 100.0);
    assert_eq!(
        get("spanlake_otlp_export_duration_seconds_count", &[http]),
        2.0
    );
    assert!(get("spanlake_wal_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(get("spanlake_wal_written_bytes_total", &[]) > 0.0);
    assert!(get("spanlake_buffered_bytes", &[]) > 0.0);
    assert_eq!(get("spanlake_storage_files", &[]), 0.0);
    assert!(get("process_resident_memory_bytes", &[]) > 1e6);
    // The SQL query that counted the spans, by route and status.
    assert_eq!(
        get(
            "spanlake_http_requests_total",
            &[r#"route="/api/sql""#, r#"status="200""#]
        ),
        1.0
    );
    assert!(metrics.contains("# HELP spanlake_otlp_export_duration_seconds"));
    assert!(
        metrics.contains(
            r#"spanlake_otlp_export_duration_seconds_bucket{protocol="http",le="0.005"}"#
        )
    );
}

#[test]
fn compressed_bodies_are_bounded_after_decompression() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--max-decompressed-bytes", "1000000"],
    );
    let client = Client::new();
    let url = server.otlp_http_url();
    let post = |encoding: &str, body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .unwrap()
    };
    // zstd is accepted like gzip.
    let body = otlp_json(
        "5b8efff798038103d269b633813fc60c",
        &[("eee19b7ec3c1b174", "a")],
    );
    let small = zstd::stream::encode_all(body.to_string().as_bytes(), 3).unwrap();
    assert_eq!(post("zstd", small).status(), 200);
    assert_eq!(server.count("spans"), 1);

    // Bombs: 50 MB of zeros compress to well under a megabyte; both are refused with 413 after at
    // most the limit was inflated.
    let zeros = vec![0u8; 50 << 20];
    let zstd_bomb = zstd::stream::encode_all(&zeros[..], 19).unwrap();
    let gzip_bomb = gzip(&zeros);
    assert!(zstd_bomb.len() < 1_000_000 && gzip_bomb.len() < 1_000_000);
    for (encoding, bomb) in [("zstd", zstd_bomb), ("gzip", gzip_bomb)] {
        let response = post(encoding, bomb);
        assert_eq!(response.status(), 413, "{encoding}");
        let text = String::from_utf8_lossy(&response.bytes().unwrap()).to_string();
        assert!(text.contains("after decompression"), "{encoding}: {text}");
    }
    // A body that is not what its encoding says is a 400 naming the encoding.
    let response = post("zstd", b"not zstd at all".to_vec());
    assert_eq!(response.status(), 400);
    assert!(String::from_utf8_lossy(&response.bytes().unwrap()).contains("zstd"));
    let response = post("br", b"x".to_vec());
    assert_eq!(response.status(), 400);
    assert_eq!(server.count("spans"), 1, "refused bodies cost no spans");
}
