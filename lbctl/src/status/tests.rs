//! The pure stages on fixed inputs: a default lab read back converged but for one port that
//! disagrees with theory and one node whose namespace is gone, with observer, VTEP and
//! balancer readings; the model (`--json`) and its text are checked against snapshots.

use super::collect::{BalancerRaw, Raw, VxlanRaw};
use super::{build, render, snapshot, BalancerReport, DaemonStatus};
use crate::config::{Config, VxlanMode};
use crate::datapath::observe::{ObserverCounters, PortCounters, VrrpCounter};
use crate::datapath::state_maps::HealthEntry;
use crate::datapath::vxlan::{FdbRow, VxCounters};
use crate::stp::theory::{self, BridgeId, KernelBridge, KernelPort, PortState, Role};
use crate::topo::inspect::{self, BridgeView, IfaceView, LabView, NodeView, PortView};
use crate::topo::plan::Plan;
use lb_common::PortStats;

/// The node whose namespace the fixture leaves out.
const MISSING: &str = "user2";

/// Every planned node's interfaces: loopback, its bridges, its veth ends, numbered in order.
fn node_view(plan: &Plan, node: &str) -> NodeView {
    let mut names: Vec<(String, Option<ipnet::Ipv4Net>)> = vec![("lo".into(), None)];
    for b in plan.bridges_in(node) {
        names.push((b.name.clone(), b.address));
    }
    for v in &plan.veths {
        for end in [&v.a, &v.b].into_iter().filter(|e| e.node == node) {
            names.push((end.ifname.clone(), end.address));
        }
    }
    let present = node != MISSING;
    let ifaces = names
        .into_iter()
        .filter(|_| present)
        .enumerate()
        .map(|(i, (name, addr))| IfaceView {
            addrs: match (name.as_str(), addr) {
                ("lo", _) => vec!["127.0.0.1/8".parse().unwrap()],
                (_, a) => a.into_iter().collect(),
            },
            name,
            ifindex: i as u32 + 1,
            admin_up: true,
            carrier: true,
            mtu: 1500,
            master: None,
        })
        .collect();
    NodeView {
        node: node.into(),
        netns: plan.netns(node),
        present,
        ifaces,
    }
}

/// Every planned bridge up with its ports, in the states and roles theory expects.
fn converged_bridges(plan: &Plan) -> Vec<BridgeView> {
    let id = |p: u16, mac: [u8; 6]| BridgeId { priority: p, mac };
    let mut bridges: Vec<BridgeView> = plan
        .bridges
        .iter()
        .map(|b| BridgeView {
            node: b.node.clone(),
            kernel: KernelBridge {
                name: b.name.clone(),
                id: id(b.priority, b.mac),
                root: id(b.priority, b.mac),
                root_port_no: 0,
                root_path_cost: 0,
                stp: b.stp,
            },
            admin_up: true,
            ports: b
                .ports
                .iter()
                .map(|p| PortView {
                    kernel: KernelPort {
                        name: p.name.clone(),
                        port_no: p.port_no,
                        port_id: (u16::from(p.priority) << 8) | p.port_no,
                        state: PortState::Forwarding,
                        designated_bridge: id(b.priority, b.mac),
                        designated_port: 0,
                        designated_root: id(b.priority, b.mac),
                        designated_cost: 0,
                    },
                    cost: p.cost,
                    priority: p.priority,
                    admin_up: true,
                    carrier: true,
                    ifindex: u32::from(p.port_no) + 100,
                    rstp: None,
                })
                .collect(),
            rstp: None,
        })
        .collect();
    let prelim = LabView {
        nodes: vec![],
        bridges: bridges.clone(),
    };
    let exp = theory::expected_tree(&inspect::topology_for(plan, &prelim));
    for b in &mut bridges {
        let be = exp
            .bridges
            .iter()
            .find(|e| e.name == b.kernel.name)
            .unwrap();
        b.kernel.root = be.root;
        b.kernel.root_path_cost = be.root_path_cost;
        for p in &mut b.ports {
            let pe = exp.port(&b.kernel.name, &p.kernel.name).unwrap();
            p.kernel.state = pe.state;
            p.kernel.designated_root = be.root;
            p.kernel.designated_cost = pe.root_path_cost;
            if let Some(d) = pe.designated_bridge {
                p.kernel.designated_bridge = d;
            }
            if pe.role == Role::Designated {
                p.kernel.designated_port = p.kernel.port_id;
            }
            if be.root_port.as_deref() == Some(p.kernel.name.as_str()) {
                b.kernel.root_port_no = p.kernel.port_no;
            }
        }
    }
    bridges
}

