//! When to restart a daemon that failed (pure): like systemd's `Restart=on-failure` with
//! `RestartSec=100ms` and `RestartSteps`/`RestartMaxDelaySec`, the delay starts at
//! [`INITIAL`], doubles after each failure up to [`CAP`], and falls back to [`INITIAL`]
//! once the daemon had run for [`STABLE`] before failing. A daemon that crashes at once in
//! a loop costs a restart every 5 s, not a busy loop; one that crashes once after running
//! for a while is back in 100 ms.
#![forbid(unsafe_code)]

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_millis(100);
pub const CAP: Duration = Duration::from_secs(5);
pub const STABLE: Duration = Duration::from_secs(10);

/// Whether an exit deserves a restart (`on-failure`): a non-zero status or an unclean
/// signal. As systemd counts them, status 0 and death by SIGTERM, SIGINT, SIGHUP or
/// SIGPIPE are clean: someone asked the daemon to stop, and that is respected (a test or
/// an operator stopping one server stays stopped); SIGKILL, SIGSEGV, SIGABRT are failures.
pub fn restart_on(status: std::process::ExitStatus) -> bool {
    use nix::sys::signal::Signal::{SIGHUP, SIGINT, SIGPIPE, SIGTERM};
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(s) => ![SIGTERM, SIGINT, SIGHUP, SIGPIPE]
            .iter()
            .any(|c| *c as i32 == s),
        None => !status.success(),
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: INITIAL }
    }
}

impl Backoff {
    /// The delay before the next start, for a daemon that failed after running `ran`.
    pub fn after_failure(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE {
            self.next = INITIAL;
        }
        let d = self.next;
        self.next = (self.next * 2).min(CAP);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_stable_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(50);
        let ms: Vec<u128> = (0..9).map(|_| b.after_failure(quick).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(
            b.after_failure(STABLE).as_millis(),
            100,
            "stable run resets"
        );
        assert_eq!(b.after_failure(quick).as_millis(), 200);
    }

    #[test]
    fn restarts_on_failure_only() {
        use std::process::ExitStatus;
        assert!(!restart_on(ExitStatus::from_raw(0)));
        assert!(restart_on(ExitStatus::from_raw(1 << 8)), "exit 1");
        assert!(restart_on(ExitStatus::from_raw(9)), "SIGKILL");
        assert!(restart_on(ExitStatus::from_raw(6)), "SIGABRT");
        assert!(!restart_on(ExitStatus::from_raw(15)), "SIGTERM is a stop");
    }
}
