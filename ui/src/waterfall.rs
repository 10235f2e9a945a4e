//! The geometry and navigation of the trace waterfall, apart from rendering so it can be tested:
//! which rows are visible with some subtrees collapsed, which of them are on screen (rows are
//! virtualised, so a trace of 200 k spans draws only a screenful), where a time falls on the
//! ruler, and the minimap of a long trace.

use std::collections::HashSet;

use crate::model::{SpanRow, TraceView};

/// Height of one waterfall row in pixels (the CSS uses the same).
pub const ROW_HEIGHT: f64 = 26.0;
/// Rows drawn above and below the visible ones, so scrolling shows no gaps.
pub const OVERSCAN: usize = 12;
/// Rows drawn before the browser has measured the viewport (server rendering).
pub const INITIAL_ROWS: usize = 60;

/// The rows shown, in display order: every span except the descendants of collapsed ones.
/// Display order is depth-first, so a subtree is the run of rows after its root that are
/// deeper than it.
pub fn visible_rows(spans: &[SpanRow], collapsed: &HashSet<u32>) -> Vec<u32> {
    let mut rows = Vec::with_capacity(spans.len());
    let mut i = 0;
    while i < spans.len() {
        rows.push(i as u32);
        let depth = spans[i].depth;
        i += 1;
        if collapsed.contains(&(i as u32 - 1)) {
            while i < spans.len() && spans[i].depth > depth {
                i += 1;
            }
        }
    }
    rows
}

/// The slice of `rows` to draw for a viewport scrolled to `scroll_top` pixels, `height` high.
pub fn window(total: usize, scroll_top: f64, height: f64) -> std::ops::Range<usize> {
    if total == 0 {
        return 0..0;
    }
    let first = (scroll_top.max(0.0) / ROW_HEIGHT).floor() as usize;
    let shown = (height.max(ROW_HEIGHT) / ROW_HEIGHT).ceil() as usize;
    let start = first.saturating_sub(OVERSCAN).min(total);
    let end = (first + shown + OVERSCAN).min(total);
    start..end
}

/// Maps times onto the width of the timeline, as percentages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Scale {
    /// The extent of a trace on the raw or the skew-adjusted timeline.
    pub fn of(trace: &TraceView, adjusted: bool) -> Self {
        if adjusted {
            Scale {
                start_ns: trace.start_ns,
                end_ns: trace.start_ns + trace.duration_ns.max(1),
            }
        } else {
            Scale {
                start_ns: trace.raw_start_ns,
                end_ns: trace.raw_end_ns.max(trace.raw_start_ns + 1),
            }
        }
    }

    pub fn span_ns(&self) -> i64 {
        (self.end_ns - self.start_ns).max(1)
    }

    /// Where `ns` falls, 0 to 100 (clamped).
    pub fn x(&self, ns: i64) -> f64 {
        ((ns - self.start_ns) as f64 / self.span_ns() as f64 * 100.0).clamp(0.0, 100.0)
    }

    /// Width of `from..to` in percent, at least a hair so instant spans stay visible.
    pub fn width(&self, from: i64, to: i64) -> f64 {
        (self.x(to) - self.x(from)).max(0.15)
    }
}

/// Ruler ticks: positions in percent and the offset from the trace start as text.
pub fn ticks(scale: &Scale, count: usize) -> Vec<(f64, String)> {
    (0..=count)
        .map(|i| {
            let offset = scale.span_ns() as f64 * i as f64 / count as f64;
            (
                i as f64 * 100.0 / count as f64,
                crate::format::duration(offset.round() as i64),
            )
        })
        .collect()
}

/// One line of the minimap: the time covered by a run of consecutive rows.
#[derive(Debug, Clone, PartialEq)]
pub struct MiniLine {
    pub left: f64,
    pub width: f64,
    pub error: bool,
    /// Colour index of the first row's service.
    pub service: u32,
}

/// At most `lines` lines summarising every span, for the overview above the waterfall.
pub fn minimap(trace: &TraceView, adjusted: bool, lines: usize) -> Vec<MiniLine> {
    let scale = Scale::of(trace, adjusted);
    let n = trace.spans.len();
    if n == 0 || lines == 0 {
        return Vec::new();
    }
    let per_line = n.div_ceil(lines);
    trace
        .spans
        .chunks(per_line)
        .map(|chunk| {
            let start = chunk.iter().map(|s| s.start(adjusted)).min().unwrap_or(0);
            let end = chunk.iter().map(|s| s.end(adjusted)).max().unwrap_or(0);
            MiniLine {
                left: scale.x(start),
                width: scale.width(start, end),
                error: chunk
                    .iter()
                    .any(|s| s.status == crate::model::Status::Error),
                service: chunk[0].service,
            }
        })
        .collect()
}

/// The ancestors of `row`, nearest first.
pub fn ancestors(spans: &[SpanRow], row: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut current = spans.get(row as usize).and_then(|s| s.parent);
    while let Some(p) = current {
        if out.len() > spans.len() {
            break;
        }
        out.push(p);
        current = spans.get(p as usize).and_then(|s| s.parent);
    }
    out
}

/// Expands whatever hides `row`.
pub fn reveal(spans: &[SpanRow], collapsed: &mut HashSet<u32>, row: u32) {
    for a in ancestors(spans, row) {
        collapsed.remove(&a);
    }
}

/// Collapses every span at `depth` or deeper that has children: "expand to level `depth`".
pub fn collapse_from_depth(spans: &[SpanRow], depth: u32) -> HashSet<u32> {
    spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.depth >= depth && s.children > 0)
        .map(|(i, _)| i as u32)
        .collect()
}

