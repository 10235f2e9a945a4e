//! Server functions: what the pages ask the server for. On the server they call the query
//! engine directly (also while rendering a page); in the browser they are HTTP calls to
//! `/ui/fn/...` answered by the same code.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::model::{
    SearchForm, SearchResults, ServiceMap, ServiceOverview, SpanDetail, SqlResult, TraceView,
};

/// A server function's error as the page shows it: without the framework's prefix, and saying
/// plainly when the server could not be reached.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(message) => message.clone(),
        ServerFnError::Request(message) => {
            format!("Cannot reach the Spanlake server ({message}). Is it running?")
        }
        other => other.to_string(),
    }
}

/// The assembled trace; `None` when no span of it is stored.
#[server(prefix = "/ui/fn", endpoint = "trace", input = Json)]
pub async fn get_trace(trace_id: String) -> Result<Option<TraceView>, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    let trace = state
        .traces
        .trace(&tenant, &trace_id)
        .await
        .map_err(crate::server::failed)?;
    Ok(trace.map(crate::server::trace_view))
}

/// Everything about one span of a trace.
#[server(prefix = "/ui/fn", endpoint = "span", input = Json)]
pub async fn get_span(
    trace_id: String,
    span_id: String,
) -> Result<Option<SpanDetail>, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::span_detail(&state, &tenant, &trace_id, &span_id).await
}

/// Span ids of the trace whose name, service or any attribute (key or value) contains `text`,
/// ignoring case.
#[server(prefix = "/ui/fn", endpoint = "find", input = Json)]
pub async fn find_spans(trace_id: String, text: String) -> Result<Vec<String>, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::find_spans(&state, &tenant, &trace_id, &text).await
}

/// Traces matching the search form, newest first.
#[server(prefix = "/ui/fn", endpoint = "search", input = Json)]
pub async fn search(form: SearchForm) -> Result<SearchResults, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::search(&state, &tenant, &form).await
}

/// Services seen in the last week.
#[server(prefix = "/ui/fn", endpoint = "services", input = Json)]
pub async fn services() -> Result<Vec<String>, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::services(&state, &tenant).await
}

/// Operations of a service seen in the last week.
#[server(prefix = "/ui/fn", endpoint = "operations", input = Json)]
pub async fn operations(service: String) -> Result<Vec<String>, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::operations(&state, &tenant, &service).await
}

/// The service dependency graph over the last `lookback` (`1h` by default).
#[server(prefix = "/ui/fn", endpoint = "map", input = Json)]
pub async fn get_service_map(lookback: String) -> Result<ServiceMap, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::service_map(&state, &tenant, &lookback).await
}

/// RED metrics per operation and notable traces of one service.
#[server(prefix = "/ui/fn", endpoint = "service", input = Json)]
pub async fn get_service_overview(
    service: String,
    lookback: String,
) -> Result<ServiceOverview, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::service_overview(&state, &tenant, &service, &lookback).await
}

/// Runs read-only SQL over the spans.
#[server(prefix = "/ui/fn", endpoint = "sql", input = Json)]
pub async fn run_sql(sql: String) -> Result<SqlResult, ServerFnError> {
    let (state, tenant) = crate::server::request().await?;
    crate::server::run_sql(&state, &tenant, &sql).await
}
