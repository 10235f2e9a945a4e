//! The service on a real port, over a real store, queried with arrow-flight's own Flight SQL
//! client.

use std::net::SocketAddr;
use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use spanlake_storage::batch::{SpanBatchBuilder, SpanFields, SpanKind};
use spanlake_storage::schema::span_schema;
use spanlake_storage::{SegmentSource, SpanSink, Store, StoreConfig};
use tonic::Code;
use tonic::transport::Channel;

use super::*;
use crate::QueryLimits;

/// One span per name, all in one trace.
fn spans(trace: u8, names: &[&str]) -> RecordBatch {
    let mut b = SpanBatchBuilder::new();
    for (i, &name) in names.iter().enumerate() {
        let span_id = (i as u64 + 1).to_be_bytes();
        b.begin_span(&SpanFields {
            trace_id: &[trace; 16],
            span_id: &span_id,
            service_name: "checkout",
            name,
            kind: SpanKind::Server,
            start_unix_nano: 1_700_000_000_000_000_000 + i as i64,
            end_unix_nano: 1_700_000_000_000_001_000 + i as i64,
            ..SpanFields::default()
        });
        b.end_span();
    }
    b.finish().unwrap()
}

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A store holding five spans of the default tenant (some flushed to Parquet, some still in
    /// memory) and one of tenant `other`, served on a free port.
    async fn start(limits: QueryLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.flush_interval = Duration::from_secs(3600);
        let store = Arc::new(Store::open(config).await.unwrap());
        let default = TenantId::default_tenant();
        store
            .append(&default, spans(1, &["GET /cart", "GET /cart", "POST /pay"]))
            .await
            .unwrap();
        store.flush().await.unwrap();
        store
            .append(&default, spans(2, &["GET /cart", "POST /pay"]))
            .await
            .unwrap();
        let other = TenantId::new("other").unwrap();
        store.append(&other, spans(3, &["GET /"])).await.unwrap();

        let source: Arc<dyn SegmentSource> = store;
        let engine = Arc::new(QueryEngine::new(source, limits).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service(engine))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Self { addr, _dir: dir }
    }

    async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightSqlServiceClient::new(channel)
    }
}

/// Every batch of every endpoint of `info`, redeemed on the same server.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("every endpoint has a ticket");
        let stream = client.do_get(ticket).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

fn pretty(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

fn status_of(e: FlightError) -> (Code, String) {
    match e {
        FlightError::Tonic(status) => (status.code(), status.message().to_string()),
        other => panic!("expected a gRPC status, got {other}"),
    }
}

const BY_NAME: &str =
    "SELECT span_name, count(*) AS n FROM spans GROUP BY span_name ORDER BY span_name";

const BY_NAME_TABLE: &str = "\
+-----------+---+
| span_name | n |
+-----------+---+
| GET /cart | 3 |
| POST /pay | 2 |
+-----------+---+";

#[tokio::test]
async fn a_statement_returns_its_rows_and_reports_its_schema() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let info = client.execute(BY_NAME.into(), None).await.unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        ["span_name", "n"]
    );
    let batches = fetch(&mut client, info).await;
    assert_eq!(pretty(&batches), BY_NAME_TABLE);
}

#[tokio::test]
async fn the_tenant_header_picks_the_tenant() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;
    client.set_header(TENANT_HEADER, "other");

    let info = client
        .execute("SELECT count(*) AS n FROM spans".into(), None)
        .await
        .unwrap();
    assert_eq!(
        pretty(&fetch(&mut client, info.clone()).await),
        "+---+\n| n |\n+---+\n| 1 |\n+---+"
    );

    // A ticket made for `other` is not redeemed for another tenant.
    let mut intruder = server.client().await;
    intruder.set_header(TENANT_HEADER, "someone-else");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let (code, message) = status_of(intruder.do_get(ticket).await.err().unwrap());
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("\"other\""), "{message}");

    client.set_header(TENANT_HEADER, "../etc");
    let (code, message) = status_of(client.execute("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("invalid tenant id"), "{message}");
}

#[tokio::test]
async fn a_prepared_statement_runs() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let mut prepared = client.prepare(BY_NAME.into(), None).await.unwrap();
    assert_eq!(prepared.dataset_schema().unwrap().fields().len(), 2);
    assert!(prepared.parameter_schema().unwrap().fields().is_empty());
    let info = prepared.execute().await.unwrap();
    assert_eq!(pretty(&fetch(&mut client, info).await), BY_NAME_TABLE);
    // Executing again re-runs the statement.
    let info = prepared.execute().await.unwrap();
    assert_eq!(pretty(&fetch(&mut client, info).await), BY_NAME_TABLE);
    prepared.close().await.unwrap();
}

#[tokio::test]
async fn prepared_statements_refuse_parameters() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let mut prepared = client
        .prepare("SELECT count(*) FROM spans".into(), None)
        .await
        .unwrap();
    let parameters = RecordBatch::try_from_iter([(
        "$1",
        Arc::new(arrow::array::StringArray::from(vec!["GET /cart"])) as _,
    )])
    .unwrap();
    prepared.set_parameters(parameters).unwrap();
    let (code, message) = status_of(prepared.execute().await.unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("no parameters"), "{message}");
}

