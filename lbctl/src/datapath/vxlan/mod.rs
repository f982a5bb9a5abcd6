//! lbctl's BPF VXLAN tunnel endpoint (`vxlan.mode = "ebpf"`): loads `lb_vxdtc` (TC) or
//! `lb_vxdec` (XDP) for the decapsulation (`vxlan.decap`), `lb_vxenc` and `lb_vxfwd` (TC)
//! from the embedded object, fills their maps and pins everything under the host's pin
//! directory. The BPF side is the `lb-ebpf` crate; the shared types are
//! `lb_common::vxlan`.
//!
//! # Wiring on one host (what `lbctl up` builds, `topo/build.rs`)
//!
//! ```text
//!   serv1 eth0 ── serv1-eth0 ┐                          ┌ to-swout1 ── swout1   (TC lb_vxdtc
//!   serv2 eth0 ── serv2-eth0 ├ vswin1   vswout1 (VTEP)  ┤                        or XDP lb_vxdec)
//!   bal1  eth1 ── bal1-eth1  │                          └ to-swout2 ── swout2   (the same)
//!                 vxlan0 ────┤  (TC egress lb_vxenc; TC ingress lb_vxfwd on each endpoint port)
//!                 vxlan0h ───┘  (headroom port: a vxlan device kept down, carries nothing)
//!                 vxlan0p       (peer of the tunnel port; XDP redirect target)
//! ```
//!
//! * The headroom port (`headroom.rs`, which says why this device and not netkit or a veth
//!   setting): the encapsulating programs push 50 bytes in front of each frame, and a frame
//!   with less room than that has its head reallocated by `bpf_skb_adjust_room` (about
//!   150 ns of `lb_vxfwd`'s 530 per run, one `kmalloc` per frame). The kernel's vxlan
//!   device, as a bridge port, makes the bridge give every port (and a veth's peer, the
//!   endpoint's own interface) `needed_headroom` for its headers; an unused vxlan device kept
//!   down on the bridge does the same for the BPF VTEP. `lbctl up` adds it after the
//!   bridge's planned ports (so port numbers stay the plan's) and checks every endpoint got
//!   the room; the namespace takes it away on `down`. It carries the alias
//!   [`headroom::ALIAS`], by which `topo::inspect` leaves it out of the bridge's ports (STP
//!   theory, `status`, `graph` and `verify` never see it as a disabled port); `status` names
//!   it in the host's VXLAN lines with the headroom its endpoints have. On a real host, call
//!   [`headroom::add`] on the bridge that holds the endpoints, or by hand:
//!   `ip link add vxlan0h type vxlan id <VNI> dstport <PORT>; ip link set vxlan0h master
//!   <BRIDGE>` (left down).
//! * The tunnel port is a veth (`vxlan0`, peer `vxlan0p`) enslaved to the internal bridge
//!   where the kernel's vxlan device would be. Frames the bridge sends out of it meet
//!   `lb_vxenc` on its TC egress (TCX): encapsulated, next hop from `bpf_fib_lookup` (which
//!   here names the underlay bridge vswout1, whose own FDB then picks the physical port;
//!   cached per remote VTEP for a second in `VX_NH`, see `lb-ebpf/src/encap/nh_cache.rs`),
//!   and redirected there. The FIB lookup runs "as if received on" `vxlan0`, which therefore has
//!   `net.ipv4.conf.vxlan0.forwarding = 1` (the helper refuses otherwise); `vxlan0` has no
//!   address, so this forwards nothing else.
//! * `lb_vxfwd` on the TC ingress of every local endpoint's bridge-side port is the mirror
//!   of decap fast forwarding: a frame for a MAC learned behind a remote VTEP is encapsulated
//!   right there and redirected to the underlay, skipping the internal bridge and the tunnel
//!   port; everything else goes on into the bridge (TCX "next").
//! * `lb_vxdtc` (`decap = "tc"`, the default) runs in the TCX ingress of the underlay
//!   bridge's ports (before the bridge, like XDP), with the same checks and learning as
//!   `lb_vxdec`. It strips the outer headers with `bpf_skb_adjust_room` and sends a frame
//!   for a local endpoint into the endpoint's namespace with `bpf_redirect_peer` (no backlog
//!   queue on the way), anything else out of `vxlan0p` into the bridge (`bpf_redirect`).
//!   Veths deliver skbs, so XDP on them converts each skb to an XDP frame and back (and
//!   copies it when the skb's headroom is under 256 bytes); TC works on the skb as it is, the
//!   peers keep checksum offload and GSO, and none of the XDP preparations below are made.
//!   Measured in one lab each, 64-byte UDP: 110k pkt/s against 96k with XDP (README).
//!   The skb of a GSO super-packet keeps its UDP-tunnel GSO marks after the decapsulation
//!   (6.18 has no flag to clear them; bpf-next's `BPF_F_ADJ_ROOM_DECAP_L4_UDP` does): a local
//!   socket or a veth does not care, a NIC with tunnel segmentation offload would. On such a
//!   host, set `decap = "xdp"` for its NIC.
//! * `lb_vxdec` (`decap = "xdp"`) is native XDP on the underlay bridge's ports (the veths to the switches), i.e.
//!   before the bridge: the VTEP address lives on the bridge device, but XDP cannot run on a
//!   bridge in driver mode, and generic XDP there would see GRO/GSO super-packets it cannot
//!   redirect (the generic redirect path refuses frames over the MTU). Decapsulated frames
//!   are redirected (DEVMAP `VX_LOCAL`) to the endpoint's bridge-side veth when the inner
//!   destination MAC is a local endpoint (`VX_EPS`, a short array scanned linearly, slot
//!   `i + 1` of `VX_LOCAL`; the frame leaves through the endpoint's own interface, skipping
//!   the bridge), otherwise to `vxlan0p` (slot 0), so it enters the bridge as received on the
//!   tunnel port.
//! * With XDP: a veth that receives XDP-redirected frames needs NAPI on its receiving end: the loader's
//!   caller enables GRO on `vxlan0` and on every endpoint's interface (a veth with GRO on has
//!   NAPI; XDP_REDIRECT into a veth without it is dropped).
//! * Checksums: veths hand `CHECKSUM_PARTIAL` skbs across (the L4 checksum is still to be
//!   computed); XDP works on raw bytes and a redirected frame loses that state, so the peers
//!   of the XDP ports (the switches' ends) have TX checksum offload off: every frame reaching
//!   the XDP ports carries complete checksums, as from a real wire. XDP on a veth also
//!   removes GSO from its peer (frames arrive segmented), which is the measured cost of this
//!   design (see `cargo xtask bench datapath`).
//!
//! * Known limitation: XDP runs before the bridge, so it also sees frames arriving on an
//!   underlay port that STP blocks. A switch only sends the VTEP's unicast there while
//!   flooding an unknown destination (right after a topology change flushed its MAC table);
//!   such a copy is decapsulated too and the inner frame can arrive twice. XDP cannot read
//!   the bridge port's STP state, and lbctl keeps no daemon on the hosts to mirror it into a
//!   map.
//! * Fast-forwarded frames skip the internal bridge, so it does not learn the remote MACs
//!   from them (it does from broadcasts such as ARP, which go through it); until it has, it
//!   floods replies, which still reach `lb_vxenc` and go out as known unicast.
//!
//! # Pins (under the host's pin directory, `/sys/fs/bpf/lbctl/<lab>/<host>/`)
//!
//! `lb_vxdtc` or `lb_vxdec`, `lb_vxenc`, `lb_vxfwd` (programs), `VX_STATS`, `VX_FDB`, `VX_CFG`,
//! `VX_REMOTE`, `VX_LOCAL`, `VX_EPS`, `VX_LAST`, `VX_NH` (maps), `vxlinks/tcdec-<iface>` or
//! `vxlinks/xdp-<iface>`, `vxlinks/port-<iface>` (`lb_vxport`), `vxlinks/tc-<iface>` and
//! `vxlinks/fwd-<iface>`
//! (links; removing a link pin detaches the program). `lbctl down` removes the whole lab
//! directory.
use std::{
    ffi::CString,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{Array, DevMap, HashMap, Map, MapData, PerCpuArray},
    programs::{
        links::FdLink, tc::TcAttachOptions, LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use lb_common::vxlan::{
    mac_u64, Endpoints, FdbEntry, MacKey, Remote, VxConfig, VxStats, VX_CFG_MAP, VX_DEC_PROG,
    VX_DEC_TC_PROG, VX_ENC_PROG, VX_EPS_MAP, VX_EP_MAX, VX_FDB_MAP, VX_FWD_PROG, VX_F_FAST,
    VX_LOCAL_MAP, VX_MAPS, VX_PORT_PROG, VX_REMOTE_MAP, VX_REMOTE_MAX, VX_STATS_MAP,
};
use serde::Serialize;

pub use crate::config::VxlanDecap as DecapHook;

/// Subdirectory of the pin directory holding the VTEP's links.
pub const LINKS_DIR: &str = "vxlinks";

/// Everything one host's VTEP needs (interface names resolve in the caller's namespace).
#[derive(Debug, Clone)]
pub struct VtepSpec {
    /// Local VTEP address.
    pub local: Ipv4Addr,
    pub vni: u32,
    pub port: u16,
    /// Remote VTEPs (head-end replication list), at most [`VX_REMOTE_MAX`].
    pub remotes: Vec<Ipv4Addr>,
    /// Learned MACs older than this are flooded again.
    pub ageing: Duration,
    /// The tunnel port (bridge side of the veth pair): TC egress encapsulates.
    pub tunnel_port: String,
    /// Its peer: decapsulated frames for the bridge are redirected here.
    pub tunnel_peer: String,
    /// Underlay ports: the decapsulation runs here.
    pub underlay_ports: Vec<String>,
    /// Which hook decapsulates on them.
    pub decap: DecapHook,
    /// Local endpoints: inner MAC -> bridge-side veth to redirect to (fast forwarding).
    pub endpoints: Vec<([u8; 6], String)>,
    /// Redirect frames for local endpoints straight to their veth.
    pub fast: bool,
}

/// The BPF object (shared with the observer; built by `build.rs`).
fn object() -> &'static [u8] {
    super::observe::object()
}

fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| anyhow!("bad interface name {name:?}"))?;
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("interface {name} does not exist");
    }
    Ok(i)
}

