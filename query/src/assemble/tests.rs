//! Golden tests on hand-built traces. Times are written in milliseconds after [`BASE`] and
//! outputs are rendered as text, so a failure shows the whole picture.

use std::fmt::Write;

use super::*;

const BASE: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn span(
    id: &str,
    parent: Option<&str>,
    service: &str,
    name: &str,
    kind: &str,
    start_ms: i64,
    end_ms: i64,
) -> SpanRecord {
    SpanRecord {
        trace_id: TRACE.to_owned(),
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        trace_state: String::new(),
        service_name: service.to_owned(),
        span_name: name.to_owned(),
        span_kind: kind.to_owned(),
        start_ns: BASE + start_ms * MS,
        end_ns: BASE + end_ms * MS,
        status_code: "UNSET".to_owned(),
        status_message: String::new(),
        attributes: Vec::new(),
        resource_attributes: Vec::new(),
        scope_name: "test".to_owned(),
        scope_attributes: Vec::new(),
        scope_version: "1".to_owned(),
        events: Vec::new(),
        links: Vec::new(),
        flags: 1,
    }
}

fn attr(key: &str, value: &str) -> Attribute {
    Attribute {
        key: key.to_owned(),
        value: value.to_owned(),
        r#type: "string".to_owned(),
    }
}

trait With {
    fn error(self) -> Self;
    fn attr(self, key: &str, value: &str) -> Self;
    fn host(self, name: &str) -> Self;
}

impl With for SpanRecord {
    fn error(mut self) -> Self {
        self.status_code = "ERROR".to_owned();
        self
    }
    fn attr(mut self, key: &str, value: &str) -> Self {
        self.attributes.push(attr(key, value));
        self
    }
    fn host(mut self, name: &str) -> Self {
        self.resource_attributes.push(attr("host.name", name));
        self
    }
}

/// Milliseconds after [`BASE`], with decimals only when needed.
fn ms(ns: i64) -> String {
    let rel = ns - BASE;
    if rel % MS == 0 {
        (rel / MS).to_string()
    } else {
        format!("{:.3}", rel as f64 / MS as f64)
    }
}

/// One line per span: indentation by depth, `name [service] start..end` (adjusted, ms after
/// `BASE`) and whatever was flagged.
fn render(trace: &AssembledTrace) -> String {
    let mut out = String::new();
    for s in &trace.spans {
        write!(
            out,
            "{}{} [{}] {}..{}",
            "  ".repeat(s.depth),
            s.span.span_name,
            s.span.service_name,
            ms(s.adjusted_start_ns),
            ms(s.adjusted_end_ns)
        )
        .unwrap();
        if s.skew_shift_ns != 0 {
            write!(out, " shift={}", human_duration(s.skew_shift_ns)).unwrap();
        }
        if s.orphan {
            out.push_str(" orphan");
        }
        if s.cycle_broken {
            out.push_str(" cycle-cut");
        }
        if s.error_origin {
            out.push_str(" error-origin");
        }
        if s.duplicates > 0 {
            write!(out, " dup={}", s.duplicates).unwrap();
        }
        out.push('\n');
    }
    out
}

fn render_critical_path(trace: &AssembledTrace) -> String {
    let mut out = String::new();
    for seg in &trace.critical_path {
        writeln!(
            out,
            "{} {}..{}",
            trace.spans[seg.span_index].span.span_name,
            ms(seg.start_ns),
            ms(seg.end_ns)
        )
        .unwrap();
    }
    out
}

fn render_missing(trace: &AssembledTrace) -> String {
    let mut out = String::new();
    for m in &trace.missing {
        let name = m
            .span_index
            .map(|i| trace.spans[i].span.span_name.as_str())
            .unwrap_or("-");
        writeln!(
            out,
            "{:?} span={} id={} peer={}",
            m.kind,
            name,
            m.span_id.as_deref().unwrap_or("-"),
            m.peer.as_deref().unwrap_or("-")
        )
        .unwrap();
    }
    out
}

fn warnings(trace: &AssembledTrace) -> String {
    let mut out = String::new();
    for w in &trace.warnings {
        let name = w
            .span_index
            .map(|i| trace.spans[i].span.span_name.as_str())
            .unwrap_or("-");
        writeln!(out, "{name}: {}", w.message).unwrap();
    }
    out
}

fn names(trace: &AssembledTrace, indexes: &[usize]) -> Vec<String> {
    indexes
        .iter()
        .map(|&i| trace.spans[i].span.span_name.clone())
        .collect()
}

