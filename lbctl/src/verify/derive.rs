//! What `lbctl verify` checks on a lab, derived from its config alone (pure, no I/O): the
//! STP failures to inject (every link between two STP bridges and every STP bridge,
//! bounded by `--max-events`), whether the scenario's intended tree applies, the VRRP
//! failover order, the backends each balancer must rotate over, the host cuts of the
//! tunnel, the internal pairs that must reach each other and the hosts whose tunnel
//! counters are read. Nothing here knows the scenario's node names: a lab of any shape
//! gets the same checkpoints, and `lbctl verify --plan` prints them without running.

use super::undo::FaultKey;
use crate::config::{Config, Role};
use crate::topo::plan::{Kind, Plan};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};

/// Checkpoint 1's failures: the ones to run (in the order they run) and the ones a
/// `--max-events` limit left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StpEvents {
    pub run: Vec<FaultKey>,
    pub skipped: Vec<FaultKey>,
}

/// Every link between two STP bridges, then every STP bridge.
pub fn stp_faults(plan: &Plan) -> Vec<FaultKey> {
    let stp = |b: &Option<String>| {
        b.as_deref()
            .and_then(|b| plan.bridge(b))
            .is_some_and(|b| b.stp)
    };
    let mut v: Vec<FaultKey> = plan
        .veths
        .iter()
        .filter(|v| v.inter_bridge && stp(&v.a.bridge) && stp(&v.b.bridge))
        .map(|v| {
            FaultKey::Link(
                v.a.bridge.clone().unwrap_or_default(),
                v.b.bridge.clone().unwrap_or_default(),
            )
        })
        .collect();
    v.extend(
        plan.bridges
            .iter()
            .filter(|b| b.stp)
            .map(|b| FaultKey::Bridge(b.name.clone())),
    );
    v
}

/// Checkpoint 1's failures under a limit of `max` events. Without a limit: all of them.
/// With one, deterministically: STP bridges first, lowest priority value (the root)
/// first, since a bridge's failure moves the most of the tree; then links, taken so that
/// each bridge in turn gets one more of its links covered. What is chosen runs in the
/// unlimited order (links, then bridges).
pub fn stp_events(plan: &Plan, max: Option<usize>) -> StpEvents {
    let all = stp_faults(plan);
    let Some(max) = max.filter(|m| *m < all.len()) else {
        return StpEvents {
            run: all,
            skipped: vec![],
        };
    };
    let mut bridges: Vec<&FaultKey> = all
        .iter()
        .filter(|f| matches!(f, FaultKey::Bridge(_)))
        .collect();
    let prio = |f: &FaultKey| match f {
        FaultKey::Bridge(b) => plan.bridge(b).map_or(u16::MAX, |b| b.priority),
        _ => u16::MAX,
    };
    bridges.sort_by_key(|f| prio(f));
    let mut chosen: Vec<&FaultKey> = bridges.into_iter().take(max).collect();
    let mut links: Vec<&FaultKey> = all
        .iter()
        .filter(|f| matches!(f, FaultKey::Link(..)))
        .collect();
    let order: Vec<&str> = plan
        .bridges
        .iter()
        .filter(|b| b.stp)
        .map(|b| b.name.as_str())
        .collect();
    // Round robin over the bridges: each takes its first link not yet chosen.
    while chosen.len() < max && !links.is_empty() {
        for b in &order {
            if chosen.len() >= max {
                break;
            }
            let touches = |f: &&FaultKey| matches!(f, FaultKey::Link(x, y) if x == b || y == b);
            if let Some(i) = links.iter().position(touches) {
                chosen.push(links.remove(i));
            }
        }
    }
    let chosen: Vec<FaultKey> = chosen.into_iter().cloned().collect();
    let (run, skipped) = all.into_iter().partition(|f| chosen.contains(f));
    StpEvents { run, skipped }
}

