//! `tql_structural(op, span_id, parent_span_id, in_left, in_right) OVER (PARTITION BY trace_id)`:
//! the window function behind TraceQL's structural operators (`>`, `<`, `>>`, `<<`, `~`, their
//! negations and union forms).
//!
//! DataFusion hands it every span of one trace at a time; it builds the trace's parent links
//! once and answers, for every row, whether the span belongs to the operator's result. A
//! descendant or ancestor test is a walk up the parent links with memoised answers, so a trace
//! of `n` spans costs `O(n)` whatever its depth, and a parent cycle ends the walk instead of
//! looping. A span stored twice (same id) is one node.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};

use super::SpansetOp;

/// The name SQL calls the function by.
pub const NAME: &str = "tql_structural";

/// The window function, ready to register on a session.
pub fn udwf() -> WindowUDF {
    WindowUDF::from(Structural {
        signature: Signature::any(5, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Structural {
    signature: Signature,
}

impl WindowUDFImpl for Structural {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(Evaluator))
    }

    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(args.name(), DataType::Boolean, false)))
    }
}

#[derive(Debug)]
struct Evaluator;

impl PartitionEvaluator for Evaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [op, ids, parents, left, right] = values else {
            return plan_err!("{NAME} takes (op, span_id, parent_span_id, in_left, in_right)");
        };
        let op = arrow::compute::cast(op, &DataType::Utf8)?;
        let op = op.as_string::<i32>();
        let Some(op) = (!op.is_empty() && op.is_valid(0))
            .then(|| op.value(0))
            .and_then(|symbol| SpansetOp::ALL.into_iter().find(|o| o.symbol() == symbol))
        else {
            return plan_err!("{NAME}: the first argument must name a structural operator");
        };
        let ids = arrow::compute::cast(ids, &DataType::Utf8)?;
        let parents = arrow::compute::cast(parents, &DataType::Utf8)?;
        let left = arrow::compute::cast(left, &DataType::Boolean)?;
        let right = arrow::compute::cast(right, &DataType::Boolean)?;
        let flag = |a: &BooleanArray, i: usize| a.is_valid(i) && a.value(i);
        let (ids, parents) = (ids.as_string::<i32>(), parents.as_string::<i32>());
        let (left, right) = (left.as_boolean(), right.as_boolean());

        let rows: Vec<Row> = (0..num_rows)
            .map(|i| Row {
                id: ids.is_valid(i).then(|| ids.value(i)),
                parent: parents
                    .is_valid(i)
                    .then(|| parents.value(i))
                    .filter(|p| !p.is_empty()),
                left: flag(left, i),
                right: flag(right, i),
            })
            .collect();
        let hits = evaluate(op, &rows)?;
        Ok(Arc::new(BooleanArray::from(hits)))
    }
}

/// One span of the trace as the function sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    pub id: Option<&'a str>,
    pub parent: Option<&'a str>,
    /// Matched by the left operand.
    pub left: bool,
    /// Matched by the right operand.
    pub right: bool,
}

/// The trace as nodes: one per distinct span id, each with its parent's node.
struct Tree {
    /// Node of every row.
    node_of_row: Vec<usize>,
    parent: Vec<Option<usize>>,
    left: Vec<bool>,
    right: Vec<bool>,
}

