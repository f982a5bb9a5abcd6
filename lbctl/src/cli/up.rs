//! `lbctl up`: builds the lab, starts its daemons, returns when the service answers, and
//! prints what to try next.

use std::time::Duration;

use anyhow::{Context, Result};

use super::LabArgs;
use crate::config::{Config, Role};
use crate::topo::{self, build::UpOptions, netns};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lab: LabArgs,
    /// Do not load the BPF observer.
    #[arg(long)]
    no_bpf: bool,
    /// Used by `up` itself: supervise one daemon of the lab (`--supervise NODE.DAEMON --lab
    /// LAB -- PROGRAM ARGS...`): restart it on failure with back-off, own its rotated log.
    #[arg(long, value_name = "NODE.DAEMON", requires = "lab")]
    supervise: Option<String>,
    /// The supervised daemon's program and arguments (after `--`).
    #[arg(last = true, requires = "supervise")]
    daemon: Vec<String>,
}

impl Args {
    /// Whether this is a supervisor (`--supervise`) rather than a lab to build.
    pub fn is_supervisor(&self) -> bool {
        self.supervise.is_some()
    }
}

/// `up --supervise NODE.DAEMON`: see `topo::daemons::supervise`.
pub async fn supervise(a: Args) -> Result<()> {
    let which = a.supervise.unwrap_or_default();
    let (node, daemon) = which.split_once('.').with_context(|| {
        format!("--supervise {which:?}: expected NODE.DAEMON (e.g. bal1.agent)")
    })?;
    topo::daemons::supervise::run(topo::daemons::supervise::Supervised {
        lab: a.lab.lab.unwrap_or_default(),
        node: node.into(),
        daemon: daemon.into(),
        argv: a.daemon,
    })
    .await
}

pub async fn run(a: Args) -> Result<()> {
    netns::require_root()?;
    let (cfg, text) = a.lab.resolve_for_up()?;
    cfg.require_lab("up")?;
    let exe = std::env::current_exe().context("locating the lbctl executable")?;
    let opts = UpOptions {
        exe,
        bpf: !a.no_bpf,
        progress: true,
    };
    let took = topo::build::up(&cfg, &text, &opts).await?;
    print!("{}", next_steps(&cfg, took));
    Ok(())
}

/// What `up` prints when the lab answers: where the service is, and commands to try.
fn next_steps(cfg: &Config, took: Duration) -> String {
    let lab = &cfg.lab.name;
    let mut out = format!("\nlab {lab} is up in {:.1} s.\n", took.as_secs_f32());
    out += &service_lines(cfg);
    out += "Try next:\n";
    for (cmd, why) in try_next(cfg) {
        out += &format!("  {cmd:<48} {why}\n");
    }
    out
}

/// The service's addresses: through each balancer, the VIP, the admin port.
fn service_lines(cfg: &Config) -> String {
    let Some(s) = &cfg.service else {
        return String::new();
    };
    let mut out = String::new();
    for b in &s.balancers {
        let addr = cfg.node(b).and_then(|n| {
            n.ifaces
                .iter()
                .filter_map(|i| i.address)
                .find(|a| a.contains(&s.vip))
        });
        if let Some(a) = addr {
            out += &format!("  service through {b}: http://{}:{}/\n", a.addr(), s.port);
        }
    }
    out += &format!("  service VIP:      http://{}:{}/\n", s.vip, s.port);
    out += &format!(
        "  agent admin:      http://<balancer>:{}/metrics and /stats\n",
        s.admin_port
    );
    out += &format!(
        "  dashboard:        http://{}:{}/ (the master's; any balancer's address works too)\n",
        s.vip, s.admin_port
    );
    out
}

/// Commands worth trying on this lab, with why (`--lab` added unless it is the default lab).
fn try_next(cfg: &Config) -> Vec<(String, &'static str)> {
    let lab = &cfg.lab.name;
    let l = if lab == "lab" {
        String::new()
    } else {
        format!(" --lab {lab}")
    };
    let mut v = vec![(
        format!("lbctl status{l}"),
        "# nodes, STP ports vs theory, BPF counters",
    )];
    let server = cfg.nodes.iter().find(|n| n.role == Role::Server);
    if let Some((srv, a)) = server.and_then(|s| Some((s, s.ifaces.iter().find_map(|i| i.address)?)))
    {
        v.push((
            format!(
                "lbctl exec{l} bal1 -- curl -s http://{}:{}/",
                a.addr(),
                srv.http_port()
            ),
            "# a server's page",
        ));
    }
    v.push((
        format!("lbctl exec{l} user1 -- ping -c2 172.16.1.151"),
        "# across the external LAN",
    ));
    if let Some(s) = &cfg.service {
        v.push((
            format!(
                "for i in 1 2 3; do lbctl exec{l} user1 -- curl -s http://{}:{}/ | grep servidor; done",
                s.vip, s.port
            ),
            "",
        ));
    }
    let pins = topo::state::pin_dir(lab);
    v.extend([
        (
            format!("lbctl graph{l} -o lab.svg"),
            "# the topology with live STP, VRRP, health",
        ),
        (
            format!("lbctl capture{l} bal1 eth0 --vrrp -c 3"),
            "# VRRP adverts on the wire",
        ),
        (format!("lbctl logs{l} bal1"), "# the agent's log"),
        (
            format!("lbctl verify{l}"),
            "# prove the four checkpoints (about 4 min)",
        ),
        (
            format!("lbctl bridge down{l} vswout1"),
            "# checkpoint 2: bal2 becomes VRRP master",
        ),
        (
            format!("lbctl link down{l} vswout1 swout2"),
            "# watch STP re-open a path",
        ),
        (
            format!("lbctl bridge down{l} swout2"),
            "# root bridge failure",
        ),
        (
            format!("bpftool map dump pinned {}/swout1/OBS_PORT", pins.display()),
            "",
        ),
        (format!("lbctl down{l}"), "# remove everything"),
    ]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default lab's hints carry no `--lab`; another lab's carry it on every command.
    #[test]
    fn next_steps_name_the_lab() {
        let cfg = Config::default_scenario();
        let text = next_steps(&cfg, Duration::from_secs(13));
        assert!(text.contains("lab lab is up in 13.0 s."), "{text}");
        assert!(
            text.contains("service VIP:      http://172.16.1.254:8000/"),
            "{text}"
        );
        assert!(!text.contains("--lab"), "{text}");
        let other = cfg.with_lab_name("t7").unwrap();
        let text = next_steps(&other, Duration::from_secs(1));
        let cmds = text
            .lines()
            .filter(|l| l.trim_start().starts_with("lbctl "));
        for line in cmds {
            assert!(line.contains("--lab t7"), "{line}");
        }
    }
}
