//! `spanlake loadgen` against a server it starts, over gRPC and HTTP: every span it reports as
//! accepted is in the server's store, and it reports the figures BENCHMARKS.md quotes.

mod common;

use common::Server;

fn loadgen(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .arg("loadgen")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number after `label` in the report.
fn figure(report: &str, label: &str) -> f64 {
    let at = report
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} not in {report}"));
    report[at + label.len()..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|s| !s.is_empty())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn loadgen_counts_what_the_server_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let grpc = loadgen(&[
        "--endpoint",
        &server.grpc_url(),
        "--protocol",
        "grpc",
        "--duration",
        "2s",
        "--connections",
        "4",
        "--pool-spans",
        "20000",
        "--spans-per-trace",
        "7",
        "--fan-out",
        "2",
        "--extra-attributes",
        "3",
    ]);
    let http = loadgen(&[
        "--endpoint",
        &format!("http://{}", server.otlp_http),
        "--protocol",
        "http",
        "--gzip",
        "--duration",
        "2s",
        "--rate",
        "5000",
        "--pool-spans",
        "5000",
    ]);
    let accepted = figure(&grpc, "accepted: ") + figure(&http, "accepted: ");
    assert!(figure(&grpc, "accepted: ") > 0.0, "{grpc}");
    // 2 s at 5 000 spans/s offered, in requests of ~512 spans.
    let offered = figure(&http, "accepted: ");
    assert!((5_000.0..=12_000.0).contains(&offered), "{http}");
    for report in [&grpc, &http] {
        assert!(report.contains("failed: 0"), "{report}");
        assert!(
            report.contains("export latency (accepted): p50"),
            "{report}"
        );
    }
    // Pools repeat after --pool-spans, so count rows, not distinct ids.
    assert_eq!(server.count("spans") as f64, accepted);
    assert_eq!(
        server.count("spans WHERE attributes['app.extra.2'] IS NOT NULL") as f64,
        figure(&grpc, "accepted: ")
    );
    // --fan-out 2: no span of the gRPC run has more than two children (random trees do).
    let children = server.sql(
        "SELECT max(c) AS most FROM (SELECT count(DISTINCT span_id) AS c FROM spans \
         WHERE attributes['app.extra.0'] IS NOT NULL AND parent_span_id <> '' \
         GROUP BY trace_id, parent_span_id)",
    );
    assert_eq!(children["data"][0]["most"], 2, "{children}");
}

#[test]
fn loadgen_starts_and_measures_its_own_server() {
    let dir = tempfile::tempdir().unwrap();
    let report = loadgen(&[
        "--duration",
        "2s",
        "--pool-spans",
        "10000",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(figure(&report, "accepted: ") > 0.0, "{report}");
    for line in [
        "reference: prost decode-only",
        "server idle: RSS",
        "CPU-s per million spans",
        "ingest efficiency",
        "server RSS: idle",
    ] {
        assert!(report.contains(line), "{line:?} missing from {report}");
    }
    // The server it started wrote where it was told.
    assert!(dir.path().join("data/wal").exists());
}