/// The default lab's kernel view, converged, but for one blocked port that forwards.
fn lab_view(plan: &Plan) -> LabView {
    let mut bridges = converged_bridges(plan);
    let blocked = bridges
        .iter_mut()
        .flat_map(|b| b.ports.iter_mut())
        .find(|p| p.kernel.state == PortState::Blocking)
        .expect("the default lab blocks a port");
    blocked.kernel.state = PortState::Forwarding;
    LabView {
        nodes: plan
            .nodes
            .iter()
            .map(|n| node_view(plan, &n.name))
            .collect(),
        bridges,
    }
}

fn health(i: u32, up: bool, last_ok: Option<bool>) -> HealthEntry {
    HealthEntry {
        addr: format!("10.1.0.{}:8080", 11 + i).parse().unwrap(),
        index: i,
        up,
        weight: 1 + i,
        last_ok,
        passive: false,
        reason: if up { "200".into() } else { "refused".into() },
        check_ms: 2 + i,
        consecutive_ok: 3,
        consecutive_fail: 0,
        transitions: u64::from(i),
        last_change: 1_700_000_000.5,
        last_check: 1_700_000_010.0,
        requests: 100 * u64::from(i + 1),
        failures: u64::from(i),
        responses: [0, 90, 0, 1, u64::from(i)],
    }
}

fn vrrp(state: &str, master: &str) -> crate::vrrp::VrrpSnapshot {
    crate::vrrp::VrrpSnapshot {
        instance: "vrid12".into(),
        state: state.into(),
        priority: 150,
        effective_priority: 140,
        master: Some(master.parse().unwrap()),
        vrid: 12,
        version: crate::vrrp::codec::Version::V3,
        adverts_sent: 42,
        adverts_received: 7,
        transitions: 2,
        last_change: 1_700_000_000.0,
        drops: [("auth".to_string(), 0), ("ttl".to_string(), 3)].into(),
        checksum_forms: Default::default(),
        events: vec![],
    }
}

/// bal1 read from its maps; bal2 from its admin port.
fn balancers(cfg: &Config) -> Vec<BalancerRaw> {
    let ap = crate::agent::AgentPlan::new(cfg, "bal1", &[]).unwrap();
    let wire: crate::agent::admin::Stats = serde_json::from_value(serde_json::json!({
        "node": "bal2", "source": "agent", "frontend": null,
        "vrrp": vrrp("BACKUP", "172.16.1.2"),
        "backends": [{
            "name": "serv1", "address": "10.1.0.11:8080", "pool": "default", "weight": 1,
            "up": false, "active": 0, "requests": 5, "responses": [0, 4, 0, 0, 1],
            "failures": 1, "retries": 1, "redispatches": 0, "bytes_in": 1, "bytes_out": 2,
            "avg_response_ms": 0.5, "check_ok": null, "check_reason": null,
            "check_duration_ms": null, "check_passive": null, "last_change": 0.0,
            "transitions": 0, "change_reason": null
        }]
    }))
    .unwrap();
    vec![
        BalancerRaw::Maps {
            node: "bal1".into(),
            backends: ap.backends,
            health: vec![
                health(0, true, Some(true)),
                health(1, false, Some(false)),
                health(7, false, None),
            ],
            vrrp: Some(vrrp("MASTER", "172.16.1.1")),
        },
        BalancerRaw::Admin {
            node: "bal2".into(),
            report: Some(BalancerReport::from(wire)),
        },
    ]
}

