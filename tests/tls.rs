//! `--tls-cert-file` / `--tls-key-file` on the real binary: every listener (OTLP/HTTP, OTLP/gRPC,
//! the query API and UI, Flight SQL) speaks TLS with the given certificate, plain connections
//! are refused, and a client that never finishes its handshake holds up no one else.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use common::Server;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::json;

const HTTP_TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn otlp_json() -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "tls"}}]},
        "scopeSpans": [{"spans": [{"traceId": HTTP_TRACE, "spanId": "eee19b7ec3c1b174",
            "name": "over-https",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000001000"}]}]
    }]})
    .to_string()
}

fn grpc_request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![7; 8],
                    name: "over-grpc-tls".into(),
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

/// A tonic channel over TLS to `addr`, trusting only `cert_pem` and asking for HTTP/2 by ALPN,
/// as gRPC clients do.
async fn tls_channel(addr: std::net::SocketAddr, cert_pem: &[u8]) -> tonic::transport::Channel {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

#[test]
fn every_listener_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--tls-cert-file",
            cert_file.to_str().unwrap(),
            "--tls-key-file",
            key_file.to_str().unwrap(),
        ],
    );
    let client = server.client();

    // A client that opens a connection and never says a word must not hold up the others.
    let silent = std::net::TcpStream::connect(server.http).unwrap();
    let mut half = std::net::TcpStream::connect(server.otlp_http).unwrap();
    half.write_all(&[0x16, 0x03, 0x01]).unwrap(); // the start of a ClientHello, then nothing

    // OTLP/HTTP over TLS.
    let response = client
        .post(server.otlp_http_url())
        .header("content-type", "application/json")
        .body(otlp_json())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
    // Plain HTTP to a TLS port gets no answer but a closed connection.
    let plain = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/traces", server.otlp_http))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(10))
        .body(otlp_json())
        .send();
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // OTLP/gRPC and Flight SQL over TLS.
    let cert_pem = std::fs::read(&cert_file).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut otlp = TraceServiceClient::new(tls_channel(server.grpc, &cert_pem).await);
        otlp.export(grpc_request()).await.unwrap();

        // A plain-text gRPC client fails to connect or to call.
        let plain = async {
            let mut c = TraceServiceClient::connect(format!("http://{}", server.grpc)).await?;
            c.export(grpc_request())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
            Ok::<_, Box<dyn std::error::Error>>(())
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(10), plain)
                .await
                .is_ok_and(|r| r.is_err()),
            "plain-text gRPC was served"
        );

        let mut sql = FlightSqlServiceClient::new(tls_channel(server.flight, &cert_pem).await);
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
        assert_eq!(n, 2, "the HTTP and the gRPC span");
    });

    // The query API and the UI over TLS.
    let trace: serde_json::Value = client
        .get(server.url(&format!("/api/traces/{HTTP_TRACE}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(trace.to_string().contains("over-https"), "{trace}");
    let page = client.get(server.url("/search")).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("<html"));
    assert_eq!(
        client.get(server.url("/metrics")).send().unwrap().status(),
        200
    );

    // The silent clients were connected all along.
    drop((silent, half));
}

#[test]
fn tls_flags_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--flight-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with {args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&cert, one.cert.pem()).unwrap();
    std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();

    let err = run(&["--tls-cert-file", cert.to_str().unwrap()]);
    assert!(err.contains("--tls-key-file"), "{err}");
    let err = run(&[
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ]);
    assert!(err.contains("do not go together"), "{err}");
    let err = run(&[
        "--tls-cert-file",
        key.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ]);
    assert!(err.contains("no certificate in"), "{err}");
}
