//! Decoding OTLP trace requests into span batches: a pure function, separately tested, fuzzable
//! and benchmarkable. Spans that break the OTLP rules (ids of the wrong length or all zeros,
//! timestamps past `i64`) are rejected one by one and reported; the rest are kept.

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use spanlake_storage::batch::{
    AttrMapBuilder, AttrValue, BatchCapacity, EventFields, LinkFields, MapCapacity,
    SpanBatchBuilder, SpanFields, SpanKind, StatusCode, StoredAttr,
};

/// The service name OTel SDKs report when none is configured.
const UNKNOWN_SERVICE: &str = "unknown_service";
/// How many rejection reasons are spelled out in the partial-success message.
const MAX_REASONS: usize = 5;

/// The result of decoding one export request.
#[derive(Debug)]
pub struct Decoded {
    /// The accepted spans.
    pub batch: RecordBatch,
    /// Number of spans refused.
    pub rejected: u64,
    /// Why, for the first few refused spans.
    pub reasons: Vec<String>,
    /// Number of spans accepted with a warning (end before start, absurd timestamps).
    pub flagged: u64,
    /// Why, for the first few flagged spans.
    pub warnings: Vec<String>,
}

impl Decoded {
    /// The OTLP `partial_success.error_message`: why spans were rejected, then the warnings
    /// about accepted ones (OTLP lets a server warn with `rejected_spans` 0); empty when
    /// there is nothing to say.
    pub fn message(&self) -> String {
        let part = |n: u64, what: &str, reasons: &[String]| {
            let mut msg = format!("{n} span(s) {what}: {}", reasons.join("; "));
            if n as usize > reasons.len() {
                msg.push_str("; ...");
            }
            msg
        };
        let mut parts = Vec::new();
        if self.rejected > 0 {
            parts.push(part(self.rejected, "rejected", &self.reasons));
        }
        if self.flagged > 0 {
            parts.push(part(self.flagged, "accepted with warnings", &self.warnings));
        }
        parts.join(". ")
    }
}

fn check_span(span: &Span) -> Result<(), String> {
    let id_error = |what: &str, want: usize, got: &[u8]| {
        if got.len() != want {
            Some(format!("{what} must be {want} bytes, got {}", got.len()))
        } else if got.iter().all(|b| *b == 0) {
            Some(format!("{what} is all zeros"))
        } else {
            None
        }
    };
    if let Some(e) = id_error("trace_id", 16, &span.trace_id) {
        return Err(e);
    }
    if let Some(e) = id_error("span_id", 8, &span.span_id) {
        return Err(e);
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!(
            "parent_span_id must be empty or 8 bytes, got {}",
            span.parent_span_id.len()
        ));
    }
    if span.start_time_unix_nano > i64::MAX as u64 || span.end_time_unix_nano > i64::MAX as u64 {
        return Err("timestamp beyond year 2262".into());
    }
    Ok(())
}

/// Spans starting before this (2000-01-01) are flagged: usually a clock at zero.
const EARLIEST_PLAUSIBLE_NS: u64 = 946_684_800_000_000_000;
/// Spans starting more than this after the server's clock are flagged.
const FUTURE_TOLERANCE_NS: u64 = 24 * 3600 * 1_000_000_000;

/// What is odd about an accepted span: its end before its start (stored with zero duration),
/// or a start before 2000 or more than a day ahead of `now_ns` (stored as sent).
fn warning(span: &Span, now_ns: u64) -> Option<&'static str> {
    if span.end_time_unix_nano < span.start_time_unix_nano {
        Some("end before start; stored with zero duration")
    } else if span.start_time_unix_nano < EARLIEST_PLAUSIBLE_NS {
        Some("start time before the year 2000; stored as sent")
    } else if span.start_time_unix_nano > now_ns.saturating_add(FUTURE_TOLERANCE_NS) {
        Some("start time more than a day in the future; stored as sent")
    } else {
        None
    }
}

