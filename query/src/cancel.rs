//! Cancellation that reaches the operators.
//!
//! Aborting a query's task takes effect where the task yields. Most DataFusion operators yield
//! often enough: the table's scans spend tokio's cooperative budget, so an aggregate or a sort
//! reading them gives its thread back every few batches. Two shapes do not:
//! - a join without equal columns (nested-loop join) loops over every buffered row inside one
//!   poll until it has a full output batch, so a selective condition over many pairs (a regular
//!   expression over every pair of spans) runs for minutes without returning;
//! - the operators above a join read its output without spending budget, so a consumer of a
//!   cross join, or of a hash join with many matches per key, never yields.
//!
//! [`cancellable`] rewrites a physical plan for both: a nested-loop join's condition is checked
//! against the query's [`Cancel`] flag on every intermediate batch it evaluates (a few thousand
//! pairs), and every join's output spends the cooperative budget.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, NestedLoopJoinExecBuilder,
    PiecewiseMergeJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};

/// What a cancelled query's operators fail with (the caller has answered already).
pub const CANCELLED: &str = "query cancelled";

/// A query's cancellation flag, shared by the operators of its plan; cancelling a parent
/// (a stopping server's) cancels its children too.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
}

impl Cancel {
    /// A flag of its own, also set when this one is.
    pub fn child(&self) -> Cancel {
        Cancel {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(Arc::clone(&self.own)),
        }
    }

    pub fn cancel(&self) {
        self.own.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::Relaxed)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Relaxed))
    }
}

/// Sets the flag when dropped: however the caller stops waiting, the work stops too.
#[derive(Debug)]
pub struct CancelOnDrop(pub Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// `plan` with cancellation checks where operators can run long inside one poll (see the
/// module's doc).
pub fn cancellable(
    plan: Arc<dyn ExecutionPlan>,
    cancel: &Cancel,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
            let filter = join.filter().map(|f| {
                JoinFilter::new(
                    Arc::new(Checked {
                        inner: Arc::clone(f.expression()),
                        cancel: cancel.clone(),
                    }),
                    f.column_indices().to_vec(),
                    Arc::clone(f.schema()),
                )
            });
            let join = NestedLoopJoinExecBuilder::from(join)
                .with_filter(filter)
                .build()?;
            return Ok(Transformed::yes(Arc::new(CooperativeExec::new(Arc::new(
                join,
            )))));
        }
        if node.downcast_ref::<CrossJoinExec>().is_some()
            || node.downcast_ref::<HashJoinExec>().is_some()
            || node.downcast_ref::<SortMergeJoinExec>().is_some()
            || node.downcast_ref::<SymmetricHashJoinExec>().is_some()
            || node.downcast_ref::<PiecewiseMergeJoinExec>().is_some()
        {
            return Ok(Transformed::yes(Arc::new(CooperativeExec::new(node))));
        }
        Ok(Transformed::no(node))
    })
    .map(|t| t.data)
}

/// An expression that fails once its query is cancelled, then evaluates `inner`.
#[derive(Debug)]
struct Checked {
    inner: Arc<dyn PhysicalExpr>,
    cancel: Cancel,
}

impl PartialEq for Checked {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
            && Arc::ptr_eq(&self.cancel.own, &other.cancel.own)
    }
}

impl Eq for Checked {}

impl Hash for Checked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl PhysicalExpr for Checked {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        if self.cancel.is_cancelled() {
            return Err(DataFusionError::Execution(CANCELLED.to_owned()));
        }
        self.inner.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Checked {
            inner: children.swap_remove(0),
            cancel: self.cancel.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}
