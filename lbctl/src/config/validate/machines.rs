//! Real machines (`[[machine]]`): a config of machines describes no lab, so it holds none
//! of the lab's sections; each machine has a name the agent is started with, interfaces
//! with kernel-valid names and host addresses, and is one of the service's balancers
//! (running the balancer is all a machine does here).

use super::addresses::Addresses;
use super::names::check_ifname;
use super::{Bridges, Problems};
use crate::config::model::{Config, Machine};
use std::collections::HashSet;

pub fn check(cfg: &Config, addrs: &mut Addresses) -> Problems {
    let mut out = Problems::default();
    if cfg.machines.is_empty() {
        return out;
    }
    no_lab(&mut out, cfg);
    let mut names = HashSet::new();
    for (i, m) in cfg.machines.iter().enumerate() {
        machine(&mut out, cfg, i, m, addrs);
        if !names.insert(m.name.as_str()) {
            out.err(
                format!("machine[{i}].name"),
                format!("duplicate machine name {:?}", m.name),
            );
        }
    }
    match &cfg.service {
        None => out.err(
            "machine",
            "machines run the balancer of a [service]; the config has none",
        ),
        Some(s) => {
            if !cfg
                .machines
                .iter()
                .any(|m| m.ifaces.iter().any(|f| f.address.contains(&s.vip)))
            {
                out.err(
                    "service.vip",
                    format!("{} is on no machine interface's subnet", s.vip),
                );
            }
        }
    }
    out
}

/// The lab's sections have no meaning next to real machines: each one present is named.
fn no_lab(out: &mut Problems, cfg: &Config) {
    let present = [
        ("lan", !cfg.lans.is_empty()),
        ("switch", !cfg.switches.is_empty()),
        ("host", !cfg.hosts.is_empty()),
        ("link", !cfg.links.is_empty()),
        ("node", !cfg.nodes.is_empty()),
        ("vxlan", cfg.vxlan.is_some()),
    ];
    for (section, _) in present.iter().filter(|(_, p)| *p) {
        out.err(
            *section,
            "a config with [[machine]] describes real hosts, not a lab: it cannot also have \
             the lab's [[lan]], [[switch]], [[host]], [[link]], [[node]] or [vxlan]",
        );
    }
}

/// One machine: its name, its interfaces and their addresses, its place in the service.
fn machine(out: &mut Problems, cfg: &Config, i: usize, m: &Machine, addrs: &mut Addresses) {
    let mut ifnames = HashSet::new();
    let field = format!("machine[{i}]");
    let name_ok = !m.name.is_empty()
        && m.name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.');
    if !name_ok {
        out.err(
            format!("{field}.name"),
            format!(
                "machine name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                m.name
            ),
        );
    }
    if m.ifaces.is_empty() {
        out.err(
            format!("{field}.iface"),
            "a machine needs at least one interface (the one on the VIP's subnet)",
        );
    }
    for (j, f) in m.ifaces.iter().enumerate() {
        let ff = format!("{field}.iface[{j}]");
        if let Err(r) = check_ifname(&f.name) {
            out.err(format!("{ff}.name"), r);
        }
        if !ifnames.insert(f.name.as_str()) {
            out.err(
                format!("{ff}.name"),
                format!("{:?} is listed twice for machine {:?}", f.name, m.name),
            );
        }
        if f.name == "lo" {
            out.err(format!("{ff}.name"), "\"lo\" is the loopback device");
        }
        let a = &f.address;
        if a.prefix_len() < 31 && (a.addr() == a.network() || a.addr() == a.broadcast()) {
            out.err(
                format!("{ff}.address"),
                format!("{a} is the network or broadcast address of {}", a.trunc()),
            );
        }
        addrs.claim(
            out,
            cfg,
            &Bridges::default(),
            format!("{ff}.address"),
            a,
            "",
        );
    }
    let balancer = cfg.service.as_ref().map(|s| s.balancers.contains(&m.name));
    if balancer == Some(false) {
        out.err(
            format!("{field}.name"),
            format!(
                "{:?} is not in service.balancers: a machine's only job is the balancer",
                m.name
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::problem;
    use crate::config::Config;

    const PAIR: &str = include_str!("../../../../configs/pair.toml");

    fn problems(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        let mut text = PAIR.to_string();
        for (from, to) in edits {
            assert!(text.contains(from), "edit target {from:?} not in pair.toml");
            text = text.replacen(from, to, 1);
        }
        let cfg: Config = toml::from_str(&text).expect("edited pair.toml parses");
        super::super::validate(&cfg)
    }

    #[test]
    fn pair_is_valid() {
        assert_eq!(problems(&[]), []);
        let cfg = Config::from_toml(PAIR, "pair.toml").unwrap();
        assert!(cfg.is_real_hosts());
        let e = format!("{:#}", cfg.require_lab("up").unwrap_err());
        assert!(e.contains("lb1, lb2") && e.contains("lbctl agent"), "{e}");
        Config::default_scenario().require_lab("up").unwrap();
    }

    #[test]
    fn lab_sections_are_refused_by_name() {
        let lab = "[[lan]]\nname = \"x\"\nsubnet = \"10.9.0.0/24\"\n\n[[machine]]";
        let p = problems(&[("[[machine]]", lab)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "lan");
        assert!(p[0].reason.contains("real hosts, not a lab"), "{p:?}");
    }

    #[test]
    fn machines_and_interfaces() {
        assert_eq!(
            problems(&[
                ("name = \"lb2\"", "name = \"lb 2\""),
                ("name = \"eth1\"", "name = \"eth0\""),
                ("address = \"10.0.0.12/24\"", "address = \"10.0.0.11/24\""),
                (
                    "address = \"192.168.1.12/24\"",
                    "address = \"192.168.1.0/24\""
                ),
            ]),
            [
                problem(
                    "machine[0].iface[1].name",
                    "\"eth0\" is listed twice for machine \"lb1\""
                ),
                problem(
                    "machine[1].name",
                    "machine name \"lb 2\" must be non-empty letters, digits, '-', '_' or '.'"
                ),
                problem(
                    "machine[1].iface[0].address",
                    "192.168.1.0/24 is the network or broadcast address of 192.168.1.0/24"
                ),
                problem(
                    "machine[1].iface[1].address",
                    "duplicate address 10.0.0.11 (already machine[0].iface[1].address)"
                ),
                problem(
                    "machine[1].name",
                    "\"lb 2\" is not in service.balancers: a machine's only job is the balancer"
                ),
                problem("service.balancers[1]", "unknown node or machine \"lb2\""),
                problem("vrrp.priority[1].node", "\"lb2\" is not a balancer"),
            ]
        );
    }

    #[test]
    fn the_vip_and_the_backends_belong_to_the_machines() {
        assert_eq!(
            problems(&[
                ("vip = \"192.168.1.254\"", "vip = \"192.168.1.11\""),
                (
                    "name = \"web1\"\naddress = \"10.0.0.1:80\"",
                    "node = \"web1\""
                ),
            ]),
            [
                problem(
                    "service.vip",
                    "192.168.1.11 is already the address of machine[0].iface[0].address"
                ),
                problem("service.backend[0].node", "unknown node \"web1\""),
            ]
        );
        let p = problems(&[("vip = \"192.168.1.254\"", "vip = \"172.16.9.1\"")]);
        assert!(
            p.contains(&problem(
                "service.vip",
                "172.16.9.1 is on no machine interface's subnet"
            )),
            "{p:?}"
        );
    }
}