/// Limits on what one span may carry. Over them, attributes are dropped (and counted in the
/// span's `dropped_attributes_count`, or the event's or link's) or, for long strings and
/// bytes, truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attributes kept per span, event, link or resource; later ones are dropped.
    pub max_attributes: usize,
    /// Longest string or bytes value kept whole, in bytes; longer ones are cut (at a character
    /// boundary). Arrays and key-value lists longer than this are dropped.
    pub max_value_bytes: usize,
    /// Deepest nesting of arrays and key-value lists kept; deeper values are dropped.
    pub max_value_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attributes: 128,
            max_value_bytes: 16 << 10,
            max_value_depth: 8,
        }
    }
}

/// Decodes `request` into a batch of the accepted spans, with the default [`Limits`].
pub fn decode(request: &ExportTraceServiceRequest) -> Result<Decoded, arrow::error::ArrowError> {
    decode_with(request, &Limits::default())
}

/// Decodes `request` into a batch of the accepted spans.
pub fn decode_with(
    request: &ExportTraceServiceRequest,
    limits: &Limits,
) -> Result<Decoded, arrow::error::ArrowError> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut builder = SpanBatchBuilder::with_capacity(&capacity_of(request, limits));
    let mut rejected = 0u64;
    let mut reasons = Vec::new();
    let mut flagged = 0u64;
    let mut warnings = Vec::new();
    for (r, resource_spans) in request.resource_spans.iter().enumerate() {
        let resource_attrs: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map_or(&[], |r| r.attributes.as_slice());
        // Rendered once, pushed on each of the resource's spans.
        let resource_stored = rendered(resource_attrs, limits);
        let service_name = service_name(resource_attrs);
        for (s, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            let (scope_name, scope_version) = scope_spans
                .scope
                .as_ref()
                .map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
            let scope_stored = rendered(
                scope_spans
                    .scope
                    .as_ref()
                    .map_or(&[][..], |s| s.attributes.as_slice()),
                limits,
            );
            for (i, span) in scope_spans.spans.iter().enumerate() {
                if let Err(why) = check_span(span) {
                    rejected += 1;
                    if reasons.len() < MAX_REASONS {
                        reasons.push(format!(
                            "resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {why}"
                        ));
                    }
                    continue;
                }
                if let Some(why) = warning(span, now_ns) {
                    flagged += 1;
                    if warnings.len() < MAX_REASONS {
                        warnings.push(format!(
                            "resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {why}"
                        ));
                    }
                }
                let status = span.status.as_ref();
                // An all-zero parent id is sent by some SDKs for roots.
                let parent: &[u8] = if span.parent_span_id.iter().all(|b| *b == 0) {
                    &[]
                } else {
                    &span.parent_span_id
                };
                builder.begin_span(&SpanFields {
                    trace_id: &span.trace_id,
                    span_id: &span.span_id,
                    parent_span_id: parent,
                    trace_state: &span.trace_state,
                    service_name,
                    name: &span.name,
                    kind: SpanKind::from_otlp(span.kind),
                    start_unix_nano: span.start_time_unix_nano as i64,
                    end_unix_nano: span.end_time_unix_nano.max(span.start_time_unix_nano) as i64,
                    status_code: StatusCode::from_otlp(status.map_or(0, |s| s.code)),
                    status_message: status.map_or("", |s| s.message.as_str()),
                    scope_name,
                    scope_version,
                    flags: span.flags,
                    dropped_attributes_count: span
                        .dropped_attributes_count
                        .saturating_add(dropped(&span.attributes, limits)),
                    dropped_events_count: span.dropped_events_count,
                    dropped_links_count: span.dropped_links_count,
                });
                push_attributes(builder.attributes(), &span.attributes, limits);
                let resource = builder.resource_attributes();
                for attr in &resource_stored {
                    resource.push_stored(attr);
                }
                let scope = builder.scope_attributes();
                for attr in &scope_stored {
                    scope.push_stored(attr);
                }
                for event in &span.events {
                    let events = builder.events();
                    events.begin_event(&EventFields {
                        time_unix_nano: event.time_unix_nano.min(i64::MAX as u64) as i64,
                        name: &event.name,
                        dropped_attributes_count: event
                            .dropped_attributes_count
                            .saturating_add(dropped(&event.attributes, limits)),
                    });
                    push_attributes(events.attributes(), &event.attributes, limits);
                    events.end_event();
                }
                for link in &span.links {
                    let links = builder.links();
                    links.begin_link(&LinkFields {
                        trace_id: &link.trace_id,
                        span_id: &link.span_id,
                        trace_state: &link.trace_state,
                        flags: link.flags,
                        dropped_attributes_count: link
                            .dropped_attributes_count
                            .saturating_add(dropped(&link.attributes, limits)),
                    });
                    push_attributes(links.attributes(), &link.attributes, limits);
                    links.end_link();
                }
                builder.end_span();
            }
        }
    }
    let batch = builder
        .finish()
        .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))?;
    Ok(Decoded {
        batch,
        rejected,
        reasons,
        flagged,
        warnings,
    })
}

