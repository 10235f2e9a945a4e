//! The Jaeger-compatible API under `/jaeger`, read the way Grafana's Jaeger data source and
//! Jaeger's UI read it: a two-service chain sent over OTLP/HTTP JSON comes back through every v1
//! endpoint in Jaeger's envelope and model, and as OTLP/JSON through api_v3.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::Server;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const LINKED_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const ROOT: &str = "00f067aa0ba902b7";
const CALL: &str = "00f067aa0ba902b8";
const SERVE: &str = "b7ad6b7169203331";
const LINKED_SPAN: &str = "eee19b7ec3c1b174";

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// frontend: GET /checkout (SERVER) -> POST /pay (CLIENT)
///   payments: POST /pay (SERVER, ERROR "card declined", an `exception` event, a link)
fn checkout_chain(base_ns: u64) -> Value {
    let at = |ms: u64| (base_ns + ms * 1_000_000).to_string();
    let resource = |service: &str, host: &str| {
        json!({"attributes": [
            kv("service.name", json!({"stringValue": service})),
            kv("host.name", json!({"stringValue": host})),
        ]})
    };
    json!({"resourceSpans": [
        {
            "resource": resource("frontend", "web-1"),
            "scopeSpans": [{"scope": {"name": "checkout-http", "version": "1.0"}, "spans": [
                {
                    "traceId": TRACE, "spanId": ROOT, "name": "GET /checkout", "kind": 2,
                    "flags": 1, "startTimeUnixNano": at(0), "endTimeUnixNano": at(100),
                    "attributes": [
                        kv("http.route", json!({"stringValue": "/checkout"})),
                        kv("http.status_code", json!({"intValue": "502"})),
                    ]
                },
                {
                    "traceId": TRACE, "spanId": CALL, "parentSpanId": ROOT, "name": "POST /pay",
                    "kind": 3, "flags": 1, "startTimeUnixNano": at(10), "endTimeUnixNano": at(90),
                    "attributes": [
                        kv("retries", json!({"intValue": "2"})),
                        kv("ratio", json!({"doubleValue": 0.5})),
                        kv("cached", json!({"boolValue": false})),
                    ]
                }
            ]}]
        },
        {
            "resource": resource("payments", "pay-1"),
            "scopeSpans": [{"scope": {"name": "pay-grpc"}, "spans": [{
                "traceId": TRACE, "spanId": SERVE, "parentSpanId": CALL, "name": "POST /pay",
                "kind": 2, "flags": 1, "startTimeUnixNano": at(20), "endTimeUnixNano": at(80),
                "status": {"code": 2, "message": "card declined"},
                "events": [{
                    "timeUnixNano": at(30), "name": "exception",
                    "attributes": [kv("exception.type", json!({"stringValue": "CardError"}))]
                }],
                "links": [{"traceId": LINKED_TRACE, "spanId": LINKED_SPAN}]
            }]}]
        }
    ]})
}

fn get(server: &Server, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    get_as(server, None, path, query)
}

fn get_as(
    server: &Server,
    tenant: Option<&str>,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = Client::new().get(server.url(path)).query(query);
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, body)
}

