//! The I/O edge of `lbctl status`: reads the kernel (links, bridges, addresses over
//! netlink), the pinned maps (observer counters, VTEP counters and MACs, balancers' health
//! and VRRP), the daemons' pid files and, for agents that keep no maps, their admin ports.
//! Everything read lands in [`Raw`], untouched; [`super::build`] makes sense of it.

use super::report::BalancerReport;
use super::DaemonStatus;
use crate::agent::plan::BackendPlan;
use crate::config::{Config, VxlanMode};
use crate::datapath::observe::{self, ObserverCounters};
use crate::datapath::state_maps::{self, HealthEntry};
use crate::datapath::vxlan::{self, FdbRow, VxCounters};
use crate::topo::inspect::{self, LabView};
use crate::topo::plan::Plan;
use crate::topo::{netns, nl, state};
use crate::vrrp::VrrpSnapshot;
use anyhow::{Context, Result};

/// Everything `status` read, as read.
pub struct Raw {
    pub plan: Plan,
    /// The kernel's view of every node and bridge.
    pub view: LabView,
    /// Every recorded daemon, with whether its process still runs.
    pub daemons: Vec<DaemonStatus>,
    /// Each node's observer counters (nodes without a readable observer left out).
    pub observers: Vec<(String, ObserverCounters)>,
    /// Each VXLAN endpoint whose namespace exists, by host.
    pub vxlan: Vec<(String, VxlanRaw)>,
    /// Each balancer whose namespace exists.
    pub balancers: Vec<BalancerRaw>,
}

/// One VXLAN endpoint's counters as read.
pub enum VxlanRaw {
    /// The BPF VTEP's maps (None: `VX_STATS` unreadable).
    Ebpf {
        stats: Option<Box<VxCounters>>,
        fdb: Vec<FdbRow>,
        /// The least `needed_headroom` of the internal bridge's ports (the headroom port's
        /// doing, `datapath::vxlan::headroom`); None: not reported or not read.
        headroom: Option<u16>,
    },
    /// The kernel vxlan device's link counters: rx/tx packets, rx/tx bytes, rx/tx dropped
    /// (None: no such device).
    Kernel { link: Option<[u64; 6]> },
}

/// One balancer as read.
pub enum BalancerRaw {
    /// From the maps its agent pinned: the health map in the agent's backend order (named
    /// after the agent's plan) and the VRRP map's instance.
    Maps {
        node: String,
        backends: Vec<BackendPlan>,
        health: Vec<HealthEntry>,
        vrrp: Option<VrrpSnapshot>,
    },
    /// From the agent's admin port, converted from the wire type (None: no answer).
    Admin {
        node: String,
        report: Option<BalancerReport>,
    },
}

/// Reads the lab `cfg` describes.
pub async fn read(cfg: &Config) -> Result<Raw> {
    let plan = Plan::new(cfg);
    let view = inspect::read_lab(&plan)
        .await
        .context("reading the lab's namespaces")?;
    let supervisors = state::supervisors(&plan.lab);
    let daemons = state::recorded(&plan.lab)
        .into_iter()
        .map(|r| {
            let sup = crate::topo::daemons::supervise::read_state(&plan.lab, &r.node, &r.daemon);
            let supervised = supervisors
                .iter()
                .any(|s| s.node == r.node && s.daemon == r.daemon && state::is_alive(s));
            DaemonStatus {
                running: state::is_alive(&r),
                supervised,
                restarts: sup.as_ref().map_or(0, |s| s.restarts),
                last_exit: sup.and_then(|s| s.last_exit),
                node: r.node,
                daemon: r.daemon,
                pid: r.pid,
            }
        })
        .collect();
    let observers = read_observers(&plan);
    let vxlan = read_vxlan(&plan).await?;
    let mut balancers = Vec::new();
    if let Some(svc) = &cfg.service {
        for b in &svc.balancers {
            if netns::exists(&plan.netns(b)) {
                balancers.push(read_balancer(cfg, &plan, b, svc.admin_port)?);
            }
        }
    }
    Ok(Raw {
        plan,
        view,
        daemons,
        observers,
        vxlan,
        balancers,
    })
}

