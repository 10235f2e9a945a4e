//! `spanlake serve`: opens the store (replaying the WAL), starts the OTLP receivers and the
//! query API, and on SIGTERM/SIGINT stops accepting, drains requests in flight and flushes
//! everything to Parquet before exiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use spanlake_collector::http::HttpLimits;
use spanlake_collector::{Receiver, ReceiverLimits};
use spanlake_query::{AdmissionLimits, QueryEngine, QueryLimits};
use spanlake_storage::{SegmentSource, SpanSink, Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use tonic::service::interceptor::InterceptedService;

use crate::auth::Tokens;
use crate::cli::ServeArgs;
use crate::tls::{Incoming, Tls};

#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))?;
    tracing::info!(addr = %listener.local_addr()?, "{what} listening");
    Ok(listener)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Puts the token check in front of `router` when auth is on.
fn guarded(router: Router, tokens: &Option<Tokens>) -> Router {
    match tokens {
        Some(tokens) => router.layer(axum::middleware::from_fn_with_state(
            tokens.clone(),
            crate::auth::http,
        )),
        None => router,
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let telemetry = crate::telemetry::Telemetry::install()?;
    let tokens = args
        .auth_token_file
        .as_deref()
        .map(Tokens::load)
        .transpose()?;
    if tokens.is_some() {
        tracing::info!("bearer-token auth is on");
    }
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => {
            tracing::info!(cert = %cert.display(), "TLS is on for every listener");
            Some(Tls::load(cert, key)?)
        }
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert-file and --tls-key-file go together: give both or neither"),
    };
    let health = Health {
        ready: Arc::new(AtomicBool::new(false)),
    };
    // The query port answers /healthz while the WAL is replayed; the rest waits for the store.
    let http_listener = bind(args.http_addr, "query API").await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let app: Arc<std::sync::OnceLock<Router>> = Arc::new(std::sync::OnceLock::new());
    let app_for_fallback = Arc::clone(&app);
    let http_router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health.clone())
        .merge(
            Router::new()
                .route("/metrics", get(crate::telemetry::render))
                .with_state(telemetry.clone()),
        )
        .fallback(move |request: axum::extract::Request| {
            let app = app_for_fallback.get().cloned();
            async move {
                match app {
                    Some(router) => {
                        use tower::ServiceExt;
                        router.oneshot(request).await.into_response()
                    }
                    None => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "starting: replaying the write-ahead log\n",
                    )
                        .into_response(),
                }
            }
        });
    let http_server = tokio::spawn(
        axum::serve(Incoming::new(http_listener, tls.clone())?, http_router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );

    let mut config = StoreConfig::new(&args.data_dir);
    config.flush_interval = args.flush_interval;
    config.flush_bytes = args.flush_bytes;
    config.max_buffer_bytes = args.max_buffer_bytes;
    config.retention = args.retention;
    config.retention_interval = args.retention_interval;
    config.deletion_grace = args.deletion_grace;
    config.compaction_interval =
        (!args.compaction_interval.is_zero()).then_some(args.compaction_interval);
    config.compaction_target_rows = args.compaction_target_spans;
    config.compaction_min_files = args.compaction_min_files;
    let store = Store::open(config)
        .await
        .with_context(|| format!("cannot open the data directory {}", args.data_dir.display()))?;
    tracing::info!(data_dir = %args.data_dir.display(), node = store.node_id(), "store open");

    let source: Arc<dyn SegmentSource> = Arc::new(store.clone());
    let query_timeout = args.query_timeout;
    let engine = Arc::new(QueryEngine::new(
        source,
        QueryLimits {
            timeout: args.query_timeout,
            memory_bytes: args.query_memory_bytes,
            max_rows: args.query_max_rows,
            max_join_pairs: args.query_max_join_pairs,
            threads: args.query_threads,
            admission: AdmissionLimits {
                max_running: args.query_max_running,
                max_running_per_tenant: args.query_max_running_per_tenant,
                max_queued: args.query_max_queued,
                queue_timeout: args.query_queue_timeout,
            },
        },
    )?);
    telemetry.watch_store(store.clone());
    telemetry.watch_engine(QueryEngine::clone(&engine));
    let _ = app.set(guarded(
        spanlake_query::api::router(Arc::clone(&engine))
            .merge(spanlake_ui::server::router(
                spanlake_query::traces::Traces::new(Arc::clone(&engine)),
            ))
            .route_layer(axum::middleware::from_fn(crate::telemetry::track))
            // A request's queries together end within the time limit (a search runs several).
            .route_layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    spanlake_query::engine::within_time_limit(query_timeout, next.run(request))
                },
            )),
        &tokens,
    ));

    let sink: Arc<dyn SpanSink> = Arc::new(store.clone());
    let receiver = Receiver::new(sink).with_limits(ReceiverLimits {
        max_spans_per_request: args.max_spans_per_request,
        span: spanlake_collector::otlp::Limits {
            max_attributes: args.max_attributes_per_span,
            max_value_bytes: args.max_attribute_value_bytes,
            max_value_depth: args.max_attribute_depth,
        },
    });
    let grpc_listener = bind(args.otlp_grpc_addr, "OTLP/gRPC").await?;
    let otlp_http_listener = bind(args.otlp_http_addr, "OTLP/HTTP").await?;
    let grpc_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(InterceptedService::new(
                spanlake_collector::grpc::service(receiver.clone(), args.max_request_bytes),
                crate::auth::grpc(tokens.clone()),
            ))
            .serve_with_incoming_shutdown(
                Incoming::new(grpc_listener, tls.clone())?,
                stopped(stop_rx.clone()),
            ),
    );
    let otlp_http_server = tokio::spawn(
        axum::serve(
            Incoming::new(otlp_http_listener, tls.clone())?,
            guarded(
                spanlake_collector::http::router(
                    receiver,
                    HttpLimits {
                        max_body_bytes: args.max_request_bytes,
                        max_decompressed_bytes: args.max_decompressed_bytes,
                    },
                ),
                &tokens,
            ),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );
    let flight_listener = bind(args.flight_addr, "Flight SQL").await?;
    let flight_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(InterceptedService::new(
                spanlake_query::flight::service(Arc::clone(&engine)),
                crate::auth::grpc(tokens.clone()),
            ))
            .serve_with_incoming_shutdown(
                Incoming::new(flight_listener, tls.clone())?,
                stopped(stop_rx.clone()),
            ),
    );
    health.ready.store(true, Ordering::SeqCst);
    tracing::info!("ready");

    shutdown_signal().await;
    tracing::info!("stopping: no new requests; draining requests in flight");
    health.ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    // Queries are cancelled, not waited for: a runaway one would hold up the stop.
    engine.shutdown();
    let drain = async {
        let _ = grpc_server.await;
        let _ = otlp_http_server.await;
    };
    if tokio::time::timeout(args.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after the grace period; their spans stay in the wal"
        );
    }
    let stats = store.shutdown().await.context("final flush")?;
    tracing::info!(files = stats.files, spans = stats.rows, "flushed; bye");
    let _ = tokio::time::timeout(args.shutdown_grace, http_server).await;
    let _ = tokio::time::timeout(args.shutdown_grace, flight_server).await;
    Ok(())
}
