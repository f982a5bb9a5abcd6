//! Encapsulation (`lb_vxenc` on the tunnel port's TC egress, `lb_vxfwd` on the local
//! endpoints' TC ingress): the frame grows by the outer headers ([`grow`]), the headers are
//! built once ([`crate::headers::VxlanEncap`]) and sent to one remote VTEP (known unicast)
//! or replicated to all of them ([`replicate`]), each copy to the next hop the kernel FIB
//! names ([`fib`]), cached per remote VTEP for a second ([`nh_cache`]).
//!
//! # Why each helper
//!
//! * `bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC)` with the `ENCAP_*` flags for IP inner frames:
//!   the kernel then marks the skb as UDP-tunnel encapsulated (inner header offsets,
//!   `SKB_GSO_UDP_TUNNEL`), so a GSO super-packet from a local TCP socket is segmented
//!   correctly wherever the underlay needs it, like the kernel's own vxlan output.
//!   `BPF_F_ADJ_ROOM_FIXED_GSO` keeps the MSS: the internal MTU already leaves room for the
//!   50 bytes (validated in the config). `adjust_room` refuses non-IP skbs, so ARP and other
//!   frames grow with `bpf_skb_change_head` instead (they are never GSO).
//! * The headers are written with `bpf_skb_store_bytes` (`TcContext::store`), not through a
//!   packet pointer: after `bpf_clone_redirect` the skb shares its data with the clone sent,
//!   and the store helper unshares it before writing the next copy's headers.
//! * `bpf_clone_redirect` per remote VTEP for head-end replication, then `bpf_redirect` for the
//!   last copy: the headers are written once and only the outer destination (IP, checksum,
//!   next-hop MACs) is rewritten between copies.
mod fib;
mod flow_hash;
mod nh_cache;
pub mod port_hint;
mod replicate;

use aya_ebpf::{
    bindings::{
        BPF_F_ADJ_ROOM_ENCAP_L2_ETH, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L4_UDP,
        BPF_F_ADJ_ROOM_FIXED_GSO, TC_ACT_SHOT, TC_ACT_UNSPEC, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    helpers::{bpf_ktime_get_coarse_ns, bpf_skb_change_head},
    programs::TcContext,
};
use lb_common::vxlan::{VX_OVERHEAD, VX_REMOTE_MAX, VX_SPORT_MIN, VxConfig, VxStats};

use crate::{
    fdb,
    headers::{ETH_P_IP, ETH_P_IPV6, EthHdr, VxlanEncap},
    ptr::tc_read_fast,
};

/// Encapsulates the frame of `ctx`. With `fast_tx` (from `lb_vxfwd`) only known unicast is
/// handled; every other frame is left untouched and `TC_ACT_UNSPEC` returned.
#[inline(always)]
pub fn encap(ctx: &TcContext, cfg: &VxConfig, st: &mut VxStats, fast_tx: bool) -> i32 {
    let len = ctx.len() as usize;
    let Some(inner_eth) = tc_read_fast::<EthHdr>(ctx, 0) else {
        return refuse(fast_tx, &mut st.enc_drop_err);
    };
    let n_remotes = cfg.n_remotes.min(VX_REMOTE_MAX);
    if n_remotes == 0 {
        return refuse(fast_tx, &mut st.enc_drop_no_remote);
    }
    let is_unicast = inner_eth.dst_addr[0] & 1 == 0;
    if fast_tx && !is_unicast {
        return TC_ACT_UNSPEC;
    }
    // One clock read for the MAC's age and the next hop's (coarse: jiffy resolution is
    // plenty for ages counted in seconds). SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // Known unicast: the VTEP learned for the destination MAC.
    let unicast = if is_unicast {
        fdb::known_vtep(inner_eth.dst_addr, cfg, now)
    } else {
        None
    };
    if fast_tx && unicast.is_none() {
        return TC_ACT_UNSPEC;
    }

    // SAFETY: skb of this program run.
    let proto = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    let inner_ipv4 = proto == ETH_P_IP;
    // Source port from the inner flow's hash (computed before the headers change).
    let hash = flow_hash::flow_hash(ctx, inner_ipv4);
    let sport = VX_SPORT_MIN | (hash as u16 & 0x3fff);
    if !grow(ctx, inner_ipv4 || proto == ETH_P_IPV6) {
        st.enc_drop_err += 1;
        return TC_ACT_SHOT;
    }

    let mut h = VxlanEncap::new(inner_eth, cfg.local_ip, sport, cfg.port, cfg.vni, len);
    if unicast.is_some() {
        st.enc_unicast += 1;
        if fast_tx {
            st.enc_fast += 1;
        }
    } else {
        st.enc_flood += 1;
    }
    st.enc_bytes += len as u64;
    let dst = replicate::Dest {
        unicast,
        n_remotes,
        now,
    };
    replicate::send(ctx, cfg, st, &mut h, dst, inner_ipv4)
}

/// What a frame this program cannot encapsulate gets: left to the bridge by `lb_vxfwd`
/// (`fast_tx`), dropped and counted in `counter` by `lb_vxenc`.
#[inline(always)]
fn refuse(fast_tx: bool, counter: &mut u64) -> i32 {
    if fast_tx {
        return TC_ACT_UNSPEC;
    }
    *counter += 1;
    TC_ACT_SHOT
}

/// Makes room for the outer headers in front of the frame; see the module documentation
/// for which helper and why. `inner_ip`: the inner frame is IPv4 or IPv6.
#[inline(always)]
fn grow(ctx: &TcContext, inner_ip: bool) -> bool {
    if inner_ip {
        let flags = (BPF_F_ADJ_ROOM_FIXED_GSO
            | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
            | BPF_F_ADJ_ROOM_ENCAP_L4_UDP
            | BPF_F_ADJ_ROOM_ENCAP_L2_ETH) as u64
            | encap_l2_len(EthHdr::LEN as u64);
        ctx.adjust_room(VX_OVERHEAD as i32, BPF_ADJ_ROOM_MAC, flags)
            .is_ok()
    } else {
        // SAFETY: skb of this program run.
        unsafe { bpf_skb_change_head(ctx.skb.skb, VX_OVERHEAD as u32, 0) == 0 }
    }
}

/// `BPF_F_ADJ_ROOM_ENCAP_L2(len)`: the inner L2 header length, in the flags' top byte.
#[inline(always)]
const fn encap_l2_len(len: u64) -> u64 {
    (len & 0xff) << 56
}
