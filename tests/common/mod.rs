//! Helpers for the lab tests: run the lbctl binary, a lab guard that always tears its lab
//! down (even when the test panics), and readers for `lbctl status --json`.
#![allow(dead_code)]

pub mod keepalived;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn lbctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lbctl"))
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// Runs lbctl with `args`; returns the output (never panics on failure).
pub fn lbctl(args: &[&str]) -> Output {
    Command::new(lbctl_bin())
        .args(args)
        .output()
        .expect("running lbctl")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs lbctl and panics with its output if it fails.
pub fn lbctl_ok(args: &[&str]) -> String {
    let o = lbctl(args);
    assert!(o.status.success(), "lbctl {args:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A lab name unique to this test process and call: `t<pid><seq>` (lab names are
/// `[a-z0-9]{1,12}`).
pub fn unique_lab() -> String {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    format!("t{}{}", std::process::id() % 100000, n)
}

/// A running lab; `down` runs on drop, whatever happened in the test.
pub struct Lab {
    pub name: String,
}

impl Lab {
    /// `lbctl up` with a config (None = built-in default) under a unique lab name.
    pub fn up(config: Option<&str>) -> Lab {
        let lab = Lab { name: unique_lab() };
        let mut args = vec!["up", "--lab", &lab.name];
        let cfg;
        if let Some(c) = config {
            cfg = repo_file(c).display().to_string();
            args.push("-c");
            args.push(&cfg);
        }
        lbctl_ok(&args);
        lab
    }

    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", "--lab", &self.name, node, "--"];
        args.extend_from_slice(cmd);
        lbctl(&args)
    }

    /// One ping with a 2 s deadline; true if answered.
    pub fn ping(&self, from: &str, to: &str) -> bool {
        self.exec(from, &["ping", "-c", "1", "-W", "2", "-q", to])
            .status
            .success()
    }

    /// Pings until answered or `tries` attempts (ARP/first-packet loss is not a failure).
    pub fn reaches(&self, from: &str, to: &str, tries: u32) -> bool {
        (0..tries).any(|_| self.ping(from, to))
    }

    pub fn status(&self) -> Value {
        let out = lbctl_ok(&["status", "--lab", &self.name, "--json"]);
        serde_json::from_str(&out).expect("status --json is JSON")
    }

    /// The VRRP state (MASTER, BACKUP...) of balancer `node` as `lbctl status` reports it
    /// (from its agent's pinned map); empty when there is none.
    pub fn vrrp_state(&self, node: &str) -> String {
        self.status()["balancers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["node"] == node)
            .and_then(|b| b["vrrp"]["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Polls until balancer `node` reports MASTER; panics with `what` once `limit` has
    /// passed since `since`. Returns the time since `since`.
    pub fn wait_master(
        &self,
        node: &str,
        since: std::time::Instant,
        limit: std::time::Duration,
        what: &str,
    ) -> std::time::Duration {
        while self.vrrp_state(node) != "MASTER" {
            assert!(since.elapsed() < limit, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        since.elapsed()
    }

    pub fn run(&self, args: &[&str]) -> String {
        let mut a = args.to_vec();
        a.push("--lab");
        a.push(&self.name);
        lbctl_ok(&a)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = lbctl(&["down", "--lab", &self.name]);
        if !o.status.success() {
            eprintln!("cleanup of lab {} failed:\n{}", self.name, text(&o));
        }
    }
}

/// (bridge, port) -> (state, role) from a status document.
pub fn port_state(status: &Value, bridge: &str, port: &str) -> (String, String) {
    let p = status["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["bridge"] == bridge && p["port"] == port)
        .unwrap_or_else(|| panic!("no port {bridge}/{port} in status"));
    (
        p["state"].as_str().unwrap().to_string(),
        p["role"].as_str().unwrap().to_string(),
    )
}

/// STP ports in blocking state, as "bridge/port", sorted.
pub fn blocked_ports(status: &Value) -> Vec<String> {
    let mut v: Vec<String> = status["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stp"] == true && p["state"] == "Blocking")
        .map(|p| {
            format!(
                "{}/{}",
                p["bridge"].as_str().unwrap(),
                p["port"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

pub fn mismatches(status: &Value) -> usize {
    status["mismatches"].as_array().unwrap().len()
}

pub fn lan_roots(status: &Value, lan: &str) -> Vec<String> {
    let l = status["lans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == lan)
        .unwrap();
    l["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Sum of config BPDUs counted by the BPF observer over all interfaces.
pub fn total_bpdus(status: &Value) -> u64 {
    status["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bpdu_config"].as_u64().unwrap())
        .sum()
}

/// Namespaces of a lab still present.
pub fn namespaces_of(lab: &str) -> Vec<String> {
    let prefix = format!("lbctl-{lab}-");
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Lab tests need root; without it they fail loudly rather than pass vacuously.
pub fn require_root() {
    assert!(is_root(), "lab tests need root (CI runs them as root)");
}

/// The rule for a test whose prerequisite (other than root, which `require_root` always
/// demands) is missing: under CI it fails; elsewhere a visible `skipped: <test>: <why>` line
/// that `scripts/test.sh` counts as skipped. Callers return right after it.
#[allow(unused_imports)] // not every test binary that includes this module skips
pub use lbctl::test_prereq::skip;

/// Runs `f` on a thread inside node `node` of lab `lab` (setns is per thread, so the test's
/// other threads stay where they are).
pub fn in_node<T: Send + 'static>(
    lab: &str,
    node: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(format!("/run/netns/lbctl-{lab}-{node}")).expect("node namespace");
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace")
}

/// Runs a command to completion; panics with its output if it fails.
pub fn sh(args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("running a command");
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
