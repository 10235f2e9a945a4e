//! Call-chain queries over the `spans` table, each one a DataFusion plan: a whole trace by id,
//! trace search, services and operations, the service dependency graph and RED metrics.
//!
//! Statements are fixed text written here; every value that comes from a user travels as a
//! `$n` parameter, never spliced into SQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use datafusion::common::ScalarValue;
use serde::Serialize;
use spanlake_storage::{TenantId, TimeRange};

use crate::assemble::{AssembledTrace, assemble};
use crate::records::span_records;
use crate::table::start_bounds;
use crate::{Error, QueryEngine, Result};

/// A window of span start times, UNIX nanoseconds, `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Window {
    /// The `lookback` before now.
    pub fn last(lookback: Duration) -> Self {
        let now = now_ns();
        Self {
            start_ns: now.saturating_sub(lookback.as_nanos() as i64),
            end_ns: now.saturating_add(60_000_000_000),
        }
    }

    fn params(&self) -> [ScalarValue; 2] {
        [ts(self.start_ns), ts(self.end_ns)]
    }
}

/// About how many spans the first slice of a newest-first search covers: about one row group
/// per file, so a common match is found after reading a small part of a large window. A rare
/// match reads the whole window whatever the first slice (a few more, smaller, queries);
/// 100 000 instead of 500 000 took common-match searches at 10 M spans from ~600 to ~220 ms
/// (BENCHMARKS.md).
pub(crate) const FIRST_SLICE_SPANS: u64 = 100_000;

/// A window cut into slices of time, newest first, each four times longer than the one
/// before, for searches that want the newest matches: they read slice after slice until they
/// have enough, and the files and row groups of older slices are never opened. The first
/// slice is sized from the catalog to hold about a given number of spans, were they spread
/// evenly; the slices cover only the part of the window that holds spans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slices {
    start_ns: i64,
    upper_ns: i64,
    step_ns: i64,
}

impl Slices {
    pub(crate) fn new(
        engine: &QueryEngine,
        tenant: &TenantId,
        window: Window,
        first_slice_spans: u64,
    ) -> Self {
        let snapshot = engine.snapshot(
            tenant,
            &TimeRange {
                start_ns: window.start_ns,
                end_ns: window.end_ns,
            },
        );
        let (mut first, mut last, mut spans) = (i64::MAX, i64::MIN, 0u64);
        for file in &snapshot.files {
            first = first.min(file.meta.min_start_ns);
            last = last.max(file.meta.max_start_ns);
            spans += file.meta.rows;
        }
        for batch in &snapshot.batches {
            if let Some((lo, hi)) = start_bounds(batch) {
                first = first.min(lo);
                last = last.max(hi);
                spans += batch.num_rows() as u64;
            }
        }
        let start_ns = window.start_ns.max(first);
        let upper_ns = window.end_ns.min(last.saturating_add(1));
        let length = upper_ns.saturating_sub(start_ns) as f64;
        let share = (first_slice_spans as f64 / spans.max(1) as f64).min(1.0);
        Slices {
            start_ns,
            upper_ns,
            step_ns: ((length * share) as i64).max(1_000_000),
        }
    }
}

impl Iterator for Slices {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        if self.upper_ns <= self.start_ns {
            return None;
        }
        let lower = self
            .upper_ns
            .saturating_sub(self.step_ns)
            .max(self.start_ns);
        let slice = Window {
            start_ns: lower,
            end_ns: self.upper_ns,
        };
        self.upper_ns = lower;
        self.step_ns = self.step_ns.saturating_mul(4);
        Some(slice)
    }
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn ts(ns: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()))
}

fn text(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

/// What to search for. A trace matches when one of its spans matches every condition given.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub window: Window,
    pub service: Option<String>,
    pub operation: Option<String>,
    /// `SERVER`, `CLIENT`, ...
    pub span_kind: Option<String>,
    /// `key = value` (as stored text: `123`, `72.5`, `true`) on one span: in its attributes,
    /// its resource's, its scope's, one of its events' or one of its links', as Jaeger
    /// matches tags; `error=true` means status ERROR.
    pub attributes: Vec<(String, String)>,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    pub errors_only: bool,
    pub limit: usize,
}

impl SearchQuery {
    pub fn new(window: Window) -> Self {
        Self {
            window,
            service: None,
            operation: None,
            span_kind: None,
            attributes: Vec::new(),
            min_duration_ns: None,
            max_duration_ns: None,
            errors_only: false,
            limit: 20,
        }
    }
}

