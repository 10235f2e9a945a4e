//! Trace assembly: the spans of one trace, as fetched from the `spans` table in any order, turned
//! into what a trace view draws and explains.
//!
//! [`assemble`] merges duplicate deliveries, links spans into a tree (keeping orphans and breaking
//! parent cycles), corrects clock skew between hosts the way Jaeger's query service does, orders
//! the tree depth-first for a waterfall, and derives the critical path, the network time of each
//! RPC hop, where errors started and which spans are missing. The result serializes to the JSON
//! the trace explorer reads and is the input of the Jaeger and Tempo format conversions.
//!
//! Assembly is a pure function that never fails: whatever arrives is shown, and anything odd is
//! flagged on the span and explained in [`AssembledTrace::warnings`]. Every traversal is
//! iterative, so a trace of hundreds of thousands of spans or a chain thousands deep is fine.

mod critical_path;
mod findings;
mod skew;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One span as stored: the columns of the `spans` table for a single row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// Lowercase hex, 32 characters.
    pub trace_id: String,
    /// Lowercase hex, 16 characters.
    pub span_id: String,
    /// The parent's span id; `None`, empty or all zeros for a root span.
    pub parent_span_id: Option<String>,
    /// W3C `tracestate` of the span.
    pub trace_state: String,
    /// `service.name` of the resource that emitted the span.
    pub service_name: String,
    pub span_name: String,
    /// `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER`, `INTERNAL` or `UNSPECIFIED`.
    pub span_kind: String,
    /// Start as UNIX nanoseconds, on the emitting host's clock.
    pub start_ns: i64,
    /// End as UNIX nanoseconds, on the emitting host's clock.
    pub end_ns: i64,
    /// `UNSET`, `OK` or `ERROR`.
    pub status_code: String,
    pub status_message: String,
    pub attributes: Vec<Attribute>,
    pub resource_attributes: Vec<Attribute>,
    /// Name of the instrumentation scope.
    pub scope_name: String,
    pub scope_version: String,
    /// Attributes of the instrumentation scope (none for spans stored before schema version
    /// 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope_attributes: Vec<Attribute>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
    /// W3C trace flags (the low byte) and OTLP span flags.
    pub flags: u32,
}

/// A key/value attribute with its value rendered as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    /// The value as text; arrays and key/value lists as JSON.
    pub value: String,
    /// `string`, `int`, `double`, `bool`, `bytes`, `array`, `kvlist` or `empty`.
    #[serde(rename = "type")]
    pub r#type: String,
}

/// A timestamped event (log) inside a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// UNIX nanoseconds, on the emitting host's clock (add the span's `skew_shift_ns` to place
    /// it on the adjusted timeline).
    pub time_ns: i64,
    pub name: String,
    pub attributes: Vec<Attribute>,
}

/// A link from a span to another span, possibly of another trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: Vec<Attribute>,
}

/// One trace, ready to be drawn: spans in waterfall order plus what was derived from them.
///
/// Span references (`parent_index`, `children`, `span_index`, ...) are indexes into
/// [`spans`](Self::spans). Derived times are on the skew-adjusted timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssembledTrace {
    pub summary: TraceSummary,
    /// Every distinct span, depth-first: each top-level span followed by its subtree, children
    /// ordered by adjusted start time, then span id.
    pub spans: Vec<AssembledSpan>,
    /// The top-level spans in display order: true roots (earliest first), then orphans, then
    /// spans whose parent link was cut to break a cycle.
    pub roots: Vec<usize>,
    /// The sections of spans that determined the latency of the main root, in time order.
    pub critical_path: Vec<CriticalPathSegment>,
    /// Every CLIENT -> SERVER and PRODUCER -> CONSUMER parent/child pair, in span order.
    pub hops: Vec<NetworkHop>,
    /// Spans with status ERROR and no ERROR below them, in span order.
    pub error_origins: Vec<usize>,
    /// Spans that should be in the trace but are not.
    pub missing: Vec<MissingSpan>,
    /// Everything assembly had to correct or could not make sense of, in span order.
    pub warnings: Vec<AssemblyWarning>,
    /// How many extra copies of already seen span ids were merged away.
    pub duplicates_merged: usize,
}

/// A span with its place in the tree and what was derived for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssembledSpan {
    /// The span as stored; its `start_ns`/`end_ns` are the raw times of the emitting host.
    #[serde(flatten)]
    pub span: SpanRecord,
    /// 0 for top-level spans.
    pub depth: usize,
    /// The parent, `None` for top-level spans (roots, orphans and cut cycles).
    pub parent_index: Option<usize>,
    /// The children, in display order.
    pub children: Vec<usize>,
    /// `start_ns + skew_shift_ns`.
    pub adjusted_start_ns: i64,
    /// `end_ns + skew_shift_ns` (never before `adjusted_start_ns`).
    pub adjusted_end_ns: i64,
    /// What clock skew correction added to every timestamp of the span (also its events).
    pub skew_shift_ns: i64,
    /// The parent span id is set but no span with that id arrived.
    pub orphan: bool,
    /// The parent link was cut because it closed a cycle of parent ids.
    pub cycle_broken: bool,
    /// Status ERROR and no descendant has status ERROR: where an error started.
    pub error_origin: bool,
    /// Time of this span itself (not its children) on the critical path.
    pub critical_path_ns: i64,
    /// How many extra copies of this span were delivered and merged into this one.
    pub duplicates: usize,
}

