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

/// Maximum number of interfaces one observer instance counts for.
pub const OBS_PORT_MAX: u32 = 1024;
/// Maximum number of (interface, VRID) pairs one observer instance counts for.
pub const OBS_VRRP_MAX: u32 = 4096;

/// Per-interface counters of the observation program (value of `OBS_PORT`, per CPU: userspace
/// sums the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    // padding (PortStats: 7 x u64; VrrpKey: u32 + u8 + [u8; 3] = 8 bytes, align 4).
    unsafe impl aya::Pod for super::PortStats {}
    unsafe impl aya::Pod for super::VrrpKey {}
    // SAFETY: as above; HealthKey 4+2+2, HealthVal and VrrpState are laid out with explicit
    // padding fields and sizes asserted in `health`.
    unsafe impl aya::Pod for super::HealthKey {}
    unsafe impl aya::Pod for super::HealthVal {}
    unsafe impl aya::Pod for super::VrrpState {}
}

const _: () = {
    assert!(core::mem::size_of::<PortStats>() == 56);
    assert!(core::mem::size_of::<VrrpKey>() == 8);
};
