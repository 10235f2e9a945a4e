//! Golden tests: the queries of `testdata/search.golden` run against a fixed set of traces
//! through the real store and DataFusion, compared with the results written under each query.
//! `SPANLAKE_BLESS=1 cargo test -p spanlake-query golden` rewrites the file with what the
//! queries return now (review the diff before committing it).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use spanlake_storage::batch::{
    AttrValue, EventFields, LinkFields, SpanBatchBuilder, SpanFields, SpanKind, StatusCode,
};
use spanlake_storage::{SegmentSource, SpanSink, Store, StoreConfig, TenantId};

use super::search::{SearchRequest, Value, search};
use crate::QueryEngine;
use crate::traces::{Traces, Window};

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/traceql/testdata/search.golden"
);

struct Span {
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &'static str,
    name: &'static str,
    kind: SpanKind,
    start_ms: i64,
    duration_ms: i64,
    status: StatusCode,
    message: &'static str,
    attributes: Vec<(&'static str, AttrValue<'static>)>,
    event: Option<(&'static str, &'static str)>,
    /// An event with a name and no attributes.
    bare_event: Option<&'static str>,
    link_to: Option<u8>,
}

fn span(trace: u8, id: u8, parent: Option<u8>, service: &'static str, name: &'static str) -> Span {
    Span {
        trace,
        id,
        parent,
        service,
        name,
        kind: SpanKind::Internal,
        start_ms: 0,
        duration_ms: 1,
        status: StatusCode::Unset,
        message: "",
        attributes: Vec::new(),
        event: None,
        bare_event: None,
        link_to: None,
    }
}

impl Span {
    fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }
    fn time(mut self, start_ms: i64, duration_ms: i64) -> Self {
        self.start_ms = start_ms;
        self.duration_ms = duration_ms;
        self
    }
    fn error(mut self, message: &'static str) -> Self {
        self.status = StatusCode::Error;
        self.message = message;
        self
    }
    fn ok(mut self) -> Self {
        self.status = StatusCode::Ok;
        self
    }
    fn attr(mut self, key: &'static str, value: AttrValue<'static>) -> Self {
        self.attributes.push((key, value));
        self
    }
}

/// The traces every golden query runs against (described at the top of the golden file).
fn dataset() -> Vec<Span> {
    use SpanKind::*;
    let code = |c| AttrValue::Int(c);
    vec![
        // Trace 1: a checkout whose payment fails.
        span(1, 1, None, "frontend", "GET /checkout")
            .kind(Server)
            .time(0, 200)
            .attr("http.method", AttrValue::Str("GET"))
            .attr("http.status_code", code(500)),
        span(1, 2, Some(1), "frontend", "POST checkout")
            .kind(Client)
            .time(5, 180),
        span(1, 3, Some(2), "checkout", "POST /checkout")
            .kind(Server)
            .time(10, 170)
            .error("payment declined")
            .attr("http.method", AttrValue::Str("POST"))
            .attr("http.status_code", code(502)),
        span(1, 4, Some(3), "checkout", "charge")
            .kind(Client)
            .time(20, 100),
        Span {
            event: Some(("exception", "CardDeclined")),
            ..span(1, 5, Some(4), "payment", "POST /charge")
                .kind(Server)
                .time(25, 90)
                .error("card declined")
                .attr("http.status_code", code(402))
        },
        span(1, 6, Some(3), "checkout", "SELECT orders")
            .kind(Client)
            .time(130, 20)
            .attr("db.system", AttrValue::Str("postgresql")),
        // Trace 2: a fast home page.
        span(2, 7, None, "frontend", "GET /home")
            .kind(Server)
            .time(1000, 30)
            .attr("http.status_code", code(200))
            .attr("expected.code", AttrValue::Double(200.0))
            .attr("cache.hit", AttrValue::Bool(true)),
        Span {
            bare_event: Some("cache miss"),
            ..span(2, 8, Some(7), "frontend", "render")
                .time(1005, 10)
                .attr("ratio", AttrValue::Double(0.5))
                .attr(
                    "int-array",
                    AttrValue::Array(
                        r#"{"values":[{"intValue":"111"},{"intValue":"222"}]}"#.into(),
                    ),
                )
        },
        // Trace 3: the cart, with two cache calls and a link to trace 1.
        span(3, 9, None, "frontend", "GET /cart")
            .kind(Server)
            .time(2000, 120)
            .ok(),
        Span {
            link_to: Some(1),
            ..span(3, 10, Some(9), "cart", "GET /items")
                .kind(Server)
                .time(2010, 50)
                .attr("http.status_code", code(200))
                .attr("http.method", AttrValue::Str("GET"))
                .attr("cart.owner", AttrValue::Str("shop"))
        },
        span(3, 11, Some(10), "cart", "redis GET")
            .kind(Client)
            .time(2015, 5)
            .attr("db.system", AttrValue::Str("redis"))
            .attr("cart.owner", AttrValue::Str("web")),
        span(3, 12, Some(10), "cart", "redis GET")
            .kind(Client)
            .time(2025, 6)
            .attr("db.system", AttrValue::Str("redis")),
        // Trace 4: a consumer whose producer was never received.
        span(4, 13, Some(99), "cart", "consume order")
            .kind(Consumer)
            .time(3000, 40)
            .attr("messaging.system", AttrValue::Str("kafka")),
        // ... and a retry whose parent id is its own id (a broken instrumentation).
        span(4, 14, Some(14), "cart", "retry order").time(3050, 10),
    ]
}

