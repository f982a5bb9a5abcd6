//! BPF programs loaded by lbctl: the observation program on switch ports (STP BPDU and VRRP
//! advertisement counters) and the VXLAN tunnel endpoint (`vxlan.mode = "ebpf"`).
pub mod observe;
pub mod state_maps;
pub mod stp_gate;
pub mod vxlan;
