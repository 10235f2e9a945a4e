//! Running SQL over spans: a DataFusion session per query with the tenant's `spans` table,
//! read-only, with a memory limit, a timeout and a row cap. Every query is admitted
//! ([`crate::admission`]) and runs on the query threads ([`crate::executor`]), never on the
//! caller's runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{CrossJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use spanlake_storage::{SegmentSource, Snapshot, TenantId, TimeRange};

use crate::admission::{self, Admission, AdmissionLimits};
use crate::cancel::{Cancel, CancelOnDrop, cancellable};
use crate::executor::{self, QueryExecutor};
use crate::functions::{ServiceGraph, TraceTree};
use crate::table::{STORE_URL, ScanStats, SpansTable};
use crate::traces::Traces;
use crate::{Error, Result};

/// Limits applied to every query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub max_rows: usize,
    /// Most row pairs a join without equal columns (a nested-loop or cross join) may compare,
    /// judged from its inputs' sizes before it runs.
    pub max_join_pairs: u64,
    /// Threads that run queries, apart from the ones that take writes; `None`: two per query
    /// that may run at once, at least one per core. An operator can hold a thread for seconds
    /// inside one poll (a nested-loop join); with threads to spare the OS shares the cores
    /// between such queries and the others, instead of the others waiting for a thread.
    pub threads: Option<usize>,
    pub admission: AdmissionLimits,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 1 << 30,
            max_rows: 100_000,
            max_join_pairs: 10_000_000_000,
            threads: None,
            admission: AdmissionLimits::default(),
        }
    }
}

/// A query's result and what it cost.
#[derive(Debug)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// True when the row cap cut the result short.
    pub truncated: bool,
    pub elapsed: Duration,
    pub rows_read: u64,
    pub bytes_read: u64,
    pub files_read: u64,
}

/// Runs queries for any tenant over one store. Cloning is cheap and shares the store, the
/// object store registry, the Parquet metadata cache, the query threads and the admission
/// limits.
#[derive(Clone)]
pub struct QueryEngine {
    source: Arc<dyn SegmentSource>,
    runtime: Arc<RuntimeEnv>,
    limits: QueryLimits,
    executor: QueryExecutor,
    admission: Arc<Admission>,
    /// Set when the server stops: every query's own flag is its child.
    stopping: Cancel,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("limits", &self.limits)
            .field("executor", &self.executor)
            .finish()
    }
}

impl QueryEngine {
    pub fn new(source: Arc<dyn SegmentSource>, limits: QueryLimits) -> Result<Self> {
        let runtime = RuntimeEnv::default();
        let url = ObjectStoreUrl::parse(STORE_URL)?;
        runtime.register_object_store(url.as_ref(), source.object_store());
        Ok(Self {
            source,
            runtime: Arc::new(runtime),
            limits,
            executor: QueryExecutor::new(limits.threads.unwrap_or_else(|| {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                cores.max(2 * limits.admission.max_running)
            }))?,
            admission: Arc::new(Admission::new(limits.admission)),
            stopping: Cancel::default(),
        })
    }

    /// Cancels the queries running and refuses new ones (a stopping server).
    pub fn shutdown(&self) {
        self.stopping.cancel();
        self.admission.close();
        self.executor.shutdown();
    }

    /// The threads queries run on.
    pub fn executor(&self) -> &QueryExecutor {
        &self.executor
    }

