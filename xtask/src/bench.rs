//! `cargo xtask bench proxy`: our L7 proxy against HAProxy (Debian's haproxy), same
//! backends (three `lbctl serve` processes), same loopback, same run, alternating rounds
//! of wrk, printed as req/s, p50 and p99 with ratios. Also the agent's resident memory
//! with 1,000 idle client connections. A benchmark, not a test: numbers are reported,
//! never asserted.

use crate::bench_charts;
use crate::bench_cost::{Cost, Sample};
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

/// Ends the child when this process ends, however it ends: a SIGTERM skips [`Procs`]'
/// `Drop`, and a backend or proxy left running would hold the bench's ports and answer the
/// next run in place of the one it starts. The kernel sends the child SIGTERM when the
/// thread that started it exits (`PR_SET_PDEATHSIG`); the benches start them from the main
/// thread.
fn tied(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: between fork and exec the closure only calls prctl, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
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

#[derive(Debug, Clone, Default, PartialEq)]
struct WrkResult {
    /// Good responses per second: wrk's rate less its non-2xx/3xx responses and socket
    /// errors (an error is no throughput).
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx/3xx responses plus socket errors (connect, read, write, timeout).
    errors: u64,
    /// The response time distribution, (percent, ms), from `wrk_cdf.lua`'s lines.
    cdf: Vec<(f64, f64)>,
    /// Requests wrk completed (errors included).
    requests: u64,
    /// What a request cost the proxy (set by [`measured`]; zero from the parser alone).
    cost: Cost,
}

/// A "cdf PERCENT MICROSECONDS" line of `wrk_cdf.lua`, as (percent, ms).
fn parse_cdf(l: &str) -> Result<Option<(f64, f64)>> {
    let Some(rest) = l.strip_prefix("cdf ") else {
        return Ok(None);
    };
    let mut it = rest.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(p)), Some(Ok(us))) => Ok(Some((p, us / 1000.0))),
        _ => bail!("wrk latency distribution line {l:?}"),
    }
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

/// The sum of the numbers after a line's colon ("Socket errors: connect 0, read 3, write 0,
/// timeout 1"; the label's own digits, as in "Non-2xx or 3xx", are not counts).
fn sum_of_numbers(l: &str) -> u64 {
    let after = l.split_once(':').map_or("", |(_, v)| v);
    after
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse::<u64>().ok())
        .sum()
}

/// Parses `wrk --latency` output. Every figure the report uses must be there and parse:
/// a missing or unparsable one is an error, never a 0 that would read as a result.
fn parse_wrk(text: &str) -> Result<WrkResult> {
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    let mut errors = 0;
    let mut cdf = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(point) = parse_cdf(l)? {
            cdf.push(point);
        } else if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = Some(
                v.trim()
                    .parse::<f64>()
                    .with_context(|| format!("wrk rate {l:?}"))?,
            );
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = Some(parse_latency(v).with_context(|| format!("wrk latency {l:?}"))?);
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = Some(parse_latency(v).with_context(|| format!("wrk latency {l:?}"))?);
        } else if l.starts_with("Non-2xx or 3xx responses:") || l.starts_with("Socket errors:") {
            errors += sum_of_numbers(l);
        } else if let Some((n, _)) = l.split_once(" requests in ") {
            requests = Some(
                n.trim()
                    .parse::<u64>()
                    .with_context(|| format!("wrk {l:?}"))?,
            );
        }
    }
    let (Some(rps), Some(p50_ms), Some(p99_ms), Some(requests)) = (rps, p50, p99, requests) else {
        bail!("could not parse wrk output (rate, 50%, 99% and request count needed):\n{text}");
    };
    if requests == 0 || rps <= 0.0 {
        bail!("wrk completed no request:\n{text}");
    }
    let good = requests.saturating_sub(errors) as f64 / requests as f64;
    Ok(WrkResult {
        rps: rps * good,
        p50_ms,
        p99_ms,
        errors,
        cdf,
        requests,
        cost: Cost::default(),
    })
}

/// One shape of load both proxies get, picked with `--case`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// The backends' page (~0.5 kB), kept-alive client connections.
    KeepAlive,
    /// The page, a new client connection per request (`Connection: close`).
    Close,
    /// A 1 kB body (`/bytes/1024`), kept alive.
    #[value(name = "body-1k")]
    Body1k,
    /// A 64 kB body (`/bytes/65536`), kept alive.
    #[value(name = "body-64k")]
    Body64k,
}

