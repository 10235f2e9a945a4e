//! `spanlake bench ingest`: the durable ingest pipeline against its reference runs, in one
//! process on one machine, so every figure is also a ratio.
//!
//! 1. decode-only: `prost` decode of the pre-encoded requests (the floor any OTLP receiver pays);
//! 2. decode + Arrow build (`otlp::decode`);
//! 3. durable ingest: decode, build, WAL append with fsync (group commit, many concurrent
//!    exporters), visible to queries; then the flush to Parquet.
//!
//! CPU time is the process's user+system time from `/proc/self/stat`, so the figures are per
//! CPU-second and do not depend on how many cores were free.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanlake_collector::Receiver;
use spanlake_storage::{SpanSink, Store, StoreConfig, TenantId};

use crate::workload::Workload;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Spans to send.
    #[arg(long, default_value_t = 500_000)]
    pub spans: usize,
    /// Spans per export request (the SDKs' default batch is 512).
    #[arg(long, default_value_t = 512)]
    pub spans_per_request: usize,
    /// Concurrent exporters.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Data directory (a fresh temporary one by default).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // Linux reports these in USER_HZ, 100 on every mainstream configuration.
    Duration::from_millis(ticks * 10)
}

struct Measure {
    wall: Duration,
    cpu: Duration,
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Measure) {
    let (w, c) = (Instant::now(), cpu_time());
    let out = f();
    (
        out,
        Measure {
            wall: w.elapsed(),
            cpu: cpu_time() - c,
        },
    )
}

async fn measure_async<T>(f: impl std::future::Future<Output = T>) -> (T, Measure) {
    let (w, c) = (Instant::now(), cpu_time());
    let out = f.await;
    (
        out,
        Measure {
            wall: w.elapsed(),
            cpu: cpu_time() - c,
        },
    )
}

fn per_cpu_second(spans: usize, m: &Measure) -> f64 {
    spans as f64 / m.cpu.as_secs_f64().max(1e-9)
}

fn per_wall_second(spans: usize, m: &Measure) -> f64 {
    spans as f64 / m.wall.as_secs_f64().max(1e-9)
}

fn dir_bytes(dir: &std::path::Path, ext: &str) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let workload = Workload {
        spans_per_request: args.spans_per_request,
        ..Workload::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let bodies: Vec<bytes::Bytes> = workload
        .requests(args.spans, now)
        .iter()
        .map(|r| r.encode_to_vec().into())
        .collect();
    let spans = args.spans;
    let protobuf_bytes: usize = bodies.iter().map(|b| b.len()).sum();
    println!(
        "workload: {spans} spans in {} requests, {} services, {} spans/trace, {:.1} protobuf bytes/span",
        bodies.len(),
        workload.services,
        workload.spans_per_trace,
        protobuf_bytes as f64 / spans as f64
    );

    let (_, decode) = measure(|| {
        for body in &bodies {
            let r = ExportTraceServiceRequest::decode(&body[..]).expect("valid request");
            std::hint::black_box(r);
        }
    });
    let (_, build) = measure(|| {
        for body in &bodies {
            let r = ExportTraceServiceRequest::decode(&body[..]).expect("valid request");
            std::hint::black_box(spanlake_collector::otlp::decode(&r).expect("decode"));
        }
    });

    let tmp = tempfile::tempdir()?;
    let dir = args.data_dir.unwrap_or_else(|| tmp.path().join("data"));
    let mut config = StoreConfig::new(&dir);
    // Flush only at the end, so ingest and flush are measured apart.
    config.flush_interval = Duration::from_secs(3600);
    config.flush_bytes = usize::MAX;
    config.max_buffer_bytes = usize::MAX;
    let store = Store::open(config).await.context("open store")?;
    let sink: Arc<dyn SpanSink> = Arc::new(store.clone());
    let receiver = Receiver::new(sink);
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (_, durable) = measure_async(async {
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (receiver, bodies, next) =
                    (receiver.clone(), Arc::clone(&bodies), Arc::clone(&next));
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(body) = bodies.get(i).cloned() else {
                            return;
                        };
                        receiver
                            .export(TenantId::default_tenant(), move || {
                                ExportTraceServiceRequest::decode(&body[..]).map_err(|e| {
                                    spanlake_collector::Error::Decode {
                                        format: "protobuf",
                                        reason: e.to_string(),
                                    }
                                })
                            })
                            .await
                            .expect("export");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("exporter task");
        }
    })
    .await;
    let wal_bytes = dir_bytes(&dir.join("wal"), "wal");
    let (stats, flush) = measure_async(store.shutdown()).await;
    let stats = stats?;
    let parquet_bytes = dir_bytes(&dir, "parquet");
    anyhow::ensure!(
        stats.rows as usize == spans,
        "flushed {} of {spans} spans",
        stats.rows
    );

    let decode_rate = per_cpu_second(spans, &decode);
    let rows = [
        (
            "decode only (prost)",
            per_cpu_second(spans, &decode),
            per_wall_second(spans, &decode),
        ),
        (
            "decode + Arrow build",
            per_cpu_second(spans, &build),
            per_wall_second(spans, &build),
        ),
        (
            "durable ingest (WAL fsync, queryable)",
            per_cpu_second(spans, &durable),
            per_wall_second(spans, &durable),
        ),
        (
            "flush to Parquet",
            per_cpu_second(spans, &flush),
            per_wall_second(spans, &flush),
        ),
    ];
    println!(
        "\n| stage | spans per CPU-second | spans per wall-second | ratio to decode-only (CPU) |"
    );
    println!("|---|---:|---:|---:|");
    for (name, cpu, wall) in rows {
        println!(
            "| {name} | {cpu:.0} | {wall:.0} | {:.2} |",
            cpu / decode_rate
        );
    }
    let total = Measure {
        wall: durable.wall + flush.wall,
        cpu: durable.cpu + flush.cpu,
    };
    println!(
        "| durable ingest + flush | {:.0} | {:.0} | {:.2} |",
        per_cpu_second(spans, &total),
        per_wall_second(spans, &total),
        per_cpu_second(spans, &total) / decode_rate
    );
    println!(
        "\nbytes per span: OTLP protobuf {:.1}, WAL (Arrow IPC) {:.1}, Parquet (zstd) {:.1}; {} file(s)",
        protobuf_bytes as f64 / spans as f64,
        wal_bytes as f64 / spans as f64,
        parquet_bytes as f64 / spans as f64,
        stats.files
    );
    Ok(())
}
