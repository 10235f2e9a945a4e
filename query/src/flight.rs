//! Arrow Flight SQL over the query engine, read-only, so ADBC, JDBC and DBeaver clients can
//! query the `spans` table.
//!
//! A statement (or prepared statement) is planned when the client asks for its `FlightInfo`, so
//! bad or writing SQL is refused there and the result schema is known up front; it runs when the
//! client redeems the ticket, through [`QueryEngine::sql`] and its time, memory and row limits.
//! Tickets and prepared-statement handles carry the tenant and the SQL themselves: the server
//! keeps nothing between calls, and closing a prepared statement is a no-op.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, SqlSupportedCaseSensitivity, SqlSupportedTransaction,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use spanlake_storage::TenantId;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use crate::api::TENANT_HEADER;
use crate::{Error, QueryEngine, Result};

/// Default address of the Flight SQL listener (the port Flight SQL servers conventionally use).
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// Response header set, as on `/api/sql`, when the row cap cut a result short.
pub const TRUNCATED_HEADER: &str = "x-spanlake-truncated";

const READ_ONLY: &str = "Spanlake is read-only: only queries are accepted";

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service to add to a tonic server:
/// `Server::builder().add_service(spanlake_query::flight::service(engine))`.
pub fn service(engine: Arc<QueryEngine>) -> FlightServiceServer<FlightSql> {
    FlightServiceServer::new(FlightSql::new(engine))
}

/// Answers Flight SQL calls with the query engine.
#[derive(Debug, Clone)]
pub struct FlightSql {
    engine: Arc<QueryEngine>,
}

impl FlightSql {
    pub fn new(engine: Arc<QueryEngine>) -> Self {
        Self { engine }
    }

    /// The result schema of `statement`, planning it (within the query timeout) to refuse
    /// anything but a read-only query.
    async fn plan_schema(&self, statement: &Statement) -> Result<SchemaRef> {
        self.engine.schema(&statement.tenant, &statement.sql).await
    }

    /// A `FlightInfo` whose one endpoint's ticket runs `statement` on this server.
    async fn statement_info(
        &self,
        statement: &Statement,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.plan_schema(statement).await?;
        let ticket = TicketStatementQuery {
            statement_handle: statement.encode().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(internal)?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            )
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    async fn run(&self, statement: Statement) -> Result<Response<DoGetStream>, Status> {
        let output = self.engine.sql(&statement.tenant, &statement.sql).await?;
        let mut response = Response::new(encode(output.schema, output.batches));
        if output.truncated {
            response
                .metadata_mut()
                .insert(TRUNCATED_HEADER, MetadataValue::from_static("true"));
        }
        Ok(response)
    }

    /// A session for the request's tenant, to read the names of its catalog, schema and tables.
    fn session(&self, metadata: &MetadataMap) -> Result<SessionContext> {
        self.engine.context(&tenant(metadata)?)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        Err(Status::unimplemented(
            "Spanlake has no authentication: connect without a username and password \
             (the x-scope-orgid header picks the tenant)",
        ))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let statement = Statement {
            tenant: tenant(request.metadata())?,
            sql: query.query,
        };
        self.statement_info(&statement, request.into_inner()).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let statement = Statement::decode(&query.prepared_statement_handle, request.metadata())?;
        self.statement_info(&statement, request.into_inner()).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let statement = Statement::decode(&ticket.statement_handle, request.metadata())?;
        self.run(statement).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let statement = Statement::decode(&query.prepared_statement_handle, request.metadata())?;
        self.run(statement).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let statement = Statement {
            tenant: tenant(request.metadata())?,
            sql: query.query,
        };
        let schema = self.plan_schema(&statement).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(internal)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: statement.encode().into(),
            dataset_schema,
            // Empty: the statement takes no parameters.
            parameter_schema: Default::default(),
        })
    }

    /// Clients that bind parameters whether or not there are any send an empty batch here; a
    /// batch with rows asks for parameters, which Spanlake does not support.
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        // A message with only the descriptor has no IPC header to decode.
        let data = request
            .into_inner()
            .map_err(FlightError::from)
            .try_filter(|data| std::future::ready(!data.data_header.is_empty()));
        let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
        while let Some(batch) = batches.try_next().await? {
            if batch.num_rows() > 0 {
                return Err(Status::invalid_argument(
                    "Spanlake prepared statements take no parameters: write the values into the SQL",
                ));
            }
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // The handle is the statement; there is nothing to free.
        Ok(())
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::invalid_argument(READ_ONLY))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::invalid_argument(READ_ONLY))
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::invalid_argument(format!(
            "{READ_ONLY}; send spans over OTLP"
        )))
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::invalid_argument(READ_ONLY))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let names = Names::of(&self.session(request.metadata())?);
        let mut builder = query.into_builder();
        builder.append(names.catalog);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let names = Names::of(&self.session(request.metadata())?);
        let mut builder = query.into_builder();
        builder.append(names.catalog, names.schema);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request)
    }

    /// The tables of the session's default schema (just `spans`); the builder applies the
    /// client's catalog, name-pattern and type filters.
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session(request.metadata())?;
        let names = Names::of(&ctx);
        let schema = ctx
            .catalog(&names.catalog)
            .and_then(|catalog| catalog.schema(&names.schema))
            .ok_or_else(|| {
                Error::Internal(format!(
                    "the session has no schema {}.{}",
                    names.catalog, names.schema
                ))
            })?;
        let mut builder = query.into_builder();
        let mut tables = schema.table_names();
        tables.sort();
        for name in tables {
            let Some(table) = schema.table(&name).await.map_err(Error::from)? else {
                continue;
            };
            builder
                .append(
                    &names.catalog,
                    &names.schema,
                    &name,
                    table_type(table.table_type()),
                    &table.schema(),
                )
                .map_err(internal)?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(table_type(TableType::Base));
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        metadata_info(query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let builder = query.into_builder(&SQL_INFO);
        one_batch(builder.schema(), builder.build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// What the server tells clients about itself (`GetSqlInfo`).
static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "Spanlake");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow columnar format version arrow-rs writes (with view types: 1.5).
    info.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, false);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // DataFusion folds unquoted identifiers to lower case.
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    info.build().expect("the sql info values have valid types")
});

