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
    /// Who runs every STP bridge's spanning tree, overriding the config's `[stp] mode` and
    /// the bridges' `stp_mode`: the kernel's 802.1D, or RSTP by `lbctl stpd`.
    #[arg(long, value_name = "MODE", value_parser = ["kernel", "rstp"])]
    stp: Option<String>,
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
    let (mut cfg, mut text) = a.lab.resolve_for_up()?;
    cfg.require_lab("up")?;
    if let Some(m) = a.stp.as_deref() {
        let mode = match m {
            "rstp" => crate::config::StpMode::Rstp,
            _ => crate::config::StpMode::Kernel,
        };
        (cfg, text) = cfg.with_stp_mode(&text, mode)?;
    }
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

/// The nodes, bridges and address the hints name, taken from the config: on the default
/// lab they are the scenario's (bal1, vswout1, swout2…), on any other lab its own.
struct HintNames<'a> {
    /// The first balancer, its first interface, and the bridge that interface plugs into.
    bal: Option<(&'a str, &'a str, &'a str)>,
    /// The balancer that takes over when the first one's bridge goes down.
    backup: Option<&'a str>,
    user: Option<&'a str>,
    /// The external address of the last host that has one (a ping across the LAN).
    far_host: Option<std::net::Ipv4Addr>,
    /// The STP root in theory: the STP bridge with the lowest (priority, name).
    root: Option<&'a str>,
    /// A cable between the first balancer's bridge and the root, as the config writes it.
    root_link: Option<(&'a str, &'a str)>,
    /// The namespace of the first switch (or bridge): its observer's pinned map.
    first_switch: Option<&'a str>,
}

impl<'a> HintNames<'a> {
    fn new(cfg: &'a Config) -> Self {
        let role = |r: Role| cfg.nodes.iter().filter(move |n| n.role == r);
        let bal = role(Role::Balancer)
            .next()
            .and_then(|n| n.ifaces.first().map(|i| (n.name.as_str(), i)))
            .map(|(n, i)| (n, i.name.as_str(), i.bridge.as_str()));
        let root = cfg
            .all_bridges()
            .into_iter()
            .filter(|(_, b)| b.stp)
            .min_by_key(|(_, b)| (b.priority, b.name.as_str()))
            .map(|(_, b)| b.name.as_str());
        let root_link = bal.zip(root).and_then(|((_, _, br), root)| {
            cfg.links
                .iter()
                .find(|l| (l.a == br && l.b == root) || (l.a == root && l.b == br))
                .map(|l| (l.a.as_str(), l.b.as_str()))
        });
        HintNames {
            bal,
            backup: role(Role::Balancer).nth(1).map(|n| n.name.as_str()),
            user: role(Role::User).next().map(|n| n.name.as_str()),
            far_host: cfg
                .hosts
                .iter()
                .flat_map(|h| &h.bridges)
                .filter_map(|b| b.address)
                .next_back()
                .map(|a| a.addr()),
            root,
            root_link,
            first_switch: cfg.all_bridges().first().map(|(ns, _)| *ns),
        }
    }
}

/// Commands worth trying on this lab, with why (`--lab` added unless it is the default lab).
fn try_next(cfg: &Config) -> Vec<(String, &'static str)> {
    let lab = &cfg.lab.name;
    let l = if lab == "lab" {
        String::new()
    } else {
        format!(" --lab {lab}")
    };
    let n = HintNames::new(cfg);
    let mut v = vec![(
        format!("lbctl status{l}"),
        "# nodes, STP ports vs theory, BPF counters",
    )];
    v.extend(traffic_hints(cfg, &n, &l));
    v.extend(fault_hints(cfg, &n, &l));
    v.push((format!("lbctl down{l}"), "# remove everything"));
    v
}

