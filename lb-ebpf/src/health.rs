//! The agent's state maps. No program of ours writes them: the agent (userspace) creates them
//! from this object, pins them under its node's directory and writes them on every change,
//! so `lbctl status` and `bpftool map dump pinned …/LB_HEALTH` read backend health and VRRP
//! state with field names (BTF) without asking the agent. They live in the BPF object so that
//! their BTF comes from the same types the data path programs would use to read them.

use aya_ebpf::{btf_maps::HashMap, macros::btf_map};
use lb_common::{HEALTH_MAX, HealthKey, HealthVal, VRRP_MAX, VrrpState};

/// Backend health as one balancer sees it; key: backend address and port.
#[btf_map]
pub static LB_HEALTH: HashMap<HealthKey, HealthVal, { HEALTH_MAX as usize }> = HashMap::new();

/// VRRP instances of one balancer; key: VRID.
#[btf_map]
pub static LB_VRRP: HashMap<u32, VrrpState, { VRRP_MAX as usize }> = HashMap::new();