#[track_caller]
fn assert_text(actual: &str, expected: &str) {
    let expected = expected.trim_start_matches('\n');
    assert!(
        actual == expected,
        "\n--- expected\n{expected}--- actual\n{actual}---"
    );
}

#[test]
fn builds_the_tree_depth_first_in_start_order() {
    let spans = vec![
        span("c2", Some("b"), "api", "c2", "INTERNAL", 30, 40),
        span("b", Some("a"), "api", "b", "INTERNAL", 10, 50),
        span("d", Some("a"), "api", "d", "INTERNAL", 5, 8),
        span("a", None, "api", "a", "SERVER", 0, 100),
        span("c1", Some("b"), "api", "c1", "INTERNAL", 15, 20),
        // Same start as c1: the span id decides.
        span("c0", Some("b"), "api", "c0", "INTERNAL", 15, 16),
    ];
    let trace = assemble(spans.clone());
    let expected = "
a [api] 0..100
  d [api] 5..8
  b [api] 10..50
    c0 [api] 15..16
    c1 [api] 15..20
    c2 [api] 30..40
";
    assert_text(&render(&trace), expected);
    assert_eq!(trace.spans[0].children, vec![1, 2]);
    assert_eq!(trace.spans[2].children, vec![3, 4, 5]);
    assert_eq!(trace.spans[4].parent_index, Some(2));
    assert_eq!(trace.roots, vec![0]);
    assert!(trace.warnings.is_empty(), "{}", warnings(&trace));

    let mut reversed = spans;
    reversed.reverse();
    assert_eq!(assemble(reversed), trace, "input order does not matter");
}

#[test]
fn merges_identical_copies_and_keeps_distinct_spans_sharing_an_id() {
    let bare = span("b", Some("a"), "api", "query", "CLIENT", 10, 20);
    let full = span("b", Some("a"), "api", "query", "CLIENT", 10, 25)
        .attr("db.system", "postgresql")
        .attr("db.statement", "select 1");
    let spans = vec![
        span("a", None, "api", "root", "SERVER", 0, 100),
        bare.clone(),
        full.clone(),
        bare,
        span("a", None, "api", "root", "SERVER", 0, 100),
        span("c", Some("b"), "db", "execute", "SERVER", 12, 18),
    ];
    let trace = assemble(spans);
    // The child of the shared id hangs under the copy whose time holds its start, the
    // earliest of them.
    let expected = "
root [api] 0..100 dup=1
  query [api] 10..20 dup=1
    execute [db] 12..18
  query [api] 10..25
";
    assert_text(&render(&trace), expected);
    assert_eq!(trace.duplicates_merged, 2);
    assert_eq!(trace.summary.span_count, 4);
    assert!(trace.spans.iter().any(|s| s.span == full));
    let expected = "
root: span a was delivered 2 times; the copies are identical and shown once
query: span b was delivered 2 times; the copies are identical and shown once
query: span id b is shared by 2 different spans of this trace
query: span id b is shared by 2 different spans of this trace
";
    assert_text(&warnings(&trace), expected);
}

#[test]
fn keeps_several_roots_and_orphans() {
    let spans = vec![
        span(
            "o1",
            Some("gone"),
            "worker",
            "late-orphan",
            "SERVER",
            30,
            40,
        ),
        span("r2", None, "cron", "second-root", "INTERNAL", 20, 60),
        span("o2", Some("gone"), "worker", "orphan", "SERVER", 25, 35),
        span("o3", Some("lost"), "worker", "other-orphan", "SERVER", 5, 6),
        span(
            "oc",
            Some("o2"),
            "worker",
            "orphan-child",
            "INTERNAL",
            26,
            30,
        ),
        span("r1", None, "web", "first-root", "SERVER", 10, 50),
        span("r1c", Some("r1"), "web", "render", "INTERNAL", 12, 48),
    ];
    let trace = assemble(spans);
    let expected = "
first-root [web] 10..50
  render [web] 12..48
second-root [cron] 20..60
other-orphan [worker] 5..6 orphan
orphan [worker] 25..35 orphan
  orphan-child [worker] 26..30
late-orphan [worker] 30..40 orphan
";
    assert_text(&render(&trace), expected);
    assert_eq!(
        names(&trace, &trace.roots),
        [
            "first-root",
            "second-root",
            "other-orphan",
            "orphan",
            "late-orphan"
        ]
    );
    let expected = "
MissingParent span=other-orphan id=lost peer=-
MissingParent span=orphan id=gone peer=-
";
    assert_text(&render_missing(&trace), expected);
    let s = &trace.summary;
    assert_eq!(s.root_service.as_deref(), Some("web"));
    assert_eq!(s.root_span_name.as_deref(), Some("first-root"));
    assert_eq!(s.root_index, Some(0));
    assert_eq!((s.root_count, s.orphan_count, s.cycles_broken), (2, 3, 0));
    assert_eq!(s.start_ns, BASE + 5 * MS);
    assert_eq!(s.duration_ns, 55 * MS);
    let services: Vec<(&str, usize)> = s
        .services
        .iter()
        .map(|c| (c.service.as_str(), c.span_count))
        .collect();
    assert_eq!(services, [("worker", 4), ("web", 2), ("cron", 1)]);
}

