//! Types shared by the BPF VXLAN tunnel endpoint (`lb-ebpf`: programs `lb_vxdec`, `lb_vxenc`,
//! `lb_vxfwd`, `lb_xpass`, `lb_xdrop`, `lb_tpass`; maps in its `main.rs`) and its loader
//! (`lbctl/src/datapath/vxlan.rs`).
//!
//! Byte order: addresses are kept as the 4 bytes of the wire (`[u8; 4]`, network order) so
//! neither side converts them; VNI and port are host-order integers.

/// XDP decapsulation program (attached to the underlay ports).
pub const VX_DEC_PROG: &str = "lb_vxdec";
/// TC decapsulation program (TCX ingress of the underlay ports), the alternative to
/// `lb_vxdec` where frames arrive as skbs anyway (veths: `vxlan.decap = "tc"`).
pub const VX_DEC_TC_PROG: &str = "lb_vxdtc";
/// TC encapsulation program (TCX egress of the tunnel port).
pub const VX_ENC_PROG: &str = "lb_vxenc";
/// TC fast-forwarding program (TCX ingress of the local endpoints' bridge-side ports):
/// known-unicast frames for remote MACs are encapsulated there, skipping the bridge.
pub const VX_FWD_PROG: &str = "lb_vxfwd";
/// A do-nothing XDP program (`XDP_PASS`): the floor the benchmark compares `lb_vxdec` with.
pub const VX_PASS_PROG: &str = "lb_xpass";
/// A do-nothing XDP program that drops (`XDP_DROP`): the live-frames floor without the skb
/// that `XDP_PASS` makes the kernel build.
pub const VX_DROP_PROG: &str = "lb_xdrop";

/// A do-nothing TC program (`TC_ACT_UNSPEC`): the floor the benchmark compares `lb_vxenc` with
/// (a TC test run builds an skb; the XDP floor does not say what that costs).
pub const VX_TC_PASS_PROG: &str = "lb_tpass";
/// TC program on the underlay ports' egress: learns which port the underlay bridge sends
/// each remote VTEP's frames out of (`VX_PORT`).
pub const VX_PORT_PROG: &str = "lb_vxport";

/// Per-CPU array, one [`VxStats`] at index 0: every outcome of both programs.
pub const VX_STATS_MAP: &str = "VX_STATS";
/// LRU hash [`MacKey`] -> [`FdbEntry`]: inner MAC learned behind a remote VTEP.
pub const VX_FDB_MAP: &str = "VX_FDB";
/// Array, one [`VxConfig`] at index 0.
pub const VX_CFG_MAP: &str = "VX_CFG";
/// Array of [`VX_REMOTE_MAX`] [`Remote`]s (head-end replication list).
pub const VX_REMOTE_MAP: &str = "VX_REMOTE";
/// DEVMAP (array): where decapsulated frames are redirected. Slot 0: the tunnel port's peer
/// (into the bridge); slot `i + 1`: the bridge-side veth of local endpoint `i` of `VX_EPS`.
pub const VX_LOCAL_MAP: &str = "VX_LOCAL";
/// Array, one [`Endpoints`]: the local endpoints' MACs (a short list scanned linearly: cheaper
/// than a hash lookup for the few endpoints a host has).
pub const VX_EPS_MAP: &str = "VX_EPS";
/// Per-CPU array, one [`LearnCache`]: the last MAC learned on this CPU.
pub const VX_LAST_MAP: &str = "VX_LAST";

/// Hash [`Remote`] -> [`NextHop`]: the outer next hop of each remote VTEP, as the FIB last
/// named it (see `lb-ebpf/src/encap/nh_cache.rs`).
pub const VX_NH_MAP: &str = "VX_NH";

/// Hash [`Remote`] -> [`PortHint`]: the underlay bridge's port toward each remote VTEP, as
/// the bridge itself last chose it (see `lb-ebpf/src/encap/port_hint.rs`).
pub const VX_PORT_MAP: &str = "VX_PORT";

