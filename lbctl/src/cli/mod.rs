//! The command line: one file per verb, each owning its clap arguments and its `run`
//! function over the library's core (the verb stays thin: parse, call, print).
//!
//! [`Cmd::job`] is the one dispatcher: it pairs each verb's run function with the tokio
//! runtime it needs (none for the verbs that block or `exec`), and [`Job::run`] runs it.
#![forbid(unsafe_code)]

mod agent;
mod capture;
mod check;
mod down;
mod exec;
mod fault;
mod gen;
mod graph;
mod lab;
mod logs;
mod probe;
mod serve;
mod status;
mod stpd;
mod up;
mod verify;
mod vtep_log;

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use lab::LabArgs;

#[derive(Parser)]
#[command(
    name = "lbctl",
    version,
    about = "Redundant load-balanced web service lab: STP, VRRP, L7 proxy, VXLAN, eBPF"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Build the lab in network namespaces, start its daemons, wait until it answers.
    Up(up::Args),
    /// Remove every namespace, daemon, pin and file of the lab. Idempotent.
    Down(down::Args),
    /// Show nodes, addresses, STP ports (with theory check), daemons and BPF counters.
    Status(status::Args),
    /// Run a command inside a node's namespace: lbctl exec NODE -- CMD ARGS...
    Exec(exec::Args),
    /// Take the link between two bridges/nodes down or up, then wait for STP; or black-hole
    /// a node on its bridge port (`link blackhole NODE BRIDGE`, `link restore NODE BRIDGE`).
    Link(fault::LinkArgs),
    /// Take a whole bridge (switch) down or up, then wait for STP.
    Bridge(fault::BridgeArgs),
    /// Draw the lab: hosts, LANs, links, STP-blocked ports, root, VRRP master, backend
    /// health, VXLAN (live state when the lab runs; the config alone otherwise).
    Graph(graph::Args),
    /// Watch packets inside a node: tcpdump on IFACE (e.g. `capture bal1 eth0 --vrrp`,
    /// `capture vm1 to-swout1 --stp`, `capture vm1 vswout1 --vxlan`).
    Capture(capture::Args),
    /// Show the log of a node's daemons (agent, serve, Apache).
    Logs(logs::Args),
    /// Prove the scenario's four checkpoints on the running lab, injecting failures (all
    /// undone afterwards, even on error or Ctrl-C) and measuring each one's outage.
    Verify(verify::Args),
    /// Check a config file and print the plan summary, without building anything.
    Check(check::Args),
    /// Write a lab config of any size (hosts, servers, balancers, switches, users), valid
    /// by construction: `lbctl gen --hosts 4 --vxlan ebpf -o lab4.toml`.
    Gen(gen::Args),
    /// The balancer daemon: L7 proxy, health checks, admin listener (started by `up`).
    Agent(agent::Args),
    /// A bounded client loop measuring failed requests and the user-visible outage (JSON).
    Probe(probe::Args),
    /// Print the BPF VTEP's debug log (MACs learned, unresolved neighbours, FIB failures) of a
    /// host with `vxlan` mode "ebpf".
    VtepLog(vtep_log::Args),
    /// The built-in backend web server (run by `up` in each server node).
    Serve(serve::Args),
    /// The RSTP daemon of one bridge (started by `up`).
    Stpd(stpd::Args),
}

/// A verb ready to run: either plain blocking code (it may `exec` another program) or a
/// future with the tokio runtime it needs.
pub enum Job {
    Blocking(Box<dyn FnOnce() -> Result<()>>),
    /// One thread: the agent's main loop (the proxy adds its own threads, see `proxy::run`).
    CurrentThread(Pin<Box<dyn Future<Output = Result<()>>>>),
    /// Two workers: the verbs that drive netlink, HTTP and timers at once.
    MultiThread(Pin<Box<dyn Future<Output = Result<()>>>>),
}

impl Job {
    fn blocking(f: impl FnOnce() -> Result<()> + 'static) -> Job {
        Job::Blocking(Box::new(f))
    }

    fn multi(f: impl Future<Output = Result<()>> + 'static) -> Job {
        Job::MultiThread(Box::pin(f))
    }

    /// Runs the verb, on the runtime it asked for.
    pub fn run(self) -> Result<()> {
        let (mut builder, fut) = match self {
            Job::Blocking(f) => return f(),
            Job::CurrentThread(fut) => (tokio::runtime::Builder::new_current_thread(), fut),
            Job::MultiThread(fut) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                (b, fut)
            }
        };
        builder.enable_all().build()?.block_on(fut)
    }
}

impl Cmd {
    /// The verb's run function, with the runtime it needs.
    pub fn job(self) -> Job {
        match self {
            Cmd::Up(a) if a.is_supervisor() => Job::CurrentThread(Box::pin(up::supervise(a))),
            Cmd::Up(a) => Job::multi(up::run(a)),
            Cmd::Down(a) => Job::blocking(move || down::run(a)),
            Cmd::Status(a) => Job::multi(status::run(a)),
            Cmd::Exec(a) => Job::blocking(move || exec::run(a)),
            Cmd::Link(a) => Job::multi(fault::link(a)),
            Cmd::Bridge(a) => Job::multi(fault::bridge(a)),
            Cmd::Graph(a) => Job::multi(graph::run(a)),
            Cmd::Capture(a) => Job::blocking(move || capture::run(a)),
            Cmd::Logs(a) => Job::blocking(move || logs::run(a)),
            Cmd::Verify(a) => Job::multi(verify::run(a)),
            Cmd::Check(a) => Job::blocking(move || check::run(a)),
            Cmd::Gen(a) => Job::blocking(move || gen::run(a)),
            Cmd::Agent(a) => Job::CurrentThread(Box::pin(agent::run(a))),
            Cmd::Probe(a) => Job::blocking(move || probe::run(a)),
            Cmd::VtepLog(a) => Job::blocking(move || vtep_log::run(a)),
            Cmd::Serve(a) => Job::multi(serve::run(a)),
            Cmd::Stpd(a) => Job::CurrentThread(Box::pin(stpd::run(a))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `lbctl --help` lists what users run and nothing else: no hidden verbs (the bench
    /// helpers live in `lbctl-harness`), and clap's own consistency checks pass.
    #[test]
    fn help_lists_only_user_verbs() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        assert_eq!(
            names,
            [
                "up", "down", "status", "exec", "link", "bridge", "graph", "capture", "logs",
                "verify", "check", "gen", "agent", "probe", "vtep-log", "serve", "stpd"
            ]
        );
        assert!(cmd.get_subcommands().all(|s| !s.is_hide_set()));
    }
}
