//! Developer tasks for the lbctl workspace. Run through the alias in `.cargo/config.toml`:
//! `cargo xtask <command>`.
mod bench;
mod bench_charts;
mod bench_cost;
mod bench_datapath;
mod bench_scale;
mod bench_scale_measure;
mod bench_stp;
use xtask::ebpf;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for the lbctl workspace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the BPF programs (crate lb-ebpf) with nightly for bpfel-unknown-none.
    ///
    /// This is the same build lbctl's build script runs before embedding the object; use it to
    /// build or inspect the object on its own. Needs the nightly toolchain with rust-src and
    /// bpf-linker (scripts/bootstrap.sh installs both).
    BuildEbpf {
        /// Cargo target directory of the BPF build [default: $CARGO_TARGET_DIR/lb-ebpf, or
        /// target/lb-ebpf in the workspace]
        #[arg(long, value_name = "DIR")]
        target_dir: Option<PathBuf>,
        /// Rustup toolchain to build with
        #[arg(long, default_value = ebpf::EBPF_TOOLCHAIN)]
        toolchain: String,
        /// Also copy the object to this path
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Benchmarks (ours against the reference tool, same run, reported as ratios).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// lbctl's L7 proxy vs HAProxy with wrk on loopback; also RSS at 1,000 idle connections.
    Proxy {
        /// Alternating rounds (each runs wrk against both).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 8)]
        secs: u32,
        /// wrk connections.
        #[arg(long, default_value_t = 50)]
        conns: u32,
        /// Load shapes to run (comma-separated) [default: all].
        #[arg(long, value_enum, value_delimiter = ',')]
        case: Vec<bench::Case>,
        /// nbthread of both proxies, one pass over the cases each (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [2usize, 1])]
        nbthread: Vec<usize>,
    },
    /// VRRP failover in the lab: user-visible outage with our agent vs keepalived, same
    /// intervals and priorities, link cut and graceful stop.
    Failover,
    /// The BPF VXLAN data path vs the kernel's vxlan device: ns per packet via test_run (decap,
    /// encap, no-op XDP floor; single-run and live frames), then TCP throughput and 64-byte
    /// UDP packet rate across the tunnel in the lab (kernel, kernel + no-op XDP, ebpf).
    Datapath {
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 8)]
        secs: u32,
        /// Alternating rounds of the three lab cases (medians are compared).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Runs of the single-run test_run loops.
        #[arg(long, default_value_t = 20000)]
        iters: u32,
        /// Iterations of the live-frames test run.
        #[arg(long, default_value_t = 2000000)]
        repeat: u32,
    },
    /// Spanning-tree events (links and the root bridge down and up) seen by 10 ms ping loops
    /// between the users and towards a balancer: the kernel's 802.1D vs lbctl's RSTP, same
    /// run, median and worst per event, and the ratio.
    Stp {
        /// Times each event is repeated per mode.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Use this lbctl binary instead of building target/release/lbctl.
        #[arg(long, value_name = "PATH")]
        lbctl: Option<PathBuf>,
        /// Measure RSTP only (the kernel's events take ~20 s each).
        #[arg(long)]
        rstp_only: bool,
    },
    /// Generated labs of growing size (`lbctl gen --hosts N`): time of up and down, daemons'
    /// memory, open files and idle CPU, health-check packets/s, BPF maps, optionally verify
    /// time; where the machine stops and why; fails if down leaves anything behind.
    Scale {
        /// Host counts, in order (the run stops at the first that fails to come up).
        #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,24,32")]
        hosts: Vec<usize>,
        /// Servers per host.
        #[arg(long, default_value_t = 2)]
        servers_per_host: usize,
        /// VXLAN data path of the generated labs (kernel or ebpf).
        #[arg(long, default_value = "kernel")]
        vxlan: String,
        /// Also time `lbctl verify` on labs of at most this many hosts (slow: minutes each).
        #[arg(long, default_value_t = 0)]
        verify_upto: usize,
        /// Seconds `up` may take before the lab counts as failed.
        #[arg(long, default_value_t = 180)]
        cap: u64,
        /// Seconds over which health-check packets and idle CPU are counted.
        #[arg(long, default_value_t = 5)]
        window: u64,
        /// Use this lbctl binary instead of building target/release/lbctl.
        #[arg(long, value_name = "PATH")]
        lbctl: Option<PathBuf>,
    },
}

fn workspace_root() -> PathBuf {
    // xtask/Cargo.toml lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Bench { what } => bench_cmd(what),
        Cmd::BuildEbpf {
            target_dir,
            toolchain,
            out,
        } => build_ebpf(target_dir, &toolchain, out),
    }
}

/// Runs one `cargo xtask bench` subcommand.
fn bench_cmd(what: BenchCmd) -> anyhow::Result<()> {
    let root = workspace_root();
    match what {
        BenchCmd::Proxy {
            rounds,
            secs,
            conns,
            case,
            nbthread,
        } => {
            let cases = if case.is_empty() {
                bench::Case::ALL.to_vec()
            } else {
                case
            };
            let opts = bench::ProxyOpts {
                rounds,
                secs,
                conns,
                cases,
                nbthreads: nbthread,
            };
            bench::proxy(&root, &opts)
        }
        BenchCmd::Failover => bench::failover(&root),
        BenchCmd::Stp {
            runs,
            lbctl,
            rstp_only,
        } => bench_stp::stp(
            &root,
            &bench_stp::StpOpts {
                runs,
                lbctl,
                rstp_only,
            },
        ),
        BenchCmd::Datapath {
            secs,
            rounds,
            iters,
            repeat,
        } => bench_datapath::datapath(&root, secs, rounds, iters, repeat),
        BenchCmd::Scale {
            hosts,
            servers_per_host,
            vxlan,
            verify_upto,
            cap,
            window,
            lbctl,
        } => bench_scale::scale(
            &root,
            &bench_scale::ScaleOpts {
                hosts,
                servers_per_host,
                vxlan,
                verify_upto,
                cap_s: cap,
                window_s: window,
                lbctl,
            },
        ),
    }
}

/// `cargo xtask build-ebpf`: the BPF object, as lbctl's build script builds it.
fn build_ebpf(
    target_dir: Option<PathBuf>,
    toolchain: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let root = workspace_root();
    let target_dir = target_dir.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("lb-ebpf")
    });
    let obj = ebpf::EbpfBuild {
        workspace_root: &root,
        target_dir: &target_dir,
        toolchain,
        stdout_to_stderr: false,
    }
    .run()
    .map_err(|e| anyhow!(e))
    .context("cargo xtask build-ebpf")?;
    if let Some(out) = out {
        std::fs::copy(&obj, &out)
            .with_context(|| format!("copying {} to {}", obj.display(), out.display()))?;
        println!("{}", out.display());
    } else {
        println!("{}", obj.display());
    }
    Ok(())
}
