//! Tests of the whole bridge: replays (inputs and expected actions as data, in the style of
//! `vrrp/fsm.rs`) and runs of the simulated network of [`super::sim`]. Times printed are
//! simulated time, which is deterministic: the asserted bounds are the protocol's (a
//! handshake of a few 1 ms hops versus the seconds of a timer), not measurements.

use super::super::types::{Bpdu, ConfigBody, Flags, PortId, Times, WireRole};
use super::sim::{bid, Net};
use super::*;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// The lab's timers (configs/default.toml): hello 1 s, max age 6 s, forward delay 4 s.
fn lab_cfg() -> BridgeConfig {
    BridgeConfig {
        hello_time: 1,
        max_age: 6,
        forward_delay: 4,
        ..BridgeConfig::new(bid(32768, 0))
    }
}

// The scenario's external LAN (configs/default.toml), bridges and links in the config's order.
const SWOUT1: usize = 0;
const SWOUT2: usize = 1;
const VSWOUT1: usize = 2;
const VSWOUT2: usize = 3;
const LINKS: [(usize, usize); 5] = [
    (SWOUT1, SWOUT2),
    (VSWOUT1, SWOUT1),
    (VSWOUT1, SWOUT2),
    (VSWOUT2, SWOUT1),
    (VSWOUT2, SWOUT2),
];
const L_SW1_SW2: usize = 0;
const L_VSW1_SW2: usize = 2;

fn scenario() -> Net {
    let ids = [bid(8192, 1), bid(4096, 2), bid(32768, 3), bid(32768, 4)];
    let mut net = Net::new(&ids, &LINKS, lab_cfg());
    for l in 0..LINKS.len() {
        net.set_link(l, true);
    }
    net
}

/// The scenario after 10 s: converged, every link up.
fn converged_scenario() -> Net {
    let mut net = scenario();
    net.run_for(10 * SEC);
    net
}

/// Brings `link` back up and requires the scenario's tree again within 100 ms (proposal
/// and agreement, not 2 x the 4 s forward delay), and still 10 s later.
fn repair_restores_the_tree(net: &mut Net, link: usize, what: &str) {
    net.set_link(link, true);
    let t = net
        .run_until_cond(10 * SEC, scenario_converged)
        .expect("back to the tree");
    println!("{what}: tree restored after {t:?}");
    assert!(t < 100 * MS, "took {t:?}, forward delay is 4 s");
    net.run_for(10 * SEC);
    assert_scenario_tree(net);
}

/// The tree 802.1D theory gives for the scenario (what `lbctl::stp::theory` computes for
/// the default lab): swout2 is root; swout1's root port faces swout2; each host bridge's
/// root port faces swout2 and its port to swout1 is the blocked alternate.
const SCENARIO_ROLES: [(usize, u16, Role); 10] = [
    (SWOUT1, 1, Role::Root),
    (SWOUT1, 2, Role::Designated),
    (SWOUT1, 3, Role::Designated),
    (SWOUT2, 1, Role::Designated),
    (SWOUT2, 2, Role::Designated),
    (SWOUT2, 3, Role::Designated),
    (VSWOUT1, 1, Role::Alternate),
    (VSWOUT1, 2, Role::Root),
    (VSWOUT2, 1, Role::Alternate),
    (VSWOUT2, 2, Role::Root),
];

fn assert_scenario_tree(net: &Net) {
    for (b, port, role) in SCENARIO_ROLES {
        assert_eq!(net.role(b, port), role, "bridge {b} port {port}");
        let want = if role == Role::Alternate {
            PortState::Discarding
        } else {
            PortState::Forwarding
        };
        assert_eq!(net.state(b, port), want, "bridge {b} port {port}");
    }
    for b in 0..4 {
        let s = net.bridges[b].status();
        assert_eq!(s.root, bid(4096, 2), "bridge {b}");
    }
    assert_eq!(net.bridges[SWOUT1].status().root_path_cost, 100);
    assert_eq!(net.bridges[VSWOUT1].status().root_port, Some(2));
    assert!(!net.has_loop());
    assert!(net.applied_matches_status());
}

fn scenario_converged(net: &Net) -> bool {
    SCENARIO_ROLES.iter().all(|&(b, port, role)| {
        net.role(b, port) == role
            && (net.state(b, port) == PortState::Forwarding) == (role != Role::Alternate)
    })
}

#[test]
fn scenario_converges_to_the_theory_tree_without_timer_waits() {
    let mut net = scenario();
    let t = net
        .run_until_cond(20 * SEC, scenario_converged)
        .expect("converges");
    println!("scenario converged {t:?} after all links came up");
    // Proposal/agreement, not 2 x forward delay (8 s here).
    assert!(t < 100 * MS, "took {t:?}");
    net.run_for(10 * SEC);
    assert_scenario_tree(&net);
}