/// Whether the scenario's intended tree is a check on this lab: always when the user
/// named a scenario (`--scenario FILE`); otherwise only when the lab has the built-in
/// scenario's STP bridges (the default lab or a variant of it). Err says why not.
pub fn scenario_applies(plan: &Plan, reference: &Plan, explicit: bool) -> Result<(), String> {
    if explicit {
        return Ok(());
    }
    let names = |p: &Plan| -> BTreeSet<String> {
        p.bridges
            .iter()
            .filter(|b| b.stp)
            .map(|b| b.name.clone())
            .collect()
    };
    let (mine, theirs) = (names(plan), names(reference));
    if mine == theirs {
        Ok(())
    } else {
        Err(format!(
            "the lab's STP bridges ({}) are not the scenario's ({}): only 802.1D theory applies (give --scenario FILE to check an intended tree)",
            mine.into_iter().collect::<Vec<_>>().join(", "),
            theirs.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// A balancer's address in the VIP's subnet (its external leg).
pub fn ext_addr(cfg: &Config, node: &str) -> Option<Ipv4Addr> {
    let vip = cfg.service.as_ref()?.vip;
    cfg.node(node)?
        .ifaces
        .iter()
        .filter_map(|i| i.address)
        .find(|a| a.contains(&vip))
        .map(|a| a.addr())
}

/// The balancers in VRRP order: who is master with all of them up, then who takes over
/// when it fails, and so on. Higher priority first (100 when the config sets none), and
/// between equal priorities the higher primary address, as RFC 9568 §6.4.3 breaks ties.
pub fn vrrp_order(cfg: &Config) -> Vec<String> {
    let (Some(svc), Some(v)) = (&cfg.service, &cfg.vrrp) else {
        return vec![];
    };
    let prio = |b: &str| {
        v.priorities
            .iter()
            .find(|p| p.node == b)
            .map_or(100, |p| p.priority)
    };
    let mut order = svc.balancers.clone();
    order.sort_by_key(|b| std::cmp::Reverse((prio(b), ext_addr(cfg, b))));
    order
}

/// Who may take over when the balancers `out` fail: the rest with the highest priority.
/// Several when they tie: a backup that hears an advert of its own priority stays backup
/// (RFC 9568 §6.4.2), so the one whose Master_Down timer fires first wins, which no
/// config decides; the address breaks the tie only between two masters.
pub fn takeover_candidates(cfg: &Config, out: &[String]) -> Vec<String> {
    let Some(v) = &cfg.vrrp else { return vec![] };
    let prio = |b: &str| {
        v.priorities
            .iter()
            .find(|p| p.node == b)
            .map_or(100, |p| p.priority)
    };
    let rest: Vec<String> = vrrp_order(cfg)
        .into_iter()
        .filter(|b| !out.contains(b))
        .collect();
    let top = rest.first().map(|b| prio(b));
    rest.into_iter().filter(|b| Some(prio(b)) == top).collect()
}

/// The host a node runs on.
fn host_of(cfg: &Config, node: &str) -> Option<String> {
    cfg.node(node).and_then(|n| n.host.clone())
}

/// Backends (by name) balancer `bal` must see up: all of them, or with host `cut` cut
/// from the tunnel, those on its own side of the cut (a balancer on the cut host keeps
/// only that host's servers, a balancer elsewhere loses exactly those). Backends given
/// by address are never expected to change with the tunnel.
pub fn expected_up(cfg: &Config, bal: &str, cut: Option<&str>) -> BTreeSet<String> {
    let Some(svc) = &cfg.service else {
        return BTreeSet::new();
    };
    let inside = |h: Option<String>| h.as_deref() == cut;
    let mine = inside(host_of(cfg, bal));
    svc.backends
        .iter()
        .filter(|b| match (&b.node, cut) {
            (Some(n), Some(_)) => inside(host_of(cfg, n)) == mine,
            _ => true,
        })
        .map(|b| b.display_name())
        .collect()
}

/// One host cut from the tunnel: its VXLAN packets dropped on the switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCut {
    pub host: String,
    /// Its underlay address (the outer packets' source or destination).
    pub vtep: Ipv4Addr,
    /// Hosts whose cut would split the tunnel the same way (with two hosts, cutting
    /// either one is the same partition), not run again.
    pub same_as: Vec<String>,
}

impl HostCut {
    /// How the report names it: "tunnel cut" when it is the whole partition (two hosts),
    /// "vm3 cut from the tunnel" otherwise.
    pub fn label(&self) -> String {
        if self.same_as.is_empty() {
            format!("{} cut from the tunnel", self.host)
        } else {
            "tunnel cut".into()
        }
    }
}

/// The host cuts checkpoint 3 runs: every tunnel endpoint's host, the intended master's
/// first (its cut is where the failover with the tunnel cut happens). With two hosts one
/// cut is the whole partition. Err when a cut on the switches could not separate a host:
/// two hosts' bridges linked directly.
pub fn host_cuts(cfg: &Config, plan: &Plan) -> Result<Vec<HostCut>, String> {
    let Some(vx) = &cfg.vxlan else {
        return Ok(vec![]);
    };
    let host_bridge = |b: &Option<String>| {
        b.as_deref()
            .and_then(|b| plan.bridge(b))
            .and_then(|b| plan.nodes.iter().find(|n| n.name == b.node))
            .filter(|n| n.kind == Kind::Host)
            .map(|n| n.name.clone())
    };
    for v in plan.veths.iter().filter(|v| v.inter_bridge) {
        if let (Some(a), Some(b)) = (host_bridge(&v.a.bridge), host_bridge(&v.b.bridge)) {
            if a != b {
                return Err(format!(
                    "hosts {a} and {b} are linked directly ({} - {}): a cut on the switches cannot separate them",
                    v.a.bridge.clone().unwrap_or_default(),
                    v.b.bridge.clone().unwrap_or_default()
                ));
            }
        }
    }
    let master_host = vrrp_order(cfg).first().and_then(|m| host_of(cfg, m));
    let mut cuts: Vec<HostCut> = vx
        .endpoints
        .iter()
        .map(|e| HostCut {
            host: e.host.clone(),
            vtep: e.local,
            same_as: vec![],
        })
        .collect();
    if let Some(i) = cuts
        .iter()
        .position(|c| Some(&c.host) == master_host.as_ref())
    {
        let c = cuts.remove(i);
        cuts.insert(0, c);
    }
    if cuts.len() == 2 {
        let other = cuts.pop().map(|c| c.host);
        cuts[0].same_as.extend(other);
    }
    Ok(cuts)
}

/// Every node with an address on the tunnel's LAN (or, without a tunnel, on the LAN of
/// the master's internal leg), with that address.
pub fn internal_nodes(cfg: &Config) -> Vec<(String, Ipv4Addr)> {
    let vip = cfg.service.as_ref().map(|s| s.vip);
    let lan = cfg
        .vxlan
        .as_ref()
        .and_then(|v| v.endpoints.first())
        .and_then(|e| cfg.bridge(&e.bridge))
        .map(|(_, b)| b.lan.clone())
        .or_else(|| {
            let m = vrrp_order(cfg).into_iter().next()?;
            let a = cfg
                .node(&m)?
                .ifaces
                .iter()
                .filter_map(|i| i.address)
                .find(|a| !vip.is_some_and(|v| a.contains(&v)))?;
            cfg.lans
                .iter()
                .find(|l| l.subnet.contains(&a.addr()))
                .map(|l| l.name.clone())
        });
    let Some(lan) = lan else { return vec![] };
    let mut out = Vec::new();
    for n in &cfg.nodes {
        for i in &n.ifaces {
            let on_lan = cfg.bridge(&i.bridge).is_some_and(|(_, b)| b.lan == lan);
            if let (true, Some(a)) = (on_lan, i.address) {
                out.push((n.name.clone(), a.addr()));
            }
        }
    }
    out
}

/// Traffic from the master to one host, for its tunnel counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traffic {
    /// HTTP requests to a server there.
    Http(String, SocketAddr),
    /// Pings to another internal node there (a host without a server).
    Ping(String, Ipv4Addr),
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Traffic::Http(n, a) => write!(f, "HTTP to {n} {a}"),
            Traffic::Ping(n, a) => write!(f, "ping to {n} {a}"),
        }
    }
}

