//! TraceQL compiled to one DataFusion SQL statement over the `spans` table.
//!
//! Every spanset expression becomes a relation with the columns of `spans` plus `grp` (the
//! key of the spanset a span belongs to after `by(...)`, empty otherwise), so that spanset
//! operators can combine any two relations:
//!
//! - `{ cond }` is `SELECT * FROM <source> WHERE cond`; DataFusion pushes the condition into
//!   the Parquet scan (row-group statistics, bloom filters, page index).
//! - `&&` keeps the spans of both sides in traces where both matched; `||` is their union.
//! - Structural operators (`>`, `>>`, `<`, `<<`, `~`, `!>`, `&>>`, ...) read the spans of the
//!   traces where they can match, flag each span with the two operands, and let the window
//!   function [`tql_structural`](super::structural) decide per trace (`PARTITION BY trace_id`).
//! - `| count() > 2`, `| avg(duration) > 1s` are window aggregates over `(trace_id, grp)`;
//!   `| by(f)` rewrites `grp`; `| coalesce()` clears it; `| select(f)` only adds output fields.
//!
//! Attribute values are stored as text with their OTLP type in a sibling map (strings have no
//! entry), so a comparison is typed the way Tempo types it: `span.code = 200` matches an int or
//! double attribute equal to 200, never the string `"200"`. User values are only ever `$n`
//! parameters.

use std::fmt::Write as _;

use datafusion::common::ScalarValue;

use super::validate::validate;
use super::{
    Aggregate, ArithmeticOp, Attribute, AttributeScope, BinaryOp, ComparisonOp, Field, FieldExpr,
    Intrinsic, Literal, Pipeline, Query, ScalarExpr, SpanKind, SpansetExpr, SpansetFilter,
    SpansetOp, Stage, Status, UnaryOp,
};
use super::{arrays, structural};
use crate::traces::Window;
use crate::{Error, Result};

/// The relation every query starts from; replaced once the compiler knows whether trace-level
/// columns (`rootName`, `rootServiceName`, `traceDuration`) are needed.
const BASE: &str = "\u{1}base\u{1}";

/// Marks where a relation can be limited to some traces (see [`Compiled::restricted`]).
const ONLY: &str = "\u{2}only\u{2}";

/// The longest SQL a query may compile to. Nested structural operators read their operands
/// twice, so the text grows with the nesting; this bounds it long before memory is at risk.
const MAX_SQL_BYTES: usize = 1 << 20;

/// A compiled search: the relation of matching spans and what to show of them.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// SQL of the relation of matching spans (`spans` columns plus `grp`).
    pub relation: String,
    /// Values for the `$n` placeholders of `relation`.
    pub params: Vec<ScalarValue>,
    /// Fields to show on each matching span: those the query compares and those it selects.
    pub outputs: Vec<Output>,
    /// The names of the `by(...)` fields, in order, when the last grouping has any.
    pub group_by: Vec<String>,
    /// Whether the query has structural operators (their work grows with the traces looked at).
    pub structural: bool,
}

impl Compiled {
    /// The relation, its parameters and the output fields, limited to the traces `ids` when
    /// given (a TraceQL query is evaluated trace by trace, so limiting the traces changes no
    /// trace's result).
    pub fn restricted(&self, ids: Option<&[String]>) -> (String, Vec<ScalarValue>, Vec<Output>) {
        let mut params = self.params.clone();
        let only = match ids {
            None => String::new(),
            Some(ids) => {
                let list: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        params.push(ScalarValue::Utf8(Some(id.clone())));
                        format!("${}", params.len())
                    })
                    .collect();
                format!(" AND trace_id IN ({})", list.join(", "))
            }
        };
        let outputs = self
            .outputs
            .iter()
            .map(|o| Output {
                name: o.name.clone(),
                value: o.value.replace(ONLY, &only),
                kind: o.kind.replace(ONLY, &only),
                on_spanset: o.on_spanset,
            })
            .collect();
        (self.relation.replace(ONLY, &only), params, outputs)
    }
}

/// A field shown on matching spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its name as Tempo shows it: `http.method`, `status`, `kind`, ...
    pub name: String,
    /// SQL of its value as text.
    pub value: String,
    /// SQL of its stored type (`int`, `double`, `bool`; NULL for strings), or a fixed type
    /// (also `duration`, nanoseconds).
    pub kind: String,
    /// Whether it is a value of the whole spanset (an aggregate such as `count()`, shown as
    /// Tempo shows it among the spanset's attributes) rather than of each span.
    pub on_spanset: bool,
}

/// How far before and after a search window the spans of a trace that overlaps the window are
/// looked for. Tempo searches whole traces that overlap the window; the spans of a trace start
/// before and after it, but reading every file for them would defeat the time pruning, so the
/// scan is widened by this much (spans of a trace further away are not seen).
pub const TRACE_REACH_NS: i64 = 30 * 60 * 1_000_000_000;

/// The start times a search over `window` reads: widened by [`TRACE_REACH_NS`] both ways.
pub fn search_scan(window: Window) -> Window {
    Window {
        start_ns: window.start_ns.saturating_sub(TRACE_REACH_NS),
        end_ns: window.end_ns.saturating_add(TRACE_REACH_NS),
    }
}

/// Compiles a search: `query` over the spans of the traces that overlap `window` (one of their
/// spans starts before its end and ends at or after its start), as Tempo searches.
pub fn compile(query: &Query, window: Window) -> Result<Compiled> {
    if query.metrics.is_some() || query.math.is_some() {
        return Err(Error::BadRequest(
            "q: metrics queries (rate(), count_over_time(), ...) are answered by \
             /api/metrics/query_range, not by search"
                .into(),
        ));
    }
    validate(query)?;
    let mut c = Compiler::new(window, true);
    let relation = c.pipeline(&query.pipeline, BASE)?;
    // Tempo adds the aggregate of a scalar filter to the spansets it keeps (`count()` = 3).
    // A scalar filter keeps or drops whole spansets, so the aggregates of the filters that end
    // the pipeline (with only `select` or filters on the whole trace after them, such as the
    // Tempo face's `traceDuration` bound) are the same over the spansets shown.
    let mut shown = Vec::new();
    for stage in query.pipeline.stages.iter().rev() {
        match stage {
            Stage::Select(_) => {}
            Stage::Spanset(SpansetExpr::Filter(SpansetFilter { expr: Some(expr) }))
                if only_trace_fields(expr) => {}
            Stage::ScalarFilter(filter) => {
                for side in [&filter.rhs, &filter.lhs] {
                    if let ScalarExpr::Aggregate(aggregate) = side {
                        shown.push(aggregate);
                    }
                }
            }
            _ => break,
        }
    }
    for aggregate in shown.into_iter().rev() {
        c.spanset_output(aggregate)?;
    }
    let compiled = c.finish(relation);
    // Measured again with the base relation written in (a structural search then adds its
    // chunk of trace ids, as parameters, where the relation may be limited to them).
    if compiled.relation.len() > MAX_SQL_BYTES {
        return Err(too_much_sql());
    }
    Ok(compiled)
}

fn too_much_sql() -> Error {
    Error::BadRequest(format!(
        "q: the query nests too many spanset operators (it compiles to more than {} KiB of \
         SQL); split it into simpler queries",
        MAX_SQL_BYTES >> 10
    ))
}

/// A compiled metrics query: one row per time bucket and series.
#[derive(Debug, Clone)]
pub struct CompiledMetrics {
    /// SQL returning `tql_bucket` (timestamp), the label columns `tql_l0..`, then one value
    /// column per entry of `values`.
    pub sql: String,
    pub params: Vec<ScalarValue>,
    /// The names of the `by (...)` labels, in column order.
    pub labels: Vec<String>,
    /// The value columns: the function's name, and the quantile for `quantile_over_time`.
    pub values: Vec<ValueColumn>,
}

