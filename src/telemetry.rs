//! Self-monitoring: the process's metrics in Prometheus text format on `GET /metrics`.
//!
//! The crates record through the `metrics` facade (the collector: requests, spans and bytes by
//! protocol and outcome, export latency; the store: WAL fsync latency and bytes, flush
//! durations and failures); this module installs the Prometheus recorder, times every query
//! API request by route, and samples the store's and the process's sizes when scraped.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use spanlake_query::QueryEngine;
use spanlake_storage::Store;

/// Histogram buckets of latencies, in seconds: 100 µs to 1 min.
const SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// What `/metrics` reads: the recorder and, once open, the store.
#[derive(Clone)]
pub struct Telemetry {
    handle: PrometheusHandle,
    store: Arc<OnceLock<Store>>,
    engine: Arc<OnceLock<QueryEngine>>,
}

impl Telemetry {
    /// Installs the process-wide recorder. Call once, before anything records.
    pub fn install() -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &SECONDS)?
            .install_recorder()?;
        describe();
        Ok(Self {
            handle,
            store: Arc::new(OnceLock::new()),
            engine: Arc::new(OnceLock::new()),
        })
    }

    /// The store to report sizes of, once it is open.
    pub fn watch_store(&self, store: Store) {
        let _ = self.store.set(store);
    }

    /// The query engine whose threads to report on.
    pub fn watch_engine(&self, engine: QueryEngine) {
        let _ = self.engine.set(engine);
    }
}

fn describe() {
    describe_counter!(
        "spanlake_otlp_requests_total",
        "OTLP export requests by protocol and outcome (ok, or why they were refused)"
    );
    describe_counter!(
        "spanlake_otlp_spans_accepted_total",
        "Spans stored durably by protocol"
    );
    describe_counter!(
        "spanlake_otlp_spans_rejected_total",
        "Spans refused one by one through OTLP partial success, by protocol and reason"
    );
    describe_counter!(
        "spanlake_otlp_spans_flagged_total",
        "Spans accepted with a warning (end before start, start before 2000 or a day ahead)"
    );
    describe_counter!(
        "spanlake_otlp_received_bytes_total",
        Unit::Bytes,
        "Bytes of OTLP request bodies as received (compressed)"
    );
    describe_histogram!(
        "spanlake_otlp_export_duration_seconds",
        Unit::Seconds,
        "Time from receiving an export request to answering it (durable)"
    );
    describe_histogram!(
        "spanlake_wal_fsync_duration_seconds",
        Unit::Seconds,
        "fdatasync of one WAL group commit"
    );
    describe_counter!(
        "spanlake_wal_written_bytes_total",
        Unit::Bytes,
        "Bytes appended to the write-ahead log"
    );
    describe_gauge!(
        "spanlake_wal_segment_bytes",
        Unit::Bytes,
        "Size of the WAL segment being written"
    );
    describe_histogram!(
        "spanlake_flush_duration_seconds",
        Unit::Seconds,
        "Writing buffered spans to Parquet files"
    );
    describe_counter!(
        "spanlake_flushed_spans_total",
        "Spans written to Parquet by flushes"
    );
    describe_counter!(
        "spanlake_flushed_bytes_total",
        Unit::Bytes,
        "Parquet bytes written by flushes"
    );
    describe_counter!(
        "spanlake_flush_failures_total",
        "Flushes of a tenant that failed (its spans stay in memory and the WAL)"
    );
    describe_histogram!(
        "spanlake_compaction_duration_seconds",
        Unit::Seconds,
        "Merging one group of small files into one"
    );
    describe_counter!(
        "spanlake_compacted_files_total",
        "Small files merged away by compaction"
    );
    describe_counter!(
        "spanlake_quarantined_files_total",
        "Damaged Parquet files moved to quarantine/ at start"
    );
    describe_counter!(
        "spanlake_retention_deleted_files_total",
        "Parquet files deleted because all their spans were older than --retention"
    );
    describe_counter!(
        "spanlake_retention_deleted_bytes_total",
        Unit::Bytes,
        "Bytes of the Parquet files deleted by retention"
    );
    describe_gauge!(
        "spanlake_buffered_bytes",
        Unit::Bytes,
        "Spans in memory waiting for a flush"
    );
    describe_gauge!("spanlake_storage_files", "Parquet files in the catalog");
    describe_gauge!(
        spanlake_query::admission::RUNNING,
        "Queries running (every API, the explorer and Flight SQL)"
    );
    describe_gauge!(
        spanlake_query::admission::QUEUED,
        "Queries waiting for a turn to run"
    );
    describe_counter!(
        spanlake_query::admission::QUERIES,
        "Queries by outcome: ok, error, refused (too many queries), too_large (refused at \
         planning), timeout, memory, cancelled (client gone or server stopping)"
    );
    describe_gauge!(
        "spanlake_query_tasks",
        "Tasks alive on the query threads: running queries' and the work their plans spawned"
    );
    describe_gauge!(
        "spanlake_storage_bytes",
        Unit::Bytes,
        "Bytes of the Parquet files in the catalog"
    );
    describe_counter!(
        "spanlake_http_requests_total",
        "Query API requests (native, Jaeger, Tempo, SQL, UI) by route and status"
    );
    describe_histogram!(
        "spanlake_http_request_duration_seconds",
        Unit::Seconds,
        "Query API request latency by route"
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the process"
    );
}

/// `GET /metrics`.
pub async fn render(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    if let Some(store) = telemetry.store.get() {
        let (files, bytes) = store.disk_usage();
        metrics::gauge!("spanlake_storage_files").set(files as f64);
        metrics::gauge!("spanlake_storage_bytes").set(bytes as f64);
        metrics::gauge!("spanlake_buffered_bytes").set(store.buffered_bytes() as f64);
    }
    if let Some(engine) = telemetry.engine.get() {
        metrics::gauge!("spanlake_query_tasks").set(engine.executor().alive_tasks() as f64);
    }
    if let Some(rss) = resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry.handle.render(),
    )
}

/// Counts and times a query API request by its route (not its path, so ids do not multiply
/// the series).
pub async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("spanlake_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("spanlake_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// VmRSS of this process, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
