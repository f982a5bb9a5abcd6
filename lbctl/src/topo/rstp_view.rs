//! Pure: a bridge `lbctl stpd` runs, as the rest of lbctl reads bridges. The kernel's STP is
//! off there, so the kernel knows no root, role or blocked port; the daemon publishes each
//! port's role and state in the pinned `RSTP_PORT` map and the bridge's root in its report.
//! [`overlay`] puts them into the [`BridgeView`], so `status`, `up`'s wait, the fault
//! commands and `verify` compare the RSTP tree with the same theory as the kernel's.
//!
//! RSTP's three states in 802.1D's terms: forwarding and learning as they are; discarding
//! is blocking on an alternate or backup port (its resting state) and listening on a root or
//! designated port (on its way to forwarding); a disabled role is disabled.

use std::collections::BTreeMap;

use super::inspect::BridgeView;
use crate::datapath::stp_gate;
use crate::stp::theory::{BridgeId, PortState, Role};
use crate::stpd::report::StpdReport;

/// RSTP's port state: the one the daemon's state machines apply.
pub use crate::rstp::fsm::PortState as RstpState;

/// One port as its daemon published it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RstpPortView {
    pub role: Role,
    pub state: RstpState,
    pub edge: bool,
    pub p2p: bool,
    /// False once the port fell back to 802.1D BPDUs (a kernel-STP neighbour).
    pub rstp: bool,
    pub proposals_tx: u32,
    pub proposals_rx: u32,
    pub agreements_tx: u32,
    pub agreements_rx: u32,
    pub tc_tx: u32,
    pub tc_rx: u32,
    pub bpdus_tx: u32,
    pub bpdus_rx: u32,
    /// The state the kernel itself has for the port (listening stands for discarding).
    pub kernel_state: PortState,
}

/// The bridge as its daemon reported it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RstpBridgeView {
    /// The kernel's own STP is on: it should not be (`up` turns it off).
    pub kernel_stp: bool,
    /// The daemon's report (None: it wrote none yet).
    pub report: Option<StpdReport>,
}

impl RstpPortView {
    pub fn from_info(i: &lb_common::RstpPortInfo, kernel_state: PortState) -> RstpPortView {
        RstpPortView {
            role: stp_gate::role_of_code(i.role),
            state: stp_gate::state_of_code(i.state),
            edge: i.edge != 0,
            p2p: i.p2p != 0,
            rstp: i.rstp != 0,
            proposals_tx: i.proposals_tx,
            proposals_rx: i.proposals_rx,
            agreements_tx: i.agreements_tx,
            agreements_rx: i.agreements_rx,
            tc_tx: i.tc_tx,
            tc_rx: i.tc_rx,
            bpdus_tx: i.bpdus_tx,
            bpdus_rx: i.bpdus_rx,
            kernel_state,
        }
    }

    /// The state in 802.1D's terms (see the module docs).
    pub fn as_8021d(&self) -> PortState {
        match (self.role, self.state) {
            (Role::Disabled, _) => PortState::Disabled,
            (_, RstpState::Forwarding) => PortState::Forwarding,
            (_, RstpState::Learning) => PortState::Learning,
            (Role::Alternate | Role::Backup, RstpState::Discarding) => PortState::Blocking,
            (_, RstpState::Discarding) => PortState::Listening,
        }
    }
}

