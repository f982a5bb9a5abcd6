//! Addresses of a generated lab: which subnet each LAN gets and where every interface and
//! the VIP sit in it.
//!
//! A /24 that can hold the scenario's layout keeps it (users from .100, hosts from .150,
//! balancers from .250, the VIP at .254; servers from .1 on the internal LAN, balancers from
//! .250), so small labs read like the scenario. Otherwise addresses are packed from the
//! first one and the VIP takes the last; a subnet the user did not choose grows one bit at a
//! time (172.16.0.0/23, /22…) until everything fits.

use super::{refuse, GenError, GenOptions};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Every address of the lab.
#[derive(Debug, Clone)]
pub struct Layout {
    pub ext: Ipv4Net,
    pub int: Ipv4Net,
    pub users: Vec<Ipv4Addr>,
    /// Each host's address on its external bridge (its VXLAN underlay address).
    pub hosts: Vec<Ipv4Addr>,
    pub bal_ext: Vec<Ipv4Addr>,
    pub bal_int: Vec<Ipv4Addr>,
    pub servers: Vec<Ipv4Addr>,
    pub vip: Ipv4Addr,
}

/// The smallest prefix a grown default subnet may reach.
const MIN_PREFIX: u8 = 16;

/// Address number `i` of `net` (0 is the network address).
fn nth(net: Ipv4Net, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + i as u32)
}

/// Usable host addresses of a subnet (no network or broadcast address).
fn usable(net: Ipv4Net) -> usize {
    (1usize << (32 - net.prefix_len())).saturating_sub(2)
}

/// `count` addresses from `first` on.
fn run(net: Ipv4Net, first: usize, count: usize) -> Vec<Ipv4Addr> {
    (first..first + count).map(|i| nth(net, i)).collect()
}

impl Layout {
    pub fn new(o: &GenOptions) -> Result<Layout, GenError> {
        let (users, hosts, bals) = (o.users, o.hosts, o.balancers);
        let servers = o.total_servers();
        let ext = pick(o.ext_subnet, "--ext-subnet", [172, 16, 1, 0], |n| {
            fits_ext(n, users, hosts, bals)
        })?;
        let int = pick(o.int_subnet, "--int-subnet", [10, 0, 0, 0], |n| {
            fits_int(n, servers, bals)
        })?;
        if ext.contains(&int.network()) || int.contains(&ext.network()) {
            return refuse(
                "--int-subnet",
                format!("{int} overlaps the external LAN {ext}"),
            );
        }
        let scenario_ext = ext.prefix_len() == 24 && users <= 50 && hosts <= 100 && bals <= 4;
        let (u0, h0, b0, vip) = if scenario_ext {
            (100, 150, 250, 254)
        } else {
            (1, 1 + users, 1 + users + hosts, usable(ext))
        };
        let scenario_int = int.prefix_len() == 24 && servers <= 249 && bals <= 5;
        let (s0, bi0) = if scenario_int {
            (1, 250)
        } else {
            (1, 1 + servers)
        };
        Ok(Layout {
            ext,
            int,
            users: run(ext, u0, users),
            hosts: run(ext, h0, hosts),
            bal_ext: run(ext, b0, bals),
            bal_int: run(int, bi0, bals),
            servers: run(int, s0, servers),
            vip: nth(ext, vip),
        })
    }

    /// `addr` with the prefix length of the subnet it sits in.
    pub fn cidr(net: Ipv4Net, addr: Ipv4Addr) -> String {
        format!("{addr}/{}", net.prefix_len())
    }
}

/// Users, hosts, balancers and the VIP on the external LAN.
fn fits_ext(net: Ipv4Net, users: usize, hosts: usize, bals: usize) -> Result<(), String> {
    let need = users + hosts + bals + 1;
    if need > usable(net) {
        return Err(format!(
            "{net} holds {} addresses; {users} user(s) + {hosts} host(s) + {bals} balancer(s) + the VIP need {need}",
            usable(net)
        ));
    }
    Ok(())
}

/// Servers and the balancers' internal addresses on the internal LAN.
fn fits_int(net: Ipv4Net, servers: usize, bals: usize) -> Result<(), String> {
    let need = servers + bals;
    if need > usable(net) {
        return Err(format!(
            "{net} holds {} addresses; {servers} server(s) + {bals} balancer(s) need {need}",
            usable(net)
        ));
    }
    Ok(())
}

/// The user's subnet if it fits (else an error naming `option`), or the default /24 grown
/// until it fits.
fn pick(
    chosen: Option<Ipv4Net>,
    option: &'static str,
    base: [u8; 4],
    fits: impl Fn(Ipv4Net) -> Result<(), String>,
) -> Result<Ipv4Net, GenError> {
    if let Some(net) = chosen {
        let net = net.trunc();
        return match fits(net) {
            Ok(()) => Ok(net),
            Err(why) => refuse(option, why),
        };
    }
    let mut last = String::new();
    for prefix in (MIN_PREFIX..=24).rev() {
        let net = Ipv4Net::new(Ipv4Addr::from(base), prefix)
            .expect("prefix <= 32")
            .trunc();
        match fits(net) {
            Ok(()) => return Ok(net),
            Err(why) => last = why,
        }
    }
    refuse(
        option,
        format!("even the largest default subnet is too small: {last}"),
    )
}
