//! The VRRP state machine of RFC 9568 §6 (and RFC 3768 §6 for version 2), pure: events and
//! the current time in, actions out. No sockets, no clocks.
//!
//! States are Initialize, Backup and Master, plus keepalived's Fault (the tracked
//! interface is down). One timer serves both the Adver_Timer (Master) and the
//! Master_Down_Timer (Backup); every change of it is an [`Action::ArmTimer`] (or
//! [`Action::CancelTimer`]).
#![forbid(unsafe_code)]

use super::codec::Version;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// The tracked interface is down (keepalived's FAULT): no VIP, no adverts.
    Fault,
}

impl State {
    /// keepalived's names, also passed to the notify command.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Startup,
    Shutdown,
    /// A received advertisement that passed every check. `interval_cs` is its
    /// advertisement interval in centiseconds (v2: seconds × 100).
    Advert {
        prio: u8,
        src: Ipv4Addr,
        interval_cs: u16,
    },
    /// The timer armed by the last [`Action::ArmTimer`] may have expired (checked against
    /// `now`; an early or stale call does nothing).
    Timer,
    /// The effective priority changed (tracking, health penalty).
    PriorityChanged(u8),
    InterfaceDown,
    InterfaceUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        prio: u8,
    },
    AddVip,
    DelVip,
    SendGarp,
    StateChanged {
        from: State,
        to: State,
        reason: &'static str,
    },
    ArmTimer(Instant),
    CancelTimer,
}

#[derive(Debug, Clone)]
pub struct FsmConfig {
    /// Changes the skew formula, and whether a backup learns the master's interval.
    pub version: Version,
    /// Configured priority, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Our advertisement interval, centiseconds.
    pub advert_int_cs: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// Our primary address (tie-breaks equal priorities).
    pub primary: Ipv4Addr,
}

#[derive(Debug, Clone)]
pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    prio: u8,
    /// Master_Adver_Interval (centiseconds): learned from the master in v3.
    master_adver_cs: u16,
    timer: Option<Instant>,
    master: Option<Ipv4Addr>,
    /// keepalived's preempt_delay: until this instant (startup + delay) a lower-priority
    /// master is followed instead of preempted, so a restarted higher-priority node
    /// rejoins as backup and takes the VIP back only once it has been up for the delay
    /// (its health checks have a verdict), instead of flapping the VIP on the way up.
    preempt_at: Option<Instant>,
    /// The interface is down (kept across Shutdown/Startup).
    link_down: bool,
}

