//! One bridge port: its configuration, the per-port variables of 17.19, the state of each
//! per-port machine and the counters `status` shows.

use super::super::types::{Bpdu, PortId, PriorityVector, Times};
use super::timers::{secs, wire, Timer};
use super::{AdminP2p, BridgeConfig, Counters, PortConfig, PortState, PortStatus, Role};
use std::time::Duration;

/// infoIs (17.19.10): where the port priority vector came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InfoIs {
    Disabled,
    Aged,
    Mine,
    Received,
}

/// rcvdInfo (17.19.22): the class of the last received message (17.21.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RcvdInfo {
    SuperiorDesignated,
    RepeatedDesignated,
    InferiorDesignated,
    InferiorRootAlternate,
    Other,
}

/// Port Information machine states (17.27).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pim {
    Disabled,
    Aged,
    Update,
    Current,
}

/// Port Role Transitions machine states (17.29); transient states are folded into the
/// procedures that implement them, so only the resting states remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prt {
    /// DISABLE_PORT: waiting for the port to stop learning and forwarding.
    Disable,
    /// DISABLED_PORT.
    Disabled,
    /// ROOT_PORT.
    Root,
    /// DESIGNATED_PORT.
    Designated,
    /// BLOCK_PORT: waiting for the port to stop learning and forwarding.
    Block,
    /// ALTERNATE_PORT (alternate and backup ports).
    Alternate,
}

/// Topology Change machine states (17.31).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tcm {
    Inactive,
    Learning,
    Active,
}

/// Port Protocol Migration machine states (17.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ppm {
    CheckingRstp,
    SelectingStp,
    Sensing,
}

/// Port Transmit machine states (17.26): Init while the port is down, Idle otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ptx {
    Init,
    Idle,
}

/// The per-port variables of 17.19 (named as there, in snake case) and machine states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Port {
    pub cfg: PortConfig,
    pub port_id: PortId,
    /// portEnabled (17.19.18): the link is up.
    pub enabled: bool,
    pub full_duplex: bool,
    pub oper_p2p: bool,
    // Timers (17.17).
    pub edge_delay_while: Timer,
    pub fd_while: Timer,
    pub hello_when: Timer,
    pub mdelay_while: Timer,
    pub rb_while: Timer,
    pub rcvd_info_while: Timer,
    pub rr_while: Timer,
    pub tc_while: Timer,
    /// When to flush this port once more after a topology change flushed it (see
    /// [`super::topology`]).
    pub reflush: Timer,
    /// When the current one-second window of txCount ends (see `expire_tx_counts`).
    pub tx_decay: Timer,
    // Variables (17.19).
    pub agree: bool,
    pub agreed: bool,
    pub designated_priority: PriorityVector,
    pub designated_times: Times,
    pub disputed: bool,
    pub fdb_flush: bool,
    pub forward: bool,
    pub forwarding: bool,
    pub info_is: InfoIs,
    pub learn: bool,
    pub learning: bool,
    pub mcheck: bool,
    /// The received BPDU the Port Information machine has yet to process (rcvdMsg, 17.19.25).
    pub msg: Option<Bpdu>,
    pub new_info: bool,
    pub oper_edge: bool,
    pub port_priority: PriorityVector,
    pub port_times: Times,
    pub proposed: bool,
    pub proposing: bool,
    pub rcvd_rstp: bool,
    pub rcvd_stp: bool,
    pub rcvd_tc: bool,
    pub rcvd_tc_ack: bool,
    pub rcvd_tcn: bool,
    pub re_root: bool,
    pub reselect: bool,
    pub role: Role,
    pub selected: bool,
    pub selected_role: Role,
    pub send_rstp: bool,
    pub sync: bool,
    pub synced: bool,
    pub tc_ack: bool,
    pub tc_prop: bool,
    pub tx_count: u8,
    pub updt_info: bool,
    // Machine states.
    pub pim: Pim,
    pub prt: Prt,
    pub pst: PortState,
    pub tcm: Tcm,
    pub ppm: Ppm,
    pub ptx: Ptx,
    pub counters: Counters,
}

