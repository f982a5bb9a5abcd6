//! Packet-level tests of the VTEP programs through `BPF_PROG_TEST_RUN` (aya's `test_run`),
//! with crafted frames, in a throwaway namespace ([`crate::harness::testbed`]). Root needed
//! (CI runs as root).
use aya::{
    maps::{HashMap as AyaHashMap, MapData, PerCpuArray},
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use lb_common::vxlan::{
    FdbEntry, MacKey, NextHop, PortHint, Remote, VxStats, VX_DEC_PROG, VX_DEC_TC_PROG,
    VX_DIRECT_MARK, VX_ENC_PROG, VX_FDB_MAP, VX_FWD_PROG, VX_NH_MAP, VX_PORT_MAP, VX_PORT_PROG,
    VX_STATS_MAP,
};

use super::*;
use crate::harness::testbed::*;

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

fn stats(ebpf: &Ebpf) -> VxStats {
    let m: PerCpuArray<&MapData, VxStats> =
        PerCpuArray::try_from(ebpf.map(VX_STATS_MAP).unwrap()).unwrap();
    sum_stats(m.get(&0, 0).unwrap().iter())
}

fn fdb(ebpf: &Ebpf, mac: [u8; 6]) -> Option<FdbEntry> {
    let m: AyaHashMap<&MapData, MacKey, FdbEntry> =
        AyaHashMap::try_from(ebpf.map(VX_FDB_MAP).unwrap()).unwrap();
    m.get(&MacKey::new(mac), 0).ok()
}

/// Runs an XDP or TC program once on `frame`; returns (return value, output frame).
fn run_once<P>(prog: &P, frame: &[u8]) -> (u32, Vec<u8>)
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + 256];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::new()
        })
        .map_err(|e: ProgramError| anyhow!("{e:#}"))
        .expect("test_run");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

/// Loads the VTEP of a fresh test namespace and runs `f` inside it.
fn with_vtep(f: impl FnOnce(&mut Ebpf) + Send + 'static) {
    let net = TestNet::new().expect("test namespace");
    let spec = net.spec();
    net.run(move || {
        let mut ebpf = load_vtep(&spec)?;
        let p: &mut Xdp = ebpf.program_mut(VX_DEC_PROG).unwrap().try_into()?;
        p.load()?;
        let p: &mut SchedClassifier = ebpf.program_mut(VX_ENC_PROG).unwrap().try_into()?;
        p.load()?;
        let p: &mut SchedClassifier = ebpf.program_mut(VX_FWD_PROG).unwrap().try_into()?;
        p.load()?;
        for name in [VX_DEC_TC_PROG, VX_PORT_PROG] {
            let p: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into()?;
            p.load()?;
        }
        f(&mut ebpf);
        Ok(())
    })
    .expect("VTEP in the test namespace");
}

fn dec(ebpf: &Ebpf) -> &Xdp {
    ebpf.program(VX_DEC_PROG).unwrap().try_into().unwrap()
}

fn dec_tc(ebpf: &Ebpf) -> &SchedClassifier {
    ebpf.program(VX_DEC_TC_PROG).unwrap().try_into().unwrap()
}

fn enc(ebpf: &Ebpf) -> &SchedClassifier {
    ebpf.program(VX_ENC_PROG).unwrap().try_into().unwrap()
}

fn fwd(ebpf: &Ebpf) -> &SchedClassifier {
    ebpf.program(VX_FWD_PROG).unwrap().try_into().unwrap()
}

/// `TC_ACT_UNSPEC` (-1) as the u32 test_run reports.
const TC_ACT_UNSPEC: u32 = u32::MAX;