/// A query and the tenant it runs for: the content of tickets and prepared-statement handles.
#[derive(Debug, Clone, PartialEq)]
struct Statement {
    tenant: TenantId,
    sql: String,
}

/// The wire form of a [`Statement`]. Versioned, since a client may hold a handle across a
/// server upgrade.
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum Handle {
    #[serde(rename = "1")]
    V1 { tenant: String, sql: String },
}

impl Statement {
    fn encode(&self) -> Vec<u8> {
        let handle = Handle::V1 {
            tenant: self.tenant.as_str().to_string(),
            sql: self.sql.clone(),
        };
        serde_json::to_vec(&handle).expect("a handle of two strings serializes")
    }

    /// The statement of a ticket or handle. A request that names a tenant must name the one the
    /// statement was made for.
    fn decode(bytes: &[u8], metadata: &MetadataMap) -> Result<Self, Status> {
        let Handle::V1 { tenant, sql } = serde_json::from_slice(bytes).map_err(|e| {
            Status::invalid_argument(format!("not a Spanlake statement handle: {e}"))
        })?;
        let tenant = TenantId::new(&tenant)
            .map_err(|e| Status::invalid_argument(format!("bad statement handle: {e}")))?;
        if metadata.get(TENANT_HEADER).is_some() {
            let named = self::tenant(metadata)?;
            if named != tenant {
                return Err(Status::invalid_argument(format!(
                    "the statement was made for tenant {tenant:?} but the request names {named:?}",
                    tenant = tenant.as_str(),
                    named = named.as_str(),
                )));
            }
        }
        Ok(Self { tenant, sql })
    }
}

/// The tenant named by the `x-scope-orgid` metadata, or the default tenant, as
/// [`api::tenant`](crate::api::tenant) does for HTTP.
pub fn tenant(metadata: &MetadataMap) -> Result<TenantId> {
    match metadata.get(TENANT_HEADER) {
        None => Ok(TenantId::default_tenant()),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| Error::BadRequest(format!("{TENANT_HEADER} is not text")))?;
            TenantId::new(text.trim()).map_err(|e| Error::BadRequest(e.to_string()))
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Plan(_) | Error::NotReadOnly(_) | Error::BadRequest(_) | Error::TooLarge(_) => {
                Status::invalid_argument(message)
            }
            Error::NotFound(_) => Status::not_found(message),
            Error::Timeout(_) => Status::deadline_exceeded(message),
            Error::ResourcesExhausted(_) | Error::Busy { .. } => {
                Status::resource_exhausted(message)
            }
            Error::ShuttingDown => Status::unavailable(message),
            Error::Execution(_) | Error::Internal(_) => {
                tracing::error!(%message, "flight sql query failed");
                Status::internal(message)
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::from(Error::Internal(e.to_string()))
}

/// The names the session gives its one catalog and schema (`datafusion.public`).
struct Names {
    catalog: String,
    schema: String,
}

impl Names {
    fn of(ctx: &SessionContext) -> Self {
        let state = ctx.state();
        let options = &state.config_options().catalog;
        Self {
            catalog: options.default_catalog.clone(),
            schema: options.default_schema.clone(),
        }
    }
}

/// The JDBC name of a table type.
fn table_type(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// A `FlightInfo` for a metadata command, whose ticket is the command itself.
fn metadata_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal)?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(request.into_inner());
    Ok(Response::new(info))
}

fn one_batch(
    schema: SchemaRef,
    batch: Result<RecordBatch, FlightError>,
) -> Result<Response<DoGetStream>, Status> {
    Ok(Response::new(encode(
        schema,
        vec![batch.map_err(internal)?],
    )))
}

/// Flight data for `batches`, schema first even when there are no rows.
fn encode(schema: SchemaRef, batches: Vec<RecordBatch>) -> DoGetStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    stream.boxed()
}

#[cfg(test)]
mod tests;
