//! Per-packet cost of the VTEP programs through `BPF_PROG_TEST_RUN`, next to the do-nothing
//! XDP program `lb_xpass` (the floor: what any XDP program costs to run at all). Run by
//! `lbctl-harness bench-vtep`, which `cargo xtask bench datapath` calls and parses.
//!
//! * Single-run loop: one `BPF_PROG_TEST_RUN` with `repeat = 1` per frame, so every run sees
//!   the original frame (with `repeat > 1` the kernel reuses one buffer, and a program that
//!   moves the packet head only decapsulates in the first iteration). The kernel's own
//!   per-run duration is averaged; it includes the same timer overhead for every program.
//!   The cases are interleaved in chunks ([`interleaved`]) and each figure is the median of
//!   its chunks; "over the floor" is the median of the per-chunk differences (paired), which
//!   holds still on a machine whose load moves.
//! * Live frames (`BPF_F_TEST_XDP_LIVE_FRAMES`, XDP only): the kernel re-initialises the frame
//!   for every iteration and carries out the verdict (the redirect into the DEVMAP target, or
//!   for `lb_xpass` building an skb and passing it up the stack), reported per packet.
//! * `lb_vxenc` is a TC program: live frames do not exist for it and a repeated run would
//!   grow the same skb again each time, so only the single-run loop applies. It runs the
//!   known-unicast case (next hop from the cache, redirect verdict), next to the do-nothing
//!   TC program `lb_tpass` (its floor).
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use aya::programs::{
    links::FdLink, SchedClassifier, TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode,
};
use lb_common::vxlan::{
    VX_DEC_PROG, VX_DEC_TC_PROG, VX_DROP_PROG, VX_ENC_PROG, VX_PASS_PROG, VX_TC_PASS_PROG,
};
use serde::Serialize;

use super::testbed::*;
use crate::datapath::vxlan::{load_vtep, LINKS_DIR};

#[derive(Debug, Serialize)]
pub struct VtepBench {
    /// Frames per single-run loop; iterations of the live-frames run.
    pub iters: u32,
    pub live_repeat: u32,
    /// Single-run loop, ns per packet.
    pub decap_ns: f64,
    pub encap_ns: f64,
    pub floor_ns: f64,
    /// Single-run loop of the do-nothing TC program `lb_tpass` on the same frame as
    /// `encap_ns`: the floor of a TC run.
    pub tc_floor_ns: f64,
    /// Paired differences: the median over the chunks of (fast-path decap - XDP floor) and
    /// (encap - TC floor), each chunk's two figures measured a few milliseconds apart.
    pub decap_over_floor_ns: f64,
    pub encap_over_floor_ns: f64,
    /// Single-run loop, a frame parsed to the VXLAN header and passed (wrong VNI): the cost of
    /// the checks alone.
    pub decap_parse_only_ns: f64,
    /// Single-run loop, a broadcast inner frame (no endpoint lookup, redirect to the bridge).
    pub decap_bridge_ns: f64,
    /// Single-run loop of `lb_vxdtc` (TC decapsulation) on the fast-path frame, the do-nothing
    /// TC program on the same frame, and their paired difference.
    pub decap_tc_ns: f64,
    pub tc_floor_decap_ns: f64,
    pub decap_tc_over_floor_ns: f64,
    /// Live frames, ns per packet (verdict carried out).
    pub decap_live_ns: f64,
    pub floor_live_ns: f64,
    /// Live frames with the redirect target's device deleted, so every decapsulated frame is
    /// dropped (`dec_no_dev`): the decapsulation without a veth transmit, next to
    /// `lb_xdrop`.
    pub decap_live_drop_ns: f64,
    pub floor_live_drop_ns: f64,
    /// Inner frame size used (bytes).
    pub inner_len: usize,
}

/// One test run of a program: input frame, output buffer.
type RunFn<'a> = dyn Fn(&[u8], &mut [u8]) -> Result<aya::programs::TestRunResult> + 'a;

fn single_loop(iters: u32, frame: &[u8], expect: u32, run: &RunFn<'_>) -> Result<f64> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let r = run(frame, &mut out)?;
        if r.return_value != expect {
            bail!("unexpected verdict {} (wanted {expect})", r.return_value);
        }
        total += r.duration;
    }
    Ok(total.as_nanos() as f64 / iters as f64)
}

/// One single-run case: the frame, the verdict it must get, the program run.
type Case<'a> = (&'a [u8], u32, Box<RunFn<'a>>);

/// Chunks the single-run loops are cut into and interleaved by.
const CHUNKS: u32 = 25;

