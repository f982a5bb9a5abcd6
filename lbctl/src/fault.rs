//! Fault injection: `lbctl link down|up A B` and `lbctl bridge down|up BRIDGE`. After
//! the change lbctl waits until the kernel's spanning tree equals the tree 802.1D
//! predicts for the new topology, then flushes every bridge's learned MACs so traffic
//! follows the new tree at once (without that, recovery after a root failure took
//! 10–20 s longer than STP itself on these machines).
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::topo::build::flush_all;
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
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Link(a, b) => write!(f, "link {a} - {b}"),
            Fault::Bridge(b) => write!(f, "bridge {b}"),
        }
    }
}

/// Injects (`up` = false) or repairs (`up` = true) a fault.
pub async fn apply(plan: &Plan, f: &Fault, up: bool) -> Result<()> {
    match f {
        Fault::Link(a, b) => set_link(plan, a, b, up).await,
        Fault::Bridge(b) => set_bridge(plan, b, up).await,
    }
}

/// Waits until the kernel tree equals theory and no port is listening/learning, then
/// flushes learned MACs. Returns the time it took.
pub async fn converge(cfg: &Config, progress: bool) -> Result<Duration> {
    let plan = Plan::new(cfg);
    let t0 = Instant::now();
    flush_all(&plan).await?;
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
    flush_all(&plan)
        .await
        .context("flushing MAC tables after convergence")?;
    let took = t0.elapsed();
    prog.done(&format!(
        "  STP converged to the expected tree in {:.1} s; MAC tables flushed",
        took.as_secs_f32()
    ));
    Ok(took)
}