impl Case {
    pub const ALL: [Case; 4] = [Case::KeepAlive, Case::Close, Case::Body1k, Case::Body64k];

    fn path(self) -> &'static str {
        match self {
            Case::KeepAlive | Case::Close => "/",
            Case::Body1k => "/bytes/1024",
            Case::Body64k => "/bytes/65536",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Case::KeepAlive => "keep-alive, page",
            Case::Close => "no keep-alive, page",
            Case::Body1k => "keep-alive, 1 kB body",
            Case::Body64k => "keep-alive, 64 kB body",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Case::KeepAlive => "keep-alive",
            Case::Close => "close",
            Case::Body1k => "body-1k",
            Case::Body64k => "body-64k",
        }
    }
}

/// What `cargo xtask bench proxy` runs: every case at every thread count.
pub struct ProxyOpts {
    pub rounds: u32,
    pub secs: u32,
    pub conns: u32,
    pub cases: Vec<Case>,
    /// nbthread of both proxies, one pass of the cases each.
    pub nbthreads: Vec<usize>,
}

/// The wrk command line of one run of `case` against `port`.
fn wrk_args(port: u16, secs: u32, conns: u32, script: &Path, case: Case) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-s".into(),
        script.to_string_lossy().into_owned(),
        "-t2".into(),
        format!("-c{conns}"),
        format!("-d{secs}s"),
        "--latency".into(),
    ];
    if case == Case::Close {
        a.extend(["-H".into(), "Connection: close".into()]);
    }
    a.push(format!("http://127.0.0.1:{port}{}", case.path()));
    a
}

fn wrk(port: u16, secs: u32, conns: u32, script: &Path, case: Case) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args(wrk_args(port, secs, conns, script, case))
        .output()
        .context("running wrk (scripts/bootstrap.sh installs it)")?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// One proxy under test: where it listens and the process whose cost is counted.
#[derive(Clone, Copy)]
struct Proxy {
    port: u16,
    pid: u32,
}

