//! The daemon's event loop: BPDUs from the port sockets, link events from rtnetlink and
//! ticks at the state machines' next deadline go into [`Bridge::handle`]; the actions it
//! returns are carried out here (BPDUs sent, gate then kernel state set, MACs flushed), and
//! each port's status is published to the `RSTP_PORT` map.
//!
//! A failing send or netlink operation is logged (rate limited) and the loop goes on: a
//! daemon that stopped would leave its ports as the gate last said, which is safe but frozen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::netlink::{self, LinkEvent, PortLink};
use super::packet::PortSocket;
use super::report::{self, StpdReport};
use super::setup;
use super::Options;
use crate::datapath::stp_gate::{self, StpMaps};
use crate::log_limit::LogLimit;
use crate::rstp::bpdu::DropReason;
use crate::rstp::fsm::{Action, Bridge, Event, PortState};
use crate::rstp::types::Bpdu;

/// After a flush, a port that starts forwarding within this long flushes every port again:
/// frames in flight while the tree moved may have taught the bridge a MAC on the old path.
const REFLUSH_WINDOW: Duration = Duration::from_secs(2);

/// One port of the bridge.
struct Port {
    number: u16,
    ifindex: u32,
    name: String,
    sock: Arc<PortSocket>,
    /// Admin up with carrier.
    link_up: bool,
    /// The state the state machines last set.
    state: PortState,
    info: Option<lb_common::RstpPortInfo>,
}

/// The daemon's state besides the state machines.
struct Daemon {
    fsm: Bridge,
    ports: Vec<Port>,
    nl: rtnetlink::Handle,
    maps: StpMaps,
    bridge_ifindex: u32,
    bridge_up: bool,
    epoch: Instant,
    drops: BTreeMap<String, u64>,
    last_flush: Option<Instant>,
    report_file: std::path::PathBuf,
    report: StpdReport,
    warn: LogLimit,
}