/// Where checkpoint 4 reads the tunnel counters: every endpoint host other than
/// `master`'s, with the traffic the master sends there (requests to a server, else pings
/// to another internal node; None: no internal node on that host).
pub fn counter_targets(cfg: &Config, master: &str) -> Vec<(String, Option<Traffic>)> {
    let mhost = host_of(cfg, master);
    let Some(vx) = &cfg.vxlan else { return vec![] };
    let servers: Vec<(String, Traffic)> = cfg
        .service
        .iter()
        .flat_map(|s| s.backends.iter())
        .filter_map(|b| {
            let n = cfg.node(b.node.as_ref()?)?;
            let a = n.ifaces.iter().find_map(|i| i.address)?.addr();
            let t = Traffic::Http(n.name.clone(), SocketAddr::from((a, n.http_port())));
            Some((n.host.clone()?, t))
        })
        .collect();
    let internal = internal_nodes(cfg);
    vx.endpoints
        .iter()
        .filter(|e| Some(&e.host) != mhost.as_ref())
        .map(|e| {
            let server = servers.iter().find(|(h, _)| *h == e.host);
            let other = || {
                internal
                    .iter()
                    .find(|(n, _)| host_of(cfg, n).as_ref() == Some(&e.host))
                    .map(|(n, a)| Traffic::Ping(n.clone(), *a))
            };
            let t = server.map(|(_, t)| t.clone()).or_else(other);
            (e.host.clone(), t)
        })
        .collect()
}

