//! The web explorer as served by the real binary, read over HTTP without a browser: every page
//! renders on the server with its data in the HTML (a pasted link shows the trace before any
//! script runs), missing traces answer 404, the server functions answer the browser's calls,
//! and the browser bundle is served with revalidation headers.

mod common;
#[path = "support/shop.rs"]
mod shop;

use common::Server;
use reqwest::blocking::Client;
use shop::{SERVICES, Shop};

/// The text of an HTML page without its tags and hydration markers.
fn text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn get(server: &Server, path: &str) -> (u16, String) {
    let response = Client::new().get(server.url(path)).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn pages_render_on_the_server_with_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let shop = Shop::new(&server.grpc_url());
    let sent = shop.send_sample();
    let failed = sent.iter().find(|t| t.failed).unwrap();
    let ok = sent.iter().find(|t| !t.failed).unwrap();

    // The trace page: the whole chain, the error origin and the uninstrumented database, in the
    // HTML as served, plus the hydration script.
    let (status, html) = get(&server, &format!("/trace/{}", failed.trace_id));
    assert_eq!(status, 200, "{html}");
    for service in SERVICES {
        assert!(
            html.contains(service),
            "service {service} missing from the trace page"
        );
    }
    for name in [
        "GET /checkout",
        "POST /charge",
        "INSERT charges",
        "order.confirmed process",
    ] {
        assert!(
            html.contains(name),
            "span {name} missing from the trace page"
        );
    }
    assert!(
        html.contains("error origin"),
        "the error origin is not marked"
    );
    assert!(
        html.contains("no span from postgresql"),
        "the uninstrumented database is not shown"
    );
    assert!(text(&html).contains("11 spans"), "span count missing");
    assert!(html.contains("/pkg/ui.js"), "no hydration script");
    assert!(html.contains(&failed.trace_id));

    // A deep link to a span renders its details on the server.
    let charge = server.sql(&format!(
        "SELECT span_id FROM spans WHERE trace_id = '{}' AND span_name = 'INSERT charges'",
        failed.trace_id
    ));
    let span_id = charge["data"][0]["span_id"].as_str().unwrap().to_string();
    let (status, html) = get(
        &server,
        &format!("/trace/{}?span={span_id}", failed.trace_id),
    );
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"details\""),
        "no details panel for ?span="
    );
    assert!(
        html.contains("INSERT INTO charges VALUES"),
        "span attributes not rendered"
    );
    assert!(html.contains("charges_pkey"), "status message not rendered");
    assert!(
        html.contains("shop.module"),
        "the scope's attributes are not rendered"
    );
    assert!(html.contains("postgresql"));

    // Unknown traces are a clear 404.
    let (status, html) = get(&server, "/trace/0123456789abcdef0123456789abcdef");
    assert_eq!(status, 404);
    assert!(html.contains("Trace not found"));
    let (status, html) = get(&server, "/trace/not-hex");
    assert!(html.contains("invalid trace id"), "{status} {html}");

    // Search: the hits of a service, newest first, errors only when asked.
    let (status, html) = get(&server, "/search?service=frontend&lookback=1h");
    assert_eq!(status, 200);
    for t in &sent {
        assert!(
            html.contains(&t.trace_id),
            "trace {} not listed",
            t.trace_id
        );
    }
    assert!(html.contains("class=\"scatter\""));
    let (_, html) = get(&server, "/search?service=frontend&errors=true");
    assert!(html.contains(&failed.trace_id));
    assert!(
        !html.contains(&ok.trace_id),
        "errors-only search listed a good trace"
    );
    let (_, html) = get(&server, "/search?service=frontend&min_duration=800ms");
    let slow = sent.iter().filter(|t| t.duration_ms >= 800).count();
    assert_eq!(
        html.matches("<li class=\"hit").count(),
        slow,
        "min duration not applied"
    );
    let jump = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url(&format!("/go?trace={}", ok.trace_id)))
        .send()
        .unwrap();
    assert!(
        jump.status().is_redirection(),
        "trace id jump: {}",
        jump.status()
    );
    assert_eq!(
        jump.headers()["location"],
        format!("/trace/{}", ok.trace_id).as_str()
    );

    // The service map: every service and the edges between them.
    let (status, html) = get(&server, "/services");
    assert_eq!(status, 200);
    for service in SERVICES {
        assert!(
            html.contains(&format!("data-service=\"{service}\"")),
            "service {service} missing from the map"
        );
    }
    assert!(html.contains("marker-end"), "no edges drawn");

    // One service: RED charts per operation and its failing traces.
    let (status, html) = get(&server, "/services/payments");
    assert_eq!(status, 200);
    assert!(html.contains("POST /charge"));
    assert!(html.contains("polyline"));
    assert!(html.contains(&failed.trace_id), "failing trace not listed");

    // Compare a good and a failed request.
    let (status, html) = get(
        &server,
        &format!("/compare/{}/{}", ok.trace_id, failed.trace_id),
    );
    assert_eq!(status, 200);
    assert!(html.contains("id=\"compare\""));
    assert!(html.contains("POST /charge"));

    // SQL: the query in the URL, results as a table, a CSV download.
    let (status, html) = get(
        &server,
        "/sql?q=SELECT%20service_name%2C%20count(*)%20AS%20n%20FROM%20spans%20GROUP%20BY%201%20ORDER%20BY%201",
    );
    assert_eq!(status, 200);
    assert!(html.contains("id=\"sql-result\""));
    assert!(html.contains("inventory"));
    let (_, html) = get(&server, "/sql?q=DROP%20TABLE%20spans");
    assert!(html.contains("read-only"), "DDL not refused: {html}");
    let csv = Client::new()
        .get(
            server
                .url("/api/sql?format=csv&download=1&q=SELECT%20count(*)%20AS%20n%20FROM%20spans"),
        )
        .send()
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("spanlake.csv")
    );
    assert!(csv.text().unwrap().starts_with("n\n"));

    // Unknown pages are 404.
    let (status, _) = get(&server, "/no/such/page");
    assert_eq!(status, 404);
}

