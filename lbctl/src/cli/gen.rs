//! `lbctl gen`: prints (or writes with `-o`) a generated lab config; see
//! [`crate::config::gen`] for the shape.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;

use crate::config::gen::{self, GenOptions, Mesh, Servers};
use crate::config::VxlanMode;

#[derive(clap::ValueEnum, Clone, Copy)]
enum MeshArg {
    Ring,
    Line,
    Full,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum VxlanArg {
    Kernel,
    Ebpf,
}

#[derive(clap::Args)]
pub struct Args {
    /// Hosts (hypervisors), each with an external and an internal bridge.
    #[arg(long)]
    hosts: usize,
    /// Servers on every host [default: 2].
    #[arg(long, conflicts_with = "servers")]
    servers_per_host: Option<usize>,
    /// Servers in all, spread evenly over the hosts (`--hosts 2 --servers 3` is the scenario).
    #[arg(long)]
    servers: Option<usize>,
    /// Balancers sharing the VIP by VRRP, at most one per host, spread over the hosts.
    #[arg(long, default_value_t = 2)]
    balancers: usize,
    /// External switches.
    #[arg(long, default_value_t = 2)]
    switches: usize,
    /// How the switches are cabled to each other.
    #[arg(long, value_enum, default_value = "ring")]
    switch_mesh: MeshArg,
    /// Switches each host is cabled to (2 = dual-homed, as in the scenario) [default: 2, or 1
    /// with one switch].
    #[arg(long)]
    uplinks: Option<usize>,
    /// Users on the external LAN, one per switch in turn.
    #[arg(long, default_value_t = 2)]
    users: usize,
    /// VXLAN data path.
    #[arg(long, value_enum, default_value = "kernel")]
    vxlan: VxlanArg,
    /// External LAN [default: 172.16.1.0/24, grown until the lab fits].
    #[arg(long, value_name = "CIDR")]
    ext_subnet: Option<Ipv4Net>,
    /// Internal LAN [default: 10.0.0.0/24, grown until the lab fits].
    #[arg(long, value_name = "CIDR")]
    int_subnet: Option<Ipv4Net>,
    /// Lab name written in the config.
    #[arg(long, default_value = "lab")]
    lab: String,
    /// Write the config to FILE instead of printing it.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl Args {
    fn options(&self) -> GenOptions {
        GenOptions {
            lab: self.lab.clone(),
            hosts: self.hosts,
            servers: match (self.servers, self.servers_per_host) {
                (Some(n), _) => Servers::Total(n),
                (None, k) => Servers::PerHost(k.unwrap_or(2)),
            },
            balancers: self.balancers,
            switches: self.switches,
            mesh: match self.switch_mesh {
                MeshArg::Ring => Mesh::Ring,
                MeshArg::Line => Mesh::Line,
                MeshArg::Full => Mesh::Full,
            },
            uplinks: self.uplinks,
            users: self.users,
            vxlan: match self.vxlan {
                VxlanArg::Kernel => VxlanMode::Kernel,
                VxlanArg::Ebpf => VxlanMode::Ebpf,
            },
            ext_subnet: self.ext_subnet,
            int_subnet: self.int_subnet,
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    let text = gen::generate(&a.options())?;
    match &a.output {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!(
                "wrote {} (start it with: lbctl up -c {})",
                p.display(),
                p.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}
