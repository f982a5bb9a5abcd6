//! The client loop that measures what a user sees during an injected failure: from inside
//! a node's namespace, one GET of the service every period (50 ms by default), each with
//! its own deadline, for a bounded time. Samples are kept so the outage of each event
//! (fault down, fault repaired) is computed afterwards from the same run.

use crate::http_get;
use crate::topo::netns;
use anyhow::{Context, Result};
use nix::sched::{setns, CloneFlags};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A loop never runs longer than this, whatever happens to the verify run driving it.
pub const MAX_LOOP: Duration = Duration::from_secs(180);

/// One request of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When the request started, in ms since the loop started.
    pub t_ms: u64,
    /// When it finished (answer or deadline), in ms since the loop started.
    pub end_ms: u64,
    pub ok: bool,
}

/// One event's figures for one client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub requests: u64,
    pub failed: u64,
    /// Longest user-visible outage in the window: from the last answer before a run of
    /// failures to the first answer after it (to the end of the window if none came).
    pub outage_ms: u64,
    /// The client got an answer after its last failure in the window.
    pub recovered: bool,
    /// Where the longest outage lies (loop time): the trace keeps it, relative to the event.
    #[serde(skip)]
    pub window: Option<(u64, u64)>,
}

/// What one client saw around one event, for drawing it: times in ms from the event
/// (negative: before it). Kept in the JSON report (schema 2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// The first request drawn (up to [`LEAD_MS`] before the event).
    pub start_ms: i64,
    /// The end of the event's window (the next event, or the end of the loop).
    pub end_ms: i64,
    /// Each failed request: [start, end (its answer or its deadline)].
    pub failed: Vec<[i64; 2]>,
    /// Each run of answered requests: [start of its first, answer of its last].
    pub answered: Vec<[i64; 2]>,
    /// The longest outage (what `outage_ms` measures): [from, to]; null without one.
    pub outage: Option<[i64; 2]>,
}

/// How much of the time before an event its trace shows.
pub const LEAD_MS: u64 = 1000;

/// The trace of the event at `from_ms` whose window ends at `to_ms` (loop time), with
/// its summary's outage window.
pub fn trace(samples: &[Sample], from_ms: u64, to_ms: u64, o: &Outage) -> Trace {
    let rel = |t: u64| t as i64 - from_ms as i64;
    let mut tr = Trace {
        start_ms: -(LEAD_MS.min(from_ms) as i64),
        end_ms: rel(to_ms),
        outage: o.window.map(|(a, b)| [rel(a), rel(b)]),
        ..Trace::default()
    };
    let shown = samples
        .iter()
        .filter(|s| s.t_ms + LEAD_MS >= from_ms && s.t_ms < to_ms);
    let mut run: Option<[i64; 2]> = None;
    for s in shown {
        if s.ok {
            let r = run.get_or_insert([rel(s.t_ms), rel(s.end_ms)]);
            r[1] = rel(s.end_ms);
        } else {
            tr.answered.extend(run.take());
            tr.failed.push([rel(s.t_ms), rel(s.end_ms)]);
        }
    }
    tr.answered.extend(run);
    tr
}

impl Outage {
    /// Counts the outage `from..to` if it is the longest yet.
    fn longest(&mut self, from: u64, to: u64) {
        let ms = to.saturating_sub(from);
        if ms > self.outage_ms {
            self.outage_ms = ms;
            self.window = Some((from, to));
        }
    }
}

