//! One VRRP instance: its config, the task that runs the state machine on sockets and
//! timers, and the handle the agent steers it with.

use super::codec::{self, Advert, RxPolicy, Version, VRRP_GROUP};
use super::fsm::{Action, Event, Fsm, FsmConfig, State};
use super::io;

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// One VRRP instance.
#[derive(Debug, Clone)]
pub struct VrrpConfig {
    /// Name used in logs and passed to the notify command.
    pub instance: String,
    pub interface: String,
    pub vrid: u8,
    /// 1..=255 (255 = address owner: master at once, no penalty).
    pub priority: u8,
    /// V2 is keepalived's default.
    pub version: Version,
    /// v2: whole seconds (1000..=255000); v3: centiseconds (10..=40950).
    pub advert_int_ms: u32,
    pub vips: Vec<Ipv4Addr>,
    pub preempt: bool,
    pub preempt_delay_ms: u32,
    /// When non-empty: adverts go to each peer (unicast) instead of 224.0.0.18, and only
    /// these peers are accepted.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// v3 checksum sent: with the IPv4 pseudo-header (keepalived, FRR) or over the message
    /// only (RFC 9568's text). Both are accepted.
    pub v3_checksum_pseudo_header: bool,
    /// keepalived's garp_master_delay: a second burst of gratuitous ARPs this long after
    /// becoming master (0 = none).
    pub garp_delay_ms: u32,
    /// keepalived's garp_master_repeat: gratuitous ARPs per burst (per VIP).
    pub garp_repeat: u32,
    /// keepalived's garp_master_refresh: while master, a burst of gratuitous ARPs this
    /// often (0 = off). After a partition heals, the master that kept the VIP may never
    /// hear the other one's lower-priority advert (the other yields first), so hosts that
    /// learnt the other's MAC for the VIP are only corrected by a refresh.
    pub garp_refresh_ms: u32,
    /// Run as `sh -c '<notify> "$@"' sh INSTANCE STATE` on every state change.
    pub notify: Option<String>,
    /// VRRPv2 simple-text authentication (type 1; ≤ 8 bytes are used).
    pub auth_pass: Option<String>,
    /// Priority subtracted while the caller says the balancer is unhealthy.
    pub weight_penalty: u8,
}

/// What `lbctl status` and the agent's /stats show.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VrrpSnapshot {
    pub instance: String,
    /// INIT, BACKUP, MASTER or FAULT (keepalived's names).
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    pub master: Option<Ipv4Addr>,
    pub vrid: u8,
    /// Written as its number (2 or 3).
    pub version: Version,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    /// Seconds since the Unix epoch of the last state change (of the start before any).
    #[serde(default)]
    pub last_change: f64,
    /// Per drop reason (see `codec::Drop::as_str`), plus `tx_error` for failed sends.
    pub drops: BTreeMap<String, u64>,
    /// Checksum form of accepted adverts: `v2`, `v3_pseudo_header`, `v3_message_only`.
    pub checksum_forms: BTreeMap<String, u64>,
    /// The last state changes, oldest first (at most [`EVENTS_KEPT`]).
    #[serde(default)]
    pub events: Vec<VrrpEvent>,
}

/// State changes kept in a snapshot.
pub const EVENTS_KEPT: usize = 32;

/// One state change, with the time it happened (Unix seconds).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VrrpEvent {
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
    /// The master this instance last deferred to before the change (None if it never
    /// heard one with an equal or higher priority).
    pub previous_master: Option<Ipv4Addr>,
    /// On a takeover (BACKUP -> MASTER): milliseconds between the last advert heard from
    /// the previous master and this instance taking the VIP, i.e. how long the VIP went
    /// without a live master as far as this balancer can measure it.
    pub silence_ms: Option<u64>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

