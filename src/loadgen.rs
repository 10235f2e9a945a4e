//! `spanlake loadgen`: realistic OTLP traffic over the wire, against a running server or one it
//! starts, reporting what a capacity planner needs: accepted spans per second, export latency,
//! refusals, and the server's CPU seconds and resident memory per million spans.
//!
//! Requests are built and protobuf-encoded before the clock starts (a pool that is sent round
//! and round), so the load generator spends its CPU on the network, not on building spans; the
//! server's CPU time and memory are read from `/proc/<pid>`, so they do not include ours.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes};
use clap::{Args, ValueEnum};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use parking_lot::Mutex;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// OTLP endpoint of a running server (`http://host:4317` for gRPC, `http://host:4318` for
    /// HTTP). Without it, loadgen starts `spanlake serve` from this binary on free local ports
    /// with a fresh data directory, measures it and stops it.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Process id of the server at `--endpoint`, to report its CPU time and memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Extra arguments for the server loadgen starts (repeat, e.g. `--server-arg=--flush-bytes=67108864`).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Data directory of the server loadgen starts (a temporary one by default).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Concurrent connections (gRPC: one HTTP/2 connection each; HTTP: one HTTP/1.1 each).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Offered load in spans per second; 0 sends as fast as the server answers (each connection
    /// waits for its answer). With a rate, requests leave on schedule whether or not earlier ones
    /// were answered, as many SDKs' batch processors do, up to `--max-in-flight`; beyond that
    /// they are dropped on the client and counted, as an SDK's full queue drops them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Requests waiting for an answer at most, with `--rate`.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Distinct spans in the pre-encoded pool; they repeat after that (same ids).
    #[arg(long, default_value_t = 500_000)]
    pub pool_spans: usize,
    #[arg(long, default_value_t = 512)]
    pub spans_per_request: usize,
    #[arg(long, default_value_t = 8)]
    pub services: usize,
    #[arg(long, default_value_t = 10)]
    pub spans_per_trace: usize,
    /// Children per span (k-ary call trees); random parents when not set.
    #[arg(long)]
    pub fan_out: Option<usize>,
    /// Attributes per span beyond the ~10 of HTTP/DB instrumentation.
    #[arg(long, default_value_t = 0)]
    pub extra_attributes: usize,
    /// Bytes of each extra attribute's value.
    #[arg(long, default_value_t = 16)]
    pub extra_attribute_bytes: usize,
    #[arg(long, default_value_t = 0.05)]
    pub error_rate: f64,
    /// gzip the HTTP bodies (OTLP/HTTP `Content-Encoding: gzip`) or ask tonic to gzip gRPC.
    #[arg(long)]
    pub gzip: bool,
    /// Print a progress line this often.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub report_every: Duration,
}

/// The gRPC codec for pre-encoded requests: the body goes out as it is.
#[derive(Debug, Default, Clone)]
struct Preencoded;

impl Codec for Preencoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        Self
    }
    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for Preencoded {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Preencoded {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let response = ExportTraceServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(Some(response))
    }
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One pre-encoded request and how many spans it carries.
struct Body {
    bytes: Bytes,
    spans: u64,
}

/// How one export went.
enum Outcome {
    /// Accepted, minus the spans the server rejected through partial success.
    Accepted { spans: u64, rejected: u64 },
    /// Refused as a whole: 429/503, RESOURCE_EXHAUSTED/UNAVAILABLE (the client should retry).
    Refused,
    /// Any other failure.
    Failed(String),
}

#[derive(Clone)]
enum Sender {
    Grpc(Vec<tonic::transport::Channel>, bool),
    Http(reqwest::Client, String, bool),
}

impl Sender {
    async fn send(&self, connection: usize, body: &Body) -> Outcome {
        match self {
            Sender::Grpc(channels, gzip) => {
                let channel = channels[connection % channels.len()].clone();
                let mut grpc = tonic::client::Grpc::new(channel);
                if *gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                if let Err(e) = grpc.ready().await {
                    return Outcome::Failed(e.to_string());
                }
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                match grpc
                    .unary(tonic::Request::new(body.bytes.clone()), path, Preencoded)
                    .await
                {
                    Ok(response) => {
                        let rejected = response
                            .into_inner()
                            .partial_success
                            .map_or(0, |p| p.rejected_spans as u64);
                        Outcome::Accepted {
                            spans: body.spans - rejected,
                            rejected,
                        }
                    }
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                        ) =>
                    {
                        Outcome::Refused
                    }
                    Err(status) => Outcome::Failed(format!("{status}")),
                }
            }
            Sender::Http(client, url, gzip) => {
                let mut request = client
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(body.bytes.clone());
                if *gzip {
                    request = request.header("content-encoding", "gzip");
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let rejected = match response.bytes().await {
                            Ok(b) => ExportTraceServiceResponse::decode(b)
                                .ok()
                                .and_then(|r| r.partial_success)
                                .map_or(0, |p| p.rejected_spans as u64),
                            Err(e) => return Outcome::Failed(e.to_string()),
                        };
                        Outcome::Accepted {
                            spans: body.spans - rejected,
                            rejected,
                        }
                    }
                    Ok(response) if matches!(response.status().as_u16(), 429 | 502 | 503 | 504) => {
                        Outcome::Refused
                    }
                    Ok(response) => Outcome::Failed(format!("HTTP {}", response.status())),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        }
    }
}

/// Counters shared by the senders and the reporter.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    refused_requests: AtomicU64,
    refused_spans: AtomicU64,
    dropped_requests: AtomicU64,
    dropped_spans: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    /// Latency of accepted exports, in microseconds.
    latencies: Mutex<Vec<u32>>,
}

