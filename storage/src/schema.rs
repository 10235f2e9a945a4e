//! The Arrow schema of stored spans: one row per span, the same in the WAL, in memory and in
//! the `spans` table; Parquet files leave out `end_time` and keep common span attributes in
//! columns of their own ([`file_schema`]). Column names and SQL types are a public contract (`spans` table, files read by
//! DuckDB/pyarrow); `docs/design/storage.md` explains the choices.

use std::sync::{Arc, LazyLock};

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

/// Version of the span schema, written into every Parquet file's key-value metadata and every
/// catalog entry. Version 4 adds the instrumentation scope's attributes
/// (`scope_attributes`, `scope_attribute_types`; NULL in older files and WAL records, read as
/// none). Version 3 files keep the [`DEDICATED_ATTRIBUTES`] in columns of their own;
/// version 2 files do not store `end_time` (see [`file_schema`]); version 1 files do. All
/// read the same.
pub const SCHEMA_VERSION: u32 = 4;

/// Key of the schema version in Parquet key-value metadata.
pub const SCHEMA_VERSION_KEY: &str = "spanlake.schema_version";

/// Column names, in schema order.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SPAN_NAME: &str = "span_name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const ATTRIBUTES: &str = "attributes";
    pub const ATTRIBUTE_TYPES: &str = "attribute_types";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const RESOURCE_ATTRIBUTE_TYPES: &str = "resource_attribute_types";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    pub const SCOPE_ATTRIBUTE_TYPES: &str = "scope_attribute_types";
    pub const EVENTS: &str = "events";
    pub const LINKS: &str = "links";
    pub const FLAGS: &str = "flags";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
}

/// Span attributes that files keep in a column of their own (key, column), out of the
/// `attributes` map: the common keys of OpenTelemetry's HTTP, database, RPC and messaging
/// conventions. Few distinct values each, so a column of one key's values takes a dictionary
/// and compresses far better than the same values interleaved with every other key's in the
/// map's value column (BENCHMARKS.md, "Dedicated attribute columns"). Readers merge them back
/// into `attributes` (`crate::dedicated`). Appending a key is a new schema version; older files
/// read the same, their column missing.
pub const DEDICATED_ATTRIBUTES: [(&str, &str); 18] = [
    ("http.request.method", "attr_http_request_method"),
    (
        "http.response.status_code",
        "attr_http_response_status_code",
    ),
    ("http.route", "attr_http_route"),
    ("url.scheme", "attr_url_scheme"),
    ("url.path", "attr_url_path"),
    ("server.address", "attr_server_address"),
    ("server.port", "attr_server_port"),
    ("user_agent.original", "attr_user_agent_original"),
    ("error.type", "attr_error_type"),
    ("db.system", "attr_db_system"),
    ("db.system.name", "attr_db_system_name"),
    ("db.operation.name", "attr_db_operation_name"),
    ("db.query.text", "attr_db_query_text"),
    ("rpc.system", "attr_rpc_system"),
    ("rpc.service", "attr_rpc_service"),
    ("rpc.method", "attr_rpc_method"),
    ("messaging.system", "attr_messaging_system"),
    (
        "messaging.destination.name",
        "attr_messaging_destination_name",
    ),
];

/// The timestamp type of `start_time`, `end_time` and event times.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// A `Map<Utf8, Utf8>` column. Attribute values are stored as text so that
/// `attributes['http.route']` works in SQL; the original OTLP type of every value that is not a
/// string is kept in the sibling `*_types` map (see [`crate::batch::AttrValue`]).
pub fn string_map_field(name: &str) -> Field {
    Field::new_map(
        name,
        "key_value",
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        false,
        false,
    )
}

/// A [`string_map_field`] that may be NULL: a column added after version 3, which older files
/// and WAL records do not have (NULL reads as no attributes).
pub fn optional_string_map_field(name: &str) -> Field {
    string_map_field(name).with_nullable(true)
}

pub(crate) fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
        string_map_field("attributes"),
        string_map_field("attribute_types"),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

pub(crate) fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        string_map_field("attributes"),
        string_map_field("attribute_types"),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

