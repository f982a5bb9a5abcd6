//! `lbctl vtep-log`: follows the BPF VTEP's debug log (aya-log) of one host.

use anyhow::Result;

use super::LabArgs;
use crate::topo::{netns, state};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// The host whose VTEP to follow.
    #[arg(long)]
    node: String,
    /// Stop after this many seconds (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    secs: u64,
}

pub fn run(a: Args) -> Result<()> {
    netns::require_root()?;
    let (cfg, _) = a.lab.resolve()?;
    crate::datapath::vxlan::follow_log(&state::node_pin_dir(&cfg.lab.name, &a.node), a.secs)
}
