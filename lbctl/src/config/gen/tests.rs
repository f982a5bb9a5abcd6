use super::*;
use crate::config::{Config, Role};

fn opts(hosts: usize) -> GenOptions {
    GenOptions {
        hosts,
        ..GenOptions::default()
    }
}

/// Shapes every data path takes today: the kernel's with one remote, the BPF VTEP up to
/// `VX_REMOTE_MAX` remotes. Past them the validator decides (N-host kernel VXLAN lifts the
/// kernel's limit); a refusal must then name --vxlan.
fn surely_supported(mode: VxlanMode, hosts: usize) -> bool {
    match mode {
        VxlanMode::Kernel => hosts == 2,
        VxlanMode::Ebpf => hosts <= 1 + lb_common::vxlan::VX_REMOTE_MAX as usize,
    }
}

fn shapes() -> Vec<GenOptions> {
    let mut v = Vec::new();
    for hosts in [2, 3, 4, 5, 8, 9, 16, 24, 40] {
        for vxlan in [VxlanMode::Kernel, VxlanMode::Ebpf] {
            for (switches, mesh) in [
                (1, Mesh::Ring),
                (2, Mesh::Ring),
                (3, Mesh::Ring),
                (4, Mesh::Full),
                (5, Mesh::Line),
            ] {
                v.push(GenOptions {
                    hosts,
                    vxlan,
                    switches,
                    mesh,
                    servers: Servers::PerHost(hosts % 3 + 1),
                    balancers: hosts.min(4),
                    users: switches + 1,
                    ..GenOptions::default()
                });
            }
        }
    }
    v
}

/// Many shapes, each generated and run through the whole validation: zero problems (or,
/// past a data path's limit, a refusal naming --vxlan).
#[test]
fn every_shape_validates() {
    let mut valid = 0;
    for o in shapes() {
        match generate(&o) {
            Ok(text) => {
                let cfg = Config::from_toml(&text, "gen").unwrap();
                assert_eq!(cfg.hosts.len(), o.hosts);
                let count = |r| cfg.nodes.iter().filter(|n| n.role == r).count();
                assert_eq!(count(Role::Server), o.total_servers());
                assert_eq!(count(Role::Balancer), o.balancers);
                assert_eq!(count(Role::User), o.users);
                assert_eq!(cfg.switches.len(), o.switches);
                valid += 1;
            }
            Err(e) => {
                assert!(!surely_supported(o.vxlan, o.hosts), "{o:?}: {e}");
                assert!(e.reason.contains("remote"), "{e}");
                assert_eq!(e.option, "--vxlan", "{e}");
            }
        }
    }
    assert!(valid >= 35, "only {valid} shapes were valid");
}

/// `--hosts 2 --servers 3` is the scenario: same names, addresses, links, VIP, priorities.
#[test]
fn two_hosts_three_servers_is_the_scenario() {
    let o = GenOptions {
        servers: Servers::Total(3),
        ..opts(2)
    };
    let g = Config::from_toml(&generate(&o).unwrap(), "gen").unwrap();
    let d = Config::default_scenario();
    let nodes = |c: &Config| -> Vec<String> {
        c.nodes
            .iter()
            .map(|n| {
                let ifs: Vec<String> = n
                    .ifaces
                    .iter()
                    .map(|i| format!("{}@{}={:?}", i.name, i.bridge, i.address))
                    .collect();
                format!("{} {:?} {:?} {}", n.name, n.role, n.host, ifs.join(","))
            })
            .collect()
    };
    assert_eq!(nodes(&g), nodes(&d));
    let links = |c: &Config| -> Vec<(String, String)> {
        c.links.iter().map(|l| (l.a.clone(), l.b.clone())).collect()
    };
    assert_eq!(links(&g), links(&d));
    let prios = |c: &Config| -> Vec<(String, u16)> {
        c.switches
            .iter()
            .map(|s| (s.name.clone(), s.priority))
            .collect()
    };
    assert_eq!(prios(&g), prios(&d));
    assert_eq!(g.service.unwrap().vip, d.service.unwrap().vip);
    assert_eq!(g.lans[0].subnet, d.lans[0].subnet);
    assert_eq!(g.lans[1].subnet, d.lans[1].subnet);
}