/// The time until port `port` of bridge `b` has `role` and forwards.
fn forwards_as(b: usize, port: u16, role: Role) -> impl FnMut(&Net) -> bool {
    move |n: &Net| n.role(b, port) == role && n.state(b, port) == PortState::Forwarding
}

#[test]
fn new_link_forwards_through_proposal_agreement() {
    // Two bridges, one link: the designated port proposes, the other side agrees.
    let mut net = Net::new(&[bid(4096, 1), bid(32768, 2)], &[(0, 1)], lab_cfg());
    net.run_for(5 * SEC);
    net.set_link(0, true);
    let t = net
        .run_until_cond(10 * SEC, |n| {
            forwards_as(0, 1, Role::Designated)(n) && forwards_as(1, 1, Role::Root)(n)
        })
        .expect("forwards");
    println!("new link: both ends forwarding after {t:?}");
    assert!(t < 10 * MS, "took {t:?}, forward delay is 4 s");
    let s0 = &net.bridges[0].status().ports[0];
    let s1 = &net.bridges[1].status().ports[0];
    assert!(s0.counters.proposals_tx >= 1 && s1.counters.proposals_rx >= 1);
    assert!(s1.counters.agreements_tx >= 1 && s0.counters.agreements_rx >= 1);
    assert!(s0.oper_p2p && s0.send_rstp && !s0.oper_edge);
}

#[test]
fn root_port_failure_alternate_forwards_at_once_and_repair_needs_no_forward_delay() {
    let mut net = converged_scenario();
    assert_scenario_tree(&net);
    // vswout1 loses its root port: the alternate towards swout1 takes over.
    net.set_link(L_VSW1_SW2, false);
    let t = net
        .run_until_cond(10 * SEC, forwards_as(VSWOUT1, 1, Role::Root))
        .expect("alternate takes over");
    println!("vswout1 root link down: alternate forwarding after {t:?}");
    assert!(t <= 5 * MS, "took {t:?}");
    net.run_for(10 * SEC);
    assert!(!net.has_loop());
    assert_eq!(net.state(SWOUT1, 2), PortState::Forwarding);
    // Repaired: back through proposal/agreement.
    repair_restores_the_tree(&mut net, L_VSW1_SW2, "vswout1 root link up");
}

#[test]
fn inter_switch_link_failure_reroutes_swout1_through_a_host_bridge() {
    let mut net = converged_scenario();
    net.set_link(L_SW1_SW2, false);
    // swout1 now reaches the root through vswout1 or vswout2 (their ids decide: vswout1's
    // lower MAC), and that host bridge's port to swout1 becomes designated and forwards.
    let t = net
        .run_until_cond(10 * SEC, |n| {
            forwards_as(SWOUT1, 2, Role::Root)(n) && forwards_as(VSWOUT1, 1, Role::Designated)(n)
        })
        .expect("reroutes");
    println!("swout1-swout2 link down: swout1 forwarding via vswout1 after {t:?}");
    assert!(t < 100 * MS, "took {t:?}");
    net.run_for(10 * SEC);
    assert!(!net.has_loop());
    assert_eq!(net.bridges[SWOUT1].status().root_path_cost, 200);
    // Both host bridges offer cost 200; vswout1's lower id wins, vswout2's offer is the
    // alternate, and vswout2's port to swout1 (cost 100 behind it) is now designated.
    assert_eq!(net.role(SWOUT1, 3), Role::Alternate);
    assert_eq!(net.state(SWOUT1, 3), PortState::Discarding);
    assert_eq!(net.role(VSWOUT2, 1), Role::Designated);
    repair_restores_the_tree(&mut net, L_SW1_SW2, "swout1-swout2 link up");
}

#[test]
fn silent_root_bridge_is_aged_out_after_three_hellos() {
    let mut net = converged_scenario();
    // swout2 stops (no BPDUs, links stay up): 3 x hello after its last BPDU the others
    // age its information out; swout1 (8192) becomes root.
    net.stopped[SWOUT2] = true;
    let t = net
        .run_until_cond(20 * SEC, |n| {
            n.bridges[VSWOUT1].status().root == bid(8192, 1)
                && forwards_as(VSWOUT1, 1, Role::Root)(n)
                && forwards_as(VSWOUT2, 1, Role::Root)(n)
                && forwards_as(SWOUT1, 2, Role::Designated)(n)
                && forwards_as(SWOUT1, 3, Role::Designated)(n)
        })
        .expect("recovers");
    println!("root bridge silent: tree through swout1 forwarding after {t:?}");
    assert!(t >= 2 * SEC && t <= 3 * SEC + 100 * MS, "took {t:?}");
    assert!(!net.has_loop());
    assert_eq!(net.bridges[SWOUT1].status().root_port, None);
    // The ports facing the silent bridge are designated now and, with nobody to agree,
    // forward after the edge delay or 2 x forwardDelay (Hello Time in RSTP mode): if the
    // silent bridge still forwarded frames with its last port states, that would be a loop.
    // So a dead stpd's bridge must stop forwarding (its ports discard), not keep its states.
    let t2 = net
        .run_until_cond(20 * SEC, |n| {
            [(SWOUT1, 1), (VSWOUT1, 2), (VSWOUT2, 2)]
                .iter()
                .all(|&(b, p)| forwards_as(b, p, Role::Designated)(n))
        })
        .expect("ports towards the silent bridge forward");
    println!(
        "root bridge silent: ports facing it forward {:?} after the stop",
        t + t2
    );
}

