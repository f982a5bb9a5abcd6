//! VRRP input/output: the raw protocol-112 socket, gratuitous ARP from an AF_PACKET socket,
//! the VIP through rtnetlink and the interface's link state. Everything acts on the network
//! namespace of the thread that opened it (the agent already runs in the balancer's
//! namespace; nothing here calls setns).

use super::codec::{self, IPPROTO_VRRP, VRRP_GROUP, VRRP_TTL};
use anyhow::{anyhow, bail, Context, Result};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

/// What the runner needs to know about its interface.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub index: u32,
    pub mac: [u8; 6],
    /// Our primary address on the interface (first IPv4 address that is not a VIP): the
    /// source of our adverts and the tie-breaker.
    pub primary: Ipv4Addr,
    /// Every IPv4 address of the interface (own-packet detection).
    pub addrs: Vec<Ipv4Addr>,
}

pub async fn link_info(nl: &rtnetlink::Handle, name: &str, vips: &[Ipv4Addr]) -> Result<LinkInfo> {
    let link = nl
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("looking up interface {name}"))?
        .ok_or_else(|| anyhow!("interface {name} does not exist"))?;
    let index = link.header.index;
    let mut mac = [0u8; 6];
    for a in &link.attributes {
        if let LinkAttribute::Address(m) = a {
            if m.len() == 6 {
                mac.copy_from_slice(m);
            }
        }
    }
    let msgs: Vec<_> = nl
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .with_context(|| format!("listing the addresses of {name}"))?;
    let mut addrs = Vec::new();
    for m in msgs.iter().filter(|m| m.header.index == index) {
        for a in &m.attributes {
            if let AddressAttribute::Local(IpAddr::V4(ip))
            | AddressAttribute::Address(IpAddr::V4(ip)) = a
            {
                if !addrs.contains(ip) {
                    addrs.push(*ip);
                }
            }
        }
    }
    let primary = addrs
        .iter()
        .copied()
        .find(|a| !vips.contains(a))
        .ok_or_else(|| {
            anyhow!("interface {name} has no IPv4 address of its own (besides the VIPs)")
        })?;
    Ok(LinkInfo {
        index,
        mac,
        primary,
        addrs,
    })
}

/// Removes those of `vips` that interface `iface` (in the current namespace) holds, and
/// returns them. A VIP left by an agent that was killed (SIGKILL gives it no chance to
/// resign) makes this node answer ARP for the VIP with nobody behind it: the supervisor
/// calls this when an agent dies, and an agent at start-up before it becomes BACKUP.
pub async fn remove_stale_vips(iface: &str, vips: &[Ipv4Addr]) -> Result<Vec<Ipv4Addr>> {
    let (conn, nl, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let task = tokio::spawn(conn);
    let res = async {
        let link = link_info(&nl, iface, vips).await?;
        let mut removed = Vec::new();
        for vip in vips.iter().filter(|v| link.addrs.contains(v)) {
            del_vip(&nl, link.index, *vip).await?;
            removed.push(*vip);
        }
        Ok(removed)
    }
    .await;
    task.abort();
    res
}

/// Adds `vip`/32 on interface `index` (already there counts as success); true if it was
/// not there.
pub async fn add_vip(nl: &rtnetlink::Handle, index: u32, vip: Ipv4Addr) -> Result<bool> {
    match nl.address().add(index, IpAddr::V4(vip), 32).execute().await {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(false),
        Err(e) => Err(e).with_context(|| format!("adding VIP {vip}/32")),
    }
}

/// Removes `vip`/32 from interface `index` (already absent counts as success).
pub async fn del_vip(nl: &rtnetlink::Handle, index: u32, vip: Ipv4Addr) -> Result<()> {
    let mut req = nl.address().add(index, IpAddr::V4(vip), 32);
    let msg = req.message_mut().clone();
    match nl.address().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENODEV =>
        {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("removing VIP {vip}/32")),
    }
}

/// The raw IPv4 socket of protocol 112, bound to the interface. We build the IP header
/// ourselves (IP_HDRINCL, like keepalived) so the source is our primary address, TTL 255
/// and TOS 0xc0 whatever else is configured on the interface.
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    iface: String,
}

