//! Tests of the RSTP gate: `lb_obs` and `lb_gate` run on crafted frames through
//! `BPF_PROG_TEST_RUN` (aya's `test_run`), and a namespace test where a gated veth stops and
//! resumes pings. Root needed (the skip rule applies); everything runs in namespaces the tests
//! create and remove.
use std::{
    fs,
    os::fd::AsFd as _,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use aya::{
    maps::{HashMap as AyaHashMap, MapData, PerCpuHashMap},
    programs::{tc::TcAttachType, SchedClassifier, TestRun, TestRunOptions},
    Ebpf, EbpfLoader,
};
use lb_common::{PortStats, GATE_PROG, OBS_PORT_MAP, OBS_PROG};
use nix::sched::CloneFlags;

use super::*;
use crate::datapath::observe::{attach_observer, object, read_observer, remove_pins};
use crate::rstp::{
    bpdu::encode_frame,
    types::{Bpdu, ConfigBody},
};

const TC_ACT_SHOT: u32 = 2;
/// `TC_ACT_UNSPEC` (-1) as test_run reports it.
const TC_ACT_UNSPEC: u32 = u32::MAX;
/// `BPF_PROG_TEST_RUN` runs a TC program with the namespace's loopback as the device.
const LO: u32 = 1;
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn config_bpdu() -> Vec<u8> {
    encode_frame(MAC, &Bpdu::Config(ConfigBody::default()))
}

fn rst_bpdu() -> Vec<u8> {
    encode_frame(MAC, &Bpdu::Rst(ConfigBody::default()))
}

/// An ARP request (broadcast): a data frame as far as the gate is concerned.
fn data_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[10, 99, 0, 2, 0, 0, 0, 0, 0, 0, 10, 99, 0, 1]);
    f.resize(60, 0);
    f
}

fn run(ebpf: &Ebpf, prog: &str, frame: &[u8]) -> u32 {
    let p: &SchedClassifier = ebpf.program(prog).unwrap().try_into().unwrap();
    let mut out = vec![0u8; frame.len() + 64];
    p.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })
    .unwrap_or_else(|e| panic!("test_run {prog}: {e}"))
    .return_value
}

fn set(ebpf: &mut Ebpf, rstp: u8, discard: u8) {
    let mut m: AyaHashMap<&mut MapData, u32, StpGate> =
        AyaHashMap::try_from(ebpf.map_mut(STP_GATE_MAP).unwrap()).unwrap();
    m.insert(
        LO,
        StpGate {
            rstp,
            discard,
            _pad: [0; 2],
        },
        0,
    )
    .unwrap();
}

fn lease(ebpf: &mut Ebpf, until: std::time::Duration) {
    let mut m: AyaHashMap<&mut MapData, u32, u64> =
        AyaHashMap::try_from(ebpf.map_mut(STP_LEASE_MAP).unwrap()).unwrap();
    m.insert(LO, lease_ns(until), 0).unwrap();
}

fn counters(ebpf: &Ebpf) -> PortStats {
    let m: PerCpuHashMap<&MapData, u32, PortStats> =
        PerCpuHashMap::try_from(ebpf.map(OBS_PORT_MAP).unwrap()).unwrap();
    let Ok(per_cpu) = m.get(&LO, 0) else {
        return PortStats::default();
    };
    per_cpu.iter().fold(PortStats::default(), |mut a, s| {
        a.add(s);
        a
    })
}

/// Loads both programs (the verifier must accept them) on a thread in a fresh network
/// namespace of its own, and runs `f` there.
fn with_programs(f: impl FnOnce(&mut Ebpf) + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            let mut ebpf = EbpfLoader::new().load(object()).expect("load object");
            for name in [OBS_PROG, GATE_PROG] {
                let p: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into().unwrap();
                p.load()
                    .unwrap_or_else(|e| panic!("verifier refused {name}: {e:?}"));
            }
            f(&mut ebpf);
        })
        .join()
        .expect("test thread panicked")
    })
}

#[test]
fn without_a_gate_nothing_is_dropped() {
    if !crate::test_prereq::need_root() {
        return;
    }
    with_programs(|ebpf| {
        // An expired lease without a gate entry: no gate, no expiry.
        lease(ebpf, std::time::Duration::ZERO);
        assert_eq!(run(ebpf, OBS_PROG, &config_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, OBS_PROG, &rst_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &config_bpdu()), TC_ACT_UNSPEC);
        let c = counters(ebpf);
        assert_eq!((c.bpdu_config, c.bpdu_rstp), (1, 1), "{c:?}");
        assert_eq!((c.bpdu_dropped, c.gate_drop_in, c.gate_drop_out), (0, 0, 0));
    });
}