/// The headline facts of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// The trace id of the main root (or of the first span); empty for an empty trace.
    pub trace_id: String,
    /// Service of the main root: the earliest span without a parent, else the earliest orphan,
    /// else the earliest span of a cut cycle.
    pub root_service: Option<String>,
    /// Name of the main root span.
    pub root_span_name: Option<String>,
    /// Index of the main root in [`AssembledTrace::spans`].
    pub root_index: Option<usize>,
    /// Earliest adjusted start of any span, UNIX nanoseconds.
    pub start_ns: i64,
    /// Latest adjusted end minus earliest adjusted start.
    pub duration_ns: i64,
    /// Distinct spans (after merging duplicates).
    pub span_count: usize,
    /// Spans with status ERROR.
    pub error_count: usize,
    /// Services with their span counts, most spans first, then by name.
    pub services: Vec<ServiceSpanCount>,
    /// Largest span depth (0 when every span is top-level).
    pub max_depth: usize,
    /// Spans without a parent span id.
    pub root_count: usize,
    /// Spans whose parent never arrived.
    pub orphan_count: usize,
    /// Parent cycles found (each was cut at one span).
    pub cycles_broken: usize,
}

/// How many spans of a trace a service emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpanCount {
    pub service: String,
    pub span_count: usize,
}

/// A stretch of one span on the critical path, on the adjusted timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticalPathSegment {
    pub span_index: usize,
    pub start_ns: i64,
    pub end_ns: i64,
}

/// The network (and queueing) time around one remote call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkHop {
    /// The CLIENT or PRODUCER span.
    pub client_index: usize,
    /// The SERVER or CONSUMER child.
    pub server_index: usize,
    pub client_service: String,
    pub server_service: String,
    /// Server start minus client start (adjusted): request on the wire and queueing.
    pub gap_before_ns: i64,
    /// Client end minus server end (adjusted): response on the wire; for messaging, negative
    /// when the consumer outlived the producer.
    pub gap_after_ns: i64,
}

/// Something that should be in the trace but is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSpan {
    pub kind: MissingKind,
    /// For `uninstrumented_callee`, the CLIENT/PRODUCER span; for `missing_parent`, the first
    /// span naming the missing parent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub span_index: Option<usize>,
    /// For `missing_parent`, the span id that never arrived.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub span_id: Option<String>,
    /// For `uninstrumented_callee`, who was called, from `peer.service`, `server.address`,
    /// `net.peer.name` or `db.system`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<String>,
}

/// Why a span is reported missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingKind {
    /// A CLIENT (PRODUCER) span has no SERVER (CONSUMER) child: the callee is not instrumented
    /// or its spans were lost.
    UninstrumentedCallee,
    /// Spans name a parent span id that is not in the trace.
    MissingParent,
}

/// Something assembly corrected or could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssemblyWarning {
    /// The span concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub span_index: Option<usize>,
    pub message: String,
}

