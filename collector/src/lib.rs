//! Spanlake's collector: the OTLP trace receivers.
//!
//! Requests arrive over OTLP/gRPC ([`grpc`]) or OTLP/HTTP with protobuf or JSON bodies
//! ([`http`]), are decoded off the I/O threads into Arrow span batches ([`otlp::decode`]), and
//! are handed to a [`SpanSink`]; the client is answered only once the sink says the spans are
//! durable. Spans that break the protocol's rules are refused one by one through OTLP partial
//! success; the rest of the request is kept.

pub mod grpc;
pub mod http;
pub mod otlp;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use spanlake_storage::{SpanSink, TenantId};

/// The header (and gRPC metadata key) naming the tenant, as in Tempo and Grafana.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Errors of the collector crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot decode request body as {format}: {reason}")]
    Decode {
        format: &'static str,
        reason: String,
    },
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: use gzip, zstd or none")]
    UnsupportedEncoding(String),
    #[error("request body over the limit of {limit} bytes{when}")]
    TooLarge { limit: usize, when: &'static str },
    #[error("{count} spans in one request, over the limit of {limit}: send smaller batches")]
    TooManySpans { count: usize, limit: usize },
    #[error("invalid tenant in the X-Scope-OrgID header: {0}")]
    InvalidTenant(String),
    #[error("server overloaded: retry after {} s", retry_after.as_secs())]
    Overloaded { retry_after: Duration },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the server's disk is full: retry after {} s", retry_after.as_secs())]
    DiskFull { retry_after: Duration },
    #[error("could not store spans: {0}")]
    Storage(spanlake_storage::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short name of why a request was refused, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Decode { .. } => "malformed",
            Self::UnsupportedContentType(_) => "content_type",
            Self::UnsupportedEncoding(_) => "content_encoding",
            Self::TooLarge { .. } => "too_large",
            Self::TooManySpans { .. } => "too_many_spans",
            Self::InvalidTenant(_) => "invalid_tenant",
            Self::Overloaded { .. } => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::DiskFull { .. } => "disk_full",
            Self::Storage(_) => "storage",
            Self::Internal(_) => "internal",
        }
    }
}

/// Records one export request in the process metrics: its outcome, size and latency.
pub fn observe_request(
    protocol: &'static str,
    started: std::time::Instant,
    bytes: usize,
    error: Option<&Error>,
) {
    let outcome = error.map_or("ok", Error::reason);
    metrics::counter!("spanlake_otlp_requests_total", "protocol" => protocol, "outcome" => outcome)
        .increment(1);
    metrics::counter!("spanlake_otlp_received_bytes_total", "protocol" => protocol)
        .increment(bytes as u64);
    metrics::histogram!("spanlake_otlp_export_duration_seconds", "protocol" => protocol)
        .record(started.elapsed().as_secs_f64());
}

impl From<spanlake_storage::Error> for Error {
    fn from(e: spanlake_storage::Error) -> Self {
        match e {
            spanlake_storage::Error::Overloaded { retry_after } => Self::Overloaded { retry_after },
            spanlake_storage::Error::Closed => Self::ShuttingDown,
            spanlake_storage::Error::InvalidTenant(t) => Self::InvalidTenant(t),
            // ENOSPC: nothing was acknowledged; the client retries once space returns.
            spanlake_storage::Error::Io(e)
                if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) =>
            {
                Self::DiskFull {
                    retry_after: Duration::from_secs(5),
                }
            }
            other => Self::Storage(other),
        }
    }
}

/// Parses the tenant header's value; no header means the default tenant.
pub fn tenant_from_header(value: Option<&[u8]>) -> Result<TenantId> {
    match value {
        None => Ok(TenantId::default_tenant()),
        Some(raw) => {
            let text =
                std::str::from_utf8(raw).map_err(|_| Error::InvalidTenant("not utf-8".into()))?;
            TenantId::new(text.trim()).map_err(|e| Error::InvalidTenant(e.to_string()))
        }
    }
}

/// Decodes a protobuf `ExportTraceServiceRequest`, as OTLP/HTTP and OTLP/gRPC carry it.
pub(crate) fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    prost::Message::decode(body).map_err(|e| Error::Decode {
        format: "protobuf ExportTraceServiceRequest",
        reason: e.to_string(),
    })
}

/// What one export request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverLimits {
    /// Most spans in one request; more is refused whole (413 / RESOURCE_EXHAUSTED).
    pub max_spans_per_request: usize,
    /// Limits on each span's attributes.
    pub span: otlp::Limits,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        Self {
            max_spans_per_request: 100_000,
            span: otlp::Limits::default(),
        }
    }
}

/// The part shared by both receivers: decode, store, answer.
#[derive(Clone)]
pub struct Receiver {
    sink: Arc<dyn SpanSink>,
    limits: ReceiverLimits,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    pub fn new(sink: Arc<dyn SpanSink>) -> Self {
        Self {
            sink,
            limits: ReceiverLimits::default(),
        }
    }

    /// The same receiver with other limits.
    pub fn with_limits(mut self, limits: ReceiverLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Decodes and stores one request; returns the OTLP response once the accepted spans are
    /// durable. `decode_body` runs on a blocking thread with the decoding of the spans.
    pub async fn export<F>(
        &self,
        protocol: &'static str,
        tenant: TenantId,
        decode_body: F,
    ) -> Result<ExportTraceServiceResponse>
    where
        F: FnOnce() -> Result<ExportTraceServiceRequest> + Send + 'static,
    {
        let limits = self.limits;
        // Refused now, a request costs no decoding.
        self.sink.admit()?;
        let decoded = tokio::task::spawn_blocking(move || {
            let request = decode_body()?;
            let count: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            if count > limits.max_spans_per_request {
                return Err(Error::TooManySpans {
                    count,
                    limit: limits.max_spans_per_request,
                });
            }
            otlp::decode_with(&request, &limits.span).map_err(|e| Error::Internal(e.to_string()))
        })
        .await
        .map_err(|e| Error::Internal(format!("decode task: {e}")))??;
        let message = decoded.message();
        let accepted = decoded.batch.num_rows() as u64;
        if decoded.rejected > 0 {
            metrics::counter!(
                "spanlake_otlp_spans_rejected_total",
                "protocol" => protocol,
                "reason" => "invalid_span"
            )
            .increment(decoded.rejected as u64);
            tracing::debug!(tenant = %tenant, rejected = decoded.rejected, %message, "rejected spans");
        }
        if decoded.flagged > 0 {
            metrics::counter!("spanlake_otlp_spans_flagged_total", "protocol" => protocol)
                .increment(decoded.flagged);
        }
        self.sink.append(&tenant, decoded.batch).await?;
        metrics::counter!("spanlake_otlp_spans_accepted_total", "protocol" => protocol)
            .increment(accepted);
        // With nothing rejected, a message still reaches the client as a warning.
        let partial_success = (!message.is_empty()).then_some(ExportTracePartialSuccess {
            rejected_spans: decoded.rejected as i64,
            error_message: message,
        });
        Ok(ExportTraceServiceResponse { partial_success })
    }
}
