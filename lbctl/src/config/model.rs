//! The lab description as it is written in TOML. Every struct rejects unknown fields so a
//! typo is an error, not a silently ignored setting.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A whole lab: the namespaces to create, the bridges inside them, the links between
/// bridges, the LANs (IP subnets) and the services that later run on top.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub lab: Lab,
    #[serde(default)]
    pub stp: StpDefaults,
    #[serde(default, rename = "lan")]
    pub lans: Vec<Lan>,
    #[serde(default, rename = "switch")]
    pub switches: Vec<Switch>,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
    #[serde(default, rename = "link")]
    pub links: Vec<Link>,
    #[serde(default, rename = "node")]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub vxlan: Option<Vxlan>,
    /// The balanced service (filled by the proxy issue): the VIP users reach and the
    /// servers behind it.
    #[serde(default)]
    pub service: Option<Service>,
    /// First-hop redundancy for the VIP (filled by the VRRP issue).
    #[serde(default)]
    pub vrrp: Option<Vrrp>,
    /// Real machines, each running `lbctl agent` on interfaces that already exist. A
    /// config with machines describes no lab: it has no switches, hosts, links, nodes or
    /// tunnel, and `lbctl up` refuses it.
    #[serde(default, rename = "machine")]
    pub machines: Vec<Machine>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// Lab name: every namespace is `lbctl-<name>-<node>`, pins live under
    /// `/sys/fs/bpf/lbctl/<name>/`. Lowercase letters and digits only, so one lab's
    /// prefix can never be a prefix of another lab's.
    pub name: String,
}

/// STP timers (seconds) and port defaults applied to every STP bridge unless it overrides them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StpDefaults {
    #[serde(default = "default_hello")]
    pub hello_time: u32,
    #[serde(default = "default_max_age")]
    pub max_age: u32,
    #[serde(default = "default_fwd")]
    pub forward_delay: u32,
    /// Path cost of every bridge port unless a link or interface sets its own. Set
    /// explicitly so the tree does not depend on the speed a veth happens to report.
    #[serde(default = "default_cost")]
    pub port_cost: u32,
    /// 802.1D port priority (0..=63 in the kernel's encoding).
    #[serde(default = "default_port_prio")]
    pub port_priority: u8,
    /// Who runs the spanning tree of every STP bridge unless a bridge says otherwise.
    #[serde(default)]
    pub mode: StpMode,
}

/// Who runs a bridge's spanning tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StpMode {
    /// The kernel's own 802.1D (`stp_state 1`), as the scenario asks.
    #[default]
    Kernel,
    /// RSTP (802.1D-2004 clause 17) by `lbctl stpd`: the kernel's STP off, port states set
    /// over rtnetlink and enforced by the BPF port program.
    Rstp,
}

impl StpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StpMode::Kernel => "kernel",
            StpMode::Rstp => "rstp",
        }
    }
}

fn default_hello() -> u32 {
    2
}
fn default_max_age() -> u32 {
    20
}
fn default_fwd() -> u32 {
    15
}
fn default_cost() -> u32 {
    100
}
fn default_port_prio() -> u8 {
    32
}
fn default_bridge_prio() -> u16 {
    32768
}
fn yes() -> bool {
    true
}

impl Default for StpDefaults {
    fn default() -> Self {
        StpDefaults {
            hello_time: default_hello(),
            max_age: default_max_age(),
            forward_delay: default_fwd(),
            port_cost: default_cost(),
            port_priority: default_port_prio(),
            mode: StpMode::Kernel,
        }
    }
}

/// An IP subnet and the broadcast domain that carries it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    pub name: String,
    pub subnet: Ipv4Net,
    /// MTU of every interface on this LAN (bridges, ports, node interfaces).
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// A switch: a namespace that holds one bridge of the same name.
pub type Switch = Bridge;

/// A host (hypervisor): a namespace with bridges, optionally an address on them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    #[serde(default, rename = "bridge")]
    pub bridges: Vec<Bridge>,
}