/// A metrics value column: the function's name and, for `quantile_over_time`, the quantile.
pub type ValueColumn = (&'static str, Option<f64>);

/// Compiles a metrics query (`{ ... } | rate() by (resource.service.name)`) into time buckets
/// of `step_ms` over `window`.
pub fn compile_metrics(query: &Query, window: Window, step_ms: i64) -> Result<CompiledMetrics> {
    use super::MetricsFunction as F;
    if query.math.is_some() {
        return Err(Error::Internal(
            "metrics arithmetic is evaluated query by query".into(),
        ));
    }
    let Some(metrics) = &query.metrics else {
        return Err(Error::BadRequest(
            "q: not a metrics query: end it with a metrics function such as | rate(), \
             | count_over_time() or | quantile_over_time(duration, .99)"
                .into(),
        ));
    };
    validate(query)?;
    let mut c = Compiler::new(window, false);
    let relation = c.pipeline(&query.pipeline, BASE)?;
    if let F::Compare {
        selection, range, ..
    } = &metrics.function
    {
        if !metrics.by.is_empty() || metrics.threshold.is_some() || metrics.second_stage.is_some() {
            return Err(Error::BadRequest(
                "q: compare() takes no by(), comparison, topk() or bottomk()".into(),
            ));
        }
        return compare(c, relation, selection, *range, step_ms);
    }
    let mut labels = Vec::new();
    let mut label_columns = Vec::new();
    for (i, field) in metrics.by.iter().enumerate() {
        let value = c.field_expr(&FieldExpr::Field(field.clone()))?;
        labels.push(field.to_string());
        label_columns.push(format!("CAST({} AS VARCHAR) AS tql_l{i}", text_of(&value)?));
    }
    // The value each span contributes, in seconds for durations as Tempo reports them.
    let measure = |c: &mut Compiler, field: &Field| -> Result<String> {
        let expr = FieldExpr::Field(field.clone());
        let (ty, sql) = numeric(&c.field_expr(&expr)?, &expr)?;
        Ok(if ty == Ty::Duration {
            format!("CAST({sql} AS DOUBLE) / 1e9")
        } else {
            format!("CAST({sql} AS DOUBLE)")
        })
    };
    let step_s = step_ms as f64 / 1000.0;
    let (measured, values, aggregates): (Option<String>, Vec<ValueColumn>, Vec<String>) =
        match &metrics.function {
            F::Rate => (
                None,
                vec![("rate", None)],
                vec![format!("CAST(count(*) AS DOUBLE) / {step_s:?}")],
            ),
            F::CountOverTime => (
                None,
                vec![("count_over_time", None)],
                vec!["CAST(count(*) AS DOUBLE)".into()],
            ),
            F::MinOverTime(f) => (
                Some(measure(&mut c, f)?),
                vec![("min_over_time", None)],
                vec!["min(tql_x)".into()],
            ),
            F::MaxOverTime(f) => (
                Some(measure(&mut c, f)?),
                vec![("max_over_time", None)],
                vec!["max(tql_x)".into()],
            ),
            F::AvgOverTime(f) => (
                Some(measure(&mut c, f)?),
                vec![("avg_over_time", None)],
                vec!["avg(tql_x)".into()],
            ),
            F::SumOverTime(f) => (
                Some(measure(&mut c, f)?),
                vec![("sum_over_time", None)],
                vec!["sum(tql_x)".into()],
            ),
            F::QuantileOverTime { field, quantiles } => {
                for q in quantiles {
                    if !(0.0..=1.0).contains(q) {
                        return Err(Error::BadRequest(format!(
                            "q: quantile {q} is not between 0 and 1"
                        )));
                    }
                }
                (
                    Some(measure(&mut c, field)?),
                    quantiles
                        .iter()
                        .map(|q| ("quantile_over_time", Some(*q)))
                        .collect(),
                    quantiles
                        .iter()
                        .map(|q| {
                            format!("approx_percentile_cont({q:?}) WITHIN GROUP (ORDER BY tql_x)")
                        })
                        .collect(),
                )
            }
            F::Compare { .. } => unreachable!("compare() is compiled above"),
            F::HistogramOverTime(_) => {
                return Err(Error::BadRequest(
                    "q: histogram_over_time() is not supported yet; use quantile_over_time()"
                        .into(),
                ));
            }
        };
    let compiled = c.finish(relation);
    let (relation, params, _) = compiled.restricted(None);
    let mut inner = vec![format!(
        "date_bin(INTERVAL '{step_ms} milliseconds', start_time, \
         TIMESTAMP '1970-01-01T00:00:00Z') AS tql_bucket"
    )];
    inner.extend(label_columns);
    if let Some(measured) = measured {
        inner.push(format!("{measured} AS tql_x"));
    }
    let keys: Vec<String> = std::iter::once("tql_bucket".to_string())
        .chain((0..labels.len()).map(|i| format!("tql_l{i}")))
        .collect();
    let outer: Vec<String> = keys
        .iter()
        .cloned()
        .chain(
            aggregates
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{a} AS tql_v{i}")),
        )
        .collect();
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM {} tql_m) tql_b GROUP BY {} ORDER BY {}",
        outer.join(", "),
        inner.join(", "),
        relation,
        keys.join(", "),
        keys.join(", ")
    );
    Ok(CompiledMetrics {
        sql,
        params,
        labels,
        values,
    })
}

/// The labels of the rows [`compare`] returns: the group, the attribute, its value.
pub const COMPARE_LABELS: [&str; 3] = ["__meta_type", "tql_attribute", "tql_value"];

/// `compare({ selection }, ...)`: the spans of `relation` counted per time bucket, group
/// (`selection` or `baseline`), attribute (`span.x`, `resource.x`, `name`, `status`, `kind`)
/// and value; the top N is picked from the counts (`metrics::query_range`).
fn compare(
    mut c: Compiler,
    relation: String,
    selection: &SpansetFilter,
    range: Option<(i64, i64)>,
    step_ms: i64,
) -> Result<CompiledMetrics> {
    let mut condition = c.filter(selection)?;
    // A condition on events or links holds a subquery, which DataFusion plans in a WHERE
    // clause but not in the SELECT list where the group is computed.
    if condition.contains("unnest(") {
        return Err(Error::BadRequest(format!(
            "q: compare() cannot select by a condition on events or links ({selection})"
        )));
    }
    if let Some((start, end)) = range {
        let stamp = |ns| ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()));
        let (start, end) = (c.bind(stamp(start)), c.bind(stamp(end)));
        condition = format!("({condition}) AND start_time >= {start} AND start_time < {end}");
    }
    let compiled = c.finish(relation);
    let (relation, params, _) = compiled.restricted(None);
    let condition = condition.replace(ONLY, "");
    let entries = |map: &str, prefix: &str| {
        format!(
            "SELECT tql_bucket, tql_l0, concat('{prefix}', get_field(tql_e, 'key')) AS tql_l1, \
               get_field(tql_e, 'value') AS tql_l2 \
             FROM (SELECT tql_bucket, tql_l0, unnest(map_entries({map})) AS tql_e FROM tql_c) \
               tql_{prefix_alias}",
            prefix_alias = map
        )
    };
    let sql = format!(
        "WITH tql_c AS (SELECT date_bin(INTERVAL '{step_ms} milliseconds', start_time, \
             TIMESTAMP '1970-01-01T00:00:00Z') AS tql_bucket, \
             CASE WHEN {condition} THEN 'selection' ELSE 'baseline' END AS tql_l0, \
             attributes, resource_attributes, span_name, status_code, span_kind \
           FROM {relation} tql_m) \
         SELECT tql_bucket, tql_l0, tql_l1, tql_l2, CAST(count(*) AS DOUBLE) AS tql_v0 FROM (\
           {} UNION ALL {} \
           UNION ALL SELECT tql_bucket, tql_l0, 'name', span_name FROM tql_c \
           UNION ALL SELECT tql_bucket, tql_l0, 'status', lower(status_code) FROM tql_c \
           UNION ALL SELECT tql_bucket, tql_l0, 'kind', lower(span_kind) FROM tql_c) tql_a \
         GROUP BY tql_bucket, tql_l0, tql_l1, tql_l2 \
         ORDER BY tql_bucket, tql_l0, tql_l1, tql_l2",
        entries("attributes", "span."),
        entries("resource_attributes", "resource."),
    );
    Ok(CompiledMetrics {
        sql,
        params,
        labels: COMPARE_LABELS.iter().map(|l| l.to_string()).collect(),
        values: vec![("compare", None)],
    })
}

