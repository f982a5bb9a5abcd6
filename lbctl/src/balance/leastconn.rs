//! Least connections: the eligible backends with the fewest requests in flight; ties are
//! broken by the smooth weighted round robin among the tied ones (HAProxy's leastconn
//! also round-robins between equally loaded servers).

use super::rr;

/// `active[i]` is backend i's number of requests in flight.
pub fn pick(
    candidates: &[usize],
    active: &[u64],
    weights: &[u32],
    current: &mut [i64],
) -> Option<usize> {
    let usable: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| weights[i] > 0)
        .collect();
    let least = usable.iter().map(|&i| active[i]).min()?;
    let tied: Vec<usize> = usable.into_iter().filter(|&i| active[i] == least).collect();
    rr::pick(&tied, weights, current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_least_loaded() {
        let mut cur = vec![0; 3];
        assert_eq!(pick(&[0, 1, 2], &[2, 0, 1], &[1, 1, 1], &mut cur), Some(1));
        assert_eq!(pick(&[0, 2], &[2, 0, 1], &[1, 1, 1], &mut cur), Some(2));
    }

    #[test]
    fn ties_go_round_robin_in_config_order() {
        let mut cur = vec![0; 3];
        let got: Vec<_> = (0..4)
            .map(|_| pick(&[0, 1, 2], &[0, 0, 0], &[1, 1, 1], &mut cur).unwrap())
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0]);
    }

    #[test]
    fn nothing_eligible() {
        let mut cur = vec![0; 2];
        assert_eq!(pick(&[], &[0, 0], &[1, 1], &mut cur), None);
        assert_eq!(pick(&[0, 1], &[0, 0], &[0, 0], &mut cur), None);
    }
}
