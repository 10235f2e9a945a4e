//! A small shop whose requests cross five instrumented services and a database that is not,
//! sent through the real OpenTelemetry Rust SDK over OTLP/gRPC. The UI tests browse it.
//!
//! frontend  GET /checkout (SERVER)
//! └ frontend  POST /api/checkout (CLIENT)
//!   └ checkout  POST /api/checkout (SERVER)
//!     ├ checkout  GET /stock (CLIENT) → inventory GET /stock (SERVER) → reserve (INTERNAL)
//!     ├ checkout  POST /charge (CLIENT) → payments POST /charge (SERVER)
//!     │                                    └ payments INSERT charges (CLIENT, db.system=postgresql: uninstrumented)
//!     └ checkout  order.confirmed send (PRODUCER) → email order.confirmed process (CONSUMER)
//!
//! In the failing variant the INSERT fails, and the error climbs to the root.

#![allow(dead_code)] // shared by several test binaries, each using a part

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span, SpanContext, SpanKind, Status, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

pub const SERVICES: [&str; 5] = ["frontend", "checkout", "inventory", "payments", "email"];

/// One exporting SDK per service.
pub struct Shop {
    rt: tokio::runtime::Runtime,
    providers: Vec<SdkTracerProvider>,
}

/// The traces sent: their ids and whether they failed.
#[derive(Debug, Clone)]
pub struct SentTrace {
    pub trace_id: String,
    pub failed: bool,
    pub duration_ms: u64,
}

impl Shop {
    pub fn new(grpc_endpoint: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let providers = SERVICES
            .iter()
            .map(|service| {
                let exporter = rt.block_on(async {
                    SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(grpc_endpoint)
                        .build()
                        .unwrap()
                });
                SdkTracerProvider::builder()
                    .with_resource(
                        Resource::builder()
                            .with_service_name(service.to_string())
                            .with_attribute(KeyValue::new("deployment.environment", "test"))
                            .build(),
                    )
                    .with_batch_exporter(exporter)
                    .build()
            })
            .collect();
        Shop { rt, providers }
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &self,
        service: usize,
        name: &str,
        kind: SpanKind,
        parent: Option<&SpanContext>,
        start: SystemTime,
        end: SystemTime,
        attributes: Vec<KeyValue>,
        error: Option<&str>,
    ) -> SpanContext {
        // A scope with attributes, as instrumentation libraries describe themselves.
        let tracer = self.providers[service].tracer_with_scope(
            InstrumentationScope::builder("shop")
                .with_version("1.0")
                .with_attributes([KeyValue::new("shop.module", "orders")])
                .build(),
        );
        let builder = tracer
            .span_builder(name.to_string())
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes);
        let mut span = match parent {
            Some(p) => builder
                .start_with_context(&tracer, &Context::new().with_remote_span_context(p.clone())),
            None => builder.start(&tracer),
        };
        if let Some(message) = error {
            span.set_status(Status::error(message.to_string()));
            span.add_event(
                "exception",
                vec![KeyValue::new("exception.message", message.to_string())],
            );
        }
        let context = span.span_context().clone();
        span.end_with_timestamp(end);
        context
    }

    /// One checkout request starting at `base`; `slow_ms` is the payment's latency.
    pub fn checkout(&self, base: SystemTime, slow_ms: u64, fail: bool) -> SentTrace {
        let at = |ms: u64| base + Duration::from_millis(ms);
        let pay_end = 30 + slow_ms;
        let total = pay_end + 40;
        let err = |m: &'static str| fail.then_some(m);
        let root = self.span(
            0,
            "GET /checkout",
            SpanKind::Server,
            None,
            at(0),
            at(total),
            vec![
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("http.response.status_code", if fail { 502 } else { 200 }),
                KeyValue::new("user.tier", "gold"),
            ],
            err("payment failed"),
        );
        let call = self.span(
            0,
            "POST /api/checkout",
            SpanKind::Client,
            Some(&root),
            at(2),
            at(total - 2),
            vec![KeyValue::new("server.address", "checkout")],
            err("502 Bad Gateway"),
        );
        let serve = self.span(
            1,
            "POST /api/checkout",
            SpanKind::Server,
            Some(&call),
            at(4),
            at(total - 4),
            vec![KeyValue::new("http.route", "/api/checkout")],
            err("charge failed"),
        );
        let stock = self.span(
            1,
            "GET /stock",
            SpanKind::Client,
            Some(&serve),
            at(6),
            at(26),
            vec![],
            None,
        );
        let stock_serve = self.span(
            2,
            "GET /stock",
            SpanKind::Server,
            Some(&stock),
            at(8),
            at(24),
            vec![KeyValue::new("sku", "B00-CHAIR")],
            None,
        );
        self.span(
            2,
            "reserve",
            SpanKind::Internal,
            Some(&stock_serve),
            at(10),
            at(20),
            vec![],
            None,
        );
        let charge = self.span(
            1,
            "POST /charge",
            SpanKind::Client,
            Some(&serve),
            at(28),
            at(pay_end + 2),
            vec![KeyValue::new("server.address", "payments")],
            err("upstream error"),
        );
        let charge_serve = self.span(
            3,
            "POST /charge",
            SpanKind::Server,
            Some(&charge),
            at(30),
            at(pay_end),
            vec![KeyValue::new("payment.amount", 129.5)],
            err("insert failed"),
        );
        self.span(
            3,
            "INSERT charges",
            SpanKind::Client,
            Some(&charge_serve),
            at(32),
            at(pay_end - 2),
            vec![
                KeyValue::new("db.system", "postgresql"),
                KeyValue::new("db.statement", "INSERT INTO charges VALUES ($1, $2)"),
            ],
            err("duplicate key value violates unique constraint \"charges_pkey\""),
        );
        let send = self.span(
            1,
            "order.confirmed send",
            SpanKind::Producer,
            Some(&serve),
            at(pay_end + 4),
            at(pay_end + 8),
            vec![KeyValue::new("messaging.system", "kafka")],
            None,
        );
        self.span(
            4,
            "order.confirmed process",
            SpanKind::Consumer,
            Some(&send),
            at(pay_end + 10),
            at(pay_end + 30),
            vec![KeyValue::new("messaging.system", "kafka")],
            None,
        );
        SentTrace {
            trace_id: root.trace_id().to_string(),
            failed: fail,
            duration_ms: total,
        }
    }

    /// Flushes every SDK's batch; returns once all spans are acknowledged.
    pub fn flush(&self) {
        for p in &self.providers {
            p.force_flush().unwrap();
        }
    }

    /// A fast, a slow and a failing checkout plus a few more, spread over the last minutes.
    pub fn send_sample(&self) -> Vec<SentTrace> {
        let now = SystemTime::now();
        let plan: [(u64, u64, bool); 6] = [
            (300, 40, false),
            (240, 900, false),
            (200, 120, true),
            (150, 60, false),
            (90, 450, false),
            (30, 75, true),
        ];
        let sent = plan
            .iter()
            .map(|&(ago_s, slow_ms, fail)| {
                self.checkout(now - Duration::from_secs(ago_s), slow_ms, fail)
            })
            .collect();
        self.flush();
        sent
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        for p in &self.providers {
            let _ = p.shutdown();
        }
        let _ = &self.rt;
    }
}