#[test]
fn topology_change_flushes_the_right_ports_and_propagates_the_tc_flag() {
    let mut net = converged_scenario();
    let before: Vec<u64> = (0..4)
        .map(|b| net.bridges[b].status().topology_changes)
        .collect();
    let (flushes0, sent0) = (net.flushes.len(), net.sent.len());
    let cut = net.now;
    net.set_link(L_VSW1_SW2, false);
    net.run_for(100 * MS);
    let mut flushed: Vec<(usize, u16)> = net.flushes[flushes0..]
        .iter()
        .map(|&(_, b, p)| (b, p))
        .collect();
    flushed.sort();
    flushed.dedup();
    // vswout1's dead root port and swout2's end of that link stopped forwarding; swout1
    // heard the TC from vswout1 on port 2 and flushes its other ports; swout2 heard it from
    // swout1 and flushes its port to vswout2. Not flushed: the port that detected the change
    // (vswout1's new root port) and the ports the TC arrived on.
    assert_eq!(
        flushed,
        vec![
            (SWOUT1, 1),
            (SWOUT1, 3),
            (SWOUT2, 2),
            (SWOUT2, 3),
            (VSWOUT1, 2)
        ]
    );
    // Every flush of a port that stopped forwarding comes after its SetState.
    assert!(net.flushes[flushes0..]
        .iter()
        .all(|&(t, _, _)| t - cut <= 5 * MS));
    let tc_sent: Vec<(usize, u16)> = net.sent[sent0..]
        .iter()
        .filter(|(_, _, _, b)| matches!(b, Bpdu::Rst(c) if c.flags.tc))
        .map(|&(_, b, p, _)| (b, p))
        .collect();
    assert!(tc_sent.contains(&(VSWOUT1, 1)), "{tc_sent:?}");
    assert!(tc_sent.contains(&(SWOUT1, 1)) && tc_sent.contains(&(SWOUT1, 3)));
    for (b, n) in before.iter().enumerate() {
        let s = net.bridges[b].status();
        assert!(s.topology_changes > *n, "bridge {b}");
    }
    assert!(net.bridges[SWOUT1].status().ports[1].counters.tc_rx >= 1);
    assert!(net.bridges[VSWOUT1].status().ports[0].counters.tc_tx >= 1);
    // The ports a TC flushed (not those that stopped forwarding) are flushed once more
    // 100 ms later, before the next TC BPDU a Hello Time later.
    let flushes1 = net.flushes.len();
    net.run_for(200 * MS);
    let again: Vec<(u128, usize, u16)> = net.flushes[flushes1..]
        .iter()
        .map(|&(t, b, p)| ((t - cut).as_millis(), b, p))
        .collect();
    assert_eq!(
        again,
        vec![(101, SWOUT1, 1), (101, SWOUT1, 3), (102, SWOUT2, 3)]
    );
}

/// A tiny deterministic xorshift generator (no crate needed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The roles 802.1D theory gives for the up links between running bridges: each bridge's
/// best root path priority vector by relaxation, then per link the end with the better
/// designated vector is designated, the other root or alternate; ports without link are
/// disabled.
fn theory_roles(net: &Net) -> Vec<std::collections::BTreeMap<u16, Role>> {
    let n = net.bridges.len();
    let ids: Vec<_> = net.bridges.iter().map(|b| b.status().id).collect();
    let pid = |p: u16| PortId::new(128, p);
    // best[b] = (root, cost, designated bridge, designated port, own port).
    let mut best: Vec<_> = ids
        .iter()
        .map(|&id| (id, 0u32, id, PortId(0), PortId(0)))
        .collect();
    let up: Vec<_> = net.links.iter().filter(|l| l.up).cloned().collect();
    for _ in 0..n * 2 {
        for l in &up {
            for ((b, pb), (c, pc)) in [(l.a, l.b), (l.b, l.a)] {
                let cand = (best[c].0, best[c].1 + 100, ids[c], pid(pc), pid(pb));
                if cand < best[b] {
                    best[b] = cand;
                }
            }
        }
    }
    let mut roles: Vec<std::collections::BTreeMap<u16, Role>> = vec![Default::default(); n];
    for l in &net.links {
        let ((a, pa), (b, pb)) = (l.a, l.b);
        if !l.up {
            roles[a].insert(pa, Role::Disabled);
            roles[b].insert(pb, Role::Disabled);
            continue;
        }
        let dv = |x: usize, p: u16| (best[x].0, best[x].1, ids[x], pid(p));
        let (d, (o, po)) = if dv(a, pa) < dv(b, pb) {
            ((a, pa), (b, pb))
        } else {
            ((b, pb), (a, pa))
        };
        roles[d.0].insert(d.1, Role::Designated);
        let is_root = best[o].4 == pid(po) && best[o].0 != ids[o];
        roles[o].insert(po, if is_root { Role::Root } else { Role::Alternate });
    }
    roles
}

