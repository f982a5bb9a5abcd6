//! `lbctl agent`: the balancer daemon. It runs the L7 proxy on the service port (the VIP
//! and the balancer's own external address), health-checks the backends from the
//! balancer's internal address, and serves an admin listener with Prometheus metrics and
//! JSON stats. (VRRP joins it in a later step.) It reads the same config file as the
//! lab, so it runs unchanged on real hosts: `lbctl agent -c FILE --node NAME`.

pub mod admin;
pub mod plan;

use anyhow::{Context, Result};
use tracing::{info, info_span, Instrument};

pub use plan::AgentPlan;

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
        let backends = plan.backend_states();
        let _checks = crate::health::spawn(&backends, &plan.check, plan.source);
        let admin = admin::serve(plan.admin, plan.node.clone(), backends.clone())
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
        let res = crate::proxy::run(plan.proxy_config(), backends, shutdown).await;
        admin.abort();
        res
    }
    .instrument(span)
    .await
}
