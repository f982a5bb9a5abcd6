//! Renders DOT to SVG with Graphviz's `dot` (Debian's graphviz package; scripts/bootstrap.sh
//! installs it).

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// `dot -Tsvg`, DOT on stdin, SVG from stdout.
pub fn svg(dot: &str) -> Result<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running Graphviz `dot` (apt-get install graphviz; scripts/bootstrap.sh does)")?;
    let mut stdin = child.stdin.take().context("dot's stdin")?;
    let input = dot.to_string();
    // Write on a thread so a large graph cannot deadlock against dot's full stdout pipe.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().context("waiting for dot")?;
    let _ = writer.join();
    if !out.status.success() {
        bail!(
            "dot failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("dot's SVG is not UTF-8")
}