/// The figures of the requests started in `[from_ms, to_ms)`. A failure run that starts in
/// the window is measured from the last success before it (the outage began when the last
/// good answer was received), or from the window's start if that success is older.
pub fn summarize(samples: &[Sample], from_ms: u64, to_ms: u64) -> Outage {
    let mut o = Outage {
        recovered: true,
        ..Outage::default()
    };
    let mut last_ok_end: Option<u64> = None;
    let mut run_from: Option<u64> = None;
    for s in samples {
        let inside = s.t_ms >= from_ms && s.t_ms < to_ms;
        if s.t_ms >= to_ms {
            break;
        }
        if inside {
            o.requests += 1;
        }
        if s.ok {
            if let Some(start) = run_from.take() {
                o.longest(start, s.end_ms);
            }
            last_ok_end = Some(s.end_ms);
        } else if inside {
            o.failed += 1;
            if run_from.is_none() {
                // From the last good answer, but not before the window's start: an outage
                // that began in an earlier event counts, in this one, from the moment
                // this event began.
                run_from = Some(last_ok_end.unwrap_or(from_ms).max(from_ms));
            }
        }
    }
    if let Some(start) = run_from {
        // Still failing at the end of the window.
        let end = samples
            .iter()
            .filter(|s| s.t_ms < to_ms)
            .map(|s| s.end_ms)
            .max()
            .unwrap_or(to_ms);
        o.longest(start, end);
        o.recovered = false;
    }
    o
}

/// Number of successes at the end of the samples with no failure after them.
pub fn trailing_successes(samples: &[Sample]) -> usize {
    samples.iter().rev().take_while(|s| s.ok).count()
}

/// The last `n` samples all succeeded and all started at or after `after_ms`.
pub fn recovered_after(samples: &[Sample], after_ms: u64, n: usize) -> bool {
    n > 0 && trailing_successes(samples) >= n && samples[samples.len() - n].t_ms >= after_ms
}

/// How soon after an injected event (a fault or its repair) every user with a path must
/// be served again: counted from the event itself, not from whatever was waited for
/// after it (STP convergence, a VRRP takeover).
pub const BACK_WITHIN: Duration = Duration::from_secs(20);

/// Whether the service came back within `limit_ms` of the event at `event_ms` (loop
/// time), the loop's clock now reading `now_ms`: `Some(true)` once the last `n` requests
/// all succeeded and all started after the event, their run of answers having begun by
/// `event_ms + limit_ms`; `Some(false)` once that can no longer happen (the deadline has
/// passed and no run of answers begun before it is still going); `None` while undecided.
pub fn back_within(
    samples: &[Sample],
    event_ms: u64,
    n: usize,
    limit_ms: u64,
    now_ms: u64,
) -> Option<bool> {
    let deadline = event_ms.saturating_add(limit_ms);
    let run = trailing_successes(samples);
    // When the service was back: the start of the final run of answers (the event itself
    // if they never stopped).
    let back_at = (run > 0).then(|| samples[samples.len() - run].t_ms.max(event_ms));
    if recovered_after(samples, event_ms, n) {
        return Some(back_at.is_some_and(|t| t <= deadline));
    }
    if now_ms <= deadline || back_at.is_some_and(|t| t <= deadline) {
        return None;
    }
    Some(false)
}

/// A running client loop in one node. Stopped when dropped.
pub struct ClientLoop {
    pub node: String,
    t0: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<JoinHandle<()>>,
}

