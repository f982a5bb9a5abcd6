//! Checkpoint 2's second failure: the master's agent killed (SIGKILL: no priority-0
//! advert, no VIP removal) under the users' client loops. The backup takes over after its
//! Master_Down_Interval; requests may fail only inside the VRRP window (that interval plus
//! one advert) and none once the backup is master; `up`'s supervisor restarts the agent
//! (within 1 s) and removes the VIP it left, so exactly one node holds the VIP; the
//! restarted agent follows the backup for its preempt_delay, then the master takes the VIP
//! back, still without a failed request. The undo entry makes sure the agent runs again.

use super::lab::{record, settle, Ctx, Marks};
use super::outage::ClientLoop;
use super::report::Checkpoint;
use super::undo::Action;
use crate::topo::daemons::supervise;
use crate::topo::state::{self, DaemonRecord};
use anyhow::Result;
use std::time::{Duration, Instant};

/// Within this of the kill, the supervisor must have restarted the agent.
const RESTART_WITHIN: Duration = Duration::from_secs(1);

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn agent_record(ctx: &Ctx, node: &str) -> Option<DaemonRecord> {
    state::recorded(&ctx.plan.lab)
        .into_iter()
        .find(|r| r.node == node && r.daemon == "agent" && state::is_alive(r))
}

/// The VRRP window of a takeover by `backup`, ms: its Master_Down_Interval plus one advert.
fn window_ms(ctx: &Ctx, backup: &str) -> u64 {
    let Some(v) = &ctx.cfg.vrrp else { return 0 };
    let adv = u64::from(v.advert_int_ms);
    let prio = v
        .priorities
        .iter()
        .find(|p| p.node == backup)
        .map_or(100, |p| u64::from(p.priority));
    let skew = match v.version {
        crate::vrrp::codec::Version::V2 => (256 - prio) * 1000 / 256,
        crate::vrrp::codec::Version::V3 => (256 - prio) * adv / 256,
    };
    4 * adv + skew
}

/// When `backup` last became MASTER (Unix seconds), from its VRRP events.
fn became_master(ctx: &Ctx, backup: &str) -> Option<f64> {
    let v = ctx.stats(backup)?.vrrp?;
    v.events
        .iter()
        .rev()
        .find(|e| e.to == "MASTER")
        .map(|e| e.at)
}

