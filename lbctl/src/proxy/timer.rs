//! One reusable timer per client connection for the per-request first-byte wait.
//!
//! A fresh tokio timer per request cost a system call on about one request in three: a
//! new timer earlier than the time driver's next wake-up makes tokio wake the driver
//! (an eventfd write, and the event loop's next `epoll_wait` returns at once for it),
//! although on our one-thread event loops the driver is never parked while a request
//! runs. A timer moved to a later deadline is only re-marked in place (no lock, no
//! wake-up), and each request's deadline on a connection is later than the one before:
//! so the connection keeps its timer ([`TimerSlot`]), lends it to each request
//! ([`Timer`], given back on drop) and moves it forward.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Where a connection keeps its timer between requests.
#[derive(Default)]
pub struct TimerSlot(Mutex<Option<Pin<Box<Sleep>>>>);

impl TimerSlot {
    /// Lends the connection's timer (a new one the first time) until the `Timer` drops.
    pub fn lend(self: &Arc<Self>) -> Timer {
        Timer {
            sleep: crate::locks::lock(&self.0).take(),
            home: Some(self.clone()),
        }
    }
}

/// A timer lent to one request (or one of its own, [`Timer::default`]).
#[derive(Default)]
pub struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    home: Option<Arc<TimerSlot>>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let (Some(s), Some(home)) = (self.sleep.take(), &self.home) {
            *crate::locks::lock(&home.0) = Some(s);
        }
    }
}

/// `fut` ran past its limit.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

impl Timer {
    /// `fut`'s output, or `Elapsed` once `limit` has passed (tokio's `timeout`, on this
    /// timer).
    pub async fn timeout<F: Future>(
        &mut self,
        limit: Duration,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        let deadline = Instant::now() + limit;
        let sleep = match &mut self.sleep {
            Some(s) => {
                s.as_mut().reset(deadline);
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        tokio::pin!(fut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lent_timer_times_out_and_goes_back_to_its_connection() {
        let slot = Arc::new(TimerSlot::default());
        let ms = Duration::from_millis;
        let mut t = slot.lend();
        assert_eq!(t.timeout(ms(100), async { 7 }).await, Ok(7));
        let never = std::future::pending::<()>();
        assert_eq!(t.timeout(ms(20), never).await, Err(Elapsed));
        drop(t);
        assert!(crate::locks::lock(&slot.0).is_some(), "the timer went back");
        // Lent again: the same timer, reset (after it fired), times out again...
        let mut t = slot.lend();
        assert!(crate::locks::lock(&slot.0).is_none());
        let slow = tokio::time::sleep(ms(2000));
        assert_eq!(t.timeout(ms(20), slow).await, Err(Elapsed));
        // ... and, moved to a later deadline, does not fire at the earlier one.
        assert_eq!(t.timeout(ms(5000), async { 1 }).await, Ok(1));
        let quick = tokio::time::sleep(ms(50));
        assert_eq!(t.timeout(ms(5000), quick).await, Ok(()));
        // A timer of its own works alike and goes nowhere.
        let mut own = Timer::default();
        assert_eq!(own.timeout(ms(10), async { 1 }).await, Ok(1));
    }
}
