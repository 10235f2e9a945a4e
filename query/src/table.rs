//! The `spans` table: one tenant's Parquet files plus its recent spans still in memory, as one
//! DataFusion [`TableProvider`].
//!
//! Filters on `trace_id` (equality) and `start_time` (ranges) choose the files through the
//! catalog before anything is opened; every filter is also handed to the Parquet scan, which
//! prunes row groups and pages with statistics, the page index and the `trace_id` bloom filter.
//! Filters on attribute values (`attributes['k'] = 'v'`, alone or ORed with the same on
//! `resource_attributes`) skip the row groups whose value bloom filters rule the value out,
//! which DataFusion cannot do by itself for a map lookup.
//!
//! Files do not store `end_time` (it is `start_time + duration_ns`) and keep the dedicated
//! attributes out of the `attributes` map: the scan of files reads the stored columns and
//! computes `end_time` and the whole map on top, so files and memory answer with one schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::datatypes::{SchemaRef, TimestampNanosecondType};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, internal_datafusion_err};
use datafusion::datasource::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetAccessPlan, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::error::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, cast,
};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::bloom_filter::Sbbf;
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use futures::StreamExt;
use object_store::ObjectStore;
use spanlake_storage::dedicated::{self, LEFT_IN_MAP_KEY};
use spanlake_storage::parquet_file::{ARRAY_KEYS_KEY, NESTED_KEYS_KEY, VALUE_FILTER_COLUMNS};
use spanlake_storage::schema::{
    DEDICATED_ATTRIBUTES, col, file_schema, span_schema, timestamp_type,
};
use spanlake_storage::{SegmentSource, TenantId, TimeRange};

/// The URL under which the store's object store is registered with DataFusion.
pub const STORE_URL: &str = "spanlake://store";

/// What scans of a table chose to read: files from the catalog and spans from memory.
#[derive(Debug, Default)]
pub struct ScanStats {
    pub files: AtomicU64,
    pub file_bytes: AtomicU64,
    pub memory_rows: AtomicU64,
    pub memory_bytes: AtomicU64,
}

/// One tenant's spans.
pub struct SpansTable {
    source: Arc<dyn SegmentSource>,
    tenant: TenantId,
    schema: SchemaRef,
    stats: Arc<ScanStats>,
}

impl std::fmt::Debug for SpansTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpansTable")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl SpansTable {
    pub fn new(source: Arc<dyn SegmentSource>, tenant: TenantId) -> Self {
        Self {
            source,
            tenant,
            schema: span_schema(),
            stats: Arc::default(),
        }
    }

    /// Counters of what this table's scans selected.
    pub fn stats(&self) -> Arc<ScanStats> {
        Arc::clone(&self.stats)
    }
}

/// What the filters say about which files can matter.
#[derive(Debug, PartialEq)]
pub(crate) struct Pruning {
    pub range: TimeRange,
    /// Empty means any trace.
    pub trace_ids: Vec<String>,
    /// Attribute values the rows must hold: per ANDed filter, the (map column, dedicated
    /// column of the key, value) triples of which a matching row has at least one.
    pub values: Vec<Vec<ValueWanted>>,
}

fn timestamp_ns(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

fn text_literal(expr: &Expr) -> Option<&str> {
    match literal(expr)? {
        ScalarValue::Utf8(Some(v)) | ScalarValue::Utf8View(Some(v)) => Some(v),
        ScalarValue::LargeUtf8(Some(v)) => Some(v),
        _ => None,
    }
}

/// A value one of the map columns with value filters must hold under some key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueWanted {
    pub map: &'static str,
    /// The key's dedicated column in files (`attributes` only).
    pub column: Option<&'static str>,
    pub value: String,
    /// The key, when an array value holding the value as an element passes too (TraceQL):
    /// a file with arrays under the key may hold it whatever its bloom filters say.
    pub array_key: Option<String>,
    /// Instead of a value: a key of an attribute set without value filters (the scope's, the
    /// events', the links'), and the column. A file may hold it when it lists the key there.
    pub nested_key: Option<(&'static str, String)>,
}

impl ValueWanted {
    fn new(map: &'static str, column: Option<&'static str>, value: &str) -> Self {
        Self {
            map,
            column,
            value: value.to_string(),
            array_key: None,
            nested_key: None,
        }
    }

    fn nested(column: &'static str, key: &str) -> Self {
        Self {
            nested_key: Some((column, key.to_string())),
            ..Self::new(column, None, "")
        }
    }
}

/// `has_attribute(events, 'k', 'v')` (or `links`), or `scope_attributes['k'] = 'v'`: the
/// nested attribute set and the key.
fn nested_alternative(expr: &Expr) -> Option<ValueWanted> {
    match expr {
        Expr::ScalarFunction(f) if f.name() == crate::nested::HAS_ATTRIBUTE => {
            let [list, key, _] = f.args.as_slice() else {
                return None;
            };
            let column = [col::EVENTS, col::LINKS]
                .into_iter()
                .find(|c| column_name(list) == Some(*c))?;
            Some(ValueWanted::nested(column, text_literal(key)?))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let get = match (strip_text_casts(left), strip_text_casts(right)) {
                (Expr::ScalarFunction(f), v) | (v, Expr::ScalarFunction(f))
                    if f.name() == "get_field" && text_literal(v).is_some() =>
                {
                    f
                }
                _ => return None,
            };
            let [map, key] = get.args.as_slice() else {
                return None;
            };
            if column_name(map) != Some(col::SCOPE_ATTRIBUTES) {
                return None;
            }
            Some(ValueWanted::nested(
                col::SCOPE_ATTRIBUTES,
                text_literal(key)?,
            ))
        }
        _ => None,
    }
}

/// `expr` without the casts between text types around it, which keep the value.
fn strip_text_casts(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(c) if c.field.data_type().is_string() => strip_text_casts(&c.expr),
        e => e,
    }
}

/// The map column of `m['k']` (a constant key), when that column has value filters, the
/// key's dedicated column, and the key.
fn value_filtered_map(expr: &Expr) -> Option<(&'static str, Option<&'static str>, &str)> {
    match strip_text_casts(expr) {
        Expr::ScalarFunction(f) if f.name() == "get_field" && f.args.len() == 2 => {
            let key = text_literal(&f.args[1])?;
            let name = column_name(&f.args[0])?;
            let map = VALUE_FILTER_COLUMNS.into_iter().find(|c| *c == name)?;
            let column = (map == col::ATTRIBUTES)
                .then(|| dedicated::column_of(key))
                .flatten();
            Some((map, column, key))
        }
        _ => None,
    }
}

