//! The undo stack: every failure verify injects pushes the action that repairs it before
//! it is injected; the step pops it once it has repaired the failure itself. Whatever is
//! left when a step errors, panics or the user presses Ctrl-C is run, newest first, by
//! whoever holds the stack (the orchestrator, outside the checkpoint's task).

use crate::fault::{self, nft, Fault};
use crate::topo::plan::Plan;
use anyhow::{Context, Result};
use std::sync::{Arc, Mutex};

/// One repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bring a link or a bridge back up.
    Up(FaultKey),
    /// Delete the nftables table that cuts the tunnel, in these nodes.
    RemoveCut { nodes: Vec<String> },
    /// A balancer's agent runs: verify killed it and its supervisor restarts it; should
    /// it not be back, it is started again (supervised).
    AgentRunning { node: String },
}

/// A fault by value (Fault itself has no equality).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKey {
    Link(String, String),
    Bridge(String),
    /// A node's bridge port black-holed (node, bridge): its repair removes the drop.
    Blackhole(String, String),
}

impl FaultKey {
    pub fn fault(&self) -> Fault {
        match self {
            FaultKey::Link(a, b) => Fault::Link(a.clone(), b.clone()),
            FaultKey::Bridge(b) => Fault::Bridge(b.clone()),
            FaultKey::Blackhole(n, b) => Fault::Blackhole(n.clone(), b.clone()),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Up(k @ FaultKey::Blackhole(..)) => write!(f, "{} removed", k.fault()),
            Action::Up(k) => write!(f, "{} up", k.fault()),
            Action::RemoveCut { nodes } => {
                write!(f, "tunnel cut removed from {}", nodes.join(", "))
            }
            Action::AgentRunning { node } => write!(f, "agent of {node} running"),
        }
    }
}

/// The nftables table verify adds to cut the tunnel.
pub const CUT_TABLE: &str = "lbctl_verify_cut";

/// The ruleset that drops VXLAN (UDP `port`) packets to and from one host's VTEP address
/// `vtep` bridged through a switch: that host is cut from the tunnel, the other hosts
/// still reach each other. In the bridge family, on the switches between the hosts: it
/// cuts the tunnel whatever implements it in the hosts (kernel vxlan device or BPF), and
/// touches nothing else.
pub fn cut_ruleset(port: u16, vtep: std::net::Ipv4Addr) -> String {
    format!(
        "table bridge {CUT_TABLE} {{\n  chain cut {{\n    type filter hook forward priority 0; policy accept;\n    ip saddr {vtep} udp dport {port} counter drop\n    ip daddr {vtep} udp dport {port} counter drop\n  }}\n}}\n"
    )
}

/// Adds the cut of `vtep` in one node.
pub fn add_cut(ns: &str, port: u16, vtep: std::net::Ipv4Addr) -> Result<()> {
    nft(ns, &["-f", "-"], Some(&cut_ruleset(port, vtep))).map(|_| ())
}

/// Removes the cut from one node (absent is fine).
pub fn remove_cut(ns: &str) -> Result<()> {
    let tables = nft(ns, &["list", "tables"], None)?;
    if tables.contains(CUT_TABLE) {
        nft(ns, &["delete", "table", "bridge", CUT_TABLE], None)?;
    }
    Ok(())
}

/// Packets the cut dropped in one node (the sum of its rules' counters).
pub fn cut_drops(ns: &str) -> Result<u64> {
    let t = nft(ns, &["list", "table", "bridge", CUT_TABLE], None)?;
    Ok(drops_in(&t))
}

/// The sum of every "packets N" counter in an nft listing.
fn drops_in(listing: &str) -> u64 {
    let words: Vec<&str> = listing.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "packets")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .sum()
}