fn roles_of(net: &Net) -> Vec<std::collections::BTreeMap<u16, Role>> {
    net.bridges
        .iter()
        .map(|b| {
            b.status()
                .ports
                .iter()
                .map(|p| (p.number, p.role))
                .collect()
        })
        .collect()
}

#[test]
fn theory_roles_match_the_scenario_data() {
    let net = scenario();
    let theory = theory_roles(&net);
    for (b, port, role) in SCENARIO_ROLES {
        assert_eq!(theory[b][&port], role);
    }
}

/// After each of 50 seeded random link flaps (and some whole-bridge power cycles), once
/// the network settles: no loop, every connected part spanned, the roles equal theory. And
/// at no instant in between do the forwarding links hold a cycle.
#[test]
fn random_flaps_never_loop_and_settle_on_the_theory_tree() {
    let (worst, loops) = random_flaps(None, 0x5eed_1234_abcd_0017);
    println!("50 flaps: slowest settling {worst:?}; loops seen {loops}");
    assert_eq!(loops, 0, "a transient loop");
}

/// The same with swout1 an 802.1D bridge (kernel-like, deaf to RST BPDUs).
#[test]
fn random_flaps_with_an_8021d_switch_settle_on_the_theory_tree() {
    let (worst, loops) = random_flaps(Some(SWOUT1), 0x0bad_cafe_0017_0001);
    println!("50 flaps, mixed: slowest settling {worst:?}; loops seen {loops}");
    assert_eq!(loops, 0, "a transient loop");
}

/// 50 seeded flaps on the scenario plus a direct vswout1-vswout2 link (more cycles); the
/// slowest settling time and the number of instants with a loop.
fn random_flaps(legacy: Option<usize>, seed: u64) -> (Duration, u32) {
    let ids = [bid(8192, 1), bid(4096, 2), bid(32768, 3), bid(32768, 4)];
    let mut links = LINKS.to_vec();
    links.push((VSWOUT1, VSWOUT2));
    let mut net = Net::new(&ids, &links, lab_cfg());
    if let Some(b) = legacy {
        net.make_legacy(b);
    }
    for l in 0..links.len() {
        net.set_link(l, true);
    }
    net.run_for(30 * SEC);
    let mut rng = XorShift(seed);
    let mut worst = Duration::ZERO;
    for flap in 0..50 {
        if rng.next().is_multiple_of(6) {
            // A bridge power cycle: all its links down, settle, back up.
            let b = (rng.next() % 4) as usize;
            let mine: Vec<usize> = (0..links.len())
                .filter(|&l| net.links[l].up && (net.links[l].a.0 == b || net.links[l].b.0 == b))
                .collect();
            for &l in &mine {
                net.set_link(l, false);
            }
            settle_and_check(&mut net, flap, &mut worst);
            for &l in &mine {
                net.set_link(l, true);
            }
        } else {
            let l = (rng.next() % links.len() as u64) as usize;
            let up = !net.links[l].up;
            if std::env::var("RSTP_TRACE").is_ok() {
                println!(
                    "flap {flap} at {:?}: link {l} {:?} up={up}",
                    net.now, links[l]
                );
            }
            net.set_link(l, up);
        }
        settle_and_check(&mut net, flap, &mut worst);
    }
    (worst, net.loops_seen)
}

