//! The one rule for tests whose prerequisite (root, bpffs, an installed daemon) is missing:
//! under CI (`CI` set to anything but empty, `0` or `false`; `.ci/run` sets `CI=1`) the test
//! FAILS, since a run that proves nothing must not look green; elsewhere it prints a visible
//! `skipped: <test>: <why>` line and returns, and `scripts/test.sh` counts those lines as
//! skipped, not passed. The lab tests (`tests/common`) use it too.
//!
//! The line is written to the process's stderr handle directly, not through `eprintln!`:
//! libtest captures the print macros of a passing test, and a skip must stay visible.
#![forbid(unsafe_code)]

use std::io::Write as _;

/// Whether the environment's `CI` value means "running under CI".
pub fn under_ci(ci: Option<&str>) -> bool {
    !matches!(ci.map(str::trim), None | Some("" | "0" | "false"))
}

/// The line a skipped test prints (the test's name is its thread's name under libtest).
pub fn skip_line(test: &str, why: &str) -> String {
    format!("skipped: {test}: {why}\n")
}

/// A prerequisite is missing: panics under CI, else prints the skip line. Callers return
/// right after it (`return skip(...)`).
pub fn skip(why: &str) {
    let ci = std::env::var("CI").ok();
    assert!(
        !under_ci(ci.as_deref()),
        "prerequisite missing under CI={}: {why}",
        ci.unwrap_or_default()
    );
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = std::io::stderr().write_all(skip_line(&test, why).as_bytes());
}

/// Skips (or fails under CI) unless running as root; true when root.
pub fn need_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        skip("needs root");
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        assert!(!under_ci(None));
        for v in ["", "0", "false", " "] {
            assert!(!under_ci(Some(v)), "{v:?}");
        }
        for v in ["1", "true", "yes"] {
            assert!(under_ci(Some(v)), "{v:?}");
        }
    }

    #[test]
    fn the_line_names_test_and_reason() {
        assert_eq!(
            skip_line("m::t", "apache2 is not installed"),
            "skipped: m::t: apache2 is not installed\n"
        );
    }
}
