//! Priority vectors (17.6): the bridge's own vector, "superior", and the class of a received
//! message (rcvInfo, 17.21.8) with betterorsameInfo (17.21.1).
//!
//! [`PriorityVector`]'s derived order is the standard's "better" (lower is better): root,
//! root path cost, designated bridge, designated port, then the receiving port.

use super::super::types::{Bpdu, PriorityVector, Times, WireRole};
use super::port::{InfoIs, RcvdInfo};
use super::Bridge;

/// 17.6: a message priority vector is superior to the port priority vector if it is better,
/// or if it comes from the same designated bridge (address) and port (number) as the port's:
/// the designated port changed its mind, and what it says now replaces what it said before.
pub(super) fn superior(msg: &PriorityVector, port: &PriorityVector) -> bool {
    let same_sender = msg.designated_bridge.mac == port.designated_bridge.mac
        && msg.designated_port.number() == port.designated_port.number();
    msg < port || same_sender
}

/// The role a received BPDU conveys: a configuration BPDU implicitly comes from a
/// designated port (17.21.8 NOTE); a TCN conveys none.
pub(super) fn conveyed_role(bpdu: &Bpdu) -> Option<WireRole> {
    match bpdu {
        Bpdu::Config(_) => Some(WireRole::Designated),
        Bpdu::Rst(b) => Some(b.flags.role),
        Bpdu::Tcn => None,
    }
}

/// The times are the same in whole seconds, the standard's unit. An 802.1D bridge such as
/// the kernel computes Message Age from a running timer, so it jitters by a few 1/256 s from
/// one BPDU to the next; that is not new information.
pub(super) fn same_seconds(a: &Times, b: &Times) -> bool {
    let s = |v: u16| (u32::from(v) + u32::from(Times::SECOND) / 2) / u32::from(Times::SECOND);
    s(a.message_age) == s(b.message_age)
        && s(a.max_age) == s(b.max_age)
        && s(a.hello_time) == s(b.hello_time)
        && s(a.forward_delay) == s(b.forward_delay)
}

impl Bridge {
    /// The bridge priority vector (17.18.3): this bridge as root, cost 0.
    pub(super) fn bridge_priority(&self) -> PriorityVector {
        PriorityVector {
            root: self.cfg.id,
            root_path_cost: 0,
            designated_bridge: self.cfg.id,
            designated_port: Default::default(),
            bridge_port: Default::default(),
        }
    }

    /// rcvInfo (17.21.8): classifies the message held by port `i`, and records its priority
    /// vector and times as msgPriority/msgTimes (returned with the class).
    pub(super) fn rcv_info(&self, i: usize) -> RcvdInfo {
        let p = &self.ports[i];
        let Some(bpdu) = p.msg else {
            return RcvdInfo::Other;
        };
        let (Bpdu::Config(body) | Bpdu::Rst(body)) = bpdu else {
            return RcvdInfo::Other;
        };
        let msg = body.priority_vector(p.port_id);
        let same_times = same_seconds(&body.times, &p.port_times);
        match conveyed_role(&bpdu) {
            Some(WireRole::Designated) => {
                if superior(&msg, &p.port_priority) && msg != p.port_priority
                    || msg == p.port_priority && !same_times
                {
                    RcvdInfo::SuperiorDesignated
                } else if msg == p.port_priority {
                    RcvdInfo::RepeatedDesignated
                } else {
                    RcvdInfo::InferiorDesignated
                }
            }
            Some(WireRole::Root | WireRole::AlternateOrBackup) if msg >= p.port_priority => {
                RcvdInfo::InferiorRootAlternate
            }
            _ => RcvdInfo::Other,
        }
    }

    /// betterorsameInfo (17.21.1): the new info (received, or ours) is better than or the
    /// same as what the port holds, and comes from the same source.
    pub(super) fn better_or_same_info(&self, i: usize, new_info_is: InfoIs) -> bool {
        let p = &self.ports[i];
        match (new_info_is, p.info_is) {
            (InfoIs::Received, InfoIs::Received) => p
                .msg
                .and_then(|b| match b {
                    Bpdu::Config(c) | Bpdu::Rst(c) => Some(c.priority_vector(p.port_id)),
                    Bpdu::Tcn => None,
                })
                .is_some_and(|m| m <= p.port_priority),
            (InfoIs::Mine, InfoIs::Mine) => p.designated_priority <= p.port_priority,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::types::{BridgeId, PortId};
    use super::*;

    fn v(root: u16, cost: u32, bridge: u8, port: u16) -> PriorityVector {
        PriorityVector {
            root: BridgeId {
                priority: root,
                mac: [0, 0, 0, 0, 0, 1],
            },
            root_path_cost: cost,
            designated_bridge: BridgeId {
                priority: 32768,
                mac: [0, 0, 0, 0, 0, bridge],
            },
            designated_port: PortId::new(128, port),
            bridge_port: PortId::new(128, 1),
        }
    }

    #[test]
    fn times_compare_in_whole_seconds() {
        let t = |age| Times {
            message_age: age,
            max_age: 20 * 256,
            hello_time: 512,
            forward_delay: 15 * 256,
        };
        assert!(same_seconds(&t(256), &t(256 + 3)));
        assert!(same_seconds(&t(256), &t(256 - 100)));
        assert!(!same_seconds(&t(256), &t(512)));
    }

    #[test]
    fn superior_is_better_or_same_designated_port() {
        // Better root wins.
        assert!(superior(&v(4096, 100, 2, 1), &v(8192, 0, 2, 1)));
        // Worse info from the same designated bridge and port replaces the old (17.6).
        assert!(superior(&v(8192, 300, 2, 1), &v(4096, 100, 2, 1)));
        // Worse info from another bridge does not.
        assert!(!superior(&v(8192, 300, 3, 1), &v(4096, 100, 2, 1)));
        // Nor from another port of the same bridge.
        assert!(!superior(&v(8192, 300, 2, 2), &v(4096, 100, 2, 1)));
    }
}
