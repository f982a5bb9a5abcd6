//! `lbctl link down|up A B` and `lbctl bridge down|up BRIDGE`: inject a failure (or repair
//! it), then wait until the kernel's tree equals the expected one. `lbctl link blackhole
//! NODE BRIDGE` / `restore`: drop (or stop dropping) a node's traffic on its bridge port,
//! with no link event (no STP wait).

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

/// What `lbctl link` does to the link.
#[derive(Clone, Copy, ValueEnum)]
pub enum LinkAction {
    Up,
    Down,
    /// Silently drop NODE's IPv4 traffic on its port of BRIDGE (no reset, link stays up).
    Blackhole,
    /// Remove the black hole of NODE's port on BRIDGE.
    Restore,
}

#[derive(clap::Args)]
pub struct LinkArgs {
    /// up/down: both ends of the link A - B; blackhole/restore: A is a node, B its bridge.
    action: LinkAction,
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
    match a.action {
        LinkAction::Up => inject(&a.lab, a.no_wait, UpDown::Up, Fault::Link(a.a, a.b)).await,
        LinkAction::Down => inject(&a.lab, a.no_wait, UpDown::Down, Fault::Link(a.a, a.b)).await,
        LinkAction::Blackhole | LinkAction::Restore => {
            netns::require_root()?;
            let (cfg, _) = a.lab.resolve()?;
            let on = matches!(a.action, LinkAction::Blackhole);
            let f = Fault::Blackhole(a.a, a.b);
            fault::apply(&Plan::new(&cfg), &f, !on).await?;
            eprintln!("{f} {}", if on { "in place" } else { "removed" });
            Ok(())
        }
    }
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
