//! `lbctl gen`: a lab of any size, written as a commented config file. Pure: options in,
//! TOML text out, no I/O.
//!
//! The shape follows the scenario and grows it: hosts each with an external bridge
//! (`vswoutN`, the host's underlay address) and an internal one (`vswinN`), each host
//! dual-homed to two switches, switches meshed as a ring (or a line, or a full mesh),
//! balancers spread over the hosts sharing one VIP by VRRP, servers spread over the hosts
//! behind every balancer, users on the switches, and a VXLAN joining the internal bridges.
//! With `--hosts 2 --servers 3` the result is the scenario's shape.
//!
//! Valid by construction: every option is checked against what the lab can hold
//! ([`GenOptions::check`] names the option and the reason), and the text is parsed and
//! validated before it is returned, so a refusal of the validator (a data path limit such
//! as the number of remote VTEPs) is reported rather than printed as a config.

mod layout;
mod render;

pub use layout::Layout;

use super::{Config, VxlanMode};
use ipnet::Ipv4Net;
use std::fmt;

/// How the switches are cabled to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mesh {
    /// swout1-swout2-...-swoutN-swout1 (two switches: one cable).
    Ring,
    /// swout1-swout2-...-swoutN: no redundancy between switches.
    Line,
    /// Every pair of switches cabled.
    Full,
}

/// How many servers, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Servers {
    /// The same number on every host.
    PerHost(usize),
    /// This many in all, spread as evenly as possible (earlier hosts take the remainder).
    Total(usize),
}

/// What `lbctl gen` builds.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub lab: String,
    pub hosts: usize,
    pub servers: Servers,
    pub balancers: usize,
    pub switches: usize,
    pub mesh: Mesh,
    /// Switches each host is cabled to (1, or 2 = dual-homed as in the scenario); `None`:
    /// 2, or 1 when there is one switch.
    pub uplinks: Option<usize>,
    pub users: usize,
    pub vxlan: VxlanMode,
    /// The external LAN; `None`: 172.16.1.0/24, grown (172.16.0.0/23, /22…) until it fits.
    pub ext_subnet: Option<Ipv4Net>,
    /// The internal LAN; `None`: 10.0.0.0/24, grown until it fits.
    pub int_subnet: Option<Ipv4Net>,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            lab: "lab".into(),
            hosts: 2,
            servers: Servers::PerHost(2),
            balancers: 2,
            switches: 2,
            mesh: Mesh::Ring,
            uplinks: None,
            users: 2,
            vxlan: VxlanMode::Kernel,
            ext_subnet: None,
            int_subnet: None,
        }
    }
}

/// An option `lbctl gen` cannot honour: which one (as typed on the command line) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenError {
    pub option: &'static str,
    pub reason: String,
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.reason)
    }
}

impl std::error::Error for GenError {}

fn refuse<T>(option: &'static str, reason: impl Into<String>) -> Result<T, GenError> {
    Err(GenError {
        option,
        reason: reason.into(),
    })
}

/// At most this many switches (bridge priorities step by 4096 up to 61440; more switches
/// would only repeat them).
pub const MAX_SWITCHES: usize = 15;
/// At most this many balancers: VRRP priorities 150, 100, then down by one to 3.
pub const MAX_BALANCERS: usize = 99;
/// A sanity bound on the hosts (each is a namespace with two bridges and their cables).
pub const MAX_HOSTS: usize = 1000;

impl GenOptions {
    /// Every server count per host, host by host.
    pub fn servers_on(&self) -> Vec<usize> {
        match self.servers {
            Servers::PerHost(k) => vec![k; self.hosts],
            Servers::Total(n) => (0..self.hosts)
                .map(|i| n / self.hosts + usize::from(i < n % self.hosts))
                .collect(),
        }
    }

    pub fn total_servers(&self) -> usize {
        self.servers_on().iter().sum()
    }

    /// Uplinks per host once the default is applied.
    pub fn uplinks(&self) -> usize {
        self.uplinks
            .unwrap_or(if self.switches >= 2 { 2 } else { 1 })
    }

    /// The options' own limits (the subnets are checked by [`Layout::new`]).
    pub fn check(&self) -> Result<(), GenError> {
        if let Err(r) = super::validate::check_lab_name(&self.lab) {
            return refuse("--lab", r);
        }
        if !(2..=MAX_HOSTS).contains(&self.hosts) {
            return refuse(
                "--hosts",
                format!(
                    "{} is outside 2..={MAX_HOSTS} (the VXLAN joins at least two hosts)",
                    self.hosts
                ),
            );
        }
        if self.total_servers() == 0 {
            let opt = match self.servers {
                Servers::PerHost(_) => "--servers-per-host",
                Servers::Total(_) => "--servers",
            };
            return refuse(opt, "the service needs at least one server");
        }
        if self.balancers == 0 || self.balancers > self.hosts.min(MAX_BALANCERS) {
            return refuse(
                "--balancers",
                format!(
                    "{} balancers: use 1..={} (at most one per host, and at most {MAX_BALANCERS} VRRP priorities)",
                    self.balancers,
                    self.hosts.min(MAX_BALANCERS)
                ),
            );
        }
        if !(1..=MAX_SWITCHES).contains(&self.switches) {
            return refuse(
                "--switches",
                format!("{} is outside 1..={MAX_SWITCHES}", self.switches),
            );
        }
        self.check_uplinks_users()
    }

    fn check_uplinks_users(&self) -> Result<(), GenError> {
        match self.uplinks() {
            1 => {}
            2 if self.switches >= 2 => {}
            2 => {
                return refuse(
                    "--uplinks",
                    "dual-homing (2) needs at least two switches; --switches is 1",
                )
            }
            n => return refuse("--uplinks", format!("{n}: a host has 1 or 2 uplinks")),
        }
        if self.users == 0 {
            return refuse(
                "--users",
                "at least one user is needed to reach the service",
            );
        }
        Ok(())
    }
}

/// The lab config for `o`, as commented TOML that `lbctl up -c` takes as is.
pub fn generate(o: &GenOptions) -> Result<String, GenError> {
    o.check()?;
    let layout = Layout::new(o)?;
    let text = render::config(o, &layout);
    if let Err(e) = Config::from_toml(&text, "<generated>") {
        // The validator's limits that options can reach (today: the data paths' number of
        // remote VTEPs) are the options' fault; anything else would be a bug here.
        let msg = format!("{e:#}");
        let option = if msg.contains("vxlan") {
            "--vxlan"
        } else {
            "--hosts"
        };
        return refuse(
            option,
            format!("the generated config is refused by validation: {msg}"),
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
