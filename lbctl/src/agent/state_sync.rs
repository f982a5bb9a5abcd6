//! Keeps the pinned state maps (`LB_HEALTH`, `LB_VRRP`, see `datapath::state_maps`) in step
//! with the agent: every [`TICK`] it writes the entries that changed, so a health transition
//! is in the maps within one tick and counters are never more than a tick old; a VRRP change
//! wakes it at once.
//!
//! The maps are an export, not a dependency: when bpffs or the privileges are missing (an
//! agent on a real host run by hand) the agent logs why and goes on without them, and a
//! failed write is logged once and retried on the next tick.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::balance::backend::BackendState;
use crate::datapath::state_maps::StateMaps;
use crate::vrrp::VrrpHandle;

/// How often changes are written.
pub const TICK: Duration = Duration::from_millis(100);

/// Opens (or creates) the maps under `dir` and starts the sync task; None, with a warning,
/// when they cannot be opened.
pub fn spawn(
    dir: &Path,
    backends: Vec<Arc<BackendState>>,
    vrrp: Option<VrrpHandle>,
) -> Option<JoinHandle<()>> {
    let mut maps = match StateMaps::open(dir) {
        Ok(m) => m,
        Err(e) => {
            warn!(
                "backend health and VRRP state are not kept in BPF maps: {e:#} \
                 (`lbctl status` will ask the agent instead)"
            );
            return None;
        }
    };
    info!(dir = %maps.dir().display(), "backend health and VRRP state pinned in BPF maps");
    Some(tokio::spawn(async move {
        let mut failing = false;
        loop {
            let snap = vrrp.as_ref().map(|h| h.snapshot());
            match maps.sync(&backends, snap.as_ref()) {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    warn!("writing the state maps: {e:#}");
                    failing = true;
                }
                Err(_) => {}
            }
            // VRRP changes are written at once (a script that sees the VIP move must find
            // the new state in the map); the rest on the tick.
            match &vrrp {
                Some(h) => {
                    let _ = tokio::time::timeout(TICK, h.changed()).await;
                }
                None => tokio::time::sleep(TICK).await,
            }
        }
    }))
}
