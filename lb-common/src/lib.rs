//! `#[repr(C)]` types shared by lbctl's BPF programs (`lb-ebpf`, built for
//! `bpfel-unknown-none`) and its userspace (`lbctl`, which enables the `user` feature to get
//! the `aya::Pod` impls needed to read the maps).
//!
//! Every type here is plain old data without implicit padding: keys are hashed byte for byte by
//! the kernel, so padding must be explicit and zeroed.
#![no_std]

pub mod csum;
pub mod health;
pub use health::*;
pub mod vxlan;

/// Name of the observation program (TC ingress classifier). Kernel object names are cut at
/// 15 characters, so every name here stays shorter.
pub const OBS_PROG: &str = "lb_obs";
/// Name of the per-interface counter map: key `u32` ifindex, value [`PortStats`].
pub const OBS_PORT_MAP: &str = "OBS_PORT";
/// Name of the per-(interface, VRID) VRRP advertisement map: key [`VrrpKey`], value `u64`.
pub const OBS_VRRP_MAP: &str = "OBS_VRRP";

/// Name of the TC egress gate program on the switch ports (RSTP mode: drops data frames of a
/// discarding port on their way out; see [`StpGate`]).
pub const GATE_PROG: &str = "lb_gate";
/// Name of the per-port gate map: key `u32` ifindex, value [`StpGate`], written by `lbctl stpd`.
pub const STP_GATE_MAP: &str = "STP_GATE";
/// Name of the per-port RSTP status map: key `u32` ifindex, value [`RstpPortInfo`], written by
/// `lbctl stpd` for `lbctl status` and `bpftool map dump`.
pub const RSTP_PORT_MAP: &str = "RSTP_PORT";
/// Name of the per-port lease map: key `u32` ifindex, value `u64`, the `CLOCK_MONOTONIC` time
/// in nanoseconds (`bpf_ktime_get_ns`) until which `lbctl stpd` vouches for the port's
/// [`StpGate`]. Past it, a port with `rstp = 1` drops data frames both ways (fail closed: a
/// dead stpd never leaves a port forwarding while its neighbours age its BPDUs out). No entry:
/// the gate as written, with no expiry.
pub const STP_LEASE_MAP: &str = "STP_LEASE";

/// Maximum number of interfaces one observer instance counts for.
pub const OBS_PORT_MAX: u32 = 1024;
/// Maximum number of (interface, VRID) pairs one observer instance counts for.
pub const OBS_VRRP_MAX: u32 = 4096;

/// Per-interface counters of the observation program (value of `OBS_PORT`, per CPU: userspace
/// sums the CPUs with [`PortStats::add`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct PortStats {
    /// Configuration BPDUs (802.1D type 0x00), with or without the TC flag.
    pub bpdu_config: u64,
    /// Topology change notification BPDUs (type 0x80).
    pub bpdu_tcn: u64,
    /// Configuration BPDUs with the topology change flag (0x01) set; a subset of `bpdu_config`.
    pub bpdu_tc: u64,
    /// Rapid spanning tree BPDUs (type 0x02).
    pub bpdu_rstp: u64,
    /// Frames to the STP group address 01:80:c2:00:00:00 that are not a well-formed BPDU:
    /// truncated, wrong LLC header, protocol identifier not 0, unknown BPDU type.
    pub bpdu_bad: u64,
    /// Well-formed VRRP advertisements (IPv4 protocol 112), all VRIDs.
    pub vrrp: u64,
    /// IPv4 protocol 112 packets that are not a well-formed VRRP advertisement (truncated IP or
    /// VRRP header, bad IHL, fragment, unknown version or type).
    pub vrrp_bad: u64,
    /// Frames to the STP group address dropped at ingress because the port's [`StpGate`] has
    /// `rstp = 1` (counted above first; `lbctl stpd` has read them through AF_PACKET).
    pub bpdu_dropped: u64,
    /// Data frames dropped at ingress because the port's gate has `discard = 1`.
    pub gate_drop_in: u64,
    /// Data frames dropped at egress because the port's gate has `discard = 1`.
    pub gate_drop_out: u64,
    /// Data frames dropped, at ingress or egress, on a port whose gate has `rstp = 1` and
    /// `discard = 0` because its `STP_LEASE` entry has expired (stpd stopped renewing it). Not
    /// counted in `gate_drop_in`/`gate_drop_out`, so the two causes stay apart.
    pub lease_drop: u64,
}

