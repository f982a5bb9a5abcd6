//! `cargo xtask bench scale`: how a generated lab grows. For each host count (`lbctl gen
//! --hosts N`, two servers per host unless told otherwise) it measures the wall time of
//! `lbctl up` and `lbctl down`, the resident memory, open files and idle CPU of every
//! daemon, the IP packets per
//! second the health checks cause at the servers (the only traffic of an idle lab on the
//! internal LAN), the lab's BPF maps, and optionally `lbctl verify`'s time. Past the
//! requested sizes it keeps the last row that failed and why (time cap, an error of `up`),
//! and it fails if `down` leaves any namespace, interface, pin, state directory or daemon.
//!
//! xtask does not link lbctl: it runs the `lbctl` binary (built in release, or `--lbctl`).
//! A benchmark, not a test: figures are printed, never asserted.

use crate::bench::{build_release, lbctl_bin};
use crate::bench_scale_measure as m;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What to run.
pub struct ScaleOpts {
    pub hosts: Vec<usize>,
    pub servers_per_host: usize,
    pub vxlan: String,
    /// Run `lbctl verify` on labs of at most this many hosts (0: never).
    pub verify_upto: usize,
    /// Longest `up` allowed before the lab counts as failed, seconds.
    pub cap_s: u64,
    /// Seconds over which health-check packets and idle CPU are counted.
    pub window_s: u64,
    pub lbctl: Option<PathBuf>,
}

/// The figures of one lab that came up.
#[derive(Default)]
struct Measured {
    up_s: f64,
    /// When `up` saw the spanning tree settle (from its progress output): the floor of 2 ×
    /// forward_delay every lab pays, whatever its size.
    stp_s: Option<f64>,
    down_s: f64,
    daemons: usize,
    rss_kib: u64,
    fds: usize,
    hc_pps: f64,
    cpu_pct: f64,
    maps: usize,
    map_bytes: u64,
    /// Backends up / in all, over every balancer, after the window.
    backends: (usize, usize),
    masters: usize,
    /// The kernel's ARP entries (all namespaces) and its gc_thresh3 limit.
    arp: (u64, u64),
    verify: Option<(f64, bool)>,
}

enum Outcome {
    /// `lbctl gen` refused the shape (the reason).
    Refused(String),
    /// `up` failed or ran past the cap (the reason), after this many seconds.
    Failed(String, f64),
    Up(Box<Measured>),
}

struct Row {
    hosts: usize,
    servers: usize,
    namespaces: usize,
    veths: usize,
    outcome: Outcome,
}

/// Takes the lab down if the bench stops before it did (error or panic).
struct LabGuard<'a> {
    lbctl: &'a Path,
    lab: String,
    armed: bool,
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = Command::new(self.lbctl)
                .args(["down", "--lab", &self.lab])
                .output();
        }
    }
}

pub fn scale(root: &Path, o: &ScaleOpts) -> Result<()> {
    let lbctl = match &o.lbctl {
        Some(p) => p.clone(),
        None => {
            build_release(root)?;
            lbctl_bin(root)
        }
    };
    println!("bench scale: lbctl gen --hosts N --servers-per-host {} --vxlan {}; up capped at {} s; health and CPU over {} s", o.servers_per_host, o.vxlan, o.cap_s, o.window_s);
    println!("machine before: {}", m::machine_limits());
    let mut rows = Vec::new();
    let mut leaks = Vec::new();
    for &hosts in &o.hosts {
        let row = one_size(&lbctl, o, hosts, &mut leaks)?;
        println!("{}", text_line(&row));
        let stop = matches!(row.outcome, Outcome::Failed(..));
        rows.push(row);
        if stop {
            println!("stopping: larger labs would fail the same way");
            break;
        }
    }
    println!("machine after: {}", m::machine_limits());
    print_tables(&rows);
    print_growth(&rows);
    if !leaks.is_empty() {
        bail!("`down` left things behind:\n{}", leaks.join("\n"));
    }
    Ok(())
}

