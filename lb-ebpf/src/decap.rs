//! Decapsulation: a frame [`crate::parse`] accepted is stripped of its outer headers and sent
//! straight to the local endpoint that owns the inner destination MAC (its bridge-side veth:
//! the frame comes out of the endpoint's own interface) or, for anything else, to the tunnel
//! port's peer, so the frame enters the internal bridge as received on the tunnel port (the
//! bridge learns and floods as with the kernel's device). Bytes after the outer IP packet
//! (never present on a well-formed VXLAN frame, which is longer than Ethernet's minimum) stay
//! at the end of the inner frame.
//!
//! Two hooks, one set of checks:
//! * [`deliver`] (`lb_vxdec`, XDP): `bpf_xdp_adjust_head` and a redirect through the
//!   `VX_LOCAL` DEVMAP. Best on a NIC with native XDP, where no skb exists yet.
//! * [`deliver_tc`] (`lb_vxdtc`, TCX ingress): for ports that hand over skbs anyway (veths).
//!   The skb is kept, so a GSO super-packet stays one packet (XDP on a veth makes its peer
//!   segment everything first), and a frame for a local endpoint enters the endpoint's
//!   namespace with `bpf_redirect_peer`, without another pass through a backlog queue.
use aya_ebpf::{
    bindings::{
        BPF_CSUM_LEVEL_DEC, BPF_F_ADJ_ROOM_DECAP_L3_IPV6, BPF_F_ADJ_ROOM_FIXED_GSO, TC_ACT_SHOT,
        TC_ACT_UNSPEC, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, xdp_action,
    },
    helpers::{bpf_csum_level, bpf_redirect, bpf_redirect_peer, bpf_xdp_adjust_head},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::debug;
use lb_common::vxlan::{VX_EP_MAX, VX_F_FAST, VX_OVERHEAD, VxConfig, VxStats, mac_u64};

use crate::{
    VX_EPS, VX_LOCAL, fdb,
    headers::{ETH_P_IP, ETH_P_IPV6, EthHdr},
    parse::Valid,
    ptr::ptr_at,
};

/// Learns the inner source, strips the outer headers and redirects the inner frame (XDP).
#[inline(always)]
pub fn deliver(ctx: &XdpContext, cfg: &VxConfig, st: &mut VxStats, v: Valid) -> u32 {
    let t = local_target(cfg, v.inner_dst);
    fdb::learn(ctx, &v, st);
    // SAFETY: ctx.ctx is the xdp_md of this program run.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, VX_OVERHEAD as i32) } != 0 {
        st.pass_trunc += 1;
        return xdp_action::XDP_PASS;
    }
    // The loader fills a VX_LOCAL slot for the bridge and for every VX_EPS entry; a slot is
    // only empty when its device has been deleted (the kernel clears it from the DEVMAP).
    // The frame is stripped already and has nowhere to go: drop it and count it.
    match VX_LOCAL.redirect(t.slot, xdp_action::XDP_DROP as u64) {
        Ok(action) => {
            count(st, t.fast, v.inner_len);
            action
        }
        Err(_) => {
            st.dec_no_dev += 1;
            debug!(
                ctx,
                "vxlan: no device in VX_LOCAL slot {}, frame dropped", t.slot
            );
            xdp_action::XDP_DROP
        }
    }
}

