//! `lbctl up`: builds the lab of a plan, starts its daemons, attaches the BPF observer,
//! waits until STP has settled and the servers answer. On any error the half-built lab
//! is torn down again, so a failed `up` leaves nothing behind.

use super::inspect;
use super::netns;
use super::nl::{self, BridgeSettings};
use super::plan::{Kind, Plan, VxlanPlan};
use super::state;
use super::teardown;
use crate::config::{Config, VxlanMode};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{info_span, Instrument};

pub struct UpOptions {
    /// The lbctl executable daemons are started from.
    pub exe: PathBuf,
    /// Load and attach the BPF observation program on bridge ports.
    pub bpf: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
}

fn say(opts: &UpOptions, msg: &str) {
    if opts.progress {
        eprintln!("{msg}");
    }
}

/// Builds the whole lab. `config_text` is saved so later commands know the topology.
pub async fn up(cfg: &Config, config_text: &str, opts: &UpOptions) -> Result<Duration> {
    let t0 = Instant::now();
    let plan = Plan::new(cfg);
    let prefix = crate::config::netns_prefix(&plan.lab);
    let existing = netns::list_with_prefix(&prefix);
    if !existing.is_empty() {
        bail!(
            "lab {:?} is already up ({} namespaces named {prefix}*); run `lbctl down --lab {}` first",
            plan.lab,
            existing.len(),
            plan.lab
        );
    }
    if !opts.bpf {
        if let Some(b) = plan.rstp_bridges().next() {
            bail!(
                "bridge {} runs RSTP (stp_mode \"rstp\"), which needs the BPF port program to \
                 enforce its port states: drop --no-bpf, or use --stp kernel",
                b.name
            );
        }
    }
    if opts.bpf && !Path::new("/sys/fs/bpf").join(".").exists() {
        bail!("/sys/fs/bpf is missing: run scripts/bootstrap.sh (it mounts bpffs)");
    }
    state::save_config(&plan.lab, config_text)?;
    let res = build(cfg, &plan, opts, t0).await;
    if let Err(e) = res {
        say(opts, "  build failed; removing what was created");
        let _ = teardown::down(&plan.lab, false);
        return Err(e);
    }
    Ok(t0.elapsed())
}

/// One rtnetlink handle per namespace, by node name.
type Handles = std::collections::HashMap<String, rtnetlink::Handle>;

/// The handle of a planned node's namespace.
fn handle<'a>(handles: &'a Handles, node: &str) -> &'a rtnetlink::Handle {
    handles.get(node).expect("handle for every planned node")
}

async fn build(cfg: &Config, plan: &Plan, opts: &UpOptions, t0: Instant) -> Result<()> {
    let lab = plan.lab.as_str();
    say(opts, &format!("lab {lab}: {} namespaces", plan.nodes.len()));
    let handles = create_namespaces(plan).await?;
    add_bridges(plan, &handles, opts).await?;
    skip_bridge_netfilter(plan);
    say(opts, &format!("  {} veth pairs", plan.veths.len()));
    add_veths(plan, &handles).await?;
    for x in &plan.vxlans {
        add_tunnel_port(plan, x, &handles, opts).await?;
    }
    let rstp = plan.rstp_bridges().count() > 0;
    if rstp {
        // RSTP bridges have the kernel's STP off: it would forward on every port the moment
        // they come up. The observer and its gate go on first, every RSTP port closed.
        say(
            opts,
            "  BPF observer on every bridge port; RSTP ports gated shut",
        );
        attach_observers(plan)?;
        close_rstp_gates(plan)?;
    }
    bring_up(plan, &handles).await?;
    attach_vteps(cfg, plan, &handles).await?;
    drop(handles);

    if opts.bpf && !rstp {
        say(opts, "  BPF observer (TC ingress) on every bridge port");
        attach_observers(plan)?;
    }

    say(opts, "  starting daemons");
    super::daemons::start_stpds(plan, &opts.exe)?;
    super::daemons::start_servers(cfg, plan, &opts.exe)?;

    wait_stp(cfg, plan, opts, t0).await?;
    // Nothing should have been learned on a blocked path, but flush anyway so the first
    // packets follow the settled tree.
    flush_all(plan).await?;
    prime_vtep_neighbours(plan).await?;
    wait_servers(cfg, plan, opts).await?;
    // Balancers start once the network is settled, so their first health checks see the
    // lab as it is (not the STP listening phase, which would mark far servers down).
    start_agents(cfg, plan, opts)?;
    wait_agents(cfg, plan, opts).await?;
    wait_vip(cfg, plan, opts, t0).await?;
    Ok(())
}

