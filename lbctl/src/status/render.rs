//! Pure: the status model → the text `lbctl status` prints (sections for nodes, LANs'
//! roots, ports against theory, balancers, VRRP, daemons, observer counters, VXLAN).

use super::report::Source;
use super::{PortStatus, Status};
use crate::stp::theory::{PortState, Role};
use crate::topo::state;
use std::fmt::Write;

fn state_str(s: PortState) -> &'static str {
    match s {
        PortState::Disabled => "disabled",
        PortState::Listening => "listening",
        PortState::Learning => "learning",
        PortState::Forwarding => "forwarding",
        PortState::Blocking => "blocking",
    }
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Root => "root",
        Role::Designated => "designated",
        Role::Alternate => "alternate",
        Role::Backup => "backup",
        Role::Disabled => "disabled",
    }
}

/// The whole status as text, section by section.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "lab {}", s.lab);
    nodes(&mut o, s);
    lans(&mut o, s);
    ports(&mut o, s);
    rstp(&mut o, s);
    balancers(&mut o, s);
    vrrp(&mut o, s);
    daemons(&mut o, s);
    counters(&mut o, s);
    vxlan(&mut o, s);
    o
}

/// The nodes, with their kind, host and addresses.
fn nodes(o: &mut String, s: &Status) {
    let _ = writeln!(o, "\nNODES");
    for n in &s.nodes {
        let kind = format!("{:?}", n.kind).to_lowercase();
        let host = n
            .host
            .as_deref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        let addrs: Vec<String> = n
            .addresses
            .iter()
            .map(|(i, a)| format!("{i} {a}"))
            .collect();
        let _ = writeln!(
            o,
            "  {:<8} {:<9}{:<7} {}{}",
            n.name,
            kind,
            host,
            if n.present { "" } else { "MISSING " },
            addrs.join(", ")
        );
    }
}

/// Each LAN's root bridge(s), and theory's when they differ.
fn lans(o: &mut String, s: &Status) {
    for l in &s.lans {
        let mark = if l.roots == l.expected_roots {
            "as expected"
        } else {
            "EXPECTED "
        };
        let exp = if l.roots == l.expected_roots {
            String::new()
        } else {
            l.expected_roots.join(", ")
        };
        let _ = writeln!(
            o,
            "\nLAN {} ({}): root bridge {} ({mark}{exp})",
            l.name,
            l.subnet,
            if l.roots.is_empty() {
                "-".into()
            } else {
                l.roots.join(", ")
            }
        );
    }
}

/// Every bridge port against theory, then the verdict.
fn ports(o: &mut String, s: &Status) {
    let _ = writeln!(o);
    // Ports grouped by bridge (STP bridges first show their theory check).
    let _ = writeln!(
        o,
        "PORTS\n  {:<8} {:<3} {:<11} {:<18} {:<10} {:<10} {:>5}  THEORY",
        "BRIDGE", "NO", "PORT", "PEER", "STATE", "ROLE", "COST"
    );
    for p in &s.ports {
        let theory = theory_cell(p);
        let _ = writeln!(
            o,
            "  {:<8} {:<3} {:<11} {:<18} {:<10} {:<10} {:>5}  {}",
            p.bridge,
            p.port_no,
            p.port,
            p.peer,
            state_str(p.state),
            role_str(p.role),
            p.cost,
            theory
        );
    }
    if s.mismatches.is_empty() {
        let _ = writeln!(o, "  spanning tree matches 802.1D theory on every port");
    } else {
        let _ = writeln!(
            o,
            "  {} port(s) differ from theory (marked !!); STP may still be converging",
            s.mismatches.len()
        );
    }
}

/// The bridges `lbctl stpd` runs: the daemon, the root it follows, and per port what the
/// kernel cannot say (RSTP role and state, edge, point-to-point, the handshakes).
fn rstp(o: &mut String, s: &Status) {
    if s.rstp.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nRSTP (lbctl stpd)");
    for b in &s.rstp {
        let daemon = match b.daemon_running {
            Some(true) => "stpd running",
            Some(false) => "stpd DEAD (ports held as its gate last said)",
            None => "stpd NOT STARTED",
        };
        let root = match (&b.root, &b.root_port) {
            (Some(r), Some(p)) => format!("root {r} via {p}, cost {}", b.root_path_cost),
            (Some(r), None) => format!("root {r} (this bridge)"),
            (None, _) => "no report yet".to_string(),
        };
        let drops: Vec<String> = b.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let drops = if drops.is_empty() {
            String::new()
        } else {
            format!(", refused: {}", drops.join(", "))
        };
        let _ = writeln!(
            o,
            "  {}: {daemon}; {root}; {} topology change(s){drops}",
            b.bridge, b.topology_changes
        );
    }
    let _ = writeln!(
        o,
        "  {:<8} {:<11} {:<10} {:<10} {:<4} {:<3} {:<5} {:>9} {:>9} {:>9} {:>11}",
        "BRIDGE",
        "PORT",
        "ROLE",
        "STATE",
        "EDGE",
        "P2P",
        "PROTO",
        "PROP T/R",
        "AGR T/R",
        "TC T/R",
        "BPDU T/R"
    );
    for p in &s.ports {
        let Some(r) = &p.rstp else { continue };
        let yn = |b: bool| if b { "yes" } else { "no" };
        let state = format!("{:?}", r.state).to_lowercase();
        let _ = writeln!(
            o,
            "  {:<8} {:<11} {:<10} {:<10} {:<4} {:<3} {:<5} {:>9} {:>9} {:>9} {:>11}",
            p.bridge,
            p.port,
            role_str(r.role),
            state,
            yn(r.edge),
            yn(r.p2p),
            if r.rstp { "rstp" } else { "stp" },
            format!("{}/{}", r.proposals_tx, r.proposals_rx),
            format!("{}/{}", r.agreements_tx, r.agreements_rx),
            format!("{}/{}", r.tc_tx, r.tc_rx),
            format!("{}/{}", r.bpdus_tx, r.bpdus_rx),
        );
    }
}

