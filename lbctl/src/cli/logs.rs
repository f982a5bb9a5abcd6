//! `lbctl logs NODE`: prints (or follows) the node's daemon logs.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::LabArgs;
use crate::logs;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    lab: Option<String>,
    /// A node that runs a daemon: a balancer or a server.
    node: String,
    /// Only this daemon's log (agent, serve, apache).
    #[arg(long)]
    daemon: Option<String>,
    /// Keep printing what is appended (tail -F).
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long)]
    lines: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let (cfg, _) = LabArgs::named(a.lab.clone()).resolve()?;
    let lab = cfg.lab.name.clone();
    let files = logs::files(&lab, &a.node, a.daemon.as_deref());
    if files.is_empty() {
        let with = logs::nodes_with_logs(&lab);
        bail!(
            "no daemon log for {:?}{} in lab {lab:?} (nodes with logs: {})",
            a.node,
            a.daemon.map(|d| format!(" ({d})")).unwrap_or_default(),
            if with.is_empty() {
                "none".into()
            } else {
                with.join(", ")
            }
        );
    }
    if a.follow {
        return follow(&files, a.lines);
    }
    for f in &files {
        // A rotated log reads as one: its older files first (see logs::rotate).
        let mut text = String::new();
        for part in logs::rotate::in_order(f) {
            let bytes =
                std::fs::read(&part).with_context(|| format!("reading {}", part.display()))?;
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        if files.len() > 1 {
            println!("==> {} <==", f.display());
        }
        print!("{}", logs::tail(&text, a.lines));
    }
    Ok(())
}

/// Hands over to `tail -F`, which follows rotation and re-creation.
fn follow(files: &[PathBuf], lines: Option<usize>) -> Result<()> {
    let n = lines.unwrap_or(20).to_string();
    let err = std::process::Command::new("tail")
        .args(["-n", &n, "-F"])
        .args(files)
        .exec();
    Err(err).context("running tail -F")
}