/// Learns the inner source, strips the outer headers and redirects the inner frame (TC).
///
/// `bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC)` removes the 50 bytes after the outer Ethernet
/// header (outer IP, UDP, VXLAN and the inner Ethernet header), so the outer Ethernet header
/// is then overwritten with the inner one; the skb's MAC and network header offsets follow.
/// `FIXED_GSO` keeps a super-packet's segment size (the inner MSS).
#[inline(always)]
pub fn deliver_tc(ctx: &TcContext, cfg: &VxConfig, st: &mut VxStats, v: Valid) -> i32 {
    let t = local_target(cfg, v.inner_dst);
    fdb::learn(ctx, &v, st);
    let mut flags = BPF_F_ADJ_ROOM_FIXED_GSO as u64;
    if v.inner_type == ETH_P_IPV6 {
        flags |= BPF_F_ADJ_ROOM_DECAP_L3_IPV6 as u64; // skb->protocol follows
    }
    if ctx
        .adjust_room(-(VX_OVERHEAD as i32), BPF_ADJ_ROOM_MAC, flags)
        .is_err()
    {
        st.pass_trunc += 1;
        return TC_ACT_UNSPEC; // untouched: the stack gets it as it came
    }
    let Some(eth) = ptr_at::<EthHdr, TcContext>(ctx, 0) else {
        st.dec_no_dev += 1; // cannot happen: the inner frame is longer than its header
        return TC_ACT_SHOT;
    };
    // SAFETY: 14 bytes inside the linear part (checked); byte arrays and a u16 written
    // without assuming alignment.
    unsafe {
        let eth = eth as *mut EthHdr;
        (*eth).dst_addr = v.inner_dst;
        (*eth).src_addr = v.inner_src;
        core::ptr::addr_of_mut!((*eth).ether_type).write_unaligned(v.inner_type.to_be());
    }
    if v.outer_csum0 {
        // A receiver that vouched for the outer checksum (CHECKSUM_UNNECESSARY) vouched for
        // nothing: it was 0. The inner L4 checksum is then verified by the endpoint's stack.
        // SAFETY: skb of this program run; the helper refuses other checksum states.
        unsafe { bpf_csum_level(ctx.skb.skb, BPF_CSUM_LEVEL_DEC as u64) };
    }
    count(st, t.fast, v.inner_len);
    let ip = v.inner_type == ETH_P_IP || v.inner_type == ETH_P_IPV6;
    // SAFETY: plain helpers; the verdict they return is the program's.
    unsafe {
        if t.fast && ip {
            // Into the endpoint's namespace at once. Only IP: the skb keeps the protocol
            // adjust_room set, which is the inner one only for IPv4 and IPv6.
            bpf_redirect_peer(t.ifindex, 0) as i32
        } else {
            // Out of the veth: its peer (the endpoint, or the bridge's tunnel port) parses
            // the frame as received.
            bpf_redirect(t.ifindex, 0) as i32
        }
    }
}

/// Counts a decapsulated frame of `inner_len` bytes.
#[inline(always)]
fn count(st: &mut VxStats, fast: bool, inner_len: usize) {
    if fast {
        st.dec_fast += 1;
    } else {
        st.dec_bridge += 1;
    }
    st.dec_bytes += inner_len as u64;
}

/// Where a decapsulated frame goes.
struct Target {
    /// `VX_LOCAL` slot: 0 the bridge, `i + 1` local endpoint `i`.
    slot: u32,
    /// The slot's device (for TC, which redirects by ifindex).
    ifindex: u32,
    /// A local endpoint (fast forwarding), not the bridge.
    fast: bool,
}

/// The target for the inner destination `dst`: a local endpoint when fast forwarding is on
/// and `dst` is a unicast MAC of `VX_EPS`, else the bridge.
#[inline(always)]
fn local_target(cfg: &VxConfig, dst: [u8; 6]) -> Target {
    let bridge = Target {
        slot: 0,
        ifindex: cfg.bridge_ifindex,
        fast: false,
    };
    if cfg.flags & VX_F_FAST == 0 || dst[0] & 1 != 0 {
        return bridge;
    }
    let Some(eps) = VX_EPS.get(0) else {
        return bridge;
    };
    let dst = mac_u64(dst);
    let n = eps.n.min(VX_EP_MAX);
    for i in 0..VX_EP_MAX {
        if i >= n {
            break;
        }
        if eps.macs[i as usize] == dst {
            return Target {
                slot: i + 1,
                ifindex: eps.ifindex[i as usize],
                fast: true,
            };
        }
    }
    bridge
}
