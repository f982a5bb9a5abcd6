//! Reads the lab back from the kernel: bridges with their STP state, ports, addresses.
//! Used by `up` (waiting for convergence), `status`, fault injection and the tests.

use super::netns;
use super::nl;
use super::plan::Plan;
use crate::stp::loops;
use crate::stp::theory::{self, BridgeId, KernelBridge, KernelPort, PortState};
use anyhow::Result;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoPortData, LinkAttribute, LinkInfo, LinkMessage, State,
};

/// One bridge port as the kernel sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortView {
    pub kernel: KernelPort,
    pub cost: u32,
    pub priority: u8,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Carrier (the peer end is up too).
    pub carrier: bool,
    pub ifindex: u32,
    /// On a bridge `lbctl stpd` runs: the port as its daemon last published it (`RSTP_PORT`);
    /// `kernel.state` then holds the RSTP state in 802.1D terms (see [`super::rstp_view`]).
    pub rstp: Option<super::rstp_view::RstpPortView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BridgeView {
    pub node: String,
    pub kernel: KernelBridge,
    pub admin_up: bool,
    pub ports: Vec<PortView>,
    /// On a bridge `lbctl stpd` runs: what its daemon reported; `kernel` then holds the
    /// daemon's root and root port (the kernel's own STP is off and knows none).
    pub rstp: Option<super::rstp_view::RstpBridgeView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IfaceView {
    pub name: String,
    pub ifindex: u32,
    pub admin_up: bool,
    pub carrier: bool,
    pub mtu: u32,
    pub addrs: Vec<Ipv4Net>,
    pub master: Option<u32>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    pub node: String,
    pub netns: String,
    pub present: bool,
    pub ifaces: Vec<IfaceView>,
}

fn bid(b: &rtnetlink::packet_route::link::BridgeId) -> BridgeId {
    BridgeId {
        priority: b.priority,
        mac: b.address,
    }
}

fn state_of(s: &rtnetlink::packet_route::link::BridgePortState) -> PortState {
    use rtnetlink::packet_route::link::BridgePortState as S;
    match s {
        S::Disabled => PortState::Disabled,
        S::Listening => PortState::Listening,
        S::Learning => PortState::Learning,
        S::Forwarding => PortState::Forwarding,
        S::Blocking => PortState::Blocking,
        S::Other(v) => PortState::from_kernel(*v).unwrap_or(PortState::Disabled),
        _ => PortState::Disabled,
    }
}

fn carrier(m: &rtnetlink::packet_route::link::LinkMessage) -> bool {
    m.attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::OperState(State::Up)))
        || m.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Carrier(1)))
}

/// Reads every bridge (with ports) and every interface of one namespace.
pub async fn read_node(node: &str, ns: &str) -> Result<(NodeView, Vec<BridgeView>)> {
    if !netns::exists(ns) {
        return Ok((
            NodeView {
                node: node.into(),
                netns: ns.into(),
                present: false,
                ifaces: vec![],
            },
            vec![],
        ));
    }
    let h = netns::netlink(ns).await?;
    let links = nl::dump_links(&h).await?;
    let addrs = nl::dump_addrs(&h).await?;
    Ok(parse_node(node, ns, &links, &addrs))
}