/// Generates, builds, measures and removes one lab.
fn one_size(lbctl: &Path, o: &ScaleOpts, hosts: usize, leaks: &mut Vec<String>) -> Result<Row> {
    let lab = format!("sc{hosts}p{}", std::process::id() % 100_000);
    let file = std::env::temp_dir().join(format!("lbctl-bench-scale-{lab}.toml"));
    let gen = Command::new(lbctl)
        .args(["gen", "--hosts", &hosts.to_string(), "--servers-per-host"])
        .arg(o.servers_per_host.to_string())
        .args(["--vxlan", &o.vxlan, "--lab", &lab, "-o"])
        .arg(&file)
        .output()
        .context("running lbctl gen")?;
    let mut row = Row {
        hosts,
        servers: hosts * o.servers_per_host,
        namespaces: 0,
        veths: 0,
        outcome: Outcome::Refused(String::new()),
    };
    if !gen.status.success() {
        let why = String::from_utf8_lossy(&gen.stderr);
        row.outcome = Outcome::Refused(why.lines().last().unwrap_or("").trim().to_string());
        return Ok(row);
    }
    (row.namespaces, row.veths) = plan_size(lbctl, &file)?;
    let mut guard = LabGuard {
        lbctl,
        lab: lab.clone(),
        armed: true,
    };
    let up = timed_up(lbctl, &file, o.cap_s)?;
    let (up_s, stp_s) = match up {
        Ok(s) => s,
        Err((why, s)) => {
            // Entries outlive the lab's namespaces for a while: this is what `up` met.
            let (arp, limit) = m::arp_table();
            let why = format!(
                "{why} [kernel ARP table right after: {arp} of gc_thresh3 {limit} entries]"
            );
            row.outcome = Outcome::Failed(why, s);
            return Ok(row);
        }
    };
    let mut r = measure_running(lbctl, &lab, row.servers, o.window_s)?;
    r.up_s = up_s;
    r.stp_s = stp_s;
    if hosts <= o.verify_upto {
        let t = Instant::now();
        let ok = Command::new(lbctl)
            .args(["verify", "--lab", &lab])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        r.verify = Some((t.elapsed().as_secs_f64(), ok));
    }
    let pids: Vec<(u32, u64)> = m::daemon_pids(lbctl, &lab)?
        .into_iter()
        .filter_map(|p| m::identity(p).map(|(st, _)| (p, st)))
        .collect();
    let t = Instant::now();
    let down = Command::new(lbctl).args(["down", "--lab", &lab]).output()?;
    r.down_s = t.elapsed().as_secs_f64();
    guard.armed = !down.status.success();
    for l in m::leftovers(&lab, &pids) {
        leaks.push(format!("{lab}: {l}"));
    }
    let _ = std::fs::remove_file(&file);
    row.outcome = Outcome::Up(Box::new(r));
    Ok(row)
}

/// Namespaces (nodes) and veth pairs of a config, from `lbctl check`.
fn plan_size(lbctl: &Path, file: &Path) -> Result<(usize, usize)> {
    let out = Command::new(lbctl)
        .arg("check")
        .arg("-c")
        .arg(file)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let number_before = |word: &str| -> usize {
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[1].trim_end_matches(',') == word)
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0)
    };
    Ok((number_before("nodes"), number_before("veth")))
}

/// `up`'s wall time and when STP settled, or why it failed and when.
type UpResult = Result<(f64, Option<f64>), (String, f64)>;

/// The seconds of `up`'s "STP settled after X s" progress line.
fn stp_settled(log: &str) -> Option<f64> {
    let l = log.lines().find(|l| l.contains("STP settled after"))?;
    l.split_whitespace().rev().nth(1)?.parse().ok()
}