/// Assembles the spans of one trace, given in any order and possibly with duplicates.
pub fn assemble(spans: Vec<SpanRecord>) -> AssembledTrace {
    let mut warnings = Vec::new();
    let deduped = tree::dedup(spans, &mut warnings);
    let mut links = tree::link(&deduped.spans, &mut warnings);
    let shifts = skew::adjust(&deduped.spans, &links, &mut warnings);
    let order = tree::depth_first(&deduped.spans, &mut links, &shifts);

    // Move everything into display order; `new_index[old]` maps the indexes used so far.
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut records: Vec<Option<SpanRecord>> = deduped.spans.into_iter().map(Some).collect();
    let mut spans: Vec<AssembledSpan> = order
        .iter()
        .map(|&old| {
            let span = records[old].take().expect("each span is placed once");
            let skew_shift_ns = shifts[old];
            let adjusted_start_ns = span.start_ns.saturating_add(skew_shift_ns);
            let adjusted_end_ns = span.end_ns.max(span.start_ns).saturating_add(skew_shift_ns);
            AssembledSpan {
                depth: 0,
                parent_index: links.parent[old].map(|p| new_index[p]),
                children: Vec::new(),
                adjusted_start_ns,
                adjusted_end_ns,
                skew_shift_ns,
                orphan: links.top_level[old] == Some(tree::TopLevel::Orphan),
                cycle_broken: links.top_level[old] == Some(tree::TopLevel::CycleCut),
                error_origin: false,
                critical_path_ns: 0,
                duplicates: deduped.duplicates[old],
                span,
            }
        })
        .collect();
    // Parents come before their children in depth-first order, so one forward pass fills in
    // depths and child lists already in display order.
    let mut roots = Vec::new();
    for i in 0..spans.len() {
        match spans[i].parent_index {
            Some(p) => {
                spans[i].depth = spans[p].depth + 1;
                spans[p].children.push(i);
            }
            None => roots.push(i),
        }
    }
    for w in &mut warnings {
        w.span_index = w.span_index.map(|old| new_index[old]);
    }
    for (i, s) in spans.iter().enumerate() {
        if s.span.end_ns < s.span.start_ns {
            warnings.push(AssemblyWarning {
                span_index: Some(i),
                message: "span ends before it starts; shown with zero duration".to_owned(),
            });
        }
    }
    // Each missing parent is named by the first of its orphans in display order.
    let mut first_orphan: HashMap<&str, usize> = HashMap::new();
    for &r in &roots {
        if spans[r].orphan
            && let Some(id) = tree::parent_id(&spans[r].span)
        {
            first_orphan.entry(id).or_insert(r);
        }
    }
    let mut missing: Vec<MissingSpan> = links
        .missing_parents
        .iter()
        .map(|id| MissingSpan {
            kind: MissingKind::MissingParent,
            span_index: first_orphan.get(id.as_str()).copied(),
            span_id: Some(id.clone()),
            peer: None,
        })
        .collect();

    let (critical_path, per_span) = critical_path::compute(&spans, roots.first().copied());
    for (span, ns) in spans.iter_mut().zip(per_span) {
        span.critical_path_ns = ns;
    }
    let hops = findings::hops(&spans);
    let error_origins = findings::error_origins(&spans);
    for &i in &error_origins {
        spans[i].error_origin = true;
    }
    missing.extend(findings::uninstrumented_callees(&spans));
    missing.sort_by_key(|m| m.span_index);
    warnings.sort_by_key(|w| w.span_index);

    let summary = summarize(&spans, &roots, links.cycles_broken, &mut warnings);
    AssembledTrace {
        summary,
        spans,
        roots,
        critical_path,
        hops,
        error_origins,
        missing,
        warnings,
        duplicates_merged: deduped.duplicates_merged,
    }
}

fn summarize(
    spans: &[AssembledSpan],
    roots: &[usize],
    cycles_broken: usize,
    warnings: &mut Vec<AssemblyWarning>,
) -> TraceSummary {
    let main_root = roots.first().map(|&r| &spans[r]);
    let start_ns = spans.iter().map(|s| s.adjusted_start_ns).min().unwrap_or(0);
    let end_ns = spans.iter().map(|s| s.adjusted_end_ns).max().unwrap_or(0);

    let mut per_service: HashMap<&str, usize> = HashMap::new();
    for s in spans {
        *per_service.entry(&s.span.service_name).or_default() += 1;
    }
    let mut services: Vec<ServiceSpanCount> = per_service
        .into_iter()
        .map(|(service, span_count)| ServiceSpanCount {
            service: service.to_owned(),
            span_count,
        })
        .collect();
    services.sort_by(|a, b| {
        b.span_count
            .cmp(&a.span_count)
            .then_with(|| a.service.cmp(&b.service))
    });

    let trace_id = main_root
        .map(|r| r.span.trace_id.clone())
        .unwrap_or_default();
    let foreign = spans.iter().filter(|s| s.span.trace_id != trace_id).count();
    if foreign > 0 {
        // Not ours to drop: the query asked for one trace id, so this is a storage problem.
        warnings.insert(
            0,
            AssemblyWarning {
                span_index: None,
                message: format!("{foreign} spans have a trace id other than {trace_id}"),
            },
        );
    }

    TraceSummary {
        trace_id,
        root_service: main_root.map(|r| r.span.service_name.clone()),
        root_span_name: main_root.map(|r| r.span.span_name.clone()),
        root_index: roots.first().copied(),
        start_ns,
        duration_ns: end_ns.saturating_sub(start_ns),
        span_count: spans.len(),
        error_count: spans
            .iter()
            .filter(|s| s.span.status_code == "ERROR")
            .count(),
        services,
        max_depth: spans.iter().map(|s| s.depth).max().unwrap_or(0),
        root_count: spans
            .iter()
            .filter(|s| s.parent_index.is_none() && !s.orphan && !s.cycle_broken)
            .count(),
        orphan_count: spans.iter().filter(|s| s.orphan).count(),
        cycles_broken,
    }
}

/// A duration for a human: `50ms`, `1.5s`, `250µs`, `-3ns`.
fn human_duration(ns: i64) -> String {
    let abs = ns.unsigned_abs();
    let sign = if ns < 0 { "-" } else { "" };
    let (unit, scale) = match abs {
        0..1_000 => return format!("{ns}ns"),
        1_000..1_000_000 => ("µs", 1_000),
        1_000_000..1_000_000_000 => ("ms", 1_000_000),
        _ => ("s", 1_000_000_000),
    };
    let whole = abs / scale;
    let frac = abs % scale;
    if frac == 0 {
        format!("{sign}{whole}{unit}")
    } else {
        let frac = format!("{:0width$}", frac, width = scale.ilog10() as usize);
        format!("{sign}{whole}.{}{unit}", frac.trim_end_matches('0'))
    }
}
