//! Checkpoint 3's "a backend black-holed" event: one backend's traffic is silently
//! dropped on its bridge port (`lbctl link blackhole`, no reset, no link event) while
//! every user runs its client loop; the balancers must notice on live traffic and
//! redispatch, so that **no request fails**, neither while the black hole is in place
//! nor once it is removed and the backend comes back.

use super::balancers::{expected_up, health_limit};
use super::lab::{record_events, settle, wait_for, Ctx};
use super::report::Checkpoint;
use super::undo::FaultKey;
use crate::fault;
use anyhow::{Context, Result};
use std::time::Duration;

/// How long the black hole stays while the users' loops run: long enough for several
/// requests to each backend, and for the slowest path (the health checks) to act.
const HOLD: Duration = Duration::from_secs(4);

/// The backend to silence: the first one of `master`'s own host that is a lab node
/// (reached over the bridge, not the tunnel), else the first lab node it balances over,
/// and the bridge its port is on.
fn victim(ctx: &Ctx, master: &str) -> Option<(String, String)> {
    let host = ctx.cfg.node(master).and_then(|n| n.host.clone());
    let nodes: Vec<String> = expected_up(&ctx.cfg, master, None)
        .into_iter()
        .filter(|n| ctx.cfg.node(n).is_some())
        .collect();
    let name = nodes
        .iter()
        .find(|n| ctx.cfg.node(n).and_then(|n| n.host.clone()) == host)
        .or(nodes.first())?
        .clone();
    let bridge = ctx.cfg.node(&name)?.ifaces.first()?.bridge.clone();
    Some((name, bridge))
}

/// Black-holes one backend under the users' loops, checks the master takes it out, then
/// removes the black hole and checks it comes back; 0 failed requests required.
pub async fn run(ctx: &Ctx, cp: &mut Checkpoint, master: &str) -> Result<()> {
    let (node, bridge) = victim(ctx, master).context("no backend node to black-hole")?;
    let f = FaultKey::Blackhole(node.clone(), bridge.clone());
    let users = ctx.users();
    let (loops, downs) = ctx.inject_measured(&users, &f).await?;
    tokio::time::sleep(HOLD).await;
    let down = ctx
        .stats(master)
        .and_then(|s| s.backends.into_iter().find(|b| b.name == node))
        .map(|b| (!b.up, b.check_reason.unwrap_or_default()));
    let drops = fault::blackhole_drops(&ctx.plan, &node, &bridge).unwrap_or(0);
    let ups: Vec<u64> = loops.iter().map(|l| l.now_ms()).collect();
    ctx.repair(&f).await?;
    let back = wait_for(health_limit(&ctx.cfg), || {
        ctx.stats(master)
            .is_some_and(|s| s.backends.iter().any(|b| b.name == node && b.up))
    })
    .await;
    settle(ctx, &loops).await;
    let name = f.fault().to_string();
    let marks: Vec<(u64, u64)> = downs.into_iter().zip(ups).collect();
    let paths = vec![true; users.len()];
    record_events(cp, &name, loops, &marks, &paths, (None, None));
    cp.check(
        &format!("{name}: {master} takes {node} out on live traffic, back once restored"),
        matches!(down, Some((true, _))) && back.is_some(),
        vec![
            format!("{drops} frames dropped on {node}'s port of {bridge}"),
            match &down {
                Some((true, why)) => format!("{master}: {node} DOWN ({why})"),
                Some((false, _)) => format!("{master}: {node} still UP after {HOLD:?}"),
                None => format!("{master}: no answer on its admin port"),
            },
            match back {
                Some(d) => format!("{node} UP again {:.1} s after the restore", d.as_secs_f32()),
                None => format!("{node} not UP again after the restore"),
            },
        ],
    );
    let seen: Vec<_> = cp.events.iter().filter(|e| e.fault == name).collect();
    let failed: u64 = seen.iter().map(|e| e.outage.failed).sum();
    let requests: u64 = seen.iter().map(|e| e.outage.requests).sum();
    let evidence = seen
        .iter()
        .map(|e| {
            format!(
                "{} {}: {} of {} requests failed",
                e.client, e.action, e.outage.failed, e.outage.requests
            )
        })
        .collect();
    cp.check(
        &format!(
            "{name}: 0 failed requests ({requests} sent, {} ms apart, {} ms deadline)",
            ctx.period.as_millis(),
            ctx.deadline.as_millis()
        ),
        failed == 0 && requests > 0,
        evidence,
    );
    Ok(())
}
