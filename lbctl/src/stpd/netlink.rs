//! The kernel side of one RSTP bridge over rtnetlink: reading its ports, setting a port's
//! state and flushing its learned MACs (`AF_BRIDGE` `RTM_SETLINK` with `IFLA_PROTINFO`, as
//! `bridge link set` does), and the link events of the rtnetlink link group (no polling).
//!
//! Each flush goes in its own message: the kernel applies the `IFLA_PROTINFO` attributes of
//! one message in turn and stops at the first that fails, so a flush bundled with a state
//! change that fails (a port without carrier refuses any state but disabled) would be lost.

use anyhow::{Context, Result};
use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::packet_core::{DefaultNla, NetlinkMessage, NetlinkPayload, Nla};
use rtnetlink::packet_route::link::{
    LinkAttribute, LinkFlags, LinkMessage, LinkProtoInfoBridge, State,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::Handle;

use crate::rstp::fsm::PortState;

/// `IFLA_BRPORT_STATE` and `IFLA_BRPORT_FLUSH` (linux/if_link.h).
const IFLA_BRPORT_STATE: u16 = 1;
const IFLA_BRPORT_FLUSH: u16 = 24;

/// The kernel's port states (`BR_STATE_*`).
pub const BR_STATE_DISABLED: u8 = 0;
pub const BR_STATE_LISTENING: u8 = 1;
pub const BR_STATE_LEARNING: u8 = 2;
pub const BR_STATE_FORWARDING: u8 = 3;

/// The kernel state that carries an RSTP state. Discarding is LISTENING, not BLOCKING: the
/// kernel turns a BLOCKING port into FORWARDING at once when its own STP is off, while
/// LISTENING blocks data both ways and learns nothing (and the BPF gate drops data anyway).
pub fn kernel_state(s: PortState) -> u8 {
    match s {
        PortState::Discarding => BR_STATE_LISTENING,
        PortState::Learning => BR_STATE_LEARNING,
        PortState::Forwarding => BR_STATE_FORWARDING,
    }
}

/// One port of the bridge as read at start.
#[derive(Debug, Clone)]
pub struct PortLink {
    pub ifindex: u32,
    pub name: String,
    pub mac: [u8; 6],
    /// Administratively up with carrier.
    pub up: bool,
}

/// What a link message says about one interface (pure, from [`parse_link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// An interface's link (`AF_UNSPEC` message): admin up with carrier or not.
    Link { ifindex: u32, up: bool },
    /// A bridge port's state as the kernel now has it (`AF_BRIDGE` notification).
    PortState { ifindex: u32, state: u8 },
    /// The interface was deleted.
    Gone { ifindex: u32 },
}

/// Admin up with carrier.
pub fn link_up(m: &LinkMessage) -> bool {
    let admin = m.header.flags.contains(LinkFlags::Up);
    let oper = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    });
    let carrier = m
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Carrier(1)));
    admin
        && match oper {
            Some(State::Up) => true,
            Some(State::Unknown) | None => carrier,
            _ => false,
        }
}

/// The port state an `AF_BRIDGE` message carries in `IFLA_PROTINFO`, if any.
fn protinfo_state(m: &LinkMessage) -> Option<u8> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::ProtoInfoBridge(v) => v.iter().find_map(|p| match p {
            LinkProtoInfoBridge::Other(nla) if nla.kind() & 0x3fff == IFLA_BRPORT_STATE => {
                let mut b = [0u8; 1];
                (nla.value_len() == 1).then(|| {
                    nla.emit_value(&mut b);
                    b[0]
                })
            }
            _ => None,
        }),
        _ => None,
    })
}

/// Pure: the event a link-group message carries, if it is one we act on.
pub fn parse_link(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match &msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            let ifindex = m.header.index;
            if m.header.interface_family == AddressFamily::Bridge {
                protinfo_state(m).map(|state| LinkEvent::PortState { ifindex, state })
            } else {
                Some(LinkEvent::Link {
                    ifindex,
                    up: link_up(m),
                })
            }
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m))
            if m.header.interface_family != AddressFamily::Bridge =>
        {
            Some(LinkEvent::Gone {
                ifindex: m.header.index,
            })
        }
        _ => None,
    }
}

