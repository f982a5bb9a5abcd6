//! The connect-time estimate of one backend and the timeouts derived from it (sans-IO).
//!
//! On a LAN a TCP connect takes well under a millisecond, so a fixed 2 s connect timeout
//! (longer than most clients' own deadline) turns a backend that silently drops packets
//! into failed requests. Like TCP's retransmission timer (RFC 6298), we keep a smoothed
//! connect time and its mean deviation from every connect the agent makes (live traffic
//! and health checks), and wait `FACTOR` times `srtt + 4·rttvar`, never less than a floor
//! (a scheduler hiccup or a delayed ACK must not look like a dead backend) nor more than a
//! ceiling. An explicit `connect_ms` / `first_byte_ms` replaces the estimate (HAProxy's
//! `timeout connect`).
#![forbid(unsafe_code)]

use std::time::Duration;

/// How many estimated connect times a connect may take before it is called lost.
pub const FACTOR: u32 = 4;
/// Shortest automatic connect timeout.
pub const CONNECT_FLOOR: Duration = Duration::from_millis(50);
/// Shortest automatic wait for a first response byte before a replayable request is
/// checked for silence: above Linux's usual 40 ms delayed-ACK timer, so a backend that is
/// alive has most often acknowledged the request by then (when not, a connect probe
/// tells a live host from a silent one).
pub const FIRST_BYTE_FLOOR: Duration = Duration::from_millis(100);
/// Longest automatic timeout, and the one used before any connect was measured.
pub const CEILING: Duration = Duration::from_millis(1000);

/// Smoothed connect time (µs) and its mean deviation, RFC 6298's gains (1/8, 1/4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// None until the first sample.
    srtt_us: Option<u64>,
    rttvar_us: u64,
}

impl Estimate {
    /// Adds one measured connect time.
    pub fn sample(&mut self, took: Duration) {
        let r = took.as_micros().min(u64::MAX as u128) as u64;
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(s) => {
                self.rttvar_us = (3 * self.rttvar_us + s.abs_diff(r)) / 4;
                self.srtt_us = Some((7 * s + r) / 8);
            }
        }
    }

    /// The smoothed connect time, once measured.
    pub fn smoothed(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// `FACTOR × (srtt + 4·rttvar)` clamped to `[floor, CEILING]`; CEILING before the first
    /// sample.
    pub fn timeout(&self, floor: Duration) -> Duration {
        let Some(s) = self.srtt_us else {
            return CEILING.max(floor);
        };
        let t = Duration::from_micros(s.saturating_add(self.rttvar_us.saturating_mul(4)));
        (t * FACTOR).clamp(floor, CEILING.max(floor))
    }
}

/// The connect timeout: `explicit_ms` when configured, else the estimate's.
pub fn connect_timeout(explicit_ms: Option<u64>, e: &Estimate) -> Duration {
    match explicit_ms {
        Some(ms) => Duration::from_millis(ms.max(1)),
        None => e.timeout(CONNECT_FLOOR),
    }
}

/// The first-byte wait: `explicit_ms` when configured, else the estimate's.
pub fn first_byte_wait(explicit_ms: Option<u64>, e: &Estimate) -> Duration {
    match explicit_ms {
        Some(ms) => Duration::from_millis(ms.max(1)),
        None => e.timeout(FIRST_BYTE_FLOOR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn unmeasured_backends_get_the_ceiling() {
        let e = Estimate::default();
        assert_eq!(e.timeout(CONNECT_FLOOR), CEILING);
        assert_eq!(connect_timeout(None, &e), CEILING);
        assert_eq!(e.smoothed(), None);
    }

    #[test]
    fn a_lan_backend_gets_the_floor() {
        let mut e = Estimate::default();
        for _ in 0..20 {
            e.sample(us(300));
        }
        assert_eq!(e.smoothed(), Some(us(300)));
        assert_eq!(connect_timeout(None, &e), CONNECT_FLOOR);
        assert_eq!(first_byte_wait(None, &e), FIRST_BYTE_FLOOR);
    }

    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_deviation() {
        let mut e = Estimate::default();
        e.sample(Duration::from_millis(20));
        // 4 × (20 + 4 × 10) ms = 240 ms.
        assert_eq!(e.timeout(CONNECT_FLOOR), Duration::from_millis(240));
    }

    #[test]
    fn smoothing_follows_rfc6298_gains() {
        let mut e = Estimate::default();
        e.sample(Duration::from_millis(8));
        e.sample(Duration::from_millis(16));
        // rttvar = (3 × 4 + |8 − 16|) / 4 = 5 ms; srtt = (7 × 8 + 16) / 8 = 9 ms.
        assert_eq!(e.smoothed(), Some(Duration::from_millis(9)));
        assert_eq!(
            e.timeout(CONNECT_FLOOR),
            Duration::from_millis(4 * (9 + 20))
        );
    }

    #[test]
    fn slow_or_jittery_backends_are_capped_at_the_ceiling() {
        let mut e = Estimate::default();
        e.sample(Duration::from_millis(400));
        assert_eq!(e.timeout(CONNECT_FLOOR), CEILING);
    }

    #[test]
    fn an_explicit_value_wins() {
        let mut e = Estimate::default();
        e.sample(us(100));
        assert_eq!(connect_timeout(Some(2000), &e), Duration::from_secs(2));
        assert_eq!(first_byte_wait(Some(0), &e), Duration::from_millis(1));
    }
}
