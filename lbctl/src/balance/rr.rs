//! Smooth weighted round robin (nginx's algorithm): every round each eligible backend's
//! current weight grows by its weight, the largest (first in config order on ties) wins
//! and pays back the total. Weights 3,1 give A A B A rather than A A A B; equal weights
//! cycle in config order. Pure: the caller passes the candidates and the state.

/// Picks among `candidates` (indices into `weights` and `current`, in config order).
/// Candidates of weight 0 never win (HAProxy: weight 0 drains a server). Returns `None`
/// when no candidate has a positive weight.
pub fn pick(candidates: &[usize], weights: &[u32], current: &mut [i64]) -> Option<usize> {
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
    fn excluded_and_zero_weight_backends_never_win() {
        assert_eq!(seq(&[1, 1, 1], &[0, 2], 4), vec![0, 2, 0, 2]);
        assert_eq!(seq(&[0, 2, 0], &[0, 1, 2], 3), vec![1, 1, 1]);
        let mut cur = vec![0; 2];
        assert_eq!(pick(&[0, 1], &[0, 0], &mut cur), None);
        assert_eq!(pick(&[], &[1, 1], &mut cur), None);
    }
}
