//! TraceQL metrics over a time range: `{ ... } | rate() by (resource.service.name)`,
//! `count_over_time()`, `min/max/avg/sum_over_time(field)` and
//! `quantile_over_time(duration, .5, .99)`, computed by DataFusion in time buckets, with an
//! optional `| topk(n)` or `| bottomk(n)`.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampNanosecondType};
use spanlake_storage::TenantId;

use super::{
    ArithmeticOp, Literal, MetricsFunction, MetricsMath, Query, SecondStage, Threshold,
    compile_metrics, parse,
};
use crate::tempo::query::texts;
use crate::traces::{Traces, Window};
use crate::{Error, Result};

/// Most buckets one series may have, as Prometheus allows.
pub const MAX_POINTS: i64 = 11_000;

/// A metrics query over a time range.
#[derive(Debug, Clone)]
pub struct RangeRequest {
    pub query: Query,
    pub window: Window,
    /// Bucket width in milliseconds.
    pub step_ms: i64,
}

impl RangeRequest {
    /// Parses `q` and checks the step: at least 1 ms, at most [`MAX_POINTS`] buckets.
    pub fn parse(q: &str, window: Window, step_ms: Option<i64>) -> Result<Self> {
        let query = parse(q).map_err(|e| Error::BadRequest(format!("q: {e}")))?;
        let range_ms = (window.end_ns.saturating_sub(window.start_ns) / 1_000_000).max(1);
        // Tempo's default: about a hundred points over the range.
        let step_ms = step_ms.unwrap_or((range_ms / 100).max(1_000));
        if step_ms < 1 {
            return Err(Error::BadRequest("step must be at least 1ms".into()));
        }
        if range_ms / step_ms > MAX_POINTS {
            return Err(Error::BadRequest(format!(
                "step {step_ms}ms gives more than {MAX_POINTS} points over the range; use a \
                 larger step"
            )));
        }
        Ok(Self {
            query,
            window,
            step_ms,
        })
    }
}

/// One time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `by (...)` labels and their values (`nil` when a span lacked the field); `__name__`
    /// names the function when there are none; `p` is the quantile.
    pub labels: Vec<(String, Label)>,
    /// `(bucket start in UNIX milliseconds, value)`, in time order.
    pub samples: Vec<(i64, f64)>,
}

/// A label value.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    Str(String),
    Float(f64),
}

/// A series' label values and value column.
type SeriesKey = (Vec<Option<String>>, usize);

/// Runs a metrics query.
pub async fn query_range(
    traces: &Traces,
    tenant: &TenantId,
    request: &RangeRequest,
) -> Result<(Vec<Series>, u64)> {
    let Some(math) = &request.query.math else {
        return one_query(traces, tenant, &request.query, request).await;
    };
    // Each metrics query of the arithmetic runs on its own, then the series are combined.
    let mut queries = Vec::new();
    leaves(&math.expr, &mut queries);
    if queries.iter().any(|q| {
        q.metrics
            .as_ref()
            .is_some_and(|m| matches!(m.function, MetricsFunction::Compare { .. }))
    }) {
        return Err(Error::BadRequest(
            "q: compare() cannot be used in metrics arithmetic".into(),
        ));
    }
    let mut results = Vec::with_capacity(queries.len());
    let mut bytes = 0;
    for query in queries {
        let (series, read) = one_query(traces, tenant, query, request).await?;
        bytes += read;
        results.push(series);
    }
    let mut results = results.into_iter();
    let mut out = match evaluate(&math.expr, &mut results) {
        Operand::Series(series) => series,
        Operand::Number(_) => Vec::new(),
    };
    if let Some(threshold) = math.threshold {
        out = keep_passing(out, threshold);
    }
    if let Some(stage) = math.second_stage {
        out = rank(out, stage);
    }
    if let Some(threshold) = math.second_threshold {
        out = keep_passing(out, threshold);
    }
    Ok((out, bytes))
}