/// Pure: one namespace's link and address dumps → its interfaces and its bridges with
/// their ports (sorted by port number).
fn parse_node(
    node: &str,
    ns: &str,
    links: &[LinkMessage],
    addrs: &[(u32, Ipv4Net)],
) -> (NodeView, Vec<BridgeView>) {
    let mut ifaces = Vec::new();
    let mut bridges: Vec<(u32, BridgeView)> = Vec::new();
    let mut ports: Vec<(u32, PortView)> = Vec::new();
    for m in links {
        let iface = iface_of(m, addrs);
        let infos = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(v) => Some(v),
            _ => None,
        });
        for info in infos.into_iter().flatten() {
            match info {
                LinkInfo::Data(InfoData::Bridge(opts)) => {
                    let view = BridgeView {
                        node: node.into(),
                        kernel: kernel_bridge(&iface.name, opts),
                        admin_up: iface.admin_up,
                        ports: vec![],
                        rstp: None,
                    };
                    bridges.push((iface.ifindex, view));
                }
                // A BPF VTEP's headroom port (down, carries nothing) is no port of the
                // lab's: left out, it never shows as a disabled port to STP theory or status.
                LinkInfo::PortData(InfoPortData::BridgePort(_))
                    if crate::datapath::vxlan::headroom::is_headroom_port(m) => {}
                LinkInfo::PortData(InfoPortData::BridgePort(opts)) => {
                    if let Some(mi) = iface.master {
                        ports.push((mi, port_view(&iface, opts)));
                    }
                }
                _ => {}
            }
        }
        ifaces.push(iface);
    }
    for (mi, p) in ports {
        if let Some((_, b)) = bridges.iter_mut().find(|(i, _)| *i == mi) {
            b.ports.push(p);
        }
    }
    let mut bridges: Vec<BridgeView> = bridges.into_iter().map(|(_, b)| b).collect();
    for b in &mut bridges {
        b.ports.sort_by_key(|p| p.kernel.port_no);
    }
    let view = NodeView {
        node: node.into(),
        netns: ns.into(),
        present: true,
        ifaces,
    };
    (view, bridges)
}

/// One link as an interface, with its addresses.
fn iface_of(m: &LinkMessage, addrs: &[(u32, Ipv4Net)]) -> IfaceView {
    let idx = m.header.index;
    IfaceView {
        name: nl::link_name(m).unwrap_or("?").to_string(),
        ifindex: idx,
        admin_up: nl::is_admin_up(m),
        carrier: carrier(m),
        mtu: m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(v) => Some(*v),
                _ => None,
            })
            .unwrap_or(0),
        addrs: addrs
            .iter()
            .filter(|(i, _)| *i == idx)
            .map(|(_, a)| *a)
            .collect(),
        master: m.attributes.iter().find_map(|a| match a {
            LinkAttribute::Controller(i) => Some(*i),
            _ => None,
        }),
    }
}

/// A bridge's ids, root and STP mode from its `IFLA_BR_*` options.
fn kernel_bridge(name: &str, opts: &[InfoBridge]) -> KernelBridge {
    let zero = BridgeId {
        priority: 0,
        mac: [0; 6],
    };
    let mut kb = KernelBridge {
        name: name.to_string(),
        id: zero,
        root: zero,
        root_port_no: 0,
        root_path_cost: 0,
        stp: false,
    };
    for o in opts {
        match o {
            InfoBridge::BridgeId(b) => kb.id = bid(b),
            InfoBridge::RootId(b) => kb.root = bid(b),
            InfoBridge::RootPort(p) => kb.root_port_no = *p,
            InfoBridge::RootPathCost(c) => kb.root_path_cost = *c,
            InfoBridge::StpState(s) => {
                kb.stp = matches!(s, rtnetlink::packet_route::link::BridgeStpState::KernelStp)
            }
            _ => {}
        }
    }
    kb
}

/// A bridge port's STP view from its `IFLA_BRPORT_*` options.
fn port_view(iface: &IfaceView, opts: &[InfoBridgePort]) -> PortView {
    let zero = BridgeId {
        priority: 0,
        mac: [0; 6],
    };
    let mut kp = KernelPort {
        name: iface.name.clone(),
        port_no: 0,
        port_id: 0,
        state: PortState::Disabled,
        designated_bridge: zero,
        designated_port: 0,
        designated_root: zero,
        designated_cost: 0,
    };
    let mut cost = 0;
    let mut prio = 0;
    for o in opts {
        match o {
            InfoBridgePort::State(s) => kp.state = state_of(s),
            InfoBridgePort::PortNumber(n) => kp.port_no = *n,
            InfoBridgePort::PortId(n) => kp.port_id = *n,
            InfoBridgePort::BridgeId(b) => kp.designated_bridge = bid(b),
            InfoBridgePort::RootId(b) => kp.designated_root = bid(b),
            InfoBridgePort::DesignatedPort(p) => kp.designated_port = *p,
            InfoBridgePort::DesignatedCost(c) => kp.designated_cost = *c as u32,
            InfoBridgePort::Cost(c) => cost = *c,
            InfoBridgePort::Priority(p) => prio = *p as u8,
            _ => {}
        }
    }
    PortView {
        kernel: kp,
        cost,
        priority: prio,
        admin_up: iface.admin_up,
        carrier: iface.carrier,
        ifindex: iface.ifindex,
        rstp: None,
    }
}

