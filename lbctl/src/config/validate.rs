//! Semantic checks on a parsed config. Each problem names the field (a TOML path such as
//! `link[2].b`) and the reason, so the user can fix the file without guessing.

use super::model::*;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            reason: reason.into(),
        });
    }
}

/// Kernel STP timer ranges (seconds), as net/bridge enforces them.
const HELLO: (u32, u32) = (1, 10);
const FWD: (u32, u32) = (2, 30);
const MAX_AGE: (u32, u32) = (6, 40);
/// Outer Ethernet + IPv4 + UDP + VXLAN headers a VXLAN frame adds on the underlay.
pub const VXLAN_OVERHEAD: u32 = 50;
const DEFAULT_MTU: u32 = 1500;

pub fn check_lab_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 12 {
        return Err(format!("lab name {name:?} must be 1 to 12 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "lab name {name:?} may only hold lowercase letters and digits (it prefixes namespace names)"
        ));
    }
    Ok(())
}

/// The kernel's rule for interface names (dev_valid_name): 1..=15 bytes, not `.`/`..`,
/// no `/`, `:` or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name {name:?} is {} characters; the kernel allows at most 15",
            name.len()
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "interface name {name:?} is not valid (no '/', ':', spaces, '.' or '..')"
        ));
    }
    Ok(())
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

fn check_timers(c: &mut Checker, field: &str, hello: u32, max_age: u32, fwd: u32) {
    let mut ok = true;
    for (name, v, (lo, hi)) in [
        ("hello_time", hello, HELLO),
        ("max_age", max_age, MAX_AGE),
        ("forward_delay", fwd, FWD),
    ] {
        if v < lo || v > hi {
            c.err(
                format!("{field}.{name}"),
                format!("{v} s is outside the kernel's range {lo}..={hi} s"),
            );
            ok = false;
        }
    }
    if ok && 2 * (fwd - 1) < max_age {
        c.err(
            format!("{field}.max_age"),
            format!(
                "802.1D requires 2*(forward_delay-1) >= max_age, but 2*({fwd}-1) = {} < {max_age}",
                2 * (fwd - 1)
            ),
        );
    }
    if ok && max_age < 2 * (hello + 1) {
        c.err(
            format!("{field}.max_age"),
            format!(
                "802.1D requires max_age >= 2*(hello_time+1), but {max_age} < 2*({hello}+1) = {}",
                2 * (hello + 1)
            ),
        );
    }
}

