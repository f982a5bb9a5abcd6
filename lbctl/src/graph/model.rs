//! The picture's model: every node, bridge and link of the config, annotated with what
//! the running lab reports (`lbctl status`): STP port states and roots, daemons' VRRP
//! states, each balancer's view of each backend. Pure: built from the plan and a status
//! document, so it is unit-tested without a lab.

use crate::config::Config;
use crate::status::{Status, VrrpState};
use crate::stp::theory::PortState;
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// On a bridge `lbctl stpd` runs: the port's RSTP role ("root", "alternate"…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rstp_role: Option<String>,
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
        super::build::model(cfg, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{BackendReport, BalancerReport, Source, VrrpReport};
    use crate::status::{LanStatus, NodeStatus, PortStatus};
    use crate::stp::theory::Role;
    use crate::topo::plan::Plan;

    fn vrrp(state: &str) -> VrrpReport {
        VrrpReport {
            instance: "vrid12".into(),
            state: VrrpState::from_wire(state),
            priority: 100,
            effective_priority: 100,
            master: None,
            vrid: 12,
            version: crate::vrrp::codec::Version::V2,
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
                    rstp: None,
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
            rstp: vec![],
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
