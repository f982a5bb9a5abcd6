//! A pure network simulator for the tests: N [`Bridge`]s joined by point-to-point links.
//! Every [`Action::Send`] becomes an [`Event::Bpdu`] at the peer port one millisecond later;
//! link changes reach both ends at once; virtual time jumps to the next delivery or the
//! earliest [`Bridge::next_deadline`]. A stopped bridge neither sends nor receives (its links
//! stay up, as when a daemon hangs).

use super::super::types::{Bpdu, BridgeId};
use super::{Action, Bridge, BridgeConfig, Event, PortConfig, PortState, Role};
use std::collections::BTreeMap;
use std::time::Duration;

/// One end of a link: (bridge index, port number).
pub(super) type End = (usize, u16);

#[derive(Clone, Debug)]
pub(super) struct Link {
    pub a: End,
    pub b: End,
    pub up: bool,
}

pub(super) struct Net {
    pub now: Duration,
    pub bridges: Vec<Bridge>,
    pub links: Vec<Link>,
    pub stopped: Vec<bool>,
    /// 802.1D-1998 bridges (like the kernel's STP): they ignore RST BPDUs (type 2).
    pub legacy: Vec<bool>,
    /// Frames in flight: (delivery time, sequence) -> (bridge, event).
    queue: BTreeMap<(Duration, u64), (usize, Event)>,
    seq: u64,
    /// Port states as the actions set them (what a daemon would have applied).
    pub applied: Vec<BTreeMap<u16, PortState>>,
    /// Every state change: (time, bridge, port, state).
    pub state_log: Vec<(Duration, usize, u16, PortState)>,
    /// Every flush: (time, bridge, port).
    pub flushes: Vec<(Duration, usize, u16)>,
    /// Every BPDU sent: (time, bridge, port, bpdu).
    pub sent: Vec<(Duration, usize, u16, Bpdu)>,
    pub delay: Duration,
    /// Instants (after any event) at which the forwarding links held a cycle.
    pub loops_seen: u32,
}

/// A bridge id with `priority` and a MAC ending in `last`.
pub(super) fn bid(priority: u16, last: u8) -> BridgeId {
    BridgeId {
        priority,
        mac: [0x02, 0, 0, 0, 0, last],
    }
}

impl Net {
    /// Bridges `ids` with `cfg`'s timers, joined by `links` (bridge index pairs); each link
    /// end gets the next port number of its bridge (1, 2, …), cost 100. Links start down.
    pub(super) fn new(ids: &[BridgeId], links: &[(usize, usize)], cfg: BridgeConfig) -> Net {
        let mut ports: Vec<Vec<PortConfig>> = vec![Vec::new(); ids.len()];
        let mut ls = Vec::new();
        for &(a, b) in links {
            let pa = ports[a].len() as u16 + 1;
            ports[a].push(PortConfig::new(pa, 100));
            let pb = ports[b].len() as u16 + 1;
            ports[b].push(PortConfig::new(pb, 100));
            ls.push(Link {
                a: (a, pa),
                b: (b, pb),
                up: false,
            });
        }
        Net::with_ports(ids, ports, ls, cfg)
    }

    /// Bridges with explicit port lists and links.
    pub(super) fn with_ports(
        ids: &[BridgeId],
        ports: Vec<Vec<PortConfig>>,
        links: Vec<Link>,
        cfg: BridgeConfig,
    ) -> Net {
        let now = Duration::from_secs(1000);
        let bridges = ids
            .iter()
            .zip(&ports)
            .map(|(id, ps)| Bridge::new(BridgeConfig { id: *id, ..cfg }, ps, now))
            .collect();
        Net {
            now,
            bridges,
            applied: ports
                .iter()
                .map(|ps| {
                    ps.iter()
                        .map(|p| (p.number, PortState::Discarding))
                        .collect()
                })
                .collect(),
            stopped: vec![false; ids.len()],
            legacy: vec![false; ids.len()],
            links,
            queue: BTreeMap::new(),
            seq: 0,
            flushes: Vec::new(),
            state_log: Vec::new(),
            sent: Vec::new(),
            delay: Duration::from_millis(1),
            loops_seen: 0,
        }
    }

    /// Handles `ev` on bridge `b` now and routes its actions.
    pub(super) fn deliver(&mut self, b: usize, ev: Event) {
        if self.stopped[b]
            || self.legacy[b]
                && matches!(
                    ev,
                    Event::Bpdu {
                        bpdu: Bpdu::Rst(_),
                        ..
                    }
                )
        {
            return;
        }
        let actions = self.bridges[b].handle(self.now, ev);
        for a in actions {
            self.apply(b, a);
        }
        if self.has_loop() {
            self.loops_seen += 1;
        }
    }

    fn apply(&mut self, b: usize, a: Action) {
        match a {
            Action::Send { port, bpdu } => {
                self.sent.push((self.now, b, port, bpdu));
                if let Some(peer) = self.peer((b, port)) {
                    self.seq += 1;
                    let ev = Event::Bpdu { port: peer.1, bpdu };
                    self.queue
                        .insert((self.now + self.delay, self.seq), (peer.0, ev));
                }
            }
            Action::SetState { port, state } => {
                self.applied[b].insert(port, state);
                self.state_log.push((self.now, b, port, state));
            }
            Action::Flush { port } => self.flushes.push((self.now, b, port)),
        }
    }