/// Runs every check and returns all problems found (empty = valid).
pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    if let Err(r) = check_lab_name(&cfg.lab.name) {
        c.err("lab.name", r);
    }
    let s = &cfg.stp;
    check_timers(&mut c, "stp", s.hello_time, s.max_age, s.forward_delay);
    if s.port_cost == 0 {
        c.err("stp.port_cost", "a port cost must be at least 1");
    }
    if s.port_priority > 63 {
        c.err(
            "stp.port_priority",
            format!("{} is above 63", s.port_priority),
        );
    }

    // LANs.
    let mut lan_names = HashSet::new();
    for (i, l) in cfg.lans.iter().enumerate() {
        if !lan_names.insert(l.name.as_str()) {
            c.err(
                format!("lan[{i}].name"),
                format!("duplicate LAN name {:?}", l.name),
            );
        }
        if let Some(m) = l.mtu {
            if !(68..=65535).contains(&m) {
                c.err(
                    format!("lan[{i}].mtu"),
                    format!("{m} is outside 68..=65535"),
                );
            }
        }
        for (j, o) in cfg.lans.iter().enumerate().skip(i + 1) {
            if l.subnet.contains(&o.subnet.network()) || o.subnet.contains(&l.subnet.network()) {
                c.err(
                    format!("lan[{j}].subnet"),
                    format!("{} overlaps lan {:?} ({})", o.subnet, l.name, l.subnet),
                );
            }
        }
    }

    // Namespaces: switches, hosts and nodes share one name space.
    let mut ns_names: HashMap<String, String> = HashMap::new();
    let mut add_ns = |c: &mut Checker, name: &str, field: String| {
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.err(
                field.clone(),
                format!("node name {name:?} must be non-empty letters, digits, '-' or '_'"),
            );
        }
        if let Some(prev) = ns_names.get(name) {
            c.err(
                field,
                format!("duplicate name {name:?} (already used by {prev})"),
            );
        } else {
            ns_names.insert(name.to_string(), field);
        }
    };
    for (i, sw) in cfg.switches.iter().enumerate() {
        add_ns(&mut c, &sw.name, format!("switch[{i}].name"));
    }
    for (i, h) in cfg.hosts.iter().enumerate() {
        add_ns(&mut c, &h.name, format!("host[{i}].name"));
    }
    for (i, n) in cfg.nodes.iter().enumerate() {
        add_ns(&mut c, &n.name, format!("node[{i}].name"));
    }

    // Bridges.
    let mut bridges: HashMap<&str, (&str, &Bridge, String)> = HashMap::new();
    let mut all: Vec<(String, &str, &Bridge)> = Vec::new();
    for (i, sw) in cfg.switches.iter().enumerate() {
        all.push((format!("switch[{i}]"), sw.name.as_str(), sw));
    }
    for (i, h) in cfg.hosts.iter().enumerate() {
        for (j, b) in h.bridges.iter().enumerate() {
            all.push((format!("host[{i}].bridge[{j}]"), h.name.as_str(), b));
        }
    }
    // Interface names used in each namespace.
    let mut ifnames: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut use_ifname = |c: &mut Checker, ns: &str, name: &str, field: String| {
        if let Err(r) = check_ifname(name) {
            c.err(field.clone(), r);
        }
        let names = ifnames.entry(ns.to_string()).or_default();
        if let Some(prev) = names.get(name) {
            c.err(
                field,
                format!("interface name {name:?} is already used in namespace {ns:?} by {prev}"),
            );
        } else {
            names.insert(name.to_string(), field);
        }
    };
    for (field, ns, b) in &all {
        if let Some((_, _, prev)) = bridges.get(b.name.as_str()) {
            c.err(
                format!("{field}.name"),
                format!("duplicate bridge name {:?} (already {prev})", b.name),
            );
            continue;
        }
        bridges.insert(&b.name, (ns, b, field.clone()));
        use_ifname(&mut c, ns, &b.name, format!("{field}.name"));
        if cfg.lan(&b.lan).is_none() {
            c.err(format!("{field}.lan"), format!("unknown LAN {:?}", b.lan));
        }
        if b.stp {
            let (h, m, f) = cfg.timers(b);
            if b.hello_time.is_some() || b.max_age.is_some() || b.forward_delay.is_some() {
                check_timers(&mut c, field, h, m, f);
            }
        }
        if let Some(mac) = &b.mac {
            match parse_mac(mac) {
                None => c.err(
                    format!("{field}.mac"),
                    format!("{mac:?} is not aa:bb:cc:dd:ee:ff"),
                ),
                Some(m) if m[0] & 1 == 1 => c.err(
                    format!("{field}.mac"),
                    format!("{mac} is a multicast address; a bridge needs a unicast MAC"),
                ),
                Some(_) => {}
            }
        }
    }

    // Addresses: inside the LAN of the bridge they sit on, unique in the lab.
    let mut addrs: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut check_addr = |c: &mut Checker, field: String, a: &ipnet::Ipv4Net, bridge: &str| {
        if let Some((_, b, _)) = bridges.get(bridge) {
            if let Some(lan) = cfg.lan(&b.lan) {
                if !lan.subnet.contains(&a.addr()) || a.prefix_len() != lan.subnet.prefix_len() {
                    c.err(
                        field.clone(),
                        format!(
                            "{a} is outside LAN {:?} ({}) of bridge {bridge:?}",
                            lan.name, lan.subnet
                        ),
                    );
                } else if a.addr() == lan.subnet.network() || a.addr() == lan.subnet.broadcast() {
                    c.err(
                        field.clone(),
                        format!("{a} is the network or broadcast address of {}", lan.subnet),
                    );
                }
            }
        }
        if let Some(prev) = addrs.get(&a.addr()) {
            c.err(
                field,
                format!("duplicate address {} (already {prev})", a.addr()),
            );
        } else {
            addrs.insert(a.addr(), field);
        }
    };
    for (field, _, b) in &all {
        if let Some(a) = &b.address {
            check_addr(&mut c, format!("{field}.address"), a, &b.name);
        }
    }

    // Links between bridges.
    let check_port = |c: &mut Checker, field: String, cost: Option<u32>, prio: Option<u8>| {
        if cost == Some(0) {
            c.err(format!("{field}cost"), "a port cost must be at least 1");
        }
        if let Some(p) = prio {
            if p > 63 {
                c.err(
                    format!("{field}priority"),
                    format!("port priority {p} is above 63"),
                );
            }
        }
    };
    for (i, l) in cfg.links.iter().enumerate() {
        let mut ends_ok = true;
        for (end, name) in [("a", &l.a), ("b", &l.b)] {
            if !bridges.contains_key(name.as_str()) {
                ends_ok = false;
                let known: Vec<&str> = {
                    let mut k: Vec<&str> = bridges.keys().copied().collect();
                    k.sort();
                    k
                };
                let what = if cfg.node(name).is_some() || cfg.hosts.iter().any(|h| &h.name == name)
                {
                    format!("{name:?} is not a bridge or switch (links join bridges; plug nodes in with [[node.iface]])")
                } else {
                    format!("unknown node {name:?}")
                };
                c.err(
                    format!("link[{i}].{end}"),
                    format!("{what}; bridges are: {}", known.join(", ")),
                );
            }
        }
        if l.a == l.b {
            c.err(
                format!("link[{i}].b"),
                "a link cannot join a bridge to itself",
            );
            continue;
        }
        check_port(&mut c, format!("link[{i}]."), l.cost, None);
        check_port(&mut c, format!("link[{i}].a_"), l.a_cost, l.a_priority);
        check_port(&mut c, format!("link[{i}].b_"), l.b_cost, l.b_priority);
        if !ends_ok {
            continue;
        }
        let (ans, ab, _) = bridges[l.a.as_str()];
        let (bns, bb, _) = bridges[l.b.as_str()];
        if ab.lan != bb.lan {
            c.err(
                format!("link[{i}]"),
                format!(
                    "joins {:?} (LAN {:?}) and {:?} (LAN {:?}): a link must stay inside one LAN",
                    l.a, ab.lan, l.b, bb.lan
                ),
            );
        }
        let a_field = if l.a_iface.is_some() { "a_iface" } else { "a" };
        let b_field = if l.b_iface.is_some() { "b_iface" } else { "b" };
        use_ifname(&mut c, ans, &l.a_name(), format!("link[{i}].{a_field}"));
        use_ifname(&mut c, bns, &l.b_name(), format!("link[{i}].{b_field}"));
    }

    // Leaf nodes.
    for (i, n) in cfg.nodes.iter().enumerate() {
        if let Some(h) = &n.host {
            if !cfg.hosts.iter().any(|x| &x.name == h) {
                c.err(format!("node[{i}].host"), format!("unknown host {h:?}"));
            }
        }
        if n.ifaces.is_empty() {
            c.err(
                format!("node[{i}].iface"),
                "a node needs at least one interface",
            );
        }
        if n.http_port.is_some() && n.role != Role::Server {
            c.err(
                format!("node[{i}].http_port"),
                "only servers run the web server",
            );
        }
        if n.http_port == Some(0) {
            c.err(format!("node[{i}].http_port"), "port 0 is not a port");
        }
        for (j, f) in n.ifaces.iter().enumerate() {
            let field = format!("node[{i}].iface[{j}]");
            use_ifname(&mut c, &n.name, &f.name, format!("{field}.name"));
            if f.name == "lo" {
                c.err(format!("{field}.name"), "\"lo\" is the loopback device");
            }
            match bridges.get(f.bridge.as_str()) {
                None => c.err(
                    format!("{field}.bridge"),
                    format!("unknown bridge {:?}", f.bridge),
                ),
                Some((bns, _, _)) => {
                    let pfield = if f.port_name.is_some() {
                        format!("{field}.port_name")
                    } else {
                        format!("{field}.name")
                    };
                    use_ifname(&mut c, bns, &f.port_name_for(&n.name), pfield);
                }
            }
            check_port(&mut c, format!("{field}."), f.cost, f.priority);
            if let Some(a) = &f.address {
                check_addr(&mut c, format!("{field}.address"), a, &f.bridge);
            }
        }
    }

    // VXLAN.
    if let Some(v) = &cfg.vxlan {
        if v.vni == 0 || v.vni >= 1 << 24 {
            c.err(
                "vxlan.vni",
                format!("{} is outside 1..=16777215 (24 bits)", v.vni),
            );
        }
        if v.port == 0 {
            c.err("vxlan.port", "port 0 is not a port");
        }
        if v.endpoints.len() < 2 {
            c.err("vxlan.endpoint", "a tunnel needs at least two endpoints");
        }
        if v.ageing_s == 0 {
            c.err("vxlan.ageing_s", "must be at least 1 second");
        }
        let kernel_eps = v
            .endpoints
            .iter()
            .filter(|e| v.mode_of(e) == VxlanMode::Kernel)
            .count();
        if kernel_eps > 0 && v.endpoints.len() > 2 {
            c.err(
                "vxlan.endpoint",
                format!(
                    "the kernel data path (mode \"kernel\") takes exactly one remote endpoint; with {} endpoints use mode \"ebpf\" everywhere",
                    v.endpoints.len()
                ),
            );
        }
        let mut seen_hosts = HashSet::new();
        for (i, e) in v.endpoints.iter().enumerate() {
            let field = format!("vxlan.endpoint[{i}]");
            let Some(host) = cfg.hosts.iter().find(|h| h.name == e.host) else {
                c.err(
                    format!("{field}.host"),
                    format!("unknown host {:?}", e.host),
                );
                continue;
            };
            if !seen_hosts.insert(e.host.as_str()) {
                c.err(
                    format!("{field}.host"),
                    format!("host {:?} has two endpoints", e.host),
                );
            }
            use_ifname(&mut c, &e.host, &v.device, "vxlan.device".into());
            let Some(inner) = host.bridges.iter().find(|b| b.name == e.bridge) else {
                c.err(
                    format!("{field}.bridge"),
                    format!("host {:?} has no bridge {:?}", e.host, e.bridge),
                );
                continue;
            };
            let Some(under) = host
                .bridges
                .iter()
                .find(|b| b.address.map(|a| a.addr()) == Some(e.local))
            else {
                c.err(
                    format!("{field}.local"),
                    format!(
                        "{} is not an address of any bridge of host {:?}",
                        e.local, e.host
                    ),
                );
                continue;
            };
            if under.name == inner.name {
                c.err(
                    format!("{field}.local"),
                    "the underlay address cannot sit on the bridge the tunnel extends",
                );
            }
            if v.mode_of(e) == VxlanMode::Ebpf {
                // The BPF VTEP: a veth pair as the tunnel port, XDP on the underlay links.
                let peer = format!("{}p", v.device);
                if let Err(why) = check_ifname(&peer) {
                    c.err(
                        "vxlan.device",
                        format!("mode \"ebpf\" names the tunnel port's peer {peer:?}: {why}"),
                    );
                }
                let field_mode = if e.mode.is_some() {
                    format!("{field}.mode")
                } else {
                    "vxlan.mode".to_string()
                };
                if v.endpoints.len() > 1 + lb_common::vxlan::VX_REMOTE_MAX as usize {
                    c.err(
                        field_mode.clone(),
                        format!(
                            "the BPF VTEP replicates to at most {} remote endpoints; this tunnel has {}",
                            lb_common::vxlan::VX_REMOTE_MAX,
                            v.endpoints.len() - 1
                        ),
                    );
                }
                if !cfg
                    .links
                    .iter()
                    .any(|l| l.a == under.name || l.b == under.name)
                {
                    c.err(
                        field_mode,
                        format!(
                            "the BPF VTEP decapsulates in XDP on the links of the underlay bridge {:?}, and it has none",
                            under.name
                        ),
                    );
                }
            }
            let under_mtu = cfg
                .lan(&under.lan)
                .and_then(|l| l.mtu)
                .unwrap_or(DEFAULT_MTU);
            if let Some(lan) = cfg.lan(&inner.lan) {
                let inner_mtu = lan.mtu.unwrap_or(DEFAULT_MTU);
                if inner_mtu + VXLAN_OVERHEAD > under_mtu {
                    let li = cfg
                        .lans
                        .iter()
                        .position(|l| l.name == lan.name)
                        .unwrap_or(0);
                    c.err(
                        format!("lan[{li}].mtu"),
                        format!(
                            "LAN {:?} carries VXLAN over a {under_mtu}-byte underlay, so its MTU must be at most {} (is {inner_mtu}); larger frames would be dropped silently",
                            lan.name,
                            under_mtu - VXLAN_OVERHEAD
                        ),
                    );
                }
            }
        }
        let inner_lans: HashSet<&str> = v
            .endpoints
            .iter()
            .filter_map(|e| {
                bridges
                    .get(e.bridge.as_str())
                    .map(|(_, b, _)| b.lan.as_str())
            })
            .collect();
        if inner_lans.len() > 1 {
            c.err(
                "vxlan.endpoint",
                "all endpoints must extend bridges of the same LAN",
            );
        }
    }

    // Service and VRRP placeholders: references must resolve.
    if let Some(s) = &cfg.service {
        if !cfg.lans.iter().any(|l| l.subnet.contains(&s.vip)) {
            c.err("service.vip", format!("{} is in no LAN's subnet", s.vip));
        }
        if let Some(p) = addrs.get(&s.vip) {
            c.err(
                "service.vip",
                format!("{} is already the address of {p}", s.vip),
            );
        }
        for (i, b) in s.balancers.iter().enumerate() {
            match cfg.node(b) {
                Some(n) if n.role == Role::Balancer => {}
                Some(_) => c.err(
                    format!("service.balancers[{i}]"),
                    format!("{b:?} is not a balancer"),
                ),
                None => c.err(
                    format!("service.balancers[{i}]"),
                    format!("unknown node {b:?}"),
                ),
            }
        }
        if s.backends.is_empty() {
            c.err("service.backend", "a service needs at least one backend");
        }
        let mut bnames = HashSet::new();
        for (i, b) in s.backends.iter().enumerate() {
            let field = format!("service.backend[{i}]");
            match (&b.node, &b.address) {
                (Some(n), None) => match cfg.node(n) {
                    Some(x) if x.role == Role::Server => {}
                    Some(_) => c.err(format!("{field}.node"), format!("{n:?} is not a server")),
                    None => c.err(format!("{field}.node"), format!("unknown node {n:?}")),
                },
                (None, Some(_)) => {}
                _ => c.err(field.clone(), "give exactly one of node or address"),
            }
            if b.weight > 256 {
                c.err(
                    format!("{field}.weight"),
                    format!("{} is above 256 (HAProxy's maximum)", b.weight),
                );
            }
            if !bnames.insert(b.display_name()) {
                c.err(
                    format!("{field}.name"),
                    format!("duplicate backend name {:?}", b.display_name()),
                );
            }
        }
        let pools: HashSet<&str> = s.backends.iter().map(|b| b.pool.as_str()).collect();
        for (i, r) in s.routes.iter().enumerate() {
            if !pools.contains(r.pool.as_str()) {
                c.err(
                    format!("service.route[{i}].pool"),
                    format!("no backend is in pool {:?}", r.pool),
                );
            }
            if r.path_prefix.is_none() && r.extensions.is_empty() {
                c.err(
                    format!("service.route[{i}]"),
                    "a route needs path_prefix or extensions",
                );
            }
        }
        if let Some(ck) = &s.cookie {
            if ck.is_empty()
                || !ck
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
            {
                c.err(
                    "service.cookie",
                    format!("{ck:?} is not a valid cookie name"),
                );
            }
        }
        let ck = &s.check;
        if ck.rise == 0 || ck.fall == 0 {
            c.err("service.check", "rise and fall must be at least 1");
        }
        if ck.inter_ms == 0 || ck.timeout_ms == 0 {
            c.err("service.check", "inter_ms and timeout_ms must be positive");
        }
        if crate::config::parse_status_range(&ck.expect_status).is_none() {
            c.err(
                "service.check.expect_status",
                format!("{:?} is not \"200\" or \"200-399\"", ck.expect_status),
            );
        }
        if !ck.path.starts_with('/') {
            c.err("service.check.path", "must start with '/'");
        }
        if ck.method.is_empty() || !ck.method.chars().all(|ch| ch.is_ascii_uppercase()) {
            c.err(
                "service.check.method",
                format!("{:?} is not an HTTP method", ck.method),
            );
        }
        if s.port == s.admin_port {
            c.err("service.admin_port", "must differ from service.port");
        }
        if let Some(n) = s.nbthread {
            if !(1..=64).contains(&n) {
                c.err("service.nbthread", format!("{n} is not between 1 and 64"));
            }
        }
    }
    if let Some(v) = &cfg.vrrp {
        if v.vrid == 0 {
            c.err("vrrp.vrid", "VRID 0 is reserved; use 1..=255");
        }
        match v.version {
            2 => {
                if v.advert_int_ms % 1000 != 0 || !(1000..=255_000).contains(&v.advert_int_ms) {
                    c.err(
                        "vrrp.advert_int_ms",
                        format!(
                            "{} ms: VRRPv2 advertises whole seconds (1000..=255000 ms); use version = 3 for less",
                            v.advert_int_ms
                        ),
                    );
                }
            }
            3 => {
                if v.advert_int_ms % 10 != 0 || !(10..=40950).contains(&v.advert_int_ms) {
                    c.err(
                        "vrrp.advert_int_ms",
                        format!(
                            "{} ms: VRRPv3 advertises centiseconds (10..=40950 ms in steps of 10)",
                            v.advert_int_ms
                        ),
                    );
                }
            }
            n => c.err("vrrp.version", format!("{n}: use 2 or 3")),
        }
        if v.v3_checksum != "pseudo-header" && v.v3_checksum != "rfc" {
            c.err(
                "vrrp.v3_checksum",
                format!("{:?}: use \"pseudo-header\" or \"rfc\"", v.v3_checksum),
            );
        }
        if let Some(p) = &v.auth_pass {
            if v.version != 2 {
                c.err("vrrp.auth_pass", "authentication exists in VRRPv2 only");
            }
            if p.is_empty() || p.len() > 8 {
                c.err("vrrp.auth_pass", "must be 1..=8 bytes (VRRPv2 carries 8)");
            }
        }
        if let Some(n) = &v.notify {
            if n.trim().is_empty() {
                c.err("vrrp.notify", "empty command");
            }
        }
        if cfg.service.is_none() {
            c.err(
                "vrrp",
                "needs a [service] section (its vip is the virtual address)",
            );
        }
        let vip = cfg.service.as_ref().map(|s| s.vip);
        for (i, a) in v.unicast_peers.iter().enumerate() {
            if Some(*a) == vip || a.is_multicast() || a.is_unspecified() || a.is_broadcast() {
                c.err(
                    format!("vrrp.unicast_peers[{i}]"),
                    format!("{a} cannot be a peer"),
                );
            }
        }
        if let Some(i) = &v.interface {
            if i.is_empty() || i.len() > 15 {
                c.err(
                    "vrrp.interface",
                    format!("{i:?} is not an interface name (1..=15 characters)"),
                );
            }
        }
        let mut seen = HashSet::new();
        for (i, p) in v.priorities.iter().enumerate() {
            match cfg.node(&p.node) {
                Some(n) if n.role == Role::Balancer => {
                    let on_vip_subnet = vip.is_some_and(|vip| {
                        n.ifaces
                            .iter()
                            .any(|f| f.address.is_some_and(|a| a.contains(&vip)))
                    });
                    if vip.is_some() && v.interface.is_none() && !on_vip_subnet {
                        c.err(
                            format!("vrrp.priority[{i}].node"),
                            format!(
                                "{:?} has no interface on the VIP's subnet (set vrrp.interface)",
                                p.node
                            ),
                        );
                    }
                }
                _ => c.err(
                    format!("vrrp.priority[{i}].node"),
                    format!("{:?} is not a balancer", p.node),
                ),
            }
            if !seen.insert(p.node.as_str()) {
                c.err(
                    format!("vrrp.priority[{i}].node"),
                    format!("{:?} has two priorities", p.node),
                );
            }
            if p.priority == 0 {
                c.err(
                    format!("vrrp.priority[{i}].priority"),
                    "priority 0 is reserved for resignation",
                );
            }
        }
    }
    c.problems
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const DEFAULT: &str = include_str!("../../../configs/default.toml");

    /// Applies a textual edit to the default config and returns the error message.
    fn refused(from: &str, to: &str) -> String {
        assert!(
            DEFAULT.contains(from),
            "edit target {from:?} not in default.toml"
        );
        let text = DEFAULT.replacen(from, to, 1);
        match Config::from_toml(&text, "test.toml") {
            Ok(_) => panic!("config with {to:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    fn assert_names(msg: &str, field: &str, words: &[&str]) {
        assert!(msg.contains("test.toml"), "no file in: {msg}");
        assert!(
            msg.contains(&format!("{field}:")),
            "field {field} not named in: {msg}"
        );
        for w in words {
            assert!(msg.contains(w), "{w:?} missing from: {msg}");
        }
    }

    #[test]
    fn default_is_valid() {
        Config::from_toml(DEFAULT, "default.toml").unwrap();
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let msg = refused("priority = 8192", "priority = 8192\nprio = 3");
        assert!(
            msg.contains("test.toml") && msg.contains("unknown field `prio`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_node_in_link() {
        let msg = refused(
            "a = \"swout1\"\nb = \"swout2\"",
            "a = \"swout1\"\nb = \"swoutX\"",
        );
        assert_names(&msg, "link[0].b", &["unknown node \"swoutX\""]);
    }

    #[test]
    fn leaf_node_in_link_is_explained() {
        let msg = refused(
            "a = \"swout1\"\nb = \"swout2\"",
            "a = \"swout1\"\nb = \"user1\"",
        );
        assert_names(&msg, "link[0].b", &["not a bridge"]);
    }

    #[test]
    fn duplicate_node_name() {
        let msg = refused("name = \"user2\"", "name = \"user1\"");
        assert_names(&msg, "node[1].name", &["duplicate name \"user1\""]);
    }

    #[test]
    fn duplicate_bridge_name() {
        let msg = refused("name = \"vswin2\"", "name = \"vswin1\"");
        assert_names(&msg, "host[1].bridge[1].name", &["duplicate bridge name"]);
    }

    #[test]
    fn duplicate_address() {
        let msg = refused(
            "address = \"172.16.1.101/24\"",
            "address = \"172.16.1.100/24\"",
        );
        assert_names(
            &msg,
            "node[1].iface[0].address",
            &["duplicate address 172.16.1.100"],
        );
    }

    #[test]
    fn address_outside_subnet() {
        let msg = refused("address = \"10.0.0.3/24\"", "address = \"10.0.1.3/24\"");
        assert_names(&msg, "node[6].iface[0].address", &["outside LAN \"int\""]);
    }

    #[test]
    fn interface_name_too_long() {
        let msg = refused(
            "name = \"eth1\"\nbridge = \"vswin1\"",
            "name = \"averyverylongname\"\nbridge = \"vswin1\"",
        );
        assert_names(&msg, "node[2].iface[1].name", &["at most 15"]);
    }

    #[test]
    fn generated_port_name_too_long() {
        // The bridge-side name "<node>-<iface>" must fit too.
        let msg = refused(
            "name = \"eth1\"\nbridge = \"vswin1\"",
            "name = \"ethernet123\"\nbridge = \"vswin1\"",
        );
        assert_names(
            &msg,
            "node[2].iface[1].name",
            &["bal1-ethernet123", "at most 15"],
        );
    }

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
        let text = DEFAULT
            .replacen("hello_time = 1", "hello_time = 3", 1)
            .replacen("forward_delay = 4", "forward_delay = 10", 1);
        let msg = format!("{:#}", Config::from_toml(&text, "test.toml").unwrap_err());
        assert_names(&msg, "stp.max_age", &["max_age >= 2*(hello_time+1)"]);
    }

    #[test]
    fn per_bridge_timer_override_is_checked() {
        let msg = refused("priority = 4096", "priority = 4096\nforward_delay = 1");
        assert_names(&msg, "switch[1].forward_delay", &["2..=30"]);
    }

    #[test]
    fn vxlan_mtu_must_leave_room_for_headers() {
        let msg = refused("mtu = 1450", "mtu = 1500");
        assert_names(&msg, "lan[1].mtu", &["at most 1450"]);
    }

    #[test]
    fn vxlan_endpoint_local_must_be_a_host_address() {
        let msg = refused("local = \"172.16.1.151\"", "local = \"172.16.1.152\"");
        assert_names(&msg, "vxlan.endpoint[1].local", &["not an address"]);
    }

    #[test]
    fn vxlan_mode_and_ageing_are_checked() {
        let msg = refused("mode = \"kernel\"", "mode = \"bpf\"");
        assert!(
            msg.contains("unknown variant") && msg.contains("ebpf"),
            "{msg}"
        );
        let msg = refused("mode = \"kernel\"", "mode = \"ebpf\"\nageing_s = 0");
        assert_names(&msg, "vxlan.ageing_s", &["at least 1"]);
        let msg = refused(
            "mode = \"kernel\"",
            "mode = \"ebpf\"\ndevice = \"vxlan0123456789\"",
        );
        assert_names(&msg, "vxlan.device", &["vxlan0123456789p", "at most 15"]);
        // A per-endpoint override is accepted and wins over the tunnel's mode.
        let text = DEFAULT.replacen(
            "local = \"172.16.1.151\"",
            "local = \"172.16.1.151\"\nmode = \"ebpf\"",
            1,
        );
        let cfg = Config::from_toml(&text, "test.toml").expect("mixed config");
        let v = cfg.vxlan.as_ref().unwrap();
        assert_eq!(v.mode_of(&v.endpoints[0]), crate::config::VxlanMode::Kernel);
        assert_eq!(v.mode_of(&v.endpoints[1]), crate::config::VxlanMode::Ebpf);
        let msg = refused(
            "local = \"172.16.1.151\"",
            "local = \"172.16.1.151\"\nmode = \"xdp\"",
        );
        assert!(msg.contains("unknown variant"), "{msg}");
    }

    #[test]
    fn bad_lab_name() {
        let msg = refused("name = \"lab\"", "name = \"my-lab\"");
        assert_names(&msg, "lab.name", &["lowercase letters and digits"]);
    }

    #[test]
    fn bad_mac_and_multicast_mac() {
        let msg = refused(
            "priority = 8192",
            "priority = 8192\nmac = \"zz:00:00:00:00:01\"",
        );
        assert_names(&msg, "switch[0].mac", &["not aa:bb"]);
        let msg = refused(
            "priority = 8192",
            "priority = 8192\nmac = \"01:00:00:00:00:01\"",
        );
        assert_names(&msg, "switch[0].mac", &["multicast"]);
    }

    #[test]
    fn all_problems_reported_at_once() {
        let text = DEFAULT
            .replacen("b = \"swout2\"", "b = \"nowhere\"", 1)
            .replacen("address = \"10.0.0.3/24\"", "address = \"10.9.9.9/24\"", 1);
        let msg = format!("{:#}", Config::from_toml(&text, "test.toml").unwrap_err());
        assert!(
            msg.contains("2 problem(s)")
                && msg.contains("link[0].b")
                && msg.contains("node[6].iface[0].address"),
            "{msg}"
        );
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
}
