//! Spanlake's own HTTP API under `/api/`: SQL ([`sql`]) and the call-chain queries the UI uses
//! ([`traces`]), described by the OpenAPI document at `/api/openapi.json` ([`openapi`]).

pub mod openapi;
pub mod params;
pub mod sql;
pub mod traces;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use spanlake_storage::TenantId;

use crate::traces::Traces;
use crate::{Error, QueryEngine, Result};

/// The header naming the tenant, as in Tempo and Grafana.
pub const TENANT_HEADER: &str = "x-scope-orgid";

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Plan(_) | Error::NotReadOnly(_) | Error::BadRequest(_) | Error::TooLarge(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::ResourcesExhausted(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::Execution(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The headers that go with the status: `Retry-After` (whole seconds) when the server was
    /// too busy to run the query.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Error::Busy { retry_after, .. } = self {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        headers
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(%message, "query failed");
        }
        (
            status,
            self.headers(),
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response()
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
