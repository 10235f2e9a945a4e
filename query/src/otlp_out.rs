//! Stored spans back to OTLP: [`to_resource_spans`] turns [`SpanRecord`]s into the
//! `ResourceSpans` an OTLP exporter would have sent, for the APIs that answer in OTLP (Jaeger's
//! api_v3, Tempo). Serialize the result with `serde_json` for OTLP/JSON (hex ids, camelCase,
//! 64-bit integers as strings) or with `prost` for protobuf.
//!
//! Attribute values come back with their original type, read from the `type` of each
//! [`Attribute`]. What storage does not keep comes back empty: schema URLs, dropped counts, link
//! flags.

use std::collections::HashMap;

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

use crate::assemble::{Attribute, SpanRecord};

/// Groups `spans` by resource (service name and resource attributes), then by instrumentation
/// scope, each group in order of first appearance and spans in the order given.
///
/// A resource without a `service.name` attribute gets one from [`SpanRecord::service_name`], so
/// readers that key on it (Jaeger, Tempo, Grafana) see the service the span was stored under.
pub fn to_resource_spans(spans: &[SpanRecord]) -> Vec<ResourceSpans> {
    type ScopeKey<'a> = (&'a str, &'a str);
    type ResourceKey<'a> = (&'a str, Vec<(&'a str, &'a str, &'a str)>);

    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut resources: HashMap<ResourceKey<'_>, (usize, HashMap<ScopeKey<'_>, usize>)> =
        HashMap::new();
    for record in spans {
        let key = (
            record.service_name.as_str(),
            record
                .resource_attributes
                .iter()
                .map(|a| (a.key.as_str(), a.value.as_str(), a.r#type.as_str()))
                .collect(),
        );
        let (resource_index, scopes) = resources.entry(key).or_insert_with(|| {
            out.push(ResourceSpans {
                resource: Some(resource(record)),
                scope_spans: Vec::new(),
                schema_url: String::new(),
            });
            (out.len() - 1, HashMap::new())
        });
        let scope_list = &mut out[*resource_index].scope_spans;
        let scope_index = *scopes
            .entry((record.scope_name.as_str(), record.scope_version.as_str()))
            .or_insert_with(|| {
                scope_list.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: record.scope_name.clone(),
                        version: record.scope_version.clone(),
                        attributes: key_values(&record.scope_attributes),
                        dropped_attributes_count: 0,
                    }),
                    spans: Vec::new(),
                    schema_url: String::new(),
                });
                scope_list.len() - 1
            });
        scope_list[scope_index].spans.push(to_span(record));
    }
    out
}

fn resource(record: &SpanRecord) -> Resource {
    let mut attributes = Vec::with_capacity(record.resource_attributes.len() + 1);
    if !record
        .resource_attributes
        .iter()
        .any(|a| a.key == "service.name")
    {
        attributes.push(KeyValue {
            key: "service.name".to_owned(),
            value: Some(string_value(&record.service_name)),
            ..Default::default()
        });
    }
    attributes.extend(key_values(&record.resource_attributes));
    Resource {
        attributes,
        ..Default::default()
    }
}

/// One stored span as an OTLP span.
pub fn to_span(record: &SpanRecord) -> Span {
    Span {
        trace_id: id_bytes(&record.trace_id),
        span_id: id_bytes(&record.span_id),
        trace_state: record.trace_state.clone(),
        parent_span_id: record
            .parent_span_id
            .as_deref()
            .map(id_bytes)
            .filter(|id| id.iter().any(|b| *b != 0))
            .unwrap_or_default(),
        flags: record.flags,
        name: record.span_name.clone(),
        kind: span_kind(&record.span_kind) as i32,
        start_time_unix_nano: unix_nano(record.start_ns),
        end_time_unix_nano: unix_nano(record.end_ns),
        attributes: key_values(&record.attributes),
        dropped_attributes_count: 0,
        events: record
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: unix_nano(e.time_ns),
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: record
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: id_bytes(&l.trace_id),
                span_id: id_bytes(&l.span_id),
                trace_state: l.trace_state.clone(),
                attributes: key_values(&l.attributes),
                dropped_attributes_count: 0,
                flags: 0,
            })
            .collect(),
        dropped_links_count: 0,
        status: Some(Status {
            message: record.status_message.clone(),
            code: match record.status_code.as_str() {
                "OK" => 1,
                "ERROR" => 2,
                _ => 0,
            },
        }),
    }
}