#[test]
fn without_a_root_the_earliest_orphan_is_the_main_root() {
    let trace = assemble(vec![
        span("b", Some("x"), "svc-b", "b", "SERVER", 20, 30),
        span("a", Some("x"), "svc-a", "a", "SERVER", 10, 30),
    ]);
    assert_eq!(trace.summary.root_span_name.as_deref(), Some("a"));
    assert_eq!(trace.summary.root_service.as_deref(), Some("svc-a"));
    assert_eq!(trace.summary.root_count, 0);
    // One parent id missing, reported once.
    assert_eq!(trace.missing.len(), 1);
}

#[test]
fn breaks_parent_cycles_at_the_earliest_span() {
    let spans = vec![
        span("r", None, "api", "root", "SERVER", 0, 100),
        span("a", Some("b"), "api", "a", "INTERNAL", 20, 30),
        span("b", Some("c"), "api", "b", "INTERNAL", 10, 40),
        span("c", Some("a"), "api", "c", "INTERNAL", 15, 35),
        span("d", Some("b"), "api", "tail", "INTERNAL", 11, 12),
        span("s", Some("s"), "api", "self", "INTERNAL", 50, 60),
    ];
    let trace = assemble(spans);
    let expected = "
root [api] 0..100
b [api] 10..40 cycle-cut
  tail [api] 11..12
  a [api] 20..30
    c [api] 15..35
self [api] 50..60 cycle-cut
";
    assert_text(&render(&trace), expected);
    assert_eq!(trace.summary.cycles_broken, 2);
    assert_eq!(trace.summary.root_count, 1);
    let expected = "
b: parent span c closes a cycle of length 3; cut here
self: parent span s closes a cycle of length 1; cut here
";
    assert_text(&warnings(&trace), expected);
}

#[test]
fn shifts_a_skewed_server_inside_its_client() {
    let spans = vec![
        span("root", None, "frontend", "GET /checkout", "SERVER", 0, 200),
        span(
            "cl",
            Some("root"),
            "frontend",
            "call payments",
            "CLIENT",
            10,
            110,
        ),
        // payments' clock is behind: its server span seems to start 50 ms before the call.
        span("sv", Some("cl"), "payments", "POST /pay", "SERVER", -40, 40),
        span("db", Some("sv"), "payments", "db query", "CLIENT", -30, 30),
        span("fr", Some("db"), "fraud", "score", "SERVER", 0, 20),
        // Already inside its parent: untouched.
        span(
            "cl2",
            Some("root"),
            "frontend",
            "call stock",
            "CLIENT",
            120,
            180,
        ),
        span(
            "sv2",
            Some("cl2"),
            "stock",
            "GET /stock",
            "SERVER",
            125,
            170,
        ),
    ];
    let trace = assemble(spans);
    // The server lasted 80 ms of the client's 100: it gets 10 ms of network on each side,
    // and its own client span moves with it. fraud (another clock) is then checked against
    // the moved span, no longer fits in it, and is centred in it too (as in Jaeger).
    let expected = "
GET /checkout [frontend] 0..200
  call payments [frontend] 10..110
    POST /pay [payments] 20..100 shift=60ms
      db query [payments] 30..90 shift=60ms
        score [fraud] 50..70 shift=50ms
  call stock [frontend] 120..180
    GET /stock [stock] 125..170
";
    assert_text(&render(&trace), expected);
    assert_eq!(
        trace.spans[2].span.start_ns,
        BASE - 40 * MS,
        "raw times are kept"
    );
    let expected = "
POST /pay: clock skew: shifted by 60ms into its parent from frontend
score: clock skew: shifted by 50ms into its parent from payments
";
    assert_text(&warnings(&trace), expected);
}