/// Attributes shared by many spans (a resource's, a scope's), rendered once within `limits`.
fn rendered<'a>(attributes: &'a [KeyValue], limits: &Limits) -> Vec<StoredAttr<'a>> {
    attributes
        .iter()
        .take(limits.max_attributes)
        .filter_map(|kv| {
            let value = kept_value(kv, limits)?;
            Some(StoredAttr::new(cut(&kv.key, limits.max_value_bytes), value))
        })
        .collect()
}

/// The resource's `service.name`, or [`UNKNOWN_SERVICE`].
fn service_name(resource_attrs: &[KeyValue]) -> &str {
    resource_attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or(UNKNOWN_SERVICE)
}

/// What the batch of `request` will hold, from one pass over the lengths of the spans it
/// accepts, so that its builders need not grow.
fn capacity_of(request: &ExportTraceServiceRequest, limits: &Limits) -> BatchCapacity {
    // The values map and the types map (an entry per value that is not a string).
    let maps = |attributes: &[KeyValue]| {
        let (mut values, mut types) = (MapCapacity::default(), MapCapacity::default());
        for kv in attributes.iter().take(limits.max_attributes) {
            let key = kv.key.len().min(limits.max_value_bytes);
            values.add_entry(key, text_bytes_bound(kv.value.as_ref(), limits));
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            if !matches!(value, Some(any_value::Value::StringValue(_))) {
                types.add_entry(key, "double".len());
            }
        }
        (values, types)
    };
    let mut capacity = BatchCapacity::default();
    for resource_spans in &request.resource_spans {
        let resource_attrs: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map_or(&[], |r| r.attributes.as_slice());
        let service = service_name(resource_attrs).len();
        let (resource, resource_types) = maps(resource_attrs);
        for scope_spans in &resource_spans.scope_spans {
            let (name, version) = scope_spans
                .scope
                .as_ref()
                .map_or((0, 0), |s| (s.name.len(), s.version.len()));
            for span in scope_spans.spans.iter().filter(|s| check_span(s).is_ok()) {
                let status = span.status.as_ref().map_or(0, |s| s.code);
                capacity.spans += 1;
                capacity.children += usize::from(span.parent_span_id.iter().any(|b| *b != 0));
                capacity.span_name_bytes += span.name.len();
                capacity.service_name_bytes += service;
                capacity.span_kind_bytes += SpanKind::from_otlp(span.kind).as_str().len();
                capacity.status_code_bytes += StatusCode::from_otlp(status).as_str().len();
                capacity.scope_name_bytes += name;
                capacity.scope_version_bytes += version;
                let (values, types) = maps(&span.attributes);
                capacity.attributes += values;
                capacity.attribute_types += types;
                capacity.resource_attributes += resource;
                capacity.resource_attribute_types += resource_types;
            }
        }
    }
    capacity
}