/// Runs `lbctl up` with a time cap: its wall time, or why it failed and when.
fn timed_up(lbctl: &Path, file: &Path, cap_s: u64) -> Result<UpResult> {
    let log = std::env::temp_dir().join(format!("lbctl-bench-scale-up-{}.log", std::process::id()));
    let mut child = Command::new(lbctl)
        .arg("up")
        .arg("-c")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting lbctl up")?;
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(cap_s) {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = t.elapsed().as_secs_f64();
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    Ok(match status {
        Some(s) if s.success() => Ok((secs, stp_settled(&err))),
        Some(_) => {
            let last: Vec<&str> = err.lines().rev().take(3).collect();
            Err((
                format!(
                    "up failed: {}",
                    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
                secs,
            ))
        }
        None => Err((format!("up took longer than the {cap_s} s cap"), secs)),
    })
}

/// Daemons, memory, open files, and over `window_s` of idleness the servers' IP packets
/// (health checks) and the daemons' CPU.
fn measure_running(lbctl: &Path, lab: &str, servers: usize, window_s: u64) -> Result<Measured> {
    let pids = m::daemon_pids(lbctl, lab)?;
    let server_ns: Vec<String> = (1..=servers)
        .map(|k| format!("lbctl-{lab}-serv{k}"))
        .collect();
    let packets = || server_ns.iter().map(|ns| m::ip_packets(ns)).sum::<u64>();
    let (p0, c0, t0) = (packets(), m::cpu_ticks(&pids), Instant::now());
    std::thread::sleep(Duration::from_secs(window_s));
    let (p1, c1, secs) = (packets(), m::cpu_ticks(&pids), t0.elapsed().as_secs_f64());
    let (maps, map_bytes) = m::bpf_maps(lab);
    let (up, all, masters) = m::service_health(lbctl, lab)?;
    Ok(Measured {
        backends: (up, all),
        masters,
        arp: m::arp_table(),
        daemons: pids.len(),
        rss_kib: m::rss_kib(&pids),
        fds: m::fds(&pids),
        hc_pps: p1.saturating_sub(p0) as f64 / secs,
        // Linux reports CPU time in USER_HZ ticks, 100 per second.
        cpu_pct: c1.saturating_sub(c0) as f64 / secs,
        maps,
        map_bytes,
        ..Measured::default()
    })
}

const HEAD: [&str; 17] = [
    "hosts",
    "servers",
    "netns",
    "veths",
    "up s",
    "STP settled s",
    "up ms/netns",
    "down s",
    "daemons",
    "RSS MiB",
    "fds",
    "hc pkt/s",
    "CPU %",
    "BPF maps (KiB)",
    "backends up",
    "masters",
    "ARP entries",
];

/// The cells of a row, in [`HEAD`]'s order, plus the verify cell.
fn cells(r: &Row) -> (Vec<String>, String) {
    let mut c = vec![
        r.hosts.to_string(),
        r.servers.to_string(),
        r.namespaces.to_string(),
        r.veths.to_string(),
    ];
    match &r.outcome {
        Outcome::Refused(why) => {
            c.truncate(2);
            c.extend(["-".into(), "-".into()]);
            c.push(format!("refused by lbctl gen: {why}"));
            (c, String::new())
        }
        Outcome::Failed(why, s) => {
            c.push(format!("failed after {s:.1} s: {why}"));
            (c, String::new())
        }
        Outcome::Up(x) => {
            c.extend([
                format!("{:.1}", x.up_s),
                x.stp_s.map_or("?".into(), |s| format!("{s:.1}")),
                format!("{:.0}", x.up_s * 1000.0 / r.namespaces.max(1) as f64),
                format!("{:.1}", x.down_s),
                x.daemons.to_string(),
                format!("{:.0}", x.rss_kib as f64 / 1024.0),
                x.fds.to_string(),
                format!("{:.0}", x.hc_pps),
                format!("{:.1}", x.cpu_pct),
                format!("{} ({})", x.maps, x.map_bytes / 1024),
                format!("{}/{}", x.backends.0, x.backends.1),
                x.masters.to_string(),
                format!("{}/{}", x.arp.0, x.arp.1),
            ]);
            let v = match x.verify {
                Some((s, ok)) => format!("{s:.0} s{}", if ok { "" } else { " (failed)" }),
                None => "-".into(),
            };
            (c, v)
        }
    }
}

fn text_line(r: &Row) -> String {
    let (c, v) = cells(r);
    format!("{} | verify {v}", c.join(" | "))
}

fn print_tables(rows: &[Row]) {
    println!("\n{} | verify", HEAD.join(" | "));
    for r in rows {
        println!("{}", text_line(r));
    }
    println!("\nmarkdown:\n| {} | verify |", HEAD.join(" | "));
    println!("|{}", "---|".repeat(HEAD.len() + 1));
    for r in rows {
        let (mut c, v) = cells(r);
        let span = HEAD.len() - c.len();
        if span > 0 {
            c.extend(std::iter::repeat_n(String::new(), span));
        }
        println!("| {} | {v} |", c.join(" | "));
    }
}

/// How `up` grows: the extra time per extra namespace between the smallest and the largest
/// lab that came up (the fixed STP and VRRP waits cancel out).
fn print_growth(rows: &[Row]) {
    let up: Vec<(usize, f64)> = rows
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Up(x) => Some((r.namespaces, x.up_s)),
            _ => None,
        })
        .collect();
    if let (Some(a), Some(b)) = (up.first(), up.last()) {
        if b.0 > a.0 {
            println!(
                "\nup grows by {:.0} ms per extra namespace from {} to {} namespaces ({:.1} s -> {:.1} s)",
                (b.1 - a.1) * 1000.0 / (b.0 - a.0) as f64,
                a.0,
                b.0,
                a.1,
                b.1
            );
        }
    }
}