/// The visible row after (`step` = 1) or before (-1) `current`, for keyboard navigation.
pub fn step(rows: &[u32], current: Option<u32>, step: i64) -> Option<u32> {
    if rows.is_empty() {
        return None;
    }
    let position = current.and_then(|c| rows.iter().position(|&r| r == c));
    let next = match position {
        None => 0,
        Some(p) => (p as i64 + step).clamp(0, rows.len() as i64 - 1) as usize,
    };
    Some(rows[next])
}

/// The index of the span with `span_id`.
pub fn index_of(trace: &TraceView, span_id: &str) -> Option<u32> {
    trace
        .spans
        .iter()
        .position(|s| s.span_id == span_id)
        .map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    fn row(parent: Option<u32>, depth: u32, children: u32, start: i64, end: i64) -> SpanRow {
        SpanRow {
            span_id: format!("{start:016x}"),
            parent,
            depth,
            children,
            service: 0,
            name: "op".into(),
            kind: "INTERNAL".into(),
            start_ns: start,
            end_ns: end,
            shift_ns: 0,
            status: Status::Unset,
            status_message: String::new(),
            error_origin: false,
            orphan: false,
            cycle_broken: false,
            critical_ns: 0,
            hop: None,
        }
    }

    /// 0 ─ 1 ─ 2
    ///   │   └ 3
    ///   └ 4
    /// 5 (a second top-level span)
    fn tree() -> Vec<SpanRow> {
        vec![
            row(None, 0, 2, 0, 100),
            row(Some(0), 1, 2, 10, 60),
            row(Some(1), 2, 0, 20, 30),
            row(Some(1), 2, 0, 30, 50),
            row(Some(0), 1, 0, 60, 90),
            row(None, 0, 0, 95, 99),
        ]
    }

    #[test]
    fn collapsing_hides_exactly_the_subtree() {
        let spans = tree();
        assert_eq!(
            visible_rows(&spans, &HashSet::new()),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(visible_rows(&spans, &HashSet::from([1])), vec![0, 1, 4, 5]);
        assert_eq!(visible_rows(&spans, &HashSet::from([0])), vec![0, 5]);
        assert_eq!(visible_rows(&spans, &HashSet::from([0, 1])), vec![0, 5]);
        // Collapsing a leaf changes nothing.
        assert_eq!(visible_rows(&spans, &HashSet::from([2])).len(), 6);
    }

    #[test]
    fn revealing_a_row_expands_its_ancestors_only() {
        let spans = tree();
        let mut collapsed = collapse_from_depth(&spans, 0);
        assert_eq!(collapsed, HashSet::from([0, 1]));
        reveal(&spans, &mut collapsed, 3);
        assert!(collapsed.is_empty());
        let mut collapsed = HashSet::from([0, 5]);
        reveal(&spans, &mut collapsed, 4);
        assert_eq!(collapsed, HashSet::from([5]));
        assert_eq!(ancestors(&spans, 3), vec![1, 0]);
    }

    #[test]
    fn the_window_covers_the_viewport_plus_overscan() {
        assert_eq!(window(0, 0.0, 500.0), 0..0);
        let w = window(200_000, 0.0, 520.0);
        assert_eq!(w, 0..(20 + OVERSCAN));
        let w = window(200_000, ROW_HEIGHT * 1000.0, 520.0);
        assert_eq!(w, (1000 - OVERSCAN)..(1020 + OVERSCAN));
        let w = window(30, ROW_HEIGHT * 1000.0, 520.0);
        assert_eq!(w.end, 30);
        assert!(w.start <= w.end);
    }

    #[test]
    fn scale_and_ticks() {
        let scale = Scale {
            start_ns: 1_000,
            end_ns: 1_000 + 200_000_000,
        };
        assert_eq!(scale.x(1_000), 0.0);
        assert_eq!(scale.x(1_000 + 100_000_000), 50.0);
        assert_eq!(scale.x(-5), 0.0);
        assert_eq!(scale.x(i64::MAX / 2), 100.0);
        assert!(scale.width(5_000, 5_000) > 0.0);
        let ticks = ticks(&scale, 4);
        assert_eq!(ticks.len(), 5);
        assert_eq!(ticks[2], (50.0, "100ms".to_string()));
    }

    #[test]
    fn keyboard_steps_stay_in_bounds() {
        let rows = vec![0, 1, 4, 5];
        assert_eq!(step(&rows, None, 1), Some(0));
        assert_eq!(step(&rows, Some(1), 1), Some(4));
        assert_eq!(step(&rows, Some(5), 1), Some(5));
        assert_eq!(step(&rows, Some(0), -1), Some(0));
        assert_eq!(step(&[], Some(0), 1), None);
    }

    #[test]
    fn minimap_summarises_long_traces() {
        let spans: Vec<SpanRow> = (0..1000)
            .map(|i| {
                row(
                    if i == 0 { None } else { Some(0) },
                    u32::from(i > 0),
                    0,
                    i,
                    i + 10,
                )
            })
            .collect();
        let trace = TraceView {
            trace_id: "t".into(),
            root_service: None,
            root_name: None,
            start_ns: 0,
            duration_ns: 1010,
            raw_start_ns: 0,
            raw_end_ns: 1010,
            error_count: 0,
            max_depth: 1,
            services: vec![],
            spans,
            critical_path: vec![],
            missing: vec![],
            warnings: vec![],
            duplicates_merged: 0,
        };
        let lines = minimap(&trace, true, 100);
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0].left, 0.0);
        assert!(lines[99].left > 95.0);
    }
}
