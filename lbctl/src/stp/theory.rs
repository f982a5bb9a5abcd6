//! The spanning tree a configuration *should* produce, computed from first principles.
//!
//! The Linux kernel bridge implements classic IEEE 802.1D (1998/2004) STP, not RSTP. This
//! module is pure and sans-IO: it takes a description of bridges, ports and segments
//! ([`Topology`]) and returns the converged tree 802.1D prescribes ([`TreeExpectation`]).
//! lbctl reads the kernel's actual state separately and compares the two, so every tie-break
//! here mirrors the kernel's `net/bridge/br_stp.c` exactly (priority vectors compared field by
//! field, bridge ids compared as 8 big-endian bytes).
//!
//! The kernel's 802.1D code does not export port *roles*, only the raw per-port vector; so
//! [`derive_role`] reconstructs the role from what sysfs/netlink do export.

use std::collections::HashMap;
use std::fmt;

/// Number of low bits of a port id that carry the port number (`BR_PORT_BITS` in the kernel).
pub const BR_PORT_BITS: u32 = 10;
/// Highest port priority the kernel accepts (`BR_MAX_PORT_PRIORITY` = `0xffff >> BR_PORT_BITS`).
pub const MAX_PORT_PRIORITY: u8 = 63;
/// Port priority a new kernel bridge port gets (`0x8000 >> BR_PORT_BITS`).
#[cfg(test)]
pub const DEFAULT_PORT_PRIORITY: u8 = 32;

/// 802.1D bridge identifier: priority (16 bits, as the kernel stores it: 0..=65535) then MAC.
///
/// Field order matters: the derived `Ord` compares priority first, then the MAC bytes in
/// order, which is exactly the kernel's `memcmp` over the 8-byte `bridge_id`. Lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct BridgeId {
    pub priority: u16,
    pub mac: [u8; 6],
}

impl BridgeId {
    /// Format like the kernel's sysfs `bridge_id`/`root_id`/`designated_bridge`:
    /// 4 hex digits of priority, `.`, 12 hex digits of MAC, lowercase (e.g. `8000.aabbccddeeff`).
    ///
    /// Takes `self` by value (the type is `Copy`, as clippy's `wrong_self_convention` wants);
    /// calls through a reference work unchanged.
    #[cfg(test)]
    pub fn to_kernel_string(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}.", self.priority)?;
        for b in self.mac {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Parse a bridge id as the kernel prints it in sysfs (`8000.aabbccddeeff`).
///
/// Surrounding whitespace is ignored (sysfs values end in a newline) and hex is accepted in
/// either case. Because iproute2 (`ip -d link`) prints the MAC part with `ether_ntoa`, i.e.
/// colon-separated with leading zeros dropped (`8000.a:bb:c:dd:e:ff`), that form is accepted
/// too. The priority must be exactly 4 hex digits, as both the kernel and iproute2 print it.
#[cfg(test)]
pub fn parse_kernel_bridge_id(s: &str) -> Option<BridgeId> {
    let (prio, mac_s) = s.trim().split_once('.')?;
    if prio.len() != 4 || !prio.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let priority = u16::from_str_radix(prio, 16).ok()?;
    let mut mac = [0u8; 6];
    if mac_s.contains(':') {
        let mut groups = mac_s.split(':');
        for byte in mac.iter_mut() {
            *byte = parse_hex_byte(groups.next()?)?;
        }
        if groups.next().is_some() {
            return None;
        }
    } else {
        if mac_s.len() != 12 || !mac_s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        for (i, byte) in mac.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&mac_s[2 * i..2 * i + 2], 16).ok()?;
        }
    }
    Some(BridgeId { priority, mac })
}

/// One or two hex digits. Checked by hand because `from_str_radix` also accepts a `+` sign.
#[cfg(test)]
fn parse_hex_byte(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(s, 16).ok()
}

/// Port identifier as the Linux kernel builds it: `(priority << 10) | (port_no & 0x3ff)`
/// (`br_make_port_id` in `br_stp_if.c`, `BR_PORT_BITS` = 10).
///
/// Only 6 priority bits fit above the port number; the kernel refuses priorities above
/// [`MAX_PORT_PRIORITY`] (63), so we keep the low 6 bits rather than let higher bits silently
/// shift out. Lower port id is better in every 802.1D tie-break.
pub fn make_port_id(priority: u8, port_no: u16) -> u16 {
    (u16::from(priority & MAX_PORT_PRIORITY) << BR_PORT_BITS)
        | (port_no & ((1 << BR_PORT_BITS) - 1))
}

/// One bridge port in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortSpec {
    /// Name of the [`BridgeSpec`] this port is enslaved to.
    pub bridge: String,
    /// Interface name of the port (unique within its bridge).
    pub name: String,
    /// Kernel port number (`port_no`, assigned from 1 upwards at enslave time).
    pub port_no: u16,
    /// Port priority, 0..=63 (kernel default [`DEFAULT_PORT_PRIORITY`]).
    pub priority: u8,
    /// Path cost of this port. 802.1D adds the cost of the *receiving* port, so this cost
    /// counts when the root's BPDUs arrive through this port.
    pub cost: u32,
    /// Name of the LAN this port is attached to; ports with the same segment name hear each
    /// other's BPDUs.
    pub segment: String,
    /// Link is operationally up. A down port is Disabled and carries no BPDUs.
    pub up: bool,
}

impl PortSpec {
    /// The kernel's port id for this port (see [`make_port_id`]).
    pub fn port_id(&self) -> u16 {
        make_port_id(self.priority, self.port_no)
    }
}

/// One bridge in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BridgeSpec {
    pub name: String,
    pub id: BridgeId,
    /// `stp_state` is 1 (kernel STP). Userspace STP (`stp_state` 2) is out of scope.
    pub stp: bool,
    /// The bridge device is administratively up. A down bridge disables all its ports.
    pub up: bool,
}

/// A topology: bridges, their ports, and segments (a segment = the LAN a port is attached to;
/// a point-to-point veth link between two bridges is a segment with two ports; a segment with
/// one STP port and only end hosts has one port).
///
/// Segments are implicit: every distinct [`PortSpec::segment`] string is one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Topology {
    pub bridges: Vec<BridgeSpec>,
    pub ports: Vec<PortSpec>,
}

/// 802.1D port role: the one RSTP's state machines assign ([`crate::rstp::types::Role`]),
/// so the roles a daemon reports compare with the expected ones as they are.
pub use crate::rstp::types::Role;

impl Role {
    /// Port state this role settles in once forward-delay timers have run out.
    pub fn steady_state(self) -> PortState {
        match self {
            Role::Root | Role::Designated => PortState::Forwarding,
            Role::Alternate | Role::Backup => PortState::Blocking,
            Role::Disabled => PortState::Disabled,
        }
    }
}

/// Port state, in the kernel's numbering (`BR_STATE_DISABLED` = 0 .. `BR_STATE_BLOCKING` = 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PortState {
    Disabled,
    Listening,
    Learning,
    Forwarding,
    Blocking,
}

impl PortState {
    /// Map the kernel's numeric `state` (sysfs `brport/state`, `IFLA_BRPORT_STATE`).
    pub fn from_kernel(v: u8) -> Option<PortState> {
        Some(match v {
            0 => PortState::Disabled,
            1 => PortState::Listening,
            2 => PortState::Learning,
            3 => PortState::Forwarding,
            4 => PortState::Blocking,
            _ => return None,
        })
    }
}

/// What one port should look like once STP has converged.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortExpectation {
    pub bridge: String,
    pub port: String,
    pub role: Role,
    /// Forwarding for Root/Designated, Blocking for Alternate/Backup, Disabled for Disabled.
    pub state: PortState,
    /// The bridge whose port is designated on this port's segment (this bridge itself for a
    /// designated or backup port; this bridge itself for every port of a non-STP bridge, as the
    /// kernel reports). `None` for a Disabled port, whose kernel value is meaningless.
    pub designated_bridge: Option<BridgeId>,
    /// Root path cost advertised on this port's segment, i.e. the root path cost of
    /// `designated_bridge`. This is what the kernel reports as the port's `designated_cost`
    /// (for the root port it excludes the port's own cost). 0 for Disabled and non-STP ports.
    pub root_path_cost: u32,
}

