//! Decapsulation (`lb_vxdec`, XDP on the underlay ports): a frame [`crate::parse`] accepted
//! is stripped of its outer headers and redirected through the `VX_LOCAL` DEVMAP, straight
//! to the local endpoint that owns the inner destination MAC (its bridge-side veth: the frame
//! comes out of the endpoint's own interface) or, for anything else, to the tunnel port's
//! peer, so the frame enters the internal bridge as received on the tunnel port (the bridge
//! learns and floods as with the kernel's device). Bytes after the outer IP packet (never
//! present on a well-formed VXLAN frame, which is longer than Ethernet's minimum) stay at the
//! end of the inner frame.
use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use aya_log_ebpf::debug;
use lb_common::vxlan::{VX_EP_MAX, VX_F_FAST, VX_OVERHEAD, VxConfig, VxStats, mac_u64};

use crate::{VX_EPS, VX_LOCAL, fdb, parse::Valid};

/// Learns the inner source, strips the outer headers and redirects the inner frame.
#[inline(always)]
pub fn deliver(ctx: &XdpContext, cfg: &VxConfig, st: &mut VxStats, v: Valid) -> u32 {
    let (key, fast) = local_slot(cfg, v.inner_dst);
    fdb::learn(ctx, &v, st);
    // SAFETY: ctx.ctx is the xdp_md of this program run.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, VX_OVERHEAD as i32) } != 0 {
        st.pass_trunc += 1;
        return xdp_action::XDP_PASS;
    }
    // The loader fills a VX_LOCAL slot for the bridge and for every VX_EPS entry; a slot is
    // only empty when its device has been deleted (the kernel clears it from the DEVMAP).
    // The frame is stripped already and has nowhere to go: drop it and count it.
    match VX_LOCAL.redirect(key, xdp_action::XDP_DROP as u64) {
        Ok(action) => {
            if fast {
                st.dec_fast += 1;
            } else {
                st.dec_bridge += 1;
            }
            st.dec_bytes += v.inner_len as u64;
            action
        }
        Err(_) => {
            st.dec_no_dev += 1;
            debug!(
                ctx,
                "vxlan: no device in VX_LOCAL slot {}, frame dropped", key
            );
            xdp_action::XDP_DROP
        }
    }
}

/// The `VX_LOCAL` slot for the inner destination `dst`, and whether it is a local endpoint
/// (fast forwarding on and `dst` a unicast MAC of `VX_EPS`) rather than the bridge (slot 0).
#[inline(always)]
fn local_slot(cfg: &VxConfig, dst: [u8; 6]) -> (u32, bool) {
    if cfg.flags & VX_F_FAST == 0 || dst[0] & 1 != 0 {
        return (0, false);
    }
    let Some(eps) = VX_EPS.get(0) else {
        return (0, false);
    };
    let dst = mac_u64(dst);
    let n = eps.n.min(VX_EP_MAX);
    for i in 0..VX_EP_MAX {
        if i >= n {
            break;
        }
        if eps.macs[i as usize] == dst {
            return (i + 1, true);
        }
    }
    (0, false)
}
