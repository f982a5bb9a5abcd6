//! The RSTP gate and status maps of a switch node: how `lbctl stpd` tells the BPF programs on
//! the bridge ports what it decided, and how `lbctl status` reads it back.
//!
//! * `STP_GATE` (key ifindex, value [`StpGate`]): `rstp = 1` makes the observer `lb_obs` drop
//!   BPDUs after counting them (stpd has read them through AF_PACKET, whose taps run before TC
//!   ingress), so the bridge, whose own STP is off, never floods them; `discard = 1` makes
//!   `lb_obs` (TC ingress) and `lb_gate` (TC egress) drop every data frame of the port, which
//!   is what "discarding" means whatever port state the kernel forced (it turns ports to
//!   forwarding on link up). BPDUs stpd sends always pass `lb_gate`.
//! * `RSTP_PORT` (key ifindex, value [`RstpPortInfo`]): the role, state and counters stpd
//!   reports per port; only userspace reads it (`bpftool map dump` too: the map has BTF).
//!
//! Both maps are created and pinned by [`super::observe::attach_observer`] next to `OBS_PORT`
//! in the node's pin directory, so they outlive a dead stpd: its ports stay as the map last
//! said (fail safe), and `down` removes them with the rest of the pins.
use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, Map, MapData};
use lb_common::{RstpPortInfo, StpGate, RSTP_PORT_MAP, STP_GATE_MAP};

/// Open handles on a node's pinned `STP_GATE` and `RSTP_PORT` maps.
pub struct StpMaps {
    gate: HashMap<MapData, u32, StpGate>,
    info: HashMap<MapData, u32, RstpPortInfo>,
}

impl StpMaps {
    /// The pinned STP_GATE and RSTP_PORT maps of a node (pin dir =
    /// `topo::state::node_pin_dir(lab, node)`), as pinned by the node's observer.
    pub fn open(pin_dir: &Path) -> Result<StpMaps> {
        Ok(StpMaps {
            gate: open_pinned(&pin_dir.join(STP_GATE_MAP))?,
            info: open_pinned(&pin_dir.join(RSTP_PORT_MAP))?,
        })
    }

    /// Sets the gate of the port `ifindex`; takes effect for the next frame.
    pub fn set_gate(&mut self, ifindex: u32, gate: StpGate) -> Result<()> {
        let gate = StpGate {
            _pad: [0; 2],
            ..gate
        };
        self.gate
            .insert(ifindex, gate, 0)
            .with_context(|| format!("writing {STP_GATE_MAP}[{ifindex}] = {gate:?}"))
    }

    /// Records what stpd knows about the port `ifindex` (for `status`).
    pub fn set_info(&mut self, ifindex: u32, info: &RstpPortInfo) -> Result<()> {
        let info = RstpPortInfo {
            _pad: [0; 3],
            ..*info
        };
        self.info
            .insert(ifindex, info, 0)
            .with_context(|| format!("writing {RSTP_PORT_MAP}[{ifindex}]"))
    }
}

/// For status: every RSTP_PORT entry of a node's pin dir (empty map when none, and when the
/// node has no such pin: an observer pinned by an older lbctl).
pub fn read_rstp_ports(pin_dir: &Path) -> Result<BTreeMap<u32, RstpPortInfo>> {
    let path = pin_dir.join(RSTP_PORT_MAP);
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let map: HashMap<MapData, u32, RstpPortInfo> = open_pinned(&path)?;
    map.iter()
        .map(|e| e.with_context(|| format!("iterating {}", path.display())))
        .collect()
}

fn open_pinned<V: aya::Pod>(path: &Path) -> Result<HashMap<MapData, u32, V>> {
    let data = MapData::from_pin(path).with_context(|| {
        format!(
            "opening pinned map {} (is the observer attached to this node?)",
            path.display()
        )
    })?;
    let map = Map::from_map_data(data).with_context(|| format!("map {}", path.display()))?;
    HashMap::try_from(map)
        .with_context(|| format!("{} is not the expected hash map", path.display()))
}

#[cfg(test)]
mod tests;
