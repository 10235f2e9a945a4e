//! The JSON API of Jaeger's query service, as its UI and Grafana's Jaeger data source call it.
//! Every answer, errors included, is Jaeger's envelope
//! `{"data": ..., "total": N, "limit": 0, "offset": 0, "errors": null | [{"code", "msg"}]}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::model::{self, Trace};
use super::query::{dependency_window, flag, param, v1_search};
use super::{load, status_of};
use crate::Error;
use crate::api::tenant;
use crate::api::traces::catalog_window;
use crate::traces::{Traces, normalize_trace_id};

type Params = Query<Vec<(String, String)>>;
type Answer<T> = Result<Json<Envelope<T>>, V1Error>;

/// Jaeger's `structuredResponse`.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<StructuredError>>,
}

impl<T> Envelope<T> {
    fn new(data: T) -> Self {
        Self {
            data,
            total: 0,
            limit: 0,
            offset: 0,
            errors: None,
        }
    }

    fn counted(data: T, total: usize) -> Self {
        Self {
            total,
            ..Self::new(data)
        }
    }
}

/// Jaeger's `structuredError`: a failed request, or a trace asked for by id and not found.
#[derive(Debug, Serialize)]
pub struct StructuredError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    pub msg: String,
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// A failed request, answered in the envelope with `data: null`.
#[derive(Debug)]
pub struct V1Error {
    status: StatusCode,
    msg: String,
    headers: HeaderMap,
}

impl From<Error> for V1Error {
    fn from(error: Error) -> Self {
        Self {
            status: status_of(&error),
            msg: error.to_string(),
            headers: error.headers(),
        }
    }
}

impl V1Error {
    fn trace_not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            msg: "trace not found".to_owned(),
            headers: HeaderMap::new(),
        }
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let mut body = Envelope::new(None::<()>);
        body.errors = Some(vec![StructuredError {
            code: Some(self.status.as_u16()),
            msg: self.msg,
            trace_id: None,
        }]);
        (self.status, self.headers, Json(body)).into_response()
    }
}

/// `GET /api/services`: the services with spans in `start`..`end` (or `lookback`), by default
/// in everything stored.
pub async fn services(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Answer<Vec<String>> {
    let tenant = tenant(&headers)?;
    let window = catalog_window(&traces, &params)?;
    let services = traces.services(&tenant, window).await?;
    let total = services.len();
    Ok(Json(Envelope::counted(services, total)))
}

/// `GET /api/services/{service}/operations`: the distinct operation names, of any kind.
pub async fn service_operations(
    State(traces): State<Traces>,
    Path(service): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Answer<Vec<String>> {
    let tenant = tenant(&headers)?;
    let window = catalog_window(&traces, &params)?;
    let mut names: Vec<String> = traces
        .operations(&tenant, &service, None, window)
        .await?
        .into_iter()
        .map(|op| op.name)
        .collect();
    names.dedup();
    let total = names.len();
    Ok(Json(Envelope::counted(names, total)))
}

/// One operation of `GET /api/operations`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    /// `server`, `client`, ...; empty when unspecified.
    pub span_kind: String,
}

/// `GET /api/operations?service=&spanKind=`.
pub async fn operations(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Answer<Vec<Operation>> {
    let tenant = tenant(&headers)?;
    let service = param(&params, "service")
        .ok_or_else(|| Error::BadRequest("parameter 'service' is required".into()))?;
    let window = catalog_window(&traces, &params)?;
    let operations: Vec<Operation> = traces
        .operations(&tenant, service, param(&params, "spanKind"), window)
        .await?
        .into_iter()
        .map(|op| Operation {
            span_kind: model::span_kind(&op.span_kind).unwrap_or("").to_owned(),
            name: op.name,
        })
        .collect();
    let total = operations.len();
    Ok(Json(Envelope::counted(operations, total)))
}

/// `GET /api/traces`: full traces, either those named by `traceID` parameters (unknown ones are
/// listed in `errors`) or the newest matching the search.
pub async fn search(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Answer<Vec<Trace>> {
    let tenant = tenant(&headers)?;
    let adjust = !flag(&params, "raw").unwrap_or(false);
    let by_id: Vec<String> = params
        .iter()
        .filter(|(k, v)| k == "traceID" && !v.is_empty())
        .map(|(_, v)| normalize_trace_id(v))
        .collect::<Result<_, _>>()?;
    let ids = if by_id.is_empty() {
        let query = v1_search(&params)?;
        traces
            .search(&tenant, &query)
            .await?
            .into_iter()
            .map(|hit| hit.trace_id)
            .collect()
    } else {
        by_id
    };
    let loaded = load(&traces, &tenant, &ids).await?;
    let mut data = Vec::with_capacity(loaded.len());
    let mut missing = Vec::new();
    for (id, trace) in ids.iter().zip(loaded) {
        match trace {
            Some(t) => data.push(model::from_assembled(&t, adjust)),
            None => missing.push(StructuredError {
                code: None,
                msg: "trace not found".to_owned(),
                trace_id: Some(model::trace_id(id)),
            }),
        }
    }
    let mut envelope = Envelope::new(data);
    envelope.errors = (!missing.is_empty()).then_some(missing);
    Ok(Json(envelope))
}

/// `GET /api/traces/{traceID}`: one trace, skew-adjusted unless `raw=true`.
pub async fn trace(
    State(traces): State<Traces>,
    Path(trace_id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Answer<Vec<Trace>> {
    let tenant = tenant(&headers)?;
    let adjust = !flag(&params, "raw").unwrap_or(false);
    match traces.trace(&tenant, &trace_id).await? {
        Some(t) => Ok(Json(Envelope::new(vec![model::from_assembled(&t, adjust)]))),
        None => Err(V1Error::trace_not_found()),
    }
}

/// One edge of `GET /api/dependencies`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: i64,
}

/// `GET /api/dependencies?endTs=&lookback=` (milliseconds), optionally only the edges of
/// `service`.
pub async fn dependencies(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Answer<Vec<DependencyLink>> {
    let tenant = tenant(&headers)?;
    let window = dependency_window(&params)?;
    let service = param(&params, "service");
    let links = traces
        .dependencies(&tenant, window)
        .await?
        .into_iter()
        .filter(|d| service.is_none_or(|s| d.parent == s || d.child == s))
        .map(|d| DependencyLink {
            parent: d.parent,
            child: d.child,
            call_count: d.call_count,
        })
        .collect();
    Ok(Json(Envelope::new(links)))
}
