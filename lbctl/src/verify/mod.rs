//! `lbctl verify`: the scenario's four checkpoints, proven on a running lab, with the
//! user-visible outage of every failure it injects.
//!
//! Each checkpoint runs as its own task; every failure it injects first pushes its repair
//! on the undo stack (undo.rs). When the task ends with an error or a panic, or the user
//! presses Ctrl-C (or sends SIGTERM), whatever is left on the stack is run, newest first,
//! and the STP tree is waited for, so the lab is left as it was found.
#![forbid(unsafe_code)]

mod agent_kill;
mod balancers;
pub mod derive;
pub mod draw;
mod lab;
mod outage;
pub mod report;
mod silent;
mod stp;
pub mod undo;
mod vrrp;
mod vxlan;

use crate::config::{Config, VxlanMode};
use crate::fault;
use crate::topo::plan::Plan;
use anyhow::Result;
use lab::Ctx;
use report::{Checkpoint, Report, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

pub const NAMES: [&str; 4] = ["STP", "VRRP", "balancers", "VXLAN"];

pub struct Options {
    /// Checkpoints to run (1–4); empty: all, in order.
    pub only: Vec<u8>,
    pub period: Duration,
    pub deadline: Duration,
    /// The scenario the STP tree must match (default: the built-in one, checked only on
    /// a lab with the scenario's STP bridges).
    pub reference: Option<Config>,
    /// At most this many of checkpoint 1's failure events (derive::stp_events).
    pub max_events: Option<usize>,
}

async fn checkpoint(ctx: &Ctx, n: u8) -> Checkpoint {
    let t = Instant::now();
    let mut cp = Checkpoint::new(n, NAMES[(n - 1) as usize]);
    cp.live = true;
    let r = match n {
        1 => stp::run(ctx, &mut cp).await,
        2 => vrrp::run(ctx, &mut cp).await,
        3 => balancers::run(ctx, &mut cp).await,
        _ => vxlan::run(ctx, &mut cp).await,
    };
    if let Err(e) = r {
        cp.step("error", Status::Fail, vec![format!("{e:#}")]);
    }
    cp.duration_ms = t.elapsed().as_millis() as u64;
    cp
}

/// Runs whatever is left on the undo stack, then waits for the tree; lines for the report.
async fn undo_all(ctx: &Ctx) -> Vec<String> {
    if ctx.undo.is_empty() {
        return vec![];
    }
    eprintln!("verify: undoing the failures still injected");
    let mut lines = ctx.undo.run_all(&ctx.plan).await;
    match fault::converge(&ctx.cfg, true).await {
        Ok(d) => lines.push(format!(
            "STP back to the expected tree in {:.1} s",
            d.as_secs_f32()
        )),
        Err(e) => lines.push(format!("STP after undo: FAILED ({e:#})")),
    }
    for l in &lines {
        eprintln!("  {l}");
    }
    lines
}

/// Runs the checkpoints `opts` asks for (all four by default) on the lab of `cfg`, one task
/// each, undoing every fault after each; SIGINT or SIGTERM stops at the current one (its
/// faults undone too).
pub async fn run(cfg: Config, opts: Options) -> Result<Report> {
    let t0 = Instant::now();
    let list: Vec<u8> = if opts.only.is_empty() {
        vec![1, 2, 3, 4]
    } else {
        opts.only.clone()
    };
    let ctx = Arc::new(context(cfg, opts));
    let mut report = Report {
        schema: report::SCHEMA,
        lab: ctx.plan.lab.clone(),
        data_path: data_path_name(&ctx.cfg).into(),
        passed: false,
        interrupted: false,
        duration_ms: 0,
        checkpoints: vec![],
        undone: vec![],
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    for n in list {
        eprintln!("verify: checkpoint {n} ({})", NAMES[(n - 1) as usize]);
        let c = ctx.clone();
        let mut task = tokio::spawn(async move { checkpoint(&c, n).await });
        let done = tokio::select! {
            r = &mut task => Some(r),
            _ = sigint.recv() => None,
            _ = sigterm.recv() => None,
        };
        match done {
            Some(r) => report.checkpoints.push(finished(n, r)),
            None => {
                eprintln!("verify: interrupted");
                task.abort();
                let _ = task.await;
                report.interrupted = true;
            }
        }
        report.undone.extend(undo_all(&ctx).await);
        if report.interrupted {
            break;
        }
    }
    report.duration_ms = t0.elapsed().as_millis() as u64;
    report.finish();
    Ok(report)
}

/// What every checkpoint of a run shares.
fn context(cfg: Config, opts: Options) -> Ctx {
    let explicit_scenario = opts.reference.is_some();
    Ctx {
        plan: Plan::new(&cfg),
        reference: opts.reference.unwrap_or_else(Config::default_scenario),
        undo: undo::Undo::default(),
        period: opts.period,
        deadline: opts.deadline,
        explicit_scenario,
        max_events: opts.max_events,
        cfg,
    }
}

/// The report's name for the lab's VXLAN data path.
fn data_path_name(cfg: &Config) -> &'static str {
    match cfg.vxlan.as_ref().map(|v| v.mode) {
        Some(VxlanMode::Kernel) => "kernel",
        Some(VxlanMode::Ebpf) => "ebpf",
        None => "none",
    }
}

/// Checkpoint `n` as its task ended: its result, or a failed step naming the panic.
fn finished(n: u8, r: Result<Checkpoint, tokio::task::JoinError>) -> Checkpoint {
    match r {
        Ok(cp) => {
            eprintln!(
                "verify: checkpoint {n} {}",
                if cp.passed { "PASS" } else { "FAIL" }
            );
            cp
        }
        Err(e) => {
            let msg = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            };
            let mut cp = Checkpoint::new(n, NAMES[(n - 1) as usize]);
            cp.step("panic", Status::Fail, vec![msg]);
            cp
        }
    }
}
