//! Clock skew correction, after Jaeger's query-side adjuster (`adjuster/clockskew.go`).
//!
//! Spans are timed by the clock of the host that emitted them, so a SERVER span can appear to
//! start before the CLIENT span that called it. Walking from the top, a child on another clock
//! than its parent is compared with the parent as already corrected:
//!
//! - it fits inside the parent: no shift;
//! - it is longer than the parent (async work, or the caller timed out): shift it only so it does
//!   not start before the parent;
//! - otherwise: shift it so it sits in the middle of the parent, assuming the network took as
//!   long on the way out as on the way back.
//!
//! A child on the same clock as its parent gets the parent's shift, so a corrected subtree moves
//! as a whole and keeps its internal timing.
//!
//! Unlike Jaeger, which compares only host identity (and re-checks every span that has none), a
//! clock here is the service plus the host identity when both spans carry one: without host
//! attributes, a change of service is the best sign of a change of machine.

use super::tree::Links;
use super::{AssemblyWarning, SpanRecord, human_duration};

/// Returns, per span, the shift in nanoseconds to add to all its timestamps.
pub(super) fn adjust(
    spans: &[SpanRecord],
    links: &Links,
    warnings: &mut Vec<AssemblyWarning>,
) -> Vec<i64> {
    let mut shifts = vec![0i64; spans.len()];
    let mut stack: Vec<usize> = (0..spans.len())
        .filter(|&i| links.top_level[i].is_some())
        .collect();
    while let Some(p) = stack.pop() {
        let parent = &spans[p];
        let parent_clock = Clock::of(parent);
        for &c in &links.children[p] {
            let child = &spans[c];
            shifts[c] = if Clock::of(child).same_as(&parent_clock) {
                shifts[p]
            } else {
                let (start, end) = times(parent);
                let delta = skew(
                    (
                        start.saturating_add(shifts[p]),
                        end.saturating_add(shifts[p]),
                    ),
                    times(child),
                );
                if delta != 0 {
                    let (shift, from) = (human_duration(delta), &parent.service_name);
                    warnings.push(AssemblyWarning {
                        span_index: Some(c),
                        message: format!(
                            "clock skew: shifted by {shift} into its parent from {from}"
                        ),
                    });
                }
                delta
            };
            stack.push(c);
        }
    }
    shifts
}

/// Start and end, with an end before the start read as a zero-length span.
fn times(span: &SpanRecord) -> (i64, i64) {
    (span.start_ns, span.end_ns.max(span.start_ns))
}

/// The shift that puts a child (raw times) inside its parent (corrected times).
fn skew((parent_start, parent_end): (i64, i64), (child_start, child_end): (i64, i64)) -> i64 {
    let parent_len = parent_end.saturating_sub(parent_start);
    let child_len = child_end.saturating_sub(child_start);
    if child_len > parent_len {
        // Cannot fit, so at least make the effect not precede its cause.
        return parent_start.saturating_sub(child_start).max(0);
    }
    if child_start >= parent_start && child_end <= parent_end {
        return 0;
    }
    let latency = (parent_len - child_len) / 2;
    parent_start
        .saturating_add(latency)
        .saturating_sub(child_start)
}

/// Whose clock timed a span.
struct Clock<'a> {
    service: &'a str,
    host: Option<&'a str>,
}

impl<'a> Clock<'a> {
    fn of(span: &'a SpanRecord) -> Self {
        // Jaeger's order: the most specific host identity first.
        let host = ["host.id", "host.ip", "host.name"].iter().find_map(|key| {
            span.resource_attributes
                .iter()
                .find(|a| a.key == *key && !a.value.is_empty())
                .map(|a| a.value.as_str())
        });
        Clock {
            service: &span.service_name,
            host,
        }
    }

    fn same_as(&self, other: &Clock<'_>) -> bool {
        self.service == other.service
            && match (self.host, other.host) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}
