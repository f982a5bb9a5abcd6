//! Rate limit for a warning that can repeat in a hot loop (a socket error every 10 ms, an
//! accept error per connection attempt): it goes through at most once per interval, and
//! the next one that does says how many were held back. Pure: the caller gives the time.

use std::time::{Duration, Instant};

/// One warning's limiter; keep one per call site (a field or a loop-local).
#[derive(Debug, Clone)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// At most one warning per `every`.
    pub const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// The warning happened at `now`: `Some(n)` when it should be logged, `n` being how
    /// many were suppressed since the last one logged; `None` when it is suppressed.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every);
        if due {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// [`LogLimit::hit`] with the real clock.
    pub fn hit_now(&mut self) -> Option<u64> {
        self.hit(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_with_the_count_of_what_was_held_back() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = LogLimit::new(Duration::from_secs(1));
        assert_eq!(l.hit(at(0)), Some(0));
        // Every 10 ms for a second: 99 held back.
        let through: Vec<_> = (1..100).filter_map(|i| l.hit(at(i * 10))).collect();
        assert!(through.is_empty(), "{through:?}");
        assert_eq!(l.hit(at(1000)), Some(99));
        // Quiet for a while: the next one goes through at once, with nothing held back.
        assert_eq!(l.hit(at(5000)), Some(0));
        assert_eq!(l.hit(at(5001)), None);
        assert_eq!(l.hit(at(6001)), Some(1));
    }

    #[test]
    fn a_clock_going_backwards_holds_back_rather_than_floods() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut l = LogLimit::new(Duration::from_secs(1));
        assert_eq!(l.hit(t0), Some(0));
        assert_eq!(l.hit(t0 - Duration::from_secs(5)), None);
        assert_eq!(l.hit(t0 + Duration::from_secs(1)), Some(1));
    }
}
