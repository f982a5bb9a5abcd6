//! Packet headers as `#[repr(C)]` structs. Ethernet, IPv4, UDP and VXLAN are the
//! `network-types` ones (field for field the wire layout, multi-byte fields as big-endian
//! byte arrays); [`VxlanEncap`] is ours: the block the encapsulation writes in front of the
//! inner frame.
//!
//! # Wire format of what the VTEP writes (RFC 7348)
//!
//! Outer Ethernet (next hop MACs from `bpf_fib_lookup`), IPv4 (no options, DF, TTL 64, id 0,
//! header checksum computed here), UDP to `VxConfig::port` from a source port in
//! 49152..=65535 derived from a hash of the inner flow (`encap/flow_hash.rs`: one inner flow
//! keeps one outer 5-tuple), UDP checksum 0 (allowed for IPv4), VXLAN header with the I flag
//! and the VNI. The kernel's vxlan device accepts exactly this, and we accept what it sends.
use core::mem;

use lb_common::{csum, vxlan::VX_OVERHEAD};
pub use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr, vxlan::VxlanHdr};

/// EtherType IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// IPv4 protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv4 header length without options, as the IHL field counts it (32-bit words).
pub const IPV4_IHL_MIN: u8 = 5;
/// IPv4 "don't fragment" flag, in the 3 flag bits of the fragment field.
const IP_FLAG_DF: u8 = 0b010;
/// IPv4 "more fragments" flag.
const IP_FLAG_MF: u8 = 0b001;
/// TTL of the outer header.
const OUTER_TTL: u8 = 64;

/// The EtherType of `eth`, host order.
#[inline(always)]
pub fn ether_type(eth: &EthHdr) -> u16 {
    u16::from_be(eth.ether_type)
}

/// The IHL field of `ip` (header length in 32-bit words).
#[inline(always)]
pub fn ihl_words(ip: &Ipv4Hdr) -> u8 {
    ip.vihl & 0x0f
}

/// Whether `ip` is a fragment: MF set or a non-zero offset.
#[inline(always)]
pub fn is_fragment(ip: &Ipv4Hdr) -> bool {
    ip.frag_flags() & IP_FLAG_MF != 0 || ip.frag_offset() != 0
}

/// What the encapsulation writes at the start of the grown frame: the outer headers and,
/// after them, the inner Ethernet header again. Writing the inner header too makes one store
/// right for both ways the frame grows: `bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC)` opens the
/// room *after* the inner Ethernet header (which then has to move to the end of the block),
/// `bpf_skb_change_head` opens it in front (where rewriting it changes nothing).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VxlanEncap {
    pub eth: EthHdr,
    pub ip: Ipv4Hdr,
    pub udp: UdpHdr,
    pub vx: VxlanHdr,
    pub inner_eth: EthHdr,
}

const _: () = assert!(mem::size_of::<VxlanEncap>() == VX_OVERHEAD + EthHdr::LEN);
const _: () = assert!(EthHdr::LEN + Ipv4Hdr::LEN + UdpHdr::LEN + VxlanHdr::LEN == VX_OVERHEAD);

impl VxlanEncap {
    /// The block for an inner frame of `inner_len` bytes starting with `inner_eth`, sent from
    /// `local_ip` to UDP `port` from `sport` with `vni`. The outer MACs, the destination
    /// address and the IPv4 checksum are per copy: [`Self::set_remote`], [`Self::set_macs`].
    #[inline(always)]
    pub fn new(
        inner_eth: EthHdr,
        local_ip: [u8; 4],
        sport: u16,
        port: u16,
        vni: u32,
        inner_len: usize,
    ) -> Self {
        let tot_len = (inner_len + VX_OVERHEAD - EthHdr::LEN).min(0xffff) as u16;
        let mut ip = Ipv4Hdr {
            vihl: 0,
            tos: 0,
            tot_len: [0; 2],
            id: [0; 2],
            frags: [0; 2],
            ttl: OUTER_TTL,
            proto: IPPROTO_UDP,
            check: [0; 2],
            src_addr: local_ip,
            dst_addr: [0; 4],
        };
        ip.set_vihl(4, Ipv4Hdr::LEN as u8);
        ip.set_tot_len(tot_len);
        ip.set_frags(IP_FLAG_DF, 0);
        let mut udp = UdpHdr {
            src: [0; 2],
            dst: [0; 2],
            len: [0; 2],
            check: [0; 2],
        };
        udp.set_src_port(sport);
        udp.set_dst_port(port);
        udp.set_len(tot_len - Ipv4Hdr::LEN as u16);
        VxlanEncap {
            // Placeholders: `set_macs` writes the next hop's addresses before every store.
            // (Zeros would cost a 12-byte memset, which the BPF target compiles to a byte
            // loop in a subprogram.)
            eth: EthHdr {
                dst_addr: inner_eth.dst_addr,
                src_addr: inner_eth.src_addr,
                ether_type: ETH_P_IP.to_be(),
            },
            ip,
            udp,
            vx: VxlanHdr::new(vni),
            inner_eth,
        }
    }

    /// Addresses the copy to the remote VTEP `ip` and recomputes the IPv4 header checksum.
    #[inline(always)]
    pub fn set_remote(&mut self, ip: [u8; 4]) {
        self.ip.dst_addr = ip;
        self.ip.check = [0; 2];
        // SAFETY: `Ipv4Hdr` is `#[repr(C)]` of bytes and byte arrays only (20 bytes, no
        // padding), so every bit pattern of it is a valid `[u8; 20]`.
        let bytes: [u8; Ipv4Hdr::LEN] = unsafe { mem::transmute(self.ip) };
        self.ip.set_checksum(csum::ipv4_header(&bytes));
    }

    /// The outer Ethernet addresses (next hop, egress device).
    #[inline(always)]
    pub fn set_macs(&mut self, dst: [u8; 6], src: [u8; 6]) {
        self.eth.dst_addr = dst;
        self.eth.src_addr = src;
    }
}
