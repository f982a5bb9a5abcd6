//! Lab configuration: the TOML model, its loading, and the validation that refuses a bad
//! config before anything is created.
#![forbid(unsafe_code)]
pub mod gen;
mod model;
mod validate;

pub use model::*;
pub use validate::parse_mac;

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The scenario of the lab text, built into the binary so `lbctl up` works without files.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/default.toml");

impl Config {
    /// Parses and validates a config file. Every problem is reported at once, each as
    /// `FILE: FIELD: REASON`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The built-in default scenario.
    pub fn default_scenario() -> Config {
        Self::from_toml(DEFAULT_TOML, "<built-in default.toml>")
            .expect("the built-in default config is valid")
    }

    /// Parses and validates TOML text; `origin` names the file in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            // toml's message already carries line, column and the offending field.
            anyhow::anyhow!("{origin}: {}", e.to_string().trim_end())
        })?;
        let problems = validate::validate(&cfg);
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{origin}: {}: {}", p.field, p.reason))
                .collect();
            bail!(
                "invalid config ({} problem(s)):\n{}",
                list.len(),
                list.join("\n")
            );
        }
        Ok(cfg)
    }

    /// Overrides the lab name (e.g. `--lab`), re-checking it.
    pub fn with_lab_name(mut self, name: &str) -> Result<Config> {
        validate::check_lab_name(name).map_err(|r| anyhow::anyhow!("--lab: {r}"))?;
        self.lab.name = name.to_string();
        Ok(self)
    }

    /// Effective STP timers of a bridge (its own override, else the lab default).
    pub fn timers(&self, b: &Bridge) -> (u32, u32, u32) {
        (
            b.hello_time.unwrap_or(self.stp.hello_time),
            b.max_age.unwrap_or(self.stp.max_age),
            b.forward_delay.unwrap_or(self.stp.forward_delay),
        )
    }

    /// Who runs a bridge's spanning tree: its own `stp_mode`, else `[stp] mode`.
    pub fn stp_mode(&self, b: &Bridge) -> StpMode {
        b.stp_mode.unwrap_or(self.stp.mode)
    }

    /// Makes every STP bridge run `mode` (`lbctl up --stp`): the lab-wide mode, with the
    /// bridges' own overrides dropped. Returns the config text with the same change, so the
    /// lab's saved config (read by its daemons and later commands) says what was built.
    pub fn with_stp_mode(mut self, text: &str, mode: StpMode) -> Result<(Config, String)> {
        self.stp.mode = mode;
        for b in self.switches.iter_mut() {
            b.stp_mode = None;
        }
        for h in self.hosts.iter_mut() {
            for b in h.bridges.iter_mut() {
                b.stp_mode = None;
            }
        }
        let mut t: toml::Table = toml::from_str(text).context("re-reading the config text")?;
        let stp = t
            .entry("stp")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(stp) = stp.as_table_mut() {
            stp.insert("mode".into(), toml::Value::String(mode.as_str().into()));
        }
        for key in ["switch", "host"] {
            for item in t
                .get_mut(key)
                .and_then(|v| v.as_array_mut())
                .into_iter()
                .flatten()
            {
                let Some(tab) = item.as_table_mut() else {
                    continue;
                };
                tab.remove("stp_mode");
                for b in tab
                    .get_mut("bridge")
                    .and_then(|v| v.as_array_mut())
                    .into_iter()
                    .flatten()
                {
                    if let Some(bt) = b.as_table_mut() {
                        bt.remove("stp_mode");
                    }
                }
            }
        }
        let text = toml::to_string(&t).context("writing the config text")?;
        Ok((self, text))
    }

    /// Every bridge with the namespace (switch or host name) that holds it.
    pub fn all_bridges(&self) -> Vec<(&str, &Bridge)> {
        let mut v: Vec<(&str, &Bridge)> =
            self.switches.iter().map(|s| (s.name.as_str(), s)).collect();
        for h in &self.hosts {
            for b in &h.bridges {
                v.push((h.name.as_str(), b));
            }
        }
        v
    }

    pub fn bridge(&self, name: &str) -> Option<(&str, &Bridge)> {
        self.all_bridges().into_iter().find(|(_, b)| b.name == name)
    }

    pub fn lan(&self, name: &str) -> Option<&Lan> {
        self.lans.iter().find(|l| l.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Whether the config describes real machines (`[[machine]]`) rather than a lab.
    pub fn is_real_hosts(&self) -> bool {
        !self.machines.is_empty()
    }

    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// The addressed interfaces of a lab node or a machine, `(interface, address)`: what a
    /// balancer's listen, source and VRRP settings are derived from. None: no such name.
    pub fn addressed_ifaces(&self, name: &str) -> Option<Vec<(&str, ipnet::Ipv4Net)>> {
        if let Some(n) = self.node(name) {
            let v = n
                .ifaces
                .iter()
                .filter_map(|i| Some((i.name.as_str(), i.address?)));
            return Some(v.collect());
        }
        let m = self.machine(name)?;
        Some(
            m.ifaces
                .iter()
                .map(|i| (i.name.as_str(), i.address))
                .collect(),
        )
    }

    /// Every address of the config's nodes and machines with its owner's name (to name a
    /// VRRP master by its address).
    pub fn address_owners(&self) -> Vec<(std::net::Ipv4Addr, String)> {
        let nodes = self.nodes.iter().map(|n| n.name.as_str());
        let machines = self.machines.iter().map(|m| m.name.as_str());
        nodes
            .chain(machines)
            .flat_map(|name| {
                let ifaces = self.addressed_ifaces(name).unwrap_or_default();
                ifaces
                    .into_iter()
                    .map(move |(_, a)| (a.addr(), name.to_string()))
            })
            .collect()
    }

    /// Refuses a real-machine config in a verb that acts on a lab (`up`, `status`): there
    /// is no namespace to build or read; each machine runs its own agent.
    pub fn require_lab(&self, verb: &str) -> Result<()> {
        if self.is_real_hosts() {
            let names: Vec<&str> = self.machines.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "{verb}: this config describes real machines ({}), not a lab: there is no \
                 namespace to build or read. Run `lbctl agent -c FILE --node NAME` on each machine \
                 (or the lbctl-agent@ systemd unit) and read each agent's admin port \
                 (http://ADDRESS:ADMIN_PORT/stats); see README, \"Real hosts\"",
                names.join(", ")
            );
        }
        Ok(())
    }

    /// The longest forward delay of any STP bridge: bounds how long `up` waits.
    pub fn max_forward_delay(&self) -> u32 {
        self.all_bridges()
            .iter()
            .filter(|(_, b)| b.stp)
            .map(|(_, b)| self.timers(b).2)
            .max()
            .unwrap_or(0)
    }
}

