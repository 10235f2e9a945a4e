//! Comparing two traces of the same operation: spans are matched by their place in the call
//! chain (the service and name of every ancestor, and which repetition among siblings it is),
//! so the comparison shows what ran in one and not the other and how the timing of what ran in
//! both differs.

use std::collections::HashMap;

use crate::model::TraceView;

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    pub depth: u32,
    pub service: String,
    pub name: String,
    /// Span index and duration in trace A and in trace B.
    pub a: Option<(u32, i64)>,
    pub b: Option<(u32, i64)>,
}

impl CompareRow {
    /// B's duration minus A's, when the span is in both.
    pub fn delta_ns(&self) -> Option<i64> {
        Some(self.b?.1 - self.a?.1)
    }

    /// In both and at least 20% and 1 ms slower or faster.
    pub fn changed(&self) -> bool {
        match (self.a, self.b) {
            (Some((_, a)), Some((_, b))) => {
                let delta = (b - a).abs();
                delta >= 1_000_000 && delta as f64 >= 0.2 * a.max(1) as f64
            }
            _ => false,
        }
    }
}

/// The structural key of every span: its path of (service, name) from its root, plus the count
/// of earlier siblings with the same path.
fn keys(trace: &TraceView) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(trace.spans.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &trace.spans {
        let service = &trace.services[s.service as usize].name;
        let parent = s
            .parent
            .map(|p| keys[p as usize].as_str())
            .unwrap_or_default();
        let base = format!("{parent}/{service}:{}", s.name);
        let n = seen.entry(base.clone()).or_insert(0);
        keys.push(format!("{base}#{n}"));
        *n += 1;
    }
    keys
}

/// The rows of a comparison: A's spans in A's order, each followed where it belongs by the spans
/// of B that A does not have.
pub fn compare(a: &TraceView, b: &TraceView) -> Vec<CompareRow> {
    let ka = keys(a);
    let kb = keys(b);
    let in_b: HashMap<&str, usize> = kb
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let in_a: HashMap<&str, usize> = ka
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    // B-only spans grouped under the key of their parent (empty for top level).
    let mut b_only: HashMap<String, Vec<usize>> = HashMap::new();
    let mut b_only_roots = Vec::new();
    for (i, k) in kb.iter().enumerate() {
        if in_a.contains_key(k.as_str()) {
            continue;
        }
        match b.spans[i].parent {
            Some(p) if in_a.contains_key(kb[p as usize].as_str()) => {
                b_only.entry(kb[p as usize].clone()).or_default().push(i)
            }
            Some(_) => {} // placed under its B-only parent below
            None => b_only_roots.push(i),
        }
    }
    let mut rows = Vec::with_capacity(a.spans.len() + b.spans.len());
    let push_b_subtree = |rows: &mut Vec<CompareRow>, root: usize| {
        let depth = b.spans[root].depth;
        let mut i = root;
        while i < b.spans.len() && (i == root || b.spans[i].depth > depth) {
            let s = &b.spans[i];
            rows.push(CompareRow {
                depth: s.depth,
                service: b.services[s.service as usize].name.clone(),
                name: s.name.clone(),
                a: None,
                b: Some((i as u32, s.end(true) - s.start(true))),
            });
            i += 1;
        }
    };
    for (i, s) in a.spans.iter().enumerate() {
        let matched = in_b.get(ka[i].as_str()).map(|&j| {
            let t = &b.spans[j];
            (j as u32, t.end(true) - t.start(true))
        });
        rows.push(CompareRow {
            depth: s.depth,
            service: a.services[s.service as usize].name.clone(),
            name: s.name.clone(),
            a: Some((i as u32, s.end(true) - s.start(true))),
            b: matched,
        });
        // B-only children go after A's subtree of this span would be ideal; right after the
        // parent keeps them next to it and is what a reader scans for.
        if let Some(extra) = b_only.get(&ka[i]) {
            for &j in extra {
                push_b_subtree(&mut rows, j);
            }
        }
    }
    for j in b_only_roots {
        push_b_subtree(&mut rows, j);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceSpans, SpanRow, Status};

    fn trace(spans: &[(Option<u32>, u32, &str, i64)]) -> TraceView {
        TraceView {
            trace_id: "t".into(),
            root_service: None,
            root_name: None,
            start_ns: 0,
            duration_ns: 100,
            raw_start_ns: 0,
            raw_end_ns: 100,
            error_count: 0,
            max_depth: 2,
            services: vec![ServiceSpans {
                name: "svc".into(),
                spans: spans.len(),
            }],
            spans: spans
                .iter()
                .map(|&(parent, depth, name, duration)| SpanRow {
                    span_id: name.into(),
                    parent,
                    depth,
                    children: 0,
                    service: 0,
                    name: name.into(),
                    kind: "INTERNAL".into(),
                    start_ns: 0,
                    end_ns: duration,
                    shift_ns: 0,
                    status: Status::Unset,
                    status_message: String::new(),
                    error_origin: false,
                    orphan: false,
                    cycle_broken: false,
                    critical_ns: 0,
                    hop: None,
                })
                .collect(),
            critical_path: vec![],
            missing: vec![],
            warnings: vec![],
            duplicates_merged: 0,
        }
    }

    #[test]
    fn matches_by_place_in_the_chain() {
        let a = trace(&[
            (None, 0, "GET /cart", 100_000_000),
            (Some(0), 1, "db.query", 10_000_000),
            (Some(0), 1, "db.query", 10_000_000),
            (Some(0), 1, "cache.get", 1_000_000),
        ]);
        let b = trace(&[
            (None, 0, "GET /cart", 300_000_000),
            (Some(0), 1, "db.query", 10_000_000),
            (Some(0), 1, "db.query", 250_000_000),
            (Some(0), 1, "db.query", 20_000_000),
            (Some(3), 2, "db.connect", 15_000_000),
        ]);
        let rows = compare(&a, &b);
        let names: Vec<(&str, bool, bool)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.a.is_some(), r.b.is_some()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("GET /cart", true, true),
                ("db.query", false, true),
                ("db.connect", false, true),
                ("db.query", true, true),
                ("db.query", true, true),
                ("cache.get", true, false),
            ]
        );
        assert!(rows[0].changed());
        assert_eq!(rows[0].delta_ns(), Some(200_000_000));
        assert!(!rows[1].changed(), "only in B");
        assert!(!rows[3].changed());
        assert!(rows[4].changed());
        assert_eq!(rows[4].delta_ns(), Some(240_000_000));
        assert!(!rows[5].changed(), "only in A");
    }
}