/// The bytes of `value`'s stored text, for sizing builders: exact for strings and bytes, the
/// longest text for integers and booleans, a guess for doubles (Rust writes 1e300 with all its
/// digits), arrays and key-value lists: a longer text grows its builder.
fn text_bytes_bound(value: Option<&AnyValue>, limits: &Limits) -> usize {
    use any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.len().min(limits.max_value_bytes),
        Some(Value::BytesValue(b)) => b.len().min(limits.max_value_bytes).div_ceil(3) * 4,
        // "-9223372036854775808".
        Some(Value::IntValue(_)) => 20,
        Some(Value::StringValueStrindex(_)) => 11,
        Some(Value::DoubleValue(_)) => 24,
        Some(Value::BoolValue(_)) => 5,
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => 64,
        None => 0,
    }
}

/// How deeply arrays and key-value lists nest in `value` (0 for a scalar).
fn depth(value: &AnyValue) -> usize {
    use any_value::Value;
    match &value.value {
        Some(Value::ArrayValue(a)) => 1 + a.values.iter().map(depth).max().unwrap_or(0),
        Some(Value::KvlistValue(kv)) => {
            1 + kv
                .values
                .iter()
                .filter_map(|kv| kv.value.as_ref())
                .map(depth)
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// The value stored for an attribute within the count limit: strings and bytes cut to the
/// length limit; `None` (dropped) when nested too deeply or, for arrays and key-value lists,
/// too long.
fn kept_value<'a>(kv: &'a KeyValue, limits: &Limits) -> Option<AttrValue<'a>> {
    if kv
        .value
        .as_ref()
        .is_some_and(|v| depth(v) > limits.max_value_depth)
    {
        return None;
    }
    Some(match attr_value(kv.value.as_ref()) {
        AttrValue::Str(s) => AttrValue::Str(cut(s, limits.max_value_bytes)),
        AttrValue::Bytes(b) => AttrValue::Bytes(&b[..b.len().min(limits.max_value_bytes)]),
        AttrValue::Array(json) | AttrValue::KvList(json) if json.len() > limits.max_value_bytes => {
            return None;
        }
        other => other,
    })
}

/// How many of `attributes` the limits drop.
fn dropped(attributes: &[KeyValue], limits: &Limits) -> u32 {
    let over = attributes.len().saturating_sub(limits.max_attributes);
    // Only arrays and key-value lists can be unfit (too deep or too long); scalars are kept,
    // strings and bytes cut, so their values need not be looked at twice.
    let unfit = attributes
        .iter()
        .take(limits.max_attributes)
        .filter(|kv| is_nested(kv) && kept_value(kv, limits).is_none())
        .count();
    u32::try_from(over + unfit).unwrap_or(u32::MAX)
}

/// Whether `kv`'s value is an array or a key-value list.
fn is_nested(kv: &KeyValue) -> bool {
    use any_value::Value;
    matches!(
        kv.value.as_ref().and_then(|v| v.value.as_ref()),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_))
    )
}

/// The first `max` bytes of `s`, cut back to a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn push_attributes(out: &mut AttrMapBuilder, attributes: &[KeyValue], limits: &Limits) {
    for kv in attributes.iter().take(limits.max_attributes) {
        if let Some(value) = kept_value(kv, limits) {
            out.push(cut(&kv.key, limits.max_value_bytes), &value);
        }
    }
}

fn attr_value(value: Option<&AnyValue>) -> AttrValue<'_> {
    use any_value::Value;
    let Some(inner) = value.and_then(|v| v.value.as_ref()) else {
        return AttrValue::Empty;
    };
    match inner {
        Value::StringValue(s) => AttrValue::Str(s),
        Value::BoolValue(b) => AttrValue::Bool(*b),
        Value::IntValue(i) => AttrValue::Int(*i),
        Value::DoubleValue(d) => AttrValue::Double(*d),
        Value::BytesValue(b) => AttrValue::Bytes(b),
        Value::ArrayValue(a) => AttrValue::Array(serde_json::to_string(a).unwrap_or_default()),
        Value::KvlistValue(kv) => AttrValue::KvList(serde_json::to_string(kv).unwrap_or_default()),
        // An index into a string dictionary, which only the profiles signal defines; traces
        // carry no dictionary, so keep the index rather than drop the attribute.
        Value::StringValueStrindex(i) => AttrValue::Int(i64::from(*i)),
    }
}

#[cfg(test)]
mod tests;