/// The whole lab as the kernel sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabView {
    pub nodes: Vec<NodeView>,
    pub bridges: Vec<BridgeView>,
}

impl LabView {
    pub fn bridge(&self, name: &str) -> Option<&BridgeView> {
        self.bridges.iter().find(|b| b.kernel.name == name)
    }
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.node == name)
    }
}

pub async fn read_lab(plan: &Plan) -> Result<LabView> {
    let mut nodes = Vec::new();
    let mut bridges = Vec::new();
    for n in &plan.nodes {
        let (nv, bv) = read_node(&n.name, &n.netns).await?;
        nodes.push(nv);
        // Keep only the bridges the plan knows, in plan order.
        bridges.extend(bv);
    }
    bridges.sort_by_key(|b| {
        plan.bridges
            .iter()
            .position(|p| p.name == b.kernel.name)
            .unwrap_or(usize::MAX)
    });
    for b in plan.rstp_bridges() {
        if let Some(v) = bridges.iter_mut().find(|v| v.kernel.name == b.name) {
            let pin = super::state::node_pin_dir(&plan.lab, &b.node);
            let ports = crate::datapath::stp_gate::read_rstp_ports(&pin).unwrap_or_default();
            let report = crate::stpd::report::read(&plan.lab, &b.name);
            super::rstp_view::overlay(v, &ports, report);
        }
    }
    Ok(LabView { nodes, bridges })
}

/// STP ports still on their way to a stable state (listening or learning).
pub fn transient_ports(v: &LabView) -> Vec<(String, String, PortState)> {
    let mut out = Vec::new();
    for b in &v.bridges {
        if !b.kernel.stp {
            continue;
        }
        for p in &b.ports {
            if matches!(p.kernel.state, PortState::Listening | PortState::Learning) {
                out.push((b.kernel.name.clone(), p.kernel.name.clone(), p.kernel.state));
            }
        }
    }
    out
}

/// The topology theory should be computed on: the plan, with each bridge's and port's
/// up/down taken from the kernel (so injected faults are part of the expectation).
pub fn topology_for(plan: &Plan, view: &LabView) -> theory::Topology {
    let mut t = theory::Topology::default();
    for b in &plan.bridges {
        let kb = view.bridge(&b.name);
        t.bridges.push(theory::BridgeSpec {
            name: b.name.clone(),
            id: BridgeId {
                priority: b.priority,
                mac: b.mac,
            },
            stp: b.stp,
            up: kb.map(|k| k.admin_up).unwrap_or(false),
        });
        for p in &b.ports {
            let kp = kb.and_then(|k| k.ports.iter().find(|x| x.kernel.name == p.name));
            t.ports.push(theory::PortSpec {
                bridge: b.name.clone(),
                name: p.name.clone(),
                port_no: p.port_no,
                priority: p.priority,
                cost: p.cost,
                segment: p.segment.clone(),
                up: kp.map(|k| k.admin_up && k.carrier).unwrap_or(false),
            });
        }
    }
    t
}

/// One port where the kernel disagrees with theory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    pub bridge: String,
    pub port: String,
    pub expected_role: theory::Role,
    pub actual_role: theory::Role,
    pub expected_state: PortState,
    pub actual_state: PortState,
}