#[test]
fn fast_tx_encapsulates_known_unicast_only() {
    with_vtep(|ebpf| {
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        // Unknown destination, broadcast: into the bridge, untouched, nothing counted.
        let (rc, out) = run_once(fwd(ebpf), &ip);
        assert_eq!((rc, out), (TC_ACT_UNSPEC, ip.clone()));
        let arp = inner_arp(MAC_ENDPOINT);
        let (rc, out) = run_once(fwd(ebpf), &arp);
        assert_eq!((rc, out), (TC_ACT_UNSPEC, arp.clone()));
        assert_eq!(stats(ebpf), VxStats::default());
        // Once MAC_FAR is learned behind A: encapsulated right at the endpoint's port.
        let from_far = inner_frame(MAC_ENDPOINT, MAC_FAR, 10);
        run_once(dec(ebpf), &vxlan_frame(&Outer::default(), &from_far));
        let (rc, out) = run_once(fwd(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        let s = stats(ebpf);
        assert_eq!(
            (s.enc_fast, s.enc_unicast, s.enc_copies),
            (1, 1, 1),
            "{s:?}"
        );
    });
}

#[test]
fn decap_valid_frames_byte_exact_and_learns() {
    with_vtep(|ebpf| {
        // To the local endpoint: fast path.
        let inner = inner_frame(MAC_ENDPOINT, MAC_FAR, 100);
        let (rc, out) = run_once(dec(ebpf), &vxlan_frame(&Outer::default(), &inner));
        assert_eq!(rc, XDP_REDIRECT);
        assert_eq!(
            out, inner,
            "decapsulated frame differs from the inner frame"
        );
        let s = stats(ebpf);
        assert_eq!((s.dec_fast, s.dec_bridge), (1, 0), "{s:?}");
        assert_eq!(s.dec_bytes, inner.len() as u64);
        assert_eq!(s.learn_new, 1);
        let e = fdb(ebpf, MAC_FAR).expect("MAC_FAR learned");
        assert_eq!(e.vtep, REMOTE_A.octets());

        // Broadcast (an ARP request) and unknown unicast: through the bridge.
        let arp = inner_arp(MAC_FAR);
        let (rc, out) = run_once(dec(ebpf), &vxlan_frame(&Outer::default(), &arp));
        assert_eq!((rc, out), (XDP_REDIRECT, arp.clone()));
        let other = inner_frame([0x02, 9, 9, 9, 9, 9], MAC_FAR, 1400);
        let (rc, out) = run_once(dec(ebpf), &vxlan_frame(&Outer::default(), &other));
        assert_eq!((rc, out), (XDP_REDIRECT, other.clone()));
        let s = stats(ebpf);
        assert_eq!((s.dec_fast, s.dec_bridge), (1, 2), "{s:?}");
        // Same MAC, same VTEP, within a second: no rewrite.
        assert_eq!((s.learn_new, s.learn_refresh), (1, 0));

        // The MAC moves to another VTEP: learned again.
        let moved = Outer {
            src: REMOTE_B,
            ..Outer::default()
        };
        let (rc, _) = run_once(dec(ebpf), &vxlan_frame(&moved, &inner));
        assert_eq!(rc, XDP_REDIRECT);
        assert_eq!(fdb(ebpf, MAC_FAR).unwrap().vtep, REMOTE_B.octets());
        assert_eq!(stats(ebpf).learn_new, 2);
    });
}

/// Reads one counter.
type Counter = fn(&VxStats) -> u64;

/// A counter and its name, for the table's messages.
macro_rules! counter {
    ($field:ident) => {
        Some((stringify!($field), (|s: &VxStats| s.$field) as Counter))
    };
}

/// The program a golden row runs.
#[derive(Clone, Copy, Debug)]
enum Prog {
    /// `lb_vxdec` (XDP, underlay ingress).
    Dec,
    /// `lb_vxdtc` (TC, underlay ingress): the same checks and results for skbs.
    DecTc,
    /// `lb_vxenc` (TC egress of the tunnel port).
    Enc,
    /// `lb_vxfwd` (TC ingress of an endpoint's port).
    Fwd,
}

/// The frame a golden row expects the program to leave.
enum Output {
    /// The input, byte for byte.
    Unchanged,
    /// Exactly this frame.
    Frame(Vec<u8>),
    /// `inner` encapsulated to `remote` (next hop `mac`): exactly what [`encapsulated`]
    /// builds, with the UDP source port the program chose (it comes from the kernel's flow
    /// hash, whose seed is random per boot; it must lie in 49152..=65535).
    Encap {
        inner: Vec<u8>,
        remote: Ipv4Addr,
        mac: [u8; 6],
    },
}

/// One row of the VTEP's golden table: what goes in, what comes out, what is counted.
struct Golden {
    what: String,
    prog: Prog,
    input: Vec<u8>,
    verdict: u32,
    output: Output,
    /// The per-frame outcome counter that must move by exactly one (the only one of
    /// [`outcomes`] that moves); `None`: no counter at all may move.
    counter: Option<(&'static str, Counter)>,
}

/// The frame `lb_vxenc` sends for `inner` to `remote` behind `mac` from source port `sport`.
fn encapsulated(inner: &[u8], remote: Ipv4Addr, mac: [u8; 6], sport: u16) -> Vec<u8> {
    vxlan_frame(
        &Outer {
            dst_mac: mac,
            src_mac: MAC_U0,
            dst: remote,
            src: LOCAL,
            id: 0,
            sport,
            ..Outer::default()
        },
        inner,
    )
}

/// The counters of which every frame a program sees moves exactly one (see `VxStats`).
fn outcomes(prog: Prog, s: &VxStats) -> Vec<(&'static str, u64)> {
    let names: &[&str] = match prog {
        Prog::Dec | Prog::DecTc => &[
            "dec_bridge",
            "dec_fast",
            "dec_no_dev",
            "pass_not_ip",
            "pass_trunc",
            "pass_bad_ip",
            "pass_ip_opts",
            "pass_not_local",
            "pass_not_udp",
            "pass_frag",
            "pass_port",
            "pass_flags",
            "pass_vni",
        ],
        Prog::Enc | Prog::Fwd => &[
            "enc_unicast",
            "enc_flood",
            "enc_drop_no_remote",
            "enc_drop_err",
        ],
    };
    let all = stats_fields(s);
    let v: Vec<_> = all.into_iter().filter(|(n, _)| names.contains(n)).collect();
    assert_eq!(
        v.len(),
        names.len(),
        "an outcome counter is not in stats_fields"
    );
    v
}

/// A valid VXLAN frame built from `Outer::default()` changed by `f`, carrying `inner`.
fn outer_with(f: impl FnOnce(&mut Outer), inner: &[u8]) -> Vec<u8> {
    let mut o = Outer::default();
    f(&mut o);
    vxlan_frame(&o, inner)
}

/// A decapsulation program's verdicts: (delivered, passed).
fn decap_verdicts(prog: Prog) -> (u32, u32) {
    match prog {
        Prog::DecTc => (TC_ACT_REDIRECT, TC_ACT_UNSPEC),
        _ => (XDP_REDIRECT, XDP_PASS),
    }
}

/// Decapsulation rows for `prog` (`Dec` or `DecTc`: the same frames, the same outputs and
/// counters, each hook's own verdicts): valid frames to each destination, then every way a
/// frame is passed.
fn decap_rows(prog: Prog) -> Vec<Golden> {
    let (redirect, pass_verdict) = decap_verdicts(prog);
    let inner = inner_frame(MAC_ENDPOINT, MAC_FAR, 64);
    let valid = vxlan_frame(&Outer::default(), &inner);
    let arp = inner_arp(MAC_FAR);
    let unknown = inner_frame([0x02, 9, 9, 9, 9, 9], MAC_FAR, 1400);
    let row = |what: &str, input: Vec<u8>, verdict, output, counter| Golden {
        what: format!("{prog:?}: {what}"),
        prog,
        input,
        verdict,
        output,
        counter,
    };
    let deliver = |what: &str, input: Vec<u8>, inner: &[u8], counter| {
        row(
            what,
            input,
            redirect,
            Output::Frame(inner.to_vec()),
            counter,
        )
    };
    let pass = |what: &str, input: Vec<u8>, counter| {
        row(what, input, pass_verdict, Output::Unchanged, counter)
    };
    let patched = |at: usize, bytes: &[u8]| {
        let mut f = valid.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        f
    };
    let mut rows = vec![
        deliver(
            "to the local endpoint: fast path",
            valid.clone(),
            &inner,
            counter!(dec_fast),
        ),
        deliver(
            "broadcast (ARP): into the bridge",
            vxlan_frame(&Outer::default(), &arp),
            &arp,
            counter!(dec_bridge),
        ),
        deliver(
            "unknown unicast: into the bridge",
            vxlan_frame(&Outer::default(), &unknown),
            &unknown,
            counter!(dec_bridge),
        ),
        deliver(
            "reserved VXLAN flag bits set besides I: accepted",
            outer_with(|o| o.flags = 0x0c, &inner),
            &inner,
            counter!(dec_fast),
        ),
        pass(
            "wrong VNI",
            outer_with(|o| o.vni = 13, &inner),
            counter!(pass_vni),
        ),
        pass(
            "VNI 0",
            outer_with(|o| o.vni = 0, &inner),
            counter!(pass_vni),
        ),
        pass(
            "wrong port",
            outer_with(|o| o.dport = 8472, &inner),
            counter!(pass_port),
        ),
        pass(
            "other destination",
            outer_with(|o| o.dst = Ipv4Addr::new(10, 200, 0, 77), &inner),
            counter!(pass_not_local),
        ),
        pass(
            "IP options",
            outer_with(|o| o.options = vec![0x01, 0x01, 0x01, 0x00], &inner),
            counter!(pass_ip_opts),
        ),
        pass(
            "fragment (MF)",
            outer_with(|o| o.frag = 0x2000, &inner),
            counter!(pass_frag),
        ),
        pass(
            "fragment (offset)",
            outer_with(|o| o.frag = 0x0010, &inner),
            counter!(pass_frag),
        ),
        pass(
            "VLAN-tagged outer frame",
            outer_with(|o| o.vlan = true, &inner),
            counter!(pass_not_ip),
        ),
        pass("IPv6", ipv6_frame(&inner), counter!(pass_not_ip)),
        pass("ARP outer frame", inner_arp(MAC_FAR), counter!(pass_not_ip)),
        pass(
            "TCP, not UDP",
            outer_with(|o| o.proto = 6, &inner),
            counter!(pass_not_udp),
        ),
        pass(
            "ICMP, not UDP",
            outer_with(|o| o.proto = 1, &inner),
            counter!(pass_not_udp),
        ),
        pass(
            "I flag clear",
            outer_with(|o| o.flags = 0, &inner),
            counter!(pass_flags),
        ),
        pass(
            "I flag clear, other flags set",
            outer_with(|o| o.flags = 0xf7, &inner),
            counter!(pass_flags),
        ),
        // Bad IPv4 headers behind an IPv4 ethertype.
        pass("IP version 6", patched(14, &[0x65]), counter!(pass_bad_ip)),
        pass("IHL 4", patched(14, &[0x44]), counter!(pass_bad_ip)),
        pass(
            "IP total length 19",
            patched(16, &[0, 19]),
            counter!(pass_bad_ip),
        ),
        pass(
            "IP total length > frame",
            patched(16, &((valid.len() - 14 + 1) as u16).to_be_bytes()),
            counter!(pass_trunc),
        ),
    ];
    // Truncated at (and one byte short of) every header boundary: outer Ethernet (14), IPv4
    // (34), UDP (42), VXLAN (50), inner Ethernet (64). XDP test runs need at least the 14
    // bytes of an Ethernet header; the kernel refuses TC test runs of an IPv4 frame shorter
    // than its IP header.
    for cut in [14, 33, 34, 41, 42, 49, 50, 63] {
        if cut < 34 && matches!(prog, Prog::DecTc) {
            continue;
        }
        rows.push(pass(
            &format!("truncated to {cut} bytes"),
            valid[..cut].to_vec(),
            counter!(pass_trunc),
        ));
    }
    rows
}

/// Encapsulation rows that need no learned MAC (known unicast needs state: see the tests
/// below).
fn encap_rows() -> Vec<Golden> {
    let arp = inner_arp(MAC_ENDPOINT);
    let ip = inner_frame([0x02, 9, 9, 9, 9, 9], MAC_ENDPOINT, 200);
    let row = |what: &str, prog, input: &[u8], verdict, output, counter| Golden {
        what: what.into(),
        prog,
        input: input.to_vec(),
        verdict,
        output,
        counter,
    };
    // Flooded: the frame that comes out is the last copy, to REMOTE_B.
    let to_b = |inner: &[u8]| Output::Encap {
        inner: inner.to_vec(),
        remote: REMOTE_B,
        mac: MAC_REMOTE_B,
    };
    vec![
        row(
            "broadcast (ARP, change_head): flooded",
            Prog::Enc,
            &arp,
            TC_ACT_REDIRECT,
            to_b(&arp),
            counter!(enc_flood),
        ),
        row(
            "unknown unicast (IPv4, adjust_room): flooded",
            Prog::Enc,
            &ip,
            TC_ACT_REDIRECT,
            to_b(&ip),
            counter!(enc_flood),
        ),
        row(
            "fast path, broadcast: into the bridge",
            Prog::Fwd,
            &arp,
            TC_ACT_UNSPEC,
            Output::Unchanged,
            None,
        ),
        row(
            "fast path, unknown unicast: into the bridge",
            Prog::Fwd,
            &ip,
            TC_ACT_UNSPEC,
            Output::Unchanged,
            None,
        ),
    ]
}

/// Runs one golden row and checks verdict, output frame and counters.
fn check_row(ebpf: &Ebpf, row: &Golden) {
    let name = &row.what;
    let before = stats(ebpf);
    let (rc, out) = match row.prog {
        Prog::Dec => run_once(dec(ebpf), &row.input),
        Prog::DecTc => run_once(dec_tc(ebpf), &row.input),
        Prog::Enc => run_once(enc(ebpf), &row.input),
        Prog::Fwd => run_once(fwd(ebpf), &row.input),
    };
    let after = stats(ebpf);
    assert_eq!(rc, row.verdict, "{name}: verdict");
    match &row.output {
        Output::Unchanged => assert_eq!(out, row.input, "{name}: frame changed"),
        Output::Frame(f) => assert_eq!(&out, f, "{name}: output frame"),
        Output::Encap { inner, remote, mac } => {
            assert!(
                out.len() >= 36,
                "{name}: output too short ({} bytes)",
                out.len()
            );
            let sport = u16::from_be_bytes([out[34], out[35]]);
            assert!(
                sport >= 49152,
                "{name}: source port {sport} outside 49152..=65535"
            );
            assert_eq!(
                out,
                encapsulated(inner, *remote, *mac, sport),
                "{name}: output frame"
            );
        }
    }
    let (was, now) = (outcomes(row.prog, &before), outcomes(row.prog, &after));
    let moved: Vec<(&str, u64)> = was
        .iter()
        .zip(&now)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, b)| (a.0, b.1 - a.1))
        .collect();
    match row.counter {
        Some((counter, read)) => {
            assert_eq!(
                read(&after),
                read(&before) + 1,
                "{name}: {counter} not counted"
            );
            assert_eq!(moved, vec![(counter, 1)], "{name}: counters moved");
        }
        None => assert_eq!(after, before, "{name}: counted"),
    }
}

/// The golden table: every row through its program, in one VTEP. The passed frames run
/// first, so the table can check that none of them was learned; the delivered ones learn
/// MAC_FAR, which no encapsulation row sends to.
#[test]
fn golden_table() {
    with_vtep(|ebpf| {
        check_decap_rows(ebpf, Prog::Dec);
        for row in &encap_rows() {
            check_row(ebpf, row);
        }
    });
}

/// The decapsulation rows through `lb_vxdtc`, in a VTEP of their own (learning starts empty).
#[test]
fn golden_table_tc_decap() {
    with_vtep(|ebpf| check_decap_rows(ebpf, Prog::DecTc));
}

/// Runs the decapsulation rows of `prog`: the passed frames first, so it can check that none
/// of them was learned; the delivered ones learn MAC_FAR.
fn check_decap_rows(ebpf: &Ebpf, prog: Prog) {
    let pass_verdict = decap_verdicts(prog).1;
    let (passed, delivered): (Vec<Golden>, Vec<Golden>) = decap_rows(prog)
        .into_iter()
        .partition(|r| r.verdict == pass_verdict);
    // (two truncated frames fewer for TC: see `decap_rows`)
    assert!(passed.len() >= 23, "the malformed cases are all there");
    for row in &passed {
        check_row(ebpf, row);
    }
    assert_eq!(fdb(ebpf, MAC_FAR), None, "nothing passed may be learned");
    for row in &delivered {
        check_row(ebpf, row);
    }
    assert_eq!(fdb(ebpf, MAC_FAR).map(|e| e.vtep), Some(REMOTE_A.octets()));
}

/// Parses an encapsulated frame and checks every outer field; returns the UDP source port.
fn check_outer(out: &[u8], inner: &[u8], dst_ip: Ipv4Addr, dst_mac: [u8; 6]) -> u16 {
    assert_eq!(out.len(), inner.len() + 50, "outer length");
    assert_eq!(
        &out[0..6],
        &dst_mac,
        "outer destination MAC (FIB neighbour)"
    );
    assert_eq!(&out[6..12], &MAC_U0, "outer source MAC (egress device)");
    assert_eq!(&out[12..14], &[0x08, 0x00], "outer ethertype");
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45, "version/IHL");
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]) as usize,
        out.len() - 14,
        "IP total length"
    );
    assert_eq!(
        u16::from_be_bytes([ip[6], ip[7]]),
        0x4000,
        "DF, no fragment"
    );
    assert_eq!(ip[8], 64, "TTL");
    assert_eq!(ip[9], 17, "protocol UDP");
    assert_eq!(checksum(ip), 0, "IPv4 header checksum");
    assert_eq!(&ip[12..16], &LOCAL.octets(), "outer source");
    assert_eq!(&ip[16..20], &dst_ip.octets(), "outer destination");
    let udp = &out[34..42];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert!(sport >= 49152, "source port {sport} outside 49152..=65535");
    assert_eq!(
        u16::from_be_bytes([udp[2], udp[3]]),
        PORT,
        "destination port"
    );
    assert_eq!(
        u16::from_be_bytes([udp[4], udp[5]]) as usize,
        out.len() - 34,
        "UDP length"
    );
    assert_eq!(&udp[6..8], &[0, 0], "UDP checksum 0");
    assert_eq!(&out[42..50], &[0x08, 0, 0, 0, 0, 0, 12, 0], "VXLAN header");
    assert_eq!(&out[50..], inner, "inner frame");
    sport
}

