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
    /// Directory for the rounds' data directories (`round-1`, ...; a fresh temporary one by
    /// default).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Rounds of every stage; figures are medians over the rounds, and each ratio is taken
    /// within a round (the reference and the pipeline seconds apart), then the median.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    crate::loadgen::own_cpu()
}

#[derive(Debug, Clone, Copy)]
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

    let bodies = Arc::new(bodies);
    let tmp = tempfile::tempdir()?;
    let base = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut rounds = Vec::new();
    for round in 0..args.rounds.max(1) {
        let dir = base.join(format!("round-{}", round + 1));
        anyhow::ensure!(!dir.exists(), "{} already exists", dir.display());
        let r = ingest_round(&bodies, spans, args.concurrency, &dir).await?;
        println!(
            "round {}: decode {:.0}, decode + build {:.0}, durable {:.0}, flush {:.0} spans per CPU-second",
            round + 1,
            r.rate(Stage::Decode),
            r.rate(Stage::Build),
            r.rate(Stage::Durable),
            r.rate(Stage::Flush),
        );
        rounds.push(r);
    }

    println!(
        "\n| stage | spans per CPU-second | spans per wall-second | ratio to decode-only (CPU) | ratio, lowest - highest round |"
    );
    println!("|---|---:|---:|---:|---:|");
    for stage in Stage::ALL {
        let cpu = median(rounds.iter().map(|r| r.rate(stage)));
        let wall = median(rounds.iter().map(|r| r.wall_rate(stage)));
        let ratios: Vec<f64> = rounds
            .iter()
            .map(|r| r.rate(stage) / r.rate(Stage::Decode))
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "| {} | {cpu:.0} | {wall:.0} | {:.2} | {lo:.2} - {hi:.2} |",
            stage.name(),
            median(ratios.iter().copied()),
        );
    }
    let last = rounds.last().expect("at least one round");
    println!(
        "\nbytes per span: OTLP protobuf {:.1}, WAL (Arrow IPC) {:.1}, Parquet (zstd) {:.1}; {} file(s)",
        protobuf_bytes as f64 / spans as f64,
        last.wal_bytes as f64 / spans as f64,
        last.parquet_bytes as f64 / spans as f64,
        last.files
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Decode,
    Build,
    Durable,
    Flush,
    DurableAndFlush,
}

impl Stage {
    const ALL: [Stage; 5] = [
        Stage::Decode,
        Stage::Build,
        Stage::Durable,
        Stage::Flush,
        Stage::DurableAndFlush,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode only (prost)",
            Stage::Build => "decode + Arrow build",
            Stage::Durable => "durable ingest (WAL fsync, queryable)",
            Stage::Flush => "flush to Parquet",
            Stage::DurableAndFlush => "durable ingest + flush",
        }
    }
}

/// One round of `bench ingest`: every stage once, over the same requests.
struct Round {
    spans: usize,
    decode: Measure,
    build: Measure,
    durable: Measure,
    flush: Measure,
    wal_bytes: u64,
    parquet_bytes: u64,
    files: usize,
}

impl Round {
    fn measure(&self, stage: Stage) -> Measure {
        match stage {
            Stage::Decode => self.decode,
            Stage::Build => self.build,
            Stage::Durable => self.durable,
            Stage::Flush => self.flush,
            Stage::DurableAndFlush => Measure {
                wall: self.durable.wall + self.flush.wall,
                cpu: self.durable.cpu + self.flush.cpu,
            },
        }
    }

    fn rate(&self, stage: Stage) -> f64 {
        per_cpu_second(self.spans, &self.measure(stage))
    }