impl VrrpSocket {
    pub fn open(iface: &str, index: u32, primary: Ipv4Addr, multicast: bool) -> Result<Self> {
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )
        .context("opening a raw IPv4 socket for protocol 112 (needs CAP_NET_RAW)")?;
        s.set_nonblocking(true)?;
        s.bind_device(Some(iface.as_bytes()))
            .with_context(|| format!("SO_BINDTODEVICE {iface}"))?;
        s.set_header_included_v4(true).context("IP_HDRINCL")?;
        s.set_ttl_v4(u32::from(VRRP_TTL)).context("IP_TTL")?;
        s.set_tos_v4(0xc0).context("IP_TOS")?;
        s.set_multicast_ttl_v4(u32::from(VRRP_TTL))
            .context("IP_MULTICAST_TTL")?;
        s.set_multicast_loop_v4(false)
            .context("IP_MULTICAST_LOOP")?;
        s.set_multicast_if_v4(&primary).context("IP_MULTICAST_IF")?;
        if multicast {
            s.join_multicast_v4_n(&VRRP_GROUP, &InterfaceIndexOrAddress::Index(index))
                .with_context(|| format!("joining {VRRP_GROUP} on {iface}"))?;
        }
        // SAFETY: the Socket owns its descriptor and we never replace or close it while the
        // AsyncFd holds it.
        let fd =
            unsafe { AsyncFd::register(s) }.context("registering the VRRP socket with tokio")?;
        Ok(VrrpSocket {
            fd,
            iface: iface.to_string(),
        })
    }

    /// Sends one VRRP message (payload) from `src` to `dst` in an IPv4 header of ours.
    pub fn send(&self, src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> std::io::Result<()> {
        let pkt = codec::ipv4_packet(src, dst, VRRP_TTL, msg);
        self.fd
            .get_ref()
            .send_to(&pkt, &SockAddr::from(SocketAddrV4::new(dst, 0)))
            .map(|_| ())
    }

    /// Receives one packet (IP header included).
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut g = self.fd.readable().await?;
            match g.try_io(|s| s.get_ref().read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Link state by SIOCGIFFLAGS on this socket (so, in its namespace): administratively
    /// up and with carrier (IFF_RUNNING). An interface that vanished is down.
    pub fn link_up(&self) -> bool {
        link_up(self.fd.get_ref().as_raw_fd(), &self.iface)
    }
}

fn link_up(fd: i32, iface: &str) -> bool {
    // SAFETY: ifreq is plain old data; the name is NUL-terminated within IFNAMSIZ and the
    // ioctl writes only into the struct.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr
            .ifr_name
            .iter_mut()
            .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
            return false;
        }
        let f = i32::from(ifr.ifr_ifru.ifru_flags);
        f & libc::IFF_UP != 0 && f & libc::IFF_RUNNING != 0
    }
}

/// Gratuitous ARP sender (AF_PACKET, send only: protocol 0 receives nothing).
pub struct ArpSocket {
    fd: OwnedFd,
    index: u32,
    mac: [u8; 6],
}

impl ArpSocket {
    pub fn open(index: u32, mac: [u8; 6]) -> Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked and owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .context("opening an AF_PACKET socket for gratuitous ARP");
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(ArpSocket { fd, index, mac })
    }

    /// One gratuitous ARP for `ip` (an ARP request with sender = target = ip, broadcast,
    /// as keepalived sends it).
    pub fn send(&self, ip: Ipv4Addr) -> std::io::Result<()> {
        let frame = garp_frame(self.mac, ip);
        // SAFETY: sockaddr_ll is plain old data, fully initialised here; sendto reads
        // exactly `frame.len()` bytes and `size_of::<sockaddr_ll>()` bytes of the address.
        let r = unsafe {
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
            sa.sll_ifindex = self.index as i32;
            sa.sll_halen = 6;
            sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The Ethernet frame of a gratuitous ARP request, padded to the 60-byte minimum.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&ip.octets());
    f.resize(60, 0);
    f
}

/// Runs the notify command: `sh -c '<cmd> "$@"' sh INSTANCE STATE`, reaped in the
/// background (never blocks the runner).
pub fn notify(cmd: &str, instance: &str, state: &str) -> Result<()> {
    if cmd.trim().is_empty() {
        bail!("empty notify command");
    }
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} \"$@\""))
        .arg("sh")
        .arg(instance)
        .arg(state)
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("running notify command {cmd:?}"))?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(172, 16, 1, 254));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[28..32], &[172, 16, 1, 254], "sender IP");
        assert_eq!(&f[38..42], &[172, 16, 1, 254], "target IP");
    }
}
