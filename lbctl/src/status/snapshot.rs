//! Snapshot checks for the pure stages (status model, status text, graph model and DOT,
//! plan): the expected output is a checked-in file next to the code, so a change of
//! output shows up as a reviewable diff. `UPDATE_SNAPSHOTS=1 cargo test` rewrites the
//! files instead of comparing (then review `git diff`).

use std::path::PathBuf;

/// Compares `actual` with the file `rel` (relative to the lbctl crate's root), or writes
/// it when `UPDATE_SNAPSHOTS` is set.
pub fn check(rel: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating the snapshot directory");
        }
        std::fs::write(&path, actual).expect("writing the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "snapshot {} unreadable ({e}); run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {} differs from line {} on (UPDATE_SNAPSHOTS=1 rewrites it)\n--- actual ---\n{actual}",
            path.display(),
            first + 1
        );
    }
}

/// `value` as pretty JSON with a final newline, the form JSON snapshots are kept in.
pub fn json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("serialising a snapshot");
    s.push('\n');
    s
}
