//! Pure: what [`super::collect`] read → the status model. Names kernel bridge ids after the
//! plan's bridges, compares the kernel's spanning tree with theory port by port, names
//! observer rows after interfaces and balancer backends after the agent's plan.

use super::collect::{BalancerRaw, Raw, VxlanRaw};
use super::report::{BackendReport, BalancerReport, Source, VrrpReport};
use super::{
    CounterRow, DaemonStatus, LanStatus, NodeStatus, PortStatus, RstpBridgeStatus, Status,
    VxlanStatus,
};
use crate::agent::plan::BackendPlan;
use crate::config::{Config, VxlanMode};
use crate::datapath::observe::ObserverCounters;
use crate::datapath::state_maps::HealthEntry;
use crate::stp::theory::{self, BridgeId, TreeExpectation};
use crate::topo::inspect::{self, LabView, Mismatch};
use crate::topo::plan::Plan;
use crate::vrrp::VrrpSnapshot;

/// The kernel link counters [`VxlanRaw::Kernel`] holds, in order.
const LINK_COUNTERS: [&str; 6] = [
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_dropped",
    "tx_dropped",
];

/// The status model of what was read.
pub fn build(cfg: &Config, raw: Raw) -> Status {
    let Raw {
        plan,
        view,
        daemons,
        observers,
        vxlan,
        balancers,
    } = raw;
    let (exp, mismatches) = inspect::compare(&plan, &view);
    Status {
        nodes: nodes(&plan, &view),
        lans: lans(cfg, &plan, &view, &exp),
        ports: ports(&plan, &view, &exp, &mismatches),
        counters: counters(&plan, &view, &observers),
        vxlan: vxlan_rows(&plan, vxlan),
        balancers: balancers.into_iter().map(balancer).collect(),
        rstp: rstp_bridges(&plan, &view, &daemons),
        lab: plan.lab,
        mismatches,
        daemons,
    }
}

