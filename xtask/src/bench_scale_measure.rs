//! What `bench scale` reads from a running lab and from the machine: daemons' memory, file
//! descriptors and CPU time, the servers' IP packet counters, the lab's BPF maps, the
//! machine's limits, and what `down` left behind. Every figure comes from /proc, `ip netns`
//! or bpftool; nothing is estimated.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// One `/proc/<pid>/status` field in KiB (VmRSS…), 0 when the process is gone.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory of `pids` in all, KiB.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter().map(|p| status_kib(*p, "VmRSS:")).sum()
}

/// Open file descriptors of `pids` in all.
pub fn fds(pids: &[u32]) -> usize {
    pids.iter()
        .map(|p| {
            std::fs::read_dir(format!("/proc/{p}/fd"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

/// CPU time (user + system) of `pids` in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // Fields after the command name (which may hold spaces) start after ')'.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// A process's start time (clock ticks since boot) and state letter: with the PID, who it
/// is (a PID reused by another process has another start time; a zombie has exited).
pub fn identity(pid: u32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(19)?.parse().ok()?, f.first()?.chars().next()?))
}

/// `MemAvailable` of the machine, KiB.
pub fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// IP packets received plus sent in a namespace so far (`/proc/net/snmp` is per netns).
pub fn ip_packets(ns: &str) -> u64 {
    let Ok(out) = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
    else {
        return 0;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ip = text.lines().filter(|l| l.starts_with("Ip:"));
    let (Some(head), Some(vals)) = (ip.next(), ip.next()) else {
        return 0;
    };
    let value = |name: &str| -> u64 {
        let i = head.split_whitespace().position(|h| h == name);
        i.and_then(|i| vals.split_whitespace().nth(i)?.parse().ok())
            .unwrap_or(0)
    };
    value("InReceives") + value("OutRequests")
}

/// The lab's daemons (agents, web servers) from `lbctl status --json`: PIDs.
pub fn daemon_pids(lbctl: &Path, lab: &str) -> Result<Vec<u32>> {
    let v = status(lbctl, lab)?;
    Ok(v["daemons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["pid"].as_u64().map(|p| p as u32))
        .collect())
}

/// What the balancers report: backends up and backends in all (summed over balancers), and
/// how many balancers are VRRP master (1 in a healthy lab).
pub fn service_health(lbctl: &Path, lab: &str) -> Result<(usize, usize, usize)> {
    let v = status(lbctl, lab)?;
    let (mut up, mut all, mut masters) = (0, 0, 0);
    for b in v["balancers"].as_array().into_iter().flatten() {
        let backends = b["backends"].as_array().cloned().unwrap_or_default();
        all += backends.len();
        up += backends.iter().filter(|x| x["up"] == true).count();
        masters += usize::from(b["vrrp"]["state"] == "MASTER");
    }
    Ok((up, all, masters))
}

/// The kernel's ARP table: entries now and `gc_thresh3`, its hard limit. One table for
/// every namespace of the machine.
pub fn arp_table() -> (u64, u64) {
    let out = Command::new("ip")
        .args(["-s", "ntable", "show", "name", "arp_cache"])
        .output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let text = text.unwrap_or_default();
    let after = |key: &str| -> u64 {
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(0)
    };
    (after("entries"), after("thresh3"))
}

fn status(lbctl: &Path, lab: &str) -> Result<Value> {
    let out = Command::new(lbctl)
        .args(["status", "--lab", lab, "--json"])
        .output()
        .context("running lbctl status")?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "lbctl status --json: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The BPF maps pinned under the lab's pin directory: how many and their memory (bytes
/// the kernel charges for them), each map counted once however often it is pinned.
pub fn bpf_maps(lab: &str) -> (usize, u64) {
    let Ok(out) = Command::new("bpftool")
        .args(["-j", "-f", "map", "show"])
        .output()
    else {
        return (0, 0);
    };
    let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
        return (0, 0);
    };
    let prefix = format!("/sys/fs/bpf/lbctl/{lab}/");
    let ours = v.as_array().into_iter().flatten().filter(|m| {
        m["pinned"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with(&prefix)))
    });
    let (mut n, mut bytes) = (0, 0);
    for m in ours {
        n += 1;
        bytes += m["bytes_memlock"].as_u64().unwrap_or(0);
    }
    (n, bytes)
}

/// What is left of a lab after `down`: namespaces, pins, state directory, live daemons.
pub fn leftovers(lab: &str, pids: &[(u32, u64)]) -> Vec<String> {
    let mut left = Vec::new();
    let prefix = format!("lbctl-{lab}-");
    let netns = Command::new("ip").args(["netns", "list"]).output();
    let netns = netns.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for l in netns.unwrap_or_default().lines() {
        if l.starts_with(&prefix) {
            left.push(format!(
                "namespace {}",
                l.split_whitespace().next().unwrap_or(l)
            ));
        }
    }
    for dir in [
        format!("/sys/fs/bpf/lbctl/{lab}"),
        format!("/run/lbctl/{lab}"),
    ] {
        if Path::new(&dir).exists() {
            left.push(dir);
        }
    }
    // Interfaces of a lab only ever live in its namespaces; one in the machine's own
    // namespace named after the lab would be a leak.
    let links = Command::new("ip").args(["-o", "link"]).output();
    let links = links.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for l in links.unwrap_or_default().lines() {
        if l.contains(&prefix) {
            left.push(format!("interface {l}"));
        }
    }
    for (p, started) in pids {
        if identity(*p).is_some_and(|(st, state)| st == *started && state != 'Z') {
            left.push(format!("daemon pid {p}"));
        }
    }
    left
}

/// The machine's limits that bound a lab: CPUs, memory, open files, namespaces.
pub fn machine_limits() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let nofile = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpus} CPU(s), load {}, MemAvailable {} MiB, open files soft/hard {nofile}, fs.file-nr {}, user.max_net_namespaces {}, kernel.pid_max {}",
        read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        mem_available_kib() / 1024,
        read("/proc/sys/fs/file-nr").split_whitespace().collect::<Vec<_>>().join("/"),
        read("/proc/sys/user/max_net_namespaces"),
        read("/proc/sys/kernel/pid_max"),
    )
}
