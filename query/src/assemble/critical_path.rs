//! The critical path: which spans the main root was waiting on, moment by moment.
//!
//! The algorithm of Jaeger UI's critical path view. Start at the end of the root. While a span has
//! a child that finished at or before the current moment, the span was waiting for the one that
//! finished last: the span itself is on the path from that child's end to the current moment,
//! and the walk continues inside the child from its end. When no such child is left, the span is
//! on the path back to its start, and the walk returns to the parent at that start. The result
//! is a chain of segments covering the root from end to start.
//!
//! Before walking, children are clipped to their parent (they cannot delay it past its end) and
//! dropped when entirely outside it; CONSUMER spans and their subtrees are dropped too, since a
//! message consumer runs after its producer, not while it waits.
//!
//! Times are the skew-adjusted ones. The walk is a loop with a cursor per span over its children
//! sorted by end time: the current moment only moves back, so a child passed over is never
//! needed again and the whole walk is linear after the sort.

use super::{AssembledSpan, CriticalPathSegment};

/// Returns the critical path of the tree under `root` in time order, and per span its time on it.
pub(super) fn compute(
    spans: &[AssembledSpan],
    root: Option<usize>,
) -> (Vec<CriticalPathSegment>, Vec<i64>) {
    let mut per_span = vec![0i64; spans.len()];
    let Some(root) = root else {
        return (Vec::new(), per_span);
    };
    // In depth-first order the root's subtree is the run of spans up to the next top-level one.
    let end = (root + 1..spans.len())
        .find(|&i| spans[i].parent_index.is_none())
        .unwrap_or(spans.len());
    let local = |i: usize| i - root;

    // Parents precede children, so a parent is clipped before its children are clipped to it.
    let mut clipped: Vec<Option<(i64, i64)>> = Vec::with_capacity(end - root);
    for (i, span) in spans.iter().enumerate().take(end).skip(root) {
        let own = (span.adjusted_start_ns, span.adjusted_end_ns);
        let range = match span.parent_index {
            _ if i == root => Some(own),
            Some(p) if span.span.span_kind != "CONSUMER" => {
                clipped[local(p)].and_then(|parent| clip(own, parent))
            }
            _ => None,
        };
        clipped.push(range);
    }

    let mut candidates: Vec<Vec<usize>> = vec![Vec::new(); end - root];
    for i in root + 1..end {
        if clipped[local(i)].is_some() {
            let p = spans[i]
                .parent_index
                .expect("non-root spans of a subtree have parents");
            candidates[local(p)].push(i);
        }
    }
    let range = |i: usize| clipped[local(i)].expect("candidates are clipped");
    for kids in &mut candidates {
        // Last to finish first; among equal ends the longest, which covers the most.
        kids.sort_by_key(|&c| (std::cmp::Reverse(range(c).1), range(c).0, c));
    }
    let mut cursor = vec![0usize; end - root];

    let mut path = Vec::new();
    let mut segment = |span_index: usize, start_ns: i64, end_ns: i64| {
        if start_ns < end_ns {
            per_span[span_index] += end_ns - start_ns;
            path.push(CriticalPathSegment {
                span_index,
                start_ns,
                end_ns,
            });
        }
    };
    let mut current = root;
    let mut until: Option<i64> = None;
    loop {
        let (start, end) = range(current);
        let until_ns = until.unwrap_or(end);
        let kids = &candidates[local(current)];
        let next = &mut cursor[local(current)];
        while *next < kids.len() && range(kids[*next]).1 > until_ns {
            *next += 1;
        }
        if let Some(&child) = kids.get(*next) {
            *next += 1;
            let child_end = range(child).1;
            segment(current, child_end, until_ns);
            current = child;
            until = None;
        } else {
            segment(current, start, until_ns);
            if current == root {
                break;
            }
            until = Some(start);
            current = spans[current]
                .parent_index
                .expect("non-root spans of a subtree have parents");
        }
    }
    path.reverse();
    (path, per_span)
}

/// A child's range cut to its parent's, or `None` when it lies outside the parent.
fn clip((start, end): (i64, i64), (parent_start, parent_end): (i64, i64)) -> Option<(i64, i64)> {
    let inside = if start >= parent_start {
        start < parent_end
    } else {
        end > parent_start
    };
    inside.then(|| (start.max(parent_start), end.min(parent_end)))
}
