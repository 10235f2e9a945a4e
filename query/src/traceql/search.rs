//! Running a compiled TraceQL search: the newest matching traces, then their spansets.

use std::collections::{BTreeMap, HashSet};

use arrow::array::AsArray;
use arrow::datatypes::{DataType, TimestampNanosecondType};
use datafusion::common::ScalarValue;
use serde::Serialize;
use spanlake_storage::TenantId;

use super::compile::{Compiled, compile, run_error, search_scan};
use super::{Query, parse};
use crate::tempo::query::{int64s, texts};
use crate::traces::{FIRST_SLICE_SPANS, Slices, TraceHit, Traces, Window};
use crate::{Error, Result};

/// A TraceQL search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    /// Traces must overlap it.
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
    /// An array attribute's elements.
    Array(Vec<Value>),
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
    /// `by(...)` fields and their values, typed.
    #[serde(serialize_with = "as_map")]
    pub group: Vec<(String, Value)>,
    /// In start order, at most [`SearchRequest::spans_per_set`].
    pub spans: Vec<FoundSpan>,
    /// Spans in the spanset.
    pub matched: u64,
    /// Values of the whole spanset: the aggregates of the scalar filters that kept it, as
    /// `("count()", Int(3))`.
    #[serde(serialize_with = "as_map")]
    pub attributes: Vec<(String, Value)>,
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
    let (ids, found_bytes, found_rows) = if compiled.structural {
        newest_in_chunks(traces, tenant, &compiled, request).await?
    } else {
        newest(traces, tenant, &compiled, None, request.limit).await?
    };
    let ids: Vec<String> = ids.into_iter().map(|(id, _)| id).collect();
    if ids.is_empty() {
        return Ok(Outcome {
            traces: Vec::new(),
            bytes_read: found_bytes,
            spans_read: found_rows,
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
        bytes_read: found_bytes + bytes_read,
        spans_read: found_rows + spans_read,
    })
}

/// Traces looked at per step of a structural search.
const CHUNK_TRACES: usize = 2_000;
/// Most traces a structural search looks at, newest first.
const MAX_CANDIDATE_TRACES: usize = 50_000;

/// The newest traces the query keeps (with their latest matching start), at most `limit`,
/// among `only` when given; plus bytes and rows read.
async fn newest(
    traces: &Traces,
    tenant: &TenantId,
    compiled: &Compiled,
    only: Option<&[String]>,
    limit: usize,
) -> Result<(Vec<(String, i64)>, u64, u64)> {
    let (relation, params, _) = compiled.restricted(only);
    let sql = format!(
        "SELECT trace_id, CAST(max(start_time) AS BIGINT) AS tql_latest FROM {relation} \
         tql_found GROUP BY trace_id ORDER BY tql_latest DESC, trace_id LIMIT {}",
        limit.max(1)
    );
    let found = traces
        .engine()
        .query_measured(tenant, &sql, params)
        .await
        .map_err(run_error)?;
    let mut ids = Vec::new();
    for batch in &found.batches {
        let names = texts(batch, 0)?;
        let latest = int64s(batch, 1)?;
        ids.extend(
            names
                .into_iter()
                .zip(latest)
                .filter_map(|(n, l)| Some((n?, l))),
        );
    }
    Ok((ids, found.bytes_read, found.rows_read))
}

