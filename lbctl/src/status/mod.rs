//! `lbctl status`: nodes and addresses, every bridge port's STP state and derived role
//! next to what theory expects, the root bridge of each LAN, daemons, and the BPF
//! observer's counters read from the pinned maps.
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::datapath::observe;
use crate::stp::theory::{BridgeId, PortState, Role};
use crate::topo::inspect::{self, LabView, Mismatch};
use crate::topo::plan::{Kind, Plan};
use crate::topo::state;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write;

#[cfg(test)]
pub(crate) mod snapshot;

#[derive(Debug, Serialize)]
pub struct Status {
    pub lab: String,
    pub nodes: Vec<NodeStatus>,
    pub lans: Vec<LanStatus>,
    pub ports: Vec<PortStatus>,
    pub mismatches: Vec<Mismatch>,
    pub daemons: Vec<DaemonStatus>,
    pub counters: Vec<CounterRow>,
    /// Each VXLAN endpoint's counters.
    pub vxlan: Vec<VxlanStatus>,
    /// Each balancer's backends as its agent reports them.
    pub balancers: Vec<crate::agent::admin::Stats>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub kind: Kind,
    pub host: Option<String>,
    pub netns: String,
    pub present: bool,
    pub addresses: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct LanStatus {
    pub name: String,
    pub subnet: String,
    /// Root bridge(s) the kernel reports (more than one if the LAN is partitioned).
    pub roots: Vec<String>,
    pub expected_roots: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PortStatus {
    pub bridge: String,
    pub port: String,
    pub port_no: u16,
    pub peer: String,
    pub stp: bool,
    pub state: PortState,
    pub role: Role,
    pub cost: u32,
    pub expected_state: Option<PortState>,
    pub expected_role: Option<Role>,
    pub designated_bridge: String,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct DaemonStatus {
    pub node: String,
    pub daemon: String,
    pub pid: u32,
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct CounterRow {
    pub node: String,
    pub iface: String,
    #[serde(flatten)]
    pub counts: observe::PortCounters,
    /// (vrid, adverts)
    pub vrrp_by_vrid: Vec<(u8, u64)>,
}

/// One VXLAN endpoint: the BPF VTEP's counters (`VX_STATS`, summed over CPUs) and learned
/// MACs, or the kernel vxlan device's interface counters.
#[derive(Debug, Serialize)]
pub struct VxlanStatus {
    pub host: String,
    pub mode: crate::config::VxlanMode,
    pub device: String,
    /// Counter name -> value, in a stable order. `ebpf`: the fields of `VX_STATS`
    /// (`dec_*`, `pass_*`, `enc_*`, `learn_*`); `kernel`: `rx_packets`, `tx_packets`,
    /// `rx_bytes`, `tx_bytes`, `rx_dropped`, `tx_dropped` of the vxlan device.
    pub counters: Vec<(String, u64)>,
    /// `ebpf`: the learned MAC table (`VX_FDB`).
    pub fdb: Vec<crate::datapath::vxlan::FdbRow>,
}

fn bridge_name_of(view: &LabView, id: &BridgeId) -> String {
    view.bridges
        .iter()
        .find(|b| b.kernel.id == *id)
        .map(|b| b.kernel.name.clone())
        .unwrap_or_else(|| id.to_string())
}

pub async fn collect(cfg: &Config) -> Result<Status> {
    let plan = Plan::new(cfg);
    let view = inspect::read_lab(&plan).await?;
    let (exp, mismatches) = inspect::compare(&plan, &view);

    let mut nodes = Vec::new();
    for n in &plan.nodes {
        let nv = view.node(&n.name);
        let mut addresses = Vec::new();
        if let Some(nv) = nv {
            for i in &nv.ifaces {
                for a in &i.addrs {
                    if i.name != "lo" {
                        addresses.push((i.name.clone(), a.to_string()));
                    }
                }
            }
        }
        nodes.push(NodeStatus {
            name: n.name.clone(),
            kind: n.kind,
            host: n.host.clone(),
            netns: n.netns.clone(),
            present: nv.map(|x| x.present).unwrap_or(false),
            addresses,
        });
    }

    let mut lans = Vec::new();
    for l in &cfg.lans {
        let mut roots: Vec<String> = view
            .bridges
            .iter()
            .filter(|b| b.kernel.stp && b.admin_up)
            .filter(|b| {
                plan.bridge(&b.kernel.name)
                    .map(|p| p.lan == l.name)
                    .unwrap_or(false)
            })
            .map(|b| bridge_name_of(&view, &b.kernel.root))
            .collect();
        roots.sort();
        roots.dedup();
        let mut expected_roots: Vec<String> = exp
            .bridges
            .iter()
            .filter(|b| {
                plan.bridge(&b.name)
                    .map(|p| p.lan == l.name && p.stp)
                    .unwrap_or(false)
                    && view.bridge(&b.name).map(|v| v.admin_up).unwrap_or(false)
            })
            .map(|b| {
                plan.bridges
                    .iter()
                    .find(|p| {
                        BridgeId {
                            priority: p.priority,
                            mac: p.mac,
                        } == b.root
                    })
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| b.root.to_string())
            })
            .collect();
        expected_roots.sort();
        expected_roots.dedup();
        lans.push(LanStatus {
            name: l.name.clone(),
            subnet: l.subnet.to_string(),
            roots,
            expected_roots,
        });
    }

    let mut ports = Vec::new();
    for b in &plan.bridges {
        let Some(kb) = view.bridge(&b.name) else {
            continue;
        };
        for p in &b.ports {
            let Some(kp) = kb.ports.iter().find(|x| x.kernel.name == p.name) else {
                continue;
            };
            let pe = exp.port(&b.name, &p.name);
            let role = crate::stp::theory::derive_role(&kb.kernel, &kp.kernel);
            let ok = !kb.kernel.stp
                || !mismatches
                    .iter()
                    .any(|m| m.bridge == b.name && m.port == p.name);
            ports.push(PortStatus {
                bridge: b.name.clone(),
                port: p.name.clone(),
                port_no: kp.kernel.port_no,
                peer: p.peer.clone(),
                stp: kb.kernel.stp,
                state: kp.kernel.state,
                role,
                cost: kp.cost,
                expected_state: pe.map(|e| e.state),
                expected_role: pe.map(|e| e.role),
                designated_bridge: bridge_name_of(&view, &kp.kernel.designated_bridge),
                ok,
            });
        }
    }

    let daemons = state::recorded(&plan.lab)
        .into_iter()
        .map(|r| DaemonStatus {
            running: state::is_alive(&r),
            node: r.node,
            daemon: r.daemon,
            pid: r.pid,
        })
        .collect();

    let mut counters = Vec::new();
    for n in &plan.nodes {
        let pin = state::node_pin_dir(&plan.lab, &n.name);
        if !pin.exists() {
            continue;
        }
        let Ok(c) = observe::read_observer(&pin) else {
            continue;
        };
        let nv = view.node(&n.name);
        for pc in &c.ports {
            let iface = nv
                .and_then(|v| v.ifaces.iter().find(|i| i.ifindex == pc.ifindex))
                .map(|i| i.name.clone())
                .unwrap_or_else(|| format!("if{}", pc.ifindex));
            counters.push(CounterRow {
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

    let mut vxlan = Vec::new();
    for x in &plan.vxlans {
        let ns = plan.netns(&x.node);
        if !crate::topo::netns::exists(&ns) {
            continue;
        }
        let mut row = VxlanStatus {
            host: x.node.clone(),
            mode: x.mode,
            device: x.device.clone(),
            counters: Vec::new(),
            fdb: Vec::new(),
        };
        match x.mode {
            crate::config::VxlanMode::Ebpf => {
                let pin = state::node_pin_dir(&plan.lab, &x.node);
                if let Ok(st) = crate::datapath::vxlan::read_stats(&pin) {
                    row.counters = crate::datapath::vxlan::stats_fields(&st)
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                }
                row.fdb = crate::datapath::vxlan::read_fdb(&pin).unwrap_or_default();
            }
            crate::config::VxlanMode::Kernel => {
                let h = crate::topo::netns::netlink(&ns).await?;
                if let Some(v) = crate::topo::nl::link_stats(&h, &x.device).await? {
                    let names = [
                        "rx_packets",
                        "tx_packets",
                        "rx_bytes",
                        "tx_bytes",
                        "rx_dropped",
                        "tx_dropped",
                    ];
                    row.counters = names.iter().map(|n| n.to_string()).zip(v).collect();
                }
            }
        }
        vxlan.push(row);
    }

    let mut balancers = Vec::new();
    if let Some(svc) = &cfg.service {
        for b in &svc.balancers {
            let ns = plan.netns(b);
            if !crate::topo::netns::exists(&ns) {
                continue;
            }
            balancers.push(balancer_stats(cfg, &plan, b, svc.admin_port)?);
        }
    }

    Ok(Status {
        balancers,
        lab: plan.lab.clone(),
        nodes,
        lans,
        ports,
        mismatches,
        daemons,
        counters,
        vxlan,
    })
}

/// A balancer's backends and VRRP instance, from the maps its agent pinned (so this works
/// from any process, without a path into the balancer's namespace); from the agent's admin
/// port only when the agent keeps no maps (`--no-bpf`). The proxy's own client-side
/// counters (`frontend`) exist only at the admin port and are left out of the map view.
fn balancer_stats(
    cfg: &Config,
    plan: &Plan,
    node: &str,
    admin_port: u16,
) -> Result<crate::agent::admin::Stats> {
    use crate::agent::admin::{BackendStats, Stats};
    use crate::datapath::state_maps;
    let dir = state::node_pin_dir(&plan.lab, node);
    if dir.join(lb_common::HEALTH_MAP).exists() {
        let ap = crate::agent::AgentPlan::new(cfg, node, &[])?;
        let backends = state_maps::read_health(&dir)?
            .into_iter()
            .map(|e| {
                let bp = ap.backends.get(e.index as usize);
                BackendStats {
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
        return Ok(Stats {
            node: node.to_string(),
            source: Some("bpf".into()),
            frontend: None,
            vrrp,
            backends,
        });
    }
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin_port));
    let name = node.to_string();
    let st = crate::topo::netns::run_in(&plan.netns(node), move || {
        Ok(crate::agent::admin::fetch_stats(admin))
    })?;
    Ok(st.unwrap_or(Stats {
        node: name,
        source: None,
        frontend: None,
        vrrp: None,
        backends: vec![],
    }))
}

fn state_str(s: PortState) -> &'static str {
    match s {
        PortState::Disabled => "disabled",
        PortState::Listening => "listening",
        PortState::Learning => "learning",
        PortState::Forwarding => "forwarding",
        PortState::Blocking => "blocking",
    }
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Root => "root",
        Role::Designated => "designated",
        Role::Alternate => "alternate",
        Role::Backup => "backup",
        Role::Disabled => "disabled",
    }
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "lab {}", s.lab);
    let _ = writeln!(o, "\nNODES");
    for n in &s.nodes {
        let kind = format!("{:?}", n.kind).to_lowercase();
        let host = n
            .host
            .as_deref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        let addrs: Vec<String> = n
            .addresses
            .iter()
            .map(|(i, a)| format!("{i} {a}"))
            .collect();
        let _ = writeln!(
            o,
            "  {:<8} {:<9}{:<7} {}{}",
            n.name,
            kind,
            host,
            if n.present { "" } else { "MISSING " },
            addrs.join(", ")
        );
    }
    for l in &s.lans {
        let mark = if l.roots == l.expected_roots {
            "as expected"
        } else {
            "EXPECTED "
        };
        let exp = if l.roots == l.expected_roots {
            String::new()
        } else {
            l.expected_roots.join(", ")
        };
        let _ = writeln!(
            o,
            "\nLAN {} ({}): root bridge {} ({mark}{exp})",
            l.name,
            l.subnet,
            if l.roots.is_empty() {
                "-".into()
            } else {
                l.roots.join(", ")
            }
        );
    }
    let _ = writeln!(o);
    // Ports grouped by bridge (STP bridges first show their theory check).
    let _ = writeln!(
        o,
        "PORTS\n  {:<8} {:<3} {:<11} {:<18} {:<10} {:<10} {:>5}  THEORY",
        "BRIDGE", "NO", "PORT", "PEER", "STATE", "ROLE", "COST"
    );
    for p in &s.ports {
        let theory = if !p.stp {
            "(no STP)".to_string()
        } else if p.ok {
            "ok".to_string()
        } else {
            format!(
                "!! expected {} {}",
                p.expected_state.map(state_str).unwrap_or("?"),
                p.expected_role.map(role_str).unwrap_or("?")
            )
        };
        let _ = writeln!(
            o,
            "  {:<8} {:<3} {:<11} {:<18} {:<10} {:<10} {:>5}  {}",
            p.bridge,
            p.port_no,
            p.port,
            p.peer,
            state_str(p.state),
            role_str(p.role),
            p.cost,
            theory
        );
    }
    if s.mismatches.is_empty() {
        let _ = writeln!(o, "  spanning tree matches 802.1D theory on every port");
    } else {
        let _ = writeln!(
            o,
            "  {} port(s) differ from theory (marked !!); STP may still be converging",
            s.mismatches.len()
        );
    }
    if !s.balancers.is_empty() {
        let sources: Vec<&str> = s
            .balancers
            .iter()
            .map(|b| match b.source.as_deref() {
                Some("bpf") => "pinned BPF maps",
                Some(_) => "agent admin port",
                None => "agent not answering",
            })
            .collect();
        let mut sources_u = sources.clone();
        sources_u.dedup();
        let _ = writeln!(
            o,
            "\nBALANCERS (backends as each agent sees them; from {})",
            sources_u.join(", ")
        );
        let _ = writeln!(
            o,
            "  {:<6} {:<8} {:<14} {:<5} {:>3} {:>8} {:>6} {:>6} {:>6}  LAST CHECK",
            "NODE", "BACKEND", "ADDRESS", "STATE", "WT", "REQS", "2xx", "5xx", "FAILS"
        );
        for b in &s.balancers {
            if b.backends.is_empty() {
                let _ = writeln!(o, "  {:<6} agent not answering", b.node);
            }
            for be in &b.backends {
                let check = match (&be.check_ok, &be.check_reason) {
                    (Some(ok), Some(r)) => format!("{} ({r})", if *ok { "ok" } else { "FAIL" }),
                    _ => "none yet".into(),
                };
                let _ = writeln!(
                    o,
                    "  {:<6} {:<8} {:<14} {:<5} {:>3} {:>8} {:>6} {:>6} {:>6}  {}",
                    b.node,
                    be.name,
                    be.address,
                    if be.up { "UP" } else { "DOWN" },
                    be.weight,
                    be.requests,
                    be.responses[1],
                    be.responses[4],
                    be.failures,
                    check
                );
            }
        }
    }
    let vrrps: Vec<_> = s
        .balancers
        .iter()
        .filter_map(|b| b.vrrp.as_ref().map(|v| (&b.node, v)))
        .collect();
    if !vrrps.is_empty() {
        let _ = writeln!(o, "\nVRRP");
        let _ = writeln!(
            o,
            "  {:<6} {:<8} {:>4} {:>5} {:<15} {:>6} {:>6} {:>5}  DROPS",
            "NODE", "STATE", "VRID", "PRIO", "MASTER", "SENT", "RCVD", "TRANS"
        );
        for (node, v) in vrrps {
            let drops: Vec<String> = v
                .drops
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{r}:{n}"))
                .collect();
            let prio = if v.effective_priority != v.priority {
                format!("{}({})", v.effective_priority, v.priority)
            } else {
                v.priority.to_string()
            };
            let _ = writeln!(
                o,
                "  {:<6} {:<8} {:>4} {:>5} {:<15} {:>6} {:>6} {:>5}  {}",
                node,
                v.state,
                v.vrid,
                prio,
                v.master
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into()),
                v.adverts_sent,
                v.adverts_received,
                v.transitions,
                if drops.is_empty() {
                    "none".into()
                } else {
                    drops.join(" ")
                }
            );
        }
    }
    let _ = writeln!(o, "\nDAEMONS");
    if s.daemons.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for d in &s.daemons {
        let _ = writeln!(
            o,
            "  {:<8} {:<8} pid {:<7} {}",
            d.node,
            d.daemon,
            d.pid,
            if d.running { "running" } else { "NOT RUNNING" }
        );
    }
    let _ = writeln!(
        o,
        "\nBPF COUNTERS (TC ingress observer, pinned under {})",
        state::pin_dir(&s.lab).display()
    );
    let _ = writeln!(
        o,
        "  {:<8} {:<11} {:>8} {:>5} {:>5} {:>5} {:>5} {:>7} {:>5}  VRRP BY VRID",
        "NODE", "IFACE", "BPDU", "TCN", "TC", "RSTP", "BAD", "VRRP", "BAD"
    );
    for c in &s.counters {
        let by: Vec<String> = c
            .vrrp_by_vrid
            .iter()
            .map(|(v, n)| format!("{v}:{n}"))
            .collect();
        let _ = writeln!(
            o,
            "  {:<8} {:<11} {:>8} {:>5} {:>5} {:>5} {:>5} {:>7} {:>5}  {}",
            c.node,
            c.iface,
            c.counts.bpdu_config,
            c.counts.bpdu_tcn,
            c.counts.bpdu_tc,
            c.counts.bpdu_rstp,
            c.counts.bpdu_bad,
            c.counts.vrrp,
            c.counts.vrrp_bad,
            by.join(" ")
        );
    }
    for x in &s.vxlan {
        let mode = match x.mode {
            crate::config::VxlanMode::Ebpf => "BPF VTEP, VX_STATS",
            crate::config::VxlanMode::Kernel => "kernel vxlan device",
        };
        let _ = writeln!(o, "\nVXLAN {} ({mode}, {})", x.host, x.device);
        let nonzero: Vec<String> = x
            .counters
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for chunk in nonzero.chunks(6) {
            let _ = writeln!(o, "  {}", chunk.join("  "));
        }
        for f in &x.fdb {
            let _ = writeln!(
                o,
                "  learned {} behind {} ({:.0} s ago)",
                f.mac, f.vtep, f.age_s
            );
        }
    }
    o
}