/// Spans and errors of one service within a trace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceCount {
    pub service: String,
    pub span_count: i64,
    pub error_count: i64,
}

/// One search result: a trace summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceHit {
    pub trace_id: String,
    /// Service and name of the root span; `None` while the root has not arrived.
    pub root_service: Option<String>,
    pub root_span_name: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub span_count: i64,
    pub error_count: i64,
    /// Sorted by span count, descending.
    pub services: Vec<ServiceCount>,
}

/// One operation of a service.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Operation {
    pub name: String,
    pub span_kind: String,
    pub span_count: i64,
}

/// An edge of the service dependency graph: `parent` called `child`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: i64,
    pub error_count: i64,
    pub p50_ns: f64,
    pub p95_ns: f64,
    pub p99_ns: f64,
}

/// RED metrics of one service (and operation) in one time bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedPoint {
    pub service: String,
    /// `None` when grouped by service only.
    pub operation: Option<String>,
    pub bucket_start_ns: i64,
    pub requests: i64,
    pub errors: i64,
    /// Requests per second over the bucket.
    pub rate: f64,
    /// Errors divided by requests.
    pub error_rate: f64,
    pub p50_ns: f64,
    pub p95_ns: f64,
    pub p99_ns: f64,
}

/// What [`Traces::red_metrics`] computes.
#[derive(Debug, Clone)]
pub struct RedQuery {
    pub window: Window,
    pub service: Option<String>,
    pub by_operation: bool,
    pub step: Duration,
}

/// Call-chain queries for the APIs.
#[derive(Debug, Clone)]
pub struct Traces {
    engine: Arc<QueryEngine>,
}

fn strings(batch: &RecordBatch, i: usize) -> &arrow::array::StringArray {
    batch.column(i).as_string::<i32>()
}

fn int(batch: &RecordBatch, i: usize, row: usize) -> i64 {
    batch.column(i).as_primitive::<Int64Type>().value(row)
}

fn float(batch: &RecordBatch, i: usize, row: usize) -> f64 {
    let c = batch.column(i);
    if c.is_null(row) {
        return 0.0;
    }
    c.as_primitive_opt::<Float64Type>()
        .map(|a| a.value(row))
        .or_else(|| {
            c.as_primitive_opt::<Int64Type>()
                .map(|a| a.value(row) as f64)
        })
        .unwrap_or(0.0)
}

fn timestamp(batch: &RecordBatch, i: usize, row: usize) -> i64 {
    batch
        .column(i)
        .as_primitive::<TimestampNanosecondType>()
        .value(row)
}

/// Lowercase hex of 32 digits, as stored; also accepts shorter ids (Jaeger trims leading zeros).
pub fn normalize_trace_id(id: &str) -> Result<String> {
    let id = id.trim().to_ascii_lowercase();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadRequest(format!(
            "invalid trace id {id:?}: expected up to 32 hex digits"
        )));
    }
    Ok(format!("{id:0>32}"))
}

impl Traces {
    pub fn new(engine: Arc<QueryEngine>) -> Self {
        Self { engine }
    }

    pub fn engine(&self) -> &Arc<QueryEngine> {
        &self.engine
    }

    /// The spans of one trace, in storage order; empty when the trace is unknown. No time range
    /// is needed: the catalog's trace-id filters choose the files.
    pub async fn spans(&self, tenant: &TenantId, trace_id: &str) -> Result<Vec<RecordBatch>> {
        let id = normalize_trace_id(trace_id)?;
        self.engine
            .query(
                tenant,
                "SELECT * FROM spans WHERE trace_id = $1",
                vec![text(&id)],
            )
            .await
    }

    /// The whole trace as a tree with its analyses, or `None` when no span of it is stored.
    pub async fn trace(&self, tenant: &TenantId, trace_id: &str) -> Result<Option<AssembledTrace>> {
        let batches = self.spans(tenant, trace_id).await?;
        let records = span_records(&batches)?;
        if records.is_empty() {
            return Ok(None);
        }
        let assembled = tokio::task::spawn_blocking(move || assemble(records))
            .await
            .map_err(|e| Error::Internal(format!("assembly task: {e}")))?;
        Ok(Some(assembled))
    }

    /// Traces with a span matching `query`, newest first.
    pub async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> Result<Vec<TraceHit>> {
        let ids = self.search_ids(tenant, query, FIRST_SLICE_SPANS).await?;
        self.summaries(tenant, &ids).await
    }

