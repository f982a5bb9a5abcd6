//! The agent on real machines, without `lbctl up`: `configs/pair.toml` as shipped, each of
//! its two machines a namespace this test makes with the config's interface names and
//! addresses, each agent started as `lbctl agent -c configs/pair.toml --node NAME` under
//! an unprivileged uid with exactly the capabilities `configs/systemd/lbctl-agent@.service`
//! grants; and one agent with keepalived as its VRRP peer. Plus `systemd-analyze verify`
//! of the unit.
//!
//! Namespaces `lbt-rh-<pid>-<n>-{sw,lb1,lb2,web}`: `sw` holds the bridges `front` (the
//! users' LAN 192.168.1.0/24; the client's address 192.168.1.100 sits on the bridge) and
//! `back` (10.0.0.0/24); `lb1`/`lb2` have eth0 on front and eth1 on back; `web` holds the
//! three backends' addresses on its eth0, one `lbctl serve` on each. A Drop guard stops
//! every process by PID (SIGTERM, then SIGKILL) and deletes the namespaces, even when the
//! test fails.
//!
//! Needs root (and keepalived for the peer case): without them the tests fail under CI and
//! print `skipped: <test>: <why>` otherwise.

mod common;

use common::keepalived::{self, Keepalived};
use common::sh;
use serde_json::Value;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const PAIR: &str = "configs/pair.toml";
const UNIT: &str = "configs/systemd/lbctl-agent@.service";
const VIP: &str = "192.168.1.254";
/// The uid and gid the reduced agents run as (nobody: a user that owns nothing).
const NOBODY: u32 = 65534;

/// The unit file's value of `key` (the last assignment wins, as in systemd).
fn unit_value(unit: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .map(str::to_string)
}

/// The unit's ambient capabilities as setpriv spells them (`+net_raw,+net_admin`) and as
/// the CapEff mask of /proc/PID/status.
fn unit_caps() -> (String, u64) {
    let unit = std::fs::read_to_string(common::repo_file(UNIT)).expect("the unit file");
    let ambient = unit_value(&unit, "AmbientCapabilities").expect("AmbientCapabilities=");
    let bounding = unit_value(&unit, "CapabilityBoundingSet").expect("CapabilityBoundingSet=");
    assert_eq!(ambient, bounding, "the unit grants what it bounds, no more");
    let (mut spelled, mut mask) = (Vec::new(), 0u64);
    for cap in ambient.split_whitespace() {
        let bit = match cap {
            "CAP_NET_BIND_SERVICE" => 10,
            "CAP_NET_ADMIN" => 12,
            "CAP_NET_RAW" => 13,
            "CAP_PERFMON" => 38,
            "CAP_BPF" => 39,
            other => panic!("the test does not know capability {other}"),
        };
        mask |= 1 << bit;
        spelled.push(format!(
            "+{}",
            cap.trim_start_matches("CAP_").to_lowercase()
        ));
    }
    (spelled.join(","), mask)
}

/// Runs `f` on a thread that entered namespace `ns` (setns is per thread).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(format!("/run/netns/{ns}")).expect("namespace");
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The two machines, the switch and the web servers; everything undone on drop.
struct Machines {
    base: String,
    dir: tempfile::TempDir,
    /// (name, process): agents and web servers, stopped by PID on drop.
    procs: Vec<(String, Child)>,
    keepalived: Option<Keepalived>,
}

impl Machines {
    fn new() -> Machines {
        let m = Machines {
            base: format!(
                "lbt-rh-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
            dir: tempfile::tempdir().expect("tempdir"),
            procs: Vec::new(),
            keepalived: None,
        };
        // The guard exists before the first namespace: a failing step still cleans up.
        m.build();
        m
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.base)
    }