#[derive(Default)]
struct Compiler {
    params: Vec<ScalarValue>,
    /// The time condition: on `start_time`, and for a search on the trace overlapping.
    window: String,
    /// Whether some condition reads the trace-level columns.
    trace_columns: bool,
    /// Whether some condition reads `childCount`.
    child_count: bool,
    outputs: Vec<Output>,
    group_by: Vec<String>,
    /// For unique aliases.
    next_alias: usize,
    /// Whether a structural operator was compiled.
    structural: bool,
    /// For a search, the condition that keeps the traces overlapping the window.
    overlap: Option<String>,
}

/// The type of a value known when compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
    /// Nanoseconds.
    Duration,
    Status,
    Kind,
}

impl Ty {
    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Duration)
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Bool => "bool",
            Ty::Duration => "duration",
            Ty::Status => "status",
            Ty::Kind => "kind",
        }
    }
}

/// A list column whose elements can be matched: `events` or `links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nested {
    Events,
    Links,
}

impl Nested {
    fn column(self) -> &'static str {
        match self {
            Nested::Events => "events",
            Nested::Links => "links",
        }
    }
}

/// An attribute read as stored: text value and type (NULL for strings).
#[derive(Debug, Clone)]
struct Stored {
    value: String,
    ty: String,
}

/// A compiled field expression.
#[derive(Debug, Clone)]
enum Val {
    /// A value of a known type.
    Typed { ty: Ty, sql: String },
    /// A span or resource attribute.
    Attr(Stored),
    /// An unscoped attribute: the span's or the resource's.
    Either { span: Stored, resource: Stored },
    /// An attribute or intrinsic of the span's events or links (the element is `tql_u`).
    Element { list: Nested, stored: Stored },
    /// `nil`.
    Nil,
}

/// An operand of a spanset operator: a condition on spans of the base relation, or a relation.
enum Operand {
    Condition(String),
    Relation(String),
}

impl Compiler {
    /// A compiler over the spans that start in `window`, or with `overlap` over the spans of
    /// the traces that overlap it.
    fn new(window: Window, overlap: bool) -> Self {
        let mut c = Compiler::default();
        let mut stamp = |ns| {
            c.bind(ScalarValue::TimestampNanosecond(
                Some(ns),
                Some("UTC".into()),
            ))
        };
        let (start, end) = (stamp(window.start_ns), stamp(window.end_ns));
        c.window = if overlap {
            let scan = search_scan(window);
            let (scan_start, scan_end) = (stamp(scan.start_ns), stamp(scan.end_ns));
            // Tested once on the result, not in every copy of the base relation: whether a
            // trace overlaps is a fact of the whole trace, so it commutes with the pipeline.
            c.overlap = Some(format!(
                "trace_id IN (SELECT trace_id FROM spans WHERE start_time >= {scan_start} \
                 AND start_time < {end} AND end_time >= {start}{ONLY})"
            ));
            format!("start_time >= {scan_start} AND start_time < {scan_end}{ONLY}")
        } else {
            format!("start_time >= {start} AND start_time < {end}{ONLY}")
        };
        c
    }

    /// The compiled relation with the base relation written in.
    fn finish(self, relation: String) -> Compiled {
        let base = self.base();
        let relation = relation.replace(BASE, &base);
        let relation = match &self.overlap {
            Some(overlapping) => {
                format!("(SELECT * FROM {relation} tql_overlapping WHERE {overlapping})")
            }
            None => relation,
        };
        Compiled {
            relation,
            params: self.params,
            outputs: self
                .outputs
                .into_iter()
                .map(|mut o| {
                    o.value = o.value.replace(BASE, &base);
                    o.kind = o.kind.replace(BASE, &base);
                    o
                })
                .collect(),
            group_by: self.group_by,
            structural: self.structural,
        }
    }