#[test]
fn encap_known_unicast_flood_and_fields() {
    with_vtep(|ebpf| {
        // Broadcast: one copy per remote (clone to A, the frame itself to B).
        let arp = inner_arp(MAC_ENDPOINT);
        let (rc, out) = run_once(enc(ebpf), &arp);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &arp, REMOTE_B, MAC_REMOTE_B);
        let s = stats(ebpf);
        assert_eq!(
            (s.enc_flood, s.enc_copies, s.enc_unicast),
            (1, 2, 0),
            "{s:?}"
        );

        // Unknown unicast (IPv4 inner, the adjust_room path): flooded too.
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        let sport = check_outer(&out, &ip, REMOTE_B, MAC_REMOTE_B);
        // The same flow keeps its source port.
        let (_, again) = run_once(enc(ebpf), &ip);
        assert_eq!(check_outer(&again, &ip, REMOTE_B, MAC_REMOTE_B), sport);
        assert_eq!(stats(ebpf).enc_flood, 3);

        // Learn MAC_FAR behind A by decapsulating a frame from it: now known unicast to A.
        let from_far = inner_frame(MAC_ENDPOINT, MAC_FAR, 10);
        let (rc, _) = run_once(dec(ebpf), &vxlan_frame(&Outer::default(), &from_far));
        assert_eq!(rc, XDP_REDIRECT);
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        let s = stats(ebpf);
        assert_eq!((s.enc_unicast, s.enc_flood), (1, 3), "{s:?}");
        assert_eq!(s.enc_copies, 2 + 2 + 2 + 1);
        assert_eq!(s.enc_bytes, (arp.len() + 3 * ip.len()) as u64);
        assert_eq!(s.enc_drop_fib + s.enc_drop_err + s.enc_no_neigh, 0, "{s:?}");
    });
}

