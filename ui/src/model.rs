//! What the pages show, as the server functions send it: compact views of the query results,
//! shaped for drawing rather than for storage. The same types are compiled into the server and
//! into the browser's wasm, so they hold only plain data.

use serde::{Deserialize, Serialize};

/// One trace, ready for the waterfall. Spans are in display (depth-first) order; every index
/// (`parent`, `critical_path`, `missing`) refers to [`TraceView::spans`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    pub trace_id: String,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    /// Earliest skew-adjusted start, UNIX nanoseconds.
    pub start_ns: i64,
    /// Latest adjusted end minus [`TraceView::start_ns`].
    pub duration_ns: i64,
    /// Earliest raw start and latest raw end, for the raw (unadjusted) timeline.
    pub raw_start_ns: i64,
    pub raw_end_ns: i64,
    pub error_count: usize,
    pub max_depth: usize,
    /// Services with their span counts, most spans first; `SpanRow::service` indexes this.
    pub services: Vec<ServiceSpans>,
    pub spans: Vec<SpanRow>,
    /// Stretches of spans that made up the root's latency, adjusted times.
    pub critical_path: Vec<PathSegment>,
    /// Spans that should be there and are not.
    pub missing: Vec<Missing>,
    /// What assembly had to correct.
    pub warnings: Vec<String>,
    pub duplicates_merged: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpans {
    pub name: String,
    pub spans: usize,
}

/// One row of the waterfall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanRow {
    pub span_id: String,
    pub parent: Option<u32>,
    pub depth: u32,
    /// Number of direct children (they follow the row in display order).
    pub children: u32,
    /// Index into [`TraceView::services`].
    pub service: u32,
    pub name: String,
    /// `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER`, `INTERNAL` or `UNSPECIFIED`.
    pub kind: String,
    /// Raw start and end on the emitting host's clock, UNIX nanoseconds.
    pub start_ns: i64,
    pub end_ns: i64,
    /// What clock-skew correction adds to the raw times.
    pub shift_ns: i64,
    pub status: Status,
    pub status_message: String,
    /// Status ERROR with no ERROR below it: where a failure started.
    pub error_origin: bool,
    /// Its parent never arrived.
    pub orphan: bool,
    /// Its parent link was cut to break a cycle.
    pub cycle_broken: bool,
    /// Time of the span itself on the critical path.
    pub critical_ns: i64,
    /// For a SERVER (CONSUMER) child of a CLIENT (PRODUCER) span: the time on the wire before
    /// and after it, as seen from the caller.
    pub hop: Option<Hop>,
}

impl SpanRow {
    /// Start on the chosen timeline.
    pub fn start(&self, adjusted: bool) -> i64 {
        if adjusted {
            self.start_ns.saturating_add(self.shift_ns)
        } else {
            self.start_ns
        }
    }

    /// End on the chosen timeline (never before the start).
    pub fn end(&self, adjusted: bool) -> i64 {
        let end = self.end_ns.max(self.start_ns);
        if adjusted {
            end.saturating_add(self.shift_ns)
        } else {
            end
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Unset,
    Ok,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub gap_before_ns: i64,
    pub gap_after_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSegment {
    pub span: u32,
    pub start_ns: i64,
    pub end_ns: i64,
}

/// A span that is not in the trace but should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Missing {
    /// A CLIENT or PRODUCER span whose callee sent no span; `peer` names who was called.
    Uninstrumented { span: u32, peer: Option<String> },
    /// Spans name this parent id, which never arrived; `span` is the first of them.
    Parent { span: u32, span_id: String },
}

/// Everything about one span, for the details panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanDetail {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status: Status,
    pub status_message: String,
    pub trace_state: String,
    pub scope: String,
    pub flags: u32,
    pub attributes: Vec<KeyValue>,
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's attributes.
    #[serde(default)]
    pub scope_attributes: Vec<KeyValue>,
    pub events: Vec<EventView>,
    pub links: Vec<LinkView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// `string`, `int`, `double`, `bool`, `bytes`, `array`, `kvlist`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub time_ns: i64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Vec<KeyValue>,
}

/// The search form, as it appears in the URL of `/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchForm {
    pub service: String,
    pub operation: String,
    /// `key=value` filters, one per line or separated by spaces.
    pub attrs: String,
    pub min_duration: String,
    pub max_duration: String,
    pub errors: bool,
    /// `15m`, `1h`, `6h`, `24h`, `7d`.
    pub lookback: String,
    pub limit: String,
}

impl SearchForm {
    /// The `key=value` attribute filters; values may hold `=`.
    pub fn attribute_filters(&self) -> Vec<(String, String)> {
        self.attrs
            .split(['\n', ' ', ','])
            .filter_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (!k.is_empty()).then(|| (k.trim().to_string(), v.trim().to_string()))
            })
            .collect()
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHit {
    pub trace_id: String,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub span_count: i64,
    pub error_count: i64,
    /// Service names with span counts, most spans first.
    pub services: Vec<(String, i64)>,
}

/// What the search page lists and plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub hits: Vec<TraceHit>,
    pub window_start_ns: i64,
    pub window_end_ns: i64,
    pub elapsed_ms: u64,
}

/// An edge of the service map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub calls: i64,
    pub errors: i64,
    pub p95_ns: f64,
}

/// The service map over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMap {
    pub services: Vec<String>,
    pub edges: Vec<Edge>,
    pub window_secs: f64,
}

/// RED metrics of one operation of a service over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationSeries {
    pub operation: String,
    pub points: Vec<RedSample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RedSample {
    pub bucket_start_ns: i64,
    pub requests: i64,
    pub errors: i64,
    pub rate: f64,
    pub error_rate: f64,
    pub p50_ns: f64,
    pub p95_ns: f64,
    pub p99_ns: f64,
}

/// The page of one service: RED charts per operation and notable traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceOverview {
    pub service: String,
    pub window_start_ns: i64,
    pub window_end_ns: i64,
    pub step_ns: i64,
    pub operations: Vec<OperationSeries>,
    pub slowest: Vec<TraceHit>,
    pub failing: Vec<TraceHit>,
}

/// A SQL result as text cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlResult {
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Option<String>>>,
    pub truncated: bool,
    pub elapsed_ms: u64,
    pub rows_read: u64,
    pub bytes_read: u64,
}