/// Every namespace, with its loopback up and a netlink handle into it.
async fn create_namespaces(plan: &Plan) -> Result<Handles> {
    for n in &plan.nodes {
        netns::create(&n.netns)?;
    }
    let mut handles = Handles::new();
    for n in &plan.nodes {
        let h = netns::netlink(&n.netns).await?;
        nl::set_up(&h, "lo", true).await?;
        handles.insert(n.name.clone(), h);
    }
    Ok(handles)
}

/// Every bridge with its STP settings.
async fn add_bridges(plan: &Plan, handles: &Handles, opts: &UpOptions) -> Result<()> {
    let h = |node: &str| handle(handles, node);
    say(
        opts,
        &format!(
            "  {} bridges (kernel STP where enabled)",
            plan.bridges.len()
        ),
    );
    for b in &plan.bridges {
        nl::add_bridge(
            h(&b.node),
            &BridgeSettings {
                name: &b.name,
                mac: b.mac,
                stp: b.stp,
                rstp: b.rstp,
                priority: b.priority,
                hello_time: b.hello_time,
                max_age: b.max_age,
                forward_delay: b.forward_delay,
                mtu: b.mtu,
            },
        )
        .instrument(info_span!("bridge", node = %b.node, bridge = %b.name))
        .await?;
    }
    Ok(())
}

/// Bridged frames skip iptables in every namespace that bridges (the per-bridge nf_call_*
/// options cover the bridges; the sysctl covers the namespace default).
fn skip_bridge_netfilter(plan: &Plan) {
    for n in plan
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, Kind::Switch | Kind::Host))
    {
        for key in [
            "net/bridge/bridge-nf-call-iptables",
            "net/bridge/bridge-nf-call-ip6tables",
            "net/bridge/bridge-nf-call-arptables",
        ] {
            // Absent when br_netfilter is not loaded: then nothing filters bridged frames.
            if let Err(e) = netns::sysctl(&n.netns, key, "0") {
                tracing::debug!("{}: {e:#}", n.netns);
            }
        }
    }
}

/// The interface index of the first veth end; the lab's pairs take indexes from here on,
/// two per pair, so no end shares its peer's index (see [`nl::add_veth_indexed`]). Far above
/// what a fresh namespace hands out itself (loopback, bridges, tunnels).
const VETH_INDEX_BASE: u32 = 1000;

/// Every veth pair with its MTUs, enslaved to its bridges in plan order (so port numbers
/// match the plan), with its addresses and the bridges' addresses. Tunnel ports come later.
async fn add_veths(plan: &Plan, handles: &Handles) -> Result<()> {
    let h = |node: &str| handle(handles, node);
    for (i, v) in plan.veths.iter().enumerate() {
        let bns = plan.netns(&v.b.node);
        let idx = VETH_INDEX_BASE + 2 * i as u32;
        nl::add_veth_indexed(
            h(&v.a.node),
            &v.a.ifname,
            &v.b.ifname,
            &bns,
            Some((idx, idx + 1)),
        )
        .await?;
        for end in [&v.a, &v.b] {
            if let Some(m) = end.mtu {
                nl::set_mtu(h(&end.node), &end.ifname, m).await?;
            }
        }
    }
    // Enslave in plan order so port numbers match the plan.
    for b in &plan.bridges {
        for p in &b.ports {
            if plan
                .vxlans
                .iter()
                .any(|x| x.node == b.node && x.device == p.name)
            {
                continue; // the tunnel port: add_tunnel_port enslaves it
            }
            nl::enslave(h(&b.node), &p.name, &b.name, p.cost, p.priority).await?;
        }
    }
    for v in &plan.veths {
        for end in [&v.a, &v.b] {
            if let Some(a) = end.address {
                nl::add_addr(h(&end.node), &end.ifname, a).await?;
            }
        }
    }
    for b in &plan.bridges {
        if let Some(a) = b.address {
            nl::add_addr(h(&b.node), &b.name, a).await?;
        }
    }
    Ok(())
}

