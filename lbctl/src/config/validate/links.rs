//! Links: cables between two distinct, known bridges of one LAN, with valid port settings
//! and interface names that fit in each end's namespace.

use super::names::IfNames;
use super::{stp, Bridges, Problems};
use crate::config::model::{Config, Link};

pub fn check(cfg: &Config, bridges: &Bridges, ifnames: &mut IfNames) -> Problems {
    let mut out = Problems::default();
    for (i, l) in cfg.links.iter().enumerate() {
        ends(&mut out, cfg, bridges, i, l);
        if l.a == l.b {
            out.err(
                format!("link[{i}].b"),
                "a link cannot join a bridge to itself",
            );
            continue;
        }
        stp::port(&mut out, &format!("link[{i}]."), l.cost, None);
        stp::port(&mut out, &format!("link[{i}].a_"), l.a_cost, l.a_priority);
        stp::port(&mut out, &format!("link[{i}].b_"), l.b_cost, l.b_priority);
        let (Some(a), Some(b)) = (bridges.get(&l.a), bridges.get(&l.b)) else {
            continue;
        };
        if a.bridge.lan != b.bridge.lan {
            out.err(
                format!("link[{i}]"),
                format!(
                    "joins {:?} (LAN {:?}) and {:?} (LAN {:?}): a link must stay inside one LAN",
                    l.a, a.bridge.lan, l.b, b.bridge.lan
                ),
            );
        }
        let a_field = if l.a_iface.is_some() { "a_iface" } else { "a" };
        let b_field = if l.b_iface.is_some() { "b_iface" } else { "b" };
        ifnames.claim(&mut out, a.ns, &l.a_name(), format!("link[{i}].{a_field}"));
        ifnames.claim(&mut out, b.ns, &l.b_name(), format!("link[{i}].{b_field}"));
    }
    out
}

/// Both ends must be bridges; a node or host named as an end gets told how nodes connect.
fn ends(out: &mut Problems, cfg: &Config, bridges: &Bridges, i: usize, l: &Link) {
    for (end, name) in [("a", &l.a), ("b", &l.b)] {
        if bridges.contains(name) {
            continue;
        }
        let what = if cfg.node(name).is_some() || cfg.hosts.iter().any(|h| &h.name == name) {
            format!("{name:?} is not a bridge or switch (links join bridges; plug nodes in with [[node.iface]])")
        } else {
            format!("unknown node {name:?}")
        };
        out.err(
            format!("link[{i}].{end}"),
            format!("{what}; bridges are: {}", bridges.names().join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    const LINK0: &str = "a = \"swout1\"\nb = \"swout2\"";

    fn run(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        after_bridges(edits, check)
    }

    #[test]
    fn unknown_node_in_link() {
        let msg = refused(LINK0, "a = \"swout1\"\nb = \"swoutX\"");
        assert_names(&msg, "link[0].b", &["unknown node \"swoutX\""]);
    }

    #[test]
    fn leaf_node_in_link_is_explained() {
        let msg = refused(LINK0, "a = \"swout1\"\nb = \"user1\"");
        assert_names(&msg, "link[0].b", &["not a bridge"]);
    }

    #[test]
    fn self_link_and_port_settings() {
        assert_eq!(
            run(&[(LINK0, "a = \"swout1\"\nb = \"swout1\"\ncost = 0")]),
            [problem(
                "link[0].b",
                "a link cannot join a bridge to itself"
            )]
        );
        assert_eq!(
            run(&[(LINK0, &format!("{LINK0}\ncost = 0\nb_priority = 64"))]),
            [
                problem("link[0].cost", "a port cost must be at least 1"),
                problem("link[0].b_priority", "port priority 64 is above 63"),
            ]
        );
    }

    #[test]
    fn a_link_stays_inside_one_lan() {
        assert_eq!(
            run(&[(LINK0, "a = \"swout1\"\nb = \"vswin1\"")]),
            [
                problem(
                    "link[0]",
                    "joins \"swout1\" (LAN \"ext\") and \"vswin1\" (LAN \"int\"): a link must stay inside one LAN"
                ),
                problem(
                    "link[1].a",
                    "interface name \"to-swout1\" is already used in namespace \"vm1\" by link[0].b"
                ),
            ]
        );
    }

    #[test]
    fn interface_names_at_each_end() {
        assert_eq!(
            run(&[(LINK0, &format!("{LINK0}\na_iface = \"to-vswout1\""))]),
            [problem(
                "link[1].b",
                "interface name \"to-vswout1\" is already used in namespace \"swout1\" by link[0].a_iface"
            )]
        );
    }
}
