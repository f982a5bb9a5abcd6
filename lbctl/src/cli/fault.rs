//! `lbctl link down|up A B` and `lbctl bridge down|up BRIDGE`: inject a failure (or repair
//! it), then wait until the kernel's tree equals the expected one.

use anyhow::Result;
use clap::ValueEnum;

use super::LabArgs;
use crate::fault::{self, Fault};
use crate::topo::{netns, plan::Plan};

#[derive(Clone, Copy, ValueEnum)]
pub enum UpDown {
    Up,
    Down,
}

#[derive(clap::Args)]
pub struct LinkArgs {
    action: UpDown,
    a: String,
    b: String,
    #[command(flatten)]
    lab: LabArgs,
    /// Return at once instead of waiting for the tree to converge.
    #[arg(long)]
    no_wait: bool,
}

#[derive(clap::Args)]
pub struct BridgeArgs {
    action: UpDown,
    bridge: String,
    #[command(flatten)]
    lab: LabArgs,
    /// Return at once instead of waiting for the tree to converge.
    #[arg(long)]
    no_wait: bool,
}

pub async fn link(a: LinkArgs) -> Result<()> {
    inject(&a.lab, a.no_wait, a.action, Fault::Link(a.a, a.b)).await
}

pub async fn bridge(a: BridgeArgs) -> Result<()> {
    inject(&a.lab, a.no_wait, a.action, Fault::Bridge(a.bridge)).await
}

/// Applies one injected failure (or its repair), then waits for STP unless told not to.
async fn inject(lab: &LabArgs, no_wait: bool, action: UpDown, f: Fault) -> Result<()> {
    netns::require_root()?;
    let (cfg, _) = lab.resolve()?;
    let up = matches!(action, UpDown::Up);
    fault::apply(&Plan::new(&cfg), &f, up).await?;
    eprintln!("{f} {}", if up { "up" } else { "down" });
    if !no_wait {
        fault::converge(&cfg, true).await?;
    }
    Ok(())
}
