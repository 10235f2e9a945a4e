//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the native API.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
}

fn window_params() -> Vec<Value> {
    vec![
        param(
            "start",
            "Start of the time range: RFC 3339 or a UNIX timestamp (s, ms, us or ns, read from its size).",
        ),
        param("end", "End of the time range (default now)."),
        param(
            "lookback",
            "Length of the range before `end` when `start` is absent, e.g. `1h`.",
        ),
    ]
}

fn tenant_header() -> Value {
    json!({"name": "X-Scope-OrgID", "in": "header", "required": false,
           "description": "Tenant; absent means `single-tenant`.", "schema": {"type": "string"}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({
        "200": {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": {"description": "Invalid parameters; `error` says which.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    })
}

/// The document.
pub fn document() -> Value {
    let mut search_params = vec![
        param(
            "q",
            "A TraceQL query, e.g. `{ resource.service.name = \"cart\" } >> { status = error }`; \
             the answer then lists each trace's `spansets`. Not combined with the field \
             parameters below.",
        ),
        param(
            "spss",
            "With `q`: most spans shown per spanset (default 3).",
        ),
        param("service", "Service name."),
        param("operation", "Span name."),
        param(
            "kind",
            "Span kind: SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL.",
        ),
        param(
            "attr",
            "Attribute filters `key=value` (logfmt, repeatable); `error=true` means status ERROR.",
        ),
        param("tags", "Same as `attr`, also as a JSON object."),
        param("minDuration", "Minimum span duration, e.g. `150ms`."),
        param("maxDuration", "Maximum span duration."),
        param("errors", "`true`: only spans with status ERROR."),
        param("limit", "Most traces to return (default 20, at most 1000)."),
    ];
    search_params.extend(window_params());
    search_params.push(tenant_header());
    let mut window_only = window_params();
    window_only.push(tenant_header());
    let mut metrics_params = vec![
        param("service", "Only this service."),
        param("byOperation", "`true`: one series per operation."),
        param("step", "Bucket width, e.g. `1m` (default: the range / 60)."),
    ];
    metrics_params.extend(window_params());
    metrics_params.push(tenant_header());
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Spanlake API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Traces, search, service graph, RED metrics and SQL over spans."},
        "paths": {
            "/api/sql": {"post": {
                "summary": "Run a read-only SQL query over the `spans` table.",
                "parameters": [{"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "arrow"]}}, tenant_header()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["sql"], "properties": {"sql": {"type": "string"}}}}}},
                "responses": ok("Rows; CSV or an Arrow IPC stream when asked.", json!({"$ref": "#/components/schemas/SqlResult"}))
            }, "get": {
                "summary": "The same query given in the URL, for links and downloads.",
                "parameters": [{"name": "q", "in": "query", "required": true, "schema": {"type": "string"}},
                               {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "arrow"]}},
                               {"name": "download", "in": "query", "description": "`1`: answer as a file attachment.", "schema": {"type": "string"}},
                               tenant_header()],
                "responses": ok("Rows; CSV or an Arrow IPC stream when asked.", json!({"$ref": "#/components/schemas/SqlResult"}))
            }},
            "/api/traces/{trace_id}": {"get": {
                "summary": "A whole trace as a tree: clock-skew adjusted times, critical path, network gaps, error origins, missing spans and a summary. No time range needed.",
                "parameters": [{"name": "trace_id", "in": "path", "required": true, "schema": {"type": "string"}}, tenant_header()],
                "responses": {"200": {"description": "The assembled trace."}, "404": {"description": "No span of this trace is stored."}}
            }},
            "/api/search": {"get": {
                "summary": "Traces with a span matching every condition, newest first.",
                "parameters": search_params,
                "responses": ok("Trace summaries.", json!({"type": "object", "properties": {"traces": {"type": "array", "items": {"$ref": "#/components/schemas/TraceHit"}}}}))
            }},
            "/api/services": {"get": {
                "summary": "Services with spans in the range (default: the last 7 days).",
                "parameters": window_only.clone(),
                "responses": ok("Service names.", json!({"type": "object", "properties": {"services": {"type": "array", "items": {"type": "string"}}}}))
            }},
            "/api/services/{service}/operations": {"get": {
                "summary": "Span names and kinds of a service.",
                "parameters": [{"name": "service", "in": "path", "required": true, "schema": {"type": "string"}}, param("kind", "Only this span kind.")],
                "responses": ok("Operations.", json!({"type": "object"}))
            }},
            "/api/dependencies": {"get": {
                "summary": "Service dependency graph: CLIENT->SERVER and PRODUCER->CONSUMER calls with counts, errors and latency percentiles.",
                "parameters": window_only,
                "responses": ok("Edges.", json!({"type": "object"}))
            }},
            "/api/metrics": {"get": {
                "summary": "RED metrics of entry spans (SERVER, CONSUMER) per service or operation in time buckets.",
                "parameters": metrics_params,
                "responses": ok("Points.", json!({"type": "object"}))
            }}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            "SqlResult": {"type": "object", "properties": {
                "meta": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "type": {"type": "string"}}}},
                "data": {"type": "array", "items": {"type": "object"}},
                "rows": {"type": "integer"},
                "statistics": {"type": "object", "properties": {"elapsed_ms": {"type": "number"}, "rows_read": {"type": "integer"}, "bytes_read": {"type": "integer"}, "truncated": {"type": "boolean"}}}}},
            "TraceHit": {"type": "object", "properties": {
                "trace_id": {"type": "string"}, "root_service": {"type": ["string", "null"]}, "root_span_name": {"type": ["string", "null"]},
                "start_ns": {"type": "integer"}, "duration_ns": {"type": "integer"}, "span_count": {"type": "integer"}, "error_count": {"type": "integer"},
                "services": {"type": "array", "items": {"type": "object", "properties": {"service": {"type": "string"}, "span_count": {"type": "integer"}, "error_count": {"type": "integer"}}}}}}
        }}
    })
}

pub fn router() -> Router {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}