    /// Runs `work`, one query, for `tenant`: admitted, on the query threads, within the time
    /// limit (and the request's, [`within_time_limit`]), counted by outcome. The turn is held
    /// until the work has really stopped. A query started by a query (a table function's) runs
    /// inline, already admitted and timed, and stops with it.
    async fn limited<T, F>(&self, tenant: &TenantId, work: impl FnOnce(Cancel) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(outer) = executor::in_query() {
            return work(outer).await;
        }
        let limit = self.limits.timeout;
        let deadline = Instant::now() + limit;
        let deadline = REQUEST_DEADLINE
            .try_with(|request| deadline.min(*request))
            .unwrap_or(deadline);
        // Waiting for a turn counts against the limit too: the client waits all the same.
        let turn = tokio::time::timeout_at(deadline.into(), self.admission.admit(tenant))
            .await
            .map_err(|_| {
                metrics::counter!(admission::QUERIES, "outcome" => "timeout").increment(1);
                Error::Timeout(limit)
            })??;
        let outcome = Outcome::default();
        let cancel = CancelOnDrop(self.stopping.child());
        let work = work(cancel.0.clone());
        let run = self.executor.run(cancel.0.clone(), async move {
            let _turn = turn;
            work.await
        });
        let result = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Err(_)) if self.executor.is_stopped() => Err(Error::ShuttingDown),
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(limit)),
        };
        outcome.record(&result);
        result
    }

    /// How long the store keeps spans; `None` keeps them all.
    pub fn retention(&self) -> Option<std::time::Duration> {
        self.source.retention()
    }

    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// What a scan of `tenant`'s spans in `range` would read: the catalog's files and the
    /// spans in memory. For planning how to query, not for reading rows.
    pub fn snapshot(&self, tenant: &TenantId, range: &TimeRange) -> Snapshot {
        self.source.snapshot(tenant, range, &[])
    }

    /// A session whose only table is `tenant`'s `spans`, with its own memory pool; the object
    /// store and the Parquet metadata cache are shared between sessions.
    pub fn context(&self, tenant: &TenantId) -> Result<SessionContext> {
        Ok(self.context_with_stats(tenant)?.0)
    }

    fn context_with_stats(&self, tenant: &TenantId) -> Result<(SessionContext, Arc<ScanStats>)> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let options = config.options_mut();
        options.execution.parquet.pushdown_filters = true;
        options.execution.parquet.reorder_filters = true;
        options.execution.parquet.bloom_filter_on_read = true;
        options.execution.parquet.enable_page_index = true;
        let runtime = RuntimeEnv {
            memory_pool: Arc::new(FairSpillPool::new(self.limits.memory_bytes)),
            disk_manager: Arc::clone(&self.runtime.disk_manager),
            cache_manager: Arc::clone(&self.runtime.cache_manager),
            object_store_registry: Arc::clone(&self.runtime.object_store_registry),
        };
        let ctx = SessionContext::new_with_config_rt(config, Arc::new(runtime));
        let table = SpansTable::new(Arc::clone(&self.source), tenant.clone());
        let stats = table.stats();
        ctx.register_table("spans", Arc::new(table))?;
        ctx.register_udwf(crate::traceql::structural::udwf());
        ctx.register_udf(crate::nested::has_attribute());
        ctx.register_udf(crate::traceql::arrays::udf());
        let traces = Traces::new(Arc::new(self.clone()));
        ctx.register_udtf(
            "service_graph",
            Arc::new(ServiceGraph {
                traces: traces.clone(),
                tenant: tenant.clone(),
            }),
        );
        ctx.register_udtf(
            "trace_tree",
            Arc::new(TraceTree {
                traces,
                tenant: tenant.clone(),
            }),
        );
        Ok((ctx, stats))
    }

    /// The result schema of `sql` for `tenant`, planning it within the limits: refuses
    /// anything but a read-only query, and plans that cannot finish.
    pub async fn schema(&self, tenant: &TenantId, sql: &str) -> Result<SchemaRef> {
        let (engine, owned_tenant, sql) = (self.clone(), tenant.clone(), sql.to_owned());
        self.limited(tenant, |cancel| async move {
            let (_, plan, _) = engine.plan_now(&owned_tenant, &sql, &cancel).await?;
            Ok(plan.schema())
        })
        .await
    }

    /// Plans `sql` for `tenant`, refusing anything but a read-only query and plans that
    /// cannot finish; the plan's joins stop once `cancel` is set.
    async fn plan_now(
        &self,
        tenant: &TenantId,
        sql: &str,
        cancel: &Cancel,
    ) -> Result<(SessionContext, Arc<dyn ExecutionPlan>, Arc<ScanStats>)> {
        let (ctx, stats) = self.context_with_stats(tenant)?;
        let state = ctx.state();
        let logical = state
            .create_logical_plan(sql)
            .await
            .map_err(Error::from_planning)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&logical)
            .map_err(|e| Error::NotReadOnly(e.strip_backtrace()))?;
        let physical = state
            .create_physical_plan(&logical)
            .await
            .map_err(Error::from_planning)?;
        refuse_unfinishable_joins(&physical, self.limits.max_join_pairs)?;
        Ok((ctx, cancellable(physical, cancel)?, stats))
    }

    /// Runs `sql` for `tenant` within the limits.
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryOutput> {
        let (engine, owned_tenant, sql) = (self.clone(), tenant.clone(), sql.to_owned());
        self.limited(tenant, |cancel| async move {
            engine.sql_now(&owned_tenant, &sql, &cancel).await
        })
        .await
    }

    async fn sql_now(&self, tenant: &TenantId, sql: &str, cancel: &Cancel) -> Result<QueryOutput> {
        let started = Instant::now();
        let limits = self.limits;
        let run = async {
            let (ctx, plan, stats) = self.plan_now(tenant, sql, cancel).await?;
            let schema = plan.schema();
            let mut stream = execute_stream(Arc::clone(&plan), ctx.task_ctx())?;
            let mut batches = Vec::new();
            let mut rows = 0;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let room = limits.max_rows - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    rows += room;
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            drop(stream);
            let (parquet_rows, parquet_bytes) = parquet_metrics(plan.as_ref());
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            Ok(QueryOutput {
                schema,
                batches,
                rows,
                truncated,
                elapsed: started.elapsed(),
                rows_read: parquet_rows + stats.memory_rows.load(relaxed),
                bytes_read: parquet_bytes + stats.memory_bytes.load(relaxed),
                files_read: stats.files.load(relaxed),
            })
        };
        run.await
    }
}

