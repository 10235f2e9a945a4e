//! Grafana's Tempo data source pointed at `http://HOST:16686/tempo` works: a two-service chain
//! sent over OTLP/HTTP JSON is found by TraceQL and tag search, its tags and values are listed,
//! and it opens by id as protobuf (what Grafana asks for) and as JSON.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Server;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
const FRONT_ROOT: &str = "00f067aa0ba902b7";
const FRONT_CALL: &str = "00f067aa0ba902b8";
const CART_SERVE: &str = "00f067aa0ba902b9";
const HOME: &str = "00f067aa0ba902c0";
const MS: u64 = 1_000_000;

/// `tempopb.TraceByIDResponse`, written here from Tempo's proto so the test checks the wire
/// format independently of the server's own definition; `tempopb.Trace` has the same layout as
/// OTLP `TracesData` (field 1, repeated ResourceSpans).
#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
    #[prost(int32, tag = "3")]
    status: i32,
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    kind: u8,
    start: u64,
    millis: u64,
    attributes: Value,
    status: Value,
) -> Value {
    json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + millis * MS).to_string(),
        "attributes": attributes, "status": status
    })
}

fn resource(service: &str, extra: Value, spans: Vec<Value>) -> Value {
    let mut attributes = vec![json!({"key": "service.name", "value": {"stringValue": service}})];
    if !extra.is_null() {
        attributes.push(extra);
    }
    json!({
        "resource": {"attributes": attributes},
        "scopeSpans": [{"scope": {"name": "shop", "version": "1.2"}, "spans": spans}]
    })
}

/// frontend GET /cart (SERVER, 120 ms) -> frontend POST /items (CLIENT, 100 ms)
///   -> cart POST /items (SERVER, 80 ms, ERROR, http.status_code=500); one second later another
/// trace: frontend GET /home (SERVER, 30 ms).
fn chain(base: u64) -> Value {
    let code = |c: i64| json!([{"key": "http.status_code", "value": {"intValue": c.to_string()}}]);
    let unset = json!({});
    json!({"resourceSpans": [
        resource("frontend", Value::Null, vec![
            span(TRACE, FRONT_ROOT, "", "GET /cart", 2, base, 120, json!([
                {"key": "http.route", "value": {"stringValue": "/cart"}},
                {"key": "http.status_code", "value": {"intValue": "200"}}
            ]), unset.clone()),
            span(TRACE, FRONT_CALL, FRONT_ROOT, "POST /items", 3, base + 10 * MS, 100,
                 json!([]), unset.clone()),
            span(OTHER_TRACE, HOME, "", "GET /home", 2, base + 1000 * MS, 30, code(200),
                 unset.clone()),
        ]),
        resource(
            "cart",
            json!({"key": "deployment.environment", "value": {"stringValue": "prod"}}),
            vec![span(TRACE, CART_SERVE, FRONT_CALL, "POST /items", 2, base + 20 * MS, 80,
                      code(500), json!({"code": 2, "message": "out of stock"}))],
        ),
    ]})
}

struct Tempo<'a> {
    server: &'a Server,
    client: Client,
    /// Unix seconds around the data, as Grafana sends a panel's range.
    start: u64,
    end: u64,
}

impl Tempo<'_> {
    fn request(&self, path: &str, query: &[(&str, &str)]) -> reqwest::blocking::RequestBuilder {
        self.client
            .get(self.server.url(&format!("/tempo{path}")))
            .query(query)
    }

    /// A JSON GET as Grafana's search and tag requests are sent; the status and the body.
    fn json(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .request(path, query)
            .header("Accept", "application/json")
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    fn ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let (status, body) = self.json(path, query);
        assert_eq!(status, 200, "{path} {query:?}: {body}");
        body
    }

    /// A search over the test's range with Grafana's defaults for what `extra` does not set.
    fn search(&self, extra: &[(&str, &str)]) -> Value {
        let (start, end) = (self.start.to_string(), self.end.to_string());
        let mut query = extra.to_vec();
        for default in [
            ("limit", "20"),
            ("spss", "3"),
            ("start", start.as_str()),
            ("end", end.as_str()),
        ] {
            if !extra.iter().any(|(k, _)| *k == default.0) {
                query.push(default);
            }
        }
        self.ok("/api/search", &query)
    }

    /// A 400 answer's text.
    fn bad(&self, path: &str, query: &[(&str, &str)]) -> String {
        let (status, body) = self.json(path, query);
        assert_eq!(status, 400, "{path} {query:?}: {body}");
        body.as_str()
            .map_or_else(|| body.to_string(), str::to_string)
    }
}

