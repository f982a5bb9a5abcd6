//! `lbctl stpd`: the RSTP daemon of one bridge (started by `up`).

use anyhow::{bail, Result};
use tracing::Instrument;

use super::LabArgs;
use crate::stpd;
use crate::topo::{plan::Plan, state};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// The bridge whose spanning tree this daemon runs (its `stp_mode` must be `rstp`).
    #[arg(long)]
    bridge: String,
}

pub async fn run(a: Args) -> Result<()> {
    let (cfg, _) = a.lab.resolve()?;
    let plan = Plan::new(&cfg);
    let Some(b) = plan.bridge(&a.bridge) else {
        let names: Vec<&str> = plan.rstp_bridges().map(|b| b.name.as_str()).collect();
        bail!(
            "no bridge {:?} in lab {:?} (RSTP bridges: {})",
            a.bridge,
            plan.lab,
            names.join(", ")
        );
    };
    if !b.rstp {
        bail!(
            "bridge {} runs the kernel's STP in lab {:?} (stp_mode is not \"rstp\")",
            b.name,
            plan.lab
        );
    }
    let opts = stpd::Options {
        lab: plan.lab.clone(),
        pin_dir: state::node_pin_dir(&plan.lab, &b.node),
        report: stpd::report::path(&plan.lab, &b.name),
        bridge: b.clone(),
    };
    let span = tracing::info_span!("stpd", bridge = %b.name);
    stpd::run(opts).instrument(span).await
}
