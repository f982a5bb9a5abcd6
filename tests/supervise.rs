//! Supervision in the lab: `up` runs every daemon under a supervisor that restarts it on
//! failure. The master's agent is SIGSTOPped for 10 s (bal2 takes over and is the only VIP
//! holder; after the resume one master and one VIP holder), then SIGKILLed under a 50 ms client loop (failures only
//! inside the VRRP window, none after bal2 is master; the agent is back with a new PID;
//! its VIP is not left behind; the restart shows in `lbctl status --json`). One lab for
//! both: each part ends with the lab settled (one master, one VIP holder).

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VIP: &str = "172.16.1.254";
/// The default config's admin port.
const ADMIN: u16 = 8404;
/// The VRRP window of the default config, seconds: bal2's Master_Down_Interval (3 × 1 s
/// + (256 − 100)/256 s) plus one advert (1 s).
const WINDOW: f64 = 3.0 + 156.0 / 256.0 + 1.0;
/// The client loop's deadline per request, seconds.
const DEADLINE: f64 = 1.0;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// GET `path` from `addr` with a 1 s budget (the client loop's deadline); the body.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let budget = Duration::from_secs_f64(DEADLINE);
    let mut s = TcpStream::connect_timeout(&addr, budget).ok()?;
    s.set_read_timeout(Some(budget)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if !out.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

/// A 50 ms client loop from user2 to the VIP until `stop` exists: (start, ok) per request,
/// start in Unix seconds.
fn client_loop(lab: String, stop: PathBuf) -> std::thread::JoinHandle<Vec<(f64, bool)>> {
    let vip: SocketAddr = format!("{VIP}:8000").parse().unwrap();
    std::thread::spawn(move || {
        in_node(&lab, "user2", move || {
            let mut v = Vec::new();
            let t = Instant::now();
            while !stop.exists() && t.elapsed() < Duration::from_secs(60) {
                let at = unix_now();
                let ok = get(vip, "/").is_some_and(|b| b.contains("Esto es el servidor"));
                v.push((at, ok));
                std::thread::sleep(Duration::from_millis(50));
            }
            v
        })
    })
}

/// The agent's /stats in balancer `node` (None: it does not answer).
fn stats(lab: &str, node: &str) -> Option<Value> {
    let addr: SocketAddr = format!("127.0.0.1:{ADMIN}").parse().unwrap();
    let body = in_node(lab, node, move || get(addr, "/stats"))?;
    serde_json::from_str(&body).ok()
}

fn vrrp_state(lab: &str, node: &str) -> String {
    stats(lab, node)
        .and_then(|s| s["vrrp"]["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// When `node` last became MASTER (Unix seconds), from its agent's VRRP events.
fn became_master(lab: &str, node: &str) -> Option<f64> {
    let s = stats(lab, node)?;
    s["vrrp"]["events"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["to"] == "MASTER")
        .and_then(|e| e["at"].as_f64())
}

/// The balancers whose external interface holds the VIP.
fn vip_holders(lab: &Lab) -> Vec<&'static str> {
    ["bal1", "bal2"]
        .into_iter()
        .filter(|n| {
            let o = lab.exec(n, &["ip", "-4", "-o", "addr", "show"]);
            String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/"))
        })
        .collect()
}

fn daemon<'a>(st: &'a Value, node: &str, name: &str) -> &'a Value {
    st["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["node"] == node && d["daemon"] == name)
        .unwrap_or_else(|| panic!("no {node}.{name} in status: {st}"))
}

fn agent_pid(lab: &Lab) -> i32 {
    daemon(&lab.status(), "bal1", "agent")["pid"]
        .as_u64()
        .unwrap() as i32
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("signalling bal1's agent");
}

/// Waits until both agents answer and exactly one is MASTER and holds the VIP alone.
fn wait_settled(lab: &Lab, limit: Duration, what: &str) -> &'static str {
    let t = Instant::now();
    loop {
        let masters: Vec<&str> = ["bal1", "bal2"]
            .into_iter()
            .filter(|n| vrrp_state(&lab.name, n) == "MASTER")
            .collect();
        let holders = vip_holders(lab);
        if masters.len() == 1 && holders == masters {
            return masters[0];
        }
        assert!(
            t.elapsed() < limit,
            "{what}: masters {masters:?}, VIP on {holders:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The master's agent SIGSTOPped for 10 s, then resumed.
fn stopped_agent(lab: &Lab) {
    let stop = std::env::temp_dir().join(format!("lbctl-sv-stop-{}", lab.name));
    let _ = std::fs::remove_file(&stop);
    let client = client_loop(lab.name.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let pid = agent_pid(lab);
    let t0 = unix_now();
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    let t = Instant::now();
    while became_master(&lab.name, "bal2").is_none_or(|at| at < t0) {
        assert!(t.elapsed() < Duration::from_secs(8), "bal2 never took over");
        std::thread::sleep(Duration::from_millis(100));
    }
    let takeover = became_master(&lab.name, "bal2").unwrap();
    // The stopped agent's supervisor removed its VIP: bal1's kernel does not answer ARP
    // for it while nobody there serves.
    assert_eq!(vip_holders(lab), ["bal2"], "while bal1's agent is stopped");
    std::thread::sleep(Duration::from_secs(10).saturating_sub(t.elapsed()));
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    let resumed = unix_now();
    // One advert (1 s) settles it; status and ip are read with some slack.
    let master = wait_settled(lab, Duration::from_secs(3), "after SIGCONT");
    let settled = unix_now();
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&stop, b"").unwrap();
    let reqs = client.join().unwrap();
    let _ = std::fs::remove_file(&stop);
    let failed = |from: f64, to: f64| {
        reqs.iter()
            .filter(|(at, ok)| !ok && *at >= from && *at < to)
            .count()
    };
    eprintln!(
        "SIGSTOP: bal2 master {:.2} s after the stop; after SIGCONT {master} alone master and VIP holder within {:.2} s; \
         {} requests, {} failed before the takeover, {} between takeover and resume, {} after",
        takeover - t0,
        settled - resumed,
        reqs.len(),
        failed(t0 - DEADLINE, takeover),
        failed(takeover, resumed),
        failed(resumed, f64::MAX),
    );
    // A request started less than its deadline before the stop may be caught by it.
    assert_eq!(failed(0.0, t0 - DEADLINE), 0, "failures before the stop");
    assert_eq!(
        failed(t0 + WINDOW, resumed),
        0,
        "failures after the VRRP window"
    );
    assert_eq!(
        failed(takeover + 0.1, resumed),
        0,
        "failures after bal2 became master"
    );
    let st = lab.status();
    assert_eq!(
        daemon(&st, "bal1", "agent")["restarts"],
        0,
        "a stopped agent is not a dead one"
    );
    assert_eq!(daemon(&st, "bal1", "agent")["pid"], pid);
}

/// The master's agent SIGKILLed under the client loop.
fn killed_agent(lab: &Lab) {
    let stop = std::env::temp_dir().join(format!("lbctl-sv-kill-{}", lab.name));
    let _ = std::fs::remove_file(&stop);
    let client = client_loop(lab.name.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let pid = agent_pid(lab);
    let t0 = unix_now();
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    // The supervisor restarts it: a new PID whose admin port answers.
    let t = Instant::now();
    let back = loop {
        let st = lab.status();
        let d = daemon(&st, "bal1", "agent");
        let new = d["pid"].as_u64().unwrap() as i32;
        if new != pid && d["running"] == true && stats(&lab.name, "bal1").is_some() {
            break unix_now();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "bal1's agent is not back: {d}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    while became_master(&lab.name, "bal2").is_none_or(|at| at < t0) {
        assert!(t.elapsed() < Duration::from_secs(8), "bal2 never took over");
        std::thread::sleep(Duration::from_millis(100));
    }
    let takeover = became_master(&lab.name, "bal2").unwrap();
    // bal1's restarted agent follows bal2 during its preempt_delay: bal2 alone holds the VIP.
    let master = wait_settled(lab, Duration::from_secs(3), "after the SIGKILL");
    assert_eq!(master, "bal2");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        vip_holders(lab),
        ["bal2"],
        "one VIP holder after the restart"
    );
    assert_eq!(vrrp_state(&lab.name, "bal1"), "BACKUP");
    std::fs::write(&stop, b"").unwrap();
    let reqs = client.join().unwrap();
    let _ = std::fs::remove_file(&stop);
    let st = lab.status();
    let d = daemon(&st, "bal1", "agent");
    let restarted = d["restarts"].as_u64().unwrap();
    let failed = |from: f64, to: f64| {
        reqs.iter()
            .filter(|(at, ok)| !ok && *at >= from && *at < to)
            .count()
    };
    eprintln!(
        "SIGKILL: agent back (new PID answering) {:.2} s after the kill; bal2 master after {:.2} s; \
         {} requests, {} failed before the takeover, {} after",
        back - t0,
        takeover - t0,
        reqs.len(),
        failed(t0 - DEADLINE, takeover),
        failed(takeover, f64::MAX),
    );
    assert_eq!(restarted, 1, "{d}");
    assert_eq!(d["supervised"], true);
    assert!(
        d["last_exit"].as_str().unwrap_or("").contains("SIGKILL"),
        "{d}"
    );
    assert_eq!(failed(0.0, t0 - DEADLINE), 0, "failures before the kill");
    assert_eq!(
        failed(t0 + WINDOW, f64::MAX),
        0,
        "failures after the VRRP window"
    );
    assert_eq!(
        failed(takeover + 0.1, f64::MAX),
        0,
        "failures after bal2 became master"
    );
}

#[test]
fn stopped_then_killed_master_agent_leaves_one_master() {
    require_root();
    let lab = Lab::up(None);
    assert_eq!(
        wait_settled(&lab, Duration::from_secs(10), "after up"),
        "bal1"
    );
    stopped_agent(&lab);
    assert_eq!(
        wait_settled(&lab, Duration::from_secs(5), "before the kill"),
        "bal1"
    );
    killed_agent(&lab);
}
