//! Running a compiled TraceQL search: the newest matching traces, then their spansets.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, TimestampNanosecondType};
use datafusion::common::ScalarValue;
use serde::Serialize;
use spanlake_storage::TenantId;

use super::compile::{Compiled, compile};
use super::{Query, parse};
use crate::tempo::query::{int64s, texts};
use crate::traces::{TraceHit, Traces, Window};
use crate::{Error, Result};

/// A TraceQL search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    /// Spans must start in it.
    pub window: Window,
    /// Most traces returned, newest first.
    pub limit: usize,
    /// Most spans returned per spanset.
    pub spans_per_set: usize,
}

impl SearchRequest {
    /// Parses `q`; a parse error is a bad request naming the position and what was expected.
    pub fn parse(q: &str, window: Window, limit: usize, spans_per_set: usize) -> Result<Self> {
        let query = parse(q).map_err(|e| Error::BadRequest(format!("q: {e}")))?;
        Ok(Self {
            query,
            window,
            limit,
            spans_per_set,
        })
    }
}

/// A value shown on a matching span, typed as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// A span of a spanset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundSpan {
    pub span_id: String,
    pub name: String,
    pub service: String,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// The fields the query compared or selected that the span has.
    #[serde(serialize_with = "as_map")]
    pub attributes: Vec<(String, Value)>,
}

/// The spans of one trace that the query kept together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundSpanset {
    /// `by(...)` fields and their values.
    #[serde(serialize_with = "as_map")]
    pub group: Vec<(String, String)>,
    /// In start order, at most [`SearchRequest::spans_per_set`].
    pub spans: Vec<FoundSpan>,
    /// Spans in the spanset.
    pub matched: u64,
}

/// A trace found by a TraceQL search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundTrace {
    #[serde(flatten)]
    pub hit: TraceHit,
    pub spansets: Vec<FoundSpanset>,
}

/// Pairs as a JSON object, in their order.
fn as_map<S: serde::Serializer, V: Serialize>(
    pairs: &[(String, V)],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// What a search found and what it read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Newest first.
    pub traces: Vec<FoundTrace>,
    /// Bytes read from Parquet files and memory.
    pub bytes_read: u64,
    /// Span rows read (after the scans' pruning and filters).
    pub spans_read: u64,
}

/// Traces with a spanset that `request.query` keeps, newest first, with their spansets.
pub async fn search(
    traces: &Traces,
    tenant: &TenantId,
    request: &SearchRequest,
) -> Result<Outcome> {
    let compiled = compile(&request.query, request.window)?;
    let engine = traces.engine();
    let sql = format!(
        "SELECT trace_id, max(start_time) AS tql_latest FROM {} tql_found GROUP BY trace_id \
         ORDER BY tql_latest DESC, trace_id LIMIT {}",
        compiled.relation,
        request.limit.max(1)
    );
    let found = engine
        .query_measured(tenant, &sql, compiled.params.clone())
        .await?;
    let mut ids = Vec::new();
    for batch in &found.batches {
        ids.extend(texts(batch, 0)?.into_iter().flatten());
    }
    if ids.is_empty() {
        return Ok(Outcome {
            traces: Vec::new(),
            bytes_read: found.bytes_read,
            spans_read: found.rows_read,
        });
    }
    let (summaries, (mut sets, bytes_read, spans_read)) = futures::try_join!(
        traces.summaries(tenant, &ids),
        spansets(traces, tenant, &compiled, &ids, request.spans_per_set)
    )?;
    let traces = summaries
        .into_iter()
        .map(|hit| FoundTrace {
            spansets: sets
                .remove(&hit.trace_id)
                .map(|groups| groups.into_values().collect())
                .unwrap_or_default(),
            hit,
        })
        .collect();
    Ok(Outcome {
        traces,
        bytes_read: found.bytes_read + bytes_read,
        spans_read: found.rows_read + spans_read,
    })
}

/// A text column's values.
type Texts = Vec<Option<String>>;

/// Spansets by trace id and group key.
type Spansets = BTreeMap<String, BTreeMap<String, FoundSpanset>>;