/// Loads the VTEP, fills its maps, attaches `lb_vxdec` (native XDP) to every underlay port and
/// `lb_vxenc` to the TC egress of the tunnel port, pinning everything under `pin_dir`.
///
/// Must run on an OS thread inside the host's network namespace. On failure, whatever it
/// pinned is removed again (the links with it), so nothing stays attached.
pub fn attach_vtep(pin_dir: &Path, spec: &VtepSpec) -> Result<()> {
    for prog in [VX_DEC_PROG, VX_DEC_TC_PROG] {
        if pin_dir.join(prog).exists() {
            bail!(
                "{} already holds a VTEP ({prog}); remove the pins first",
                pin_dir.display()
            );
        }
    }
    let mut created: Vec<PathBuf> = Vec::new();
    let res = attach_inner(pin_dir, spec, &mut created);
    if res.is_err() {
        for f in created.iter().rev() {
            let _ = fs::remove_file(f);
        }
        let _ = fs::remove_dir(pin_dir.join(LINKS_DIR));
    }
    res
}

/// Loads the object and fills the maps of a VTEP (no attachment, no pins). Used by
/// [`attach_vtep`] and by the packet tests and benchmark through `BPF_PROG_TEST_RUN`.
pub fn load_vtep(spec: &VtepSpec) -> Result<Ebpf> {
    if spec.remotes.len() > VX_REMOTE_MAX as usize {
        bail!(
            "{} remote VTEPs; the BPF VTEP replicates to at most {VX_REMOTE_MAX}",
            spec.remotes.len()
        );
    }
    // The programs log (rarely) at debug level; nothing more verbose is compiled in, and
    // this keeps it that way.
    let level = aya_log::Level::Debug as u8;
    let mut ebpf = EbpfLoader::new()
        .override_global(aya_log::LEVEL, &level, false)
        .load(object())
        .context("loading the BPF object (needs root and a BTF-enabled kernel)")?;
    let bridge_ifindex = ifindex(&spec.tunnel_peer)?;
    let fib_ifindex = ifindex(&spec.tunnel_port)?;
    let cfg = VxConfig {
        local_ip: spec.local.octets(),
        vni: spec.vni,
        port: spec.port,
        pad: 0,
        flags: if spec.fast { VX_F_FAST } else { 0 },
        bridge_ifindex,
        fib_ifindex,
        n_remotes: spec.remotes.len() as u32,
        pad2: 0,
        ageing_ns: spec.ageing.as_nanos().min(u64::MAX as u128) as u64,
    };
    {
        let mut m: Array<&mut MapData, VxConfig> =
            Array::try_from(map_mut(&mut ebpf, VX_CFG_MAP)?)?;
        m.set(0, cfg, 0).context("writing VX_CFG")?;
    }
    {
        let mut m: Array<&mut MapData, Remote> =
            Array::try_from(map_mut(&mut ebpf, VX_REMOTE_MAP)?)?;
        for (i, r) in spec.remotes.iter().enumerate() {
            m.set(i as u32, Remote { ip: r.octets() }, 0)
                .context("writing VX_REMOTE")?;
        }
    }
    if spec.endpoints.len() > VX_EP_MAX as usize {
        bail!(
            "{} local endpoints; the BPF VTEP fast-forwards to at most {VX_EP_MAX}",
            spec.endpoints.len()
        );
    }
    {
        let mut m: DevMap<&mut MapData> = DevMap::try_from(map_mut(&mut ebpf, VX_LOCAL_MAP)?)?;
        m.set(0, bridge_ifindex, None, 0)
            .with_context(|| format!("adding {} to VX_LOCAL", spec.tunnel_peer))?;
        for (i, (_, port)) in spec.endpoints.iter().enumerate() {
            m.set(i as u32 + 1, ifindex(port)?, None, 0)
                .with_context(|| format!("adding {port} to VX_LOCAL"))?;
        }
    }
    {
        let mut eps = Endpoints {
            n: spec.endpoints.len() as u32,
            ..Endpoints::default()
        };
        for (i, (mac, port)) in spec.endpoints.iter().enumerate() {
            eps.macs[i] = mac_u64(*mac);
            eps.ifindex[i] = ifindex(port)?;
        }
        let mut m: Array<&mut MapData, Endpoints> =
            Array::try_from(map_mut(&mut ebpf, VX_EPS_MAP)?)?;
        m.set(0, eps, 0).context("writing VX_EPS")?;
    }
    Ok(ebpf)
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("BPF object has no map {name}"))
}

