//! VRRP: what the wire format can carry (VRID, interval per version, v2 authentication),
//! the service whose VIP it moves, usable peers, and one priority per balancer that can
//! reach the VIP.

use super::Problems;
use crate::config::model::{Config, Role, Vrrp};
use crate::vrrp::codec::Version;
use std::collections::HashSet;
use std::net::Ipv4Addr;

pub fn check(cfg: &Config) -> Problems {
    let mut out = Problems::default();
    let Some(v) = &cfg.vrrp else {
        return out;
    };
    wire(&mut out, v);
    if let Some(n) = &v.notify {
        if n.trim().is_empty() {
            out.err("vrrp.notify", "empty command");
        }
    }
    if cfg.service.is_none() {
        out.err(
            "vrrp",
            "needs a [service] section (its vip is the virtual address)",
        );
    }
    let vip = cfg.service.as_ref().map(|s| s.vip);
    for (i, a) in v.unicast_peers.iter().enumerate() {
        if Some(*a) == vip || a.is_multicast() || a.is_unspecified() || a.is_broadcast() {
            out.err(
                format!("vrrp.unicast_peers[{i}]"),
                format!("{a} cannot be a peer"),
            );
        }
    }
    if let Some(i) = &v.interface {
        if i.is_empty() || i.len() > 15 {
            out.err(
                "vrrp.interface",
                format!("{i:?} is not an interface name (1..=15 characters)"),
            );
        }
    }
    priorities(&mut out, cfg, v, vip);
    out
}

/// What the advertisement can carry: a VRID, the interval in the version's unit, the
/// checksum form, v2's 8-byte password.
fn wire(out: &mut Problems, v: &Vrrp) {
    if v.vrid == 0 {
        out.err("vrrp.vrid", "VRID 0 is reserved; use 1..=255");
    }
    match v.version {
        Version::V2 => {
            if !v.advert_int_ms.is_multiple_of(1000) || !(1000..=255_000).contains(&v.advert_int_ms)
            {
                out.err(
                    "vrrp.advert_int_ms",
                    format!(
                        "{} ms: VRRPv2 advertises whole seconds (1000..=255000 ms); use version = 3 for less",
                        v.advert_int_ms
                    ),
                );
            }
        }
        Version::V3 => {
            if !v.advert_int_ms.is_multiple_of(10) || !(10..=40950).contains(&v.advert_int_ms) {
                out.err(
                    "vrrp.advert_int_ms",
                    format!(
                        "{} ms: VRRPv3 advertises centiseconds (10..=40950 ms in steps of 10)",
                        v.advert_int_ms
                    ),
                );
            }
        }
    }
    if v.v3_checksum != "pseudo-header" && v.v3_checksum != "rfc" {
        out.err(
            "vrrp.v3_checksum",
            format!("{:?}: use \"pseudo-header\" or \"rfc\"", v.v3_checksum),
        );
    }
    if let Some(p) = &v.auth_pass {
        if v.version != Version::V2 {
            out.err("vrrp.auth_pass", "authentication exists in VRRPv2 only");
        }
        if p.is_empty() || p.len() > 8 {
            out.err("vrrp.auth_pass", "must be 1..=8 bytes (VRRPv2 carries 8)");
        }
    }
}

