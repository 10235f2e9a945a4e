//! Jaeger's UI JSON model (Jaeger's `model/json`) and the conversion of an assembled trace into
//! it, following the conventions of Jaeger's OTLP translator:
//!
//! - span kind -> tag `span.kind` (`server`, `client`, ...; none when unspecified);
//! - status -> tag `otel.status_code` (`OK` or `ERROR`), `error=true` for ERROR, and
//!   `otel.status_description` when there is a message;
//! - scope -> tags `otel.scope.name` / `otel.scope.version`; trace state -> `w3c.tracestate`;
//! - attribute types -> tag types `string`, `bool`, `int64`, `float64` and `binary` (base64);
//!   arrays and maps become their JSON text, as Jaeger renders them;
//! - events -> logs, with the event name as an `event` field first;
//! - parent -> a `CHILD_OF` reference, links -> `FOLLOWS_FROM` (`CHILD_OF` when the link carries
//!   `opentracing.ref_type=child_of`, as OpenTracing bridges mark them);
//! - one process per distinct service and resource attributes, `p1`, `p2`, ... in span order,
//!   tagged with the resource attributes other than `service.name`;
//! - times in microseconds, on the clock-skew adjusted timeline unless raw times are asked for,
//!   as Jaeger's query service applies its adjusters unless `raw=true`;
//! - assembly warnings on the span they concern, the others on the trace;
//! - trace ids of 32 digits whose upper half is zero are written with 16 digits, as Jaeger
//!   writes 64-bit ids.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use serde::Serialize;
use serde_json::Value;

use crate::assemble::{AssembledSpan, AssembledTrace, Attribute, SpanEvent};
use crate::otlp_out;

/// A trace as Jaeger's UI reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    /// Keyed by the span's `processID`.
    pub processes: BTreeMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// W3C trace flags: 1 when sampled.
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<Reference>,
    /// UNIX microseconds.
    pub start_time: i64,
    /// Microseconds.
    pub duration: i64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    #[serde(rename = "refType")]
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Log {
    /// UNIX microseconds.
    pub timestamp: i64,
    pub fields: Vec<KeyValue>,
}

/// A tag or log field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Bool,
    Int64,
    Float64,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

/// A trace id as Jaeger writes it: 16 digits when the upper 64 bits are zero.
pub fn trace_id(id: &str) -> String {
    match id.split_at_checked(16) {
        Some((high, low)) if id.len() == 32 && high.bytes().all(|b| b == b'0') => low.to_owned(),
        _ => id.to_owned(),
    }
}

/// Jaeger's name of a span kind; `None` for unspecified.
pub fn span_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "SERVER" => Some("server"),
        "CLIENT" => Some("client"),
        "PRODUCER" => Some("producer"),
        "CONSUMER" => Some("consumer"),
        "INTERNAL" => Some("internal"),
        _ => None,
    }
}