fn attach_inner(pin_dir: &Path, spec: &VtepSpec, created: &mut Vec<PathBuf>) -> Result<()> {
    let links_dir = pin_dir.join(LINKS_DIR);
    fs::create_dir_all(&links_dir)
        .with_context(|| format!("creating pin directory {}", links_dir.display()))?;
    let mut ebpf = load_vtep(spec)?;
    for name in VX_MAPS {
        let path = pin_dir.join(name);
        ebpf.map(name)
            .ok_or_else(|| anyhow!("BPF object has no map {name}"))?
            .pin(&path)
            .with_context(|| format!("pinning map {name} at {}", path.display()))?;
        created.push(path);
    }
    let mut pins = Pins {
        pin_dir,
        links_dir: &links_dir,
        created,
    };
    let enc = TcHook {
        prog: VX_ENC_PROG,
        at: TcAttachType::Egress,
        kind: "tc",
        first: true,
    };
    attach_tc(
        &mut ebpf,
        &mut pins,
        &enc,
        std::slice::from_ref(&spec.tunnel_port),
    )?;
    if spec.fast && !spec.endpoints.is_empty() {
        let ports: Vec<String> = spec.endpoints.iter().map(|(_, p)| p.clone()).collect();
        let fwd = TcHook {
            prog: VX_FWD_PROG,
            at: TcAttachType::Ingress,
            kind: "fwd",
            first: false, // after the observer (which only counts and says "next")
        };
        attach_tc(&mut ebpf, &mut pins, &fwd, &ports)?;
    }
    let port = TcHook {
        prog: VX_PORT_PROG,
        at: TcAttachType::Egress,
        kind: "port",
        first: false,
    };
    attach_tc(&mut ebpf, &mut pins, &port, &spec.underlay_ports)?;
    // The decapsulation program's pin goes last: it marks a complete installation.
    match spec.decap {
        DecapHook::Xdp => attach_xdp_decap(&mut ebpf, &mut pins, &spec.underlay_ports),
        DecapHook::Tc => {
            let dec = TcHook {
                prog: VX_DEC_TC_PROG,
                at: TcAttachType::Ingress,
                kind: "tcdec",
                first: true,
            };
            attach_tc(&mut ebpf, &mut pins, &dec, &spec.underlay_ports)
        }
    }
}

