//! Conformance with Jaeger's storage semantics, case by case as Jaeger's storage-integration
//! suite exercises them (`internal/storage/integration` in jaegertracing/jaeger), on traces and
//! cases of our own: every search case there has one here, run through our Jaeger API (api_v3
//! and v1) against the real binary, fed over OTLP/HTTP.
//!
//! What Jaeger's semantics say, and these cases check:
//! - a trace matches when one span meets every condition: service, operation, a start inside
//!   the window (bounds inclusive), a duration within bounds (inclusive), and each tag found on
//!   that span, its resource, its scope, one of its events or one of its links (each tag
//!   anywhere, all on the one span); the whole trace is returned;
//! - what comes back is what was sent: resource, scope (name, version, attributes), span
//!   fields, events and links, attribute types (string, int, double, bool, bytes) and exact
//!   nanosecond times. Traces are compared as Jaeger's `trace_compare.go` compares them: one
//!   resource and scope per span, attributes sorted by key, events and links in a canonical
//!   order, spans by trace id, span id and start; span and link flags are not compared;
//! - services and operations (with their kinds) are listed from everything stored, a large
//!   trace comes back whole, identical re-deliveries are merged and distinct spans that share
//!   a span id are all kept.
//!
//! Each case also writes a decoy trace into its service that misses exactly one condition, so a
//! search that ignores that condition fails the case.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const US: i64 = 1_000;
const MIN: i64 = 60_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn rfc3339(ns: i64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns as u64)).to_string()
}

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// Where one of the four searched tags lives.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spot {
    Span,
    Resource,
    Scope,
    /// The main span's first or second event.
    Event(usize),
    /// The main span's first link.
    Link,
}