/// One priority per balancer, never 0 (it means resignation on the wire), each balancer
/// able to find its VIP interface unless `vrrp.interface` names it.
fn priorities(out: &mut Problems, cfg: &Config, v: &Vrrp, vip: Option<Ipv4Addr>) {
    let mut seen = HashSet::new();
    for (i, p) in v.priorities.iter().enumerate() {
        let balancer = match cfg.node(&p.node) {
            Some(n) => n.role == Role::Balancer,
            None => cfg.machine(&p.node).is_some(),
        };
        if !balancer {
            out.err(
                format!("vrrp.priority[{i}].node"),
                format!("{:?} is not a balancer", p.node),
            );
        }
        let on_vip_subnet = vip.is_some_and(|vip| {
            let ifaces = cfg.addressed_ifaces(&p.node).unwrap_or_default();
            ifaces.iter().any(|(_, a)| a.contains(&vip))
        });
        if balancer && vip.is_some() && v.interface.is_none() && !on_vip_subnet {
            out.err(
                format!("vrrp.priority[{i}].node"),
                format!(
                    "{:?} has no interface on the VIP's subnet (set vrrp.interface)",
                    p.node
                ),
            );
        }
        if !seen.insert(p.node.as_str()) {
            out.err(
                format!("vrrp.priority[{i}].node"),
                format!("{:?} has two priorities", p.node),
            );
        }
        if p.priority == 0 {
            out.err(
                format!("vrrp.priority[{i}].priority"),
                "priority 0 is reserved for resignation",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::config::Config;

    fn run(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        check(&parsed(edits)).into_vec()
    }

    /// The default config with `extra` lines in [vrrp] (its `version = 2` line dropped
    /// when `extra` sets the version), validated.
    fn with(extra: &str) -> Result<Config, String> {
        let mut edits = vec![];
        if extra.contains("version =") {
            edits.push(("\nversion = 2\n", "\n"));
        }
        let extra = format!("[vrrp]\n{extra}\n");
        edits.push(("[vrrp]\n", &extra));
        Config::from_toml(&edited(&edits), "t.toml").map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn refusals_name_their_field() {
        let v2_fast = DEFAULT.replacen("advert_int_ms = 1000", "advert_int_ms = 1500", 1);
        let e = format!("{:#}", Config::from_toml(&v2_fast, "t.toml").unwrap_err());
        assert!(
            e.contains("vrrp.advert_int_ms") && e.contains("whole seconds"),
            "{e}"
        );
        for (extra, field) in [
            ("version = 4", "vrrp.version"),
            ("v3_checksum = \"both\"", "vrrp.v3_checksum"),
            ("version = 3\nauth_pass = \"x\"", "vrrp.auth_pass"),
            ("auth_pass = \"123456789\"", "vrrp.auth_pass"),
            ("unicast_peers = [\"224.0.0.18\"]", "vrrp.unicast_peers[0]"),
            ("interface = \"a-very-long-interface\"", "vrrp.interface"),
            ("notify = \" \"", "vrrp.notify"),
        ] {
            let e = with(extra).expect_err(extra);
            assert!(e.contains(field), "{extra}: {e}");
        }
        assert!(with("bogus = 1").is_err(), "unknown fields are refused");
    }

    #[test]
    fn intervals_follow_the_version() {
        assert_eq!(
            run(&[("advert_int_ms = 1000", "advert_int_ms = 256000")]),
            [problem(
                "vrrp.advert_int_ms",
                "256000 ms: VRRPv2 advertises whole seconds (1000..=255000 ms); use version = 3 for less"
            )]
        );
        assert_eq!(
            run(&[
                ("advert_int_ms = 1000", "advert_int_ms = 15"),
                ("version = 2", "version = 3\nauth_pass = \"\""),
            ]),
            [
                problem(
                    "vrrp.advert_int_ms",
                    "15 ms: VRRPv3 advertises centiseconds (10..=40950 ms in steps of 10)"
                ),
                problem("vrrp.auth_pass", "authentication exists in VRRPv2 only"),
                problem("vrrp.auth_pass", "must be 1..=8 bytes (VRRPv2 carries 8)"),
            ]
        );
    }

    #[test]
    fn vrid_peers_and_priorities() {
        let peers =
            "version = 2\nunicast_peers = [\"172.16.1.254\", \"0.0.0.0\", \"172.16.1.251\"]";
        let prios =
            "node = \"serv1\"\npriority = 0\n[[vrrp.priority]]\nnode = \"bal1\"\npriority = 9";
        assert_eq!(
            run(&[
                ("vrid = 12", "vrid = 0"),
                ("version = 2", peers),
                ("node = \"bal2\"\npriority = 100", prios),
            ]),
            [
                problem("vrrp.vrid", "VRID 0 is reserved; use 1..=255"),
                problem("vrrp.unicast_peers[0]", "172.16.1.254 cannot be a peer"),
                problem("vrrp.unicast_peers[1]", "0.0.0.0 cannot be a peer"),
                problem("vrrp.priority[1].node", "\"serv1\" is not a balancer"),
                problem(
                    "vrrp.priority[1].priority",
                    "priority 0 is reserved for resignation"
                ),
                problem("vrrp.priority[2].node", "\"bal1\" has two priorities"),
            ]
        );
    }

    #[test]
    fn a_balancer_must_reach_the_vip_unless_the_interface_is_named() {
        let bal3 = "[[node]]\nname = \"bal3\"\nrole = \"balancer\"\n[[node.iface]]\nname = \"eth0\"\nbridge = \"vswin1\"\naddress = \"10.0.0.253/24\"\n# The tunnel between";
        let edits = [
            ("# The tunnel between", bal3),
            (
                "node = \"bal2\"\npriority = 100",
                "node = \"bal3\"\npriority = 100",
            ),
        ];
        assert_eq!(
            run(&edits),
            [problem(
                "vrrp.priority[1].node",
                "\"bal3\" has no interface on the VIP's subnet (set vrrp.interface)"
            )]
        );
        let named = [
            edits[0],
            edits[1],
            ("version = 2", "version = 2\ninterface = \"eth0\""),
        ];
        assert!(run(&named).is_empty());
    }

    #[test]
    fn vrrp_needs_the_service() {
        let svc = DEFAULT.find("[service]\n").unwrap();
        let vrrp = DEFAULT.find("[vrrp]\n").unwrap();
        let text = format!("{}{}", &DEFAULT[..svc], &DEFAULT[vrrp..]);
        let cfg: Config = toml::from_str(&text).unwrap();
        assert_eq!(
            check(&cfg).into_vec(),
            [problem(
                "vrrp",
                "needs a [service] section (its vip is the virtual address)"
            )]
        );
    }
}
