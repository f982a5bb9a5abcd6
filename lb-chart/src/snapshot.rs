//! Snapshot checks of rendered text (SVG, DOT, JSON, tables): the expected output is a
//! checked-in file, so a change of output shows up as a reviewable diff.
//! `UPDATE_SNAPSHOTS=1 cargo test` rewrites the files instead of comparing (then review
//! `git diff`). Here because every crate that draws (lbctl, lb-chart, xtask) checks
//! snapshots the same way.

use std::path::Path;

/// Compares `actual` with the file `rel` under `root` (a crate's manifest directory), or
/// writes it when `UPDATE_SNAPSHOTS` is set. Panics with the first differing line.
pub fn check(root: &Path, rel: &str, actual: &str) {
    let path = root.join(rel);
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