    /// Ids of the newest traces matching `query`, newest first; the first slice of time read
    /// holds about `first_slice_spans` spans.
    async fn search_ids(
        &self,
        tenant: &TenantId,
        query: &SearchQuery,
        first_slice_spans: u64,
    ) -> Result<Vec<String>> {
        // $1 and $2 are the bounds of the slice being read (inside the window), set per slice.
        let mut params: Vec<ScalarValue> = query.window.params().into();
        let mut conditions = vec![
            "start_time >= $1".to_string(),
            "start_time < $2".to_string(),
        ];
        let mut bind = |condition: &str, value: ScalarValue, params: &mut Vec<ScalarValue>| {
            params.push(value);
            conditions.push(condition.replace('?', &format!("${}", params.len())));
        };
        if let Some(service) = &query.service {
            bind("service_name = ?", text(service), &mut params);
        }
        if let Some(operation) = &query.operation {
            bind("span_name = ?", text(operation), &mut params);
        }
        if let Some(kind) = &query.span_kind {
            bind(
                "span_kind = ?",
                text(&kind.to_ascii_uppercase()),
                &mut params,
            );
        }
        if let Some(min) = query.min_duration_ns {
            bind(
                "duration_ns >= ?",
                ScalarValue::Int64(Some(min)),
                &mut params,
            );
        }
        if let Some(max) = query.max_duration_ns {
            bind(
                "duration_ns <= ?",
                ScalarValue::Int64(Some(max)),
                &mut params,
            );
        }
        let mut errors_only = query.errors_only;
        for (key, value) in &query.attributes {
            if key == "error" && value == "true" {
                errors_only = true;
                continue;
            }
            params.push(text(key));
            params.push(text(value));
            let (k, v) = (params.len() - 1, params.len());
            conditions.push(format!(
                "(attributes[${k}] = ${v} OR resource_attributes[${k}] = ${v} \
                 OR scope_attributes[${k}] = ${v} OR has_attribute(events, ${k}, ${v}) \
                 OR has_attribute(links, ${k}, ${v}))"
            ));
        }
        if errors_only {
            conditions.push("status_code = 'ERROR'".into());
        }
        let limit = query.limit.max(1);
        // Newest first, slice after slice, until `limit` traces are found. Exact: a trace not
        // yet found has no matching span in the slices read so far, so it ranks below every
        // trace found, whose latest matching span is in them.
        let sql = format!(
            "SELECT trace_id, max(start_time) AS latest FROM spans WHERE {} \
             GROUP BY trace_id ORDER BY latest DESC LIMIT {limit}",
            conditions.join(" AND "),
        );
        let mut ids: Vec<String> = Vec::new();
        for slice in Slices::new(&self.engine, tenant, query.window, first_slice_spans) {
            let mut bound = params.clone();
            bound[..2].clone_from_slice(&slice.params());
            for b in self.engine.query(tenant, &sql, bound).await? {
                let found = strings(&b, 0);
                for i in 0..b.num_rows() {
                    let id = found.value(i);
                    if !ids.iter().any(|known| known == id) {
                        ids.push(id.to_string());
                    }
                }
            }
            if ids.len() >= limit {
                break;
            }
        }
        ids.truncate(limit);
        Ok(ids)
    }

