//! A Jaeger-compatible query API, mounted under `/jaeger`, so Grafana's Jaeger data source
//! (URL `http://HOST:16686/jaeger`) and Jaeger's own UI and clients read Spanlake unchanged.
//!
//! - [`v1`]: the JSON API of Jaeger's query service (`/api/services`, `/api/traces`, ...),
//!   traces in the UI's model ([`model`]), every answer in Jaeger's
//!   `{"data", "total", "limit", "offset", "errors"}` envelope.
//! - [`v3`]: the api_v3 HTTP gateway of Jaeger v2 (`/api/v3/...`), traces as OTLP/JSON
//!   ([`crate::otlp_out`]).
//!
//! Both read through [`Traces`]: a search finds trace ids, then each trace is loaded and
//! assembled, so times are clock-skew adjusted the way Jaeger's query service adjusts them, and
//! converted. The tenant comes from `X-Scope-OrgID`, as everywhere else.

pub mod model;
mod query;
pub mod v1;
pub mod v3;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use spanlake_storage::TenantId;

use crate::assemble::AssembledTrace;
use crate::traces::Traces;
use crate::{Error, Result};

/// How many traces one search loads and assembles at a time.
const LOAD_CONCURRENCY: usize = 4;

/// The Jaeger routes, relative to where they are mounted (`/jaeger`).
pub fn router(traces: Traces) -> Router {
    Router::new()
        .route("/api/services", get(v1::services))
        .route(
            "/api/services/{service}/operations",
            get(v1::service_operations),
        )
        .route("/api/operations", get(v1::operations))
        .route("/api/traces", get(v1::search))
        .route("/api/traces/{trace_id}", get(v1::trace))
        .route("/api/dependencies", get(v1::dependencies))
        .route("/api/v3/services", get(v3::services))
        .route("/api/v3/operations", get(v3::operations))
        .route("/api/v3/traces", get(v3::search))
        .route("/api/v3/traces/{trace_id}", get(v3::trace))
        .with_state(traces)
}

/// Loads and assembles the given traces, in order, a few at a time; `None` for an id with no
/// stored span.
async fn load(
    traces: &Traces,
    tenant: &TenantId,
    ids: &[String],
) -> Result<Vec<Option<AssembledTrace>>> {
    // Owned values in each future keep the stream's type free of borrowed lifetimes, which
    // the handler futures need to be `Send`.
    futures::stream::iter(ids.to_vec())
        .map(|id| {
            let (traces, tenant) = (traces.clone(), tenant.clone());
            async move { traces.trace(&tenant, &id).await }
        })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await
}

/// The HTTP status of an error, logging the ones that are our fault.
fn status_of(error: &Error) -> StatusCode {
    let status = error.status();
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(message = %error, "jaeger query failed");
    }
    status
}
