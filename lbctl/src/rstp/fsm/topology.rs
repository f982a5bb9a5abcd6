//! Topology Change (17.31): a non-edge port that starts forwarding as root or designated
//! port is a topology change; it is announced (the TC flag for tcWhile) and every other
//! port's learned MACs are flushed, on this bridge and on every bridge the TC reaches.
//!
//! Beyond the standard, a port flushed by a topology change is flushed once more
//! [`REFLUSH_AFTER`] later: frames still in flight on the old path when the TC arrived may
//! have taught the bridge a MAC on the wrong port again, and the standard's next flush would
//! only come with the next TC BPDU, a Hello Time later (the Open vSwitch trap of issue 17:
//! 0.5–1.7 s outages after a tree that settled in 2 ms).

use super::port::Tcm;
use super::timers::wire;
use super::{Bridge, PortState, Role};
use std::time::Duration;

/// How long after a topology-change flush a port is flushed again: well past the few
/// milliseconds the tree takes to settle and frames in flight on the old path need.
pub(super) const REFLUSH_AFTER: Duration = Duration::from_millis(100);

impl Bridge {
    /// One transition of port `i`'s Topology Change machine; true if it moved.
    pub(super) fn step_topology(&mut self, i: usize) -> bool {
        let p = &self.ports[i];
        let root_or_designated = matches!(p.role, Role::Root | Role::Designated);
        let any_rcvd = p.rcvd_tc || p.rcvd_tcn || p.rcvd_tc_ack || p.tc_prop;
        match p.tcm {
            Tcm::Inactive if p.learn && !p.fdb_flush => self.tcm_learning(i),
            Tcm::Learning if any_rcvd => self.tcm_learning(i),
            Tcm::Learning if root_or_designated && p.forward && !p.oper_edge => {
                self.tcm_detected(i)
            }
            Tcm::Learning if !(root_or_designated || p.learn || p.learning) => self.tcm_inactive(i),
            Tcm::Active if !root_or_designated || p.oper_edge => self.tcm_learning(i),
            Tcm::Active if p.rcvd_tcn || p.rcvd_tc => self.tcm_notified(i),
            Tcm::Active if p.tc_prop && !p.oper_edge => self.tcm_propagating(i),
            Tcm::Active if p.rcvd_tc_ack => {
                let p = &mut self.ports[i];
                p.tc_while.stop();
                p.rcvd_tc_ack = false;
            }
            _ => return false,
        }
        true
    }

    /// INACTIVE: a port that neither learns nor forwards has nothing to announce; its
    /// learned MACs go.
    fn tcm_inactive(&mut self, i: usize) {
        let p = &mut self.ports[i];
        p.tcm = Tcm::Inactive;
        p.tc_while.stop();
        p.tc_ack = false;
        self.flush(i);
    }

    /// LEARNING: notifications are ignored until the port forwards.
    fn tcm_learning(&mut self, i: usize) {
        let p = &mut self.ports[i];
        p.tcm = Tcm::Learning;
        p.rcvd_tc = false;
        p.rcvd_tcn = false;
        p.rcvd_tc_ack = false;
        p.tc_prop = false;
    }

    /// DETECTED: this port started forwarding: announce it and flush the other ports.
    fn tcm_detected(&mut self, i: usize) {
        self.count_topology_change();
        self.new_tc_while(i);
        self.set_tc_prop_tree(i);
        let p = &mut self.ports[i];
        p.new_info = true;
        p.tcm = Tcm::Active;
    }

    /// NOTIFIED_TCN then NOTIFIED_TC: a neighbour announced a change through this port:
    /// acknowledge it (802.1D neighbours) and flush the other ports.
    fn tcm_notified(&mut self, i: usize) {
        self.count_topology_change();
        if self.ports[i].rcvd_tcn {
            self.new_tc_while(i);
        }
        let p = &mut self.ports[i];
        p.rcvd_tcn = false;
        p.rcvd_tc = false;
        if p.role == Role::Designated {
            p.tc_ack = true;
        }
        self.set_tc_prop_tree(i);
    }

    /// PROPAGATING: another port saw a change: announce it here too and flush this port.
    fn tcm_propagating(&mut self, i: usize) {
        let now = self.now;
        self.new_tc_while(i);
        let p = &mut self.ports[i];
        p.tc_prop = false;
        p.reflush.set(now, REFLUSH_AFTER);
        self.flush(i);
    }

    /// The second flush of ports a topology change flushed [`REFLUSH_AFTER`] ago, if they
    /// still forward (a port that stopped was flushed when it stopped).
    pub(super) fn reflush_due(&mut self) {
        let now = self.now;
        for i in 0..self.ports.len() {
            let p = &mut self.ports[i];
            if p.reflush.fired(now) {
                p.reflush.stop();
                if p.pst == PortState::Forwarding {
                    self.flush(i);
                }
            }
        }
    }

    /// newTcWhile (17.21.7): start announcing, for HelloTime + 1 s in RST BPDUs, or for
    /// MaxAge + ForwardDelay (rootTimes) as 802.1D does.
    fn new_tc_while(&mut self, i: usize) {
        let now = self.now;
        let root_times = self.root_times;
        let p = &mut self.ports[i];
        if !p.tc_while.is_zero(now) {
            return;
        }
        if p.send_rstp {
            let t = p.hello_time() + std::time::Duration::from_secs(1);
            p.tc_while.set(now, t);
            p.new_info = true;
        } else {
            let t = wire(root_times.max_age) + wire(root_times.forward_delay);
            p.tc_while.set(now, t);
        }
    }

    /// setTcPropTree (17.21.18): every other port propagates the change.
    fn set_tc_prop_tree(&mut self, i: usize) {
        for (k, p) in self.ports.iter_mut().enumerate() {
            if k != i {
                p.tc_prop = true;
            }
        }
    }

    /// The status counter: a change detected or heard while none was being announced.
    fn count_topology_change(&mut self) {
        let now = self.now;
        if self.ports.iter().all(|p| p.tc_while.is_zero(now)) {
            self.topology_changes += 1;
        }
    }
}