/// The largest replication list (`VX_REMOTE_MAX`, 16 hosts): the programs still pass the
/// verifier, a broadcast leaves as one copy per remote (the last one is the frame itself,
/// to the last remote), and one remote more is refused by the loader.
#[test]
fn encap_floods_to_the_most_remotes() {
    use lb_common::vxlan::VX_REMOTE_MAX;
    let net = TestNet::new().expect("test namespace");
    let mut spec = net.spec();
    let extra = |i: u8| (Ipv4Addr::new(10, 200, 0, 10 + i), [2, 0, 0, 0, 0x10, i]);
    let n_extra = VX_REMOTE_MAX as u8 - 2;
    for i in 0..n_extra {
        let (addr, mac) = extra(i);
        let mac = crate::topo::plan::mac_string(&mac);
        let o = std::process::Command::new("ip")
            .args(["-n", &net.ns, "neigh", "replace", &addr.to_string()])
            .args(["lladdr", &mac, "dev", "u0", "nud", "permanent"])
            .output()
            .expect("ip neigh");
        assert!(o.status.success(), "{o:?}");
        spec.remotes.push(addr);
    }
    let (last_ip, last_mac) = extra(n_extra - 1);
    let mut too_many = spec.clone();
    too_many.remotes.push(Ipv4Addr::new(10, 200, 0, 99));
    net.run(move || {
        let mut ebpf = load_vtep(&spec)?;
        let p: &mut SchedClassifier = ebpf.program_mut(VX_ENC_PROG).unwrap().try_into()?;
        p.load()?;
        let arp = inner_arp(MAC_ENDPOINT);
        let (rc, out) = run_once(enc(&ebpf), &arp);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &arp, last_ip, last_mac);
        let s = stats(&ebpf);
        assert_eq!(
            (s.enc_flood, s.enc_copies),
            (1, VX_REMOTE_MAX as u64),
            "{s:?}"
        );
        assert_eq!(s.enc_drop_fib + s.enc_drop_err + s.enc_no_neigh, 0, "{s:?}");
        let err = load_vtep(&too_many).expect_err("one remote too many");
        assert!(format!("{err:#}").contains("at most 15"), "{err:#}");
        Ok(())
    })
    .expect("VTEP with the most remotes");
}

