//! Exact round robin among backends of equal weight without a lock: one atomic word holds
//! the candidate set of the last pick (a bit per backend) and the position of the next
//! one in it, updated with compare-and-swap, so every proxy thread takes the next turn of
//! one global rotation. The shared mutex this replaces was taken on every request by
//! every thread.
//!
//! It gives what [`super::rr::pick`] gives for equal weights: the candidates in config
//! order, cycling; when the set changes (a backend goes down or comes back, or one is
//! excluded for a redispatch) the rotation restarts in config order. (The smooth weighted
//! algorithm restarts only when the old set's leftover imbalance does not happen to sum to
//! zero over the new set; this restarts on every change, the rule both are meant to keep.)
//! Weighted sets, leastconn and more than [`MAX_BACKENDS`] backends keep the locked path.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// Backends a rotation can tell apart: one bit each above the 16 bits of the position.
pub const MAX_BACKENDS: usize = 48;
const POS_BITS: u32 = 16;

/// The rotation's state: `(set << 16) | position`; set 0 before the first pick.
#[derive(Debug, Default)]
pub struct Rotation(AtomicU64);

/// The state after picking from `candidates` (their bit set `set`) in state `state`, and
/// the pick (the pure step of [`Rotation::next`]).
fn step(state: u64, set: u64, candidates: &[usize]) -> (u64, usize) {
    let (last_set, pos) = (state >> POS_BITS, (state & 0xffff) as usize);
    let pos = if last_set == set && pos < candidates.len() {
        pos
    } else {
        0
    };
    let next = (pos + 1) % candidates.len();
    ((set << POS_BITS) | next as u64, candidates[pos])
}

impl Rotation {
    /// Whether a balancer with these weights can use a rotation: all equal and positive,
    /// and few enough backends for the bit set.
    pub fn fits(weights: &[u32]) -> bool {
        weights.len() <= MAX_BACKENDS && weights.iter().all(|&w| w > 0 && w == weights[0])
    }

    /// The next of `candidates` (backend indices below [`MAX_BACKENDS`], in config
    /// order); `None` when there are none.
    pub fn next(&self, candidates: &[usize]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let set = candidates.iter().fold(0u64, |m, &i| m | 1 << i);
        let mut state = self.0.load(Ordering::Relaxed);
        loop {
            let (new, pick) = step(state, set, candidates);
            // Relaxed: the word is all the state there is; its RMWs are totally ordered.
            match self
                .0
                .compare_exchange_weak(state, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(pick),
                Err(now) => state = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn seq(r: &Rotation, cands: &[usize], n: usize) -> Vec<usize> {
        (0..n).map(|_| r.next(cands).unwrap()).collect()
    }

    #[test]
    fn equal_weights_cycle_in_config_order_like_smooth_wrr() {
        let r = Rotation::default();
        let got = seq(&r, &[0, 1, 2], 7);
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
        let mut cur = vec![0; 3];
        let wrr: Vec<_> = (0..7)
            .map(|_| crate::balance::rr::pick(&[0, 1, 2], &[1, 1, 1], &mut cur).unwrap())
            .collect();
        assert_eq!(got, wrr);
        assert_eq!(r.next(&[]), None);
    }

    #[test]
    fn a_set_change_restarts_in_config_order() {
        let r = Rotation::default();
        assert_eq!(r.next(&[0, 1, 2]), Some(0));
        // serv3 down after one pick: serv1/serv2 alternate from serv1.
        assert_eq!(seq(&r, &[0, 1], 4), vec![0, 1, 0, 1]);
        // It comes back: all three from serv1.
        assert_eq!(seq(&r, &[0, 1, 2], 4), vec![0, 1, 2, 0]);
        // A redispatch excluding serv1: serv2, then the full set restarts.
        assert_eq!(r.next(&[1, 2]), Some(1));
        assert_eq!(seq(&r, &[0, 1, 2], 2), vec![0, 1]);
        // The highest backend index a rotation tells apart.
        let top = MAX_BACKENDS - 1;
        assert_eq!(seq(&r, &[3, top], 3), vec![3, top, 3]);
    }

    #[test]
    fn only_equal_positive_weights_and_few_backends_fit() {
        assert!(Rotation::fits(&[1, 1, 1]) && Rotation::fits(&[5, 5]));
        assert!(!Rotation::fits(&[3, 1]) && !Rotation::fits(&[0, 0]));
        assert!(!Rotation::fits(&[1; MAX_BACKENDS + 1]));
    }

    #[test]
    fn threads_share_one_exact_rotation() {
        let r = Arc::new(Rotation::default());
        let per_thread = 30_000;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut n = [0usize; 3];
                    for _ in 0..per_thread {
                        n[r.next(&[0, 1, 2]).unwrap()] += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = [0usize; 3];
        for t in threads {
            for (i, c) in t.join().unwrap().into_iter().enumerate() {
                total[i] += c;
            }
        }
        // 120,000 picks: exactly a third each, and the rotation is back at serv1.
        assert_eq!(total, [40_000; 3]);
        assert_eq!(seq(&r, &[0, 1, 2], 4), vec![0, 1, 2, 0]);
    }
}
