//! `lbctl capture NODE IFACE [FILTER…]`: tcpdump inside a node's namespace, with presets
//! for what the scenario asks to watch: VRRP adverts, BPDUs, the VXLAN between hosts.
#![forbid(unsafe_code)]

use crate::config::Config;
use anyhow::{bail, Result};

/// A capture preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// VRRP advertisements (IP protocol 112).
    Vrrp,
    /// Spanning-tree BPDUs (802.1D, to 01:80:c2:00:00:00).
    Stp,
    /// VXLAN between the hosts (the config's UDP port, 4789).
    Vxlan,
}

/// The tcpdump filter of a preset, combined with the user's own filter words.
pub fn filter(cfg: &Config, preset: Option<Preset>, extra: &[String]) -> Vec<String> {
    let base = match preset {
        None => None,
        Some(Preset::Vrrp) => Some("ip proto 112".to_string()),
        Some(Preset::Stp) => Some("stp".to_string()),
        Some(Preset::Vxlan) => Some(format!(
            "udp port {}",
            cfg.vxlan.as_ref().map(|v| v.port).unwrap_or(4789)
        )),
    };
    match (base, extra.is_empty()) {
        (None, _) => extra.to_vec(),
        (Some(b), true) => vec![b],
        (Some(b), false) => vec![format!("({b}) and ({})", extra.join(" "))],
    }
}

/// The command line: `tcpdump -n -l -i IFACE [-e] [-c N] FILTER`.
pub fn tcpdump_args(
    iface: &str,
    count: Option<u32>,
    preset: Option<Preset>,
    filter: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = vec!["tcpdump".into(), "-n".into(), "-l".into()];
    a.extend(["-i".into(), iface.to_string()]);
    // BPDUs carry no IP header: show the link-layer addresses they are sent from.
    if preset == Some(Preset::Stp) {
        a.push("-e".into());
    }
    if let Some(c) = count {
        a.extend(["-c".into(), c.to_string()]);
    }
    a.extend(filter.iter().cloned());
    a
}

/// Checks the interface exists in the node's namespace, listing the ones that do.
pub fn check_iface(ns: &str, node: &str, iface: &str) -> Result<()> {
    let names = crate::topo::netns::run_in(ns, || {
        Ok(nix::net::if_::if_nameindex()
            .map(|l| {
                l.iter()
                    .map(|i| i.name().to_string_lossy().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default())
    })?;
    if !names.iter().any(|n| n == iface) && iface != "any" {
        bail!(
            "node {node} has no interface {iface:?} (it has: {})",
            names.join(", ")
        );
    }
    Ok(())
}