fn batch(spans: &[Span]) -> arrow::array::RecordBatch {
    let mut b = SpanBatchBuilder::new();
    for s in spans {
        let span_id = [s.id; 8];
        let parent = s.parent.map(|p| [p; 8]);
        b.begin_span(&SpanFields {
            trace_id: &[s.trace; 16],
            span_id: &span_id,
            parent_span_id: parent.as_ref().map_or(&[], |p| p.as_slice()),
            service_name: s.service,
            name: s.name,
            kind: s.kind,
            start_unix_nano: T0 + s.start_ms * MS,
            end_unix_nano: T0 + (s.start_ms + s.duration_ms) * MS,
            status_code: s.status,
            status_message: s.message,
            scope_name: "golden",
            scope_version: "1.0",
            ..SpanFields::default()
        });
        for (k, v) in &s.attributes {
            b.attributes().push(k, v);
        }
        let namespace = if s.service == "frontend" {
            "web"
        } else {
            "shop"
        };
        b.resource_attributes()
            .push("service.name", &AttrValue::Str(s.service));
        b.resource_attributes()
            .push("k8s.namespace", &AttrValue::Str(namespace));
        if s.service == "cart" {
            b.scope_attributes()
                .push("library.language", &AttrValue::Str("rust"));
        }
        if s.service == "payment" {
            b.resource_attributes().push(
                "str-array",
                &AttrValue::Array(
                    r#"{"values":[{"stringValue":"value-one"},{"stringValue":"value-three"}]}"#
                        .into(),
                ),
            );
        }
        if let Some((name, kind)) = s.event {
            b.events().begin_event(&EventFields {
                time_unix_nano: T0 + (s.start_ms + 1) * MS,
                name,
                dropped_attributes_count: 0,
            });
            b.events()
                .attributes()
                .push("exception.type", &AttrValue::Str(kind));
            b.events().end_event();
        }
        if let Some(name) = s.bare_event {
            b.events().begin_event(&EventFields {
                time_unix_nano: T0 + (s.start_ms + 2) * MS,
                name,
                dropped_attributes_count: 0,
            });
            b.events().end_event();
        }
        if let Some(trace) = s.link_to {
            b.links().begin_link(&LinkFields {
                trace_id: &[trace; 16],
                span_id: &[trace; 8],
                trace_state: "",
                flags: 0,
                dropped_attributes_count: 0,
            });
            b.links().end_link();
        }
        b.end_span();
    }
    b.finish().unwrap()
}

