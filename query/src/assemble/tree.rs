//! The shape of a trace: one copy of each span, parent links (with cycles cut), and the
//! depth-first display order.
//!
//! Everything here works on indexes into the deduplicated span list and walks with explicit
//! stacks, never recursion, so depth is bounded only by memory.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use super::{AssemblyWarning, SpanRecord};

/// The spans with each exact copy once, and how many copies were dropped.
pub(super) struct Deduped {
    pub spans: Vec<SpanRecord>,
    /// Per span, the identical copies merged into it.
    pub duplicates: Vec<usize>,
    pub duplicates_merged: usize,
}

/// Keeps one of each set of identical spans, and every distinct span.
///
/// Exporters retry, so the same span can be stored twice: a copy equal in every field to one
/// already seen is merged into it. Spans that only share a span id (an SDK or proxy bug, or a
/// span id reused across resources) are different spans: all are kept, each with a warning, as
/// Jaeger keeps them.
pub(super) fn dedup(spans: Vec<SpanRecord>, warnings: &mut Vec<AssemblyWarning>) -> Deduped {
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::with_capacity(spans.len());
    let mut kept: Vec<SpanRecord> = Vec::with_capacity(spans.len());
    let mut duplicates = Vec::with_capacity(spans.len());
    let mut duplicates_merged = 0;
    for span in spans {
        if span.span_id.is_empty() {
            // Nothing can refer to a span without an id, and nothing says two are the same.
            kept.push(span);
            duplicates.push(0);
            continue;
        }
        let same_id = by_id.entry(span.span_id.clone()).or_default();
        match same_id.iter().find(|&&i| kept[i] == span) {
            Some(&i) => {
                duplicates[i] += 1;
                duplicates_merged += 1;
            }
            None => {
                same_id.push(kept.len());
                kept.push(span);
                duplicates.push(0);
            }
        }
    }
    for (i, &copies) in duplicates.iter().enumerate() {
        if copies > 0 {
            warnings.push(AssemblyWarning {
                span_index: Some(i),
                message: format!(
                    "span {} was delivered {} times; the copies are identical and shown once",
                    kept[i].span_id,
                    copies + 1
                ),
            });
        }
    }
    let mut shared: Vec<&Vec<usize>> = by_id.values().filter(|same| same.len() > 1).collect();
    shared.sort_unstable();
    for same in shared {
        for &i in same {
            warnings.push(AssemblyWarning {
                span_index: Some(i),
                message: format!(
                    "span id {} is shared by {} different spans of this trace",
                    kept[i].span_id,
                    same.len()
                ),
            });
        }
    }
    Deduped {
        spans: kept,
        duplicates,
        duplicates_merged,
    }
}

/// Of the spans `candidates` sharing the parent id of span `child`, the parent: one whose time
/// contains the child's start, else the earliest; the child itself only when no other span
/// has the id (a span that is its own parent, a cycle cut later).
fn choose_parent(spans: &[SpanRecord], candidates: &[usize], child: usize) -> Option<usize> {
    let start = spans[child].start_ns;
    let others = candidates.iter().copied().filter(|&c| c != child);
    let earliest = |c: &usize| (spans[*c].start_ns, *c);
    others
        .clone()
        .filter(|&c| spans[c].start_ns <= start && start <= spans[c].end_ns)
        .min_by_key(earliest)
        .or_else(|| others.min_by_key(earliest))
        .or_else(|| candidates.contains(&child).then_some(child))
}

/// Why a span has no parent in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TopLevel {
    /// No parent span id: a true root.
    Root,
    /// The parent span id is not in the trace.
    Orphan,
    /// The parent link was cut to break a cycle.
    CycleCut,
}

/// Parent/child links between the deduplicated spans.
pub(super) struct Links {
    pub parent: Vec<Option<usize>>,
    /// `Some` exactly for spans without a parent in the tree.
    pub top_level: Vec<Option<TopLevel>>,
    /// Unordered until [`depth_first`] sorts them.
    pub children: Vec<Vec<usize>>,
    /// Parent span ids that no span has, sorted.
    pub missing_parents: Vec<String>,
    pub cycles_broken: usize,
}