/// One kernel bridge: a switch's only bridge or one of a host's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub name: String,
    /// The LAN (subnet) this bridge carries.
    pub lan: String,
    /// The namespace's own address on this bridge (e.g. 172.16.1.150/24 on vswout1).
    #[serde(default)]
    pub address: Option<Ipv4Net>,
    #[serde(default = "yes")]
    pub stp: bool,
    /// Bridge priority (the high 16 bits of the bridge ID).
    #[serde(default = "default_bridge_prio")]
    pub priority: u16,
    /// The bridge's MAC (low 48 bits of the bridge ID), "aa:bb:cc:dd:ee:ff". Derived from
    /// lab and bridge name when absent, so the tree is reproducible.
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub hello_time: Option<u32>,
    #[serde(default)]
    pub max_age: Option<u32>,
    #[serde(default)]
    pub forward_delay: Option<u32>,
    /// This bridge's STP mode, overriding `[stp] mode` (only with `stp = true`).
    #[serde(default)]
    pub stp_mode: Option<StpMode>,
}

/// A point-to-point link between two bridges (a cable between switches).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub a: String,
    pub b: String,
    /// Port cost on both ends (a_cost / b_cost override per end).
    #[serde(default)]
    pub cost: Option<u32>,
    #[serde(default)]
    pub a_cost: Option<u32>,
    #[serde(default)]
    pub b_cost: Option<u32>,
    #[serde(default)]
    pub a_priority: Option<u8>,
    #[serde(default)]
    pub b_priority: Option<u8>,
    /// Interface names on each end; default `to-<other bridge>`.
    #[serde(default)]
    pub a_iface: Option<String>,
    #[serde(default)]
    pub b_iface: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Balancer,
    Server,
    User,
}

/// A leaf node (balancer, server, user): a namespace with interfaces plugged into bridges.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub role: Role,
    /// The host this node runs on (for grouping and fault reasoning); users have none.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, rename = "iface")]
    pub ifaces: Vec<Iface>,
    /// For servers: the built-in web server's port.
    #[serde(default)]
    pub http_port: Option<u16>,
    /// For servers: which web server runs there ("builtin" = `lbctl serve`, "apache" =
    /// Apache + PHP from Debian's apache2 and libapache2-mod-php).
    #[serde(default)]
    pub web: WebServer,
}

/// The web server a server node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebServer {
    /// `lbctl serve`, the built-in hyper server.
    #[default]
    Builtin,
    /// One Apache (prefork + mod_php) instance per server namespace.
    Apache,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Iface {
    pub name: String,
    pub bridge: String,
    #[serde(default)]
    pub address: Option<Ipv4Net>,
    /// Name of the bridge-side end; default `<node>-<iface>`.
    #[serde(default)]
    pub port_name: Option<String>,
    #[serde(default)]
    pub cost: Option<u32>,
    #[serde(default)]
    pub priority: Option<u8>,
}

/// A real host running a balancer: its name (what `lbctl agent --node` and
/// `service.balancers` call it) and the interfaces it already has, with their addresses.
/// Nothing is created for it; the agent only adds and removes the VIP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub name: String,
    #[serde(rename = "iface")]
    pub ifaces: Vec<MachineIface>,
}

/// An existing interface of a machine and its address (as `ip addr` shows it, with the
/// prefix length): the one on the VIP's subnet carries VRRP and the VIP, the one on the
/// backends' subnet is where health checks and proxied connections leave from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineIface {
    pub name: String,
    pub address: Ipv4Net,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VxlanMode {
    /// The kernel's vxlan device.
    #[default]
    Kernel,
    /// lbctl's own BPF VTEP: TC or XDP decapsulation (`Vxlan::decap`), TC encapsulation,
    /// fast forwarding both ways (`lbctl/src/datapath/vxlan/`).
    Ebpf,
}

/// Where the BPF VTEP decapsulates on the underlay ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VxlanDecap {
    /// TCX ingress (`lb_vxdtc`): for ports that deliver skbs anyway, such as the lab's veths.
    /// GSO super-packets stay whole, and frames for a local endpoint enter its namespace
    /// directly (`bpf_redirect_peer`).
    #[default]
    Tc,
    /// Native XDP (`lb_vxdec`): for NICs whose driver runs XDP before any skb exists. On a
    /// veth it makes the peer segment GSO packets first.
    Xdp,
}