    fn bind(&mut self, value: ScalarValue) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(ScalarValue::Utf8(Some(value.to_string())))
    }

    fn alias(&mut self) -> String {
        self.next_alias += 1;
        format!("tql_r{}", self.next_alias)
    }

    /// The base relation: spans in the window, with trace-level columns and the number of
    /// children when needed.
    fn base(&self) -> String {
        let base = self.base_spans();
        if !self.child_count {
            return base;
        }
        // Children are the distinct span ids naming the span as parent (a span that is its own
        // parent is not its own child).
        let window = &self.window;
        format!(
            "(SELECT b.*, coalesce(k.tql_children, 0) AS tql_child_count FROM {base} b \
             LEFT JOIN (SELECT trace_id AS tql_ktrace, parent_span_id AS tql_kparent, \
                 count(DISTINCT span_id) AS tql_children FROM spans \
               WHERE {window} AND parent_span_id IS NOT NULL AND parent_span_id <> span_id \
               GROUP BY trace_id, parent_span_id) k \
             ON b.trace_id = k.tql_ktrace AND b.span_id = k.tql_kparent)"
        )
    }

    /// Spans in the window, with trace-level columns when needed.
    fn base_spans(&self) -> String {
        let window = &self.window;
        if self.trace_columns {
            format!(
                "(SELECT s.*, t.tql_root_name, t.tql_root_service, t.tql_trace_duration, \
                   '' AS grp \
                 FROM spans s JOIN (SELECT trace_id AS tql_trace, \
                     max(CASE WHEN parent_span_id IS NULL THEN span_name END) AS tql_root_name, \
                     max(CASE WHEN parent_span_id IS NULL THEN service_name END) \
                       AS tql_root_service, \
                     CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) \
                       AS tql_trace_duration \
                   FROM spans WHERE {window} GROUP BY trace_id) t \
                 ON s.trace_id = t.tql_trace WHERE s.{window})"
            )
        } else {
            format!("(SELECT *, '' AS grp FROM spans WHERE {window})")
        }
    }

    fn pipeline(&mut self, pipeline: &Pipeline, source: &str) -> Result<String> {
        let mut relation = source.to_string();
        for stage in &pipeline.stages {
            relation = match stage {
                Stage::Spanset(expr) => self.spanset(expr, &relation)?,
                Stage::ScalarFilter(filter) => {
                    let lhs = self.scalar(&filter.lhs)?;
                    let rhs = self.scalar(&filter.rhs)?;
                    let alias = self.alias();
                    format!(
                        "(SELECT * EXCLUDE (tql_keep) FROM (SELECT *, ({lhs}) {} ({rhs}) AS \
                         tql_keep FROM {relation} {alias}) WHERE tql_keep)",
                        comparison_sql(filter.op)
                    )
                }
                Stage::GroupBy(fields) => {
                    let mut keys = Vec::new();
                    self.group_by.clear();
                    // Each field gives its value and its type: as in Tempo, 200 and "200" are
                    // different groups, and the spanset shows the value typed.
                    for field in fields {
                        self.group_by.push(field.to_string());
                        let value = self.field_expr(field)?;
                        refuse_nested_in_select(&value, field, "by()")?;
                        keys.push(format!(
                            "coalesce(CAST({} AS VARCHAR), 'nil')",
                            text_of(&value)?
                        ));
                        keys.push(format!("coalesce({}, '')", kind_of(&value)));
                    }
                    let alias = self.alias();
                    format!(
                        "(SELECT * EXCLUDE (grp), concat_ws('\u{1f}', {}) AS grp FROM {relation} \
                         {alias})",
                        keys.join(", ")
                    )
                }
                Stage::Select(fields) => {
                    for field in fields {
                        let value = self.field_expr(field)?;
                        refuse_nested_in_select(&value, field, "select()")?;
                        self.output(field)?;
                    }
                    relation
                }
                Stage::Coalesce => {
                    self.group_by.clear();
                    let alias = self.alias();
                    format!("(SELECT * EXCLUDE (grp), '' AS grp FROM {relation} {alias})")
                }
            };
        }
        Ok(relation)
    }

    fn spanset(&mut self, expr: &SpansetExpr, source: &str) -> Result<String> {
        let sql = self.spanset_unchecked(expr, source)?;
        if sql.len() > MAX_SQL_BYTES {
            return Err(too_much_sql());
        }
        Ok(sql)
    }

    fn spanset_unchecked(&mut self, expr: &SpansetExpr, source: &str) -> Result<String> {
        match expr {
            SpansetExpr::Filter(filter) => {
                let condition = self.filter(filter)?;
                let alias = self.alias();
                Ok(format!(
                    "(SELECT * FROM {source} {alias} WHERE {condition})"
                ))
            }
            SpansetExpr::Pipeline(pipeline) => self.pipeline(pipeline, source),
            SpansetExpr::Binary { op, lhs, rhs } => match op {
                SpansetOp::And | SpansetOp::Union => {
                    // A left-leaning chain of the same operator, `{a} && {b} && {c}`, is
                    // one n-ary operation: every side is read once.
                    let mut sides = vec![rhs.as_ref()];
                    let mut left = lhs.as_ref();
                    while let SpansetExpr::Binary {
                        op: inner,
                        lhs,
                        rhs,
                    } = left
                        && inner == op
                    {
                        sides.push(rhs);
                        left = lhs;
                    }
                    sides.push(left);
                    sides.reverse();
                    let mut parts = Vec::with_capacity(sides.len());
                    for (i, side) in sides.iter().enumerate() {
                        let relation = self.spanset(side, source)?;
                        let alias = self.alias();
                        parts.push(format!(
                            "SELECT *, {} AS tql_side FROM {relation} {alias}",
                            i + 1
                        ));
                    }
                    // `&&` keeps traces where every side matched; a span matched by several
                    // sides is kept once.
                    let every = if *op == SpansetOp::And {
                        format!(" AND tql_sides = {}", sides.len())
                    } else {
                        String::new()
                    };
                    let (a, b, c) = (self.alias(), self.alias(), self.alias());
                    Ok(format!(
                        "(SELECT * EXCLUDE (tql_side, tql_side_nth, tql_span_nth, tql_sides) FROM \
                           (SELECT *, sum(CASE WHEN tql_side_nth = 1 THEN 1 ELSE 0 END) \
                              OVER (PARTITION BY trace_id) AS tql_sides \
                            FROM (SELECT *, \
                                    row_number() OVER (PARTITION BY trace_id, tql_side) \
                                      AS tql_side_nth, \
                                    row_number() OVER (PARTITION BY trace_id, span_id, grp \
                                      ORDER BY tql_side) AS tql_span_nth \
                                  FROM ({}) {a}) {b}) {c} \
                         WHERE tql_span_nth = 1{every})",
                        parts.join(" UNION ALL ")
                    ))
                }
                _ => self.structural(*op, lhs, rhs, source),
            },
        }
    }

    fn operand(&mut self, expr: &SpansetExpr, source: &str) -> Result<Operand> {
        match expr {
            SpansetExpr::Filter(filter) if source == BASE => {
                let condition = self.filter(filter)?;
                // A condition on events or links holds a subquery, which DataFusion plans in a
                // WHERE clause but not in the SELECT list where the operand flags go.
                if condition.contains("unnest(") {
                    let alias = self.alias();
                    return Ok(Operand::Relation(format!(
                        "(SELECT * FROM {source} {alias} WHERE {condition})"
                    )));
                }
                Ok(Operand::Condition(condition))
            }
            _ => Ok(Operand::Relation(self.spanset(expr, source)?)),
        }
    }

    fn structural(
        &mut self,
        op: SpansetOp,
        lhs: &SpansetExpr,
        rhs: &SpansetExpr,
        source: &str,
    ) -> Result<String> {
        self.structural = true;
        let (l, r) = (self.operand(lhs, source)?, self.operand(rhs, source)?);
        let negated = matches!(
            op,
            SpansetOp::NotChild
                | SpansetOp::NotParent
                | SpansetOp::NotDescendant
                | SpansetOp::NotAncestor
                | SpansetOp::NotSibling
        );
        let traces_of = |c: &mut Self, operand: &Operand| -> String {
            let alias = c.alias();
            match operand {
                Operand::Condition(cond) => {
                    format!("SELECT trace_id FROM {BASE} {alias} WHERE {cond}")
                }
                Operand::Relation(rel) => format!("SELECT trace_id FROM {rel} {alias}"),
            }
        };
        // Traces where the operator can keep a span: both sides matched, or (negated forms)
        // the right side matched; union forms keep only spans with a partner, so both.
        let candidates = if negated {
            traces_of(self, &r)
        } else {
            let (a, b) = (traces_of(self, &l), traces_of(self, &r));
            format!("{a} INTERSECT {b}")
        };
        let mut joins = String::new();
        let mut flag = |c: &mut Self, operand: &Operand, name: &str| -> String {
            match operand {
                Operand::Condition(cond) => format!("coalesce(({cond}), false) AS {name}"),
                Operand::Relation(rel) => {
                    let (alias, inner) = (c.alias(), c.alias());
                    let _ = write!(
                        joins,
                        " LEFT JOIN (SELECT DISTINCT {} AS tql_key FROM {rel} {inner}) {alias} \
                         ON {} = {alias}.tql_key",
                        span_key(""),
                        span_key("x.")
                    );
                    format!("{alias}.tql_key IS NOT NULL AS {name}")
                }
            }
        };
        let left = flag(self, &l, "tql_left");
        let right = flag(self, &r, "tql_right");
        let (c, h) = (self.alias(), self.alias());
        Ok(format!(
            "(SELECT * EXCLUDE (grp, tql_left, tql_right, tql_hit), '' AS grp FROM \
               (SELECT {c}.*, {}('{}', {c}.span_id, {c}.parent_span_id, {c}.tql_left, \
                  {c}.tql_right) OVER (PARTITION BY {c}.trace_id) AS tql_hit \
                FROM (SELECT x.*, {left}, {right} FROM {BASE} x{joins} \
                      WHERE x.trace_id IN ({candidates})) {c}) {h} \
             WHERE tql_hit)",
            structural::NAME,
            op.symbol()
        ))
    }

    /// The condition of a spanset filter, true for `{}`.
    fn filter(&mut self, filter: &SpansetFilter) -> Result<String> {
        let Some(expr) = &filter.expr else {
            return Ok("true".into());
        };
        let value = self.field_expr(expr)?;
        let condition = self.boolean(value, expr)?;
        self.note_outputs(expr)?;
        Ok(format!("coalesce({condition}, false)"))
    }

    /// Remembers the attributes and intrinsics a condition compares, to show them on matches.
    fn note_outputs(&mut self, expr: &FieldExpr) -> Result<()> {
        match expr {
            FieldExpr::Field(field) => {
                let show = match field {
                    Field::Attribute(a) => {
                        !a.parent
                            && matches!(
                                a.scope,
                                AttributeScope::None
                                    | AttributeScope::Span
                                    | AttributeScope::Resource
                                    | AttributeScope::Instrumentation
                            )
                    }
                    Field::Intrinsic(i) => matches!(
                        i,
                        Intrinsic::Status | Intrinsic::Kind | Intrinsic::StatusMessage
                    ),
                };
                if show {
                    self.output(expr)?;
                }
                Ok(())
            }
            FieldExpr::Unary { operand, .. } => self.note_outputs(operand),
            FieldExpr::Binary { lhs, rhs, .. } => {
                self.note_outputs(lhs)?;
                self.note_outputs(rhs)
            }
            FieldExpr::Literal(_) => Ok(()),
        }
    }

    fn output(&mut self, expr: &FieldExpr) -> Result<()> {
        let name = match expr {
            FieldExpr::Field(Field::Attribute(a)) => a.name.clone(),
            FieldExpr::Field(Field::Intrinsic(i)) => match i {
                Intrinsic::Status => "status".into(),
                Intrinsic::Kind => "kind".into(),
                Intrinsic::StatusMessage => "statusMessage".into(),
                Intrinsic::Name => "name".into(),
                Intrinsic::Duration => "duration".into(),
                other => Field::Intrinsic(*other).to_string(),
            },
            other => other.to_string(),
        };
        if self.outputs.iter().any(|o| o.name == name) {
            return Ok(());
        }
        let value = self.field_expr(expr)?;
        let (value, kind) = match &value {
            Val::Attr(s) => (s.value.clone(), s.ty.clone()),
            Val::Either { span, resource } => (
                format!("coalesce({}, {})", span.value, resource.value),
                format!(
                    "CASE WHEN {} IS NOT NULL THEN {} ELSE {} END",
                    span.value, span.ty, resource.ty
                ),
            ),
            Val::Typed { ty, sql } => {
                let kind = match ty {
                    Ty::Int | Ty::Duration => "'int'",
                    Ty::Float => "'double'",
                    Ty::Bool => "'bool'",
                    Ty::Status => "'status'",
                    Ty::Kind => "'kind'",
                    Ty::Str => "CAST(NULL AS VARCHAR)",
                };
                (format!("CAST({sql} AS VARCHAR)"), kind.to_string())
            }
            // Event and link values differ per element; nothing single to show.
            Val::Element { .. } | Val::Nil => return Ok(()),
        };
        self.outputs.push(Output {
            name,
            value,
            kind,
            on_spanset: false,
        });
        Ok(())
    }

    /// Shows an aggregate's value on each spanset.
    fn spanset_output(&mut self, aggregate: &Aggregate) -> Result<()> {
        let name = aggregate.to_string();
        if self.outputs.iter().any(|o| o.on_spanset && o.name == name) {
            return Ok(());
        }
        let kind = match aggregate {
            Aggregate::Count => "'int'",
            Aggregate::Avg(f) | Aggregate::Min(f) | Aggregate::Max(f) | Aggregate::Sum(f) => {
                let value = self.field_expr(f)?;
                match numeric(&value, f)?.0 {
                    Ty::Duration => "'duration'",
                    // The minimum, maximum or sum of integers is one (`max(childCount)`).
                    Ty::Int if !matches!(aggregate, Aggregate::Avg(_)) => "'int'",
                    _ => "'double'",
                }
            }
        };
        let value = self.scalar(&ScalarExpr::Aggregate(aggregate.clone()))?;
        self.outputs.push(Output {
            name,
            value: format!("CAST({value} AS VARCHAR)"),
            kind: kind.into(),
            on_spanset: true,
        });
        Ok(())
    }

    fn field_expr(&mut self, expr: &FieldExpr) -> Result<Val> {
        match expr {
            FieldExpr::Literal(literal) => Ok(self.literal(literal)),
            FieldExpr::Field(Field::Intrinsic(i)) => self.intrinsic(*i),
            FieldExpr::Field(Field::Attribute(a)) => self.attribute(a),
            FieldExpr::Unary { op, operand } => {
                let value = self.field_expr(operand)?;
                match op {
                    UnaryOp::Not => Ok(Val::Typed {
                        ty: Ty::Bool,
                        sql: format!("(NOT coalesce({}, false))", self.boolean(value, operand)?),
                    }),
                    UnaryOp::Neg => {
                        let (ty, sql) = numeric(&value, operand)?;
                        // A subtraction wraps as Tempo's does; SQL's negation of minInt fails.
                        Ok(Val::Typed {
                            ty,
                            sql: format!("(0 - {sql})"),
                        })
                    }
                }
            }
            FieldExpr::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, expr),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        lhs: &FieldExpr,
        rhs: &FieldExpr,
        whole: &FieldExpr,
    ) -> Result<Val> {
        let bool_val = |sql: String| Val::Typed { ty: Ty::Bool, sql };
        match op {
            BinaryOp::And | BinaryOp::Or => {
                // A chain `a && b && c && d` becomes `((a AND b) AND (c AND d))`: nesting
                // grows with the logarithm of its length, so long chains stay within the
                // nesting the SQL planner accepts (and the stack it needs).
                let mut operands = Vec::new();
                let mut pending = vec![rhs, lhs];
                while let Some(e) = pending.pop() {
                    match e {
                        FieldExpr::Binary {
                            op: inner,
                            lhs,
                            rhs,
                        } if *inner == op => {
                            pending.push(rhs);
                            pending.push(lhs);
                        }
                        other => operands.push(other),
                    }
                }
                let mut parts = Vec::with_capacity(operands.len());
                for operand in operands {
                    let value = self.field_expr(operand)?;
                    parts.push(self.boolean(value, operand)?);
                }
                let word = if op == BinaryOp::And { "AND" } else { "OR" };
                Ok(bool_val(balanced(&parts, word)))
            }
            BinaryOp::Regex | BinaryOp::NotRegex => {
                let FieldExpr::Literal(Literal::String(pattern)) = rhs else {
                    return Err(type_error(
                        whole,
                        "the right side of =~ and !~ must be a string",
                    ));
                };
                // Tempo's regular expressions are fully anchored.
                let anchored = format!("^(?:{pattern})$");
                regex_syntax::parse(&anchored).map_err(|e| {
                    Error::BadRequest(format!("q: invalid regular expression {pattern:?}: {e}"))
                })?;
                let pattern = self.text(&anchored);
                let value = self.field_expr(lhs)?;
                let negate = op == BinaryOp::NotRegex;
                let test = |text: &str, ty: Option<&str>| {
                    let string = ty.map_or(String::new(), |t| format!(" AND {t} IS NULL"));
                    let matched = if negate {
                        format!("(NOT regexp_like({text}, {pattern}){string})")
                    } else {
                        format!("(regexp_like({text}, {pattern}){string})")
                    };
                    // An array attribute matches by its elements (see `arrays`).
                    match ty {
                        Some(t) => format!(
                            "({matched} OR {}({text}, {t}, '{}', {pattern}))",
                            arrays::NAME,
                            op.symbol()
                        ),
                        None => matched,
                    }
                };
                let sql = match &value {
                    Val::Typed { ty: Ty::Str, sql } => test(sql, None),
                    Val::Attr(s) => test(&s.value, Some(&s.ty)),
                    Val::Either { span, resource } => format!(
                        "({} OR {})",
                        test(&span.value, Some(&span.ty)),
                        test(&resource.value, Some(&resource.ty))
                    ),
                    Val::Element { list, stored } => {
                        let inner = test(&stored.value, Some(&stored.ty));
                        self.element_match(*list, &inner)
                    }
                    _ => return Err(type_error(whole, "=~ and !~ compare strings")),
                };
                Ok(bool_val(sql))
            }
            BinaryOp::Eq
            | BinaryOp::Neq
            | BinaryOp::Lt
            | BinaryOp::Lte
            | BinaryOp::Gt
            | BinaryOp::Gte => {
                let l = self.field_expr(lhs)?;
                let r = self.field_expr(rhs)?;
                Ok(bool_val(self.compare(op, l, r, whole)?))
            }
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Mod
            | BinaryOp::Pow => {
                let (lt, l) = numeric(&self.field_expr(lhs)?, lhs)?;
                let (rt, r) = numeric(&self.field_expr(rhs)?, rhs)?;
                let ty = match (lt, rt) {
                    (Ty::Duration, _) | (_, Ty::Duration) => Ty::Duration,
                    (Ty::Int, Ty::Int) if op != BinaryOp::Div && op != BinaryOp::Pow => Ty::Int,
                    _ => Ty::Float,
                };
                let sql = match op {
                    BinaryOp::Pow => format!("power(CAST({l} AS DOUBLE), {r})"),
                    BinaryOp::Div => format!("(CAST({l} AS DOUBLE) / {r})"),
                    // x % 0 has no value (integer remainder by zero is an error in SQL).
                    BinaryOp::Mod => format!("(CASE WHEN {r} = 0 THEN NULL ELSE {l} % {r} END)"),
                    _ => format!("({l} {} {r})", op.symbol()),
                };
                Ok(Val::Typed { ty, sql })
            }
        }
    }

    /// A value as a condition: a boolean expression, or a bool attribute that is true.
    fn boolean(&mut self, value: Val, expr: &FieldExpr) -> Result<String> {
        match value {
            Val::Typed { ty: Ty::Bool, sql } => Ok(sql),
            Val::Attr(s) => Ok(bool_attribute(&s)),
            Val::Either { span, resource } => Ok(format!(
                "({} OR {})",
                bool_attribute(&span),
                bool_attribute(&resource)
            )),
            Val::Element { list, stored } => Ok(self.element_match(list, &bool_attribute(&stored))),
            _ => Err(type_error(expr, "a condition must be true or false")),
        }
    }

    /// Spans with an element of `list` (aliased `tql_u`) meeting `condition`.
    fn element_match(&mut self, list: Nested, condition: &str) -> String {
        let column = list.column();
        let window = self.window.clone();
        format!(
            "({} IN (SELECT {} FROM (SELECT trace_id, span_id, start_time AS tql_span_start, \
             unnest({column}) AS tql_u FROM spans WHERE {window}) tql_unnested \
             WHERE {condition}))",
            span_key(""),
            span_key("")
        )
    }

    fn compare(&mut self, op: BinaryOp, l: Val, r: Val, whole: &FieldExpr) -> Result<String> {
        // nil: present or not.
        if matches!(l, Val::Nil) || matches!(r, Val::Nil) {
            let other = if matches!(l, Val::Nil) { r } else { l };
            let present = match other {
                // As in Tempo, `nil = nil` and `nil != nil` are both false.
                Val::Nil => return Ok("false".into()),
                Val::Typed { sql, .. } => format!("({sql} IS NOT NULL)"),
                Val::Attr(s) => format!("({} IS NOT NULL)", s.value),
                Val::Either { span, resource } => {
                    format!(
                        "({} IS NOT NULL OR {} IS NOT NULL)",
                        span.value, resource.value
                    )
                }
                // An event or link that has (`!= nil`) or lacks (`= nil`) the attribute: a
                // span without events or links has neither.
                Val::Element { list, stored } => {
                    return match op {
                        BinaryOp::Eq | BinaryOp::Neq => {
                            let test = if op == BinaryOp::Eq {
                                "NULL"
                            } else {
                                "NOT NULL"
                            };
                            let inner = format!("{} IS {test}", stored.value);
                            Ok(self.element_match(list, &inner))
                        }
                        _ => Err(type_error(whole, "nil can only be compared with = and !=")),
                    };
                }
            };
            return match op {
                BinaryOp::Eq => Ok(format!("(NOT {present})")),
                BinaryOp::Neq => Ok(present),
                _ => Err(type_error(whole, "nil can only be compared with = and !=")),
            };
        }
        // Put the stored value on the left.
        let (op, l, r) = match (&l, &r) {
            (Val::Typed { .. }, Val::Attr(_) | Val::Either { .. } | Val::Element { .. }) => {
                (flip(op), r, l)
            }
            _ => (op, l, r),
        };
        let sql_op = binary_sql(op);
        match (l, r) {
            (Val::Typed { ty: lt, sql: ls }, Val::Typed { ty: rt, sql: rs }) => {
                let compatible = lt == rt || (lt.numeric() && rt.numeric());
                if !compatible {
                    return Err(type_error(
                        whole,
                        &format!("cannot compare {} with {}", lt.name(), rt.name()),
                    ));
                }
                if matches!(lt, Ty::Bool | Ty::Status | Ty::Kind)
                    && !matches!(op, BinaryOp::Eq | BinaryOp::Neq)
                {
                    return Err(type_error(
                        whole,
                        &format!("{} values can only be compared with = and !=", lt.name()),
                    ));
                }
                Ok(format!("({ls} {sql_op} {rs})"))
            }
            (Val::Attr(s), Val::Typed { ty, sql }) => stored_vs_typed(&s, op, ty, &sql, whole),
            (Val::Either { span, resource }, Val::Typed { ty, sql }) => Ok(format!(
                "({} OR {})",
                stored_vs_typed(&span, op, ty, &sql, whole)?,
                stored_vs_typed(&resource, op, ty, &sql, whole)?
            )),
            (Val::Element { list, stored }, Val::Typed { ty, sql }) => {
                let inner = stored_vs_typed(&stored, op, ty, &sql, whole)?;
                Ok(self.element_match(list, &inner))
            }
            (Val::Attr(a), Val::Attr(b)) => stored_vs_stored(&a, op, &b),
            // Against another attribute an unscoped attribute has one value, as in Tempo:
            // the span's, else the resource's.
            (Val::Either { span, resource }, Val::Attr(b)) => {
                stored_vs_stored(&span_first(&span, &resource), op, &b)
            }
            (Val::Attr(a), Val::Either { span, resource }) => {
                stored_vs_stored(&a, op, &span_first(&span, &resource))
            }
            (
                Val::Either { span, resource },
                Val::Either {
                    span: span_b,
                    resource: resource_b,
                },
            ) => stored_vs_stored(
                &span_first(&span, &resource),
                op,
                &span_first(&span_b, &resource_b),
            ),
            _ => Err(type_error(
                whole,
                "this comparison is not supported: compare an attribute or intrinsic with a \
                 value or another attribute",
            )),
        }
    }

    fn literal(&mut self, literal: &Literal) -> Val {
        let (ty, value) = match literal {
            Literal::String(s) => (Ty::Str, ScalarValue::Utf8(Some(s.clone()))),
            Literal::Int(i) => (Ty::Int, ScalarValue::Int64(Some(*i))),
            Literal::Float(f) => (Ty::Float, ScalarValue::Float64(Some(*f))),
            Literal::Bool(b) => (Ty::Bool, ScalarValue::Boolean(Some(*b))),
            Literal::Duration { nanos } => (Ty::Duration, ScalarValue::Int64(Some(*nanos))),
            Literal::Status(s) => (
                Ty::Status,
                ScalarValue::Utf8(Some(
                    match s {
                        Status::Error => "ERROR",
                        Status::Ok => "OK",
                        Status::Unset => "UNSET",
                    }
                    .into(),
                )),
            ),
            Literal::Kind(k) => (
                Ty::Kind,
                ScalarValue::Utf8(Some(
                    match k {
                        SpanKind::Unspecified => "UNSPECIFIED",
                        SpanKind::Internal => "INTERNAL",
                        SpanKind::Server => "SERVER",
                        SpanKind::Client => "CLIENT",
                        SpanKind::Producer => "PRODUCER",
                        SpanKind::Consumer => "CONSUMER",
                    }
                    .into(),
                )),
            ),
            Literal::Nil => return Val::Nil,
        };
        Val::Typed {
            ty,
            sql: self.bind(value),
        }
    }

    fn intrinsic(&mut self, intrinsic: Intrinsic) -> Result<Val> {
        let typed = |ty, sql: &str| Val::Typed {
            ty,
            sql: sql.to_string(),
        };
        let element = |list, value: &str| Val::Element {
            list,
            stored: Stored {
                value: value.to_string(),
                ty: "CAST(NULL AS VARCHAR)".into(),
            },
        };
        Ok(match intrinsic {
            Intrinsic::Duration => typed(Ty::Duration, "duration_ns"),
            Intrinsic::Name => typed(Ty::Str, "span_name"),
            Intrinsic::Status => typed(Ty::Status, "status_code"),
            Intrinsic::StatusMessage => typed(Ty::Str, "status_message"),
            Intrinsic::Kind => typed(Ty::Kind, "span_kind"),
            Intrinsic::SpanId => typed(Ty::Str, "span_id"),
            Intrinsic::SpanParentId => typed(Ty::Str, "parent_span_id"),
            Intrinsic::TraceId => typed(Ty::Str, "trace_id"),
            Intrinsic::TraceRootName => {
                self.trace_columns = true;
                typed(Ty::Str, "tql_root_name")
            }
            Intrinsic::TraceRootService => {
                self.trace_columns = true;
                typed(Ty::Str, "tql_root_service")
            }
            Intrinsic::TraceDuration => {
                self.trace_columns = true;
                typed(Ty::Duration, "tql_trace_duration")
            }
            Intrinsic::InstrumentationName => typed(Ty::Str, "scope_name"),
            Intrinsic::InstrumentationVersion => typed(Ty::Str, "scope_version"),
            Intrinsic::EventName => element(Nested::Events, "get_field(tql_u, 'name')"),
            Intrinsic::LinkTraceId => element(Nested::Links, "get_field(tql_u, 'trace_id')"),
            Intrinsic::LinkSpanId => element(Nested::Links, "get_field(tql_u, 'span_id')"),
            // The event's time after its span's start, in nanoseconds.
            Intrinsic::EventTimeSinceStart => Val::Element {
                list: Nested::Events,
                stored: Stored {
                    value: "CAST(CAST(get_field(tql_u, 'time') AS BIGINT) \
                            - CAST(tql_span_start AS BIGINT) AS VARCHAR)"
                        .into(),
                    ty: "'int'".into(),
                },
            },
            Intrinsic::ChildCount => {
                self.child_count = true;
                typed(Ty::Int, "tql_child_count")
            }
        })
    }

    fn attribute(&mut self, a: &Attribute) -> Result<Val> {
        if a.parent {
            return Err(Error::BadRequest(format!(
                "q: parent attributes ({}) are not supported yet",
                Field::Attribute(a.clone())
            )));
        }
        let key = self.text(&a.name);
        let stored = |prefix: &str| Stored {
            value: format!("{prefix}attributes[{key}]"),
            ty: format!("{prefix}attribute_types[{key}]"),
        };
        Ok(match a.scope {
            AttributeScope::Span => Val::Attr(stored("")),
            AttributeScope::Resource if a.name == "service.name" => Val::Typed {
                ty: Ty::Str,
                sql: "service_name".into(),
            },
            AttributeScope::Resource => Val::Attr(stored("resource_")),
            AttributeScope::None => Val::Either {
                span: stored(""),
                resource: stored("resource_"),
            },
            AttributeScope::Event | AttributeScope::Link => Val::Element {
                list: if a.scope == AttributeScope::Event {
                    Nested::Events
                } else {
                    Nested::Links
                },
                stored: Stored {
                    value: format!("get_field(tql_u, 'attributes')[{key}]"),
                    ty: format!("get_field(tql_u, 'attribute_types')[{key}]"),
                },
            },
            AttributeScope::Instrumentation => Val::Attr(stored("scope_")),
        })
    }

    /// An aggregate comparison side: window aggregates over each spanset.
    fn scalar(&mut self, expr: &ScalarExpr) -> Result<String> {
        match expr {
            ScalarExpr::Literal(literal) => match self.literal(literal) {
                Val::Typed { ty, sql } if ty.numeric() => Ok(sql),
                _ => Err(Error::BadRequest(format!(
                    "q: {expr} is not a number or a duration"
                ))),
            },
            ScalarExpr::Aggregate(aggregate) => {
                let over = "OVER (PARTITION BY trace_id, grp)";
                let of = |c: &mut Self, field: &FieldExpr| -> Result<String> {
                    let value = c.field_expr(field)?;
                    Ok(numeric(&value, field)?.1)
                };
                Ok(match aggregate {
                    Aggregate::Count => format!("count(*) {over}"),
                    Aggregate::Avg(f) => format!("avg({}) {over}", of(self, f)?),
                    Aggregate::Min(f) => format!("min({}) {over}", of(self, f)?),
                    Aggregate::Max(f) => format!("max({}) {over}", of(self, f)?),
                    Aggregate::Sum(f) => format!("sum({}) {over}", of(self, f)?),
                })
            }
            ScalarExpr::Binary { op, lhs, rhs } => {
                let (l, r) = (self.scalar(lhs)?, self.scalar(rhs)?);
                Ok(match op {
                    ArithmeticOp::Pow => format!("power(CAST({l} AS DOUBLE), {r})"),
                    ArithmeticOp::Div => format!("(CAST({l} AS DOUBLE) / {r})"),
                    ArithmeticOp::Mod => {
                        format!("(CASE WHEN {r} = 0 THEN NULL ELSE {l} % {r} END)")
                    }
                    _ => format!("({l} {} {r})", op.symbol()),
                })
            }
            ScalarExpr::Pipeline { .. } => Err(Error::BadRequest(format!(
                "q: aggregates of a nested pipeline ({expr}) are not supported yet"
            ))),
        }
    }
}

