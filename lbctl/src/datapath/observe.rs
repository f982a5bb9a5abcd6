//! Observation program on switch ports: counts STP BPDUs and VRRP advertisements per interface.
//!
//! The BPF side is the crate `lb-ebpf` (program `lb_obs`, maps `OBS_PORT` and `OBS_VRRP`);
//! `lbctl/build.rs` builds it with nightly and this module embeds the object, so the lbctl
//! binary carries it and needs no file at run time.
//!
//! # Program type
//!
//! `lb_obs` is a TC ingress classifier (`SchedClassifier`), not XDP: XDP on a veth costs GRO
//! (a do-nothing XDP program has been measured to cut veth TCP throughput severalfold), while
//! TC ingress runs before the bridge's `rx_handler`, so it sees the BPDUs a bridge port
//! receives and consumes. It never changes forwarding: it returns `TC_ACT_UNSPEC`, which for
//! TCX is `TCX_NEXT` ("as if I were not here"; `TC_ACT_OK`/`TC_ACT_PIPE` would cut the TCX
//! chain short for programs attached after it).
//!
//! # Pins and persistence
//!
//! One load per node: [`attach_observer`] loads the object once into the node's own maps and
//! pins, under `pin_dir`:
//!
//! * `pin_dir/lb_obs`: the program,
//! * `pin_dir/OBS_PORT`, `pin_dir/OBS_VRRP`: the maps,
//! * `pin_dir/STP_GATE`, `pin_dir/STP_LEASE`, `pin_dir/RSTP_PORT`: the RSTP gate, its lease and
//!   the status maps `lbctl stpd`
//!   writes ([`super::stp_gate`]); empty, so without stpd nothing changes,
//! * `pin_dir/links/<iface>`: one TCX link per interface (ingress, attached first),
//! * `pin_dir/links_egress/<iface>`: one TCX link per interface for `lb_gate`, the gate's
//!   egress half (TC egress; returns `TC_ACT_UNSPEC` unless the port's gate says discard).
//!
//! The attachment outlives the process (`lbctl up` exits right after) because the TCX links
//! are pinned: a TCX link lives as long as something holds it, and the bpffs pin does. TCX
//! links rather than netlink `clsact` filters because the pins then own everything:
//! [`remove_pins`] unlinks them and the kernel detaches the program, with no netlink cleanup
//! in the node's namespace and no risk of deleting someone else's tc filter; deleting an
//! interface (or the namespace) detaches its link by itself, and the dead link pin is removed
//! with the rest. TCX needs kernel 6.6; this lab's machines run 6.18.
//!
//! Counters: `OBS_PORT` and `OBS_VRRP` are per-CPU hash maps declared with `#[btf_map]`, so they
//! carry BTF and `bpftool map dump pinned pin_dir/OBS_PORT` prints the field names of
//! [`lb_common::PortStats`]; [`read_observer`] sums the CPUs.
use std::{
    collections::BTreeMap,
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{Map, MapData, PerCpuHashMap},
    programs::{links::FdLink, tc::TcAttachOptions, LinkOrder, SchedClassifier, TcAttachType},
    EbpfLoader,
};
use lb_common::{
    PortStats, VrrpKey, GATE_PROG, OBS_PORT_MAP, OBS_PROG, OBS_VRRP_MAP, RSTP_PORT_MAP,
    STP_GATE_MAP, STP_LEASE_MAP,
};
use serde::Serialize;

/// The BPF object built from `lb-ebpf` by `build.rs`.
pub(crate) fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf.o"))
}

/// Subdirectory of the pin directory holding one pinned TCX link per interface.
const LINKS_DIR: &str = "links";
/// Subdirectory of the pin directory holding the egress TCX links (`lb_gate`). A directory
/// of its own, not a suffix: bpffs refuses pin names with a dot.
const EGRESS_LINKS_DIR: &str = "links_egress";
/// The maps an observer pins: counters, then the RSTP gate and status.
const PINNED_MAPS: [&str; 5] = [
    OBS_PORT_MAP,
    OBS_VRRP_MAP,
    STP_GATE_MAP,
    STP_LEASE_MAP,
    RSTP_PORT_MAP,
];

