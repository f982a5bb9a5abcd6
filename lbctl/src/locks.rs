//! Locking that a panic cannot poison for everyone else. A `std::sync::Mutex` held by a
//! task that panics is poisoned, and `lock().expect(..)` then panics in every request that
//! touches it: one bad request becomes a dead proxy. The state behind our locks (counters,
//! a connection's phase, idle pooled connections, check results) stays valid whatever
//! point a panic interrupted, so the guard is taken back from the poison error.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard if an earlier holder panicked.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_panic_while_locked_does_not_poison_the_next_user() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let mut g = lock(&m2);
            *g = 2;
            panic!("a request panics while holding the lock");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 3);
    }
}