impl Tally {
    fn record(&self, outcome: Outcome, spans: u64, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Accepted { spans, rejected } => {
                self.accepted.fetch_add(spans, Ordering::Relaxed);
                self.rejected.fetch_add(rejected, Ordering::Relaxed);
                self.latencies
                    .lock()
                    .push(latency.as_micros().min(u32::MAX as u128) as u32);
            }
            Outcome::Refused => {
                self.refused_requests.fetch_add(1, Ordering::Relaxed);
                self.refused_spans.fetch_add(spans, Ordering::Relaxed);
            }
            Outcome::Failed(reason) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_failure.lock().get_or_insert(reason);
            }
        }
    }
}

/// CPU time (user + system) and resident memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    cpu: Duration,
    rss: u64,
    peak_rss: u64,
}

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit(')').next()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)?
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        // USER_HZ is 100 on every mainstream Linux configuration.
        cpu: Duration::from_millis(ticks * 10),
        rss: kib("VmRSS:") * 1024,
        peak_rss: kib("VmHWM:") * 1024,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `spanlake serve` this run started; killed when dropped.
struct SpawnedServer {
    child: Child,
    _data: Option<tempfile::TempDir>,
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_server(args: &LoadgenArgs) -> anyhow::Result<(SpawnedServer, String)> {
    let (temp, dir) = match &args.data_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let t = tempfile::tempdir()?;
            let dir = t.path().join("data");
            (Some(t), dir)
        }
    };
    let (grpc, otlp_http, api, flight) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{otlp_http}")])
        .args(["--http-addr", &format!("127.0.0.1:{api}")])
        .args(["--flight-addr", &format!("127.0.0.1:{flight}")])
        .args(&args.server_args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start spanlake serve")?;
    let server = SpawnedServer { child, _data: temp };
    let ready = format!("http://127.0.0.1:{api}/readyz");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server did not become ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let endpoint = match args.protocol {
        Protocol::Grpc => format!("http://127.0.0.1:{grpc}"),
        Protocol::Http => format!("http://127.0.0.1:{otlp_http}"),
    };
    Ok((server, endpoint))
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

/// This process's CPU time (user + system) so far.
pub fn own_cpu() -> Duration {
    proc_sample(std::process::id()).map_or(Duration::ZERO, |s| s.cpu)
}

pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let workload = Workload {
        services: args.services,
        spans_per_trace: args.spans_per_trace.max(1),
        spans_per_request: args.spans_per_request.max(1),
        error_rate: args.error_rate,
        fan_out: args.fan_out,
        extra_attributes: args.extra_attributes,
        extra_attribute_bytes: args.extra_attribute_bytes,
        ..Workload::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let requests = workload.requests(args.pool_spans.max(1), now);
    let mut bodies: Vec<Body> = Vec::with_capacity(requests.len());
    let mut protobuf_bytes = 0usize;
    for r in &requests {
        let spans: u64 = r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len() as u64)
            .sum();
        let raw = r.encode_to_vec();
        protobuf_bytes += raw.len();
        let bytes = if args.gzip && args.protocol == Protocol::Http {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw)?;
            gz.finish()?.into()
        } else {
            raw.into()
        };
        bodies.push(Body { bytes, spans });
    }
    drop(requests);
    let pool_spans: u64 = bodies.iter().map(|b| b.spans).sum();

    // The reference run: prost decode of the same requests, in this process.
    let decode_cpu = {
        let (c, mut decoded) = (own_cpu(), 0u64);
        let wall = Instant::now();
        while wall.elapsed() < Duration::from_secs(2) || decoded < 100_000 {
            for body in bodies.iter().take(200) {
                let raw: Bytes = if args.gzip && args.protocol == Protocol::Http {
                    // The pool holds gzip bodies; decode needs the protobuf.
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&body.bytes[..]),
                        &mut out,
                    )?;
                    out.into()
                } else {
                    body.bytes.clone()
                };
                std::hint::black_box(ExportTraceServiceRequest::decode(raw)?);
                decoded += body.spans;
            }
        }
        decoded as f64 / (own_cpu() - c).as_secs_f64().max(1e-3)
    };

    let (server, endpoint) = match &args.endpoint {
        Some(e) => (None, e.clone()),
        None => {
            let (s, e) = spawn_server(&args).await?;
            (Some(s), e)
        }
    };
    let pid = server.as_ref().map(|s| s.child.id()).or(args.server_pid);
    println!(
        "loadgen: {:?} to {endpoint}, {} connections, {}; pool {} spans in {} requests, {:.1} protobuf bytes/span{}",
        args.protocol,
        args.connections,
        if args.rate == 0 {
            "as fast as answered".to_string()
        } else {
            format!("offered {} spans/s", args.rate)
        },
        pool_spans,
        bodies.len(),
        protobuf_bytes as f64 / pool_spans.max(1) as f64,
        if args.gzip { ", gzip" } else { "" },
    );
    println!("reference: prost decode-only {decode_cpu:.0} spans per CPU-second (this process)");

    let sender = match args.protocol {
        Protocol::Grpc => {
            let mut channels = Vec::with_capacity(args.connections);
            for _ in 0..args.connections {
                channels.push(
                    tonic::transport::Endpoint::from_shared(endpoint.clone())?
                        .connect()
                        .await
                        .with_context(|| format!("connect to {endpoint}"))?,
                );
            }
            Sender::Grpc(channels, args.gzip)
        }
        Protocol::Http => {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(args.connections)
                .build()?;
            Sender::Http(
                client,
                format!("{}/v1/traces", endpoint.trim_end_matches('/')),
                args.gzip,
            )
        }
    };

    // Let the server settle, then take its idle memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = pid.and_then(proc_sample);
    if let Some(s) = idle {
        println!("server idle: RSS {:.1} MB", s.rss as f64 / 1e6);
    }

    let bodies = Arc::new(bodies);
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    if args.rate == 0 {
        for connection in 0..args.connections {
            let (sender, bodies, tally, next) = (
                sender.clone(),
                Arc::clone(&bodies),
                Arc::clone(&tally),
                Arc::clone(&next),
            );
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    let body = &bodies[next.fetch_add(1, Ordering::Relaxed) % bodies.len()];
                    let t = Instant::now();
                    let outcome = sender.send(connection, body).await;
                    if matches!(outcome, Outcome::Refused) {
                        // A refused client backs off before its next try, as SDKs do.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    tally.record(outcome, body.spans, t.elapsed());
                }
            });
        }
    } else {
        let (sender, bodies, tally) = (sender.clone(), Arc::clone(&bodies), Arc::clone(&tally));
        let max_in_flight = args.max_in_flight.max(1);
        let spans_per_request = pool_spans as f64 / bodies.len() as f64;
        let interval = Duration::from_secs_f64(spans_per_request / args.rate as f64);
        tasks.spawn(async move {
            let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent = 0usize;
            let mut senders = tokio::task::JoinSet::new();
            while Instant::now() < deadline {
                ticker.tick().await;
                let i = sent;
                sent += 1;
                let body_spans = bodies[i % bodies.len()].spans;
                let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                    tally.dropped_requests.fetch_add(1, Ordering::Relaxed);
                    tally.dropped_spans.fetch_add(body_spans, Ordering::Relaxed);
                    continue;
                };
                let (sender, bodies, tally) =
                    (sender.clone(), Arc::clone(&bodies), Arc::clone(&tally));
                senders.spawn(async move {
                    let body = &bodies[i % bodies.len()];
                    let t = Instant::now();
                    let outcome = sender.send(i, body).await;
                    tally.record(outcome, body.spans, t.elapsed());
                    drop(permit);
                });
                while senders.try_join_next().is_some() {}
            }
            while senders.join_next().await.is_some() {}
        });
    }

    // Progress lines, and the server's memory sampled every 250 ms.
    let before = pid.and_then(proc_sample);
    let mut peak_rss = 0u64;
    let mut rss_timeline: Vec<(f64, u64)> = Vec::new();
    let mut last_report = (Instant::now(), 0u64, before.map(|s| s.cpu));
    println!(
        "\n{:>6} | {:>12} | {:>9} | {:>9} | {:>10} | {:>9}",
        "t (s)", "accepted/s", "refused", "dropped", "server RSS", "server CPU"
    );
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => {
                if let Some(Err(e)) = joined {
                    bail!("sender task: {e}");
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let sample = pid.and_then(proc_sample);
        if let Some(s) = sample {
            peak_rss = peak_rss.max(s.rss);
            rss_timeline.push((start.elapsed().as_secs_f64(), s.rss));
        }
        if last_report.0.elapsed() >= args.report_every || tasks.is_empty() {
            let accepted = tally.accepted.load(Ordering::Relaxed);
            let secs = last_report.0.elapsed().as_secs_f64();
            let cpu = sample.map(|s| s.cpu);
            let cpu_pct = match (cpu, last_report.2) {
                (Some(now), Some(then)) => {
                    format!("{:.0}%", (now - then).as_secs_f64() / secs * 100.0)
                }
                _ => "-".into(),
            };
            println!(
                "{:>6.1} | {:>12.0} | {:>9} | {:>9} | {:>10} | {:>9}",
                start.elapsed().as_secs_f64(),
                (accepted - last_report.1) as f64 / secs,
                tally.refused_spans.load(Ordering::Relaxed),
                tally.dropped_spans.load(Ordering::Relaxed),
                sample.map_or("-".into(), |s| format!("{:.0} MB", s.rss as f64 / 1e6)),
                cpu_pct,
            );
            last_report = (Instant::now(), accepted, cpu);
        }
    }
    let wall = start.elapsed();
    let after = pid.and_then(proc_sample);

    let accepted = tally.accepted.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *tally.latencies.lock());
    latencies.sort_unstable();
    println!("\nsent for {:.1} s", wall.as_secs_f64());
    println!(
        "accepted: {accepted} spans, {:.0} spans/s; {} rejected through partial success",
        accepted as f64 / wall.as_secs_f64(),
        tally.rejected.load(Ordering::Relaxed)
    );
    println!(
        "refused by the server: {} requests ({} spans); dropped on the client (in flight full): {} requests ({} spans); failed: {}",
        tally.refused_requests.load(Ordering::Relaxed),
        tally.refused_spans.load(Ordering::Relaxed),
        tally.dropped_requests.load(Ordering::Relaxed),
        tally.dropped_spans.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    if let Some(reason) = tally.first_failure.lock().as_ref() {
        println!("first failure: {reason}");
    }
    println!(
        "export latency (accepted): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99),
        percentile_ms(&latencies, 1.0)
    );
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = (a.cpu - b.cpu).as_secs_f64();
        let per_cpu = accepted as f64 / cpu.max(1e-3);
        println!(
            "server: {cpu:.1} CPU-s ({:.0}% of one core), {:.2} CPU-s per million spans, {per_cpu:.0} accepted spans per CPU-second",
            cpu / wall.as_secs_f64() * 100.0,
            cpu / (accepted.max(1) as f64 / 1e6),
        );
        println!(
            "ingest efficiency (server spans per CPU-second / decode-only): {:.2}",
            per_cpu / decode_cpu
        );
        let quarter = |lo: f64, hi: f64| {
            rss_timeline
                .iter()
                .filter(|(t, _)| *t >= lo && *t < hi)
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(0) as f64
                / 1e6
        };
        let w = wall.as_secs_f64();
        println!(
            "server RSS: idle {:.0} MB, peak during the run {:.0} MB (lifetime peak {:.0} MB); max per quarter of the run: {:.0} / {:.0} / {:.0} / {:.0} MB",
            idle.map_or(0.0, |s| s.rss as f64 / 1e6),
            peak_rss as f64 / 1e6,
            a.peak_rss as f64 / 1e6,
            quarter(0.0, w / 4.0),
            quarter(w / 4.0, w / 2.0),
            quarter(w / 2.0, 3.0 * w / 4.0),
            quarter(3.0 * w / 4.0, f64::INFINITY),
        );
    }
    drop(server);
    Ok(())
}
