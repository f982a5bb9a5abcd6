//! Lab tests: `lbctl up` builds the scenario in network namespaces and the kernel agrees
//! with theory. They need root (CI runs as root); every lab has a unique name and is
//! torn down by a guard even when the test fails.

mod common;
use common::*;
use std::time::{Duration, Instant};

const INTERSWITCH: [(&str, &str); 5] = [
    ("swout1", "swout2"),
    ("vswout1", "swout1"),
    ("vswout1", "swout2"),
    ("vswout2", "swout1"),
    ("vswout2", "swout2"),
];

/// The default scenario end to end: addresses, reachability matrix, servers through
/// the VXLAN, the tree against theory and against the hand-derived expectation, BPF
/// counters, every single inter-switch link failure, a root bridge failure, and `down`.
#[test]
fn default_scenario() {
    require_root();
    let lab = Lab::up(None);
    let st = lab.status();

    // Tree: swout2 root; vswout1 and vswout2 block their port towards swout1 (both have
    // cost 100 to the root either way; swout1 (8192) beats them as designated bridge).
    assert_eq!(lan_roots(&st, "ext"), vec!["swout2"]);
    assert_eq!(
        blocked_ports(&st),
        vec!["vswout1/to-swout1", "vswout2/to-swout1"],
        "{st:#}"
    );
    assert_eq!(
        port_state(&st, "vswout1", "to-swout2"),
        ("Forwarding".into(), "Root".into())
    );
    assert_eq!(
        port_state(&st, "swout1", "to-swout2"),
        ("Forwarding".into(), "Root".into())
    );
    assert_eq!(
        mismatches(&st),
        0,
        "kernel tree differs from theory: {st:#}"
    );

    // Reachability: users reach each other, the hosts and the balancers' external legs.
    for from in ["user1", "user2"] {
        for to in [
            "172.16.1.100",
            "172.16.1.101",
            "172.16.1.150",
            "172.16.1.151",
            "172.16.1.250",
            "172.16.1.251",
        ] {
            assert!(lab.reaches(from, to, 3), "{from} cannot reach {to}");
        }
        // Nothing on the external side reaches the internal subnet.
        for to in ["10.0.0.1", "10.0.0.3", "10.0.0.250"] {
            assert!(!lab.ping(from, to), "{from} reaches internal {to}");
        }
    }
    assert!(
        !lab.ping("vm1", "10.0.0.1"),
        "host vm1 must not reach the internal LAN"
    );
    // Internal LAN: every internal address reaches every other, serv3 through VXLAN.
    let internal = [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.250",
        "10.0.0.251",
    ];
    for from in ["serv1", "serv3", "bal1", "bal2"] {
        for to in internal {
            assert!(lab.reaches(from, to, 3), "{from} cannot reach {to}");
        }
    }
    // Every server answers its page on port 80 from inside the internal LAN.
    for (bal, ip) in [("bal1", "10.0.0.250"), ("bal2", "10.0.0.251")] {
        for (srv, addr) in [
            ("serv1", "10.0.0.1"),
            ("serv2", "10.0.0.2"),
            ("serv3", "10.0.0.3"),
        ] {
            let o = lab.exec(
                bal,
                &["curl", "-s", "-m", "3", &format!("http://{addr}:80/")],
            );
            let body = String::from_utf8_lossy(&o.stdout);
            assert!(
                body.contains(&format!("Esto es el servidor {srv}")),
                "{bal}->{srv}: {}",
                text(&o)
            );
            assert!(
                body.contains(&format!("direccion: {ip}")),
                "{bal}->{srv}: {body}"
            );
        }
    }
    // MTU: a full 1450-byte frame crosses the tunnel (1422 bytes of ICMP payload + 28).
    let o = lab.exec(
        "bal1",
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1422", "10.0.0.3",
        ],
    );
    assert!(
        o.status.success(),
        "1450-byte packet through VXLAN: {}",
        text(&o)
    );

    // BPF counters: BPDUs are counted on STP ports and keep growing (hello 1 s).
    let before = total_bpdus(&st);
    assert!(before > 0, "no BPDU counted: {st:#}");
    std::thread::sleep(Duration::from_millis(2500));
    let after = total_bpdus(&lab.status());
    assert!(
        after >= before + 4,
        "BPDU counters did not grow: {before} -> {after}"
    );
    // bpftool reads the pinned map with BTF field names.
    let pin = format!("/sys/fs/bpf/lbctl/{}/swout1/OBS_PORT", lab.name);
    let o = std::process::Command::new("bpftool")
        .args(["map", "dump", "pinned", &pin])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && dump.contains("bpdu_config"),
        "bpftool dump: {}",
        text(&o)
    );

    // Each single inter-switch link failure: the tree reconverges to the new theory and
    // user2 still reaches both hosts.
    for (a, b) in INTERSWITCH {
        lab.run(&["link", "down", a, b]);
        let st = lab.status();
        assert_eq!(mismatches(&st), 0, "after {a}-{b} down: {st:#}");
        for to in ["172.16.1.150", "172.16.1.151"] {
            assert!(
                lab.reaches("user2", to, 3),
                "after {a}-{b} down user2 cannot reach {to}"
            );
        }
        lab.run(&["link", "up", a, b]);
        let st = lab.status();
        assert_eq!(mismatches(&st), 0, "after {a}-{b} up: {st:#}");
        assert_eq!(
            blocked_ports(&st),
            vec!["vswout1/to-swout1", "vswout2/to-swout1"]
        );
    }

    // Root bridge failure: swout1 takes over as root; the hosts still reach each other.
    let t = Instant::now();
    lab.run(&["bridge", "down", "swout2"]);
    let st = lab.status();
    assert_eq!(lan_roots(&st, "ext"), vec!["swout1"], "{st:#}");
    assert_eq!(mismatches(&st), 0, "{st:#}");
    assert!(lab.reaches("user1", "172.16.1.151", 3));
    assert!(lab.reaches("vm1", "172.16.1.151", 3));
    eprintln!("root failure handled in {:.1} s", t.elapsed().as_secs_f32());
    lab.run(&["bridge", "up", "swout2"]);
    let st = lab.status();
    assert_eq!(lan_roots(&st, "ext"), vec!["swout2"]);
    assert_eq!(mismatches(&st), 0);

    // down leaves no namespace, process or pin.
    let pids: Vec<u64> = st["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 5, "3 web servers and 2 balancer agents");
    let name = lab.name.clone();
    drop(lab);
    assert!(
        namespaces_of(&name).is_empty(),
        "namespaces left: {:?}",
        namespaces_of(&name)
    );
    assert!(
        !std::path::Path::new(&format!("/sys/fs/bpf/lbctl/{name}")).exists(),
        "pins left"
    );
    assert!(
        !std::path::Path::new(&format!("/run/lbctl/{name}")).exists(),
        "state left"
    );
    for p in pids {
        // Gone, or a zombie waiting for init to reap it (it has exited).
        let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "daemon {p} still running");
    }
    // And down is idempotent.
    lbctl_ok(&["down", "--lab", &name]);
}

