//! An acknowledged span is never lost: kill -9 the real server while clients export over
//! gRPC and HTTP, restart it, and find every acknowledged span exactly once. After a graceful
//! stop every span is in plain Parquet files that DuckDB and pyarrow read.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const SPANS_PER_REQUEST: u64 = 50;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A request of `SPANS_PER_REQUEST` spans with ids `first..`, in traces of 5 spans.
fn request(first: u64) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (first..first + SPANS_PER_REQUEST)
        .map(|id| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(id / 5 + 1).to_be_bytes());
            trace_id[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (id + 1).to_be_bytes().to_vec(),
                name: format!("op-{}", id % 7),
                kind: 2,
                start_time_unix_nano: now,
                end_time_unix_nano: now + 1_000_000,
                attributes: vec![kv("n", any_value::Value::IntValue(id as i64))],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("loadgen".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends requests until the server stops answering; records the span ids acknowledged.
async fn send_until_dead(
    server_grpc: String,
    server_http: String,
    base: u64,
    acked: Arc<Mutex<HashSet<u64>>>,
) {
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let acked = Arc::clone(&acked);
        let grpc = server_grpc.clone();
        let http = server_http.clone();
        tasks.push(tokio::spawn(async move {
            let mut grpc_client = TraceServiceClient::connect(grpc).await.ok();
            let http_client = reqwest::Client::new();
            for i in 0.. {
                let first = base + (worker * 1_000_000) + i * SPANS_PER_REQUEST;
                let req = request(first);
                let ok = if worker % 2 == 0 {
                    match grpc_client.as_mut() {
                        Some(c) => c.export(req).await.is_ok(),
                        None => false,
                    }
                } else {
                    http_client
                        .post(&http)
                        .header("content-type", "application/x-protobuf")
                        .body(req.encode_to_vec())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                };
                if !ok {
                    return;
                }
                acked
                    .lock()
                    .unwrap()
                    .extend((first..first + SPANS_PER_REQUEST).map(|id| id + 1));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn stored_span_ids(server: &Server) -> Vec<u64> {
    let body = server.sql("SELECT span_id FROM spans");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| u64::from_str_radix(r["span_id"].as_str().unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_span() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Flush often and small, so kills land during flushes and WAL clean-up too.
    let mut server = Server::start_with(
        &data,
        &[
            "--flush-interval",
            "150ms",
            "--flush-bytes",
            "200000",
            "--query-max-rows",
            "10000000",
        ],
    );
    let acked = Arc::new(Mutex::new(HashSet::new()));
    for round in 0..3u64 {
        let sender = rt.spawn(send_until_dead(
            server.grpc_url(),
            server.otlp_http_url(),
            round * 100_000_000,
            Arc::clone(&acked),
        ));
        std::thread::sleep(Duration::from_millis(700 + round * 300));
        server.kill9();
        rt.block_on(sender).unwrap();
        server.restart();

        let expected = acked.lock().unwrap().clone();
        assert!(
            expected.len() > 1000,
            "round {round}: too few spans acknowledged to prove anything: {}",
            expected.len()
        );
        let stored = stored_span_ids(&server);
        let unique: HashSet<u64> = stored.iter().copied().collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "round {round}: duplicated spans after replay"
        );
        let missing: Vec<_> = expected.difference(&unique).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged spans lost, e.g. {missing:?}; log:\n{}",
            expected.difference(&unique).count(),
            server.log()
        );
    }

    // A graceful stop writes everything to Parquet; plain Parquet readers see every span.
    let total = stored_span_ids(&server).len();
    server.stop();
    let wal_left: u64 = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        wal_left <= 64,
        "wal should hold no records after a graceful stop: {wal_left} bytes"
    );
    let output = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/read_files.py"
        ))
        .arg(&data)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "python readers failed (scripts/test installs duckdb and pyarrow): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let counts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        counts["files"].as_u64().unwrap() > 3,
        "flushes should have run mid-stream: {counts}"
    );
    eprintln!(
        "acknowledged {} spans over 3 kills; files: {counts}",
        acked.lock().unwrap().len()
    );
    assert_eq!(counts["duckdb"], total as u64, "{counts}");
    assert_eq!(counts["pyarrow"], total as u64, "{counts}");
    assert_eq!(counts["duckdb_distinct_span_ids"], total as u64, "{counts}");
}

#[test]
fn kill_9_during_compaction_loses_and_duplicates_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Small files every 100 ms and compaction as often, so kills land mid-compaction too.
    let mut server = Server::start_with(
        &data,
        &[
            "--flush-interval",
            "100ms",
            "--flush-bytes",
            "100000",
            "--compaction-interval",
            "100ms",
            "--compaction-min-files",
            "2",
            "--deletion-grace",
            "0s",
            "--query-max-rows",
            "10000000",
        ],
    );
    let acked = Arc::new(Mutex::new(HashSet::new()));
    for round in 0..3u64 {
        let sender = rt.spawn(send_until_dead(
            server.grpc_url(),
            server.otlp_http_url(),
            round * 100_000_000,
            Arc::clone(&acked),
        ));
        std::thread::sleep(Duration::from_millis(900 + round * 250));
        server.kill9();
        rt.block_on(sender).unwrap();
        server.restart();

        let expected = acked.lock().unwrap().clone();
        let stored = stored_span_ids(&server);
        let unique: HashSet<u64> = stored.iter().copied().collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "round {round}: duplicated spans after compaction and replay"
        );
        let lost = expected.difference(&unique).count();
        assert_eq!(
            lost,
            0,
            "round {round}: acknowledged spans lost; log:\n{}",
            server.log()
        );
    }
    assert!(
        server.log().contains("compacted"),
        "compaction should have run between the kills"
    );
    // Every file left is readable: a full scan touches them all.
    let body = server.sql("SELECT count(*) AS n, sum(length(span_name)) AS l FROM spans");
    assert!(body["data"][0]["n"].as_i64().unwrap() > 0);
}
