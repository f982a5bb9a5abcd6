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
