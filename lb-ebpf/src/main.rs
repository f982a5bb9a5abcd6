//! lbctl's observation program: counts STP BPDUs and VRRP advertisements per interface on the
//! lab's switch ports. It observes only; it never changes what the kernel does with a frame.
//!
//! # Why TC ingress (a `SchedClassifier`) and not XDP
//!
//! * XDP on a veth costs GRO: attaching even a do-nothing XDP program to a veth switches the
//!   peer to the XDP/NAPI path and has been measured to cut veth TCP throughput severalfold.
//!   An observer must not change the performance of what it observes.
//! * TC ingress runs in `__netif_receive_skb_core` *before* the bridge's `rx_handler`, so on a
//!   port enslaved to a Linux bridge it still sees every frame, including the BPDUs the bridge
//!   consumes itself (link-local 01:80:c2:00:00:00 frames never get past the bridge).
//! * The program always returns `TC_ACT_UNSPEC` (-1), which is `TCX_NEXT` for TCX links: the
//!   frame continues to the next TCX program, then legacy `clsact` filters, then the normal
//!   receive path, exactly as if the program were not there. (`TC_ACT_OK` would be `TCX_PASS`
//!   and `TC_ACT_PIPE` breaks the TCX chain: both would skip programs attached after this one,
//!   e.g. a later data path program, so neither is used.)
//!
//! # What is counted (per ingress ifindex)
//!
//! * STP: frames to 01:80:c2:00:00:00 with an 802.3 length field, LLC `42 42 03` and BPDU
//!   protocol identifier 0. Config BPDUs (type 0x00, 35 bytes), config BPDUs with the topology
//!   change flag 0x01 (also counted as config), TCN BPDUs (type 0x80, 4 bytes), RST BPDUs
//!   (type 0x02, 36 bytes). Anything else sent to that address (truncated by the length field
//!   or by the frame, other LLC header, protocol id not 0, unknown type, Ethernet II framing)
//!   counts as `bpdu_bad`.
//! * VRRP: IPv4 (ethertype 0x0800, no VLAN) protocol 112. The IPv4 header length comes from
//!   IHL; a well-formed advertisement (version 2 or 3, type 1, VRID not 0, long enough for its
//!   address count in both the IP total length and the frame) counts in `vrrp` and in
//!   `OBS_VRRP[(ifindex, vrid)]`; any other protocol 112 packet counts in `vrrp_bad`.
//!
//! Maps are per-CPU hashes declared with `#[btf_map]`, so they carry BTF (bpftool prints field
//! names); userspace sums the CPUs. Packet bytes are read with `bpf_skb_load_bytes`
//! (`TcContext::load`), which works on non-linear skbs and keeps the verifier simple.
#![no_std]
#![no_main]

mod health;
mod vxlan;

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_UNSPEC},
    btf_maps::PerCpuHashMap,
    macros::{btf_map, classifier},
    programs::TcContext,
};
use lb_common::{OBS_PORT_MAX, OBS_VRRP_MAX, PortStats, VrrpKey};

/// Per-interface counters, key: ingress ifindex.
#[btf_map]
static OBS_PORT: PerCpuHashMap<u32, PortStats, { OBS_PORT_MAX as usize }> = PerCpuHashMap::new();

/// VRRP advertisements per (ifindex, VRID).
#[btf_map]
static OBS_VRRP: PerCpuHashMap<VrrpKey, u64, { OBS_VRRP_MAX as usize }> = PerCpuHashMap::new();

const ETH_HLEN: usize = 14;
const STP_GROUP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];
const ETH_P_IP: u16 = 0x0800;
/// Largest 802.3 length field; bigger values are ethertypes.
const ETH_DATA_LEN: u16 = 1500;
const LLC_STP: [u8; 3] = [0x42, 0x42, 0x03];
const BPDU_CONFIG: u8 = 0x00;
const BPDU_RSTP: u8 = 0x02;
const BPDU_TCN: u8 = 0x80;
const BPDU_CONFIG_LEN: usize = 35;
const BPDU_RSTP_LEN: usize = 36;
const BPDU_TCN_LEN: usize = 4;
const BPDU_FLAG_TC: u8 = 0x01;
const IPPROTO_VRRP: u8 = 112;
const VRRP_HLEN: usize = 8;
const VRRP_TYPE_ADVERT: u8 = 1;

