//! `lbctl exec NODE -- CMD…`: hands over to `ip netns exec`, which also mounts the
//! namespace's own /sys so tools like `brctl showstp` see the node's bridges.

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};

use super::{lab::node_ns, LabArgs};
use crate::topo::netns;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    lab: Option<String>,
    node: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    netns::require_root()?;
    let (cfg, _) = LabArgs::named(a.lab).resolve()?;
    let ns = node_ns(&cfg, &a.node)?;
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(&a.cmd)
        .exec();
    Err(err).context("running ip netns exec")
}