#[test]
fn a_longer_child_is_only_moved_to_start_with_its_parent() {
    let spans = vec![
        span("cl", None, "web", "publish", "PRODUCER", 0, 10),
        span("co", Some("cl"), "worker", "consume", "CONSUMER", -50, 100),
        span("late", Some("cl"), "mailer", "send", "CONSUMER", 5, 500),
    ];
    let trace = assemble(spans);
    let expected = "
publish [web] 0..10
  consume [worker] 0..150 shift=50ms
  send [mailer] 5..500
";
    assert_text(&render(&trace), expected);
}

#[test]
fn a_different_host_of_the_same_service_is_another_clock() {
    let spans = vec![
        span("a", None, "api", "outer", "CLIENT", 0, 100).host("node-1"),
        span("b", Some("a"), "api", "inner", "SERVER", -20, 60).host("node-2"),
        span("c", Some("a"), "api", "same host", "SERVER", -20, 60).host("node-1"),
        span("d", Some("a"), "api", "no host", "SERVER", -20, 60),
    ];
    let trace = assemble(spans);
    let expected = "
outer [api] 0..100
  same host [api] -20..60
  no host [api] -20..60
  inner [api] 10..90 shift=30ms
";
    assert_text(&render(&trace), expected);
}

#[test]
fn critical_path_of_parallel_children_follows_the_slowest() {
    let spans = vec![
        span("r", None, "api", "root", "SERVER", 0, 100),
        span("a", Some("r"), "api", "fast", "CLIENT", 10, 60),
        span("b", Some("r"), "api", "slow", "CLIENT", 10, 90),
        span("c", Some("r"), "api", "short", "CLIENT", 20, 40),
        span("b1", Some("b"), "db", "query", "SERVER", 30, 80),
    ];
    let trace = assemble(spans);
    let expected = "
root 0..10
slow 10..30
query 30..80
slow 80..90
root 90..100
";
    assert_text(&render_critical_path(&trace), expected);
    let per_span: Vec<(&str, i64)> = trace
        .spans
        .iter()
        .map(|s| (s.span.span_name.as_str(), s.critical_path_ns / MS))
        .collect();
    assert_eq!(
        per_span,
        [
            ("root", 20),
            ("fast", 0),
            ("slow", 30),
            ("query", 50),
            ("short", 0)
        ]
    );
}

#[test]
fn critical_path_of_sequential_children_visits_each() {
    let spans = vec![
        span("r", None, "api", "root", "SERVER", 0, 100),
        span("a", Some("r"), "api", "auth", "CLIENT", 0, 30),
        span("b", Some("r"), "api", "load", "CLIENT", 30, 70),
        span("c", Some("r"), "api", "save", "CLIENT", 75, 95),
        // Ends after the root: only its part inside the root counts.
        span("d", Some("r"), "api", "flush", "INTERNAL", 96, 120),
    ];
    let trace = assemble(spans);
    let expected = "
auth 0..30
load 30..70
root 70..75
save 75..95
root 95..96
flush 96..100
";
    assert_text(&render_critical_path(&trace), expected);
    let total: i64 = trace.spans.iter().map(|s| s.critical_path_ns).sum();
    assert_eq!(total, 100 * MS, "the path covers the root exactly");
}

#[test]
fn critical_path_goes_back_only_to_children_finished_by_then() {
    // As in Jaeger: once on `late`, the walk returns to the root at 60 and looks for a child
    // that had finished by then; `early` had not (it ran until 70), so the root's own time is
    // on the path before `late`, not `early`.
    let spans = vec![
        span("r", None, "api", "root", "SERVER", 0, 100),
        span("a", Some("r"), "api", "early", "CLIENT", 10, 70),
        span("b", Some("r"), "api", "late", "CLIENT", 60, 90),
    ];
    let expected = "
root 0..60
late 60..90
root 90..100
";
    assert_text(&render_critical_path(&assemble(spans)), expected);
}

#[test]
fn critical_path_ignores_message_consumers() {
    let spans = vec![
        span("r", None, "api", "root", "SERVER", 0, 100),
        span("p", Some("r"), "api", "publish", "PRODUCER", 80, 90),
        // Runs on after its producer returned; does not hold up the request.
        span("q", Some("p"), "worker", "consume", "CONSUMER", 85, 150),
    ];
    let expected = "
root 0..80
publish 80..90
root 90..100
";
    assert_text(&render_critical_path(&assemble(spans)), expected);
}