/// One VXLAN endpoint's tunnel port (the kernel's vxlan device, or the BPF VTEP's veth
/// pair), enslaved to its bridge.
async fn add_tunnel_port(
    plan: &Plan,
    x: &super::plan::VxlanPlan,
    handles: &Handles,
    opts: &UpOptions,
) -> Result<()> {
    let h = |node: &str| handle(handles, node);
    let how = match x.mode {
        VxlanMode::Kernel => "kernel vxlan device".to_string(),
        VxlanMode::Ebpf => format!(
            "BPF VTEP: XDP decap on {}'s links, TC encap on {}",
            x.underlay_bridge, x.device
        ),
    };
    say(
        opts,
        &format!("  VXLAN {} (VNI {}, UDP {}): {how}", x.node, x.vni, x.port),
    );
    match x.mode {
        VxlanMode::Kernel => {
            nl::add_vxlan(h(&x.node), &x.device, x.vni, x.port, x.local, x.mtu).await?;
            let node = std::slice::from_ref(x);
            for e in super::flood::flood_entries(node) {
                nl::append_fdb(h(&e.node), &e.device, super::flood::FLOOD_MAC, e.dst).await?;
            }
        }
        VxlanMode::Ebpf => {
            if !opts.bpf {
                bail!(
                    "the VXLAN endpoint on {} uses mode \"ebpf\", which needs BPF: drop --no-bpf",
                    x.node
                );
            }
            // The tunnel port: a veth pair in the host, one end on the internal bridge.
            nl::add_veth(h(&x.node), &x.device, &x.peer, &plan.netns(&x.node)).await?;
            nl::set_mtu(h(&x.node), &x.device, x.mtu).await?;
            nl::set_mtu(h(&x.node), &x.peer, x.mtu).await?;
        }
    }
    let b = plan.bridge(&x.bridge).expect("validated");
    let p = b
        .ports
        .iter()
        .find(|p| p.name == x.device)
        .expect("planned port");
    nl::enslave(h(&x.node), &x.device, &x.bridge, p.cost, p.priority).await?;
    if x.mode == VxlanMode::Ebpf {
        // After every planned port of the bridge, so none changes its port number.
        use crate::datapath::vxlan::headroom::{self, HeadroomPort};
        let name = headroom::port_name(&x.device);
        let port = HeadroomPort {
            bridge: &x.bridge,
            name: &name,
            vni: x.vni,
            port: x.port,
            mtu: x.mtu,
        };
        headroom::add(h(&x.node), &port)
            .await
            .with_context(|| format!("giving {}'s endpoints headroom", x.node))?;
    }
    Ok(())
}

/// Brings everything up: ports first, then bridges (STP starts when the bridge comes up
/// with its ports already in place).
async fn bring_up(plan: &Plan, handles: &Handles) -> Result<()> {
    let h = |node: &str| handle(handles, node);
    for v in &plan.veths {
        nl::set_up(h(&v.a.node), &v.a.ifname, true).await?;
        nl::set_up(h(&v.b.node), &v.b.ifname, true).await?;
    }
    for x in &plan.vxlans {
        nl::set_up(h(&x.node), &x.device, true).await?;
        if x.mode == VxlanMode::Ebpf {
            nl::set_up(h(&x.node), &x.peer, true).await?;
        }
    }
    for b in &plan.bridges {
        nl::set_up(h(&b.node), &b.name, true).await?;
    }
    Ok(())
}

/// Loads and attaches the BPF VTEP of every `ebpf` endpoint (`datapath::vxlan`): fills its
/// maps with the local endpoints (MAC -> bridge-side veth) and the remote VTEPs, turns on
/// forwarding on the tunnel port (for `bpf_fib_lookup`) and, with `decap = "xdp"`, prepares
/// what the XDP redirects need ([`prepare_xdp_decap`]).
async fn attach_vteps(cfg: &Config, plan: &Plan, handles: &Handles) -> Result<()> {
    use crate::datapath::vxlan::{attach_vtep, DecapHook, VtepSpec};
    for x in plan.vxlans.iter().filter(|x| x.mode == VxlanMode::Ebpf) {
        let host_ns = plan.netns(&x.node);
        let mut endpoints = Vec::new();
        for n in &cfg.nodes {
            for f in n.ifaces.iter().filter(|f| f.bridge == x.bridge) {
                let h = handles.get(&n.name).expect("handle for every node");
                let mac = nl::mac_of(h, &f.name).await?;
                endpoints.push((mac, f.port_name_for(&n.name)));
            }
        }
        let underlay = underlay_ports(plan, x);
        if x.decap == DecapHook::Xdp {
            prepare_xdp_decap(cfg, plan, x)?;
        }
        netns::sysctl(
            &host_ns,
            &format!("net/ipv4/conf/{}/forwarding", x.device),
            "1",
        )?;
        let spec = VtepSpec {
            local: x.local,
            vni: x.vni,
            port: x.port,
            remotes: x.remotes.clone(),
            ageing: Duration::from_secs(x.ageing_s as u64),
            tunnel_port: x.device.clone(),
            tunnel_peer: x.peer.clone(),
            underlay_ports: underlay,
            decap: x.decap,
            endpoints,
            fast: true,
        };
        let pin = state::node_pin_dir(&plan.lab, &x.node);
        netns::run_in(&host_ns, move || attach_vtep(&pin, &spec))
            .with_context(|| format!("attaching the BPF VTEP in {}", x.node))?;
    }
    Ok(())
}

