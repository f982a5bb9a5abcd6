//! Checkpoint 2: VRRP. The intended master (derive::vrrp_order: highest priority, then
//! highest address) is MASTER and every other balancer BACKUP, exactly one balancer
//! holds the VIP and it answers; the master's whole external bridge down makes the next
//! balancer in VRRP order not on that bridge master while a client loop measures the
//! outage from every user that still has a path; bridge back up, the master preempts.
//! Then the master's agent is killed ([`super::agent_kill`]) and its successor takes over.

use super::lab::{pages_text, record, settle, Ctx, Marks};
use super::outage::{ClientLoop, BACK_WITHIN};
use super::report::Checkpoint;
use super::undo::FaultKey;
use crate::fault;
use crate::topo::inspect;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

fn states_text(s: &[(String, String)]) -> String {
    s.iter()
        .map(|(b, st)| format!("{b} {st}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Steady state: the intended master and backups, one VIP holder, pages through it.
pub(super) async fn steady(ctx: &Ctx, cp: &mut Checkpoint, label: &str) -> Result<bool> {
    let want = ctx.intended_vrrp();
    let took = ctx.wait_vrrp(&want, ctx.failover_limit()).await;
    let mut ev = vec![format!("now: {}", states_text(&ctx.vrrp_states()))];
    for b in ctx.balancers() {
        if let Some(v) = ctx.stats(&b).and_then(|s| s.vrrp) {
            ev.push(format!(
                "{b}: priority {} (effective {}), VRID {}, adverts sent {}, received {}",
                v.priority, v.effective_priority, v.vrid, v.adverts_sent, v.adverts_received
            ));
        }
    }
    let ok1 = cp.check(
        &format!("{label}: {}", states_text(&want)),
        took.is_some(),
        ev,
    );
    // The VIP may take a moment to move between holders after a state change.
    let mut holders = ctx.vip_holders().await?;
    let t = Instant::now();
    while holders.len() != 1 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        holders = ctx.vip_holders().await?;
    }
    let master = ctx.intended_master().unwrap_or_default();
    let ok2 = cp.check(
        &format!("{label}: exactly one holder of the VIP ({master})"),
        holders == [master.clone()],
        vec![format!("VIP held by: {}", holders.join(", "))],
    );
    let via = ctx.internal_addr(&master).map(|a| a.to_string());
    let mut ev = Vec::new();
    let mut ok3 = true;
    for u in ctx.users() {
        // ARP caches may still point at the old master for a moment (until its GARPs).
        let mut pages = ctx.pages(&u, 3)?;
        let t = Instant::now();
        while !pages.iter().all(|p| {
            p.as_ref()
                .map(|p| Some(&p.via) == via.as_ref())
                .unwrap_or(false)
        }) && t.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
            pages = ctx.pages(&u, 3)?;
        }
        let ok = pages.iter().all(|p| {
            p.as_ref()
                .map(|p| Some(&p.via) == via.as_ref())
                .unwrap_or(false)
        });
        ok3 &= ok;
        ev.push(format!("{u}: {}", pages_text(&pages)));
    }
    let ok3 = cp.check(
        &format!(
            "{label}: the VIP answers every user through {master} ({})",
            via.unwrap_or_default()
        ),
        ok3,
        ev,
    );
    Ok(ok1 && ok2 && ok3)
}

/// Who may take over when `bridge` goes down: balancers on it go down with it, the next
/// ones elsewhere in VRRP order take over (never empty).
fn takeover_from(ctx: &Ctx, bridge: &str) -> Result<Vec<String>> {
    let gone: Vec<String> = ctx
        .balancers()
        .into_iter()
        .filter(|b| ctx.ext_bridge(b).as_deref() == Some(bridge))
        .collect();
    let c = crate::verify::derive::takeover_candidates(&ctx.cfg, &gone);
    if c.is_empty() {
        anyhow::bail!("every balancer is on {bridge}: nothing to fail over to");
    }
    Ok(c)
}

/// Checkpoint 2: the master's bridge goes down, a backup takes over the VIP, users get
/// their pages through it; the bridge comes back and STP converges; then the agent-kill
/// sequence ([`super::agent_kill::run`]).
pub async fn run(ctx: &Ctx, cp: &mut Checkpoint) -> Result<()> {
    ctx.service()?;
    let master = ctx
        .intended_master()
        .context("the lab's config has no [vrrp]")?;
    let successors = ctx.successors();
    if successors.is_empty() {
        anyhow::bail!("only one balancer: nothing to fail over to");
    }
    steady(ctx, cp, "at rest").await?;

    let bridge = ctx
        .ext_bridge(&master)
        .context("the master has no interface in the VIP's subnet")?;
    let candidates = takeover_from(ctx, &bridge)?;
    let cut = Cut {
        key: FaultKey::Bridge(bridge.clone()),
        bridge,
    };
    let users = ctx.users();
    let (loops, downs) = ctx.inject_measured(&users, &cut.key).await?;
    let t = check_takeover(ctx, cp, &cut, &master, &candidates).await?;
    let view = inspect::read_lab(&ctx.plan).await?;
    let paths: Vec<bool> = users.iter().map(|u| ctx.has_path(&view, u)).collect();
    check_pages_through(ctx, cp, &cut, &t.backup, &loops, &downs, &paths).await?;
    repair_and_record(ctx, cp, &cut, loops, downs, &paths, t.took).await?;
    super::agent_kill::run(ctx, cp, &master, &successors).await
}

/// The master's bridge, as the fault that cuts it.
struct Cut {
    key: FaultKey,
    bridge: String,
}

impl Cut {
    /// The fault's name in reports (`bridge vswout1`).
    fn name(&self) -> String {
        self.key.fault().to_string()
    }
}

/// Who took the VIP over after the master's bridge went down, and how long it took.
struct Takeover {
    backup: String,
    took: Option<Duration>,
}

/// Waits for one of `candidates` to become MASTER and checks it holds the VIP.
async fn check_takeover(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    cut: &Cut,
    master: &str,
    candidates: &[String],
) -> Result<Takeover> {
    let (name, bridge) = (cut.name(), &cut.bridge);
    let who = candidates.join(" or ");
    let took = ctx.wait_takeover(candidates).await;
    let backup = took
        .as_ref()
        .map_or_else(|| candidates[0].clone(), |t| t.0.clone());
    let took = took.map(|t| t.1);
    let holders = ctx.vip_holders().await?;
    cp.check(
        &format!("{name} down: {who} becomes MASTER and holds the VIP"),
        took.is_some() && holders.contains(&backup),
        vec![
            match took {
                Some(d) => format!(
                    "{backup} MASTER {} ms after {bridge} went down",
                    d.as_millis()
                ),
                None => format!(
                    "{who} not MASTER after {:?}: {}",
                    ctx.failover_limit(),
                    states_text(&ctx.vrrp_states())
                ),
            },
            format!(
                "VIP held by: {} ({master} is cut off with its bridge)",
                holders.join(", ")
            ),
        ],
    );
    Ok(Takeover { backup, took })
}

/// Every user with a path gets its service back, and its pages through `backup`.
async fn check_pages_through(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    cut: &Cut,
    backup: &str,
    loops: &[ClientLoop],
    downs: &[u64],
    paths: &[bool],
) -> Result<()> {
    let bridge = &cut.bridge;
    let via = ctx.internal_addr(backup).map(|a| a.to_string());
    let mut ev = Vec::new();
    let mut ok = true;
    for (i, l) in loops.iter().enumerate() {
        if !paths[i] {
            ev.push(format!("{}: no path while {bridge} is down", l.node));
            continue;
        }
        let rec = l.wait_back(downs[i], ctx.stable_n(), BACK_WITHIN).await;
        let pages = ctx.pages(&l.node, 3)?;
        let through = pages.iter().all(|p| {
            p.as_ref()
                .map(|p| Some(&p.via) == via.as_ref())
                .unwrap_or(false)
        });
        ok &= rec && through;
        ev.push(format!(
            "{}: {}; {}",
            l.node,
            if rec {
                "service back"
            } else {
                "service NOT back within 20 s of the fault"
            },
            pages_text(&pages)
        ));
    }
    cp.check(
        &format!(
            "{} down: users get pages through {backup} ({})",
            cut.name(),
            via.unwrap_or_default()
        ),
        ok,
        ev,
    );
    Ok(())
}

/// Repairs `f`, waits for STP and the users' service, checks the steady state again and
/// records the event's outages.
async fn repair_and_record(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    cut: &Cut,
    loops: Vec<ClientLoop>,
    downs: Vec<u64>,
    paths: &[bool],
    took: Option<Duration>,
) -> Result<()> {
    let name = cut.name();
    let ups: Vec<u64> = loops.iter().map(|l| l.now_ms()).collect();
    ctx.repair(&cut.key).await?;
    let conv = fault::converge(&ctx.cfg, true).await;
    for (i, l) in loops.iter().enumerate() {
        l.wait_recovered(ups[i], ctx.stable_n(), Duration::from_secs(20))
            .await;
    }
    if let Err(e) = &conv {
        cp.check(
            &format!("{name} up: STP converges"),
            false,
            vec![format!("{e:#}")],
        );
    }
    steady(ctx, cp, &format!("{name} up")).await?;
    let marks: Vec<(u64, u64)> = downs.into_iter().zip(ups).collect();
    settle(ctx, &loops).await;
    let m = Marks {
        stp: (None, conv.ok().map(|d| d.as_millis() as u64)),
        takeover: (took.map(|d| d.as_millis() as u64), None),
    };
    record(cp, &name, loops, &marks, paths, m);
    Ok(())
}
