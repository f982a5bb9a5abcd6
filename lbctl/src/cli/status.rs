//! `lbctl status`: the lab's nodes, STP ports against theory, daemons and BPF counters.

use anyhow::Result;

use super::LabArgs;
use crate::topo::netns;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: Args) -> Result<()> {
    netns::require_root()?;
    let (cfg, _) = a.lab.resolve()?;
    cfg.require_lab("status")?;
    let s = crate::status::collect(&cfg).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", crate::status::render(&s));
    }
    Ok(())
}
