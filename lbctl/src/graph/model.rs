//! The picture's model: every node, bridge and link of the config, annotated with what
//! the running lab reports (`lbctl status`): STP port states and roots, daemons' VRRP
//! states, each balancer's view of each backend. Pure: built from the plan and a status
//! document, so it is unit-tested without a lab.

use crate::config::{Config, Role};
use crate::status::{Status, VrrpState};
use crate::stp::theory::PortState;
use crate::topo::plan::{Kind, Plan};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What a drawn node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A bridge: a switch's or one of a host's.
    Bridge,
    Balancer,
    Server,
    User,
    /// The service's virtual IP.
    Vip,
    /// The VXLAN segment, drawn as a hub when it joins more than two hosts.
    Tunnel,
}

#[derive(Debug, Clone, Serialize)]
pub struct GNode {
    /// Stable id in the SVG: `node-<name>` (`node-vip` for the VIP).
    pub id: String,
    pub name: String,
    pub kind: NodeKind,
    /// The host cluster it is drawn in, if any.
    pub host: Option<String>,
    /// The LAN of a bridge.
    pub lan: Option<String>,
    /// Text lines under the name (addresses, states).
    pub lines: Vec<String>,
    /// Absent namespace or bridge set down.
    pub down: bool,
    /// Root bridge of its LAN (as the kernel reports).
    pub root: bool,
    /// VRRP state the balancer's agent reports.
    pub vrrp: Option<VrrpState>,
    /// A VRRP master that users can reach (holds the VIP for them).
    pub master: bool,
    /// A VRRP master that users cannot reach (its side of the LAN is cut off).
    pub isolated_master: bool,
    /// For a server: its health as each balancer sees it (balancer, up), balancer order;
    /// None when that balancer's agent did not answer.
    pub health: Vec<(String, Option<bool>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// A cable between two bridges.
    Link,
    /// A node's interface plugged into a bridge.
    Iface,
    /// The VXLAN tunnel between two hosts' bridges.
    Vxlan,
    /// The VIP held by a master.
    Vip,
}

/// One end of an edge that is a bridge port.
#[derive(Debug, Clone, Serialize)]
pub struct PortEnd {
    pub bridge: String,
    pub port: String,
    pub port_no: u16,
    /// Kernel state (None without a live lab, or when the port is missing).
    pub state: Option<PortState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GEdge {
    /// Stable id in the SVG: `link-<a>-<b>`, `iface-<node>-<iface>`, `vxlan-<a>-<b>`,
    /// `vip-<balancer>`.
    pub id: String,
    pub kind: EdgeKind,
    /// Node ids.
    pub a: String,
    pub b: String,
    pub a_port: Option<PortEnd>,
    pub b_port: Option<PortEnd>,
    pub lan: Option<String>,
    pub label: Option<String>,
    /// A port at either end is disabled, or an end node is down.
    pub down: bool,
}

impl GEdge {
    /// Ends of this edge whose port STP is blocking, as "bridge/port".
    pub fn blocked_ports(&self) -> Vec<String> {
        [&self.a_port, &self.b_port]
            .into_iter()
            .flatten()
            .filter(|p| p.state == Some(PortState::Blocking))
            .map(|p| format!("{}/{}", p.bridge, p.port))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    pub down: bool,
    /// Node ids inside.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lan {
    pub name: String,
    pub subnet: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub lab: String,
    /// Whether live state was available (else: the config alone).
    pub live: bool,
    pub lans: Vec<Lan>,
    pub hosts: Vec<Cluster>,
    pub nodes: Vec<GNode>,
    pub edges: Vec<GEdge>,
    /// Root bridges by LAN, from the kernel.
    pub roots: BTreeMap<String, Vec<String>>,
    /// Every STP-blocked port, "bridge/port", sorted.
    pub blocked: Vec<String>,
    /// Balancers drawn as the master holding the VIP.
    pub masters: Vec<String>,
    /// Masters cut off from every user.
    pub isolated_masters: Vec<String>,
    /// Kernel state of every bridge port: (bridge, port, state), for change tracking.
    pub ports: Vec<(String, String, PortState)>,
}

pub fn node_id(name: &str) -> String {
    format!("node-{name}")
}

impl Model {
    pub fn node(&self, id: &str) -> Option<&GNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Builds the model from the config and, when the lab runs, its status.
    pub fn build(cfg: &Config, status: Option<&Status>) -> Model {
        let plan = Plan::new(cfg);
        let port_state = |bridge: &str, port: &str| -> Option<PortState> {
            status?
                .ports
                .iter()
                .find(|p| p.bridge == bridge && p.port == port)
                .map(|p| p.state)
        };
        let present = |node: &str| -> bool {
            match status {
                None => true,
                Some(s) => s.nodes.iter().any(|n| n.name == node && n.present),
            }
        };
        let bridge_up = |bridge: &str| -> bool {
            match status {
                None => true,
                // A bridge set down has all its ports disabled; one with no ports counts as up.
                Some(s) => {
                    let ports: Vec<_> = s.ports.iter().filter(|p| p.bridge == bridge).collect();
                    ports.is_empty() || ports.iter().any(|p| p.state != PortState::Disabled)
                }
            }
        };
        let roots: BTreeMap<String, Vec<String>> = status
            .map(|s| {
                s.lans
                    .iter()
                    .map(|l| (l.name.clone(), l.roots.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let is_root = |b: &str| roots.values().any(|v| v.iter().any(|r| r == b));
        let addrs = |node: &str| -> Vec<String> {
            cfg.node(node)
                .map(|n| {
                    n.ifaces
                        .iter()
                        .filter_map(|i| i.address.map(|a| a.addr().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let stats_of = |bal: &str| {
            status.and_then(|s| {
                s.balancers
                    .iter()
                    .find(|b| b.node == bal && (b.vrrp.is_some() || !b.backends.is_empty()))
            })
        };
        let balancers: Vec<String> = cfg
            .service
            .as_ref()
            .map(|s| s.balancers.clone())
            .unwrap_or_default();

        let mut nodes = Vec::new();
        let mut hosts: Vec<Cluster> = cfg
            .hosts
            .iter()
            .map(|h| Cluster {
                name: h.name.clone(),
                down: !present(&h.name),
                members: vec![],
            })
            .collect();
        let mut add_to_host = |host: &Option<String>, id: &str| {
            if let Some(h) = host {
                if let Some(c) = hosts.iter_mut().find(|c| &c.name == h) {
                    c.members.push(id.to_string());
                }
            }
        };
        // Bridges: switches' and hosts'.
        for b in &plan.bridges {
            let node_kind = plan.node(&b.node).map(|n| n.kind);
            let host = (node_kind == Some(Kind::Host)).then(|| b.node.clone());
            let id = node_id(&b.name);
            add_to_host(&host, &id);
            let mut lines = Vec::new();
            let subnet = cfg
                .lan(&b.lan)
                .map(|l| l.subnet.to_string())
                .unwrap_or_default();
            lines.push(format!("{} LAN {subnet}", b.lan));
            if b.stp {
                lines.push(format!("STP prio {}", b.priority));
            } else {
                lines.push("no STP".into());
            }
            if let Some(a) = b.address {
                lines.push(a.addr().to_string());
            }
            let down = !present(&b.node) || !bridge_up(&b.name);
            if down && status.is_some() {
                lines.push("DOWN".into());
            }
            let root = b.stp && is_root(&b.name) && !down;
            if root {
                lines.insert(0, "ROOT BRIDGE".into());
            }
            nodes.push(GNode {
                id,
                name: b.name.clone(),
                kind: NodeKind::Bridge,
                host,
                lan: Some(b.lan.clone()),
                lines,
                down,
                root,
                vrrp: None,
                master: false,
                isolated_master: false,
                health: vec![],
            });
        }
        // Leaves.
        for n in &cfg.nodes {
            let id = node_id(&n.name);
            add_to_host(&n.host, &id);
            let mut lines = addrs(&n.name);
            let kind = match n.role {
                Role::Balancer => NodeKind::Balancer,
                Role::Server => NodeKind::Server,
                Role::User => NodeKind::User,
            };
            let mut vrrp = None;
            let mut health = vec![];
            match kind {
                NodeKind::Balancer => {
                    if let Some(st) = stats_of(&n.name) {
                        if let Some(v) = &st.vrrp {
                            lines.push(format!("VRRP {} prio {}", v.state, v.effective_priority));
                            vrrp = Some(v.state);
                        }
                    } else if status.is_some() && balancers.contains(&n.name) {
                        lines.push("agent not answering".into());
                    }
                }
                NodeKind::Server => {
                    for bal in &balancers {
                        let up = stats_of(bal).and_then(|st| {
                            st.backends
                                .iter()
                                .find(|be| be.name == n.name)
                                .map(|be| be.up)
                        });
                        if status.is_some() {
                            health.push((bal.clone(), up));
                        }
                    }
                    if !health.is_empty() {
                        lines.push(
                            health
                                .iter()
                                .map(|(b, up)| {
                                    format!(
                                        "{b}: {}",
                                        match up {
                                            Some(true) => "UP",
                                            Some(false) => "DOWN",
                                            None => "?",
                                        }
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("  "),
                        );
                    }
                }
                _ => {}
            }
            nodes.push(GNode {
                id,
                name: n.name.clone(),
                kind,
                host: n.host.clone(),
                lan: None,
                lines,
                down: !present(&n.name),
                root: false,
                vrrp,
                master: false,
                isolated_master: false,
                health,
            });
        }

        // Edges: inter-bridge links (config order), node interfaces, tunnels.
        let end = |bridge: &str, port: &str| -> PortEnd {
            let port_no = plan
                .bridge(bridge)
                .and_then(|b| b.ports.iter().find(|p| p.name == port))
                .map(|p| p.port_no)
                .unwrap_or(0);
            PortEnd {
                bridge: bridge.into(),
                port: port.into(),
                port_no,
                state: port_state(bridge, port),
            }
        };
        let disabled = |p: &PortEnd| p.state == Some(PortState::Disabled);
        let mut edges = Vec::new();
        let mut seen_ids = BTreeSet::new();
        for l in &cfg.links {
            let mut id = format!("link-{}-{}", l.a, l.b);
            // Parallel cables between the same bridges get their port names in the id.
            if !seen_ids.insert(id.clone()) {
                id = format!("link-{}-{}-{}", l.a, l.b, l.a_name());
            }
            let (a, b) = (end(&l.a, &l.a_name()), end(&l.b, &l.b_name()));
            let lan = cfg.bridge(&l.a).map(|(_, br)| br.lan.clone());
            edges.push(GEdge {
                id,
                kind: EdgeKind::Link,
                a: node_id(&l.a),
                b: node_id(&l.b),
                down: disabled(&a) || disabled(&b),
                a_port: Some(a),
                b_port: Some(b),
                lan,
                label: None,
            });
        }
        for n in &cfg.nodes {
            for f in &n.ifaces {
                let p = end(&f.bridge, &f.port_name_for(&n.name));
                let lan = cfg.bridge(&f.bridge).map(|(_, br)| br.lan.clone());
                edges.push(GEdge {
                    id: format!("iface-{}-{}", n.name, f.name),
                    kind: EdgeKind::Iface,
                    a: node_id(&n.name),
                    b: node_id(&f.bridge),
                    down: disabled(&p) || !present(&n.name),
                    a_port: None,
                    b_port: Some(p),
                    lan,
                    label: Some(f.name.clone()),
                });
            }
        }
        // A tunnel end is down when the bridge carrying its underlay address is.
        let underlay_down = |host: &str, local: std::net::Ipv4Addr| {
            plan.bridges_in(host)
                .filter(|b| b.address.is_some_and(|a| a.addr() == local))
                .any(|b| !bridge_up(&b.name))
                || !present(host)
        };
        if let Some(v) = &cfg.vxlan {
            let label = format!("VXLAN VNI {} udp/{}", v.vni, v.port);
            if v.endpoints.len() == 2 {
                let (x, y) = (&v.endpoints[0], &v.endpoints[1]);
                let (pa, pb) = (end(&x.bridge, &v.device), end(&y.bridge, &v.device));
                edges.push(GEdge {
                    id: format!("vxlan-{}-{}", x.host, y.host),
                    kind: EdgeKind::Vxlan,
                    a: node_id(&x.bridge),
                    b: node_id(&y.bridge),
                    down: disabled(&pa)
                        || disabled(&pb)
                        || underlay_down(&x.host, x.local)
                        || underlay_down(&y.host, y.local),
                    a_port: Some(pa),
                    b_port: Some(pb),
                    lan: cfg.bridge(&x.bridge).map(|(_, br)| br.lan.clone()),
                    label: Some(format!("{label}\n{} - {}", x.local, y.local)),
                });
            } else if v.endpoints.len() > 2 {
                // A full mesh of tunnels is unreadable past two hosts: one hub node for
                // the segment, one edge per host's tunnel endpoint.
                nodes.push(GNode {
                    id: "node-vxlan".into(),
                    name: "VXLAN".into(),
                    kind: NodeKind::Tunnel,
                    host: None,
                    lan: None,
                    lines: vec![format!("VNI {} udp/{}", v.vni, v.port)],
                    down: false,
                    root: false,
                    vrrp: None,
                    master: false,
                    isolated_master: false,
                    health: vec![],
                });
                for x in &v.endpoints {
                    let p = end(&x.bridge, &v.device);
                    edges.push(GEdge {
                        id: format!("vxlan-{}", x.host),
                        kind: EdgeKind::Vxlan,
                        a: node_id(&x.bridge),
                        b: "node-vxlan".into(),
                        down: disabled(&p) || underlay_down(&x.host, x.local),
                        a_port: Some(p),
                        b_port: None,
                        lan: cfg.bridge(&x.bridge).map(|(_, br)| br.lan.clone()),
                        label: Some(x.local.to_string()),
                    });
                }
            }
        }

        // VRRP: a master is drawn holding the VIP when some user reaches it over ports
        // the kernel forwards on; a master no user reaches (e.g. its bridge is down) is
        // drawn as isolated.
        let reach = reachable_from_users(cfg, &edges, &nodes, status.is_some());
        let mut masters = Vec::new();
        let mut isolated = Vec::new();
        for n in nodes.iter_mut().filter(|n| n.kind == NodeKind::Balancer) {
            if n.vrrp != Some(VrrpState::Master) || n.down {
                continue;
            }
            if reach.contains(&n.id) {
                n.master = true;
                masters.push(n.name.clone());
            } else {
                n.isolated_master = true;
                n.lines.push("isolated: no user reaches it".into());
                isolated.push(n.name.clone());
            }
        }
        if let Some(svc) = &cfg.service {
            nodes.push(GNode {
                id: "node-vip".into(),
                name: "VIP".into(),
                kind: NodeKind::Vip,
                host: None,
                lan: None,
                lines: vec![format!("{}:{}", svc.vip, svc.port)],
                down: masters.is_empty(),
                root: false,
                vrrp: None,
                master: false,
                isolated_master: false,
                health: vec![],
            });
            for m in masters.iter().chain(&isolated) {
                let isolated = isolated.contains(m);
                edges.push(GEdge {
                    id: format!("vip-{m}"),
                    kind: EdgeKind::Vip,
                    a: "node-vip".into(),
                    b: node_id(m),
                    a_port: None,
                    b_port: None,
                    lan: None,
                    label: Some(if isolated {
                        "claims VIP (isolated)".into()
                    } else {
                        "VRRP master".into()
                    }),
                    down: isolated,
                });
            }
        }

        let mut blocked: Vec<String> = edges.iter().flat_map(|e| e.blocked_ports()).collect();
        blocked.sort();
        blocked.dedup();
        let ports = status
            .map(|s| {
                s.ports
                    .iter()
                    .map(|p| (p.bridge.clone(), p.port.clone(), p.state))
                    .collect()
            })
            .unwrap_or_default();
        Model {
            lab: plan.lab.clone(),
            live: status.is_some(),
            lans: cfg
                .lans
                .iter()
                .map(|l| Lan {
                    name: l.name.clone(),
                    subnet: l.subnet.to_string(),
                })
                .collect(),
            hosts,
            nodes,
            edges,
            roots,
            blocked,
            masters,
            isolated_masters: isolated,
            ports,
        }
    }
}

/// Node ids reachable from any user through bridges, over edges whose ports forward
/// (or, without live state, every node). Without users, every node counts as reachable.
fn reachable_from_users(
    cfg: &Config,
    edges: &[GEdge],
    nodes: &[GNode],
    live: bool,
) -> BTreeSet<String> {
    let users: Vec<String> = cfg
        .nodes
        .iter()
        .filter(|n| n.role == Role::User)
        .map(|n| node_id(&n.name))
        .collect();
    if users.is_empty() || !live {
        return nodes.iter().map(|n| n.id.clone()).collect();
    }
    let node_down = |id: &str| nodes.iter().any(|n| n.id == id && n.down);
    let forwards = |p: &Option<PortEnd>| {
        p.as_ref()
            .map(|p| p.state == Some(PortState::Forwarding))
            .unwrap_or(true)
    };
    let passable = |e: &GEdge| {
        e.kind != EdgeKind::Vip
            && forwards(&e.a_port)
            && forwards(&e.b_port)
            && !node_down(&e.a)
            && !node_down(&e.b)
    };
    let mut seen: BTreeSet<String> = users.iter().filter(|u| !node_down(u)).cloned().collect();
    let mut todo: Vec<String> = seen.iter().cloned().collect();
    // Frames cross bridges only: balancers and servers are proxies and hosts, not
    // routers or bridges, so a leaf reached is not expanded (users are where we start).
    let is_bridge = |id: &str| {
        nodes
            .iter()
            .any(|n| n.id == id && n.kind == NodeKind::Bridge)
    };
    while let Some(x) = todo.pop() {
        if !is_bridge(&x) && !users.contains(&x) {
            continue;
        }
        for e in edges.iter().filter(|e| passable(e)) {
            let other = if e.a == x {
                &e.b
            } else if e.b == x {
                &e.a
            } else {
                continue;
            };
            if seen.insert(other.clone()) {
                todo.push(other.clone());
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{BackendReport, BalancerReport, Source, VrrpReport};
    use crate::status::{LanStatus, NodeStatus, PortStatus};
    use crate::stp::theory::Role;

    fn vrrp(state: &str) -> VrrpReport {
        VrrpReport {
            instance: "vrid12".into(),
            state: VrrpState::from_wire(state),
            priority: 100,
            effective_priority: 100,
            master: None,
            vrid: 12,
            version: 2,
            adverts_sent: 0,
            adverts_received: 0,
            transitions: 1,
            last_change: 0.0,
            drops: Default::default(),
            checksum_forms: Default::default(),
            events: vec![],
        }
    }

    fn backend(name: &str, up: bool) -> BackendReport {
        BackendReport {
            name: name.into(),
            address: String::new(),
            pool: "default".into(),
            weight: 1,
            up,
            active: 0,
            requests: 0,
            responses: [0; 5],
            failures: 0,
            retries: 0,
            redispatches: 0,
            bytes_in: 0,
            bytes_out: 0,
            avg_response_ms: 0.0,
            check_ok: Some(up),
            check_reason: None,
            check_duration_ms: None,
            check_passive: None,
            last_change: 0.0,
            transitions: 0,
            change_reason: None,
        }
    }

    /// A status of the default lab: every port forwarding except `states`' overrides.
    fn status(states: &[(&str, &str, PortState)], bal1: &str, bal2: &str) -> Status {
        let cfg = Config::default_scenario();
        let plan = Plan::new(&cfg);
        let mut ports = Vec::new();
        for b in &plan.bridges {
            for p in &b.ports {
                let state = states
                    .iter()
                    .find(|(x, y, _)| *x == b.name && *y == p.name)
                    .map(|s| s.2)
                    .unwrap_or(PortState::Forwarding);
                ports.push(PortStatus {
                    bridge: b.name.clone(),
                    port: p.name.clone(),
                    port_no: p.port_no,
                    peer: p.peer.clone(),
                    stp: b.stp,
                    state,
                    role: Role::Designated,
                    cost: p.cost,
                    expected_state: None,
                    expected_role: None,
                    designated_bridge: String::new(),
                    ok: true,
                });
            }
        }
        let stats = |node: &str, state: &str, down: &[&str]| BalancerReport {
            node: node.into(),
            source: Some(Source::Bpf),
            frontend: None,
            vrrp: Some(vrrp(state)),
            backends: ["serv1", "serv2", "serv3"]
                .iter()
                .map(|s| backend(s, !down.contains(s)))
                .collect(),
        };
        Status {
            lab: "lab".into(),
            vxlan: vec![],
            nodes: plan
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    kind: n.kind,
                    host: n.host.clone(),
                    netns: n.netns.clone(),
                    present: true,
                    addresses: vec![],
                })
                .collect(),
            lans: vec![LanStatus {
                name: "ext".into(),
                subnet: String::new(),
                roots: vec!["swout2".into()],
                expected_roots: vec![],
            }],
            ports,
            mismatches: vec![],
            daemons: vec![],
            counters: vec![],
            balancers: vec![
                stats("bal1", bal1, &[]),
                stats("bal2", bal2, &["serv1", "serv2"]),
            ],
        }
    }

    /// The whole model and its DOT, config only and live (bal1 master behind a downed
    /// bridge, bal2 master): a golden check that the builder's output stays the same.
    #[test]
    fn model_and_dot_match_their_snapshots() {
        use crate::status::snapshot;
        let cfg = Config::default_scenario();
        let m = Model::build(&cfg, None);
        snapshot::check("src/graph/snapshots/config_only.json", &snapshot::json(&m));
        snapshot::check(
            "src/graph/snapshots/config_only.dot",
            &super::super::dot::to_dot(&m),
        );
        let st = status(
            &[
                ("vswout1", "to-swout1", PortState::Disabled),
                ("vswout1", "to-swout2", PortState::Disabled),
                ("vswout1", "bal1-eth0", PortState::Disabled),
                ("vswout2", "to-swout1", PortState::Blocking),
            ],
            "MASTER",
            "MASTER",
        );
        let m = Model::build(&cfg, Some(&st));
        snapshot::check("src/graph/snapshots/live.json", &snapshot::json(&m));
        snapshot::check(
            "src/graph/snapshots/live.dot",
            &super::super::dot::to_dot(&m),
        );
    }

    #[test]
    fn live_state_marks_blocked_ports_root_master_and_health() {
        let st = status(
            &[
                ("vswout1", "to-swout1", PortState::Blocking),
                ("vswout2", "to-swout1", PortState::Blocking),
            ],
            "MASTER",
            "BACKUP",
        );
        let m = Model::build(&Config::default_scenario(), Some(&st));
        assert_eq!(m.blocked, vec!["vswout1/to-swout1", "vswout2/to-swout1"]);
        let e = m
            .edges
            .iter()
            .find(|e| e.id == "link-vswout1-swout1")
            .unwrap();
        assert_eq!(e.blocked_ports(), vec!["vswout1/to-swout1"]);
        assert!(m.node("node-swout2").unwrap().root);
        assert!(!m.node("node-swout1").unwrap().root);
        assert_eq!(m.masters, vec!["bal1"]);
        assert!(m.edges.iter().any(|e| e.id == "vip-bal1"));
        let s1 = m.node("node-serv1").unwrap();
        assert_eq!(
            s1.health,
            vec![("bal1".into(), Some(true)), ("bal2".into(), Some(false))]
        );
    }

    #[test]
    fn a_master_behind_a_downed_bridge_is_isolated() {
        // vswout1 down: its ports are disabled; bal1 still claims MASTER, bal2 took over.
        let st = status(
            &[
                ("vswout1", "to-swout1", PortState::Disabled),
                ("vswout1", "to-swout2", PortState::Disabled),
                ("vswout1", "bal1-eth0", PortState::Disabled),
                ("vswout2", "to-swout1", PortState::Blocking),
            ],
            "MASTER",
            "MASTER",
        );
        let m = Model::build(&Config::default_scenario(), Some(&st));
        assert_eq!(m.masters, vec!["bal2"]);
        assert_eq!(m.isolated_masters, vec!["bal1"]);
        assert!(m.node("node-vswout1").unwrap().down);
        // The tunnel's underlay (vm1's address on vswout1) is down with it.
        assert!(
            m.edges
                .iter()
                .find(|e| e.id == "vxlan-vm1-vm2")
                .unwrap()
                .down
        );
        // Blocked ports only: disabled ones are down, not cut.
        assert_eq!(m.blocked, vec!["vswout2/to-swout1"]);
    }
}