/// The four searched tags, one of each type: (key, OTLP/JSON value, value as a query sends it).
fn tags() -> [(&'static str, Value, Value); 4] {
    [
        ("tier", json!({"stringValue": "gold"}), json!("gold")),
        ("retries", json!({"intValue": "3"}), json!(3)),
        ("ratio", json!({"doubleValue": 0.25}), json!(0.25)),
        ("sampled", json!({"boolValue": true}), json!(true)),
    ]
}

/// A bytes attribute that is never searched but must come back.
fn blob() -> Value {
    kv("blob", json!({"bytesValue": "AAAwOQ=="}))
}

/// A span of a case's trace, before the tags are placed.
#[derive(Clone)]
struct SpanDef {
    id: u64,
    parent: Option<u64>,
    name: &'static str,
    /// Start, relative to the case's base time.
    offset_ns: i64,
    duration_ns: i64,
    events: usize,
    kind: i32,
}

fn span(name: &'static str, duration_ns: i64) -> SpanDef {
    SpanDef {
        id: 1,
        parent: None,
        name,
        offset_ns: 0,
        duration_ns,
        events: 0,
        kind: 0,
    }
}

/// One search case: a trace (spans, tags placed on the first span), the query, and how its
/// decoy misses.
#[derive(Clone)]
struct Case {
    caption: &'static str,
    spans: Vec<SpanDef>,
    tags: Option<[Spot; 4]>,
    /// Search by the first span's name.
    by_operation: bool,
    min_ns: Option<i64>,
    max_ns: Option<i64>,
    /// Three plain links on the first span (two to the same span, told apart by an attribute).
    links: bool,
    /// Unsearched attributes on the span and its events, which must not disturb anything.
    noise: bool,
    /// The scope's name and version (`conformance` / `1.0` otherwise).
    scope: (&'static str, &'static str),
    /// The search window relative to the base time; ±1 h by default.
    window: (i64, i64),
}

impl Case {
    fn new(caption: &'static str, spans: Vec<SpanDef>) -> Self {
        Self {
            caption,
            spans,
            tags: None,
            by_operation: false,
            min_ns: None,
            max_ns: None,
            links: false,
            noise: false,
            scope: ("conformance", "1.0"),
            window: (-60 * MIN, 60 * MIN),
        }
    }

    fn tags(mut self, spots: [Spot; 4]) -> Self {
        self.tags = Some(spots);
        self
    }

    fn operation(mut self) -> Self {
        self.by_operation = true;
        self
    }

    fn durations(mut self, min_ns: Option<i64>, max_ns: Option<i64>) -> Self {
        self.min_ns = min_ns;
        self.max_ns = max_ns;
        self
    }
}

/// The OTLP/JSON request of one trace of `case` in `service`.
fn request(case: &Case, service: &str, trace_id: &str, base_ns: i64, spoil: Spoil) -> Value {
    let tags = tags();
    let spots = case.tags.unwrap_or([Spot::Span; 4]);
    let placed = |spot: Spot| -> Vec<Value> {
        if case.tags.is_none() {
            return Vec::new();
        }
        let mut out: Vec<Value> = tags
            .iter()
            .zip(spots)
            .filter(|(_, s)| *s == spot)
            .map(|((key, value, _), _)| {
                if *key == "tier" && spoil == Spoil::Tag {
                    kv(key, json!({"stringValue": "silver"}))
                } else {
                    kv(key, value.clone())
                }
            })
            .collect();
        if !out.is_empty() {
            out.push(blob());
        }
        out
    };
    let mut resource = vec![kv("service.name", json!({"stringValue": service}))];
    resource.extend(placed(Spot::Resource));
    let spans: Vec<Value> = case
        .spans
        .iter()
        .enumerate()
        .map(|(i, def)| {
            let main = i == 0;
            let mut duration = def.duration_ns;
            let mut name = def.name;
            let mut offset = def.offset_ns;
            // Every span misses, so that no other span of the decoy matches instead.
            match spoil {
                Spoil::Longer => duration = case.max_ns.unwrap() + 1,
                Spoil::Shorter => duration = case.min_ns.unwrap() - 1,
                Spoil::Name => name = "another-operation",
                Spoil::Before => offset = case.window.0 - MIN - def.offset_ns.abs(),
                Spoil::None | Spoil::Tag => {}
            }
            let start = base_ns + offset;
            let mut attributes = if main { placed(Spot::Span) } else { Vec::new() };
            if main && case.noise {
                attributes.push(kv("note", json!({"stringValue": "unrelated"})));
            }
            let events: Vec<Value> = (0..def.events)
                .map(|e| {
                    let mut attrs = if main {
                        placed(Spot::Event(e))
                    } else {
                        Vec::new()
                    };
                    if main && case.noise {
                        attrs.push(kv("note", json!({"stringValue": format!("event {e}")})));
                    }
                    json!({"timeUnixNano": start.to_string(), "name": format!("event-{e}"),
                           "attributes": attrs})
                })
                .collect();
            let mut links = Vec::new();
            let link_tags = if main { placed(Spot::Link) } else { Vec::new() };
            if !link_tags.is_empty() {
                let mut attrs = link_tags;
                attrs.push(kv(
                    "opentracing.ref_type",
                    json!({"stringValue": "child_of"}),
                ));
                links.push(json!({"traceId": format!("{:032x}", 0xfeed_u64),
                                  "spanId": format!("{:016x}", 0xf00d_u64), "attributes": attrs}));
            }
            if main && (case.links || case.tags.is_some_and(|t| t.contains(&Spot::Link))) {
                for (trace, span, ref_type) in [
                    (0xaa_u64, 0xbb_u64, "child_of"),
                    (0xcc, 0xdd, "child_of"),
                    (0xcc, 0xdd, "follows_from"),
                ] {
                    links.push(json!({
                        "traceId": format!("{trace:032x}"), "spanId": format!("{span:016x}"),
                        "attributes": [kv("opentracing.ref_type", json!({"stringValue": ref_type}))]
                    }));
                }
            }
            let mut span = json!({
                "traceId": trace_id, "spanId": format!("{:016x}", def.id), "name": name,
                "kind": def.kind, "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + duration).to_string(),
                "attributes": attributes, "events": events, "links": links,
            });
            if let Some(parent) = def.parent {
                span["parentSpanId"] = json!(format!("{parent:016x}"));
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": resource},
        "scopeSpans": [{
            "scope": {"name": case.scope.0, "version": case.scope.1,
                      "attributes": placed(Spot::Scope)},
            "spans": spans
        }]
    }]})
}

