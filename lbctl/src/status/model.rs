//! The status model: what `lbctl status` shows and `--json` prints, and what `graph`
//! draws the live lab from. Built by [`super::build`], drawn by [`super::render`].

use super::report::BalancerReport;
use crate::datapath::observe;
use crate::stp::theory::{PortState, Role};
use crate::topo::inspect::Mismatch;
use crate::topo::plan::Kind;
use crate::topo::rstp_view::RstpPortView;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Status {
    pub lab: String,
    pub nodes: Vec<NodeStatus>,
    pub lans: Vec<LanStatus>,
    pub ports: Vec<PortStatus>,
    pub mismatches: Vec<Mismatch>,
    /// Each bridge `lbctl stpd` runs: its daemon and the tree it follows.
    pub rstp: Vec<RstpBridgeStatus>,
    pub daemons: Vec<DaemonStatus>,
    pub counters: Vec<CounterRow>,
    /// Each VXLAN endpoint's counters.
    pub vxlan: Vec<VxlanStatus>,
    /// Each balancer's backends as its agent reports them.
    pub balancers: Vec<BalancerReport>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub kind: Kind,
    pub host: Option<String>,
    pub netns: String,
    pub present: bool,
    pub addresses: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct LanStatus {
    pub name: String,
    pub subnet: String,
    /// Root bridge(s) the kernel reports (more than one if the LAN is partitioned).
    pub roots: Vec<String>,
    pub expected_roots: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PortStatus {
    pub bridge: String,
    pub port: String,
    pub port_no: u16,
    pub peer: String,
    pub stp: bool,
    pub state: PortState,
    pub role: Role,
    pub cost: u32,
    pub expected_state: Option<PortState>,
    pub expected_role: Option<Role>,
    pub designated_bridge: String,
    pub ok: bool,
    /// On an RSTP bridge: role, state, edge, point-to-point and counters as stpd published them.
    pub rstp: Option<RstpPortView>,
}

/// A bridge whose tree `lbctl stpd` runs.
#[derive(Debug, Serialize)]
pub struct RstpBridgeStatus {
    pub bridge: String,
    pub node: String,
    /// The daemon (`stpd-<bridge>`) runs (None: none recorded). A dead daemon's ports stay
    /// as its BPF gate last said.
    pub daemon_running: Option<bool>,
    /// The root it follows, by bridge name; None before the daemon's first report.
    pub root: Option<String>,
    pub root_port: Option<String>,
    pub root_path_cost: u32,
    pub topology_changes: u64,
    /// Frames for the STP group address its codec refused, by reason.
    pub drops: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    pub node: String,
    pub daemon: String,
    pub pid: u32,
    pub running: bool,
    /// Whether a supervisor restarts it (`up` supervises every daemon it starts).
    pub supervised: bool,
    /// Restarts after a failure since `up` (0 when unsupervised).
    pub restarts: u32,
    /// How it last ended, when its supervisor saw it end ("killed by SIGKILL").
    pub last_exit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CounterRow {
    pub node: String,
    pub iface: String,
    #[serde(flatten)]
    pub counts: observe::PortCounters,
    /// (vrid, adverts)
    pub vrrp_by_vrid: Vec<(u8, u64)>,
}

/// One VXLAN endpoint: the BPF VTEP's counters (`VX_STATS`, summed over CPUs) and learned
/// MACs, or the kernel vxlan device's interface counters.
#[derive(Debug, Serialize)]
pub struct VxlanStatus {
    pub host: String,
    pub mode: crate::config::VxlanMode,
    /// `ebpf`: the hook that decapsulates (`tc` or `xdp`).
    pub decap: Option<crate::config::VxlanDecap>,
    pub device: String,
    /// Counter name -> value, in a stable order. `ebpf`: the fields of `VX_STATS`
    /// (`dec_*`, `pass_*`, `enc_*`, `learn_*`); `kernel`: `rx_packets`, `tx_packets`,
    /// `rx_bytes`, `tx_bytes`, `rx_dropped`, `tx_dropped` of the vxlan device.
    pub counters: Vec<(String, u64)>,
    /// `ebpf`: the learned MAC table (`VX_FDB`).
    pub fdb: Vec<crate::datapath::vxlan::FdbRow>,
    /// `ebpf`: the headroom port on the internal bridge (a vxlan device kept down, left out
    /// of the bridge's ports; see `datapath::vxlan::headroom`).
    pub headroom_port: Option<String>,
    /// `ebpf`: the least `needed_headroom` of the internal bridge's ports, in bytes (the
    /// VTEP's 50 bytes of outer headers fit when it is 50 or more; None: not reported).
    pub headroom: Option<u16>,
}
