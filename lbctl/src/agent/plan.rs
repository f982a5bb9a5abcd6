//! What one balancer's agent does, derived from the lab config and the node name: which
//! addresses it listens on, which address it opens backend connections from, and the
//! backends with their addresses.

use crate::balance::backend::BackendState;
use crate::config::{Check, Config, Role};
use crate::proxy::ProxyConfig;
use anyhow::{anyhow, bail, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct BackendPlan {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub pool: String,
}

#[derive(Debug, Clone)]
pub struct AgentPlan {
    pub node: String,
    pub listen: Vec<SocketAddr>,
    pub source: Option<IpAddr>,
    pub admin: SocketAddr,
    pub backends: Vec<BackendPlan>,
    pub check: Check,
    pub service: crate::config::Service,
    /// The VRRP instance protecting the VIP, when the config has `[vrrp]` with a
    /// priority for this node.
    pub vrrp: Option<crate::vrrp::VrrpConfig>,
    /// Where the backend health and VRRP state maps are pinned (None: not kept in maps).
    pub pin_dir: Option<std::path::PathBuf>,
    /// The lab (config) name, for the dashboard's picture (`lbctl graph --lab`).
    pub lab: String,
    /// The other balancers' admin listeners (their address on the VIP's LAN), whose
    /// /stats the dashboard shows next to this one's.
    pub peers: Vec<(String, SocketAddr)>,
    /// Every node address of the config, to name VRRP masters.
    pub names: Vec<(Ipv4Addr, String)>,
    /// The config file the agent was started with (`-c`), which the dashboard's
    /// picture is drawn from too; None: the lab's saved config.
    pub config_file: Option<std::path::PathBuf>,
    /// The lab's pin directory, whose BPF observers' topology-change counts become STP
    /// markers (None: not read).
    pub stp_observers: Option<std::path::PathBuf>,
    /// Seconds without a new topology-change BPDU after which a rise is a new change
    /// (from the bridges' longest hello time).
    pub stp_quiet_s: f64,
}

/// The backends in config order: a server node's address and http_port, or the address
/// given (real hosts).
fn backend_plans(cfg: &Config, svc: &crate::config::Service) -> Result<Vec<BackendPlan>> {
    let mut backends = Vec::new();
    for b in &svc.backends {
        let addr = match (&b.node, b.address) {
            (_, Some(a)) => a,
            (Some(name), None) => {
                let sn = cfg
                    .node(name)
                    .ok_or_else(|| anyhow!("backend node {name:?} is not in the config"))?;
                let ip = sn
                    .ifaces
                    .iter()
                    .find_map(|i| i.address)
                    .ok_or_else(|| anyhow!("backend node {name:?} has no address"))?;
                SocketAddrV4::new(ip.addr(), sn.http_port())
            }
            (None, None) => bail!("a backend needs node or address"),
        };
        backends.push(BackendPlan {
            name: b.display_name(),
            addr: SocketAddr::V4(addr),
            weight: b.weight,
            pool: b.pool.clone(),
        });
    }
    Ok(backends)
}

/// The addresses of balancer `node`, a lab node of role balancer or a real machine; none
/// when the node is not in the config but `--listen` says where to listen.
fn balancer_addrs(cfg: &Config, node: &str, listen: &[SocketAddr]) -> Result<Vec<ipnet::Ipv4Net>> {
    if let Some(n) = cfg.node(node) {
        if n.role != Role::Balancer {
            bail!("node {node:?} is a {:?}, not a balancer", n.role);
        }
    }
    match cfg.addressed_ifaces(node) {
        Some(ifaces) => Ok(ifaces.into_iter().map(|(_, a)| a).collect()),
        None if listen.is_empty() => {
            bail!("no node or machine {node:?} in the config (give --listen to run without one)")
        }
        None => Ok(Vec::new()),
    }
}

impl AgentPlan {
    /// The plan of balancer `node` in `cfg`. `listen` (from the command line) overrides
    /// the derived listen addresses.
    pub fn new(cfg: &Config, node: &str, listen: &[SocketAddr]) -> Result<AgentPlan> {
        let svc = cfg
            .service
            .as_ref()
            .ok_or_else(|| anyhow!("the config has no [service] section"))?;
        let addrs = balancer_addrs(cfg, node, listen)?;
        let backends = backend_plans(cfg, svc)?;
        // Backend connections leave from our address on the backends' subnet.
        let source = backends.first().and_then(|b| match b.addr.ip() {
            IpAddr::V4(ip) => addrs
                .iter()
                .find(|a| a.contains(&ip))
                .map(|a| IpAddr::V4(a.addr())),
            IpAddr::V6(_) => None,
        });
        let listen = if listen.is_empty() {
            let mut l = vec![SocketAddr::from((svc.vip, svc.port))];
            if let Some(ext) = addrs.iter().find(|a| a.contains(&svc.vip)) {
                l.push(SocketAddr::from((ext.addr(), svc.port)));
            }
            l
        } else {
            listen.to_vec()
        };
        let vrrp = match &cfg.vrrp {
            Some(v) if v.priorities.iter().any(|p| p.node == node) => {
                Some(v.instance_config(cfg, node)?)
            }
            _ => None,
        };
        let vip_addr = |b: &str| {
            let ifaces = cfg.addressed_ifaces(b)?;
            ifaces
                .into_iter()
                .find(|(_, a)| a.contains(&svc.vip))
                .map(|(_, a)| a.addr())
        };
        let peers = svc
            .balancers
            .iter()
            .filter(|b| b.as_str() != node)
            .filter_map(|b| {
                let a = vip_addr(b)?;
                Some((b.clone(), SocketAddr::from((a, svc.admin_port))))
            })
            .collect();
        let names = cfg.address_owners();
        let hello = cfg
            .all_bridges()
            .iter()
            .filter(|(_, b)| b.stp)
            .map(|(_, b)| cfg.timers(b).0)
            .max()
            .unwrap_or(cfg.stp.hello_time);
        Ok(AgentPlan {
            stp_observers: None,
            stp_quiet_s: super::stp_watch::Debounce::quiet_for_hello(hello),
            vrrp,
            lab: cfg.lab.name.clone(),
            peers,
            names,
            config_file: None,
            node: node.to_string(),
            listen,
            source,
            admin: SocketAddr::from((Ipv4Addr::UNSPECIFIED, svc.admin_port)),
            backends,
            check: svc.check.clone(),
            service: svc.clone(),
            pin_dir: None,
        })
    }

    pub fn backend_states(&self) -> Vec<Arc<BackendState>> {
        self.backends
            .iter()
            .map(|b| Arc::new(BackendState::new(&b.name, b.addr, b.weight, &b.pool)))
            .collect()
    }

    pub fn proxy_config(&self) -> ProxyConfig {
        let s = &self.service;
        ProxyConfig {
            listen: self.listen.clone(),
            source: self.source,
            timeouts: s.timeouts.clone(),
            limits: s.limits.clone(),
            balance: s.balance,
            cookie: s.cookie.clone(),
            routes: s.routes.clone(),
            rise: s.check.rise,
            fall: s.check.fall,
            error_limit: s.check.error_limit,
            threads: s.nbthread.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .min(64)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bal1_of_the_default_scenario() {
        let cfg = Config::default_scenario();
        let p = AgentPlan::new(&cfg, "bal1", &[]).unwrap();
        assert_eq!(
            p.listen,
            vec![
                "172.16.1.254:8000".parse().unwrap(),
                "172.16.1.250:8000".parse().unwrap()
            ]
        );
        assert_eq!(p.source, Some("10.0.0.250".parse().unwrap()));
        let names: Vec<(&str, String)> = p
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.addr.to_string()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("serv1", "10.0.0.1:80".to_string()),
                ("serv2", "10.0.0.2:80".to_string()),
                ("serv3", "10.0.0.3:80".to_string())
            ]
        );
        let v = p.vrrp.as_ref().expect("bal1 runs VRRP");
        assert_eq!(
            (v.vrid, v.priority, v.interface.as_str()),
            (12, 150, "eth0")
        );
        assert_eq!(
            v.vips,
            vec!["172.16.1.254".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert!(AgentPlan::new(&cfg, "serv1", &[]).is_err());
        assert!(AgentPlan::new(&cfg, "nobody", &[]).is_err());
    }
}

#[cfg(test)]
mod machine_tests {
    use super::*;

    /// lb1 of configs/pair.toml: a real machine's plan from its interfaces' addresses.
    #[test]
    fn lb1_of_the_pair() {
        let cfg = Config::from_toml(include_str!("../../../configs/pair.toml"), "pair.toml")
            .expect("pair.toml is valid");
        let p = AgentPlan::new(&cfg, "lb1", &[]).unwrap();
        let listen: Vec<String> = p.listen.iter().map(|a| a.to_string()).collect();
        assert_eq!(listen, ["192.168.1.254:80", "192.168.1.11:80"]);
        assert_eq!(p.source, Some("10.0.0.11".parse().unwrap()));
        let backends: Vec<String> = p.backends.iter().map(|b| b.addr.to_string()).collect();
        assert_eq!(backends, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let v = p.vrrp.as_ref().expect("lb1 runs VRRP");
        assert_eq!(
            (v.interface.as_str(), v.vrid, v.priority),
            ("eth0", 51, 150)
        );
        let peers: Vec<(String, String)> = p
            .peers
            .iter()
            .map(|(n, a)| (n.clone(), a.to_string()))
            .collect();
        assert_eq!(
            peers,
            [("lb2".to_string(), "192.168.1.12:8404".to_string())]
        );
        assert!(p
            .names
            .contains(&("192.168.1.12".parse().unwrap(), "lb2".to_string())));
        let e = AgentPlan::new(&cfg, "lb3", &[]).unwrap_err().to_string();
        assert!(e.contains("no node or machine \"lb3\""), "{e}");
    }
}
