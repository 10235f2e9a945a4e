//! `--auth-token-file` on the real binary: OTLP over HTTP and gRPC, the query API, the UI and
//! Flight SQL all want a bearer token, and a token reaches only its own tenant.

mod common;

use arrow_flight::sql::client::FlightSqlServiceClient;
use common::Server;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use reqwest::blocking::Client;
use serde_json::json;

fn otlp_json(trace: &str) -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "auth"}}]},
        "scopeSpans": [{"spans": [{"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "op",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000001000"}]}]
    }]})
    .to_string()
}

fn grpc_request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![9; 16],
                    span_id: vec![9; 8],
                    name: "grpc".into(),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_000_001_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn bearer_tokens_guard_every_listener_and_pick_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "s3cret team-a\nother team-b\n").unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--auth-token-file", tokens.to_str().unwrap()],
    );
    let client = Client::new();
    let post = |token: Option<&str>, tenant: Option<&str>| {
        let mut request = client
            .post(server.otlp_http_url())
            .header("content-type", "application/json")
            .body(otlp_json("5b8efff798038103d269b633813fc60c"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(t) = tenant {
            request = request.header("X-Scope-OrgID", t);
        }
        request.send().unwrap()
    };

    // OTLP/HTTP.
    let refused = post(None, None);
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_eq!(post(Some("guess"), None).status(), 401);
    assert_eq!(post(Some("s3cret"), Some("team-b")).status(), 403);
    assert_eq!(post(Some("s3cret"), None).status(), 200);

    // OTLP/gRPC and Flight SQL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let grpc = server.grpc_url();
    let flight = format!("http://{}", server.flight);
    rt.block_on(async {
        let mut otlp = TraceServiceClient::connect(grpc).await.unwrap();
        let denied = otlp.export(grpc_request()).await.unwrap_err();
        assert_eq!(denied.code(), tonic::Code::Unauthenticated);
        let mut request = tonic::Request::new(grpc_request());
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        otlp.export(request).await.unwrap();

        let channel = tonic::transport::Endpoint::from_shared(flight)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut sql = FlightSqlServiceClient::new(channel);
        let denied = sql
            .execute("SELECT count(*) FROM spans".into(), None)
            .await
            .unwrap_err();
        assert!(denied.to_string().contains("unauthenticated"), "{denied}");
        sql.set_header("authorization", "Bearer s3cret");
        let info = sql
            .execute("SELECT count(*) AS n FROM spans".into(), None)
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches: Vec<_> = sql
            .do_get(ticket)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
            batches[0].column(0),
        )
        .value(0);
        assert_eq!(n, 2, "team-a's HTTP and gRPC spans");
    });

    // The query API and the UI.
    let sql = |token: Option<&str>, tenant: Option<&str>| {
        let mut request = client
            .post(server.url("/api/sql"))
            .json(&json!({"sql": "SELECT count(*) AS n FROM spans"}));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(t) = tenant {
            request = request.header("X-Scope-OrgID", t);
        }
        request.send().unwrap()
    };
    assert_eq!(sql(None, None).status(), 401);
    assert_eq!(sql(Some("s3cret"), Some("team-b")).status(), 403);
    let count =
        |token| sql(Some(token), None).json::<serde_json::Value>().unwrap()["data"][0]["n"].clone();
    assert_eq!(count("s3cret"), 2);
    assert_eq!(count("other"), 0, "team-b sees none of team-a's spans");
    assert_eq!(
        client.get(server.url("/search")).send().unwrap().status(),
        401
    );
    assert_eq!(
        client
            .get(server.url("/search"))
            .bearer_auth("s3cret")
            .send()
            .unwrap()
            .status(),
        200
    );
    // Probes and scrapers need no token.
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            client.get(server.url(open)).send().unwrap().status(),
            200,
            "{open}"
        );
    }
}