#[test]
fn rstp_gate_counts_then_drops_bpdus() {
    if !crate::test_prereq::need_root() {
        return;
    }
    with_programs(|ebpf| {
        set(ebpf, 1, 0);
        assert_eq!(run(ebpf, OBS_PROG, &config_bpdu()), TC_ACT_SHOT);
        assert_eq!(run(ebpf, OBS_PROG, &rst_bpdu()), TC_ACT_SHOT);
        // Forwarding port: data passes both ways, stpd's BPDUs leave.
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &rst_bpdu()), TC_ACT_UNSPEC);
        let c = counters(ebpf);
        assert_eq!((c.bpdu_config, c.bpdu_rstp), (1, 1), "counted first: {c:?}");
        assert_eq!(c.bpdu_dropped, 2, "{c:?}");
        assert_eq!((c.gate_drop_in, c.gate_drop_out), (0, 0), "{c:?}");
        // Kernel mode with a gate entry (rstp = 0): BPDUs go to the kernel's bridge.
        set(ebpf, 0, 0);
        assert_eq!(run(ebpf, OBS_PROG, &config_bpdu()), TC_ACT_UNSPEC);
    });
}

#[test]
fn discarding_port_drops_data_both_ways_but_not_bpdus_out() {
    if !crate::test_prereq::need_root() {
        return;
    }
    with_programs(|ebpf| {
        set(ebpf, 1, 1);
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_SHOT);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_SHOT);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_SHOT);
        assert_eq!(run(ebpf, GATE_PROG, &config_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &rst_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, OBS_PROG, &rst_bpdu()), TC_ACT_SHOT);
        let c = counters(ebpf);
        assert_eq!((c.gate_drop_in, c.gate_drop_out), (1, 2), "{c:?}");
        assert_eq!((c.bpdu_rstp, c.bpdu_dropped), (1, 1), "{c:?}");
        // Back to forwarding.
        set(ebpf, 1, 0);
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_UNSPEC);
    });
}

#[test]
fn a_lease_in_the_future_changes_nothing() {
    if !crate::test_prereq::need_root() {
        return;
    }
    with_programs(|ebpf| {
        set(ebpf, 1, 0);
        lease(ebpf, monotonic_now() + std::time::Duration::from_secs(3600));
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &rst_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, OBS_PROG, &rst_bpdu()), TC_ACT_SHOT);
        let c = counters(ebpf);
        assert_eq!((c.lease_drop, c.gate_drop_in, c.gate_drop_out), (0, 0, 0));
        assert_eq!((c.bpdu_rstp, c.bpdu_dropped), (1, 1), "{c:?}");
    });
}

#[test]
fn an_expired_lease_drops_data_both_ways_but_bpdus_still_leave() {
    if !crate::test_prereq::need_root() {
        return;
    }
    with_programs(|ebpf| {
        set(ebpf, 1, 0);
        lease(ebpf, monotonic_now() - std::time::Duration::from_millis(1));
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_SHOT);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_SHOT);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_SHOT);
        // BPDUs: stpd's own leave; incoming ones are counted and dropped as with any rstp gate.
        assert_eq!(run(ebpf, GATE_PROG, &rst_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &config_bpdu()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, OBS_PROG, &rst_bpdu()), TC_ACT_SHOT);
        let c = counters(ebpf);
        assert_eq!(c.lease_drop, 3, "{c:?}");
        assert_eq!((c.gate_drop_in, c.gate_drop_out), (0, 0), "{c:?}");
        assert_eq!((c.bpdu_rstp, c.bpdu_dropped), (1, 1), "{c:?}");
        // A discarding port counts its drops as the gate's, not the lease's.
        set(ebpf, 1, 1);
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_SHOT);
        let c = counters(ebpf);
        assert_eq!((c.lease_drop, c.gate_drop_in), (3, 1), "{c:?}");
        // Kernel mode (rstp = 0) never expires: the lease only guards stpd's gates.
        set(ebpf, 0, 0);
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_UNSPEC);
        // Renewed: data passes again.
        set(ebpf, 1, 0);
        lease(ebpf, monotonic_now() + LEASE);
        assert_eq!(run(ebpf, OBS_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(run(ebpf, GATE_PROG, &data_frame()), TC_ACT_UNSPEC);
        assert_eq!(counters(ebpf).lease_drop, 3);
    });
}

