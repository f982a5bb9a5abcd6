//! lbctl's BPF programs: the entry points and the maps. What each program does lives in the
//! modules they call.
//!
//! * `lb_obs` (TC ingress of the lab's switch ports): the STP/VRRP observer, [`observe`], then
//!   the RSTP gate, [`gate`]; `lb_gate` (TC egress of the same ports): the gate's other half.
//! * lbctl's own VXLAN tunnel endpoint (VTEP): `lb_vxdec` (XDP) decapsulates on the host's
//!   underlay ports ([`parse`] decides, [`decap`] strips and redirects, [`fdb`] learns), or
//!   `lb_vxdtc` in their TCX ingress (the same, for skbs: `vxlan.decap = "tc"`),
//!   `lb_vxenc` (TC egress of the tunnel port) encapsulates, `lb_vxfwd` (TC ingress of the
//!   local endpoints' ports) encapsulates known remote unicast before the bridge ([`encap`]),
//!   `lb_xpass`/`lb_xdrop` are the do-nothing XDP programs the benchmark uses as its floors,
//!   `lb_tpass` the do-nothing TC one.
//! * The agent's state maps, written by userspace only: [`health`].
//!
//! Headers are `#[repr(C)]` structs ([`headers`]) read through one bounds-checked helper
//! ([`ptr`]); no program computes a header field's byte offset itself.
//!
//! # Where the VTEP's programs sit (see `lbctl/src/datapath/vxlan.rs` for the wiring)
//!
//! Each host has an internal bridge (vswin1) with a "tunnel port": one end of a veth pair
//! (`vxlan0`, peer `vxlan0p`), in place of the kernel's vxlan device. The bridge sends
//! broadcast, unknown and remote unicast frames out of that port; `lb_vxenc` on its TC egress
//! encapsulates them and redirects them to the device the kernel FIB names for the remote VTEP
//! (the underlay bridge vswout1, a NIC, or a routed interface). `lb_vxdec` runs in XDP on the
//! underlay bridge's ports (veths, native XDP); a VXLAN frame for the local VTEP goes to the
//! local endpoint or into the internal bridge, everything else returns `XDP_PASS` untouched.
//!
//! # Logging
//!
//! Through aya-log at debug level only, and only on rare events (a MAC learned or moved, an
//! unresolved neighbour, a failed FIB lookup, a vanished redirect target): a log call costs
//! more than the whole fast path, so per-packet outcomes are counters in `VX_STATS`.
//! `lbctl vtep-log` prints the records.
#![no_std]
#![no_main]

mod decap;
mod encap;
mod fdb;
mod gate;
mod headers;
mod health;
mod observe;
mod parse;
mod ptr;

use aya_ebpf::{
    bindings::{TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, xdp_action},
    btf_maps::{Array, DevMap, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap},
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
};
use lb_common::{
    OBS_PORT_MAX, OBS_VRRP_MAX, PortStats, RstpPortInfo, StpGate, VrrpKey,
    vxlan::{
        Endpoints, FdbEntry, LearnCache, MacKey, NextHop, PortHint, Remote, VX_FDB_MAX,
        VX_LOCAL_MAX, VX_NH_MAX, VX_REMOTE_MAX, VxConfig, VxStats,
    },
};

// ---------------------------------------------------------------------------------------------
// Maps (names are the kernel object names: 15 characters at most)
// ---------------------------------------------------------------------------------------------

/// Observer: per-interface counters, key: ingress ifindex.
#[btf_map]
static OBS_PORT: PerCpuHashMap<u32, PortStats, { OBS_PORT_MAX as usize }> = PerCpuHashMap::new();

/// Observer: VRRP advertisements per (ifindex, VRID).
#[btf_map]
static OBS_VRRP: PerCpuHashMap<VrrpKey, u64, { OBS_VRRP_MAX as usize }> = PerCpuHashMap::new();

/// RSTP gate per switch port (key: ifindex), written by `lbctl stpd`; see [`gate`].
#[btf_map]
static STP_GATE: HashMap<u32, StpGate, { OBS_PORT_MAX as usize }> = HashMap::new();

/// RSTP gate lease per switch port (key: ifindex; value: `bpf_ktime_get_ns` deadline),
/// renewed by `lbctl stpd`; past it a gated port discards data (see [`gate`]).
#[btf_map]
static STP_LEASE: HashMap<u32, u64, { OBS_PORT_MAX as usize }> = HashMap::new();

/// RSTP status per switch port (key: ifindex), written by `lbctl stpd` for `lbctl status`;
/// no program reads it. Declared here so the object carries its BTF (field names in
/// `bpftool map dump`) and `attach_observer` pins it with the gate.
#[btf_map]
static RSTP_PORT: HashMap<u32, RstpPortInfo, { OBS_PORT_MAX as usize }> = HashMap::new();

/// VTEP: outcome counters, one struct per CPU.
#[btf_map]
static VX_STATS: PerCpuArray<VxStats, 1> = PerCpuArray::new();

/// VTEP: MAC -> remote VTEP learned from decapsulated frames (LRU: full tables drop the
/// oldest).
#[btf_map]
static VX_FDB: LruHashMap<MacKey, FdbEntry, { VX_FDB_MAX as usize }> = LruHashMap::new();

/// VTEP: per-CPU cache of the last MAC learned (see `fdb::learn`).
#[btf_map]
static VX_LAST: PerCpuArray<LearnCache, 1> = PerCpuArray::new();

/// VTEP: the endpoint's configuration, written by the loader.
#[btf_map]
static VX_CFG: Array<VxConfig, 1> = Array::new();

/// VTEP: remote VTEPs for head-end replication (`VxConfig::n_remotes` valid entries).
#[btf_map]
static VX_REMOTE: Array<Remote, { VX_REMOTE_MAX as usize }> = Array::new();