/// Two labs side by side (same addresses, different prefixes), one with priorities and
/// costs that move the root and the blocked ports.
#[test]
fn two_labs_side_by_side_and_alternative_tree() {
    require_root();
    let a = Lab::up(Some("tests/configs/alt-stp.toml"));
    let b = Lab::up(None);
    let sa = a.status();
    assert_eq!(lan_roots(&sa, "ext"), vec!["swout1"], "{sa:#}");
    // Root swout1: vswout1 goes direct and blocks towards swout2 (equal root path cost
    // 100 on that segment, swout2's bridge ID 8192 beats 32768); vswout2's direct port
    // costs 1000, so it goes through swout2 (200) and blocks towards swout1.
    assert_eq!(
        blocked_ports(&sa),
        vec!["vswout1/to-swout2", "vswout2/to-swout1"],
        "{sa:#}"
    );
    assert_eq!(
        port_state(&sa, "vswout2", "to-swout2"),
        ("Forwarding".into(), "Root".into())
    );
    assert_eq!(mismatches(&sa), 0, "{sa:#}");
    let sb = b.status();
    assert_eq!(lan_roots(&sb, "ext"), vec!["swout2"]);
    assert_eq!(mismatches(&sb), 0);
    // Both labs use the same addresses, isolated from each other.
    assert!(a.reaches("user1", "172.16.1.151", 3));
    assert!(b.reaches("user1", "172.16.1.151", 3));
    let a_name = a.name.clone();
    drop(a);
    assert!(namespaces_of(&a_name).is_empty());
    // Taking lab a down left lab b intact.
    assert!(b.reaches("user2", "172.16.1.150", 3));
    assert_eq!(namespaces_of(&b.name).len(), 11);
}

/// `down` cleans up after a crashed `lbctl up` and a crashed daemon.
#[test]
fn down_after_crashes() {
    require_root();
    let lab = unique_lab();
    // Whatever happens below, the lab is removed at the end (a second `down` is a no-op).
    let _guard = Lab { name: lab.clone() };
    let mut child = std::process::Command::new(lbctl_bin())
        .args(["up", "--lab", &lab])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it get past building and into the STP wait, then kill it hard.
    let t = Instant::now();
    while namespaces_of(&lab).len() < 11 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...and until it has started at least one daemon (slower on a loaded machine).
    let pid_dir = std::path::PathBuf::from(format!("/run/lbctl/{lab}/pids"));
    while std::fs::read_dir(&pid_dir).map(|d| d.count()).unwrap_or(0) == 0
        && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !namespaces_of(&lab).is_empty(),
        "up was killed before it built anything"
    );
    // Kill one recorded daemon too, as a crash would.
    let pids: Vec<u32> = std::fs::read_dir(format!("/run/lbctl/{lab}/pids"))
        .unwrap()
        .flatten()
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(!pids.is_empty());
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let o = lbctl(&["down", "--lab", &lab]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(namespaces_of(&lab).is_empty());
    assert!(!std::path::Path::new(&format!("/sys/fs/bpf/lbctl/{lab}")).exists());
    std::thread::sleep(Duration::from_millis(200));
    for p in pids {
        let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "daemon {p} survived down");
    }
}

/// A bad config is refused before anything is created.
#[test]
fn bad_config_creates_nothing() {
    require_root();
    let dir = std::env::temp_dir().join(format!("lbctl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo_file("configs/default.toml"))
        .unwrap()
        .replace("name = \"lab\"", "name = \"tbad\"")
        .replace(
            "a = \"swout1\"\nb = \"swout2\"",
            "a = \"swout1\"\nb = \"swout9\"",
        );
    let f = dir.join("bad.toml");
    std::fs::write(&f, text).unwrap();
    let o = lbctl(&["up", "-c", f.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("link[0].b") && err.contains("swout9"),
        "{err}"
    );
    assert!(namespaces_of("tbad").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