/// `m['k'] = 'v'` on a map column with value filters, or ORs and ANDs of such (as TraceQL
/// writes an unscoped attribute, with the value's type beside it): the (column, value) pairs
/// of which a row that passes holds at least one.
fn value_alternatives(expr: &Expr) -> Option<Vec<ValueWanted>> {
    if let Some(nested) = nested_alternative(expr) {
        return Some(vec![nested]);
    }
    // TraceQL's `m['k'] = 'v'` on an array: an element equal to the value.
    if let Expr::ScalarFunction(f) = expr
        && f.name() == crate::traceql::arrays::NAME
        && let [value, _, op, wanted] = f.args.as_slice()
        && text_literal(op) == Some("=")
        && let (Some((map, column, key)), Some(wanted)) =
            (value_filtered_map(value), text_literal(wanted))
    {
        return Some(vec![ValueWanted {
            array_key: Some(key.to_string()),
            ..ValueWanted::new(map, column, wanted)
        }]);
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        // `coalesce(c, false)` passes exactly the rows that `c` passes.
        if let Expr::ScalarFunction(f) = expr
            && f.name() == "coalesce"
            && let [c, Expr::Literal(ScalarValue::Boolean(Some(false)), _)] = f.args.as_slice()
        {
            return value_alternatives(c);
        }
        return None;
    };
    match op {
        // A row that passes both sides passes either: one side's values are enough.
        Operator::And => value_alternatives(left).or_else(|| value_alternatives(right)),
        Operator::Or => {
            let mut either = value_alternatives(left)?;
            either.extend(value_alternatives(right)?);
            Some(either)
        }
        Operator::Eq => {
            let ((map, column, _), value) = match (value_filtered_map(left), text_literal(right)) {
                (Some(m), Some(v)) => (m, v),
                _ => (value_filtered_map(right)?, text_literal(left)?),
            };
            Some(vec![ValueWanted::new(map, column, value)])
        }
        _ => None,
    }
}

impl Pruning {
    pub(crate) fn from_filters(filters: &[Expr]) -> Self {
        let mut p = Pruning {
            range: TimeRange::ALL,
            trace_ids: Vec::new(),
            values: Vec::new(),
        };
        for f in filters {
            p.visit(f);
        }
        p
    }

    fn visit(&mut self, expr: &Expr) {
        if let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) = expr
        {
            self.visit(left);
            self.visit(right);
            return;
        }
        if let Some(values) = value_alternatives(expr) {
            self.values.push(values);
            return;
        }
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                // Normalise `literal op column` to `column op' literal`.
                let (column, op, value) = match (column_name(left), literal(right)) {
                    (Some(c), Some(v)) => (c, *op, v),
                    _ => match (literal(left), column_name(right), op.swap()) {
                        (Some(v), Some(c), Some(op)) => (c, op, v),
                        _ => return,
                    },
                };
                self.bound(column, op, value);
            }
            Expr::InList(list) if !list.negated => {
                if column_name(&list.expr) != Some(col::TRACE_ID) {
                    return;
                }
                let ids: Option<Vec<String>> = list
                    .list
                    .iter()
                    .map(|e| match literal(e) {
                        Some(ScalarValue::Utf8(Some(id)) | ScalarValue::Utf8View(Some(id))) => {
                            Some(id.clone())
                        }
                        _ => None,
                    })
                    .collect();
                if let Some(ids) = ids {
                    self.restrict_traces(ids);
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                if let (Some(c), Some(lo), Some(hi)) =
                    (column_name(expr), literal(low), literal(high))
                {
                    self.bound(c, Operator::GtEq, lo);
                    self.bound(c, Operator::LtEq, hi);
                }
            }
            _ => {}
        }
    }

    /// Several trace-id filters are ANDed: keep the ids common to all.
    fn restrict_traces(&mut self, ids: Vec<String>) {
        if self.trace_ids.is_empty() {
            self.trace_ids = ids;
        } else {
            self.trace_ids.retain(|id| ids.contains(id));
            if self.trace_ids.is_empty() {
                // Contradictory filters: no trace matches; keep one impossible id.
                self.trace_ids.push(String::new());
            }
        }
    }

    fn bound(&mut self, column: &str, op: Operator, value: &ScalarValue) {
        if column == col::TRACE_ID && op == Operator::Eq {
            if let ScalarValue::Utf8(Some(id)) | ScalarValue::Utf8View(Some(id)) = value {
                self.restrict_traces(vec![id.clone()]);
            }
            return;
        }
        if column != col::START_TIME {
            return;
        }
        let Some(ns) = timestamp_ns(value) else {
            return;
        };
        let r = &mut self.range;
        match op {
            Operator::Gt => r.start_ns = r.start_ns.max(ns.saturating_add(1)),
            Operator::GtEq => r.start_ns = r.start_ns.max(ns),
            Operator::Lt => r.end_ns = r.end_ns.min(ns),
            Operator::LtEq => r.end_ns = r.end_ns.min(ns.saturating_add(1)),
            Operator::Eq => {
                r.start_ns = r.start_ns.max(ns);
                r.end_ns = r.end_ns.min(ns.saturating_add(1));
            }
            _ => {}
        }
    }
}

/// The earliest and latest `start_time` of `batch`; `None` when it has none.
pub(crate) fn start_bounds(batch: &RecordBatch) -> Option<(i64, i64)> {
    let starts = batch
        .column_by_name(col::START_TIME)?
        .as_primitive_opt::<TimestampNanosecondType>()?;
    Some((arrow::compute::min(starts)?, arrow::compute::max(starts)?))
}