/// Runs every case `iters` times in all, interleaved: [`CHUNKS`] chunks, each running every
/// case `iters / CHUNKS` times (in an order rotated by one each chunk), so a burst of load
/// from other processes hits all cases alike. Returns, per case, the ns per run of each chunk.
fn interleaved(iters: u32, cases: &[Case<'_>]) -> Result<Vec<Vec<f64>>> {
    let per_chunk = (iters / CHUNKS).max(1);
    let mut res = vec![Vec::new(); cases.len()];
    for chunk in 0..CHUNKS as usize {
        for k in 0..cases.len() {
            let i = (k + chunk) % cases.len();
            let (frame, expect, run) = &cases[i];
            res[i].push(single_loop(per_chunk, frame, *expect, run)?);
        }
    }
    Ok(res)
}

fn median(v: &[f64]) -> f64 {
    let mut x = v.to_vec();
    x.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median over chunks of `a[i] - b[i]`.
fn median_diff(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
    median(&d)
}

/// Loads the VTEP's programs and the no-op floors the bench compares them with.
fn load_programs(ebpf: &mut aya::Ebpf) -> Result<()> {
    for name in [VX_DEC_PROG, VX_PASS_PROG, VX_DROP_PROG] {
        let p: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("no {name}"))?
            .try_into()?;
        p.load()?;
    }
    for name in [VX_ENC_PROG, VX_TC_PASS_PROG, VX_DEC_TC_PROG] {
        let p: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("no {name}"))?
            .try_into()?;
        p.load()?;
    }
    Ok(())
}

/// One single-frame `test_run` of an XDP program.
fn xdp_run(p: &Xdp) -> impl Fn(&[u8], &mut [u8]) -> Result<aya::programs::TestRunResult> + '_ {
    move |f, o| {
        p.test_run(TestRunOptions {
            data_in: Some(f),
            data_out: Some(o),
            ..TestRunOptions::new()
        })
        .context("test_run")
    }
}

/// One single-frame `test_run` of a TC program.
fn tc_run(
    p: &SchedClassifier,
) -> impl Fn(&[u8], &mut [u8]) -> Result<aya::programs::TestRunResult> + '_ {
    move |f, o| {
        p.test_run(TestRunOptions {
            data_in: Some(f),
            data_out: Some(o),
            ..TestRunOptions::new()
        })
        .context("test_run")
    }
}

/// Nanoseconds per frame of `repeat` live frames (XDP_FLAGS live frames: the redirect happens).
fn live_frames(p: &Xdp, frame: &[u8], repeat: u32) -> Result<f64> {
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(64),
            ..TestRunOptions::new()
        })
        .context("test_run (live frames)")?;
    Ok(r.duration.as_nanos() as f64)
}

/// The single-run figures of [`VtepBench`] (the live-frames ones left at 0).
fn single_run_figures(ebpf: &aya::Ebpf, iters: u32) -> Result<VtepBench> {
    let xdp = |name: &str| -> Result<&Xdp> { Ok(ebpf.program(name).unwrap().try_into()?) };
    let tc =
        |name: &str| -> Result<&SchedClassifier> { Ok(ebpf.program(name).unwrap().try_into()?) };
    let (dec, pass) = (xdp(VX_DEC_PROG)?, xdp(VX_PASS_PROG)?);
    let (enc, tpass, dtc) = (tc(VX_ENC_PROG)?, tc(VX_TC_PASS_PROG)?, tc(VX_DEC_TC_PROG)?);

    // 64-byte inner frames (what the small-packet figure is about).
    let inner = inner_frame(MAC_ENDPOINT, MAC_FAR, 18);
    let outer = vxlan_frame(&Outer::default(), &inner);
    // Warm up (and learn MAC_FAR, so encapsulation takes the known-unicast path).
    single_loop(100, &outer, 4, &xdp_run(dec))?;
    let wrong_vni = vxlan_frame(
        &Outer {
            vni: VNI + 1,
            ..Outer::default()
        },
        &inner,
    );
    let bcast = vxlan_frame(&Outer::default(), &inner_arp(MAC_FAR));
    let to_far = inner_frame(MAC_FAR, MAC_ENDPOINT, 18);
    // Warm up: the first frame also fills the next-hop cache (VX_NH), as in steady
    // traffic, where the FIB is looked up once a second per remote VTEP.
    single_loop(100, &to_far, 7, &tc_run(enc))?;
    // TC_ACT_UNSPEC (-1) as the u32 test_run reports.
    let cases: Vec<Case<'_>> = vec![
        (&outer, 4, Box::new(xdp_run(dec))),
        (&outer, 2, Box::new(xdp_run(pass))),
        (&wrong_vni, 2, Box::new(xdp_run(dec))),
        (&bcast, 4, Box::new(xdp_run(dec))),
        (&to_far, 7, Box::new(tc_run(enc))),
        (&to_far, u32::MAX, Box::new(tc_run(tpass))),
        (&outer, 7, Box::new(tc_run(dtc))),
        (&outer, u32::MAX, Box::new(tc_run(tpass))),
    ];
    let chunks = interleaved(iters, &cases)?;
    let [decap, floor, parse, bridge, encap, tc_floor, dtc, tc_floor_dec] = chunks.as_slice()
    else {
        unreachable!("one result per case");
    };
    Ok(VtepBench {
        iters,
        live_repeat: 0,
        decap_ns: median(decap),
        encap_ns: median(encap),
        floor_ns: median(floor),
        tc_floor_ns: median(tc_floor),
        decap_over_floor_ns: median_diff(decap, floor),
        encap_over_floor_ns: median_diff(encap, tc_floor),
        decap_parse_only_ns: median(parse),
        decap_bridge_ns: median(bridge),
        decap_tc_ns: median(dtc),
        tc_floor_decap_ns: median(tc_floor_dec),
        decap_tc_over_floor_ns: median_diff(dtc, tc_floor_dec),
        decap_live_ns: 0.0,
        floor_live_ns: 0.0,
        decap_live_drop_ns: 0.0,
        floor_live_drop_ns: 0.0,
        inner_len: inner.len(),
    })
}