/// Every map of the VTEP, for pinning and inspection.
pub const VX_MAPS: [&str; 9] = [
    VX_STATS_MAP,
    VX_FDB_MAP,
    VX_CFG_MAP,
    VX_REMOTE_MAP,
    VX_LOCAL_MAP,
    VX_EPS_MAP,
    VX_LAST_MAP,
    VX_NH_MAP,
    VX_PORT_MAP,
];

/// Remote VTEPs one endpoint replicates BUM traffic to, at most.
pub const VX_REMOTE_MAX: u32 = 15;
/// Learned MACs (LRU: the oldest entries make room).
pub const VX_FDB_MAX: u32 = 4096;
/// Local endpoints (MACs / devices) one VTEP fast-forwards to, at most.
pub const VX_EP_MAX: u32 = 32;
/// Slots of `VX_LOCAL`: the bridge (slot 0) and the endpoints.
pub const VX_LOCAL_MAX: u32 = VX_EP_MAX + 1;
/// Remote VTEPs whose next hop `VX_NH` caches: the replication list and the VTEPs learned
/// behind MACs (a full cache only means more FIB lookups).
pub const VX_NH_MAX: u32 = 64;
/// A cached next hop is used for this long after the FIB named it, then looked up again:
/// how long a changed neighbour MAC or route can go unnoticed (see `VX_NH_MAP`).
pub const VX_NH_REFRESH_NS: u64 = 1_000_000_000;
/// A port from `VX_PORT` is used for this long after the bridge was seen choosing it, then
/// the next frame goes through the bridge, which chooses afresh. Frames sent straight out
/// skip the bridge's STP port states and its view of carrier loss, so this bounds how long
/// a port that stopped forwarding (a link cut, a role change) can still be sent out of:
/// under RSTP's recovery of a link event (a median of at most 50 ms measured), at the cost
/// of one frame per remote VTEP through the bridge every 20 ms.
pub const VX_PORT_TTL_NS: u64 = 20_000_000;

/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8).
pub const VX_OVERHEAD: usize = 50;
/// VXLAN flags byte with the I flag (valid VNI), RFC 7348 section 5.
pub const VX_FLAG_I: u8 = 0x08;
/// UDP source ports of encapsulated frames are spread over this range (RFC 7348 section 5
/// recommends the dynamic range 49152-65535).
pub const VX_SPORT_MIN: u16 = 49152;

/// `VxConfig::flags`: redirect decapsulated frames for a local endpoint straight to its veth.
pub const VX_F_FAST: u32 = 1;

/// The endpoint's configuration (value of `VX_CFG[0]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VxConfig {
    /// Local VTEP address (outer destination of what we decapsulate, outer source of what we
    /// encapsulate), network order.
    pub local_ip: [u8; 4],
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port (4789).
    pub port: u16,
    /// Explicit padding, zero.
    pub pad: u16,
    /// `VX_F_*` bits.
    pub flags: u32,
    /// Ifindex of the tunnel port's peer (`VX_LOCAL` slot 0), where decapsulated frames go
    /// when no local endpoint owns the inner destination MAC, so they enter the internal
    /// bridge as received on the tunnel port. `lb_vxdtc` redirects to it; `lb_vxdec` uses
    /// slot 0 (the same device).
    pub bridge_ifindex: u32,
    /// Device the FIB lookup of the outer next hop runs for (`bpf_fib_lookup`'s ifindex): the
    /// tunnel port; it needs `net.ipv4.conf.<dev>.forwarding = 1`.
    pub fib_ifindex: u32,
    /// Number of valid entries in `VX_REMOTE`.
    pub n_remotes: u32,
    /// Explicit padding, zero.
    pub pad2: u32,
    /// Learned MACs older than this are ignored (the frame is flooded as unknown unicast).
    pub ageing_ns: u64,
}

/// One remote VTEP (value of `VX_REMOTE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// Address, network order.
    pub ip: [u8; 4],
}

/// A MAC address as a map key, padded to 8 bytes (padding zero: keys are hashed whole).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacKey {
    pub mac: [u8; 6],
    pub pad: [u8; 2],
}

impl MacKey {
    pub const fn new(mac: [u8; 6]) -> Self {
        Self { mac, pad: [0; 2] }
    }
}

