//! Snapshot checks for the pure stages (status model, status text, graph model and DOT,
//! plan): the expected output is a checked-in file next to the code, so a change of
//! output shows up as a reviewable diff. `UPDATE_SNAPSHOTS=1 cargo test` rewrites the
//! files instead of comparing (then review `git diff`).

/// Compares `actual` with the file `rel` (relative to the lbctl crate's root), or writes
/// it when `UPDATE_SNAPSHOTS` is set (the rule is lb-chart's, shared by every crate).
pub fn check(rel: &str, actual: &str) {
    lb_chart::snapshot::check(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        rel,
        actual,
    )
}

/// `value` as pretty JSON with a final newline, the form JSON snapshots are kept in.
pub fn json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("serialising a snapshot");
    s.push('\n');
    s
}
