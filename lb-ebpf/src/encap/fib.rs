//! The outer next hop of one copy: `bpf_fib_lookup` from the local VTEP address to a remote
//! one, and `bpf_redirect_neigh` for the case the kernel has not resolved the neighbour yet.
use core::mem;

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup, bpf_redir_neigh,
    },
    helpers::{bpf_fib_lookup as fib_lookup, bpf_redirect_neigh},
    programs::TcContext,
};
use lb_common::vxlan::VxConfig;

use crate::headers::IPPROTO_UDP;

const AF_INET: u8 = 2;

/// Where a copy to one remote VTEP goes.
pub enum NextHop {
    /// Out of `ifindex` with these outer MACs.
    Resolved {
        ifindex: u32,
        dmac: [u8; 6],
        smac: [u8; 6],
    },
    /// Out of `ifindex` toward the next-hop address `nh` (network order, as the FIB returns
    /// it: the gateway or the VTEP itself), whose MAC the kernel does not know yet.
    NoNeigh { ifindex: u32, nh: u32 },
    /// No usable route; the FIB's return code.
    Failed(i64),
}

/// The FIB's next hop from the local VTEP to `remote`, looked up for `cfg.fib_ifindex`.
#[inline(always)]
pub fn next_hop(ctx: &TcContext, cfg: &VxConfig, remote: [u8; 4]) -> NextHop {
    // SAFETY: an all-zero bpf_fib_lookup is a valid input.
    let mut fib: bpf_fib_lookup = unsafe { mem::zeroed() };
    fib.family = AF_INET;
    fib.l4_protocol = IPPROTO_UDP;
    fib.ifindex = cfg.fib_ifindex;
    fib.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(cfg.local_ip);
    fib.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(remote);
    // SAFETY: skb context and a stack struct of the size passed.
    let rc = unsafe {
        fib_lookup(
            ctx.skb.skb as *mut _,
            &mut fib,
            mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if rc == BPF_FIB_LKUP_RET_SUCCESS as i64 {
        NextHop::Resolved {
            ifindex: fib.ifindex,
            dmac: fib.dmac,
            smac: fib.smac,
        }
    } else if rc == BPF_FIB_LKUP_RET_NO_NEIGH as i64 {
        NextHop::NoNeigh {
            ifindex: fib.ifindex,
            // SAFETY: reading a union member the lookup filled in.
            nh: unsafe { fib.__bindgen_anon_4.ipv4_dst },
        }
    } else {
        NextHop::Failed(rc)
    }
}

/// Redirects the frame out of `ifindex` to the IPv4 next hop `nh`, letting the kernel
/// resolve its MAC (and queue the frame meanwhile). Needs `skb->protocol` to be IPv4.
#[inline(always)]
pub fn redirect_neigh(ifindex: u32, nh: u32) -> i32 {
    // SAFETY: an all-zero bpf_redir_neigh is valid; family and address are set.
    let mut params: bpf_redir_neigh = unsafe { mem::zeroed() };
    params.nh_family = AF_INET as u32;
    params.__bindgen_anon_1.ipv4_nh = nh;
    // SAFETY: stack struct of the size passed.
    unsafe {
        bpf_redirect_neigh(
            ifindex,
            &mut params,
            mem::size_of::<bpf_redir_neigh>() as i32,
            0,
        ) as i32
    }
}
