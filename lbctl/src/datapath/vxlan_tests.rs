//! Packet-level tests of the VTEP programs through `BPF_PROG_TEST_RUN` (aya's `test_run`),
//! with crafted frames, in a throwaway namespace ([`crate::harness::testbed`]). Root needed
//! (CI runs as root).
use aya::{
    maps::{HashMap as AyaHashMap, MapData, PerCpuArray},
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use lb_common::vxlan::{
    FdbEntry, MacKey, VxStats, VX_DEC_PROG, VX_ENC_PROG, VX_FDB_MAP, VX_FWD_PROG, VX_STATS_MAP,
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

/// Runs the XDP program once on `frame`; returns (return value, output frame).
fn run_xdp(prog: &Xdp, frame: &[u8]) -> (u32, Vec<u8>) {
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

/// Runs the TC program once on `frame`; returns (return value, output frame).
fn run_tc(prog: &SchedClassifier, frame: &[u8]) -> (u32, Vec<u8>) {
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
        f(&mut ebpf);
        Ok(())
    })
    .expect("VTEP in the test namespace");
}

fn dec(ebpf: &Ebpf) -> &Xdp {
    ebpf.program(VX_DEC_PROG).unwrap().try_into().unwrap()
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
        let (rc, out) = run_tc(fwd(ebpf), &ip);
        assert_eq!((rc, out), (TC_ACT_UNSPEC, ip.clone()));
        let arp = inner_arp(MAC_ENDPOINT);
        let (rc, out) = run_tc(fwd(ebpf), &arp);
        assert_eq!((rc, out), (TC_ACT_UNSPEC, arp.clone()));
        assert_eq!(stats(ebpf), VxStats::default());
        // Once MAC_FAR is learned behind A: encapsulated right at the endpoint's port.
        let from_far = inner_frame(MAC_ENDPOINT, MAC_FAR, 10);
        run_xdp(dec(ebpf), &vxlan_frame(&Outer::default(), &from_far));
        let (rc, out) = run_tc(fwd(ebpf), &ip);
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
        let (rc, out) = run_xdp(dec(ebpf), &vxlan_frame(&Outer::default(), &inner));
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
        let (rc, out) = run_xdp(dec(ebpf), &vxlan_frame(&Outer::default(), &arp));
        assert_eq!((rc, out), (XDP_REDIRECT, arp.clone()));
        let other = inner_frame([0x02, 9, 9, 9, 9, 9], MAC_FAR, 1400);
        let (rc, out) = run_xdp(dec(ebpf), &vxlan_frame(&Outer::default(), &other));
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
        let (rc, _) = run_xdp(dec(ebpf), &vxlan_frame(&moved, &inner));
        assert_eq!(rc, XDP_REDIRECT);
        assert_eq!(fdb(ebpf, MAC_FAR).unwrap().vtep, REMOTE_B.octets());
        assert_eq!(stats(ebpf).learn_new, 2);
    });
}

/// Reads one counter.
type Counter = fn(&VxStats) -> u64;

