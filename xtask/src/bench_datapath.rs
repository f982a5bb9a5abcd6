//! `cargo xtask bench datapath`: the BPF VTEP against the kernel's vxlan device, in one run.
//!
//! 1. End to end across the tunnel in the lab (serv1 on vm1 -> serv3 on vm2, both directions
//!    of the tunnel used): one TCP stream (iperf3) and 64-byte UDP frames at full speed (18
//!    bytes of payload + 8 UDP + 20 IP + 14 Ethernet = 60, 64 with the FCS a wire would add),
//!    received packets per second, from two senders: `lbctl-harness udp-blast` (64 datagrams per
//!    sendmmsg, counted by `lbctl-harness udp-sink` with recvmmsg: the path is the bottleneck) and
//!    iperf3 -u -b 0 -l 18 (one datagram per system call: mostly the sender's limit). Three labs, one after the
//!    other: the kernel's vxlan device, the kernel's device with the no-op XDP program on the
//!    same underlay ports the VTEP uses (what XDP on a veth costs by itself), and the BPF VTEP.
//! 2. Per packet through BPF_PROG_TEST_RUN (`lbctl-harness bench-vtep`, in a throwaway namespace):
//!    `lb_vxdec`, `lb_vxdtc` and `lb_vxenc` in a single-run loop, `lb_vxdec` in live-frames mode, each next
//!    to a do-nothing program of its kind (`lb_xpass`/`lb_xdrop` for XDP, `lb_tpass` for TC:
//!    the floor).
//!    Last, so the release build's tail is long gone from the CPUs.
//!
//! A benchmark, not a test: figures are printed with ratios, never asserted.
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{build_release, harness_bin, lbctl_bin, run_ok};
use crate::bench_charts;

const LAB: &str = "bdp5";

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Kernel,
    KernelXdpNoop,
    Ebpf,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Kernel => "kernel vxlan",
            Case::KernelXdpNoop => "kernel + no-op XDP",
            Case::Ebpf => "ebpf VTEP",
        }
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct E2e {
    tcp_gbps: f64,
    /// iperf3 -u: one datagram per system call.
    udp_pps: f64,
    udp_sent_pps: f64,
    /// sendmmsg/recvmmsg, 64 datagrams per call.
    blast_pps: f64,
    blast_sent_pps: f64,
}

/// Ends the iperf3 server it holds (started by us) and takes the lab down.
struct LabGuard<'a> {
    lbctl: &'a Path,
    server: Option<Child>,
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = &mut self.server {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(self.lbctl)
            .args(["down", "--lab", LAB])
            .output();
    }
}

fn in_node(node: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("lbctl-{LAB}-{node}")]);
    c.args(args);
    c
}

fn iperf(node: &str, args: &[&str]) -> Result<Value> {
    let mut all = vec!["iperf3", "-J"];
    all.extend_from_slice(args);
    let out = in_node(node, &all).output().context("running iperf3")?;
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 output: {}", String::from_utf8_lossy(&out.stdout)))?;
    if let Some(e) = v.get("error") {
        bail!("iperf3 {args:?}: {e}");
    }
    Ok(v)
}