/// Sixteen hosts with two servers each (the scale target) fit the default /24s; past what
/// a /24 holds, the default subnets grow.
#[test]
fn subnets_grow_with_the_lab() {
    let l = Layout::new(&opts(16)).unwrap();
    assert_eq!(l.ext.to_string(), "172.16.1.0/24");
    let o = GenOptions {
        users: 10,
        servers: Servers::PerHost(3),
        balancers: 4,
        ..opts(300)
    };
    let l = Layout::new(&o).unwrap();
    assert_eq!(l.ext.to_string(), "172.16.0.0/23");
    assert_eq!(l.int.to_string(), "10.0.0.0/22");
    assert_eq!(l.vip.to_string(), "172.16.1.254");
    let mut all: Vec<_> = l.users.iter().chain(&l.hosts).chain(&l.bal_ext).collect();
    all.push(&l.vip);
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "external addresses are unique");
}

/// Each bad option is refused by its name with the reason.
#[test]
fn bad_options_are_refused_by_name() {
    let cases: Vec<(GenOptions, &str, &str)> = vec![
        (opts(1), "--hosts", "at least two hosts"),
        (
            GenOptions {
                balancers: 3,
                ..opts(2)
            },
            "--balancers",
            "one per host",
        ),
        (
            GenOptions {
                balancers: 0,
                ..opts(2)
            },
            "--balancers",
            "1..=2",
        ),
        (
            GenOptions {
                servers: Servers::Total(0),
                ..opts(2)
            },
            "--servers",
            "at least one server",
        ),
        (
            GenOptions {
                servers: Servers::PerHost(0),
                ..opts(2)
            },
            "--servers-per-host",
            "at least one",
        ),
        (
            GenOptions {
                switches: 0,
                ..opts(2)
            },
            "--switches",
            "outside",
        ),
        (
            GenOptions {
                switches: 1,
                uplinks: Some(2),
                ..opts(2)
            },
            "--uplinks",
            "two switches",
        ),
        (
            GenOptions {
                uplinks: Some(3),
                ..opts(2)
            },
            "--uplinks",
            "1 or 2",
        ),
        (
            GenOptions {
                users: 0,
                ..opts(2)
            },
            "--users",
            "at least one user",
        ),
        (
            GenOptions {
                lab: "Lab-1".into(),
                ..opts(2)
            },
            "--lab",
            "lowercase",
        ),
        (
            GenOptions {
                int_subnet: Some("10.9.0.0/28".parse().unwrap()),
                servers: Servers::PerHost(8),
                ..opts(2)
            },
            "--int-subnet",
            "holds 14 addresses; 16 server(s) + 2 balancer(s) need 18",
        ),
        (
            GenOptions {
                ext_subnet: Some("192.168.0.0/29".parse().unwrap()),
                ..opts(4)
            },
            "--ext-subnet",
            "holds 6 addresses",
        ),
        (
            GenOptions {
                int_subnet: Some("172.16.1.128/25".parse().unwrap()),
                ..opts(2)
            },
            "--int-subnet",
            "overlaps",
        ),
        (
            GenOptions {
                vxlan: VxlanMode::Ebpf,
                ..opts(40)
            },
            "--vxlan",
            "remote",
        ),
    ];
    for (o, option, why) in cases {
        let e = generate(&o).expect_err(option);
        assert_eq!(e.option, option, "{e}");
        assert!(e.reason.contains(why), "{e}");
    }
}

/// The text is commented like configs/default.toml and states the shape it was made for.
#[test]
fn output_is_commented() {
    let text = generate(&GenOptions {
        vxlan: VxlanMode::Ebpf,
        ..opts(4)
    })
    .unwrap();
    assert!(text.starts_with("# Generated by `lbctl gen`: 4 hosts, 2 switches"));
    for section in [
        "[stp]",
        "[[lan]]",
        "[[switch]]",
        "[[host]]",
        "[[link]]",
        "[vxlan]",
        "[service]",
        "[vrrp]",
    ] {
        let at = text.find(section).unwrap_or_else(|| panic!("{section}"));
        let before = &text[..at];
        let last_line = before.trim_end().lines().last().unwrap();
        assert!(
            last_line.starts_with('#')
                || section == "[[lan]]"
                || section == "[[link]]"
                || section == "[[host]]",
            "{section} has no comment: {last_line}"
        );
    }
    assert!(text.contains("mode = \"ebpf\""));
}