/// Counters of one observer (one node), summed over CPUs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObserverCounters {
    /// One entry per interface that has seen a BPDU or a VRRP packet, sorted by ifindex.
    pub ports: Vec<PortCounters>,
    /// VRRP advertisements per (interface, VRID), sorted by ifindex then VRID.
    pub vrrp: Vec<VrrpCounter>,
}

/// Per-interface counters (ifindex in the node's network namespace), summed over CPUs.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PortCounters {
    pub ifindex: u32,
    /// The observer's counters (see [`PortStats`] for each), serialised beside `ifindex`.
    #[serde(flatten)]
    pub stats: PortStats,
}

/// VRRP advertisements seen on one interface for one virtual router.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct VrrpCounter {
    pub ifindex: u32,
    pub vrid: u8,
    pub adverts: u64,
}

/// Loads the observer once, pins program and maps under `pin_dir` and attaches it to the TC
/// ingress of every interface in `ifaces` through pinned TCX links (see the module docs).
///
/// Must be called on an OS thread that has entered the node's network namespace (interface
/// names resolve there, and the links are created there); it spawns no threads. Fails with a
/// clear error when `pin_dir` already holds an observer program. On failure it removes what it
/// pinned, so the call can be retried.
pub fn attach_observer(pin_dir: &Path, ifaces: &[String]) -> Result<()> {
    let prog_pin = prog_pin_path(pin_dir);
    if prog_pin.exists() {
        bail!(
            "{} already holds an observer program ({}); remove the pins first",
            pin_dir.display(),
            prog_pin.display()
        );
    }
    for name in PINNED_MAPS.iter().chain(&[GATE_PROG]) {
        let path = pin_dir.join(name);
        if path.exists() {
            bail!(
                "{} holds pins of an earlier, incomplete observer ({}); remove the pins first",
                pin_dir.display(),
                path.display()
            );
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for iface in ifaces {
        if iface.is_empty() || iface.len() > 15 || iface.contains('/') || iface.starts_with('.') {
            bail!("invalid interface name {iface:?}");
        }
        if !names.contains(&iface.as_str()) {
            names.push(iface);
        }
    }
    check_on_bpffs(pin_dir)?;

    let mut created = Created::default();
    let res = attach_inner(pin_dir, &names, &mut created);
    if res.is_err() {
        created.undo();
    }
    res
}

/// What one [`attach_observer`] call created, so a failure can take it back.
#[derive(Default)]
struct Created {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Created {
    fn undo(self) {
        for f in self.files.iter().rev() {
            let _ = fs::remove_file(f);
        }
        for d in self.dirs.iter().rev() {
            let _ = fs::remove_dir(d); // only if empty
        }
    }
}

fn attach_inner(pin_dir: &Path, ifaces: &[&str], created: &mut Created) -> Result<()> {
    let links_dir = pin_dir.join(LINKS_DIR);
    let egress_dir = pin_dir.join(EGRESS_LINKS_DIR);
    for dir in [&links_dir, &egress_dir] {
        create_dirs(dir, created)?;
    }

    let mut ebpf = EbpfLoader::new()
        .load(object())
        .context("loading the observer BPF object (needs root and BTF-enabled kernel)")?;

    for name in PINNED_MAPS {
        let path = pin_dir.join(name);
        ebpf.map(name)
            .ok_or_else(|| anyhow!("BPF object has no map {name}"))?
            .pin(&path)
            .with_context(|| format!("pinning map {name} at {}", path.display()))?;
        created.files.push(path);
    }

    // The egress gate first: the observer's program pin marks a complete installation, so
    // it goes last.
    let gate = load_classifier(&mut ebpf, GATE_PROG)?;
    for iface in ifaces {
        let path = egress_dir.join(iface);
        attach_pinned(gate, iface, TcAttachType::Egress, &path)?;
        created.files.push(path);
    }
    let gate_pin = pin_dir.join(GATE_PROG);
    gate.pin(&gate_pin)
        .with_context(|| format!("pinning program {GATE_PROG} at {}", gate_pin.display()))?;
    created.files.push(gate_pin);

    let prog = load_classifier(&mut ebpf, OBS_PROG)?;
    for iface in ifaces {
        let path = links_dir.join(iface);
        attach_pinned(prog, iface, TcAttachType::Ingress, &path)?;
        created.files.push(path);
    }
    let prog_pin = prog_pin_path(pin_dir);
    prog.pin(&prog_pin)
        .with_context(|| format!("pinning program {OBS_PROG} at {}", prog_pin.display()))?;
    created.files.push(prog_pin);
    Ok(())
}

/// Creates `dir` and its missing ancestors, recording each (deepest last) in `created`.
fn create_dirs(dir: &Path, created: &mut Created) -> Result<()> {
    let mut missing = Vec::new();
    for d in dir.ancestors() {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating pin directory {}", dir.display()))?;
    created.dirs.extend(missing.into_iter().rev());
    Ok(())
}

/// The TC program `name` of `ebpf`, loaded into the kernel (the verifier runs here).
fn load_classifier<'a>(ebpf: &'a mut aya::Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("BPF object has no program {name}"))?
        .try_into()
        .with_context(|| format!("program {name} is not a TC classifier"))?;
    prog.load()
        .with_context(|| format!("loading program {name} into the kernel (verifier)"))?;
    Ok(prog)
}

/// Attaches `prog` first in the TCX chain of `iface` on `dir` and pins the link at `path`.
fn attach_pinned(
    prog: &mut SchedClassifier,
    iface: &str,
    dir: TcAttachType,
    path: &Path,
) -> Result<()> {
    let link_id = prog
        .attach_with_options(iface, dir, TcAttachOptions::TcxOrder(LinkOrder::first()))
        .with_context(|| format!("attaching a TC program to {dir:?} (TCX) of {iface}"))?;
    let link = prog
        .take_link(link_id)
        .with_context(|| format!("taking the TCX link of {iface}"))?;
    let link: FdLink = link
        .try_into()
        .with_context(|| format!("TCX link of {iface} is not an fd link"))?;
    // On error the FdLink is dropped here, which detaches it.
    link.pin(path)
        .with_context(|| format!("pinning the TCX link of {iface} at {}", path.display()))?;
    Ok(())
}

fn prog_pin_path(pin_dir: &Path) -> PathBuf {
    pin_dir.join(OBS_PROG)
}

/// Reads and sums (over CPUs) the counters of the observer pinned under `pin_dir`. Works from
/// any process and thread: pinned maps need no network namespace.
pub fn read_observer(pin_dir: &Path) -> Result<ObserverCounters> {
    let port_path = pin_dir.join(OBS_PORT_MAP);
    let ports: PerCpuHashMap<MapData, u32, PortStats> = open_pinned(&port_path)?;
    let mut out = ObserverCounters::default();
    for entry in ports.iter() {
        let (ifindex, per_cpu) =
            entry.with_context(|| format!("iterating {}", port_path.display()))?;
        let mut c = PortCounters {
            ifindex,
            ..Default::default()
        };
        for s in per_cpu.iter() {
            c.stats.add(s);
        }
        out.ports.push(c);
    }
    out.ports.sort_by_key(|p| p.ifindex);

    let vrrp_path = pin_dir.join(OBS_VRRP_MAP);
    let vrrp: PerCpuHashMap<MapData, VrrpKey, u64> = open_pinned(&vrrp_path)?;
    let mut sums: BTreeMap<(u32, u8), u64> = BTreeMap::new();
    for entry in vrrp.iter() {
        let (key, per_cpu) = entry.with_context(|| format!("iterating {}", vrrp_path.display()))?;
        *sums.entry((key.ifindex, key.vrid)).or_default() += per_cpu.iter().sum::<u64>();
    }
    out.vrrp = sums
        .into_iter()
        .map(|((ifindex, vrid), adverts)| VrrpCounter {
            ifindex,
            vrid,
            adverts,
        })
        .collect();
    Ok(out)
}

/// The topology-change BPDUs (TCN, and configuration BPDUs with the TC flag) counted by
/// every observer pinned under a lab's pin directory (`/sys/fs/bpf/lbctl/<lab>`), one total per
/// node. The maps stay open, so a read once a second is one walk of a few map entries per node;
/// bpffs is shared by all namespaces, so an agent in a balancer's namespace reads the
/// switches' counters directly.
pub struct TcCounters {
    lab_dir: PathBuf,
    maps: Vec<(String, PerCpuHashMap<MapData, u32, PortStats>)>,
}

impl TcCounters {
    pub fn new(lab_dir: &Path) -> TcCounters {
        TcCounters {
            lab_dir: lab_dir.to_path_buf(),
            maps: Vec::new(),
        }
    }

    pub fn lab_dir(&self) -> &Path {
        &self.lab_dir
    }

    /// Observers open.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Opens the observers pinned since the last call (node directories holding
    /// `OBS_PORT`); how many are open. A missing lab directory (not a lab) opens none.
    pub fn discover(&mut self) -> usize {
        let mut found: Vec<(String, PathBuf)> = fs::read_dir(&self.lab_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(node, dir)| {
                dir.join(OBS_PORT_MAP).exists() && !self.maps.iter().any(|(n, _)| n == node)
            })
            .collect();
        found.sort();
        for (node, dir) in found {
            if let Ok(m) = open_pinned(&dir.join(OBS_PORT_MAP)) {
                self.maps.push((node, m));
            }
        }
        self.maps.len()
    }

    /// Each open observer's TCN + TC BPDUs, summed over its ports and CPUs.
    pub fn read(&self) -> Result<Vec<(String, u64)>> {
        self.maps
            .iter()
            .map(|(node, m)| {
                let mut n = 0u64;
                for entry in m.iter() {
                    let (_, per_cpu) =
                        entry.with_context(|| format!("reading {node}'s {OBS_PORT_MAP}"))?;
                    n += per_cpu.iter().map(|s| s.bpdu_tcn + s.bpdu_tc).sum::<u64>();
                }
                Ok((node.clone(), n))
            })
            .collect()
    }
}

fn open_pinned<K: aya::Pod, V: aya::Pod>(path: &Path) -> Result<PerCpuHashMap<MapData, K, V>> {
    let data = MapData::from_pin(path).with_context(|| {
        format!(
            "opening pinned map {} (is the observer attached?)",
            path.display()
        )
    })?;
    let map = Map::from_map_data(data).with_context(|| format!("map {}", path.display()))?;
    PerCpuHashMap::try_from(map)
        .with_context(|| format!("{} is not the expected per-CPU hash map", path.display()))
}

/// Removes everything under `pin_dir` and `pin_dir` itself (program, maps, links: removing a
/// link pin detaches the program from that interface). Succeeds when `pin_dir` is absent.
/// Refuses to touch anything that is not a directory on bpffs, or a bpffs mount point itself.
pub fn remove_pins(pin_dir: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(pin_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {}", pin_dir.display())),
    };
    if !meta.is_dir() {
        bail!("{} is not a directory", pin_dir.display());
    }
    check_on_bpffs(pin_dir)?;
    let parent = pin_dir
        .parent()
        .ok_or_else(|| anyhow!("refusing to remove {}", pin_dir.display()))?;
    let parent_dev = fs::metadata(parent)
        .with_context(|| format!("stat {}", parent.display()))?
        .dev();
    if parent_dev != meta.dev() {
        bail!(
            "refusing to remove {}: it is a bpffs mount point, not a pin directory",
            pin_dir.display()
        );
    }
    fs::remove_dir_all(pin_dir)
        .with_context(|| format!("removing pins under {}", pin_dir.display()))
}

/// Checks that `path` (or, when it does not exist yet, its nearest existing ancestor) is on a
/// BPF filesystem.
pub(crate) fn check_on_bpffs(path: &Path) -> Result<()> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("no existing ancestor of {}", path.display()))?;
    let st = nix::sys::statfs::statfs(existing)
        .with_context(|| format!("statfs {}", existing.display()))?;
    if st.filesystem_type() != nix::sys::statfs::BPF_FS_MAGIC {
        bail!(
            "{} is not on a BPF filesystem (mount it with `mount -t bpf bpf /sys/fs/bpf`)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Run as root (`cargo test -p lbctl`): they create network namespaces, veths, bridges and
    //! bpffs pins, all uniquely named and removed by guards even when a test fails.
    use std::{
        ffi::CString,
        net::UdpSocket,
        os::fd::{FromRawFd as _, OwnedFd},
        process::Command,
        sync::atomic::{AtomicU32, Ordering},
        time::{Duration, Instant},
    };

    use nix::{libc, sched::CloneFlags};

    use super::*;

    static SEQ: AtomicU32 = AtomicU32::new(0);

    /// A network namespace plus the observer pin directory of a test; removes both on drop.
    struct Lab {
        ns: String,
        pin_dir: PathBuf,
    }

    impl Lab {
        fn new() -> Lab {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let ns = format!("lbt-obs-{}-{n}", std::process::id());
            let lab = Lab {
                pin_dir: Path::new("/sys/fs/bpf").join(&ns),
                ns,
            };
            // Leftovers of a crashed earlier run with the same pid would make `ip` fail.
            let _ = remove_pins(&lab.pin_dir);
            let _ = Command::new("ip").args(["netns", "del", &lab.ns]).output();
            lab.ip(&["netns", "add", &lab.ns]);
            lab.ipn(&["link", "set", "lo", "up"]);
            lab
        }

        fn ip(&self, args: &[&str]) {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// `ip -n <ns> ...`
        fn ipn(&self, args: &[&str]) {
            let mut all = vec!["-n", self.ns.as_str()];
            all.extend_from_slice(args);
            self.ip(&all);
        }

        /// Runs `f` on a fresh OS thread that entered the lab's network namespace.
        fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
            let path = format!("/run/netns/{}", self.ns);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let fd = fs::File::open(&path).expect("open netns");
                    nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join()
                .expect("netns thread panicked")
            })
        }

        fn ifindex(&self, name: &str) -> u32 {
            let name = name.to_string();
            self.in_netns(move || ifindex(&name))
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            if let Err(e) = remove_pins(&self.pin_dir) {
                eprintln!("removing {}: {e:#}", self.pin_dir.display());
            }
            let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        }
    }

    fn ifindex(name: &str) -> u32 {
        let c = CString::new(name).unwrap();
        // SAFETY: valid NUL-terminated string.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert_ne!(i, 0, "no interface {name}");
        i
    }

    /// Sends raw Ethernet frames out of `ifname` (current thread's namespace).
    fn send_frames(ifname: &str, frames: &[Vec<u8>]) {
        let index = ifindex(ifname);
        // SAFETY: plain socket calls with valid buffers and lengths.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
            let _fd = OwnedFd::from_raw_fd(fd);
            for frame in frames {
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = index as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&frame[..6]);
                let n = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                );
                assert_eq!(
                    n,
                    frame.len() as isize,
                    "sendto: {}",
                    io::Error::last_os_error()
                );
            }
        }
    }

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const OBS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const STP_DST: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0];

    fn pad60(mut f: Vec<u8>) -> Vec<u8> {
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }

    /// 802.3 frame to the STP group address: `len` is the length field, `payload` the
    /// LLC + BPDU bytes actually present.
    fn stp_frame(len: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&STP_DST);
        f.extend_from_slice(&SRC_MAC);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// LLC + config BPDU (35 bytes) with the given flags.
    fn config_bpdu(flags: u8) -> Vec<u8> {
        let mut p = vec![0x42, 0x42, 0x03, 0, 0, 0x00, 0x00, flags];
        p.extend_from_slice(&[0x80, 0, 0x02, 0, 0, 0, 0, 0x01]); // root id
        p.extend_from_slice(&[0, 0, 0, 0]); // root path cost
        p.extend_from_slice(&[0x80, 0, 0x02, 0, 0, 0, 0, 0x01]); // bridge id
        p.extend_from_slice(&[0x80, 0x01]); // port id
        p.extend_from_slice(&[0, 0, 0x14, 0, 0x02, 0, 0x0f, 0]); // ages, hello, fwd delay
        assert_eq!(p.len(), 3 + 35);
        p
    }

    fn rstp_bpdu() -> Vec<u8> {
        let mut p = config_bpdu(0x3c);
        p[5] = 0x02; // version
        p[6] = 0x02; // type RST
        p.push(0); // version 1 length
        p
    }

    fn checksum(data: &[u8]) -> u16 {
        lb_common::csum::inet_checksum(&[data])
    }

    /// Ethernet + IPv4 frame. `options` are IP options (multiple of 4 bytes); `tot_len`
    /// overrides the IP total length.
    fn ipv4_frame(
        dst_mac: [u8; 6],
        proto: u8,
        src: [u8; 4],
        dst: [u8; 4],
        options: &[u8],
        payload: &[u8],
        tot_len: Option<u16>,
    ) -> Vec<u8> {
        let hlen = 20 + options.len();
        let tot = tot_len.unwrap_or((hlen + payload.len()) as u16);
        let mut ip = vec![0x40 | (hlen / 4) as u8, 0xc0];
        ip.extend_from_slice(&tot.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 255, proto, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(options);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&SRC_MAC);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(payload);
        f
    }

    /// VRRPv2 advertisement with one IPv4 address, sent to 224.0.0.18.
    fn vrrp_advert(vrid: u8, options: &[u8]) -> Vec<u8> {
        let mut v = vec![0x21, vrid, 100, 1, 0, 1, 0, 0, 10, 99, 0, 100];
        v.extend_from_slice(&[0; 8]); // v2 authentication data
        let c = checksum(&v);
        v[6..8].copy_from_slice(&c.to_be_bytes());
        let mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
        ipv4_frame(mac, 112, [10, 99, 0, 2], [224, 0, 0, 18], options, &v, None)
    }

    /// Polls the observer until `done` holds (or `timeout`), returning the last reading.
    fn wait_for(
        pin_dir: &Path,
        timeout: Duration,
        done: impl Fn(&ObserverCounters) -> bool,
    ) -> ObserverCounters {
        let start = Instant::now();
        loop {
            let c = read_observer(pin_dir).expect("read_observer");
            if done(&c) || start.elapsed() > timeout {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn counts_injected_bpdus_and_vrrp() {
        let lab = Lab::new();
        lab.ipn(&[
            "link",
            "add",
            "o0",
            "address",
            "02:00:00:00:00:0a",
            "type",
            "veth",
            "peer",
            "name",
            "i0",
            "address",
            "02:00:00:00:00:0b",
        ]);
        lab.ipn(&["addr", "add", "10.99.0.1/24", "dev", "o0"]);
        lab.ipn(&["link", "set", "o0", "up"]);
        lab.ipn(&["link", "set", "i0", "up"]);

        let ifaces = vec!["o0".to_string(), "i0".to_string()];
        let pin_dir = lab.pin_dir.clone();
        lab.in_netns(|| attach_observer(&pin_dir, &ifaces))
            .expect("attach_observer");
        assert!(lab.pin_dir.join("links/o0").exists());
        assert!(lab.pin_dir.join("links/i0").exists());

        // A second load into the same pin directory is refused with a clear error.
        let err = lab
            .in_netns(|| attach_observer(&pin_dir, &ifaces))
            .expect_err("second attach must fail");
        assert!(format!("{err:#}").contains("already holds"), "{err:#}");

        let o0 = lab.ifindex("o0");
        let mut frames = vec![
            // config BPDU, config BPDU with TC, TCN, RST BPDU (all padded to 60 bytes)
            pad60(stp_frame(38, &config_bpdu(0x00))),
            pad60(stp_frame(38, &config_bpdu(0x01))),
            pad60(stp_frame(7, &[0x42, 0x42, 0x03, 0, 0, 0, 0x80])),
            pad60(stp_frame(39, &rstp_bpdu())),
            // truncated config BPDU: frame cut after 20 bytes of LLC + BPDU, no padding
            stp_frame(20, &config_bpdu(0)[..20]),
            // truncated by the length field, padded like a real short frame
            pad60(stp_frame(20, &config_bpdu(0)[..20])),
        ];
        // VRRP: vrid 12 three times, vrid 13 twice (once with a 4-byte IP option: IHL 6)
        for _ in 0..3 {
            frames.push(vrrp_advert(12, &[]));
        }
        frames.push(vrrp_advert(13, &[]));
        frames.push(vrrp_advert(13, &[0x01, 0x01, 0x01, 0x00]));
        // truncated VRRP: IP total length claims 40 bytes, only 4 VRRP bytes present
        let mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
        frames.push(ipv4_frame(
            mac,
            112,
            [10, 99, 0, 2],
            [224, 0, 0, 18],
            &[],
            &[0x21, 12, 100, 1],
            Some(40),
        ));
        // truncated VRRP: IHL says 60 bytes of IP header, frame ends after 24
        let mut bad_ihl = vrrp_advert(12, &[]);
        bad_ihl[14] = 0x4f;
        bad_ihl.truncate(14 + 24);
        frames.push(bad_ihl);
        // unrelated: ARP request, LLDP-like frame to another link-local address, UDP to o0
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&SRC_MAC);
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&SRC_MAC);
        arp.extend_from_slice(&[10, 99, 0, 2, 0, 0, 0, 0, 0, 0, 10, 99, 0, 1]);
        frames.push(pad60(arp));
        let mut lldp = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e];
        lldp.extend_from_slice(&SRC_MAC);
        lldp.extend_from_slice(&[0x88, 0xcc]);
        frames.push(pad60(lldp));
        let udp_payload = b"lb_obs passes everything";
        let mut udp = vec![0xb0, 0x00, 0xb2, 0x6e]; // 45056 -> 45678
        udp.extend_from_slice(&((8 + udp_payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]); // no checksum
        udp.extend_from_slice(udp_payload);
        frames.push(ipv4_frame(
            OBS_MAC,
            17,
            [10, 99, 0, 2],
            [10, 99, 0, 1],
            &[],
            &udp,
            None,
        ));

        // Send from the peer i0 (so the frames arrive on o0's ingress) and check that the UDP
        // datagram still reaches a socket: the observer must not change forwarding.
        let received = lab.in_netns(|| {
            let sock = UdpSocket::bind("10.99.0.1:45678").expect("bind udp");
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            send_frames("i0", &frames);
            let mut buf = [0u8; 64];
            let (n, _) = sock
                .recv_from(&mut buf)
                .expect("UDP datagram passed through");
            buf[..n].to_vec()
        });
        assert_eq!(received, udp_payload);

        let expected_port = PortCounters {
            ifindex: o0,
            stats: PortStats {
                bpdu_config: 2,
                bpdu_tcn: 1,
                bpdu_tc: 1,
                bpdu_rstp: 1,
                bpdu_bad: 2,
                vrrp: 5,
                vrrp_bad: 2,
                ..Default::default() // no gate entry: nothing dropped
            },
        };
        wait_for(&lab.pin_dir, Duration::from_secs(3), |c| {
            c.ports.contains(&expected_port)
        });
        // Settle, then require exact counts (catches double counting).
        std::thread::sleep(Duration::from_millis(200));
        let c = read_observer(&lab.pin_dir).expect("read_observer");
        assert_eq!(c.ports, vec![expected_port], "{c:#?}");
        assert_eq!(
            c.vrrp,
            vec![
                VrrpCounter {
                    ifindex: o0,
                    vrid: 12,
                    adverts: 3
                },
                VrrpCounter {
                    ifindex: o0,
                    vrid: 13,
                    adverts: 2
                },
            ]
        );

        // The maps carry BTF: bpftool prints field names.
        let out = Command::new("bpftool")
            .args(["map", "dump", "pinned"])
            .arg(lab.pin_dir.join(OBS_PORT_MAP))
            .output()
            .expect("run bpftool");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("bpftool map dump pinned .../{OBS_PORT_MAP}:\n{text}");
        assert!(
            out.status.success(),
            "bpftool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("bpdu_config"),
            "bpftool output lacks field names:\n{text}"
        );
        let out = Command::new("bpftool")
            .args(["map", "dump", "pinned"])
            .arg(lab.pin_dir.join(OBS_VRRP_MAP))
            .output()
            .expect("run bpftool");
        assert!(String::from_utf8_lossy(&out.stdout).contains("vrid"));

        // Attached through TCX on both interfaces, then detached by remove_pins (the TCX links
        // go with their pins); remove_pins is idempotent.
        // (bpftool 7.1 predates TCX, so ask the kernel through aya.)
        let tcx = |dev: &str| -> Vec<String> {
            let dev = dev.to_string();
            lab.in_netns(move || {
                let (_, progs) =
                    SchedClassifier::query_tcx(&dev, TcAttachType::Ingress).expect("query_tcx");
                progs
                    .iter()
                    .map(|p| p.name_as_str().unwrap_or("?").to_string())
                    .collect()
            })
        };
        for dev in ["o0", "i0"] {
            let shown = tcx(dev);
            assert_eq!(shown, vec![OBS_PROG.to_string()], "{dev}");
        }
        remove_pins(&lab.pin_dir).expect("remove_pins");
        assert!(!lab.pin_dir.exists());
        remove_pins(&lab.pin_dir).expect("remove_pins on an absent directory");
        // bpffs drops its reference to an unpinned link when the inode is freed, after an
        // RCU grace period (bpf_free_inode), so the detach can trail the unlink by a
        // moment: poll for up to 2 s.
        for dev in ["o0", "i0"] {
            let t = std::time::Instant::now();
            let mut shown = tcx(dev);
            while !shown.is_empty() && t.elapsed() < std::time::Duration::from_secs(2) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                shown = tcx(dev);
            }
            assert!(
                shown.is_empty(),
                "{dev} still attached 2 s after unpinning: {shown:?}"
            );
        }
    }

    #[test]
    fn failed_attach_leaves_nothing_behind() {
        // The interface's name must not exist in the host namespace (the last part attaches
        // from there and must fail): the first free `o<n>`, so that part always runs.
        let dev = (0..100)
            .map(|n| format!("o{n}"))
            .find(|d| !ifindex_exists(d))
            .expect("a free o<n> interface name in the host namespace");
        let lab = Lab::new();
        lab.ipn(&["link", "add", &dev, "type", "veth", "peer", "name", "i0"]);
        let pin_dir = lab.pin_dir.clone();
        let err = lab
            .in_netns(|| attach_observer(&pin_dir, &[dev.clone(), "nope0".to_string()]))
            .expect_err("attaching to a missing interface must fail");
        assert!(format!("{err:#}").contains("nope0"), "{err:#}");
        assert!(
            !lab.pin_dir.exists(),
            "pins left behind after a failed attach"
        );
        let attached = lab.in_netns(|| {
            SchedClassifier::query_tcx(&dev, TcAttachType::Ingress)
                .expect("query_tcx")
                .1
                .len()
        });
        assert_eq!(attached, 0, "{dev} stayed attached after a failed attach");
        // Interface names resolve in the caller's namespace only: `dev` does not exist here,
        // so the same call from this (host namespace) thread fails, and a retry inside works.
        let ifaces = vec![dev.clone()];
        assert!(attach_observer(&lab.pin_dir, &ifaces).is_err());
        lab.in_netns(|| attach_observer(&pin_dir, &ifaces))
            .expect("retry after a failed attach");
        assert!(lab.pin_dir.join(OBS_PROG).exists());
    }

    fn ifindex_exists(name: &str) -> bool {
        let c = CString::new(name).unwrap();
        // SAFETY: valid NUL-terminated string.
        unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
    }

    #[test]
    fn counts_bpdus_of_a_real_stp_bridge() {
        let lab = Lab::new();
        // Two STP bridges joined by two veth pairs (a loop STP must break); observe all four
        // bridge ports, where the bridges' rx_handler consumes the BPDUs after TC ingress.
        for br in ["br0", "br1"] {
            lab.ipn(&[
                "link",
                "add",
                br,
                "type",
                "bridge",
                "stp_state",
                "1",
                "hello_time",
                "100",
                "forward_delay",
                "400",
                "max_age",
                "600",
            ]);
        }
        for (a, b) in [("a0", "b0"), ("a1", "b1")] {
            lab.ipn(&["link", "add", a, "type", "veth", "peer", "name", b]);
            lab.ipn(&["link", "set", a, "master", "br0"]);
            lab.ipn(&["link", "set", b, "master", "br1"]);
        }
        let ports = ["a0", "a1", "b0", "b1"];
        let ifaces: Vec<String> = ports.iter().map(|s| s.to_string()).collect();
        let pin_dir = lab.pin_dir.clone();
        lab.in_netns(|| attach_observer(&pin_dir, &ifaces))
            .expect("attach_observer");
        for dev in ports.iter().chain(&["br0", "br1"]) {
            lab.ipn(&["link", "set", dev, "up"]);
        }

        let total = |c: &ObserverCounters| c.ports.iter().map(|p| p.stats.bpdu_config).sum::<u64>();
        let first = wait_for(&lab.pin_dir, Duration::from_secs(4), |c| total(c) >= 1);
        assert!(total(&first) >= 1, "no BPDU within 4 s: {first:#?}");
        // With hello 1 s the counter keeps growing by itself.
        let later = wait_for(&lab.pin_dir, Duration::from_secs(3), |c| {
            total(c) >= total(&first) + 2
        });
        assert!(
            total(&later) >= total(&first) + 2,
            "BPDU counter did not grow: {first:#?} then {later:#?}"
        );
        let indexes: Vec<u32> = ports.iter().map(|p| lab.ifindex(p)).collect();
        for p in &later.ports {
            assert!(
                indexes.contains(&p.ifindex),
                "unexpected ifindex {}",
                p.ifindex
            );
            assert_eq!(p.stats.bpdu_bad, 0, "{p:?}");
            assert_eq!(p.stats.bpdu_rstp, 0, "kernel STP sends 802.1D BPDUs: {p:?}");
        }
    }
}