/// The series of `compare()` as Tempo shows them: `{__meta_type="selection", span.x="v"}`, at
/// most `top_n` values per group and attribute, most frequent first; an attribute with more
/// values in either group also gets `{__meta_error="__too_many_values__", span.x=nil}`, whose
/// points count the spans of the values left out.
fn compare_series(series: Vec<Series>, top_n: u64) -> Vec<Series> {
    let text = |s: &Series, i: usize| match s.labels.get(i) {
        Some((_, Label::Str(v))) => v.clone(),
        _ => "nil".into(),
    };
    let mut by_attribute: BTreeMap<(String, String), Vec<(String, Series)>> = BTreeMap::new();
    for s in series {
        let (group, attribute, value) = (text(&s, 0), text(&s, 1), text(&s, 2));
        by_attribute
            .entry((attribute, group))
            .or_default()
            .push((value, s));
    }
    let mut out = Vec::new();
    let mut left_out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((attribute, group), mut values) in by_attribute {
        let total = |s: &Series| s.samples.iter().map(|(_, v)| v).sum::<f64>();
        values.sort_by(|(a, sa), (b, sb)| total(sb).total_cmp(&total(sa)).then_with(|| a.cmp(b)));
        if values.len() as u64 > top_n {
            let counts = left_out.entry(attribute.clone()).or_default();
            for (_, s) in values.drain(top_n as usize..) {
                for (t, v) in s.samples {
                    *counts.entry(t).or_default() += v;
                }
            }
        }
        for (value, s) in values {
            out.push(Series {
                labels: vec![
                    ("__meta_type".into(), Label::Str(group.clone())),
                    (attribute.clone(), Label::Str(value)),
                ],
                samples: s.samples,
            });
        }
    }
    for (attribute, counts) in left_out {
        out.push(Series {
            labels: vec![
                (
                    "__meta_error".into(),
                    Label::Str("__too_many_values__".into()),
                ),
                (attribute, Label::Str("nil".into())),
            ],
            samples: counts.into_iter().collect(),
        });
    }
    out
}

/// The metrics queries of an arithmetic expression, left to right.
fn leaves<'a>(expr: &'a MetricsMath, out: &mut Vec<&'a Query>) {
    match expr {
        MetricsMath::Query(query) => out.push(query),
        MetricsMath::Number(_) => {}
        MetricsMath::Binary { lhs, rhs, .. } => {
            leaves(lhs, out);
            leaves(rhs, out);
        }
    }
}

/// A value of metrics arithmetic.
enum Operand {
    Number(f64),
    Series(Vec<Series>),
}

/// `expr` with its queries' series taken from `results`, in the order of [`leaves`].
fn evaluate(expr: &MetricsMath, results: &mut impl Iterator<Item = Vec<Series>>) -> Operand {
    match expr {
        MetricsMath::Query(_) => Operand::Series(results.next().unwrap_or_default()),
        MetricsMath::Number(Literal::Int(i)) => Operand::Number(*i as f64),
        MetricsMath::Number(Literal::Float(f)) => Operand::Number(*f),
        MetricsMath::Number(_) => Operand::Number(f64::NAN),
        MetricsMath::Binary { op, lhs, rhs } => {
            let (l, r) = (evaluate(lhs, results), evaluate(rhs, results));
            combine(*op, l, r)
        }
    }
}

fn apply(op: ArithmeticOp, a: f64, b: f64) -> f64 {
    match op {
        ArithmeticOp::Add => a + b,
        ArithmeticOp::Sub => a - b,
        ArithmeticOp::Mul => a * b,
        ArithmeticOp::Div => a / b,
        ArithmeticOp::Mod => a % b,
        ArithmeticOp::Pow => a.powf(b),
    }
}

/// The labels that identify a series among others: all but `__name__`.
fn identity(series: &Series) -> Vec<&(String, Label)> {
    series
        .labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .collect()
}

/// `l op r` point by point. Series of the two sides pair up by their labels; a side without
/// `by` labels applies to every series of the other. A point is kept where both sides have a
/// value and the result is a number (Tempo's NaN: no data or a division by zero).
fn combine(op: ArithmeticOp, l: Operand, r: Operand) -> Operand {
    let finite = |mut s: Series| {
        s.samples.retain(|(_, v)| v.is_finite());
        s
    };
    let series = match (l, r) {
        (Operand::Number(a), Operand::Number(b)) => return Operand::Number(apply(op, a, b)),
        (Operand::Series(l), Operand::Number(b)) => l
            .into_iter()
            .map(|mut s| {
                s.samples
                    .iter_mut()
                    .for_each(|(_, v)| *v = apply(op, *v, b));
                finite(s)
            })
            .collect(),
        (Operand::Number(a), Operand::Series(r)) => r
            .into_iter()
            .map(|mut s| {
                s.samples
                    .iter_mut()
                    .for_each(|(_, v)| *v = apply(op, a, *v));
                finite(s)
            })
            .collect(),
        (Operand::Series(l), Operand::Series(r)) => {
            let mut out = Vec::new();
            for a in &l {
                for b in &r {
                    let (ia, ib) = (identity(a), identity(b));
                    if !(ia == ib || ia.is_empty() || ib.is_empty()) {
                        continue;
                    }
                    let labels = if ia.is_empty() { &b.labels } else { &a.labels };
                    let at: BTreeMap<i64, f64> = b.samples.iter().copied().collect();
                    let samples = a
                        .samples
                        .iter()
                        .filter_map(|(t, x)| at.get(t).map(|y| (*t, apply(op, *x, *y))))
                        .collect();
                    out.push(finite(Series {
                        labels: labels.clone(),
                        samples,
                    }));
                }
            }
            out
        }
    };
    Operand::Series(
        series
            .into_iter()
            .filter(|s| !s.samples.is_empty())
            .collect(),
    )
}

