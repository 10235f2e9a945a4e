//! Encoding span batches as one Parquet file: row groups of whole traces in time order, each
//! sorted by trace id then start time, zstd, with a bloom filter and page index on `trace_id`
//! so one trace is found without reading the rest, bloom filters on attribute values so a rare
//! value skips the row groups without it, and narrow `start_time` ranges per row group
//! so a newest-first search reads only the newest row groups. Files hold the columns of
//! [`file_schema`]: `end_time` is not stored, and the dedicated attributes have columns of
//! their own; [`read`] gives spans back whole.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StringArray};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::{Int64Type, TimestampNanosecondType};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::dedicated::{self, LEFT_IN_MAP_KEY};
use crate::schema::{
    DEDICATED_ATTRIBUTES, SCHEMA_VERSION, SCHEMA_VERSION_KEY, col, file_schema, span_schema,
};
use crate::{Error, Result};

/// Rows per row group: small enough that a row group covers a narrow slice of time (and its
/// bloom filter few traces), large enough to keep per-group overhead low.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// False-positive rate of the per-file trace id filter kept in the catalog. A trace lookup
/// without a time range checks every live file's filter: at 1% a store of 100 files opened
/// two at the median (one by mistake). At 0.1%, rounded up to a power of two, a filter of
/// 100 000 traces takes 21 bits per trace (256 KiB: 2.6 bytes per trace in memory, 3.5 in
/// the catalog's base64) and lets through about one id in 3 000 (BENCHMARKS.md).
const TRACE_FILTER_FPP: f64 = 0.001;
/// False-positive rate of each row group's `trace_id` bloom filter. A structural TraceQL
/// search checks a chunk of 2 000 candidate ids against every row group: at Parquet's
/// default 0.05 nearly every row group passes (1 - 0.95^2000). At 1e-5, rounded up to a
/// power of two, a filter holds ~40 bits per trace and a chunk passes a row group without
/// its traces about once in 400, for 0.4 bytes per span (BENCHMARKS.md).
const ROW_GROUP_TRACE_FPP: f64 = 1e-5;
/// False-positive rate of each row group's bloom filter over its span and resource attribute
/// values, which the spans table checks for `attributes['k'] = 'v'` so that a search for a
/// rare value (one user, one order id) skips the row groups without it instead of decoding
/// every attribute map. A row group holds ten times as many values as spans, most of them
/// distinct: at 0.05 its filter comes to ~2 bytes per span (BENCHMARKS.md).
const ROW_GROUP_VALUE_FPP: f64 = 0.05;
/// Map columns whose values get a row-group bloom filter (their `value` leaf).
pub const VALUE_FILTER_COLUMNS: [&str; 2] = [col::ATTRIBUTES, col::RESOURCE_ATTRIBUTES];

/// Key of the attribute keys that hold an array value somewhere in a file, in its key-value
/// metadata (since schema version 4): JSON `{"attributes": [...], "resource_attributes": [...]}`
/// over the [`VALUE_FILTER_COLUMNS`]. The value bloom filters hold an array's whole OTLP/JSON
/// text, not its elements, so a reader looking for an element (TraceQL matches arrays by
/// element) may skip a row group by its filter only where the key holds no array.
pub const ARRAY_KEYS_KEY: &str = "spanlake.array_keys";

/// Per value-filtered map, the keys that hold an array value in `batches` (JSON, see
/// [`ARRAY_KEYS_KEY`]).
fn array_keys(batches: &[RecordBatch]) -> Result<String> {
    let mut out = serde_json::Map::new();
    for (map, types) in [
        (col::ATTRIBUTES, col::ATTRIBUTE_TYPES),
        (col::RESOURCE_ATTRIBUTES, col::RESOURCE_ATTRIBUTE_TYPES),
    ] {
        let mut keys = std::collections::BTreeSet::new();
        for batch in batches {
            let column = batch
                .column_by_name(types)
                .ok_or_else(|| Error::Internal(format!("span batch without {types}")))?;
            let types: &MapArray = column.as_map();
            let (names, values) = (
                types.keys().as_string::<i32>(),
                types.values().as_string::<i32>(),
            );
            for i in 0..values.len() {
                if values.is_valid(i) && values.value(i) == "array" {
                    keys.insert(names.value(i).to_string());
                }
            }
        }
        out.insert(map.to_string(), keys.into_iter().collect::<Vec<_>>().into());
    }
    Ok(serde_json::Value::Object(out).to_string())
}