impl Link {
    /// Interface name of the link's end in `a`'s namespace.
    pub fn a_name(&self) -> String {
        self.a_iface
            .clone()
            .unwrap_or_else(|| format!("to-{}", self.b))
    }
    /// Interface name of the link's end in `b`'s namespace.
    pub fn b_name(&self) -> String {
        self.b_iface
            .clone()
            .unwrap_or_else(|| format!("to-{}", self.a))
    }
}

impl Iface {
    /// Name of the veth end plugged into the bridge, in the bridge's namespace.
    pub fn port_name_for(&self, node: &str) -> String {
        self.port_name
            .clone()
            .unwrap_or_else(|| format!("{node}-{}", self.name))
    }
}

impl Node {
    /// Port of the built-in web server on a server node.
    pub fn http_port(&self) -> u16 {
        self.http_port.unwrap_or(80)
    }
}

/// Network namespace name of a node of a lab.
pub fn netns_name(lab: &str, node: &str) -> String {
    format!("lbctl-{lab}-{node}")
}

/// Prefix shared by every namespace of a lab. Lab names are `[a-z0-9]+`, so the trailing
/// `-` makes the prefix unambiguous between labs.
pub fn netns_prefix(lab: &str) -> String {
    format!("lbctl-{lab}-")
}

/// Parses a status range "200-399" or a single code "200" into (low, high).
pub fn parse_status_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v: u16 = s.trim().parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some((lo, hi))
}