impl ClientLoop {
    /// Starts GETs of `http://addr/` from inside namespace `ns`, one every `period`, each
    /// with `deadline`.
    pub fn start(
        node: &str,
        ns: &str,
        addr: SocketAddr,
        period: Duration,
        deadline: Duration,
    ) -> Result<ClientLoop> {
        let fd = netns::open(ns)?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let (st, sa) = (stop.clone(), samples.clone());
        let host = addr.to_string();
        let handle = std::thread::Builder::new()
            .name(format!("client-{node}"))
            .spawn(move || {
                if setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).is_err() {
                    return;
                }
                while !st.load(Ordering::Relaxed) && t0.elapsed() < MAX_LOOP {
                    let t = Instant::now();
                    let ok =
                        http_get::get(addr, &host, "/", deadline).is_ok_and(|r| r.status == 200);
                    sa.lock().unwrap().push(Sample {
                        t_ms: (t - t0).as_millis() as u64,
                        end_ms: t0.elapsed().as_millis() as u64,
                        ok,
                    });
                    if let Some(rest) = period.checked_sub(t.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            })
            .context("starting a client loop thread")?;
        Ok(ClientLoop {
            node: node.to_string(),
            t0,
            stop,
            samples,
            handle: Some(handle),
        })
    }

    /// Milliseconds since the loop started (the time base of its samples).
    pub fn now_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Waits (asynchronously) until the last `n` requests all succeeded and all started
    /// after `after_ms`, or `limit` passes. True if recovered.
    pub async fn wait_recovered(&self, after_ms: u64, n: usize, limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            if recovered_after(&self.samples.lock().unwrap(), after_ms, n) {
                return true;
            }
            if t.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (asynchronously) until [`back_within`] decides whether the service was back
    /// within `limit` of the event at `event_ms` (this loop's time base); false also if
    /// the loop stops producing samples well past the deadline.
    pub async fn wait_back(&self, event_ms: u64, n: usize, limit: Duration) -> bool {
        let cap = Instant::now() + limit + Duration::from_secs(10);
        let limit_ms = limit.as_millis() as u64;
        loop {
            let now = self.now_ms();
            if let Some(v) = back_within(&self.samples.lock().unwrap(), event_ms, n, limit_ms, now)
            {
                return v;
            }
            if Instant::now() > cap {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the loop and returns every sample.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.samples()
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: u64, ok: bool) -> Sample {
        Sample {
            t_ms,
            end_ms: t_ms + if ok { 2 } else { 300 },
            ok,
        }
    }

    /// Samples every 50 ms from `from` to `to` (exclusive), all `ok`.
    fn run(from: u64, to: u64, ok: bool) -> Vec<Sample> {
        (from..to).step_by(50).map(|t| s(t, ok)).collect()
    }

    #[test]
    fn nothing_failed() {
        let v = run(0, 1000, true);
        let o = summarize(&v, 0, 1000);
        assert_eq!(
            o,
            Outage {
                requests: 20,
                failed: 0,
                outage_ms: 0,
                recovered: true,
                window: None,
            }
        );
    }

    #[test]
    fn outage_runs_from_last_answer_to_first_answer() {
        // Answers until 450 (received at 452), failures 500..1950, answers again from 2000
        // (received at 2002): the user saw nothing for 2002 - 452 = 1550 ms.
        let mut v = run(0, 500, true);
        v.extend(run(500, 2000, false));
        v.extend(run(2000, 3000, true));
        let o = summarize(&v, 0, 3000);
        assert_eq!(o.failed, 30);
        assert_eq!(o.requests, 60);
        assert_eq!(o.outage_ms, 2002 - 452);
        assert!(o.recovered);
    }

    #[test]
    fn windows_split_events_and_reach_back_for_the_last_answer() {
        // The fault hits at 1000; the first failure is at 1200; the repair at 3000 costs a
        // second outage 4000..4500.
        let mut v = run(0, 1200, true);
        v.extend(run(1200, 1800, false));
        v.extend(run(1800, 4000, true));
        v.extend(run(4000, 4500, false));
        v.extend(run(4500, 6000, true));
        let down = summarize(&v, 1000, 3000);
        assert_eq!(down.requests, 40);
        assert_eq!(down.failed, 12);
        assert_eq!(down.outage_ms, 1802 - 1152);
        let up = summarize(&v, 3000, 6000);
        assert_eq!(up.failed, 10);
        assert_eq!(up.outage_ms, 4502 - 3952);
        // A window with no failure reports no outage even if the previous one had one.
        assert_eq!(summarize(&v, 2000, 3000).outage_ms, 0);
    }

    #[test]
    fn an_outage_continuing_into_the_next_window_counts_from_its_start() {
        // No path from 1000 to 5000 (the fault's down window is 1000..3000, the repair at
        // 3000 takes 2 s to give the service back).
        let mut v = run(0, 1000, true);
        v.extend(run(1000, 5000, false));
        v.extend(run(5000, 6000, true));
        let down = summarize(&v, 1000, 3000);
        assert!(!down.recovered);
        // The last answer (952) came before the fault (1000): counted from the fault.
        assert_eq!(down.outage_ms, 2950 + 300 - 1000);
        let up = summarize(&v, 3000, 6000);
        assert!(up.recovered);
        assert_eq!(up.outage_ms, 5002 - 3000);
    }

    #[test]
    fn never_recovered_runs_to_the_end() {
        let mut v = run(0, 500, true);
        v.extend(run(500, 1000, false));
        let o = summarize(&v, 0, 1000);
        assert!(!o.recovered);
        // Last answer received at 452, last failure ended at 950 + 300.
        assert_eq!(o.outage_ms, 1250 - 452);
        assert_eq!(trailing_successes(&v), 0);
        assert_eq!(trailing_successes(&run(0, 200, true)), 4);
    }

    #[test]
    fn recovery_needs_n_answers_all_after_the_fault() {
        let mut v = run(0, 1000, true);
        // Fault at 1000: an answer that was in flight does not count as a recovery.
        v.push(s(1000, true));
        assert!(!recovered_after(&v, 1000, 3));
        v.push(s(1050, false));
        v.extend(run(1100, 1250, true));
        assert!(recovered_after(&v, 1000, 3));
        assert!(!recovered_after(&v, 1000, 4));
        assert!(!recovered_after(&v, 1000, 0));
    }

    #[test]
    fn failing_from_the_start_counts_from_the_window() {
        let mut v = run(0, 1000, false);
        v.extend(run(1000, 1200, true));
        let o = summarize(&v, 0, 1200);
        assert_eq!(o.outage_ms, 1002);
        assert!(o.recovered);
    }

    #[test]
    fn back_within_counts_from_the_event_not_from_later_waits() {
        // Event at 1000, service back at 18000: within 20 s of the event.
        let mut v = run(0, 1000, true);
        v.extend(run(1000, 18000, false));
        v.extend(run(18000, 19000, true));
        assert_eq!(back_within(&v, 1000, 3, 20_000, 19_000), Some(true));
        // Back at 22000 only: too late, however long STP took to converge before the
        // check began (the old count started after convergence and passed this).
        let mut late = run(0, 1000, true);
        late.extend(run(1000, 22000, false));
        late.extend(run(22000, 23000, true));
        assert_eq!(back_within(&late, 1000, 3, 20_000, 23_000), Some(false));
        // Still failing before the deadline: undecided; after it: failed.
        let mut failing = run(0, 1000, true);
        failing.extend(run(1000, 5000, false));
        assert_eq!(back_within(&failing, 1000, 3, 20_000, 5000), None);
        failing.extend(run(5000, 21100, false));
        assert_eq!(back_within(&failing, 1000, 3, 20_000, 21_100), Some(false));
        // Answers began at 20950, just before the deadline, and need 3 in a row: wait.
        let mut edge = run(0, 1000, true);
        edge.extend(run(1000, 20950, false));
        edge.push(s(20950, true));
        assert_eq!(back_within(&edge, 1000, 3, 20_000, 21_000), None);
        edge.extend(run(21000, 21100, true));
        assert_eq!(back_within(&edge, 1000, 3, 20_000, 21_100), Some(true));
        // Never interrupted: back at once.
        assert_eq!(
            back_within(&run(0, 2000, true), 1000, 3, 20_000, 2000),
            Some(true)
        );
    }

    #[test]
    fn trace_keeps_failures_answer_runs_and_the_outage_relative_to_the_event() {
        // Fault at 1000 (window to 3000): answers until 1150, failures 1200..1800 (each
        // ending 300 ms later), answers again from 1800.
        let mut v = run(0, 1200, true);
        v.extend(run(1200, 1800, false));
        v.extend(run(1800, 4000, true));
        let o = summarize(&v, 1000, 3000);
        let t = trace(&v, 1000, 3000, &o);
        assert_eq!((t.start_ms, t.end_ms), (-1000, 2000));
        assert_eq!(t.failed.len(), 12);
        assert_eq!(t.failed[0], [200, 500]);
        // One run before the failures (from the first sample of the lead-in), one after.
        assert_eq!(t.answered, vec![[-1000, 152], [800, 1952]]);
        assert_eq!(t.outage, Some([152, 802]));
        assert_eq!(o.outage_ms, 802 - 152);
        // No failure, no outage; a lead-in never reaches before the loop's start.
        let quiet = trace(&v, 300, 1000, &summarize(&v, 300, 1000));
        assert_eq!(
            (quiet.start_ms, quiet.outage, quiet.failed.len()),
            (-300, None, 0)
        );
    }
}