/// Compares the kernel's tree with the expected one, port by port (role and state).
pub fn compare(plan: &Plan, view: &LabView) -> (theory::TreeExpectation, Vec<Mismatch>) {
    let exp = theory::expected_tree(&topology_for(plan, view));
    let out = compare_against(&exp, view);
    (exp, out)
}

/// The ports where the kernel's tree differs from `exp` (role and state).
pub fn compare_against(exp: &theory::TreeExpectation, view: &LabView) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for pe in &exp.ports {
        let Some(b) = view.bridge(&pe.bridge) else {
            continue;
        };
        if !b.kernel.stp {
            continue;
        }
        let Some(p) = b.ports.iter().find(|p| p.kernel.name == pe.port) else {
            continue;
        };
        let actual_role = p
            .rstp
            .as_ref()
            .map_or_else(|| theory::derive_role(&b.kernel, &p.kernel), |r| r.role);
        if actual_role != pe.role || p.kernel.state != pe.state {
            out.push(Mismatch {
                bridge: pe.bridge.clone(),
                port: pe.port.clone(),
                expected_role: pe.role,
                actual_role,
                expected_state: pe.state,
                actual_state: p.kernel.state,
            });
        }
    }
    out
}

/// The forwarding loops in the kernel's state: the plan's ports the kernel has forwarding
/// (on a bridge that is up), on the plan's segments. A bridge with STP off forwards on
/// every up port and has no STP state to compare with theory, so a loop through one is
/// found here, not by [`compare`].
pub fn forwarding_loops(plan: &Plan, view: &LabView) -> Vec<Vec<loops::Edge>> {
    let mut edges = Vec::new();
    for b in &plan.bridges {
        let Some(kb) = view.bridge(&b.name).filter(|kb| kb.admin_up) else {
            continue;
        };
        for p in &b.ports {
            let forwarding = kb
                .ports
                .iter()
                .any(|x| x.kernel.name == p.name && x.kernel.state == PortState::Forwarding);
            if forwarding {
                edges.push(loops::Edge {
                    bridge: b.name.clone(),
                    port: p.name.clone(),
                    segment: p.segment.clone(),
                });
            }
        }
    }
    loops::find_loops(&edges)
}

