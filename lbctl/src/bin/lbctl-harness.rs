//! `lbctl-harness`: the development helpers `cargo xtask bench datapath` runs (built only
//! with the `harness` feature; the product's `lbctl` has none of them). Each prints JSON.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use lbctl::harness::{udp_blast, vtep_bench};
use lbctl::topo::{netns, state};

#[derive(Parser)]
#[command(
    name = "lbctl-harness",
    about = "lbctl's benchmark helpers (development only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Per-packet cost of the VTEP programs via BPF_PROG_TEST_RUN.
    BenchVtep {
        /// Frames per single-run loop.
        #[arg(long, default_value_t = 20000)]
        iters: u32,
        /// Iterations of the live-frames run.
        #[arg(long, default_value_t = 2_000_000)]
        repeat: u32,
    },
    /// Send small UDP datagrams as fast as sendmmsg allows.
    UdpBlast {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 18)]
        len: usize,
        #[arg(long, default_value_t = 8.0)]
        secs: f64,
    },
    /// Count UDP datagrams for SECS after the first.
    UdpSink {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 8.0)]
        secs: f64,
    },
    /// Attach the do-nothing XDP program to interfaces of a lab node.
    XdpNoop {
        #[arg(long)]
        lab: String,
        #[arg(long)]
        node: String,
        ifaces: Vec<String>,
    },
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::BenchVtep { iters, repeat } => {
            netns::require_root()?;
            print_json(&vtep_bench::run(iters, repeat)?)
        }
        Cmd::UdpBlast { to, len, secs } => print_json(&udp_blast::send(to, len, secs)?),
        Cmd::UdpSink { listen, secs } => {
            print_json(&udp_blast::sink(listen, secs, Duration::from_secs(15))?)
        }
        Cmd::XdpNoop { lab, node, ifaces } => {
            netns::require_root()?;
            let pin = state::node_pin_dir(&lab, &node);
            netns::run_in(&lbctl::config::netns_name(&lab, &node), move || {
                vtep_bench::attach_noop(&pin, &ifaces)
            })
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn main() {
    if let Err(e) = run(Cli::parse().cmd) {
        eprintln!("lbctl-harness: {e:#}");
        std::process::exit(1);
    }
}
