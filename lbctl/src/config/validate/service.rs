//! The balanced service: a free VIP on a LAN, balancers and backends that resolve to nodes
//! of the right role, routes to pools that exist, a health check the checker can run,
//! ports and threads within reason.

use super::addresses::Addresses;
use super::Problems;
use crate::config::model::{Check, Config, Role, Service, Timeouts};
use std::collections::HashSet;

pub fn check(cfg: &Config, addrs: &Addresses) -> Problems {
    let mut out = Problems::default();
    let Some(s) = &cfg.service else {
        return out;
    };
    placement(&mut out, cfg, s, addrs);
    backends(&mut out, cfg, s);
    routes(&mut out, s);
    if let Some(ck) = &s.cookie {
        if ck.is_empty()
            || !ck
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            out.err(
                "service.cookie",
                format!("{ck:?} is not a valid cookie name"),
            );
        }
    }
    health_check(&mut out, &s.check);
    timeouts(&mut out, &s.timeouts);
    backend_timeouts(&mut out, &s.timeouts);
    if s.port == s.admin_port {
        out.err("service.admin_port", "must differ from service.port");
    }
    if let Some(n) = s.nbthread {
        if !(1..=64).contains(&n) {
            out.err("service.nbthread", format!("{n} is not between 1 and 64"));
        }
    }
    out
}

/// The VIP is on a LAN (a machine's subnet, for real hosts: see `machines`) and nobody's
/// address; the balancers are balancer nodes or machines.
fn placement(out: &mut Problems, cfg: &Config, s: &Service, addrs: &Addresses) {
    // A real-host config has no LANs: `machines` checks the VIP against the interfaces.
    if !cfg.is_real_hosts() && !cfg.lans.iter().any(|l| l.subnet.contains(&s.vip)) {
        out.err("service.vip", format!("{} is in no LAN's subnet", s.vip));
    }
    if let Some(p) = addrs.owner(&s.vip) {
        out.err(
            "service.vip",
            format!("{} is already the address of {p}", s.vip),
        );
    }
    for (i, b) in s.balancers.iter().enumerate() {
        match cfg.node(b) {
            None if cfg.machine(b).is_some() => {}
            Some(n) if n.role == Role::Balancer => {}
            Some(_) => out.err(
                format!("service.balancers[{i}]"),
                format!("{b:?} is not a balancer"),
            ),
            None => out.err(
                format!("service.balancers[{i}]"),
                format!("unknown node or machine {b:?}"),
            ),
        }
    }
}

/// At least one backend; each a server node or an address, with a weight HAProxy takes
/// and a name of its own.
fn backends(out: &mut Problems, cfg: &Config, s: &Service) {
    if s.backends.is_empty() {
        out.err("service.backend", "a service needs at least one backend");
    }
    let mut names = HashSet::new();
    for (i, b) in s.backends.iter().enumerate() {
        let field = format!("service.backend[{i}]");
        match (&b.node, &b.address) {
            (Some(n), None) => match cfg.node(n) {
                Some(x) if x.role == Role::Server => {}
                Some(_) => out.err(format!("{field}.node"), format!("{n:?} is not a server")),
                None => out.err(format!("{field}.node"), format!("unknown node {n:?}")),
            },
            (None, Some(_)) => {}
            _ => out.err(field.clone(), "give exactly one of node or address"),
        }
        if b.weight > 256 {
            out.err(
                format!("{field}.weight"),
                format!("{} is above 256 (HAProxy's maximum)", b.weight),
            );
        }
        if !names.insert(b.display_name()) {
            out.err(
                format!("{field}.name"),
                format!("duplicate backend name {:?}", b.display_name()),
            );
        }
    }
}

/// Each route matches something and leads to a pool some backend is in.
fn routes(out: &mut Problems, s: &Service) {
    let pools: HashSet<&str> = s.backends.iter().map(|b| b.pool.as_str()).collect();
    for (i, r) in s.routes.iter().enumerate() {
        if !pools.contains(r.pool.as_str()) {
            out.err(
                format!("service.route[{i}].pool"),
                format!("no backend is in pool {:?}", r.pool),
            );
        }
        if r.path_prefix.is_none() && r.extensions.is_empty() {
            out.err(
                format!("service.route[{i}]"),
                "a route needs path_prefix or extensions",
            );
        }
    }
}

/// Every fixed timeout is positive (connect_ms and first_byte_ms are optional: see
/// [`backend_timeouts`]): 0 would close each connection the moment it opens (HAProxy
/// reads a missing timeout as infinite and warns; we always have one).
fn timeouts(out: &mut Problems, t: &Timeouts) {
    let all = [
        ("http_request_ms", t.http_request_ms),
        ("server_ms", t.server_ms),
        ("keep_alive_ms", t.keep_alive_ms),
        ("client_ms", t.client_ms),
        ("tunnel_ms", t.tunnel_ms),
    ];
    for (name, ms) in all {
        if ms == 0 {
            out.err(format!("service.timeouts.{name}"), "must be positive");
        }
    }
}

/// Explicit backend-side timeouts are positive and fit in the request's deadline.
fn backend_timeouts(out: &mut Problems, t: &Timeouts) {
    for (field, v) in [
        ("connect_ms", t.connect_ms),
        ("first_byte_ms", t.first_byte_ms),
    ] {
        match v {
            Some(0) => out.err(
                format!("service.timeouts.{field}"),
                "must be positive (leave it out for the automatic value)",
            ),
            Some(ms) if ms > t.server_ms => out.err(
                format!("service.timeouts.{field}"),
                format!(
                    "{ms} is above server_ms ({}), the deadline of the whole request",
                    t.server_ms
                ),
            ),
            _ => {}
        }
    }
}