/// Fills in the live-frames figures of `b`; deletes the endpoint's device on the way.
fn live_figures(ebpf: &aya::Ebpf, live_repeat: u32, b: &mut VtepBench) -> Result<()> {
    let xdp = |name: &str| -> Result<&Xdp> { Ok(ebpf.program(name).unwrap().try_into()?) };
    let (dec, pass, drop) = (xdp(VX_DEC_PROG)?, xdp(VX_PASS_PROG)?, xdp(VX_DROP_PROG)?);
    let outer = vxlan_frame(&Outer::default(), &inner_frame(MAC_ENDPOINT, MAC_FAR, 18));
    let live = |p: &Xdp| live_frames(p, &outer, live_repeat);
    b.live_repeat = live_repeat;
    b.decap_live_ns = live(dec)?;
    b.floor_live_ns = live(pass)?;
    // Delete the endpoint's device: the kernel empties its DEVMAP slot and lb_vxdec
    // drops what it decapsulates for it.
    let out = std::process::Command::new("ip")
        .args(["link", "del", "e0"])
        .output()
        .context("ip link del e0")?;
    if !out.status.success() {
        bail!("ip link del e0: {}", String::from_utf8_lossy(&out.stderr));
    }
    b.decap_live_drop_ns = live(dec)?;
    b.floor_live_drop_ns = live(drop)?;
    Ok(())
}

/// Runs the measurements in a throwaway namespace.
pub fn run(iters: u32, live_repeat: u32) -> Result<VtepBench> {
    let net = TestNet::new()?;
    let spec = net.spec();
    // The live-frames redirect lands in e0's peer, which needs NAPI to accept it.
    net.run(|| crate::datapath::vxlan::ethtool::set_gro("e0p", true))?;
    net.run(move || {
        let mut ebpf = load_vtep(&spec)?;
        load_programs(&mut ebpf)?;
        let mut b = single_run_figures(&ebpf, iters)?;
        live_figures(&ebpf, live_repeat, &mut b)?;
        Ok(b)
    })
}

/// Attaches the do-nothing `lb_xpass` in native XDP to `ifaces` (in the calling thread's
/// namespace), pinning the links as `<pin_dir>/vxlinks/noop-<iface>` (removed by `lbctl down`
/// with the rest). The benchmark uses it to separate what XDP on a veth costs by itself from
/// what the VTEP adds.
pub fn attach_noop(pin_dir: &std::path::Path, ifaces: &[String]) -> Result<()> {
    let links = pin_dir.join(LINKS_DIR);
    std::fs::create_dir_all(&links)?;
    let mut ebpf = aya::EbpfLoader::new().load(crate::datapath::observe::object())?;
    let p: &mut Xdp = ebpf
        .program_mut(VX_PASS_PROG)
        .ok_or_else(|| anyhow!("no {VX_PASS_PROG}"))?
        .try_into()?;
    p.load()?;
    for iface in ifaces {
        let id = p
            .attach(iface, XdpMode::Driver)
            .with_context(|| format!("attaching {VX_PASS_PROG} to {iface}"))?;
        let link: FdLink = p.take_link(id)?.try_into()?;
        link.pin(links.join(format!("noop-{iface}")))?;
    }
    Ok(())
}
