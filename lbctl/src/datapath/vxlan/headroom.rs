//! Headroom for the BPF VTEP's outer headers: a "headroom port" on the bridge that holds the
//! local endpoints.
//!
//! `lb_vxfwd` and `lb_vxenc` push 50 bytes of outer headers with `bpf_skb_adjust_room`. When
//! the frame has less room than that in front of it, the kernel reallocates the skb's head
//! for every frame (measured: about 150 ns of `lb_vxfwd`'s 500 per run). The room a sender's
//! stack reserves is its device's `needed_headroom`, and on a bridge the kernel manages it:
//! the bridge takes the largest `needed_headroom` of its ports (veths count as 0: they are
//! `IFF_PHONY_HEADROOM`) and hands it to every port (`netdev_set_rx_headroom`); a veth
//! passes it on to its peer (`veth_set_rx_headroom`), i.e. to the endpoint's own interface
//! in its namespace. That is how the kernel's vxlan device, as a bridge port, gives the
//! endpoints room for its headers.
//!
//! Why a headroom port, and not something else (checked against kernel 6.18's sources):
//! * A veth's headroom cannot be set from user space: `IFLA_HEADROOM` is reported in link
//!   dumps but rejected in a request (`NLA_REJECT`), and only a master device calls
//!   `ndo_set_rx_headroom`.
//! * netkit takes a headroom at creation (`IFLA_NETKIT_HEADROOM`), but it is
//!   `IFF_PHONY_HEADROOM` too, so as a bridge port it raises nothing, and it has no
//!   `ndo_xdp_xmit`, so the tunnel port's peer (slot 0 of `lb_vxdec`'s DEVMAP) could not be
//!   one.
//! * A kernel vxlan device without a lower device asks for exactly the outer headers
//!   (`VXLAN_HEADROOM`, 50 bytes over IPv4) and needs nothing else: kept administratively
//!   down it opens no socket, its bridge port stays `disabled` and it carries nothing. Unlike
//!   gretap it does not make the kernel create fallback devices in every namespace.
//!
//! So the headroom port is a down vxlan device enslaved to the bridge, named with an alias
//! ([`ALIAS`]) that marks it for the lab's readers (`topo::inspect` leaves it out of the
//! bridge's ports, so STP theory, `status`, `graph` and `verify` never see a disabled port)
//! and explains it to whoever runs `ip link`. [`add`] works on any bridge in the caller's
//! namespace, a lab's or a real host's.
use anyhow::{bail, Context as _, Result};
use rtnetlink::packet_core::Nla as _;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};

/// Bytes the BPF VTEP pushes in front of a frame: outer Ethernet (14), IPv4 (20), UDP (8)
/// and VXLAN (8) headers. The same as the kernel's `VXLAN_HEADROOM`.
pub const OUTER_HEADROOM: u16 = 50;

/// The alias (`IFLA_IFALIAS`) of every headroom port; readers recognise the port by it.
pub const ALIAS: &str = "lbctl headroom port: kept down, carries nothing; its needed_headroom \
                         gives the bridge's ports room for the BPF VTEP's outer headers";

/// `IFLA_HEADROOM` (include/uapi/linux/if_link.h; new in 2025, kernel 6.18 has it): the
/// device's `needed_headroom`, a u16 in link dumps. netlink-packet-route 0.34 does not name
/// it (its attribute table stops at `IFLA_NETNS_IMMUTABLE`, 67).
pub const IFLA_HEADROOM: u16 = 68;

/// One headroom port to create.
#[derive(Debug, Clone)]
pub struct HeadroomPort<'a> {
    /// The bridge whose ports need the room (the one holding the local endpoints).
    pub bridge: &'a str,
    /// The port's name (see [`port_name`]).
    pub name: &'a str,
    /// The vxlan device's VNI and UDP port: unused (it stays down), but the kernel refuses a
    /// second device with the VNI and port of an existing one, so give the tunnel's own in a
    /// namespace without a kernel vxlan device for it.
    pub vni: u32,
    pub port: u16,
    /// Its MTU: at least the bridge's, or the bridge would lower its own to it.
    pub mtu: u32,
}

/// The headroom port's name for a VTEP whose tunnel port is `device`: `<device>h`. The
/// config's validation claims it (and the peer's `<device>p`) in the host's namespace.
pub fn port_name(device: &str) -> String {
    format!("{device}h")
}

/// The `needed_headroom` a link message reports (`IFLA_HEADROOM`), if the kernel sends it.
pub fn link_headroom(m: &LinkMessage) -> Option<u16> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Other(nla) if nla.kind() == IFLA_HEADROOM && nla.value_len() == 2 => {
            let mut v = [0u8; 2];
            nla.emit_value(&mut v);
            Some(u16::from_ne_bytes(v))
        }
        _ => None,
    })
}

/// Whether a link is a headroom port (carries [`ALIAS`]).
pub fn is_headroom_port(m: &LinkMessage) -> bool {
    m.attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::IfAlias(s) if s == ALIAS))
}