/// Which row groups of `file` may hold spans that pass `pruning`'s value filters, by their
/// `start_time` statistics and their attribute value bloom filters; `None` when none may.
/// The file comes back with its access plan.
async fn value_access_plan(
    store: Arc<dyn ObjectStore>,
    metadata_cache: Arc<FileMetadataCache>,
    file: PartitionedFile,
    pruning: &Pruning,
) -> Result<Option<PartitionedFile>> {
    // The same cache the Parquet scan reads its metadata from: fetched once for both.
    let metadata = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
        .with_file_metadata_cache(Some(metadata_cache))
        .fetch_metadata()
        .await?;
    let leaves = metadata.file_metadata().schema_descr().columns();
    let leaf = |path: &[&str]| leaves.iter().position(|c| c.path().parts() == path);
    let start_leaf = leaf(&[col::START_TIME]);
    // The filters a value may be checked against: each map's value leaf, each dedicated
    // attribute column (absent from files before version 3).
    let value_leaves: Vec<(&str, Option<usize>)> = VALUE_FILTER_COLUMNS
        .into_iter()
        .map(|map| (map, leaf(&[map, "key_value", "value"])))
        .chain(
            DEDICATED_ATTRIBUTES
                .iter()
                .map(|&(_, column)| (column, leaf(&[column]))),
        )
        .collect();
    // A dedicated key's value is in its column, and in the map too only for spans that repeat
    // the key, which a version 3 file counts (older files have every value in the map).
    let left_in_map = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == LEFT_IN_MAP_KEY))
        .and_then(|e| e.value.as_deref()?.parse::<u64>().ok());
    // Keys with array values, whose elements the filters do not hold (files before version 4
    // do not say).
    let array_keys: Option<serde_json::Map<String, serde_json::Value>> = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == ARRAY_KEYS_KEY))
        .and_then(|e| serde_json::from_str(e.value.as_deref()?).ok());
    let nested_keys: Option<serde_json::Map<String, serde_json::Value>> = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == NESTED_KEYS_KEY))
        .and_then(|e| serde_json::from_str(e.value.as_deref()?).ok());
    let reader: Box<dyn AsyncFileReader> = DefaultParquetFileReaderFactory::new(Arc::clone(&store))
        .create_reader(0, file.clone(), None, &ExecutionPlanMetricsSet::new())?;
    let reader_metadata = ArrowReaderMetadata::try_new(Arc::clone(&metadata), Default::default())?;
    let mut filters = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, reader_metadata);

    let mut plan = ParquetAccessPlan::new_all(metadata.num_row_groups());
    for group in 0..metadata.num_row_groups() {
        // A row group outside the time range is skipped by the scan anyway: spare its filters.
        let stats = start_leaf.and_then(|i| metadata.row_group(group).column(i).statistics());
        if let Some(Statistics::Int64(s)) = stats
            && let (Some(&lo), Some(&hi)) = (s.min_opt(), s.max_opt())
            && (lo >= pruning.range.end_ns || hi < pruning.range.start_ns)
        {
            plan.skip(group);
            continue;
        }
        // Read lazily: a filter that fails on span attributes needs no resource filter.
        let mut loaded: Vec<Option<Option<Sbbf>>> = vec![None; value_leaves.len()];
        for alternatives in &pruning.values {
            let mut may_hold = false;
            'alternatives: for wanted in alternatives {
                if let Some((nested, key)) = &wanted.nested_key {
                    // No filters there: the file may hold it where it has the key (or does
                    // not say).
                    if nested_keys.as_ref().is_none_or(|keys| {
                        keys.get(*nested)
                            .and_then(|k| k.as_array())
                            .is_none_or(|k| k.iter().any(|k| k.as_str() == Some(key)))
                    }) {
                        may_hold = true;
                        break 'alternatives;
                    }
                    continue;
                }
                let (map, column, value) = (&wanted.map, &wanted.column, &wanted.value);
                if let Some(key) = &wanted.array_key
                    && array_keys.as_ref().is_none_or(|keys| {
                        keys.get(*map)
                            .and_then(|k| k.as_array())
                            .is_none_or(|k| k.iter().any(|k| k.as_str() == Some(key)))
                    })
                {
                    // The key holds arrays in this file (or the file does not say).
                    may_hold = true;
                    break 'alternatives;
                }
                let in_column = column.and_then(|c| {
                    value_leaves
                        .iter()
                        .position(|&(name, leaf)| name == c && leaf.is_some())
                });
                let mut places = Vec::with_capacity(2);
                places.extend(in_column);
                if in_column.is_none() || left_in_map != Some(0) {
                    match value_leaves.iter().position(|(name, _)| name == map) {
                        Some(k) => places.push(k),
                        None => {
                            may_hold = true;
                            break 'alternatives;
                        }
                    }
                }
                for k in places {
                    if loaded[k].is_none() {
                        loaded[k] = Some(match value_leaves[k].1 {
                            Some(i) => filters.get_row_group_column_bloom_filter(group, i).await?,
                            None => None,
                        });
                    }
                    // No filter (a file written before them): the value may be there.
                    if loaded[k]
                        .as_ref()
                        .and_then(Option::as_ref)
                        .is_none_or(|f| f.check(value.as_str()))
                    {
                        may_hold = true;
                        break 'alternatives;
                    }
                }
            }
            if !may_hold {
                plan.skip(group);
                break;
            }
        }
    }
    if plan.row_group_indexes().is_empty() {
        return Ok(None);
    }
    Ok(Some(file.with_extension(plan)))
}

/// `end_time` as files give it: `start_time + duration_ns` (wrapping, as compaction computes
/// it in `parquet_file::to_span_batch`).
fn computed_end_time() -> Expr {
    use datafusion::logical_expr::col as column;
    cast(
        cast(column(col::START_TIME), arrow::datatypes::DataType::Int64) + column(col::DURATION_NS),
        timestamp_type(),
    )
}

/// `attributes` as files give it back: the map with the dedicated attribute columns merged
/// in ([`dedicated::merge`]). Used by the scan of files only, not a SQL function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MergeAttributes {
    signature: Signature,
}