#[test]
fn decap_passes_everything_else_unchanged_and_counts_it() {
    with_vtep(|ebpf| {
        let inner = inner_frame(MAC_ENDPOINT, MAC_FAR, 64);
        let valid = vxlan_frame(&Outer::default(), &inner);
        let field = |f: fn(&VxStats) -> u64| f;
        let mut cases: Vec<(String, Vec<u8>, Counter)> = vec![
            (
                "wrong VNI".into(),
                vxlan_frame(
                    &Outer {
                        vni: 13,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_vni),
            ),
            (
                "wrong port".into(),
                vxlan_frame(
                    &Outer {
                        dport: 8472,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_port),
            ),
            (
                "other destination".into(),
                vxlan_frame(
                    &Outer {
                        dst: Ipv4Addr::new(10, 200, 0, 77),
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_not_local),
            ),
            (
                "IP options".into(),
                vxlan_frame(
                    &Outer {
                        options: vec![0x01, 0x01, 0x01, 0x00],
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_ip_opts),
            ),
            (
                "fragment (MF)".into(),
                vxlan_frame(
                    &Outer {
                        frag: 0x2000,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_frag),
            ),
            (
                "fragment (offset)".into(),
                vxlan_frame(
                    &Outer {
                        frag: 0x0010,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_frag),
            ),
            (
                "VLAN-tagged outer frame".into(),
                vxlan_frame(
                    &Outer {
                        vlan: true,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_not_ip),
            ),
            ("IPv6".into(), ipv6_frame(&inner), field(|s| s.pass_not_ip)),
            (
                "TCP, not UDP".into(),
                vxlan_frame(
                    &Outer {
                        proto: 6,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_not_udp),
            ),
            (
                "I flag clear".into(),
                vxlan_frame(
                    &Outer {
                        flags: 0,
                        ..Outer::default()
                    },
                    &inner,
                ),
                field(|s| s.pass_flags),
            ),
        ];
        // Bad IPv4 header: version 6 in an IPv4 ethertype, IHL 4.
        let mut v6 = valid.clone();
        v6[14] = 0x65;
        cases.push(("IP version 6".into(), v6, field(|s| s.pass_bad_ip)));
        let mut ihl4 = valid.clone();
        ihl4[14] = 0x44;
        cases.push(("IHL 4".into(), ihl4, field(|s| s.pass_bad_ip)));
        // IP total length beyond the frame.
        let mut long = valid.clone();
        let claimed = (long.len() - 14 + 1) as u16;
        long[16..18].copy_from_slice(&claimed.to_be_bytes());
        cases.push((
            "IP total length > frame".into(),
            long,
            field(|s| s.pass_trunc),
        ));
        // Truncated at (and one byte short of) every header boundary. XDP test runs need at
        // least the 14 bytes of an Ethernet header.
        for cut in [14, 33, 34, 41, 42, 49, 50, 63] {
            cases.push((
                format!("truncated to {cut} bytes"),
                valid[..cut].to_vec(),
                field(|s| s.pass_trunc),
            ));
        }
        for (name, frame, counter) in cases {
            let before = stats(ebpf);
            let (rc, out) = run_xdp(dec(ebpf), &frame);
            let after = stats(ebpf);
            assert_eq!(rc, XDP_PASS, "{name}: not passed");
            assert_eq!(out, frame, "{name}: frame changed");
            assert_eq!(counter(&after), counter(&before) + 1, "{name}: not counted");
            // Exactly one counter moved.
            let total = |s: &VxStats| {
                s.pass_not_ip
                    + s.pass_trunc
                    + s.pass_bad_ip
                    + s.pass_ip_opts
                    + s.pass_not_local
                    + s.pass_not_udp
                    + s.pass_frag
                    + s.pass_port
                    + s.pass_flags
                    + s.pass_vni
                    + s.dec_no_dev
                    + s.dec_bridge
                    + s.dec_fast
            };
            assert_eq!(total(&after), total(&before) + 1, "{name}: {after:?}");
        }
        assert_eq!(fdb(ebpf, MAC_FAR), None, "nothing passed may be learned");
    });
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
        let (rc, out) = run_tc(enc(ebpf), &arp);
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
        let (rc, out) = run_tc(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        let sport = check_outer(&out, &ip, REMOTE_B, MAC_REMOTE_B);
        // The same flow keeps its source port.
        let (_, again) = run_tc(enc(ebpf), &ip);
        assert_eq!(check_outer(&again, &ip, REMOTE_B, MAC_REMOTE_B), sport);
        assert_eq!(stats(ebpf).enc_flood, 3);

        // Learn MAC_FAR behind A by decapsulating a frame from it: now known unicast to A.
        let from_far = inner_frame(MAC_ENDPOINT, MAC_FAR, 10);
        let (rc, _) = run_xdp(dec(ebpf), &vxlan_frame(&Outer::default(), &from_far));
        assert_eq!(rc, XDP_REDIRECT);
        let (rc, out) = run_tc(enc(ebpf), &ip);
        assert_eq!(rc, TC_ACT_REDIRECT);
        check_outer(&out, &ip, REMOTE_A, MAC_REMOTE_A);
        let s = stats(ebpf);
        assert_eq!((s.enc_unicast, s.enc_flood), (1, 3), "{s:?}");
        assert_eq!(s.enc_copies, 2 + 2 + 2 + 1);
        assert_eq!(s.enc_bytes, (arp.len() + 3 * ip.len()) as u64);
        assert_eq!(s.enc_drop_fib + s.enc_drop_err + s.enc_no_neigh, 0, "{s:?}");
    });
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
        run_xdp(dec(&ebpf), &vxlan_frame(&Outer::default(), &from_far));
        std::thread::sleep(Duration::from_millis(30)); // > one jiffy of the coarse clock
                                                       // Ageing 0: the learned entry is stale at once, so the frame is flooded.
        let ip = inner_frame(MAC_FAR, MAC_ENDPOINT, 20);
        let (rc, out) = run_tc(enc(&ebpf), &ip);
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
        let (rc, _) = run_tc(enc(&ebpf), &inner_arp(MAC_ENDPOINT));
        assert_eq!(rc, TC_ACT_SHOT);
        assert_eq!(stats(&ebpf).enc_drop_no_remote, 1);
        Ok(())
    })
    .expect("no remote");
}
