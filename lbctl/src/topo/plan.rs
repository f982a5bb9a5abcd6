//! The concrete topology a config describes: which namespaces, bridges, veth pairs,
//! ports (with the port numbers the kernel will give them), addresses and tunnels.
//! Pure: both `up` (to build) and `status` (to compute the expected tree) read it.

use crate::config::{self, Config, Role};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Switch,
    Host,
    Balancer,
    Server,
    User,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NodePlan {
    pub name: String,
    pub netns: String,
    pub kind: Kind,
    /// The host a leaf node runs on, if any.
    pub host: Option<String>,
}

/// One bridge port, in the order it is enslaved (so `port_no` is what the kernel assigns).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortPlan {
    pub name: String,
    pub port_no: u16,
    pub cost: u32,
    pub priority: u8,
    /// The segment (wire) this port sits on; ports sharing a segment hear each other's BPDUs.
    pub segment: String,
    /// What is on the other side, for people ("swout1/to-vswout1", "user1/eth0").
    pub peer: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BridgePlan {
    pub name: String,
    pub node: String,
    pub lan: String,
    pub mac: [u8; 6],
    pub priority: u16,
    pub stp: bool,
    /// STP by `lbctl stpd` (RSTP) instead of the kernel's 802.1D (only with `stp`).
    pub rstp: bool,
    pub hello_time: u32,
    pub max_age: u32,
    pub forward_delay: u32,
    pub mtu: Option<u32>,
    pub address: Option<Ipv4Net>,
    pub ports: Vec<PortPlan>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VethEnd {
    pub node: String,
    pub ifname: String,
    /// The bridge this end is enslaved to, if any.
    pub bridge: Option<String>,
    pub address: Option<Ipv4Net>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VethPlan {
    pub a: VethEnd,
    pub b: VethEnd,
    /// A link between two bridges (fault-injectable with `lbctl link`), vs a leaf's NIC.
    pub inter_bridge: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VxlanPlan {
    pub node: String,
    pub device: String,
    pub vni: u32,
    pub port: u16,
    pub local: Ipv4Addr,
    pub remotes: Vec<Ipv4Addr>,
    pub bridge: String,
    pub mtu: u32,
    /// This endpoint's data path (its own `mode`, else the tunnel's).
    pub mode: config::VxlanMode,
    /// BPF VTEP: the tunnel port's veth peer (`<device>p`).
    pub peer: String,
    /// The bridge holding `local` (the BPF VTEP decapsulates on its links).
    pub underlay_bridge: String,
    /// BPF VTEP: learned MAC ageing, seconds.
    pub ageing_s: u32,
    /// BPF VTEP: the hook that decapsulates.
    pub decap: config::VxlanDecap,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub lab: String,
    pub nodes: Vec<NodePlan>,
    pub bridges: Vec<BridgePlan>,
    pub veths: Vec<VethPlan>,
    pub vxlans: Vec<VxlanPlan>,
}

/// FNV-1a: a stable hash (std's hasher may change between releases) for derived MACs.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A locally administered unicast MAC derived from the lab and the bridge name.
pub fn derived_mac(lab: &str, what: &str) -> [u8; 6] {
    let h = fnv1a(format!("{lab}/{what}").as_bytes()).to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Plan {
    /// Builds the plan of a (validated) config.
    pub fn new(cfg: &Config) -> Plan {
        let lab = cfg.lab.name.clone();
        let nodes = plan_nodes(cfg, &lab);
        let mut bridges = plan_bridges(cfg, &lab);
        // Enslave order = links in config order, then leaf interfaces, then tunnels.
        let mut veths: Vec<VethPlan> = cfg
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| link_veth(cfg, &mut bridges, i, l))
            .collect();
        for n in &cfg.nodes {
            for f in &n.ifaces {
                veths.push(iface_veth(cfg, &mut bridges, n, f));
            }
        }
        let vxlans = tunnel_ends(cfg, &mut bridges);
        Plan {
            lab,
            nodes,
            bridges,
            veths,
            vxlans,
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgePlan> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// Bridges that live in namespace `node`.
    pub fn bridges_in<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a BridgePlan> + 'a {
        self.bridges.iter().filter(move |b| b.node == node)
    }

    /// The inter-bridge link joining bridges `x` and `y` (either order).
    #[cfg(test)]
    pub fn link_between(&self, x: &str, y: &str) -> Vec<&VethPlan> {
        self.veths
            .iter()
            .filter(|v| v.inter_bridge)
            .filter(|v| {
                let (a, b) = (v.a.bridge.as_deref(), v.b.bridge.as_deref());
                (a == Some(x) && b == Some(y)) || (a == Some(y) && b == Some(x))
            })
            .collect()
    }

    /// The bridges whose tree `lbctl stpd` runs.
    pub fn rstp_bridges(&self) -> impl Iterator<Item = &BridgePlan> + '_ {
        self.bridges.iter().filter(|b| b.rstp)
    }

    /// The node's namespace name.
    pub fn netns(&self, node: &str) -> String {
        config::netns_name(&self.lab, node)
    }
}

/// Every namespace: switches, hosts, then leaves, in config order.
fn plan_nodes(cfg: &Config, lab: &str) -> Vec<NodePlan> {
    let node = |name: &str, kind: Kind, host: Option<String>| NodePlan {
        name: name.to_string(),
        netns: config::netns_name(lab, name),
        kind,
        host,
    };
    let switches = cfg
        .switches
        .iter()
        .map(|s| node(&s.name, Kind::Switch, None));
    let hosts = cfg.hosts.iter().map(|h| node(&h.name, Kind::Host, None));
    let leaves = cfg.nodes.iter().map(|n| {
        let kind = match n.role {
            Role::Balancer => Kind::Balancer,
            Role::Server => Kind::Server,
            Role::User => Kind::User,
        };
        node(&n.name, kind, n.host.clone())
    });
    switches.chain(hosts).chain(leaves).collect()
}

/// The MTU of a LAN, if the config sets one.
fn lan_mtu(cfg: &Config, lan: &str) -> Option<u32> {
    cfg.lan(lan).and_then(|l| l.mtu)
}

/// The MTU of the LAN a bridge is on, if the config sets one.
fn bridge_mtu(cfg: &Config, bridge: &str) -> Option<u32> {
    cfg.bridge(bridge).and_then(|(_, b)| lan_mtu(cfg, &b.lan))
}

/// The node a bridge lives in.
fn node_of(cfg: &Config, bridge: &str) -> String {
    cfg.bridge(bridge)
        .map(|(n, _)| n.to_string())
        .unwrap_or_default()
}

/// Every bridge with its STP settings, still without ports.
fn plan_bridges(cfg: &Config, lab: &str) -> Vec<BridgePlan> {
    cfg.all_bridges()
        .into_iter()
        .map(|(node, b)| {
            let (hello_time, max_age, forward_delay) = cfg.timers(b);
            BridgePlan {
                name: b.name.clone(),
                node: node.to_string(),
                lan: b.lan.clone(),
                mac: b
                    .mac
                    .as_deref()
                    .and_then(config::parse_mac)
                    .unwrap_or_else(|| derived_mac(lab, &b.name)),
                priority: b.priority,
                stp: b.stp,
                rstp: b.stp && cfg.stp_mode(b) == config::StpMode::Rstp,
                hello_time,
                max_age,
                forward_delay,
                mtu: lan_mtu(cfg, &b.lan),
                address: b.address,
                ports: Vec::new(),
            }
        })
        .collect()
}

/// Enslaves `p` to `bridge`, numbered as the kernel will (next free number from 1).
fn add_port(bridges: &mut [BridgePlan], bridge: &str, mut p: PortPlan) {
    let b = bridges
        .iter_mut()
        .find(|b| b.name == bridge)
        .expect("validated bridge");
    p.port_no = b.ports.len() as u16 + 1;
    b.ports.push(p);
}

/// The `i`th cable between two bridges: a port on each, one veth pair.
fn link_veth(cfg: &Config, bridges: &mut [BridgePlan], i: usize, l: &config::Link) -> VethPlan {
    let seg = format!("link[{i}]");
    let prio = cfg.stp.port_priority;
    add_port(
        bridges,
        &l.a,
        PortPlan {
            name: l.a_name(),
            port_no: 0,
            cost: l.a_cost.or(l.cost).unwrap_or(cfg.stp.port_cost),
            priority: l.a_priority.unwrap_or(prio),
            segment: seg.clone(),
            peer: format!("{}/{}", l.b, l.b_name()),
        },
    );
    add_port(
        bridges,
        &l.b,
        PortPlan {
            name: l.b_name(),
            port_no: 0,
            cost: l.b_cost.or(l.cost).unwrap_or(cfg.stp.port_cost),
            priority: l.b_priority.unwrap_or(prio),
            segment: seg,
            peer: format!("{}/{}", l.a, l.a_name()),
        },
    );
    let end = |bridge: &str, ifname: String| VethEnd {
        node: node_of(cfg, bridge),
        ifname,
        bridge: Some(bridge.to_string()),
        address: None,
        mtu: bridge_mtu(cfg, bridge),
    };
    VethPlan {
        a: end(&l.a, l.a_name()),
        b: end(&l.b, l.b_name()),
        inter_bridge: true,
    }
}

/// A leaf's interface: its bridge port and the veth pair between them.
fn iface_veth(
    cfg: &Config,
    bridges: &mut [BridgePlan],
    n: &config::Node,
    f: &config::Iface,
) -> VethPlan {
    let port = f.port_name_for(&n.name);
    add_port(
        bridges,
        &f.bridge,
        PortPlan {
            name: port.clone(),
            port_no: 0,
            cost: f.cost.unwrap_or(cfg.stp.port_cost),
            priority: f.priority.unwrap_or(cfg.stp.port_priority),
            segment: format!("{}/{}", n.name, f.name),
            peer: format!("{}/{}", n.name, f.name),
        },
    );
    let mtu = bridge_mtu(cfg, &f.bridge);
    VethPlan {
        a: VethEnd {
            node: n.name.clone(),
            ifname: f.name.clone(),
            bridge: None,
            address: f.address,
            mtu,
        },
        b: VethEnd {
            node: node_of(cfg, &f.bridge),
            ifname: port,
            bridge: Some(f.bridge.clone()),
            address: None,
            mtu,
        },
        inter_bridge: false,
    }
}

/// Each VXLAN endpoint, with its tunnel port enslaved to its bridge.
fn tunnel_ends(cfg: &Config, bridges: &mut [BridgePlan]) -> Vec<VxlanPlan> {
    let Some(v) = &cfg.vxlan else {
        return vec![];
    };
    let mut vxlans = Vec::new();
    for e in &v.endpoints {
        vxlans.push(VxlanPlan {
            node: e.host.clone(),
            device: v.device.clone(),
            vni: v.vni,
            port: v.port,
            local: e.local,
            remotes: v
                .endpoints
                .iter()
                .filter(|o| o.host != e.host)
                .map(|o| o.local)
                .collect(),
            bridge: e.bridge.clone(),
            mtu: bridge_mtu(cfg, &e.bridge).unwrap_or(1450),
            mode: v.mode_of(e),
            peer: format!("{}p", v.device),
            underlay_bridge: underlay_bridge(cfg, &e.host, e.local),
            ageing_s: v.ageing_s,
            decap: v.decap,
        });
        add_port(
            bridges,
            &e.bridge,
            PortPlan {
                name: v.device.clone(),
                port_no: 0,
                cost: cfg.stp.port_cost,
                priority: cfg.stp.port_priority,
                segment: "vxlan".into(),
                peer: "vxlan tunnel".into(),
            },
        );
    }
    vxlans
}

/// The bridge of `host` that holds the tunnel's local address (empty if none does).
fn underlay_bridge(cfg: &Config, host: &str, local: Ipv4Addr) -> String {
    cfg.hosts
        .iter()
        .find(|h| h.name == host)
        .and_then(|h| {
            h.bridges
                .iter()
                .find(|b| b.address.map(|a| a.addr()) == Some(local))
        })
        .map(|b| b.name.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default scenario's whole plan: a golden check that the planner's output stays
    /// the same.
    #[test]
    fn default_plan_matches_its_snapshot() {
        use crate::status::snapshot;
        let p = Plan::new(&Config::default_scenario());
        snapshot::check("src/topo/snapshots/default_plan.json", &snapshot::json(&p));
    }

    #[test]
    fn default_plan_has_the_scenario() {
        let cfg = Config::default_scenario();
        let p = Plan::new(&cfg);
        assert_eq!(p.nodes.len(), 11);
        let vsw1 = p.bridge("vswout1").unwrap();
        let names: Vec<(&str, u16)> = vsw1
            .ports
            .iter()
            .map(|x| (x.name.as_str(), x.port_no))
            .collect();
        assert_eq!(
            names,
            vec![("to-swout1", 1), ("to-swout2", 2), ("bal1-eth0", 3)]
        );
        let vswin1 = p.bridge("vswin1").unwrap();
        assert_eq!(vswin1.mtu, Some(1450));
        assert!(vswin1.ports.iter().any(|x| x.name == "vxlan0"));
        assert_eq!(p.vxlans.len(), 2);
        assert_eq!(
            p.vxlans[0].remotes,
            vec!["172.16.1.151".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(p.veths.iter().filter(|v| v.inter_bridge).count(), 5);
        assert_eq!(p.link_between("swout2", "vswout1").len(), 1);
        // Derived MACs are stable and locally administered unicast.
        let m = derived_mac("lab", "swout1");
        assert_eq!(m, derived_mac("lab", "swout1"));
        assert_eq!(m[0] & 0x03, 0x02);
        assert_ne!(derived_mac("lab", "swout1"), derived_mac("lab2", "swout1"));
    }
}
