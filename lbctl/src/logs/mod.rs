//! `lbctl logs NODE`: the logs of the daemons a lab runs in a node (`lbctl agent`,
//! `lbctl serve`, Apache), from /run/lbctl/<lab>/logs/ and the Apache directories.
#![forbid(unsafe_code)]

pub mod rotate;

use crate::topo::state;
use std::path::PathBuf;

/// Log files of `node`'s daemons (optionally only `daemon`'s), sorted; the current file of
/// each (see [`rotate::in_order`] for its rotated predecessors).
pub fn files(lab: &str, node: &str, daemon: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    let dir = state::run_dir(lab).join("logs");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        let Some((n, d)) = stem.split_once('.') else {
            continue;
        };
        if n == node && daemon.is_none_or(|x| x == d) {
            v.push(e.path());
        }
    }
    if daemon.is_none_or(|d| d == "apache") {
        let adir = state::run_dir(lab).join("apache").join(node);
        for e in std::fs::read_dir(&adir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

/// Nodes that have logs in the lab.
pub fn nodes_with_logs(lab: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state::run_dir(lab).join("logs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.split_once('.').map(|(a, _)| a.to_string())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The last `lines` lines of `text` (all with None).
pub fn tail(text: &str, lines: Option<usize>) -> &str {
    let Some(n) = lines else { return text };
    let t = text.strip_suffix('\n').unwrap_or(text);
    let mut cut = t.len();
    for _ in 0..n {
        match t[..cut].rfind('\n') {
            Some(i) => cut = i,
            None => return text,
        }
    }
    &text[cut + 1..]
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(super::tail("a\nb\nc\n", Some(2)), "b\nc\n");
        assert_eq!(super::tail("a\nb\nc\n", Some(5)), "a\nb\nc\n");
        assert_eq!(super::tail("a\nb\nc", Some(1)), "c");
        assert_eq!(super::tail("a\nb\n", None), "a\nb\n");
    }
}
