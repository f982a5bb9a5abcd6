//! The underlay bridge's port toward each remote VTEP (`VX_PORT`), so known unicast can skip
//! the bridge device.
//!
//! # Why
//!
//! The FIB names the underlay bridge as the next hop's device. A bridge device has no
//! encapsulation offloads (`hw_enc_features` 0), so every UDP-tunnel GSO super-packet
//! redirected to it is segmented in software right there (`validate_xmit_skb`), and the far
//! VTEP then handles 1450-byte frames one by one. A bridge *port* (a veth, most NICs) takes
//! the super-packet whole. The kernel's own vxlan device goes through the bridge device too,
//! and pays the same segmentation.
//!
//! # How the port is learned, and kept honest
//!
//! `lb_vxport`, on the TCX egress of every underlay port, sees what the bridge sends out of
//! that port. An encapsulated frame of this VTEP (outer source the local address, UDP to the
//! VXLAN port) that the bridge sent there names the bridge's own choice of port for that
//! remote VTEP, made with its FDB and its STP port states ([`learn`]). A hint is used for
//! [`VX_PORT_TTL_NS`] (20 ms); after that the next frame goes through the bridge again and
//! the bridge chooses afresh. Frames sent straight out skip the bridge's port states and its
//! view of carrier loss, so the hint's life is what bounds sending out of a port that has
//! stopped forwarding: under RSTP's recovery of a link event, not a second as with the
//! next-hop cache (whose staleness only delays a changed neighbour MAC). Frames sent straight
//! out of a port carry [`VX_DIRECT_MARK`] in `cb[0]` and are not learned from (the bridge
//! clears the control block of what it sends itself); otherwise a port would keep
//! confirming itself.
//!
//! A frame the bridge floods (its FDB does not know the outer destination) leaves through
//! every forwarding port, one copy after another. So a frame seen on another port than the
//! last one, within [`FLOOD_WINDOW_NS`], clears the hint (`ifindex` 0): nothing is sent
//! straight. Two frames in a row on one port mean the bridge sends to one port again, and
//! that port is the hint once more, even under steady traffic.
use aya_ebpf::{bindings::BPF_ANY, helpers::bpf_ktime_get_coarse_ns, programs::TcContext};
use lb_common::vxlan::{PortHint, Remote, VX_DIRECT_MARK, VX_PORT_TTL_NS, VxConfig, VxStats};

use crate::{
    VX_PORT,
    headers::{
        ETH_P_IP, EthHdr, IPPROTO_UDP, IPV4_IHL_MIN, Ipv4Hdr, UdpHdr, ether_type, ihl_words,
    },
    ptr::{header_at, read_at},
};

/// Two ports seeing one remote's frames within this long: the bridge flooded it.
const FLOOD_WINDOW_NS: u64 = 20_000_000;

/// The port to send `remote`'s known unicast out of, if the bridge named one less than
/// [`VX_PORT_TTL_NS`] ago.
#[inline(always)]
pub fn fresh(remote: [u8; 4], now: u64) -> Option<u32> {
    let h = VX_PORT.get_ptr(Remote { ip: remote })?;
    // SAFETY: map value pointer, read only; writers replace whole entries.
    let h = unsafe { &*h };
    (h.ifindex != 0 && now.saturating_sub(h.seen_ns) <= VX_PORT_TTL_NS).then_some(h.ifindex)
}

/// Marks the frame of `ctx` as sent straight out of a port (see the module documentation).
#[inline(always)]
pub fn mark_direct(ctx: &TcContext) {
    // SAFETY: the __sk_buff of this program run; TC programs may write cb[].
    unsafe { (*ctx.skb.skb).cb[0] = VX_DIRECT_MARK };
}

/// `lb_vxport`: records the port the bridge sent one of this VTEP's frames out of.
#[inline(always)]
pub fn learn(ctx: &TcContext, cfg: &VxConfig, st: &mut VxStats) {
    // SAFETY: the __sk_buff of this program run, read only.
    let (mark, port) = unsafe { ((*ctx.skb.skb).cb[0], (*ctx.skb.skb).ifindex) };
    if mark == VX_DIRECT_MARK {
        return;
    }
    let Some(remote) = remote_of(ctx, cfg) else {
        return;
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let key = Remote { ip: remote };
    let mut hint = PortHint {
        ifindex: port,
        last: port,
        seen_ns: now,
    };
    if let Some(h) = VX_PORT.get_ptr(key) {
        // SAFETY: map value pointer, read only.
        let h = unsafe { &*h };
        let age = now.saturating_sub(h.seen_ns);
        if h.ifindex == port && age <= VX_PORT_TTL_NS / 2 {
            return; // confirmed recently enough: no write
        }
        if h.last != port && age <= FLOOD_WINDOW_NS {
            hint.ifindex = 0; // another port a moment ago: flooded
        }
    }
    if VX_PORT.insert(key, hint, BPF_ANY as u64).is_ok() {
        st.port_learned += 1;
    }
}

/// The remote VTEP a frame of this VTEP is addressed to, or `None` for any other frame.
#[inline(always)]
fn remote_of(ctx: &TcContext, cfg: &VxConfig) -> Option<[u8; 4]> {
    let eth: EthHdr = read_at(ctx, 0)?;
    if ether_type(&eth) != ETH_P_IP {
        return None;
    }
    let ip: &Ipv4Hdr = header_at(ctx, EthHdr::LEN)?;
    if ihl_words(ip) != IPV4_IHL_MIN || ip.proto != IPPROTO_UDP || ip.src_addr != cfg.local_ip {
        return None;
    }
    let udp: &UdpHdr = header_at(ctx, EthHdr::LEN + Ipv4Hdr::LEN)?;
    (udp.dst_port() == cfg.port).then_some(ip.dst_addr)
}