/// Each balancer's backends as its agent sees them.
fn balancers(o: &mut String, s: &Status) {
    if !s.balancers.is_empty() {
        let sources: Vec<&str> = s
            .balancers
            .iter()
            .map(|b| match b.source {
                Some(Source::Bpf) => "pinned BPF maps",
                Some(Source::Agent) => "agent admin port",
                None => "agent not answering",
            })
            .collect();
        let mut sources_u = sources.clone();
        sources_u.dedup();
        let _ = writeln!(
            o,
            "\nBALANCERS (backends as each agent sees them; from {})",
            sources_u.join(", ")
        );
        let _ = writeln!(
            o,
            "  {:<6} {:<8} {:<14} {:<5} {:>3} {:>8} {:>6} {:>6} {:>6}  LAST CHECK",
            "NODE", "BACKEND", "ADDRESS", "STATE", "WT", "REQS", "2xx", "5xx", "FAILS"
        );
        for b in &s.balancers {
            if b.backends.is_empty() {
                let _ = writeln!(o, "  {:<6} agent not answering", b.node);
            }
            for be in &b.backends {
                let check = match (&be.check_ok, &be.check_reason) {
                    (Some(ok), Some(r)) => format!("{} ({r})", if *ok { "ok" } else { "FAIL" }),
                    _ => "none yet".into(),
                };
                let _ = writeln!(
                    o,
                    "  {:<6} {:<8} {:<14} {:<5} {:>3} {:>8} {:>6} {:>6} {:>6}  {}",
                    b.node,
                    be.name,
                    be.address,
                    if be.up { "UP" } else { "DOWN" },
                    be.weight,
                    be.requests,
                    be.responses[1],
                    be.responses[4],
                    be.failures,
                    check
                );
            }
        }
    }
}

/// Each balancer's VRRP instance.
fn vrrp(o: &mut String, s: &Status) {
    let vrrps: Vec<_> = s
        .balancers
        .iter()
        .filter_map(|b| b.vrrp.as_ref().map(|v| (&b.node, v)))
        .collect();
    if !vrrps.is_empty() {
        let _ = writeln!(o, "\nVRRP");
        let _ = writeln!(
            o,
            "  {:<6} {:<8} {:>4} {:>5} {:<15} {:>6} {:>6} {:>5}  DROPS",
            "NODE", "STATE", "VRID", "PRIO", "MASTER", "SENT", "RCVD", "TRANS"
        );
        for (node, v) in vrrps {
            let drops: Vec<String> = v
                .drops
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{r}:{n}"))
                .collect();
            let prio = if v.effective_priority != v.priority {
                format!("{}({})", v.effective_priority, v.priority)
            } else {
                v.priority.to_string()
            };
            let _ = writeln!(
                o,
                "  {:<6} {:<8} {:>4} {:>5} {:<15} {:>6} {:>6} {:>5}  {}",
                node,
                v.state,
                v.vrid,
                prio,
                v.master
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into()),
                v.adverts_sent,
                v.adverts_received,
                v.transitions,
                if drops.is_empty() {
                    "none".into()
                } else {
                    drops.join(" ")
                }
            );
        }
    }
}

/// The recorded daemons, whether they still run, and their supervisor's restarts.
fn daemons(o: &mut String, s: &Status) {
    let _ = writeln!(o, "\nDAEMONS");
    if s.daemons.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for d in &s.daemons {
        let last = d
            .last_exit
            .as_ref()
            .map(|how| format!(" (last: {how})"))
            .unwrap_or_default();
        let sup = if d.supervised {
            format!("restarts {}{last}", d.restarts)
        } else {
            format!("UNSUPERVISED{last}")
        };
        let _ = writeln!(
            o,
            "  {:<8} {:<8} pid {:<7} {:<11} {sup}",
            d.node,
            d.daemon,
            d.pid,
            if d.running { "running" } else { "NOT RUNNING" }
        );
    }
}