impl QueryEngine {
    /// Runs one of Spanlake's own statements for `tenant`, with user values only as `$n`
    /// parameters, within the time and memory limits (no row cap: callers bound their results).
    pub async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Vec<RecordBatch>> {
        Ok(self.query_measured(tenant, sql, params).await?.batches)
    }

    /// [`Self::query`], also telling how much it read.
    pub async fn query_measured(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput> {
        let (engine, owned_tenant, sql) = (self.clone(), tenant.clone(), sql.to_owned());
        self.limited(tenant, |cancel| async move {
            engine.query_now(&owned_tenant, &sql, params, &cancel).await
        })
        .await
    }

    async fn query_now(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Vec<ScalarValue>,
        cancel: &Cancel,
    ) -> Result<QueryOutput> {
        let started = Instant::now();
        let run = async {
            let (ctx, stats) = self.context_with_stats(tenant)?;
            let frame = ctx.sql(sql).await.map_err(Error::from_planning)?;
            let frame = if params.is_empty() {
                frame
            } else {
                frame
                    .with_param_values(params)
                    .map_err(Error::from_planning)?
            };
            let plan = frame
                .create_physical_plan()
                .await
                .map_err(Error::from_planning)?;
            refuse_unfinishable_joins(&plan, self.limits.max_join_pairs)?;
            let plan = cancellable(plan, cancel)?;
            let schema = plan.schema();
            let batches =
                datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx()).await?;
            let (parquet_rows, parquet_bytes) = parquet_metrics(plan.as_ref());
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            let rows = batches.iter().map(RecordBatch::num_rows).sum();
            Ok(QueryOutput {
                schema,
                batches,
                rows,
                truncated: false,
                elapsed: started.elapsed(),
                rows_read: parquet_rows + stats.memory_rows.load(relaxed),
                bytes_read: parquet_bytes + stats.memory_bytes.load(relaxed),
                files_read: stats.files.load(relaxed),
            })
        };
        run.await
    }
}

tokio::task_local! {
    /// When the request being answered must be answered by.
    static REQUEST_DEADLINE: Instant;
}

/// Runs `request`, which may run several queries (a search reads slices of time, then loads
/// its traces), so that all of them together end within `limit`: each stops at the request's
/// deadline if that comes before its own.
pub async fn within_time_limit<F: Future>(limit: Duration, request: F) -> F::Output {
    REQUEST_DEADLINE
        .scope(Instant::now() + limit, request)
        .await
}

/// Counts a query by how it ended; one dropped before it ended (its client went away) counts
/// as cancelled.
#[derive(Default)]
struct Outcome {
    recorded: bool,
}

impl Outcome {
    fn record<T>(mut self, result: &Result<T>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(Error::Timeout(_)) => "timeout",
            Err(Error::ResourcesExhausted(_)) => "memory",
            Err(Error::TooLarge(_)) => "too_large",
            Err(Error::ShuttingDown) => "cancelled",
            Err(Error::Busy { .. }) => "refused",
            Err(_) => "error",
        };
        metrics::counter!(admission::QUERIES, "outcome" => outcome).increment(1);
        self.recorded = true;
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.recorded {
            metrics::counter!(admission::QUERIES, "outcome" => "cancelled").increment(1);
        }
    }
}