/// Jaeger's envelope around `data`, as a successful answer carries it.
fn envelope(data: Value, total: usize) -> Value {
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

fn tag(key: &str, r#type: &str, value: Value) -> Value {
    json!({"key": key, "type": r#type, "value": value})
}

#[test]
fn jaeger_api_serves_a_two_service_chain_as_grafana_and_jaeger_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let base_ms = now_ms - 5_000;
    let base_us = base_ms as i64 * 1_000;
    let r = Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/json")
        .body(checkout_chain(base_ms * 1_000_000).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());

    // Services and operations, as the query editor's drop-downs load them.
    let (status, body) = get(&server, "/jaeger/api/services", &[]);
    assert_eq!(status, 200);
    assert_eq!(body, envelope(json!(["frontend", "payments"]), 2));
    let (_, body) = get_as(&server, Some("someone-else"), "/jaeger/api/services", &[]);
    assert_eq!(body, envelope(json!([]), 0));
    let (_, body) = get(&server, "/jaeger/api/services/frontend/operations", &[]);
    assert_eq!(body, envelope(json!(["GET /checkout", "POST /pay"]), 2));
    let (_, body) = get(
        &server,
        "/jaeger/api/operations",
        &[("service", "frontend")],
    );
    assert_eq!(
        body,
        envelope(
            json!([
                {"name": "GET /checkout", "spanKind": "server"},
                {"name": "POST /pay", "spanKind": "client"}
            ]),
            2
        )
    );
    let (_, body) = get(
        &server,
        "/jaeger/api/operations",
        &[("service", "frontend"), ("spanKind", "client")],
    );
    assert_eq!(
        body["data"],
        json!([{"name": "POST /pay", "spanKind": "client"}])
    );
    let (status, body) = get(&server, "/jaeger/api/operations", &[]);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [
            {"code": 400, "msg": "invalid request: parameter 'service' is required"}
        ]})
    );

    // The trace by id, in Jaeger's UI model.
    let (status, by_id) = get(&server, &format!("/jaeger/api/traces/{TRACE}"), &[]);
    assert_eq!(status, 200, "{by_id}");
    let scope = |name: &str| tag("otel.scope.name", "string", json!(name));
    let version = tag("otel.scope.version", "string", json!("1.0"));
    let child_of = |span: &str| json!({"refType": "CHILD_OF", "traceID": TRACE, "spanID": span});
    let expected_trace = json!({
        "traceID": TRACE,
        "warnings": null,
        "processes": {
            "p1": {"serviceName": "frontend", "tags": [tag("host.name", "string", json!("web-1"))]},
            "p2": {"serviceName": "payments", "tags": [tag("host.name", "string", json!("pay-1"))]},
        },
        "spans": [
            {
                "traceID": TRACE, "spanID": ROOT, "flags": 1, "operationName": "GET /checkout",
                "references": [], "startTime": base_us, "duration": 100_000,
                "tags": [
                    tag("http.route", "string", json!("/checkout")),
                    tag("http.status_code", "int64", json!(502)),
                    scope("checkout-http"), version,
                    tag("span.kind", "string", json!("server")),
                ],
                "logs": [], "processID": "p1", "warnings": null
            },
            {
                "traceID": TRACE, "spanID": CALL, "flags": 1, "operationName": "POST /pay",
                "references": [child_of(ROOT)], "startTime": base_us + 10_000, "duration": 80_000,
                "tags": [
                    tag("retries", "int64", json!(2)),
                    tag("ratio", "float64", json!(0.5)),
                    tag("cached", "bool", json!(false)),
                    scope("checkout-http"), version,
                    tag("span.kind", "string", json!("client")),
                ],
                "logs": [], "processID": "p1", "warnings": null
            },
            {
                "traceID": TRACE, "spanID": SERVE, "flags": 1, "operationName": "POST /pay",
                "references": [
                    child_of(CALL),
                    {"refType": "FOLLOWS_FROM", "traceID": LINKED_TRACE, "spanID": LINKED_SPAN},
                ],
                "startTime": base_us + 20_000, "duration": 60_000,
                "tags": [
                    scope("pay-grpc"),
                    tag("span.kind", "string", json!("server")),
                    tag("otel.status_code", "string", json!("ERROR")),
                    tag("error", "bool", json!(true)),
                    tag("otel.status_description", "string", json!("card declined")),
                ],
                "logs": [{"timestamp": base_us + 30_000, "fields": [
                    tag("event", "string", json!("exception")),
                    tag("exception.type", "string", json!("CardError")),
                ]}],
                "processID": "p2", "warnings": null
            },
        ]
    });
    assert_eq!(by_id, envelope(json!([expected_trace]), 0));

    let (status, body) = get(
        &server,
        "/jaeger/api/traces/0123456789abcdef0123456789abcdef",
        &[],
    );
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [
            {"code": 404, "msg": "trace not found"}
        ]})
    );
    let (status, body) = get(&server, "/jaeger/api/traces/not-a-trace-id", &[]);
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("trace id"),
        "{body}"
    );

    // Search as Grafana sends it: start/end in microseconds, tags as JSON; full traces back.
    let (start, end) = (
        (base_us - 60_000_000).to_string(),
        (base_us + 60_000_000).to_string(),
    );
    let (status, found) = get(
        &server,
        "/jaeger/api/traces",
        &[
            ("service", "payments"),
            ("tags", r#"{"error":"true"}"#),
            ("minDuration", "50ms"),
            ("limit", "20"),
            ("start", &start),
            ("end", &end),
            ("lookback", "custom"),
        ],
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found, envelope(json!([expected_trace]), 0));
    let (_, none) = get(
        &server,
        "/jaeger/api/traces",
        &[
            ("service", "frontend"),
            ("operation", "GET /checkout"),
            ("minDuration", "1.5s"),
        ],
    );
    assert_eq!(none, envelope(json!([]), 0));
    let (status, body) = get(
        &server,
        "/jaeger/api/traces",
        &[("service", "frontend"), ("maxDuration", "soon")],
    );
    assert_eq!(status, 400);
    assert_eq!(body["data"], Value::Null);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("maxDuration"),
        "{body}"
    );
    // By id, as the UI's trace comparison asks; unknown ids are reported, not fatal.
    let (_, body) = get(
        &server,
        "/jaeger/api/traces",
        &[("traceID", TRACE), ("traceID", "1")],
    );
    assert_eq!(body["data"], json!([expected_trace]));
    assert_eq!(
        body["errors"],
        json!([{"msg": "trace not found", "traceID": "0000000000000001"}])
    );

    // The service graph, as Grafana's node graph asks for it (milliseconds).
    let (status, body) = get(
        &server,
        "/jaeger/api/dependencies",
        &[("endTs", &now_ms.to_string()), ("lookback", "3600000")],
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        envelope(
            json!([{"parent": "frontend", "child": "payments", "callCount": 1}]),
            0
        )
    );

    // api_v3: the same trace as OTLP/JSON.
    let (status, v3) = get(&server, &format!("/jaeger/api/v3/traces/{TRACE}"), &[]);
    assert_eq!(status, 200, "{v3}");
    let resources = v3["result"]["resourceSpans"].as_array().unwrap();
    let summary: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({
                "resource": r["resource"]["attributes"],
                "scopes": r["scopeSpans"].as_array().unwrap().iter().map(|s| json!({
                    "scope": [s["scope"]["name"], s["scope"]["version"]],
                    "spans": s["spans"].as_array().unwrap().iter().map(|span| json!([
                        span["spanId"], span["parentSpanId"], span["name"], span["kind"],
                        span["startTimeUnixNano"], span["status"]["code"],
                    ])).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ns = |ms: i64| ((base_us + ms * 1_000) * 1_000).to_string();
    assert_eq!(
        summary,
        vec![
            json!({
                "resource": [kv("service.name", json!({"stringValue": "frontend"})),
                             kv("host.name", json!({"stringValue": "web-1"}))],
                "scopes": [{"scope": ["checkout-http", "1.0"], "spans": [
                    [ROOT, "", "GET /checkout", 2, ns(0), 0],
                    [CALL, ROOT, "POST /pay", 3, ns(10), 0],
                ]}]
            }),
            json!({
                "resource": [kv("service.name", json!({"stringValue": "payments"})),
                             kv("host.name", json!({"stringValue": "pay-1"}))],
                "scopes": [{"scope": ["pay-grpc", ""], "spans": [
                    [SERVE, CALL, "POST /pay", 2, ns(20), 2],
                ]}]
            }),
        ]
    );
    let root = &resources[0]["scopeSpans"][0]["spans"][0];
    assert_eq!(root["traceId"], TRACE);
    assert_eq!(
        root["attributes"],
        json!([
            kv("http.route", json!({"stringValue": "/checkout"})),
            kv("http.status_code", json!({"intValue": "502"}))
        ])
    );
    let serve = &resources[1]["scopeSpans"][0]["spans"][0];
    assert_eq!(serve["status"]["message"], "card declined");
    assert_eq!(serve["events"][0]["timeUnixNano"], ns(30));
    assert_eq!(serve["links"][0]["traceId"], LINKED_TRACE);
    let (status, body) = get(&server, "/jaeger/api/v3/traces/0123456789abcdef", &[]);
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"httpCode": 404, "message": "trace not found"}})
    );
    let (_, body) = get(&server, "/jaeger/api/v3/services", &[]);
    assert_eq!(body, json!({"services": ["frontend", "payments"]}));
    let (_, body) = get(
        &server,
        "/jaeger/api/v3/operations",
        &[("service", "payments")],
    );
    assert_eq!(
        body,
        json!({"operations": [{"name": "POST /pay", "spanKind": "server"}]})
    );
}