impl Port {
    /// The port as BEGIN leaves it (every machine in its initial state, link down).
    pub(super) fn new(cfg: PortConfig, b: &BridgeConfig, times: Times, now: Duration) -> Port {
        let mut mdelay_while = Timer::default();
        mdelay_while.set(now, secs(b.migrate_time));
        Port {
            cfg,
            port_id: PortId::new(cfg.priority, cfg.number),
            enabled: false,
            full_duplex: false,
            oper_p2p: false,
            edge_delay_while: mdelay_while,
            fd_while: Timer::default(),
            hello_when: Timer::default(),
            mdelay_while,
            rb_while: Timer::default(),
            rcvd_info_while: Timer::default(),
            rr_while: Timer::default(),
            tc_while: Timer::default(),
            tx_decay: Timer::default(),
            reflush: Timer::default(),
            agree: false,
            agreed: false,
            designated_priority: PriorityVector::default(),
            designated_times: times,
            disputed: false,
            fdb_flush: false,
            forward: false,
            forwarding: false,
            info_is: InfoIs::Disabled,
            learn: false,
            learning: false,
            mcheck: false,
            msg: None,
            new_info: true,
            oper_edge: cfg.admin_edge,
            port_priority: PriorityVector::default(),
            port_times: times,
            proposed: false,
            proposing: false,
            rcvd_rstp: false,
            rcvd_stp: false,
            rcvd_tc: false,
            rcvd_tc_ack: false,
            rcvd_tcn: false,
            re_root: false,
            reselect: true,
            role: Role::Disabled,
            selected: false,
            selected_role: Role::Disabled,
            send_rstp: b.force_version >= 2,
            sync: false,
            synced: true,
            tc_ack: false,
            tc_prop: false,
            tx_count: 0,
            updt_info: false,
            pim: Pim::Disabled,
            prt: Prt::Disabled,
            pst: PortState::Discarding,
            tcm: Tcm::Inactive,
            ppm: Ppm::CheckingRstp,
            ptx: Ptx::Init,
            counters: Counters::default(),
        }
    }

    /// A link event: portEnabled, and operPointToPointMAC (6.4.3) from AdminP2p and duplex.
    /// While a port is down the standard holds some timers at fixed values by reentering a
    /// state every tick (edgeDelayWhile and mdelayWhile at MigrateTime, fdWhile at MaxAge in
    /// DISABLED_PORT); nothing ticks a port that is down here, so they restart when it comes
    /// up. Going down is Port Receive's DISCARD (17.23): pending BPDUs are dropped.
    pub(super) fn set_link(
        &mut self,
        up: bool,
        full_duplex: bool,
        now: Duration,
        migrate: Duration,
    ) {
        let came_up = up && !self.enabled;
        self.enabled = up;
        self.full_duplex = full_duplex;
        self.oper_p2p = match self.cfg.admin_p2p {
            AdminP2p::Auto => full_duplex,
            AdminP2p::ForceTrue => true,
            AdminP2p::ForceFalse => false,
        };
        if !up {
            self.msg = None;
            self.rcvd_rstp = false;
            self.rcvd_stp = false;
        }
        if came_up {
            self.edge_delay_while.set(now, migrate);
            if self.ppm == Ppm::CheckingRstp {
                self.mdelay_while.set(now, migrate);
            }
            if self.prt == Prt::Disabled {
                let max_age = self.max_age();
                self.fd_while.set(now, max_age);
            }
        }
    }

    /// HelloTime, MaxAge, FwdDelay (17.20.5–17.20.8): from designatedTimes.
    pub(super) fn hello_time(&self) -> Duration {
        wire(self.designated_times.hello_time)
    }
    pub(super) fn max_age(&self) -> Duration {
        wire(self.designated_times.max_age)
    }
    pub(super) fn fwd_delay(&self) -> Duration {
        wire(self.designated_times.forward_delay)
    }

    /// forwardDelay (17.20.6): HelloTime while talking RSTP, FwdDelay next to 802.1D.
    pub(super) fn forward_delay(&self) -> Duration {
        if self.send_rstp {
            self.hello_time()
        } else {
            self.fwd_delay()
        }
    }

    /// The earliest running timer; a port that is down waits for its link, not for time.
    pub(super) fn next_deadline(&self, now: Duration) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        [
            self.edge_delay_while,
            self.fd_while,
            self.hello_when,
            self.mdelay_while,
            self.rb_while,
            self.rcvd_info_while,
            self.rr_while,
            self.tc_while,
            self.tx_decay,
            self.reflush,
        ]
        .iter()
        .filter_map(|t| t.deadline())
        .filter(|t| *t > now)
        .min()
    }

    pub(super) fn status(&self) -> PortStatus {
        PortStatus {
            number: self.cfg.number,
            role: self.role,
            state: self.pst,
            oper_edge: self.oper_edge,
            oper_p2p: self.oper_p2p,
            send_rstp: self.send_rstp,
            port_priority: self.port_priority,
            counters: self.counters,
        }
    }
}
