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

use anyhow::{Context, Result};
use tracing::{info, info_span, Instrument};

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

/// Runs the agent until SIGTERM or Ctrl-C.
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
        let _checks = crate::health::spawn(&backends, &plan.check, plan.source);
        // VRRP: the instance owns the VIP; a balancer with no healthy backend takes the
        // configured priority penalty so the other one takes over.
        let vrrp = match &plan.vrrp {
            Some(v) => {
                let (h, task) = crate::vrrp::start(v.clone())
                    .await
                    .with_context(|| format!("starting VRRP instance {}", v.instance))?;
                let hh = h.clone();
                let bs = backends.clone();
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
                Some((h, task, tracker))
            }
            None => None,
        };
        let sync = plan.pin_dir.as_ref().and_then(|dir| {
            state_sync::spawn(
                dir,
                backends.clone(),
                vrrp.as_ref().map(|(h, _, _)| h.clone()),
            )
        });
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
            backends.clone(),
            vrrp.as_ref().map(|(h, _, _)| h.clone()),
            stp,
        );
        let admin = admin::serve(
            plan.admin,
            plan.node.clone(),
            backends.clone(),
            vrrp.as_ref().map(|(h, _, _)| h.clone()),
            Some(dash),
        )
        .await
        .context("starting the admin listener")?;
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => info!("interrupted: stopping"),
            }
        };
        // On SIGTERM, VRRP resigns first (priority 0, VIP removed) so the backup takes
        // over at once, then the proxy drains.
        let vrrp_handle = vrrp.as_ref().map(|(h, _, _)| h.clone());
        let shutdown = async move {
            shutdown.await;
            if let Some(h) = vrrp_handle {
                h.shutdown().await;
            }
        };
        let res = crate::proxy::run(plan.proxy_config(), backends, shutdown).await;
        if let Some((_, task, tracker)) = vrrp {
            tracker.abort();
            task.abort();
        }
        admin.abort();
        if let Some(s) = sync {
            s.abort();
        }
        refresher.abort();
        recorder.abort();
        res
    }
    .instrument(span)
    .await
}
