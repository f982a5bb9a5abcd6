//! The clause-17 state machines of one RSTP bridge (IEEE 802.1D-2004), as a pure function of
//! time and events: [`Bridge::handle`] takes a link change, a decoded BPDU or a tick at a
//! monotonic `now` and returns what to do (BPDUs to send, port states to set, FDBs to flush).
//!
//! The standard's machines share per-port variables (17.19) and run "until no transition is
//! possible"; [`Bridge::handle`] does the same: it runs every machine of every port in a loop
//! until none changes state, then lets the Port Transmit machines send. One file per machine:
//!
//! * [`priority`]: priority vectors, "better", "superior" (17.6), received info classes (17.21.8);
//! * [`timers`]: the per-port timers (17.17) kept as deadlines, so BPDUs and link events act at
//!   once instead of on the next one-second tick, and [`Bridge::next_deadline`] says when to tick;
//! * [`migration`]: Port Protocol Migration (17.24): RST or 802.1D BPDUs per port;
//! * [`bridge_detect`]: Bridge Detection (17.25): edge and auto-edge ports;
//! * [`port_info`]: Port Receive and Port Information (17.23, 17.27): received info, aging;
//! * [`role_select`]: Port Role Selection (17.28): the spanning tree priority vectors and roles;
//! * [`role_tx`]: Port Role Transitions (17.29): proposal/agreement, sync, reroot;
//! * [`state_tx`]: Port State Transition (17.30): discarding, learning, forwarding;
//! * [`topology`]: Topology Change (17.31): tcWhile, propagation and FDB flushes;
//! * [`transmit`]: Port Transmit (17.26): RST, configuration and TCN BPDUs, hold count;
//! * [`validate`]: parameter ranges (17.13, 17.14), for the daemon's config check.
#![forbid(unsafe_code)]

mod bridge_detect;
mod migration;
mod port;
mod port_info;
mod priority;
mod role_select;
mod role_tx;
mod state_tx;
mod timers;
mod topology;
mod transmit;
mod validate;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use super::types::{Bpdu, BridgeId, PriorityVector, Times};
use port::Port;
use std::time::Duration;
pub use validate::validate;

/// The bridge-wide parameters (17.13). Times in whole seconds as an operator sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeConfig {
    pub id: BridgeId,
    pub hello_time: u16,
    pub max_age: u16,
    pub forward_delay: u16,
    /// 2: RSTP (default); 0: STP-compatible (802.1D BPDUs only, 17.13.4).
    pub force_version: u8,
    /// BPDUs a port may send per second (17.13.12), 6 by default.
    pub tx_hold_count: u8,
    /// Seconds a port waits before it believes the other protocol (17.13.9), 3 by default.
    pub migrate_time: u16,
}

impl BridgeConfig {
    /// 802.1D-2004 defaults (17.14) for the bridge `id`.
    pub fn new(id: BridgeId) -> BridgeConfig {
        BridgeConfig {
            id,
            hello_time: 2,
            max_age: 20,
            forward_delay: 15,
            force_version: 2,
            tx_hold_count: 6,
            migrate_time: 3,
        }
    }
}

/// adminPointToPointMAC (6.4.3): point-to-point forced, or from the link's duplex.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdminP2p {
    #[default]
    Auto,
    ForceTrue,
    ForceFalse,
}

/// One bridge port's parameters (17.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// 1..=4095, unique on the bridge.
    pub number: u16,
    /// 0..=240 in steps of 16; 128 by default.
    pub priority: u8,
    pub path_cost: u32,
    /// AdminEdge: the port starts as an edge port (forwarding at once, no proposal).
    pub admin_edge: bool,
    /// AutoEdge: a designated port that hears no BPDU for the edge delay becomes an edge port.
    pub auto_edge: bool,
    pub admin_p2p: AdminP2p,
}

impl PortConfig {
    /// A port with the defaults: priority 128, auto edge, point-to-point from the duplex.
    pub fn new(number: u16, path_cost: u32) -> PortConfig {
        PortConfig {
            number,
            priority: 128,
            path_cost,
            admin_edge: false,
            auto_edge: true,
            admin_p2p: AdminP2p::Auto,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Link state of a port (operational up/down); full_duplex decides point-to-point under Auto.
    Link {
        port: u16,
        up: bool,
        full_duplex: bool,
    },
    /// A BPDU decoded on `port`.
    Bpdu { port: u16, bpdu: Bpdu },
    /// Time passed: the caller sends it at `next_deadline()` at the latest (more often is harmless).
    Tick,
}

/// The port state of 17.30 as the daemon applies it. Learning may be applied as discarding
/// without loss (the rule: never learn on a port that does not forward); the
/// proposal/agreement path passes through it in the same instant anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Discarding,
    Learning,
    Forwarding,
}

pub use super::types::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Transmit this BPDU on `port` (the daemon encodes it with the port's MAC).
    Send { port: u16, bpdu: Bpdu },
    /// Put `port` in this state (the daemon sets the kernel port state and the BPF gate).
    SetState { port: u16, state: PortState },
    /// Flush the MACs learned on `port` (17.21.8 / topology change).
    Flush { port: u16 },
}

/// What `lbctl status` shows of a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeStatus {
    pub id: BridgeId,
    pub root: BridgeId,
    pub root_path_cost: u32,
    pub root_port: Option<u16>,
    /// Topology changes this bridge detected or was told of (a port entering DETECTED,
    /// NOTIFIED_TC or NOTIFIED_TCN, 17.31).
    pub topology_changes: u64,
    pub ports: Vec<PortStatus>,
}