/// The overlay joining the hosts' internal bridges into one broadcast domain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vxlan {
    #[serde(default = "default_vxlan_name")]
    pub device: String,
    pub vni: u32,
    #[serde(default = "default_vxlan_port")]
    pub port: u16,
    /// Data path of every endpoint that does not set its own `mode`.
    #[serde(default)]
    pub mode: VxlanMode,
    /// BPF VTEP: seconds after which a learned MAC is forgotten (its frames are flooded to
    /// every remote VTEP again), like the kernel bridge's ageing time.
    #[serde(default = "default_vxlan_ageing")]
    pub ageing_s: u32,
    /// BPF VTEP: the hook that decapsulates (`tc` or `xdp`).
    #[serde(default)]
    pub decap: VxlanDecap,
    #[serde(rename = "endpoint")]
    pub endpoints: Vec<VxlanEndpoint>,
}

impl Vxlan {
    /// The data path of one endpoint: its own `mode`, else the tunnel's.
    pub fn mode_of(&self, e: &VxlanEndpoint) -> VxlanMode {
        e.mode.unwrap_or(self.mode)
    }
}

fn default_vxlan_ageing() -> u32 {
    300
}

fn default_vxlan_name() -> String {
    "vxlan0".into()
}
fn default_vxlan_port() -> u16 {
    4789
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanEndpoint {
    pub host: String,
    /// The internal bridge the tunnel is plugged into.
    pub bridge: String,
    /// The host's underlay address (must be one of its bridge addresses).
    pub local: Ipv4Addr,
    /// This endpoint's data path, overriding `vxlan.mode` (mixed labs: ours on one host,
    /// the kernel's vxlan device on the other).
    #[serde(default)]
    pub mode: Option<VxlanMode>,
}

/// The balanced web service: what `lbctl agent` runs on each balancer. Knob names follow
/// HAProxy's where one exists (balance, cookie, inter/rise/fall, timeouts).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub vip: Ipv4Addr,
    #[serde(default = "default_service_port")]
    pub port: u16,
    /// Balancer node names (each runs `lbctl agent`).
    pub balancers: Vec<String>,
    /// Port of the agent's admin listener (Prometheus /metrics, /stats JSON).
    #[serde(default = "default_admin_port")]
    pub admin_port: u16,
    /// "roundrobin" (smooth weighted, config order) or "leastconn".
    #[serde(default)]
    pub balance: Balance,
    /// Cookie insertion for stickiness (HAProxy `cookie NAME insert`); off when absent.
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub check: Check,
    /// The servers, in round-robin order.
    #[serde(rename = "backend")]
    pub backends: Vec<Backend>,
    /// Content routing: the first matching route picks the pool; otherwise "default".
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// Proxy threads (HAProxy's `nbthread`); absent: one per CPU, as HAProxy does. Each
    /// thread runs its own event loop with its own listening sockets (SO_REUSEPORT) and its
    /// own backend connection pool; the balancing state is shared, so round robin stays
    /// exact across threads.
    #[serde(default)]
    pub nbthread: Option<usize>,
}

fn default_service_port() -> u16 {
    8000
}
fn default_admin_port() -> u16 {
    8404
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    #[default]
    Roundrobin,
    Leastconn,
}

/// Timeouts in milliseconds (HAProxy: timeout connect / http-request / server /
/// http-keep-alive / client / tunnel).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Time allowed for one TCP connect to a backend before the request is redispatched
    /// to the next up backend. Absent: automatic, 4 × the backend's smoothed connect time
    /// (measured on every connect, health checks included) clamped to 50..1000 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// How long a replayable request (idempotent, no body) waits for a response's first
    /// byte before the balancer asks its TCP stack whether the backend acknowledged it;
    /// unacknowledged, and a new connect to the backend failing too, the backend has gone
    /// silent and the request is retried on another backend. Absent: automatic, like
    /// `connect_ms` but at least 100 ms. Otherwise the request waits up to `server_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<u64>,
    /// Time allowed for a client to send a whole request head (slowloris guard): 408.
    pub http_request_ms: u64,
    /// Time allowed for a backend to start answering: 504. It is also the one deadline of
    /// a request across all its connects, redispatches and retries.
    pub server_ms: u64,
    /// Idle keep-alive time between requests on a client connection.
    pub keep_alive_ms: u64,
    /// Client inactivity while a request is in flight (HAProxy's `timeout client`): its
    /// request body stops coming (408), or it stops taking our response (closed). Below
    /// 10 s by default, so a client sending a byte every 10 s is cut.
    pub client_ms: u64,
    /// Inactivity, both ways, of an Upgrade (WebSocket) tunnel (HAProxy's `timeout
    /// tunnel`): long, since WebSockets idle legitimately.
    pub tunnel_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: None,
            first_byte_ms: None,
            http_request_ms: 5000,
            server_ms: 10000,
            keep_alive_ms: 10000,
            client_ms: 5000,
            tunnel_ms: 3_600_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request head accepted (HAProxy tune.bufsize-like): 431 above.
    pub max_header_bytes: usize,
    /// Most header fields in a request: 431 above.
    pub max_headers: usize,
    /// Concurrent client connections; more wait in the accept queue.
    pub max_conns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16384,
            max_headers: 100,
            max_conns: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    #[default]
    Http,
    Tcp,
}