/// Runs one repair.
pub async fn run(plan: &Plan, a: &Action) -> Result<()> {
    match a {
        Action::Up(k) => fault::apply(plan, &k.fault(), true).await,
        Action::RemoveCut { nodes } => {
            for n in nodes {
                remove_cut(&plan.netns(n))?;
            }
            Ok(())
        }
        Action::AgentRunning { node } => agent_running(plan, node).await,
    }
}

/// The agent of `node` is running: at once if its supervisor restarted it (it does within
/// a second), else it is started again under a new supervisor.
async fn agent_running(plan: &Plan, node: &str) -> Result<()> {
    use crate::topo::state;
    let alive = || {
        state::recorded(&plan.lab)
            .iter()
            .any(|r| r.node == node && r.daemon == "agent" && state::is_alive(r))
    };
    for _ in 0..30 {
        if alive() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let exe = std::env::current_exe().context("locating the lbctl executable")?;
    let bpf = state::pin_dir(&plan.lab).exists();
    crate::topo::build::start_agent(&plan.lab, node, &exe, bpf)?;
    Ok(())
}

/// The shared stack.
#[derive(Clone, Default)]
pub struct Undo(Arc<Mutex<Vec<Action>>>);

impl Undo {
    pub fn push(&self, a: Action) {
        self.0.lock().unwrap().push(a);
    }

    /// Removes `a` (the newest equal entry) once the step repaired it itself.
    pub fn done(&self, a: &Action) {
        let mut v = self.0.lock().unwrap();
        if let Some(i) = v.iter().rposition(|x| x == a) {
            v.remove(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }

    /// Takes every pending action, newest first.
    pub fn drain(&self) -> Vec<Action> {
        let mut v = std::mem::take(&mut *self.0.lock().unwrap());
        v.reverse();
        v
    }

    /// Runs every pending action, newest first; one line per action with its outcome.
    pub async fn run_all(&self, plan: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        for a in self.drain() {
            match run(plan, &a).await {
                Ok(()) => out.push(format!("{a}: ok")),
                Err(e) => out.push(format!("{a}: FAILED ({e:#})")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_runs_newest_first_and_done_removes_one() {
        let u = Undo::default();
        let b = Action::Up(FaultKey::Bridge("vswout1".into()));
        let l = Action::Up(FaultKey::Link("swout1".into(), "swout2".into()));
        let c = Action::RemoveCut {
            nodes: vec!["swout1".into()],
        };
        u.push(c.clone());
        u.push(b.clone());
        u.push(l.clone());
        u.done(&b);
        assert_eq!(u.drain(), vec![l.clone(), c.clone()]);
        assert!(u.is_empty());
        assert_eq!(l.to_string(), "link swout1 - swout2 up");
        assert_eq!(c.to_string(), "tunnel cut removed from swout1");
        let h = Action::Up(FaultKey::Blackhole("serv1".into(), "vswin1".into()));
        assert_eq!(h.to_string(), "black hole serv1 - vswin1 removed");
    }

    #[test]
    fn ruleset_drops_the_tunnel_port_in_the_bridge_family() {
        let r = cut_ruleset(4789, [172, 16, 1, 152].into());
        assert!(r.starts_with("table bridge lbctl_verify_cut"), "{r}");
        assert!(r.contains("hook forward"), "{r}");
        assert!(
            r.contains("ip saddr 172.16.1.152 udp dport 4789 counter drop"),
            "{r}"
        );
        assert!(
            r.contains("ip daddr 172.16.1.152 udp dport 4789 counter drop"),
            "{r}"
        );
    }

    #[test]
    fn drops_are_summed_over_the_rules() {
        let listing = "table bridge lbctl_verify_cut {\n chain cut {\n ip saddr 1.2.3.4 udp dport 4789 counter packets 7 bytes 700 drop\n ip daddr 1.2.3.4 udp dport 4789 counter packets 5 bytes 500 drop\n }\n}";
        assert_eq!(drops_in(listing), 12);
        assert_eq!(drops_in("table bridge x {}"), 0);
    }
}
