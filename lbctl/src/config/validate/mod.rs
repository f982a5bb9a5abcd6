//! Semantic checks on a parsed config. Each problem names the field (a TOML path such as
//! `link[2].b`) and the reason, so the user can fix the file without guessing.
//!
//! One module per concern, each a pure function of the config (no I/O) returning its
//! problems. A few facts cut across concerns and are threaded through explicitly, in the
//! order the file is read:
//! - [`Bridges`]: every bridge by name with the namespace that holds it (built by
//!   [`bridges`], read by links, nodes, addresses and VXLAN);
//! - [`names::IfNames`]: the interface names each namespace already uses (bridges, link
//!   ends, node interfaces and their bridge-side ports, the VXLAN device all compete);
//! - [`addresses::Addresses`]: the addresses already given out in the lab (bridges, node
//!   interfaces; the service VIP must not be one of them).
//!
//! The order of the concerns is the order problems are reported in.

mod addresses;
mod bridges;
mod lans;
mod links;
mod machines;
mod names;
mod nodes;
mod service;
mod stp;
mod vrrp;
mod vxlan;

pub use bridges::parse_mac;
pub use names::check_lab_name;

use super::model::{Bridge, Config};
use std::collections::HashMap;

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

/// The problems one concern found, in the order it found them.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            reason: reason.into(),
        });
    }

    pub fn append(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// A bridge with the namespace (switch or host) that holds it and the TOML path it was
/// declared at (`switch[0]`, `host[1].bridge[0]`).
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    pub ns: &'a str,
    pub bridge: &'a Bridge,
    pub field: String,
}

/// Every bridge of the lab by name (the first declaration wins over a duplicate).
#[derive(Debug, Default)]
pub struct Bridges<'a>(HashMap<&'a str, Placed<'a>>);

impl<'a> Bridges<'a> {
    pub fn get(&self, name: &str) -> Option<&Placed<'a>> {
        self.0.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Bridge names, sorted (to list them in a message).
    pub fn names(&self) -> Vec<&'a str> {
        let mut k: Vec<&str> = self.0.keys().copied().collect();
        k.sort();
        k
    }
}

/// Runs every check and returns all problems found (empty = valid).
pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut out = Problems::default();
    out.append(names::lab(cfg));
    out.append(stp::defaults(cfg));
    out.append(lans::check(cfg));
    out.append(names::namespaces(cfg));
    let mut ifnames = names::IfNames::default();
    let (bridges, p) = bridges::check(cfg, &mut ifnames);
    out.append(p);
    let mut addrs = addresses::Addresses::default();
    out.append(addresses::bridges(cfg, &bridges, &mut addrs));
    out.append(links::check(cfg, &bridges, &mut ifnames));
    out.append(nodes::check(cfg, &bridges, &mut ifnames, &mut addrs));
    out.append(vxlan::check(cfg, &bridges, &mut ifnames));
    out.append(machines::check(cfg, &mut addrs));
    out.append(service::check(cfg, &addrs));
    out.append(vrrp::check(cfg));
    out.append(stp::modes(cfg));
    out.into_vec()
}

/// Helpers shared by the concerns' tests: the built-in scenario with textual edits, parsed
/// without validation (to call one concern) or with it (to read the whole message).
#[cfg(test)]
pub(crate) mod testing {
    use super::Problem;
    use crate::config::Config;

    pub const DEFAULT: &str = include_str!("../../../../configs/default.toml");

    /// The default config with each `(from, to)` edit applied once.
    pub fn edited(edits: &[(&str, &str)]) -> String {
        let mut text = DEFAULT.to_string();
        for (from, to) in edits {
            assert!(
                text.contains(from),
                "edit target {from:?} not in default.toml"
            );
            text = text.replacen(from, to, 1);
        }
        text
    }

    /// The edited config, parsed but not validated (to run one concern on it).
    pub fn parsed(edits: &[(&str, &str)]) -> Config {
        toml::from_str(&edited(edits)).expect("edited config parses")
    }

    /// Runs one concern that comes after `bridges` on the edited config: `check` gets the
    /// bridge index and the interface names the bridges took.
    pub fn after_bridges(
        edits: &[(&str, &str)],
        check: impl for<'a> FnOnce(
            &'a Config,
            &super::Bridges<'a>,
            &mut super::names::IfNames,
        ) -> super::Problems,
    ) -> Vec<Problem> {
        let cfg = parsed(edits);
        let mut names = super::names::IfNames::default();
        let (bridges, _) = super::bridges::check(&cfg, &mut names);
        check(&cfg, &bridges, &mut names).into_vec()
    }

    pub fn problem(field: &str, reason: &str) -> Problem {
        Problem {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Applies a textual edit to the default config and returns the whole error message.
    pub fn refused(from: &str, to: &str) -> String {
        let text = edited(&[(from, to)]);
        match Config::from_toml(&text, "test.toml") {
            Ok(_) => panic!("config with {to:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// The message names the file, the field and every word of the reason.
    pub fn assert_names(msg: &str, field: &str, words: &[&str]) {
        assert!(msg.contains("test.toml"), "no file in: {msg}");
        assert!(
            msg.contains(&format!("{field}:")),
            "field {field} not named in: {msg}"
        );
        for w in words {
            assert!(msg.contains(w), "{w:?} missing from: {msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use crate::config::Config;

    #[test]
    fn default_is_valid() {
        Config::from_toml(DEFAULT, "default.toml").unwrap();
        assert!(super::validate(&parsed(&[])).is_empty());
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let msg = refused("priority = 8192", "priority = 8192\nprio = 3");
        assert!(
            msg.contains("test.toml") && msg.contains("unknown field `prio`"),
            "{msg}"
        );
    }

    #[test]
    fn all_problems_reported_at_once() {
        let text = edited(&[
            ("b = \"swout2\"", "b = \"nowhere\""),
            ("address = \"10.0.0.3/24\"", "address = \"10.9.9.9/24\""),
        ]);
        let msg = format!("{:#}", Config::from_toml(&text, "test.toml").unwrap_err());
        assert!(
            msg.contains("2 problem(s)")
                && msg.contains("link[0].b")
                && msg.contains("node[6].iface[0].address"),
            "{msg}"
        );
    }

    /// Problems come out concern by concern, in the order the file declares things.
    #[test]
    fn problems_are_reported_in_file_order() {
        let cfg = parsed(&[
            ("name = \"lab\"", "name = \"my-lab\""),
            ("port_cost = 100", "port_cost = 0"),
            ("name = \"user2\"", "name = \"user1\""),
            ("b = \"swout2\"", "b = \"nowhere\""),
            ("address = \"10.0.0.3/24\"", "address = \"10.9.9.9/24\""),
            ("vni = 12", "vni = 0"),
            ("rise = 2", "rise = 0"),
            ("vrid = 12", "vrid = 0"),
        ]);
        let fields: Vec<String> = super::validate(&cfg).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "lab.name",
                "stp.port_cost",
                "node[1].name",
                "link[0].b",
                "node[1].iface[0].name",
                "node[6].iface[0].address",
                "vxlan.vni",
                "service.check",
                "vrrp.vrid",
            ]
        );
    }
}