/// Active health check (HAProxy defaults: inter 2s, rise 2, fall 3).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: CheckKind,
    pub method: String,
    pub path: String,
    /// Accepted status range, "200-399" or a single code "200".
    pub expect_status: String,
    pub inter_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    /// Interval while a backend is changing state (some failures but not yet `fall`,
    /// some successes but not yet `rise`), and right after live traffic marked it down
    /// (HAProxy's `fastinter`).
    pub fastinter_ms: u64,
    /// Interval while a backend is down (HAProxy's `downinter`).
    pub downinter_ms: u64,
    /// Consecutive connect failures, connect timeouts or silences on live traffic that
    /// mark a backend down at once (HAProxy's `observe layer4 error-limit N on-error
    /// mark-down`); 0 turns the observation off. 2: one lost SYN is not a dead server.
    pub error_limit: u32,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            kind: CheckKind::Http,
            method: "GET".into(),
            path: "/health".into(),
            expect_status: "200-399".into(),
            inter_ms: 2000,
            timeout_ms: 2000,
            rise: 2,
            fall: 3,
            fastinter_ms: 250,
            downinter_ms: 1000,
            error_limit: 2,
        }
    }
}

/// One server behind the balancers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// A server node of this lab (its address and http_port are used)...
    #[serde(default)]
    pub node: Option<String>,
    /// ...or an explicit address for real hosts, "10.0.0.1:80".
    #[serde(default)]
    pub address: Option<std::net::SocketAddrV4>,
    /// Name in stats and cookies; defaults to the node name or the address.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default = "default_pool")]
    pub pool: String,
}

fn default_weight() -> u32 {
    1
}
fn default_pool() -> String {
    "default".into()
}

impl Backend {
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.node.clone())
            .or_else(|| self.address.map(|a| a.to_string()))
            .unwrap_or_default()
    }
}

/// A content-routing rule: requests whose path starts with `path_prefix`, or ends with
/// one of `extensions` (without the dot), go to `pool`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub extensions: Vec<String>,
    pub pool: String,
}

