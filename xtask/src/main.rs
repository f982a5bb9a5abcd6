//! Developer tasks for the lbctl workspace. Run through the alias in `.cargo/config.toml`:
//! `cargo xtask <command>`.
mod bench;
mod bench_charts;
mod bench_datapath;
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
        Cmd::Bench {
            what:
                BenchCmd::Proxy {
                    rounds,
                    secs,
                    conns,
                },
        } => bench::proxy(&workspace_root(), rounds, secs, conns),
        Cmd::Bench {
            what: BenchCmd::Failover,
        } => bench::failover(&workspace_root()),
        Cmd::Bench {
            what:
                BenchCmd::Datapath {
                    secs,
                    rounds,
                    iters,
                    repeat,
                },
        } => bench_datapath::datapath(&workspace_root(), secs, rounds, iters, repeat),
        Cmd::BuildEbpf {
            target_dir,
            toolchain,
            out,
        } => {
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
                toolchain: &toolchain,
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
    }
}