/// Runs the daemon of one bridge until SIGTERM or SIGINT.
pub async fn run(opts: Options) -> Result<()> {
    let (nl, mut events) = netlink::connect()?;
    let (bridge_ifindex, bridge_up, links) = netlink::read_bridge(&nl, &opts.bridge.name).await?;
    let maps = StpMaps::open(&opts.pin_dir)
        .with_context(|| format!("opening the STP maps in {}", opts.pin_dir.display()))?;
    let (bpdu_tx, mut bpdus) = mpsc::channel(1024);
    let mut d = Daemon::new(&opts, nl, maps, bridge_ifindex, bridge_up, &links, bpdu_tx)?;
    info!(
        ports = d.ports.len(),
        bridge_up, "stpd running; every port discarding until the tree says otherwise"
    );
    d.close_all().await;
    let initial: Vec<(u16, bool)> = d.ports.iter().map(|p| (p.number, p.link_up)).collect();
    for (number, up) in initial {
        if up && d.bridge_up {
            d.feed(link_event(number, true)).await;
        }
    }
    d.publish(true);
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut lease = tokio::time::interval(stp_gate::LEASE_RENEW);
    loop {
        let due = d
            .fsm
            .next_deadline()
            .map(|t| d.epoch + t)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            Some((number, res)) = bpdus.recv() => d.on_frame(number, res).await,
            Some((msg, _)) = futures::StreamExt::next(&mut events) => {
                if let Some(ev) = netlink::parse_link(&msg) {
                    d.on_link(ev).await;
                }
            }
            _ = tokio::time::sleep_until(due.into()) => d.feed(Event::Tick).await,
            _ = lease.tick() => d.renew_leases(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // The gates stay as they are and the leases run out: within `LEASE` of the daemon's
    // end every port drops data, so a silent bridge never forwards while its neighbours age
    // its information out and open their alternates (down removes the gates).
    info!("stpd stopping; ports keep their last state until the lease runs out");
    Ok(())
}

fn link_event(port: u16, up: bool) -> Event {
    Event::Link {
        port,
        up,
        full_duplex: true,
    }
}

impl Daemon {
    /// Matches the kernel's ports with the plan's and opens a socket (and a reader task)
    /// per port.
    fn new(
        opts: &Options,
        nl: rtnetlink::Handle,
        maps: StpMaps,
        bridge_ifindex: u32,
        bridge_up: bool,
        links: &[PortLink],
        bpdu_tx: mpsc::Sender<(u16, Result<Bpdu, DropReason>)>,
    ) -> Result<Daemon> {
        let epoch = Instant::now();
        let mut ports = Vec::new();
        let mut cfgs = Vec::new();
        for pp in &opts.bridge.ports {
            let Some(l) = links.iter().find(|l| l.name == pp.name) else {
                warn!(port = %pp.name, "planned port missing from the bridge; left out");
                continue;
            };
            let sock = Arc::new(
                PortSocket::open(l.ifindex, l.mac)
                    .with_context(|| format!("opening the BPDU socket of {}", l.name))?,
            );
            spawn_reader(pp.port_no, sock.clone(), bpdu_tx.clone());
            cfgs.push(setup::port_config(pp));
            ports.push(Port {
                number: pp.port_no,
                ifindex: l.ifindex,
                name: l.name.clone(),
                sock,
                link_up: l.up,
                state: PortState::Discarding,
                info: None,
            });
        }
        let bcfg = setup::bridge_config(&opts.bridge);
        crate::rstp::fsm::validate(&bcfg, &cfgs)
            .map_err(|e| anyhow::anyhow!("bridge {}: {e}", opts.bridge.name))?;
        let fsm = Bridge::new(bcfg, &cfgs, Duration::ZERO);
        Ok(Daemon {
            fsm,
            ports,
            nl,
            maps,
            bridge_ifindex,
            bridge_up,
            epoch,
            drops: BTreeMap::new(),
            last_flush: None,
            report_file: opts.report.clone(),
            report: StpdReport {
                bridge: opts.bridge.name.clone(),
                pid: std::process::id(),
                ..Default::default()
            },
            warn: LogLimit::new(Duration::from_secs(5)),
        })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn port(&self, number: u16) -> Option<&Port> {
        self.ports.iter().find(|p| p.number == number)
    }

    fn port_mut(&mut self, number: u16) -> Option<&mut Port> {
        self.ports.iter_mut().find(|p| p.number == number)
    }

    /// Logs a failed operation, at most once per interval (the count of the rest follows).
    fn failed(&mut self, what: &str, e: &dyn std::fmt::Display) {
        if let Some(held) = self.warn.hit_now() {
            warn!(held_back = held, "{what}: {e:#}");
        }
    }

    /// Every port discarding (gate first, then the kernel), whatever a previous daemon or
    /// the kernel left: the state machines start every port discarding too.
    async fn close_all(&mut self) {
        let all: Vec<u16> = self.ports.iter().map(|p| p.number).collect();
        for n in all {
            self.set_state(n, PortState::Discarding).await;
        }
    }

    /// One event into the state machines, then its actions and the published status.
    async fn feed(&mut self, ev: Event) {
        let now = self.now();
        let actions = self.fsm.handle(now, ev);
        let changed = !actions.is_empty();
        for a in actions {
            self.act(a).await;
        }
        self.publish(changed);
    }

    async fn act(&mut self, a: Action) {
        match a {
            Action::Send { port, bpdu } => {
                let Some(p) = self.port(port) else { return };
                if let Err(e) = p.sock.send(&bpdu) {
                    let what = format!("sending a BPDU on {}", p.name);
                    self.failed(&what, &e);
                }
            }
            Action::SetState { port, state } => self.set_state(port, state).await,
            Action::Flush { port } => {
                self.flush(port).await;
                self.last_flush = Some(Instant::now());
            }
        }
    }

    /// The state machines moved a port: gate, kernel, and once a port starts forwarding
    /// soon after a flush, every port flushed again (frames in flight while the tree moved
    /// may have taught the bridge a MAC on the old path).
    async fn set_state(&mut self, number: u16, state: PortState) {
        self.apply_state(number, state).await;
        let recent = self
            .last_flush
            .is_some_and(|t| t.elapsed() < REFLUSH_WINDOW);
        if state == PortState::Forwarding && recent {
            let all: Vec<u16> = self.ports.iter().map(|p| p.number).collect();
            for n in all {
                self.flush(n).await;
            }
        }
    }

    /// Vouches for every port's gate for another [`stp_gate::LEASE`]: the BPF programs drop
    /// a forwarding port's data once the lease runs out, so a daemon that dies or hangs
    /// fails closed (see `datapath::stp_gate`).
    fn renew_leases(&mut self) {
        let until = stp_gate::monotonic_now() + stp_gate::LEASE;
        let mut failures = Vec::new();
        for p in &self.ports {
            if let Err(e) = self.maps.renew_lease(p.ifindex, until) {
                failures.push((p.name.clone(), e));
            }
        }
        for (name, e) in failures {
            self.failed(&format!("renewing the lease of {name}"), &e);
        }
    }

    /// Gate first (so the kernel opening a port can never open a loop), then the kernel.
    async fn apply_state(&mut self, number: u16, state: PortState) {
        let Some(p) = self.port_mut(number) else {
            return;
        };
        p.state = state;
        let (ifindex, name, up) = (p.ifindex, p.name.clone(), p.link_up);
        debug!(port = %name, ?state, "port state");
        if let Err(e) = self.maps.set_gate(ifindex, setup::gate(state)) {
            self.failed(&format!("setting the gate of {name}"), &e);
        }
        // A port without carrier refuses any kernel state but disabled; its gate holds it.
        if up {
            let ks = netlink::kernel_state(state);
            if let Err(e) = netlink::set_state(&self.nl, ifindex, ks).await {
                self.failed(&format!("setting the state of {name}"), &e);
            }
        }
    }

    async fn flush(&mut self, number: u16) {
        let Some(p) = self.port(number) else { return };
        let (ifindex, name) = (p.ifindex, p.name.clone());
        if let Err(e) = netlink::flush(&self.nl, ifindex).await {
            self.failed(&format!("flushing {name}"), &e);
        }
    }

    async fn on_frame(&mut self, number: u16, res: Result<Bpdu, DropReason>) {
        match res {
            Ok(bpdu) => {
                // A BPDU on a port we hold down (bridge down) is not for the tree.
                if self.port(number).is_some_and(|p| p.link_up) && self.bridge_up {
                    self.feed(Event::Bpdu { port: number, bpdu }).await;
                }
            }
            Err(reason) => {
                *self.drops.entry(reason.as_str().to_string()).or_default() += 1;
                debug!(port = number, %reason, "frame for the STP group refused");
                self.publish(true);
            }
        }
    }

    async fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Link { ifindex, up } if ifindex == self.bridge_ifindex => {
                if up != self.bridge_up {
                    info!(up, "bridge device");
                    self.bridge_up = up;
                    let ports: Vec<(u16, bool)> =
                        self.ports.iter().map(|p| (p.number, p.link_up)).collect();
                    for (n, link) in ports.into_iter().filter(|(_, l)| *l) {
                        self.feed(link_event(n, up && link)).await;
                    }
                    self.reassert_all().await;
                }
            }
            LinkEvent::Link { ifindex, up } => {
                let Some(p) = self.ports.iter_mut().find(|p| p.ifindex == ifindex) else {
                    return;
                };
                if p.link_up == up {
                    return;
                }
                p.link_up = up;
                let (n, name) = (p.number, p.name.clone());
                info!(port = %name, up, "port link");
                if self.bridge_up {
                    self.feed(link_event(n, up)).await;
                }
                self.reassert(n).await;
            }
            LinkEvent::PortState { ifindex, state } => {
                let Some(p) = self.ports.iter().find(|p| p.ifindex == ifindex) else {
                    return;
                };
                if p.link_up && self.bridge_up && state != netlink::kernel_state(p.state) {
                    // The kernel moved the port itself (link up, bridge up): put it back.
                    let n = p.number;
                    self.reassert(n).await;
                }
            }
            LinkEvent::Gone { ifindex } => {
                if let Some(p) = self.ports.iter_mut().find(|p| p.ifindex == ifindex) {
                    warn!(port = %p.name, "port deleted");
                    p.link_up = false;
                    let n = p.number;
                    self.feed(link_event(n, false)).await;
                }
            }
        }
    }

    /// Sets port `number`'s gate and kernel state again to what the state machines said.
    async fn reassert(&mut self, number: u16) {
        if let Some(state) = self.port(number).map(|p| p.state) {
            self.apply_state(number, state).await;
        }
    }

    async fn reassert_all(&mut self) {
        let all: Vec<u16> = self.ports.iter().map(|p| p.number).collect();
        for n in all {
            self.reassert(n).await;
        }
    }

    /// Each port's status into `RSTP_PORT` where it changed; the bridge's report file when
    /// `changed` (an action ran or a frame was refused) and its content differs.
    fn publish(&mut self, changed: bool) {
        let st = self.fsm.status();
        for ps in &st.ports {
            let info = setup::port_info(ps);
            let Some(i) = self.ports.iter().position(|p| p.number == ps.number) else {
                continue;
            };
            if self.ports[i].info.as_ref() == Some(&info) {
                continue;
            }
            let (ifindex, name) = (self.ports[i].ifindex, self.ports[i].name.clone());
            match self.maps.set_info(ifindex, &info) {
                Ok(()) => self.ports[i].info = Some(info),
                Err(e) => self.failed(&format!("publishing the status of {name}"), &e),
            }
        }
        let r = StpdReport {
            root: (st.root.priority, st.root.mac),
            root_path_cost: st.root_path_cost,
            root_port: st.root_port,
            topology_changes: st.topology_changes,
            drops: self.drops.clone(),
            ..self.report.clone()
        };
        if changed && r != self.report {
            if let Err(e) = report::write(&self.report_file, &r) {
                let what = format!("writing {}", self.report_file.display());
                self.failed(&what, &e);
            }
            self.report = r;
        }
    }
}

/// Reads one port's socket for ever, handing each STP-group frame to the loop.
fn spawn_reader(
    number: u16,
    sock: Arc<PortSocket>,
    tx: mpsc::Sender<(u16, Result<Bpdu, DropReason>)>,
) {
    let task = async move {
        let mut limit = LogLimit::new(Duration::from_secs(5));
        loop {
            match sock.recv().await {
                Ok(r) => {
                    if tx.send((number, r)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if let Some(held) = limit.hit_now() {
                        warn!(port = number, held_back = held, "reading BPDUs: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    // In the bridge's span, like the loop.
    tokio::spawn(tracing::Instrument::in_current_span(task));
}
