//! VRRP root tests: our instance against Debian's keepalived 2.2.7, and malformed packets.
//!
//! Each test builds its own namespaces `lbt-vrrp-<pid>-<n>-{a,k,s}`: `a` runs our instance
//! (on `va`, 172.16.1.250), `k` runs keepalived (on `vk`, 172.16.1.251), `s` holds a bridge
//! joining them (so cutting one side's link leaves the other side's carrier up). The VIP is
//! 172.16.1.254. Everything is removed by a Drop guard, keepalived is killed by its PID.
//!
//! Our instance runs on a dedicated OS thread that entered `a` and built its own
//! current-thread tokio runtime (never setns on a tokio worker).
//!
//! Needs root and keepalived: without them each test fails under CI (`CI=1`) and prints
//! `skipped: <test>: <why>` otherwise.

mod common;

use common::keepalived;
use common::sh;

use lbctl::vrrp;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use vrrp::codec::{self, Advert, Version, VRRP_GROUP};

const OURS: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 250);
const THEIRS: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 251);
const VIP: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 254);

/// Root and keepalived present. Without them the test fails under CI and is reported as
/// skipped elsewhere (`common::skip`).
fn ready() -> bool {
    if !nix::unistd::geteuid().is_root() {
        common::skip("VRRP tests need root");
        return false;
    }
    if Command::new("keepalived")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip("keepalived is not installed (apt-get install -y keepalived)");
        return false;
    }
    true
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Three namespaces, a bridge, keepalived processes; all removed on drop.
struct Lab {
    a: String,
    k: String,
    s: String,
    dir: tempfile::TempDir,
    keepalived: Option<keepalived::Keepalived>,
}

