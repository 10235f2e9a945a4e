//! Encoding span batches as one Parquet file: sorted by trace id then start time, zstd, with a
//! bloom filter and page index on `trace_id` so one trace is found without reading the rest.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::TimestampNanosecondType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::schema::{SCHEMA_VERSION, SCHEMA_VERSION_KEY, col, span_schema};
use crate::{Error, Result};

/// Rows per row group: small enough that row-group statistics on the sorted `trace_id` prune
/// well, large enough to keep per-group overhead low.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// False-positive rate of the per-file trace id filter kept in the catalog.
const TRACE_FILTER_FPP: f64 = 0.01;

/// A Parquet file in memory, with what the catalog needs to know of it.
pub struct EncodedFile {
    pub bytes: Vec<u8>,
    pub rows: u64,
    pub min_start_ns: i64,
    pub max_start_ns: i64,
    pub max_end_ns: i64,
    pub min_trace_id: String,
    pub max_trace_id: String,
    /// Filter over the distinct trace ids of the file.
    pub trace_filter: Sbbf,
}

/// Sorts `batches` by (`trace_id`, `start_time`) and encodes them as one Parquet file.
pub fn encode(batches: &[RecordBatch]) -> Result<EncodedFile> {
    let schema = span_schema();
    let all = concat_batches(&schema, batches)?;
    if all.num_rows() == 0 {
        return Err(Error::Internal(
            "refusing to write an empty parquet file".into(),
        ));
    }
    let trace_idx = schema.index_of(col::TRACE_ID)?;
    let start_idx = schema.index_of(col::START_TIME)?;
    let end_idx = schema.index_of(col::END_TIME)?;
    let order = lexsort_to_indices(
        &[
            SortColumn {
                values: Arc::clone(all.column(trace_idx)),
                options: None,
            },
            SortColumn {
                values: Arc::clone(all.column(start_idx)),
                options: None,
            },
        ],
        None,
    )?;
    let sorted = take_record_batch(&all, &order)?;

    let trace_ids = sorted.column(trace_idx).as_string::<i32>();
    let starts = sorted
        .column(start_idx)
        .as_primitive::<TimestampNanosecondType>();
    let ends = sorted
        .column(end_idx)
        .as_primitive::<TimestampNanosecondType>();
    let min_start_ns = arrow::compute::min(starts).unwrap_or(0);
    let max_start_ns = arrow::compute::max(starts).unwrap_or(0);
    let max_end_ns = arrow::compute::max(ends).unwrap_or(0);
    let mut distinct = 0u64;
    for i in 0..trace_ids.len() {
        if i == 0 || trace_ids.value(i) != trace_ids.value(i - 1) {
            distinct += 1;
        }
    }
    let mut trace_filter = Sbbf::new_with_ndv_fpp(distinct.max(1), TRACE_FILTER_FPP)?;
    for i in 0..trace_ids.len() {
        if i == 0 || trace_ids.value(i) != trace_ids.value(i - 1) {
            trace_filter.insert(trace_ids.value(i));
        }
    }

    let trace_col = ColumnPath::from(col::TRACE_ID);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_bloom_filter_enabled(trace_col.clone(), true)
        .set_column_bloom_filter_max_ndv(trace_col, distinct.max(1))
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: trace_idx as i32,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: start_idx as i32,
                descending: false,
                nulls_first: false,
            },
        ]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_string(),
            SCHEMA_VERSION.to_string(),
        )]))
        .set_created_by(format!("spanlake {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props))?;
    writer.write(&sorted)?;
    writer.close()?;

    Ok(EncodedFile {
        bytes,
        rows: sorted.num_rows() as u64,
        min_start_ns,
        max_start_ns,
        max_end_ns,
        min_trace_id: trace_ids.value(0).to_string(),
        max_trace_id: trace_ids.value(trace_ids.len() - 1).to_string(),
        trace_filter,
    })
}

/// Reads a whole span file back as batches (for compaction, whose inputs are small files).
pub async fn read(
    objects: Arc<dyn object_store::ObjectStore>,
    path: &str,
) -> Result<Vec<RecordBatch>> {
    use object_store::ObjectStoreExt;
    let bytes = objects
        .get(&object_store::path::Path::from(path))
        .await?
        .bytes()
        .await?;
    tokio::task::spawn_blocking(move || {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?
            .build()?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::from)
    })
    .await
    .map_err(|e| Error::Internal(format!("parquet read task: {e}")))?
}
