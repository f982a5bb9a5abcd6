//! Head-end replication on the kernel data path: which forwarding entries each kernel vxlan
//! device gets. A vxlan device sends a frame whose destination MAC it has not learned
//! (broadcast, multicast, unknown unicast) to every destination of its all-zeros FDB entry,
//! one copy each, so a host with N - 1 remote VTEPs needs that entry to list all of them
//! (`bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst <remote>`, sent here as
//! RTM_NEWNEIGH by `nl::append_fdb`). Known unicast then goes to the one VTEP learned for the
//! MAC (learning is on), as on the BPF VTEP. Pure: planned from the topology plan only.

use super::plan::VxlanPlan;
use crate::config::VxlanMode;
use std::net::Ipv4Addr;

/// The MAC of the default (flood) entry of a vxlan device's forwarding table.
pub const FLOOD_MAC: [u8; 6] = [0; 6];

/// One destination of the all-zeros entry of a kernel vxlan device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodEntry {
    /// The host (namespace node) holding the device.
    pub node: String,
    pub device: String,
    /// A remote VTEP's underlay address.
    pub dst: Ipv4Addr,
}

/// The flood entries of every kernel-mode endpoint: one per remote endpoint, whatever that
/// endpoint's data path (a BPF VTEP decapsulates what the kernel sends, and the reverse).
/// BPF endpoints get none: their replication list is the `VX_REMOTE` map.
pub fn flood_entries(vxlans: &[VxlanPlan]) -> Vec<FloodEntry> {
    vxlans
        .iter()
        .filter(|x| x.mode == VxlanMode::Kernel)
        .flat_map(|x| {
            x.remotes.iter().map(|dst| FloodEntry {
                node: x.node.clone(),
                device: x.device.clone(),
                dst: *dst,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::topo::plan::Plan;

    fn big(mode_of: &dyn Fn(usize) -> &'static str) -> Config {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/configs/big.toml"
        ))
        .unwrap();
        // Each endpoint's own mode, after its `local` line.
        let mut out = String::new();
        let mut i = 0;
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("local = ") {
                out.push_str(&format!("mode = \"{}\"\n", mode_of(i)));
                i += 1;
            }
        }
        assert_eq!(i, 4, "big.toml has four endpoints");
        Config::from_toml(&out, "big.toml").expect("valid")
    }

    fn entries(cfg: &Config) -> Vec<(String, String)> {
        flood_entries(&Plan::new(cfg).vxlans)
            .into_iter()
            .map(|e| (e.node, e.dst.to_string()))
            .collect()
    }

    fn ip(last: u8) -> String {
        format!("172.16.1.{last}")
    }

    #[test]
    fn four_kernel_hosts_each_flood_to_the_three_others() {
        let got = entries(&big(&|_| "kernel"));
        let mut want = Vec::new();
        for (h, own) in [("vm1", 150), ("vm2", 151), ("vm3", 152), ("vm4", 153)] {
            for other in (150..=153).filter(|o| *o != own) {
                want.push((h.to_string(), ip(other)));
            }
        }
        assert_eq!(got, want);
        let all = flood_entries(&Plan::new(&big(&|_| "kernel")).vxlans);
        assert!(all.iter().all(|e| e.device == "vxlan0"));
    }

    #[test]
    fn mixed_hosts_flood_from_kernel_ends_to_every_other_end() {
        // vm1 and vm3 on the BPF VTEP, vm2 and vm4 on the kernel's device.
        let cfg = big(&|i| if i % 2 == 0 { "ebpf" } else { "kernel" });
        let want: Vec<(String, String)> = [
            ("vm2", 150),
            ("vm2", 152),
            ("vm2", 153),
            ("vm4", 150),
            ("vm4", 151),
            ("vm4", 152),
        ]
        .into_iter()
        .map(|(h, o)| (h.to_string(), ip(o)))
        .collect();
        assert_eq!(entries(&cfg), want);
        // The BPF ends replicate to all three others, kernel ends included.
        let p = Plan::new(&cfg);
        let vm1 = p.vxlans.iter().find(|x| x.node == "vm1").unwrap();
        assert_eq!(vm1.remotes.len(), 3);
    }

    #[test]
    fn no_kernel_end_no_entry_and_two_hosts_one_each() {
        assert!(entries(&big(&|_| "ebpf")).is_empty());
        let got = entries(&Config::default_scenario());
        assert_eq!(
            got,
            [("vm1".to_string(), ip(151)), ("vm2".to_string(), ip(150))]
        );
    }
}
