//! `--retention` on the real binary: files whose spans are all older than the retention leave
//! queries and then the disk, for every tenant; newer files stay.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, eventually};
use reqwest::blocking::Client;
use serde_json::json;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Sends one span of trace `trace` starting at `start_ns` for `tenant`.
fn send(server: &Server, tenant: &str, trace: &str, start_ns: u64) {
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "op", "kind": 2,
            "startTimeUnixNano": start_ns.to_string(),
            "endTimeUnixNano": (start_ns + 1_000_000).to_string()
        }]}]
    }]});
    let response = Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", tenant)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn parquet_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn count(server: &Server, tenant: &str, trace: &str) -> i64 {
    let (status, body) = server.sql_status(
        &format!("SELECT count(*) AS n FROM spans WHERE trace_id = '{trace}'"),
        Some(tenant),
    );
    assert_eq!(status, 200, "{body}");
    body["data"][0]["n"].as_i64().unwrap()
}

#[test]
fn retention_deletes_old_files_of_every_tenant_and_keeps_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        &[
            "--retention",
            "1h",
            "--retention-interval",
            "100ms",
            // Not 0s: a query that took its snapshot just before a file expired still reads
            // it (with no grace, such a query fails on the deleted file).
            "--deletion-grace",
            "1s",
            "--flush-interval",
            "100ms",
        ],
    );
    let (old, new) = (
        "0af7651916cd43dd8448eb211c80319c",
        "5b8efff798038103d269b633813fc60c",
    );
    let two_hours_ago = now_ns() - 2 * 3600 * 1_000_000_000;
    for tenant in ["a", "b"] {
        send(&server, tenant, new, now_ns());
    }
    // The recent spans reach a file before the old ones arrive, so the old ones get files of
    // their own.
    assert!(eventually(Duration::from_secs(10), || parquet_files(&data)
        .len()
        == 2));
    for tenant in ["a", "b"] {
        send(&server, tenant, old, two_hours_ago);
    }
    for tenant in ["a", "b"] {
        assert!(
            eventually(Duration::from_secs(10), || count(&server, tenant, old) == 0),
            "old spans of tenant {tenant} are still there:\n{}",
            server.log()
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || parquet_files(&data).len() == 2),
        "expired files are still on disk: {:?}",
        parquet_files(&data)
    );
    // Several retention passes later, the recent spans are all there.
    std::thread::sleep(Duration::from_millis(500));
    for tenant in ["a", "b"] {
        assert_eq!(count(&server, tenant, new), 1);
    }
    let metrics = Client::new()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("spanlake_retention_deleted_files_total 2"),
        "{metrics}"
    );
    assert!(server.log().contains("expired files past the retention"));
}