#[test]
fn encap_ages_out_learned_macs_and_needs_a_remote() {
    let net = TestNet::new().expect("test namespace");
    let mut spec = net.spec();
    spec.ageing = Duration::ZERO;
    net.run(move || {
        let mut ebpf = load_vtep(&spec)?;
        let p: &mut Xdp = ebpf.program_mut(VX_DEC_PROG).unwrap().try_into()?;
        p.load()?;
        let p: &mut SchedClassifier = ebpf.program_mut(VX_ENC_PROG).unwrap().try_into()?;
        p.load()?;
        let from_far = inner_frame(MAC_ENDPOINT, MAC_FAR, 10);
        run_once(dec(&ebpf), &vxlan_frame(&Outer::default(), &from_far));
        std::thread::sleep(Duration::from_millis(30)); // > one jiffy of the coarse clock
                                                       // Ageing 0: the learned entry is stale at once, so the frame is flooded.
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 20);
        let (rc, out) = run_once(enc(&ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_B, MAC_REMOTE_B);
        let s = stats(&ebpf);
        assert_eq!((s.enc_flood, s.enc_unicast), (1, 0), "{s:?}");
        Ok(())
    })
    .expect("ageing");

    let net = TestNet::new().expect("test namespace");
    let mut spec = net.spec();
    spec.remotes.clear();
    net.run(move || {
        let mut ebpf = load_vtep(&spec)?;
        let p: &mut SchedClassifier = ebpf.program_mut(VX_ENC_PROG).unwrap().try_into()?;
        p.load()?;
        let (rc, _) = run_once(enc(&ebpf), &inner_arp(MAC_ENDPOINT));
        assert_eq!(rc, TC_ACT_SHOT);
        assert_eq!(stats(&ebpf).enc_drop_no_remote, 1);
        Ok(())
    })
    .expect("no remote");
}