fn list_of(name: &str, fields: Fields) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new(
            "element",
            DataType::Struct(fields),
            false,
        ))),
        false,
    )
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    Arc::new(Schema::new(vec![
        Field::new(TRACE_ID, DataType::Utf8, false),
        Field::new(SPAN_ID, DataType::Utf8, false),
        Field::new(PARENT_SPAN_ID, DataType::Utf8, true),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(SERVICE_NAME, DataType::Utf8, false),
        Field::new(SPAN_NAME, DataType::Utf8, false),
        Field::new(SPAN_KIND, DataType::Utf8, false),
        Field::new(START_TIME, timestamp_type(), false),
        Field::new(END_TIME, timestamp_type(), false),
        Field::new(DURATION_NS, DataType::Int64, false),
        Field::new(STATUS_CODE, DataType::Utf8, false),
        Field::new(STATUS_MESSAGE, DataType::Utf8, false),
        string_map_field(ATTRIBUTES),
        string_map_field(ATTRIBUTE_TYPES),
        string_map_field(RESOURCE_ATTRIBUTES),
        string_map_field(RESOURCE_ATTRIBUTE_TYPES),
        Field::new(SCOPE_NAME, DataType::Utf8, false),
        Field::new(SCOPE_VERSION, DataType::Utf8, false),
        optional_string_map_field(SCOPE_ATTRIBUTES),
        optional_string_map_field(SCOPE_ATTRIBUTE_TYPES),
        list_of(EVENTS, event_fields()),
        list_of(LINKS, link_fields()),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(DROPPED_EVENTS_COUNT, DataType::UInt32, false),
        Field::new(DROPPED_LINKS_COUNT, DataType::UInt32, false),
    ]))
});

/// The schema of every span batch, in the WAL and in memory, and of the `spans` table.
pub fn span_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// `batch`, a span batch of this or an older version's [`span_schema`] (a WAL record written
/// before an upgrade), with the current schema: columns added since are NULL.
pub fn upgrade(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref().fields() == SCHEMA.fields() {
        return Ok(batch);
    }
    let columns = SCHEMA
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Ok(Arc::clone(column)),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(ArrowError::SchemaError(format!(
                "span batch without the column {}",
                field.name()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(span_schema(), columns)
}

static FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = SCHEMA
        .fields()
        .iter()
        .filter(|f| f.name() != col::END_TIME)
        .cloned()
        .collect::<Vec<_>>();
    for (_, column) in DEDICATED_ATTRIBUTES {
        fields.push(Arc::new(Field::new(column, DataType::Utf8, true)));
    }
    Arc::new(Schema::new(fields))
});

/// The schema of Parquet span files: [`span_schema`] without `end_time`, which is always
/// `start_time + duration_ns` and would cost ~4 bytes per span on disk, and with the
/// [`DEDICATED_ATTRIBUTES`] columns after the others (null where a span does not have the
/// key; the key is then absent from `attributes`, repeated in it, or there once without a
/// value). Readers compute
/// `end_time` and merge the columns back (the `spans` table in its scan, compaction in
/// `parquet_file::read`).
pub fn file_schema() -> SchemaRef {
    Arc::clone(&FILE_SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL record written by version 3, before the scope attributes, reads with them NULL.
    #[test]
    fn an_older_span_batch_upgrades_with_nulls_for_new_columns() {
        let mut builder = crate::batch::SpanBatchBuilder::new();
        builder.begin_span(&crate::batch::SpanFields {
            trace_id: &[1; 16],
            span_id: &[2; 8],
            ..Default::default()
        });
        builder.end_span();
        let current = builder.finish().unwrap();
        let old_fields: Vec<usize> = (0..current.num_columns())
            .filter(|&i| {
                let name = current.schema().field(i).name().clone();
                name != col::SCOPE_ATTRIBUTES && name != col::SCOPE_ATTRIBUTE_TYPES
            })
            .collect();
        let old = current.project(&old_fields).unwrap();

        let upgraded = upgrade(old).unwrap();
        assert_eq!(upgraded.schema(), span_schema());
        let scope = upgraded.column_by_name(col::SCOPE_ATTRIBUTES).unwrap();
        assert_eq!(scope.null_count(), 1);
        assert_eq!(upgrade(current.clone()).unwrap(), current);

        let missing_required = current.project(&[0]).unwrap();
        let error = upgrade(missing_required).unwrap_err().to_string();
        assert!(error.contains("span_id"), "{error}");
    }
}
