//! Fault injection: `lbctl link down|up A B` and `lbctl bridge down|up BRIDGE`. After
//! the change lbctl waits until the kernel's spanning tree equals the tree 802.1D
//! predicts for the new topology, then flushes every bridge's learned MACs so traffic
//! follows the new tree at once (without that, recovery after a root failure took
//! 10–20 s longer than STP itself on these machines). Bridges under `lbctl stpd` (RSTP)
//! are the exception: their daemon flushes on topology changes itself, and a flush from
//! here would hide from `verify` a stale MAC that stpd failed to flush (issue 17's trap).
//!
//! `lbctl link blackhole NODE BRIDGE` (and `restore`) makes a node silent without any
//! link event: an nftables table in the bridge's namespace drops every IPv4 frame
//! bridged to or from the node's port (ARP still passes, nothing is reset), which is what
//! a hung host or a dropping firewall looks like to its peers. The table lives in the
//! lab's namespace, so `lbctl down` removes it with the namespace.
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::topo::build::flush_bridges;
use crate::topo::inspect;
use crate::topo::netns;
use crate::topo::nl;
use crate::topo::plan::{Plan, VethPlan};
use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

fn matches_end(end: &crate::topo::plan::VethEnd, x: &str) -> bool {
    end.node == x || end.bridge.as_deref() == Some(x)
}

/// The veth pairs joining `x` and `y` (each a bridge or node name).
pub fn find_links<'a>(plan: &'a Plan, x: &str, y: &str) -> Vec<&'a VethPlan> {
    plan.veths
        .iter()
        .filter(|v| {
            (matches_end(&v.a, x) && matches_end(&v.b, y))
                || (matches_end(&v.a, y) && matches_end(&v.b, x))
        })
        .collect()
}

/// Sets both ends of the link between `x` and `y` down or up.
pub async fn set_link(plan: &Plan, x: &str, y: &str, up: bool) -> Result<()> {
    let links = find_links(plan, x, y);
    let v = match links.as_slice() {
        [one] => *one,
        [] => bail!("no link between {x:?} and {y:?} in lab {:?}", plan.lab),
        many => {
            let l: Vec<String> = many
                .iter()
                .map(|v| format!("{}/{} - {}/{}", v.a.node, v.a.ifname, v.b.node, v.b.ifname))
                .collect();
            bail!(
                "{x:?} and {y:?} are joined by several links ({}); name bridges instead",
                l.join(", ")
            )
        }
    };
    for end in [&v.a, &v.b] {
        let h = netns::netlink(&plan.netns(&end.node)).await?;
        nl::set_up(&h, &end.ifname, up).await?;
    }
    Ok(())
}

/// Sets a bridge device down (the switch stops forwarding and sending BPDUs) or up.
pub async fn set_bridge(plan: &Plan, bridge: &str, up: bool) -> Result<()> {
    let Some(b) = plan.bridge(bridge) else {
        let names: Vec<&str> = plan.bridges.iter().map(|b| b.name.as_str()).collect();
        bail!(
            "no bridge {bridge:?} in lab {:?} (bridges: {})",
            plan.lab,
            names.join(", ")
        );
    };
    let h = netns::netlink(&plan.netns(&b.node)).await?;
    nl::set_up(&h, bridge, up).await
}

/// A failure lbctl can inject (and repair).
#[derive(Debug, Clone)]
pub enum Fault {
    /// The link between two bridges or nodes.
    Link(String, String),
    /// A whole bridge (switch).
    Bridge(String),
    /// A node's traffic through its port on a bridge silently dropped (node, bridge).
    Blackhole(String, String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Link(a, b) => write!(f, "link {a} - {b}"),
            Fault::Bridge(b) => write!(f, "bridge {b}"),
            Fault::Blackhole(n, b) => write!(f, "black hole {n} - {b}"),
        }
    }
}

/// Injects (`up` = false) or repairs (`up` = true) a fault.
pub async fn apply(plan: &Plan, f: &Fault, up: bool) -> Result<()> {
    match f {
        Fault::Link(a, b) => set_link(plan, a, b, up).await,
        Fault::Bridge(b) => set_bridge(plan, b, up).await,
        Fault::Blackhole(n, b) => set_blackhole(plan, n, b, !up),
    }
}

/// Where `node`'s port on `bridge` is: (namespace of the bridge, port name).
pub fn bridge_port(plan: &Plan, node: &str, bridge: &str) -> Result<(String, String)> {
    let ends = plan
        .veths
        .iter()
        .flat_map(|v| [(&v.a, &v.b), (&v.b, &v.a)])
        .find(|(port, peer)| port.bridge.as_deref() == Some(bridge) && peer.node == node);
    match ends {
        Some((port, _)) => Ok((plan.netns(&port.node), port.ifname.clone())),
        None => bail!(
            "{node:?} has no port on bridge {bridge:?} in lab {:?}",
            plan.lab
        ),
    }
}

