//! Runtime state of one backend server, shared by the proxy (which picks backends and
//! reports passive failures), the health checker (which records check results) and the
//! admin listener (which exports it). The up/down hysteresis (rise/fall) lives here, pure,
//! so it is unit-tested without sockets.

use super::counter::Counter;
use super::estimate::Estimate;
use super::observe::{Observer, L4};
use crate::locks::lock;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Why a check (or a live request) failed; shown in logs and stats.
pub type Reason = String;

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub ok: bool,
    /// "200 OK", "connection refused", "timeout", "status 500"...
    pub reason: Reason,
    pub duration_ms: u64,
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// Active check or passive (live traffic) observation.
    pub passive: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CheckState {
    pub last: Option<CheckResult>,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    /// Seconds since the Unix epoch of the last up/down transition.
    pub last_change: f64,
    pub transitions: u64,
    /// Why the last up/down transition happened (None before the first).
    pub change_reason: Option<Reason>,
}

/// A change of a backend's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub backend: String,
    pub up: bool,
    pub reason: Reason,
}

/// Response counters by class (1xx..5xx) and other traffic counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: Counter,
    pub responses: [Counter; 5],
    /// Connection failures, timeouts, resets talking to this backend.
    pub failures: Counter,
    /// Requests retried on a reused connection the backend had closed.
    pub retries: Counter,
    /// Requests moved to another backend after this one failed.
    pub redispatches: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Sum of response times (time to response head), for the average.
    pub response_time_us_total: Counter,
    /// Response times (time to response head) as a histogram, for p50/p99 over time.
    pub latency: super::latency::Latency,
}

pub struct BackendState {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub pool: String,
    healthy: AtomicBool,
    /// Requests in flight (leastconn).
    pub active: Counter,
    pub counters: Counters,
    check: Mutex<CheckState>,
    /// Copy of `check.consecutive_fail`, read without the lock on every proxied request
    /// (the proxy's passive check only needs to know whether it is non-zero).
    failing: AtomicU32,
    /// Connect times measured by the proxy and the health checks (the auto timeouts).
    estimate: Mutex<Estimate>,
    /// Live traffic's consecutive layer-4 errors (`observe layer4`).
    observer: Mutex<Observer>,
    /// Bumped at every transition to down: pooled connections opened before it are not
    /// reused (every proxy thread's pool compares it at checkout).
    epoch: AtomicU64,
    /// Wakes the health checker when live traffic marked the backend down, so it checks
    /// at once and then at `fastinter` rather than finishing its `inter` sleep.
    pub recheck: tokio::sync::Notify,
}

/// Seconds since the Unix epoch, as the stats show times.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

impl BackendState {
    /// A backend starts up, as in HAProxy: it goes down after `fall` failed checks.
    pub fn new(name: &str, addr: SocketAddr, weight: u32, pool: &str) -> BackendState {
        BackendState {
            name: name.to_string(),
            addr,
            weight,
            pool: pool.to_string(),
            healthy: AtomicBool::new(true),
            active: Counter::new(0),
            counters: Counters::default(),
            check: Mutex::new(CheckState {
                last_change: now_epoch(),
                ..Default::default()
            }),
            failing: AtomicU32::new(0),
            estimate: Mutex::new(Estimate::default()),
            observer: Mutex::new(Observer::default()),
            epoch: AtomicU64::new(0),
            recheck: tokio::sync::Notify::new(),
        }
    }

    /// Adds a measured connect time to the estimate.
    pub fn connect_sample(&self, took: Duration) {
        lock(&self.estimate).sample(took);
    }

    pub fn estimate(&self) -> Estimate {
        *lock(&self.estimate)
    }

    /// The number of down transitions so far (see `epoch`).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Feeds one layer-4 observation of live traffic; marks the backend down at once when
    /// `error_limit` errors came in a row (see [`super::observe`]). Returns the transition.
    pub fn observe_l4(
        &self,
        seen: L4,
        error_limit: u32,
        reason: &str,
        took: Duration,
    ) -> Option<Transition> {
        if !lock(&self.observer).observe(seen, error_limit) {
            return None;
        }
        lock(&self.observer).reset();
        self.mark_down(reason, took)
    }

    /// Takes an up backend down now (HAProxy's `on-error mark-down`): the health checks
    /// need `rise` successes to bring it back. None if it was already down.
    pub fn mark_down(&self, reason: &str, took: Duration) -> Option<Transition> {
        let mut st = lock(&self.check);
        st.last = Some(CheckResult {
            ok: false,
            reason: reason.to_string(),
            duration_ms: took.as_millis() as u64,
            at: now_epoch(),
            passive: true,
        });
        st.consecutive_ok = 0;
        st.consecutive_fail = st.consecutive_fail.max(1);
        self.failing.store(st.consecutive_fail, Ordering::Relaxed);
        if !self.is_up() {
            return None;
        }
        Some(self.flip(&mut st, false, reason))
    }