/// VRRP for the service VIP between the balancers (keepalived-compatible; see
/// `crate::vrrp`). Defaults follow keepalived where it has one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vrrp {
    pub vrid: u8,
    /// v2: whole seconds only; v3: multiples of 10 ms (centiseconds).
    #[serde(default = "default_advert")]
    pub advert_int_ms: u32,
    #[serde(rename = "priority")]
    pub priorities: Vec<VrrpPriority>,
    /// 2 (RFC 3768, keepalived's default) or 3 (RFC 5798/9568).
    #[serde(
        default = "default_vrrp_version",
        deserialize_with = "deserialize_vrrp_version"
    )]
    pub version: crate::vrrp::codec::Version,
    /// A higher-priority backup takes over from a lower-priority master (keepalived's
    /// default; `nopreempt` is `false`).
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// keepalived's preempt_delay: for this long after it starts, a balancer follows a
    /// lower-priority master instead of preempting it, so a restarted agent rejoins as
    /// backup (no VIP flap while it comes up) and takes the VIP back once its health
    /// checks have had time to reach a verdict (rise × inter = 4 s by default).
    #[serde(default = "default_preempt_delay")]
    pub preempt_delay_ms: u32,
    /// Unicast instead of 224.0.0.18: adverts go to each peer (a node's own address in the
    /// list is skipped, so one list serves every balancer).
    #[serde(default)]
    pub unicast_peers: Vec<Ipv4Addr>,
    /// VRRPv3 checksum sent: "pseudo-header" (keepalived, FRR) or "rfc" (message only, as
    /// RFC 9568 words it). Both are accepted on receipt. keepalived 2.2.7 refuses "rfc".
    #[serde(default = "default_v3_checksum")]
    pub v3_checksum: String,
    /// keepalived's garp_master_delay: second burst of gratuitous ARPs after becoming master.
    #[serde(default = "default_garp_delay")]
    pub garp_delay_ms: u32,
    /// keepalived's garp_master_repeat: gratuitous ARPs per burst.
    #[serde(default = "default_garp_repeat")]
    pub garp_repeat: u32,
    /// keepalived's garp_master_refresh: periodic gratuitous ARPs while master (0 = off).
    /// Repairs hosts' ARP entries after a partition heals.
    #[serde(default = "default_garp_refresh")]
    pub garp_refresh_ms: u32,
    /// Run as `sh -c '<notify> "$@"' sh INSTANCE STATE` on every state change.
    #[serde(default)]
    pub notify: Option<String>,
    /// VRRPv2 simple-text authentication (at most 8 characters).
    #[serde(default)]
    pub auth_pass: Option<String>,
    /// Priority taken off while the balancer cannot serve (no healthy backend), like a
    /// keepalived track_script weight: 150 − 60 = 90 < 100 hands the VIP to the backup.
    #[serde(default = "default_weight_penalty")]
    pub weight_penalty: u8,
    /// The interface carrying the VIP; default: the balancer's interface on the VIP's subnet.
    #[serde(default)]
    pub interface: Option<String>,
}

fn default_advert() -> u32 {
    1000
}
fn default_vrrp_version() -> crate::vrrp::codec::Version {
    crate::vrrp::codec::Version::V2
}

