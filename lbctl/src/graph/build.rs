//! Pure: the config and, when the lab runs, its status → the picture's [`Model`]. One
//! function per part of the picture (host clusters, bridges, leaves, links and interfaces,
//! the tunnel, VRRP masters and the VIP), each reading the live state through [`Live`].

use super::model::{node_id, Cluster, EdgeKind, GEdge, GNode, Lan, Model, NodeKind, PortEnd};
use crate::config::{Config, Role};
use crate::status::{BalancerReport, Status, VrrpState};
use crate::stp::theory::PortState;
use crate::topo::plan::{Kind, Plan};
use std::collections::{BTreeMap, BTreeSet};

/// The live status as the picture asks it, with the config-only answers (everything
/// present and up, no states) when the lab does not run.
#[derive(Clone, Copy)]
struct Live<'a> {
    status: Option<&'a Status>,
}

impl<'a> Live<'a> {
    fn is_live(self) -> bool {
        self.status.is_some()
    }

    fn port_state(self, bridge: &str, port: &str) -> Option<PortState> {
        self.status?
            .ports
            .iter()
            .find(|p| p.bridge == bridge && p.port == port)
            .map(|p| p.state)
    }

    /// The RSTP role of a port on a bridge `lbctl stpd` runs.
    fn rstp_role(self, bridge: &str, port: &str) -> Option<String> {
        let p = self
            .status?
            .ports
            .iter()
            .find(|p| p.bridge == bridge && p.port == port)?;
        p.rstp
            .as_ref()
            .map(|r| format!("{:?}", r.role).to_lowercase())
    }

    fn present(self, node: &str) -> bool {
        match self.status {
            None => true,
            Some(s) => s.nodes.iter().any(|n| n.name == node && n.present),
        }
    }

    fn bridge_up(self, bridge: &str) -> bool {
        match self.status {
            None => true,
            // A bridge set down has all its ports disabled; one with no ports counts as up.
            Some(s) => {
                let ports: Vec<_> = s.ports.iter().filter(|p| p.bridge == bridge).collect();
                ports.is_empty() || ports.iter().any(|p| p.state != PortState::Disabled)
            }
        }
    }

