//! What the checkpoints read from and do to a running lab: pages through the VIP from a
//! node, each agent's `/stats`, who holds the VIP, faults with their undo entries, the
//! client loops of an event, and waiting for things with a bound.

use super::derive;
use super::outage::{self, ClientLoop};
use super::report::{Checkpoint, Event};
use super::undo::{Action, FaultKey, Undo};
use crate::agent::admin::Stats;
use crate::config::Config;
use crate::fault;
use crate::topo::inspect::{self, LabView};
use crate::topo::netns;
use crate::topo::plan::{Kind, Plan};
use anyhow::{Context, Result};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// Everything a checkpoint needs; shared (read-only but for the undo stack).
pub struct Ctx {
    pub cfg: Config,
    pub plan: Plan,
    /// The scenario the tree must match (the built-in one unless `--scenario FILE`).
    pub reference: Config,
    pub undo: Undo,
    pub period: Duration,
    pub deadline: Duration,
    /// The scenario was named with `--scenario FILE` (its tree is then checked whatever
    /// the lab's shape).
    pub explicit_scenario: bool,
    /// At most this many STP failure events (`--max-events`).
    pub max_events: Option<usize>,
}

/// One page of the service as a client got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    /// "Esto es el servidor X".
    pub server: String,
    /// "… tiene direccion: A": the address the server saw (the balancer's internal one).
    pub via: String,
}

/// Parses a raw HTTP response (as a server sent it before closing) into a page: what
/// [`Ctx::get`] makes of a response, for the tests.
#[cfg(test)]
fn parse_page(text: &str) -> Option<Page> {
    crate::http_get::parse(text.as_bytes())
        .ok()
        .map(|r| page(&r))
}