/// `version` as the codec reads it, with the field's path in the refusal: toml's error
/// points at the line, but other config problems are reported as `FIELD: REASON`.
fn deserialize_vrrp_version<'de, D>(d: D) -> Result<crate::vrrp::codec::Version, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let n = u8::deserialize(d)?;
    crate::vrrp::codec::Version::try_from(n)
        .map_err(|e| serde::de::Error::custom(format!("vrrp.version: {e}")))
}
fn default_preempt_delay() -> u32 {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_v3_checksum() -> String {
    "pseudo-header".into()
}
fn default_garp_delay() -> u32 {
    5000
}
fn default_garp_refresh() -> u32 {
    2000
}

fn default_garp_repeat() -> u32 {
    5
}
fn default_weight_penalty() -> u8 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpPriority {
    pub node: String,
    pub priority: u8,
}

impl Vrrp {
    /// The VRRP instance balancer `node` runs for the service VIP.
    pub fn instance_config(
        &self,
        cfg: &Config,
        node: &str,
    ) -> anyhow::Result<crate::vrrp::VrrpConfig> {
        use anyhow::{anyhow, Context};
        let vip = cfg
            .service
            .as_ref()
            .map(|s| s.vip)
            .context("[vrrp] needs [service] (its vip)")?;
        let ifaces = cfg
            .addressed_ifaces(node)
            .ok_or_else(|| anyhow!("unknown node {node:?}"))?;
        let priority = self
            .priorities
            .iter()
            .find(|p| p.node == node)
            .map(|p| p.priority)
            .ok_or_else(|| anyhow!("vrrp.priority has no entry for {node:?}"))?;
        let interface = match &self.interface {
            Some(i) => i.clone(),
            None => ifaces
                .iter()
                .find(|(_, a)| a.contains(&vip))
                .map(|(name, _)| name.to_string())
                .ok_or_else(|| anyhow!("{node} has no interface on the subnet of VIP {vip}"))?,
        };
        let own: Vec<Ipv4Addr> = ifaces.iter().map(|(_, a)| a.addr()).collect();
        Ok(crate::vrrp::VrrpConfig {
            instance: format!("vrid{}", self.vrid),
            interface,
            vrid: self.vrid,
            priority,
            version: self.version,
            advert_int_ms: self.advert_int_ms,
            vips: vec![vip],
            preempt: self.preempt,
            preempt_delay_ms: self.preempt_delay_ms,
            unicast_peers: self
                .unicast_peers
                .iter()
                .copied()
                .filter(|p| !own.contains(p))
                .collect(),
            v3_checksum_pseudo_header: self.v3_checksum != "rfc",
            garp_delay_ms: self.garp_delay_ms,
            garp_repeat: self.garp_repeat,
            garp_refresh_ms: self.garp_refresh_ms,
            notify: self.notify.clone(),
            auth_pass: self.auth_pass.clone(),
            weight_penalty: self.weight_penalty,
        })
    }
}

#[cfg(test)]
mod vrrp_config_tests {
    use crate::config::Config;

    const DEFAULT: &str = include_str!("../../../configs/default.toml");

    /// The default config with `extra` lines in [vrrp] (its `version = 2` line dropped
    /// when `extra` sets the version).
    fn with(extra: &str) -> Result<Config, String> {
        let base = if extra.contains("version =") {
            DEFAULT.replacen("\nversion = 2\n", "\n", 1)
        } else {
            DEFAULT.to_string()
        };
        let text = base.replacen("[vrrp]\n", &format!("[vrrp]\n{extra}\n"), 1);
        Config::from_toml(&text, "t.toml").map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn default_scenario_instances() {
        let cfg = with("").unwrap();
        let v = cfg.vrrp.as_ref().unwrap();
        let b1 = v.instance_config(&cfg, "bal1").unwrap();
        assert_eq!(
            (b1.interface.as_str(), b1.priority, b1.version, b1.vrid),
            ("eth0", 150, crate::vrrp::codec::Version::V2, 12)
        );
        assert_eq!(
            b1.vips,
            vec!["172.16.1.254".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert!(b1.preempt && b1.v3_checksum_pseudo_header);
        assert_eq!(
            (b1.garp_delay_ms, b1.garp_repeat, b1.weight_penalty),
            (5000, 5, 60)
        );
        let b2 = v.instance_config(&cfg, "bal2").unwrap();
        assert_eq!(b2.priority, 100);
        assert!(
            b1.priority - b1.weight_penalty < b2.priority,
            "an unhealthy bal1 gives way"
        );
        crate::vrrp::validate(&b1).unwrap();
    }

    #[test]
    fn unicast_peers_skip_own_address() {
        let cfg = with("unicast_peers = [\"172.16.1.250\", \"172.16.1.251\"]").unwrap();
        let b1 = cfg
            .vrrp
            .as_ref()
            .unwrap()
            .instance_config(&cfg, "bal1")
            .unwrap();
        assert_eq!(
            b1.unicast_peers,
            vec!["172.16.1.251".parse::<std::net::Ipv4Addr>().unwrap()]
        );
    }

    #[test]
    fn version_is_2_or_3_and_a_wrong_one_names_the_field() {
        use crate::vrrp::codec::Version;
        let v = |cfg: Config| cfg.vrrp.unwrap().version;
        assert_eq!(v(with("").unwrap()), Version::V2);
        assert_eq!(v(with("version = 3").unwrap()), Version::V3);
        let e = with("version = 4").unwrap_err();
        assert!(
            e.contains("t.toml")
                && e.contains("version = 4")
                && e.contains("vrrp.version: 4: use 2 or 3"),
            "{e}"
        );
        // Written back as the number.
        let text = toml::to_string(&with("version = 3").unwrap().vrrp).unwrap();
        assert!(text.contains("version = 3\n"), "{text}");
    }

    #[test]
    fn v3_fast_adverts_accepted() {
        let text = DEFAULT.replacen("advert_int_ms = 1000", "advert_int_ms = 100", 1);
        let text = text.replacen("version = 2", "version = 3\nv3_checksum = \"rfc\"", 1);
        let cfg = Config::from_toml(&text, "t.toml").unwrap();
        let b2 = cfg
            .vrrp
            .as_ref()
            .unwrap()
            .instance_config(&cfg, "bal2")
            .unwrap();
        assert!(!b2.v3_checksum_pseudo_header);
        assert_eq!(b2.advert_int_ms, 100);
    }
}