impl Lab {
    fn new() -> Lab {
        let base = format!(
            "lbt-vrrp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let lab = Lab {
            a: format!("{base}-a"),
            k: format!("{base}-k"),
            s: format!("{base}-s"),
            dir: tempfile::tempdir().expect("tempdir"),
            keepalived: None,
        };
        for ns in [&lab.a, &lab.k, &lab.s] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &lab.s,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
            "nf_call_iptables",
            "0",
        ]);
        for (ns, dev, port, addr) in [
            (&lab.a, "va", "pa", "172.16.1.250/24"),
            (&lab.k, "vk", "pk", "172.16.1.251/24"),
        ] {
            sh(&[
                "ip", "-n", &lab.s, "link", "add", port, "type", "veth", "peer", "name", dev,
                "netns", ns,
            ]);
            sh(&[
                "ip", "-n", &lab.s, "link", "set", port, "master", "br0", "up",
            ]);
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        sh(&["ip", "-n", &lab.s, "link", "set", "br0", "up"]);
        // Our own advert looped back must reach the socket to be counted (a local source
        // address is otherwise a martian); and keepalived's side learns from gratuitous ARP.
        sh(&[
            "ip",
            "netns",
            "exec",
            &lab.a,
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.accept_local=1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &lab.k,
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.arp_accept=1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &lab.k,
            "sysctl",
            "-qw",
            "net.ipv4.conf.vk.arp_accept=1",
        ]);
        lab
    }

    /// Starts keepalived in `k` (priority, version, advert_int as keepalived writes it).
    fn keepalived(&mut self, prio: u8, version: Version, advert: &str) {
        self.keepalived_with(prio, version, advert, "");
    }

    /// Same, with extra lines in the vrrp_instance block.
    fn keepalived_with(&mut self, prio: u8, version: Version, advert: &str, extra: &str) {
        assert!(self.keepalived.is_none());
        let conf = keepalived::conf(
            "vk",
            12,
            prio,
            advert,
            version.number(),
            "172.16.1.254",
            extra,
        );
        self.keepalived = Some(keepalived::Keepalived::start(
            &self.k,
            self.dir.path(),
            &conf,
        ));
    }

    /// SIGTERM (graceful: keepalived sends priority 0 and removes its VIP), then wait.
    fn stop_keepalived(&mut self) {
        if let Some(mut k) = self.keepalived.take() {
            k.stop();
        }
    }

    fn keepalived_log(&self) -> String {
        let l = std::fs::read_to_string(self.dir.path().join("keepalived.log")).unwrap_or_default();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    fn has_vip(&self, ns: &str) -> bool {
        let o = Command::new("ip")
            .args(["-n", ns, "-4", "-o", "addr", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("172.16.1.254/32")
    }

    fn link(&self, ns: &str, dev: &str, up: bool) {
        sh(&[
            "ip",
            "-n",
            ns,
            "link",
            "set",
            dev,
            if up { "up" } else { "down" },
        ]);
    }

    fn cfg(&self, prio: u8, version: Version, advert_int_ms: u32) -> vrrp::VrrpConfig {
        vrrp::VrrpConfig {
            instance: "vi1".into(),
            interface: "va".into(),
            vrid: 12,
            priority: prio,
            version,
            advert_int_ms,
            vips: vec![VIP],
            preempt: true,
            preempt_delay_ms: 0,
            unicast_peers: vec![],
            v3_checksum_pseudo_header: true,
            garp_delay_ms: 5000,
            garp_repeat: 5,
            garp_refresh_ms: 0,
            notify: None,
            auth_pass: None,
            weight_penalty: 60,
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_keepalived();
        for ns in [&self.a, &self.k, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Our instance on its own thread inside namespace `ns`.
struct Ours {
    h: vrrp::VrrpHandle,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Ours {
    fn start(ns: &str, cfg: vrrp::VrrpConfig) -> Ours {
        let f = File::open(format!("/run/netns/{ns}")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                match vrrp::start(cfg).await {
                    Ok((h, task)) => {
                        tx.send(Ok(h)).unwrap();
                        task.await?
                    }
                    Err(e) => {
                        tx.send(Err(e)).unwrap();
                        Ok(())
                    }
                }
            })
        });
        let h = rx
            .recv()
            .expect("runner thread")
            .expect("starting our VRRP instance");
        Ours {
            h,
            thread: Some(thread),
        }
    }

    fn snap(&self) -> vrrp::VrrpSnapshot {
        self.h.snapshot()
    }

    fn state(&self) -> String {
        self.snap().state
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(self.h.shutdown());
            t.join()
                .expect("runner thread panicked")
                .expect("runner failed");
        }
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(self.h.shutdown());
            }
            let _ = t.join();
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `secs` pass; panics with diagnostics.
fn wait(
    lab: &Lab,
    ours: Option<&Ours>,
    what: &str,
    secs: f32,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs_f32(secs) {
        if cond() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "timed out after {secs} s waiting for: {what}\nours: {:?}\nVIP in a: {}, in k: {}\nkeepalived log:\n{}",
        ours.map(|o| o.snap()),
        lab.has_vip(&lab.a),
        lab.has_vip(&lab.k),
        lab.keepalived_log()
    );
}

/// Exactly one side holds the VIP, and it is the expected one, for `secs`.
fn stable(lab: &Lab, ours: &Ours, ours_master: bool, secs: f32) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs_f32(secs) {
        let (a, k) = (lab.has_vip(&lab.a), lab.has_vip(&lab.k));
        assert!(
            a == ours_master && k != ours_master && (ours.state() == "MASTER") == ours_master,
            "expected {} master: VIP in a {a}, in k {k}, ours {:?}\n{}",
            if ours_master { "ours" } else { "keepalived" },
            ours.snap(),
            lab.keepalived_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ours_is_master(lab: &Lab, o: &Ours) -> bool {
    o.state() == "MASTER" && lab.has_vip(&lab.a) && !lab.has_vip(&lab.k)
}

fn theirs_is_master(lab: &Lab, o: &Ours) -> bool {
    o.state() == "BACKUP"
        && o.snap().master == Some(THEIRS)
        && lab.has_vip(&lab.k)
        && !lab.has_vip(&lab.a)
}

/// Ours (150) master, keepalived (100) backup; graceful stop, preemption, link cut at the
/// switch, heal without split brain.
fn ours_master_scenario(version: Version, advert_ms: u32, ka_advert: &str) {
    let mut lab = Lab::new();
    let adv = advert_ms as f32 / 1000.0;
    let down = 3.0 * adv + 1.0; // Master_Down + margin
    lab.keepalived(100, version, ka_advert);
    let mut cfg = lab.cfg(150, version, advert_ms);
    let notes = lab.dir.path().join("notify.log");
    cfg.notify = Some(format!("printf '%s %s\\n' >> {}", notes.display()));
    let mut ours = Ours::start(&lab.a, cfg.clone());
    wait(
        &lab,
        Some(&ours),
        "ours master at startup",
        down + 2.0,
        || ours_is_master(&lab, &ours),
    );
    stable(&lab, &ours, true, (4.0 * adv).max(1.5));
    // keepalived learnt the VIP's new home from our gratuitous ARPs.
    let neigh = Command::new("ip")
        .args(["-n", &lab.k, "neigh", "show", "172.16.1.254"])
        .output()
        .unwrap();
    let link = Command::new("ip")
        .args(["-n", &lab.a, "-o", "link", "show", "va"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout).to_string();
    let our_mac = link
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        String::from_utf8_lossy(&neigh.stdout).contains(&our_mac),
        "gratuitous ARP: keepalived's side maps the VIP to {our_mac}: {}",
        String::from_utf8_lossy(&neigh.stdout)
    );

    // Graceful stop: priority 0, keepalived takes over after its Skew_Time only.
    let t0 = Instant::now();
    ours.stop();
    assert!(!lab.has_vip(&lab.a), "VIP removed on shutdown");
    wait(
        &lab,
        None,
        "keepalived master after our priority 0",
        3.0 * adv,
        || lab.has_vip(&lab.k),
    );
    let took = t0.elapsed();
    eprintln!(
        "v{} {advert_ms} ms: keepalived took over {took:?} after our shutdown began",
        version.number()
    );
    if version == Version::V2 {
        // Master_Down would be 3.6 s: the priority-0 advert was honoured (Skew_Time 0.61 s).
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    let n = std::fs::read_to_string(&notes).unwrap_or_default();
    assert!(
        n.contains("vi1 BACKUP") && n.contains("vi1 MASTER") && n.contains("vi1 INIT"),
        "notify: {n}"
    );

    // Restart: we preempt keepalived's lower priority.
    let mut ours = Ours::start(&lab.a, cfg.clone());
    wait(
        &lab,
        Some(&ours),
        "ours preempts keepalived",
        down + 2.0,
        || ours_is_master(&lab, &ours),
    );
    assert!(
        ours.snap().adverts_received > 0,
        "keepalived's adverts reached us"
    );

    // Cut our link at the switch: we lose carrier (FAULT), keepalived's side stays up.
    lab.link(&lab.s, "pa", false);
    wait(&lab, Some(&ours), "ours FAULT, VIP removed", 2.0, || {
        ours.state() == "FAULT" && !lab.has_vip(&lab.a)
    });
    wait(
        &lab,
        Some(&ours),
        "keepalived master after the cut",
        down + 2.0,
        || lab.has_vip(&lab.k),
    );
    // Heal: exactly one master again (ours, by priority), no split brain.
    lab.link(&lab.s, "pa", true);
    wait(
        &lab,
        Some(&ours),
        "ours master after the heal",
        down + 3.0,
        || ours_is_master(&lab, &ours),
    );
    stable(&lab, &ours, true, (4.0 * adv).max(1.5));
    let s = ours.snap();
    let form = if version == Version::V2 {
        "v2"
    } else {
        "v3_pseudo_header"
    };
    assert!(
        s.checksum_forms.get(form).copied().unwrap_or(0) > 0,
        "{s:?}"
    );
    assert!(
        s.drops.keys().all(|k| k == "tx_error"),
        "nothing dropped from keepalived: {s:?}"
    );
    ours.stop();
    lab.stop_keepalived();
}

/// keepalived (150) master, ours (100) backup; keepalived stops gracefully, restarts and
/// preempts; keepalived's link cut (admin down on its side), heal without split brain.
fn theirs_master_scenario(version: Version, advert_ms: u32, ka_advert: &str) {
    let mut lab = Lab::new();
    let adv = advert_ms as f32 / 1000.0;
    let down = 3.0 * adv + 1.0;
    lab.keepalived(150, version, ka_advert);
    let ours = Ours::start(&lab.a, lab.cfg(100, version, advert_ms));
    wait(
        &lab,
        Some(&ours),
        "keepalived master, ours backup",
        down + 3.0,
        || theirs_is_master(&lab, &ours),
    );
    stable(&lab, &ours, false, (4.0 * adv).max(1.5));
    let s = ours.snap();
    let form = if version == Version::V2 {
        "v2"
    } else {
        "v3_pseudo_header"
    };
    assert!(
        s.checksum_forms.get(form).copied().unwrap_or(0) > 0,
        "{s:?}"
    );
    assert_eq!(s.priority, 100);

    // keepalived stops gracefully: priority 0, we take over after Skew_Time.
    let t0 = Instant::now();
    lab.stop_keepalived();
    wait(
        &lab,
        Some(&ours),
        "ours master after keepalived's priority 0",
        3.0 * adv,
        || ours_is_master(&lab, &ours),
    );
    let took = t0.elapsed();
    eprintln!(
        "v{} {advert_ms} ms: we took over {took:?} after keepalived's SIGTERM",
        version.number()
    );
    if version == Version::V2 {
        // Master_Down would be 3.6 s: keepalived's priority-0 advert was honoured.
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(ours.snap().transitions, 2, "INIT→BACKUP→MASTER");
    }
    // keepalived back: it preempts us.
    lab.keepalived(150, version, ka_advert);
    wait(&lab, Some(&ours), "keepalived preempts", down + 3.0, || {
        theirs_is_master(&lab, &ours)
    });

    // Cut keepalived's link (its side down): we stop hearing it and take over.
    lab.link(&lab.k, "vk", false);
    let took = wait(
        &lab,
        Some(&ours),
        "ours master after keepalived's link cut",
        down + 2.0,
        || ours.state() == "MASTER" && lab.has_vip(&lab.a),
    );
    eprintln!(
        "v{} {advert_ms} ms: we took over {took:?} after keepalived's link went down",
        version.number()
    );
    lab.link(&lab.k, "vk", true);
    wait(
        &lab,
        Some(&ours),
        "keepalived master again after the heal",
        down + 4.0,
        || theirs_is_master(&lab, &ours),
    );
    stable(&lab, &ours, false, (4.0 * adv).max(1.5));
}

#[test]
fn v2_1s_ours_master_keepalived_backup() {
    if ready() {
        ours_master_scenario(Version::V2, 1000, "1");
    }
}

#[test]
fn v2_1s_keepalived_master_ours_backup() {
    if ready() {
        theirs_master_scenario(Version::V2, 1000, "1");
    }
}

#[test]
fn v3_100ms_ours_master_keepalived_backup() {
    if ready() {
        ours_master_scenario(Version::V3, 100, "0.1");
    }
}

#[test]
fn v3_100ms_keepalived_master_ours_backup() {
    if ready() {
        theirs_master_scenario(Version::V3, 100, "0.1");
    }
}

/// v3 at 1 s both ways, plus the health penalty: an unhealthy master (150 − 60 = 90) hands
/// the VIP to keepalived (100) and takes it back when healthy again.
#[test]
fn v3_1s_both_ways_and_health_penalty() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new();
    lab.keepalived(100, Version::V3, "1");
    let ours = Ours::start(&lab.a, lab.cfg(150, Version::V3, 1000));
    wait(&lab, Some(&ours), "ours master", 6.0, || {
        ours_is_master(&lab, &ours)
    });
    stable(&lab, &ours, true, 1.5);
    ours.h.set_healthy(false);
    wait(
        &lab,
        Some(&ours),
        "keepalived master while we are unhealthy",
        6.0,
        || theirs_is_master(&lab, &ours),
    );
    let s = ours.snap();
    assert_eq!((s.priority, s.effective_priority), (150, 90), "{s:?}");
    assert!(
        s.checksum_forms
            .get("v3_pseudo_header")
            .copied()
            .unwrap_or(0)
            > 0,
        "{s:?}"
    );
    ours.h.set_healthy(true);
    wait(
        &lab,
        Some(&ours),
        "ours master again once healthy",
        6.0,
        || ours_is_master(&lab, &ours),
    );
    stable(&lab, &ours, true, 1.5);
    drop(ours);
    lab.stop_keepalived();

    // And the reverse roles at 1 s.
    let mut lab = Lab::new();
    lab.keepalived(150, Version::V3, "1");
    let ours = Ours::start(&lab.a, lab.cfg(100, Version::V3, 1000));
    wait(&lab, Some(&ours), "keepalived master", 7.0, || {
        theirs_is_master(&lab, &ours)
    });
    stable(&lab, &ours, false, 1.5);
    lab.stop_keepalived();
    wait(
        &lab,
        Some(&ours),
        "ours master after keepalived stops",
        2.0,
        || ours_is_master(&lab, &ours),
    );
}

/// A raw socket in namespace `ns`, bound to `dev`, building its own IP headers.
fn injector(ns: &str, dev: &'static str) -> socket2::Socket {
    let f = File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(112)),
        )
        .unwrap();
        s.set_header_included_v4(true).unwrap();
        s.bind_device(Some(dev.as_bytes())).unwrap();
        s
    })
    .join()
    .unwrap()
}

/// Malformed packets from keepalived's namespace (no keepalived there): each one claims
/// priority 200, so accepting it would make us backup; each is dropped and counted under
/// its reason and our state does not move. A final valid one does move it.
#[test]
fn malformed_packets_dropped_and_counted() {
    if !ready() {
        return;
    }
    let lab = Lab::new();
    let ours = Ours::start(&lab.a, lab.cfg(100, Version::V2, 1000));
    wait(&lab, Some(&ours), "ours master alone", 6.0, || {
        ours_is_master(&lab, &ours)
    });
    let transitions = ours.snap().transitions;
    let sock = injector(&lab.k, "vk");
    let to = socket2::SockAddr::from(std::net::SocketAddrV4::new(VRRP_GROUP, 0));

    let good = |version: Version| Advert::new(version, 12, 200, 100, vec![VIP]);
    let enc = |a: &Advert, src: Ipv4Addr| codec::encode(a, src, VRRP_GROUP, true);
    let fix = |m: &mut Vec<u8>| {
        m[6] = 0;
        m[7] = 0;
        let c = lb_common::csum::inet_checksum(&[m]);
        m[6..8].copy_from_slice(&c.to_be_bytes());
    };
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut m = enc(&good(Version::V2), THEIRS);
        f(&mut m);
        fix(&mut m);
        m
    };
    let mut v2_other_vrid = good(Version::V2);
    v2_other_vrid.vrid = 13;
    let mut carp = vec![0x21, 12, 0, 7, 0, 1, 0, 0];
    carp.extend_from_slice(&[0u8; 28]);
    fix(&mut carp);
    let cases: Vec<(&str, Ipv4Addr, u8, Vec<u8>)> = vec![
        ("ttl", THEIRS, 64, enc(&good(Version::V2), THEIRS)),
        ("version", THEIRS, 255, enc(&good(Version::V3), THEIRS)),
        ("version", THEIRS, 255, mutate(&|m| m[0] = 0x41)),
        ("type", THEIRS, 255, mutate(&|m| m[0] = 0x22)),
        ("truncated", THEIRS, 255, mutate(&|m| m[3] = 2)),
        (
            "length",
            THEIRS,
            255,
            mutate(&|m| m.extend_from_slice(&[10, 0, 0, 1])),
        ),
        ("checksum", THEIRS, 255, {
            let mut m = enc(&good(Version::V2), THEIRS);
            m[7] ^= 0x55;
            m
        }),
        ("vrid", THEIRS, 255, enc(&v2_other_vrid, THEIRS)),
        ("interval_mismatch", THEIRS, 255, mutate(&|m| m[5] = 3)),
        (
            "auth",
            THEIRS,
            255,
            enc(&good(Version::V2).with_password("secret"), THEIRS),
        ),
        (
            "addr_count",
            THEIRS,
            255,
            mutate(&|m| {
                m[3] = 0;
                m.drain(8..12);
            }),
        ),
        ("interval_zero", THEIRS, 255, mutate(&|m| m[5] = 0)),
        ("own", OURS, 255, enc(&good(Version::V2), OURS)),
        ("carp", THEIRS, 255, carp),
    ];
    let mut expected = std::collections::BTreeMap::<String, u64>::new();
    for (reason, src, ttl, msg) in cases {
        let pkt = codec::ipv4_packet(src, VRRP_GROUP, ttl, &msg);
        sock.send_to(&pkt, &to).expect("injecting");
        *expected.entry(reason.to_string()).or_default() += 1;
        wait(
            &lab,
            Some(&ours),
            &format!("drop counted as {reason}"),
            2.0,
            || {
                let mut d = ours.snap().drops;
                d.remove("tx_error");
                d == expected
            },
        );
        let s = ours.snap();
        assert_eq!(
            (s.state.as_str(), s.transitions),
            ("MASTER", transitions),
            "{reason}: {s:?}"
        );
        assert_eq!(s.adverts_received, 0, "{reason}");
    }
    // The same path accepts a valid advertisement: priority 200 makes us backup.
    let pkt = codec::ipv4_packet(THEIRS, VRRP_GROUP, 255, &enc(&good(Version::V2), THEIRS));
    sock.send_to(&pkt, &to).unwrap();
    wait(
        &lab,
        Some(&ours),
        "valid higher-priority advert accepted",
        2.0,
        || ours.state() == "BACKUP" && !lab.has_vip(&lab.a),
    );
    let s = ours.snap();
    assert_eq!((s.adverts_received, s.master), (1, Some(THEIRS)), "{s:?}");
    eprintln!("drops: {:?}", s.drops);
}

/// Unicast (VRRPv3, so the pseudo-header checksum is computed over the peer's address):
/// keepalived with unicast_peer, ours with unicast_peers, both directions.
#[test]
fn v3_unicast_peers_both_ways() {
    if !ready() {
        return;
    }
    let uni = "  unicast_src_ip 172.16.1.251\n  unicast_peer {\n    172.16.1.250\n  }";
    let mut lab = Lab::new();
    lab.keepalived_with(100, Version::V3, "1", uni);
    let mut cfg = lab.cfg(150, Version::V3, 1000);
    cfg.unicast_peers = vec![THEIRS];
    let mut ours = Ours::start(&lab.a, cfg.clone());
    wait(&lab, Some(&ours), "ours master (unicast)", 6.0, || {
        ours_is_master(&lab, &ours)
    });
    // keepalived accepts our unicast adverts: it stays backup.
    stable(&lab, &ours, true, 2.5);
    let t0 = Instant::now();
    ours.stop();
    wait(
        &lab,
        None,
        "keepalived master after our unicast priority 0",
        3.0,
        || lab.has_vip(&lab.k),
    );
    assert!(
        t0.elapsed() < Duration::from_millis(3000),
        "{:?}",
        t0.elapsed()
    );
    // Now keepalived (100) is master and unicasts to us: at equal priority (100) a backup
    // does not preempt, whatever the addresses; we accept its adverts and stay backup.
    cfg.priority = 100;
    let ours = Ours::start(&lab.a, cfg);
    wait(
        &lab,
        Some(&ours),
        "keepalived master, ours backup (unicast)",
        6.0,
        || theirs_is_master(&lab, &ours),
    );
    stable(&lab, &ours, false, 2.0);
    let s = ours.snap();
    assert!(
        s.checksum_forms
            .get("v3_pseudo_header")
            .copied()
            .unwrap_or(0)
            > 0,
        "{s:?}"
    );
    assert!(s.drops.is_empty(), "{s:?}");
}
