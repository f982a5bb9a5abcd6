//! `lbctl agent`: the balancer daemon. It runs the VRRP instance that owns the VIP, the L7
//! proxy on the service port (the VIP and the balancer's own external address), health
//! checks of the backends from the balancer's internal address, and an admin listener with
//! Prometheus metrics, JSON stats and the dashboard. In a lab it runs as a balancer node;
//! on a real host as a `[[machine]]` of the config (configs/pair.toml, the systemd unit
//! in configs/systemd/): `lbctl agent -c FILE --node NAME`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod dashboard;
pub mod plan;
pub mod privileges;
mod recorder;
mod state_sync;
mod stp_watch;
pub mod timeseries;
pub mod watch;

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use tracing::{error, info, info_span, Instrument};

use crate::balance::backend::BackendState;
use crate::vrrp::{VrrpConfig, VrrpHandle};
pub use plan::AgentPlan;

/// Raises the soft open-file limit to the hard one and says what it got, with a warning
/// when that is below what `max_conns` connections need.
fn open_file_limit(max_conns: usize) {
    match crate::fd_limit::raise() {
        Ok(l) => {
            info!(
                before = l.before,
                now = l.now,
                hard = l.hard,
                "open-file limit"
            );
            let want = crate::fd_limit::wanted(max_conns);
            if l.now < want {
                tracing::warn!(
                    limit = l.now,
                    want,
                    max_conns,
                    "open-file limit is below what limits.max_conns needs"
                );
            }
        }
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

/// Runs the agent until SIGTERM or Ctrl-C (then returns Ok), or until a task it cannot
/// run without dies (a proxy thread, the VRRP task, a health task: see [`watch`]); then it
/// resigns (priority-0 advert, VIP removed) and returns the error, so the process exits
/// non-zero and its supervisor restarts it.
pub async fn run(plan: AgentPlan) -> Result<()> {
    let span = info_span!("agent", node = %plan.node);
    async move {
        info!(
            listen = ?plan.listen,
            source = ?plan.source,
            backends = plan.backends.len(),
            "agent starting"
        );
        open_file_limit(plan.proxy_config().limits.max_conns);
        let backends = plan.backend_states();
        let mut watched = watch::Watched::default();
        let checks = crate::health::spawn(&backends, &plan.check, plan.source);
        for (b, t) in backends.iter().zip(checks) {
            watched.add(format!("health check ({})", b.name), t);
        }
        let vrrp = start_vrrp(&plan, &backends, &mut watched).await?;
        let sync = plan
            .pin_dir
            .as_ref()
            .and_then(|dir| state_sync::spawn(dir, backends.clone(), vrrp.clone()));
        let (dash, refresher, recorder) = start_dashboard(&plan, &backends, &vrrp);
        let admin = admin::serve(
            plan.admin,
            plan.node.clone(),
            backends.clone(),
            vrrp.clone(),
            Some(dash),
        )
        .await
        .context("starting the admin listener")?;
        let resign = Resign {
            handle: vrrp,
            cfg: plan.vrrp.clone(),
        };
        let (why_tx, why_rx) = tokio::sync::oneshot::channel();
        // On SIGTERM or a task's death, VRRP resigns first (priority 0, VIP removed) so
        // the backup takes over at once, then the proxy drains.
        let r = resign.clone();
        let shutdown = async move {
            let why = tokio::select! {
                () = signalled() => None,
                d = watched.first_death() => Some(d),
            };
            if let Some(d) = &why {
                error!("{d}: resigning and exiting");
            }
            r.run().await;
            watched.abort_all();
            let _ = why_tx.send(why);
        };
        let res = crate::proxy::run(plan.proxy_config(), backends, shutdown).await;
        if let Err(e) = &res {
            error!("{e:#}: resigning and exiting");
            resign.run().await;
        }
        admin.abort();
        if let Some(s) = sync {
            s.abort();
        }
        refresher.abort();
        recorder.abort();
        match why_rx.await {
            Ok(Some(died)) => Err(anyhow!(died)),
            _ => res,
        }
    }
    .instrument(span)
    .await
}

/// The dashboard, the task that refreshes its topology picture and the once-a-second
/// recorder of what it draws (with STP topology-change markers when BPF observers run).
fn start_dashboard(
    plan: &AgentPlan,
    backends: &[Arc<BackendState>],
    vrrp: &Option<VrrpHandle>,
) -> (
    Arc<dashboard::Dashboard>,
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
) {
    let dash = dashboard::Dashboard::new(
        plan.lab.clone(),
        plan.node.clone(),
        plan.peers.clone(),
        plan.names.clone(),
        plan.config_file.clone(),
    );
    let refresher = dash.spawn_refresher();
    let stp = match &plan.stp_observers {
        Some(dir) => Some(stp_watch::StpWatch::start(dir, plan.stp_quiet_s)),
        None => {
            info!("STP topology-change markers are off: BPF maps not used (--no-bpf, or a real machine)");
            None
        }
    };
    let recorder = recorder::spawn(
        dash.clone(),
        plan.node.clone(),
        backends.to_vec(),
        vrrp.clone(),
        stp,
    );
    (dash, refresher, recorder)
}

/// Waits for SIGTERM or Ctrl-C.
async fn signalled() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: stopping"),
    }
}

/// Starts the VRRP instance that owns the VIP (when the config has one for this node)
/// and the tracker that lowers its priority by the configured penalty while no backend
/// is healthy, so the other balancer takes over; both are watched.
async fn start_vrrp(
    plan: &AgentPlan,
    backends: &[Arc<BackendState>],
    watched: &mut watch::Watched,
) -> Result<Option<VrrpHandle>> {
    let Some(v) = &plan.vrrp else {
        return Ok(None);
    };
    let (h, task) = crate::vrrp::start(v.clone())
        .await
        .with_context(|| format!("starting VRRP instance {}", v.instance))?;
    watched.vrrp(task);
    let hh = h.clone();
    let bs = backends.to_vec();
    let tracker = tokio::spawn(async move {
        let mut last = None;
        loop {
            let healthy = bs.iter().any(|b| b.is_up());
            if last != Some(healthy) {
                if last.is_some() {
                    info!(healthy, "backend health changed: VRRP priority follows");
                }
                hh.set_healthy(healthy);
                last = Some(healthy);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    watched.add("health tracker", tracker);
    Ok(Some(h))
}

/// How the agent gives up the VIP: through the instance when it runs (a master sends
/// priority 0 and removes the VIP), then without it, for a VIP its dead task left behind.
#[derive(Clone)]
struct Resign {
    handle: Option<VrrpHandle>,
    cfg: Option<VrrpConfig>,
}

impl Resign {
    async fn run(&self) {
        if let Some(h) = &self.handle {
            h.shutdown().await;
        }
        if let Some(cfg) = &self.cfg {
            match crate::vrrp::resign_detached(cfg).await {
                Ok(true) => info!("resigned without the VRRP task: VIP removed"),
                Ok(false) => {}
                Err(e) => error!("resigning: {e:#}"),
            }
        }
    }
}