/// Key of the attribute keys present in the attribute sets without value filters, in a file's
/// key-value metadata (since schema version 4): JSON `{"scope_attributes": [...], "events":
/// [...], "links": [...]}`. A tag search matches a tag in those places too (as Jaeger does);
/// a file none of whose scopes, events or links has the key can be skipped by the value
/// filters of the span and resource attributes alone.
pub const NESTED_KEYS_KEY: &str = "spanlake.nested_keys";

/// The keys of the scope, event and link attributes of `batches` (JSON, see
/// [`NESTED_KEYS_KEY`]).
fn nested_keys(batches: &[RecordBatch]) -> Result<String> {
    let keys_of = |map: &MapArray, into: &mut std::collections::BTreeSet<String>| {
        let names = map.keys().as_string::<i32>();
        // Only the entries the rows use (a sliced map's buffers may hold others).
        let offsets = map.offsets();
        let (from, to) = (offsets[0] as usize, offsets[map.len()] as usize);
        for i in from..to {
            into.insert(names.value(i).to_string());
        }
    };
    let mut out = serde_json::Map::new();
    for name in [col::SCOPE_ATTRIBUTES, col::EVENTS, col::LINKS] {
        let mut keys = std::collections::BTreeSet::new();
        for batch in batches {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| Error::Internal(format!("span batch without {name}")))?;
            if name == col::SCOPE_ATTRIBUTES {
                keys_of(column.as_map(), &mut keys);
                continue;
            }
            let list = column.as_list::<i32>();
            let (from, to) = (
                list.offsets()[0] as usize,
                list.offsets()[list.len()] as usize,
            );
            let items = list.values().as_struct();
            let attributes = items
                .column_by_name("attributes")
                .ok_or_else(|| Error::Internal(format!("{name} without attributes")))?
                .slice(from, to - from);
            keys_of(attributes.as_map(), &mut keys);
        }
        out.insert(
            name.to_string(),
            keys.into_iter().collect::<Vec<_>>().into(),
        );
    }
    Ok(serde_json::Value::Object(out).to_string())
}

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
/// Span attribute values mix a few repeated values with many unique ones (ids, queries): the
/// dictionary overflows and falls back within a row group, and plain + zstd comes out smaller
/// after compaction while sparing the flush a hash of every value (BENCHMARKS.md).
const NO_DICTIONARY: &[(&[&str], Encoding)] = &[
    (&[col::SPAN_ID], Encoding::DELTA_LENGTH_BYTE_ARRAY),
    (&[col::PARENT_SPAN_ID], Encoding::DELTA_LENGTH_BYTE_ARRAY),
    (&[col::START_TIME], Encoding::BYTE_STREAM_SPLIT),
    (&[col::DURATION_NS], Encoding::BYTE_STREAM_SPLIT),
    (&[col::ATTRIBUTES, "key_value", "value"], Encoding::PLAIN),
];

/// Where each row of the input goes: row groups of whole traces, taken in the order of each
/// trace's first span, each row group sorted by (`trace_id`, `start_time`).
struct Layout {
    /// Per row group, (input batch, row) of each of its rows in order.
    groups: Vec<Vec<(usize, usize)>>,
    /// Most distinct traces in one row group (sizes the row groups' bloom filters).
    max_group_traces: usize,
    traces: usize,
    min_trace_id: String,
    max_trace_id: String,
}