/// The cached next hop of `remote` (`VX_NH`), if any.
fn nh(ebpf: &Ebpf, remote: Ipv4Addr) -> Option<NextHop> {
    let m: AyaHashMap<&MapData, Remote, NextHop> =
        AyaHashMap::try_from(ebpf.map(VX_NH_MAP).unwrap()).unwrap();
    m.get(
        &Remote {
            ip: remote.octets(),
        },
        0,
    )
    .ok()
}

/// Writes the entry of `remote` in the `Remote`-keyed map `map` (`VX_NH`, `VX_PORT`).
fn set_remote_entry<V: aya::Pod>(ebpf: &mut Ebpf, map: &str, remote: Ipv4Addr, v: V) {
    let mut m: AyaHashMap<&mut MapData, Remote, V> =
        AyaHashMap::try_from(ebpf.map_mut(map).unwrap()).unwrap();
    let key = Remote {
        ip: remote.octets(),
    };
    m.insert(key, v, 0).unwrap();
}

/// Writes the cached next hop of `remote` as user space (or a refresh) would.
fn set_nh(ebpf: &mut Ebpf, remote: Ipv4Addr, e: NextHop) {
    set_remote_entry(ebpf, VX_NH_MAP, remote, e);
}

/// A MAC no neighbour of the test namespace has: a frame carrying it came from the cache.
const MAC_CACHED: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xcc, 0xcc];

/// Learns MAC_FAR behind REMOTE_A, so frames to it are known unicast to A.
fn learn_far(ebpf: &Ebpf) {
    let from_far = inner_frame(MAC_ENDPOINT, MAC_FAR, 10);
    let (rc, _) = run_once(dec(ebpf), &vxlan_frame(&Outer::default(), &from_far));
    assert_eq!(rc, XDP_REDIRECT);
}

/// Next-hop cache, miss: the FIB names the next hop (the neighbour's MAC), the cache is filled
/// with it, and the following frames take it from the cache (no further FIB lookup).
#[test]
fn nh_cache_miss_falls_back_to_the_fib_and_fills_the_cache() {
    with_vtep(|ebpf| {
        learn_far(ebpf);
        assert_eq!(nh(ebpf, REMOTE_A), None, "the cache starts empty");
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        let t0 = monotonic_ns();
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        assert_eq!(stats(ebpf).enc_fib_lookups, 1);
        let e = nh(ebpf, REMOTE_A).expect("filled from the FIB");
        assert_eq!(
            (e.dmac, e.smac, e.ifindex),
            (MAC_REMOTE_A, MAC_U0, ifindex("u0").unwrap())
        );
        // The coarse clock lags CLOCK_MONOTONIC by at most a few jiffies.
        assert!(
            e.checked_ns + 100_000_000 >= t0 && e.checked_ns <= monotonic_ns(),
            "checked_ns {} vs now {t0}",
            e.checked_ns
        );
        for _ in 0..3 {
            let (rc, out) = run_once(enc(ebpf), &ip);
            assert_eq!(rc, TC_ACT_REDIRECT);
            check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        }
        let s = stats(ebpf);
        assert_eq!((s.enc_unicast, s.enc_fib_lookups), (4, 1), "{s:?}");
        // Flooding fills the entries of every remote the same way.
        run_once(enc(ebpf), &inner_arp(MAC_ENDPOINT));
        assert_eq!(nh(ebpf, REMOTE_B).map(|e| e.dmac), Some(MAC_REMOTE_B));
        assert_eq!(stats(ebpf).enc_fib_lookups, 2);
    });
}

/// Next-hop cache, hit: a fresh entry is used as it is, without asking the FIB (the frame
/// carries the cached MAC, which no neighbour has).
#[test]
fn nh_cache_hit_uses_the_cached_next_hop() {
    with_vtep(|ebpf| {
        learn_far(ebpf);
        let u0 = ifindex("u0").unwrap();
        let cached = NextHop {
            dmac: MAC_CACHED,
            smac: MAC_U0,
            ifindex: u0,
            checked_ns: monotonic_ns(),
        };
        set_nh(ebpf, REMOTE_A, cached);
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_CACHED);
        assert_eq!(stats(ebpf).enc_fib_lookups, 0);
        assert_eq!(
            nh(ebpf, REMOTE_A),
            Some(cached),
            "a hit leaves the entry alone"
        );
    });
}

