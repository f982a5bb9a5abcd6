//! Lab tests of the VXLAN data paths: lbctl's BPF VTEP on both hosts, and mixed with the
//! kernel's vxlan device (ours on vm1 and the kernel on vm2, then the reverse); then four
//! hosts on the kernel's device and four hosts mixed (`check_four_hosts`). Each two-host test
//! brings one lab up (unique name, torn down by the guard even on failure) and checks the
//! whole internal reachability matrix, a full-MTU frame, round robin over all three servers
//! through bal1, that the tunnel counters account for a known burst of traffic, and that
//! `down` removes the VTEP's pins. The per-packet behaviour of the programs is tested through
//! BPF_PROG_TEST_RUN in `lbctl/src/datapath/vxlan_tests.rs`.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;

const INTERNAL: [(&str, &str); 5] = [
    ("serv1", "10.0.0.1"),
    ("serv2", "10.0.0.2"),
    ("serv3", "10.0.0.3"),
    ("bal1", "10.0.0.250"),
    ("bal2", "10.0.0.251"),
];

/// host -> (mode, counters) from `status --json`.
fn vxlan_counters(st: &Value) -> HashMap<String, (String, HashMap<String, u64>)> {
    st["vxlan"]
        .as_array()
        .expect("status has vxlan")
        .iter()
        .map(|x| {
            let counters = x["counters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
                .collect();
            (
                x["host"].as_str().unwrap().to_string(),
                (x["mode"].as_str().unwrap().to_string(), counters),
            )
        })
        .collect()
}

fn delta(
    before: &HashMap<String, (String, HashMap<String, u64>)>,
    after: &HashMap<String, (String, HashMap<String, u64>)>,
    host: &str,
    names: &[&str],
) -> u64 {
    names
        .iter()
        .map(|n| {
            after[host].1.get(*n).copied().unwrap_or(0)
                - before[host].1.get(*n).copied().unwrap_or(0)
        })
        .sum()
}

fn server_of(page: &str) -> Option<String> {
    let i = page.find("Esto es el servidor ")? + "Esto es el servidor ".len();
    Some(
        page[i..]
            .split(|c: char| c == '<' || c.is_whitespace())
            .next()?
            .to_string(),
    )
}

/// `needed_headroom` of interface `ifname` in namespace `ns`, from a link dump's raw
/// `IFLA_HEADROOM` attribute (None: no such interface, or the kernel does not report it).
async fn headroom_of(ns: &str, ifname: &str) -> Option<u16> {
    use lbctl::topo::{netns, nl};
    let h = netns::netlink(ns).await.expect("netlink handle");
    let links = nl::dump_links(&h).await.expect("link dump");
    links
        .iter()
        .find(|m| nl::link_name(m) == Some(ifname))
        .and_then(lbctl::datapath::vxlan::headroom::link_headroom)
}

/// Every local endpoint of every tunnel host has room for the 50 bytes of outer headers,
/// on both ends of its veth: the bridge's port (where `lb_vxfwd` encapsulates) and its own
/// interface (whose stack allocates the frames). The kernel's vxlan device gives that to
/// its bridge's ports; the BPF VTEP's headroom port does the same.
fn assert_endpoints_have_headroom(lab: &Lab, config: &str) {
    let mut cfg = lbctl::config::Config::load(&repo_file(config)).expect("config");
    cfg.lab.name = lab.name.clone();
    let plan = lbctl::topo::plan::Plan::new(&cfg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut checked = 0;
    for x in &plan.vxlans {
        for v in plan
            .veths
            .iter()
            .filter(|v| v.b.node == x.node && v.b.bridge.as_deref() == Some(x.bridge.as_str()))
        {
            for end in [&v.a, &v.b] {
                let room = rt.block_on(headroom_of(&plan.netns(&end.node), &end.ifname));
                assert!(
                    room.is_some_and(|r| r >= 50),
                    "{}/{} ({} endpoint on {}): needed_headroom {room:?}, want >= 50",
                    end.node,
                    end.ifname,
                    x.node,
                    x.bridge
                );
                checked += 1;
            }
        }
    }
    // Three endpoints on vm1's bridge, two on vm2's: both ends of each.
    assert_eq!(checked, 10, "endpoints checked");
}

fn check_lab(config: &str, vm1_mode: &str, vm2_mode: &str, decap: &str) {
    require_root();
    let lab = Lab::up(Some(config));
    assert_endpoints_have_headroom(&lab, config);
    let st = lab.status();
    let c0 = vxlan_counters(&st);
    assert_eq!(c0["vm1"].0, vm1_mode, "{:#}", st["vxlan"]);
    assert_eq!(c0["vm2"].0, vm2_mode, "{:#}", st["vxlan"]);

    // The whole internal matrix: every internal node reaches every internal address.
    for (from, _) in INTERNAL {
        for (to_node, to) in INTERNAL {
            if from != to_node {
                assert!(
                    lab.reaches(from, to, 3),
                    "{from} cannot reach {to_node} ({to})"
                );
            }
        }
    }
    // No silent MTU drop: a full 1450-byte frame crosses the tunnel both ways.
    for (from, to) in [("bal1", "10.0.0.3"), ("serv3", "10.0.0.1")] {
        let o = lab.exec(
            from,
            &["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1422", to],
        );
        assert!(
            o.status.success(),
            "1450-byte frame {from} -> {to}: {}",
            text(&o)
        );
    }

    // Round robin over all three servers through bal1 (from user1), each page showing
    // bal1's internal address: serv3's pages crossed the tunnel.
    let mut seen = Vec::new();
    for _ in 0..6 {
        let o = lab.exec(
            "user1",
            &["curl", "-s", "-m", "5", "http://172.16.1.250:8000/"],
        );
        let page = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(page.contains("direccion: 10.0.0.250"), "{}", text(&o));
        seen.push(server_of(&page).unwrap_or_else(|| panic!("no server in {page}")));
    }
    for w in seen.windows(3) {
        let mut s = w.to_vec();
        s.sort();
        assert_eq!(s, ["serv1", "serv2", "serv3"], "not round robin: {seen:?}");
    }

    // The counters account for a known burst: 200 pings bal1 -> serv3 (requests from vm1 to
    // vm2, replies back), then 200 serv3 -> serv1.
    let before = vxlan_counters(&lab.status());
    let started = std::time::Instant::now();
    for (from, to) in [("bal1", "10.0.0.3"), ("serv3", "10.0.0.1")] {
        let o = lab.exec(
            from,
            &["ping", "-c", "200", "-i", "0.002", "-W", "2", "-q", to],
        );
        assert!(o.status.success(), "{from} -> {to}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(" 0% packet loss"),
            "{}",
            text(&o)
        );
    }
    // At most one frame per VX_PORT_TTL_NS goes through the bridge to renew the port hint
    // (a few more around the first frames); the others leave straight out.
    let renewals = started.elapsed().as_nanos() as u64 / lb_common::vxlan::VX_PORT_TTL_NS + 20;
    let st = lab.status();
    let after = vxlan_counters(&st);
    for (host, mode) in [("vm1", vm1_mode), ("vm2", vm2_mode)] {
        if mode == "ebpf" {
            // 400 frames each way through this VTEP (plus whatever else ran meanwhile).
            let enc = delta(&before, &after, host, &["enc_copies"]);
            let dec = delta(&before, &after, host, &["dec_bridge", "dec_fast"]);
            assert!(enc >= 400, "{host}: {enc} frames encapsulated for 400 sent");
            assert!(
                dec >= 400,
                "{host}: {dec} frames decapsulated for 400 received"
            );
            // Frames for a local endpoint's MAC take the decap fast path, and frames from a
            // local endpoint to a learned remote MAC the encap fast path (lb_vxfwd).
            let fast = delta(&before, &after, host, &["dec_fast"]);
            assert!(fast >= 400, "{host}: only {fast} frames fast-forwarded");
            let fast_tx = delta(&before, &after, host, &["enc_fast"]);
            assert!(
                fast_tx >= 350,
                "{host}: only {fast_tx} frames encapsulated at the port"
            );
            // Known unicast leaves straight out of the underlay port the bridge chose for
            // the remote VTEP (lb_vxport), but for the hint's renewals through the bridge.
            let direct = delta(&before, &after, host, &["enc_direct"]);
            assert!(
                direct + renewals >= 400,
                "{host}: only {direct} of 400 frames sent straight out ({renewals} renewals allowed)"
            );
            for bad in [
                "enc_drop_fib",
                "enc_drop_err",
                "enc_drop_no_remote",
                "dec_no_dev",
            ] {
                assert_eq!(delta(&before, &after, host, &[bad]), 0, "{host}: {bad}");
            }
            // The far side's MACs were learned behind the other VTEP.
            let fdb = st["vxlan"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["host"] == host)
                .unwrap()["fdb"]
                .as_array()
                .unwrap()
                .clone();
            let other = if host == "vm1" {
                "172.16.1.151"
            } else {
                "172.16.1.150"
            };
            assert!(
                !fdb.is_empty() && fdb.iter().all(|e| e["vtep"] == other),
                "{host} FDB: {fdb:?}"
            );
        } else {
            let tx = delta(&before, &after, host, &["tx_packets"]);
            let rx = delta(&before, &after, host, &["rx_packets"]);
            assert!(
                tx >= 400 && rx >= 400,
                "{host} vxlan device: tx {tx} rx {rx}"
            );
        }
    }
    let out = lab.run(&["status"]);
    assert!(
        out.contains("VXLAN vm1") && out.contains("VXLAN vm2"),
        "{out}"
    );
    // An ebpf host's status names its headroom port and the room its endpoints got.
    for (host, mode) in [("vm1", vm1_mode), ("vm2", vm2_mode)] {
        let x = st["vxlan"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["host"] == host)
            .unwrap();
        if mode == "ebpf" {
            assert_eq!(x["decap"], decap, "{x:#}");
            assert_eq!(x["headroom_port"], "vxlan0h", "{x:#}");
            assert!(x["headroom"].as_u64() >= Some(50), "{x:#}");
            assert!(out.contains("headroom port vxlan0h"), "{out}");
        } else {
            assert!(x["headroom_port"].is_null(), "{x:#}");
        }
    }

    // `down` removes the VTEP with everything else.
    let pins = std::path::Path::new("/sys/fs/bpf/lbctl").join(&lab.name);
    lbctl_ok(&["down", "--lab", &lab.name]);
    assert!(!pins.exists(), "{} left behind", pins.display());
    assert!(namespaces_of(&lab.name).is_empty());
}

#[test]
fn ebpf_data_path_on_both_hosts() {
    check_lab("tests/configs/ebpf.toml", "ebpf", "ebpf", "tc");
}

#[test]
fn mixed_ours_on_vm1_kernel_on_vm2() {
    check_lab("tests/configs/mixed-a.toml", "ebpf", "kernel", "xdp");
}

#[test]
fn mixed_kernel_on_vm1_ours_on_vm2() {
    check_lab("tests/configs/mixed-b.toml", "kernel", "ebpf", "tc");
}

/// The internal nodes of `tests/configs/big*.toml`: (node, host, address).
const BIG_INTERNAL: [(&str, &str, &str); 10] = [
    ("bal1", "vm1", "10.0.0.250"),
    ("bal2", "vm2", "10.0.0.251"),
    ("bal3", "vm3", "10.0.0.252"),
    ("bal4", "vm4", "10.0.0.253"),
    ("serv1", "vm1", "10.0.0.1"),
    ("serv2", "vm1", "10.0.0.2"),
    ("serv3", "vm2", "10.0.0.3"),
    ("serv4", "vm3", "10.0.0.4"),
    ("serv5", "vm4", "10.0.0.5"),
    ("serv6", "vm4", "10.0.0.6"),
];

const BIG_VTEPS: [(&str, &str); 4] = [
    ("vm1", "172.16.1.150"),
    ("vm2", "172.16.1.151"),
    ("vm3", "172.16.1.152"),
    ("vm4", "172.16.1.153"),
];

/// Frames a host's tunnel sent and received between two readings, in its mode.
fn tunnel_tx_rx(
    before: &HashMap<String, (String, HashMap<String, u64>)>,
    after: &HashMap<String, (String, HashMap<String, u64>)>,
    host: &str,
) -> (u64, u64) {
    if after[host].0 == "ebpf" {
        (
            delta(before, after, host, &["enc_copies"]),
            delta(before, after, host, &["dec_bridge", "dec_fast"]),
        )
    } else {
        (
            delta(before, after, host, &["tx_packets"]),
            delta(before, after, host, &["rx_packets"]),
        )
    }
}

/// A four-host lab (`tests/configs/big*.toml`) with the given data path per host: each
/// kernel device floods to the three other hosts, every internal node reaches every other
/// (the first ping of each pair needs its ARP broadcast replicated to the right host), bal1
/// spreads round robin over all six servers on four hosts, and each host's tunnel counters
/// account for a burst it sends to the three others and the bursts it receives.
fn check_four_hosts(config: &str, modes: [&str; 4]) {
    require_root();
    let lab = Lab::up(Some(config));
    let c0 = vxlan_counters(&lab.status());
    for ((host, own), mode) in BIG_VTEPS.iter().zip(modes) {
        assert_eq!(c0[*host].0, mode, "{host}");
        if mode != "kernel" {
            continue;
        }
        // Head-end replication: the all-zeros entry lists the three other VTEPs.
        let o = lab.exec(host, &["bridge", "fdb", "show", "dev", "vxlan0"]);
        let fdb = String::from_utf8_lossy(&o.stdout).to_string();
        let mut flood: Vec<&str> = fdb
            .lines()
            .filter(|l| l.starts_with("00:00:00:00:00:00 dst "))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        flood.sort();
        let want: Vec<&str> = BIG_VTEPS
            .iter()
            .map(|(_, a)| *a)
            .filter(|a| a != own)
            .collect();
        assert_eq!(flood, want, "{host} vxlan0 FDB:\n{}", text(&o));
    }

    for (from, _, _) in BIG_INTERNAL {
        for (to_node, _, to) in BIG_INTERNAL {
            if from != to_node {
                assert!(
                    lab.reaches(from, to, 3),
                    "{from} cannot reach {to_node} ({to})"
                );
            }
        }
    }

    let mut seen = Vec::new();
    for _ in 0..12 {
        let o = lab.exec(
            "user1",
            &["curl", "-s", "-m", "5", "http://172.16.1.250:8000/"],
        );
        let page = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(page.contains("direccion: 10.0.0.250"), "{}", text(&o));
        seen.push(server_of(&page).unwrap_or_else(|| panic!("no server in {page}")));
    }
    for w in seen.windows(6) {
        let mut s = w.to_vec();
        s.sort();
        assert_eq!(
            s,
            ["serv1", "serv2", "serv3", "serv4", "serv5", "serv6"],
            "not round robin: {seen:?}"
        );
    }

    // 100 pings from vm1's serv1 to a server on each other host, and from vm4's serv5 to
    // each other host: every host sends and receives at least 100 frames each way.
    let before = vxlan_counters(&lab.status());
    for (from, tos) in [
        ("serv1", ["10.0.0.3", "10.0.0.4", "10.0.0.5"]),
        ("serv5", ["10.0.0.1", "10.0.0.3", "10.0.0.4"]),
    ] {
        for to in tos {
            let o = lab.exec(
                from,
                &["ping", "-c", "100", "-i", "0.002", "-W", "2", "-q", to],
            );
            assert!(
                String::from_utf8_lossy(&o.stdout).contains(" 0% packet loss"),
                "{from} -> {to}: {}",
                text(&o)
            );
        }
    }
    let st = lab.status();
    let after = vxlan_counters(&st);
    for (host, (tx_min, rx_min)) in [
        ("vm1", (300, 300)),
        ("vm2", (200, 200)),
        ("vm3", (200, 200)),
        ("vm4", (300, 300)),
    ] {
        let (tx, rx) = tunnel_tx_rx(&before, &after, host);
        assert!(
            tx >= tx_min && rx >= rx_min,
            "{host} ({}): tx {tx} rx {rx}, expected at least {tx_min}/{rx_min}",
            after[host].0
        );
    }
    let out = lab.run(&["status"]);
    for (host, _) in BIG_VTEPS {
        assert!(out.contains(&format!("VXLAN {host} ")), "{out}");
    }
}

#[test]
fn four_hosts_on_the_kernel_data_path() {
    check_four_hosts("tests/configs/big-kernel.toml", ["kernel"; 4]);
}

#[test]
fn four_hosts_mixed_data_paths() {
    check_four_hosts(
        "tests/configs/big-mixed.toml",
        ["ebpf", "kernel", "ebpf", "kernel"],
    );
}