/// Everything a `status` of the default lab could have read.
fn raw(cfg: &Config) -> Raw {
    let mut plan = Plan::new(cfg);
    // One endpoint on the BPF VTEP, the other on the kernel's device.
    plan.vxlans[1].mode = VxlanMode::Ebpf;
    let (k, e) = (plan.vxlans[0].node.clone(), plan.vxlans[1].node.clone());
    let view = lab_view(&plan);
    let observers = vec![(
        "swout1".to_string(),
        ObserverCounters {
            ports: vec![
                PortCounters {
                    ifindex: 3,
                    stats: PortStats {
                        bpdu_config: 1200,
                        bpdu_tcn: 2,
                        bpdu_tc: 5,
                        vrrp: 40,
                        ..Default::default()
                    },
                },
                PortCounters {
                    ifindex: 99,
                    stats: PortStats {
                        bpdu_bad: 1,
                        ..Default::default()
                    },
                },
            ],
            vrrp: vec![VrrpCounter {
                ifindex: 3,
                vrid: 12,
                adverts: 40,
            }],
        },
    )];
    Raw {
        view,
        daemons: vec![
            DaemonStatus {
                node: "bal1".into(),
                daemon: "agent".into(),
                pid: 4242,
                running: true,
                supervised: true,
                restarts: 1,
                last_exit: Some("killed by SIGKILL".into()),
            },
            DaemonStatus {
                node: "bal2".into(),
                daemon: "agent".into(),
                pid: 4343,
                running: false,
                supervised: false,
                restarts: 0,
                last_exit: None,
            },
        ],
        observers,
        vxlan: vec![
            (
                k,
                VxlanRaw::Kernel {
                    link: Some([10, 20, 1000, 2000, 0, 1]),
                },
            ),
            (
                e,
                VxlanRaw::Ebpf {
                    stats: Some(Box::new(VxCounters {
                        dec_bridge: 7,
                        enc_unicast: 9,
                        enc_copies: 9,
                        ..Default::default()
                    })),
                    fdb: vec![FdbRow {
                        mac: "02:00:00:00:00:01".into(),
                        vtep: "192.168.1.1".parse().unwrap(),
                        age_s: 3.0,
                    }],
                    headroom: Some(50),
                },
            ),
        ],
        balancers: balancers(cfg),
        plan,
    }
}

#[test]
fn model_and_text_match_their_snapshots() {
    let cfg = Config::default_scenario();
    let st = build::build(&cfg, raw(&cfg));
    assert_eq!(st.mismatches.len(), 1, "{:#?}", st.mismatches);
    assert!(st.nodes.iter().any(|n| n.name == MISSING && !n.present));
    snapshot::check("src/status/snapshots/status.json", &snapshot::json(&st));
    snapshot::check("src/status/snapshots/status.txt", &render(&st));
}

/// A balancer whose agent does not answer keeps its place, without figures.
#[test]
fn a_silent_agent_is_reported_as_such() {
    let cfg = Config::default_scenario();
    let mut r = raw(&cfg);
    r.balancers = vec![BalancerRaw::Admin {
        node: "bal2".into(),
        report: None,
    }];
    let st = build::build(&cfg, r);
    let text = render(&st);
    assert!(text.contains("from agent not answering"), "{text}");
    assert!(text.contains("  bal2   agent not answering"), "{text}");
    assert!(!text.contains("\nVRRP\n"), "{text}");
}