/// Whether an expression reads only fields of the whole trace (so it keeps or drops whole
/// traces).
fn only_trace_fields(expr: &FieldExpr) -> bool {
    match expr {
        FieldExpr::Literal(_) => true,
        FieldExpr::Field(Field::Intrinsic(i)) => matches!(
            i,
            Intrinsic::TraceId
                | Intrinsic::TraceDuration
                | Intrinsic::TraceRootName
                | Intrinsic::TraceRootService
        ),
        FieldExpr::Field(Field::Attribute(_)) => false,
        FieldExpr::Unary { operand, .. } => only_trace_fields(operand),
        FieldExpr::Binary { lhs, rhs, .. } => only_trace_fields(lhs) && only_trace_fields(rhs),
    }
}

/// `parts` joined by `word` as a balanced tree of parentheses.
fn balanced(parts: &[String], word: &str) -> String {
    match parts {
        [] => "true".into(),
        [one] => one.clone(),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            format!(
                "({} {word} {})",
                balanced(left, word),
                balanced(right, word)
            )
        }
    }
}

/// `trace_id || span_id` of a row (`prefix` is a table alias with its dot, or empty): a key
/// for "the same span" in one column, since both ids have a fixed length.
fn span_key(prefix: &str) -> String {
    format!("concat({prefix}trace_id, {prefix}span_id)")
}

