//! Launching the lab's daemons in their nodes: `lbctl serve` or Apache in each server
//! (the balancers' agents are started by `build` once the VIPs are planned), each under a
//! supervisor ([`supervise`]) that restarts it on failure and writes its rotated log,
//! detached into their own sessions, PIDs recorded for `down`.

pub mod apache;
pub mod backoff;
pub mod supervise;

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use tracing::info;

use super::{netns, plan::Plan, state};
use crate::config::Config;

/// Starts a daemon (`argv`: its program and arguments) in a node's namespace under a
/// supervisor (`lbctl up --supervise NODE.DAEMON`, run from `lbctl`), detached into its
/// own session, and records the supervisor's PID (the supervisor records the daemon's).
/// The log pipe is made here: the supervisor reads it as its stdin and hands the write
/// end to the daemon as stdout and stderr (and writes its own messages there too).
pub fn spawn_daemon(
    lab: &str,
    node: &str,
    daemon: &str,
    lbctl: &Path,
    argv: &[String],
) -> Result<u32> {
    let log = state::log_path(lab, node, daemon);
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::create_dir_all(state::supervisor_dir(lab))?;
    let (rx, tx) = nix::unistd::pipe().context("making the log pipe")?;
    let mut cmd = Command::new(lbctl);
    cmd.args([
        "up",
        "--lab",
        lab,
        "--supervise",
        &format!("{node}.{daemon}"),
        "--",
    ])
    .args(argv)
    .stdin(Stdio::from(rx))
    .stdout(Stdio::from(tx.try_clone()?))
    .stderr(Stdio::from(tx))
    .env("LBCTL_NODE", node)
    .env("LBCTL_LAB", lab)
    // Daemons log at info unless told otherwise, so `lbctl logs NODE` shows VRRP and
    // health transitions (info is quiet on the request path: errors only).
    .env(
        "LBCTL_LOG",
        std::env::var("LBCTL_LOG").unwrap_or_else(|_| "info".into()),
    );
    netns::command_in(&crate::config::netns_name(lab, node), &mut cmd)?;
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal and
    // process group so it outlives `lbctl up` and ignores its Ctrl-C.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {daemon} in {node} ({})", argv.join(" ")))?;
    let pid = child.id();
    state::record_supervisor(lab, node, daemon, pid)?;
    info!(
        node,
        daemon,
        supervisor = pid,
        "daemon started under its supervisor"
    );
    Ok(pid)
}

/// Starts `lbctl stpd` for every bridge whose tree RSTP runs, in the bridge's node, as
/// daemon `stpd-<bridge>` (a host may have several bridges).
pub fn start_stpds(plan: &Plan, exe: &Path) -> Result<()> {
    for b in plan.rstp_bridges() {
        let args = vec![
            exe.display().to_string(),
            "stpd".to_string(),
            "--lab".into(),
            plan.lab.clone(),
            "--bridge".into(),
            b.name.clone(),
        ];
        spawn_daemon(&plan.lab, &b.node, &stpd_daemon(&b.name), exe, &args)?;
    }
    Ok(())
}

/// The daemon name of bridge `bridge`'s `lbctl stpd` (in pid files, logs and `status`).
pub fn stpd_daemon(bridge: &str) -> String {
    format!("stpd-{bridge}")
}

/// Starts every server's web server: Apache where the config asks for it, `lbctl serve`
/// otherwise.
pub fn start_servers(cfg: &Config, plan: &Plan, exe: &Path) -> Result<()> {
    for n in cfg
        .nodes
        .iter()
        .filter(|n| n.role == crate::config::Role::Server)
    {
        if n.web == crate::config::WebServer::Apache {
            // Apache + PHP on the node's address (and 127.0.0.1), instead of `lbctl serve`.
            let ip = n
                .ifaces
                .iter()
                .find_map(|i| i.address)
                .map_or(std::net::Ipv4Addr::UNSPECIFIED, |a| a.addr());
            apache::start(&plan.lab, &n.name, (ip, n.http_port()).into(), exe)?;
            continue;
        }
        let args = vec![
            exe.display().to_string(),
            "serve".to_string(),
            "--name".into(),
            n.name.clone(),
            "--listen".into(),
            format!("0.0.0.0:{}", n.http_port()),
        ];
        spawn_daemon(&plan.lab, &n.name, "serve", exe, &args)?;
    }
    Ok(())
}
