//! What a trace view points out on top of the tree: the network time of each remote call, where
//! errors started, and calls whose other side never reported.
//!
//! All of these read the spans in depth-first order, where a parent always precedes its
//! descendants.

use super::{AssembledSpan, MissingKind, MissingSpan, NetworkHop};

/// The callee kind that answers a caller kind, for the kinds that make remote calls.
fn callee_kind(caller_kind: &str) -> Option<&'static str> {
    match caller_kind {
        "CLIENT" => Some("SERVER"),
        "PRODUCER" => Some("CONSUMER"),
        _ => None,
    }
}

/// Every direct CLIENT -> SERVER and PRODUCER -> CONSUMER pair, in span order.
pub(super) fn hops(spans: &[AssembledSpan]) -> Vec<NetworkHop> {
    let mut hops = Vec::new();
    for (i, caller) in spans.iter().enumerate() {
        let Some(callee_kind) = callee_kind(&caller.span.span_kind) else {
            continue;
        };
        for &c in &caller.children {
            let callee = &spans[c];
            if callee.span.span_kind == callee_kind {
                hops.push(NetworkHop {
                    client_index: i,
                    server_index: c,
                    client_service: caller.span.service_name.clone(),
                    server_service: callee.span.service_name.clone(),
                    gap_before_ns: callee
                        .adjusted_start_ns
                        .saturating_sub(caller.adjusted_start_ns),
                    gap_after_ns: caller
                        .adjusted_end_ns
                        .saturating_sub(callee.adjusted_end_ns),
                });
            }
        }
    }
    hops
}

/// Spans with status ERROR none of whose descendants has status ERROR, in span order: an error
/// usually travels up the call chain, and the deepest one is where it began.
pub(super) fn error_origins(spans: &[AssembledSpan]) -> Vec<usize> {
    let failed = |i: usize| spans[i].span.status_code == "ERROR";
    let mut error_below = vec![false; spans.len()];
    // Children come after their parent, so going backwards sees a subtree before its root.
    for i in (0..spans.len()).rev() {
        if let Some(p) = spans[i].parent_index
            && (error_below[i] || failed(i))
        {
            error_below[p] = true;
        }
    }
    (0..spans.len())
        .filter(|&i| failed(i) && !error_below[i])
        .collect()
}

/// CLIENT spans without a SERVER child and PRODUCER spans without a CONSUMER child.
pub(super) fn uninstrumented_callees(spans: &[AssembledSpan]) -> Vec<MissingSpan> {
    spans
        .iter()
        .enumerate()
        .filter_map(|(i, caller)| {
            let callee_kind = callee_kind(&caller.span.span_kind)?;
            let answered = caller
                .children
                .iter()
                .any(|&c| spans[c].span.span_kind == callee_kind);
            (!answered).then(|| MissingSpan {
                kind: MissingKind::UninstrumentedCallee,
                span_index: Some(i),
                span_id: None,
                peer: peer(caller),
            })
        })
        .collect()
}

/// Attributes naming who a caller called, in the semantic conventions, most specific first.
const PEER_KEYS: [&str; 4] = [
    "peer.service",
    "server.address",
    "net.peer.name",
    "db.system",
];

fn peer(caller: &AssembledSpan) -> Option<String> {
    PEER_KEYS.iter().find_map(|key| {
        caller
            .span
            .attributes
            .iter()
            .find(|a| a.key == *key && !a.value.is_empty())
            .map(|a| a.value.clone())
    })
}