/// The OTLP span kind of a stored kind name (`SERVER`, ...); unknown names are unspecified.
pub fn span_kind(name: &str) -> span::SpanKind {
    match name {
        "INTERNAL" => span::SpanKind::Internal,
        "SERVER" => span::SpanKind::Server,
        "CLIENT" => span::SpanKind::Client,
        "PRODUCER" => span::SpanKind::Producer,
        "CONSUMER" => span::SpanKind::Consumer,
        _ => span::SpanKind::Unspecified,
    }
}

/// Attributes as OTLP key/values, each with its original type.
pub fn key_values(attributes: &[Attribute]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|a| KeyValue {
            key: a.key.clone(),
            value: Some(any_value(a)),
            ..Default::default()
        })
        .collect()
}

/// The typed value of a stored attribute. A value that does not parse as its recorded type
/// (which storage never writes) is returned as a string rather than lost.
pub fn any_value(attribute: &Attribute) -> AnyValue {
    use any_value::Value;
    let text = attribute.value.as_str();
    let value = match attribute.r#type.as_str() {
        "int" => text.parse().ok().map(Value::IntValue),
        "double" => text.parse().ok().map(Value::DoubleValue),
        "bool" => match text {
            "true" => Some(Value::BoolValue(true)),
            "false" => Some(Value::BoolValue(false)),
            _ => None,
        },
        "bytes" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(Value::BytesValue),
        "array" => serde_json::from_str::<ArrayValue>(text)
            .ok()
            .map(Value::ArrayValue),
        "kvlist" => serde_json::from_str::<KeyValueList>(text)
            .ok()
            .map(Value::KvlistValue),
        "empty" => return AnyValue { value: None },
        _ => None,
    };
    AnyValue {
        value: Some(value.unwrap_or_else(|| Value::StringValue(text.to_owned()))),
    }
}