/// VTEP: devices decapsulated frames are redirected to: slot 0 the bridge (tunnel port's
/// peer), slot i + 1 local endpoint i.
#[btf_map]
static VX_LOCAL: DevMap<{ VX_LOCAL_MAX as usize }> = DevMap::new();

/// VTEP: the local endpoints' MACs.
#[btf_map]
static VX_EPS: Array<Endpoints, 1> = Array::new();

/// VTEP: remote VTEP -> its outer next hop, as the FIB last named it (`encap::nh_cache`).
#[btf_map]
static VX_NH: HashMap<Remote, NextHop, { VX_NH_MAX as usize }> = HashMap::new();

/// VTEP: remote VTEP -> the underlay bridge's port toward it (`encap::port_hint`).
#[btf_map]
static VX_PORT: HashMap<Remote, PortHint, { VX_NH_MAX as usize }> = HashMap::new();

/// This CPU's VTEP counters.
#[inline(always)]
fn stats() -> Option<&'static mut VxStats> {
    // SAFETY: this CPU's slot of a per-CPU array; BPF programs run with migration disabled.
    VX_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

// ---------------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------------

/// TC ingress observer; see [`observe`]. Counts, then applies the port's RSTP gate
/// ([`gate::ingress`]); without a gate entry it lets every frame through unchanged.
#[classifier]
pub fn lb_obs(ctx: TcContext) -> i32 {
    let (ifindex, to_stp_group) = observe::observe(&ctx);
    gate::ingress(ifindex, to_stp_group)
}

/// TC egress of the switch ports: the RSTP gate's egress half ([`gate::egress`]).
#[classifier]
pub fn lb_gate(ctx: TcContext) -> i32 {
    let (ifindex, to_stp_group) = observe::frame_port(&ctx);
    gate::egress(ifindex, to_stp_group)
}

/// XDP on the underlay ports: decapsulates VXLAN frames for the local VTEP, passes the rest.
#[xdp]
pub fn lb_vxdec(ctx: XdpContext) -> u32 {
    let Some(st) = stats() else {
        return xdp_action::XDP_PASS;
    };
    let Some(cfg) = VX_CFG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    match parse::classify(&ctx, cfg) {
        Ok(v) => decap::deliver(&ctx, cfg, st, v),
        Err(reason) => {
            reason.count(st);
            xdp_action::XDP_PASS
        }
    }
}

/// TCX ingress of the underlay ports: the same decapsulation for frames that arrive as skbs
/// (veths); see [`decap`]. Everything that is not VXLAN for the local VTEP goes on untouched.
#[classifier]
pub fn lb_vxdtc(ctx: TcContext) -> i32 {
    let Some(st) = stats() else {
        return TC_ACT_UNSPEC;
    };
    let Some(cfg) = VX_CFG.get(0) else {
        return TC_ACT_UNSPEC;
    };
    // The checks read the headers in place: bring them into the linear part when a driver
    // left them in pages (a no-op for veths and the common NIC).
    if ctx.data_end() - ctx.data() < parse::HEADERS_LEN
        && ctx.len() as usize >= parse::HEADERS_LEN
        && ctx.pull_data(parse::HEADERS_LEN as u32).is_err()
    {
        st.pass_trunc += 1;
        return TC_ACT_UNSPEC;
    }
    match parse::classify(&ctx, cfg) {
        Ok(v) => decap::deliver_tc(&ctx, cfg, st, v),
        Err(reason) => {
            reason.count(st);
            TC_ACT_UNSPEC
        }
    }
}

/// The do-nothing XDP program: the cost floor of an XDP program run, for the benchmark.
#[xdp]
pub fn lb_xpass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The do-nothing XDP program that drops: the live-frames floor without building an skb.
#[xdp]
pub fn lb_xdrop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// TC egress of the tunnel port: every frame the internal bridge sends toward the other hosts.
#[classifier]
pub fn lb_vxenc(ctx: TcContext) -> i32 {
    let Some(st) = stats() else {
        return TC_ACT_SHOT;
    };
    let Some(cfg) = VX_CFG.get(0) else {
        st.enc_drop_err += 1;
        return TC_ACT_SHOT;
    };
    encap::encap(&ctx, cfg, st, false)
}

/// TC ingress of a local endpoint's bridge-side port (fast forwarding toward the tunnel):
/// a frame for a MAC learned behind a remote VTEP is encapsulated and sent at once, skipping
/// the internal bridge and the tunnel port; anything else (broadcast, multicast, unknown or
/// local destinations) continues into the bridge untouched (`TC_ACT_UNSPEC`, i.e. TCX
/// "next"), where `lb_vxenc` handles whatever the bridge sends to the tunnel.
#[classifier]
pub fn lb_vxfwd(ctx: TcContext) -> i32 {
    let Some(st) = stats() else {
        return TC_ACT_UNSPEC;
    };
    let Some(cfg) = VX_CFG.get(0) else {
        return TC_ACT_UNSPEC;
    };
    encap::encap(&ctx, cfg, st, true)
}

/// TCX egress of the underlay ports: learns which port the bridge sends each remote VTEP's
/// frames out of ([`encap::port_hint`]); every frame goes on unchanged.
#[classifier]
pub fn lb_vxport(ctx: TcContext) -> i32 {
    if let (Some(st), Some(cfg)) = (stats(), VX_CFG.get(0)) {
        encap::port_hint::learn(&ctx, cfg, st);
    }
    TC_ACT_UNSPEC
}

/// The do-nothing TC program: the cost floor of a TC program run (test runs build an skb),
/// for the benchmark's `lb_vxenc` figure.
#[classifier]
pub fn lb_tpass(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

const _: () = assert!(TC_ACT_REDIRECT == 7);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