/// A field as text, for grouping keys.
fn text_of(value: &Val) -> Result<String> {
    Ok(match value {
        Val::Typed { sql, .. } => sql.clone(),
        Val::Attr(s) => s.value.clone(),
        Val::Either { span, resource } => format!("coalesce({}, {})", span.value, resource.value),
        Val::Nil => "CAST(NULL AS VARCHAR)".into(),
        Val::Element { .. } => {
            return Err(Error::BadRequest(
                "q: by() cannot group by event or link fields".into(),
            ));
        }
    })
}

/// SQL of a value's type as the search shows it (`int`, `double`, `bool`, `array`, `duration`,
/// `status`, `kind`; NULL for strings).
fn kind_of(value: &Val) -> String {
    match value {
        Val::Typed { ty, .. } => match ty {
            Ty::Int => "'int'",
            Ty::Duration => "'duration'",
            Ty::Float => "'double'",
            Ty::Bool => "'bool'",
            Ty::Status => "'status'",
            Ty::Kind => "'kind'",
            Ty::Str => "CAST(NULL AS VARCHAR)",
        }
        .into(),
        Val::Attr(s) => s.ty.clone(),
        Val::Either { span, resource } => format!(
            "CASE WHEN {} IS NOT NULL THEN {} ELSE {} END",
            span.value, span.ty, resource.ty
        ),
        Val::Element { .. } | Val::Nil => "CAST(NULL AS VARCHAR)".into(),
    }
}