/// What one bridge should look like once STP has converged.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BridgeExpectation {
    pub name: String,
    /// Root of this bridge's component. A bridge that is down or has STP off considers itself
    /// root (that is what the kernel reports for it).
    pub root: BridgeId,
    /// Name of the root port; `None` on the root bridge and on non-participating bridges.
    pub root_port: Option<String>,
    /// Cost from this bridge to its root (0 on a root).
    pub root_path_cost: u32,
}

/// The whole converged tree, in the order of [`Topology::bridges`] and [`Topology::ports`]
/// (one entry per bridge and per port, including non-participating ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TreeExpectation {
    pub bridges: Vec<BridgeExpectation>,
    pub ports: Vec<PortExpectation>,
}

impl TreeExpectation {
    /// Look up one bridge's expectation by name.
    #[cfg(test)]
    pub fn bridge(&self, name: &str) -> Option<&BridgeExpectation> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// Look up one port's expectation by bridge and port name.
    pub fn port(&self, bridge: &str, port: &str) -> Option<&PortExpectation> {
        self.ports
            .iter()
            .find(|p| p.bridge == bridge && p.port == port)
    }
}

/// A bridge's root priority vector as learnt through one of its ports; the smallest one wins
/// and its port becomes the root port. Field order is the comparison order of the kernel's
/// `br_should_become_root_port` (the root id is common within a component so it is left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RootVector {
    /// Designated cost of the sender + cost of the receiving port.
    cost: u32,
    sender_bridge: BridgeId,
    sender_port: u16,
    own_port: u16,
    /// Index into `Topology::ports`; last so that duplicated ids still give a stable answer.
    port_idx: usize,
}

/// Minimal union-find, used for segment merging and for components.
struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind((0..n).collect())
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Compute the converged 802.1D tree for `topo`.
///
/// Participation: a bridge takes part when it is `stp && up`; a port takes part when it is
/// `up` and its bridge takes part. Everything else:
/// - port of a down bridge, down port, or port naming an unknown bridge: `Disabled`;
/// - up port of an up bridge with STP off: `Designated`/`Forwarding`, because such a bridge
///   forwards everything and the kernel keeps it in its initial "I am root, all ports
///   designated" state. Moreover the kernel *floods* BPDUs through a non-STP bridge
///   (`br_handle_frame`: "If STP is turned off, then must forward to keep loop detection"),
///   so for STP purposes it behaves like a hub: all segments it has up ports on are merged
///   into one segment, and the STP bridges around it see each other there.
///
/// Participating bridges are split into connected components (bridges sharing a segment
/// through participating ports); a network partitioned by failures elects one root per
/// component. Within a component:
/// - root = lowest [`BridgeId`];
/// - each other bridge's root port = port with the smallest (designated cost of the
///   segment's designated port + own port cost, designated bridge id, designated port id,
///   own port id) - the kernel's `br_should_become_root_port` order;
/// - designated port of a segment = port with the smallest (root path cost of its bridge,
///   bridge id, port id) among non-root ports on the segment - `br_should_become_designated_port`;
///   a segment whose only participating port is one port gets that port as designated;
/// - any other port is Backup if its segment's designated port is on the same bridge, else
///   Alternate.
///
/// This is computed with Dijkstra over bridges, settling them in increasing (root path cost,
/// bridge id) order: the first settled bridge with a non-root port on a segment is therefore
/// the best offer there and becomes its designated bridge, and the bridges behind it learn
/// their candidate root vectors from that designated port only (802.1D bridges only hear
/// BPDUs from the designated port of a segment). Costs must be at least 1 for this to be the
/// unique fixed point; the kernel refuses 0 (`BR_MIN_PATH_COST`), so a 0 cost is treated as
/// 1. Path costs add with saturation instead of wrapping.
pub fn expected_tree(topo: &Topology) -> TreeExpectation {
    let bridges = &topo.bridges;
    let ports = &topo.ports;

    // Bridge names are expected unique; the first definition wins.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, b) in bridges.iter().enumerate() {
        by_name.entry(b.name.as_str()).or_insert(i);
    }
    let port_bridge: Vec<Option<usize>> = ports
        .iter()
        .map(|p| by_name.get(p.bridge.as_str()).copied())
        .collect();
    let bridge_takes_part = |b: usize| bridges[b].stp && bridges[b].up;
    let port_takes_part: Vec<bool> = ports
        .iter()
        .zip(&port_bridge)
        .map(|(p, b)| p.up && b.is_some_and(bridge_takes_part))
        .collect();

    // Segments, merged through non-STP bridges (which flood BPDUs).
    let mut seg_ids: HashMap<&str, usize> = HashMap::new();
    let port_seg_raw: Vec<usize> = ports
        .iter()
        .map(|p| {
            let next = seg_ids.len();
            *seg_ids.entry(p.segment.as_str()).or_insert(next)
        })
        .collect();
    let mut segs = UnionFind::new(seg_ids.len());
    let mut hub_first_seg: Vec<Option<usize>> = vec![None; bridges.len()];
    for (i, p) in ports.iter().enumerate() {
        let Some(b) = port_bridge[i] else { continue };
        if bridges[b].up && !bridges[b].stp && p.up {
            match hub_first_seg[b] {
                None => hub_first_seg[b] = Some(port_seg_raw[i]),
                Some(first) => segs.union(first, port_seg_raw[i]),
            }
        }
    }
    let port_seg: Vec<usize> = port_seg_raw.iter().map(|&s| segs.find(s)).collect();

    // Participating ports per segment and per bridge (the latter sorted by port id, so the
    // lowest port id of a bridge on a segment is the one that becomes designated there).
    let mut seg_members: Vec<Vec<usize>> = vec![Vec::new(); seg_ids.len()];
    let mut bridge_ports: Vec<Vec<usize>> = vec![Vec::new(); bridges.len()];
    for i in (0..ports.len()).filter(|&i| port_takes_part[i]) {
        seg_members[port_seg[i]].push(i);
        if let Some(b) = port_bridge[i] {
            bridge_ports[b].push(i);
        }
    }
    for list in &mut bridge_ports {
        list.sort_by_key(|&i| (ports[i].port_id(), i));
    }
    let owner = |i: usize| port_bridge[i].expect("participating port has a bridge");

    // Components of participating bridges.
    let mut comps_uf = UnionFind::new(bridges.len());
    for members in &seg_members {
        for pair in members.windows(2) {
            comps_uf.union(owner(pair[0]), owner(pair[1]));
        }
    }
    let mut comps: Vec<Vec<usize>> = vec![Vec::new(); bridges.len()];
    for b in (0..bridges.len()).filter(|&b| bridge_takes_part(b)) {
        comps[comps_uf.find(b)].push(b);
    }

    // Per-bridge and per-segment results. Non-participating bridges keep "I am root".
    let mut root: Vec<BridgeId> = bridges.iter().map(|b| b.id).collect();
    let mut rpc: Vec<u32> = vec![0; bridges.len()];
    let mut root_port: Vec<Option<usize>> = vec![None; bridges.len()];
    let mut designated: Vec<Option<usize>> = vec![None; seg_ids.len()];
    let mut settled: Vec<bool> = vec![false; bridges.len()];
    let mut best: Vec<Option<RootVector>> = vec![None; bridges.len()];

    for comp in comps.iter().filter(|c| !c.is_empty()) {
        let root_bridge = *comp
            .iter()
            .min_by_key(|&&b| (bridges[b].id, b))
            .expect("non-empty component");
        for &b in comp {
            root[b] = bridges[root_bridge].id;
        }
        let mut next = Some(root_bridge);
        while let Some(b) = next {
            settled[b] = true;
            if let Some(v) = best[b] {
                rpc[b] = v.cost;
                root_port[b] = Some(v.port_idx);
            }
            // Claim every segment where nobody better has claimed yet, and offer our vector
            // to the not-yet-settled bridges there.
            for &p in &bridge_ports[b] {
                let seg = port_seg[p];
                if root_port[b] == Some(p) || designated[seg].is_some() {
                    continue;
                }
                designated[seg] = Some(p);
                for &q in &seg_members[seg] {
                    let x = owner(q);
                    if settled[x] {
                        continue;
                    }
                    let offer = RootVector {
                        cost: rpc[b].saturating_add(ports[q].cost.max(1)),
                        sender_bridge: bridges[b].id,
                        sender_port: ports[p].port_id(),
                        own_port: ports[q].port_id(),
                        port_idx: q,
                    };
                    if best[x].is_none_or(|cur| offer < cur) {
                        best[x] = Some(offer);
                    }
                }
            }
            next = comp
                .iter()
                .copied()
                .filter(|&x| !settled[x])
                .filter_map(|x| best[x].map(|v| (v.cost, bridges[x].id, x)))
                .min()
                .map(|(_, _, x)| x);
        }
    }

    let bridge_out = bridges
        .iter()
        .enumerate()
        .map(|(b, spec)| BridgeExpectation {
            name: spec.name.clone(),
            root: root[b],
            root_port: root_port[b].map(|p| ports[p].name.clone()),
            root_path_cost: rpc[b],
        })
        .collect();

    let port_out = ports
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (role, designated_bridge, cost) = match port_bridge[i] {
                Some(b) if port_takes_part[i] => {
                    let d =
                        designated[port_seg[i]].expect("every live segment has a designated port");
                    let role = if root_port[b] == Some(i) {
                        Role::Root
                    } else if d == i {
                        Role::Designated
                    } else if owner(d) == b {
                        Role::Backup
                    } else {
                        Role::Alternate
                    };
                    (role, Some(bridges[owner(d)].id), rpc[owner(d)])
                }
                Some(b) if bridges[b].up && !bridges[b].stp && spec.up => {
                    (Role::Designated, Some(bridges[b].id), 0)
                }
                _ => (Role::Disabled, None, 0),
            };
            PortExpectation {
                bridge: spec.bridge.clone(),
                port: spec.name.clone(),
                role,
                state: role.steady_state(),
                designated_bridge,
                root_path_cost: cost,
            }
        })
        .collect();

    TreeExpectation {
        bridges: bridge_out,
        ports: port_out,
    }
}