/// An RSTP lab (configs/rstp.toml): the kernel's STP off on the four bridges, the roles and
/// states from stpd's map and report; the tree still matches theory, and the RSTP section
/// shows each port's role and state and a dead daemon.
#[test]
fn an_rstp_lab_is_compared_with_the_same_theory() {
    let text = include_str!("../../../configs/rstp.toml");
    let cfg = Config::from_toml(text, "rstp.toml").unwrap();
    let plan = Plan::new(&cfg);
    let mut bridges = converged_bridges(&plan);
    let exp = theory::expected_tree(&inspect::topology_for(
        &plan,
        &LabView {
            nodes: vec![],
            bridges: bridges.clone(),
        },
    ));
    for b in bridges.iter_mut() {
        let Some(bp) = plan.bridge(&b.kernel.name).filter(|bp| bp.rstp) else {
            continue;
        };
        b.kernel.stp = false;
        let mut ports = std::collections::BTreeMap::new();
        for p in &b.ports {
            let role = exp.port(&bp.name, &p.kernel.name).unwrap().role;
            let (role, state) = match role {
                Role::Root => (1, 2),
                Role::Designated => (2, 2),
                Role::Alternate => (3, 0),
                Role::Backup => (4, 0),
                Role::Disabled => (0, 0),
            };
            let info = lb_common::RstpPortInfo {
                role,
                state,
                p2p: 1,
                rstp: 1,
                proposals_tx: 2,
                agreements_rx: 2,
                ..Default::default()
            };
            ports.insert(p.ifindex, info);
        }
        let report = crate::stpd::report::StpdReport {
            bridge: bp.name.clone(),
            root: (b.kernel.root.priority, b.kernel.root.mac),
            root_path_cost: b.kernel.root_path_cost,
            root_port: (b.kernel.root_port_no != 0).then_some(b.kernel.root_port_no),
            ..Default::default()
        };
        crate::topo::rstp_view::overlay(b, &ports, Some(report));
    }
    let r = Raw {
        view: LabView {
            nodes: plan
                .nodes
                .iter()
                .map(|n| node_view(&plan, &n.name))
                .collect(),
            bridges,
        },
        daemons: vec![DaemonStatus {
            node: "vm1".into(),
            daemon: "stpd-vswout1".into(),
            pid: 77,
            running: false,
            supervised: false,
            restarts: 0,
            last_exit: None,
        }],
        observers: vec![],
        vxlan: vec![],
        balancers: vec![],
        plan,
    };
    let st = build::build(&cfg, r);
    assert!(st.mismatches.is_empty(), "{:#?}", st.mismatches);
    assert_eq!(st.rstp.len(), 4);
    let text = render(&st);
    assert!(text.contains("vswout1: stpd DEAD"), "{text}");
    assert!(
        text.contains("swout2: stpd NOT STARTED; root swout2 (this bridge)"),
        "{text}"
    );
    assert!(
        text.contains("vswout1  to-swout1   alternate  discarding no   yes rstp"),
        "{text}"
    );
    assert!(
        text.contains("matches 802.1D theory on every port"),
        "{text}"
    );
}

/// An `rstp` lab's port: the RSTP gate's drops get their columns, on every row; without any
/// drop (the snapshot above, a kernel-mode lab) the table has none.
#[test]
fn gate_drops_get_columns_only_when_some_port_dropped() {
    let cfg = Config::default_scenario();
    let mut r = raw(&cfg);
    let port = &mut r.observers[0].1.ports[0].stats;
    port.bpdu_dropped = 1200;
    port.gate_drop_out = 7;
    port.lease_drop = 31;
    let text = render(&build::build(&cfg, r));
    let head = "BAD  STPD-BPDU  DROP-IN DROP-OUT   LEASE  VRRP BY VRID";
    assert!(text.contains(head), "{text}");
    assert!(
        text.contains("     0       1200        0        7      31  12:40"),
        "{text}"
    );
    assert!(
        text.contains("LEASE data dropped after stpd's lease ran out"),
        "{text}"
    );
    let plain = render(&build::build(&cfg, raw(&cfg)));
    assert!(!plain.contains("STPD-BPDU"), "{plain}");
}
