//! `lbctl capture NODE IFACE`: tcpdump inside a node (through `ip netns exec`, like `exec`).

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};

use super::{lab::node_ns, LabArgs};
use crate::capture::{self, Preset};
use crate::topo::netns;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    lab: Option<String>,
    /// A node of the lab: balancer, server, user, switch or host (vm1, vm2).
    node: String,
    /// An interface in that node (`lbctl exec NODE -- ip link` lists them).
    iface: String,
    /// Preset filter.
    #[arg(long, value_enum, conflicts_with_all = ["stp", "vxlan"])]
    preset: Option<Preset>,
    /// Same as --preset vrrp: VRRP advertisements.
    #[arg(long, conflicts_with_all = ["stp", "vxlan"])]
    vrrp: bool,
    /// Same as --preset stp: BPDUs.
    #[arg(long, conflicts_with = "vxlan")]
    stp: bool,
    /// Same as --preset vxlan: the tunnel's UDP traffic.
    #[arg(long)]
    vxlan: bool,
    /// Stop after N packets.
    #[arg(short = 'c', long)]
    count: Option<u32>,
    /// A tcpdump filter expression (ANDed with the preset's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    filter: Vec<String>,
}

impl Args {
    /// `--preset`, or the flag that stands for one.
    fn preset(&self) -> Option<Preset> {
        let flags = [
            (self.vrrp, Preset::Vrrp),
            (self.stp, Preset::Stp),
            (self.vxlan, Preset::Vxlan),
        ];
        self.preset
            .or_else(|| flags.into_iter().find(|(on, _)| *on).map(|(_, p)| p))
    }
}

pub fn run(a: Args) -> Result<()> {
    netns::require_root()?;
    let preset = a.preset();
    let (cfg, _) = LabArgs::named(a.lab).resolve()?;
    let ns = node_ns(&cfg, &a.node)?;
    capture::check_iface(&ns, &a.node, &a.iface)?;
    let f = capture::filter(&cfg, preset, &a.filter);
    let args = capture::tcpdump_args(&a.iface, a.count, preset, &f);
    eprintln!("capturing in {}: {}", a.node, args.join(" "));
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(&args)
        .exec();
    Err(err).context("running tcpdump through ip netns exec")
}
