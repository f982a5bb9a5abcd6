//! Always-on STP topology-change markers: once a second the recorder reads how many
//! topology-change BPDUs (TCN, and configuration BPDUs with the TC flag) the lab's BPF
//! observers have counted on every switch port, and a rise of that lab-wide count becomes one
//! "STP topology change" marker, whether or not anyone looks at the dashboard. The
//! dashboard's picture, while a page is open, names the ports that changed; the time series
//! merges the two (see [`super::timeseries::TimeSeries::stp_burst`]).
//!
//! A topology change is a burst, not one packet: the root sets the TC flag in its
//! configuration BPDUs, every hello time on every designated port, for max age + forward
//! delay, and each bridge relays it; a port reaching forwarding starts another. So rises
//! that follow each other by less than the quiet gap (a little over two hello times) are
//! one change ([`Debounce`], pure), whose marker sits at the burst's first second and
//! counts its BPDUs.
//!
//! On a real host (no lab, no observer pinned) this finds nothing and says so once.

use crate::datapath::observe::TcCounters;
use std::path::Path;
use tracing::{info, warn};

/// One topology change as the counters saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Unix seconds of the reading that first saw the count rise.
    pub start: f64,
    /// Unix seconds of the last reading that saw it rise.
    pub last: f64,
    /// TCN + TC BPDUs received lab-wide during the burst.
    pub bpdus: u64,
}

/// Turns per-node cumulative counts into bursts. A node's first reading is its baseline
/// (an observer appearing later adds nothing), and a count that goes down (an observer
/// pinned anew) is a new baseline too; a node missing from a reading keeps its last count.
#[derive(Debug)]
pub struct Debounce {
    quiet: f64,
    seen: Vec<(String, u64)>,
    burst: Option<Burst>,
}

impl Debounce {
    /// `quiet`: the gap, in seconds, after which a rise is a new change.
    pub fn new(quiet: f64) -> Debounce {
        Debounce {
            quiet,
            seen: Vec::new(),
            burst: None,
        }
    }

    /// The quiet gap for bridges whose longest hello time is `hello_s`: two hellos
    /// (a flagged BPDU may be late by one) and the second the counters are read in.
    pub fn quiet_for_hello(hello_s: u32) -> f64 {
        f64::from(2 * hello_s.max(1) + 1)
    }

    /// Takes the counts read at `at`; the burst they belong to when they rose.
    pub fn feed(&mut self, at: f64, counts: &[(String, u64)]) -> Option<Burst> {
        let mut rise = 0u64;
        for (node, n) in counts {
            match self.seen.iter_mut().find(|(x, _)| x == node) {
                Some((_, old)) => {
                    rise += n.saturating_sub(*old);
                    *old = *n;
                }
                None => self.seen.push((node.clone(), *n)),
            }
        }
        if rise == 0 {
            return None;
        }
        let b = match self.burst {
            Some(b) if at - b.last <= self.quiet => Burst {
                last: at,
                bpdus: b.bpdus + rise,
                ..b
            },
            _ => Burst {
                start: at,
                last: at,
                bpdus: rise,
            },
        };
        self.burst = Some(b);
        Some(b)
    }
}

/// How often the lab directory is looked at again for observers pinned after the start.
const DISCOVER_EVERY_S: f64 = 10.0;

/// The recorder's side: the pinned counters and the debounce.
pub struct StpWatch {
    counters: TcCounters,
    debounce: Debounce,
    next_discover: f64,
    failing: bool,
}

impl StpWatch {
    /// Watches the observers pinned under `lab_dir`; logs once whether STP markers are on.
    pub fn start(lab_dir: &Path, quiet: f64) -> StpWatch {
        let mut counters = TcCounters::new(lab_dir);
        let n = counters.discover();
        if n == 0 {
            info!(
                "STP topology-change markers are off: no BPF observer pinned under {} \
                 (not a lab, or a lab up with --no-bpf); the dashboard's picture still \
                 marks STP changes while a page is open",
                lab_dir.display()
            );
        } else {
            info!(
                observers = n,
                quiet_s = quiet,
                "STP topology-change markers on"
            );
        }
        StpWatch {
            counters,
            debounce: Debounce::new(quiet),
            next_discover: 0.0,
            failing: false,
        }
    }

