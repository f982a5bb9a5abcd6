//! BPF programs loaded by lbctl: the observation program on switch ports (STP BPDU and VRRP
//! advertisement counters). The VXLAN data path joins here later.
pub mod observe;
pub mod state_maps;