impl Fsm {
    pub fn new(cfg: FsmConfig) -> Self {
        Fsm {
            prio: cfg.priority,
            master_adver_cs: cfg.advert_int_cs,
            cfg,
            state: State::Initialize,
            timer: None,
            master: None,
            preempt_at: None,
            link_down: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    /// The priority currently advertised (effective).
    pub fn priority(&self) -> u8 {
        self.prio
    }
    /// The current master: ourselves when Master, the last advertiser when Backup.
    pub fn master(&self) -> Option<Ipv4Addr> {
        match self.state {
            State::Master => Some(self.cfg.primary),
            State::Backup => self.master,
            _ => None,
        }
    }
    #[cfg(test)]
    pub fn timer(&self) -> Option<Instant> {
        self.timer
    }
    #[cfg(test)]
    pub fn master_adver_interval(&self) -> Duration {
        cs(self.master_adver_cs)
    }

    /// Skew_Time. v2 (RFC 3768): (256 − priority) / 256 seconds, whatever the interval.
    /// v3 (RFC 9568): ((256 − priority) × Master_Adver_Interval) / 256.
    pub fn skew_time(&self) -> Duration {
        let k = 256 - u64::from(self.prio);
        match self.cfg.version {
            Version::V2 => Duration::from_micros(k * 1_000_000 / 256),
            Version::V3 => {
                Duration::from_micros(k * u64::from(self.master_adver_cs) * 10_000 / 256)
            }
        }
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        3 * cs(self.master_adver_cs) + self.skew_time()
    }

    pub fn handle(&mut self, now: Instant, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Startup => {
                if self.state == State::Initialize {
                    if self.link_down {
                        self.go(State::Fault, "interface down", &mut out);
                    } else {
                        self.startup(now, "startup", &mut out);
                        let delay = self.cfg.preempt_delay;
                        self.preempt_at = (!delay.is_zero()).then(|| now + delay);
                    }
                }
            }
            Event::Shutdown => self.stand_down(State::Initialize, "shutdown", &mut out),
            Event::InterfaceDown => {
                self.link_down = true;
                if matches!(self.state, State::Master | State::Backup) {
                    self.stand_down(State::Fault, "interface down", &mut out);
                }
            }
            Event::InterfaceUp => {
                self.link_down = false;
                if self.state == State::Fault {
                    self.startup(now, "interface up", &mut out);
                }
            }
            Event::PriorityChanged(p) => {
                let p = if self.cfg.priority == 255 {
                    255
                } else {
                    p.max(1)
                };
                if p != self.prio {
                    self.prio = p;
                    if self.state == State::Master {
                        // Tell the backups at once, so a lower priority hands the VIP over
                        // without waiting for the next interval.
                        out.push(Action::SendAdvert { prio: p });
                        self.arm(now + cs(self.cfg.advert_int_cs), &mut out);
                    }
                }
            }
            Event::Timer => {
                let due = self.timer.is_some_and(|t| now >= t);
                if due {
                    match self.state {
                        State::Master => {
                            out.push(Action::SendAdvert { prio: self.prio });
                            self.arm(now + cs(self.cfg.advert_int_cs), &mut out);
                        }
                        State::Backup => {
                            self.become_master(now, "master down timer expired", &mut out)
                        }
                        _ => self.timer = None,
                    }
                }
            }
            Event::Advert {
                prio,
                src,
                interval_cs,
            } => match self.state {
                State::Backup => self.backup_rx(now, prio, src, interval_cs, &mut out),
                State::Master => self.master_rx(now, prio, src, interval_cs, &mut out),
                State::Initialize | State::Fault => {}
            },
        }
        out
    }

    fn startup(&mut self, now: Instant, why: &'static str, out: &mut Vec<Action>) {
        self.master = None;
        self.preempt_at = None;
        self.master_adver_cs = self.cfg.advert_int_cs;
        if self.prio == 255 {
            self.become_master(now, "priority 255 (address owner)", out);
        } else {
            self.arm(now + self.master_down_interval(), out);
            self.go(State::Backup, why, out);
        }
    }

    fn become_master(&mut self, now: Instant, why: &'static str, out: &mut Vec<Action>) {
        out.push(Action::AddVip);
        out.push(Action::SendAdvert { prio: self.prio });
        out.push(Action::SendGarp);
        self.preempt_at = None;
        self.arm(now + cs(self.cfg.advert_int_cs), out);
        self.go(State::Master, why, out);
    }

    fn backup_rx(
        &mut self,
        now: Instant,
        prio: u8,
        src: Ipv4Addr,
        interval_cs: u16,
        out: &mut Vec<Action>,
    ) {
        if prio == 0 {
            // The master resigned: take over after Skew_Time only.
            self.master = None;
            self.arm(now + self.skew_time(), out);
            return;
        }
        let lower = prio < self.prio;
        let delaying = lower && self.preempt_at.is_some_and(|at| now < at);
        if !self.cfg.preempt || !lower || delaying {
            if self.cfg.version == Version::V3 {
                self.master_adver_cs = interval_cs;
            }
            self.master = Some(src);
            self.arm(now + self.master_down_interval(), out);
        }
        // Otherwise (preempt and a lower priority): discard, the Master_Down timer runs out.
    }

    fn master_rx(
        &mut self,
        now: Instant,
        prio: u8,
        src: Ipv4Addr,
        interval_cs: u16,
        out: &mut Vec<Action>,
    ) {
        if prio == 0 {
            out.push(Action::SendAdvert { prio: self.prio });
            self.arm(now + cs(self.cfg.advert_int_cs), out);
        } else if prio > self.prio
            || (prio == self.prio && u32::from(src) > u32::from(self.cfg.primary))
        {
            if self.cfg.version == Version::V3 {
                self.master_adver_cs = interval_cs;
            }
            self.master = Some(src);
            out.push(Action::DelVip);
            let why = if prio > self.prio {
                "higher priority advertisement"
            } else {
                "equal priority from a higher address"
            };
            self.arm(now + self.master_down_interval(), out);
            self.go(State::Backup, why, out);
        } else {
            // A lower priority (or equal from a lower address) thinks it is master: assert
            // ourselves at once, as keepalived does, instead of waiting for the interval.
            // Two masters means a partition just healed: the other one's gratuitous ARPs
            // may have moved hosts' ARP entries for the VIP to it, so announce ours again
            // (keepalived's garp_lower_prio_repeat).
            out.push(Action::SendAdvert { prio: self.prio });
            out.push(Action::SendGarp);
            self.arm(now + cs(self.cfg.advert_int_cs), out);
        }
    }

    fn arm(&mut self, at: Instant, out: &mut Vec<Action>) {
        self.timer = Some(at);
        out.push(Action::ArmTimer(at));
    }

    /// Leaves the election for `to`: a master first hands over (a priority-0 advert, so a
    /// backup takes over at once, and the VIP removed); the timer stops either way.
    fn stand_down(&mut self, to: State, reason: &'static str, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::SendAdvert { prio: 0 });
            out.push(Action::DelVip);
        }
        self.cancel(out);
        self.go(to, reason, out);
    }

