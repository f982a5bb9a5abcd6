//! HAProxy's `observe layer4` + `error-limit N` + `on-error mark-down`, sans-IO: live
//! traffic's connect failures, connect timeouts and silences (a request the backend's
//! TCP stack never acknowledged) are counted per backend; `error_limit` of them in a row
//! take the backend down at once, without waiting for `fall` health checks. Any
//! successful connect or acknowledged request resets the count. Bringing the backend
//! back up stays the health checks' job (`rise` successes).
#![forbid(unsafe_code)]

/// What live traffic saw at layer 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// A connect succeeded, or the backend acknowledged (or answered) a request.
    Ok,
    /// Refused, unreachable, reset right after connect, or the connect timed out.
    ConnectFailed,
    /// The backend's TCP stack did not acknowledge a request within the first-byte wait.
    Silent,
}

/// Consecutive layer-4 errors of one backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observer {
    errors: u32,
}

impl Observer {
    /// Counts `seen`; true when the backend must be marked down now (the count reached
    /// `error_limit`; 0 disables the observation).
    pub fn observe(&mut self, seen: L4, error_limit: u32) -> bool {
        match seen {
            L4::Ok => {
                self.errors = 0;
                false
            }
            L4::ConnectFailed | L4::Silent => {
                self.errors = self.errors.saturating_add(1);
                error_limit > 0 && self.errors >= error_limit
            }
        }
    }

    /// Consecutive errors so far.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Forgets the errors (the backend was marked down: the next run starts afresh).
    pub fn reset(&mut self) {
        self.errors = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_two_needs_two_errors_in_a_row() {
        let mut o = Observer::default();
        assert!(!o.observe(L4::ConnectFailed, 2));
        assert!(!o.observe(L4::Ok, 2));
        assert!(!o.observe(L4::Silent, 2));
        assert!(o.observe(L4::ConnectFailed, 2));
        assert_eq!(o.errors(), 2);
    }

    #[test]
    fn limit_one_marks_down_at_the_first_error() {
        let mut o = Observer::default();
        assert!(o.observe(L4::Silent, 1));
    }

    #[test]
    fn limit_zero_never_marks_down() {
        let mut o = Observer::default();
        for _ in 0..100 {
            assert!(!o.observe(L4::ConnectFailed, 0));
        }
        o.reset();
        assert_eq!(o.errors(), 0);
    }
}
