//! Pure: what the lab's plan says about one RSTP bridge, in the state machines' terms
//! ([`crate::rstp::fsm`]), and a port's status as the BPF status map holds it.

use crate::datapath::stp_gate;
use crate::rstp::fsm::{self, AdminP2p, BridgeConfig, PortConfig, PortState};
use crate::rstp::types::BridgeId;
use crate::topo::plan::{BridgePlan, PortPlan};

/// The bridge's identity and timers (seconds, as the plan has them).
pub fn bridge_config(b: &BridgePlan) -> BridgeConfig {
    let secs = |v: u32| v.min(u32::from(u16::MAX)) as u16;
    BridgeConfig {
        id: BridgeId {
            priority: b.priority,
            mac: b.mac,
        },
        hello_time: secs(b.hello_time),
        max_age: secs(b.max_age),
        forward_delay: secs(b.forward_delay),
        force_version: 2,
        tx_hold_count: 6,
        migrate_time: 3,
    }
}

/// The RSTP port priority of a port whose plan has the kernel's 802.1D priority (0..=63, in
/// the kernel's 6-bit field): × 4, so the kernel default 32 is RSTP's default 128 and the
/// order of port identifiers, hence the tree, stays the one theory computes (validation
/// keeps the kernel value a multiple of 4, see `config::validate::stp::modes`).
pub fn rstp_port_priority(kernel: u8) -> u8 {
    (u16::from(kernel.min(63)) * 4).min(240) as u8 & 0xf0
}

/// A port of the plan: its number (the kernel's), cost and priority. A leaf's NIC (not a
/// cable between bridges) is an edge port: it forwards at once, and stops being edge the
/// moment a BPDU arrives on it (auto edge).
pub fn port_config(p: &PortPlan) -> PortConfig {
    PortConfig {
        number: p.port_no,
        priority: rstp_port_priority(p.priority),
        path_cost: p.cost,
        admin_edge: !p.segment.starts_with("link["),
        auto_edge: true,
        admin_p2p: AdminP2p::Auto,
    }
}

/// A port's status as the pinned `RSTP_PORT` map holds it (what `status` and `bpftool`
/// read). Counters saturate at u32::MAX.
pub fn port_info(s: &fsm::PortStatus) -> lb_common::RstpPortInfo {
    let c = |v: u64| v.min(u64::from(u32::MAX)) as u32;
    lb_common::RstpPortInfo {
        role: stp_gate::role_code(s.role),
        state: stp_gate::state_code(s.state),
        edge: u8::from(s.oper_edge),
        p2p: u8::from(s.oper_p2p),
        rstp: u8::from(s.send_rstp),
        _pad: [0; 3],
        proposals_tx: c(s.counters.proposals_tx),
        proposals_rx: c(s.counters.proposals_rx),
        agreements_tx: c(s.counters.agreements_tx),
        agreements_rx: c(s.counters.agreements_rx),
        tc_tx: c(s.counters.tc_tx),
        tc_rx: c(s.counters.tc_rx),
        bpdus_tx: c(s.counters.bpdus_tx),
        bpdus_rx: c(s.counters.bpdus_rx),
    }
}

/// The gate of a port in `state`: stpd owns its BPDUs; data passes only when forwarding.
pub fn gate(state: PortState) -> lb_common::StpGate {
    lb_common::StpGate {
        rstp: 1,
        discard: u8::from(state != PortState::Forwarding),
        _pad: [0; 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_priorities_keep_their_order() {
        assert_eq!(rstp_port_priority(32), 128);
        assert_eq!(rstp_port_priority(0), 0);
        assert_eq!(rstp_port_priority(60), 240);
        assert_eq!(rstp_port_priority(63), 240);
        assert!(rstp_port_priority(16) < rstp_port_priority(20));
    }

    #[test]
    fn leaf_ports_are_edge_and_cables_are_not() {
        let p = |segment: &str| PortPlan {
            name: "p".into(),
            port_no: 3,
            cost: 100,
            priority: 32,
            segment: segment.into(),
            peer: "x".into(),
        };
        assert!(!port_config(&p("link[0]")).admin_edge);
        let leaf = port_config(&p("user1/eth0"));
        assert!(leaf.admin_edge && leaf.auto_edge);
        assert_eq!((leaf.number, leaf.path_cost, leaf.priority), (3, 100, 128));
    }

    #[test]
    fn only_forwarding_opens_the_gate() {
        assert_eq!(gate(PortState::Forwarding).discard, 0);
        assert_eq!(gate(PortState::Learning).discard, 1);
        assert_eq!(gate(PortState::Discarding).discard, 1);
        assert_eq!(gate(PortState::Discarding).rstp, 1);
    }
}