/// Everything planned, as report lines (`lbctl verify --plan`, and checkpoint steps).
pub fn summary(
    cfg: &Config,
    reference: &Config,
    explicit: bool,
    max: Option<usize>,
) -> Vec<String> {
    let plan = Plan::new(cfg);
    let ev = stp_events(&plan, max);
    let names = |v: &[FaultKey]| {
        v.iter()
            .map(|f| f.fault().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = vec![format!(
        "1 STP: tree vs 802.1D theory at rest and after each of {} failures: {}",
        ev.run.len(),
        names(&ev.run)
    )];
    if !ev.skipped.is_empty() {
        out.push(format!(
            "1 STP: skipped by --max-events: {}",
            names(&ev.skipped)
        ));
    }
    out.push(
        match scenario_applies(&plan, &Plan::new(reference), explicit) {
            Ok(()) => "1 STP: the scenario's intended tree is checked too".into(),
            Err(why) => format!("1 STP: scenario's tree not checked: {why}"),
        },
    );
    let order = vrrp_order(cfg);
    let master = order.first().cloned().unwrap_or_default();
    out.push(format!(
        "2 VRRP: order {}; {master} fails (bridge down, agent killed), {} takes over",
        order.join(" > "),
        takeover_candidates(cfg, std::slice::from_ref(&master)).join(" or ")
    ));
    for b in &order {
        out.push(format!(
            "3 balancers: {b} rotates over {}",
            expected_up(cfg, b, None)
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match host_cuts(cfg, &plan) {
        Ok(cuts) => out.extend(cuts.iter().map(|c| {
            let same = if c.same_as.is_empty() {
                String::new()
            } else {
                format!(" (same partition as cutting {})", c.same_as.join(", "))
            };
            format!(
                "3 balancers: {} ({}) cut from the tunnel{same}",
                c.host, c.vtep
            )
        })),
        Err(why) => out.push(format!("3 balancers: no host cut: {why}")),
    }
    let n = internal_nodes(cfg).len();
    out.push(format!(
        "4 VXLAN: {n} internal addresses, {} pairs",
        n * n.saturating_sub(1)
    ));
    if let Some(m) = order.first() {
        for (h, t) in counter_targets(cfg, m) {
            out.push(match t {
                Some(t) => format!("4 VXLAN: counters of {m}'s host and {h} ({m}: {t})"),
                None => {
                    format!("4 VXLAN: {h} has no internal node: its counters are not exercised")
                }
            });
        }
    }
    out
}

/// The users: where the client loops and requests come from.
pub fn users(cfg: &Config) -> Vec<String> {
    cfg.nodes
        .iter()
        .filter(|n| n.role == Role::User)
        .map(|n| n.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(path: &str) -> Config {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        Config::load(&p).unwrap()
    }

    fn names(v: &[FaultKey]) -> Vec<String> {
        v.iter().map(|f| f.fault().to_string()).collect()
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_lab_plans_the_scenarios_checkpoints() {
        let cfg = Config::default_scenario();
        let plan = Plan::new(&cfg);
        let ev = stp_events(&plan, None);
        assert_eq!(ev.run.len(), 9);
        assert!(ev.skipped.is_empty());
        assert_eq!(
            names(&ev.run[5..]),
            [
                "bridge swout1",
                "bridge swout2",
                "bridge vswout1",
                "bridge vswout2"
            ]
        );
        assert_eq!(scenario_applies(&plan, &plan, false), Ok(()));
        assert_eq!(vrrp_order(&cfg), ["bal1", "bal2"]);
        // Two hosts: one cut is the whole partition, the master's host named.
        let cuts = host_cuts(&cfg, &plan).unwrap();
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].host, "vm1");
        assert_eq!(cuts[0].same_as, ["vm2"]);
        assert_eq!(cuts[0].label(), "tunnel cut");
        assert_eq!(expected_up(&cfg, "bal2", Some("vm1")), set(&["serv3"]));
        assert_eq!(internal_nodes(&cfg).len(), 5);
        let t = counter_targets(&cfg, "bal1");
        assert_eq!(
            t,
            [(
                "vm2".to_string(),
                Some(Traffic::Http(
                    "serv3".into(),
                    "10.0.0.3:80".parse().unwrap()
                ))
            )]
        );
    }

    #[test]
    fn big_lab_gets_every_link_bridge_host_and_balancer() {
        let cfg = load("tests/configs/big.toml");
        let plan = Plan::new(&cfg);
        let ev = stp_events(&plan, None);
        // 4 inter-switch links, 2 per host, then 8 STP bridges.
        assert_eq!(ev.run.len(), 4 + 8 + 8);
        let reference = Plan::new(&Config::default_scenario());
        let why = scenario_applies(&plan, &reference, false).unwrap_err();
        assert!(
            why.contains("swout3") && why.contains("--scenario"),
            "{why}"
        );
        // Named explicitly, the scenario is checked whatever the lab's shape.
        assert_eq!(scenario_applies(&plan, &reference, true), Ok(()));
        assert_eq!(vrrp_order(&cfg), ["bal1", "bal2", "bal3", "bal4"]);
        assert_eq!(takeover_candidates(&cfg, &["bal1".into()]), ["bal2"]);
        let cuts = host_cuts(&cfg, &plan).unwrap();
        let hosts: Vec<&str> = cuts.iter().map(|c| c.host.as_str()).collect();
        assert_eq!(hosts, ["vm1", "vm2", "vm3", "vm4"]);
        assert!(cuts.iter().all(|c| c.same_as.is_empty()));
        assert_eq!(cuts[2].vtep, Ipv4Addr::new(172, 16, 1, 152));
        assert_eq!(cuts[2].label(), "vm3 cut from the tunnel");
        // vm4 cut: bal4 keeps its own two, the others lose exactly those.
        assert_eq!(
            expected_up(&cfg, "bal4", Some("vm4")),
            set(&["serv5", "serv6"])
        );
        assert_eq!(
            expected_up(&cfg, "bal1", Some("vm4")),
            set(&["serv1", "serv2", "serv3", "serv4"])
        );
        assert_eq!(expected_up(&cfg, "bal3", None).len(), 6);
        assert_eq!(internal_nodes(&cfg).len(), 10);
        let hosts: Vec<String> = counter_targets(&cfg, "bal1")
            .into_iter()
            .map(|(h, t)| format!("{h} {}", t.unwrap()))
            .collect();
        assert_eq!(
            hosts,
            [
                "vm2 HTTP to serv3 10.0.0.3:80",
                "vm3 HTTP to serv4 10.0.0.4:80",
                "vm4 HTTP to serv5 10.0.0.5:80"
            ]
        );
    }

    #[test]
    fn max_events_takes_bridges_root_first_then_links_covering_each_bridge() {
        let plan = Plan::new(&load("tests/configs/big.toml"));
        let ev = stp_events(&plan, Some(2));
        assert_eq!(names(&ev.run), ["bridge swout1", "bridge swout2"]);
        assert_eq!(ev.skipped.len(), 18);
        let ev = stp_events(&plan, Some(10));
        // All 8 bridges, then one link of swout1 and one of swout2 (round robin), run in
        // the unlimited order (links first).
        assert_eq!(
            names(&ev.run[..2]),
            ["link swout1 - swout2", "link swout2 - swout4"]
        );
        assert_eq!(ev.run.len(), 10);
        assert_eq!(ev.run.len() + ev.skipped.len(), 20);
        // Deterministic, and a limit above the count is no limit.
        assert_eq!(stp_events(&plan, Some(10)), ev);
        assert_eq!(stp_events(&plan, Some(99)), stp_events(&plan, None));
    }

    #[test]
    fn three_host_lab_is_derived_without_the_scenarios_names() {
        let cfg = load("tests/configs/three.toml");
        let plan = Plan::new(&cfg);
        let ev = stp_events(&plan, None);
        assert_eq!(ev.run.len(), 9 + 6);
        assert!(names(&ev.run).contains(&"link swc - swa".to_string()));
        // lb1 and lb2 tie on priority: listed by address, either may take over.
        assert_eq!(vrrp_order(&cfg), ["lb3", "lb2", "lb1"]);
        assert_eq!(takeover_candidates(&cfg, &["lb3".into()]), ["lb2", "lb1"]);
        assert_eq!(
            takeover_candidates(&cfg, &["lb3".into(), "lb2".into()]),
            ["lb1"]
        );
        let cuts = host_cuts(&cfg, &plan).unwrap();
        let hosts: Vec<&str> = cuts.iter().map(|c| c.host.as_str()).collect();
        assert_eq!(hosts, ["h3", "h1", "h2"], "the master's host first");
        // h1 has no server: cut from the tunnel, lb1 has nothing left.
        assert!(expected_up(&cfg, "lb1", Some("h1")).is_empty());
        assert_eq!(expected_up(&cfg, "lb3", Some("h3")), set(&["web3"]));
        assert_eq!(expected_up(&cfg, "lb2", Some("h3")), set(&["web1", "web2"]));
        assert_eq!(internal_nodes(&cfg).len(), 6);
        let t = counter_targets(&cfg, "lb3");
        assert_eq!(
            t[0],
            (
                "h1".to_string(),
                Some(Traffic::Ping("lb1".into(), Ipv4Addr::new(10, 0, 0, 250)))
            )
        );
        let text = summary(&cfg, &Config::default_scenario(), false, Some(4)).join("\n");
        assert!(text.contains("order lb3 > lb2 > lb1; lb3 fails"), "{text}");
        assert!(text.contains("lb2 or lb1 takes over"), "{text}");
        assert!(text.contains("skipped by --max-events"), "{text}");
        // Only the scenario's bridge list (in the note) names the scenario.
        let own = text.replace("(swout1, swout2, vswout1, vswout2)", "");
        for name in ["bal1", "bal2", "serv", "swout", "user", "vm"] {
            assert!(!own.contains(name), "{name} in {text}");
        }
    }

    #[test]
    fn hosts_linked_directly_cannot_be_cut_on_the_switches() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs/three.toml"),
        )
        .unwrap()
        .replacen(
            "[[link]]\na = \"xb3\"\nb = \"swa\"",
            "[[link]]\na = \"xb3\"\nb = \"xb1\"",
            1,
        );
        let cfg = Config::from_toml(&text, "x.toml").unwrap();
        let why = host_cuts(&cfg, &Plan::new(&cfg)).unwrap_err();
        assert!(why.contains("h3 and h1 are linked directly"), "{why}");
    }
}