/// Next-hop cache, stale: an entry older than VX_NH_REFRESH_NS is looked up again, so a
/// neighbour whose MAC changed is followed within a second; an entry whose neighbour is gone
/// is removed and the copy takes the FIB's answer (`bpf_redirect_neigh`).
#[test]
fn nh_cache_stale_entry_is_refreshed_from_the_fib() {
    use lb_common::vxlan::VX_NH_REFRESH_NS;
    with_vtep(|ebpf| {
        learn_far(ebpf);
        let u0 = ifindex("u0").unwrap();
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        let stale = || NextHop {
            dmac: MAC_CACHED,
            smac: MAC_U0,
            ifindex: u0,
            checked_ns: monotonic_ns() - VX_NH_REFRESH_NS - 200_000_000,
        };
        set_nh(ebpf, REMOTE_A, stale());
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        assert_eq!(stats(ebpf).enc_fib_lookups, 1);
        let e = nh(ebpf, REMOTE_A).expect("refreshed");
        assert_eq!(e.dmac, MAC_REMOTE_A);
        assert!(e.checked_ns + 100_000_000 >= monotonic_ns(), "{e:?}");

        // The neighbour changes its MAC: the fresh entry keeps the old one until it is due.
        let new_mac = [0x02, 0x00, 0x00, 0x00, 0x02, 0x99];
        neigh(&[
            "replace",
            &REMOTE_A.to_string(),
            "lladdr",
            "02:00:00:00:02:99",
        ]);
        let (_, out) = run_once(enc(ebpf), &ip);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        set_nh(
            ebpf,
            REMOTE_A,
            NextHop {
                dmac: MAC_REMOTE_A,
                ..stale()
            },
        );
        let (_, out) = run_once(enc(ebpf), &ip);
        check_outer(&out, &ip, REMOTE_A, new_mac);
        assert_eq!(nh(ebpf, REMOTE_A).map(|e| e.dmac), Some(new_mac));
        assert_eq!(stats(ebpf).enc_fib_lookups, 2);

        // The neighbour is gone: the stale entry is dropped and the kernel resolves it.
        neigh(&["del", &REMOTE_A.to_string()]);
        set_nh(ebpf, REMOTE_A, stale());
        let (rc, _) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT, "bpf_redirect_neigh");
        let s = stats(ebpf);
        assert_eq!((s.enc_no_neigh, s.enc_fib_lookups), (1, 3), "{s:?}");
        assert_eq!(
            nh(ebpf, REMOTE_A),
            None,
            "nothing cached without a neighbour"
        );
    });
}

/// `ip neigh ARGS dev u0 [nud permanent]` in the calling thread's namespace.
fn neigh(args: &[&str]) {
    let mut cmd = std::process::Command::new("ip");
    cmd.arg("neigh").args(args).args(["dev", "u0"]);
    if args[0] != "del" {
        cmd.args(["nud", "permanent"]);
    }
    let o = cmd.output().expect("ip neigh");
    assert!(o.status.success(), "ip neigh {args:?}: {o:?}");
}

/// The outer source port is a hash of the inner flow: the same 5-tuple always gets the same
/// port, flows that differ only in a port or an address get different ones (fixed frames, so
/// the outcome is fixed: the test-run skb carries no socket hash, so the VTEP's own hash of
/// the inner IPv4 header and ports decides), and a fragment hashes without ports.
#[test]
fn encap_source_port_follows_the_inner_flow() {
    with_vtep(|ebpf| {
        learn_far(ebpf);
        let base = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        let with = |at: usize, bytes: &[u8]| {
            let mut f = base.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            f
        };
        let sport = |f: &[u8]| {
            let (rc, out) = run_once(enc(ebpf), f);
            assert_eq!(rc, TC_ACT_REDIRECT);
            check_outer(&out, f, REMOTE_A, MAC_REMOTE_A)
        };
        let p0 = sport(&base);
        assert_eq!(sport(&base), p0, "same flow, same port");
        // Inner source port (offset 34), destination port (36), source address (26).
        let others = [
            with(34, &40001u16.to_be_bytes()),
            with(36, &81u16.to_be_bytes()),
            with(26, &[10, 0, 0, 8]),
        ];
        let ports: Vec<u16> = others.iter().map(|f| sport(f)).collect();
        assert!(ports.iter().all(|&p| p != p0), "{p0} vs {ports:?}");
        // A fragment (MF; the IPv4 checksum is not checked on the way out) hashes the
        // addresses and protocol only: its ports do not matter.
        let frag = with(20, &[0x20, 0x00]);
        let mut frag_other_port = frag.clone();
        frag_other_port[34..36].copy_from_slice(&40001u16.to_be_bytes());
        assert_eq!(sport(&frag), sport(&frag_other_port));
    });
}

fn port_prog(ebpf: &Ebpf) -> &SchedClassifier {
    ebpf.program(VX_PORT_PROG).unwrap().try_into().unwrap()
}

fn port_hint(ebpf: &Ebpf, remote: Ipv4Addr) -> Option<PortHint> {
    let m: AyaHashMap<&MapData, Remote, PortHint> =
        AyaHashMap::try_from(ebpf.map(VX_PORT_MAP).unwrap()).unwrap();
    m.get(
        &Remote {
            ip: remote.octets(),
        },
        0,
    )
    .ok()
}

