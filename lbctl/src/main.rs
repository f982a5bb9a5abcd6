//! lbctl: builds and runs a redundant, load-balanced web service lab (VRRP, L7 proxy,
//! STP, VXLAN, eBPF) out of network namespaces, or on real hosts.
#![allow(dead_code)]
mod agent;
mod backend;
mod balance;
mod capture;
mod config;
mod datapath;
mod fault;
mod graph;
mod health;
mod logs;
mod probe;
mod progress;
mod proxy;
mod status;
mod stp;
mod topo;
mod verify;
mod vrrp;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use config::Config;
use std::path::PathBuf;
use topo::netns;

#[derive(Parser)]
#[command(
    name = "lbctl",
    version,
    about = "Redundant load-balanced web service lab: STP, VRRP, L7 proxy, VXLAN, eBPF"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct LabArgs {
    /// Config file (default: the built-in scenario, configs/default.toml).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Lab name (namespace prefix lbctl-NAME-); default: the config's, or the only lab running.
    #[arg(long)]
    lab: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum UpDown {
    Up,
    Down,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Svg,
    Dot,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the lab in network namespaces, start its daemons, wait until it answers.
    Up {
        #[command(flatten)]
        lab: LabArgs,
        /// Do not load the BPF observer.
        #[arg(long)]
        no_bpf: bool,
    },
    /// Remove every namespace, daemon, pin and file of the lab. Idempotent.
    Down {
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Show nodes, addresses, STP ports (with theory check), daemons and BPF counters.
    Status {
        #[command(flatten)]
        lab: LabArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node's namespace: lbctl exec NODE -- CMD ARGS...
    Exec {
        #[arg(long)]
        lab: Option<String>,
        node: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Take the link between two bridges/nodes down or up, then wait for STP.
    Link {
        action: UpDown,
        a: String,
        b: String,
        #[command(flatten)]
        lab: LabArgs,
        /// Return at once instead of waiting for the tree to converge.
        #[arg(long)]
        no_wait: bool,
    },
    /// Take a whole bridge (switch) down or up, then wait for STP.
    Bridge {
        action: UpDown,
        bridge: String,
        #[command(flatten)]
        lab: LabArgs,
        #[arg(long)]
        no_wait: bool,
    },
    /// Draw the lab: hosts, LANs, links, STP-blocked ports, root, VRRP master, backend
    /// health, VXLAN (live state when the lab runs; the config alone otherwise).
    Graph {
        #[command(flatten)]
        lab: LabArgs,
        /// Output file; the format follows the extension (.svg, .dot, .json). Default: SVG
        /// on stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Output format (overrides the extension).
        #[arg(long, value_enum)]
        format: Option<GraphFormat>,
    },
    /// Watch packets inside a node: tcpdump on IFACE (e.g. `capture bal1 eth0 --vrrp`,
    /// `capture vm1 to-swout1 --stp`, `capture vm1 vswout1 --vxlan`).
    Capture {
        #[arg(long)]
        lab: Option<String>,
        /// A node of the lab: balancer, server, user, switch or host (vm1, vm2).
        node: String,
        /// An interface in that node (`lbctl exec NODE -- ip link` lists them).
        iface: String,
        /// Preset filter.
        #[arg(long, value_enum, conflicts_with_all = ["stp", "vxlan"])]
        preset: Option<capture::Preset>,
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
    },
    /// Show the log of a node's daemons (agent, serve, Apache).
    Logs {
        #[arg(long)]
        lab: Option<String>,
        /// A node that runs a daemon: a balancer or a server.
        node: String,
        /// Only this daemon's log (agent, serve, apache).
        #[arg(long)]
        daemon: Option<String>,
        /// Keep printing what is appended (tail -F).
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(short = 'n', long)]
        lines: Option<usize>,
    },
    /// Prove the scenario's four checkpoints on the running lab, injecting failures (all
    /// undone afterwards, even on error or Ctrl-C) and measuring each one's outage.
    Verify {
        #[command(flatten)]
        lab: LabArgs,
        /// JSON report on stdout (schema 1, see the README).
        #[arg(long)]
        json: bool,
        /// Run only this checkpoint (1 STP, 2 VRRP, 3 balancers, 4 VXLAN); repeatable.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
        only: Vec<u8>,
        /// Period of the client loops that measure outages.
        #[arg(long, default_value_t = 50)]
        period_ms: u64,
        /// Deadline of each request of the client loops.
        #[arg(long, default_value_t = 500)]
        timeout_ms: u64,
        /// The scenario whose STP tree the lab must have (default: the built-in one).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Check a config file and print the plan summary, without building anything.
    Check {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// The balancer daemon: L7 proxy, health checks, admin listener (started by `up`).
    Agent {
        #[command(flatten)]
        lab: LabArgs,
        /// The balancer node this agent runs as.
        #[arg(long, env = "LBCTL_NODE")]
        node: String,
        /// Listen addresses (default: the VIP and the node's external address, service port).
        #[arg(long)]
        listen: Vec<std::net::SocketAddr>,
        /// Where to pin the backend health and VRRP state maps (default:
        /// /sys/fs/bpf/lbctl/<lab>/<node>).
        #[arg(long)]
        pin_dir: Option<std::path::PathBuf>,
        /// Do not keep the state in BPF maps (no bpffs, no privileges).
        #[arg(long)]
        no_bpf: bool,
    },
    /// A bounded client loop measuring failed requests and the user-visible outage (JSON).
    Probe {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 50)]
        period_ms: u64,
        /// Deadline of each request.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 10000)]
        duration_ms: u64,
    },
    /// Print the BPF VTEP's debug log (MACs learned, unresolved neighbours, FIB failures) of a
    /// host with `vxlan` mode "ebpf".
    VtepLog {
        #[command(flatten)]
        lab: LabArgs,
        /// The host whose VTEP to follow.
        #[arg(long)]
        node: String,
        /// Stop after this many seconds (0: until interrupted).
        #[arg(long, default_value_t = 0)]
        secs: u64,
    },
    /// Benchmark helper: per-packet cost of the VTEP programs via BPF_PROG_TEST_RUN (JSON).
    #[command(hide = true)]
    BenchVtep {
        /// Frames per single-run loop.
        #[arg(long, default_value_t = 20000)]
        iters: u32,
        /// Iterations of the live-frames run.
        #[arg(long, default_value_t = 2_000_000)]
        repeat: u32,
    },
    /// Benchmark helper: send small UDP datagrams as fast as sendmmsg allows (JSON).
    #[command(hide = true)]
    UdpBlast {
        #[arg(long)]
        to: std::net::SocketAddr,
        #[arg(long, default_value_t = 18)]
        len: usize,
        #[arg(long, default_value_t = 8.0)]
        secs: f64,
    },
    /// Benchmark helper: count UDP datagrams for SECS after the first (JSON).
    #[command(hide = true)]
    UdpSink {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 8.0)]
        secs: f64,
    },
    /// Benchmark helper: attach the do-nothing XDP program to interfaces of a lab node.
    #[command(hide = true)]
    XdpNoop {
        #[arg(long)]
        lab: String,
        #[arg(long)]
        node: String,
        ifaces: Vec<String>,
    },
    /// The built-in backend web server (run by `up` in each server node).
    Serve {
        /// Server name shown in the page.
        #[arg(long, env = "LBCTL_NODE", default_value = "server")]
        name: String,
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: std::net::SocketAddr,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LBCTL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours on a terminal only: daemons write to log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The config of a command: `-c FILE`, else the running lab's saved config, else the
/// built-in scenario; `--lab` overrides the name.
fn resolve(args: &LabArgs, for_up: bool) -> Result<(Config, String)> {
    if let Some(p) = &args.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let mut cfg = Config::from_toml(&text, &p.display().to_string())?;
        if let Some(l) = &args.lab {
            cfg = cfg.with_lab_name(l)?;
        }
        return Ok((cfg, text));
    }
    let lab = match &args.lab {
        Some(l) => Some(l.clone()),
        None if !for_up => {
            let labs = topo::state::labs();
            match labs.len() {
                0 => None,
                1 => Some(labs[0].clone()),
                _ => bail!(
                    "several labs are up ({}); choose one with --lab",
                    labs.join(", ")
                ),
            }
        }
        None => None,
    };
    if let Some(l) = &lab {
        if !for_up {
            if let Some(text) = topo::state::load_config_text(l) {
                let origin = topo::state::run_dir(l).join("config.toml");
                let cfg =
                    Config::from_toml(&text, &origin.display().to_string())?.with_lab_name(l)?;
                return Ok((cfg, text));
            }
        }
    }
    let mut cfg = Config::default_scenario();
    if let Some(l) = &lab {
        cfg = cfg.with_lab_name(l)?;
    }
    Ok((cfg, config::DEFAULT_TOML.to_string()))
}

fn main() {
    init_tracing();
    let cli = Cli::parse();
    if let Err(e) = run_cli(cli) {
        // The whole context chain on one line per cause, without a backtrace: these are
        // user-facing errors (bad config, missing root, a failed step of `up`).
        eprintln!("lbctl: {e:#}");
        std::process::exit(1);
    }
}

fn run_cli(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Exec { lab, node, cmd } => exec(lab, &node, &cmd),
        Cmd::Capture {
            lab,
            node,
            iface,
            preset,
            vrrp,
            stp,
            vxlan,
            count,
            filter,
        } => {
            let preset = preset.or(if vrrp {
                Some(capture::Preset::Vrrp)
            } else if stp {
                Some(capture::Preset::Stp)
            } else if vxlan {
                Some(capture::Preset::Vxlan)
            } else {
                None
            });
            capture_cmd(lab, &node, &iface, preset, count, &filter)
        }
        Cmd::Logs {
            lab,
            node,
            daemon,
            follow,
            lines,
        } => logs_cmd(lab, &node, daemon.as_deref(), follow, lines),
        Cmd::BenchVtep { iters, repeat } => {
            netns::require_root()?;
            let r = datapath::vxbench::run(iters, repeat)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::VtepLog { lab, node, secs } => {
            netns::require_root()?;
            let (cfg, _) = resolve(&lab, false)?;
            datapath::vxlan::follow_log(&topo::state::node_pin_dir(&cfg.lab.name, &node), secs)
        }
        Cmd::UdpBlast { to, len, secs } => {
            let r = datapath::udpblast::send(to, len, secs)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::UdpSink { listen, secs } => {
            let r = datapath::udpblast::sink(listen, secs, std::time::Duration::from_secs(15))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::XdpNoop { lab, node, ifaces } => {
            netns::require_root()?;
            let pin = topo::state::node_pin_dir(&lab, &node);
            netns::run_in(&config::netns_name(&lab, &node), move || {
                datapath::vxbench::attach_noop(&pin, &ifaces)
            })
        }
        Cmd::Probe {
            url,
            period_ms,
            timeout_ms,
            duration_ms,
        } => {
            let r = probe::run(
                &url,
                std::time::Duration::from_millis(period_ms),
                std::time::Duration::from_millis(timeout_ms),
                std::time::Duration::from_millis(duration_ms),
            )?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Check { config } => {
            let cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default_scenario(),
            };
            let plan = topo::plan::Plan::new(&cfg);
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
        // The agent's main thread is a current-thread runtime; the proxy adds one such
        // thread per extra `service.nbthread` (see proxy::run).
        cmd @ Cmd::Agent { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(run(cmd)),
        cmd => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(run(cmd)),
    }
}

async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Up { lab, no_bpf } => {
            netns::require_root()?;
            let (cfg, text) = resolve(&lab, true)?;
            let exe = std::env::current_exe().context("locating the lbctl executable")?;
            let took = topo::build::up(
                &cfg,
                &text,
                &topo::build::UpOptions {
                    exe,
                    bpf: !no_bpf,
                    progress: true,
                },
            )
            .await?;
            print_next_steps(&cfg, took);
            Ok(())
        }
        Cmd::Down { lab } => {
            netns::require_root()?;
            let (cfg, _) = resolve(&lab, false)?;
            topo::teardown::down(&cfg.lab.name, true)?;
            Ok(())
        }
        Cmd::Status { lab, json } => {
            netns::require_root()?;
            let (cfg, _) = resolve(&lab, false)?;
            let s = status::collect(&cfg).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", status::render(&s));
            }
            Ok(())
        }
        Cmd::Link {
            action,
            a,
            b,
            lab,
            no_wait,
        } => inject(&lab, no_wait, action, fault::Fault::Link(a, b)).await,
        Cmd::Bridge {
            action,
            bridge,
            lab,
            no_wait,
        } => inject(&lab, no_wait, action, fault::Fault::Bridge(bridge)).await,
        Cmd::Verify {
            lab,
            json,
            only,
            period_ms,
            timeout_ms,
            scenario,
        } => {
            netns::require_root()?;
            let (cfg, _) = resolve(&lab, false)?;
            let plan = topo::plan::Plan::new(&cfg);
            if let Some(missing) = plan.nodes.iter().find(|n| !netns::exists(&n.netns)) {
                bail!(
                    "lab {:?} is not running (no namespace {}): start it with lbctl up",
                    cfg.lab.name,
                    missing.netns
                );
            }
            let reference = scenario.as_deref().map(Config::load).transpose()?;
            let mut only = only;
            only.sort();
            only.dedup();
            let r = verify::run(
                cfg,
                verify::Options {
                    only,
                    period: std::time::Duration::from_millis(period_ms),
                    deadline: std::time::Duration::from_millis(timeout_ms),
                    reference,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", verify::report::render(&r));
            }
            if r.interrupted {
                std::process::exit(130);
            }
            if !r.passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Serve { name, listen } => backend::serve::run(name, listen).await,
        Cmd::Agent {
            lab,
            node,
            listen,
            pin_dir,
            no_bpf,
        } => {
            let (cfg, _) = resolve(&lab, false)?;
            let mut plan = agent::AgentPlan::new(&cfg, &node, &listen)?;
            plan.pin_dir = (!no_bpf).then(|| {
                pin_dir.unwrap_or_else(|| topo::state::node_pin_dir(&cfg.lab.name, &node))
            });
            plan.config_file = lab.config.clone();
            agent::run(plan).await
        }
        Cmd::Graph {
            lab,
            output,
            format,
        } => {
            let (cfg, _) = resolve(&lab, false)?;
            // Live state when this lab runs (reading it needs root); the config alone
            // otherwise.
            let live = topo::state::labs().contains(&cfg.lab.name)
                && topo::plan::Plan::new(&cfg)
                    .nodes
                    .iter()
                    .any(|n| netns::exists(&n.netns));
            if live {
                netns::require_root()?;
            }
            let format = format.unwrap_or_else(|| {
                match output
                    .as_ref()
                    .and_then(|p| p.extension())
                    .and_then(|e| e.to_str())
                {
                    Some("dot") | Some("gv") => GraphFormat::Dot,
                    Some("json") => GraphFormat::Json,
                    _ => GraphFormat::Svg,
                }
            });
            let pic = graph::picture(&cfg, live, format != GraphFormat::Dot).await?;
            let text = match format {
                GraphFormat::Svg => pic.svg.clone().unwrap_or_default(),
                GraphFormat::Dot => pic.dot.clone(),
                GraphFormat::Json => serde_json::to_string(&pic)?,
            };
            match output {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!(
                        "{} ({}): {} nodes, {} edges, blocked: {}, root: {}, VRRP master: {}",
                        p.display(),
                        if live { "live" } else { "config only" },
                        pic.model.nodes.len(),
                        pic.model.edges.len(),
                        if pic.model.blocked.is_empty() {
                            "none".to_string()
                        } else {
                            pic.model.blocked.join(", ")
                        },
                        pic.model
                            .roots
                            .iter()
                            .map(|(l, r)| format!("{l}: {}", r.join("/")))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if pic.model.masters.is_empty() {
                            "none".to_string()
                        } else {
                            pic.model.masters.join(", ")
                        }
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Cmd::Exec { .. }
        | Cmd::Check { .. }
        | Cmd::Probe { .. }
        | Cmd::Capture { .. }
        | Cmd::Logs { .. }
        | Cmd::BenchVtep { .. }
        | Cmd::VtepLog { .. }
        | Cmd::UdpBlast { .. }
        | Cmd::UdpSink { .. }
        | Cmd::XdpNoop { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// Applies one injected failure (or its repair), then waits for STP unless told not to.
async fn inject(lab: &LabArgs, no_wait: bool, action: UpDown, f: fault::Fault) -> Result<()> {
    netns::require_root()?;
    let (cfg, _) = resolve(lab, false)?;
    let up = matches!(action, UpDown::Up);
    fault::apply(&topo::plan::Plan::new(&cfg), &f, up).await?;
    eprintln!("{f} {}", if up { "up" } else { "down" });
    if !no_wait {
        fault::converge(&cfg, true).await?;
    }
    Ok(())
}

/// `lbctl exec`: hands over to `ip netns exec`, which also mounts the namespace's own
/// /sys so tools like `brctl showstp` see the node's bridges.
fn exec(lab: Option<String>, node: &str, cmd: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    netns::require_root()?;
    let (cfg, _) = resolve(&LabArgs { config: None, lab }, false)?;
    let ns = config::netns_name(&cfg.lab.name, node);
    if !netns::exists(&ns) {
        let plan = topo::plan::Plan::new(&cfg);
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "no node {node:?} running in lab {:?} (nodes: {})",
            cfg.lab.name,
            names.join(", ")
        );
    }
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(cmd)
        .exec();
    Err(err).context("running ip netns exec")
}

/// The running node's namespace, or an error listing the lab's nodes.
fn node_ns(cfg: &Config, node: &str) -> Result<String> {
    let ns = config::netns_name(&cfg.lab.name, node);
    if !netns::exists(&ns) {
        let plan = topo::plan::Plan::new(cfg);
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "no node {node:?} running in lab {:?} (nodes: {})",
            cfg.lab.name,
            names.join(", ")
        );
    }
    Ok(ns)
}

/// `lbctl capture`: tcpdump inside the node (through `ip netns exec`, like `exec`).
fn capture_cmd(
    lab: Option<String>,
    node: &str,
    iface: &str,
    preset: Option<capture::Preset>,
    count: Option<u32>,
    filter: &[String],
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    netns::require_root()?;
    let (cfg, _) = resolve(&LabArgs { config: None, lab }, false)?;
    let ns = node_ns(&cfg, node)?;
    capture::check_iface(&ns, node, iface)?;
    let f = capture::filter(&cfg, preset, filter);
    let args = capture::tcpdump_args(iface, count, preset, &f);
    eprintln!("capturing in {node}: {}", args.join(" "));
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(&args)
        .exec();
    Err(err).context("running tcpdump through ip netns exec")
}

/// `lbctl logs`: prints (or follows) the node's daemon logs.
fn logs_cmd(
    lab: Option<String>,
    node: &str,
    daemon: Option<&str>,
    follow: bool,
    lines: Option<usize>,
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let (cfg, _) = resolve(&LabArgs { config: None, lab }, false)?;
    let lab = cfg.lab.name.clone();
    let files = logs::files(&lab, node, daemon);
    if files.is_empty() {
        let with = logs::nodes_with_logs(&lab);
        bail!(
            "no daemon log for {node:?}{} in lab {lab:?} (nodes with logs: {})",
            daemon.map(|d| format!(" ({d})")).unwrap_or_default(),
            if with.is_empty() {
                "none".into()
            } else {
                with.join(", ")
            }
        );
    }
    if follow {
        let n = lines.unwrap_or(20).to_string();
        let err = std::process::Command::new("tail")
            .args(["-n", &n, "-F"])
            .args(&files)
            .exec();
        return Err(err).context("running tail -F");
    }
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        if files.len() > 1 {
            println!("==> {} <==", f.display());
        }
        print!("{}", logs::tail(&text, lines));
    }
    Ok(())
}

fn print_next_steps(cfg: &Config, took: std::time::Duration) {
    let lab = &cfg.lab.name;
    let labarg = if lab == "lab" {
        String::new()
    } else {
        format!(" --lab {lab}")
    };
    println!("\nlab {lab} is up in {:.1} s.", took.as_secs_f32());
    if let Some(s) = &cfg.service {
        for b in &s.balancers {
            if let Some(a) = cfg.node(b).and_then(|n| {
                n.ifaces
                    .iter()
                    .filter_map(|i| i.address)
                    .find(|a| a.contains(&s.vip))
            }) {
                println!("  service through {b}: http://{}:{}/", a.addr(), s.port);
            }
        }
        println!("  service VIP:      http://{}:{}/", s.vip, s.port);
        println!(
            "  agent admin:      http://<balancer>:{}/metrics and /stats",
            s.admin_port
        );
        println!(
            "  dashboard:        http://{}:{}/ (the master's; any balancer's address works too)",
            s.vip, s.admin_port
        );
    }
    let first_server = cfg.nodes.iter().find(|n| n.role == config::Role::Server);
    println!("Try next:");
    println!(
        "  lbctl status{labarg}                        # nodes, STP ports vs theory, BPF counters"
    );
    if let Some(srv) = first_server {
        if let Some(a) = srv.ifaces.iter().find_map(|i| i.address) {
            println!(
                "  lbctl exec{labarg} bal1 -- curl -s http://{}:{}/   # a server's page",
                a.addr(),
                srv.http_port()
            );
        }
    }
    println!("  lbctl exec{labarg} user1 -- ping -c2 172.16.1.151     # across the external LAN");
    if let Some(s) = &cfg.service {
        println!(
            "  for i in 1 2 3; do lbctl exec{labarg} user1 -- curl -s http://{}:{}/ | grep servidor; done",
            s.vip, s.port
        );
    }
    println!("  lbctl graph{labarg} -o lab.svg                    # the topology with live STP, VRRP, health");
    println!("  lbctl capture{labarg} bal1 eth0 --vrrp -c 3         # VRRP adverts on the wire");
    println!("  lbctl logs{labarg} bal1                             # the agent's log");
    println!("  lbctl verify{labarg}                                # prove the four checkpoints (about 4 min)");
    println!("  lbctl bridge down{labarg} vswout1                 # checkpoint 2: bal2 becomes VRRP master");
    println!("  lbctl link down{labarg} vswout1 swout2            # watch STP re-open a path");
    println!("  lbctl bridge down{labarg} swout2                  # root bridge failure");
    println!(
        "  bpftool map dump pinned {}/swout1/OBS_PORT",
        topo::state::pin_dir(lab).display()
    );
    println!("  lbctl down{labarg}                              # remove everything");
}
