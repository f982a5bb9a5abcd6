//! What the agent may do, checked before it starts: an agent without root runs on the
//! capabilities it was given (the systemd unit's `AmbientCapabilities`). Without
//! CAP_NET_ADMIN the VRRP instance would still become MASTER but could not add the VIP,
//! so nobody would serve it: better to refuse at once, naming what is missing and why.
//!
//! The decision is pure ([`missing`]); reading /proc is at the edge ([`check`]).
#![forbid(unsafe_code)]

use anyhow::{bail, Result};

use super::AgentPlan;

/// One capability the plan needs, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub cap: &'static str,
    pub bit: u32,
    pub why: String,
}

/// The capabilities `plan` needs: VRRP's raw socket and gratuitous ARP (CAP_NET_RAW), the
/// VIP added and removed through netlink (CAP_NET_ADMIN), listeners on ports below
/// `unprivileged_port_start` (CAP_NET_BIND_SERVICE). The BPF maps are not needed: the
/// agent goes on without them.
pub fn needs(plan: &AgentPlan, unprivileged_port_start: u16) -> Vec<Need> {
    let mut out = Vec::new();
    if let Some(v) = &plan.vrrp {
        out.push(Need {
            cap: "CAP_NET_RAW",
            bit: 13,
            why: format!("the VRRP socket and gratuitous ARP on {}", v.interface),
        });
        out.push(Need {
            cap: "CAP_NET_ADMIN",
            bit: 12,
            why: format!("adding and removing the VIP on {}", v.interface),
        });
    }
    let ports = plan
        .listen
        .iter()
        .map(|l| l.port())
        .chain([plan.admin.port()]);
    if let Some(low) = ports.filter(|p| *p < unprivileged_port_start).min() {
        out.push(Need {
            cap: "CAP_NET_BIND_SERVICE",
            bit: 10,
            why: format!("listening on port {low}"),
        });
    }
    out
}

/// The needs not in the effective set `have` (a CapEff mask).
pub fn missing(have: u64, needs: Vec<Need>) -> Vec<Need> {
    needs
        .into_iter()
        .filter(|n| have & (1u64 << n.bit) == 0)
        .collect()
}

/// The CapEff mask of a /proc/PID/status text.
pub fn effective(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Refuses to start when this process lacks a capability the plan needs.
pub fn check(plan: &AgentPlan) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(have) = effective(&status) else {
        tracing::warn!("cannot read this process's capabilities: not checked");
        return Ok(());
    };
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    let gaps = missing(have, needs(plan, start));
    if gaps.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = gaps
        .iter()
        .map(|n| format!("{} ({})", n.cap, n.why))
        .collect();
    bail!(
        "the agent lacks {}: run it as root or grant them (the lbctl-agent@ unit's \
         AmbientCapabilities and CapabilityBoundingSet)",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn pair() -> AgentPlan {
        let cfg = Config::from_toml(include_str!("../../../configs/pair.toml"), "pair.toml")
            .expect("pair.toml is valid");
        AgentPlan::new(&cfg, "lb1", &[]).unwrap()
    }

    fn caps(needs: &[Need]) -> Vec<&str> {
        needs.iter().map(|n| n.cap).collect()
    }

    #[test]
    fn pair_needs_raw_admin_and_a_low_port() {
        let n = needs(&pair(), 1024);
        assert_eq!(
            caps(&n),
            ["CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(n[2].why, "listening on port 80");
        // Ports from 80 up unprivileged (a sysctl some distributions set): no bind cap.
        assert_eq!(caps(&needs(&pair(), 80)), ["CAP_NET_RAW", "CAP_NET_ADMIN"]);
    }

    #[test]
    fn missing_names_only_the_absent() {
        let all = (1 << 10) | (1 << 12) | (1 << 13);
        assert!(missing(all, needs(&pair(), 1024)).is_empty());
        let no_admin = all & !(1 << 12);
        assert_eq!(
            caps(&missing(no_admin, needs(&pair(), 1024))),
            ["CAP_NET_ADMIN"]
        );
        assert_eq!(caps(&missing(0, needs(&pair(), 1024))).len(), 3);
    }

    #[test]
    fn effective_set_from_proc_status() {
        let st = "Name:\tlbctl\nCapInh:\t0000000000003400\nCapEff:\t0000000000003400\n";
        assert_eq!(effective(st), Some(0x3400));
        assert_eq!(effective("Name:\tx\n"), None);
    }
}
