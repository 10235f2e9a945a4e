//! Spanlake's query side: DataFusion over stored spans.
//!
//! Spans come from the storage crate through [`SegmentSource`](spanlake_storage::SegmentSource)
//! snapshots (Parquet files chosen through the catalog, plus recent spans in memory) and are
//! exposed as the `spans` table ([`table::SpansTable`]). [`engine::QueryEngine`] runs read-only
//! SQL over it within time, memory and row limits; [`api`] serves it over HTTP.

pub mod admission;
pub mod api;
pub mod assemble;
pub mod cancel;
pub mod engine;
pub mod executor;
pub mod flight;
pub mod functions;
pub mod jaeger;
pub mod nested;
pub mod otlp_out;
pub mod records;
pub mod table;
pub mod tempo;
pub mod traceql;
pub mod traces;

use std::time::Duration;

use datafusion::error::DataFusionError;

pub use admission::AdmissionLimits;
pub use engine::{QueryEngine, QueryLimits, QueryOutput};

/// Errors of the query crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement is not valid SQL or refers to something that does not exist.
    #[error("{0}")]
    Plan(String),
    /// The statement would change something or read outside the spans table.
    #[error("only read-only queries are allowed: {0}")]
    NotReadOnly(String),
    #[error("query exceeded its time limit of {0:?}")]
    Timeout(Duration),
    #[error("query exceeded its memory limit: {0}")]
    ResourcesExhausted(String),
    /// Refused before running: the plan could not finish within the limits.
    #[error("query refused: {0}")]
    TooLarge(String),
    /// No turn to run: too many queries running and waiting.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after: Duration,
    },
    #[error("the server is shutting down: query cancelled")]
    ShuttingDown,
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("query failed: {0}")]
    Execution(DataFusionError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn from_planning(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Error::Plan(e.strip_backtrace()),
            _ => Error::from(e),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(msg) => Error::ResourcesExhausted(msg.clone()),
            DataFusionError::Plan(_)
            | DataFusionError::SQL(..)
            | DataFusionError::SchemaError(..) => Error::Plan(e.strip_backtrace()),
            _ => Error::Execution(e),
        }
    }
}
