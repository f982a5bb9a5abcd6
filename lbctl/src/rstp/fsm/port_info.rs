//! Port Receive (17.23) and Port Information (17.27): what a port learns from the BPDUs it
//! receives, and when that knowledge ages out.

use super::super::types::{Bpdu, Times, WireRole};
use super::port::{InfoIs, Pim, RcvdInfo};
use super::timers::wire;
use super::Bridge;

impl Bridge {
    /// Port Receive (17.23), RECEIVE: a BPDU on an enabled port becomes rcvdMsg for the Port
    /// Information machine; updtBPDUVersion (17.21.22) tells Protocol Migration which protocol
    /// the neighbour speaks; any BPDU means a bridge is there (operEdge FALSE) and restarts
    /// edgeDelayWhile. On a disabled port (DISCARD) the BPDU is dropped.
    pub(super) fn receive(&mut self, i: usize, bpdu: Bpdu) {
        let now = self.now;
        let migrate = super::timers::secs(self.cfg.migrate_time);
        if !self.ports[i].enabled || self.own_or_expired(i, &bpdu) {
            return;
        }
        let p = &mut self.ports[i];
        p.counters.bpdus_rx += 1;
        match bpdu {
            Bpdu::Rst(b) => {
                p.rcvd_rstp = true;
                p.counters.proposals_rx += u64::from(b.flags.proposal);
                p.counters.agreements_rx += u64::from(b.flags.agreement);
                p.counters.tc_rx += u64::from(b.flags.tc);
            }
            Bpdu::Config(b) => {
                p.rcvd_stp = true;
                p.counters.tc_rx += u64::from(b.flags.tc);
            }
            Bpdu::Tcn => {
                p.rcvd_stp = true;
                p.counters.tc_rx += 1;
            }
        }
        p.oper_edge = false;
        p.msg = Some(bpdu);
        p.edge_delay_while.set(now, migrate);
    }

    /// The checks of 9.3.4 that need the bridge: a configuration BPDU that this very port
    /// sent (looped back) or whose Message Age reached its Max Age is ignored.
    fn own_or_expired(&self, i: usize, bpdu: &Bpdu) -> bool {
        match bpdu {
            Bpdu::Config(b) => {
                b.bridge == self.cfg.id && b.port.number() == self.ports[i].port_id.number()
                    || b.times.message_age >= b.times.max_age
            }
            Bpdu::Rst(_) | Bpdu::Tcn => false,
        }
    }

    /// Port Information machine (17.27), one transition; true if it moved.
    pub(super) fn step_port_info(&mut self, i: usize) -> bool {
        let now = self.now;
        let p = &self.ports[i];
        if !p.enabled && p.info_is != InfoIs::Disabled || p.pim == Pim::Disabled && p.msg.is_some()
        {
            self.pim_disabled(i);
            return true;
        }
        match p.pim {
            Pim::Disabled if p.enabled => self.pim_aged(i),
            Pim::Aged | Pim::Current if p.selected && p.updt_info => self.pim_update(i),
            Pim::Update => self.ports[i].pim = Pim::Current,
            Pim::Current
                if p.info_is == InfoIs::Received
                    && p.rcvd_info_while.is_zero(now)
                    && !p.updt_info
                    && p.msg.is_none() =>
            {
                self.pim_aged(i)
            }
            Pim::Current if p.msg.is_some() && !p.updt_info => self.pim_receive(i),
            _ => return false,
        }
        true
    }

    /// DISABLED: forget everything heard on the port.
    fn pim_disabled(&mut self, i: usize) {
        let p = &mut self.ports[i];
        p.pim = Pim::Disabled;
        p.msg = None;
        p.proposing = false;
        p.proposed = false;
        p.agree = false;
        p.agreed = false;
        p.rcvd_info_while.stop();
        p.info_is = InfoIs::Disabled;
        p.reselect = true;
        p.selected = false;
    }

    /// AGED: the information aged out (or the port just came up): select roles again.
    fn pim_aged(&mut self, i: usize) {
        let p = &mut self.ports[i];
        p.pim = Pim::Aged;
        p.info_is = InfoIs::Aged;
        p.reselect = true;
        p.selected = false;
    }

    /// UPDATE: the port is designated and its priority vector becomes ours.
    fn pim_update(&mut self, i: usize) {
        let same = self.better_or_same_info(i, InfoIs::Mine);
        let p = &mut self.ports[i];
        p.pim = Pim::Update;
        p.proposing = false;
        p.proposed = false;
        p.agreed = p.agreed && same;
        p.synced = p.synced && p.agreed;
        p.port_priority = p.designated_priority;
        p.port_times = p.designated_times;
        p.updt_info = false;
        p.info_is = InfoIs::Mine;
        p.new_info = true;
    }

