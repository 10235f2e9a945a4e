//! Heavy queries never hold up ingest or health checks: on the real binary, runaway queries of
//! several shapes (joins without equal columns, regular expressions over every pair of spans,
//! a huge ORDER BY, a GROUP BY over span ids, a TraceQL structural search, a Flight SQL client
//! that walks away) run at once while a steady client exports over gRPC and HTTP. The client
//! loses nothing and waits under a second, `/readyz` answers, every runaway ends within its
//! limit with an error that names it, its work stops, and SIGTERM during runaways exits with
//! every acknowledged span stored.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use common::{Server, eventually};
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};

/// The query time limit the server runs with.
const LIMIT: Duration = Duration::from_secs(4);
/// What a runaway may take past its limit before its answer arrives.
const SLACK: Duration = Duration::from_secs(1);

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// `count` spans of `service` with span ids from `first`, in traces of 4 spans (a root and
/// three children), so the structural search has something to match.
fn request(service: &str, first: u64, count: u64) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (first..first + count)
        .map(|id| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(id / 4 + 1).to_be_bytes());
            trace_id[8..].copy_from_slice(&0x1501_u64.to_be_bytes());
            let root = id - id % 4;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (id + 1).to_be_bytes().to_vec(),
                parent_span_id: if id == root {
                    Vec::new()
                } else {
                    (root + 1).to_be_bytes().to_vec()
                },
                name: format!("op-{}", id % 13),
                kind: if id == root { 2 } else { 3 },
                start_time_unix_nano: now + id % 4 * 1_000,
                end_time_unix_nano: now + 1_000_000 + id % 97 * 10_000,
                attributes: vec![
                    kv("http.route", &format!("/orders/{}", id % 50)),
                    kv("order.id", &format!("order-{id}")),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// 20 000 spans of service `seed` to query, as the report had.
fn seed(server: &Server) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut grpc = TraceServiceClient::connect(server.grpc_url())
            .await
            .unwrap();
        for i in 0..40 {
            grpc.export(request("seed", i * 500, 500)).await.unwrap();
        }
    });
}

/// What the steady exporter saw.
#[derive(Default)]
struct Exports {
    acknowledged: u64,
    failures: Vec<String>,
    latencies: Vec<Duration>,
}

impl Exports {
    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
    }
}

/// The tenant the steady exporter writes to, apart from the one the runaways read, so the
/// runaways' inputs keep their size.
const STEADY: &str = "steady";

/// Exports 100 spans every 20 ms, over gRPC and OTLP/HTTP in turn, until `stop`.
fn steady_exporter(server: &Server, stop: Arc<AtomicBool>) -> JoinHandle<Exports> {
    let (grpc, http) = (server.grpc_url(), server.otlp_http_url());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut exports = Exports::default();
            let mut grpc = TraceServiceClient::connect(grpc).await.unwrap();
            let http_client = reqwest::Client::new();
            let mut first = 1_000_000_000;
            while !stop.load(Ordering::SeqCst) {
                let request = request("steady", first, 100);
                let started = Instant::now();
                let outcome = if exports.latencies.len() % 2 == 0 {
                    let mut request = tonic::Request::new(request);
                    request
                        .metadata_mut()
                        .insert("x-scope-orgid", STEADY.parse().unwrap());
                    grpc.export(request)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                } else {
                    match http_client
                        .post(&http)
                        .header("content-type", "application/x-protobuf")
                        .header("x-scope-orgid", STEADY)
                        .body(request.encode_to_vec())
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("OTLP/HTTP {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                };
                exports.latencies.push(started.elapsed());
                match outcome {
                    Ok(()) => exports.acknowledged += 100,
                    Err(e) => exports.failures.push(e),
                }
                first += 100;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            exports
        })
    })
}

/// Asks `/readyz` every 100 ms until `stop`; returns the slowest answer and the failures.
fn readiness_prober(server: &Server, stop: Arc<AtomicBool>) -> JoinHandle<(Duration, Vec<String>)> {
    let url = server.url("/readyz");
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let (mut slowest, mut failures) = (Duration::ZERO, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            match client.get(&url).send() {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => failures.push(format!("readyz {}", r.status())),
                Err(e) => failures.push(format!("readyz: {e}")),
            }
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(100));
        }
        (slowest, failures)
    })
}

/// A runaway's answer: what was asked, the status, the body and how long it took.
struct Answer {
    what: &'static str,
    status: u16,
    body: String,
    took: Duration,
}

/// Sends the request `build` makes on a thread of its own and waits for the answer.
fn runaway(
    what: &'static str,
    build: impl FnOnce(reqwest::blocking::Client) -> reqwest::blocking::RequestBuilder + Send + 'static,
) -> JoinHandle<Answer> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let response = build(client).send().unwrap();
        let status = response.status().as_u16();
        let body = response.text().unwrap();
        Answer {
            what,
            status,
            body,
            took: started.elapsed(),
        }
    })
}