/// Resolves parent span ids, keeping orphans as top-level spans and cutting parent cycles.
pub(super) fn link(spans: &[SpanRecord], warnings: &mut Vec<AssemblyWarning>) -> Links {
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        if !span.span_id.is_empty() {
            by_id.entry(span.span_id.as_str()).or_default().push(i);
        }
    }
    let n = spans.len();
    let mut parent = vec![None; n];
    let mut top_level = vec![None; n];
    let mut missing_parents = BTreeSet::new();
    for (i, span) in spans.iter().enumerate() {
        match parent_id(span) {
            None => top_level[i] = Some(TopLevel::Root),
            Some(id) => match by_id.get(id).and_then(|c| choose_parent(spans, c, i)) {
                Some(p) => parent[i] = Some(p),
                None => {
                    top_level[i] = Some(TopLevel::Orphan);
                    missing_parents.insert(id);
                    warnings.push(AssemblyWarning {
                        span_index: Some(i),
                        message: format!(
                            "parent span {id} is not in the trace; shown as a top-level span"
                        ),
                    });
                }
            },
        }
    }

    let cycles_broken = break_cycles(spans, &mut parent, &mut top_level, warnings);

    let mut children = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = *p {
            children[p].push(i);
        }
    }
    Links {
        parent,
        top_level,
        children,
        missing_parents: missing_parents.into_iter().map(str::to_owned).collect(),
        cycles_broken,
    }
}

/// The parent span id, if the span has a real one (OTLP uses empty, some SDKs all zeros).
pub(super) fn parent_id(span: &SpanRecord) -> Option<&str> {
    span.parent_span_id
        .as_deref()
        .filter(|id| !id.is_empty() && !id.bytes().all(|b| b == b'0'))
}

/// Cuts every cycle of parent links at its earliest-starting span (then lowest span id), so the
/// result does not depend on input order. Returns the number of cycles.
///
/// Each span has at most one parent, so following parents from any span either reaches a top
/// level span or enters a cycle; marking the walked path finds each cycle once, in linear time.
fn break_cycles(
    spans: &[SpanRecord],
    parent: &mut [Option<usize>],
    top_level: &mut [Option<TopLevel>],
    warnings: &mut Vec<AssemblyWarning>,
) -> usize {
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![UNSEEN; spans.len()];
    let mut path = Vec::new();
    let mut cycles = 0;
    for start in 0..spans.len() {
        if state[start] != UNSEEN {
            continue;
        }
        path.clear();
        let mut cur = start;
        loop {
            match state[cur] {
                UNSEEN => {
                    state[cur] = ON_PATH;
                    path.push(cur);
                    match parent[cur] {
                        Some(p) => cur = p,
                        None => break,
                    }
                }
                ON_PATH => {
                    let from = path
                        .iter()
                        .rposition(|&x| x == cur)
                        .expect("a span on the path is in the path");
                    let members = &path[from..];
                    let cut = *members
                        .iter()
                        .min_by(|&&a, &&b| {
                            let (a, b) = (&spans[a], &spans[b]);
                            a.start_ns
                                .cmp(&b.start_ns)
                                .then_with(|| a.span_id.cmp(&b.span_id))
                        })
                        .expect("a cycle has members");
                    parent[cut] = None;
                    top_level[cut] = Some(TopLevel::CycleCut);
                    cycles += 1;
                    let (id, length) = (parent_id(&spans[cut]).unwrap_or_default(), members.len());
                    warnings.push(AssemblyWarning {
                        span_index: Some(cut),
                        message: format!(
                            "parent span {id} closes a cycle of length {length}; cut here"
                        ),
                    });
                    break;
                }
                _ => break,
            }
        }
        for &x in &path {
            state[x] = DONE;
        }
    }
    cycles
}

/// The depth-first display order (old indexes in new order). Top-level spans come as roots,
/// orphans, cut cycles, each group by start time; children by adjusted start, then span id.
/// Sorts `links.children` into that order as a side effect.
pub(super) fn depth_first(spans: &[SpanRecord], links: &mut Links, shifts: &[i64]) -> Vec<usize> {
    let by_time = |a: usize, b: usize| -> Ordering {
        let start = |i: usize| spans[i].start_ns.saturating_add(shifts[i]);
        start(a)
            .cmp(&start(b))
            .then_with(|| spans[a].span_id.cmp(&spans[b].span_id))
            .then(a.cmp(&b))
    };
    let mut tops: Vec<usize> = (0..spans.len())
        .filter(|&i| links.top_level[i].is_some())
        .collect();
    tops.sort_by(|&a, &b| {
        links.top_level[a]
            .cmp(&links.top_level[b])
            .then_with(|| by_time(a, b))
    });

    let mut order = Vec::with_capacity(spans.len());
    let mut stack: Vec<usize> = tops.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        let kids = &mut links.children[i];
        kids.sort_by(|&a, &b| by_time(a, b));
        stack.extend(kids.iter().rev());
    }
    debug_assert_eq!(
        order.len(),
        spans.len(),
        "cycles are cut, so every span is reached"
    );
    order
}
