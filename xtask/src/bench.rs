//! `cargo xtask bench proxy`: our L7 proxy against HAProxy (Debian's haproxy), same
//! backends (three `lbctl serve` processes), same loopback, same run, alternating rounds
//! of wrk, printed as req/s, p50 and p99 with ratios. Also the agent's resident memory
//! with 1,000 idle client connections. A benchmark, not a test: numbers are reported,
//! never asserted.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BACKENDS: [u16; 3] = [18081, 18082, 18083];
const OURS: u16 = 18000;
const HAPROXY: u16 = 18001;

/// Kills the processes it holds (only those this benchmark started) when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_port(port: u16) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port}")
}

#[derive(Debug, Clone, Copy, Default)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_latency(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, mult) = if let Some(x) = v.strip_suffix("us") {
        (x, 0.001)
    } else if let Some(x) = v.strip_suffix("ms") {
        (x, 1.0)
    } else if let Some(x) = v.strip_suffix('s') {
        (x, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * mult)
}

fn wrk(port: u16, secs: u32, conns: u32) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .context("running wrk (scripts/bootstrap.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = WrkResult::default();
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_ms = parse_latency(v).unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_ms = parse_latency(v).unwrap_or(0.0);
        } else if l.starts_with("Non-2xx or 3xx responses:") || l.starts_with("Socket errors:") {
            r.errors += l
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|x| x.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if r.rps == 0.0 {
        bail!("could not parse wrk output:\n{text}");
    }
    Ok(r)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub fn proxy(root: &Path, rounds: u32, secs: u32, conns: u32) -> Result<()> {
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "lbctl"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building lbctl failed");
    }
    let lbctl: PathBuf = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/lbctl");
    let dir = std::env::temp_dir().join(format!("lbctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut procs = Procs(Vec::new());
    for (i, port) in BACKENDS.iter().enumerate() {
        procs.0.push(
            Command::new(&lbctl)
                .args([
                    "serve",
                    "--name",
                    &format!("serv{}", i + 1),
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    // Our agent, from a config with the same three backends and HAProxy-like checks.
    let mut cfg = String::from(
        "[lab]\nname = \"bench\"\n\n[[lan]]\nname = \"lo\"\nsubnet = \"127.0.0.0/8\"\n\n[service]\nvip = \"127.0.0.1\"\nport = 18000\nadmin_port = 18404\nbalancers = []\n\n",
    );
    for port in BACKENDS {
        cfg.push_str(&format!(
            "[[service.backend]]\naddress = \"127.0.0.1:{port}\"\n\n"
        ));
    }
    let lab_cfg = dir.join("bench.toml");
    std::fs::write(&lab_cfg, cfg)?;
    let ours = Command::new(&lbctl)
        .args([
            "agent",
            "-c",
            lab_cfg.to_str().unwrap(),
            "--node",
            "bench",
            "--listen",
            &format!("127.0.0.1:{OURS}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let ours_pid = ours.id();
    procs.0.push(ours);
    let servers: String = BACKENDS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "    server serv{} 127.0.0.1:{p} check inter 2s rise 2 fall 3\n",
                i + 1
            )
        })
        .collect();
    let hcfg = format!(
        "global\n    maxconn 4096\n    nbthread 2\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n    timeout http-request 5s\n    timeout http-keep-alive 10s\n    option http-keep-alive\n    option forwardfor\n\nfrontend fe\n    bind 127.0.0.1:{HAPROXY}\n    default_backend be\n\nbackend be\n    balance roundrobin\n    option httpchk GET /health\n{servers}"
    );
    let hfile = dir.join("haproxy.cfg");
    std::fs::write(&hfile, hcfg)?;
    procs.0.push(
        Command::new("haproxy")
            .args(["-db", "-f", hfile.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting haproxy (scripts/bootstrap.sh installs it)")?,
    );
    for p in BACKENDS.iter().chain([OURS, HAPROXY].iter()) {
        wait_port(*p)?;
    }
    println!("bench proxy: wrk -t2 -c{conns} -d{secs}s, {rounds} alternating rounds, 3 lbctl serve backends on loopback");
    let (mut o, mut h) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let a = wrk(OURS, secs, conns)?;
        let b = wrk(HAPROXY, secs, conns)?;
        println!(
            "  round {round}: lbctl {:>9.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms err {} | haproxy {:>9.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms err {}",
            a.rps, a.p50_ms, a.p99_ms, a.errors, b.rps, b.p50_ms, b.p99_ms, b.errors
        );
        o.push(a);
        h.push(b);
    }
    let m = |v: &[WrkResult], f: fn(&WrkResult) -> f64| median(v.iter().map(f).collect());
    let (orps, hrps) = (m(&o, |r| r.rps), m(&h, |r| r.rps));
    let (op50, hp50) = (m(&o, |r| r.p50_ms), m(&h, |r| r.p50_ms));
    let (op99, hp99) = (m(&o, |r| r.p99_ms), m(&h, |r| r.p99_ms));
    println!("median: lbctl {orps:.0} req/s, p50 {op50:.2} ms, p99 {op99:.2} ms");
    println!("median: haproxy {hrps:.0} req/s, p50 {hp50:.2} ms, p99 {hp99:.2} ms");
    println!(
        "ratios (lbctl / haproxy): req/s {:.2}x, p50 {:.2}x, p99 {:.2}x",
        orps / hrps,
        op50 / hp50,
        op99 / hp99
    );

    // Resident memory of the agent with 1,000 idle client connections.
    let before = rss_kib(ours_pid);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", OURS))?;
        let _ = s.write_all(b"");
        idle.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(ours_pid);
    println!(
        "agent RSS: {before} KiB before, {after} KiB with 1000 idle connections ({:.1} KiB per connection)",
        (after.saturating_sub(before)) as f64 / 1000.0
    );
    drop(idle);
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
