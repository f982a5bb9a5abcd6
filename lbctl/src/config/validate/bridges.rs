//! Bridges (switches and the hosts' bridges): unique names, a known LAN, their own STP
//! timers, a unicast MAC. Builds the [`Bridges`] index the later concerns resolve names in.

use super::names::IfNames;
use super::{stp, Bridges, Placed, Problems};
use crate::config::model::{Bridge, Config};

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// Every bridge as declared, duplicates included: (TOML path, namespace, bridge).
pub fn declared(cfg: &Config) -> Vec<(String, &str, &Bridge)> {
    let mut all: Vec<(String, &str, &Bridge)> = Vec::new();
    for (i, sw) in cfg.switches.iter().enumerate() {
        all.push((format!("switch[{i}]"), sw.name.as_str(), sw));
    }
    for (i, h) in cfg.hosts.iter().enumerate() {
        for (j, b) in h.bridges.iter().enumerate() {
            all.push((format!("host[{i}].bridge[{j}]"), h.name.as_str(), b));
        }
    }
    all
}

/// Checks every bridge and indexes the first of each name; a bridge's name is also an
/// interface name in its namespace.
pub fn check<'a>(cfg: &'a Config, ifnames: &mut IfNames) -> (Bridges<'a>, Problems) {
    let mut out = Problems::default();
    let mut index = Bridges::default();
    for (field, ns, b) in declared(cfg) {
        if let Some(prev) = index.get(&b.name) {
            out.err(
                format!("{field}.name"),
                format!(
                    "duplicate bridge name {:?} (already {})",
                    b.name, prev.field
                ),
            );
            continue;
        }
        ifnames.claim(&mut out, ns, &b.name, format!("{field}.name"));
        if cfg.lan(&b.lan).is_none() {
            out.err(format!("{field}.lan"), format!("unknown LAN {:?}", b.lan));
        }
        // Only a bridge that overrides a timer is checked here: the defaults were already.
        let overrides = b.hello_time.is_some() || b.max_age.is_some() || b.forward_delay.is_some();
        if b.stp && overrides {
            let (h, m, f) = cfg.timers(b);
            stp::timers(&mut out, &field, h, m, f);
        }
        if let Some(mac) = &b.mac {
            match parse_mac(mac) {
                None => out.err(
                    format!("{field}.mac"),
                    format!("{mac:?} is not aa:bb:cc:dd:ee:ff"),
                ),
                Some(m) if m[0] & 1 == 1 => out.err(
                    format!("{field}.mac"),
                    format!("{mac} is a multicast address; a bridge needs a unicast MAC"),
                ),
                Some(_) => {}
            }
        }
        index.0.insert(
            &b.name,
            Placed {
                ns,
                bridge: b,
                field,
            },
        );
    }
    (index, out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn run(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        let cfg = parsed(edits);
        check(&cfg, &mut IfNames::default()).1.into_vec()
    }

    #[test]
    fn duplicate_bridge_name() {
        let msg = refused("name = \"vswin2\"", "name = \"vswin1\"");
        assert_names(&msg, "host[1].bridge[1].name", &["duplicate bridge name"]);
    }

    #[test]
    fn per_bridge_timer_override_is_checked() {
        let msg = refused("priority = 4096", "priority = 4096\nforward_delay = 1");
        assert_names(&msg, "switch[1].forward_delay", &["2..=30"]);
        // A bridge without STP may carry timers: they are not used.
        assert!(run(&[("stp = false", "stp = false\nhello_time = 50")]).is_empty());
    }

    #[test]
    fn bad_mac_and_multicast_mac() {
        let msg = refused(
            "priority = 8192",
            "priority = 8192\nmac = \"zz:00:00:00:00:01\"",
        );
        assert_names(&msg, "switch[0].mac", &["not aa:bb"]);
        let msg = refused(
            "priority = 8192",
            "priority = 8192\nmac = \"01:00:00:00:00:01\"",
        );
        assert_names(&msg, "switch[0].mac", &["multicast"]);
        assert_eq!(
            parse_mac("02:00:5e:10:00:ff"),
            Some([2, 0, 0x5e, 0x10, 0, 0xff])
        );
        assert_eq!(parse_mac("02:00:5e:10:00"), None);
        assert_eq!(parse_mac("02:00:5e:10:00:f"), None);
    }

    #[test]
    fn unknown_lan_and_bad_name_and_duplicate() {
        assert_eq!(
            run(&[
                (
                    "lan = \"ext\"\npriority = 8192",
                    "lan = \"nope\"\npriority = 8192"
                ),
                ("name = \"vswin1\"", "name = \"vsw/in1\""),
                ("name = \"vswin2\"", "name = \"vsw/in1\""),
            ]),
            [
                problem("switch[0].lan", "unknown LAN \"nope\""),
                problem(
                    "host[0].bridge[1].name",
                    "interface name \"vsw/in1\" is not valid (no '/', ':', spaces, '.' or '..')"
                ),
                problem(
                    "host[1].bridge[1].name",
                    "duplicate bridge name \"vsw/in1\" (already host[0].bridge[1])"
                ),
            ]
        );
    }

    #[test]
    fn the_index_keeps_the_first_of_a_name_with_its_namespace() {
        let cfg = parsed(&[("name = \"vswin2\"", "name = \"vswin1\"")]);
        let (index, _) = check(&cfg, &mut IfNames::default());
        let p = index.get("vswin1").expect("indexed");
        assert_eq!((p.ns, p.field.as_str()), ("vm1", "host[0].bridge[1]"));
        assert_eq!(
            index.names(),
            ["swout1", "swout2", "vswin1", "vswout1", "vswout2"]
        );
    }
}