    /// Applies an up/down transition under the check lock.
    fn flip(&self, st: &mut CheckState, up: bool, reason: &str) -> Transition {
        self.healthy.store(up, Ordering::Relaxed);
        if !up {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.recheck.notify_one();
        }
        st.last_change = now_epoch();
        st.transitions += 1;
        st.change_reason = Some(reason.to_string());
        Transition {
            backend: self.name.clone(),
            up,
            reason: reason.to_string(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Consecutive failed observations (checks or live traffic) so far.
    pub fn consecutive_fail(&self) -> u32 {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn check_state(&self) -> CheckState {
        lock(&self.check).clone()
    }

    /// Records one observation and applies the rise/fall hysteresis: `rise` consecutive
    /// successes bring a down backend up, `fall` consecutive failures take an up backend
    /// down. Returns the transition, if any, for the caller to log.
    pub fn record(
        &self,
        ok: bool,
        reason: &str,
        duration: Duration,
        passive: bool,
        rise: u32,
        fall: u32,
    ) -> Option<Transition> {
        let mut st = lock(&self.check);
        st.last = Some(CheckResult {
            ok,
            reason: reason.to_string(),
            duration_ms: duration.as_millis() as u64,
            at: now_epoch(),
            passive,
        });
        if ok {
            st.consecutive_ok += 1;
            st.consecutive_fail = 0;
        } else {
            st.consecutive_fail += 1;
            st.consecutive_ok = 0;
        }
        self.failing.store(st.consecutive_fail, Ordering::Relaxed);
        let up = self.is_up();
        let flip = if up {
            !ok && st.consecutive_fail >= fall.max(1)
        } else {
            ok && st.consecutive_ok >= rise.max(1)
        };
        if !flip {
            return None;
        }
        Some(self.flip(&mut st, !up, reason))
    }

    /// Counts a response of status `code` in its class.
    pub fn count_response(&self, code: u16) {
        let class = (code / 100).clamp(1, 5) as usize - 1;
        self.counters.responses[class].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> BackendState {
        BackendState::new("s1", "127.0.0.1:80".parse().unwrap(), 1, "default")
    }

    #[test]
    fn a_panic_under_the_check_lock_does_not_poison_later_checks() {
        let s = b();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = s.check.lock().unwrap();
            panic!("a check panicked");
        }));
        assert!(r.is_err() && s.check.is_poisoned());
        for _ in 0..3 {
            s.record(false, "refused", Duration::ZERO, false, 2, 3);
        }
        assert!(!s.is_up());
        assert_eq!(s.check_state().consecutive_fail, 3);
    }

    #[test]
    fn starts_up_and_falls_after_fall_failures() {
        let s = b();
        assert!(s.is_up());
        assert_eq!(
            s.record(false, "refused", Duration::ZERO, false, 2, 3),
            None
        );
        assert_eq!(
            s.record(false, "refused", Duration::ZERO, false, 2, 3),
            None
        );
        let t = s
            .record(false, "timeout", Duration::ZERO, false, 2, 3)
            .unwrap();
        assert!(!t.up && t.reason == "timeout");
        assert!(!s.is_up());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let s = b();
        s.record(false, "x", Duration::ZERO, false, 2, 3);
        s.record(false, "x", Duration::ZERO, false, 2, 3);
        s.record(true, "200", Duration::ZERO, false, 2, 3);
        s.record(false, "x", Duration::ZERO, false, 2, 3);
        s.record(false, "x", Duration::ZERO, false, 2, 3);
        assert!(s.is_up());
    }

    #[test]
    fn rises_after_rise_successes() {
        let s = b();
        for _ in 0..3 {
            s.record(false, "x", Duration::ZERO, false, 2, 3);
        }
        assert!(!s.is_up());
        assert_eq!(s.record(true, "200", Duration::ZERO, false, 2, 3), None);
        let t = s.record(true, "200", Duration::ZERO, false, 2, 3).unwrap();
        assert!(t.up);
        assert_eq!(s.check_state().transitions, 2);
    }

    #[test]
    fn observe_layer4_marks_down_at_the_error_limit_and_bumps_the_epoch() {
        let s = b();
        assert_eq!(
            s.observe_l4(L4::ConnectFailed, 2, "connect timeout", Duration::ZERO),
            None
        );
        assert!(s.is_up());
        let t = s
            .observe_l4(L4::Silent, 2, "silent", Duration::ZERO)
            .unwrap();
        assert!(!t.up && t.reason == "silent");
        assert!(!s.is_up());
        assert_eq!(s.epoch(), 1);
        // Down already: nothing more to flip; two check successes bring it back.
        assert_eq!(s.mark_down("again", Duration::ZERO), None);
        assert_eq!(s.record(true, "200", Duration::ZERO, false, 2, 3), None);
        assert!(
            s.record(true, "200", Duration::ZERO, false, 2, 3)
                .unwrap()
                .up
        );
        assert_eq!(s.epoch(), 1);
    }

    #[test]
    fn response_classes() {
        let s = b();
        s.count_response(200);
        s.count_response(503);
        s.count_response(502);
        assert_eq!(s.counters.responses[1].load(Ordering::Relaxed), 1);
        assert_eq!(s.counters.responses[4].load(Ordering::Relaxed), 2);
    }
}