/// How a case's decoy trace misses the query.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spoil {
    None,
    /// One tag has another value.
    Tag,
    /// One nanosecond past the maximum duration.
    Longer,
    /// One nanosecond short of the minimum duration.
    Shorter,
    /// Another operation name.
    Name,
    /// Starts before the window.
    Before,
}

impl Case {
    fn spoil(&self) -> Spoil {
        if self.tags.is_some() {
            Spoil::Tag
        } else if self.max_ns.is_some() {
            Spoil::Longer
        } else if self.min_ns.is_some() {
            Spoil::Shorter
        } else if self.by_operation {
            Spoil::Name
        } else {
            Spoil::Before
        }
    }
}

fn send(client: &Client, server: &Server, body: &Value) {
    let response = client
        .post(server.otlp_http_url())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
}

/// The spans of OTLP resource spans in the form Jaeger's trace comparison brings them to: one
/// resource and scope per span, attributes by key, events and links in a canonical order,
/// spans by trace id, span id and start; flags and dropped counts left out.
fn canonical(resource_spans: Vec<ResourceSpans>) -> Vec<ResourceSpans> {
    fn sorted(mut attributes: Vec<KeyValue>) -> Vec<KeyValue> {
        attributes.sort_by(|a, b| a.key.cmp(&b.key));
        attributes
    }
    let mut out = Vec::new();
    for rs in resource_spans {
        let resource = Resource {
            attributes: sorted(rs.resource.unwrap_or_default().attributes),
            ..Default::default()
        };
        for ss in rs.scope_spans {
            let scope = ss.scope.unwrap_or_default();
            let scope = InstrumentationScope {
                name: scope.name,
                version: scope.version,
                attributes: sorted(scope.attributes),
                dropped_attributes_count: 0,
            };
            for mut span in ss.spans {
                span.flags = 0;
                span.dropped_attributes_count = 0;
                span.dropped_events_count = 0;
                span.dropped_links_count = 0;
                span.attributes = sorted(span.attributes);
                span.status = Some(span.status.unwrap_or(Status::default()));
                for event in &mut span.events {
                    event.attributes = sorted(std::mem::take(&mut event.attributes));
                    event.dropped_attributes_count = 0;
                }
                span.events
                    .sort_by(|a, b| (&a.name, a.time_unix_nano).cmp(&(&b.name, b.time_unix_nano)));
                for link in &mut span.links {
                    link.attributes = sorted(std::mem::take(&mut link.attributes));
                    link.flags = 0;
                    link.dropped_attributes_count = 0;
                }
                span.links.sort_by_key(|l| {
                    (
                        l.trace_id.clone(),
                        l.span_id.clone(),
                        format!("{:?}", l.attributes),
                    )
                });
                out.push(ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope.clone()),
                        spans: vec![span],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                });
            }
        }
    }
    let key = |rs: &ResourceSpans| -> (Vec<u8>, Vec<u8>, u64) {
        let span: &Span = &rs.scope_spans[0].spans[0];
        (
            span.trace_id.clone(),
            span.span_id.clone(),
            span.start_time_unix_nano,
        )
    };
    out.sort_by_key(key);
    out
}

fn parse(request: &Value) -> Vec<ResourceSpans> {
    let parsed: ExportTraceServiceRequest = serde_json::from_value(request.clone()).unwrap();
    parsed.resource_spans
}