/// A TC program of the VTEP and where it goes.
struct TcHook {
    prog: &'static str,
    at: TcAttachType,
    /// Prefix of its link pins (`vxlinks/<kind>-<iface>`).
    kind: &'static str,
    /// First in the TCX chain, else last.
    first: bool,
}

/// Where [`attach_inner`] pins, and what it has pinned so far (removed again on failure).
struct Pins<'a> {
    pin_dir: &'a Path,
    links_dir: &'a Path,
    created: &'a mut Vec<PathBuf>,
}

impl Pins<'_> {
    /// Pins `link` as `vxlinks/<kind>-<iface>`.
    fn link(&mut self, link: FdLink, kind: &str, iface: &str) -> Result<()> {
        let path = self.links_dir.join(format!("{kind}-{iface}"));
        link.pin(&path)
            .with_context(|| format!("pinning {}", path.display()))?;
        self.created.push(path);
        Ok(())
    }

    /// Pins the program `prog` under its name.
    fn prog(&mut self, prog: &mut impl PinProg, name: &str) -> Result<()> {
        let path = self.pin_dir.join(name);
        prog.pin_at(&path)
            .with_context(|| format!("pinning {}", path.display()))?;
        self.created.push(path);
        Ok(())
    }
}

/// A program that can be pinned (aya's `pin` is per program type).
trait PinProg {
    fn pin_at(&mut self, path: &Path) -> Result<()>;
}