/// Kills `master`'s agent; one of `successors` (its VRRP successors, several when their
/// priorities tie) must take over.
pub async fn run(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    master: &str,
    successors: &[String],
) -> Result<()> {
    let name = format!("agent {master} killed");
    let Some(rec) = agent_record(ctx, master) else {
        cp.check(
            &format!("{name}: {master}'s agent runs"),
            false,
            vec![format!("no running agent recorded for {master}")],
        );
        return Ok(());
    };
    let users = ctx.users();
    let loops = ctx.start_loops(&users)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let undo = Action::AgentRunning {
        node: master.to_string(),
    };
    ctx.undo.push(undo.clone());
    let kills: Vec<u64> = loops.iter().map(|l| l.now_ms()).collect();
    let t_kill = unix_now();
    if state::is_alive(&rec) {
        let pid = nix::unistd::Pid::from_raw(rec.pid as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
    }
    eprintln!("  {name}");
    let back = wait_back(ctx, master, rec.pid).await;
    restarted(ctx, cp, &name, master, t_kill, back);
    let (backup, takeover) = check_takeover(ctx, cp, &name, master, successors, t_kill).await;
    let backup = backup.as_str();
    one_holder(ctx, cp, &name).await?;
    // The restarted agent takes the VIP back after its preempt_delay.
    let delay = ctx.cfg.vrrp.as_ref().map_or(0, |v| v.preempt_delay_ms);
    let limit = Duration::from_millis(u64::from(delay)) + ctx.failover_limit();
    let home = ctx.wait_vrrp(&ctx.intended_vrrp(), limit).await;
    // The event's "up": the master is home again (the agent itself was back at once).
    let homes: Vec<u64> = loops.iter().map(|l| l.now_ms()).collect();
    super::vrrp::steady(ctx, cp, &format!("{name}, restarted")).await?;
    if home.is_some() {
        ctx.undo.done(&undo);
    }
    settle(ctx, &loops).await;
    let took_ms = takeover.map(|at| ((at - t_kill) * 1000.0) as u64);
    no_late_failures(ctx, cp, &name, backup, &loops, &kills, took_ms);
    let marks: Vec<(u64, u64)> = kills.into_iter().zip(homes).collect();
    let paths = vec![true; loops.len()];
    let m = Marks {
        stp: (None, None),
        takeover: (took_ms, None),
    };
    record(cp, &name, loops, &marks, &paths, m);
    Ok(())
}

/// After the kill, one of `successors` or the restarted `master` becomes MASTER: who, and
/// when (Unix seconds, at or after `t_kill`).
///
/// A successor normally takes over after Master_Down_Interval; but the supervisor restarts
/// the killed agent within ~100 ms, and a restarted agent that hears no master for its own
/// (shorter, higher-priority) Master_Down_Interval becomes master again itself, as VRRP
/// says (preempt_delay only holds back preempting a live master). Either way is one master
/// and no late failure, which is what this event requires.
async fn check_takeover(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    master: &str,
    successors: &[String],
    t_kill: f64,
) -> (String, Option<f64>) {
    let mut candidates = successors.to_vec();
    candidates.push(master.to_string());
    let who = candidates.join(" or ");
    let took = ctx.wait_takeover(&candidates).await;
    let backup = took
        .as_ref()
        .map(|t| t.0.clone())
        .or_else(|| successors.first().cloned())
        .unwrap_or_default();
    let takeover = became_master(ctx, &backup).filter(|at| *at >= t_kill);
    cp.check(
        &format!("{name}: {who} becomes MASTER"),
        took.is_some() && takeover.is_some(),
        vec![match takeover {
            Some(at) => format!(
                "{backup} MASTER {} ms after the kill",
                ((at - t_kill) * 1000.0) as u64
            ),
            None => format!("{who} did not take over"),
        }],
    );
    (backup, takeover)
}

/// Waits (up to 5 s) until the agent answers again under a new PID; how long it took.
async fn wait_back(ctx: &Ctx, node: &str, old: u32) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if agent_record(ctx, node).is_some_and(|r| r.pid != old) && ctx.stats(node).is_some() {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The supervisor restarted the agent within [`RESTART_WITHIN`] of the kill.
fn restarted(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    node: &str,
    t_kill: f64,
    back: Option<Duration>,
) {
    let sup = supervise::read_state(&ctx.plan.lab, node, "agent");
    let restart_ms = sup
        .as_ref()
        .and_then(|s| s.last_restart)
        .filter(|at| *at >= t_kill)
        .map(|at| ((at - t_kill) * 1000.0) as u64);
    let ok = back.is_some() && restart_ms.is_some_and(|ms| ms <= RESTART_WITHIN.as_millis() as u64);
    cp.check(
        &format!("{name}: its supervisor restarts it within 1 s"),
        ok,
        vec![
            match restart_ms {
                Some(ms) => format!(
                    "restarted {ms} ms after the kill (restarts: {}, last exit: {})",
                    sup.as_ref().map_or(0, |s| s.restarts),
                    sup.as_ref()
                        .and_then(|s| s.last_exit.clone())
                        .unwrap_or_default()
                ),
                None => "not restarted by a supervisor".into(),
            },
            match back {
                Some(d) => format!("a new agent answers {} ms after the kill", d.as_millis()),
                None => "no new agent answers within 5 s".into(),
            },
        ],
    );
}

/// Exactly one balancer holds the VIP (the killed agent's was removed).
async fn one_holder(ctx: &Ctx, cp: &mut Checkpoint, name: &str) -> Result<()> {
    let mut holders = ctx.vip_holders().await?;
    let t = Instant::now();
    while holders.len() != 1 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        holders = ctx.vip_holders().await?;
    }
    cp.check(
        &format!("{name}: exactly one node holds the VIP"),
        holders.len() == 1,
        vec![format!("VIP held by: {}", holders.join(", "))],
    );
    Ok(())
}

/// No request failed outside the VRRP window, and none once the backup was master.
fn no_late_failures(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    name: &str,
    backup: &str,
    loops: &[ClientLoop],
    kills: &[u64],
    took_ms: Option<u64>,
) {
    let window = window_ms(ctx, backup);
    let mut ok = true;
    let mut ev = Vec::new();
    for (l, kill) in loops.iter().zip(kills) {
        let samples = l.samples();
        // A request started up to 100 ms after the takeover may still have gone to the
        // old MAC (the gratuitous ARPs are on their way).
        let after = kill + took_ms.map_or(window, |t| (t + 100).min(window));
        let count = |from: u64, to: u64| {
            samples
                .iter()
                .filter(|s| !s.ok && s.t_ms >= from && s.t_ms < to)
                .count()
        };
        let (inside, late) = (count(*kill, after), count(after, u64::MAX));
        ok &= late == 0;
        ev.push(format!(
            "{}: {inside} failed inside the window, {late} after ({} requests)",
            l.node,
            samples.iter().filter(|s| s.t_ms >= *kill).count()
        ));
    }
    cp.check(
        &format!("{name}: no request fails after {backup} is master (VRRP window {window} ms)"),
        ok,
        ev,
    );
}
