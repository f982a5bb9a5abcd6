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
//!
//! Only the destination address decides, so the gate costs one map lookup per frame.
use aya_ebpf::bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use lb_common::PortStats;

use crate::{STP_GATE, observe::bump_port};

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
    if unsafe { (*gate).discard } != 0 {
        return shot(ifindex, |s| s.gate_drop_out += 1);
    }
    TC_ACT_UNSPEC
}

#[inline(always)]
fn shot(ifindex: u32, count: impl FnOnce(&mut PortStats)) -> i32 {
    bump_port(ifindex, count);
    TC_ACT_SHOT as i32
}