fn settle_and_check(net: &mut Net, flap: usize, worst: &mut Duration) {
    let t = net
        .run_until_cond(40 * SEC, |n| roles_of(n) == theory_roles(n) && settled(n))
        .unwrap_or_else(|| panic!("flap {flap}: no convergence: {:?}", roles_of(net)));
    *worst = (*worst).max(t);
    if t > 500 * MS && std::env::var("RSTP_TRACE").is_ok() {
        println!("flap {flap}: settled after {t:?}");
        {
            let from = net.now - t - 10 * MS;
            for e in net.state_log.iter().filter(|e| e.0 >= from) {
                println!("  {e:?}");
            }
            println!("  roles {:?}", roles_of(net));
            for (t, b, p, bpdu) in net
                .sent
                .iter()
                .filter(|e| e.0 >= from && e.0 < from + 2 * SEC)
            {
                if let Bpdu::Rst(c) = bpdu {
                    let f = c.flags;
                    println!(
                        "  sent {t:?} b{b} p{p} root {:?} cost {} from {:?} {:?} P{} A{} L{} F{} tc{}",
                        c.root.priority, c.root_path_cost, c.bridge.mac[5], f.role,
                        f.proposal as u8, f.agreement as u8, f.learning as u8, f.forwarding as u8, f.tc as u8
                    );
                }
            }
        }
    }
    net.run_for(10 * SEC);
    assert_eq!(roles_of(net), theory_roles(net), "flap {flap}");
    assert!(settled(net), "flap {flap}");
    assert!(!net.has_loop(), "flap {flap}");
    assert!(net.applied_matches_status(), "flap {flap}");
    assert_eq!(net.components(true), net.components(false), "flap {flap}");
}

/// Root and designated ports forward, the others discard.
fn settled(net: &Net) -> bool {
    net.bridges.iter().all(|b| {
        b.status().ports.iter().all(|p| {
            let fwd = matches!(p.role, Role::Root | Role::Designated);
            (p.state == PortState::Forwarding) == fwd
        })
    })
}

// ---- Replays: one bridge, inputs and expected actions as data. ----

/// Drives one bridge at millisecond offsets.
struct Replay {
    bridge: Bridge,
    t0: Duration,
}

impl Replay {
    fn new(id: BridgeId, ports: &[PortConfig]) -> Replay {
        let t0 = Duration::from_secs(500);
        let cfg = BridgeConfig { id, ..lab_cfg() };
        Replay {
            bridge: Bridge::new(cfg, ports, t0),
            t0,
        }
    }

    fn at(&mut self, ms: u64, ev: Event) -> Vec<Action> {
        self.bridge.handle(self.t0 + Duration::from_millis(ms), ev)
    }

    /// Ticks at every deadline up to `ms`; the actions with their offsets.
    fn until(&mut self, ms: u64) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        while let Some(t) = self.bridge.next_deadline() {
            if t > self.t0 + Duration::from_millis(ms) {
                break;
            }
            let off = (t - self.t0).as_millis() as u64;
            out.extend(
                self.bridge
                    .handle(t, Event::Tick)
                    .into_iter()
                    .map(|a| (off, a)),
            );
        }
        out
    }

    fn port(&self) -> PortStatus {
        self.bridge.status().ports[0].clone()
    }
}

/// Bridge A with one port under `admin` point-to-point, its link up at 0 (full or half
/// `duplex`).
fn p2p_link_up(admin: AdminP2p, duplex: bool) -> Replay {
    let mut port = PortConfig::new(1, 100);
    port.admin_p2p = admin;
    let mut r = Replay::new(A, &[port]);
    let ev = Event::Link {
        port: 1,
        up: true,
        full_duplex: duplex,
    };
    r.at(0, ev);
    r
}

fn up(port: u16) -> Event {
    Event::Link {
        port,
        up: true,
        full_duplex: true,
    }
}

fn down(port: u16) -> Event {
    Event::Link {
        port,
        up: false,
        full_duplex: true,
    }
}

const A: BridgeId = BridgeId {
    priority: 4096,
    mac: [0x02, 0, 0, 0, 0, 1],
};
const B: BridgeId = BridgeId {
    priority: 32768,
    mac: [0x02, 0, 0, 0, 0, 2],
};
/// Port 1 at priority 128.
const P1: PortId = PortId(0x8001);

/// Flags from letters: P proposal, A agreement, L learning, F forwarding, T tc, K tc ack.
fn flags(role: WireRole, letters: &str) -> Flags {
    Flags {
        tc: letters.contains('T'),
        proposal: letters.contains('P'),
        role,
        learning: letters.contains('L'),
        forwarding: letters.contains('F'),
        agreement: letters.contains('A'),
        tca: letters.contains('K'),
    }
}

/// A BPDU body with the lab's times and message age `age_s` seconds.
fn body(root: BridgeId, cost: u32, bridge: BridgeId, flags: Flags, age_s: u16) -> ConfigBody {
    ConfigBody {
        flags,
        root,
        root_path_cost: cost,
        bridge,
        port: P1,
        times: Times {
            message_age: age_s * Times::SECOND,
            max_age: 6 * Times::SECOND,
            hello_time: Times::SECOND,
            forward_delay: 4 * Times::SECOND,
        },
    }
}

fn send(bpdu: Bpdu) -> Action {
    Action::Send { port: 1, bpdu }
}

fn set(state: PortState) -> Action {
    Action::SetState { port: 1, state }
}

