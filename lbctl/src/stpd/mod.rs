//! `lbctl stpd`: the RSTP daemon of one bridge (started by `up`, one per bridge whose
//! `stp_mode` is `rstp`). The kernel's STP is off on that bridge; this daemon runs the
//! clause-17 state machines ([`crate::rstp::fsm`]) over real BPDUs and real port states:
//!
//! * [`packet`]: BPDUs in and out, one AF_PACKET socket per port;
//! * [`netlink`]: port states and MAC flushes over rtnetlink, link events from its link group;
//! * [`setup`]: the plan's bridge and ports in the state machines' terms (pure);
//! * [`run`]: the event loop, which also drives the BPF gate (`datapath::stp_gate`): every
//!   port's gate is set *before* its kernel state, so the kernel forcing a port to
//!   forwarding (on link up, bridge up) can never open a loop, and a daemon that dies leaves
//!   its ports as the gate last said;
//! * [`report`]: the bridge's root and counters for `status`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod netlink;
pub mod packet;
pub mod report;
pub mod run;
pub mod setup;

use std::path::PathBuf;

use crate::topo::plan::BridgePlan;

/// What one daemon runs.
pub struct Options {
    pub lab: String,
    /// The bridge, its ports and timers as the lab's plan has them.
    pub bridge: BridgePlan,
    /// The node's pin dir, where the observer pinned `STP_GATE` and `RSTP_PORT`.
    pub pin_dir: PathBuf,
    /// Where to write the bridge's [`report::StpdReport`].
    pub report: PathBuf,
}

pub use run::run;
