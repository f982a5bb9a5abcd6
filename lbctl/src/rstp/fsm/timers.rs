//! The per-port timers of 17.17, kept as deadlines.
//!
//! The standard counts each timer down once per second (17.22) and tests "timer == 0"; a
//! deadline expresses the same with exact times, so a BPDU or a link event acts at once and
//! the daemon only needs to tick at [`super::Bridge::next_deadline`]. A timer is zero when it
//! has no deadline or its deadline has passed.

use super::super::types::Times;
use std::time::Duration;

/// One timer: `None` is zero; `Some(t)` runs until `t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Timer(Option<Duration>);

impl Timer {
    /// The timer is zero (17.17: expired or never started).
    pub(super) fn is_zero(self, now: Duration) -> bool {
        self.0.is_none_or(|t| t <= now)
    }

    /// Starts the timer with `value` from `now` (a zero value stops it).
    pub(super) fn set(&mut self, now: Duration, value: Duration) {
        self.0 = (!value.is_zero()).then_some(now + value);
    }

    pub(super) fn stop(&mut self) {
        self.0 = None;
    }

    /// The timer holds exactly `value`, i.e. was (re)started with it at `now`.
    pub(super) fn holds(self, now: Duration, value: Duration) -> bool {
        if value.is_zero() {
            return self.0.is_none();
        }
        self.0 == Some(now + value)
    }

    /// The timer ran out at or before `now` (it was started and has not been stopped).
    pub(super) fn fired(self, now: Duration) -> bool {
        self.0.is_some_and(|t| t <= now)
    }

    /// The deadline still ahead of `now`, for [`super::Bridge::next_deadline`].
    pub(super) fn deadline(self) -> Option<Duration> {
        self.0
    }
}

/// A time in the wire's unit (1/256 s) as a duration; 256 units are exactly one second.
pub(super) fn wire(units: u16) -> Duration {
    Duration::from_nanos(u64::from(units) * 1_000_000_000 / u64::from(Times::SECOND))
}

/// Whole seconds as a duration.
pub(super) fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_zero_set_holds() {
        let now = Duration::from_secs(10);
        let mut t = Timer::default();
        assert!(t.is_zero(now));
        t.set(now, secs(3));
        assert!(!t.is_zero(now));
        assert!(t.holds(now, secs(3)));
        assert!(!t.holds(now + Duration::from_millis(1), secs(3)));
        assert!(t.is_zero(now + secs(3)));
        t.set(now, Duration::ZERO);
        assert!(t.is_zero(now) && t.holds(now, Duration::ZERO));
        assert_eq!(wire(256), secs(1));
        assert_eq!(wire(128), Duration::from_millis(500));
    }
}