#[test]
fn replay_downstream_bridge_agrees_to_a_proposal_and_forwards_at_once() {
    use WireRole::{Designated as D, Root as R};
    let mut r = Replay::new(B, &[PortConfig::new(1, 100)]);
    // Link up: alone, B is root and proposes on its designated port.
    let want = vec![send(Bpdu::Rst(body(B, 0, B, flags(D, "P"), 0)))];
    assert_eq!(r.at(0, up(1)), want);
    // A better bridge proposes: B's port becomes its root port, syncs (nothing else to
    // sync), agrees, and forwards at once (no other recent root port): a topology change.
    let steps: [(u64, Bpdu, Vec<Action>); 2] = [
        (
            1,
            Bpdu::Rst(body(A, 0, A, flags(D, "P"), 0)),
            vec![
                set(PortState::Learning),
                set(PortState::Forwarding),
                send(Bpdu::Rst(body(A, 100, B, flags(R, "ALFT"), 1))),
            ],
        ),
        // A forwards now and repeats its info: nothing new to say.
        (2, Bpdu::Rst(body(A, 0, A, flags(D, "LFT"), 0)), vec![]),
    ];
    for (ms, bpdu, want) in steps {
        assert_eq!(r.at(ms, Event::Bpdu { port: 1, bpdu }), want, "at {ms} ms");
    }
    let s = r.bridge.status();
    assert_eq!((s.root, s.root_path_cost, s.root_port), (A, 100, Some(1)));
    assert_eq!(s.topology_changes, 1);
    let p = r.port();
    assert_eq!((p.role, p.state), (Role::Root, PortState::Forwarding));
    assert_eq!(
        (
            p.counters.proposals_rx,
            p.counters.agreements_tx,
            p.counters.tc_tx
        ),
        (1, 1, 1)
    );
}

#[test]
fn replay_designated_port_forwards_on_agreement() {
    use WireRole::{Designated as D, Root as R};
    let mut r = Replay::new(A, &[PortConfig::new(1, 100)]);
    assert_eq!(
        r.at(0, up(1)),
        vec![send(Bpdu::Rst(body(A, 0, A, flags(D, "P"), 0)))]
    );
    // The agreement from B's root port: learning and forwarding at once; the TC B announced
    // arrives before this port forwards and is ignored (17.31 LEARNING); ours goes out.
    let agreement = Bpdu::Rst(body(A, 100, B, flags(R, "ALFT"), 1));
    assert_eq!(
        r.at(
            2,
            Event::Bpdu {
                port: 1,
                bpdu: agreement
            }
        ),
        vec![
            set(PortState::Learning),
            set(PortState::Forwarding),
            send(Bpdu::Rst(body(A, 0, A, flags(D, "LFT"), 0))),
        ]
    );
    // Then a BPDU every Hello Time, with TC while tcWhile (Hello + 1 s) runs.
    let periodic = r.until(3500);
    let sent: Vec<(u64, bool)> = periodic
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Send {
                bpdu: Bpdu::Rst(b), ..
            } => Some((*t, b.flags.tc)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(1000, true), (2000, true), (3000, false)]);
    assert_eq!(r.port().counters.agreements_rx, 1);
}

#[test]
fn replay_admin_edge_port_forwards_at_once_until_a_bpdu_arrives() {
    use WireRole::Designated as D;
    let mut port = PortConfig::new(1, 100);
    port.admin_edge = true;
    let mut r = Replay::new(A, &[port]);
    // An edge port: no proposal, forwarding at once, no topology change.
    assert_eq!(
        r.at(0, up(1)),
        vec![
            set(PortState::Learning),
            set(PortState::Forwarding),
            send(Bpdu::Rst(body(A, 0, A, flags(D, "LF"), 0))),
        ]
    );
    assert!(r.port().oper_edge);
    assert_eq!(r.bridge.status().topology_changes, 0);
    // A BPDU (from an inferior bridge) says a bridge is there: no longer edge; the port
    // keeps forwarding as designated, and that is now a topology change.
    let inferior = Bpdu::Rst(body(B, 0, B, flags(D, "P"), 0));
    assert_eq!(
        r.at(
            500,
            Event::Bpdu {
                port: 1,
                bpdu: inferior
            }
        ),
        vec![send(Bpdu::Rst(body(A, 0, A, flags(D, "LFT"), 0)))]
    );
    assert!(!r.port().oper_edge);
    assert_eq!(r.bridge.status().topology_changes, 1);
    // Link down: discarding and flushed; up again: AdminEdge applies again.
    assert_eq!(
        r.at(1000, down(1)),
        vec![set(PortState::Discarding), Action::Flush { port: 1 }]
    );
    assert_eq!(
        r.at(2000, up(1)),
        vec![
            set(PortState::Learning),
            set(PortState::Forwarding),
            send(Bpdu::Rst(body(A, 0, A, flags(D, "LF"), 0))),
        ]
    );
    assert!(r.port().oper_edge);
}