/// The page a response carries.
fn page(r: &crate::http_get::Response) -> Page {
    let text = r.text();
    let field = |key: &str| {
        text.find(key)
            .and_then(|i| text[i + key.len()..].split('<').next())
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    Page {
        status: r.status.as_u16(),
        server: field("Esto es el servidor "),
        via: field("tiene direccion: "),
    }
}

impl Ctx {
    pub fn service(&self) -> Result<&crate::config::Service> {
        self.cfg
            .service
            .as_ref()
            .context("the lab's config has no [service]")
    }

    pub fn vip_addr(&self) -> Result<SocketAddr> {
        let s = self.service()?;
        Ok(SocketAddr::V4(SocketAddrV4::new(s.vip, s.port)))
    }

    /// GET / of `addr` from inside `node`.
    pub fn get(&self, node: &str, addr: SocketAddr) -> Option<Page> {
        let deadline = self.deadline.max(Duration::from_millis(1000));
        let host = addr.to_string();
        netns::run_in(&self.plan.netns(node), move || {
            Ok(crate::http_get::get(addr, &host, "/", deadline).ok())
        })
        .ok()
        .flatten()
        .map(|r| page(&r))
    }

    /// `n` consecutive pages of the service from `node` (failed requests are `None`).
    pub fn pages(&self, node: &str, n: usize) -> Result<Vec<Option<Page>>> {
        let addr = self.vip_addr()?;
        Ok((0..n).map(|_| self.get(node, addr)).collect())
    }

    /// A balancer agent's `/stats`, if it answers.
    pub fn stats(&self, bal: &str) -> Option<Stats> {
        let port = self.service().ok()?.admin_port;
        let admin = SocketAddr::from(([127, 0, 0, 1], port));
        netns::run_in(&self.plan.netns(bal), move || {
            Ok(crate::agent::admin::fetch_stats(admin))
        })
        .ok()
        .flatten()
    }

    pub fn balancers(&self) -> Vec<String> {
        self.cfg
            .service
            .as_ref()
            .map(|s| s.balancers.clone())
            .unwrap_or_default()
    }

    /// VRRP state of each balancer ("MASTER", "BACKUP", … or "no answer").
    pub fn vrrp_states(&self) -> Vec<(String, String)> {
        self.balancers()
            .into_iter()
            .map(|b| {
                let s = self
                    .stats(&b)
                    .and_then(|s| s.vrrp.map(|v| v.state))
                    .unwrap_or_else(|| "no answer".into());
                (b, s)
            })
            .collect()
    }

    /// The balancer that should be master when all is well (highest VRRP priority, then
    /// highest address).
    pub fn intended_master(&self) -> Option<String> {
        self.cfg.vrrp.as_ref()?;
        derive::vrrp_order(&self.cfg).into_iter().next()
    }

    /// The balancers that may take over when the intended master fails (several when
    /// their priorities tie).
    pub fn successors(&self) -> Vec<String> {
        let m: Vec<String> = self.intended_master().into_iter().collect();
        derive::takeover_candidates(&self.cfg, &m)
    }

    /// Balancers holding the VIP (as an address on one of their interfaces).
    pub async fn vip_holders(&self) -> Result<Vec<String>> {
        let vip = self.service()?.vip;
        let mut out = Vec::new();
        for b in self.balancers() {
            let (nv, _) = inspect::read_node(&b, &self.plan.netns(&b)).await?;
            if nv
                .ifaces
                .iter()
                .any(|i| i.addrs.iter().any(|a| a.addr() == vip))
            {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// The internal (backend-side) address of a balancer: its address outside the VIP's
    /// subnet.
    pub fn internal_addr(&self, bal: &str) -> Option<Ipv4Addr> {
        let vip = self.service().ok()?.vip;
        self.cfg
            .node(bal)?
            .ifaces
            .iter()
            .filter_map(|i| i.address)
            .find(|a| !a.contains(&vip))
            .map(|a| a.addr())
    }

    /// The bridge a node's interface in the VIP's subnet is plugged into.
    pub fn ext_bridge(&self, node: &str) -> Option<String> {
        let vip = self.service().ok()?.vip;
        self.cfg
            .node(node)?
            .ifaces
            .iter()
            .find(|i| i.address.map(|a| a.contains(&vip)).unwrap_or(false))
            .map(|i| i.bridge.clone())
    }

    pub fn users(&self) -> Vec<String> {
        derive::users(&self.cfg)
    }

    pub fn switches(&self) -> Vec<String> {
        self.plan
            .nodes
            .iter()
            .filter(|n| n.kind == Kind::Switch)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether `user` has a path to a balancer in the kernel's current tree: its bridge is
    /// up and in the same spanning tree (same root) as an up balancer's bridge.
    pub fn has_path(&self, view: &LabView, user: &str) -> bool {
        let Some(ub) = self.ext_bridge(user).and_then(|b| view.bridge(&b).cloned()) else {
            return false;
        };
        if !ub.admin_up {
            return false;
        }
        self.balancers().iter().any(|bal| {
            self.ext_bridge(bal)
                .and_then(|b| view.bridge(&b))
                .map(|bb| bb.admin_up && bb.kernel.root == ub.kernel.root)
                .unwrap_or(false)
        })
    }

    /// Injects a fault, its repair on the undo stack first.
    pub async fn inject(&self, k: &FaultKey) -> Result<()> {
        self.undo.push(Action::Up(k.clone()));
        fault::apply(&self.plan, &k.fault(), false).await?;
        eprintln!("  {} down", k.fault());
        test_hook(&k.fault().to_string())
    }

    /// Repairs a fault and takes it off the undo stack.
    pub async fn repair(&self, k: &FaultKey) -> Result<()> {
        fault::apply(&self.plan, &k.fault(), true).await?;
        self.undo.done(&Action::Up(k.clone()));
        eprintln!("  {} up", k.fault());
        Ok(())
    }

    /// Starts a client loop against the VIP in each of `nodes`.
    pub fn start_loops(&self, nodes: &[String]) -> Result<Vec<ClientLoop>> {
        let addr = self.vip_addr()?;
        nodes
            .iter()
            .map(|n| ClientLoop::start(n, &self.plan.netns(n), addr, self.period, self.deadline))
            .collect()
    }

    /// Starts a client loop in each of `users`, lets them run half a second, then injects
    /// `f`. Returns the loops and, per loop, its clock at the moment of the fault (where
    /// each event's outage is measured from).
    pub async fn inject_measured(
        &self,
        users: &[String],
        f: &FaultKey,
    ) -> Result<(Vec<ClientLoop>, Vec<u64>)> {
        let loops = self.start_loops(users)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let downs = loops.iter().map(|l| l.now_ms()).collect();
        self.inject(f).await?;
        Ok((loops, downs))
    }

    /// Waits until the balancers' VRRP states are `want` (or `limit`); the time it took.
    pub async fn wait_vrrp(&self, want: &[(String, String)], limit: Duration) -> Option<Duration> {
        wait_for(limit, || self.vrrp_states() == want).await
    }

    /// The VRRP states when the intended master is master and the others backups.
    pub fn intended_vrrp(&self) -> Vec<(String, String)> {
        let m = self.intended_master();
        self.balancers()
            .into_iter()
            .map(|b| {
                let s = if Some(&b) == m.as_ref() {
                    "MASTER"
                } else {
                    "BACKUP"
                };
                (b, s.to_string())
            })
            .collect()
    }

    /// Consecutive answers that count as "the service is back": one second of them.
    pub fn stable_n(&self) -> usize {
        (1000 / self.period.as_millis().max(1) as usize).max(3)
    }

    /// Waits (up to the failover limit) until one of `candidates` reports MASTER; which
    /// one and how long it took. Tied candidates may both become master for an advert
    /// until the address decides: the one named is the candidate that is still the only
    /// master one advert interval later.
    pub async fn wait_takeover(&self, candidates: &[String]) -> Option<(String, Duration)> {
        let masters = || -> Vec<String> {
            self.vrrp_states()
                .into_iter()
                .filter(|(b, s)| candidates.contains(b) && s == "MASTER")
                .map(|(b, _)| b)
                .collect()
        };
        let took = wait_for(self.failover_limit(), || !masters().is_empty()).await?;
        if candidates.len() < 2 {
            return Some((masters().pop()?, took));
        }
        let advert = Duration::from_millis(
            self.cfg
                .vrrp
                .as_ref()
                .map_or(1000, |v| u64::from(v.advert_int_ms))
                + 200,
        );
        let t = Instant::now();
        loop {
            let now = masters();
            tokio::time::sleep(advert).await;
            if now.len() == 1 && masters() == now {
                return Some((now[0].clone(), took));
            }
            if t.elapsed() > self.failover_limit() {
                return now.first().map(|w| (w.clone(), took));
            }
        }
    }

    /// Master_Down_Interval plus margin: how long a failover may take.
    pub fn failover_limit(&self) -> Duration {
        let adv = self
            .cfg
            .vrrp
            .as_ref()
            .map(|v| v.advert_int_ms)
            .unwrap_or(1000) as u64;
        Duration::from_millis(4 * adv + 6000)
    }
}

/// For the tests of the undo path: `LBCTL_VERIFY_TEST_FAULT=error:FAULT` (or `panic:FAULT`)
/// makes verify fail (or panic) right after injecting FAULT (e.g. "bridge vswout1").
fn test_hook(fault: &str) -> Result<()> {
    let Ok(v) = std::env::var("LBCTL_VERIFY_TEST_FAULT") else {
        return Ok(());
    };
    match v.split_once(':') {
        Some(("panic", f)) if f == fault => panic!("test fault after {fault} down"),
        Some(("error", f)) if f == fault => anyhow::bail!("test fault after {fault} down"),
        _ => Ok(()),
    }
}

/// Polls `f` every 200 ms until it is true or `limit` passes; the time it took.
pub async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if f() {
            return Some(t.elapsed());
        }
        if t.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lets the loops run until each ends on a second of answers (at most 10 s), so an
/// event's window does not end in the middle of a late failure.
pub async fn settle(ctx: &Ctx, loops: &[ClientLoop]) {
    for l in loops {
        l.wait_recovered(0, ctx.stable_n(), Duration::from_secs(10))
            .await;
    }
}

/// Ends the loops of one event and adds its two events (fault injected at `t_down`,
/// repaired at `t_up`, in each loop's time base) to the checkpoint.
pub fn record_events(
    cp: &mut Checkpoint,
    fault: &str,
    loops: Vec<ClientLoop>,
    marks: &[(u64, u64)],
    has_path_down: &[bool],
    stp: (Option<u64>, Option<u64>),
) {
    record(
        cp,
        fault,
        loops,
        marks,
        has_path_down,
        Marks {
            stp,
            takeover: (None, None),
        },
    )
}

/// What else an event's rows show besides the requests, (fault injected, fault repaired):
/// STP convergence, the VRRP takeover; each in ms from the event.
pub struct Marks {
    pub stp: (Option<u64>, Option<u64>),
    pub takeover: (Option<u64>, Option<u64>),
}

/// [`record_events`] with every mark of the event.
pub fn record(
    cp: &mut Checkpoint,
    fault: &str,
    loops: Vec<ClientLoop>,
    marks: &[(u64, u64)],
    has_path_down: &[bool],
    m: Marks,
) {
    for (i, l) in loops.into_iter().enumerate() {
        let node = l.node.clone();
        let samples = l.finish();
        let end = samples.last().map(|s| s.t_ms + 1).unwrap_or(0);
        let (down, up) = marks[i];
        for (action, from, to, path, conv, takeover) in [
            ("down", down, up, has_path_down[i], m.stp.0, m.takeover.0),
            ("up", up, end, true, m.stp.1, m.takeover.1),
        ] {
            let o = outage::summarize(&samples, from, to);
            cp.event(Event {
                fault: fault.to_string(),
                action: action.into(),
                client: node.clone(),
                trace: outage::trace(&samples, from, to, &o),
                outage: o,
                has_path: path,
                stp_converged_ms: conv,
                vrrp_takeover_ms: takeover,
            });
        }
    }
}

/// Short text for a list of pages: "serv1 serv2 serv3 (via 10.0.0.250)", failures as "✗".
pub fn pages_text(pages: &[Option<Page>]) -> String {
    let mut vias: Vec<&str> = pages.iter().flatten().map(|p| p.via.as_str()).collect();
    vias.sort();
    vias.dedup();
    let seq: Vec<String> = pages
        .iter()
        .map(|p| match p {
            Some(p) if p.status == 200 => p.server.clone(),
            Some(p) => format!("HTTP {}", p.status),
            None => "no-answer".into(),
        })
        .collect();
    format!(
        "{} (client address seen: {})",
        seq.join(" "),
        vias.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_parsed() {
        let p = parse_page("HTTP/1.1 200 OK\r\nContent-Length: 105\r\n\r\n<h1>Esto es el servidor serv2</h1><p>El cliente que ha pedido esta pagina tiene direccion: 10.0.0.250</p>").unwrap();
        assert_eq!(
            p,
            Page {
                status: 200,
                server: "serv2".into(),
                via: "10.0.0.250".into()
            }
        );
        assert_eq!(
            parse_page("HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .unwrap()
                .status,
            503
        );
        assert!(parse_page("garbage").is_none());
        let t = pages_text(&[Some(p.clone()), None, Some(p)]);
        assert_eq!(t, "serv2 no-answer serv2 (client address seen: 10.0.0.250)");
    }
}