/// Puts the daemon's view of bridge `v` into it: ports (by ifindex) from `ports`, the root
/// from `report`. A port the daemon has not published is listening while its link is up
/// (the daemon is starting), else disabled.
pub fn overlay(
    v: &mut BridgeView,
    ports: &BTreeMap<u32, lb_common::RstpPortInfo>,
    report: Option<StpdReport>,
) {
    v.rstp = Some(RstpBridgeView {
        kernel_stp: v.kernel.stp,
        report: report.clone(),
    });
    v.kernel.stp = true;
    match report {
        Some(r) => {
            v.kernel.root = BridgeId {
                priority: r.root.0,
                mac: r.root.1,
            };
            v.kernel.root_path_cost = r.root_path_cost;
            v.kernel.root_port_no = r.root_port.unwrap_or(0);
        }
        None => {
            v.kernel.root = v.kernel.id;
            v.kernel.root_port_no = 0;
        }
    }
    for p in &mut v.ports {
        let kernel_state = p.kernel.state;
        match ports.get(&p.ifindex) {
            Some(i) => {
                let r = RstpPortView::from_info(i, kernel_state);
                p.kernel.state = r.as_8021d();
                p.rstp = Some(r);
            }
            None => {
                p.kernel.state = if p.admin_up && p.carrier && v.admin_up {
                    PortState::Listening
                } else {
                    PortState::Disabled
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stp::theory::{KernelBridge, KernelPort};
    use crate::topo::inspect::PortView;

    fn bridge() -> BridgeView {
        let id = BridgeId {
            priority: 0x2000,
            mac: [2, 0, 0, 0, 0, 1],
        };
        let port = |name: &str, no: u16, ifindex: u32| PortView {
            kernel: KernelPort {
                name: name.into(),
                port_no: no,
                port_id: 0x8000 | no,
                state: PortState::Forwarding,
                designated_bridge: id,
                designated_port: 0,
                designated_root: id,
                designated_cost: 0,
            },
            cost: 100,
            priority: 32,
            admin_up: true,
            carrier: true,
            ifindex,
            rstp: None,
        };
        BridgeView {
            node: "sw".into(),
            kernel: KernelBridge {
                name: "sw".into(),
                id,
                root: id,
                root_port_no: 0,
                root_path_cost: 0,
                stp: false,
            },
            admin_up: true,
            ports: vec![port("a", 1, 1001), port("b", 2, 1003), port("c", 3, 1005)],
            rstp: None,
        }
    }

    fn info(role: u8, state: u8) -> lb_common::RstpPortInfo {
        lb_common::RstpPortInfo {
            role,
            state,
            edge: 0,
            p2p: 1,
            rstp: 1,
            _pad: [0; 3],
            proposals_tx: 1,
            proposals_rx: 2,
            agreements_tx: 3,
            agreements_rx: 4,
            tc_tx: 5,
            tc_rx: 6,
            bpdus_tx: 7,
            bpdus_rx: 8,
        }
    }

    #[test]
    fn the_daemons_roles_and_root_replace_the_kernels() {
        let mut v = bridge();
        let ports = BTreeMap::from([(1001, info(1, 2)), (1003, info(3, 0))]);
        let report = StpdReport {
            root: (0x1000, [2, 0, 0, 0, 0, 9]),
            root_path_cost: 100,
            root_port: Some(1),
            ..Default::default()
        };
        overlay(&mut v, &ports, Some(report));
        assert!(v.kernel.stp);
        assert!(!v.rstp.as_ref().unwrap().kernel_stp);
        assert_eq!(v.kernel.root.priority, 0x1000);
        assert_eq!(v.kernel.root_port_no, 1);
        let states: Vec<PortState> = v.ports.iter().map(|p| p.kernel.state).collect();
        // Root forwarding, alternate blocking, and a port not yet published listening.
        assert_eq!(
            states,
            [
                PortState::Forwarding,
                PortState::Blocking,
                PortState::Listening
            ]
        );
        let r = v.ports[1].rstp.as_ref().unwrap();
        assert_eq!((r.role, r.state), (Role::Alternate, RstpState::Discarding));
        assert_eq!(r.kernel_state, PortState::Forwarding);
    }

    #[test]
    fn discarding_is_listening_on_its_way_and_disabled_without_a_role() {
        let v = |role, state| RstpPortView::from_info(&info(role, state), PortState::Listening);
        assert_eq!(v(2, 0).as_8021d(), PortState::Listening);
        assert_eq!(v(4, 0).as_8021d(), PortState::Blocking);
        assert_eq!(v(0, 0).as_8021d(), PortState::Disabled);
        assert_eq!(v(2, 1).as_8021d(), PortState::Learning);
    }
}