    /// RECEIVE and the state its class leads to (SUPERIOR_DESIGNATED, REPEATED_DESIGNATED,
    /// INFERIOR_DESIGNATED, NOT_DESIGNATED, OTHER), then back to CURRENT.
    fn pim_receive(&mut self, i: usize) {
        match self.rcv_info(i) {
            RcvdInfo::SuperiorDesignated => self.pim_superior(i),
            RcvdInfo::RepeatedDesignated => {
                self.record_proposal(i);
                self.set_tc_flags(i);
                // recordAgreement here is 802.1Q's addition to 802.1D-2004.
                self.record_agreement(i);
                self.updt_rcvd_info_while(i);
            }
            RcvdInfo::InferiorDesignated => self.record_dispute(i),
            RcvdInfo::InferiorRootAlternate => {
                self.record_agreement(i);
                self.set_tc_flags(i);
            }
            // A TCN carries no priority; setTcFlags (17.21.17) still notes it.
            RcvdInfo::Other => self.set_tc_flags(i),
        }
        let p = &mut self.ports[i];
        p.msg = None;
        p.pim = Pim::Current;
    }

    /// SUPERIOR_DESIGNATED: a better (or changed) designated port is on the link.
    fn pim_superior(&mut self, i: usize) {
        let same = self.better_or_same_info(i, InfoIs::Received);
        {
            let p = &mut self.ports[i];
            p.agreed = false;
            p.proposing = false;
        }
        self.record_proposal(i);
        self.set_tc_flags(i);
        // As 802.1Q: an agreement carried with the new info counts, and a port that has not
        // been agreed with under it is no longer synced.
        self.record_agreement(i);
        let p = &mut self.ports[i];
        p.agree = p.agree && same;
        p.synced = p.synced && p.agreed;
        // recordPriority, recordTimes (17.21.12, 17.21.13); a zero Hello Time counts as 1 s.
        if let Some(Bpdu::Config(b) | Bpdu::Rst(b)) = p.msg {
            p.port_priority = b.priority_vector(p.port_id);
            p.port_times = b.times;
            p.port_times.hello_time = b.times.hello_time.max(Times::SECOND);
        }
        self.updt_rcvd_info_while(i);
        let p = &mut self.ports[i];
        p.info_is = InfoIs::Received;
        p.reselect = true;
        p.selected = false;
    }

    /// updtRcvdInfoWhile (17.21.23): the info lives 3 × its Hello Time, or not at all when its
    /// Message Age plus one second exceeds its Max Age.
    fn updt_rcvd_info_while(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.ports[i];
        let t = p.port_times;
        if u32::from(t.message_age) + 256 <= u32::from(t.max_age) {
            p.rcvd_info_while.set(now, 3 * wire(t.hello_time));
        } else {
            p.rcvd_info_while.stop();
        }
    }

    /// recordProposal (17.21.11): a designated port's RST BPDU with the Proposal flag.
    fn record_proposal(&mut self, i: usize) {
        let p = &mut self.ports[i];
        if let Some(Bpdu::Rst(b)) = p.msg {
            if b.flags.role == WireRole::Designated && b.flags.proposal {
                p.proposed = true;
            }
        }
    }

    /// recordAgreement (17.21.9): an RST BPDU with the Agreement flag on a point-to-point
    /// link is the peer's agreement to our proposal; anything else withdraws it.
    fn record_agreement(&mut self, i: usize) {
        let rstp = self.rstp_version();
        let p = &mut self.ports[i];
        match p.msg {
            Some(Bpdu::Rst(b)) if rstp && p.oper_p2p && b.flags.agreement => {
                p.agreed = true;
                p.proposing = false;
            }
            _ => p.agreed = false,
        }
    }

    /// recordDispute (17.21.10): an inferior designated port that is learning or forwarding
    /// does not hear us; our port must not forward towards it.
    fn record_dispute(&mut self, i: usize) {
        let p = &mut self.ports[i];
        if let Some(Bpdu::Rst(b)) = p.msg {
            if b.flags.learning {
                p.disputed = true;
                p.agreed = false;
            }
        }
    }

    /// setTcFlags (17.21.17): TC and TC Ack flags of configuration and RST BPDUs, and TCNs.
    fn set_tc_flags(&mut self, i: usize) {
        let p = &mut self.ports[i];
        match p.msg {
            Some(Bpdu::Config(b) | Bpdu::Rst(b)) => {
                p.rcvd_tc |= b.flags.tc;
                p.rcvd_tc_ack |= b.flags.tca;
            }
            Some(Bpdu::Tcn) => p.rcvd_tcn = true,
            None => {}
        }
    }
}