/// The host's ports on its underlay bridge (where the VTEP decapsulates).
fn underlay_ports(plan: &Plan, x: &VxlanPlan) -> Vec<String> {
    let mut ports = Vec::new();
    for v in plan.veths.iter().filter(|v| v.inter_bridge) {
        for ours in [&v.a, &v.b] {
            if ours.node == x.node && ours.bridge.as_deref() == Some(x.underlay_bridge.as_str()) {
                ports.push(ours.ifname.clone());
            }
        }
    }
    ports
}

/// What XDP decapsulation on veths needs: GRO (hence NAPI) on every veth that receives
/// redirected frames (the endpoints' interfaces and the tunnel port), and TX checksum
/// offload off on the switches' ends of the XDP ports (a redirected frame loses
/// `CHECKSUM_PARTIAL`; see the module docs of `datapath::vxlan`).
fn prepare_xdp_decap(cfg: &Config, plan: &Plan, x: &VxlanPlan) -> Result<()> {
    use crate::datapath::vxlan::ethtool;
    for n in &cfg.nodes {
        for f in n.ifaces.iter().filter(|f| f.bridge == x.bridge) {
            let ifname = f.name.clone();
            netns::run_in(&plan.netns(&n.name), move || {
                ethtool::set_gro(&ifname, true)
            })
            .with_context(|| format!("enabling GRO on {}/{}", n.name, f.name))?;
        }
    }
    for v in plan.veths.iter().filter(|v| v.inter_bridge) {
        for (ours, theirs) in [(&v.a, &v.b), (&v.b, &v.a)] {
            if ours.node == x.node && ours.bridge.as_deref() == Some(x.underlay_bridge.as_str()) {
                let ifname = theirs.ifname.clone();
                netns::run_in(&plan.netns(&theirs.node), move || {
                    ethtool::set_tx_csum(&ifname, false)
                })
                .with_context(|| {
                    format!(
                        "TX checksum offload off on {}/{}",
                        theirs.node, theirs.ifname
                    )
                })?;
            }
        }
    }
    let dev = x.device.clone();
    netns::run_in(&plan.netns(&x.node), move || ethtool::set_gro(&dev, true))?;
    Ok(())
}