fn runaway_sql(server: &Server, what: &'static str, sql: &'static str) -> JoinHandle<Answer> {
    let url = server.url("/api/sql");
    runaway(what, move |client| {
        client.post(url).json(&json!({ "sql": sql }))
    })
}

fn runaway_get(server: &Server, what: &'static str, path: &str) -> JoinHandle<Answer> {
    let url = server.url(path);
    runaway(what, move |client| client.get(url))
}

/// An HTTP client that starts a runaway and hangs up a second into it.
fn http_walks_away(server: &Server) -> JoinHandle<()> {
    let url = server.url("/api/sql");
    std::thread::spawn(move || {
        let gone = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap()
            .post(url)
            .json(&json!({ "sql": PAIRWISE_REGEX }))
            .send()
            .unwrap_err();
        assert!(gone.is_timeout(), "{gone}");
    })
}

/// Runs `client` with a Flight SQL client of `server` on a thread of its own.
fn with_flight_sql<F>(
    server: &Server,
    client: impl FnOnce(FlightSqlServiceClient<tonic::transport::Channel>) -> F + Send + 'static,
) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()>,
{
    let flight = format!("http://{}", server.flight);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let channel = tonic::transport::Endpoint::from_shared(flight)
                .unwrap()
                .connect()
                .await
                .unwrap();
            client(FlightSqlServiceClient::new(channel)).await;
        });
    })
}

/// A regular expression over every pair of spans: no equal columns, 4 * 10^8 pairs.
const PAIRWISE_REGEX: &str = "SELECT count(*) FROM spans a, spans b \
     WHERE regexp_like(a.span_name || b.attributes['order.id'], '(op-1[0-2]|op-[3-7])order-9+$')";

/// A Flight SQL client that starts a runaway, then closes its connection mid-query.
fn flight_walks_away(server: &Server) -> JoinHandle<()> {
    with_flight_sql(server, |mut sql| async move {
        let info = sql.execute(PAIRWISE_REGEX.into(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let read = sql.do_get(ticket);
        // Walks away a second into the query: the request future and its connection go.
        let waited = tokio::time::timeout(Duration::from_secs(1), read).await;
        assert!(waited.is_err());
    })
}

/// A Flight SQL client that reads a result a batch at a time, slowly; it gets every row.
fn flight_reads_slowly(server: &Server, rows: i64) -> JoinHandle<()> {
    with_flight_sql(server, move |mut sql| async move {
        let query = "SELECT * FROM spans WHERE service_name = 'seed'";
        let info = sql.execute(query.into(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut stream = sql.do_get(ticket).await.unwrap();
        let mut read = 0;
        while let Some(batch) = stream.next().await {
            read += batch.unwrap().num_rows() as i64;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(read, rows);
    })
}

/// The value of an unlabelled (or fully labelled) series in `/metrics`, 0 when absent.
fn metric(server: &Server, series: &str) -> f64 {
    let text = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn check_runaway(answer: &Answer) {
    let body: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|_| panic!("{}: not JSON: {}", answer.what, answer.body));
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        answer.took < LIMIT + SLACK,
        "{} took {:?} (limit {LIMIT:?}): {} {}",
        answer.what,
        answer.took,
        answer.status,
        answer.body
    );
    match answer.status {
        504 => assert!(
            error.contains("time limit of 4s"),
            "{}: {error}",
            answer.what
        ),
        507 => assert!(error.contains("memory limit"), "{}: {error}", answer.what),
        other => panic!("{}: {other} {}", answer.what, answer.body),
    }
}

#[test]
fn runaway_queries_leave_ingest_and_health_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_with(
        &data,
        &[
            "--query-timeout",
            "4s",
            "--query-memory-bytes",
            "268435456",
            "--shutdown-grace",
            "5s",
        ],
    );
    seed(&server);
    assert_eq!(server.count("spans"), 20_000);

    let stop = Arc::new(AtomicBool::new(false));
    let exporter = steady_exporter(&server, Arc::clone(&stop));
    let prober = readiness_prober(&server, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(500));

    // A join whose inputs multiply past the limit is refused before it runs.
    let three_way = runaway_sql(
        &server,
        "cross join of three",
        "SELECT count(*) FROM spans a, spans b, spans c \
         WHERE a.duration_ns + b.duration_ns > c.duration_ns",
    );
    let runaways = vec![
        runaway_sql(&server, "regex over every pair of spans", PAIRWISE_REGEX),
        runaway_sql(
            &server,
            "ORDER BY without LIMIT",
            "SELECT a.span_id, b.span_id AS other, a.attributes FROM spans a, spans b \
             ORDER BY a.duration_ns - b.duration_ns",
        ),
        runaway_sql(
            &server,
            "GROUP BY span ids",
            "SELECT a.span_id, b.span_id, count(*) FROM spans a, spans b \
             WHERE a.duration_ns <> b.duration_ns GROUP BY 1, 2",
        ),
    ];
    let structural = runaway_get(
        &server,
        "TraceQL structural over the window",
        "/api/search?q=%7B%20%7D%20%3E%3E%20%7B%20%7D&lookback=1h&limit=20",
    );
    let walkers = [flight_walks_away(&server), http_walks_away(&server)];
    let slow_reader = flight_reads_slowly(&server, 20_000);

    let refused = three_way.join().unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("--query-max-join-pairs")
            && refused
                .body
                .contains("row pairs, more than the limit of 10000000000"),
        "{}",
        refused.body
    );
    assert!(refused.took < SLACK, "refused after {:?}", refused.took);

    let answers: Vec<Answer> = runaways.into_iter().map(|r| r.join().unwrap()).collect();
    for answer in &answers {
        check_runaway(answer);
    }
    let structural = structural.join().unwrap();
    assert!(
        structural.status == 200 || structural.status == 504,
        "{} {}",
        structural.status,
        structural.body
    );
    assert!(structural.took < LIMIT + SLACK, "{:?}", structural.took);
    for walker in walkers {
        walker.join().unwrap();
    }
    slow_reader.join().unwrap();

    // The cancelled work stops: no task is left on the query threads.
    assert!(
        eventually(Duration::from_secs(2), || metric(
            &server,
            "spanlake_query_tasks"
        ) == 0.0),
        "query tasks still alive: {}",
        metric(&server, "spanlake_query_tasks")
    );
    assert_eq!(metric(&server, "spanlake_queries_running"), 0.0);
    assert!(metric(&server, "spanlake_queries_total{outcome=\"too_large\"}") >= 1.0);
    assert!(
        metric(&server, "spanlake_queries_total{outcome=\"timeout\"}")
            + metric(&server, "spanlake_queries_total{outcome=\"memory\"}")
            >= 3.0
    );
    // The two clients that walked away.
    assert_eq!(
        metric(&server, "spanlake_queries_total{outcome=\"cancelled\"}"),
        2.0
    );

    // SIGTERM while two runaways run: a clean exit within the grace, nothing acknowledged lost.
    let late: Vec<_> = (0..2)
        .map(|_| runaway_sql(&server, "regex at shutdown", PAIRWISE_REGEX))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let exports = exporter.join().unwrap();
    let (slowest_ready, ready_failures) = prober.join().unwrap();
    let mut child = server.child.take().unwrap();
    let stopping = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    for answer in late {
        let answer = answer.join().unwrap();
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(answer.body.contains("shutting down"), "{}", answer.body);
    }
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM; log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}; log: {}", server.log());
    assert!(server.log().contains("flushed; bye"));

    assert!(exports.failures.is_empty(), "{:?}", exports.failures);
    assert!(
        exports.latencies.len() > 100,
        "{} exports",
        exports.latencies.len()
    );
    assert!(
        exports.p99() < Duration::from_secs(1),
        "p99 {:?}",
        exports.p99()
    );
    assert!(ready_failures.is_empty(), "{ready_failures:?}");
    assert!(slowest_ready < Duration::from_secs(1), "{slowest_ready:?}");

    server.restart();
    let (status, body) = server.sql_status("SELECT count(*) AS n FROM spans", Some(STEADY));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["n"].as_i64(),
        Some(exports.acknowledged as i64)
    );
    assert_eq!(server.count("spans"), 20_000);
}