/// Traces 1 and 2 in a Parquet file, 3 and 4 in memory (WAL), so both paths are queried.
async fn traces() -> (Traces, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.flush_interval = Duration::from_secs(3600);
    let store = Arc::new(Store::open(config).await.unwrap());
    let tenant = TenantId::default_tenant();
    let (flushed, fresh): (Vec<Span>, Vec<Span>) =
        dataset().into_iter().partition(|s| s.trace <= 2);
    store.append(&tenant, batch(&flushed)).await.unwrap();
    store.flush().await.unwrap();
    store.append(&tenant, batch(&fresh)).await.unwrap();
    let source: Arc<dyn SegmentSource> = store;
    let engine = QueryEngine::new(source, crate::QueryLimits::default()).unwrap();
    (Traces::new(Arc::new(engine)), dir)
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => format!("{d:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Array(values) => format!(
            "[{}]",
            values.iter().map(value).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// One line per trace: `t<n>: {span, span} {span}` with the spansets' spans in start order,
/// group values and shown attributes after `by` and `|`.
///
/// A query may start with `@<start>..<end> ` (milliseconds after the first span) to search
/// that window instead of one holding every trace.
async fn run(traces: &Traces, q: &str) -> String {
    let mut window = Window {
        start_ns: T0 - 1000 * MS,
        end_ns: T0 + 10_000 * MS,
    };
    let mut q = q;
    if let Some(rest) = q.strip_prefix('@')
        && let Some((range, query)) = rest.split_once(' ')
        && let Some((start, end)) = range.split_once("..")
    {
        let ms = |text: &str| text.parse::<i64>().expect("a window in milliseconds");
        window = Window {
            start_ns: T0 + ms(start) * MS,
            end_ns: T0 + ms(end) * MS,
        };
        q = query;
    }
    let request = match SearchRequest::parse(q, window, 100, 100) {
        Ok(r) => r,
        Err(e) => return format!("error: {e}\n"),
    };
    let found = match search(traces, &TenantId::default_tenant(), &request).await {
        Ok(outcome) => outcome.traces,
        Err(e) => return format!("error: {e}\n"),
    };
    if found.is_empty() {
        return "(no traces)\n".into();
    }
    let mut found = found;
    found.sort_by(|a, b| a.hit.trace_id.cmp(&b.hit.trace_id));
    let mut out = String::new();
    for trace in found {
        let n = u8::from_str_radix(&trace.hit.trace_id[..2], 16).unwrap();
        let _ = write!(out, "t{n}:");
        for set in &trace.spansets {
            let spans: Vec<String> = set
                .spans
                .iter()
                .map(|s| {
                    let mut text = s.name.clone();
                    for (k, v) in &s.attributes {
                        let _ = write!(text, " {k}={}", value(v));
                    }
                    text
                })
                .collect();
            let _ = write!(out, " {{{}}}", spans.join(", "));
            if !set.group.is_empty() {
                let groups: Vec<String> = set
                    .group
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value(v)))
                    .collect();
                let _ = write!(out, " by {}", groups.join(" "));
            }
            if !set.attributes.is_empty() {
                let shown: Vec<String> = set
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value(v)))
                    .collect();
                let _ = write!(out, " with {}", shown.join(" "));
            }
            if set.matched as usize != set.spans.len() {
                let _ = write!(out, " matched={}", set.matched);
            }
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn golden_queries() {
    let text = std::fs::read_to_string(GOLDEN).unwrap();
    let (traces, _dir) = traces().await;
    let mut header = String::new();
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if cases.is_empty() && (line.starts_with('#') || line.trim().is_empty()) {
            header.push_str(line);
            header.push('\n');
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let query = line
            .strip_prefix("> ")
            .unwrap_or_else(|| panic!("expected a line `> query`, found {line:?}"))
            .to_string();
        let mut expected = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("> ") || next.trim().is_empty() {
                break;
            }
            expected.push_str(next);
            expected.push('\n');
            lines.next();
        }
        cases.push((query, expected));
    }
    let mut blessed = header;
    let mut failures = Vec::new();
    for (query, expected) in &cases {
        let actual = run(&traces, query).await;
        if &actual != expected {
            failures.push(format!("> {query}\nexpected:\n{expected}actual:\n{actual}"));
        }
        let _ = write!(blessed, "> {query}\n{actual}\n");
    }
    if std::env::var_os("SPANLAKE_BLESS").is_some() {
        std::fs::write(GOLDEN, blessed).unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden queries differ (SPANLAKE_BLESS=1 rewrites the file):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn long_and_deep_queries_run_or_fail_cleanly() {
    let (traces, _dir) = traces().await;
    // Grafana's builder writes long chains of conditions.
    let chain = (0..300)
        .map(|i| format!("span.http.status_code != {i}"))
        .collect::<Vec<_>>()
        .join(" && ");
    let long = run(
        &traces,
        &format!("{{ {chain} && name = \"GET /checkout\" }}"),
    )
    .await;
    assert!(long.starts_with("t1: {GET /checkout"), "{long}");
    // Many spansets joined by && and ||: each side is read once, so the work grows with the
    // number of spansets.
    let many = (0..40)
        .map(|i| format!("{{ span.http.status_code != {i} }}"))
        .collect::<Vec<_>>()
        .join(" && ");
    let joined = run(&traces, &format!("{many} && {{ name = \"render\" }}")).await;
    assert_eq!(joined, "t2: {GET /home http.status_code=200, render}\n");
    // Nested structural operators are bounded.
    let nested = format!("{}{{}}", "({} >> ".repeat(40)) + &")".repeat(40);
    let answer = run(&traces, &nested).await;
    assert!(
        answer.contains("nests too many spanset operators"),
        "{answer}"
    );
    // Deep nesting is refused with a message, never a crash.
    for depth in [40, 100, 255, 300] {
        let q = format!(
            "{{ {}name = \"render\"{} }}",
            "!(".repeat(depth),
            ")".repeat(depth)
        );
        let answer = run(&traces, &q).await;
        assert!(
            answer.starts_with("t2:") || answer.starts_with("error: "),
            "depth {depth}: {answer}"
        );
    }
}

#[tokio::test]
async fn metrics_queries_bucket_the_spans() {
    use super::metrics::{Label, RangeRequest, Series, query_range};
    let (traces, _dir) = traces().await;
    let window = Window {
        start_ns: T0,
        end_ns: T0 + 10_000 * MS,
    };
    let run = |q: &'static str| {
        let traces = traces.clone();
        async move {
            let request = RangeRequest::parse(q, window, Some(1000)).unwrap();
            query_range(&traces, &TenantId::default_tenant(), &request)
                .await
                .unwrap()
                .0
        }
    };
    let t = |s: i64| T0 / 1_000_000 + s * 1000;
    let by_label = |series: &[Series]| -> Vec<(String, Vec<(i64, f64)>)> {
        series
            .iter()
            .map(|s| {
                let Label::Str(v) = &s.labels[0].1 else {
                    panic!("a string label")
                };
                (v.clone(), s.samples.clone())
            })
            .collect()
    };

    let counts = run("{ } | count_over_time() by (resource.service.name)").await;
    assert_eq!(counts[0].labels[0].0, "resource.service.name");
    assert_eq!(
        by_label(&counts),
        [
            ("cart".to_string(), vec![(t(2), 3.0), (t(3), 2.0)]),
            ("checkout".to_string(), vec![(t(0), 3.0)]),
            (
                "frontend".to_string(),
                vec![(t(0), 2.0), (t(1), 2.0), (t(2), 1.0)]
            ),
            ("payment".to_string(), vec![(t(0), 1.0)]),
        ]
    );

    let top = run("{ } | count_over_time() by (resource.service.name) | topk(1)").await;
    assert_eq!(
        by_label(&top),
        [
            ("cart".to_string(), vec![(t(2), 3.0), (t(3), 2.0)]),
            ("checkout".to_string(), vec![(t(0), 3.0)]),
            ("frontend".to_string(), vec![(t(1), 2.0)]),
        ]
    );

    // compare(): the error spans of checkout and payment against their others, per value of
    // every attribute.
    let find = |series: &[Series], labels: [(&str, &str); 2]| -> Option<Vec<(i64, f64)>> {
        series
            .iter()
            .find(|s| s.labels == labels.map(|(k, v)| (k.to_string(), Label::Str(v.to_string()))))
            .map(|s| s.samples.clone())
    };
    let scope = r#"{ resource.service.name = "checkout" || resource.service.name = "payment" }"#;
    let compared = run(Box::leak(
        format!("{scope} | compare({{ status = error }})").into_boxed_str(),
    ))
    .await;
    let selection = |k, v| find(&compared, [("__meta_type", "selection"), (k, v)]);
    let baseline = |k, v| find(&compared, [("__meta_type", "baseline"), (k, v)]);
    assert_eq!(selection("status", "error"), Some(vec![(t(0), 2.0)]));
    assert_eq!(baseline("status", "unset"), Some(vec![(t(0), 2.0)]));
    assert_eq!(baseline("status", "error"), None);
    assert_eq!(selection("name", "POST /charge"), Some(vec![(t(0), 1.0)]));
    assert_eq!(baseline("name", "SELECT orders"), Some(vec![(t(0), 1.0)]));
    assert_eq!(
        baseline("resource.service.name", "checkout"),
        Some(vec![(t(0), 2.0)])
    );
    assert_eq!(
        selection("span.http.status_code", "402"),
        Some(vec![(t(0), 1.0)])
    );
    assert!(
        compared
            .iter()
            .all(|s| s.labels[0].0 == "__meta_type" && s.labels.len() == 2),
        "{compared:?}"
    );
    // One value per attribute: the most frequent kept, the rest counted as too many.
    let top = run(Box::leak(
        format!("{scope} | compare({{ status = error }}, 1)").into_boxed_str(),
    ))
    .await;
    assert_eq!(
        find(
            &top,
            [("__meta_type", "selection"), ("name", "POST /charge")]
        ),
        Some(vec![(t(0), 1.0)])
    );
    assert_eq!(
        find(
            &top,
            [("__meta_type", "selection"), ("name", "POST /checkout")]
        ),
        None
    );
    assert_eq!(
        find(
            &top,
            [("__meta_error", "__too_many_values__"), ("name", "nil")]
        ),
        Some(vec![(t(0), 2.0)])
    );
    // A time range the selection must also start in: none of the errors starts in the first
    // nanosecond.
    let ranged = run(Box::leak(
        format!(
            "{scope} | compare({{ status = error }}, 10, {T0}, {})",
            T0 + 1
        )
        .into_boxed_str(),
    ))
    .await;
    assert!(
        ranged
            .iter()
            .all(|s| s.labels[0].1 == Label::Str("baseline".into()))
    );
    assert_eq!(
        find(&ranged, [("__meta_type", "baseline"), ("status", "error")]),
        Some(vec![(t(0), 2.0)])
    );

    for refused in [
        "({ } | compare({ status = error })) * 2",
        "{ } | compare({ status = error }) by (name)",
        "{ } | compare({ status = error }) | topk(2)",
        "{ } | compare({ event:name = \"exception\" })",
    ] {
        let request = RangeRequest::parse(refused, window, Some(1000)).unwrap();
        let error = query_range(&traces, &TenantId::default_tenant(), &request)
            .await
            .unwrap_err();
        assert!(
            matches!(error, crate::Error::BadRequest(_)),
            "{refused}: {error:?}"
        );
    }

    let rate = run("{ status = error } | rate()").await;
    assert_eq!(rate.len(), 1);
    assert_eq!(
        rate[0].labels,
        [("__name__".to_string(), Label::Str("rate".into()))]
    );
    assert_eq!(rate[0].samples, [(t(0), 2.0)]);

    let p = run("{ kind = server } | quantile_over_time(duration, .5, 1)").await;
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[0].labels,
        [
            (
                "__name__".to_string(),
                Label::Str("quantile_over_time".into())
            ),
            ("p".to_string(), Label::Float(0.5))
        ]
    );
    let (at, median) = p[0].samples[0];
    assert_eq!(at, t(0));
    assert!(
        (median - 0.17).abs() < 0.02,
        "median of 0.2, 0.17, 0.09 s: {median}"
    );
    assert_eq!(p[1].samples[0], (t(0), 0.2), "the maximum, in seconds");

    // Comparisons drop the points that fail them, before and after a second stage.
    let busy = run("{ } | count_over_time() by (resource.service.name) > 1").await;
    assert_eq!(
        by_label(&busy),
        [
            ("cart".to_string(), vec![(t(2), 3.0), (t(3), 2.0)]),
            ("checkout".to_string(), vec![(t(0), 3.0)]),
            ("frontend".to_string(), vec![(t(0), 2.0), (t(1), 2.0)]),
        ]
    );
    let top = run("{ } | count_over_time() by (resource.service.name) | topk(1) < 3").await;
    assert_eq!(
        by_label(&top),
        [
            ("cart".to_string(), vec![(t(3), 2.0)]),
            ("frontend".to_string(), vec![(t(1), 2.0)]),
        ]
    );

    // Arithmetic of metrics queries, point by point.
    let scaled = run("({ } | count_over_time()) * 100").await;
    assert_eq!(scaled.len(), 1);
    assert_eq!(
        scaled[0].samples,
        [(t(0), 600.0), (t(1), 200.0), (t(2), 400.0), (t(3), 200.0)]
    );
    let ok_share =
        run("1 - ({ status = error } | count_over_time()) / ({ } | count_over_time())").await;
    assert_eq!(ok_share.len(), 1);
    assert_eq!(
        ok_share[0].samples.len(),
        1,
        "only t(0) has errors: {ok_share:?}"
    );
    assert!((ok_share[0].samples[0].1 - 2.0 / 3.0).abs() < 1e-9);
    let share =
        run("({ } | count_over_time() by (resource.service.name)) / ({ } | count_over_time())")
            .await;
    assert_eq!(
        by_label(&share),
        [
            ("cart".to_string(), vec![(t(2), 0.75), (t(3), 1.0)]),
            ("checkout".to_string(), vec![(t(0), 0.5)]),
            (
                "frontend".to_string(),
                vec![(t(0), 2.0 / 6.0), (t(1), 1.0), (t(2), 0.25)]
            ),
            ("payment".to_string(), vec![(t(0), 1.0 / 6.0)]),
        ]
    );
    let doubled = run("({ } | count_over_time()) + ({ } | count_over_time()) > 5").await;
    assert_eq!(doubled[0].samples, [(t(0), 12.0), (t(2), 8.0)]);

    let bad = RangeRequest::parse("{ } | rate()", window, Some(0));
    assert!(bad.is_err());
    // A day at a 1 ms step is past the most points a series may have.
    let day = Window {
        start_ns: T0,
        end_ns: T0 + 24 * 3600 * 1_000 * MS,
    };
    let too_many = RangeRequest::parse("{ } | rate()", day, Some(1)).unwrap_err();
    assert!(
        too_many.to_string().contains("more than 11000 points"),
        "{too_many}"
    );
}