impl PinProg for SchedClassifier {
    fn pin_at(&mut self, path: &Path) -> Result<()> {
        Ok(self.pin(path)?)
    }
}

impl PinProg for Xdp {
    fn pin_at(&mut self, path: &Path) -> Result<()> {
        Ok(self.pin(path)?)
    }
}

/// Loads the TC program of `hook` and attaches it (TCX) to every interface of `ifaces`,
/// pinning each link and then the program.
fn attach_tc(ebpf: &mut Ebpf, pins: &mut Pins<'_>, hook: &TcHook, ifaces: &[String]) -> Result<()> {
    let (name, at) = (hook.prog, hook.at);
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("BPF object has no program {name}"))?
        .try_into()?;
    prog.load()
        .with_context(|| format!("loading {name} (verifier)"))?;
    for iface in ifaces {
        let order = if hook.first {
            LinkOrder::first()
        } else {
            LinkOrder::last()
        };
        let id = prog
            .attach_with_options(iface, at, TcAttachOptions::TcxOrder(order))
            .with_context(|| format!("attaching {name} to TC {at:?} of {iface}"))?;
        pins.link(prog.take_link(id)?.try_into()?, hook.kind, iface)?;
    }
    pins.prog(prog, name)
}

/// Loads `lb_vxdec` and attaches it in native XDP to every underlay port.
fn attach_xdp_decap(ebpf: &mut Ebpf, pins: &mut Pins<'_>, ifaces: &[String]) -> Result<()> {
    let dec: &mut Xdp = ebpf
        .program_mut(VX_DEC_PROG)
        .ok_or_else(|| anyhow!("BPF object has no program {VX_DEC_PROG}"))?
        .try_into()?;
    dec.load()
        .with_context(|| format!("loading {VX_DEC_PROG} (verifier)"))?;
    for iface in ifaces {
        let id = dec
            .attach(iface, XdpMode::Driver)
            .with_context(|| format!("attaching {VX_DEC_PROG} (native XDP) to {iface}"))?;
        let link: FdLink = dec
            .take_link(id)?
            .try_into()
            .with_context(|| format!("XDP link of {iface} is not a bpf_link"))?;
        pins.link(link, "xdp", iface)?;
    }
    pins.prog(dec, VX_DEC_PROG)
}