#[test]
fn measures_the_network_around_each_call() {
    let spans = vec![
        span("r", None, "frontend", "GET /", "SERVER", 0, 100),
        span("c", Some("r"), "frontend", "call api", "CLIENT", 10, 90),
        span("s", Some("c"), "api", "handle", "SERVER", 12, 85),
        // A retry: the client span caused two server spans.
        span("s2", Some("c"), "api", "handle retry", "SERVER", 50, 88),
        span("p", Some("r"), "frontend", "enqueue", "PRODUCER", 91, 92),
        span("q", Some("p"), "worker", "dequeue", "CONSUMER", 95, 99),
    ];
    let trace = assemble(spans);
    let hops: Vec<String> = trace
        .hops
        .iter()
        .map(|h| {
            format!(
                "{} [{}] -> {} [{}] before={} after={}",
                trace.spans[h.client_index].span.span_name,
                h.client_service,
                trace.spans[h.server_index].span.span_name,
                h.server_service,
                human_duration(h.gap_before_ns),
                human_duration(h.gap_after_ns)
            )
        })
        .collect();
    assert_eq!(
        hops,
        [
            "call api [frontend] -> handle [api] before=2ms after=5ms",
            "call api [frontend] -> handle retry [api] before=40ms after=2ms",
            "enqueue [frontend] -> dequeue [worker] before=4ms after=-7ms",
        ]
    );
}

#[test]
fn the_deepest_error_is_the_origin() {
    let spans = vec![
        span("r", None, "frontend", "GET /", "SERVER", 0, 100).error(),
        span("c", Some("r"), "frontend", "call api", "CLIENT", 10, 90).error(),
        span("s", Some("c"), "api", "handle", "SERVER", 12, 85).error(),
        span("d", Some("s"), "api", "db", "CLIENT", 20, 30).error(),
        span("e", Some("s"), "api", "cache", "CLIENT", 40, 50),
        span("f", Some("r"), "frontend", "render", "INTERNAL", 91, 99).error(),
    ];
    let trace = assemble(spans);
    let expected = "
GET / [frontend] 0..100
  call api [frontend] 10..90
    handle [api] 12..85
      db [api] 20..30 error-origin
      cache [api] 40..50
  render [frontend] 91..99 error-origin
";
    assert_text(&render(&trace), expected);
    assert_eq!(names(&trace, &trace.error_origins), ["db", "render"]);
    assert_eq!(trace.summary.error_count, 5);
}

#[test]
fn reports_callees_that_sent_no_spans() {
    let spans = vec![
        span("r", None, "shop", "GET /cart", "SERVER", 0, 100),
        span("a", Some("r"), "shop", "SELECT cart", "CLIENT", 10, 20)
            .attr("db.system", "postgresql")
            .attr("server.address", "pg-1"),
        span("b", Some("r"), "shop", "GET prices", "CLIENT", 30, 40)
            .attr("server.address", "prices.internal")
            .attr("peer.service", "prices"),
        span("c", Some("r"), "shop", "HGET", "CLIENT", 45, 46).attr("db.system", "redis"),
        span("d", Some("r"), "shop", "call ok", "CLIENT", 50, 60),
        span("e", Some("d"), "stock", "handled", "SERVER", 51, 59),
        span("f", Some("r"), "shop", "publish", "PRODUCER", 70, 71),
        span("g", Some("r"), "shop", "anonymous", "CLIENT", 80, 90),
    ];
    let trace = assemble(spans);
    let expected = "
UninstrumentedCallee span=SELECT cart id=- peer=pg-1
UninstrumentedCallee span=GET prices id=- peer=prices
UninstrumentedCallee span=HGET id=- peer=redis
UninstrumentedCallee span=publish id=- peer=-
UninstrumentedCallee span=anonymous id=- peer=-
";
    assert_text(&render_missing(&trace), expected);
}

