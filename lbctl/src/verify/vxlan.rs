//! Checkpoint 4: VXLAN. The tunnel's endpoints are in place, every internal address
//! reaches every other (ICMP, from each internal node), the master spreads requests over
//! every server, and the tunnel's counters grow with traffic from the master to a server
//! on every other host (derive.rs). Counters come from the kernel vxlan device (`vxlan.mode = "kernel"`)
//! or from the BPF data path's pinned `VX_STATS` map (`"ebpf"`, see `bpf_counters`). A
//! counter that cannot be read fails the check: the traffic was then never proven.

use super::balancers::{expected_up, health_limit, rotation_ok};
use super::derive::{self, Traffic};
use super::lab::{pages_text, wait_for, Ctx};
use super::report::{Checkpoint, Status};
use crate::config::{Vxlan, VxlanMode};
use crate::datapath::vxlan::{read_stats, VxCounters};
use crate::http_get;
use crate::topo::netns;
use crate::topo::nl;
use crate::topo::state;
use anyhow::{Context, Result};
use rtnetlink::packet_route::link::LinkAttribute;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Packets through one tunnel endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// The kernel vxlan device's counters (netlink IFLA_STATS64) in a host; None when the
/// device is missing.
pub async fn kernel_counters(ns: &str, device: &str) -> Result<Option<Counters>> {
    let h = netns::netlink(ns).await?;
    for m in nl::dump_links(&h).await? {
        if nl::link_name(&m) != Some(device) {
            continue;
        }
        let s = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::Stats64(s) => Some(*s),
            _ => None,
        });
        return Ok(Some(
            s.map(|s| Counters {
                rx_packets: s.rx_packets,
                tx_packets: s.tx_packets,
            })
            .unwrap_or_default(),
        ));
    }
    Ok(None)
}

/// The tunnel's packet counters from the BPF data path's summed `VX_STATS`:
/// received = frames decapsulated (`dec_bridge` + `dec_fast`), sent = outer packets sent
/// (`enc_copies`: one per unicast frame, one per remote for a flooded one).
pub fn counters_from_stats(s: &VxCounters) -> Counters {
    Counters {
        rx_packets: s.dec_bridge + s.dec_fast,
        tx_packets: s.enc_copies,
    }
}

/// The BPF data path's tunnel counters in a host: its pinned per-CPU array `VX_STATS`,
/// read and summed over CPUs with aya (`datapath::vxlan::read_stats`). Err when the map
/// is not pinned or cannot be read: the check then fails, naming why.
pub fn bpf_counters(lab: &str, host: &str) -> Result<Option<Counters>, String> {
    read_stats(&state::node_pin_dir(lab, host))
        .map(|s| Some(counters_from_stats(&s)))
        .map_err(|e| format!("{e:#}"))
}

