//! rtnetlink operations lbctl needs, each on a handle whose socket lives in one
//! namespace (see `netns::netlink`). Thin wrappers that add context to errors.

use anyhow::{anyhow, Context, Result};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVxlan};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// Index of interface `name`, or None.
pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking up interface {name}")),
    }
}

pub async fn index(h: &Handle, name: &str) -> Result<u32> {
    index_of(h, name)
        .await?
        .ok_or_else(|| anyhow!("interface {name} does not exist"))
}

pub struct BridgeSettings<'a> {
    pub name: &'a str,
    pub mac: [u8; 6],
    pub stp: bool,
    /// `lbctl stpd` runs the tree: the kernel's STP off and its forward delay 0, so the
    /// kernel never promotes a port stpd holds in LEARNING to FORWARDING itself.
    pub rstp: bool,
    pub priority: u16,
    /// Seconds.
    pub hello_time: u32,
    pub max_age: u32,
    pub forward_delay: u32,
    pub mtu: Option<u32>,
}

/// Creates a kernel bridge with its MAC (fixes the bridge ID), STP mode, priority and
/// timers. Kernel timers are in hundredths of a second (clock_t / USER_HZ).
pub async fn add_bridge(h: &Handle, s: &BridgeSettings<'_>) -> Result<()> {
    let fwd = if s.rstp { 0 } else { s.forward_delay * 100 };
    let mut b = LinkBridge::new(s.name)
        .address(s.mac.to_vec())
        .forward_delay(fwd)
        .hello_time(s.hello_time * 100)
        .max_age(s.max_age * 100)
        .priority(s.priority)
        .stp_state(if s.stp && !s.rstp {
            BridgeStpState::KernelStp
        } else {
            BridgeStpState::Disabled
        })
        // Bridged frames must not go through iptables (br_netfilter would drop or
        // mangle them in a lab with no iptables rules meant for them).
        .nf_call_iptables(false)
        .nf_call_ip6tables(false)
        .nf_call_arptables(false);
    if let Some(m) = s.mtu {
        b = b.mtu(m);
    }
    h.link()
        .add(b.build())
        .execute()
        .await
        .with_context(|| format!("creating bridge {}", s.name))
}

/// Creates a veth pair: `name` in this handle's namespace, `peer` directly inside the
/// namespace `peer_ns` (nothing ever appears in the root namespace).
pub async fn add_veth(h: &Handle, name: &str, peer: &str, peer_ns: &str) -> Result<()> {
    add_veth_indexed(h, name, peer, peer_ns, None).await
}

/// [`add_veth`] with the two ends' interface indexes chosen (`(name's, peer's)`). Each
/// namespace numbers its interfaces on its own, so two ends created apart would often get
/// the same index; the kernel then batches the pair's link-down events for up to ~1 s
/// (linkwatch treats the second end's event as the first's), which delays `lbctl stpd`
/// noticing a cut link. Distinct indexes keep each end's event immediate.
pub async fn add_veth_indexed(
    h: &Handle,
    name: &str,
    peer: &str,
    peer_ns: &str,
    indexes: Option<(u32, u32)>,
) -> Result<()> {
    let ns = super::netns::open(peer_ns)?;
    let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let mut msg_peer_index = 0;
    if let Some((a, b)) = indexes {
        peer_msg.header.index = b;
        msg_peer_index = a;
    }
    let mut msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(name.to_string())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build();
    msg.header.index = msg_peer_index;
    let r = h.link().add(msg).execute().await;
    drop(ns);
    r.with_context(|| format!("creating veth {name} <-> {peer_ns}/{peer}"))
}

/// Plugs interface `port` into bridge `bridge`, with 802.1D path cost and port priority.
pub async fn enslave(h: &Handle, port: &str, bridge: &str, cost: u32, prio: u8) -> Result<()> {
    let pi = index(h, port).await?;
    let bi = index(h, bridge).await?;
    h.link()
        .set(LinkUnspec::new_with_index(pi).controller(bi).build())
        .execute()
        .await
        .with_context(|| format!("adding {port} to bridge {bridge}"))?;
    set_port_stp(h, port, cost, prio).await
}

/// Sets a bridge port's path cost and priority.
pub async fn set_port_stp(h: &Handle, port: &str, cost: u32, prio: u8) -> Result<()> {
    let pi = index(h, port).await?;
    h.link()
        .set_port(
            LinkBridgePort::new(pi)
                .cost(cost)
                .priority(prio as u16)
                .build(),
        )
        .execute()
        .await
        .with_context(|| format!("setting STP cost {cost} / priority {prio} on port {port}"))
}

pub async fn set_mtu(h: &Handle, name: &str, mtu: u32) -> Result<()> {
    let i = index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).mtu(mtu).build())
        .execute()
        .await
        .with_context(|| format!("setting MTU {mtu} on {name}"))
}

pub async fn set_up(h: &Handle, name: &str, up: bool) -> Result<()> {
    let i = index(h, name).await?;
    let b = LinkUnspec::new_with_index(i);
    let b = if up { b.up() } else { b.down() };
    h.link()
        .set(b.build())
        .execute()
        .await
        .with_context(|| format!("setting {name} {}", if up { "up" } else { "down" }))
}