impl ScalarUDFImpl for MergeAttributes {
    fn name(&self) -> &str {
        "spanlake_merge_attributes"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        args.first()
            .cloned()
            .ok_or_else(|| internal_datafusion_err!("merge of attributes without a map"))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let map = args
            .arg_fields
            .first()
            .ok_or_else(|| internal_datafusion_err!("merge of attributes without a map"))?;
        Ok(Arc::new(Field::new(
            self.name(),
            map.data_type().clone(),
            map.is_nullable(),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (map, columns) = arrays
            .split_first()
            .ok_or_else(|| internal_datafusion_err!("merge of attributes without a map"))?;
        let map = map
            .as_map_opt()
            .ok_or_else(|| internal_datafusion_err!("attributes are not a map"))?;
        let merged =
            dedicated::merge(map, columns).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(merged)))
    }
}

/// `attributes` over the stored columns of files.
fn merged_attributes() -> Expr {
    use datafusion::logical_expr::col as column;
    let udf = ScalarUDF::from(MergeAttributes {
        signature: Signature::variadic_any(Volatility::Immutable),
    });
    let mut args = vec![column(col::ATTRIBUTES)];
    args.extend(DEDICATED_ATTRIBUTES.iter().map(|&(_, c)| column(c)));
    udf.call(args)
}

/// `filter` over the stored columns of files: `end_time` replaced by its computation,
/// `attributes['k']` of a dedicated key by its column (or the map, where a span repeats the
/// key or the file has no such column), any other use of `attributes` by the merged map.
fn over_stored_columns(filter: &Expr) -> Result<Expr> {
    use datafusion::logical_expr::col as column;
    // Jump: the replacements refer to the stored columns, not to be replaced again.
    let replaced = |e| Ok(Transformed::new(e, true, TreeNodeRecursion::Jump));
    filter
        .clone()
        .transform_down(|e| match e {
            Expr::Column(c) if c.name == col::END_TIME => replaced(computed_end_time()),
            Expr::ScalarFunction(f)
                if f.name() == "get_field"
                    && f.args.len() == 2
                    && column_name(&f.args[0]) == Some(col::ATTRIBUTES)
                    && text_literal(&f.args[1])
                        .and_then(dedicated::column_of)
                        .is_some() =>
            {
                let key = text_literal(&f.args[1]).and_then(dedicated::column_of);
                let stored = column(key.unwrap_or_default());
                replaced(coalesce(vec![stored, Expr::ScalarFunction(f)]))
            }
            // Another key's lookup reads the stored map as it is: no merge needed.
            Expr::ScalarFunction(f)
                if f.name() == "get_field"
                    && f.args.len() == 2
                    && column_name(&f.args[0]) == Some(col::ATTRIBUTES)
                    && text_literal(&f.args[1]).is_some() =>
            {
                Ok(Transformed::new(
                    Expr::ScalarFunction(f),
                    false,
                    TreeNodeRecursion::Jump,
                ))
            }
            Expr::Column(c) if c.name == col::ATTRIBUTES => replaced(merged_attributes()),
            e => Ok(Transformed::no(e)),
        })
        .data()
}

impl SpansTable {
    /// The Parquet scan of `groups`, answering with the table's (projected) schema: DataFusion
    /// reads the stored columns ([`file_schema`]), filters included, and a projection on top
    /// computes `end_time` and merges `attributes` where they are asked for.
    async fn file_scan(
        &self,
        state: &dyn Session,
        groups: Vec<FileGroup>,
        rows: u64,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let stored = file_schema();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // The stored columns the wanted ones come from, in file order.
        let mut read = Vec::new();
        for &i in &wanted {
            let name = self.schema.field(i).name().as_str();
            let sources = match name {
                col::END_TIME => vec![col::START_TIME, col::DURATION_NS],
                col::ATTRIBUTES => std::iter::once(col::ATTRIBUTES)
                    .chain(DEDICATED_ATTRIBUTES.iter().map(|&(_, c)| c))
                    .collect(),
                name => vec![name],
            };
            for source in sources {
                let j = stored.index_of(source)?;
                if !read.contains(&j) {
                    read.push(j);
                }
            }
        }
        read.sort_unstable();

        let mut source = ParquetSource::new(Arc::clone(&stored));
        let filters = filters
            .iter()
            .map(over_stored_columns)
            .collect::<Result<Vec<_>>>()?;
        if let Some(predicate) = conjunction(filters) {
            let df_schema = DFSchema::try_from(Arc::clone(&stored))?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(Some(read.clone()))?
                .with_limit(limit)
                // The catalog's row counts: what the planner sizes joins by, and what refuses
                // joins that cannot finish (engine.rs). Row groups may still be pruned.
                .with_statistics(
                    datafusion::common::Statistics::new_unknown(&stored)
                        .with_num_rows(Precision::Inexact(rows as usize)),
                )
                .build();
        let format = ParquetFormat::new().with_options(state.table_options().parquet.clone());
        let scan = format.create_physical_plan(state, config).await?;

        let read_names: Vec<&str> = read
            .iter()
            .map(|&j| stored.field(j).name().as_str())
            .collect();
        let wanted_names: Vec<&str> = wanted
            .iter()
            .map(|&i| self.schema.field(i).name().as_str())
            .collect();
        if read_names == wanted_names {
            return Ok(scan);
        }
        let read_schema = DFSchema::try_from(scan.schema())?;
        let exprs = wanted_names
            .into_iter()
            .map(|name| {
                let expr: Arc<dyn datafusion::physical_expr::PhysicalExpr> = match name {
                    col::END_TIME => {
                        state.create_physical_expr(computed_end_time(), &read_schema)?
                    }
                    col::ATTRIBUTES => {
                        state.create_physical_expr(merged_attributes(), &read_schema)?
                    }
                    name => Arc::new(Column::new_with_schema(name, &scan.schema())?),
                };
                Ok((expr, name.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}

/// Whether a span of `batch` may start within `range`.
fn starts_overlap(batch: &RecordBatch, range: &TimeRange) -> bool {
    start_bounds(batch).is_none_or(|(lo, hi)| lo < range.end_ns && hi >= range.start_ns)
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used for pruning only: DataFusion still applies every filter to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let pruning = Pruning::from_filters(filters);
        let mut snapshot = self
            .source
            .snapshot(&self.tenant, &pruning.range, &pruning.trace_ids);
        // The store hands over every batch in memory; those whose spans all start outside the
        // filters' time range cannot match (a newest-first search asks for one slice of time
        // after another, and would otherwise scan the whole buffer each time).
        if pruning.range != TimeRange::ALL {
            snapshot
                .batches
                .retain(|batch| starts_overlap(batch, &pruning.range));
        }
        let partitions = state.config().target_partitions().max(1);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        let relaxed = Ordering::Relaxed;
        let mut files: Vec<PartitionedFile> = snapshot
            .files
            .iter()
            .map(|file| PartitionedFile::new(file.meta.path.clone(), file.meta.size))
            .collect();
        if !pruning.values.is_empty() {
            let store = self.source.object_store();
            let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
            // Files whose row groups all rule the values out are not scanned at all. A filter
            // that cannot be read only costs the skipping: the file is scanned whole.
            let planned: Vec<Option<PartitionedFile>> = futures::stream::iter(files)
                .map(|file| {
                    let (store, cache) = (Arc::clone(&store), Arc::clone(&cache));
                    let pruning = &pruning;
                    async move {
                        let path = file.object_meta.location.clone();
                        value_access_plan(store, cache, file.clone(), pruning)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::warn!(%path, error = %e, "attribute value filters unread");
                                Some(file)
                            })
                    }
                })
                .buffered(8)
                .collect()
                .await;
            files = planned.into_iter().flatten().collect();
        }
        // What the planner sizes joins by: the catalog's row counts of the files scanned.
        let file_rows: u64 = snapshot
            .files
            .iter()
            .filter(|kept| {
                files
                    .iter()
                    .any(|file| file.object_meta.location.as_ref() == kept.meta.path)
            })
            .map(|kept| kept.meta.rows)
            .sum();
        self.stats.files.fetch_add(files.len() as u64, relaxed);
        for file in &files {
            self.stats
                .file_bytes
                .fetch_add(file.object_meta.size, relaxed);
        }
        for batch in &snapshot.batches {
            self.stats
                .memory_rows
                .fetch_add(batch.num_rows() as u64, relaxed);
            self.stats
                .memory_bytes
                .fetch_add(batch.get_array_memory_size() as u64, relaxed);
        }

        if !files.is_empty() {
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
            for (i, file) in files.into_iter().enumerate() {
                groups[i % partitions].push(file);
            }
            let groups = groups
                .into_iter()
                .filter(|g| !g.is_empty())
                .map(FileGroup::new)
                .collect();
            inputs.push(
                self.file_scan(state, groups, file_rows, projection, filters, limit)
                    .await?,
            );
        }

        if !snapshot.batches.is_empty() {
            let mut parts = vec![Vec::new(); partitions.min(snapshot.batches.len())];
            let n = parts.len();
            for (i, batch) in snapshot.batches.into_iter().enumerate() {
                parts[i % n].push(batch);
            }
            let memory =
                MemorySourceConfig::try_new(&parts, Arc::clone(&self.schema), projection.cloned())?
                    .with_limit(limit);
            inputs.push(datafusion::datasource::source::DataSourceExec::from_data_source(memory));
        }

        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryEngine, QueryLimits};
    use arrow::datatypes::Int64Type;
    use datafusion::functions::core::expr_fn::{coalesce, get_field};
    use datafusion::prelude::{col, lit};
    use spanlake_storage::batch::{AttrValue, SpanBatchBuilder, SpanFields};
    use spanlake_storage::{SpanSink, Store, StoreConfig};

    fn ts(ns: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn extracts_trace_id_and_time_bounds() {
        let filters = vec![
            col("trace_id").eq(lit("abc")),
            col("start_time")
                .gt_eq(ts(100))
                .and(col("start_time").lt(ts(200))),
            ts(150).gt(col("start_time")),
            col("service_name").eq(lit("x")),
        ];
        assert_eq!(
            Pruning::from_filters(&filters),
            Pruning {
                range: TimeRange {
                    start_ns: 100,
                    end_ns: 150
                },
                trace_ids: vec!["abc".into()],
                values: vec![],
            }
        );
    }

    #[test]
    fn in_lists_of_trace_ids_prune() {
        let filters = vec![col("trace_id").in_list(vec![lit("a"), lit("b")], false)];
        assert_eq!(Pruning::from_filters(&filters).trace_ids, vec!["a", "b"]);
        let negated = vec![col("trace_id").in_list(vec![lit("a")], true)];
        assert!(Pruning::from_filters(&negated).trace_ids.is_empty());
    }

    #[test]
    fn or_and_negation_do_not_prune() {
        let filters = vec![
            col("trace_id")
                .eq(lit("a"))
                .or(col("trace_id").eq(lit("b"))),
            Expr::Not(Box::new(col("start_time").gt(ts(5)))),
        ];
        assert_eq!(
            Pruning::from_filters(&filters),
            Pruning {
                range: TimeRange::ALL,
                trace_ids: vec![],
                values: vec![],
            }
        );
    }

    #[test]
    fn attribute_values_asked_for_are_extracted() {
        let attr = |map: &str, key: &str| get_field(col(map), key);
        let filters = vec![
            attr("attributes", "enduser.id").eq(lit("u1")),
            attr("attributes", "region")
                .eq(lit("eu"))
                .or(lit("eu").eq(attr("resource_attributes", "region"))),
            // Not usable: a negation, an OR with another kind of filter, an event's map.
            attr("attributes", "a").not_eq(lit("x")),
            attr("attributes", "b")
                .eq(lit("y"))
                .or(col("service_name").eq(lit("s"))),
            attr("event_attributes", "c").eq(lit("z")),
            // TraceQL's unscoped `.tier = "gold"`, and a condition kept from being null.
            attr("attributes", "tier")
                .eq(lit("gold"))
                .and(attr("attribute_types", "tier").is_null())
                .or(attr("resource_attributes", "tier")
                    .eq(lit("gold"))
                    .and(attr("resource_attribute_types", "tier").is_null())),
            coalesce(vec![attr("attributes", "order").eq(lit("o-9")), lit(false)]),
            attr("attributes", "http.route").eq(lit("/cart")),
            attr("resource_attributes", "http.route").eq(lit("/cart")),
            // TraceQL's `span.tier = "gold"`: the text, or an element of an array.
            attr("attributes", "tier")
                .eq(lit("gold"))
                .and(attr("attribute_types", "tier").is_null())
                .or(crate::traceql::arrays::udf().call(vec![
                    attr("attributes", "tier"),
                    attr("attribute_types", "tier"),
                    lit("="),
                    lit("gold"),
                ])),
        ];
        assert_eq!(
            Pruning::from_filters(&filters).values,
            vec![
                vec![ValueWanted::new("attributes", None, "u1")],
                vec![
                    ValueWanted::new("attributes", None, "eu"),
                    ValueWanted::new("resource_attributes", None, "eu")
                ],
                vec![
                    ValueWanted::new("attributes", None, "gold"),
                    ValueWanted::new("resource_attributes", None, "gold")
                ],
                vec![ValueWanted::new("attributes", None, "o-9")],
                vec![ValueWanted::new(
                    "attributes",
                    Some("attr_http_route"),
                    "/cart"
                )],
                // Dedicated columns are for span attributes only.
                vec![ValueWanted::new("resource_attributes", None, "/cart")],
                vec![
                    ValueWanted::new("attributes", None, "gold"),
                    ValueWanted {
                        array_key: Some("tier".into()),
                        ..ValueWanted::new("attributes", None, "gold")
                    }
                ],
            ]
        );
    }

    /// A store that flushes only when told.
    async fn store_flushed_by_hand(dir: &std::path::Path) -> Arc<Store> {
        let mut config = StoreConfig::new(dir);
        config.flush_interval = std::time::Duration::from_secs(3600);
        Arc::new(Store::open(config).await.unwrap())
    }

    /// Begins span `n`, alone in its trace, of service `shop`, starting `offset_ns` after T0.
    fn begin_shop_span(b: &mut SpanBatchBuilder, n: u64, offset_ns: i64, duration_ns: i64) {
        let start = 1_700_000_000_000_000_000 + offset_ns;
        b.begin_span(&SpanFields {
            trace_id: &[[0; 8], n.to_be_bytes()].concat(),
            span_id: &(n + 1).to_be_bytes(),
            service_name: "shop",
            name: "checkout",
            start_unix_nano: start,
            end_unix_nano: start + duration_ns,
            ..SpanFields::default()
        });
    }

    /// `count(*)` of the spans passing `filter`, and the files and bytes the query read.
    async fn count_where(engine: &QueryEngine, tenant: &TenantId, filter: &str) -> (i64, u64, u64) {
        let sql = format!("SELECT count(*) FROM spans WHERE {filter}");
        let out = engine.query_measured(tenant, &sql, vec![]).await.unwrap();
        let n = out.batches[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        (n, out.files_read, out.bytes_read)
    }

    /// Files do not store `end_time`: the table computes it for their spans, in any
    /// projection and under filters, and answers with the same schema as for spans in memory.
    #[tokio::test]
    async fn end_time_is_computed_for_spans_in_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_flushed_by_hand(dir.path()).await;
        let tenant = TenantId::default_tenant();
        // Spans 0..50 in a file, 50..100 in memory; span n ends at T0 + n * 1 010.
        for part in [0..50u64, 50..100] {
            let mut b = SpanBatchBuilder::new();
            for n in part {
                begin_shop_span(&mut b, n, n as i64 * 1_000, n as i64 * 10);
                b.end_span();
            }
            store.append(&tenant, b.finish().unwrap()).await.unwrap();
            if store
                .snapshot(&tenant, &TimeRange::ALL, &[])
                .files
                .is_empty()
            {
                store.flush().await.unwrap();
            }
        }
        let engine = QueryEngine::new(store, QueryLimits::default()).unwrap();
        let t0 = 1_700_000_000_000_000_000i64;

        let out = engine
            .query(
                &tenant,
                "SELECT CAST(end_time AS BIGINT), duration_ns FROM spans ORDER BY start_time",
                vec![],
            )
            .await
            .unwrap();
        let ends: Vec<(i64, i64)> = out
            .iter()
            .flat_map(|b| {
                let (e, d) = (b.column(0).as_primitive::<Int64Type>(), b.column(1));
                let d = d.as_primitive::<Int64Type>();
                (0..b.num_rows()).map(move |i| (e.value(i), d.value(i)))
            })
            .collect();
        let expected: Vec<(i64, i64)> = (0..100).map(|n| (t0 + n * 1_010, n * 10)).collect();
        assert_eq!(ends, expected);

        // Filters on it reach the file scan rewritten; each side answers for its spans.
        let bound = |n: i64| format!("to_timestamp_nanos({})", t0 + n * 1_010);
        for (filter, want) in [
            (format!("end_time > {}", bound(40)), 59),
            (
                format!("end_time BETWEEN {} AND {}", bound(10), bound(19)),
                10,
            ),
            (format!("end_time < {} AND duration_ns > 0", bound(5)), 4),
        ] {
            let (n, files, _) = count_where(&engine, &tenant, &filter).await;
            assert_eq!((n, files), (want, 1), "{filter}");
        }

        // The newest ends first, from files (TopK's dynamic filter meets the computation).
        let out = engine
            .query(
                &tenant,
                "SELECT duration_ns FROM spans WHERE duration_ns < 500 \
                 ORDER BY end_time DESC LIMIT 3",
                vec![],
            )
            .await
            .unwrap();
        let top: Vec<i64> = out
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(top, vec![490, 480, 470]);

        // Whole rows and a projection of `end_time` alone have the table's schema.
        let all = engine
            .query(&tenant, "SELECT * FROM spans", vec![])
            .await
            .unwrap();
        assert_eq!(all.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
        for batch in &all {
            assert_eq!(batch.schema(), span_schema());
        }
        let only = engine
            .query(&tenant, "SELECT end_time FROM spans", vec![])
            .await
            .unwrap();
        assert_eq!(only.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
        assert_eq!(only[0].schema().field(0).data_type(), &timestamp_type());
    }

    /// Rewrites the tenant's only file as schema version 1 wrote it (`end_time` stored) and
    /// its catalog entry to match, with `end_time` of span `n` at `T0 + n * 1_010 + skew`:
    /// what the file stores is what a version 1 file answers with.
    fn rewrite_as_version_1(dir: &std::path::Path, path: &str, skew: i64) {
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use datafusion::parquet::file::metadata::KeyValue;
        use datafusion::parquet::file::properties::WriterProperties;
        let file = dir.join(path);
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        let mut batches = Vec::new();
        for batch in reader.build().unwrap() {
            // Whole spans (attributes merged back), with a stored `end_time` `skew` ns off.
            let batch = spanlake_storage::parquet_file::to_span_batch(&batch.unwrap()).unwrap();
            let (start, duration) = (
                batch.column_by_name(col::START_TIME).unwrap(),
                batch.column_by_name(col::DURATION_NS).unwrap(),
            );
            let end: arrow::array::TimestampNanosecondArray = arrow::compute::binary(
                start.as_primitive::<TimestampNanosecondType>(),
                duration.as_primitive::<Int64Type>(),
                |s, d| s + d + skew,
            )
            .unwrap();
            let columns = span_schema()
                .fields()
                .iter()
                .map(|f| match f.name().as_str() {
                    col::END_TIME => {
                        Arc::new(end.clone().with_timezone("UTC")) as arrow::array::ArrayRef
                    }
                    name => Arc::clone(batch.column_by_name(name).unwrap()),
                })
                .collect();
            batches.push(RecordBatch::try_new(span_schema(), columns).unwrap());
        }
        let props = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "spanlake.schema_version".to_string(),
                "1".to_string(),
            )]))
            .build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, span_schema(), Some(props)).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
        std::fs::write(&file, &bytes).unwrap();
        let written = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .schema()
            .clone();
        assert!(written.field_with_name(col::END_TIME).is_ok());
        let catalog = dir.join("catalog/tenant=single-tenant");
        let entry = std::fs::read_dir(&catalog)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        json["size"] = bytes.len().into();
        json["schema_version"] = 1.into();
        std::fs::write(&entry, serde_json::to_vec(&json).unwrap()).unwrap();
    }

    /// A data directory written before schema version 2: its files store `end_time` (here 7 ns
    /// off, to tell it apart; Spanlake always wrote start + duration), one column before the
    /// rest. The table reads their columns by name and computes `end_time` as for version 2
    /// files, under filters and ordering too, and compaction agrees: it merges them with
    /// version 2 files into one that does not store it.
    #[tokio::test]
    async fn version_1_files_read_and_compact_with_version_2_files() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::default_tenant();
        let t0 = 1_700_000_000_000_000_000i64;
        let spans = |part: std::ops::Range<u64>| {
            let mut b = SpanBatchBuilder::new();
            for n in part {
                begin_shop_span(&mut b, n, n as i64 * 1_000, n as i64 * 10);
                // A dedicated key: in the map of the version 1 file, in its column later.
                let route = format!("/r{}", n % 2);
                b.attributes().push("http.route", &AttrValue::Str(&route));
                b.end_span();
            }
            b.finish().unwrap()
        };
        let store = store_flushed_by_hand(dir.path()).await;
        store.append(&tenant, spans(0..50)).await.unwrap();
        store.flush().await.unwrap();
        let path = store.snapshot(&tenant, &TimeRange::ALL, &[]).files[0]
            .meta
            .path
            .clone();
        drop(store);
        rewrite_as_version_1(dir.path(), &path, 7);

        let mut config = StoreConfig::new(dir.path());
        config.flush_interval = std::time::Duration::from_secs(3600);
        config.compaction_min_files = 2;
        let store = Arc::new(Store::open(config).await.unwrap());
        let engine = QueryEngine::new(store.clone(), QueryLimits::default()).unwrap();
        let ends = |sql: &'static str| {
            let engine = &engine;
            let tenant = &tenant;
            async move {
                let out = engine.query(tenant, sql, vec![]).await.unwrap();
                out.iter()
                    .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                    .collect::<Vec<i64>>()
            }
        };
        let stored: Vec<i64> = (0..50).map(|n| t0 + n * 1_010).collect();
        assert_eq!(
            ends("SELECT CAST(end_time AS BIGINT) FROM spans ORDER BY start_time").await,
            stored
        );
        assert_eq!(
            ends("SELECT CAST(end_time AS BIGINT) AS e FROM spans ORDER BY end_time DESC LIMIT 2")
                .await,
            vec![stored[49], stored[48]]
        );
        let filter = format!("end_time >= to_timestamp_nanos({})", stored[40]);
        assert_eq!(count_where(&engine, &tenant, &filter).await.0, 10);
        let all = engine
            .query(&tenant, "SELECT * FROM spans", vec![])
            .await
            .unwrap();
        assert!(all.iter().all(|b| b.schema() == span_schema()));

