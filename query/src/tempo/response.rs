//! The bodies Tempo clients read, shaped like Tempo's `tempopb` messages: JSON in their
//! protobuf-JSON form (camelCase names, 64-bit numbers as strings) and, for traces, the two
//! small protobuf wrappers around OTLP `ResourceSpans`.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Serialize;

use super::filter::{Condition, SpanFilter};
use super::query::{MatchedSpan, TagValue, TraceMatch};
use crate::traceql::metrics::{Label, Series};
use crate::traceql::search::{FoundSpan, Outcome, Value};
use crate::traces::TraceHit;

/// What Tempo reports as the root service while the root span has not arrived.
pub const MISSING_ROOT: &str = "<root span not yet received>";

/// `tempopb.Trace`: the spans of one trace (`/api/traces/{id}` as protobuf).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDResponse` (`/api/v2/traces/{id}` as protobuf); metrics (field 2) are not
/// sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    /// `PartialStatus`: 0 complete, 1 partial.
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `/api/traces/{id}` as JSON: Tempo renames `resourceSpans` to `batches` in its v1 answer.
#[derive(Debug, Serialize)]
pub struct TraceJson<'a> {
    pub batches: &'a [ResourceSpans],
}

/// `/api/v2/traces/{id}` as JSON.
#[derive(Debug, Serialize)]
pub struct TraceByIdJson<'a> {
    pub trace: TraceResourceSpans<'a>,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceResourceSpans<'a> {
    pub resource_spans: &'a [ResourceSpans],
}

/// `tempopb.SearchResponse`.
#[derive(Debug, Serialize, PartialEq)]
pub struct SearchResponse {
    pub traces: Vec<TraceSearchMetadata>,
    pub metrics: SearchMetrics,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub root_service_name: String,
    pub root_trace_name: String,
    pub start_time_unix_nano: String,
    pub duration_ms: u32,
    /// The first of `span_sets`, for clients older than `spanSets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_set: Option<SpanSet>,
    pub span_sets: Vec<SpanSet>,
    pub service_stats: BTreeMap<String, ServiceStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpanSet {
    pub spans: Vec<Span>,
    pub matched: u32,
    /// The `by(...)` values the spanset was grouped by, then the aggregates that kept it
    /// (`count()`, `avg(duration)`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub name: String,
    pub start_time_unix_nano: String,
    pub duration_nanos: String,
    pub attributes: Vec<KeyValue>,
}

/// An OTLP key/value, as Tempo lists matched attributes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

/// An OTLP `AnyValue` in protobuf JSON (64-bit integers as strings).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum AnyValue {
    StringValue(String),
    IntValue(String),
    DoubleValue(f64),
    BoolValue(bool),
    ArrayValue(ArrayValue),
}