fn health_check(out: &mut Problems, ck: &Check) {
    if ck.rise == 0 || ck.fall == 0 {
        out.err("service.check", "rise and fall must be at least 1");
    }
    if ck.inter_ms == 0 || ck.timeout_ms == 0 {
        out.err("service.check", "inter_ms and timeout_ms must be positive");
    }
    for (field, v) in [
        ("fastinter_ms", ck.fastinter_ms),
        ("downinter_ms", ck.downinter_ms),
    ] {
        if v < 10 {
            out.err(
                format!("service.check.{field}"),
                format!("{v} is below 10 ms (checks that often would load the backends)"),
            );
        }
    }
    if crate::config::parse_status_range(&ck.expect_status).is_none() {
        out.err(
            "service.check.expect_status",
            format!("{:?} is not \"200\" or \"200-399\"", ck.expect_status),
        );
    }
    if !ck.path.starts_with('/') {
        out.err("service.check.path", "must start with '/'");
    }
    if ck.method.is_empty() || !ck.method.chars().all(|ch| ch.is_ascii_uppercase()) {
        out.err(
            "service.check.method",
            format!("{:?} is not an HTTP method", ck.method),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn backend_timeouts_are_positive_and_within_server_ms() {
        assert_eq!(
            run(&[(
                "balance = \"roundrobin\"",
                "balance = \"roundrobin\"\n[service.timeouts]\nconnect_ms = 0\nfirst_byte_ms = 20000\n"
            )]),
            [
                problem(
                    "service.timeouts.connect_ms",
                    "must be positive (leave it out for the automatic value)"
                ),
                problem(
                    "service.timeouts.first_byte_ms",
                    "20000 is above server_ms (10000), the deadline of the whole request"
                ),
            ]
        );
    }

    fn run(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        check(&parsed(edits), &Addresses::default()).into_vec()
    }

    #[test]
    fn service_references_resolve() {
        let msg = refused("node = \"serv2\"\n[[service", "node = \"bal1\"\n[[service");
        assert_names(&msg, "service.backend[1].node", &["not a server"]);
        let msg = refused(
            "path = \"/health\"",
            "path = \"/health\"\nexpect_status = \"2xx\"",
        );
        assert_names(&msg, "service.check.expect_status", &["2xx"]);
    }

    #[test]
    fn vip_and_balancers() {
        assert_eq!(
            run(&[
                ("vip = \"172.16.1.254\"", "vip = \"192.168.9.9\""),
                (
                    "balancers = [\"bal1\", \"bal2\"]",
                    "balancers = [\"serv1\", \"nobody\"]"
                ),
            ]),
            [
                problem("service.vip", "192.168.9.9 is in no LAN's subnet"),
                problem("service.balancers[0]", "\"serv1\" is not a balancer"),
                problem("service.balancers[1]", "unknown node or machine \"nobody\""),
            ]
        );
        let msg = refused("vip = \"172.16.1.254\"", "vip = \"172.16.1.100\"");
        assert_names(
            &msg,
            "service.vip",
            &["172.16.1.100 is already the address of node[0].iface[0].address"],
        );
    }

    #[test]
    fn backends_and_routes() {
        let route = "node = \"serv3\"\n[[service.route]]\npool = \"nopool\"\n";
        assert_eq!(
            run(&[
                (
                    "node = \"serv1\"\n[[service",
                    "node = \"serv1\"\naddress = \"10.0.0.1:80\"\nweight = 300\n[[service"
                ),
                ("node = \"serv2\"\n[[service", "name = \"serv3\"\n[[service"),
                ("node = \"serv3\"\n", route),
            ]),
            [
                problem("service.backend[0]", "give exactly one of node or address"),
                problem(
                    "service.backend[0].weight",
                    "300 is above 256 (HAProxy's maximum)"
                ),
                problem("service.backend[1]", "give exactly one of node or address"),
                problem(
                    "service.backend[2].name",
                    "duplicate backend name \"serv3\""
                ),
                problem("service.route[0].pool", "no backend is in pool \"nopool\""),
                problem(
                    "service.route[0]",
                    "a route needs path_prefix or extensions"
                ),
            ]
        );
    }

    #[test]
    fn health_check_cookie_ports_and_threads() {
        assert_eq!(
            run(&[
                (
                    "rise = 2",
                    "rise = 0\ntimeout_ms = 0\nfastinter_ms = 5\nmethod = \"get\""
                ),
                ("path = \"/health\"", "path = \"health\""),
                (
                    "balance = \"roundrobin\"",
                    "balance = \"roundrobin\"\ncookie = \"a b\"\nnbthread = 65"
                ),
                ("port = 8000", "port = 8404"),
            ]),
            [
                problem("service.cookie", "\"a b\" is not a valid cookie name"),
                problem("service.check", "rise and fall must be at least 1"),
                problem("service.check", "inter_ms and timeout_ms must be positive"),
                problem(
                    "service.check.fastinter_ms",
                    "5 is below 10 ms (checks that often would load the backends)"
                ),
                problem("service.check.path", "must start with '/'"),
                problem("service.check.method", "\"get\" is not an HTTP method"),
                problem("service.admin_port", "must differ from service.port"),
                problem("service.nbthread", "65 is not between 1 and 64"),
            ]
        );
    }

    #[test]
    fn zero_timeouts_are_refused_by_name() {
        assert_eq!(
            run(&[(
                "[service.check]",
                "[service.timeouts]\nclient_ms = 0\ntunnel_ms = 0\n[service.check]"
            )]),
            [
                problem("service.timeouts.client_ms", "must be positive"),
                problem("service.timeouts.tunnel_ms", "must be positive"),
            ]
        );
    }
}