/// One lab case end to end: the lab up for `case`, an iperf3 server in serv3, then TCP,
/// iperf3 UDP and the batched UDP pair from serv1 across the tunnel; the lab goes down
/// when the guard drops, whatever happened.
fn e2e_case(root: &Path, lbctl: &Path, case: Case, secs: u32) -> Result<E2e> {
    let mut guard = lab_up(root, lbctl, case)?;
    guard.server = Some(
        in_node("serv3", &["iperf3", "-s", "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting iperf3 -s (scripts/bootstrap.sh installs iperf3)")?,
    );
    wait_iperf_server()?;
    std::thread::sleep(Duration::from_millis(500));
    let t = secs.to_string();
    let tcp = iperf("serv1", &["-c", "10.0.0.3", "-p", "5201", "-t", &t])?;
    let tcp_bps = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 TCP: no end.sum_received.bits_per_second")?;
    std::thread::sleep(Duration::from_millis(500));
    let (udp_pps, udp_sent_pps) = iperf_udp(secs)?;
    std::thread::sleep(Duration::from_millis(500));
    let (blast_pps, blast_sent_pps) = batched_udp(root, secs)?;
    Ok(E2e {
        tcp_gbps: tcp_bps / 1e9,
        udp_pps,
        udp_sent_pps,
        blast_pps,
        blast_sent_pps,
    })
}

/// The lab of `case` up (a no-op XDP program on vm1's and vm2's underlay ports for
/// `KernelXdpNoop`), behind a guard that takes it down.
fn lab_up<'a>(root: &Path, lbctl: &'a Path, case: Case) -> Result<LabGuard<'a>> {
    let cfg = match case {
        Case::Ebpf => "tests/configs/ebpf.toml",
        _ => "configs/default.toml",
    };
    let _ = Command::new(lbctl).args(["down", "--lab", LAB]).output();
    run_ok(Command::new(lbctl).args(["up", "--lab", LAB, "-c", root.join(cfg).to_str().unwrap()]))?;
    let guard = LabGuard {
        lbctl,
        server: None,
    };
    if case == Case::KernelXdpNoop {
        for node in ["vm1", "vm2"] {
            run_ok(Command::new(harness_bin(root)).args([
                "xdp-noop",
                "--lab",
                LAB,
                "--node",
                node,
                "to-swout1",
                "to-swout2",
            ]))?;
        }
    }
    Ok(guard)
}