#[test]
fn the_lease_constants_fail_closed_before_neighbours_age_out() {
    // Neighbours age a silent bridge out after 3 x hello, at least 3 s (hello >= 1 s).
    let min_age_out = 3 * std::time::Duration::from_secs(1);
    assert!(
        LEASE + LEASE_RENEW < min_age_out,
        "{LEASE:?} + {LEASE_RENEW:?}"
    );
    assert!(
        LEASE >= 3 * LEASE_RENEW,
        "two late renewals must not close a port"
    );
    let a = monotonic_now();
    let b = monotonic_now();
    assert!(b >= a && a > std::time::Duration::ZERO);
    assert_eq!(lease_ns(std::time::Duration::MAX), u64::MAX);
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth (`g0` 10.99.7.1 in the first, `g1` 10.99.7.2 in the
/// second) and the first one's observer pin directory; removes all of it on drop.
struct GateLab {
    ns: [String; 2],
    pin_dir: PathBuf,
}

impl GateLab {
    fn new() -> GateLab {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("lbt-gate-{}-{n}", std::process::id());
        let lab = GateLab {
            ns: [format!("{base}a"), format!("{base}b")],
            pin_dir: Path::new("/sys/fs/bpf").join(&base),
        };
        lab.cleanup();
        for ns in &lab.ns {
            sh(&["ip", "netns", "add", ns]);
        }
        let [a, b] = &lab.ns;
        sh(&[
            "ip", "-n", a, "link", "add", "g0", "type", "veth", "peer", "name", "g1",
        ]);
        sh(&["ip", "-n", a, "link", "set", "g1", "netns", b]);
        for (ns, dev, ip) in [(a, "g0", "10.99.7.1/24"), (b, "g1", "10.99.7.2/24")] {
            sh(&["ip", "-n", ns, "addr", "add", ip, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    fn cleanup(&self) {
        if let Err(e) = remove_pins(&self.pin_dir) {
            eprintln!("removing {}: {e:#}", self.pin_dir.display());
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }

    /// Runs `f` on an OS thread inside the first namespace.
    fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns[0]);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = fs::File::open(&path).expect("open netns");
                nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("netns thread panicked")
        })
    }

    /// Whether 3 pings from the second namespace to the first get an answer.
    fn ping_ok(&self) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns[1], "ping", "-c", "3", "-i", "0.2"])
            .args(["-W", "1", "-q", "10.99.7.1"])
            .output()
            .expect("run ping")
            .status
            .success()
    }
}