/// Structural operators partition every candidate trace's spans, which does not scale with
/// the window; so traces are looked at newest first (by their latest span), a chunk at a
/// time, until `limit` traces match or [`MAX_CANDIDATE_TRACES`] were looked at. Each chunk's
/// ids go into the scans as an `IN` list. The candidates come slice by slice of the window,
/// newest first ([`Slices`]), so a search that matches in recent traces never ranks the rest.
async fn newest_in_chunks(
    traces: &Traces,
    tenant: &TenantId,
    compiled: &Compiled,
    request: &SearchRequest,
) -> Result<(Vec<(String, i64)>, u64, u64)> {
    let stamp = |ns| ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()));
    let (mut bytes, mut rows) = (0, 0);
    let mut seen: HashSet<String> = HashSet::new();
    let mut found = Vec::new();
    // The candidates: traces with a span that overlaps the window, which starts at most the
    // trace reach before it and before its end.
    let reach = Window {
        start_ns: search_scan(request.window).start_ns,
        end_ns: request.window.end_ns,
    };
    let slices = Slices::new(traces.engine(), tenant, reach, FIRST_SLICE_SPANS);
    'slices: for slice in slices {
        let room = MAX_CANDIDATE_TRACES - seen.len();
        let candidates = traces
            .engine()
            .query_measured(
                tenant,
                &format!(
                    "SELECT trace_id, max(start_time) AS tql_latest FROM spans \
                     WHERE start_time >= $1 AND start_time < $2 AND end_time >= $3 \
                     GROUP BY trace_id ORDER BY tql_latest DESC, trace_id LIMIT {room}"
                ),
                vec![
                    stamp(slice.start_ns),
                    stamp(slice.end_ns),
                    stamp(request.window.start_ns),
                ],
            )
            .await?;
        bytes += candidates.bytes_read;
        rows += candidates.rows_read;
        let mut ids = Vec::new();
        for batch in &candidates.batches {
            // A trace seen in a newer slice was ranked there, by its latest span.
            ids.extend(
                texts(batch, 0)?
                    .into_iter()
                    .flatten()
                    .filter(|id| seen.insert(id.clone())),
            );
        }
        for chunk in ids.chunks(CHUNK_TRACES) {
            let (mut matched, b, r) =
                newest(traces, tenant, compiled, Some(chunk), request.limit).await?;
            bytes += b;
            rows += r;
            found.append(&mut matched);
            if found.len() >= request.limit {
                break 'slices;
            }
        }
        if seen.len() >= MAX_CANDIDATE_TRACES {
            break;
        }
    }
    found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    found.truncate(request.limit.max(1));
    Ok((found, bytes, rows))
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
    // The relation limited to these traces: each trace's spansets are the same, and the scans
    // read only them.
    let (relation, mut params, shown_fields) = compiled.restricted(Some(ids));
    params.push(ScalarValue::Int64(Some(
        spans_per_set.clamp(1, i64::MAX as usize) as i64,
    )));
    let per_set = format!("${}", params.len());
    let mut outputs = String::new();
    let mut names = String::new();
    for (i, output) in shown_fields.iter().enumerate() {
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
               FROM {relation} tql_found) tql_sets \
         WHERE tql_nth <= {per_set} ORDER BY trace_id, grp, start_time, span_id"
    );
    let output = traces
        .engine()
        .query_measured(tenant, &sql, params)
        .await
        .map_err(run_error)?;
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
                        // The key holds each field's value and type.
                        let parts: Vec<&str> = key.split('\u{1f}').collect();
                        compiled
                            .group_by
                            .iter()
                            .cloned()
                            .zip(parts.chunks(2).map(|pair| match pair {
                                [value, kind] => {
                                    typed(value, Some(*kind).filter(|k| !k.is_empty()))
                                }
                                [value] => Value::Str((*value).into()),
                                _ => Value::Str(String::new()),
                            }))
                            .collect()
                    },
                    spans: Vec::new(),
                    matched: 0,
                    attributes: Vec::new(),
                });
            set.matched = matched[row].max(0) as u64;
            if set.spans.is_empty() {
                set.attributes = compiled
                    .outputs
                    .iter()
                    .zip(&shown)
                    .filter(|(output, _)| output.on_spanset)
                    .filter_map(|(output, (values, kinds))| {
                        let value = values[row].as_deref()?;
                        Some((output.name.clone(), typed(value, kinds[row].as_deref())))
                    })
                    .collect();
            }
            let attributes = compiled
                .outputs
                .iter()
                .zip(&shown)
                .filter(|(output, _)| !output.on_spanset)
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
        Some("duration") => value.parse::<f64>().map_or_else(
            |_| Value::Str(value.into()),
            |nanos| Value::Str(go_duration(nanos.round() as i64)),
        ),
        Some("status" | "kind") => Value::Str(value.to_ascii_lowercase()),
        Some("array") => array_value(value).unwrap_or_else(|| Value::Str(value.into())),
        _ => Value::Str(value.into()),
    }
}

/// An array attribute stored as OTLP/JSON (`{"values":[{"intValue":"1"}, ...]}`) as typed
/// elements; nested arrays and key-value lists are shown as their JSON text.
fn array_value(json: &str) -> Option<Value> {
    use serde_json::Value as Json;
    let parsed: Json = serde_json::from_str(json).ok()?;
    let elements = parsed.get("values").and_then(Json::as_array)?;
    let element = |e: &Json| -> Value {
        if let Some(s) = e.get("stringValue").and_then(Json::as_str) {
            return Value::Str(s.into());
        }
        if let Some(i) = e
            .get("intValue")
            .and_then(|v| v.as_str().and_then(|t| t.parse().ok()).or(v.as_i64()))
        {
            return Value::Int(i);
        }
        if let Some(d) = e.get("doubleValue").and_then(Json::as_f64) {
            return Value::Double(d);
        }
        if let Some(b) = e.get("boolValue").and_then(Json::as_bool) {
            return Value::Bool(b);
        }
        Value::Str(e.to_string())
    };
    Some(Value::Array(elements.iter().map(element).collect()))
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it (`1.5s`, `90ms`,
/// `1h2m3s`), the form Tempo shows duration aggregates in.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    // Below a second: one unit with a fraction.
    let fraction = |value: u64, unit: u64| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let text = format!("{rest:0digits$}");
        format!("{whole}.{}", text.trim_end_matches('0'))
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = n / 60_000_000_000 % 60;
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}
