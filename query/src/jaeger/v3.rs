//! The api_v3 HTTP gateway of Jaeger v2: services, operations, and traces as OTLP/JSON in
//! `{"result": {"resourceSpans": [...]}}`. Errors are `{"error": {"httpCode", "message"}}`, and
//! as in Jaeger a search that finds nothing is a 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use serde::Serialize;

use super::query::{flag, param, v3_search};
use super::{load, model, status_of};
use crate::Error;
use crate::api::tenant;
use crate::api::traces::catalog_window;
use crate::assemble::{AssembledTrace, SpanRecord};
use crate::otlp_out::to_resource_spans;
use crate::traces::Traces;

type Params = Query<Vec<(String, String)>>;

/// A failed request, as the gateway's `GRPCGatewayError`.
#[derive(Debug)]
pub struct V3Error {
    status: StatusCode,
    message: String,
    headers: HeaderMap,
}

impl From<Error> for V3Error {
    fn from(error: Error) -> Self {
        Self {
            status: status_of(&error),
            message: error.to_string(),
            headers: error.headers(),
        }
    }
}

impl V3Error {
    fn not_found(message: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.to_owned(),
            headers: HeaderMap::new(),
        }
    }
}

impl IntoResponse for V3Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {"httpCode": self.status.as_u16(), "message": self.message}
        });
        (self.status, self.headers, Json(body)).into_response()
    }
}

#[derive(Debug, Serialize)]
pub struct ServicesResponse {
    pub services: Vec<String>,
}

/// `GET /api/v3/services`: the services with spans in everything stored (or in `start`..`end`).
pub async fn services(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<ServicesResponse>, V3Error> {
    let tenant = tenant(&headers)?;
    let window = catalog_window(&traces, &params)?;
    let services = traces.services(&tenant, window).await?;
    Ok(Json(ServicesResponse { services }))
}

#[derive(Debug, Serialize)]
pub struct OperationsResponse {
    pub operations: Vec<Operation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    /// `server`, `client`, ...; `internal` when unspecified, as Jaeger v2 reports it.
    pub span_kind: String,
}

/// `GET /api/v3/operations?service=&span_kind=`.
pub async fn operations(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<OperationsResponse>, V3Error> {
    let tenant = tenant(&headers)?;
    let service = param(&params, "service")
        .ok_or_else(|| Error::BadRequest("parameter 'service' is required".into()))?;
    let operations = traces
        .operations(
            &tenant,
            service,
            param(&params, "span_kind"),
            catalog_window(&traces, &params)?,
        )
        .await?
        .into_iter()
        .map(|op| Operation {
            span_kind: model::span_kind(&op.span_kind)
                .unwrap_or("internal")
                .to_owned(),
            name: op.name,
        })
        .collect();
    Ok(Json(OperationsResponse { operations }))
}

#[derive(Debug, Serialize)]
pub struct TracesResponse {
    pub result: TracesData,
}

/// `GET /api/v3/traces/{trace_id}`: skew-adjusted unless `raw_traces=true`. `start_time` and
/// `end_time` are accepted and not needed: the catalog finds the trace's files by id.
pub async fn trace(
    State(traces): State<Traces>,
    Path(trace_id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<TracesResponse>, V3Error> {
    let tenant = tenant(&headers)?;
    let adjust = !flag(&params, "raw_traces")?;
    let trace = traces
        .trace(&tenant, &trace_id)
        .await?
        .ok_or_else(|| V3Error::not_found("trace not found"))?;
    Ok(Json(TracesResponse {
        result: TracesData {
            resource_spans: to_resource_spans(&records(&trace, adjust)),
        },
    }))
}

/// `GET /api/v3/traces?query.service_name=...`: the spans of every matching trace, one list of
/// resource spans per trace, concatenated.
pub async fn search(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<TracesResponse>, V3Error> {
    let tenant = tenant(&headers)?;
    let query = v3_search(&params)?;
    let adjust = !flag(&params, "query.raw_traces")?;
    let ids: Vec<String> = traces
        .search(&tenant, &query)
        .await?
        .into_iter()
        .map(|hit| hit.trace_id)
        .collect();
    let mut resource_spans = Vec::new();
    for trace in load(&traces, &tenant, &ids).await?.into_iter().flatten() {
        resource_spans.extend(to_resource_spans(&records(&trace, adjust)));
    }
    if resource_spans.is_empty() {
        return Err(V3Error::not_found("No traces found"));
    }
    Ok(Json(TracesResponse {
        result: TracesData { resource_spans },
    }))
}

/// The spans of a trace, with their times (and their events') moved onto the skew-adjusted
/// timeline when `adjust`.
pub fn records(trace: &AssembledTrace, adjust: bool) -> Vec<SpanRecord> {
    trace
        .spans
        .iter()
        .map(|s| {
            let mut record = s.span.clone();
            if adjust {
                record.start_ns = s.adjusted_start_ns;
                record.end_ns = s.adjusted_end_ns;
                for event in &mut record.events {
                    event.time_ns = event.time_ns.saturating_add(s.skew_shift_ns);
                }
            }
            record
        })
        .collect()
}
