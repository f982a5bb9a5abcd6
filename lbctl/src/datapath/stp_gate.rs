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
//! * `STP_LEASE` (key ifindex, value `u64` ns of `CLOCK_MONOTONIC`): the time until which
//!   stpd vouches for the port's gate ([`StpMaps::renew_lease`], every [`LEASE_RENEW`], [`LEASE`]
//!   ahead). Past it, a port with `rstp = 1` drops data frames both ways (`lease_drop` in the
//!   observer's counters): the gate fails closed. Without it a dead stpd would leave its
//!   forwarding ports forwarding while its neighbours, who stop hearing its BPDUs, age its
//!   information out and turn their alternate ports to forwarding: a loop. No entry: no
//!   expiry (kernel-mode labs, and a port stpd never leased).
//!
//! The maps are created and pinned by [`super::observe::attach_observer`] next to `OBS_PORT`
//! in the node's pin directory, so they outlive a dead stpd: its ports stay as the map last
//! said until the lease runs out, then discard (fail safe), and `down` removes them with the
//! rest of the pins.
use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, Map, MapData};
use lb_common::{RstpPortInfo, StpGate, RSTP_PORT_MAP, STP_GATE_MAP, STP_LEASE_MAP};

use crate::rstp::fsm::PortState as RstpState;
use crate::rstp::types::Role;

/// How far ahead stpd sets a port's lease ([`StpMaps::renew_lease`] with
/// `monotonic_now() + LEASE`).
///
/// Why 1.5 s: it must run out well before the silent bridge's neighbours age its information
/// out and open their alternate ports, which takes 3 × hello time (3 s in the lab, never less
/// with the minimum hello of 1 s): when stpd dies, its ports close after at most 1.5 s, at
/// least 1.5 s before any neighbour starts forwarding towards them. And it must survive a
/// restart of stpd by its supervisor (~100 ms back-off plus start-up) and a renewal that comes
/// late on a loaded machine, so that a healthy or quickly restarted stpd never blinks its
/// forwarding ports: with renewals every [`LEASE_RENEW`] (500 ms), two renewals in a row can be
/// missed before the lease expires.
pub const LEASE: Duration = Duration::from_millis(1500);

/// How often stpd renews the lease of each of its ports (a third of [`LEASE`]).
pub const LEASE_RENEW: Duration = Duration::from_millis(500);

/// `CLOCK_MONOTONIC` now, the clock of `bpf_ktime_get_ns` that the BPF gate compares the
/// lease with (not `CLOCK_BOOTTIME`; lbctl never runs in a time namespace, which would offset
/// it).
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The codes of [`RstpPortInfo::role`], one table for stpd's writing and status's reading.
const ROLE_CODES: [(Role, u8); 5] = [
    (Role::Disabled, 0),
    (Role::Root, 1),
    (Role::Designated, 2),
    (Role::Alternate, 3),
    (Role::Backup, 4),
];

/// The codes of [`RstpPortInfo::state`], as [`ROLE_CODES`].
const STATE_CODES: [(RstpState, u8); 3] = [
    (RstpState::Discarding, 0),
    (RstpState::Learning, 1),
    (RstpState::Forwarding, 2),
];

/// A role's code in `RSTP_PORT`.
pub fn role_code(role: Role) -> u8 {
    ROLE_CODES
        .iter()
        .find(|(r, _)| *r == role)
        .map_or(0, |e| e.1)
}

/// The role of a code in `RSTP_PORT`; an unknown code takes no part (disabled).
pub fn role_of_code(code: u8) -> Role {
    ROLE_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(Role::Disabled, |e| e.0)
}

/// A state's code in `RSTP_PORT`.
pub fn state_code(state: RstpState) -> u8 {
    STATE_CODES
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |e| e.1)
}

/// The state of a code in `RSTP_PORT`; an unknown code discards (fail safe).
pub fn state_of_code(code: u8) -> RstpState {
    STATE_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(RstpState::Discarding, |e| e.0)
}

/// Open handles on a node's pinned `STP_GATE`, `STP_LEASE` and `RSTP_PORT` maps.
pub struct StpMaps {
    gate: HashMap<MapData, u32, StpGate>,
    lease: HashMap<MapData, u32, u64>,
    info: HashMap<MapData, u32, RstpPortInfo>,
}

impl StpMaps {
    /// The pinned STP_GATE and RSTP_PORT maps of a node (pin dir =
    /// `topo::state::node_pin_dir(lab, node)`), as pinned by the node's observer.
    pub fn open(pin_dir: &Path) -> Result<StpMaps> {
        Ok(StpMaps {
            gate: open_pinned(&pin_dir.join(STP_GATE_MAP))?,
            lease: open_pinned(&pin_dir.join(STP_LEASE_MAP))?,
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

    /// Vouches for the gate of the port `ifindex` until `until` (`CLOCK_MONOTONIC`, see
    /// [`monotonic_now`]; normally `monotonic_now() + LEASE`). Once it has passed, the BPF
    /// gate drops the port's data frames both ways if its gate has `rstp = 1`, until the next
    /// renewal. The first renewal of a port arms the fail-closed behaviour.
    pub fn renew_lease(&mut self, ifindex: u32, until: Duration) -> Result<()> {
        self.lease
            .insert(ifindex, lease_ns(until), 0)
            .with_context(|| format!("writing {STP_LEASE_MAP}[{ifindex}] = {until:?}"))
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

/// For status: the lease of every port of a node's pin dir (`CLOCK_MONOTONIC`, compare with
/// [`monotonic_now`]: in the past means the gate is failing closed); empty when none, and when
/// the node has no such pin (an observer pinned by an older lbctl).
pub fn read_leases(pin_dir: &Path) -> Result<BTreeMap<u32, Duration>> {
    let path = pin_dir.join(STP_LEASE_MAP);
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let map: HashMap<MapData, u32, u64> = open_pinned(&path)?;
    map.iter()
        .map(|e| {
            let (ifindex, ns) = e.with_context(|| format!("iterating {}", path.display()))?;
            Ok((ifindex, Duration::from_nanos(ns)))
        })
        .collect()
}

/// The lease's value in the map: nanoseconds, saturated (a lease beyond 584 years is forever).
fn lease_ns(until: Duration) -> u64 {
    u64::try_from(until.as_nanos()).unwrap_or(u64::MAX)
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