/// Most entries of the map column `idx` in one row group: a bound on the distinct values its
/// bloom filter is sized for before the writer folds it to its contents. A group of one trace
/// larger than a row group is split by the writer, so count in row-group-sized chunks.
fn max_group_entries(batches: &[RecordBatch], groups: &[Vec<(usize, usize)>], idx: usize) -> u64 {
    let maps: Vec<_> = batches.iter().map(|b| b.column(idx).as_map()).collect();
    groups
        .iter()
        .flat_map(|group| group.chunks(ROW_GROUP_ROWS))
        .map(|rows| {
            rows.iter()
                .map(|&(batch, row)| maps[batch].value_length(row) as u64)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

/// Plans the row order of a file. A row group then covers a narrow slice of time (searches,
/// which go newest first, skip the others by their `start_time` statistics), and within it
/// the sorted `trace_id` keeps a trace's spans adjacent for the bloom filter and page index.
fn layout(batches: &[RecordBatch], trace_idx: usize, start_idx: usize) -> Result<Layout> {
    let ids: Vec<_> = batches
        .iter()
        .map(|b| b.column(trace_idx).as_string::<i32>())
        .collect();
    let keys = trace_keys(&ids);
    // (trace key, start, row), sorted: by trace id, then start time. Numbers compare in an
    // instruction where the ids' strings took a call each (BENCHMARKS.md).
    let mut sorted: Vec<(u128, i64, u32)> = Vec::with_capacity(keys.len());
    for batch in batches {
        let starts = batch
            .column(start_idx)
            .as_primitive::<TimestampNanosecondType>();
        for &start in starts.values() {
            let row = sorted.len();
            sorted.push((keys[row], start, row as u32));
        }
    }
    sorted.sort_unstable();
    // Runs of one trace in `sorted`: (first position, length); a run's first row is the
    // trace's earliest span.
    let mut traces: Vec<(usize, usize)> = Vec::new();
    for (pos, &(key, _, _)) in sorted.iter().enumerate() {
        match traces.last_mut() {
            Some((_, len)) if sorted[pos - 1].0 == key => *len += 1,
            _ => traces.push((pos, 1)),
        }
    }
    // Stable: traces starting at the same time stay in trace id order.
    traces.sort_by_key(|&(pos, _)| sorted[pos].1);

    let mut offsets = Vec::with_capacity(batches.len());
    let mut offset = 0;
    for batch in batches {
        offsets.push(offset);
        offset += batch.num_rows();
    }
    let locate = |row: u32| {
        let row = row as usize;
        let batch = offsets.partition_point(|&o| o <= row) - 1;
        (batch, row - offsets[batch])
    };
    let trace_id = |pos: usize| {
        let (batch, row) = locate(sorted[pos].2);
        ids[batch].value(row).to_string()
    };
    let (min_trace_id, max_trace_id) = (trace_id(0), trace_id(sorted.len() - 1));
    let mut groups = Vec::new();
    let mut max_group_traces = 0;
    let mut rest = &mut traces[..];
    while !rest.is_empty() {
        // Whole traces up to the row group size (a larger trace is a group of its own, which
        // the writer splits).
        let mut take = 0;
        let mut rows = 0;
        while take < rest.len() && (take == 0 || rows + rest[take].1 <= ROW_GROUP_ROWS) {
            rows += rest[take].1;
            take += 1;
        }
        let (group, tail) = rest.split_at_mut(take);
        group.sort_unstable_by_key(|&(pos, _)| pos);
        max_group_traces = max_group_traces.max(group.len());
        groups.push(
            group
                .iter()
                .flat_map(|&(pos, len)| {
                    sorted[pos..pos + len]
                        .iter()
                        .map(|&(_, _, row)| locate(row))
                })
                .collect(),
        );
        rest = tail;
    }
    Ok(Layout {
        groups,
        max_group_traces,
        traces: traces.len(),
        min_trace_id,
        max_trace_id,
    })
}

/// Per row of `ids` (in order, batch after batch), a number that sorts as its trace id does.
/// Every id the collector writes is 32 lowercase hex digits, whose value as a number sorts as
/// the string; other ids (files written by other tools, tests) are ranked among the file's
/// distinct ids.
fn trace_keys(ids: &[&StringArray]) -> Vec<u128> {
    // By hand: `u128::from_str_radix` (after a check for lowercase) cost ~800 instructions
    // an id, as much as the sort it saves.
    let hex = |id: &str| {
        if id.len() != 32 {
            return None;
        }
        id.bytes().try_fold(0u128, |key, b| {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            Some(key << 4 | u128::from(digit))
        })
    };
    let all = || ids.iter().flat_map(|a| a.iter().map(|id| id.unwrap_or("")));
    if let Some(keys) = all().map(hex).collect::<Option<Vec<u128>>>() {
        return keys;
    }
    let mut distinct: Vec<&str> = all().collect();
    distinct.sort_unstable();
    distinct.dedup();
    all()
        .map(|id| distinct.partition_point(|&d| d < id) as u128)
        .collect()
}

/// Encodes `batches` (of [`span_schema`]) as one Parquet file of [`file_schema`], laid out as
/// [`layout`] says.
pub fn encode(batches: &[RecordBatch], effort: Effort) -> Result<EncodedFile> {
    let schema = span_schema();
    let stored = file_schema();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Err(Error::Internal(
            "refusing to write an empty parquet file".into(),
        ));
    }
    let trace_idx = schema.index_of(col::TRACE_ID)?;
    let start_idx = schema.index_of(col::START_TIME)?;
    let end_idx = schema.index_of(col::END_TIME)?;
    let layout = layout(batches, trace_idx, start_idx)?;

    let (mut min_start_ns, mut max_start_ns, mut max_end_ns) = (i64::MAX, i64::MIN, i64::MIN);
    for batch in batches {
        let starts = batch
            .column(start_idx)
            .as_primitive::<TimestampNanosecondType>();
        let ends = batch
            .column(end_idx)
            .as_primitive::<TimestampNanosecondType>();
        min_start_ns = min_start_ns.min(arrow::compute::min(starts).unwrap_or(i64::MAX));
        max_start_ns = max_start_ns.max(arrow::compute::max(starts).unwrap_or(i64::MIN));
        max_end_ns = max_end_ns.max(arrow::compute::max(ends).unwrap_or(i64::MIN));
    }
    let mut trace_filter = Sbbf::new_with_ndv_fpp(layout.traces as u64, TRACE_FILTER_FPP)?;
    let trace_col = ColumnPath::from(col::TRACE_ID);
    let mut props = WriterProperties::builder();
    for (path, encoding) in NO_DICTIONARY {
        let path = ColumnPath::new(path.iter().map(|p| p.to_string()).collect());
        props = props
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, *encoding);
    }
    // Statistics only where a reader prunes with them: top-level columns of comparable values.
    // Map and list leaves (DataFusion cannot prune `attributes['k'] = 'v'` by them) and random
    // ids cost a comparison per value for nothing.
    props = props.set_statistics_enabled(EnabledStatistics::None);
    // Dedicated attribute columns neither: filters reach them through `attributes['k']`,
    // which the spans table checks against their bloom filters.
    for field in stored.fields() {
        let name = field.name().as_str();
        let random = [col::SPAN_ID, col::PARENT_SPAN_ID].contains(&name);
        let dedicated = DEDICATED_ATTRIBUTES
            .iter()
            .any(|(_, column)| *column == name);
        if !field.data_type().is_nested() && !random && !dedicated {
            props = props.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::Page,
            );
        }
    }
    for name in VALUE_FILTER_COLUMNS {
        let entries = max_group_entries(batches, &layout.groups, schema.index_of(name)?);
        let path = ColumnPath::new(vec![name.into(), "key_value".into(), "value".into()]);
        props = props
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_max_ndv(path.clone(), entries.max(1))
            .set_column_bloom_filter_fpp(path, ROW_GROUP_VALUE_FPP);
    }
    // At most one value per span: sized for the largest row group, folded to its contents.
    let group_rows = layout
        .groups
        .iter()
        .map(|g| g.len().min(ROW_GROUP_ROWS))
        .max()
        .unwrap_or(1);
    for (_, column) in DEDICATED_ATTRIBUTES {
        let path = ColumnPath::from(column);
        props = props
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_max_ndv(path.clone(), group_rows as u64)
            .set_column_bloom_filter_fpp(path, ROW_GROUP_VALUE_FPP);
    }
    let props = props
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(effort.zstd_level())?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_column_bloom_filter_enabled(trace_col.clone(), true)
        .set_column_bloom_filter_max_ndv(trace_col.clone(), layout.max_group_traces as u64)
        .set_column_bloom_filter_fpp(trace_col, ROW_GROUP_TRACE_FPP)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_string(),
            SCHEMA_VERSION.to_string(),
        )]))
        .set_created_by(format!("spanlake {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(&stored), Some(props))?;
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    let attributes_idx = schema.index_of(col::ATTRIBUTES)?;
    let mut left_in_map = 0;
    for group in &layout.groups {
        // Every column gathered once, one row group at a time: one extra copy of a row
        // group, not of the file.
        let sorted = interleave_record_batch(&inputs, group)?;
        let ids = sorted.column(trace_idx).as_string::<i32>();
        for i in 0..ids.len() {
            if i == 0 || ids.value(i) != ids.value(i - 1) {
                trace_filter.insert(ids.value(i));
            }
        }
        let split = dedicated::split(sorted.column(attributes_idx).as_map())?;
        left_in_map += split.left_in_map;
        let mut columns = sorted.columns().to_vec();
        columns[attributes_idx] = Arc::new(split.attributes);
        columns.remove(end_idx);
        columns.extend(split.columns);
        writer.write(&RecordBatch::try_new(Arc::clone(&stored), columns)?)?;
        writer.flush()?;
    }
    writer.append_key_value_metadata(KeyValue::new(
        ARRAY_KEYS_KEY.to_string(),
        array_keys(batches)?,
    ));
    writer.append_key_value_metadata(KeyValue::new(
        NESTED_KEYS_KEY.to_string(),
        nested_keys(batches)?,
    ));
    writer.append_key_value_metadata(KeyValue::new(
        LEFT_IN_MAP_KEY.to_string(),
        left_in_map.to_string(),
    ));
    writer.close()?;

    Ok(EncodedFile {
        bytes,
        rows: rows as u64,
        min_start_ns,
        max_start_ns,
        max_end_ns,
        min_trace_id: layout.min_trace_id,
        max_trace_id: layout.max_trace_id,
        trace_filter,
    })
}

/// A batch read from a span file, in [`span_schema`]: the dedicated attribute columns merged
/// back into `attributes` (a file without them, before version 3, has them all in the map),
/// and `end_time` as `start_time + duration_ns` (wrapping, as the SQL `+` the spans table
/// computes it with), also for a version 1 file that stores it, so that compaction and queries
/// agree. Spanlake always wrote `duration_ns` as `end - start` (saturated), so the two differ
/// only for spans whose end lies more than 292 years after their start.
pub fn to_span_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = span_schema();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("span file without the column {name}")))
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            col::END_TIME => {
                let starts = column(col::START_TIME)?.as_primitive::<TimestampNanosecondType>();
                let durations = column(col::DURATION_NS)?.as_primitive::<Int64Type>();
                let ends = arrow::compute::binary::<_, _, _, TimestampNanosecondType>(
                    starts,
                    durations,
                    |start, duration| start.wrapping_add(duration),
                )?;
                Ok(Arc::new(ends.with_data_type(field.data_type().clone())) as ArrayRef)
            }
            col::ATTRIBUTES => {
                let dedicated: Vec<ArrayRef> = DEDICATED_ATTRIBUTES
                    .iter()
                    .map(|(_, name)| {
                        batch.column_by_name(name).cloned().unwrap_or_else(|| {
                            arrow::array::new_null_array(
                                &arrow::datatypes::DataType::Utf8,
                                batch.num_rows(),
                            )
                        })
                    })
                    .collect();
                let map: &MapArray = column(col::ATTRIBUTES)?.as_map();
                Ok(Arc::new(dedicated::merge(map, &dedicated)?) as ArrayRef)
            }
            // A column added since the file was written.
            name if field.is_nullable() && batch.column_by_name(name).is_none() => Ok(
                arrow::array::new_null_array(field.data_type(), batch.num_rows()),
            ),
            name => column(name).cloned(),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Reads a whole span file back as batches of [`span_schema`] (for compaction, whose inputs
/// are small files).
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
            .map(|batch| to_span_batch(&batch?))
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| Error::Internal(format!("parquet read task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AttrValue, SpanBatchBuilder, SpanFields, SpanKind};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;
    use std::collections::HashMap;

    /// Traces of 1-40 spans starting at pseudo-random times over an hour, in arrival order
    /// (neither by time nor by id), split over several batches like a flush's chunks.
    fn scattered_traces(spans: usize) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        let mut b = SpanBatchBuilder::new();
        let (mut state, mut made, mut trace) = (7u64, 0, 0u64);
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        while made < spans {
            trace += 1;
            let id = ((next() << 32) | next()).to_be_bytes();
            let trace_id = [id, trace.to_be_bytes()].concat();
            let start = 1_700_000_000_000_000_000 + (next() % 3_600_000) as i64 * 1_000_000;
            let n = (1 + next() % 40) as usize;
            for s in 0..n {
                let span_id = ((trace << 8) | s as u64).to_be_bytes();
                b.begin_span(&SpanFields {
                    trace_id: &trace_id,
                    span_id: &span_id,
                    service_name: "svc",
                    name: "op",
                    kind: SpanKind::Server,
                    // Later spans of a trace first, as services report out of order.
                    start_unix_nano: start + (n - s) as i64 * 1_000,
                    end_unix_nano: start + 5_000_000,
                    ..SpanFields::default()
                });
                b.end_span();
            }
            made += n;
            if b.len() >= 10_000 {
                batches.push(b.finish().unwrap());
            }
        }
        batches.push(b.finish().unwrap());
        batches
    }

    #[test]
    fn row_groups_hold_whole_traces_in_time_order_sorted_by_trace_id() {
        let batches = scattered_traces(200_000);
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let file = encode(&batches, Effort::Flush).unwrap();
        assert_eq!(file.rows as usize, rows);

        let bytes = bytes::Bytes::from(file.bytes);
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let meta = reader.metadata();
        assert!(
            meta.num_row_groups() >= 4,
            "{} row groups",
            meta.num_row_groups()
        );
        let start_col = meta
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == col::START_TIME)
            .unwrap();
        // Row groups cover successive slices of time: each begins where the previous one's
        // traces began (a trace's later spans may reach a little further).
        let mut last_min = i64::MIN;
        for rg in meta.row_groups() {
            assert!(rg.num_rows() as usize <= ROW_GROUP_ROWS);
            let Some(Statistics::Int64(s)) = rg.column(start_col).statistics() else {
                panic!("no start_time statistics");
            };
            let (min, max) = (*s.min_opt().unwrap(), *s.max_opt().unwrap());
            assert!(min >= last_min);
            assert!(
                max - min < 3_600_000_000_000 / 2,
                "a row group spans {} s",
                (max - min) / 1_000_000_000
            );
            last_min = min;
        }

        // Read back: every span once, each trace within one row group, ids sorted within a
        // row group and a trace's spans by start time.
        let mut group_of: HashMap<String, usize> = HashMap::new();
        let mut read = 0;
        for rg in 0..meta.num_row_groups() {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes.clone(),
            )
            .unwrap()
            .with_row_groups(vec![rg])
            .build()
            .unwrap();
            let mut previous: Option<(String, i64)> = None;
            for batch in reader {
                let batch = batch.unwrap();
                let ids = batch.column(0).as_string::<i32>();
                let starts = batch
                    .column_by_name(col::START_TIME)
                    .unwrap()
                    .as_primitive::<TimestampNanosecondType>();
                for i in 0..batch.num_rows() {
                    let key = (ids.value(i).to_string(), starts.value(i));
                    assert!(
                        previous.as_ref().is_none_or(|p| *p <= key),
                        "unsorted at {key:?}"
                    );
                    assert_eq!(
                        *group_of.entry(key.0.clone()).or_insert(rg),
                        rg,
                        "trace split"
                    );
                    previous = Some(key);
                }
                read += batch.num_rows();
            }
        }
        assert_eq!(read, rows);
        assert_eq!(group_of.len(), file_traces(&batches));
        assert!(
            group_of
                .keys()
                .all(|id| file.trace_filter.check(id.as_str()))
        );
        assert_eq!(file.min_trace_id, *group_of.keys().min().unwrap());
        assert_eq!(file.max_trace_id, *group_of.keys().max().unwrap());
    }

    #[test]
    fn trace_keys_sort_as_the_ids_do() {
        let sorts_as_strings = |ids: &[&str]| {
            let (first, second) = ids.split_at(ids.len() / 2);
            let arrays = [
                StringArray::from(first.to_vec()),
                StringArray::from(second.to_vec()),
            ];
            let keys = trace_keys(&[&arrays[0], &arrays[1]]);
            assert_eq!(keys.len(), ids.len());
            for (i, a) in ids.iter().enumerate() {
                for (j, b) in ids.iter().enumerate() {
                    assert_eq!(keys[i].cmp(&keys[j]), a.cmp(b), "{a} against {b}");
                }
            }
        };
        // What the collector writes: lowercase hex, including ids past i128's range.
        sorts_as_strings(&[
            "ffffffffffffffffffffffffffffffff",
            "0000000000000000000000000000000a",
            "00000000000000000000000000000009",
            "80000000000000000000000000000000",
            "0000000000000000000000000000000a",
            "7fffffffffffffffffffffffffffffff",
        ]);
        // Sets of only hex digits that are not all 32 lowercase ones must not be read as
        // numbers ("10" < "9", "A" != "a").
        sorts_as_strings(&["10", "9", "0a", "100"]);
        sorts_as_strings(&[
            "0000000000000000000000000000000A",
            "0000000000000000000000000000000a",
            "00000000000000000000000000000009",
            "0000000000000000000000000000000b",
        ]);
        sorts_as_strings(&[
            "100000000000000000000000000000000",
            "fffffffffffffffffffffffffffffffff",
            "20000000000000000000000000000000",
            "ffffffffffffffffffffffffffffffff",
        ]);
        // Anything else (other writers, uppercase, short ids) is ranked, still in string order.
        sorts_as_strings(&[
            "0000000000000000000000000000000a",
            "0000000000000000000000000000000A",
            "trace-2",
            "trace-10",
            "",
            "trace-2",
            "+0000000000000000000000000000000",
            "00000000000000000000000000000009",
        ]);
    }

    #[test]
    fn row_group_bloom_filters_turn_away_a_chunk_of_other_traces() {
        use parquet::file::properties::ReaderProperties;
        use parquet::file::serialized_reader::ReadOptionsBuilder;

        let file = encode(&scattered_traces(200_000), Effort::Flush).unwrap();
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let bytes = bytes::Bytes::from(file.bytes);
        let reader = SerializedFileReader::new_with_options(bytes.clone(), options).unwrap();
        let groups = reader.metadata().num_row_groups();
        assert!(groups >= 4, "{groups} row groups");
        let mut traces: Vec<Vec<String>> = Vec::new();
        let mut filters = Vec::new();
        for rg in 0..groups {
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes.clone(),
            )
            .unwrap();
            let trace_only = parquet::arrow::ProjectionMask::leaves(builder.parquet_schema(), [0]);
            let mut ids: Vec<String> = Vec::new();
            for batch in builder
                .with_row_groups(vec![rg])
                .with_projection(trace_only)
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                for id in batch.column(0).as_string::<i32>().iter().flatten() {
                    if ids.last().map(String::as_str) != Some(id) {
                        ids.push(id.to_string());
                    }
                }
            }
            let group = reader.get_row_group(rg).unwrap();
            filters.push(group.get_column_bloom_filter(0).unwrap().clone());
            traces.push(ids);
        }
        for (rg, ids) in traces.iter().enumerate() {
            assert!(ids.iter().all(|id| filters[rg].check(id.as_str())));
        }
        // A structural search asks for 2 000 candidate traces at once, which live in one or
        // two row groups: the others' filters must turn the whole chunk away.
        let chunk: Vec<&String> = traces[0].iter().chain(&traces[1]).take(2_000).collect();
        assert_eq!(chunk.len(), 2_000);
        let passed = (2..groups)
            .filter(|&rg| chunk.iter().any(|id| filters[rg].check(id.as_str())))
            .count();
        assert!(
            passed <= 1,
            "{passed} of {} other row groups passed",
            groups - 2
        );
    }

    #[test]
    fn statistics_and_dictionaries_only_where_they_pay() {
        let mut b = SpanBatchBuilder::new();
        for i in 0..2_000u64 {
            let (trace_id, span_id) = ([(i / 10) as u8; 16], i.to_be_bytes());
            b.begin_span(&SpanFields {
                trace_id: &trace_id,
                span_id: &span_id,
                service_name: "svc",
                name: "op",
                start_unix_nano: 1_700_000_000_000_000_000 + i as i64,
                end_unix_nano: 1_700_000_000_000_000_000 + 2 * i as i64,
                ..SpanFields::default()
            });
            let attributes = b.attributes();
            attributes.push("http.route", &AttrValue::Str("/api/orders/{id}"));
            attributes.push("user.id", &AttrValue::Str(&format!("user-{i}")));
            attributes.push("http.status_code", &AttrValue::Int(200));
            b.resource_attributes()
                .push("host.name", &AttrValue::Str("node-1"));
            b.end_span();
        }
        let file = encode(&[b.finish().unwrap()], Effort::Flush).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(file.bytes)).unwrap();
        let group = reader.metadata().row_group(0);
        let chunk = |path: &str| {
            group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == path)
                .unwrap_or_else(|| panic!("no column {path}"))
        };
        // Readers prune by these: row group statistics (and the page index) are kept.
        for path in [
            col::TRACE_ID,
            col::SERVICE_NAME,
            col::SPAN_NAME,
            col::START_TIME,
            col::DURATION_NS,
            col::STATUS_CODE,
        ] {
            assert!(
                chunk(path).statistics().is_some(),
                "{path} lost its statistics"
            );
            assert!(
                chunk(path).column_index_length().is_some(),
                "{path}: no page index"
            );
        }
        // Nothing prunes by these.
        for path in [
            col::SPAN_ID,
            col::PARENT_SPAN_ID,
            "attributes.key_value.key",
            "attributes.key_value.value",
            "resource_attributes.key_value.value",
            "attribute_types.key_value.value",
        ] {
            assert!(chunk(path).statistics().is_none(), "{path} has statistics");
        }
        let dictionary = |path: &str| {
            chunk(path)
                .encodings()
                .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
        };
        assert!(!dictionary("attributes.key_value.value"));
        assert!(!dictionary(col::SPAN_ID));
        assert!(dictionary("attributes.key_value.key"));
        assert!(dictionary("resource_attributes.key_value.value"));
        assert!(dictionary(col::SERVICE_NAME));
    }

    #[tokio::test]
    async fn end_time_is_not_stored_and_reads_back() {
        let batches = scattered_traces(20_000);
        let file = encode(&batches, Effort::Flush).unwrap();
        let bytes = bytes::Bytes::from(file.bytes);
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let leaves = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .to_vec();
        assert!(leaves.iter().all(|c| c.name() != col::END_TIME));
        assert!(leaves.iter().any(|c| c.name() == col::DURATION_NS));

        let objects = Arc::new(object_store::memory::InMemory::new());
        use object_store::ObjectStoreExt;
        objects
            .put(&"f.parquet".into(), bytes.into())
            .await
            .unwrap();
        let back = read(objects, "f.parquet").await.unwrap();
        // (span id, end) of every span, before and after.
        let ends = |batches: &[RecordBatch]| {
            let mut all: Vec<(String, i64)> = Vec::new();
            for b in batches {
                assert_eq!(b.schema(), span_schema());
                let ids = b.column_by_name(col::SPAN_ID).unwrap().as_string::<i32>();
                let ends = b.column_by_name(col::END_TIME).unwrap();
                let ends = ends.as_primitive::<TimestampNanosecondType>();
                all.extend((0..b.num_rows()).map(|i| (ids.value(i).to_string(), ends.value(i))));
            }
            all.sort();
            all
        };
        assert_eq!(ends(&back), ends(&batches));

        // A version 1 batch, which stores it, gets the computation too (the two agree for
        // any file Spanlake wrote).
        let v1 = &batches[0];
        assert_eq!(&to_span_batch(v1).unwrap(), v1);
        let mut skewed = v1.columns().to_vec();
        let end_idx = v1.schema().index_of(col::END_TIME).unwrap();
        skewed[end_idx] = Arc::new(
            arrow::compute::kernels::numeric::add(
                &skewed[end_idx],
                &arrow::array::DurationNanosecondArray::new_scalar(7),
            )
            .unwrap(),
        );
        let skewed = RecordBatch::try_new(v1.schema(), skewed).unwrap();
        assert_eq!(&to_span_batch(&skewed).unwrap(), v1);
    }

    fn file_traces(batches: &[RecordBatch]) -> usize {
        let mut ids = std::collections::HashSet::new();
        for b in batches {
            let col = b.column(0).as_string::<i32>();
            ids.extend((0..b.num_rows()).map(|i| col.value(i).to_string()));
        }
        ids.len()
    }
}
