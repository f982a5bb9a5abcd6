//! Launching the lab's daemons in their nodes: `lbctl serve` or Apache in each server
//! (the balancers' agents are started by `build` once the VIPs are planned), detached into
//! their own sessions, logging under the lab's run directory, PIDs recorded for `down`.

pub mod apache;

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use tracing::info;

use super::{netns, plan::Plan, state};
use crate::config::Config;

/// Starts a daemon (`lbctl ARGS…`) in a node's namespace, detached into its own session
/// with output to the lab's log directory, and records its PID.
pub fn spawn_daemon(
    lab: &str,
    node: &str,
    daemon: &str,
    exe: &Path,
    args: &[String],
) -> Result<u32> {
    let log = state::log_path(lab, node, daemon);
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
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
        .with_context(|| format!("starting {daemon} in {node} ({})", exe.display()))?;
    let pid = child.id();
    state::record_pid(lab, node, daemon, pid)?;
    info!(node, daemon, pid, "daemon started");
    Ok(pid)
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
            apache::start(&plan.lab, &n.name, (ip, n.http_port()).into())?;
            continue;
        }
        let args = vec![
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
