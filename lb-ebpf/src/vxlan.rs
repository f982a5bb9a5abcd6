//! lbctl's own VXLAN tunnel endpoint (VTEP): `lb_vxdec` (XDP) decapsulates on the host's
//! underlay ports, `lb_vxenc` (TC egress of the tunnel port) encapsulates, `lb_vxfwd` (TC
//! ingress of the local endpoints' ports) encapsulates known remote unicast before the
//! bridge, `lb_xpass` is the do-nothing XDP program the benchmark uses as its floor.
//!
//! # Where the programs sit (see `lbctl/src/datapath/vxlan.rs` for the wiring)
//!
//! Each host has an internal bridge (vswin1) with a "tunnel port": one end of a veth pair
//! (`vxlan0`, peer `vxlan0p`), in place of the kernel's vxlan device. The bridge sends
//! broadcast, unknown and remote unicast frames out of that port; `lb_vxenc` on its TC egress
//! encapsulates them and redirects them to the device the kernel FIB names for the remote VTEP
//! (the underlay bridge vswout1, a NIC, or a routed interface).
//!
//! `lb_vxdec` runs in XDP on the underlay bridge's ports (veths, native XDP). A VXLAN frame
//! for the local VTEP is stripped of its 50 outer bytes and redirected through the `VX_LOCAL`
//! DEVMAP either straight to the local endpoint that owns the inner destination MAC (its
//! bridge-side veth: the frame comes out of the endpoint's own interface) or, for anything
//! else, to `vxlan0p`, so the frame enters the internal bridge as received on the tunnel port
//! (the bridge learns and floods as with the kernel's device). Everything else returns
//! `XDP_PASS` untouched. Bytes after the outer IP packet (never present on a well-formed
//! VXLAN frame, which is longer than Ethernet's minimum) stay at the end of the inner frame.
//!
//! # Wire format (RFC 7348)
//!
//! Outer Ethernet (next hop MACs from `bpf_fib_lookup`), IPv4 (no options, DF, TTL 64, id 0,
//! header checksum computed here), UDP to `VxConfig::port` from a source port in
//! 49152..=65535 derived from the kernel's flow hash of the inner frame (so one inner flow
//! keeps one outer 5-tuple), UDP checksum 0 (allowed for IPv4), VXLAN header with the I flag
//! and the VNI. The kernel's vxlan device accepts exactly this, and we accept what it sends.
//!
//! # Why each helper
//!
//! * `bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC)` with the `ENCAP_*` flags for IP inner frames:
//!   the kernel then marks the skb as UDP-tunnel encapsulated (inner header offsets,
//!   `SKB_GSO_UDP_TUNNEL`), so a GSO super-packet from a local TCP socket is segmented
//!   correctly wherever the underlay needs it, like the kernel's own vxlan output.
//!   `BPF_F_ADJ_ROOM_FIXED_GSO` keeps the MSS: the internal MTU already leaves room for the
//!   50 bytes (validated in the config). `adjust_room` refuses non-IP skbs, so ARP and other
//!   frames grow with `bpf_skb_change_head` instead (they are never GSO).
//! * `bpf_clone_redirect` per remote VTEP for head-end replication, then `bpf_redirect` for the
//!   last copy: the headers are written once and only the outer destination (IP, checksum,
//!   next-hop MACs) is rewritten between copies.
//! * Logging through aya-log at debug level only, and only on rare events (a MAC learned or
//!   moved, an unresolved neighbour, a failed FIB lookup, a vanished redirect target): a log
//!   call costs more than the whole fast path, so per-packet outcomes are counters in
//!   `VX_STATS`. `lbctl vtep-log` prints the records.
use aya_ebpf::{
    bindings::{
        BPF_ANY, BPF_F_ADJ_ROOM_ENCAP_L2_ETH, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4,
        BPF_F_ADJ_ROOM_ENCAP_L4_UDP, BPF_F_ADJ_ROOM_FIXED_GSO, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, bpf_fib_lookup, bpf_redir_neigh, xdp_action,
    },
    btf_maps::{Array, DevMap, LruHashMap, PerCpuArray},
    helpers::{
        bpf_fib_lookup as fib_lookup, bpf_get_hash_recalc, bpf_ktime_get_coarse_ns, bpf_redirect,
        bpf_redirect_neigh, bpf_skb_change_head, bpf_xdp_adjust_head,
    },
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::debug;
use lb_common::vxlan::{
    Endpoints, FdbEntry, LearnCache, MacKey, Remote, VX_EP_MAX, VX_F_FAST, VX_FDB_MAX, VX_FLAG_I,
    VX_LOCAL_MAX, VX_OVERHEAD, VX_REMOTE_MAX, VX_SPORT_MIN, VxConfig, VxStats, mac_u64,
};

/// Outcome counters, one struct per CPU.
#[btf_map]
static VX_STATS: PerCpuArray<VxStats, 1> = PerCpuArray::new();

/// MAC -> remote VTEP learned from decapsulated frames (LRU: full tables drop the oldest).
#[btf_map]
static VX_FDB: LruHashMap<MacKey, FdbEntry, { VX_FDB_MAX as usize }> = LruHashMap::new();

/// Per-CPU cache of the last MAC learned (see `learn`).
#[btf_map]
static VX_LAST: PerCpuArray<LearnCache, 1> = PerCpuArray::new();

/// The endpoint's configuration, written by the loader.
#[btf_map]
static VX_CFG: Array<VxConfig, 1> = Array::new();

/// Remote VTEPs for head-end replication (`VxConfig::n_remotes` valid entries).
#[btf_map]
static VX_REMOTE: Array<Remote, { VX_REMOTE_MAX as usize }> = Array::new();

/// Devices decapsulated frames are redirected to: slot 0 the bridge (tunnel port's peer),
/// slot i + 1 local endpoint i.
#[btf_map]
static VX_LOCAL: DevMap<{ VX_LOCAL_MAX as usize }> = DevMap::new();

/// The local endpoints' MACs.
#[btf_map]
static VX_EPS: Array<Endpoints, 1> = Array::new();

const ETH_HLEN: usize = 14;
const IP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const VXLAN_HLEN: usize = 8;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = 2;
/// Learned entries are rewritten at most once a second per MAC (a map write per packet would
/// cost more than the rest of the decapsulation).
const LEARN_REFRESH_NS: u64 = 1_000_000_000;
/// Back-to-back frames from the cached MAC skip even the clock this many times: its entry is
/// refreshed after at most this many frames or a second, whichever comes later. A MAC that
/// sends fewer than this many frames per ageing period can age out while active; its frames
/// are then flooded (still delivered) until its next refresh.
const LEARN_CHECK_EVERY: u32 = 32;

#[inline(always)]
fn stats() -> Option<&'static mut VxStats> {
    // SAFETY: this CPU's slot of a per-CPU array; BPF programs run with migration disabled.
    VX_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

// ---------------------------------------------------------------------------------------------
// Decapsulation (XDP)
// ---------------------------------------------------------------------------------------------

/// XDP on the underlay ports: decapsulates VXLAN frames for the local VTEP, passes the rest.
#[xdp]
pub fn lb_vxdec(ctx: XdpContext) -> u32 {
    let Some(st) = stats() else {
        return xdp_action::XDP_PASS;
    };
    let Some(cfg) = VX_CFG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    match classify(&ctx, cfg) {
        Ok(v) => deliver(&ctx, cfg, st, v),
        Err(reason) => {
            match reason {
                Pass::NotIp => st.pass_not_ip += 1,
                Pass::Trunc => st.pass_trunc += 1,
                Pass::BadIp => st.pass_bad_ip += 1,
                Pass::IpOpts => st.pass_ip_opts += 1,
                Pass::NotLocal => st.pass_not_local += 1,
                Pass::NotUdp => st.pass_not_udp += 1,
                Pass::Frag => st.pass_frag += 1,
                Pass::Port => st.pass_port += 1,
                Pass::Flags => st.pass_flags += 1,
                Pass::Vni => st.pass_vni += 1,
            }
            xdp_action::XDP_PASS
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

enum Pass {
    NotIp,
    Trunc,
    BadIp,
    IpOpts,
    NotLocal,
    NotUdp,
    Frag,
    Port,
    Flags,
    Vni,
}

/// What a valid VXLAN frame carries that delivery needs.
struct Valid {
    outer_src: [u8; 4],
    inner_dst: [u8; 6],
    inner_src: [u8; 6],
    inner_len: usize,
}

#[inline(always)]
fn classify(ctx: &XdpContext, cfg: &VxConfig) -> Result<Valid, Pass> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + ETH_HLEN > end {
        return Err(Pass::Trunc);
    }
    let p = start as *const u8;
    // SAFETY (every read below): the verifier-visible bound check right before it covers the
    // bytes read.
    let ethertype = unsafe { u16::from_be_bytes([*p.add(12), *p.add(13)]) };
    if ethertype != ETH_P_IP {
        return Err(Pass::NotIp);
    }
    if start + ETH_HLEN + IP_HLEN > end {
        return Err(Pass::Trunc);
    }
    let ip = unsafe { p.add(ETH_HLEN) };
    let vihl = unsafe { *ip };
    if vihl >> 4 != 4 || vihl & 0x0f < 5 {
        return Err(Pass::BadIp);
    }
    if vihl & 0x0f != 5 {
        return Err(Pass::IpOpts);
    }
    let tot_len = unsafe { u16::from_be_bytes([*ip.add(2), *ip.add(3)]) } as usize;
    if tot_len < IP_HLEN {
        return Err(Pass::BadIp);
    }
    let dst = unsafe { [*ip.add(16), *ip.add(17), *ip.add(18), *ip.add(19)] };
    if dst != cfg.local_ip {
        return Err(Pass::NotLocal);
    }
    if unsafe { *ip.add(9) } != IPPROTO_UDP {
        return Err(Pass::NotUdp);
    }
    let frag = unsafe { u16::from_be_bytes([*ip.add(6), *ip.add(7)]) };
    if frag & 0x3fff != 0 {
        return Err(Pass::Frag);
    }
    let udp_off = ETH_HLEN + IP_HLEN;
    if start + udp_off + UDP_HLEN > end {
        return Err(Pass::Trunc);
    }
    let udp = unsafe { p.add(udp_off) };
    let dport = unsafe { u16::from_be_bytes([*udp.add(2), *udp.add(3)]) };
    if dport != cfg.port {
        return Err(Pass::Port);
    }
    let vx_off = udp_off + UDP_HLEN;
    if start + vx_off + VXLAN_HLEN > end {
        return Err(Pass::Trunc);
    }
    let vx = unsafe { p.add(vx_off) };
    if unsafe { *vx } & VX_FLAG_I == 0 {
        return Err(Pass::Flags);
    }
    let vni = unsafe { u32::from_be_bytes([0, *vx.add(4), *vx.add(5), *vx.add(6)]) };
    if vni != cfg.vni {
        return Err(Pass::Vni);
    }
    let in_off = vx_off + VXLAN_HLEN;
    if start + in_off + ETH_HLEN > end {
        return Err(Pass::Trunc);
    }
    let frame = end - start;
    if ETH_HLEN + tot_len > frame {
        return Err(Pass::Trunc); // the IP packet claims more than the frame holds
    }
    let inner = unsafe { p.add(in_off) };
    let mut inner_dst = [0u8; 6];
    let mut inner_src = [0u8; 6];
    for i in 0..6 {
        inner_dst[i] = unsafe { *inner.add(i) };
        inner_src[i] = unsafe { *inner.add(6 + i) };
    }
    Ok(Valid {
        outer_src: unsafe { [*ip.add(12), *ip.add(13), *ip.add(14), *ip.add(15)] },
        inner_dst,
        inner_src,
        inner_len: frame - in_off,
    })
}

#[inline(always)]
fn deliver(ctx: &XdpContext, cfg: &VxConfig, st: &mut VxStats, v: Valid) -> u32 {
    // Where to: the local endpoint owning the inner destination MAC, else the bridge.
    let mut key = 0u32;
    let mut fast = false;
    if cfg.flags & VX_F_FAST != 0 && v.inner_dst[0] & 1 == 0 {
        if let Some(eps) = VX_EPS.get(0) {
            let dst = mac_u64(v.inner_dst);
            let n = eps.n.min(VX_EP_MAX);
            for i in 0..VX_EP_MAX {
                if i >= n {
                    break;
                }
                if eps.macs[i as usize] == dst {
                    key = i + 1;
                    fast = true;
                    break;
                }
            }
        }
    }
    learn(ctx, &v, st);
    // SAFETY: ctx.ctx is the xdp_md of this program run.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, VX_OVERHEAD as i32) } != 0 {
        st.pass_trunc += 1;
        return xdp_action::XDP_PASS;
    }
    // The loader fills a VX_LOCAL slot for the bridge and for every VX_EPS entry; a slot is
    // only empty when its device has been deleted (the kernel clears it from the DEVMAP).
    // The frame is stripped already and has nowhere to go: drop it and count it.
    match VX_LOCAL.redirect(key, xdp_action::XDP_DROP as u64) {
        Ok(action) => {
            if fast {
                st.dec_fast += 1;
            } else {
                st.dec_bridge += 1;
            }
            st.dec_bytes += v.inner_len as u64;
            action
        }
        Err(_) => {
            st.dec_no_dev += 1;
            debug!(
                ctx,
                "vxlan: no device in VX_LOCAL slot {}, frame dropped", key
            );
            xdp_action::XDP_DROP
        }
    }
}

/// MAC learning: the inner source MAC lives behind the outer source address. A per-CPU
/// cache of the last MAC seen spares the LRU lookup for back-to-back frames of one flow.
#[inline(always)]
fn learn(ctx: &XdpContext, v: &Valid, st: &mut VxStats) {
    if v.inner_src[0] & 1 != 0 {
        return; // a multicast source MAC is invalid; never learn it
    }
    let Some(last) = VX_LAST.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot of a per-CPU array.
    let last = unsafe { &mut *last };
    let same = last.mac == v.inner_src && last.vtep == v.outer_src;
    // Even the clock costs (a helper call measured at ~40 ns, as much as the rest of the
    // decapsulation): a cache hit reads it only every LEARN_CHECK_EVERY frames.
    if same && last.hits < LEARN_CHECK_EVERY {
        last.hits += 1;
        return;
    }
    // Coarse time (jiffy resolution) is plenty for ageing counted in seconds.
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if same && now.wrapping_sub(last.seen_ns) <= LEARN_REFRESH_NS {
        last.hits = 0;
        return;
    }
    let key = MacKey::new(v.inner_src);
    let mut fresh = false;
    if let Some(e) = VX_FDB.get_ptr_mut(key) {
        // SAFETY: map value pointer; racing writers only ever store whole fresh values.
        let e = unsafe { &mut *e };
        if e.vtep == v.outer_src {
            if now.wrapping_sub(e.seen_ns) > LEARN_REFRESH_NS {
                e.seen_ns = now;
                st.learn_refresh += 1;
            }
            fresh = true;
        }
    }
    if !fresh {
        let entry = FdbEntry {
            vtep: v.outer_src,
            pad: 0,
            seen_ns: now,
        };
        if VX_FDB.insert(key, entry, BPF_ANY as u64).is_err() {
            return;
        }
        st.learn_new += 1;
        debug!(
            ctx,
            "vxlan: learned {:mac} behind {:i}",
            v.inner_src,
            u32::from_be_bytes(v.outer_src)
        );
    }
    last.mac = v.inner_src;
    last.vtep = v.outer_src;
    last.hits = 0;
    last.seen_ns = now;
}

// ---------------------------------------------------------------------------------------------
// Encapsulation (TC egress of the tunnel port)
// ---------------------------------------------------------------------------------------------

/// Offsets inside the 64 bytes written in front of the inner payload.
const O_IP: usize = ETH_HLEN;
const O_UDP: usize = O_IP + IP_HLEN;
const O_VX: usize = O_UDP + UDP_HLEN;
const O_INNER: usize = O_VX + VXLAN_HLEN;
const HDR_LEN: usize = O_INNER + ETH_HLEN;

/// TC egress of the tunnel port: every frame the internal bridge sends toward the other hosts.
#[classifier]
pub fn lb_vxenc(ctx: TcContext) -> i32 {
    let Some(st) = stats() else {
        return TC_ACT_SHOT as i32;
    };
    let Some(cfg) = VX_CFG.get(0) else {
        st.enc_drop_err += 1;
        return TC_ACT_SHOT as i32;
    };
    encap(&ctx, cfg, st, false)
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
    encap(&ctx, cfg, st, true)
}

/// Encapsulates the frame of `ctx`. With `fast_tx` (from `lb_vxfwd`) only known unicast is
/// handled; every other frame is left untouched and `TC_ACT_UNSPEC` returned.
#[inline(always)]
fn encap(ctx: &TcContext, cfg: &VxConfig, st: &mut VxStats, fast_tx: bool) -> i32 {
    let len = ctx.len() as usize;
    let Ok(inner_eth) = ctx.load::<[u8; ETH_HLEN]>(0) else {
        if fast_tx {
            return TC_ACT_UNSPEC;
        }
        st.enc_drop_err += 1;
        return TC_ACT_SHOT as i32;
    };
    let n_remotes = cfg.n_remotes.min(VX_REMOTE_MAX);
    if n_remotes == 0 {
        if fast_tx {
            return TC_ACT_UNSPEC;
        }
        st.enc_drop_no_remote += 1;
        return TC_ACT_SHOT as i32;
    }
    // Known unicast: the VTEP learned for the destination MAC, unless it has aged out.
    let mut unicast: Option<[u8; 4]> = None;
    if inner_eth[0] & 1 == 0 {
        let dst = [
            inner_eth[0],
            inner_eth[1],
            inner_eth[2],
            inner_eth[3],
            inner_eth[4],
            inner_eth[5],
        ];
        if let Some(e) = VX_FDB.get_ptr(MacKey::new(dst)) {
            // SAFETY: map value pointer, read only.
            let e = unsafe { *e };
            // Same clock as learning. SAFETY: no preconditions.
            let now = unsafe { bpf_ktime_get_coarse_ns() };
            if now.wrapping_sub(e.seen_ns) <= cfg.ageing_ns {
                unicast = Some(e.vtep);
            }
        }
    }
    if fast_tx && unicast.is_none() {
        return TC_ACT_UNSPEC;
    }
    let copies = if unicast.is_some() { 1 } else { n_remotes };

    // Source port from the inner flow's hash (computed before the headers change).
    // SAFETY: skb of this program run.
    let hash = unsafe { bpf_get_hash_recalc(ctx.skb.skb) };
    let sport = VX_SPORT_MIN | (hash as u16 & 0x3fff);
    // SAFETY: skb of this program run.
    let proto = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    let inner_ipv4 = proto == ETH_P_IP;

    let grown = if inner_ipv4 || proto == ETH_P_IPV6 {
        let flags = (BPF_F_ADJ_ROOM_FIXED_GSO
            | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
            | BPF_F_ADJ_ROOM_ENCAP_L4_UDP
            | BPF_F_ADJ_ROOM_ENCAP_L2_ETH) as u64
            | encap_l2_len(ETH_HLEN as u64);
        ctx.adjust_room(VX_OVERHEAD as i32, BPF_ADJ_ROOM_MAC, flags)
            .is_ok()
    } else {
        // SAFETY: skb of this program run.
        unsafe { bpf_skb_change_head(ctx.skb.skb, VX_OVERHEAD as u32, 0) == 0 }
    };
    if !grown {
        st.enc_drop_err += 1;
        return TC_ACT_SHOT as i32;
    }

    let tot_len = (len + VX_OVERHEAD - ETH_HLEN).min(0xffff) as u16;
    let mut h = [0u8; HDR_LEN];
    h[12] = 0x08; // outer ethertype IPv4
    h[O_IP] = 0x45;
    h[O_IP + 2..O_IP + 4].copy_from_slice(&tot_len.to_be_bytes());
    h[O_IP + 6] = 0x40; // DF
    h[O_IP + 8] = 64; // TTL
    h[O_IP + 9] = IPPROTO_UDP;
    h[O_IP + 12..O_IP + 16].copy_from_slice(&cfg.local_ip);
    h[O_UDP..O_UDP + 2].copy_from_slice(&sport.to_be_bytes());
    h[O_UDP + 2..O_UDP + 4].copy_from_slice(&cfg.port.to_be_bytes());
    h[O_UDP + 4..O_UDP + 6].copy_from_slice(&(tot_len - IP_HLEN as u16).to_be_bytes());
    h[O_VX] = VX_FLAG_I;
    let vni = cfg.vni.to_be_bytes();
    h[O_VX + 4] = vni[1];
    h[O_VX + 5] = vni[2];
    h[O_VX + 6] = vni[3];
    h[O_INNER..HDR_LEN].copy_from_slice(&inner_eth);

    if unicast.is_some() {
        st.enc_unicast += 1;
        if fast_tx {
            st.enc_fast += 1;
        }
    } else {
        st.enc_flood += 1;
    }
    st.enc_bytes += len as u64;

    for i in 0..VX_REMOTE_MAX {
        if i >= copies {
            break;
        }
        let last = i + 1 == copies;
        let remote = match unicast {
            Some(ip) => ip,
            None => match VX_REMOTE.get(i) {
                Some(r) => r.ip,
                None => break,
            },
        };
        h[O_IP + 16..O_IP + 20].copy_from_slice(&remote);
        h[O_IP + 10] = 0;
        h[O_IP + 11] = 0;
        let csum = ip_checksum(&h);
        h[O_IP + 10..O_IP + 12].copy_from_slice(&csum.to_be_bytes());

        // SAFETY: an all-zero bpf_fib_lookup is a valid input.
        let mut fib: bpf_fib_lookup = unsafe { core::mem::zeroed() };
        fib.family = AF_INET;
        fib.l4_protocol = IPPROTO_UDP;
        fib.ifindex = cfg.fib_ifindex;
        fib.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(cfg.local_ip);
        fib.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(remote);
        // SAFETY: skb context and a stack struct of the size passed.
        let rc = unsafe {
            fib_lookup(
                ctx.skb.skb as *mut _,
                &mut fib,
                core::mem::size_of::<bpf_fib_lookup>() as i32,
                0,
            )
        };
        if rc == BPF_FIB_LKUP_RET_SUCCESS as i64 {
            h[0..6].copy_from_slice(&fib.dmac);
            h[6..12].copy_from_slice(&fib.smac);
            if ctx.store(0, &h, 0).is_err() {
                st.enc_drop_err += 1;
                continue;
            }
            if last {
                st.enc_copies += 1;
                // SAFETY: plain helper call.
                return unsafe { bpf_redirect(fib.ifindex, 0) } as i32;
            }
            if ctx.clone_redirect(fib.ifindex, 0).is_ok() {
                st.enc_copies += 1;
            } else {
                st.enc_drop_err += 1;
            }
        } else if rc == BPF_FIB_LKUP_RET_NO_NEIGH as i64 {
            st.enc_no_neigh += 1;
            debug!(
                ctx,
                "vxlan: no neighbour for the next hop to {:i}",
                u32::from_be_bytes(remote)
            );
            // The kernel resolves the neighbour (and queues the frame meanwhile) only through
            // bpf_redirect_neigh, which needs skb->protocol to be IPv4: true when the inner
            // frame is IPv4. Other copies are dropped; the loader pre-resolves the remote
            // VTEPs' neighbours so this stays rare.
            if last && inner_ipv4 {
                h[0..12].copy_from_slice(&[0; 12]);
                if ctx.store(0, &h, 0).is_err() {
                    st.enc_drop_err += 1;
                    break;
                }
                // SAFETY: an all-zero bpf_redir_neigh is valid; family and address are set.
                let mut nh: bpf_redir_neigh = unsafe { core::mem::zeroed() };
                nh.nh_family = AF_INET as u32;
                // SAFETY: writing a union member.
                unsafe {
                    nh.__bindgen_anon_1.ipv4_nh = fib.__bindgen_anon_4.ipv4_dst;
                }
                st.enc_copies += 1;
                // SAFETY: stack struct of the size passed.
                return unsafe {
                    bpf_redirect_neigh(
                        fib.ifindex,
                        &mut nh,
                        core::mem::size_of::<bpf_redir_neigh>() as i32,
                        0,
                    )
                } as i32;
            }
        } else {
            st.enc_drop_fib += 1;
            debug!(
                ctx,
                "vxlan: FIB lookup for {:i} failed ({}), copy dropped",
                u32::from_be_bytes(remote),
                rc
            );
        }
    }
    TC_ACT_SHOT as i32
}

/// `BPF_F_ADJ_ROOM_ENCAP_L2(len)`: the inner L2 header length, in the flags' top byte.
#[inline(always)]
const fn encap_l2_len(len: u64) -> u64 {
    (len & 0xff) << 56
}

/// IPv4 header checksum over `h[O_IP..O_IP + 20]` (checksum field zero).
#[inline(always)]
fn ip_checksum(h: &[u8; HDR_LEN]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < IP_HLEN {
        sum += u32::from(u16::from_be_bytes([h[O_IP + i], h[O_IP + i + 1]]));
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

const _: () = assert!(HDR_LEN == VX_OVERHEAD + ETH_HLEN);
const _: () = assert!(TC_ACT_REDIRECT == 7);