/// The local endpoints (value of `VX_EPS[0]`): `macs[i]` (MAC bytes then two zero bytes, read
/// as a little-endian `u64`) is redirected to `VX_LOCAL` slot `i + 1` by `lb_vxdec` (XDP),
/// to the device `ifindex[i]` by `lb_vxdtc` (TC, which cannot redirect through a DEVMAP).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub n: u32,
    pub pad: u32,
    pub macs: [u64; VX_EP_MAX as usize],
    /// The endpoint's bridge-side veth (the device of `VX_LOCAL` slot `i + 1`).
    pub ifindex: [u32; VX_EP_MAX as usize],
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            n: 0,
            pad: 0,
            macs: [0; VX_EP_MAX as usize],
            ifindex: [0; VX_EP_MAX as usize],
        }
    }
}

/// A MAC as the `u64` `Endpoints::macs` holds.
pub const fn mac_u64(m: [u8; 6]) -> u64 {
    u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0])
}

/// Per-CPU cache of the last MAC learned (`VX_LAST`): back-to-back frames of one flow skip
/// the LRU lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnCache {
    pub mac: [u8; 6],
    pub pad: [u8; 2],
    pub vtep: [u8; 4],
    /// Cache hits since the clock was last read.
    pub hits: u32,
    /// When the entry was last written to `VX_FDB`.
    pub seen_ns: u64,
}

/// The outer next hop of one remote VTEP (value of `VX_NH`): what `bpf_fib_lookup` returned
/// for it, and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// Destination MAC of the next hop (the remote VTEP or the gateway).
    pub dmac: [u8; 6],
    /// Source MAC: the egress device's.
    pub smac: [u8; 6],
    /// Egress device (in the VTEP's namespace).
    pub ifindex: u32,
    /// Monotonic time (`bpf_ktime_get_coarse_ns`) of the FIB lookup that filled the entry.
    pub checked_ns: u64,
}

/// The underlay bridge's port toward one remote VTEP (value of `VX_PORT`): the port the
/// bridge last sent an encapsulated frame for it out of, and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortHint {
    /// The port to send straight out of (an underlay bridge port, in the VTEP's namespace);
    /// 0 while the bridge floods this remote's frames.
    pub ifindex: u32,
    /// The port of the last frame seen: a frame seen on another port than the one before,
    /// a moment later, was flooded; two in a row on one port, the bridge sends to one port
    /// again.
    pub last: u32,
    /// Monotonic time (`bpf_ktime_get_coarse_ns`) of the last frame seen.
    pub seen_ns: u64,
}

/// Value `lb_vxfwd`/`lb_vxenc` put in `__sk_buff.cb[0]` of a frame they send straight out of
/// a port from `VX_PORT`, so `lb_vxport` does not take that port as the bridge's choice. The
/// bridge clears the control block of every frame it sends itself.
pub const VX_DIRECT_MARK: u32 = 0x5658_4452; // "VXDR"

/// A learned MAC: behind which remote VTEP, and when it was last seen (`bpf_ktime_get_ns`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbEntry {
    /// Remote VTEP address, network order.
    pub vtep: [u8; 4],
    /// Explicit padding, zero.
    pub pad: u32,
    /// Monotonic time (`bpf_ktime_get_coarse_ns`, CLOCK_MONOTONIC_COARSE) of the last
    /// decapsulated frame from this MAC, refreshed at most once a second.
    pub seen_ns: u64,
}