impl PortStats {
    /// Adds `other`'s counters to these, field by field: how userspace sums the per-CPU values
    /// of `OBS_PORT`.
    pub fn add(&mut self, other: &PortStats) {
        self.bpdu_config += other.bpdu_config;
        self.bpdu_tcn += other.bpdu_tcn;
        self.bpdu_tc += other.bpdu_tc;
        self.bpdu_rstp += other.bpdu_rstp;
        self.bpdu_bad += other.bpdu_bad;
        self.vrrp += other.vrrp;
        self.vrrp_bad += other.vrrp_bad;
        self.bpdu_dropped += other.bpdu_dropped;
        self.gate_drop_in += other.gate_drop_in;
        self.gate_drop_out += other.gate_drop_out;
        self.lease_drop += other.lease_drop;
    }
}

/// The RSTP gate of one switch port (value of `STP_GATE`, key: ifindex), written by
/// `lbctl stpd`. No entry means the kernel's own behaviour, untouched (kernel STP labs).
///
/// Why the BPF program enforces the port state: with `stp_state 0` the kernel bridge floods
/// BPDUs like data and forces ports to forwarding on link up, port add and bridge up; the gate
/// closes that window whatever the kernel's port state says.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StpGate {
    /// 1: BPDUs belong to stpd: the observer counts them, then drops them (so the bridge never
    /// floods them).
    pub rstp: u8,
    /// 1: the port is discarding: data frames (anything not to the STP group address) are
    /// dropped both ways.
    pub discard: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 2],
}

/// The RSTP view of one port (value of `RSTP_PORT`, key: ifindex), written by `lbctl stpd` and
/// read by `lbctl status` (and `bpftool map dump`, through BTF). The BPF programs never read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RstpPortInfo {
    /// 0 disabled, 1 root, 2 designated, 3 alternate, 4 backup.
    pub role: u8,
    /// 0 discarding, 1 learning, 2 forwarding.
    pub state: u8,
    /// 1: operational edge port.
    pub edge: u8,
    /// 1: operational point-to-point link.
    pub p2p: u8,
    /// 1: sends RST BPDUs; 0: migrated to 802.1D (a legacy bridge is on the segment).
    pub rstp: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 3],
    pub proposals_tx: u32,
    pub proposals_rx: u32,
    pub agreements_tx: u32,
    pub agreements_rx: u32,
    /// BPDUs sent / received with the topology change flag (or TCNs).
    pub tc_tx: u32,
    pub tc_rx: u32,
    pub bpdus_tx: u32,
    pub bpdus_rx: u32,
}

/// Key of `OBS_VRRP`: one entry per interface and virtual router id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VrrpKey {
    /// Interface index (in the network namespace the program is attached in).
    pub ifindex: u32,
    /// VRRP virtual router id.
    pub vrid: u8,
    /// Explicit padding, always zero (the kernel hashes all key bytes).
    pub pad: [u8; 3],
}

impl VrrpKey {
    /// A key with zeroed padding.
    pub const fn new(ifindex: u32, vrid: u8) -> Self {
        Self {
            ifindex,
            vrid,
            pad: [0; 3],
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: both types are `#[repr(C)]`, `Copy`, contain only integers and have no implicit
    // padding (PortStats: 11 x u64; VrrpKey: u32 + u8 + [u8; 3] = 8 bytes, align 4; StpGate:
    // 4 x u8; RstpPortInfo: 8 x u8 then 8 x u32, sizes asserted below).
    unsafe impl aya::Pod for super::PortStats {}
    unsafe impl aya::Pod for super::StpGate {}
    unsafe impl aya::Pod for super::RstpPortInfo {}
    unsafe impl aya::Pod for super::VrrpKey {}
    // SAFETY: as above; HealthKey 4+2+2, HealthVal and VrrpState are laid out with explicit
    // padding fields and sizes asserted in `health`.
    unsafe impl aya::Pod for super::HealthKey {}
    unsafe impl aya::Pod for super::HealthVal {}
    unsafe impl aya::Pod for super::VrrpState {}
}

const _: () = {
    assert!(core::mem::size_of::<PortStats>() == 88);
    assert!(core::mem::size_of::<StpGate>() == 4);
    assert!(core::mem::size_of::<RstpPortInfo>() == 40);
    assert!(core::mem::size_of::<VrrpKey>() == 8);
};
