//! `lbctl status`: nodes and addresses, every bridge port's STP state and derived role
//! next to what theory expects, the root bridge of each LAN, daemons, and the BPF
//! observer's counters read from the pinned maps.
//!
//! Three stages: [`collect`] reads (the only I/O), [`build`] turns what was read into the
//! [`Status`] model, [`render`] draws the model as text; `--json` prints the model.
#![forbid(unsafe_code)]

pub mod build;
pub mod collect;
mod model;
pub mod render;
pub mod report;
#[cfg(test)]
pub(crate) mod snapshot;
#[cfg(test)]
mod tests;

use crate::config::Config;
use anyhow::Result;
pub use model::{
    CounterRow, DaemonStatus, LanStatus, NodeStatus, PortStatus, RstpBridgeStatus, Status,
    VxlanStatus,
};
pub use render::render;
pub use report::{BackendReport, BalancerReport, Source, VrrpReport, VrrpState};

/// Reads the running lab `cfg` describes and builds its status.
pub async fn collect(cfg: &Config) -> Result<Status> {
    let raw = collect::read(cfg).await?;
    Ok(build::build(cfg, raw))
}
