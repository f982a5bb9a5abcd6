//! Smooth weighted round robin (nginx's algorithm): every round each eligible backend's
//! current weight grows by its weight, the largest (first in config order on ties) wins
//! and pays back the total. Weights 3,1 give A A B A rather than A A A B; equal weights
//! cycle in config order. Pure: the caller passes the candidates and the state.
//!
//! Each pick adds the candidates' total weight and takes it back from the winner, so over a
//! stable set of candidates the current weights sum to zero. When the set changes (a
//! backend goes down or comes back, or one is excluded for a redispatch), the leftover
//! imbalance of the old set would make the next picks lopsided (serv2 twice in a row once
//! serv3 leaves, say), so a non-zero sum restarts the rotation in config order.

/// Picks among `candidates` (indices into `weights` and `current`, in config order).
/// Candidates of weight 0 never win (HAProxy: weight 0 drains a server). Returns `None`
/// when no candidate has a positive weight.
pub fn pick(candidates: &[usize], weights: &[u32], current: &mut [i64]) -> Option<usize> {
    let live = || candidates.iter().copied().filter(|&i| weights[i] > 0);
    if live().map(|i| current[i]).sum::<i64>() != 0 {
        for i in live() {
            current[i] = 0;
        }
    }
    let mut total: i64 = 0;
    let mut best: Option<usize> = None;
    for &i in candidates {
        let w = i64::from(weights[i]);
        if w == 0 {
            continue;
        }
        current[i] += w;
        total += w;
        match best {
            Some(b) if current[b] >= current[i] => {}
            _ => best = Some(i),
        }
    }
    let b = best?;
    current[b] -= total;
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(weights: &[u32], cands: &[usize], n: usize) -> Vec<usize> {
        let mut cur = vec![0; weights.len()];
        (0..n)
            .map(|_| pick(cands, weights, &mut cur).unwrap())
            .collect()
    }

    #[test]
    fn equal_weights_cycle_in_config_order() {
        assert_eq!(seq(&[1, 1, 1], &[0, 1, 2], 7), vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn weights_3_1_are_spread_smoothly() {
        assert_eq!(seq(&[3, 1], &[0, 1], 8), vec![0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn weights_5_1_1_match_nginx() {
        // nginx's documented example: a a b a c a a
        assert_eq!(seq(&[5, 1, 1], &[0, 1, 2], 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn a_backend_leaving_or_returning_restarts_the_rotation() {
        let w = [1, 1, 1];
        let mut cur = vec![0; 3];
        assert_eq!(pick(&[0, 1, 2], &w, &mut cur), Some(0));
        // serv3 goes down after one pick: serv1/serv2 alternate from serv1, no double.
        let got: Vec<_> = (0..4)
            .map(|_| pick(&[0, 1], &w, &mut cur).unwrap())
            .collect();
        assert_eq!(got, vec![0, 1, 0, 1]);
        // It comes back: all three cycle again in config order.
        let got: Vec<_> = (0..4)
            .map(|_| pick(&[0, 1, 2], &w, &mut cur).unwrap())
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0]);
        // Weighted sets keep their smooth spread after a change too.
        let w = [3, 1, 1];
        let mut cur = vec![0; 3];
        pick(&[0, 1, 2], &w, &mut cur);
        let got: Vec<_> = (0..4)
            .map(|_| pick(&[0, 1], &w, &mut cur).unwrap())
            .collect();
        assert_eq!(got, vec![0, 0, 1, 0]);
    }

    #[test]
    fn excluded_and_zero_weight_backends_never_win() {
        assert_eq!(seq(&[1, 1, 1], &[0, 2], 4), vec![0, 2, 0, 2]);
        assert_eq!(seq(&[0, 2, 0], &[0, 1, 2], 3), vec![1, 1, 1]);
        let mut cur = vec![0; 2];
        assert_eq!(pick(&[0, 1], &[0, 0], &mut cur), None);
        assert_eq!(pick(&[], &[1, 1], &mut cur), None);
    }
}
