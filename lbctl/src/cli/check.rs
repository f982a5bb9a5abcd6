//! `lbctl check`: validates a config and prints the plan's size, building nothing.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::Config;
use crate::topo::plan::Plan;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default_scenario(),
    };
    let plan = Plan::new(&cfg);
    println!(
        "config ok: lab {:?}, {} nodes, {} bridges, {} veth pairs, {} tunnel endpoint(s)",
        plan.lab,
        plan.nodes.len(),
        plan.bridges.len(),
        plan.veths.len(),
        plan.vxlans.len()
    );
    Ok(())
}
