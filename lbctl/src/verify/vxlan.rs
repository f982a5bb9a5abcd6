//! Checkpoint 4: VXLAN. The tunnel's endpoints are in place, every internal address
//! reaches every other (ICMP, from each internal node), the master spreads requests over
//! every server, and the tunnel's counters grow with traffic from the master to a server
//! on the other host. Counters come from the kernel vxlan device (`vxlan.mode = "kernel"`)
//! or from the BPF data path's pinned `VX_STATS` map (`"ebpf"`, see `bpf_counters`).

use super::balancers::{expected_up, health_limit, rotation_ok};
use super::lab::{pages_text, wait_for, Ctx};
use super::report::{Checkpoint, Status};
use crate::config::VxlanMode;
use crate::http_get;
use crate::topo::netns;
use crate::topo::nl;
use crate::topo::state;
use anyhow::{Context, Result};
use rtnetlink::packet_route::link::LinkAttribute;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
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

/// Where the BPF data path pins its tunnel counters for a host.
pub fn bpf_counters_pin(lab: &str, host: &str) -> PathBuf {
    state::node_pin_dir(lab, host).join("VX_STATS")
}

/// Per-field sums over every key and CPU of a pinned map, from `bpftool -j map dump`:
/// BTF field names when the map carries BTF ("formatted"), else the value's little-endian
/// u64 words as `word0`, `word1`…
pub fn parse_bpftool_sums(json: &str) -> Result<BTreeMap<String, u64>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("bpftool output: {e}"))?;
    let mut sums = BTreeMap::new();
    for entry in v.as_array().ok_or("bpftool output is not a list")? {
        if let Some(values) = entry["formatted"]["values"].as_array() {
            for cpu in values {
                let Some(fields) = cpu["value"].as_object() else {
                    continue;
                };
                for (k, n) in fields {
                    if let Some(n) = n.as_u64() {
                        *sums.entry(k.clone()).or_insert(0) += n;
                    }
                }
            }
            continue;
        }
        for cpu in entry["values"].as_array().into_iter().flatten() {
            let bytes: Vec<u8> = cpu["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| u8::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok())
                .collect();
            for (i, w) in bytes.chunks_exact(8).enumerate() {
                let n = u64::from_le_bytes(w.try_into().unwrap());
                *sums.entry(format!("word{i}")).or_insert(0) += n;
            }
        }
    }
    Ok(sums)
}

/// The tunnel's packet counters from the BPF data path's field sums (`lb_common::VxStats`):
/// received = frames decapsulated (`dec_bridge` + `dec_fast`), sent = outer packets sent
/// (`enc_copies`: one per unicast frame, one per remote for a flooded one).
pub fn counters_from_fields(f: &BTreeMap<String, u64>) -> Option<Counters> {
    Some(Counters {
        rx_packets: f.get("dec_bridge")? + f.get("dec_fast")?,
        tx_packets: *f.get("enc_copies")?,
    })
}