/// One metrics query, with its comparisons and second stage.
async fn one_query(
    traces: &Traces,
    tenant: &TenantId,
    query: &Query,
    request: &RangeRequest,
) -> Result<(Vec<Series>, u64)> {
    let compiled = compile_metrics(query, request.window, request.step_ms)?;
    let output = traces
        .engine()
        .query_measured(tenant, &compiled.sql, compiled.params.clone())
        .await
        .map_err(super::compile::run_error)?;
    // Series keyed by their label values, then by value column.
    let mut series: BTreeMap<SeriesKey, Vec<(i64, f64)>> = BTreeMap::new();
    for batch in &output.batches {
        let buckets = arrow::compute::cast(
            batch.column(0),
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
        )
        .map_err(|e| Error::Internal(format!("bucket: {e}")))?;
        let buckets = buckets.as_primitive::<TimestampNanosecondType>();
        let labels: Vec<Vec<Option<String>>> = (0..compiled.labels.len())
            .map(|i| texts(batch, 1 + i))
            .collect::<Result<_>>()?;
        for v in 0..compiled.values.len() {
            let column = arrow::compute::cast(
                batch.column(1 + compiled.labels.len() + v),
                &DataType::Float64,
            )
            .map_err(|e| Error::Internal(format!("value: {e}")))?;
            let values = column.as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                if values.is_null(row) || buckets.is_null(row) {
                    continue;
                }
                let key: Vec<Option<String>> = labels.iter().map(|l| l[row].clone()).collect();
                series
                    .entry((key, v))
                    .or_default()
                    .push((buckets.value(row) / 1_000_000, values.value(row)));
            }
        }
    }
    let mut out: Vec<Series> = series
        .into_iter()
        .map(|((key, v), mut samples)| {
            samples.sort_by_key(|s| s.0);
            let (name, quantile) = compiled.values[v];
            let mut labels: Vec<(String, Label)> = compiled
                .labels
                .iter()
                .cloned()
                .zip(
                    key.into_iter()
                        .map(|l| Label::Str(l.unwrap_or_else(|| "nil".into()))),
                )
                .collect();
            if labels.is_empty() {
                labels.push(("__name__".into(), Label::Str(name.into())));
            }
            if let Some(q) = quantile {
                labels.push(("p".into(), Label::Float(q)));
            }
            Series { labels, samples }
        })
        .collect();
    if let Some(MetricsFunction::Compare { top_n, .. }) =
        query.metrics.as_ref().map(|m| &m.function)
    {
        return Ok((compare_series(out, *top_n), output.bytes_read));
    }
    if let Some(metrics) = &query.metrics {
        if let Some(threshold) = metrics.threshold {
            out = keep_passing(out, threshold);
        }
        if let Some(stage) = metrics.second_stage {
            out = rank(out, stage);
        }
        if let Some(threshold) = metrics.second_threshold {
            out = keep_passing(out, threshold);
        }
    }
    Ok((out, output.bytes_read))
}

/// `rate() > 10`: only the points that pass; series left without points are dropped.
fn keep_passing(mut series: Vec<Series>, threshold: Threshold) -> Vec<Series> {
    for s in &mut series {
        s.samples.retain(|&(_, v)| threshold.passes(v));
    }
    series.retain(|s| !s.samples.is_empty());
    series
}

/// `topk(n)` / `bottomk(n)`: at each timestamp, only the `n` largest (smallest) values are
/// kept; series left without samples are dropped.
fn rank(mut series: Vec<Series>, stage: SecondStage) -> Vec<Series> {
    let (n, top) = match stage {
        SecondStage::TopK(n) => (n as usize, true),
        SecondStage::BottomK(n) => (n as usize, false),
    };
    let mut at: BTreeMap<i64, Vec<(f64, usize)>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for &(t, v) in &s.samples {
            at.entry(t).or_default().push((v, i));
        }
    }
    let mut keep: Vec<std::collections::HashSet<i64>> = vec![Default::default(); series.len()];
    for (t, mut values) in at {
        values.sort_by(|a, b| {
            let order = a.0.total_cmp(&b.0);
            if top { order.reverse() } else { order }
        });
        for &(_, i) in values.iter().take(n) {
            keep[i].insert(t);
        }
    }
    for (s, keep) in series.iter_mut().zip(&keep) {
        s.samples.retain(|(t, _)| keep.contains(t));
    }
    series.retain(|s| !s.samples.is_empty());
    series
}