    fn wall_rate(&self, stage: Stage) -> f64 {
        per_wall_second(self.spans, &self.measure(stage))
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

async fn ingest_round(
    bodies: &Arc<Vec<bytes::Bytes>>,
    spans: usize,
    concurrency: usize,
    dir: &std::path::Path,
) -> anyhow::Result<Round> {
    let (_, decode) = measure(|| {
        for body in bodies.iter() {
            let r = ExportTraceServiceRequest::decode(&body[..]).expect("valid request");
            std::hint::black_box(r);
        }
    });
    let (_, build) = measure(|| {
        for body in bodies.iter() {
            let r = ExportTraceServiceRequest::decode(&body[..]).expect("valid request");
            std::hint::black_box(spanlake_collector::otlp::decode(&r).expect("decode"));
        }
    });

    let mut config = StoreConfig::new(dir);
    // Flush only at the end, so ingest and flush are measured apart.
    config.flush_interval = Duration::from_secs(3600);
    config.flush_bytes = usize::MAX;
    config.max_buffer_bytes = usize::MAX;
    let store = Store::open(config).await.context("open store")?;
    let sink: Arc<dyn SpanSink> = Arc::new(store.clone());
    let receiver = Receiver::new(sink);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (_, durable) = measure_async(async {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (receiver, bodies, next) =
                    (receiver.clone(), Arc::clone(bodies), Arc::clone(&next));
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(body) = bodies.get(i).cloned() else {
                            return;
                        };
                        receiver
                            .export("bench", TenantId::default_tenant(), move || {
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
    anyhow::ensure!(
        stats.rows as usize == spans,
        "flushed {} of {spans} spans",
        stats.rows
    );
    Ok(Round {
        spans,
        decode,
        build,
        durable,
        flush,
        wal_bytes,
        parquet_bytes: dir_bytes(dir, "parquet"),
        files: stats.files,
    })
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Spans to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: usize,
    /// Spans per Parquet file (one flush's worth).
    #[arg(long, default_value_t = 500_000)]
    pub file_spans: usize,
    /// Data directory to write into (the server's `--data-dir`).
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
}

/// Where `gen` leaves a sample of the trace ids it wrote, for `lookup`.
const SAMPLE_FILE: &str = "bench-trace-ids.txt";

/// `spanlake bench gen`: writes the realistic workload straight into Parquet files of a data
/// directory (no WAL), for query benchmarks at millions of spans.
pub async fn generate(args: GenArgs) -> anyhow::Result<()> {
    let store = Store::open(StoreConfig::new(&args.data_dir)).await?;
    let tenant = TenantId::default_tenant();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let mut sample = String::new();
    let started = Instant::now();
    let mut written = 0;
    let mut seed = 1;
    while written < args.spans {
        let n = args.file_spans.min(args.spans - written);
        let workload = Workload {
            seed,
            ..Workload::default()
        };
        seed += 1;
        let batches = tokio::task::spawn_blocking(move || {
            workload
                .requests(n, now)
                .iter()
                .map(|r| spanlake_collector::otlp::decode(r).map(|d| d.batch))
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        for batch in &batches {
            use arrow::array::{Array, AsArray};
            let ids = batch.column(0).as_string::<i32>();
            for i in (0..ids.len()).step_by(997) {
                sample.push_str(ids.value(i));
                sample.push('\n');
            }
        }
        let meta = store.import(&tenant, batches).await?;
        written += n;
        println!(
            "{written} spans written; file {} ({} bytes, {:.1} bytes/span)",
            meta.path,
            meta.size,
            meta.size as f64 / n as f64
        );
    }
    std::fs::write(args.data_dir.join(SAMPLE_FILE), sample)?;
    store.shutdown().await?;
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// A data directory filled by `spanlake bench gen`.
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// Trace lookups to time.
    #[arg(long, default_value_t = 100)]
    pub lookups: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `spanlake bench lookup`: trace by id without a time range, and searches, over a data
/// directory, through the same code the API uses.
pub async fn lookup(args: LookupArgs) -> anyhow::Result<()> {
    use spanlake_query::traceql::search as traceql;
    use spanlake_query::traces::{SearchQuery, Traces, Window};
    use spanlake_storage::{SegmentSource, TimeRange};
    let ids: Vec<String> = std::fs::read_to_string(args.data_dir.join(SAMPLE_FILE))
        .context("no trace id sample: run `spanlake bench gen` on this directory first")?
        .lines()
        .map(str::to_string)
        .collect();
    let mut config = StoreConfig::new(&args.data_dir);
    config.flush_interval = Duration::from_secs(3600);
    let store = Store::open(config).await?;
    let tenant = TenantId::default_tenant();
    let all = store.snapshot(&tenant, &TimeRange::ALL, &[]);
    let spans: u64 = all.files.iter().map(|f| f.meta.rows).sum();
    let bytes: u64 = all.files.iter().map(|f| f.meta.size).sum();
    println!(
        "{spans} spans in {} files, {:.1} bytes/span",
        all.files.len(),
        bytes as f64 / spans.max(1) as f64
    );
    let engine = Arc::new(spanlake_query::QueryEngine::new(
        Arc::new(store.clone()),
        spanlake_query::QueryLimits::default(),
    )?);
    let traces = Traces::new(engine);

    let mut times = Vec::new();
    let mut files = Vec::new();
    let mut found_spans = 0;
    // The first lookup also warms the Parquet metadata cache, as a running server would be.
    traces.trace(&tenant, &ids[0]).await?;
    for i in 0..args.lookups {
        let id = &ids[(i * 7919) % ids.len()];
        files.push(
            store
                .snapshot(&tenant, &TimeRange::ALL, std::slice::from_ref(id))
                .files
                .len(),
        );
        let started = Instant::now();
        let trace = traces
            .trace(&tenant, id)
            .await?
            .context("sampled trace not found")?;
        times.push(started.elapsed());
        found_spans += trace.summary.span_count;
    }
    times.sort();
    files.sort();
    println!(
        "trace by id, no time range ({} lookups, {:.1} spans each): p50 {:.1} ms, p99 {:.1} ms; files opened p50 {}, max {}",
        args.lookups,
        found_spans as f64 / args.lookups as f64,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        files[files.len() / 2],
        files[files.len() - 1]
    );

    let window = Window::last(Duration::from_secs(24 * 3600));
    let mut by_service = SearchQuery::new(window);
    by_service.service = Some("service-03".into());
    by_service.min_duration_ns = Some(500_000_000);
    let mut by_attribute = SearchQuery::new(window);
    by_attribute.attributes = vec![("http.route".into(), "/api/checkout".into())];
    // Reads the whole window: only the row groups' attribute value filters spare it.
    let mut by_absent_value = SearchQuery::new(window);
    by_absent_value.attributes = vec![("enduser.id".into(), "nobody".into())];
    for (name, query) in [
        ("service + min duration 500ms", by_service),
        ("attribute http.route=/api/checkout", by_attribute),
        (
            "attribute enduser.id=nobody (no span has it)",
            by_absent_value,
        ),
    ] {
        let mut times = Vec::new();
        let mut hits = 0;
        for _ in 0..10 {
            let started = Instant::now();
            hits = traces.search(&tenant, &query).await?.len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "search {name} (limit 20, {hits} hits): p50 {:.1} ms, p99 {:.1} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }

    // TraceQL, compiled to DataFusion: a structural query and a pipeline.
    for q in [
        r#"{ resource.service.name = "service-00" } >> { status = error }"#,
        r#"{ resource.service.name = "service-03" && duration > 500ms } | count() > 1"#,
    ] {
        let request = traceql::SearchRequest::parse(q, window, 20, 3)?;
        let mut times = Vec::new();
        let mut outcome = traceql::Outcome::default();
        for _ in 0..5 {
            let started = Instant::now();
            outcome = traceql::search(&traces, &tenant, &request).await?;
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "traceql {q} (limit 20, {} hits): p50 {:.1} ms, p99 {:.1} ms; read {:.1} MB, {} span rows",
            outcome.traces.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            outcome.bytes_read as f64 / 1e6,
            outcome.spans_read
        );
    }
    Ok(())
}