/// A port as the kernel reports it (sysfs `brport/*` or `IFLA_BRPORT_*`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelPort {
    pub name: String,
    pub port_no: u16,
    pub port_id: u16,
    pub state: PortState,
    pub designated_bridge: BridgeId,
    pub designated_port: u16,
    pub designated_root: BridgeId,
    pub designated_cost: u32,
}

/// A bridge as the kernel reports it (sysfs `bridge/*` or `IFLA_BR_*`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelBridge {
    pub name: String,
    pub id: BridgeId,
    pub root: BridgeId,
    /// Port number of the root port; 0 = none (the kernel never assigns port number 0).
    pub root_port_no: u16,
    pub root_path_cost: u32,
    pub stp: bool,
}

/// Reconstruct a port's role from kernel data, since the kernel's 802.1D code keeps no role.
///
/// - non-STP bridge: Designated, unless the port is Disabled (matches [`expected_tree`]);
/// - state Disabled: Disabled;
/// - `port_no == root_port_no`: Root;
/// - the port's designated bridge is this bridge and its designated port is this port:
///   Designated;
/// - designated bridge is this bridge but another port of it: Backup;
/// - otherwise: Alternate (another bridge is designated on the segment).
///
/// This holds in transient states too (Listening/Learning ports already have their role).
pub fn derive_role(bridge: &KernelBridge, port: &KernelPort) -> Role {
    if port.state == PortState::Disabled {
        return Role::Disabled;
    }
    if !bridge.stp {
        return Role::Designated;
    }
    if bridge.root_port_no != 0 && port.port_no == bridge.root_port_no {
        return Role::Root;
    }
    if port.designated_bridge == bridge.id {
        if port.designated_port == port.port_id {
            Role::Designated
        } else {
            Role::Backup
        }
    } else {
        Role::Alternate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(priority: u16, last: u8) -> BridgeId {
        BridgeId {
            priority,
            mac: [0x02, 0, 0, 0, 0, last],
        }
    }

    fn bridge(name: &str, id: BridgeId) -> BridgeSpec {
        BridgeSpec {
            name: name.into(),
            id,
            stp: true,
            up: true,
        }
    }

    fn port(bridge: &str, name: &str, port_no: u16, cost: u32, segment: &str) -> PortSpec {
        PortSpec {
            bridge: bridge.into(),
            name: name.into(),
            port_no,
            priority: DEFAULT_PORT_PRIORITY,
            cost,
            segment: segment.into(),
            up: true,
        }
    }

    fn role(t: &TreeExpectation, b: &str, p: &str) -> Role {
        t.port(b, p)
            .unwrap_or_else(|| panic!("no port {b}/{p}"))
            .role
    }

    /// All ports that are not Root/Designated, as (bridge, port, role), sorted.
    fn non_forwarding(t: &TreeExpectation) -> Vec<(String, String, Role)> {
        let mut v: Vec<_> = t
            .ports
            .iter()
            .filter(|p| !matches!(p.role, Role::Root | Role::Designated))
            .map(|p| (p.bridge.clone(), p.port.clone(), p.role))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    fn nf(list: &[(&str, &str, Role)]) -> Vec<(String, String, Role)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|(b, p, r)| (b.to_string(), p.to_string(), *r))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    /// Every port's state must follow from its role.
    fn check_states(t: &TreeExpectation) {
        for p in &t.ports {
            assert_eq!(p.state, p.role.steady_state(), "{}/{}", p.bridge, p.port);
        }
    }

    fn root_of(t: &TreeExpectation, b: &str) -> BridgeId {
        t.bridge(b).unwrap().root
    }

    fn root_port_of<'a>(t: &'a TreeExpectation, b: &str) -> Option<&'a str> {
        t.bridge(b).unwrap().root_port.as_deref()
    }

    fn set_port_down(topo: &mut Topology, segment: &str) {
        let mut n = 0;
        for p in topo.ports.iter_mut().filter(|p| p.segment == segment) {
            p.up = false;
            n += 1;
        }
        assert!(n > 0, "no segment {segment}");
    }

    // (1) Triangle, equal costs: A (lowest id) is root; B wins segment B-C on bridge id, so
    // C's port towards B is the single Alternate.
    #[test]
    fn triangle() {
        let topo = Topology {
            bridges: vec![
                bridge("a", id(0x8000, 1)),
                bridge("b", id(0x8000, 2)),
                bridge("c", id(0x8000, 3)),
            ],
            ports: vec![
                port("a", "a-b", 1, 19, "ab"),
                port("a", "a-c", 2, 19, "ac"),
                port("b", "b-a", 1, 19, "ab"),
                port("b", "b-c", 2, 19, "bc"),
                port("c", "c-a", 1, 19, "ac"),
                port("c", "c-b", 2, 19, "bc"),
            ],
        };
        let t = expected_tree(&topo);
        check_states(&t);
        for b in ["a", "b", "c"] {
            assert_eq!(root_of(&t, b), id(0x8000, 1));
        }
        assert_eq!(root_port_of(&t, "a"), None);
        assert_eq!(root_port_of(&t, "b"), Some("b-a"));
        assert_eq!(root_port_of(&t, "c"), Some("c-a"));
        assert_eq!(t.bridge("b").unwrap().root_path_cost, 19);
        assert_eq!(t.bridge("c").unwrap().root_path_cost, 19);
        assert_eq!(role(&t, "a", "a-b"), Role::Designated);
        assert_eq!(role(&t, "a", "a-c"), Role::Designated);
        assert_eq!(role(&t, "b", "b-c"), Role::Designated);
        assert_eq!(non_forwarding(&t), nf(&[("c", "c-b", Role::Alternate)]));
        let alt = t.port("c", "c-b").unwrap();
        assert_eq!(alt.state, PortState::Blocking);
        assert_eq!(alt.designated_bridge, Some(id(0x8000, 2)));
        assert_eq!(alt.root_path_cost, 19);
        let rp = t.port("b", "b-a").unwrap();
        assert_eq!(rp.designated_bridge, Some(id(0x8000, 1)));
        assert_eq!(rp.root_path_cost, 0);
    }

    const SWOUT1: BridgeId = BridgeId {
        priority: 8192,
        mac: [0x02, 0, 0, 0, 0, 0x11],
    };
    const SWOUT2: BridgeId = BridgeId {
        priority: 4096,
        mac: [0x02, 0, 0, 0, 0, 0x12],
    };
    const VSWOUT1: BridgeId = BridgeId {
        priority: 32768,
        mac: [0x02, 0, 0, 0, 0, 0x21],
    };
    const VSWOUT2: BridgeId = BridgeId {
        priority: 32768,
        mac: [0x02, 0, 0, 0, 0, 0x22],
    };

    /// The lab: swout1/swout2 (outer switches, swout2 root) and vswout1/vswout2, each
    /// connected to both outer switches, plus one leaf segment per switch.
    /// Segment names: "s1s2", "v1s1", "v1s2", "v2s1", "v2s2", and leaf segments.
    fn lab() -> Topology {
        Topology {
            bridges: vec![
                bridge("swout1", SWOUT1),
                bridge("swout2", SWOUT2),
                bridge("vswout1", VSWOUT1),
                bridge("vswout2", VSWOUT2),
            ],
            ports: vec![
                port("swout1", "s1-s2", 1, 100, "s1s2"),
                port("swout1", "s1-v1", 2, 100, "v1s1"),
                port("swout1", "s1-v2", 3, 100, "v2s1"),
                port("swout1", "s1-user1", 4, 100, "user1"),
                port("swout2", "s2-s1", 1, 100, "s1s2"),
                port("swout2", "s2-v1", 2, 100, "v1s2"),
                port("swout2", "s2-v2", 3, 100, "v2s2"),
                port("swout2", "s2-user2", 4, 100, "user2"),
                port("vswout1", "v1-s1", 1, 100, "v1s1"),
                port("vswout1", "v1-s2", 2, 100, "v1s2"),
                port("vswout1", "v1-bal1", 3, 100, "bal1"),
                port("vswout2", "v2-s1", 1, 100, "v2s1"),
                port("vswout2", "v2-s2", 2, 100, "v2s2"),
                port("vswout2", "v2-bal2", 3, 100, "bal2"),
            ],
        }
    }

    // (2) The project's scenario, all costs 100.
    #[test]
    fn lab_nominal() {
        let t = expected_tree(&lab());
        check_states(&t);
        for b in ["swout1", "swout2", "vswout1", "vswout2"] {
            assert_eq!(root_of(&t, b), SWOUT2, "{b}");
        }
        assert_eq!(root_port_of(&t, "swout2"), None);
        assert_eq!(root_port_of(&t, "swout1"), Some("s1-s2"));
        assert_eq!(root_port_of(&t, "vswout1"), Some("v1-s2"));
        assert_eq!(root_port_of(&t, "vswout2"), Some("v2-s2"));
        for b in ["swout1", "vswout1", "vswout2"] {
            assert_eq!(t.bridge(b).unwrap().root_path_cost, 100);
        }
        assert_eq!(
            non_forwarding(&t),
            nf(&[
                ("vswout1", "v1-s1", Role::Alternate),
                ("vswout2", "v2-s1", Role::Alternate),
            ])
        );
        // swout1 wins the v1s1/v2s1 segments on bridge id (both sides at cost 100).
        for p in ["s1-v1", "s1-v2", "s1-user1"] {
            let e = t.port("swout1", p).unwrap();
            assert_eq!(e.role, Role::Designated);
            assert_eq!(e.designated_bridge, Some(SWOUT1));
            assert_eq!(e.root_path_cost, 100);
        }
        let alt = t.port("vswout1", "v1-s1").unwrap();
        assert_eq!(alt.designated_bridge, Some(SWOUT1));
        assert_eq!(alt.root_path_cost, 100);
        assert_eq!(role(&t, "vswout1", "v1-bal1"), Role::Designated);
        assert_eq!(role(&t, "vswout2", "v2-bal2"), Role::Designated);
        assert_eq!(role(&t, "swout2", "s2-user2"), Role::Designated);
    }

    // (3) vswout1's link to swout2 gets expensive: it goes to the root via swout1.
    #[test]
    fn lab_expensive_vswout1_uplink() {
        let mut topo = lab();
        topo.ports
            .iter_mut()
            .find(|p| p.name == "v1-s2")
            .unwrap()
            .cost = 1000;
        let t = expected_tree(&topo);
        check_states(&t);
        assert_eq!(root_port_of(&t, "vswout1"), Some("v1-s1"));
        assert_eq!(t.bridge("vswout1").unwrap().root_path_cost, 200);
        assert_eq!(
            non_forwarding(&t),
            nf(&[
                ("vswout1", "v1-s2", Role::Alternate),
                ("vswout2", "v2-s1", Role::Alternate),
            ])
        );
        assert_eq!(role(&t, "swout1", "s1-v1"), Role::Designated);
        assert_eq!(role(&t, "swout2", "s2-v1"), Role::Designated);
        let bal1 = t.port("vswout1", "v1-bal1").unwrap();
        assert_eq!(bal1.root_path_cost, 200);
    }

    // The receiving side's cost counts, not the sender's: making swout2's side of v1s2
    // expensive changes nothing.
    #[test]
    fn lab_sender_cost_irrelevant() {
        let mut topo = lab();
        topo.ports
            .iter_mut()
            .find(|p| p.name == "s2-v1")
            .unwrap()
            .cost = 1000;
        assert_eq!(
            non_forwarding(&expected_tree(&topo)),
            non_forwarding(&expected_tree(&lab()))
        );
    }

    // (4) Two parallel links: the tie on cost and sender bridge is broken by the sender's
    // port id, then by the receiver's.
    #[test]
    fn parallel_links_sender_port_tiebreak() {
        let a = id(0x8000, 1);
        let b = id(0x8000, 2);
        // A's port 1 faces B's port 2 and vice versa: the sender port id decides, so B's
        // root port is its port 2 (facing A's port 1), even though its own id is higher.
        let topo = Topology {
            bridges: vec![bridge("a", a), bridge("b", b)],
            ports: vec![
                port("a", "a1", 1, 19, "x"),
                port("a", "a2", 2, 19, "y"),
                port("b", "b2", 2, 19, "x"),
                port("b", "b1", 1, 19, "y"),
            ],
        };
        let t = expected_tree(&topo);
        check_states(&t);
        assert_eq!(root_port_of(&t, "b"), Some("b2"));
        assert_eq!(non_forwarding(&t), nf(&[("b", "b1", Role::Alternate)]));
        assert_eq!(t.port("b", "b1").unwrap().designated_bridge, Some(a));

        // Straight wiring: the higher port id on B is the Alternate.
        let straight = Topology {
            bridges: topo.bridges.clone(),
            ports: vec![
                port("a", "a1", 1, 19, "x"),
                port("a", "a2", 2, 19, "y"),
                port("b", "b1", 1, 19, "x"),
                port("b", "b2", 2, 19, "y"),
            ],
        };
        let t = expected_tree(&straight);
        assert_eq!(root_port_of(&t, "b"), Some("b1"));
        assert_eq!(straight.ports[3].port_id(), 0x8002);
        assert_eq!(non_forwarding(&t), nf(&[("b", "b2", Role::Alternate)]));

        // A lower port priority on A's second port makes it the better sender.
        let mut prio = straight.clone();
        prio.ports[1].priority = 16;
        let t = expected_tree(&prio);
        assert_eq!(root_port_of(&t, "b"), Some("b2"));
        assert_eq!(non_forwarding(&t), nf(&[("b", "b1", Role::Alternate)]));

        // A cheaper port wins before any id is looked at.
        let mut cheap = straight.clone();
        cheap.ports[3].cost = 4;
        let t = expected_tree(&cheap);
        assert_eq!(root_port_of(&t, "b"), Some("b2"));
        assert_eq!(t.bridge("b").unwrap().root_path_cost, 4);
    }

    // Same sender port (a shared segment): the receiving port's own id decides.
    #[test]
    fn shared_segment_receiver_port_tiebreak() {
        let topo = Topology {
            bridges: vec![bridge("a", id(0x8000, 1)), bridge("b", id(0x8000, 2))],
            ports: vec![
                port("a", "a1", 1, 19, "hub"),
                port("b", "b7", 7, 19, "hub"),
                port("b", "b3", 3, 19, "hub"),
            ],
        };
        let t = expected_tree(&topo);
        check_states(&t);
        assert_eq!(root_port_of(&t, "b"), Some("b3"));
        // The designated port of the hub is A's, on another bridge: Alternate, not Backup.
        assert_eq!(non_forwarding(&t), nf(&[("b", "b7", Role::Alternate)]));
    }

    // (5) Two ports of one bridge on one shared segment, nobody else there: the lower port id
    // is Designated, the other Backup.
    #[test]
    fn backup_port() {
        let a = id(0x8000, 1);
        let b = id(0x8000, 2);
        let topo = Topology {
            bridges: vec![bridge("a", a), bridge("b", b)],
            ports: vec![
                port("a", "a-b", 1, 19, "ab"),
                port("b", "b-a", 1, 19, "ab"),
                port("b", "b-hub2", 2, 19, "hub"),
                port("b", "b-hub3", 3, 19, "hub"),
            ],
        };
        let t = expected_tree(&topo);
        check_states(&t);
        assert_eq!(role(&t, "b", "b-hub2"), Role::Designated);
        assert_eq!(non_forwarding(&t), nf(&[("b", "b-hub3", Role::Backup)]));
        let backup = t.port("b", "b-hub3").unwrap();
        assert_eq!(backup.designated_bridge, Some(b));
        assert_eq!(backup.root_path_cost, 19);

        // Port priority overrides port number for who is designated.
        let mut prio = topo.clone();
        prio.ports[3].priority = 8;
        let t = expected_tree(&prio);
        assert_eq!(role(&t, "b", "b-hub3"), Role::Designated);
        assert_eq!(non_forwarding(&t), nf(&[("b", "b-hub2", Role::Backup)]));

        // On the root bridge itself.
        let topo = Topology {
            bridges: vec![bridge("a", a)],
            ports: vec![port("a", "p1", 1, 19, "hub"), port("a", "p2", 2, 19, "hub")],
        };
        let t = expected_tree(&topo);
        assert_eq!(role(&t, "a", "p1"), Role::Designated);
        assert_eq!(non_forwarding(&t), nf(&[("a", "p2", Role::Backup)]));
    }

    // (6) Every single link failure in the lab (a veth pair losing one end takes the other
    // end's carrier down too, so both ports go down).
    #[test]
    fn lab_single_link_failures() {
        let alt = Role::Alternate;
        let dis = Role::Disabled;
        /// (failed segment, expected root ports, expected non-forwarding ports)
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, Option<&'a str>)>,
            Vec<(&'a str, &'a str, Role)>,
        );
        let cases: Vec<Case> = vec![
            (
                // swout1 reaches the root through vswout1 (lower id than vswout2 at equal
                // cost 200); vswout2 keeps designated on v2s1 (cost 100 < 200).
                "s1s2",
                vec![
                    ("swout1", Some("s1-v1")),
                    ("vswout1", Some("v1-s2")),
                    ("vswout2", Some("v2-s2")),
                ],
                vec![
                    ("swout1", "s1-s2", dis),
                    ("swout2", "s2-s1", dis),
                    ("swout1", "s1-v2", alt),
                ],
            ),
            (
                "v1s2",
                vec![
                    ("swout1", Some("s1-s2")),
                    ("vswout1", Some("v1-s1")),
                    ("vswout2", Some("v2-s2")),
                ],
                vec![
                    ("swout2", "s2-v1", dis),
                    ("vswout1", "v1-s2", dis),
                    ("vswout2", "v2-s1", alt),
                ],
            ),
            (
                "v1s1",
                vec![
                    ("swout1", Some("s1-s2")),
                    ("vswout1", Some("v1-s2")),
                    ("vswout2", Some("v2-s2")),
                ],
                vec![
                    ("swout1", "s1-v1", dis),
                    ("vswout1", "v1-s1", dis),
                    ("vswout2", "v2-s1", alt),
                ],
            ),
            (
                "v2s1",
                vec![
                    ("swout1", Some("s1-s2")),
                    ("vswout1", Some("v1-s2")),
                    ("vswout2", Some("v2-s2")),
                ],
                vec![
                    ("swout1", "s1-v2", dis),
                    ("vswout2", "v2-s1", dis),
                    ("vswout1", "v1-s1", alt),
                ],
            ),
            (
                "v2s2",
                vec![
                    ("swout1", Some("s1-s2")),
                    ("vswout1", Some("v1-s2")),
                    ("vswout2", Some("v2-s1")),
                ],
                vec![
                    ("swout2", "s2-v2", dis),
                    ("vswout2", "v2-s2", dis),
                    ("vswout1", "v1-s1", alt),
                ],
            ),
        ];
        for (seg, root_ports, blocked) in cases {
            let mut topo = lab();
            set_port_down(&mut topo, seg);
            let t = expected_tree(&topo);
            check_states(&t);
            for b in ["swout1", "swout2", "vswout1", "vswout2"] {
                assert_eq!(root_of(&t, b), SWOUT2, "{seg}: {b}");
            }
            assert_eq!(root_port_of(&t, "swout2"), None);
            for (b, rp) in root_ports {
                assert_eq!(root_port_of(&t, b), rp, "{seg}: root port of {b}");
            }
            assert_eq!(non_forwarding(&t), nf(&blocked), "{seg}");
        }

        // The s1s2 failure in detail: swout1 is 200 away, heard via vswout1.
        let mut topo = lab();
        set_port_down(&mut topo, "s1s2");
        let t = expected_tree(&topo);
        assert_eq!(t.bridge("swout1").unwrap().root_path_cost, 200);
        let rp = t.port("swout1", "s1-v1").unwrap();
        assert_eq!(
            (rp.designated_bridge, rp.root_path_cost),
            (Some(VSWOUT1), 100)
        );
        assert_eq!(role(&t, "vswout1", "v1-s1"), Role::Designated);
        assert_eq!(role(&t, "vswout2", "v2-s1"), Role::Designated);
        assert_eq!(role(&t, "swout1", "s1-user1"), Role::Designated);
        assert_eq!(t.port("swout1", "s1-user1").unwrap().root_path_cost, 200);
    }

    // (6b) The root bridge goes down: swout1 (8192) takes over. The vswouts' ports towards
    // swout2 are still up but alone on their segment, hence Designated.
    #[test]
    fn lab_root_bridge_down() {
        let mut topo = lab();
        topo.bridges[1].up = false;
        let t = expected_tree(&topo);
        check_states(&t);
        for b in ["swout1", "vswout1", "vswout2"] {
            assert_eq!(root_of(&t, b), SWOUT1, "{b}");
        }
        let sw2 = t.bridge("swout2").unwrap();
        assert_eq!((sw2.root, sw2.root_port.as_deref()), (SWOUT2, None));
        assert_eq!(root_port_of(&t, "swout1"), None);
        assert_eq!(root_port_of(&t, "vswout1"), Some("v1-s1"));
        assert_eq!(root_port_of(&t, "vswout2"), Some("v2-s1"));
        assert_eq!(
            non_forwarding(&t),
            nf(&[
                ("swout2", "s2-s1", Role::Disabled),
                ("swout2", "s2-v1", Role::Disabled),
                ("swout2", "s2-v2", Role::Disabled),
                ("swout2", "s2-user2", Role::Disabled),
            ])
        );
        let lonely = t.port("vswout1", "v1-s2").unwrap();
        assert_eq!(lonely.role, Role::Designated);
        assert_eq!(lonely.designated_bridge, Some(VSWOUT1));
        assert_eq!(lonely.root_path_cost, 100);
        assert_eq!(t.port("swout2", "s2-s1").unwrap().designated_bridge, None);
        assert_eq!(role(&t, "swout1", "s1-s2"), Role::Designated);
    }

    // (7) Partition: swout2 loses all three uplinks and stays alone as its own root; the
    // rest elects swout1.
    #[test]
    fn lab_partition() {
        let mut topo = lab();
        for seg in ["s1s2", "v1s2", "v2s2"] {
            set_port_down(&mut topo, seg);
        }
        let t = expected_tree(&topo);
        check_states(&t);
        assert_eq!(root_of(&t, "swout2"), SWOUT2);
        assert_eq!(t.bridge("swout2").unwrap().root_path_cost, 0);
        for b in ["swout1", "vswout1", "vswout2"] {
            assert_eq!(root_of(&t, b), SWOUT1, "{b}");
        }
        assert_eq!(root_port_of(&t, "vswout1"), Some("v1-s1"));
        assert_eq!(root_port_of(&t, "vswout2"), Some("v2-s1"));
        assert_eq!(role(&t, "swout2", "s2-user2"), Role::Designated);
        let disabled: Vec<_> = ["s1s2", "v1s2", "v2s2"]
            .iter()
            .flat_map(|s| topo.ports.iter().filter(move |p| p.segment == *s))
            .map(|p| (p.bridge.as_str(), p.name.as_str(), Role::Disabled))
            .collect();
        assert_eq!(non_forwarding(&t), nf(&disabled));
    }

    // Two separate triangles in one topology elect one root each.
    #[test]
    fn two_components_independent() {
        let mut topo = Topology::default();
        for (suffix, base) in [("x", 0x10u8), ("y", 0x20u8)] {
            let (a, b, c) = (
                format!("a{suffix}"),
                format!("b{suffix}"),
                format!("c{suffix}"),
            );
            topo.bridges.push(bridge(&a, id(0x8000, base + 1)));
            topo.bridges.push(bridge(&b, id(0x8000, base + 2)));
            topo.bridges.push(bridge(&c, id(0x8000, base + 3)));
            let seg = |s: &str| format!("{s}{suffix}");
            topo.ports.push(port(&a, "ab", 1, 19, &seg("ab")));
            topo.ports.push(port(&a, "ac", 2, 19, &seg("ac")));
            topo.ports.push(port(&b, "ba", 1, 19, &seg("ab")));
            topo.ports.push(port(&b, "bc", 2, 19, &seg("bc")));
            topo.ports.push(port(&c, "ca", 1, 19, &seg("ac")));
            topo.ports.push(port(&c, "cb", 2, 19, &seg("bc")));
        }
        let t = expected_tree(&topo);
        assert_eq!(root_of(&t, "cx"), id(0x8000, 0x11));
        assert_eq!(root_of(&t, "cy"), id(0x8000, 0x21));
        assert_eq!(
            non_forwarding(&t),
            nf(&[("cx", "cb", Role::Alternate), ("cy", "cb", Role::Alternate)])
        );
    }

    // A non-STP bridge: its ports forward as Designated, and since it floods BPDUs it joins
    // the segments around it, so the STP bridges still break the loop through it.
    #[test]
    fn non_stp_bridge_is_a_hub_for_bpdus() {
        let a = id(0x8000, 1);
        let b = id(0x8000, 2);
        let h = id(0x8000, 0);
        let mut hub = bridge("h", h);
        hub.stp = false;
        let topo = Topology {
            bridges: vec![bridge("a", a), bridge("b", b), hub],
            ports: vec![
                port("a", "a-b", 1, 19, "ab"),
                port("a", "a-h", 2, 19, "ah"),
                port("b", "b-a", 1, 19, "ab"),
                port("b", "b-h", 2, 100, "bh"),
                port("h", "h-a", 1, 19, "ah"),
                port("h", "h-b", 2, 19, "bh"),
            ],
        };
        let t = expected_tree(&topo);
        check_states(&t);
        // h has the lowest id but does not run STP: a is root.
        assert_eq!(root_of(&t, "b"), a);
        assert_eq!(root_of(&t, "h"), h);
        assert_eq!(root_port_of(&t, "b"), Some("b-a"));
        assert_eq!(non_forwarding(&t), nf(&[("b", "b-h", Role::Alternate)]));
        let hp = t.port("h", "h-b").unwrap();
        assert_eq!(
            (hp.role, hp.designated_bridge, hp.root_path_cost),
            (Role::Designated, Some(h), 0)
        );
        // b hears a's BPDUs through h: a's port is designated on the merged segment.
        assert_eq!(t.port("b", "b-h").unwrap().designated_bridge, Some(a));

        // With h's port towards b down, the segments are separate again.
        let mut cut = topo.clone();
        cut.ports[5].up = false;
        let t = expected_tree(&cut);
        assert_eq!(role(&t, "b", "b-h"), Role::Designated);
        assert_eq!(non_forwarding(&t), nf(&[("h", "h-b", Role::Disabled)]));
    }

    #[test]
    fn disabled_cases() {
        let mut down = bridge("down", id(0x1000, 9));
        down.up = false;
        let topo = Topology {
            bridges: vec![bridge("a", id(0x8000, 1)), down],
            ports: vec![
                port("a", "up", 1, 19, "s1"),
                PortSpec {
                    up: false,
                    ..port("a", "off", 2, 19, "s2")
                },
                port("down", "d1", 1, 19, "s1"),
                port("ghost", "g1", 1, 19, "s1"),
            ],
        };
        let t = expected_tree(&topo);
        check_states(&t);
        assert_eq!(t.ports.len(), 4);
        // The down bridge has a better id but takes no part.
        assert_eq!(root_of(&t, "a"), id(0x8000, 1));
        assert_eq!(role(&t, "a", "up"), Role::Designated);
        for (b, p) in [("a", "off"), ("down", "d1"), ("ghost", "g1")] {
            let e = t.port(b, p).unwrap();
            assert_eq!(
                (e.role, e.designated_bridge),
                (Role::Disabled, None),
                "{b}/{p}"
            );
        }
        assert_eq!(t.bridge("down").unwrap().root, id(0x1000, 9));
    }

    #[test]
    fn zero_cost_treated_as_one() {
        let topo = Topology {
            bridges: vec![bridge("a", id(0x8000, 1)), bridge("b", id(0x8000, 2))],
            ports: vec![port("a", "a1", 1, 0, "x"), port("b", "b1", 1, 0, "x")],
        };
        let t = expected_tree(&topo);
        assert_eq!(t.bridge("b").unwrap().root_path_cost, 1);
    }

    #[test]
    fn port_ids() {
        assert_eq!(make_port_id(32, 1), 0x8001);
        assert_eq!(make_port_id(0, 0x3ff), 0x03ff);
        assert_eq!(make_port_id(63, 0x400 | 5), 0xfc05);
        assert_eq!(make_port_id(64 + 1, 2), make_port_id(1, 2));
    }

    // (8) Role derivation from kernel data.
    #[test]
    fn derive_role_examples() {
        let me = id(0x8000, 2);
        let other = id(0x1000, 1);
        let br = KernelBridge {
            name: "b".into(),
            id: me,
            root: other,
            root_port_no: 1,
            root_path_cost: 100,
            stp: true,
        };
        let kp = |port_no: u16, state, dbridge, dport| KernelPort {
            name: format!("p{port_no}"),
            port_no,
            port_id: make_port_id(32, port_no),
            state,
            designated_bridge: dbridge,
            designated_port: dport,
            designated_root: other,
            designated_cost: 0,
        };
        use PortState::*;
        assert_eq!(
            derive_role(&br, &kp(1, Forwarding, other, 0x8001)),
            Role::Root
        );
        assert_eq!(
            derive_role(&br, &kp(2, Forwarding, me, 0x8002)),
            Role::Designated
        );
        assert_eq!(
            derive_role(&br, &kp(2, Learning, me, 0x8002)),
            Role::Designated
        );
        assert_eq!(derive_role(&br, &kp(3, Blocking, me, 0x8002)), Role::Backup);
        assert_eq!(
            derive_role(&br, &kp(4, Blocking, other, 0x8003)),
            Role::Alternate
        );
        assert_eq!(
            derive_role(&br, &kp(1, Disabled, other, 0x8001)),
            Role::Disabled
        );
        // Root bridge: no root port; port_no is never 0 but root_port_no 0 must not match it.
        let root = KernelBridge {
            root_port_no: 0,
            root: me,
            root_path_cost: 0,
            ..br.clone()
        };
        assert_eq!(
            derive_role(&root, &kp(0, Forwarding, me, make_port_id(32, 0))),
            Role::Designated
        );
        // Non-STP bridge.
        let nostp = KernelBridge {
            stp: false,
            ..br.clone()
        };
        assert_eq!(
            derive_role(&nostp, &kp(4, Forwarding, other, 0x8003)),
            Role::Designated
        );
        assert_eq!(
            derive_role(&nostp, &kp(4, Disabled, me, 0x8004)),
            Role::Disabled
        );
    }

    // Theory and derivation agree: feed expected_tree's answer back as "kernel data".
    #[test]
    fn derive_role_agrees_with_theory() {
        let topo = lab();
        let t = expected_tree(&topo);
        for (spec, exp) in topo.ports.iter().zip(&t.ports) {
            let b = topo.bridges.iter().find(|b| b.name == spec.bridge).unwrap();
            let be = t.bridge(&b.name).unwrap();
            let root_port_no = be
                .root_port
                .as_ref()
                .map(|rp| {
                    topo.ports
                        .iter()
                        .find(|p| p.bridge == b.name && &p.name == rp)
                        .unwrap()
                        .port_no
                })
                .unwrap_or(0);
            let dbridge = exp.designated_bridge.unwrap();
            // The designated port on the segment.
            let dport = topo
                .ports
                .iter()
                .zip(&t.ports)
                .find(|(p, e)| {
                    p.segment == spec.segment
                        && e.role == Role::Designated
                        && topo
                            .bridges
                            .iter()
                            .any(|x| x.name == p.bridge && x.id == dbridge)
                })
                .unwrap()
                .0
                .port_id();
            let kb = KernelBridge {
                name: b.name.clone(),
                id: b.id,
                root: be.root,
                root_port_no,
                root_path_cost: be.root_path_cost,
                stp: true,
            };
            let kp = KernelPort {
                name: spec.name.clone(),
                port_no: spec.port_no,
                port_id: spec.port_id(),
                state: exp.state,
                designated_bridge: dbridge,
                designated_port: dport,
                designated_root: be.root,
                designated_cost: exp.root_path_cost,
            };
            assert_eq!(
                derive_role(&kb, &kp),
                exp.role,
                "{}/{}",
                spec.bridge,
                spec.name
            );
        }
    }

    // (9) Bridge id formatting and parsing.
    #[test]
    fn bridge_id_format_parse() {
        let b = BridgeId {
            priority: 0x8000,
            mac: [0xaa, 0xbb, 0xcc, 0x0d, 0xee, 0x0f],
        };
        assert_eq!(b.to_kernel_string(), "8000.aabbcc0dee0f");
        assert_eq!(b.to_string(), "8000.aabbcc0dee0f");
        assert_eq!(
            BridgeId {
                priority: 0,
                mac: [0; 6]
            }
            .to_string(),
            "0000.000000000000"
        );
        assert_eq!(parse_kernel_bridge_id("8000.aabbcc0dee0f"), Some(b));
        assert_eq!(parse_kernel_bridge_id("8000.AABBCC0DEE0F\n"), Some(b));
        assert_eq!(parse_kernel_bridge_id("8000.aa:bb:cc:d:ee:f"), Some(b));
        assert_eq!(parse_kernel_bridge_id("8000.aa:bb:cc:0d:ee:0f"), Some(b));
        assert_eq!(
            parse_kernel_bridge_id("1000.020000000011"),
            Some(BridgeId {
                priority: 4096,
                mac: [2, 0, 0, 0, 0, 0x11]
            })
        );
        for bad in [
            "",
            "8000",
            "8000.",
            "800.aabbccddeeff",
            "08000.aabbccddeeff",
            "8000.aabbccddeef",
            "8000.aabbccddeeff0",
            "8000.aabbccddeegg",
            "+800.aabbccddeeff",
            "8000.+abbccddeeff",
            "8000.aa:bb:cc:dd:ee",
            "8000.aa:bb:cc:dd:ee:ff:00",
            "8000.aa:bb:cc:dd:ee:+f",
            "8000.aa:bb::dd:ee:ff",
            "8000.aa:bb:ccc:dd:ee:ff",
        ] {
            assert_eq!(parse_kernel_bridge_id(bad), None, "{bad:?}");
        }
        for x in [b, SWOUT1, SWOUT2, VSWOUT1] {
            assert_eq!(parse_kernel_bridge_id(&x.to_kernel_string()), Some(x));
        }
        // Ordering is priority first, then MAC, like the kernel's memcmp.
        assert!(SWOUT2 < SWOUT1);
        assert!(id(0x8000, 1) < id(0x8000, 2));
        assert!(id(0x7fff, 0xff) < id(0x8000, 0));
    }

    /// Independent cross-check: a direct port of the kernel's event-driven 802.1D code
    /// (`br_stp.c`: `br_supersedes_port_info`, `br_root_selection`,
    /// `br_designated_port_selection`), run from a cold start until no BPDU changes anything.
    /// Non-STP bridges flood BPDUs to their other up ports (`br_handle_frame`).
    mod kernel_sim {
        use super::super::*;

        #[derive(Clone, Copy)]
        struct PortInfo {
            root: BridgeId,
            cost: u32,
            bridge: BridgeId,
            port: u16,
        }

        pub struct Outcome {
            pub bridges: Vec<KernelBridge>,
            /// `None` for ports that take no part.
            pub ports: Vec<Option<KernelPort>>,
        }

        pub fn run(topo: &Topology) -> Outcome {
            let nb = topo.bridges.len();
            let bidx = |name: &str| topo.bridges.iter().position(|b| b.name == name);
            let owner: Vec<Option<usize>> = topo.ports.iter().map(|p| bidx(&p.bridge)).collect();
            let live = |i: usize| {
                let p = &topo.ports[i];
                owner[i].is_some_and(|b| topo.bridges[b].up && topo.bridges[b].stp) && p.up
            };
            let hub_port = |i: usize| {
                let p = &topo.ports[i];
                owner[i].is_some_and(|b| topo.bridges[b].up && !topo.bridges[b].stp) && p.up
            };
            // Ports a frame sent onto `seg` reaches, flooding through non-STP bridges.
            let reach = |seg: &str| -> Vec<usize> {
                let mut segs = vec![seg.to_string()];
                let mut hubs_done = vec![false; nb];
                let mut k = 0;
                while k < segs.len() {
                    let s = segs[k].clone();
                    for i in 0..topo.ports.len() {
                        if topo.ports[i].segment == s && hub_port(i) {
                            let h = owner[i].unwrap();
                            if !hubs_done[h] {
                                hubs_done[h] = true;
                                for (j, pj) in topo.ports.iter().enumerate() {
                                    if owner[j] == Some(h)
                                        && hub_port(j)
                                        && !segs.contains(&pj.segment)
                                    {
                                        segs.push(pj.segment.clone());
                                    }
                                }
                            }
                        }
                    }
                    k += 1;
                }
                (0..topo.ports.len())
                    .filter(|&i| live(i) && segs.contains(&topo.ports[i].segment))
                    .collect()
            };

            let id = |b: usize| topo.bridges[b].id;
            let pid = |i: usize| topo.ports[i].port_id();
            let cost = |i: usize| topo.ports[i].cost;
            let mut broot: Vec<BridgeId> = (0..nb).map(id).collect();
            let mut brpc = vec![0u32; nb];
            let mut brp: Vec<Option<usize>> = vec![None; nb];
            let mut pinfo: Vec<PortInfo> = (0..topo.ports.len())
                .map(|i| {
                    let b = owner[i].unwrap_or(0);
                    PortInfo {
                        root: topo.bridges.get(b).map(|x| x.id).unwrap_or(BridgeId {
                            priority: 0,
                            mac: [0; 6],
                        }),
                        cost: 0,
                        bridge: topo.bridges.get(b).map(|x| x.id).unwrap_or(BridgeId {
                            priority: 0,
                            mac: [0; 6],
                        }),
                        port: pid(i),
                    }
                })
                .collect();
            let ports_of = |b: usize| -> Vec<usize> {
                (0..topo.ports.len())
                    .filter(|&i| owner[i] == Some(b) && live(i))
                    .collect()
            };
            let is_designated = |pinfo: &[PortInfo], i: usize| {
                pinfo[i].bridge == id(owner[i].unwrap()) && pinfo[i].port == pid(i)
            };

            let mut changed = true;
            let mut rounds = 0;
            while changed {
                changed = false;
                rounds += 1;
                assert!(rounds < 1000, "kernel simulation does not converge");
                for tx in (0..topo.ports.len()).filter(|&i| live(i)) {
                    if !is_designated(&pinfo, tx) {
                        continue;
                    }
                    let tb = owner[tx].unwrap();
                    let bpdu = PortInfo {
                        root: broot[tb],
                        cost: brpc[tb],
                        bridge: id(tb),
                        port: pid(tx),
                    };
                    for rx in reach(&topo.ports[tx].segment) {
                        if rx == tx {
                            continue;
                        }
                        let b = owner[rx].unwrap();
                        let cur = pinfo[rx];
                        // br_supersedes_port_info
                        let sup = (bpdu.root, bpdu.cost, bpdu.bridge)
                            < (cur.root, cur.cost, cur.bridge)
                            || ((bpdu.root, bpdu.cost, bpdu.bridge)
                                == (cur.root, cur.cost, cur.bridge)
                                && (bpdu.bridge != id(b) || bpdu.port <= cur.port));
                        if !sup {
                            continue;
                        }
                        if cur.root != bpdu.root
                            || cur.cost != bpdu.cost
                            || cur.bridge != bpdu.bridge
                            || cur.port != bpdu.port
                        {
                            changed = true;
                        }
                        pinfo[rx] = bpdu;
                        // br_configuration_update: br_root_selection ...
                        let mut rp: Option<usize> = None;
                        for p in ports_of(b) {
                            if is_designated(&pinfo, p) || id(b) <= pinfo[p].root {
                                continue;
                            }
                            let key = |q: usize| {
                                (
                                    pinfo[q].root,
                                    pinfo[q].cost + cost(q),
                                    pinfo[q].bridge,
                                    pinfo[q].port,
                                    pid(q),
                                )
                            };
                            if rp.is_none_or(|r| key(p) < key(r)) {
                                rp = Some(p);
                            }
                        }
                        brp[b] = rp;
                        match rp {
                            None => {
                                broot[b] = id(b);
                                brpc[b] = 0;
                            }
                            Some(r) => {
                                broot[b] = pinfo[r].root;
                                brpc[b] = pinfo[r].cost + cost(r);
                            }
                        }
                        // ... then br_designated_port_selection.
                        for p in ports_of(b) {
                            let i = pinfo[p];
                            let take_over = is_designated(&pinfo, p)
                                || i.root != broot[b]
                                || brpc[b] < i.cost
                                || (brpc[b] == i.cost
                                    && (id(b) < i.bridge
                                        || (id(b) == i.bridge && pid(p) < i.port)));
                            if take_over {
                                pinfo[p] = PortInfo {
                                    root: broot[b],
                                    cost: brpc[b],
                                    bridge: id(b),
                                    port: pid(p),
                                };
                            }
                        }
                    }
                }
            }

            let bridges = (0..nb)
                .map(|b| KernelBridge {
                    name: topo.bridges[b].name.clone(),
                    id: id(b),
                    root: broot[b],
                    root_port_no: brp[b].map(|p| topo.ports[p].port_no).unwrap_or(0),
                    root_path_cost: brpc[b],
                    stp: topo.bridges[b].stp,
                })
                .collect();
            let ports = (0..topo.ports.len())
                .map(|i| {
                    live(i).then(|| KernelPort {
                        name: topo.ports[i].name.clone(),
                        port_no: topo.ports[i].port_no,
                        port_id: pid(i),
                        state: PortState::Forwarding,
                        designated_bridge: pinfo[i].bridge,
                        designated_port: pinfo[i].port,
                        designated_root: pinfo[i].root,
                        designated_cost: pinfo[i].cost,
                    })
                })
                .collect();
            Outcome { bridges, ports }
        }
    }

    /// Tiny deterministic PRNG (xorshift) so the random cross-check needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())]
        }
    }

    fn random_topology(rng: &mut Rng) -> Topology {
        let nb = 2 + rng.below(6);
        let mut topo = Topology::default();
        for b in 0..nb {
            let mut spec = bridge(
                &format!("br{b}"),
                BridgeId {
                    priority: rng.pick(&[0x1000, 0x8000, 0x8000]),
                    mac: [2, 0, 0, 0, rng.below(3) as u8, b as u8],
                },
            );
            spec.up = rng.below(12) != 0;
            spec.stp = rng.below(10) != 0;
            topo.bridges.push(spec);
        }
        let mut next_no = vec![1u16; nb];
        let nseg = 1 + rng.below(2 * nb + 2);
        for s in 0..nseg {
            let members = rng.pick(&[1, 2, 2, 2, 2, 3, 4]);
            for _ in 0..members {
                let b = rng.below(nb);
                let no = next_no[b];
                next_no[b] += 1;
                topo.ports.push(PortSpec {
                    bridge: format!("br{b}"),
                    name: format!("br{b}p{no}"),
                    port_no: no,
                    priority: rng.pick(&[16, 32, 32, 32, 48]),
                    cost: rng.pick(&[1, 2, 4, 19, 100, 100]),
                    segment: format!("seg{s}"),
                    up: rng.below(10) != 0,
                });
            }
        }
        topo
    }

    #[test]
    fn random_topologies_match_kernel_simulation() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let topo = random_topology(&mut rng);
            let t = expected_tree(&topo);
            check_states(&t);
            let sim = kernel_sim::run(&topo);
            let ctx = || format!("case {case}: {topo:#?}");
            for (b, kb) in t.bridges.iter().zip(&sim.bridges) {
                let spec = topo.bridges.iter().find(|s| s.name == b.name).unwrap();
                if !(spec.stp && spec.up) {
                    continue;
                }
                assert_eq!(b.root, kb.root, "root of {} in {}", b.name, ctx());
                assert_eq!(
                    b.root_path_cost,
                    kb.root_path_cost,
                    "rpc of {} in {}",
                    b.name,
                    ctx()
                );
                let rp_no = b.root_port.as_ref().map(|rp| {
                    topo.ports
                        .iter()
                        .find(|p| p.bridge == b.name && &p.name == rp)
                        .unwrap()
                        .port_no
                });
                assert_eq!(
                    rp_no.unwrap_or(0),
                    kb.root_port_no,
                    "root port of {} in {}",
                    b.name,
                    ctx()
                );
            }
            for (i, (e, kp)) in t.ports.iter().zip(&sim.ports).enumerate() {
                let Some(kp) = kp else { continue };
                let kb = sim
                    .bridges
                    .iter()
                    .find(|b| b.name == topo.ports[i].bridge)
                    .unwrap();
                assert_eq!(
                    e.role,
                    derive_role(kb, kp),
                    "role of {}/{} in {}",
                    e.bridge,
                    e.port,
                    ctx()
                );
                assert_eq!(
                    e.designated_bridge,
                    Some(kp.designated_bridge),
                    "{}/{} in {}",
                    e.bridge,
                    e.port,
                    ctx()
                );
                assert_eq!(
                    e.root_path_cost,
                    kp.designated_cost,
                    "{}/{} in {}",
                    e.bridge,
                    e.port,
                    ctx()
                );
            }
        }
    }

    #[test]
    fn port_state_from_kernel() {
        assert_eq!(PortState::from_kernel(0), Some(PortState::Disabled));
        assert_eq!(PortState::from_kernel(3), Some(PortState::Forwarding));
        assert_eq!(PortState::from_kernel(4), Some(PortState::Blocking));
        assert_eq!(PortState::from_kernel(5), None);
    }
}