/// A value as a number: typed numbers as they are, attributes only when stored as numbers.
fn numeric(value: &Val, expr: &FieldExpr) -> Result<(Ty, String)> {
    let stored = |s: &Stored| {
        format!(
            "CASE WHEN {} IN ('int', 'double') THEN TRY_CAST({} AS DOUBLE) END",
            s.ty, s.value
        )
    };
    match value {
        Val::Typed { ty, sql } if ty.numeric() => Ok((*ty, sql.clone())),
        Val::Attr(s) => Ok((Ty::Float, stored(s))),
        Val::Either { span, resource } => Ok((
            Ty::Float,
            format!("coalesce({}, {})", stored(span), stored(resource)),
        )),
        _ => Err(type_error(expr, "arithmetic needs numbers or durations")),
    }
}

/// An unscoped attribute's single value: the span's when it has one, else the resource's.
fn span_first(span: &Stored, resource: &Stored) -> Stored {
    Stored {
        value: format!("coalesce({}, {})", span.value, resource.value),
        ty: format!(
            "CASE WHEN {} IS NOT NULL THEN {} ELSE {} END",
            span.value, span.ty, resource.ty
        ),
    }
}

/// A condition on events or links holds a subquery, which DataFusion plans in a WHERE clause
/// but not in the SELECT list that `by()` and `select()` put values in.
fn refuse_nested_in_select(value: &Val, field: &FieldExpr, stage: &str) -> Result<()> {
    match value {
        Val::Typed { sql, .. } if sql.contains("unnest(") => Err(Error::BadRequest(format!(
            "q: {stage} cannot take a condition on events or links ({field}); filter on it in a \
             spanset instead, as in {{ {field} }}"
        ))),
        _ => Ok(()),
    }
}

