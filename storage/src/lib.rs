//! Spanlake's storage: the span model and its Arrow schema, the write-ahead log, Parquet files
//! and the catalog that lists them.
//!
//! Spans come in from the collector through [`SpanSink::append`], which returns once they are
//! durable in the WAL and visible in memory. A background flush writes them, sorted by trace id,
//! to zstd Parquet files in an object store (a local directory by default) and records each file
//! in the catalog. The query crate reads through [`SegmentSource::snapshot`]: the files that may
//! hold the wanted spans plus the recent spans still in memory.

pub mod batch;
pub mod catalog;
pub mod dedicated;
pub mod parquet_file;
pub mod schema;
pub mod store;
pub mod wal;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use object_store::ObjectStore;

pub use catalog::CatalogFile;
pub use store::{CompactStats, ExpireStats, FlushStats, Store, StoreConfig};

/// Errors of the storage crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("invalid tenant id {0:?}: use 1 to 64 characters of A-Z a-z 0-9 _ - .")]
    InvalidTenant(String),
    #[error("ingest is over capacity; retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    #[error("the store is shut down")]
    Closed,
    #[error("flush failed for at least one tenant; spans stay in the wal and memory")]
    FlushFailed,
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("data of a newer format: {0}")]
    NewerFormat(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tenant id, safe to use as a path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of requests that name none (Tempo's convention).
    pub const DEFAULT: &'static str = "single-tenant";

    pub fn new(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(Error::InvalidTenant(id.to_string()))
        }
    }

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A half-open range `[start_ns, end_ns)` of span start times, UNIX nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
    };
}

/// Where receivers hand decoded spans.
#[async_trait]
pub trait SpanSink: Send + Sync + 'static {
    /// Stores `batch` (rows of [`schema::span_schema`]) for `tenant`.
    ///
    /// Returns `Ok` only once the batch is durable (fsynced to the WAL, so it survives a crash)
    /// and visible to [`SegmentSource::snapshot`]. [`Error::Overloaded`] means nothing was
    /// stored and the client should retry later.
    async fn append(&self, tenant: &TenantId, batch: RecordBatch) -> Result<()>;

    /// [`Error::Overloaded`] when an append now would be refused for that reason, so that a
    /// receiver can refuse a request before paying for its decoding (under a 3x overload,
    /// decoding what was then refused doubled the CPU per accepted span). Advisory: `append`
    /// checks again.
    fn admit(&self) -> Result<()> {
        Ok(())
    }
}

/// What a query reads: the files that may hold matching spans, and the recent spans in memory.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub files: Vec<Arc<CatalogFile>>,
    pub batches: Vec<RecordBatch>,
}

/// Where the query side gets the spans to scan.
pub trait SegmentSource: Send + Sync + 'static {
    /// A consistent view of `tenant`'s spans: every stored span is in exactly one of the
    /// returned files or batches, and every span acknowledged before the call is included.
    /// Files are pruned by `range` (span start time) and, when `trace_ids` (lowercase hex) is
    /// not empty, to those that may hold one of them; batches are not pruned, so callers must
    /// still filter rows.
    fn snapshot(&self, tenant: &TenantId, range: &TimeRange, trace_ids: &[String]) -> Snapshot;

    /// The object store that `Snapshot::files` paths are relative to.
    fn object_store(&self) -> Arc<dyn ObjectStore>;

    /// Tenants that have any data.
    fn tenants(&self) -> Vec<String>;

    /// How long spans are kept; `None` keeps them all.
    fn retention(&self) -> Option<std::time::Duration> {
        None
    }
}