impl Tree {
    fn new(rows: &[Row<'_>]) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        let mut node_of_row = Vec::with_capacity(rows.len());
        let mut parent_id = Vec::new();
        for row in rows {
            let next = parent_id.len();
            let node = match row.id {
                Some(id) => *index.entry(id).or_insert(next),
                None => next,
            };
            if node == next {
                parent_id.push(row.parent);
            }
            node_of_row.push(node);
        }
        let n = parent_id.len();
        let parent = parent_id
            .iter()
            .enumerate()
            .map(|(node, p)| p.and_then(|p| index.get(p).copied()).filter(|&p| p != node))
            .collect();
        let (mut left, mut right) = (vec![false; n], vec![false; n]);
        for (row, &node) in rows.iter().zip(&node_of_row) {
            // A span that is its own parent is disconnected from the trace's tree: as in
            // Tempo, it is no operand's span, so it is never kept nor anyone's partner.
            if row.id.is_some() && row.parent == row.id {
                continue;
            }
            left[node] |= row.left;
            right[node] |= row.right;
        }
        Self {
            node_of_row,
            parent,
            left,
            right,
        }
    }

    /// For every node: does a node with `marked` sit strictly above it?
    fn below_marked(&self, marked: &[bool]) -> Vec<bool> {
        let n = self.parent.len();
        // None: not known yet.
        let mut answer: Vec<Option<bool>> = vec![None; n];
        let mut on_path = vec![false; n];
        let mut path = Vec::new();
        for start in 0..n {
            if answer[start].is_some() {
                continue;
            }
            let mut node = start;
            let found = loop {
                if let Some(known) = answer[node] {
                    break known;
                }
                if on_path[node] {
                    // A parent cycle: nothing further up.
                    break false;
                }
                on_path[node] = true;
                path.push(node);
                match self.parent[node] {
                    Some(p) if marked[p] => break true,
                    Some(p) => node = p,
                    None => break false,
                }
            };
            // Every node on the path shares the answer: either a marked node sits above the
            // last one walked, or nothing does (and then nothing sits above those below it).
            for node in path.drain(..) {
                on_path[node] = false;
                answer[node] = Some(found);
            }
        }
        answer.into_iter().map(|a| a == Some(true)).collect()
    }

    /// For every node: is a node with `marked` strictly below it?
    fn above_marked(&self, marked: &[bool]) -> Vec<bool> {
        let mut result = vec![false; self.parent.len()];
        for start in (0..marked.len()).filter(|&n| marked[n]) {
            let mut node = start;
            while let Some(p) = self.parent[node] {
                if result[p] {
                    break;
                }
                result[p] = true;
                node = p;
            }
        }
        result
    }

    /// For every node: does its parent have a child with `marked` other than itself?
    fn beside_marked(&self, marked: &[bool]) -> Vec<bool> {
        let mut marked_children = vec![0usize; self.parent.len()];
        for (node, p) in self.parent.iter().enumerate() {
            if let Some(p) = p
                && marked[node]
            {
                marked_children[*p] += 1;
            }
        }
        (0..self.parent.len())
            .map(|node| {
                self.parent[node].is_some_and(|p| marked_children[p] > usize::from(marked[node]))
            })
            .collect()
    }

    /// For every node: is its parent marked?
    fn child_of_marked(&self, marked: &[bool]) -> Vec<bool> {
        self.parent
            .iter()
            .map(|p| p.is_some_and(|p| marked[p]))
            .collect()
    }

    /// For every node: is one of its children marked?
    fn parent_of_marked(&self, marked: &[bool]) -> Vec<bool> {
        let mut result = vec![false; self.parent.len()];
        for (node, p) in self.parent.iter().enumerate() {
            if let Some(p) = p
                && marked[node]
            {
                result[*p] = true;
            }
        }
        result
    }

    /// Nodes standing in `relation` to some node of `marked`.
    fn related(&self, relation: Relation, marked: &[bool]) -> Vec<bool> {
        match relation {
            Relation::Child => self.child_of_marked(marked),
            Relation::Parent => self.parent_of_marked(marked),
            Relation::Descendant => self.below_marked(marked),
            Relation::Ancestor => self.above_marked(marked),
            Relation::Sibling => self.beside_marked(marked),
        }
    }
}

/// How a right-hand span relates to a left-hand one.
#[derive(Debug, Clone, Copy)]
enum Relation {
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
}

impl Relation {
    /// The relation seen from the other side.
    fn reverse(self) -> Self {
        match self {
            Self::Child => Self::Parent,
            Self::Parent => Self::Child,
            Self::Descendant => Self::Ancestor,
            Self::Ancestor => Self::Descendant,
            Self::Sibling => Self::Sibling,
        }
    }
}

/// Which rows `op` keeps: right-hand spans in the relation (or not in it, for the negated
/// forms) and, for the union forms, also the left-hand spans that have such a partner.
pub(crate) fn evaluate(op: SpansetOp, rows: &[Row<'_>]) -> Result<Vec<bool>> {
    use SpansetOp::*;
    let (relation, negated, union) = match op {
        Child => (Relation::Child, false, false),
        Parent => (Relation::Parent, false, false),
        Descendant => (Relation::Descendant, false, false),
        Ancestor => (Relation::Ancestor, false, false),
        Sibling => (Relation::Sibling, false, false),
        NotChild => (Relation::Child, true, false),
        NotParent => (Relation::Parent, true, false),
        NotDescendant => (Relation::Descendant, true, false),
        NotAncestor => (Relation::Ancestor, true, false),
        NotSibling => (Relation::Sibling, true, false),
        UnionChild => (Relation::Child, false, true),
        UnionParent => (Relation::Parent, false, true),
        UnionDescendant => (Relation::Descendant, false, true),
        UnionAncestor => (Relation::Ancestor, false, true),
        UnionSibling => (Relation::Sibling, false, true),
        And | Union => return plan_err!("{NAME} does not evaluate {}", op.symbol()),
    };
    let tree = Tree::new(rows);
    let related = tree.related(relation, &tree.left);
    let right_hit: Vec<bool> = (0..tree.parent.len())
        .map(|n| tree.right[n] && (related[n] != negated))
        .collect();
    let left_hit = if union {
        // Left spans with a right-hand partner: the reverse relation to the kept right spans.
        let partners = tree.related(relation.reverse(), &right_hit);
        (0..tree.parent.len())
            .map(|n| tree.left[n] && partners[n])
            .collect()
    } else {
        vec![false; tree.parent.len()]
    };
    Ok(rows
        .iter()
        .zip(&tree.node_of_row)
        .map(|(row, &n)| (row.right && right_hit[n]) || (row.left && left_hit[n]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `spans`: (id, parent, left, right).
    fn run(op: SpansetOp, spans: &[(&str, Option<&str>, bool, bool)]) -> Vec<String> {
        let rows: Vec<Row<'_>> = spans
            .iter()
            .map(|&(id, parent, left, right)| Row {
                id: Some(id),
                parent,
                left,
                right,
            })
            .collect();
        let hits = evaluate(op, &rows).unwrap();
        spans
            .iter()
            .zip(hits)
            .filter(|(_, hit)| *hit)
            .map(|(s, _)| s.0.to_string())
            .collect()
    }

    /// root(A) -> a(A) -> b(B) -> c(B); root -> d(B); b -> e.
    fn trace() -> Vec<(&'static str, Option<&'static str>, bool, bool)> {
        vec![
            ("root", None, true, false),
            ("a", Some("root"), true, false),
            ("b", Some("a"), false, true),
            ("c", Some("b"), false, true),
            ("d", Some("root"), false, true),
            ("e", Some("b"), false, false),
        ]
    }

    #[test]
    fn each_operator_keeps_the_right_spans() {
        use SpansetOp::*;
        let cases: &[(SpansetOp, &[&str])] = &[
            (Child, &["b", "d"]),
            (Descendant, &["b", "c", "d"]),
            (NotChild, &["c"]),
            (NotDescendant, &[]),
            (Sibling, &["d"]),
            (NotSibling, &["b", "c"]),
            (UnionChild, &["root", "a", "b", "d"]),
            (UnionDescendant, &["root", "a", "b", "c", "d"]),
        ];
        for (op, expected) in cases {
            assert_eq!(run(*op, &trace()), *expected, "{}", op.symbol());
        }
        // Right: spans that are parents / ancestors of left spans. Make `c` left and `a`,
        // `b` right.
        let spans = vec![
            ("root", None, false, true),
            ("a", Some("root"), false, true),
            ("b", Some("a"), false, true),
            ("c", Some("b"), true, false),
        ];
        assert_eq!(run(Parent, &spans), ["b"]);
        assert_eq!(run(Ancestor, &spans), ["root", "a", "b"]);
        assert_eq!(run(NotParent, &spans), ["root", "a"]);
        assert_eq!(run(UnionParent, &spans), ["b", "c"]);
        assert_eq!(run(UnionAncestor, &spans), ["root", "a", "b", "c"]);
    }

    #[test]
    fn a_span_that_is_its_own_parent_takes_no_part() {
        let spans = vec![
            ("a", None, true, true),
            ("s", Some("s"), true, true),
            ("b", Some("a"), true, true),
        ];
        assert_eq!(run(SpansetOp::NotSibling, &spans), ["a", "b"]);
        assert_eq!(run(SpansetOp::NotParent, &spans), ["b"]);
        assert_eq!(run(SpansetOp::NotChild, &spans), ["a"]);
        assert_eq!(run(SpansetOp::UnionChild, &spans), ["a", "b"]);
    }

    #[test]
    fn cycles_end_and_duplicates_are_one_span() {
        let spans = vec![
            ("x", Some("y"), true, true),
            ("y", Some("x"), false, true),
            ("y", Some("x"), false, true),
            ("z", Some("y"), false, true),
        ];
        assert_eq!(run(SpansetOp::Descendant, &spans), ["x", "y", "y", "z"]);
        assert_eq!(run(SpansetOp::Ancestor, &spans), ["x", "y", "y"]);
    }

    #[test]
    fn a_deep_chain_is_linear() {
        let ids: Vec<String> = (0..100_000).map(|i| format!("{i:016x}")).collect();
        let rows: Vec<Row<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Row {
                id: Some(id),
                parent: i.checked_sub(1).map(|p| ids[p].as_str()),
                left: i == 0,
                right: i == ids.len() - 1,
            })
            .collect();
        let hits = evaluate(SpansetOp::Descendant, &rows).unwrap();
        assert_eq!(hits.iter().filter(|h| **h).count(), 1);
        assert!(hits[ids.len() - 1]);
    }
}
