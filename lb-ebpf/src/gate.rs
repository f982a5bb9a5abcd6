//! The RSTP gate on the switch ports (`STP_GATE`, written by `lbctl stpd`): what `lb_obs`
//! (TC ingress) and `lb_gate` (TC egress) do with a frame once the observer has counted it.
//!
//! * No gate entry for the port: nothing, `TC_ACT_UNSPEC` (kernel STP labs are unchanged).
//! * A frame to the STP group address on ingress with `rstp = 1`: dropped. AF_PACKET taps run
//!   before TC ingress, so stpd has already read it; the bridge, whose own STP is off, would
//!   otherwise flood it like data.
//! * Any other frame with `discard = 1`: dropped, on ingress and on egress. That is the
//!   port's "discarding" state, kept whatever state the kernel forces on the port (forwarding
//!   on link up, port add and bridge up).
//! * On egress, frames to the STP group address always pass: they are stpd's own BPDUs.
//! * Fail closed: a data frame on a port with `rstp = 1` whose `STP_LEASE` entry lies in the
//!   past (`bpf_ktime_get_ns`, i.e. `CLOCK_MONOTONIC`) is dropped both ways and counted in
//!   `lease_drop`, as if the port were discarding. stpd renews the lease while it runs; when
//!   it dies, its neighbours' alternate ports start forwarding once they age its BPDUs out,
//!   and this bridge's ports must have closed before that, or the tree has a loop. BPDUs are
//!   untouched by the lease (ingress: still counted and dropped; egress: still pass). No lease
//!   entry: no expiry, the gate as written.
//!
//! Only the destination address decides, so the gate costs one map lookup per frame, and a
//! second (the lease) only for data frames of a forwarding port with `rstp = 1`.
use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::bpf_ktime_get_ns,
};
use lb_common::{PortStats, StpGate};

use crate::{STP_GATE, STP_LEASE, observe::bump_port};

/// Ingress verdict for a frame of `ifindex`; `to_stp_group`: its destination is
/// 01:80:c2:00:00:00.
#[inline(always)]
pub fn ingress(ifindex: u32, to_stp_group: bool) -> i32 {
    let Some(gate) = STP_GATE.get_ptr(ifindex) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: a value pointer the map lookup returned; read once.
    let gate = unsafe { *gate };
    if to_stp_group {
        if gate.rstp != 0 {
            return shot(ifindex, |s| s.bpdu_dropped += 1);
        }
    } else if gate.discard != 0 {
        return shot(ifindex, |s| s.gate_drop_in += 1);
    } else if lease_expired(ifindex, &gate) {
        return shot(ifindex, |s| s.lease_drop += 1);
    }
    TC_ACT_UNSPEC
}

/// Egress verdict: data frames of a discarding port are dropped, BPDUs always pass.
#[inline(always)]
pub fn egress(ifindex: u32, to_stp_group: bool) -> i32 {
    if to_stp_group {
        return TC_ACT_UNSPEC;
    }
    let Some(gate) = STP_GATE.get_ptr(ifindex) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: as in `ingress`.
    let gate = unsafe { *gate };
    if gate.discard != 0 {
        return shot(ifindex, |s| s.gate_drop_out += 1);
    }
    if lease_expired(ifindex, &gate) {
        return shot(ifindex, |s| s.lease_drop += 1);
    }
    TC_ACT_UNSPEC
}

/// Whether stpd's lease on the gate of `ifindex` has run out: only for `rstp = 1` gates, and
/// only when a lease entry exists.
#[inline(always)]
fn lease_expired(ifindex: u32, gate: &StpGate) -> bool {
    if gate.rstp == 0 {
        return false;
    }
    let Some(until) = STP_LEASE.get_ptr(ifindex) else {
        return false;
    };
    // SAFETY: a value pointer the map lookup returned; bpf_ktime_get_ns has no preconditions.
    unsafe { bpf_ktime_get_ns() > *until }
}

#[inline(always)]
fn shot(ifindex: u32, count: impl FnOnce(&mut PortStats)) -> i32 {
    bump_port(ifindex, count);
    TC_ACT_SHOT as i32
}