/// The link group's notifications as the connection hands them over.
pub type LinkEvents = UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// A connection to rtnetlink that also receives the link group's notifications. Opened
/// before the ports are read, so no change between the read and the first event is lost.
/// The connection task is spawned on the current runtime.
pub fn connect() -> Result<(Handle, LinkEvents)> {
    let (conn, handle, events) =
        rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
            .context("opening an rtnetlink socket on the link group")?;
    tokio::spawn(conn);
    Ok((handle, events))
}

/// The bridge's ifindex, whether it is up, and its ports.
pub async fn read_bridge(h: &Handle, bridge: &str) -> Result<(u32, bool, Vec<PortLink>)> {
    let links = crate::topo::nl::dump_links(h).await?;
    let name_of = |m: &LinkMessage| crate::topo::nl::link_name(m).map(str::to_string);
    let br = links
        .iter()
        .find(|m| name_of(m).as_deref() == Some(bridge))
        .with_context(|| format!("no bridge {bridge} in this namespace"))?;
    let bi = br.header.index;
    let br_up = br.header.flags.contains(LinkFlags::Up);
    let ports = links
        .iter()
        .filter(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == bi))
        })
        .map(|m| PortLink {
            ifindex: m.header.index,
            name: name_of(m).unwrap_or_default(),
            mac: crate::topo::nl::link_mac(m).unwrap_or_default(),
            up: link_up(m),
        })
        .collect();
    Ok((bi, br_up, ports))
}

/// One `AF_BRIDGE` `RTM_SETLINK` on port `ifindex` carrying one `IFLA_PROTINFO` attribute
/// (`bridge link set`). Not [`crate::topo::nl::set_port_stp`]'s message: that one is an
/// `RTM_NEWLINK` with the port's `IFLA_INFO_SLAVE_DATA` (`ip link set type bridge_slave`),
/// another kernel entry point; stpd keeps the one its port-state events were tested with.
async fn set_protinfo(h: &Handle, ifindex: u32, nla: DefaultNla) -> Result<()> {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = ifindex;
    m.attributes = vec![LinkAttribute::ProtoInfoBridge(vec![
        LinkProtoInfoBridge::Other(nla),
    ])];
    h.link().set(m).execute().await?;
    Ok(())
}

/// Sets the kernel state of port `ifindex` (one of `BR_STATE_*`).
pub async fn set_state(h: &Handle, ifindex: u32, state: u8) -> Result<()> {
    set_protinfo(h, ifindex, DefaultNla::new(IFLA_BRPORT_STATE, vec![state]))
        .await
        .with_context(|| format!("setting port {ifindex} to state {state}"))
}

/// Flushes the MACs the bridge learned on port `ifindex`, in a message of its own.
pub async fn flush(h: &Handle, ifindex: u32) -> Result<()> {
    set_protinfo(h, ifindex, DefaultNla::new(IFLA_BRPORT_FLUSH, vec![]))
        .await
        .with_context(|| format!("flushing the MACs learned on port {ifindex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newlink(m: LinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(m))
    }

    #[test]
    fn link_messages_become_events() {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.header.flags = LinkFlags::Up;
        m.attributes = vec![LinkAttribute::OperState(State::Up)];
        assert_eq!(
            parse_link(&newlink(m.clone())),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: true
            })
        );
        m.attributes = vec![LinkAttribute::OperState(State::LowerLayerDown)];
        assert_eq!(
            parse_link(&newlink(m.clone())),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: false
            })
        );
        // Admin down: down whatever the carrier says.
        m.header.flags = LinkFlags::empty();
        m.attributes = vec![LinkAttribute::Carrier(1)];
        assert_eq!(
            parse_link(&newlink(m)),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: false
            })
        );
    }

    #[test]
    fn bridge_notifications_carry_the_port_state() {
        let mut m = LinkMessage::default();
        m.header.index = 9;
        m.header.interface_family = AddressFamily::Bridge;
        m.attributes = vec![LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_STATE, vec![3])),
        ])];
        assert_eq!(
            parse_link(&newlink(m)),
            Some(LinkEvent::PortState {
                ifindex: 9,
                state: BR_STATE_FORWARDING
            })
        );
        assert_eq!(kernel_state(PortState::Discarding), BR_STATE_LISTENING);
        assert_eq!(kernel_state(PortState::Forwarding), BR_STATE_FORWARDING);
    }
}
