//! VRRP for the balancer agent, wire-compatible with keepalived: VRRPv2 (RFC 3768) and
//! VRRPv3 (RFC 5798 / RFC 9568) over IPv4.
//!
//! - [`codec`]: packet encoding/decoding and the receive checks (sans-IO);
//! - [`fsm`]: the RFC 9568 §6 state machine (pure: events and time in, actions out);
//! - [`io`]: raw socket, gratuitous ARP, VIP via rtnetlink, link state;
//! - [`instance`]: the runner tying them together on the current tokio runtime, in the
//!   current network namespace (the agent already runs inside its balancer's namespace).
//!
//! This module depends on nothing else in the crate. `codec` and `fsm` need neither tokio
//! nor sockets: built without the `runtime` feature (as the fuzz target builds it), the
//! library is these two and nothing else.

pub mod codec;
pub mod fsm;
#[cfg(feature = "runtime")]
pub mod instance;
#[cfg(feature = "runtime")]
pub mod io;

#[cfg(feature = "runtime")]
pub use instance::*;