pub async fn add_addr(h: &Handle, name: &str, net: Ipv4Net) -> Result<()> {
    let i = index(h, name).await?;
    match h
        .address()
        .add(i, std::net::IpAddr::V4(net.addr()), net.prefix_len())
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        Err(e) => Err(e).with_context(|| format!("adding {net} to {name}")),
    }
}

/// Creates the kernel's vxlan device: VNI, UDP port (4789, not the kernel's legacy
/// 8472), local underlay address, learning on, like the lab text. No default remote: the
/// remote VTEPs are the destinations of its all-zeros FDB entry (`append_fdb`, planned by
/// `topo::flood`), so one device serves any number of hosts.
pub async fn add_vxlan(
    h: &Handle,
    name: &str,
    vni: u32,
    port: u16,
    local: Ipv4Addr,
    mtu: u32,
) -> Result<()> {
    let b = LinkVxlan::new(name, vni)
        .port(port)
        .local(local)
        .learning(true)
        .mtu(mtu);
    h.link()
        .add(b.build())
        .execute()
        .await
        .with_context(|| format!("creating vxlan {name} (vni {vni}, port {port})"))
}

/// Adds `dst` to the destinations of `mac`'s entry in the forwarding table of vxlan device
/// `dev` (`bridge fdb append <mac> dev <dev> dst <dst>`): for the all-zeros MAC, one more
/// remote VTEP that broadcast and unknown unicast are replicated to. A permanent entry of
/// the device itself (NTF_SELF), created on the first append; appending a destination the
/// entry already has changes nothing.
pub async fn append_fdb(h: &Handle, dev: &str, mac: [u8; 6], dst: Ipv4Addr) -> Result<()> {
    use rtnetlink::packet_core::{
        NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
    };
    use rtnetlink::packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    };
    use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
    let i = index(h, dev).await?;
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = i;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(m));
    // APPEND, not EXCL/REPLACE: the all-zeros entry keeps one destination per remote.
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    let what = || {
        let mac = super::plan::mac_string(&mac);
        format!("appending {mac} dst {dst} to the FDB of {dev}")
    };
    let mut resp = h.clone().request(req).with_context(what)?;
    while let Some(msg) = futures::StreamExt::next(&mut resp).await {
        if let NetlinkPayload::Error(e) = msg.payload {
            return Err(rtnetlink::Error::NetlinkError(e)).with_context(what);
        }
    }
    Ok(())
}

/// Flushes the learned (dynamic) MAC entries of a bridge, so traffic follows a new
/// spanning tree at once instead of waiting for entries to age out.
pub async fn flush_fdb(h: &Handle, bridge: &str) -> Result<()> {
    let i = index(h, bridge).await?;
    let mut m = LinkMessage::default();
    m.header.index = i;
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        rtnetlink::packet_route::link::LinkInfo::Kind(InfoKind::Bridge),
        rtnetlink::packet_route::link::LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::FdbFlush])),
    ]));
    // RTM_SETLINK ignores IFLA_LINKINFO; bridge options only apply through RTM_NEWLINK
    // on the existing device (what `ip link set … type bridge fdb_flush` sends).
    h.link()
        .set_port(m)
        .execute()
        .await
        .with_context(|| format!("flushing the MAC table of {bridge}"))
}

/// Every link of the namespace.
pub async fn dump_links(h: &Handle) -> Result<Vec<LinkMessage>> {
    h.link()
        .get()
        .execute()
        .try_collect()
        .await
        .context("dumping links")
}

pub fn link_name(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The Ethernet (6-byte) hardware address of a link message, if it carries one.
pub fn link_mac(m: &LinkMessage) -> Option<[u8; 6]> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(v) => v.as_slice().try_into().ok(),
        _ => None,
    })
}

pub fn is_admin_up(m: &LinkMessage) -> bool {
    m.header.flags.contains(LinkFlags::Up)
}

/// IPv4 addresses per interface index.
pub async fn dump_addrs(h: &Handle) -> Result<Vec<(u32, Ipv4Net)>> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let msgs: Vec<_> = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .context("dumping addresses")?;
    let mut v = Vec::new();
    for m in msgs {
        for a in &m.attributes {
            if let AddressAttribute::Address(std::net::IpAddr::V4(ip)) = a {
                if let Ok(n) = Ipv4Net::new(*ip, m.header.prefix_len) {
                    v.push((m.header.index, n));
                }
            }
        }
    }
    Ok(v)
}

/// The hardware (MAC) address of interface `name`.
pub async fn mac_of(h: &Handle, name: &str) -> Result<[u8; 6]> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    let m = s
        .try_next()
        .await
        .with_context(|| format!("looking up {name}"))?
        .ok_or_else(|| anyhow!("interface {name} does not exist"))?;
    link_mac(&m).ok_or_else(|| anyhow!("interface {name} has no Ethernet address"))
}

/// Kernel packet counters of one interface: (rx packets, tx packets, rx bytes, tx bytes,
/// rx dropped, tx dropped).
pub async fn link_stats(h: &Handle, name: &str) -> Result<Option<[u64; 6]>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    let m = match s.try_next().await {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("looking up {name}")),
    };
    Ok(m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Stats64(st) => Some([
            st.rx_packets,
            st.tx_packets,
            st.rx_bytes,
            st.tx_bytes,
            st.rx_dropped,
            st.tx_dropped,
        ]),
        _ => None,
    }))
}