    /// Root bridges by LAN, as the kernel reports them.
    fn roots(self) -> BTreeMap<String, Vec<String>> {
        self.status
            .map(|s| {
                s.lans
                    .iter()
                    .map(|l| (l.name.clone(), l.roots.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A balancer's report, if its agent answered with something.
    fn stats_of(self, bal: &str) -> Option<&'a BalancerReport> {
        self.status?
            .balancers
            .iter()
            .find(|b| b.node == bal && (b.vrrp.is_some() || !b.backends.is_empty()))
    }
}

impl GNode {
    /// A node with nothing to flag.
    fn plain(id: String, name: String, kind: NodeKind, lines: Vec<String>) -> GNode {
        GNode {
            id,
            name,
            kind,
            host: None,
            lan: None,
            lines,
            down: false,
            root: false,
            vrrp: None,
            master: false,
            isolated_master: false,
            health: vec![],
        }
    }
}

/// The model of `cfg`, annotated with `status` when the lab runs.
pub fn model(cfg: &Config, status: Option<&Status>) -> Model {
    let plan = Plan::new(cfg);
    let live = Live { status };
    let roots = live.roots();
    let mut hosts: Vec<Cluster> = cfg
        .hosts
        .iter()
        .map(|h| Cluster {
            name: h.name.clone(),
            down: !live.present(&h.name),
            members: vec![],
        })
        .collect();
    let mut nodes = bridge_nodes(cfg, &plan, live, &roots);
    nodes.extend(leaf_nodes(cfg, live));
    for n in &nodes {
        if let Some(c) = hosts.iter_mut().find(|c| n.host.as_ref() == Some(&c.name)) {
            c.members.push(n.id.clone());
        }
    }
    let mut edges = wire_edges(cfg, &plan, live);
    tunnel(cfg, &plan, live, &mut nodes, &mut edges);
    let (masters, isolated) = mark_masters(cfg, &edges, &mut nodes, live.is_live());
    vip(cfg, &masters, &isolated, &mut nodes, &mut edges);
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
        live: live.is_live(),
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

/// Every bridge, switches' and hosts', with its LAN, STP priority, address and whether it
/// is down or the root of its LAN.
fn bridge_nodes(
    cfg: &Config,
    plan: &Plan,
    live: Live,
    roots: &BTreeMap<String, Vec<String>>,
) -> Vec<GNode> {
    let is_root = |b: &str| roots.values().any(|v| v.iter().any(|r| r == b));
    plan.bridges
        .iter()
        .map(|b| {
            let node_kind = plan.node(&b.node).map(|n| n.kind);
            let mut lines = Vec::new();
            let subnet = cfg
                .lan(&b.lan)
                .map(|l| l.subnet.to_string())
                .unwrap_or_default();
            lines.push(format!("{} LAN {subnet}", b.lan));
            if b.rstp {
                lines.push(format!("RSTP prio {} (lbctl stpd)", b.priority));
            } else if b.stp {
                lines.push(format!("STP prio {}", b.priority));
            } else {
                lines.push("no STP".into());
            }
            if let Some(a) = b.address {
                lines.push(a.addr().to_string());
            }
            let down = !live.present(&b.node) || !live.bridge_up(&b.name);
            if down && live.is_live() {
                lines.push("DOWN".into());
            }
            let root = b.stp && is_root(&b.name) && !down;
            if root {
                lines.insert(0, "ROOT BRIDGE".into());
            }
            GNode {
                host: (node_kind == Some(Kind::Host)).then(|| b.node.clone()),
                lan: Some(b.lan.clone()),
                down,
                root,
                ..GNode::plain(node_id(&b.name), b.name.clone(), NodeKind::Bridge, lines)
            }
        })
        .collect()
}

/// Every balancer, server and user, with its addresses; a balancer with its VRRP state, a
/// server with its health as each balancer sees it.
fn leaf_nodes(cfg: &Config, live: Live) -> Vec<GNode> {
    let balancers: Vec<String> = cfg
        .service
        .as_ref()
        .map(|s| s.balancers.clone())
        .unwrap_or_default();
    cfg.nodes
        .iter()
        .map(|n| {
            let mut lines: Vec<String> = n
                .ifaces
                .iter()
                .filter_map(|i| i.address.map(|a| a.addr().to_string()))
                .collect();
            let kind = match n.role {
                Role::Balancer => NodeKind::Balancer,
                Role::Server => NodeKind::Server,
                Role::User => NodeKind::User,
            };
            let mut vrrp = None;
            let mut health = vec![];
            match kind {
                NodeKind::Balancer => {
                    if let Some(st) = live.stats_of(&n.name) {
                        if let Some(v) = &st.vrrp {
                            lines.push(format!("VRRP {} prio {}", v.state, v.effective_priority));
                            vrrp = Some(v.state);
                        }
                    } else if live.is_live() && balancers.contains(&n.name) {
                        lines.push("agent not answering".into());
                    }
                }
                NodeKind::Server => {
                    health = server_health(&n.name, &balancers, live);
                    if !health.is_empty() {
                        lines.push(health_line(&health));
                    }
                }
                _ => {}
            }
            GNode {
                host: n.host.clone(),
                down: !live.present(&n.name),
                vrrp,
                health,
                ..GNode::plain(node_id(&n.name), n.name.clone(), kind, lines)
            }
        })
        .collect()
}

/// A server's health as each balancer sees it (None: that agent did not answer or does not
/// know it); empty without live state.
fn server_health(server: &str, balancers: &[String], live: Live) -> Vec<(String, Option<bool>)> {
    if !live.is_live() {
        return vec![];
    }
    balancers
        .iter()
        .map(|bal| {
            let up = live.stats_of(bal).and_then(|st| {
                st.backends
                    .iter()
                    .find(|be| be.name == server)
                    .map(|be| be.up)
            });
            (bal.clone(), up)
        })
        .collect()
}

/// "bal1: UP  bal2: DOWN".
fn health_line(health: &[(String, Option<bool>)]) -> String {
    health
        .iter()
        .map(|(b, up)| {
            let s = match up {
                Some(true) => "UP",
                Some(false) => "DOWN",
                None => "?",
            };
            format!("{b}: {s}")
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// One end of an edge on bridge port `bridge`/`port`, with its number and live state.
fn port_end(plan: &Plan, live: Live, bridge: &str, port: &str) -> PortEnd {
    let port_no = plan
        .bridge(bridge)
        .and_then(|b| b.ports.iter().find(|p| p.name == port))
        .map(|p| p.port_no)
        .unwrap_or(0);
    PortEnd {
        bridge: bridge.into(),
        port: port.into(),
        port_no,
        state: live.port_state(bridge, port),
        rstp_role: live.rstp_role(bridge, port),
    }
}

fn disabled(p: &PortEnd) -> bool {
    p.state == Some(PortState::Disabled)
}

/// The cables between bridges (config order), then every node interface.
fn wire_edges(cfg: &Config, plan: &Plan, live: Live) -> Vec<GEdge> {
    let lan_of = |bridge: &str| cfg.bridge(bridge).map(|(_, br)| br.lan.clone());
    let mut edges = Vec::new();
    let mut seen_ids = BTreeSet::new();
    for l in &cfg.links {
        let mut id = format!("link-{}-{}", l.a, l.b);
        // Parallel cables between the same bridges get their port names in the id.
        if !seen_ids.insert(id.clone()) {
            id = format!("link-{}-{}-{}", l.a, l.b, l.a_name());
        }
        let a = port_end(plan, live, &l.a, &l.a_name());
        let b = port_end(plan, live, &l.b, &l.b_name());
        edges.push(GEdge {
            id,
            kind: EdgeKind::Link,
            a: node_id(&l.a),
            b: node_id(&l.b),
            down: disabled(&a) || disabled(&b),
            a_port: Some(a),
            b_port: Some(b),
            lan: lan_of(&l.a),
            label: None,
        });
    }
    for n in &cfg.nodes {
        for f in &n.ifaces {
            let p = port_end(plan, live, &f.bridge, &f.port_name_for(&n.name));
            edges.push(GEdge {
                id: format!("iface-{}-{}", n.name, f.name),
                kind: EdgeKind::Iface,
                a: node_id(&n.name),
                b: node_id(&f.bridge),
                down: disabled(&p) || !live.present(&n.name),
                a_port: None,
                b_port: Some(p),
                lan: lan_of(&f.bridge),
                label: Some(f.name.clone()),
            });
        }
    }
    edges
}

/// The VXLAN segment: one edge between two hosts' bridges, or past two hosts a hub node
/// with one edge per endpoint (a full mesh is unreadable).
fn tunnel(cfg: &Config, plan: &Plan, live: Live, nodes: &mut Vec<GNode>, edges: &mut Vec<GEdge>) {
    let Some(v) = &cfg.vxlan else {
        return;
    };
    // A tunnel end is down when the bridge carrying its underlay address is.
    let underlay_down = |host: &str, local: std::net::Ipv4Addr| {
        plan.bridges_in(host)
            .filter(|b| b.address.is_some_and(|a| a.addr() == local))
            .any(|b| !live.bridge_up(&b.name))
            || !live.present(host)
    };
    let lan_of = |bridge: &str| cfg.bridge(bridge).map(|(_, br)| br.lan.clone());
    let label = format!("VXLAN VNI {} udp/{}", v.vni, v.port);
    if v.endpoints.len() == 2 {
        let (x, y) = (&v.endpoints[0], &v.endpoints[1]);
        let pa = port_end(plan, live, &x.bridge, &v.device);
        let pb = port_end(plan, live, &y.bridge, &v.device);
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
            lan: lan_of(&x.bridge),
            label: Some(format!("{label}\n{} - {}", x.local, y.local)),
        });
    } else if v.endpoints.len() > 2 {
        nodes.push(GNode::plain(
            "node-vxlan".into(),
            "VXLAN".into(),
            NodeKind::Tunnel,
            vec![format!("VNI {} udp/{}", v.vni, v.port)],
        ));
        for x in &v.endpoints {
            let p = port_end(plan, live, &x.bridge, &v.device);
            edges.push(GEdge {
                id: format!("vxlan-{}", x.host),
                kind: EdgeKind::Vxlan,
                a: node_id(&x.bridge),
                b: "node-vxlan".into(),
                down: disabled(&p) || underlay_down(&x.host, x.local),
                a_port: Some(p),
                b_port: None,
                lan: lan_of(&x.bridge),
                label: Some(x.local.to_string()),
            });
        }
    }
}

/// VRRP: a master is drawn holding the VIP when some user reaches it over ports the
/// kernel forwards on; a master no user reaches (e.g. its bridge is down) is drawn as
/// isolated. Returns (masters, isolated masters).
fn mark_masters(
    cfg: &Config,
    edges: &[GEdge],
    nodes: &mut [GNode],
    live: bool,
) -> (Vec<String>, Vec<String>) {
    let reach = reachable_from_users(cfg, edges, nodes, live);
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
    (masters, isolated)
}

/// The service's VIP, with an edge to each master claiming it.
fn vip(
    cfg: &Config,
    masters: &[String],
    isolated: &[String],
    nodes: &mut Vec<GNode>,
    edges: &mut Vec<GEdge>,
) {
    let Some(svc) = &cfg.service else {
        return;
    };
    nodes.push(GNode {
        down: masters.is_empty(),
        ..GNode::plain(
            "node-vip".into(),
            "VIP".into(),
            NodeKind::Vip,
            vec![format!("{}:{}", svc.vip, svc.port)],
        )
    });
    for m in masters.iter().chain(isolated) {
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
