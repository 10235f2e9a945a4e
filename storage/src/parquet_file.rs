//! Encoding span batches as one Parquet file: sorted by trace id then start time, zstd, with a
//! bloom filter and page index on `trace_id` so one trace is found without reading the rest.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat, interleave_record_batch, lexsort_to_indices};
use arrow::datatypes::TimestampNanosecondType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
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

/// How hard the encoder compresses: flushes sit on the ingest path, compaction runs in the
/// background and writes the files that stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// zstd level 1: a flush keeps up with ingest.
    Flush,
    /// zstd level 7: about 12% smaller than level 1 for about twice the encoding CPU, paid
    /// once per span in the background (measured in BENCHMARKS.md).
    Compaction,
}

impl Effort {
    fn zstd_level(self) -> i32 {
        match self {
            Effort::Flush => 1,
            Effort::Compaction => 7,
        }
    }
}

/// Columns of (nearly) unique values, where a dictionary only costs time: ids are written
/// with their lengths apart from their bytes, timestamps and durations byte-stream-split so
/// that zstd sees their constant high bytes together (measured in docs/design/storage.md).
const NO_DICTIONARY: &[(&str, Encoding)] = &[
    (col::SPAN_ID, Encoding::DELTA_LENGTH_BYTE_ARRAY),
    (col::PARENT_SPAN_ID, Encoding::DELTA_LENGTH_BYTE_ARRAY),
    (col::START_TIME, Encoding::BYTE_STREAM_SPLIT),
    (col::END_TIME, Encoding::BYTE_STREAM_SPLIT),
    (col::DURATION_NS, Encoding::BYTE_STREAM_SPLIT),
];

/// Sorts `batches` by (`trace_id`, `start_time`) and encodes them as one Parquet file.
pub fn encode(batches: &[RecordBatch], effort: Effort) -> Result<EncodedFile> {
    let schema = span_schema();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Err(Error::Internal(
            "refusing to write an empty parquet file".into(),
        ));
    }
    let trace_idx = schema.index_of(col::TRACE_ID)?;
    let start_idx = schema.index_of(col::START_TIME)?;
    let end_idx = schema.index_of(col::END_TIME)?;
    // Sort on the two key columns alone, then gather every column once from the input
    // batches in that order: one copy of the spans, not two (concatenate, then take).
    let key = |idx: usize| -> Result<ArrayRef> {
        let columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(idx).as_ref()).collect();
        Ok(concat(&columns)?)
    };
    let order = lexsort_to_indices(
        &[
            SortColumn {
                values: key(trace_idx)?,
                options: None,
            },
            SortColumn {
                values: key(start_idx)?,
                options: None,
            },
        ],
        None,
    )?;
    let mut located = Vec::with_capacity(rows);
    let mut offsets = Vec::with_capacity(batches.len());
    let mut offset = 0;
    for batch in batches {
        offsets.push(offset);
        offset += batch.num_rows();
    }
    for &row in order.values() {
        let row = row as usize;
        let batch = offsets.partition_point(|&o| o <= row) - 1;
        located.push((batch, row - offsets[batch]));
    }
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    let sorted = interleave_record_batch(&inputs, &located)?;
    let sorted = if sorted.schema() == schema {
        sorted
    } else {
        RecordBatch::try_new(Arc::clone(&schema), sorted.columns().to_vec())?
    };

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
    let mut props = WriterProperties::builder();
    for (column, encoding) in NO_DICTIONARY {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_encoding(ColumnPath::from(*column), *encoding);
    }
    let props = props
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(effort.zstd_level())?))
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