    /// Summaries of the given traces, newest first.
    pub async fn summaries(&self, tenant: &TenantId, ids: &[String]) -> Result<Vec<TraceHit>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let list = placeholders.join(", ");
        let params: Vec<ScalarValue> = ids.iter().map(|id| text(id)).collect();
        // One scan: per trace and service, the counts and bounds, and the earliest parentless
        // span (the root candidate of that service).
        let per_service = self
            .engine
            .query(
                tenant,
                &format!(
                    "SELECT trace_id, service_name, count(*) AS spans, \
                     count(*) FILTER (WHERE status_code = 'ERROR') AS errors, \
                     min(start_time) AS first_start, max(end_time) AS last_end, \
                     min(start_time) FILTER (WHERE parent_span_id IS NULL) AS root_start, \
                     first_value(span_name ORDER BY start_time) \
                       FILTER (WHERE parent_span_id IS NULL) AS root_name \
                     FROM spans WHERE trace_id IN ({list}) GROUP BY trace_id, service_name"
                ),
                params,
            )
            .await?;
        let mut hits: HashMap<String, (TraceHit, i64)> = HashMap::new();
        // The earliest parentless span is the root.
        let mut root_start: HashMap<String, i64> = HashMap::new();
        for b in &per_service {
            let (trace, service) = (strings(b, 0), strings(b, 1));
            let (root_starts, root_names) = (b.column(6), strings(b, 7));
            for row in 0..b.num_rows() {
                let (first, last) = (timestamp(b, 4, row), timestamp(b, 5, row));
                let id = trace.value(row);
                let (hit, end) = hits.entry(id.to_string()).or_insert_with(|| {
                    (
                        TraceHit {
                            trace_id: id.to_string(),
                            root_service: None,
                            root_span_name: None,
                            start_ns: first,
                            duration_ns: 0,
                            span_count: 0,
                            error_count: 0,
                            services: Vec::new(),
                        },
                        last,
                    )
                });
                let (spans, errors) = (int(b, 2, row), int(b, 3, row));
                hit.start_ns = hit.start_ns.min(first);
                *end = (*end).max(last);
                hit.span_count += spans;
                hit.error_count += errors;
                hit.services.push(ServiceCount {
                    service: service.value(row).to_string(),
                    span_count: spans,
                    error_count: errors,
                });
                if root_starts.is_null(row) || root_names.is_null(row) {
                    continue;
                }
                let start = timestamp(b, 6, row);
                if root_start.get(id).is_some_and(|s| *s <= start) {
                    continue;
                }
                root_start.insert(id.to_string(), start);
                hit.root_service = Some(service.value(row).to_string());
                hit.root_span_name = Some(root_names.value(row).to_string());
            }
        }
        let mut out: Vec<TraceHit> = hits
            .into_values()
            .map(|(mut hit, end)| {
                hit.duration_ns = end - hit.start_ns;
                hit.services.sort_by(|a, b| {
                    b.span_count
                        .cmp(&a.span_count)
                        .then_with(|| a.service.cmp(&b.service))
                });
                hit
            })
            .collect();
        out.sort_by(|a, b| {
            b.start_ns
                .cmp(&a.start_ns)
                .then_with(|| a.trace_id.cmp(&b.trace_id))
        });
        Ok(out)
    }

    /// Where the service and operation pickers look when a request gives no time range:
    /// everything stored, that is the retention period, or all time without one.
    pub fn catalog_window(&self) -> Window {
        let end_ns = now_ns().saturating_add(60_000_000_000);
        let start_ns = self.engine.retention().map_or(0, |kept| {
            end_ns.saturating_sub(kept.as_nanos().min(i64::MAX as u128) as i64)
        });
        Window { start_ns, end_ns }
    }

    /// Services with spans in `window`, sorted.
    pub async fn services(&self, tenant: &TenantId, window: Window) -> Result<Vec<String>> {
        let batches = self
            .engine
            .query(
                tenant,
                "SELECT DISTINCT service_name FROM spans \
                 WHERE start_time >= $1 AND start_time < $2 ORDER BY service_name",
                window.params().into(),
            )
            .await?;
        Ok(batches
            .iter()
            .flat_map(|b| {
                let s = strings(b, 0);
                (0..b.num_rows()).map(move |i| s.value(i).to_string())
            })
            .collect())
    }

    /// Operations (span names and kinds) of `service` in `window`, optionally of one kind.
    pub async fn operations(
        &self,
        tenant: &TenantId,
        service: &str,
        span_kind: Option<&str>,
        window: Window,
    ) -> Result<Vec<Operation>> {
        let mut params: Vec<ScalarValue> = window.params().into();
        params.push(text(service));
        let mut sql = "SELECT span_name, span_kind, count(*) AS n FROM spans \
                       WHERE start_time >= $1 AND start_time < $2 AND service_name = $3"
            .to_string();
        if let Some(kind) = span_kind {
            params.push(text(&kind.to_ascii_uppercase()));
            sql.push_str(" AND span_kind = $4");
        }
        sql.push_str(" GROUP BY span_name, span_kind ORDER BY span_name, span_kind");
        let batches = self.engine.query(tenant, &sql, params).await?;
        let mut out = Vec::new();
        for b in &batches {
            let (name, kind) = (strings(b, 0), strings(b, 1));
            for row in 0..b.num_rows() {
                out.push(Operation {
                    name: name.value(row).to_string(),
                    span_kind: kind.value(row).to_string(),
                    span_count: int(b, 2, row),
                });
            }
        }
        Ok(out)
    }

    /// Calls between services in `window`: CLIENT -> SERVER and PRODUCER -> CONSUMER parent
    /// links, with the callee spans' error count and latency percentiles.
    pub async fn dependencies(&self, tenant: &TenantId, window: Window) -> Result<Vec<Dependency>> {
        let batches = self
            .engine
            .query(
                tenant,
                "SELECT p.service_name AS parent, c.service_name AS child, count(*) AS calls, \
                 count(*) FILTER (WHERE c.status_code = 'ERROR') AS errors, \
                 approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY c.duration_ns) AS p50, \
                 approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY c.duration_ns) AS p95, \
                 approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY c.duration_ns) AS p99 \
                 FROM spans c JOIN spans p \
                   ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
                 WHERE c.start_time >= $1 AND c.start_time < $2 \
                   AND p.start_time >= $1 - INTERVAL '1 hour' AND p.start_time < $2 \
                   AND ((p.span_kind = 'CLIENT' AND c.span_kind = 'SERVER') \
                     OR (p.span_kind = 'PRODUCER' AND c.span_kind = 'CONSUMER')) \
                 GROUP BY p.service_name, c.service_name ORDER BY parent, child",
                window.params().into(),
            )
            .await?;
        let mut out = Vec::new();
        for b in &batches {
            let (parent, child) = (strings(b, 0), strings(b, 1));
            for row in 0..b.num_rows() {
                out.push(Dependency {
                    parent: parent.value(row).to_string(),
                    child: child.value(row).to_string(),
                    call_count: int(b, 2, row),
                    error_count: int(b, 3, row),
                    p50_ns: float(b, 4, row),
                    p95_ns: float(b, 5, row),
                    p99_ns: float(b, 6, row),
                });
            }
        }
        Ok(out)
    }

    /// Request rate, error rate and latency percentiles of entry spans (SERVER, CONSUMER) per
    /// service, or per service and operation, in buckets of `step`.
    pub async fn red_metrics(&self, tenant: &TenantId, query: &RedQuery) -> Result<Vec<RedPoint>> {
        let step_ns = query.step.as_nanos().clamp(1_000_000, i64::MAX as u128) as i64;
        let mut params: Vec<ScalarValue> = query.window.params().into();
        let mut filter = String::new();
        if let Some(service) = &query.service {
            params.push(text(service));
            filter = " AND service_name = $3".into();
        }
        let (operation, group) = if query.by_operation {
            ("span_name", "service_name, span_name, bucket")
        } else {
            ("CAST(NULL AS VARCHAR)", "service_name, bucket")
        };
        // The step is a number we parsed, not user text.
        let sql = format!(
            "SELECT service_name, {operation} AS operation, \
             date_bin(INTERVAL '{step_ns} nanoseconds', start_time, TIMESTAMP '1970-01-01T00:00:00Z') AS bucket, \
             count(*) AS requests, count(*) FILTER (WHERE status_code = 'ERROR') AS errors, \
             approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) AS p50, \
             approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns) AS p95, \
             approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) AS p99 \
             FROM spans WHERE start_time >= $1 AND start_time < $2 \
             AND span_kind IN ('SERVER', 'CONSUMER'){filter} \
             GROUP BY {group} ORDER BY service_name, operation, bucket"
        );
        let batches = self.engine.query(tenant, &sql, params).await?;
        let mut out = Vec::new();
        for b in &batches {
            let (service, op) = (strings(b, 0), strings(b, 1));
            for row in 0..b.num_rows() {
                let (requests, errors) = (int(b, 3, row), int(b, 4, row));
                out.push(RedPoint {
                    service: service.value(row).to_string(),
                    operation: (!op.is_null(row)).then(|| op.value(row).to_string()),
                    bucket_start_ns: timestamp(b, 2, row),
                    requests,
                    errors,
                    rate: requests as f64 / (step_ns as f64 / 1e9),
                    error_rate: if requests > 0 {
                        errors as f64 / requests as f64
                    } else {
                        0.0
                    },
                    p50_ns: float(b, 5, row),
                    p95_ns: float(b, 6, row),
                    p99_ns: float(b, 7, row),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryLimits;
    use spanlake_storage::batch::{SpanBatchBuilder, SpanFields, SpanKind};
    use spanlake_storage::{SpanSink, Store, StoreConfig};

    const MINUTE: i64 = 60_000_000_000;
    const T0: i64 = 1_700_000_000_000_000_000;

    /// Trace `n` (hex of n) with spans at the given minutes after T0, of `service`.
    fn trace(n: u64, service: &str, minutes: &[i64]) -> RecordBatch {
        let mut b = SpanBatchBuilder::new();
        let trace_id = [[0; 8], n.to_be_bytes()].concat();
        for (i, m) in minutes.iter().enumerate() {
            b.begin_span(&SpanFields {
                trace_id: &trace_id,
                span_id: &((n << 8) | (i as u64 + 1)).to_be_bytes(),
                service_name: service,
                name: "op",
                kind: SpanKind::Server,
                start_unix_nano: T0 + m * MINUTE,
                end_unix_nano: T0 + m * MINUTE + 1_000_000,
                ..SpanFields::default()
            });
            b.end_span();
        }
        b.finish().unwrap()
    }

    /// Newest-first slices give the same traces as one query over the whole window, whatever
    /// the first slice's size: with matches only in old data, with a trace matching both early
    /// and late, and with spans both in files and in memory.
    #[tokio::test]
    async fn newest_first_search_finds_what_a_whole_window_scan_finds() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.flush_interval = Duration::from_secs(3600);
        let store = Arc::new(Store::open(config).await.unwrap());
        let tenant = TenantId::default_tenant();
        // Five hours, one trace a minute; every 7th trace is "rare" (at the oldest end only
        // every 7th of the first hour); trace 1000 matches at minute 1 and minute 290.
        for hour in 0..5i64 {
            for m in hour * 60..hour * 60 + 60 {
                let service = match m {
                    _ if m < 60 && m % 7 == 0 => "rare",
                    _ if m % 3 == 0 => "common",
                    _ => "other",
                };
                store
                    .append(&tenant, trace(m as u64 + 1, service, &[m, m + 2]))
                    .await
                    .unwrap();
            }
            if hour < 4 {
                store.flush().await.unwrap(); // the last hour stays in memory
            }
        }
        store
            .append(&tenant, trace(1000, "rare", &[1, 290]))
            .await
            .unwrap();
        store
            .append(&tenant, trace(1000, "other", &[150]))
            .await
            .unwrap();
        let engine = Arc::new(QueryEngine::new(store, QueryLimits::default()).unwrap());
        let traces = Traces::new(Arc::clone(&engine));

        let window = Window {
            start_ns: T0 - MINUTE,
            end_ns: T0 + 400 * MINUTE,
        };
        for (service, limit) in [("rare", 3), ("rare", 50), ("common", 5), ("common", 500)] {
            let mut query = SearchQuery::new(window);
            query.service = Some(service.into());
            query.limit = limit;
            let expected: Vec<String> = engine
                .query(
                    &tenant,
                    &format!(
                        "SELECT trace_id, max(start_time) AS latest FROM spans \
                         WHERE service_name = $1 GROUP BY trace_id \
                         ORDER BY latest DESC, trace_id LIMIT {limit}"
                    ),
                    vec![text(service)],
                )
                .await
                .unwrap()
                .iter()
                .flat_map(|b| {
                    let ids = strings(b, 0);
                    (0..b.num_rows()).map(move |i| ids.value(i).to_string())
                })
                .collect();
            assert!(!expected.is_empty());
            for first_slice in [1, 10, 100, 1_000_000] {
                let found = traces
                    .search_ids(&tenant, &query, first_slice)
                    .await
                    .unwrap();
                assert_eq!(
                    found, expected,
                    "{service}, limit {limit}, first slice {first_slice}"
                );
            }
        }
        // Slices tile the stored part of the window, newest first, growing.
        let slices: Vec<Window> = Slices::new(&engine, &tenant, window, 1).collect();
        assert!(slices.len() > 3);
        assert_eq!(slices[0].end_ns, T0 + 301 * MINUTE + 1);
        assert_eq!(slices.last().unwrap().start_ns, T0);
        for pair in slices.windows(2) {
            assert_eq!(pair[1].end_ns, pair[0].start_ns);
            assert!(pair[1].end_ns - pair[1].start_ns >= pair[0].end_ns - pair[0].start_ns);
        }

        // A time filter keeps the memory batches outside it unread: from minute 295 on, only
        // the 7 in-memory traces of minutes 293-299 (2 spans each); the files end at minute 241.
        let recent = engine
            .query_measured(
                &tenant,
                "SELECT count(*) FROM spans WHERE start_time >= $1",
                vec![ts(T0 + 295 * MINUTE)],
            )
            .await
            .unwrap();
        assert_eq!(recent.rows_read, 14);

        // The trace matching early and late ranks by its late span.
        let mut query = SearchQuery::new(window);
        query.service = Some("rare".into());
        query.limit = 1;
        let found = traces.search(&tenant, &query).await.unwrap();
        assert_eq!(found[0].trace_id, format!("{:032x}", 1000));
        assert_eq!(found[0].span_count, 3);
    }
}