#[test]
fn serializes_for_the_ui() {
    let spans = vec![
        span("r", None, "web", "GET /", "SERVER", 0, 10).attr("http.method", "GET"),
        span("c", Some("x"), "web", "call", "CLIENT", 2, 8),
    ];
    let trace = assemble(spans);
    let json = serde_json::to_value(&trace).unwrap();
    let root = &json["spans"][0];
    assert_eq!(root["span_id"], "r", "span fields are flattened");
    assert_eq!(root["start_ns"], BASE);
    assert_eq!(root["adjusted_start_ns"], BASE);
    assert_eq!(root["attributes"][0]["type"], "string");
    assert_eq!(json["missing"][0]["kind"], "missing_parent");
    assert_eq!(json["missing"][0]["span_id"], "x");
    assert_eq!(json["missing"][1]["kind"], "uninstrumented_callee");
    assert!(json["missing"][1].get("span_id").is_none());
    let back: AssembledTrace = serde_json::from_value(json).unwrap();
    assert_eq!(back, trace);
}

#[test]
fn an_empty_trace_is_empty() {
    let trace = assemble(Vec::new());
    assert!(trace.spans.is_empty() && trace.critical_path.is_empty());
    assert_eq!(trace.summary.root_index, None);
    assert_eq!(trace.summary.duration_ns, 0);
}

#[test]
fn handles_a_200k_span_wide_trace() {
    const N: i64 = 200_000;
    let mut spans = vec![span("root", None, "fanout", "root", "SERVER", 0, N + 10)];
    spans.extend((0..N - 1).map(|i| {
        let id = format!("{:016x}", i + 1);
        // Every other child is on another service; the first starts before the root.
        let service = if i % 2 == 0 { "leaf" } else { "fanout" };
        span(&id, Some("root"), service, "child", "CLIENT", i - 1, i + 5)
    }));
    let trace = assemble(spans);
    assert_eq!(trace.summary.span_count, N as usize);
    assert_eq!(trace.spans[0].children.len(), N as usize - 1);
    assert_eq!(trace.summary.max_depth, 1);
    assert_eq!(trace.missing.len(), N as usize - 1);
    let first = trace
        .spans
        .iter()
        .find(|s| s.span.span_id == format!("{:016x}", 1))
        .unwrap();
    // Shorter than the root and sticking out: centred in it.
    assert_eq!(first.skew_shift_ns, (N + 10 - 6) * MS / 2 + MS);
    let total: i64 = trace.spans.iter().map(|s| s.critical_path_ns).sum();
    assert_eq!(total, (N + 10) * MS);
}

#[test]
fn handles_a_10k_deep_chain() {
    const DEPTH: usize = 10_000;
    let spans: Vec<SpanRecord> = (0..DEPTH)
        .map(|i| {
            let parent = (i > 0).then(|| format!("{i:016x}"));
            let service = if i % 2 == 0 { "ping" } else { "pong" };
            let start = i as i64;
            let end = 2 * DEPTH as i64 - i as i64;
            span(
                &format!("{:016x}", i + 1),
                parent.as_deref(),
                service,
                "hop",
                "CLIENT",
                start,
                end,
            )
        })
        .rev()
        .collect();
    let trace = assemble(spans);
    assert_eq!(trace.summary.span_count, DEPTH);
    assert_eq!(trace.summary.max_depth, DEPTH - 1);
    assert_eq!(trace.roots, vec![0]);
    assert_eq!(trace.spans[DEPTH - 1].depth, DEPTH - 1);
    assert!(trace.spans.iter().all(|s| s.skew_shift_ns == 0));
    // Each span waits on its child in the middle, and the deepest runs alone.
    assert_eq!(trace.critical_path.len(), 2 * DEPTH - 1);
    let total: i64 = trace.spans.iter().map(|s| s.critical_path_ns).sum();
    assert_eq!(total, 2 * DEPTH as i64 * MS);
}

#[test]
fn formats_durations_for_people() {
    assert_eq!(human_duration(0), "0ns");
    assert_eq!(human_duration(-3), "-3ns");
    assert_eq!(human_duration(250_000), "250µs");
    assert_eq!(human_duration(50 * MS), "50ms");
    assert_eq!(human_duration(-1_500 * MS), "-1.5s");
    assert_eq!(human_duration(1_234_567), "1.234567ms");
}

#[test]
fn an_empty_or_all_zero_parent_id_means_no_parent() {
    let trace = assemble(vec![
        span("a", Some(""), "api", "a", "SERVER", 0, 10),
        span("b", Some("0000000000000000"), "api", "b", "SERVER", 20, 30),
    ]);
    assert_eq!(trace.summary.root_count, 2);
    assert!(trace.missing.is_empty() && trace.warnings.is_empty());
}
