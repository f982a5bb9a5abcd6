//! Leaf nodes (balancers, servers, users): a known host, at least one interface, the web
//! server's port only on servers; each interface plugged into a known bridge, with names
//! that fit both namespaces it touches, valid port settings and an address of its LAN.

use super::addresses::Addresses;
use super::names::IfNames;
use super::{stp, Bridges, Problems};
use crate::config::model::{Config, Node, Role};

pub fn check(
    cfg: &Config,
    bridges: &Bridges,
    ifnames: &mut IfNames,
    addrs: &mut Addresses,
) -> Problems {
    let mut out = Problems::default();
    for (i, n) in cfg.nodes.iter().enumerate() {
        node(&mut out, cfg, i, n);
        for (j, f) in n.ifaces.iter().enumerate() {
            let field = format!("node[{i}].iface[{j}]");
            ifnames.claim(&mut out, &n.name, &f.name, format!("{field}.name"));
            if f.name == "lo" {
                out.err(format!("{field}.name"), "\"lo\" is the loopback device");
            }
            match bridges.get(&f.bridge) {
                None => out.err(
                    format!("{field}.bridge"),
                    format!("unknown bridge {:?}", f.bridge),
                ),
                Some(b) => {
                    // The veth's other end, in the bridge's namespace.
                    let pfield = if f.port_name.is_some() {
                        format!("{field}.port_name")
                    } else {
                        format!("{field}.name")
                    };
                    ifnames.claim(&mut out, b.ns, &f.port_name_for(&n.name), pfield);
                }
            }
            stp::port(&mut out, &format!("{field}."), f.cost, f.priority);
            if let Some(a) = &f.address {
                addrs.claim(
                    &mut out,
                    cfg,
                    bridges,
                    format!("{field}.address"),
                    a,
                    &f.bridge,
                );
            }
        }
    }
    out
}

/// The node's own settings (not its interfaces).
fn node(out: &mut Problems, cfg: &Config, i: usize, n: &Node) {
    if let Some(h) = &n.host {
        if !cfg.hosts.iter().any(|x| &x.name == h) {
            out.err(format!("node[{i}].host"), format!("unknown host {h:?}"));
        }
    }
    if n.ifaces.is_empty() {
        out.err(
            format!("node[{i}].iface"),
            "a node needs at least one interface",
        );
    }
    if n.http_port.is_some() && n.role != Role::Server {
        out.err(
            format!("node[{i}].http_port"),
            "only servers run the web server",
        );
    }
    if n.http_port == Some(0) {
        out.err(format!("node[{i}].http_port"), "port 0 is not a port");
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    const BAL1_ETH1: &str = "name = \"eth1\"\nbridge = \"vswin1\"";

    fn run(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        after_bridges(edits, |cfg, bridges, names| {
            check(cfg, bridges, names, &mut Addresses::default())
        })
    }

    #[test]
    fn interface_name_too_long() {
        let msg = refused(
            BAL1_ETH1,
            "name = \"averyverylongname\"\nbridge = \"vswin1\"",
        );
        assert_names(&msg, "node[2].iface[1].name", &["at most 15"]);
    }

    #[test]
    fn generated_port_name_too_long() {
        // The bridge-side name "<node>-<iface>" must fit too.
        let msg = refused(BAL1_ETH1, "name = \"ethernet123\"\nbridge = \"vswin1\"");
        assert_names(
            &msg,
            "node[2].iface[1].name",
            &["bal1-ethernet123", "at most 15"],
        );
    }

    #[test]
    fn node_settings() {
        let lonely =
            "[[node]]\nname = \"lonely\"\nrole = \"user\"\nhttp_port = 0\n# The tunnel between";
        assert_eq!(
            run(&[
                ("host = \"vm1\"", "host = \"vm9\""),
                ("# The tunnel between", lonely),
            ]),
            [
                problem("node[2].host", "unknown host \"vm9\""),
                problem("node[7].iface", "a node needs at least one interface"),
                problem("node[7].http_port", "only servers run the web server"),
                problem("node[7].http_port", "port 0 is not a port"),
            ]
        );
    }

    #[test]
    fn interfaces_plug_into_known_bridges_with_valid_ports() {
        assert_eq!(
            run(&[(BAL1_ETH1, "name = \"lo\"\nbridge = \"vswinX\"\ncost = 0")]),
            [
                problem("node[2].iface[1].name", "\"lo\" is the loopback device"),
                problem("node[2].iface[1].bridge", "unknown bridge \"vswinX\""),
                problem("node[2].iface[1].cost", "a port cost must be at least 1"),
            ]
        );
        assert_eq!(
            run(&[(BAL1_ETH1, &format!("{BAL1_ETH1}\nport_name = \"bal1-eth0\""))]),
            [problem(
                "node[2].iface[1].port_name",
                "interface name \"bal1-eth0\" is already used in namespace \"vm1\" by node[2].iface[0].name"
            )]
        );
    }
}