/// The nftables table that black-holes one bridge port (one table per port, so restoring
/// one never touches another).
pub fn blackhole_table(port: &str) -> String {
    let safe: String = port
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("lbctl_bh_{safe}")
}

/// The ruleset dropping every IPv4 frame bridged to or from `port` (ARP still passes, so
/// the neighbour stays resolved and peers see silence, not an unreachable host).
pub fn blackhole_ruleset(port: &str) -> String {
    format!(
        "table bridge {} {{\n  chain drop_port {{\n    type filter hook forward priority -10; policy accept;\n    iifname \"{port}\" meta protocol ip counter drop\n    oifname \"{port}\" meta protocol ip counter drop\n  }}\n}}\n",
        blackhole_table(port)
    )
}

/// Black-holes (`on`) or restores `node`'s port on `bridge`. Restoring what is not
/// black-holed is fine; black-holing twice is too (the table is replaced).
pub fn set_blackhole(plan: &Plan, node: &str, bridge: &str, on: bool) -> Result<()> {
    let (ns, port) = bridge_port(plan, node, bridge)?;
    let table = blackhole_table(&port);
    let tables = nft(&ns, &["list", "tables"], None)?;
    if tables.split_whitespace().any(|w| w == table) {
        nft(&ns, &["delete", "table", "bridge", &table], None)?;
    }
    if on {
        nft(&ns, &["-f", "-"], Some(&blackhole_ruleset(&port)))?;
    }
    Ok(())
}

/// Frames the black hole of `node`'s port on `bridge` dropped so far (0 when none).
pub fn blackhole_drops(plan: &Plan, node: &str, bridge: &str) -> Result<u64> {
    let (ns, port) = bridge_port(plan, node, bridge)?;
    let t = nft(
        &ns,
        &["list", "table", "bridge", &blackhole_table(&port)],
        None,
    )?;
    let words: Vec<&str> = t.split_whitespace().collect();
    Ok(words
        .windows(2)
        .filter(|w| w[0] == "packets")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .sum())
}

/// Runs `nft ARGS` in namespace `ns` (the ruleset on stdin when given); its stdout.
pub fn nft(ns: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    netns::command_in(ns, &mut cmd)?;
    let mut child = cmd
        .spawn()
        .context("running nft (scripts/bootstrap.sh installs nftables)")?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .context("writing the nft ruleset")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft {} in {ns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Flushes the learned MACs of every bridge but those `lbctl stpd` runs (see the module
/// docs): the measured outage after a fault on an RSTP lab is stpd's own.
async fn flush_not_rstp(plan: &Plan) -> Result<()> {
    flush_bridges(plan, plan.bridges.iter().filter(|b| !b.rstp)).await
}

/// Waits until the kernel tree equals theory and no port is listening/learning, then
/// flushes learned MACs (not on RSTP bridges: [`flush_not_rstp`]). Returns the time it took.
pub async fn converge(cfg: &Config, progress: bool) -> Result<Duration> {
    let plan = Plan::new(cfg);
    let t0 = Instant::now();
    flush_not_rstp(&plan).await?;
    let fwd = cfg.max_forward_delay() as u64;
    let max_age = cfg
        .all_bridges()
        .iter()
        .map(|(_, b)| cfg.timers(b).1)
        .max()
        .unwrap_or(0) as u64;
    let limit = Duration::from_secs(max_age + 2 * fwd + 10);
    let mut stable = 0;
    let mut prog = crate::progress::Progress::new(progress);
    loop {
        let view = inspect::read_lab(&plan).await?;
        let (_, mism) = inspect::compare(&plan, &view);
        let transient = inspect::transient_ports(&view);
        if mism.is_empty() && transient.is_empty() {
            stable += 1;
            if stable >= 2 {
                break;
            }
        } else {
            stable = 0;
        }
        prog.update(&format!(
            "  STP: {:2} port(s) differ from theory, {:2} listening/learning, {:4.1} s",
            mism.len(),
            transient.len(),
            t0.elapsed().as_secs_f32()
        ));
        if t0.elapsed() > limit {
            let l: Vec<String> = mism
                .iter()
                .map(|m| {
                    format!(
                        "{}/{} is {:?} {:?}, expected {:?} {:?}",
                        m.bridge,
                        m.port,
                        m.actual_state,
                        m.actual_role,
                        m.expected_state,
                        m.expected_role
                    )
                })
                .collect();
            bail!(
                "the spanning tree did not reach the expected state within {limit:?}: {}",
                l.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    flush_not_rstp(&plan)
        .await
        .context("flushing MAC tables after convergence")?;
    let took = t0.elapsed();
    let rstp = if plan.rstp_bridges().next().is_some() {
        " (RSTP bridges: by their stpd)"
    } else {
        ""
    };
    prog.done(&format!(
        "  STP converged to the expected tree in {:.1} s; MAC tables flushed{rstp}",
        took.as_secs_f32()
    ));
    Ok(took)
}