/// Outcome counters of the VTEP (value of `VX_STATS[0]`, per CPU; readers sum the CPUs).
/// Every frame `lb_vxdec` sees lands in exactly one `dec_*`/`pass_*` counter; every frame
/// `lb_vxenc` sees lands in exactly one of `enc_unicast`, `enc_flood`, `enc_drop_*`
/// (`lb_vxfwd` counts only the frames it encapsulates).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VxStats {
    /// Decapsulated and handed to the internal bridge (through the tunnel port).
    pub dec_bridge: u64,
    /// Decapsulated and redirected straight to a local endpoint's veth (fast forwarding).
    pub dec_fast: u64,
    /// Bytes of inner frames decapsulated (both of the above).
    pub dec_bytes: u64,
    /// Passed: not IPv4 (IPv6, ARP, VLAN-tagged outer frame, ...).
    pub pass_not_ip: u64,
    /// Passed: truncated at some header (Ethernet, IPv4, UDP, VXLAN, inner Ethernet) or IP
    /// total length beyond the frame.
    pub pass_trunc: u64,
    /// Passed: IPv4 header with version not 4 or IHL < 5 or total length < IHL.
    pub pass_bad_ip: u64,
    /// Passed: IPv4 options (IHL > 5).
    pub pass_ip_opts: u64,
    /// Passed: IPv4 destination is not the local VTEP address.
    pub pass_not_local: u64,
    /// Passed: IPv4 but not UDP.
    pub pass_not_udp: u64,
    /// Passed: a fragment (MF set or non-zero offset).
    pub pass_frag: u64,
    /// Passed: UDP to another port.
    pub pass_port: u64,
    /// Passed: VXLAN I flag clear.
    pub pass_flags: u64,
    /// Passed: a VNI this endpoint does not carry.
    pub pass_vni: u64,
    /// Dropped after decapsulation: the redirect target left `VX_LOCAL` (its device was
    /// deleted).
    pub dec_no_dev: u64,
    /// Encapsulated to the one remote VTEP learned for the destination MAC.
    pub enc_unicast: u64,
    /// Broadcast, multicast or unknown unicast: replicated to every remote VTEP.
    pub enc_flood: u64,
    /// Copies sent (unicast: 1; flood: one per remote reached).
    pub enc_copies: u64,
    /// Bytes of inner frames encapsulated (once per frame).
    pub enc_bytes: u64,
    /// FIB found no resolved neighbour for the next hop: sent through `bpf_redirect_neigh`
    /// (the kernel resolves it) when the inner frame is IPv4; otherwise that copy is dropped.
    pub enc_no_neigh: u64,
    /// Dropped: the FIB has no usable route to a remote VTEP (one per copy).
    pub enc_drop_fib: u64,
    /// Dropped: no remote VTEP configured.
    pub enc_drop_no_remote: u64,
    /// Dropped: the frame could not be grown or written (or is shorter than Ethernet).
    pub enc_drop_err: u64,
    /// Learning: a MAC entry created or moved to another VTEP.
    pub learn_new: u64,
    /// Learning: an existing entry's timestamp refreshed.
    pub learn_refresh: u64,
    /// Known unicast encapsulated by `lb_vxfwd` at a local endpoint's port (fast forwarding
    /// toward the tunnel, the internal bridge skipped); a subset of `enc_unicast`.
    pub enc_fast: u64,
    /// FIB lookups for an outer next hop (`VX_NH` had no fresh entry for the remote VTEP);
    /// every other copy took its next hop from the cache.
    pub enc_fib_lookups: u64,
    /// Known unicast sent straight out of the underlay bridge's port toward the remote VTEP
    /// (`VX_PORT`), not through the bridge device: GSO super-packets stay whole.
    pub enc_direct: u64,
    /// `lb_vxport`: the bridge's port toward a remote VTEP recorded (new, moved or due).
    pub port_learned: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all `#[repr(C)]`, `Copy`, integers/byte arrays only, padding explicit.
    unsafe impl aya::Pod for super::VxConfig {}
    unsafe impl aya::Pod for super::Remote {}
    unsafe impl aya::Pod for super::MacKey {}
    unsafe impl aya::Pod for super::FdbEntry {}
    unsafe impl aya::Pod for super::VxStats {}
    unsafe impl aya::Pod for super::LearnCache {}
    unsafe impl aya::Pod for super::Endpoints {}
    unsafe impl aya::Pod for super::NextHop {}
    unsafe impl aya::Pod for super::PortHint {}
}

const _: () = {
    assert!(core::mem::size_of::<VxConfig>() == 40);
    assert!(core::mem::size_of::<Remote>() == 4);
    assert!(core::mem::size_of::<MacKey>() == 8);
    assert!(core::mem::size_of::<FdbEntry>() == 16);
    assert!(core::mem::size_of::<LearnCache>() == 24);
    assert!(core::mem::size_of::<NextHop>() == 24);
    assert!(core::mem::size_of::<PortHint>() == 16);
    assert!(core::mem::size_of::<VxStats>() == 28 * 8);
};