/// A server's page from a balancer, a ping across the external LAN, round robin via the VIP.
fn traffic_hints(cfg: &Config, n: &HintNames, l: &str) -> Vec<(String, &'static str)> {
    let mut v = Vec::new();
    let server = cfg.nodes.iter().find(|n| n.role == Role::Server);
    let page = server.and_then(|s| Some((s, s.ifaces.iter().find_map(|i| i.address)?)));
    if let (Some((srv, a)), Some((bal, _, _))) = (page, n.bal) {
        v.push((
            format!(
                "lbctl exec{l} {bal} -- curl -s http://{}:{}/",
                a.addr(),
                srv.http_port()
            ),
            "# a server's page",
        ));
    }
    let Some(user) = n.user else { return v };
    if let Some(ip) = n.far_host {
        v.push((
            format!("lbctl exec{l} {user} -- ping -c2 {ip}"),
            "# across the external LAN",
        ));
    }
    if let Some(s) = &cfg.service {
        v.push((
            format!(
                "for i in 1 2 3; do lbctl exec{l} {user} -- curl -s http://{}:{}/ | grep servidor; done",
                s.vip, s.port
            ),
            "",
        ));
    }
    v
}

/// The picture, the wire, the logs, verify, and the failures worth watching.
fn fault_hints(cfg: &Config, n: &HintNames, l: &str) -> Vec<(String, &'static str)> {
    let mut v = vec![(
        format!("lbctl graph{l} -o lab.svg"),
        "# the topology with live STP, VRRP, health",
    )];
    if let Some((bal, iface, _)) = n.bal {
        v.push((
            format!("lbctl capture{l} {bal} {iface} --vrrp -c 3"),
            "# VRRP adverts on the wire",
        ));
        v.push((format!("lbctl logs{l} {bal}"), "# the agent's log"));
    }
    v.push((
        format!("lbctl verify{l}"),
        "# prove the four checkpoints (about 4 min)",
    ));
    if let (Some((_, _, br)), Some(_)) = (n.bal, n.backup) {
        v.push((
            format!("lbctl bridge down{l} {br}"),
            "# checkpoint 2: the backup becomes VRRP master",
        ));
    }
    if let Some((a, b)) = n.root_link {
        v.push((
            format!("lbctl link down{l} {a} {b}"),
            "# watch STP re-open a path",
        ));
    }
    if let Some(root) = n.root {
        v.push((
            format!("lbctl bridge down{l} {root}"),
            "# root bridge failure",
        ));
    }
    if let Some(sw) = n.first_switch {
        let pins = topo::state::pin_dir(&cfg.lab.name);
        v.push((
            format!("bpftool map dump pinned {}/{sw}/OBS_PORT", pins.display()),
            "",
        ));
    }
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

    /// On the default lab the hints name the scenario's nodes, as they always did.
    #[test]
    fn default_lab_hints_name_the_scenario() {
        let cmds: Vec<String> = try_next(&Config::default_scenario())
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        for want in [
            "lbctl exec bal1 -- curl -s http://10.0.0.1:80/",
            "lbctl exec user1 -- ping -c2 172.16.1.151",
            "lbctl capture bal1 eth0 --vrrp -c 3",
            "lbctl bridge down vswout1",
            "lbctl link down vswout1 swout2",
            "lbctl bridge down swout2",
        ] {
            assert!(cmds.iter().any(|c| c == want), "{want} not in {cmds:#?}");
        }
    }

    /// On a lab with none of the scenario's names, every node, bridge and interface a hint
    /// names is one of the lab's.
    #[test]
    fn other_labs_hints_name_their_own_nodes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/configs/three.toml");
        let cfg = Config::load(std::path::Path::new(path)).unwrap();
        let mut known: Vec<String> = cfg.nodes.iter().map(|n| n.name.clone()).collect();
        known.extend(cfg.all_bridges().iter().map(|(_, b)| b.name.clone()));
        known.extend(
            cfg.nodes
                .iter()
                .flat_map(|n| n.ifaces.iter().map(|i| i.name.clone())),
        );
        let text = next_steps(&cfg, Duration::from_secs(1));
        for scenario in ["bal1", "user1", "vswout1", "swout2", "172.16.1.151"] {
            assert!(!text.contains(scenario), "{scenario} in:\n{text}");
        }
        for (cmd, _) in try_next(&cfg) {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let named: &[&str] = match words.get(1..4) {
                Some(["exec", "--lab", _]) | Some(["logs", "--lab", _]) => &words[4..5],
                Some(["capture", "--lab", _]) => &words[4..6],
                Some(["bridge", "down", "--lab"]) => &words[5..6],
                Some(["link", "down", "--lab"]) => &words[5..7],
                _ => &[],
            };
            for w in named {
                assert!(
                    known.iter().any(|k| k == w),
                    "{w} (in {cmd}) is not the lab's"
                );
            }
        }
    }
}