fn get(client: &Client, server: &Server, path: &str, query: &[(&str, String)]) -> (u16, Value) {
    let response = client.get(server.url(path)).query(query).send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn cases() -> Vec<Case> {
    use Spot::*;
    let with_events = |mut s: SpanDef, n| {
        s.events = n;
        s
    };
    let op = |name: &'static str, d| with_events(span(name, d), 2);
    let range = (Some(4_500), Some(5_500));
    let before_window = SpanDef {
        id: 2,
        offset_ns: -7 * MIN,
        name: "earlier-part",
        ..span("earlier-part", 5 * US)
    };
    let child = SpanDef {
        id: 2,
        parent: Some(1),
        ..span("checkout", US)
    };
    vec![
        Case::new("tags on the span", vec![span("some-operation", 7 * US)])
            .tags([Span, Span, Span, Span]),
        Case::new("tags in an event", vec![op("placeholder", 5 * US)]).tags([
            Event(0),
            Event(0),
            Event(0),
            Event(0),
        ]),
        Case::new("tags on the resource", vec![op("placeholder", 5 * US)])
            .tags([Resource, Resource, Resource, Resource]),
        Case::new(
            "tags in different places of one span",
            vec![op("placeholder", 5 * US)],
        )
        .tags([Resource, Event(0), Span, Span]),
        Case {
            window: (0, 10 * MIN),
            ..Case::new(
                "a trace one of whose spans starts before the window",
                vec![
                    SpanDef {
                        offset_ns: 3 * MIN,
                        ..op("later-part", 5 * US)
                    },
                    before_window,
                ],
            )
        },
        Case::new("operation", vec![op("checkout", 5 * US)]).operation(),
        Case::new(
            "operation and max duration, the root at the bound",
            vec![op("checkout", 2 * US), child],
        )
        .operation()
        .durations(None, Some(2_000)),
        Case::new("operation and duration range", vec![op("checkout", 5 * US)])
            .operation()
            .durations(range.0, range.1),
        Case::new("duration range", vec![op("placeholder", 5 * US)]).durations(range.0, range.1),
        Case::new("max duration at the bound", vec![op("placeholder", US)])
            .durations(None, Some(1_000)),
        Case::new("service and window only", vec![op("checkout", 100 * US)]),
        Case {
            links: true,
            ..Case::new(
                "tags and operation, with links",
                vec![span("checkout", 2 * US)],
            )
            .tags([Span, Span, Span, Span])
            .operation()
        },
        Case {
            noise: true,
            ..Case::new(
                "resource tags, operation and max duration, beside unrelated attributes",
                vec![op("checkout", US)],
            )
            .tags([Resource, Resource, Resource, Resource])
            .operation()
            .durations(None, Some(2_000))
        },
        Case::new(
            "event tags, operation and duration range",
            vec![op("checkout", 5 * US)],
        )
        .tags([Event(0), Event(0), Event(0), Event(0)])
        .operation()
        .durations(range.0, range.1),
        Case::new(
            "span tags and duration range",
            vec![span("placeholder", 5 * US)],
        )
        .tags([Span, Span, Span, Span])
        .durations(range.0, range.1),
        Case::new(
            "resource tags and max duration",
            vec![op("placeholder", US)],
        )
        .tags([Resource, Resource, Resource, Resource])
        .durations(None, Some(1_000)),
        Case::new(
            "tags in two events, the resource and the span, and operation",
            vec![op("checkout", 5 * US)],
        )
        .tags([Resource, Event(0), Span, Event(1)])
        .operation(),
        Case::new(
            "tags in four places, operation and max duration",
            vec![op("checkout", US)],
        )
        .tags([Span, Event(0), Resource, Event(1)])
        .operation()
        .durations(None, Some(2_000)),
        Case::new(
            "tags in three places, operation and duration range",
            vec![op("checkout", 5 * US)],
        )
        .tags([Span, Event(0), Resource, Resource])
        .operation()
        .durations(range.0, range.1),
        Case::new(
            "tags in three places and duration range",
            vec![op("placeholder", 5 * US)],
        )
        .tags([Event(0), Span, Resource, Span])
        .durations(range.0, range.1),
        Case::new(
            "tags in three places and max duration",
            vec![op("placeholder", US)],
        )
        .tags([Span, Event(0), Resource, Resource])
        .durations(None, Some(1_000)),
        Case {
            scope: ("testing-library", "2.3.4"),
            ..Case::new(
                "scope name and version come back",
                vec![span("checkout", US)],
            )
            .tags([Span, Span, Span, Span])
        },
        Case::new("scope attributes", vec![span("checkout", US)])
            .tags([Scope, Scope, Scope, Scope]),
        Case::new("link attributes", vec![span("checkout", 2 * US)]).tags([Link, Link, Link, Link]),
    ]
}

type QueryString = Vec<(&'static str, String)>;

/// The v1 search parameters of `case` (`start`/`end` in microseconds, Go durations, tags as
/// JSON), and the api_v3 ones.
fn queries(case: &Case, service: &str, base_ns: i64) -> (QueryString, QueryString) {
    let (from, to) = (base_ns + case.window.0, base_ns + case.window.1);
    let mut v1 = vec![
        ("service", service.to_string()),
        ("start", (from / 1_000).to_string()),
        ("end", (to / 1_000).to_string()),
        ("limit", "100".to_string()),
    ];
    let mut v3 = vec![
        ("query.service_name", service.to_string()),
        ("query.start_time_min", rfc3339(from)),
        ("query.start_time_max", rfc3339(to)),
        ("query.search_depth", "100".to_string()),
        ("query.raw_traces", "true".to_string()),
    ];
    if case.by_operation {
        v1.push(("operation", case.spans[0].name.to_string()));
        v3.push(("query.operation_name", case.spans[0].name.to_string()));
    }
    if let Some(min) = case.min_ns {
        v1.push(("minDuration", format!("{min}ns")));
        v3.push(("query.duration_min", format!("{min}ns")));
    }
    if let Some(max) = case.max_ns {
        v1.push(("maxDuration", format!("{max}ns")));
        v3.push(("query.duration_max", format!("{max}ns")));
    }
    if case.tags.is_some() {
        let object: serde_json::Map<String, Value> = tags()
            .into_iter()
            .map(|(key, _, query)| (key.to_string(), query))
            .collect();
        let text = Value::Object(object).to_string();
        v1.push(("tags", text.clone()));
        v3.push(("query.attributes", text));
    }
    (v1, v3)
}

#[test]
fn jaeger_storage_semantics_case_by_case() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client();
    // Yesterday, as the peer's suite places its traces: older than any "recent" shortcut.
    let base_ns = (now_ns() - 20 * 60 * MIN) / US * US;

    let cases = cases();
    let mut expected_services = BTreeSet::new();
    let mut sent = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let service = format!("conformance-{n:02}");
        let trace = format!("{:032x}", 0x1000 + n);
        let decoy = format!("{:032x}", 0x2000 + n);
        let request = request(case, &service, &trace, base_ns, Spoil::None);
        send(&client, &server, &request);
        send(
            &client,
            &server,
            &request_for_decoy(case, &service, &decoy, base_ns),
        );
        expected_services.insert(service.clone());
        sent.push((service, trace, request));
    }
    // Several traces of one service, with the same span ids.
    let several: Vec<(String, Value)> = (1..=3)
        .map(|t| {
            let trace = format!("{:032x}", 0x3000 + t);
            let case = Case::new("several traces", vec![span("checkout", 100 * US)]);
            let request = request(&case, "conformance-several", &trace, base_ns, Spoil::None);
            send(&client, &server, &request);
            (trace, request)
        })
        .collect();
    expected_services.insert("conformance-several".into());

    for (case, (service, trace, request)) in cases.iter().zip(&sent) {
        let (v1, v3) = queries(case, service, base_ns);
        let (status, found) = get(&client, &server, "/jaeger/api/v3/traces", &v3);
        assert_eq!(status, 200, "{}: {found}", case.caption);
        let returned: ExportTraceServiceRequest =
            serde_json::from_value(found["result"].clone()).unwrap();
        assert_eq!(
            canonical(returned.resource_spans),
            canonical(parse(request)),
            "{}: api_v3 returns exactly the trace sent",
            case.caption
        );

        let (status, found) = get(&client, &server, "/jaeger/api/traces", &v1);
        assert_eq!(status, 200, "{}: {found}", case.caption);
        let ids: Vec<&str> = found["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap())
            .collect();
        // Jaeger's model writes a trace id whose high half is zero as its low half.
        let jaeger_id = trace.strip_prefix("0000000000000000").unwrap_or(trace);
        assert_eq!(ids, [jaeger_id], "{}: v1 finds the trace", case.caption);
        assert_eq!(
            found["data"][0]["spans"].as_array().unwrap().len(),
            case.spans.len(),
            "{}: v1 returns the whole trace",
            case.caption
        );
    }

    let several_case = Case::new("several traces", vec![span("checkout", 100 * US)]);
    let (_, v3) = queries(&several_case, "conformance-several", base_ns);
    let (status, found) = get(&client, &server, "/jaeger/api/v3/traces", &v3);
    assert_eq!(status, 200, "{found}");
    let returned: ExportTraceServiceRequest =
        serde_json::from_value(found["result"].clone()).unwrap();
    let mut expected = Vec::new();
    for (_, request) in &several {
        expected.extend(parse(request));
    }
    assert_eq!(
        canonical(returned.resource_spans),
        canonical(expected),
        "three traces sharing span ids come back apart"
    );

    // Services: everything stored, also spans far older than a week.
    let old = Case::new("old", vec![span("archived", US)]);
    let old_ns = now_ns() - 30 * 24 * 60 * MIN;
    send(
        &client,
        &server,
        &request(
            &old,
            "conformance-old",
            &format!("{:032x}", 0x4000),
            old_ns,
            Spoil::None,
        ),
    );
    expected_services.insert("conformance-old".into());
    let (status, found) = get(&client, &server, "/jaeger/api/services", &[]);
    assert_eq!(status, 200, "{found}");
    let listed: BTreeSet<String> = serde_json::from_value(found["data"].clone()).unwrap();
    assert_eq!(listed, expected_services);
    let (_, found) = get(&client, &server, "/jaeger/api/v3/services", &[]);
    let listed: BTreeSet<String> = serde_json::from_value(found["services"].clone()).unwrap();
    assert_eq!(listed, expected_services);
    // A time range narrows them.
    let (_, found) = get(
        &client,
        &server,
        "/jaeger/api/services",
        &[
            ("start", ((old_ns - MIN) / 1_000).to_string()),
            ("end", ((old_ns + MIN) / 1_000).to_string()),
        ],
    );
    assert_eq!(found["data"], json!(["conformance-old"]));
}

fn request_for_decoy(case: &Case, service: &str, trace_id: &str, base_ns: i64) -> Value {
    request(case, service, trace_id, base_ns, case.spoil())
}

#[test]
fn operations_traces_by_id_large_traces_and_shared_span_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client();
    let base_ns = (now_ns() - 60 * MIN) / US * US;

    // Operations with their kinds: unspecified, server, client.
    let trace = format!("{:032x}", 0x5000);
    let kinds = Case::new(
        "kinds",
        vec![
            SpanDef {
                kind: 0,
                ..span("op-1", US)
            },
            SpanDef {
                id: 2,
                kind: 2,
                ..span("op-3", US)
            },
            SpanDef {
                id: 3,
                kind: 3,
                ..span("op-4", US)
            },
        ],
    );
    let request = request(&kinds, "conformance-kinds", &trace, base_ns, Spoil::None);
    send(&client, &server, &request);
    let (status, found) = get(
        &client,
        &server,
        "/jaeger/api/operations",
        &[("service", "conformance-kinds".into())],
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["data"],
        json!([
            {"name": "op-1", "spanKind": ""},
            {"name": "op-3", "spanKind": "server"},
            {"name": "op-4", "spanKind": "client"},
        ])
    );
    let (_, found) = get(
        &client,
        &server,
        "/jaeger/api/operations",
        &[
            ("service", "conformance-kinds".into()),
            ("spanKind", "server".into()),
        ],
    );
    assert_eq!(
        found["data"],
        json!([{"name": "op-3", "spanKind": "server"}])
    );

    // A trace by id comes back exactly; an unknown id is a 404 with a message.
    let (status, found) = get(
        &client,
        &server,
        &format!("/jaeger/api/v3/traces/{trace}"),
        &[("raw_traces", "true".into())],
    );
    assert_eq!(status, 200, "{found}");
    let returned: ExportTraceServiceRequest =
        serde_json::from_value(found["result"].clone()).unwrap();
    assert_eq!(
        canonical(returned.resource_spans),
        canonical(parse(&request))
    );
    let unknown = format!("{:032x}", 1);
    let (status, found) = get(
        &client,
        &server,
        &format!("/jaeger/api/v3/traces/{unknown}"),
        &[],
    );
    assert_eq!(status, 404, "{found}");
    let (status, found) = get(
        &client,
        &server,
        &format!("/jaeger/api/traces/{unknown}"),
        &[],
    );
    assert_eq!(status, 404, "{found}");
    assert!(found["errors"][0]["msg"].is_string(), "{found}");

    // A large trace: 10 008 spans, a second apart, in four requests.
    let large = format!("{:032x}", 0x6000);
    let spans: Vec<Value> = (0..10_008i64)
        .map(|i| {
            let start = base_ns + i * 1_000_000_000;
            json!({"traceId": large, "spanId": format!("{:016x}", i + 1), "name": "op-2",
                   "startTimeUnixNano": start.to_string(),
                   "endTimeUnixNano": (start + 100 * US).to_string()})
        })
        .collect();
    for chunk in spans.chunks(2_502) {
        send(
            &client,
            &server,
            &json!({"resourceSpans": [{
                "resource": {"attributes": [kv("service.name", json!({"stringValue": "conformance-large"}))]},
                "scopeSpans": [{"spans": chunk}]
            }]}),
        );
    }
    let (status, found) = get(
        &client,
        &server,
        &format!("/jaeger/api/traces/{large}"),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(found["data"][0]["spans"].as_array().unwrap().len(), 10_008);

    // 200 spans, ten of which share one span id at different times: all are kept, and
    // flagged. Five identical re-deliveries are merged away.
    let shared = format!("{:032x}", 0x7000);
    let spans: Vec<Value> = (0..200i64)
        .map(|i| {
            let id = if i % 20 == 0 { 7 } else { 1000 + i };
            let start = base_ns + i * 1_000_000;
            json!({"traceId": shared, "spanId": format!("{id:016x}"), "name": "op-2",
                   "startTimeUnixNano": start.to_string(),
                   "endTimeUnixNano": (start + 100 * US).to_string()})
        })
        .collect();
    let body = |spans: &[Value]| {
        json!({"resourceSpans": [{
            "resource": {"attributes": [kv("service.name", json!({"stringValue": "conformance-shared"}))]},
            "scopeSpans": [{"spans": spans}]
        }]})
    };
    send(&client, &server, &body(&spans));
    send(&client, &server, &body(&spans[..5]));
    let (status, found) = get(
        &client,
        &server,
        &format!("/jaeger/api/traces/{shared}"),
        &[],
    );
    assert_eq!(status, 200);
    let returned = found["data"][0]["spans"].as_array().unwrap();
    assert_eq!(
        returned.len(),
        200,
        "distinct spans sharing an id are all kept"
    );
    let sharing: Vec<&Value> = returned
        .iter()
        .filter(|s| s["spanID"] == format!("{:016x}", 7))
        .collect();
    assert_eq!(sharing.len(), 10);
    assert!(
        sharing
            .iter()
            .all(|s| s["warnings"].as_array().is_some_and(|w| w
                .iter()
                .any(|w| w.as_str().unwrap().contains("shared by 10")))),
        "each span sharing an id is flagged: {:?}",
        sharing[0]["warnings"]
    );
    let redelivered = returned
        .iter()
        .find(|s| s["spanID"] == format!("{:016x}", 1001))
        .unwrap();
    assert!(
        redelivered["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().unwrap().contains("delivered 2 times"))),
        "{redelivered}"
    );
}
