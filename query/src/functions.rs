//! Call-chain analyses as SQL table functions, so SQL users get what the APIs give:
//! `service_graph(start, end)` (or `service_graph('1h')`) and `trace_tree('<trace id>')`.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
    UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use spanlake_storage::TenantId;
use spanlake_storage::schema::timestamp_type;

use crate::api::params::parse_time;
use crate::traces::{Traces, Window};

fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.clone())
        }
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Some(n.to_string()),
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(n), _), _) => Some(n.to_string()),
        _ => None,
    }
}

fn to_df(e: crate::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Data computed by a Spanlake query when the table is scanned.
#[derive(Debug)]
struct Computed {
    schema: SchemaRef,
    traces: Traces,
    tenant: TenantId,
    what: Computation,
}

#[derive(Debug, Clone)]
enum Computation {
    ServiceGraph(Window),
    TraceTree(String),
}

#[async_trait]
impl TableProvider for Computed {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = match &self.what {
            Computation::ServiceGraph(window) => {
                let deps = self
                    .traces
                    .dependencies(&self.tenant, *window)
                    .await
                    .map_err(to_df)?;
                RecordBatch::try_new(
                    Arc::clone(&self.schema),
                    vec![
                        Arc::new(StringArray::from_iter_values(
                            deps.iter().map(|d| &d.parent),
                        )),
                        Arc::new(StringArray::from_iter_values(deps.iter().map(|d| &d.child))),
                        Arc::new(Int64Array::from_iter_values(
                            deps.iter().map(|d| d.call_count),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            deps.iter().map(|d| d.error_count),
                        )),
                        Arc::new(Float64Array::from_iter_values(
                            deps.iter().map(|d| d.p50_ns),
                        )),
                        Arc::new(Float64Array::from_iter_values(
                            deps.iter().map(|d| d.p95_ns),
                        )),
                        Arc::new(Float64Array::from_iter_values(
                            deps.iter().map(|d| d.p99_ns),
                        )),
                    ],
                )?
            }
            Computation::TraceTree(id) => {
                let spans = match self.traces.trace(&self.tenant, id).await.map_err(to_df)? {
                    Some(trace) => trace.spans,
                    None => Vec::new(),
                };
                let ts = |v: Vec<i64>| TimestampNanosecondArray::from(v).with_timezone("UTC");
                RecordBatch::try_new(
                    Arc::clone(&self.schema),
                    vec![
                        Arc::new(UInt32Array::from_iter_values(
                            spans.iter().map(|s| s.depth as u32),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            spans.iter().map(|s| &s.span.span_id),
                        )),
                        Arc::new(StringArray::from_iter(
                            spans.iter().map(|s| s.span.parent_span_id.as_deref()),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            spans.iter().map(|s| &s.span.service_name),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            spans.iter().map(|s| &s.span.span_name),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            spans.iter().map(|s| &s.span.span_kind),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            spans.iter().map(|s| &s.span.status_code),
                        )),
                        Arc::new(ts(spans.iter().map(|s| s.span.start_ns).collect())),
                        Arc::new(ts(spans.iter().map(|s| s.adjusted_start_ns).collect())),
                        Arc::new(Int64Array::from_iter_values(
                            spans
                                .iter()
                                .map(|s| s.adjusted_end_ns - s.adjusted_start_ns),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            spans.iter().map(|s| s.skew_shift_ns),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            spans.iter().map(|s| s.critical_path_ns),
                        )),
                        Arc::new(BooleanArray::from_iter(
                            spans.iter().map(|s| Some(s.error_origin)),
                        )),
                        Arc::new(BooleanArray::from_iter(
                            spans.iter().map(|s| Some(s.orphan)),
                        )),
                    ],
                )?
            }
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}

/// `service_graph(start, end)` or `service_graph('1h')`: the dependency graph of a window.
#[derive(Debug)]
pub struct ServiceGraph {
    pub traces: Traces,
    pub tenant: TenantId,
}

impl TableFunctionImpl for ServiceGraph {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let texts: Option<Vec<String>> = args.exprs().iter().map(literal_text).collect();
        let bad = || {
            plan_err!(
                "service_graph takes a lookback like '1h', or start and end times as literals \
                 ('2026-11-26T10:00:00Z' or UNIX timestamps)"
            )
        };
        let Some(texts) = texts else { return bad() };
        let window = match texts.as_slice() {
            [] => Window::last(Duration::from_secs(3600)),
            [lookback] => Window::last(
                humantime::parse_duration(lookback)
                    .map_err(|e| DataFusionError::Plan(format!("service_graph: {e}")))?,
            ),
            [start, end] => Window {
                start_ns: parse_time("start", start).map_err(to_df)?,
                end_ns: parse_time("end", end).map_err(to_df)?,
            },
            _ => return bad(),
        };
        let ns = || Field::new("p50_ns", DataType::Float64, false);
        let schema = Arc::new(Schema::new(vec![
            Field::new("parent", DataType::Utf8, false),
            Field::new("child", DataType::Utf8, false),
            Field::new("call_count", DataType::Int64, false),
            Field::new("error_count", DataType::Int64, false),
            ns(),
            ns().with_name("p95_ns"),
            ns().with_name("p99_ns"),
        ]));
        Ok(Arc::new(Computed {
            schema,
            traces: self.traces.clone(),
            tenant: self.tenant.clone(),
            what: Computation::ServiceGraph(window),
        }))
    }
}

/// `trace_tree('<trace id>')`: the assembled trace, one row per span in tree order.
#[derive(Debug)]
pub struct TraceTree {
    pub traces: Traces,
    pub tenant: TenantId,
}

impl TableFunctionImpl for TraceTree {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let id = match args.exprs() {
            [e] => literal_text(e),
            _ => None,
        };
        let Some(id) = id else {
            return plan_err!("trace_tree takes one trace id as a text literal");
        };
        let id = crate::traces::normalize_trace_id(&id).map_err(to_df)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("depth", DataType::UInt32, false),
            Field::new("span_id", DataType::Utf8, false),
            Field::new("parent_span_id", DataType::Utf8, true),
            Field::new("service_name", DataType::Utf8, false),
            Field::new("span_name", DataType::Utf8, false),
            Field::new("span_kind", DataType::Utf8, false),
            Field::new("status_code", DataType::Utf8, false),
            Field::new("start_time", timestamp_type(), false),
            Field::new("adjusted_start_time", timestamp_type(), false),
            Field::new("duration_ns", DataType::Int64, false),
            Field::new("skew_shift_ns", DataType::Int64, false),
            Field::new("critical_path_ns", DataType::Int64, false),
            Field::new("error_origin", DataType::Boolean, false),
            Field::new("orphan", DataType::Boolean, false),
        ]));
        Ok(Arc::new(Computed {
            schema,
            traces: self.traces.clone(),
            tenant: self.tenant.clone(),
            what: Computation::TraceTree(id),
        }))
    }
}
