//! TraceQL through `/tempo/api/search?q=` on the real binary, over traces sent by the
//! OpenTelemetry Rust SDK: structural operators, pipelines, typed attributes in the answer and
//! parse errors with their position.

mod common;
#[path = "support/shop.rs"]
mod shop;

use std::collections::BTreeSet;

use common::Server;
use reqwest::blocking::Client;
use serde_json::Value;
use shop::Shop;

fn search(server: &Server, q: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 3600).to_string(), (now + 60).to_string());
    let mut query = vec![("q", q), ("start", start.as_str()), ("end", end.as_str())];
    query.extend_from_slice(extra);
    let response = Client::new()
        .get(server.url("/tempo/api/search"))
        .query(&query)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn found(server: &Server, q: &str, extra: &[(&str, &str)]) -> Value {
    let (status, body) = search(server, q, extra);
    assert_eq!(status, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn trace_ids(found: &Value) -> BTreeSet<String> {
    found["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect()
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[test]
fn traceql_searches_answer_as_tempo_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let shop = Shop::new(&server.grpc_url());
    let sent = shop.send_sample();
    let failed: BTreeSet<String> = sent
        .iter()
        .filter(|t| t.failed)
        .map(|t| t.trace_id.clone())
        .collect();
    assert_eq!(failed.len(), 2);

    // A structural query: errors below the frontend. The root is the frontend's own span, so
    // it is not its own descendant; the five failing spans under it are.
    let errors = found(
        &server,
        r#"{ resource.service.name = "frontend" } >> { status = error }"#,
        &[("spss", "10")],
    );
    assert_eq!(trace_ids(&errors), failed);
    for trace in errors["traces"].as_array().unwrap() {
        assert_eq!(trace["rootServiceName"], "frontend");
        let set = &trace["spanSets"][0];
        assert_eq!(set["matched"], 5, "{set}");
        let spans = set["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 5);
        for span in spans {
            assert_ne!(
                span["name"], "GET /checkout",
                "the root is not a descendant"
            );
            assert_eq!(attribute(span, "status").unwrap()["stringValue"], "error");
        }
        assert_eq!(trace["spanSet"], *set, "spanSet repeats the first spanset");
    }
    // spss cuts the spans shown, not the count.
    let few = found(
        &server,
        r#"{ resource.service.name = "frontend" } >> { status = error }"#,
        &[("spss", "2")],
    );
    let set = &few["traces"][0]["spanSets"][0];
    assert_eq!(set["spans"].as_array().unwrap().len(), 2);
    assert_eq!(set["matched"], 5);

    // A pipeline over the frontend's server spans: traces slower than half a second.
    let slow: BTreeSet<String> = sent
        .iter()
        .filter(|t| t.duration_ms > 500)
        .map(|t| t.trace_id.clone())
        .collect();
    assert!(!slow.is_empty());
    let found_slow = found(
        &server,
        r#"{ resource.service.name = "frontend" && kind = server } | max(duration) > 500ms"#,
        &[],
    );
    assert_eq!(trace_ids(&found_slow), slow);

    // Typed attributes: the double compares as a number and comes back as a double.
    let amounts = found(&server, "{ span.payment.amount > 100 }", &[]);
    assert_eq!(amounts["traces"].as_array().unwrap().len(), sent.len());
    let span = &amounts["traces"][0]["spanSets"][0]["spans"][0];
    assert_eq!(
        attribute(span, "payment.amount").unwrap()["doubleValue"],
        129.5
    );
    assert_eq!(
        trace_ids(&found(&server, r#"{ span.payment.amount = "129.5" }"#, &[])).len(),
        0,
        "a string never equals a double"
    );

    // Grouping: one spanset per service, named by its by() value.
    let by = found(
        &server,
        r#"{ status = error } | by(resource.service.name) | count() > 1"#,
        &[("limit", "1")],
    );
    let sets = by["traces"][0]["spanSets"].as_array().unwrap();
    let groups: BTreeSet<&str> = sets
        .iter()
        .map(|s| s["attributes"][0]["value"]["stringValue"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        BTreeSet::from(["checkout", "frontend", "payments"]),
        "{by}"
    );

    // limit keeps the newest traces.
    let newest = found(&server, "{}", &[("limit", "2")]);
    assert_eq!(newest["traces"].as_array().unwrap().len(), 2);

    // Metrics: error spans counted per service in one-minute buckets, as Grafana asks.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 3600).to_string(), (now + 60).to_string());
    let response = Client::new()
        .get(server.url("/tempo/api/metrics/query_range"))
        .query(&[
            (
                "q",
                "{ status = error } | count_over_time() by (resource.service.name)",
            ),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", "60s"),
        ])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let metrics: Value = response.json().unwrap();
    let mut totals = std::collections::BTreeMap::new();
    for series in metrics["series"].as_array().unwrap() {
        assert_eq!(series["labels"][0]["key"], "resource.service.name");
        let service = series["labels"][0]["value"]["stringValue"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(series["promLabels"].as_str().unwrap().contains(&service));
        for sample in series["samples"].as_array().unwrap() {
            let ms: i64 = sample["timestampMs"].as_str().unwrap().parse().unwrap();
            assert_eq!(ms % 60_000, 0, "buckets start on the minute");
            *totals.entry(service.clone()).or_insert(0.0) += sample["value"].as_f64().unwrap();
        }
    }
    // Each failing checkout has two failing spans in each of these services.
    assert_eq!(
        totals,
        std::collections::BTreeMap::from([
            ("checkout".to_string(), 4.0),
            ("frontend".to_string(), 4.0),
            ("payments".to_string(), 4.0),
        ])
    );

    // The native API takes the same queries and lists each trace's spansets.
    let native: Value = Client::new()
        .get(server.url("/api/search"))
        .query(&[
            (
                "q",
                r#"{ resource.service.name = "payments" } > { span.db.system = "postgresql" }"#,
            ),
            ("lookback", "1h"),
            ("spss", "5"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let traces = native["traces"].as_array().unwrap();
    assert_eq!(traces.len(), sent.len(), "{native}");
    for trace in traces {
        assert!(trace["trace_id"].is_string(), "{trace}");
        let spans = trace["spansets"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["name"], "INSERT charges");
        assert_eq!(spans[0]["attributes"]["db.system"], "postgresql");
    }
    assert!(native["bytes_read"].as_u64().unwrap() > 0);
    let mixed = Client::new()
        .get(server.url("/api/search"))
        .query(&[("q", "{}"), ("service", "cart")])
        .send()
        .unwrap();
    assert_eq!(mixed.status().as_u16(), 400);
    assert!(
        mixed
            .text()
            .unwrap()
            .contains("service cannot be combined with q")
    );

    // Parse and type errors are 400s that say where and what.
    let (status, body) = search(&server, r#"{ resource.service.name = }"#, &[]);
    assert_eq!(status, 400);
    assert!(body.contains("line 1, column 27"), "{body}");
    assert!(body.contains("expected"), "{body}");
    let (status, body) = search(&server, r#"{ name > true }"#, &[]);
    assert_eq!(status, 400);
    assert!(body.contains("name > true"), "{body}");
}
