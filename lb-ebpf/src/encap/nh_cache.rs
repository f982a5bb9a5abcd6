//! The next-hop cache (`VX_NH`): each remote VTEP's outer next hop (MACs and egress device)
//! as `bpf_fib_lookup` last named it, so a copy normally costs one hash lookup instead of a
//! FIB lookup (route lookup plus neighbour lookup, the largest part of the encapsulation).
//!
//! # Freshness
//!
//! An entry is used for [`VX_NH_REFRESH_NS`] (1 s) after the lookup that filled it; the first
//! copy after that (on any CPU) looks the FIB up again and rewrites the entry, or removes it
//! when the FIB no longer has a resolved next hop (that copy then takes the FIB's answer:
//! `bpf_redirect_neigh` or a drop, exactly as without the cache). A missing or stale entry
//! therefore always falls back to the FIB. The refresh runs in the packet path rather than
//! in a user-space daemon because the hosts run none (the agent lives in the balancers):
//! one FIB lookup per remote per second and CPU costs nothing measurable, and a changed
//! neighbour MAC or route is picked up within a second (a VTEP's underlay address and MAC
//! rarely change; frames sent to the old MAC in that second are lost as they would be to
//! a neighbour that went away). Nothing is cached while the FIB has no resolved neighbour,
//! so the kernel's resolution through `bpf_redirect_neigh` works as before.
use aya_ebpf::{bindings::BPF_ANY, programs::TcContext};
use lb_common::vxlan::{NextHop as Cached, Remote, VX_NH_REFRESH_NS, VxConfig, VxStats};

use super::fib::{self, NextHop};
use crate::VX_NH;

/// The next hop to `remote` at monotonic time `now` (coarse clock): the cached one while
/// fresh, otherwise the FIB's (which refreshes or clears the cache).
#[inline(always)]
pub fn next_hop(
    ctx: &TcContext,
    cfg: &VxConfig,
    st: &mut VxStats,
    remote: [u8; 4],
    now: u64,
) -> NextHop {
    let key = Remote { ip: remote };
    if let Some(e) = VX_NH.get_ptr(key) {
        // SAFETY: map value pointer, read only; writers replace whole entries.
        let e = unsafe { &*e };
        // A timestamp a little ahead of `now` (another CPU's clock read) counts as fresh.
        if now.saturating_sub(e.checked_ns) <= VX_NH_REFRESH_NS && e.ifindex != 0 {
            return NextHop::Resolved {
                ifindex: e.ifindex,
                dmac: e.dmac,
                smac: e.smac,
            };
        }
    }
    st.enc_fib_lookups += 1;
    let nh = fib::next_hop(ctx, cfg, remote);
    match nh {
        NextHop::Resolved {
            ifindex,
            dmac,
            smac,
        } => {
            let entry = Cached {
                dmac,
                smac,
                ifindex,
                checked_ns: now,
            };
            // A full cache only means this remote keeps using the FIB.
            let _ = VX_NH.insert(key, entry, BPF_ANY as u64);
        }
        _ => {
            let _ = VX_NH.remove(key);
        }
    }
    nh
}
