//! RSTP (IEEE 802.1D-2004 clause 17, "802.1w"): the pure, sans-IO core of `lbctl stpd`.
//!
//! Like [`crate::vrrp`], this module does no I/O and needs no runtime: it builds with
//! `--no-default-features`, so the fuzz target links it alone.
//!
//! * [`types`]: what a BPDU carries (bridge and port identifiers, priority vectors, times, flags),
//!   shared by the codec and the state machines.
//! * [`bpdu`]: the codec: Ethernet/LLC frames to and from [`types::Bpdu`]; every malformed frame
//!   is refused under a named reason.
//! * [`fsm`]: the clause-17 state machines of one bridge, a pure function of time and events
//!   (BPDUs in, link changes, ticks) to actions (BPDUs out, port states, FDB flushes).
#![forbid(unsafe_code)]
pub mod bpdu;
pub mod fsm;
pub mod types;
