//! The native call-chain API: traces by id, search, services, operations, dependencies and
//! RED metrics, as JSON.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::params::{param, parse_duration, parse_limit, parse_tags, window};
use super::tenant;
use crate::assemble::AssembledTrace;
use crate::traceql::search::{self as traceql, FoundTrace};
use crate::traces::{
    Dependency, Operation, RedPoint, RedQuery, SearchQuery, TraceHit, Traces, Window,
};
use crate::{Error, Result};

/// How far back searches look when no time range is given.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3600);
/// Most traces one search returns.
pub const MAX_SEARCH_LIMIT: usize = 1000;

type Params = Query<Vec<(String, String)>>;

/// The window of the service and operation lists: the request's `start`, `end` and
/// `lookback` where it gives them, and everything stored where it does not
/// ([`Traces::catalog_window`]).
pub fn catalog_window(traces: &Traces, params: &[(String, String)]) -> Result<Window> {
    let all = traces.catalog_window();
    let given = ["start", "end", "lookback"]
        .iter()
        .any(|name| param(params, name).is_some_and(|v| !v.is_empty()));
    if !given {
        return Ok(all);
    }
    let everything = Duration::from_nanos(all.end_ns.saturating_sub(all.start_ns).max(1) as u64);
    window_of(params, everything)
}

fn window_of(params: &[(String, String)], default: Duration) -> Result<Window> {
    window(
        param(params, "start"),
        param(params, "end"),
        param(params, "lookback"),
        default,
    )
}

pub fn router(traces: Traces) -> Router {
    Router::new()
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/search", get(search))
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(operations))
        .route("/api/dependencies", get(dependencies))
        .route("/api/metrics", get(metrics))
        .with_state(traces)
}

async fn trace(
    State(traces): State<Traces>,
    Path(trace_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<AssembledTrace>> {
    let tenant = tenant(&headers)?;
    match traces.trace(&tenant, &trace_id).await? {
        Some(t) => Ok(Json(t)),
        None => Err(Error::NotFound(format!("trace {trace_id} not found"))),
    }
}

/// Parses the search parameters shared by the native and Jaeger-style APIs.
pub fn search_query(params: &[(String, String)]) -> Result<SearchQuery> {
    let mut query = SearchQuery::new(window_of(params, DEFAULT_LOOKBACK)?);
    let ms = Duration::from_millis(1);
    for (key, value) in params {
        match key.as_str() {
            "service" if !value.is_empty() => query.service = Some(value.clone()),
            "operation" if !value.is_empty() => query.operation = Some(value.clone()),
            "kind" | "spanKind" if !value.is_empty() => query.span_kind = Some(value.clone()),
            "attr" => query.attributes.extend(parse_tags(key, value)?),
            "tags" => query.attributes.extend(parse_tags(key, value)?),
            "minDuration" if !value.is_empty() => {
                query.min_duration_ns = Some(parse_duration(key, value, ms)?.as_nanos() as i64)
            }
            "maxDuration" if !value.is_empty() => {
                query.max_duration_ns = Some(parse_duration(key, value, ms)?.as_nanos() as i64)
            }
            "errors" => query.errors_only = value == "true" || value == "1",
            _ => {}
        }
    }
    query.limit = parse_limit("limit", param(params, "limit"), 20, MAX_SEARCH_LIMIT)?;
    Ok(query)
}

#[derive(Debug, Serialize)]
struct SearchResponse {
    traces: Vec<TraceHit>,
}

/// A TraceQL search's answer: each trace's summary with its spansets.
#[derive(Debug, Serialize)]
struct TraceqlResponse {
    traces: Vec<FoundTrace>,
    bytes_read: u64,
    spans_read: u64,
}

/// The parameters that narrow a search besides `q`.
const FIELD_PARAMS: [&str; 9] = [
    "service",
    "operation",
    "kind",
    "spanKind",
    "attr",
    "tags",
    "minDuration",
    "maxDuration",
    "errors",
];

async fn search(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let tenant = tenant(&headers)?;
    if let Some(q) = param(&params, "q").filter(|q| !q.trim().is_empty()) {
        if let Some((name, _)) = params
            .iter()
            .find(|(k, v)| FIELD_PARAMS.contains(&k.as_str()) && !v.is_empty())
        {
            return Err(Error::BadRequest(format!(
                "{name} cannot be combined with q: write the condition in the TraceQL query"
            )));
        }
        let request = traceql::SearchRequest::parse(
            q,
            window_of(&params, DEFAULT_LOOKBACK)?,
            parse_limit("limit", param(&params, "limit"), 20, MAX_SEARCH_LIMIT)?,
            parse_limit("spss", param(&params, "spss"), 3, 1000)?,
        )?;
        let outcome = traceql::search(&traces, &tenant, &request).await?;
        return Ok(Json(TraceqlResponse {
            traces: outcome.traces,
            bytes_read: outcome.bytes_read,
            spans_read: outcome.spans_read,
        })
        .into_response());
    }
    let query = search_query(&params)?;
    Ok(Json(SearchResponse {
        traces: traces.search(&tenant, &query).await?,
    })
    .into_response())
}

#[derive(Debug, Serialize)]
struct ServicesResponse {
    services: Vec<String>,
}

async fn services(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<ServicesResponse>> {
    let tenant = tenant(&headers)?;
    let window = catalog_window(&traces, &params)?;
    Ok(Json(ServicesResponse {
        services: traces.services(&tenant, window).await?,
    }))
}

#[derive(Debug, Serialize)]
struct OperationsResponse {
    operations: Vec<Operation>,
}

async fn operations(
    State(traces): State<Traces>,
    Path(service): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<OperationsResponse>> {
    let tenant = tenant(&headers)?;
    let window = catalog_window(&traces, &params)?;
    let kind = param(&params, "kind").filter(|k| !k.is_empty());
    Ok(Json(OperationsResponse {
        operations: traces.operations(&tenant, &service, kind, window).await?,
    }))
}

#[derive(Debug, Serialize)]
struct DependenciesResponse {
    dependencies: Vec<Dependency>,
}

async fn dependencies(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<DependenciesResponse>> {
    let tenant = tenant(&headers)?;
    let window = window_of(&params, DEFAULT_LOOKBACK)?;
    Ok(Json(DependenciesResponse {
        dependencies: traces.dependencies(&tenant, window).await?,
    }))
}

#[derive(Debug, Serialize)]
struct MetricsResponse {
    step_ns: u128,
    points: Vec<RedPoint>,
}

async fn metrics(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<MetricsResponse>> {
    let tenant = tenant(&headers)?;
    let window = window_of(&params, DEFAULT_LOOKBACK)?;
    let step = match param(&params, "step") {
        Some(s) if !s.is_empty() => parse_duration("step", s, Duration::from_secs(1))?,
        // About 60 points over the window.
        _ => {
            Duration::from_nanos(((window.end_ns - window.start_ns) / 60).max(1_000_000_000) as u64)
        }
    };
    if step < Duration::from_millis(1) {
        return Err(Error::BadRequest("step must be at least 1ms".into()));
    }
    let query = RedQuery {
        window,
        service: param(&params, "service")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        by_operation: param(&params, "byOperation").is_some_and(|v| v == "true"),
        step,
    };
    Ok(Json(MetricsResponse {
        step_ns: step.as_nanos(),
        points: traces.red_metrics(&tenant, &query).await?,
    }))
}