/// An OTLP `ArrayValue`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArrayValue {
    pub values: Vec<AnyValue>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStats {
    pub span_count: u32,
    pub error_count: u32,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SearchMetrics {
    /// Traces that matched (before the limit cut the list, at most the limit).
    pub inspected_traces: u32,
    /// Bytes the search read (TraceQL searches; 64-bit, so a string as in protobuf JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inspected_bytes: Option<String>,
    /// Span rows the search read after pruning (TraceQL searches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inspected_spans: Option<String>,
    pub completed_jobs: u32,
    pub total_jobs: u32,
}

/// `tempopb.QueryRangeResponse`.
#[derive(Debug, Serialize, PartialEq)]
pub struct QueryRangeResponse {
    pub series: Vec<TimeSeries>,
    pub metrics: RangeMetrics,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimeSeries {
    pub labels: Vec<KeyValue>,
    pub samples: Vec<Sample>,
    /// The labels as Prometheus writes them, `{resource.service.name="a"}`.
    pub prom_labels: String,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub timestamp_ms: String,
    pub value: f64,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RangeMetrics {
    pub inspected_bytes: String,
    pub completed_jobs: u32,
    pub total_jobs: u32,
}

/// The answer of a metrics query.
pub fn query_range(series: Vec<Series>, bytes_read: u64) -> QueryRangeResponse {
    let series = series
        .into_iter()
        .map(|s| {
            let prom: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| match v {
                    Label::Str(v) => format!("{k}={v:?}"),
                    Label::Float(f) => format!("{k}=\"{f}\""),
                })
                .collect();
            TimeSeries {
                prom_labels: format!("{{{}}}", prom.join(", ")),
                labels: s
                    .labels
                    .into_iter()
                    .map(|(key, v)| KeyValue {
                        key,
                        value: match v {
                            Label::Str(s) => AnyValue::StringValue(s),
                            Label::Float(f) => AnyValue::DoubleValue(f),
                        },
                    })
                    .collect(),
                samples: s
                    .samples
                    .into_iter()
                    .map(|(t, value)| Sample {
                        timestamp_ms: t.to_string(),
                        value,
                    })
                    .collect(),
            }
        })
        .collect();
    QueryRangeResponse {
        series,
        metrics: RangeMetrics {
            inspected_bytes: bytes_read.to_string(),
            completed_jobs: 1,
            total_jobs: 1,
        },
    }
}

/// `tempopb.SearchTagsResponse`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagNames {
    pub tag_names: Vec<String>,
}

/// `tempopb.SearchTagsV2Response`.
#[derive(Debug, Serialize, PartialEq)]
pub struct TagScopes {
    pub scopes: Vec<TagScope>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TagScope {
    pub name: &'static str,
    pub tags: Vec<String>,
}

/// `tempopb.SearchTagValuesResponse`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagValues {
    pub tag_values: Vec<String>,
}

/// `tempopb.SearchTagValuesV2Response`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TypedTagValues {
    pub tag_values: Vec<TypedTagValue>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TypedTagValue {
    #[serde(rename = "type")]
    pub r#type: &'static str,
    pub value: String,
}

impl From<TagValue> for TypedTagValue {
    fn from(v: TagValue) -> Self {
        Self {
            r#type: v.r#type,
            value: v.value,
        }
    }
}

fn key_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: AnyValue::StringValue(value.to_string()),
    }
}