fn bool_attribute(s: &Stored) -> String {
    format!("({} = 'true' AND {} = 'bool')", s.value, s.ty)
}

/// A stored attribute compared with a typed value, as Tempo types it.
fn stored_vs_typed(
    s: &Stored,
    op: BinaryOp,
    ty: Ty,
    sql: &str,
    whole: &FieldExpr,
) -> Result<String> {
    let sql_op = binary_sql(op);
    let equality = matches!(op, BinaryOp::Eq | BinaryOp::Neq);
    // An array attribute matches by its elements (see `arrays`).
    let array = format!(
        "{}({}, {}, '{}', {sql})",
        arrays::NAME,
        s.value,
        s.ty,
        op.symbol()
    );
    Ok(match ty {
        Ty::Str => format!(
            "(({} {sql_op} {sql} AND {} IS NULL) OR {array})",
            s.value, s.ty
        ),
        Ty::Int | Ty::Float | Ty::Duration => format!(
            "((TRY_CAST({} AS DOUBLE) {sql_op} {sql} AND {} IN ('int', 'double')) OR {array})",
            s.value, s.ty
        ),
        Ty::Bool if equality => format!(
            "(({} {sql_op} CASE WHEN {sql} THEN 'true' ELSE 'false' END AND {} = 'bool') \
             OR {array})",
            s.value, s.ty
        ),
        Ty::Bool => {
            return Err(type_error(
                whole,
                "bool values can only be compared with = and !=",
            ));
        }
        Ty::Status | Ty::Kind => {
            return Err(type_error(
                whole,
                &format!(
                    "an attribute cannot be compared with a {} keyword",
                    ty.name()
                ),
            ));
        }
    })
}

/// Two stored attributes: same type and value, or numerically ordered.
fn stored_vs_stored(a: &Stored, op: BinaryOp, b: &Stored) -> Result<String> {
    let sql_op = binary_sql(op);
    Ok(match op {
        // Numbers compare as numbers, whether ints or doubles (200 = 200.0, as in Tempo);
        // anything else by its text, values of one type only.
        BinaryOp::Eq | BinaryOp::Neq => format!(
            "(CASE WHEN {aty} IN ('int', 'double') AND {bty} IN ('int', 'double') \
               THEN TRY_CAST({av} AS DOUBLE) {sql_op} TRY_CAST({bv} AS DOUBLE) \
               ELSE {av} {sql_op} {bv} AND {aty} IS NOT DISTINCT FROM {bty} END)",
            av = a.value,
            bv = b.value,
            aty = a.ty,
            bty = b.ty
        ),
        _ => format!(
            "(TRY_CAST({} AS DOUBLE) {sql_op} TRY_CAST({} AS DOUBLE) AND {} IN ('int', 'double') \
             AND {} IN ('int', 'double'))",
            a.value, b.value, a.ty, b.ty
        ),
    })
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        other => other,
    }
}

fn binary_sql(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Neq => "<>",
        other => other.symbol(),
    }
}

fn comparison_sql(op: ComparisonOp) -> &'static str {
    match op {
        ComparisonOp::Neq => "<>",
        other => other.symbol(),
    }
}

/// An error of running a compiled query, as the client should see it: a regular expression
/// that parses but is too large for the regex engine is the query's fault (400), found only
/// when DataFusion compiles it.
pub(crate) fn run_error(e: Error) -> Error {
    match &e {
        Error::Execution(inner) if inner.to_string().contains("did not compile") => {
            Error::BadRequest(format!(
                "q: a regular expression is too large to run ({}); simplify it",
                inner.strip_backtrace()
            ))
        }
        _ => e,
    }
}

fn type_error(expr: &FieldExpr, why: &str) -> Error {
    Error::BadRequest(format!("q: invalid expression {expr}: {why}"))
}
