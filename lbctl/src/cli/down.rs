//! `lbctl down`: removes every namespace, daemon, pin and file of a lab.

use anyhow::Result;

use super::LabArgs;
use crate::topo::{netns, teardown};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
}

pub fn run(a: Args) -> Result<()> {
    netns::require_root()?;
    let (cfg, _) = a.lab.resolve()?;
    teardown::down(&cfg.lab.name, true)?;
    Ok(())
}