    /// Reads the counters at `at` (Unix seconds): the burst they belong to when they rose.
    pub fn tick(&mut self, at: f64) -> Option<Burst> {
        if at >= self.next_discover {
            self.next_discover = at + DISCOVER_EVERY_S;
            let before = self.counters.len();
            let now = self.counters.discover();
            if before == 0 && now > 0 {
                info!(observers = now, "STP topology-change markers on");
            }
        }
        match self.counters.read() {
            Ok(counts) => {
                self.failing = false;
                self.debounce.feed(at, &counts)
            }
            Err(e) => {
                if !self.failing {
                    warn!(
                        "reading the STP observers under {}: {e:#}",
                        self.counters.lab_dir().display()
                    );
                    self.failing = true;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(n, x)| (n.to_string(), *x)).collect()
    }

    /// Feeds one reading a second from t = 100; the bursts returned.
    fn run(d: &mut Debounce, readings: &[&[(&str, u64)]]) -> Vec<Option<Burst>> {
        readings
            .iter()
            .enumerate()
            .map(|(i, r)| d.feed(100.0 + i as f64, &c(r)))
            .collect()
    }

    #[test]
    fn rises_within_the_quiet_gap_are_one_change_counted_whole() {
        let mut d = Debounce::new(Debounce::quiet_for_hello(1));
        assert_eq!(d.quiet, 3.0);
        let sw = |a, b| -> Vec<(&str, u64)> { vec![("swout1", a), ("swout2", b)] };
        let out = run(
            &mut d,
            &[
                &sw(5, 7),   // 100: baseline
                &sw(5, 7),   // 101: flat
                &sw(6, 9),   // 102: +3, a change starts
                &sw(6, 9),   // 103
                &sw(8, 10),  // 104: +3, same change (2 s later)
                &sw(8, 10),  // 105
                &sw(8, 10),  // 106
                &sw(9, 10),  // 107: +1, 3 s after the last rise: still the same
                &sw(9, 10),  // 108
                &sw(9, 10),  // 109
                &sw(9, 10),  // 110
                &sw(10, 11), // 111: +2, 4 s of quiet: a new change
            ],
        );
        let first = Burst {
            start: 102.0,
            last: 102.0,
            bpdus: 3,
        };
        assert_eq!(out[..2], [None, None]);
        assert_eq!(out[2], Some(first));
        assert_eq!(out[3], None);
        assert_eq!(
            out[4],
            Some(Burst {
                last: 104.0,
                bpdus: 6,
                ..first
            })
        );
        assert_eq!(
            out[7],
            Some(Burst {
                last: 107.0,
                bpdus: 7,
                ..first
            })
        );
        assert!(out[8..11].iter().all(Option::is_none));
        assert_eq!(
            out[11],
            Some(Burst {
                start: 111.0,
                last: 111.0,
                bpdus: 2
            })
        );
    }

    #[test]
    fn new_observers_and_restarted_counters_are_baselines_not_changes() {
        let mut d = Debounce::new(3.0);
        let out = run(
            &mut d,
            &[
                &[("swout1", 10)],
                &[("swout1", 10), ("swout2", 500)], // swout2 appears: baseline
                &[("swout1", 10), ("swout2", 3)],   // swout2 pinned anew: baseline
                &[("swout2", 3)],                   // swout1 unread: keeps 10
                &[("swout1", 10), ("swout2", 4)],   // +1
            ],
        );
        assert_eq!(out[..4], [None, None, None, None]);
        assert_eq!(out[4].map(|b| (b.start, b.bpdus)), Some((104.0, 1)));
    }

    /// On a real host there is no lab directory: nothing is watched, nothing marked.
    #[test]
    fn no_lab_directory_means_no_observers() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StpWatch::start(&dir.path().join("no-such-lab"), 3.0);
        assert_eq!(w.counters.discover(), 0);
        assert_eq!(w.tick(100.0), None);
        assert_eq!(w.tick(101.0), None);
    }
}