/// Refuses a plan with a join that compares rows pair by pair (no equal columns to hash on)
/// over inputs whose sizes multiply past `max_pairs`: it would run until a limit stops it.
fn refuse_unfinishable_joins(plan: &Arc<dyn ExecutionPlan>, max_pairs: u64) -> Result<()> {
    check_joins(&StatisticsContext::new(), plan, max_pairs)
}

fn check_joins(
    stats: &StatisticsContext,
    plan: &Arc<dyn ExecutionPlan>,
    max_pairs: u64,
) -> Result<()> {
    if let Some((left, right)) = pairwise_join_inputs(plan)
        && let (Some(l), Some(r)) = (row_bound(stats, left), row_bound(stats, right))
    {
        let pairs = l.saturating_mul(r);
        if pairs > u128::from(max_pairs) {
            return Err(Error::TooLarge(format!(
                "a join without equal columns would compare {l} x {r} = {pairs} row pairs, \
                 more than the limit of {max_pairs} (--query-max-join-pairs); join on equal \
                 columns (e.g. a.trace_id = b.trace_id) or narrow its inputs"
            )));
        }
    }
    plan.children()
        .into_iter()
        .try_for_each(|child| check_joins(stats, child, max_pairs))
}

/// A join's two inputs.
type Inputs<'a> = (&'a Arc<dyn ExecutionPlan>, &'a Arc<dyn ExecutionPlan>);

fn pairwise_join_inputs(plan: &Arc<dyn ExecutionPlan>) -> Option<Inputs<'_>> {
    if let Some(join) = plan.downcast_ref::<NestedLoopJoinExec>() {
        return Some((join.left(), join.right()));
    }
    plan.downcast_ref::<CrossJoinExec>()
        .map(|join| (join.left(), join.right()))
}

/// At most how many rows `plan` yields, where that is known without running it: its
/// statistics' estimate (the table's is the catalog's row count), the product of a pairwise
/// join's inputs, or what its one input yields (a projection, a repartition); unknown past a
/// filter or an aggregate.
fn row_bound(stats: &StatisticsContext, plan: &Arc<dyn ExecutionPlan>) -> Option<u128> {
    if let Some((left, right)) = pairwise_join_inputs(plan) {
        return Some(row_bound(stats, left)?.saturating_mul(row_bound(stats, right)?));
    }
    let estimated = stats
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|s| s.num_rows.get_value().map(|&n| n as u128));
    match (estimated, plan.children().as_slice()) {
        // A filter or a grouping may leave few rows: refuse only what is known to be large.
        _ if plan.downcast_ref::<FilterExec>().is_some()
            || plan.downcast_ref::<AggregateExec>().is_some() =>
        {
            None
        }
        (Some(n), _) => Some(n),
        (None, [only]) => row_bound(stats, only),
        _ => None,
    }
}

/// Rows produced and bytes read by the Parquet scans of an executed plan.
fn parquet_metrics(plan: &dyn ExecutionPlan) -> (u64, u64) {
    let children = plan.children();
    if !children.is_empty() {
        return children.iter().fold((0, 0), |acc, child| {
            let (r, b) = parquet_metrics(child.as_ref());
            (acc.0 + r, acc.1 + b)
        });
    }
    let Some(metrics) = plan.metrics() else {
        return (0, 0);
    };
    let bytes = metrics
        .sum_by_name("bytes_scanned")
        .map_or(0, |v| v.as_usize() as u64);
    if bytes == 0 {
        // Not a Parquet scan (memory batches are counted by the table).
        return (0, 0);
    }
    (metrics.output_rows().unwrap_or(0) as u64, bytes)
}

#[cfg(test)]
mod tests {
    use spanlake_storage::batch::{SpanBatchBuilder, SpanFields};
    use spanlake_storage::{SpanSink, Store, StoreConfig};

    use super::*;

