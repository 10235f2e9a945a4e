//! Command-line interface: flags, logging, and the `sql` client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "spanlake",
    version,
    about = "Distributed tracing backend: OTLP in, Parquet on disk, SQL out"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "SPANLAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: OTLP receivers, storage, query API.
    Serve(Box<ServeArgs>),
    /// Run a SQL query against a running server and print the result.
    Sql(SqlArgs),
    /// Measure Spanlake on this machine (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Send realistic OTLP traffic to a server (or one it starts) and report accepted spans/s,
    /// export latency, and the server's CPU and memory per million spans.
    Loadgen(Box<crate::loadgen::LoadgenArgs>),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable ingest against decode-only speed, and bytes per span on disk.
    Ingest(crate::bench::IngestArgs),
    /// Write the realistic workload straight into a data directory's Parquet files.
    Gen(crate::bench::GenArgs),
    /// Trace-by-id and search latency over a data directory filled by `gen`.
    Lookup(crate::bench::LookupArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 5m)"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the write-ahead log and, with the default storage, the Parquet files.
    #[arg(long, env = "SPANLAKE_DATA_DIR", default_value = "./spanlake-data")]
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    #[arg(
        long,
        env = "SPANLAKE_OTLP_GRPC_ADDR",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (`POST /v1/traces`).
    #[arg(
        long,
        env = "SPANLAKE_OTLP_HTTP_ADDR",
        default_value = "127.0.0.1:4318"
    )]
    pub otlp_http_addr: SocketAddr,
    /// Query API listen address (`/api/...`, `/healthz`, `/readyz`).
    #[arg(long, env = "SPANLAKE_HTTP_ADDR", default_value = "127.0.0.1:16686")]
    pub http_addr: SocketAddr,
    /// Arrow Flight SQL listen address (ADBC, JDBC, DBeaver).
    #[arg(long, env = "SPANLAKE_FLIGHT_ADDR", default_value = "127.0.0.1:50051")]
    pub flight_addr: SocketAddr,
    /// Write buffered spans to Parquet at least this often.
    #[arg(long, env = "SPANLAKE_FLUSH_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub flush_interval: Duration,
    /// Write buffered spans to Parquet once this many bytes are buffered.
    #[arg(long, env = "SPANLAKE_FLUSH_BYTES", default_value_t = 256 << 20)]
    pub flush_bytes: usize,
    /// Refuse new spans (HTTP 429 / gRPC UNAVAILABLE) while this many bytes wait in memory.
    #[arg(long, env = "SPANLAKE_MAX_BUFFER_BYTES", default_value_t = 2 << 30)]
    pub max_buffer_bytes: usize,
    /// Largest OTLP request accepted, in bytes, as sent.
    #[arg(long, env = "SPANLAKE_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub max_request_bytes: usize,
    /// Largest OTLP/HTTP request accepted after decompression, in bytes.
    #[arg(long, env = "SPANLAKE_MAX_DECOMPRESSED_BYTES", default_value_t = 64 << 20)]
    pub max_decompressed_bytes: usize,
    /// Delete spans older than this (whole files, once every span in a file is older), e.g.
    /// `7d`; keep everything when not set.
    #[arg(long, env = "SPANLAKE_RETENTION", value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// How often retention looks for expired files.
    #[arg(long, env = "SPANLAKE_RETENTION_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub retention_interval: Duration,
    /// How long an expired file stays on disk after queries stop seeing it, so that queries
    /// already reading it finish.
    #[arg(long, env = "SPANLAKE_DELETION_GRACE", default_value = "5m", value_parser = parse_duration)]
    pub deletion_grace: Duration,
    /// How often compaction merges small Parquet files of the same hour into large sorted
    /// ones; `0s` turns it off.
    #[arg(long, env = "SPANLAKE_COMPACTION_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub compaction_interval: Duration,
    /// Files with fewer spans are small; compaction writes files of about this many spans.
    #[arg(
        long,
        env = "SPANLAKE_COMPACTION_TARGET_SPANS",
        default_value_t = 1_000_000
    )]
    pub compaction_target_spans: u64,
    /// Small files of one hour it takes before compaction merges them.
    #[arg(long, env = "SPANLAKE_COMPACTION_MIN_FILES", default_value_t = 4)]
    pub compaction_min_files: usize,
    /// Most spans in one OTLP request; more is refused (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    #[arg(
        long,
        env = "SPANLAKE_MAX_SPANS_PER_REQUEST",
        default_value_t = 100_000
    )]
    pub max_spans_per_request: usize,
    /// Attributes kept per span (and per event, link and resource); the rest are dropped and
    /// counted in `dropped_attributes_count`.
    #[arg(long, env = "SPANLAKE_MAX_ATTRIBUTES_PER_SPAN", default_value_t = 128)]
    pub max_attributes_per_span: usize,
    /// Longest attribute value kept whole, in bytes: longer strings and bytes are cut; longer
    /// arrays and key-value lists are dropped (and counted).
    #[arg(long, env = "SPANLAKE_MAX_ATTRIBUTE_VALUE_BYTES", default_value_t = 16 << 10)]
    pub max_attribute_value_bytes: usize,
    /// Deepest nesting of array and key-value-list attribute values; deeper ones are dropped
    /// (and counted).
    #[arg(long, env = "SPANLAKE_MAX_ATTRIBUTE_DEPTH", default_value_t = 8)]
    pub max_attribute_depth: usize,
    /// Require `Authorization: Bearer <token>` on OTLP, the query API, the UI and Flight SQL;
    /// the file holds one `<token> <tenant>` per line, and a token reaches only its tenant.
    #[arg(long, env = "SPANLAKE_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Serve TLS on every listener (OTLP gRPC and HTTP, the query API and UI, Flight SQL) with
    /// this PEM certificate chain; needs `--tls-key-file`.
    #[arg(long, env = "SPANLAKE_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `--tls-cert-file` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SPANLAKE_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Time limit of one query.
    #[arg(long, env = "SPANLAKE_QUERY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub query_timeout: Duration,
    /// Memory limit of one query, in bytes.
    #[arg(long, env = "SPANLAKE_QUERY_MEMORY_BYTES", default_value_t = 1 << 30)]
    pub query_memory_bytes: usize,
    /// Most rows one query returns; longer results are cut and marked truncated.
    #[arg(long, env = "SPANLAKE_QUERY_MAX_ROWS", default_value_t = 100_000)]
    pub query_max_rows: usize,
    /// Most row pairs a join without equal columns (nested-loop or cross join) may compare,
    /// judged from its inputs' sizes; a larger one is refused before it runs.
    #[arg(
        long,
        env = "SPANLAKE_QUERY_MAX_JOIN_PAIRS",
        default_value_t = 10_000_000_000
    )]
    pub query_max_join_pairs: u64,
    /// Threads that run queries, apart from the ones that take OTLP and answer health checks
    /// (at a lower scheduling priority); by default two per `--query-max-running`, at least
    /// one per core, so a query stuck in a long step of an operator leaves threads to the rest.
    #[arg(long, env = "SPANLAKE_QUERY_THREADS")]
    pub query_threads: Option<usize>,
    /// Queries running at once, all tenants together (every API, the explorer and Flight SQL).
    #[arg(long, env = "SPANLAKE_QUERY_MAX_RUNNING", default_value_t = 8)]
    pub query_max_running: usize,
    /// Queries of one tenant running at once.
    #[arg(
        long,
        env = "SPANLAKE_QUERY_MAX_RUNNING_PER_TENANT",
        default_value_t = 8
    )]
    pub query_max_running_per_tenant: usize,
    /// Queries waiting for a turn; past this a query is refused at once (429, Retry-After).
    #[arg(long, env = "SPANLAKE_QUERY_MAX_QUEUED", default_value_t = 64)]
    pub query_max_queued: usize,
    /// How long a query waits for a turn before it is refused (429, Retry-After).
    #[arg(long, env = "SPANLAKE_QUERY_QUEUE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub query_queue_timeout: Duration,
    /// How long a graceful stop waits for requests in flight.
    #[arg(long, env = "SPANLAKE_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT service_name, count(*) FROM spans GROUP BY 1".
    pub query: String,
    /// Base URL of the server's query API.
    #[arg(
        long,
        env = "SPANLAKE_SERVER",
        default_value = "http://127.0.0.1:16686"
    )]
    pub server: String,
    /// Tenant to query (sent as X-Scope-OrgID).
    #[arg(long, env = "SPANLAKE_TENANT")]
    pub tenant: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPANLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `spanlake sql`: sends the query, prints the answer.
pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let wire = match args.format {
        OutputFormat::Table => "arrow",
        OutputFormat::Json => "json",
        OutputFormat::Csv => "csv",
    };
    let url = format!(
        "{}/api/sql?format={wire}",
        args.server.trim_end_matches('/')
    );
    let mut request = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "sql": args.query }));
    if let Some(tenant) = &args.tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the Spanlake server at {}", args.server))?;
    let status = response.status();
    let truncated = response.headers().contains_key("x-spanlake-truncated");
    let body = response.bytes().await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{status}: {message}");
    }
    match args.format {
        OutputFormat::Table => {
            let reader = arrow::ipc::reader::StreamReader::try_new(&body[..], None)?;
            let schema = reader.schema();
            let batches = reader.collect::<Result<Vec<_>, _>>()?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if batches.is_empty() {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                println!("{}", arrow::util::pretty::pretty_format_batches(&[empty])?);
            } else {
                println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
            }
            println!(
                "{rows} row(s){}",
                if truncated { " (truncated)" } else { "" }
            );
        }
        OutputFormat::Json | OutputFormat::Csv => {
            print!("{}", String::from_utf8_lossy(&body));
        }
    }
    Ok(())
}