/// Resolves the underlay neighbours of every remote VTEP from each `ebpf` endpoint (one ping
/// each, once STP forwards), so `lb_vxenc`'s FIB lookups find their MACs from the first frame
/// (non-IPv4 frames cannot wait for a resolution; see `lb-ebpf/src/encap/replicate.rs`).
async fn prime_vtep_neighbours(plan: &Plan) -> Result<()> {
    for x in plan.vxlans.iter().filter(|x| x.mode == VxlanMode::Ebpf) {
        for r in &x.remotes {
            for _ in 0..3 {
                let mut cmd = Command::new("ping");
                cmd.args(["-c", "1", "-W", "1", "-q", &r.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                netns::command_in(&plan.netns(&x.node), &mut cmd)?;
                if cmd.status().map(|s| s.success()).unwrap_or(false) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Starts `lbctl agent` (proxy, health checks, admin) in every balancer of the service.
fn start_agents(cfg: &Config, plan: &Plan, opts: &UpOptions) -> Result<()> {
    if let Some(svc) = &cfg.service {
        for b in &svc.balancers {
            start_agent(&plan.lab, b, &opts.exe, opts.bpf)?;
        }
    }
    Ok(())
}

/// Starts balancer `node`'s agent under its supervisor (also verify's undo, should the
/// supervisor be gone).
pub fn start_agent(lab: &str, node: &str, exe: &std::path::Path, bpf: bool) -> Result<u32> {
    let mut args = vec![
        exe.display().to_string(),
        "agent".to_string(),
        "--lab".into(),
        lab.to_string(),
        "--node".into(),
        node.to_string(),
    ];
    if !bpf {
        args.push("--no-bpf".into());
    }
    super::daemons::spawn_daemon(lab, node, "agent", exe, &args)
}

/// Runs `check` on a thread inside namespace `ns` every `every` until it holds (true) or
/// `deadline` passes (false); `on_miss` runs after each failed check (progress).
async fn poll_in_ns(
    ns: &str,
    deadline: Instant,
    every: Duration,
    check: impl Fn() -> bool + Send + Clone + 'static,
    mut on_miss: impl FnMut(),
) -> Result<bool> {
    loop {
        let c = check.clone();
        if netns::run_in(ns, move || Ok(c()))? {
            return Ok(true);
        }
        on_miss();
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(every).await;
    }
}

/// With VRRP configured, waits until a user on the VIP's LAN gets a page through the VIP
/// (a master has been elected, holds the VIP and announced it), showing progress.
async fn wait_vip(cfg: &Config, plan: &Plan, opts: &UpOptions, t0: Instant) -> Result<()> {
    let (Some(svc), Some(v)) = (&cfg.service, &cfg.vrrp) else {
        return Ok(());
    };
    let Some(user) = cfg.nodes.iter().find(|n| {
        n.role == crate::config::Role::User
            && n.ifaces
                .iter()
                .any(|i| i.address.is_some_and(|a| a.contains(&svc.vip)))
    }) else {
        return Ok(());
    };
    let addr = std::net::SocketAddr::from((svc.vip, svc.port));
    let ns = plan.netns(&user.name);
    // Master_Down_Interval is 3 adverts plus skew; allow a few more.
    let limit = Duration::from_millis(4 * v.advert_int_ms as u64 + 10_000);
    let mut prog = crate::progress::Progress::new(opts.progress);
    let answered = poll_in_ns(
        &ns,
        Instant::now() + limit,
        Duration::from_millis(200),
        move || crate::agent::admin::http_get_ok(addr, "/"),
        || {
            prog.update(&format!(
                "  VRRP: waiting for a master to answer on {addr} from {}, {:4.1} s",
                user.name,
                t0.elapsed().as_secs_f32()
            ))
        },
    )
    .await?;
    if !answered {
        bail!(
            "no balancer answers on the VIP {addr} after {limit:?}; see {}",
            state::run_dir(&plan.lab).join("logs").display()
        );
    }
    prog.done(&format!(
        "  service answers on the VIP {addr} (from {}) after {:.1} s",
        user.name,
        t0.elapsed().as_secs_f32()
    ));
    Ok(())
}

/// Waits until every balancer's proxy answers `GET /` on its own external address.
async fn wait_agents(cfg: &Config, plan: &Plan, opts: &UpOptions) -> Result<()> {
    let Some(svc) = &cfg.service else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    for b in &svc.balancers {
        let Some(node) = cfg.node(b) else { continue };
        let Some(ext) = node
            .ifaces
            .iter()
            .filter_map(|i| i.address)
            .find(|a| a.contains(&svc.vip))
        else {
            continue;
        };
        let addr = std::net::SocketAddr::from((ext.addr(), svc.port));
        let ok = poll_in_ns(
            &plan.netns(b),
            deadline,
            Duration::from_millis(100),
            move || crate::agent::admin::http_get_ok(addr, "/"),
            || {},
        )
        .await?;
        if !ok {
            bail!(
                "the agent of {b} does not answer on {addr}; see {}",
                state::log_path(&plan.lab, b, "agent").display()
            );
        }
    }
    say(opts, "  balancers answering");
    Ok(())
}

fn attach_observers(plan: &Plan) -> Result<()> {
    for n in plan
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, Kind::Switch | Kind::Host))
    {
        let ifaces: Vec<String> = plan
            .bridges_in(&n.name)
            .flat_map(|b| b.ports.iter().map(|p| p.name.clone()))
            .collect();
        if ifaces.is_empty() {
            continue;
        }
        let pin = state::node_pin_dir(&plan.lab, &n.name);
        netns::run_in(&n.netns, move || {
            crate::datapath::observe::attach_observer(&pin, &ifaces)
        })
        .with_context(|| format!("attaching the BPF observer in {}", n.name))?;
    }
    Ok(())
}

/// Every port of every RSTP bridge: its gate shut (BPDUs to stpd, data dropped both ways)
/// until its daemon says otherwise.
fn close_rstp_gates(plan: &Plan) -> Result<()> {
    use crate::datapath::stp_gate::StpMaps;
    for b in plan.rstp_bridges() {
        let pin = state::node_pin_dir(&plan.lab, &b.node);
        let mut maps =
            StpMaps::open(&pin).with_context(|| format!("opening the STP gate of {}", b.node))?;
        let names: Vec<String> = b.ports.iter().map(|p| p.name.clone()).collect();
        let indexes = netns::run_in(&plan.netns(&b.node), move || {
            names
                .iter()
                .map(|n| {
                    nix::net::if_::if_nametoindex(n.as_str())
                        .with_context(|| format!("no interface {n}"))
                })
                .collect::<Result<Vec<u32>>>()
        })?;
        for i in indexes {
            maps.set_gate(
                i,
                crate::stpd::setup::gate(crate::rstp::fsm::PortState::Discarding),
            )?;
        }
    }
    Ok(())
}

/// Waits until no STP port is listening or learning (twice in a row, so a port that is
/// only between two states does not end the wait), showing progress.
async fn wait_stp(cfg: &Config, plan: &Plan, opts: &UpOptions, t0: Instant) -> Result<()> {
    let fwd = cfg.max_forward_delay();
    if fwd == 0 {
        return Ok(());
    }
    let max_age = plan.bridges.iter().map(|b| b.max_age).max().unwrap_or(0);
    let limit = Duration::from_secs((2 * fwd + max_age + 10) as u64);
    let start = Instant::now();
    let mut settled = 0;
    let mut prog = crate::progress::Progress::new(opts.progress);
    loop {
        let view = inspect::read_lab(plan).await?;
        let transient = inspect::transient_ports(&view);
        if transient.is_empty() {
            settled += 1;
            if settled >= 2 {
                break;
            }
        } else {
            settled = 0;
        }
        prog.update(&format!(
            "  STP: {:2} port(s) listening/learning, {:4.1} s (forward_delay {fwd} s)",
            transient.len(),
            t0.elapsed().as_secs_f32()
        ));
        if start.elapsed() > limit {
            let list: Vec<String> = transient
                .iter()
                .map(|(b, p, s)| format!("{b}/{p} {s:?}"))
                .collect();
            bail!("STP did not settle within {limit:?}: {}", list.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    prog.done(&format!(
        "  STP settled after {:.1} s",
        t0.elapsed().as_secs_f32()
    ));
    Ok(())
}

/// Flushes learned MAC entries on every bridge of the lab.
pub async fn flush_all(plan: &Plan) -> Result<()> {
    flush_bridges(plan, plan.bridges.iter()).await
}

/// Flushes learned MAC entries on the given bridges of the lab (those whose namespace or
/// device is gone are skipped).
pub async fn flush_bridges<'a>(
    plan: &Plan,
    bridges: impl Iterator<Item = &'a super::plan::BridgePlan>,
) -> Result<()> {
    for b in bridges {
        let ns = plan.netns(&b.node);
        if !netns::exists(&ns) {
            continue;
        }
        let h = netns::netlink(&ns).await?;
        if nl::index_of(&h, &b.name).await?.is_some() {
            nl::flush_fdb(&h, &b.name).await?;
        }
    }
    Ok(())
}

/// Waits until every server's web server accepts connections (from its own namespace).
async fn wait_servers(cfg: &Config, plan: &Plan, opts: &UpOptions) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in cfg
        .nodes
        .iter()
        .filter(|n| n.role == crate::config::Role::Server)
    {
        let port = n.http_port();
        let up = poll_in_ns(
            &plan.netns(&n.name),
            deadline,
            Duration::from_millis(50),
            move || {
                std::net::TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_millis(200),
                )
                .is_ok()
            },
            || {},
        )
        .await?;
        if !up {
            bail!(
                "web server of {} did not start; see {}",
                n.name,
                state::log_path(&plan.lab, &n.name, "serve").display()
            );
        }
    }
    say(opts, "  web servers answering");
    Ok(())
}