/// One ping (1 s deadline) from inside a namespace; true if answered.
fn ping(ns: &str, to: Ipv4Addr) -> Result<std::process::Child> {
    let mut cmd = Command::new("ping");
    cmd.args(["-c", "1", "-W", "1", "-q", &to.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::command_in(ns, &mut cmd)?;
    cmd.spawn()
        .context("running ping (scripts/bootstrap.sh installs iputils-ping)")
}

/// Pings run in parallel, per batch.
const PINGS_AT_ONCE: usize = 64;

async fn reachability(ctx: &Ctx, cp: &mut Checkpoint) -> Result<()> {
    let nodes = derive::internal_nodes(&ctx.cfg);
    let host_of = |n: &str| ctx.cfg.node(n).and_then(|n| n.host.clone());
    let mut pairs: Vec<(String, String, Ipv4Addr)> = Vec::new();
    for (a, _) in &nodes {
        for (b, addr) in &nodes {
            if a != b {
                pairs.push((a.clone(), b.clone(), *addr));
            }
        }
    }
    // Up to three rounds; a pair that answered once is done (the first packet may wait
    // for ARP).
    let mut failing = pairs.clone();
    for _ in 0..3 {
        let mut still = Vec::new();
        // At most PINGS_AT_ONCE pings at a time: a big lab has thousands of pairs.
        for batch in failing.chunks(PINGS_AT_ONCE) {
            let mut children = Vec::new();
            for (a, b, addr) in batch {
                children.push((
                    (a.clone(), b.clone(), *addr),
                    ping(&ctx.plan.netns(a), *addr)?,
                ));
            }
            for (p, mut c) in children {
                if !c.wait().map(|s| s.success()).unwrap_or(false) {
                    still.push(p);
                }
            }
        }
        failing = still;
        if failing.is_empty() {
            break;
        }
    }
    let mut ev = vec![format!(
        "{} internal addresses ({}), {} pairs, {} answered",
        nodes.len(),
        nodes
            .iter()
            .map(|(n, a)| format!("{n} {a}"))
            .collect::<Vec<_>>()
            .join(", "),
        pairs.len(),
        pairs.len() - failing.len()
    )];
    for (a, b, addr) in &failing {
        let across = match (host_of(a), host_of(b)) {
            (Some(x), Some(y)) if x != y => {
                format!(" ({a} on {x}, {b} on {y}: through the VXLAN)")
            }
            _ => String::new(),
        };
        ev.push(format!("{a} -> {b} ({addr}): no answer{across}"));
    }
    cp.check(
        "all internal addresses reach each other",
        failing.is_empty() && nodes.len() >= 2,
        ev,
    );
    Ok(())
}

pub async fn run(ctx: &Ctx, cp: &mut Checkpoint) -> Result<()> {
    // 1. The tunnel's endpoints.
    let Some(vx) = ctx.cfg.vxlan.clone() else {
        cp.check(
            "VXLAN tunnel configured",
            false,
            vec![
                "the lab's config has no [vxlan]: the internal LAN is split between the hosts"
                    .into(),
            ],
        );
        reachability(ctx, cp).await?;
        return Ok(());
    };
    endpoints(ctx, cp, &vx).await?;
    // 2. Reachability of the internal LAN.
    reachability(ctx, cp).await?;
    // 3. The master spreads over every server.
    spread(ctx, cp).await?;
    // 4. Tunnel counters while the master talks to a server on the other host.
    tunnel_counters(ctx, cp, &vx).await
}

/// Step 1: each endpoint's kernel vxlan device up and a port of its bridge (kernel mode),
/// or the BPF data path's pin directory named (ebpf mode).
async fn endpoints(ctx: &Ctx, cp: &mut Checkpoint, vx: &Vxlan) -> Result<()> {
    let mut ev = Vec::new();
    let mut ok = true;
    for e in &vx.endpoints {
        let ns = ctx.plan.netns(&e.host);
        match vx.mode_of(e) {
            VxlanMode::Kernel => {
                let (nv, _) = crate::topo::inspect::read_node(&e.host, &ns).await?;
                let dev = nv.ifaces.iter().find(|i| i.name == vx.device);
                let br = nv.ifaces.iter().find(|i| i.name == e.bridge);
                match dev {
                    None => {
                        ok = false;
                        ev.push(format!(
                            "{}: VXLAN device {} is MISSING (VNI {}, UDP {})",
                            e.host, vx.device, vx.vni, vx.port
                        ));
                    }
                    Some(d) => {
                        let enslaved = br.is_some_and(|b| d.master == Some(b.ifindex));
                        ok &= d.admin_up && enslaved;
                        ev.push(format!(
                            "{}: VXLAN device {} {}, {} {}",
                            e.host,
                            vx.device,
                            if d.admin_up { "up" } else { "DOWN" },
                            if enslaved { "port of" } else { "NOT a port of" },
                            e.bridge
                        ));
                    }
                }
            }
            VxlanMode::Ebpf => ev.push(format!(
                "{}: BPF data path (no kernel device); pin dir {}",
                e.host,
                state::node_pin_dir(&ctx.plan.lab, &e.host).display()
            )),
        }
    }
    cp.check("VXLAN tunnel endpoints in place", ok, ev);
    Ok(())
}

/// Step 3: requests from a user through the master alternate over every server.
async fn spread(ctx: &Ctx, cp: &mut Checkpoint) -> Result<()> {
    let master = ctx.intended_master().context("no [vrrp]")?;
    let user = ctx.users().first().cloned().context("no user node")?;
    let all = expected_up(&ctx.cfg, &master, None);
    let via = ctx
        .internal_addr(&master)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut pages = ctx.pages(&user, 2 * all.len())?;
    if !rotation_ok(&pages, &all, &via) {
        // Health checks may still be bringing a backend back (after checkpoint 3).
        let _ = wait_for(health_limit(&ctx.cfg), || {
            ctx.stats(&master)
                .map(|s| s.backends.iter().all(|b| b.up))
                .unwrap_or(false)
        })
        .await;
        pages = ctx.pages(&user, 2 * all.len())?;
    }
    let mut ev = vec![pages_text(&pages)];
    if let Some(st) = ctx.stats(&master) {
        for b in st.backends.iter().filter(|b| !b.up) {
            ev.push(format!(
                "{master}: {} DOWN ({})",
                b.name,
                b.check_reason.as_deref().unwrap_or("no check yet")
            ));
        }
    }
    cp.check(
        &format!(
            "{master} spreads requests over {}",
            all.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        rotation_ok(&pages, &all, &via),
        ev,
    );
    Ok(())
}

/// The tunnel counters of one host, in its endpoint's mode (mixed labs: each host its own).
async fn read_counters(ctx: &Ctx, vx: &Vxlan, host: &str) -> Result<Option<Counters>, String> {
    match mode_of(vx, host) {
        VxlanMode::Kernel => kernel_counters(&ctx.plan.netns(host), &vx.device)
            .await
            .map_err(|e| format!("{e:#}")),
        VxlanMode::Ebpf => bpf_counters(&ctx.plan.lab, host),
    }
}

/// A host's data path: its endpoint's own mode, else the tunnel's.
fn mode_of(vx: &Vxlan, host: &str) -> VxlanMode {
    vx.endpoints
        .iter()
        .find(|e| e.host == host)
        .map_or(vx.mode, |e| vx.mode_of(e))
}

/// Counters of the sending host and of the receiving one.
type Pair = (
    Result<Option<Counters>, String>,
    Result<Option<Counters>, String>,
);

/// Step 4, for every tunnel host other than the master's (derive::counter_targets): the
/// master's tx and that host's rx counters both grow by at least the requests the master
/// makes to a server there. A counter that could not be read fails the step (the traffic
/// was never shown to cross the tunnel); a host without a server is a step that could
/// not run.
async fn tunnel_counters(ctx: &Ctx, cp: &mut Checkpoint, vx: &Vxlan) -> Result<()> {
    let master = ctx.intended_master().context("no [vrrp]")?;
    let targets = derive::counter_targets(&ctx.cfg, &master);
    if targets.is_empty() {
        cp.step(
            "VXLAN counters",
            Status::Skip,
            vec!["not run: no tunnel host other than the master's".into()],
        );
    }
    for (shost, target) in targets {
        match target {
            Some(t) => host_counters(ctx, cp, vx, &master, &shost, &t).await?,
            None => {
                cp.step(
                    &format!("VXLAN counters of {shost}"),
                    Status::Skip,
                    vec![format!(
                        "not run: no internal node on {shost} to send traffic to"
                    )],
                );
            }
        }
    }
    Ok(())
}

/// The counters of the master's host and of `shost` around N requests (or pings) from
/// the master to a node on `shost`.
async fn host_counters(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    vx: &Vxlan,
    master: &str,
    shost: &str,
    t: &Traffic,
) -> Result<()> {
    let mhost = ctx
        .cfg
        .node(master)
        .and_then(|n| n.host.clone())
        .unwrap_or_default();
    const N: u64 = 20;
    let before = (
        read_counters(ctx, vx, &mhost).await,
        read_counters(ctx, vx, shost).await,
    );
    let answered = send(ctx, master, t, N)?;
    let after = (
        read_counters(ctx, vx, &mhost).await,
        read_counters(ctx, vx, shost).await,
    );
    let (dst, what) = match t {
        Traffic::Http(n, a) => (n, format!("{master} made {N} requests to {n} ({a})")),
        Traffic::Ping(n, a) => (n, format!("{master} sent {N} pings to {n} ({a})")),
    };
    let what = format!("{what}, {answered} answered");
    let (ok, ev) = counters_verdict(vx, (&mhost, shost), &before, &after, N, answered);
    cp.check(
        &format!("VXLAN counters show the traffic to {dst} on {shost}"),
        ok,
        std::iter::once(what).chain(ev).collect(),
    );
    Ok(())
}

/// Sends `n` requests (or pings, one at a time) from `from` per `t`; how many answered.
fn send(ctx: &Ctx, from: &str, t: &Traffic, n: u64) -> Result<u64> {
    let ns = ctx.plan.netns(from);
    match t.clone() {
        Traffic::Http(_, addr) => {
            let host = addr.to_string();
            netns::run_in(&ns, move || {
                Ok((0..n)
                    .filter(|_| {
                        http_get::get(addr, &host, "/", Duration::from_secs(1))
                            .is_ok_and(|r| r.status == 200)
                    })
                    .count() as u64)
            })
        }
        Traffic::Ping(_, addr) => {
            let mut answered = 0;
            for _ in 0..n {
                let ok = ping(&ns, addr)?.wait().is_ok_and(|s| s.success());
                answered += u64::from(ok);
            }
            Ok(answered)
        }
    }
}

/// Whether the counters read before and after `n` requests (`answered` of them answered)
/// prove the traffic crossed the tunnel, with the evidence. Pure: any counter that could
/// not be read is a failure, never "not applicable".
pub fn counters_verdict(
    vx: &Vxlan,
    (mhost, shost): (&str, &str),
    before: &Pair,
    after: &Pair,
    n: u64,
    answered: u64,
) -> (bool, Vec<String>) {
    let source = |host: &str| match mode_of(vx, host) {
        VxlanMode::Kernel => vx.device.clone(),
        VxlanMode::Ebpf => "VX_STATS (BPF)".to_string(),
    };
    let (msrc, ssrc) = (source(mhost), source(shost));
    if let ((Ok(Some(m0)), Ok(Some(s0))), (Ok(Some(m1)), Ok(Some(s1)))) = (before, after) {
        let tx = m1.tx_packets.saturating_sub(m0.tx_packets);
        let rx = s1.rx_packets.saturating_sub(s0.rx_packets);
        return (
            answered == n && tx >= n && rx >= n,
            vec![
                format!("{mhost} {msrc}: tx +{tx} packets"),
                format!("{shost} {ssrc}: rx +{rx} packets"),
            ],
        );
    }
    let show = |r: &Result<Option<Counters>, String>| match r {
        Ok(Some(c)) => format!("rx {} tx {}", c.rx_packets, c.tx_packets),
        Ok(None) => format!("device {} MISSING", vx.device),
        Err(e) => format!("NOT READABLE ({e})"),
    };
    (
        false,
        vec![
            format!(
                "{mhost} {msrc}: before {}, after {}",
                show(&before.0),
                show(&after.0)
            ),
            format!(
                "{shost} {ssrc}: before {}, after {}",
                show(&before.1),
                show(&after.1)
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_counters_are_decapsulated_frames_and_outer_copies() {
        let s = VxCounters {
            dec_bridge: 7,
            dec_fast: 1,
            dec_bytes: 1000,
            dec_no_dev: 9,
            enc_unicast: 7,
            enc_flood: 1,
            enc_copies: 8,
            pass_port: 2,
            ..VxCounters::default()
        };
        assert_eq!(
            counters_from_stats(&s),
            Counters {
                rx_packets: 8,
                tx_packets: 8
            }
        );
    }

    fn vx(mode: VxlanMode) -> Vxlan {
        let mut v = crate::config::Config::default_scenario().vxlan.unwrap();
        v.mode = mode;
        v
    }

    fn c(rx: u64, tx: u64) -> Result<Option<Counters>, String> {
        Ok(Some(Counters {
            rx_packets: rx,
            tx_packets: tx,
        }))
    }

    #[test]
    fn counters_that_cannot_be_read_fail_the_check() {
        let v = vx(VxlanMode::Ebpf);
        let hosts = ("vm1", "vm2");
        // Grown by at least the requests on both sides: pass.
        let (ok, ev) = counters_verdict(
            &v,
            hosts,
            &(c(0, 5), c(3, 0)),
            &(c(0, 25), c(23, 0)),
            20,
            20,
        );
        assert!(ok, "{ev:?}");
        assert_eq!(ev[0], "vm1 VX_STATS (BPF): tx +20 packets");
        // Too few, or a request unanswered: fail.
        assert!(
            !counters_verdict(
                &v,
                hosts,
                &(c(0, 5), c(3, 0)),
                &(c(0, 24), c(23, 0)),
                20,
                20
            )
            .0
        );
        assert!(
            !counters_verdict(
                &v,
                hosts,
                &(c(0, 5), c(3, 0)),
                &(c(0, 25), c(23, 0)),
                20,
                19
            )
            .0
        );
        // The map not pinned (or unreadable) before or after: a failure, not a skip.
        let gone: Result<Option<Counters>, String> = Err("opening VX_STATS: not found".into());
        let (ok, ev) = counters_verdict(
            &v,
            hosts,
            &(gone.clone(), c(3, 0)),
            &(c(0, 25), c(23, 0)),
            20,
            20,
        );
        assert!(!ok);
        assert!(
            ev[0].contains("NOT READABLE (opening VX_STATS: not found)"),
            "{ev:?}"
        );
        assert!(!counters_verdict(&v, hosts, &(c(0, 5), c(3, 0)), &(c(0, 25), gone), 20, 20).0);
        // Kernel mode, device missing.
        let k = vx(VxlanMode::Kernel);
        let (ok, ev) = counters_verdict(
            &k,
            hosts,
            &(Ok(None), c(3, 0)),
            &(Ok(None), c(23, 0)),
            20,
            20,
        );
        assert!(!ok);
        assert!(ev[0].contains("MISSING"), "{ev:?}");
    }
}