/// Each node's TC observer counters, where one is pinned and readable.
fn read_observers(plan: &Plan) -> Vec<(String, ObserverCounters)> {
    plan.nodes
        .iter()
        .filter_map(|n| {
            let pin = state::node_pin_dir(&plan.lab, &n.name);
            if !pin.exists() {
                return None;
            }
            let c = observe::read_observer(&pin).ok()?;
            Some((n.name.clone(), c))
        })
        .collect()
}

/// Each VXLAN endpoint's counters (and the BPF VTEP's learned MACs).
async fn read_vxlan(plan: &Plan) -> Result<Vec<(String, VxlanRaw)>> {
    let mut out = Vec::new();
    for x in &plan.vxlans {
        let ns = plan.netns(&x.node);
        if !netns::exists(&ns) {
            continue;
        }
        let raw = match x.mode {
            VxlanMode::Ebpf => {
                let pin = state::node_pin_dir(&plan.lab, &x.node);
                VxlanRaw::Ebpf {
                    stats: vxlan::read_stats(&pin).ok().map(Box::new),
                    fdb: vxlan::read_fdb(&pin).unwrap_or_default(),
                    headroom: bridge_headroom(&ns, &x.bridge).await.unwrap_or_else(|e| {
                        tracing::debug!("headroom of {}'s ports: {e:#}", x.bridge);
                        None
                    }),
                }
            }
            VxlanMode::Kernel => {
                let h = netns::netlink(&ns).await?;
                let link = nl::link_stats(&h, &x.device)
                    .await
                    .with_context(|| format!("reading {}'s counters on {}", x.device, x.node))?;
                VxlanRaw::Kernel { link }
            }
        };
        out.push((x.node.clone(), raw));
    }
    Ok(out)
}

/// The least `needed_headroom` among the ports of `bridge` in namespace `ns`.
async fn bridge_headroom(ns: &str, bridge: &str) -> Result<Option<u16>> {
    use crate::datapath::vxlan::headroom;
    let h = netns::netlink(ns).await?;
    let links = nl::dump_links(&h).await?;
    let Some(b) = links.iter().find(|m| nl::link_name(m) == Some(bridge)) else {
        return Ok(None);
    };
    let ports = headroom::port_headrooms(&links, b.header.index);
    Ok(headroom::least_headroom(&ports))
}

/// A balancer's backends and VRRP instance, from the maps its agent pinned (so this works
/// from any process, without a path into the balancer's namespace); from the agent's admin
/// port only when the agent keeps no maps (`--no-bpf`).
fn read_balancer(cfg: &Config, plan: &Plan, node: &str, admin_port: u16) -> Result<BalancerRaw> {
    let dir = state::node_pin_dir(&plan.lab, node);
    if dir.join(lb_common::HEALTH_MAP).exists() {
        let ap = crate::agent::AgentPlan::new(cfg, node, &[])?;
        let health = state_maps::read_health(&dir)?;
        let instance = ap
            .vrrp
            .as_ref()
            .map(|v| v.instance.clone())
            .unwrap_or_default();
        let vrrp = if dir.join(lb_common::VRRP_MAP).exists() {
            state_maps::read_vrrp(&dir, &instance)?.into_iter().next()
        } else {
            None
        };
        return Ok(BalancerRaw::Maps {
            node: node.to_string(),
            backends: ap.backends,
            health,
            vrrp,
        });
    }
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin_port));
    let stats = netns::run_in(&plan.netns(node), move || {
        Ok(crate::agent::admin::fetch_stats(admin))
    })?;
    Ok(BalancerRaw::Admin {
        node: node.to_string(),
        report: stats.map(BalancerReport::from),
    })
}