#[test]
fn server_functions_answer_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let shop = Shop::new(&server.grpc_url());
    let sent = shop.send_sample();
    let client = Client::new();

    let services: Vec<String> = client
        .post(server.url("/ui/fn/services"))
        .json(&serde_json::json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut expected: Vec<String> = SERVICES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(services, expected);

    let found: Vec<String> = client
        .post(server.url("/ui/fn/find"))
        .json(&serde_json::json!({"trace_id": sent[0].trace_id, "text": "POSTGRES"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "find by attribute value, ignoring case: {found:?}"
    );

    let trace: serde_json::Value = client
        .post(server.url("/ui/fn/trace"))
        .json(&serde_json::json!({"trace_id": sent[0].trace_id}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(trace["spans"].as_array().unwrap().len(), 11);

    let bad = client
        .post(server.url("/ui/fn/sql"))
        .json(&serde_json::json!({"sql": "SELECT * FROM nowhere"}))
        .send()
        .unwrap();
    assert!(bad.status().is_server_error() || bad.status().is_client_error());
    assert!(bad.text().unwrap().contains("nowhere"));
}

#[test]
fn the_browser_bundle_is_served_with_revalidation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = Client::new();
    let wasm = client.get(server.url("/pkg/ui_bg.wasm")).send().unwrap();
    assert_eq!(
        wasm.status(),
        200,
        "the bundle is missing: scripts/test builds it with scripts/build-ui"
    );
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(wasm.headers()["cache-control"], "no-cache");
    let etag = wasm.headers()["etag"].clone();
    assert!(wasm.bytes().unwrap().starts_with(b"\0asm"));
    let again = client
        .get(server.url("/pkg/ui_bg.wasm"))
        .header("if-none-match", etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);
    let js = client.get(server.url("/pkg/ui.js")).send().unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript");
    assert_eq!(
        client
            .get(server.url("/pkg/../Cargo.toml"))
            .send()
            .unwrap()
            .status(),
        404
    );
}