#[test]
fn a_full_queue_answers_429_with_retry_after_on_every_face() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--query-timeout",
            "4s",
            "--query-max-running",
            "1",
            "--query-max-queued",
            "0",
        ],
    );
    seed(&server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let holder = runaway_sql(&server, "the one running query", PAIRWISE_REGEX);
    assert!(eventually(Duration::from_secs(3), || metric(
        &server,
        "spanlake_queries_running"
    ) == 1.0));
    let client = reqwest::blocking::Client::new();
    for path in [
        "/api/search?service=seed",
        "/jaeger/api/services",
        "/jaeger/api/v3/services",
        "/tempo/api/search?q=%7B%7D",
    ] {
        let response = client.get(server.url(path)).send().unwrap();
        assert_eq!(response.status().as_u16(), 429, "{path}");
        assert_eq!(
            response.headers()["retry-after"].to_str().unwrap(),
            "10",
            "{path}"
        );
        let body = response.text().unwrap();
        assert!(body.contains("too many queries"), "{path}: {body}");
    }
    let (status, body) = server.sql_status("SELECT 1", None);
    assert_eq!(status, 429, "{body}");
    // Flight SQL shares the limits.
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.flight))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut sql = FlightSqlServiceClient::new(channel);
        let refused = sql.execute("SELECT 1".into(), None).await.unwrap_err();
        assert!(
            refused.to_string().contains("too many queries"),
            "{refused}"
        );
    });
    check_runaway(&holder.join().unwrap());
    assert!(metric(&server, "spanlake_queries_total{outcome=\"refused\"}") >= 6.0);
    // The turn is given back once the runaway's work has stopped; then queries run.
    assert!(eventually(Duration::from_secs(2), || metric(
        &server,
        "spanlake_queries_running"
    ) == 0.0));
    assert_eq!(server.count("spans"), 20_000);
}
