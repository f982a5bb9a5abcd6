//! The flow hash the outer UDP source port comes from (RFC 7348 section 5: one inner flow,
//! one outer 5-tuple, so the underlay's ECMP and RSS keep a flow on one path and queue).
//!
//! The skb's own hash when it has one (a local socket's `sk_txhash`, or a hash an earlier
//! layer computed): free. Otherwise, for an IPv4 inner packet, a hash of its addresses,
//! protocol and ports read in place (`crate::ptr::tc_read_fast`) and mixed here: a few instructions,
//! where `bpf_get_hash_recalc` runs the kernel's flow dissector (the largest part of the
//! encapsulation after the FIB lookup, measured by `cargo xtask bench datapath`). Other
//! frames (IPv6, ARP, an IPv4 packet too short to hold ports) still take the dissector.
use aya_ebpf::{helpers::bpf_get_hash_recalc, programs::TcContext};

use crate::{
    headers::{EthHdr, IPV4_IHL_MIN, Ipv4Hdr, ihl_words, is_fragment},
    ptr::tc_read_fast,
};

/// An IPv4 header and the 4 bytes after it (the ports of TCP and UDP).
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv4Flow {
    ip: Ipv4Hdr,
    ports: [u8; 4],
}

/// The hash of the inner flow of `ctx` (`inner_ipv4`: the skb's protocol is IPv4).
#[inline(always)]
pub fn flow_hash(ctx: &TcContext, inner_ipv4: bool) -> u32 {
    // SAFETY: the skb of this program run; `hash` is readable by TC programs.
    let own = unsafe { (*ctx.skb.skb).hash };
    if own != 0 {
        return own;
    }
    if inner_ipv4 {
        if let Some(f) = tc_read_fast::<Ipv4Flow>(ctx, EthHdr::LEN) {
            // Ports only where they are: no options moving them, not a fragment.
            let ports = if ihl_words(&f.ip) == IPV4_IHL_MIN && !is_fragment(&f.ip) {
                f.ports
            } else {
                [0; 4]
            };
            return mix(f.ip.src_addr, f.ip.dst_addr, f.ip.proto, ports);
        }
    }
    // SAFETY: the skb of this program run.
    unsafe { bpf_get_hash_recalc(ctx.skb.skb) }
}

/// Mixes a 5-tuple into 32 bits (multiply and xor-shift, as in splitmix64's finaliser): every
/// input bit reaches the low bits the source port keeps.
#[inline(always)]
fn mix(src: [u8; 4], dst: [u8; 4], proto: u8, ports: [u8; 4]) -> u32 {
    let a = u32::from_ne_bytes(src) as u64 | (u32::from_ne_bytes(dst) as u64) << 32;
    let b = u32::from_ne_bytes(ports) as u64 | (proto as u64) << 32;
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as u32
}
