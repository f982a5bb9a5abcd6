//! The observer `lb_obs`: counts STP BPDUs and VRRP advertisements per interface on the
//! lab's switch ports. Counting never changes what the kernel does with a frame; only the
//! RSTP gate that runs after it ([`crate::gate`]) can drop one, and only on a port `lbctl stpd`
//! gave a gate entry.
//!
//! # Why TC ingress (a `SchedClassifier`) and not XDP
//!
//! * XDP on a veth costs GRO: attaching even a do-nothing XDP program to a veth switches the
//!   peer to the XDP/NAPI path and has been measured to cut veth TCP throughput severalfold.
//!   An observer must not change the performance of what it observes.
//! * TC ingress runs in `__netif_receive_skb_core` *before* the bridge's `rx_handler`, so on a
//!   port enslaved to a Linux bridge it still sees every frame, including the BPDUs the bridge
//!   consumes itself (link-local 01:80:c2:00:00:00 frames never get past the bridge).
//! * Without a gate entry the program returns `TC_ACT_UNSPEC` (-1), which is `TCX_NEXT` for TCX links: the
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
//! (the TC side of [`Packet::read`]), which works on non-linear skbs and keeps the verifier
//! simple.
use core::mem::{offset_of, size_of};

use aya_ebpf::{bindings::BPF_NOEXIST, programs::TcContext};
use lb_common::{PortStats, VrrpKey};

use crate::{
    OBS_PORT, OBS_VRRP,
    headers::{ETH_P_IP, EthHdr, Ipv4Hdr, ether_type, ihl_words, is_fragment},
    ptr::Packet,
};

const STP_GROUP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];
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
const VRRP_TYPE_ADVERT: u8 = 1;

/// LLC header and the start of a BPDU (802.1D section 9.3), after an 802.3 Ethernet header:
/// what every BPDU has. A configuration BPDU's flags byte follows it.
#[repr(C)]
#[derive(Clone, Copy)]
struct BpduHead {
    /// DSAP, SSAP, control: `42 42 03` for STP.
    llc: [u8; 3],
    /// Protocol identifier, 0.
    proto: [u8; 2],
    _version: u8,
    kind: u8,
}

/// Bytes of LLC before the BPDU proper.
const LLC_LEN: usize = offset_of!(BpduHead, proto);

/// The fixed header of a VRRP packet (RFC 3768 section 5.1, RFC 5798 section 5.1).
#[repr(C)]
#[derive(Clone, Copy)]
struct VrrpHdr {
    /// Version (high nibble) and type (low nibble).
    vtype: u8,
    vrid: u8,
    _priority: u8,
    count_addrs: u8,
    /// v2: auth type, advertisement interval; v3: reserved and interval.
    _rest: [u8; 2],
    _check: [u8; 2],
}

/// The interface of `ctx` (ingress or egress, whichever the program runs on) and whether the
/// frame goes to the STP group address.
#[inline(always)]
pub fn frame_port(ctx: &TcContext) -> (u32, bool) {
    // SAFETY: ctx.skb.skb is the __sk_buff the kernel passed to this program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let dst = ctx.read::<[u8; 6]>(0);
    (ifindex, dst == Some(STP_GROUP))
}

/// Counts the frame of `ctx` if it is a BPDU or a VRRP packet; returns [`frame_port`].
#[inline(always)]
pub fn observe(ctx: &TcContext) -> (u32, bool) {
    // SAFETY: ctx.skb.skb is the __sk_buff the kernel passed to this program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(eth) = ctx.read::<EthHdr>(0) else {
        return (ifindex, false);
    };
    let len_type = ether_type(&eth);
    let to_stp_group = eth.dst_addr == STP_GROUP;
    if to_stp_group {
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
    (ifindex, to_stp_group)
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
    let in_frame = frame.saturating_sub(EthHdr::LEN);
    // Bytes of LLC + BPDU actually present: bounded by the length field (the rest is padding)
    // and by the frame.
    let avail = if (len_type as usize) < in_frame {
        len_type as usize
    } else {
        in_frame
    };
    let Some(hdr) = ctx.read::<BpduHead>(EthHdr::LEN) else {
        return Bpdu::Bad;
    };
    if avail < size_of::<BpduHead>() || hdr.llc != LLC_STP || hdr.proto != [0, 0] {
        return Bpdu::Bad;
    }
    let bpdu_len = avail - LLC_LEN;
    match hdr.kind {
        BPDU_CONFIG if bpdu_len >= BPDU_CONFIG_LEN => {
            let Some(flags) = ctx.read::<u8>(EthHdr::LEN + size_of::<BpduHead>()) else {
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
    let Some(ip) = ctx.read::<Ipv4Hdr>(EthHdr::LEN) else {
        // Shorter than an IPv4 header: a bad VRRP packet if its protocol byte is there and
        // says VRRP, otherwise not ours.
        let proto = ctx.read::<u8>(EthHdr::LEN + offset_of!(Ipv4Hdr, proto));
        return match proto {
            Some(IPPROTO_VRRP) => Ipv4Kind::BadVrrp,
            _ => Ipv4Kind::Other,
        };
    };
    if ip.proto != IPPROTO_VRRP {
        return Ipv4Kind::Other;
    }
    let ihl = ihl_words(&ip) as usize * 4;
    if ip.version() != 4 || ihl < Ipv4Hdr::LEN {
        return Ipv4Kind::BadVrrp;
    }
    if is_fragment(&ip) {
        return Ipv4Kind::BadVrrp; // VRRP is never fragmented
    }
    let tot_len = ip.tot_len() as usize;
    let in_frame = (ctx.len() as usize).saturating_sub(EthHdr::LEN);
    let ip_len = if tot_len < in_frame {
        tot_len
    } else {
        in_frame
    };
    let vrrp_hlen = size_of::<VrrpHdr>();
    if ip_len < ihl + vrrp_hlen {
        return Ipv4Kind::BadVrrp;
    }
    let vrrp_len = ip_len - ihl;
    let Some(v) = ctx.read::<VrrpHdr>(EthHdr::LEN + ihl) else {
        return Ipv4Kind::BadVrrp;
    };
    let version = v.vtype >> 4;
    let kind = v.vtype & 0x0f;
    if (version != 2 && version != 3) || kind != VRRP_TYPE_ADVERT || v.vrid == 0 {
        return Ipv4Kind::BadVrrp;
    }
    if vrrp_len < vrrp_hlen + 4 * v.count_addrs as usize {
        return Ipv4Kind::BadVrrp;
    }
    Ipv4Kind::VrrpAdvert(v.vrid)
}

/// Applies `f` to this CPU's counters of `ifindex`, creating the entry at first use.
#[inline(always)]
pub fn bump_port(ifindex: u32, f: impl FnOnce(&mut PortStats)) {
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
