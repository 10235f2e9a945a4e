//! The server half of the explorer: the axum routes that render pages and answer server
//! functions, the static files of the browser bundle, and the conversion of query results into
//! the page models.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos::config::LeptosOptions;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use spanlake_query::api::params::window;
use spanlake_query::assemble::{AssembledTrace, Attribute, MissingKind, SpanRecord};
use spanlake_query::records::span_records;
use spanlake_query::traces::Traces;
use spanlake_storage::TenantId;

use crate::app::{App, shell};
use crate::model::{
    Edge, EventView, Hop, KeyValue, LinkView, Missing, OperationSeries, PathSegment, RedSample,
    SearchForm, SearchResults, ServiceMap, ServiceOverview, ServiceSpans, SpanDetail, SpanRow,
    SqlResult, Status, TraceHit, TraceView,
};

/// What server functions reach through the reactive context.
#[derive(Clone)]
pub struct UiState {
    pub traces: Traces,
}

/// Where the browser bundle (`pkg/ui.js`, `pkg/ui_bg.wasm`) is read from:
/// `$SPANLAKE_UI_DIR`, else `target/site` of the source tree it was built from.
pub fn site_dir() -> PathBuf {
    std::env::var_os("SPANLAKE_UI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site")))
}

/// The explorer's pages (`/`, `/search`, `/trace/{id}`, `/services`, `/services/{name}`,
/// `/compare/{a}/{b}`, `/sql`), its server functions under `/ui/fn/` and its bundle under
/// `/pkg/`.
pub fn router(traces: Traces) -> Router {
    let site = site_dir();
    if !site.join("pkg/ui_bg.wasm").exists() {
        tracing::warn!(
            dir = %site.display(),
            "the UI's browser bundle is not built: pages render on the server but stay static; \
             run scripts/build-ui"
        );
    }
    let options = LeptosOptions::builder()
        .output_name("ui")
        .site_root(site.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .build();
    let state = UiState { traces };
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes_with_context(&options, routes, move || provide_context(state.clone()), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .route("/pkg/{*file}", get(asset))
        .route("/go", get(go))
        .with_state(options)
}

/// The header's "go to trace" box and the compare form: `/go?trace=ID` and `/go?a=ID&b=ID`
/// redirect to the trace or comparison page (a plain GET form works without scripts).
async fn go(
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> axum::response::Redirect {
    let id = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    match (id("trace"), id("a"), id("b")) {
        (Some(t), _, _) => axum::response::Redirect::to(&format!("/trace/{t}")),
        (None, Some(a), Some(b)) => axum::response::Redirect::to(&format!("/compare/{a}/{b}")),
        _ => axum::response::Redirect::to("/search"),
    }
}

/// A file of the browser bundle, revalidated by ETag so a rebuilt bundle is picked up at once.
async fn asset(
    State(options): State<LeptosOptions>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if file.contains("..") || file.starts_with('/') {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = PathBuf::from(options.site_root.as_ref())
        .join(options.site_pkg_dir.as_ref())
        .join(&file);
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return (
            StatusCode::NOT_FOUND,
            format!("{file} is not in the UI bundle"),
        )
            .into_response();
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", meta.len(), modified);
    let cache = [
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (header::ETAG, etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(&path).await {
        Ok(body) => {
            let mut response = (cache, body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The state and the tenant of the request being served.
pub async fn request() -> Result<(UiState, TenantId), ServerFnError> {
    let state = use_context::<UiState>()
        .ok_or_else(|| ServerFnError::new("the explorer's server state is missing"))?;
    let headers: HeaderMap = leptos_axum::extract().await?;
    let tenant = spanlake_query::api::tenant(&headers).map_err(failed)?;
    Ok((state, tenant))
}

/// A query error as the page shows it.
pub fn failed(e: spanlake_query::Error) -> ServerFnError {
    ServerFnError::new(e.to_string())
}

fn status(code: &str) -> Status {
    match code {
        "ERROR" => Status::Error,
        "OK" => Status::Ok,
        _ => Status::Unset,
    }
}

/// The waterfall's view of an assembled trace.
pub fn trace_view(t: AssembledTrace) -> TraceView {
    let services: Vec<ServiceSpans> = t
        .summary
        .services
        .iter()
        .map(|s| ServiceSpans {
            name: s.service.clone(),
            spans: s.span_count,
        })
        .collect();
    let service_index: std::collections::HashMap<&str, u32> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i as u32))
        .collect();
    let mut hops = vec![None; t.spans.len()];
    for h in &t.hops {
        hops[h.server_index] = Some(Hop {
            gap_before_ns: h.gap_before_ns,
            gap_after_ns: h.gap_after_ns,
        });
    }
    let raw_start_ns = t.spans.iter().map(|s| s.span.start_ns).min().unwrap_or(0);
    let raw_end_ns = t
        .spans
        .iter()
        .map(|s| s.span.end_ns.max(s.span.start_ns))
        .max()
        .unwrap_or(0);
    let spans = t
        .spans
        .iter()
        .zip(hops)
        .map(|(s, hop)| SpanRow {
            span_id: s.span.span_id.clone(),
            parent: s.parent_index.map(|p| p as u32),
            depth: s.depth as u32,
            children: s.children.len() as u32,
            service: service_index
                .get(s.span.service_name.as_str())
                .copied()
                .unwrap_or(0),
            name: s.span.span_name.clone(),
            kind: s.span.span_kind.clone(),
            start_ns: s.span.start_ns,
            end_ns: s.span.end_ns,
            shift_ns: s.skew_shift_ns,
            status: status(&s.span.status_code),
            status_message: s.span.status_message.clone(),
            error_origin: s.error_origin,
            orphan: s.orphan,
            cycle_broken: s.cycle_broken,
            critical_ns: s.critical_path_ns,
            hop,
        })
        .collect();
    let name_of = |i: usize| {
        t.spans
            .get(i)
            .map(|s| format!("{}: {}", s.span.service_name, s.span.span_name))
            .unwrap_or_default()
    };
    TraceView {
        trace_id: t.summary.trace_id.clone(),
        root_service: t.summary.root_service.clone(),
        root_name: t.summary.root_span_name.clone(),
        start_ns: t.summary.start_ns,
        duration_ns: t.summary.duration_ns,
        raw_start_ns,
        raw_end_ns,
        error_count: t.summary.error_count,
        max_depth: t.summary.max_depth,
        services,
        spans,
        critical_path: t
            .critical_path
            .iter()
            .map(|c| PathSegment {
                span: c.span_index as u32,
                start_ns: c.start_ns,
                end_ns: c.end_ns,
            })
            .collect(),
        missing: t
            .missing
            .iter()
            .filter_map(|m| {
                let span = m.span_index? as u32;
                Some(match m.kind {
                    MissingKind::UninstrumentedCallee => Missing::Uninstrumented {
                        span,
                        peer: m.peer.clone(),
                    },
                    MissingKind::MissingParent => Missing::Parent {
                        span,
                        span_id: m.span_id.clone().unwrap_or_default(),
                    },
                })
            })
            .collect(),
        warnings: t
            .warnings
            .iter()
            .map(|w| match w.span_index {
                Some(i) => format!("{}: {}", name_of(i), w.message),
                None => w.message.clone(),
            })
            .collect(),
        duplicates_merged: t.duplicates_merged,
    }
}

fn key_values(attributes: &[Attribute]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|a| KeyValue {
            key: a.key.clone(),
            value: a.value.clone(),
            kind: a.r#type.clone(),
        })
        .collect()
}

fn detail(s: SpanRecord) -> SpanDetail {
    SpanDetail {
        status: status(&s.status_code),
        parent_span_id: s
            .parent_span_id
            .filter(|p| !p.is_empty() && p.bytes().any(|b| b != b'0')),
        attributes: key_values(&s.attributes),
        resource: key_values(&s.resource_attributes),
        scope_attributes: key_values(&s.scope_attributes),
        events: s
            .events
            .iter()
            .map(|e| EventView {
                time_ns: e.time_ns,
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| LinkView {
                trace_id: l.trace_id.clone(),
                span_id: l.span_id.clone(),
                attributes: key_values(&l.attributes),
            })
            .collect(),
        scope: if s.scope_version.is_empty() {
            s.scope_name
        } else {
            format!("{} {}", s.scope_name, s.scope_version)
        },
        trace_id: s.trace_id,
        span_id: s.span_id,
        service: s.service_name,
        name: s.span_name,
        kind: s.span_kind,
        start_ns: s.start_ns,
        end_ns: s.end_ns,
        status_message: s.status_message,
        trace_state: s.trace_state,
        flags: s.flags,
    }
}

async fn records(
    state: &UiState,
    tenant: &TenantId,
    trace_id: &str,
) -> Result<Vec<SpanRecord>, ServerFnError> {
    let batches = state.traces.spans(tenant, trace_id).await.map_err(failed)?;
    span_records(&batches).map_err(failed)
}

pub async fn span_detail(
    state: &UiState,
    tenant: &TenantId,
    trace_id: &str,
    span_id: &str,
) -> Result<Option<SpanDetail>, ServerFnError> {
    let span_id = span_id.trim().to_ascii_lowercase();
    Ok(records(state, tenant, trace_id)
        .await?
        .into_iter()
        .find(|s| s.span_id == span_id)
        .map(detail))
}

pub async fn find_spans(
    state: &UiState,
    tenant: &TenantId,
    trace_id: &str,
    text: &str,
) -> Result<Vec<String>, ServerFnError> {
    let needle = text.trim().to_lowercase();
    if needle.is_empty() {
        return Ok(Vec::new());
    }
    let hit = |s: &str| s.to_lowercase().contains(&needle);
    let found = records(state, tenant, trace_id)
        .await?
        .into_iter()
        .filter(|s| {
            hit(&s.span_name)
                || hit(&s.service_name)
                || s.span_id.starts_with(&needle)
                || s.attributes
                    .iter()
                    .chain(&s.resource_attributes)
                    .any(|a| hit(&a.key) || hit(&a.value))
                || s.events.iter().any(|e| hit(&e.name))
        })
        .map(|s| s.span_id)
        .collect();
    Ok(found)
}

fn hit(h: spanlake_query::traces::TraceHit) -> TraceHit {
    TraceHit {
        trace_id: h.trace_id,
        root_service: h.root_service,
        root_name: h.root_span_name,
        start_ns: h.start_ns,
        duration_ns: h.duration_ns,
        span_count: h.span_count,
        error_count: h.error_count,
        services: h
            .services
            .into_iter()
            .map(|s| (s.service, s.span_count))
            .collect(),
    }
}

fn search_params(form: &SearchForm) -> Vec<(String, String)> {
    let mut params = vec![
        ("service".to_string(), form.service.clone()),
        ("operation".to_string(), form.operation.clone()),
        ("minDuration".to_string(), form.min_duration.clone()),
        ("maxDuration".to_string(), form.max_duration.clone()),
        (
            "lookback".to_string(),
            if form.lookback.is_empty() {
                "1h".to_string()
            } else {
                form.lookback.clone()
            },
        ),
    ];
    if !form.limit.is_empty() {
        params.push(("limit".into(), form.limit.clone()));
    }
    if form.errors {
        params.push(("errors".into(), "true".into()));
    }
    for (k, v) in form.attribute_filters() {
        params.push(("attr".into(), format!("{k}={v}")));
    }
    params
}

pub async fn search(
    state: &UiState,
    tenant: &TenantId,
    form: &SearchForm,
) -> Result<SearchResults, ServerFnError> {
    let started = std::time::Instant::now();
    let query = spanlake_query::api::traces::search_query(&search_params(form)).map_err(failed)?;
    let hits = state.traces.search(tenant, &query).await.map_err(failed)?;
    Ok(SearchResults {
        hits: hits.into_iter().map(hit).collect(),
        window_start_ns: query.window.start_ns,
        window_end_ns: query.window.end_ns,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

const HOUR: Duration = Duration::from_secs(3600);

pub async fn services(state: &UiState, tenant: &TenantId) -> Result<Vec<String>, ServerFnError> {
    state
        .traces
        .services(tenant, state.traces.catalog_window())
        .await
        .map_err(failed)
}

pub async fn operations(
    state: &UiState,
    tenant: &TenantId,
    service: &str,
) -> Result<Vec<String>, ServerFnError> {
    if service.is_empty() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = state
        .traces
        .operations(tenant, service, None, state.traces.catalog_window())
        .await
        .map_err(failed)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn lookback_window(lookback: &str) -> Result<spanlake_query::traces::Window, ServerFnError> {
    window(None, None, Some(lookback), HOUR).map_err(failed)
}

pub async fn service_map(
    state: &UiState,
    tenant: &TenantId,
    lookback: &str,
) -> Result<ServiceMap, ServerFnError> {
    let window = lookback_window(lookback)?;
    let edges = state
        .traces
        .dependencies(tenant, window)
        .await
        .map_err(failed)?;
    let services = state
        .traces
        .services(tenant, window)
        .await
        .map_err(failed)?;
    Ok(ServiceMap {
        services,
        edges: edges
            .into_iter()
            .map(|d| Edge {
                parent: d.parent,
                child: d.child,
                calls: d.call_count,
                errors: d.error_count,
                p95_ns: d.p95_ns,
            })
            .collect(),
        window_secs: (window.end_ns - window.start_ns) as f64 / 1e9,
    })
}

pub async fn service_overview(
    state: &UiState,
    tenant: &TenantId,
    service: &str,
    lookback: &str,
) -> Result<ServiceOverview, ServerFnError> {
    let window = lookback_window(lookback)?;
    let step_ns = ((window.end_ns - window.start_ns) / 40).max(1_000_000_000);
    let points = state
        .traces
        .red_metrics(
            tenant,
            &spanlake_query::traces::RedQuery {
                window,
                service: Some(service.to_string()),
                by_operation: true,
                step: Duration::from_nanos(step_ns as u64),
            },
        )
        .await
        .map_err(failed)?;
    let mut operations: Vec<OperationSeries> = Vec::new();
    for p in points {
        let name = p.operation.clone().unwrap_or_default();
        let sample = RedSample {
            bucket_start_ns: p.bucket_start_ns,
            requests: p.requests,
            errors: p.errors,
            rate: p.rate,
            error_rate: p.error_rate,
            p50_ns: p.p50_ns,
            p95_ns: p.p95_ns,
            p99_ns: p.p99_ns,
        };
        match operations.iter_mut().find(|o| o.operation == name) {
            Some(o) => o.points.push(sample),
            None => operations.push(OperationSeries {
                operation: name,
                points: vec![sample],
            }),
        }
    }
    for o in &mut operations {
        o.points.sort_by_key(|p| p.bucket_start_ns);
    }
    operations.sort_by_key(|o| std::cmp::Reverse(o.points.iter().map(|p| p.requests).sum::<i64>()));
    let mut query = spanlake_query::traces::SearchQuery::new(window);
    query.service = Some(service.to_string());
    query.limit = 200;
    let mut slowest: Vec<TraceHit> = state
        .traces
        .search(tenant, &query)
        .await
        .map_err(failed)?
        .into_iter()
        .map(hit)
        .collect();
    slowest.sort_by_key(|h| std::cmp::Reverse(h.duration_ns));
    slowest.truncate(10);
    query.errors_only = true;
    query.limit = 10;
    let failing = state
        .traces
        .search(tenant, &query)
        .await
        .map_err(failed)?
        .into_iter()
        .map(hit)
        .collect();
    Ok(ServiceOverview {
        service: service.to_string(),
        window_start_ns: window.start_ns,
        window_end_ns: window.end_ns,
        step_ns,
        operations,
        slowest,
        failing,
    })
}

/// Most rows the SQL page shows; the CSV download has the engine's own cap.
const SQL_PAGE_ROWS: usize = 1000;

pub async fn run_sql(
    state: &UiState,
    tenant: &TenantId,
    sql: &str,
) -> Result<SqlResult, ServerFnError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let output = state
        .traces
        .engine()
        .sql(tenant, sql)
        .await
        .map_err(failed)?;
    let columns = output
        .schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    let mut truncated = output.truncated;
    'batches: for batch in &output.batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .map_err(|e| ServerFnError::new(e.to_string()))?;
        for row in 0..batch.num_rows() {
            if rows.len() == SQL_PAGE_ROWS {
                truncated = true;
                break 'batches;
            }
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(SqlResult {
        columns,
        rows,
        truncated,
        elapsed_ms: output.elapsed.as_millis() as u64,
        rows_read: output.rows_read,
        bytes_read: output.bytes_read,
    })
}