    /// The other end of the up link at `end`.
    fn peer(&self, end: End) -> Option<End> {
        self.links.iter().find_map(|l| match () {
            _ if !l.up => None,
            _ if l.a == end => Some(l.b),
            _ if l.b == end => Some(l.a),
            _ => None,
        })
    }

    /// Makes bridge `b` an 802.1D-1998 bridge: configuration and TCN BPDUs only (Force
    /// Protocol Version 0) and deaf to RST BPDUs, as the kernel's STP is.
    pub(super) fn make_legacy(&mut self, b: usize) {
        self.legacy[b] = true;
        let old = &self.bridges[b];
        let cfg = BridgeConfig {
            force_version: 0,
            ..old.cfg
        };
        let ports: Vec<PortConfig> = old.ports.iter().map(|p| p.cfg).collect();
        self.bridges[b] = Bridge::new(cfg, &ports, self.now);
    }

    /// Sets link `l` up or down; both ends hear it now (full duplex).
    pub(super) fn set_link(&mut self, l: usize, up: bool) {
        self.links[l].up = up;
        let Link { a, b, .. } = self.links[l];
        for (br, port) in [a, b] {
            let ev = Event::Link {
                port,
                up,
                full_duplex: true,
            };
            self.deliver(br, ev);
        }
    }

    /// The time of the next frame delivery or bridge deadline, if any.
    fn next_time(&self) -> Option<(Duration, Option<usize>)> {
        let frame = self.queue.keys().next().map(|k| (k.0, None));
        let tick = (0..self.bridges.len())
            .filter(|&b| !self.stopped[b])
            .filter_map(|b| self.bridges[b].next_deadline().map(|t| (t, Some(b))))
            .min();
        match (frame, tick) {
            (Some(f), Some(t)) => Some(if f.0 <= t.0 { f } else { t }),
            (f, t) => f.or(t),
        }
    }

    /// Handles the next frame or tick if it is due by `until`; false if none is.
    fn step(&mut self, until: Duration) -> bool {
        let Some((next, tick)) = self.next_time().filter(|(t, _)| *t <= until) else {
            return false;
        };
        self.now = next;
        match tick {
            None => {
                let (_, (b, ev)) = self.queue.pop_first().expect("a frame");
                self.deliver(b, ev);
            }
            Some(b) => self.deliver(b, Event::Tick),
        }
        true
    }

    /// Advances virtual time to `until`, delivering frames and ticks in order.
    pub(super) fn run_until(&mut self, until: Duration) {
        while self.step(until) {}
        self.now = until;
    }

    pub(super) fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `cond` holds (checked after every event), at most `limit`; returns how
    /// long it took.
    pub(super) fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Net) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        loop {
            if cond(self) {
                return Some(self.now - start);
            }
            if !self.step(start + limit) {
                self.now = start + limit;
                return None;
            }
        }
    }

    pub(super) fn role(&self, b: usize, port: u16) -> Role {
        self.port_status(b, port).role
    }

    pub(super) fn state(&self, b: usize, port: u16) -> PortState {
        self.port_status(b, port).state
    }

    pub(super) fn port_status(&self, b: usize, port: u16) -> super::PortStatus {
        self.bridges[b]
            .status()
            .ports
            .into_iter()
            .find(|p| p.number == port)
            .expect("port exists")
    }

    /// The applied states agree with the bridges' own (no SetState lost or doubled).
    pub(super) fn applied_matches_status(&self) -> bool {
        self.bridges.iter().enumerate().all(|(b, br)| {
            br.status()
                .ports
                .iter()
                .all(|p| self.applied[b].get(&p.number) == Some(&p.state))
        })
    }

    /// Data-plane edges: up links whose two ends forward, between running bridges.
    pub(super) fn forwarding_links(&self) -> Vec<(usize, usize)> {
        self.links
            .iter()
            .filter(|l| l.up && !self.stopped[l.a.0] && !self.stopped[l.b.0])
            .filter(|l| {
                self.applied[l.a.0][&l.a.1] == PortState::Forwarding
                    && self.applied[l.b.0][&l.b.1] == PortState::Forwarding
            })
            .map(|l| (l.a.0, l.b.0))
            .collect()
    }

    /// True if the forwarding links contain a cycle (a loop in the data plane).
    pub(super) fn has_loop(&self) -> bool {
        let mut parent: Vec<usize> = (0..self.bridges.len()).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            p[x] = r;
            r
        }
        for (a, b) in self.forwarding_links() {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra == rb {
                return true;
            }
            parent[ra] = rb;
        }
        false
    }

    /// Groups of running bridges connected by up links, and by forwarding links.
    pub(super) fn components(&self, forwarding_only: bool) -> Vec<usize> {
        let n = self.bridges.len();
        let mut comp: Vec<usize> = (0..n).collect();
        let edges: Vec<(usize, usize)> = if forwarding_only {
            self.forwarding_links()
        } else {
            self.links
                .iter()
                .filter(|l| l.up && !self.stopped[l.a.0] && !self.stopped[l.b.0])
                .map(|l| (l.a.0, l.b.0))
                .collect()
        };
        // Few bridges: relabel until stable.
        loop {
            let mut changed = false;
            for &(a, b) in &edges {
                let m = comp[a].min(comp[b]);
                if comp[a] != m || comp[b] != m {
                    comp[a] = m;
                    comp[b] = m;
                    changed = true;
                }
            }
            if !changed {
                return comp;
            }
        }
    }
}