/// Runs `lb_vxport` once on `frame` as if leaving through `ifindex`, with `cb[0]` = `mark`.
fn run_port(ebpf: &Ebpf, frame: &[u8], ifindex: u32, mark: u32) -> u32 {
    // The first 68 bytes of a __sk_buff: ifindex at 40, cb[0] at 48 (the fields a test run
    // may set; everything else zero).
    let mut skb = [0u8; 68];
    skb[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    skb[48..52].copy_from_slice(&mark.to_ne_bytes());
    let mut out = vec![0u8; frame.len() + 256];
    port_prog(ebpf)
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&skb),
            ..TestRunOptions::new()
        })
        .map_err(|e: ProgramError| anyhow!("{e:#}"))
        .expect("test_run")
        .return_value
}

/// `lb_vxport` records the port the bridge sent one of this VTEP's frames out of: not from
/// other frames, not from frames sent straight out (marked), at most once per half a hint's
/// life when unchanged; a second port at once (a flooded frame) clears the hint, which stays
/// cleared while the flood goes on and comes back once frames leave by one port again.
#[test]
fn port_hint_follows_the_bridges_choice() {
    with_vtep(|ebpf| {
        let (u0, t0) = (ifindex("u0").unwrap(), ifindex("t0").unwrap());
        let inner = inner_frame(MAC_FAR, MAC_ENDPOINT, 64);
        let ours = encapsulated(&inner, REMOTE_A, MAC_U0, 50_000);
        let theirs = vxlan_frame(&Outer::default(), &inner);

        assert_eq!(run_port(ebpf, &theirs, u0, 0), TC_ACT_UNSPEC);
        assert_eq!(
            port_hint(ebpf, REMOTE_A),
            None,
            "learned from a frame not ours"
        );
        assert_eq!(run_port(ebpf, &ours, u0, VX_DIRECT_MARK), TC_ACT_UNSPEC);
        assert_eq!(
            port_hint(ebpf, REMOTE_A),
            None,
            "learned from a frame sent straight"
        );
        assert_eq!(port_hint(ebpf, REMOTE_B), None);

        // Frames leaving by the ports in turn, all within the flood window (a sequence the
        // machine stalled in is run again): the hint after each, and what it cost in writes.
        let seen = |ports: &[u32]| {
            timed_sequence(|| {
                let before = stats(ebpf).port_learned;
                let hints: Vec<u32> = ports
                    .iter()
                    .map(|&p| {
                        assert_eq!(run_port(ebpf, &ours, p, 0), TC_ACT_UNSPEC);
                        port_hint(ebpf, REMOTE_A).map_or(u32::MAX, |h| h.ifindex)
                    })
                    .collect();
                (hints, stats(ebpf).port_learned - before)
            })
        };
        let (hints, writes) = seen(&[u0, u0]);
        assert_eq!(hints, [u0, u0], "the bridge's port");
        assert_eq!(writes, 1, "an unchanged, recent hint is not rewritten");
        let (hints, _) = seen(&[u0, t0, u0, t0, u0]);
        assert_eq!(
            hints,
            [u0, 0, 0, 0, 0],
            "two ports at once: flooded, no hint while it goes on"
        );
        // Under steady traffic (every frame within the flood window of the one before),
        // two frames in a row by one port: the bridge sends to one port again.
        let (hints, _) = seen(&[u0, t0, u0, u0]);
        assert_eq!(hints, [u0, 0, 0, u0], "unicast again after a flood");
    });
}

/// Runs `f` until one run takes less than half the flood window of `lb_vxport` (20 ms), so
/// the frames it runs count as moments apart; a few runs at most.
fn timed_sequence<T>(mut f: impl FnMut() -> T) -> T {
    for _ in 0..5 {
        let t0 = monotonic_ns();
        let r = f();
        if monotonic_ns() - t0 < 10_000_000 {
            return r;
        }
    }
    panic!("five runs in a row took over 10 ms each: the machine is too loaded to time this");
}

/// Writes the port hint of `remote` as `lb_vxport` would.
fn set_port_hint(ebpf: &mut Ebpf, remote: Ipv4Addr, h: PortHint) {
    set_remote_entry(ebpf, VX_PORT_MAP, remote, h);
}

/// `lb_vxenc` sends known unicast straight out of the hinted port only while the hint is
/// younger than `VX_PORT_TTL_NS` and names a port: a stale hint (the port may have stopped
/// forwarding since) or a cleared one (a flood) leaves the choice to the bridge.
#[test]
fn encap_sends_straight_out_only_on_a_fresh_hint() {
    use lb_common::vxlan::VX_PORT_TTL_NS;
    with_vtep(|ebpf| {
        learn_far(ebpf);
        let t0 = ifindex("t0").unwrap();
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 200);
        let direct = |ebpf: &Ebpf| stats(ebpf).enc_direct;
        let hint = |ifindex, age_ns| PortHint {
            ifindex,
            last: t0,
            seen_ns: monotonic_ns() - age_ns,
        };
        set_port_hint(ebpf, REMOTE_A, hint(t0, 0));
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        assert_eq!(direct(ebpf), 1, "a fresh hint is used");

        set_port_hint(ebpf, REMOTE_A, hint(t0, VX_PORT_TTL_NS + 200_000_000));
        let (rc, out) = run_once(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT, "through the bridge instead");
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        assert_eq!(direct(ebpf), 1, "a stale hint is not used");

        set_port_hint(ebpf, REMOTE_A, hint(0, 0));
        run_once(enc(ebpf), &ip);
        assert_eq!(direct(ebpf), 1, "a cleared hint is not used");
    });
}
