//! Spanlake's own HTTP API under `/api/`: SQL ([`sql`]) and the call-chain queries the UI uses
//! ([`traces`]), described by the OpenAPI document at `/api/openapi.json` ([`openapi`]).

pub mod openapi;
pub mod params;
pub mod sql;
pub mod traces;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use spanlake_storage::TenantId;

use crate::traces::Traces;
use crate::{Error, QueryEngine, Result};

/// The header naming the tenant, as in Tempo and Grafana.
pub const TENANT_HEADER: &str = "x-scope-orgid";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::Plan(_) | Error::NotReadOnly(_) | Error::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::ResourcesExhausted(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Execution(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = self.to_string();
        if status.is_server_error() {
            tracing::error!(%message, "query failed");
        }
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The tenant named by the request's `X-Scope-OrgID` header, or the default tenant.
pub fn tenant(headers: &HeaderMap) -> Result<TenantId> {
    match headers.get(TENANT_HEADER) {
        None => Ok(TenantId::default_tenant()),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| Error::BadRequest("X-Scope-OrgID is not text".into()))?;
            TenantId::new(text.trim()).map_err(|e| Error::BadRequest(e.to_string()))
        }
    }
}

/// Everything under `/api/`.
pub fn router(engine: Arc<QueryEngine>) -> Router {
    let traces = Traces::new(Arc::clone(&engine));
    sql::router(engine)
        .nest("/jaeger", crate::jaeger::router(traces.clone()))
        .merge(crate::tempo::router(traces.clone()))
        .merge(traces::router(traces))
        .merge(openapi::router())
}
