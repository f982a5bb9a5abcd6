//! A throwaway network namespace in which the VTEP's programs can be loaded and run through
//! `BPF_PROG_TEST_RUN`, plus builders for the frames they are fed. Used by the packet tests
//! (`datapath::vxlan::tests`) and by `lbctl-harness bench-vtep` (what `cargo xtask bench datapath`
//! runs for the per-packet figures).
//!
//! The namespace holds: the tunnel port pair `t0`/`t0p` (forwarding on `t0`, where the FIB
//! lookup runs), an endpoint veth `e0` (peer `e0p`), and the underlay `u0` (peer `u0p`) with
//! [`LOCAL`]/24 and permanent neighbours for the remote VTEPs [`REMOTE_A`] and [`REMOTE_B`],
//! so `bpf_fib_lookup` succeeds with known MACs. It is deleted on drop.
use std::{
    net::Ipv4Addr,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::datapath::vxlan::VtepSpec;

pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub const REMOTE_A: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
pub const REMOTE_B: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 3);
pub const MAC_U0: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x01, 0x01];
pub const MAC_REMOTE_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x02, 0x02];
pub const MAC_REMOTE_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x03, 0x03];
/// The local endpoint's MAC (fast-forwarded to `e0`).
pub const MAC_ENDPOINT: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0e, 0x0e];
/// A MAC behind the remote VTEP A.
pub const MAC_FAR: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0f, 0x0f];
pub const VNI: u32 = 12;
pub const PORT: u16 = 4789;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The namespace; removed on drop.
pub struct TestNet {
    pub ns: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl TestNet {
    pub fn new() -> Result<TestNet> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let ns = format!("lbt-vx-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns])?;
        let t = TestNet { ns };
        let mac_u0 = crate::topo::plan::mac_string(&MAC_U0);
        let cmds: Vec<Vec<String>> = vec![
            vec!["link", "set", "lo", "up"],
            vec!["link", "add", "t0", "type", "veth", "peer", "name", "t0p"],
            vec!["link", "add", "e0", "type", "veth", "peer", "name", "e0p"],
            vec![
                "link", "add", "u0", "address", &mac_u0, "type", "veth", "peer", "name", "u0p",
            ],
            vec!["addr", "add", "10.200.0.1/24", "dev", "u0"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for c in cmds {
            let mut a = vec!["-n", t.ns.as_str()];
            a.extend(c.iter().map(String::as_str));
            ip(&a)?;
        }
        for dev in ["t0", "t0p", "e0", "e0p", "u0", "u0p"] {
            ip(&["-n", &t.ns, "link", "set", dev, "up"])?;
        }
        for (addr, mac) in [(REMOTE_A, MAC_REMOTE_A), (REMOTE_B, MAC_REMOTE_B)] {
            ip(&[
                "-n",
                &t.ns,
                "neigh",
                "replace",
                &addr.to_string(),
                "lladdr",
                &crate::topo::plan::mac_string(&mac),
                "dev",
                "u0",
                "nud",
                "permanent",
            ])?;
        }
        let ns = t.ns.clone();
        crate::topo::netns::sysctl(&ns, "net/ipv4/conf/t0/forwarding", "1")?;
        Ok(t)
    }

    /// Runs `f` on an OS thread inside the namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        crate::topo::netns::run_in(&self.ns, f)
    }

    /// The VTEP of this namespace: two remotes, the endpoint `e0`, fast forwarding on.
    pub fn spec(&self) -> VtepSpec {
        VtepSpec {
            local: LOCAL,
            vni: VNI,
            port: PORT,
            remotes: vec![REMOTE_A, REMOTE_B],
            ageing: Duration::from_secs(300),
            tunnel_port: "t0".into(),
            tunnel_peer: "t0p".into(),
            underlay_ports: vec!["u0".into()],
            decap: crate::datapath::vxlan::DecapHook::Xdp,
            endpoints: vec![(MAC_ENDPOINT, "e0".into())],
            fast: true,
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// RFC 1071 checksum of one buffer.
pub fn checksum(data: &[u8]) -> u16 {
    lb_common::csum::inet_checksum(&[data])
}

/// An inner Ethernet frame: IPv4/UDP from 10.0.0.9 to 10.0.0.1 with `payload_len` bytes.
pub fn inner_frame(dst: [u8; 6], src: [u8; 6], payload_len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let tot = (20 + 8 + payload_len) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&tot.to_be_bytes());
    ip.extend_from_slice(&[10, 0, 0, 9, 10, 0, 0, 1]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend((0..payload_len).map(|i| i as u8));
    f
}

/// An ARP request (non-IP inner frame), broadcast.
pub fn inner_arp(src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
    f.resize(60, 0);
    f
}

/// How to build an outer frame (defaults: a valid VXLAN frame from REMOTE_A to LOCAL).
#[derive(Clone, Debug)]
pub struct Outer {
    /// Outer Ethernet destination and source.
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub dst: Ipv4Addr,
    pub src: Ipv4Addr,
    pub proto: u8,
    pub dport: u16,
    pub vni: u32,
    pub flags: u8,
    pub options: Vec<u8>,
    pub frag: u16,
    /// IPv4 identification.
    pub id: u16,
    /// UDP source port.
    pub sport: u16,
    /// Ethertype 0x8100 with VLAN 5 before the IPv4 ethertype.
    pub vlan: bool,
}

impl Default for Outer {
    fn default() -> Self {
        Outer {
            dst_mac: MAC_U0,
            src_mac: MAC_REMOTE_A,
            dst: LOCAL,
            src: REMOTE_A,
            proto: 17,
            dport: PORT,
            vni: VNI,
            flags: 0x08,
            options: Vec::new(),
            frag: 0x4000,
            id: 1,
            sport: 51000,
            vlan: false,
        }
    }
}

/// The outer frame carrying `inner`.
pub fn vxlan_frame(o: &Outer, inner: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&o.dst_mac);
    f.extend_from_slice(&o.src_mac);
    if o.vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let hlen = 20 + o.options.len();
    let tot = (hlen + 8 + 8 + inner.len()) as u16;
    let mut ip = vec![0x40 | (hlen / 4) as u8, 0];
    ip.extend_from_slice(&tot.to_be_bytes());
    ip.extend_from_slice(&o.id.to_be_bytes());
    ip.extend_from_slice(&o.frag.to_be_bytes());
    ip.extend_from_slice(&[64, o.proto, 0, 0]);
    ip.extend_from_slice(&o.src.octets());
    ip.extend_from_slice(&o.dst.octets());
    ip.extend_from_slice(&o.options);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&o.sport.to_be_bytes());
    f.extend_from_slice(&o.dport.to_be_bytes());
    f.extend_from_slice(&((8 + 8 + inner.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[o.flags, 0, 0, 0]);
    let v = o.vni.to_be_bytes();
    f.extend_from_slice(&[v[1], v[2], v[3], 0]);
    f.extend_from_slice(inner);
    f
}

/// An IPv6/UDP frame to the VXLAN port (must pass: the VTEP is IPv4 only).
pub fn ipv6_frame(inner: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_U0);
    f.extend_from_slice(&MAC_REMOTE_A);
    f.extend_from_slice(&[0x86, 0xdd]);
    let plen = (8 + 8 + inner.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&51000u16.to_be_bytes());
    f.extend_from_slice(&PORT.to_be_bytes());
    f.extend_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0, 0, 0, 12, 0]);
    f.extend_from_slice(inner);
    f
}