enum Cmd {
    Healthy(bool),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap to clone; talks to the running instance.
#[derive(Clone)]
pub struct VrrpHandle {
    snap: Arc<Mutex<VrrpSnapshot>>,
    tx: mpsc::UnboundedSender<Cmd>,
    changed: Arc<tokio::sync::Notify>,
}

impl VrrpHandle {
    pub fn snapshot(&self) -> VrrpSnapshot {
        self.snap.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves after the snapshot changed (a permit is kept if nobody waits, so a change
    /// between two waits is not lost). For one waiter: the state exporter.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The balancer's health (like a keepalived track_script with a weight): while false,
    /// the advertised priority is lowered by `weight_penalty`.
    pub fn set_healthy(&self, healthy: bool) {
        let _ = self.tx.send(Cmd::Healthy(healthy));
    }

    /// Graceful stop: a master sends priority 0 and removes the VIP. Returns when done (or
    /// at once if the instance already ended).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Checks a configuration; every problem at once.
pub fn validate(cfg: &VrrpConfig) -> Result<()> {
    let mut p = Vec::new();
    if cfg.vrid == 0 {
        p.push("vrid 0 is reserved".to_string());
    }
    if cfg.priority == 0 {
        p.push("priority 0 is reserved for resignation".into());
    }
    match cfg.version {
        Version::V2 => {
            if !cfg.advert_int_ms.is_multiple_of(1000)
                || !(1000..=255_000).contains(&cfg.advert_int_ms)
            {
                p.push(format!(
                    "VRRPv2 advertises whole seconds (1..=255 s); {} ms is not one",
                    cfg.advert_int_ms
                ));
            }
        }
        Version::V3 => {
            if !cfg.advert_int_ms.is_multiple_of(10) || !(10..=40_950).contains(&cfg.advert_int_ms)
            {
                p.push(format!(
                    "VRRPv3 advertises centiseconds (10..=40950 ms in steps of 10); {} ms is not one",
                    cfg.advert_int_ms
                ));
            }
        }
    }
    if cfg.vips.is_empty() {
        p.push("no virtual address".into());
    }
    if cfg.vips.len() > 255 {
        p.push("more than 255 virtual addresses".into());
    }
    if cfg.interface.is_empty() {
        p.push("no interface".into());
    }
    if cfg.auth_pass.is_some() && cfg.version != Version::V2 {
        p.push("auth_pass exists in VRRPv2 only".into());
    }
    if p.is_empty() {
        Ok(())
    } else {
        bail!("VRRP instance {}: {}", cfg.instance, p.join("; "))
    }
}

/// Starts the instance on the current tokio runtime (current namespace). Returns once
/// sockets are open.
pub async fn start(cfg: VrrpConfig) -> Result<(VrrpHandle, tokio::task::JoinHandle<Result<()>>)> {
    validate(&cfg)?;
    let (conn, nl, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let nl_task = tokio::spawn(conn);
    let mut link = io::link_info(&nl, &cfg.interface, &cfg.vips).await?;
    // A VIP already on the interface was left by a predecessor that could not resign (a
    // SIGKILL): this instance starts as BACKUP, so it must not answer ARP for the VIP.
    for vip in cfg.vips.iter().filter(|v| link.addrs.contains(v)) {
        io::del_vip(&nl, link.index, *vip).await?;
        tracing::warn!(instance = %cfg.instance, %vip, iface = %cfg.interface, "removed a stale VIP left on the interface");
    }
    link.addrs.retain(|a| !cfg.vips.contains(a));
    let sock = io::VrrpSocket::open(
        &cfg.interface,
        link.index,
        link.primary,
        cfg.unicast_peers.is_empty(),
    )?;
    let arp = io::ArpSocket::open(link.index, link.mac)?;
    let (fsm, policy) = fsm_and_policy(&cfg, &link);
    let snap = Arc::new(Mutex::new(VrrpSnapshot::initial(&cfg)));
    let (tx, rx) = mpsc::unbounded_channel();
    let changed = Arc::new(tokio::sync::Notify::new());
    tracing::info!(
        instance = %cfg.instance, iface = %cfg.interface, vrid = cfg.vrid, version = cfg.version.number(),
        priority = cfg.priority, primary = %link.primary, "VRRP instance starting"
    );
    let runner = Runner {
        cfg,
        link,
        sock,
        arp,
        nl,
        fsm,
        policy,
        snap: snap.clone(),
        changed: changed.clone(),
        rx: Some(rx),
        timer: None,
        garp_at: None,
        healthy: true,
        last_advert: None,
    };
    let task = tokio::spawn(async move {
        let r = runner.run().await;
        nl_task.abort();
        r
    });
    Ok((VrrpHandle { snap, tx, changed }, task))
}

/// The state machine and the receive policy of an instance on `link`.
fn fsm_and_policy(cfg: &VrrpConfig, link: &io::LinkInfo) -> (Fsm, RxPolicy) {
    let interval_cs = (cfg.advert_int_ms / 10) as u16;
    let fsm = Fsm::new(FsmConfig {
        version: cfg.version,
        priority: cfg.priority,
        advert_int_cs: interval_cs,
        preempt: cfg.preempt,
        preempt_delay: Duration::from_millis(u64::from(cfg.preempt_delay_ms)),
        primary: link.primary,
    });
    let policy = RxPolicy {
        version: cfg.version,
        vrid: cfg.vrid,
        interval_cs,
        auth_pass: cfg.auth_pass.clone(),
        own: link.addrs.clone(),
        peers: cfg.unicast_peers.clone(),
    };
    (fsm, policy)
}

impl VrrpSnapshot {
    /// What an instance of `cfg` reports before its first event.
    fn initial(cfg: &VrrpConfig) -> VrrpSnapshot {
        VrrpSnapshot {
            instance: cfg.instance.clone(),
            state: State::Initialize.as_str().into(),
            priority: cfg.priority,
            effective_priority: cfg.priority,
            master: None,
            vrid: cfg.vrid,
            version: cfg.version,
            adverts_sent: 0,
            adverts_received: 0,
            transitions: 0,
            last_change: unix_now(),
            drops: BTreeMap::new(),
            checksum_forms: BTreeMap::new(),
            events: Vec::new(),
        }
    }
}

struct Runner {
    cfg: VrrpConfig,
    link: io::LinkInfo,
    sock: io::VrrpSocket,
    arp: io::ArpSocket,
    nl: rtnetlink::Handle,
    fsm: Fsm,
    policy: RxPolicy,
    snap: Arc<Mutex<VrrpSnapshot>>,
    changed: Arc<tokio::sync::Notify>,
    /// None once every handle is gone (the instance keeps running).
    rx: Option<mpsc::UnboundedReceiver<Cmd>>,
    timer: Option<Instant>,
    /// The delayed second burst of gratuitous ARPs.
    garp_at: Option<Instant>,
    healthy: bool,
    /// When the last advert from a master this instance defers to was accepted, and
    /// from whom.
    last_advert: Option<(Instant, Ipv4Addr)>,
}

const LINK_POLL: Duration = Duration::from_millis(100);

impl Runner {
    async fn run(mut self) -> Result<()> {
        let mut link_up = self.sock.link_up();
        if !link_up {
            self.event(Event::InterfaceDown).await;
        }
        self.event(Event::Startup).await;
        let mut poll = tokio::time::interval(LINK_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 4096];
        // A failing socket fails every 10 ms: one warning a minute, with the count.
        let mut recv_errors = crate::log_limit::LogLimit::new(Duration::from_secs(60));
        let far = || Instant::now() + Duration::from_secs(3600);
        loop {
            let timer = self.timer.unwrap_or_else(far);
            let garp = self.garp_at.unwrap_or_else(far);
            tokio::select! {
                cmd = async { self.rx.as_mut().expect("guarded").recv().await }, if self.rx.is_some() => match cmd {
                    Some(Cmd::Healthy(h)) => {
                        if h != self.healthy {
                            self.healthy = h;
                            let p = self.effective_priority();
                            tracing::info!(instance = %self.cfg.instance, healthy = h, priority = p, "VRRP priority change");
                            self.event(Event::PriorityChanged(p)).await;
                        }
                    }
                    Some(Cmd::Shutdown(ack)) => {
                        self.event(Event::Shutdown).await;
                        let _ = ack.send(());
                        return Ok(());
                    }
                    None => self.rx = None,
                },
                r = self.sock.recv(&mut buf) => match r {
                    Ok(n) => self.packet(n, &buf).await,
                    Err(e) => {
                        if let Some(suppressed) = recv_errors.hit_now() {
                            tracing::warn!(instance = %self.cfg.instance, suppressed, "VRRP receive: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = tokio::time::sleep_until(timer) => {
                    self.timer = None;
                    self.event(Event::Timer).await;
                    if self.fsm.state() == State::Master {
                        self.reassert_vips().await;
                    }
                }
                _ = tokio::time::sleep_until(garp) => {
                    self.garp_at = None;
                    self.garp_burst();
                    self.schedule_refresh();
                }
                _ = poll.tick() => {
                    let up = self.sock.link_up();
                    if up != link_up {
                        link_up = up;
                        tracing::info!(instance = %self.cfg.instance, iface = %self.cfg.interface, up, "VRRP interface link change");
                        self.event(if up { Event::InterfaceUp } else { Event::InterfaceDown }).await;
                    }
                }
            }
        }
    }

    /// With each advert a master checks that it still holds its VIPs and puts back (and
    /// announces) any that went missing: while this agent was stopped (SIGSTOP) its
    /// supervisor removed the VIP so the node would not answer ARP with nobody serving,
    /// and a master resuming must not advertise an address it does not hold.
    async fn reassert_vips(&mut self) {
        let mut added = false;
        for vip in self.cfg.vips.clone() {
            match io::add_vip(&self.nl, self.link.index, vip).await {
                Ok(a) => added |= a,
                Err(e) => tracing::error!(instance = %self.cfg.instance, "{e:#}"),
            }
        }
        if added {
            tracing::warn!(instance = %self.cfg.instance, "master without its VIP: put back and announced");
            self.garp_burst();
        }
    }

    fn effective_priority(&self) -> u8 {
        if self.healthy || self.cfg.priority == 255 {
            self.cfg.priority
        } else {
            self.cfg
                .priority
                .saturating_sub(self.cfg.weight_penalty)
                .max(1)
        }
    }

    fn stats<T>(&self, f: impl FnOnce(&mut VrrpSnapshot) -> T) -> T {
        let r = f(&mut self.snap.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_one();
        r
    }

    async fn packet(&mut self, n: usize, buf: &[u8]) {
        match codec::receive(&buf[..n], &self.policy) {
            Err(d) => {
                tracing::debug!(instance = %self.cfg.instance, reason = d.as_str(), "VRRP packet dropped");
                self.stats(|s| *s.drops.entry(d.as_str().to_string()).or_default() += 1);
            }
            Ok(r) => {
                // Remember the master this instance defers to (an equal or higher
                // priority, or one resigning with 0): a later takeover measures its
                // silence from there. Lower-priority adverts (a master being preempted,
                // or after a partition heals) are not a master we lost.
                if r.advert.priority == 0 || r.advert.priority >= self.fsm.priority() {
                    self.last_advert = Some((Instant::now(), r.src));
                }
                self.stats(|s| {
                    s.adverts_received += 1;
                    *s.checksum_forms
                        .entry(r.checksum.as_str().to_string())
                        .or_default() += 1;
                });
                self.event(Event::Advert {
                    prio: r.advert.priority,
                    src: r.src,
                    interval_cs: r.advert.interval_cs,
                })
                .await;
            }
        }
    }

    async fn event(&mut self, ev: Event) {
        let now = Instant::now();
        let actions = self.fsm.handle(now.into_std(), ev);
        for a in actions {
            self.act(a).await;
        }
        let (state, prio, master) = (self.fsm.state(), self.fsm.priority(), self.fsm.master());
        self.stats(|s| {
            s.state = state.as_str().into();
            s.effective_priority = prio;
            s.master = master;
        });
    }

    async fn act(&mut self, a: Action) {
        match a {
            Action::SendAdvert { prio } => self.send_advert(prio),
            Action::AddVip => {
                for vip in self.cfg.vips.clone() {
                    if let Err(e) = io::add_vip(&self.nl, self.link.index, vip).await.map(drop) {
                        tracing::error!(instance = %self.cfg.instance, "{e:#}");
                    }
                }
            }
            Action::DelVip => {
                for vip in self.cfg.vips.clone() {
                    if let Err(e) = io::del_vip(&self.nl, self.link.index, vip).await {
                        tracing::error!(instance = %self.cfg.instance, "{e:#}");
                    }
                }
            }
            Action::SendGarp => {
                self.garp_burst();
                self.garp_at = (self.cfg.garp_delay_ms > 0).then(|| {
                    Instant::now() + Duration::from_millis(u64::from(self.cfg.garp_delay_ms))
                });
                if self.garp_at.is_none() {
                    self.schedule_refresh();
                }
            }
            Action::StateChanged { from, to, reason } => {
                tracing::info!(
                    instance = %self.cfg.instance, from = from.as_str(), to = to.as_str(), reason,
                    "VRRP state change"
                );
                if to != State::Master {
                    self.garp_at = None;
                }
                let silence_ms = match (from, to, self.last_advert) {
                    (State::Backup, State::Master, Some((t, _))) => {
                        Some(t.elapsed().as_millis() as u64)
                    }
                    _ => None,
                };
                let ev = VrrpEvent {
                    at: unix_now(),
                    from: from.as_str().into(),
                    to: to.as_str().into(),
                    reason: reason.into(),
                    previous_master: self.last_advert.map(|(_, a)| a),
                    silence_ms,
                };
                self.stats(|s| {
                    s.transitions += 1;
                    s.last_change = unix_now();
                    if s.events.len() >= EVENTS_KEPT {
                        s.events.remove(0);
                    }
                    s.events.push(ev);
                });
                if let Some(cmd) = &self.cfg.notify {
                    if let Err(e) = io::notify(cmd, &self.cfg.instance, to.as_str()) {
                        tracing::warn!(instance = %self.cfg.instance, "{e:#}");
                    }
                }
            }
            Action::ArmTimer(t) => self.timer = Some(Instant::from_std(t)),
            Action::CancelTimer => self.timer = None,
        }
    }

    fn send_advert(&mut self, prio: u8) {
        let src = self.link.primary;
        for (dst, msg) in adverts(&self.cfg, prio, src) {
            match self.sock.send(src, dst, &msg) {
                Ok(()) => self.stats(|s| s.adverts_sent += 1),
                Err(e) => {
                    tracing::debug!(instance = %self.cfg.instance, "VRRP send to {dst}: {e}");
                    self.stats(|s| *s.drops.entry("tx_error".into()).or_default() += 1);
                }
            }
        }
    }

    /// Arms the next periodic refresh burst (garp_refresh_ms), while master.
    fn schedule_refresh(&mut self) {
        if self.cfg.garp_refresh_ms > 0 && self.fsm.state() == State::Master {
            self.garp_at =
                Some(Instant::now() + Duration::from_millis(u64::from(self.cfg.garp_refresh_ms)));
        }
    }

    fn garp_burst(&self) {
        if self.fsm.state() != State::Master {
            return;
        }
        for _ in 0..self.cfg.garp_repeat {
            for vip in &self.cfg.vips {
                if let Err(e) = self.arp.send(*vip) {
                    tracing::debug!(instance = %self.cfg.instance, "gratuitous ARP for {vip}: {e}");
                }
            }
        }
    }
}

/// The advert with priority `prio` for each destination (224.0.0.18 or the unicast peers).
fn adverts(cfg: &VrrpConfig, prio: u8, src: Ipv4Addr) -> Vec<(Ipv4Addr, Vec<u8>)> {
    let interval_cs = (cfg.advert_int_ms / 10) as u16;
    let mut adv = Advert::new(cfg.version, cfg.vrid, prio, interval_cs, cfg.vips.clone());
    if let (Version::V2, Some(p)) = (cfg.version, &cfg.auth_pass) {
        adv = adv.with_password(p);
    }
    let dsts = if cfg.unicast_peers.is_empty() {
        vec![VRRP_GROUP]
    } else {
        cfg.unicast_peers.clone()
    };
    dsts.into_iter()
        .map(|dst| {
            let msg = codec::encode(&adv, src, dst, cfg.v3_checksum_pseudo_header);
            (dst, msg)
        })
        .collect()
}

/// Resigns without the instance's task (it died, or it already stopped): if this node
/// holds a VIP it sends a priority-0 advert, so the backup takes over after Skew_Time
/// instead of Master_Down_Interval, and removes the VIPs. Nothing to do otherwise. Returns
/// whether it held a VIP.
pub async fn resign_detached(cfg: &VrrpConfig) -> Result<bool> {
    let (conn, nl, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let nl_task = tokio::spawn(conn);
    let res = async {
        let link = io::link_info(&nl, &cfg.interface, &cfg.vips).await?;
        if !cfg.vips.iter().any(|v| link.addrs.contains(v)) {
            return Ok(false);
        }
        let multicast = cfg.unicast_peers.is_empty();
        match io::VrrpSocket::open(&cfg.interface, link.index, link.primary, multicast) {
            Ok(sock) => {
                for (dst, msg) in adverts(cfg, 0, link.primary) {
                    if let Err(e) = sock.send(link.primary, dst, &msg) {
                        tracing::warn!(instance = %cfg.instance, "priority-0 advert to {dst}: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!(instance = %cfg.instance, "no socket to resign: {e:#}"),
        }
        for vip in &cfg.vips {
            io::del_vip(&nl, link.index, *vip).await?;
        }
        Ok(true)
    }
    .await;
    nl_task.abort();
    res
}