impl Drop for GateLab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0]);
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bpftool_dump(path: &Path) -> String {
    let out = Command::new("bpftool")
        .args(["map", "dump", "pinned"])
        .arg(path)
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn discarding_gate_and_expired_lease_stop_pings_on_a_veth_and_forwarding_lets_them_through() {
    if !crate::test_prereq::need_root() {
        return;
    }
    for tool in ["ping", "bpftool"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return crate::test_prereq::skip(&format!("{tool} is not installed"));
        }
    }
    let lab = GateLab::new();
    let pin_dir = lab.pin_dir.clone();
    lab.in_a(|| attach_observer(&pin_dir, &["g0".to_string()]))
        .expect("attach_observer");
    let g0 = lab.in_a(|| nix::net::if_::if_nametoindex("g0").expect("g0"));
    assert!(lab.ping_ok(), "pings fail before any gate is set");

    let mut maps = StpMaps::open(&lab.pin_dir).expect("StpMaps::open");
    let discarding = StpGate {
        rstp: 1,
        discard: 1,
        _pad: [0; 2],
    };
    maps.set_gate(g0, discarding).expect("set_gate");
    assert!(!lab.ping_ok(), "pings pass a discarding port");
    let c = read_observer(&lab.pin_dir).expect("read_observer");
    let port = c
        .ports
        .iter()
        .find(|p| p.ifindex == g0)
        .expect("g0 counted");
    assert!(port.stats.gate_drop_in > 0, "{port:?}");
    let gate_drops = (port.stats.gate_drop_in, port.stats.gate_drop_out);

    maps.set_gate(
        g0,
        StpGate {
            discard: 0,
            ..discarding
        },
    )
    .expect("set_gate");
    assert!(lab.ping_ok(), "pings fail on a forwarding port");

    // The lease: fresh, pings pass; not renewed, the forwarding port fails closed once it has
    // run out (data dropped, counted as lease drops); renewed, pings pass again.
    let until = monotonic_now() + LEASE;
    maps.renew_lease(g0, until).expect("renew_lease");
    assert_eq!(
        read_leases(&lab.pin_dir).expect("read_leases"),
        BTreeMap::from([(g0, until)])
    );
    assert!(lab.ping_ok(), "pings fail with a fresh lease");
    let lease_drops = || {
        let c = read_observer(&lab.pin_dir).expect("read_observer");
        c.ports
            .iter()
            .find(|p| p.ifindex == g0)
            .map(|p| p.stats.lease_drop)
    };
    assert_eq!(lease_drops(), Some(0), "drops under a fresh lease");
    while monotonic_now() < until + std::time::Duration::from_millis(100) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!lab.ping_ok(), "pings pass a port whose lease ran out");
    let dropped = lease_drops().expect("g0 counted");
    assert!(dropped > 0, "no lease drops counted");
    let c = read_observer(&lab.pin_dir).expect("read_observer");
    let port = c.ports.iter().find(|p| p.ifindex == g0).expect("g0");
    assert_eq!(
        (port.stats.gate_drop_in, port.stats.gate_drop_out),
        (gate_drops.0, gate_drops.1),
        "lease drops counted as gate drops: {port:?}"
    );
    maps.renew_lease(g0, monotonic_now() + LEASE)
        .expect("renew_lease");
    assert!(lab.ping_ok(), "pings fail once the lease is renewed");
    assert_eq!(lease_drops(), Some(dropped), "drops after the renewal");

    // The status map: written, read back, and printed by bpftool with field names (BTF).
    let info = RstpPortInfo {
        role: 2,
        state: 2,
        p2p: 1,
        rstp: 1,
        proposals_tx: 3,
        agreements_rx: 3,
        bpdus_tx: 7,
        ..Default::default()
    };
    maps.set_info(g0, &info).expect("set_info");
    let read = read_rstp_ports(&lab.pin_dir).expect("read_rstp_ports");
    assert_eq!(read.into_iter().collect::<Vec<_>>(), vec![(g0, info)]);
    let dump = bpftool_dump(&lab.pin_dir.join(RSTP_PORT_MAP));
    eprintln!("bpftool map dump pinned .../{RSTP_PORT_MAP}:\n{dump}");
    for field in ["\"role\": 2", "\"proposals_tx\": 3", "\"bpdus_tx\": 7"] {
        assert!(dump.contains(field), "{field} missing from:\n{dump}");
    }
    assert!(bpftool_dump(&lab.pin_dir.join(STP_GATE_MAP)).contains("\"discard\": 0"));

    // Both TCX links go with the pins.
    let attached = |dir: TcAttachType| {
        lab.in_a(move || {
            SchedClassifier::query_tcx("g0", dir)
                .expect("query_tcx")
                .1
                .len()
        })
    };
    assert_eq!(attached(TcAttachType::Egress), 1, "lb_gate not on egress");
    remove_pins(&lab.pin_dir).expect("remove_pins");
    let t = std::time::Instant::now();
    while attached(TcAttachType::Egress) + attached(TcAttachType::Ingress) > 0
        && t.elapsed() < std::time::Duration::from_secs(2)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(attached(TcAttachType::Egress), 0, "lb_gate left attached");
    assert_eq!(attached(TcAttachType::Ingress), 0, "lb_obs left attached");
}

#[test]
fn reading_a_node_without_the_status_map_gives_nothing() {
    let dir = Path::new("/nonexistent-lbctl-pin-dir");
    assert!(read_rstp_ports(dir).expect("no pin, no entries").is_empty());
    assert!(StpMaps::open(dir).is_err());
}

/// Every role and state reads back from `RSTP_PORT` as written, with the codes lb-common
/// documents; an unknown code is disabled and discarding.
#[test]
fn role_and_state_codes_round_trip() {
    let roles = [
        Role::Disabled,
        Role::Root,
        Role::Designated,
        Role::Alternate,
        Role::Backup,
    ];
    for (code, role) in roles.into_iter().enumerate() {
        assert_eq!(role_code(role), code as u8);
        assert_eq!(role_of_code(code as u8), role);
    }
    let states = [
        RstpState::Discarding,
        RstpState::Learning,
        RstpState::Forwarding,
    ];
    for (code, state) in states.into_iter().enumerate() {
        assert_eq!(state_code(state), code as u8);
        assert_eq!(state_of_code(code as u8), state);
    }
    assert_eq!(role_of_code(9), Role::Disabled);
    assert_eq!(state_of_code(9), RstpState::Discarding);
}
