//! Forwarding loops: cycles in the graph of bridges and segments joined by ports that
//! forward. A spanning tree exists to leave none; a bridge with STP off forwards on every
//! port, so two such bridges joined twice (or one joined twice to an STP domain whose
//! blocking ports do not break that cycle) make a loop where frames circulate for ever.
//! Pure: the caller says which ports forward (the kernel's port state).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One forwarding port: its bridge, its name, and the segment (link) it is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub bridge: String,
    pub port: String,
    pub segment: String,
}

/// A graph vertex: a bridge or a segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Vertex {
    Bridge(String),
    Segment(String),
}

/// The cycles of the forwarding graph, each as its ports (one cycle per port that closes
/// one; a port that closes a cycle is found by union-find, the rest of the cycle by a
/// breadth-first walk of the forest built so far). Empty when there is no loop.
pub fn find_loops(edges: &[Edge]) -> Vec<Vec<Edge>> {
    let mut sorted = edges.to_vec();
    sorted.sort();
    sorted.dedup();
    // The forest: vertex -> [(neighbour, edge index)].
    let mut forest: BTreeMap<Vertex, Vec<(Vertex, usize)>> = BTreeMap::new();
    let mut loops = Vec::new();
    for (i, e) in sorted.iter().enumerate() {
        let (b, s) = (
            Vertex::Bridge(e.bridge.clone()),
            Vertex::Segment(e.segment.clone()),
        );
        if let Some(path) = path_in(&forest, &b, &s) {
            let mut cycle: Vec<Edge> = path.iter().map(|&j| sorted[j].clone()).collect();
            cycle.push(e.clone());
            loops.push(cycle);
            continue;
        }
        forest.entry(b.clone()).or_default().push((s.clone(), i));
        forest.entry(s).or_default().push((b, i));
    }
    loops
}

/// The edges of the path from `a` to `b` in the forest, if they are connected.
fn path_in(
    forest: &BTreeMap<Vertex, Vec<(Vertex, usize)>>,
    a: &Vertex,
    b: &Vertex,
) -> Option<Vec<usize>> {
    let mut prev: BTreeMap<&Vertex, (&Vertex, usize)> = BTreeMap::new();
    let mut seen: BTreeSet<&Vertex> = BTreeSet::from([a]);
    let mut queue = VecDeque::from([a]);
    while let Some(v) = queue.pop_front() {
        if v == b {
            let mut path = Vec::new();
            let mut at = v;
            while let Some(&(p, e)) = prev.get(at) {
                path.push(e);
                at = p;
            }
            return Some(path);
        }
        for (n, e) in forest.get(v).into_iter().flatten() {
            if seen.insert(n) {
                prev.insert(n, (v, *e));
                queue.push_back(n);
            }
        }
    }
    None
}

/// A loop as text: its ports as "bridge/port", sorted, comma-separated.
pub fn loop_text(cycle: &[Edge]) -> String {
    let mut ports: Vec<String> = cycle
        .iter()
        .map(|e| format!("{}/{}", e.bridge, e.port))
        .collect();
    ports.sort();
    ports.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(bridge: &str, port: &str, segment: &str) -> Edge {
        Edge {
            bridge: bridge.into(),
            port: port.into(),
            segment: segment.into(),
        }
    }

    #[test]
    fn a_tree_has_no_loop() {
        // a - b - c in a line, and a host port on c.
        let t = [
            e("a", "p1", "ab"),
            e("b", "p1", "ab"),
            e("b", "p2", "bc"),
            e("c", "p1", "bc"),
            e("c", "h", "host"),
        ];
        assert!(find_loops(&t).is_empty());
    }

    #[test]
    fn two_bridges_joined_twice_loop() {
        // Two bridges with STP off joined by two links: every port forwards.
        let t = [
            e("a", "p1", "l1"),
            e("b", "p1", "l1"),
            e("a", "p2", "l2"),
            e("b", "p2", "l2"),
        ];
        let loops = find_loops(&t);
        assert_eq!(loops.len(), 1);
        assert_eq!(loop_text(&loops[0]), "a/p1, a/p2, b/p1, b/p2");
        // The same with one port blocking (what STP would do): no loop.
        assert!(find_loops(&t[..3]).is_empty());
    }

    #[test]
    fn a_triangle_through_three_bridges_loops() {
        let t = [
            e("a", "p1", "ab"),
            e("b", "p1", "ab"),
            e("b", "p2", "bc"),
            e("c", "p1", "bc"),
            e("c", "p2", "ca"),
            e("a", "p2", "ca"),
        ];
        let loops = find_loops(&t);
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].len(), 6);
    }
}