fn saturate(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

/// What every span of a spanset shows besides its id, name and times: its service and the
/// values the filter asked for, so a results table can show why it matched.
fn span(span: &MatchedSpan, filter: &SpanFilter) -> Span {
    let mut attributes = vec![key_value("service.name", &span.service)];
    for condition in &filter.conditions {
        let (key, value) = match condition {
            Condition::Attribute { key, value, .. } => (key.as_str(), value.clone()),
            Condition::Status(s) => ("status", s.as_str().to_ascii_lowercase()),
            Condition::Kind(k) => ("kind", k.as_str().to_ascii_lowercase()),
            Condition::Service(_) | Condition::Name(_) | Condition::Duration(..) => continue,
        };
        if attributes.iter().all(|a| a.key != key) {
            attributes.push(key_value(key, &value));
        }
    }
    Span {
        span_id: span.span_id.clone(),
        name: span.name.clone(),
        start_time_unix_nano: span.start_ns.max(0).to_string(),
        duration_nanos: span.duration_ns.max(0).to_string(),
        attributes,
    }
}

/// The search answer for traces found with `filter`.
pub fn search(matches: Vec<TraceMatch>, filter: &SpanFilter) -> SearchResponse {
    let traces = matches
        .into_iter()
        .map(|m| {
            let set = SpanSet {
                spans: m.spans.iter().map(|s| span(s, filter)).collect(),
                matched: saturate(m.matched),
                attributes: Vec::new(),
            };
            metadata(m.hit, vec![set])
        })
        .collect();
    response(traces)
}

/// The search answer for traces found by a TraceQL query.
pub fn traceql_search(outcome: Outcome) -> SearchResponse {
    let traces = outcome
        .traces
        .into_iter()
        .map(|trace| {
            let sets = trace
                .spansets
                .into_iter()
                .map(|set| SpanSet {
                    spans: set.spans.into_iter().map(found_span).collect(),
                    matched: saturate(set.matched),
                    attributes: set
                        .group
                        .iter()
                        .map(|(k, v)| KeyValue {
                            key: format!("by({k})"),
                            value: any_value(v.clone()),
                        })
                        .chain(set.attributes.into_iter().map(|(key, value)| KeyValue {
                            key,
                            value: any_value(value),
                        }))
                        .collect(),
                })
                .collect();
            metadata(trace.hit, sets)
        })
        .collect();
    let mut response = response(traces);
    response.metrics.inspected_bytes = Some(outcome.bytes_read.to_string());
    response.metrics.inspected_spans = Some(outcome.spans_read.to_string());
    response
}

fn any_value(value: Value) -> AnyValue {
    match value {
        Value::Str(s) => AnyValue::StringValue(s),
        Value::Int(i) => AnyValue::IntValue(i.to_string()),
        Value::Double(d) => AnyValue::DoubleValue(d),
        Value::Bool(b) => AnyValue::BoolValue(b),
        Value::Array(values) => AnyValue::ArrayValue(ArrayValue {
            values: values.into_iter().map(any_value).collect(),
        }),
    }
}

fn found_span(span: FoundSpan) -> Span {
    let mut attributes = vec![key_value("service.name", &span.service)];
    for (key, value) in span.attributes {
        if attributes.iter().any(|a| a.key == key) {
            continue;
        }
        attributes.push(KeyValue {
            key,
            value: any_value(value),
        });
    }
    Span {
        span_id: span.span_id,
        name: span.name,
        start_time_unix_nano: span.start_ns.max(0).to_string(),
        duration_nanos: span.duration_ns.max(0).to_string(),
        attributes,
    }
}

fn metadata(hit: TraceHit, span_sets: Vec<SpanSet>) -> TraceSearchMetadata {
    TraceSearchMetadata {
        trace_id: hit.trace_id,
        root_service_name: hit.root_service.unwrap_or_else(|| MISSING_ROOT.into()),
        root_trace_name: hit.root_span_name.unwrap_or_default(),
        start_time_unix_nano: hit.start_ns.max(0).to_string(),
        duration_ms: saturate(hit.duration_ns.max(0) / 1_000_000),
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: hit
            .services
            .into_iter()
            .map(|s| {
                (
                    s.service,
                    ServiceStats {
                        span_count: saturate(s.span_count),
                        error_count: saturate(s.error_count),
                    },
                )
            })
            .collect(),
    }
}

fn response(traces: Vec<TraceSearchMetadata>) -> SearchResponse {
    SearchResponse {
        metrics: SearchMetrics {
            inspected_traces: saturate(traces.len()),
            inspected_bytes: None,
            inspected_spans: None,
            completed_jobs: 1,
            total_jobs: 1,
        },
        traces,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use serde_json::json;

    use super::*;
    use crate::traces::ServiceCount;

    fn hit(root: Option<&str>) -> TraceHit {
        TraceHit {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            root_service: root.map(str::to_string),
            root_span_name: root.map(|_| "GET /cart".to_string()),
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 120_500_000,
            span_count: 3,
            error_count: 1,
            services: vec![
                ServiceCount {
                    service: "frontend".into(),
                    span_count: 2,
                    error_count: 0,
                },
                ServiceCount {
                    service: "cart".into(),
                    span_count: 1,
                    error_count: 1,
                },
            ],
        }
    }

    #[test]
    fn search_json_has_tempo_names_and_string_nanoseconds() {
        let filter =
            SpanFilter::from_traceql(r#"{span.http.status_code=500 && status=error}"#).unwrap();
        let matches = vec![TraceMatch {
            hit: hit(Some("frontend")),
            spans: vec![MatchedSpan {
                span_id: "0303030303030303".into(),
                name: "POST /items".into(),
                service: "cart".into(),
                start_ns: 1_700_000_000_020_000_000,
                duration_ns: 80_000_000,
            }],
            matched: 1,
        }];
        let set = json!({
            "spans": [{
                "spanID": "0303030303030303",
                "name": "POST /items",
                "startTimeUnixNano": "1700000000020000000",
                "durationNanos": "80000000",
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "cart"}},
                    {"key": "http.status_code", "value": {"stringValue": "500"}},
                    {"key": "status", "value": {"stringValue": "error"}}
                ]
            }],
            "matched": 1
        });
        assert_eq!(
            serde_json::to_value(search(matches, &filter)).unwrap(),
            json!({
                "traces": [{
                    "traceID": "0af7651916cd43dd8448eb211c80319c",
                    "rootServiceName": "frontend",
                    "rootTraceName": "GET /cart",
                    "startTimeUnixNano": "1700000000000000000",
                    "durationMs": 120,
                    "spanSet": set,
                    "spanSets": [set],
                    "serviceStats": {
                        "cart": {"spanCount": 1, "errorCount": 1},
                        "frontend": {"spanCount": 2, "errorCount": 0}
                    }
                }],
                "metrics": {"inspectedTraces": 1, "completedJobs": 1, "totalJobs": 1}
            })
        );
    }

    #[test]
    fn a_trace_without_its_root_says_so() {
        let found = search(
            vec![TraceMatch {
                hit: hit(None),
                spans: Vec::new(),
                matched: 0,
            }],
            &SpanFilter::default(),
        );
        assert_eq!(found.traces[0].root_service_name, MISSING_ROOT);
        assert_eq!(found.traces[0].root_trace_name, "");
    }

    #[test]
    fn arrays_are_typed_otlp_arrays() {
        let value = any_value(Value::Array(vec![
            Value::Int(111),
            Value::Str("a".into()),
            Value::Double(0.5),
            Value::Bool(true),
        ]));
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"arrayValue":{"values":[{"intValue":"111"},{"stringValue":"a"},{"doubleValue":0.5},{"boolValue":true}]}}"#
        );
    }

    #[test]
    fn tag_shapes() {
        assert_eq!(
            serde_json::to_value(TagScopes {
                scopes: vec![TagScope {
                    name: "span",
                    tags: vec!["http.route".into()]
                }]
            })
            .unwrap(),
            json!({"scopes": [{"name": "span", "tags": ["http.route"]}]})
        );
        assert_eq!(
            serde_json::to_value(TagNames {
                tag_names: vec!["a".into()]
            })
            .unwrap(),
            json!({"tagNames": ["a"]})
        );
        assert_eq!(
            serde_json::to_value(TypedTagValues {
                tag_values: vec![
                    TagValue {
                        r#type: "int",
                        value: "500".into()
                    }
                    .into()
                ]
            })
            .unwrap(),
            json!({"tagValues": [{"type": "int", "value": "500"}]})
        );
    }

    #[test]
    fn trace_wrappers_are_resource_spans_on_the_wire() {
        use opentelemetry_proto::tonic::trace::v1::TracesData;
        let resource_spans = vec![ResourceSpans {
            schema_url: "s".into(),
            ..Default::default()
        }];
        // tempopb.Trace and OTLP TracesData both hold ResourceSpans in field 1.
        let bytes = Trace {
            resource_spans: resource_spans.clone(),
        }
        .encode_to_vec();
        assert_eq!(
            TracesData::decode(bytes.as_slice()).unwrap().resource_spans,
            resource_spans
        );
        let v2 = TraceByIdResponse {
            trace: Some(Trace {
                resource_spans: resource_spans.clone(),
            }),
            status: 0,
            message: String::new(),
        };
        let decoded = TraceByIdResponse::decode(v2.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, v2);
        assert_eq!(
            serde_json::to_value(TraceByIdJson {
                trace: TraceResourceSpans {
                    resource_spans: &resource_spans
                },
                status: "COMPLETE"
            })
            .unwrap()["trace"]["resourceSpans"][0]["schemaUrl"],
            "s"
        );
        assert_eq!(
            serde_json::to_value(TraceJson {
                batches: &resource_spans
            })
            .unwrap()["batches"][0]["schemaUrl"],
            "s"
        );
    }
}