#[test]
fn replay_auto_edge_port_becomes_edge_after_the_edge_delay() {
    let mut r = Replay::new(A, &[PortConfig::new(1, 100)]);
    r.at(0, up(1));
    // Nobody answers the proposals: after EdgeDelay (MigrateTime, 3 s, on a p2p link) the
    // port is an edge port and forwards, without waiting for forward delays.
    let states: Vec<(u64, Action)> = r
        .until(8000)
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::SetState { .. }))
        .collect();
    assert_eq!(
        states,
        vec![
            (3000, set(PortState::Learning)),
            (3000, set(PortState::Forwarding))
        ]
    );
    assert!(r.port().oper_edge);
    let bpdu = Bpdu::Rst(body(B, 0, B, flags(WireRole::Designated, ""), 0));
    r.at(8500, Event::Bpdu { port: 1, bpdu });
    assert!(!r.port().oper_edge);
}

#[test]
fn replay_migration_to_8021d_and_back() {
    let mut r = Replay::new(A, &[PortConfig::new(1, 100)]);
    r.at(0, up(1));
    // An 802.1D bridge that ignores RST BPDUs claims to be root every second; during the
    // first MigrateTime (3 s) we keep sending RST BPDUs.
    let config = |age| Bpdu::Config(body(B, 0, B, Flags::default(), age));
    let mut sent = Vec::new();
    for k in 0..4u64 {
        sent.extend(r.until(k * 1000 + 100));
        let a = r.at(
            k * 1000 + 100,
            Event::Bpdu {
                port: 1,
                bpdu: config(0),
            },
        );
        sent.extend(a.into_iter().map(|a| (k * 1000 + 100, a)));
    }
    sent.extend(r.until(12_000));
    let kinds: Vec<(u64, &str)> = sent
        .iter()
        .map(|(t, a)| match a {
            Action::Send { bpdu, .. } => (*t, kind(bpdu)),
            Action::SetState { state, .. } => (*t, state_name(*state)),
            Action::Flush { .. } => (*t, "flush"),
        })
        .collect();
    // The config BPDU at 3.1 s, after mdelayWhile, selects 802.1D: configuration BPDUs from
    // the next hello on, and the port forwards as 802.1D does: learning when fdWhile (Max
    // Age from link up) ends at 6 s, forwarding a Forward Delay (4 s) later.
    let want: Vec<(u64, &str)> = vec![
        (1000, "rst"),
        (2000, "rst"),
        (3000, "rst"),
        (4000, "config"),
        (5000, "config"),
        (6000, "learning"),
        (6000, "config"),
        (7000, "config"),
        (8000, "config"),
        (9000, "config"),
        (10_000, "forwarding"),
        (10_000, "config"),
        (11_000, "config"),
        (12_000, "config"),
    ];
    assert_eq!(kinds, want);
    assert!(!r.port().send_rstp);
    // The neighbour now speaks RSTP: back to RST BPDUs at the next hello.
    let rst = Bpdu::Rst(body(A, 100, B, flags(WireRole::Root, "LF"), 1));
    r.at(12_500, Event::Bpdu { port: 1, bpdu: rst });
    assert!(r.port().send_rstp);
    let next: Vec<&str> = r
        .until(13_000)
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Send { bpdu, .. } => Some(kind(bpdu)),
            _ => None,
        })
        .collect();
    assert_eq!(next, vec!["rst"]);
    // And a link that goes down and up starts over with RSTP.
    r.at(20_000, down(1));
    r.at(21_000, up(1));
    assert!(r.port().send_rstp);
}

fn kind(b: &Bpdu) -> &'static str {
    match b {
        Bpdu::Config(_) => "config",
        Bpdu::Rst(_) => "rst",
        Bpdu::Tcn => "tcn",
    }
}

fn state_name(s: PortState) -> &'static str {
    match s {
        PortState::Discarding => "discarding",
        PortState::Learning => "learning",
        PortState::Forwarding => "forwarding",
    }
}