    fn build(&self) {
        let sw = self.ns("sw");
        for n in ["sw", "lb1", "lb2", "web"] {
            sh(&["ip", "netns", "add", &self.ns(n)]);
            sh(&["ip", "-n", &self.ns(n), "link", "set", "lo", "up"]);
        }
        for br in ["front", "back"] {
            sh(&[
                "ip",
                "-n",
                &sw,
                "link",
                "add",
                br,
                "type",
                "bridge",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
                "nf_call_iptables",
                "0",
            ]);
            sh(&["ip", "-n", &sw, "link", "set", br, "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &sw,
            "addr",
            "add",
            "192.168.1.100/24",
            "dev",
            "front",
        ]);
        let plugs: [(&str, &str, &str, &[&str]); 5] = [
            ("lb1", "eth0", "front", &["192.168.1.11/24"]),
            ("lb1", "eth1", "back", &["10.0.0.11/24"]),
            ("lb2", "eth0", "front", &["192.168.1.12/24"]),
            ("lb2", "eth1", "back", &["10.0.0.12/24"]),
            (
                "web",
                "eth0",
                "back",
                &["10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24"],
            ),
        ];
        for (node, dev, br, addrs) in plugs {
            let (ns, port) = (self.ns(node), format!("{node}{dev}"));
            sh(&[
                "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", dev,
                "netns", &ns,
            ]);
            sh(&["ip", "-n", &sw, "link", "set", &port, "master", br, "up"]);
            for a in addrs {
                sh(&["ip", "-n", &ns, "addr", "add", a, "dev", dev]);
            }
            sh(&["ip", "-n", &ns, "link", "set", dev, "up"]);
        }
    }

    /// Starts `cmd` in namespace `node`, its output in `<name>.log`; returns its PID.
    fn spawn(&mut self, name: &str, node: &str, cmd: &[String]) -> u32 {
        let log = File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(cmd)
            .env("LBCTL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let pid = child.id();
        self.procs.push((name.to_string(), child));
        pid
    }

    /// The three backends of pair.toml: `lbctl serve` named web1..web3 on 10.0.0.1..3:80.
    fn web_servers(&mut self) {
        for i in 1..=3 {
            let cmd = [
                common::lbctl_bin().display().to_string(),
                "serve".into(),
                "--name".into(),
                format!("web{i}"),
                "--listen".into(),
                format!("10.0.0.{i}:80"),
            ];
            self.spawn(&format!("web{i}"), "web", &cmd);
        }
    }

    /// `lbctl agent -c configs/pair.toml --node NODE` in namespace NODE, as uid/gid nobody
    /// with exactly the unit's capabilities (ambient, inheritable and bounding set), no
    /// new privileges. Returns its PID once the process is the agent itself.
    fn agent(&mut self, node: &str) -> u32 {
        let (caps, _) = unit_caps();
        let pid = self.agent_with(node, &caps);
        self.wait("the agent process execs", Duration::from_secs(5), || {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim() == "lbctl"
        });
        pid
    }

    /// The same with capabilities `caps` (setpriv's `+net_raw,...`); returns the PID.
    fn agent_with(&mut self, node: &str, caps: &str) -> u32 {
        let mut cmd: Vec<String> = vec![
            "setpriv".into(),
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            format!("--inh-caps=-all,{caps}"),
            format!("--ambient-caps=-all,{caps}"),
            format!("--bounding-set=-all,{caps}"),
            "--no-new-privs".into(),
        ];
        cmd.extend([
            common::lbctl_bin().display().to_string(),
            "agent".into(),
            "-c".into(),
            common::repo_file(PAIR).display().to_string(),
            "--node".into(),
            node.into(),
        ]);
        self.spawn(&format!("agent-{node}"), node, &cmd)
    }

    /// The exit status of process `pid` (one this test started) within `limit`, without
    /// signalling it.
    fn exited(&mut self, pid: u32, limit: Duration) -> Option<ExitStatus> {
        let i = self.procs.iter().position(|(_, c)| c.id() == pid)?;
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(st)) = self.procs[i].1.try_wait() {
                self.procs.remove(i);
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// SIGTERM to process `pid` (one this test started); its exit status within 10 s.
    fn stop(&mut self, pid: u32) -> ExitStatus {
        let i = self
            .procs
            .iter()
            .position(|(_, c)| c.id() == pid)
            .expect("a process of this test");
        let (name, mut child) = self.procs.remove(i);
        term_and_wait(&mut child);
        child
            .try_wait()
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{name} did not exit after SIGTERM"))
    }

    /// Whether namespace `node` holds the VIP.
    fn has_vip(&self, node: &str) -> bool {
        let o = Command::new("ip")
            .args(["-n", &self.ns(node), "-4", "-o", "addr", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/32"))
    }

    /// GET `path` at `addr` from the client (the `sw` namespace).
    fn get(&self, addr: &str, path: &'static str) -> Option<String> {
        let addr: SocketAddr = addr.parse().unwrap();
        in_ns(&self.ns("sw"), move || {
            let r = lbctl::http_get::get(addr, "test", path, Duration::from_secs(1)).ok()?;
            r.status.is_success().then(|| r.text().to_string())
        })
    }

    /// The `/stats` document of machine `node`'s agent (its admin port on eth0).
    fn stats(&self, node: &str) -> Option<Value> {
        let ip = if node == "lb1" {
            "192.168.1.11"
        } else {
            "192.168.1.12"
        };
        let body = self.get(&format!("{ip}:8404"), "/stats")?;
        serde_json::from_str(&body).ok()
    }

    fn vrrp_state(&self, node: &str) -> String {
        self.stats(node)
            .and_then(|s| s["vrrp"]["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The web server that answered GET / through the VIP (its page names it).
    fn served_by(&self) -> Option<String> {
        let page = self.get(&format!("{VIP}:80"), "/")?;
        let i = page.find("Esto es el servidor ")? + "Esto es el servidor ".len();
        Some(page[i..].split('<').next()?.trim().to_string())
    }

    /// Polls `ok` every 100 ms; panics with every log after `limit`. Returns the time taken.
    fn wait(&self, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
        let t = Instant::now();
        while !ok() {
            assert!(
                t.elapsed() < limit,
                "timed out after {limit:?} waiting for: {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        t.elapsed()
    }

    /// The last lines of every process's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out += &format!("--- {}\n{tail}\n", e.file_name().to_string_lossy());
        }
        out
    }
}

/// SIGTERM, up to 10 s to exit, then SIGKILL.
fn term_and_wait(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Machines {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            term_and_wait(c);
        }
        if let Some(mut k) = self.keepalived.take() {
            k.stop();
        }
        for n in ["sw", "lb1", "lb2", "web"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .output();
        }
    }
}

/// The uid and effective capabilities of process `pid` (from /proc/PID/status).
fn uid_and_caps(pid: u32) -> (String, u64) {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let caps = u64::from_str_radix(&field("CapEff:"), 16).expect("CapEff is hex");
    (field("Uid:"), caps)
}

/// Six requests through the VIP: each backend answers twice, in a fixed rotation.
fn assert_round_robin(m: &Machines, when: &str) {
    let served: Vec<String> = (0..6).map(|_| m.served_by().unwrap_or_default()).collect();
    for b in ["web1", "web2", "web3"] {
        let n = served.iter().filter(|s| s.as_str() == b).count();
        assert_eq!(n, 2, "{when}: {b} answered {n} of 6: {served:?}");
    }
    assert_eq!(
        served[..3],
        served[3..],
        "{when}: not a rotation: {served:?}"
    );
}

/// pair.toml's two agents, unprivileged with the unit's capabilities: one MASTER holding
/// the VIP, one BACKUP, round robin over the three backends through the VIP; SIGTERM to
/// the master's agent moves the VIP and the service to the other machine.
#[test]
fn pair_of_agents_from_pair_toml() {
    if !lbctl::test_prereq::need_root() {
        return;
    }
    let mut m = Machines::new();
    m.web_servers();
    // Without CAP_NET_ADMIN it could not add the VIP: it refuses to start, saying so.
    let (caps, _) = unit_caps();
    let pid = m.agent_with("lb1", &caps.replace("+net_admin", "-net_admin"));
    let st = m.exited(pid, Duration::from_secs(5));
    let log = m.log("agent-lb1");
    assert!(
        st.is_some_and(|s| !s.success()) && log.contains("lacks CAP_NET_ADMIN (adding"),
        "an agent without CAP_NET_ADMIN: {st:?}\n{log}"
    );
    let lb1 = m.agent("lb1");
    let lb2 = m.agent("lb2");
    let (_, want_caps) = unit_caps();
    for pid in [lb1, lb2] {
        let (uid, caps) = uid_and_caps(pid);
        assert_eq!(
            uid,
            format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}"),
            "agent {pid} uid"
        );
        assert_eq!(
            caps, want_caps,
            "agent {pid}: CapEff {caps:#x}, want {want_caps:#x}"
        );
    }

    let took = m.wait("lb1 MASTER, lb2 BACKUP", Duration::from_secs(10), || {
        m.vrrp_state("lb1") == "MASTER" && m.vrrp_state("lb2") == "BACKUP"
    });
    eprintln!("lb1 became master {took:?} after both agents started");
    assert!(
        m.has_vip("lb1") && !m.has_vip("lb2"),
        "the VIP is on lb1 only"
    );
    let seen = m.stats("lb2").map(|s| s["vrrp"]["master"].clone());
    assert_eq!(
        seen,
        Some("192.168.1.11".into()),
        "lb2 names lb1 as its master"
    );
    let log = m.log("agent-lb1");
    assert!(
        log.contains("VRRP state change") && log.contains("to=\"MASTER\""),
        "the journal would show lb1 becoming master:\n{log}"
    );
    m.wait("every backend up at lb1", Duration::from_secs(10), || {
        m.stats("lb1").is_some_and(|s| {
            let b = s["backends"].as_array().cloned().unwrap_or_default();
            b.len() == 3 && b.iter().all(|b| b["up"] == true)
        })
    });
    assert_round_robin(&m, "through lb1");

    // Failover: the master's agent stops (graceful: priority 0, VIP removed).
    let t = Instant::now();
    let status = m.stop(lb1);
    assert!(
        status.success(),
        "lb1's agent exits cleanly on SIGTERM: {status:?}"
    );
    m.wait("lb2 MASTER with the VIP", Duration::from_secs(10), || {
        m.vrrp_state("lb2") == "MASTER" && m.has_vip("lb2")
    });
    m.wait(
        "the VIP answers through lb2",
        Duration::from_secs(10),
        || m.served_by().is_some(),
    );
    eprintln!(
        "the VIP answered through lb2 {:?} after SIGTERM to lb1's agent",
        t.elapsed()
    );
    assert!(!m.has_vip("lb1"), "lb1 gave the VIP up");
    m.wait("every backend up at lb2", Duration::from_secs(10), || {
        m.stats("lb2").is_some_and(|s| {
            let b = s["backends"].as_array().cloned().unwrap_or_default();
            b.len() == 3 && b.iter().all(|b| b["up"] == true)
        })
    });
    assert_round_robin(&m, "through lb2");
}

/// pair.toml's `vrrp.preempt_delay_ms` (the default when it says nothing).
fn preempt_delay() -> Duration {
    let cfg = lbctl::config::Config::load(&common::repo_file(PAIR)).expect("pair.toml");
    let ms = cfg.vrrp.map_or(0, |v| v.preempt_delay_ms);
    Duration::from_millis(u64::from(ms))
}

/// lb1 runs our agent (unprivileged, priority 150), lb2 runs keepalived (priority 100) on
/// the same VRID: they agree on one master (ours), keepalived takes over when our agent
/// stops, and ours preempts it again when it comes back.
#[test]
fn agent_with_a_keepalived_peer() {
    if !lbctl::test_prereq::need_root() {
        return;
    }
    if !keepalived::installed() {
        return common::skip("keepalived is not installed (apt-get install -y keepalived)");
    }
    let mut m = Machines::new();
    m.web_servers();
    let conf = keepalived::conf("eth0", 51, 100, "1", 2, VIP, "");
    m.keepalived = Some(Keepalived::start(&m.ns("lb2"), m.dir.path(), &conf));
    let ours = m.agent("lb1");
    let one_master_ours =
        |m: &Machines| m.vrrp_state("lb1") == "MASTER" && m.has_vip("lb1") && !m.has_vip("lb2");
    // Ours starts as BACKUP and, being the higher priority, preempts keepalived once its
    // preempt_delay (counted from its start) has passed.
    let limit = preempt_delay() + Duration::from_secs(5);
    m.wait("ours MASTER, keepalived without the VIP", limit, || {
        one_master_ours(&m)
    });
    // They stay agreed: 3 s of adverts, never two holders.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        assert!(one_master_ours(&m), "split or lost master\n{}", m.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(m.served_by().is_some(), "the VIP serves through our agent");

    let status = m.stop(ours);
    assert!(status.success(), "our agent exits cleanly: {status:?}");
    let took = m.wait("keepalived takes the VIP", Duration::from_secs(10), || {
        m.has_vip("lb2") && !m.has_vip("lb1")
    });
    eprintln!("keepalived held the VIP {took:?} after our agent stopped");

    m.agent("lb1");
    let took = m.wait("ours preempts keepalived", limit, || one_master_ours(&m));
    eprintln!("our restarted agent was the only master after {took:?}");
    // keepalived's own account: MASTER while ours was away, BACKUP again after.
    let log = m.keepalived.as_ref().unwrap().log();
    let master = log.rfind("Entering MASTER STATE");
    let backup = log.rfind("Entering BACKUP STATE");
    assert!(
        master.is_some() && backup > master,
        "keepalived was master, then backup again:\n{log}"
    );
}

/// `lbctl up` and `status` refuse a config of real machines, creating nothing, and
/// `lbctl check` summarises it.
#[test]
fn lab_verbs_refuse_pair_toml() {
    if !lbctl::test_prereq::need_root() {
        return;
    }
    let pair = common::repo_file(PAIR).display().to_string();
    let lab = common::unique_lab();
    for verb in ["up", "status"] {
        let o = common::lbctl(&[verb, "-c", &pair, "--lab", &lab]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("real machines (lb1, lb2), not a lab"),
            "lbctl {verb}: {}",
            common::text(&o)
        );
    }
    assert!(common::namespaces_of(&lab).is_empty(), "up created nothing");
    let out = common::lbctl_ok(&["check", "-c", &pair]);
    assert!(out.contains("real hosts lb1, lb2"), "{out}");
}

/// The shipped unit passes `systemd-analyze verify` without a warning (its binary path
/// pointed at the built lbctl), and keeps the hardening the README promises.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(common::repo_file(UNIT)).expect("the unit file");
    for (key, want) in [
        ("User", "lbctl"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(unit_value(&unit, key).as_deref(), Some(want), "{key}=");
    }
    unit_caps();
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return common::skip("systemd-analyze is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = common::lbctl_bin().display().to_string();
    let text = unit.replace("/usr/local/bin/lbctl", &bin);
    std::fs::write(dir.path().join("lbctl-agent@.service"), text).unwrap();
    let inst = dir.path().join("lbctl-agent@lb1.service");
    std::os::unix::fs::symlink("lbctl-agent@.service", &inst).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&inst)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.trim().is_empty(),
        "{}",
        common::text(&o)
    );
}
