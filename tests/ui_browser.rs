//! The web explorer in a real headless Chromium, driven over WebDriver (Debian's chromium and
//! chromium-driver): search, open a trace, collapse and expand, open a span's details, reload the
//! deep link, find in the trace, the service map, a service, compare and SQL. Takes the
//! screenshots in docs/screenshots as it goes.

mod common;
#[path = "support/shop.rs"]
mod shop;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use shop::{SERVICES, Shop};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's chromium and chromium-driver \
         (apt-get install chromium chromium-driver; scripts/test installs them when run as root)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromedriver");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1440,1000",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("cannot open a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the page is hydrated: the application marks `<body data-hydrated>`.
async fn hydrated(client: &Client) {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("body[data-hydrated]"))
        .await
        .expect("the page never hydrated (is the wasm bundle built? scripts/build-ui)");
}

async fn count(client: &Client, css: &str) -> usize {
    client.find_all(Locator::Css(css)).await.unwrap().len()
}

async fn wait_count(client: &Client, css: &str, want: usize) {
    let started = Instant::now();
    loop {
        let n = count(client, css).await;
        if n == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{css}: {n} elements, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn explore_a_failing_checkout_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let shop = Shop::new(&server.grpc_url());
    let sent = shop.send_sample();
    let failed = sent.iter().rev().find(|t| t.failed).unwrap().clone();
    let ok = sent.iter().find(|t| !t.failed).unwrap().clone();
    let driver = start_driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;

        // Search: pick a service, see the hits and the scatter plot.
        c.goto(&server.url("/search?service=frontend&lookback=1h"))
            .await
            .unwrap();
        hydrated(&c).await;
        wait_count(&c, ".hits .hit", sent.len()).await;
        assert_eq!(count(&c, ".scatter .point").await, sent.len());
        assert_eq!(count(&c, ".hits .hit.failed").await, 2);
        shoot(&c, "search").await;

        // Open the newest failing trace from the list (client-side navigation).
        c.find(Locator::Css(".hits .hit.failed a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#rows .row"))
            .await
            .unwrap();
        assert!(c.current_url().await.unwrap().path().starts_with("/trace/"));
        wait_count(&c, "#rows .row", 11).await;
        assert_eq!(count(&c, "#rows .row.origin").await, 1, "one error origin");
        assert!(
            text(&c, "#rows .row.origin")
                .await
                .contains("INSERT charges")
        );
        assert_eq!(
            count(&c, "#rows .ghost").await,
            1,
            "the uninstrumented database"
        );
        assert!(count(&c, "#rows .crit").await >= 3, "critical path drawn");
        assert!(count(&c, "#rows .gap").await >= 2 * 4, "network gaps drawn");

        // Collapse the root: one row left; expand again.
        c.find(Locator::Css("#rows .row .toggle"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_count(&c, "#rows .row", 1).await;
        c.find(Locator::Css("#rows .row .toggle"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_count(&c, "#rows .row", 11).await;
        c.find(Locator::Css("#collapse-all"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_count(&c, "#rows .row", 1).await;
        c.find(Locator::Css("#expand-all"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_count(&c, "#rows .row", 11).await;

        // Open the failing INSERT's details: a deep link that survives a reload.
        c.find(Locator::Css("#rows .row.origin"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .for_element(Locator::Css("#details #detail-span-id"))
            .await
            .unwrap();
        assert!(text(&c, "#details").await.contains("charges_pkey"));
        let span_id = text(&c, "#detail-span-id").await;
        let url = c.current_url().await.unwrap();
        assert_eq!(url.query(), Some(format!("span={span_id}").as_str()));
        shoot(&c, "trace").await;
        c.refresh().await.unwrap();
        hydrated(&c).await;
        assert_eq!(
            text(&c, "#detail-span-id").await,
            span_id,
            "deep link lost on reload"
        );
        assert_eq!(count(&c, "#rows .row.selected").await, 1);

        // Keyboard: up moves the selection to the row above (the failing INSERT's caller) and
        // the URL follows.
        c.find(Locator::Css("#rows .row.origin"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("#rows"))
            .await
            .unwrap()
            .send_keys("\u{E013}")
            .await
            .unwrap(); // ArrowUp
        let started = Instant::now();
        loop {
            let heading = text(&c, "#details h2").await;
            if heading.contains("POST /charge") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "ArrowUp did not move the selection: {heading}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_ne!(
            c.current_url().await.unwrap().query(),
            Some(format!("span={span_id}").as_str())
        );

        // Find in trace, by an attribute value.
        c.find(Locator::Css("#find"))
            .await
            .unwrap()
            .send_keys("postgres")
            .await
            .unwrap();
        wait_count(&c, "#rows .row.matched", 1).await;
        assert!(text(&c, "#match-count").await.contains("1 match"));

        // Dark theme.
        c.find(Locator::Css("button.theme"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let theme = c
            .execute("return document.documentElement.dataset.theme", vec![])
            .await
            .unwrap();
        assert!(theme == json!("dark") || theme == json!("light"));
        if theme == json!("light") {
            c.find(Locator::Css("button.theme"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        shoot(&c, "trace-dark").await;
        c.find(Locator::Css("button.theme"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // The service map shows every service of the chain; a click opens the service.
        c.goto(&server.url("/services")).await.unwrap();
        hydrated(&c).await;
        for service in SERVICES {
            c.find(Locator::Css(&format!(
                ".map .node[data-service=\"{service}\"]"
            )))
            .await
            .unwrap_or_else(|_| panic!("{service} missing from the service map"));
        }
        assert!(count(&c, ".map .edge").await >= 4);
        shoot(&c, "services").await;
        c.find(Locator::Css(".map .node[data-service=\"payments\"]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .for_element(Locator::Css(".op-card"))
            .await
            .unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/services/payments");
        assert!(text(&c, ".service-page").await.contains("POST /charge"));
        shoot(&c, "service").await;

        // Compare a good and a failed checkout.
        c.goto(&server.url(&format!("/compare/{}/{}", ok.trace_id, failed.trace_id)))
            .await
            .unwrap();
        hydrated(&c).await;
        assert!(
            text(&c, "#compare-summary")
                .await
                .contains("much slower or faster")
        );
        shoot(&c, "compare").await;

        // SQL from the editor, result as a table.
        c.goto(&server.url("/sql")).await.unwrap();
        hydrated(&c).await;
        let editor = c.find(Locator::Css("#sql")).await.unwrap();
        editor.clear().await.unwrap();
        editor
            .send_keys("SELECT service_name, count(*) AS spans FROM spans GROUP BY 1 ORDER BY 1")
            .await
            .unwrap();
        c.find(Locator::Css("#sql-form button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .for_element(Locator::Css("#sql-result tbody tr"))
            .await
            .unwrap();
        wait_count(&c, "#sql-result tbody tr", SERVICES.len()).await;
        assert!(
            c.current_url()
                .await
                .unwrap()
                .query()
                .unwrap()
                .starts_with("q=")
        );
        shoot(&c, "sql").await;

        // A trace that does not exist says so.
        c.goto(&server.url("/trace/00000000000000000000000000000bad"))
            .await
            .unwrap();
        assert!(
            text(&c, "#trace-not-found")
                .await
                .contains("Trace not found")
        );

        c.close().await.unwrap();
    });
}

/// A trace of `fan_out * (leaves + 1) + 1` spans: a root, `fan_out` calls, each with `leaves`
/// children; posted as one OTLP/HTTP protobuf request. Returns the trace id and the last span id
/// in display order.
fn post_big_trace(server: &Server, fan_out: u64, leaves: u64) -> (String, String) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let trace_id: Vec<u8> = (1..=16).map(|b| b * 7).collect();
    let id = |n: u64| (n + 1).to_be_bytes().to_vec();
    let span = |n: u64, parent: Option<u64>, name: String, start: u64, end: u64| Span {
        trace_id: trace_id.clone(),
        span_id: id(n),
        parent_span_id: parent.map(id).unwrap_or_default(),
        name,
        kind: 1,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: vec![KeyValue {
            key: "n".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(n as i64)),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let ms = 1_000_000;
    let mut spans = vec![span(
        0,
        None,
        "batch job".into(),
        now,
        now + fan_out * 10 * ms,
    )];
    let mut n = 1;
    let mut last = 0;
    for f in 0..fan_out {
        let call = n;
        let start = now + f * 10 * ms;
        spans.push(span(
            call,
            Some(0),
            format!("step {f}"),
            start,
            start + 9 * ms,
        ));
        n += 1;
        for l in 0..leaves {
            let s = start + l * (9 * ms / leaves.max(1));
            spans.push(span(n, Some(call), format!("item {f}.{l}"), s, s + ms / 2));
            last = n;
            n += 1;
        }
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("batch".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = reqwest::blocking::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    (hex(&trace_id), hex(&id(last)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_20k_span_trace_is_virtualised() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    // 1 + 200 * (1 + 99) = 20,001 spans.
    let (trace_id, last_span) = post_big_trace(&server, 200, 99);
    let driver = start_driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        let started = Instant::now();
        c.goto(&server.url(&format!("/trace/{trace_id}")))
            .await
            .unwrap();
        hydrated(&c).await;
        eprintln!(
            "20,001-span trace: loaded and hydrated in {:?}",
            started.elapsed()
        );
        let spans = text(&c, "#span-count").await;
        assert!(spans.contains("20,001"), "{spans}");
        let rows = count(&c, "#rows .row").await;
        assert!(
            rows > 10 && rows < 120,
            "{rows} rows in the DOM: not virtualised"
        );
        assert_eq!(count(&c, ".minimap").await, 1, "a long trace has a minimap");

        // Scroll to the very end: the last span is drawn, and still only a screenful of rows.
        c.execute(
            "const r = document.getElementById('rows'); r.scrollTop = r.scrollHeight;",
            vec![],
        )
        .await
        .unwrap();
        c.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(&format!(
                "#rows .row[data-span=\"{last_span}\"]"
            )))
            .await
            .expect("the last span is not drawn after scrolling to the end");
        assert!(count(&c, "#rows .row").await < 120);

        // Collapse everything: the root and nothing else; expand again.
        c.find(Locator::Css("#collapse-all"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_count(&c, "#rows .row", 1).await;
        c.find(Locator::Css("#expand-all"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.execute("document.getElementById('rows').scrollTop = 0;", vec![])
            .await
            .unwrap();
        c.wait()
            .for_element(Locator::Css("#rows .row[data-span=\"0000000000000001\"]"))
            .await
            .unwrap();
        c.close().await.unwrap();
    });
}

#[test]
fn an_unreachable_server_is_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"));
    let shop = Shop::new(&server.grpc_url());
    shop.send_sample();
    let driver = start_driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        c.goto(&server.url("/search?service=frontend"))
            .await
            .unwrap();
        hydrated(&c).await;
        server.stop();
        // The page is live; opening a trace now needs the server, which is gone.
        c.find(Locator::Css(".hits .hit a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let error = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(".error-box"))
            .await
            .expect("no error shown when the server is gone");
        let message = error.text().await.unwrap();
        assert!(
            message.contains("Cannot reach the Spanlake server"),
            "{message}"
        );
        c.close().await.unwrap();
    });
}
