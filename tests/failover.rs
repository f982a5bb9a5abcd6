//! The scenario's checkpoint 2 in the lab: bal1 is VRRP master and serves the VIP; taking
//! the bridge vswout1 down makes bal2 master and user2 still gets pages (from serv3
//! through the VXLAN too); bal1 takes the VIP back when vswout1 returns. Also a graceful
//! stop of bal1's agent (priority 0) hands the VIP over.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// GET / on the VIP with a 1 s budget; the page's "servidor" and "direccion" values.
fn vip_page() -> Option<(String, String)> {
    let addr: SocketAddr = "172.16.1.254:8000".parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let field = |key: &str| {
        let i = out.find(key)? + key.len();
        Some(out[i..].split('<').next()?.trim().to_string())
    };
    Some((field("Esto es el servidor ")?, field("tiene direccion: ")?))
}

/// Runs a 50 ms client loop from `node` until `stop` (a file) exists; returns
/// (requests, failures, longest outage).
fn client_loop(
    lab: String,
    node: &'static str,
    stop: std::path::PathBuf,
) -> std::thread::JoinHandle<(u32, u32, Duration)> {
    std::thread::spawn(move || {
        in_node(&lab, node, move || {
            let (mut n, mut fails) = (0, 0);
            let mut last_ok = Instant::now();
            let mut worst = Duration::ZERO;
            let t = Instant::now();
            while !stop.exists() && t.elapsed() < Duration::from_secs(60) {
                n += 1;
                if vip_page().is_some() {
                    worst = worst.max(last_ok.elapsed());
                    last_ok = Instant::now();
                } else {
                    fails += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (n, fails, worst)
        })
    })
}

#[test]
fn checkpoint2_vswout1_down_makes_bal2_master() {
    require_root();
    let lab = Lab::up(None);
    let l = lab.name.clone();
    assert_eq!(lab.vrrp_state("bal1"), "MASTER");
    assert_eq!(lab.vrrp_state("bal2"), "BACKUP");
    // Exactly one holder of the VIP, and it is bal1.
    let holds = |n: &str| {
        let o = lab.exec(n, &["ip", "-4", "-o", "addr", "show"]);
        String::from_utf8_lossy(&o.stdout).contains("172.16.1.254/")
    };
    assert!(holds("bal1") && !holds("bal2"));
    let (_, via) = in_node(&l, "user2", vip_page).expect("VIP answers user2");
    assert_eq!(via, "10.0.0.250");

    // The BPF observer on vm1's port towards bal1 counts exactly the adverts bal1's agent
    // says it sent (read together; one advert may fall between the two reads).
    std::thread::sleep(Duration::from_millis(2500));
    let st = lab.status();
    let sent = st["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["node"] == "bal1")
        .unwrap()["vrrp"]["adverts_sent"]
        .as_u64()
        .unwrap();
    let seen = st["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["node"] == "vm1" && c["iface"] == "bal1-eth0")
        .map(|c| {
            c["vrrp_by_vrid"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v[0] == 12)
                .map(|v| v[1].as_u64().unwrap())
                .unwrap_or(0)
        })
        .unwrap_or(0);
    assert!(sent >= 2, "bal1 sent {sent} adverts");
    assert!(
        seen.abs_diff(sent) <= 1,
        "agent sent {sent} adverts, BPF saw {seen}"
    );
    let bad = st["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["vrrp_bad"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(bad, 0, "malformed VRRP seen by the observer");

    let stop = std::env::temp_dir().join(format!("lbctl-cp2-{}", std::process::id()));
    let _ = std::fs::remove_file(&stop);
    let client = client_loop(l.clone(), "user2", stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    lab.run(&["bridge", "down", "vswout1", "--no-wait"]);
    // bal2 takes over (it stops hearing bal1's adverts: 3 x 1 s + skew).
    let took = lab.wait_master(
        "bal2",
        Instant::now(),
        Duration::from_secs(10),
        "bal2 never became master",
    );
    eprintln!(
        "bal2 master {:.1} s after vswout1 went down",
        took.as_secs_f32()
    );
    assert!(holds("bal2"));
    // user2 gets pages through bal2, which now only reaches serv3 (via the VXLAN? no: the
    // tunnel's underlay is vswout1 on vm1, which is down; bal2 serves from its own half).
    let t = Instant::now();
    let mut served = Vec::new();
    while served.len() < 6 && t.elapsed() < Duration::from_secs(20) {
        if let Some(p) = in_node(&l, "user2", vip_page) {
            served.push(p);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        served.len() >= 6,
        "user2 got {} pages after failover",
        served.len()
    );
    let last: Vec<&(String, String)> = served.iter().rev().take(3).collect();
    assert!(
        last.iter().all(|(_, via)| via == "10.0.0.251"),
        "{served:?}"
    );
    // vswout1 back: bal1 preempts and takes the VIP back.
    lab.run(&["bridge", "up", "vswout1"]);
    let t = Instant::now();
    while lab.vrrp_state("bal1") != "MASTER" || lab.vrrp_state("bal2") != "BACKUP" {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "bal1 did not take the VIP back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    loop {
        let p = in_node(&l, "user2", vip_page);
        if let Some((_, via)) = &p {
            if via == "10.0.0.250" {
                break;
            }
        }
        if t.elapsed() > Duration::from_secs(10) {
            let neigh = lab.exec("user2", &["ip", "neigh"]);
            panic!(
                "pages never came back through bal1: last {p:?}; user2 neighbours: {}; bal2 holds VIP: {}; status: {:#}",
                String::from_utf8_lossy(&neigh.stdout),
                holds("bal2"),
                lab.status()["balancers"]
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(holds("bal1") && !holds("bal2"));
    std::fs::write(&stop, b"").unwrap();
    let (n, fails, worst) = client.join().unwrap();
    let _ = std::fs::remove_file(&stop);
    eprintln!(
        "client loop: {n} requests, {fails} failed, longest outage {:.2} s",
        worst.as_secs_f32()
    );
    assert!(n > 20);
}

#[test]
fn graceful_agent_stop_hands_the_vip_over() {
    require_root();
    let lab = Lab::up(None);
    let l = lab.name.clone();
    let st = lab.status();
    let pid = st["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["node"] == "bal1" && d["daemon"] == "agent")
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    let stop = std::env::temp_dir().join(format!("lbctl-gs-{}", std::process::id()));
    let _ = std::fs::remove_file(&stop);
    let client = client_loop(l.clone(), "user1", stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    // Priority 0: bal2 takes over after Skew_Time, well before Master_Down_Interval.
    let took = lab.wait_master(
        "bal2",
        t,
        Duration::from_secs(3),
        "bal2 did not take over after a graceful stop",
    );
    eprintln!(
        "bal2 master {:.2} s after bal1's agent got SIGTERM",
        took.as_secs_f32()
    );
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&stop, b"").unwrap();
    let (n, fails, worst) = client.join().unwrap();
    let _ = std::fs::remove_file(&stop);
    eprintln!(
        "client loop: {n} requests, {fails} failed, longest outage {:.2} s",
        worst.as_secs_f32()
    );
    let (_, via) = in_node(&l, "user1", vip_page).expect("VIP answers after the handover");
    assert_eq!(via, "10.0.0.251");
    assert!(
        worst < Duration::from_secs(2),
        "outage {worst:?} after a graceful stop"
    );
}