/// Prints the VTEP's aya-log records (debug level: MACs learned, unresolved neighbours,
/// failed FIB lookups, vanished redirect targets) for `secs` seconds, or until killed when
/// `secs` is 0. Reads the log ring buffer of the pinned `lb_vxenc`, shared by all the
/// programs of one VTEP.
pub fn follow_log(pin_dir: &Path, secs: u64) -> Result<()> {
    struct Stdout;
    impl log::Log for Stdout {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            use std::io::Write as _;
            // A closed pipe (`| head`) is not worth a panic: drop the line.
            let _ = writeln!(std::io::stdout(), "{:<5} {}", r.level(), r.args());
        }
        fn flush(&self) {}
    }
    static STDOUT: Stdout = Stdout;
    let path = pin_dir.join(VX_ENC_PROG);
    let prog = SchedClassifier::from_pin(&path)
        .with_context(|| format!("opening {} (is an ebpf VTEP attached?)", path.display()))?;
    let id = prog.info()?.id();
    let mut logger = aya_log::EbpfLogger::init_from_id_with_logger(id, &STDOUT)
        .map_err(|e| anyhow!("attaching to the log of {VX_ENC_PROG}: {e}"))?;
    let start = std::time::Instant::now();
    loop {
        logger.flush();
        if secs > 0 && start.elapsed() >= Duration::from_secs(secs) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The VTEP's counters, summed over CPUs (field meanings: [`VxStats`]).
pub type VxCounters = VxStats;

/// Reads and sums the counters pinned under `pin_dir`.
pub fn read_stats(pin_dir: &Path) -> Result<VxCounters> {
    let path = pin_dir.join(VX_STATS_MAP);
    let data = MapData::from_pin(&path)
        .with_context(|| format!("opening {} (is the VTEP attached?)", path.display()))?;
    let map = Map::from_map_data(data)?;
    let arr: PerCpuArray<MapData, VxStats> = PerCpuArray::try_from(map)?;
    let per_cpu = arr.get(&0, 0).context("reading VX_STATS")?;
    Ok(sum_stats(per_cpu.iter()))
}

/// Sums per-CPU [`VxStats`].
pub fn sum_stats<'a>(it: impl Iterator<Item = &'a VxStats>) -> VxStats {
    let mut t = VxStats::default();
    for s in it {
        t.enc_direct += s.enc_direct;
        t.port_learned += s.port_learned;
        t.dec_bridge += s.dec_bridge;
        t.dec_fast += s.dec_fast;
        t.dec_bytes += s.dec_bytes;
        t.pass_not_ip += s.pass_not_ip;
        t.pass_trunc += s.pass_trunc;
        t.pass_bad_ip += s.pass_bad_ip;
        t.pass_ip_opts += s.pass_ip_opts;
        t.pass_not_local += s.pass_not_local;
        t.pass_not_udp += s.pass_not_udp;
        t.pass_frag += s.pass_frag;
        t.pass_port += s.pass_port;
        t.pass_flags += s.pass_flags;
        t.pass_vni += s.pass_vni;
        t.dec_no_dev += s.dec_no_dev;
        t.enc_unicast += s.enc_unicast;
        t.enc_flood += s.enc_flood;
        t.enc_copies += s.enc_copies;
        t.enc_bytes += s.enc_bytes;
        t.enc_no_neigh += s.enc_no_neigh;
        t.enc_drop_fib += s.enc_drop_fib;
        t.enc_drop_no_remote += s.enc_drop_no_remote;
        t.enc_drop_err += s.enc_drop_err;
        t.learn_new += s.learn_new;
        t.learn_refresh += s.learn_refresh;
        t.enc_fast += s.enc_fast;
        t.enc_fib_lookups += s.enc_fib_lookups;
    }
    t
}