    fn cancel(&mut self, out: &mut Vec<Action>) {
        if self.timer.take().is_some() {
            out.push(Action::CancelTimer);
        }
    }

    fn go(&mut self, to: State, reason: &'static str, out: &mut Vec<Action>) {
        if to != self.state {
            let from = self.state;
            self.state = to;
            if to != State::Backup {
                self.master = None;
            }
            out.push(Action::StateChanged { from, to, reason });
        }
    }
}

fn cs(c: u16) -> Duration {
    Duration::from_millis(u64::from(c) * 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::codec::Version::{V2, V3};

    const ME: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 250);
    const LOW_ADDR: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 10);
    const HIGH_ADDR: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 251);

    fn cfg(version: Version, priority: u8) -> FsmConfig {
        FsmConfig {
            version,
            priority,
            advert_int_cs: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary: ME,
        }
    }

    /// A priority-150 router that waits 10 s after its start before it preempts (a
    /// restarted balancer's `preempt_delay`).
    fn restarted_150() -> FsmConfig {
        FsmConfig {
            preempt_delay: Duration::from_secs(10),
            ..cfg(V2, 150)
        }
    }

    /// Replays events at offsets (ms) from a base instant, holo-style; returns the actions
    /// of each step.
    struct Replay {
        fsm: Fsm,
        t0: Instant,
    }

    impl Replay {
        fn new(c: FsmConfig) -> Self {
            Replay {
                fsm: Fsm::new(c),
                t0: Instant::now(),
            }
        }
        fn at(&mut self, ms: u64, ev: Event) -> Vec<Action> {
            self.fsm.handle(self.t0 + Duration::from_millis(ms), ev)
        }
        fn t(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        /// Fires the timer at its deadline; returns (ms offset, actions).
        fn fire(&mut self) -> (u64, Vec<Action>) {
            let at = self.fsm.timer().expect("timer armed");
            let ms = (at - self.t0).as_millis() as u64;
            (ms, self.fsm.handle(at, Event::Timer))
        }
    }

    fn adv(prio: u8, src: Ipv4Addr) -> Event {
        Event::Advert {
            prio,
            src,
            interval_cs: 100,
        }
    }

    fn changed(a: &[Action]) -> Option<(State, State)> {
        a.iter().find_map(|x| match x {
            Action::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
    }

    fn sends(a: &[Action]) -> Vec<u8> {
        a.iter()
            .filter_map(|x| match x {
                Action::SendAdvert { prio } => Some(*prio),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn intervals() {
        let f = Fsm::new(cfg(V2, 100));
        // v2: skew (256-100)/256 s = 609.375 ms, not scaled by the interval.
        assert_eq!(f.skew_time(), Duration::from_micros(609_375));
        assert_eq!(f.master_down_interval(), Duration::from_micros(3_609_375));
        let mut c = cfg(V2, 100);
        c.advert_int_cs = 300;
        assert_eq!(Fsm::new(c).skew_time(), Duration::from_micros(609_375));
        // v3: scaled by the (learned) interval: 156 * 1 s / 256.
        let f = Fsm::new(cfg(V3, 100));
        assert_eq!(f.skew_time(), Duration::from_micros(609_375));
        let mut c = cfg(V3, 100);
        c.advert_int_cs = 10;
        let f = Fsm::new(c);
        assert_eq!(f.skew_time(), Duration::from_micros(60_937));
        assert_eq!(f.master_down_interval(), Duration::from_micros(360_937));
    }

    #[test]
    fn startup_backup_then_master_after_master_down() {
        let mut r = Replay::new(cfg(V2, 100));
        let a = r.at(0, Event::Startup);
        assert_eq!(changed(&a), Some((State::Initialize, State::Backup)));
        assert!(a.contains(&Action::ArmTimer(r.t0 + Duration::from_micros(3_609_375))));
        // An early timer call does nothing.
        assert!(r.at(1000, Event::Timer).is_empty());
        let (ms, a) = r.fire();
        assert_eq!(ms, 3609);
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
        assert_eq!(
            &a[..3],
            &[
                Action::AddVip,
                Action::SendAdvert { prio: 100 },
                Action::SendGarp
            ]
        );
        // Then adverts every interval.
        let (ms2, a) = r.fire();
        assert_eq!(ms2, ms + 1000);
        assert_eq!(sends(&a), vec![100]);
        assert_eq!(r.fsm.master(), Some(ME));
    }

    #[test]
    fn owner_255_is_master_at_once() {
        let mut r = Replay::new(cfg(V3, 255));
        let a = r.at(0, Event::Startup);
        assert_eq!(changed(&a), Some((State::Initialize, State::Master)));
        assert!(a.contains(&Action::AddVip));
        // Penalties do not apply to the owner.
        r.at(10, Event::PriorityChanged(100));
        assert_eq!(r.fsm.priority(), 255);
    }

    #[test]
    fn master_death_backup_takes_over() {
        let mut r = Replay::new(cfg(V2, 100));
        r.at(0, Event::Startup);
        for k in 0..5u64 {
            let a = r.at(500 + k * 1000, adv(150, HIGH_ADDR));
            assert_eq!(
                a,
                vec![Action::ArmTimer(
                    r.t(500 + k * 1000) + Duration::from_micros(3_609_375)
                )]
            );
        }
        assert_eq!(r.fsm.master(), Some(HIGH_ADDR));
        // Master goes silent after t=4500: take over at 4500 + 3609.
        let (ms, a) = r.fire();
        assert_eq!(ms, 8109);
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
    }

    #[test]
    fn priority_zero_fast_takeover_after_skew() {
        let mut r = Replay::new(cfg(V2, 100));
        r.at(0, Event::Startup);
        r.at(500, adv(150, HIGH_ADDR));
        let a = r.at(900, adv(0, HIGH_ADDR));
        assert_eq!(
            a,
            vec![Action::ArmTimer(r.t(900) + Duration::from_micros(609_375))]
        );
        let (ms, a) = r.fire();
        assert_eq!(ms, 1509);
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
    }

    #[test]
    fn master_answers_priority_zero() {
        let mut r = Replay::new(cfg(V2, 150));
        r.at(0, Event::Startup);
        r.fire();
        let a = r.at(5000, adv(0, LOW_ADDR));
        assert_eq!(sends(&a), vec![150]);
        assert_eq!(r.fsm.state(), State::Master);
    }

    #[test]
    fn preemption_higher_priority_backup_takes_over_lower_master() {
        // We (150) start while a 100 is master: its adverts are discarded, Master_Down
        // expires, we become master; the old master yields on our higher advert.
        let mut r = Replay::new(cfg(V2, 150));
        r.at(0, Event::Startup);
        for k in 0..3u64 {
            assert!(
                r.at(200 + k * 1000, adv(100, HIGH_ADDR)).is_empty(),
                "discarded"
            );
        }
        let (ms, a) = r.fire();
        assert_eq!(ms, 3414); // 3 s + (256 - 150) / 256 s = 3.414 s
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));

        // And the other side: a 100 master hearing our 150 becomes backup.
        let mut low = Replay::new(cfg(V2, 100));
        low.at(0, Event::Startup);
        low.fire();
        assert_eq!(low.fsm.state(), State::Master);
        let a = low.at(5000, adv(150, HIGH_ADDR));
        assert_eq!(changed(&a), Some((State::Master, State::Backup)));
        assert!(a.contains(&Action::DelVip));
        assert!(sends(&a).is_empty());
    }

    #[test]
    fn nopreempt_keeps_lower_master() {
        let mut c = cfg(V2, 150);
        c.preempt = false;
        let mut r = Replay::new(c);
        r.at(0, Event::Startup);
        for k in 0..20u64 {
            let a = r.at(200 + k * 1000, adv(100, HIGH_ADDR));
            assert_eq!(a.len(), 1, "timer reset");
        }
        assert_eq!(r.fsm.state(), State::Backup);
        assert_eq!(r.fsm.master(), Some(HIGH_ADDR));
    }

    #[test]
    fn preempt_delay_counts_from_startup_then_preempts() {
        // A restarted 150 finds a 100 master (it took over while we were dead): during the
        // delay it follows it (timer reset, no VIP), then lets Master_Down run out.
        let mut r = Replay::new(restarted_150());
        r.at(0, Event::Startup);
        for k in 0..10u64 {
            let a = r.at(500 + k * 1000, adv(100, HIGH_ADDR));
            let down = r.t(500 + k * 1000) + r.fsm.master_down_interval();
            assert_eq!(a, vec![Action::ArmTimer(down)], "followed");
            assert_eq!(r.fsm.state(), State::Backup);
            assert_eq!(r.fsm.master(), Some(HIGH_ADDR));
        }
        assert!(
            r.at(10_500, adv(100, HIGH_ADDR)).is_empty(),
            "delay over: discarded"
        );
        let (ms, a) = r.fire();
        assert_eq!(ms, 9500 + 3414); // last followed at 9500, Master_Down = 3.414 s
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
        assert!(a.contains(&Action::AddVip));
    }

    #[test]
    fn preempt_delay_never_delays_a_master_when_there_is_none() {
        // Restarted with nobody master (both agents restarted, or the other is dead): the
        // delay is about deferring to a live master, not about leaving the VIP unowned.
        let mut r = Replay::new(restarted_150());
        r.at(0, Event::Startup);
        let (ms, a) = r.fire();
        assert_eq!(ms, 3414);
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
    }

    #[test]
    fn preempt_delay_is_over_for_a_node_that_has_been_up() {
        // Long after startup, a master whose priority drops below ours (its backends
        // failed) is preempted as without a delay: only a restart waits.
        let mut r = Replay::new(restarted_150());
        r.at(0, Event::Startup);
        for k in 0..30u64 {
            assert_eq!(r.at(200 + k * 1000, adv(200, HIGH_ADDR)).len(), 1);
        }
        assert!(
            r.at(30_200, adv(90, HIGH_ADDR)).is_empty(),
            "discarded at once"
        );
        let (ms, a) = r.fire();
        assert_eq!(ms, 29_200 + 3414);
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
    }

    #[test]
    fn restart_race_settles_on_one_master_without_a_flap() {
        // The SIGKILL case replayed: bal1 (150) dies right after an advert at 0; bal2
        // (100) takes over at its Master_Down (3.609 s); bal1's agent is back at 300 ms
        // with a 10 s preempt_delay. bal2's first advert reaches bal1 before bal1's own
        // Master_Down (3.714 s): bal1 follows it instead of taking the VIP back at once.
        let mut b1 = Replay::new(restarted_150());
        let mut b2 = Replay::new(FsmConfig {
            primary: HIGH_ADDR,
            ..cfg(V2, 100)
        });
        b2.at(0, Event::Startup);
        b2.at(0, adv(150, ME));
        b1.at(300, Event::Startup);
        let (ms, a) = b2.fire();
        assert_eq!(ms, 3609);
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
        let a = b1.at(ms + 1, adv(100, HIGH_ADDR));
        assert_eq!(changed(&a), None, "bal1 follows bal2: no second VIP move");
        assert_eq!(b1.fsm.master(), Some(HIGH_ADDR));
        // Without the delay bal1 would have discarded it and preempted at 3.714 s.
        let mut b1 = Replay::new(cfg(V2, 150));
        b1.at(300, Event::Startup);
        assert!(b1.at(ms + 1, adv(100, HIGH_ADDR)).is_empty());
        assert_eq!(b1.fire().0, 3714);
    }

    #[test]
    fn equal_priority_higher_address_wins() {
        // Both masters (e.g. after a partition): the lower address yields.
        let mut r = Replay::new(cfg(V2, 100));
        r.at(0, Event::Startup);
        r.fire();
        let a = r.at(4000, adv(100, HIGH_ADDR));
        assert_eq!(changed(&a), Some((State::Master, State::Backup)));
        // The higher address keeps mastership and answers.
        let mut r = Replay::new(cfg(V2, 100));
        r.at(0, Event::Startup);
        r.fire();
        let a = r.at(4000, adv(100, LOW_ADDR));
        assert_eq!(changed(&a), None);
        assert_eq!(sends(&a), vec![100]);
        // In Backup an equal priority simply resets the timer, whatever the address.
        let mut r = Replay::new(cfg(V2, 100));
        r.at(0, Event::Startup);
        assert_eq!(r.at(500, adv(100, LOW_ADDR)).len(), 1);
        assert_eq!(r.fsm.state(), State::Backup);
    }

    #[test]
    fn master_answers_lower_priority_at_once() {
        let mut r = Replay::new(cfg(V3, 150));
        r.at(0, Event::Startup);
        r.fire();
        let a = r.at(3700, adv(100, HIGH_ADDR));
        assert_eq!(sends(&a), vec![150]);
        assert!(
            a.contains(&Action::SendGarp),
            "re-announce the VIP after a partition: {a:?}"
        );
        assert_eq!(r.fsm.state(), State::Master);
        assert!(a.contains(&Action::ArmTimer(r.t(4700))));
    }

    #[test]
    fn v3_learns_master_interval() {
        let mut r = Replay::new(cfg(V3, 100));
        r.at(0, Event::Startup);
        let a = r.at(
            100,
            Event::Advert {
                prio: 200,
                src: HIGH_ADDR,
                interval_cs: 10,
            },
        );
        // 3 × 100 ms + (156 × 100 ms) / 256.
        assert_eq!(
            a,
            vec![Action::ArmTimer(
                r.t(100) + Duration::from_micros(300_000 + 60_937)
            )]
        );
        assert_eq!(r.fsm.master_adver_interval(), Duration::from_millis(100));
    }

    #[test]
    fn shutdown_sends_priority_zero_and_removes_vip() {
        let mut r = Replay::new(cfg(V2, 150));
        r.at(0, Event::Startup);
        r.fire();
        let a = r.at(5000, Event::Shutdown);
        assert_eq!(
            a,
            vec![
                Action::SendAdvert { prio: 0 },
                Action::DelVip,
                Action::CancelTimer,
                Action::StateChanged {
                    from: State::Master,
                    to: State::Initialize,
                    reason: "shutdown"
                }
            ]
        );
        // A backup shuts down quietly.
        let mut r = Replay::new(cfg(V2, 100));
        r.at(0, Event::Startup);
        assert!(sends(&r.at(10, Event::Shutdown)).is_empty());
    }

    #[test]
    fn interface_down_fault_and_back() {
        let mut r = Replay::new(cfg(V2, 150));
        r.at(0, Event::Startup);
        r.fire();
        let a = r.at(5000, Event::InterfaceDown);
        assert_eq!(sends(&a), vec![0]);
        assert!(a.contains(&Action::DelVip));
        assert_eq!(changed(&a), Some((State::Master, State::Fault)));
        assert!(
            r.at(5500, adv(100, HIGH_ADDR)).is_empty(),
            "ignored in Fault"
        );
        let a = r.at(6000, Event::InterfaceUp);
        assert_eq!(changed(&a), Some((State::Fault, State::Backup)));
        // Startup with the link down goes straight to Fault.
        let mut r = Replay::new(cfg(V2, 150));
        r.at(0, Event::InterfaceDown);
        assert_eq!(
            changed(&r.at(1, Event::Startup)),
            Some((State::Initialize, State::Fault))
        );
    }

    #[test]
    fn penalty_gives_the_vip_away() {
        // Master 150 becomes unhealthy (150 - 60 = 90): it advertises 90 at once; the
        // 100 backup then discards its adverts, takes over; 90 yields on hearing 100.
        let mut m = Replay::new(cfg(V2, 150));
        m.at(0, Event::Startup);
        m.fire();
        let a = m.at(5000, Event::PriorityChanged(90));
        assert_eq!(sends(&a), vec![90]);
        let mut b = Replay::new(cfg(V2, 100));
        b.at(0, Event::Startup);
        assert!(b.at(5000, adv(90, HIGH_ADDR)).is_empty());
        let (_, a) = b.fire();
        assert_eq!(changed(&a), Some((State::Backup, State::Master)));
        let a = m.at(9000, adv(100, LOW_ADDR));
        assert_eq!(changed(&a), Some((State::Master, State::Backup)));
        // Priority never drops below 1.
        m.at(9100, Event::PriorityChanged(0));
        assert_eq!(m.fsm.priority(), 1);
    }
}