/// TC ingress observer; see the crate documentation. Always lets the frame through unchanged.
#[classifier]
pub fn lb_obs(ctx: TcContext) -> i32 {
    observe(&ctx);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn observe(ctx: &TcContext) {
    let Ok(eth) = ctx.load::<[u8; ETH_HLEN]>(0) else {
        return;
    };
    // SAFETY: ctx.skb.skb is the __sk_buff the kernel passed to this program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let len_type = u16::from_be_bytes([eth[12], eth[13]]);
    let dst = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    if dst == STP_GROUP {
        let kind = classify_bpdu(ctx, len_type);
        bump_port(ifindex, |s| match kind {
            Bpdu::Config { tc } => {
                s.bpdu_config += 1;
                if tc {
                    s.bpdu_tc += 1;
                }
            }
            Bpdu::Tcn => s.bpdu_tcn += 1,
            Bpdu::Rstp => s.bpdu_rstp += 1,
            Bpdu::Bad => s.bpdu_bad += 1,
        });
    } else if len_type == ETH_P_IP {
        match classify_ipv4(ctx) {
            Ipv4Kind::Other => {}
            Ipv4Kind::BadVrrp => bump_port(ifindex, |s| s.vrrp_bad += 1),
            Ipv4Kind::VrrpAdvert(vrid) => {
                bump_port(ifindex, |s| s.vrrp += 1);
                bump_vrrp(VrrpKey::new(ifindex, vrid));
            }
        }
    }
}

enum Bpdu {
    Config { tc: bool },
    Tcn,
    Rstp,
    Bad,
}

#[inline(always)]
fn classify_bpdu(ctx: &TcContext, len_type: u16) -> Bpdu {
    if len_type > ETH_DATA_LEN {
        return Bpdu::Bad; // Ethernet II frame to the STP address: not a BPDU
    }
    let frame = ctx.len() as usize;
    let in_frame = frame.saturating_sub(ETH_HLEN);
    // Bytes of LLC + BPDU actually present: bounded by the length field (the rest is padding)
    // and by the frame.
    let avail = if (len_type as usize) < in_frame {
        len_type as usize
    } else {
        in_frame
    };
    // LLC (3) + protocol id (2) + version (1) + type (1)
    let Ok(hdr) = ctx.load::<[u8; 7]>(ETH_HLEN) else {
        return Bpdu::Bad;
    };
    if avail < 7 || hdr[0..3] != LLC_STP || hdr[3] != 0 || hdr[4] != 0 {
        return Bpdu::Bad;
    }
    let bpdu_len = avail - 3;
    match hdr[6] {
        BPDU_CONFIG if bpdu_len >= BPDU_CONFIG_LEN => {
            let Ok(flags) = ctx.load::<u8>(ETH_HLEN + 7) else {
                return Bpdu::Bad;
            };
            Bpdu::Config {
                tc: flags & BPDU_FLAG_TC != 0,
            }
        }
        BPDU_TCN if bpdu_len >= BPDU_TCN_LEN => Bpdu::Tcn,
        BPDU_RSTP if bpdu_len >= BPDU_RSTP_LEN => Bpdu::Rstp,
        _ => Bpdu::Bad,
    }
}

enum Ipv4Kind {
    Other,
    BadVrrp,
    VrrpAdvert(u8),
}

#[inline(always)]
fn classify_ipv4(ctx: &TcContext) -> Ipv4Kind {
    // Version/IHL .. protocol: enough to know whether this is VRRP at all.
    let Ok(ip) = ctx.load::<[u8; 10]>(ETH_HLEN) else {
        return Ipv4Kind::Other;
    };
    if ip[9] != IPPROTO_VRRP {
        return Ipv4Kind::Other;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Ipv4Kind::BadVrrp;
    }
    let tot_len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x3fff != 0 {
        return Ipv4Kind::BadVrrp; // MF set or non-zero offset: VRRP is never fragmented
    }
    let in_frame = (ctx.len() as usize).saturating_sub(ETH_HLEN);
    let ip_len = if tot_len < in_frame {
        tot_len
    } else {
        in_frame
    };
    if ip_len < ihl + VRRP_HLEN {
        return Ipv4Kind::BadVrrp;
    }
    let vrrp_len = ip_len - ihl;
    let Ok(v) = ctx.load::<[u8; VRRP_HLEN]>(ETH_HLEN + ihl) else {
        return Ipv4Kind::BadVrrp;
    };
    let version = v[0] >> 4;
    let kind = v[0] & 0x0f;
    let vrid = v[1];
    let addrs = v[3] as usize;
    if (version != 2 && version != 3) || kind != VRRP_TYPE_ADVERT || vrid == 0 {
        return Ipv4Kind::BadVrrp;
    }
    if vrrp_len < VRRP_HLEN + 4 * addrs {
        return Ipv4Kind::BadVrrp;
    }
    Ipv4Kind::VrrpAdvert(vrid)
}

#[inline(always)]
fn bump_port(ifindex: u32, f: impl FnOnce(&mut PortStats)) {
    let p = match OBS_PORT.get_ptr_mut(ifindex) {
        Some(p) => p,
        None => {
            let _ = OBS_PORT.insert(ifindex, PortStats::default(), BPF_NOEXIST as u64);
            match OBS_PORT.get_ptr_mut(ifindex) {
                Some(p) => p,
                None => return, // map full
            }
        }
    };
    // SAFETY: per-CPU value of this CPU; BPF programs run with migration disabled.
    f(unsafe { &mut *p });
}

#[inline(always)]
fn bump_vrrp(key: VrrpKey) {
    let p = match OBS_VRRP.get_ptr_mut(key) {
        Some(p) => p,
        None => {
            let _ = OBS_VRRP.insert(key, 0u64, BPF_NOEXIST as u64);
            match OBS_VRRP.get_ptr_mut(key) {
                Some(p) => p,
                None => return, // map full
            }
        }
    };
    // SAFETY: per-CPU value of this CPU.
    unsafe { *p += 1 };
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
