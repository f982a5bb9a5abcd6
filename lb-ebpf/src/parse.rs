//! Which frames `lb_vxdec` decapsulates: the checks, in order, from the outer Ethernet
//! header to the inner one. Every frame that fails one is passed untouched and counted under
//! the first check it failed ([`Pass`]).
use core::ptr::addr_of;

use lb_common::vxlan::{VxConfig, VxStats};

use crate::{
    headers::{ETH_P_IP, EthHdr, IPPROTO_UDP, IPV4_IHL_MIN, Ipv4Hdr, UdpHdr, VxlanHdr},
    headers::{ether_type, ihl_words, is_fragment},
    ptr::{Linear, header_at, ptr_at, read_at},
};

/// Why a frame is not decapsulated; each reason has its `pass_*` counter in `VxStats`.
pub enum Pass {
    NotIp,
    Trunc,
    BadIp,
    IpOpts,
    NotLocal,
    NotUdp,
    Frag,
    Port,
    Flags,
    Vni,
}

impl Pass {
    /// Counts the passed frame under its reason.
    #[inline(always)]
    pub fn count(self, st: &mut VxStats) {
        match self {
            Pass::NotIp => st.pass_not_ip += 1,
            Pass::Trunc => st.pass_trunc += 1,
            Pass::BadIp => st.pass_bad_ip += 1,
            Pass::IpOpts => st.pass_ip_opts += 1,
            Pass::NotLocal => st.pass_not_local += 1,
            Pass::NotUdp => st.pass_not_udp += 1,
            Pass::Frag => st.pass_frag += 1,
            Pass::Port => st.pass_port += 1,
            Pass::Flags => st.pass_flags += 1,
            Pass::Vni => st.pass_vni += 1,
        }
    }
}

/// What a valid VXLAN frame carries that delivery needs.
pub struct Valid {
    pub outer_src: [u8; 4],
    pub inner_dst: [u8; 6],
    pub inner_src: [u8; 6],
    /// The inner EtherType, host order.
    pub inner_type: u16,
    /// The outer UDP checksum is 0 (not computed, as RFC 7348 allows): nothing has checked
    /// the frame's bytes on the way, which matters to a receiver that was told otherwise.
    pub outer_csum0: bool,
    pub inner_len: usize,
}

/// Offsets of the headers of a VXLAN frame without IP options (the only kind accepted).
const IP_OFF: usize = EthHdr::LEN;
const UDP_OFF: usize = IP_OFF + Ipv4Hdr::LEN;
const VX_OFF: usize = UDP_OFF + UdpHdr::LEN;
pub const INNER_OFF: usize = VX_OFF + VxlanHdr::LEN;
/// Bytes of a VXLAN frame the checks and the delivery read: up to the inner Ethernet header.
pub const HEADERS_LEN: usize = INNER_OFF + EthHdr::LEN;

/// Checks that the frame of `ctx` is VXLAN for this endpoint. Headers are read in place,
/// only the fields looked at; the outer Ethernet header (alignment 2) is copied out. For an
/// skb, the headers must be in its linear part ([`HEADERS_LEN`] bytes); the IP length is
/// checked against the whole packet.
#[inline(always)]
pub fn classify<C: Linear>(ctx: &C, cfg: &VxConfig) -> Result<Valid, Pass> {
    let eth: EthHdr = read_at(ctx, 0).ok_or(Pass::Trunc)?;
    if ether_type(&eth) != ETH_P_IP {
        return Err(Pass::NotIp);
    }
    let ip: &Ipv4Hdr = header_at(ctx, IP_OFF).ok_or(Pass::Trunc)?;
    if ip.version() != 4 || ihl_words(ip) < IPV4_IHL_MIN {
        return Err(Pass::BadIp);
    }
    if ihl_words(ip) != IPV4_IHL_MIN {
        return Err(Pass::IpOpts);
    }
    let tot_len = ip.tot_len() as usize;
    if tot_len < Ipv4Hdr::LEN {
        return Err(Pass::BadIp);
    }
    if ip.dst_addr != cfg.local_ip {
        return Err(Pass::NotLocal);
    }
    if ip.proto != IPPROTO_UDP {
        return Err(Pass::NotUdp);
    }
    if is_fragment(ip) {
        return Err(Pass::Frag);
    }
    let udp: &UdpHdr = header_at(ctx, UDP_OFF).ok_or(Pass::Trunc)?;
    if udp.dst_port() != cfg.port {
        return Err(Pass::Port);
    }
    let vx: &VxlanHdr = header_at(ctx, VX_OFF).ok_or(Pass::Trunc)?;
    if !vx.vni_present() {
        return Err(Pass::Flags);
    }
    if vx.vni() != cfg.vni {
        return Err(Pass::Vni);
    }
    let inner = ptr_at::<EthHdr, C>(ctx, INNER_OFF).ok_or(Pass::Trunc)?;
    let frame_len = ctx.total_len();
    if IP_OFF + tot_len > frame_len {
        return Err(Pass::Trunc); // the IP packet claims more than the frame holds
    }
    // SAFETY: `ptr_at` checked that the inner header is in the frame; the addresses are byte
    // arrays (alignment 1), read without assuming the header's alignment of 2.
    let (inner_dst, inner_src, inner_type) = unsafe {
        (
            addr_of!((*inner).dst_addr).read(),
            addr_of!((*inner).src_addr).read(),
            addr_of!((*inner).ether_type).read_unaligned(),
        )
    };
    Ok(Valid {
        outer_src: ip.src_addr,
        inner_dst,
        inner_src,
        inner_type: u16::from_be(inner_type),
        outer_csum0: udp.check == [0, 0],
        inner_len: frame_len - INNER_OFF,
    })
}