/// Odd but parseable queries: each answers, or is a bad request; none fails inside.
#[tokio::test]
async fn odd_queries_answer_or_are_bad_requests() {
    let (traces, _dir) = traces().await;
    let window = Window {
        start_ns: T0 - 1000 * MS,
        end_ns: T0 + 10_000 * MS,
    };
    let queries = [
        "{ } | sum(3) = 2",
        "{ } | sum(3) = min(14)",
        "3 = 2",
        "coalesce() | { true }",
        r#"{ .foo = "a" } | 3 > 2"#,
        "{ resource.service.name = nil }",
        "{ true } | by(1)",
        "{ nil = nil }",
        "{ 1 = 2 }",
        r#"{ "a" = "a" }"#,
        "{ true }",
        "{ 1 < 1h }",
        "{ 1 <= 1.1 }",
        "{ duration % 0 = 1 }",
        "{ duration / 0 > 1 }",
        "{ } | count() % 0 = 1",
        "{ } | count() / 0 > 1",
        "{ -minInt < 0 }",
        "{ duration * maxInt > 1 }",
        "{ duration + maxInt > 1 }",
        "{ span.http.status_code * maxInt > 1 }",
        "{ .a ^ 1 = 2 }",
        "{ -.a = 2 }",
        "{ !.a }",
        "{ 2 ^ 2000 > 1 }",
        r#"{ .http.status_code >= "200" }"#,
        "{ span.http.status_code = 1.5 }",
        "{ } | avg(span.http.status_code) > 1",
        "{ } | sum(duration) > 1h",
        "{ } | min(span.ratio) < 1 | max(duration) > 0",
        "{ } | count() > 1 | by(name) | count() = 1",
        "{ } | by(name) | select(span.http.method) | coalesce()",
        "{ } | select(duration, name, kind, status, trace:id, rootName, event:name)",
        "({ } | count() > 1) >> ({ } | by(name))",
        "{ } >> ({ } | by(name) | count() > 1)",
        "{ } | by(span.cache.hit) | count() > 0",
        "{ } | avg(duration) > count()",
        "{ } | count() + avg(duration) > 2 * count()",
        "{ } | count() ^ 2 > -1",
        "{ trace:id = 5 }",
        "{ event:name = nil }",
        "{ link:traceID != nil }",
        "{ name =~ \"a{1000}{1000}\" }",
        "{ } | by(event.foo)",
        "{ } | select(event:name, link:spanID, event.x, childCount)",
        "{ childCount > 0 } >> { event:timeSinceStart > 0 }",
        "{ span.int-array = 1.5 && resource.str-array != \"x\" && .int-array <= 222 }",
        "{ span.int-array = true }",
        "{ .a = .b && .a != span.b && resource.a = .b }",
        "{ event.a = link.b }",
        "{ event:timeSinceStart = 1 }",
        "{ } | avg(childCount) > 0.5",
        "{ } | sum(event:timeSinceStart) > 0",
        "{ } | count() > 0 | { traceDuration > 1ms }",
        "{ } | by(event.exception.type != nil)",
        r#"{ } | select(event:name = "x")"#,
    ];
    let mut failures = Vec::new();
    for q in queries {
        let request = match SearchRequest::parse(q, window, 100, 100) {
            Ok(r) => r,
            Err(crate::Error::BadRequest(_)) => continue,
            Err(e) => {
                failures.push(format!("{q}: {e:?}"));
                continue;
            }
        };
        match search(&traces, &TenantId::default_tenant(), &request).await {
            Ok(_) | Err(crate::Error::BadRequest(_)) => {}
            Err(e) => failures.push(format!("{q}: {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `by()` and `select()` of a condition on events or links say what to do instead, rather
/// than answering with the planner's complaint.
#[tokio::test]
async fn conditions_on_events_in_by_and_select_are_refused_plainly() {
    let (traces, _dir) = traces().await;
    let window = Window {
        start_ns: T0 - 1000 * MS,
        end_ns: T0 + 10_000 * MS,
    };
    for q in [
        "{ } | by(event.exception.type != nil)",
        r#"{ } | select(event:name = "x")"#,
    ] {
        let request = SearchRequest::parse(q, window, 100, 100).unwrap();
        let error = search(&traces, &TenantId::default_tenant(), &request)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cannot take a condition on events or links"),
            "{q}: {error}"
        );
    }
}

/// Odd but parseable metrics queries: each answers, or is a bad request; none fails inside.
#[tokio::test]
async fn odd_metrics_queries_answer_or_are_bad_requests() {
    use super::metrics::{RangeRequest, query_range};
    let (traces, _dir) = traces().await;
    let window = Window {
        start_ns: T0,
        end_ns: T0 + 10_000 * MS,
    };
    let mut failures = Vec::new();
    for q in [
        "{ } | rate() by (event.foo)",
        "{ } | quantile_over_time(name, .5)",
        "{ } | min_over_time(event:timeSinceStart)",
        "{ childCount > 0 } | rate() by (childCount)",
        "{ } | avg_over_time(span.int-array)",
        "{ } | sum_over_time(span.http.status_code) by (span.cache.hit) > 0 | topk(2) < 100",
        "({ } | rate()) / ({ } | rate() by (name))",
        "({ } | rate() by (name)) - ({ } | rate() by (kind))",
        "({ } | quantile_over_time(duration, .5, .9)) * 1000",
        "({ status = error } | rate()) / 0",
        "-({ } | count_over_time())",
        "({ } | rate() | topk(1)) + 1",
        "({ } | sum(3) = 2 | rate()) * 2",
        "({ } | histogram_over_time(duration)) * 2",
    ] {
        let request = match RangeRequest::parse(q, window, Some(1000)) {
            Ok(r) => r,
            Err(crate::Error::BadRequest(_)) => continue,
            Err(e) => {
                failures.push(format!("{q}: {e:?}"));
                continue;
            }
        };
        match query_range(&traces, &TenantId::default_tenant(), &request).await {
            Ok(_) | Err(crate::Error::BadRequest(_)) => {}
            Err(e) => failures.push(format!("{q}: {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
