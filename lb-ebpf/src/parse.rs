//! Which frames `lb_vxdec` decapsulates: the checks, in order, from the outer Ethernet
//! header to the inner one. Every frame that fails one is passed untouched and counted under
//! the first check it failed ([`Pass`]).
use lb_common::vxlan::{VxConfig, VxStats};

use crate::{
    headers::{ETH_P_IP, EthHdr, IPPROTO_UDP, IPV4_IHL_MIN, Ipv4Hdr, UdpHdr, VxlanHdr},
    headers::{ether_type, ihl_words, is_fragment},
    ptr::Packet,
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
    pub inner_len: usize,
}

/// Offsets of the headers of a VXLAN frame without IP options (the only kind accepted).
const IP_OFF: usize = EthHdr::LEN;
const UDP_OFF: usize = IP_OFF + Ipv4Hdr::LEN;
const VX_OFF: usize = UDP_OFF + UdpHdr::LEN;
const INNER_OFF: usize = VX_OFF + VxlanHdr::LEN;

/// Checks that the frame in `pkt` (`frame_len` bytes) is VXLAN for this endpoint.
#[inline(always)]
pub fn classify<P: Packet>(pkt: &P, frame_len: usize, cfg: &VxConfig) -> Result<Valid, Pass> {
    let eth: EthHdr = pkt.read(0).ok_or(Pass::Trunc)?;
    if ether_type(&eth) != ETH_P_IP {
        return Err(Pass::NotIp);
    }
    let ip: Ipv4Hdr = pkt.read(IP_OFF).ok_or(Pass::Trunc)?;
    if ip.version() != 4 || ihl_words(&ip) < IPV4_IHL_MIN {
        return Err(Pass::BadIp);
    }
    if ihl_words(&ip) != IPV4_IHL_MIN {
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
    if is_fragment(&ip) {
        return Err(Pass::Frag);
    }
    let udp: UdpHdr = pkt.read(UDP_OFF).ok_or(Pass::Trunc)?;
    if udp.dst_port() != cfg.port {
        return Err(Pass::Port);
    }
    let vx: VxlanHdr = pkt.read(VX_OFF).ok_or(Pass::Trunc)?;
    if !vx.vni_present() {
        return Err(Pass::Flags);
    }
    if vx.vni() != cfg.vni {
        return Err(Pass::Vni);
    }
    let inner: EthHdr = pkt.read(INNER_OFF).ok_or(Pass::Trunc)?;
    if IP_OFF + tot_len > frame_len {
        return Err(Pass::Trunc); // the IP packet claims more than the frame holds
    }
    Ok(Valid {
        outer_src: ip.src_addr,
        inner_dst: inner.dst_addr,
        inner_src: inner.src_addr,
        inner_len: frame_len - INNER_OFF,
    })
}