        // A current file beside it, then both compacted into one of the current version.
        store.append(&tenant, spans(50..100)).await.unwrap();
        store.flush().await.unwrap();
        let route = "attributes['http.route'] = '/r1'";
        assert_eq!(count_where(&engine, &tenant, route).await.0, 50);
        assert_eq!(store.compact().await.unwrap().files_out, 1);
        assert_eq!(count_where(&engine, &tenant, route).await.0, 50);
        let files = store.snapshot(&tenant, &TimeRange::ALL, &[]).files;
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].meta.schema_version,
            spanlake_storage::schema::SCHEMA_VERSION
        );
        let expected: Vec<i64> = stored
            .iter()
            .copied()
            .chain((50..100).map(|n| t0 + n * 1_010))
            .collect();
        assert_eq!(
            ends("SELECT CAST(end_time AS BIGINT) FROM spans ORDER BY start_time").await,
            expected
        );
    }

    /// Spans with dedicated attributes (typed, repeated, missing, beside other keys) answer
    /// the same from files, which keep those keys in columns of their own, as from memory:
    /// projections of the map, lookups, filters on dedicated and other keys and on the whole
    /// map. A search for a route opens only the file that has it, by the column's filter.
    #[tokio::test]
    async fn dedicated_attributes_answer_from_files_as_from_memory() {
        let tenant = TenantId::default_tenant();
        let part = |routes: &[&str], from: u64| {
            let mut b = SpanBatchBuilder::new();
            for (i, route) in routes.iter().enumerate() {
                let n = from + i as u64;
                begin_shop_span(&mut b, n, n as i64 * 1_000, 500);
                let session = format!("s-{n}");
                b.attributes().push("session.id", &AttrValue::Str(&session));
                if !route.is_empty() {
                    b.attributes().push("http.route", &AttrValue::Str(route));
                }
                if n.is_multiple_of(3) {
                    b.attributes().push("server.port", &AttrValue::Int(8080));
                }
                if *route == "/twice" {
                    b.attributes().push("http.route", &AttrValue::Str("/again"));
                }
                b.end_span();
            }
            b.finish().unwrap()
        };
        let parts = [
            part(&["/a", "/a", "", "/twice"], 0),
            part(&["/b", "", "/b"], 10),
        ];
        let queries = [
            "SELECT span_id, attributes['http.route'], attributes['server.port'], \
             attribute_types['server.port'], attributes['session.id'], cardinality(attributes), \
             array_sort(map_keys(attributes)), array_sort(map_values(attributes)) \
             FROM spans ORDER BY span_id",
            "SELECT span_id FROM spans WHERE attributes['http.route'] = '/b' ORDER BY span_id",
            "SELECT span_id FROM spans WHERE attributes['http.route'] IS NULL ORDER BY span_id",
            "SELECT span_id FROM spans WHERE attributes['server.port'] = '8080' \
             AND attributes['session.id'] <> 's-0' ORDER BY span_id",
            "SELECT span_id FROM spans WHERE cardinality(attributes) = 3 ORDER BY span_id",
            "SELECT attributes['http.route'] AS r, count(*) FROM spans GROUP BY r ORDER BY r",
        ];
        let answers = |engine: QueryEngine| {
            let tenant = tenant.clone();
            async move {
                let mut out = Vec::new();
                for sql in queries {
                    let batches = engine.query(&tenant, sql, vec![]).await.unwrap();
                    out.push(
                        arrow::util::pretty::pretty_format_batches(&batches)
                            .unwrap()
                            .to_string(),
                    );
                }
                (out, engine)
            }
        };

        let memory_dir = tempfile::tempdir().unwrap();
        let memory = store_flushed_by_hand(memory_dir.path()).await;
        let files_dir = tempfile::tempdir().unwrap();
        let files = store_flushed_by_hand(files_dir.path()).await;
        for batch in &parts {
            memory.append(&tenant, batch.clone()).await.unwrap();
            files.append(&tenant, batch.clone()).await.unwrap();
            files.flush().await.unwrap();
        }
        let (from_memory, _) =
            answers(QueryEngine::new(memory, QueryLimits::default()).unwrap()).await;
        let (from_files, engine) =
            answers(QueryEngine::new(files.clone(), QueryLimits::default()).unwrap()).await;
        assert_eq!(files.snapshot(&tenant, &TimeRange::ALL, &[]).files.len(), 2);
        for (m, f) in from_memory.iter().zip(&from_files) {
            assert_eq!(m, f);
        }
        assert!(from_files[0].contains("/twice"), "{}", from_files[0]);

        // The route sits in its column in the file, out of the map.
        let path = files.snapshot(&tenant, &TimeRange::ALL, &[]).files[0]
            .meta
            .path
            .clone();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(files_dir.path().join(&path)).unwrap(),
            )
            .unwrap();
        let stored = reader.build().unwrap().next().unwrap().unwrap();
        let routes = stored.column_by_name("attr_http_route").unwrap();
        assert_eq!(
            routes.null_count(),
            2,
            "a span without it, a span that repeats it"
        );
        let keys = stored
            .column_by_name(col::ATTRIBUTES)
            .unwrap()
            .as_map()
            .keys()
            .clone();
        let in_map = keys
            .as_string::<i32>()
            .iter()
            .filter(|k| *k == Some("http.route"))
            .count();
        assert_eq!(in_map, 2, "only the repeated key stays in the map");

        // A route of one file opens that file only; a repeated key's value is found in the map.
        assert_eq!(
            count_where(&engine, &tenant, "attributes['http.route'] = '/b'")
                .await
                .0,
            2
        );
        assert_eq!(
            count_where(&engine, &tenant, "attributes['http.route'] = '/b'")
                .await
                .1,
            1
        );
        assert_eq!(
            count_where(&engine, &tenant, "attributes['http.route'] = '/none'")
                .await
                .1,
            0
        );
        let either = "attributes['http.route'] = '/twice' OR attributes['http.route'] = '/again'";
        let twice = count_where(&engine, &tenant, either).await;
        assert_eq!((twice.0, twice.1), (1, 1));
    }

    /// One file of 200 000 one-span traces in time order, so four row groups; one span holds
    /// `needle`. Its search reads one row group's bytes, the same search that the value
    /// filters cannot serve (`LIKE`) reads them all.
    #[tokio::test]
    async fn value_filters_skip_row_groups_within_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_flushed_by_hand(dir.path()).await;
        let tenant = TenantId::default_tenant();
        let mut b = SpanBatchBuilder::new();
        for n in 0..200_000u64 {
            begin_shop_span(&mut b, n, n as i64 * 1_000, 500);
            let order = if n == 100_000 {
                "needle".to_string()
            } else {
                format!("o-{n}")
            };
            b.attributes().push("order.id", &AttrValue::Str(&order));
            b.end_span();
        }
        store.append(&tenant, b.finish().unwrap()).await.unwrap();
        store.flush().await.unwrap();
        let engine = QueryEngine::new(store, QueryLimits::default()).unwrap();
        let mut read = Vec::new();
        for filter in ["= 'needle'", "LIKE 'needl%'"] {
            let sql = format!("attributes['order.id'] {filter}");
            let (n, files, bytes) = count_where(&engine, &tenant, &sql).await;
            assert_eq!((n, files), (1, 1), "{filter}");
            read.push(bytes);
        }
        assert!(
            read[0] * 3 < read[1],
            "one row group's bytes expected: {} of {}",
            read[0],
            read[1]
        );
    }

    /// Four files of 50 spans, each with its own users and deployment: a search for one value
    /// opens only the file that holds it, by the row groups' value filters, and finds the same
    /// rows as without them (spans still in memory included).
    #[tokio::test]
    async fn value_filters_skip_row_groups_without_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_flushed_by_hand(dir.path()).await;
        let tenant = TenantId::default_tenant();
        for file in 0..5u64 {
            let mut b = SpanBatchBuilder::new();
            for i in 0..50u64 {
                let n = file * 100 + i;
                begin_shop_span(&mut b, n, n as i64, 1_000);
                let user = format!("user-{file}-{i}");
                b.attributes().push("enduser.id", &AttrValue::Str(&user));
                b.attributes()
                    .push("http.status_code", &AttrValue::Int(200));
                match (file, i) {
                    (0, 0) => b.attributes().push("team", &AttrValue::Str("red")),
                    (3, 0) => b.attributes().push(
                        "team",
                        &AttrValue::Array(
                            r#"{"values":[{"stringValue":"red"},{"stringValue":"blue"}]}"#.into(),
                        ),
                    ),
                    _ => {}
                }
                if (file, i) == (2, 0) {
                    let events = b.events();
                    events.begin_event(&spanlake_storage::batch::EventFields {
                        time_unix_nano: 0,
                        name: "exception",
                        dropped_attributes_count: 0,
                    });
                    events
                        .attributes()
                        .push("exception.type", &AttrValue::Str("IOError"));
                    events.end_event();
                }
                let deployment = format!("d{file}");
                b.resource_attributes()
                    .push("deployment", &AttrValue::Str(&deployment));
                b.end_span();
            }
            store.append(&tenant, b.finish().unwrap()).await.unwrap();
            if file < 4 {
                store.flush().await.unwrap(); // the fifth batch stays in memory
            }
        }
        let engine = QueryEngine::new(store, QueryLimits::default()).unwrap();
        let count = |filter: &'static str| {
            let (engine, tenant) = (engine.clone(), tenant.clone());
            async move {
                let (n, files, _) = count_where(&engine, &tenant, filter).await;
                (n, files)
            }
        };
        assert_eq!(count("attributes['enduser.id'] = 'user-2-7'").await, (1, 1));
        assert_eq!(count("attributes['enduser.id'] = 'user-4-7'").await, (1, 0));
        assert_eq!(count("attributes['enduser.id'] = 'nobody'").await, (0, 0));
        assert_eq!(
            count("attributes['http.status_code'] = '200'").await,
            (250, 4)
        );
        let either =
            "(attributes['deployment'] = 'd1' OR resource_attributes['deployment'] = 'd1')";
        assert_eq!(count(either).await, (50, 1));
        // As TraceQL writes an unscoped `.deployment = "d1"`.
        let unscoped = "((attributes['deployment'] = 'd1' AND attribute_types['deployment'] IS NULL) \
             OR (resource_attributes['deployment'] = 'd1' \
             AND resource_attribute_types['deployment'] IS NULL))";
        assert_eq!(count(unscoped).await, (50, 1));
        let both =
            "attributes['enduser.id'] = 'user-1-3' AND resource_attributes['deployment'] = 'd1'";
        assert_eq!(count(both).await, (1, 1));
        let neither =
            "attributes['enduser.id'] = 'user-1-3' AND resource_attributes['deployment'] = 'd2'";
        assert_eq!(count(neither).await, (0, 0));
        // As TraceQL writes `span.team = "blue"`: the text, or an element of an array. The
        // filters hold arrays whole, so the files with arrays under the key are read.
        let element = |value: &str| {
            format!(
                "((attributes['team'] = '{value}' AND attribute_types['team'] IS NULL) \
                 OR tql_array_match(attributes['team'], attribute_types['team'], '=', '{value}'))"
            )
        };
        let (n, files, _) = count_where(&engine, &tenant, &element("blue")).await;
        assert_eq!((n, files), (1, 1));
        let (n, files, _) = count_where(&engine, &tenant, &element("red")).await;
        assert_eq!((n, files), (2, 2));
        // As the Jaeger and native searches match a tag: also in the scope's, events' and
        // links' attributes, which have no value filters. Files list the keys found there, so
        // only those with the key are read whatever their filters say.
        let tag = |key: &str, value: &str| {
            format!(
                "(attributes['{key}'] = '{value}' OR resource_attributes['{key}'] = '{value}' \
                 OR scope_attributes['{key}'] = '{value}' \
                 OR has_attribute(events, '{key}', '{value}') \
                 OR has_attribute(links, '{key}', '{value}'))"
            )
        };
        let (n, files, _) = count_where(&engine, &tenant, &tag("enduser.id", "user-1-3")).await;
        assert_eq!((n, files), (1, 1));
        let (n, files, _) = count_where(&engine, &tenant, &tag("exception.type", "IOError")).await;
        assert_eq!((n, files), (1, 1));
        let (n, files, _) = count_where(&engine, &tenant, &tag("exception.type", "none")).await;
        assert_eq!((n, files), (0, 1));
        // No value filter applies: every file is read.
        assert_eq!(
            count("attributes['enduser.id'] <> 'user-2-7'").await,
            (249, 4)
        );
        assert_eq!(
            count("attributes['enduser.id'] LIKE 'user-2-%'").await,
            (50, 4)
        );
    }
}