fn string_value(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

/// Stored ids are lowercase hex; text that does not decode as hex becomes an empty id.
fn id_bytes(hex_id: &str) -> Vec<u8> {
    const_hex::decode(hex_id).unwrap_or_default()
}

fn unix_nano(ns: i64) -> u64 {
    u64::try_from(ns).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::assemble::{SpanEvent, SpanLink};

    fn attr(key: &str, value: &str, r#type: &str) -> Attribute {
        Attribute {
            key: key.to_owned(),
            value: value.to_owned(),
            r#type: r#type.to_owned(),
        }
    }

    fn record(span_id: &str, service: &str, scope: &str) -> SpanRecord {
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            span_id: span_id.to_owned(),
            parent_span_id: Some("0000000000000000".to_owned()),
            trace_state: String::new(),
            service_name: service.to_owned(),
            span_name: "op".to_owned(),
            span_kind: "SERVER".to_owned(),
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_250_000_000,
            status_code: "UNSET".to_owned(),
            status_message: String::new(),
            attributes: Vec::new(),
            resource_attributes: vec![attr("service.name", service, "string")],
            scope_name: scope.to_owned(),
            scope_attributes: Vec::new(),
            scope_version: "1.0".to_owned(),
            events: Vec::new(),
            links: Vec::new(),
            flags: 1,
        }
    }

    #[test]
    fn groups_by_resource_then_scope_in_order_of_appearance() {
        let mut other_host = record("00000000000000a4", "api", "http");
        other_host
            .resource_attributes
            .push(attr("host.name", "b", "string"));
        let spans = [
            record("00000000000000a1", "api", "http"),
            record("00000000000000b1", "db", "sql"),
            record("00000000000000a2", "api", "grpc"),
            record("00000000000000a3", "api", "http"),
            other_host,
        ];
        // One line per resource (its attributes), then one per scope (its span ids).
        let mut grouped = String::new();
        for r in to_resource_spans(&spans) {
            let attrs: Vec<String> = r
                .resource
                .unwrap()
                .attributes
                .iter()
                .map(|kv| {
                    let value = serde_json::to_value(kv.value.as_ref().unwrap()).unwrap();
                    format!("{}={}", kv.key, value["stringValue"].as_str().unwrap())
                })
                .collect();
            grouped.push_str(&format!("{}\n", attrs.join(" ")));
            for scope in r.scope_spans {
                let ids: Vec<String> = scope
                    .spans
                    .iter()
                    .map(|s| const_hex::encode(&s.span_id))
                    .collect();
                grouped.push_str(&format!(
                    "  {}: {}\n",
                    scope.scope.unwrap().name,
                    ids.join(" ")
                ));
            }
        }
        assert_eq!(
            grouped,
            "service.name=api\n\
             \x20 http: 00000000000000a1 00000000000000a3\n\
             \x20 grpc: 00000000000000a2\n\
             service.name=db\n\
             \x20 sql: 00000000000000b1\n\
             service.name=api host.name=b\n\
             \x20 http: 00000000000000a4\n"
        );
    }

    #[test]
    fn otlp_json_restores_types_ids_and_times() {
        let mut span = record("00f067aa0ba902b7", "api", "http");
        span.resource_attributes.clear();
        span.parent_span_id = Some("53995c3f42cd8ad8".to_owned());
        span.span_kind = "CLIENT".to_owned();
        span.status_code = "ERROR".to_owned();
        span.status_message = "boom".to_owned();
        span.attributes = vec![
            attr("s", "text", "string"),
            attr("i", "9007199254740993", "int"),
            attr("d", "0.25", "double"),
            attr("b", "true", "bool"),
            attr("raw", "AQI=", "bytes"),
            attr(
                "list",
                r#"{"values":[{"stringValue":"a"},{"intValue":"2"}]}"#,
                "array",
            ),
            attr(
                "map",
                r#"{"values":[{"key":"k","value":{"boolValue":false}}]}"#,
                "kvlist",
            ),
            attr("none", "", "empty"),
            attr("bad", "x", "int"),
        ];
        span.events = vec![SpanEvent {
            time_ns: 1_700_000_000_100_000_000,
            name: "exception".to_owned(),
            attributes: vec![attr("exception.type", "E", "string")],
        }];
        span.links = vec![SpanLink {
            trace_id: "11111111111111111111111111111111".to_owned(),
            span_id: "2222222222222222".to_owned(),
            trace_state: "k=v".to_owned(),
            attributes: Vec::new(),
        }];
        let json = serde_json::to_value(to_resource_spans(&[span])).unwrap();
        assert_eq!(
            json,
            json!([{
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}],
                    "droppedAttributesCount": 0,
                    "entityRefs": []
                },
                "schemaUrl": "",
                "scopeSpans": [{
                    "schemaUrl": "",
                    "scope": {
                        "name": "http", "version": "1.0",
                        "attributes": [], "droppedAttributesCount": 0
                    },
                    "spans": [{
                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                        "spanId": "00f067aa0ba902b7",
                        "parentSpanId": "53995c3f42cd8ad8",
                        "traceState": "",
                        "flags": 1,
                        "name": "op",
                        "kind": 3,
                        "startTimeUnixNano": "1700000000000000000",
                        "endTimeUnixNano": "1700000000250000000",
                        "attributes": [
                            {"key": "s", "value": {"stringValue": "text"}},
                            {"key": "i", "value": {"intValue": "9007199254740993"}},
                            {"key": "d", "value": {"doubleValue": 0.25}},
                            {"key": "b", "value": {"boolValue": true}},
                            {"key": "raw", "value": {"bytesValue": "AQI="}},
                            {"key": "list", "value": {"arrayValue": {"values": [
                                {"stringValue": "a"}, {"intValue": "2"}]}}},
                            {"key": "map", "value": {"kvlistValue": {"values": [
                                {"key": "k", "value": {"boolValue": false}}]}}},
                            {"key": "none", "value": {}},
                            {"key": "bad", "value": {"stringValue": "x"}}
                        ],
                        "droppedAttributesCount": 0,
                        "events": [{
                            "timeUnixNano": "1700000000100000000",
                            "name": "exception",
                            "attributes": [
                                {"key": "exception.type", "value": {"stringValue": "E"}}
                            ],
                            "droppedAttributesCount": 0
                        }],
                        "droppedEventsCount": 0,
                        "links": [{
                            "traceId": "11111111111111111111111111111111",
                            "spanId": "2222222222222222",
                            "traceState": "k=v",
                            "attributes": [],
                            "droppedAttributesCount": 0,
                            "flags": 0
                        }],
                        "droppedLinksCount": 0,
                        "status": {"message": "boom", "code": 2}
                    }]
                }]
            }])
        );
    }

    #[test]
    fn zero_parent_is_a_root() {
        let span = to_span(&record("00f067aa0ba902b7", "api", "http"));
        assert!(span.parent_span_id.is_empty());
    }
}