/// What `lbctl status` shows of a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatus {
    pub number: u16,
    pub role: Role,
    pub state: PortState,
    pub oper_edge: bool,
    pub oper_p2p: bool,
    /// false: migrated to 802.1D (configuration and TCN BPDUs).
    pub send_rstp: bool,
    /// The port priority vector (17.6): received from the designated bridge, or our own.
    pub port_priority: PriorityVector,
    pub counters: Counters,
}

/// A port's BPDU counters for `status` (not in the standard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub proposals_tx: u64,
    pub proposals_rx: u64,
    pub agreements_tx: u64,
    pub agreements_rx: u64,
    /// BPDUs sent (received) with the TC flag, and TCN BPDUs.
    pub tc_tx: u64,
    pub tc_rx: u64,
    pub bpdus_tx: u64,
    pub bpdus_rx: u64,
}

/// One RSTP bridge: its ports and the bridge-wide variables of 17.18.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    cfg: BridgeConfig,
    ports: Vec<Port>,
    /// BridgeTimes (17.18.4), in the wire's unit.
    bridge_times: Times,
    /// rootPriority and rootTimes (17.18.6, 17.18.7) from the last role selection.
    root_priority: PriorityVector,
    root_times: Times,
    /// The root port's index in `ports`, if any.
    root_port: Option<usize>,
    topology_changes: u64,
    /// The time of the event being handled.
    now: Duration,
    /// Actions produced while handling the current event.
    out: Vec<Action>,
}

/// A safety net: the machines settle in a handful of passes; more means a bug.
const MAX_PASSES: usize = 200;

impl Bridge {
    /// Every port starts with its link down (Disabled, Discarding) until an Event::Link up.
    /// No action is returned for this initial state: the daemon starts its ports discarding.
    pub fn new(cfg: BridgeConfig, ports: &[PortConfig], now: std::time::Duration) -> Bridge {
        let bridge_times = Times {
            message_age: 0,
            max_age: cfg.max_age.saturating_mul(Times::SECOND),
            hello_time: cfg.hello_time.saturating_mul(Times::SECOND),
            forward_delay: cfg.forward_delay.saturating_mul(Times::SECOND),
        };
        let mut b = Bridge {
            cfg,
            ports: ports
                .iter()
                .map(|p| Port::new(*p, &cfg, bridge_times, now))
                .collect(),
            bridge_times,
            root_priority: PriorityVector::default(),
            root_times: bridge_times,
            root_port: None,
            topology_changes: 0,
            now,
            out: Vec::new(),
        };
        // INIT_BRIDGE then ROLE_SELECTION (17.28): every port Disabled.
        b.root_priority = b.bridge_priority();
        b.run();
        b.out.clear();
        b
    }

    /// `now`: monotonic time since any fixed epoch, never decreasing (an earlier `now` counts
    /// as the last one). Events for a port number the bridge does not have are ignored.
    /// Actions come in the order to apply them: a port's [`Action::Flush`] after the
    /// [`Action::SetState`] that stopped its forwarding.
    pub fn handle(&mut self, now: std::time::Duration, ev: Event) -> Vec<Action> {
        self.now = now.max(self.now);
        match ev {
            Event::Link {
                port,
                up,
                full_duplex,
            } => {
                if let Some(i) = self.index(port) {
                    let migrate = timers::secs(self.cfg.migrate_time);
                    self.ports[i].set_link(up, full_duplex, now, migrate);
                }
            }
            Event::Bpdu { port, bpdu } => {
                if let Some(i) = self.index(port) {
                    self.receive(i, bpdu);
                }
            }
            Event::Tick => {}
        }
        self.expire_tx_counts();
        self.reflush_due();
        self.run();
        std::mem::take(&mut self.out)
    }

    /// When the next Tick is due (the earliest timer), if any.
    pub fn next_deadline(&self) -> Option<std::time::Duration> {
        self.ports
            .iter()
            .filter_map(|p| p.next_deadline(self.now))
            .min()
    }

    pub fn status(&self) -> BridgeStatus {
        BridgeStatus {
            id: self.cfg.id,
            root: self.root_priority.root,
            root_path_cost: self.root_priority.root_path_cost,
            root_port: self.root_port.map(|i| self.ports[i].cfg.number),
            topology_changes: self.topology_changes,
            ports: self.ports.iter().map(Port::status).collect(),
        }
    }

    fn index(&self, number: u16) -> Option<usize> {
        self.ports.iter().position(|p| p.cfg.number == number)
    }

    /// rstpVersion (17.20.11): Force Protocol Version 2 or more.
    fn rstp_version(&self) -> bool {
        self.cfg.force_version >= 2
    }

    /// "All state machines run until no transition is possible" (17.16): every machine except
    /// Port Transmit until stable, then Port Transmit (so a BPDU carries the settled state, not
    /// a half-way one), and again if sending changed anything.
    fn run(&mut self) {
        for _ in 0..MAX_PASSES {
            let mut changed = self.step_all_but_transmit();
            if !changed {
                for i in 0..self.ports.len() {
                    changed |= self.step_transmit(i);
                }
                if !changed {
                    return;
                }
            }
        }
        debug_assert!(false, "rstp machines did not settle in {MAX_PASSES} passes");
    }

    /// One pass of every machine but Port Transmit over every port; true if any moved.
    fn step_all_but_transmit(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.ports.len() {
            changed |= self.step_migration(i);
            changed |= self.step_bridge_detect(i);
            changed |= self.step_port_info(i);
        }
        changed |= self.step_role_select();
        for i in 0..self.ports.len() {
            changed |= self.step_role_tx(i);
            changed |= self.step_state_tx(i);
            changed |= self.step_topology(i);
        }
        changed
    }
}
