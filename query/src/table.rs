//! The `spans` table: one tenant's Parquet files plus its recent spans still in memory, as one
//! DataFusion [`TableProvider`].
//!
//! Filters on `trace_id` (equality) and `start_time` (ranges) choose the files through the
//! catalog before anything is opened; every filter is also handed to the Parquet scan, which
//! prunes row groups and pages with statistics, the page index and the `trace_id` bloom filter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampNanosecondType};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use spanlake_storage::schema::{col, span_schema};
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

impl Pruning {
    pub(crate) fn from_filters(filters: &[Expr]) -> Self {
        let mut p = Pruning {
            range: TimeRange::ALL,
            trace_ids: Vec::new(),
        };
        for f in filters {
            p.visit(f);
        }
        p
    }

    fn visit(&mut self, expr: &Expr) {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    self.visit(left);
                    self.visit(right);
                    return;
                }
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
        self.stats
            .files
            .fetch_add(snapshot.files.len() as u64, relaxed);
        for file in &snapshot.files {
            self.stats.file_bytes.fetch_add(file.meta.size, relaxed);
        }
        for batch in &snapshot.batches {
            self.stats
                .memory_rows
                .fetch_add(batch.num_rows() as u64, relaxed);
            self.stats
                .memory_bytes
                .fetch_add(batch.get_array_memory_size() as u64, relaxed);
        }

        if !snapshot.files.is_empty() {
            let mut source = ParquetSource::new(Arc::clone(&self.schema));
            if let Some(predicate) = conjunction(filters.to_vec()) {
                let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
            for (i, file) in snapshot.files.iter().enumerate() {
                groups[i % partitions]
                    .push(PartitionedFile::new(file.meta.path.clone(), file.meta.size));
            }
            let groups = groups
                .into_iter()
                .filter(|g| !g.is_empty())
                .map(FileGroup::new)
                .collect();
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
                    .with_file_groups(groups)
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            let format = ParquetFormat::new().with_options(state.table_options().parquet.clone());
            inputs.push(format.create_physical_plan(state, config).await?);
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
    use datafusion::prelude::{col, lit};

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
                trace_ids: vec![]
            }
        );
    }
}
