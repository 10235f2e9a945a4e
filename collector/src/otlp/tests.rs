use super::*;
use arrow::array::{Array, AsArray};
use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, span};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span(trace: Vec<u8>, id: Vec<u8>) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        name: "GET /users/{id}".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_002_000_000,
        attributes: vec![
            kv(
                "http.route",
                any_value::Value::StringValue("/users/{id}".into()),
            ),
            kv("http.response.status_code", any_value::Value::IntValue(404)),
            kv(
                "tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("a".into())),
                    }],
                }),
            ),
        ],
        status: Some(Status {
            code: 2,
            message: "not found".into(),
        }),
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("users".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "axum".into(),
                    version: "0.8".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn decodes_spans_with_service_kind_status_and_typed_attributes() {
    let decoded = decode(&request(vec![span(vec![1; 16], vec![2; 8])])).unwrap();
    assert_eq!(decoded.rejected, 0);
    assert_eq!(decoded.message(), "");
    let b = &decoded.batch;
    assert_eq!(b.num_rows(), 1);
    let text = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(text("trace_id"), "01010101010101010101010101010101");
    assert_eq!(text("span_id"), "0202020202020202");
    assert!(b.column_by_name("parent_span_id").unwrap().is_null(0));
    assert_eq!(text("service_name"), "users");
    assert_eq!(text("span_kind"), "SERVER");
    assert_eq!(text("status_code"), "ERROR");
    assert_eq!(text("status_message"), "not found");
    assert_eq!(text("scope_name"), "axum");
    let types = b.column_by_name("attribute_types").unwrap().as_map();
    let keys = types.keys().as_string::<i32>();
    let values = types.values().as_string::<i32>();
    let pairs: Vec<_> = (0..keys.len())
        .map(|i| (keys.value(i), values.value(i)))
        .collect();
    assert_eq!(
        pairs,
        vec![("http.response.status_code", "int"), ("tags", "array")]
    );
    let attrs = b.column_by_name("attributes").unwrap().as_map();
    let values = attrs.values().as_string::<i32>();
    assert_eq!(values.value(1), "404");
    assert_eq!(values.value(2), r#"{"values":[{"stringValue":"a"}]}"#);
}

#[test]
fn rejects_bad_ids_one_by_one_and_keeps_the_rest() {
    let decoded = decode(&request(vec![
        span(vec![1; 16], vec![2; 8]),
        span(vec![0; 16], vec![3; 8]),
        span(vec![1; 8], vec![4; 8]),
        span(vec![1; 16], vec![]),
    ]))
    .unwrap();
    assert_eq!(decoded.batch.num_rows(), 1);
    assert_eq!(decoded.rejected, 3);
    assert_eq!(
        decoded.message(),
        "3 span(s) rejected: resourceSpans[0].scopeSpans[0].spans[1]: trace_id is all zeros; \
         resourceSpans[0].scopeSpans[0].spans[2]: trace_id must be 16 bytes, got 8; \
         resourceSpans[0].scopeSpans[0].spans[3]: span_id must be 8 bytes, got 0"
    );
}

#[test]
fn a_missing_service_name_is_unknown_service() {
    let mut req = request(vec![span(vec![1; 16], vec![2; 8])]);
    req.resource_spans[0].resource = None;
    let decoded = decode(&req).unwrap();
    let names = decoded.batch.column_by_name("service_name").unwrap();
    assert_eq!(names.as_string::<i32>().value(0), "unknown_service");
}

#[test]
fn otlp_json_decodes_like_protobuf() {
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"users"}}]},
      "scopeSpans":[{"scope":{"name":"manual"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
      "spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"I'm a server span",
      "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,"kind":2,
      "attributes":[{"key":"my.int","value":{"intValue":"42"}},{"key":"my.bool","value":{"boolValue":true}}]}]}]}]}"#;
    let request: ExportTraceServiceRequest = serde_json::from_str(json).unwrap();
    let decoded = decode(&request).unwrap();
    let b = &decoded.batch;
    assert_eq!(b.num_rows(), 1);
    let text = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(text("trace_id"), "5b8efff798038103d269b633813fc60c");
    assert_eq!(text("parent_span_id"), "eee19b7ec3c1b173");
    assert_eq!(text("span_kind"), "SERVER");
    let duration = b
        .column_by_name("duration_ns")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(duration, 1_000_000_000);
}