/// The spansets of traces `ids`, with the bytes and rows read to find them.
async fn spansets(
    traces: &Traces,
    tenant: &TenantId,
    compiled: &Compiled,
    ids: &[String],
    spans_per_set: usize,
) -> Result<(Spansets, u64, u64)> {
    let mut params = compiled.params.clone();
    let mut bind = |value: ScalarValue| {
        params.push(value);
        format!("${}", params.len())
    };
    let list: Vec<String> = ids
        .iter()
        .map(|id| bind(ScalarValue::Utf8(Some(id.clone()))))
        .collect();
    let per_set = bind(ScalarValue::Int64(Some(
        spans_per_set.clamp(1, i64::MAX as usize) as i64,
    )));
    let mut outputs = String::new();
    let mut names = String::new();
    for (i, output) in compiled.outputs.iter().enumerate() {
        outputs.push_str(&format!(
            ", {} AS tql_o{i}, {} AS tql_k{i}",
            output.value, output.kind
        ));
        names.push_str(&format!(", tql_o{i}, tql_k{i}"));
    }
    let sql = format!(
        "SELECT trace_id, span_id, span_name, service_name, start_time, duration_ns, grp, \
           tql_matched{names} \
         FROM (SELECT trace_id, span_id, span_name, service_name, start_time, duration_ns, grp\
                 {outputs}, \
                 row_number() OVER (PARTITION BY trace_id, grp ORDER BY start_time, span_id) \
                   AS tql_nth, \
                 count(*) OVER (PARTITION BY trace_id, grp) AS tql_matched \
               FROM {} tql_found WHERE trace_id IN ({})) tql_sets \
         WHERE tql_nth <= {per_set} ORDER BY trace_id, grp, start_time, span_id",
        compiled.relation,
        list.join(", ")
    );
    let output = traces.engine().query_measured(tenant, &sql, params).await?;
    let mut sets = Spansets::new();
    for batch in &output.batches {
        let trace = texts(batch, 0)?;
        let span_id = texts(batch, 1)?;
        let name = texts(batch, 2)?;
        let service = texts(batch, 3)?;
        let start = arrow::compute::cast(
            batch.column(4),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
        )
        .map_err(|e| Error::Internal(format!("start_time: {e}")))?;
        let start = start.as_primitive::<TimestampNanosecondType>();
        let duration = int64s(batch, 5)?;
        let group = texts(batch, 6)?;
        let matched = int64s(batch, 7)?;
        let shown: Vec<(Texts, Texts)> = (0..compiled.outputs.len())
            .map(|i| Ok((texts(batch, 8 + 2 * i)?, texts(batch, 9 + 2 * i)?)))
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let key = group[row].clone().unwrap_or_default();
            let set = sets
                .entry(trace[row].clone().unwrap_or_default())
                .or_default()
                .entry(key.clone())
                .or_insert_with(|| FoundSpanset {
                    group: if compiled.group_by.is_empty() {
                        Vec::new()
                    } else {
                        compiled
                            .group_by
                            .iter()
                            .cloned()
                            .zip(key.split('\u{1f}').map(str::to_string))
                            .collect()
                    },
                    spans: Vec::new(),
                    matched: 0,
                });
            set.matched = matched[row].max(0) as u64;
            let attributes = compiled
                .outputs
                .iter()
                .zip(&shown)
                .filter_map(|(output, (values, kinds))| {
                    let value = values[row].as_deref()?;
                    Some((output.name.clone(), typed(value, kinds[row].as_deref())))
                })
                .collect();
            set.spans.push(FoundSpan {
                span_id: span_id[row].clone().unwrap_or_default(),
                name: name[row].clone().unwrap_or_default(),
                service: service[row].clone().unwrap_or_default(),
                start_ns: start.value(row),
                duration_ns: duration[row],
                attributes,
            });
        }
    }
    Ok((sets, output.bytes_read, output.rows_read))
}

/// A shown value with its stored type; status and kind in Tempo's lower-case words.
fn typed(value: &str, kind: Option<&str>) -> Value {
    match kind {
        Some("int") => value
            .parse()
            .map_or_else(|_| Value::Str(value.into()), Value::Int),
        Some("double") => value
            .parse()
            .map_or_else(|_| Value::Str(value.into()), Value::Double),
        Some("bool") => Value::Bool(value == "true"),
        Some("status" | "kind") => Value::Str(value.to_ascii_lowercase()),
        _ => Value::Str(value.into()),
    }
}