/// Each RSTP bridge: whether its daemon runs, and the root, root port and counters it reported.
fn rstp_bridges(plan: &Plan, view: &LabView, daemons: &[DaemonStatus]) -> Vec<RstpBridgeStatus> {
    plan.rstp_bridges()
        .filter_map(|b| {
            let kb = view.bridge(&b.name)?;
            let daemon = crate::topo::daemons::stpd_daemon(&b.name);
            let report = kb.rstp.as_ref().and_then(|r| r.report.as_ref());
            Some(RstpBridgeStatus {
                bridge: b.name.clone(),
                node: b.node.clone(),
                daemon_running: daemons
                    .iter()
                    .find(|d| d.node == b.node && d.daemon == daemon)
                    .map(|d| d.running),
                root: report.map(|_| bridge_name_of(view, &kb.kernel.root)),
                root_port: report.and_then(|r| r.root_port).and_then(|n| {
                    b.ports
                        .iter()
                        .find(|p| p.port_no == n)
                        .map(|p| p.name.clone())
                }),
                root_path_cost: report.map_or(0, |r| r.root_path_cost),
                topology_changes: report.map_or(0, |r| r.topology_changes),
                drops: report
                    .map(|r| r.drops.iter().map(|(k, v)| (k.clone(), *v)).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A bridge id as the name of the lab's bridge that has it (else the id itself).
fn bridge_name_of(view: &LabView, id: &BridgeId) -> String {
    view.bridges
        .iter()
        .find(|b| b.kernel.id == *id)
        .map(|b| b.kernel.name.clone())
        .unwrap_or_else(|| id.to_string())
}

/// Every planned node: whether its namespace exists and its addresses (but loopback's).
fn nodes(plan: &Plan, view: &LabView) -> Vec<NodeStatus> {
    plan.nodes
        .iter()
        .map(|n| {
            let nv = view.node(&n.name);
            let addresses = nv
                .into_iter()
                .flat_map(|nv| &nv.ifaces)
                .filter(|i| i.name != "lo")
                .flat_map(|i| i.addrs.iter().map(|a| (i.name.clone(), a.to_string())))
                .collect();
            NodeStatus {
                name: n.name.clone(),
                kind: n.kind,
                host: n.host.clone(),
                netns: n.netns.clone(),
                present: nv.map(|x| x.present).unwrap_or(false),
                addresses,
            }
        })
        .collect()
}

/// Each LAN's root bridge(s): as the kernel reports them (STP bridges that are up) and as
/// theory expects them (STP bridges the kernel has up).
fn lans(cfg: &Config, plan: &Plan, view: &LabView, exp: &TreeExpectation) -> Vec<LanStatus> {
    let in_lan = |bridge: &str, lan: &str| plan.bridge(bridge).is_some_and(|p| p.lan == lan);
    cfg.lans
        .iter()
        .map(|l| {
            let mut roots: Vec<String> = view
                .bridges
                .iter()
                .filter(|b| b.kernel.stp && b.admin_up && in_lan(&b.kernel.name, &l.name))
                .map(|b| bridge_name_of(view, &b.kernel.root))
                .collect();
            roots.sort();
            roots.dedup();
            let mut expected_roots: Vec<String> = exp
                .bridges
                .iter()
                .filter(|b| {
                    plan.bridge(&b.name)
                        .is_some_and(|p| p.lan == l.name && p.stp)
                        && view.bridge(&b.name).is_some_and(|v| v.admin_up)
                })
                .map(|b| planned_bridge_name(plan, &b.root))
                .collect();
            expected_roots.sort();
            expected_roots.dedup();
            LanStatus {
                name: l.name.clone(),
                subnet: l.subnet.to_string(),
                roots,
                expected_roots,
            }
        })
        .collect()
}

/// A bridge id as the name of the planned bridge that would have it (else the id).
fn planned_bridge_name(plan: &Plan, id: &BridgeId) -> String {
    plan.bridges
        .iter()
        .find(|p| {
            BridgeId {
                priority: p.priority,
                mac: p.mac,
            } == *id
        })
        .map(|p| p.name.clone())
        .unwrap_or_else(|| id.to_string())
}

/// Every planned port the kernel has, with its state and derived role next to theory's.
fn ports(
    plan: &Plan,
    view: &LabView,
    exp: &TreeExpectation,
    mismatches: &[Mismatch],
) -> Vec<PortStatus> {
    let loops = inspect::forwarding_loops(plan, view);
    let looping: Vec<(&str, &str)> = loops
        .iter()
        .flatten()
        .map(|e| (e.bridge.as_str(), e.port.as_str()))
        .collect();
    let mut out = Vec::new();
    for b in &plan.bridges {
        let Some(kb) = view.bridge(&b.name) else {
            continue;
        };
        for p in &b.ports {
            let Some(kp) = kb.ports.iter().find(|x| x.kernel.name == p.name) else {
                continue;
            };
            let pe = exp.port(&b.name, &p.name);
            // Bridges with STP off are checked too: STP as configured, no loop through them.
            let kernel_stp_off = kb.rstp.as_ref().is_none_or(|r| !r.kernel_stp);
            let ok = kb.kernel.stp == b.stp
                && kernel_stp_off
                && !mismatches
                    .iter()
                    .any(|m| m.bridge == b.name && m.port == p.name)
                && !looping.contains(&(b.name.as_str(), p.name.as_str()));
            out.push(PortStatus {
                bridge: b.name.clone(),
                port: p.name.clone(),
                port_no: kp.kernel.port_no,
                peer: p.peer.clone(),
                stp: kb.kernel.stp,
                state: kp.kernel.state,
                role: kp
                    .rstp
                    .as_ref()
                    .map_or_else(|| theory::derive_role(&kb.kernel, &kp.kernel), |r| r.role),
                cost: kp.cost,
                expected_state: pe.map(|e| e.state),
                expected_role: pe.map(|e| e.role),
                designated_bridge: bridge_name_of(view, &kp.kernel.designated_bridge),
                ok,
                rstp: kp.rstp.clone(),
            });
        }
    }
    out
}

/// One row per observed interface, named after the node's interface with that index.
fn counters(
    plan: &Plan,
    view: &LabView,
    observers: &[(String, ObserverCounters)],
) -> Vec<CounterRow> {
    let mut out = Vec::new();
    for n in &plan.nodes {
        let Some((_, c)) = observers.iter().find(|(node, _)| *node == n.name) else {
            continue;
        };
        let nv = view.node(&n.name);
        for pc in &c.ports {
            let iface = nv
                .and_then(|v| v.ifaces.iter().find(|i| i.ifindex == pc.ifindex))
                .map(|i| i.name.clone())
                .unwrap_or_else(|| format!("if{}", pc.ifindex));
            out.push(CounterRow {
                node: n.name.clone(),
                iface,
                counts: pc.clone(),
                vrrp_by_vrid: c
                    .vrrp
                    .iter()
                    .filter(|v| v.ifindex == pc.ifindex)
                    .map(|v| (v.vrid, v.adverts))
                    .collect(),
            });
        }
    }
    out
}

/// Each VXLAN endpoint read, in plan order, its counters named.
fn vxlan_rows(plan: &Plan, mut read: Vec<(String, VxlanRaw)>) -> Vec<VxlanStatus> {
    let mut out = Vec::new();
    for x in &plan.vxlans {
        let Some(i) = read.iter().position(|(host, _)| *host == x.node) else {
            continue;
        };
        let (host, raw) = read.remove(i);
        let (counters, fdb, headroom) = match raw {
            VxlanRaw::Ebpf {
                stats,
                fdb,
                headroom,
            } => {
                let counters = stats
                    .map(|st| {
                        crate::datapath::vxlan::stats_fields(&st)
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect()
                    })
                    .unwrap_or_default();
                (counters, fdb, headroom)
            }
            VxlanRaw::Kernel { link } => {
                let counters = link
                    .map(|v| LINK_COUNTERS.iter().map(|n| n.to_string()).zip(v).collect())
                    .unwrap_or_default();
                (counters, vec![], None)
            }
        };
        out.push(VxlanStatus {
            host,
            mode: x.mode,
            decap: (x.mode == VxlanMode::Ebpf).then_some(x.decap),
            device: x.device.clone(),
            counters,
            fdb,
            headroom_port: (x.mode == VxlanMode::Ebpf)
                .then(|| crate::datapath::vxlan::headroom::port_name(&x.device)),
            headroom,
        });
    }
    out
}

/// A balancer's report: as its admin port sent it, or assembled from its maps.
fn balancer(raw: BalancerRaw) -> BalancerReport {
    match raw {
        BalancerRaw::Admin { node, report } => {
            report.unwrap_or_else(|| BalancerReport::silent(&node))
        }
        BalancerRaw::Maps {
            node,
            backends,
            health,
            vrrp,
        } => from_maps(node, &backends, health, vrrp),
    }
}

/// A report from the pinned maps. The proxy's own client-side counters (`frontend`), the
/// connection and byte counters and response times exist only at the admin port: zero here.
fn from_maps(
    node: String,
    plan: &[BackendPlan],
    health: Vec<HealthEntry>,
    vrrp: Option<VrrpSnapshot>,
) -> BalancerReport {
    let backends = health
        .into_iter()
        .map(|e| {
            let bp = plan.get(e.index as usize);
            BackendReport {
                name: bp
                    .map(|b| b.name.clone())
                    .unwrap_or_else(|| e.addr.to_string()),
                address: e.addr.to_string(),
                pool: bp.map(|b| b.pool.clone()).unwrap_or_default(),
                weight: e.weight,
                up: e.up,
                active: 0,
                requests: e.requests,
                responses: e.responses,
                failures: e.failures,
                retries: 0,
                redispatches: 0,
                bytes_in: 0,
                bytes_out: 0,
                // Not in the map: only the admin port's /stats has response times.
                avg_response_ms: 0.0,
                check_ok: e.last_ok,
                check_reason: e.last_ok.map(|_| e.reason.clone()),
                check_duration_ms: e.last_ok.map(|_| u64::from(e.check_ms)),
                check_passive: e.last_ok.map(|_| e.passive),
                last_change: e.last_change,
                // The map keeps the last observation's reason, not the transition's.
                change_reason: None,
                transitions: e.transitions,
            }
        })
        .collect();
    BalancerReport {
        node,
        source: Some(Source::Bpf),
        frontend: None,
        vrrp: vrrp.map(VrrpReport::from),
        backends,
    }
}