/// A resource's attributes are rendered once and repeated on each of its spans: every row gets
/// the maps the same attributes get on a span, limits included (a string cut to the length
/// limit, a list nested too deeply dropped, an empty value NULL with its type).
#[test]
fn resource_attributes_are_stored_like_span_attributes_on_every_span() {
    use any_value::Value;
    let mut nested = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for _ in 0..3 {
        nested = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![nested],
            })),
        };
    }
    let attributes = vec![
        kv("service.name", Value::StringValue("users".into())),
        kv("host.cores", Value::IntValue(8)),
        kv("host.load", Value::DoubleValue(0.25)),
        kv("host.up", Value::BoolValue(true)),
        kv("host.key", Value::BytesValue(vec![0, 255, 7])),
        kv("host.long", Value::StringValue("é".repeat(40))),
        kv("host.deep", nested.value.clone().unwrap()),
        kv(
            "host.tags",
            Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::StringValue("a tag longer than the limit".into())),
                }],
            }),
        ),
        KeyValue {
            key: "host.empty".into(),
            value: Some(AnyValue { value: None }),
            ..Default::default()
        },
    ];
    let mut spans = vec![span(vec![1; 16], vec![2; 8]), span(vec![1; 16], vec![3; 8])];
    for s in &mut spans {
        s.attributes = attributes.clone();
    }
    let mut req = request(spans);
    req.resource_spans[0].resource.as_mut().unwrap().attributes = attributes;
    // A second resource, with its own attributes, after the first.
    let mut second = req.resource_spans[0].clone();
    second.resource.as_mut().unwrap().attributes =
        vec![kv("service.name", Value::StringValue("orders".into()))];
    second.scope_spans[0].spans.truncate(1);
    req.resource_spans.push(second);
    let limits = Limits {
        max_value_bytes: 21,
        max_value_depth: 2,
        ..Limits::default()
    };
    let decoded = decode_with(&req, &limits).unwrap();
    let b = &decoded.batch;
    assert_eq!(b.num_rows(), 3);
    let dropped = b.column_by_name("dropped_attributes_count").unwrap();
    let dropped = dropped.as_primitive::<arrow::datatypes::UInt32Type>();
    assert_eq!(
        dropped.values().to_vec(),
        vec![2, 2, 2],
        "too deep, too long"
    );
    for (span_map, resource_map) in [
        ("attributes", "resource_attributes"),
        ("attribute_types", "resource_attribute_types"),
    ] {
        let spans = b.column_by_name(span_map).unwrap().as_map();
        let resources = b.column_by_name(resource_map).unwrap().as_map();
        for row in 0..2 {
            assert_eq!(
                spans.value(row),
                resources.value(row),
                "{resource_map}[{row}]"
            );
        }
    }
    let resources = b.column_by_name("resource_attributes").unwrap().as_map();
    let row = resources.value(1);
    let (keys, values) = (
        row.column(0).as_string::<i32>(),
        row.column(1).as_string::<i32>(),
    );
    let entries: Vec<(&str, Option<&str>)> = (0..row.len())
        .map(|i| (keys.value(i), values.is_valid(i).then(|| values.value(i))))
        .collect();
    assert_eq!(
        entries,
        vec![
            ("service.name", Some("users")),
            ("host.cores", Some("8")),
            ("host.load", Some("0.25")),
            ("host.up", Some("true")),
            ("host.key", Some("AP8H")),
            ("host.long", Some("éééééééééé")),
            ("host.empty", None),
        ]
    );
    let row = resources.value(2);
    assert_eq!(row.len(), 1);
    assert_eq!(row.column(1).as_string::<i32>().value(0), "orders");
    assert_eq!(
        b.column_by_name("service_name")
            .unwrap()
            .as_string::<i32>()
            .value(2),
        "orders"
    );
}

/// The builders are sized from the spans a request will keep: rejected spans reserve nothing
/// (a request of many bad spans under a large resource must not reserve its resource once per
/// span), and the counts are those of the batch built.
#[test]
fn capacity_counts_only_the_spans_kept() {
    use any_value::Value;
    let root = span(vec![1; 16], vec![2; 8]);
    let mut child = span(vec![1; 16], vec![3; 8]);
    child.parent_span_id = vec![2; 8];
    let bad = span(vec![0; 16], vec![4; 8]);
    let mut req = request(vec![root, bad.clone(), child]);
    let resource = &mut req.resource_spans[0].resource.as_mut().unwrap().attributes;
    resource.push(kv("host.cores", Value::IntValue(8)));
    let capacity = capacity_of(&req, &Limits::default());
    assert_eq!((capacity.spans, capacity.children), (2, 1));
    assert_eq!(capacity.span_kind_bytes, 2 * "SERVER".len());
    assert_eq!(capacity.status_code_bytes, 2 * "ERROR".len());
    assert_eq!(capacity.span_name_bytes, 2 * "GET /users/{id}".len());
    // Two resource attributes on each kept span, one of them typed.
    assert_eq!(capacity.resource_attributes.entries, 4);
    assert_eq!(capacity.resource_attribute_types.entries, 2);
    // Three span attributes each (a string, an int, an array), two of them typed.
    assert_eq!(
        (
            capacity.attributes.entries,
            capacity.attribute_types.entries
        ),
        (6, 4)
    );
    let decoded = decode(&req).unwrap();
    let attrs = decoded.batch.column_by_name("attributes").unwrap().as_map();
    assert_eq!(attrs.entries().len(), capacity.attributes.entries);
    // Every value's text within its estimate.
    let values = attrs.values().as_string::<i32>();
    assert!(values.values().len() <= capacity.attributes.value_bytes);

    let big = kv("host.blob", Value::StringValue("x".repeat(16 << 10)));
    let mut all_bad = request(vec![bad; 1000]);
    all_bad.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(big);
    let capacity = capacity_of(&all_bad, &Limits::default());
    assert_eq!(capacity.spans, 0);
    assert_eq!(capacity.resource_attributes.value_bytes, 0);
}
