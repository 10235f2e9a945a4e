//! A synthetic but realistic tracing workload: multi-service call chains with the attributes real
//! instrumentation sets, grouped into OTLP export requests the way SDKs batch them.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Shape of the generated traffic.
#[derive(Debug, Clone)]
pub struct Workload {
    pub services: usize,
    pub spans_per_trace: usize,
    pub spans_per_request: usize,
    /// Fraction of traces with an error.
    pub error_rate: f64,
    /// Children per span: `Some(k)` builds k-ary call trees (depth grows as log_k of the
    /// trace's size); `None` gives each span a random earlier parent.
    pub fan_out: Option<usize>,
    /// Attributes added to every span beyond the ~10 of HTTP and DB instrumentation.
    pub extra_attributes: usize,
    /// Length of each extra attribute's (random) string value, to vary span size.
    pub extra_attribute_bytes: usize,
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            services: 8,
            spans_per_trace: 10,
            spans_per_request: 512,
            error_rate: 0.05,
            fan_out: None,
            extra_attributes: 0,
            extra_attribute_bytes: 16,
            seed: 42,
        }
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

const ROUTES: &[&str] = &[
    "/api/cart",
    "/api/checkout",
    "/api/users/{id}",
    "/api/products",
    "/api/products/{id}",
    "/api/orders/{id}",
    "/api/search",
    "/healthz",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const TABLES: &[&str] = &["orders", "users", "carts", "products", "payments"];

impl Workload {
    /// Export requests holding `total_spans` spans, with timestamps ending near `now_ns`.
    pub fn requests(&self, total_spans: usize, now_ns: u64) -> Vec<ExportTraceServiceRequest> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let services: Vec<String> = (0..self.services)
            .map(|n| format!("service-{n:02}"))
            .collect();
        // Spans are produced per service, as each service's SDK batches its own.
        let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); self.services];
        let mut requests = Vec::new();
        let mut made = 0;
        while made < total_spans {
            let trace_id: [u8; 16] = rng.random();
            let n = self.spans_per_trace.min(total_spans - made);
            let trace_start = now_ns - rng.random_range(0..3_600_000_000_000u64);
            let failing = rng.random_bool(self.error_rate);
            // Span j's parent is a random earlier span: a tree of calls across services.
            let mut ids: Vec<[u8; 8]> = Vec::with_capacity(n);
            let mut bounds: Vec<(u64, u64)> = Vec::with_capacity(n);
            for j in 0..n {
                let id: [u8; 8] = rng.random::<u64>().max(1).to_be_bytes();
                let parent = (j > 0).then(|| match self.fan_out {
                    Some(k) => (j - 1) / k.max(1),
                    None => rng.random_range(0..j),
                });
                let (start, end) = match parent {
                    None => (
                        trace_start,
                        trace_start + rng.random_range(5_000_000..800_000_000u64),
                    ),
                    Some(p) => {
                        let (ps, pe) = bounds[p];
                        let len = (pe - ps).max(2);
                        let start = ps + rng.random_range(0..len / 2);
                        (start, start + rng.random_range(1..=(pe - start).max(1)))
                    }
                };
                let service = if j == 0 {
                    0
                } else {
                    rng.random_range(0..self.services)
                };
                let client = parent.is_some() && rng.random_bool(0.5);
                let route = ROUTES[rng.random_range(0..ROUTES.len())];
                let method = METHODS[rng.random_range(0..METHODS.len())];
                let error = failing && j == n - 1;
                let status_code: i64 = if error { 500 } else { 200 };
                let mut attributes = vec![
                    s("http.request.method", method),
                    s("http.route", route),
                    i("http.response.status_code", status_code),
                    s("url.scheme", "https"),
                    s("server.address", format!("{}.internal", services[service])),
                    i("server.port", 8080),
                    s("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                    s(
                        "enduser.id",
                        format!("user-{}", rng.random_range(0..100_000)),
                    ),
                    s("session.id", format!("{:016x}", rng.random::<u64>())),
                ];
                if client {
                    let table = TABLES[rng.random_range(0..TABLES.len())];
                    attributes.push(s("db.system", "postgresql"));
                    attributes.push(s(
                        "db.query.text",
                        format!("SELECT * FROM {table} WHERE id = $1"),
                    ));
                } else {
                    attributes.push(i("http.response.body.size", rng.random_range(100..50_000)));
                }
                for n in 0..self.extra_attributes {
                    let value: String = (0..self.extra_attribute_bytes)
                        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                        .collect();
                    attributes.push(s(&format!("app.extra.{n}"), value));
                }
                let span = Span {
                    trace_id: trace_id.to_vec(),
                    span_id: id.to_vec(),
                    parent_span_id: parent.map(|p| ids[p].to_vec()).unwrap_or_default(),
                    name: if client {
                        "SELECT".to_string()
                    } else {
                        format!("{method} {route}")
                    },
                    kind: if client {
                        span::SpanKind::Client as i32
                    } else if parent.is_none() {
                        span::SpanKind::Server as i32
                    } else {
                        span::SpanKind::Internal as i32
                    },
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes,
                    status: error.then(|| Status {
                        code: 2,
                        message: "upstream failed".into(),
                    }),
                    flags: 0x101,
                    ..Default::default()
                };
                ids.push(id);
                bounds.push((start, end));
                per_service[service].push(span);
            }
            made += n;
            let buffered: usize = per_service.iter().map(Vec::len).sum();
            if buffered >= self.spans_per_request || made >= total_spans {
                requests.push(self.request(&services, &mut per_service));
            }
        }
        requests
    }

    fn request(
        &self,
        services: &[String],
        per_service: &mut [Vec<Span>],
    ) -> ExportTraceServiceRequest {
        let resource_spans = per_service
            .iter_mut()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(n, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s("service.name", services[n].clone()),
                        s("service.version", "1.4.2"),
                        s("host.name", format!("{}-7d9f8b-x{n}", services[n])),
                        s("deployment.environment.name", "production"),
                        s("telemetry.sdk.language", "rust"),
                        s("telemetry.sdk.name", "opentelemetry"),
                        s("telemetry.sdk.version", "0.33.0"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "opentelemetry-instrumentation-http".into(),
                        version: "0.33.0".into(),
                        ..Default::default()
                    }),
                    spans: std::mem::take(spans),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }
}