/// Converts an assembled trace; `adjust` places times on the skew-adjusted timeline.
pub fn from_assembled(trace: &AssembledTrace, adjust: bool) -> Trace {
    let mut span_warnings: Vec<Vec<String>> = vec![Vec::new(); trace.spans.len()];
    let mut trace_warnings = Vec::new();
    for w in &trace.warnings {
        match w.span_index.and_then(|i| span_warnings.get_mut(i)) {
            Some(list) => list.push(w.message.clone()),
            None => trace_warnings.push(w.message.clone()),
        }
    }

    type ProcessKey<'a> = (&'a str, Vec<(&'a str, &'a str, &'a str)>);
    let mut process_ids: HashMap<ProcessKey<'_>, String> = HashMap::new();
    let mut processes = BTreeMap::new();
    let spans = trace
        .spans
        .iter()
        .zip(span_warnings)
        .map(|(span, warnings)| {
            let record = &span.span;
            let key = (
                record.service_name.as_str(),
                record
                    .resource_attributes
                    .iter()
                    .map(|a| (a.key.as_str(), a.value.as_str(), a.r#type.as_str()))
                    .collect(),
            );
            let next_id = process_ids.len() + 1;
            let process_id = process_ids
                .entry(key)
                .or_insert_with(|| {
                    let id = format!("p{next_id}");
                    processes.insert(
                        id.clone(),
                        Process {
                            service_name: record.service_name.clone(),
                            tags: record
                                .resource_attributes
                                .iter()
                                .filter(|a| a.key != "service.name")
                                .map(tag)
                                .collect(),
                        },
                    );
                    id
                })
                .clone();
            to_span(span, adjust, process_id, warnings)
        })
        .collect();

    Trace {
        trace_id: trace_id(&trace.summary.trace_id),
        spans,
        processes,
        warnings: non_empty(trace_warnings),
    }
}

fn to_span(span: &AssembledSpan, adjust: bool, process_id: String, warnings: Vec<String>) -> Span {
    let record = &span.span;
    let (start_ns, end_ns, shift_ns) = if adjust {
        (
            span.adjusted_start_ns,
            span.adjusted_end_ns,
            span.skew_shift_ns,
        )
    } else {
        (record.start_ns, record.end_ns.max(record.start_ns), 0)
    };
    let jaeger_trace_id = trace_id(&record.trace_id);

    let mut references = Vec::with_capacity(record.links.len() + 1);
    if let Some(parent) = record
        .parent_span_id
        .as_deref()
        .filter(|p| p.bytes().any(|b| b != b'0'))
    {
        references.push(Reference {
            ref_type: RefType::ChildOf,
            trace_id: jaeger_trace_id.clone(),
            span_id: parent.to_owned(),
        });
    }
    references.extend(record.links.iter().map(|link| {
        let child_of = link
            .attributes
            .iter()
            .any(|a| a.key == "opentracing.ref_type" && a.value == "child_of");
        Reference {
            ref_type: if child_of {
                RefType::ChildOf
            } else {
                RefType::FollowsFrom
            },
            trace_id: trace_id(&link.trace_id),
            span_id: link.span_id.clone(),
        }
    }));

    // Jaeger's model has no scope: its attributes go with the span's.
    let mut tags: Vec<KeyValue> = record
        .attributes
        .iter()
        .chain(&record.scope_attributes)
        .map(tag)
        .collect();
    let mut push = |key: &str, value_type, value: Value| {
        tags.push(KeyValue {
            key: key.to_owned(),
            value_type,
            value,
        })
    };
    if !record.scope_name.is_empty() {
        push(
            "otel.scope.name",
            ValueType::String,
            record.scope_name.clone().into(),
        );
    }
    if !record.scope_version.is_empty() {
        push(
            "otel.scope.version",
            ValueType::String,
            record.scope_version.clone().into(),
        );
    }
    if let Some(kind) = span_kind(&record.span_kind) {
        push("span.kind", ValueType::String, kind.into());
    }
    match record.status_code.as_str() {
        "OK" => push("otel.status_code", ValueType::String, "OK".into()),
        "ERROR" => {
            push("otel.status_code", ValueType::String, "ERROR".into());
            push("error", ValueType::Bool, true.into());
        }
        _ => {}
    }
    if !record.status_message.is_empty() {
        push(
            "otel.status_description",
            ValueType::String,
            record.status_message.clone().into(),
        );
    }
    if !record.trace_state.is_empty() {
        push(
            "w3c.tracestate",
            ValueType::String,
            record.trace_state.clone().into(),
        );
    }

    Span {
        trace_id: jaeger_trace_id,
        span_id: record.span_id.clone(),
        flags: record.flags & 0xff,
        operation_name: record.span_name.clone(),
        references,
        start_time: micros(start_ns),
        duration: micros(end_ns.saturating_sub(start_ns)),
        tags,
        logs: record.events.iter().map(|e| log(e, shift_ns)).collect(),
        process_id,
        warnings: non_empty(warnings),
    }
}

fn log(event: &SpanEvent, shift_ns: i64) -> Log {
    let mut fields = Vec::with_capacity(event.attributes.len() + 1);
    if !event.name.is_empty() && !event.attributes.iter().any(|a| a.key == "event") {
        fields.push(KeyValue {
            key: "event".to_owned(),
            value_type: ValueType::String,
            value: event.name.clone().into(),
        });
    }
    fields.extend(event.attributes.iter().map(tag));
    Log {
        timestamp: micros(event.time_ns.saturating_add(shift_ns)),
        fields,
    }
}

/// An attribute as a Jaeger tag of the matching type.
pub fn tag(attribute: &Attribute) -> KeyValue {
    let text = &attribute.value;
    let typed = match attribute.r#type.as_str() {
        "int" => text
            .parse::<i64>()
            .ok()
            .map(|i| (ValueType::Int64, i.into())),
        "double" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| (ValueType::Float64, Value::Number(n))),
        "bool" => match text.as_str() {
            "true" => Some((ValueType::Bool, true.into())),
            "false" => Some((ValueType::Bool, false.into())),
            _ => None,
        },
        // Stored as base64, which is how Jaeger's JSON writes binary values.
        "bytes" => Some((ValueType::Binary, text.clone().into())),
        "array" | "kvlist" => match plain_json(&otlp_out::any_value(attribute)) {
            Value::String(s) => Some((ValueType::String, s.into())),
            json => Some((ValueType::String, json.to_string().into())),
        },
        _ => None,
    };
    let (value_type, value) = typed.unwrap_or_else(|| (ValueType::String, text.clone().into()));
    KeyValue {
        key: attribute.key.clone(),
        value_type,
        value,
    }
}

/// An OTLP value as plain JSON (`["a",1]`, `{"k":true}`), the way the OpenTelemetry Collector
/// renders arrays and maps as text.
fn plain_json(value: &AnyValue) -> Value {
    use any_value::Value as V;
    match &value.value {
        None => Value::Null,
        Some(V::StringValue(s)) => s.clone().into(),
        Some(V::BoolValue(b)) => (*b).into(),
        Some(V::IntValue(i)) => (*i).into(),
        Some(V::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(V::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Some(V::ArrayValue(a)) => a.values.iter().map(plain_json).collect(),
        Some(V::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, plain_json),
                    )
                })
                .collect(),
        ),
        Some(V::StringValueStrindex(i)) => (*i).into(),
    }
}

fn micros(ns: i64) -> i64 {
    ns / 1_000
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}
