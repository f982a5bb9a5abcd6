//! Sending the encapsulated frame: to the one VTEP of a known unicast destination, or
//! head-end replication to every remote VTEP (`bpf_clone_redirect` for each but the last,
//! `bpf_redirect` for the last). Only the outer destination changes between copies.
use aya_ebpf::{bindings::TC_ACT_SHOT, helpers::bpf_redirect, programs::TcContext};
use aya_log_ebpf::debug;
use lb_common::vxlan::{VX_REMOTE_MAX, VxConfig, VxStats};

use super::{
    fib::{self, NextHop},
    nh_cache, port_hint,
};
use crate::{VX_REMOTE, headers::VxlanEncap};

/// Where the copies of one frame go.
pub struct Dest {
    /// The one VTEP of a known unicast destination, or `None`: every remote.
    pub unicast: Option<[u8; 4]>,
    /// Valid entries of `VX_REMOTE`.
    pub n_remotes: u32,
    /// Coarse monotonic time, for the next-hop cache.
    pub now: u64,
}

/// Writes `h` for each destination and sends the copies: `unicast`'s VTEP only, or the
/// first `n_remotes` of `VX_REMOTE`. `inner_ipv4`: the frame may take `bpf_redirect_neigh`.
#[inline(always)]
pub fn send(
    ctx: &TcContext,
    cfg: &VxConfig,
    st: &mut VxStats,
    h: &mut VxlanEncap,
    dst: Dest,
    inner_ipv4: bool,
) -> i32 {
    let Dest {
        unicast,
        n_remotes,
        now,
    } = dst;
    let copies = if unicast.is_some() { 1 } else { n_remotes };
    for i in 0..VX_REMOTE_MAX {
        if i >= copies {
            break;
        }
        let last = i + 1 == copies;
        let remote = match unicast {
            Some(ip) => ip,
            None => match VX_REMOTE.get(i) {
                Some(r) => r.ip,
                None => break,
            },
        };
        h.set_remote(remote);
        match nh_cache::next_hop(ctx, cfg, st, remote, now) {
            NextHop::Resolved {
                ifindex,
                dmac,
                smac,
            } => {
                h.set_macs(dmac, smac);
                let copy = Copy {
                    remote,
                    ifindex,
                    last,
                    unicast: unicast.is_some(),
                    now,
                };
                if let Some(verdict) = send_resolved(ctx, st, h, copy) {
                    return verdict;
                }
            }
            NextHop::NoNeigh { ifindex, nh } => {
                st.enc_no_neigh += 1;
                debug!(
                    ctx,
                    "vxlan: no neighbour for the next hop to {:i}",
                    u32::from_be_bytes(remote)
                );
                // The kernel resolves the neighbour (and queues the frame meanwhile) only
                // through bpf_redirect_neigh, which needs skb->protocol to be IPv4: true when
                // the inner frame is IPv4. Other copies are dropped; the loader pre-resolves
                // the remote VTEPs' neighbours so this stays rare.
                if last && inner_ipv4 {
                    h.set_macs([0; 6], [0; 6]);
                    if ctx.store(0, &*h, 0).is_err() {
                        st.enc_drop_err += 1;
                        break;
                    }
                    st.enc_copies += 1;
                    return fib::redirect_neigh(ifindex, nh);
                }
            }
            NextHop::Failed(rc) => {
                st.enc_drop_fib += 1;
                debug!(
                    ctx,
                    "vxlan: FIB lookup for {:i} failed ({}), copy dropped",
                    u32::from_be_bytes(remote),
                    rc
                );
            }
        }
    }
    TC_ACT_SHOT
}

/// One copy to a resolved next hop.
struct Copy {
    remote: [u8; 4],
    /// The FIB's egress device (the underlay bridge, a NIC, ...).
    ifindex: u32,
    /// The last copy of the frame (sent by redirect; the others are clones).
    last: bool,
    /// Known unicast (one copy): it may leave straight out of the bridge's port.
    unicast: bool,
    now: u64,
}

/// Writes the headers `h` (MACs set) and sends one copy: the last one by redirect (known
/// unicast straight out of the bridge's port when `VX_PORT` names one), the others by
/// clone. Returns the program's verdict after the last copy.
#[inline(always)]
fn send_resolved(ctx: &TcContext, st: &mut VxStats, h: &VxlanEncap, c: Copy) -> Option<i32> {
    if ctx.store(0, h, 0).is_err() {
        st.enc_drop_err += 1;
        return None;
    }
    if c.last {
        st.enc_copies += 1;
        let mut out = c.ifindex;
        if c.unicast {
            if let Some(port) = port_hint::fresh(c.remote, c.now) {
                port_hint::mark_direct(ctx);
                st.enc_direct += 1;
                out = port;
            }
        }
        // SAFETY: plain helper call.
        return Some(unsafe { bpf_redirect(out, 0) } as i32);
    }
    if ctx.clone_redirect(c.ifindex, 0).is_ok() {
        st.enc_copies += 1;
    } else {
        st.enc_drop_err += 1;
    }
    None
}