/// Every counter of [`VxStats`] with its field name, in declaration order.
pub fn stats_fields(s: &VxStats) -> Vec<(&'static str, u64)> {
    vec![
        ("dec_bridge", s.dec_bridge),
        ("dec_fast", s.dec_fast),
        ("dec_bytes", s.dec_bytes),
        ("pass_not_ip", s.pass_not_ip),
        ("pass_trunc", s.pass_trunc),
        ("pass_bad_ip", s.pass_bad_ip),
        ("pass_ip_opts", s.pass_ip_opts),
        ("pass_not_local", s.pass_not_local),
        ("pass_not_udp", s.pass_not_udp),
        ("pass_frag", s.pass_frag),
        ("pass_port", s.pass_port),
        ("pass_flags", s.pass_flags),
        ("pass_vni", s.pass_vni),
        ("dec_no_dev", s.dec_no_dev),
        ("enc_unicast", s.enc_unicast),
        ("enc_fast", s.enc_fast),
        ("enc_flood", s.enc_flood),
        ("enc_copies", s.enc_copies),
        ("enc_bytes", s.enc_bytes),
        ("enc_no_neigh", s.enc_no_neigh),
        ("enc_drop_fib", s.enc_drop_fib),
        ("enc_drop_no_remote", s.enc_drop_no_remote),
        ("enc_drop_err", s.enc_drop_err),
        ("learn_new", s.learn_new),
        ("learn_refresh", s.learn_refresh),
        ("enc_fib_lookups", s.enc_fib_lookups),
        ("enc_direct", s.enc_direct),
        ("port_learned", s.port_learned),
    ]
}

/// One learned MAC.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FdbRow {
    pub mac: String,
    pub vtep: Ipv4Addr,
    /// Seconds since the MAC was last seen in a decapsulated frame.
    pub age_s: f64,
}

/// The learned MAC table pinned under `pin_dir`.
pub fn read_fdb(pin_dir: &Path) -> Result<Vec<FdbRow>> {
    let path = pin_dir.join(VX_FDB_MAP);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let map = Map::from_map_data(data)?;
    let fdb: HashMap<MapData, MacKey, FdbEntry> = HashMap::try_from(map)?;
    let now = monotonic_ns();
    let mut rows = Vec::new();
    for e in fdb.iter() {
        let (k, v) = e?;
        rows.push(FdbRow {
            mac: crate::topo::plan::mac_string(&k.mac),
            vtep: Ipv4Addr::from(v.vtep),
            age_s: now.saturating_sub(v.seen_ns) as f64 / 1e9,
        });
    }
    rows.sort_by(|a, b| a.mac.cmp(&b.mac));
    Ok(rows)
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub mod headroom;

#[cfg(test)]
mod tests;

/// Legacy ethtool ioctls (SIOCETHTOOL) for the two offload switches the VTEP needs, on the
/// calling thread's network namespace.
pub mod ethtool {
    use anyhow::{bail, Result};
    use std::ffi::CString;

    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_STXCSUM: u32 = 0x17;
    const ETHTOOL_SGRO: u32 = 0x2c;

    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }

    #[repr(C)]
    struct Ifreq {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }

    fn set(iface: &str, cmd: u32, on: bool) -> Result<()> {
        let c = CString::new(iface)?;
        let bytes = c.as_bytes_with_nul();
        if bytes.len() > libc::IFNAMSIZ {
            bail!("interface name {iface:?} too long");
        }
        let mut val = EthtoolValue {
            cmd,
            data: on as u32,
        };
        let mut req = Ifreq {
            name: [0; libc::IFNAMSIZ],
            data: &mut val,
            _pad: [0; 16],
        };
        for (d, s) in req.name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: plain socket; the ioctl reads `req` and `val`, both alive for the call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                bail!("socket: {}", std::io::Error::last_os_error());
            }
            let rc = libc::ioctl(fd, SIOCETHTOOL, &mut req);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if rc < 0 {
                bail!("ethtool ioctl {cmd:#x} on {iface}: {err}");
            }
        }
        Ok(())
    }

    /// `ethtool -K IFACE gro on|off`. On a veth, GRO on also gives it NAPI, which it needs to
    /// receive XDP-redirected frames.
    pub fn set_gro(iface: &str, on: bool) -> Result<()> {
        set(iface, ETHTOOL_SGRO, on)
    }

    /// `ethtool -K IFACE tx on|off` (TX checksum offload).
    pub fn set_tx_csum(iface: &str, on: bool) -> Result<()> {
        set(iface, ETHTOOL_STXCSUM, on)
    }
}