/// Waits (10 s at most) until serv1 can connect to the iperf3 server in serv3.
fn wait_iperf_server() -> Result<()> {
    let t0 = Instant::now();
    loop {
        let ok = in_node("serv1", &["bash", "-c", "exec 3<>/dev/tcp/10.0.0.3/5201"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("iperf3 server in serv3 does not answer");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// iperf3's 64-byte UDP (18-byte payload) for `secs`: packets received and sent per second.
fn iperf_udp(secs: u32) -> Result<(f64, f64)> {
    let t = secs.to_string();
    let udp = iperf(
        "serv1",
        &[
            "-c", "10.0.0.3", "-p", "5201", "-u", "-b", "0", "-l", "18", "-t", &t,
        ],
    )?;
    let sum = &udp["end"]["sum"];
    let packets = sum["packets"].as_f64().context("iperf3 UDP: no packets")?;
    let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
    let seconds = sum["seconds"].as_f64().unwrap_or(secs as f64).max(0.001);
    Ok(((packets - lost) / seconds, packets / seconds))
}

/// The batched sender and receiver (lbctl-harness udp-blast / udp-sink), 64-byte frames:
/// packets received and sent per second.
fn batched_udp(root: &Path, secs: u32) -> Result<(f64, f64)> {
    let t = secs.to_string();
    let harness = harness_bin(root);
    let exe = harness.to_str().unwrap();
    let sink = in_node(
        "serv3",
        &[exe, "udp-sink", "--listen", "0.0.0.0:9000", "--secs", &t],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .context("starting udp-sink")?;
    std::thread::sleep(Duration::from_millis(300));
    let blast = run_ok(&mut in_node(
        "serv1",
        &[
            exe,
            "udp-blast",
            "--to",
            "10.0.0.3:9000",
            "--len",
            "18",
            "--secs",
            &(secs + 1).to_string(),
        ],
    ))?;
    let sink = sink.wait_with_output().context("udp-sink")?;
    let blast: Value = serde_json::from_str(blast.trim()).context("udp-blast output")?;
    let got: Value = serde_json::from_slice(&sink.stdout).context("udp-sink output")?;
    Ok((
        got["pps"].as_f64().context("udp-sink output: no pps")?,
        blast["pps"].as_f64().context("udp-blast output: no pps")?,
    ))
}

pub fn datapath(root: &Path, secs: u32, rounds: u32, iters: u32, repeat: u32) -> Result<()> {
    let rounds = rounds.max(1);
    build_release(root)?;
    let lbctl = lbctl_bin(root);
    println!(
        "bench datapath: the BPF VTEP (lb_vxdtc or lb_vxdec / lb_vxenc / lb_vxfwd) vs the kernel's vxlan device"
    );
    println!(
        "\n  end to end, serv1 (vm1) -> serv3 (vm2) across the tunnel, {secs} s each (iperf3):"
    );
    let all = e2e_rounds(root, &lbctl, secs, rounds)?;
    print_medians(&all, rounds);

    // The single-run loops come last: right after the release build they ran 25-60 % slower,
    // floors included (the build's tail still on the CPUs).
    let out = run_ok(Command::new(harness_bin(root)).args([
        "bench-vtep",
        "--iters",
        &iters.to_string(),
        "--repeat",
        &repeat.to_string(),
    ]))?;
    print_per_packet(&out, iters, repeat)?;
    draw_per_packet(root, &out, iters, repeat)?;
    Ok(())
}

/// The three lab cases, in the order of the result vectors.
const CASES: [Case; 3] = [Case::Kernel, Case::KernelXdpNoop, Case::Ebpf];

/// The order the cases run in, round `round` (from 1): rotated by one each round, so each
/// case takes each position (first on a cold machine, last after the others' load) equally
/// often, as the README's "alternating rounds" promises.
fn round_order(round: u32, n: usize) -> Vec<usize> {
    let shift = (round.saturating_sub(1) as usize) % n.max(1);
    (0..n).map(|i| (i + shift) % n).collect()
}

/// Every round of the end-to-end cases; results per case (in `CASES` order).
fn e2e_rounds(root: &Path, lbctl: &Path, secs: u32, rounds: u32) -> Result<Vec<Vec<E2e>>> {
    // The machine is shared: run the cases in rotating rounds and compare medians.
    let mut all: Vec<Vec<E2e>> = vec![Vec::new(); CASES.len()];
    for round in 1..=rounds {
        for i in round_order(round, CASES.len()) {
            let case = CASES[i];
            let r = e2e_case(root, lbctl, case, secs)
                .with_context(|| format!("end-to-end case {}", case.name()))?;
            println!(
                "    round {round} {:<19} TCP {:>6.2} Gbit/s | 64-byte UDP received: {:>8.0} pkt/s batched ({:>8.0} sent), {:>7.0} pkt/s iperf3 ({:>7.0} sent)",
                case.name(),
                r.tcp_gbps,
                r.blast_pps,
                r.blast_sent_pps,
                r.udp_pps,
                r.udp_sent_pps
            );
            all[i].push(r);
        }
    }
    Ok(all)
}

/// `lbctl-harness bench-vtep`'s figures, with each one's floor.
fn print_per_packet(out: &str, iters: u32, repeat: u32) -> Result<()> {
    let v: Value = serde_json::from_str(out.trim()).context("bench-vtep output")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "\n  BPF_PROG_TEST_RUN, 64-byte inner frame ({} bytes + 50 outer), ns per packet:",
        v["inner_len"]
    );
    println!(
        "  single-run loop ({iters} runs of repeat=1 each, kernel-timed, the cases interleaved in chunks; medians of the chunks, \"over\": median of the per-chunk differences):"
    );
    println!(
        "    lb_vxdec  {:>7.1} ns   (fast path to a local endpoint; {:>5.1} over the floor)",
        f("decap_ns"),
        f("decap_over_floor_ns")
    );
    println!(
        "    lb_vxdec  {:>7.1} ns   (broadcast inner frame, into the bridge; {:>5.1} over)",
        f("decap_bridge_ns"),
        f("decap_bridge_ns") - f("floor_ns")
    );
    println!(
        "    lb_vxdec  {:>7.1} ns   (parsed to the VNI and passed; {:>5.1} over)",
        f("decap_parse_only_ns"),
        f("decap_parse_only_ns") - f("floor_ns")
    );
    println!(
        "    lb_xpass  {:>7.1} ns   (no-op XDP floor)",
        f("floor_ns")
    );
    println!(
        "    lb_vxenc  {:>7.1} ns   (TC, known unicast: flow hash, next hop, adjust_room, redirect; {:>5.1} over)",
        f("encap_ns"),
        f("encap_over_floor_ns")
    );
    println!(
        "    lb_tpass  {:>7.1} ns   (no-op TC floor)",
        f("tc_floor_ns")
    );
    println!(
        "    lb_vxdtc  {:>7.1} ns   (TC decapsulation, fast path to a local endpoint; {:>5.1} over lb_tpass on the same frame, {:.1})",
        f("decap_tc_ns"),
        f("decap_tc_over_floor_ns"),
        f("tc_floor_decap_ns")
    );
    println!("  live frames ({repeat} iterations, verdict carried out):");
    println!(
        "    lb_vxdec  {:>7.1} ns   (decapsulate + XDP_REDIRECT into a veth)",
        f("decap_live_ns")
    );
    println!(
        "    lb_xpass  {:>7.1} ns   (no-op XDP floor: XDP_PASS builds an skb for the stack)",
        f("floor_live_ns")
    );
    println!(
        "    lb_vxdec  {:>7.1} ns   (decapsulate, redirect target deleted: XDP_DROP, no transmit)",
        f("decap_live_drop_ns")
    );
    println!(
        "    lb_xdrop  {:>7.1} ns   (no-op XDP floor that drops)",
        f("floor_live_drop_ns")
    );
    let verdict = |v: f64, target: f64| if v <= target { "met" } else { "NOT met" };
    let over = f("decap_over_floor_ns");
    println!(
        "  targets (issue #13): decap fast path <= 40 ns over the floor: XDP {over:.1} ({}), TC {:.1} ({}); encap <= 400 ns: {:.1} ({}), {:.1} over the TC floor",
        verdict(over, 40.0),
        f("decap_tc_over_floor_ns"),
        verdict(f("decap_tc_over_floor_ns"), 40.0),
        f("encap_ns"),
        verdict(f("encap_ns"), 400.0),
        f("encap_over_floor_ns"),
    );

    Ok(())
}

/// `bench-vtep`'s figures as bars, each group next to the no-op floor it compares to.
fn draw_per_packet(root: &Path, out: &str, iters: u32, repeat: u32) -> Result<()> {
    let v: Value = serde_json::from_str(out.trim()).context("bench-vtep output")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let bars = |l: &[(&str, &str)]| -> Vec<(String, f64)> {
        l.iter()
            .map(|(label, k)| (label.to_string(), f(k)))
            .collect()
    };
    let groups = vec![
        (
            format!("single-run loop ({iters} runs of repeat=1, kernel-timed)"),
            bars(&[
                ("lb_vxdec, fast path to an endpoint", "decap_ns"),
                ("lb_vxdec, broadcast into the bridge", "decap_bridge_ns"),
                ("lb_vxdec, parsed to the VNI, passed", "decap_parse_only_ns"),
            ]),
            ("no-op XDP floor".to_string(), f("floor_ns")),
        ),
        (
            format!("TC single-run loop ({iters} runs of repeat=1, kernel-timed)"),
            bars(&[
                ("lb_vxenc (TC), known unicast", "encap_ns"),
                ("lb_vxdtc (TC decap), fast path", "decap_tc_ns"),
            ]),
            ("no-op TC floor".to_string(), f("tc_floor_ns")),
        ),
        (
            format!("live frames ({repeat} iterations), redirected"),
            bars(&[("lb_vxdec + XDP_REDIRECT into a veth", "decap_live_ns")]),
            ("no-op XDP_PASS floor".to_string(), f("floor_live_ns")),
        ),
        (
            format!("live frames ({repeat} iterations), dropped"),
            bars(&[("lb_vxdec, redirect target gone: drop", "decap_live_drop_ns")]),
            ("no-op XDP_DROP floor".to_string(), f("floor_live_drop_ns")),
        ),
    ];
    let title = "BPF VXLAN data path: ns per packet (64-byte inner frame), dashed: the no-op floor";
    bench_charts::write(
        root,
        "datapath.svg",
        &bench_charts::per_packet(&groups, title),
    )?;
    Ok(())
}

/// Medians per case over the rounds, and the ratios.
fn print_medians(all: &[Vec<E2e>], rounds: u32) {
    let med = |v: &[E2e], f: fn(&E2e) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.partial_cmp(b).unwrap());
        x[x.len() / 2]
    };
    let mut res = Vec::new();
    println!("  medians over {rounds} round(s):");
    for (i, case) in CASES.iter().enumerate() {
        let m = E2e {
            tcp_gbps: med(&all[i], |r| r.tcp_gbps),
            udp_pps: med(&all[i], |r| r.udp_pps),
            udp_sent_pps: med(&all[i], |r| r.udp_sent_pps),
            blast_pps: med(&all[i], |r| r.blast_pps),
            blast_sent_pps: med(&all[i], |r| r.blast_sent_pps),
        };
        println!(
            "    {:<19} TCP {:>6.2} Gbit/s | 64-byte UDP received: {:>8.0} pkt/s batched, {:>7.0} pkt/s iperf3",
            case.name(),
            m.tcp_gbps,
            m.blast_pps,
            m.udp_pps
        );
        res.push(m);
    }
    let (k, n, e) = (res[0], res[1], res[2]);
    println!(
        "  ratios ebpf/kernel of the medians: TCP {:.2}x (target >= 1.2), small packets {:.2}x batched (target >= 1.5) / {:.2}x iperf3",
        e.tcp_gbps / k.tcp_gbps,
        e.blast_pps / k.blast_pps,
        e.udp_pps / k.udp_pps
    );
    let (tcp, blast, udp) = (
        paired(&all[2], &all[0], |r| r.tcp_gbps),
        paired(&all[2], &all[0], |r| r.blast_pps),
        paired(&all[2], &all[0], |r| r.udp_pps),
    );
    println!(
        "  paired ratios ebpf/kernel (median of each round's ratio; the two ran minutes apart, not hours): TCP {tcp:.2}x, small packets {blast:.2}x batched / {udp:.2}x iperf3"
    );
    println!(
        "  XDP on the underlay veths alone (no-op program, kernel vxlan): TCP {:.2}x, small packets {:.2}x batched of plain kernel",
        n.tcp_gbps / k.tcp_gbps,
        n.blast_pps / k.blast_pps
    );
}

/// The median over rounds of `f(a) / f(b)`, each round's `a` against the same round's `b`:
/// on a shared machine the load moves between rounds more than within one.
fn paired(a: &[E2e], b: &[E2e], f: fn(&E2e) -> f64) -> f64 {
    let mut x: Vec<f64> = a.iter().zip(b).map(|(a, b)| f(a) / f(b)).collect();
    x.sort_by(|p, q| p.partial_cmp(q).unwrap_or(std::cmp::Ordering::Equal));
    x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::round_order;

    #[test]
    fn every_case_takes_every_position_over_the_rounds() {
        assert_eq!(round_order(1, 3), [0, 1, 2]);
        assert_eq!(round_order(2, 3), [1, 2, 0]);
        assert_eq!(round_order(3, 3), [2, 0, 1]);
        assert_eq!(round_order(4, 3), [0, 1, 2]);
        for pos in 0..3 {
            let mut seen: Vec<usize> = (1..=3).map(|r| round_order(r, 3)[pos]).collect();
            seen.sort();
            assert_eq!(seen, [0, 1, 2], "position {pos}");
        }
    }
}
