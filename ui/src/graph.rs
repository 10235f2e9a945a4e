//! Layout of the service map: services in columns by how far down the call chains they sit
//! (callers left, callees right), edges as curves from caller to callee.

use std::collections::HashMap;

use crate::model::ServiceMap;

pub const NODE_WIDTH: f64 = 170.0;
pub const NODE_HEIGHT: f64 = 46.0;
const COLUMN_GAP: f64 = 230.0;
const ROW_GAP: f64 = 44.0;
const MARGIN: f64 = 24.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub nodes: Vec<Node>,
    /// SVG path and label position of each edge, in `ServiceMap::edges` order.
    pub edges: Vec<EdgePath>,
    pub width: f64,
    pub height: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgePath {
    pub d: String,
    pub label_x: f64,
    pub label_y: f64,
}

/// Columns by longest call distance from a service nobody calls; cycles are cut where found.
fn columns(map: &ServiceMap) -> HashMap<&str, usize> {
    let mut column: HashMap<&str, usize> = map.services.iter().map(|s| (s.as_str(), 0)).collect();
    for e in &map.edges {
        column.entry(e.parent.as_str()).or_insert(0);
        column.entry(e.child.as_str()).or_insert(0);
    }
    // Longest-path relaxation, bounded by the node count so cycles terminate.
    let n = column.len();
    for _ in 0..n {
        let mut changed = false;
        for e in &map.edges {
            if e.parent == e.child {
                continue;
            }
            let from = column[e.parent.as_str()];
            if from + 1 > column[e.child.as_str()] && from + 1 < n {
                column.insert(e.child.as_str(), from + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    column
}

/// Places every service and routes every edge.
pub fn layout(map: &ServiceMap) -> Layout {
    let column = columns(map);
    let mut by_column: Vec<Vec<&str>> = Vec::new();
    let mut names: Vec<&str> = column.keys().copied().collect();
    names.sort_unstable();
    for name in names {
        let c = column[name];
        if by_column.len() <= c {
            by_column.resize(c + 1, Vec::new());
        }
        by_column[c].push(name);
    }
    let mut nodes = Vec::new();
    let mut position: HashMap<&str, (f64, f64)> = HashMap::new();
    let tallest = by_column.iter().map(Vec::len).max().unwrap_or(0);
    let height = MARGIN * 2.0 + tallest as f64 * (NODE_HEIGHT + ROW_GAP) - ROW_GAP.min(0.0);
    for (c, names) in by_column.iter().enumerate() {
        let column_height = names.len() as f64 * (NODE_HEIGHT + ROW_GAP) - ROW_GAP;
        let top = (height - column_height) / 2.0;
        for (r, name) in names.iter().enumerate() {
            let x = MARGIN + c as f64 * (NODE_WIDTH + COLUMN_GAP);
            let y = top + r as f64 * (NODE_HEIGHT + ROW_GAP);
            position.insert(name, (x, y));
            nodes.push(Node {
                name: name.to_string(),
                x,
                y,
                column: c,
            });
        }
    }
    let edges = map
        .edges
        .iter()
        .map(|e| {
            let (px, py) = position[e.parent.as_str()];
            let (cx, cy) = position[e.child.as_str()];
            if e.parent == e.child {
                // A loop over the top of the node.
                let x = px + NODE_WIDTH * 0.5;
                return EdgePath {
                    d: format!(
                        "M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                        x - 20.0,
                        py,
                        x - 40.0,
                        py - 45.0,
                        x + 40.0,
                        py - 45.0,
                        x + 20.0,
                        py
                    ),
                    label_x: x,
                    label_y: py - 40.0,
                };
            }
            let (x1, y1) = (px + NODE_WIDTH, py + NODE_HEIGHT / 2.0);
            let (x2, y2) = (cx, cy + NODE_HEIGHT / 2.0);
            if x2 > x1 {
                let mid = (x1 + x2) / 2.0;
                EdgePath {
                    d: format!(
                        "M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}"
                    ),
                    label_x: mid,
                    label_y: (y1 + y2) / 2.0 - 6.0,
                }
            } else {
                // A call back to an earlier column: route below both nodes.
                let (x1, y1) = (px + NODE_WIDTH / 2.0, py + NODE_HEIGHT);
                let (x2, y2) = (cx + NODE_WIDTH / 2.0, cy + NODE_HEIGHT);
                let low = y1.max(y2) + 40.0;
                EdgePath {
                    d: format!(
                        "M{x1:.1},{y1:.1} C{x1:.1},{low:.1} {x2:.1},{low:.1} {x2:.1},{y2:.1}"
                    ),
                    label_x: (x1 + x2) / 2.0,
                    label_y: low - 4.0,
                }
            }
        })
        .collect();
    let width = MARGIN * 2.0 + by_column.len() as f64 * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP;
    Layout {
        nodes,
        edges,
        width: width.max(NODE_WIDTH + 2.0 * MARGIN),
        height: height + 50.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Edge;

    fn edge(parent: &str, child: &str) -> Edge {
        Edge {
            parent: parent.into(),
            child: child.into(),
            calls: 10,
            errors: 1,
            p95_ns: 1e6,
        }
    }

    #[test]
    fn callers_sit_left_of_callees() {
        let map = ServiceMap {
            services: vec![
                "frontend".into(),
                "checkout".into(),
                "payment".into(),
                "db".into(),
            ],
            edges: vec![
                edge("frontend", "checkout"),
                edge("checkout", "payment"),
                edge("payment", "db"),
                edge("frontend", "db"),
            ],
            window_secs: 3600.0,
        };
        let layout = layout(&map);
        let col = |n: &str| layout.nodes.iter().find(|x| x.name == n).unwrap().column;
        assert_eq!(col("frontend"), 0);
        assert_eq!(col("checkout"), 1);
        assert_eq!(col("payment"), 2);
        assert_eq!(col("db"), 3, "longest path wins");
        assert_eq!(layout.edges.len(), 4);
        assert!(layout.edges.iter().all(|e| e.d.starts_with('M')));
    }

    #[test]
    fn cycles_and_self_calls_terminate() {
        let map = ServiceMap {
            services: vec!["a".into(), "b".into()],
            edges: vec![edge("a", "b"), edge("b", "a"), edge("a", "a")],
            window_secs: 60.0,
        };
        let layout = layout(&map);
        assert_eq!(layout.nodes.len(), 2);
        assert_eq!(layout.edges.len(), 3);
        // Services only named by edges are placed too.
        let map = ServiceMap {
            services: vec![],
            edges: vec![edge("x", "y")],
            window_secs: 60.0,
        };
        assert_eq!(super::layout(&map).nodes.len(), 2);
    }
}