#[test]
fn mixed_network_with_an_8021d_switch_gets_the_same_tree_and_tcn_handshake() {
    // swout1 is an 802.1D bridge like the kernel's (configuration and TCN BPDUs only, RST
    // BPDUs ignored); its neighbours' ports migrate to 802.1D.
    let ids = [bid(8192, 1), bid(4096, 2), bid(32768, 3), bid(32768, 4)];
    let mut net = Net::new(&ids, &LINKS, lab_cfg());
    net.make_legacy(SWOUT1);
    for l in 0..LINKS.len() {
        net.set_link(l, true);
    }
    let t = net.run_until_cond(60 * SEC, scenario_converged);
    if t.is_none() {
        for b in 0..4 {
            println!("{b}: {:?}", net.bridges[b].status());
        }
    }
    let t = t.expect("converges");
    println!("mixed network converged after {t:?}");
    net.run_for(20 * SEC);
    assert_scenario_tree(&net);
    for (b, port) in [(SWOUT2, 1), (VSWOUT1, 1), (VSWOUT2, 1)] {
        assert!(
            !net.port_status(b, port).send_rstp,
            "bridge {b} port {port}"
        );
    }
    // Links between RSTP bridges keep RSTP.
    assert!(net.port_status(VSWOUT1, 2).send_rstp);
    assert!(net
        .sent
        .iter()
        .all(|(_, b, _, bpdu)| *b != SWOUT1 || !matches!(bpdu, Bpdu::Rst(_))));

    // vswout1's root link fails: its alternate (towards the 802.1D switch) forwards at
    // once; the change goes to swout1 as a TCN, which swout1 acknowledges.
    let sent0 = net.sent.len();
    net.set_link(L_VSW1_SW2, false);
    let t = net
        .run_until_cond(10 * SEC, forwards_as(VSWOUT1, 1, Role::Root))
        .expect("alternate takes over");
    println!("mixed network, vswout1 root link down: alternate forwarding after {t:?}");
    assert!(t <= 5 * MS);
    net.run_for(2 * SEC);
    let after = &net.sent[sent0..];
    assert!(after
        .iter()
        .any(|(_, b, p, bpdu)| (*b, *p) == (VSWOUT1, 1) && *bpdu == Bpdu::Tcn));
    assert!(after
        .iter()
        .any(|(_, b, p, bpdu)| (*b, *p) == (SWOUT1, 2)
            && matches!(bpdu, Bpdu::Config(c) if c.flags.tca)));
    assert!(!net.has_loop());
    // Repaired (an RSTP link): proposal/agreement again.
    net.set_link(L_VSW1_SW2, true);
    let t = net
        .run_until_cond(20 * SEC, scenario_converged)
        .expect("back to the tree");
    println!("mixed network, vswout1 root link up: tree restored after {t:?}");
    assert!(t < 100 * MS);
    assert_eq!(net.loops_seen, 0);
}

#[test]
fn a_cable_between_two_ports_of_one_bridge_makes_a_backup_port() {
    // Bridge 0's ports 1 and 2 are cabled to each other; port 3 goes to bridge 1 (root).
    let ids = [bid(32768, 1), bid(4096, 2)];
    let mut net = Net::new(&ids, &[(0, 0), (0, 1)], lab_cfg());
    net.set_link(0, true);
    net.set_link(1, true);
    net.run_for(10 * SEC);
    // Port 1 (lower id) is designated on the looped segment, port 2 its backup.
    assert_eq!(net.role(0, 1), Role::Designated);
    assert_eq!(net.role(0, 2), Role::Backup);
    assert_eq!(net.state(0, 2), PortState::Discarding);
    assert_eq!(net.role(0, 3), Role::Root);
    assert!(!net.has_loop());
    assert_eq!(net.loops_seen, 0);
}

#[test]
fn replay_shared_link_ignores_agreements_and_waits_for_the_timers() {
    // Half duplex under AdminP2p::Auto (or ForceFalse): not point-to-point, so an agreement
    // does not count (17.21.9) and the designated port forwards on fdWhile: learning when
    // the Max Age from link up ends (6 s), forwarding forwardDelay (Hello Time, 1 s) later.
    for (admin, duplex) in [(AdminP2p::Auto, false), (AdminP2p::ForceFalse, true)] {
        let mut r = p2p_link_up(admin, duplex);
        assert!(!r.port().oper_p2p);
        let agreement = Bpdu::Rst(body(A, 100, B, flags(WireRole::Root, "A"), 1));
        let mut states = Vec::new();
        for k in 0..8u64 {
            let mut acts = r.until(k * 1000 + 499);
            let bpdu = agreement;
            let a = r.at(k * 1000 + 500, Event::Bpdu { port: 1, bpdu });
            acts.extend(a.into_iter().map(|a| (k * 1000 + 500, a)));
            states.extend(
                acts.into_iter()
                    .filter(|(_, a)| matches!(a, Action::SetState { .. })),
            );
        }
        assert_eq!(
            states,
            vec![
                (6000, set(PortState::Learning)),
                (7000, set(PortState::Forwarding))
            ],
            "{admin:?}"
        );
        assert_eq!(r.port().counters.agreements_rx, 8);
    }
    // Full duplex under Auto, or ForceTrue on half duplex: point-to-point.
    for (admin, duplex) in [(AdminP2p::Auto, true), (AdminP2p::ForceTrue, false)] {
        let r = p2p_link_up(admin, duplex);
        assert!(r.port().oper_p2p, "{admin:?}");
    }
}
