//! `lbctl agent`: the balancer daemon (L7 proxy, health checks, VRRP, admin listener).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;

use super::LabArgs;
use crate::agent::{self, AgentPlan};
use crate::topo::state;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// The balancer this agent runs as: a `[[node]]` of role balancer or a `[[machine]]`.
    #[arg(long, env = "LBCTL_NODE")]
    node: String,
    /// Listen addresses (default: the VIP and the node's external address, service port).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Where to pin the backend health and VRRP state maps (default:
    /// /sys/fs/bpf/lbctl/<lab>/<node>; a real machine (`[[machine]]`) pins none unless
    /// this is given: only the lab's `lbctl status` reads them).
    #[arg(long)]
    pin_dir: Option<PathBuf>,
    /// Do not keep the state in BPF maps (no bpffs, no privileges).
    #[arg(long)]
    no_bpf: bool,
}

pub async fn run(a: Args) -> Result<()> {
    let (cfg, _) = a.lab.resolve()?;
    let mut plan = AgentPlan::new(&cfg, &a.node, &a.listen)?;
    // On a real machine nothing reads the maps (the admin port reports the same state)
    // and there are no lab observers: BPF stays off, so the agent needs no CAP_BPF.
    let real = cfg.machine(&a.node).is_some();
    let lab_pins = (!a.no_bpf && !real).then(|| state::node_pin_dir(&cfg.lab.name, &a.node));
    plan.pin_dir = if a.no_bpf {
        None
    } else {
        a.pin_dir.or(lab_pins)
    };
    plan.stp_observers = (!a.no_bpf && !real).then(|| state::pin_dir(&cfg.lab.name));
    plan.config_file = a.lab.config.clone();
    agent::privileges::check(&plan)?;
    agent::run(plan).await
}