/// Bridges whose kernel STP is not what the config says (a bridge meant to run STP with
/// it off forwards on every port), as text.
pub fn stp_mode_differences(plan: &Plan, view: &LabView) -> Vec<String> {
    let onoff = |b: bool| if b { "on" } else { "off" };
    plan.bridges
        .iter()
        .filter_map(|b| {
            let kb = view.bridge(&b.name)?;
            if let Some(r) = &kb.rstp {
                return r.kernel_stp.then(|| {
                    format!(
                        "bridge {}: RSTP by lbctl stpd in the config, but the kernel's STP is on",
                        b.name
                    )
                });
            }
            (kb.kernel.stp != b.stp).then(|| {
                format!(
                    "bridge {}: STP {} in the config, {} in the kernel",
                    b.name,
                    onoff(b.stp),
                    onoff(kb.kernel.stp)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{BridgeId as NlBridgeId, BridgeStpState, LinkFlags};

    fn link(index: u32, name: &str, up: bool, mut attrs: Vec<LinkAttribute>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        attrs.push(LinkAttribute::IfName(name.into()));
        m.attributes = attrs;
        m
    }

    /// A bridge with STP and one port read from link dumps: the port lands under its
    /// bridge with the kernel's STP fields; addresses land on their interfaces.
    #[test]
    fn a_bridge_and_its_port_parse_from_the_dumps() {
        let id = NlBridgeId {
            priority: 0x8000,
            address: [2, 0, 0, 0, 0, 1],
        };
        let root = NlBridgeId {
            priority: 0x1000,
            address: [2, 0, 0, 0, 0, 9],
        };
        let links = vec![
            link(1, "lo", true, vec![LinkAttribute::Mtu(65536)]),
            link(
                5,
                "br0",
                true,
                vec![LinkAttribute::LinkInfo(vec![LinkInfo::Data(
                    InfoData::Bridge(vec![
                        InfoBridge::BridgeId(id),
                        InfoBridge::RootId(root.clone()),
                        InfoBridge::RootPort(1),
                        InfoBridge::RootPathCost(100),
                        InfoBridge::StpState(BridgeStpState::KernelStp),
                    ]),
                )])],
            ),
            link(
                7,
                "to-sw",
                false,
                vec![
                    LinkAttribute::Controller(5),
                    LinkAttribute::Carrier(1),
                    LinkAttribute::LinkInfo(vec![LinkInfo::PortData(InfoPortData::BridgePort(
                        vec![
                            InfoBridgePort::PortNumber(1),
                            InfoBridgePort::PortId(0x8001),
                            InfoBridgePort::Cost(100),
                            InfoBridgePort::Priority(32),
                            InfoBridgePort::BridgeId(root.clone()),
                            InfoBridgePort::DesignatedPort(0x8002),
                        ],
                    ))]),
                ],
            ),
        ];
        let addrs = vec![(5, "10.0.0.1/24".parse().unwrap())];
        let (nv, bridges) = parse_node("vm1", "ns-vm1", &links, &addrs);
        assert!(nv.present);
        let names: Vec<_> = nv.ifaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "br0", "to-sw"]);
        assert_eq!(nv.ifaces[0].mtu, 65536);
        assert_eq!(
            nv.ifaces[1].addrs,
            addrs.iter().map(|a| a.1).collect::<Vec<_>>()
        );
        assert_eq!(nv.ifaces[2].master, Some(5));
        assert_eq!(bridges.len(), 1);
        let b = &bridges[0];
        assert!(b.kernel.stp && b.admin_up);
        assert_eq!(b.kernel.root, bid(&root));
        assert_eq!(b.kernel.root_port_no, 1);
        let p = &b.ports[0];
        assert_eq!((p.kernel.port_no, p.cost, p.priority), (1, 100, 32));
        assert_eq!(p.kernel.designated_bridge, bid(&root));
        assert!(!p.admin_up && p.carrier);
        // The kernel leaves out an unset state attribute: disabled.
        assert_eq!(p.kernel.state, PortState::Disabled);
        assert_eq!(
            theory::derive_role(&b.kernel, &p.kernel),
            theory::Role::Disabled
        );
    }

    /// A BPF VTEP's headroom port (a down vxlan device with the headroom alias) is an
    /// interface of the host but no port of its bridge: nothing reads it as a disabled port.
    #[test]
    fn the_headroom_port_is_left_out_of_the_bridge() {
        use crate::datapath::vxlan::headroom::ALIAS;
        let bridge = link(
            5,
            "vswin1",
            true,
            vec![LinkAttribute::LinkInfo(vec![LinkInfo::Data(
                InfoData::Bridge(vec![]),
            )])],
        );
        let port = |index, name: &str, alias: Option<&str>| {
            let mut attrs = vec![
                LinkAttribute::Controller(5),
                LinkAttribute::LinkInfo(vec![LinkInfo::PortData(InfoPortData::BridgePort(vec![
                    InfoBridgePort::PortNumber(index as u16),
                ]))]),
            ];
            attrs.extend(alias.map(|a| LinkAttribute::IfAlias(a.into())));
            link(index, name, false, attrs)
        };
        let links = vec![
            bridge,
            port(1, "vxlan0", None),
            port(2, "vxlan0h", Some(ALIAS)),
            port(3, "other", Some("someone's note")),
        ];
        let (nv, bridges) = parse_node("vm1", "ns-vm1", &links, &[]);
        assert_eq!(nv.ifaces.len(), 4);
        let ports: Vec<_> = bridges[0]
            .ports
            .iter()
            .map(|p| p.kernel.name.as_str())
            .collect();
        assert_eq!(ports, ["vxlan0", "other"]);
    }
}
