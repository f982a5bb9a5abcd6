//! Spanning tree settings: timers within the kernel's ranges and 802.1D's relations, port
//! costs and priorities within what the kernel accepts.

use super::Problems;
use crate::config::model::{Config, StpMode};

/// Kernel STP timer ranges (seconds), as net/bridge enforces them.
const HELLO: (u32, u32) = (1, 10);
const FWD: (u32, u32) = (2, 30);
const MAX_AGE: (u32, u32) = (6, 40);

/// The lab-wide defaults in `[stp]`.
pub fn defaults(cfg: &Config) -> Problems {
    let mut out = Problems::default();
    let s = &cfg.stp;
    timers(&mut out, "stp", s.hello_time, s.max_age, s.forward_delay);
    if s.port_cost == 0 {
        out.err("stp.port_cost", "a port cost must be at least 1");
    }
    if s.port_priority > 63 {
        out.err(
            "stp.port_priority",
            format!("{} is above 63", s.port_priority),
        );
    }
    out
}

/// Who runs each bridge's tree: a bridge's own `stp_mode` only where it runs STP at all, and
/// under `rstp` port priorities the RSTP port identifier can carry: 802.1D-2004 keeps 4 bits
/// of priority (steps of 16 in 0..=240), so the kernel's 0..=63 must be a multiple of 4
/// (`stpd` sends priority × 4), else the tree `rstp` builds would differ from theory's.
pub fn modes(cfg: &Config) -> Problems {
    let mut out = Problems::default();
    let mut any_rstp = false;
    for (field, _, b) in super::bridges::declared(cfg) {
        if b.stp_mode.is_some() && !b.stp {
            out.err(
                format!("{field}.stp_mode"),
                "this bridge has stp = false, so no spanning tree to run: drop stp_mode or set stp = true",
            );
        }
        let rstp = b.stp && cfg.stp_mode(b) == StpMode::Rstp;
        let fwd = cfg.timers(b).2;
        if rstp && fwd < 4 {
            let at = if b.forward_delay.is_some() {
                format!("{field}.forward_delay")
            } else {
                "stp.forward_delay".to_string()
            };
            out.err(
                at,
                format!(
                    "{fwd} s is below RSTP's 4 s minimum (802.1D-2004 17.14), and {} runs RSTP",
                    b.name
                ),
            );
        }
        any_rstp |= rstp;
    }
    let rstp_bridge = |name: &str| {
        cfg.bridge(name)
            .is_some_and(|(_, b)| b.stp && cfg.stp_mode(b) == StpMode::Rstp)
    };
    let mut step = |field: String, prio: Option<u8>| {
        if let Some(p) = prio.filter(|p| p % 4 != 0 && *p <= 63) {
            out.err(
                field,
                format!("port priority {p} is not a multiple of 4: RSTP port priorities go in steps of 16 (the kernel's value × 4)"),
            );
        }
    };
    if any_rstp {
        step("stp.port_priority".into(), Some(cfg.stp.port_priority));
    }
    for (i, l) in cfg.links.iter().enumerate() {
        if rstp_bridge(&l.a) {
            step(format!("link[{i}].a_priority"), l.a_priority);
        }
        if rstp_bridge(&l.b) {
            step(format!("link[{i}].b_priority"), l.b_priority);
        }
    }
    for (i, n) in cfg.nodes.iter().enumerate() {
        for (j, f) in n.ifaces.iter().enumerate() {
            if rstp_bridge(&f.bridge) {
                step(format!("node[{i}].iface[{j}].priority"), f.priority);
            }
        }
    }
    out
}

/// Timers of `field` (`stp` or a bridge): each in the kernel's range, and when all are,
/// the two 802.1D relations the kernel does not enforce itself.
pub fn timers(out: &mut Problems, field: &str, hello: u32, max_age: u32, fwd: u32) {
    let mut ok = true;
    for (name, v, (lo, hi)) in [
        ("hello_time", hello, HELLO),
        ("max_age", max_age, MAX_AGE),
        ("forward_delay", fwd, FWD),
    ] {
        if v < lo || v > hi {
            out.err(
                format!("{field}.{name}"),
                format!("{v} s is outside the kernel's range {lo}..={hi} s"),
            );
            ok = false;
        }
    }
    if ok && 2 * (fwd - 1) < max_age {
        out.err(
            format!("{field}.max_age"),
            format!(
                "802.1D requires 2*(forward_delay-1) >= max_age, but 2*({fwd}-1) = {} < {max_age}",
                2 * (fwd - 1)
            ),
        );
    }
    if ok && max_age < 2 * (hello + 1) {
        out.err(
            format!("{field}.max_age"),
            format!(
                "802.1D requires max_age >= 2*(hello_time+1), but {max_age} < 2*({hello}+1) = {}",
                2 * (hello + 1)
            ),
        );
    }
}

