//! VXLAN: the tunnel's own settings, each endpoint on a known host extending one of its
//! bridges from an underlay address of another, what the BPF data path needs (its
//! replication limit and underlay links; the kernel's device replicates to any number of
//! remotes, see `topo::flood`), inner MTUs that leave room for the encapsulation, one inner
//! LAN for all endpoints, and one underlay address per endpoint.

use super::names::{check_ifname, IfNames};
use super::{Bridges, Problems};
use crate::config::model::{Bridge, Config, Vxlan, VxlanEndpoint, VxlanMode};
use std::collections::HashSet;

/// Outer Ethernet + IPv4 + UDP + VXLAN headers a VXLAN frame adds on the underlay.
pub const VXLAN_OVERHEAD: u32 = 50;
const DEFAULT_MTU: u32 = 1500;

pub fn check(cfg: &Config, bridges: &Bridges, ifnames: &mut IfNames) -> Problems {
    let mut out = Problems::default();
    let Some(v) = &cfg.vxlan else {
        return out;
    };
    tunnel(&mut out, v);
    let mut seen_hosts = HashSet::new();
    for (i, e) in v.endpoints.iter().enumerate() {
        let field = format!("vxlan.endpoint[{i}]");
        let Some(host) = cfg.hosts.iter().find(|h| h.name == e.host) else {
            out.err(
                format!("{field}.host"),
                format!("unknown host {:?}", e.host),
            );
            continue;
        };
        if !seen_hosts.insert(e.host.as_str()) {
            out.err(
                format!("{field}.host"),
                format!("host {:?} has two endpoints", e.host),
            );
        }
        ifnames.claim(&mut out, &e.host, &v.device, "vxlan.device".into());
        let Some(inner) = host.bridges.iter().find(|b| b.name == e.bridge) else {
            out.err(
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
            out.err(
                format!("{field}.local"),
                format!(
                    "{} is not an address of any bridge of host {:?}",
                    e.local, e.host
                ),
            );
            continue;
        };
        if under.name == inner.name {
            out.err(
                format!("{field}.local"),
                "the underlay address cannot sit on the bridge the tunnel extends",
            );
        }
        if v.mode_of(e) == VxlanMode::Ebpf {
            ebpf(&mut out, cfg, &field, e, under);
            vtep_ports(&mut out, ifnames, v, e);
        }
        mtu(&mut out, cfg, under, inner);
    }
    let inner_lans: HashSet<&str> = v
        .endpoints
        .iter()
        .filter_map(|e| bridges.get(&e.bridge).map(|p| p.bridge.lan.as_str()))
        .collect();
    if inner_lans.len() > 1 {
        out.err(
            "vxlan.endpoint",
            "all endpoints must extend bridges of the same LAN",
        );
    }
    out
}

/// Settings of the tunnel as a whole.
fn tunnel(out: &mut Problems, v: &Vxlan) {
    if v.vni == 0 || v.vni >= 1 << 24 {
        out.err(
            "vxlan.vni",
            format!("{} is outside 1..=16777215 (24 bits)", v.vni),
        );
    }
    if v.port == 0 {
        out.err("vxlan.port", "port 0 is not a port");
    }
    if v.endpoints.len() < 2 {
        out.err("vxlan.endpoint", "a tunnel needs at least two endpoints");
    }
    if v.ageing_s == 0 {
        out.err("vxlan.ageing_s", "must be at least 1 second");
    }
    replication_limit(out, v);
    // Each end floods to the others' `local`: a shared one would send copies back to itself.
    for (i, e) in v.endpoints.iter().enumerate() {
        if let Some(j) = v.endpoints[..i].iter().position(|o| o.local == e.local) {
            out.err(
                format!("vxlan.endpoint[{i}].local"),
                format!(
                    "{} is already the underlay address of vxlan.endpoint[{j}]",
                    e.local
                ),
            );
        }
    }
}

/// The BPF VTEP replicates to a bounded list of remotes (`VX_REMOTE_MAX`, the size of its
/// `VX_REMOTE` map and of its replication loop); the kernel's device has no such bound. Said
/// once, on the first field that asks for the BPF VTEP.
fn replication_limit(out: &mut Problems, v: &Vxlan) {
    let max = lb_common::vxlan::VX_REMOTE_MAX as usize;
    if v.endpoints.len() <= 1 + max {
        return;
    }
    let Some(i) = v
        .endpoints
        .iter()
        .position(|e| v.mode_of(e) == VxlanMode::Ebpf)
    else {
        return;
    };
    let field = if v.endpoints[i].mode.is_some() {
        format!("vxlan.endpoint[{i}].mode")
    } else {
        "vxlan.mode".to_string()
    };
    out.err(
        field,
        format!(
            "the BPF VTEP replicates to at most {max} remote endpoints ({} hosts); this tunnel has {} (mode \"kernel\" has no such limit)",
            max + 1,
            v.endpoints.len() - 1
        ),
    );
}

/// The BPF VTEP: a veth pair as the tunnel port, its decapsulation (TC or XDP) on the
/// underlay bridge's links.
fn ebpf(out: &mut Problems, cfg: &Config, field: &str, e: &VxlanEndpoint, under: &Bridge) {
    let field_mode = if e.mode.is_some() {
        format!("{field}.mode")
    } else {
        "vxlan.mode".to_string()
    };
    if !cfg
        .links
        .iter()
        .any(|l| l.a == under.name || l.b == under.name)
    {
        out.err(
            field_mode,
            format!(
                "the BPF VTEP decapsulates on the links of the underlay bridge {:?} (TC or XDP), and it has none",
                under.name
            ),
        );
    }
}

/// The interfaces the BPF VTEP adds on its host besides the tunnel port: the tunnel port's
/// peer `<device>p` and the headroom port `<device>h` (`datapath::vxlan::headroom`). Both
/// must be valid names and free in the host's namespace, or `up` would fail half-way.
fn vtep_ports(out: &mut Problems, ifnames: &mut IfNames, v: &Vxlan, e: &VxlanEndpoint) {
    for (suffix, what) in [("p", "the tunnel port's peer"), ("h", "the headroom port")] {
        let name = format!("{}{suffix}", v.device);
        match check_ifname(&name) {
            Ok(()) => ifnames.claim(out, &e.host, &name, "vxlan.device".into()),
            Err(why) => out.err(
                "vxlan.device",
                format!("mode \"ebpf\" names {what} {name:?}: {why}"),
            ),
        }
    }
}

/// The inner LAN's MTU plus the encapsulation must fit the underlay's MTU: the kernel
/// drops a larger frame without a word.
fn mtu(out: &mut Problems, cfg: &Config, under: &Bridge, inner: &Bridge) {
    let under_mtu = cfg
        .lan(&under.lan)
        .and_then(|l| l.mtu)
        .unwrap_or(DEFAULT_MTU);
    let Some(lan) = cfg.lan(&inner.lan) else {
        return;
    };
    let inner_mtu = lan.mtu.unwrap_or(DEFAULT_MTU);
    if inner_mtu + VXLAN_OVERHEAD > under_mtu {
        let li = cfg
            .lans
            .iter()
            .position(|l| l.name == lan.name)
            .unwrap_or(0);
        out.err(
            format!("lan[{li}].mtu"),
            format!(
                "LAN {:?} carries VXLAN over a {under_mtu}-byte underlay, so its MTU must be at most {} (is {inner_mtu}); larger frames would be dropped silently",
                lan.name,
                under_mtu - VXLAN_OVERHEAD
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::config::Config;

    const EP1_LOCAL: &str = "local = \"172.16.1.151\"";

    fn run(edits: &[(&str, &str)]) -> Vec<super::super::Problem> {
        after_bridges(edits, check)
    }

    #[test]
    fn vxlan_mtu_must_leave_room_for_headers() {
        let msg = refused("mtu = 1450", "mtu = 1500");
        assert_names(&msg, "lan[1].mtu", &["at most 1450"]);
    }

    #[test]
    fn vxlan_endpoint_local_must_be_a_host_address() {
        let msg = refused(EP1_LOCAL, "local = \"172.16.1.152\"");
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
        let text = edited(&[(EP1_LOCAL, "local = \"172.16.1.151\"\nmode = \"ebpf\"")]);
        let cfg = Config::from_toml(&text, "test.toml").expect("mixed config");
        let v = cfg.vxlan.as_ref().unwrap();
        assert_eq!(v.mode_of(&v.endpoints[0]), crate::config::VxlanMode::Kernel);
        assert_eq!(v.mode_of(&v.endpoints[1]), crate::config::VxlanMode::Ebpf);
        let msg = refused(EP1_LOCAL, "local = \"172.16.1.151\"\nmode = \"xdp\"");
        assert!(msg.contains("unknown variant"), "{msg}");
    }

    #[test]
    fn tunnel_settings() {
        assert_eq!(
            run(&[("vni = 12", "vni = 16777216"), ("port = 4789", "port = 0")]),
            [
                problem("vxlan.vni", "16777216 is outside 1..=16777215 (24 bits)"),
                problem("vxlan.port", "port 0 is not a port"),
            ]
        );
    }

    #[test]
    fn endpoints_resolve_on_their_host() {
        assert_eq!(
            run(&[(
                "host = \"vm2\"\nbridge = \"vswin2\"",
                "host = \"vm7\"\nbridge = \"vswin2\""
            )]),
            [problem("vxlan.endpoint[1].host", "unknown host \"vm7\"")]
        );
        assert_eq!(
            run(&[("bridge = \"vswin2\"\nlocal", "bridge = \"vswinZ\"\nlocal")]),
            [problem(
                "vxlan.endpoint[1].bridge",
                "host \"vm2\" has no bridge \"vswinZ\""
            )]
        );
        assert_eq!(
            run(&[("mode = \"kernel\"", "mode = \"kernel\"\ndevice = \"vswin1\"")]),
            [problem(
                "vxlan.device",
                "interface name \"vswin1\" is already used in namespace \"vm1\" by host[0].bridge[1].name"
            )]
        );
    }

    #[test]
    fn the_underlay_is_another_bridge_of_the_same_inner_lan_for_all() {
        assert_eq!(
            run(&[("bridge = \"vswin2\"\nlocal", "bridge = \"vswout2\"\nlocal")]),
            [
                problem(
                    "vxlan.endpoint[1].local",
                    "the underlay address cannot sit on the bridge the tunnel extends"
                ),
                problem(
                    "lan[0].mtu",
                    "LAN \"ext\" carries VXLAN over a 1500-byte underlay, so its MTU must be at most 1450 (is 1500); larger frames would be dropped silently"
                ),
                problem(
                    "vxlan.endpoint",
                    "all endpoints must extend bridges of the same LAN"
                ),
            ]
        );
    }

    /// Four hosts: the vm3 and vm4 of `tests/configs/big.toml`, each with an endpoint.
    fn four_hosts(mode3: &str, mode4: &str) -> Vec<(String, String)> {
        let hosts = "[[host]]\nname = \"vm3\"\n[[host.bridge]]\nname = \"vswout3\"\nlan = \"ext\"\naddress = \"172.16.1.152/24\"\n[[host.bridge]]\nname = \"vswin3\"\nlan = \"int\"\nstp = false\n[[host]]\nname = \"vm4\"\n[[host.bridge]]\nname = \"vswout4\"\nlan = \"ext\"\naddress = \"172.16.1.153/24\"\n[[host.bridge]]\nname = \"vswin4\"\nlan = \"int\"\nstp = false\n[[link]]\na = \"vswout3\"\nb = \"swout1\"\n[[link]]\na = \"vswout4\"\nb = \"swout2\"\n# The two hypervisors";
        let eps = format!("[[vxlan.endpoint]]\nhost = \"vm3\"\nbridge = \"vswin3\"\nlocal = \"172.16.1.152\"\nmode = \"{mode3}\"\n[[vxlan.endpoint]]\nhost = \"vm4\"\nbridge = \"vswin4\"\nlocal = \"172.16.1.153\"\nmode = \"{mode4}\"\n[[vxlan.endpoint]]\nhost = \"vm2\"");
        vec![
            ("# The two hypervisors".into(), hosts.into()),
            ("[[vxlan.endpoint]]\nhost = \"vm2\"".into(), eps),
        ]
    }

    #[test]
    fn the_kernel_data_path_takes_any_number_of_remotes() {
        let edits = four_hosts("kernel", "kernel");
        let e: Vec<(&str, &str)> = edits
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(run(&e), []);
        // Mixed: two kernel devices and two BPF VTEPs on one tunnel.
        let edits = four_hosts("ebpf", "ebpf");
        let e: Vec<(&str, &str)> = edits
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(run(&e), []);
    }

    #[test]
    fn each_endpoint_has_its_own_underlay_address_and_host() {
        let third = "[[vxlan.endpoint]]\nhost = \"vm2\"\nbridge = \"vswin2\"\nlocal = \"172.16.1.151\"\n[[vxlan.endpoint]]\nhost = \"vm2\"";
        assert_eq!(
            run(&[("[[vxlan.endpoint]]\nhost = \"vm2\"", third)]),
            [
                problem(
                    "vxlan.endpoint[2].local",
                    "172.16.1.151 is already the underlay address of vxlan.endpoint[1]"
                ),
                problem("vxlan.endpoint[2].host", "host \"vm2\" has two endpoints"),
                problem(
                    "vxlan.device",
                    "interface name \"vxlan0\" is already used in namespace \"vm2\" by vxlan.device"
                ),
            ]
        );
    }

    /// The BPF VTEP adds `<device>p` and `<device>h` on its host: valid names (checked for
    /// each endpoint), and free there (here vm1 has a bridge of that name).
    #[test]
    fn the_bpf_vteps_own_ports_are_named_and_free() {
        let too_long = |name: &str, what: &str| {
            problem(
                "vxlan.device",
                &format!(
                    "mode \"ebpf\" names {what} \"{name}\": interface name \"{name}\" is 16 characters; the kernel allows at most 15"
                ),
            )
        };
        let long = "mode = \"ebpf\"\ndevice = \"vxlan0123456789\"";
        let (peer, headroom) = (
            too_long("vxlan0123456789p", "the tunnel port's peer"),
            too_long("vxlan0123456789h", "the headroom port"),
        );
        assert_eq!(
            run(&[("mode = \"kernel\"", long)]),
            [peer.clone(), headroom.clone(), peer, headroom]
        );

        let inner = "name = \"vswin1\"\nlan = \"int\"\nstp = false";
        let taken =
            format!("{inner}\n[[host.bridge]]\nname = \"vxlan0h\"\nlan = \"int\"\nstp = false");
        let p = run(&[("mode = \"kernel\"", "mode = \"ebpf\""), (inner, &taken)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "vxlan.device");
        assert!(
            p[0].reason
                .starts_with("interface name \"vxlan0h\" is already used in namespace \"vm1\" by "),
            "{p:?}"
        );
    }

    #[test]
    fn the_bpf_vtep_needs_underlay_links_and_few_remotes() {
        let vm3 = "[[host]]\nname = \"vm3\"\n[[host.bridge]]\nname = \"vswout3\"\nlan = \"ext\"\naddress = \"172.16.1.152/24\"\n[[host.bridge]]\nname = \"vswin3\"\nlan = \"int\"\nstp = false\n# The two hypervisors";
        let ep3 = "[[vxlan.endpoint]]\nhost = \"vm3\"\nbridge = \"vswin3\"\nlocal = \"172.16.1.152\"\nmode = \"ebpf\"\n[[vxlan.endpoint]]\nhost = \"vm2\"";
        let p = run(&[
            ("mode = \"kernel\"", "mode = \"ebpf\""),
            ("# The two hypervisors", vm3),
            ("[[vxlan.endpoint]]\nhost = \"vm2\"", ep3),
        ]);
        assert_eq!(
            p,
            [problem(
                "vxlan.endpoint[1].mode",
                "the BPF VTEP decapsulates on the links of the underlay bridge \"vswout3\" (TC or XDP), and it has none"
            )]
        );
        let cfg = parsed(&[("mode = \"kernel\"", "mode = \"ebpf\"")]);
        let mut v = cfg.vxlan.clone().unwrap();
        let e = v.endpoints[0].clone();
        v.endpoints = vec![e.clone(); 16];
        let mut out = Problems::default();
        replication_limit(&mut out, &v);
        assert_eq!(out.into_vec(), [], "16 hosts fit");
        v.endpoints.push(e.clone());
        let mut out = Problems::default();
        replication_limit(&mut out, &v);
        let msg = "the BPF VTEP replicates to at most 15 remote endpoints (16 hosts); this tunnel has 16 (mode \"kernel\" has no such limit)";
        assert_eq!(out.into_vec(), [problem("vxlan.mode", msg)]);
        // Only endpoint 3 asks for the BPF VTEP: it is the field named, once.
        v.mode = VxlanMode::Kernel;
        v.endpoints[3].mode = Some(VxlanMode::Ebpf);
        v.endpoints[5].mode = Some(VxlanMode::Ebpf);
        let mut out = Problems::default();
        replication_limit(&mut out, &v);
        assert_eq!(out.into_vec(), [problem("vxlan.endpoint[3].mode", msg)]);
        // All on the kernel's device: any number.
        v.endpoints[3].mode = None;
        v.endpoints[5].mode = None;
        let mut out = Problems::default();
        replication_limit(&mut out, &v);
        assert_eq!(out.into_vec(), []);
    }
}
