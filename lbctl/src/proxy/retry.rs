//! The retry decisions of one request, sans-IO: which requests may be sent twice, how
//! long each attempt may take under the request's one deadline, and what follows a
//! backend that stays quiet after a request was written. The I/O is in `client`.
#![forbid(unsafe_code)]

use hyper::Method;
use std::time::{Duration, Instant};

/// A request that may be sent to a second backend: its method is idempotent (RFC 9110
/// §9.2.2) and it has no body (a body is streamed from the client, not kept, so it
/// cannot be sent again).
pub fn replayable(method: &Method, has_body: bool) -> bool {
    let idempotent = matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    idempotent && !has_body
}

/// The one deadline of a request across all its connects, redispatches and retries
/// (without it, N backends that each take the whole connect timeout cost N times it).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn new(start: Instant, budget: Duration) -> Deadline {
        Deadline { at: start + budget }
    }

    /// Time left at `now`; zero once passed.
    pub fn left(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// What one step that would take `want` may take at `now`: `want`, or what is left
    /// of the request's deadline if that is shorter; None once the deadline has passed.
    pub fn cap(&self, want: Duration, now: Instant) -> Option<Duration> {
        let left = self.left(now);
        (!left.is_zero()).then(|| want.min(left))
    }
}

/// What to do when a request's first response byte has not come within the first-byte
/// wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// Send it to another backend now (and count the silence against this one).
    Retry,
    /// The backend has it, may have it, or the request must not be sent twice: wait for
    /// the answer up to the deadline.
    KeepWaiting,
}

/// Whether a quiet backend is worth a connect probe: only for a replayable request it has
/// not acknowledged (anything else waits whatever the probe would say).
pub fn worth_probing(replayable: bool, acknowledged: bool) -> bool {
    replayable && !acknowledged
}

/// A backend that has neither acknowledged the request at TCP level nor answers a new
/// connect is gone (black hole, dead host, cut path): a replayable request is retried
/// elsewhere, which cannot run it twice since the backend never received it. An
/// acknowledged request is only slow; an unacknowledged one to a host that still answers
/// SYNs may be waiting for the host's delayed ACK (up to 200 ms on Linux): both wait.
pub fn when_quiet(replayable: bool, acknowledged: bool, connect_answered: bool) -> Quiet {
    if worth_probing(replayable, acknowledged) && !connect_answered {
        Quiet::Retry
    } else {
        Quiet::KeepWaiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_requests_without_body_are_replayable() {
        assert!(replayable(&Method::GET, false));
        assert!(replayable(&Method::DELETE, false));
        assert!(!replayable(&Method::GET, true));
        assert!(!replayable(&Method::POST, false));
        assert!(!replayable(&Method::PATCH, false));
        assert!(!replayable(&Method::PUT, true));
    }

    #[test]
    fn one_deadline_caps_every_attempt() {
        let t0 = Instant::now();
        let d = Deadline::new(t0, Duration::from_millis(300));
        let ms = Duration::from_millis;
        // Three backends with a 200 ms connect timeout: 200, then 100, then nothing.
        assert_eq!(d.cap(ms(200), t0), Some(ms(200)));
        assert_eq!(d.cap(ms(200), t0 + ms(200)), Some(ms(100)));
        assert_eq!(d.cap(ms(200), t0 + ms(300)), None);
        assert_eq!(d.left(t0 + ms(400)), Duration::ZERO);
    }

    #[test]
    fn only_unacknowledged_replayable_requests_to_a_dead_host_are_retried() {
        assert_eq!(when_quiet(true, false, false), Quiet::Retry);
        // Alive: its ACK may be delayed, or it is just slow.
        assert_eq!(when_quiet(true, false, true), Quiet::KeepWaiting);
        assert_eq!(when_quiet(true, true, false), Quiet::KeepWaiting);
        // Not replayable: never sent twice.
        assert_eq!(when_quiet(false, false, false), Quiet::KeepWaiting);
        assert!(worth_probing(true, false));
        assert!(!worth_probing(true, true) && !worth_probing(false, false));
    }
}