/// A port's own cost and priority; `prefix` ends where the field name starts
/// (`link[0].a_` gives `link[0].a_cost`).
pub fn port(out: &mut Problems, prefix: &str, cost: Option<u32>, prio: Option<u8>) {
    if cost == Some(0) {
        out.err(format!("{prefix}cost"), "a port cost must be at least 1");
    }
    if let Some(p) = prio {
        if p > 63 {
            out.err(
                format!("{prefix}priority"),
                format!("port priority {p} is above 63"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::config::Config;

    #[test]
    fn stp_timer_out_of_kernel_range() {
        let msg = refused("hello_time = 1", "hello_time = 11");
        assert_names(&msg, "stp.hello_time", &["1..=10"]);
        let msg = refused("forward_delay = 4", "forward_delay = 31");
        assert_names(&msg, "stp.forward_delay", &["2..=30"]);
        let msg = refused("max_age = 6", "max_age = 41");
        assert_names(&msg, "stp.max_age", &["6..=40"]);
    }

    #[test]
    fn stp_timers_break_802_1d_relations() {
        // 2*(4-1) = 6 < 8
        let msg = refused("max_age = 6", "max_age = 8");
        assert_names(&msg, "stp.max_age", &["2*(forward_delay-1) >= max_age"]);
        // max_age 6 < 2*(3+1) = 8 (forward_delay 10 keeps the other relation true)
        let text = edited(&[
            ("hello_time = 1", "hello_time = 3"),
            ("forward_delay = 4", "forward_delay = 10"),
        ]);
        let msg = format!("{:#}", Config::from_toml(&text, "test.toml").unwrap_err());
        assert_names(&msg, "stp.max_age", &["max_age >= 2*(hello_time+1)"]);
    }

    #[test]
    fn stp_mode_parses_and_bridges_override_it() {
        let cfg = Config::from_toml(
            &edited(&[
                ("port_cost = 100", "port_cost = 100\nmode = \"rstp\""),
                ("priority = 8192", "priority = 8192\nstp_mode = \"kernel\""),
            ]),
            "test.toml",
        )
        .unwrap();
        let mode = |name: &str| cfg.stp_mode(cfg.bridge(name).unwrap().1);
        assert_eq!(mode("swout1"), StpMode::Kernel);
        assert_eq!(mode("swout2"), StpMode::Rstp);
        assert_eq!(mode("vswout1"), StpMode::Rstp);
        let msg = refused("port_cost = 100", "port_cost = 100\nmode = \"mstp\"");
        assert!(msg.contains("mstp") && msg.contains("mode"), "{msg}");
    }

    #[test]
    fn up_stp_overrides_the_lab_and_every_bridge() {
        let text = edited(&[("priority = 8192", "priority = 8192\nstp_mode = \"kernel\"")]);
        let cfg = Config::from_toml(&text, "test.toml").unwrap();
        let (cfg, saved) = cfg.with_stp_mode(&text, StpMode::Rstp).unwrap();
        let again = Config::from_toml(&saved, "saved.toml").unwrap();
        for c in [&cfg, &again] {
            assert_eq!(c.stp.mode, StpMode::Rstp);
            assert!(c.all_bridges().iter().all(|(_, b)| b.stp_mode.is_none()));
            assert_eq!(c.stp.hello_time, 1, "the rest of the config is kept");
        }
    }

    #[test]
    fn stp_mode_on_a_bridge_without_stp_is_refused() {
        let msg = refused("stp = false", "stp = false\nstp_mode = \"rstp\"");
        assert_names(&msg, "host[0].bridge[1].stp_mode", &["stp = false"]);
    }

    #[test]
    fn rstp_needs_a_forward_delay_of_four_seconds() {
        let text = edited(&[
            ("port_cost = 100", "port_cost = 100\nmode = \"rstp\""),
            (
                "priority = 8192",
                "priority = 8192\nforward_delay = 3\nmax_age = 4",
            ),
        ]);
        let msg = format!("{:#}", Config::from_toml(&text, "test.toml").unwrap_err());
        assert_names(&msg, "switch[0].forward_delay", &["3 s", "RSTP", "swout1"]);
    }

    #[test]
    fn rstp_port_priorities_go_in_steps_of_four() {
        let text = edited(&[
            (
                "port_cost = 100",
                "port_cost = 100\nmode = \"rstp\"\nport_priority = 33",
            ),
            ("b = \"swout2\"", "b = \"swout2\"\na_priority = 20"),
        ]);
        let msg = format!("{:#}", Config::from_toml(&text, "test.toml").unwrap_err());
        assert_names(&msg, "stp.port_priority", &["33", "multiple of 4"]);
        assert!(!msg.contains("link[0].a_priority"), "{msg}");
        // Kernel mode keeps the kernel's whole 0..=63 range.
        let ok = edited(&[("port_cost = 100", "port_cost = 100\nport_priority = 33")]);
        Config::from_toml(&ok, "test.toml").unwrap();
    }

    #[test]
    fn relations_are_checked_only_when_every_timer_is_in_range() {
        let mut out = Problems::default();
        timers(&mut out, "x", 0, 40, 2);
        assert_eq!(
            out.into_vec(),
            [problem(
                "x.hello_time",
                "0 s is outside the kernel's range 1..=10 s"
            )]
        );
    }

    #[test]
    fn port_defaults_and_port_settings() {
        let cfg = parsed(&[("port_cost = 100", "port_cost = 0\nport_priority = 64")]);
        assert_eq!(
            defaults(&cfg).into_vec(),
            [
                problem("stp.port_cost", "a port cost must be at least 1"),
                problem("stp.port_priority", "64 is above 63"),
            ]
        );
        let mut out = Problems::default();
        port(&mut out, "link[0].a_", Some(0), Some(64));
        port(&mut out, "link[0].b_", Some(1), Some(63));
        assert_eq!(
            out.into_vec(),
            [
                problem("link[0].a_cost", "a port cost must be at least 1"),
                problem("link[0].a_priority", "port priority 64 is above 63"),
            ]
        );
    }
}