#[tokio::test]
async fn writes_are_refused_as_invalid_arguments() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let (code, message) = status_of(
        client
            .execute("DROP TABLE spans".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("only read-only queries"), "{message}");

    let (code, _) = status_of(
        client
            .prepare("DROP TABLE spans".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument);

    let (code, message) = status_of(
        client
            .execute_update("DELETE FROM spans".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("read-only"), "{message}");

    // Still serving, and nothing was dropped.
    let info = client.execute(BY_NAME.into(), None).await.unwrap();
    assert_eq!(pretty(&fetch(&mut client, info).await), BY_NAME_TABLE);
}

#[tokio::test]
async fn bad_sql_names_what_is_wrong() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let (code, message) = status_of(
        client
            .execute("SELECT nope FROM spans".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("nope"), "{message}");
}

#[tokio::test]
async fn a_truncated_result_says_so() {
    let limits = QueryLimits {
        max_rows: 2,
        ..QueryLimits::default()
    };
    let server = Server::start(limits).await;
    let mut client = server.client().await;

    let info = client
        .execute("SELECT span_id FROM spans".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.unwrap();
    assert_eq!(
        stream
            .headers()
            .get(TRUNCATED_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

#[tokio::test]
async fn metadata_lists_the_spans_table() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let info = client.get_catalogs().await.unwrap();
    assert_eq!(
        pretty(&fetch(&mut client, info).await),
        "\
+--------------+
| catalog_name |
+--------------+
| datafusion   |
+--------------+"
    );

    let info = client
        .get_db_schemas(CommandGetDbSchemas::default())
        .await
        .unwrap();
    assert_eq!(
        pretty(&fetch(&mut client, info).await),
        "\
+--------------+----------------+
| catalog_name | db_schema_name |
+--------------+----------------+
| datafusion   | public         |
+--------------+----------------+"
    );

    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("sp%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let names: Vec<RecordBatch> = batches
        .iter()
        .map(|b| b.project(&[0, 1, 2, 3]).unwrap())
        .collect();
    assert_eq!(
        pretty(&names),
        "\
+--------------+----------------+------------+------------+
| catalog_name | db_schema_name | table_name | table_type |
+--------------+----------------+------------+------------+
| datafusion   | public         | spans      | TABLE      |
+--------------+----------------+------------+------------+"
    );
    let table_schema = batches[0]
        .column_by_name("table_schema")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>()
        .unwrap()
        .value(0)
        .to_vec();
    let table_schema = Schema::try_from(IpcMessage(table_schema.into())).unwrap();
    assert_eq!(&table_schema, span_schema().as_ref());

    let info = client
        .get_tables(CommandGetTables {
            table_name_filter_pattern: Some("traces".into()),
            ..CommandGetTables::default()
        })
        .await
        .unwrap();
    let rows: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 0);

    let info = client.get_table_types().await.unwrap();
    assert_eq!(
        pretty(&fetch(&mut client, info).await),
        "\
+------------+
| table_type |
+------------+
| TABLE      |
+------------+"
    );
}

#[tokio::test]
async fn sql_info_names_the_server_and_says_read_only() {
    let server = Server::start(QueryLimits::default()).await;
    let mut client = server.client().await;

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    assert_eq!(
        pretty(&fetch(&mut client, info).await),
        "\
+-----------+-------------------------+
| info_name | value                   |
+-----------+-------------------------+
| 0         | {string_value=Spanlake} |
| 3         | {bool_value=true}       |
+-----------+-------------------------+"
    );
}

#[test]
fn handles_round_trip_and_bad_ones_are_refused() {
    let statement = Statement {
        tenant: TenantId::new("acme").unwrap(),
        sql: "SELECT 1".into(),
    };
    let bytes = statement.encode();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"version":"1","tenant":"acme","sql":"SELECT 1"}"#
    );
    assert_eq!(
        Statement::decode(&bytes, &MetadataMap::new()).unwrap(),
        statement
    );

    let bad = Statement::decode(b"SELECT 1", &MetadataMap::new()).unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let unknown = br#"{"version":"9","tenant":"acme","sql":"SELECT 1"}"#;
    let bad = Statement::decode(unknown, &MetadataMap::new()).unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[test]
fn errors_become_the_matching_grpc_codes() {
    let cases = [
        (Error::Plan("no such column".into()), Code::InvalidArgument),
        (Error::NotReadOnly("DDL".into()), Code::InvalidArgument),
        (
            Error::Timeout(Duration::from_secs(30)),
            Code::DeadlineExceeded,
        ),
        (
            Error::ResourcesExhausted("sort".into()),
            Code::ResourceExhausted,
        ),
        (Error::Internal("bug".into()), Code::Internal),
    ];
    for (error, expected) in cases {
        let message = error.to_string();
        let status = Status::from(error);
        assert_eq!(status.code(), expected, "{message}");
        assert_eq!(status.message(), message);
    }
}
