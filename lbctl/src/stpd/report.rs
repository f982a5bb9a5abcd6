//! What a running `lbctl stpd` tells the rest of lbctl about its bridge beyond the per-port
//! `RSTP_PORT` map: the root it follows, its root port, its topology changes and the frames
//! it refused, in `<run dir>/stpd/<bridge>.json` (rewritten whole, then renamed).
//! `status`, `up`'s wait and the fault commands read it to compare the tree with theory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::topo::state;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StpdReport {
    pub bridge: String,
    pub pid: u32,
    /// The root bridge this bridge follows (priority, MAC).
    pub root: (u16, [u8; 6]),
    pub root_path_cost: u32,
    /// The root port's number (None on the root bridge).
    pub root_port: Option<u16>,
    pub topology_changes: u64,
    /// Frames for the STP group address the codec refused, by reason.
    pub drops: BTreeMap<String, u64>,
}

pub fn path(lab: &str, bridge: &str) -> PathBuf {
    state::run_dir(lab)
        .join("stpd")
        .join(format!("{bridge}.json"))
}

/// Writes the report atomically (a reader never sees half of it).
pub fn write(file: &Path, r: &StpdReport) -> std::io::Result<()> {
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = file.with_extension("json.tmp");
    let text = serde_json::to_string(r).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

/// The last report of a bridge's daemon, if it wrote one.
pub fn read(lab: &str, bridge: &str) -> Option<StpdReport> {
    let text = std::fs::read_to_string(path(lab, bridge)).ok()?;
    serde_json::from_str(&text).ok()
}