    /// An engine over `spans` spans in memory, each alone in its trace.
    async fn engine_over(dir: &std::path::Path, spans: u64, limits: QueryLimits) -> QueryEngine {
        let mut config = StoreConfig::new(dir);
        config.flush_interval = Duration::from_secs(3600);
        let store = Arc::new(Store::open(config).await.unwrap());
        let mut b = SpanBatchBuilder::new();
        let t0 = 1_700_000_000_000_000_000;
        for n in 0..spans {
            b.begin_span(&SpanFields {
                trace_id: &[[0; 8], n.to_be_bytes()].concat(),
                span_id: &(n + 1).to_be_bytes(),
                service_name: "shop",
                name: "checkout",
                start_unix_nano: t0 + n as i64,
                end_unix_nano: t0 + 1_000 + (n % 7) as i64 + n as i64,
                ..SpanFields::default()
            });
            b.end_span();
        }
        let tenant = TenantId::default_tenant();
        store.append(&tenant, b.finish().unwrap()).await.unwrap();
        QueryEngine::new(store, limits).unwrap()
    }

    #[tokio::test]
    async fn a_join_that_cannot_finish_is_refused_before_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let limits = QueryLimits {
            max_join_pairs: 10_000_000,
            ..QueryLimits::default()
        };
        let engine = engine_over(dir.path(), 10_000, limits).await;
        let tenant = TenantId::default_tenant();
        let refused = engine
            .sql(
                &tenant,
                "SELECT count(*) FROM spans a, spans b WHERE a.duration_ns > b.duration_ns",
            )
            .await
            .unwrap_err();
        let message = refused.to_string();
        assert!(matches!(refused, Error::TooLarge(_)), "{message}");
        assert!(
            message.contains("10000 x 10000 = 100000000 row pairs"),
            "{message}"
        );
        // Joined on equal columns, the same inputs run.
        let joined = engine
            .sql(
                &tenant,
                "SELECT count(*) AS n FROM spans a JOIN spans b ON a.trace_id = b.trace_id",
            )
            .await
            .unwrap();
        assert_eq!(joined.rows, 1);
        // Inputs that a filter may make small are not judged by the table's size.
        let small = engine
            .sql(
                &tenant,
                "SELECT count(*) FROM (SELECT * FROM spans WHERE duration_ns = 1000) a, \
                 (SELECT * FROM spans WHERE duration_ns = 1001) b \
                 WHERE a.start_time < b.start_time",
            )
            .await
            .unwrap();
        assert_eq!(small.rows, 1);
    }

    /// A selective condition over every pair of spans never returns from one poll of the join
    /// by itself; at the time limit the query answers and its work stops.
    #[tokio::test]
    async fn a_runaway_join_stops_at_its_time_limit() {
        let dir = tempfile::tempdir().unwrap();
        let limits = QueryLimits {
            timeout: Duration::from_millis(500),
            ..QueryLimits::default()
        };
        let engine = engine_over(dir.path(), 20_000, limits).await;
        let tenant = TenantId::default_tenant();
        let started = Instant::now();
        let timed_out = engine
            .sql(
                &tenant,
                "SELECT count(*) FROM spans a, spans b \
                 WHERE regexp_like(a.trace_id || b.span_id, '^(0|f)+x$')",
            )
            .await
            .unwrap_err();
        assert!(matches!(timed_out, Error::Timeout(_)), "{timed_out}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let stopped = Instant::now();
        while engine.executor().alive_tasks() > 0 {
            assert!(
                stopped.elapsed() < Duration::from_secs(1),
                "{} tasks still alive a second after the time limit",
                engine.executor().alive_tasks()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let answered = engine.sql(&tenant, "SELECT count(*) FROM spans").await;
        assert_eq!(answered.unwrap().rows, 1);
    }

    #[tokio::test]
    async fn a_stopping_engine_cancels_its_queries() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine_over(dir.path(), 20_000, QueryLimits::default()).await;
        let running = tokio::spawn({
            let engine = engine.clone();
            async move {
                engine
                    .sql(
                        &TenantId::default_tenant(),
                        "SELECT count(*) FROM spans a, spans b \
                         WHERE regexp_like(a.trace_id || b.span_id, '^(0|f)+x$')",
                    )
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopping = Instant::now();
        engine.shutdown();
        let cancelled = running.await.unwrap().unwrap_err();
        assert!(matches!(cancelled, Error::ShuttingDown), "{cancelled}");
        assert!(
            stopping.elapsed() < Duration::from_secs(1),
            "{:?}",
            stopping.elapsed()
        );
    }
}
