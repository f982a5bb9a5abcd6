//! Addresses: inside the LAN of the bridge they sit on (same prefix, not its network or
//! broadcast address), and unique in the lab.

use super::bridges::declared;
use super::{Bridges, Problems};
use crate::config::model::Config;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The addresses given out so far, with the field that holds each.
#[derive(Debug, Default)]
pub struct Addresses(HashMap<Ipv4Addr, String>);

impl Addresses {
    /// The field already holding `a`, if any.
    pub fn owner(&self, a: &Ipv4Addr) -> Option<&str> {
        self.0.get(a).map(String::as_str)
    }

    /// Claims address `a` for `field`, on bridge `bridge` (an unknown bridge is reported
    /// by whoever names it; here it only skips the LAN checks).
    pub fn claim(
        &mut self,
        out: &mut Problems,
        cfg: &Config,
        bridges: &Bridges,
        field: String,
        a: &Ipv4Net,
        bridge: &str,
    ) {
        let lan = bridges.get(bridge).and_then(|p| cfg.lan(&p.bridge.lan));
        if let Some(lan) = lan {
            if !lan.subnet.contains(&a.addr()) || a.prefix_len() != lan.subnet.prefix_len() {
                out.err(
                    field.clone(),
                    format!(
                        "{a} is outside LAN {:?} ({}) of bridge {bridge:?}",
                        lan.name, lan.subnet
                    ),
                );
            } else if a.addr() == lan.subnet.network() || a.addr() == lan.subnet.broadcast() {
                out.err(
                    field.clone(),
                    format!("{a} is the network or broadcast address of {}", lan.subnet),
                );
            }
        }
        if let Some(prev) = self.0.get(&a.addr()) {
            out.err(
                field,
                format!("duplicate address {} (already {prev})", a.addr()),
            );
        } else {
            self.0.insert(a.addr(), field);
        }
    }
}

/// The bridges' own addresses (a host's address on its bridge), in declaration order.
pub fn bridges(cfg: &Config, index: &Bridges, addrs: &mut Addresses) -> Problems {
    let mut out = Problems::default();
    for (field, _, b) in declared(cfg) {
        if let Some(a) = &b.address {
            addrs.claim(&mut out, cfg, index, format!("{field}.address"), a, &b.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::names::IfNames;
    use super::super::testing::*;
    use super::*;

    #[test]
    fn duplicate_address() {
        let msg = refused(
            "address = \"172.16.1.101/24\"",
            "address = \"172.16.1.100/24\"",
        );
        assert_names(
            &msg,
            "node[1].iface[0].address",
            &["duplicate address 172.16.1.100"],
        );
    }

    #[test]
    fn address_outside_subnet() {
        let msg = refused("address = \"10.0.0.3/24\"", "address = \"10.0.1.3/24\"");
        assert_names(&msg, "node[6].iface[0].address", &["outside LAN \"int\""]);
    }

    #[test]
    fn bridge_addresses_are_checked_and_claimed() {
        let cfg = parsed(&[
            (
                "address = \"172.16.1.150/24\"",
                "address = \"172.16.2.150/24\"",
            ),
            (
                "address = \"172.16.1.151/24\"",
                "address = \"172.16.1.255/24\"",
            ),
        ]);
        let (index, _) = super::super::bridges::check(&cfg, &mut IfNames::default());
        let mut addrs = Addresses::default();
        assert_eq!(
            bridges(&cfg, &index, &mut addrs).into_vec(),
            [
                problem(
                    "host[0].bridge[0].address",
                    "172.16.2.150/24 is outside LAN \"ext\" (172.16.1.0/24) of bridge \"vswout1\""
                ),
                problem(
                    "host[1].bridge[0].address",
                    "172.16.1.255/24 is the network or broadcast address of 172.16.1.0/24"
                ),
            ]
        );
        let a: Ipv4Addr = "172.16.2.150".parse().unwrap();
        assert_eq!(addrs.owner(&a), Some("host[0].bridge[0].address"));
        // A second claim of the same address, with another prefix length.
        let mut out = Problems::default();
        let net: Ipv4Net = "172.16.2.150/25".parse().unwrap();
        addrs.claim(&mut out, &cfg, &index, "x".into(), &net, "nowhere");
        assert_eq!(
            out.into_vec(),
            [problem(
                "x",
                "duplicate address 172.16.2.150 (already host[0].bridge[0].address)"
            )]
        );
    }
}
