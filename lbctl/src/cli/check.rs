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
    if cfg.is_real_hosts() {
        println!("{}", real_hosts_summary(&cfg));
        return Ok(());
    }
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

/// A real-machine config's summary: the machines, the service and its peers' protocol.
fn real_hosts_summary(cfg: &Config) -> String {
    let names: Vec<&str> = cfg.machines.iter().map(|m| m.name.as_str()).collect();
    let mut out = format!(
        "config ok: real hosts {} (nothing to build; run `lbctl agent -c FILE --node NAME` on each)",
        names.join(", ")
    );
    if let Some(s) = &cfg.service {
        out += &format!(
            ", service {}:{} over {} backend(s), admin port {}",
            s.vip,
            s.port,
            s.backends.len(),
            s.admin_port
        );
    }
    if let Some(v) = &cfg.vrrp {
        out += &format!(", VRRP vrid {} version {}", v.vrid, v.version.number());
    }
    out
}