fn trace_ids(found: &Value) -> Vec<&str> {
    found["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect()
}

/// `(service, span name, span id, parent id)` of every span, in order.
fn spans_of(resource_spans: &[ResourceSpans]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for r in resource_spans {
        let service = r
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name");
        let service = match service.and_then(|kv| kv.value.as_ref()?.value.as_ref()) {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                s.clone()
            }
            other => panic!("no service name: {other:?}"),
        };
        for scope in &r.scope_spans {
            for s in &scope.spans {
                out.push((
                    service.clone(),
                    s.name.clone(),
                    hex(&s.span_id),
                    hex(&s.parent_span_id),
                ));
            }
        }
    }
    out.sort();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn grafana_tempo_data_source_reads_a_two_service_chain() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let base = (now - Duration::from_secs(30)).as_nanos() as u64;
    let client = Client::new();
    let r = client
        .post(server.otlp_http_url())
        .header("content-type", "application/json")
        .body(chain(base).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());

    let tempo = Tempo {
        server: &server,
        client,
        start: base / 1_000_000_000 - 60,
        end: now.as_secs() + 60,
    };

    // "Save & test", readiness and the version probe.
    let r = tempo.request("/api/echo", &[]).send().unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().unwrap()),
        (200, "echo".into())
    );
    let r = tempo.request("/ready", &[]).send().unwrap();
    assert_eq!(r.status(), 200);
    let info = tempo.ok("/api/status/buildinfo", &[]);
    assert_eq!(info["version"], "2.6.0");
    assert_eq!(info["spanlakeVersion"], env!("CARGO_PKG_VERSION"));
    for field in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(info[field].is_string(), "{field}: {info}");
    }

    // TraceQL search as Grafana's search builder writes it: the trace, its summary and the
    // matching span.
    let found = tempo.search(&[("q", r#"{resource.service.name="cart"}"#)]);
    assert_eq!(trace_ids(&found), [TRACE], "{found}");
    let hit = &found["traces"][0];
    assert_eq!(hit["rootServiceName"], "frontend");
    assert_eq!(hit["rootTraceName"], "GET /cart");
    assert_eq!(hit["startTimeUnixNano"], base.to_string());
    assert_eq!(hit["durationMs"], 120);
    assert_eq!(
        hit["serviceStats"],
        json!({"frontend": {"spanCount": 2, "errorCount": 0}, "cart": {"spanCount": 1, "errorCount": 1}})
    );
    let set = &hit["spanSets"][0];
    assert_eq!(set["matched"], 1);
    assert_eq!(
        set["spans"],
        json!([{
            "spanID": CART_SERVE,
            "name": "POST /items",
            "startTimeUnixNano": (base + 20 * MS).to_string(),
            "durationNanos": (80 * MS).to_string(),
            "attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]
        }])
    );
    assert_eq!(hit["spanSet"], *set);

    // {} is every trace, newest first; spss bounds the spans of each set.
    let all = tempo.search(&[("q", "{}"), ("spss", "2")]);
    assert_eq!(trace_ids(&all), [OTHER_TRACE, TRACE], "{all}");
    assert_eq!(all["traces"][1]["spanSets"][0]["matched"], 3);
    assert_eq!(
        all["traces"][1]["spanSets"][0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let newest = tempo.search(&[("q", "{}"), ("limit", "1")]);
    assert_eq!(trace_ids(&newest), [OTHER_TRACE]);

    // The conditions Grafana's builder combines.
    for (q, expected, span) in [
        (
            r#"{resource.service.name="frontend" && duration>100ms}"#,
            TRACE,
            FRONT_ROOT,
        ),
        (r#"{name="POST /items" && kind=client}"#, TRACE, FRONT_CALL),
        (
            r#"{status=error && span.http.status_code=500}"#,
            TRACE,
            CART_SERVE,
        ),
        (r#"{.http.route="/cart"}"#, TRACE, FRONT_ROOT),
        (
            r#"{resource.deployment.environment="prod"}"#,
            TRACE,
            CART_SERVE,
        ),
        (r#"{name="GET /home" && duration<=30ms}"#, OTHER_TRACE, HOME),
    ] {
        let found = tempo.search(&[("q", q)]);
        assert_eq!(trace_ids(&found), [expected], "{q}: {found}");
        assert_eq!(
            found["traces"][0]["spanSets"][0]["spans"][0]["spanID"], span,
            "{q}"
        );
    }
    let none = tempo.search(&[("q", r#"{span.deployment.environment="prod"}"#)]);
    assert_eq!(trace_ids(&none), Vec::<&str>::new());

    // Tempo's original tag search.
    let tagged = tempo.search(&[("tags", "service.name=cart http.status_code=500")]);
    assert_eq!(trace_ids(&tagged), [TRACE]);
    let errors = tempo.search(&[("tags", "error=true"), ("minDuration", "50ms")]);
    assert_eq!(trace_ids(&errors), [TRACE]);
    let named = tempo.search(&[("tags", r#"name="GET /home""#), ("maxDuration", "1s")]);
    assert_eq!(trace_ids(&named), [OTHER_TRACE]);
    let slow = tempo.search(&[("minDuration", "1s")]);
    assert_eq!(trace_ids(&slow), Vec::<&str>::new());

    // Bad requests say what was wrong, as text.
    let message = tempo.bad("/api/search", &[("q", r#"{.a="x"} >> {.b=}"#)]);
    assert!(message.contains("q: parse error"), "{message}");
    assert!(message.contains("column 17"), "{message}");
    assert!(message.contains("expected"), "{message}");
    let message = tempo.bad("/api/search", &[("q", "{}"), ("tags", "a=b")]);
    assert!(message.contains("can't specify tags and q"), "{message}");
    assert!(
        tempo
            .bad("/api/search", &[("limit", "0")])
            .contains("limit")
    );
    assert!(
        tempo
            .bad("/api/search", &[("minDuration", "x")])
            .contains("minDuration")
    );
    assert!(
        tempo
            .bad("/api/search", &[("start", "20"), ("end", "10")])
            .contains("start")
    );

    // Tag names, as Grafana loads them for its pickers.
    let range = [
        ("start", tempo.start.to_string()),
        ("end", tempo.end.to_string()),
    ];
    let range: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let scopes = tempo.ok("/api/v2/search/tags", &[("limit", "5000")]);
    let scope = |name: &str| -> Value {
        scopes["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no scope {name}: {scopes}"))["tags"]
            .clone()
    };
    assert_eq!(
        scope("resource"),
        json!(["deployment.environment", "service.name"])
    );
    assert_eq!(scope("span"), json!(["http.route", "http.status_code"]));
    let intrinsic = scope("intrinsic");
    for tag in [
        "duration",
        "kind",
        "name",
        "rootName",
        "rootServiceName",
        "status",
    ] {
        assert!(
            intrinsic.as_array().unwrap().contains(&json!(tag)),
            "{intrinsic}"
        );
    }
    let span_only = tempo.ok(
        "/api/v2/search/tags",
        &[&range[..], &[("scope", "span")][..]].concat(),
    );
    assert_eq!(
        span_only,
        json!({"scopes": [{"name": "span", "tags": ["http.route", "http.status_code"]}]})
    );
    assert!(
        tempo
            .bad("/api/v2/search/tags", &[("scope", "nope")])
            .contains("invalid scope: nope")
    );
    let v1 = tempo.ok("/api/search/tags", &range);
    assert_eq!(
        v1,
        json!({"tagNames": ["deployment.environment", "http.route", "http.status_code", "service.name"]})
    );

    // Tag values, typed, optionally narrowed by the query being written.
    let values = |tag: &str, q: Option<&str>| -> Value {
        let mut query = vec![("limit", "5000")];
        query.extend(q.map(|q| ("q", q)));
        tempo.ok(&format!("/api/v2/search/tag/{tag}/values"), &query)["tagValues"].clone()
    };
    assert_eq!(
        values("resource.service.name", None),
        json!([{"type": "string", "value": "cart"}, {"type": "string", "value": "frontend"}])
    );
    assert_eq!(
        values("span.http.status_code", None),
        json!([{"type": "int", "value": "200"}, {"type": "int", "value": "500"}])
    );
    assert_eq!(
        values(
            "span.http.status_code",
            Some(r#"{resource.service.name="cart"}"#)
        ),
        json!([{"type": "int", "value": "500"}])
    );
    // A query still being typed does not narrow.
    assert_eq!(
        values(
            "span.http.status_code",
            Some(r#"{resource.service.name="cart" && "#)
        )
        .as_array()
        .unwrap()
        .len(),
        2
    );
    assert_eq!(
        values("name", None),
        json!([
            {"type": "string", "value": "GET /cart"},
            {"type": "string", "value": "GET /home"},
            {"type": "string", "value": "POST /items"}
        ])
    );
    assert_eq!(
        values("status", None),
        json!([
            {"type": "status", "value": "error"},
            {"type": "status", "value": "ok"},
            {"type": "status", "value": "unset"}
        ])
    );
    assert!(
        values("kind", None)
            .as_array()
            .unwrap()
            .contains(&json!({"type": "kind", "value": "server"}))
    );
    assert!(
        tempo
            .bad("/api/v2/search/tag/http.route/values", &[])
            .contains("is not a TraceQL attribute")
    );
    assert_eq!(
        tempo.ok("/api/search/tag/service.name/values", &range),
        json!({"tagValues": ["cart", "frontend"]})
    );
    assert_eq!(
        tempo.ok("/api/search/tag/http.route/values", &range),
        json!({"tagValues": ["/cart"]})
    );

    // Trace by id as Grafana opens it: v2, protobuf, with the panel's range.
    let expected_spans = vec![
        (
            "cart".to_string(),
            "POST /items".to_string(),
            CART_SERVE.to_string(),
            FRONT_CALL.to_string(),
        ),
        (
            "frontend".into(),
            "GET /cart".into(),
            FRONT_ROOT.into(),
            String::new(),
        ),
        (
            "frontend".into(),
            "POST /items".into(),
            FRONT_CALL.into(),
            FRONT_ROOT.into(),
        ),
    ];
    let r = tempo
        .request(&format!("/api/v2/traces/{TRACE}"), &range)
        .header("Accept", "application/protobuf")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/protobuf");
    let v2 = TraceByIdResponse::decode(r.bytes().unwrap()).unwrap();
    assert_eq!(v2.status, 0);
    let trace = v2.trace.unwrap();
    assert_eq!(spans_of(&trace.resource_spans), expected_spans);
    let cart = trace
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|s| hex(&s.span_id) == CART_SERVE)
        .unwrap();
    assert_eq!(hex(&cart.trace_id), TRACE);
    assert_eq!(cart.kind, 2);
    assert_eq!(cart.start_time_unix_nano, base + 20 * MS);
    assert_eq!(cart.end_time_unix_nano, base + 100 * MS);
    assert_eq!(cart.status.as_ref().unwrap().code, 2);
    assert_eq!(cart.status.as_ref().unwrap().message, "out of stock");

    // v1, protobuf: tempopb.Trace.
    let r = tempo
        .request(&format!("/api/traces/{TRACE}"), &[])
        .header("Accept", "application/protobuf")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v1 = TracesData::decode(r.bytes().unwrap()).unwrap();
    assert_eq!(spans_of(&v1.resource_spans), expected_spans);

    // JSON: v1 under "batches", v2 under "trace.resourceSpans"; OTLP/JSON inside.
    let v1 = tempo.ok(&format!("/api/traces/{TRACE}"), &[]);
    let batches: Vec<ResourceSpans> = serde_json::from_value(v1["batches"].clone()).unwrap();
    assert_eq!(spans_of(&batches), expected_spans);
    let v2 = tempo.ok(&format!("/api/v2/traces/{TRACE}"), &range);
    assert_eq!(v2["status"], "COMPLETE");
    let resource_spans: Vec<ResourceSpans> =
        serde_json::from_value(v2["trace"]["resourceSpans"].clone()).unwrap();
    assert_eq!(spans_of(&resource_spans), expected_spans);
    let home = tempo.ok(&format!("/api/v2/traces/{OTHER_TRACE}"), &[]);
    assert_eq!(
        home["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"],
        HOME
    );

    // Unknown traces are 404 on both versions, so Grafana's fallback from v2 to v1 ends in
    // "trace not found"; a malformed id is a 400.
    for path in ["/api/v2/traces/", "/api/traces/"] {
        let r = tempo
            .request(&format!("{path}0123456789abcdef0123456789abcdef"), &[])
            .header("Accept", "application/protobuf")
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.text().unwrap().contains("not found"));
    }
    assert!(
        tempo
            .bad("/api/v2/traces/not-hex", &[])
            .contains("invalid trace id")
    );

    // Another tenant sees nothing of this one.
    let r = tempo
        .request("/api/search", &[("q", "{}")])
        .header("X-Scope-OrgID", "team-b")
        .send()
        .unwrap();
    let other: Value = r.json().unwrap();
    assert_eq!(trace_ids(&other), Vec::<&str>::new());
    let r = tempo
        .request(&format!("/api/v2/traces/{TRACE}"), &[])
        .header("X-Scope-OrgID", "team-b")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}
