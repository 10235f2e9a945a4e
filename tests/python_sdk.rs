//! The OpenTelemetry Python SDK's gRPC and HTTP exporters work against the real server
//! unchanged, and Python's ADBC Flight SQL driver queries what they sent.

mod common;

use common::Server;

/// Runs tests/python/export_sdk.py against `server`: 5 traces of 2 spans per exporter.
fn export_with_python_sdk(server: &Server) -> std::process::Output {
    std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/export_sdk.py"
        ))
        .arg(server.grpc_url())
        .arg(server.otlp_http_url())
        .output()
        .expect("python3")
}

#[test]
fn python_sdk_exporters_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let output = export_with_python_sdk(&server);
    assert!(
        output.status.success(),
        "python exporter failed (scripts/test installs the SDK): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body = server.sql(
        "SELECT service_name, span_kind, status_code, count(*) AS n, \
         count(DISTINCT trace_id) AS traces, \
         max(attributes['http.route']) AS route, max(attribute_types['item.count']) AS count_type \
         FROM spans GROUP BY 1, 2, 3 ORDER BY 1, 2",
    );
    let rows: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r["service_name"].as_str().unwrap(),
                r["span_kind"].as_str().unwrap(),
                r["status_code"].as_str().unwrap(),
                r["n"],
                r["traces"],
                r["route"],
                r["count_type"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            "py-grpc CLIENT ERROR 5 5 null null",
            "py-grpc SERVER UNSET 5 5 \"/items\" \"int\"",
            "py-http CLIENT ERROR 5 5 null null",
            "py-http SERVER UNSET 5 5 \"/items\" \"int\"",
        ],
        "{body}"
    );
}

#[test]
fn adbc_flight_sql_client_queries_spans() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let output = export_with_python_sdk(&server);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/flight_sql.py"
        ))
        .arg(format!("grpc://{}", server.flight))
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "ADBC Flight SQL client failed (scripts/test installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["n"], 20, "{answer}");
}
