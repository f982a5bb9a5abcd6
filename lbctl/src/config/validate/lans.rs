//! LANs: unique names, an MTU an interface can take, subnets that do not overlap (an
//! address must say which LAN it is on).

use super::Problems;
use crate::config::model::Config;
use std::collections::HashSet;

pub fn check(cfg: &Config) -> Problems {
    let mut out = Problems::default();
    let mut names = HashSet::new();
    for (i, l) in cfg.lans.iter().enumerate() {
        if !names.insert(l.name.as_str()) {
            out.err(
                format!("lan[{i}].name"),
                format!("duplicate LAN name {:?}", l.name),
            );
        }
        if let Some(m) = l.mtu {
            if !(68..=65535).contains(&m) {
                out.err(
                    format!("lan[{i}].mtu"),
                    format!("{m} is outside 68..=65535"),
                );
            }
        }
        for (j, o) in cfg.lans.iter().enumerate().skip(i + 1) {
            if l.subnet.contains(&o.subnet.network()) || o.subnet.contains(&l.subnet.network()) {
                out.err(
                    format!("lan[{j}].subnet"),
                    format!("{} overlaps lan {:?} ({})", o.subnet, l.name, l.subnet),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn duplicate_name_bad_mtu_and_overlap() {
        let cfg = parsed(&[
            ("name = \"int\"", "name = \"ext\""),
            ("mtu = 1450", "mtu = 50"),
            ("subnet = \"10.0.0.0/24\"", "subnet = \"172.16.0.0/16\""),
        ]);
        assert_eq!(
            check(&cfg).into_vec(),
            [
                // Found while lan[0] is compared with those after it.
                problem(
                    "lan[1].subnet",
                    "172.16.0.0/16 overlaps lan \"ext\" (172.16.1.0/24)"
                ),
                problem("lan[1].name", "duplicate LAN name \"ext\""),
                problem("lan[1].mtu", "50 is outside 68..=65535"),
            ]
        );
    }

    #[test]
    fn mtu_above_65535_is_named_in_the_message() {
        let msg = refused("mtu = 1450", "mtu = 70000");
        assert_names(&msg, "lan[1].mtu", &["70000 is outside 68..=65535"]);
    }
}