/// The BPF data path's tunnel counters: its pinned per-CPU array `VX_STATS`, read with
/// bpftool (field names from BTF). Err when the map is not pinned or its fields are not
/// the expected ones: the check is then reported as not available.
pub fn bpf_counters(lab: &str, host: &str) -> Result<Option<Counters>, String> {
    let pin = bpf_counters_pin(lab, host);
    if !pin.exists() {
        return Err(format!("{} not pinned", pin.display()));
    }
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&pin)
        .output()
        .map_err(|e| format!("running bpftool: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bpftool map dump {}: {}",
            pin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let fields = parse_bpftool_sums(&String::from_utf8_lossy(&out.stdout))?;
    counters_from_fields(&fields).map(Some).ok_or_else(|| {
        format!(
            "VX_STATS has no dec_bridge/dec_fast/enc_copies counters (fields: {})",
            fields.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Internal nodes and their addresses: every node with an address on the tunnel's LAN.
fn internal_nodes(ctx: &Ctx) -> Vec<(String, Ipv4Addr)> {
    let lan = ctx
        .cfg
        .vxlan
        .as_ref()
        .and_then(|v| v.endpoints.first())
        .and_then(|e| ctx.cfg.bridge(&e.bridge))
        .map(|(_, b)| b.lan.clone())
        .or_else(|| {
            // Without a tunnel: the LAN of the balancers' internal legs.
            let m = ctx.intended_master()?;
            let a = ctx.internal_addr(&m)?;
            ctx.cfg
                .lans
                .iter()
                .find(|l| l.subnet.contains(&a))
                .map(|l| l.name.clone())
        });
    let Some(lan) = lan else { return vec![] };
    let mut out = Vec::new();
    for n in &ctx.cfg.nodes {
        for i in &n.ifaces {
            let on_lan = ctx
                .cfg
                .bridge(&i.bridge)
                .map(|(_, b)| b.lan == lan)
                .unwrap_or(false);
            if let (true, Some(a)) = (on_lan, i.address) {
                out.push((n.name.clone(), a.addr()));
            }
        }
    }
    out
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

async fn reachability(ctx: &Ctx, cp: &mut Checkpoint) -> Result<()> {
    let nodes = internal_nodes(ctx);
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
        let mut children = Vec::new();
        for (a, b, addr) in &failing {
            children.push((
                (a.clone(), b.clone(), *addr),
                ping(&ctx.plan.netns(a), *addr)?,
            ));
        }
        let mut still = Vec::new();
        for (p, mut c) in children {
            if !c.wait().map(|s| s.success()).unwrap_or(false) {
                still.push(p);
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
    let lab = ctx.plan.lab.clone();
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
    let mut ev = Vec::new();
    let mut ok = true;
    for e in &vx.endpoints {
        let ns = ctx.plan.netns(&e.host);
        match vx.mode {
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
                state::node_pin_dir(&lab, &e.host).display()
            )),
        }
    }
    cp.check("VXLAN tunnel endpoints in place", ok, ev);

    // 2. Reachability of the internal LAN.
    reachability(ctx, cp).await?;

    // 3. The master spreads over every server.
    let master = ctx.intended_master().context("no [vrrp]")?;
    let user = ctx.users().first().cloned().context("no user node")?;
    let all = expected_up(&ctx.cfg, &master, true);
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

    // 4. Tunnel counters while the master talks to a server on the other host.
    let mhost = ctx.cfg.node(&master).and_then(|n| n.host.clone());
    let remote = ctx.cfg.service.as_ref().and_then(|s| {
        s.backends.iter().find_map(|b| {
            let n = ctx.cfg.node(b.node.as_ref()?)?;
            (n.host != mhost).then(|| {
                let a = n.ifaces.iter().find_map(|i| i.address)?.addr();
                Some((
                    n.name.clone(),
                    n.host.clone()?,
                    SocketAddr::from((a, n.http_port())),
                ))
            })?
        })
    });
    let Some((srv, shost, addr)) = remote else {
        cp.step(
            "VXLAN counters",
            Status::Skip,
            vec!["no server on another host than the master".into()],
        );
        return Ok(());
    };
    let mhost = mhost.unwrap_or_default();
    const N: u64 = 20;
    let read = |host: String| {
        let ns = ctx.plan.netns(&host);
        let dev = vx.device.clone();
        let mode = vx.mode;
        let lab = lab.clone();
        async move {
            match mode {
                VxlanMode::Kernel => kernel_counters(&ns, &dev)
                    .await
                    .map_err(|e| format!("{e:#}")),
                VxlanMode::Ebpf => bpf_counters(&lab, &host),
            }
        }
    };
    let before = (read(mhost.clone()).await, read(shost.clone()).await);
    let host = addr.to_string();
    let answered = netns::run_in(&ctx.plan.netns(&master), move || {
        Ok((0..N)
            .filter(|_| {
                http_get::get(addr, &host, "/", Duration::from_secs(1))
                    .is_ok_and(|r| r.status == 200)
            })
            .count() as u64)
    })?;
    let after = (read(mhost.clone()).await, read(shost.clone()).await);
    let what = format!("{master} made {N} requests to {srv} ({addr}), {answered} answered");
    let counter_source = match vx.mode {
        VxlanMode::Kernel => vx.device.clone(),
        VxlanMode::Ebpf => "VX_STATS (BPF)".to_string(),
    };
    match (before, after) {
        ((Ok(Some(m0)), Ok(Some(s0))), (Ok(Some(m1)), Ok(Some(s1)))) => {
            let tx = m1.tx_packets - m0.tx_packets;
            let rx = s1.rx_packets - s0.rx_packets;
            cp.check(
                &format!("VXLAN counters show the traffic to {srv}"),
                answered == N && tx >= N && rx >= N,
                vec![
                    what,
                    format!("{mhost} {}: tx +{tx} packets", counter_source),
                    format!("{shost} {}: rx +{rx} packets", counter_source),
                ],
            );
        }
        (b, a)
            if vx.mode == VxlanMode::Ebpf
                && [&b.0, &b.1, &a.0, &a.1].iter().any(|r| r.is_err()) =>
        {
            let why: Vec<String> = [&b.0, &b.1, &a.0, &a.1]
                .iter()
                .filter_map(|r| r.as_ref().err().cloned())
                .collect();
            cp.step(
                &format!("VXLAN counters show the traffic to {srv}"),
                Status::Skip,
                vec![what, format!("BPF counters not available: {}", why[0])],
            );
        }
        (b, a) => {
            let show = |r: &Result<Option<Counters>, String>| match r {
                Ok(Some(c)) => format!("rx {} tx {}", c.rx_packets, c.tx_packets),
                Ok(None) => format!("device {} MISSING", vx.device),
                Err(e) => format!("not available ({e})"),
            };
            cp.check(
                &format!("VXLAN counters show the traffic to {srv}"),
                false,
                vec![
                    what,
                    format!("{mhost}: before {}, after {}", show(&b.0), show(&a.0)),
                    format!("{shost}: before {}, after {}", show(&b.1), show(&a.1)),
                ],
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftool_dumps_are_summed_per_field() {
        // As `bpftool -j map dump` prints a per-CPU array with BTF (two CPUs).
        let btf = r#"[{"key":["0x00","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x01"]},{"cpu":1,"value":["0x02"]}],
            "formatted":{"key":0,"values":[{"cpu":0,"value":{"dec_bridge":3,"dec_fast":1,"dec_bytes":900,"dec_no_dev":9,"enc_unicast":5,"enc_flood":1,"enc_copies":6,"enc_drop_err":7,"pass_port":2}},
                                           {"cpu":1,"value":{"dec_bridge":4,"dec_fast":0,"dec_bytes":100,"dec_no_dev":0,"enc_unicast":2,"enc_flood":0,"enc_copies":2,"enc_drop_err":0,"pass_port":0}}]}}]"#;
        let f = parse_bpftool_sums(btf).unwrap();
        assert_eq!(f["dec_bridge"], 7);
        assert_eq!(f["dec_bytes"], 1000);
        assert_eq!(
            counters_from_fields(&f),
            Some(Counters {
                rx_packets: 8,
                tx_packets: 8
            })
        );
        // Without BTF: little-endian u64 words.
        let raw = r#"[{"key":["0x00"],"values":[{"cpu":0,"value":["0x01","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x01","0x00","0x00","0x00","0x00","0x00","0x00"]},
                                                {"cpu":1,"value":["0x02","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]}]"#;
        let f = parse_bpftool_sums(raw).unwrap();
        assert_eq!(f["word0"], 3);
        assert_eq!(f["word1"], 256);
        assert_eq!(counters_from_fields(&f), None);
        assert!(parse_bpftool_sums("nope").is_err());
    }
}
