//! Checkpoint 3: servers and balancers. Every balancer's health checks see every backend
//! up; consecutive requests to the VIP from every user alternate over all of them, each
//! page showing the master's internal address, and so do requests to each other
//! balancer's own address through it. Then each tunnel host in turn is cut from the
//! tunnel (derive::host_cuts: an nftables drop, on the switches between the hosts, of the
//! VXLAN packets to and from that host's VTEP; see undo.rs): each balancer sees only the
//! servers on its side of the cut and the master rotates over those; with the master's
//! host cut, the master's external link is cut too and every request is served by its
//! successor's side. With two hosts, one cut is the whole partition. Before the cuts, one
//! backend is black-holed under the users' loops with no failed request allowed
//! (silent.rs).

use super::derive::{self, HostCut};
use super::lab::{pages_text, record, settle, wait_for, Ctx, Marks, Page};
use super::outage::{ClientLoop, BACK_WITHIN};
use super::report::{Checkpoint, Status};
use super::undo::{self, Action, FaultKey};
use crate::config::Config;
use crate::topo::state;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

pub use super::derive::expected_up;

/// What the balancers' health checks say; (every balancer as expected, evidence).
fn health(ctx: &Ctx, cut: Option<&str>) -> (bool, Vec<String>) {
    let mut ok = true;
    let mut ev = Vec::new();
    for bal in ctx.balancers() {
        let want = expected_up(&ctx.cfg, &bal, cut);
        let Some(st) = ctx.stats(&bal) else {
            ok = false;
            ev.push(format!(
                "{bal}: the agent does not answer on its admin port"
            ));
            continue;
        };
        let up: BTreeSet<String> = st
            .backends
            .iter()
            .filter(|b| b.up)
            .map(|b| b.name.clone())
            .collect();
        ok &= up == want;
        ev.push(format!(
            "{bal}: UP {}",
            up.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        for b in st.backends.iter().filter(|b| !b.up) {
            ev.push(format!(
                "{bal}: {} ({}) DOWN, last check: {}",
                b.name,
                b.address,
                b.check_reason.as_deref().unwrap_or("none yet")
            ));
        }
    }
    (ok, ev)
}

/// Backend servers whose recorded daemon is not running.
fn dead_servers(ctx: &Ctx) -> Vec<String> {
    let recorded = state::recorded(&ctx.plan.lab);
    let Some(svc) = &ctx.cfg.service else {
        return vec![];
    };
    svc.backends
        .iter()
        .filter_map(|b| b.node.clone())
        .filter(|n| {
            recorded
                .iter()
                .find(|r| &r.node == n)
                .map(|r| !state::is_alive(r))
                .unwrap_or(true)
        })
        .collect()
}

/// Why a backend may be down: its server daemon not running, or it is on another host
/// than the balancer (reached through the VXLAN only).
fn causes(ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    let recorded = state::recorded(&ctx.plan.lab);
    let Some(svc) = &ctx.cfg.service else {
        return out;
    };
    for b in &svc.backends {
        let Some(n) = &b.node else { continue };
        match recorded.iter().find(|r| &r.node == n) {
            Some(r) if !state::is_alive(r) => out.push(format!(
                "cause: {n}'s {} daemon (pid {}) is not running",
                r.daemon, r.pid
            )),
            None => out.push(format!("cause: no daemon recorded for {n}")),
            _ => {}
        }
    }
    for bal in ctx.balancers() {
        let Some(st) = ctx.stats(&bal) else { continue };
        let host = ctx.cfg.node(&bal).and_then(|n| n.host.clone());
        for be in st.backends.iter().filter(|b| !b.up) {
            let other = ctx
                .cfg
                .node(&be.name)
                .and_then(|n| n.host.clone())
                .filter(|h| Some(h) != host.as_ref());
            if let Some(h) = other {
                let dev = ctx
                    .cfg
                    .vxlan
                    .as_ref()
                    .map(|v| v.device.clone())
                    .unwrap_or_else(|| "none configured".into());
                out.push(format!(
                    "cause?: {} is on {h}, {bal} on {}: reached only through the VXLAN tunnel (device {dev})",
                    be.name,
                    host.clone().unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// Round robin check: every page a 200 through `via`, consecutive pages from different
/// servers, and exactly the servers `want`.
pub fn rotation_ok(pages: &[Option<Page>], want: &BTreeSet<String>, via: &str) -> bool {
    let alternates = want.len() < 2
        || pages
            .windows(2)
            .all(|w| w[0].as_ref().map(|p| &p.server) != w[1].as_ref().map(|p| &p.server));
    spread_ok(pages, want, via) && alternates
}

/// Every page a 200 through `via`, from exactly the servers `want` (in any order).
pub fn spread_ok(pages: &[Option<Page>], want: &BTreeSet<String>, via: &str) -> bool {
    let ok: Vec<&Page> = pages.iter().flatten().filter(|p| p.status == 200).collect();
    if ok.len() != pages.len() || ok.iter().any(|p| p.via != via) {
        return false;
    }
    let got: BTreeSet<String> = ok.iter().map(|p| p.server.clone()).collect();
    &got == want
}

/// Where a rotation's requests go: the VIP (whoever is master) or a balancer's own
/// external address (that balancer, master or not).
enum Target {
    Vip,
    Own,
    /// The VIP while the users' client loops run: their requests interleave with ours,
    /// so consecutive pages need not alternate; four rounds must cover exactly `want`.
    VipUnderLoad,
}

#[allow(clippy::too_many_arguments)]
fn rotation(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    label: &str,
    user: &str,
    bal: &str,
    want: &BTreeSet<String>,
    target: Target,
) -> Result<bool> {
    let via = ctx
        .internal_addr(bal)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let rounds = if matches!(target, Target::VipUnderLoad) {
        4
    } else {
        2
    };
    let n = (rounds * want.len()).max(4);
    let (pages, to) = match target {
        Target::Vip | Target::VipUnderLoad => (ctx.pages(user, n)?, "the VIP".to_string()),
        Target::Own => {
            let port = ctx.service()?.port;
            let ip = derive::ext_addr(&ctx.cfg, bal).context("balancer's external address")?;
            let addr = SocketAddr::from((ip, port));
            let pages = (0..n).map(|_| ctx.get(user, addr)).collect();
            (pages, addr.to_string())
        }
    };
    let (ok, verb) = match target {
        Target::VipUnderLoad => (spread_ok(&pages, want, &via), "spread"),
        _ => (rotation_ok(&pages, want, &via), "alternate"),
    };
    Ok(cp.check(
        &format!(
            "{label}: {n} requests from {user} to {to} {verb} over {} through {bal} ({via})",
            want.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        ok,
        vec![pages_text(&pages)],
    ))
}

/// How long health checks take to notice a change: fall (or rise) checks, each
/// `inter_ms` apart and at most `timeout_ms`, plus margin.
pub fn health_limit(cfg: &Config) -> Duration {
    let c = cfg.service.as_ref().map(|s| s.check.clone());
    let (inter, timeout, n) = c
        .map(|c| (c.inter_ms, c.timeout_ms, c.fall.max(c.rise) as u64))
        .unwrap_or((2000, 2000, 3));
    Duration::from_millis((n + 1) * (inter + timeout) + 3000)
}

pub async fn run(ctx: &Ctx, cp: &mut Checkpoint) -> Result<()> {
    ctx.service()?;
    if !all_up(ctx, cp).await {
        cp.step(
            "rotation, tunnel cut, failover",
            Status::Skip,
            vec!["not run: a backend is down".into()],
        );
        return Ok(());
    }
    let master = ctx.intended_master().context("no [vrrp]")?;
    let users = ctx.users();
    let user = users.first().cloned().context("no user node")?;
    for u in &users {
        let all = expected_up(&ctx.cfg, &master, None);
        rotation(ctx, cp, "tunnel up", u, &master, &all, Target::Vip)?;
    }
    for b in derive::vrrp_order(&ctx.cfg).iter().skip(1) {
        let all = expected_up(&ctx.cfg, b, None);
        rotation(ctx, cp, "tunnel up", &user, b, &all, Target::Own)?;
    }
    super::silent::run(ctx, cp, &master).await?;
    let cuts = match derive::host_cuts(&ctx.cfg, &ctx.plan) {
        Ok(c) => c,
        Err(why) => {
            cp.check("hosts cut from the tunnel", false, vec![why]);
            return Ok(());
        }
    };
    let master_host = ctx.cfg.node(&master).and_then(|n| n.host.clone());
    for c in &cuts {
        let cut = cut_host(ctx, cp, c, &master, &user).await?;
        if Some(&c.host) == master_host.as_ref() {
            failover_with_cut(ctx, cp, &master, &user, c).await?;
        }
        restore_tunnel(ctx, cp, &cut, c).await?;
    }
    Ok(())
}

/// Every balancer sees every backend up (waiting for the health checks first).
async fn all_up(ctx: &Ctx, cp: &mut Checkpoint) -> bool {
    let limit = health_limit(&ctx.cfg);
    let _ = wait_for(limit, || health(ctx, None).0).await;
    let (ok, mut ev) = health(ctx, None);
    // A server whose daemon is gone fails here even before the health checks notice.
    let dead = dead_servers(ctx);
    let ok = ok && dead.is_empty();
    if !ok {
        ev.extend(causes(ctx));
    }
    cp.check("every balancer sees every backend UP", ok, ev)
}

/// Cuts host `c` from the tunnel (its removal on the undo stack first), checks that each
/// balancer then sees only the servers on its side of the cut and the master rotates over
/// those. Returns the cut's undo action.
async fn cut_host(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    c: &HostCut,
    master: &str,
    user: &str,
) -> Result<Action> {
    let limit = health_limit(&ctx.cfg);
    let port = ctx.cfg.vxlan.as_ref().map(|v| v.port).unwrap_or(4789);
    let switches = ctx.switches();
    let cut = Action::RemoveCut {
        nodes: switches.clone(),
    };
    ctx.undo.push(cut.clone());
    for s in &switches {
        undo::add_cut(&ctx.plan.netns(s), port, c.vtep)?;
    }
    let label = c.label();
    eprintln!(
        "  {label} (UDP {port} to and from {} dropped on {})",
        c.vtep,
        switches.join(", ")
    );
    let took = wait_for(limit, || health(ctx, Some(&c.host)).0).await;
    let (ok, mut ev) = health(ctx, Some(&c.host));
    ev.insert(
        0,
        format!(
            "{label}: UDP {port} to and from {} ({}) dropped on {} (nftables, bridge family); health checks {}",
            c.vtep,
            c.host,
            switches.join(", "),
            match took {
                Some(d) => format!("settled in {:.1} s", d.as_secs_f32()),
                None => format!("did not settle within {:.0} s", limit.as_secs_f32()),
            }
        ),
    );
    cp.check(
        &format!("{label}: each balancer sees only the servers on its side of the cut"),
        ok,
        ev,
    );
    let own = expected_up(&ctx.cfg, master, Some(&c.host));
    rotation(ctx, cp, &label, user, master, &own, Target::Vip)?;
    Ok(cut)
}

/// With the tunnel still cut, the master's external link down: the backup takes over and
/// serves with its own servers; link back: the master again. Records the events.
async fn failover_with_cut(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    master: &str,
    user: &str,
    c: &HostCut,
) -> Result<()> {
    let candidates = ctx.successors();
    let first = candidates.first().cloned().context("one balancer only")?;
    let who = candidates.join(" or ");
    let label = c.label();
    let bridge = ctx.ext_bridge(master).context("master's bridge")?;
    let f = FaultKey::Link(master.to_string(), bridge.clone());
    let users = ctx.users();
    let (loops, downs) = ctx.inject_measured(&users, &f).await?;
    // The cut-off master may report FAULT (its interface has no carrier) or MASTER (it
    // does not know); what matters is that the backup takes over.
    let took = ctx.wait_takeover(&candidates).await;
    let backup = took.as_ref().map_or(first, |t| t.0.clone());
    let took = took.map(|t| t.1);
    let rec = wait_users_back(ctx, &loops, &downs).await;
    failover_check(
        ctx,
        cp,
        &format!("{} down: failover to {who} with the {label}", f.fault()),
        (&backup, took),
        &who,
        rec,
    );
    let backup_own = expected_up(&ctx.cfg, &backup, Some(&c.host));
    rotation(
        ctx,
        cp,
        &format!("{label}, after the failover"),
        user,
        &backup,
        &backup_own,
        Target::VipUnderLoad,
    )?;
    let ups: Vec<u64> = loops.iter().map(|l| l.now_ms()).collect();
    ctx.repair(&f).await?;
    let back = ctx
        .wait_vrrp(&ctx.intended_vrrp(), ctx.failover_limit())
        .await;
    for (i, l) in loops.iter().enumerate() {
        l.wait_recovered(ups[i], ctx.stable_n(), Duration::from_secs(20))
            .await;
    }
    cp.check(
        &format!("{} up: {master} MASTER again", f.fault()),
        back.is_some(),
        vec![format!("now: {:?}", ctx.vrrp_states())],
    );
    let paths = vec![true; users.len()];
    let marks: Vec<(u64, u64)> = downs.into_iter().zip(ups).collect();
    settle(ctx, &loops).await;
    let m = Marks {
        stp: (None, None),
        takeover: (took.map(|d| d.as_millis() as u64), None),
    };
    record(
        cp,
        &format!("{} ({label})", f.fault()),
        loops,
        &marks,
        &paths,
        m,
    );
    Ok(())
}

/// Whether every user's loop got its service back within [`BACK_WITHIN`] of its `downs`.
async fn wait_users_back(ctx: &Ctx, loops: &[ClientLoop], downs: &[u64]) -> bool {
    let mut rec = true;
    for (i, l) in loops.iter().enumerate() {
        rec &= l.wait_back(downs[i], ctx.stable_n(), BACK_WITHIN).await;
    }
    rec
}

/// The failover step: `backup` (one of `who`) MASTER after `took`, and every user back.
fn failover_check(
    ctx: &Ctx,
    cp: &mut Checkpoint,
    label: &str,
    (backup, took): (&str, Option<Duration>),
    who: &str,
    rec: bool,
) {
    cp.check(
        label,
        took.is_some() && rec,
        vec![
            match took {
                Some(d) => format!(
                    "{backup} MASTER {} ms after the link went down",
                    d.as_millis()
                ),
                None => format!("{who} not MASTER: {:?}", ctx.vrrp_states()),
            },
            format!("now: {:?}", ctx.vrrp_states()),
            if rec {
                "every user reaches the service again".into()
            } else {
                "a user did NOT reach the service within 20 s of the fault".into()
            },
        ],
    );
}

/// Removes the cut (reporting its drop counters) and checks every backend comes back.
async fn restore_tunnel(ctx: &Ctx, cp: &mut Checkpoint, cut: &Action, c: &HostCut) -> Result<()> {
    let limit = health_limit(&ctx.cfg);
    let drops: Vec<String> = ctx
        .switches()
        .iter()
        .map(|s| {
            format!(
                "{s} dropped {} VXLAN packets of {}",
                undo::cut_drops(&ctx.plan.netns(s)).unwrap_or(0),
                c.host
            )
        })
        .collect();
    undo::run(&ctx.plan, cut).await?;
    ctx.undo.done(cut);
    let took = wait_for(limit, || health(ctx, None).0).await;
    let (ok, mut ev) = health(ctx, None);
    if !ok {
        ev.extend(causes(ctx));
    }
    ev.insert(0, drops.join("; "));
    if let Some(d) = took {
        ev.insert(
            1,
            format!(
                "every backend UP {:.1} s after the tunnel came back",
                d.as_secs_f32()
            ),
        );
    }
    cp.check(
        &format!(
            "{} restored: every balancer sees every backend UP",
            c.label()
        ),
        ok,
        ev,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, via: &str) -> Option<Page> {
        Some(Page {
            status: 200,
            server: s.into(),
            via: via.into(),
        })
    }

    #[test]
    fn expected_servers_follow_the_hosts() {
        let cfg = Config::default_scenario();
        let names = |v: BTreeSet<String>| v.into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(expected_up(&cfg, "bal1", None)),
            ["serv1", "serv2", "serv3"]
        );
        assert_eq!(
            names(expected_up(&cfg, "bal1", Some("vm1"))),
            ["serv1", "serv2"]
        );
        assert_eq!(names(expected_up(&cfg, "bal2", Some("vm1"))), ["serv3"]);
        // Cutting the other host is the same partition.
        assert_eq!(
            names(expected_up(&cfg, "bal1", Some("vm2"))),
            ["serv1", "serv2"]
        );
    }

    #[test]
    fn rotation_needs_alternation_all_servers_and_the_right_balancer() {
        let want: BTreeSet<String> = ["serv1", "serv2"].iter().map(|s| s.to_string()).collect();
        let v = "10.0.0.250";
        assert!(rotation_ok(
            &[p("serv1", v), p("serv2", v), p("serv1", v), p("serv2", v)],
            &want,
            v
        ));
        // Same server twice in a row.
        assert!(!rotation_ok(
            &[p("serv1", v), p("serv1", v), p("serv2", v)],
            &want,
            v
        ));
        // A server missing, or one too many.
        assert!(!rotation_ok(&[p("serv1", v), p("serv1", v)], &want, v));
        assert!(!rotation_ok(
            &[p("serv1", v), p("serv2", v), p("serv3", v)],
            &want,
            v
        ));
        // Through the other balancer, or a failed request.
        assert!(!rotation_ok(
            &[p("serv1", "10.0.0.251"), p("serv2", "10.0.0.251")],
            &want,
            v
        ));
        assert!(!rotation_ok(
            &[p("serv1", v), None, p("serv2", v)],
            &want,
            v
        ));
        // Under load: any order, but exactly the servers wanted.
        assert!(spread_ok(
            &[p("serv1", v), p("serv1", v), p("serv2", v)],
            &want,
            v
        ));
        assert!(!spread_ok(&[p("serv1", v), p("serv1", v)], &want, v));
        assert!(!spread_ok(&[p("serv1", v), None, p("serv2", v)], &want, v));
        // One server only: the same one every time is right.
        let one: BTreeSet<String> = ["serv3".to_string()].into();
        assert!(rotation_ok(&[p("serv3", v), p("serv3", v)], &one, v));
    }
}