/// [`wrk`] against `p`, with what each request cost it ([`crate::bench_cost`]).
fn measured(p: Proxy, secs: u32, conns: u32, script: &Path, case: Case) -> Result<WrkResult> {
    let before = Sample::take(p.pid)?;
    let mut r = wrk(p.port, secs, conns, script, case)?;
    r.cost = before.per_request(&Sample::take(p.pid)?, r.requests);
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

pub fn proxy(root: &Path, opts: &ProxyOpts) -> Result<()> {
    if opts.nbthreads.contains(&0) {
        bail!("--nbthread: a thread count is at least 1");
    }
    build_release(root)?;
    let lbctl = lbctl_bin(root);
    let dir = std::env::temp_dir().join(format!("lbctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut backends = Procs(Vec::new());
    start_backends(&lbctl, &mut backends)?;
    for p in BACKENDS {
        wait_port(p)?;
    }
    let (rounds, secs, conns) = (opts.rounds, opts.secs, opts.conns);
    println!("bench proxy: wrk -t2 -c{conns} -d{secs}s, {rounds} alternating rounds per case, 3 lbctl serve backends on loopback");
    let script = dir.join("cdf.lua");
    std::fs::write(&script, include_str!("wrk_cdf.lua"))?;
    let mut summary = Vec::new();
    for &nb in &opts.nbthreads {
        let mut procs = Procs(Vec::new());
        let ours_pid = start_ours(&lbctl, &dir, nb, &mut procs)?;
        let haproxy_pid = start_haproxy(&dir, nb, &mut procs)?;
        let pair = [
            Proxy {
                port: OURS,
                pid: ours_pid,
            },
            Proxy {
                port: HAPROXY,
                pid: haproxy_pid,
            },
        ];
        for p in [OURS, HAPROXY] {
            wait_port(p)?;
        }
        for &case in &opts.cases {
            println!("case {} at nbthread {nb}:", case.label());
            let (o, h) = wrk_rounds(pair, rounds, secs, conns, &script, case)?;
            summary.push((nb, case, print_medians(&o, &h)));
            let title = format!(
                "Response time CDF, lbctl vs HAProxy ({}, nbthread {nb}, wrk -c{conns}, median of {rounds} rounds)",
                case.label()
            );
            let svg = bench_charts::latency_cdf(&median_cdf(&o)?, &median_cdf(&h)?, &title);
            bench_charts::write(root, &chart_name(case, nb), &svg)?;
        }
        println!("nbthread {nb}:");
        idle_rss(ours_pid)?;
        // Both proxies stop before the next thread count binds the same ports.
        drop(procs);
    }
    print_summary(&summary);
    drop(backends);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The CDF picture of a case: the main case at nbthread 2 keeps the historical name.
fn chart_name(case: Case, nb: usize) -> String {
    if case == Case::KeepAlive && nb == 2 {
        "proxy-cdf.svg".into()
    } else {
        format!("proxy-cdf-{}-nb{nb}.svg", case.tag())
    }
}

/// Every case's paired ratios, one line each, at the end of the run.
fn print_summary(rows: &[(usize, Case, Paired)]) {
    println!("summary (paired ratios lbctl / haproxy, median of the rounds):");
    for (nb, case, p) in rows {
        println!(
            "  nbthread {nb} {:<24} req/s {:.2}x  p50 {:.2}x  p99 {:.2}x  CPU/request {:.2}x",
            case.label(),
            p.rps,
            p.p50,
            p.p99,
            p.cpu
        );
    }
}

/// The three `lbctl serve` backends.
fn start_backends(lbctl: &Path, procs: &mut Procs) -> Result<()> {
    for (i, port) in BACKENDS.iter().enumerate() {
        procs.0.push(
            tied(&mut Command::new(lbctl))
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
    Ok(())
}

/// Our agent, from a config with the same three backends and HAProxy-like checks; its pid.
fn start_ours(lbctl: &Path, dir: &Path, nbthread: usize, procs: &mut Procs) -> Result<u32> {
    let mut cfg = format!(
        "[lab]\nname = \"bench\"\n\n[[lan]]\nname = \"lo\"\nsubnet = \"127.0.0.0/8\"\n\n[service]\nvip = \"127.0.0.1\"\nport = 18000\nadmin_port = 18404\nbalancers = []\nnbthread = {nbthread}\n\n",
    );
    for port in BACKENDS {
        cfg.push_str(&format!(
            "[[service.backend]]\naddress = \"127.0.0.1:{port}\"\n\n"
        ));
    }
    let lab_cfg = dir.join("bench.toml");
    std::fs::write(&lab_cfg, cfg)?;
    let ours = tied(&mut Command::new(lbctl))
        .args([
            "agent",
            "-c",
            lab_cfg.to_str().unwrap(),
            "--node",
            "bench",
            "--no-bpf",
            "--listen",
            &format!("127.0.0.1:{OURS}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = ours.id();
    procs.0.push(ours);
    Ok(pid)
}

/// HAProxy with the same backends, threads and checks; its pid.
fn start_haproxy(dir: &Path, nbthread: usize, procs: &mut Procs) -> Result<u32> {
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
        "global\n    maxconn 4096\n    nbthread {nbthread}\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n    timeout http-request 5s\n    timeout http-keep-alive 10s\n    option http-keep-alive\n    option forwardfor\n\nfrontend fe\n    bind 127.0.0.1:{HAPROXY}\n    default_backend be\n\nbackend be\n    balance roundrobin\n    option httpchk GET /health\n{servers}"
    );
    let hfile = dir.join("haproxy.cfg");
    std::fs::write(&hfile, hcfg)?;
    let child = tied(&mut Command::new("haproxy"))
        .args(["-db", "-f", hfile.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting haproxy (scripts/bootstrap.sh installs it)")?;
    let pid = child.id();
    procs.0.push(child);
    Ok(pid)
}

/// `rounds` rounds of wrk against both, who goes first alternating; (ours, haproxy).
fn wrk_rounds(
    [ours, haproxy]: [Proxy; 2],
    rounds: u32,
    secs: u32,
    conns: u32,
    script: &Path,
    case: Case,
) -> Result<(Vec<WrkResult>, Vec<WrkResult>)> {
    let (mut o, mut h) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Progress while a round runs (2 x secs s with nothing else printed).
        // Who goes first alternates too, so neither always runs on a warmer machine.
        let ours_first = round % 2 == 1;
        let (first, second) = if ours_first {
            ("lbctl", "haproxy")
        } else {
            ("haproxy", "lbctl")
        };
        eprintln!(
            "  round {round}/{rounds}: wrk against {first} ({secs} s), then {second} ({secs} s)..."
        );
        let (a, b) = if ours_first {
            let a = measured(ours, secs, conns, script, case)?;
            (a, measured(haproxy, secs, conns, script, case)?)
        } else {
            let b = measured(haproxy, secs, conns, script, case)?;
            (measured(ours, secs, conns, script, case)?, b)
        };
        println!(
            "  round {round}: lbctl {:>9.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms err {} cpu {:>5.1} us | haproxy {:>9.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms err {} cpu {:>5.1} us",
            a.rps, a.p50_ms, a.p99_ms, a.errors, a.cost.cpu_us, b.rps, b.p50_ms, b.p99_ms, b.errors, b.cost.cpu_us
        );
        o.push(a);
        h.push(b);
    }
    Ok((o, h))
}

/// Per percentile, the median over the rounds of its response time.
fn median_cdf(rounds: &[WrkResult]) -> Result<Vec<(f64, f64)>> {
    let first = rounds.first().map(|r| r.cdf.clone()).unwrap_or_default();
    if first.is_empty() || rounds.iter().any(|r| r.cdf.len() != first.len()) {
        bail!("wrk printed no (or an uneven) latency distribution: is wrk_cdf.lua loaded?");
    }
    Ok(first
        .iter()
        .enumerate()
        .map(|(i, &(p, _))| (p, median(rounds.iter().map(|r| r.cdf[i].1).collect())))
        .collect())
}

/// The median over the rounds of each round's lbctl / HAProxy ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Paired {
    rps: f64,
    p50: f64,
    p99: f64,
    /// The proxy's CPU time per request.
    cpu: f64,
}

fn print_medians(o: &[WrkResult], h: &[WrkResult]) -> Paired {
    let m = |v: &[WrkResult], f: fn(&WrkResult) -> f64| median(v.iter().map(f).collect());
    let (orps, hrps) = (m(o, |r| r.rps), m(h, |r| r.rps));
    let (op50, hp50) = (m(o, |r| r.p50_ms), m(h, |r| r.p50_ms));
    let (op99, hp99) = (m(o, |r| r.p99_ms), m(h, |r| r.p99_ms));
    println!("median: lbctl {orps:.0} req/s, p50 {op50:.2} ms, p99 {op99:.2} ms");
    println!("median: haproxy {hrps:.0} req/s, p50 {hp50:.2} ms, p99 {hp99:.2} ms");
    println!(
        "ratios (lbctl / haproxy): req/s {:.2}x, p50 {:.2}x, p99 {:.2}x",
        orps / hrps,
        op50 / hp50,
        op99 / hp99
    );
    // The two runs of a round are back to back, under nearly the same load from the rest
    // of this shared machine: the median of each round's own ratio cancels the drift
    // between rounds that the ratio of the medians keeps.
    let paired =
        |f: fn(&WrkResult) -> f64| median(o.iter().zip(h).map(|(a, b)| f(a) / f(b)).collect());
    let p = Paired {
        rps: paired(|r| r.rps),
        p50: paired(|r| r.p50_ms),
        p99: paired(|r| r.p99_ms),
        cpu: paired(|r| r.cost.cpu_us),
    };
    println!(
        "paired ratios (median of each round's lbctl / haproxy): req/s {:.2}x, p50 {:.2}x, p99 {:.2}x, CPU per request {:.2}x",
        p.rps, p.p50, p.p99, p.cpu
    );
    print_costs(o, h);
    p
}

/// The medians of what a request cost each proxy.
fn print_costs(o: &[WrkResult], h: &[WrkResult]) {
    let m = |v: &[WrkResult], f: fn(&Cost) -> f64| median(v.iter().map(|r| f(&r.cost)).collect());
    for (who, v) in [("lbctl", o), ("haproxy", h)] {
        println!(
            "per request, {who}: {:.1} us of CPU, {:.2} context switches; {:.2} TCP segments sent",
            m(v, |c| c.cpu_us),
            m(v, |c| c.switches),
            m(v, |c| c.segments)
        );
    }
}

/// Resident memory of the agent with 1,000 idle client connections.
fn idle_rss(ours_pid: u32) -> Result<()> {
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
    Ok(())
}

/// One failover measurement: which VRRP implementation, advert interval, and fault.
struct FailoverCase {
    keepalived: bool,
    advert_ms: u32,
    graceful: bool,
}

/// Builds the release lbctl the benchmarks run, and its development helpers
/// (`lbctl-harness`, feature `harness`).
pub(crate) fn build_release(root: &Path) -> Result<()> {
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "lbctl",
            "--features",
            "harness",
            "--bins",
        ])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building lbctl failed");
    }
    Ok(())
}

pub(crate) fn lbctl_bin(root: &Path) -> PathBuf {
    release_bin(root, "lbctl")
}

/// The development helpers' binary (`lbctl-harness`: bench-vtep, udp-blast, udp-sink,
/// xdp-noop).
pub(crate) fn harness_bin(root: &Path) -> PathBuf {
    release_bin(root, "lbctl-harness")
}

fn release_bin(root: &Path, name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release")
        .join(name)
}

/// The default scenario under lab name `lab`, VRRP v2 at 1 s or v3 below; for keepalived
/// the [vrrp] section is removed (the agents then only proxy, bound to the VIP with
/// IP_FREEBIND) and keepalived runs in the balancers instead.
fn failover_config(root: &Path, lab: &str, c: &FailoverCase) -> Result<String> {
    let text = std::fs::read_to_string(root.join("configs/default.toml"))?;
    let text = text.replacen("name = \"lab\"", &format!("name = \"{lab}\""), 1);
    let vrrp_at = text.find("[vrrp]").context("default.toml has [vrrp]")?;
    let (head, vrrp) = text.split_at(vrrp_at);
    if c.keepalived {
        return Ok(head.to_string());
    }
    let version = if c.advert_ms.is_multiple_of(1000) {
        2
    } else {
        3
    };
    let vrrp = vrrp
        .replacen(
            "advert_int_ms = 1000",
            &format!("advert_int_ms = {}", c.advert_ms),
            1,
        )
        .replacen("version = 2", &format!("version = {version}"), 1);
    Ok(format!("{head}{vrrp}"))
}

fn keepalived_conf(node: &str, prio: u8, advert_ms: u32) -> String {
    let v3 = !advert_ms.is_multiple_of(1000);
    format!(
        "global_defs {{\n    router_id {node}\n    {}\n}}\nvrrp_instance svc {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 12\n    priority {prio}\n    advert_int {}\n    virtual_ipaddress {{\n        172.16.1.254/32\n    }}\n}}\n",
        if v3 { "vrrp_version 3" } else { "vrrp_version 2" },
        advert_ms as f64 / 1000.0
    )
}

pub(crate) fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What user2's probe saw in one failover case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Served again before the probe ended: the longest outage, failed and total requests.
    Recovered {
        outage_ms: u64,
        failed: u64,
        requests: u64,
    },
    /// Still failing when the probe ended, or never answered at all: no outage figure
    /// exists (reporting one, or 0, would be a result that never happened).
    NeverRecovered { failed: u64, requests: u64 },
}

/// Reads `lbctl probe`'s JSON report. A missing field is an error, never a 0.
fn probe_outcome(json: &serde_json::Value) -> Result<Outcome> {
    let num = |k: &str| {
        json[k]
            .as_u64()
            .with_context(|| format!("probe report lacks {k}: {json}"))
    };
    let (requests, failed, outage_ms) = (num("requests")?, num("failed")?, num("outage_ms")?);
    let recovered = json["recovered"]
        .as_bool()
        .with_context(|| format!("probe report lacks recovered: {json}"))?;
    if requests == 0 {
        bail!("the probe made no request: {json}");
    }
    Ok(if recovered && failed < requests {
        Outcome::Recovered {
            outage_ms,
            failed,
            requests,
        }
    } else {
        Outcome::NeverRecovered { failed, requests }
    })
}

fn failover_case(root: &Path, lbctl: &Path, c: &FailoverCase) -> Result<Outcome> {
    let lab = "bfo";
    let dir = std::env::temp_dir().join(format!("lbctl-bfo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("bfo.toml");
    std::fs::write(&cfg, failover_config(root, lab, c)?)?;
    let _ = Command::new(lbctl).args(["down", "--lab", lab]).output();
    run_ok(Command::new(lbctl).args(["up", "-c", cfg.to_str().unwrap()]))?;
    // `down` on every exit path; keepalived is ended by PID below.
    struct Down<'a>(&'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = Command::new(self.0).args(["down", "--lab", "bfo"]).output();
        }
    }
    let _down = Down(lbctl);
    let mut kas = Procs(Vec::new());
    if c.keepalived {
        start_keepalived(lbctl, lab, &dir, c, &mut kas)?;
    }
    // The VRRP speaker of bal1, looked up before the probe starts so that the fault hits
    // at the same moment of the probe's cadence for both implementations.
    let speaker = if c.keepalived {
        kas.0[0].id()
    } else {
        agent_pid(lbctl, lab, "bal1")?
    };
    // Let the backups settle, then probe from user2 while the fault hits after 2 s.
    std::thread::sleep(Duration::from_secs(2));
    let probe_ms = 4000 + 4 * c.advert_ms as u64 + 3000;
    let probe = Command::new(lbctl)
        .args([
            "exec",
            "--lab",
            lab,
            "user2",
            "--",
            lbctl.to_str().unwrap(),
            "probe",
            "--url",
            "http://172.16.1.254:8000/",
            "--period-ms",
            "50",
            "--timeout-ms",
            "100",
            "--duration-ms",
            &probe_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(2));
    if c.graceful {
        // SIGTERM to the VRRP speaker of bal1: it resigns with priority 0.
        send_signal(speaker, 15);
    } else {
        run_ok(Command::new(lbctl).args([
            "link",
            "down",
            "--lab",
            lab,
            "bal1",
            "vswout1",
            "--no-wait",
        ]))?;
    }
    let out = probe.wait_with_output()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("probe output: {}", String::from_utf8_lossy(&out.stdout)))?;
    let r = probe_outcome(&json);
    for k in &mut kas.0 {
        send_signal(k.id(), 15);
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(kas);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// Keepalived in bal1 (priority 150) and bal2 (100), then waits for the VIP to answer.
fn start_keepalived(
    lbctl: &Path,
    lab: &str,
    dir: &Path,
    c: &FailoverCase,
    kas: &mut Procs,
) -> Result<()> {
    for (node, prio) in [("bal1", 150u8), ("bal2", 100u8)] {
        let conf = dir.join(format!("{node}.conf"));
        std::fs::write(&conf, keepalived_conf(node, prio, c.advert_ms))?;
        let mut cmd = Command::new(lbctl);
        cmd.args([
            "exec",
            "--lab",
            lab,
            node,
            "--",
            "keepalived",
            "-n",
            "-l",
            "-f",
        ])
        .arg(&conf)
        .args(["-p"])
        .arg(dir.join(format!("{node}.pid")))
        .args(["-r"])
        .arg(dir.join(format!("{node}.vrrp.pid")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        kas.0.push(
            cmd.spawn()
                .context("starting keepalived (scripts/bootstrap.sh installs it)")?,
        );
    }
    let t = Instant::now();
    loop {
        let o = Command::new(lbctl)
            .args([
                "exec",
                "--lab",
                lab,
                "user2",
                "--",
                "curl",
                "-s",
                "-m",
                "1",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://172.16.1.254:8000/",
            ])
            .output()?;
        if String::from_utf8_lossy(&o.stdout) == "200" {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!("keepalived never brought the VIP up");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pid of `node`'s agent, from `lbctl status --json`.
fn agent_pid(lbctl: &Path, lab: &str, node: &str) -> Result<u32> {
    let st: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(lbctl).args(["status", "--lab", lab, "--json"]),
    )?)?;
    Ok(st["daemons"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|d| d["node"] == node && d["daemon"] == "agent")
        })
        .and_then(|d| d["pid"].as_u64())
        .with_context(|| format!("{node}'s agent in lbctl status"))? as u32)
}

fn send_signal(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn failover(root: &Path) -> Result<()> {
    build_release(root)?;
    let lbctl = lbctl_bin(root);
    println!("bench failover: 50 ms client loop from user2 against the VIP; bal1's link cut (or its VRRP speaker stopped) 2 s in");
    let total = 8;
    let mut case_no = 0;
    let mut never = 0;
    let mut drawn = Vec::new();
    for graceful in [false, true] {
        for advert_ms in [1000u32, 100] {
            let mut row = Vec::new();
            for keepalived in [false, true] {
                case_no += 1;
                let who = if keepalived { "keepalived" } else { "lbctl" };
                let how = if graceful {
                    "graceful stop"
                } else {
                    "link cut"
                };
                eprintln!("  case {case_no}/{total}: {who} {how}, advert {advert_ms} ms: building the lab and probing...");
                let c = FailoverCase {
                    keepalived,
                    advert_ms,
                    graceful,
                };
                let o = failover_case(root, &lbctl, &c)?;
                never += u32::from(matches!(o, Outcome::NeverRecovered { .. }));
                println!("  {}", case_line(&c, &o));
                row.push(o);
            }
            println!(
                "  ratio lbctl/keepalived ({}, {} ms): {}",
                if graceful { "graceful" } else { "link cut" },
                advert_ms,
                outage_ratio(&row[0], &row[1])
            );
            let how = if graceful {
                "graceful stop"
            } else {
                "link cut"
            };
            let case = format!("{how}, adverts every {advert_ms} ms");
            drawn.push((case, failover_bar(&row[0]), failover_bar(&row[1])));
        }
    }
    let title = "VRRP failover seen from user2: lbctl's agent vs keepalived (one run per case)";
    bench_charts::write(root, "failover.svg", &bench_charts::failover(&drawn, title))?;
    if never > 0 {
        bail!("{never} of {total} cases never got the service back within the probe");
    }
    Ok(())
}

/// One result row: the outage, or that the service never came back.
fn case_line(c: &FailoverCase, o: &Outcome) -> String {
    let head = format!(
        "{:<10} {:<9} advert {:>4} ms:",
        if c.keepalived { "keepalived" } else { "lbctl" },
        if c.graceful { "graceful" } else { "link cut" },
        c.advert_ms
    );
    match o {
        Outcome::Recovered {
            outage_ms,
            failed,
            requests,
        } => format!("{head} outage {outage_ms:>5} ms, {failed:>3}/{requests:<3} requests failed"),
        Outcome::NeverRecovered { failed, requests } => {
            format!("{head} NEVER RECOVERED, {failed:>3}/{requests:<3} requests failed")
        }
    }
}

/// A case's bar in the picture: its outage, or "never recovered" and no bar.
fn failover_bar(o: &Outcome) -> bench_charts::FailoverBar {
    match *o {
        Outcome::Recovered {
            outage_ms,
            failed,
            requests,
        } => bench_charts::FailoverBar {
            outage_ms: Some(outage_ms),
            note: format!("{outage_ms} ms ({failed}/{requests} requests failed)"),
        },
        Outcome::NeverRecovered { failed, requests } => bench_charts::FailoverBar {
            outage_ms: None,
            note: format!("never recovered ({failed}/{requests} requests failed)"),
        },
    }
}

/// lbctl's outage over keepalived's, "n/a" unless both recovered.
fn outage_ratio(ours: &Outcome, theirs: &Outcome) -> String {
    match (ours, theirs) {
        (Outcome::Recovered { outage_ms: a, .. }, Outcome::Recovered { outage_ms: b, .. }) => {
            format!("{:.2}x", *a as f64 / (*b).max(1) as f64)
        }
        _ => "n/a (a case never recovered)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 8s test @ http://127.0.0.1:18000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   810.12us  300.00us  10.00ms   90.00%
    Req/Sec    30.00k     2.00k   35.00k    70.00%
  Latency Distribution
     50%  750.00us
     75%    0.90ms
     90%    1.10ms
     99%    2.50ms
  480000 requests in 8.00s, 100.00MB read
Requests/sec:  60000.00
Transfer/sec:     12.50MB
";

    #[test]
    fn each_case_asks_wrk_for_its_shape() {
        let s = Path::new("/tmp/cdf.lua");
        let a = wrk_args(18000, 8, 50, s, Case::KeepAlive);
        assert_eq!(a.last().unwrap(), "http://127.0.0.1:18000/");
        assert!(!a.iter().any(|x| x == "-H"));
        let c = wrk_args(18001, 8, 50, s, Case::Close);
        assert!(c
            .windows(2)
            .any(|w| w[0] == "-H" && w[1] == "Connection: close"));
        assert_eq!(
            wrk_args(18000, 8, 50, s, Case::Body64k).last().unwrap(),
            "http://127.0.0.1:18000/bytes/65536"
        );
        assert_eq!(chart_name(Case::KeepAlive, 2), "proxy-cdf.svg");
        assert_eq!(chart_name(Case::Body1k, 1), "proxy-cdf-body-1k-nb1.svg");
    }

    /// A child started by a thread that has ended (as the bench's are when xtask dies) is
    /// sent SIGTERM: nothing it started outlives it.
    #[test]
    fn a_tied_child_ends_with_its_parent() {
        use std::os::unix::process::ExitStatusExt as _;
        let mut child =
            std::thread::spawn(|| tied(&mut Command::new("sleep")).arg("30").spawn().unwrap())
                .join()
                .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    }

    #[test]
    fn wrk_output_is_parsed() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(
            r,
            WrkResult {
                rps: 60000.0,
                p50_ms: 0.75,
                p99_ms: 2.5,
                errors: 0,
                cdf: vec![],
                requests: 480000,
                cost: Cost::default(),
            }
        );
    }

    #[test]
    fn the_latency_distribution_is_read_from_the_scripts_lines() {
        let t = format!("{WRK}cdf 0 120\ncdf 97.5 2400\ncdf 100 10000\n");
        let r = parse_wrk(&t).unwrap();
        assert_eq!(r.cdf, vec![(0.0, 0.12), (97.5, 2.4), (100.0, 10.0)]);
        assert!(parse_wrk(&format!("{WRK}cdf 50 fast\n")).is_err());
        let rounds = [
            r.clone(),
            parse_wrk(&t.replace("cdf 97.5 2400", "cdf 97.5 3000")).unwrap(),
        ];
        let m = median_cdf(&rounds).unwrap();
        assert_eq!(m[1], (97.5, 3.0), "the upper median of two rounds");
        assert!(
            median_cdf(&[parse_wrk(WRK).unwrap()]).is_err(),
            "no distribution: an error"
        );
    }

    #[test]
    fn errors_are_not_throughput() {
        // A quarter of the requests answered 503, plus socket errors: not counted.
        let t = WRK.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 10000, write 0, timeout 10000\n  Non-2xx or 3xx responses: 100000\nRequests/sec:",
        );
        let r = parse_wrk(&t).unwrap();
        assert_eq!(r.errors, 120000);
        assert_eq!(r.rps, 45000.0);
    }

    #[test]
    fn unparsable_or_missing_figures_are_errors() {
        assert!(parse_wrk(&WRK.replace("2.50ms", "2.50parsecs")).is_err());
        assert!(parse_wrk(&WRK.replace("     50%  750.00us\n", "")).is_err());
        assert!(parse_wrk(&WRK.replace("Requests/sec:  60000.00", "")).is_err());
        assert!(parse_wrk(&WRK.replace("480000 requests", "0 requests")).is_err());
        assert!(parse_wrk("").is_err());
    }

    #[test]
    fn a_probe_that_never_succeeds_is_no_zero_outage() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            probe_outcome(&j(
                r#"{"requests":140,"failed":140,"outage_ms":0,"recovered":false}"#
            ))
            .unwrap(),
            Outcome::NeverRecovered {
                failed: 140,
                requests: 140
            }
        );
        assert_eq!(
            probe_outcome(&j(
                r#"{"requests":140,"failed":60,"outage_ms":3100,"recovered":false}"#
            ))
            .unwrap(),
            Outcome::NeverRecovered {
                failed: 60,
                requests: 140
            }
        );
        assert_eq!(
            probe_outcome(&j(
                r#"{"requests":140,"failed":20,"outage_ms":1100,"recovered":true}"#
            ))
            .unwrap(),
            Outcome::Recovered {
                outage_ms: 1100,
                failed: 20,
                requests: 140
            }
        );
        assert!(probe_outcome(&j(r#"{"requests":140,"failed":20}"#)).is_err());
        assert!(probe_outcome(&j(
            r#"{"requests":0,"failed":0,"outage_ms":0,"recovered":false}"#
        ))
        .is_err());
        let c = FailoverCase {
            keepalived: false,
            advert_ms: 100,
            graceful: false,
        };
        let never = Outcome::NeverRecovered {
            failed: 140,
            requests: 140,
        };
        assert!(case_line(&c, &never).contains("NEVER RECOVERED"));
        assert!(!case_line(&c, &never).contains(" 0 ms"));
        assert_eq!(outage_ratio(&never, &never), "n/a (a case never recovered)");
    }
}