/// The TC observers' counters. The RSTP gate's drop columns appear only when some port has
/// dropped something (an `rstp` lab): a kernel-mode lab's table stays as it always was.
fn counters(o: &mut String, s: &Status) {
    let _ = writeln!(
        o,
        "\nBPF COUNTERS (TC ingress observer, pinned under {})",
        state::pin_dir(&s.lab).display()
    );
    let gated = s
        .counters
        .iter()
        .any(|c| gate_drops(&c.counts.stats) != [0; 4]);
    if gated {
        let _ = writeln!(
            o,
            "  RSTP gate drops: STPD-BPDU BPDUs left to lbctl stpd, DROP-IN/DROP-OUT data of a \
             discarding port,\n  LEASE data dropped after stpd's lease ran out (fail closed)"
        );
    }
    let gate_head = if gated {
        format!(
            " {:>10} {:>8} {:>8} {:>7}",
            "STPD-BPDU", "DROP-IN", "DROP-OUT", "LEASE"
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "  {:<8} {:<11} {:>8} {:>5} {:>5} {:>5} {:>5} {:>7} {:>5}{gate_head}  VRRP BY VRID",
        "NODE", "IFACE", "BPDU", "TCN", "TC", "RSTP", "BAD", "VRRP", "BAD"
    );
    for c in &s.counters {
        let by: Vec<String> = c
            .vrrp_by_vrid
            .iter()
            .map(|(v, n)| format!("{v}:{n}"))
            .collect();
        let gate = if gated {
            let [b, i, out, l] = gate_drops(&c.counts.stats);
            format!(" {b:>10} {i:>8} {out:>8} {l:>7}")
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {:<8} {:<11} {:>8} {:>5} {:>5} {:>5} {:>5} {:>7} {:>5}{gate}  {}",
            c.node,
            c.iface,
            c.counts.stats.bpdu_config,
            c.counts.stats.bpdu_tcn,
            c.counts.stats.bpdu_tc,
            c.counts.stats.bpdu_rstp,
            c.counts.stats.bpdu_bad,
            c.counts.stats.vrrp,
            c.counts.stats.vrrp_bad,
            by.join(" ")
        );
    }
}

/// The RSTP gate's drops of a port: BPDUs left to stpd, data in and out of a discarding port,
/// data dropped once stpd's lease ran out.
fn gate_drops(c: &lb_common::PortStats) -> [u64; 4] {
    [
        c.bpdu_dropped,
        c.gate_drop_in,
        c.gate_drop_out,
        c.lease_drop,
    ]
}

/// Each VXLAN endpoint's non-zero counters and learned MACs.
fn vxlan(o: &mut String, s: &Status) {
    for x in &s.vxlan {
        let mode = match (x.mode, x.decap) {
            (crate::config::VxlanMode::Ebpf, Some(crate::config::VxlanDecap::Xdp)) => {
                "BPF VTEP, XDP decapsulation, VX_STATS"
            }
            (crate::config::VxlanMode::Ebpf, _) => "BPF VTEP, TC decapsulation, VX_STATS",
            (crate::config::VxlanMode::Kernel, _) => "kernel vxlan device",
        };
        let _ = writeln!(o, "\nVXLAN {} ({mode}, {})", x.host, x.device);
        let nonzero: Vec<String> = x
            .counters
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for chunk in nonzero.chunks(6) {
            let _ = writeln!(o, "  {}", chunk.join("  "));
        }
        if let Some(port) = &x.headroom_port {
            let room = x
                .headroom
                .map_or("unknown".to_string(), |h| format!("{h} bytes"));
            let _ = writeln!(
                o,
                "  headroom port {port} (vxlan device, kept down, not listed with the bridge's ports): endpoints' headroom {room}"
            );
        }
        for f in &x.fdb {
            let _ = writeln!(
                o,
                "  learned {} behind {} ({:.0} s ago)",
                f.mac, f.vtep, f.age_s
            );
        }
    }
}

/// The THEORY column: what the check says of one port. A port can fail the check while its
/// own state and role are theory's: it then sits on a forwarding loop, or its bridge's STP
/// is not what the config says.
fn theory_cell(p: &PortStatus) -> String {
    let as_theory = p.expected_state == Some(p.state) && p.expected_role == Some(p.role);
    match (p.ok, p.stp) {
        (true, false) => "(no STP)".to_string(),
        (true, true) => "ok".to_string(),
        (false, true) if !as_theory => format!(
            "!! expected {} {}",
            p.expected_state.map(state_str).unwrap_or("?"),
            p.expected_role.map(role_str).unwrap_or("?")
        ),
        (false, _) => "!! on a loop, or STP not as configured".to_string(),
    }
}