/// Each port of bridge `bridge_index` (headroom ports left out) with its `needed_headroom`
/// (None: the kernel does not report it). Pure.
pub fn port_headrooms(links: &[LinkMessage], bridge_index: u32) -> Vec<(String, Option<u16>)> {
    links
        .iter()
        .filter(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == bridge_index))
        })
        .filter(|m| !is_headroom_port(m))
        .map(|m| {
            let name = crate::topo::nl::link_name(m).unwrap_or("?").to_string();
            (name, link_headroom(m))
        })
        .collect()
}

/// The least headroom any port of the bridge has (None: no port, or one the kernel does
/// not report). Pure.
pub fn least_headroom(ports: &[(String, Option<u16>)]) -> Option<u16> {
    ports.iter().map(|(_, h)| *h).min().flatten()
}

/// Creates the headroom port: a vxlan device without lower device, alias [`ALIAS`],
/// enslaved to `p.bridge` and left down. Then checks that every other port of the bridge
/// has [`OUTER_HEADROOM`] bytes of `needed_headroom` and fails naming those that do not
/// (a kernel that does not report `IFLA_HEADROOM` is not checked: a warning says so).
///
/// Runs on a handle in the bridge's namespace. Removing the port (`ip link del`, or the
/// namespace going) returns the bridge to the headroom its other ports ask for.
pub async fn add(h: &Handle, p: &HeadroomPort<'_>) -> Result<()> {
    let what = || format!("headroom port {} on bridge {}", p.name, p.bridge);
    let bridge = crate::topo::nl::index(h, p.bridge).await?;
    h.link()
        .add(
            LinkVxlan::new(p.name, p.vni)
                .port(p.port)
                .mtu(p.mtu)
                .build(),
        )
        .execute()
        .await
        .with_context(|| format!("creating {} (vxlan, VNI {}, UDP {})", what(), p.vni, p.port))?;
    let i = crate::topo::nl::index(h, p.name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).alias(ALIAS).build())
        .execute()
        .await
        .with_context(|| format!("naming {} with its alias", what()))?;
    h.link()
        .set(LinkUnspec::new_with_index(i).controller(bridge).build())
        .execute()
        .await
        .with_context(|| format!("enslaving {}", what()))?;
    let links = crate::topo::nl::dump_links(h).await?;
    let ports = port_headrooms(&links, bridge);
    if least_headroom(&ports).is_none() && !ports.is_empty() {
        // Older kernels do not report IFLA_HEADROOM: the room is given all the same.
        tracing::warn!(
            "{}: the kernel does not report needed_headroom; not checked",
            what()
        );
        return Ok(());
    }
    let short: Vec<_> = ports
        .iter()
        .filter(|(_, have)| have.is_some_and(|h| h < OUTER_HEADROOM))
        .collect();
    if !short.is_empty() {
        bail!(
            "{}: ports still short of {OUTER_HEADROOM} bytes of headroom: {short:?}",
            what()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::DefaultNla;

    fn link(name: &str, master: Option<u32>, headroom: Option<u16>, alias: bool) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(i) = master {
            m.attributes.push(LinkAttribute::Controller(i));
        }
        if let Some(h) = headroom {
            m.attributes.push(LinkAttribute::Other(DefaultNla::new(
                IFLA_HEADROOM,
                h.to_ne_bytes().to_vec(),
            )));
        }
        if alias {
            m.attributes.push(LinkAttribute::IfAlias(ALIAS.into()));
        }
        m
    }

    #[test]
    fn the_name_is_as_long_as_the_tunnel_peers() {
        assert_eq!(port_name("vxlan0"), "vxlan0h");
        assert_eq!(port_name("vxlan0").len(), "vxlan0p".len());
    }

    #[test]
    fn headroom_is_read_from_the_raw_attribute() {
        assert_eq!(link_headroom(&link("a", None, Some(50), false)), Some(50));
        assert_eq!(link_headroom(&link("a", None, None, false)), None);
        // A malformed attribute (wrong length) is not a headroom.
        let mut m = link("a", None, None, false);
        m.attributes.push(LinkAttribute::Other(DefaultNla::new(
            IFLA_HEADROOM,
            vec![1],
        )));
        assert_eq!(link_headroom(&m), None);
    }

    #[test]
    fn the_bridges_ports_are_read_without_the_headroom_port() {
        let links = [
            link("vswin1", None, Some(50), false),
            link("serv1-eth0", Some(7), Some(50), false),
            link("serv2-eth0", Some(7), Some(64), false),
            link("vxlan0h", Some(7), Some(50), true),
            link("elsewhere", Some(9), Some(0), false),
        ];
        let ports = port_headrooms(&links, 7);
        assert_eq!(
            ports,
            vec![
                ("serv1-eth0".to_string(), Some(50)),
                ("serv2-eth0".to_string(), Some(64))
            ]
        );
        assert_eq!(least_headroom(&ports), Some(50));
        assert!(is_headroom_port(&links[3]) && !is_headroom_port(&links[1]));
        // One port the kernel says nothing of: nothing known; no port at all: likewise.
        let unknown = [links[1].clone(), link("vxlan0", Some(7), None, false)];
        assert_eq!(least_headroom(&port_headrooms(&unknown, 7)), None);
        assert_eq!(least_headroom(&[]), None);
    }
}
